//! The seed's laptop, replayed: fixtures/facts/seed-laptop.json is the Windows laptop of the
//! investigation that started the project (shared/seed/): an RTX 4060 Laptop GPU (8.9, Ada
//! Lovelace, 8 GB), driver 531.14 (CUDA 12.1), CUDA_PATH at the v13.0 toolkit, and a project
//! with three environments, none complete: .venv (Python 3.13, CPU torch, CPU llama-cpp-python;
//! the shell's and the editor's), .venv310 (torch 2.5.1+cu121, no llama-cpp-python) and
//! .venv-gpu (empty).
//!
//! The seed found its problems by hand over an afternoon. The doctor must name every one of
//! them from these facts, with PowerShell fixes bound to each environment's own interpreter,
//! and exit 1.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

const VENV_PYTHON: &str = r"& 'C:\Users\dev\proj\.venv\Scripts\python.exe'";

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/facts/seed-laptop.json")
}

/// `gpu-doctor check --facts <seed laptop> --format <format>`: exit code and stdout.
fn check(format: &str) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"))
        .args(["check", "--facts"])
        .arg(fixture())
        .args(["--format", format])
        .env("NO_COLOR", "1")
        .output()
        .expect("gpu-doctor runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}

/// What the report must say about one problem.
struct Expect {
    rule: &'static str,
    severity: &'static str,
    subject: Option<&'static str>,
    title: &'static str,
    powershell: &'static [&'static str],
}

/// Every problem the seed found by hand, and the ones it walked into without noticing.
fn expected() -> Vec<Expect> {
    vec![
        // "The default .venv environment doesn't have CUDA-enabled PyTorch installed."
        Expect {
            rule: "torch-cpu-build",
            severity: "error",
            subject: Some("environment .venv (Python 3.13)"),
            title: "PyTorch 2.6.0+cpu in .venv is a CPU build",
            // cu126, not the seed's cu121: torch has no cu121 wheel for Python 3.13.
            powershell: &[
                r"& 'C:\Users\dev\proj\.venv\Scripts\python.exe' -m pip install --force-reinstall 'torch==2.6.0' --index-url 'https://download.pytorch.org/whl/cu126'",
            ],
        },
        // "All 36 model layers were assigned to CPU, despite setting n_gpu_layers=-1."
        Expect {
            rule: "llama-cpp-cpu-build",
            severity: "error",
            subject: Some("environment .venv (Python 3.13)"),
            title: "llama-cpp-python 0.3.16 in .venv is a CPU-only build",
            powershell: &[
                r"& 'C:\Users\dev\proj\.venv\Scripts\python.exe' -m pip install --force-reinstall --no-cache-dir --only-binary=llama-cpp-python 'llama-cpp-python==0.3.35' --extra-index-url 'https://abetlen.github.io/llama-cpp-python/whl/cu125'",
            ],
        },
        // "No environment is fully configured for GPU inference!"
        Expect {
            rule: "python-envs-none-complete",
            severity: "error",
            subject: None,
            title: "none of the 3 runs torch and llama-cpp-python on the GPU",
            powershell: &[
                "'torch==2.6.0' --index-url 'https://download.pytorch.org/whl/cu126'; & ",
                "'llama-cpp-python==0.3.35' --extra-index-url 'https://abetlen.github.io/llama-cpp-python/whl/cu125'",
            ],
        },
        // "Switched to Python 3.13 -> Broke GPU support (Python 3.13 CUDA wheels not stable yet)."
        Expect {
            rule: "python-no-cuda-wheels",
            severity: "warn",
            subject: Some("environment .venv (Python 3.13)"),
            title: "Python 3.13 in .venv: no prebuilt CUDA wheels",
            powershell: &[],
        },
        // "CUDA: 12.1 supported", yet CUDA_PATH names the 13.0 toolkit.
        Expect {
            rule: "driver-too-old-for-toolkit",
            severity: "error",
            subject: Some(r"toolkit C:\Program Files\NVIDIA GPU Computing Toolkit\CUDA\v13.0"),
            title: "driver 531.14 is too old for CUDA 13.0.2",
            powershell: &["Start-Process 'https://www.nvidia.com/Download/index.aspx'"],
        },
        // .venv310's CUDA 12.1 torch next to CUDA_PATH's 13.0: the source build of
        // llama-cpp-python the seed planned there would pick the wrong toolkit.
        Expect {
            rule: "torch-toolkit-major-mismatch",
            severity: "warn",
            subject: Some("environment .venv310 (Python 3.10)"),
            title: "torch in .venv310 is built with CUDA 12.1",
            powershell: &[],
        },
        // "$env:GGML_CUDA_FORCE_MMQ = "1"" as a run-time optimisation to test.
        Expect {
            rule: "ggml-cuda-build-options-at-runtime",
            severity: "info",
            subject: None,
            title: "GGML_CUDA_FORCE_MMQ=1 set in the environment",
            powershell: &["Remove-Item Env:GGML_CUDA_FORCE_MMQ"],
        },
    ]
}

