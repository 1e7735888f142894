//! The live-result cache (src/probe/python/cache.rs) against real virtual environments.
//!
//! Environments are made by `python3 -m venv`; packages are installed by the venv's own pip
//! from a wheel built here (offline); the interpreter is the real one. A standard run stores
//! each environment's answer, a quick run attaches it while its key holds: these tests change
//! one thing the answer depends on at a time and check that the quick run stops using the old
//! answer. A stored answer needs every recorded file time to be [`RACY_WINDOW`] old, so the
//! tests wait that long (`settle`) after changing files and before a standard run that must
//! store.
#![cfg(unix)]

use gpu_doctor::facts::python::{LiveProbe, PythonEnv, PythonFacts};
use gpu_doctor::probe::python::cache::{LiveCache, CACHE_DIR_VAR, RACY_WINDOW};
use gpu_doctor::probe::{ProbeContext, Profile};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
mod common;
use common::{real_venv, run, sandbox, write, Sandbox};

// ---------------------------------------------------------------------------------------------
// helpers

fn cache_dir(sb: &Sandbox) -> PathBuf {
    sb.root.join("cache")
}

fn context(sb: &Sandbox, profile: Profile, vars: &[(&str, &str)]) -> ProbeContext {
    let mut env = BTreeMap::new();
    let mut set = |k: &str, v: String| env.insert(k.to_string(), v);
    set(
        "GPU_DOCTOR_PROJECT_DIR",
        sb.project.to_string_lossy().into_owned(),
    );
    set("HOME", sb.home.to_string_lossy().into_owned());
    set(CACHE_DIR_VAR, cache_dir(sb).to_string_lossy().into_owned());
    set("GPU_DOCTOR_NO_CONFIG", "1".into());
    for (k, v) in vars {
        set(k, v.to_string());
    }
    ProbeContext {
        profile,
        env,
        fs_root: PathBuf::from("/"),
    }
}

fn probe_with(ctx: &ProbeContext) -> PythonFacts {
    gpu_doctor::probe::python::probe(ctx).data
}

fn probe(sb: &Sandbox, profile: Profile) -> PythonFacts {
    probe_with(&context(sb, profile, &[]))
}

fn env<'a>(facts: &'a PythonFacts, name: &str) -> &'a PythonEnv {
    facts
        .environments
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no environment {name:?}"))
}

/// The live answer a quick run attached from the cache, if any.
fn cached<'a>(facts: &'a PythonFacts, name: &str) -> Option<&'a LiveProbe> {
    let live = env(facts, name).live.as_ref()?;
    assert!(
        live.cached.is_some(),
        "a quick run's live answer can only come from the cache"
    );
    Some(live)
}

/// Wait until every file time recorded now is old enough for a stored key.
fn settle() {
    std::thread::sleep(RACY_WINDOW + Duration::from_millis(300));
}

/// Standard run that must store `name`'s answer; returns that answer.
fn store(sb: &Sandbox, name: &str) -> LiveProbe {
    settle();
    let facts = probe(sb, Profile::Standard);
    let live = env(&facts, name).live.clone().expect("a standard run asks");
    assert_eq!(live.status, "ok", "{:?}", live.error);
    assert!(live.cached.is_none(), "a standard run never uses the cache");
    assert!(entry_file(sb, name).is_file(), "{name}'s answer was stored");
    live
}

/// Where `name`'s entry lives.
fn entry_file(sb: &Sandbox, name: &str) -> PathBuf {
    let ctx = context(sb, Profile::Quick, &[]);
    let cache = LiveCache::open(&ctx).unwrap();
    cache.entry_path(&sb.project.join(name).to_string_lossy())
}

fn python3_version() -> String {
    run(
        Command::new("python3")
            .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"]),
        Duration::from_secs(30),
        "python3",
    )
    .trim()
    .to_string()
}

