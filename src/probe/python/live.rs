//! The live tier of the Python probe: each environment's own interpreter runs the embedded
//! probe script (`probe_script.py`) and says what it really sees.
//!
//! Files tell what is installed; only the interpreter can tell whether `import torch` works,
//! whether CUDA initialises, and which backends llama.cpp's build registered. Importing those
//! packages loads native libraries that may hang, abort or segfault, so each interpreter runs in
//! a child process ([`process::run`]: deadline, process-group kill, capped output), isolated from
//! PYTHON* variables and user site-packages (`-I`, or `-E -s` where the interpreter may predate
//! it), with stdin closed and an empty temporary folder as its working directory so that nothing
//! in the project (a `torch/` folder, a stray `libggml-cuda.so`) shadows what is installed. The
//! other variables (LD_LIBRARY_PATH, CUDA_VISIBLE_DEVICES, LLAMA_CPP_LIB_PATH ...) are passed on
//! unchanged: they are what the user's own programs get.
//!
//! All environments run at once, so the standard profile costs about the slowest environment's
//! `import torch`, not the sum. The script writes a tagged JSON line before each risky step; the
//! last one says how far it got, so a crash or a timeout is reported with the step it happened
//! in, and with whatever was learnt before it.
//!
//! `llama_print_system_info()` is returned verbatim and parsed here ([`parse_system_info`]), so
//! the parsing is tested without Python.

use crate::facts::python::{LiveLlama, LiveProbe, LiveTorch, PythonEnv};
use crate::probe::process::{self, signal_name, CommandOutput};
use crate::probe::{ProbeContext, Profile};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The probe script, run with `python -c`.
pub const SCRIPT: &str = include_str!("probe_script.py");
/// The key every answer line of the script carries.
pub const TAG: &str = "gpu_doctor_live";
/// How long one interpreter may take: `import torch` is 4-6 s on a warm H100 machine, much more
/// from a cold network disk.
pub const INTERPRETER_DEADLINE: Duration = Duration::from_secs(40);
/// How long the live tier may take in all. The runner gives the python probe 60 s in the
/// standard profile; this leaves room for the static tier and a margin.
pub const TOTAL_BUDGET: Duration = Duration::from_secs(50);
/// Cap on each of stdout and stderr. The answers are a few kilobytes.
pub const MAX_OUTPUT: usize = 1 << 20;
/// Interpreters running at once. Projects rarely have more environments; the cap bounds memory
/// (each `import torch` takes several hundred MB) when a conda installation has dozens.
const MAX_PARALLEL: usize = 16;
/// An environment whose turn comes with less time left than this is not started.
const MIN_SLOT: Duration = Duration::from_secs(2);
const STDERR_TAIL_LINES: usize = 20;
const STDERR_LINE_CHARS: usize = 400;

/// How the live tier runs.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// The children's environment variables (the doctor's own, from the probe context).
    pub env: BTreeMap<String, String>,
    /// Deadline of each interpreter.
    pub per_interpreter: Duration,
    /// Deadline of the whole tier: environments not started by then are reported not_run.
    pub total: Duration,
    /// Cap on each output stream.
    pub max_output: usize,
    /// Run the tiny tensor operation on each CUDA device.
    pub tensor: bool,
}

impl LiveOptions {
    /// The defaults, with the context's environment variables.
    pub fn from_context(ctx: &ProbeContext) -> LiveOptions {
        LiveOptions {
            env: ctx.env.clone(),
            // Shortened only by the tests' GPU_DOCTOR_TEST_DEADLINE_SCALE.
            per_interpreter: process::scaled(INTERPRETER_DEADLINE),
            total: process::scaled(TOTAL_BUDGET),
            max_output: MAX_OUTPUT,
            tensor: true,
        }
    }
}

/// Fill `live` of every environment: in the standard and full profiles by asking each
/// interpreter (and storing the answers in the live-result cache, [`super::cache`]); in the
/// quick profile, which starts no interpreter, from that cache where its entry is still valid.
pub fn probe_all(ctx: &ProbeContext, envs: &mut [PythonEnv]) {
    let cache = super::cache::LiveCache::open(ctx);
    if ctx.profile == Profile::Quick {
        if let Some(cache) = &cache {
            cache.attach(envs);
        }
        return;
    }
    let keys = cache.as_ref().map(|c| c.keys(envs));
    probe_envs(envs, &LiveOptions::from_context(ctx));
    if let (Some(cache), Some(keys)) = (&cache, keys) {
        cache.store(envs, &keys);
    }
}

