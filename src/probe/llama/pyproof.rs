//! The offload proof through an environment's own llama-cpp-python.
//!
//! The environment's interpreter runs the proof script (`proof_script.py`, appended to the live
//! probe's helpers so that the two share their Python code) under a deadline, in the models'
//! cache folder, with the same isolation as the live probe (`-I -B`, or `-E -s -B` for an
//! interpreter that may predate `-I`, plus `-u`). The script loads the placement model with
//! `n_gpu_layers=-1`, then with 0, and where llama.cpp offers a GPU device, runs the speed
//! workload; llama.cpp's verbose log goes to stderr, between marker lines that say which load
//! each part belongs to. Everything here after the run is pure ([`interpret`]), so recorded
//! outputs replay in tests.
//!
//! A crash (a CPU build that segfaults while loading, as on the H100 machine) is a result, not
//! an error: the stack is `crashed` with the signal, the step, and the last lines of the log.

use super::log::{self, parse_load, tail};
use super::stack::{load_run, set_system_info, speed_result};
use crate::facts::llama::{LlamaStack, LoadRun};
use crate::facts::python::PythonEnv;
use crate::probe::process::{self, signal_name, CommandOutput};
use crate::probe::python::live;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The proof's own part of the script.
const PROOF: &str = include_str!("proof_script.py");
/// The live probe script's entry point, which the proof replaces with its own.
const LIVE_MAIN: &str = "\nif __name__ == \"__main__\":";
/// The marker lines the script writes to stderr around each load.
pub const MARK: &str = "gpu_doctor_offload:";
/// Cap on each output stream: verbose llama.cpp logs of four loads are a few hundred KiB.
pub const MAX_OUTPUT: usize = 8 << 20;

/// The script the interpreter runs: the live probe's helpers, then the proof.
pub fn script() -> String {
    let helpers = match live::SCRIPT.find(LIVE_MAIN) {
        Some(at) => &live::SCRIPT[..at],
        None => live::SCRIPT,
    };
    format!("{helpers}\n{PROOF}")
}

/// A model the proof loads.
#[derive(Debug, Clone)]
pub struct ModelFile {
    pub path: PathBuf,
    pub bytes: u64,
    /// n_layer + 1, when the doctor wrote it.
    pub layers: Option<u32>,
}

/// What to run and how.
#[derive(Debug, Clone)]
pub struct ProofOptions {
    /// The children's environment variables (the doctor's own).
    pub env: BTreeMap<String, String>,
    pub deadline: Duration,
    pub placement: ModelFile,
    /// Speed models, largest first.
    pub speed: Vec<ModelFile>,
    /// The user's own model, used for the speed workload instead.
    pub user_model: Option<PathBuf>,
    pub prompt_tokens: u32,
    pub gen_tokens: u32,
    pub speed_tokens: u32,
    /// Tokens of the CPU's batch in the speed workload.
    pub cpu_tokens: u32,
    /// Where to keep each run's raw output ([`RECORD_VAR`]); None: nowhere.
    pub record_dir: Option<PathBuf>,
}

/// Run the proof with one environment's interpreter, in `cwd`.
pub fn prove_env(env: &PythonEnv, opts: &ProofOptions, cwd: &Path) -> LlamaStack {
    let mut flags = live::interpreter_flags(env.python_version.as_deref());
    flags.push("-u");
    let mut cmd = Command::new(&env.python);
    cmd.args(&flags)
        .arg("-c")
        .arg(script())
        .args(script_args(opts))
        .current_dir(cwd)
        .env_clear()
        .envs(crate::probe::child_environment(&opts.env))
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let mut stack = match process::run(&mut cmd, opts.deadline, MAX_OUTPUT) {
        Ok(out) => {
            if let Some(dir) = &opts.record_dir {
                record(dir, &format!("llama-cpp-python-{}", env.name), &out);
            }
            interpret(&out, opts)
        }
        Err(e) => LlamaStack {
            status: "failed".into(),
            error: Some(format!("{} could not be started: {e}", env.python)),
            ..LlamaStack::default()
        },
    };
    stack.kind = "llama-cpp-python".into();
    stack.name = format!("llama-cpp-python in {}", env.name);
    stack.environment = Some(env.name.clone());
    stack.program = Some(env.python.clone());
    if stack.version.is_none() {
        stack.version = env.llama_cpp.version.clone();
    }
    if stack.cuda_backend_library.is_none() {
        stack.cuda_backend_library = env.llama_cpp.cuda_library.clone();
    }
    stack
}

