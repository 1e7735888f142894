//! From a parsed log to the facts of one load ([`LoadRun`]) and of one stack's speed workload
//! ([`SpeedResult`]): how many layers really went to a GPU, and how we know.
//!
//! Shared by every stack (reference engine, llama-cpp-python, llama-bench), so that the same
//! log says the same thing whoever printed it.

use super::log::ParsedLoad;
use crate::facts::llama::{LlamaStack, LoadRun, SpeedResult};
use crate::probe::python::live::parse_system_info;

/// How `layers_on_gpu` was known (see [`LoadRun::layers_source`]).
pub const BY_LAYER_LINES: &str = "layer lines";
pub const BY_CLAIM_AND_BUFFERS: &str = "offload line and GPU buffers";
pub const BY_UNBACKED_CLAIM: &str = "offload line without GPU buffers";
pub const NO_PLACEMENT_LINES: &str = "no placement lines";

/// The facts of one load. `n_gpu_layers` is what was asked; `model_layers` the layers the
/// model has (n_layer + 1) when known from the file, for logs that do not say.
pub fn load_run(p: &ParsedLoad, n_gpu_layers: i32, model_layers: Option<u32>) -> LoadRun {
    let layers_total = p.layers_total().or(model_layers).unwrap_or(0);
    let layers_requested = requested(n_gpu_layers, layers_total);
    let (layers_on_gpu, source) = layers_on_gpu(p);
    let mut run = LoadRun {
        n_gpu_layers,
        layers_requested,
        layers_total,
        layer_devices: p.layer_devices.values().cloned().collect(),
        layers_on_gpu: layers_on_gpu.min(layers_total.max(layers_on_gpu)),
        layers_source: source.to_string(),
        devices_used: p.devices_used.clone(),
        claimed_offloaded: p.claimed.map(|(k, _)| k).or(p.cublas_offloading),
        claimed_total: p.claimed.map(|(_, n)| n),
        model_buffers: p.model_buffers.clone(),
        kv_buffers: p.kv_buffers.clone(),
        compute_buffers: p.compute_buffers.clone(),
        gpu_buffers: p.gpu_buffers(),
        vram_used_mib: p.vram_used_mib,
        graph_nodes: p.graph_nodes,
        graph_splits: p.graph_splits,
        cuda_errors: p.cuda_errors.clone(),
        log_format: p.format.map(str::to_string),
        load_ms: p.load_ms,
        evidence: p.quoted(),
        error: p.load_error.clone(),
        ..LoadRun::default()
    };
    if let Some((ms, n)) = p.prompt {
        run.prompt_ms = Some(ms);
        run.prompt_tokens = n;
    }
    if let Some((ms, n)) = p.eval {
        run.gen_ms = Some(ms);
        run.gen_tokens = n;
    }
    run
}

/// Layers asked to be on a GPU: all for a negative n_gpu_layers, else at most all.
pub fn requested(n_gpu_layers: i32, layers_total: u32) -> u32 {
    match u32::try_from(n_gpu_layers) {
        Ok(n) => n.min(layers_total),
        Err(_) => layers_total,
    }
}

/// Layers on a GPU and the source of that number. The per-layer lines decide when present;
/// otherwise the `offloaded` claim counts only when memory on a GPU backs it.
fn layers_on_gpu(p: &ParsedLoad) -> (u32, &'static str) {
    if !p.layer_devices.is_empty() {
        return (p.layers_on_gpu_by_lines(), BY_LAYER_LINES);
    }
    let claim = p.claimed.map(|(k, _)| k).or(p.cublas_offloading);
    match claim {
        Some(k) if p.has_gpu_memory() => (k, BY_CLAIM_AND_BUFFERS),
        Some(_) => (0, BY_UNBACKED_CLAIM),
        None => (0, NO_PLACEMENT_LINES),
    }
}

/// Fill a stack's build facts from llama_print_system_info(): compiled backends and CUDA
/// architectures.
pub fn set_system_info(stack: &mut LlamaStack, info: Option<String>) {
    let Some(info) = info.filter(|i| !i.trim().is_empty()) else {
        return;
    };
    let parsed = parse_system_info(&info);
    stack.backends = parsed.backends;
    stack.cuda_archs = parsed.cuda_archs;
    stack.system_info = Some(info);
}

/// The speed workload's facts from its two loads. Judged only when both finished, the GPU run
/// had every layer on a GPU, and the CPU run had none.
pub fn speed_result(
    workload: String,
    model: String,
    user_model: bool,
    gpu: Option<&LoadRun>,
    cpu: Option<&LoadRun>,
    cpu_pure: bool,
) -> SpeedResult {
    let tps = |r: &LoadRun| {
        r.prompt_ms
            .filter(|ms| *ms > 0.0)
            .map(|ms| f64::from(r.prompt_tokens) * 1000.0 / ms)
    };
    let mut out = SpeedResult {
        workload,
        model,
        user_model,
        cpu_pure,
        prompt_tokens: gpu.map_or(0, |r| r.prompt_tokens),
        cpu_prompt_tokens: cpu.map_or(0, |r| r.prompt_tokens),
        gpu_ms: gpu.and_then(|r| r.prompt_ms),
        cpu_ms: cpu.and_then(|r| r.prompt_ms),
        gpu_tokens_per_s: gpu.and_then(tps).map(round1),
        cpu_tokens_per_s: cpu.and_then(tps).map(round1),
        gpu_layers_on_gpu: gpu.map_or(0, |r| r.layers_on_gpu),
        layers_total: gpu.or(cpu).map_or(0, |r| r.layers_total),
        ..SpeedResult::default()
    };
    if let (Some(g), Some(c)) = (out.gpu_tokens_per_s, out.cpu_tokens_per_s) {
        if c > 0.0 {
            out.gpu_speedup = Some((g / c * 100.0).round() / 100.0);
        }
    }
    out.not_judged = why_not_judged(&out, gpu, cpu);
    out.judged = out.not_judged.is_none();
    out
}

