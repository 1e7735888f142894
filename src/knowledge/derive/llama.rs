//! The per-stack view bound as `llama` in rules of scope "llama": one llama.cpp stack of the
//! offload proof (`offload.stacks[i]`) plus what the rules compare: was a GPU there to use,
//! could this stack have used it, did fewer layers reach it than were asked for and why, is the
//! GPU slower than the CPU on the speed workload, which GPUs its CUDA code cannot run on, and,
//! for llama-cpp-python, the install that fixes its environment (the same advice as the Python
//! rules').

use super::venv::VenvView;
use super::{Derived, VenvAdvice};
use crate::facts::llama::{LlamaStack, LoadRun};
use crate::facts::Facts;
use schemars::JsonSchema;
use serde::Serialize;

/// One stack, bound as `llama`: every fact of `offload.stacks[i]` plus what follows.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct LlamaView {
    #[serde(flatten)]
    pub stack: LlamaStack,
    /// An NVIDIA GPU is on the machine (NVML, the CUDA driver API, or the PCI bus).
    pub gpu_present: bool,
    /// This stack could have put layers on a GPU: anything but a reference engine built for
    /// the CPU only (which places every layer on the CPU by construction).
    pub expects_gpu: bool,
    /// The placement run put fewer layers on a GPU than it asked for.
    pub fewer_than_requested: bool,
    /// The log shows layers on a GPU (per-layer lines) but no buffer in GPU memory backs them.
    pub layers_without_gpu_memory: bool,
    /// Why fewer layers reached a GPU, in words; null when they all did.
    pub cause: Option<String>,
    /// The cause is the build itself (no GPU backend compiled in, or it cannot load): the fix
    /// is another build.
    pub build_problem: bool,
    /// The placement run's quoted log lines, then its GPU buffers.
    pub quoted: Vec<String>,
    /// "CUDA0 2.26 MiB, ..." or "none": the weight buffers in GPU memory.
    pub gpu_buffer_words: String,
    /// cpu tokens/s / gpu tokens/s when the judged speed workload has the GPU slower.
    pub gpu_slowdown: Option<f64>,
    /// GPUs this stack's CUDA code cannot run on ("GPU 0 NVIDIA H100 80GB HBM3 (9.0)").
    pub missing_arch_gpus: Vec<String>,
    /// Why its CUDA backend does not load: the loader's own message.
    pub load_failure: Option<String>,
    /// The last line of the log, and the last five (for crash findings).
    pub last_log_line: Option<String>,
    pub last_log_lines: Vec<String>,
    /// For llama-cpp-python: the environment's interpreter and the install advice (set only
    /// when another build is the fix).
    pub python: Option<String>,
    pub advice: Option<VenvAdvice>,
}

/// A view per stack of the offload proof.
pub fn llama_views(facts: &Facts, _derived: &Derived, venvs: &[VenvView]) -> Vec<LlamaView> {
    let gpu_present = facts.driver.gpu_count > 0
        || !facts.driver.gpus.is_empty()
        || !facts.cuda.devices.is_empty()
        || !facts.host.pci_gpus.is_empty();
    facts
        .offload
        .stacks
        .iter()
        .map(|s| view(facts, s, gpu_present, venvs))
        .collect()
}

fn view(facts: &Facts, stack: &LlamaStack, gpu_present: bool, venvs: &[VenvView]) -> LlamaView {
    let expects_gpu = !(stack.kind == "reference" && stack.build.as_deref() != Some("cuda"));
    let mut v = LlamaView {
        stack: stack.clone(),
        gpu_present,
        expects_gpu,
        last_log_line: stack.log_tail.last().cloned(),
        last_log_lines: stack.log_tail[stack.log_tail.len().saturating_sub(5)..].to_vec(),
        load_failure: load_failure(stack),
        missing_arch_gpus: missing_arch_gpus(facts, stack),
        ..LlamaView::default()
    };
    if let Some(p) = &stack.placement {
        v.fewer_than_requested =
            p.loaded && p.layers_total > 0 && p.layers_on_gpu < p.layers_requested;
        v.layers_without_gpu_memory = p.layers_source == "layer lines"
            && p.layers_on_gpu > 0
            && p.gpu_buffers.is_empty()
            && p.vram_used_mib.is_none_or(|m| m <= 0.0);
        v.quoted = p.evidence.clone();
        v.gpu_buffer_words = gpu_buffer_words(p);
        if v.fewer_than_requested {
            let (cause, build) = cause(stack, p);
            v.cause = Some(cause);
            v.build_problem = build;
        }
    }
    if let Some(s) = stack.speed.as_ref().filter(|s| s.judged) {
        if let (Some(g), Some(c)) = (s.gpu_tokens_per_s, s.cpu_tokens_per_s) {
            if g < c && g > 0.0 {
                v.gpu_slowdown = Some((c / g * 100.0).round() / 100.0);
            }
        }
    }
    let env = venvs.iter().find(|e| {
        Some(&e.env.name) == stack.environment.as_ref() && stack.kind == "llama-cpp-python"
    });
    if let Some(env) = env {
        v.python = Some(env.env.python.clone());
        let rebuild = v.build_problem
            || v.load_failure.is_some()
            || stack.status == "crashed"
            || !v.missing_arch_gpus.is_empty();
        if rebuild {
            v.advice = Some(env.advice.clone());
        }
    }
    v
}

