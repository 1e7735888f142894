//! Reading llama.cpp's log: where each layer went, which buffers live on which device, and what
//! went wrong, in every log format llama.cpp has used since 2023.
//!
//! [`parse_log`] is a pure function over the text of a log (it never fails, never panics, and
//! takes time linear in the text; fuzzed). It knows these formats (research notes §1.1, §1.3):
//!
//! | format | placement lines | buffers |
//! |---|---|---|
//! | 2025 (mid-2025 on) | `load_tensors: layer   0 assigned to device CUDA0, is_swa = 0` | `load_tensors:        CUDA0 model buffer size =     2.26 MiB` |
//! | early-2025 | `load_tensors: layer  33 assigned to device CUDA0` | the same |
//! | 2024 | `llm_load_tensors: offloaded 33/33 layers to GPU` only | `llm_load_tensors:      CUDA0 buffer size =  3820.94 MiB` |
//! | 2023 | `llama_model_load_internal: [cublas] offloading 3 layers to GPU`, `llm_load_tensors: offloaded 0/35 layers to GPU` | `[cublas] total VRAM used: 1148 MB`, `llm_load_tensors: VRAM used: 0.00 MB` |
//!
//! The per-layer lines are the proof. `offloaded k/N layers to GPU` is computed from
//! n_gpu_layers alone (llama-model.cpp), so it is recorded as a claim and only believed when a
//! buffer in GPU memory backs it. Lines are matched wherever they sit in a line, so prefixes
//! (`[L2] `, llama-cli's timestamps) do not matter.
//!
//! A log may hold several loads of a model (llama-bench runs one per -ngl value): each load
//! starts at `llama_model_loader: loaded meta data` (GGUF) or `llama_model_load_internal:`'s
//! first line (2023), and everything up to the next one belongs to it. What comes before the
//! first load (backend registration, CUDA initialisation) and the CUDA and backend lines
//! anywhere are kept for the whole log.

use crate::facts::llama::BufferSize;
use std::collections::BTreeMap;

/// Lines longer than this are cut before they are read: no real log line comes near it.
const MAX_LINE: usize = 4096;
/// At most this many lines of a kind are kept (buffers, errors, devices).
const MAX_KEPT: usize = 64;
/// Lines of the log's end kept for crash reports.
pub const TAIL_LINES: usize = 20;
/// Characters kept of each quoted line.
const QUOTE_CHARS: usize = 300;

/// Everything read from one log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedLog {
    /// `ggml_cuda_init: found N CUDA devices` (or `ggml_init_cublas:` in 2024).
    pub cuda_devices_found: Option<u32>,
    /// `  Device 0: NVIDIA H100 80GB HBM3, compute capability 9.0, VMM: yes, ...`.
    pub cuda_device_lines: Vec<String>,
    /// The reason in `ggml_cuda_init: failed to initialize CUDA: REASON`.
    pub cuda_init_error: Option<String>,
    /// `load_backend: loaded CUDA backend from PATH`, as "CUDA backend from PATH".
    pub backends_loaded: Vec<String>,
    /// `load_backend: failed to load PATH: REASON`, as "PATH: REASON".
    pub backend_load_errors: Vec<String>,
    /// The system_info line (`CUDA : ARCHS = 900 | ... | CPU : ...`), without a
    /// `system_info: n_threads = ...` prefix.
    pub system_info: Option<String>,
    /// Each load of a model, in order.
    pub loads: Vec<ParsedLoad>,
    /// The last lines (bounded): where a crash stopped it.
    pub last_lines: Vec<String>,
}

