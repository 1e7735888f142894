//! The per-environment view bound as `venv` in rules of scope "venv", and the project-wide
//! summary bound as `derived.python`: is torch usable on the GPU here, is llama-cpp-python,
//! which environment is complete, which one the shell and the editor run, and the matrix of
//! all of them.
//!
//! Everything a Python rule needs to compare is computed here from the environment's facts
//! (static and live), the driver, the GPUs and the wheel tables, so that rule conditions stay
//! one line and every judgement is tested in Rust. The live probe's answer, when there is one,
//! beats what the files say: it is what the interpreter actually did.

use super::advice::{advise, VenvAdvice};
use super::Derived;
use crate::facts::llama::LoadRun;
use crate::facts::python::{LiveProbe, PythonEnv};
use crate::facts::Facts;
use crate::knowledge::wheels::{self, Variant};
use crate::knowledge::{min_driver_for_cuda_major, version, Os, Version};
use schemars::JsonSchema;
use serde::Serialize;

/// One environment, bound as `venv`: every fact of `python.environments[i]` plus what follows.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct VenvView {
    #[serde(flatten)]
    pub env: PythonEnv,
    /// Python as "major.minor" ("3.13"): the live interpreter's answer, else the files'.
    pub python_minor: Option<String>,
    /// Who runs this environment without being told which: "shell" (VIRTUAL_ENV or
    /// CONDA_PREFIX), "editor" (the editor's interpreter setting), "path" (first on PATH).
    pub used_by: Vec<String>,

    /// torch for the matrix: "2.5.1+cu121", "CPU", "ROCm", "XPU", "—" (not installed).
    pub torch_build: String,
    /// "CUDA 12.1", "CPU", "ROCm 6.2", "XPU"; null when torch is not installed or unreadable.
    pub torch_flavor: Option<String>,
    /// torch is installed and has no CUDA support (a CPU, ROCm or XPU build).
    pub torch_cpu_only: bool,
    /// Lowest driver that runs torch's CUDA major on this OS (minor-version compatibility).
    pub torch_min_driver: Option<String>,
    /// torch is a CUDA build for a CUDA major this driver cannot run.
    pub torch_driver_too_old: bool,
    /// The architectures torch carries: the live get_arch_list(), else the wheel table's list.
    pub torch_arch_list: Vec<String>,
    /// "live" or "knowledge"; null when unknown.
    pub torch_arch_source: Option<String>,
    /// Architectures of this machine's GPUs that torch has no code for ("sm_120").
    pub torch_missing_archs: Vec<String>,
    /// Those GPUs, named: "GPU 0 NVIDIA GeForce RTX 5090 (compute capability 12.0)".
    pub torch_missing_gpus: Vec<String>,
    /// The live probe's `import torch` failure, last line.
    pub torch_import_error: Option<String>,
    /// torch imported and its build, the driver and the GPU look right, yet
    /// torch.cuda.is_available() was false or a tensor operation on a GPU failed.
    pub torch_cuda_unavailable: bool,
    /// What torch said about CUDA (the warning, or a GPU's tensor error).
    pub torch_cuda_error: Option<String>,
    /// The toolkit torch's extension builder would use (CUDA_HOME, else CUDA_PATH), in words:
    /// "CUDA_PATH=C:\...\v13.0 (CUDA 13.0)".
    pub torch_build_toolkit: Option<String>,
    /// That toolkit's major version differs from torch's CUDA major.
    pub torch_toolkit_major_mismatch: bool,
    /// Why this torch release has no CUDA wheel for this Python here, when it has none.
    pub torch_no_cuda_wheels: Option<String>,
    /// torch runs on the GPU: null when torch is not installed or it cannot be told.
    pub gpu_ready_torch: Option<bool>,

    /// llama-cpp-python's GPU backends for the matrix: "CUDA", "Vulkan", "none", "—".
    pub llama_gpu_backend: String,
    /// llama-cpp-python is installed without any GPU backend.
    pub llama_cpu_only: bool,
    /// The live probe's `import llama_cpp` failure, last line.
    pub llama_import_error: Option<String>,
    /// CUDA libraries the CUDA backend needs that the dynamic loader does not find (Linux).
    pub llama_missing_libs: Vec<String>,
    /// Why the CUDA backend, which is present, does not work: the import error, the missing
    /// libraries, a driver too old for its CUDA major, or no GPU offload although it loaded.
    pub llama_cuda_problem: Option<String>,
    /// Why this llama-cpp-python release has no CUDA wheel for this Python here.
    pub llama_no_cuda_wheels: Option<String>,
    /// llama-cpp-python offloads to the GPU: null when not installed or it cannot be told.
    pub gpu_ready_llama: Option<bool>,
    /// The packages held here that have no CUDA wheel for this Python (both texts above).
    pub no_cuda_wheels: Vec<String>,

    /// Every GPU package the project's environments use (torch, llama-cpp-python) is
    /// installed here and runs on the GPU.
    pub complete: bool,
    /// "ready" (complete), "partial" (what is installed works, something the project uses is
    /// missing), "broken" (something installed does not run on the GPU, or the interpreter
    /// cannot start or cannot see the environment's packages), "empty" (no GPU
    /// package), "unknown" (it cannot be told, e.g. without driver facts), "missing" (the
    /// folder does not exist: a setting names a deleted environment).
    pub verdict: String,
    pub advice: VenvAdvice,
    /// Where the environment's own interpreter and its files disagree, in words; the view's
    /// `torch` and `llama_cpp` are what the interpreter imported (the facts keep both).
    pub live_over_files: Vec<String>,
}

