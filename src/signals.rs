//! Interruption: what gpu-doctor does when it receives SIGINT (Ctrl-C), SIGTERM or SIGHUP.
//!
//! A doctor that is stopped must not make things worse. The programs it starts (each
//! environment's Python, nvcc, its own child probes) run in process groups of their own, so a
//! terminal's Ctrl-C does not reach them and, left alone, they would outlive the doctor. On one
//! of these signals a handler thread:
//!
//! 1. ends every child process group that is still running and lets no new one start
//!    ([`process::end_all_children`]);
//! 2. removes the temporary files and folders that are in flight ([`create_temp`]): the
//!    `--output` report's temporary file, the GGUF cache's, the child probes' private folders;
//! 3. exits at once with 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM, 129 for
//!    SIGHUP, "interrupted: no verdict" (docs/exit-codes.md).
//!
//! Files are written to a temporary name and renamed into place, so an output file is either
//! the previous complete one or the new complete one, never half of either.
//!
//! The exit skips atexit handlers (`_exit`): the driver libraries loaded in-process (NVML) may
//! be in use by another thread at that moment, and their destructors must not run under it.

use crate::probe::process;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

/// Exit codes of an interrupted run are this plus the signal's number, as in shells.
pub const EXIT_SIGNAL_BASE: i32 = 128;
/// SIGINT (Ctrl-C): 130.
pub const EXIT_INTERRUPTED: i32 = EXIT_SIGNAL_BASE + 2;
/// SIGTERM: 143.
pub const EXIT_TERMINATED: i32 = EXIT_SIGNAL_BASE + 15;
/// How long the handler waits for a temporary file that is being created right now.
const TEMP_LOCK_WAIT: Duration = Duration::from_secs(2);

/// Temporary files and folders that exist now and are removed on an interrupt.
static TEMPS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Set once a signal arrived: no temporary file is created after it.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Handle SIGINT, SIGTERM and SIGHUP from now on. Call once, early in `main`.
#[cfg(unix)]
pub fn install() -> io::Result<()> {
    use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("gpu-doctor-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                interrupted(signal);
            }
        })?;
    Ok(())
}

/// Elsewhere the console ends the whole process tree on Ctrl-C; nothing to install.
#[cfg(not(unix))]
pub fn install() -> io::Result<()> {
    Ok(())
}

/// Create a temporary file or folder at `path` with `create`, and record it so that an
/// interrupt removes it. Creation and record happen under one lock, so an interrupt either
/// sees the path or comes before it exists (and then it is never created). Call
/// [`forget_temp`] once the path is renamed or removed.
pub fn create_temp<'p, T>(
    path: &'p Path,
    create: impl FnOnce(&'p Path) -> io::Result<T>,
) -> io::Result<T> {
    let mut temps = TEMPS.lock().unwrap_or_else(PoisonError::into_inner);
    if INTERRUPTED.load(Ordering::SeqCst) {
        return Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "gpu-doctor was interrupted",
        ));
    }
    let made = create(path)?;
    temps.push(path.to_path_buf());
    Ok(made)
}

/// The temporary `path` was renamed into place or removed: an interrupt leaves it alone.
pub fn forget_temp(path: &Path) {
    let mut temps = TEMPS.lock().unwrap_or_else(PoisonError::into_inner);
    temps.retain(|p| p != path);
}

/// End the children, remove the temporary files and exit with 128 + `signal`.
fn interrupted(signal: i32) -> ! {
    INTERRUPTED.store(true, Ordering::SeqCst);
    say(&format!(
        "gpu-doctor: interrupted by {}; ending its child processes; no verdict\n",
        process::signal_name(signal)
    ));
    process::end_all_children();
    // Held until the exit, so no temporary file is created after the removal.
    let temps = lock_within(&TEMPS, TEMP_LOCK_WAIT);
    if let Some(temps) = &temps {
        for path in temps.iter() {
            remove(path);
        }
    }
    exit_now(EXIT_SIGNAL_BASE + signal)
}

fn lock_within<T>(mutex: &Mutex<T>, wait: Duration) -> Option<MutexGuard<'_, T>> {
    let until = Instant::now() + wait;
    loop {
        match mutex.try_lock() {
            Ok(guard) => return Some(guard),
            Err(TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(TryLockError::WouldBlock) if Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(TryLockError::WouldBlock) => return None,
        }
    }
}

fn remove(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let _ = std::fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// Write to stderr without taking Rust's stderr lock, which another thread may hold.
#[cfg(unix)]
fn say(text: &str) {
    // SAFETY: write(2) reads `text.len()` bytes from a live &str; fd 2 may be closed, then it
    // fails harmlessly.
    unsafe {
        libc::write(2, text.as_ptr().cast(), text.len());
    }
}

#[cfg(not(unix))]
fn say(text: &str) {
    eprint!("{text}");
}

#[cfg(unix)]
fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) ends the process without running atexit handlers or destructors.
    unsafe { libc::_exit(code) }
}

#[cfg(not(unix))]
fn exit_now(code: i32) -> ! {
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temporary_file_is_recorded_while_it_exists_and_forgotten_after() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".report.json.tmp");
        let file = create_temp(&path, std::fs::File::create).unwrap();
        drop(file);
        assert!(TEMPS.lock().unwrap().contains(&path));
        forget_temp(&path);
        assert!(!TEMPS.lock().unwrap().contains(&path));
    }

    #[test]
    fn a_failed_creation_records_nothing() {
        let path = Path::new("/nonexistent-folder/x.tmp");
        assert!(create_temp(path, std::fs::File::create).is_err());
        assert!(!TEMPS.lock().unwrap().iter().any(|p| p == path));
    }
}
