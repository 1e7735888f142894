//! Facts of the llama.cpp offload proof (full profile): where a model's layers really went in
//! each llama.cpp stack on the machine, read from that stack's own log.
//!
//! The proof runs a tiny synthetic model with every layer asked for on the GPU through each
//! stack: the doctor's reference engine, every environment's llama-cpp-python, and llama.cpp
//! binaries. One [`LlamaStack`] per stack records how the run ended and, per load of the model
//! ([`LoadRun`]), the device of every layer, the buffers on each device, and the lines of the log
//! that show it. The `offloaded k/N layers to GPU` line is kept apart (`claimed_*`): llama.cpp
//! computes it from the request, not from where the layers went, so it is never trusted alone.
//! Where the placement proof put layers on a GPU, a speed workload that a working GPU must win
//! compares prompt processing on the GPU and on the CPU ([`SpeedResult`]).
//!
//! Counts derived from the log (`layers_on_gpu`, `gpu_buffers`, `judged`) are computed by the
//! probe, once, so that rule conditions stay short.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `offload` section: every llama.cpp stack the proof ran, and what it ran.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct OffloadFacts {
    /// The synthetic model whose layer placement is proved; null when none could be written.
    pub placement_model: Option<ProofModel>,
    /// The wider synthetic models offered for the speed workload (each stack takes the largest
    /// that fits its GPU's free memory).
    pub speed_models: Vec<ProofModel>,
    /// Each stack, in order: the reference engine, each environment's llama-cpp-python, each
    /// llama.cpp binary.
    pub stacks: Vec<LlamaStack>,
    /// What the project's configuration says about llama.cpp.
    pub config: LlamaConfig,
    /// Problems of the proof itself (the model could not be written, ...).
    pub errors: Vec<String>,
}

/// A synthetic model written for the proof.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ProofModel {
    pub path: String,
    pub n_layer: u32,
    /// Layers llama.cpp places: the repeating layers plus the output layer (n_layer + 1).
    pub layers: u32,
    pub n_embd: u32,
    /// Bytes of tensor data.
    pub tensor_bytes: u64,
    /// "random" (small weights from a fixed seed) or "zeros" (a sparse file: every matrix is
    /// zero, norms are one; it computes exactly as much as random weights do).
    pub weights: String,
    /// How long writing it took (0 when a valid copy was already cached).
    pub write_ms: f64,
    pub cached: bool,
}

/// `[llama]` of gpu-doctor.toml, or `[tool.gpu-doctor.llama]` of pyproject.toml.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct LlamaConfig {
    /// The file the settings came from.
    pub source: Option<String>,
    /// `model`: the user's own GGUF model, used for the speed workload.
    pub model: Option<String>,
    /// `binaries`: llama.cpp programs to check besides those on PATH.
    pub binaries: Vec<String>,
    /// `commands`: the commands that run llama.cpp in this project.
    pub commands: Vec<ConfigCommand>,
    /// Commands that offload nothing (n_gpu_layers 0, set or left at the default), as
    /// "COMMAND (WHERE)", for messages.
    pub zero_layer_commands: Vec<String>,
    pub errors: Vec<String>,
}

/// One command named in the configuration, and the n_gpu_layers it uses.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ConfigCommand {
    pub command: String,
    /// The n_gpu_layers it sets (-ngl, --n-gpu-layers, n_gpu_layers=); null when unknown.
    pub n_gpu_layers: Option<i64>,
    /// Where that was seen: "argument --n-gpu-layers 0", "serve.py:12: n_gpu_layers=0",
    /// "serve.py:8: Llama(...) without n_gpu_layers (llama-cpp-python's default is 0)".
    pub n_gpu_layers_source: Option<String>,
    /// n_gpu_layers is 0, given or left at llama-cpp-python's default: nothing is offloaded.
    pub offloads_nothing: bool,
}