/// One row of the environment matrix (what the human report prints per environment).
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
pub struct MatrixRow {
    /// The environment's name: ".venv".
    pub env: String,
    /// "3.13", or "?" when unknown.
    pub python: String,
    /// "2.5.1+cu121", "CPU", "—".
    pub torch: String,
    /// Whether torch runs on the GPU: "yes", "no", "unknown", "—" (no torch).
    pub cuda_usable: String,
    /// llama-cpp-python's GPU backend: "CUDA", "none", "—" (not installed).
    pub llama: String,
    /// ready, partial, broken, empty or unknown (see [`VenvView::verdict`]).
    pub verdict: String,
    /// Who runs it: "shell", "editor", "path".
    pub used_by: Vec<String>,
}

/// What a fix completing one environment needs: the values the `python-envs-none-complete`
/// rule puts into its commands. A package's values are null when it needs no change.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Candidate {
    pub env: String,
    /// Its interpreter.
    pub python: String,
    pub torch_spec: Option<String>,
    pub torch_index: Option<String>,
    pub llama_wheel_spec: Option<String>,
    pub llama_wheel_index: Option<String>,
    pub llama_source_spec: Option<String>,
    /// What it lacks, in words: "torch with CUDA", "llama-cpp-python with CUDA".
    pub lacks: Vec<String>,
}

/// The project's environments as a whole, bound as `derived.python`.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct PythonDerived {
    /// The machine has an NVIDIA GPU: NVML counts one, or one is on the PCI bus.
    pub nvidia_gpu: bool,
    /// Environments that exist (one a setting names but that was deleted does not count).
    pub env_count: u32,
    /// Some environment has torch / llama-cpp-python: the project uses it.
    pub needs_torch: bool,
    pub needs_llama: bool,
    /// Those packages in words: "torch and llama-cpp-python", "torch", "llama-cpp-python".
    pub needs_text: String,
    /// Names of the complete environments.
    pub complete: Vec<String>,
    /// The complete environment to use (the first one), its interpreter and activation scripts.
    pub gpu_ready_env: Option<String>,
    pub gpu_ready_python: Option<String>,
    pub gpu_ready_activate: Option<String>,
    pub gpu_ready_activate_ps1: Option<String>,
    /// The environments the shell (VIRTUAL_ENV/CONDA_PREFIX), the editor and PATH select.
    pub active: Option<String>,
    pub editor: Option<String>,
    pub path_first: Option<String>,
    /// An environment the shell, the editor or PATH selects that is not complete, while
    /// `gpu_ready_env` is.
    pub used_env_not_ready: Option<String>,
    /// Who selects it: "the shell (VIRTUAL_ENV)" (VIRTUAL_ENV or CONDA_PREFIX), "the editor
    /// (python.defaultInterpreterPath)", "`python` on PATH".
    pub used_not_ready_by: Vec<String>,
    /// On a machine with an NVIDIA GPU, two or more environments and none complete.
    pub several_none_complete: bool,
    /// The environment to complete when none is, and what it needs.
    pub candidate: Option<Candidate>,
    pub matrix: Vec<MatrixRow>,
    /// The matrix as one line per environment, for evidence.
    pub matrix_lines: Vec<String>,
    /// Every environment's disagreements between its interpreter and its files, in words
    /// ([`VenvView::live_over_files`]), for evidence.
    pub live_over_files: Vec<String>,
    /// GGML_CUDA_FORCE_MMQ / GGML_CUDA_FORCE_CUBLAS as set in the environment: "NAME=value".
    pub ggml_build_vars: Vec<String>,
    /// Environments whose llama-cpp-python loaded the offload proof's test model (the full
    /// profile), and those of them that put every one of its layers on a GPU.
    pub llama_proved: Vec<String>,
    pub llama_proved_on_gpu: Vec<String>,
}

/// llama.cpp build options people set as if they were run-time variables.
const GGML_BUILD_VARIABLES: &[&str] = &["GGML_CUDA_FORCE_MMQ", "GGML_CUDA_FORCE_CUBLAS"];

// ---------------------------------------------------------------------------------------------
// Context shared by every environment

/// A GPU as the Python checks need it.
#[derive(Debug, Clone)]
pub(crate) struct GpuRef {
    pub index: u32,
    pub name: String,
    pub cc: (u32, u32),
}

/// The machine around the environments.
pub(crate) struct Machine<'a> {
    pub facts: &'a Facts,
    pub derived: &'a Derived,
    pub os: Os,
    pub nvidia_gpu: bool,
    pub gpus: Vec<GpuRef>,
}

