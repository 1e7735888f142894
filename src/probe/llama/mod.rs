//! llama.cpp: where a model's layers really land.
//!
//! The offload proof of the full profile. A tiny synthetic GGUF model ([`crate::gguf`]) is run
//! with every layer requested on the GPU through each llama.cpp stack on this machine: the
//! doctor's own reference engine ([`engine`], llama-cpp-sys-2 in a child process), every Python
//! environment's llama-cpp-python ([`pyproof`]), and llama.cpp binaries ([`binaries`]). The logs
//! say where each layer went ([`log`], one parser for every stack and every llama.cpp log
//! format since 2023; [`stack`] turns what it read into facts). Where layers did reach a GPU,
//! a speed workload that a working GPU must win (prompt processing of a long batch on a wide
//! model, written in milliseconds as a sparse file) compares the GPU with the CPU.
//!
//! Stacks whose timings are never judged (CPU-only builds by their files, llama.cpp programs,
//! the reference engine built for the CPU) run at once, alongside the other probes. Stacks that
//! may run the speed workload run one after the other, once the Python probe's interpreters
//! have finished importing torch ([`while_python_runs`]) and the others have ended, so that the
//! CPU side of the speed workload is timed on a quiet machine. Every stack runs in a child
//! process under a deadline: a crash or a hang of the user's llama.cpp is a result.

pub mod binaries;
pub mod config;
pub mod engine;
pub mod log;
pub mod pyproof;
pub mod reference;
pub mod stack;

use crate::facts::llama::{LlamaStack, OffloadFacts, ProofModel};
use crate::facts::python::PythonEnv;
use crate::gguf::{self, ModelParams};
use crate::probe::process;
use crate::probe::{python, ProbeContext, Probed, Profile};
use pyproof::{ModelFile, ProofOptions};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// Tokens of the placement model's prompt and of its generation (timed, never judged: on a
/// 2-layer model a GPU loses to launch overhead).
pub const PROMPT_TOKENS: u32 = 16;
pub const GEN_TOKENS: u32 = 8;
/// Tokens of the speed workload's one batch on the GPU, and on the CPU: a CPU's rate per token
/// does not grow with the batch (a GPU's does), so a quarter of the batch measures it in a
/// quarter of the time.
pub const SPEED_TOKENS: u32 = 512;
pub const SPEED_CPU_TOKENS: u32 = 128;
/// Deadline of each stack's child process.
pub const STACK_DEADLINE: Duration = Duration::from_secs(60);
/// The whole proof's budget; stacks not started by then are not run. The runner's deadline
/// for the probe leaves a margin above it.
pub const TOTAL_BUDGET: Duration = Duration::from_secs(100);
/// No stack is started with less time left than this.
const MIN_SLOT: Duration = Duration::from_secs(3);
/// The speed models offered, widest first: (n_embd, n_layer). A stack takes the first that
/// fits its GPU's free memory (0.81 GB, 0.21 GB).
pub const SPEED_SHAPES: &[(u32, u32)] = &[(4096, 2), (2048, 2)];

/// Python probes running now in this process (the runner marks its Python probe).
static PYTHON_RUNNING: Mutex<usize> = Mutex::new(0);
static PYTHON_DONE: Condvar = Condvar::new();
/// The longest the GPU lane waits for the Python probe: its own deadline is 60 s.
const PYTHON_WAIT: Duration = Duration::from_secs(65);

/// Run `probe` (the Python probe) marked as running, so that the offload proof's timed
/// workloads wait for it to end ([`wait_for_python`]).
pub fn while_python_runs<T>(probe: impl FnOnce() -> T) -> T {
    struct Running;
    impl Drop for Running {
        fn drop(&mut self) {
            let mut n = PYTHON_RUNNING
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *n = n.saturating_sub(1);
            PYTHON_DONE.notify_all();
        }
    }
    *PYTHON_RUNNING
        .lock()
        .unwrap_or_else(PoisonError::into_inner) += 1;
    let _running = Running;
    probe()
}

