//! The live-result cache: each environment's last live answer, stored with everything it
//! depends on, so that the quick profile (the pre-commit hook) can show the live verdicts
//! without starting a single interpreter.
//!
//! A live answer depends on the interpreter, on what is installed where it looks for packages,
//! on the NVIDIA driver and on a few variables. The [`Key`] records each of them as the files
//! say it: the interpreter's resolved path, size and times; pyvenv.cfg; the site-packages folder
//! and every entry in it (name, size, modification and status-change time), the contents of its
//! `.pth` files and the folders they add; every other folder the environment imports from (the
//! import paths of the facts: what `.pth` files add, the user's and the base's site-packages,
//! editable sources, whose list itself is part of the static view); torch's and llama.cpp's
//! library folders where they were found; a conda environment's `lib/` and `conda-meta/`; `/proc/driver/nvidia/version` and the resolved libnvidia-ml and libcuda; the
//! variables that steer GPU libraries; gpu-doctor's version and the probe script. A `pip install`
//! or `uninstall` adds or removes entries of site-packages, which changes the folder's times, so
//! it changes the key; the status-change time (ctime) cannot be set back by any tool, so even a
//! restore that keeps old modification times does.
//!
//! When it is used:
//! - standard and full profiles ask every interpreter (the cache never replaces that) and store
//!   each answer that the interpreter gave (ok, failed, crashed; not a time-out, which may be a
//!   cold disk) when the key is the same before and after the run. Otherwise the environment's
//!   entry is removed, so an older answer never outlives a newer observation.
//! - the quick profile reads the entry of each environment and attaches its answer, marked
//!   `cached` with its age, when the key computed now is equal and the entry is at most
//!   [`MAX_AGE`] old. It starts nothing.
//!
//! A key that equals an old one must mean nothing changed. File times have a granularity (a
//! few milliseconds on ext4, 2 s on FAT), so a change made in the same tick as the time
//! recorded would not show; an answer is therefore stored only when every recorded time is at
//! least [`RACY_WINDOW`] older than the end of the run (git's "racily clean" problem).
//!
//! Where: `GPU_DOCTOR_CACHE_DIR`, else `$XDG_CACHE_HOME/gpu-doctor`, else
//! `~/.cache/gpu-doctor` (`%LOCALAPPDATA%\gpu-doctor` on Windows); one small JSON file per
//! environment under `live/`, written to a temporary file and renamed. At most [`MAX_ENTRIES`]
//! files are kept (the oldest go). A file that is too large, not a regular file, not owned by
//! this user, from another format or version, or not JSON is ignored: the cache can make a run
//! faster, never fail it. `--no-cache` (`GPU_DOCTOR_NO_CACHE=1`) neither reads nor writes it.

use super::live::SCRIPT;
use crate::facts::python::{LiveCached, LiveProbe, PythonEnv};
use crate::probe::{driver, loader, ProbeContext};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Names the cache folder (tests, CI, a shared machine).
pub const CACHE_DIR_VAR: &str = "GPU_DOCTOR_CACHE_DIR";
/// Set (to anything but a false word) to neither read nor write the cache (`--no-cache`).
pub const NO_CACHE_VAR: &str = "GPU_DOCTOR_NO_CACHE";
/// An entry older than this is not used: the key cannot see everything (a GPU that fell off
/// the bus, a package folder the interpreter reaches through code rather than a path).
pub const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Every time recorded in a stored key is at least this much older than the end of the run.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);
/// Entry files kept at most; the least recently written go first.
pub const MAX_ENTRIES: usize = 256;
/// An entry file larger than this is ignored (a real one is a few KiB).
pub const MAX_ENTRY_BYTES: u64 = 256 * 1024;

/// The format's name and version, first in every file; a change of either ignores old files.
const FORMAT: &str = "gpu-doctor live-result cache";
const FORMAT_VERSION: u32 = 2;
/// The folder under the cache root.
const LIVE_DIR: &str = "live";
/// Entries of site-packages, .pth files and lines read at most for one key. A folder with
/// more is not cached (its key would be too costly to compute on every run).
const MAX_SITE_ENTRIES: usize = 20_000;
const MAX_PTH_FILES: usize = 64;
const MAX_PTH_BYTES: u64 = 64 * 1024;
const MAX_PTH_LINES: usize = 256;
/// Variables whose value reaches the GPU libraries an interpreter loads.
const VARIABLE_PREFIXES: &[&str] = &[
    "CUDA_", "NVIDIA_", "LD_", "DYLD_", "PYTORCH_", "TORCH_", "GGML_", "LLAMA_", "HIP_", "ROCR_",
    "HSA_", "CUBLAS", "CUDNN_", "NCCL_",
];

