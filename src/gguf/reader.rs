//! A GGUF reader hardened against malformed and hostile files.
//!
//! Why hardened: `gpu-doctor model` reads files a user downloaded from anywhere. A lying
//! header (a tensor count of 2^63, a string length of 2^60) must give a clear error, not an
//! allocation of that size, a panic or a hang. So:
//! - only a prefix of the file is read (it grows 1 MiB, 4 MiB, ... up to [`METADATA_CAP`]),
//!   and every count and length is checked before anything is allocated against the bytes
//!   that could still be read (what the file has left, and at most up to [`METADATA_CAP`]: a
//!   sparse 20 GB file claiming 5x10^8 tensors is refused) and against an absolute cap
//!   ([`MAX_COUNT`]); lists are then grown as their items are really read, never reserved
//!   whole from a count, so memory stays within a small multiple of the bytes read;
//! - nested arrays stop at [`MAX_ARRAY_DEPTH`] (no recursion a file can drive);
//! - every error names the file, the offset where the bad field starts and what was expected.

use super::{pad, GgmlType, ValueType, DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS, MAX_NAME};
use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The most bytes of metadata (header, key/values, tensor table) this reader accepts.
/// Real models need a few MiB (a 150k-token vocabulary with merges is about 10 MiB).
pub const METADATA_CAP: u64 = 64 << 20;
/// Arrays of arrays of arrays are as deep as GGUF files go in practice.
pub const MAX_ARRAY_DEPTH: u32 = 3;
const FIRST_READ: u64 = 1 << 20;
/// Most items a count in a GGUF file may claim (tensors, key/values, array elements), whatever
/// the bytes left: the largest real vocabularies have a few hundred thousand tokens and the
/// largest models a few thousand tensors.
pub const MAX_COUNT: u64 = 1 << 24;
/// Most items reserved ahead from a count; lists grow beyond it as items are really read.
const RESERVE_AHEAD: u64 = 4096;
/// Fewest bytes of one tensor info: name length, n_dims, type, offset.
const MIN_TENSOR_INFO: u64 = 8 + 4 + 4 + 8;
/// Fewest bytes of one key/value: key length, type, a one-byte value.
const MIN_KV: u64 = 8 + 4 + 1;

/// What went wrong, for callers that branch on it; the message says the details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufErrorKind {
    /// The file could not be opened or read.
    Io,
    /// Not a GGUF file (wrong magic).
    BadMagic,
    /// A GGUF version this reader does not read (1, or big-endian files).
    UnsupportedVersion,
    /// The file ends before a field or a tensor's data.
    Truncated,
    /// A count or length larger than the file could hold, or metadata past [`METADATA_CAP`].
    TooLarge,
    /// An unknown value type or tensor type.
    BadType,
    /// Any other value llama.cpp would reject (duplicate key, bad alignment, dims...).
    Invalid,
}

/// An error reading a GGUF file: `model.gguf: offset 24: tensor count ... is larger ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufError {
    pub path: PathBuf,
    /// Byte offset of the field at fault, when there is one.
    pub offset: Option<u64>,
    pub kind: GgufErrorKind,
    pub message: String,
}

