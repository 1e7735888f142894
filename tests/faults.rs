//! Fault injection through the real binary: a doctor runs on broken machines, so it must stay
//! up, say what it saw, and never make things worse.
//!
//! Every fault is real: interpreters that hang, segfault or flood their output are shell
//! scripts in place of a real venv's `bin/python3`; nvidia-smi and nvcc stand-ins sit on PATH;
//! folders are made unreadable with chmod (and the doctor run without CAP_DAC_OVERRIDE when the
//! tests run as root); GGUF files are the writer's real model, cut short or patched to lie.
//! Each test asserts the same four things: the run ends in bounded time (every probe within
//! its deadline, the whole run within the longest of them, which the facts record), a finding
//! names what happened (rule id and text), the exit code is the one design.md §5 gives for the
//! findings, and nothing panicked. docs/reliability.md is the table of these faults; the last
//! test here fails when a test that table names does not exist.
//!
//! The Python live tier's deadlines are shortened tenfold with the test-only
//! GPU_DOCTOR_TEST_DEADLINE_SCALE (40 s per interpreter becomes 4 s).
#![cfg(target_os = "linux")]

use serde_json::Value;
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
mod common;
use common::{real_venv, sandbox, write, Sandbox};

/// The scale the tests give GPU_DOCTOR_TEST_DEADLINE_SCALE.
const SCALE: &str = "0.1";
/// The live tier's deadline per interpreter under that scale (40 s x 0.1).
const SCALED_INTERPRETER_DEADLINE: &str = "4.0 s";
/// A run that takes longer than this is killed and the test fails: the doctor hung.
const RUN_LIMIT: Duration = Duration::from_secs(90);
/// What a run may take beyond its longest probe deadline: rendering, a loaded 2-core machine.
const SLACK: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// running the doctor

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Run {
    /// The JSON report (runs made with `--format json`).
    fn doc(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }
}

/// How the doctor is started: in the project, with a private HOME, the test deadline scale,
/// and none of the variables of the machine running the tests that steer what it finds.
fn command(sb: &Sandbox, args: &[&str], vars: &[(&str, OsString)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"));
    cmd.args(args)
        .current_dir(&sb.project)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &sb.home)
        .env("GPU_DOCTOR_PROJECT_DIR", &sb.project)
        .env("GPU_DOCTOR_TEST_DEADLINE_SCALE", SCALE)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

fn doctor(sb: &Sandbox, args: &[&str], vars: &[(&str, OsString)]) -> Run {
    run_command(command(sb, args, vars))
}

fn run_command(mut cmd: Command) -> Run {
    let start = Instant::now();
    let mut child = cmd.spawn().expect("gpu-doctor starts");
    let (stdout, stderr) = drain(&mut child);
    let status = wait_bounded(&mut child, start + RUN_LIMIT);
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: join(stdout),
        stderr: join(stderr),
        elapsed: start.elapsed(),
    };
    assert!(
        !run.stderr.contains("panicked at"),
        "gpu-doctor panicked:\n{}",
        run.stderr
    );
    run
}

type Drain = std::thread::JoinHandle<String>;

