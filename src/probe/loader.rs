//! What the Linux dynamic loader would hand a program that asks for a library by soname,
//! worked out without `dlopen`.
//!
//! `dlopen("libcudart.so.12")` from a program without RPATH/RUNPATH searches, in order:
//! `LD_LIBRARY_PATH`, the binary cache `/etc/ld.so.cache` written by `ldconfig`, and the
//! built-in default folders. This module repeats that search by reading files only, so that the
//! quick profile can say which copy of a library a program would get (or that it gets none)
//! without loading foreign code. The cache is parsed once per process and per filesystem root.
//!
//! Differences from ld.so, on purpose: empty `LD_LIBRARY_PATH` entries (which ld.so reads as
//! the current folder) are skipped, `$ORIGIN`-style tokens are not expanded (they depend on the
//! program), and `glibc-hwcaps` subfolders are not preferred over the baseline copy.
//!
//! Paths in a [`Resolution`] are the paths as the machine names them ("/usr/lib/..."), even
//! when the context reads a fixture tree under another root.

use super::ProbeContext;
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Where a soname resolves, and every place that was looked at to find out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// The file the loader would open, when one was found.
    pub path: Option<PathBuf>,
    /// Places searched, in order, up to and including the one that matched:
    /// "LD_LIBRARY_PATH=/usr/local/nvidia/lib64", "ld.so.cache", "/usr/lib/x86_64-linux-gnu".
    pub searched: Vec<String>,
}

/// The cache file ld.so reads.
const CACHE_FILE: &str = "/etc/ld.so.cache";
/// Present on WSL2: the Windows driver's libcuda and libnvidia-ml live here.
const WSL_LIB_DIR: &str = "/usr/lib/wsl/lib";
/// A real cache is a few hundred KiB; anything much larger is not one, and is not read whole.
const MAX_CACHE_BYTES: u64 = 64 * 1024 * 1024;

#[cfg(target_arch = "aarch64")]
const DEFAULT_DIRS: &[&str] = &[
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];
#[cfg(not(target_arch = "aarch64"))]
const DEFAULT_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// Find `soname` the way ld.so would for a program without RPATH or RUNPATH.
pub fn resolve(ctx: &ProbeContext, soname: &str) -> Resolution {
    let mut res = Resolution::default();
    // A name with a slash is opened as a path by ld.so, without any search.
    if soname.is_empty() || soname.contains('/') {
        return res;
    }
    if let Some(found) = search_ld_library_path(ctx, soname, &mut res.searched) {
        res.path = Some(found);
        return res;
    }
    if let Some(found) = search_cache(ctx, soname, &mut res.searched) {
        res.path = Some(found);
        return res;
    }
    res.path = search_default_dirs(ctx, soname, &mut res.searched);
    res
}

/// `LD_LIBRARY_PATH` entries are used as given (they are the program's own view of paths).
fn search_ld_library_path(
    ctx: &ProbeContext,
    soname: &str,
    searched: &mut Vec<String>,
) -> Option<PathBuf> {
    let value = ctx.var("LD_LIBRARY_PATH")?;
    // glibc splits LD_LIBRARY_PATH on both ':' and ';'.
    for dir in value.split([':', ';']).filter(|d| !d.is_empty()) {
        if dir.contains('$') {
            searched.push(format!(
                "LD_LIBRARY_PATH={dir} (not checked: contains a $ token)"
            ));
            continue;
        }
        searched.push(format!("LD_LIBRARY_PATH={dir}"));
        let candidate = Path::new(dir).join(soname);
        if usable_library(&candidate) {
            return Some(candidate);
        }
    }
    None
}

fn search_cache(ctx: &ProbeContext, soname: &str, searched: &mut Vec<String>) -> Option<PathBuf> {
    let cache = match shared_cache(ctx) {
        Ok(cache) => cache,
        Err(why) => {
            searched.push(format!("ld.so.cache ({why})"));
            return None;
        }
    };
    let Some(listed) = cache.lookup(soname) else {
        searched.push("ld.so.cache".to_string());
        return None;
    };
    // A stale cache (library removed, ldconfig not re-run) lists a file that is gone; ld.so then
    // goes on to the default folders, and so do we.
    if usable_library(&ctx.sys_path(listed)) {
        searched.push("ld.so.cache".to_string());
        Some(PathBuf::from(listed))
    } else {
        searched.push(format!(
            "ld.so.cache (lists {listed}, which cannot be opened)"
        ));
        None
    }
}