/// The live cache of one run, or `None` when it is switched off or has no folder.
#[derive(Debug, Clone)]
pub struct LiveCache {
    dir: PathBuf,
    shared: Shared,
}

impl LiveCache {
    /// The cache the context names, unless `GPU_DOCTOR_NO_CACHE` switches it off.
    pub fn open(ctx: &ProbeContext) -> Option<LiveCache> {
        if ctx
            .nonempty_var(NO_CACHE_VAR)
            .is_some_and(|v| !is_false_word(v))
        {
            return None;
        }
        let dir = cache_root(ctx)?.join(LIVE_DIR);
        Some(LiveCache {
            dir,
            shared: Shared::of(ctx),
        })
    }

    /// The folder the entries are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key of every environment, as its files say now (`None`: not cacheable).
    pub fn keys(&self, envs: &[PythonEnv]) -> Vec<Option<FreshKey>> {
        envs.iter().map(|env| Key::of(env, &self.shared)).collect()
    }

    /// Quick profile: give each environment without a live answer its cached one, when the
    /// entry's key equals the key of now and the entry is young enough.
    pub fn attach(&self, envs: &mut [PythonEnv]) {
        let now = SystemTime::now();
        for env in envs.iter_mut().filter(|e| e.live.is_none()) {
            let Some(fresh) = Key::of(env, &self.shared) else {
                continue;
            };
            if let Some(live) = self.lookup(&fresh.key, now) {
                env.live = Some(live);
            }
        }
    }

    /// The cached answer for `key`, with its age, when it is still valid at `now`.
    pub fn lookup(&self, key: &Key, now: SystemTime) -> Option<LiveProbe> {
        let entry = read_entry(&self.entry_path(&key.environment))?;
        if entry.format != FORMAT || entry.version != FORMAT_VERSION || entry.key != *key {
            return None;
        }
        let now_s = unix_seconds(now);
        // An entry from the future (a clock set back) cannot be dated: not used.
        let age = now_s.checked_sub(entry.stored_at_unix)?;
        if age > MAX_AGE.as_secs() {
            return None;
        }
        let mut live = entry.live;
        live.cached = Some(LiveCached {
            stored_at_unix: entry.stored_at_unix,
            age_s: age,
        });
        Some(live)
    }

    /// Standard and full profiles: store each fresh answer whose key did not move during the
    /// run and is not racy; remove the entry of every other environment. Errors are ignored:
    /// a cache that cannot be written only makes the next quick run show less.
    pub fn store(&self, envs: &[PythonEnv], before: &[Option<FreshKey>]) {
        let after = self.keys(envs);
        let end = SystemTime::now();
        if fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        for ((env, before), after) in envs.iter().zip(before).zip(after) {
            let Some(fresh) = after else {
                continue;
            };
            let path = self.entry_path(&fresh.key.environment);
            let storable = env.live.as_ref().filter(|live| {
                cacheable(live) && before.as_ref() == Some(&fresh) && !racy(&fresh, end)
            });
            let written = storable.is_some_and(|live| write_entry(&path, fresh.key, live, end));
            if !written {
                let _ = fs::remove_file(&path);
            }
        }
        prune(&self.dir, MAX_ENTRIES);
    }

    /// The file of one environment's entry: named by a hash of its path.
    pub fn entry_path(&self, environment: &str) -> PathBuf {
        self.dir
            .join(format!("{:016x}.json", fnv1a(environment.as_bytes())))
    }
}

/// Only what the interpreter itself answered is worth keeping: a time-out may be a cold disk,
/// and not_run means there was nothing to ask.
fn cacheable(live: &LiveProbe) -> bool {
    matches!(live.status.as_str(), "ok" | "failed" | "crashed") && live.cached.is_none()
}

/// A time recorded in the key too close to (or after) the end of the run to trust that a later
/// change would move it.
fn racy(fresh: &FreshKey, end: SystemTime) -> bool {
    let end_ns = unix_nanos(end);
    fresh.newest_ns > end_ns.saturating_sub(RACY_WINDOW.as_nanos() as i64)
}

