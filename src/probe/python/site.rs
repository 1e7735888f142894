//! site-packages read from files: which GPU packages an environment holds and how they were
//! built, without importing them.
//!
//! Only the top level of site-packages is listed (dist-info folder names give every installed
//! distribution and its version), and only a handful of small files are read: torch's
//! `version.py` (a generated data file, parsed as text, never run), the `METADATA` and `WHEEL`
//! of torch, cuda-toolkit and tensorflow, llama_cpp's `__init__.py` when it has no dist-info,
//! and the file names of `llama_cpp/lib` plus the ELF dynamic sections of its libraries. There
//! is no recursive walk: a site-packages folder holds tens of thousands of files.

use super::metadata::{
    self, applies, parse_dist_dir, read_metadata, read_text, tag_platform, MarkerEnv, Metadata,
    MAX_SMALL_FILE,
};
use crate::facts::python::{
    Dist, GpuStack, ImportPath, LlamaCppFacts, LlamaLibOverride, TorchFacts,
};
use crate::probe::elf;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Entries of site-packages listed at most.
const MAX_TOP_LEVEL: usize = 20_000;
/// Files of llama_cpp/lib listed at most.
const MAX_LIB_FILES: usize = 512;

/// The top level of every folder an environment imports packages from (its site-packages,
/// the folders `.pth` files add, the base's site-packages, ...), merged in import order.
pub(crate) struct SitePackages {
    /// The import paths, in the order the interpreter searches them.
    pub paths: Vec<ImportPath>,
    /// Installed distributions by normalized name; the first import path holding one wins.
    pub dists: BTreeMap<String, Installed>,
    /// "windows" or "posix" (the environment's layout).
    pub layout: String,
    pub python_version: Option<String>,
}

/// One distribution: its version, dist-info folder, and the import path it is in.
pub(crate) struct Installed {
    pub version: String,
    pub dist_info: PathBuf,
    /// Index into [`SitePackages::paths`].
    pub path: usize,
}

impl SitePackages {
    /// List the top level of each import path. An unreadable folder is an error (the others
    /// are still read).
    pub fn read(
        paths: &[ImportPath],
        layout: &str,
        python_version: Option<&str>,
        errors: &mut Vec<String>,
    ) -> SitePackages {
        let mut dists = BTreeMap::new();
        for (index, path) in paths.iter().enumerate() {
            if path.reached_by == super::reach::EDITABLE {
                continue;
            }
            let dir = Path::new(&path.path);
            let entries = match fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) => {
                    errors.push(format!("{}: {e}", dir.display()));
                    continue;
                }
            };
            let mut names: Vec<String> = entries
                .flatten()
                .take(MAX_TOP_LEVEL)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".dist-info") || n.ends_with(".egg-info"))
                .collect();
            // Sorted, so that when a botched upgrade leaves two dist-infos of one name the same
            // one is kept on every run (either way they share the package folder).
            names.sort();
            for name in names {
                if let Some((dist, version)) = parse_dist_dir(&name) {
                    dists.entry(dist).or_insert(Installed {
                        version,
                        dist_info: dir.join(&name),
                        path: index,
                    });
                }
            }
        }
        SitePackages {
            paths: paths.to_vec(),
            dists,
            layout: layout.to_string(),
            python_version: python_version.map(str::to_string),
        }
    }

    /// The folder of top-level package `name` in the first import path that has it (an
    /// editable finder's folder only for the packages it maps), with that path's index.
    fn package(&self, name: &str) -> Option<(PathBuf, usize)> {
        self.paths.iter().enumerate().find_map(|(i, p)| {
            if p.reached_by == super::reach::EDITABLE && !p.packages.iter().any(|n| n == name) {
                return None;
            }
            let dir = Path::new(&p.path).join(name);
            dir.is_dir().then_some((dir, i))
        })
    }

    /// Where package `name` (distribution `dist`) is: the package folder's import path, else
    /// the dist-info's.
    fn found_in(
        &self,
        pkg: Option<&(PathBuf, usize)>,
        dist: Option<&Installed>,
    ) -> Option<ImportPath> {
        let index = pkg.map(|(_, i)| *i).or(dist.map(|d| d.path))?;
        self.paths.get(index).cloned()
    }

    /// The import path distribution `name` was found in.
    fn dist_found_in(&self, name: &str) -> Option<ImportPath> {
        self.dist(name)
            .and_then(|d| self.paths.get(d.path).cloned())
    }

    fn dist(&self, name: &str) -> Option<&Installed> {
        self.dists.get(name)
    }

    fn dist_fact(&self, name: &str) -> Option<Dist> {
        self.dist(name).map(|d| Dist {
            name: name.to_string(),
            version: d.version.clone(),
        })
    }

    /// Distributions whose normalized name starts with `prefix`.
    fn dists_with_prefix(&self, prefix: &str) -> Vec<Dist> {
        self.dists
            .range(prefix.to_string()..)
            .take_while(|(n, _)| n.starts_with(prefix))
            .map(|(n, d)| Dist {
                name: n.clone(),
                version: d.version.clone(),
            })
            .collect()
    }

    /// The platform a distribution was built for: its WHEEL tag when it has one, else the
    /// environment's layout on this host.
    fn marker_env(&self, dist: Option<&Installed>) -> (MarkerEnv, Option<String>) {
        let tag = dist.and_then(|d| {
            read_text(&d.dist_info.join("WHEEL"), MAX_SMALL_FILE, false)
                .ok()
                .and_then(|t| metadata::wheel_tag(&t))
        });
        let env = match tag.as_deref().and_then(tag_platform) {
            Some(p) if !p.ends_with("any") => MarkerEnv::from_platform_tag(p),
            _ => MarkerEnv::from_layout(&self.layout),
        };
        (env.with_python(self.python_version.as_deref()), tag)
    }
}

