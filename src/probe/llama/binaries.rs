//! llama.cpp's own programs: llama-cli, llama-server and llama-bench on PATH or named in the
//! configuration.
//!
//! Each one is asked `--version` and `--list-devices` (which GPUs its build sees; CUDA's
//! initialisation lines come with it). llama-bench also runs the placement model with
//! `-ngl 99` and `-ngl 0` (`-o json` for the timings, `-v` for the load logs, which go to
//! stderr), and the log parser reads where the layers went. llama-cli and llama-server are not
//! run on a model: they are interactive or serve forever.

use super::log::{self, parse_log};
use super::stack::{load_run, set_system_info};
use crate::facts::llama::{LlamaStack, LoadRun};
use crate::probe::process::{self, signal_name, CommandOutput};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The programs looked for on PATH.
pub const NAMES: &[&str] = &["llama-cli", "llama-server", "llama-bench"];
/// PATH entries read at most.
const MAX_PATH_ENTRIES: usize = 256;
const QUICK_DEADLINE: Duration = Duration::from_secs(10);
const MAX_OUTPUT: usize = 8 << 20;

/// Every llama.cpp program found: on `path_var` (in PATH order), then those `named` in the
/// configuration; one entry per real file.
pub fn find(path_var: Option<&str>, named: &[String]) -> Vec<PathBuf> {
    let mut found: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut add = |p: PathBuf| {
        if !p.is_file() {
            return;
        }
        let canonical = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
        if !found.iter().any(|(_, c)| c == &canonical) {
            found.push((p, canonical));
        }
    };
    if let Some(path) = path_var {
        for dir in std::env::split_paths(path).take(MAX_PATH_ENTRIES) {
            for name in NAMES {
                add(dir.join(name));
                if cfg!(windows) {
                    add(dir.join(format!("{name}.exe")));
                }
            }
        }
    }
    for n in named {
        add(PathBuf::from(n));
    }
    found.into_iter().map(|(p, _)| p).collect()
}

/// What llama-bench is asked.
pub struct BenchJob<'a> {
    pub model: &'a Path,
    pub model_layers: Option<u32>,
    pub prompt_tokens: u32,
    pub gen_tokens: u32,
    pub deadline: Duration,
    pub env: &'a BTreeMap<String, String>,
    pub cwd: &'a Path,
    /// Where to keep llama-bench's raw output (see `pyproof::RECORD_VAR`).
    pub record_dir: Option<&'a Path>,
}

/// Ask one program and, for llama-bench, run the placement model.
pub fn prove(program: &Path, job: &BenchJob) -> LlamaStack {
    let start = Instant::now();
    let kind = kind_of(program);
    let mut stack = LlamaStack {
        kind: kind.clone(),
        name: format!("{kind} ({})", program.display()),
        program: Some(program.display().to_string()),
        status: "ok".into(),
        ..LlamaStack::default()
    };
    match run(program, &["--version"], job, QUICK_DEADLINE) {
        Ok(out) => {
            stack.version = version_of(&format!("{}\n{}", out.stderr_text(), out.stdout_text()))
        }
        Err(why) => {
            stack.status = "failed".into();
            stack.error = Some(why);
            stack.duration_ms = ms(start.elapsed());
            return stack;
        }
    }
    if let Ok(out) = run(program, &["--list-devices"], job, QUICK_DEADLINE) {
        let text = format!("{}\n{}", out.stdout_text(), out.stderr_text());
        stack.listed_devices = listed_devices(&text);
        global_facts(&mut stack, &text);
    }
    if kind == "llama-bench" {
        bench(program, job, &mut stack);
    }
    stack.duration_ms = ms(start.elapsed());
    stack
}

/// "llama-bench" for /usr/bin/llama-bench and C:\bin\llama-bench.exe.
fn kind_of(program: &Path) -> String {
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".exe").unwrap_or(&name);
    NAMES
        .iter()
        .find(|n| stem == **n)
        .map_or_else(|| stem.to_string(), |n| n.to_string())
}

