//! What to install in one environment, bound as `venv.advice`: the right PyTorch wheel index,
//! the right llama-cpp-python install (a prebuilt CUDA wheel where one fits, else a source build
//! and what that build needs), and the small values fix commands are made of.
//!
//! Every value is one word of a command (a package spec, a URL, a path), so the rule engine
//! quotes it for each shell; nothing here joins a command line.
//!
//! - torch: the newest `cuXYZ` variant that (a) this driver runs (its CUDA major is at most the
//!   driver's, and the driver meets that major's minimum: a cu126 wheel runs on a CUDA 12.1
//!   driver through minor-version compatibility), (b) exists for the installed torch release
//!   (or, when that has none, for the newest release that has one), (c) has wheels for this
//!   Python on this OS, and (d) carries code for every GPU of the machine.
//! - llama-cpp-python: the newest variant on its CUDA wheel index meeting the same tests, for
//!   the installed release, else for the newest release with one (pinned, because pip falls
//!   back to building the PyPI sdist CPU-only when the index lacks the version); else the
//!   source build with CMAKE_ARGS="-DGGML_CUDA=on".

use super::venv::{Machine, VenvView};
use crate::facts::Toolkit;
use crate::knowledge::wheels::{self, Variant};
use crate::knowledge::{Os, Version};
use schemars::JsonSchema;
use serde::Serialize;

/// Install advice for one environment.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct VenvAdvice {
    /// What to ask pip for: "torch==2.6.0" (the installed release) or "torch" (the newest on
    /// the index). Null when no CUDA build of torch fits this Python, driver and GPU.
    pub torch_spec: Option<String>,
    /// "cu126".
    pub torch_variant: Option<String>,
    /// "https://download.pytorch.org/whl/cu126".
    pub torch_index: Option<String>,
    /// Why that index, in words.
    pub torch_reason: Option<String>,

    /// "wheel" (a prebuilt CUDA wheel) or "source" (build with CMAKE_ARGS="-DGGML_CUDA=on").
    pub llama_method: Option<String>,
    /// "llama-cpp-python==0.3.35", or "llama-cpp-python" for the newest source release.
    pub llama_spec: Option<String>,
    pub llama_variant: Option<String>,
    /// "https://abetlen.github.io/llama-cpp-python/whl/cu125" (wheel method only).
    pub llama_index: Option<String>,
    /// `llama_spec` and `llama_index` again, set only for the wheel method, and
    /// `llama_source_spec` only for the source method: fix alternatives pick on them.
    pub llama_wheel_spec: Option<String>,
    pub llama_wheel_index: Option<String>,
    pub llama_source_spec: Option<String>,
    /// Why this install, in words.
    pub llama_reason: Option<String>,
    /// What the chosen install needs at run time that this machine lacks (the CUDA runtime
    /// libraries the wheel does not bundle, CUDA_PATH on the right toolkit).
    pub llama_requires: Vec<String>,
    /// `llama_requires` (or, for a source build, the unmet build needs) as a sentence to
    /// append to a message, with a leading space; empty when nothing is lacking.
    pub llama_caveat: String,
    /// The nvcc a source build would use, and its CUDA version.
    pub llama_build_nvcc: Option<String>,
    pub llama_build_cuda: Option<String>,
    /// What a source build needs (source method only): nvcc of a CUDA the driver runs, a C++
    /// compiler (not checked).
    pub llama_build_needs: Vec<String>,

    /// "python3.12": the command that runs this Python version (bash).
    pub python_command: Option<String>,
    /// "-3.12": the Windows py launcher's flag for it.
    pub py_launcher_flag: Option<String>,
    /// The environment's activation scripts (bash, PowerShell); null for conda environments,
    /// which `conda activate` activates.
    pub activate: Option<String>,
    pub activate_ps1: Option<String>,
    /// An installed toolkit with torch's CUDA major, for CUDA_HOME / CUDA_PATH.
    pub toolkit_for_torch: Option<String>,
}

/// The advice for one environment (its torch and llama facts already judged in `v`).
pub(crate) fn advise(m: &Machine, v: &VenvView) -> VenvAdvice {
    let mut a = VenvAdvice {
        python_command: v.python_minor.as_ref().map(|p| format!("python{p}")),
        py_launcher_flag: v.python_minor.as_ref().map(|p| format!("-{p}")),
        ..VenvAdvice::default()
    };
    (a.activate, a.activate_ps1) = activation_scripts(v);
    torch(m, v, &mut a);
    llama(m, v, &mut a);
    a.toolkit_for_torch = v.env.torch.cuda_major.and_then(|major| {
        m.facts
            .toolkits
            .installs
            .iter()
            .find(|t| t.major == Some(major))
            .map(|t| t.root.clone())
    });
    a
}

