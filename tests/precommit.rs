//! The pre-commit hook (.pre-commit-hooks.yaml) run by the real pre-commit (PyPI, cached by
//! tests/support/python-tools.sh) on a sample git repository holding three real virtual
//! environments.
//!
//! Every `make test` run (CI included): pre-commit validates the manifest, and
//! `pre-commit try-repo` runs the manifest's `gpu-doctor-system` hook (the same entry as the
//! `gpu-doctor` hook, taken from PATH, where the test puts the binary cargo built) and must
//! pass on warnings only and fail on an error. `make test-precommit` also runs the ignored test
//! below: `try-repo` of the `gpu-doctor` hook itself (`language: rust`), for which pre-commit
//! builds gpu-doctor from a clone of this repository with `cargo install` (a full release
//! build: many minutes).
//!
//! The machine: the tests put an empty `libnvidia-ml.so.1` on LD_LIBRARY_PATH, so that the quick
//! profile (which only looks where the loader would find the driver's library, and never loads
//! it) sees a driver library on this driverless machine, and CUDA_VISIBLE_DEVICES=0,banana,
//! which is a warning. The error comes from the live-result cache: `.venv-gpu` gets a torch
//! whose import fails, a standard run stores that answer, and the quick hook then fails on it
//! without starting Python.
#![cfg(unix)]

use gpu_doctor::probe::process::{self, CommandOutput};
use gpu_doctor::probe::python::cache::RACY_WINDOW;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
mod common;
mod python_tools;
use common::{run, write};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const MANIFEST: &str = ".pre-commit-hooks.yaml";
/// The hook's title in pre-commit's output.
const HOOK_NAME: &str = "gpu-doctor (quick)";
const TORCH_FAILS: &str = "import torch fails in .venv-gpu";

/// A scratch folder with the sample repository and everything the runs need.
struct Scene {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    sample: PathBuf,
    tools: PathBuf,
    /// Holds `gpu-doctor`, first on PATH for the system hook.
    bin: PathBuf,
    /// Variables for every pre-commit run.
    env: Vec<(String, String)>,
}

fn scene() -> Scene {
    let tmp = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap();
    let sample = sample_repository(&root);
    let bin = root.join("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_gpu-doctor"), bin.join("gpu-doctor")).unwrap();
    // An empty file where the loader looks first: the quick profile finds a driver library.
    write(&root.join("driver-lib/libnvidia-ml.so.1"), "");
    Scene {
        _tmp: tmp,
        root,
        sample,
        tools: python_tools::venv(),
        bin,
        env: Vec::new(),
    }
}

impl Scene {
    /// A command run in the sample repository with the scene's environment.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        // Not the tools' venv: the doctor would count it as the first environment on PATH.
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.current_dir(&self.sample)
            .env("PATH", path)
            .env("PRE_COMMIT_HOME", self.root.join("pre-commit-home"))
            .env("GPU_DOCTOR_CACHE_DIR", self.root.join("cache"))
            .env("LD_LIBRARY_PATH", self.root.join("driver-lib"))
            .env("CUDA_VISIBLE_DEVICES", "0,banana")
            .env("NO_COLOR", "1")
            .env_remove("GPU_DOCTOR_NO_CACHE")
            .env_remove("GPU_DOCTOR_PROJECT_DIR")
            .env_remove("VIRTUAL_ENV")
            .env_remove("CONDA_PREFIX");
        cmd
    }

    fn pre_commit(&self, args: &[&str], extra_env: &[(&str, &str)]) -> CommandOutput {
        let mut cmd = self.command(&python_tools::tool(&self.tools, "pre-commit"));
        cmd.args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        // The rust hook's first run builds gpu-doctor in release mode.
        let out =
            process::run(&mut cmd, Duration::from_secs(5400), 4 << 20).expect("pre-commit starts");
        // Shown for `--nocapture` runs (make test-precommit records it), and with a failure.
        println!(
            "$ pre-commit {} (exit {:?})\n{}",
            args.join(" "),
            out.code,
            output(&out)
        );
        out
    }

    /// `pre-commit try-repo REPO HOOK --all-files --verbose`.
    fn try_repo(&self, repo: &Path, hook: &str, extra_env: &[(&str, &str)]) -> CommandOutput {
        let repo = repo.to_str().unwrap();
        self.pre_commit(
            &["try-repo", repo, hook, "--all-files", "--verbose"],
            extra_env,
        )
    }

    /// A standard run in the sample repository, which stores each environment's live answer.
    fn standard_run(&self) {
        std::thread::sleep(RACY_WINDOW + Duration::from_millis(300));
        let out = process::run(
            self.command(&self.bin.join("gpu-doctor"))
                .args(["check", "--profile", "standard"]),
            Duration::from_secs(300),
            4 << 20,
        )
        .unwrap();
        assert!(
            out.stdout_text().contains(TORCH_FAILS),
            "the standard run sees the failing import:\n{}",
            out.stdout_text()
        );
    }
}

