//! Writes a synthetic llama-architecture GGUF model with random weights from a fixed seed.
//!
//! Why synthetic: the offload proof needs a model that any llama.cpp loads, small enough to
//! write in milliseconds and with nothing to download. The rules it follows were each
//! verified against llama.cpp (research notes §4): an SPM vocabulary with the 256 byte tokens
//! (so any prompt tokenizes), F16 matrices and F32 norms, a head size the CUDA kernels cover
//! (64 or 128), and a context length of at least 2048 (the CUDA build fails at the first
//! generated token with 256). The file is written once per parameter set into a cache folder,
//! atomically, and reused.

use super::reader::{read_file, Array, GgufError, Value};
use super::{pad, GgmlType, DEFAULT_ALIGNMENT, MAGIC, VERSION};
use std::fs::{self, File};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Head sizes with CUDA FlashAttention kernels (fattn.cu); others may fall back to the CPU.
pub const CUDA_HEAD_SIZES: &[u32] = &[64, 80, 96, 112, 128, 256];
/// Below this, llama.cpp's CUDA build failed at the first generated token.
pub const MIN_CONTEXT: u32 = 2048;
/// `<unk>`, `<s>`, `</s>` and the 256 byte tokens.
const SPECIAL_AND_BYTES: u32 = 3 + 256;
/// Bumped whenever the bytes written for the same parameters change (invalidates the cache).
const FORMAT_REVISION: u32 = 1;

/// The shape of the synthetic model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelParams {
    pub n_layer: u32,
    pub n_embd: u32,
    pub n_head: u32,
    pub n_head_kv: u32,
    pub n_ff: u32,
    /// Tokens in the vocabulary: at least 259 (3 specials and 256 bytes).
    pub n_vocab: u32,
    pub context_length: u32,
    pub seed: u64,
}

impl Default for ModelParams {
    fn default() -> Self {
        Self::placement()
    }
}

impl ModelParams {
    /// The placement model: upstream test-llama-archs' shape (2 layers, n_embd 256, two heads
    /// of 128) with an SPM vocabulary of 263 tokens; about 2.5 MB.
    pub fn placement() -> Self {
        ModelParams {
            n_layer: 2,
            n_embd: 256,
            n_head: 2,
            n_head_kv: 2,
            n_ff: 384,
            n_vocab: SPECIAL_AND_BYTES + 4,
            context_length: 4096,
            seed: 0x6770_752d_646f_6374, // "gpu-doct"
        }
    }

    /// A model of realistic width for the speed workload: heads of 128, a llama-style
    /// feed-forward of about 8/3 n_embd rounded up to 256. Size it with [`Self::tensor_bytes`].
    pub fn speed(n_embd: u32, n_layer: u32) -> Self {
        let n_embd = n_embd.max(128) / 128 * 128;
        let n_ff = (n_embd as u64 * 8 / 3).div_ceil(256) * 256;
        ModelParams {
            n_layer: n_layer.max(1),
            n_embd,
            n_head: n_embd / 128,
            n_head_kv: n_embd / 128,
            n_ff: u32::try_from(n_ff).unwrap_or(u32::MAX),
            ..Self::placement()
        }
    }

    pub fn with_layers(mut self, n: u32) -> Self {
        self.n_layer = n;
        self
    }

    pub fn with_heads(mut self, n_head: u32, n_head_kv: u32) -> Self {
        self.n_head = n_head;
        self.n_head_kv = n_head_kv;
        self
    }

    pub fn with_ff(mut self, n_ff: u32) -> Self {
        self.n_ff = n_ff;
        self
    }

    pub fn with_vocab(mut self, n_vocab: u32) -> Self {
        self.n_vocab = n_vocab;
        self
    }

    pub fn with_context(mut self, n: u32) -> Self {
        self.context_length = n;
        self
    }

    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub fn head_dim(&self) -> u32 {
        self.n_embd / self.n_head.max(1)
    }

