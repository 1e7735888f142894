//! The CUDA driver API probe: does `cuInit` work, which devices does CUDA see, can it make a
//! context on each, and (full profile) does a real kernel run and give the right answer.
//!
//! A broken `libcuda` can segfault or hang inside `cuInit`, and cudarc panics when a library or
//! symbol is missing, so the driver is never called in the doctor's own process. [`probe`] finds
//! `libcuda.so.1` the way the dynamic loader would (reading files only), then re-runs the doctor
//! as `gpu-doctor __probe cuda --profile P` under a deadline ([`super::process::run`]). That child
//! runs [`child_main`], which prints one [`ChildReport`] as JSON on its standard output; a crash,
//! a hang or garbage becomes a failed or timed-out probe with the end of the child's stderr.
//!
//! In the child, cudarc is only used after `is_culib_present()` says the library loads, every
//! step runs inside `catch_unwind`, and the calls whose result codes matter most (`cuInit`,
//! `cuDriverGetVersion`, `cuDeviceGetCount`) are made through the raw symbols with integer
//! results: cudarc's result enum lacks some codes real drivers return (CUDA 13.0's
//! `CUDA_ERROR_INSUFFICIENT_DRIVER` = 35), and an unknown enum value would be undefined
//! behaviour. Error names come from the driver's `cuGetErrorName` when it has one.
//!
//! The child is made to load the very file the parent resolved (see `AliasDir`), so the
//! facts never describe one libcuda while the probe tested another.

use super::{loader, process, ProbeContext, Probed, Profile};
use crate::facts::{CudaFacts, ProbeStatus};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The name programs ask the dynamic loader for (the CUDA runtime, PyTorch, llama.cpp).
#[cfg(not(windows))]
pub const CUDA_LIBRARY: &str = "libcuda.so.1";
#[cfg(windows)]
pub const CUDA_LIBRARY: &str = "nvcuda.dll";

/// Overrides the executable re-run as the child (tests run the real binary this way).
pub const EXE_OVERRIDE_VAR: &str = "GPU_DOCTOR_EXE";
/// Tells the child which file the parent resolved, so that it loads that one first.
const LIBRARY_HINT_VAR: &str = "GPU_DOCTOR_CUDA_LIBRARY";
/// The child's report is small; anything past this is noise from a misbehaving library.
const MAX_CHILD_OUTPUT: usize = 1024 * 1024;
/// Lines of the child's stderr quoted when it fails.
const STDERR_TAIL_LINES: usize = 6;

/// What the child prints: its outcome and the CUDA section of the facts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ChildReport {
    pub status: ProbeStatus,
    pub error: Option<String>,
    pub data: CudaFacts,
    /// The file the driver API was actually loaded from, as the dynamic linker reports it.
    pub library_path: Option<String>,
}

/// How long the child may take: a cuInit plus a context per GPU, or that plus the kernel check.
pub fn child_deadline(profile: Profile) -> Duration {
    match profile {
        Profile::Full => Duration::from_secs(50),
        _ => Duration::from_secs(15),
    }
}

/// Probe the CUDA driver API. The quick profile only says whether the library is there.
pub fn probe(ctx: &ProbeContext) -> Probed<CudaFacts> {
    let mut facts = CudaFacts {
        library_candidates: vec![CUDA_LIBRARY.to_string()],
        ..CudaFacts::default()
    };
    let found = loader::resolve(ctx, CUDA_LIBRARY);
    let Some(library) = found.path else {
        let searched = found.searched.join(", ");
        return Probed::absent(
            facts,
            format!("{CUDA_LIBRARY} not found (searched: {searched})"),
        );
    };
    facts.library_found = true;
    if ctx.profile == Profile::Quick {
        // Initialising the driver costs 0.1-0.2 s and loads foreign code: never in quick.
        return Probed {
            status: ProbeStatus::Skipped,
            error: None,
            data: facts,
        };
    }
    let exe = match child_executable(ctx) {
        Ok(exe) => exe,
        Err(why) => return Probed::failed(facts, why),
    };
    let mut cmd = Command::new(&exe);
    cmd.args(["__probe", "cuda", "--profile", ctx.profile.as_str()])
        .env_clear()
        .envs(crate::probe::child_environment(&ctx.env))
        .env(LIBRARY_HINT_VAR, &library);
    // Kept alive until the child has ended; removed on drop.
    let alias = AliasDir::create(&library);
    if let Some(alias) = &alias {
        cmd.env(
            "LD_LIBRARY_PATH",
            alias.search_path(ctx.var("LD_LIBRARY_PATH")),
        );
    }
    let deadline = process::scaled(child_deadline(ctx.profile));
    match process::run(&mut cmd, deadline, MAX_CHILD_OUTPUT) {
        Ok(out) => interpret_child(&out, facts),
        Err(e) => Probed::failed(
            facts,
            format!("could not start the CUDA probe ({}): {e}", exe.display()),
        ),
    }
}

/// A private folder with `libcuda.so` -> the resolved `libcuda.so.1`, put first on the child's
/// LD_LIBRARY_PATH. cudarc asks the loader for "libcuda.so" before "libcuda.so.1"; without this,
/// a toolkit stub named libcuda.so earlier on the path (a common container mistake that programs
/// asking for libcuda.so.1 never see) would be what the probe tests, instead of the driver.
struct AliasDir(PathBuf);