fn search_default_dirs(
    ctx: &ProbeContext,
    soname: &str,
    searched: &mut Vec<String>,
) -> Option<PathBuf> {
    let wsl = ctx.sys_path(WSL_LIB_DIR).is_dir();
    let dirs = DEFAULT_DIRS
        .iter()
        .copied()
        .chain(wsl.then_some(WSL_LIB_DIR));
    for dir in dirs {
        searched.push(dir.to_string());
        let logical = Path::new(dir).join(soname);
        if usable_library(&ctx.sys_path(&logical.to_string_lossy())) {
            return Some(logical);
        }
    }
    None
}

/// A file ld.so would accept: it opens, and it is not an ELF object for another machine (ld.so
/// skips a 32-bit copy in a folder and keeps searching). Files too short to tell are accepted,
/// so fixture trees may use empty placeholders.
fn usable_library(path: &Path) -> bool {
    let Ok(meta) = path.metadata() else {
        return false;
    };
    if !meta.is_file() {
        return false;
    }
    let mut header = [0u8; 20];
    let Ok(mut file) = File::open(path) else {
        return false;
    };
    match read_up_to(&mut file, &mut header) {
        20 => elf_header_fits(&header),
        _ => true,
    }
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
    }
    filled
}

/// False only for a definite ELF object of another class or machine than this build's.
fn elf_header_fits(header: &[u8; 20]) -> bool {
    if &header[..4] != b"\x7fELF" {
        return true;
    }
    let class_64 = header[4] == 2;
    let little = header[5] == 1;
    let machine = if little {
        u16::from_le_bytes([header[18], header[19]])
    } else {
        u16::from_be_bytes([header[18], header[19]])
    };
    class_64 == cfg!(target_pointer_width = "64") && ELF_MACHINE.is_none_or(|m| m == machine)
}

#[cfg(target_arch = "x86_64")]
const ELF_MACHINE: Option<u16> = Some(62); // EM_X86_64
#[cfg(target_arch = "aarch64")]
const ELF_MACHINE: Option<u16> = Some(183); // EM_AARCH64
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ELF_MACHINE: Option<u16> = None;

// ---------------------------------------------------------------------------------------------
// ld.so.cache

/// One library listed in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub soname: String,
    pub path: String,
    /// Type and required-ABI bits (FLAG_ELF_LIBC6 | FLAG_X8664_LIB64 = 0x0303 for x86-64).
    pub flags: u32,
    /// Non-zero for copies in glibc-hwcaps subfolders (x86-64-v3 ...).
    pub hwcap: u64,
}

/// A parsed ld.so.cache, entries in file order (ldconfig sorts them as ld.so expects).
#[derive(Debug, Clone, Default)]
pub struct LdCache {
    pub entries: Vec<CacheEntry>,
    by_soname: HashMap<String, Vec<usize>>,
}

impl LdCache {
    fn new(entries: Vec<CacheEntry>) -> LdCache {
        let mut by_soname: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            by_soname.entry(e.soname.clone()).or_default().push(i);
        }
        LdCache { entries, by_soname }
    }

    /// The path ld.so would take from the cache for `soname`: an entry for this machine's ABI,
    /// the baseline (non-hwcaps) copy first.
    pub fn lookup(&self, soname: &str) -> Option<&str> {
        let indices = self.by_soname.get(soname)?;
        let fitting = || {
            indices
                .iter()
                .map(|&i| &self.entries[i])
                .filter(|e| flags_fit(e.flags))
        };
        fitting()
            .find(|e| e.hwcap == 0)
            .or_else(|| fitting().next())
            .map(|e| e.path.as_str())
    }
}

/// ld.so's `_dl_cache_check_flags`: plain ELF, or libc6 ELF with this ABI's required bits.
fn flags_fit(flags: u32) -> bool {
    const FLAG_ELF: u32 = 0x0001;
    const FLAG_ELF_LIBC6: u32 = 0x0003;
    match CACHE_DEFAULT_ID {
        Some(id) => flags == FLAG_ELF || flags == id,
        None => flags & 0xff == FLAG_ELF_LIBC6 || flags == FLAG_ELF,
    }
}

