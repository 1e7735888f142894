//! What `gpu-doctor model FILE.gguf` says about a model: its shape, its quantization, its
//! size, and how many of its layers fit in a GPU's free memory.
//!
//! The fit estimate follows how llama.cpp places a model (docs/model-fit.md has the long form):
//! with `n_gpu_layers = k`, the last `k` repeating blocks go to the GPU, each with its own KV
//! cache; `k > n_layer` also moves the output layer (`output.weight`, `output_norm.weight`);
//! the token embeddings always stay on the CPU.

use super::reader::{read_file, GgufError, GgufFile};
use super::GgmlType;
use std::path::{Path, PathBuf};

/// Tensor bytes of one ggml type in the model.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct TypeUsage {
    pub type_name: &'static str,
    pub tensors: usize,
    pub bytes: u64,
}

/// The facts about a model that decide where it can run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct ModelSummary {
    pub path: PathBuf,
    pub file_size: u64,
    pub gguf_version: u32,
    pub architecture: Option<String>,
    pub name: Option<String>,
    /// `{arch}.block_count`: repeating layers.
    pub block_count: Option<u64>,
    pub context_length: Option<u64>,
    pub embedding_length: Option<u64>,
    pub head_count: Option<u64>,
    /// `{arch}.feed_forward_length` (the first layer's when it is per layer).
    pub feed_forward_length: Option<u64>,
    /// Defaults to `head_count`, as in llama.cpp.
    pub head_count_kv: Option<u64>,
    /// `{arch}.attention.key_length` / `value_length`, else n_embd / n_head.
    pub key_length: Option<u64>,
    pub value_length: Option<u64>,
    pub vocab_size: Option<u64>,
    /// `general.file_type` (llama_ftype), when present.
    pub file_type: Option<u64>,
    /// The type holding the most bytes among the 2-D (matrix) tensors: the "quantization".
    pub dominant_type: Option<&'static str>,
    /// Per type, most bytes first.
    pub types: Vec<TypeUsage>,
    pub n_tensors: usize,
    pub tensor_bytes: u64,
    /// Bytes of `blk.N.*` tensors, indexed by N (length = highest N + 1).
    pub layer_bytes: Vec<u64>,
    /// Bytes that move to the GPU with the output layer (output + output_norm; the token
    /// embeddings when the output is tied to them).
    pub output_bytes: u64,
    /// Bytes that stay on the CPU whatever n_gpu_layers is (the token embeddings).
    pub cpu_only_bytes: u64,
}

/// Read the header of the model at `path` and summarize it.
pub fn summarize(path: &Path) -> Result<ModelSummary, GgufError> {
    Ok(summary_of(path, &read_file(path)?))
}

/// Summarize an already-read file.
pub fn summary_of(path: &Path, f: &GgufFile) -> ModelSummary {
    let arch = f.get_str("general.architecture").map(str::to_string);
    let key = |k: &str| arch.as_deref().and_then(|a| f.get_u64(&format!("{a}.{k}")));
    let head_count = key("attention.head_count");
    let embd = key("embedding_length");
    let head_dim = embd.zip(head_count).and_then(|(e, h)| e.checked_div(h));
    let (layer_bytes, output_bytes, cpu_only_bytes) = placement_bytes(f);
    let types = type_usage(f);
    ModelSummary {
        path: path.to_path_buf(),
        file_size: f.file_size,
        gguf_version: f.version,
        name: f.get_str("general.name").map(str::to_string),
        block_count: key("block_count"),
        context_length: key("context_length"),
        embedding_length: embd,
        head_count,
        feed_forward_length: key("feed_forward_length")
            .or_else(|| first_of_array(f, arch.as_deref(), "feed_forward_length")),
        head_count_kv: key("attention.head_count_kv").or(head_count),
        key_length: key("attention.key_length").or(head_dim),
        value_length: key("attention.value_length").or(head_dim),
        vocab_size: f
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.as_array())
            .map(|a| a.len() as u64)
            .or_else(|| key("vocab_size")),
        file_type: f.get_u64("general.file_type"),
        dominant_type: dominant_type(f),
        types,
        n_tensors: f.tensors.len(),
        tensor_bytes: f.tensor_bytes(),
        layer_bytes,
        output_bytes,
        cpu_only_bytes,
        architecture: arch,
    }
}