impl AliasDir {
    #[cfg(unix)]
    fn create(library: &std::path::Path) -> Option<AliasDir> {
        let target = std::fs::canonicalize(library).ok()?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("gpu-doctor-cuda-{}-{nanos}", std::process::id()));
        // create_dir (not _all) fails on an existing path, so nobody else's folder is reused.
        // Recorded so that an interrupt removes it (crate::signals).
        crate::signals::create_temp(&dir, std::fs::create_dir).ok()?;
        let alias = AliasDir(dir);
        std::os::unix::fs::symlink(&target, alias.0.join("libcuda.so")).ok()?;
        Some(alias)
    }

    #[cfg(not(unix))]
    fn create(_library: &std::path::Path) -> Option<AliasDir> {
        None
    }

    /// The child's LD_LIBRARY_PATH: this folder, then the user's.
    fn search_path(&self, user: Option<&str>) -> std::ffi::OsString {
        let mut value = self.0.clone().into_os_string();
        if let Some(rest) = user.filter(|v| !v.is_empty()) {
            value.push(":");
            value.push(rest);
        }
        value
    }
}

impl Drop for AliasDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        crate::signals::forget_temp(&self.0);
    }
}

/// The doctor's own executable, unless `GPU_DOCTOR_EXE` names another. Also used by the
/// reference engine (`probe::llama::engine`), the other probe that re-runs the doctor.
pub(crate) fn child_executable(ctx: &ProbeContext) -> Result<PathBuf, String> {
    if let Some(exe) = ctx.nonempty_var(EXE_OVERRIDE_VAR) {
        return Ok(PathBuf::from(exe));
    }
    std::env::current_exe()
        .map_err(|e| format!("cannot find gpu-doctor's own executable to run a child probe: {e}"))
}

/// Turn what the child did into the probe's outcome. A report on stdout wins, even after a
/// crash at exit (library destructors run after the report was written).
pub fn interpret_child(out: &process::CommandOutput, facts: CudaFacts) -> Probed<CudaFacts> {
    if !out.timed_out {
        if let Some(report) = parse_report(&out.stdout) {
            let mut data = report.data;
            data.library_found = true;
            data.library_candidates = facts.library_candidates;
            data.library_path = report.library_path.or(facts.library_path);
            return Probed {
                status: report.status,
                error: report.error,
                data,
            };
        }
    }
    let tail = stderr_tail(&out.stderr);
    if out.timed_out {
        let why = format!(
            "the CUDA probe did not finish within {:.0} s and was killed (a CUDA driver call hung){tail}",
            out.duration.as_secs_f64()
        );
        return Probed {
            status: ProbeStatus::TimedOut,
            error: Some(why),
            data: facts,
        };
    }
    let why = match out.signal {
        Some(_) => format!("the CUDA probe crashed: {}{tail}", out.describe_end()),
        None => format!(
            "the CUDA probe ended without a report ({}){tail}",
            out.describe_end()
        ),
    };
    Probed::failed(facts, why)
}

/// The child's JSON report: the whole of stdout, or failing that its last line that is one.
pub fn parse_report(stdout: &[u8]) -> Option<ChildReport> {
    parse_child_json(stdout)
}

/// [`parse_report`] for any child's report type (the reference engine's too).
pub(crate) fn parse_child_json<T: serde::de::DeserializeOwned>(stdout: &[u8]) -> Option<T> {
    let text = String::from_utf8_lossy(stdout);
    let text = text.trim();
    if let Ok(report) = serde_json::from_str(text) {
        return Some(report);
    }
    text.lines()
        .rev()
        .map(str::trim)
        .filter(|l| l.starts_with('{'))
        .find_map(|l| serde_json::from_str(l).ok())
}

/// "; stderr: <last lines>" or "" when the child said nothing.
fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    let start = lines.len().saturating_sub(STDERR_TAIL_LINES);
    let mut tail = lines[start..].join(" | ");
    if tail.len() > 1500 {
        let cut = (0..=1500)
            .rev()
            .find(|&i| tail.is_char_boundary(i))
            .unwrap_or(0);
        tail.truncate(cut);
        tail.push_str(" ...");
    }
    format!("; stderr: {tail}")
}

// ---------------------------------------------------------------------------------------------
// The child

/// Entry point of `gpu-doctor __probe cuda --profile P`: probe in this process, print the
/// report as one JSON object on stdout, return the exit code (0 when a report was written).
pub fn child_main(profile: Profile) -> i32 {
    // Libraries may print on stdout; the report must be the only thing there, so the real
    // stdout is set aside and fd 1 points at stderr while the driver runs.
    let report_out = child::take_stdout();
    // Panics are caught and reported; the default hook would only repeat them on stderr.
    std::panic::set_hook(Box::new(|_| {}));
    let report =
        child::guard("the CUDA probe", || child::run(profile)).unwrap_or_else(|why| ChildReport {
            status: ProbeStatus::Failed,
            error: Some(why),
            data: CudaFacts {
                library_found: true,
                ..CudaFacts::default()
            },
            library_path: None,
        });
    match child::write_report(report_out, &report) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("gpu-doctor: could not write the CUDA probe's report: {e}");
            1
        }
    }
}

/// 13000 -> "13.0": the driver API's version encoding (1000 * major + 10 * minor).
pub fn version_string(encoded: i32) -> Option<String> {
    super::driver::cuda_version_string(encoded)
}