/// A venv with pip (ensurepip's bundled wheel: no network).
fn venv_with_pip(dir: &Path) -> PathBuf {
    run(
        Command::new("python3").args(["-m", "venv"]).arg(dir),
        Duration::from_secs(180),
        "python3 -m venv (with pip)",
    );
    site_packages(dir)
}

fn site_packages(dir: &Path) -> PathBuf {
    let lib = fs::read_dir(dir.join("lib"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .expect("a venv has lib/python3.X");
    lib.path().join("site-packages")
}

/// A minimal, valid pure-Python wheel, written with the standard library's zipfile.
fn tiny_wheel(dir: &Path) -> PathBuf {
    let script = r#"
import sys, zipfile, os
out = os.path.join(sys.argv[1], "gd_cache_probe-1.0-py3-none-any.whl")
files = {
    "gd_cache_probe/__init__.py": "VALUE = 1\n",
    "gd_cache_probe-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: gd-cache-probe\nVersion: 1.0\n",
    "gd_cache_probe-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: gpu-doctor-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = "".join(f"{name},,\n" for name in files) + "gd_cache_probe-1.0.dist-info/RECORD,,\n"
with zipfile.ZipFile(out, "w") as z:
    for name, text in files.items():
        z.writestr(name, text)
    z.writestr("gd_cache_probe-1.0.dist-info/RECORD", record)
print(out)
"#;
    let out = run(
        Command::new("python3").arg("-c").arg(script).arg(dir),
        Duration::from_secs(30),
        "building a test wheel",
    );
    PathBuf::from(out.trim())
}

fn pip_install(venv: &Path, args: &[&str]) {
    run(
        Command::new(venv.join("bin/python"))
            .args(["-m", "pip", "install", "--no-index", "--no-deps", "--quiet"])
            .args(args)
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .env_remove("PIP_FIND_LINKS"),
        Duration::from_secs(120),
        "pip install",
    );
}

/// Give `path` a modification time a minute ahead: a run is then certain to end within the
/// racy window of it, however long this (shared, loaded) machine makes the run take.
fn change_now(path: &Path) {
    set_mtime(path, std::time::SystemTime::now() + Duration::from_secs(60));
}

/// Give `path` a modification time older than the racy window, as if it changed a while ago.
fn changed_a_while_ago(path: &Path) {
    set_mtime(path, std::time::SystemTime::now() - 2 * RACY_WINDOW);
}

fn set_mtime(path: &Path, time: std::time::SystemTime) {
    fs::File::open(path)
        .and_then(|f| f.set_modified(time))
        .unwrap_or_else(|e| panic!("set the time of {}: {e}", path.display()));
}

fn mtime_ns(path: &Path) -> i128 {
    let meta = fs::metadata(path).unwrap();
    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
}

// ---------------------------------------------------------------------------------------------
// hits

#[test]
fn a_standard_run_stores_and_the_quick_profile_attaches_the_same_answer_marked_cached() {
    let sb = sandbox();
    real_venv(&sb.project.join(".venv"));
    assert!(
        cached(&probe(&sb, Profile::Quick), ".venv").is_none(),
        "nothing is cached before a standard run"
    );
    let fresh = store(&sb, ".venv");

    let facts = probe(&sb, Profile::Quick);
    let hit = cached(&facts, ".venv").expect("a cache hit");
    assert_eq!(hit.status, "ok");
    assert_eq!(
        hit.python_version.as_deref(),
        Some(python3_version().as_str())
    );
    // The stored answer itself, not a new run: the interpreter's duration is the stored one.
    assert_eq!(hit.duration_ms, fresh.duration_ms);
    let info = hit.cached.as_ref().unwrap();
    assert!(info.age_s < 600, "age {}", info.age_s);
    assert!(info.stored_at_unix > 1_700_000_000);
}

#[test]
fn an_answer_right_after_a_change_is_not_stored_and_an_older_entry_goes() {
    let sb = sandbox();
    let site = real_venv(&sb.project.join(".venv"));
    // Made just now: its times are too fresh to trust that a change would move them.
    change_now(&site);
    probe(&sb, Profile::Standard);
    assert!(
        !entry_file(&sb, ".venv").exists(),
        "a racy key is not stored"
    );
    changed_a_while_ago(&site);
    store(&sb, ".venv");
    // A change, then at once a standard run: nothing is stored, and the old entry is removed
    // so that no older answer outlives the newer observation.
    write(&site.join("new_module.py"), "X = 1\n");
    change_now(&site);
    probe(&sb, Profile::Standard);
    assert!(!entry_file(&sb, ".venv").exists());
    assert!(cached(&probe(&sb, Profile::Quick), ".venv").is_none());
}

// ---------------------------------------------------------------------------------------------
// misses

#[test]
fn pip_install_and_reinstall_change_site_packages_and_the_cached_answer_is_dropped() {
    let sb = sandbox();
    let venv = sb.project.join(".venv");
    let site = venv_with_pip(&venv);
    let wheel = tiny_wheel(&sb.root);

    store(&sb, ".venv");
    assert!(cached(&probe(&sb, Profile::Quick), ".venv").is_some());
    let before = mtime_ns(&site);
    pip_install(&venv, &[wheel.to_str().unwrap()]);
    assert_ne!(
        mtime_ns(&site),
        before,
        "pip install changes site-packages' modification time"
    );
    assert!(site.join("gd_cache_probe-1.0.dist-info").is_dir());
    assert!(
        cached(&probe(&sb, Profile::Quick), ".venv").is_none(),
        "after pip install the old answer is not used"
    );

    // Reinstalling the very same version also moves the folder (pip removes, then writes).
    store(&sb, ".venv");
    assert!(cached(&probe(&sb, Profile::Quick), ".venv").is_some());
    let before = mtime_ns(&site);
    pip_install(&venv, &["--force-reinstall", wheel.to_str().unwrap()]);
    assert_ne!(mtime_ns(&site), before, "pip install --force-reinstall");
    assert!(cached(&probe(&sb, Profile::Quick), ".venv").is_none());
}

#[test]
fn touching_site_packages_or_a_package_library_folder_drops_the_answer() {
    let sb = sandbox();
    let site = real_venv(&sb.project.join(".venv"));
    fs::create_dir_all(site.join("torch/lib")).unwrap();
    write(&site.join("torch/__init__.py"), "__version__ = '2.5.1'\n");

    store(&sb, ".venv");
    assert!(cached(&probe(&sb, Profile::Quick), ".venv").is_some());
    // A file added at the top of site-packages.
    write(&site.join("extra.pth"), "# nothing\n");
    assert!(cached(&probe(&sb, Profile::Quick), ".venv").is_none());

    store(&sb, ".venv");
    assert!(cached(&probe(&sb, Profile::Quick), ".venv").is_some());
    // A library dropped into torch/lib: the files' view of torch does not change, the folder
    // does.
    write(&site.join("torch/lib/libc10_cuda.so"), "");
    assert!(cached(&probe(&sb, Profile::Quick), ".venv").is_none());

    store(&sb, ".venv");
    // A .pth file rewritten in place to add a folder of packages.
    let more = sb.root.join("more-packages");
    fs::create_dir_all(&more).unwrap();
    write(&site.join("extra.pth"), &format!("{}\n", more.display()));
    assert!(cached(&probe(&sb, Profile::Quick), ".venv").is_none());
    store(&sb, ".venv");
    // ... and a package installed into that folder.
    fs::create_dir_all(more.join("torch")).unwrap();
    assert!(cached(&probe(&sb, Profile::Quick), ".venv").is_none());
}

#[test]
fn a_new_interpreter_drops_the_answer() {
    let sb = sandbox();
    let venv = sb.project.join(".venv");
    // --copies: the venv has its own copy of the interpreter, as on Windows or after
    // `python -m venv --copies`; replacing it is what `venv --upgrade` does after the base
    // Python is updated.
    run(
        Command::new("python3")
            .args(["-m", "venv", "--copies", "--without-pip"])
            .arg(&venv),
        Duration::from_secs(120),
        "python3 -m venv --copies",
    );
    let python = fs::canonicalize(venv.join("bin/python3")).unwrap();
    store(&sb, ".venv");
    let ctx = context(&sb, Profile::Quick, &[]);
    let cache = LiveCache::open(&ctx).unwrap();
    let facts = probe(&sb, Profile::Quick);
    assert!(cached(&facts, ".venv").is_some());
    let old_key = cache.keys(&facts.environments)[0].clone().unwrap().key;

    // A new interpreter binary at the same path (same bytes, new file).
    let bytes = fs::read(&python).unwrap();
    fs::remove_file(&python).unwrap();
    fs::write(&python, bytes).unwrap();
    fs::set_permissions(&python, fs::Permissions::from_mode(0o755)).unwrap();

    let facts = probe(&sb, Profile::Quick);
    let new_key = cache.keys(&facts.environments)[0].clone().unwrap().key;
    assert_ne!(old_key.interpreter, new_key.interpreter);
    assert_eq!(
        old_key.pyvenv_cfg, new_key.pyvenv_cfg,
        "only the interpreter changed"
    );
    assert!(cached(&facts, ".venv").is_none());
    // The new interpreter really runs, and its answer is stored again.
    store(&sb, ".venv");
    assert!(cached(&probe(&sb, Profile::Quick), ".venv").is_some());
}

#[test]
fn gpu_variables_and_the_driver_are_part_of_the_key() {
    let sb = sandbox();
    real_venv(&sb.project.join(".venv"));
    let driver_root = sb.root.join("fs");
    let version = driver_root.join("proc/driver/nvidia/version");
    write(
        &version,
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.95.05\n",
    );
    let with = |vars: &[(&str, &str)]| {
        let mut ctx = context(&sb, Profile::Quick, vars);
        ctx.fs_root = driver_root.clone();
        ctx
    };
    settle();
    let mut standard = with(&[("CUDA_VISIBLE_DEVICES", "0")]);
    standard.profile = Profile::Standard;
    probe_with(&standard);

    let hit = |vars: &[(&str, &str)]| cached(&probe_with(&with(vars)), ".venv").is_some();
    assert!(hit(&[("CUDA_VISIBLE_DEVICES", "0")]));
    assert!(hit(&[
        ("CUDA_VISIBLE_DEVICES", "0"),
        ("GIT_INDEX_FILE", "x")
    ]));
    assert!(!hit(&[("CUDA_VISIBLE_DEVICES", "1")]));
    assert!(!hit(&[]));
    assert!(!hit(&[
        ("CUDA_VISIBLE_DEVICES", "0"),
        ("LD_LIBRARY_PATH", "/opt/x")
    ]));
    // A driver upgrade (the kernel module's version file changes).
    write(
        &version,
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.105.08\n",
    );
    assert!(!hit(&[("CUDA_VISIBLE_DEVICES", "0")]));
}

// ---------------------------------------------------------------------------------------------
// bad cache files

#[test]
fn corrupt_foreign_and_oversized_entries_are_ignored() {
    let sb = sandbox();
    real_venv(&sb.project.join(".venv"));
    real_venv(&sb.project.join(".venv-other"));
    store(&sb, ".venv");
    let path = entry_file(&sb, ".venv");
    let good = fs::read_to_string(&path).unwrap();
    let other = fs::read_to_string(entry_file(&sb, ".venv-other")).unwrap();
    let doc: Value = serde_json::from_str(&good).unwrap();

    let mut newer = doc.clone();
    newer["version"] = Value::from(999);
    let mut foreign_format = doc.clone();
    foreign_format["format"] = Value::from("something else");
    let mut future = doc.clone();
    future["stored_at_unix"] = Value::from(u64::MAX / 2);
    let bad: Vec<(&str, String)> = vec![
        ("garbage", "\u{0}\u{1}not json at all".into()),
        ("truncated", good[..good.len() / 2].to_string()),
        ("empty", String::new()),
        ("another format version", newer.to_string()),
        ("another format", foreign_format.to_string()),
        ("stored in the future", future.to_string()),
        ("another environment's entry", other),
        ("oversized", format!("{good}{}", " ".repeat(300 * 1024))),
    ];
    for (what, text) in bad {
        fs::write(&path, text).unwrap();
        let facts = probe(&sb, Profile::Quick);
        assert!(cached(&facts, ".venv").is_none(), "{what}: must be ignored");
        assert!(facts.errors.is_empty(), "{what}: {:?}", facts.errors);
    }
    // Not a regular file: a link to a valid entry, and a folder.
    let elsewhere = sb.root.join("elsewhere.json");
    fs::write(&elsewhere, &good).unwrap();
    fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
    assert!(cached(&probe(&sb, Profile::Quick), ".venv").is_none());
    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    assert!(cached(&probe(&sb, Profile::Quick), ".venv").is_none());
    fs::remove_dir(&path).unwrap();

    // The same bytes back in place are used again: the cases above failed for their reason.
    fs::write(&path, &good).unwrap();
    assert!(cached(&probe(&sb, Profile::Quick), ".venv").is_some());
}

#[test]
fn the_binary_ignores_a_garbage_entry_and_honours_no_cache() {
    let sb = sandbox();
    real_venv(&sb.project.join(".venv"));
    let doctor = |args: &[&str], vars: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"));
        cmd.args(args)
            .current_dir(&sb.project)
            .env("HOME", &sb.home)
            .env(CACHE_DIR_VAR, cache_dir(&sb))
            .env("GPU_DOCTOR_NO_CONFIG", "1")
            .env_remove("GPU_DOCTOR_NO_CACHE")
            .env("NO_COLOR", "1");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.output().expect("gpu-doctor runs")
    };
    let live_of = |out: &std::process::Output| -> Value {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["python"]["environments"][0]["live"].clone()
    };

    settle();
    live_of(&doctor(
        &["--no-cache", "facts", "--profile", "standard"],
        &[],
    ));
    assert!(
        !cache_dir(&sb).exists(),
        "--no-cache writes nothing, not even the folder"
    );
    live_of(&doctor(&["facts", "--profile", "standard"], &[]));
    let quick = live_of(&doctor(&["facts", "--profile", "quick"], &[]));
    assert_eq!(quick["status"], "ok");
    assert!(quick["cached"]["age_s"].is_u64(), "{quick}");
    let off = live_of(&doctor(
        &["facts", "--profile", "quick"],
        &[("GPU_DOCTOR_NO_CACHE", "1")],
    ));
    assert!(off.is_null(), "{off}");
    let flag = live_of(&doctor(&["facts", "--profile", "quick", "--no-cache"], &[]));
    assert!(flag.is_null(), "{flag}");

    // A garbage entry: the same verdict as without a cache, and nothing on stderr about it.
    let plain = doctor(&["check", "--profile", "quick", "--no-cache"], &[]);
    for entry in fs::read_dir(cache_dir(&sb).join("live")).unwrap() {
        fs::write(entry.unwrap().path(), "{\"format\": ").unwrap();
    }
    let garbage = doctor(&["check", "--profile", "quick"], &[]);
    assert_eq!(garbage.status.code(), plain.status.code());
    assert_eq!(
        String::from_utf8_lossy(&garbage.stdout),
        String::from_utf8_lossy(&plain.stdout)
    );
    assert!(garbage.stderr.is_empty(), "{garbage:?}");
}