// ---------------------------------------------------------------------------------------------
// torch

/// torch: version.py, dist-info, the CUDA library, and the NVIDIA wheels it requires.
pub(crate) fn torch(site: &SitePackages) -> TorchFacts {
    let pkg = site.package("torch");
    let dist = site.dist("torch");
    let mut facts = TorchFacts {
        installed: pkg.is_some() || dist.is_some(),
        found_in: site.found_in(pkg.as_ref(), dist),
        editable_source: dist.and_then(editable_source),
        ..TorchFacts::default()
    };
    if !facts.installed {
        return facts;
    }
    let mut errors = Vec::new();
    facts.dist_version = dist.map(|d| d.version.clone());
    if let Some((pkg, _)) = &pkg {
        read_version_py(&pkg.join("version.py"), &mut facts, &mut errors);
        facts.cuda_library = ["libtorch_cuda.so", "torch_cuda.dll"]
            .iter()
            .any(|f| pkg.join("lib").join(f).exists());
    } else {
        errors.push("torch's dist-info is present but the torch package folder is missing".into());
    }
    nvidia_requirements(site, dist, &mut facts, &mut errors);
    facts.error = join_errors(errors);
    facts
}

fn read_version_py(path: &Path, facts: &mut TorchFacts, errors: &mut Vec<String>) {
    facts.version_file = Some(path.to_string_lossy().into_owned());
    let text = match read_text(path, MAX_SMALL_FILE, false) {
        Ok(t) => t,
        Err(e) => {
            errors.push(format!("torch/version.py could not be read: {e}"));
            return;
        }
    };
    let fields = python_assignments(&text);
    let get = |k: &str| fields.get(k).cloned().flatten();
    facts.version = get("__version__");
    if facts.version.is_none() {
        errors.push("torch/version.py has no __version__".into());
    }
    facts.cuda = get("cuda");
    facts.hip = get("hip");
    facts.xpu = get("xpu");
    facts.git_version = get("git_version");
    facts.cuda_build = facts.cuda.is_some();
    facts.cuda_version = facts.cuda.as_deref().and_then(major_minor);
    facts.cuda_major = facts
        .cuda_version
        .as_deref()
        .and_then(|v| v.split('.').next()?.parse().ok());
    facts.local_tag = facts
        .version
        .as_deref()
        .and_then(|v| v.split_once('+'))
        .map(|(_, tag)| tag.to_string());
}

