//! The Python probe's static tier against real environments and real wheel layouts.
//!
//! Environments are made by `python3 -m venv` in temporary folders (or by hand where the
//! point is a broken or foreign one: a deleted base interpreter, a Windows layout, a conda
//! environment), and filled from the site-packages fixture trees in
//! `fixtures/site-packages/` (real file lists of torch and llama-cpp-python wheels, see its
//! README). Shared objects for the ELF `DT_NEEDED` checks are compiled here with `cc`. The
//! probe is called through the library with a hand-built context, so no Python is run by the
//! doctor and nothing depends on the machine's own environments.
#![cfg(unix)]

use gpu_doctor::facts::python::{PythonEnv, PythonFacts};
use gpu_doctor::facts::ProbeStatus;
use gpu_doctor::probe::{ProbeContext, Probed, Profile};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
mod common;
use common::{real_venv, run, sandbox, write};

// ---------------------------------------------------------------------------------------------
// helpers

fn fixture(tree: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/site-packages")
        .join(tree)
}

fn copy_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for entry in fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to);
        } else {
            fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// Compile a tiny shared object `dir/file` with `-soname soname`, linked against `libs`
/// (exact file names in `dir`, passed as `-l:NAME`).
fn cc_shared(dir: &Path, file: &str, soname: &str, libs: &[&str]) {
    let src = dir.join(format!("{file}.c"));
    fs::write(
        &src,
        format!("int f_{}(void) {{ return 1; }}\n", file.len()),
    )
    .unwrap();
    let mut cmd = Command::new("cc");
    cmd.args(["-shared", "-fPIC", "-o"])
        .arg(dir.join(file))
        .arg(&src)
        .arg(format!("-Wl,-soname,{soname}"))
        .arg("-Wl,--no-as-needed")
        .arg(format!("-L{}", dir.display()));
    for lib in libs {
        cmd.arg(format!("-l:{lib}"));
    }
    run(
        &mut cmd,
        Duration::from_secs(120),
        "these tests need a C compiler named `cc`",
    );
    fs::remove_file(src).unwrap();
}

/// A context whose environment holds only `vars`, with the project and a private empty home.
fn context(project: &Path, home: &Path, vars: &[(&str, String)]) -> ProbeContext {
    let mut env = BTreeMap::new();
    env.insert(
        "GPU_DOCTOR_PROJECT_DIR".to_string(),
        project.to_string_lossy().into_owned(),
    );
    env.insert("HOME".to_string(), home.to_string_lossy().into_owned());
    for (k, v) in vars {
        env.insert(k.to_string(), v.clone());
    }
    ProbeContext {
        profile: Profile::Quick,
        env,
        fs_root: PathBuf::from("/"),
    }
}

fn probe(ctx: &ProbeContext) -> Probed<PythonFacts> {
    gpu_doctor::probe::python::probe(ctx)
}

fn env<'a>(facts: &'a PythonFacts, name: &str) -> &'a PythonEnv {
    facts
        .environments
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| {
            let names: Vec<_> = facts.environments.iter().map(|e| &e.name).collect();
            panic!("no environment {name:?} among {names:?}")
        })
}

fn names(facts: &PythonFacts) -> Vec<&str> {
    facts.environments.iter().map(|e| e.name.as_str()).collect()
}

