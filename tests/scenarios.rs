//! Scenario fixtures: each one is a real machine's recording (fixtures/facts/*.json) with only
//! the facts that differ in that failure mode changed, and the findings the doctor must give.
//!
//! A scenario file (fixtures/scenarios/NAME.toml) names its base recording, the changes as JSON
//! pointers, and the expected exit code and findings: rule id, severity, and text the bash and
//! PowerShell fixes must contain. Every scenario also checks that its base recording alone does
//! not raise the expected rules, so the test proves the change is what triggers them.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Debug)]
struct Expected {
    rule: String,
    severity: String,
    subject: Option<String>,
    bash: Option<String>,
    powershell: Option<String>,
    title: Option<String>,
}

struct Scenario {
    name: String,
    base: String,
    changes: Vec<(String, Value)>,
    exit_code: i32,
    findings: Vec<Expected>,
    absent: Vec<String>,
    extra_args: Vec<String>,
    /// Text the human report must contain.
    human: Vec<String>,
}

fn load(path: &Path) -> Scenario {
    let text = std::fs::read_to_string(path).unwrap();
    let doc: toml::Table =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let str_of = |t: &toml::Table, k: &str| t.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let changes = doc
        .get("change")
        .and_then(|c| c.as_array())
        .map(|a| {
            a.iter()
                .map(|c| {
                    let t = c.as_table().expect("[[change]] is a table");
                    let pointer = str_of(t, "path").expect("change.path");
                    let value = if t.get("null").and_then(|v| v.as_bool()) == Some(true) {
                        Value::Null
                    } else {
                        serde_json::to_value(t.get("value").expect("change.value or null = true"))
                            .unwrap()
                    };
                    (pointer, value)
                })
                .collect()
        })
        .unwrap_or_default();
    let expect = doc
        .get("expect")
        .and_then(|e| e.as_table())
        .expect("[expect]");
    let findings = expect
        .get("findings")
        .and_then(|f| f.as_array())
        .map(|a| {
            a.iter()
                .map(|f| {
                    let t = f.as_table().unwrap();
                    Expected {
                        rule: str_of(t, "rule").expect("finding.rule"),
                        severity: str_of(t, "severity").expect("finding.severity"),
                        subject: str_of(t, "subject"),
                        bash: str_of(t, "bash"),
                        powershell: str_of(t, "powershell"),
                        title: str_of(t, "title"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let list = |t: &toml::Table, k: &str| -> Vec<String> {
        t.get(k)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    Scenario {
        name: path.file_stem().unwrap().to_string_lossy().into_owned(),
        base: str_of(&doc, "base").expect("base"),
        changes,
        exit_code: expect
            .get("exit_code")
            .and_then(|v| v.as_integer())
            .expect("expect.exit_code") as i32,
        findings,
        absent: list(expect, "absent"),
        extra_args: list(&doc, "args"),
        human: list(expect, "human"),
    }
}

/// Set `value` at a JSON pointer, creating objects on the way and growing arrays by one.
fn set(doc: &mut Value, pointer: &str, value: Value) {
    let mut cur = doc;
    let parts: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        cur = match cur {
            Value::Object(map) => {
                if last {
                    map.insert(part.clone(), value);
                    return;
                }
                map.entry(part.clone())
                    .or_insert(Value::Object(Default::default()))
            }
            Value::Array(arr) => {
                let idx: usize = part
                    .parse()
                    .unwrap_or_else(|_| panic!("{pointer}: {part} is not an index"));
                if idx == arr.len() {
                    arr.push(Value::Null);
                }
                if last {
                    arr[idx] = value;
                    return;
                }
                &mut arr[idx]
            }
            _ => panic!("{pointer}: cannot descend into a scalar at {part}"),
        };
    }
}

fn judge(facts: &Value, format: &str, extra: &[String]) -> (i32, Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("facts.json");
    std::fs::write(&path, serde_json::to_vec(facts).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"))
        .args([
            "check",
            "--facts",
            path.to_str().unwrap(),
            "--format",
            format,
        ])
        .args(extra)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let doc = if format == "json" {
        serde_json::from_str(&stdout).unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (
        out.status.code().unwrap_or(-1),
        doc,
        format!("{stdout}\n{stderr}"),
    )
}

fn rules_in(doc: &Value) -> Vec<&str> {
    doc["findings"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f["rule"].as_str()).collect())
        .unwrap_or_default()
}

fn check_scenario(s: &Scenario) {
    let base_path = root().join("fixtures/facts").join(&s.base);
    let base: Value = serde_json::from_slice(&std::fs::read(&base_path).unwrap()).unwrap();
    let (_, base_doc, _) = judge(&base, "json", &s.extra_args);
    for e in &s.findings {
        assert!(
            !rules_in(&base_doc).contains(&e.rule.as_str()),
            "{}: the base recording {} already raises {}: the scenario proves nothing",
            s.name,
            s.base,
            e.rule
        );
    }

    let mut facts = base;
    for (pointer, value) in &s.changes {
        set(&mut facts, pointer, value.clone());
    }
    let (code, doc, raw) = judge(&facts, "json", &s.extra_args);
    assert_eq!(code, s.exit_code, "{}: exit code\n{raw}", s.name);
    let (human_code, _, human) = judge(&facts, "human", &s.extra_args);
    assert_eq!(
        human_code, code,
        "{}: human and json disagree on the exit code\n{human}",
        s.name
    );

    let findings = doc["findings"].as_array().cloned().unwrap_or_default();
    for e in &s.findings {
        let hit = findings.iter().find(|f| {
            f["rule"] == e.rule.as_str()
                && e.subject.as_ref().is_none_or(|want| {
                    f["subject"]
                        .as_str()
                        .is_some_and(|s| s.contains(want.as_str()))
                })
        });
        let f = hit.unwrap_or_else(|| {
            panic!(
                "{}: expected finding {} not raised; got {:?}\n{raw}",
                s.name,
                e.rule,
                rules_in(&doc)
            )
        });
        assert_eq!(
            f["severity"],
            e.severity.as_str(),
            "{}: severity of {}",
            s.name,
            e.rule
        );
        if let Some(title) = &e.title {
            assert!(
                f["title"].as_str().unwrap_or("").contains(title.as_str()),
                "{}: title {:?}",
                s.name,
                f["title"]
            );
        }
        for (shell, want) in [("bash", &e.bash), ("powershell", &e.powershell)] {
            let want = want.as_ref().unwrap_or_else(|| {
                panic!(
                    "{}: {} must state its {shell} fix (the command, or \"none\")",
                    s.name, e.rule
                )
            });
            if want == "none" {
                assert!(
                    f["fix"][shell].is_null(),
                    "{}: {} has a {shell} fix {:?}",
                    s.name,
                    e.rule,
                    f["fix"][shell]
                );
                continue;
            }
            let got = f["fix"][shell].as_str().unwrap_or("");
            assert!(
                got.contains(want.as_str()),
                "{}: {} fix of {} is {got:?}, expected it to contain {want:?}",
                s.name,
                shell,
                e.rule
            );
        }
        assert!(
            human.contains(f["title"].as_str().unwrap()),
            "{}: the human report shows the title of {}",
            s.name,
            e.rule
        );
    }
    for text in &s.human {
        assert!(
            human.contains(text.as_str()),
            "{}: the human report lacks {text:?}\n{human}",
            s.name
        );
    }
    for absent in &s.absent {
        assert!(
            !rules_in(&doc).contains(&absent.as_str()),
            "{}: {} must not fire",
            s.name,
            absent
        );
    }
}

#[test]
fn every_scenario_gives_its_findings_fixes_and_exit_code() {
    let dir = root().join("fixtures/scenarios");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no scenarios in {}", dir.display());
    for path in &paths {
        check_scenario(&load(path));
    }
    eprintln!("{} scenarios checked", paths.len());
}

#[test]
fn every_recording_replays_with_a_verdict() {
    let dir = root().join("fixtures/facts");
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let facts: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let (code, doc, raw) = judge(&facts, "json", &[]);
        assert!(
            code == 0 || code == 1,
            "{}: no verdict\n{raw}",
            path.display()
        );
        assert_eq!(doc["verdict"]["exit_code"].as_i64(), Some(i64::from(code)));
    }
}

/// Real recordings of failure modes and healthy states, with the verdict each must get.
#[test]
fn recorded_machines_get_their_verdicts() {
    let cases: &[(&str, i32, &[&str])] = &[
        ("h100.json", 0, &[]),
        ("h100-full.json", 0, &[]),
        ("h100-quick.json", 0, &[]),
        // CUDA_VISIBLE_DEVICES= on the H100: cuInit said CUDA_ERROR_NO_DEVICE.
        (
            "h100-cuda-visible-empty.json",
            1,
            &["cuda-visible-devices-hides-all"],
        ),
        // CUDA_VISIBLE_DEVICES=GPU-1a0ddb37-d (a UUID prefix): the H100 stays visible.
        ("h100-cuda-visible-uuid.json", 0, &[]),
        // The H100 with /opt/torch/.venv (torch 2.11.0+cu130) and a project .venv holding a
        // CPU-only llama-cpp-python built on Debian 12: the seed's silent fallback.
        (
            "h100-python.json",
            1,
            &["llama-cpp-cpu-build", "python-envs-none-complete"],
        ),
        ("h100-python-quick.json", 1, &["llama-cpp-cpu-build"]),
        // The development machine: no GPU, no driver, in a container.
        (
            "debian12-no-gpu.json",
            1,
            &["container-without-nvidia-driver"],
        ),
    ];
    for (file, code, rules) in cases {
        let facts: Value = serde_json::from_slice(
            &std::fs::read(root().join("fixtures/facts").join(file)).unwrap(),
        )
        .unwrap();
        let (got, doc, raw) = judge(&facts, "json", &[]);
        assert_eq!(got, *code, "{file}\n{raw}");
        let raised = rules_in(&doc);
        for rule in *rules {
            assert!(
                raised.contains(rule),
                "{file}: expected {rule}, got {raised:?}"
            );
        }
        if *code == 0 {
            let errors: Vec<_> = doc["findings"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["severity"] == "error")
                .collect();
            assert!(errors.is_empty(), "{file}: {errors:?}");
        }
    }
}

/// On the H100, /opt/torch/.venv's own interpreter reported torch 2.11.0+cu130 using the GPU.
#[test]
fn the_recorded_torch_venv_uses_the_h100() {
    let facts: Value = serde_json::from_slice(
        &std::fs::read(root().join("fixtures/facts/h100-python.json")).unwrap(),
    )
    .unwrap();
    let envs = facts["python"]["environments"].as_array().unwrap();
    let torch_env = envs
        .iter()
        .find(|e| e["name"] == "/opt/torch/.venv")
        .expect("torch venv discovered");
    assert_eq!(torch_env["torch"]["version"], "2.11.0+cu130");
    let live = &torch_env["live"]["torch"];
    assert_eq!(live["cuda_available"], true);
    assert_eq!(live["devices"][0]["name"], "NVIDIA H100 80GB HBM3");
    assert_eq!(live["devices"][0]["tensor_ok"], true);
    let (_, doc, raw) = judge(&facts, "json", &[]);
    let torch_findings: Vec<_> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"].as_str().unwrap_or("").starts_with("torch-"))
        .collect();
    assert!(torch_findings.is_empty(), "{raw}");
}
