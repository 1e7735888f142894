//! `--redact`, through the real binary: over every recorded machine (fixtures/facts/*.json)
//! and every output format, no output holds a user name, a home folder, the host name, a GPU
//! serial number or a UUID that the facts held, and the verdict is the one the real facts
//! give. And `gpu-doctor facts --redact` on this machine records none of them either.
//!
//! The recorded machines were probed as root in /tmp, so each is judged as if its project had
//! been in a user's home on a named workstation: the same facts with the project, a library
//! path and a Windows-style path moved under that home, and that host name.

mod common;

use gpu_doctor::probe::process;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const FORMATS: [&str; 8] = [
    "human", "json", "junit", "github", "sarif", "markdown", "line", "prom",
];
const USER: &str = "alice-gpu";
const HOME: &str = "/home/alice-gpu";
const HOST: &str = "alice-workstation.lab.example.org";

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn doctor(args: &[&str], envs: &[(&str, &Path)]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"));
    cmd.args(args)
        .env("NO_COLOR", "1")
        .env("GPU_DOCTOR_NO_CONFIG", "1")
        .env_remove("GITHUB_STEP_SUMMARY");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = process::run(&mut cmd, Duration::from_secs(120), 16 << 20).expect("run gpu-doctor");
    Out {
        code: out.code,
        stdout: out.stdout_text(),
        stderr: out.stderr_text(),
    }
}

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/facts");
    let mut list: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    list.sort();
    assert!(list.len() >= 5, "{list:?}");
    list
}

/// The recorded facts, with the project and some paths in a user's home on a named host.
fn personal(recorded: &Path) -> Value {
    let text = fs::read_to_string(recorded).unwrap();
    let text = text.replace("/tmp/proj", &format!("{HOME}/work/proj"));
    let mut facts: Value = serde_json::from_str(&text).unwrap();
    facts["host"]["hostname"] = Value::from(HOST);
    facts["python"]["project_dir"] = Value::from(format!("{HOME}/work/proj"));
    facts["host"]["env"]["ld_library_path"] = Value::from(format!("{HOME}/.local/lib:/usr/lib"));
    facts["host"]["env"]["cuda_path"] = Value::from(format!("C:\\Users\\{USER}\\cuda"));
    facts
}

/// What must not be seen after redaction: hex of every UUID and serial the facts hold.
fn secret_hex(facts: &Value) -> Vec<String> {
    let text = facts.to_string().to_ascii_lowercase();
    let mut out = Vec::new();
    for prefix in ["gpu-", "mig-"] {
        for (at, _) in text.match_indices(prefix) {
            let hex: String = text[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
                .collect();
            let hex = hex.trim_end_matches('-');
            if hex.chars().filter(char::is_ascii_hexdigit).count() >= 8 {
                out.push(hex.split('-').next().unwrap_or(hex).to_string());
            }
        }
    }
    let gpus = facts["driver"]["gpus"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    out.extend(
        gpus.iter()
            .filter_map(|g| g["serial"].as_str())
            .filter(|s| s.chars().any(|c| c.is_ascii_digit()))
            .map(str::to_string),
    );
    out.sort();
    out.dedup();
    out
}

/// `word` standing as a whole word in `text` (user and host names can be parts of others).
fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        let in_word = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
        !before.is_some_and(in_word) && !after.is_some_and(in_word)
    })
}

fn assert_clean(what: &str, text: &str, hexes: &[String]) {
    let lower = text.to_ascii_lowercase();
    assert!(!text.contains(HOME), "{what}: home folder\n{text}");
    assert!(
        !text.contains(&format!("Users\\{USER}")),
        "{what}: Windows home\n{text}"
    );
    assert!(!has_word(text, USER), "{what}: user name\n{text}");
    assert!(!has_word(text, HOST), "{what}: host name\n{text}");
    assert!(
        !has_word(text, "alice-workstation"),
        "{what}: short host name\n{text}"
    );
    for hex in hexes {
        assert!(!lower.contains(hex.as_str()), "{what}: {hex}\n{text}");
    }
}

