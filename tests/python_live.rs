//! The Python probe's live tier against real interpreters.
//!
//! Environments are made by `python3 -m venv` in temporary folders. Where the point is a broken
//! package, the package is a small stand-in written here (a torch whose native library is
//! missing, a torch that warns its driver is too old, a llama_cpp whose shared library
//! segfaults while loading); the interpreter that imports it is always real. Misbehaving
//! "interpreters" (one that hangs, one that segfaults, one that prints garbage or 100 MB) are
//! shell scripts in place of bin/python. The real llama-cpp-python is built once from its PyPI
//! sdist by `tests/support/llama-cpp-python.sh` and cached; set GPU_DOCTOR_SKIP_SLOW=1 to skip
//! that one test.
#![cfg(unix)]

use gpu_doctor::facts::python::{LiveProbe, PythonEnv, PythonFacts};
use gpu_doctor::probe::python::live::{self, LiveOptions};
use gpu_doctor::probe::{ProbeContext, Profile};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
mod common;
use common::{real_venv, run, sandbox, write, Sandbox};

// ---------------------------------------------------------------------------------------------
// helpers

fn executable(path: &Path, text: &str) {
    write(path, text);
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn context(sb: &Sandbox, profile: Profile, vars: &[(&str, String)]) -> ProbeContext {
    let mut env = BTreeMap::new();
    env.insert(
        "GPU_DOCTOR_PROJECT_DIR".to_string(),
        sb.project.to_string_lossy().into_owned(),
    );
    env.insert("HOME".to_string(), sb.home.to_string_lossy().into_owned());
    for (k, v) in vars {
        env.insert(k.to_string(), v.clone());
    }
    ProbeContext {
        profile,
        env,
        fs_root: PathBuf::from("/"),
    }
}

fn probe(sb: &Sandbox, profile: Profile) -> PythonFacts {
    gpu_doctor::probe::python::probe(&context(sb, profile, &[])).data
}

fn env<'a>(facts: &'a PythonFacts, name: &str) -> &'a PythonEnv {
    facts
        .environments
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no environment {name:?}"))
}

fn live<'a>(facts: &'a PythonFacts, name: &str) -> &'a LiveProbe {
    env(facts, name)
        .live
        .as_ref()
        .unwrap_or_else(|| panic!("{name} has no live answer"))
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

/// Options with a short deadline, for interpreters that are meant to misbehave.
fn short(deadline: Duration) -> LiveOptions {
    LiveOptions {
        env: BTreeMap::new(),
        per_interpreter: deadline,
        total: deadline * 3,
        max_output: live::MAX_OUTPUT,
        tensor: true,
    }
}

/// An environment whose bin/python is `script`, as the static tier would describe it.
fn fake_interpreter(dir: &Path, script: &str) -> PythonEnv {
    let python = dir.join("bin/python");
    executable(&python, script);
    PythonEnv {
        name: dir.file_name().unwrap().to_string_lossy().into_owned(),
        path: dir.to_string_lossy().into_owned(),
        python: python.to_string_lossy().into_owned(),
        python_exists: true,
        python_version: Some("3.12.3".into()),
        ..PythonEnv::default()
    }
}

// ---------------------------------------------------------------------------------------------
// real venvs

#[test]
fn a_plain_venv_answers_with_its_own_python() {
    let sb = sandbox();
    real_venv(&sb.project.join(".venv"));
    let facts = probe(&sb, Profile::Standard);
    let venv = env(&facts, ".venv");
    let l = live(&facts, ".venv");
    assert_eq!(l.status, "ok", "{:?}", l.error);
    assert_eq!(l.error, None);
    assert_eq!(l.stage.as_deref(), Some("done"));
    assert_eq!(
        l.python_version.as_deref(),
        Some(python3_version().as_str())
    );
    assert_eq!(l.python_version, venv.python_version, "pyvenv.cfg agrees");
    assert_eq!(l.implementation.as_deref(), Some("cpython"));
    assert_eq!(l.interpreter_flags, ["-I", "-B"]);
    let exe = l.executable.as_deref().unwrap();
    assert!(exe.starts_with(&venv.path), "{exe} is the venv's own");
    assert!(!l.torch.attempted && !l.llama_cpp.attempted);
    assert!(l.duration_ms > 0.0 && l.duration_ms < 30_000.0);
}