/// Top-level `name = 'value'`, `name: Optional[str] = 'value'` and `name = None` lines of a
/// Python data file. Values other than string literals and None are left out; None maps to
/// `Some(None)`.
pub(crate) fn python_assignments(text: &str) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t', '#']) {
            continue;
        }
        let Some((lhs, rhs)) = line.split_once('=') else {
            continue;
        };
        // `==` or `!=` are comparisons, not assignments.
        if rhs.starts_with('=') || lhs.ends_with(['!', '<', '>']) {
            continue;
        }
        let name = lhs.split(':').next().unwrap_or("").trim();
        if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rhs = rhs.split('#').next().unwrap_or("").trim();
        let value = if rhs == "None" {
            None
        } else if let Some(s) = string_literal(rhs) {
            Some(s)
        } else {
            continue;
        };
        out.insert(name.to_string(), value);
    }
    out
}

fn string_literal(text: &str) -> Option<String> {
    let quote = text.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let inner = text.strip_prefix(quote)?.strip_suffix(quote)?;
    (!inner.contains(quote)).then(|| inner.to_string())
}

/// "13.0" -> "13.0", "12.4.1" -> "12.4", "garbage" -> None.
fn major_minor(v: &str) -> Option<String> {
    let parts: Vec<&str> = v.split('.').take(2).collect();
    let numeric = |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit());
    (parts.len() == 2 && parts.iter().all(numeric)).then(|| parts.join("."))
}

/// The NVIDIA wheels present, those torch requires on its platform, and which are missing.
fn nvidia_requirements(
    site: &SitePackages,
    dist: Option<&Installed>,
    facts: &mut TorchFacts,
    errors: &mut Vec<String>,
) {
    let mut wheels = site.dists_with_prefix("nvidia-");
    wheels.extend(site.dist_fact("cuda-toolkit"));
    facts.nvidia_wheels = wheels;
    let Some(dist) = dist else { return };
    let (env, tag) = site.marker_env(Some(dist));
    facts.wheel_tag = tag;
    let meta = match read_metadata(&dist.dist_info.join("METADATA")) {
        Ok(m) => m,
        Err(e) => {
            errors.push(format!("torch METADATA could not be read: {e}"));
            return;
        }
    };
    let required = nvidia_required(site, &meta, &env, errors);
    facts.nvidia_missing = required
        .iter()
        .filter(|n| site.dist(n).is_none())
        .cloned()
        .collect();
    facts.nvidia_required = required.into_iter().collect();
}

fn is_nvidia_runtime(name: &str) -> bool {
    name.starts_with("nvidia-") || name == "cuda-toolkit"
}

