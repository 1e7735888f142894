//! `gpu-doctor exec` and `gpu-doctor init` through the real binary: exec runs real commands
//! (sh) only when the preflight over recorded facts passes and passes their exit code on;
//! init's files load with gpu-doctor's own loader and validate with the real tools
//! (check-jsonschema's GitHub and GitLab schemas, pre-commit), and init never overwrites
//! without --force.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn facts(name: &str) -> String {
    format!("{}/fixtures/facts/{name}.json", env!("CARGO_MANIFEST_DIR"))
}

fn doctor_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"));
    cmd.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("GPU_DOCTOR_CONFIG")
        .env_remove("GPU_DOCTOR_NO_CONFIG")
        .env_remove("GPU_DOCTOR_PROJECT_DIR");
    cmd
}

fn doctor(dir: &Path, args: &[&str]) -> Output {
    doctor_cmd(dir, args).output().expect("gpu-doctor runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn tmp() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(t.path()).unwrap();
    (t, root)
}

// ---------------------------------------------------------------------------------------------
// exec

#[test]
fn exec_runs_the_command_when_ready_and_passes_its_exit_code_on() {
    let (_t, dir) = tmp();
    let h100 = facts("h100");
    let out = doctor(
        &dir,
        &["exec", "--facts", &h100, "--", "sh", "-c", "exit 7"],
    );
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    // Standard output is the command's alone.
    let out = doctor(
        &dir,
        &[
            "exec",
            "--facts",
            &h100,
            "--",
            "sh",
            "-c",
            "printf 'hello %s' \"$0\"",
            "x y",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "hello x y");
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn exec_does_not_run_the_command_when_the_preflight_fails() {
    let (_t, dir) = tmp();
    let marker = dir.join("ran");
    let touch = format!("touch '{}'", marker.display());
    let out = doctor(
        &dir,
        &[
            "exec",
            "--facts",
            &facts("seed-laptop"),
            "--",
            "sh",
            "-c",
            &touch,
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!marker.exists(), "the command ran");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    // The findings, as the human report, on stderr.
    assert!(
        stderr.contains("torch 2.") || stderr.contains("driver 531.14 is too old"),
        "{stderr}"
    );
    assert!(
        stderr.contains("gpu-doctor: not running sh: this machine is not ready (exit code 1)"),
        "{stderr}"
    );

    // A requirement of the configuration blocks it too.
    std::fs::write(
        dir.join("gpu-doctor.toml"),
        "requirements = [\"gpus>=2\"]\n",
    )
    .unwrap();
    let out = doctor(
        &dir,
        &["exec", "--facts", &facts("h100"), "--", "sh", "-c", &touch],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(!marker.exists());
    assert!(text(&out.stderr).contains("Requirement gpus>=2 is not met"));

    // No verdict (a facts file that is not one): 2, and the command does not run.
    let out = doctor(
        &dir,
        &["exec", "--facts", "missing.json", "--", "sh", "-c", &touch],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(!marker.exists());
}

#[test]
fn a_command_that_cannot_start_ends_like_in_a_shell() {
    let (_t, dir) = tmp();
    let h100 = facts("h100");
    let out = doctor(
        &dir,
        &["exec", "--facts", &h100, "--", "no-such-command-xyz"],
    );
    assert_eq!(out.status.code(), Some(127));
    assert!(
        text(&out.stderr).contains("gpu-doctor: no-such-command-xyz: command not found"),
        "{}",
        text(&out.stderr)
    );
    let script = dir.join("not-executable.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    let out = doctor(
        &dir,
        &["exec", "--facts", &h100, "--", script.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(126), "{}", text(&out.stderr));
    // No command at all is a usage error.
    let out = doctor(&dir, &["exec", "--facts", &h100]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn exec_writes_a_report_only_to_a_file() {
    let (_t, dir) = tmp();
    let h100 = facts("h100");
    let out = doctor(
        &dir,
        &["exec", "--facts", &h100, "--format", "json", "--", "true"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("standard output belongs to the command"));
    let report = dir.join("preflight.json");
    let out = doctor(
        &dir,
        &[
            "exec",
            "--facts",
            &h100,
            "--format",
            "json",
            "--output",
            report.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "exit 3",
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    let doc: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(doc["verdict"]["ready"], true);
}

/// On Unix gpu-doctor becomes the command: same process id, and the command starts with the
/// default SIGPIPE disposition and no blocked signal (Rust programs ignore SIGPIPE, and an
/// ignored or blocked signal would survive the exec: `cmd | head` would end differently).
#[cfg(target_os = "linux")]
#[test]
fn exec_replaces_the_process_with_the_command() {
    let (_t, dir) = tmp();
    let h100 = facts("h100");
    let child = doctor_cmd(
        &dir,
        &[
            "exec",
            "--facts",
            &h100,
            "--",
            "sh",
            "-c",
            // Builtins only: a shell blocks every signal for a moment around each fork, so
            // reading its mask through a child (grep) would race with that.
            "echo $$; while read -r l; do case $l in SigBlk:*|SigIgn:*) echo \"$l\";; esac; done < /proc/$$/status",
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some(pid.to_string().as_str()), "{stdout}");
    let mut mask = |name: &str| {
        lines
            .next()
            .and_then(|l| l.strip_prefix(name))
            .map(|m| u64::from_str_radix(m.trim(), 16).unwrap())
            .unwrap_or_else(|| panic!("{stdout}"))
    };
    // /proc lists SigBlk before SigIgn.
    let blocked = mask("SigBlk:");
    let ignored = mask("SigIgn:");
    const SIGPIPE: u64 = 13;
    assert_eq!(
        ignored & (1 << (SIGPIPE - 1)),
        0,
        "SIGPIPE ignored: {stdout}"
    );
    assert_eq!(blocked, 0, "signals blocked: {stdout}");
}

// ---------------------------------------------------------------------------------------------
// init

const OWN: [&str; 3] = [
    "gpu-doctor.toml",
    ".github/workflows/gpu-doctor.yml",
    ".gitlab/gpu-doctor.yml",
];
const SHARED: [&str; 2] = [".pre-commit-config.yaml", ".gitlab-ci.yml"];

/// The venv with check-jsonschema and pre-commit (tests/support/ci-validators.sh).
fn validators() -> PathBuf {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/ci-validators.sh"
    );
    let out = Command::new("bash").arg(script).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    PathBuf::from(text(&out.stdout).trim())
}

fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{what}: {all}");
    all
}

#[test]
fn init_writes_files_that_load_and_validate() {
    let (_t, dir) = tmp();
    let out = doctor(&dir, &["init"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for f in OWN.iter().chain(&SHARED) {
        assert!(dir.join(f).is_file(), "{f} missing");
        assert!(
            text(&out.stdout).contains(&format!("wrote {f}\n")),
            "{}",
            text(&out.stdout)
        );
    }
    // gpu-doctor's own loader takes the starter configuration, and it applies.
    let out = doctor(
        &dir,
        &["check", "--facts", &facts("h100"), "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["config"], "gpu-doctor.toml");

    let venv = validators();
    let cjs = venv.join("bin/check-jsonschema");
    run_ok(
        Command::new(&cjs)
            .args(["--builtin-schema", "vendor.github-workflows"])
            .arg(dir.join(".github/workflows/gpu-doctor.yml")),
        "the GitHub workflow against SchemaStore's schema",
    );
    run_ok(
        Command::new(&cjs)
            .args(["--builtin-schema", "vendor.gitlab-ci"])
            .arg(dir.join(".gitlab/gpu-doctor.yml"))
            .arg(dir.join(".gitlab-ci.yml")),
        "the GitLab CI files against SchemaStore's schema",
    );
    run_ok(
        Command::new(venv.join("bin/pre-commit"))
            .args(["validate-config", ".pre-commit-config.yaml"])
            .current_dir(&dir),
        "pre-commit validate-config",
    );
}

/// The pre-commit hook init writes runs this gpu-doctor and fails the commit exactly when
/// `gpu-doctor check --profile quick` fails here.
#[test]
fn the_pre_commit_hook_runs_gpu_doctor() {
    let (_t, dir) = tmp();
    let out = doctor(&dir, &["init", "--skip", "github", "--skip", "gitlab"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    run_ok(
        Command::new("git").arg("init").arg("-q").arg(&dir),
        "git init",
    );
    run_ok(
        Command::new("git").args(["add", "."]).current_dir(&dir),
        "git add",
    );
    let direct = doctor(&dir, &["check", "--profile", "quick"]);
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_gpu-doctor"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let venv = validators();
    let out = Command::new(venv.join("bin/pre-commit"))
        .args(["run", "gpu-doctor", "--all-files"])
        .current_dir(&dir)
        .env("PATH", path)
        .env("PRE_COMMIT_HOME", dir.join(".pre-commit-home"))
        .env("NO_COLOR", "1")
        .env_remove("GPU_DOCTOR_CONFIG")
        .env_remove("GPU_DOCTOR_NO_CONFIG")
        .output()
        .unwrap();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(all.contains("gpu-doctor (quick)"), "{all}");
    let expect_pass = direct.status.success();
    assert_eq!(out.status.success(), expect_pass, "{all}");
    if !expect_pass {
        assert!(
            all.contains(&format!("exit code: {}", direct.status.code().unwrap())),
            "{all}"
        );
    }
}

#[test]
fn init_never_overwrites_without_force_and_never_clobbers_shared_files() {
    let (_t, dir) = tmp();
    assert_eq!(doctor(&dir, &["init"]).status.code(), Some(0));
    std::fs::write(dir.join("gpu-doctor.toml"), "fail_on = \"warn\"\n").unwrap();
    std::fs::remove_file(dir.join(".gitlab/gpu-doctor.yml")).unwrap();

    // Refused, and nothing is written: not even the missing file.
    let out = doctor(&dir, &["init"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("not overwriting"), "{stderr}");
    assert!(stderr.contains("nothing was written"), "{stderr}");
    assert!(stderr.contains("gpu-doctor.toml"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.join("gpu-doctor.toml")).unwrap(),
        "fail_on = \"warn\"\n"
    );
    assert!(!dir.join(".gitlab/gpu-doctor.yml").exists());

    // --force replaces gpu-doctor's own files, never the shared ones.
    std::fs::write(dir.join(".gitlab-ci.yml"), "stages: [build]\n").unwrap();
    std::fs::write(dir.join(".pre-commit-config.yaml"), "repos: []\n").unwrap();
    let out = doctor(&dir, &["init", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(std::fs::read_to_string(dir.join("gpu-doctor.toml"))
        .unwrap()
        .starts_with("# gpu-doctor's configuration"));
    assert!(dir.join(".gitlab/gpu-doctor.yml").is_file());
    assert_eq!(
        std::fs::read_to_string(dir.join(".gitlab-ci.yml")).unwrap(),
        "stages: [build]\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(".pre-commit-config.yaml")).unwrap(),
        "repos: []\n"
    );
    assert!(
        stdout.contains("  - local: .gitlab/gpu-doctor.yml"),
        "{stdout}"
    );
    assert!(
        stdout.contains("entry: gpu-doctor check --profile quick"),
        "{stdout}"
    );
    // No temporary files are left behind.
    let leftovers: Vec<_> = walk(&dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn init_refuses_beside_a_pyproject_configuration_and_skips_pieces() {
    let (_t, dir) = tmp();
    std::fs::write(
        dir.join("pyproject.toml"),
        "[project]\nname = \"demo\"\n\n[tool.gpu-doctor]\nfail_on = \"warn\"\n",
    )
    .unwrap();
    let out = doctor(&dir, &["init"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("pyproject.toml"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.join("gpu-doctor.toml").exists());

    let (_t2, other) = tmp();
    let out = doctor(
        &other,
        &[
            "init",
            "--dir",
            "proj",
            "--skip",
            "github",
            "--skip",
            "gitlab",
            "--skip",
            "pre-commit",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let written: Vec<String> = walk(&other.join("proj"))
        .iter()
        .map(|p| {
            p.strip_prefix(other.join("proj"))
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(written, ["gpu-doctor.toml"]);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}