/// The words clap's FalseyValueParser reads as false.
fn is_false_word(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "n" | "no" | "f" | "false" | "off" | "0"
    )
}

/// `GPU_DOCTOR_CACHE_DIR`, `$XDG_CACHE_HOME/gpu-doctor`, `~/.cache/gpu-doctor`, or on Windows
/// `%LOCALAPPDATA%\gpu-doctor`. Relative values are ignored (the XDG specification says so, and
/// a cache that moves with the working folder would never hit).
pub fn cache_root(ctx: &ProbeContext) -> Option<PathBuf> {
    let absolute = |v: &str| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    if let Some(dir) = ctx.nonempty_var(CACHE_DIR_VAR).and_then(absolute) {
        return Some(dir);
    }
    if let Some(dir) = ctx.nonempty_var("XDG_CACHE_HOME").and_then(absolute) {
        return Some(dir.join("gpu-doctor"));
    }
    if cfg!(windows) {
        if let Some(dir) = ctx.nonempty_var("LOCALAPPDATA").and_then(absolute) {
            return Some(dir.join("gpu-doctor"));
        }
    }
    let home = ctx.nonempty_var("HOME").and_then(absolute)?;
    Some(home.join(".cache").join("gpu-doctor"))
}

// ---------------------------------------------------------------------------------------------
// the key

/// Size and times of one file or folder, as the key records them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub path: String,
    pub size: u64,
    pub mtime_ns: i64,
    /// Status-change time; 0 where the platform has none.
    pub ctime_ns: i64,
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let meta = fs::metadata(path).ok()?;
        let (mtime_ns, ctime_ns) = times(&meta);
        Some(Stamp {
            path: path.to_string_lossy().into_owned(),
            size: meta.len(),
            mtime_ns,
            ctime_ns,
        })
    }

    fn newest(&self) -> i64 {
        self.mtime_ns.max(self.ctime_ns)
    }
}

#[cfg(unix)]
fn times(meta: &fs::Metadata) -> (i64, i64) {
    use std::os::unix::fs::MetadataExt;
    let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
    (
        ns(meta.mtime(), meta.mtime_nsec()),
        ns(meta.ctime(), meta.ctime_nsec()),
    )
}

#[cfg(not(unix))]
fn times(meta: &fs::Metadata) -> (i64, i64) {
    let mtime = meta.modified().map(unix_nanos).unwrap_or(0);
    (mtime, 0)
}

/// What an environment's live answer depends on. Two keys are equal only when nothing the
/// answer depends on (as far as files and variables tell) has changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    /// The environment folder as found: the entry's name.
    pub environment: String,
    pub doctor_version: String,
    pub facts_schema: u32,
    /// FNV-1a of the probe script.
    pub script: String,
    /// The interpreter, symlinks resolved.
    pub interpreter: Stamp,
    pub pyvenv_cfg: Option<Stamp>,
    pub site_packages: Option<Stamp>,
    /// Digest of every entry of site-packages, the .pth files' text and the folders they add.
    pub site_entries: String,
    pub site_entry_count: usize,
    /// torch's and llama.cpp's library folders, a conda environment's lib/ and conda-meta/,
    /// the base installation's package folders when the venv sees them.
    pub folders: Vec<Stamp>,
    /// FNV-1a of the static view of the environment's GPU packages.
    pub static_view: String,
    pub driver: DriverKey,
    /// Names of the GPU-related variables set, and a digest of their values.
    pub variables: Vec<String>,
    pub variables_digest: String,
}

/// A key computed in this run, with the newest time it recorded (for the racy check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreshKey {
    pub key: Key,
    pub newest_ns: i64,
}

/// The driver as files show it, once per run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverKey {
    /// FNV-1a of /proc/driver/nvidia/version; null when there is none.
    pub kernel_module: Option<String>,
    /// libnvidia-ml and libcuda where the loader would find them.
    pub nvml: Option<Stamp>,
    pub libcuda: Option<Stamp>,
}

/// The parts of every key that do not depend on the environment.
#[derive(Debug, Clone)]
struct Shared {
    driver: DriverKey,
    variables: Vec<String>,
    variables_digest: String,
}