/// "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", the form NVML and nvidia-smi print.
pub fn format_uuid(bytes: &[u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "GPU-{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Names for result codes, for a driver without `cuGetErrorName`. The common failures of
/// `cuInit` and context creation; others are shown by number.
pub fn fallback_error_name(code: i32) -> String {
    let name = match code {
        0 => "CUDA_SUCCESS",
        1 => "CUDA_ERROR_INVALID_VALUE",
        2 => "CUDA_ERROR_OUT_OF_MEMORY",
        3 => "CUDA_ERROR_NOT_INITIALIZED",
        4 => "CUDA_ERROR_DEINITIALIZED",
        34 => "CUDA_ERROR_STUB_LIBRARY",
        35 => "CUDA_ERROR_INSUFFICIENT_DRIVER",
        36 => "CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER",
        46 => "CUDA_ERROR_DEVICE_UNAVAILABLE",
        100 => "CUDA_ERROR_NO_DEVICE",
        101 => "CUDA_ERROR_INVALID_DEVICE",
        102 => "CUDA_ERROR_DEVICE_NOT_LICENSED",
        201 => "CUDA_ERROR_INVALID_CONTEXT",
        209 => "CUDA_ERROR_NO_BINARY_FOR_GPU",
        218 => "CUDA_ERROR_INVALID_PTX",
        222 => "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
        304 => "CUDA_ERROR_OPERATING_SYSTEM",
        801 => "CUDA_ERROR_NOT_SUPPORTED",
        802 => "CUDA_ERROR_SYSTEM_NOT_READY",
        803 => "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
        804 => "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE",
        999 => "CUDA_ERROR_UNKNOWN",
        other => return format!("CUresult {other}"),
    };
    name.to_string()
}

/// Also used by the reference engine's child, whose stdout must carry only its report.
#[cfg(feature = "reference-engine")]
pub(crate) use child::take_stdout;

/// The in-process half, run only in the child.
mod child {
    use super::{fallback_error_name, format_uuid, version_string, ChildReport, LIBRARY_HINT_VAR};
    use crate::facts::{CudaDevice, CudaFacts, Nvrtc, ProbeStatus};
    use crate::probe::Profile;
    use cudarc::driver::{result::DriverError, sys, CudaContext};
    use std::ffi::{c_char, c_int, c_uint, CStr};
    use std::io::Write;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::Arc;

    /// Run `f`, turning a panic into an error that says which step panicked.
    pub fn guard<T>(step: &str, f: impl FnOnce() -> T) -> Result<T, String> {
        catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
            format!(
                "{step} panicked: {}",
                crate::probe::runner::panic_message(p)
            )
        })
    }

    /// The whole child probe.
    pub fn run(profile: Profile) -> ChildReport {
        let mut report = ChildReport {
            status: ProbeStatus::Ok,
            data: CudaFacts {
                library_found: true,
                ..CudaFacts::default()
            },
            ..ChildReport::default()
        };
        // NVRTC does not depend on the driver; report it whatever happens to cuInit.
        report.data.nvrtc = nvrtc_facts();
        if let Err(why) = preload_hint() {
            return failed(report, why);
        }
        // SAFETY: only tries to dlopen cudarc's candidate names; never panics (crates.md §2).
        if !unsafe { sys::is_culib_present() } {
            let names = cudarc::get_lib_name_candidates("cuda").join(", ");
            return failed(
                report,
                format!("the CUDA driver library could not be loaded (tried: {names})"),
            );
        }
        report.library_path = loaded_library_path();
        report.data.driver_api_version = raw::driver_version().and_then(version_string);
        let code = match raw::init() {
            Some(code) => code,
            None => return failed(report, "the CUDA driver library has no cuInit".to_string()),
        };
        let (name, message) = (raw::error_name(code), raw::error_string(code));
        report.data.init_result = Some(name.clone());
        report.data.init_message = message.clone();
        if code != 0 {
            let detail = message.map(|m| format!(" ({m})")).unwrap_or_default();
            return failed(report, format!("cuInit failed: {name}{detail}"));
        }
        probe_devices(&mut report, profile);
        report
    }

    fn failed(mut report: ChildReport, why: String) -> ChildReport {
        report.status = ProbeStatus::Failed;
        report.error = Some(why);
        report
    }

    /// Load the exact file the parent resolved before cudarc searches by name, so that (names
    /// matching by soname) the library cudarc gets is the one the facts name.
    fn preload_hint() -> Result<(), String> {
        let Some(path) = std::env::var_os(LIBRARY_HINT_VAR) else {
            return Ok(());
        };
        dl::open_global(std::path::Path::new(&path)).map_err(|e| {
            format!(
                "{} was found but cannot be loaded: {e}",
                path.to_string_lossy()
            )
        })
    }

    /// Where the dynamic linker actually took cuInit from.
    fn loaded_library_path() -> Option<String> {
        let address = guard("finding libcuda", || {
            // SAFETY: culib() is only reached after is_culib_present() returned true.
            unsafe {
                sys::culib()
                    .get::<*const std::ffi::c_void>("cuInit")
                    .ok()
                    .map(|s| *s)
            }
        })
        .ok()??;
        dl::file_of(address)
    }

    /// Device count, then every device, then (full) the kernel check.
    fn probe_devices(report: &mut ChildReport, profile: Profile) {
        let count = match raw::device_count() {
            Ok(n) => n,
            Err(code) => {
                report.status = ProbeStatus::Failed;
                report.error = Some(format!(
                    "cuDeviceGetCount failed: {}",
                    raw::error_name(code)
                ));
                return;
            }
        };
        report.data.device_count = u32::try_from(count).unwrap_or(0);
        let mut contexts = Vec::new();
        for ordinal in 0..report.data.device_count {
            let (device, context) = probe_device(ordinal);
            report.data.devices.push(device);
            contexts.push(context);
        }
        if profile == Profile::Full {
            let mut kernels = super::kernel::KernelRunner::new(report.data.nvrtc.library_found);
            for (device, context) in report.data.devices.iter_mut().zip(&contexts) {
                device.kernel = Some(kernels.check(device, context.as_ref()));
            }
        }
    }

    /// One device's identity, and whether a context can be made on it.
    fn probe_device(ordinal: u32) -> (CudaDevice, Option<Arc<CudaContext>>) {
        let mut device = CudaDevice {
            ordinal,
            ..CudaDevice::default()
        };
        match guard("reading the device", || read_identity(&mut device)) {
            Ok(Ok(())) => {}
            Ok(Err(why)) | Err(why) => {
                device.context_error = Some(why);
                return (device, None);
            }
        }
        match guard("creating a context", || CudaContext::new(ordinal as usize)) {
            Ok(Ok(ctx)) => {
                device.context_ok = true;
                (device, Some(ctx))
            }
            Ok(Err(e)) => {
                device.context_error = Some(describe(e));
                (device, None)
            }
            Err(why) => {
                device.context_error = Some(why);
                (device, None)
            }
        }
    }

    /// Name, UUID, PCI id, compute capability and memory of one ordinal.
    fn read_identity(device: &mut CudaDevice) -> Result<(), String> {
        use cudarc::driver::result::device as dev;
        use sys::CUdevice_attribute::{
            CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR as MAJOR,
            CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR as MINOR,
        };
        let handle = dev::get(device.ordinal as c_int)
            .map_err(|e| format!("cuDeviceGet: {}", describe(e)))?;
        device.name =
            dev::get_name(handle).map_err(|e| format!("cuDeviceGetName: {}", describe(e)))?;
        // Drivers before CUDA 11.4 lack cuDeviceGetUuid_v2; the UUID is then just unknown.
        if raw::has_symbol("cuDeviceGetUuid_v2") {
            device.uuid = dev::get_uuid(handle)
                .ok()
                .map(|u| format_uuid(&u.bytes.map(|b| b as u8)));
        }
        device.pci_bus_id = raw::pci_bus_id(handle);
        // SAFETY: `handle` came from cuDeviceGet.
        let (major, minor) = unsafe {
            (
                dev::get_attribute(handle, MAJOR),
                dev::get_attribute(handle, MINOR),
            )
        };
        if let (Ok(major), Ok(minor)) = (major, minor) {
            device.compute_capability = format!("{major}.{minor}");
        }
        // SAFETY: as above.
        device.total_mib = unsafe { dev::total_mem(handle) }
            .map(|b| b as u64 / (1024 * 1024))
            .unwrap_or(0);
        Ok(())
    }

    /// Whether NVRTC loads (the runtime compiler that PyTorch JIT and CuPy need) and its version.
    fn nvrtc_facts() -> Nvrtc {
        // SAFETY: tries dlopen on cudarc's candidate names; returns false rather than panicking.
        let found = guard("loading NVRTC", || unsafe {
            cudarc::nvrtc::sys::is_culib_present()
        })
        .unwrap_or(false);
        let version = found
            .then(|| {
                guard("nvrtcVersion", || {
                    let (mut major, mut minor) = (0, 0);
                    // SAFETY: two out-pointers to live ints.
                    let code = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
                    (code == cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS)
                        .then(|| format!("{major}.{minor}"))
                })
                .ok()
                .flatten()
            })
            .flatten();
        let library_path = found.then(nvrtc_library_path).flatten();
        Nvrtc {
            library_found: found,
            library_path,
            version,
        }
    }

    /// Where the dynamic linker took nvrtcVersion from.
    fn nvrtc_library_path() -> Option<String> {
        let address = guard("finding libnvrtc", || {
            // SAFETY: culib() is only reached after is_culib_present() returned true.
            unsafe {
                cudarc::nvrtc::sys::culib()
                    .get::<*const std::ffi::c_void>("nvrtcVersion")
                    .ok()
                    .map(|s| *s)
            }
        })
        .ok()??;
        dl::file_of(address)
    }

    /// "CUDA_ERROR_OUT_OF_MEMORY (out of memory)" without DriverError's Display, which calls
    /// cuGetErrorString through cudarc and panics if the driver lacks it.
    pub fn describe(e: DriverError) -> String {
        let code = e.0 as i32;
        let name = format!("{:?}", e.0);
        match raw::error_string(code) {
            Some(text) => format!("{name} ({text})"),
            None => name,
        }
    }

    /// Give the report a stdout of its own; fd 1 then goes to stderr. None when dup fails
    /// (the report then goes to fd 1 as it is).
    pub fn take_stdout() -> Option<std::fs::File> {
        #[cfg(unix)]
        {
            use std::os::fd::FromRawFd;
            let _ = std::io::stdout().flush();
            // SAFETY: dup/dup2 on the standard descriptors; the new fd is owned by the File.
            unsafe {
                let saved = libc::dup(1);
                if saved < 0 {
                    return None;
                }
                libc::dup2(2, 1);
                Some(std::fs::File::from_raw_fd(saved))
            }
        }
        #[cfg(not(unix))]
        {
            None
        }
    }

    pub fn write_report(out: Option<std::fs::File>, report: &ChildReport) -> std::io::Result<()> {
        let json = serde_json::to_string(report).map_err(std::io::Error::other)?;
        match out {
            Some(mut file) => {
                file.write_all(json.as_bytes())?;
                file.write_all(b"\n")?;
                file.flush()
            }
            None => {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(json.as_bytes())?;
                stdout.write_all(b"\n")?;
                stdout.flush()
            }
        }
    }

    /// The driver calls whose integer results must not pass through cudarc's enum.
    mod raw {
        use super::{c_char, c_int, c_uint, fallback_error_name, guard, sys, CStr};

        /// A symbol of the library cudarc loaded, if it has one.
        fn symbol<T: Copy>(name: &str) -> Option<T> {
            // SAFETY: only called after is_culib_present() returned true; T is the symbol's C type.
            guard("looking up a symbol", || unsafe {
                sys::culib().get::<T>(name).ok().map(|s| *s)
            })
            .ok()
            .flatten()
        }

        pub fn has_symbol(name: &str) -> bool {
            symbol::<*const std::ffi::c_void>(name).is_some()
        }

        pub fn init() -> Option<i32> {
            let f = symbol::<unsafe extern "C" fn(c_uint) -> c_int>("cuInit")?;
            // SAFETY: cuInit(0) is the documented first call.
            Some(unsafe { f(0) })
        }

        pub fn driver_version() -> Option<i32> {
            let f = symbol::<unsafe extern "C" fn(*mut c_int) -> c_int>("cuDriverGetVersion")?;
            let mut v = 0;
            // SAFETY: one out-pointer to a live int; works before cuInit.
            (unsafe { f(&mut v) } == 0).then_some(v)
        }

        pub fn device_count() -> Result<i32, i32> {
            let Some(f) = symbol::<unsafe extern "C" fn(*mut c_int) -> c_int>("cuDeviceGetCount")
            else {
                return Err(999);
            };
            let mut n = 0;
            // SAFETY: one out-pointer to a live int.
            match unsafe { f(&mut n) } {
                0 => Ok(n),
                code => Err(code),
            }
        }

        /// "0000:00:06.0" from cuDeviceGetPCIBusId, in the facts' lower-case form.
        pub fn pci_bus_id(device: sys::CUdevice) -> Option<String> {
            let f = symbol::<unsafe extern "C" fn(*mut c_char, c_int, sys::CUdevice) -> c_int>(
                "cuDeviceGetPCIBusId",
            )?;
            let mut buf = [0 as c_char; 64];
            // SAFETY: the buffer's length is passed; the driver writes a NUL-terminated string.
            if unsafe { f(buf.as_mut_ptr(), buf.len() as c_int - 1, device) } != 0 {
                return None;
            }
            // SAFETY: buf is zeroed and the driver wrote at most len-1 bytes, so it ends in NUL.
            let text = unsafe { CStr::from_ptr(buf.as_ptr()) }
                .to_string_lossy()
                .into_owned();
            Some(crate::probe::driver::normalize_bus_id(&text))
        }

        /// The driver's own name for a code, or the fallback table's.
        pub fn error_name(code: i32) -> String {
            string_call("cuGetErrorName", code).unwrap_or_else(|| fallback_error_name(code))
        }

        /// The driver's text for a code, when it has cuGetErrorString.
        pub fn error_string(code: i32) -> Option<String> {
            string_call("cuGetErrorString", code)
        }

        fn string_call(name: &str, code: i32) -> Option<String> {
            let f = symbol::<unsafe extern "C" fn(c_int, *mut *const c_char) -> c_int>(name)?;
            let mut text: *const c_char = std::ptr::null();
            // SAFETY: one out-pointer; the driver points it at a static string or fails.
            if unsafe { f(code, &mut text) } != 0 || text.is_null() {
                return None;
            }
            // SAFETY: non-null and NUL-terminated per the API.
            Some(
                unsafe { CStr::from_ptr(text) }
                    .to_string_lossy()
                    .into_owned(),
            )
        }
    }

    /// dlopen/dladdr, for loading the resolved file and saying where a symbol came from.
    mod dl {
        use std::ffi::{c_void, CStr, CString};
        use std::path::Path;

        #[cfg(unix)]
        pub fn open_global(path: &Path) -> Result<(), String> {
            use std::os::unix::ffi::OsStrExt;
            let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
            // SAFETY: dlopen with a valid C string; the handle is kept for the life of the child.
            let handle =
                unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_LAZY | libc::RTLD_GLOBAL) };
            if handle.is_null() {
                return Err(last_error());
            }
            Ok(())
        }

        #[cfg(not(unix))]
        pub fn open_global(_path: &Path) -> Result<(), String> {
            Ok(())
        }

        #[cfg(unix)]
        fn last_error() -> String {
            // SAFETY: dlerror returns null or a NUL-terminated string valid until the next call.
            let text = unsafe { libc::dlerror() };
            if text.is_null() {
                return "dlopen failed".to_string();
            }
            // SAFETY: non-null, NUL-terminated.
            unsafe { CStr::from_ptr(text) }
                .to_string_lossy()
                .into_owned()
        }

        #[cfg(unix)]
        pub fn file_of(address: *const c_void) -> Option<String> {
            // SAFETY: dladdr only reads the loader's tables; info is a plain C struct.
            let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
            if unsafe { libc::dladdr(address, &mut info) } == 0 || info.dli_fname.is_null() {
                return None;
            }
            // SAFETY: non-null, NUL-terminated path owned by the loader.
            let name = unsafe { CStr::from_ptr(info.dli_fname) }
                .to_string_lossy()
                .into_owned();
            // The loader keeps the name it was opened by; the real file is more useful.
            Some(
                std::fs::canonicalize(&name)
                    .map(|p| p.display().to_string())
                    .unwrap_or(name),
            )
        }

        #[cfg(not(unix))]
        pub fn file_of(_address: *const c_void) -> Option<String> {
            None
        }
    }
}

