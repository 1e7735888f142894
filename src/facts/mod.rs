//! Facts: everything the probes saw, and the only contract between probing and judging.
//!
//! Facts are plain data. Every optional value is present as `null` rather than missing, so
//! that rule conditions can compare against `null` without guarding each key. The schema is
//! versioned by [`SCHEMA_VERSION`]; a reader refuses a newer major schema instead of guessing.
//! Fields may be added within a schema version; none are removed or renamed.

pub mod llama;
pub mod python;
pub mod redact;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the Facts layout. Bump when a field is removed, renamed or changes meaning.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything gpu-doctor knows about one machine at one moment.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Facts {
    /// Layout version of this document; see docs/facts.md.
    pub schema_version: u32,
    /// The gpu-doctor build that recorded these facts.
    pub tool: ToolInfo,
    /// Seconds since the Unix epoch when probing started.
    pub collected_at_unix: u64,
    /// The profile that was probed: quick, standard or full.
    pub profile: String,
    /// Outcome of each probe, by probe name (host, driver, cuda, toolkits).
    pub probes: BTreeMap<String, ProbeOutcome>,
    pub host: HostFacts,
    pub driver: DriverFacts,
    pub cuda: CudaFacts,
    pub toolkits: ToolkitFacts,
    /// The project's Python environments and the GPU packages in each.
    pub python: python::PythonFacts,
    /// The llama.cpp offload proof (full profile): where each llama.cpp stack put the layers.
    pub offload: llama::OffloadFacts,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ToolInfo {
    pub name: String,
    pub version: String,
}

/// How a probe ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProbeStatus {
    /// The probe ran and its section is filled in.
    Ok,
    /// The thing probed is not on this machine. A fact, not an error.
    Absent,
    /// The probe could not do its work; `error` says why.
    Failed,
    /// The probe overran its deadline; its section holds what it had before that, if anything.
    TimedOut,
    /// The probe panicked (a bug in gpu-doctor or a library it calls).
    Crashed,
    /// Not part of this profile.
    #[default]
    Skipped,
}

impl ProbeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeStatus::Ok => "ok",
            ProbeStatus::Absent => "absent",
            ProbeStatus::Failed => "failed",
            ProbeStatus::TimedOut => "timed_out",
            ProbeStatus::Crashed => "crashed",
            ProbeStatus::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ProbeOutcome {
    pub status: ProbeStatus,
    /// Why the probe failed, timed out or crashed; for `absent`, what was looked for.
    pub error: Option<String>,
    /// Wall time the probe took, in milliseconds (the deadline for a timed-out probe).
    pub duration_ms: f64,
    /// The deadline the probe ran under, in milliseconds.
    pub deadline_ms: u64,
}