/// One load of a model and the context made on it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedLoad {
    /// `n_layer` from the model's printed metadata.
    pub n_layer: Option<u32>,
    /// Device of each layer by index (`assigned to device X`).
    pub layer_devices: BTreeMap<u32, String>,
    /// `using device CUDA0 (NVIDIA H100 80GB HBM3) (0000:00:06.0) - 80552 MiB free`, the part
    /// after "using device ".
    pub devices_used: Vec<String>,
    /// `offloaded k/N layers to GPU`.
    pub claimed: Option<(u32, u32)>,
    /// `offloading N repeating layers to GPU`.
    pub repeating_offloaded: Option<u32>,
    /// `[cublas] offloading N layers to GPU` (2023).
    pub cublas_offloading: Option<u32>,
    pub model_buffers: Vec<BufferSize>,
    pub kv_buffers: Vec<BufferSize>,
    pub compute_buffers: Vec<BufferSize>,
    /// `VRAM used` (2023), in MiB.
    pub vram_used_mib: Option<f64>,
    pub graph_nodes: Option<u32>,
    pub graph_splits: Option<u32>,
    /// `llama_model_load: error loading model: REASON` and friends.
    pub load_error: Option<String>,
    /// Lines reporting a CUDA error.
    pub cuda_errors: Vec<String>,
    /// "2025", "early-2025", "2024" or "2023".
    pub format: Option<&'static str>,
    /// `load time = X ms`.
    pub load_ms: Option<f64>,
    /// `prompt eval time = X ms / N tokens`.
    pub prompt: Option<(f64, u32)>,
    /// `eval time = X ms / N runs`.
    pub eval: Option<(f64, u32)>,
    /// The lines that show placement and memory, quoted in findings.
    pub evidence: Vec<String>,
    /// The first two per-layer lines and the last one, verbatim.
    pub layer_lines: Vec<String>,
    pub last_layer_line: Option<String>,
}

impl ParsedLoad {
    /// The lines a finding quotes: the first per-layer lines and the last, then the rest of the
    /// evidence (offload summary, devices, weight buffers, errors), in log order.
    pub fn quoted(&self) -> Vec<String> {
        let mut out = self.layer_lines.clone();
        if let Some(last) = &self.last_layer_line {
            let skipped = self.layer_devices.len().saturating_sub(3);
            if skipped > 0 {
                out.push(format!("... ({skipped} more layer lines)"));
            }
            out.push(last.clone());
        }
        out.extend(self.evidence.iter().cloned());
        out
    }

    /// Layers llama.cpp placed: one line per layer when there are such lines, else the total of
    /// the `offloaded k/N` line, else n_layer + 1 from the metadata.
    pub fn layers_total(&self) -> Option<u32> {
        if let Some((&last, _)) = self.layer_devices.iter().next_back() {
            return Some(last.saturating_add(1));
        }
        if let Some((_, total)) = self.claimed {
            return Some(total);
        }
        self.n_layer.map(|n| n.saturating_add(1))
    }

    /// Layers whose device is not the CPU, by the per-layer lines.
    pub fn layers_on_gpu_by_lines(&self) -> u32 {
        self.layer_devices
            .values()
            .filter(|d| is_gpu_device(d))
            .count() as u32
    }

    /// Names of the buffers in GPU memory, in order, without repeats.
    pub fn gpu_buffers(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let all = self
            .model_buffers
            .iter()
            .chain(&self.kv_buffers)
            .chain(&self.compute_buffers);
        for b in all.filter(|b| b.gpu) {
            if !out.contains(&b.name) {
                out.push(b.name.clone());
            }
        }
        out
    }

    /// Some memory on a GPU backs the model: a GPU buffer, or 2023's `VRAM used` above 0.
    pub fn has_gpu_memory(&self) -> bool {
        !self.gpu_buffers().is_empty() || self.vram_used_mib.is_some_and(|v| v > 0.0)
    }
}

/// Parse a whole log. See the module documentation for what is read.
pub fn parse_log(text: &str) -> ParsedLog {
    let mut log = ParsedLog::default();
    let mut current: Option<ParsedLoad> = None;
    for raw in text.lines() {
        let line = bounded_line(raw);
        global_line(line, &mut log);
        if starts_load(line) {
            if let Some(done) = current.take() {
                push_bounded(&mut log.loads, done);
            }
            current = Some(ParsedLoad::default());
        }
        if let Some(load) = current.as_mut() {
            load_line(line, load);
        }
    }
    if let Some(done) = current.take() {
        push_bounded(&mut log.loads, done);
    }
    log.last_lines = tail(text, TAIL_LINES);
    log
}

/// Parse a log known to hold (at most) one load, all of it read as that load: the part of a
/// log between two markers, or the reference engine's log of one run. Also reads a load that
/// failed before `llama_model_loader` said anything (a missing file, a refused format).
pub fn parse_load(text: &str) -> ParsedLoad {
    let mut load = ParsedLoad::default();
    for raw in text.lines() {
        load_line(bounded_line(raw), &mut load);
    }
    load
}

/// Debug chatter that says nothing about where a run stopped: left out of tails.
const CHATTER: &[&str] = &[
    "llama_graph_n_input_tensors",
    "create_tensor: loading tensor",
    "llama_model_loader: - kv",
    "CUDA Graph id",
    "graph_reserve: reserving",
];

