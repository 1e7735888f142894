//! The command line end to end, through the real binary on this machine (which has no NVIDIA
//! driver in CI): verdicts, exit codes, machine-readable output and bad input.

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn doctor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gpu-doctor"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("gpu-doctor runs")
}

fn doctor_with_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gpu-doctor starts");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn has_driver() -> bool {
    std::path::Path::new("/proc/driver/nvidia/version").exists()
}

fn finding_ids(doc: &Value) -> Vec<String> {
    doc["findings"]
        .as_array()
        .expect("findings array")
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                f["rule"].as_str().unwrap(),
                f["subject"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn check_without_a_driver_exits_1_and_names_the_library() {
    if has_driver() {
        eprintln!("skipped: this machine has an NVIDIA driver");
        return;
    }
    let out = doctor(&["check"]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("no NVIDIA driver"), "{stdout}");
    assert!(stdout.contains("libnvidia-ml.so.1"), "{stdout}");
}

#[test]
fn no_subcommand_means_check() {
    let plain = doctor(&["--format", "json"]);
    let check = doctor(&["check", "--format", "json"]);
    assert_eq!(plain.status.code(), check.status.code());
    let a: Value = serde_json::from_slice(&plain.stdout).unwrap();
    let b: Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(finding_ids(&a), finding_ids(&b));
}

#[test]
fn json_output_is_one_valid_document_and_nothing_else() {
    let out = doctor(&["check", "--format", "json"]);
    let doc: Value =
        serde_json::from_slice(&out.stdout).expect("stdout is exactly one JSON document");
    assert_eq!(doc["schema_version"], 1);
    assert!(doc["verdict"]["exit_code"].is_i64());
    assert_eq!(
        doc["verdict"]["exit_code"].as_i64(),
        out.status.code().map(i64::from)
    );
    assert!(doc["facts"]["probes"]["host"]["status"].is_string());
}

#[test]
fn recorded_facts_give_the_same_findings_and_exit_code() {
    let facts = doctor(&["facts"]);
    assert_eq!(facts.status.code(), Some(0), "{}", text(&facts.stderr));
    let replay = doctor_with_stdin(
        &["check", "--facts", "-", "--format", "json"],
        &facts.stdout,
    );
    let live = doctor(&["check", "--format", "json"]);
    assert_eq!(
        replay.status.code(),
        live.status.code(),
        "{}",
        text(&replay.stderr)
    );
    let replayed: Value = serde_json::from_slice(&replay.stdout).unwrap();
    let lived: Value = serde_json::from_slice(&live.stdout).unwrap();
    assert_eq!(finding_ids(&replayed), finding_ids(&lived));
}

#[test]
fn a_bad_flag_exits_2_with_a_message() {
    let out = doctor(&["check", "--frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--frobnicate"));
    let out = doctor(&["check", "--profile", "extreme"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("quick"), "{}", text(&out.stderr));
}

#[test]
fn an_unreadable_facts_file_exits_2_and_names_it() {
    let out = doctor(&["check", "--facts", "/nonexistent/box.json"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("/nonexistent/box.json"), "{err}");
    assert!(out.stdout.is_empty(), "nothing half-written on stdout");
}

#[test]
fn a_facts_file_of_a_newer_schema_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.json");
    std::fs::write(&path, r#"{"schema_version": 2, "driver": {}}"#).unwrap();
    let out = doctor(&["check", "--facts", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("schema_version 2 is newer"), "{err}");
    assert!(out.stdout.is_empty());
}

/// A report given as facts, or a document without its sections, was once judged as a healthy
/// machine (exit 0) while the check that wrote the report exited 1.
#[test]
fn a_report_or_a_document_without_sections_is_not_facts() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/facts/h100-python.json"
    );
    let report = doctor(&["check", "--facts", fixture, "--format", "json"]);
    assert_eq!(report.status.code(), Some(1), "{}", text(&report.stderr));
    let out = doctor_with_stdin(&["check", "--facts", "-"], &report.stdout);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("is a gpu-doctor report"), "{err}");
    assert!(err.contains("jq .facts"), "{err}");
    assert!(out.stdout.is_empty());

    let out = doctor_with_stdin(&["check", "--facts", "-"], br#"{"schema_version": 1}"#);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains(r#"sections "profile", "probes", "host" are missing"#),
        "{err}"
    );

    // A probe that ran carries its section.
    let mut facts: Value = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
    facts.as_object_mut().unwrap().remove("python");
    let out = doctor_with_stdin(
        &["check", "--facts", "-"],
        &serde_json::to_vec(&facts).unwrap(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains(r#"the section "python" (its probe says ok) is missing"#),
        "{err}"
    );
}

#[test]
fn broken_json_facts_exit_2_with_line_and_column() {
    let out = doctor_with_stdin(
        &["check", "--facts", "-"],
        b"{\"schema_version\": 1,\n nope }",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("<stdin>:2:"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn fail_on_never_exits_0_and_fail_on_warn_is_at_least_as_strict() {
    let never = doctor(&["check", "--fail-on", "never"]);
    assert_eq!(never.status.code(), Some(0));
    let error = doctor(&["check", "--fail-on", "error"])
        .status
        .code()
        .unwrap();
    let warn = doctor(&["check", "--fail-on", "warn"])
        .status
        .code()
        .unwrap();
    assert!(warn >= error);
}

#[test]
fn version_rules_explain_and_completions_work() {
    let v = doctor(&["--version"]);
    assert_eq!(v.status.code(), Some(0));
    assert!(text(&v.stdout).starts_with("gpu-doctor "));
    let rules = doctor(&["rules"]);
    assert_eq!(rules.status.code(), Some(0));
    assert!(text(&rules.stdout).contains("no-nvidia-driver"));
    let explain = doctor(&["explain", "no-nvidia-driver"]);
    assert_eq!(explain.status.code(), Some(0));
    assert!(text(&explain.stdout).contains("no-nvidia-driver"));
    let unknown = doctor(&["explain", "no-nvidia-drivr"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("Did you mean `no-nvidia-driver`?"));
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let c = doctor(&["completions", shell]);
        assert_eq!(c.status.code(), Some(0), "{shell}");
        assert!(text(&c.stdout).contains("gpu-doctor"));
    }
}

#[test]
fn human_output_honours_no_color_and_color_always() {
    let plain = doctor(&["check"]);
    assert!(
        !text(&plain.stdout).contains('\u{1b}'),
        "NO_COLOR output has no escape codes"
    );
    let forced = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"))
        .args(["check", "--color", "always"])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(
        text(&forced.stdout).contains('\u{1b}'),
        "--color always colours a pipe"
    );
}

/// The flag wins over NO_COLOR, as in cargo, and --help says so.
#[test]
fn color_always_wins_over_no_color_as_help_says() {
    let facts = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/facts/seed-laptop.json"
    );
    for (color, escapes) in [("always", true), ("auto", false), ("never", false)] {
        let out = doctor(&["check", "--facts", facts, "--color", color]);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            text(&out.stdout).contains('\u{1b}'),
            escapes,
            "--color {color}"
        );
    }
    let help = text(&doctor(&["fix", "--help"]).stdout);
    assert!(
        help.contains("always and never win over NO_COLOR"),
        "{help}"
    );
}

#[test]
fn a_closed_pipe_is_not_a_crash() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"))
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        !text(&out.stderr).contains("panicked"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn model_reads_a_gguf_header_and_says_how_many_layers_fit() {
    use gpu_doctor::gguf::{write_cached, ModelParams};
    let dir = tempfile::tempdir().unwrap();
    let path = write_cached(&ModelParams::placement(), dir.path()).unwrap();
    let file = path.to_str().unwrap();

    let roomy = doctor(&["model", file, "--free-mib", "8192", "--ctx", "2048"]);
    let out = text(&roomy.stdout);
    assert_eq!(roomy.status.code(), Some(0), "{out}{}", text(&roomy.stderr));
    assert!(out.contains("architecture llama, 2 layers"), "{out}");
    assert!(out.contains("use n_gpu_layers=3 (-ngl 3)"), "{out}");

    // Less free memory than the 512 MiB reserve: nothing fits.
    let tight = doctor(&["model", file, "--free-mib", "256"]);
    assert!(
        text(&tight.stdout).contains("0 of 2 layers fit"),
        "{}",
        text(&tight.stdout)
    );

    // A truncated model is bad input: exit 2, the file and the offset named, nothing on stdout.
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let bad = doctor(&["model", cut.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("cut.gguf: offset"),
        "{}",
        text(&bad.stderr)
    );
    assert!(bad.stdout.is_empty());
}

/// `make run` with this test's binary (deps and build taken as done): make's exit status and
/// standard error.
fn make_run(args: &str) -> (i32, String) {
    let out = Command::new("make")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--no-print-directory", "-o", "deps", "-o", "build", "run"])
        .arg(concat!("BIN=", env!("CARGO_BIN_EXE_gpu-doctor")))
        .arg(format!("ARGS={args}"))
        .env("NO_COLOR", "1")
        .output()
        .expect("make runs");
    (out.status.code().unwrap_or(-1), text(&out.stderr))
}

/// make's own "Error 1" reads like a failed build: `make run` says the doctor's exit code and
/// what it means, and that the build succeeded.
#[test]
fn make_run_says_the_doctors_exit_code_and_its_meaning() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/facts");
    let (code, err) = make_run(&format!(
        "--facts {fixtures}/seed-laptop.json --format line"
    ));
    assert_eq!(code, 2, "make exits 2 on a failed recipe: {err}");
    assert!(
        err.contains("make run: gpu-doctor exited with code 1: not ready")
            && err.contains("the build itself succeeded"),
        "{err}"
    );
    let (code, err) = make_run(&format!(
        "--facts {fixtures}/seed-laptop.json --fail-on never --format line"
    ));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("make run: gpu-doctor exited with code 0: ready"),
        "{err}"
    );
    let (code, err) = make_run("--facts /nonexistent/facts.json");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("exited with code 2: no verdict"), "{err}");
}

/// An option the subcommand would ignore is refused with exit 2 and a message naming it, where
/// it is given (before or after the subcommand); a variable from the environment is not.
#[test]
fn options_a_subcommand_would_ignore_are_refused() {
    for args in [
        &["completions", "bash", "--redact"][..],
        &["--redact", "completions", "bash"],
        &["model", "x.gguf", "--color", "never"],
        &["explain", "no-nvidia-driver", "--no-cache"],
        &["--profile", "quick", "facts"],
    ] {
        let out = doctor(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.starts_with("gpu-doctor: error: ")
                && args
                    .iter()
                    .any(|a| a.starts_with("--") && err.contains(&format!("{a} "))),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let err = text(&doctor(&["completions", "bash", "--redact"]).stderr);
    assert!(err.contains("does not use --redact"), "{err}");
    // check's --format before a subcommand that has its own: where to give it.
    let out = doctor(&["--format", "json", "rules"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("`gpu-doctor rules --format ...`"), "{err}");
    // What each uses is accepted, and a variable's value applies only where it is used.
    assert_eq!(
        doctor(&["rules", "--no-config", "-v"]).status.code(),
        Some(0)
    );
    let with_env = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"))
        .args(["completions", "bash"])
        .env("GPU_DOCTOR_NO_CACHE", "1")
        .output()
        .unwrap();
    assert_eq!(with_env.status.code(), Some(0));
}

/// -q/--quiet: nothing for a person on standard output, the exit code still the verdict; a
/// format asked for is written; it cannot be combined with -v.
#[test]
fn quiet_leaves_the_verdict_to_the_exit_code() {
    let facts = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/facts/seed-laptop.json"
    );
    let out = doctor(&["check", "--facts", facts, "-q"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        text(&out.stdout)
    );
    let line = doctor(&["--quiet", "check", "--facts", facts, "--format", "line"]);
    assert_eq!(line.status.code(), Some(1));
    assert!(text(&line.stdout).starts_with("driver-too-old-for-toolkit:"));
    let exec = doctor(&["exec", "-q", "--facts", facts, "--", "true"]);
    assert_eq!(exec.status.code(), Some(1));
    let err = text(&exec.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not running true"), "{err}");
    // init's summary says what to add to files it does not touch: not something to silence.
    let dir = tempfile::tempdir().unwrap();
    let init = doctor(&["init", "-q", "--dir", dir.path().to_str().unwrap()]);
    assert_eq!(init.status.code(), Some(2), "{}", text(&init.stderr));
    assert!(!dir.path().join("gpu-doctor.toml").exists());
    assert_eq!(
        doctor(&["check", "-q", "-v", "--facts", facts])
            .status
            .code(),
        Some(2)
    );
}

/// `facts --output FILE` writes the facts to FILE (atomically, as check --output does), nothing
/// to standard output; `check --facts FILE` judges them. A folder that does not exist is exit 2.
#[test]
fn facts_output_writes_a_file_that_check_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("box.json");
    let path_text = path.to_str().unwrap();
    let out = doctor(&[
        "facts",
        "--profile",
        "quick",
        "--no-cache",
        "--output",
        path_text,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let facts: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(facts["profile"], "quick");
    let judged = doctor(&["check", "--facts", path_text, "--format", "line"]);
    assert!(
        matches!(judged.status.code(), Some(0 | 1)),
        "{}",
        text(&judged.stderr)
    );
    let missing = dir.path().join("no/such/folder/box.json");
    let out = doctor(&[
        "facts",
        "--profile",
        "quick",
        "--output",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot write"),
        "{}",
        text(&out.stderr)
    );
}

/// The json report names the gpu-doctor that judged it (on a replay `tool` is the recording's),
/// and its members are those docs/report.schema.json publishes.
#[test]
fn the_json_report_has_the_judging_version_and_its_published_schema() {
    let facts = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/facts/seed-laptop.json"
    );
    let out = doctor(&["check", "--facts", facts, "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let version = text(&doctor(&["--version"]).stdout);
    assert_eq!(
        format!(
            "gpu-doctor {}",
            doc["judged_by"]["version"].as_str().unwrap()
        ),
        version.trim()
    );
    assert_eq!(doc["judged_by"]["name"], "gpu-doctor");
    assert_eq!(doc["tool"]["version"], "scenario: seed laptop");
    assert_has_the_published_members(&doc, "report");
}

/// `doc`'s members are those docs/NAME.schema.json publishes, the required ones not null.
fn assert_has_the_published_members(doc: &Value, name: &str) {
    let path = format!("{}/docs/{name}.schema.json", env!("CARGO_MANIFEST_DIR"));
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut published: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
    let mut written: Vec<&String> = doc.as_object().unwrap().keys().collect();
    published.sort();
    written.sort();
    assert_eq!(written, published, "{name}");
    for required in schema["required"].as_array().unwrap() {
        assert!(
            !doc[required.as_str().unwrap()].is_null(),
            "{name}: {required}"
        );
    }
}

/// `--format json` on rules, explain, model and fix: one JSON document each, with the
/// members its published schema names; exit codes as in the human format.
#[test]
fn rules_explain_model_and_fix_write_json_with_a_published_schema() {
    let json = |args: &[&str], code: i32| -> Value {
        let out = doctor(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}",
            text(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    };
    let rules = json(&["rules", "--format", "json"], 0);
    assert_has_the_published_members(&rules, "rules");
    let first = &rules["rules"][0];
    assert!(
        first["id"].is_string() && first["severity"].is_string(),
        "{first}"
    );

    let rule = json(&["explain", "no-nvidia-driver", "--format", "json"], 0);
    assert_has_the_published_members(&rule, "explain");
    assert_eq!(rule["id"], "no-nvidia-driver");
    assert!(rule["docs"].as_str().unwrap().contains("What it means"));

    let dir = tempfile::tempdir().unwrap();
    let params = gpu_doctor::gguf::ModelParams::placement();
    let model = gpu_doctor::gguf::write_cached(&params, dir.path()).unwrap();
    let model = model.to_str().unwrap();
    let doc = json(
        &["model", model, "--free-mib", "80000", "--format", "json"],
        0,
    );
    assert_has_the_published_members(&doc, "model");
    assert_eq!(doc["model"]["architecture"], "llama");
    assert_eq!(doc["fit"]["n_gpu_layers"], 3);
    assert_eq!(doc["fit"]["kv_type"], "f16");
    assert_eq!(doc["free_memory"], "--free-mib");

    let facts = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/facts/seed-laptop.json"
    );
    let plan = json(&["fix", "--facts", facts, "--format", "json"], 1);
    assert_has_the_published_members(&plan, "fix");
    assert_eq!(plan["shell"], "powershell");
    let first = &plan["steps"][0];
    assert!(
        first["command"]
            .as_str()
            .unwrap()
            .starts_with("Start-Process"),
        "{plan}"
    );
    assert_eq!(first["action"], "run");
    // The plan is only shown: --yes talks to the terminal, so it takes no --format json.
    assert_eq!(
        doctor(&["fix", "--yes", "--format", "json"]).status.code(),
        Some(2)
    );
}