/// Why fewer layers reached a GPU than were asked for, and whether the build is to blame.
fn cause(s: &LlamaStack, p: &LoadRun) -> (String, bool) {
    let gpu_backends: Vec<&String> = s
        .backends
        .iter()
        .filter(|b| b.as_str() != "CPU" && b.as_str() != "BLAS")
        .collect();
    if let Some(why) = load_failure(s) {
        return (format!("its CUDA backend does not load: {why}"), true);
    }
    if s.system_info.is_some() && gpu_backends.is_empty() {
        return (
            format!(
                "this llama.cpp is built without a GPU backend (llama_print_system_info lists only {})",
                s.backends.join(", ")
            ),
            true,
        );
    }
    if let Some(why) = &s.cuda_init_error {
        return (
            format!("CUDA did not initialise in llama.cpp: {why}"),
            false,
        );
    }
    if s.cuda_devices_found == Some(0) || s.gpu_devices == Some(0) {
        return (
            "llama.cpp found no GPU device (is CUDA_VISIBLE_DEVICES hiding them?)".into(),
            false,
        );
    }
    if p.layers_source == "offload line without GPU buffers" {
        return (
            format!(
                "the log claims {} layers offloaded, but no buffer in GPU memory backs the claim",
                p.claimed_offloaded.unwrap_or(0)
            ),
            false,
        );
    }
    if p.layers_on_gpu == 0 && p.devices_used.is_empty() && p.layers_source == "layer lines" {
        return (
            "the model was given no GPU device (no `using device` line): split mode, main GPU or tensor split settings left none".into(),
            false,
        );
    }
    if p.layers_on_gpu > 0 {
        return (
            "only some layers were placed on the GPU (not enough free memory for the rest?)".into(),
            false,
        );
    }
    ("the log does not say why".into(), false)
}

/// The loader's reason why a CUDA backend does not load: from loading it on its own, else
/// from llama.cpp's own `load_backend: failed to load` line about CUDA.
fn load_failure(s: &LlamaStack) -> Option<String> {
    s.cuda_backend_load_error.clone().or_else(|| {
        s.backend_load_errors
            .iter()
            .find(|e| e.to_ascii_lowercase().contains("cuda"))
            .cloned()
    })
}

fn gpu_buffer_words(p: &LoadRun) -> String {
    let gpu: Vec<String> = p
        .model_buffers
        .iter()
        .filter(|b| b.gpu)
        .map(|b| format!("{} {} MiB", b.name, b.mib))
        .collect();
    if gpu.is_empty() {
        "none".into()
    } else {
        gpu.join(", ")
    }
}

/// GPUs no compiled architecture of this stack can run on. llama.cpp's ARCHS list does not
/// tell real (SASS) from virtual (PTX) architectures, so a GPU counts as covered when any
/// architecture is at or below its compute capability; it is missing when none is, or when
/// none has its major version and the log shows "no kernel image is available".
fn missing_arch_gpus(facts: &Facts, s: &LlamaStack) -> Vec<String> {
    if s.cuda_archs.is_empty() {
        return Vec::new();
    }
    let archs: Vec<(u32, u32)> = s.cuda_archs.iter().filter_map(|a| cc(a)).collect();
    if archs.is_empty() {
        return Vec::new();
    }
    let no_kernel_image = [&s.placement, &s.baseline]
        .into_iter()
        .flatten()
        .flat_map(|r| &r.cuda_errors)
        .chain(&s.log_tail)
        .any(|l| l.contains("no kernel image"));
    facts
        .driver
        .gpus
        .iter()
        .filter(|g| {
            let gpu = (g.cc_major, g.cc_minor);
            let any_below = archs.iter().any(|a| *a <= gpu);
            let same_major = archs.iter().any(|a| a.0 == gpu.0 && a.1 <= gpu.1);
            !any_below || (!same_major && no_kernel_image)
        })
        .map(|g| format!("GPU {} {} ({})", g.index, g.name, g.compute_capability))
        .collect()
}