/// The last `n` non-blank lines, each bounded, without debug chatter.
pub fn tail(text: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty() && !CHATTER.iter().any(|c| l.contains(c)))
        .collect();
    let from = lines.len().saturating_sub(n);
    lines[from..].iter().map(|l| quote(l)).collect()
}

/// Whether a device or buffer name is GPU memory: not the CPU's (`CPU`, `CPU_Mapped`,
/// `CPU_REPACK`, `AMX`) and not pinned host memory (`CUDA_Host`, `Vulkan_Host`).
pub fn is_gpu_device(name: &str) -> bool {
    let name = name.trim();
    !(name.is_empty()
        || name.starts_with("CPU")
        || name.to_ascii_lowercase().contains("host")
        || name == "AMX"
        || name == "BLAS")
}

// ---------------------------------------------------------------------------------------------
// lines that belong to the whole log

fn global_line(line: &str, log: &mut ParsedLog) {
    if let Some(n) = cuda_devices_found(line) {
        log.cuda_devices_found = Some(n);
    }
    if let Some(reason) = after(line, "failed to initialize CUDA:") {
        log.cuda_init_error = Some(quote(reason.trim()));
    }
    let trimmed = line.trim_start();
    if trimmed.starts_with("Device ") && line.contains("compute capability") {
        push_bounded(&mut log.cuda_device_lines, quote(trimmed));
    }
    if let Some(rest) = after(line, "load_backend: loaded ") {
        push_bounded(&mut log.backends_loaded, quote(rest.trim()));
    }
    if let Some(rest) = after(line, "load_backend: failed to load ") {
        push_bounded(&mut log.backend_load_errors, quote(rest.trim()));
    }
    if let Some(info) = system_info(line) {
        log.system_info = Some(info);
    }
}

/// `found N CUDA devices` of ggml_cuda_init (2025) or ggml_init_cublas (2024).
fn cuda_devices_found(line: &str) -> Option<u32> {
    let rest = after(line, "found ")?;
    if !line.contains("ggml_cuda_init") && !line.contains("ggml_init_cublas") {
        return None;
    }
    let (n, rest) = leading_u32(rest)?;
    rest.trim_start().starts_with("CUDA device").then_some(n)
}

/// The system_info text of a line, if it is one: `CUDA : ARCHS = 900 | ... | CPU : ... | `,
/// the flat format of 2023-24 (`AVX = 1 | AVX2 = 1 | ...`), either behind llama-cli's
/// `system_info: n_threads = 16 (n_threads_batch = 16) / 16 | `.
fn system_info(line: &str) -> Option<String> {
    let body = match after(line, "system_info:") {
        Some(rest) => match rest.find(" | ") {
            Some(i) if rest[..i].contains("n_threads") => &rest[i + 3..],
            _ => rest,
        },
        None => line,
    };
    let body = body.trim();
    let first = body.split(" | ").next().unwrap_or("");
    let backend_first = first.split_once(" : ").is_some_and(|(name, rest)| {
        !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && rest.contains(" = ")
    });
    let flat_first = first.split_once(" = ").is_some_and(|(k, v)| {
        k.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            && v.trim().len() <= 3
    });
    let looks_like =
        body.contains(" | ") && (backend_first || (flat_first && body.contains("AVX")));
    looks_like.then(|| quote(body))
}

// ---------------------------------------------------------------------------------------------
// lines of one load

/// The first line of a model load: GGUF's loader, or the GGML-era loader of 2023.
fn starts_load(line: &str) -> bool {
    line.contains("llama_model_loader: loaded meta data")
        || line.contains("llama.cpp: loading model from")
}

fn load_line(line: &str, load: &mut ParsedLoad) {
    if layer_line(line, load)
        || offload_line(line, load)
        || buffer_line(line, load)
        || device_line(line, load)
        || graph_line(line, load)
        || timing_line(line, load)
    {
        return;
    }
    error_line(line, load);
    if let Some(n) = metadata_n_layer(line) {
        load.n_layer = Some(n);
    }
}

