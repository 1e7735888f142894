//! A small, hardened reader of an ELF shared object's dynamic section: the libraries it needs
//! (`DT_NEEDED`), its own name (`DT_SONAME`) and its search paths (`DT_RUNPATH`, `DT_RPATH`).
//!
//! The doctor reads these to tell, without loading anything, which CUDA runtime a native
//! library was built against (llama-cpp-python before 0.3.2 linked CUDA straight into
//! `libllama.so`; its `libggml-cuda.so` needs `libcudart.so.12` or `.13`). Loading the library
//! instead could run its constructors, crash, or pull in a driver; reading its headers cannot.
//!
//! The files come from the user's disk and may be truncated, corrupt or hostile, and some are
//! huge (a CUDA backend is hundreds of MiB, with its dynamic section near the end). So the
//! reader never maps or slurps the file: it reads the few pieces it needs at their offsets,
//! checks every offset and count against the file size with checked arithmetic, caps the
//! program header count, the dynamic entry count and each string's length, and stops after a
//! fixed byte budget. ELF32 and ELF64, little- and big-endian, are understood. It never panics.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// The most bytes one call may read from a file, all pieces together. A real dynamic section
/// plus a few dozen names is a few KiB; this leaves room for odd but valid files.
pub const READ_BUDGET: u64 = 4 * 1024 * 1024;
/// More program headers than this is not a shared library anyone built.
const MAX_PROGRAM_HEADERS: u64 = 512;
/// Dynamic section entries read at most (a real one has 30 to 60).
const MAX_DYNAMIC_ENTRIES: u64 = 4096;
/// Longest library name or search path kept.
const MAX_STRING: u64 = 4096;
/// Most DT_NEEDED entries kept.
const MAX_NEEDED: usize = 256;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
const DT_SONAME: u64 = 14;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;

/// What the dynamic section of one ELF file says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DynamicInfo {
    /// 32 or 64.
    pub class: u8,
    pub big_endian: bool,
    /// `e_machine` (62 = x86-64, 183 = AArch64).
    pub machine: u16,
    /// `DT_NEEDED` entries, in file order.
    pub needed: Vec<String>,
    pub soname: Option<String>,
    pub runpath: Option<String>,
    pub rpath: Option<String>,
}

/// Why a file's dynamic section could not be read.
#[derive(Debug)]
pub enum ElfError {
    Io(io::Error),
    /// The file does not start with the ELF magic.
    NotElf,
    /// An ELF file that is statically linked or otherwise has no PT_DYNAMIC segment.
    NoDynamicSection,
    /// Inconsistent or out-of-range headers; the text says which.
    Malformed(String),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::Io(e) => write!(f, "{e}"),
            ElfError::NotElf => write!(f, "not an ELF file"),
            ElfError::NoDynamicSection => write!(f, "ELF file without a dynamic section"),
            ElfError::Malformed(what) => write!(f, "malformed ELF file: {what}"),
        }
    }
}

impl std::error::Error for ElfError {}

impl From<io::Error> for ElfError {
    fn from(e: io::Error) -> Self {
        ElfError::Io(e)
    }
}

fn malformed(what: impl Into<String>) -> ElfError {
    ElfError::Malformed(what.into())
}

/// Read the dynamic section of the ELF file at `path`.
pub fn read_dynamic(path: &Path) -> Result<DynamicInfo, ElfError> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    parse(&mut FileSource::new(file, size))
}

/// Parse the dynamic section of an ELF image held in memory.
pub fn parse_dynamic(bytes: &[u8]) -> Result<DynamicInfo, ElfError> {
    parse(&mut SliceSource {
        bytes,
        budget: READ_BUDGET,
    })
}

/// Random access to the file's bytes, bounded by its size and by [`READ_BUDGET`].
trait Source {
    fn size(&self) -> u64;
    /// Exactly `len` bytes at `offset`, or an error when they are not all inside the file.
    fn read_at(&mut self, offset: u64, len: u64) -> Result<Vec<u8>, ElfError>;
    /// Up to `len` bytes at `offset`, fewer at the end of the file.
    fn read_up_to(&mut self, offset: u64, len: u64) -> Result<Vec<u8>, ElfError> {
        if offset >= self.size() {
            return Err(malformed(format!(
                "offset {offset} beyond the end of the file"
            )));
        }
        let len = len.min(self.size() - offset);
        self.read_at(offset, len)
    }
}