impl<'a> Machine<'a> {
    pub fn new(facts: &'a Facts, derived: &'a Derived) -> Machine<'a> {
        Machine {
            facts,
            derived,
            os: Os::from_facts(&facts.host.os),
            nvidia_gpu: facts.driver.gpu_count > 0
                || !facts.driver.gpus.is_empty()
                || !facts.host.pci_gpus.is_empty(),
            gpus: gpus(facts),
        }
    }

    /// Whether the driver runs programs built with CUDA `major` (minor-version compatibility:
    /// its highest CUDA major is at least `major`, and it meets that major's minimum). None
    /// when the driver is unknown.
    pub fn driver_runs_major(&self, major: u32) -> Option<bool> {
        let max_major = self
            .derived
            .driver_max_cuda
            .as_deref()
            .and_then(Version::parse)
            .map(|v| v.major());
        if max_major.is_some_and(|m| m < major) {
            return Some(false);
        }
        let min = min_driver_for_cuda_major(major, self.os);
        match (self.derived.driver_version.as_deref(), min) {
            (Some(driver), Some(min)) => version::at_least(driver, min),
            _ => max_major.map(|m| m >= major),
        }
    }

    /// "driver 531.14 (CUDA 12.1)", "driver 531.14", or "an unknown driver".
    pub fn driver_words(&self) -> String {
        match (&self.derived.driver_version, &self.derived.driver_max_cuda) {
            (Some(v), Some(c)) => format!("driver {v} (CUDA {c})"),
            (Some(v), None) => format!("driver {v}"),
            (None, Some(c)) => format!("a driver for CUDA {c}"),
            (None, None) => "an unknown driver".to_string(),
        }
    }

    pub fn os_words(&self) -> &'static str {
        match self.os {
            Os::Linux => "Linux",
            Os::Windows => "Windows",
        }
    }
}

/// NVML's GPUs, else the CUDA driver API's devices.
fn gpus(facts: &Facts) -> Vec<GpuRef> {
    if !facts.driver.gpus.is_empty() {
        return facts
            .driver
            .gpus
            .iter()
            .map(|g| GpuRef {
                index: g.index,
                name: g.name.clone(),
                cc: (g.cc_major, g.cc_minor),
            })
            .collect();
    }
    facts
        .cuda
        .devices
        .iter()
        .filter_map(|d| {
            Some(GpuRef {
                index: d.ordinal,
                name: d.name.clone(),
                cc: parse_cc(&d.compute_capability)?,
            })
        })
        .collect()
}

/// "8.9" -> (8, 9).
fn parse_cc(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.trim().split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The live probe's answer, when the interpreter gave one.
pub(crate) fn live(env: &PythonEnv) -> Option<&LiveProbe> {
    env.live.as_ref().filter(|l| l.status == "ok")
}

/// Python "major.minor" of an environment.
pub(crate) fn python_minor(env: &PythonEnv) -> Option<String> {
    let live = live(env).and_then(|l| l.python_version.as_deref());
    [live, env.python_version.as_deref()]
        .into_iter()
        .flatten()
        .find_map(|v| Version::parse(v.split(['+', ' ']).next().unwrap_or(v))?.short())
}

// ---------------------------------------------------------------------------------------------
// Views

/// The view of every environment, in `python.environments` order.
pub fn venv_views(facts: &Facts, derived: &Derived) -> Vec<VenvView> {
    let machine = Machine::new(facts, derived);
    let mut views: Vec<VenvView> = facts
        .python
        .environments
        .iter()
        .map(|env| view(&machine, env))
        .collect();
    let needs_torch = views.iter().any(|v| v.env.torch.installed);
    let needs_llama = views.iter().any(|v| v.env.llama_cpp.installed);
    for v in &mut views {
        v.complete = machine.nvidia_gpu
            && (needs_torch || needs_llama)
            && (!needs_torch || v.gpu_ready_torch == Some(true))
            && (!needs_llama || v.gpu_ready_llama == Some(true));
        v.verdict = verdict(v).to_string();
    }
    views
}

fn view(m: &Machine, env: &PythonEnv) -> VenvView {
    let (env, live_over_files) = believe_live(env);
    let mut v = VenvView {
        python_minor: python_minor(&env),
        used_by: used_by(&env),
        env,
        live_over_files,
        ..VenvView::default()
    };
    torch(m, &mut v);
    llama(m, &mut v);
    v.no_cuda_wheels = [&v.torch_no_cuda_wheels, &v.llama_no_cuda_wheels]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    v.advice = advise(m, &v);
    v
}

/// One truth per fact: where the environment's own interpreter imported a package, what it
/// imported is the package of this environment, whatever its site-packages files suggest (a
/// `.pth` line, the base interpreter's site-packages, an editable install, or another copy
/// first on sys.path). The returned environment carries the live package in place of the
/// files' reading; each disagreement is named so that the evidence can say so.
fn believe_live(env: &PythonEnv) -> (PythonEnv, Vec<String>) {
    let mut env = env.clone();
    let mut notes = Vec::new();
    let Some(l) = live(&env).cloned() else {
        return (env, notes);
    };
    if let Some(note) = live_torch(&mut env, &l.torch) {
        notes.push(note);
    }
    if let Some(note) = live_llama(&mut env, &l.llama_cpp) {
        notes.push(note);
    }
    (env, notes)
}

/// What the files and the interpreter say of a package, when they disagree: the files show
/// none, or another version, than the one imported.
fn disagreement(
    env: &str,
    package: &str,
    installed: bool,
    files: Option<&str>,
    imported: Option<&str>,
) -> Option<String> {
    if installed && (imported.is_none() || files == imported) {
        return None;
    }
    let files = match (installed, files) {
        (false, _) => "none",
        (true, Some(v)) => v,
        (true, None) => "an unreadable version",
    };
    Some(format!(
        "{env}: its files show {package} {files}, its interpreter imported {package} {}: the interpreter's answer counts",
        imported.unwrap_or("(version unknown)")
    ))
}

/// torch as the interpreter imported it, in place of the files' reading, when they disagree.
fn live_torch(env: &mut PythonEnv, t: &crate::facts::python::LiveTorch) -> Option<String> {
    if !t.import_ok {
        return None;
    }
    let files = &env.torch;
    let note = disagreement(
        &env.name,
        "torch",
        files.installed,
        files.version.as_deref(),
        t.version.as_deref(),
    )?;
    let cuda = t.cuda.clone();
    let short = cuda
        .as_deref()
        .and_then(Version::parse)
        .and_then(|v| v.short());
    env.torch = crate::facts::python::TorchFacts {
        installed: true,
        dist_version: t
            .version
            .as_deref()
            .map(|v| v.split('+').next().unwrap_or(v).to_string()),
        local_tag: t
            .version
            .as_deref()
            .and_then(|v| v.split_once('+'))
            .map(|(_, tag)| tag.to_string()),
        version: t.version.clone(),
        cuda_major: cuda.as_deref().and_then(Version::parse).map(|v| v.major()),
        cuda_version: short,
        cuda_build: cuda.is_some(),
        cuda,
        ..Default::default()
    };
    Some(note)
}

/// llama-cpp-python as the interpreter imported it (its backends from llama_print_system_info),
/// in place of the files' reading, when they disagree.
fn live_llama(env: &mut PythonEnv, l: &crate::facts::python::LiveLlama) -> Option<String> {
    if !l.import_ok {
        return None;
    }
    let files = &env.llama_cpp;
    let note = disagreement(
        &env.name,
        "llama-cpp-python",
        files.installed,
        files.version.as_deref(),
        l.version.as_deref(),
    )?;
    let backends: Vec<String> = l.backends.iter().map(|b| b.to_ascii_lowercase()).collect();
    let gpu_backends: Vec<String> = backends
        .iter()
        .filter(|b| LIVE_GPU_BACKENDS.contains(&b.to_ascii_uppercase().as_str()))
        .cloned()
        .collect();
    env.llama_cpp = crate::facts::python::LlamaCppFacts {
        installed: true,
        version: l.version.clone(),
        version_source: Some("live".to_string()),
        cuda_backend: gpu_backends.iter().any(|b| b == "cuda"),
        backends,
        gpu_backends,
        ..Default::default()
    };
    Some(note)
}

fn used_by(env: &PythonEnv) -> Vec<String> {
    [
        (env.active, "shell"),
        (env.editor, "editor"),
        (env.path_first, "path"),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, who)| who.to_string())
    .collect()
}