impl Shared {
    fn of(ctx: &ProbeContext) -> Shared {
        let library = |soname: &str| {
            let path = loader::resolve(ctx, soname).path?;
            let real = fs::canonicalize(ctx.sys_path(&path.to_string_lossy())).ok()?;
            Stamp::of(&real)
        };
        let kernel_module = read_bounded(&ctx.sys_path("/proc/driver/nvidia/version"), 64 * 1024)
            .map(|text| hex(fnv1a(&text)));
        let driver = DriverKey {
            kernel_module,
            nvml: library(driver::NVML_LIBRARY),
            libcuda: library("libcuda.so.1"),
        };
        let mut digest = Fnv::new();
        let mut variables = Vec::new();
        for (name, value) in &ctx.env {
            if VARIABLE_PREFIXES.iter().any(|p| name.starts_with(p)) {
                digest.field(name.as_bytes());
                digest.field(value.as_bytes());
                variables.push(name.clone());
            }
        }
        Shared {
            driver,
            variables,
            variables_digest: hex(digest.finish()),
        }
    }
}

impl Key {
    /// The key of `env` now, or `None` when it has no interpreter or its site-packages cannot
    /// be listed within bounds (then nothing is cached for it).
    fn of(env: &PythonEnv, shared: &Shared) -> Option<FreshKey> {
        if !env.python_exists {
            return None;
        }
        let interpreter = Stamp::of(&fs::canonicalize(&env.python).ok()?)?;
        let root = Path::new(&env.path);
        let pyvenv_cfg = Stamp::of(&root.join("pyvenv.cfg"));
        let site = env
            .site_packages
            .as_deref()
            .filter(|_| env.site_packages_exists)
            .map(Path::new);
        let site_packages = site.and_then(Stamp::of);
        let (site_entries, site_entry_count, site_newest) = match site {
            Some(dir) => site_digest(dir)?,
            None => (hex(Fnv::new().finish()), 0, 0),
        };
        let folders: Vec<Stamp> = extra_folders(env, site)
            .iter()
            .filter_map(|p| Stamp::of(p))
            .collect();
        let static_view = serde_json::to_vec(&(
            &env.python_version,
            &env.import_paths,
            &env.torch,
            &env.llama_cpp,
            &env.gpu_stacks,
        ))
        .map(|bytes| hex(fnv1a(&bytes)))
        .ok()?;

        let stamps = [
            Some(&interpreter),
            pyvenv_cfg.as_ref(),
            site_packages.as_ref(),
        ];
        let newest = stamps
            .into_iter()
            .flatten()
            .chain(folders.iter())
            .chain(shared.driver.nvml.iter())
            .chain(shared.driver.libcuda.iter())
            .map(Stamp::newest)
            .chain([site_newest])
            .max()
            .unwrap_or(0);
        let key = Key {
            environment: env.path.clone(),
            doctor_version: env!("CARGO_PKG_VERSION").to_string(),
            facts_schema: crate::facts::SCHEMA_VERSION,
            script: hex(fnv1a(SCRIPT.as_bytes())),
            interpreter,
            pyvenv_cfg,
            site_packages,
            site_entries,
            site_entry_count,
            folders,
            static_view,
            driver: shared.driver.clone(),
            variables: shared.variables.clone(),
            variables_digest: shared.variables_digest.clone(),
        };
        Some(FreshKey {
            key,
            newest_ns: newest,
        })
    }
}