fn check_range(size: u64, budget: &mut u64, offset: u64, len: u64) -> Result<(), ElfError> {
    let end = offset
        .checked_add(len)
        .ok_or_else(|| malformed("offset overflow"))?;
    if end > size {
        return Err(malformed(format!(
            "{len} bytes at offset {offset} run past the end of the file ({size} bytes)"
        )));
    }
    if len > *budget {
        return Err(malformed(
            "headers ask for more data than a dynamic section needs",
        ));
    }
    *budget -= len;
    Ok(())
}

struct FileSource {
    file: File,
    size: u64,
    budget: u64,
}

impl FileSource {
    fn new(file: File, size: u64) -> Self {
        FileSource {
            file,
            size,
            budget: READ_BUDGET,
        }
    }
}

impl Source for FileSource {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&mut self, offset: u64, len: u64) -> Result<Vec<u8>, ElfError> {
        check_range(self.size, &mut self.budget, offset, len)?;
        let len = usize::try_from(len).map_err(|_| malformed("length too large"))?;
        self.file.seek(SeekFrom::Start(offset))?;
        let mut buf = vec![0u8; len];
        // The file may shrink between metadata() and now; a short read is an error, not a panic.
        self.file.read_exact(&mut buf)?;
        Ok(buf)
    }
}

struct SliceSource<'a> {
    bytes: &'a [u8],
    budget: u64,
}

impl Source for SliceSource<'_> {
    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn read_at(&mut self, offset: u64, len: u64) -> Result<Vec<u8>, ElfError> {
        check_range(self.size(), &mut self.budget, offset, len)?;
        // check_range proved offset + len <= bytes.len(), so both fit in usize.
        let start = offset as usize;
        let end = start + len as usize;
        Ok(self.bytes.get(start..end).unwrap_or_default().to_vec())
    }
}

/// Field decoding for one class and byte order.
#[derive(Debug, Clone, Copy)]
struct Format {
    is64: bool,
    big: bool,
}

impl Format {
    fn u16(self, b: &[u8], at: usize) -> Option<u16> {
        let raw: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(if self.big {
            u16::from_be_bytes(raw)
        } else {
            u16::from_le_bytes(raw)
        })
    }
    fn u32(self, b: &[u8], at: usize) -> Option<u32> {
        let raw: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if self.big {
            u32::from_be_bytes(raw)
        } else {
            u32::from_le_bytes(raw)
        })
    }
    fn u64(self, b: &[u8], at: usize) -> Option<u64> {
        let raw: [u8; 8] = b.get(at..at.checked_add(8)?)?.try_into().ok()?;
        Some(if self.big {
            u64::from_be_bytes(raw)
        } else {
            u64::from_le_bytes(raw)
        })
    }
    /// A word-sized field: 4 bytes in ELF32, 8 in ELF64.
    fn word(self, b: &[u8], at: usize) -> Option<u64> {
        if self.is64 {
            self.u64(b, at)
        } else {
            self.u32(b, at).map(u64::from)
        }
    }
}

/// The parts of the file header this reader uses.
struct Header {
    fmt: Format,
    machine: u16,
    phoff: u64,
    phentsize: u64,
    phnum: u64,
}