/// One llama.cpp stack and what the proof saw it do.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct LlamaStack {
    /// "reference" (the doctor's own llama.cpp), "llama-cpp-python", "llama-bench",
    /// "llama-cli" or "llama-server".
    pub kind: String,
    /// How messages name it: "reference engine", "llama-cpp-python in .venv",
    /// "llama-bench (/usr/local/bin/llama-bench)".
    pub name: String,
    /// The Python environment, for llama-cpp-python.
    pub environment: Option<String>,
    /// The interpreter or program that ran.
    pub program: Option<String>,
    pub version: Option<String>,
    /// For the reference engine: "cpu" or "cuda", the backends it was built with.
    pub build: Option<String>,
    /// ok (it ran to the end), crashed (killed by a signal), timed_out, failed (it ended
    /// without finishing), not_run (with `error` saying why).
    pub status: String,
    pub error: Option<String>,
    /// The signal that killed it, when it crashed: 11 and "SIGSEGV".
    pub signal: Option<i32>,
    pub signal_name: Option<String>,
    /// The step it had reached: "import", "placement.load", "placement.decode",
    /// "baseline.load", "speed.gpu", "speed.cpu", "done".
    pub stage: Option<String>,
    pub duration_ms: f64,
    /// llama_print_system_info() (or the log's system_info line).
    pub system_info: Option<String>,
    /// Backends compiled in, from system_info: "CUDA", "CPU".
    pub backends: Vec<String>,
    /// CUDA architectures compiled in, from system_info's ARCHS ("900" -> "9.0").
    pub cuda_archs: Vec<String>,
    pub supports_gpu_offload: Option<bool>,
    /// The ggml device registry: "CUDA0 (gpu): NVIDIA H100 80GB HBM3", "CPU (cpu): ...".
    pub devices: Vec<String>,
    /// GPU devices in the registry; null when it could not be read.
    pub gpu_devices: Option<u32>,
    /// `ggml_cuda_init: found N CUDA devices`; null when CUDA did not say.
    pub cuda_devices_found: Option<u32>,
    /// `ggml_cuda_init: failed to initialize CUDA: ...`, the reason.
    pub cuda_init_error: Option<String>,
    /// `load_backend: failed to load PATH: REASON` lines.
    pub backend_load_errors: Vec<String>,
    /// A CUDA backend library among the stack's files (libggml-cuda.so, ggml-cuda.dll).
    pub cuda_backend_library: Option<String>,
    /// What the dynamic loader said when that library was loaded on its own; null when it
    /// loaded or was not tried.
    pub cuda_backend_load_error: Option<String>,
    /// The load with every layer asked for on the GPU (n_gpu_layers -1; llama-bench -ngl 99).
    pub placement: Option<LoadRun>,
    /// The same model with n_gpu_layers 0, on the CPU.
    pub baseline: Option<LoadRun>,
    /// The speed workload, when the placement put layers on a GPU.
    pub speed: Option<SpeedResult>,
    /// `--list-devices` of a llama.cpp binary, one device a line.
    pub listed_devices: Vec<String>,
    /// The last lines of the log (bounded): where a crash happened.
    pub log_tail: Vec<String>,
}