fn activation_scripts(v: &VenvView) -> (Option<String>, Option<String>) {
    let env = &v.env;
    if env.kind == "conda" {
        return (None, None);
    }
    let (sep, dir) = if env.layout == "windows" {
        ('\\', "Scripts")
    } else {
        ('/', "bin")
    };
    let base = env.path.trim_end_matches(['/', '\\']);
    (
        Some(format!("{base}{sep}{dir}{sep}activate")),
        Some(format!("{base}{sep}{dir}{sep}Activate.ps1")),
    )
}

/// What a build's architecture list is known to be.
#[derive(Clone, Copy)]
enum Archs<'a> {
    /// These entries (sm_XY, compute_XY).
    Listed(&'a [String]),
    /// CMake's "all": every architecture the toolkit knows, with PTX of the newest, which the
    /// driver JIT-compiles for newer GPUs.
    All,
    /// Not in the tables.
    Unknown,
}

/// Whether code built with `variant`, carrying `archs`, runs on every GPU. No toolkit builds
/// for an architecture it dropped (CUDA 13 has no Volta); with an unknown list, the toolkit
/// must also know the GPU (CUDA 11.8 predates Blackwell), since PTX cannot be assumed.
fn runs_on_gpus(m: &Machine, variant: Variant, archs: Archs) -> bool {
    m.gpus.iter().all(|g| {
        let arch = crate::knowledge::arch_for_cc(g.cc.0, g.cc.1);
        let dropped = arch
            .as_ref()
            .and_then(|a| a.last_cuda_major)
            .is_some_and(|last| variant.major > last);
        let known = arch
            .as_ref()
            .and_then(|a| a.first_cuda.as_deref())
            .and_then(Variant::from_cuda)
            .is_none_or(|first| variant >= first);
        match archs {
            Archs::Listed(list) => wheels::arch_covers(list, g.cc),
            Archs::All => !dropped,
            Archs::Unknown => !dropped && known,
        }
    })
}

/// The driver runs the variant (unknown drivers are not held against it).
fn driver_ok(m: &Machine, variant: Variant) -> bool {
    m.driver_runs_major(variant.major) != Some(false)
}