/// One program header: type, file offset, virtual address, size in the file.
#[derive(Debug, Clone, Copy)]
struct Segment {
    kind: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

fn parse(src: &mut dyn Source) -> Result<DynamicInfo, ElfError> {
    let header = read_header(src)?;
    let segments = read_segments(src, &header)?;
    let dynamic = segments
        .iter()
        .find(|s| s.kind == PT_DYNAMIC)
        .copied()
        .ok_or(ElfError::NoDynamicSection)?;
    let entries = read_dynamic_entries(src, header.fmt, dynamic)?;
    let strtab = string_table(&entries, &segments)?;

    let mut info = DynamicInfo {
        class: if header.fmt.is64 { 64 } else { 32 },
        big_endian: header.fmt.big,
        machine: header.machine,
        ..DynamicInfo::default()
    };
    for &(tag, value) in &entries {
        let slot = match tag {
            DT_NEEDED if info.needed.len() < MAX_NEEDED => None,
            DT_SONAME => Some(&mut info.soname),
            DT_RUNPATH => Some(&mut info.runpath),
            DT_RPATH => Some(&mut info.rpath),
            _ => continue,
        };
        let text = read_string(src, strtab, value)?;
        match slot {
            None => info.needed.push(text),
            Some(field) => *field = Some(text),
        }
    }
    Ok(info)
}

fn read_header(src: &mut dyn Source) -> Result<Header, ElfError> {
    if src.size() < 16 {
        return Err(ElfError::NotElf);
    }
    let ident = src.read_at(0, 16)?;
    if ident.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(ElfError::NotElf);
    }
    let is64 = match ident.get(4) {
        Some(1) => false,
        Some(2) => true,
        other => return Err(malformed(format!("unknown ELF class {other:?}"))),
    };
    let big = match ident.get(5) {
        Some(1) => false,
        Some(2) => true,
        other => return Err(malformed(format!("unknown byte order {other:?}"))),
    };
    let fmt = Format { is64, big };
    let len = if is64 { 64 } else { 52 };
    let h = src.read_at(0, len)?;
    let short = || malformed("file header cut short");
    let machine = fmt.u16(&h, 18).ok_or_else(short)?;
    let (phoff, phentsize, phnum) = if is64 {
        (
            fmt.u64(&h, 32).ok_or_else(short)?,
            fmt.u16(&h, 54).ok_or_else(short)?,
            fmt.u16(&h, 56).ok_or_else(short)?,
        )
    } else {
        (
            u64::from(fmt.u32(&h, 28).ok_or_else(short)?),
            fmt.u16(&h, 42).ok_or_else(short)?,
            fmt.u16(&h, 44).ok_or_else(short)?,
        )
    };
    Ok(Header {
        fmt,
        machine,
        phoff,
        phentsize: u64::from(phentsize),
        phnum: u64::from(phnum),
    })
}

fn read_segments(src: &mut dyn Source, h: &Header) -> Result<Vec<Segment>, ElfError> {
    let min_entsize = if h.fmt.is64 { 56 } else { 32 };
    if h.phnum == 0 {
        return Err(ElfError::NoDynamicSection);
    }
    // 0xffff means the real count lives in section header 0: no shared library needs that.
    if h.phnum > MAX_PROGRAM_HEADERS {
        return Err(malformed(format!("{} program headers", h.phnum)));
    }
    if h.phentsize < min_entsize {
        return Err(malformed(format!(
            "program header size {} is below {min_entsize}",
            h.phentsize
        )));
    }
    let total = h.phentsize * h.phnum; // both bounded above: cannot overflow
    let table = src.read_at(h.phoff, total)?;
    let mut out = Vec::new();
    for i in 0..h.phnum {
        let at = usize::try_from(i * h.phentsize).map_err(|_| malformed("offset too large"))?;
        let seg =
            segment(h.fmt, &table, at).ok_or_else(|| malformed("program header cut short"))?;
        out.push(seg);
    }
    Ok(out)
}

fn segment(f: Format, t: &[u8], at: usize) -> Option<Segment> {
    let kind = f.u32(t, at)?;
    if f.is64 {
        Some(Segment {
            kind,
            offset: f.u64(t, at + 8)?,
            vaddr: f.u64(t, at + 16)?,
            filesz: f.u64(t, at + 32)?,
        })
    } else {
        Some(Segment {
            kind,
            offset: u64::from(f.u32(t, at + 4)?),
            vaddr: u64::from(f.u32(t, at + 8)?),
            filesz: u64::from(f.u32(t, at + 16)?),
        })
    }
}

/// (tag, value) pairs of the dynamic section, up to DT_NULL.
fn read_dynamic_entries(
    src: &mut dyn Source,
    f: Format,
    dynamic: Segment,
) -> Result<Vec<(u64, u64)>, ElfError> {
    let entsize: u64 = if f.is64 { 16 } else { 8 };
    let count = (dynamic.filesz / entsize).min(MAX_DYNAMIC_ENTRIES);
    if count == 0 {
        return Err(malformed("empty dynamic section"));
    }
    let data = src.read_at(dynamic.offset, count * entsize)?;
    let half = (entsize / 2) as usize;
    let mut out = Vec::new();
    for i in 0..count as usize {
        let at = i * entsize as usize;
        let (Some(tag), Some(value)) = (f.word(&data, at), f.word(&data, at + half)) else {
            break;
        };
        if tag == DT_NULL {
            break;
        }
        out.push((tag, value));
    }
    Ok(out)
}

