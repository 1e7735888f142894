//! Running a foreign program under a deadline, with its output capped.
//!
//! Anything the doctor starts (nvcc, a Python interpreter, its own child probes) may hang, print
//! without end, or crash. This module starts it in its own process group, reads its output on
//! background threads up to a cap, and kills the whole group when the deadline passes, so a
//! stuck grandchild cannot keep the doctor waiting either. What a program leaves running in its
//! group when it ends is killed too. Every running group is recorded, so that
//! [`end_all_children`] can end them when the doctor is interrupted (crate::signals) or exits.
//!
//! A descendant can leave the group: a daemon forks twice and calls `setsid`, and its parent
//! exits. On Linux the doctor is made a child subreaper (`PR_SET_CHILD_SUBREAPER`) while it runs
//! programs ([`start_adopting`]), so such an orphan is reparented to the doctor instead of to init; when a program
//! ends (or is killed at its deadline), every child of the doctor that [`run`] did not start
//! itself is one of those orphans, and it is killed with its group and reaped
//! ([`end_adopted`]). [`stop_adopting`] ends that before the doctor runs commands whose
//! daemons must live on (`fix`, `exec`).

use std::io::{self, Read};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// What a program did before it ended or was killed.
#[derive(Debug, Clone)]
pub struct CommandOutput {
    /// Exit code when it exited normally.
    pub code: Option<i32>,
    /// Signal that ended it (SIGSEGV = 11, SIGKILL = 9 after a timeout).
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The deadline passed and the process group was killed.
    pub timed_out: bool,
    /// stdout or stderr went past the cap; the rest was read and thrown away.
    pub truncated: bool,
    pub duration: Duration,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// One line saying how the program ended, for findings: "exit code 1",
    /// "killed by signal 11 (SIGSEGV)", "timed out after 2.0 s".
    pub fn describe_end(&self) -> String {
        if self.timed_out {
            return format!("timed out after {:.1} s", self.duration.as_secs_f64());
        }
        match (self.code, self.signal) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(sig)) => format!("killed by signal {sig} ({})", signal_name(sig)),
            (None, None) => "ended for an unknown reason".to_string(),
        }
    }
}

/// Children started by [`run`] that are still running, by process-group id, so that they can be
/// ended when the doctor is interrupted or exits with a timed-out probe's thread still waiting.
static RUNNING_GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());
/// Set once the doctor is ending: [`run`] starts no new child after it.
static ENDING: AtomicBool = AtomicBool::new(false);
/// How long [`end_all_children`] waits for a child that is being started right now.
const END_LOCK_WAIT: Duration = Duration::from_secs(2);
/// How long the output of a program that has ended is still read (a killed one's last words).
const DRAIN_AFTER_END: Duration = Duration::from_millis(200);
/// The variable that shortens every deadline, for gpu-doctor's own tests (docs/reliability.md).
pub const DEADLINE_SCALE_VAR: &str = "GPU_DOCTOR_TEST_DEADLINE_SCALE";
/// No deadline is shortened below this (or below itself, when shorter): a probe that takes a few
/// hundred milliseconds on a busy machine must still finish.
const SCALED_FLOOR: Duration = Duration::from_secs(1);

/// `deadline` as this run uses it: shortened by `GPU_DOCTOR_TEST_DEADLINE_SCALE` (a factor from
/// 0.05 to 1; anything else is ignored), never below one second. Only tests set it, so that a
/// hanging stand-in costs them seconds instead of the real 40 s; it can never lengthen a deadline.
pub fn scaled(deadline: Duration) -> Duration {
    static SCALE: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let scale =
        *SCALE.get_or_init(|| deadline_scale(std::env::var(DEADLINE_SCALE_VAR).ok().as_deref()));
    scale_deadline(deadline, scale)
}

fn deadline_scale(value: Option<&str>) -> f64 {
    value
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| (0.05..=1.0).contains(s))
        .unwrap_or(1.0)
}

fn scale_deadline(deadline: Duration, scale: f64) -> Duration {
    deadline.mul_f64(scale).max(SCALED_FLOOR.min(deadline))
}

/// End every child process group [`run`] started that is still running, and start no new one.
/// For the end of the doctor's life: an interrupt, or an exit that leaves a timed-out probe's
/// thread behind.
pub fn end_all_children() {
    ENDING.store(true, Ordering::SeqCst);
    // A child being started holds the lock until its group is recorded; wait for it, boundedly.
    let Some(groups) = lock_within(END_LOCK_WAIT) else {
        return;
    };
    for &pgid in groups.iter() {
        kill_group(pgid);
    }
    stop_adopting_with(&groups);
}

/// Stop adopting orphans, and end the ones adopted so far: before the doctor runs commands of
/// the user's (`fix`, `exec`), whose daemons are meant to outlive it.
pub fn stop_adopting() {
    let groups = RUNNING_GROUPS
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    stop_adopting_with(&groups);
}

