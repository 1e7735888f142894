//! Facts about the project's Python environments: where each one is, how it was found, its
//! interpreter, and the GPU packages in its site-packages (torch, llama-cpp-python, jax, cupy,
//! onnxruntime, tensorflow), as read from files without running Python.
//!
//! Each environment is one [`PythonEnv`]; rules with `scope = "venv"` are evaluated once per
//! environment with it bound as `venv`. The booleans (`torch.cuda_build`,
//! `llama_cpp.cuda_backend`, ...) are derived here once so that rule conditions stay short.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every Python environment found for the project, and the settings that choose between them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct PythonFacts {
    /// The project folder searched (GPU_DOCTOR_PROJECT_DIR, else the current directory).
    pub project_dir: Option<String>,
    /// Environments, de-duplicated by canonical path: those inside the project first, by name.
    pub environments: Vec<PythonEnv>,
    /// Name of the environment that VIRTUAL_ENV (else CONDA_PREFIX) activates.
    pub active: Option<String>,
    /// Name of the environment whose bin (Scripts) folder comes first on PATH: the one a bare
    /// `python` in this shell runs.
    pub path_first: Option<String>,
    /// The interpreter the editor is set to, when the project has such a setting.
    pub editor: Option<EditorInterpreter>,
    /// LLAMA_CPP_LIB_PATH (or the older LLAMA_CPP_LIB): replaces llama_cpp/lib in every
    /// environment run from this shell.
    pub llama_cpp_lib_override: Option<LlamaLibOverride>,
    /// Where environments were looked for, in order (for "nothing found" messages and -v).
    pub searched: Vec<String>,
    /// The project scan hit its bound on folders visited before it finished.
    pub scan_truncated: bool,
    /// Problems met while discovering (an unreadable settings file, ...).
    pub errors: Vec<String>,
}

/// One Python environment (a venv, a conda environment, a uv project environment).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct PythonEnv {
    /// Path relative to the project when inside it (".venv", "envs/gpu"), else the full path.
    pub name: String,
    /// The environment folder, as it was found (absolute).
    pub path: String,
    /// The folder with symlinks resolved; null when it does not exist.
    pub canonical_path: Option<String>,
    /// The folder exists (VIRTUAL_ENV or an editor setting may name a deleted one).
    pub exists: bool,
    /// "venv" (has pyvenv.cfg), "conda" (has conda-meta/) or "unknown" (neither: a system
    /// interpreter's prefix the editor points at, or a folder that does not exist).
    pub kind: String,
    /// "posix" (bin/python, lib/pythonX.Y/site-packages) or "windows" (Scripts\python.exe,
    /// Lib\site-packages).
    pub layout: String,
    /// Every way it was found: project, virtual_env, conda_prefix, path, conda, uv, editor,
    /// config, poetry, pyenv, hatch, pdm.
    pub found_by: Vec<String>,
    /// The name the tool that keeps it gives it: Poetry's `proj-AbCdEf12-py3.12`, the pyenv
    /// version or pyenv-virtualenv name, Hatch's environment name; null otherwise.
    pub tool_name: Option<String>,
    /// Named by VIRTUAL_ENV or CONDA_PREFIX.
    pub active: bool,
    /// The editor's interpreter setting points into it.
    pub editor: bool,
    /// Its bin (Scripts) folder is the first environment folder on PATH.
    pub path_first: bool,
    /// Inside the project folder.
    pub inside_project: bool,
    /// The environment's own interpreter (the expected path when none exists).
    pub python: String,
    /// The interpreter exists (a dangling symlink does not).
    pub python_exists: bool,
    /// Where the interpreter symlink points, when it is one.
    pub python_link_target: Option<String>,
    /// "3.12.3" or "3.12".
    pub python_version: Option<String>,
    /// Where the version came from: pyvenv.cfg, conda-meta, or lib folder.
    pub python_version_source: Option<String>,
    /// The parsed pyvenv.cfg; null for environments without one (conda).
    pub pyvenv_cfg: Option<PyvenvCfg>,
    /// The base interpreter this venv was made from (pyvenv.cfg `home` + python).
    pub base_python: Option<String>,
    /// Whether that base interpreter still exists; null when not applicable or not checkable
    /// here (a Windows path read on Linux).
    pub base_python_exists: Option<bool>,
    /// The interpreter runs another Python major.minor than pyvenv.cfg records: the base
    /// interpreter was upgraded (or replaced) behind the environment, which then no longer sees
    /// its own packages. Null when they agree or when it cannot be told.
    pub interpreter_version_mismatch: Option<VersionMismatch>,
    /// Why the base interpreter could not be looked at, when it could not (a folder on its
    /// path that this user may not search: "Permission denied"); `base_python_exists` is then
    /// null, as whether it is there is unknown.
    pub base_python_unreadable: Option<String>,
    /// The site-packages folder (the expected path when none exists).
    pub site_packages: Option<String>,
    pub site_packages_exists: bool,
    /// The folders this environment's interpreter imports packages from, in the order
    /// `site.py` puts them on sys.path: its site-packages, the path lines of the `.pth` files
    /// there, the user's site-packages where enabled, the base interpreter's site-packages when
    /// pyvenv.cfg says `include-system-site-packages = true`, and the folders editable installs
    /// map packages to. Packages are looked up in this order (the first folder holding a
    /// package wins, as the import system does).
    pub import_paths: Vec<ImportPath>,
    pub torch: TorchFacts,
    pub llama_cpp: LlamaCppFacts,
    /// Other GPU stacks present: jax, cupy, onnxruntime, tensorflow.
    pub gpu_stacks: Vec<GpuStack>,
    /// What the environment's own interpreter reported (standard and full profiles); null in
    /// the quick profile or when the interpreter could not be run.
    pub live: Option<LiveProbe>,
    /// Where the file reading (the static tier) and the environment's own interpreter (the
    /// live tier) disagree: torch or llama-cpp-python seen by one and not the other, or found in
    /// different folders. Empty without a live answer. The live answer is the truth.
    pub static_live_differences: Vec<StaticLiveDifference>,
    /// Problems reading this environment's files.
    pub errors: Vec<String>,
}

