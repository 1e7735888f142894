//! The reference engine's part of the proof: the doctor's own llama.cpp ([`super::engine`])
//! runs the placement model with every layer asked for on the GPU and then on the CPU, and its
//! report becomes a [`LlamaStack`] read with the same log parser as every other stack.
//!
//! A CPU build of the engine (the default, and CI's) proves nothing about the GPU: it places
//! every layer on the CPU by construction. Its stack says so (`build = "cpu"`), and the rules
//! only judge placement for stacks that could have offloaded.

use super::engine::{self, EngineOutcome, EngineReport, EngineRequest, LogLine};
use super::log::{self, parse_load};
use super::stack::{load_run, set_system_info, speed_result};
use crate::facts::llama::{LlamaStack, LoadRun};
use crate::probe::ProbeContext;
use std::path::Path;
use std::time::{Duration, Instant};

/// The engine's part of a proof: the models and the deadline.
pub struct ReferenceJob<'a> {
    pub placement: &'a Path,
    pub placement_layers: u32,
    /// The speed model (largest that fits is not known here: the engine reports free memory
    /// only after it ran) and its layers.
    pub speed: Option<(&'a Path, u32, String)>,
    pub prompt_tokens: u32,
    pub gen_tokens: u32,
    pub speed_tokens: u32,
    pub deadline: Duration,
}

/// Run the engine and describe what it did.
pub fn prove(ctx: &ProbeContext, job: &ReferenceJob) -> LlamaStack {
    let start = Instant::now();
    let request = EngineRequest {
        model: job.placement.to_path_buf(),
        n_gpu_layers: vec![-1, 0],
        n_ctx: 512,
        n_batch: 512,
        prompt_tokens: job.prompt_tokens,
        gen_tokens: job.gen_tokens,
        warmup_tokens: 0,
        cpu_only_baseline: false,
        all_cores: false,
    };
    let mut stack = match engine::run_engine_in(ctx, &request, job.deadline) {
        EngineOutcome::Ok(report) => from_report(&report, Some(job.placement_layers)),
        other => from_failure(other),
    };
    if let Some((model, layers, words)) = &job.speed {
        if placed_on_gpu(stack.placement.as_ref()) {
            let left = job.deadline.saturating_sub(start.elapsed());
            stack.speed = Some(speed(ctx, model, *layers, words.clone(), job, left));
        }
    }
    stack.kind = "reference".into();
    stack.name = "reference engine".into();
    stack.program = crate::probe::cuda::child_executable(ctx)
        .ok()
        .map(|p| p.display().to_string());
    stack.duration_ms = ms(start.elapsed());
    stack
}

fn placed_on_gpu(run: Option<&LoadRun>) -> bool {
    run.is_some_and(|r| r.layers_on_gpu > 0)
}

/// The speed workload through the engine: the wide model at -1 and 0, prompt only.
fn speed(
    ctx: &ProbeContext,
    model: &Path,
    layers: u32,
    workload: String,
    job: &ReferenceJob,
    deadline: Duration,
) -> crate::facts::llama::SpeedResult {
    let request = EngineRequest {
        model: model.to_path_buf(),
        n_gpu_layers: vec![-1, 0],
        n_ctx: job.speed_tokens + 512,
        n_batch: job.speed_tokens,
        prompt_tokens: job.speed_tokens,
        gen_tokens: 0,
        warmup_tokens: job.speed_tokens,
        cpu_only_baseline: true,
        all_cores: true,
    };
    let (gpu, cpu) = match engine::run_engine_in(ctx, &request, deadline) {
        EngineOutcome::Ok(report) => {
            let stack = from_report(&report, Some(layers));
            (stack.placement, stack.baseline)
        }
        _ => (None, None),
    };
    // The CPU run keeps every operation on the CPU (cpu_only_baseline).
    speed_result(
        workload,
        model.display().to_string(),
        false,
        gpu.as_ref(),
        cpu.as_ref(),
        true,
    )
}

/// The stack of a finished engine run: build, devices, and each run's placement.
pub fn from_report(report: &EngineReport, layers: Option<u32>) -> LlamaStack {
    let init = join(&report.init_log);
    let parsed = log::parse_log(&init);
    let mut stack = LlamaStack {
        status: "ok".into(),
        version: Some(format!("llama-cpp-sys-2 {}", report.llama_cpp_sys_version)),
        build: Some(report.build.clone()),
        supports_gpu_offload: Some(report.supports_gpu_offload),
        devices: report
            .devices
            .iter()
            .map(|d| format!("{} ({}): {}", d.name, d.kind, d.description))
            .collect(),
        gpu_devices: Some(
            report
                .devices
                .iter()
                .filter(|d| d.kind == "gpu" || d.kind == "igpu")
                .count() as u32,
        ),
        cuda_devices_found: parsed.cuda_devices_found,
        cuda_init_error: parsed.cuda_init_error.clone(),
        backend_load_errors: parsed.backend_load_errors.clone(),
        stage: Some("done".into()),
        ..LlamaStack::default()
    };
    set_system_info(&mut stack, report.system_info.clone());
    // A `cuda` build loads CUDA as a module: where from, and the loader's reason when it failed.
    if let Some(cuda) = report.backend_modules.iter().find(|m| m.name == "cuda") {
        stack.cuda_backend_library = Some(cuda.path.clone());
        stack.cuda_backend_load_error = cuda.error.clone();
    }
    let mut loads: Vec<LoadRun> = report
        .runs
        .iter()
        .map(|r| {
            let text = join(&r.log);
            let mut run = load_run(&parse_load(&text), r.n_gpu_layers, layers);
            run.loaded = r.loaded;
            run.error = r.error.clone().or(run.error);
            run.node_buffers = r.node_buffers.clone();
            run.load_ms = r.load_ms.or(run.load_ms);
            run.prompt_tokens = r.prompt_tokens;
            run.prompt_ms = r.prompt_ms;
            run.gen_tokens = r.gen_tokens;
            run.gen_ms = r.gen_ms;
            run
        })
        .collect();
    if !loads.is_empty() {
        stack.placement = Some(loads.remove(0));
    }
    if !loads.is_empty() {
        stack.baseline = Some(loads.remove(0));
    }
    stack
}