#[test]
fn the_quick_profile_runs_no_interpreter() {
    let sb = sandbox();
    real_venv(&sb.project.join(".venv"));
    let facts = probe(&sb, Profile::Quick);
    assert!(env(&facts, ".venv").live.is_none());
}

#[test]
fn isolation_ignores_pythonpath_user_site_and_the_project_folder() {
    let sb = sandbox();
    real_venv(&sb.project.join(".venv"));
    // A torch that would be found through PYTHONPATH, the user's site-packages, or the current
    // folder (the project): none of them is what the environment's programs import.
    let decoy = "raise ImportError('decoy torch was imported')\n";
    write(&sb.root.join("pythonpath/torch/__init__.py"), decoy);
    write(&sb.project.join("torch/__init__.py"), decoy);
    let user_site = run(
        Command::new(sb.project.join(".venv/bin/python"))
            .args(["-c", "import site; print(site.getusersitepackages())"])
            .env("HOME", &sb.home),
        Duration::from_secs(30),
        "user site",
    );
    write(
        &Path::new(user_site.trim()).join("torch/__init__.py"),
        decoy,
    );
    let vars = [(
        "PYTHONPATH",
        sb.root.join("pythonpath").to_string_lossy().into_owned(),
    )];
    let ctx = context(&sb, Profile::Standard, &vars);
    let facts = gpu_doctor::probe::python::probe(&ctx).data;
    let l = live(&facts, ".venv");
    assert_eq!(l.status, "ok", "{:?}", l.error);
    assert!(!l.torch.attempted, "{:?}", l.torch.import_error);
}

#[test]
fn a_torch_whose_native_library_is_missing_fails_to_import_with_the_cause() {
    let sb = sandbox();
    let site = real_venv(&sb.project.join(".venv"));
    write(
        &site.join("torch/__init__.py"),
        "print('loading torch native libraries')\n\
         raise OSError('libcudnn.so.9: cannot open shared object file: No such file or directory')\n",
    );
    let facts = probe(&sb, Profile::Standard);
    assert!(env(&facts, ".venv").torch.installed);
    let l = live(&facts, ".venv");
    assert_eq!(l.status, "ok", "{:?}", l.error);
    assert!(l.torch.attempted);
    assert!(!l.torch.import_ok);
    assert_eq!(
        l.torch.import_error.as_deref(),
        Some("OSError: libcudnn.so.9: cannot open shared object file: No such file or directory")
    );
    assert!(l.torch.import_ms.is_some());
}

/// A stand-in torch package: imports fine, `cuda` behaves as `cuda_body` says.
fn torch_with_cuda(site: &Path, version: &str, cuda: &str, cuda_body: &str) {
    write(
        &site.join("torch/__init__.py"),
        &format!(
            "import sys\nprint('torch prints on stdout while importing')\n\
             __version__ = '{version}'\nfrom . import version, cuda\n\
             def device(kind, index):\n    return (kind, index)\n\
             def arange(n, device=None):\n    return cuda._arange(n, device)\n"
        ),
    );
    write(
        &site.join("torch/version.py"),
        &format!("__version__ = '{version}'\ncuda = {cuda}\n"),
    );
    write(&site.join("torch/cuda.py"), cuda_body);
}