#[test]
fn the_report_names_every_problem_the_seed_found_by_hand() {
    let (code, out) = check("json");
    assert_eq!(code, 1, "not ready\n{out}");
    let doc: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    let findings = doc["findings"].as_array().cloned().unwrap_or_default();
    for e in expected() {
        let hits: Vec<&Value> = findings
            .iter()
            .filter(|f| {
                f["rule"] == e.rule
                    && e.subject
                        .is_none_or(|s| f["subject"].as_str().is_some_and(|x| x == s))
            })
            .collect();
        assert_eq!(hits.len(), 1, "{} once: {findings:#?}", e.rule);
        let f = hits[0];
        assert_eq!(f["severity"], e.severity, "{}", e.rule);
        let title = f["title"].as_str().unwrap_or("");
        assert!(title.contains(e.title), "{}: title {title:?}", e.rule);
        let ps = f["fix"]["powershell"].as_str().unwrap_or("");
        for want in e.powershell {
            assert!(ps.contains(want), "{}: PowerShell fix {ps:?}", e.rule);
        }
    }
    // Nothing else: the report is the seed's list, not noise around it.
    let mut raised: Vec<&str> = findings.iter().filter_map(|f| f["rule"].as_str()).collect();
    raised.sort_unstable();
    let mut wanted: Vec<&str> = expected().iter().map(|e| e.rule).collect();
    wanted.sort_unstable();
    assert_eq!(raised, wanted);
}

#[test]
fn every_fix_runs_the_environments_own_interpreter() {
    let (_, out) = check("json");
    let doc: Value = serde_json::from_str(&out).expect("json");
    for f in doc["findings"].as_array().into_iter().flatten() {
        if f["scope"] != "venv" {
            continue;
        }
        let Some(ps) = f["fix"]["powershell"].as_str() else {
            continue;
        };
        let subject = f["subject"].as_str().unwrap_or("");
        if subject.starts_with("environment .venv ") {
            assert!(ps.starts_with(VENV_PYTHON), "{}: {ps}", f["rule"]);
        }
        // A bare `pip` or `python` would use whatever the shell activated.
        assert!(!ps.contains(" pip install") || ps.contains(r"\Scripts\python.exe' -m pip"));
    }
}

#[test]
fn the_matrix_shows_each_environment_with_its_verdict() {
    let (_, out) = check("json");
    let doc: Value = serde_json::from_str(&out).expect("json");
    let f = doc["findings"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["rule"] == "python-envs-none-complete"))
        .expect("the none-complete finding");
    let evidence: Vec<&str> = f["evidence"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(
        evidence,
        vec![
            ".venv [shell, editor, path]: Python 3.13, torch CPU, CUDA usable: no, llama-cpp-python GPU backend: none => broken",
            ".venv310: Python 3.10, torch 2.5.1+cu121, CUDA usable: yes, llama-cpp-python GPU backend: — => partial",
            ".venv-gpu: Python 3.11, torch —, CUDA usable: —, llama-cpp-python GPU backend: — => empty",
            ".venv lacks: torch with CUDA, llama-cpp-python with CUDA",
        ]
    );
    // The llama-cpp-python fix says what it still needs on this laptop: the wheel's CUDA 12
    // DLLs are looked up in CUDA_PATH, which names the 13.0 toolkit.
    let llama = doc["findings"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["rule"] == "llama-cpp-cpu-build"))
        .expect("llama finding");
    let explain = llama["explain"].as_str().unwrap_or("");
    assert!(
        explain.contains("Before it works here, it needs CUDA_PATH set to a CUDA 12.x toolkit"),
        "{explain}"
    );
}

#[test]
fn the_human_report_agrees_and_shows_the_findings() {
    let (code, human) = check("human");
    assert_eq!(code, 1, "{human}");
    for e in expected() {
        assert!(
            human.contains(e.title),
            "the human report shows {}:\n{human}",
            e.rule
        );
    }
}

/// `gpu-doctor fix --facts <seed laptop> ARGS`: exit code and stdout.
fn fix(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"))
        .args(["fix", "--facts"])
        .arg(fixture())
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("gpu-doctor runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), stdout)
}

/// The laptop is a Windows machine: a replay anywhere shows its fixes in PowerShell, in the fix
/// plan and in every format, never a Linux command such as `sudo apt-get`.
#[test]
fn a_windows_recording_is_fixed_in_powershell_in_every_format() {
    let (code, plan) = fix(&[]);
    assert_eq!(code, 1, "{plan}");
    assert!(
        plan.contains("Start-Process 'https://www.nvidia.com/Download/index.aspx'"),
        "{plan}"
    );
    assert!(plan.contains(VENV_PYTHON), "{plan}");
    assert!(!plan.contains("sudo "), "{plan}");
    // --shell still chooses.
    let (_, bash) = fix(&["--shell", "bash"]);
    assert!(bash.contains("sudo "), "{bash}");
    assert!(!bash.contains("Start-Process"), "{bash}");

    for format in ["human", "markdown", "sarif", "github", "junit"] {
        let (code, mut out) = check(format);
        assert_eq!(code, 1, "{format}: {out}");
        if format == "sarif" {
            // What a code-scanning tool shows is each result's message; the structured
            // `properties.fix` keeps both shells, as the json format does.
            let log: Value = serde_json::from_str(&out).expect("sarif");
            out = log["runs"][0]["results"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["message"]["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n");
        }
        assert!(out.contains("Start-Process"), "{format}: {out}");
        for linux in ["sudo ", "Fix (bash)", "fix (bash)", "```bash"] {
            assert!(!out.contains(linux), "{format} shows {linux:?}: {out}");
        }
    }
}