    /// Reject shapes llama.cpp would refuse or the CUDA kernels would not cover.
    pub fn validate(&self) -> Result<(), String> {
        let p = self;
        if p.n_layer == 0 || p.n_layer > 512 {
            return Err(format!("n_layer {} is outside 1..=512", p.n_layer));
        }
        if p.n_head == 0
            || p.n_head_kv == 0
            || !p.n_embd.is_multiple_of(p.n_head)
            || !p.n_head.is_multiple_of(p.n_head_kv)
        {
            return Err(format!(
                "n_embd {} / n_head {} / n_head_kv {}: n_embd must be a multiple of n_head, n_head of n_head_kv",
                p.n_embd, p.n_head, p.n_head_kv
            ));
        }
        if !CUDA_HEAD_SIZES.contains(&p.head_dim()) {
            return Err(format!(
                "head size {} is not one of {CUDA_HEAD_SIZES:?}",
                p.head_dim()
            ));
        }
        if p.n_ff == 0 || p.n_ff > 1 << 20 {
            return Err(format!("n_ff {} is outside 1..=1048576", p.n_ff));
        }
        if p.n_vocab < SPECIAL_AND_BYTES || p.n_vocab > 1 << 20 {
            return Err(format!(
                "n_vocab {} is outside {SPECIAL_AND_BYTES}..=1048576",
                p.n_vocab
            ));
        }
        if p.context_length < MIN_CONTEXT {
            return Err(format!(
                "context length {} is below {MIN_CONTEXT}",
                p.context_length
            ));
        }
        Ok(())
    }

    /// A stable hash of everything that decides the file's bytes (FNV-1a, 64 bits).
    pub fn hash(&self) -> u64 {
        let text = format!(
            "r{FORMAT_REVISION} l{} e{} h{} kv{} ff{} v{} c{} s{}",
            self.n_layer,
            self.n_embd,
            self.n_head,
            self.n_head_kv,
            self.n_ff,
            self.n_vocab,
            self.context_length,
            self.seed
        );
        text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }

    /// File name in the cache folder.
    pub fn file_name(&self) -> String {
        format!(
            "llama-{}L-{}e-{:016x}.gguf",
            self.n_layer,
            self.n_embd,
            self.hash()
        )
    }

    /// The tensors the model has, in file order.
    pub fn tensors(&self) -> Vec<TensorSpec> {
        let (e, v, ff) = (
            u64::from(self.n_embd),
            u64::from(self.n_vocab),
            u64::from(self.n_ff),
        );
        let q = u64::from(self.head_dim() * self.n_head);
        let kv = u64::from(self.head_dim() * self.n_head_kv);
        let mut out = vec![
            TensorSpec::matrix("token_embd.weight", e, v),
            TensorSpec::norm("output_norm.weight", e),
            TensorSpec::matrix("output.weight", e, v),
        ];
        for i in 0..self.n_layer {
            let name = |t: &str| format!("blk.{i}.{t}.weight");
            out.extend([
                TensorSpec::norm(&name("attn_norm"), e),
                TensorSpec::matrix(&name("attn_q"), e, q),
                TensorSpec::matrix(&name("attn_k"), e, kv),
                TensorSpec::matrix(&name("attn_v"), e, kv),
                TensorSpec::matrix(&name("attn_output"), q, e),
                TensorSpec::norm(&name("ffn_norm"), e),
                TensorSpec::matrix(&name("ffn_gate"), e, ff),
                TensorSpec::matrix(&name("ffn_up"), e, ff),
                TensorSpec::matrix(&name("ffn_down"), ff, e),
            ]);
        }
        out
    }