fn stop_adopting_with(groups: &[i32]) {
    if ADOPTING.swap(false, Ordering::SeqCst) {
        set_subreaper(false);
        end_adopted(groups);
    }
}

/// Whether the doctor is a child subreaper now (see the module's documentation).
static ADOPTING: AtomicBool = AtomicBool::new(false);
/// How many times [`end_adopted`] looks again: each death can hand it the next generation.
const ADOPTED_ROUNDS: usize = 20;

/// Become a child subreaper (Linux; elsewhere a no-op). For the doctor's `main` only: a program
/// that links this library and starts children of its own (a test harness) must not have them
/// taken for orphans and killed.
pub fn start_adopting() {
    if !ADOPTING.load(Ordering::SeqCst) && !ENDING.load(Ordering::SeqCst) {
        ADOPTING.store(set_subreaper(true), Ordering::SeqCst);
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_subreaper(on: bool) -> bool {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes an integer and touches no memory.
    unsafe {
        libc::prctl(
            libc::PR_SET_CHILD_SUBREAPER,
            libc::c_ulong::from(on),
            0,
            0,
            0,
        ) == 0
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_subreaper(_on: bool) -> bool {
    false
}

/// Kill and reap the orphans the doctor adopted: its children other than the programs [`run`]
/// started (`groups`, whose leaders are those programs). Called with the lock held, so a program
/// being started is either recorded already or not started yet. An orphan is killed with its
/// group (a double-forked daemon shares the group of its dead parent); what that kill orphans in
/// turn is adopted next, so this looks again, a bounded number of times.
fn end_adopted(groups: &[i32]) {
    for _ in 0..ADOPTED_ROUNDS {
        let orphans: Vec<i32> = own_children()
            .into_iter()
            .filter(|pid| !groups.contains(pid))
            .collect();
        if orphans.is_empty() {
            return;
        }
        for &pid in &orphans {
            kill_group(pid);
            kill_process(pid);
        }
        thread::sleep(Duration::from_millis(5));
        for &pid in &orphans {
            reap(pid);
        }
    }
}

/// The doctor's children: the programs it started and the orphans it adopted.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn own_children() -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn own_children() -> Vec<i32> {
    Vec::new()
}

fn lock_within(wait: Duration) -> Option<MutexGuard<'static, Vec<i32>>> {
    let until = Instant::now() + wait;
    loop {
        match RUNNING_GROUPS.try_lock() {
            Ok(guard) => return Some(guard),
            Err(std::sync::TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) if Instant::now() < until => {
                thread::sleep(Duration::from_millis(2));
            }
            Err(std::sync::TryLockError::WouldBlock) => return None,
        }
    }
}

/// Start `cmd` and record its process group in one step, under the lock, so that
/// [`end_all_children`] either sees the child or keeps it from starting.
fn spawn_recorded(cmd: &mut Command) -> io::Result<Child> {
    let mut groups = RUNNING_GROUPS
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if ENDING.load(Ordering::SeqCst) {
        return Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "gpu-doctor is ending; no new program is started",
        ));
    }
    let child = cmd.spawn()?;
    groups.push(child.id() as i32);
    Ok(child)
}

/// `pgid`'s program has ended: forget it, and end what it left behind outside its group.
fn forget_group_and_end_adopted(pgid: i32) {
    let mut groups = RUNNING_GROUPS
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    groups.retain(|&g| g != pgid);
    if ADOPTING.load(Ordering::SeqCst) {
        end_adopted(&groups);
    }
}

/// Run `cmd` with stdin closed, capturing at most `max_output` bytes of each stream, and kill it
/// (with its process group) when `deadline` passes.
pub fn run(cmd: &mut Command, deadline: Duration, max_output: usize) -> io::Result<CommandOutput> {
    let start = Instant::now();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    new_process_group(cmd);
    let mut child = spawn_recorded(cmd)?;
    let pgid = child.id() as i32;
    let stdout = spawn_reader(child.stdout.take(), max_output);
    let stderr = spawn_reader(child.stderr.take(), max_output);
    let (status, timed_out) = wait_until(&mut child, pgid, start + deadline);
    forget_group_and_end_adopted(pgid);
    // The group was killed (see wait_until), but a descendant that left it (setsid) could still
    // hold the pipes open: the readers are waited for until the deadline, then abandoned.
    let drain_until = (start + deadline).max(Instant::now() + DRAIN_AFTER_END);
    let (stdout, out_cut) = join_reader(stdout, timed_out, drain_until);
    let (stderr, err_cut) = join_reader(stderr, timed_out, drain_until);
    let (code, signal) = exit_parts(status);
    Ok(CommandOutput {
        code,
        signal,
        stdout,
        stderr,
        timed_out,
        truncated: out_cut || err_cut,
        duration: start.elapsed(),
    })
}