/// Run every environment's interpreter in parallel and store each answer in its `live`.
/// Environments without an interpreter get status not_run.
pub fn probe_envs(envs: &mut [PythonEnv], opts: &LiveOptions) {
    let start = Instant::now();
    let workdir = WorkDir::create();
    let runnable: Vec<usize> = (0..envs.len()).filter(|&i| envs[i].python_exists).collect();
    let mut answers = run_parallel(envs, &runnable, opts, workdir.path(), start);
    for (i, env) in envs.iter_mut().enumerate() {
        env.live = Some(if env.python_exists {
            answers
                .remove(&i)
                .unwrap_or_else(|| not_run("the live probe of this environment was lost"))
        } else {
            not_run(&format!("no interpreter at {}", env.python))
        });
    }
}

/// Workers take environments from a shared counter until none is left.
fn run_parallel(
    envs: &[PythonEnv],
    runnable: &[usize],
    opts: &LiveOptions,
    cwd: &Path,
    start: Instant,
) -> BTreeMap<usize, LiveProbe> {
    let next = AtomicUsize::new(0);
    let workers = runnable.len().min(MAX_PARALLEL);
    let mut answers = BTreeMap::new();
    thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    while let Some(&i) = runnable.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let left = opts.total.saturating_sub(start.elapsed());
                        let probe = if left < MIN_SLOT {
                            not_run("the live tier's time ran out before this environment's turn")
                        } else {
                            probe_env(&envs[i], opts, cwd, left.min(opts.per_interpreter))
                        };
                        done.push((i, probe));
                    }
                    done
                })
            })
            .collect();
        for handle in handles {
            // A worker cannot panic on foreign input; should it anyway, its environments are
            // reported as lost rather than taking the probe down.
            if let Ok(done) = handle.join() {
                answers.extend(done);
            }
        }
    });
    answers
}

/// Run one environment's interpreter with the probe script, under `deadline`, in `cwd`.
pub fn probe_env(env: &PythonEnv, opts: &LiveOptions, cwd: &Path, deadline: Duration) -> LiveProbe {
    let flags = interpreter_flags(env.python_version.as_deref());
    let mut cmd = Command::new(&env.python);
    cmd.args(&flags)
        .arg("-c")
        .arg(SCRIPT)
        .args(script_args(env, opts, deadline))
        .current_dir(cwd)
        .env_clear()
        .envs(crate::probe::child_environment(&opts.env))
        // Ignored under -I and -E (hence -B too); set for interpreters that read it anyway.
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let mut probe = match process::run(&mut cmd, deadline, opts.max_output) {
        Ok(out) => interpret(&out),
        Err(e) => LiveProbe {
            status: "failed".into(),
            error: Some(format!("{} could not be started: {e}", env.python)),
            ..LiveProbe::default()
        },
    };
    probe.interpreter_flags = flags.iter().map(|f| f.to_string()).collect();
    probe
}

/// `-I` (isolated: no PYTHON* variables, no user site-packages, no script folder on sys.path)
/// for CPython 3.4 and later; `-E -s` otherwise, which every version understands, including an
/// interpreter whose version the files do not tell. `-B`: write no bytecode into the environment.
pub fn interpreter_flags(python_version: Option<&str>) -> Vec<&'static str> {
    let mut parts = python_version
        .unwrap_or("")
        .split('.')
        .map(|p| p.parse::<u32>());
    let isolated = match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= (3, 4),
        _ => false,
    };
    if isolated {
        vec!["-I", "-B"]
    } else {
        vec!["-E", "-s", "-B"]
    }
}

/// The script's arguments: its deadline (it dumps a traceback to stderr just before), and the
/// packages the files show, tried even when the import system cannot find them.
fn script_args(env: &PythonEnv, opts: &LiveOptions, deadline: Duration) -> Vec<String> {
    let mut args = vec![
        "--deadline".to_string(),
        format!("{:.1}", deadline.as_secs_f64()),
    ];
    if env.torch.installed {
        args.push("--torch".into());
    }
    if env.llama_cpp.installed {
        args.push("--llama-cpp".into());
    }
    if !opts.tensor {
        args.push("--no-tensor".into());
    }
    args
}