    /// Bytes of tensor data (what a GPU would hold for the whole model).
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors().iter().map(|t| t.n_bytes()).sum()
    }

    /// The vocabulary: specials, the 256 byte tokens, then plain pieces.
    pub fn tokens(&self) -> Vec<String> {
        const PIECES: &[&str] = &["▁", "▁the", "e", "▁a", "t", "▁GPU", "er", "in"];
        let mut out = vec!["<unk>".to_string(), "<s>".to_string(), "</s>".to_string()];
        out.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
        let extra = self.n_vocab.saturating_sub(SPECIAL_AND_BYTES) as usize;
        out.extend((0..extra).map(|i| match PIECES.get(i) {
            Some(p) => (*p).to_string(),
            None => format!("▁tok{i}"),
        }));
        out
    }

    /// Every key/value, in file order, as the writer writes them.
    pub fn metadata(&self) -> Vec<(String, Value)> {
        let tokens = self.tokens();
        let n = tokens.len();
        // SPM scores: 0 for specials and bytes, then decreasing log-probability-like scores.
        let scores: Vec<f32> = (0..n)
            .map(|i| {
                if i < SPECIAL_AND_BYTES as usize {
                    0.0
                } else {
                    -((i - SPECIAL_AND_BYTES as usize) as f32)
                }
            })
            .collect();
        // 1 normal, 2 unknown, 3 control, 6 byte.
        let types: Vec<i32> = (0..n)
            .map(|i| match i {
                0 => 2,
                1 | 2 => 3,
                i if i < SPECIAL_AND_BYTES as usize => 6,
                _ => 1,
            })
            .collect();
        let kv = |k: &str, v: Value| (k.to_string(), v);
        vec![
            kv("general.architecture", Value::String("llama".into())),
            kv(
                "general.name",
                Value::String(format!("gpu-doctor synthetic {}", self.file_name())),
            ),
            kv("general.alignment", Value::U32(DEFAULT_ALIGNMENT as u32)),
            kv("general.file_type", Value::U32(1)), // LLAMA_FTYPE_MOSTLY_F16
            kv("gpu_doctor.seed", Value::U64(self.seed)),
            kv("llama.context_length", Value::U32(self.context_length)),
            kv("llama.embedding_length", Value::U32(self.n_embd)),
            kv("llama.block_count", Value::U32(self.n_layer)),
            kv("llama.feed_forward_length", Value::U32(self.n_ff)),
            kv("llama.attention.head_count", Value::U32(self.n_head)),
            kv("llama.attention.head_count_kv", Value::U32(self.n_head_kv)),
            kv("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
            kv("llama.rope.dimension_count", Value::U32(self.head_dim())),
            kv("llama.rope.freq_base", Value::F32(10000.0)),
            kv("tokenizer.ggml.model", Value::String("llama".into())),
            kv(
                "tokenizer.ggml.tokens",
                Value::Array(Array::from_strings(tokens)),
            ),
            kv(
                "tokenizer.ggml.scores",
                Value::Array(Array::from_f32(&scores)),
            ),
            kv(
                "tokenizer.ggml.token_type",
                Value::Array(Array::from_i32(&types)),
            ),
            kv("tokenizer.ggml.bos_token_id", Value::U32(1)),
            kv("tokenizer.ggml.eos_token_id", Value::U32(2)),
            kv("tokenizer.ggml.unknown_token_id", Value::U32(0)),
            kv("tokenizer.ggml.add_bos_token", Value::Bool(true)),
        ]
    }
}

/// One tensor the writer emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    /// `ne`, innermost first.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
}

impl TensorSpec {
    /// A weight matrix of `rows` rows of `cols` (ne = [cols, rows]), F16.
    fn matrix(name: &str, cols: u64, rows: u64) -> Self {
        TensorSpec {
            name: name.into(),
            dims: vec![cols, rows],
            ggml_type: GgmlType::F16,
        }
    }

    /// A norm weight vector, F32, all ones.
    fn norm(name: &str, n: u64) -> Self {
        TensorSpec {
            name: name.into(),
            dims: vec![n],
            ggml_type: GgmlType::F32,
        }
    }

    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    pub fn n_bytes(&self) -> u64 {
        self.n_elements() * self.ggml_type.type_size
    }
}

