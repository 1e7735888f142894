//! The reference engine: the doctor's own llama.cpp (llama-cpp-sys-2), run in a child process.
//!
//! Interface agreed between the engine and the offload proof (src/probe/llama/mod.rs). The
//! child prints one [`EngineReport`] as JSON; [`run_engine`] starts it under a deadline and
//! turns a crash or an overrun into an [`EngineOutcome`] instead of an error.
//!
//! Why a child: llama.cpp answers some bad input with `GGML_ASSERT` -> `abort()`, and C++
//! exceptions from some of its calls cannot cross into Rust. So the doctor re-runs itself as
//! `gpu-doctor __probe llama-engine` with the request in [`REQUEST_VAR`] (JSON), under
//! [`process::run`]'s deadline and output cap; the in-process half is [`child_main`] and the
//! FFI lives in `engine/child.rs`. The engine reports what llama.cpp did and logged; reading
//! placement out of the log is the offload proof's job. See docs/reference-engine.md.

use crate::probe::{cuda, process, ProbeContext, Profile};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

#[cfg(feature = "reference-engine")]
mod child;
#[cfg(feature = "reference-engine")]
mod logbuf;
#[cfg(feature = "reference-engine")]
mod modules;

/// The llama-cpp-sys-2 version Cargo.toml pins (`=0.1.161`); a test keeps the two equal.
pub const LLAMA_CPP_SYS_VERSION: &str = "0.1.161";
/// Carries the [`EngineRequest`] as JSON from the parent to the child: no temporary file to
/// leave behind when either of them is killed.
pub const REQUEST_VAR: &str = "GPU_DOCTOR_ENGINE_REQUEST";
/// The report of a tiny model is tens of KiB (the DEBUG log included); the cap only stops a
/// runaway child from filling the doctor's memory.
const MAX_CHILD_OUTPUT: usize = 16 << 20;
/// Lines of the child's stderr kept when it fails (llama.cpp prints its assertion there).
const STDERR_TAIL_LINES: usize = 12;
const STDERR_TAIL_BYTES: usize = 4000;

/// What to run: one load + decode per entry of `n_gpu_layers`, in order (e.g. `[-1, 0]`: all
/// layers on the GPU, then the CPU baseline).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineRequest {
    pub model: PathBuf,
    pub n_gpu_layers: Vec<i32>,
    pub n_ctx: u32,
    pub n_batch: u32,
    /// Tokens in the prompt decoded as one batch (prompt processing). Must not exceed
    /// `n_batch`: llama.cpp asserts that, and the child then dies from SIGABRT.
    pub prompt_tokens: u32,
    /// Tokens generated one by one after the prompt.
    pub gen_tokens: u32,
    /// Tokens decoded before the timed prompt and then forgotten (the KV cache is cleared),
    /// so that the timing leaves out first-use costs: cuBLAS choosing its kernels, weights
    /// paged in. Runs with no GPU layers take at most 16. Seen on the H100: without it the
    /// first 512-token batch took 144 ms on the GPU, under a third of its speed.
    #[serde(default)]
    pub warmup_tokens: u32,
    /// Runs with no GPU layers keep every operation on the CPU (llama.cpp's `op_offload`
    /// off). Otherwise a CUDA build copies the weights of large batches to the GPU, and the
    /// "CPU" time is the GPU's: seen on the H100, 59 of 71 graph nodes on CUDA_Host with
    /// n_gpu_layers 0.
    #[serde(default)]
    pub cpu_only_baseline: bool,
    /// Use as many threads as llama-cpp-python does by default (half the logical CPUs), not
    /// the 4 the placement proof needs: on the H100 host (16 CPUs) a CPU baseline on 4 threads
    /// ran at about 1000 tokens/s, on 8 at about 2000-2300.
    #[serde(default)]
    pub all_cores: bool,
}

/// One message of llama.cpp's log, as delivered to `llama_log_set` (level: ggml_log_level,
/// DEBUG=1 INFO=2 WARN=3 ERROR=4 CONT=5), joined into whole lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub level: u32,
    pub text: String,
}

/// A ggml backend device as the engine's registry lists it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EngineDevice {
    /// "CPU", "CUDA0", ...
    pub name: String,
    pub description: String,
    /// "cpu", "gpu", "igpu", "accel" or "meta".
    pub kind: String,
    pub free_mib: u64,
    pub total_mib: u64,
    pub backend: String,
}