/// `load_tensors: layer   0 assigned to device CUDA0, is_swa = 0` (2025) or without `is_swa`
/// (early 2025).
fn layer_line(line: &str, load: &mut ParsedLoad) -> bool {
    let Some(at) = line.find("assigned to device ") else {
        return false;
    };
    let before = line[..at].trim_end();
    let Some(index) = before
        .rsplit(|c: char| c.is_whitespace())
        .next()
        .and_then(|n| n.parse::<u32>().ok())
    else {
        return false;
    };
    if !before.contains("layer") {
        return false;
    }
    let rest = &line[at + "assigned to device ".len()..];
    let device: String = rest
        .chars()
        .take_while(|c| *c != ',' && !c.is_whitespace())
        .take(64)
        .collect();
    if device.is_empty() {
        return false;
    }
    let format = if rest.contains("is_swa") {
        "2025"
    } else {
        "early-2025"
    };
    set_format(load, format);
    if load.layer_devices.len() < 4096 {
        load.layer_devices.insert(index, device);
    }
    if load.layer_lines.len() < 2 {
        load.layer_lines.push(quote(line.trim()));
    } else {
        load.last_layer_line = Some(quote(line.trim()));
    }
    true
}

/// The offload summary lines, of every era.
fn offload_line(line: &str, load: &mut ParsedLoad) -> bool {
    if let Some(rest) = after(line, "[cublas] offloading ") {
        load.cublas_offloading = leading_u32(rest).map(|(n, _)| n);
        set_format(load, "2023");
        evidence(load, line);
        return true;
    }
    if let Some(rest) = after(line, "offloaded ") {
        if !line.contains("layers to GPU") {
            return false;
        }
        if let Some((k, rest)) = leading_u32(rest) {
            if let Some((n, _)) = rest.strip_prefix('/').and_then(leading_u32) {
                load.claimed = Some((k, n));
                if line.contains("llm_load_tensors") {
                    set_format(load, "2024");
                }
                evidence(load, line);
                return true;
            }
        }
        return false;
    }
    if let Some(rest) = after(line, "offloading ") {
        if let Some((n, rest)) = leading_u32(rest) {
            if rest.trim_start().starts_with("repeating layers") {
                load.repeating_offloaded = Some(n);
                return true;
            }
        }
        return line.contains("layers to GPU");
    }
    if let Some(rest) = after(line, "VRAM used:") {
        load.vram_used_mib = leading_f64(rest.trim_start()).map(|(v, _)| v);
        set_format(load, "2023");
        evidence(load, line);
        return true;
    }
    false
}

/// `<fn>:   NAME [model|KV|compute|output] buffer size =   X MiB`; 2024's weight lines have
/// no kind (`llm_load_tensors:      CUDA0 buffer size = ...`).
fn buffer_line(line: &str, load: &mut ParsedLoad) -> bool {
    let Some(at) = line.find("buffer size =") else {
        return false;
    };
    let head = &line[..at];
    let who = head.split_once(':').map_or("", |(w, _)| w);
    let words: Vec<&str> = head
        .split_once(':')
        .map_or(head, |(_, r)| r)
        .split_whitespace()
        .collect();
    let Some(&name) = words.first() else {
        return false;
    };
    let kind = if words.len() >= 2 {
        words[words.len() - 1]
    } else if who.contains("load_tensors") {
        "model"
    } else {
        ""
    };
    let rest = &line[at + "buffer size =".len()..];
    let Some((value, unit)) = leading_f64(rest.trim_start()) else {
        return false;
    };
    let mib = if unit.trim_start().starts_with("MB") {
        value * 1_000_000.0 / 1_048_576.0
    } else {
        value
    };
    let buffer = BufferSize {
        name: name.chars().take(64).collect(),
        mib: (mib * 100.0).round() / 100.0,
        gpu: is_gpu_device(name),
    };
    if kind == "model" || (buffer.gpu && (kind == "KV" || kind == "compute")) {
        evidence(load, line);
    }
    match kind {
        "model" => push_bounded(&mut load.model_buffers, buffer),
        "KV" => push_bounded(&mut load.kv_buffers, buffer),
        "compute" => push_bounded(&mut load.compute_buffers, buffer),
        _ => {}
    }
    true
}

/// `llama_prepare_model_devices: using device CUDA0 (...) - 80552 MiB free` (and the same from
/// `llama_model_load_from_file_impl` or `llama_load_model_from_file` before it).
fn device_line(line: &str, load: &mut ParsedLoad) -> bool {
    let Some(rest) = after(line, "using device ") else {
        return false;
    };
    push_bounded(&mut load.devices_used, quote(rest.trim()));
    evidence(load, line);
    true
}

