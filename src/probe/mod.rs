//! Probes: each one fills one section of [`Facts`] and records how it ended.
//!
//! Probes start together ([`runner`]), each under its own deadline. A probe never decides what
//! is wrong; it only reports what it saw. Probes that call into foreign code which may crash or
//! hang (the CUDA driver, nvcc, Python) do that in a child process with a deadline
//! ([`process`]).

pub mod cuda;
pub mod driver;
pub mod elf;
pub mod host;
pub mod llama;
pub mod loader;
pub mod process;
pub mod python;
pub mod runner;
pub mod toolkit;

use crate::facts::{Facts, ProbeStatus};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;

/// How much work a check does. See design.md §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Profile {
    /// Static inspection only: files, env vars. No GPU calls, no child processes. For pre-commit.
    Quick,
    /// + NVML, CUDA driver initialisation and a context on each device.
    Standard,
    /// + a real kernel on every GPU and transfer bandwidth.
    Full,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Quick => "quick",
            Profile::Standard => "standard",
            Profile::Full => "full",
        }
    }
}

/// What every probe may read: the profile, a snapshot of the environment, and the filesystem
/// root under which /proc, /sys and /dev are read (tests point it at a fixture tree).
#[derive(Debug, Clone)]
pub struct ProbeContext {
    pub profile: Profile,
    /// The environment as text: see [`process_environment`]. Child processes get it through
    /// [`child_environment`], which restores the exact bytes of the variables read lossily.
    pub env: BTreeMap<String, String>,
    pub fs_root: PathBuf,
}

impl ProbeContext {
    pub fn from_process(profile: Profile) -> ProbeContext {
        ProbeContext {
            profile,
            env: process_environment(),
            fs_root: PathBuf::from("/"),
        }
    }

    pub fn var(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str)
    }

    /// A non-empty variable's value.
    pub fn nonempty_var(&self, name: &str) -> Option<&str> {
        self.var(name).filter(|v| !v.is_empty())
    }

    /// An absolute system path (like "/proc/driver/nvidia/version") under the context's root.
    pub fn sys_path(&self, absolute: &str) -> PathBuf {
        self.fs_root.join(absolute.trim_start_matches('/'))
    }
}

/// Variables of this process that are not valid UTF-8, by their lossy name and value.
static NOT_UTF8: OnceLock<BTreeMap<(String, String), (OsString, OsString)>> = OnceLock::new();

/// This process's environment as text. A name or value that is not valid UTF-8 (bash sets
/// OLDPWD to a folder named in Latin-1, say) is kept with its invalid bytes replaced by U+FFFD:
/// it is shown that way in the facts, and never stops the run (`std::env::vars` panics on it).
pub fn process_environment() -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let mut not_utf8 = BTreeMap::new();
    for (name, value) in std::env::vars_os() {
        let text = (
            name.to_string_lossy().into_owned(),
            value.to_string_lossy().into_owned(),
        );
        if name.to_str().is_none() || value.to_str().is_none() {
            not_utf8.insert(text.clone(), (name, value));
        }
        env.insert(text.0, text.1);
    }
    let _ = NOT_UTF8.set(not_utf8);
    env
}

/// The environment to give a child process started with `env_clear`: `env` as it is, except
/// that a variable [`process_environment`] read lossily, and still holds that lossy value, goes
/// to the child with its exact bytes.
pub fn child_environment(env: &BTreeMap<String, String>) -> Vec<(OsString, OsString)> {
    let exact = NOT_UTF8.get();
    env.iter()
        .map(
            |(name, value)| match exact.and_then(|m| m.get(&(name.clone(), value.clone()))) {
                Some(raw) => raw.clone(),
                None => (name.into(), value.into()),
            },
        )
        .collect()
}

/// What a probe hands back: its section of facts plus how it ended.
#[derive(Debug, Clone)]
pub struct Probed<T> {
    pub status: ProbeStatus,
    pub error: Option<String>,
    pub data: T,
}

impl<T> Probed<T> {
    pub fn ok(data: T) -> Self {
        Probed {
            status: ProbeStatus::Ok,
            error: None,
            data,
        }
    }
    pub fn absent(data: T, what: impl Into<String>) -> Self {
        Probed {
            status: ProbeStatus::Absent,
            error: Some(what.into()),
            data,
        }
    }
    pub fn failed(data: T, why: impl Into<String>) -> Self {
        Probed {
            status: ProbeStatus::Failed,
            error: Some(why.into()),
            data,
        }
    }
}

/// Probe this machine with every probe the profile includes, in parallel.
pub fn collect(ctx: &ProbeContext) -> Facts {
    runner::collect(ctx)
}