/// Read both pipes on threads, so a large report never blocks the doctor.
fn drain(child: &mut Child) -> (Drain, Drain) {
    fn reader(mut r: impl Read + Send + 'static) -> Drain {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = r.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    }
    (
        reader(child.stdout.take().unwrap()),
        reader(child.stderr.take().unwrap()),
    )
}

fn join(d: Drain) -> String {
    d.join().unwrap_or_default()
}

fn wait_bounded(child: &mut Child, until: Instant) -> std::process::ExitStatus {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("gpu-doctor did not finish within {RUN_LIMIT:?}: it hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------------
// the four properties

/// Every probe ended within its deadline and the run within the longest one (plus slack):
/// probes run in parallel, so the sum of the deadlines is already far more than enough.
fn assert_bounded(run: &Run, doc: &Value) {
    let probes = doc["facts"]["probes"].as_object().expect("facts.probes");
    let mut longest = Duration::ZERO;
    for (name, p) in probes {
        let deadline = p["deadline_ms"].as_u64().unwrap_or(0);
        let took = p["duration_ms"].as_f64().unwrap_or(0.0);
        assert!(
            took <= deadline as f64 || p["status"] == "skipped",
            "probe {name} took {took} ms, past its deadline of {deadline} ms"
        );
        longest = longest.max(Duration::from_millis(deadline));
    }
    assert!(
        run.elapsed < longest + SLACK,
        "the run took {:?}; its longest probe deadline is {longest:?}",
        run.elapsed
    );
}

/// The probe named ended by itself, not by the runner's deadline (its own inner deadlines
/// fired first and it reported what they caught).
fn assert_probe_finished(doc: &Value, probe: &str) {
    let status = doc["facts"]["probes"][probe]["status"]
        .as_str()
        .unwrap_or("");
    assert!(
        matches!(status, "ok" | "absent" | "failed"),
        "the {probe} probe ended {status:?}: {}",
        doc["facts"]["probes"][probe]
    );
}

/// design.md §5: 1 when some finding is an error (the default --fail-on error), else 0.
fn assert_exit_code(run: &Run, doc: &Value) {
    let errors = findings(doc)
        .iter()
        .filter(|f| f["severity"] == "error")
        .count();
    let expected = if errors > 0 { 1 } else { 0 };
    assert_eq!(
        run.code, expected,
        "exit code for {errors} error findings; stderr: {}",
        run.stderr
    );
    assert_eq!(doc["verdict"]["exit_code"], expected);
}

fn findings(doc: &Value) -> Vec<Value> {
    doc["findings"].as_array().cloned().unwrap_or_default()
}

/// The finding of `rule` about `subject` (a substring of its subject), with its text.
fn finding(doc: &Value, rule: &str, subject: &str) -> Value {
    findings(doc)
        .into_iter()
        .find(|f| f["rule"] == rule && f["subject"].as_str().unwrap_or("").contains(subject))
        .unwrap_or_else(|| {
            let seen: Vec<String> = findings(doc)
                .iter()
                .map(|f| format!("{} [{}]: {}", f["rule"], f["subject"], f["title"]))
                .collect();
            panic!(
                "no {rule} finding about {subject:?}; findings:\n{}",
                seen.join("\n")
            )
        })
}

/// The finding's title and evidence as one text.
fn text_of(f: &Value) -> String {
    let mut text = f["title"].as_str().unwrap_or("").to_string();
    for line in f["evidence"].as_array().into_iter().flatten() {
        text.push('\n');
        text.push_str(line.as_str().unwrap_or(""));
    }
    text
}

/// A check of the faulty machine: the report, with the properties every fault must keep.
fn check(sb: &Sandbox, profile: &str, vars: &[(&str, OsString)]) -> (Run, Value) {
    let run = doctor(
        sb,
        &["check", "--profile", profile, "--format", "json"],
        vars,
    );
    let doc = run.doc();
    assert_bounded(&run, &doc);
    assert_exit_code(&run, &doc);
    (run, doc)
}

// ---------------------------------------------------------------------------------------------
// stand-ins

fn executable(path: &Path, text: &str) {
    write(path, text);
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A real venv whose interpreter is replaced by `script` (bin/python3; python links to it).
fn venv_with_interpreter(dir: &Path, script: &str) {
    real_venv(dir);
    let bin = dir.join("bin");
    for name in ["python", "python3"] {
        let _ = fs::remove_file(bin.join(name));
    }
    executable(&bin.join("python3"), script);
    std::os::unix::fs::symlink("python3", bin.join("python")).unwrap();
}

/// A script that records its pid and its child's in `pids`, then waits on a long sleep.
fn hanging_script(pids: &Path) -> String {
    let pids = pids.display();
    format!("#!/bin/sh\necho $$ >> '{pids}'\nsleep 600 &\necho $! >> '{pids}'\nwait\n")
}

fn read_pids(pids: &Path) -> Vec<i32> {
    fs::read_to_string(pids)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Gone, or a zombie: dead, waiting for a parent other than this test to reap it (a
/// container's pid 1 often never does).
fn is_gone(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// Every recorded process is gone (within a moment: a kill is asynchronous).
fn assert_all_gone(pids: &[i32]) {
    assert!(!pids.is_empty(), "the stand-in never ran");
    let until = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|&p| !is_gone(p)) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    for &pid in pids {
        if !is_gone(pid) {
            // Not left behind by this test either.
            // SAFETY: kill(2) on a pid this test's stand-in recorded; no memory is touched.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("process {pid}, started under the doctor, outlived it");
        }
    }
}

fn path_with(first: &Path) -> OsString {
    let mut path = first.as_os_str().to_owned();
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    path
}

// ---------------------------------------------------------------------------------------------
// interpreters that misbehave

#[test]
fn a_hanging_interpreter_is_killed_at_its_deadline_with_its_children() {
    let sb = sandbox();
    let pids = sb.root.join("pids");
    venv_with_interpreter(&sb.project.join(".venv"), &hanging_script(&pids));
    let (run, doc) = check(&sb, "standard", &[]);
    assert_probe_finished(&doc, "python");
    let f = finding(&doc, "python-live-check-failed", ".venv");
    assert_eq!(f["severity"], "error");
    let text = text_of(&f);
    assert!(text.contains("(timed_out)"), "{text}");
    assert!(
        text.contains(&format!("timed out after {SCALED_INTERPRETER_DEADLINE}")),
        "{text}"
    );
    assert_eq!(run.code, 1);
    // The interpreter and the sleep it started were killed with their process group.
    assert_all_gone(&read_pids(&pids));
}

#[test]
fn a_segfaulting_interpreter_is_a_crash_finding_with_its_last_words() {
    let sb = sandbox();
    venv_with_interpreter(
        &sb.project.join(".venv"),
        "#!/bin/sh\necho 'Fatal Python error: Segmentation fault' >&2\nkill -SEGV $$\n",
    );
    let (_, doc) = check(&sb, "standard", &[]);
    assert_probe_finished(&doc, "python");
    let text = text_of(&finding(&doc, "python-live-check-failed", ".venv"));
    assert!(text.contains("(crashed)"), "{text}");
    assert!(text.contains("signal 11 (SIGSEGV)"), "{text}");
    assert!(
        text.contains("Fatal Python error: Segmentation fault"),
        "{text}"
    );
}

#[test]
fn interpreters_that_print_garbage_or_100_mb_are_failures_with_bounded_memory() {
    let sb = sandbox();
    venv_with_interpreter(
        &sb.project.join(".venv-garbage"),
        "#!/bin/sh\nprintf '\\377\\376\\000{\"gpu_doctor_live\": 1, \"stage\": tr\\n\\033[2J'\nexit 0\n",
    );
    venv_with_interpreter(
        &sb.project.join(".venv-flood"),
        "#!/bin/sh\nhead -c 100000000 /dev/zero | tr '\\000' x\n",
    );
    let (_, doc) = check(&sb, "standard", &[]);
    assert_probe_finished(&doc, "python");
    let garbage = text_of(&finding(&doc, "python-live-check-failed", ".venv-garbage"));
    assert!(garbage.contains("(failed)"), "{garbage}");
    assert!(
        garbage.contains("exit code 0, without an answer from the probe script"),
        "{garbage}"
    );
    let flood = text_of(&finding(&doc, "python-live-check-failed", ".venv-flood"));
    assert!(flood.contains("(failed)"), "{flood}");
    assert!(flood.contains("it printed more than 1024 KiB"), "{flood}");
    // The 100 MB were read and thrown away, not kept: no child of this test (the doctor
    // included) ever held 256 MB.
    assert!(
        max_child_rss_kib() < 256 * 1024,
        "a child used {} KiB",
        max_child_rss_kib()
    );
}

/// The largest resident set of any child this test process has waited for, in KiB.
fn max_child_rss_kib() -> i64 {
    // SAFETY: getrusage fills the zeroed struct it is given; nothing else is touched.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    usage.ru_maxrss
}

#[test]
fn a_venv_whose_base_interpreter_was_removed_is_named_and_not_run() {
    let sb = sandbox();
    // A base "installation" that can be deleted: a folder whose python3 links to this
    // machine's interpreter, as a pyenv or a /opt Python would hold one.
    let base = sb.root.join("python-3.x/bin");
    fs::create_dir_all(&base).unwrap();
    let real = common::run(
        Command::new("python3").args(["-c", "import sys; print(sys.executable)"]),
        Duration::from_secs(30),
        "python3",
    );
    std::os::unix::fs::symlink(real.trim(), base.join("python3")).unwrap();
    common::run(
        Command::new(base.join("python3"))
            .args(["-m", "venv", "--without-pip"])
            .arg(sb.project.join(".venv")),
        Duration::from_secs(120),
        "python3 -m venv",
    );
    fs::remove_dir_all(sb.root.join("python-3.x")).unwrap();

    let (_, doc) = check(&sb, "standard", &[]);
    let f = finding(&doc, "venv-base-interpreter-missing", ".venv");
    assert_eq!(f["severity"], "error");
    assert!(
        f["title"]
            .as_str()
            .unwrap()
            .contains("python-3.x/bin/python3"),
        "{}",
        f["title"]
    );
    // Nothing was started for it, so there is no second finding about a failed live check.
    let env = &doc["facts"]["python"]["environments"][0];
    assert_eq!(env["live"]["status"], "not_run");
    assert!(findings(&doc)
        .iter()
        .all(|f| f["rule"] != "python-live-check-failed"));
}

// ---------------------------------------------------------------------------------------------
// NVIDIA tools on PATH

#[test]
fn nvidia_smi_stand_ins_on_path_are_never_run() {
    let sb = sandbox();
    let bin = sb.root.join("tools");
    let ran = sb.root.join("nvidia-smi-ran");
    executable(
        &bin.join("nvidia-smi"),
        &format!("#!/bin/sh\ntouch '{}'\nsleep 600\n", ran.display()),
    );
    let (_, doc) = check(&sb, "standard", &[("PATH", path_with(&bin))]);
    assert_probe_finished(&doc, "driver");
    // The driver is read through NVML, never through nvidia-smi: the stand-in did not run,
    // and the driver's absence is the finding.
    assert!(!ran.exists(), "gpu-doctor ran nvidia-smi");
    let driver = doc["facts"]["probes"]["driver"]["status"].as_str().unwrap();
    if driver == "absent" {
        let f = findings(&doc);
        assert!(
            f.iter().any(|f| f["rule"]
                .as_str()
                .unwrap()
                .contains("without-nvidia-driver")
                || f["rule"] == "no-nvidia-driver"),
            "no finding about the missing driver"
        );
    }
}

#[test]
fn nvcc_that_hangs_fails_or_babbles_is_bounded_and_named() {
    let sb = sandbox();
    let pids = sb.root.join("nvcc-pids");
    // PATH's nvcc hangs (with a child of its own); CUDA_HOME's fails; CUDA_PATH's prints no
    // version. None has version.json, so each nvcc is asked.
    let hangs = sb.root.join("cuda-hangs");
    executable(&hangs.join("bin/nvcc"), &hanging_script(&pids));
    let fails = sb.root.join("cuda-fails");
    executable(
        &fails.join("bin/nvcc"),
        "#!/bin/sh\necho 'nvcc: error while loading shared libraries' >&2\nexit 127\n",
    );
    let babbles = sb.root.join("cuda-babbles");
    executable(
        &babbles.join("bin/nvcc"),
        "#!/bin/sh\nhead -c 5000000 /dev/urandom\n",
    );
    let (run, doc) = check(
        &sb,
        "standard",
        &[
            ("PATH", path_with(&hangs.join("bin"))),
            ("CUDA_HOME", fails.into_os_string()),
            ("CUDA_PATH", babbles.into_os_string()),
        ],
    );
    assert_probe_finished(&doc, "toolkits");
    let hung = finding(&doc, "toolkit-unreadable", "cuda-hangs");
    assert_eq!(hung["severity"], "warn");
    assert!(
        hung["title"]
            .as_str()
            .unwrap()
            .contains("nvcc --version: timed out after 3.0 s"),
        "{}",
        hung["title"]
    );
    let failed = finding(&doc, "toolkit-unreadable", "cuda-fails");
    assert!(
        failed["title"]
            .as_str()
            .unwrap()
            .contains("nvcc --version: exit code 127"),
        "{}",
        failed["title"]
    );
    let babbled = finding(&doc, "toolkit-unreadable", "cuda-babbles");
    assert!(
        babbled["title"]
            .as_str()
            .unwrap()
            .contains("no \"release X.Y\" in its output"),
        "{}",
        babbled["title"]
    );
    // The three ran in parallel under one 3 s deadline, not one after the other.
    let toolkits_ms = doc["facts"]["probes"]["toolkits"]["duration_ms"]
        .as_f64()
        .unwrap();
    assert!(toolkits_ms < 6000.0, "toolkit probe took {toolkits_ms} ms");
    assert!(run.elapsed < Duration::from_secs(3) + SLACK);
    assert_all_gone(&read_pids(&pids));
}

// ---------------------------------------------------------------------------------------------
// hostile file trees

/// Run as root, the doctor would read a mode-000 folder anyway (CAP_DAC_OVERRIDE): it is then
/// run through setpriv without the capabilities that bypass file permissions.
fn unprivileged(sb: &Sandbox, args: &[&str]) -> Option<Run> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some(doctor(sb, args, &[]));
    }
    let probe = Command::new("setpriv")
        .args(["--bounding-set", "-dac_override,-dac_read_search", "true"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("skipped: running as root and setpriv cannot drop CAP_DAC_OVERRIDE here");
        return None;
    }
    let doctor_cmd = command(sb, args, &[]);
    let mut cmd = Command::new("setpriv");
    cmd.args(["--bounding-set", "-dac_override,-dac_read_search", "--"])
        .arg(doctor_cmd.get_program())
        .args(doctor_cmd.get_args())
        .current_dir(&sb.project)
        .env_clear()
        .envs(
            doctor_cmd
                .get_envs()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Some(run_command(cmd))
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn unreadable_folders_are_named_and_the_rest_is_still_checked() {
    let sb = sandbox();
    let site = real_venv(&sb.project.join(".venv"));
    let ok_site = real_venv(&sb.project.join(".venv-ok"));
    write(
        &ok_site.join("torch/version.py"),
        "__version__ = '2.5.1+cpu'\ncuda = None\n",
    );
    let private = sb.project.join("data/private");
    fs::create_dir_all(&private).unwrap();
    set_mode(&site, 0o000);
    set_mode(&private, 0o000);
    let run = unprivileged(&sb, &["check", "--profile", "quick", "--format", "json"]);
    set_mode(&site, 0o755);
    set_mode(&private, 0o755);
    let Some(run) = run else { return };
    let doc = run.doc();
    assert_bounded(&run, &doc);
    assert_exit_code(&run, &doc);
    assert_probe_finished(&doc, "python");

    let venv = finding(&doc, "python-env-unreadable", ".venv (");
    assert_eq!(venv["severity"], "warn");
    let text = text_of(&venv);
    assert!(text.contains("site-packages could not be listed"), "{text}");
    assert!(text.contains("Permission denied"), "{text}");
    let scan = text_of(&finding(&doc, "python-discovery-incomplete", ""));
    assert!(
        scan.contains(&format!("could not read the folder {}", private.display())),
        "{scan}"
    );
    // The readable environment next to them was read in full.
    let envs = doc["facts"]["python"]["environments"].as_array().unwrap();
    let ok = envs.iter().find(|e| e["name"] == ".venv-ok").unwrap();
    assert_eq!(ok["torch"]["version"], "2.5.1+cpu");
}

#[test]
fn symlink_loops_deep_and_wide_trees_keep_discovery_bounded() {
    let sb = sandbox();
    real_venv(&sb.project.join(".venv"));
    let p = &sb.project;
    fs::create_dir_all(p.join("data")).unwrap();
    let link = |target: &str, at: &str| std::os::unix::fs::symlink(target, p.join(at)).unwrap();
    link("..", "data/up"); // back to the project: a loop through a parent
    link("self", "data/self"); // a link to itself
    link("loop-b", "loop-a"); // two links to each other
    link("loop-a", "loop-b");
    // 300 folders deep, and 2,100 folders wide (past the scan's bound of 2,000).
    let mut deep = p.join("deep");
    for _ in 0..300 {
        deep.push("d");
    }
    fs::create_dir_all(&deep).unwrap();
    for i in 0..2100 {
        fs::create_dir_all(p.join(format!("wide/w{i:04}"))).unwrap();
    }
    let (run, doc) = check(&sb, "quick", &[]);
    assert_probe_finished(&doc, "python");
    let envs = doc["facts"]["python"]["environments"].as_array().unwrap();
    assert_eq!(envs.len(), 1, "{envs:?}");
    assert_eq!(envs[0]["name"], ".venv");
    let f = finding(&doc, "python-discovery-incomplete", "");
    assert_eq!(f["severity"], "info");
    assert!(
        text_of(&f).contains("the project scan stopped at its bound of folders: true"),
        "{}",
        text_of(&f)
    );
    // The quick profile's whole Python probe has 5 s; the scan is far faster.
    assert!(run.elapsed < Duration::from_secs(5), "{:?}", run.elapsed);
}

#[test]
fn a_huge_or_malformed_torch_version_py_is_read_boundedly_and_named() {
    let sb = sandbox();
    let huge = real_venv(&sb.project.join(".venv-huge"));
    write(&huge.join("torch/__init__.py"), "");
    // 200 MB (sparse: no disk is used), of which at most 64 KiB are read.
    let file = fs::File::create(huge.join("torch/version.py")).unwrap();
    file.set_len(200 << 20).unwrap();
    let bad = real_venv(&sb.project.join(".venv-bad"));
    write(&bad.join("torch/__init__.py"), "");
    write(
        &bad.join("torch/version.py"),
        "__version__ = '2.5.1\x00+cu121\ncuda: Optional[str] = '12.\n\u{1F525}\"\"\"\n",
    );
    let (run, doc) = check(&sb, "quick", &[]);
    assert_probe_finished(&doc, "python");
    let text = text_of(&finding(&doc, "python-env-unreadable", ".venv-huge"));
    assert!(text.contains("larger than 65536 bytes"), "{text}");
    let text = text_of(&finding(&doc, "python-env-unreadable", ".venv-bad"));
    assert!(
        text.contains("torch/version.py has no __version__"),
        "{text}"
    );
    assert!(run.elapsed < Duration::from_secs(5), "{:?}", run.elapsed);
}

/// Compile a tiny shared object `dir/file` with `-soname soname`, needing `libs` (files in
/// `dir`, passed as `-l:NAME`).
fn cc_shared(dir: &Path, file: &str, soname: &str, libs: &[&str]) {
    let src = dir.join(format!("{file}.c"));
    fs::write(
        &src,
        format!("int f_{}(void) {{ return 1; }}\n", file.len()),
    )
    .unwrap();
    let mut cmd = Command::new("cc");
    cmd.args(["-shared", "-fPIC", "-o"])
        .arg(dir.join(file))
        .arg(&src)
        .arg(format!("-Wl,-soname,{soname}"))
        .arg("-Wl,--no-as-needed")
        .arg(format!("-L{}", dir.display()));
    for lib in libs {
        cmd.arg(format!("-l:{lib}"));
    }
    common::run(
        &mut cmd,
        Duration::from_secs(120),
        "these tests need a C compiler named `cc`",
    );
    fs::remove_file(src).unwrap();
}

#[test]
fn a_cuda_backend_whose_libraries_are_missing_is_named_from_its_elf_header() {
    let sb = sandbox();
    let site = real_venv(&sb.project.join(".venv"));
    let pkg = site.join("llama_cpp");
    write(&pkg.join("__init__.py"), "__version__ = \"0.3.36\"\n");
    let lib = pkg.join("lib");
    fs::create_dir_all(&lib).unwrap();
    // The backend is linked against stub CUDA runtimes, which are then removed: its DT_NEEDED
    // names libraries that exist nowhere on this machine.
    for name in ["libcudart.so.12", "libcublas.so.12"] {
        cc_shared(&lib, name, name, &[]);
    }
    cc_shared(
        &lib,
        "libggml-cuda.so",
        "libggml-cuda.so",
        &["libcudart.so.12", "libcublas.so.12"],
    );
    for name in ["libcudart.so.12", "libcublas.so.12"] {
        fs::remove_file(lib.join(name)).unwrap();
    }
    cc_shared(&lib, "libggml-cpu.so", "libggml-cpu.so", &[]);
    cc_shared(&lib, "libllama.so", "libllama.so", &[]);

    let (_, doc) = check(&sb, "quick", &[]);
    let f = finding(&doc, "llama-cpp-cuda-backend-fails", ".venv");
    assert_eq!(f["severity"], "error");
    let title = f["title"].as_str().unwrap();
    assert!(
        title.contains(
            "it needs libcudart.so.12, libcublas.so.12, which the dynamic loader does not find"
        ),
        "{title}"
    );
}

// ---------------------------------------------------------------------------------------------
// hostile GGUF files

#[test]
fn truncated_and_lying_gguf_files_exit_2_with_file_and_offset() {
    use gpu_doctor::gguf::{write_cached, ModelParams};
    let sb = sandbox();
    let model = write_cached(&ModelParams::placement(), &sb.root).unwrap();
    let bytes = fs::read(&model).unwrap();
    let patched = |offset: usize, value: u64| {
        let mut b = bytes.clone();
        b[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
        b
    };
    // (file, content, what the error must say: the place and what was expected there)
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "empty.gguf",
            Vec::new(),
            "offset 0: the magic needs 4 bytes",
        ),
        (
            "header-only.gguf",
            bytes[..20].to_vec(),
            "offset 16: the key/value count needs 8 bytes",
        ),
        (
            "cut-in-metadata.gguf",
            bytes[..200].to_vec(),
            "is larger than the file could hold",
        ),
        (
            "cut-in-tensor-data.gguf",
            bytes[..bytes.len() - 1000].to_vec(),
            "bytes of data but the file ends at byte",
        ),
        (
            "tensor-count-lies.gguf",
            patched(8, i64::MAX as u64),
            "offset 8: tensor count 9223372036854775807 is larger than the file could hold",
        ),
        (
            "kv-count-lies.gguf",
            patched(16, 1 << 40),
            "offset 16: key/value count 1099511627776 is larger than the file could hold",
        ),
        (
            "key-length-lies.gguf",
            patched(24, u64::MAX >> 1),
            "offset 24: key #0 claims 9223372036854775807 bytes",
        ),
    ];
    for (name, content, says) in cases {
        let path = sb.root.join(name);
        fs::write(&path, &content).unwrap();
        let run = doctor(
            &sb,
            &["model", path.to_str().unwrap(), "--free-mib", "8000"],
            &[],
        );
        assert_eq!(run.code, 2, "{name}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{name}: wrote {}", run.stdout);
        assert!(
            run.stderr.contains(&format!("{}: ", path.display())) && run.stderr.contains(says),
            "{name}: {}",
            run.stderr
        );
        assert!(
            run.elapsed < Duration::from_secs(5),
            "{name}: {:?}",
            run.elapsed
        );
    }
}

// ---------------------------------------------------------------------------------------------
// interruption

/// Start `check --output report.json` in a project whose interpreter hangs, wait until the
/// interpreter and its sleep run, send `signal`; return the exit code, the pids and the time
/// from the signal to the exit.
fn interrupt_a_check(sb: &Sandbox, signal: i32) -> (Option<i32>, Vec<i32>, Duration, u32) {
    let pids = sb.root.join("pids");
    venv_with_interpreter(&sb.project.join(".venv"), &hanging_script(&pids));
    let mut cmd = command(
        sb,
        &["check", "--format", "json", "--output", "report.json"],
        &[],
    );
    // The real 40 s deadline: the interpreter is surely alive when the signal comes.
    cmd.env_remove("GPU_DOCTOR_TEST_DEADLINE_SCALE");
    let start = Instant::now();
    let mut child = cmd.spawn().expect("gpu-doctor starts");
    let (_, stderr) = drain(&mut child);
    while read_pids(&pids).len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the interpreter never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let doctor_pid = child.id();
    // SAFETY: kill(2) on the doctor this test started.
    unsafe { libc::kill(doctor_pid as i32, signal) };
    let signalled = Instant::now();
    let status = wait_bounded(&mut child, signalled + Duration::from_secs(20));
    let took = signalled.elapsed();
    let stderr = join(stderr);
    assert!(!stderr.contains("panicked at"), "{stderr}");
    assert!(stderr.contains("interrupted by SIG"), "{stderr}");
    (status.code(), read_pids(&pids), took, doctor_pid)
}

/// Nothing of the interrupted run is left in the project or the temporary folder.
fn assert_no_leftovers(sb: &Sandbox, doctor_pid: u32) {
    let left: Vec<String> = fs::read_dir(&sb.project)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
    let mine = format!("-{doctor_pid}-");
    let temp: Vec<PathBuf> = fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("gpu-doctor-") && n.contains(&mine)
        })
        .collect();
    assert!(temp.is_empty(), "temporary folders left: {temp:?}");
}

#[test]
fn sigterm_ends_the_children_and_writes_no_report() {
    let sb = sandbox();
    let (code, pids, took, doctor_pid) = interrupt_a_check(&sb, libc::SIGTERM);
    assert_eq!(code, Some(143), "128 + SIGTERM");
    assert!(took < Duration::from_secs(3), "took {took:?} to stop");
    assert_all_gone(&pids);
    assert!(!sb.project.join("report.json").exists());
    assert_no_leftovers(&sb, doctor_pid);
}

#[test]
fn sigint_ends_the_children_and_keeps_the_previous_report_whole() {
    let sb = sandbox();
    let previous = "{\"previous\": \"complete report\"}\n";
    fs::write(sb.project.join("report.json"), previous).unwrap();
    let (code, pids, took, doctor_pid) = interrupt_a_check(&sb, libc::SIGINT);
    assert_eq!(code, Some(130), "128 + SIGINT");
    assert!(took < Duration::from_secs(3), "took {took:?} to stop");
    assert_all_gone(&pids);
    assert_eq!(
        fs::read_to_string(sb.project.join("report.json")).unwrap(),
        previous
    );
    assert_no_leftovers(&sb, doctor_pid);
}

// ---------------------------------------------------------------------------------------------
// docs/reliability.md

/// Every test the reliability table names (`file::test_name`) exists as a `fn` in that file, and
/// every file it names exists, so the table cannot point at tests that were renamed or removed.
#[test]
fn every_test_named_in_the_reliability_table_exists() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let doc = fs::read_to_string(root.join("docs/reliability.md")).unwrap();
    let in_repo = |p: &str| {
        ["tests/", "src/", "fuzz/", "fixtures/", "docs/", "rules/"]
            .iter()
            .any(|d| p.starts_with(d))
            && !p.contains(' ')
    };
    let (mut tests, mut files) = (0, 0);
    // Code spans are the odd pieces between backticks.
    for cell in doc.split('`').skip(1).step_by(2) {
        if let Some((file, test)) = cell.split_once("::") {
            if !in_repo(file) {
                continue;
            }
            let source = fs::read_to_string(root.join(file))
                .unwrap_or_else(|e| panic!("docs/reliability.md names {file}, which is gone: {e}"));
            assert!(
                source.contains(&format!("fn {test}(")),
                "docs/reliability.md names {file}::{test}, which does not exist"
            );
            tests += 1;
        } else if in_repo(cell) {
            assert!(
                root.join(cell).exists(),
                "docs/reliability.md names {cell}, which does not exist"
            );
            files += 1;
        }
    }
    assert!(
        tests >= 30 && files >= 3,
        "only {tests} tests and {files} files named: the table was not parsed"
    );
}

// ---------------------------------------------------------------------------------------------
// input without end: facts files, sparse GGUF files, escaped daemons

/// Limit the address space of the doctor about to start (as `prlimit --as` does): a reader
/// that grows without bound fails an allocation (an abort, exit 134) instead of reaching the
/// machine's OOM killer.
fn with_memory_limit(cmd: &mut Command, bytes: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe and touches only the limit given here.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A facts file without end (`/dev/zero`) is refused at the size cap, with memory to spare.
#[test]
fn facts_from_dev_zero_exit_2_under_a_memory_limit() {
    let sb = sandbox();
    let mut cmd = command(&sb, &["check", "--facts", "/dev/zero"], &[]);
    with_memory_limit(&mut cmd, 1 << 30);
    let run = run_command(cmd);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr.contains(&format!(
            "/dev/zero: not a facts file: larger than {} bytes",
            gpu_doctor::app::MAX_FACTS_BYTES
        )),
        "{}",
        run.stderr
    );
}

/// A FIFO nobody writes to, and a standard input nobody writes to, are given up at the read
/// deadline (10 s, 1 s under the tests' scale) with exit 2, instead of waiting for ever.
#[test]
fn facts_from_a_fifo_or_stdin_that_never_answers_exit_2_at_the_deadline() {
    let sb = sandbox();
    let fifo = sb.root.join("facts.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let run = doctor(&sb, &["check", "--facts", fifo.to_str().unwrap()], &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "cannot read facts from {}: nothing came within 1 s",
            fifo.display()
        )),
        "{}",
        run.stderr
    );

    let mut cmd = command(&sb, &["check", "--facts", "-"], &[]);
    cmd.stdin(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("gpu-doctor starts");
    // Held open and never written: the doctor sees neither data nor an end.
    let _writer = child.stdin.take();
    let (_, stderr) = drain(&mut child);
    let status = wait_bounded(&mut child, start + RUN_LIMIT);
    let stderr = join(stderr);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot read facts from <stdin>: nothing came within 1 s"),
        "{stderr}"
    );
}

/// A sparse 20 GB GGUF file (no disk used) whose header claims 5x10^8 tensors: within what
/// 20 GB could hold, far beyond what the metadata cap lets the reader read. Refused with the
/// offset and the count, not an allocation of tens of GB.
#[test]
fn a_sparse_gguf_claiming_500_million_tensors_exits_2() {
    use std::io::Write;
    let sb = sandbox();
    let path = sb.root.join("sparse.gguf");
    let mut file = fs::File::create(&path).unwrap();
    let mut header = b"GGUF".to_vec();
    header.extend(3u32.to_le_bytes());
    header.extend(500_000_000i64.to_le_bytes());
    header.extend(0i64.to_le_bytes());
    file.write_all(&header).unwrap();
    file.set_len(20 << 30).unwrap();
    drop(file);
    let mut cmd = command(
        &sb,
        &["model", path.to_str().unwrap(), "--free-mib", "8000"],
        &[],
    );
    with_memory_limit(&mut cmd, 4 << 30);
    let run = run_command(cmd);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "{}: offset 8: tensor count 500000000 is larger than the first 64 MiB of metadata \
             could hold",
            path.display()
        )),
        "{}",
        run.stderr
    );
}