fn run(
    program: &Path,
    args: &[&str],
    job: &BenchJob,
    deadline: Duration,
) -> Result<CommandOutput, String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(job.cwd)
        .env_clear()
        .envs(crate::probe::child_environment(job.env))
        .env("GGML_NO_BACKTRACE", "1");
    process::run(&mut cmd, deadline, MAX_OUTPUT)
        .map_err(|e| format!("{} could not be started: {e}", program.display()))
}

/// `llama-bench -m MODEL -ngl 99,0 -p N -n M -r 1 -o json -v`.
fn bench(program: &Path, job: &BenchJob, stack: &mut LlamaStack) {
    let model = job.model.to_string_lossy();
    let (p, n) = (job.prompt_tokens.to_string(), job.gen_tokens.to_string());
    let args = [
        "-m", &model, "-ngl", "99,0", "-p", &p, "-n", &n, "-r", "1", "-o", "json", "-v",
    ];
    let out = match run(program, &args, job, job.deadline) {
        Ok(out) => {
            if let Some(dir) = job.record_dir {
                super::pyproof::record(dir, "llama-bench", &out);
            }
            out
        }
        Err(why) => {
            stack.status = "failed".into();
            stack.error = Some(why);
            return;
        }
    };
    interpret_bench(&out, job.model_layers, stack);
}

/// Fill a llama-bench stack from its run: status, placement (-ngl 99), baseline (-ngl 0).
pub fn interpret_bench(out: &CommandOutput, model_layers: Option<u32>, stack: &mut LlamaStack) {
    let stderr = out.stderr_text();
    let parsed = parse_log(&stderr);
    global_facts(stack, &stderr);
    stack.log_tail = parsed.last_lines.clone();
    let records = bench_records(&out.stdout_text());
    if let Some(first) = records.first() {
        if stack.version.is_none() {
            stack.version = record_version(first);
        }
    }
    let mut runs: Vec<LoadRun> = Vec::new();
    for (i, ngl) in [99, 0].into_iter().enumerate() {
        let Some(load) = parsed.loads.get(i) else {
            continue;
        };
        let mut run = load_run(load, ngl, model_layers);
        let mine: Vec<&Value> = records
            .iter()
            .filter(|r| r.get("n_gpu_layers").and_then(Value::as_i64) == Some(i64::from(ngl)))
            .collect();
        run.loaded = load.load_error.is_none() && !mine.is_empty();
        timings(&mine, &mut run);
        runs.push(run);
    }
    let mut runs = runs.into_iter();
    stack.placement = runs.next();
    stack.baseline = runs.next();
    if out.success() {
        stack.log_tail.clear();
        return;
    }
    stack.signal = out.signal;
    stack.signal_name = out.signal.map(|s| signal_name(s).to_string());
    let status = if out.timed_out {
        "timed_out"
    } else if out.signal.is_some() {
        "crashed"
    } else {
        "failed"
    };
    stack.status = status.to_string();
    let at = match parsed.loads.len() {
        0 => "before loading the model".to_string(),
        n => format!(
            "in its load number {n} (-ngl {})",
            if n == 1 { 99 } else { 0 }
        ),
    };
    stack.error = Some(format!(
        "llama-bench ended with {} {at}",
        out.describe_end()
    ));
}

/// llama-bench's JSON: an array of test records (`-o json`); older builds print one object per
/// line (`-o jsonl`), which is read too.
pub fn bench_records(stdout: &str) -> Vec<Value> {
    let start = stdout.find('[');
    if let Some(start) = start {
        if let Some(end) = stdout.rfind(']') {
            if let Ok(Value::Array(a)) = serde_json::from_str::<Value>(&stdout[start..=end]) {
                return a.into_iter().filter(Value::is_object).collect();
            }
        }
    }
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(Value::is_object)
        .collect()
}

fn record_version(r: &Value) -> Option<String> {
    let number = r.get("build_number").and_then(Value::as_i64)?;
    let commit = r.get("build_commit").and_then(Value::as_str).unwrap_or("");
    Some(format!("{number} ({commit})"))
}