/// splitmix64: tiny, fast, and good enough for weights that only need to be finite and small.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// f32 to IEEE half, rounding to nearest even; overflow gives infinity, NaN stays NaN.
pub fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let man = bits & 0x007f_ffff;
    if exp == 0xff {
        return sign
            | 0x7c00
            | if man != 0 {
                0x0200 | (man >> 13) as u16
            } else {
                0
            };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // Subnormal half (or zero): shift the full mantissa, rounding to nearest even.
        if e < -10 {
            return sign;
        }
        let m = man | 0x0080_0000;
        let shift = (14 - e) as u32;
        let half = m >> shift;
        let rem = m & ((1 << shift) - 1);
        let mid = 1 << (shift - 1);
        let round = u32::from(rem > mid || (rem == mid && half & 1 == 1));
        return sign | (half + round) as u16;
    }
    let half = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    let round = u32::from(rem > 0x1000 || (rem == 0x1000 && half & 1 == 1));
    // A carry out of the mantissa correctly bumps the exponent (up to infinity).
    sign | (half + round) as u16
}

/// Write the model to `out`; returns the bytes written.
pub fn write_to(params: &ModelParams, out: &mut impl Write) -> io::Result<u64> {
    write_edited(params, |_| {}, out)
}

/// [`write_to`] with the metadata changed by `edit` first: tests write odd or hostile metadata
/// with it (an architecture string holding an escape sequence, say).
pub fn write_edited(
    params: &ModelParams,
    edit: impl FnOnce(&mut Vec<(String, Value)>),
    out: &mut impl Write,
) -> io::Result<u64> {
    params
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut w = Counting {
        inner: out,
        written: 0,
    };
    let mut metadata = params.metadata();
    edit(&mut metadata);
    let tensors = write_header(params, &metadata, &mut w)?;
    let mut rng = SplitMix64(params.seed);
    let mut scratch = Vec::new();
    let table = f16_table();
    for t in &tensors {
        write_tensor_data(&mut w, t, &mut rng, &mut scratch, &table)?;
        pad_to_alignment(&mut w)?;
    }
    w.flush()?;
    Ok(w.written)
}

/// The header, metadata and tensor table, padded to the alignment; returns the tensors in file
/// order. The tensor data start right after.
fn write_header<W: Write>(
    params: &ModelParams,
    metadata: &[(String, Value)],
    w: &mut Counting<'_, W>,
) -> io::Result<Vec<TensorSpec>> {
    let tensors = params.tensors();
    w.write_all(&MAGIC)?;
    w.write_all(&VERSION.to_le_bytes())?;
    w.write_all(&(tensors.len() as i64).to_le_bytes())?;
    w.write_all(&(metadata.len() as i64).to_le_bytes())?;
    for (key, value) in metadata {
        write_string(w, key)?;
        w.write_all(&(value.value_type() as i32).to_le_bytes())?;
        write_value(w, value)?;
    }
    let mut offset = 0u64;
    for t in &tensors {
        write_string(w, &t.name)?;
        w.write_all(&(t.dims.len() as u32).to_le_bytes())?;
        for d in &t.dims {
            w.write_all(&(*d as i64).to_le_bytes())?;
        }
        w.write_all(&(t.ggml_type.id as i32).to_le_bytes())?;
        w.write_all(&offset.to_le_bytes())?;
        offset = pad(offset + t.n_bytes(), DEFAULT_ALIGNMENT).unwrap_or(u64::MAX);
    }
    pad_to_alignment(w)?;
    Ok(tensors)
}

/// Fill a tensor: norms are ones, matrices uniform with standard deviation 0.02 (as in
/// N(0, 0.02) initialisation: finite logits, deterministic output).
fn write_tensor_data(
    w: &mut impl Write,
    t: &TensorSpec,
    rng: &mut SplitMix64,
    scratch: &mut Vec<u8>,
    table: &[u16],
) -> io::Result<()> {
    const CHUNK: u64 = 1 << 16;
    let mut left = t.n_elements();
    while left > 0 {
        let n = left.min(CHUNK) as usize;
        scratch.clear();
        if t.ggml_type == GgmlType::F32 {
            scratch.extend(std::iter::repeat_n(1.0f32.to_le_bytes(), n).flatten());
        } else {
            fill_f16(scratch, n, rng, table);
        }
        w.write_all(scratch)?;
        left -= n as u64;
    }
    Ok(())
}