#[test]
fn torch_cu130_in_a_real_venv_is_read_with_its_nvidia_wheels() {
    let sb = sandbox();
    let site = real_venv(&sb.project.join(".venv"));
    copy_tree(&fixture("torch-2.11.0-cu130-linux"), &site);

    let got = probe(&context(&sb.project, &sb.home, &[]));
    assert_eq!(got.status, ProbeStatus::Ok, "{:?}", got.error);
    let facts = got.data;
    assert_eq!(names(&facts), [".venv"]);
    let venv = env(&facts, ".venv");
    assert_eq!(venv.kind, "venv");
    assert_eq!(venv.layout, "posix");
    assert_eq!(venv.found_by, ["project"]);
    assert!(venv.inside_project);
    assert!(venv.python_exists, "{}", venv.python);
    assert!(venv.python.ends_with(".venv/bin/python3"));
    assert!(
        venv.python_link_target.is_some(),
        "venv makes bin/python3 a symlink"
    );
    assert!(venv.python_version.as_deref().unwrap().starts_with("3."));
    assert_eq!(venv.python_version_source.as_deref(), Some("pyvenv.cfg"));
    assert_eq!(venv.base_python_exists, Some(true));
    let cfg = venv.pyvenv_cfg.as_ref().unwrap();
    assert_eq!(cfg.include_system_site_packages, Some(false));
    assert!(venv.site_packages_exists);

    let t = &venv.torch;
    assert!(t.installed);
    assert_eq!(t.version.as_deref(), Some("2.11.0+cu130"));
    assert_eq!(
        t.dist_version.as_deref(),
        Some("2.11.0"),
        "PyPI strips the tag in dist-info"
    );
    assert_eq!(t.local_tag.as_deref(), Some("cu130"));
    assert_eq!(t.cuda.as_deref(), Some("13.0"));
    assert_eq!(t.cuda_version.as_deref(), Some("13.0"));
    assert_eq!(t.cuda_major, Some(13));
    assert!(t.cuda_build);
    assert_eq!(t.hip, None);
    assert_eq!(
        t.git_version.as_deref(),
        Some("70d99e998b4955e0049d13a98d77ae1b14db1f45")
    );
    assert!(t.cuda_library, "torch/lib/libtorch_cuda.so is in the wheel");
    assert_eq!(
        t.wheel_tag.as_deref(),
        Some("cp312-cp312-manylinux_2_28_x86_64")
    );
    assert_eq!(t.error, None);
    // Required on Linux x86_64: the cuda-toolkit meta package, the components its extras name
    // (from its own METADATA), and the -cu13 wheels torch names directly.
    for name in [
        "cuda-toolkit",
        "nvidia-cublas",
        "nvidia-cuda-runtime",
        "nvidia-cuda-nvrtc",
        "nvidia-cuda-cupti",
        "nvidia-cufft",
        "nvidia-cufile",
        "nvidia-curand",
        "nvidia-cusolver",
        "nvidia-cusparse",
        "nvidia-nvjitlink",
        "nvidia-nvtx",
        "nvidia-cudnn-cu13",
        "nvidia-cusparselt-cu13",
        "nvidia-nccl-cu13",
        "nvidia-nvshmem-cu13",
    ] {
        assert!(
            t.nvidia_required.iter().any(|n| n == name),
            "{name} in {:?}",
            t.nvidia_required
        );
    }
    assert!(
        !t.nvidia_required.iter().any(|n| n == "nvidia-cuda-nvcc"),
        "extra not asked for"
    );
    assert!(t.nvidia_missing.is_empty(), "{:?}", t.nvidia_missing);
    assert_eq!(t.nvidia_wheels.len(), 16);
    assert!(!venv.llama_cpp.installed);
    assert!(venv.gpu_stacks.is_empty());

    // Remove two runtime wheels the way a broken install leaves them.
    fs::remove_dir_all(site.join("nvidia_nccl_cu13-2.28.9.dist-info")).unwrap();
    fs::remove_dir_all(site.join("nvidia_cublas-13.1.0.3.dist-info")).unwrap();
    let facts = probe(&context(&sb.project, &sb.home, &[])).data;
    assert_eq!(
        env(&facts, ".venv").torch.nvidia_missing,
        ["nvidia-cublas", "nvidia-nccl-cu13"]
    );

    // Without cuda-toolkit its components cannot be known; the meta package itself is missing.
    fs::remove_dir_all(site.join("cuda_toolkit-13.0.2.dist-info")).unwrap();
    let facts = probe(&context(&sb.project, &sb.home, &[])).data;
    let missing = &env(&facts, ".venv").torch.nvidia_missing;
    assert!(missing.contains(&"cuda-toolkit".to_string()), "{missing:?}");
}

#[test]
fn cpu_torch_is_a_cpu_build_without_nvidia_requirements() {
    let sb = sandbox();
    let site = real_venv(&sb.project.join(".venv"));
    copy_tree(&fixture("torch-2.5.1-cpu-linux"), &site);
    let facts = probe(&context(&sb.project, &sb.home, &[])).data;
    let t = &env(&facts, ".venv").torch;
    assert!(t.installed);
    assert_eq!(t.version.as_deref(), Some("2.5.1+cpu"));
    assert_eq!(t.dist_version.as_deref(), Some("2.5.1+cpu"));
    assert_eq!(t.local_tag.as_deref(), Some("cpu"));
    assert_eq!(t.cuda, None);
    assert_eq!(t.cuda_version, None);
    assert!(!t.cuda_build);
    assert!(!t.cuda_library);
    assert!(t.nvidia_required.is_empty());
    assert!(t.nvidia_missing.is_empty());
    assert_eq!(t.error, None);
}

#[test]
fn malformed_or_oversized_version_py_is_an_error_not_a_panic() {
    let sb = sandbox();
    let site = real_venv(&sb.project.join(".venv"));
    copy_tree(&fixture("torch-2.5.1-cpu-linux"), &site);
    let version_py = site.join("torch/version.py");

    fs::write(&version_py, b"\xff\xfe\x00garbage = = '\n__version__ = \n").unwrap();
    let facts = probe(&context(&sb.project, &sb.home, &[])).data;
    let t = &env(&facts, ".venv").torch;
    assert!(t.installed);
    assert_eq!(t.version, None);
    assert!(
        t.error.as_deref().unwrap().contains("no __version__"),
        "{:?}",
        t.error
    );

    fs::write(&version_py, "x = 'y'\n".repeat(20_000)).unwrap();
    let facts = probe(&context(&sb.project, &sb.home, &[])).data;
    let t = &env(&facts, ".venv").torch;
    assert!(
        t.error.as_deref().unwrap().contains("larger than"),
        "{:?}",
        t.error
    );

    fs::remove_file(&version_py).unwrap();
    let facts = probe(&context(&sb.project, &sb.home, &[])).data;
    let t = &env(&facts, ".venv").torch;
    assert!(t.installed, "the dist-info still says torch is installed");
    assert!(
        t.error.as_deref().unwrap().contains("version.py"),
        "{:?}",
        t.error
    );
}