/// File offset and size of the dynamic string table. DT_STRTAB holds a virtual address, which
/// the PT_LOAD segment containing it maps back to a file offset.
fn string_table(entries: &[(u64, u64)], segments: &[Segment]) -> Result<(u64, u64), ElfError> {
    let find = |tag| entries.iter().find(|(t, _)| *t == tag).map(|&(_, v)| v);
    let Some(addr) = find(DT_STRTAB) else {
        return Err(malformed("dynamic section without DT_STRTAB"));
    };
    let size = find(DT_STRSZ).unwrap_or(u64::MAX);
    let load = segments
        .iter()
        .filter(|s| s.kind == PT_LOAD)
        .find(|s| addr >= s.vaddr && addr - s.vaddr < s.filesz)
        .ok_or_else(|| malformed("DT_STRTAB is outside every loaded segment"))?;
    let offset = load
        .offset
        .checked_add(addr - load.vaddr)
        .ok_or_else(|| malformed("string table offset overflow"))?;
    // The table cannot extend past its segment.
    let room = load.filesz - (addr - load.vaddr);
    Ok((offset, size.min(room)))
}

/// The NUL-terminated string at `index` in the string table.
fn read_string(
    src: &mut dyn Source,
    (tab, tabsz): (u64, u64),
    index: u64,
) -> Result<String, ElfError> {
    if index >= tabsz {
        return Err(malformed(format!(
            "string index {index} outside the string table"
        )));
    }
    let at = tab
        .checked_add(index)
        .ok_or_else(|| malformed("string offset overflow"))?;
    let want = (tabsz - index).min(MAX_STRING);
    let bytes = src.read_up_to(at, want)?;
    let end = bytes
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| malformed("unterminated string in the string table"))?;
    Ok(String::from_utf8_lossy(&bytes[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF image: header, two program headers (PT_LOAD over the whole file, then
    /// PT_DYNAMIC), a dynamic section and a string table, in the given class and byte order.
    fn image(is64: bool, big: bool, needed: &[&str], soname: Option<&str>) -> Vec<u8> {
        let f = Format { is64, big };
        let ehsize = if is64 { 64 } else { 52 };
        let phentsize = if is64 { 56 } else { 32 };
        let entsize = if is64 { 16 } else { 8 };
        let phoff = ehsize;
        let dynoff = phoff + 2 * phentsize;
        let mut strtab = vec![0u8];
        let mut entries = Vec::new();
        for name in needed {
            entries.push((DT_NEEDED, strtab.len() as u64));
            strtab.extend_from_slice(name.as_bytes());
            strtab.push(0);
        }
        if let Some(name) = soname {
            entries.push((DT_SONAME, strtab.len() as u64));
            strtab.extend_from_slice(name.as_bytes());
            strtab.push(0);
        }
        let ndyn = entries.len() + 3;
        let stroff = dynoff + ndyn * entsize;
        let vbase = 0x1000u64; // vaddr = offset + vbase, to exercise the address mapping
        entries.push((DT_STRTAB, stroff as u64 + vbase));
        entries.push((DT_STRSZ, strtab.len() as u64));
        entries.push((DT_NULL, 0));
        let total = stroff + strtab.len();

        let mut out = vec![0u8; total];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = if is64 { 2 } else { 1 };
        out[5] = if big { 2 } else { 1 };
        out[6] = 1;
        let put16 = |o: &mut Vec<u8>, at: usize, v: u16| {
            let b = if f.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            o[at..at + 2].copy_from_slice(&b);
        };
        let put32 = |o: &mut Vec<u8>, at: usize, v: u32| {
            let b = if f.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            o[at..at + 4].copy_from_slice(&b);
        };
        let put64 = |o: &mut Vec<u8>, at: usize, v: u64| {
            let b = if f.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            o[at..at + 8].copy_from_slice(&b);
        };
        let putw = |o: &mut Vec<u8>, at: usize, v: u64| {
            if is64 {
                put64(o, at, v)
            } else {
                put32(o, at, v as u32)
            }
        };
        put16(&mut out, 16, 3); // ET_DYN
        put16(&mut out, 18, 62);
        if is64 {
            put64(&mut out, 32, phoff as u64);
            put16(&mut out, 54, phentsize as u16);
            put16(&mut out, 56, 2);
        } else {
            put32(&mut out, 28, phoff as u32);
            put16(&mut out, 42, phentsize as u16);
            put16(&mut out, 44, 2);
        }
        let segs = [
            (PT_LOAD, 0u64, vbase, total as u64),
            (
                PT_DYNAMIC,
                dynoff as u64,
                dynoff as u64 + vbase,
                (ndyn * entsize) as u64,
            ),
        ];
        for (i, (kind, off, vaddr, size)) in segs.iter().enumerate() {
            let at = phoff + i * phentsize;
            put32(&mut out, at, *kind);
            if is64 {
                put64(&mut out, at + 8, *off);
                put64(&mut out, at + 16, *vaddr);
                put64(&mut out, at + 32, *size);
            } else {
                put32(&mut out, at + 4, *off as u32);
                put32(&mut out, at + 8, *vaddr as u32);
                put32(&mut out, at + 16, *size as u32);
            }
        }
        for (i, (tag, value)) in entries.iter().enumerate() {
            let at = dynoff + i * entsize;
            putw(&mut out, at, *tag);
            putw(&mut out, at + entsize / 2, *value);
        }
        out[stroff..].copy_from_slice(&strtab);
        out
    }

    #[test]
    fn reads_needed_and_soname_in_every_class_and_byte_order() {
        for (is64, big) in [(true, false), (true, true), (false, false), (false, true)] {
            let img = image(
                is64,
                big,
                &["libcudart.so.12", "libc.so.6"],
                Some("libllama.so"),
            );
            let info = parse_dynamic(&img).unwrap();
            assert_eq!(
                info.needed,
                ["libcudart.so.12", "libc.so.6"],
                "{is64} {big}"
            );
            assert_eq!(info.soname.as_deref(), Some("libllama.so"));
            assert_eq!(info.class, if is64 { 64 } else { 32 });
            assert_eq!(info.big_endian, big);
            assert_eq!(info.machine, 62);
        }
    }

    #[test]
    fn rejects_what_is_not_elf() {
        assert!(matches!(parse_dynamic(b""), Err(ElfError::NotElf)));
        assert!(matches!(
            parse_dynamic(b"#!/bin/sh\necho hi\n"),
            Err(ElfError::NotElf)
        ));
        assert!(matches!(parse_dynamic(b"\x7fELF"), Err(ElfError::NotElf)));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let img = image(true, false, &["libcudart.so.12"], Some("libx.so"));
        for len in 0..img.len() {
            assert!(parse_dynamic(&img[..len]).is_err(), "prefix of {len} bytes");
        }
    }

    #[test]
    fn every_single_byte_corruption_is_survived() {
        // Flip each byte of the headers and dynamic section in turn: any result is fine, a
        // panic or a hang is not.
        let img = image(
            false,
            true,
            &["libcublas.so.12", "libcudart.so.12"],
            Some("l.so"),
        );
        for at in 0..img.len() {
            for value in [0x00, 0xff, 0x7f, 0x80] {
                let mut bad = img.clone();
                bad[at] = value;
                let _ = parse_dynamic(&bad);
            }
        }
    }

    #[test]
    fn huge_counts_and_offsets_are_refused() {
        let mut img = image(true, false, &["a"], None);
        img[56..58].copy_from_slice(&0xffffu16.to_le_bytes()); // e_phnum = PN_XNUM
        assert!(matches!(parse_dynamic(&img), Err(ElfError::Malformed(_))));

        let mut img = image(true, false, &["a"], None);
        img[32..40].copy_from_slice(&u64::MAX.to_le_bytes()); // e_phoff
        assert!(matches!(parse_dynamic(&img), Err(ElfError::Malformed(_))));
    }

    #[test]
    fn a_file_without_program_headers_has_no_dynamic_section() {
        let mut img = image(true, false, &["a"], None);
        img[56..58].copy_from_slice(&0u16.to_le_bytes());
        assert!(matches!(
            parse_dynamic(&img),
            Err(ElfError::NoDynamicSection)
        ));
    }

    #[test]
    fn reads_a_real_shared_object_from_disk() {
        // The test binary itself is a dynamically linked ELF on Linux.
        if !cfg!(target_os = "linux") {
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let info = read_dynamic(&exe).unwrap();
        assert!(
            info.needed.iter().any(|n| n.starts_with("libc.so")),
            "{info:?}"
        );
    }
}
