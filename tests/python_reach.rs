//! Packages an environment reaches outside its own site-packages, read statically (quick
//! profile) and live (standard profile) through the real binary, with the same answer.
//!
//! Everything here is real: interpreters, `python -m venv --system-site-packages`, `.pth`
//! files that site.py reads, `pip install` (into a base installation, into another venv, and
//! `pip install -e` of a local project). The package is a small stand-in torch (a real project
//! built by pip into a real wheel; its `version.py` has the layout of torch's, and
//! `torch.cuda.is_available()` answers False), because real torch is gigabytes.
//!
//! The base installation for `--system-site-packages` needs site-packages of its own that a
//! test may write to: a real system interpreter (one that links libpython statically) copied
//! into a prefix of its own with the standard library linked in; CPython finds its prefix from
//! the interpreter's location, so it is a Python installation like any other.
#![cfg(unix)]

use gpu_doctor::probe::python::cache::{CACHE_DIR_VAR, NO_CACHE_VAR, RACY_WINDOW};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
mod common;
use common::{run, sandbox, write, Sandbox};

const PIP_TIMEOUT: Duration = Duration::from_secs(300);

/// A local project `torch` 2.5.1+cpu (flat layout, setuptools), like a CPU build of torch.
fn stand_in_torch(dir: &Path) -> PathBuf {
    write(
        &dir.join("pyproject.toml"),
        "[build-system]\nrequires = [\"setuptools>=64\"]\nbuild-backend = \"setuptools.build_meta\"\n\
         [project]\nname = \"torch\"\nversion = \"2.5.1+cpu\"\n\
         [tool.setuptools]\npackages = [\"torch\"]\n",
    );
    write(
        &dir.join("torch/__init__.py"),
        "__version__ = '2.5.1+cpu'\nfrom . import version, cuda\n",
    );
    write(
        &dir.join("torch/version.py"),
        "from typing import Optional\n__version__ = '2.5.1+cpu'\ndebug = False\n\
         cuda: Optional[str] = None\nhip: Optional[str] = None\n",
    );
    write(
        &dir.join("torch/cuda.py"),
        "def is_available():\n    return False\n\ndef get_arch_list():\n    return []\n",
    );
    dir.to_path_buf()
}

/// `python3 -m pip ARGS` (the pip of the interpreter that runs the tests), quietly.
fn pip(args: &[&str], what: &str) {
    run(
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "--disable-pip-version-check",
                "--no-input",
                "-q",
            ])
            .args(args)
            .env("PIP_FIND_LINKS", ""),
        PIP_TIMEOUT,
        &format!("{what} (needs pip and, for setuptools, PyPI)"),
    );
}

fn python_out(python: &Path, code: &str) -> String {
    run(
        Command::new(python).args(["-c", code]),
        Duration::from_secs(60),
        &format!("{} -c", python.display()),
    )
    .trim()
    .to_string()
}

fn venv(python: &Path, dir: &Path, system_site: bool) -> PathBuf {
    let mut cmd = Command::new(python);
    cmd.args(["-m", "venv", "--without-pip"]);
    if system_site {
        cmd.arg("--system-site-packages");
    }
    run(cmd.arg(dir), Duration::from_secs(120), "python -m venv");
    PathBuf::from(python_out(
        &dir.join("bin/python"),
        "import sysconfig; print(sysconfig.get_paths()['purelib'])",
    ))
}

/// A system interpreter that links libpython statically: it finds its prefix from where it
/// is, so a copy of it is a Python installation of its own.
fn static_system_python() -> PathBuf {
    let mut candidates = vec![PathBuf::from("/usr/bin/python3")];
    if let Ok(path) = which_python3() {
        candidates.push(path);
    }
    for candidate in candidates {
        let Ok(real) = fs::canonicalize(&candidate) else {
            continue;
        };
        let Ok(info) = gpu_doctor::probe::elf::read_dynamic(&real) else {
            continue;
        };
        if !info.needed.iter().any(|n| n.starts_with("libpython")) {
            return real;
        }
    }
    panic!(
        "this test needs a python3 that links libpython statically (Debian's and Ubuntu's \
         /usr/bin/python3 do): apt-get install python3"
    );
}

fn which_python3() -> Result<PathBuf, String> {
    let out = python_out(Path::new("python3"), "import sys; print(sys.executable)");
    Ok(PathBuf::from(out))
}

