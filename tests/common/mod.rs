//! Helpers shared by the integration tests that build real Python environments.
#![allow(dead_code)] // each test binary uses its own subset

use gpu_doctor::probe::process;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

pub fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// Run a command under a deadline; return its stdout, panic with its output when it fails.
pub fn run(cmd: &mut Command, deadline: Duration, what: &str) -> String {
    let out = process::run(cmd, deadline, 1 << 20)
        .unwrap_or_else(|e| panic!("{what}: could not start: {e}"));
    assert!(
        out.success(),
        "{what} failed ({}): {}",
        out.describe_end(),
        out.stderr_text()
    );
    out.stdout_text()
}

/// A real venv made by `python3 -m venv`; returns its site-packages folder.
pub fn real_venv(dir: &Path) -> PathBuf {
    run(
        Command::new("python3")
            .args(["-m", "venv", "--without-pip"])
            .arg(dir),
        Duration::from_secs(120),
        "these tests need python3 with the venv module: python3 -m venv",
    );
    let python = fs::read_dir(dir.join("lib"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .expect("a venv has lib/python3.X");
    let site = python.path().join("site-packages");
    assert!(site.is_dir(), "{} missing", site.display());
    site
}

/// A temporary root with a project folder and a home folder.
pub struct Sandbox {
    _tmp: TempDir,
    pub root: PathBuf,
    pub project: PathBuf,
    pub home: PathBuf,
}

pub fn sandbox() -> Sandbox {
    let tmp = tempfile::tempdir().unwrap();
    // Canonical, so that paths the probe canonicalizes compare equal (macOS /var -> /private).
    let root = fs::canonicalize(tmp.path()).unwrap();
    let project = root.join("project");
    let home = root.join("home");
    fs::create_dir_all(&project).unwrap();
    fs::create_dir_all(&home).unwrap();
    Sandbox {
        _tmp: tmp,
        root,
        project,
        home,
    }
}