/// `graph: nodes = 78, splits = 2`; `graph (pp bs=512, tg bs=1): nodes = 78 / 78, splits =
/// 26 / 1` (the first number is prompt processing's); older `graph nodes  = 1030` and
/// `graph splits = 2` on lines of their own.
fn graph_line(line: &str, load: &mut ParsedLoad) -> bool {
    if !line.contains("graph") {
        return false;
    }
    let mut hit = false;
    if let Some(rest) = after(line, "nodes") {
        if let Some(n) = number_after_equals(rest) {
            load.graph_nodes = Some(n);
            hit = true;
        }
    }
    if let Some(rest) = after(line, "splits") {
        if let Some(n) = number_after_equals(rest) {
            load.graph_splits = Some(n);
            hit = true;
        }
    }
    hit
}

/// `llama_perf_context_print:` (2024 on) or `llama_print_timings:` (before) lines.
fn timing_line(line: &str, load: &mut ParsedLoad) -> bool {
    if !(line.contains("llama_perf_context_print") || line.contains("llama_print_timings")) {
        return false;
    }
    let parsed = |key: &str| -> Option<(f64, u32)> {
        let rest = after(line, key)?;
        let (ms, rest) = leading_f64(rest.trim_start_matches([' ', '=']))?;
        let count = rest
            .split_once('/')
            .and_then(|(_, r)| leading_u32(r.trim_start()))
            .map_or(0, |(n, _)| n);
        Some((ms, count))
    };
    if let Some(p) = parsed("prompt eval time") {
        load.prompt = Some(p);
    } else if let Some(p) = parsed(" eval time") {
        load.eval = Some(p);
    } else if let Some((ms, _)) = parsed("load time") {
        load.load_ms = Some(ms);
    }
    true
}

fn error_line(line: &str, load: &mut ParsedLoad) {
    let reason = after(line, "error loading model:")
        .or_else(|| after(line, "failed to load model"))
        .or_else(|| after(line, "failed to open GGUF file"));
    if let Some(reason) = reason {
        if load.load_error.is_none() {
            let reason = reason.trim().trim_start_matches(':').trim();
            load.load_error = Some(if reason.is_empty() {
                quote(line.trim())
            } else {
                quote(reason)
            });
            evidence(load, line);
        }
        return;
    }
    let lower = line.to_ascii_lowercase();
    if lower.contains("cuda error")
        || lower.contains("no kernel image is available")
        || lower.contains("cudamalloc failed")
        || lower.contains("cublas_status_")
    {
        if load.cuda_errors.len() < 8 {
            load.cuda_errors.push(quote(line.trim()));
        }
        evidence(load, line);
    }
}

/// `print_info: n_layer = 2` (2025), `llm_load_print_meta: n_layer = 32` (2024),
/// `llama_model_load_internal: n_layer = 32` (2023); not `n_layer_all`.
fn metadata_n_layer(line: &str) -> Option<u32> {
    let rest = after(line, "n_layer")?;
    let rest = rest.trim_start();
    let value = rest.strip_prefix('=')?;
    leading_u32(value.trim_start()).map(|(n, _)| n)
}

// ---------------------------------------------------------------------------------------------
// small helpers

fn set_format(load: &mut ParsedLoad, format: &'static str) {
    // The newest sign wins: a 2025 log also has an `offloaded` line.
    let rank = |f: &str| match f {
        "2025" => 4,
        "early-2025" => 3,
        "2024" => 2,
        _ => 1,
    };
    if load.format.is_none_or(|f| rank(format) > rank(f)) {
        load.format = Some(format);
    }
}

/// Keep a line as evidence (bounded count; layer lines are summarised by the caller).
fn evidence(load: &mut ParsedLoad, line: &str) {
    if load.evidence.len() < 24 {
        load.evidence.push(quote(line.trim()));
    }
}

fn push_bounded<T>(list: &mut Vec<T>, item: T) {
    if list.len() < MAX_KEPT {
        list.push(item);
    }
}

/// The text after the first occurrence of `pat`.
fn after<'a>(line: &'a str, pat: &str) -> Option<&'a str> {
    line.find(pat).map(|i| &line[i + pat.len()..])
}

/// A line cut to [`MAX_LINE`] bytes on a character boundary.
fn bounded_line(line: &str) -> &str {
    if line.len() <= MAX_LINE {
        return line;
    }
    let mut end = MAX_LINE;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

/// A line as quoted in facts: at most [`QUOTE_CHARS`] characters.
pub fn quote(line: &str) -> String {
    match line.char_indices().nth(QUOTE_CHARS) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line.to_string(),
    }
}