/// A backend module the `cuda` build loads at run time (`libggml-cuda.so`, `libggml-cpu.so`:
/// llama.cpp built with GGML_BACKEND_DL) and whether it loaded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendModule {
    /// "cuda" or "cpu".
    pub name: String,
    pub path: String,
    pub loaded: bool,
    /// Why not: the dynamic loader's message (`libcudart.so.13: cannot open shared object
    /// file: No such file or directory`), or that the file is missing.
    pub error: Option<String>,
    /// The backend it registered ("CUDA") and its devices (0 when CUDA found no GPU).
    pub backend: Option<String>,
    pub devices: Option<u32>,
}

/// One load of the model with a given n_gpu_layers and what happened.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EngineRun {
    pub n_gpu_layers: i32,
    /// The model loaded. A later failure (context, decode) keeps this true and sets `error`.
    pub loaded: bool,
    /// llama.cpp's own words when a step failed (its last ERROR log line), else what failed.
    pub error: Option<String>,
    /// The log of this load and decode.
    pub log: Vec<LogLine>,
    /// Graph nodes per buffer name seen by the eval callback during one decode ("CPU": 71).
    /// That decode is one extra token after the timed ones, so the timings are not slowed by
    /// the callback's per-node synchronisation.
    pub node_buffers: BTreeMap<String, u32>,
    pub prompt_tokens: u32,
    pub prompt_ms: Option<f64>,
    pub gen_tokens: u32,
    pub gen_ms: Option<f64>,
    /// Every logit of every decode was finite (None when no decode ran).
    pub logits_finite: Option<bool>,
    /// `llama_model_load_from_file`, whether it succeeded or not.
    #[serde(default)]
    pub load_ms: Option<f64>,
}

/// Everything the child saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EngineReport {
    /// "cpu" or "cuda": the features this gpu-doctor was built with.
    pub build: String,
    pub llama_cpp_sys_version: String,
    pub system_info: Option<String>,
    pub supports_gpu_offload: bool,
    pub backends: Vec<String>,
    pub devices: Vec<EngineDevice>,
    /// Log lines from start-up (backend registration, CUDA init) before any model load.
    pub init_log: Vec<LogLine>,
    pub runs: Vec<EngineRun>,
    /// CPU threads given to llama.cpp for both prompt and generation.
    #[serde(default)]
    pub n_threads: u32,
    /// The backend modules loaded before the registry was listed, in order; empty in a build
    /// whose backends are linked in (the default CPU build).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_modules: Vec<BackendModule>,
}

/// How a run of the child ended.
#[derive(Debug, Clone)]
pub enum EngineOutcome {
    Ok(EngineReport),
    /// This gpu-doctor was built without the reference engine.
    NotBuilt,
    /// The child died from a signal or exited without a report (abort(), SIGSEGV).
    Crashed {
        detail: String,
        stderr_tail: String,
    },
    TimedOut {
        after: Duration,
        stderr_tail: String,
    },
    Failed(String),
}

/// Whether this build has the reference engine (the `reference-engine` feature, on by default).
pub const fn is_built() -> bool {
    cfg!(feature = "reference-engine")
}

/// "cpu" or "cuda": what [`EngineReport::build`] says for this build.
pub const fn build_name() -> &'static str {
    if cfg!(feature = "cuda") {
        "cuda"
    } else {
        "cpu"
    }
}

/// Run the request in a child process (`gpu-doctor __probe llama-engine`) under `deadline`.
pub fn run_engine(request: &EngineRequest, deadline: Duration) -> EngineOutcome {
    run_engine_in(
        &ProbeContext::from_process(Profile::Full),
        request,
        deadline,
    )
}