/// pyvenv.cfg's Python version against the one the interpreter has now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct VersionMismatch {
    /// The version the environment was made with (pyvenv.cfg): "3.10.13".
    pub pyvenv_cfg: String,
    /// The version its interpreter has now: "3.12.1" (live), or "3.12" (the file the
    /// interpreter link resolves to, python3.12).
    pub interpreter: String,
    /// "live" (the interpreter said so) or "files" (the name of the interpreter file).
    pub seen_by: String,
    /// The site-packages of the old version, which the interpreter no longer reads; null when
    /// it does not exist.
    pub stranded_site_packages: Option<String>,
}

/// One folder packages are imported from, and how the interpreter reaches it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ImportPath {
    /// The folder (absolute).
    pub path: String,
    /// "site-packages" (the environment's own), "pth" (a path line of a .pth file),
    /// "user-site" (the user's site-packages), "base-site-packages" (the base interpreter's,
    /// through include-system-site-packages) or "editable" (a folder an editable install's
    /// finder maps a package to).
    pub reached_by: String,
    /// What reaches it: the .pth file or editable finder (full path), or the pyvenv.cfg that
    /// includes the base's site-packages; null for the environment's own site-packages and
    /// the user's.
    pub via: Option<String>,
    /// For "editable": the packages the finder maps to this folder (only they are found
    /// there); empty for the others.
    pub packages: Vec<String>,
}

/// A static guess that the live answer contradicts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct StaticLiveDifference {
    /// "torch" or "llama_cpp".
    pub package: String,
    /// What the files said: "installed in FOLDER" or "not installed".
    pub static_answer: String,
    /// What the interpreter said: "imported from FOLDER", "import failed: ..." or "not found".
    pub live_answer: String,
}

/// pyvenv.cfg, as written by venv, virtualenv or uv.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct PyvenvCfg {
    /// Folder of the base interpreter.
    pub home: Option<String>,
    /// `version` (venv) or `version_info` (virtualenv, uv).
    pub version: Option<String>,
    pub include_system_site_packages: Option<bool>,
    /// The base interpreter's full path (venv ≥ 3.11 writes it).
    pub executable: Option<String>,
    pub implementation: Option<String>,
    /// uv's version, when uv made the environment.
    pub uv: Option<String>,
    /// virtualenv's version, when virtualenv made it.
    pub virtualenv: Option<String>,
    pub prompt: Option<String>,
}

/// A distribution installed in site-packages, from its `.dist-info` folder name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Dist {
    /// Normalized name (PEP 503): "nvidia-cublas-cu12".
    pub name: String,
    pub version: String,
}