// ---------------------------------------------------------------------------------------------
// llama-cpp-python

#[test]
fn llama_cpp_cpu_and_cuda_builds_are_told_apart_by_their_lib_files() {
    let sb = sandbox();
    let cpu = real_venv(&sb.project.join(".venv-cpu"));
    copy_tree(&fixture("llama-cpp-python-0.3.36-cpu-linux"), &cpu);
    let gpu = real_venv(&sb.project.join(".venv-gpu"));
    copy_tree(&fixture("llama-cpp-python-0.3.36-cu124-linux"), &gpu);
    // A real ELF CUDA backend in place of the empty stand-in, needing what the GPU machine's
    // build needs (llamacpp.md, gpu-machine.md).
    let lib = gpu.join("llama_cpp/lib");
    for (file, soname) in [
        ("libcudart.so.12", "libcudart.so.12"),
        ("libcublas.so.12", "libcublas.so.12"),
        ("libcuda.so.1", "libcuda.so.1"),
    ] {
        cc_shared(&lib, file, soname, &[]);
    }
    cc_shared(
        &lib,
        "libggml-cuda.so",
        "libggml-cuda.so.0",
        &["libcudart.so.12", "libcublas.so.12", "libcuda.so.1"],
    );

    let facts = probe(&context(&sb.project, &sb.home, &[])).data;
    let l = &env(&facts, ".venv-cpu").llama_cpp;
    assert!(l.installed);
    assert_eq!(l.version.as_deref(), Some("0.3.36"));
    assert_eq!(l.version_source.as_deref(), Some("dist-info"));
    assert!(l.lib_dir.as_deref().unwrap().ends_with("llama_cpp/lib"));
    assert_eq!(l.backends, ["cpu"]);
    assert!(l.gpu_backends.is_empty());
    assert!(!l.cuda_backend);
    assert_eq!(l.lib_files.len(), 12);
    // The empty stand-ins for libllama.so and libggml.so were looked into for linked-in CUDA.
    assert!(
        l.error.as_deref().unwrap().contains("not an ELF file"),
        "{:?}",
        l.error
    );

    let l = &env(&facts, ".venv-gpu").llama_cpp;
    assert_eq!(l.backends, ["cpu", "cuda"]);
    assert_eq!(l.gpu_backends, ["cuda"]);
    assert!(l.cuda_backend);
    assert!(!l.cuda_linked_into_core);
    assert_eq!(l.cuda_library.as_deref(), Some("libggml-cuda.so"));
    assert!(
        l.cuda_needed.contains(&"libcudart.so.12".to_string()),
        "{:?}",
        l.cuda_needed
    );
    assert!(l.cuda_needed.contains(&"libcublas.so.12".to_string()));
    assert!(l.cuda_needed.contains(&"libcuda.so.1".to_string()));
    assert_eq!(l.cuda_runtime_major, Some(12));
    assert_eq!(l.error, None);
}

#[test]
fn old_llama_cpp_with_cuda_linked_into_libllama_is_a_cuda_build() {
    // Before 0.3.2 there was no libggml-cuda.so: CUDA was linked into libllama.so, and before
    // July 2024 the libraries sat in llama_cpp/ itself. Only DT_NEEDED tells the builds apart.
    let sb = sandbox();
    let site = real_venv(&sb.project.join(".venv"));
    let pkg = site.join("llama_cpp");
    write(
        &pkg.join("__init__.py"),
        "from .llama_cpp import *\n\n__version__ = \"0.2.77\"\n",
    );
    cc_shared(&pkg, "libcudart.so.12", "libcudart.so.12", &[]);
    cc_shared(&pkg, "libcublas.so.12", "libcublas.so.12", &[]);
    cc_shared(
        &pkg,
        "libllama.so",
        "libllama.so",
        &["libcudart.so.12", "libcublas.so.12"],
    );
    // The stubs are not what a real install ships; take them out of the listing.
    fs::remove_file(pkg.join("libcudart.so.12")).unwrap();
    fs::remove_file(pkg.join("libcublas.so.12")).unwrap();

    let facts = probe(&context(&sb.project, &sb.home, &[])).data;
    let l = &env(&facts, ".venv").llama_cpp;
    assert!(l.installed);
    assert_eq!(l.version.as_deref(), Some("0.2.77"));
    assert_eq!(l.version_source.as_deref(), Some("__init__.py"));
    assert!(
        l.lib_dir.as_deref().unwrap().ends_with("llama_cpp"),
        "{:?}",
        l.lib_dir
    );
    assert_eq!(l.backends, ["cuda"]);
    assert_eq!(l.gpu_backends, ["cuda"]);
    assert!(l.cuda_backend);
    assert!(l.cuda_linked_into_core);
    assert_eq!(l.cuda_library.as_deref(), Some("libllama.so"));
    assert_eq!(l.cuda_runtime_major, Some(12));
    assert!(l.needed["libllama.so"].contains(&"libcublas.so.12".to_string()));

    // The same layout built without CUDA.
    cc_shared(&pkg, "libllama.so", "libllama.so", &[]);
    let facts = probe(&context(&sb.project, &sb.home, &[])).data;
    let l = &env(&facts, ".venv").llama_cpp;
    assert!(!l.cuda_backend);
    assert!(l.gpu_backends.is_empty());
    assert!(l.needed.contains_key("libllama.so"));
    assert_eq!(l.error, None);
}

