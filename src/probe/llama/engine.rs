//! The reference engine: the doctor's own llama.cpp (llama-cpp-sys-2), run in a child process.
//!
//! Interface agreed between the engine and the offload proof (src/probe/llama/mod.rs). The
//! child prints one [`EngineReport`] as JSON; [`run_engine`] starts it under a deadline and
//! turns a crash or an overrun into an [`EngineOutcome`] instead of an error.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// What to run: one load + decode per entry of `n_gpu_layers`, in order (e.g. `[-1, 0]`: all
/// layers on the GPU, then the CPU baseline).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineRequest {
    pub model: PathBuf,
    pub n_gpu_layers: Vec<i32>,
    pub n_ctx: u32,
    pub n_batch: u32,
    /// Tokens in the prompt decoded as one batch (prompt processing).
    pub prompt_tokens: u32,
    /// Tokens generated one by one after the prompt.
    pub gen_tokens: u32,
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

/// One load of the model with a given n_gpu_layers and what happened.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EngineRun {
    pub n_gpu_layers: i32,
    pub loaded: bool,
    pub error: Option<String>,
    /// The log of this load and decode.
    pub log: Vec<LogLine>,
    /// Graph nodes per buffer name seen by the eval callback during one decode ("CPU": 71).
    pub node_buffers: BTreeMap<String, u32>,
    pub prompt_tokens: u32,
    pub prompt_ms: Option<f64>,
    pub gen_tokens: u32,
    pub gen_ms: Option<f64>,
    pub logits_finite: Option<bool>,
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

/// Run the request in a child process (`gpu-doctor __probe llama-engine`) under `deadline`.
pub fn run_engine(_request: &EngineRequest, _deadline: Duration) -> EngineOutcome {
    EngineOutcome::NotBuilt
}