/// [`run_engine`] with the child's environment (and `GPU_DOCTOR_EXE`) taken from `ctx`.
pub fn run_engine_in(
    ctx: &ProbeContext,
    request: &EngineRequest,
    deadline: Duration,
) -> EngineOutcome {
    if !is_built() {
        return EngineOutcome::NotBuilt;
    }
    let exe = match cuda::child_executable(ctx) {
        Ok(exe) => exe,
        Err(why) => return EngineOutcome::Failed(why),
    };
    let json = match serde_json::to_string(request) {
        Ok(json) => json,
        Err(e) => return EngineOutcome::Failed(format!("cannot encode the engine request: {e}")),
    };
    let mut cmd = Command::new(&exe);
    cmd.args(["__probe", "llama-engine"])
        .env_clear()
        .envs(crate::probe::child_environment(&ctx.env))
        .env(REQUEST_VAR, json)
        // ggml_abort otherwise forks gdb to print a backtrace: slow, and it buries the
        // assertion message under the stderr tail.
        .env("GGML_NO_BACKTRACE", "1");
    match process::run(&mut cmd, deadline, MAX_CHILD_OUTPUT) {
        Ok(out) => interpret(&out),
        Err(e) => EngineOutcome::Failed(format!(
            "could not start the reference engine ({}): {e}",
            exe.display()
        )),
    }
}

/// Turn what the child did into an outcome. A report on stdout wins, even after a crash at
/// exit (llama.cpp's destructors run after the report was written).
pub fn interpret(out: &process::CommandOutput) -> EngineOutcome {
    let stderr_tail = stderr_tail(&out.stderr);
    if out.timed_out {
        return EngineOutcome::TimedOut {
            after: out.duration,
            stderr_tail,
        };
    }
    if let Some(report) = parse_report(&out.stdout) {
        return EngineOutcome::Ok(report);
    }
    let mut detail = match out.signal {
        Some(_) => format!("the reference engine crashed: {}", out.describe_end()),
        None => format!(
            "the reference engine ended without a report ({})",
            out.describe_end()
        ),
    };
    if out.truncated {
        detail.push_str(&format!(
            "; its output passed {} MiB and was cut",
            MAX_CHILD_OUTPUT >> 20
        ));
    }
    EngineOutcome::Crashed {
        detail,
        stderr_tail,
    }
}

/// The child's report: the whole of stdout, or failing that its last line that is one.
pub fn parse_report(stdout: &[u8]) -> Option<EngineReport> {
    cuda::parse_child_json(stdout)
}

/// The last non-empty lines of stderr, joined by newlines, at most [`STDERR_TAIL_BYTES`].
pub fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(STDERR_TAIL_LINES);
    let tail = lines[start..].join("\n");
    if tail.len() <= STDERR_TAIL_BYTES {
        return tail;
    }
    // Keep the end: the last lines say why it died.
    let mut cut = tail.len() - STDERR_TAIL_BYTES;
    while !tail.is_char_boundary(cut) {
        cut += 1;
    }
    format!("...{}", &tail[cut..])
}

/// Entry point of `gpu-doctor __probe llama-engine`: run the request in [`REQUEST_VAR`], print
/// the [`EngineReport`] as one JSON line on stdout; exit code 0 when it was written.
pub fn child_main() -> i32 {
    let request: EngineRequest = match std::env::var(REQUEST_VAR) {
        Ok(json) => match serde_json::from_str(&json) {
            Ok(request) => request,
            Err(e) => {
                eprintln!("gpu-doctor: {REQUEST_VAR} is not an engine request: {e}");
                return 2;
            }
        },
        Err(_) => {
            eprintln!("gpu-doctor: the reference engine needs its request (JSON) in {REQUEST_VAR}");
            return 2;
        }
    };
    run_child(&request)
}

#[cfg(feature = "reference-engine")]
fn run_child(request: &EngineRequest) -> i32 {
    use std::io::Write;
    // Libraries may print on stdout; the report must be the only thing there.
    let report_out = cuda::take_stdout();
    // A panic is reported by the exit code and the message below, not by the default hook.
    std::panic::set_hook(Box::new(|_| {}));
    let report = match std::panic::catch_unwind(|| child::run(request)) {
        Ok(report) => report,
        Err(p) => {
            let why = crate::probe::runner::panic_message(p);
            eprintln!("gpu-doctor: the reference engine panicked: {why}");
            return 70;
        }
    };
    let written = serde_json::to_string(&report)
        .map_err(std::io::Error::other)
        .and_then(|json| match report_out {
            Some(mut file) => writeln!(file, "{json}").and_then(|()| file.flush()),
            None => {
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "{json}").and_then(|()| stdout.flush())
            }
        });
    match written {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("gpu-doctor: could not write the reference engine's report: {e}");
            1
        }
    }
}