/// The variable naming a folder where the proof keeps each stack's raw output
/// (`NAME.stdout`, `NAME.stderr`, `NAME.end.json`): for bug reports and for recording
/// fixtures. Unset: nothing is kept.
pub const RECORD_VAR: &str = "GPU_DOCTOR_OFFLOAD_RECORD";

/// Keep a run's raw output in `dir`; failures to write are ignored (recording is a courtesy).
pub fn record(dir: &Path, name: &str, out: &CommandOutput) {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let end = serde_json::json!({
        "code": out.code,
        "signal": out.signal,
        "timed_out": out.timed_out,
        "truncated": out.truncated,
        "duration_ms": out.duration.as_secs_f64() * 1000.0,
    });
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(dir.join(format!("{name}.stdout")), &out.stdout);
    let _ = std::fs::write(dir.join(format!("{name}.stderr")), &out.stderr);
    let _ = std::fs::write(dir.join(format!("{name}.end.json")), end.to_string());
}

/// A recorded run read back ([`record`]'s files), for replay tests.
pub fn replay(dir: &Path, name: &str) -> std::io::Result<CommandOutput> {
    let stdout = std::fs::read(dir.join(format!("{name}.stdout")))?;
    let stderr = std::fs::read(dir.join(format!("{name}.stderr")))?;
    let end: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.end.json")))?)
            .map_err(std::io::Error::other)?;
    let int = |k: &str| {
        end.get(k)
            .and_then(serde_json::Value::as_i64)
            .map(|v| v as i32)
    };
    Ok(CommandOutput {
        code: int("code"),
        signal: int("signal"),
        stdout,
        stderr,
        timed_out: end
            .get("timed_out")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
        truncated: end
            .get("truncated")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
        duration: Duration::from_secs_f64(
            end.get("duration_ms")
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.0)
                / 1000.0,
        ),
    })
}

fn script_args(opts: &ProofOptions) -> Vec<String> {
    let mut args = vec![
        "--deadline".to_string(),
        format!("{:.1}", opts.deadline.as_secs_f64()),
        "--model".to_string(),
        opts.placement.path.to_string_lossy().into_owned(),
        "--prompt".to_string(),
        opts.prompt_tokens.to_string(),
        "--gen".to_string(),
        opts.gen_tokens.to_string(),
        "--speed-tokens".to_string(),
        opts.speed_tokens.to_string(),
        "--cpu-tokens".to_string(),
        opts.cpu_tokens.to_string(),
    ];
    for m in &opts.speed {
        args.push("--speed".into());
        args.push(format!("{}:{}", m.path.to_string_lossy(), m.bytes));
    }
    if let Some(user) = &opts.user_model {
        args.push("--user-model".into());
        args.push(user.to_string_lossy().into_owned());
    }
    args
}

