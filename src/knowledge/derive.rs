//! Values computed once from Facts and the knowledge tables, bound for rule conditions and
//! messages: `derived` (host-wide, with `derived.python` for the project's environments), and
//! the per-item views bound in scoped rules (`gpu`, `toolkit`, `venv`). Rules only compare;
//! every table lookup and version comparison happens here, in Rust, where it is tested.

mod advice;
mod llama;
mod toolkit_vars;
mod venv;

pub use advice::VenvAdvice;
pub use llama::{llama_views, LlamaView};
pub use toolkit_vars::ToolkitVariable;
pub use venv::{
    matrix_row, python_derived, venv_views, Candidate, MatrixRow, PythonDerived, VenvView,
};

use super::{
    arch_for_cc, driver_max_cuda, min_driver_for_cuda_major, toolkit_driver, version, Os, Version,
};
use crate::facts::{Facts, Gpu, Toolkit};
use schemars::JsonSchema;
use serde::Serialize;

/// Host-wide derived values, bound as `derived`.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Derived {
    /// The driver version used for comparisons: NVML's, else the loaded kernel module's.
    pub driver_version: Option<String>,
    /// Driver branch (the major of the driver version), e.g. 580.
    pub driver_branch: Option<u32>,
    /// Highest CUDA version the driver supports: from NVML when it said, else from the table.
    pub driver_max_cuda: Option<String>,
    /// "nvml", "cuda" (cuDriverGetVersion) or "knowledge".
    pub driver_max_cuda_source: Option<String>,
    pub visibility: Visibility,
    /// Toolkit versions found, distinct, ascending ("12.4", "13.0").
    pub toolkit_versions: Vec<String>,
    /// The project's Python environments as a whole: which are complete, which one the shell
    /// and the editor use, the environment matrix.
    pub python: PythonDerived,
    /// Toolkit variables (CUDA_HOME, CUDA_PATH, CUDA_ROOT, CUDAToolkit_ROOT) that name a folder
    /// that does not exist or holds no nvcc.
    pub toolkit_variables_broken: Vec<ToolkitVariable>,
    /// Toolkit variables that name a toolkit newer than this driver runs.
    pub toolkit_variables_too_new: Vec<ToolkitVariable>,
}

/// How CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES narrow the GPUs a process sees.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Visibility {
    /// GPUs NVML sees (physical).
    pub physical_gpus: u32,
    /// GPUs a CUDA program would see after CUDA_VISIBLE_DEVICES.
    pub cuda_visible_gpus: u32,
    /// CUDA_VISIBLE_DEVICES is set and hides every GPU (empty, "-1", "NoDevFiles", or no valid entry).
    pub cuda_hides_all: bool,
    /// CUDA_VISIBLE_DEVICES hides some but not all GPUs.
    pub cuda_hides_some: bool,
    /// Physical indices hidden by CUDA_VISIBLE_DEVICES.
    pub cuda_hidden_indices: Vec<u32>,
    /// Entries of CUDA_VISIBLE_DEVICES that match no GPU (CUDA stops reading the list at the first such entry).
    pub cuda_invalid_entries: Vec<String>,
    /// Entries after the first invalid one, which CUDA ignores even where they name a GPU.
    pub cuda_ignored_entries: Vec<String>,
    /// NVIDIA_VISIBLE_DEVICES is "none" or "void" (a container runtime gives no GPU).
    pub nvidia_hides_all: bool,
}

/// The per-GPU view bound as `gpu` in rules of scope "gpu".
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct GpuView {
    #[serde(flatten)]
    pub gpu: Gpu,
    /// Visible to CUDA programs started with this environment.
    pub cuda_visible: bool,
    /// Its CUDA ordinal under the current CUDA_VISIBLE_DEVICES, when visible.
    pub cuda_ordinal: Option<u32>,
    /// Lowest CUDA that compiles for this architecture, from the table.
    pub arch_first_cuda: Option<String>,
    /// Last CUDA major that supports it, when support was removed ("12" for Volta).
    pub arch_last_cuda_major: Option<u32>,
}

/// The per-toolkit view bound as `toolkit` in rules of scope "toolkit".
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct ToolkitView {
    #[serde(flatten)]
    pub toolkit: Toolkit,
    /// Minimum driver for any CUDA `major` application (minor-version compatibility), for this OS.
    pub min_driver_for_major: Option<String>,
    /// Driver shipped with this exact toolkit release (CUDA release notes, Table 3), for this OS.
    pub toolkit_driver: Option<String>,
    /// The installed driver runs programs built with this toolkit (null: no driver or unknown toolkit).
    pub driver_runs_programs: Option<bool>,
    /// The installed driver is at least the toolkit's own driver (PTX JIT of its PTX works).
    pub driver_meets_toolkit: Option<bool>,
    /// Selected by CUDA_HOME, CUDA_PATH or PATH: "cuda_home", "cuda_path", "path".
    pub selected_by: Vec<String>,
}