/// A number at the start of `s` (after spaces) and the rest.
fn leading_u32(s: &str) -> Option<(u32, &str)> {
    let s = s.trim_start();
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if end == 0 || end > 9 {
        return None;
    }
    Some((s[..end].parse().ok()?, &s[end..]))
}

fn leading_f64(s: &str) -> Option<(f64, &str)> {
    let s = s.trim_start();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    if end == 0 || end > 24 {
        return None;
    }
    let value: f64 = s[..end].parse().ok()?;
    value.is_finite().then_some((value, &s[end..]))
}

/// The first number after `=` or `:` that follows directly (`nodes = 78`, `splits: 3`).
fn number_after_equals(rest: &str) -> Option<u32> {
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').or_else(|| rest.strip_prefix(':'))?;
    leading_u32(rest).map(|(n, _)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_format_layers_buffers_devices_and_graph() {
        let log = parse_log(
            "ggml_cuda_init: found 1 CUDA devices (Total VRAM: 81079 MiB):\n\
             \x20 Device 0: NVIDIA H100 80GB HBM3, compute capability 9.0, VMM: yes, VRAM: 81079 MiB\n\
             llama_model_loader: loaded meta data with 13 key-value pairs and 20 tensors from ./m256.gguf (version GGUF V3 (latest))\n\
             llama_prepare_model_devices: using device CUDA0 (NVIDIA H100 80GB HBM3) (0000:00:06.0) - 80552 MiB free\n\
             print_info: n_layer               = 2\n\
             print_info: n_layer_all           = 2\n\
             load_tensors: layer   0 assigned to device CUDA0, is_swa = 0\n\
             load_tensors: layer   1 assigned to device CUDA0, is_swa = 0\n\
             load_tensors: layer   2 assigned to device CUDA0, is_swa = 0\n\
             load_tensors: offloading output layer to GPU\n\
             load_tensors: offloading 1 repeating layers to GPU\n\
             load_tensors: offloaded 3/3 layers to GPU\n\
             load_tensors:   CPU_Mapped model buffer size =     0.13 MiB\n\
             load_tensors:        CUDA0 model buffer size =     2.26 MiB\n\
             llama_context:  CUDA_Host  output buffer size =     0.00 MiB\n\
             llama_kv_cache:      CUDA0 KV buffer size =     2.00 MiB\n\
             sched_reserve:      CUDA0 compute buffer size =     9.01 MiB\n\
             sched_reserve:  CUDA_Host compute buffer size =     4.01 MiB\n\
             sched_reserve: graph: nodes = 78, splits = 2, input objects = 4, input tensors = 6\n\
             CUDA : ARCHS = 900 | USE_GRAPHS = 1 | CPU : SSE3 = 1 | AVX = 1 | \n\
             ~llama_context:      CUDA0 compute buffer size is   9.0078 MiB, matches expectation of   9.0078 MiB\n",
        );
        assert_eq!(log.cuda_devices_found, Some(1));
        assert_eq!(log.cuda_device_lines.len(), 1);
        assert_eq!(
            log.system_info.as_deref(),
            Some("CUDA : ARCHS = 900 | USE_GRAPHS = 1 | CPU : SSE3 = 1 | AVX = 1 |")
        );
        assert_eq!(log.loads.len(), 1);
        let load = &log.loads[0];
        assert_eq!(load.format, Some("2025"));
        assert_eq!(load.n_layer, Some(2));
        assert_eq!(load.layers_total(), Some(3));
        assert_eq!(load.layers_on_gpu_by_lines(), 3);
        assert_eq!(load.claimed, Some((3, 3)));
        assert_eq!(load.repeating_offloaded, Some(1));
        assert_eq!(
            load.devices_used,
            ["CUDA0 (NVIDIA H100 80GB HBM3) (0000:00:06.0) - 80552 MiB free"]
        );
        assert_eq!(load.model_buffers.len(), 2);
        assert!(!load.model_buffers[0].gpu && load.model_buffers[1].gpu);
        assert_eq!(load.model_buffers[1].mib, 2.26);
        assert_eq!(load.kv_buffers[0].name, "CUDA0");
        assert_eq!(load.compute_buffers.len(), 2);
        assert!(!load.compute_buffers[1].gpu, "CUDA_Host is host memory");
        assert_eq!(load.gpu_buffers(), ["CUDA0"]);
        assert_eq!((load.graph_nodes, load.graph_splits), (Some(78), Some(2)));
        assert!(load.evidence.iter().any(|e| e.contains("offloaded 3/3")));
    }

    #[test]
    fn early_2025_layer_lines_have_no_is_swa() {
        let load = parse_load(
            "load_tensors: layer  32 assigned to device CUDA0\nload_tensors: layer  33 assigned to device CUDA0\n",
        );
        assert_eq!(load.format, Some("early-2025"));
        assert_eq!(load.layers_total(), Some(34));
        assert_eq!(load.layers_on_gpu_by_lines(), 2);
    }

    #[test]
    fn the_2024_format_claims_and_names_buffers_without_a_kind() {
        let load = parse_load(
            "ggml_init_cublas: found 1 CUDA devices:\n\
             llm_load_tensors: offloading 32 repeating layers to GPU\n\
             llm_load_tensors: offloading non-repeating layers to GPU\n\
             llm_load_tensors: offloaded 33/33 layers to GPU\n\
             llm_load_tensors:      CUDA0 buffer size =  3820.94 MiB\n\
             llm_load_tensors:        CPU buffer size =    70.31 MiB\n\
             llama_kv_cache_init:      CUDA0 KV buffer size =   256.00 MiB\n\
             llama_new_context_with_model:      CUDA0 compute buffer size =   164.00 MiB\n\
             llama_new_context_with_model: graph nodes  = 1030\n\
             llama_new_context_with_model: graph splits = 2\n",
        );
        assert_eq!(load.format, Some("2024"));
        assert_eq!(load.claimed, Some((33, 33)));
        assert_eq!(load.layers_total(), Some(33));
        assert_eq!(load.model_buffers.len(), 2);
        assert_eq!(load.model_buffers[0].name, "CUDA0");
        assert_eq!(load.model_buffers[0].mib, 3820.94);
        assert_eq!(load.gpu_buffers(), ["CUDA0"]);
        assert_eq!((load.graph_nodes, load.graph_splits), (Some(1030), Some(2)));
        let log = parse_log("ggml_init_cublas: found 2 CUDA devices:\n");
        assert_eq!(log.cuda_devices_found, Some(2));
    }

    #[test]
    fn the_2023_formats_cublas_and_vram_used() {
        let old = parse_load(
            "llama_model_load_internal: [cublas] offloading 3 layers to GPU\n\
             llama_model_load_internal: [cublas] total VRAM used: 1148 MB\n",
        );
        assert_eq!(old.format, Some("2023"));
        assert_eq!(old.cublas_offloading, Some(3));
        assert_eq!(old.vram_used_mib, Some(1148.0));
        assert!(old.has_gpu_memory());
        let none = parse_load(
            "llm_load_tensors: using CUDA for GPU acceleration\n\
             llm_load_tensors: offloading 0 repeating layers to GPU\n\
             llm_load_tensors: offloaded 0/35 layers to GPU\n\
             llm_load_tensors: VRAM used: 0.00 MB\n",
        );
        assert_eq!(none.claimed, Some((0, 35)));
        assert_eq!(none.repeating_offloaded, Some(0));
        assert_eq!(none.vram_used_mib, Some(0.0));
        assert!(!none.has_gpu_memory());
        assert!(
            none.devices_used.is_empty(),
            "'using CUDA for' is not a device line"
        );
    }

    #[test]
    fn several_loads_are_split_at_the_loader_and_global_lines_are_kept() {
        let log = parse_log(
            "load_backend: loaded CPU backend from /x/libggml-cpu-zen4.so\n\
             load_backend: failed to load /x/libggml-cuda.so: libcudart.so.12: cannot open shared object file: No such file or directory\n\
             ggml_cuda_init: failed to initialize CUDA: no CUDA-capable device is detected\n\
             llama_model_loader: loaded meta data with 13 key-value pairs\n\
             load_tensors: layer   0 assigned to device CPU, is_swa = 0\n\
             llama_model_loader: loaded meta data with 13 key-value pairs\n\
             load_tensors: layer   0 assigned to device CUDA0, is_swa = 0\n\
             load_tensors: layer   1 assigned to device CUDA0, is_swa = 0\n",
        );
        assert_eq!(log.loads.len(), 2);
        assert_eq!(log.loads[0].layers_on_gpu_by_lines(), 0);
        assert_eq!(log.loads[1].layers_on_gpu_by_lines(), 2);
        assert_eq!(
            log.cuda_init_error.as_deref(),
            Some("no CUDA-capable device is detected")
        );
        assert_eq!(
            log.backends_loaded,
            ["CPU backend from /x/libggml-cpu-zen4.so"]
        );
        assert_eq!(
            log.backend_load_errors,
            ["/x/libggml-cuda.so: libcudart.so.12: cannot open shared object file: No such file or directory"]
        );
    }

    #[test]
    fn two_number_graph_lines_and_system_info_behind_llama_cli() {
        let load = parse_load(
            "sched_reserve: graph (pp bs=512, tg bs=1): nodes = 78 / 78, splits = 26 / 1, input objects = 4 / 4\n",
        );
        assert_eq!((load.graph_nodes, load.graph_splits), (Some(78), Some(26)));
        let log = parse_log(
            "system_info: n_threads = 16 (n_threads_batch = 16) / 16 | CUDA : ARCHS = 890 | USE_GRAPHS = 1 | CPU : AVX = 1 | \n",
        );
        assert_eq!(
            log.system_info.as_deref(),
            Some("CUDA : ARCHS = 890 | USE_GRAPHS = 1 | CPU : AVX = 1 |")
        );
        let flat = parse_log("AVX = 1 | AVX_VNNI = 0 | AVX2 = 1 | CUBLAS = 1 | SSE3 = 1 | \n");
        assert!(flat.system_info.unwrap().starts_with("AVX = 1"));
        let not = parse_log("llama_context: n_ctx = 1024\nprint_info: n_vocab = 263\n");
        assert_eq!(not.system_info, None);
    }

    #[test]
    fn load_errors_cuda_errors_and_timings() {
        let load = parse_load(
            "llama_model_load: error loading model: error loading model vocabulary: cannot find tokenizer vocab in model file\n\
             llama_model_load_from_file_impl: failed to load model\n\
             CUDA error: no kernel image is available for execution on the device\n\
             llama_perf_context_print:        load time =     157.24 ms\n\
             llama_perf_context_print: prompt eval time =     157.05 ms /    17 tokens (    9.24 ms per token,   108.25 tokens per second)\n\
             llama_perf_context_print:        eval time =       5.73 ms /    31 runs   (    0.18 ms per token,  5406.35 tokens per second)\n",
        );
        assert_eq!(
            load.load_error.as_deref(),
            Some("error loading model vocabulary: cannot find tokenizer vocab in model file")
        );
        assert_eq!(load.cuda_errors.len(), 1);
        assert_eq!(load.load_ms, Some(157.24));
        assert_eq!(load.prompt, Some((157.05, 17)));
        assert_eq!(load.eval, Some((5.73, 31)));
    }

    #[test]
    fn device_and_buffer_names() {
        for gpu in [
            "CUDA0",
            "CUDA1_Split",
            "ROCm0",
            "Vulkan0",
            "Metal",
            "SYCL0",
            "MUSA0",
        ] {
            assert!(is_gpu_device(gpu), "{gpu}");
        }
        for cpu in [
            "CPU",
            "CPU_Mapped",
            "CPU_REPACK",
            "CUDA_Host",
            "Vulkan_Host",
            "AMX",
            "",
        ] {
            assert!(!is_gpu_device(cpu), "{cpu}");
        }
    }

    #[test]
    fn garbage_never_panics_and_stays_bounded() {
        let long = "load_tensors: layer 99999999999999999999 assigned to device ".repeat(1000);
        let many: String = (0..100_000)
            .map(|i| format!("load_tensors: layer {i} assigned to device CUDA0\n"))
            .collect();
        for junk in [
            "",
            "\n\n\n",
            "assigned to device ",
            "layer assigned to device",
            "offloaded /3 layers to GPU",
            "offloaded 3/ layers to GPU",
            "buffer size =",
            ": buffer size = MiB",
            "x: CUDA0 model buffer size = nan MiB",
            "graph nodes = splits =",
            "found 99999999999 CUDA devices ggml_cuda_init",
            "é ü 🙂 assigned to device 🙂",
            "system_info: | | |",
            long.as_str(),
            many.as_str(),
        ] {
            let log = parse_log(junk);
            assert!(log.last_lines.len() <= TAIL_LINES);
            let _ = parse_load(junk);
        }
        let load = parse_load(&many);
        assert!(load.layer_devices.len() <= 4096);
    }
}