/// A git repository with three real virtual environments (not tracked: like a real project).
fn sample_repository(root: &Path) -> PathBuf {
    let sample = root.join("sample");
    fs::create_dir_all(&sample).unwrap();
    for env in [".venv", ".venv310", ".venv-gpu"] {
        run(
            Command::new("python3")
                .args(["-m", "venv", "--without-pip"])
                .arg(sample.join(env)),
            Duration::from_secs(120),
            "python3 -m venv",
        );
    }
    write(&sample.join(".gitignore"), ".venv*/\n");
    write(&sample.join("requirements.txt"), "torch\n");
    write(&sample.join("train.py"), "import torch\n");
    commit_all(&sample);
    sample
}

fn git(dir: &Path, args: &[&str]) -> String {
    run(
        Command::new("git")
            .args([
                "-c",
                "user.name=gpu-doctor tests",
                "-c",
                "user.email=tests@gpu-doctor.invalid",
                "-c",
                "commit.gpgsign=false",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(dir)
            .env_remove("GIT_DIR")
            .env_remove("GIT_INDEX_FILE")
            .env_remove("GIT_WORK_TREE"),
        Duration::from_secs(120),
        &format!("git {}", args.join(" ")),
    )
}

fn commit_all(dir: &Path) {
    git(dir, &["init", "-q"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "sample"]);
}

/// A git repository holding `files` of this working tree (paths relative to it), committed:
/// what pre-commit clones.
fn hook_repository(root: &Path, files: &[String]) -> PathBuf {
    let repo = root.join("hook-repo");
    for file in files {
        let from = Path::new(ROOT).join(file);
        // Deleted in the working tree but still in the index: not part of the tree.
        if !from.is_file() {
            continue;
        }
        let to = repo.join(file);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(&from, &to).unwrap();
    }
    commit_all(&repo);
    repo
}

/// Every file of this working tree that git would commit: tracked ones and untracked ones it
/// does not ignore (read-only git commands; the working tree's index is not touched).
fn working_tree_files() -> Vec<String> {
    let out = run(
        Command::new("git")
            .args([
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ])
            .current_dir(ROOT),
        Duration::from_secs(60),
        "git ls-files",
    );
    out.split('\0')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect()
}

/// A torch 2.5.1+cu124 in `.venv-gpu` (its files as a wheel installs them: dist-info,
/// version.py) whose import fails the way a missing CUDA library makes it.
fn break_torch(sample: &Path) {
    let lib = fs::read_dir(sample.join(".venv-gpu/lib"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .unwrap()
        .path();
    let site = lib.join("site-packages");
    write(
        &site.join("torch/__init__.py"),
        "raise OSError('libcudnn.so.9: cannot open shared object file: No such file or directory')\n",
    );
    write(
        &site.join("torch/version.py"),
        "__version__ = '2.5.1+cu124'\ncuda = '12.4'\n",
    );
    write(
        &site.join("torch-2.5.1+cu124.dist-info/METADATA"),
        "Metadata-Version: 2.1\nName: torch\nVersion: 2.5.1+cu124\n",
    );
    write(
        &site.join("torch-2.5.1+cu124.dist-info/WHEEL"),
        "Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp311-cp311-linux_x86_64\n",
    );
}

/// The hooks of the manifest, as JSON (read with the PyYAML pre-commit itself uses).
fn manifest_hooks(tools: &Path) -> Vec<Value> {
    let out = run(
        Command::new(tools.join("bin/python"))
            .args([
                "-c",
                "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
            ])
            .arg(Path::new(ROOT).join(MANIFEST)),
        Duration::from_secs(60),
        "reading the manifest",
    );
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .expect("a manifest is a list of hooks")
        .clone()
}

fn output(out: &CommandOutput) -> String {
    format!("{}{}", out.stdout_text(), out.stderr_text())
}

fn assert_passed_with_a_warning(out: &CommandOutput) {
    let text = output(out);
    assert_eq!(out.code, Some(0), "the hook passes on warnings:\n{text}");
    assert!(
        text.contains(HOOK_NAME) && text.contains("Passed"),
        "{text}"
    );
    assert!(text.contains("1 warning"), "the warning is shown:\n{text}");
    assert!(!text.contains(TORCH_FAILS), "{text}");
}

fn assert_failed_on_the_cached_error(out: &CommandOutput) {
    let text = output(out);
    assert_eq!(out.code, Some(1), "the hook fails on an error:\n{text}");
    assert!(text.contains("Failed"), "{text}");
    assert!(text.contains("- exit code: 1"), "{text}");
    assert!(text.contains(TORCH_FAILS), "{text}");
}

/// Pass on warnings; store a failing import with a standard run; fail on it; pass again when
/// the cache is switched off (the error came from the cached answer, not from the files).
/// Returns the first run's output.
fn pass_then_fail(scene: &Scene, repo: &Path, hook: &str) -> String {
    let first = scene.try_repo(repo, hook, &[]);
    assert_passed_with_a_warning(&first);
    break_torch(&scene.sample);
    scene.standard_run();
    assert_failed_on_the_cached_error(&scene.try_repo(repo, hook, &[]));
    assert_passed_with_a_warning(&scene.try_repo(repo, hook, &[("GPU_DOCTOR_NO_CACHE", "1")]));
    output(&first)
}

// ---------------------------------------------------------------------------------------------

#[test]
fn pre_commit_accepts_the_manifest_and_the_hooks_say_what_the_docs_say() {
    let tools = python_tools::venv();
    let out = run(
        Command::new(python_tools::tool(&tools, "pre-commit"))
            .args(["validate-manifest", MANIFEST])
            .current_dir(ROOT),
        Duration::from_secs(120),
        "pre-commit validate-manifest",
    );
    assert!(out.is_empty(), "{out}");

    let hooks = manifest_hooks(&tools);
    let ids: Vec<&str> = hooks.iter().map(|h| h["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["gpu-doctor", "gpu-doctor-system"]);
    for hook in &hooks {
        assert_eq!(hook["entry"], "gpu-doctor check --profile quick", "{hook}");
        assert_eq!(hook["pass_filenames"], false, "{hook}");
        assert_eq!(hook["always_run"], true, "{hook}");
        assert_eq!(hook["name"], HOOK_NAME, "{hook}");
    }
    assert_eq!(hooks[0]["language"], "rust");
    assert_eq!(hooks[1]["language"], "system");
}

#[test]
fn pre_commit_rejects_a_broken_manifest() {
    // The validation above can fail: a hook without its entry is refused.
    let tools = python_tools::venv();
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join(MANIFEST);
    write(&broken, "- id: gpu-doctor\n  name: x\n  language: rust\n");
    let out = process::run(
        Command::new(python_tools::tool(&tools, "pre-commit"))
            .args(["validate-manifest"])
            .arg(&broken),
        Duration::from_secs(120),
        1 << 20,
    )
    .unwrap();
    assert_eq!(out.code, Some(1), "{}", output(&out));
    assert!(output(&out).contains("entry"), "{}", output(&out));
}

#[test]
fn try_repo_runs_the_system_hook_which_passes_on_warnings_and_fails_on_errors() {
    let scene = scene();
    let repo = hook_repository(&scene.root, &[MANIFEST.to_string()]);
    pass_then_fail(&scene, &repo, "gpu-doctor-system");
}

/// `make test-precommit`: pre-commit builds the `gpu-doctor` hook (`language: rust`) from a
/// clone of this working tree with `cargo install`, then runs it. CARGO_TARGET_DIR keeps that
/// build in ${GPU_DOCTOR_TEST_CACHE:-~/.cache/gpu-doctor-tests}/pre-commit-target so that a
/// second run is incremental (cargo's own lock serializes two runs);
/// set it to an empty folder to time a first build.
#[test]
#[ignore = "builds gpu-doctor in release mode through pre-commit (many minutes): make test-precommit"]
fn try_repo_builds_the_rust_hook_with_cargo_and_runs_it() {
    let mut scene = scene();
    let repo = hook_repository(&scene.root, &working_tree_files());
    let target = std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| {
        let cache = std::env::var_os("GPU_DOCTOR_TEST_CACHE").map_or_else(
            || PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/gpu-doctor-tests"),
            PathBuf::from,
        );
        cache.join("pre-commit-target").into_os_string()
    });
    scene.env.push((
        "CARGO_TARGET_DIR".into(),
        target.to_string_lossy().into_owned(),
    ));
    let first = pass_then_fail(&scene, &repo, "gpu-doctor");
    assert!(
        first.contains("[INFO] Installing environment"),
        "pre-commit built the hook:\n{first}"
    );
}