impl fmt::Display for GgufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offset {
            Some(off) => write!(f, "{}: offset {off}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for GgufError {}

impl GgufError {
    pub fn io(path: &Path, err: &std::io::Error) -> Self {
        GgufError {
            path: path.to_path_buf(),
            offset: None,
            kind: GgufErrorKind::Io,
            message: format!("cannot read: {err}"),
        }
    }
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Array),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// An array value. Fixed-size elements stay as their little-endian bytes, so a large token
/// score table costs its size in the file and not 32 bytes per element.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub elem_type: ValueType,
    pub items: ArrayItems,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ArrayItems {
    /// Raw little-endian elements of `elem_type.fixed_size()` bytes each.
    Fixed(Vec<u8>),
    Strings(Vec<String>),
    Nested(Vec<Array>),
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// Any non-negative integer value, whatever its width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

impl Array {
    pub fn len(&self) -> usize {
        match &self.items {
            ArrayItems::Fixed(bytes) => bytes.len() / self.elem_type.fixed_size().unwrap_or(1),
            ArrayItems::Strings(v) => v.len(),
            ArrayItems::Nested(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn strings(&self) -> Option<&[String]> {
        match &self.items {
            ArrayItems::Strings(v) => Some(v),
            _ => None,
        }
    }

    /// Element `i` as a value (nested arrays come back as `Value::Array`).
    pub fn get(&self, i: usize) -> Option<Value> {
        match &self.items {
            ArrayItems::Strings(v) => v.get(i).cloned().map(Value::String),
            ArrayItems::Nested(v) => v.get(i).cloned().map(Value::Array),
            ArrayItems::Fixed(bytes) => {
                let size = self.elem_type.fixed_size()?;
                let raw =
                    bytes.get(i.checked_mul(size)?..i.checked_mul(size)?.checked_add(size)?)?;
                Some(scalar(self.elem_type, raw))
            }
        }
    }

    /// Every element as a value; meant for small arrays and tests.
    pub fn values(&self) -> impl Iterator<Item = Value> + '_ {
        (0..self.len()).filter_map(move |i| self.get(i))
    }

    pub fn from_strings(items: Vec<String>) -> Self {
        Array {
            elem_type: ValueType::String,
            items: ArrayItems::Strings(items),
        }
    }

    pub fn from_f32(items: &[f32]) -> Self {
        Array {
            elem_type: ValueType::F32,
            items: ArrayItems::Fixed(items.iter().flat_map(|v| v.to_le_bytes()).collect()),
        }
    }

    pub fn from_i32(items: &[i32]) -> Self {
        Array {
            elem_type: ValueType::I32,
            items: ArrayItems::Fixed(items.iter().flat_map(|v| v.to_le_bytes()).collect()),
        }
    }
}

/// Decode one fixed-size little-endian scalar; `raw` has exactly the type's size.
fn scalar(ty: ValueType, raw: &[u8]) -> Value {
    let b = |n: usize| raw.get(n).copied().unwrap_or(0);
    let a2 = [b(0), b(1)];
    let a4 = [b(0), b(1), b(2), b(3)];
    let a8 = [b(0), b(1), b(2), b(3), b(4), b(5), b(6), b(7)];
    match ty {
        ValueType::U8 => Value::U8(b(0)),
        ValueType::I8 => Value::I8(b(0) as i8),
        ValueType::Bool => Value::Bool(b(0) != 0),
        ValueType::U16 => Value::U16(u16::from_le_bytes(a2)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(a2)),
        ValueType::U32 => Value::U32(u32::from_le_bytes(a4)),
        ValueType::I32 => Value::I32(i32::from_le_bytes(a4)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(a4)),
        ValueType::U64 => Value::U64(u64::from_le_bytes(a8)),
        ValueType::I64 => Value::I64(i64::from_le_bytes(a8)),
        // Strings and arrays never reach here; F64 is the remaining fixed type.
        _ => Value::F64(f64::from_le_bytes(a8)),
    }
}

/// One entry of the tensor table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// `ne`, innermost (contiguous) dimension first.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Offset of the data relative to [`GgufFile::data_offset`].
    pub offset: u64,
    pub n_elements: u64,
    pub n_bytes: u64,
}

/// The header, metadata and tensor table of a GGUF file (tensor data is not read).
#[derive(Debug, Clone, PartialEq)]
pub struct GgufFile {
    pub version: u32,
    /// Key/values in file order.
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Where tensor data starts (a multiple of `alignment`).
    pub data_offset: u64,
    pub file_size: u64,
}

impl GgufFile {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_u64)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(Value::as_f64)
    }

    /// Sum of every tensor's data size.
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.n_bytes).sum()
    }
}

/// Read the metadata and tensor table of the GGUF file at `path`.
pub fn read_file(path: &Path) -> Result<GgufFile, GgufError> {
    read_file_capped(path, METADATA_CAP)
}