/// A Python installation at `prefix`: the interpreter copied in, its standard library linked
/// file by file (so that its site-packages folders are this prefix's own). Returns the
/// interpreter and the site-packages folder `pip install` would use.
fn base_installation(prefix: &Path) -> (PathBuf, PathBuf) {
    let system = static_system_python();
    let python = prefix.join("bin/python3");
    fs::create_dir_all(prefix.join("bin")).unwrap();
    fs::copy(&system, &python).unwrap();
    let stdlib = PathBuf::from(python_out(
        &system,
        "import sysconfig; print(sysconfig.get_paths()['stdlib'])",
    ));
    let own_stdlib = prefix.join("lib").join(stdlib.file_name().unwrap());
    fs::create_dir_all(&own_stdlib).unwrap();
    for entry in fs::read_dir(&stdlib).unwrap().flatten() {
        let name = entry.file_name();
        if name == "site-packages" || name == "dist-packages" {
            continue;
        }
        std::os::unix::fs::symlink(entry.path(), own_stdlib.join(name)).unwrap();
    }
    let site = PathBuf::from(python_out(
        &python,
        "import site; print(site.getsitepackages()[0])",
    ));
    assert!(
        site.starts_with(prefix),
        "the copied interpreter must run from its own prefix: {}",
        site.display()
    );
    fs::create_dir_all(&site).unwrap();
    (python, site)
}

/// `gpu-doctor facts --profile PROFILE` of the sandbox's project.
fn facts(sb: &Sandbox, profile: &str, cache: bool) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"));
    cmd.args(["facts", "--profile", profile])
        .current_dir(&sb.project)
        .env("HOME", &sb.home)
        .env("GPU_DOCTOR_NO_CONFIG", "1")
        .env(CACHE_DIR_VAR, sb.root.join("cache"))
        .env_remove("VIRTUAL_ENV")
        .env_remove("CONDA_PREFIX")
        .env_remove("PYTHONUSERBASE")
        .env_remove("PYTHONNOUSERSITE");
    if cache {
        cmd.env_remove(NO_CACHE_VAR);
    } else {
        cmd.env(NO_CACHE_VAR, "1");
    }
    let out = cmd.output().expect("gpu-doctor runs");
    assert!(
        out.status.success(),
        "gpu-doctor facts --profile {profile}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("facts are JSON")
}

