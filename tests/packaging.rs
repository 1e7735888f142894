//! The Python packaging (pyproject.toml: maturin, bindings = "bin") through its real consumers:
//! maturin builds the wheel, and pip (in a fresh `python3 -m venv`), uvx and `pipx run` install
//! it and run the gpu-doctor it carries. All four come from PyPI, cached by
//! tests/support/python-tools.sh; installs are offline (the wheel is local).
//!
//! Every `make test` run (CI included) builds the wheel from the dev profile, which reuses what
//! `cargo test` has just built (maturin runs the same cargo command, so nothing is rebuilt)
//! and checks the installed doctor against the binary cargo built. `make test-pip` also runs
//! the ignored test: the release wheel (what would be published) and the sdist.
#![cfg(unix)]

use gpu_doctor::probe::process::{self, CommandOutput};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
mod common;
mod python_tools;
use common::{real_venv, run, sandbox, Sandbox};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `maturin build ARGS --out DIR`; returns the one wheel it wrote.
fn build_wheel(tools: &Path, args: &[&str], out: &Path) -> PathBuf {
    let mut cmd = Command::new(python_tools::tool(tools, "maturin"));
    cmd.arg("build")
        .args(args)
        .args(["--locked", "--out"])
        .arg(out)
        .current_dir(ROOT);
    // A release build of llama.cpp and the doctor takes many minutes on two cores.
    run(&mut cmd, Duration::from_secs(5400), "maturin build");
    let wheels: Vec<PathBuf> = fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "whl"))
        .collect();
    assert_eq!(wheels.len(), 1, "{wheels:?}");
    wheels.into_iter().next().unwrap()
}

/// The wheel's file list and METADATA, read with Python's zipfile.
fn wheel_contents(wheel: &Path) -> (Vec<String>, String) {
    let script = "import json, sys, zipfile\n\
                  z = zipfile.ZipFile(sys.argv[1])\n\
                  names = z.namelist()\n\
                  meta = [n for n in names if n.endswith('.dist-info/METADATA')]\n\
                  print(json.dumps([names, z.read(meta[0]).decode()]))";
    let out = run(
        Command::new("python3").arg("-c").arg(script).arg(wheel),
        Duration::from_secs(120),
        "reading the wheel",
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let names = v[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    (names, v[1].as_str().unwrap().to_string())
}

fn check_wheel_layout(wheel: &Path) {
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!("gpu_doctor_cli-{VERSION}-py3-none-")),
        "a binary wheel for any Python 3: {name}"
    );
    // A Linux platform tag (manylinux_2_NN_x86_64 where auditwheel's check allows it).
    assert!(
        name.contains("linux") && (name.ends_with("_x86_64.whl") || name.ends_with("_aarch64.whl")),
        "{name}"
    );
    let (names, metadata) = wheel_contents(wheel);
    let script = format!("gpu_doctor_cli-{VERSION}.data/scripts/gpu-doctor");
    assert!(names.contains(&script), "{names:?}");
    for line in [
        "Name: gpu-doctor-cli".to_string(),
        format!("Version: {VERSION}"),
        "Requires-Python: >=3.8".to_string(),
        "Classifier: Programming Language :: Rust".to_string(),
    ] {
        assert!(
            metadata.lines().any(|l| l == line),
            "METADATA lacks {line:?}:\n{metadata}"
        );
    }
    assert!(
        metadata.contains("# gpu-doctor"),
        "the README is the description"
    );
}

/// A project with one real venv, and a command that runs a gpu-doctor there the same way each
/// time (no configuration, its own cache folder, no colour).
fn project() -> Sandbox {
    let sb = sandbox();
    real_venv(&sb.project.join(".venv"));
    sb
}