/// Per-layer hyperparameters are arrays in some models (e.g. OpenELM); take the first layer's.
fn first_of_array(f: &GgufFile, arch: Option<&str>, key: &str) -> Option<u64> {
    let a = f.get(&format!("{}.{key}", arch?))?.as_array()?;
    a.get(0)?.as_u64()
}

fn type_usage(f: &GgufFile) -> Vec<TypeUsage> {
    let mut out: Vec<TypeUsage> = Vec::new();
    for t in &f.tensors {
        match out.iter_mut().find(|u| u.type_name == t.ggml_type.name) {
            Some(u) => {
                u.tensors += 1;
                u.bytes = u.bytes.saturating_add(t.n_bytes);
            }
            None => out.push(TypeUsage {
                type_name: t.ggml_type.name,
                tensors: 1,
                bytes: t.n_bytes,
            }),
        }
    }
    out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.type_name.cmp(b.type_name)));
    out
}

/// Norms and biases are F32 in every quantization; the matrices say what the model is.
fn dominant_type(f: &GgufFile) -> Option<&'static str> {
    let mut by_type: Vec<(&'static str, u64)> = Vec::new();
    for t in f
        .tensors
        .iter()
        .filter(|t| t.dims.iter().filter(|&&d| d > 1).count() >= 2)
    {
        match by_type.iter_mut().find(|(n, _)| *n == t.ggml_type.name) {
            Some((_, b)) => *b = b.saturating_add(t.n_bytes),
            None => by_type.push((t.ggml_type.name, t.n_bytes)),
        }
    }
    by_type.into_iter().max_by_key(|&(_, b)| b).map(|(n, _)| n)
}

/// (bytes per block, bytes of the output layer, bytes that stay on the CPU).
fn placement_bytes(f: &GgufFile) -> (Vec<u64>, u64, u64) {
    let mut layers: Vec<u64> = Vec::new();
    let (mut output, mut embd, mut has_output) = (0u64, 0u64, false);
    for t in &f.tensors {
        if let Some(n) = block_index(&t.name) {
            // Bounded: the reader only returns tensors the file holds, at least 24 bytes each.
            if layers.len() <= n {
                layers.resize(n + 1, 0);
            }
            layers[n] = layers[n].saturating_add(t.n_bytes);
        } else if t.name.starts_with("output") {
            has_output |= t.name == "output.weight";
            output = output.saturating_add(t.n_bytes);
        } else if t.name.starts_with("token_embd") {
            embd = embd.saturating_add(t.n_bytes);
        }
    }
    // A tied output layer is a GPU copy of the token embeddings (TENSOR_DUPLICATED).
    if !has_output {
        output = output.saturating_add(embd);
    }
    (layers, output, embd)
}

/// `blk.12.attn_q.weight` -> 12; block numbers past what a file could hold are ignored.
fn block_index(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("blk.")?;
    let n: usize = rest.split('.').next()?.parse().ok()?;
    (n < 100_000).then_some(n)
}

/// The ggml type of the KV cache (`--cache-type-k/-v`, `type_k`/`type_v`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub enum KvCacheType {
    #[serde(rename = "f16")]
    F16,
    #[serde(rename = "q8_0")]
    Q8_0,
    #[serde(rename = "q4_0")]
    Q4_0,
}

impl KvCacheType {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f16" => Some(Self::F16),
            "q8_0" => Some(Self::Q8_0),
            "q4_0" => Some(Self::Q4_0),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F16 => "f16",
            Self::Q8_0 => "q8_0",
            Self::Q4_0 => "q4_0",
        }
    }

    fn ggml(self) -> GgmlType {
        let name = match self {
            Self::F16 => "F16",
            Self::Q8_0 => "Q8_0",
            Self::Q4_0 => "Q4_0",
        };
        GgmlType::from_name(name).unwrap_or(GgmlType::F16)
    }

    /// Bytes of `n` cache elements (rounded up to whole blocks).
    fn bytes(self, n: u64) -> u64 {
        let t = self.ggml();
        n.div_ceil(t.block_size).saturating_mul(t.type_size)
    }
}

/// Memory the CUDA context, cuBLAS workspace and allocator slack take in the process that
/// loads the model, beyond what the model's buffers need.
pub const RESERVE_MIB: u64 = 512;
/// llama.cpp's default physical batch (`n_ubatch`), which sizes the compute buffer.
pub const N_UBATCH: u64 = 512;