#[cfg(target_arch = "x86_64")]
const CACHE_DEFAULT_ID: Option<u32> = Some(0x0303); // FLAG_ELF_LIBC6 | FLAG_X8664_LIB64
#[cfg(target_arch = "aarch64")]
const CACHE_DEFAULT_ID: Option<u32> = Some(0x0a03); // FLAG_ELF_LIBC6 | FLAG_AARCH64_LIB64
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const CACHE_DEFAULT_ID: Option<u32> = None;

type CacheSlot = Result<Arc<LdCache>, String>;

/// The context's cache, parsed on first use and kept for the life of the process.
fn shared_cache(ctx: &ProbeContext) -> CacheSlot {
    static CACHES: OnceLock<Mutex<HashMap<PathBuf, CacheSlot>>> = OnceLock::new();
    let file = ctx.sys_path(CACHE_FILE);
    let caches = CACHES.get_or_init(|| Mutex::new(HashMap::new()));
    // A poisoned lock only means another thread panicked mid-insert; the map is still usable.
    let mut map = caches.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(file.clone())
        .or_insert_with(|| load_cache(&file).map(Arc::new))
        .clone()
}

/// Read and parse a cache file; the error says why it cannot be used, for `searched`.
pub fn load_cache(file: &Path) -> Result<LdCache, String> {
    let f = File::open(file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "not found".to_string(),
        _ => format!("unreadable: {e}"),
    })?;
    let mut data = Vec::new();
    f.take(MAX_CACHE_BYTES)
        .read_to_end(&mut data)
        .map_err(|e| format!("unreadable: {e}"))?;
    parse_cache(&data).ok_or_else(|| "not a valid cache".to_string())
}

const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
const OLD_HEADER: usize = 16; // magic[11], padding to 12, nlibs u32
const OLD_ENTRY: usize = 12; // flags i32, key u32, value u32
const NEW_HEADER: usize = 48;
const NEW_ENTRY: usize = 24; // flags i32, key, value, osversion u32, hwcap u64

/// Parse a cache in the new format, the old format, or the old format followed by the new one
/// (glibc < 2.32 wrote both). Returns None when the bytes are neither. Never trusts a count
/// beyond what the bytes can hold.
pub fn parse_cache(data: &[u8]) -> Option<LdCache> {
    if data.starts_with(NEW_MAGIC) {
        return parse_new(data, 0).map(LdCache::new);
    }
    if !data.starts_with(OLD_MAGIC) {
        return None;
    }
    let nlibs = read_u32(data, 12, Endian::Little)? as usize;
    let old_end = nlibs.checked_mul(OLD_ENTRY)?.checked_add(OLD_HEADER)?;
    if old_end > data.len() {
        return None;
    }
    // The new format, when present, starts at the next 8-byte boundary after the old entries.
    let new_start = old_end.checked_add(7)? & !7;
    if data
        .get(new_start..)
        .is_some_and(|rest| rest.starts_with(NEW_MAGIC))
    {
        return parse_new(data, new_start).map(LdCache::new);
    }
    parse_old(data, nlibs, old_end).map(LdCache::new)
}

#[derive(Clone, Copy)]
enum Endian {
    Little,
    Big,
}

fn parse_new(data: &[u8], base: usize) -> Option<Vec<CacheEntry>> {
    let endian = match data.get(base + 28)? & 3 {
        0 if cfg!(target_endian = "big") => Endian::Big,
        0 | 2 => Endian::Little,
        3 => Endian::Big,
        _ => return None, // "invalid" endianness marker
    };
    let nlibs = read_u32(data, base + 20, endian)? as usize;
    let table = base.checked_add(NEW_HEADER)?;
    let table_end = nlibs.checked_mul(NEW_ENTRY)?.checked_add(table)?;
    if table_end > data.len() {
        return None;
    }
    // String offsets in the new format count from the start of its header.
    let strings = data.get(base..)?;
    let mut entries = Vec::with_capacity(nlibs);
    for i in 0..nlibs {
        let at = table + i * NEW_ENTRY;
        let flags = read_u32(data, at, endian)?;
        let key = read_u32(data, at + 4, endian)? as usize;
        let value = read_u32(data, at + 8, endian)? as usize;
        let hwcap = read_u64(data, at + 16, endian)?;
        if let Some(entry) = make_entry(strings, flags, key, value, hwcap) {
            entries.push(entry);
        }
    }
    Some(entries)
}

