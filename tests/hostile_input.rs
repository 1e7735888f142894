//! Hostile and odd input from the machine and the repository, through the real binary
//! (issue 13, items 1-5): an environment variable that is not UTF-8, `--output` naming a
//! device, a symbolic link or a FIFO, a repository rule file whose fix hides a command behind
//! an escape sequence, a repository rule that overrides a built-in one, and escape sequences in
//! a venv's name and in GGUF metadata.

mod common;

use gpu_doctor::gguf::writer::{write_edited, ModelParams};
use gpu_doctor::gguf::Value;
use gpu_doctor::probe::process;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const FACTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/facts/h100-python.json"
);

/// ESC [8m: "conceal", which hides whatever follows on a terminal.
const CONCEAL: &str = "\u{1b}[8m";

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// The doctor, in `dir`, with no configuration but the one `dir` holds when `config` is true,
/// no cache and no colour.
fn doctor_in(dir: &Path, args: &[&OsStr], env: &[(&OsStr, &OsStr)], config: bool) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"));
    cmd.args(args)
        .current_dir(dir)
        .env("GPU_DOCTOR_PROJECT_DIR", dir)
        .env("HOME", dir)
        .env("GPU_DOCTOR_NO_CACHE", "1")
        .env("NO_COLOR", "1")
        .env_remove("VIRTUAL_ENV")
        .env_remove("CONDA_PREFIX")
        .env_remove("GPU_DOCTOR_CONFIG");
    if !config {
        cmd.env("GPU_DOCTOR_NO_CONFIG", "1");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = process::run(&mut cmd, Duration::from_secs(120), 16 << 20).expect("run gpu-doctor");
    Out {
        code: out.code,
        stdout: out.stdout_text(),
        stderr: out.stderr_text(),
    }
}

fn doctor(dir: &Path, args: &[&str]) -> Out {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    doctor_in(dir, &args, &[], false)
}

fn bytes(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

// ---------------------------------------------------------------------------------------------
// 1. environment variables that are not UTF-8

#[test]
fn a_variable_that_is_not_utf8_is_read_lossily_and_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    // bash sets OLDPWD to the folder left, whatever its name's encoding (Latin-1 here).
    let latin1_folder = dir.path().join(bytes(b"caf\xe9"));
    fs::create_dir(&latin1_folder).unwrap();
    let args = [
        OsStr::new("check"),
        OsStr::new("--profile"),
        OsStr::new("quick"),
        OsStr::new("--format"),
        OsStr::new("json"),
    ];
    for (name, value) in [
        (bytes(b"FOO"), bytes(b"\xff")),
        (OsStr::new("OLDPWD"), latin1_folder.as_os_str()),
        (bytes(b"N\xffME"), OsStr::new("x")),
    ] {
        let out = doctor_in(dir.path(), &args, &[(name, value)], false);
        assert!(
            matches!(out.code, Some(0 | 1)),
            "{name:?}={value:?}: a verdict, not a panic (101)\n{}",
            out.stderr
        );
        let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("a JSON report");
        assert!(doc["verdict"]["exit_code"].is_number());
    }
    // A variable the facts show keeps its readable part, the invalid byte as U+FFFD.
    let out = doctor_in(
        dir.path(),
        &args,
        &[(OsStr::new("CUDA_HOME"), bytes(b"/opt/cuda-\xe9"))],
        false,
    );
    assert!(matches!(out.code, Some(0 | 1)), "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        doc["facts"]["host"]["env"]["cuda_home"],
        "/opt/cuda-\u{fffd}"
    );
}

