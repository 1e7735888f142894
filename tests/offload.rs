//! The llama.cpp offload proof (full profile) against real llama.cpps on this machine, and
//! replays of real runs recorded on the H100 machine.
//!
//! Here, without a GPU: the reference engine (llama.cpp built into gpu-doctor) and a real
//! CPU-only llama-cpp-python 0.3.36 (built once from its PyPI sdist by
//! `tests/support/llama-cpp-python.sh` and cached; GPU_DOCTOR_SKIP_SLOW=1 skips those tests)
//! both put 0 of 3 layers on a GPU, and the proof reads it from their own logs. A llama.cpp
//! that segfaults while loading is a small stand-in package imported by a real interpreter; a
//! CUDA backend that does not load is a real shared library whose DT_NEEDED names a missing
//! libcudart.so.12, compiled here.
//!
//! Recorded: fixtures/llama/ (README.md there says where each file comes from) holds the
//! research logs and the raw outputs of the proof on the H100; each is replayed through the
//! same code that read it there.
#![cfg(unix)]

use gpu_doctor::facts::llama::{LlamaStack, OffloadFacts};
use gpu_doctor::facts::Facts;
use gpu_doctor::probe::llama::log::parse_log;
use gpu_doctor::probe::llama::pyproof::{self, ModelFile, ProofOptions};
use gpu_doctor::probe::{ProbeContext, Profile};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
mod common;
use common::{real_venv, run, sandbox, write, Sandbox};

const EXE: &str = env!("CARGO_BIN_EXE_gpu-doctor");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn skip_slow() -> bool {
    if std::env::var_os("GPU_DOCTOR_SKIP_SLOW").is_some() {
        eprintln!("skipped: GPU_DOCTOR_SKIP_SLOW is set");
        return true;
    }
    false
}

/// The variables a proof runs with: the sandbox's project and home, this build as the
/// reference engine, a PATH without llama.cpp programs.
fn vars(sb: &Sandbox) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "GPU_DOCTOR_PROJECT_DIR".to_string(),
            sb.project.display().to_string(),
        ),
        ("HOME".to_string(), sb.home.display().to_string()),
        ("GPU_DOCTOR_EXE".to_string(), EXE.to_string()),
        ("PATH".to_string(), "/usr/bin:/bin".to_string()),
    ])
}

fn prove(sb: &Sandbox) -> OffloadFacts {
    let ctx = ProbeContext {
        profile: Profile::Full,
        env: vars(sb),
        fs_root: PathBuf::from("/"),
    };
    gpu_doctor::probe::llama::probe(&ctx).data
}

fn stack<'a>(facts: &'a OffloadFacts, name: &str) -> &'a LlamaStack {
    facts
        .stacks
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no stack {name:?} in {:#?}", facts.stacks))
}

/// A real venv with the cached CPU-only llama-cpp-python 0.3.36.
fn llama_venv(dir: &Path) {
    let script = root().join("tests/support/llama-cpp-python.sh");
    run(
        Command::new("bash").arg(&script).arg("venv").arg(dir),
        Duration::from_secs(45 * 60),
        "tests/support/llama-cpp-python.sh (needs python3-venv, a C++ compiler, PyPI on a cold cache)",
    );
}

