//! Environments that Poetry and pyenv keep for a project, found through the real binary: the
//! Poetry ones made by real Poetry from PyPI (a tool venv made once by
//! tests/support/pinned-venv.sh), the pyenv ones laid out as pyenv and pyenv-virtualenv lay
//! them out, around real interpreters.
#![cfg(unix)]

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
mod common;
use common::{real_venv, run, sandbox, write, Sandbox};

const POETRY_PIN: &str = "poetry==2.5.1";
const HATCH_PIN: &str = "hatch==1.18.2";

/// A tool from PyPI at a pinned version, in its cached tool venv.
fn pinned_tool(name: &str, pin: &str) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/pinned-venv.sh");
    let venv = run(
        Command::new("bash").arg(script).args([name, pin]),
        Duration::from_secs(900),
        &format!("tests/support/pinned-venv.sh {name} (needs PyPI on a cold cache)"),
    );
    PathBuf::from(venv.trim()).join("bin").join(name)
}

/// Variables of the tools' own that a developer's shell may carry, removed from every run.
const TOOL_VARS: &[&str] = &[
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "POETRY_CACHE_DIR",
    "POETRY_CONFIG_DIR",
    "POETRY_VIRTUALENVS_PATH",
    "POETRY_VIRTUALENVS_IN_PROJECT",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "PYENV_VERSION",
    "PYENV_ROOT",
    "HATCH_DATA_DIR",
];

fn isolated(cmd: &mut Command, sb: &Sandbox) {
    cmd.current_dir(&sb.project).env("HOME", &sb.home);
    for var in TOOL_VARS {
        cmd.env_remove(var);
    }
}

/// Run a tool in the project with the sandbox's home (its default cache, config and data
/// folders).
fn run_tool(sb: &Sandbox, tool: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new(tool);
    cmd.args(args);
    isolated(&mut cmd, sb);
    let what = format!("{} {args:?}", tool.display());
    run(&mut cmd, Duration::from_secs(300), &what)
        .trim()
        .to_string()
}

fn facts(sb: &Sandbox, profile: &str, vars: &[(&str, String)]) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"));
    cmd.args(["facts", "--profile", profile])
        .env("GPU_DOCTOR_NO_CONFIG", "1")
        .env("GPU_DOCTOR_NO_CACHE", "1");
    isolated(&mut cmd, sb);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("gpu-doctor runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("facts are JSON")
}

fn by_path<'a>(facts: &'a Value, path: &Path) -> Option<&'a Value> {
    let canonical = fs::canonicalize(path).ok()?;
    facts["python"]["environments"]
        .as_array()?
        .iter()
        .find(|e| e["canonical_path"] == canonical.to_str().unwrap())
}