fn not_run(why: &str) -> LiveProbe {
    LiveProbe {
        status: "not_run".into(),
        error: Some(why.to_string()),
        ..LiveProbe::default()
    }
}

// ---------------------------------------------------------------------------------------------
// the answer

/// Turn what the interpreter did into a [`LiveProbe`]: the data of its last answer line, and a
/// status from how it ended.
///
/// - ok: the script finished (its last line has `"done": true`). A crash or error exit after
///   that (some CUDA libraries crash at interpreter exit) is noted in `error`.
/// - timed_out: the deadline passed; crashed: killed by a signal (or, on Windows, ended by an
///   exception code such as 0xC0000005); failed: any other end without a finished answer.
///
/// The error says how it ended, at which step, and the last lines of stderr.
pub fn interpret(out: &CommandOutput) -> LiveProbe {
    let answer = last_answer(&out.stdout);
    let mut probe = answer.as_ref().map(from_answer).unwrap_or_default();
    probe.duration_ms = out.duration.as_secs_f64() * 1000.0;
    let done = answer
        .as_ref()
        .and_then(|a| a.get("done"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let script_error = answer
        .as_ref()
        .and_then(|a| a.get("script_error"))
        .and_then(Value::as_str);
    let (status, why) = classify(out, answer.is_some(), done, probe.stage.as_deref());
    probe.status = status.to_string();
    let why = match (why, script_error) {
        (Some(w), _) => Some(w),
        (None, Some(e)) => Some(format!("the probe script met an error: {e}")),
        (None, None) => None,
    };
    probe.error = why.map(|w| with_stderr_tail(w, out));
    probe
}

/// Status and, when something went wrong, what.
fn classify(
    out: &CommandOutput,
    answered: bool,
    done: bool,
    stage: Option<&str>,
) -> (&'static str, Option<String>) {
    let at = stage.map(stage_words).unwrap_or("before it answered");
    let end = describe_end(out);
    let clean = out.code == Some(0) && !out.timed_out;
    match (done, clean) {
        (true, true) => ("ok", None),
        // The answer is complete; what went wrong at exit (a library's thread that never
        // ends, a crash in an atexit handler) is worth saying but changes no fact.
        (true, false) if out.timed_out => ("ok", Some(format!("it answered, then {end}"))),
        (true, false) => ("ok", Some(format!("it answered, then ended with {end}"))),
        (false, _) if out.timed_out => ("timed_out", Some(format!("{end} {at}"))),
        (false, _) if crashed(out) => ("crashed", Some(format!("{end} {at}"))),
        (false, _) if answered => ("failed", Some(format!("{end} {at}"))),
        (false, _) => {
            let mut why = format!("{end}, without an answer from the probe script");
            if out.truncated {
                why.push_str(&format!(
                    " (it printed more than {} KiB)",
                    out.stdout.len() / 1024
                ));
            }
            ("failed", Some(why))
        }
    }
}

/// Killed by a signal, or (Windows) ended by an NTSTATUS exception code.
fn crashed(out: &CommandOutput) -> bool {
    out.signal.is_some() || out.code.is_some_and(|c| (c as u32) >= 0xC000_0000)
}

fn describe_end(out: &CommandOutput) -> String {
    if out.timed_out {
        return out.describe_end();
    }
    match (out.code, out.signal) {
        (Some(code), _) if (code as u32) >= 0xC000_0000 => {
            format!("exception code 0x{:08X}", code as u32)
        }
        (None, Some(sig)) => format!("signal {sig} ({})", signal_name(sig)),
        _ => out.describe_end(),
    }
}

/// The script's step names, as words for the error line.
fn stage_words(stage: &str) -> &'static str {
    match stage {
        "start" => "while starting",
        "torch.import" => "while importing torch",
        "torch.cuda" => "while torch initialised CUDA",
        s if s.starts_with("torch.tensor") => "while running a tensor operation on a GPU",
        "llama_cpp.import" => "while importing llama_cpp (loading its shared libraries)",
        "llama_cpp.system_info" => "while asking llama_cpp for GPU offload and system info",
        "llama_cpp.devices" => "while listing llama.cpp's devices",
        "done" => "after answering",
        _ => "at an unknown step",
    }
}

fn with_stderr_tail(why: String, out: &CommandOutput) -> String {
    let tail = stderr_tail(&out.stderr);
    if tail.is_empty() {
        return why;
    }
    format!("{why}; stderr ends with:\n{tail}")
}

/// The last lines of stderr, each bounded, blank lines dropped.
pub fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    let from = lines.len().saturating_sub(STDERR_TAIL_LINES);
    lines[from..]
        .iter()
        .map(|l| bounded(l, STDERR_LINE_CHARS))
        .collect::<Vec<_>>()
        .join("\n")
}