/// The full profile's kernel check: NVRTC-compile an axpy for the device, run it on 16 Mi
/// floats, compare every element with the host's answer, and time it and the PCIe transfers.
mod kernel {
    use super::child::{describe, guard};
    use crate::facts::{CudaDevice, KernelCheck};
    use cudarc::driver::{sys, CudaContext, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
    use cudarc::nvrtc::{compile_ptx_with_opts, CompileError, CompileOptions, Ptx};
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::Instant;

    const SOURCE: &str = r#"extern "C" __global__ void axpy(float a, const float *x, float *y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
}"#;
    /// 16 Mi elements: 64 MiB per array, enough that a kernel on the CPU by mistake would show.
    pub const ELEMENTS: usize = 1 << 24;
    const A: f32 = 2.0;
    /// Bytes moved each way to measure host<->device bandwidth (page-locked host memory).
    pub const TRANSFER_MIB: usize = 256;

    /// x and y are small halves and integers, so a*x+y is exact in f32 with or without FMA and
    /// the device's answer must equal the host's bit for bit.
    pub fn inputs(i: usize) -> (f32, f32) {
        ((i % 1000) as f32 * 0.5, (i % 7) as f32)
    }

    /// Compiles once per target and runs the check on each device.
    pub struct KernelRunner {
        nvrtc_found: bool,
        compiled: HashMap<String, Result<(Ptx, f64, String), String>>,
    }