/// [`read_file`] with another cap on the metadata size (tests use small ones).
pub fn read_file_capped(path: &Path, cap: u64) -> Result<GgufFile, GgufError> {
    let mut file = File::open(path).map_err(|e| GgufError::io(path, &e))?;
    let file_len = file.metadata().map_err(|e| GgufError::io(path, &e))?.len();
    let limit = file_len.min(cap);
    let mut want = FIRST_READ.min(limit);
    let mut buf = Vec::new();
    loop {
        let missing = want.saturating_sub(buf.len() as u64);
        (&mut file)
            .take(missing)
            .read_to_end(&mut buf)
            .map_err(|e| GgufError::io(path, &e))?;
        // A file that shrank while being read is judged by what was really there.
        let file_len = if (buf.len() as u64) < want {
            buf.len() as u64
        } else {
            file_len
        };
        let last = buf.len() as u64 >= limit || file_len == buf.len() as u64;
        match parse(path, &buf, file_len, last, cap) {
            Ok(parsed) => return Ok(parsed),
            Err(Stop::Error(e)) => return Err(e),
            Err(Stop::NeedMore) => want = want.saturating_mul(4).min(limit),
        }
    }
}

/// Read a GGUF file held in memory; `name` is only used in error messages.
pub fn read_bytes(name: &Path, bytes: &[u8]) -> Result<GgufFile, GgufError> {
    match parse(name, bytes, bytes.len() as u64, true, u64::MAX) {
        Ok(parsed) => Ok(parsed),
        Err(Stop::Error(e)) => Err(e),
        // Unreachable with `last = true`, but never panic on it.
        Err(Stop::NeedMore) => Err(GgufError {
            path: name.to_path_buf(),
            offset: None,
            kind: GgufErrorKind::Truncated,
            message: "the file ends inside the metadata".into(),
        }),
    }
}

/// Why parsing stopped: a real error, or the prefix read so far was too short.
enum Stop {
    Error(GgufError),
    NeedMore,
}

type Res<T> = Result<T, Stop>;
/// What a field is, for error messages; built only when there is an error to report.
type Desc<'d> = &'d dyn Fn() -> String;

/// A cursor over the prefix read so far, which knows how long the whole file is.
struct Cursor<'a> {
    path: &'a Path,
    buf: &'a [u8],
    pos: usize,
    file_len: u64,
    /// No more of the file will be read: running off `buf` is an error, not `NeedMore`.
    last: bool,
    cap: u64,
}

impl<'a> Cursor<'a> {
    fn pos(&self) -> u64 {
        self.pos as u64
    }

    fn fail(&self, offset: u64, kind: GgufErrorKind, message: String) -> Stop {
        Stop::Error(GgufError {
            path: self.path.to_path_buf(),
            offset: Some(offset),
            kind,
            message,
        })
    }

    /// Bytes of the file after the cursor.
    fn remaining(&self) -> u64 {
        self.file_len.saturating_sub(self.pos())
    }

