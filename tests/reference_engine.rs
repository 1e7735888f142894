//! The reference engine through the real binary: `run_engine_in` re-runs
//! `gpu-doctor __probe llama-engine` (the built executable, via GPU_DOCTOR_EXE) on the
//! synthetic GGUF model that src/gguf writes, with the llama.cpp that llama-cpp-sys-2 built.
//! This machine has no GPU and the default build is CPU-only, so every layer must land on the
//! CPU even when all are requested on the GPU.
#![cfg(feature = "reference-engine")]

use gpu_doctor::gguf::{write_cached, ModelParams};
use gpu_doctor::probe::llama::engine::{
    run_engine_in, EngineOutcome, EngineReport, EngineRequest, LogLine, REQUEST_VAR,
};
use gpu_doctor::probe::{ProbeContext, Profile};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const EXE: &str = env!("CARGO_BIN_EXE_gpu-doctor");
/// Far above what the tiny model takes (well under a second); only a hang would reach it.
const DEADLINE: Duration = Duration::from_secs(120);

/// The environment of this test, with the child executable set to the real binary and a
/// marker that identifies this test's children in /proc.
fn context(marker: &str) -> ProbeContext {
    let mut env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    env.insert("GPU_DOCTOR_EXE".into(), EXE.into());
    env.insert("GPU_DOCTOR_TEST_MARKER".into(), marker.into());
    ProbeContext {
        profile: Profile::Full,
        env,
        fs_root: PathBuf::from("/"),
    }
}

fn request(model: &Path, n_gpu_layers: Vec<i32>) -> EngineRequest {
    EngineRequest {
        model: model.to_path_buf(),
        n_gpu_layers,
        n_ctx: 2048,
        n_batch: 512,
        prompt_tokens: 16,
        gen_tokens: 8,
        warmup_tokens: 0,
        cpu_only_baseline: false,
        all_cores: false,
    }
}

fn tiny_model(dir: &Path) -> (ModelParams, PathBuf) {
    let params = ModelParams::placement();
    let path = write_cached(&params, dir).expect("the synthetic model is written");
    (params, path)
}

fn report(outcome: EngineOutcome) -> EngineReport {
    match outcome {
        EngineOutcome::Ok(report) => report,
        other => panic!("the engine did not report: {other:?}"),
    }
}

fn assigned(log: &[LogLine]) -> Vec<&str> {
    log.iter()
        .map(|l| l.text.as_str())
        .filter(|t| t.contains("assigned to device"))
        .collect()
}

#[test]
fn every_layer_requested_on_the_gpu_runs_on_the_cpu_of_a_cpu_build() {
    let dir = tempfile::tempdir().unwrap();
    let (params, model) = tiny_model(dir.path());
    let report = report(run_engine_in(
        &context("placement"),
        &request(&model, vec![-1, 0]),
        DEADLINE,
    ));

    assert_eq!(report.build, "cpu");
    assert_eq!(report.llama_cpp_sys_version, "0.1.161");
    assert!(!report.supports_gpu_offload);
    assert_eq!(report.backends, ["CPU"]);
    assert!(!report.devices.is_empty());
    for d in &report.devices {
        assert_eq!((d.name.as_str(), d.kind.as_str()), ("CPU", "cpu"), "{d:?}");
        assert_eq!(d.backend, "CPU");
        assert!(d.total_mib > 0, "{d:?}");
    }
    let info = report.system_info.as_deref().unwrap_or_default();
    assert!(info.starts_with("CPU : "), "{info}");
    assert!(
        assigned(&report.init_log).is_empty(),
        "placement belongs to the runs"
    );
    assert!(report.n_threads >= 1);

    assert_eq!(report.runs.len(), 2);
    for (run, n_gpu_layers) in report.runs.iter().zip([-1, 0]) {
        assert_eq!(run.n_gpu_layers, n_gpu_layers);
        assert!(run.loaded, "{:?}", run.error);
        assert_eq!(run.error, None);
        let lines = assigned(&run.log);
        // Layers 0..n_layer and the output layer; printed at DEBUG level.
        assert_eq!(lines.len(), params.n_layer as usize + 1, "{lines:?}");
        assert!(
            lines.iter().all(|l| l.contains("assigned to device CPU")),
            "{lines:?}"
        );
        assert!(run
            .log
            .iter()
            .any(|l| l.level == 1 && l.text.contains("assigned to device")));
        assert!(
            run.log
                .iter()
                .any(|l| l.text.contains("graph splits") || l.text.contains("splits =")),
            "no graph line in {:#?}",
            run.log
        );
        let buffers: Vec<&str> = run.node_buffers.keys().map(String::as_str).collect();
        assert_eq!(buffers, ["CPU"], "{:?}", run.node_buffers);
        assert!(run.node_buffers["CPU"] > 10, "{:?}", run.node_buffers);
        assert_eq!((run.prompt_tokens, run.gen_tokens), (16, 8));
        assert!(run.load_ms.is_some_and(|ms| ms > 0.0));
        assert!(run.prompt_ms.is_some_and(|ms| ms > 0.0));
        assert!(run.gen_ms.is_some_and(|ms| ms > 0.0));
        assert_eq!(run.logits_finite, Some(true));
    }
}