/// Digest of site-packages: every entry's name, kind, size and times (sorted by name), each
/// .pth file's text and the folders its path lines add. Returns the digest, the entry count
/// and the newest time seen; `None` when the folder cannot be listed or is too large.
fn site_digest(dir: &Path) -> Option<(String, usize, i64)> {
    let mut entries: Vec<(String, fs::Metadata)> = Vec::new();
    for item in fs::read_dir(dir).ok()? {
        let item = item.ok()?;
        if entries.len() >= MAX_SITE_ENTRIES {
            return None;
        }
        // Not followed: a link's own change is what moves; the target is not ours to stat.
        let meta = item.metadata().ok()?;
        entries.push((item.file_name().to_string_lossy().into_owned(), meta));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut digest = Fnv::new();
    let mut newest = 0;
    let mut pth_files = 0;
    for (name, meta) in &entries {
        let (mtime, ctime) = times(meta);
        newest = newest.max(mtime).max(ctime);
        digest.field(name.as_bytes());
        digest.field(&[meta.is_dir() as u8, meta.is_symlink() as u8]);
        digest.field(&meta.len().to_le_bytes());
        digest.field(&mtime.to_le_bytes());
        digest.field(&ctime.to_le_bytes());
        if name.ends_with(".pth") && meta.is_file() && pth_files < MAX_PTH_FILES {
            pth_files += 1;
            newest = newest.max(pth_digest(dir, &dir.join(name), &mut digest));
        }
    }
    Some((hex(digest.finish()), entries.len(), newest))
}

/// Feed a .pth file's text and the stamps of the folders its path lines name (site.py adds
/// each existing one to sys.path) into `digest`; returns the newest time among those folders.
fn pth_digest(site: &Path, file: &Path, digest: &mut Fnv) -> i64 {
    let Some(text) = read_bounded(file, MAX_PTH_BYTES) else {
        digest.field(b"unreadable");
        return 0;
    };
    digest.field(&text);
    let mut newest = 0;
    let text = String::from_utf8_lossy(&text);
    for line in text.lines().take(MAX_PTH_LINES) {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') || line.starts_with("import") {
            continue;
        }
        match Stamp::of(&site.join(line)) {
            Some(stamp) => {
                newest = newest.max(stamp.newest());
                digest.field(&stamp.mtime_ns.to_le_bytes());
                digest.field(&stamp.ctime_ns.to_le_bytes());
            }
            None => digest.field(b"missing"),
        }
    }
    newest
}

/// Folders whose own entries an answer depends on: every import path the environment reaches
/// besides its own site-packages (what `.pth` files add, the user's and the base's
/// site-packages, editable source folders), the package folders of torch and llama.cpp where
/// they were found, and a conda environment's lib/ and conda-meta/.
fn extra_folders(env: &PythonEnv, site: Option<&Path>) -> Vec<PathBuf> {
    let mut folders: Vec<PathBuf> = env
        .import_paths
        .iter()
        .filter(|p| Some(Path::new(&p.path)) != site)
        .map(|p| PathBuf::from(&p.path))
        .collect();
    let torch = env.torch.found_in.as_ref().map(|p| Path::new(&p.path));
    let llama = env.llama_cpp.found_in.as_ref().map(|p| Path::new(&p.path));
    for (dir, subs) in [
        (
            site,
            &["torch", "torch/lib", "llama_cpp", "llama_cpp/lib", "nvidia"][..],
        ),
        (
            torch.filter(|d| Some(*d) != site),
            &["torch", "torch/lib", "nvidia"][..],
        ),
        (
            llama.filter(|d| Some(*d) != site),
            &["llama_cpp", "llama_cpp/lib"][..],
        ),
    ] {
        if let Some(dir) = dir {
            folders.extend(subs.iter().map(|sub| dir.join(sub)));
        }
    }
    let root = Path::new(&env.path);
    if env.kind == "conda" {
        // Conda puts the CUDA libraries torch loads into the environment's own lib/.
        folders.push(root.join("lib"));
        folders.push(root.join("conda-meta"));
    }
    folders
}

// ---------------------------------------------------------------------------------------------
// the files

/// One environment's stored answer.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    format: String,
    version: u32,
    stored_at_unix: u64,
    key: Key,
    live: LiveProbe,
}

/// Write one entry; false when it could not be (too large, a write error).
fn write_entry(path: &Path, key: Key, live: &LiveProbe, end: SystemTime) -> bool {
    let entry = Entry {
        format: FORMAT.to_string(),
        version: FORMAT_VERSION,
        stored_at_unix: unix_seconds(end),
        key,
        live: LiveProbe {
            cached: None,
            ..live.clone()
        },
    };
    match serde_json::to_string(&entry) {
        Ok(text) if text.len() as u64 <= MAX_ENTRY_BYTES => {
            // No fsync: a file torn by a power cut is ignored like any other corrupt entry.
            crate::files::write_atomic(path, text.as_bytes(), false).is_ok()
        }
        _ => false,
    }
}

/// An entry file, or `None` for anything that is not a readable entry of ours.
fn read_entry(path: &Path) -> Option<Entry> {
    let meta = fs::symlink_metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_ENTRY_BYTES || !owned_by_us(&meta) {
        return None;
    }
    let bytes = read_bounded(path, MAX_ENTRY_BYTES)?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(unix)]
fn owned_by_us(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and touches no memory.
    meta.uid() == unsafe { libc::geteuid() }
}