/// Names of the nvidia-* distributions `meta` requires for `env`. A `cuda-toolkit[a,b]`
/// requirement counts itself and, when it is installed, the components its own metadata
/// lists for those extras (CUDA 13 torch wheels name their runtime this way).
fn nvidia_required(
    site: &SitePackages,
    meta: &Metadata,
    env: &MarkerEnv,
    errors: &mut Vec<String>,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for req in meta.requires.iter().filter(|r| is_nvidia_runtime(&r.name)) {
        if !applies(req, env) {
            continue;
        }
        out.insert(req.name.clone());
        if req.extras.is_empty() {
            continue;
        }
        let Some(kit) = site.dist(&req.name) else {
            continue;
        };
        match read_metadata(&kit.dist_info.join("METADATA")) {
            Ok(kit_meta) => {
                let with_extras = env.clone().with_extras(&req.extras);
                out.extend(
                    kit_meta
                        .requires
                        .iter()
                        .filter(|r| is_nvidia_runtime(&r.name) && applies(r, &with_extras))
                        .map(|r| r.name.clone()),
                );
            }
            Err(e) => errors.push(format!("{} METADATA could not be read: {e}", req.name)),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// llama-cpp-python

/// Backends by the name part after `ggml-`, and whether each is a GPU backend.
const BACKENDS: &[(&str, bool)] = &[
    ("cpu", false),
    ("blas", false),
    ("amx", false),
    ("rpc", false),
    ("cuda", true),
    ("hip", true),
    ("vulkan", true),
    ("metal", true),
    ("sycl", true),
    ("musa", true),
    ("kompute", true),
    ("opencl", true),
    ("cann", true),
];

/// llama-cpp-python: version, lib files, backends, and the CUDA libraries it needs.
pub(crate) fn llama_cpp(site: &SitePackages) -> LlamaCppFacts {
    let pkg = site.package("llama_cpp");
    let dist = site.dist("llama-cpp-python");
    let mut facts = LlamaCppFacts {
        installed: pkg.is_some() || dist.is_some(),
        found_in: site.found_in(pkg.as_ref(), dist),
        editable_source: dist.and_then(editable_source),
        ..LlamaCppFacts::default()
    };
    if !facts.installed {
        return facts;
    }
    let mut errors = Vec::new();
    if let Some(d) = dist {
        facts.version = Some(d.version.clone());
        facts.version_source = Some("dist-info".into());
    }
    let Some((pkg, _)) = pkg else {
        errors.push(
            "llama-cpp-python's dist-info is present but the llama_cpp folder is missing".into(),
        );
        facts.error = join_errors(errors);
        return facts;
    };
    facts.package_dir = Some(pkg.to_string_lossy().into_owned());
    if facts.version.is_none() {
        init_version(&pkg, &mut facts, &mut errors);
    }
    // Since July 2024 the libraries live in llama_cpp/lib; before, in llama_cpp itself.
    let lib = pkg.join("lib");
    let lib = if lib.is_dir() { lib } else { pkg };
    facts.lib_dir = Some(lib.to_string_lossy().into_owned());
    let scan = scan_lib_dir(&lib, &mut errors);
    apply_scan(&mut facts, scan);
    facts.error = join_errors(errors);
    facts
}

fn init_version(pkg: &Path, facts: &mut LlamaCppFacts, errors: &mut Vec<String>) {
    match read_text(&pkg.join("__init__.py"), MAX_SMALL_FILE, false) {
        Ok(text) => {
            if let Some(Some(v)) = python_assignments(&text).get("__version__") {
                facts.version = Some(v.clone());
                facts.version_source = Some("__init__.py".into());
            }
        }
        Err(e) => errors.push(format!("llama_cpp/__init__.py could not be read: {e}")),
    }
}

/// What a folder of llama.cpp libraries holds.
#[derive(Debug, Default)]
pub(crate) struct LibScan {
    pub files: Vec<String>,
    pub backends: BTreeSet<String>,
    pub cuda_library: Option<String>,
    pub cuda_linked_into_core: bool,
    pub cuda_needed: Vec<String>,
    pub cuda_runtime_major: Option<u32>,
    pub needed: BTreeMap<String, Vec<String>>,
}

impl LibScan {
    fn gpu_backends(&self) -> Vec<String> {
        self.backends
            .iter()
            .filter(|b| BACKENDS.iter().any(|(n, gpu)| n == b && *gpu))
            .cloned()
            .collect()
    }
}

fn apply_scan(facts: &mut LlamaCppFacts, scan: LibScan) {
    facts.gpu_backends = scan.gpu_backends();
    facts.cuda_backend = scan.backends.contains("cuda");
    facts.backends = scan.backends.into_iter().collect();
    facts.lib_files = scan.files;
    facts.cuda_library = scan.cuda_library;
    facts.cuda_linked_into_core = scan.cuda_linked_into_core;
    facts.cuda_needed = scan.cuda_needed;
    facts.cuda_runtime_major = scan.cuda_runtime_major;
    facts.needed = scan.needed;
}

/// List the shared libraries of a llama.cpp lib folder and work out its backends.
pub(crate) fn scan_lib_dir(dir: &Path, errors: &mut Vec<String>) -> LibScan {
    let mut scan = LibScan::default();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(format!("{}: {e}", dir.display()));
            return scan;
        }
    };
    for entry in entries.flatten().take(MAX_LIB_FILES) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if library_stem(&name).is_some() {
            scan.files.push(name);
        }
    }
    scan.files.sort();
    for file in &scan.files {
        let Some(stem) = library_stem(file) else {
            continue;
        };
        if let Some(backend) = backend_of(stem) {
            scan.backends.insert(backend.to_string());
        }
        if let Some(major) = bundled_runtime_major(stem) {
            scan.cuda_runtime_major.get_or_insert(major);
        }
    }
    cuda_from_elf(dir, &mut scan, errors);
    scan
}