#[test]
fn the_child_prints_exactly_one_json_report_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let (_, model) = tiny_model(dir.path());
    let json = serde_json::to_string(&request(&model, vec![0])).unwrap();
    let out = Command::new(EXE)
        .args(["__probe", "llama-engine"])
        .env(REQUEST_VAR, json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let report: EngineReport = serde_json::from_str(&stdout).unwrap();
    assert!(report.runs[0].loaded);
}

#[test]
fn a_child_without_a_request_says_what_it_needs() {
    let out = Command::new(EXE)
        .args(["__probe", "llama-engine"])
        .env_remove(REQUEST_VAR)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(REQUEST_VAR), "{stderr}");
}

#[test]
fn a_missing_model_is_a_failed_load_with_llama_cpp_words_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-model.gguf");
    let report = report(run_engine_in(
        &context("missing"),
        &request(&missing, vec![-1, 0]),
        DEADLINE,
    ));
    assert_eq!(report.runs.len(), 2);
    for run in &report.runs {
        assert!(!run.loaded);
        let error = run.error.as_deref().unwrap_or_default();
        assert!(
            error.starts_with("llama_model_load_from_file failed: ")
                && error.contains("failed to open GGUF file")
                && error.contains("no-such-model.gguf"),
            "{error}"
        );
        assert!(run.log.iter().any(|l| l.level == 4), "{:?}", run.log);
        assert_eq!(run.prompt_ms, None);
        assert!(run.node_buffers.is_empty());
    }
}

#[test]
fn a_corrupt_model_is_a_failed_load_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let (_, model) = tiny_model(dir.path());
    // The real model cut in half: the header parses, the tensor data is not all there.
    let bytes = std::fs::read(&model).unwrap();
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    // And a file that is not GGUF at all.
    let text = dir.path().join("text.gguf");
    std::fs::write(&text, "this is not a model\n".repeat(100)).unwrap();
    for (file, words) in [
        (&cut, "data is not within the file bounds"),
        (&text, "invalid magic"),
    ] {
        let report = report(run_engine_in(
            &context("corrupt"),
            &request(file, vec![-1]),
            DEADLINE,
        ));
        let run = &report.runs[0];
        assert!(!run.loaded);
        let error = run.error.as_deref().unwrap_or_default();
        assert!(error.contains(words), "{}: {error}", file.display());
    }
}

#[test]
fn an_abort_in_llama_cpp_is_reported_as_a_crash_naming_the_signal() {
    let dir = tempfile::tempdir().unwrap();
    let (_, model) = tiny_model(dir.path());
    // A prompt longer than n_batch in one llama_decode: llama.cpp's GGML_ASSERT calls abort().
    let mut req = request(&model, vec![0]);
    req.n_batch = 8;
    req.prompt_tokens = 64;
    match run_engine_in(&context("abort"), &req, DEADLINE) {
        EngineOutcome::Crashed {
            detail,
            stderr_tail,
        } => {
            assert!(detail.contains("signal 6 (SIGABRT)"), "{detail}");
            assert!(
                stderr_tail.contains("GGML_ASSERT(n_tokens_all <= cparams.n_batch) failed"),
                "{stderr_tail}"
            );
        }
        other => panic!("expected a crash, got {other:?}"),
    }
}