#[test]
fn the_programs_the_doctor_starts_get_a_variable_that_is_not_utf8_byte_for_byte() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let venv = root.join(".venv");
    common::real_venv(&venv);
    // The environment's interpreter (run by the standard profile) records what it was given.
    let seen = root.join("seen");
    let bin = venv.join("bin");
    for name in ["python", "python3"] {
        let _ = fs::remove_file(bin.join(name));
    }
    let script = format!("#!/bin/sh\nprintf %s \"$ODD\" > '{}'\n", seen.display());
    fs::write(bin.join("python3"), script).unwrap();
    fs::set_permissions(bin.join("python3"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("python3", bin.join("python")).unwrap();
    let args: Vec<&OsStr> = ["check", "--profile", "standard", "--format", "json"]
        .iter()
        .map(OsStr::new)
        .collect();
    let out = doctor_in(
        &root,
        &args,
        &[(OsStr::new("ODD"), bytes(b"caf\xe9"))],
        false,
    );
    assert!(matches!(out.code, Some(0 | 1)), "{}", out.stderr);
    assert_eq!(
        fs::read(&seen).expect("the interpreter ran"),
        b"caf\xe9",
        "the child got the exact bytes, not U+FFFD"
    );
}

#[test]
fn a_flag_variable_that_is_not_utf8_is_named_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = doctor_in(
        dir.path(),
        &[
            OsStr::new("check"),
            OsStr::new("--profile"),
            OsStr::new("quick"),
        ],
        &[(OsStr::new("GPU_DOCTOR_CONFIG"), bytes(b"/x/\xff.toml"))],
        false,
    );
    // A path may be any bytes: it is read, found missing, and named.
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    // A node name must be text: the variable is named, not "invalid UTF-8 in the arguments".
    let out = doctor_in(
        dir.path(),
        &[OsStr::new("slurm-healthcheck")],
        &[(OsStr::new("SLURMD_NODENAME"), bytes(b"node\xff"))],
        false,
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("SLURMD_NODENAME"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------------------------
// 2. --output: devices, FIFOs and symbolic links are written through, never replaced

/// Make a character device node (`mknod PATH c MAJOR MINOR`); false (and why, on stderr) when
/// this machine refuses, as an unprivileged user or a container without CAP_MKNOD would.
fn mknod(path: &Path, major: u32, minor: u32) -> bool {
    let made = Command::new("mknod")
        .arg(path)
        .args(["c", &major.to_string(), &minor.to_string()])
        .output();
    match made {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "SKIPPED: mknod is refused here ({}); the device-node cases need root",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("SKIPPED: mknod cannot run here ({e})");
            false
        }
    }
}

fn is_char_device(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_char_device())
}

fn check_to(dir: &Path, output: &Path) -> Out {
    doctor(
        dir,
        &[
            "check",
            "--facts",
            FACTS,
            "--format",
            "json",
            "--output",
            output.to_str().unwrap(),
        ],
    )
}

#[test]
fn a_device_node_as_output_is_written_into_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let null = dir.path().join("null");
    let full = dir.path().join("full");
    if !mknod(&null, 1, 3) || !mknod(&full, 1, 7) {
        return;
    }
    let out = check_to(dir.path(), &null);
    assert!(matches!(out.code, Some(0 | 1)), "{}", out.stderr);
    assert!(is_char_device(&null), "the null device was replaced");
    // A device that refuses the bytes: exit 2 saying why, the device left as it was.
    let out = check_to(dir.path(), &full);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("full"), "{}", out.stderr);
    assert!(
        out.stderr.to_lowercase().contains("no space left"),
        "{}",
        out.stderr
    );
    assert!(is_char_device(&full), "the full device was replaced");
    // Nothing else was left in the folder (no temporary file).
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn a_symbolic_link_as_output_stays_and_its_target_gets_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("report.json");
    fs::write(&target, "old").unwrap();
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = check_to(dir.path(), &link);
    assert!(matches!(out.code, Some(0 | 1)), "{}", out.stderr);
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was replaced by a file"
    );
    let report = fs::read_to_string(&target).unwrap();
    assert!(report.contains("\"verdict\""), "{report}");
}

#[test]
fn a_descriptor_as_output_is_written_where_it_points_keeping_an_appended_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    fs::write(&log, "earlier lines\n").unwrap();
    // `gpu-doctor check --output /proc/self/fd/1 >> log` (the real /dev/stdout is not touched).
    let appending = fs::OpenOptions::new().append(true).open(&log).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"));
    cmd.args(["check", "--facts", FACTS, "--format", "line"])
        .args(["--output", "/proc/self/fd/1"])
        .env("GPU_DOCTOR_NO_CONFIG", "1")
        .stdout(appending);
    let status = cmd.status().unwrap();
    assert!(matches!(status.code(), Some(0 | 1)), "{status}");
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.starts_with("earlier lines\n"),
        "the log was cut: {text}"
    );
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(fs::symlink_metadata(&log).unwrap().file_type().is_file());
}