/// Compute `derived` for a set of facts.
pub fn derive(facts: &Facts) -> Derived {
    derive_with_venvs(facts).0
}

/// `derived` and the view of every Python environment it was computed from, so that each
/// environment's verdict is judged once.
pub fn derive_with_venvs(facts: &Facts) -> (Derived, Vec<VenvView>) {
    let driver_version = driver_version(facts);
    let (driver_max_cuda, source) = max_cuda(facts, driver_version.as_deref());
    let mut derived = Derived {
        driver_branch: driver_version
            .as_deref()
            .and_then(Version::parse)
            .map(|v| v.major()),
        driver_version,
        driver_max_cuda,
        driver_max_cuda_source: source.map(str::to_string),
        visibility: visibility(facts),
        toolkit_versions: toolkit_versions(facts),
        python: PythonDerived::default(),
        toolkit_variables_broken: Vec::new(),
        toolkit_variables_too_new: Vec::new(),
    };
    let (too_new, broken) = toolkit_vars::toolkit_variables(facts, &derived)
        .into_iter()
        .partition(|v| v.problem == "newer_than_driver");
    derived.toolkit_variables_broken = broken;
    derived.toolkit_variables_too_new = too_new;
    // The environments are judged against the driver values above.
    let views = venv_views(facts, &derived);
    derived.python = python_derived(facts, &views);
    (derived, views)
}

/// The environment matrix of a set of facts: one row per Python environment (name, Python,
/// torch build, whether CUDA is usable, llama-cpp-python's GPU backend, verdict).
pub fn environment_matrix(facts: &Facts) -> Vec<MatrixRow> {
    derive(facts).python.matrix
}

/// NVML's user-space version, else the kernel module's (the quick profile reads only /proc).
fn driver_version(facts: &Facts) -> Option<String> {
    let nvml = facts
        .driver
        .version
        .as_deref()
        .filter(|v| Version::parse(v).is_some());
    let module = facts
        .driver
        .kernel_module
        .version
        .as_deref()
        .filter(|v| Version::parse(v).is_some());
    nvml.or(module).map(str::to_string)
}

/// The driver's own answer beats the table: NVML, then cuDriverGetVersion, then the branch row.
fn max_cuda(facts: &Facts, driver_version: Option<&str>) -> (Option<String>, Option<&'static str>) {
    let valid = |v: &Option<String>| {
        v.as_deref()
            .filter(|v| Version::parse(v).is_some())
            .map(str::to_string)
    };
    if let Some(v) = valid(&facts.driver.cuda_version) {
        return (Some(v), Some("nvml"));
    }
    if let Some(v) = valid(&facts.cuda.driver_api_version) {
        return (Some(v), Some("cuda"));
    }
    match driver_version.and_then(driver_max_cuda) {
        Some(v) => (Some(v), Some("knowledge")),
        None => (None, None),
    }
}