/// One load of a model, as its log tells it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct LoadRun {
    /// n_gpu_layers asked for (-1: all).
    pub n_gpu_layers: i32,
    /// Layers asked to be on a GPU: all of them for -1 or a count at least `layers_total`.
    pub layers_requested: u32,
    pub loaded: bool,
    pub error: Option<String>,
    /// Layers llama.cpp placed (n_layer + 1, the last being the output layer); 0 when unknown.
    pub layers_total: u32,
    /// The device of each layer by index, from `load_tensors: layer N assigned to device X`.
    pub layer_devices: Vec<String>,
    /// Layers on a device that is not the CPU.
    pub layers_on_gpu: u32,
    /// How `layers_on_gpu` is known: "layer lines" (one line per layer, the proof),
    /// "offload line and GPU buffers" (old logs: the claim, backed by memory on a GPU),
    /// "offload line without GPU buffers" (a claim that nothing backs: taken as 0),
    /// "no placement lines" (taken as 0).
    pub layers_source: String,
    /// `llama_prepare_model_devices: using device ...`: the GPUs the model may use. None
    /// means the model has no GPU device at all.
    pub devices_used: Vec<String>,
    /// `offloaded k/N layers to GPU` as printed. Computed from n_gpu_layers, not from where the
    /// layers went: never trusted alone.
    pub claimed_offloaded: Option<u32>,
    pub claimed_total: Option<u32>,
    /// Weight buffers by buffer type (`CUDA0 model buffer size`, `CPU_Mapped ...`).
    pub model_buffers: Vec<BufferSize>,
    pub kv_buffers: Vec<BufferSize>,
    pub compute_buffers: Vec<BufferSize>,
    /// Names of the buffers above that live in GPU memory.
    pub gpu_buffers: Vec<String>,
    /// `VRAM used` of 2023 logs, in MiB.
    pub vram_used_mib: Option<f64>,
    pub graph_nodes: Option<u32>,
    /// Graph splits (of prompt processing where two are given): more than 1 with a GPU means
    /// some operations ran elsewhere.
    pub graph_splits: Option<u32>,
    /// CUDA errors in the log ("no kernel image is available for execution on the device").
    pub cuda_errors: Vec<String>,
    /// Graph nodes per buffer seen by the reference engine's eval callback ({"CPU": 71}).
    pub node_buffers: BTreeMap<String, u32>,
    /// Which llama.cpp log format the lines are in: "2025" (`is_swa`), "early-2025",
    /// "2024" (`llm_load_tensors`), "2023" (`[cublas]`, `VRAM used`).
    pub log_format: Option<String>,
    pub load_ms: Option<f64>,
    pub prompt_tokens: u32,
    pub prompt_ms: Option<f64>,
    pub gen_tokens: u32,
    pub gen_ms: Option<f64>,
    /// The log lines a finding quotes: placement, buffers, devices, errors.
    pub evidence: Vec<String>,
}

/// A buffer llama.cpp allocated, by its buffer-type name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct BufferSize {
    /// "CUDA0", "CPU_Mapped", "CUDA_Host".
    pub name: String,
    pub mib: f64,
    /// In GPU memory (not CPU, not pinned host memory).
    pub gpu: bool,
}

/// Prompt processing of a long batch, all layers on the GPU against all on the CPU.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct SpeedResult {
    /// What ran, in words.
    pub workload: String,
    /// The model file.
    pub model: String,
    /// The user's own model (from the configuration), not a synthetic one.
    pub user_model: bool,
    /// Tokens of the GPU's batch.
    pub prompt_tokens: u32,
    /// Tokens of the CPU's batch (shorter: its rate per token does not grow with the batch).
    pub cpu_prompt_tokens: u32,
    pub gpu_ms: Option<f64>,
    pub cpu_ms: Option<f64>,
    pub gpu_tokens_per_s: Option<f64>,
    pub cpu_tokens_per_s: Option<f64>,
    /// gpu_tokens_per_s / cpu_tokens_per_s.
    pub gpu_speedup: Option<f64>,
    /// Layers the GPU run put on a GPU, of `layers_total`.
    pub gpu_layers_on_gpu: u32,
    pub layers_total: u32,
    /// The CPU run kept large matrix products off the GPU (op_offload off); false when this
    /// llama-cpp-python could not be told to, so the GPU may have helped it.
    pub cpu_pure: bool,
    /// Both runs finished, the GPU run had every layer on a GPU and the CPU run none: the
    /// comparison is fair to judge.
    pub judged: bool,
    /// Why it is not judged.
    pub not_judged: Option<String>,
    pub error: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// in words, for reports