fn verdict(v: &VenvView) -> &'static str {
    if !v.env.exists {
        return "missing";
    }
    if !runs_its_packages(&v.env) {
        return "broken";
    }
    let installed = [
        (v.env.torch.installed, v.gpu_ready_torch),
        (v.env.llama_cpp.installed, v.gpu_ready_llama),
    ];
    let held: Vec<Option<bool>> = installed
        .iter()
        .filter(|(i, _)| *i)
        .map(|(_, r)| *r)
        .collect();
    if held.is_empty() {
        "empty"
    } else if held.contains(&Some(false)) {
        "broken"
    } else if v.complete {
        "ready"
    } else if held.contains(&None) {
        "unknown"
    } else {
        "partial"
    }
}

// ---------------------------------------------------------------------------------------------
// torch

fn torch(m: &Machine, v: &mut VenvView) {
    let t = &v.env.torch;
    if !t.installed {
        v.torch_build = "—".to_string();
        return;
    }
    let cuda_major = t.cuda_major.or_else(|| {
        t.cuda
            .as_deref()
            .and_then(Version::parse)
            .map(|v| v.major())
    });
    v.torch_flavor = torch_flavor(&v.env);
    v.torch_build = match (&t.version, &t.cuda) {
        (Some(version), Some(_)) => version.clone(),
        (None, Some(cuda)) => format!("CUDA {cuda}"),
        _ => match &v.torch_flavor {
            Some(f) => f.split(' ').next().unwrap_or("CPU").to_string(),
            None => "?".to_string(),
        },
    };
    v.torch_cpu_only = t.version.is_some() && t.cuda.is_none();
    if let Some(major) = cuda_major {
        v.torch_min_driver = min_driver_for_cuda_major(major, m.os).map(str::to_string);
        v.torch_driver_too_old = m.driver_runs_major(major) == Some(false);
    }
    torch_arch(m, v);
    torch_live(m, v);
    torch_toolkit(m, v, cuda_major);
    v.gpu_ready_torch = gpu_ready_torch(m, v);
    v.torch_no_cuda_wheels = torch_no_cuda_wheels(m, v);
}

fn torch_flavor(env: &PythonEnv) -> Option<String> {
    let t = &env.torch;
    if let Some(cuda) = &t.cuda {
        return Some(format!("CUDA {cuda}"));
    }
    if let Some(hip) = &t.hip {
        return Some(format!("ROCm {hip}"));
    }
    if t.xpu.is_some() || t.local_tag.as_deref() == Some("xpu") {
        return Some("XPU".to_string());
    }
    t.version.as_ref().map(|_| "CPU".to_string())
}

/// The CUDA variant of the installed build: its local tag, else torch.version.cuda.
fn torch_variant(env: &PythonEnv) -> Option<Variant> {
    let t = &env.torch;
    t.local_tag
        .as_deref()
        .and_then(Variant::parse)
        .or_else(|| t.cuda.as_deref().and_then(Variant::from_cuda))
}

