//! Values computed once from Facts and the knowledge tables, bound for rule conditions and
//! messages: `derived` (host-wide), and the per-item views bound in scoped rules (`gpu`,
//! `toolkit`). Rules only compare; every table lookup and version comparison happens here, in
//! Rust, where it is tested.

use crate::facts::{Facts, Gpu, Toolkit};
use schemars::JsonSchema;
use serde::Serialize;

/// Host-wide derived values, bound as `derived`.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Derived {
    /// Driver branch (the major of the driver version), e.g. 580.
    pub driver_branch: Option<u32>,
    /// Highest CUDA version the driver supports: from NVML when it said, else from the table.
    pub driver_max_cuda: Option<String>,
    /// "nvml", "cuda" (cuDriverGetVersion) or "knowledge".
    pub driver_max_cuda_source: Option<String>,
    pub visibility: Visibility,
    /// Toolkit versions found, distinct, ascending ("12.4", "13.0").
    pub toolkit_versions: Vec<String>,
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
    /// Minimum driver for any CUDA `major` application (minor-version compatibility), Linux.
    pub min_driver_for_major: Option<String>,
    /// Driver shipped with this exact toolkit release (CUDA release notes, Table 3), Linux.
    pub toolkit_driver: Option<String>,
    /// The installed driver runs programs built with this toolkit (null: no driver or unknown toolkit).
    pub driver_runs_programs: Option<bool>,
    /// The installed driver is at least the toolkit's own driver (PTX JIT of its PTX works).
    pub driver_meets_toolkit: Option<bool>,
    /// Selected by CUDA_HOME, CUDA_PATH or PATH (names of the selectors).
    pub selected_by: Vec<String>,
}

/// Compute `derived` for a set of facts.
pub fn derive(facts: &Facts) -> Derived {
    let _ = facts;
    Derived::default()
}

/// The views of every GPU, in NVML index order.
pub fn gpu_views(facts: &Facts, derived: &Derived) -> Vec<GpuView> {
    let _ = derived;
    facts.driver.gpus.iter().map(|g| GpuView { gpu: g.clone(), ..Default::default() }).collect()
}

/// The views of every toolkit, in discovery order.
pub fn toolkit_views(facts: &Facts, derived: &Derived) -> Vec<ToolkitView> {
    let _ = derived;
    facts.toolkits.installs.iter().map(|t| ToolkitView { toolkit: t.clone(), ..Default::default() }).collect()
}