fn bounded(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_string(),
    }
}

/// The last line of stdout that is a JSON object carrying [`TAG`].
pub fn last_answer(stdout: &[u8]) -> Option<Value> {
    let text = String::from_utf8_lossy(stdout);
    text.lines().rev().find_map(|line| {
        let line = line.trim();
        if !line.starts_with('{') || !line.contains(TAG) {
            return None;
        }
        serde_json::from_str::<Value>(line)
            .ok()
            .filter(|v| v.get(TAG).is_some())
    })
}

/// The data of one answer line.
pub fn from_answer(answer: &Value) -> LiveProbe {
    let string = |key: &str| answer.get(key).and_then(Value::as_str).map(str::to_string);
    LiveProbe {
        stage: string("stage"),
        python_version: string("python_version"),
        implementation: string("implementation"),
        executable: string("executable"),
        import_paths: section(answer, "import_paths"),
        torch: section::<LiveTorch>(answer, "torch"),
        llama_cpp: llama_section(answer),
        ..LiveProbe::default()
    }
}

/// One section, leniently: a malformed one is empty rather than fatal.
fn section<T: serde::de::DeserializeOwned + Default>(answer: &Value, key: &str) -> T {
    answer
        .get(key)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

fn llama_section(answer: &Value) -> LiveLlama {
    let mut llama: LiveLlama = section(answer, "llama_cpp");
    if let Some(info) = llama.system_info.as_deref() {
        let parsed = parse_system_info(info);
        llama.backends = parsed.backends;
        llama.flags = parsed.flags;
        llama.cuda_archs = parsed.cuda_archs;
    }
    llama
}

// ---------------------------------------------------------------------------------------------
// llama_print_system_info()

/// `llama_print_system_info()`, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemInfo {
    /// Backends in the order they registered: ["CUDA", "CPU"].
    pub backends: Vec<String>,
    /// Flags by backend: {"CUDA": {"ARCHS": "900", ...}, "CPU": {"AVX2": "1", ...}}.
    pub flags: BTreeMap<String, BTreeMap<String, String>>,
    /// The CUDA backend's ARCHS as compute capabilities: ["9.0"].
    pub cuda_archs: Vec<String>,
}

/// Old builds (before the backend registry, 2024) printed one flat list of flags without
/// backend names; a GPU flag set to 1 there names its backend.
const OLD_STYLE_GPU_FLAGS: &[(&str, &str)] = &[
    ("CUDA", "CUDA"),
    ("CUBLAS", "CUDA"),
    ("METAL", "Metal"),
    ("VULKAN", "Vulkan"),
    ("SYCL", "SYCL"),
    ("KOMPUTE", "Kompute"),
];

/// Parse `"CUDA : ARCHS = 900 | USE_GRAPHS = 1 | CPU : SSE3 = 1 | AVX2 = 1 | "`.
///
/// Items are separated by `|`. An item `NAME : KEY = VALUE` opens backend NAME; `KEY = VALUE`
/// adds a flag to the open backend. Flags before any backend name (the old flat format) are
/// filed under "CPU", which is what that list described.
pub fn parse_system_info(info: &str) -> SystemInfo {
    let mut parsed = SystemInfo::default();
    let mut current: Option<String> = None;
    for item in info.split('|').map(str::trim).filter(|i| !i.is_empty()) {
        let flag = match split_backend(item) {
            Some((backend, rest)) => {
                if !parsed.backends.contains(&backend) {
                    parsed.backends.push(backend.clone());
                }
                current = Some(backend);
                rest
            }
            None => item,
        };
        if flag.is_empty() {
            continue;
        }
        let (key, value) = match flag.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (flag, ""),
        };
        let backend = current.clone().unwrap_or_else(|| "CPU".to_string());
        if current.is_none() {
            old_style_backend(&mut parsed.backends, key, value);
        }
        parsed
            .flags
            .entry(backend)
            .or_default()
            .insert(key.to_string(), value.to_string());
    }
    if let Some(archs) = parsed.flags.get("CUDA").and_then(|f| f.get("ARCHS")) {
        parsed.cuda_archs = parse_cuda_archs(archs);
    }
    parsed
}