fn torch_arch(m: &Machine, v: &mut VenvView) {
    if v.env.torch.cuda.is_none() {
        return;
    }
    let variant = torch_variant(&v.env);
    let live_list = live(&v.env)
        .map(|l| &l.torch)
        .filter(|t| t.import_ok && !t.arch_list.is_empty())
        .map(|t| t.arch_list.clone());
    let table_list = || {
        let series = wheels::torch_series(v.env.torch.version.as_deref()?)?;
        wheels::torch_arch_list(&series, &variant?.name(), m.os).map(<[String]>::to_vec)
    };
    let (list, source) = match live_list {
        Some(l) => (l, "live"),
        None => match table_list() {
            Some(l) => (l, "knowledge"),
            None => return,
        },
    };
    for gpu in &m.gpus {
        if !wheels::arch_covers(&list, gpu.cc) {
            let sm = wheels::sm_name(gpu.cc);
            if !v.torch_missing_archs.contains(&sm) {
                v.torch_missing_archs.push(sm);
            }
            v.torch_missing_gpus.push(format!(
                "GPU {} {} (compute capability {}.{})",
                gpu.index, gpu.name, gpu.cc.0, gpu.cc.1
            ));
        }
    }
    v.torch_arch_list = list;
    v.torch_arch_source = Some(source.to_string());
}

fn torch_live(m: &Machine, v: &mut VenvView) {
    let Some(t) = live(&v.env).map(|l| &l.torch).filter(|t| t.attempted) else {
        return;
    };
    if !t.import_ok {
        v.torch_import_error = Some(
            t.import_error
                .clone()
                .unwrap_or_else(|| "import torch failed without a message".to_string()),
        );
        return;
    }
    let tensor_error = t
        .devices
        .iter()
        .find(|d| !d.tensor_ok)
        .map(|d| match &d.tensor_error {
            Some(e) => format!("GPU {}: {e}", d.index),
            None => format!("GPU {}: a tensor operation gave a wrong result", d.index),
        });
    v.torch_cuda_error = t.cuda_error.clone().or_else(|| tensor_error.clone());
    let is_cuda_build = v.env.torch.cuda.is_some() || t.cuda.is_some();
    let failed = t.cuda_available == Some(false) || tensor_error.is_some();
    let vis = &m.derived.visibility;
    let cuda_init_failed = m
        .facts
        .cuda
        .init_result
        .as_deref()
        .is_some_and(|r| r != "CUDA_SUCCESS");
    // Only when nothing else explains it: those causes have their own findings.
    v.torch_cuda_unavailable = failed
        && is_cuda_build
        && m.nvidia_gpu
        && !v.torch_driver_too_old
        && v.torch_missing_archs.is_empty()
        && !vis.cuda_hides_all
        && !vis.nvidia_hides_all
        && !cuda_init_failed;
}

/// The toolkit torch.utils.cpp_extension picks (CUDA_HOME, then CUDA_PATH) against torch's
/// CUDA major: a different major makes every extension build fail.
fn torch_toolkit(m: &Machine, v: &mut VenvView, cuda_major: Option<u32>) {
    let (Some(major), true) = (cuda_major, v.env.torch.cuda.is_some()) else {
        return;
    };
    let env = &m.facts.host.env;
    let tk = &m.facts.toolkits;
    let selectors = [
        ("CUDA_HOME", &env.cuda_home, &tk.cuda_home_version),
        ("CUDA_PATH", &env.cuda_path, &tk.cuda_path_version),
    ];
    let Some((name, Some(path), version)) = selectors.into_iter().find(|(_, p, _)| p.is_some())
    else {
        return;
    };
    let Some(version) = version.as_deref().and_then(Version::parse) else {
        return;
    };
    let short = version.short().unwrap_or_else(|| version.to_string());
    v.torch_build_toolkit = Some(format!("{name}={path} (CUDA {short})"));
    v.torch_toolkit_major_mismatch = version.major() != major;
}

fn gpu_ready_torch(m: &Machine, v: &VenvView) -> Option<bool> {
    if let Some(t) = live(&v.env).map(|l| &l.torch).filter(|t| t.attempted) {
        if !t.import_ok {
            return Some(false);
        }
        match t.cuda_available {
            Some(true) => return Some(t.devices.iter().all(|d| d.tensor_ok)),
            Some(false) => return Some(false),
            None => {}
        }
    }
    let major = v.env.torch.cuda_major.or_else(|| {
        v.env
            .torch
            .cuda
            .as_deref()
            .and_then(Version::parse)
            .map(|v| v.major())
    });
    let major = match major {
        Some(major) if v.env.torch.cuda.is_some() => major,
        _ => return v.env.torch.version.as_ref().map(|_| false),
    };
    if !m.nvidia_gpu || v.torch_driver_too_old || !v.torch_missing_archs.is_empty() {
        return Some(false);
    }
    m.driver_runs_major(major)
}

fn torch_no_cuda_wheels(m: &Machine, v: &VenvView) -> Option<String> {
    if v.gpu_ready_torch == Some(true) {
        return None;
    }
    let version = v.env.torch.version.as_deref()?;
    let py = v.python_minor.as_deref()?;
    let release = wheels::torch_release(&wheels::torch_series(version)?)?;
    if release.supports_python(py, m.os) {
        return None;
    }
    let first = match wheels::first_torch_for_python(py, m.os) {
        Some(r) => format!("the first release with them is torch {}", r.series),
        None => "no release gpu-doctor knows has them".to_string(),
    };
    Some(format!(
        "torch {} has CUDA wheels for Python {} on {} only; {first}",
        release.series,
        release.python_range(m.os),
        m.os_words()
    ))
}