/// PyTorch, read from torch/version.py (never executed) and its dist-info.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct TorchFacts {
    /// The torch package folder or its dist-info is present in one of the import paths.
    pub installed: bool,
    /// The import path it was found in, and how that folder is reached.
    pub found_in: Option<ImportPath>,
    /// Installed in editable mode (its dist-info's direct_url.json): the source folder.
    pub editable_source: Option<String>,
    /// `__version__` of torch/version.py, with its local tag: "2.11.0+cu130".
    pub version: Option<String>,
    /// Version in the dist-info (PyPI wheels strip the local tag there: "2.11.0").
    pub dist_version: Option<String>,
    /// Local tag of `version`: "cu130", "cpu", "rocm6.2"; null when there is none.
    pub local_tag: Option<String>,
    /// `cuda` of torch/version.py (torch.version.cuda): "13.0"; null for CPU and ROCm builds.
    pub cuda: Option<String>,
    /// Same as `cuda`, as "major.minor".
    pub cuda_version: Option<String>,
    pub cuda_major: Option<u32>,
    /// `cuda` is set: a CUDA build.
    pub cuda_build: bool,
    /// `hip` of torch/version.py: set for ROCm builds.
    pub hip: Option<String>,
    pub xpu: Option<String>,
    pub git_version: Option<String>,
    /// torch/lib/libtorch_cuda.so (Linux) or torch_cuda.dll (Windows) is present.
    pub cuda_library: bool,
    /// First tag of the wheel (dist-info/WHEEL): "cp312-cp312-manylinux_2_28_x86_64".
    pub wheel_tag: Option<String>,
    /// nvidia-* and cuda-toolkit distributions installed in this environment.
    pub nvidia_wheels: Vec<Dist>,
    /// The nvidia-* (and cuda-toolkit) distributions torch's metadata requires on this
    /// environment's platform; cuda-toolkit's extras are expanded through its own metadata.
    pub nvidia_required: Vec<String>,
    /// Those of `nvidia_required` not installed.
    pub nvidia_missing: Vec<String>,
    /// The version.py file read.
    pub version_file: Option<String>,
    /// What could not be read or parsed.
    pub error: Option<String>,
}

/// llama-cpp-python, read from its dist-info and the files of llama_cpp/lib.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct LlamaCppFacts {
    /// The llama_cpp package folder or its dist-info is present in one of the import paths.
    pub installed: bool,
    /// The import path it was found in, and how that folder is reached.
    pub found_in: Option<ImportPath>,
    /// Installed in editable mode (its dist-info's direct_url.json): the source folder.
    pub editable_source: Option<String>,
    pub version: Option<String>,
    /// "dist-info" or "__init__.py".
    pub version_source: Option<String>,
    pub package_dir: Option<String>,
    /// llama_cpp/lib, or llama_cpp itself for builds before July 2024.
    pub lib_dir: Option<String>,
    /// Shared libraries in lib_dir, by file name.
    pub lib_files: Vec<String>,
    /// Every ggml backend present: cpu, cuda, vulkan, metal, hip, sycl, blas, rpc, ...
    pub backends: Vec<String>,
    /// The GPU ones among them.
    pub gpu_backends: Vec<String>,
    /// A CUDA backend is present: libggml-cuda.so / ggml-cuda.dll, or (before 0.3.2) CUDA
    /// linked into libllama.so / libggml.so.
    pub cuda_backend: bool,
    /// The file that carries CUDA.
    pub cuda_library: Option<String>,
    /// CUDA is linked into the core library (builds before 0.3.2), not a separate backend.
    pub cuda_linked_into_core: bool,
    /// What that file needs from the dynamic loader (DT_NEEDED), Linux only.
    pub cuda_needed: Vec<String>,
    /// CUDA major version of the runtime it needs (libcudart.so.12, cudart64_12.dll -> 12).
    pub cuda_runtime_major: Option<u32>,
    /// DT_NEEDED of each library that was read, by file name.
    pub needed: BTreeMap<String, Vec<String>>,
    pub error: Option<String>,
}

/// LLAMA_CPP_LIB_PATH / LLAMA_CPP_LIB and what the folder it names holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct LlamaLibOverride {
    /// The variable that is set.
    pub variable: String,
    /// Its value.
    pub path: String,
    /// The folder (or, for LLAMA_CPP_LIB, the file) exists.
    pub exists: bool,
    pub lib_files: Vec<String>,
    pub backends: Vec<String>,
    pub gpu_backends: Vec<String>,
    pub cuda_backend: bool,
}

/// Another GPU stack found in site-packages.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct GpuStack {
    /// "jax", "cupy", "onnxruntime" or "tensorflow".
    pub name: String,
    /// Version of the main distribution.
    pub version: Option<String>,
    /// A GPU-capable build is installed (a CUDA/ROCm plugin, onnxruntime-gpu, ...).
    pub gpu_build: bool,
    /// CUDA major version the GPU packages are built for, when the names say.
    pub cuda_major: Option<u32>,
    /// The distributions that make up the stack.
    pub packages: Vec<Dist>,
    /// Distributions the GPU build needs that are not installed.
    pub missing: Vec<String>,
    /// A known pitfall seen in the files, in words.
    pub note: Option<String>,
    /// The import path its main distribution was found in.
    pub found_in: Option<ImportPath>,
}

/// The editor's Python interpreter setting.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct EditorInterpreter {
    /// The settings file it came from.
    pub settings_file: String,
    /// "python.defaultInterpreterPath" or "python.pythonPath".
    pub key: String,
    /// The value as written.
    pub value: String,
    /// With ${workspaceFolder} and friends resolved, as an absolute path.
    pub resolved: Option<String>,
    /// The interpreter (or folder) it names exists.
    pub exists: bool,
    /// Name of the environment it points into.
    pub environment: Option<String>,
}