/// `"CUDA : ARCHS = 900"` -> ("CUDA", "ARCHS = 900"). The backend part has no `=`.
fn split_backend(item: &str) -> Option<(String, &str)> {
    let (name, rest) = item.split_once(':')?;
    let name = name.trim();
    if name.is_empty() || name.contains('=') {
        return None;
    }
    Some((name.to_string(), rest.trim()))
}

fn old_style_backend(backends: &mut Vec<String>, key: &str, value: &str) {
    if !backends.iter().any(|b| b == "CPU") {
        backends.push("CPU".to_string());
    }
    if value != "1" {
        return;
    }
    if let Some((_, name)) = OLD_STYLE_GPU_FLAGS.iter().find(|(flag, _)| *flag == key) {
        if !backends.iter().any(|b| b == name) {
            backends.push(name.to_string());
        }
    }
}

/// `"900,890"`, `"75;86"` or `"1200"` -> compute capabilities, in order, without repeats.
pub fn parse_cuda_archs(archs: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for code in archs
        .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|c| !c.is_empty())
    {
        if let Some(cc) = cuda_arch(code) {
            if !out.contains(&cc) {
                out.push(cc);
            }
        }
    }
    out
}

/// One architecture code as a compute capability.
///
/// `__CUDA_ARCH_LIST__` gives `major*100 + minor*10` ("900" -> "9.0", "890" -> "8.9", "1200"
/// -> "12.0"); CMake and nvcc spell the same as `major*10 + minor` ("90", "86", "120", also as
/// "sm_90" or "90-real"). The two overlap only in form: an `__CUDA_ARCH__` value ends in 0 and
/// is at least 300, and no SM number is that large. A letter suffix ("900a", "90a", "100f")
/// is kept: "9.0a".
pub fn cuda_arch(code: &str) -> Option<String> {
    let code = code.trim();
    let code = code
        .strip_prefix("sm_")
        .or_else(|| code.strip_prefix("compute_"))
        .unwrap_or(code);
    let code = code.split('-').next().unwrap_or(code);
    let digits_end = code
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(code.len());
    let (digits, suffix) = code.split_at(digits_end);
    if digits.is_empty() || digits.len() > 5 || !suffix.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let value: u32 = digits.parse().ok()?;
    let (major, minor) = if value >= 300 && value.is_multiple_of(10) {
        (value / 100, (value % 100) / 10)
    } else {
        (value / 10, value % 10)
    };
    if major == 0 {
        return None;
    }
    Some(format!("{major}.{minor}{suffix}"))
}

// ---------------------------------------------------------------------------------------------
// the working folder

/// An empty folder made for the children to run in, removed when dropped. When it cannot be
/// made, the system's temporary folder is used instead (and left alone).
struct WorkDir {
    path: PathBuf,
    owned: bool,
}