#[test]
fn llama_cpp_lib_path_overrides_are_reported_with_their_backends() {
    let sb = sandbox();
    let libs = sb.root.join("custom-llama-lib");
    copy_tree(
        &fixture("llama-cpp-python-0.3.36-cu124-linux/llama_cpp/lib"),
        &libs,
    );
    let vars = [("LLAMA_CPP_LIB_PATH", libs.to_string_lossy().into_owned())];
    let facts = probe(&context(&sb.project, &sb.home, &vars)).data;
    let o = facts.llama_cpp_lib_override.expect("override reported");
    assert_eq!(o.variable, "LLAMA_CPP_LIB_PATH");
    assert!(o.exists);
    assert!(o.cuda_backend);
    assert_eq!(o.gpu_backends, ["cuda"]);

    let vars = [("LLAMA_CPP_LIB_PATH", "/nonexistent/llama/lib".to_string())];
    let facts = probe(&context(&sb.project, &sb.home, &vars)).data;
    let o = facts.llama_cpp_lib_override.unwrap();
    assert!(!o.exists);
    assert!(o.backends.is_empty());
}

// ---------------------------------------------------------------------------------------------
// layouts and broken environments

/// A Windows venv on disk: Scripts\python.exe, Lib\site-packages, pyvenv.cfg naming a
/// Windows base interpreter.
fn windows_venv(dir: &Path, version: &str, home: &str) -> PathBuf {
    write(&dir.join("Scripts/python.exe"), "");
    write(&dir.join("Scripts/activate.bat"), "");
    write(
        &dir.join("pyvenv.cfg"),
        &format!(
            "home = {home}\ninclude-system-site-packages = false\nversion = {version}\n\
             executable = {home}\\python.exe\ncommand = {home}\\python.exe -m venv {}\n",
            dir.display()
        ),
    );
    let site = dir.join("Lib/site-packages");
    fs::create_dir_all(&site).unwrap();
    site
}

#[test]
fn the_seeds_windows_project_is_read_from_files() {
    // The seed's laptop, as files: .venv (3.13, CPU torch? here the CUDA llama wheel),
    // .venv310 (torch 2.5.1+cu121), .venv-gpu (empty), and the editor set to .venv.
    let sb = sandbox();
    let home313 = "C:\\Users\\dev\\AppData\\Local\\Programs\\Python\\Python313";
    let home310 = "C:\\Users\\dev\\AppData\\Local\\Programs\\Python\\Python310";
    let site = windows_venv(&sb.project.join(".venv"), "3.13.1", home313);
    copy_tree(&fixture("llama-cpp-python-0.3.36-cu124-windows"), &site);
    let site310 = windows_venv(&sb.project.join(".venv310"), "3.10.11", home310);
    copy_tree(&fixture("torch-2.5.1-cu121-windows"), &site310);
    windows_venv(&sb.project.join(".venv-gpu"), "3.13.1", home313);
    write(
        &sb.project.join(".vscode/settings.json"),
        r#"{
    // Use the project's environment
    "python.defaultInterpreterPath": "${workspaceFolder}\\.venv\\Scripts\\python.exe",
    "python.terminal.activateEnvironment": true,
    "python.testing.pytestArgs": ["--gpu-required"],  // Custom flag
}
"#,
    );

    let facts = probe(&context(&sb.project, &sb.home, &[])).data;
    assert_eq!(names(&facts), [".venv", ".venv-gpu", ".venv310"]);
    assert!(facts.errors.is_empty(), "{:?}", facts.errors);

    let editor = facts.editor.as_ref().expect("editor setting read");
    assert_eq!(editor.key, "python.defaultInterpreterPath");
    assert!(editor.exists);
    assert_eq!(editor.environment.as_deref(), Some(".venv"));
    assert!(editor
        .resolved
        .as_deref()
        .unwrap()
        .ends_with(".venv/Scripts/python.exe"));

    let v = env(&facts, ".venv");
    assert_eq!(v.layout, "windows");
    assert!(v.editor);
    assert_eq!(v.found_by, ["project", "editor"]);
    assert!(v.python.ends_with(".venv/Scripts/python.exe"));
    assert!(v.python_exists);
    assert_eq!(v.python_version.as_deref(), Some("3.13.1"));
    assert_eq!(v.base_python.as_deref(), Some(home313));
    assert_eq!(
        v.base_python_exists, None,
        "a Windows path is not judged on Linux"
    );
    assert!(v
        .site_packages
        .as_deref()
        .unwrap()
        .ends_with(".venv/Lib/site-packages"));
    assert_eq!(v.llama_cpp.backends, ["cpu", "cuda"]);
    assert!(v.llama_cpp.cuda_backend);
    assert_eq!(v.llama_cpp.cuda_library.as_deref(), Some("ggml-cuda.dll"));
    assert!(v.llama_cpp.needed.is_empty(), "DLLs are not read as ELF");
    assert_eq!(v.llama_cpp.error, None);
    assert!(!v.torch.installed);

    let v = env(&facts, ".venv310");
    assert!(!v.editor);
    let t = &v.torch;
    assert_eq!(t.version.as_deref(), Some("2.5.1+cu121"));
    assert_eq!(t.dist_version.as_deref(), Some("2.5.1+cu121"));
    assert_eq!(t.cuda.as_deref(), Some("12.1"));
    assert!(t.cuda_build);
    assert!(t.cuda_library, "torch_cuda.dll");
    assert_eq!(t.wheel_tag.as_deref(), Some("cp310-cp310-win_amd64"));
    assert!(
        t.nvidia_required.is_empty(),
        "Linux-only requirements: {:?}",
        t.nvidia_required
    );
    assert!(t.nvidia_missing.is_empty());
    assert!(!v.llama_cpp.installed);

    let v = env(&facts, ".venv-gpu");
    assert!(!v.torch.installed && !v.llama_cpp.installed && v.gpu_stacks.is_empty());
    assert!(v.site_packages_exists);
}