// ---------------------------------------------------------------------------------------------
// llama-cpp-python

/// GPU backends named by llama_print_system_info() ("CUDA", "Vulkan", ...).
const LIVE_GPU_BACKENDS: &[&str] = &[
    "CUDA", "VULKAN", "METAL", "HIP", "ROCM", "SYCL", "MUSA", "CANN", "KOMPUTE", "OPENCL",
];

/// The static picture of the backends: LLAMA_CPP_LIB_PATH replaces every environment's
/// llama_cpp/lib, so its files count instead when it is set and exists.
struct LlamaLibs {
    gpu_backends: Vec<String>,
    cuda: bool,
    overridden: bool,
}

fn llama_libs(m: &Machine, env: &PythonEnv) -> LlamaLibs {
    if let Some(o) = m
        .facts
        .python
        .llama_cpp_lib_override
        .as_ref()
        .filter(|o| o.exists)
    {
        return LlamaLibs {
            gpu_backends: o.gpu_backends.clone(),
            cuda: o.cuda_backend,
            overridden: true,
        };
    }
    let l = &env.llama_cpp;
    LlamaLibs {
        gpu_backends: l.gpu_backends.clone(),
        cuda: l.cuda_backend || l.cuda_linked_into_core,
        overridden: false,
    }
}

/// "cuda" -> "CUDA", "vulkan" -> "Vulkan".
fn backend_name(name: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "cuda" => "CUDA".into(),
        "vulkan" => "Vulkan".into(),
        "metal" => "Metal".into(),
        "hip" => "HIP".into(),
        "sycl" => "SYCL".into(),
        "musa" => "MUSA".into(),
        "cann" => "CANN".into(),
        "opencl" => "OpenCL".into(),
        "kompute" => "Kompute".into(),
        other => other.to_string(),
    }
}

fn llama(m: &Machine, v: &mut VenvView) {
    if !v.env.llama_cpp.installed {
        v.llama_gpu_backend = "—".to_string();
        return;
    }
    let libs = llama_libs(m, &v.env);
    let live = live(&v.env).map(|l| &l.llama_cpp).filter(|l| l.attempted);
    let live_ok = live.filter(|l| l.import_ok);
    if let Some(l) = live.filter(|l| !l.import_ok) {
        v.llama_import_error = Some(
            l.import_error
                .clone()
                .unwrap_or_else(|| "import llama_cpp failed without a message".to_string()),
        );
    }
    let live_gpu: Vec<String> = live_ok
        .map(|l| {
            l.backends
                .iter()
                .filter(|b| LIVE_GPU_BACKENDS.contains(&b.to_ascii_uppercase().as_str()))
                .map(|b| backend_name(b))
                .collect()
        })
        .unwrap_or_default();
    let offload = live_ok.and_then(|l| l.supports_gpu_offload);
    let static_gpu: Vec<String> = libs.gpu_backends.iter().map(|b| backend_name(b)).collect();
    let mut shown = if live_gpu.is_empty() {
        static_gpu
    } else {
        live_gpu
    };
    if shown.is_empty() && libs.cuda {
        shown.push("CUDA".to_string()); // CUDA linked into libllama (before 0.3.2)
    }
    v.llama_gpu_backend = if shown.is_empty() {
        "none".to_string()
    } else {
        shown.join(", ")
    };
    v.llama_cpu_only = libs.gpu_backends.is_empty() && !libs.cuda && offload != Some(true);
    if libs.cuda && !libs.overridden {
        v.llama_missing_libs = missing_cuda_libs(m, &v.env);
    }
    v.llama_cuda_problem = llama_cuda_problem(m, v, libs.cuda, offload);
    v.gpu_ready_llama = gpu_ready_llama(m, v, &libs, offload);
    v.llama_no_cuda_wheels = llama_no_cuda_wheels(m, v);
}

/// The CUDA runtime libraries the CUDA backend needs (DT_NEEDED) that are neither beside it
/// nor found by the dynamic loader. Only sonames the toolkit probe asked the loader about are
/// judged; on Windows the loader view is empty and nothing is judged.
fn missing_cuda_libs(m: &Machine, env: &PythonEnv) -> Vec<String> {
    let loader = &m.facts.toolkits.loader;
    env.llama_cpp
        .cuda_needed
        .iter()
        .filter(|n| n.starts_with("libcudart.so") || n.starts_with("libcublas"))
        .filter(|n| !env.llama_cpp.lib_files.contains(n))
        .filter(|n| !loader.resolved.contains_key(*n) && loader.missing.contains(n))
        .cloned()
        .collect()
}

