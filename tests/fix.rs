//! `gpu-doctor fix`, through the real binary and a real bash: without --yes nothing runs; with
//! --yes the command runs, with every value from the facts arriving as the one word it was,
//! and the machine is checked again.

use gpu_doctor::probe::process;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// Writes the value of CUDA_VISIBLE_DEVICES (as the facts hold it) into the file CUDA_HOME
/// names: both values come from the environment into the facts, and from the facts into the
/// command through the shell quoting.
const RULE: &str = r#"
[[rule]]
id = "copy-the-value"
category = "host"
severity = "error"
since = "0.1.0"
when = "host.env.cuda_visible_devices != null && host.env.cuda_home != null"
title = "the value is not copied yet"
explain = "A test rule whose fix copies a value into a file."
fix.bash = "printf %s {host.env.cuda_visible_devices} > {host.env.cuda_home}"
fix.powershell = "Set-Content -NoNewline -LiteralPath {host.env.cuda_home} -Value {host.env.cuda_visible_devices}"
docs = "Test."
"#;

/// Everything a shell could make something of.
const TRICKY: &str = "a b'c\"d $(touch PWNED) `touch PWNED2`; e && f | g > h < i * ? ~ \\ C:\\Users\\x\u{e9}\u{1F600}\nsecond line\ttab";

struct Setup {
    dir: tempfile::TempDir,
    rules: PathBuf,
    out: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    fs::write(&rules, RULE).unwrap();
    fs::create_dir_all(dir.path().join("project")).unwrap();
    fs::create_dir_all(dir.path().join("home")).unwrap();
    let out = dir.path().join("out dir with 'quotes'");
    fs::create_dir_all(&out).unwrap();
    let out = out.join("copied value");
    Setup { dir, rules, out }
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn fix(s: &Setup, args: &[&str]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"));
    cmd.arg("fix")
        .args(args)
        .args(["--profile", "quick", "--rules"])
        .arg(&s.rules)
        .current_dir(s.dir.path().join("project"))
        .env("GPU_DOCTOR_PROJECT_DIR", s.dir.path().join("project"))
        .env("HOME", s.dir.path().join("home"))
        .env("GPU_DOCTOR_NO_CONFIG", "1")
        .env("GPU_DOCTOR_NO_CACHE", "1")
        .env("NO_COLOR", "1")
        .env("CUDA_VISIBLE_DEVICES", TRICKY)
        .env("CUDA_HOME", &s.out)
        .env_remove("VIRTUAL_ENV")
        .env_remove("CONDA_PREFIX");
    let out = process::run(&mut cmd, Duration::from_secs(120), 1 << 20).expect("run gpu-doctor");
    Out {
        code: out.code,
        stdout: out.stdout_text(),
        stderr: out.stderr_text(),
    }
}

fn nothing_ran(s: &Setup) {
    assert!(!s.out.exists(), "the fix ran");
    for marker in ["PWNED", "PWNED2"] {
        assert!(
            !s.dir.path().join("project").join(marker).exists(),
            "{marker}"
        );
    }
}

#[test]
fn without_yes_nothing_runs() {
    let s = setup();
    for args in [
        vec![],
        vec!["copy-the-value"],
        vec!["--shell", "powershell"],
    ] {
        let out = fix(&s, &args);
        assert_eq!(out.code, Some(1), "the check's verdict\n{}", out.stderr);
        assert!(out.stdout.contains("Nothing was run."), "{}", out.stdout);
        assert!(out
            .stdout
            .contains("copy-the-value: the value is not copied yet"));
        nothing_ran(&s);
    }
    // The plan shows the command quoted for each shell, on one line.
    let bash = fix(&s, &["copy-the-value"]).stdout;
    assert!(
        bash.contains("$ printf %s $'a b\\'c\"d $(touch PWNED)"),
        "{bash}"
    );
    let ps = fix(&s, &["copy-the-value", "--shell", "powershell"]).stdout;
    assert!(ps.contains("-Value 'a b''c\"d $(touch PWNED)"), "{ps}");
}

#[test]
fn with_yes_the_fix_runs_with_every_value_intact_then_the_machine_is_checked_again() {
    let s = setup();
    let out = fix(
        &s,
        &[
            "copy-the-value",
            "--yes",
            "--trust-rules",
            s.rules.to_str().unwrap(),
        ],
    );
    // The rule still holds after its fix (its condition reads the environment), so the second
    // check says not ready: what matters is that it ran once, exactly, and the check ran again.
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("gpu-doctor: running: printf %s"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("gpu-doctor: checking again"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("Not ready"),
        "the second check's report: {}",
        out.stdout
    );
    let copied = fs::read_to_string(&s.out).expect("the fix wrote the file CUDA_HOME names");
    assert_eq!(copied, TRICKY, "the value arrived as one word, unchanged");
    for marker in ["PWNED", "PWNED2"] {
        assert!(
            !s.dir.path().join("project").join(marker).exists(),
            "{marker} ran"
        );
    }
}

#[test]
fn yes_is_refused_where_it_cannot_run_the_real_commands() {
    let s = setup();
    let facts = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/facts/h100.json");
    for (args, what) in [
        (vec!["--yes", "--facts", facts], "leave out --facts"),
        (vec!["--yes", "--redact"], "leave out --redact"),
        (vec!["copy-the-vlaue"], "Did you mean `copy-the-value`?"),
    ] {
        let out = fix(&s, &args);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(what), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        nothing_ran(&s);
    }
    if which::which("pwsh").is_err() && which::which("powershell").is_err() {
        let out = fix(&s, &["copy-the-value", "--shell", "powershell", "--yes"]);
        assert_eq!(out.code, Some(2), "{}", out.stderr);
        assert!(
            out.stderr.contains("PowerShell (pwsh) is not installed"),
            "{}",
            out.stderr
        );
        nothing_ran(&s);
    }
}

#[test]
fn a_failing_fix_is_reported_and_stops_the_run() {
    let s = setup();
    // CUDA_HOME in a folder that does not exist: the redirection fails.
    let s = Setup {
        out: s.dir.path().join("no such folder").join("f"),
        ..s
    };
    let out = fix(
        &s,
        &[
            "copy-the-value",
            "--yes",
            "--trust-rules",
            s.rules.to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("failed: it ended with exit code 1"),
        "{}",
        out.stderr
    );
}