fn site_packages(venv: &Path) -> PathBuf {
    std::fs::read_dir(venv.join("lib"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path().join("site-packages"))
        .expect("a venv has lib/python3.X/site-packages")
}

// ---------------------------------------------------------------------------------------------
// live, on this machine

#[test]
fn the_reference_engine_puts_every_layer_on_the_cpu_here() {
    let sb = sandbox();
    let facts = prove(&sb);
    let model = facts
        .placement_model
        .as_ref()
        .expect("the test model is written");
    assert_eq!(
        (model.n_layer, model.layers, model.weights.as_str()),
        (2, 3, "random")
    );
    assert!(Path::new(&model.path).is_file());
    assert!(facts.speed_models.is_empty(), "no stack here may use a GPU");
    let r = stack(&facts, "reference engine");
    assert_eq!(r.status, "ok", "{:?}", r.error);
    assert_eq!(r.build.as_deref(), Some("cpu"));
    assert_eq!(r.backends, ["CPU"]);
    let p = r.placement.as_ref().unwrap();
    assert!(p.loaded, "{:?}", p.error);
    assert_eq!(
        (p.layers_on_gpu, p.layers_total, p.layers_requested),
        (0, 3, 3)
    );
    assert_eq!(p.layers_source, "layer lines");
    assert_eq!(p.layer_devices, ["CPU", "CPU", "CPU"]);
    assert!(p.gpu_buffers.is_empty());
    assert!(p.node_buffers.contains_key("CPU"), "{:?}", p.node_buffers);
    assert!(
        p.evidence[0].contains("layer   0 assigned to device CPU"),
        "{:?}",
        p.evidence
    );
    assert_eq!(r.baseline.as_ref().map(|b| b.n_gpu_layers), Some(0));
}

#[test]
fn a_real_cpu_llama_cpp_python_puts_0_of_3_layers_on_a_gpu_by_its_own_log() {
    if skip_slow() {
        return;
    }
    let sb = sandbox();
    llama_venv(&sb.project.join(".venv"));
    let facts = prove(&sb);
    let s = stack(&facts, "llama-cpp-python in .venv");
    assert_eq!(s.status, "ok", "{:?} {:?}", s.error, s.log_tail);
    assert_eq!(s.version.as_deref(), Some("0.3.36"));
    assert_eq!(s.stage.as_deref(), Some("done"));
    assert_eq!(s.supports_gpu_offload, Some(false));
    assert_eq!(s.backends, ["CPU"]);
    assert_eq!(s.gpu_devices, Some(0));
    let p = s.placement.as_ref().unwrap();
    assert!(p.loaded && p.error.is_none(), "{:?}", p.error);
    assert_eq!(
        (p.n_gpu_layers, p.layers_on_gpu, p.layers_total),
        (-1, 0, 3)
    );
    assert_eq!(p.layers_source, "layer lines");
    assert_eq!(p.log_format.as_deref(), Some("2025"));
    assert!(p.devices_used.is_empty(), "a CPU build has no GPU device");
    assert_eq!(
        p.claimed_offloaded, None,
        "a CPU build prints no offload line"
    );
    assert!(p
        .evidence
        .iter()
        .any(|e| e.contains("assigned to device CPU, is_swa = 0")));
    assert!(p.model_buffers.iter().all(|b| !b.gpu));
    assert_eq!(p.prompt_tokens, 16);
    assert!(p.prompt_ms.is_some() && p.gen_ms.is_some());
    let b = s.baseline.as_ref().unwrap();
    assert_eq!((b.n_gpu_layers, b.layers_on_gpu), (0, 0));
    assert!(
        s.speed.is_none(),
        "nothing reached a GPU: no speed workload"
    );

    // The same run through the binary: the report says 0 of 3 for both stacks.
    let out = Command::new(EXE)
        .args(["check", "--profile", "full", "--color", "never"])
        .current_dir(&sb.project)
        .env_clear()
        .envs(vars(&sb))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("llama-cpp-python 0.3.36 in .venv: 0 of 3 layers on a GPU"),
        "{report}"
    );
    assert!(
        report.contains(
            "reference engine (llama-cpp-sys-2 0.1.161, cpu build): 0 of 3 layers on a GPU"
        ),
        "{report}"
    );

    // On a machine with a GPU, the same facts are the seed's failure, as a finding.
    let mut recorded: Facts = Facts::empty("full");
    recorded.offload = facts;
    let mut with_gpu: serde_json::Value = serde_json::to_value(&recorded).unwrap();
    with_gpu["driver"]["gpu_count"] = 1.into();
    let found = judge(&with_gpu);
    let f = finding(&found, "llama-layers-on-cpu", "llama-cpp-python in .venv");
    assert_eq!(
        f["title"],
        "llama-cpp-python in .venv: 0 of 3 layers on a GPU with n_gpu_layers=-1"
    );
    let explain = f["explain"].as_str().unwrap();
    assert!(explain.contains("built without a GPU backend"), "{explain}");
    assert!(f["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e.as_str().unwrap().contains("assigned to device CPU")));
    assert!(
        found.iter().all(|f| f["subject"] != "reference engine"),
        "a CPU build of the reference engine is not judged"
    );
}

#[test]
fn a_cuda_backend_that_does_not_load_is_named_with_the_loaders_reason() {
    if skip_slow() {
        return;
    }
    let sb = sandbox();
    let venv = sb.project.join(".venv");
    llama_venv(&venv);
    // A real shared library that needs a libcudart.so.12 nobody has.
    let stub = sb.root.join("stub");
    write(
        &stub.join("a.c"),
        "int ggml_backend_cuda_reg(void) { return 0; }\n",
    );
    let cc = |args: &[&str]| {
        run(
            Command::new("cc").args(args).current_dir(&stub),
            Duration::from_secs(60),
            "cc",
        )
    };
    cc(&[
        "-shared",
        "-fPIC",
        "-o",
        "libcudart.so.12",
        "-Wl,-soname,libcudart.so.12",
        "-x",
        "c",
        "/dev/null",
    ]);
    let lib = site_packages(&venv).join("llama_cpp/lib/libggml-cuda.so");
    let lib_arg = lib.display().to_string();
    cc(&[
        "-shared",
        "-fPIC",
        "-o",
        &lib_arg,
        "a.c",
        "-Wl,--no-as-needed",
        "./libcudart.so.12",
    ]);
    std::fs::remove_file(stub.join("libcudart.so.12")).unwrap();

    let facts = prove(&sb);
    assert_eq!(
        facts.speed_models.len(),
        2,
        "a CUDA backend is installed: speed models are written"
    );
    for m in &facts.speed_models {
        assert_eq!(m.weights, "zeros");
        let on_disk = std::fs::metadata(&m.path).unwrap();
        assert!(
            on_disk.len() > m.tensor_bytes,
            "the file holds every tensor"
        );
    }
    let s = stack(&facts, "llama-cpp-python in .venv");
    assert_eq!(s.status, "ok", "{:?}", s.error);
    assert_eq!(s.cuda_backend_library.as_deref(), Some(lib_arg.as_str()));
    let why = s.cuda_backend_load_error.as_deref().unwrap_or("");
    assert!(
        why.contains("libcudart.so.12: cannot open shared object file"),
        "{why}"
    );
    let mut recorded = Facts::empty("full");
    recorded.offload = facts;
    let mut with_gpu = serde_json::to_value(&recorded).unwrap();
    with_gpu["driver"]["gpu_count"] = 1.into();
    let found = judge(&with_gpu);
    let f = finding(
        &found,
        "llama-cuda-backend-fails-to-load",
        "llama-cpp-python in .venv",
    );
    assert!(
        f["title"].as_str().unwrap().contains("libcudart.so.12"),
        "{f}"
    );
}

#[test]
fn a_llama_cpp_that_segfaults_while_loading_is_a_crash_and_the_proof_goes_on() {
    let sb = sandbox();
    let venv = sb.project.join(".venv");
    let site = real_venv(&venv);
    // A stand-in llama_cpp: imports, logs like llama.cpp, then segfaults loading the model,
    // as the CPU build made on the H100 machine does.
    write(
        &site.join("llama_cpp/__init__.py"),
        "import ctypes, sys\n\
         __version__ = '0.3.36'\n\
         def llama_supports_gpu_offload(): return False\n\
         def llama_print_system_info(): return b'CPU : SSE3 = 1 | AVX2 = 1 | '\n\
         class Llama:\n\
         \x20   def __init__(self, **kw):\n\
         \x20       sys.stderr.write('llama_model_loader: loaded meta data with 24 key-value pairs and 21 tensors\\n')\n\
         \x20       sys.stderr.write('print_info: n_layer               = 2\\n')\n\
         \x20       sys.stderr.write('print_info: n_layer_all           = 2\\n')\n\
         \x20       sys.stderr.flush()\n\
         \x20       ctypes.string_at(0)\n",
    );
    write(
        &site.join("llama_cpp_python-0.3.36.dist-info/METADATA"),
        "Metadata-Version: 2.1\nName: llama_cpp_python\nVersion: 0.3.36\n",
    );
    let facts = prove(&sb);
    let s = stack(&facts, "llama-cpp-python in .venv");
    assert_eq!(s.status, "crashed", "{s:#?}");
    assert_eq!(
        (s.signal, s.signal_name.as_deref()),
        (Some(11), Some("SIGSEGV"))
    );
    assert_eq!(s.stage.as_deref(), Some("placement.load"));
    let error = s.error.as_deref().unwrap();
    assert!(
        error.starts_with(
            "signal 11 (SIGSEGV) while loading the test model with every layer on the GPU"
        ),
        "{error}"
    );
    assert_eq!(
        s.log_tail.last().map(String::as_str),
        Some("print_info: n_layer_all           = 2")
    );
    let p = s.placement.as_ref().unwrap();
    assert!(!p.loaded);
    assert!(s.baseline.is_none(), "nothing ran after the crash");
    assert_eq!(
        stack(&facts, "reference engine").status,
        "ok",
        "the proof goes on"
    );
}

// ---------------------------------------------------------------------------------------------
// replays of recorded logs

fn fixture(name: &str) -> String {
    let path = root().join("fixtures/llama").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn replay_research_log_cuda_build_on_the_h100() {
    let log = parse_log(&fixture("llama-cpp-python-0.3.36-cuda-h100.log"));
    assert_eq!(log.cuda_devices_found, Some(1));
    assert!(log.cuda_device_lines[0].contains("compute capability 9.0"));
    assert_eq!(log.loads.len(), 2, "n_gpu_layers -1, then 0");
    let gpu = &log.loads[0];
    assert_eq!(gpu.format, Some("2025"));
    assert_eq!(
        (gpu.layers_on_gpu_by_lines(), gpu.layers_total()),
        (3, Some(3))
    );
    assert_eq!(gpu.claimed, Some((3, 3)));
    assert_eq!(
        gpu.devices_used,
        ["CUDA0 (NVIDIA H100 80GB HBM3) (0000:00:06.0) - 80552 MiB free"]
    );
    assert_eq!(gpu.gpu_buffers(), ["CUDA0"]);
    assert_eq!(gpu.graph_splits, Some(2));
    let cpu = &log.loads[1];
    assert_eq!(
        (cpu.layers_on_gpu_by_lines(), cpu.claimed),
        (0, Some((0, 3)))
    );
    assert_eq!(
        cpu.devices_used.len(),
        1,
        "the GPU is offered; n_gpu_layers 0 declines it"
    );
    assert_eq!(
        cpu.graph_splits,
        Some(26),
        "prompt processing still visits the GPU"
    );
    assert!(log.system_info.unwrap().starts_with("CUDA : ARCHS = 900"));
}

#[test]
fn replay_research_log_cpu_build_on_the_h100_host() {
    let log = parse_log(&fixture("llama-cpp-python-0.3.36-cpu-on-h100-host.log"));
    assert_eq!(log.cuda_devices_found, None);
    let load = &log.loads[0];
    assert_eq!(
        (load.layers_on_gpu_by_lines(), load.layers_total()),
        (0, Some(3))
    );
    assert_eq!(load.claimed, None, "no offload line at all");
    assert!(load.devices_used.is_empty());
    assert!(load.gpu_buffers().is_empty());
    assert!(log.system_info.unwrap().starts_with("CPU : SSE3 = 1"));
}

#[test]
fn replay_research_log_segfault_while_loading() {
    let log = parse_log(&fixture("llama-cpp-python-0.3.36-cpu-gcc13-sigsegv.log"));
    assert_eq!(log.loads.len(), 1);
    let load = &log.loads[0];
    assert!(
        load.layer_devices.is_empty(),
        "it died before placing any layer"
    );
    assert_eq!(load.n_layer, Some(2));
    assert_eq!(
        log.last_lines.last().map(String::as_str),
        Some("print_info: n_layer_all           = 2")
    );
}

#[test]
fn replay_reference_engine_cpu_build_on_the_h100() {
    let report: gpu_doctor::probe::llama::engine::EngineReport =
        serde_json::from_str(&fixture("engine-cpu-build-on-h100.json")).unwrap();
    let s = gpu_doctor::probe::llama::reference::from_report(&report, Some(3));
    assert_eq!(s.build.as_deref(), Some("cpu"));
    assert_eq!(
        s.gpu_devices,
        Some(0),
        "a CPU build sees no GPU, even on the H100"
    );
    let p = s.placement.as_ref().unwrap();
    assert_eq!((p.layers_on_gpu, p.layers_total), (0, 3));
    assert_eq!(p.layer_devices, ["CPU", "CPU", "CPU"]);
    assert_eq!(s.baseline.as_ref().map(|b| b.layers_on_gpu), Some(0));
}

// ---------------------------------------------------------------------------------------------
// helpers: judge facts through the binary

/// Findings of `gpu-doctor check --facts` for these facts, as JSON.
fn judge(facts: &serde_json::Value) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("facts.json");
    std::fs::write(&path, facts.to_string()).unwrap();
    let out = Command::new(EXE)
        .args(["check", "--format", "json", "--no-config", "--facts"])
        .arg(&path)
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    doc["findings"].as_array().cloned().unwrap_or_default()
}

/// The finding of `rule` about `subject` ("" for a host-wide rule).
fn finding<'a>(found: &'a [serde_json::Value], rule: &str, subject: &str) -> &'a serde_json::Value {
    found
        .iter()
        .find(|f| f["rule"] == rule && (subject.is_empty() || f["subject"] == subject))
        .unwrap_or_else(|| panic!("no {rule} for {subject} in {found:#?}"))
}

