//! The Python-side consumers of gpu-doctor (pre-commit, maturin, uv, pipx from PyPI), made once
//! by tests/support/python-tools.sh into a cached virtual environment.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::Command;

/// The tools' virtual environment (its bin/ has pre-commit, maturin, uv, uvx, pipx).
pub fn venv() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/python-tools.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("run tests/support/python-tools.sh");
    assert!(
        out.status.success(),
        "tests/support/python-tools.sh failed ({}); it needs python3-venv and, on a cold cache, PyPI:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// One of the tools, by name.
pub fn tool(venv: &Path, name: &str) -> PathBuf {
    venv.join("bin").join(name)
}