fn doctor_in(sb: &Sandbox, program: &Path, args: &[&str]) -> CommandOutput {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(&sb.project)
        .env("HOME", &sb.home)
        .env("GPU_DOCTOR_CACHE_DIR", sb.root.join("cache"))
        .env("GPU_DOCTOR_NO_CONFIG", "1")
        .env("NO_COLOR", "1")
        .env_remove("VIRTUAL_ENV")
        .env_remove("GPU_DOCTOR_PROJECT_DIR");
    process::run(&mut cmd, Duration::from_secs(120), 4 << 20).unwrap()
}

/// Install the wheel into a fresh venv with pip and run the doctor it put in bin/: its
/// version, and a quick check whose verdict and report equal those of the binary cargo built.
fn pip_install_and_run(wheel: &Path, reference: &Path) {
    let sb = project();
    let venv = sb.root.join("fresh-venv");
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        Duration::from_secs(180),
        "python3 -m venv",
    );
    run(
        Command::new(venv.join("bin/python"))
            .args(["-m", "pip", "install", "--no-index", "--quiet"])
            .arg(wheel)
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .env_remove("PIP_FIND_LINKS"),
        Duration::from_secs(300),
        "pip install the wheel",
    );
    let installed = venv.join("bin/gpu-doctor");
    assert!(installed.is_file(), "pip put gpu-doctor in the venv's bin/");

    let version = doctor_in(&sb, &installed, &["--version"]);
    assert_eq!(version.code, Some(0), "{}", version.stderr_text());
    assert_eq!(
        version.stdout_text().trim(),
        format!("gpu-doctor {VERSION}")
    );

    let args = ["check", "--profile", "quick"];
    let from_wheel = doctor_in(&sb, &installed, &args);
    let from_cargo = doctor_in(&sb, reference, &args);
    assert!(
        matches!(from_wheel.code, Some(0) | Some(1)),
        "a verdict: {from_wheel:?}"
    );
    assert_eq!(from_wheel.code, from_cargo.code);
    assert_eq!(from_wheel.stdout_text(), from_cargo.stdout_text());
    assert!(
        from_wheel.stdout_text().contains(".venv"),
        "{}",
        from_wheel.stdout_text()
    );
}

/// `uvx --from WHEEL gpu-doctor --version` and `pipx run --spec WHEEL gpu-doctor --version`,
/// offline, with their own homes.
fn uvx_and_pipx_run(tools: &Path, wheel: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let wheel = wheel.to_str().unwrap();
    let want = format!("gpu-doctor {VERSION}");
    let uvx = run(
        Command::new(python_tools::tool(tools, "uvx"))
            .args(["--offline", "--no-python-downloads", "--from", wheel])
            .args(["gpu-doctor", "--version"])
            .env("UV_CACHE_DIR", tmp.path().join("uv-cache"))
            .env("UV_TOOL_DIR", tmp.path().join("uv-tools")),
        Duration::from_secs(300),
        "uvx --from <wheel> gpu-doctor --version",
    );
    assert_eq!(uvx.trim(), want);
    let pipx = run(
        Command::new(python_tools::tool(tools, "pipx"))
            .args(["run", "--spec", wheel, "gpu-doctor", "--version"])
            .env("PIPX_HOME", tmp.path().join("pipx-home"))
            .env("PIPX_BIN_DIR", tmp.path().join("pipx-bin"))
            .env("PIP_NO_INDEX", "1")
            .env_remove("PIP_FIND_LINKS"),
        Duration::from_secs(300),
        "pipx run --spec <wheel> gpu-doctor --version",
    );
    assert_eq!(pipx.trim(), want);
}

#[test]
fn pyproject_builds_with_maturin_as_a_bin_wheel_without_configuring_the_doctor() {
    let text = fs::read_to_string(Path::new(ROOT).join("pyproject.toml")).unwrap();
    let doc: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(
        doc["build-system"]["build-backend"].as_str(),
        Some("maturin")
    );
    assert_eq!(doc["tool"]["maturin"]["bindings"].as_str(), Some("bin"));
    assert_eq!(doc["project"]["name"].as_str(), Some("gpu-doctor-cli"));
    // The version is Cargo's, never a second copy to keep in step.
    assert!(doc["project"].get("version").is_none());
    assert_eq!(
        doc["project"]["dynamic"].as_array().unwrap()[0].as_str(),
        Some("version")
    );
    // This repository's own pyproject.toml must not become gpu-doctor's configuration.
    assert!(doc["tool"].get("gpu-doctor").is_none());
}