fn rule_ids(json_report: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(json_report).expect("json report");
    let mut ids: Vec<String> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn no_format_of_any_recorded_machine_shows_personal_data() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("step-summary.md");
    for recorded in fixtures() {
        let name = recorded.file_name().unwrap().to_string_lossy().to_string();
        let facts = personal(&recorded);
        let hexes = secret_hex(&facts);
        let file = dir.path().join(&name);
        fs::write(&file, facts.to_string()).unwrap();
        let file = file.to_str().unwrap();

        // The secrets are really there without --redact, so the checks below can fail.
        let plain = doctor(&["check", "--facts", file, "--format", "json"], &[]);
        assert!(
            plain.stdout.contains(HOME) && has_word(&plain.stdout, HOST),
            "{name}"
        );
        for hex in &hexes {
            assert!(
                plain.stdout.to_ascii_lowercase().contains(hex.as_str()),
                "{name}: {hex}"
            );
        }

        let redacted = doctor(
            &["check", "--facts", file, "--format", "json", "--redact"],
            &[],
        );
        assert_eq!(redacted.code, plain.code, "{name}: same verdict");
        assert_eq!(
            rule_ids(&redacted.stdout),
            rule_ids(&plain.stdout),
            "{name}"
        );
        for format in FORMATS {
            let _ = fs::remove_file(&summary);
            let out = doctor(
                &[
                    "check", "--facts", file, "--format", format, "--redact", "-v",
                ],
                &[("GITHUB_STEP_SUMMARY", &summary)],
            );
            assert_eq!(out.code, plain.code, "{name} {format}: {}", out.stderr);
            assert!(!out.stdout.is_empty(), "{name} {format}");
            assert_clean(&format!("{name} {format}"), &out.stdout, &hexes);
            if let Ok(text) = fs::read_to_string(&summary) {
                assert_clean(&format!("{name} {format} summary"), &text, &hexes);
            }
        }
    }
}

/// `facts --redact` on this machine, with a real venv in the project in a home folder.
#[test]
fn recorded_facts_of_this_machine_hold_no_personal_data() {
    let sandbox = common::sandbox();
    let user = "zoe-tester";
    let home = sandbox.root.join("people").join(user);
    let project = home.join("proj");
    common::real_venv(&project.join(".venv"));
    let envs: Vec<(&str, &Path)> = vec![
        ("HOME", &home),
        ("GPU_DOCTOR_PROJECT_DIR", &project),
        ("USER", Path::new(user)),
        ("LOGNAME", Path::new(user)),
    ];
    let plain = doctor(&["facts", "--profile", "quick"], &envs);
    assert_eq!(plain.code, Some(0), "{}", plain.stderr);
    let home_text = home.to_str().unwrap();
    assert!(
        plain.stdout.contains(home_text),
        "the facts name the home folder"
    );
    let facts: Value = serde_json::from_str(&plain.stdout).unwrap();
    let host = facts["host"]["hostname"].as_str().map(str::to_string);

    let out = doctor(&["facts", "--profile", "quick", "--redact"], &envs);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(!out.stdout.contains(home_text), "{}", out.stdout);
    assert!(!has_word(&out.stdout, user), "{}", out.stdout);
    if let Some(h) = host.filter(|h| !h.is_empty()) {
        assert!(!has_word(&out.stdout, &h), "host {h}: {}", out.stdout);
    }
    let redacted: Value = serde_json::from_str(&out.stdout).expect("still a facts document");
    assert_eq!(
        redacted["python"]["environments"][0]["path"].as_str(),
        Some("~/proj/.venv"),
        "paths keep their shape"
    );
    // And the redacted recording is judged like any other.
    let file = sandbox.root.join("redacted.json");
    fs::write(&file, &out.stdout).unwrap();
    let judged = doctor(&["check", "--facts", file.to_str().unwrap()], &[]);
    assert!(matches!(judged.code, Some(0 | 1)), "{}", judged.stderr);
}