impl LoadRun {
    /// "3 of 3 layers on CUDA0" or "0 of 3 layers on a GPU".
    pub fn words(&self) -> String {
        let mut gpus: Vec<&str> = self
            .layer_devices
            .iter()
            .map(String::as_str)
            .filter(|d| !d.starts_with("CPU"))
            .collect();
        gpus.dedup();
        let on = if self.layers_on_gpu > 0 && !gpus.is_empty() {
            gpus.join(", ")
        } else {
            "a GPU".to_string()
        };
        format!(
            "{} of {} layers on {on}",
            self.layers_on_gpu, self.layers_total
        )
    }
}

impl SpeedResult {
    /// "GPU 41234.5 vs CPU 812.3 tokens/s (50.76x)" for a finished comparison.
    pub fn words(&self) -> Option<String> {
        let (g, c) = (self.gpu_tokens_per_s?, self.cpu_tokens_per_s?);
        let ratio = self
            .gpu_speedup
            .map(|r| format!(" ({r}x)"))
            .unwrap_or_default();
        Some(format!(
            "prompt processing: GPU {g} tokens/s ({} tokens) vs CPU {c} tokens/s ({} tokens){ratio}",
            self.prompt_tokens, self.cpu_prompt_tokens
        ))
    }
}

impl LlamaStack {
    /// One line for the report: what the stack is and what the proof saw.
    pub fn summary(&self) -> String {
        let version = self
            .version
            .as_deref()
            .map(|v| format!(" {v}"))
            .unwrap_or_default();
        let who = match (self.kind.as_str(), &self.environment, &self.build) {
            ("reference", _, Some(build)) => format!(
                "{} ({}, {build} build)",
                self.name,
                self.version.as_deref().unwrap_or("llama.cpp")
            ),
            (kind, Some(env), _) => format!("{kind}{version} in {env}"),
            _ => format!("{}{version}", self.name),
        };
        let error = self
            .error
            .as_deref()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("");
        match self.status.as_str() {
            "crashed" => return format!("{who}: crashed, {error}"),
            "timed_out" => return format!("{who}: timed out, {error}"),
            "failed" => return format!("{who}: failed, {error}"),
            "not_run" => return format!("{who}: not run ({error})"),
            _ => {}
        }
        let mut line = match &self.placement {
            Some(p) if p.loaded => format!("{who}: {}", p.words()),
            Some(p) => format!(
                "{who}: the test model did not load ({})",
                p.error.as_deref().unwrap_or("no reason given")
            ),
            None if !self.listed_devices.is_empty() => {
                format!("{who}: lists {}", self.listed_devices.join("; "))
            }
            None => format!("{who}: lists no GPU device"),
        };
        if let Some(words) = self.speed.as_ref().and_then(SpeedResult::words) {
            line.push_str("; ");
            line.push_str(&words);
        }
        line
    }
}

impl OffloadFacts {
    /// The report's headline: "llama.cpp offload: 1 of 3 llama.cpp stacks put every layer on
    /// a GPU". A reference engine built for the CPU cannot, and is not counted.
    pub fn headline(&self) -> String {
        let could: Vec<&LlamaStack> = self
            .stacks
            .iter()
            .filter(|s| !(s.kind == "reference" && s.build.as_deref() != Some("cuda")))
            .collect();
        if could.is_empty() {
            return "llama.cpp offload: no llama.cpp here could use a GPU (only gpu-doctor's own, a CPU build)".to_string();
        }
        let proved = could
            .iter()
            .filter(|s| {
                s.placement.as_ref().is_some_and(|p| {
                    p.loaded && p.layers_total > 0 && p.layers_on_gpu == p.layers_total
                })
            })
            .count();
        let n = could.len();
        format!(
            "llama.cpp offload: {proved} of {n} llama.cpp stack{} put every layer on a GPU",
            if n == 1 { "" } else { "s" }
        )
    }

    /// One line per stack.
    pub fn stack_lines(&self) -> Vec<String> {
        self.stacks.iter().map(LlamaStack::summary).collect()
    }
}