#[cfg(not(unix))]
fn owned_by_us(_meta: &fs::Metadata) -> bool {
    true
}

/// At most `max` bytes of a file; `None` when it cannot be read or is larger.
fn read_bounded(path: &Path, max: u64) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    fs::File::open(path)
        .ok()?
        .take(max + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    (bytes.len() as u64 <= max).then_some(bytes)
}

/// Keep the `keep` most recently written entries; also remove temporary files left by a run
/// that died between writing and renaming (older than an hour).
fn prune(dir: &Path, keep: usize) {
    let Ok(items) = fs::read_dir(dir) else {
        return;
    };
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let mut entries: Vec<(SystemTime, PathBuf)> = Vec::new();
    for item in items.flatten() {
        let path = item.path();
        let Ok(modified) = item.metadata().and_then(|m| m.modified()) else {
            continue;
        };
        let name = item.file_name().to_string_lossy().into_owned();
        // `.tmp-` ends the temporary files of earlier versions.
        if crate::files::is_temporary_name(&name) || name.contains(".tmp-") {
            if modified < hour_ago {
                let _ = fs::remove_file(&path);
            }
        } else if name.ends_with(".json") {
            entries.push((modified, path));
        }
    }
    if entries.len() <= keep {
        return;
    }
    // Newest first: what is dropped is the tail.
    entries.sort_by_key(|e| std::cmp::Reverse(e.0));
    for (_, path) in entries.drain(keep..) {
        let _ = fs::remove_file(path);
    }
}

// ---------------------------------------------------------------------------------------------
// small helpers

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn unix_nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// FNV-1a, 64 bits: stable across builds and platforms (std's hasher promises neither), and
/// enough to tell files apart; the key is compared field by field, not by this hash.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// A length-prefixed field, so that ("ab", "c") and ("a", "bc") differ.
    fn field(&mut self, bytes: &[u8]) {
        self.bytes(&(bytes.len() as u64).to_le_bytes());
        self.bytes(bytes);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = Fnv::new();
    h.bytes(bytes);
    h.finish()
}