fn wait_until(
    child: &mut Child,
    pgid: i32,
    until: Instant,
) -> (Option<std::process::ExitStatus>, bool) {
    let mut pause = Duration::from_micros(200);
    loop {
        match has_exited(child) {
            Ok(true) => {
                // What the program left running in its group (`cmd &` in a script) goes with
                // it: it would keep the pipes open and outlive the doctor. On Linux the
                // program is not reaped yet, so its pid, the group's id, cannot be reused.
                kill_group(pgid);
                return (child.wait().ok(), false);
            }
            Ok(false) => {}
            Err(_) => return (None, false),
        }
        let now = Instant::now();
        if now >= until {
            kill_group(pgid);
            let _ = child.kill();
            return (child.wait().ok(), true);
        }
        thread::sleep(pause.min(until - now));
        // Back off: fast programs are noticed quickly, slow ones cost few wake-ups.
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// What a reader thread has kept so far, and whether it had to drop some.
type Kept = Arc<Mutex<(Vec<u8>, bool)>>;

/// A thread reading one output stream, and what it has read: shared, so that what a reader
/// abandoned on a pipe held open by an escaped descendant had read is still used.
struct Reader {
    handle: JoinHandle<()>,
    kept: Kept,
}

fn spawn_reader<R: Read + Send + 'static>(stream: Option<R>, cap: usize) -> Option<Reader> {
    let mut stream = stream?;
    let kept: Kept = Arc::default();
    let shared = Arc::clone(&kept);
    let handle = thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut kept = shared.lock().unwrap_or_else(PoisonError::into_inner);
                    let room = cap.saturating_sub(kept.0.len());
                    if n > room {
                        kept.1 = true;
                    }
                    kept.0.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
    });
    Some(Reader { handle, kept })
}

fn join_reader(reader: Option<Reader>, timed_out: bool, until: Instant) -> (Vec<u8>, bool) {
    let Some(reader) = reader else {
        return (Vec::new(), false);
    };
    // After a timeout, give the reader a moment to drain what the killed process wrote;
    // otherwise wait until the deadline. Never wait on a pipe an escaped descendant keeps open:
    // such a reader is left behind with what it read so far taken from it.
    let until = if timed_out {
        Instant::now() + DRAIN_AFTER_END
    } else {
        until
    };
    while !reader.handle.is_finished() && Instant::now() < until {
        thread::sleep(Duration::from_millis(2));
    }
    let mut kept = reader.kept.lock().unwrap_or_else(PoisonError::into_inner);
    (std::mem::take(&mut kept.0), kept.1)
}

/// Whether the child has ended, without reaping it (so its pid stays reserved).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn has_exited(child: &mut Child) -> io::Result<bool> {
    // SAFETY: waitid writes only into `info`, a zeroed siginfo_t owned here; WNOWAIT leaves the
    // child waitable, so Child::wait still reaps it.
    let info = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        if libc::waitid(libc::P_PID, child.id() as libc::id_t, &mut info, flags) != 0 {
            return Err(io::Error::last_os_error());
        }
        info
    };
    // SAFETY: si_pid is valid for the WEXITED family; it stays 0 while the child runs.
    Ok(unsafe { info.si_pid() } != 0)
}

/// Elsewhere the child is reaped here; its status is kept for Child::wait.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn has_exited(child: &mut Child) -> io::Result<bool> {
    child.try_wait().map(|s| s.is_some())
}

#[cfg(unix)]
fn new_process_group(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
}

#[cfg(not(unix))]
fn new_process_group(_cmd: &mut Command) {}

#[cfg(unix)]
fn kill_group(pgid: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is touched.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

#[cfg(not(unix))]
fn kill_group(_pgid: i32) {}

#[cfg(unix)]
fn kill_process(pid: i32) {
    // SAFETY: kill(2) on one of the doctor's own children; no memory is touched.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

#[cfg(not(unix))]
fn kill_process(_pid: i32) {}

/// Reap a killed child of the doctor if it has died (a zombie left would stay until exit).
#[cfg(unix)]
fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: waitpid on one of the doctor's own children, writing only into `status`.
    unsafe {
        libc::waitpid(pid, &mut status, libc::WNOHANG);
    }
}

#[cfg(not(unix))]
fn reap(_pid: i32) {}

#[cfg(unix)]
fn exit_parts(status: Option<std::process::ExitStatus>) -> (Option<i32>, Option<i32>) {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(s) => (s.code(), s.signal()),
        None => (None, None),
    }
}

#[cfg(not(unix))]
fn exit_parts(status: Option<std::process::ExitStatus>) -> (Option<i32>, Option<i32>) {
    (status.and_then(|s| s.code()), None)
}