fn toolkit_versions(facts: &Facts) -> Vec<String> {
    let mut versions: Vec<Version> = facts
        .toolkits
        .installs
        .iter()
        .filter_map(|t| t.version_short.as_deref().and_then(Version::parse))
        .collect();
    versions.sort();
    versions.dedup();
    versions.into_iter().map(|v| v.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// CUDA_VISIBLE_DEVICES

/// One device CUDA would enumerate, in ordinal order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Visible {
    /// A physical GPU, by NVML index.
    Physical(u32),
    /// A device that cannot be tied to an NVML GPU: a MIG instance by its own UUID, or an index
    /// when NVML's GPU list is unknown (quick profile).
    Unmapped,
}

/// What CUDA makes of CUDA_VISIBLE_DEVICES, given the physical GPUs.
#[derive(Debug, Default)]
struct CudaVisible {
    devices: Vec<Visible>,
    invalid: Vec<String>,
    ignored: Vec<String>,
}

/// CUDA Programming Guide §5.2.1.1: comma-separated indices or UUIDs ("GPU-" prefix, as short
/// as still unique), or "MIG-..." instances; the first invalid entry ends the list. An empty
/// value shows nothing. A duplicate counts as invalid (a device is enumerated once).
fn parse_cuda_visible(value: &str, gpus: &[Gpu]) -> CudaVisible {
    let mut out = CudaVisible::default();
    if value.trim().is_empty() {
        return out;
    }
    let mut entries = value.split(',').map(str::trim);
    for entry in entries.by_ref() {
        match resolve_entry(entry, gpus) {
            Some(v) if v == Visible::Unmapped || !out.devices.contains(&v) => out.devices.push(v),
            _ => {
                out.invalid.push(entry.to_string());
                break;
            }
        }
    }
    for entry in entries {
        if resolve_entry(entry, gpus).is_none() {
            out.invalid.push(entry.to_string());
        } else {
            out.ignored.push(entry.to_string());
        }
    }
    out
}

fn resolve_entry(entry: &str, gpus: &[Gpu]) -> Option<Visible> {
    let known = !gpus.is_empty();
    if let Some(mig) = strip_prefix_ignore_case(entry, "MIG-") {
        // Old form "MIG-GPU-<uuid>/<gi>/<ci>" names its parent GPU; the new "MIG-<uuid>" does not.
        let parent = mig
            .split('/')
            .next()
            .filter(|p| strip_prefix_ignore_case(p, "GPU-").is_some());
        return match parent {
            Some(p) if known => by_uuid_prefix(p, gpus),
            _ => Some(Visible::Unmapped),
        };
    }
    if strip_prefix_ignore_case(entry, "GPU-").is_some() {
        return if known {
            by_uuid_prefix(entry, gpus)
        } else {
            Some(Visible::Unmapped)
        };
    }
    if entry.is_empty() || !entry.bytes().all(|b| b.is_ascii_digit()) {
        return None; // "-1", "NoDevFiles", "abc": never valid
    }
    let index: u32 = entry.parse().ok()?;
    if !known {
        return Some(Visible::Unmapped);
    }
    // Indices count the GPUs in NVML (nvidia-smi) order.
    gpus.iter()
        .any(|g| g.index == index)
        .then_some(Visible::Physical(index))
}

/// The one GPU whose UUID starts with `prefix`; None when none or several do.
fn by_uuid_prefix(prefix: &str, gpus: &[Gpu]) -> Option<Visible> {
    let mut matches = gpus
        .iter()
        .filter(|g| starts_with_ignore_case(&g.uuid, prefix));
    let first = matches.next()?;
    matches
        .next()
        .is_none()
        .then_some(Visible::Physical(first.index))
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    starts_with_ignore_case(s, prefix).then(|| &s[prefix.len()..])
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn visibility(facts: &Facts) -> Visibility {
    let gpus = &facts.driver.gpus;
    let physical = if gpus.is_empty() {
        facts.driver.gpu_count
    } else {
        gpus.len() as u32
    };
    let nvidia = facts
        .host
        .env
        .nvidia_visible_devices
        .as_deref()
        .map(|v| v.trim().to_ascii_lowercase());
    let mut vis = Visibility {
        physical_gpus: physical,
        cuda_visible_gpus: physical,
        nvidia_hides_all: matches!(nvidia.as_deref(), Some("none" | "void")),
        ..Visibility::default()
    };
    let Some(value) = facts.host.env.cuda_visible_devices.as_deref() else {
        return vis;
    };
    let parsed = parse_cuda_visible(value, gpus);
    vis.cuda_visible_gpus = parsed.devices.len() as u32;
    vis.cuda_hides_all = parsed.devices.is_empty();
    vis.cuda_hidden_indices = gpus
        .iter()
        .map(|g| g.index)
        .filter(|i| !parsed.devices.contains(&Visible::Physical(*i)))
        .collect();
    vis.cuda_hides_some = !vis.cuda_hides_all && !vis.cuda_hidden_indices.is_empty();
    if vis.cuda_hides_all {
        vis.cuda_hidden_indices = gpus.iter().map(|g| g.index).collect();
    }
    vis.cuda_invalid_entries = parsed.invalid;
    vis.cuda_ignored_entries = parsed.ignored;
    vis
}

// ---------------------------------------------------------------------------------------------
// views

/// The views of every GPU, in NVML index order.
pub fn gpu_views(facts: &Facts, derived: &Derived) -> Vec<GpuView> {
    let _ = derived; // visibility is recomputed with the mapping it needs, not just the counts
    let visible = facts
        .host
        .env
        .cuda_visible_devices
        .as_deref()
        .map(|v| parse_cuda_visible(v, &facts.driver.gpus).devices);
    let mut gpus: Vec<&Gpu> = facts.driver.gpus.iter().collect();
    gpus.sort_by_key(|g| g.index);
    gpus.into_iter()
        .map(|g| gpu_view(facts, g, visible.as_deref()))
        .collect()
}

fn gpu_view(facts: &Facts, gpu: &Gpu, visible: Option<&[Visible]>) -> GpuView {
    let arch = arch_for_cc(gpu.cc_major, gpu.cc_minor);
    let mut gpu_out = gpu.clone();
    if gpu_out.architecture.is_empty() || gpu_out.architecture.eq_ignore_ascii_case("unknown") {
        if let Some(a) = &arch {
            gpu_out.architecture = a.name.clone();
        }
    }
    let ordinal = cuda_ordinal(facts, gpu, visible);
    GpuView {
        gpu: gpu_out,
        cuda_visible: ordinal.is_some(),
        cuda_ordinal: ordinal,
        arch_first_cuda: arch.as_ref().and_then(|a| a.first_cuda.clone()),
        arch_last_cuda_major: arch.and_then(|a| a.last_cuda_major),
    }
}

/// The CUDA probe's own answer when it matched this GPU by UUID, else the position in
/// CUDA_VISIBLE_DEVICES, else the NVML index (CUDA's default order is fastest-first, which is
/// NVML's PCI order on machines with identical GPUs).
fn cuda_ordinal(facts: &Facts, gpu: &Gpu, visible: Option<&[Visible]>) -> Option<u32> {
    let probed = facts.cuda.devices.iter().find(|d| {
        !gpu.uuid.is_empty()
            && d.uuid
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(&gpu.uuid))
    });
    if let Some(d) = probed {
        return Some(d.ordinal);
    }
    match visible {
        Some(devices) => devices
            .iter()
            .position(|v| *v == Visible::Physical(gpu.index))
            .map(|p| p as u32),
        None => Some(gpu.index),
    }
}

/// The views of every toolkit, in discovery order.
pub fn toolkit_views(facts: &Facts, derived: &Derived) -> Vec<ToolkitView> {
    let os = Os::from_facts(&facts.host.os);
    facts
        .toolkits
        .installs
        .iter()
        .map(|t| toolkit_view(facts, derived, t, os))
        .collect()
}

fn toolkit_view(facts: &Facts, derived: &Derived, t: &Toolkit, os: Os) -> ToolkitView {
    let min_driver = t
        .major
        .and_then(|m| min_driver_for_cuda_major(m, os))
        .map(str::to_string);
    // Only version.json's third part is an update number; nvcc's and version.txt's are builds.
    let release = match t.version_source.as_deref() {
        Some("version.json") => t.version.as_deref().or(t.version_short.as_deref()),
        _ => t.version_short.as_deref(),
    };
    let tk_driver = release
        .and_then(|r| toolkit_driver(r, os))
        .map(str::to_string);
    let driver = derived.driver_version.as_deref();
    let meets =
        |need: &Option<String>| Some(version::at_least(driver?, need.as_deref()?)).flatten();
    ToolkitView {
        driver_runs_programs: meets(&min_driver),
        driver_meets_toolkit: meets(&tk_driver),
        min_driver_for_major: min_driver,
        toolkit_driver: tk_driver,
        selected_by: selected_by(facts, t, os),
        toolkit: t.clone(),
    }
}

/// The selectors that point at this toolkit: recorded by the probe in `found_by`, or (for facts
/// written by hand or by an older probe) the variable's value naming the same folder.
fn selected_by(facts: &Facts, t: &Toolkit, os: Os) -> Vec<String> {
    let env = &facts.host.env;
    let selectors = [
        ("cuda_home", env.cuda_home.as_deref()),
        ("cuda_path", env.cuda_path.as_deref()),
        ("path", facts.toolkits.path_root.as_deref()),
    ];
    selectors
        .into_iter()
        .filter(|(name, value)| {
            t.found_by.iter().any(|f| f == name)
                || value.is_some_and(|v| same_folder(v, &t.root, os))
        })
        .map(|(name, _)| name.to_string())
        .collect()
}

/// Folder names equal up to trailing separators (and case, on Windows).
pub(crate) fn same_folder(a: &str, b: &str, os: Os) -> bool {
    let trim = |s: &str| s.trim_end_matches(['/', '\\']).to_string();
    let (a, b) = (trim(a), trim(b));
    !a.is_empty()
        && match os {
            Os::Windows => a
                .replace('/', "\\")
                .eq_ignore_ascii_case(&b.replace('/', "\\")),
            Os::Linux => a == b,
        }
}

#[cfg(test)]
mod tests;