fn why_not_judged(
    out: &SpeedResult,
    gpu: Option<&LoadRun>,
    cpu: Option<&LoadRun>,
) -> Option<String> {
    let Some(gpu) = gpu else {
        return Some("the GPU run did not happen".into());
    };
    let Some(cpu) = cpu else {
        return Some("the CPU run did not happen".into());
    };
    if !gpu.loaded || out.gpu_tokens_per_s.is_none() {
        return Some(format!(
            "the GPU run did not finish{}",
            gpu.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ));
    }
    if !cpu.loaded || out.cpu_tokens_per_s.is_none() {
        return Some(format!(
            "the CPU run did not finish{}",
            cpu.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ));
    }
    if gpu.layers_total == 0 || gpu.layers_on_gpu < gpu.layers_total {
        return Some(format!(
            "the GPU run had {} of {} layers on a GPU",
            gpu.layers_on_gpu, gpu.layers_total
        ));
    }
    if cpu.layers_on_gpu > 0 {
        return Some(format!(
            "the CPU run had {} layers on a GPU",
            cpu.layers_on_gpu
        ));
    }
    None
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::super::log::parse_load;
    use super::*;

    #[test]
    fn per_layer_lines_beat_the_claim() {
        // The trap: the claim is computed from n_gpu_layers; the layers went to the CPU.
        let p = parse_load(
            "load_tensors: layer   0 assigned to device CPU, is_swa = 0\n\
             load_tensors: layer   1 assigned to device CPU, is_swa = 0\n\
             load_tensors: layer   2 assigned to device CPU, is_swa = 0\n\
             load_tensors: offloaded 3/3 layers to GPU\n\
             load_tensors:   CPU_Mapped model buffer size =     2.26 MiB\n",
        );
        let run = load_run(&p, -1, None);
        assert_eq!((run.layers_on_gpu, run.layers_total), (0, 3));
        assert_eq!(run.layers_requested, 3);
        assert_eq!(run.claimed_offloaded, Some(3));
        assert_eq!(run.layers_source, BY_LAYER_LINES);
        assert_eq!(run.words(), "0 of 3 layers on a GPU");
        assert!(run.gpu_buffers.is_empty());
        assert!(run.evidence[0].contains("layer   0 assigned to device CPU"));
    }

    #[test]
    fn a_claim_counts_only_with_gpu_memory_behind_it() {
        let backed = parse_load(
            "llm_load_tensors: offloaded 33/33 layers to GPU\nllm_load_tensors:      CUDA0 buffer size =  3820.94 MiB\n",
        );
        let run = load_run(&backed, -1, None);
        assert_eq!((run.layers_on_gpu, run.layers_total), (33, 33));
        assert_eq!(run.layers_source, BY_CLAIM_AND_BUFFERS);
        let bare = parse_load("llm_load_tensors: offloaded 33/33 layers to GPU\n");
        let run = load_run(&bare, -1, None);
        assert_eq!(run.layers_on_gpu, 0);
        assert_eq!(run.layers_source, BY_UNBACKED_CLAIM);
        let nothing = load_run(&parse_load(""), 99, Some(3));
        assert_eq!((nothing.layers_total, nothing.layers_requested), (3, 3));
        assert_eq!(nothing.layers_source, NO_PLACEMENT_LINES);
    }

    #[test]
    fn requested_layers() {
        assert_eq!(requested(-1, 3), 3);
        assert_eq!(requested(99, 3), 3);
        assert_eq!(requested(2, 3), 2);
        assert_eq!(requested(0, 3), 0);
    }

    fn run(layers_on_gpu: u32, ms: Option<f64>) -> LoadRun {
        LoadRun {
            loaded: true,
            layers_total: 3,
            layers_on_gpu,
            prompt_tokens: 512,
            prompt_ms: ms,
            ..LoadRun::default()
        }
    }

    #[test]
    fn speed_is_judged_only_on_a_fair_pair() {
        let s = speed_result(
            "w".into(),
            "m".into(),
            false,
            Some(&run(3, Some(10.0))),
            Some(&run(0, Some(1000.0))),
            true,
        );
        assert!(s.judged, "{:?}", s.not_judged);
        assert_eq!(s.gpu_tokens_per_s, Some(51200.0));
        assert_eq!(s.cpu_tokens_per_s, Some(512.0));
        assert_eq!(s.gpu_speedup, Some(100.0));
        let partial = speed_result(
            "w".into(),
            "m".into(),
            false,
            Some(&run(2, Some(10.0))),
            Some(&run(0, Some(1000.0))),
            true,
        );
        assert!(!partial.judged);
        assert_eq!(
            partial.not_judged.as_deref(),
            Some("the GPU run had 2 of 3 layers on a GPU")
        );
        let unfinished = speed_result(
            "w".into(),
            "m".into(),
            false,
            Some(&run(3, None)),
            Some(&run(0, Some(1.0))),
            true,
        );
        assert!(!unfinished.judged);
        let none = speed_result("w".into(), "m".into(), false, None, None, true);
        assert!(!none.judged);
    }
}