fn parse_old(data: &[u8], nlibs: usize, old_end: usize) -> Option<Vec<CacheEntry>> {
    // Old-format string offsets count from the end of the entry table.
    let strings = data.get(old_end..)?;
    let mut entries = Vec::with_capacity(nlibs);
    for i in 0..nlibs {
        let at = OLD_HEADER + i * OLD_ENTRY;
        let flags = read_u32(data, at, Endian::Little)?;
        let key = read_u32(data, at + 4, Endian::Little)? as usize;
        let value = read_u32(data, at + 8, Endian::Little)? as usize;
        if let Some(entry) = make_entry(strings, flags, key, value, 0) {
            entries.push(entry);
        }
    }
    Some(entries)
}

/// An entry whose strings are in bounds and UTF-8; others are dropped, not fatal.
fn make_entry(
    strings: &[u8],
    flags: u32,
    key: usize,
    value: usize,
    hwcap: u64,
) -> Option<CacheEntry> {
    Some(CacheEntry {
        soname: c_string(strings, key)?,
        path: c_string(strings, value)?,
        flags,
        hwcap,
    })
}

/// The NUL-terminated string at `offset`; None when out of bounds, unterminated or not UTF-8.
fn c_string(bytes: &[u8], offset: usize) -> Option<String> {
    let rest = bytes.get(offset..)?;
    let len = rest.iter().position(|&b| b == 0)?;
    let s = std::str::from_utf8(&rest[..len]).ok()?;
    (!s.is_empty()).then(|| s.to_string())
}

fn read_u32(data: &[u8], at: usize, endian: Endian) -> Option<u32> {
    let bytes: [u8; 4] = data.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(match endian {
        Endian::Little => u32::from_le_bytes(bytes),
        Endian::Big => u32::from_be_bytes(bytes),
    })
}

