//! Running a foreign program under a deadline, with its output capped.
//!
//! Anything the doctor starts (nvcc, a Python interpreter, its own child probes) may hang, print
//! without end, or crash. This module starts it in its own process group, reads its output on
//! background threads up to a cap, and kills the whole group when the deadline passes, so a
//! stuck grandchild cannot keep the doctor waiting either.

use std::io::{self, Read};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
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

/// Children started by [`run`] that are still running, by process-group id, so that a signal
/// handler can end them when the doctor itself is interrupted.
static RUNNING_GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Kill every process group [`run`] started that has not ended yet.
pub fn kill_all_children() {
    if let Ok(groups) = RUNNING_GROUPS.lock() {
        for &pgid in groups.iter() {
            kill_group(pgid);
        }
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
    let mut child = cmd.spawn()?;
    let pgid = child.id() as i32;
    if let Ok(mut groups) = RUNNING_GROUPS.lock() {
        groups.push(pgid);
    }
    let stdout = spawn_reader(child.stdout.take(), max_output);
    let stderr = spawn_reader(child.stderr.take(), max_output);
    let (status, timed_out) = wait_until(&mut child, pgid, start + deadline);
    if let Ok(mut groups) = RUNNING_GROUPS.lock() {
        groups.retain(|&g| g != pgid);
    }
    // After a kill, a grandchild that escaped the group could still hold the pipes open;
    // the readers are then abandoned rather than joined.
    let (stdout, out_cut) = join_reader(stdout, timed_out);
    let (stderr, err_cut) = join_reader(stderr, timed_out);
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
        match child.try_wait() {
            Ok(Some(status)) => return (Some(status), false),
            Ok(None) => {}
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

type Reader = JoinHandle<(Vec<u8>, bool)>;

fn spawn_reader<R: Read + Send + 'static>(stream: Option<R>, cap: usize) -> Option<Reader> {
    let mut stream = stream?;
    Some(thread::spawn(move || {
        let mut kept = Vec::new();
        let mut cut = false;
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = cap.saturating_sub(kept.len());
                    if n > room {
                        cut = true;
                    }
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
        (kept, cut)
    }))
}

fn join_reader(reader: Option<Reader>, timed_out: bool) -> (Vec<u8>, bool) {
    let Some(handle) = reader else {
        return (Vec::new(), false);
    };
    if timed_out {
        // Give the reader a moment to drain what the killed process wrote, but never wait on a
        // pipe some escaped descendant keeps open.
        let until = Instant::now() + Duration::from_millis(200);
        while !handle.is_finished() && Instant::now() < until {
            thread::sleep(Duration::from_millis(5));
        }
        if !handle.is_finished() {
            return (Vec::new(), false);
        }
    }
    handle.join().unwrap_or_default()
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