    impl KernelRunner {
        pub fn new(nvrtc_found: bool) -> KernelRunner {
            KernelRunner {
                nvrtc_found,
                compiled: HashMap::new(),
            }
        }

        pub fn check(
            &mut self,
            device: &CudaDevice,
            ctx: Option<&Arc<CudaContext>>,
        ) -> KernelCheck {
            let mut check = KernelCheck {
                elements: ELEMENTS as u64,
                ..KernelCheck::default()
            };
            let Some(ctx) = ctx else {
                let why = device.context_error.as_deref().unwrap_or("unknown error");
                check.error = Some(format!(
                    "no kernel was run: no context on this device ({why})"
                ));
                return check;
            };
            if !self.nvrtc_found {
                check.error = Some(
                    "NVRTC (libnvrtc) was not found, so no kernel could be compiled".to_string(),
                );
                return check;
            }
            let arch = format!("compute_{}", device.compute_capability.replace('.', ""));
            let compiled = self
                .compiled
                .entry(arch.clone())
                .or_insert_with(|| compile(&arch))
                .clone();
            let (ptx, compile_ms, target) = match compiled {
                Ok(c) => c,
                Err(why) => {
                    check.error = Some(why);
                    return check;
                }
            };
            check.compiled = true;
            check.compile_ms = Some(compile_ms);
            check.target = Some(target);
            let outcome = guard("the kernel check", || run_kernel(ctx, ptx, &mut check));
            if let Err(why) | Ok(Err(why)) = outcome {
                check.error = Some(why);
                return check;
            }
            let transfer = guard("the bandwidth check", || measure_bandwidth(ctx, &mut check));
            if let Err(why) | Ok(Err(why)) = transfer {
                check.error = Some(format!("bandwidth not measured: {why}"));
            }
            check
        }
    }