/// A `cat` reading a FIFO, killed when dropped (should the FIFO never be written).
struct Reader(Child);

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn a_fifo_as_output_is_written_into_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("report.fifo");
    mkfifo(&fifo);
    let mut reader = Reader(
        Command::new("cat")
            .arg(&fifo)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let out = check_to(dir.path(), &fifo);
    assert!(matches!(out.code, Some(0 | 1)), "{}", out.stderr);
    assert!(
        fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(),
        "the FIFO was replaced by a file"
    );
    let mut read = String::new();
    use std::io::Read as _;
    reader
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut read)
        .unwrap();
    assert!(read.contains("\"verdict\""), "{read}");
    // Nobody reading: a clear exit 2 at once, not a wait for a reader.
    let out = check_to(dir.path(), &fifo);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("nothing reads"), "{}", out.stderr);
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
}

// ---------------------------------------------------------------------------------------------
// 3. a repository's rule file cannot make `fix --yes` run a command, nor hide one

/// A project whose gpu-doctor.toml names a rule file that always fires, with a fix that
/// creates `marker` and hides that behind ESC [2K (erase the line) and a carriage return.
fn hostile_fix_project(marker: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fix = format!(
        "touch '{}'; true \\u001b[2K\\r  $ python3 -m pip install --upgrade pip",
        marker.display()
    );
    common::write(
        &dir.path().join("ci/rules.toml"),
        &format!(
            "[[rule]]\nid = \"repo-rule\"\ncategory = \"host\"\nseverity = \"error\"\n\
             since = \"0.1.0\"\nwhen = \"true\"\ntitle = \"pip is old\"\n\
             explain = \"Upgrade pip.\"\ndocs = \"d\"\nfix.bash = \"{fix}\"\n"
        ),
    );
    common::write(
        &dir.path().join("gpu-doctor.toml"),
        "rules = [\"ci/rules.toml\"]\n",
    );
    dir
}

#[test]
fn fix_yes_runs_no_command_of_a_repository_rule_file_and_shows_its_escapes() {
    let markers = tempfile::tempdir().unwrap();
    let marker = markers.path().join("PWNED");
    let project = hostile_fix_project(&marker);
    let args: Vec<&OsStr> = ["fix", "--yes", "--profile", "quick"]
        .iter()
        .map(OsStr::new)
        .collect();
    let out = doctor_in(project.path(), &args, &[], true);
    assert!(!marker.exists(), "the repository's fix ran\n{}", out.stdout);
    assert!(!out.stdout.contains('\u{1b}'), "{}", out.stdout);
    assert!(
        out.stdout.contains("true \\u{1b}[2K\\r  $ python3"),
        "the command is shown as the bytes it is\n{}",
        out.stdout
    );
    assert!(out.stdout.contains("--trust-rules"), "{}", out.stdout);
    // `explain` shows the same command written out.
    let explain: Vec<&OsStr> = ["explain", "repo-rule"].iter().map(OsStr::new).collect();
    let out = doctor_in(project.path(), &explain, &[], true);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(!out.stdout.contains('\u{1b}'), "{}", out.stdout);
    assert!(out.stdout.contains("\\u{1b}[2K\\r"), "{}", out.stdout);

    // Trusted by the user for this file: it runs.
    let args: Vec<&OsStr> = [
        "fix",
        "--yes",
        "--profile",
        "quick",
        "--trust-rules",
        "ci/rules.toml",
        "repo-rule",
    ]
    .iter()
    .map(OsStr::new)
    .collect();
    let out = doctor_in(project.path(), &args, &[], true);
    assert!(marker.exists(), "a trusted file's fix runs\n{}", out.stderr);
    assert!(!out.stderr.contains('\u{1b}'), "{}", out.stderr);
}

// ---------------------------------------------------------------------------------------------
// 4. an override of a built-in rule is shown in every format