    fn take(&mut self, n: u64, what: Desc) -> Res<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.fail(
                self.pos(),
                GgufErrorKind::Truncated,
                format!(
                    "{} needs {n} bytes but the file ends after {} more",
                    what(),
                    self.remaining()
                ),
            ));
        }
        let end = self.pos as u64 + n;
        if end > self.buf.len() as u64 {
            if !self.last {
                return Err(Stop::NeedMore);
            }
            return Err(self.fail(
                self.pos(),
                GgufErrorKind::TooLarge,
                format!(
                    "{} goes past the first {} MiB, the most metadata this reader accepts",
                    what(),
                    self.cap >> 20
                ),
            ));
        }
        let start = self.pos;
        self.pos = end as usize;
        Ok(&self.buf[start..self.pos])
    }

    fn array<const N: usize>(&mut self, what: Desc) -> Res<[u8; N]> {
        let raw = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(raw);
        Ok(out)
    }

    fn u32(&mut self, what: Desc) -> Res<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn i32(&mut self, what: Desc) -> Res<i32> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: Desc) -> Res<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn i64(&mut self, what: Desc) -> Res<i64> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }

    /// A count of items each at least `min_size` bytes long, checked against the bytes that
    /// could still be read (the file's, up to the metadata cap) and [`MAX_COUNT`].
    fn count(&mut self, raw: u64, min_size: u64, what: Desc, at: u64) -> Res<u64> {
        let need = raw.checked_mul(min_size);
        if need.is_none_or(|n| n > self.remaining()) {
            return Err(self.fail(
                at,
                GgufErrorKind::TooLarge,
                format!("{} {raw} is larger than the file could hold", what()),
            ));
        }
        let readable = self.cap.saturating_sub(self.pos());
        if need.is_none_or(|n| n > readable) {
            return Err(self.fail(
                at,
                GgufErrorKind::TooLarge,
                format!(
                    "{} {raw} is larger than the first {} MiB of metadata could hold, the most \
                     metadata this reader accepts",
                    what(),
                    self.cap >> 20
                ),
            ));
        }
        if raw > MAX_COUNT {
            return Err(self.fail(
                at,
                GgufErrorKind::TooLarge,
                format!(
                    "{} {raw} is more than {MAX_COUNT}, the most this reader accepts",
                    what()
                ),
            ));
        }
        Ok(raw)
    }

    fn string(&mut self, what: Desc) -> Res<String> {
        let at = self.pos();
        let len = self.u64(&|| format!("the length of {}", what()))?;
        if len > self.remaining() {
            return Err(self.fail(
                at,
                GgufErrorKind::TooLarge,
                format!(
                    "{} claims {len} bytes but only {} bytes of the file are left",
                    what(),
                    self.remaining()
                ),
            ));
        }
        let raw = self.take(len, what)?;
        Ok(String::from_utf8_lossy(raw).into_owned())
    }

    fn value_type(&mut self, what: Desc) -> Res<ValueType> {
        let at = self.pos();
        let id = self.i32(what)?;
        ValueType::from_id(id).ok_or_else(|| {
            self.fail(
                at,
                GgufErrorKind::BadType,
                format!("{} is {id}, expected a GGUF value type 0..=12", what()),
            )
        })
    }

    fn value(&mut self, ty: ValueType, key: &str, depth: u32) -> Res<Value> {
        match ty {
            ValueType::String => Ok(Value::String(self.string(&|| format!("string of {key}"))?)),
            ValueType::Array => Ok(Value::Array(self.array_value(key, depth)?)),
            fixed => {
                let size = fixed.fixed_size().unwrap_or(1) as u64;
                let raw = self.take(size, &|| format!("the value of {key}"))?;
                Ok(scalar(fixed, raw))
            }
        }
    }

    fn array_value(&mut self, key: &str, depth: u32) -> Res<Array> {
        let at = self.pos();
        if depth >= MAX_ARRAY_DEPTH {
            return Err(self.fail(
                at,
                GgufErrorKind::Invalid,
                format!("{key}: arrays nested more than {MAX_ARRAY_DEPTH} deep"),
            ));
        }
        let elem_type = self.value_type(&|| format!("the element type of {key}"))?;
        let len_at = self.pos();
        let raw = self.u64(&|| format!("the length of {key}"))?;
        let len = self.count(
            raw,
            elem_type.min_size(),
            &|| format!("{key}: array length"),
            len_at,
        )?;
        let items = match elem_type {
            ValueType::String => {
                let mut v = Vec::with_capacity(reserve(len));
                for _ in 0..len {
                    v.push(self.string(&|| format!("an element of {key}"))?);
                }
                ArrayItems::Strings(v)
            }
            ValueType::Array => {
                let mut v = Vec::with_capacity(reserve(len));
                for _ in 0..len {
                    v.push(self.array_value(key, depth + 1)?);
                }
                ArrayItems::Nested(v)
            }
            fixed => {
                let size = fixed.fixed_size().unwrap_or(1) as u64;
                // `count` bounded len * size by the bytes left, so this cannot overflow.
                ArrayItems::Fixed(
                    self.take(len * size, &|| format!("the elements of {key}"))?
                        .to_vec(),
                )
            }
        };
        Ok(Array { elem_type, items })
    }
}