#[test]
fn a_venv_whose_base_interpreter_was_removed_is_dangling() {
    let sb = sandbox();
    let gone = sb.root.join("python-3.11-removed");
    let venv = sb.project.join(".venv");
    write(
        &venv.join("pyvenv.cfg"),
        &format!(
            "home = {}\nimplementation = CPython\nuv = 0.11.15\nversion_info = 3.11.9\n\
             include-system-site-packages = false\n",
            gone.join("bin").display()
        ),
    );
    fs::create_dir_all(venv.join("bin")).unwrap();
    std::os::unix::fs::symlink(gone.join("bin/python3.11"), venv.join("bin/python")).unwrap();
    std::os::unix::fs::symlink("python", venv.join("bin/python3")).unwrap();
    fs::create_dir_all(venv.join("lib/python3.11/site-packages")).unwrap();

    let facts = probe(&context(&sb.project, &sb.home, &[])).data;
    let v = env(&facts, ".venv");
    assert!(
        !v.python_exists,
        "bin/python3 -> python -> a deleted interpreter"
    );
    assert_eq!(v.python_link_target.as_deref(), Some("python"));
    assert!(v.python.ends_with(".venv/bin/python3"));
    assert_eq!(v.base_python_exists, Some(false));
    assert_eq!(
        v.base_python.as_deref(),
        Some(gone.join("bin/python3").to_string_lossy().as_ref())
    );
    assert_eq!(
        v.pyvenv_cfg.as_ref().unwrap().uv.as_deref(),
        Some("0.11.15")
    );
    assert_eq!(v.python_version.as_deref(), Some("3.11.9"));
    assert!(v.site_packages_exists);
}

#[test]
fn conda_environments_are_found_in_the_project_the_home_and_conda_prefix() {
    let sb = sandbox();
    let conda_env = |dir: &Path, version: &str| {
        write(
            &dir.join(format!("conda-meta/python-{version}-h955ad1f_0.json")),
            "{}",
        );
        write(&dir.join("conda-meta/history"), "");
        let short: Vec<&str> = version.split('.').take(2).collect();
        fs::create_dir_all(dir.join(format!("lib/python{}/site-packages", short.join("."))))
            .unwrap();
    };
    conda_env(&sb.project.join("envs/gpu"), "3.11.5");
    let listed = sb.root.join("elsewhere/condaenv");
    conda_env(&listed, "3.12.2");
    let miniconda = sb.home.join("miniconda3/envs/torch");
    conda_env(&miniconda, "3.10.14");
    write(
        &sb.home.join(".conda/environments.txt"),
        &format!("{}\n/deleted/env\n\n", listed.display()),
    );
    let vars = [("CONDA_PREFIX", listed.to_string_lossy().into_owned())];
    let facts = probe(&context(&sb.project, &sb.home, &vars)).data;

    let inside = env(&facts, "envs/gpu");
    assert_eq!(inside.kind, "conda");
    assert_eq!(inside.found_by, ["project"]);
    assert_eq!(inside.python_version.as_deref(), Some("3.11.5"));
    assert_eq!(inside.python_version_source.as_deref(), Some("conda-meta"));
    assert!(!inside.python_exists);
    assert!(inside.site_packages_exists);
    assert_eq!(inside.base_python_exists, None);

    let listed_name = listed.to_string_lossy();
    let outside = env(&facts, &listed_name);
    assert!(!outside.inside_project);
    assert!(outside.active);
    assert_eq!(outside.found_by, ["conda_prefix", "conda"]);
    assert_eq!(facts.active.as_deref(), Some(listed_name.as_ref()));

    let mini = env(&facts, &miniconda.to_string_lossy());
    assert_eq!(mini.found_by, ["conda"]);
    assert_eq!(facts.environments.len(), 3, "{:?}", names(&facts));
    // Inside the project first.
    assert_eq!(facts.environments[0].name, "envs/gpu");
}