/// How many layers fit, and the numbers behind it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct FitEstimate {
    /// Repeating blocks in the model.
    pub n_layer: u64,
    /// Blocks that fit on the GPU.
    pub layers_on_gpu: u64,
    /// The output layer fits too (only when every block does).
    pub output_on_gpu: bool,
    /// The value to pass as n_gpu_layers / -ngl (n_layer + 1 when everything fits).
    pub n_gpu_layers: u64,
    pub all_fit: bool,
    /// The context length the estimate is for, padded to 256 as llama.cpp does.
    pub n_ctx: u64,
    pub kv_type: KvCacheType,
    pub kv_bytes_per_layer: u64,
    pub compute_bytes: u64,
    pub reserve_bytes: u64,
    pub free_bytes: u64,
    /// What the whole model on the GPU would take (blocks, their KV cache, output, compute,
    /// reserve).
    pub full_offload_bytes: u64,
}

/// How many layers of `model` fit in `free_mib` of free GPU memory with a context of `n_ctx`
/// tokens (0: the model's trained context) and a KV cache of `kv_type`.
///
/// ```text
/// n_ctx'      = n_ctx rounded up to a multiple of 256            (llama.cpp pads it)
/// kv(layer)   = n_ctx' * n_head_kv * (key_length + value_length) * bytes per element of kv_type
///               (key_length = value_length = n_embd / n_head unless the file says otherwise)
/// compute     = 4 bytes * n_ubatch (512) * (n_vocab + 4 * n_embd + 3 * n_ff + n_ctx' * n_head)
///               (logits, activations, the attention scores of one micro-batch without flash
///               attention, llama-cpp-python's default) -- an allowance, not an exact figure
/// budget      = free - 512 MiB reserve (CUDA context, cuBLAS, slack) - compute
/// layers      = the most blocks, counted from the last one, whose weights + kv fit in budget
/// output      = also on the GPU when every block fits and output weights still fit
/// ```
pub fn layers_that_fit(
    model: &ModelSummary,
    free_mib: u64,
    n_ctx: u64,
    kv_type: KvCacheType,
) -> FitEstimate {
    let n_ctx = if n_ctx == 0 {
        model.context_length.unwrap_or(4096)
    } else {
        n_ctx
    };
    let n_ctx = n_ctx.max(1).div_ceil(256).saturating_mul(256);
    let n_embd = model.embedding_length.unwrap_or(0);
    let kv_heads = model.head_count_kv.unwrap_or(0);
    let kv_bytes_per_layer = [model.key_length, model.value_length]
        .iter()
        .map(|len| kv_type.bytes(n_ctx.saturating_mul(kv_heads.saturating_mul(len.unwrap_or(0)))))
        .fold(0u64, u64::saturating_add);
    let per_token = [
        model.vocab_size.unwrap_or(0),
        n_embd.saturating_mul(4),
        model.feed_forward_length.unwrap_or(0).saturating_mul(3),
        n_ctx.saturating_mul(model.head_count.unwrap_or(0)),
    ]
    .into_iter()
    .fold(0u64, u64::saturating_add);
    let compute_bytes = N_UBATCH.saturating_mul(4).saturating_mul(per_token);
    let reserve_bytes = RESERVE_MIB << 20;
    let free_bytes = free_mib.saturating_mul(1 << 20);
    let n_layer = model.block_count.unwrap_or(model.layer_bytes.len() as u64);
    let layer_cost = |i: u64| {
        model
            .layer_bytes
            .get(i as usize)
            .copied()
            .unwrap_or(0)
            .saturating_add(kv_bytes_per_layer)
    };
    let mut budget = free_bytes
        .saturating_sub(reserve_bytes)
        .checked_sub(compute_bytes);
    let mut layers_on_gpu = 0;
    // Blocks past the tensor table (a file may claim 2^60 of them) all cost the KV cache
    // alone: count those by arithmetic, so the time taken never depends on what a file claims.
    let known = n_layer.min(model.layer_bytes.len() as u64);
    let beyond = n_layer - known;
    if let Some(b) = budget {
        let fit = b
            .checked_div(kv_bytes_per_layer)
            .unwrap_or(u64::MAX)
            .min(beyond);
        layers_on_gpu = fit;
        budget = (fit == beyond).then(|| b - fit * kv_bytes_per_layer);
    }
    // llama.cpp offloads the last n_gpu_layers blocks, so count from the end.
    for i in (0..known).rev() {
        match budget.and_then(|b| b.checked_sub(layer_cost(i))) {
            Some(left) => {
                budget = Some(left);
                layers_on_gpu += 1;
            }
            None => break,
        }
    }
    let output_on_gpu = layers_on_gpu == n_layer && budget.is_some_and(|b| b >= model.output_bytes);
    let blocks_total = (0..known).map(layer_cost).fold(
        beyond.saturating_mul(kv_bytes_per_layer),
        u64::saturating_add,
    );
    FitEstimate {
        n_layer,
        layers_on_gpu,
        output_on_gpu,
        n_gpu_layers: layers_on_gpu + u64::from(output_on_gpu),
        all_fit: output_on_gpu,
        n_ctx,
        kv_type,
        kv_bytes_per_layer,
        compute_bytes,
        reserve_bytes,
        free_bytes,
        full_offload_bytes: blocks_total
            .saturating_add(model.output_bytes)
            .saturating_add(compute_bytes)
            .saturating_add(reserve_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(layers: usize, layer_mib: u64) -> ModelSummary {
        ModelSummary {
            path: PathBuf::from("m.gguf"),
            file_size: 0,
            gguf_version: 3,
            architecture: Some("llama".into()),
            name: None,
            block_count: Some(layers as u64),
            context_length: Some(4096),
            embedding_length: Some(4096),
            head_count: Some(32),
            feed_forward_length: Some(14336),
            head_count_kv: Some(8),
            key_length: Some(128),
            value_length: Some(128),
            vocab_size: Some(32000),
            file_type: None,
            dominant_type: Some("Q4_K"),
            types: vec![],
            n_tensors: 0,
            tensor_bytes: 0,
            layer_bytes: vec![layer_mib << 20; layers],
            output_bytes: 100 << 20,
            cpu_only_bytes: 100 << 20,
        }
    }

    #[test]
    fn kv_cache_formula() {
        // 2 * 4096 * (8 * 128) * 2 bytes = 16 MiB per layer in f16, 8.5 MiB in q8_0.
        let m = model(32, 100);
        assert_eq!(
            layers_that_fit(&m, 0, 4096, KvCacheType::F16).kv_bytes_per_layer,
            16 << 20
        );
        assert_eq!(
            layers_that_fit(&m, 0, 4096, KvCacheType::Q8_0).kv_bytes_per_layer,
            17 << 19
        );
        assert_eq!(
            layers_that_fit(&m, 0, 4096, KvCacheType::Q4_0).kv_bytes_per_layer,
            9 << 19
        );
        // Context padded to 256; 0 means the trained context.
        assert_eq!(layers_that_fit(&m, 0, 100, KvCacheType::F16).n_ctx, 256);
        assert_eq!(layers_that_fit(&m, 0, 0, KvCacheType::F16).n_ctx, 4096);
    }

    #[test]
    fn counts_layers_that_fit() {
        let m = model(32, 100);
        let none = layers_that_fit(&m, 256, 4096, KvCacheType::F16);
        assert_eq!(
            (none.layers_on_gpu, none.n_gpu_layers, none.all_fit),
            (0, 0, false)
        );
        let all = layers_that_fit(&m, 80_000, 4096, KvCacheType::F16);
        assert_eq!(
            (all.layers_on_gpu, all.n_gpu_layers, all.all_fit),
            (32, 33, true)
        );
        // Compute: 2048 * (32000 + 4 * 4096 + 3 * 14336 + 4096 * 32) bytes = 442.3 MiB;
        // 2100 - 512 - 442.3 = 1145.7 MiB; each layer 100 + 16 MiB: 9 fit.
        let some = layers_that_fit(&m, 2100, 4096, KvCacheType::F16);
        assert_eq!((some.layers_on_gpu, some.output_on_gpu), (9, false));
        assert_eq!(
            some.compute_bytes,
            2048 * (32000 + 4 * 4096 + 3 * 14336 + 4096 * 32)
        );
        // A smaller KV cache fits more.
        assert!(layers_that_fit(&m, 2100, 4096, KvCacheType::Q4_0).layers_on_gpu > 9);
        assert!(all.full_offload_bytes > 32 * (116 << 20));
    }

    #[test]
    fn block_names() {
        assert_eq!(block_index("blk.12.attn_q.weight"), Some(12));
        assert_eq!(block_index("blk.x.attn_q.weight"), None);
        assert_eq!(block_index("blk.99999999999.a"), None);
        assert_eq!(block_index("token_embd.weight"), None);
        assert_eq!(KvCacheType::parse("Q8_0"), Some(KvCacheType::Q8_0));
        assert_eq!(KvCacheType::parse("q5_1"), None);
    }
}