#[test]
fn an_override_of_a_built_in_rule_is_shown_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("quiet.toml");
    fs::write(
        &rules,
        "# silences the driver check\n[[rule]]\nid = \"nvidia-gpu-without-driver\"\n\
         override = true\ncategory = \"host\"\nseverity = \"info\"\nsince = \"0.1.0\"\n\
         when = \"false\"\ntitle = \"t\"\nexplain = \"e\"\ndocs = \"d\"\nfix.none = \"n\"\n",
    )
    .unwrap();
    let by = format!("{}:3", rules.display());
    for format in ["human", "json", "markdown", "github", "junit", "sarif"] {
        let out = doctor(
            dir.path(),
            &[
                "check",
                "--facts",
                FACTS,
                "--rules",
                rules.to_str().unwrap(),
                "--format",
                format,
            ],
        );
        assert!(matches!(out.code, Some(0 | 1)), "{format}: {}", out.stderr);
        assert!(
            out.stdout.contains("nvidia-gpu-without-driver") && out.stdout.contains(&by),
            "{format}: the override and its place ({by}) are shown\n{}",
            out.stdout
        );
        assert!(
            out.stdout.contains("rules/core.toml:"),
            "{format}: the built-in rule's place\n{}",
            out.stdout
        );
    }
    let line = doctor(
        dir.path(),
        &[
            "check",
            "--facts",
            FACTS,
            "--rules",
            rules.to_str().unwrap(),
            "--format",
            "line",
        ],
    );
    assert!(
        line.stdout.contains("1 built-in rule(s) overridden"),
        "{}",
        line.stdout
    );
    // `exec` on a ready machine says so before it runs the command.
    let ready = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/facts/h100.json");
    let exec = doctor(
        dir.path(),
        &[
            "exec",
            "--facts",
            ready,
            "--rules",
            rules.to_str().unwrap(),
            "--",
            "true",
        ],
    );
    assert_eq!(exec.code, Some(0), "{}", exec.stderr);
    assert!(exec.stderr.contains(&by), "exec: {}", exec.stderr);
}

// ---------------------------------------------------------------------------------------------
// 5. escape sequences from the machine are shown, not obeyed

#[test]
fn an_escape_sequence_in_a_venv_name_is_written_out() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let venv: PathBuf = root.join(format!(".venv{CONCEAL}"));
    common::real_venv(&venv);
    for format in ["human", "markdown", "github"] {
        let args: Vec<OsString> = ["check", "--profile", "quick", "--format", format]
            .iter()
            .map(OsString::from)
            .collect();
        let args: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
        let out = doctor_in(
            &root,
            &args,
            &[(OsStr::new("VIRTUAL_ENV"), venv.as_os_str())],
            false,
        );
        assert!(matches!(out.code, Some(0 | 1)), "{format}: {}", out.stderr);
        assert!(
            !out.stdout.contains('\u{1b}'),
            "{format}: a raw ESC reached the output\n{}",
            out.stdout
        );
        if format == "human" {
            assert!(
                out.stdout.contains(".venv\\u{1b}[8m"),
                "the venv is named, its ESC written out\n{}",
                out.stdout
            );
        }
    }
}

#[test]
fn an_escape_sequence_in_gguf_metadata_is_written_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.gguf");
    let mut file = fs::File::create(&path).unwrap();
    let architecture = format!("llama{CONCEAL}\r\nFAKE LINE");
    write_edited(
        &ModelParams::placement(),
        |metadata| {
            for (key, value) in metadata.iter_mut() {
                if key == "general.architecture" {
                    *value = Value::String(architecture.clone());
                }
            }
        },
        &mut file,
    )
    .unwrap();
    drop(file);
    let out = doctor(
        dir.path(),
        &["model", path.to_str().unwrap(), "--free-mib", "8192"],
    );
    assert_eq!(out.code, Some(0), "the model is read\n{}", out.stderr);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        !all.contains('\u{1b}'),
        "a raw ESC reached the output\n{all}"
    );
    assert!(
        !all.lines().any(|l| l.starts_with("FAKE LINE")),
        "metadata started a line of its own\n{all}"
    );
    assert!(
        out.stdout.contains("llama\\u{1b}[8m\\r\\nFAKE LINE"),
        "the architecture is shown, written out\n{}",
        out.stdout
    );
}