fn environment<'a>(facts: &'a Value, name: &str) -> &'a Value {
    facts["python"]["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no environment {name}: {:#}", facts["python"]))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The folders on sys.path, as the static tier predicts them (editable finders' folders are
/// not on sys.path: the finder is on sys.meta_path).
fn static_sys_path(env: &Value) -> Vec<String> {
    env["import_paths"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["reached_by"] != "editable")
        .map(|p| p["path"].as_str().unwrap().to_string())
        .collect()
}

/// Where each tier found torch, asserting they agree: the static view's `found_in` and the
/// interpreter's import location, the version, and the whole list of package folders.
fn assert_same_answer(quick: &Value, standard: &Value, name: &str) -> Value {
    let q = environment(quick, name);
    let s = environment(standard, name);
    assert!(
        q["live"].is_null(),
        "{name}: the quick profile runs nothing"
    );
    let torch = &q["torch"];
    assert_eq!(torch["installed"], true, "{name}: {:#}", q);
    assert_eq!(torch["version"], "2.5.1+cpu", "{name}");
    assert_eq!(torch["cuda_build"], false, "{name}");
    let live = &s["live"];
    assert_eq!(live["status"], "ok", "{name}: {:#}", live);
    assert_eq!(
        live["torch"]["import_ok"], true,
        "{name}: {:#}",
        live["torch"]
    );
    assert_eq!(live["torch"]["version"], torch["version"], "{name}");
    assert_eq!(
        live["torch"]["location"], torch["found_in"]["path"],
        "{name}: static and live must find torch in the same folder"
    );
    assert_eq!(
        strings(&live["import_paths"]),
        static_sys_path(q),
        "{name}: the static import paths are the interpreter's sys.path"
    );
    assert_eq!(s["torch"]["found_in"], torch["found_in"], "{name}");
    assert_eq!(
        s["static_live_differences"],
        Value::Array(vec![]),
        "{name}: {:#}",
        s
    );
    torch["found_in"].clone()
}

#[test]
fn system_site_packages_pth_lines_and_editable_installs_are_read_like_the_interpreter() {
    let sb = sandbox();
    let project = stand_in_torch(&sb.root.join("torch-src"));
    let wheels = sb.root.join("wheels");
    pip(
        &[
            "wheel",
            "--no-deps",
            "-w",
            wheels.to_str().unwrap(),
            project.to_str().unwrap(),
        ],
        "pip wheel of the stand-in torch",
    );
    let wheel = fs::read_dir(&wheels)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".whl"))
        .expect("pip built a wheel")
        .path();
    let wheel = wheel.to_str().unwrap();

    // 1. A base installation holding torch, and a venv made with --system-site-packages.
    let (base_python, base_site) = base_installation(&sb.root.join("base"));
    pip(
        &[
            "install",
            "--no-deps",
            "--target",
            base_site.to_str().unwrap(),
            wheel,
        ],
        "pip install into the base",
    );
    venv(&base_python, &sb.project.join(".venv-system"), true);

    // 2. Another venv holding torch, reached through a .pth line.
    let torch_venv = sb.root.join("opt/torch/.venv");
    let torch_site = venv(Path::new("python3"), &torch_venv, false);
    let torch_python = torch_venv.join("bin/python");
    pip(
        &[
            "--python",
            torch_python.to_str().unwrap(),
            "install",
            "--no-deps",
            wheel,
        ],
        "pip install into the torch venv",
    );
    let pth_site = venv(Path::new("python3"), &sb.project.join(".venv-pth"), false);
    write(
        &pth_site.join("torch-venv.pth"),
        &format!(
            "# torch comes from the shared venv\n{}\n",
            torch_site.display()
        ),
    );

    // 3. An editable install of the local project.
    venv(
        Path::new("python3"),
        &sb.project.join(".venv-editable"),
        false,
    );
    let editable_python = sb.project.join(".venv-editable/bin/python");
    pip(
        &[
            "--python",
            editable_python.to_str().unwrap(),
            "install",
            "--no-deps",
            "-e",
            project.to_str().unwrap(),
        ],
        "pip install -e",
    );

    let quick = facts(&sb, "quick", false);
    let standard = facts(&sb, "standard", false);

    let found = assert_same_answer(&quick, &standard, ".venv-system");
    assert_eq!(found["reached_by"], "base-site-packages");
    assert_eq!(found["path"], base_site.to_str().unwrap());
    let cfg = sb.project.join(".venv-system/pyvenv.cfg");
    assert_eq!(found["via"], cfg.to_str().unwrap());

    let found = assert_same_answer(&quick, &standard, ".venv-pth");
    assert_eq!(found["reached_by"], "pth");
    assert_eq!(found["path"], torch_site.to_str().unwrap());
    let pth = pth_site.join("torch-venv.pth");
    assert_eq!(found["via"], pth.to_str().unwrap());

    let found = assert_same_answer(&quick, &standard, ".venv-editable");
    assert_eq!(found["reached_by"], "editable");
    assert_eq!(found["path"], project.to_str().unwrap());
    let via = found["via"].as_str().unwrap();
    assert!(
        via.contains("__editable__") && via.ends_with("_finder.py"),
        "{via}"
    );
    let editable = environment(&quick, ".venv-editable");
    assert_eq!(
        editable["torch"]["editable_source"],
        project.to_str().unwrap()
    );
}

#[test]
fn a_change_in_torch_reached_through_a_pth_line_invalidates_the_cached_answer() {
    let sb = sandbox();
    let shared = sb.root.join("shared-site");
    stand_in_torch(&sb.root.join("torch-src"));
    // The package folder alone, as `pip install --target` would leave it, is enough here.
    for file in ["__init__.py", "version.py", "cuda.py"] {
        let text = fs::read_to_string(sb.root.join("torch-src/torch").join(file)).unwrap();
        write(&shared.join("torch").join(file), &text);
    }
    let site = venv(Path::new("python3"), &sb.project.join(".venv"), false);
    write(&site.join("shared.pth"), &format!("{}\n", shared.display()));

    std::thread::sleep(RACY_WINDOW + Duration::from_millis(300));
    let standard = facts(&sb, "standard", true);
    assert_eq!(
        environment(&standard, ".venv")["live"]["torch"]["import_ok"],
        true
    );
    let quick = facts(&sb, "quick", true);
    let cached = &environment(&quick, ".venv")["live"];
    assert!(
        cached["cached"].is_object(),
        "the answer is reused: {cached:#}"
    );

    // A CUDA library added inside torch, in the folder the .pth line reaches (the folder
    // itself does not change: only torch/ and torch/lib do).
    write(&shared.join("torch/lib/libtorch_cuda.so"), "");
    let quick = facts(&sb, "quick", true);
    let env = environment(&quick, ".venv");
    assert!(
        env["live"].is_null(),
        "a stale answer was used: {:#}",
        env["live"]
    );
    assert_eq!(env["torch"]["found_in"]["reached_by"], "pth");
}