/// Weights are uniform on [-a, a] (standard deviation a / sqrt(3) = 0.02), from 16 random
/// bits each. Every one of the 65536 possible values is converted once, so writing a weight is
/// a table look-up: the wide speed model is written at memory speed, not conversion speed.
fn f16_table() -> Vec<u16> {
    const A: f32 = 0.02 * 1.732_050_8;
    const SCALE: f32 = 2.0 * A / 65536.0;
    (0..=u16::MAX)
        .map(|u| f32_to_f16(f32::from(u) * SCALE - A))
        .collect()
}

/// `n` F16 weights into `scratch`; each 64-bit random number gives four.
fn fill_f16(scratch: &mut Vec<u8>, n: usize, rng: &mut SplitMix64, table: &[u16]) {
    scratch.resize(n * 2, 0);
    for chunk in scratch.chunks_mut(8) {
        let r = rng.next();
        for (k, pair) in chunk.chunks_exact_mut(2).enumerate() {
            let bits = table
                .get(((r >> (16 * k)) & 0xffff) as usize)
                .copied()
                .unwrap_or(0);
            pair.copy_from_slice(&bits.to_le_bytes());
        }
    }
}

fn write_string(w: &mut impl Write, s: &str) -> io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn write_value(w: &mut impl Write, value: &Value) -> io::Result<()> {
    match value {
        Value::U8(v) => w.write_all(&[*v]),
        Value::I8(v) => w.write_all(&v.to_le_bytes()),
        Value::U16(v) => w.write_all(&v.to_le_bytes()),
        Value::I16(v) => w.write_all(&v.to_le_bytes()),
        Value::U32(v) => w.write_all(&v.to_le_bytes()),
        Value::I32(v) => w.write_all(&v.to_le_bytes()),
        Value::F32(v) => w.write_all(&v.to_le_bytes()),
        Value::Bool(v) => w.write_all(&[u8::from(*v)]),
        Value::String(s) => write_string(w, s),
        Value::U64(v) => w.write_all(&v.to_le_bytes()),
        Value::I64(v) => w.write_all(&v.to_le_bytes()),
        Value::F64(v) => w.write_all(&v.to_le_bytes()),
        Value::Array(a) => write_array(w, a),
    }
}

fn write_array(w: &mut impl Write, a: &Array) -> io::Result<()> {
    use super::reader::ArrayItems;
    w.write_all(&(a.elem_type as i32).to_le_bytes())?;
    w.write_all(&(a.len() as u64).to_le_bytes())?;
    match &a.items {
        ArrayItems::Fixed(bytes) => w.write_all(bytes),
        ArrayItems::Strings(v) => v.iter().try_for_each(|s| write_string(w, s)),
        ArrayItems::Nested(v) => v.iter().try_for_each(|x| write_array(w, x)),
    }
}

/// Counts bytes so that padding can be computed without seeking.
struct Counting<'a, W: Write> {
    inner: &'a mut W,
    written: u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn pad_to_alignment<W: Write>(w: &mut Counting<'_, W>) -> io::Result<()> {
    let target = pad(w.written, DEFAULT_ALIGNMENT).unwrap_or(w.written);
    let zeros = [0u8; DEFAULT_ALIGNMENT as usize];
    w.write_all(&zeros[..(target - w.written) as usize])
}