/// The CI jobs `gpu-doctor init` writes, and docs/ci.md, install this distribution by its
/// PyPI name: `pip install gpu-doctor` would install an unrelated project of that name.
#[test]
fn ci_templates_install_the_distribution_named_in_pyproject() {
    let text = fs::read_to_string(Path::new(ROOT).join("pyproject.toml")).unwrap();
    let doc: toml::Table = toml::from_str(&text).unwrap();
    let name = doc["project"]["name"].as_str().unwrap();
    for file in [
        "src/config/templates/github-workflow.yml",
        "src/config/templates/gitlab-job.yml",
        "docs/ci.md",
    ] {
        let text = fs::read_to_string(Path::new(ROOT).join(file)).unwrap();
        let installs: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split(" install --quiet ").nth(1))
            .collect();
        assert!(
            !installs.is_empty(),
            "{file}: no `pip install --quiet` line"
        );
        for what in installs {
            let package = what.trim_end_matches('\'').trim();
            assert_eq!(package, name, "{file} installs {package}");
        }
    }
}

#[test]
fn a_wheel_built_by_maturin_runs_after_pip_install_uvx_and_pipx_run() {
    let tools = python_tools::venv();
    let out = tempfile::tempdir().unwrap();
    // The dev profile: the same cargo command `cargo test` ran, so nothing is rebuilt.
    let wheel = build_wheel(&tools, &["--profile", "dev"], out.path());
    check_wheel_layout(&wheel);
    pip_install_and_run(&wheel, Path::new(env!("CARGO_BIN_EXE_gpu-doctor")));
    uvx_and_pipx_run(&tools, &wheel);
}

/// `make test-pip`: the release wheel (stripped by the release profile) and the sdist that
/// `pip install` builds from where no wheel fits.
#[test]
#[ignore = "a release build (many minutes): make test-pip"]
fn the_release_wheel_and_the_sdist() {
    let tools = python_tools::venv();
    let out = tempfile::tempdir().unwrap();
    let wheel = build_wheel(&tools, &["--release"], out.path());
    check_wheel_layout(&wheel);
    let size = fs::metadata(&wheel).unwrap().len();
    println!("release wheel: {} ({} bytes)", wheel.display(), size);
    assert!(size < 64 << 20, "{size} bytes");
    pip_install_and_run(&wheel, Path::new(env!("CARGO_BIN_EXE_gpu-doctor")));
    uvx_and_pipx_run(&tools, &wheel);

    let sdist_dir = tempfile::tempdir().unwrap();
    run(
        Command::new(python_tools::tool(&tools, "maturin"))
            .args(["sdist", "--out"])
            .arg(sdist_dir.path())
            .current_dir(ROOT),
        Duration::from_secs(600),
        "maturin sdist",
    );
    let sdist = fs::read_dir(sdist_dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .expect("an sdist");
    let listing = run(
        Command::new("tar").arg("tzf").arg(&sdist),
        Duration::from_secs(60),
        "tar tzf",
    );
    let top = format!("gpu_doctor_cli-{VERSION}/");
    for needed in [
        "pyproject.toml",
        "Cargo.toml",
        "Cargo.lock",
        "README.md",
        "src/main.rs",
        "src/probe/python/probe_script.py",
        "rules/core.toml",
        "fixtures/facts/h100-python.json",
    ] {
        assert!(
            listing.lines().any(|l| l == format!("{top}{needed}")),
            "the sdist lacks {needed}"
        );
    }
}