/// The stack of an engine that did not report.
fn from_failure(outcome: EngineOutcome) -> LlamaStack {
    let mut stack = LlamaStack::default();
    match outcome {
        EngineOutcome::Ok(_) => {}
        EngineOutcome::NotBuilt => {
            stack.status = "not_run".into();
            stack.error = Some("this gpu-doctor was built without the reference engine".into());
        }
        EngineOutcome::Crashed {
            detail,
            stderr_tail,
        } => {
            stack.status = "crashed".into();
            stack.signal = signal_in(&detail);
            stack.signal_name = stack
                .signal
                .map(|s| crate::probe::process::signal_name(s).to_string());
            stack.error = Some(detail);
            stack.log_tail = log::tail(&stderr_tail, log::TAIL_LINES);
        }
        EngineOutcome::TimedOut { after, stderr_tail } => {
            stack.status = "timed_out".into();
            stack.error = Some(format!("no report within {:.1} s", after.as_secs_f64()));
            stack.log_tail = log::tail(&stderr_tail, log::TAIL_LINES);
        }
        EngineOutcome::Failed(why) => {
            stack.status = "failed".into();
            stack.error = Some(why);
        }
    }
    stack
}

/// The signal number in "killed by signal 6 (SIGABRT)".
fn signal_in(detail: &str) -> Option<i32> {
    let rest = &detail[detail.find("signal ")? + "signal ".len()..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// The engine's log lines as text, one per line.
fn join(lines: &[LogLine]) -> String {
    let mut text = String::new();
    for l in lines {
        text.push_str(&l.text);
        if !l.text.ends_with('\n') {
            text.push('\n');
        }
    }
    text
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::llama::engine::{EngineDevice, EngineRun};

    fn line(level: u32, text: &str) -> LogLine {
        LogLine {
            level,
            text: text.into(),
        }
    }

    #[test]
    fn a_cpu_report_places_every_layer_on_the_cpu() {
        let report = EngineReport {
            build: "cpu".into(),
            llama_cpp_sys_version: "0.1.161".into(),
            system_info: Some("CPU : SSE3 = 1 | AVX2 = 1 | ".into()),
            devices: vec![EngineDevice {
                name: "CPU".into(),
                description: "AMD EPYC".into(),
                kind: "cpu".into(),
                ..EngineDevice::default()
            }],
            runs: vec![EngineRun {
                n_gpu_layers: -1,
                loaded: true,
                log: vec![
                    line(
                        1,
                        "load_tensors: layer   0 assigned to device CPU, is_swa = 0",
                    ),
                    line(
                        1,
                        "load_tensors: layer   1 assigned to device CPU, is_swa = 0",
                    ),
                    line(
                        1,
                        "load_tensors: layer   2 assigned to device CPU, is_swa = 0",
                    ),
                    line(
                        2,
                        "load_tensors:   CPU_Mapped model buffer size =     0.21 MiB",
                    ),
                ],
                node_buffers: [("CPU".to_string(), 71)].into(),
                prompt_tokens: 16,
                prompt_ms: Some(3.0),
                ..EngineRun::default()
            }],
            ..EngineReport::default()
        };
        let stack = from_report(&report, Some(3));
        assert_eq!(stack.build.as_deref(), Some("cpu"));
        assert_eq!(stack.backends, ["CPU"]);
        assert_eq!(stack.gpu_devices, Some(0));
        let p = stack.placement.unwrap();
        assert_eq!(
            (p.layers_on_gpu, p.layers_total, p.layers_requested),
            (0, 3, 3)
        );
        assert_eq!(p.node_buffers["CPU"], 71);
        assert_eq!(p.prompt_ms, Some(3.0));
        assert!(stack.baseline.is_none());
    }

    #[test]
    fn failures_keep_their_kind_and_signal() {
        let s = from_failure(EngineOutcome::Crashed {
            detail: "killed by signal 6 (SIGABRT)".into(),
            stderr_tail: "GGML_ASSERT(n_tokens <= n_batch) failed\n".into(),
        });
        assert_eq!((s.status.as_str(), s.signal), ("crashed", Some(6)));
        assert_eq!(s.signal_name.as_deref(), Some("SIGABRT"));
        assert_eq!(s.log_tail, ["GGML_ASSERT(n_tokens <= n_batch) failed"]);
        assert_eq!(from_failure(EngineOutcome::NotBuilt).status, "not_run");
        assert_eq!(signal_in("exit code 1"), None);
    }

    #[test]
    fn a_cuda_module_that_does_not_load_is_the_stacks_load_error() {
        let why = "libcudart.so.13: cannot open shared object file: No such file or directory";
        let report = EngineReport {
            build: "cuda".into(),
            backend_modules: vec![crate::probe::llama::engine::BackendModule {
                name: "cuda".into(),
                path: "/b/libggml-cuda.so".into(),
                error: Some(why.into()),
                ..Default::default()
            }],
            ..EngineReport::default()
        };
        let stack = from_report(&report, None);
        assert_eq!(
            stack.cuda_backend_library.as_deref(),
            Some("/b/libggml-cuda.so")
        );
        assert_eq!(stack.cuda_backend_load_error.as_deref(), Some(why));
    }
}