// ---------------------------------------------------------------------------------------------
// discovery

#[test]
fn three_environments_active_and_path_first_in_a_few_milliseconds() {
    // The seed's situation on Linux: .venv active with CPU torch and CPU llama-cpp-python,
    // .venv310 with a CUDA torch, .venv-gpu empty.
    let sb = sandbox();
    let site = real_venv(&sb.project.join(".venv"));
    copy_tree(&fixture("torch-2.5.1-cpu-linux"), &site);
    copy_tree(&fixture("llama-cpp-python-0.3.36-cpu-linux"), &site);
    let site310 = real_venv(&sb.project.join(".venv310"));
    copy_tree(&fixture("torch-2.11.0-cu130-linux"), &site310);
    real_venv(&sb.project.join(".venv-gpu"));
    let venv = sb.project.join(".venv");
    let path = format!(
        "{}:/usr/bin:{}",
        venv.join("bin").display(),
        sb.project.join(".venv310/bin").display()
    );
    let vars = [
        ("VIRTUAL_ENV", venv.to_string_lossy().into_owned()),
        ("PATH", path),
    ];
    let ctx = context(&sb.project, &sb.home, &vars);
    probe(&ctx); // warm the file cache as a second run would be
    let start = Instant::now();
    let facts = probe(&ctx).data;
    let took = start.elapsed();

    assert_eq!(names(&facts), [".venv", ".venv-gpu", ".venv310"]);
    assert_eq!(facts.active.as_deref(), Some(".venv"));
    assert_eq!(facts.path_first.as_deref(), Some(".venv"));
    let v = env(&facts, ".venv");
    assert!(v.active && v.path_first);
    assert_eq!(v.found_by, ["virtual_env", "path", "project"]);
    assert!(!v.torch.cuda_build);
    assert!(v.llama_cpp.installed && !v.llama_cpp.cuda_backend);
    let v310 = env(&facts, ".venv310");
    assert!(!v310.active && !v310.path_first);
    assert!(v310.torch.cuda_build);
    // Debug build on a shared machine: generous, but catches a recursive walk of site-packages.
    eprintln!("static probe of 3 environments: {took:?}");
    assert!(took < Duration::from_millis(250), "took {took:?}");
}

#[test]
fn the_shells_environment_is_found_from_path_without_virtual_env() {
    // The GPU test machine: /opt/torch/.venv/bin leads PATH, VIRTUAL_ENV is unset, and the
    // project folder holds no environment of its own.
    let sb = sandbox();
    let venv = sb.root.join("opt/torch/.venv");
    let site = real_venv(&venv);
    copy_tree(&fixture("torch-2.11.0-cu130-linux"), &site);
    let path = format!(
        "{}:/usr/local/nvidia/bin:/usr/bin",
        venv.join("bin").display()
    );
    let facts = probe(&context(&sb.project, &sb.home, &[("PATH", path)])).data;
    let name = venv.to_string_lossy();
    let v = env(&facts, &name);
    assert_eq!(v.found_by, ["path"]);
    assert!(v.path_first && !v.active && !v.inside_project);
    assert_eq!(facts.path_first.as_deref(), Some(name.as_ref()));
    assert_eq!(facts.active, None);
    assert_eq!(v.torch.version.as_deref(), Some("2.11.0+cu130"));
    assert!(v.torch.nvidia_missing.is_empty());
}

#[test]
fn a_symlink_loop_under_the_project_terminates() {
    let sb = sandbox();
    real_venv(&sb.project.join(".venv"));
    fs::create_dir_all(sb.project.join("a/b")).unwrap();
    std::os::unix::fs::symlink(&sb.project, sb.project.join("a/b/up")).unwrap();
    std::os::unix::fs::symlink("..", sb.project.join("a/loop")).unwrap();
    std::os::unix::fs::symlink("self", sb.project.join("self")).unwrap(); // dangling cycle
    let start = Instant::now();
    let facts = probe(&context(&sb.project, &sb.home, &[])).data;
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(names(&facts), [".venv"]);
    assert!(!facts.scan_truncated);
}

