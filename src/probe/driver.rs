//! The NVIDIA driver probe: kernel module, device nodes, and NVML's view of every GPU.
//!
//! The quick profile reads files only: where the dynamic loader would find `libnvidia-ml.so.1`
//! (without loading it), `/proc/driver/nvidia/version` for the loaded kernel module, and the
//! `/dev/nvidia*` nodes with whether this user may open them. That costs milliseconds, so a
//! pre-commit hook can afford it.
//!
//! The standard and full profiles also load NVML from the path that was reported (so what is
//! loaded is what the facts name) and read the driver and each GPU. NVML calls are in-process:
//! they are fast (about 20 ms for init on an H100) and do not crash on a missing driver, they
//! return errors. A symbol an old driver lacks comes back as `FailedToLoadSymbol`, which is
//! recorded like any other error. "Not supported" is a fact about the GPU and becomes `null`;
//! other per-field errors are kept in `Gpu::errors`, and one GPU's failure never hides the rest.

use super::{loader, ProbeContext, Probed, Profile};
use crate::facts::{DevNodes, DriverFacts, Ecc, Gpu, GpuMemory, GpuProcess, KernelModule};
use nvml_wrapper::enum_wrappers::device::{
    ComputeMode, EccCounter, MemoryError, RetirementCause, TemperatureSensor,
};
use nvml_wrapper::enums::device::{DeviceArchitecture, UsedGpuMemory};
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::ProcessInfo;
use nvml_wrapper::{Device, Nvml};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// The name NVML is asked of the dynamic loader by (nvidia-smi and nvml-wrapper use the same).
#[cfg(not(windows))]
pub const NVML_LIBRARY: &str = "libnvidia-ml.so.1";
#[cfg(windows)]
pub const NVML_LIBRARY: &str = "nvml.dll";

/// The kernel module's version file.
const PROC_VERSION: &str = "/proc/driver/nvidia/version";

const MIB: u64 = 1024 * 1024;

/// Probe the driver. See the module documentation for what each profile does.
pub fn probe(ctx: &ProbeContext) -> Probed<DriverFacts> {
    let mut facts = DriverFacts {
        library: NVML_LIBRARY.to_string(),
        kernel_module: read_kernel_module(ctx),
        dev_nodes: scan_dev_nodes(ctx),
        ..DriverFacts::default()
    };
    let found = loader::resolve(ctx, NVML_LIBRARY);
    facts.library_search = found.searched;
    let Some(path) = found.path else {
        let searched = facts.library_search.join(", ");
        let why = format!("no NVIDIA driver: {NVML_LIBRARY} not found (searched: {searched})");
        return Probed::absent(facts, why);
    };
    facts.library_found = true;
    facts.library_path = Some(path.display().to_string());
    if ctx.profile == Profile::Quick {
        // Quick never loads foreign code: the facts stop at what files say.
        return Probed::ok(facts);
    }
    query_nvml(ctx, &path, facts)
}

// ---------------------------------------------------------------------------------------------
// Files: the kernel module and the device nodes

/// What `/proc/driver/nvidia/version` says about the loaded kernel module.
fn read_kernel_module(ctx: &ProbeContext) -> KernelModule {
    match std::fs::read_to_string(ctx.sys_path(PROC_VERSION)) {
        Ok(text) => parse_kernel_module(&text),
        Err(_) => KernelModule::default(),
    }
}

/// Parse the version file. Its first line looks like
/// `NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (...)`
/// for the open module, or `NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  <date>`
/// for the proprietary one.
pub fn parse_kernel_module(text: &str) -> KernelModule {
    let banner = text.lines().map(str::trim).find(|l| !l.is_empty());
    let Some(banner) = banner else {
        // The file exists, so the module is loaded, even if it says nothing useful.
        return KernelModule {
            loaded: true,
            ..KernelModule::default()
        };
    };
    let flavor = if banner.contains("Open Kernel Module") {
        Some("open")
    } else if banner.contains("Kernel Module") {
        Some("proprietary")
    } else {
        None
    };
    // The version is the first dotted number after the "NVRM version:" label.
    let after_label = banner.split_once(':').map_or(banner, |(_, rest)| rest);
    let version = after_label
        .split_whitespace()
        .find(|w| looks_like_version(w));
    KernelModule {
        loaded: true,
        version: version.map(str::to_string),
        flavor: flavor.map(str::to_string),
        banner: Some(banner.to_string()),
    }
}