fn read_u64(data: &[u8], at: usize, endian: Endian) -> Option<u64> {
    let bytes: [u8; 8] = data.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(match endian {
        Endian::Little => u64::from_le_bytes(bytes),
        Endian::Big => u64::from_be_bytes(bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Profile;
    use std::collections::BTreeMap;
    use std::fs;
    use std::process::Command;
    use std::time::Duration;

    fn ctx(root: &Path, env: &[(&str, &str)]) -> ProbeContext {
        ProbeContext {
            profile: Profile::Quick,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            fs_root: root.to_path_buf(),
        }
    }

    fn touch(path: &Path) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"").unwrap();
    }

    /// A cache in the new format, strings counted from the header as glibc does.
    fn new_format(entries: &[(u32, &str, &str, u64)]) -> Vec<u8> {
        let mut strings = Vec::new();
        let strings_at = NEW_HEADER + entries.len() * NEW_ENTRY;
        let mut table = Vec::new();
        for &(flags, key, value, hwcap) in entries {
            let k = strings_at + strings.len();
            strings.extend_from_slice(key.as_bytes());
            strings.push(0);
            let v = strings_at + strings.len();
            strings.extend_from_slice(value.as_bytes());
            strings.push(0);
            table.extend_from_slice(&flags.to_le_bytes());
            table.extend_from_slice(&(k as u32).to_le_bytes());
            table.extend_from_slice(&(v as u32).to_le_bytes());
            table.extend_from_slice(&0u32.to_le_bytes());
            table.extend_from_slice(&hwcap.to_le_bytes());
        }
        let mut out = NEW_MAGIC.to_vec();
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        out.extend_from_slice(&[2, 0, 0, 0]); // little endian
        out.extend_from_slice(&[0; 16]); // extension offset, unused
        out.extend(table);
        out.extend(strings);
        out
    }

    /// A cache in the pre-2.32 old format; strings counted from the end of the table.
    fn old_format(entries: &[(u32, &str, &str)]) -> Vec<u8> {
        let mut strings = Vec::new();
        let mut out = OLD_MAGIC.to_vec();
        out.push(0);
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for &(flags, key, value) in entries {
            let k = strings.len() as u32;
            strings.extend_from_slice(key.as_bytes());
            strings.push(0);
            let v = strings.len() as u32;
            strings.extend_from_slice(value.as_bytes());
            strings.push(0);
            out.extend_from_slice(&flags.to_le_bytes());
            out.extend_from_slice(&k.to_le_bytes());
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend(strings);
        out
    }

    fn write_cache(root: &Path, bytes: &[u8]) {
        let file = root.join("etc/ld.so.cache");
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(file, bytes).unwrap();
    }

    const X64: u32 = 0x0303;

    #[test]
    fn the_hosts_own_cache_resolves_libc() {
        if !Path::new(CACHE_FILE).exists() {
            return; // not a glibc system
        }
        let cache = load_cache(Path::new(CACHE_FILE)).expect("host cache parses");
        assert!(
            cache.entries.len() > 10,
            "only {} entries",
            cache.entries.len()
        );
        let res = resolve(&ctx(Path::new("/"), &[]), "libc.so.6");
        let path = res.path.expect("libc.so.6 resolves");
        assert!(path.ends_with("libc.so.6"), "{path:?}");
        assert_eq!(res.searched, vec!["ld.so.cache".to_string()]);
    }

    #[test]
    fn a_cache_written_by_ldconfig_resolves_a_library_only_it_lists() {
        let Some(ldconfig) = ["/sbin/ldconfig", "/usr/sbin/ldconfig"]
            .into_iter()
            .find(|p| Path::new(p).exists())
        else {
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        let lib_dir = tmp.path().join("opt/gdtest/lib");
        fs::create_dir_all(&lib_dir).unwrap();
        let lib = lib_dir.join("libgdtest.so.13");
        let mut gcc = Command::new("gcc");
        gcc.args([
            "-shared",
            "-fPIC",
            "-Wl,-soname,libgdtest.so.13",
            "-x",
            "c",
            "/dev/null",
            "-o",
        ])
        .arg(&lib);
        match crate::probe::process::run(&mut gcc, Duration::from_secs(60), 65536) {
            Ok(out) if out.success() => {}
            _ => return, // no C compiler: nothing to feed ldconfig
        }
        let conf = tmp.path().join("ld.so.conf");
        fs::write(&conf, format!("{}\n", lib_dir.display())).unwrap();
        let cache_file = tmp.path().join("etc/ld.so.cache");
        fs::create_dir_all(cache_file.parent().unwrap()).unwrap();
        let mut cmd = Command::new(ldconfig);
        cmd.arg("-X")
            .arg("-C")
            .arg(&cache_file)
            .arg("-f")
            .arg(&conf);
        let out = crate::probe::process::run(&mut cmd, Duration::from_secs(60), 65536).unwrap();
        if !out.success() || !cache_file.exists() {
            return; // this ldconfig refuses to write a private cache here
        }

        let cache = load_cache(&cache_file).expect("ldconfig's cache parses");
        assert_eq!(cache.lookup("libgdtest.so.13"), Some(lib.to_str().unwrap()));

        // Under a fixture root the listed path is read below that root: put the library there.
        let root = tmp.path().join("root");
        write_cache(&root, &fs::read(&cache_file).unwrap());
        let res = resolve(&ctx(&root, &[]), "libgdtest.so.13");
        assert_eq!(res.path, None, "listed file is missing under the root");
        assert!(
            res.searched[0].starts_with("ld.so.cache (lists "),
            "{:?}",
            res.searched
        );
        let under_root = root.join(lib.strip_prefix("/").unwrap());
        fs::create_dir_all(under_root.parent().unwrap()).unwrap();
        fs::copy(&lib, &under_root).unwrap();
        let res = resolve(&ctx(&root, &[]), "libgdtest.so.13");
        assert_eq!(res.path.as_deref(), Some(lib.as_path()));
    }

    #[test]
    fn ld_library_path_comes_first_and_skips_empty_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        touch(&a.join("libcudart.so.12"));
        touch(&tmp.path().join("usr/lib/x86_64-linux-gnu/libcudart.so.12"));
        write_cache(
            tmp.path(),
            &new_format(&[(
                X64,
                "libcudart.so.12",
                "/usr/lib/x86_64-linux-gnu/libcudart.so.12",
                0,
            )]),
        );
        let llp = format!(":/nonexistent;{}:", a.display());
        let res = resolve(
            &ctx(tmp.path(), &[("LD_LIBRARY_PATH", &llp)]),
            "libcudart.so.12",
        );
        assert_eq!(res.path, Some(a.join("libcudart.so.12")));
        assert_eq!(
            res.searched,
            vec![
                "LD_LIBRARY_PATH=/nonexistent".to_string(),
                format!("LD_LIBRARY_PATH={}", a.display())
            ]
        );
    }

    #[test]
    fn the_cache_comes_before_default_folders() {
        let tmp = tempfile::tempdir().unwrap();
        touch(&tmp.path().join("opt/nv/libnvidia-ml.so.1"));
        touch(
            &tmp.path()
                .join("usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"),
        );
        write_cache(
            tmp.path(),
            &new_format(&[(X64, "libnvidia-ml.so.1", "/opt/nv/libnvidia-ml.so.1", 0)]),
        );
        let res = resolve(
            &ctx(tmp.path(), &[("LD_LIBRARY_PATH", "")]),
            "libnvidia-ml.so.1",
        );
        assert_eq!(res.path, Some(PathBuf::from("/opt/nv/libnvidia-ml.so.1")));
        assert_eq!(res.searched, vec!["ld.so.cache".to_string()]);
    }

    #[test]
    fn default_folders_are_searched_when_there_is_no_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DEFAULT_DIRS[1];
        touch(
            &tmp.path()
                .join(dir.trim_start_matches('/'))
                .join("libcuda.so.1"),
        );
        let res = resolve(&ctx(tmp.path(), &[]), "libcuda.so.1");
        assert_eq!(res.path, Some(Path::new(dir).join("libcuda.so.1")));
        assert_eq!(
            res.searched,
            vec![
                "ld.so.cache (not found)".to_string(),
                DEFAULT_DIRS[0].into(),
                dir.into()
            ]
        );
    }

    #[test]
    fn wsl_library_folder_is_searched_only_on_wsl() {
        let tmp = tempfile::tempdir().unwrap();
        let res = resolve(&ctx(tmp.path(), &[]), "libcuda.so.1");
        assert_eq!(res.path, None);
        assert!(!res.searched.iter().any(|s| s == WSL_LIB_DIR));
        assert_eq!(res.searched.len(), 1 + DEFAULT_DIRS.len());

        touch(&tmp.path().join("usr/lib/wsl/lib/libcuda.so.1"));
        let res = resolve(&ctx(tmp.path(), &[]), "libcuda.so.1");
        assert_eq!(
            res.path,
            Some(PathBuf::from("/usr/lib/wsl/lib/libcuda.so.1"))
        );
        assert_eq!(res.searched.last().map(String::as_str), Some(WSL_LIB_DIR));
    }

    #[test]
    fn a_library_for_another_machine_is_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        fs::create_dir_all(&a).unwrap();
        let mut elf32 = b"\x7fELF\x01\x01\x01".to_vec();
        elf32.resize(18, 0);
        elf32.extend_from_slice(&3u16.to_le_bytes()); // EM_386
        fs::write(a.join("libz.so.1"), elf32).unwrap();
        touch(&b.join("libz.so.1"));
        let llp = format!("{}:{}", a.display(), b.display());
        let res = resolve(&ctx(tmp.path(), &[("LD_LIBRARY_PATH", &llp)]), "libz.so.1");
        assert_eq!(res.path, Some(b.join("libz.so.1")));
    }

    #[test]
    fn a_cache_entry_for_another_abi_is_ignored() {
        let cache = parse_cache(&new_format(&[
            (
                0x0003,
                "libfoo.so.1",
                "/usr/lib/i386-linux-gnu/libfoo.so.1",
                0,
            ),
            (
                X64,
                "libfoo.so.1",
                "/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libfoo.so.1",
                1 << 62,
            ),
            (
                X64,
                "libfoo.so.1",
                "/usr/lib/x86_64-linux-gnu/libfoo.so.1",
                0,
            ),
        ]))
        .unwrap();
        assert_eq!(cache.entries.len(), 3);
        if cfg!(target_arch = "x86_64") {
            assert_eq!(
                cache.lookup("libfoo.so.1"),
                Some("/usr/lib/x86_64-linux-gnu/libfoo.so.1")
            );
        }
        assert_eq!(cache.lookup("libbar.so.1"), None);
    }

    #[test]
    fn the_old_format_alone_and_followed_by_the_new_one_parse() {
        let old = old_format(&[(X64, "libold.so.1", "/lib/libold.so.1")]);
        let cache = parse_cache(&old).unwrap();
        assert_eq!(cache.entries[0].path, "/lib/libold.so.1");

        // glibc < 2.32: old table, then the new format at the next 8-byte boundary; the new one wins.
        let mut both = old_format(&[(X64, "libx.so.1", "/old/libx.so.1")]);
        both.truncate(OLD_HEADER + OLD_ENTRY); // the strings of the old part are not needed here
        while !both.len().is_multiple_of(8) {
            both.push(0);
        }
        both.extend(new_format(&[(X64, "libx.so.1", "/new/libx.so.1", 0)]));
        let cache = parse_cache(&both).unwrap();
        assert_eq!(cache.entries.len(), 1);
        assert_eq!(cache.entries[0].path, "/new/libx.so.1");
    }

    #[test]
    fn truncated_and_garbage_caches_never_panic() {
        let good = new_format(&[
            (X64, "liba.so.1", "/lib/liba.so.1", 0),
            (X64, "libb.so.2", "/lib/libb.so.2", 0),
        ]);
        for len in 0..good.len() {
            // Cut inside the table: rejected. Cut inside the strings: the cut entries are dropped.
            if let Some(cache) = parse_cache(&good[..len]) {
                assert!(cache.entries.len() < 2, "len {len}");
            }
        }
        let old = old_format(&[(X64, "liba.so.1", "/lib/liba.so.1")]);
        for len in 0..old.len() {
            let _ = parse_cache(&old[..len]);
        }
        if let Ok(host) = fs::read(CACHE_FILE) {
            for len in (0..host.len()).step_by(997) {
                let _ = parse_cache(&host[..len]);
            }
        }
        // Huge counts must not allocate or read out of bounds.
        let mut huge = good.clone();
        huge[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_cache(&huge).is_none());
        let mut huge_old = old.clone();
        huge_old[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_cache(&huge_old).is_none());
        // String offsets pointing past the end drop the entry, not the cache.
        let mut wild = good.clone();
        wild[NEW_HEADER + 4..NEW_HEADER + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_cache(&wild).unwrap().entries.len(), 1);
        // Pseudo-random garbage, with and without a valid magic in front.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for round in 0..200 {
            let mut bytes: Vec<u8> = (0..(round * 7 % 400))
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let _ = parse_cache(&bytes);
            let mut magic = if round % 2 == 0 {
                NEW_MAGIC.to_vec()
            } else {
                OLD_MAGIC.to_vec()
            };
            magic.append(&mut bytes);
            let _ = parse_cache(&magic);
        }
        assert!(parse_cache(b"").is_none());
        assert!(parse_cache(b"not a cache at all").is_none());
    }

    #[test]
    fn a_garbage_cache_file_is_reported_and_the_search_goes_on() {
        let tmp = tempfile::tempdir().unwrap();
        write_cache(tmp.path(), b"glibc-ld.so.cache1.1 garbage");
        touch(&tmp.path().join("usr/lib/libnvidia-ml.so.1"));
        let res = resolve(&ctx(tmp.path(), &[]), "libnvidia-ml.so.1");
        assert_eq!(res.path, Some(PathBuf::from("/usr/lib/libnvidia-ml.so.1")));
        assert_eq!(res.searched[0], "ld.so.cache (not a valid cache)");
    }

    #[test]
    fn names_with_a_slash_are_not_searched() {
        let res = resolve(&ctx(Path::new("/"), &[]), "/lib/libc.so.6");
        assert_eq!(res, Resolution::default());
    }
}