fn hex(v: u64) -> String {
    format!("{v:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A cached answer is the answer stored, to the bit: serde_json's default float parser
    /// read a stored 46.494153000000004 back as 46.494153 (seen in CI), hence its
    /// float_roundtrip feature.
    #[test]
    fn numbers_read_back_exactly() {
        let seen = f64::from_bits(46.494153_f64.to_bits() + 1);
        for x in [seen, 46.494153, 0.1 + 0.2, 1e-300, 123_456.789_012_345] {
            let text = serde_json::to_string(&x).unwrap();
            assert_eq!(
                serde_json::from_str::<f64>(&text).unwrap().to_bits(),
                x.to_bits()
            );
        }
    }

    fn ctx(vars: &[(&str, &str)]) -> ProbeContext {
        ProbeContext {
            profile: crate::probe::Profile::Quick,
            env: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            fs_root: PathBuf::from("/nonexistent-root"),
        }
    }

    #[test]
    fn the_folder_comes_from_the_override_then_xdg_then_home() {
        let root = |vars: &[(&str, &str)]| cache_root(&ctx(vars));
        assert_eq!(
            root(&[("GPU_DOCTOR_CACHE_DIR", "/c"), ("HOME", "/h")]),
            Some(PathBuf::from("/c"))
        );
        assert_eq!(
            root(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")]),
            Some(PathBuf::from("/x/gpu-doctor"))
        );
        assert_eq!(
            root(&[("XDG_CACHE_HOME", "relative"), ("HOME", "/h")]),
            Some(PathBuf::from("/h/.cache/gpu-doctor"))
        );
        assert_eq!(root(&[("GPU_DOCTOR_CACHE_DIR", "rel")]), None);
        assert_eq!(root(&[]), None);
    }

    #[test]
    fn no_cache_switches_it_off_unless_false() {
        let on = [("GPU_DOCTOR_CACHE_DIR", "/c")];
        assert!(LiveCache::open(&ctx(&on)).is_some());
        for off in ["1", "yes", "true"] {
            let vars = [on[0], (NO_CACHE_VAR, off)];
            assert!(LiveCache::open(&ctx(&vars)).is_none(), "{off}");
        }
        for not_off in ["0", "false", "No", "off"] {
            let vars = [on[0], (NO_CACHE_VAR, not_off)];
            assert!(LiveCache::open(&ctx(&vars)).is_some(), "{not_off}");
        }
    }

    #[test]
    fn only_gpu_variables_enter_the_key() {
        let a = Shared::of(&ctx(&[("CUDA_VISIBLE_DEVICES", "0"), ("GIT_DIR", "x")]));
        let b = Shared::of(&ctx(&[("CUDA_VISIBLE_DEVICES", "0"), ("GIT_DIR", "y")]));
        let c = Shared::of(&ctx(&[("CUDA_VISIBLE_DEVICES", "1")]));
        let d = Shared::of(&ctx(&[("CUDA_VISIBLE_DEVICES", "0"), ("LD_PRELOAD", "")]));
        assert_eq!(a.variables, ["CUDA_VISIBLE_DEVICES"]);
        assert_eq!(a.variables_digest, b.variables_digest);
        assert_ne!(a.variables_digest, c.variables_digest);
        assert_ne!(a.variables_digest, d.variables_digest);
    }

    #[test]
    fn the_driver_key_follows_the_kernel_module_file() {
        let root = tempfile::tempdir().unwrap();
        let mut c = ctx(&[]);
        c.fs_root = root.path().to_path_buf();
        assert_eq!(Shared::of(&c).driver.kernel_module, None);
        let proc = root.path().join("proc/driver/nvidia");
        fs::create_dir_all(&proc).unwrap();
        fs::write(proc.join("version"), "NVRM version: 580.159.04\n").unwrap();
        let one = Shared::of(&c).driver.kernel_module;
        fs::write(proc.join("version"), "NVRM version: 580.160.01\n").unwrap();
        let two = Shared::of(&c).driver.kernel_module;
        assert!(one.is_some() && two.is_some() && one != two);
    }

    #[test]
    fn fnv_fields_are_length_prefixed() {
        let mut a = Fnv::new();
        a.field(b"ab");
        a.field(b"c");
        let mut b = Fnv::new();
        b.field(b"a");
        b.field(b"bc");
        assert_ne!(a.finish(), b.finish());
        // The published FNV-1a test vector.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn pruning_keeps_the_newest_entries_and_old_temporary_files_go() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5 {
            let path = dir.path().join(format!("{i}.json"));
            fs::write(&path, "{}").unwrap();
            let t = SystemTime::now() - Duration::from_secs(100 - i);
            fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        let stale = dir.path().join(".x.json.1.0.tmp");
        fs::write(&stale, "").unwrap();
        fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(7200))
            .unwrap();
        let fresh = dir.path().join(".y.json.1.1.tmp");
        fs::write(&fresh, "").unwrap();
        prune(dir.path(), 3);
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".y.json.1.1.tmp", "2.json", "3.json", "4.json"]);
    }

    #[test]
    fn only_answers_the_interpreter_gave_are_stored() {
        let probe = |status: &str| LiveProbe {
            status: status.into(),
            ..LiveProbe::default()
        };
        for status in ["ok", "failed", "crashed"] {
            assert!(cacheable(&probe(status)), "{status}");
        }
        for status in ["timed_out", "not_run", ""] {
            assert!(!cacheable(&probe(status)), "{status}");
        }
        let mut reused = probe("ok");
        reused.cached = Some(LiveCached::default());
        assert!(!cacheable(&reused), "a cached answer is never stored again");
    }

    #[test]
    fn a_key_is_racy_until_its_newest_time_is_older_than_the_window() {
        let end = SystemTime::now();
        let fresh = |age: Duration| FreshKey {
            key: Key::default(),
            newest_ns: unix_nanos(end - age),
        };
        assert!(racy(&fresh(Duration::ZERO), end));
        assert!(racy(&fresh(RACY_WINDOW / 2), end));
        assert!(!racy(&fresh(RACY_WINDOW + Duration::from_millis(1)), end));
        // A time after the end (a clock that moved, a network file system ahead of us).
        let mut future = fresh(Duration::ZERO);
        future.newest_ns += 60_000_000_000;
        assert!(racy(&future, end));
    }

    #[test]
    fn bounded_reads_refuse_larger_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, vec![b'x'; 11]).unwrap();
        assert!(read_bounded(&path, 10).is_none());
        assert_eq!(read_bounded(&path, 11).unwrap().len(), 11);
        assert!(read_bounded(&dir.path().join("missing"), 10).is_none());
    }
}