    /// PTX for `arch`; when this NVRTC does not know the device's architecture, PTX for its
    /// default one, which the driver compiles forward (as it would for any application).
    fn compile(arch: &str) -> Result<(Ptx, f64, String), String> {
        let first = timed_compile(Some(arch));
        let (result, target) = match first {
            Ok(Err(CompileError::CompileError { nvrtc, .. }))
                if nvrtc.0 == cudarc::nvrtc::sys::nvrtcResult::NVRTC_ERROR_INVALID_OPTION =>
            {
                (
                    timed_compile(None),
                    "NVRTC default (PTX JIT-compiled by the driver)".to_string(),
                )
            }
            other => (other, arch.to_string()),
        };
        match result {
            Ok(Ok((ptx, ms))) => Ok((ptx, ms, target)),
            Ok(Err(e)) => Err(compile_error_text(&e)),
            Err(why) => Err(why),
        }
    }

    fn timed_compile(arch: Option<&str>) -> Result<Result<(Ptx, f64), CompileError>, String> {
        let options = arch
            .map(|a| vec![format!("--gpu-architecture={a}")])
            .unwrap_or_default();
        guard("NVRTC", || {
            let t0 = Instant::now();
            let opts = CompileOptions {
                options,
                ..CompileOptions::default()
            };
            compile_ptx_with_opts(SOURCE, opts).map(|ptx| (ptx, ms_since(t0)))
        })
    }

    fn compile_error_text(e: &CompileError) -> String {
        match e {
            CompileError::CompileError { nvrtc, log, .. } => {
                let log = log.to_string_lossy();
                let log: String = log.trim().chars().take(600).collect();
                format!(
                    "NVRTC could not compile the test kernel: {:?}: {log}",
                    nvrtc.0
                )
            }
            CompileError::CreationError(e) | CompileError::GetLogError(e) => {
                format!("NVRTC failed: {:?}", e.0)
            }
            CompileError::GetPtxError(e) | CompileError::DestroyError(e) => {
                format!("NVRTC failed: {:?}", e.0)
            }
        }
    }

    fn run_kernel(ctx: &Arc<CudaContext>, ptx: Ptx, check: &mut KernelCheck) -> Result<(), String> {
        let module = ctx
            .load_module(ptx)
            .map_err(|e| format!("loading the kernel: {}", describe(e)))?;
        let func = module
            .load_function("axpy")
            .map_err(|e| format!("finding the kernel: {}", describe(e)))?;
        let stream = ctx.default_stream();
        let (x, y): (Vec<f32>, Vec<f32>) = (0..ELEMENTS).map(inputs).unzip();
        let x_dev = stream
            .clone_htod(&x)
            .map_err(|e| format!("copying to the GPU: {}", describe(e)))?;
        let mut y_dev = stream
            .clone_htod(&y)
            .map_err(|e| format!("copying to the GPU: {}", describe(e)))?;
        let n = ELEMENTS as i32;
        let mut launch = stream.launch_builder(&func);
        launch.arg(&A).arg(&x_dev).arg(&mut y_dev).arg(&n);
        launch.record_kernel_launch(sys::CUevent_flags::CU_EVENT_DEFAULT);
        // SAFETY: the arguments match the kernel's signature (float, const float*, float*, int)
        // and both arrays hold n elements.
        let events = unsafe { launch.launch(LaunchConfig::for_num_elems(ELEMENTS as u32)) }
            .map_err(|e| format!("launching the kernel: {}", describe(e)))?;
        stream
            .synchronize()
            .map_err(|e| format!("running the kernel: {}", describe(e)))?;
        check.launched = true;
        if let Some((start, end)) = events {
            check.kernel_ms = start.elapsed_ms(&end).ok().map(|ms| round3(f64::from(ms)));
        }
        let result = stream
            .clone_dtoh(&y_dev)
            .map_err(|e| format!("copying the result back: {}", describe(e)))?;
        verify(&x, &y, &result)?;
        check.verified = true;
        Ok(())
    }

