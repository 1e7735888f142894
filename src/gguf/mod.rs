//! GGUF: the file format of llama.cpp models.
//!
//! Two jobs, both for the llama.cpp offload proof and for `gpu-doctor model FILE.gguf`:
//! - [`writer`] writes a small synthetic llama-architecture model (random weights from a fixed
//!   seed) that every llama.cpp since GGUF v3 loads, once, into a cache folder;
//! - [`reader`] reads the header, metadata and tensor table of any GGUF file, including hostile
//!   ones: every length is bounded by the bytes that are really there, so a lying file gives a
//!   clear error naming the offset instead of a huge allocation or a panic;
//! - [`model`] turns what was read into a summary (architecture, layers, quantization, size)
//!   and an estimate of how many layers fit in a GPU's free memory.
//!
//! Container rules follow `ggml/src/gguf.cpp` (see docs/model-fit.md and the research notes):
//! little-endian, magic `GGUF`, version 3 (2 also read), i64 counts, u64-length strings,
//! tensor data aligned to `general.alignment` (default 32) with exactly cumulative offsets.

pub mod model;
pub mod reader;
pub mod writer;

pub use model::{layers_that_fit, summarize, FitEstimate, KvCacheType, ModelSummary, TypeUsage};
pub use reader::{read_bytes, read_file, GgufError, GgufErrorKind, GgufFile, TensorInfo, Value};
pub use writer::{write_cached, write_zeros_cached, zeros_file_name, ModelParams};

/// The four bytes every GGUF file starts with.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// The version this module writes.
pub const VERSION: u32 = 3;
/// `GGUF_DEFAULT_ALIGNMENT` in gguf.cpp; used when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// `GGML_MAX_NAME`: tensor names must be shorter than this.
pub const MAX_NAME: usize = 64;
/// `GGML_MAX_DIMS`.
pub const MAX_DIMS: u32 = 4;

/// Metadata value type ids (`enum gguf_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    pub fn from_id(id: i32) -> Option<Self> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// Size in the file of a fixed-size value; `None` for strings and arrays.
    pub fn fixed_size(self) -> Option<usize> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    /// The fewest bytes one value of this type can take in the file (used to bound counts).
    pub fn min_size(self) -> u64 {
        match self {
            ValueType::String => 8,
            ValueType::Array => 12,
            other => other.fixed_size().unwrap_or(1) as u64,
        }
    }

    /// The name gguf-py uses (`GGUFValueType`), also used in error messages.
    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "UINT8",
            I8 => "INT8",
            U16 => "UINT16",
            I16 => "INT16",
            U32 => "UINT32",
            I32 => "INT32",
            F32 => "FLOAT32",
            Bool => "BOOL",
            String => "STRING",
            Array => "ARRAY",
            U64 => "UINT64",
            I64 => "INT64",
            F64 => "FLOAT64",
        }
    }
}

/// A tensor data type (`enum ggml_type`) with its block layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgmlType {
    pub id: u32,
    pub name: &'static str,
    /// Elements per block (1 for plain types, 32 or 256 for quantized ones).
    pub block_size: u64,
    /// Bytes per block.
    pub type_size: u64,
}

/// `(id, name, block size, bytes per block)` from ggml.c's `type_traits` (ids 4, 5 and 31-33
/// were removed upstream). gguf-py's `GGML_QUANT_SIZES` is cross-checked in tests/gguf.rs;
/// it still says 40 bytes for Q8_1, whose block is two halves and 32 quants (36) in ggml.
const GGML_TYPES: &[(u32, &str, u64, u64)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 36),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
    (40, "NVFP4", 64, 36),
    (41, "Q1_0", 128, 18),
];

impl GgmlType {
    pub const F32: GgmlType = GgmlType {
        id: 0,
        name: "F32",
        block_size: 1,
        type_size: 4,
    };
    pub const F16: GgmlType = GgmlType {
        id: 1,
        name: "F16",
        block_size: 1,
        type_size: 2,
    };

    pub fn from_id(id: u32) -> Option<Self> {
        GGML_TYPES
            .iter()
            .find(|t| t.0 == id)
            .map(|&(id, name, block_size, type_size)| GgmlType {
                id,
                name,
                block_size,
                type_size,
            })
    }

    pub fn from_name(name: &str) -> Option<Self> {
        GGML_TYPES
            .iter()
            .find(|t| t.1.eq_ignore_ascii_case(name))
            .and_then(|t| Self::from_id(t.0))
    }

    /// Every known type, for tests and tables.
    pub fn all() -> impl Iterator<Item = GgmlType> {
        GGML_TYPES.iter().filter_map(|t| Self::from_id(t.0))
    }

    /// Bytes of one row of `ne0` elements; `None` when `ne0` is not a whole number of blocks
    /// or the product overflows.
    pub fn row_bytes(self, ne0: u64) -> Option<u64> {
        if !ne0.is_multiple_of(self.block_size) {
            return None;
        }
        (ne0 / self.block_size).checked_mul(self.type_size)
    }
}

/// Round `x` up to a multiple of `align` (a power of two); `None` on overflow.
pub fn pad(x: u64, align: u64) -> Option<u64> {
    let rem = x % align;
    if rem == 0 {
        Some(x)
    } else {
        x.checked_add(align - rem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ggml_table_is_consistent() {
        for t in GgmlType::all() {
            assert_eq!(GgmlType::from_name(t.name), Some(t));
            assert!(t.block_size.is_power_of_two() && t.type_size > 0);
        }
        assert_eq!(GgmlType::from_id(1), Some(GgmlType::F16));
        assert_eq!(GgmlType::from_id(4), None);
        assert_eq!(GgmlType::from_name("q4_k").map(|t| t.id), Some(12));
        assert_eq!(
            GgmlType::from_name("Q8_0").and_then(|t| t.row_bytes(64)),
            Some(68)
        );
        assert_eq!(
            GgmlType::from_name("Q8_0").and_then(|t| t.row_bytes(33)),
            None
        );
    }

    #[test]
    fn pad_rounds_up() {
        assert_eq!(pad(0, 32), Some(0));
        assert_eq!(pad(1, 32), Some(32));
        assert_eq!(pad(64, 32), Some(64));
        assert_eq!(pad(u64::MAX, 32), None);
    }
}