/// The answer of one environment's own interpreter to the embedded probe script.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct LiveProbe {
    /// ok, failed (the interpreter ran but the script did not answer), timed_out, crashed
    /// (killed by a signal), not_run (no interpreter to run).
    pub status: String,
    /// Why, for anything but ok: the exit or signal, and the last lines of stderr.
    pub error: Option<String>,
    pub duration_ms: f64,
    /// The step the probe script had reached when it stopped: start, torch.import,
    /// torch.cuda, torch.tensor:N, llama_cpp.import, llama_cpp.system_info, llama_cpp.devices,
    /// done. Tells a crash in `import llama_cpp` from one in CUDA initialisation.
    pub stage: Option<String>,
    /// The interpreter options used: ["-I", "-B"] (isolated), or ["-E", "-s", "-B"] where the
    /// interpreter may predate -I.
    pub interpreter_flags: Vec<String>,
    /// sys.version_info as "3.12.3".
    pub python_version: Option<String>,
    /// sys.implementation.name: "cpython", "pypy".
    pub implementation: Option<String>,
    /// sys.executable as the interpreter reported it.
    pub executable: Option<String>,
    /// sys.path entries that are folders of packages (site-packages and what .pth files, the
    /// user site and the base add), in order; the standard library's folders are left out.
    pub import_paths: Vec<String>,
    pub torch: LiveTorch,
    pub llama_cpp: LiveLlama,
    /// Set when this answer was not asked in this run but taken from the live-result cache
    /// (the quick profile does that; docs/pre-commit.md): when it was stored and how old it is.
    /// Null for an answer of this run.
    pub cached: Option<LiveCached>,
}

/// Where a cached live answer came from.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct LiveCached {
    /// When a standard or full run stored it (Unix seconds).
    pub stored_at_unix: u64,
    /// Its age at this run, in seconds.
    pub age_s: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct LiveTorch {
    /// torch was tried: it is installed (statically seen or importable).
    pub attempted: bool,
    pub import_ok: bool,
    /// The exception's last line when import failed ("OSError: libcudnn.so.9: cannot open ...").
    pub import_error: Option<String>,
    /// How long `import torch` took, in milliseconds.
    pub import_ms: Option<f64>,
    /// The sys.path folder torch was imported from (the folder holding the torch package).
    pub location: Option<String>,
    pub version: Option<String>,
    /// torch.version.cuda
    pub cuda: Option<String>,
    pub cuda_available: Option<bool>,
    /// The warning or error torch gave while checking CUDA (e.g. "driver too old (found 12020)").
    pub cuda_error: Option<String>,
    pub device_count: u32,
    pub devices: Vec<LiveTorchDevice>,
    /// torch.cuda.get_arch_list(): ["sm_75", "sm_80", ...]
    pub arch_list: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct LiveTorchDevice {
    pub index: u32,
    pub name: String,
    /// "9.0"
    pub capability: String,
    /// A small tensor operation ran on this device and gave the right answer.
    pub tensor_ok: bool,
    pub tensor_error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct LiveLlama {
    pub attempted: bool,
    pub import_ok: bool,
    pub import_error: Option<String>,
    /// How long `import llama_cpp` took, in milliseconds.
    pub import_ms: Option<f64>,
    /// The sys.path folder llama_cpp was imported from (the folder holding the package).
    pub location: Option<String>,
    pub version: Option<String>,
    /// llama_supports_gpu_offload()
    pub supports_gpu_offload: Option<bool>,
    /// llama_print_system_info() verbatim.
    pub system_info: Option<String>,
    /// Backends named in system_info ("CUDA", "CPU", "Metal", "Vulkan").
    pub backends: Vec<String>,
    /// Flags of system_info by backend and name: {"CUDA": {"ARCHS": "900", "USE_GRAPHS": "1"}}.
    pub flags: BTreeMap<String, BTreeMap<String, String>>,
    /// CUDA architectures compiled in, from the CUDA backend's ARCHS flag ("900" -> "9.0").
    pub cuda_archs: Vec<String>,
    /// The ggml device registry: "CUDA0 (gpu): NVIDIA H100 80GB HBM3", "CPU (cpu): AMD EPYC".
    /// Empty for builds from before the registry (2024).
    pub devices: Vec<String>,
    /// GPU devices among them; null when the registry could not be read. A CUDA backend with
    /// 0 GPU devices is a CUDA build that found no usable GPU.
    pub gpu_device_count: Option<u32>,
    /// Calls after a successful import that failed (a function missing in an old build, ...).
    pub errors: Vec<String>,
}