#[test]
fn the_user_site_counts_where_the_venv_sees_the_system_site_packages() {
    let sb = sandbox();
    let sees = sb.project.join(".venv-system");
    venv(Path::new("python3"), &sees, true);
    venv(Path::new("python3"), &sb.project.join(".venv-own"), false);
    let user_site = PathBuf::from(
        run(
            Command::new(sees.join("bin/python"))
                .args(["-c", "import site; print(site.getusersitepackages())"])
                .env("HOME", &sb.home)
                .env_remove("PYTHONUSERBASE"),
            Duration::from_secs(30),
            "user site",
        )
        .trim(),
    );
    stand_in_torch(&user_site);
    fs::remove_file(user_site.join("pyproject.toml")).unwrap();

    let quick = facts(&sb, "quick", false);
    let standard = facts(&sb, "standard", false);
    let found = assert_same_answer(&quick, &standard, ".venv-system");
    assert_eq!(found["reached_by"], "user-site");
    assert_eq!(found["path"], user_site.to_str().unwrap());
    // A venv that does not see the system site-packages does not see the user's either.
    let own = environment(&standard, ".venv-own");
    assert_eq!(
        environment(&quick, ".venv-own")["torch"]["installed"],
        false
    );
    assert_eq!(
        own["live"]["torch"]["attempted"], false,
        "{:#}",
        own["live"]
    );
}

#[test]
fn a_package_reached_by_code_in_a_pth_file_is_a_recorded_difference_and_live_wins() {
    let sb = sandbox();
    let hidden = sb.root.join("hidden");
    stand_in_torch(&hidden);
    let site = venv(Path::new("python3"), &sb.project.join(".venv"), false);
    // Code, not a path line: the files cannot say where it leads, the interpreter can.
    write(
        &site.join("hook.pth"),
        &format!(
            "import sys; sys.path.append({:?})\n",
            hidden.to_str().unwrap()
        ),
    );
    let quick = facts(&sb, "quick", false);
    assert_eq!(environment(&quick, ".venv")["torch"]["installed"], false);
    let standard = facts(&sb, "standard", false);
    let env = environment(&standard, ".venv");
    assert_eq!(env["live"]["torch"]["import_ok"], true, "{:#}", env["live"]);
    assert_eq!(env["live"]["torch"]["location"], hidden.to_str().unwrap());
    let differences = env["static_live_differences"].as_array().unwrap();
    assert_eq!(differences.len(), 1, "{differences:#?}");
    assert_eq!(differences[0]["package"], "torch");
    assert_eq!(differences[0]["static_answer"], "not installed");
    assert_eq!(
        differences[0]["live_answer"],
        format!("imported from {}", hidden.display())
    );
}

/// Two real interpreters of different Python minor versions (older first), from pyenv's
/// versions and the system's python3.
fn two_python_versions() -> Option<((PathBuf, String), (PathBuf, String))> {
    let pyenv_root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pyenv")));
    let mut candidates = vec![PathBuf::from("/usr/bin/python3")];
    if let Some(Ok(entries)) = pyenv_root.map(|r| fs::read_dir(r.join("versions"))) {
        candidates.extend(entries.flatten().map(|e| e.path().join("bin/python3")));
    }
    let mut found: Vec<(Vec<u32>, PathBuf, String)> = Vec::new();
    for python in candidates {
        let Ok(real) = fs::canonicalize(&python) else {
            continue;
        };
        let Ok(out) = Command::new(&real)
            .args([
                "-c",
                "import sys, venv; print('%d.%d.%d' % sys.version_info[:3])",
            ])
            .output()
        else {
            continue;
        };
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let key: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
        if out.status.success() && key.len() == 3 && key[0] == 3 && key[1] >= 8 {
            found.push((key, real, version));
        }
    }
    found.sort();
    let (old_key, old, old_version) = found.first()?.clone();
    let (_, new, new_version) = found
        .iter()
        .rev()
        .find(|(k, _, _)| k[1] != old_key[1])?
        .clone();
    Some(((old, old_version), (new, new_version)))
}

