//! The driver and CUDA probes against fake NVIDIA libraries, through the real binary.
//!
//! Each test compiles a stand-in `libnvidia-ml.so.1` or `libcuda.so.1` from `tests/fakes/`
//! with the system C compiler into a temporary folder, runs `gpu-doctor facts --profile
//! standard` with `LD_LIBRARY_PATH` pointing there, and reads the Facts JSON. That covers, on
//! a machine without a GPU, the branches a user with a broken driver hits: library missing,
//! driver not loaded, version mismatch, no device, a driver too old, a library lacking
//! symbols, a `cuInit` that hangs and one that crashes.
#![cfg(target_os = "linux")]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The longest any run may take: the CUDA child's 15 s deadline plus generous slack.
const RUN_LIMIT: Duration = Duration::from_secs(40);

fn fakes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fakes")
}

/// Compile `source` from tests/fakes into `dir/soname` with `-D` flags.
fn build_fake_into(dir: &Path, source: &str, soname: &str, defines: &[&str]) {
    let out = dir.join(soname);
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1"])
        .arg(format!("-Wl,-soname,{soname}"))
        .arg("-o")
        .arg(&out)
        .arg(fakes_dir().join(source))
        .args(defines.iter().map(|d| format!("-D{d}")))
        .status()
        .expect("these tests need a C compiler named `cc` on PATH");
    assert!(
        status.success(),
        "cc failed to build {source} with {defines:?}"
    );
}

fn fake_dir(source: &str, soname: &str, defines: &[&str]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    build_fake_into(dir.path(), source, soname, defines);
    dir
}

struct Run {
    facts: Value,
    elapsed: Duration,
    stderr: String,
}

/// Run `gpu-doctor facts --profile standard` with only `lib_dir` on LD_LIBRARY_PATH, bounded by
/// RUN_LIMIT (a hang fails the test instead of stalling the suite).
fn facts_with(lib_dir: &Path) -> Run {
    facts_with_path(lib_dir.as_os_str())
}