// ---------------------------------------------------------------------------------------------
// host

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct HostFacts {
    /// `linux`, `windows` or `macos` (Rust's `std::env::consts::OS`).
    pub os: String,
    /// Distribution name and version, e.g. "Debian GNU/Linux 12 (bookworm)".
    pub os_release: Option<String>,
    pub kernel: Option<String>,
    pub arch: String,
    pub hostname: Option<String>,
    /// Running under Windows Subsystem for Linux 2 (GPU access goes through /usr/lib/wsl/lib).
    pub wsl2: bool,
    /// Running inside a container (/.dockerenv, /run/.containerenv, or a container cgroup).
    pub container: bool,
    pub cpu: CpuFacts,
    pub memory: MemoryFacts,
    pub env: GpuEnvironment,
    /// NVIDIA display or 3D controllers on the PCI bus, read from /sys (works without a driver).
    pub pci_gpus: Vec<PciGpu>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct CpuFacts {
    pub model: Option<String>,
    pub logical_cores: u32,
    pub avx: bool,
    pub avx2: bool,
    pub fma: bool,
    pub f16c: bool,
    pub avx512f: bool,
    pub avx512_vnni: bool,
    pub avx512_bf16: bool,
    pub amx: bool,
    /// Other flags are not kept: the list is long and only these change which llama.cpp build fits.
    pub neon: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct MemoryFacts {
    pub total_mib: u64,
    pub available_mib: u64,
}

/// The environment variables that steer which GPU and which CUDA a process uses.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct GpuEnvironment {
    pub cuda_visible_devices: Option<String>,
    pub nvidia_visible_devices: Option<String>,
    pub cuda_path: Option<String>,
    pub cuda_home: Option<String>,
    pub ld_library_path: Option<String>,
    /// Entries of PATH that look like a CUDA toolkit or driver folder (in PATH order).
    pub path_cuda_entries: Vec<String>,
    /// The GGML_CUDA_* and CUDA_* variables that change run-time behaviour, by name.
    pub other: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct PciGpu {
    /// Domain:bus:device.function, e.g. "0000:00:06.0".
    pub bus_id: String,
    /// PCI device id, e.g. "0x2330".
    pub device_id: String,
    /// Kernel driver bound to the device (nvidia, nouveau, vfio-pci), if any.
    pub kernel_driver: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// driver (NVML)

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct DriverFacts {
    /// Whether libnvidia-ml was found by the loader search (quick profile: found, not loaded).
    pub library_found: bool,
    /// The library name asked of the dynamic loader.
    pub library: String,
    /// Places the loader searches that were checked for it (LD_LIBRARY_PATH, ld.so.cache, default folders).
    pub library_search: Vec<String>,
    /// Where the library was found, when it was.
    pub library_path: Option<String>,
    /// NVML's error name when loading or initialising failed (e.g. "DriverNotLoaded").
    pub init_error: Option<String>,
    /// Human text of that error.
    pub init_error_text: Option<String>,
    /// User-space driver version, from NVML (e.g. "580.159.04").
    pub version: Option<String>,
    /// Highest CUDA version this driver supports (nvmlSystemGetCudaDriverVersion_v2), "13.0".
    pub cuda_version: Option<String>,
    pub nvml_version: Option<String>,
    pub kernel_module: KernelModule,
    /// The kernel module and the user-space library are different versions.
    pub version_mismatch: bool,
    pub dev_nodes: DevNodes,
    pub gpu_count: u32,
    pub gpus: Vec<Gpu>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct KernelModule {
    /// /proc/driver/nvidia/version exists.
    pub loaded: bool,
    pub version: Option<String>,
    /// "open" or "proprietary" kernel module.
    pub flavor: Option<String>,
    /// First line of /proc/driver/nvidia/version.
    pub banner: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct DevNodes {
    pub nvidiactl: bool,
    pub nvidia_uvm: bool,
    pub nvidia_uvm_tools: bool,
    /// /dev/nvidiaN nodes found, by N.
    pub gpus: Vec<u32>,
    /// Device nodes that exist but this user cannot open for reading and writing.
    pub not_accessible: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Gpu {
    /// NVML index (physical order, not affected by CUDA_VISIBLE_DEVICES).
    pub index: u32,
    pub name: String,
    pub uuid: String,
    pub pci_bus_id: String,
    pub serial: Option<String>,
    /// Compute capability as "major.minor".
    pub compute_capability: String,
    pub cc_major: u32,
    pub cc_minor: u32,
    /// Architecture name, e.g. "Hopper" (from the knowledge table when NVML does not know it).
    pub architecture: String,
    pub memory: GpuMemory,
    /// null when NVML cannot tell (not supported on this GPU or platform).
    pub persistence_mode: Option<bool>,
    /// default, exclusive_process or prohibited.
    pub compute_mode: Option<String>,
    pub mig_enabled: Option<bool>,
    pub ecc: Ecc,
    /// Current clock throttle reasons, by NVML name; "gpu_idle" alone is normal.
    pub throttle_reasons: Vec<String>,
    pub temperature_c: Option<u32>,
    pub processes: Vec<GpuProcess>,
    /// Per-field read errors that are not "not supported", by field.
    pub errors: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct GpuMemory {
    pub total_mib: u64,
    pub used_mib: u64,
    pub free_mib: u64,
    /// used / total, 0 to 100.
    pub used_percent: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Ecc {
    /// ECC enabled now; null where the GPU has no ECC.
    pub enabled: Option<bool>,
    pub volatile_uncorrected: Option<u64>,
    pub aggregate_uncorrected: Option<u64>,
    pub retired_pages_double_bit: Option<u64>,
    pub retired_pages_single_bit: Option<u64>,
    pub retired_pages_pending: Option<bool>,
    /// Rows remapped on Ampere and newer, replacing page retirement.
    pub remapped_rows_uncorrectable: Option<u64>,
    pub remapping_failed: Option<bool>,
    /// A row remapping waits for the next GPU reset.
    pub remapping_pending: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct GpuProcess {
    pub pid: u32,
    pub name: Option<String>,
    pub used_mib: Option<u64>,
    /// compute or graphics.
    pub kind: String,
}

// ---------------------------------------------------------------------------------------------
// CUDA driver API

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct CudaFacts {
    /// Whether libcuda could be loaded.
    pub library_found: bool,
    /// Names tried for libcuda, in order.
    pub library_candidates: Vec<String>,
    /// The file libcuda was actually loaded from (the real driver, not a toolkit stub).
    pub library_path: Option<String>,
    /// cuInit's result by name: "CUDA_SUCCESS", "CUDA_ERROR_NO_DEVICE", ...; null when not called.
    pub init_result: Option<String>,
    /// cuGetErrorString's text for that result.
    pub init_message: Option<String>,
    /// cuDriverGetVersion as "13.0".
    pub driver_api_version: Option<String>,
    pub device_count: u32,
    pub devices: Vec<CudaDevice>,
    pub nvrtc: Nvrtc,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct CudaDevice {
    /// CUDA ordinal: position among the devices this process may see.
    pub ordinal: u32,
    pub name: String,
    /// "GPU-..." UUID, to match NVML's view.
    pub uuid: Option<String>,
    pub pci_bus_id: Option<String>,
    pub compute_capability: String,
    pub total_mib: u64,
    /// A context could be created on this device.
    pub context_ok: bool,
    pub context_error: Option<String>,
    /// The full profile's kernel check; null in other profiles.
    pub kernel: Option<KernelCheck>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct KernelCheck {
    pub compiled: bool,
    pub launched: bool,
    /// Every element of the result was what the host computed.
    pub verified: bool,
    pub error: Option<String>,
    /// NVRTC target used, e.g. "compute_90".
    pub target: Option<String>,
    pub compile_ms: Option<f64>,
    pub kernel_ms: Option<f64>,
    pub elements: u64,
    /// Host-to-device and device-to-host bandwidth, best of two copies of `transfer_mib` each way
    /// between page-locked (pinned) host memory and the device.
    pub h2d_gb_per_s: Option<f64>,
    pub d2h_gb_per_s: Option<f64>,
    pub transfer_mib: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Nvrtc {
    pub library_found: bool,
    /// The file NVRTC was loaded from.
    pub library_path: Option<String>,
    pub version: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// CUDA toolkits

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ToolkitFacts {
    pub installs: Vec<Toolkit>,
    /// The nvcc found first on PATH.
    pub path_nvcc: Option<String>,
    /// Root of the toolkit the PATH nvcc belongs to.
    pub path_root: Option<String>,
    /// Version of the toolkit each variable points at, when it points at one.
    pub cuda_home_version: Option<String>,
    pub cuda_path_version: Option<String>,
    pub path_version: Option<String>,
    /// The versions named by CUDA_HOME, CUDA_PATH and PATH's nvcc, where set, disagree.
    pub selectors_disagree: bool,
    /// Selectors (CUDA_HOME, CUDA_PATH, CUDA_ROOT, CUDAToolkit_ROOT, CUDA_PATH_Vxx_y) that name
    /// no folder, with why ("/x: no such folder").
    pub selector_errors: BTreeMap<String, String>,
    pub loader: LoaderView,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Toolkit {
    /// The toolkit's root folder.
    pub root: String,
    /// "13.0.2"-style full version where known, else "13.0".
    pub version: Option<String>,
    /// "major.minor" of `version`.
    pub version_short: Option<String>,
    pub major: Option<u32>,
    /// Where the version was read: "version.json", "version.txt", "nvcc", "cuda.h" or "folder name".
    pub version_source: Option<String>,
    pub nvcc: Option<String>,
    /// How it was found: path, cuda_home, cuda_path, cuda_root, cudatoolkit_root,
    /// cuda_path_versioned (CUDA_PATH_Vxx_y),
    /// default_location.
    pub found_by: Vec<String>,
    /// Other names that lead to the same folder (/usr/local/cuda, /usr/local/cuda-13).
    pub aliases: Vec<String>,
    /// Set when the folder exists but its version could not be read, or when a folder named by
    /// an environment variable has no nvcc, version.json or version.txt.
    pub error: Option<String>,
}

/// What the dynamic loader would hand a program asking for the CUDA runtime libraries.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct LoaderView {
    /// soname -> path, for those that resolve (libcudart.so.13 -> /usr/local/cuda/lib64/...).
    pub resolved: BTreeMap<String, String>,
    /// sonames asked for that did not resolve.
    pub missing: Vec<String>,
}

impl Facts {
    /// Facts for this build with nothing probed yet.
    pub fn empty(profile: &str) -> Facts {
        Facts {
            schema_version: SCHEMA_VERSION,
            tool: ToolInfo {
                name: env!("CARGO_PKG_NAME").to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
            },
            profile: profile.to_string(),
            ..Facts::default()
        }
    }
}

/// The JSON Schema of [`Facts`], as published in docs/facts.schema.json.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Facts);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// Test helper: fail when the published file at `path` differs from `current`; with
/// UPDATE_DOCS set, write it first (`make docs`).
#[cfg(test)]
pub(crate) fn check_published(path: &str, current: &str) {
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(path, current).unwrap();
    }
    let published = std::fs::read_to_string(path).unwrap_or_default();
    let name = path.rsplit('/').next().unwrap_or(path);
    assert!(
        published == current,
        "docs/{name} is stale: run `make docs`"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/facts.schema.json is generated from these types; this fails when it is stale.
    /// Regenerate with `UPDATE_DOCS=1 cargo test --lib facts`.
    #[test]
    fn published_schema_is_current() {
        check_published(
            concat!(env!("CARGO_MANIFEST_DIR"), "/docs/facts.schema.json"),
            &json_schema(),
        );
    }

    #[test]
    fn empty_facts_round_trip_and_carry_the_schema_version() {
        let facts = Facts::empty("quick");
        let text = serde_json::to_string(&facts).unwrap();
        let back: Facts = serde_json::from_str(&text).unwrap();
        assert_eq!(back.schema_version, SCHEMA_VERSION);
        assert_eq!(back.profile, "quick");
        // Every optional value is written as null, so rules never meet a missing key.
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(value["driver"]["version"].is_null());
        assert!(value["host"]["env"].get("cuda_visible_devices").is_some());
    }
}