#[test]
fn a_torch_that_warns_the_driver_is_too_old_reports_the_warning() {
    let sb = sandbox();
    let site = real_venv(&sb.project.join(".venv"));
    torch_with_cuda(
        &site,
        "2.5.1+cu124",
        "'12.4'",
        "import warnings\n\
         def is_available():\n    warnings.warn('CUDA initialization: The NVIDIA driver on your system is too old \
         (found version 12020). Please update your GPU driver', UserWarning)\n    return False\n\
         def get_arch_list():\n    return []\n",
    );
    let facts = probe(&sb, Profile::Standard);
    let t = &live(&facts, ".venv").torch;
    assert!(t.import_ok, "{:?}", t.import_error);
    assert_eq!(t.version.as_deref(), Some("2.5.1+cu124"));
    assert_eq!(t.cuda.as_deref(), Some("12.4"));
    assert_eq!(t.cuda_available, Some(false));
    let why = t.cuda_error.as_deref().unwrap();
    assert!(why.contains("found version 12020"), "{why}");
    assert_eq!(t.device_count, 0);
}

#[test]
fn a_gpu_missing_from_the_arch_list_fails_its_tensor_operation() {
    let sb = sandbox();
    let site = real_venv(&sb.project.join(".venv"));
    torch_with_cuda(
        &site,
        "2.5.1+cu124",
        "'12.4'",
        "def is_available():\n    return True\n\
         def device_count():\n    return 2\n\
         def get_device_name(i):\n    return 'NVIDIA GeForce RTX 5090'\n\
         def get_device_capability(i):\n    return (12, 0)\n\
         def get_arch_list():\n    return ['sm_50', 'sm_80', 'sm_90']\n\
         def synchronize(device=None):\n    pass\n\
         class _Tensor(object):\n    def __init__(self, v): self.v = v\n\
         \x20   def __mul__(self, k): return _Tensor(self.v * k)\n\
         \x20   def sum(self): return self\n    def item(self): return self.v\n\
         def _arange(n, device):\n    if device[1] == 1:\n        return _Tensor(5)\n\
         \x20   raise RuntimeError('CUDA error: no kernel image is available for execution on the device')\n",
    );
    let facts = probe(&sb, Profile::Standard);
    let t = &live(&facts, ".venv").torch;
    assert_eq!(t.cuda_available, Some(true));
    assert_eq!(t.arch_list, ["sm_50", "sm_80", "sm_90"]);
    assert_eq!(t.device_count, 2);
    let d0 = &t.devices[0];
    assert_eq!(
        (d0.index, d0.name.as_str(), d0.capability.as_str()),
        (0, "NVIDIA GeForce RTX 5090", "12.0")
    );
    assert!(!d0.tensor_ok);
    assert_eq!(
        d0.tensor_error.as_deref(),
        Some("RuntimeError: CUDA error: no kernel image is available for execution on the device")
    );
    let d1 = &t.devices[1];
    assert!(!d1.tensor_ok);
    assert!(d1.tensor_error.as_deref().unwrap().contains("wrong result"));
}

#[test]
fn a_llama_cpp_that_segfaults_while_loading_is_a_crash_with_its_step() {
    let sb = sandbox();
    let site = real_venv(&sb.project.join(".venv"));
    write(
        &site.join("llama_cpp/__init__.py"),
        "import os, signal, sys\nsys.stderr.write('loading libllama.so\\n')\n\
         os.kill(os.getpid(), signal.SIGSEGV)\n",
    );
    let facts = probe(&sb, Profile::Standard);
    let l = live(&facts, ".venv");
    assert_eq!(l.status, "crashed", "{:?}", l.error);
    assert_eq!(l.stage.as_deref(), Some("llama_cpp.import"));
    let error = l.error.as_deref().unwrap();
    assert!(
        error.starts_with("signal 11 (SIGSEGV) while importing llama_cpp"),
        "{error}"
    );
    // faulthandler's Python traceback names the file that was being imported.
    assert!(error.contains("llama_cpp/__init__.py"), "{error}");
    // What was learnt before the crash is kept.
    assert!(l.python_version.is_some());
    assert!(l.llama_cpp.attempted && !l.llama_cpp.import_ok);
}