/// As [`facts_with`], with a whole LD_LIBRARY_PATH value.
fn facts_with_path(ld_library_path: &std::ffi::OsStr) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"))
        .args(["facts", "--profile", "standard"])
        .env("LD_LIBRARY_PATH", ld_library_path)
        .env_remove("GPU_DOCTOR_EXE")
        .env_remove("CUDA_VISIBLE_DEVICES")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gpu-doctor");
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            panic!("gpu-doctor facts did not finish within {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = start.elapsed();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "gpu-doctor facts failed: {:?}\nstderr: {stderr}",
        out.status
    );
    let facts = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{stdout}\nstderr: {stderr}"));
    Run {
        facts,
        elapsed,
        stderr,
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn assert_str(run: &Run, pointer: &str, expected: &str) {
    assert_eq!(
        str_at(&run.facts, pointer),
        Some(expected),
        "{pointer} in:\n{:#}\nstderr: {}",
        run.facts.pointer("/probes").unwrap_or(&Value::Null),
        run.stderr
    );
}

/// True when the library was found outside `dir` (a machine with a real driver); the "missing"
/// tests cannot be run there.
fn found_elsewhere(run: &Run, section: &str, dir: &Path) -> bool {
    let key = format!("/{section}/library_path");
    match str_at(&run.facts, &key) {
        Some(path) if !Path::new(path).starts_with(dir) => {
            eprintln!("skipped: a real {section} library is installed at {path}");
            true
        }
        _ => false,
    }
}

#[test]
fn without_a_driver_the_driver_probe_is_absent_and_names_the_library() {
    let empty = tempfile::tempdir().unwrap();
    let run = facts_with(empty.path());
    if found_elsewhere(&run, "driver", empty.path()) {
        return;
    }
    assert_str(&run, "/probes/driver/status", "absent");
    let error = str_at(&run.facts, "/probes/driver/error").unwrap();
    assert!(
        error.starts_with("no NVIDIA driver: libnvidia-ml.so.1 not found (searched: "),
        "{error}"
    );
    assert!(
        error.contains(&format!("LD_LIBRARY_PATH={}", empty.path().display())),
        "{error}"
    );
    assert_eq!(
        run.facts.pointer("/driver/library_found"),
        Some(&Value::Bool(false))
    );
    assert_str(&run, "/driver/library", "libnvidia-ml.so.1");
}

#[test]
fn without_libcuda_the_cuda_probe_is_absent_and_names_the_library() {
    let empty = tempfile::tempdir().unwrap();
    let run = facts_with(empty.path());
    if run.facts.pointer("/cuda/library_found") == Some(&Value::Bool(true)) {
        eprintln!("skipped: a real libcuda.so.1 is installed");
        return;
    }
    assert_str(&run, "/probes/cuda/status", "absent");
    let error = str_at(&run.facts, "/probes/cuda/error").unwrap();
    assert!(
        error.starts_with("libcuda.so.1 not found (searched: "),
        "{error}"
    );
}

#[test]
fn nvml_without_the_kernel_driver_reports_driver_not_loaded() {
    let dir = fake_dir("fake_nvml.c", "libnvidia-ml.so.1", &[]);
    let run = facts_with(dir.path());
    assert_str(&run, "/probes/driver/status", "failed");
    assert_str(&run, "/driver/init_error", "DriverNotLoaded");
    assert_str(
        &run,
        "/driver/init_error_text",
        "NVIDIA driver is not loaded",
    );
    let expected_path = dir.path().join("libnvidia-ml.so.1");
    assert_str(
        &run,
        "/driver/library_path",
        expected_path.to_str().unwrap(),
    );
    assert_eq!(
        run.facts.pointer("/driver/version_mismatch"),
        Some(&Value::Bool(false))
    );
}

#[test]
fn nvml_version_mismatch_is_named_and_flagged() {
    let dir = fake_dir("fake_nvml.c", "libnvidia-ml.so.1", &["FAKE_NVML_MISMATCH"]);
    let run = facts_with(dir.path());
    assert_str(&run, "/probes/driver/status", "failed");
    assert_str(&run, "/driver/init_error", "LibRmVersionMismatch");
    assert_eq!(
        run.facts.pointer("/driver/version_mismatch"),
        Some(&Value::Bool(true))
    );
}

#[test]
fn a_working_nvml_fills_every_gpu_field() {
    let dir = fake_dir("fake_nvml.c", "libnvidia-ml.so.1", &["FAKE_NVML_GPU"]);
    let run = facts_with(dir.path());
    assert_str(&run, "/probes/driver/status", "ok");
    assert_str(&run, "/driver/version", "580.159.04");
    assert_str(&run, "/driver/cuda_version", "13.0");
    assert_eq!(
        run.facts.pointer("/driver/gpu_count"),
        Some(&Value::from(1))
    );
    let gpu = run.facts.pointer("/driver/gpus/0").expect("one GPU");
    assert_eq!(gpu["name"], "NVIDIA H100 80GB HBM3");
    assert_eq!(gpu["uuid"], "GPU-8f2a1c3d-4455-6677-8899-aabbccddeeff");
    assert_eq!(gpu["pci_bus_id"], "0000:00:06.0");
    assert_eq!(gpu["serial"], Value::Null, "NOT_SUPPORTED is null");
    assert_eq!(gpu["compute_capability"], "9.0");
    assert_eq!(
        (gpu["cc_major"].as_u64(), gpu["cc_minor"].as_u64()),
        (Some(9), Some(0))
    );
    assert_eq!(gpu["architecture"], "Hopper");
    assert_eq!(gpu["memory"]["total_mib"], 81559);
    assert_eq!(gpu["memory"]["used_mib"], 20390);
    assert_eq!(gpu["memory"]["used_percent"], 25.0);
    assert_eq!(gpu["persistence_mode"], true);
    assert_eq!(gpu["compute_mode"], "exclusive_process");
    assert_eq!(gpu["mig_enabled"], false);
    assert_eq!(gpu["ecc"]["enabled"], true);
    assert_eq!(gpu["ecc"]["volatile_uncorrected"], 0);
    assert_eq!(gpu["ecc"]["aggregate_uncorrected"], 2);
    assert_eq!(gpu["ecc"]["retired_pages_single_bit"], Value::Null);
    assert_eq!(gpu["ecc"]["remapped_rows_uncorrectable"], 1);
    assert_eq!(gpu["ecc"]["remapping_failed"], false);
    assert_eq!(
        gpu["throttle_reasons"],
        serde_json::json!(["gpu_idle", "sw_power_cap"])
    );
    // The fake does not export nvmlDeviceGetTemperature: an old driver's missing symbol.
    assert_eq!(gpu["temperature_c"], Value::Null);
    let temp_error = gpu["errors"]["temperature_c"].as_str().unwrap_or_default();
    assert!(temp_error.starts_with("FailedToLoadSymbol"), "{temp_error}");
    let errors = gpu["errors"].as_object().unwrap();
    assert_eq!(
        errors.len(),
        1,
        "only the missing symbol is an error: {errors:?}"
    );
    // The one compute process is gpu-doctor itself, named from /proc.
    let process = &gpu["processes"][0];
    assert_eq!(process["kind"], "compute");
    assert_eq!(process["name"], "gpu-doctor");
    assert_eq!(process["used_mib"], 512);
}

#[test]
fn cuda_without_a_device_reports_no_device_by_name() {
    let dir = fake_dir("fake_cuda.c", "libcuda.so.1", &[]);
    let run = facts_with(dir.path());
    assert_str(&run, "/probes/cuda/status", "failed");
    assert_str(&run, "/cuda/init_result", "CUDA_ERROR_NO_DEVICE");
    assert_str(
        &run,
        "/cuda/init_message",
        "no CUDA-capable device is detected",
    );
    assert_str(&run, "/cuda/driver_api_version", "12.8");
    assert_eq!(
        run.facts.pointer("/cuda/library_found"),
        Some(&Value::Bool(true))
    );
    let error = str_at(&run.facts, "/probes/cuda/error").unwrap();
    assert!(error.contains("CUDA_ERROR_NO_DEVICE"), "{error}");
}

#[test]
fn cuda_insufficient_driver_is_named_although_cudarc_lacks_the_code() {
    let dir = fake_dir("fake_cuda.c", "libcuda.so.1", &["FAKE_CUDA_INIT=35"]);
    let run = facts_with(dir.path());
    assert_str(&run, "/cuda/init_result", "CUDA_ERROR_INSUFFICIENT_DRIVER");
    assert_str(&run, "/probes/cuda/status", "failed");
}

#[test]
fn a_libcuda_with_only_cuinit_is_reported_without_panicking() {
    let dir = fake_dir("fake_cuda.c", "libcuda.so.1", &["FAKE_CUDA_ONLY_INIT"]);
    let run = facts_with(dir.path());
    assert_str(&run, "/probes/cuda/status", "failed");
    // No cuGetErrorName in the library: the name comes from gpu-doctor's own table.
    assert_str(&run, "/cuda/init_result", "CUDA_ERROR_NO_DEVICE");
    assert_eq!(run.facts.pointer("/cuda/init_message"), Some(&Value::Null));
    assert_eq!(
        run.facts.pointer("/cuda/driver_api_version"),
        Some(&Value::Null)
    );
    let error = str_at(&run.facts, "/probes/cuda/error").unwrap();
    assert!(!error.contains("panicked"), "{error}");
}

#[test]
fn a_device_whose_context_fails_keeps_its_identity_and_the_error() {
    let dir = fake_dir("fake_cuda.c", "libcuda.so.1", &["FAKE_CUDA_DEVICE"]);
    let run = facts_with(dir.path());
    assert_str(&run, "/probes/cuda/status", "ok");
    assert_str(&run, "/cuda/init_result", "CUDA_SUCCESS");
    assert_eq!(
        run.facts.pointer("/cuda/device_count"),
        Some(&Value::from(1))
    );
    let device = run.facts.pointer("/cuda/devices/0").expect("one device");
    assert_eq!(device["name"], "NVIDIA H100 80GB HBM3");
    assert_eq!(device["uuid"], "GPU-8f2a1c3d-4455-6677-8899-aabbccddeeff");
    assert_eq!(device["pci_bus_id"], "0000:00:06.0");
    assert_eq!(device["compute_capability"], "9.0");
    assert_eq!(device["total_mib"], 81559);
    assert_eq!(device["context_ok"], false);
    assert_eq!(
        device["context_error"],
        "CUDA_ERROR_OUT_OF_MEMORY (out of memory)"
    );
    assert_eq!(
        device["kernel"],
        Value::Null,
        "no kernel check in the standard profile"
    );
}

#[test]
fn a_hanging_cuinit_times_out_and_the_command_still_finishes() {
    let dir = fake_dir("fake_cuda.c", "libcuda.so.1", &["FAKE_CUDA_HANG"]);
    let run = facts_with(dir.path());
    assert_str(&run, "/probes/cuda/status", "timed_out");
    let error = str_at(&run.facts, "/probes/cuda/error").unwrap();
    assert!(error.contains("did not finish within 15 s"), "{error}");
    // The child's deadline is 15 s; the whole command must end soon after, not at RUN_LIMIT.
    assert!(
        run.elapsed < Duration::from_secs(25),
        "took {:?}",
        run.elapsed
    );
}

#[test]
fn a_crashing_cuinit_fails_the_probe_with_the_signal_and_the_command_completes() {
    let dir = fake_dir("fake_cuda.c", "libcuda.so.1", &["FAKE_CUDA_SEGV"]);
    let run = facts_with(dir.path());
    assert_str(&run, "/probes/cuda/status", "failed");
    let error = str_at(&run.facts, "/probes/cuda/error").unwrap();
    assert!(
        error.starts_with("the CUDA probe crashed: killed by signal 11 (SIGSEGV)"),
        "{error}"
    );
    // The other probes still reported.
    assert!(run.facts.pointer("/probes/driver/status").is_some());
}

#[test]
fn both_fakes_together_give_consistent_bus_ids_and_uuids() {
    let dir = tempfile::tempdir().unwrap();
    build_fake_into(
        dir.path(),
        "fake_nvml.c",
        "libnvidia-ml.so.1",
        &["FAKE_NVML_GPU"],
    );
    build_fake_into(
        dir.path(),
        "fake_cuda.c",
        "libcuda.so.1",
        &["FAKE_CUDA_DEVICE"],
    );
    let run = facts_with(dir.path());
    let nvml_gpu = run.facts.pointer("/driver/gpus/0").expect("an NVML GPU");
    let cuda_device = run.facts.pointer("/cuda/devices/0").expect("a CUDA device");
    assert_eq!(nvml_gpu["pci_bus_id"], cuda_device["pci_bus_id"]);
    assert_eq!(nvml_gpu["uuid"], cuda_device["uuid"]);
}

#[test]
fn a_stub_libcuda_so_earlier_on_the_path_does_not_hide_the_driver() {
    // The toolkit's stubs folder holds libcuda.so (answering CUDA_ERROR_STUB_LIBRARY); programs
    // ask for libcuda.so.1, which here is the "driver" in the second folder.
    let stubs = fake_dir("fake_cuda.c", "libcuda.so", &["FAKE_CUDA_INIT=34"]);
    let driver = fake_dir("fake_cuda.c", "libcuda.so.1", &[]);
    let path = std::env::join_paths([stubs.path(), driver.path()]).unwrap();
    let run = facts_with_path(&path);
    assert_str(&run, "/cuda/init_result", "CUDA_ERROR_NO_DEVICE");
    // The private alias folder is gone once the probe has finished.
    let leftovers = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("gpu-doctor-cuda-")
        })
        .filter(|e| e.path().join("libcuda.so").exists())
        .filter(|e| {
            std::fs::read_link(e.path().join("libcuda.so"))
                .is_ok_and(|t| t.starts_with(driver.path()))
        })
        .count();
    assert_eq!(leftovers, 0);
}