/// "9.0" or "9.0a" as (9, 0).
fn cc(arch: &str) -> Option<(u32, u32)> {
    let (major, minor) = arch.split_once('.')?;
    let minor: String = minor.chars().take_while(char::is_ascii_digit).collect();
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::llama::BufferSize;
    use crate::facts::Gpu;

    fn h100() -> Facts {
        let mut f = Facts::empty("full");
        f.driver.gpu_count = 1;
        f.driver.gpus = vec![Gpu {
            index: 0,
            name: "NVIDIA H100 80GB HBM3".into(),
            compute_capability: "9.0".into(),
            cc_major: 9,
            cc_minor: 0,
            ..Gpu::default()
        }];
        f
    }

    fn placed(on_gpu: u32, devices: &[&str]) -> LoadRun {
        LoadRun {
            n_gpu_layers: -1,
            layers_requested: 3,
            loaded: true,
            layers_total: 3,
            layers_on_gpu: on_gpu,
            layers_source: "layer lines".into(),
            devices_used: devices.iter().map(|d| d.to_string()).collect(),
            ..LoadRun::default()
        }
    }

    #[test]
    fn a_cpu_build_is_a_build_problem_and_a_cpu_reference_engine_is_not_judged() {
        let mut facts = h100();
        let cpu_build = LlamaStack {
            kind: "llama-cpp-python".into(),
            status: "ok".into(),
            system_info: Some("CPU : AVX = 1 | ".into()),
            backends: vec!["CPU".into()],
            placement: Some(placed(0, &[])),
            ..LlamaStack::default()
        };
        let reference = LlamaStack {
            kind: "reference".into(),
            build: Some("cpu".into()),
            ..cpu_build.clone()
        };
        facts.offload.stacks = vec![cpu_build, reference];
        let views = llama_views(&facts, &Derived::default(), &[]);
        assert!(views[0].gpu_present && views[0].expects_gpu && views[0].fewer_than_requested);
        assert!(views[0].build_problem);
        assert!(views[0]
            .cause
            .as_deref()
            .unwrap()
            .contains("without a GPU backend"));
        assert!(!views[1].expects_gpu);
    }

    #[test]
    fn causes_in_order_of_certainty() {
        let base = LlamaStack {
            kind: "llama-cpp-python".into(),
            system_info: Some("CUDA : ARCHS = 900 | CPU : AVX = 1 | ".into()),
            backends: vec!["CUDA".into(), "CPU".into()],
            ..LlamaStack::default()
        };
        let p = placed(0, &[]);
        let init = LlamaStack {
            cuda_init_error: Some("no CUDA-capable device is detected".into()),
            ..base.clone()
        };
        assert!(cause(&init, &p).0.starts_with("CUDA did not initialise"));
        let no_dev = LlamaStack {
            gpu_devices: Some(0),
            ..base.clone()
        };
        assert!(cause(&no_dev, &p)
            .0
            .starts_with("llama.cpp found no GPU device"));
        assert!(cause(&base, &p).0.contains("given no GPU device"));
        let loader = LlamaStack {
            cuda_backend_load_error: Some("libcudart.so.12: cannot open shared object file".into()),
            ..base.clone()
        };
        assert_eq!(
            cause(&loader, &p),
            (
                "its CUDA backend does not load: libcudart.so.12: cannot open shared object file"
                    .into(),
                true
            )
        );
        assert!(cause(&base, &placed(2, &["CUDA0"]))
            .0
            .starts_with("only some layers"));
    }

    #[test]
    fn arch_coverage_of_the_archs_list() {
        let facts = h100();
        let stack = |archs: &[&str]| LlamaStack {
            cuda_archs: archs.iter().map(|a| a.to_string()).collect(),
            ..LlamaStack::default()
        };
        assert!(missing_arch_gpus(&facts, &stack(&["9.0"])).is_empty());
        assert!(
            missing_arch_gpus(&facts, &stack(&["8.6", "8.9"])).is_empty(),
            "PTX may cover it"
        );
        assert_eq!(
            missing_arch_gpus(&facts, &stack(&["10.0", "12.0"])),
            ["GPU 0 NVIDIA H100 80GB HBM3 (9.0)"]
        );
        let mut jit_failed = stack(&["8.6"]);
        jit_failed.log_tail =
            vec!["CUDA error: no kernel image is available for execution on the device".into()];
        assert_eq!(missing_arch_gpus(&facts, &jit_failed).len(), 1);
        assert!(missing_arch_gpus(&facts, &stack(&[])).is_empty());
    }

    #[test]
    fn gpu_memory_words_and_layers_without_memory() {
        let mut p = placed(3, &["CUDA0"]);
        assert_eq!(gpu_buffer_words(&p), "none");
        p.model_buffers = vec![BufferSize {
            name: "CUDA0".into(),
            mib: 2.26,
            gpu: true,
        }];
        assert_eq!(gpu_buffer_words(&p), "CUDA0 2.26 MiB");
        let mut facts = h100();
        facts.offload.stacks = vec![LlamaStack {
            kind: "llama-bench".into(),
            placement: Some(placed(3, &["CUDA0"])),
            ..LlamaStack::default()
        }];
        let v = &llama_views(&facts, &Derived::default(), &[])[0];
        assert!(v.layers_without_gpu_memory && !v.fewer_than_requested);
    }
}