/// Wait, at most `limit`, until no Python probe runs. Returns at once when none does (a probe
/// run on its own, as in tests). The runner starts the Python probe and this one together; by
/// the time the proof gets here (models written, environments read, the reference engine run)
/// the Python probe has long been marked.
fn wait_for_python(limit: Duration) {
    let until = Instant::now() + limit;
    let mut n = PYTHON_RUNNING
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    while *n > 0 {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        n = PYTHON_DONE
            .wait_timeout(n, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

/// Run the proof through every llama.cpp stack found (full profile only).
pub fn probe(ctx: &ProbeContext) -> Probed<OffloadFacts> {
    let start = Instant::now();
    let mut facts = OffloadFacts::default();
    let project = project_dir(ctx);
    facts.config = config::read(ctx, &project);
    let Some(dir) = model_dir(ctx) else {
        return Probed::failed(
            facts,
            "no folder to write the test model in (HOME is not set)",
        );
    };
    let placement = match write_model(&ModelParams::placement(), &dir, false) {
        Ok(m) => m,
        Err(e) => {
            let why = format!("the test model could not be written: {e}");
            facts.errors.push(why.clone());
            return Probed::failed(facts, why);
        }
    };
    let envs = llama_envs(ctx);
    let programs = binaries::find(ctx.var("PATH"), &facts.config.binaries);
    let user_model = user_model(&mut facts);
    if user_model.is_none() && may_use_gpu(&envs) {
        for &(n_embd, n_layer) in SPEED_SHAPES {
            match write_model(&ModelParams::speed(n_embd, n_layer), &dir, true) {
                Ok(m) => facts.speed_models.push(m),
                Err(e) => facts
                    .errors
                    .push(format!("a speed model could not be written: {e}")),
            }
        }
    }
    facts.placement_model = Some(placement);
    let plan = Plan {
        ctx,
        facts: &facts,
        dir: &dir,
        user_model,
        start,
        budget: process::scaled(TOTAL_BUDGET),
    };
    facts.stacks = plan.run(&envs, &programs);
    if facts.stacks.iter().all(|s| s.status == "not_run") && envs.is_empty() && programs.is_empty()
    {
        return Probed::absent(
            facts,
            "no llama.cpp to prove: no environment has llama-cpp-python, no llama.cpp program is on PATH, and the reference engine is not built in",
        );
    }
    Probed::ok(facts)
}

/// The project folder, as the Python probe finds it.
fn project_dir(ctx: &ProbeContext) -> PathBuf {
    ctx.nonempty_var(python::PROJECT_DIR_VAR)
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where test models are cached: `models/` in gpu-doctor's cache folder (the live answers'
/// folder: `GPU_DOCTOR_CACHE_DIR`, `$XDG_CACHE_HOME/gpu-doctor`, `~/.cache/gpu-doctor`), else
/// under the temporary folder.
fn model_dir(ctx: &ProbeContext) -> Option<PathBuf> {
    python::cache::cache_root(ctx)
        .map(|root| root.join("models"))
        .or_else(|| Some(std::env::temp_dir().join("gpu-doctor-models")))
}

/// Write (or find cached) a model and describe it.
fn write_model(params: &ModelParams, dir: &Path, zeros: bool) -> Result<ProofModel, String> {
    let t0 = Instant::now();
    let (path, written) = if zeros {
        gguf::write_zeros_cached(params, dir).map_err(|e| e.to_string())?
    } else {
        let cached = dir.join(params.file_name()).is_file();
        let path = gguf::write_cached(params, dir).map_err(|e| e.to_string())?;
        (path, !cached)
    };
    Ok(ProofModel {
        path: path.display().to_string(),
        n_layer: params.n_layer,
        layers: params.n_layer + 1,
        n_embd: params.n_embd,
        tensor_bytes: params.tensor_bytes(),
        weights: if zeros { "zeros" } else { "random" }.to_string(),
        write_ms: if written {
            (t0.elapsed().as_secs_f64() * 10_000.0).round() / 10.0
        } else {
            0.0
        },
        cached: !written,
    })
}

/// The environments with llama-cpp-python and an interpreter, from the Python probe's static
/// tier (files only: milliseconds).
fn llama_envs(ctx: &ProbeContext) -> Vec<PythonEnv> {
    let quick = ProbeContext {
        profile: Profile::Quick,
        ..ctx.clone()
    };
    python::probe(&quick)
        .data
        .environments
        .into_iter()
        .filter(|e| e.llama_cpp.installed && e.python_exists)
        .collect()
}

/// Whether any stack may offload: a GPU backend among an environment's files, or a CUDA
/// reference engine. Only then are speed models written.
fn may_use_gpu(envs: &[PythonEnv]) -> bool {
    engine::build_name() != "cpu" || envs.iter().any(gpu_capable)
}

fn gpu_capable(env: &PythonEnv) -> bool {
    env.llama_cpp.cuda_backend || !env.llama_cpp.gpu_backends.is_empty()
}

/// The configured model, when it exists.
fn user_model(facts: &mut OffloadFacts) -> Option<PathBuf> {
    let model = facts.config.model.clone()?;
    let path = PathBuf::from(&model);
    if path.is_file() {
        Some(path)
    } else {
        facts
            .config
            .errors
            .push(format!("the configured model {model} does not exist"));
        None
    }
}

/// One proof: what to run, and the time it may take.
struct Plan<'a> {
    ctx: &'a ProbeContext,
    facts: &'a OffloadFacts,
    dir: &'a Path,
    user_model: Option<PathBuf>,
    start: Instant,
    budget: Duration,
}

/// A stack waiting to run.
enum Job<'a> {
    Reference,
    Env(&'a PythonEnv),
    Program(&'a Path),
}

impl Plan<'_> {
    /// Run every stack; results in report order (reference, environments, programs).
    ///
    /// Stacks whose timings are never judged (CPU-only builds by their files, llama.cpp
    /// programs, a reference engine built for the CPU) start at once, each on its own thread,
    /// alongside the Python probe. Stacks that may run the speed workload then run one after
    /// the other, once the Python probe and all of those have ended, so that nothing else
    /// loads the CPU while the CPU's side is timed.
    fn run(&self, envs: &[PythonEnv], programs: &[PathBuf]) -> Vec<LlamaStack> {
        let mut timed: Vec<(usize, Job)> = Vec::new();
        let mut quiet: Vec<(usize, Job)> = Vec::new();
        let reference = (0, Job::Reference);
        if engine::build_name() == "cpu" {
            quiet.push(reference);
        } else {
            timed.push(reference);
        }
        for (i, env) in envs.iter().enumerate() {
            let job = (1 + i, Job::Env(env));
            if gpu_capable(env) {
                timed.push(job);
            } else {
                quiet.push(job);
            }
        }
        for (i, p) in programs.iter().enumerate() {
            quiet.push((1 + envs.len() + i, Job::Program(p)));
        }
        let mut done: Vec<(usize, LlamaStack)> = thread::scope(|scope| {
            let started: Vec<_> = quiet
                .iter()
                .map(|(i, job)| scope.spawn(move || (*i, self.run_one(job))))
                .collect();
            let mut all: Vec<(usize, LlamaStack)> = Vec::new();
            if !timed.is_empty() {
                let left = self.budget.saturating_sub(self.start.elapsed());
                wait_for_python(left.saturating_sub(MIN_SLOT * 10).min(PYTHON_WAIT));
            }
            all.extend(started.into_iter().filter_map(|h| h.join().ok()));
            for (i, job) in &timed {
                all.push((*i, self.run_one(job)));
            }
            all
        });
        done.sort_by_key(|(i, _)| *i);
        done.into_iter().map(|(_, s)| s).collect()
    }

    fn run_one(&self, job: &Job) -> LlamaStack {
        let left = self.budget.saturating_sub(self.start.elapsed());
        if left < MIN_SLOT {
            return not_run(job, "the offload proof's time ran out before its turn");
        }
        let deadline = left.min(process::scaled(STACK_DEADLINE));
        match job {
            Job::Reference => reference::prove(self.ctx, &self.reference_job(deadline)),
            Job::Env(env) => pyproof::prove_env(env, &self.proof_options(deadline), self.dir),
            Job::Program(p) => binaries::prove(p, &self.bench_job(deadline)),
        }
    }

    fn placement(&self) -> ModelFile {
        let m = self.facts.placement_model.clone().unwrap_or_default();
        ModelFile {
            path: PathBuf::from(&m.path),
            bytes: m.tensor_bytes,
            layers: Some(m.layers),
        }
    }

    fn reference_job(&self, deadline: Duration) -> reference::ReferenceJob<'_> {
        let placement = self.facts.placement_model.as_ref();
        // The engine cannot report free memory before it runs: it gets the narrower model.
        let speed = self.facts.speed_models.last().map(|m| {
            (
                Path::new(m.path.as_str()),
                m.layers,
                format!(
                    "prompt processing of {SPEED_TOKENS} tokens in one batch on a synthetic llama model of {:.2} GB, every layer on the GPU against none",
                    m.tensor_bytes as f64 / 1e9
                ),
            )
        });
        reference::ReferenceJob {
            placement: Path::new(placement.map_or("", |m| m.path.as_str())),
            placement_layers: placement.map_or(0, |m| m.layers),
            speed,
            prompt_tokens: PROMPT_TOKENS,
            gen_tokens: GEN_TOKENS,
            speed_tokens: SPEED_TOKENS,
            deadline,
        }
    }

    fn proof_options(&self, deadline: Duration) -> ProofOptions {
        ProofOptions {
            env: self.ctx.env.clone(),
            deadline,
            placement: self.placement(),
            speed: self
                .facts
                .speed_models
                .iter()
                .map(|m| ModelFile {
                    path: PathBuf::from(&m.path),
                    bytes: m.tensor_bytes,
                    layers: Some(m.layers),
                })
                .collect(),
            user_model: self.user_model.clone(),
            prompt_tokens: PROMPT_TOKENS,
            gen_tokens: GEN_TOKENS,
            speed_tokens: SPEED_TOKENS,
            cpu_tokens: SPEED_CPU_TOKENS,
            record_dir: self.record_dir(),
        }
    }

    fn record_dir(&self) -> Option<PathBuf> {
        self.ctx
            .nonempty_var(pyproof::RECORD_VAR)
            .map(PathBuf::from)
    }

    fn bench_job(&self, deadline: Duration) -> binaries::BenchJob<'_> {
        let placement = self.facts.placement_model.as_ref();
        binaries::BenchJob {
            model: Path::new(placement.map_or("", |m| m.path.as_str())),
            model_layers: placement.map(|m| m.layers),
            prompt_tokens: PROMPT_TOKENS,
            gen_tokens: GEN_TOKENS,
            deadline,
            env: &self.ctx.env,
            cwd: self.dir,
            record_dir: self.ctx.nonempty_var(pyproof::RECORD_VAR).map(Path::new),
        }
    }
}

fn not_run(job: &Job, why: &str) -> LlamaStack {
    let (kind, name) = match job {
        Job::Reference => ("reference".to_string(), "reference engine".to_string()),
        Job::Env(e) => (
            "llama-cpp-python".to_string(),
            format!("llama-cpp-python in {}", e.name),
        ),
        Job::Program(p) => ("llama.cpp program".to_string(), p.display().to_string()),
    };
    LlamaStack {
        kind,
        name,
        status: "not_run".into(),
        error: Some(why.to_string()),
        ..LlamaStack::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_models_go_into_the_cache_folder_the_live_answers_use() {
        let ctx = |vars: &[(&str, &str)]| ProbeContext {
            profile: Profile::Full,
            env: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            fs_root: PathBuf::from("/nonexistent-root"),
        };
        let dir = |vars: &[(&str, &str)]| model_dir(&ctx(vars)).unwrap();
        let both = [("GPU_DOCTOR_CACHE_DIR", "/c"), ("XDG_CACHE_HOME", "/x")];
        assert_eq!(dir(&both), Path::new("/c/models"));
        assert_eq!(
            dir(&[("XDG_CACHE_HOME", "/x")]),
            Path::new("/x/gpu-doctor/models")
        );
        assert_eq!(
            dir(&[("HOME", "/h")]),
            Path::new("/h/.cache/gpu-doctor/models")
        );
        assert_eq!(dir(&[]), std::env::temp_dir().join("gpu-doctor-models"));
    }

    #[test]
    fn the_gpu_lane_waits_for_the_python_probe_and_only_as_long_as_it_runs() {
        let t0 = Instant::now();
        wait_for_python(Duration::from_secs(5));
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "nothing runs: no wait"
        );
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let python = thread::spawn(move || {
            while_python_runs(|| {
                started_tx.send(()).unwrap();
                thread::sleep(Duration::from_millis(300));
            })
        });
        started_rx.recv().unwrap();
        let t0 = Instant::now();
        wait_for_python(Duration::from_secs(5));
        let waited = t0.elapsed();
        assert!(waited >= Duration::from_millis(200), "{waited:?}");
        assert!(waited < Duration::from_secs(3), "{waited:?}");
        python.join().unwrap();
        let running = thread::spawn(|| while_python_runs(|| thread::sleep(Duration::from_secs(3))));
        thread::sleep(Duration::from_millis(100));
        let t0 = Instant::now();
        wait_for_python(Duration::from_millis(200));
        assert!(t0.elapsed() < Duration::from_secs(2), "the wait is bounded");
        running.join().unwrap();
    }
}