// ---------------------------------------------------------------------------------------------
// the answer

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Answer {
    stage: Option<String>,
    done: bool,
    script_error: Option<String>,
    offload: ProofAnswer,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ProofAnswer {
    import_ok: bool,
    import_error: Option<String>,
    version: Option<String>,
    supports_gpu_offload: Option<bool>,
    system_info: Option<String>,
    devices: Vec<String>,
    gpu_device_count: Option<u32>,
    errors: Vec<String>,
    cuda_backend_library: Option<String>,
    cuda_backend_load_error: Option<String>,
    runs: Vec<RunAnswer>,
    speed_model: Option<String>,
    speed_skipped: Option<String>,
    cpu_pure: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RunAnswer {
    label: String,
    n_gpu_layers: i32,
    loaded: bool,
    error: Option<String>,
    load_ms: Option<f64>,
    prompt_tokens: u32,
    prompt_ms: Option<f64>,
    gen_tokens: u32,
    gen_ms: Option<f64>,
}

/// Turn what the interpreter did into the stack's facts (kind and name are set by the caller).
pub fn interpret(out: &CommandOutput, opts: &ProofOptions) -> LlamaStack {
    let answer: Answer = live::last_answer(&out.stdout)
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let stderr = out.stderr_text();
    let (global, segments) = split_marked(&stderr);
    let parsed = log::parse_log(&global);
    let p = &answer.offload;
    let mut stack = LlamaStack {
        version: p.version.clone(),
        supports_gpu_offload: p.supports_gpu_offload,
        devices: p.devices.clone(),
        gpu_devices: p.gpu_device_count,
        cuda_devices_found: parsed.cuda_devices_found,
        cuda_init_error: parsed.cuda_init_error.clone(),
        backend_load_errors: parsed.backend_load_errors.clone(),
        cuda_backend_library: p.cuda_backend_library.clone(),
        cuda_backend_load_error: p.cuda_backend_load_error.clone(),
        stage: answer.stage.clone(),
        duration_ms: (out.duration.as_secs_f64() * 1000.0 * 10.0).round() / 10.0,
        log_tail: tail_without_marks(&stderr),
        ..LlamaStack::default()
    };
    set_system_info(
        &mut stack,
        p.system_info.clone().or(parsed.system_info.clone()),
    );
    let (status, why) = classify(out, &answer);
    stack.status = status.to_string();
    stack.signal = out.signal;
    stack.signal_name = out.signal.map(|s| signal_name(s).to_string());
    stack.error = why;
    runs(&mut stack, &answer, &segments, opts);
    if stack.status == "ok" {
        stack.log_tail.clear();
    }
    stack
}

/// Status and, when something went wrong, what, in words.
fn classify(out: &CommandOutput, answer: &Answer) -> (&'static str, Option<String>) {
    let at = answer
        .stage
        .as_deref()
        .map(stage_words)
        .unwrap_or_else(|| "before it answered".to_string());
    let end = describe_end(out);
    let clean = out.code == Some(0) && !out.timed_out;
    if answer.done {
        if !answer.offload.import_ok {
            let why = answer
                .offload
                .import_error
                .as_deref()
                .unwrap_or("llama_cpp could not be imported");
            return ("failed", Some(format!("import llama_cpp failed: {why}")));
        }
        let mut notes: Vec<String> = answer
            .script_error
            .iter()
            .map(|e| format!("the proof script met an error: {e}"))
            .collect();
        if !clean {
            notes.push(format!("it finished, then ended with {end}"));
        }
        return ("ok", (!notes.is_empty()).then(|| notes.join("; ")));
    }
    if out.timed_out {
        return ("timed_out", Some(format!("{end} {at}")));
    }
    if out.signal.is_some() || out.code.is_some_and(|c| (c as u32) >= 0xC000_0000) {
        return ("crashed", Some(format!("{end} {at}")));
    }
    ("failed", Some(format!("{end} {at}")))
}

fn describe_end(out: &CommandOutput) -> String {
    match (out.code, out.signal) {
        (Some(code), _) if (code as u32) >= 0xC000_0000 && !out.timed_out => {
            format!("exception code 0x{:08X}", code as u32)
        }
        (None, Some(sig)) if !out.timed_out => format!("signal {sig} ({})", signal_name(sig)),
        _ => out.describe_end(),
    }
}

/// The script's steps, in words.
pub fn stage_words(stage: &str) -> String {
    let (label, step) = stage.rsplit_once('.').unwrap_or((stage, ""));
    let what = match label {
        "start" => return "while starting".into(),
        "import" => return "while importing llama_cpp (loading its shared libraries)".into(),
        "system_info" => return "while asking llama_cpp for its system info".into(),
        "devices" => return "while listing llama.cpp's devices".into(),
        "cuda_backend" => return "while loading the CUDA backend library on its own".into(),
        "done" => return "after finishing".into(),
        "placement" => "the test model with every layer on the GPU (n_gpu_layers=-1)",
        "baseline" => "the test model on the CPU (n_gpu_layers=0)",
        "speed.gpu" => "the speed model on the GPU",
        "speed.cpu" => "the speed model on the CPU",
        _ => return format!("at step {stage}"),
    };
    match step {
        "load" => format!("while loading {what}"),
        "decode" => format!("while running {what}"),
        _ => format!("at {what}"),
    }
}

/// Fill placement, baseline and speed from the runs the script recorded and their logs.
fn runs(
    stack: &mut LlamaStack,
    answer: &Answer,
    segments: &[(String, String)],
    opts: &ProofOptions,
) {
    let crashed_at = (stack.status != "ok")
        .then(|| stack.error.clone())
        .flatten();
    let mut by_label: BTreeMap<&str, LoadRun> = BTreeMap::new();
    for r in &answer.offload.runs {
        let text = segments
            .iter()
            .find(|(label, _)| label == &r.label)
            .map_or("", |(_, t)| t.as_str());
        let layers = if r.label.starts_with("speed") {
            speed_layers(answer, opts)
        } else {
            opts.placement.layers
        };
        let mut run = load_run(&parse_load(text), r.n_gpu_layers, layers);
        run.loaded = r.loaded;
        run.error = r.error.clone().or(run.error);
        run.load_ms = r.load_ms.or(run.load_ms);
        if r.prompt_ms.is_some() {
            run.prompt_ms = r.prompt_ms;
            run.prompt_tokens = r.prompt_tokens;
        }
        if r.gen_ms.is_some() {
            run.gen_ms = r.gen_ms;
            run.gen_tokens = r.gen_tokens;
        }
        if run.error.is_none() && (!r.loaded || r.prompt_ms.is_none()) {
            run.error = crashed_at.clone();
        }
        by_label.insert(r.label.as_str(), run);
    }
    stack.placement = by_label.remove("placement");
    stack.baseline = by_label.remove("baseline");
    let (gpu, cpu) = (by_label.remove("speed.gpu"), by_label.remove("speed.cpu"));
    if let Some(model) = &answer.offload.speed_model {
        let user = opts.user_model.is_some();
        let words = workload_words(model, user, opts);
        stack.speed = Some(speed_result(
            words,
            model.clone(),
            user,
            gpu.as_ref(),
            cpu.as_ref(),
            answer.offload.cpu_pure.unwrap_or(false),
        ));
    } else if let Some(why) = &answer.offload.speed_skipped {
        // Worth saying only where layers did reach a GPU: elsewhere there is nothing to time.
        if stack
            .placement
            .as_ref()
            .is_some_and(|p| p.layers_on_gpu > 0)
        {
            stack.speed = Some(crate::facts::llama::SpeedResult {
                not_judged: Some(format!("not run: {why}")),
                ..Default::default()
            });
        }
    }
    for e in &answer.offload.errors {
        stack.log_tail.insert(0, format!("(script) {e}"));
    }
}

fn speed_layers(answer: &Answer, opts: &ProofOptions) -> Option<u32> {
    let model = answer.offload.speed_model.as_deref()?;
    opts.speed
        .iter()
        .find(|m| m.path.to_string_lossy() == model)
        .and_then(|m| m.layers)
}

fn workload_words(model: &str, user: bool, opts: &ProofOptions) -> String {
    let what = if user {
        format!("your model {model}")
    } else {
        match opts
            .speed
            .iter()
            .find(|m| m.path.to_string_lossy() == model)
        {
            Some(m) => format!(
                "a synthetic llama model of {:.2} GB ({})",
                m.bytes as f64 / 1e9,
                m.path
                    .file_name()
                    .map_or(String::new(), |n| n.to_string_lossy().into_owned())
            ),
            None => format!("the model {model}"),
        }
    };
    format!(
        "prompt processing on {what}: one batch of {} tokens with every layer on the GPU, against {} tokens with none (the CPU's rate per token does not grow with the batch)",
        opts.speed_tokens, opts.cpu_tokens
    )
}

/// Split stderr at the marker lines: the text outside any load, and each load's text by label.
/// A load whose end marker never came (a crash) runs to the end of the log.
pub fn split_marked(stderr: &str) -> (String, Vec<(String, String)>) {
    let mut global = String::new();
    let mut segments: Vec<(String, String)> = Vec::new();
    let mut open: Option<usize> = None;
    for line in stderr.lines() {
        if let Some(rest) = line.trim().strip_prefix(MARK) {
            let mut words = rest.split_whitespace();
            match (words.next(), words.next()) {
                (Some("begin"), Some(label)) => {
                    segments.push((label.to_string(), String::new()));
                    open = Some(segments.len() - 1);
                }
                (Some("end"), _) => open = None,
                _ => {}
            }
            continue;
        }
        let target = match open {
            Some(i) => &mut segments[i].1,
            None => &mut global,
        };
        target.push_str(line);
        target.push('\n');
    }
    // The global part also keeps what loads printed about CUDA and backends.
    for (_, text) in &segments {
        for line in text.lines().filter(|l| {
            l.contains("ggml_cuda_init")
                || l.contains("load_backend")
                || l.contains("ggml_init_cublas")
        }) {
            global.push_str(line);
            global.push('\n');
        }
    }
    (global, segments)
}

/// The log's last lines, without the marker lines and without the Python traceback that
/// faulthandler prints after a fatal signal: the last line is then llama.cpp's last word.
fn tail_without_marks(stderr: &str) -> Vec<String> {
    let kept: String = stderr
        .lines()
        .take_while(|l| !l.starts_with("Fatal Python error:"))
        .filter(|l| !l.trim().starts_with(MARK))
        .flat_map(|l| [l, "\n"])
        .collect();
    tail(&kept, log::TAIL_LINES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_is_the_live_helpers_then_the_proof() {
        let s = script();
        assert!(
            live::SCRIPT.contains(LIVE_MAIN),
            "the live script's entry point moved"
        );
        assert!(!s.contains(LIVE_MAIN));
        assert!(s.contains("def llama_devices(") && s.contains("class Output"));
        assert!(s.trim_end().ends_with("proof_main(sys.argv[1:])"));
    }

    #[test]
    fn markers_split_the_log_and_an_unfinished_load_runs_to_the_end() {
        let (global, segs) = split_marked(
            "ggml_cuda_init: found 1 CUDA devices:\n\
             \ngpu_doctor_offload: begin placement n_gpu_layers=-1\n\
             load_tensors: layer   0 assigned to device CUDA0, is_swa = 0\n\
             gpu_doctor_offload: end placement\n\
             between\n\
             gpu_doctor_offload: begin baseline n_gpu_layers=0\n\
             print_info: n_layer_all = 2\n",
        );
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].0, "placement");
        assert!(segs[0].1.contains("CUDA0"));
        assert_eq!(segs[1].1, "print_info: n_layer_all = 2\n");
        assert!(global.contains("ggml_cuda_init") && global.contains("between"));
        assert!(!global.contains(MARK));
    }

    #[test]
    fn stage_words_name_the_load() {
        assert_eq!(
            stage_words("placement.load"),
            "while loading the test model with every layer on the GPU (n_gpu_layers=-1)"
        );
        assert_eq!(
            stage_words("speed.gpu.decode"),
            "while running the speed model on the GPU"
        );
        assert_eq!(
            stage_words("import"),
            "while importing llama_cpp (loading its shared libraries)"
        );
        assert_eq!(stage_words("weird"), "at step weird");
    }
}