/// An interpreter that starts a daemon the classic way (fork, `setsid`, fork again, the
/// middle process exits) cannot leave it running after the doctor: the daemon is adopted by
/// the doctor (a child subreaper) and ended with the run.
#[test]
fn a_double_forked_daemon_started_by_an_interpreter_is_gone_after_the_run() {
    let sb = sandbox();
    let pids = sb.root.join("pids");
    let p = pids.display();
    // `setsid sh -c '... &'`: a new session whose shell starts the sleep in the background
    // and exits at once, so the sleep is orphaned outside the interpreter's process group.
    let script = format!(
        "#!/bin/sh\necho $$ >> '{p}'\nsetsid sh -c 'sleep 600 >/dev/null 2>&1 </dev/null & \
         echo $! >> \"{p}\"' </dev/null >/dev/null 2>&1\nexit 3\n"
    );
    venv_with_interpreter(&sb.project.join(".venv"), &script);
    let (_, doc) = check(&sb, "standard", &[]);
    assert_probe_finished(&doc, "python");
    let pids = read_pids(&pids);
    assert!(
        pids.len() >= 2,
        "the interpreter and its daemon ran: {pids:?}"
    );
    assert_all_gone(&pids);
}

/// An editor setting naming an interpreter that does not exist is a finding, not passed over:
/// the editor runs something else than what the report judged.
#[test]
fn an_editor_interpreter_that_does_not_exist_is_a_finding() {
    let sb = sandbox();
    real_venv(&sb.project.join(".venv"));
    write(
        &sb.project.join(".vscode/settings.json"),
        "{\n  // the environment was renamed since\n  \"python.defaultInterpreterPath\": \"${workspaceFolder}/.venv-old/bin/python\"\n}\n",
    );
    let (_, doc) = check(&sb, "quick", &[]);
    let f = finding(&doc, "editor-interpreter-missing", "");
    assert_eq!(f["severity"], "warn");
    let text = text_of(&f);
    let missing = sb.project.join(".venv-old/bin/python");
    assert!(text.contains(&missing.display().to_string()), "{text}");
    assert!(
        text.contains("python.defaultInterpreterPath = ${workspaceFolder}/.venv-old/bin/python"),
        "{text}"
    );
}