/// "(CUDA 12.6 runs on a CUDA 12.1 driver through minor-version compatibility)" when it does.
fn minor_compat_note(m: &Machine, variant: Variant) -> String {
    let max = m
        .derived
        .driver_max_cuda
        .as_deref()
        .and_then(Version::parse);
    match max {
        Some(max) if max.major() == variant.major && max.minor() < Some(variant.minor) => format!(
            " (CUDA {} runs on a CUDA {max} driver through minor-version compatibility)",
            variant.cuda()
        ),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// torch

fn torch(m: &Machine, v: &VenvView, a: &mut VenvAdvice) {
    let py = v.python_minor.as_deref();
    let fits = |release: &wheels::TorchRelease| -> Option<Variant> {
        if py.is_some_and(|p| !release.supports_python(p, m.os)) {
            return None;
        }
        release
            .cuda_variants()
            .into_iter()
            .filter(|&var| driver_ok(m, var))
            .filter(|&var| {
                let archs = wheels::torch_arch_list(&release.series, &var.name(), m.os)
                    .map_or(Archs::Unknown, Archs::Listed);
                runs_on_gpus(m, var, archs)
            })
            .max()
    };
    let installed = v
        .env
        .torch
        .version
        .as_deref()
        .filter(|_| v.env.torch.installed);
    let pinned = installed.and_then(|version| {
        let release = wheels::torch_release(&wheels::torch_series(version)?)?;
        let public = wheels::public_version(version)?;
        Some((
            format!("torch=={public}"),
            fits(release)?,
            public.to_string(),
        ))
    });
    let (spec, variant, what) = match pinned {
        Some((spec, variant, public)) => (spec, variant, format!("torch {public}")),
        None => {
            let Some((release, variant)) = wheels::torch_releases_newest_first()
                .into_iter()
                .find_map(|r| Some((r, fits(r)?)))
            else {
                return;
            };
            let what = format!("the newest torch (torch {} or later)", release.series);
            ("torch".to_string(), variant, what)
        }
    };
    let python = py.map_or(String::new(), |p| format!(" for Python {p}"));
    a.torch_reason = Some(format!(
        "{}: the newest CUDA build of {what}{python} on {} that {} runs{}",
        variant.name(),
        m.os_words(),
        m.driver_words(),
        minor_compat_note(m, variant)
    ));
    a.torch_spec = Some(spec);
    a.torch_index = Some(wheels::torch_index_url(&variant.name()));
    a.torch_variant = Some(variant.name());
}

// ---------------------------------------------------------------------------------------------
// llama-cpp-python

const LLAMA: &str = "llama-cpp-python";

fn llama(m: &Machine, v: &VenvView, a: &mut VenvAdvice) {
    let py = v.python_minor.as_deref();
    let fits = |row: &wheels::LlamaWheels| -> Option<Variant> {
        if py.is_some_and(|p| !row.supports_python(p)) {
            return None;
        }
        row.variants(m.os)
            .into_iter()
            .filter(|&var| driver_ok(m, var))
            .filter(|&var| {
                runs_on_gpus(
                    m,
                    var,
                    row.archs(var.major).map_or(Archs::All, Archs::Listed),
                )
            })
            .max()
    };
    let installed = v
        .env
        .llama_cpp
        .version
        .as_deref()
        .filter(|_| v.env.llama_cpp.installed);
    let own = installed.and_then(|ver| Some((ver.to_string(), fits(wheels::llama_row_for(ver)?)?)));
    let newest = || {
        wheels::llama_rows_newest_first()
            .into_iter()
            .find_map(|r| Some((r.last.clone(), fits(r)?)))
    };
    build_needs(m, a);
    match own.or_else(newest) {
        Some((version, variant)) => {
            let spec = format!("{LLAMA}=={version}");
            let index = wheels::llama_index_url(&variant.name());
            a.llama_reason = Some(wheel_reason(m, installed, &version, variant, py));
            a.llama_requires = wheel_requires(m, variant);
            a.llama_method = Some("wheel".to_string());
            a.llama_variant = Some(variant.name());
            a.llama_wheel_spec = Some(spec.clone());
            a.llama_wheel_index = Some(index.clone());
            a.llama_spec = Some(spec);
            a.llama_index = Some(index);
        }
        None => {
            let spec = match installed {
                Some(ver) => format!("{LLAMA}=={ver}"),
                None => LLAMA.to_string(),
            };
            let python = py.map_or(String::new(), |p| format!(" for Python {p}"));
            a.llama_reason = Some(format!(
                "no prebuilt CUDA wheel{python} on {} fits {} and this GPU: build from source \
                 with CMAKE_ARGS=\"-DGGML_CUDA=on\"",
                m.os_words(),
                m.driver_words()
            ));
            a.llama_method = Some("source".to_string());
            a.llama_source_spec = Some(spec.clone());
            a.llama_spec = Some(spec);
        }
    }
    if a.llama_method.as_deref() != Some("source") {
        a.llama_build_needs.clear();
    }
    a.llama_caveat = caveat(a);
}

/// " Before it works here: ..." for what the chosen install lacks on this machine.
fn caveat(a: &VenvAdvice) -> String {
    let lacking: Vec<&str> = if a.llama_method.as_deref() == Some("source") {
        // The compiler line is always there and never checked: only the toolkit need counts.
        a.llama_build_needs
            .iter()
            .filter(|n| n.starts_with("nvcc"))
            .map(String::as_str)
            .collect()
    } else {
        a.llama_requires.iter().map(String::as_str).collect()
    };
    if lacking.is_empty() {
        String::new()
    } else {
        format!(
            " Before it works here, it needs {}.",
            lacking.join("; and ")
        )
    }
}

fn wheel_reason(
    m: &Machine,
    installed: Option<&str>,
    version: &str,
    variant: Variant,
    py: Option<&str>,
) -> String {
    let python = py.map_or(String::new(), |p| format!(" for Python {p}"));
    let head = format!(
        "{}: the newest prebuilt CUDA wheel of {LLAMA} {version}{python} on {} that {} runs{}",
        variant.name(),
        m.os_words(),
        m.driver_words(),
        minor_compat_note(m, variant)
    );
    match installed {
        Some(own) if own != version => format!(
            "{head}; {own} (installed) has no such wheel, so the fix moves to {version}, pinned \
             because pip builds the CPU-only PyPI sdist when the index lacks a version"
        ),
        _ => head,
    }
}

/// The CUDA runtime sonames of a CUDA major (what the prebuilt wheels do not bundle on Linux).
fn runtime_sonames(major: u32) -> [String; 2] {
    let cudart = if major == 11 {
        "libcudart.so.11.0".to_string()
    } else {
        format!("libcudart.so.{major}")
    };
    [cudart, format!("libcublas.so.{major}")]
}

fn wheel_requires(m: &Machine, variant: Variant) -> Vec<String> {
    let major = variant.major;
    match m.os {
        Os::Linux => {
            let loader = &m.facts.toolkits.loader;
            let missing: Vec<String> = runtime_sonames(major)
                .into_iter()
                .filter(|s| loader.missing.contains(s) && !loader.resolved.contains_key(s))
                .collect();
            if missing.is_empty() {
                return Vec::new();
            }
            let pip = if major >= 13 {
                "nvidia-cuda-runtime nvidia-cublas".to_string()
            } else {
                format!("nvidia-cuda-runtime-cu{major} nvidia-cublas-cu{major}")
            };
            vec![format!(
                "{} (the CUDA {major} runtime, not bundled in the wheel): the dynamic loader does \
                 not find them; install a CUDA {major}.x toolkit, or `pip install {pip}` and add \
                 their lib folders to LD_LIBRARY_PATH",
                missing.join(" and ")
            )]
        }
        Os::Windows => windows_requires(m, major),
    }
}

/// llama-cpp-python adds %CUDA_PATH%\bin to the DLL search path and finds the CUDA runtime
/// there, so CUDA_PATH must name a toolkit of the wheel's major.
fn windows_requires(m: &Machine, major: u32) -> Vec<String> {
    let dlls = format!("cudart64_{major}.dll and cublas64_{major}.dll");
    let mut out = Vec::new();
    let path_major = m
        .facts
        .toolkits
        .cuda_path_version
        .as_deref()
        .and_then(Version::parse);
    match (&m.facts.host.env.cuda_path, path_major) {
        (None, _) => out.push(format!(
            "CUDA_PATH set to a CUDA {major}.x toolkit: llama-cpp-python loads {dlls} from \
             %CUDA_PATH%\\bin, and CUDA_PATH is not set"
        )),
        (Some(path), Some(v)) if v.major() != major => out.push(format!(
            "CUDA_PATH set to a CUDA {major}.x toolkit: llama-cpp-python loads {dlls} from \
             %CUDA_PATH%\\bin, and CUDA_PATH={path} is CUDA {}",
            v.short().unwrap_or_else(|| v.to_string())
        )),
        _ => {}
    }
    if major >= 13 {
        out.push(
            "CUDA 13 keeps its DLLs in %CUDA_PATH%\\bin\\x64, which llama-cpp-python does not \
             add to the DLL search path (abetlen/llama-cpp-python PR #2083)"
                .to_string(),
        );
    }
    out
}

/// The toolkit a CMake build would use: CUDA_PATH's on Windows (Visual Studio's CUDA
/// integration reads it), the nvcc on PATH elsewhere.
fn build_toolkit<'a>(m: &Machine<'a>) -> Option<&'a Toolkit> {
    let tk = &m.facts.toolkits;
    let by = |selector: &str| {
        tk.installs
            .iter()
            .find(|t| t.found_by.iter().any(|f| f == selector) && t.nvcc.is_some())
    };
    match m.os {
        Os::Windows => by("cuda_path").or_else(|| by("path")),
        Os::Linux => tk
            .path_root
            .as_deref()
            .and_then(|root| tk.installs.iter().find(|t| t.root == root))
            .or_else(|| by("path")),
    }
}