fn llama_cuda_problem(
    m: &Machine,
    v: &VenvView,
    cuda: bool,
    offload: Option<bool>,
) -> Option<String> {
    if !cuda {
        return None;
    }
    if let Some(e) = &v.llama_import_error {
        return Some(format!("import llama_cpp fails: {e}"));
    }
    if offload == Some(true) {
        return None; // the live interpreter offloads: whatever the files suggest, it works
    }
    if !v.llama_missing_libs.is_empty() {
        return Some(format!(
            "it needs {}, which the dynamic loader does not find",
            v.llama_missing_libs.join(", ")
        ));
    }
    let major = v.env.llama_cpp.cuda_runtime_major;
    if let Some(major) = major.filter(|&mj| m.driver_runs_major(mj) == Some(false)) {
        let min = min_driver_for_cuda_major(major, m.os).unwrap_or("a newer driver");
        return Some(format!(
            "it is built with CUDA {major}, which needs driver {min} or newer; this machine has {}",
            m.driver_words()
        ));
    }
    if offload == Some(false) {
        return Some(
            "the CUDA backend is installed, but llama_supports_gpu_offload() returned false: \
             it did not load or found no GPU"
                .to_string(),
        );
    }
    None
}

fn gpu_ready_llama(
    m: &Machine,
    v: &VenvView,
    libs: &LlamaLibs,
    offload: Option<bool>,
) -> Option<bool> {
    if v.llama_cpu_only || v.llama_cuda_problem.is_some() || v.llama_import_error.is_some() {
        return Some(false);
    }
    if let Some(offload) = offload {
        return Some(offload);
    }
    if !m.nvidia_gpu {
        return Some(false);
    }
    if !libs.cuda {
        return Some(true); // Vulkan and friends run on an NVIDIA GPU through its driver
    }
    match v.env.llama_cpp.cuda_runtime_major {
        Some(major) => m.driver_runs_major(major),
        None => m.derived.driver_version.as_ref().map(|_| true),
    }
}

fn llama_no_cuda_wheels(m: &Machine, v: &VenvView) -> Option<String> {
    if v.gpu_ready_llama == Some(true) {
        return None;
    }
    let version = v.env.llama_cpp.version.as_deref()?;
    let py = v.python_minor.as_deref()?;
    if wheels::llama_has_wheels(version, py, m.os) {
        return None;
    }
    // A release newer than the table may well have wheels: say nothing rather than guess.
    let newest = wheels::llama_rows_newest_first()
        .first()
        .map(|r| r.last.clone())?;
    if Version::parse(version)? > Version::parse(&newest)? {
        return None;
    }
    let os = m.os_words();
    let why = match wheels::llama_row_for(version) {
        None => format!("llama-cpp-python {version} has no prebuilt CUDA wheels at all"),
        Some(r) if r.variants(m.os).is_empty() => format!(
            "llama-cpp-python {version} has prebuilt CUDA wheels for Linux only (Python {})",
            r.python_range()
        ),
        Some(r) => format!(
            "llama-cpp-python {version} has prebuilt CUDA wheels for Python {} only",
            r.python_range()
        ),
    };
    let first = match wheels::first_llama_for_python(py, m.os) {
        Some(f) => format!("the first release with CUDA wheels for Python {py} on {os} is {f}"),
        None => format!("no release has CUDA wheels for Python {py} on {os}"),
    };
    Some(format!("{why}; {first}"))
}

// ---------------------------------------------------------------------------------------------
// The project as a whole

/// The matrix row of one view.
pub fn matrix_row(v: &VenvView) -> MatrixRow {
    let cuda_usable = if !v.env.torch.installed {
        "—"
    } else {
        match v.gpu_ready_torch {
            Some(true) => "yes",
            Some(false) => "no",
            None => "unknown",
        }
    };
    MatrixRow {
        env: v.env.name.clone(),
        python: v.python_minor.clone().unwrap_or_else(|| "?".to_string()),
        torch: v.torch_build.clone(),
        cuda_usable: cuda_usable.to_string(),
        llama: v.llama_gpu_backend.clone(),
        verdict: v.verdict.clone(),
        used_by: v.used_by.clone(),
    }
}

fn matrix_line(r: &MatrixRow) -> String {
    let who = if r.used_by.is_empty() {
        String::new()
    } else {
        format!(" [{}]", r.used_by.join(", "))
    };
    format!(
        "{}{who}: Python {}, torch {}, CUDA usable: {}, llama-cpp-python GPU backend: {} => {}",
        r.env, r.python, r.torch, r.cuda_usable, r.llama, r.verdict
    )
}

/// `derived.python`, from the views of every environment.
pub fn python_derived(facts: &Facts, views: &[VenvView]) -> PythonDerived {
    let nvidia_gpu = facts.driver.gpu_count > 0
        || !facts.driver.gpus.is_empty()
        || !facts.host.pci_gpus.is_empty();
    let py = &facts.python;
    let complete: Vec<&VenvView> = views.iter().filter(|v| v.complete).collect();
    let ready = complete.first();
    let matrix: Vec<MatrixRow> = views.iter().map(matrix_row).collect();
    let mut d = PythonDerived {
        nvidia_gpu,
        env_count: views.iter().filter(|v| v.env.exists).count() as u32,
        needs_torch: views.iter().any(|v| v.env.torch.installed),
        needs_llama: views.iter().any(|v| v.env.llama_cpp.installed),
        needs_text: needs_text(views).to_string(),
        complete: complete.iter().map(|v| v.env.name.clone()).collect(),
        gpu_ready_env: ready.map(|v| v.env.name.clone()),
        gpu_ready_python: ready.map(|v| v.env.python.clone()),
        gpu_ready_activate: ready.and_then(|v| v.advice.activate.clone()),
        gpu_ready_activate_ps1: ready.and_then(|v| v.advice.activate_ps1.clone()),
        active: py.active.clone(),
        editor: py.editor.as_ref().and_then(|e| e.environment.clone()),
        path_first: py.path_first.clone(),
        matrix_lines: matrix.iter().map(matrix_line).collect(),
        matrix,
        live_over_files: views
            .iter()
            .flat_map(|v| v.live_over_files.iter().cloned())
            .collect(),
        ggml_build_vars: ggml_build_vars(facts),
        llama_proved: proved_environments(facts, |_| true),
        llama_proved_on_gpu: proved_environments(facts, |p| {
            p.layers_total > 0 && p.layers_on_gpu >= p.layers_total
        }),
        ..PythonDerived::default()
    };
    if let Some(ready) = ready {
        used_not_ready(facts, views, &ready.env.name, &mut d);
    }
    d.several_none_complete =
        nvidia_gpu && d.env_count >= 2 && (d.needs_torch || d.needs_llama) && complete.is_empty();
    if d.several_none_complete {
        d.candidate = candidate(&d, views);
    }
    d
}