/// A base interpreter behind a folder this user may not enter is not "gone": it is named as
/// unreachable, with no `venv --upgrade` fix (which could not help).
#[test]
fn a_base_interpreter_this_user_cannot_reach_is_not_reported_gone() {
    let sb = sandbox();
    let locked = sb.root.join("locked");
    let base = locked.join("python-3.x/bin");
    fs::create_dir_all(&base).unwrap();
    let real = common::run(
        Command::new("python3").args(["-c", "import sys; print(sys.executable)"]),
        Duration::from_secs(30),
        "python3",
    );
    std::os::unix::fs::symlink(real.trim(), base.join("python3")).unwrap();
    common::run(
        Command::new(base.join("python3"))
            .args(["-m", "venv", "--without-pip"])
            .arg(sb.project.join(".venv")),
        Duration::from_secs(120),
        "python3 -m venv",
    );
    set_mode(&locked, 0o000);
    let run = unprivileged(&sb, &["check", "--profile", "quick", "--format", "json"]);
    set_mode(&locked, 0o755);
    let Some(run) = run else { return };
    let doc = run.doc();
    assert_exit_code(&run, &doc);
    let f = finding(&doc, "venv-base-interpreter-unreadable", ".venv");
    assert_eq!(f["severity"], "error");
    let text = text_of(&f);
    assert!(text.contains("python-3.x/bin/python3"), "{text}");
    assert!(text.contains("Permission denied"), "{text}");
    assert!(f["fix"].is_null(), "no fix command: {}", f["fix"]);
    assert!(
        findings(&doc)
            .iter()
            .all(|f| f["rule"] != "venv-base-interpreter-missing"),
        "reported gone as well"
    );
}