fn build_needs(m: &Machine, a: &mut VenvAdvice) {
    let compiler = match m.os {
        Os::Windows => {
            "Visual Studio 2022 Build Tools with the C++ workload, and the CUDA toolkit's Visual \
             Studio integration (not checked by gpu-doctor)"
        }
        Os::Linux => "a C and C++ compiler (gcc and g++; not checked by gpu-doctor)",
    };
    let Some(tk) = build_toolkit(m) else {
        let max = m
            .derived
            .driver_max_cuda
            .as_deref()
            .map_or(String::new(), |c| {
                format!(" (this driver runs CUDA up to {c})")
            });
        a.llama_build_needs.push(format!(
            "nvcc from a CUDA toolkit: none found{max}; install one and put its bin folder on PATH"
        ));
        a.llama_build_needs.push(compiler.to_string());
        return;
    };
    a.llama_build_nvcc = tk.nvcc.clone();
    a.llama_build_cuda = tk.version_short.clone();
    if let Some(major) = tk
        .major
        .filter(|&mj| m.driver_runs_major(mj) == Some(false))
    {
        let version = tk.version_short.as_deref().unwrap_or("?");
        a.llama_build_needs.push(format!(
            "nvcc of a CUDA version this driver runs: the toolkit at {} is CUDA {version}, whose \
             programs need a newer driver than {} (CUDA {major} needs {}); install a toolkit the \
             driver runs and point {} at it, or upgrade the driver",
            tk.root,
            m.driver_words(),
            crate::knowledge::min_driver_for_cuda_major(major, m.os).unwrap_or("a newer one"),
            if m.os == Os::Windows {
                "CUDA_PATH"
            } else {
                "PATH"
            },
        ));
    }
    a.llama_build_needs.push(compiler.to_string());
}