    /// Every element against the host's a*x+y; the error names the first that differs.
    pub fn verify(x: &[f32], y: &[f32], got: &[f32]) -> Result<(), String> {
        if got.len() != x.len() {
            return Err(format!(
                "the GPU returned {} elements, expected {}",
                got.len(),
                x.len()
            ));
        }
        let mut wrong = (0..x.len()).filter(|&i| got[i] != A * x[i] + y[i]);
        let Some(first) = wrong.next() else {
            return Ok(());
        };
        let count = 1 + wrong.count();
        Err(format!(
            "{count} of {} results were wrong; the first at index {first}: got {}, expected {}",
            x.len(),
            got[first],
            A * x[first] + y[first]
        ))
    }

    /// Best of two 256 MiB copies each way, through page-locked host memory (what a data loader
    /// with pinned memory gets; pageable copies are slower and noisier).
    fn measure_bandwidth(ctx: &Arc<CudaContext>, check: &mut KernelCheck) -> Result<(), String> {
        let bytes = TRANSFER_MIB * 1024 * 1024;
        // SAFETY: flags 0 = plain page-locked memory; it is filled below before use.
        let mut host = unsafe { ctx.alloc_pinned_with_flags::<u8>(bytes, 0) }
            .map_err(|e| format!("page-locked host memory: {}", describe(e)))?;
        if let Ok(slice) = host.as_mut_slice() {
            slice.fill(1);
        }
        let stream = ctx.default_stream();
        // SAFETY: the buffer is written by the copies before anything reads it.
        let mut dev: CudaSlice<u8> = unsafe { stream.alloc(bytes) }
            .map_err(|e| format!("device memory: {}", describe(e)))?;
        let h2d = best_of_two(&stream, |s| s.memcpy_htod(&host, &mut dev))?;
        let d2h = best_of_two(&stream, |s| s.memcpy_dtoh(&dev, &mut host))?;
        check.transfer_mib = TRANSFER_MIB as u64;
        check.h2d_gb_per_s = Some(round3(bytes as f64 / h2d / 1e9));
        check.d2h_gb_per_s = Some(round3(bytes as f64 / d2h / 1e9));
        Ok(())
    }

    /// Seconds of the faster of two runs of `copy`, each waited for.
    fn best_of_two(
        stream: &Arc<CudaStream>,
        mut copy: impl FnMut(&Arc<CudaStream>) -> Result<(), cudarc::driver::DriverError>,
    ) -> Result<f64, String> {
        let mut best = f64::INFINITY;
        for _ in 0..2 {
            stream.synchronize().map_err(describe)?;
            let t0 = Instant::now();
            copy(stream).map_err(describe)?;
            stream.synchronize().map_err(describe)?;
            best = best.min(t0.elapsed().as_secs_f64());
        }
        Ok(best.max(1e-9))
    }

    fn ms_since(t0: Instant) -> f64 {
        round3(t0.elapsed().as_secs_f64() * 1000.0)
    }