/// Prompt and generation timings of one -ngl value's records.
fn timings(records: &[&Value], run: &mut LoadRun) {
    for r in records {
        let n_prompt = r.get("n_prompt").and_then(Value::as_u64).unwrap_or(0) as u32;
        let n_gen = r.get("n_gen").and_then(Value::as_u64).unwrap_or(0) as u32;
        let avg_ns = r.get("avg_ns").and_then(Value::as_f64);
        let Some(ms) = avg_ns.map(|ns| (ns / 1e3).round() / 1e3) else {
            continue;
        };
        if n_prompt > 0 && n_gen == 0 {
            run.prompt_tokens = n_prompt;
            run.prompt_ms = Some(ms);
        } else if n_gen > 0 && n_prompt == 0 {
            run.gen_tokens = n_gen;
            run.gen_ms = Some(ms);
        }
    }
}

/// `version: 4589 (b4589abc)` of `--version`.
pub fn version_of(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("version:"))
        .map(|v| log::quote(v.trim()))
        .filter(|v| !v.is_empty())
}

/// The devices of `--list-devices`: the lines after `Available devices:` that name one
/// (`  CUDA0: NVIDIA H100 80GB HBM3 (81079 MiB, 80552 MiB free)`).
pub fn listed_devices(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.trim_start().starts_with("Available devices") {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        let t = line.trim();
        let named = t
            .split_once(':')
            .is_some_and(|(n, _)| !n.is_empty() && !n.contains(' '));
        if line.starts_with(char::is_whitespace) && named && out.len() < 64 {
            out.push(log::quote(t));
        } else if !t.is_empty() {
            inside = false;
        }
    }
    out
}

/// CUDA initialisation and backend loading, from any of the program's logs.
fn global_facts(stack: &mut LlamaStack, text: &str) {
    let parsed = parse_log(text);
    if parsed.cuda_devices_found.is_some() {
        stack.cuda_devices_found = parsed.cuda_devices_found;
    }
    if parsed.cuda_init_error.is_some() {
        stack.cuda_init_error = parsed.cuda_init_error;
    }
    for e in parsed.backend_load_errors {
        if !stack.backend_load_errors.contains(&e) {
            stack.backend_load_errors.push(e);
        }
    }
    if stack.system_info.is_none() {
        set_system_info(stack, parsed.system_info);
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_device_lists() {
        assert_eq!(
            version_of("version: 4589 (b4589abc)\nbuilt with cc (Debian 12.2.0-14) 12.2.0 for x86_64-linux-gnu\n").as_deref(),
            Some("4589 (b4589abc)")
        );
        assert_eq!(version_of("usage: ..."), None);
        let listed = listed_devices(
            "ggml_cuda_init: found 1 CUDA devices:\nAvailable devices:\n  CUDA0: NVIDIA H100 80GB HBM3 (81079 MiB, 80552 MiB free)\n\nmain: exiting\n",
        );
        assert_eq!(
            listed,
            ["CUDA0: NVIDIA H100 80GB HBM3 (81079 MiB, 80552 MiB free)"]
        );
        assert!(listed_devices("Available devices:\n").is_empty());
    }

    #[test]
    fn bench_json_array_and_lines() {
        let arr = "[\n  {\"n_gpu_layers\": 99, \"n_prompt\": 16, \"n_gen\": 0, \"avg_ns\": 2000000},\n  {\"n_gpu_layers\": 99, \"n_prompt\": 0, \"n_gen\": 8, \"avg_ns\": 4000000}\n]\n";
        let records = bench_records(arr);
        assert_eq!(records.len(), 2);
        let refs: Vec<&Value> = records.iter().collect();
        let mut run = LoadRun::default();
        timings(&refs, &mut run);
        assert_eq!((run.prompt_tokens, run.prompt_ms), (16, Some(2.0)));
        assert_eq!((run.gen_tokens, run.gen_ms), (8, Some(4.0)));
        assert_eq!(bench_records("{\"a\": 1}\n{\"b\": 2}\nnoise\n").len(), 2);
        assert!(bench_records("").is_empty());
    }

    #[test]
    fn programs_are_found_on_path_once() {
        let dir = std::env::temp_dir().join(format!("llama-bins-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bench = dir.join("llama-bench");
        std::fs::write(&bench, "").unwrap();
        let path = std::env::join_paths([&dir, &dir]).unwrap();
        let found = find(path.to_str(), &[bench.display().to_string()]);
        assert_eq!(found, std::slice::from_ref(&bench));
        assert_eq!(kind_of(&bench), "llama-bench");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