#[test]
fn discovery_stops_at_its_depth_and_skips_build_and_vcs_folders() {
    let sb = sandbox();
    let venv_at = |rel: &str| {
        let dir = sb.project.join(rel);
        write(
            &dir.join("pyvenv.cfg"),
            "home = /usr/bin\nversion = 3.11.2\n",
        );
        fs::create_dir_all(dir.join("lib/python3.11/site-packages")).unwrap();
    };
    venv_at("x/y/env3"); // depth 3: found
    venv_at("x/y/z/env4"); // depth 4: beyond the bound
    venv_at("node_modules/pkg/.venv");
    venv_at(".git/modules/.venv");
    venv_at("target/.venv");
    venv_at("env1/nested/.venv"); // inside an environment: not searched
    venv_at("env1");
    let facts = probe(&context(&sb.project, &sb.home, &[])).data;
    assert_eq!(names(&facts), ["env1", "x/y/env3"]);
}

#[test]
fn uv_projects_and_config_name_environments() {
    let sb = sandbox();
    write(&sb.project.join("pyproject.toml"), "[project]\nname = \"demo\"\n\n[tool.gpu-doctor.python]\nenvironments = [\"../shared-env\"]\n");
    write(&sb.project.join("uv.lock"), "version = 1\n");
    real_venv(&sb.project.join("uv-env"));
    real_venv(&sb.root.join("shared-env"));
    // The nearest configuration is the one read (crate::config): gpu-doctor.toml, which wins
    // over pyproject.toml's table in the same folder, names both.
    write(
        &sb.project.join("gpu-doctor.toml"),
        "[python]\nenvironments = [\"../shared-env\", \"/nonexistent/env\"]\n",
    );
    let vars = [("UV_PROJECT_ENVIRONMENT", "uv-env".to_string())];
    let facts = probe(&context(&sb.project, &sb.home, &vars)).data;

    let uv = env(&facts, "uv-env");
    assert_eq!(uv.found_by, ["project", "uv"]);
    let shared = env(&facts, &sb.root.join("shared-env").to_string_lossy());
    assert_eq!(shared.found_by, ["config"]);
    assert!(shared.exists);
    let missing = env(&facts, "/nonexistent/env");
    assert_eq!(missing.found_by, ["config"]);
    assert!(!missing.exists && !missing.python_exists);
    assert_eq!(missing.errors.len(), 1, "{:?}", missing.errors);

    // Without UV_PROJECT_ENVIRONMENT a uv project's environment is .venv; a missing one is
    // noted where the probe looked.
    let facts = probe(&context(&sb.project, &sb.home, &[])).data;
    assert!(
        facts.searched.iter().any(|s| s.contains(".venv (missing")),
        "{:?}",
        facts.searched
    );
}

#[test]
fn an_editor_setting_pointing_outside_the_project_or_nowhere() {
    let sb = sandbox();
    real_venv(&sb.project.join(".venv"));
    let outside = sb.root.join("tools/py311");
    real_venv(&outside);
    write(
        &sb.project.join(".vscode/settings.json"),
        &format!(
            "{{ /* outside */ \"python.pythonPath\": \"{}/bin/python\", }}",
            outside.display()
        ),
    );
    let facts = probe(&context(&sb.project, &sb.home, &[])).data;
    let editor = facts.editor.as_ref().unwrap();
    assert_eq!(editor.key, "python.pythonPath");
    assert_eq!(
        editor.environment.as_deref(),
        Some(outside.to_string_lossy().as_ref())
    );
    assert!(env(&facts, &outside.to_string_lossy()).editor);
    assert!(!env(&facts, ".venv").editor);

    write(
        &sb.project.join(".vscode/settings.json"),
        "{\"python.defaultInterpreterPath\": \"${workspaceFolder}/gone/bin/python\"}",
    );
    let facts = probe(&context(&sb.project, &sb.home, &[])).data;
    let editor = facts.editor.as_ref().unwrap();
    assert!(!editor.exists);
    assert_eq!(editor.environment, None);

    write(&sb.project.join(".vscode/settings.json"), "{ not json");
    let facts = probe(&context(&sb.project, &sb.home, &[])).data;
    assert!(facts.editor.is_none());
    assert!(
        facts.errors.iter().any(|e| e.contains("not valid JSON")),
        "{:?}",
        facts.errors
    );
}