    fn round3(v: f64) -> f64 {
        (v * 1000.0).round() / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::process::CommandOutput;
    use std::collections::BTreeMap;

    fn output(
        stdout: &str,
        stderr: &str,
        code: Option<i32>,
        signal: Option<i32>,
        timed_out: bool,
    ) -> CommandOutput {
        CommandOutput {
            code,
            signal,
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
            timed_out,
            truncated: false,
            duration: Duration::from_secs(15),
        }
    }

    fn parent_facts() -> CudaFacts {
        CudaFacts {
            library_found: true,
            library_candidates: vec![CUDA_LIBRARY.into()],
            ..CudaFacts::default()
        }
    }

    #[test]
    fn a_report_on_stdout_becomes_the_probe_outcome() {
        let report = ChildReport {
            status: ProbeStatus::Failed,
            error: Some("cuInit failed: CUDA_ERROR_NO_DEVICE".into()),
            data: CudaFacts {
                init_result: Some("CUDA_ERROR_NO_DEVICE".into()),
                ..CudaFacts::default()
            },
            library_path: Some("/usr/lib/libcuda.so.1".into()),
        };
        let json = serde_json::to_string(&report).unwrap();
        let probed = interpret_child(&output(&json, "", Some(0), None, false), parent_facts());
        assert_eq!(probed.status, ProbeStatus::Failed);
        assert_eq!(
            probed.data.init_result.as_deref(),
            Some("CUDA_ERROR_NO_DEVICE")
        );
        assert!(probed.data.library_found);
        assert_eq!(
            probed.data.library_candidates,
            vec![CUDA_LIBRARY.to_string()]
        );
    }

    #[test]
    fn a_crash_names_the_signal_and_quotes_stderr() {
        let probed = interpret_child(
            &output("", "line1\nfatal: boom\n", None, Some(11), false),
            parent_facts(),
        );
        assert_eq!(probed.status, ProbeStatus::Failed);
        let error = probed.error.unwrap();
        assert!(
            error.starts_with("the CUDA probe crashed: killed by signal 11 (SIGSEGV)"),
            "{error}"
        );
        assert!(error.ends_with("stderr: line1 | fatal: boom"), "{error}");
        assert!(probed.data.library_found);
    }

    #[test]
    fn a_timeout_is_timed_out_even_with_partial_output() {
        let probed = interpret_child(
            &output("{\"status\":", "", None, Some(9), true),
            parent_facts(),
        );
        assert_eq!(probed.status, ProbeStatus::TimedOut);
        assert!(probed.error.unwrap().contains("did not finish within 15 s"));
    }

    #[test]
    fn garbage_on_stdout_is_a_failure_with_the_exit_code() {
        let probed = interpret_child(&output("hello\n", "", Some(2), None, false), parent_facts());
        assert_eq!(probed.status, ProbeStatus::Failed);
        assert_eq!(
            probed.error.as_deref(),
            Some("the CUDA probe ended without a report (exit code 2)")
        );
    }

    #[test]
    fn the_report_is_found_after_library_chatter() {
        let text =
            "driver says hi\n{\"status\":\"ok\",\"error\":null,\"data\":{\"device_count\":2}}\n";
        let report = parse_report(text.as_bytes()).unwrap();
        assert_eq!(report.status, ProbeStatus::Ok);
        assert_eq!(report.data.device_count, 2);
        assert!(parse_report(b"").is_none());
        assert!(parse_report(b"{not json").is_none());
    }

    #[test]
    fn stderr_tails_are_short() {
        let long: String = (0..100)
            .map(|i| format!("line {i} {}\n", "x".repeat(50)))
            .collect();
        let tail = stderr_tail(long.as_bytes());
        assert!(tail.len() < 1600);
        assert!(tail.contains("line 99"));
        assert!(!tail.contains("line 93 "));
        assert_eq!(stderr_tail(b"  \n"), "");
    }

    #[test]
    fn uuids_print_like_nvml() {
        let bytes = [
            0x8f, 0x2a, 0x1c, 0x3d, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ];
        assert_eq!(
            format_uuid(&bytes),
            "GPU-8f2a1c3d-4455-6677-8899-aabbccddeeff"
        );
    }

    #[test]
    fn error_names_cover_the_init_failures_cudarc_does_not_know() {
        assert_eq!(fallback_error_name(35), "CUDA_ERROR_INSUFFICIENT_DRIVER");
        assert_eq!(fallback_error_name(100), "CUDA_ERROR_NO_DEVICE");
        assert_eq!(fallback_error_name(34), "CUDA_ERROR_STUB_LIBRARY");
        assert_eq!(fallback_error_name(12345), "CUresult 12345");
    }

    #[test]
    fn the_kernel_inputs_give_exact_answers_and_verify_catches_one_wrong_element() {
        let (x, y): (Vec<f32>, Vec<f32>) = (0..10_000).map(kernel::inputs).unzip();
        let mut got: Vec<f32> = x
            .iter()
            .zip(&y)
            .map(|(x, y)| 2.0f32.mul_add(*x, *y))
            .collect();
        assert_eq!(kernel::verify(&x, &y, &got), Ok(()));
        got[4321] += 1.0;
        let err = kernel::verify(&x, &y, &got).unwrap_err();
        assert!(
            err.starts_with("1 of 10000 results were wrong; the first at index 4321"),
            "{err}"
        );
        assert!(kernel::verify(&x, &y, &got[..5]).is_err());
    }

    #[test]
    fn without_libcuda_the_probe_is_absent_and_says_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ProbeContext {
            profile: Profile::Standard,
            env: BTreeMap::new(),
            fs_root: dir.path().into(),
        };
        let probed = probe(&ctx);
        assert_eq!(probed.status, ProbeStatus::Absent);
        let error = probed.error.unwrap();
        assert!(
            error.starts_with("libcuda.so.1 not found (searched: "),
            "{error}"
        );
        assert_eq!(
            probed.data.library_candidates,
            vec!["libcuda.so.1".to_string()]
        );
        assert!(!probed.data.library_found);
    }

    #[test]
    fn quick_profile_finds_the_library_but_starts_no_child() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("usr/lib/x86_64-linux-gnu");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::write(lib.join("libcuda.so.1"), "").unwrap();
        // An executable that cannot exist: reaching it would fail the probe instead of skipping.
        let env = BTreeMap::from([(
            EXE_OVERRIDE_VAR.to_string(),
            "/nonexistent/gpu-doctor".to_string(),
        )]);
        let ctx = ProbeContext {
            profile: Profile::Quick,
            env,
            fs_root: dir.path().into(),
        };
        let probed = probe(&ctx);
        assert_eq!(probed.status, ProbeStatus::Skipped);
        assert!(probed.data.library_found);
    }

    #[cfg(unix)]
    #[test]
    fn a_child_that_cannot_start_fails_the_probe_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("libcuda.so.1"), "").unwrap();
        let env = BTreeMap::from([
            (
                EXE_OVERRIDE_VAR.to_string(),
                "/nonexistent/gpu-doctor".to_string(),
            ),
            (
                "LD_LIBRARY_PATH".to_string(),
                dir.path().display().to_string(),
            ),
        ]);
        let ctx = ProbeContext {
            profile: Profile::Standard,
            env,
            fs_root: dir.path().into(),
        };
        let probed = probe(&ctx);
        assert_eq!(probed.status, ProbeStatus::Failed);
        assert!(probed.error.unwrap().contains("/nonexistent/gpu-doctor"));
    }
}