#[test]
fn a_torch_import_that_hangs_times_out_with_a_traceback_of_where() {
    let sb = sandbox();
    let site = real_venv(&sb.project.join("venv"));
    write(
        &site.join("torch/__init__.py"),
        "import time\ntime.sleep(120)\n",
    );
    let mut venv = probe(&sb, Profile::Quick).environments.remove(0);
    let start = Instant::now();
    live::probe_envs(
        std::slice::from_mut(&mut venv),
        &short(Duration::from_secs(6)),
    );
    assert!(
        start.elapsed() < Duration::from_secs(12),
        "{:?}",
        start.elapsed()
    );
    let l = venv.live.unwrap();
    assert_eq!(l.status, "timed_out");
    let error = l.error.unwrap();
    assert!(error.starts_with("timed out after 6."), "{error}");
    assert!(error.contains("while importing torch"), "{error}");
    assert!(
        error.contains("torch/__init__.py"),
        "the dumped traceback: {error}"
    );
}

// ---------------------------------------------------------------------------------------------
// interpreters that misbehave

#[test]
fn hanging_crashing_and_babbling_interpreters_are_bounded_and_run_in_parallel() {
    let sb = sandbox();
    let at = |name: &str| sb.root.join(name);
    let mut envs = vec![
        fake_interpreter(&at("hangs"), "#!/bin/sh\nsleep 60 &\nsleep 60\n"),
        fake_interpreter(&at("hangs-too"), "#!/bin/sh\nexec sleep 60\n"),
        fake_interpreter(&at("segfaults"), "#!/bin/sh\necho about to crash >&2\nkill -SEGV $$\n"),
        fake_interpreter(
            &at("garbage"),
            "#!/bin/sh\nprintf '\\377\\000{\"gpu_doctor_live\": \\n{\"gpu_doctor_live\": 1, \"done\": tr'\necho oops >&2\n",
        ),
        fake_interpreter(
            &at("floods"),
            "#!/bin/sh\nhead -c 100000000 /dev/zero | tr '\\000' x\n",
        ),
        fake_interpreter(&at("exits"), "#!/bin/sh\nexit 3\n"),
        PythonEnv {
            name: "missing".into(),
            python: at("missing/bin/python").to_string_lossy().into_owned(),
            python_exists: false,
            ..PythonEnv::default()
        },
    ];
    let deadline = Duration::from_secs(3);
    let start = Instant::now();
    live::probe_envs(&mut envs, &short(deadline));
    let took = start.elapsed();
    // Two 3 s hangs in parallel, not one after the other (and not 60 s).
    assert!(took < Duration::from_millis(5500), "took {took:?}");

    let by = |name: &str| {
        envs.iter()
            .find(|e| e.name == name)
            .unwrap()
            .live
            .clone()
            .unwrap()
    };
    for name in ["hangs", "hangs-too"] {
        let l = by(name);
        assert_eq!(l.status, "timed_out", "{name}");
        assert!(l.error.unwrap().contains("before it answered"));
        assert!(l.duration_ms < 4500.0, "{name}: {}", l.duration_ms);
    }
    let crash = by("segfaults");
    assert_eq!(crash.status, "crashed");
    let error = crash.error.unwrap();
    assert!(error.starts_with("signal 11 (SIGSEGV)"), "{error}");
    assert!(error.ends_with("about to crash"), "{error}");

    let garbage = by("garbage");
    assert_eq!(garbage.status, "failed");
    assert!(garbage.error.unwrap().contains("without an answer"));

    let flood = by("floods");
    assert_eq!(flood.status, "failed");
    assert!(flood.error.unwrap().contains("printed more than 1024 KiB"));

    let exits = by("exits");
    assert_eq!(exits.status, "failed");
    assert!(exits.error.unwrap().starts_with("exit code 3"));

    let missing = by("missing");
    assert_eq!(missing.status, "not_run");
    assert!(missing.error.unwrap().starts_with("no interpreter at"));
    // -I is not given to an interpreter whose version is unknown.
    assert!(missing.interpreter_flags.is_empty());
}