/// Processes whose environment carries this marker.
fn processes_with_marker(marker: &str) -> Vec<String> {
    let needle = format!("GPU_DOCTOR_TEST_MARKER={marker}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read(e.path().join("environ"))
                .map(|env| env.windows(needle.len()).any(|w| w == needle.as_bytes()))
                .unwrap_or(false)
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn an_overrun_is_timed_out_and_leaves_no_process_behind() {
    let dir = tempfile::tempdir().unwrap();
    let (_, model) = tiny_model(dir.path());
    // Many runs with long generation: seconds of work, stopped after 300 ms.
    let mut req = request(&model, vec![0; 50]);
    req.gen_tokens = 500;
    let marker = format!("timeout-{}", std::process::id());
    match run_engine_in(&context(&marker), &req, Duration::from_millis(300)) {
        EngineOutcome::TimedOut { after, .. } => {
            assert!(after >= Duration::from_millis(300), "{after:?}");
            assert!(after < Duration::from_secs(10), "{after:?}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(processes_with_marker(&marker), Vec::<String>::new());
}

#[test]
fn the_h100_recording_of_a_cpu_build_still_parses_and_shows_no_gpu() {
    // Recorded on the H100 test machine (docs/reference-engine.md): a CPU build sees no GPU
    // even there, and places every layer on the CPU.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/llama/engine-cpu-build-on-h100.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let report: EngineReport = serde_json::from_str(&text).unwrap();
    assert_eq!(report.build, "cpu");
    assert!(!report.supports_gpu_offload);
    assert!(report.devices.iter().all(|d| d.kind == "cpu"));
    assert_eq!(report.runs.len(), 2);
    for run in &report.runs {
        let lines = assigned(&run.log);
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| l.contains("device CPU")));
        assert_eq!(run.node_buffers.keys().collect::<Vec<_>>(), ["CPU"]);
    }
}

/// The speed workload's request: a warm-up batch decoded and forgotten before the timed one,
/// and the baseline kept on the CPU. The timed batch still starts at position 0 (a KV cache
/// left full would fail the decode of a prompt as long as the context), its logits are finite,
/// and the warm-up is not counted in the prompt.
#[test]
fn a_warm_up_is_decoded_and_forgotten_before_the_timed_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let (_, model) = tiny_model(dir.path());
    let mut req = request(&model, vec![-1, 0]);
    // The context holds one prompt (and the observed token after it), not two: decoding it
    // after an uncleared warm-up fails, even with llama.cpp rounding n_ctx up to 512.
    req.n_ctx = 260;
    req.n_batch = 256;
    req.prompt_tokens = 256;
    req.gen_tokens = 0;
    req.warmup_tokens = 256;
    req.cpu_only_baseline = true;
    req.all_cores = true;
    let report = report(run_engine_in(&context("warm-up"), &req, DEADLINE));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    assert_eq!(report.n_threads, (cpus / 2).max(1));
    assert_eq!(report.runs.len(), 2);
    for run in &report.runs {
        assert!(run.loaded, "{:?}", run.error);
        assert_eq!(run.error, None, "{:?}", run.log.last());
        assert_eq!(run.prompt_tokens, 256);
        assert_eq!(run.logits_finite, Some(true));
        assert!(run.prompt_ms.is_some_and(|ms| ms > 0.0));
    }
}

/// Recorded on the H100 (bench/gpu-machine-cuda-engine.sh, `make build-cuda`): the `cuda`
/// build loads its CUDA module, sees the H100, and puts every layer of the tiny model on it;
/// with n_gpu_layers 0 every layer is on the CPU. With CUDA_VISIBLE_DEVICES= the module loads
/// and finds no device: every layer on the CPU, although the request asked for the GPU.
#[test]
fn the_h100_recording_of_the_cuda_build_places_every_layer_on_cuda0() {
    let read = |name: &str| -> EngineReport {
        let path = format!(
            "{}/fixtures/llama/h100/cuda-engine/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let gpu = read("engine-gpu.json");
    assert_eq!(gpu.build, "cuda");
    assert!(gpu.supports_gpu_offload);
    let cuda = gpu
        .backend_modules
        .iter()
        .find(|m| m.name == "cuda")
        .unwrap();
    assert!(cuda.loaded && cuda.error.is_none(), "{cuda:?}");
    assert!(gpu
        .devices
        .iter()
        .any(|d| d.name == "CUDA0" && d.description == "NVIDIA H100 80GB HBM3"));
    let [all, none] = [&gpu.runs[0], &gpu.runs[1]];
    assert_eq!((all.n_gpu_layers, none.n_gpu_layers), (-1, 0));
    assert_eq!(assigned(&all.log).len(), 3);
    assert!(assigned(&all.log)
        .iter()
        .all(|l| l.contains("device CUDA0")));
    assert!(assigned(&none.log).iter().all(|l| l.contains("device CPU")));
    assert!(all.node_buffers.get("CUDA0").is_some_and(|n| *n > 0));

    let hidden = read("engine-hidden.json");
    assert!(!hidden.supports_gpu_offload);
    assert!(hidden.devices.iter().all(|d| d.kind == "cpu"));
    let stack = gpu_doctor::probe::llama::reference::from_report(&hidden, Some(3));
    let placement = stack.placement.unwrap();
    assert_eq!((placement.layers_on_gpu, placement.layers_total), (0, 3));
}