/// Environments whose llama-cpp-python loaded the proof's test model with every layer asked
/// for on the GPU, and whose placement passes `test`.
fn proved_environments(facts: &Facts, test: impl Fn(&LoadRun) -> bool) -> Vec<String> {
    facts
        .offload
        .stacks
        .iter()
        .filter(|s| s.kind == "llama-cpp-python")
        .filter(|s| s.placement.as_ref().is_some_and(|p| p.loaded && test(p)))
        .filter_map(|s| s.environment.clone())
        .collect()
}

/// The first environment the shell, the editor or PATH selects that is not complete, and who
/// selects it.
fn used_not_ready(facts: &Facts, views: &[VenvView], ready: &str, d: &mut PythonDerived) {
    let editor_key = facts
        .python
        .editor
        .as_ref()
        .map_or("its interpreter setting", |e| e.key.as_str());
    let roles = [
        (d.active.clone(), "the shell (VIRTUAL_ENV)".to_string()),
        (d.editor.clone(), format!("the editor ({editor_key})")),
        (d.path_first.clone(), "`python` on PATH".to_string()),
    ];
    let not_ready =
        |name: &str| name != ready && views.iter().any(|v| v.env.name == name && !v.complete);
    let Some(env) = roles
        .iter()
        .filter_map(|(n, _)| n.as_deref())
        .find(|n| not_ready(n))
        .map(str::to_string)
    else {
        return;
    };
    d.used_not_ready_by = roles
        .iter()
        .filter(|(n, _)| n.as_deref() == Some(env.as_str()))
        .map(|(_, who)| who.clone())
        .collect();
    d.used_env_not_ready = Some(env);
}

/// Whether the environment's interpreter can start and see what is installed in it: not when
/// it is gone, its base Python is gone or out of this user's reach, or the base now runs
/// another Python version (which never reads the environment's site-packages).
fn runs_its_packages(env: &PythonEnv) -> bool {
    env.python_exists
        && env.base_python_exists != Some(false)
        && env.base_python_unreadable.is_none()
        && env.interpreter_version_mismatch.is_none()
}

/// The environment to complete: the one the shell, the editor or PATH selects, else the one
/// with the most GPU-ready packages.
fn candidate(d: &PythonDerived, views: &[VenvView]) -> Option<Candidate> {
    let usable = |v: &&VenvView| v.env.exists && runs_its_packages(&v.env);
    let used = [&d.active, &d.editor, &d.path_first]
        .into_iter()
        .flatten()
        .find_map(|name| views.iter().filter(usable).find(|v| &v.env.name == name));
    let score = |v: &VenvView| {
        usize::from(v.gpu_ready_torch == Some(true)) + usize::from(v.gpu_ready_llama == Some(true))
    };
    let best = views
        .iter()
        .filter(usable)
        .rev() // max_by_key keeps the last maximum: reverse to prefer the first
        .max_by_key(|v| score(v));
    let v = used.or(best)?;
    let a = &v.advice;
    let mut c = Candidate {
        env: v.env.name.clone(),
        python: v.env.python.clone(),
        ..Candidate::default()
    };
    if d.needs_torch && v.gpu_ready_torch != Some(true) {
        c.lacks.push("torch with CUDA".to_string());
        c.torch_spec = a.torch_spec.clone();
        c.torch_index = a.torch_index.clone();
    }
    if d.needs_llama && v.gpu_ready_llama != Some(true) {
        c.lacks.push("llama-cpp-python with CUDA".to_string());
        c.llama_wheel_spec = a.llama_wheel_spec.clone();
        c.llama_wheel_index = a.llama_wheel_index.clone();
        c.llama_source_spec = a.llama_source_spec.clone();
    }
    Some(c)
}

fn needs_text(views: &[VenvView]) -> &'static str {
    let torch = views.iter().any(|v| v.env.torch.installed);
    let llama = views.iter().any(|v| v.env.llama_cpp.installed);
    match (torch, llama) {
        (true, true) => "torch and llama-cpp-python",
        (true, false) => "torch",
        (false, true) => "llama-cpp-python",
        (false, false) => "",
    }
}

fn ggml_build_vars(facts: &Facts) -> Vec<String> {
    let other = &facts.host.env.other;
    GGML_BUILD_VARIABLES
        .iter()
        .filter_map(|name| other.get(*name).map(|value| format!("{name}={value}")))
        .collect()
}