// ---------------------------------------------------------------------------------------------
// replays of the proof's raw output on the H100 machine (fixtures/llama/h100/, recorded with
// GPU_DOCTOR_OFFLOAD_RECORD by bench/gpu-machine-offload.sh) and of its facts

fn h100_facts() -> Facts {
    let path = root().join("fixtures/facts/h100-offload.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The options the proof ran with there: the recorded models.
fn h100_options() -> ProofOptions {
    let facts = h100_facts();
    let model = |m: &gpu_doctor::facts::llama::ProofModel| ModelFile {
        path: PathBuf::from(&m.path),
        bytes: m.tensor_bytes,
        layers: Some(m.layers),
    };
    ProofOptions {
        env: BTreeMap::new(),
        deadline: Duration::from_secs(60),
        placement: model(facts.offload.placement_model.as_ref().unwrap()),
        speed: facts.offload.speed_models.iter().map(model).collect(),
        user_model: None,
        prompt_tokens: 16,
        gen_tokens: 8,
        speed_tokens: 512,
        cpu_tokens: 128,
        record_dir: None,
    }
}

fn replay(name: &str) -> LlamaStack {
    let out = pyproof::replay(&root().join("fixtures/llama/h100"), name)
        .unwrap_or_else(|e| panic!("fixtures/llama/h100/{name}: {e}"));
    pyproof::interpret(&out, &h100_options())
}

#[test]
fn replay_h100_cuda_build_offloads_every_layer_and_the_gpu_wins() {
    let s = replay("llama-cpp-python-.venv-cuda");
    assert_eq!(s.status, "ok", "{:?}", s.error);
    assert_eq!(s.supports_gpu_offload, Some(true));
    assert_eq!(s.backends, ["CUDA", "CPU"]);
    assert_eq!(s.cuda_archs, ["9.0"]);
    assert_eq!(s.cuda_devices_found, Some(1));
    assert_eq!(s.gpu_devices, Some(1));
    assert_eq!(s.cuda_backend_load_error, None, "it loads");
    let p = s.placement.as_ref().unwrap();
    assert_eq!((p.layers_on_gpu, p.layers_total), (3, 3));
    assert_eq!(p.layer_devices, ["CUDA0", "CUDA0", "CUDA0"]);
    assert_eq!(p.claimed_offloaded, Some(3));
    assert!(p.devices_used[0].starts_with("CUDA0 (NVIDIA H100 80GB HBM3)"));
    assert!(p.gpu_buffers.contains(&"CUDA0".to_string()));
    let b = s.baseline.as_ref().unwrap();
    assert_eq!((b.layers_on_gpu, b.claimed_offloaded), (0, Some(0)));
    let speed = s.speed.as_ref().unwrap();
    assert!(speed.judged, "{:?}", speed.not_judged);
    assert!(speed.cpu_pure, "op_offload=False was accepted");
    let (g, c) = (
        speed.gpu_tokens_per_s.unwrap(),
        speed.cpu_tokens_per_s.unwrap(),
    );
    assert!(
        g > 10.0 * c,
        "a working H100 wins by far: {g} vs {c} tokens/s"
    );
    assert_eq!((speed.gpu_layers_on_gpu, speed.layers_total), (3, 3));
}

#[test]
fn replay_h100_cpu_build_carried_there_is_the_silent_fallback() {
    let s = replay("llama-cpp-python-.venv-cpu-carried");
    assert_eq!(s.status, "ok", "{:?}", s.error);
    assert_eq!(s.backends, ["CPU"]);
    let p = s.placement.as_ref().unwrap();
    assert_eq!(
        (p.n_gpu_layers, p.layers_on_gpu, p.layers_total),
        (-1, 0, 3)
    );
    assert_eq!(p.claimed_offloaded, None);
    assert!(p.devices_used.is_empty());
    assert!(s.speed.is_none());
}

#[test]
fn replay_h100_cpu_build_made_there_segfaults_while_loading() {
    let s = replay("llama-cpp-python-.venv-cpu-here");
    assert_eq!(s.status, "crashed");
    assert_eq!(
        (s.signal, s.signal_name.as_deref()),
        (Some(11), Some("SIGSEGV"))
    );
    assert_eq!(s.stage.as_deref(), Some("placement.load"));
    assert_eq!(
        s.log_tail.last().map(String::as_str),
        Some("print_info: n_layer_all           = 2")
    );
    assert!(s.baseline.is_none());
}

#[test]
fn replay_h100_llama_bench_of_the_cuda_build() {
    let out = pyproof::replay(&root().join("fixtures/llama/h100"), "llama-bench").unwrap();
    let mut s = LlamaStack::default();
    gpu_doctor::probe::llama::binaries::interpret_bench(&out, Some(3), &mut s);
    let p = s.placement.as_ref().unwrap();
    assert!(p.loaded);
    assert_eq!(
        (p.n_gpu_layers, p.layers_on_gpu, p.layers_total),
        (99, 3, 3)
    );
    assert!(p.gpu_buffers.contains(&"CUDA0".to_string()));
    assert!(p.prompt_ms.is_some() && p.gen_ms.is_some());
    let b = s.baseline.as_ref().unwrap();
    assert_eq!((b.n_gpu_layers, b.layers_on_gpu), (0, 0));
}

#[test]
fn replay_h100_facts_of_three_builds_in_one_project() {
    let facts = serde_json::to_value(h100_facts()).unwrap();
    let found = judge(&facts);
    // The 0 of 3 layers follows from the CPU-only build: shown under it, not counted again.
    let cpu_build = finding(
        &found,
        "llama-cpp-cpu-build",
        "environment .venv-cpu-carried (Python 3.12)",
    );
    let under = cpu_build["consequences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!found.iter().any(|f| f["rule"] == "llama-layers-on-cpu"));
    let carried = finding(
        &under,
        "llama-layers-on-cpu",
        "llama-cpp-python in .venv-cpu-carried",
    );
    assert_eq!(
        carried["title"],
        "llama-cpp-python in .venv-cpu-carried: 0 of 3 layers on a GPU with n_gpu_layers=-1"
    );
    assert!(carried["fix"]["bash"]
        .as_str()
        .unwrap()
        .contains("/tmp/proj/.venv-cpu-carried/bin/python3 -m pip install"));
    let crash = finding(
        &found,
        "llama-proof-crashed",
        "llama-cpp-python in .venv-cpu-here",
    );
    assert!(crash["title"]
        .as_str()
        .unwrap()
        .contains("signal 11 (SIGSEGV)"));
    assert!(crash["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "log: print_info: n_layer_all           = 2"));
    finding(&found, "llama-n-gpu-layers-zero", "");
    let about = |who: &str| found.iter().filter(|f| f["subject"] == who).count();
    assert_eq!(
        about("llama-cpp-python in .venv-cuda"),
        0,
        "the CUDA build is fine"
    );
    assert_eq!(
        about("reference engine"),
        0,
        "a CPU reference engine is not judged"
    );
}

/// The `cuda` build of the reference engine on the H100 (fixtures/facts/h100-cuda-engine.json,
/// bench/gpu-machine-cuda-engine.sh): 3 of 3 layers on CUDA0, and on the speed workload (warmed
/// up, the CPU run kept on the CPU with half the cores) the GPU wins by far, so nothing is said
/// about it. Before the warm-up and the pure CPU run, the same machine gave a false "GPU 4.13x
/// slower than the CPU" (fixtures/llama/h100/cuda-engine/check-full-before-warmup.txt).
#[test]
fn replay_h100_cuda_reference_engine_offloads_and_wins() {
    let path = root().join("fixtures/facts/h100-cuda-engine.json");
    let facts: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let reference = facts["offload"]["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "reference")
        .unwrap();
    assert_eq!(reference["build"], "cuda");
    assert_eq!(reference["placement"]["layers_on_gpu"], 3);
    assert_eq!(reference["placement"]["layer_devices"][0], "CUDA0");
    let speed = &reference["speed"];
    assert_eq!(speed["judged"], true);
    assert_eq!(speed["cpu_pure"], true);
    assert!(speed["gpu_speedup"].as_f64().unwrap() > 10.0, "{speed}");
    let found = judge(&facts);
    assert!(
        found.iter().all(|f| f["subject"] != "reference engine"),
        "{found:#?}"
    );
    let before = std::fs::read_to_string(
        root().join("fixtures/llama/h100/cuda-engine/check-full-before-warmup.txt"),
    )
    .unwrap();
    assert!(before.contains("the GPU is 4.13x slower than the CPU"));
}