/// Write the model into `dir` unless a valid copy is already there; returns its path.
///
/// Valid means: it parses, has the expected tensor count and the expected size. A new file is
/// written to a temporary name and renamed, so a concurrent reader never sees half a file.
pub fn write_cached(params: &ModelParams, dir: &Path) -> Result<PathBuf, GgufError> {
    let path = dir.join(params.file_name());
    let io_err = |e: io::Error| GgufError::io(&path, &e);
    params
        .validate()
        .map_err(|e| io_err(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    if is_valid_copy(params, &path) {
        return Ok(path);
    }
    fs::create_dir_all(dir).map_err(io_err)?;
    let write = || {
        let mut staged = crate::files::Staged::create(&path)?;
        let mut w = BufWriter::with_capacity(1 << 20, staged.file());
        write_to(params, &mut w)?;
        w.flush()?;
        drop(w);
        staged.commit(true)
    };
    write().map_err(io_err)?;
    Ok(path)
}

/// The speed model's file name: the random-weights name with `-zeros`.
pub fn zeros_file_name(params: &ModelParams) -> String {
    let name = params.file_name();
    let stem = name.strip_suffix(".gguf").unwrap_or(&name);
    format!("{stem}-zeros.gguf")
}

/// Write the model with every matrix zero, as a sparse file, into `dir` unless a valid copy is
/// already there; returns its path and whether it was written now.
///
/// For the offload proof's speed workload, which needs a model of realistic width: llama.cpp
/// maps the weights from the file, so only the header and the F32 norms (ones) are written and
/// the matrices are holes that read as zeros. A zero matrix costs a matrix product exactly
/// what a random one does, so prompt processing still times the hardware, and a model of
/// hundreds of megabytes is written in milliseconds. Written to a temporary name and renamed,
/// like [`write_cached`].
pub fn write_zeros_cached(params: &ModelParams, dir: &Path) -> Result<(PathBuf, bool), GgufError> {
    let path = dir.join(zeros_file_name(params));
    let io_err = |e: io::Error| GgufError::io(&path, &e);
    params
        .validate()
        .map_err(|e| io_err(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    if is_valid_copy(params, &path) {
        return Ok((path, false));
    }
    fs::create_dir_all(dir).map_err(io_err)?;
    let write = || {
        let mut staged = crate::files::Staged::create(&path)?;
        write_zeros(params, staged.file())?;
        staged.commit(true)
    };
    write().map_err(io_err)?;
    Ok((path, true))
}

/// The header, then each F32 tensor (the norms: ones) at its offset, then the file's length
/// set to the end of the last tensor; returns that length.
fn write_zeros(params: &ModelParams, f: &mut File) -> io::Result<u64> {
    let mut header = Vec::new();
    let tensors = write_header(
        params,
        &params.metadata(),
        &mut Counting {
            inner: &mut header,
            written: 0,
        },
    )?;
    f.write_all(&header)?;
    let data = header.len() as u64;
    let mut offset = 0u64;
    for t in &tensors {
        if t.ggml_type == GgmlType::F32 {
            f.seek(SeekFrom::Start(data + offset))?;
            let ones: Vec<u8> = std::iter::repeat_n(1.0f32.to_le_bytes(), t.n_elements() as usize)
                .flatten()
                .collect();
            f.write_all(&ones)?;
        }
        offset = pad(offset + t.n_bytes(), DEFAULT_ALIGNMENT)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "model too large"))?;
    }
    f.set_len(data + offset)?;
    Ok(data + offset)
}

fn is_valid_copy(params: &ModelParams, path: &Path) -> bool {
    match read_file(path) {
        Ok(f) => {
            let expected_end = f.data_offset
                + f.tensors.last().map_or(0, |t| {
                    pad(t.offset + t.n_bytes, DEFAULT_ALIGNMENT).unwrap_or(0)
                });
            f.tensors.len() == params.tensors().len()
                && f.file_size == expected_end
                && f.get_u64("gpu_doctor.seed") == Some(params.seed)
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_rounds_to_nearest_even() {
        assert_eq!(f32_to_f16(0.0), 0x0000);
        assert_eq!(f32_to_f16(-0.0), 0x8000);
        assert_eq!(f32_to_f16(1.0), 0x3c00);
        assert_eq!(f32_to_f16(-2.0), 0xc000);
        assert_eq!(f32_to_f16(65504.0), 0x7bff);
        assert_eq!(f32_to_f16(65520.0), 0x7c00); // rounds up to infinity
        assert_eq!(f32_to_f16(1e6), 0x7c00);
        assert_eq!(f32_to_f16(f32::INFINITY), 0x7c00);
        assert_eq!(f32_to_f16(f32::NAN) & 0x7e00, 0x7e00);
        assert_eq!(f32_to_f16(6.103_515_6e-5), 0x0400); // smallest normal
        assert_eq!(f32_to_f16(5.960_464_5e-8), 0x0001); // smallest subnormal
        assert_eq!(f32_to_f16(2.0e-8), 0x0000);
        // 1 + 2^-11 is halfway between 1 and the next half: ties to even (1.0).
        assert_eq!(f32_to_f16(1.0 + 1.0 / 2048.0), 0x3c00);
        // 1 + 3 * 2^-11 is halfway between odd 0x3c01 and even 0x3c02.
        assert_eq!(f32_to_f16(1.0 + 3.0 / 2048.0), 0x3c02);
        assert_eq!(f32_to_f16(0.1), 0x2e66);
    }

    #[test]
    fn default_model_is_valid_and_small() {
        let p = ModelParams::placement();
        p.validate().unwrap();
        assert_eq!(p.head_dim(), 128);
        assert_eq!(p.tokens().len(), 263);
        assert_eq!(p.tensors().len(), 3 + 9 * 2);
        let mut buf = Vec::new();
        let n = write_to(&p, &mut buf).unwrap();
        assert_eq!(n, buf.len() as u64);
        assert!(
            (2_000_000..4_000_000).contains(&buf.len()),
            "{} bytes",
            buf.len()
        );
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let p = ModelParams::placement();
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        write_to(&p, &mut a).unwrap();
        write_to(&p, &mut b).unwrap();
        write_to(&p.clone().with_seed(7), &mut c).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(p.hash(), p.clone().with_seed(7).hash());
    }

    #[test]
    fn bad_shapes_are_refused() {
        let p = ModelParams::placement();
        assert!(p.clone().with_heads(16, 16).validate().is_err()); // head size 16
        assert!(p.clone().with_heads(2, 3).validate().is_err());
        assert!(p.clone().with_context(256).validate().is_err());
        assert!(p.clone().with_vocab(10).validate().is_err());
        assert!(p.clone().with_layers(0).validate().is_err());
        assert!(write_to(&p.with_context(256), &mut Vec::new()).is_err());
    }

    #[test]
    fn speed_model_has_cuda_heads() {
        let p = ModelParams::speed(4096, 4);
        p.validate().unwrap();
        assert_eq!((p.n_head, p.head_dim(), p.n_ff), (32, 128, 11008));
    }

    #[test]
    fn the_zeros_model_is_sparse_with_the_same_table_and_ones_for_norms() {
        let dir = std::env::temp_dir().join(format!("gguf-zeros-{}", std::process::id()));
        let p = ModelParams::speed(1024, 2);
        let (path, written) = write_zeros_cached(&p, &dir).unwrap();
        assert!(written);
        assert!(path.to_string_lossy().ends_with("-zeros.gguf"));
        let f = read_file(&path).unwrap();
        assert_eq!(f.tensors.len(), p.tensors().len());
        let bytes = fs::read(&path).unwrap();
        let mut random = Vec::new();
        write_to(&p, &mut random).unwrap();
        assert_eq!(
            bytes.len(),
            random.len(),
            "same layout as the random-weights model"
        );
        assert_eq!(
            &bytes[..f.data_offset as usize],
            &random[..f.data_offset as usize]
        );
        for t in &f.tensors {
            let at = (f.data_offset + t.offset) as usize;
            let data = &bytes[at..at + t.n_bytes as usize];
            if t.name.ends_with("norm.weight") {
                assert!(
                    data.chunks(4).all(|c| c == 1.0f32.to_le_bytes()),
                    "{}",
                    t.name
                );
            } else {
                assert!(data.iter().all(|&b| b == 0), "{}", t.name);
            }
        }
        let (again, written) = write_zeros_cached(&p, &dir).unwrap();
        assert_eq!((again, written), (path, false));
        let _ = fs::remove_dir_all(&dir);
    }
}