impl WorkDir {
    fn create() -> WorkDir {
        let base = std::env::temp_dir();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = base.join(format!("gpu-doctor-live-{}-{nanos}", std::process::id()));
        // create_dir (not create_dir_all) fails on an existing folder: never adopt one.
        // Recorded so that an interrupt removes it (crate::signals).
        match crate::signals::create_temp(&path, std::fs::create_dir) {
            Ok(()) => WorkDir { path, owned: true },
            Err(_) => WorkDir {
                path: base,
                owned: false,
            },
        }
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_dir_all(&self.path);
            crate::signals::forget_temp(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(stdout: &str, stderr: &str, code: Option<i32>, signal: Option<i32>) -> CommandOutput {
        CommandOutput {
            code,
            signal,
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
            timed_out: false,
            truncated: false,
            duration: Duration::from_millis(1500),
        }
    }

    /// A recorded answer (kept pretty-printed for review), as the one stdout line it was.
    fn fixture(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/python-live")
            .join(name);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let value: Value = serde_json::from_str(&text).expect("a recorded answer is JSON");
        format!("{value}\n")
    }

    const H100_SYSTEM_INFO: &str = "CUDA : ARCHS = 900 | USE_GRAPHS = 1 | PEER_MAX_BATCH_SIZE = 128 | FA_QUANTS = q4_0-q4_0,q8_0-q8_0,f16-f16,bf16-bf16 | CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | ";

    #[test]
    fn system_info_of_a_cuda_build_has_both_backends_in_order_and_its_archs() {
        let info = parse_system_info(H100_SYSTEM_INFO);
        assert_eq!(info.backends, ["CUDA", "CPU"]);
        assert_eq!(info.cuda_archs, ["9.0"]);
        let cuda = &info.flags["CUDA"];
        assert_eq!(cuda["ARCHS"], "900");
        assert_eq!(cuda["USE_GRAPHS"], "1");
        assert_eq!(cuda["FA_QUANTS"], "q4_0-q4_0,q8_0-q8_0,f16-f16,bf16-bf16");
        assert_eq!(info.flags["CPU"]["AVX512"], "1");
        assert!(!info.flags["CPU"].contains_key("ARCHS"));
    }

    #[test]
    fn system_info_of_a_cpu_build_and_of_other_backends() {
        let cpu = parse_system_info("CPU : SSE3 = 1 | AVX2 = 1 | LLAMAFILE = 1 | REPACK = 1 | ");
        assert_eq!(cpu.backends, ["CPU"]);
        assert!(cpu.cuda_archs.is_empty());
        assert_eq!(cpu.flags["CPU"].len(), 4);
        let metal = parse_system_info(
            "Metal : EMBED_LIBRARY = 1 | BLAS : ACCELERATE = 1 | CPU : NEON = 1 | ARM_FMA = 1 |",
        );
        assert_eq!(metal.backends, ["Metal", "BLAS", "CPU"]);
        assert_eq!(metal.flags["BLAS"]["ACCELERATE"], "1");
        let forced = parse_system_info("CUDA : ARCHS = 600,610,700,750,800,860,890,900 | FORCE_MMQ = 1 | NO_VMM = 1 | CPU : AVX = 1 |");
        assert_eq!(
            forced.cuda_archs,
            ["6.0", "6.1", "7.0", "7.5", "8.0", "8.6", "8.9", "9.0"]
        );
        assert_eq!(forced.flags["CUDA"]["FORCE_MMQ"], "1");
    }

    #[test]
    fn the_old_flat_format_is_filed_under_cpu_and_names_its_gpu_flags() {
        let old = parse_system_info(
            "AVX = 1 | AVX_VNNI = 0 | AVX2 = 1 | CUBLAS = 1 | METAL = 0 | SSE3 = 1 | ",
        );
        assert_eq!(old.backends, ["CPU", "CUDA"]);
        assert_eq!(old.flags["CPU"]["CUBLAS"], "1");
        let plain = parse_system_info("AVX = 1 | CUBLAS = 0 |");
        assert_eq!(plain.backends, ["CPU"]);
    }

    #[test]
    fn garbage_system_info_never_panics() {
        for junk in [
            "",
            "|||",
            " : = | : | = |",
            "CUDA :",
            "CUDA : ARCHS = | CPU",
            "é : ü = ö | 🙂",
            &"A = 1 | ".repeat(10_000),
        ] {
            let _ = parse_system_info(junk);
        }
        assert!(parse_system_info("CUDA : ARCHS = |").cuda_archs.is_empty());
    }

    #[test]
    fn cuda_arch_codes_in_every_spelling() {
        let cases = [
            ("900", Some("9.0")),
            ("890", Some("8.9")),
            ("1200", Some("12.0")),
            ("1210", Some("12.1")),
            ("750", Some("7.5")),
            ("500", Some("5.0")),
            ("900a", Some("9.0a")),
            ("90a", Some("9.0a")),
            ("1000f", Some("10.0f")),
            ("86", Some("8.6")),
            ("90", Some("9.0")),
            ("120", Some("12.0")),
            ("100", Some("10.0")),
            ("103", Some("10.3")),
            ("sm_89", Some("8.9")),
            ("compute_90", Some("9.0")),
            ("90-real", Some("9.0")),
            ("", None),
            ("x", None),
            ("0", None),
            ("9.0", None),
            ("99999999999", None),
        ];
        for (code, want) in cases {
            assert_eq!(cuda_arch(code).as_deref(), want, "{code:?}");
        }
        assert_eq!(parse_cuda_archs("900, 900;860 x"), ["9.0", "8.6"]);
    }

    #[test]
    fn interpreter_flags_isolate_where_the_version_allows() {
        assert_eq!(interpreter_flags(Some("3.12.3")), ["-I", "-B"]);
        assert_eq!(interpreter_flags(Some("3.4")), ["-I", "-B"]);
        assert_eq!(interpreter_flags(Some("3.3.7")), ["-E", "-s", "-B"]);
        assert_eq!(interpreter_flags(Some("2.7.18")), ["-E", "-s", "-B"]);
        assert_eq!(interpreter_flags(Some("3")), ["-E", "-s", "-B"]);
        assert_eq!(interpreter_flags(None), ["-E", "-s", "-B"]);
        assert_eq!(interpreter_flags(Some("garbage")), ["-E", "-s", "-B"]);
    }

    fn line(stage: &str, done: bool) -> String {
        format!(
            "{{\"{TAG}\": 1, \"stage\": \"{stage}\", \"done\": {done}, \"python_version\": \"3.12.3\", \"torch\": {{\"attempted\": true, \"import_ok\": true, \"version\": \"2.11.0+cu130\"}}}}\n"
        )
    }

    #[test]
    fn a_finished_answer_is_ok_and_the_last_line_wins() {
        let stdout = format!("{}{}", line("torch.import", false), line("done", true));
        let probe = interpret(&output(&stdout, "noise\n", Some(0), None));
        assert_eq!(probe.status, "ok");
        assert_eq!(probe.error, None);
        assert_eq!(probe.stage.as_deref(), Some("done"));
        assert_eq!(probe.python_version.as_deref(), Some("3.12.3"));
        assert!(probe.torch.import_ok);
        assert_eq!(probe.duration_ms, 1500.0);
    }

    #[test]
    fn a_crash_names_the_signal_the_step_and_the_stderr_tail() {
        let stdout = format!(
            "{}{}",
            line("start", false),
            line("llama_cpp.import", false)
        );
        let stderr: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let probe = interpret(&output(&stdout, &stderr, None, Some(11)));
        assert_eq!(probe.status, "crashed");
        let error = probe.error.unwrap();
        assert!(
            error.starts_with("signal 11 (SIGSEGV) while importing llama_cpp"),
            "{error}"
        );
        assert!(error.ends_with("line 30"), "{error}");
        assert!(
            error.contains("line 11\n") && !error.contains("line 10\n"),
            "{error}"
        );
        // What was learnt before the crash is kept.
        assert!(probe.torch.import_ok);
    }

    #[test]
    fn windows_exception_codes_are_crashes() {
        let probe = interpret(&output(
            &line("torch.cuda", false),
            "",
            Some(-1073741819),
            None,
        ));
        assert_eq!(probe.status, "crashed");
        let error = probe.error.unwrap();
        assert!(
            error.starts_with("exception code 0xC0000005 while torch"),
            "{error}"
        );
    }

    #[test]
    fn timeouts_failures_and_garbage() {
        let mut hung = output(&line("torch.cuda", false), "", None, Some(9));
        hung.timed_out = true;
        let probe = interpret(&hung);
        assert_eq!(probe.status, "timed_out");
        assert!(probe
            .error
            .unwrap()
            .contains("while torch initialised CUDA"));

        let syntax = interpret(&output("", "SyntaxError: invalid syntax\n", Some(1), None));
        assert_eq!(syntax.status, "failed");
        let error = syntax.error.unwrap();
        assert!(
            error.starts_with("exit code 1, without an answer"),
            "{error}"
        );
        assert!(error.ends_with("SyntaxError: invalid syntax"), "{error}");

        let garbage = interpret(&output(
            "{not json\n{\"other\": 1}\n\u{0}\u{ff}",
            "",
            Some(0),
            None,
        ));
        assert_eq!(garbage.status, "failed");

        let mut flood = output(&"x".repeat(2048), "", Some(0), None);
        flood.truncated = true;
        assert!(interpret(&flood)
            .error
            .unwrap()
            .contains("printed more than 2 KiB"));

        let mut lingers = output(&line("done", true), "", None, Some(9));
        lingers.timed_out = true;
        let lingers = interpret(&lingers);
        assert_eq!(lingers.status, "ok");
        assert!(lingers
            .error
            .unwrap()
            .starts_with("it answered, then timed out"));

        let exit_after = interpret(&output(&line("done", true), "", None, Some(11)));
        assert_eq!(exit_after.status, "ok");
        assert!(exit_after
            .error
            .unwrap()
            .contains("then ended with signal 11"));
    }

    #[test]
    fn a_malformed_section_is_empty_not_fatal() {
        let stdout = format!("{{\"{TAG}\": 1, \"done\": true, \"stage\": \"done\", \"torch\": {{\"device_count\": -3}}, \"llama_cpp\": [1]}}");
        let probe = interpret(&output(&stdout, "", Some(0), None));
        assert_eq!(probe.status, "ok");
        assert_eq!(probe.torch.device_count, 0);
        assert!(!probe.llama_cpp.attempted);
    }

    #[test]
    fn long_stderr_lines_are_bounded() {
        let tail = stderr_tail(format!("{}\n", "é".repeat(5000)).as_bytes());
        assert_eq!(tail.chars().count(), STDERR_LINE_CHARS + 3);
    }

    // Recorded answers (fixtures/python-live/README.md says where each comes from).

    #[test]
    fn replay_h100_torch_cu130() {
        let out = output(&fixture("h100-torch-2.11.0-cu130.json"), "", Some(0), None);
        let probe = interpret(&out);
        assert_eq!(probe.status, "ok", "{:?}", probe.error);
        assert_eq!(probe.python_version.as_deref(), Some("3.12.3"));
        let torch = &probe.torch;
        assert!(torch.import_ok);
        assert_eq!(torch.version.as_deref(), Some("2.11.0+cu130"));
        assert_eq!(torch.cuda.as_deref(), Some("13.0"));
        assert_eq!(torch.cuda_available, Some(true));
        assert_eq!(torch.device_count, 1);
        let gpu = &torch.devices[0];
        assert_eq!(gpu.name, "NVIDIA H100 80GB HBM3");
        assert_eq!(gpu.capability, "9.0");
        assert!(gpu.tensor_ok, "{:?}", gpu.tensor_error);
        assert_eq!(
            torch.arch_list,
            ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]
        );
        assert!(!probe.llama_cpp.attempted);
    }

    #[test]
    fn replay_cpu_llama_cpp_python() {
        let out = output(
            &fixture("llama-cpp-python-0.3.36-cpu.json"),
            "",
            Some(0),
            None,
        );
        let probe = interpret(&out);
        assert_eq!(probe.status, "ok", "{:?}", probe.error);
        let llama = &probe.llama_cpp;
        assert!(llama.import_ok);
        assert_eq!(llama.version.as_deref(), Some("0.3.36"));
        assert_eq!(llama.supports_gpu_offload, Some(false));
        assert_eq!(llama.backends, ["CPU"]);
        assert!(llama.cuda_archs.is_empty());
        assert_eq!(llama.gpu_device_count, Some(0));
    }

    #[test]
    fn replay_h100_torch_on_the_gpu_but_llama_cpp_without_a_gpu_backend() {
        let out = output(
            &fixture("h100-llama-cpp-python-0.3.36-cpu-with-torch.json"),
            "",
            Some(0),
            None,
        );
        let probe = interpret(&out);
        assert_eq!(probe.status, "ok", "{:?}", probe.error);
        assert_eq!(probe.torch.cuda_available, Some(true));
        assert!(probe.torch.devices.iter().all(|d| d.tensor_ok));
        let llama = &probe.llama_cpp;
        assert!(llama.import_ok);
        assert_eq!(llama.supports_gpu_offload, Some(false));
        assert_eq!(llama.backends, ["CPU"]);
        assert_eq!(llama.devices, ["CPU (cpu): Intel(R) Xeon(R) Processor"]);
        assert_eq!(llama.flags["CPU"]["OPENMP"], "1");
    }
}