#[test]
fn a_base_upgraded_to_another_python_version_is_named_statically_and_live() {
    let Some(((old, old_version), (new, new_version))) = two_python_versions() else {
        // Debian 12 ships one Python 3 minor version and nothing installs a second one offline:
        // where none is there, say so loudly; CI's machines have pyenv's and require it.
        let why =
            "this test needs two Python 3 minor versions (pyenv's versions or /usr/bin/python3)";
        assert!(
            std::env::var_os("GPU_DOCTOR_REQUIRE_TWO_PYTHONS").is_none(),
            "{why}; GPU_DOCTOR_REQUIRE_TWO_PYTHONS is set"
        );
        eprintln!("SKIPPED: {why}");
        return;
    };
    let sb = sandbox();
    // The base `python3` every environment was made from, later upgraded in place.
    let base = sb.root.join("base/bin/python3");
    fs::create_dir_all(base.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&old, &base).unwrap();
    let site = venv(&base, &sb.project.join(".venv"), false);
    stand_in_torch(&site);
    fs::remove_file(site.join("pyproject.toml")).unwrap();
    fs::remove_file(&base).unwrap();
    std::os::unix::fs::symlink(&new, &base).unwrap();
    let minor = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");

    let quick = facts(&sb, "quick", false);
    let env = environment(&quick, ".venv");
    let mismatch = &env["interpreter_version_mismatch"];
    assert_eq!(mismatch["pyvenv_cfg"], old_version.as_str(), "{env:#}");
    assert_eq!(mismatch["interpreter"], minor(&new_version).as_str());
    assert_eq!(mismatch["seen_by"], "files");
    assert_eq!(mismatch["stranded_site_packages"], site.to_str().unwrap());
    assert_eq!(
        env["torch"]["installed"], false,
        "the new interpreter does not read the old version's site-packages"
    );

    let standard = facts(&sb, "standard", false);
    let env = environment(&standard, ".venv");
    assert_eq!(env["live"]["python_version"], new_version.as_str());
    let mismatch = &env["interpreter_version_mismatch"];
    assert_eq!(mismatch["interpreter"], new_version.as_str());
    assert_eq!(mismatch["seen_by"], "live");
    assert_eq!(env["live"]["torch"]["attempted"], false);
    assert_eq!(env["static_live_differences"], Value::Array(vec![]));

    // The verdict names it, with a fix that recreates the environment.
    let out = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"))
        .args(["check", "--profile", "quick", "--format", "json"])
        .current_dir(&sb.project)
        .env("HOME", &sb.home)
        .env("GPU_DOCTOR_NO_CONFIG", "1")
        .env(NO_CACHE_VAR, "1")
        .env_remove("VIRTUAL_ENV")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "venv-python-version-changed")
        .unwrap_or_else(|| panic!("{:#}", report["findings"]));
    assert_eq!(
        finding["fix"]["bash"],
        format!(
            "{} -m venv --clear {}",
            base.display(),
            sb.project.join(".venv").display()
        )
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_venv_whose_home_is_another_venvs_bin_reaches_the_base_installation_not_that_venv() {
    let sb = sandbox();
    // Venv A holds torch; venv B was made pointing at A's interpreter, seeing "system" packages.
    let a = sb.root.join("a");
    let a_site = venv(Path::new("python3"), &a, false);
    stand_in_torch(&a_site);
    let b = sb.project.join(".venv-b");
    let version = python_out(
        &a.join("bin/python3"),
        "import sys; print('%d.%d.%d' % sys.version_info[:3])",
    );
    let minor: String = version.split('.').take(2).collect::<Vec<_>>().join(".");
    fs::create_dir_all(b.join("bin")).unwrap();
    fs::create_dir_all(b.join(format!("lib/python{minor}/site-packages"))).unwrap();
    std::os::unix::fs::symlink(a.join("bin/python3"), b.join("bin/python3")).unwrap();
    write(
        &b.join("pyvenv.cfg"),
        &format!(
            "home = {}\ninclude-system-site-packages = true\nversion = {version}\n",
            a.join("bin").display()
        ),
    );
    let quick = facts(&sb, "quick", false);
    let standard = facts(&sb, "standard", false);
    let q = environment(&quick, ".venv-b");
    let s = environment(&standard, ".venv-b");
    assert_eq!(s["live"]["status"], "ok", "{:#}", s["live"]);
    assert_eq!(strings(&s["live"]["import_paths"]), static_sys_path(q));
    assert!(
        !static_sys_path(q).contains(&a_site.to_string_lossy().into_owned()),
        "the interpreter runs from the base installation, not from venv A"
    );
    assert_eq!(q["torch"]["installed"], false);
    assert_eq!(s["live"]["torch"]["attempted"], false);
}