fn parse(path: &Path, buf: &[u8], file_len: u64, last: bool, cap: u64) -> Res<GgufFile> {
    let mut c = Cursor {
        path,
        buf,
        pos: 0,
        file_len,
        last,
        cap,
    };
    let version = header(&mut c)?;
    let n_tensors_raw = c.i64(&|| "the tensor count".into())?;
    let n_kv_raw = c.i64(&|| "the key/value count".into())?;
    let n_tensors = non_negative(&c, n_tensors_raw, "tensor count", 8)?;
    let n_kv = non_negative(&c, n_kv_raw, "key/value count", 16)?;
    c.count(n_tensors, MIN_TENSOR_INFO, &|| "tensor count".into(), 8)?;
    c.count(n_kv, MIN_KV, &|| "key/value count".into(), 16)?;
    let metadata = key_values(&mut c, n_kv)?;
    let alignment = alignment(&c, &metadata)?;
    let mut tensors = Vec::with_capacity(reserve(n_tensors));
    let mut names = HashSet::new();
    for i in 0..n_tensors {
        let at = c.pos();
        let t = tensor_info(&mut c, i)?;
        if !names.insert(t.name.clone()) {
            return Err(c.fail(
                at,
                GgufErrorKind::Invalid,
                format!("duplicate tensor name '{}'", t.name),
            ));
        }
        tensors.push(t);
    }
    let table_end = c.pos();
    let data_offset = pad(table_end, alignment).unwrap_or(u64::MAX);
    check_data(&c, &tensors, alignment, data_offset, table_end)?;
    Ok(GgufFile {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
        file_size: file_len,
    })
}

fn header(c: &mut Cursor) -> Res<u32> {
    let magic: [u8; 4] = c.array(&|| "the magic".into())?;
    if magic != MAGIC {
        let hint = match &magic {
            b"lmgg" | b"fmgg" | b"tjgg" | b"GGML" | b"GGJT" => {
                " (an old GGML/GGJT model: convert it to GGUF)"
            }
            _ => "",
        };
        return Err(c.fail(
            0,
            GgufErrorKind::BadMagic,
            format!(
                "not a GGUF file: expected magic \"GGUF\", found {:?}{hint}",
                magic.escape_ascii().to_string()
            ),
        ));
    }
    let version = c.u32(&|| "the version".into())?;
    match version {
        2 | 3 => Ok(version),
        1 => Err(c.fail(
            4,
            GgufErrorKind::UnsupportedVersion,
            "GGUF version 1 is not supported (llama.cpp dropped it too)".into(),
        )),
        v if v.swap_bytes() <= 3 => Err(c.fail(
            4,
            GgufErrorKind::UnsupportedVersion,
            "a big-endian GGUF file; this machine needs a little-endian one".into(),
        )),
        v => Err(c.fail(
            4,
            GgufErrorKind::UnsupportedVersion,
            format!("GGUF version {v}, expected 2 or 3"),
        )),
    }
}

/// Room to reserve for `count` items: at most [`RESERVE_AHEAD`]; the rest is grown as read.
fn reserve(count: u64) -> usize {
    count.min(RESERVE_AHEAD) as usize
}

fn non_negative(c: &Cursor, raw: i64, what: &str, at: u64) -> Res<u64> {
    u64::try_from(raw).map_err(|_| {
        c.fail(
            at,
            GgufErrorKind::Invalid,
            format!("{what} {raw} is negative"),
        )
    })
}

fn key_values(c: &mut Cursor, n_kv: u64) -> Res<Vec<(String, Value)>> {
    let mut out: Vec<(String, Value)> = Vec::with_capacity(reserve(n_kv));
    let mut seen = HashSet::new();
    for i in 0..n_kv {
        let at = c.pos();
        let key = c.string(&|| format!("key #{i}"))?;
        if !seen.insert(key.clone()) {
            return Err(c.fail(at, GgufErrorKind::Invalid, format!("duplicate key '{key}'")));
        }
        let ty = c.value_type(&|| format!("the type of {key}"))?;
        let value = c.value(ty, &key, 0)?;
        out.push((key, value));
    }
    Ok(out)
}

fn alignment(c: &Cursor, metadata: &[(String, Value)]) -> Res<u64> {
    match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => Ok(DEFAULT_ALIGNMENT),
        Some((_, Value::U32(a))) if a.is_power_of_two() => Ok((*a).into()),
        Some((_, v)) => Err(c.fail(
            c.pos(),
            GgufErrorKind::Invalid,
            format!("general.alignment is {v:?}, expected a UINT32 power of two"),
        )),
    }
}