#[test]
fn a_file_that_cannot_be_executed_is_a_failure_not_a_panic() {
    let sb = sandbox();
    let python = sb.root.join("noexec/bin/python");
    write(&python, "not a program");
    let mut envs = vec![PythonEnv {
        name: "noexec".into(),
        python: python.to_string_lossy().into_owned(),
        python_exists: true,
        ..PythonEnv::default()
    }];
    live::probe_envs(&mut envs, &short(Duration::from_secs(3)));
    let l = envs[0].live.clone().unwrap();
    assert_eq!(l.status, "failed");
    assert!(l.error.unwrap().contains("could not be started"));
    assert_eq!(l.interpreter_flags, ["-E", "-s", "-B"]);
}

#[test]
fn environments_are_asked_at_once_so_the_slowest_sets_the_time() {
    // Three real venvs whose torch takes 2 s to import: about 2 s in all, not 6.
    let sb = sandbox();
    for name in [".venv", ".venv310", ".venv-gpu"] {
        let site = real_venv(&sb.project.join(name));
        write(
            &site.join("torch/__init__.py"),
            "import time\ntime.sleep(2)\n__version__ = '2.5.1+cpu'\n",
        );
    }
    let start = Instant::now();
    let facts = probe(&sb, Profile::Standard);
    let took = start.elapsed();
    eprintln!("standard profile, 3 environments importing a 2 s torch: {took:?}");
    for name in [".venv", ".venv310", ".venv-gpu"] {
        let l = live(&facts, name);
        assert_eq!(l.status, "ok", "{name}: {:?}", l.error);
        assert!(l.torch.import_ok);
        assert!(l.torch.import_ms.unwrap() >= 2000.0);
    }
    assert!(took < Duration::from_millis(4500), "took {took:?}");
}

// ---------------------------------------------------------------------------------------------
// the real llama-cpp-python

#[test]
fn a_real_cpu_build_of_llama_cpp_python_reports_no_gpu_offload() {
    if std::env::var("GPU_DOCTOR_SKIP_SLOW").as_deref() == Ok("1") {
        eprintln!(
            "\n\n*** SKIPPED: a_real_cpu_build_of_llama_cpp_python_reports_no_gpu_offload \
             (GPU_DOCTOR_SKIP_SLOW=1). Unset it to build llama-cpp-python from its sdist. ***\n\n"
        );
        return;
    }
    let sb = sandbox();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/llama-cpp-python.sh");
    let venv = sb.project.join(".venv");
    // A cold cache builds the wheel: about 6 minutes on 2 cores.
    run(
        Command::new("bash").arg(&script).arg("venv").arg(&venv),
        Duration::from_secs(45 * 60),
        "tests/support/llama-cpp-python.sh (needs python3-venv, a C++ compiler, PyPI on a cold cache)",
    );
    let facts = probe(&sb, Profile::Standard);
    let e = env(&facts, ".venv");
    assert!(e.llama_cpp.installed && !e.llama_cpp.cuda_backend);
    let l = live(&facts, ".venv");
    assert_eq!(l.status, "ok", "{:?}", l.error);
    let llama = &l.llama_cpp;
    assert!(llama.attempted);
    assert!(llama.import_ok, "{:?}", llama.import_error);
    assert_eq!(llama.version.as_deref(), Some("0.3.36"));
    assert_eq!(llama.supports_gpu_offload, Some(false));
    assert!(
        llama.backends.iter().any(|b| b == "CPU"),
        "{:?}",
        llama.backends
    );
    assert!(
        !llama.backends.iter().any(|b| b == "CUDA"),
        "{:?}",
        llama.backends
    );
    assert!(llama.cuda_archs.is_empty());
    assert!(llama.system_info.as_deref().unwrap().starts_with("CPU : "));
    assert_eq!(llama.gpu_device_count, Some(0));
    assert!(
        llama.devices.iter().any(|d| d.starts_with("CPU (cpu)")),
        "{:?}",
        llama.devices
    );
    assert!(llama.errors.is_empty(), "{:?}", llama.errors);
}