/// "libggml-cuda.so.0.25.3" -> "ggml-cuda", "ggml-cuda.dll" -> "ggml-cuda"; None for files
/// that are not shared libraries.
fn library_stem(name: &str) -> Option<&str> {
    let base = if let Some(i) = name.find(".so") {
        let rest = &name[i + 3..];
        // ".so" must end the name or start a ".N" version suffix.
        (rest.is_empty() || rest.starts_with('.')).then(|| &name[..i])?
    } else {
        name.strip_suffix(".dll")
            .or_else(|| name.strip_suffix(".dylib"))?
    };
    let stem = base.strip_prefix("lib").unwrap_or(base);
    (!stem.is_empty()).then_some(stem)
}

/// The ggml backend a library stem is: "ggml-cuda" -> cuda, "ggml-cpu-haswell" -> cpu.
fn backend_of(stem: &str) -> Option<&'static str> {
    let rest = stem.strip_prefix("ggml-")?;
    let head = rest.split('-').next().unwrap_or(rest);
    BACKENDS.iter().find(|(n, _)| *n == head).map(|(n, _)| *n)
}

/// CUDA runtime DLLs copied beside the libraries on Windows: "cudart64_12" -> 12,
/// "cublas64_13" -> 13, "cudart64_110" -> 11.
fn bundled_runtime_major(stem: &str) -> Option<u32> {
    let digits = stem
        .strip_prefix("cudart64_")
        .or_else(|| stem.strip_prefix("cublas64_"))?;
    let digits = if digits.len() == 3 {
        &digits[..2]
    } else {
        digits
    };
    digits.parse().ok()
}