/// The conventional name of a Unix signal number.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => "signal",
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(script);
        c
    }

    #[test]
    fn captures_output_and_exit_code() {
        let out = run(
            &mut sh("echo hi; echo err >&2; exit 3"),
            Duration::from_secs(5),
            1024,
        )
        .unwrap();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout_text(), "hi\n");
        assert_eq!(out.stderr_text(), "err\n");
        assert!(!out.timed_out);
        assert_eq!(out.describe_end(), "exit code 3");
    }

    #[test]
    fn kills_a_hanging_program_and_its_children_at_the_deadline() {
        // The grandchild `sleep` holds stdout open; the group kill must end it too.
        let out = run(
            &mut sh("sleep 30 & sleep 30"),
            Duration::from_millis(300),
            1024,
        )
        .unwrap();
        assert!(out.timed_out);
        assert!(
            out.duration < Duration::from_secs(5),
            "took {:?}",
            out.duration
        );
        assert!(out.describe_end().starts_with("timed out after"));
    }

    #[test]
    fn caps_output_but_drains_the_rest() {
        let out = run(
            &mut sh("head -c 1000000 /dev/zero"),
            Duration::from_secs(10),
            4096,
        )
        .unwrap();
        assert_eq!(out.stdout.len(), 4096);
        assert!(out.truncated);
        assert_eq!(out.code, Some(0));
    }

    #[test]
    fn reports_the_signal_of_a_crash() {
        let out = run(&mut sh("kill -SEGV $$"), Duration::from_secs(5), 1024).unwrap();
        assert_eq!(out.signal, Some(11));
        assert_eq!(out.describe_end(), "killed by signal 11 (SIGSEGV)");
    }

    /// Gone, or a zombie waiting for a parent that is not this process to reap it.
    fn is_gone(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        }
    }

    #[test]
    fn what_a_program_leaves_running_in_its_group_is_ended_with_it() {
        // The background `sleep` keeps stdout open: without the group kill the readers would
        // wait for it, 30 s past the program's own end.
        let out = run(
            &mut sh("sleep 30 & echo $!; exit 0"),
            Duration::from_secs(20),
            1024,
        )
        .unwrap();
        assert!(
            out.duration < Duration::from_secs(5),
            "took {:?}",
            out.duration
        );
        assert_eq!(out.code, Some(0));
        assert!(!out.timed_out);
        let pid: i32 = out.stdout_text().trim().parse().unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        while !is_gone(pid) && Instant::now() < until {
            thread::sleep(Duration::from_millis(10));
        }
        assert!(
            is_gone(pid),
            "the background sleep {pid} outlived its program"
        );
    }

    #[test]
    fn a_descendant_that_leaves_the_group_cannot_hold_the_doctor_past_the_deadline() {
        // setsid puts the sleep in a session of its own, out of reach of the group kill; it
        // still holds stdout open. The wait for the output ends at the deadline.
        if std::process::Command::new("setsid")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("skipped: no setsid");
            return;
        }
        // The script prints the sleep's pid only once it is in its new session, so the group
        // kill at the script's exit cannot catch it first.
        let script = "f=$(mktemp); setsid sh -c \"echo \\$\\$ > $f; exec sleep 30\" & \
                      while [ ! -s $f ]; do sleep 0.01; done; cat $f; rm -f $f; exit 0";
        let t0 = Instant::now();
        let out = run(&mut sh(script), Duration::from_secs(2), 1024).unwrap();
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        assert_eq!(out.code, Some(0));
        // What was read before the wait was given up is kept.
        let pid: i32 = out.stdout_text().trim().parse().unwrap();
        assert!(
            !is_gone(pid),
            "the sleep did not escape: the test proves nothing"
        );
        // SAFETY: kill(2) on the pid this test's program started; no memory is touched.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }

    #[test]
    fn the_test_deadline_scale_only_shortens_and_keeps_a_floor() {
        assert_eq!(deadline_scale(None), 1.0);
        assert_eq!(deadline_scale(Some("0.1")), 0.1);
        assert_eq!(deadline_scale(Some("5")), 1.0, "never lengthens");
        assert_eq!(deadline_scale(Some("0")), 1.0);
        assert_eq!(deadline_scale(Some("fast")), 1.0);
        let s = Duration::from_secs;
        assert_eq!(scale_deadline(s(40), 0.1), s(4));
        assert_eq!(scale_deadline(s(3), 0.1), s(1), "floor of one second");
        assert_eq!(
            scale_deadline(Duration::from_millis(300), 0.1),
            Duration::from_millis(300),
            "a deadline under the floor stays as it is"
        );
    }

    #[test]
    fn a_missing_program_is_an_error_not_a_panic() {
        let err = run(
            &mut Command::new("/nonexistent/nvcc"),
            Duration::from_secs(1),
            10,
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