#[test]
fn other_gpu_stacks_are_named_with_their_builds() {
    let sb = sandbox();
    let site = real_venv(&sb.project.join(".venv"));
    for dist in [
        "jax-0.4.35",
        "jaxlib-0.4.35",
        "jax_cuda12_plugin-0.4.35",
        "cupy_cuda12x-13.3.0",
        "onnxruntime-1.20.1",
        "onnxruntime_gpu-1.20.1",
        "nvidia_cublas_cu12-12.5.3.2",
    ] {
        fs::create_dir_all(site.join(format!("{dist}.dist-info"))).unwrap();
    }
    // tensorflow's real METADATA header lines (PyPI tensorflow-2.18.0, Linux x86_64 wheel).
    write(
        &site.join("tensorflow-2.18.0.dist-info/METADATA"),
        "Metadata-Version: 2.1\nName: tensorflow\nVersion: 2.18.0\n\
         Requires-Dist: absl-py >=1.0.0\n\
         Requires-Dist: tensorflow-intel ==2.18.0 ; platform_system == \"Windows\"\n\
         Provides-Extra: and-cuda\n\
         Requires-Dist: nvidia-cublas-cu12 ==12.5.3.2 ; extra == 'and-cuda'\n\
         Requires-Dist: nvidia-cuda-runtime-cu12 ==12.5.82 ; extra == 'and-cuda'\n\
         Requires-Dist: nvidia-cudnn-cu12 ==9.3.0.75 ; extra == 'and-cuda'\n\n\
         TensorFlow is an open source software library\n",
    );
    write(
        &site.join("tensorflow-2.18.0.dist-info/WHEEL"),
        "Wheel-Version: 1.0\nRoot-Is-Purelib: false\n\
         Tag: cp311-cp311-manylinux_2_17_x86_64\nTag: cp311-cp311-manylinux2014_x86_64\n",
    );
    let facts = probe(&context(&sb.project, &sb.home, &[])).data;
    let stacks = &env(&facts, ".venv").gpu_stacks;
    let stack = |n: &str| stacks.iter().find(|s| s.name == n).unwrap();

    let jax = stack("jax");
    assert!(jax.gpu_build);
    assert_eq!(jax.cuda_major, Some(12));
    assert_eq!(jax.version.as_deref(), Some("0.4.35"));
    assert_eq!(jax.missing, ["jax-cuda12-pjrt"]);

    let cupy = stack("cupy");
    assert!(cupy.gpu_build);
    assert_eq!(cupy.cuda_major, Some(12));

    let ort = stack("onnxruntime");
    assert!(ort.gpu_build);
    assert!(ort.note.as_deref().unwrap().contains("both installed"));

    let tf = stack("tensorflow");
    assert!(tf.gpu_build);
    assert_eq!(tf.cuda_major, Some(12));
    assert_eq!(
        tf.missing,
        ["nvidia-cuda-runtime-cu12", "nvidia-cudnn-cu12"]
    );
}

#[test]
fn no_environment_is_absent_and_says_where_it_looked() {
    let sb = sandbox();
    let got = probe(&context(&sb.project, &sb.home, &[]));
    assert_eq!(got.status, ProbeStatus::Absent);
    let why = got.error.unwrap();
    assert!(
        why.contains(&sb.project.to_string_lossy().to_string()),
        "{why}"
    );
    assert!(got.data.environments.is_empty());

    // A VIRTUAL_ENV naming a deleted folder is still reported: the shell will try to use it.
    let vars = [(
        "VIRTUAL_ENV",
        sb.root.join("deleted-venv").to_string_lossy().into_owned(),
    )];
    let got = probe(&context(&sb.project, &sb.home, &vars));
    assert_eq!(got.status, ProbeStatus::Ok);
    let v = &got.data.environments[0];
    assert!(!v.exists && v.active && !v.python_exists);
    assert!(v.errors[0].contains("does not exist"), "{:?}", v.errors);
}

#[test]
fn python_facts_serialize_every_optional_value_as_null() {
    let sb = sandbox();
    let site = real_venv(&sb.project.join(".venv"));
    copy_tree(&fixture("torch-2.5.1-cpu-linux"), &site);
    let facts = probe(&context(&sb.project, &sb.home, &[])).data;
    let json = serde_json::to_value(&facts).unwrap();
    let venv = &json["environments"][0];
    assert!(venv["torch"].get("cuda").unwrap().is_null());
    assert!(venv["torch"].get("hip").unwrap().is_null());
    assert!(venv["llama_cpp"].get("version").unwrap().is_null());
    assert!(json.get("editor").unwrap().is_null());
    let back: PythonFacts = serde_json::from_value(json).unwrap();
    assert_eq!(
        back.environments[0].torch.version.as_deref(),
        Some("2.5.1+cpu")
    );
    // Older or partial documents still load: every field has a default.
    let partial: PythonFacts = serde_json::from_str(r#"{"environments":[{"name":"x"}]}"#).unwrap();
    assert!(!partial.environments[0].torch.installed);
}

/// This machine's Python facts as JSON, with the probe's time, for recording fixtures and for
/// checking real environments by hand:
/// `GPU_DOCTOR_PROJECT_DIR=DIR cargo test --test python_static -- --ignored --nocapture`.
#[test]
#[ignore]
fn print_this_machine() {
    let ctx = ProbeContext::from_process(Profile::Quick);
    probe(&ctx); // warm the file cache
    let start = Instant::now();
    let got = probe(&ctx);
    let took = start.elapsed();
    println!("{}", serde_json::to_string_pretty(&got.data).unwrap());
    println!("status: {:?} {:?}; took {took:?}", got.status, got.error);
}