fn tensor_info(c: &mut Cursor, i: u64) -> Res<TensorInfo> {
    let at = c.pos();
    let name = c.string(&|| format!("the name of tensor #{i}"))?;
    if name.len() >= MAX_NAME {
        return Err(c.fail(
            at,
            GgufErrorKind::Invalid,
            format!(
                "tensor name '{name}' is {} bytes, expected under {MAX_NAME}",
                name.len()
            ),
        ));
    }
    let dims_at = c.pos();
    let n_dims = c.u32(&|| format!("the dimension count of '{name}'"))?;
    if n_dims > MAX_DIMS {
        return Err(c.fail(
            dims_at,
            GgufErrorKind::Invalid,
            format!("tensor '{name}' has {n_dims} dimensions, expected at most {MAX_DIMS}"),
        ));
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for d in 0..n_dims {
        let ne_at = c.pos();
        let ne = c.i64(&|| format!("dimension {d} of '{name}'"))?;
        dims.push(u64::try_from(ne).map_err(|_| {
            c.fail(
                ne_at,
                GgufErrorKind::Invalid,
                format!("tensor '{name}' dimension {d} is {ne}, expected >= 0"),
            )
        })?);
    }
    // ggml keeps element counts in int64_t.
    let n_elements = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= i64::MAX as u64)
        .ok_or_else(|| {
            c.fail(
                dims_at,
                GgufErrorKind::Invalid,
                format!("tensor '{name}' has dimensions {dims:?} whose product overflows"),
            )
        })?;
    let type_at = c.pos();
    let type_id = c.i32(&|| format!("the type of '{name}'"))?;
    let ggml_type = u32::try_from(type_id)
        .ok()
        .and_then(GgmlType::from_id)
        .ok_or_else(|| {
            c.fail(
                type_at,
                GgufErrorKind::BadType,
                format!("tensor '{name}' has ggml type {type_id}, which is not a known type"),
            )
        })?;
    let ne0 = dims.first().copied().unwrap_or(1);
    if !ne0.is_multiple_of(ggml_type.block_size) {
        return Err(c.fail(
            dims_at,
            GgufErrorKind::Invalid,
            format!(
                "tensor '{name}': {ne0} elements per row is not a multiple of the {} block size {}",
                ggml_type.name, ggml_type.block_size
            ),
        ));
    }
    let overflow = || {
        c.fail(
            dims_at,
            GgufErrorKind::Invalid,
            format!("tensor '{name}' size overflows"),
        )
    };
    let row = ggml_type.row_bytes(ne0).ok_or_else(overflow)?;
    let n_bytes = dims
        .iter()
        .skip(1)
        .try_fold(row, |acc, &d| acc.checked_mul(d))
        .ok_or_else(overflow)?;
    let offset = c.u64(&|| format!("the data offset of '{name}'"))?;
    Ok(TensorInfo {
        name,
        dims,
        ggml_type,
        offset,
        n_elements,
        n_bytes,
    })
}

/// Offsets must be exactly cumulative (gguf.cpp rejects anything else) and all data present.
fn check_data(
    c: &Cursor,
    tensors: &[TensorInfo],
    alignment: u64,
    data_offset: u64,
    table_end: u64,
) -> Res<()> {
    let mut expected = 0u64;
    for t in tensors {
        if t.offset != expected {
            return Err(c.fail(
                table_end,
                GgufErrorKind::Invalid,
                format!(
                    "tensor '{}' has offset {}, expected {expected}",
                    t.name, t.offset
                ),
            ));
        }
        let end = data_offset
            .checked_add(t.offset)
            .and_then(|x| x.checked_add(t.n_bytes));
        if end.is_none_or(|e| e > c.file_len) {
            return Err(c.fail(
                data_offset.saturating_add(t.offset),
                GgufErrorKind::Truncated,
                format!(
                    "tensor '{}' needs {} bytes of data but the file ends at byte {}",
                    t.name, t.n_bytes, c.file_len
                ),
            ));
        }
        expected = pad(expected.saturating_add(t.n_bytes), alignment).unwrap_or(u64::MAX);
    }
    Ok(())
}