/// Sonames that mean "built with CUDA".
fn is_cuda_soname(name: &str) -> bool {
    [
        "libcudart.so",
        "libcublas.so",
        "libcublasLt.so",
        "libcuda.so",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

/// CUDA major of a needed soname: "libcudart.so.12" -> 12.
fn soname_major(name: &str) -> Option<u32> {
    let rest = name
        .strip_prefix("libcudart.so.")
        .or_else(|| name.strip_prefix("libcublas.so."))?;
    rest.split('.').next()?.parse().ok()
}

/// Read DT_NEEDED of the CUDA backend, or, when there is no GPU backend file (builds before
/// 0.3.2 linked CUDA into libllama.so / libggml.so), of the core libraries.
fn cuda_from_elf(dir: &Path, scan: &mut LibScan, errors: &mut Vec<String>) {
    if scan.backends.contains("cuda") {
        if let Some(file) = elf_name(&scan.files, "ggml-cuda") {
            record_needed(dir, &file, scan, errors);
            scan.cuda_needed = scan.needed.get(&file).cloned().unwrap_or_default();
            scan.cuda_library = Some(file);
        } else {
            scan.cuda_library = scan
                .files
                .iter()
                .find(|f| library_stem(f) == Some("ggml-cuda"))
                .cloned();
        }
    } else if scan.gpu_backends().is_empty() {
        for stem in ["llama", "ggml"] {
            let Some(file) = elf_name(&scan.files, stem) else {
                continue;
            };
            record_needed(dir, &file, scan, errors);
            let needed = scan.needed.get(&file).cloned().unwrap_or_default();
            if scan.cuda_library.is_none() && needed.iter().any(|n| is_cuda_soname(n)) {
                scan.backends.insert("cuda".into());
                scan.cuda_linked_into_core = true;
                scan.cuda_needed = needed;
                scan.cuda_library = Some(file);
            }
        }
    }
    if let Some(major) = scan.cuda_needed.iter().find_map(|n| soname_major(n)) {
        scan.cuda_runtime_major = Some(major);
    }
}

/// "lib{stem}.so" when the folder has it (the unversioned name is what ctypes loads).
fn elf_name(files: &[String], stem: &str) -> Option<String> {
    let file = format!("lib{stem}.so");
    files.contains(&file).then_some(file)
}

fn record_needed(dir: &Path, file: &str, scan: &mut LibScan, errors: &mut Vec<String>) {
    match elf::read_dynamic(&dir.join(file)) {
        Ok(info) => {
            scan.needed.insert(file.to_string(), info.needed);
        }
        // Zero-byte or foreign files (fixtures, a Windows tree read on Linux) are not ELF: that
        // is worth knowing, not worth failing over.
        Err(e) => errors.push(format!("{file}: {e}")),
    }
}

/// LLAMA_CPP_LIB_PATH (a folder) or the older LLAMA_CPP_LIB (a file), when set.
pub(crate) fn lib_override(variable: &str, value: &str) -> LlamaLibOverride {
    let path = PathBuf::from(value);
    let dir = if variable == "LLAMA_CPP_LIB" {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        path.clone()
    };
    let mut out = LlamaLibOverride {
        variable: variable.to_string(),
        path: value.to_string(),
        exists: path.exists(),
        ..LlamaLibOverride::default()
    };
    if dir.is_dir() {
        let scan = scan_lib_dir(&dir, &mut Vec::new());
        out.gpu_backends = scan.gpu_backends();
        out.cuda_backend = scan.backends.contains("cuda");
        out.backends = scan.backends.into_iter().collect();
        out.lib_files = scan.files;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// other GPU stacks

/// jax, cupy, onnxruntime and tensorflow, when present.
pub(crate) fn gpu_stacks(site: &SitePackages) -> Vec<GpuStack> {
    [jax(site), cupy(site), onnxruntime(site), tensorflow(site)]
        .into_iter()
        .flatten()
        .collect()
}

/// The digits after `prefix` in a name like "jax-cuda12-plugin": 12.
fn cuda_digits(name: &str, prefix: &str) -> Option<String> {
    let rest = name.strip_prefix(prefix)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (!digits.is_empty()).then_some(digits)
}

fn jax(site: &SitePackages) -> Option<GpuStack> {
    let main = site.dist_fact("jax").or_else(|| site.dist_fact("jaxlib"))?;
    let mut packages: Vec<Dist> = ["jax", "jaxlib"]
        .iter()
        .filter_map(|n| site.dist_fact(n))
        .collect();
    let plugins: Vec<Dist> = site
        .dists_with_prefix("jax-cuda")
        .into_iter()
        .chain(site.dists_with_prefix("jax-rocm"))
        .collect();
    // Old jaxlib builds carried CUDA in the local version: 0.4.1+cuda11.cudnn86.
    let jaxlib_cuda = site
        .dist("jaxlib")
        .is_some_and(|d| d.version.contains("cuda"));
    let cuda_major = plugins
        .iter()
        .find_map(|p| cuda_digits(&p.name, "jax-cuda"))
        .and_then(|d| d.parse().ok());
    // The CUDA plugin loads its PJRT runtime from a separate wheel of the same CUDA major.
    let missing = plugins
        .iter()
        .filter_map(|p| {
            p.name
                .strip_suffix("-plugin")
                .map(|base| format!("{base}-pjrt"))
        })
        .filter(|pjrt| site.dist(pjrt).is_none())
        .collect();
    let gpu_build = !plugins.is_empty() || jaxlib_cuda;
    packages.extend(plugins);
    Some(GpuStack {
        name: "jax".into(),
        version: Some(main.version),
        gpu_build,
        cuda_major,
        packages,
        missing,
        note: None,
        found_in: site.dist_found_in(&main.name),
    })
}

fn cupy(site: &SitePackages) -> Option<GpuStack> {
    let packages = site.dists_with_prefix("cupy");
    let main = packages.first()?.clone();
    let cuda_major = packages.iter().find_map(|p| cupy_cuda_major(&p.name));
    let note = (packages.len() > 1).then(|| {
        "several cupy distributions are installed; they share the cupy package folder".into()
    });
    Some(GpuStack {
        name: "cupy".into(),
        version: Some(main.version),
        // CuPy has no CPU build: any of its distributions is a GPU package.
        gpu_build: true,
        cuda_major,
        packages,
        missing: Vec::new(),
        note,
        found_in: site.dist_found_in(&main.name),
    })
}

/// cupy-cuda12x -> 12 (one wheel per major); cupy-cuda102 -> 10, cupy-cuda92 -> 9 (older
/// wheels per major.minor, minor last).
fn cupy_cuda_major(name: &str) -> Option<u32> {
    let digits = cuda_digits(name, "cupy-cuda")?;
    let per_major = name.ends_with(&format!("{digits}x"));
    let major = if per_major {
        &digits[..]
    } else {
        &digits[..digits.len().saturating_sub(1)]
    };
    major.parse().ok()
}

/// "nvidia-cublas-cu12" -> 12.
fn cu_suffix_major(name: &str) -> Option<u32> {
    cuda_digits(name.rsplit('-').next()?, "cu")?.parse().ok()
}

fn onnxruntime(site: &SitePackages) -> Option<GpuStack> {
    let packages: Vec<Dist> = site
        .dists_with_prefix("onnxruntime")
        .into_iter()
        .filter(|d| d.name == "onnxruntime" || d.name.starts_with("onnxruntime-"))
        .collect();
    let main = packages.first()?.clone();
    let gpu_names = [
        "onnxruntime-gpu",
        "onnxruntime-directml",
        "onnxruntime-rocm",
    ];
    let gpu = packages
        .iter()
        .find(|p| gpu_names.contains(&p.name.as_str()));
    let cpu = packages.iter().any(|p| p.name == "onnxruntime");
    let note = (gpu.is_some() && cpu).then(|| {
        "onnxruntime and a GPU onnxruntime are both installed; they share the onnxruntime \
         package folder and whichever was installed last wins"
            .into()
    });
    Some(GpuStack {
        name: "onnxruntime".into(),
        version: Some(gpu.unwrap_or(&main).version.clone()),
        gpu_build: gpu.is_some(),
        cuda_major: None,
        packages,
        missing: Vec::new(),
        note,
        found_in: site.dist_found_in(&main.name),
    })
}

fn tensorflow(site: &SitePackages) -> Option<GpuStack> {
    let names = [
        "tensorflow",
        "tensorflow-gpu",
        "tensorflow-cpu",
        "tensorflow-intel",
    ];
    let packages: Vec<Dist> = names.iter().filter_map(|n| site.dist_fact(n)).collect();
    let main = packages.first()?.clone();
    let main_dist = site.dist(&main.name);
    let (env, _) = site.marker_env(main_dist);
    let linux = env.platform_system.as_deref() == Some("Linux");
    // Since 2.11 TensorFlow has no GPU support on native Windows; its Linux wheels carry CUDA
    // kernels and load the CUDA libraries from `tensorflow[and-cuda]`'s nvidia wheels.
    let gpu_build = site.dist("tensorflow-gpu").is_some() || (linux && main.name == "tensorflow");
    let mut missing = Vec::new();
    let mut cuda_major = None;
    if gpu_build && linux {
        if let Some(meta) =
            main_dist.and_then(|d| read_metadata(&d.dist_info.join("METADATA")).ok())
        {
            let and_cuda = env.clone().with_extras(&["and-cuda".to_string()]);
            for req in meta.requires.iter().filter(|r| is_nvidia_runtime(&r.name)) {
                if applies(req, &and_cuda) && !applies(req, &env) {
                    cuda_major = cuda_major.or_else(|| cu_suffix_major(&req.name));
                    if site.dist(&req.name).is_none() {
                        missing.push(req.name.clone());
                    }
                }
            }
        }
    }
    Some(GpuStack {
        name: "tensorflow".into(),
        version: Some(main.version),
        gpu_build,
        cuda_major,
        packages,
        missing,
        note: None,
        found_in: site.dist_found_in(&main.name),
    })
}

/// The source folder of an editable install, from its dist-info's direct_url.json (PEP 610):
/// `{"url": "file:///src/proj", "dir_info": {"editable": true}}`.
fn editable_source(dist: &Installed) -> Option<String> {
    let text = read_text(
        &dist.dist_info.join("direct_url.json"),
        MAX_SMALL_FILE,
        false,
    )
    .ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let editable = json.pointer("/dir_info/editable")?.as_bool()?;
    let url = json.get("url")?.as_str()?;
    editable.then(|| url.strip_prefix("file://").unwrap_or(url).to_string())
}

fn join_errors(errors: Vec<String>) -> Option<String> {
    (!errors.is_empty()).then(|| errors.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_py_forms() {
        let text = "from typing import Optional\n\n\
            __all__ = ['__version__', 'debug', 'cuda', 'git_version', 'hip', 'rocm', 'xpu']\n\
            __version__ = '2.11.0+cu130'\ndebug = False\ncuda: Optional[str] = '13.0'\n\
            git_version = '70d99e998b4955e0049d13a98d77ae1b14db1f45'\n\
            hip: Optional[str] = None\nrocm: Optional[str] = None\nxpu: Optional[str] = None\n";
        let a = python_assignments(text);
        assert_eq!(a["__version__"].as_deref(), Some("2.11.0+cu130"));
        assert_eq!(a["cuda"].as_deref(), Some("13.0"));
        assert_eq!(a["hip"], None);
        assert!(!a.contains_key("debug"), "non-string values are left out");
        assert!(!a.contains_key("__all__"));

        let old = "__version__ = \"1.13.1+cpu\"\ncuda = None\n    cuda = '11.7'\n";
        let a = python_assignments(old);
        assert_eq!(
            a["cuda"], None,
            "indented lines are not top-level assignments"
        );
        assert_eq!(a["__version__"].as_deref(), Some("1.13.1+cpu"));
    }

    #[test]
    fn library_names() {
        assert_eq!(library_stem("libggml-cuda.so.0.25.3"), Some("ggml-cuda"));
        assert_eq!(library_stem("libggml-cuda.so"), Some("ggml-cuda"));
        assert_eq!(library_stem("ggml-cuda.dll"), Some("ggml-cuda"));
        assert_eq!(library_stem("libggml-metal.dylib"), Some("ggml-metal"));
        assert_eq!(library_stem("llama.dll"), Some("llama"));
        assert_eq!(library_stem("__init__.py"), None);
        assert_eq!(library_stem("libsomething.sources"), None);
        assert_eq!(library_stem("lib.so"), None);
        assert_eq!(backend_of("ggml-cpu-haswell"), Some("cpu"));
        assert_eq!(backend_of("ggml-cuda"), Some("cuda"));
        assert_eq!(backend_of("ggml-base"), None);
        assert_eq!(backend_of("ggml"), None);
        assert_eq!(backend_of("llama"), None);
        assert_eq!(bundled_runtime_major("cudart64_12"), Some(12));
        assert_eq!(bundled_runtime_major("cudart64_110"), Some(11));
        assert_eq!(soname_major("libcudart.so.13"), Some(13));
        assert_eq!(soname_major("libcuda.so.1"), None);
        assert_eq!(cupy_cuda_major("cupy-cuda12x"), Some(12));
        assert_eq!(cupy_cuda_major("cupy-cuda102"), Some(10));
        assert_eq!(cupy_cuda_major("cupy-cuda92"), Some(9));
        assert_eq!(cupy_cuda_major("cupy"), None);
        assert_eq!(cu_suffix_major("nvidia-cublas-cu12"), Some(12));
        assert_eq!(cu_suffix_major("nvidia-cublas"), None);
    }

    #[test]
    fn cuda_versions() {
        assert_eq!(major_minor("13.0").as_deref(), Some("13.0"));
        assert_eq!(major_minor("12.4.1").as_deref(), Some("12.4"));
        assert_eq!(major_minor("x.y"), None);
        assert_eq!(major_minor("13"), None);
    }
}