fn found_by(env: &Value) -> Vec<&str> {
    env["found_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

#[test]
fn real_poetry_environments_are_found_and_named_in_the_cache_and_in_the_project() {
    let poetry = pinned_tool("poetry", POETRY_PIN);
    let sb = sandbox();
    // A name Poetry normalizes ("my-proj-gpu") and a folder name with a dot.
    let project_dir = sb.project.clone();
    write(
        &project_dir.join("pyproject.toml"),
        "[project]\nname = \"My_Proj.Gpu\"\nversion = \"0.1.0\"\nrequires-python = \">=3.8\"\n\
         dependencies = []\n\n[tool.poetry]\npackage-mode = false\n",
    );
    run_tool(&sb, &poetry, &["env", "use", "python3"]);
    let cached = PathBuf::from(run_tool(&sb, &poetry, &["env", "info", "--path"]));
    assert!(
        cached.starts_with(sb.home.join(".cache/pypoetry/virtualenvs")),
        "Poetry's default place: {}",
        cached.display()
    );

    let f = facts(&sb, "quick", &[]);
    let env = by_path(&f, &cached).unwrap_or_else(|| panic!("not found: {:#}", f["python"]));
    assert_eq!(found_by(env), ["poetry"]);
    let poetry_name = cached.file_name().unwrap().to_str().unwrap();
    assert!(poetry_name.starts_with("my-proj-gpu-"), "{poetry_name}");
    assert_eq!(env["tool_name"], poetry_name);
    assert_eq!(env["kind"], "venv");
    assert_eq!(env["python_exists"], true);

    // In the project: Poetry now uses .venv, and so does the doctor.
    run_tool(&sb, &poetry, &["env", "remove", "--all"]);
    run_tool(
        &sb,
        &poetry,
        &["config", "virtualenvs.in-project", "true", "--local"],
    );
    run_tool(&sb, &poetry, &["env", "use", "python3"]);
    let in_project = PathBuf::from(run_tool(&sb, &poetry, &["env", "info", "--path"]));
    assert_eq!(in_project, sb.project.join(".venv"));
    let f = facts(&sb, "quick", &[]);
    let env = by_path(&f, &in_project).expect("the in-project environment");
    assert_eq!(found_by(env), ["project", "poetry"]);
    assert_eq!(env["name"], ".venv");
    // Made again where Poetry kept it before, it is still not the project's environment.
    fs::create_dir_all(&cached).unwrap();
    fs::write(cached.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
    let f = facts(&sb, "quick", &[]);
    assert!(
        by_path(&f, &cached).is_none(),
        "with in-project set, Poetry does not use the cached environment"
    );
}

/// A pyenv root with one Python installation (the real one that runs python3, linked in as
/// pyenv's versions are folders of real installations) and one pyenv-virtualenv environment.
fn pyenv_root(sb: &Sandbox) -> (PathBuf, String) {
    let root = sb.root.join("pyenv");
    let prefix = run(
        Command::new("python3").args(["-c", "import sys; print(sys.base_prefix)"]),
        Duration::from_secs(30),
        "python3",
    );
    let version = run(
        Command::new("python3")
            .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"]),
        Duration::from_secs(30),
        "python3",
    )
    .trim()
    .to_string();
    fs::create_dir_all(root.join("versions")).unwrap();
    std::os::unix::fs::symlink(prefix.trim(), root.join("versions").join(&version)).unwrap();
    // pyenv-virtualenv: versions/X.Y.Z/envs/NAME, and versions/NAME linking to it.
    let holder = root.join("versions/3.10.99/envs/gpu");
    real_venv(&holder);
    std::os::unix::fs::symlink(&holder, root.join("versions/gpu")).unwrap();
    (root, version)
}

#[test]
fn pyenv_versions_and_virtualenvs_named_by_python_version_or_pyenv_version_are_found() {
    let sb = sandbox();
    let (root, version) = pyenv_root(&sb);
    write(
        &sb.root.join(".python-version"),
        "# the project's environment\ngpu\n",
    );
    let root_var = ("PYENV_ROOT", root.to_string_lossy().into_owned());

    // .python-version in a folder above the project, as pyenv searches.
    let f = facts(&sb, "standard", std::slice::from_ref(&root_var));
    let gpu = by_path(&f, &root.join("versions/gpu")).expect("the pyenv-virtualenv environment");
    assert_eq!(found_by(gpu), ["pyenv"]);
    assert_eq!(gpu["tool_name"], "gpu");
    assert_eq!(gpu["kind"], "venv");
    assert_eq!(gpu["live"]["status"], "ok", "{:#}", gpu["live"]);

    // PYENV_VERSION wins over the file; "3.11" names the newest installed 3.11.x.
    let major_minor: String = version.split('.').take(2).collect::<Vec<_>>().join(".");
    let f = facts(
        &sb,
        "quick",
        &[root_var, ("PYENV_VERSION", format!("{major_minor}:system"))],
    );
    let installed = root.join("versions").join(&version);
    let env = by_path(&f, &installed).unwrap_or_else(|| panic!("{:#}", f["python"]));
    assert_eq!(found_by(env), ["pyenv"]);
    assert_eq!(env["tool_name"], version.as_str());
    assert_eq!(env["python_exists"], true);
    assert!(by_path(&f, &root.join("versions/gpu")).is_none());
}

#[test]
fn real_hatch_environments_are_found_and_named() {
    let hatch = pinned_tool("hatch", HATCH_PIN);
    let sb = sandbox();
    write(
        &sb.project.join("pyproject.toml"),
        "[project]\nname = \"Hatch_Proj.Gpu\"\nversion = \"0.1.0\"\n\n\
         [tool.hatch.envs.default]\nskip-install = true\n\n\
         [tool.hatch.envs.gpu]\nskip-install = true\n",
    );
    run_tool(&sb, &hatch, &["env", "create"]);
    run_tool(&sb, &hatch, &["env", "create", "gpu"]);
    let default = PathBuf::from(run_tool(&sb, &hatch, &["env", "find"]));
    let gpu = PathBuf::from(run_tool(&sb, &hatch, &["env", "find", "gpu"]));
    assert!(
        gpu.starts_with(sb.home.join(".local/share/hatch/env/virtual")),
        "Hatch's default place: {}",
        gpu.display()
    );

    let f = facts(&sb, "quick", &[]);
    for (path, name) in [(&default, "hatch-proj-gpu"), (&gpu, "gpu")] {
        let env = by_path(&f, path).unwrap_or_else(|| panic!("{name}: {:#}", f["python"]));
        assert_eq!(found_by(env), ["hatch"]);
        assert_eq!(env["tool_name"], name);
        assert_eq!(env["kind"], "venv");
    }
}

#[test]
fn the_interpreter_named_by_pdm_python_is_found() {
    let sb = sandbox();
    // PDM's environments outside the project: {data}/pdm/venvs/NAME-HASH-ENV.
    let env_dir = sb.home.join(".local/share/pdm/venvs/proj-AbCdEf12-gpu");
    real_venv(&env_dir);
    write(
        &sb.project.join(".pdm-python"),
        &format!("{}\n", env_dir.join("bin/python").display()),
    );
    let f = facts(&sb, "quick", &[]);
    let env = by_path(&f, &env_dir).unwrap_or_else(|| panic!("{:#}", f["python"]));
    assert_eq!(found_by(env), ["pdm"]);
}