#[cfg(not(feature = "reference-engine"))]
fn run_child(_request: &EngineRequest) -> i32 {
    eprintln!(
        "gpu-doctor: this build has no reference engine (built without the `reference-engine` feature)"
    );
    2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(
        code: Option<i32>,
        signal: Option<i32>,
        stdout: &str,
        stderr: &str,
    ) -> process::CommandOutput {
        process::CommandOutput {
            code,
            signal,
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
            timed_out: false,
            truncated: false,
            duration: Duration::from_millis(5),
        }
    }

    #[test]
    fn the_pinned_version_is_the_one_cargo_toml_names() {
        let manifest = include_str!("../../../Cargo.toml");
        let pin = format!("llama-cpp-sys-2 = {{ version = \"={LLAMA_CPP_SYS_VERSION}\"");
        assert!(manifest.contains(&pin), "Cargo.toml does not pin {pin}");
    }

    #[test]
    fn a_report_on_stdout_wins_even_after_a_crash_at_exit() {
        let report = EngineReport {
            build: "cpu".into(),
            ..EngineReport::default()
        };
        let json = serde_json::to_string(&report).unwrap();
        let out = output(None, Some(11), &format!("noise\n{json}\n"), "");
        match interpret(&out) {
            EngineOutcome::Ok(r) => assert_eq!(r.build, "cpu"),
            other => panic!("expected Ok, got {other:?}"),
        }
    }

    #[test]
    fn an_abort_is_a_crash_that_names_the_signal_and_keeps_the_assertion() {
        let stderr =
            "llama-context.cpp:1787: GGML_ASSERT(n_tokens_all <= cparams.n_batch) failed\n";
        match interpret(&output(None, Some(6), "", stderr)) {
            EngineOutcome::Crashed {
                detail,
                stderr_tail,
            } => {
                assert!(detail.contains("SIGABRT"), "{detail}");
                assert!(stderr_tail.contains("GGML_ASSERT"), "{stderr_tail}");
            }
            other => panic!("expected Crashed, got {other:?}"),
        }
    }

    #[test]
    fn an_exit_without_a_report_is_a_crash_with_the_exit_code() {
        match interpret(&output(Some(2), None, "", "bad request\n")) {
            EngineOutcome::Crashed { detail, .. } => {
                assert!(
                    detail.contains("without a report (exit code 2)"),
                    "{detail}"
                )
            }
            other => panic!("expected Crashed, got {other:?}"),
        }
    }

    #[test]
    fn an_overrun_is_timed_out_even_with_partial_output() {
        let mut out = output(None, Some(9), "{\"build\":", "loading\n");
        out.timed_out = true;
        out.duration = Duration::from_millis(1500);
        match interpret(&out) {
            EngineOutcome::TimedOut { after, stderr_tail } => {
                assert_eq!(after, Duration::from_millis(1500));
                assert_eq!(stderr_tail, "loading");
            }
            other => panic!("expected TimedOut, got {other:?}"),
        }
    }

    #[test]
    fn the_stderr_tail_keeps_the_last_lines_and_bytes() {
        let many: String = (0..100).map(|i| format!("line {i}\n\n")).collect();
        let tail = stderr_tail(many.as_bytes());
        assert_eq!(tail.lines().count(), STDERR_TAIL_LINES);
        assert!(tail.ends_with("line 99"));
        let long = format!("{}é\nend\n", "x".repeat(10_000));
        let tail = stderr_tail(long.as_bytes());
        assert!(tail.len() <= STDERR_TAIL_BYTES + 3, "{}", tail.len());
        assert!(tail.starts_with("...") && tail.ends_with("end"));
    }

    #[test]
    fn reports_from_before_the_added_fields_still_parse() {
        let old = r#"{"build":"cpu","llama_cpp_sys_version":"0.1.161","system_info":null,
            "supports_gpu_offload":false,"backends":["CPU"],"devices":[],"init_log":[],
            "runs":[{"n_gpu_layers":0,"loaded":false,"error":"x","log":[],"node_buffers":{},
            "prompt_tokens":0,"prompt_ms":null,"gen_tokens":0,"gen_ms":null,"logits_finite":null}]}"#;
        let report = parse_report(old.as_bytes()).expect("parses");
        assert_eq!(report.n_threads, 0);
        assert_eq!(report.runs[0].load_ms, None);
    }
}