/// "580.159.04", "535.104.05", "470.82.01": digits with at least one dot.
fn looks_like_version(word: &str) -> bool {
    word.contains('.')
        && word.starts_with(|c: char| c.is_ascii_digit())
        && word.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// The `/dev/nvidia*` nodes CUDA needs, and those this user cannot open for reading and writing.
fn scan_dev_nodes(ctx: &ProbeContext) -> DevNodes {
    let mut nodes = DevNodes::default();
    let dev = ctx.sys_path("/dev");
    let Ok(entries) = std::fs::read_dir(&dev) else {
        return nodes;
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("nvidia"))
        .collect();
    names.sort();
    for name in names {
        let known = match name.as_str() {
            "nvidiactl" => {
                nodes.nvidiactl = true;
                true
            }
            "nvidia-uvm" => {
                nodes.nvidia_uvm = true;
                true
            }
            "nvidia-uvm-tools" => {
                nodes.nvidia_uvm_tools = true;
                true
            }
            other => match gpu_node_number(other) {
                Some(n) => {
                    nodes.gpus.push(n);
                    true
                }
                None => false, // nvidia-modeset, nvidia-caps/...: not needed for compute
            },
        };
        if known && !can_read_write(&dev.join(&name)) {
            nodes.not_accessible.push(format!("/dev/{name}"));
        }
    }
    nodes.gpus.sort_unstable();
    nodes
}

/// N of "nvidiaN".
fn gpu_node_number(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("nvidia")?;
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether this process may open `path` for reading and writing (what CUDA does).
#[cfg(unix)]
fn can_read_write(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access(2) reads a NUL-terminated path and touches no other memory.
    unsafe { libc::access(c_path.as_ptr(), libc::R_OK | libc::W_OK) == 0 }
}

#[cfg(not(unix))]
fn can_read_write(_path: &Path) -> bool {
    true
}

// ---------------------------------------------------------------------------------------------
// NVML

/// Load NVML from `path`, read the driver and each GPU, and finish the facts.
fn query_nvml(ctx: &ProbeContext, path: &Path, mut facts: DriverFacts) -> Probed<DriverFacts> {
    let nvml = match Nvml::builder().lib_path(path.as_os_str()).init() {
        Ok(nvml) => nvml,
        Err(e) => {
            let name = error_name(&e);
            facts.version_mismatch = matches!(e, NvmlError::LibRmVersionMismatch);
            let why = format!("NVML could not start ({name}): {e}");
            facts.init_error = Some(name);
            facts.init_error_text = Some(e.to_string());
            return Probed::failed(facts, why);
        }
    };
    facts.version = nvml.sys_driver_version().ok();
    facts.nvml_version = nvml.sys_nvml_version().ok();
    // _v2 answers LibraryNotFound without libcuda instead of inventing a version (as v1 does).
    facts.cuda_version = nvml
        .sys_cuda_driver_version()
        .ok()
        .and_then(cuda_version_string);
    facts.version_mismatch = versions_mismatch(
        facts.kernel_module.version.as_deref(),
        facts.version.as_deref(),
    );
    let count = match nvml.device_count() {
        Ok(n) => n,
        Err(e) => {
            let why = format!(
                "NVML started but could not count GPUs ({}): {e}",
                error_name(&e)
            );
            facts.init_error = Some(error_name(&e));
            facts.init_error_text = Some(e.to_string());
            return Probed::failed(facts, why);
        }
    };
    facts.gpu_count = count;
    facts.gpus = (0..count)
        .map(|i| read_gpu_guarded(ctx, &nvml, i))
        .collect();
    Probed::ok(facts)
}

/// The kernel module and the user-space library are both known and differ. Only what both
/// sides report is compared: on WSL there is no /proc file, and that is not a mismatch.
pub fn versions_mismatch(kernel: Option<&str>, library: Option<&str>) -> bool {
    match (kernel, library) {
        (Some(k), Some(l)) => k.trim() != l.trim(),
        _ => false,
    }
}

/// 13000 -> "13.0", 12040 -> "12.4" (NVML and the CUDA driver API encode it the same way).
pub fn cuda_version_string(encoded: i32) -> Option<String> {
    (encoded > 0).then(|| format!("{}.{}", encoded / 1000, (encoded % 1000) / 10))
}

/// The NVML error's variant name ("DriverNotLoaded", "LibloadingError", ...), for rules.
pub fn error_name(e: &NvmlError) -> String {
    let debug = format!("{e:?}");
    let end = debug.find(['(', ' ', '{']).unwrap_or(debug.len());
    debug[..end].to_string()
}

/// Read one GPU; a panic inside nvml-wrapper costs this GPU's details, not the others'.
fn read_gpu_guarded(ctx: &ProbeContext, nvml: &Nvml, index: u32) -> Gpu {
    catch_unwind(AssertUnwindSafe(|| read_gpu(ctx, nvml, index))).unwrap_or_else(|payload| {
        let mut gpu = Gpu {
            index,
            ..Gpu::default()
        };
        let message = super::runner::panic_message(payload);
        gpu.errors.insert("panic".to_string(), message);
        gpu
    })
}

/// Per-field results: a value, `None` for "not supported here", or `None` plus an entry in
/// `errors` for anything else.
struct Fields {
    errors: BTreeMap<String, String>,
}

impl Fields {
    fn take<T>(&mut self, field: &str, result: Result<T, NvmlError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(NvmlError::NotSupported) => None,
            Err(e) => {
                self.errors
                    .insert(field.to_string(), format!("{}: {e}", error_name(&e)));
                None
            }
        }
    }
}

fn read_gpu(ctx: &ProbeContext, nvml: &Nvml, index: u32) -> Gpu {
    let mut gpu = Gpu {
        index,
        ..Gpu::default()
    };
    let mut f = Fields {
        errors: BTreeMap::new(),
    };
    let device = match nvml.device_by_index(index) {
        Ok(d) => d,
        Err(e) => {
            // GpuLost, NoPermission, InsufficientPower...: the GPU is there but unusable.
            f.take("device", Err::<(), _>(e));
            gpu.errors = f.errors;
            return gpu;
        }
    };
    gpu.name = f.take("name", device.name()).unwrap_or_default();
    gpu.uuid = f.take("uuid", device.uuid()).unwrap_or_default();
    gpu.pci_bus_id = f
        .take("pci_bus_id", device.pci_info())
        .map(|p| normalize_bus_id(&p.bus_id))
        .unwrap_or_default();
    gpu.serial = f
        .take("serial", device.serial())
        .filter(|s| !s.trim().is_empty());
    if let Some(cc) = f.take("compute_capability", device.cuda_compute_capability()) {
        gpu.cc_major = u32::try_from(cc.major).unwrap_or(0);
        gpu.cc_minor = u32::try_from(cc.minor).unwrap_or(0);
        gpu.compute_capability = format!("{}.{}", gpu.cc_major, gpu.cc_minor);
    }
    gpu.architecture = architecture_name(device.architecture(), &mut f);
    gpu.memory = read_memory(nvml, &device, &mut f);
    gpu.persistence_mode = f.take("persistence_mode", device.is_in_persistent_mode());
    gpu.compute_mode = f
        .take("compute_mode", device.compute_mode())
        .map(compute_mode_name);
    // NVML_DEVICE_MIG_ENABLE is 1.
    gpu.mig_enabled = f
        .take("mig_mode", device.mig_mode())
        .map(|m| m.current == 1);
    gpu.ecc = read_ecc(nvml, &device, &mut f);
    gpu.throttle_reasons = f
        .take("throttle_reasons", device.current_throttle_reasons())
        .map(|r| {
            r.iter_names()
                .map(|(name, _)| name.to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default();
    gpu.temperature_c = f.take("temperature_c", device.temperature(TemperatureSensor::Gpu));
    gpu.processes = read_processes(ctx, nvml, &device, &mut f);
    gpu.errors = f.errors;
    gpu
}

/// NVML writes "00000000:00:06.0" (8-digit domain, upper case); /sys and CUDA use
/// "0000:00:06.0". Facts use the /sys form so that every probe's ids compare equal.
pub fn normalize_bus_id(raw: &str) -> String {
    let raw = raw.trim().trim_end_matches('\0');
    let Some((domain, rest)) = raw.split_once(':') else {
        return raw.to_ascii_lowercase();
    };
    // Only the bus:device.function form has a domain in front; keep anything else as it is.
    if !rest.contains(':') {
        return raw.to_ascii_lowercase();
    }
    match u32::from_str_radix(domain, 16) {
        Ok(d) => format!("{d:04x}:{}", rest.to_ascii_lowercase()),
        Err(_) => raw.to_ascii_lowercase(),
    }
}

/// The architecture's usual name. "Unknown" (a GPU newer than this NVML build knows) is left
/// for the knowledge table to fill from the compute capability.
fn architecture_name(result: Result<DeviceArchitecture, NvmlError>, f: &mut Fields) -> String {
    let arch = match result {
        Ok(a) => a,
        Err(NvmlError::UnexpectedVariant(_)) => DeviceArchitecture::Unknown,
        Err(e) => {
            f.take("architecture", Err::<(), _>(e));
            DeviceArchitecture::Unknown
        }
    };
    match arch {
        DeviceArchitecture::Ada => "Ada Lovelace".to_string(),
        other => other.to_string(),
    }
}

fn compute_mode_name(mode: ComputeMode) -> String {
    match mode {
        ComputeMode::Default => "default",
        ComputeMode::ExclusiveThread => "exclusive_thread",
        ComputeMode::Prohibited => "prohibited",
        ComputeMode::ExclusiveProcess => "exclusive_process",
    }
    .to_string()
}

/// Memory through `nvmlDeviceGetMemoryInfo_v2`, or the v1 call on drivers older than R510,
/// which lack the v2 symbol.
fn read_memory(nvml: &Nvml, device: &Device, f: &mut Fields) -> GpuMemory {
    let (total, used, free) = match device.memory_info() {
        Ok(m) => (m.total, m.used, m.free),
        Err(NvmlError::FailedToLoadSymbol(_)) => match memory_info_v1(nvml, device) {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                f.take("memory", Err::<(), _>(e));
                return GpuMemory::default();
            }
            None => {
                f.errors.insert(
                    "memory".into(),
                    "the driver has no nvmlDeviceGetMemoryInfo".into(),
                );
                return GpuMemory::default();
            }
        },
        Err(e) => {
            f.take("memory", Err::<(), _>(e));
            return GpuMemory::default();
        }
    };
    memory_in_mib(total, used, free)
}

/// Layout of NVML's `nvmlMemory_t` (v1).
#[repr(C)]
#[derive(Default)]
struct MemoryV1 {
    total: u64,
    free: u64,
    used: u64,
}

/// (total, used, free) bytes through the v1 call; None when the driver lacks it too.
fn memory_info_v1(nvml: &Nvml, device: &Device) -> Option<Result<(u64, u64, u64), NvmlError>> {
    let func = nvml.lib().nvmlDeviceGetMemoryInfo.as_ref().ok()?;
    let mut mem = MemoryV1::default();
    // SAFETY: the handle comes from this NVML instance and `mem` has nvmlMemory_t's layout.
    let code = unsafe { func(device.handle(), &mut mem as *mut MemoryV1 as *mut _) };
    Some(nvml_wrapper::error::nvml_try(code).map(|()| (mem.total, mem.used, mem.free)))
}

pub fn memory_in_mib(total: u64, used: u64, free: u64) -> GpuMemory {
    let used_percent = if total == 0 {
        0.0
    } else {
        ((used as f64 / total as f64) * 1000.0).round() / 10.0
    };
    GpuMemory {
        total_mib: total / MIB,
        used_mib: used / MIB,
        free_mib: free / MIB,
        used_percent,
    }
}

/// ECC state and the counters that say a GPU's memory is failing. Counters are only read with
/// ECC on: NVML refuses them otherwise, and that refusal is not news.
fn read_ecc(nvml: &Nvml, device: &Device, f: &mut Fields) -> Ecc {
    let mut ecc = Ecc {
        enabled: f
            .take("ecc_enabled", device.is_ecc_enabled())
            .map(|m| m.currently_enabled),
        ..Ecc::default()
    };
    if ecc.enabled == Some(true) {
        let volatile = device.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile);
        ecc.volatile_uncorrected = f.take("ecc_volatile_uncorrected", volatile);
        let aggregate = device.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Aggregate);
        ecc.aggregate_uncorrected = f.take("ecc_aggregate_uncorrected", aggregate);
    }
    // Page retirement is pre-Ampere; newer GPUs answer NotSupported and remap rows instead.
    let single = device.retired_pages(RetirementCause::MultipleSingleBitEccErrors);
    ecc.retired_pages_single_bit = f
        .take("retired_pages_single_bit", single)
        .map(|p| p.len() as u64);
    let double = device.retired_pages(RetirementCause::DoubleBitEccError);
    ecc.retired_pages_double_bit = f
        .take("retired_pages_double_bit", double)
        .map(|p| p.len() as u64);
    ecc.retired_pages_pending = f.take("retired_pages_pending", device.are_pages_pending_retired());
    if let Some(rows) = f.take("remapped_rows", remapped_rows(nvml, device)) {
        ecc.remapped_rows_uncorrectable = Some(rows.uncorrectable);
        ecc.remapping_failed = Some(rows.failed);
        ecc.remapping_pending = Some(rows.pending);
    }
    ecc
}

/// `nvmlDeviceGetRemappedRows` (Ampere and newer), which nvml-wrapper does not wrap:
/// rows remapped for uncorrectable errors, and whether a remapping failed or waits for a reset.
struct RemappedRows {
    uncorrectable: u64,
    failed: bool,
    pending: bool,
}

fn remapped_rows(nvml: &Nvml, device: &Device) -> Result<RemappedRows, NvmlError> {
    let func = match nvml.lib().nvmlDeviceGetRemappedRows.as_ref() {
        Ok(func) => func,
        Err(e) => return Err(NvmlError::FailedToLoadSymbol(e.to_string())),
    };
    let (mut corrected, mut uncorrected, mut pending, mut failure) = (0u32, 0u32, 0u32, 0u32);
    // SAFETY: the handle comes from this NVML instance; the four outputs are plain c_uints.
    let code = unsafe {
        func(
            device.handle(),
            &mut corrected,
            &mut uncorrected,
            &mut pending,
            &mut failure,
        )
    };
    nvml_wrapper::error::nvml_try(code)?;
    Ok(RemappedRows {
        uncorrectable: u64::from(uncorrected),
        failed: failure != 0,
        pending: pending != 0,
    })
}

/// Compute and graphics processes on the GPU, with names from /proc (NVML's own lookup is the
/// fallback: inside a container the host's pids may not be visible in /proc). Drivers before
/// R510 lack the _v3 calls nvml-wrapper uses; that shows as a FailedToLoadSymbol error.
fn read_processes(
    ctx: &ProbeContext,
    nvml: &Nvml,
    device: &Device,
    f: &mut Fields,
) -> Vec<GpuProcess> {
    let lists = [
        ("compute", device.running_compute_processes()),
        ("graphics", device.running_graphics_processes()),
    ];
    let mut out = Vec::new();
    for (kind, result) in lists {
        let list = f
            .take(&format!("{kind}_processes"), result)
            .unwrap_or_default();
        out.extend(list.into_iter().map(|p| process_fact(ctx, nvml, &p, kind)));
    }
    out
}

fn process_fact(ctx: &ProbeContext, nvml: &Nvml, p: &ProcessInfo, kind: &str) -> GpuProcess {
    let used_mib = match p.used_gpu_memory {
        UsedGpuMemory::Used(bytes) => Some(bytes / MIB),
        UsedGpuMemory::Unavailable => None,
    };
    let name = process_name(ctx, p.pid).or_else(|| nvml.sys_process_name(p.pid, 64).ok());
    GpuProcess {
        pid: p.pid,
        name,
        used_mib,
        kind: kind.to_string(),
    }
}

fn process_name(ctx: &ProbeContext, pid: u32) -> Option<String> {
    let comm = std::fs::read_to_string(ctx.sys_path(&format!("/proc/{pid}/comm"))).ok()?;
    let comm = comm.trim();
    (!comm.is_empty()).then(|| comm.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;

    const OPEN_BANNER: &str =
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  \
        Release Build  (dvs-builder@U22-I3-AE18-23-3)  Thu Oct  9 21:02:14 UTC 2025\n\
        GCC version:  gcc version 15.3.0 (GCC)\n";
    const PROPRIETARY_BANNER: &str = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  \
        Sat Aug 19 01:15:15 UTC 2023\nGCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04)\n";

    fn ctx_at(root: &Path, profile: Profile) -> ProbeContext {
        ProbeContext {
            profile,
            env: BTreeMap::new(),
            fs_root: root.to_path_buf(),
        }
    }

    fn write(root: &Path, rel: &str, text: &str) -> PathBuf {
        let path = root.join(rel.trim_start_matches('/'));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn parses_the_open_kernel_module_banner() {
        let km = parse_kernel_module(OPEN_BANNER);
        assert!(km.loaded);
        assert_eq!(km.version.as_deref(), Some("580.159.04"));
        assert_eq!(km.flavor.as_deref(), Some("open"));
        assert!(km
            .banner
            .unwrap()
            .starts_with("NVRM version: NVIDIA UNIX Open Kernel Module"));
    }

    #[test]
    fn parses_the_proprietary_kernel_module_banner() {
        let km = parse_kernel_module(PROPRIETARY_BANNER);
        assert_eq!(km.version.as_deref(), Some("535.104.05"));
        assert_eq!(km.flavor.as_deref(), Some("proprietary"));
        // x86_64 is not a version even though it has digits.
        assert_ne!(km.version.as_deref(), Some("x86_64"));
    }

    #[test]
    fn an_empty_or_odd_version_file_still_means_loaded_without_guessing() {
        let km = parse_kernel_module("");
        assert!(km.loaded);
        assert_eq!(km.version, None);
        let km = parse_kernel_module("something else entirely\n");
        assert_eq!((km.version, km.flavor), (None, None));
    }

    #[test]
    fn reads_the_module_from_the_fixture_root_and_misses_it_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ctx_at(dir.path(), Profile::Quick);
        assert!(!read_kernel_module(&ctx).loaded);
        write(dir.path(), PROC_VERSION, PROPRIETARY_BANNER);
        assert_eq!(
            read_kernel_module(&ctx).version.as_deref(),
            Some("535.104.05")
        );
    }

    #[test]
    fn finds_the_device_nodes_cuda_needs() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "nvidia0",
            "nvidia1",
            "nvidiactl",
            "nvidia-uvm",
            "nvidia-uvm-tools",
            "nvidia-modeset",
        ] {
            write(dir.path(), &format!("/dev/{name}"), "");
        }
        fs::create_dir_all(dir.path().join("dev/nvidia-caps")).unwrap();
        write(dir.path(), "/dev/null", "");
        let nodes = scan_dev_nodes(&ctx_at(dir.path(), Profile::Quick));
        assert!(nodes.nvidiactl && nodes.nvidia_uvm && nodes.nvidia_uvm_tools);
        assert_eq!(nodes.gpus, vec![0, 1]);
        assert!(
            nodes.not_accessible.is_empty(),
            "{:?}",
            nodes.not_accessible
        );
    }

    #[test]
    fn missing_uvm_and_no_dev_folder_are_reported_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        let nodes = scan_dev_nodes(&ctx_at(dir.path(), Profile::Quick));
        assert!(!nodes.nvidiactl && nodes.gpus.is_empty());
        write(dir.path(), "/dev/nvidia0", "");
        write(dir.path(), "/dev/nvidiactl", "");
        let nodes = scan_dev_nodes(&ctx_at(dir.path(), Profile::Quick));
        assert!(nodes.nvidiactl && !nodes.nvidia_uvm && !nodes.nvidia_uvm_tools);
        assert_eq!(nodes.gpus, vec![0]);
    }

    #[cfg(unix)]
    #[test]
    fn a_node_this_user_cannot_open_is_listed() {
        use std::os::unix::fs::PermissionsExt;
        // root may open anything, so the check cannot fail for root; nothing to test then.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let node = write(dir.path(), "/dev/nvidia-uvm", "");
        fs::set_permissions(&node, fs::Permissions::from_mode(0o444)).unwrap();
        let nodes = scan_dev_nodes(&ctx_at(dir.path(), Profile::Quick));
        assert_eq!(nodes.not_accessible, vec!["/dev/nvidia-uvm".to_string()]);
    }

    #[test]
    fn gpu_node_numbers_only_match_nvidia_digits() {
        assert_eq!(gpu_node_number("nvidia12"), Some(12));
        assert_eq!(gpu_node_number("nvidia"), None);
        assert_eq!(gpu_node_number("nvidia-uvm"), None);
        assert_eq!(gpu_node_number("nvidiactl"), None);
    }

    #[test]
    fn mismatch_needs_both_versions_and_a_difference() {
        assert!(versions_mismatch(Some("535.104.05"), Some("550.54.14")));
        assert!(!versions_mismatch(Some("580.159.04"), Some("580.159.04")));
        assert!(!versions_mismatch(None, Some("580.159.04")));
        assert!(!versions_mismatch(Some("580.159.04"), None));
    }

    #[test]
    fn cuda_versions_are_decoded_like_nvidia_smi() {
        assert_eq!(cuda_version_string(13000).as_deref(), Some("13.0"));
        assert_eq!(cuda_version_string(12040).as_deref(), Some("12.4"));
        assert_eq!(cuda_version_string(9020).as_deref(), Some("9.2"));
        assert_eq!(cuda_version_string(0), None);
    }

    #[test]
    fn bus_ids_take_the_sys_form() {
        assert_eq!(normalize_bus_id("00000000:00:06.0"), "0000:00:06.0");
        assert_eq!(normalize_bus_id("00000000:3B:00.0"), "0000:3b:00.0");
        assert_eq!(normalize_bus_id("0000:00:06.0"), "0000:00:06.0");
        assert_eq!(normalize_bus_id("00000001:C1:00.0\0"), "0001:c1:00.0");
        assert_eq!(normalize_bus_id("garbage"), "garbage");
    }

    #[test]
    fn error_names_are_the_variant_names() {
        assert_eq!(error_name(&NvmlError::DriverNotLoaded), "DriverNotLoaded");
        assert_eq!(
            error_name(&NvmlError::LibRmVersionMismatch),
            "LibRmVersionMismatch"
        );
        assert_eq!(
            error_name(&NvmlError::FailedToLoadSymbol("x".into())),
            "FailedToLoadSymbol"
        );
        assert_eq!(
            error_name(&NvmlError::InsufficientSize(Some(3))),
            "InsufficientSize"
        );
    }

    #[test]
    fn memory_is_reported_in_mib_with_a_percentage() {
        let m = memory_in_mib(81559 * MIB, 20390 * MIB, 61169 * MIB);
        assert_eq!((m.total_mib, m.used_mib, m.free_mib), (81559, 20390, 61169));
        assert_eq!(m.used_percent, 25.0);
        assert_eq!(memory_in_mib(0, 0, 0).used_percent, 0.0);
    }

    #[test]
    fn not_supported_is_null_and_other_errors_are_kept() {
        let mut f = Fields {
            errors: BTreeMap::new(),
        };
        assert_eq!(f.take::<u32>("serial", Err(NvmlError::NotSupported)), None);
        assert!(f.errors.is_empty());
        assert_eq!(
            f.take::<u32>("temperature_c", Err(NvmlError::GpuLost)),
            None
        );
        assert!(f.errors["temperature_c"].starts_with("GpuLost: "));
        assert_eq!(f.take("x", Ok(7u32)), Some(7));
    }

    #[test]
    fn quick_profile_without_the_library_is_absent_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), PROC_VERSION, OPEN_BANNER);
        let probed = probe(&ctx_at(dir.path(), Profile::Quick));
        assert_eq!(probed.status, crate::facts::ProbeStatus::Absent);
        let error = probed.error.unwrap();
        assert!(
            error.starts_with("no NVIDIA driver: libnvidia-ml.so.1 not found (searched: "),
            "{error}"
        );
        assert_eq!(probed.data.library, NVML_LIBRARY);
        assert!(!probed.data.library_found);
        assert!(!probed.data.library_search.is_empty());
        // The file facts are filled even when the library is missing.
        assert_eq!(
            probed.data.kernel_module.version.as_deref(),
            Some("580.159.04")
        );
    }

    #[test]
    fn quick_profile_with_the_library_is_ok_without_loading_it() {
        let dir = tempfile::tempdir().unwrap();
        // Not an ELF file: loading it would fail, so Ok proves quick did not try.
        write(
            dir.path(),
            "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
            "not a library",
        );
        write(dir.path(), "/usr/lib64/libnvidia-ml.so.1", "not a library");
        write(dir.path(), "/usr/lib/libnvidia-ml.so.1", "not a library");
        let probed = probe(&ctx_at(dir.path(), Profile::Quick));
        assert_eq!(
            probed.status,
            crate::facts::ProbeStatus::Ok,
            "{:?}",
            probed.error
        );
        assert!(probed.data.library_found);
        assert!(probed
            .data
            .library_path
            .unwrap()
            .ends_with("libnvidia-ml.so.1"));
        assert_eq!(probed.data.init_error, None);
        assert!(probed.data.gpus.is_empty());
    }

    #[test]
    fn standard_profile_with_a_library_that_will_not_load_fails_with_the_error_name() {
        let dir = tempfile::tempdir().unwrap();
        let lib_dir = dir.path().join("lib");
        write(&lib_dir, "libnvidia-ml.so.1", "not a library");
        let mut ctx = ctx_at(dir.path(), Profile::Standard);
        ctx.env
            .insert("LD_LIBRARY_PATH".into(), lib_dir.display().to_string());
        let probed = probe(&ctx);
        assert_eq!(probed.status, crate::facts::ProbeStatus::Failed);
        assert_eq!(probed.data.init_error.as_deref(), Some("LibloadingError"));
        assert!(probed
            .data
            .init_error_text
            .unwrap()
            .contains("libnvidia-ml.so.1"));
    }
}
