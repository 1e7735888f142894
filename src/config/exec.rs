//! `gpu-doctor exec -- CMD ARGS`: run a command once the preflight passed, as its last step.
//!
//! On Unix gpu-doctor replaces itself with the command (execvp), so the command gets
//! gpu-doctor's process id, its standard streams and signals, and its exit code (or the signal
//! that ended it) is the exit status the caller sees, with nothing in between. Elsewhere the
//! command runs as a child and its exit code is passed on. A command that cannot be started
//! ends like it would in a shell: 127 when it is not found, 126 when it cannot be executed.

use std::ffi::OsString;
use std::io::Write;
use std::process::Command;

/// The command was not found (as in sh).
pub const EXIT_NOT_FOUND: i32 = 127;
/// The command was found but could not be executed (as in sh).
pub const EXIT_CANNOT_EXECUTE: i32 = 126;

/// Run `command` (program and arguments) in place of gpu-doctor; returns only when it could
/// not be started (on Unix) or when it ended (elsewhere), with the exit code to use.
pub fn run(command: &[OsString]) -> i32 {
    let Some((program, args)) = command.split_first() else {
        eprintln!("gpu-doctor: exec needs a command after `--`");
        return crate::app::EXIT_NO_VERDICT;
    };
    // A probe that overran its deadline may have left a child behind; exec would hand it to
    // CMD, which never waits for it.
    crate::probe::process::end_all_children();
    // Whatever gpu-doctor printed must come before the command's output.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let mut cmd = Command::new(program);
    cmd.args(args);
    let error = start(&mut cmd);
    match error {
        Ok(code) => code,
        Err(e) => {
            let name = program.to_string_lossy();
            let (code, what) = match e.kind() {
                std::io::ErrorKind::NotFound => (EXIT_NOT_FOUND, "command not found".to_string()),
                _ => (EXIT_CANNOT_EXECUTE, e.to_string()),
            };
            eprintln!("gpu-doctor: {name}: {what}");
            code
        }
    }
}

/// Replace this process with the command; only an error comes back.
#[cfg(unix)]
fn start(cmd: &mut Command) -> std::io::Result<i32> {
    use std::os::unix::process::CommandExt;
    // std resets SIGPIPE (which Rust programs ignore) and the signal mask before exec.
    Err(cmd.exec())
}

/// Run the command as a child and pass its exit code on.
#[cfg(not(unix))]
fn start(cmd: &mut Command) -> std::io::Result<i32> {
    let status = cmd.status()?;
    Ok(status.code().unwrap_or(1))
}
