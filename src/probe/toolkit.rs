//! CUDA toolkit probe: every toolkit on this machine, how each was found, its version, and what
//! the dynamic loader hands out for the CUDA runtime libraries.
//!
//! Programs and build systems pick "the" toolkit by different selectors: `nvcc` on `PATH`,
//! `CUDA_HOME`, `CUDA_PATH` (PyTorch's extension builder tries them in that order), or the
//! default folders. When those point at different versions, builds mix headers and libraries of
//! two toolkits. This probe records each toolkit once (by canonical path, so `/usr/local/cuda`
//! and the `cuda-13.0` it links to are one toolkit) with every selector that leads to it.
//!
//! System folders (/usr/local, /opt) are read under the context's root so fixture trees work;
//! paths taken from environment variables are used as given. Version sources, in this order:
//! `version.json` (CUDA ≥ 11.1), `version.txt` (older), `nvcc --version` (not in the quick
//! profile: it starts a program), `CUDA_VERSION` in include/cuda.h, the folder name
//! (`cuda-12.4`, Windows `v12.4`).

use super::loader;
use super::{ProbeContext, Probed, Profile};
use crate::facts::{LoaderView, Toolkit, ToolkitFacts};
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How long `nvcc --version` may take; a healthy nvcc answers in well under a second.
const NVCC_DEADLINE: Duration = Duration::from_secs(3);
/// version.json is a few KiB; a larger file is not one.
const MAX_VERSION_FILE: u64 = 1024 * 1024;
/// How much of include/cuda.h is read looking for CUDA_VERSION.
const CUDA_H_HEAD: u64 = 64 * 1024;

/// The runtime sonames a prebuilt CUDA program (a wheel, llama.cpp) asks the loader for.
pub const RUNTIME_SONAMES: &[&str] = &[
    "libcudart.so.13",
    "libcudart.so.12",
    "libcudart.so.11.0",
    "libcublas.so.13",
    "libcublas.so.12",
    "libcublas.so.11",
];

/// Find every CUDA toolkit and the loader's view of the CUDA runtime libraries.
pub fn probe(ctx: &ProbeContext) -> Probed<ToolkitFacts> {
    let mut looked_in = Vec::new();
    let nvcc = path_nvcc(ctx);
    let mut selector_errors = BTreeMap::new();
    let candidates = candidates(ctx, nvcc.as_deref(), &mut looked_in, &mut selector_errors);
    let mut found = dedup(candidates);
    fill_versions(ctx, &mut found);

    let mut facts = ToolkitFacts {
        path_nvcc: nvcc.map(|p| p.to_string_lossy().into_owned()),
        loader: loader_view(ctx),
        ..ToolkitFacts::default()
    };
    facts.path_root = selected(&found, FOUND_PATH).map(|t| t.toolkit.root.clone());
    facts.path_version = selected(&found, FOUND_PATH).and_then(|t| t.toolkit.version.clone());
    facts.cuda_home_version =
        selected(&found, FOUND_CUDA_HOME).and_then(|t| t.toolkit.version.clone());
    facts.cuda_path_version =
        selected(&found, FOUND_CUDA_PATH).and_then(|t| t.toolkit.version.clone());
    facts.selectors_disagree = selectors_disagree(&facts);
    facts.selector_errors = selector_errors;
    facts.installs = found.into_iter().map(with_aliases).collect();

    if facts.installs.is_empty() {
        let what = format!(
            "no CUDA toolkit found (looked in: {})",
            looked_in.join(", ")
        );
        return Probed::absent(facts, what);
    }
    Probed::ok(facts)
}

const FOUND_PATH: &str = "path";
const FOUND_CUDA_HOME: &str = "cuda_home";
const FOUND_CUDA_PATH: &str = "cuda_path";
const FOUND_CUDA_ROOT: &str = "cuda_root";
const FOUND_CUDATOOLKIT_ROOT: &str = "cudatoolkit_root";
/// `CUDA_PATH_V12_4`-style variables: the Windows installer sets one per installed toolkit.
const FOUND_CUDA_PATH_VERSIONED: &str = "cuda_path_versioned";
const FOUND_DEFAULT: &str = "default_location";

/// A folder that may be a toolkit, and why it was looked at.
#[derive(Debug, Clone)]
struct Candidate {
    /// The path as the machine names it (shown to the user).
    logical: String,
    /// Where to read it on this filesystem (differs from `logical` under a fixture root).
    actual: PathBuf,
    found_by: &'static str,
}

/// One toolkit after de-duplication.
#[derive(Debug, Clone)]
struct Found {
    toolkit: Toolkit,
    actual: PathBuf,
    /// Every logical name it was reached by, first one first (folder-name fallback uses them).
    names: Vec<String>,
}

/// The toolkit with every other name it was reached by recorded as an alias.
fn with_aliases(found: Found) -> Toolkit {
    let mut toolkit = found.toolkit;
    toolkit.aliases = found
        .names
        .into_iter()
        .filter(|n| *n != toolkit.root)
        .collect();
    toolkit
}

fn candidates(
    ctx: &ProbeContext,
    nvcc: Option<&Path>,
    looked_in: &mut Vec<String>,
    selector_errors: &mut BTreeMap<String, String>,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    looked_in.push("nvcc on PATH".to_string());
    if let Some(nvcc) = nvcc {
        if let Some(root) = root_of_nvcc(nvcc) {
            out.push(env_candidate(&root.to_string_lossy(), FOUND_PATH));
        }
    }
    for (var, found_by) in env_selectors(ctx) {
        let Some(value) = ctx.nonempty_var(&var) else {
            continue;
        };
        let cand = env_candidate(value, found_by);
        if cand.actual.is_dir() {
            out.push(cand);
            looked_in.push(format!("{var}={value}"));
        } else {
            looked_in.push(format!("{var}={value} (no such folder)"));
            selector_errors.insert(var.clone(), format!("{value}: no such folder"));
        }
    }
    default_locations(ctx, &mut out, looked_in);
    out
}

/// CUDA_HOME, CUDA_PATH, CUDA_ROOT, CUDAToolkit_ROOT, then CUDA_PATH_Vxx_y in name order.
fn env_selectors(ctx: &ProbeContext) -> Vec<(String, &'static str)> {
    let mut vars = vec![
        ("CUDA_HOME".to_string(), FOUND_CUDA_HOME),
        ("CUDA_PATH".to_string(), FOUND_CUDA_PATH),
        ("CUDA_ROOT".to_string(), FOUND_CUDA_ROOT),
        ("CUDAToolkit_ROOT".to_string(), FOUND_CUDATOOLKIT_ROOT),
    ];
    vars.extend(
        ctx.env
            .keys()
            .filter(|k| is_versioned_cuda_path_var(k))
            .map(|k| (k.clone(), FOUND_CUDA_PATH_VERSIONED)),
    );
    vars
}

/// "CUDA_PATH_V12_4": digits, underscore, digits after the prefix.
fn is_versioned_cuda_path_var(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("CUDA_PATH_V") else {
        return false;
    };
    let mut parts = rest.split('_');
    let digits =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    digits(parts.next()) && digits(parts.next()) && parts.next().is_none()
}

fn env_candidate(value: &str, found_by: &'static str) -> Candidate {
    // Trailing separators would make "cuda-12.4/" and "cuda-12.4" look like two toolkits.
    let logical = trim_trailing_separators(value).to_string();
    Candidate {
        actual: PathBuf::from(&logical),
        logical,
        found_by,
    }
}

fn trim_trailing_separators(value: &str) -> &str {
    let trimmed = value.trim_end_matches(['/', '\\']);
    if trimmed.is_empty() || trimmed.ends_with(':') {
        value // "/" or "C:\" stay as they are
    } else {
        trimmed
    }
}

/// /usr/local/cuda, /usr/local/cuda-*, /opt/cuda, and on Windows the installer's folders.
fn default_locations(ctx: &ProbeContext, out: &mut Vec<Candidate>, looked_in: &mut Vec<String>) {
    looked_in.extend(["/usr/local/cuda", "/usr/local/cuda-*", "/opt/cuda"].map(String::from));
    let mut logicals = vec!["/usr/local/cuda".to_string()];
    logicals.extend(
        versioned_dirs(&ctx.sys_path("/usr/local"), "cuda-")
            .into_iter()
            .map(|n| format!("/usr/local/{n}")),
    );
    logicals.push("/opt/cuda".to_string());
    for logical in logicals {
        let actual = ctx.sys_path(&logical);
        if actual.is_dir() {
            out.push(Candidate {
                logical,
                actual,
                found_by: FOUND_DEFAULT,
            });
        }
    }
    if cfg!(windows) {
        windows_default_locations(ctx, out, looked_in);
    }
}

fn windows_default_locations(
    ctx: &ProbeContext,
    out: &mut Vec<Candidate>,
    looked_in: &mut Vec<String>,
) {
    let program_files = ctx
        .nonempty_var("ProgramFiles")
        .unwrap_or(r"C:\Program Files");
    let base = format!(r"{program_files}\NVIDIA GPU Computing Toolkit\CUDA");
    looked_in.push(format!(r"{base}\v*"));
    for name in versioned_dirs(Path::new(&base), "v") {
        let logical = format!(r"{base}\{name}");
        out.push(Candidate {
            actual: PathBuf::from(&logical),
            logical,
            found_by: FOUND_DEFAULT,
        });
    }
}

/// Sub-folders of `dir` named `prefix` + a version ("cuda-12.4", "v13.0"), sorted by version.
fn versioned_dirs(dir: &Path, prefix: &str) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            n.strip_prefix(prefix)
                .is_some_and(|v| parse_version_parts(v).is_some())
        })
        .filter(|n| dir.join(n).is_dir())
        .collect();
    names.sort_by_key(|n| parse_version_parts(&n[prefix.len()..]).unwrap_or_default());
    names
}

/// The nvcc a shell would run: first on the context's PATH.
fn path_nvcc(ctx: &ProbeContext) -> Option<PathBuf> {
    let path = ctx.nonempty_var("PATH")?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    which::which_in("nvcc", Some(path), cwd).ok()
}

/// ".../bin/nvcc" -> "...": the toolkit root, when nvcc sits in a `bin` folder.
fn root_of_nvcc(nvcc: &Path) -> Option<PathBuf> {
    let bin = nvcc.parent()?;
    if bin.file_name()? != "bin" {
        return None;
    }
    bin.parent().map(Path::to_path_buf)
}

/// Merge candidates that are the same folder (through symlinks), keeping discovery order.
fn dedup(candidates: Vec<Candidate>) -> Vec<Found> {
    let mut found: Vec<Found> = Vec::new();
    let mut by_key: BTreeMap<PathBuf, usize> = BTreeMap::new();
    for cand in candidates {
        let canonical = fs::canonicalize(&cand.actual).ok();
        let key = canonical.clone().unwrap_or_else(|| cand.actual.clone());
        let i = *by_key.entry(key).or_insert_with(|| {
            found.push(new_found(&cand, canonical.as_deref()));
            found.len() - 1
        });
        let entry = &mut found[i];
        if !entry.toolkit.found_by.iter().any(|f| f == cand.found_by) {
            entry.toolkit.found_by.push(cand.found_by.to_string());
        }
        if !entry.names.contains(&cand.logical) {
            entry.names.push(cand.logical);
        }
    }
    found
}

/// A new toolkit entry, named by its real folder (so /usr/local/cuda shows as cuda-13.0).
fn new_found(cand: &Candidate, canonical: Option<&Path>) -> Found {
    let real = canonical.and_then(|c| Some((logical_of(cand, c)?, c.to_path_buf())));
    match real {
        Some((name, actual)) => Found {
            toolkit: Toolkit {
                root: name.clone(),
                ..Toolkit::default()
            },
            actual,
            names: vec![name],
        },
        // Not resolvable inside the fixture root (or not at all): read it where it was found.
        None => Found {
            toolkit: Toolkit {
                root: cand.logical.clone(),
                ..Toolkit::default()
            },
            actual: cand.actual.clone(),
            names: Vec::new(),
        },
    }
}

/// The logical name of a canonical path: the candidate's own root prefix swapped back in.
fn logical_of(cand: &Candidate, canonical: &Path) -> Option<String> {
    if cand.actual == Path::new(&cand.logical) {
        return Some(strip_verbatim(canonical));
    }
    // Under a fixture root: strip the root part of the actual path, keep the logical rest.
    let root = cand.actual.to_string_lossy();
    let root = root.strip_suffix(cand.logical.trim_start_matches('/'))?;
    let root = fs::canonicalize(root).ok()?;
    let rest = canonical.strip_prefix(root).ok()?;
    Some(format!("/{}", rest.to_string_lossy()))
}

/// Windows' canonical paths start with `\\?\`; users never write that.
fn strip_verbatim(path: &Path) -> String {
    let s = path.to_string_lossy();
    s.strip_prefix(r"\\?\")
        .map(str::to_string)
        .unwrap_or_else(|| s.into_owned())
}

/// Version every toolkit; nvcc runs (standard and full profiles) happen in parallel.
fn fill_versions(ctx: &ProbeContext, found: &mut [Found]) {
    let may_run = ctx.profile != Profile::Quick;
    std::thread::scope(|s| {
        for f in found.iter_mut() {
            s.spawn(move || fill_version(f, may_run));
        }
    });
}

fn fill_version(f: &mut Found, may_run_nvcc: bool) {
    let nvcc = nvcc_in(&f.actual);
    f.toolkit.nvcc = nvcc.as_ref().map(|_| nvcc_logical(&f.toolkit.root));
    let mut errors = Vec::new();
    let version = read_version_json(&f.actual, &mut errors)
        .map(|v| (v, "version.json"))
        .or_else(|| read_version_txt(&f.actual, &mut errors).map(|v| (v, "version.txt")))
        .or_else(|| {
            let nvcc = nvcc.as_ref().filter(|_| may_run_nvcc)?;
            nvcc_version(nvcc, &mut errors).map(|v| (v, "nvcc"))
        })
        .or_else(|| read_cuda_h(&f.actual).map(|v| (v, "cuda.h")))
        .or_else(|| {
            f.names
                .iter()
                .find_map(|n| folder_version(n))
                .map(|v| (v, "folder name"))
        });
    if version.is_none() && !has_toolkit_marker(&f.actual) {
        errors.push(
            "no bin/nvcc, version.json or version.txt: not a CUDA toolkit folder".to_string(),
        );
    }
    if let Some((v, source)) = version {
        f.toolkit.version_short = version_short(&v);
        f.toolkit.major = v.split('.').next().and_then(|m| m.parse().ok());
        f.toolkit.version = Some(v);
        f.toolkit.version_source = Some(source.to_string());
    }
    f.toolkit.error = (!errors.is_empty()).then(|| errors.join("; "));
}

fn nvcc_in(root: &Path) -> Option<PathBuf> {
    ["nvcc", "nvcc.exe"]
        .iter()
        .map(|n| root.join("bin").join(n))
        .find(|p| p.is_file())
}

/// "<root>/bin/nvcc" with the root's own separator style.
fn nvcc_logical(root: &str) -> String {
    if root.contains('\\') {
        format!(r"{root}\bin\nvcc.exe")
    } else {
        format!("{}/bin/nvcc", root.trim_end_matches('/'))
    }
}

fn has_toolkit_marker(root: &Path) -> bool {
    nvcc_in(root).is_some()
        || root.join("version.json").is_file()
        || root.join("version.txt").is_file()
}

/// Read a small text file; None when it does not exist, an error note when it cannot be read.
fn read_small(path: &Path, errors: &mut Vec<String>) -> Option<String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            errors.push(format!("{name}: {e}"));
            return None;
        }
    };
    let mut text = String::new();
    match file.take(MAX_VERSION_FILE).read_to_string(&mut text) {
        Ok(_) => Some(text),
        Err(e) => {
            errors.push(format!("{name}: {e}"));
            None
        }
    }
}

/// `{"cuda": {"name": "CUDA SDK", "version": "13.0.2"}, ...}`
fn read_version_json(root: &Path, errors: &mut Vec<String>) -> Option<String> {
    let text = read_small(&root.join("version.json"), errors)?;
    let parsed = parse_version_json(&text);
    if let Err(why) = &parsed {
        errors.push(format!("version.json: {why}"));
    }
    parsed.ok()
}

pub(crate) fn parse_version_json(text: &str) -> Result<String, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON ({e})"))?;
    let version = value
        .get("cuda")
        .and_then(|c| c.get("version"))
        .and_then(|v| v.as_str())
        .ok_or("no cuda.version string")?;
    parse_version_parts(version)
        .ok_or_else(|| format!("cuda.version {version:?} is not a version"))?;
    Ok(version.to_string())
}

/// "CUDA Version 10.2.89"
fn read_version_txt(root: &Path, errors: &mut Vec<String>) -> Option<String> {
    let text = read_small(&root.join("version.txt"), errors)?;
    let found = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("CUDA Version "))
        .map(str::trim);
    match found.filter(|v| parse_version_parts(v).is_some()) {
        Some(v) => Some(v.to_string()),
        None => {
            errors.push("version.txt: no \"CUDA Version X.Y\" line".to_string());
            None
        }
    }
}

/// `#define CUDA_VERSION 13000` in include/cuda.h: major.minor without starting anything.
/// Package-manager installs (the NVIDIA container images) often ship no version.json.
fn read_cuda_h(root: &Path) -> Option<String> {
    let file = fs::File::open(root.join("include/cuda.h")).ok()?;
    let mut head = Vec::new();
    // The define sits near the top of a header of about a megabyte.
    file.take(CUDA_H_HEAD).read_to_end(&mut head).ok()?;
    parse_cuda_h(&String::from_utf8_lossy(&head))
}

pub(crate) fn parse_cuda_h(text: &str) -> Option<String> {
    let value = text.lines().find_map(|l| {
        let rest = l
            .trim_start()
            .strip_prefix("#define")?
            .trim_start()
            .strip_prefix("CUDA_VERSION")?;
        rest.starts_with([' ', '\t']).then(|| rest.trim())
    })?;
    let n: u32 = value.parse().ok()?;
    (n >= 1000).then(|| format!("{}.{}", n / 1000, (n % 1000) / 10))
}

fn nvcc_version(nvcc: &Path, errors: &mut Vec<String>) -> Option<String> {
    let mut cmd = Command::new(nvcc);
    cmd.arg("--version");
    match super::process::run(&mut cmd, NVCC_DEADLINE, 64 * 1024) {
        Ok(out) if out.success() => {
            let v = parse_nvcc_version(&out.stdout_text());
            if v.is_none() {
                errors.push("nvcc --version: no \"release X.Y\" in its output".to_string());
            }
            v
        }
        Ok(out) => {
            errors.push(format!("nvcc --version: {}", out.describe_end()));
            None
        }
        Err(e) => {
            errors.push(format!("nvcc --version: {e}"));
            None
        }
    }
}

/// "Cuda compilation tools, release 12.4, V12.4.131" -> "12.4.131" (or "12.4" without the V part).
pub(crate) fn parse_nvcc_version(output: &str) -> Option<String> {
    let line = output.lines().find(|l| l.contains("release "))?;
    let after = &line[line.find("release ")? + "release ".len()..];
    let release = after.split([',', ' ']).next()?.trim();
    parse_version_parts(release)?;
    let full = after
        .split(", V")
        .nth(1)
        .map(|v| v.split_whitespace().next().unwrap_or(""))
        .filter(|v| parse_version_parts(v).is_some() && v.starts_with(release));
    Some(full.unwrap_or(release).to_string())
}

/// Version in a toolkit folder's name: ".../cuda-12.4", "C:\...\CUDA\v12.4". Both separators are
/// understood on every OS, because facts recorded on Windows are judged elsewhere.
pub fn folder_version(root: &str) -> Option<String> {
    let name = root
        .trim_end_matches(['/', '\\'])
        .rsplit(['/', '\\'])
        .next()?;
    let version = name
        .strip_prefix("cuda-")
        .or_else(|| name.strip_prefix('v'))?;
    parse_version_parts(version)?;
    Some(version.to_string())
}

/// "13.0.2" -> "13.0"; None for a version without a minor.
pub fn version_short(version: &str) -> Option<String> {
    let mut parts = version.split('.');
    let (major, minor) = (parts.next()?, parts.next()?);
    parse_version_parts(&format!("{major}.{minor}"))?;
    Some(format!("{major}.{minor}"))
}

/// Numeric dot-separated parts, 1 to 4 of them; None for anything else.
fn parse_version_parts(text: &str) -> Option<Vec<u32>> {
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let parts: Option<Vec<u32>> = text
        .split('.')
        .map(|p| p.parse().ok().filter(|_| digits(p)))
        .collect();
    parts.filter(|p| (1..=4).contains(&p.len()))
}

fn selected<'a>(found: &'a [Found], selector: &str) -> Option<&'a Found> {
    found
        .iter()
        .find(|f| f.toolkit.found_by.iter().any(|b| b == selector))
}

/// The selectors that are set name toolkits of different major.minor versions.
fn selectors_disagree(facts: &ToolkitFacts) -> bool {
    let shorts: Vec<String> = [
        &facts.cuda_home_version,
        &facts.cuda_path_version,
        &facts.path_version,
    ]
    .into_iter()
    .flatten()
    .filter_map(|v| version_short(v).or_else(|| Some(v.clone())))
    .collect();
    shorts.windows(2).any(|w| w[0] != w[1])
}

fn loader_view(ctx: &ProbeContext) -> LoaderView {
    let mut view = LoaderView::default();
    for &soname in RUNTIME_SONAMES {
        match loader::resolve(ctx, soname).path {
            Some(path) => {
                view.resolved
                    .insert(soname.to_string(), path.to_string_lossy().into_owned());
            }
            None => view.missing.push(soname.to_string()),
        }
    }
    view
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::ProbeStatus;
    use std::time::Instant;

    fn ctx(root: &Path, profile: Profile, env: &[(&str, String)]) -> ProbeContext {
        ProbeContext {
            profile,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            fs_root: root.to_path_buf(),
        }
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn version_json(version: &str) -> String {
        format!(
            r#"{{"cuda": {{"name": "CUDA SDK", "version": "{version}"}}, "cuda_cudart": {{"version": "x"}}}}"#
        )
    }

    #[cfg(unix)]
    fn fake_nvcc(root: &Path, script: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let nvcc = root.join("bin/nvcc");
        write(&nvcc, &format!("#!/bin/sh\n{script}\n"));
        fs::set_permissions(&nvcc, fs::Permissions::from_mode(0o755)).unwrap();
        nvcc
    }

    fn install<'a>(facts: &'a ToolkitFacts, version: &str) -> &'a Toolkit {
        facts
            .installs
            .iter()
            .find(|t| t.version.as_deref() == Some(version))
            .unwrap_or_else(|| panic!("no {version} in {:#?}", facts.installs))
    }

    /// /usr/local/cuda-12.4 and cuda-13.0 under a fixture root, with cuda -> cuda-13.0.
    #[cfg(unix)]
    fn two_toolkits() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let local = tmp.path().join("usr/local");
        write(
            &local.join("cuda-12.4/version.json"),
            &version_json("12.4.131"),
        );
        write(
            &local.join("cuda-13.0/version.json"),
            &version_json("13.0.2"),
        );
        fake_nvcc(&local.join("cuda-13.0"), "exit 1");
        std::os::unix::fs::symlink("cuda-13.0", local.join("cuda")).unwrap();
        std::os::unix::fs::symlink("cuda-13.0", local.join("cuda-13")).unwrap();
        tmp
    }

    #[cfg(unix)]
    #[test]
    fn two_toolkits_and_a_symlink_give_two_entries() {
        let tmp = two_toolkits();
        let path = format!(
            "{}:/usr/bin",
            tmp.path().join("usr/local/cuda/bin").display()
        );
        let probed = probe(&ctx(tmp.path(), Profile::Quick, &[("PATH", path)]));
        assert_eq!(probed.status, ProbeStatus::Ok);
        let facts = probed.data;
        assert_eq!(facts.installs.len(), 2, "{:#?}", facts.installs);
        let new = install(&facts, "13.0.2");
        assert_eq!(new.found_by, vec!["path", "default_location"]);
        assert_eq!(new.version_short.as_deref(), Some("13.0"));
        assert_eq!(new.major, Some(13));
        assert_eq!(new.version_source.as_deref(), Some("version.json"));
        assert!(new.root.ends_with("/usr/local/cuda-13.0"), "{}", new.root);
        assert!(new
            .nvcc
            .as_deref()
            .is_some_and(|n| n.ends_with("cuda-13.0/bin/nvcc")));
        assert_eq!(new.error, None);
        let old = install(&facts, "12.4.131");
        assert_eq!(old.root, "/usr/local/cuda-12.4");
        assert_eq!(old.found_by, vec!["default_location"]);
        assert_eq!(old.nvcc, None);

        assert!(facts
            .path_nvcc
            .as_deref()
            .is_some_and(|p| p.ends_with("usr/local/cuda/bin/nvcc")));
        assert_eq!(facts.path_root.as_deref(), Some(new.root.as_str()));
        assert_eq!(facts.path_version.as_deref(), Some("13.0.2"));
        assert!(!facts.selectors_disagree);
    }

    #[cfg(unix)]
    #[test]
    fn default_symlinks_alone_are_named_by_their_real_folder() {
        let tmp = two_toolkits();
        let facts = probe(&ctx(tmp.path(), Profile::Quick, &[])).data;
        let roots: Vec<&str> = facts.installs.iter().map(|t| t.root.as_str()).collect();
        assert_eq!(roots, vec!["/usr/local/cuda-13.0", "/usr/local/cuda-12.4"]);
        assert_eq!(facts.path_nvcc, None);
        assert_eq!(facts.path_root, None);
    }

    #[cfg(unix)]
    #[test]
    fn selectors_naming_different_versions_disagree() {
        let tmp = two_toolkits();
        let local = tmp.path().join("usr/local");
        let env = [
            ("PATH", local.join("cuda/bin").display().to_string()),
            (
                "CUDA_HOME",
                format!("{}/", local.join("cuda-12.4").display()),
            ),
            ("CUDA_PATH", local.join("cuda-13").display().to_string()),
        ];
        let facts = probe(&ctx(tmp.path(), Profile::Quick, &env)).data;
        assert_eq!(facts.installs.len(), 2);
        assert_eq!(facts.cuda_home_version.as_deref(), Some("12.4.131"));
        assert_eq!(facts.cuda_path_version.as_deref(), Some("13.0.2"));
        assert_eq!(facts.path_version.as_deref(), Some("13.0.2"));
        assert!(facts.selectors_disagree);
        assert_eq!(
            install(&facts, "12.4.131").found_by,
            vec!["cuda_home", "default_location"]
        );
        assert_eq!(
            install(&facts, "13.0.2").found_by,
            vec!["path", "cuda_path", "default_location"]
        );
    }

    #[test]
    fn garbage_version_json_is_an_entry_error_not_a_failed_probe() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            &tmp.path().join("usr/local/cuda-12.4/version.json"),
            "{\"cuda\": [garbage",
        );
        write(
            &tmp.path().join("opt/cuda/version.json"),
            r#"{"cuda": {"version": 12}}"#,
        );
        let probed = probe(&ctx(tmp.path(), Profile::Quick, &[]));
        assert_eq!(probed.status, ProbeStatus::Ok);
        let tk = &probed.data.installs[0];
        assert_eq!(tk.root, "/usr/local/cuda-12.4");
        assert!(
            tk.error
                .as_deref()
                .is_some_and(|e| e.starts_with("version.json: not valid JSON")),
            "{tk:?}"
        );
        assert_eq!(tk.version.as_deref(), Some("12.4"));
        assert_eq!(tk.version_source.as_deref(), Some("folder name"));
        let opt = &probed.data.installs[1];
        assert_eq!(opt.root, "/opt/cuda");
        assert_eq!(opt.version, None);
        let err = opt.error.as_deref().unwrap_or_default();
        assert!(err == "version.json: no cuda.version string", "{err}");
    }

    #[test]
    fn version_txt_is_read_for_old_toolkits() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            &tmp.path().join("usr/local/cuda-10.2/version.txt"),
            "CUDA Version 10.2.89\n",
        );
        let tk = &probe(&ctx(tmp.path(), Profile::Quick, &[])).data.installs[0];
        assert_eq!(tk.version.as_deref(), Some("10.2.89"));
        assert_eq!(tk.version_source.as_deref(), Some("version.txt"));
        assert_eq!(tk.major, Some(10));
    }

    #[test]
    fn a_missing_cuda_home_is_no_toolkit_and_is_named_in_the_absent_message() {
        let tmp = tempfile::tempdir().unwrap();
        let env = [
            ("CUDA_HOME", "/nonexistent/cuda-12.1".to_string()),
            ("PATH", "/nonexistent/bin".to_string()),
        ];
        let probed = probe(&ctx(tmp.path(), Profile::Standard, &env));
        assert_eq!(probed.status, ProbeStatus::Absent);
        assert!(probed.data.installs.is_empty());
        assert_eq!(probed.data.cuda_home_version, None);
        let why = probed.error.unwrap_or_default();
        assert!(
            why.starts_with("no CUDA toolkit found (looked in: nvcc on PATH, "),
            "{why}"
        );
        assert!(
            why.contains("CUDA_HOME=/nonexistent/cuda-12.1 (no such folder)"),
            "{why}"
        );
        assert!(why.contains("/usr/local/cuda-*"), "{why}");
    }

    #[test]
    fn an_env_folder_that_is_not_a_toolkit_is_listed_with_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("somewhere");
        fs::create_dir_all(&home).unwrap();
        let probed = probe(&ctx(
            tmp.path(),
            Profile::Quick,
            &[("CUDA_HOME", home.display().to_string())],
        ));
        let tk = &probed.data.installs[0];
        assert_eq!(tk.found_by, vec!["cuda_home"]);
        assert!(tk
            .error
            .as_deref()
            .is_some_and(|e| e.contains("not a CUDA toolkit folder")));
    }

    #[cfg(unix)]
    #[test]
    fn nvcc_on_path_gives_the_version_outside_the_quick_profile() {
        let tmp = tempfile::tempdir().unwrap();
        let tk_root = tmp.path().join("mytk");
        fake_nvcc(&tk_root, "echo 'nvcc: NVIDIA (R) Cuda compiler driver'\necho 'Cuda compilation tools, release 12.4, V12.4.131'");
        let env = [("PATH", tk_root.join("bin").display().to_string())];
        let facts = probe(&ctx(tmp.path(), Profile::Standard, &env)).data;
        let tk = &facts.installs[0];
        assert_eq!(tk.version.as_deref(), Some("12.4.131"));
        assert_eq!(tk.version_source.as_deref(), Some("nvcc"));
        assert_eq!(tk.found_by, vec!["path"]);
        assert_eq!(facts.path_version.as_deref(), Some("12.4.131"));

        // Quick never starts nvcc: no version source is left for a folder without a versioned name.
        let quick = probe(&ctx(tmp.path(), Profile::Quick, &env)).data;
        assert_eq!(quick.installs[0].version, None);
        assert_eq!(quick.installs[0].error, None);
    }

    #[cfg(unix)]
    #[test]
    fn quick_profile_falls_back_to_the_folder_name() {
        let tmp = tempfile::tempdir().unwrap();
        let tk_root = tmp.path().join("cuda-12.4");
        fake_nvcc(
            &tk_root,
            "echo 'Cuda compilation tools, release 99.9, V99.9.1'",
        );
        let env = [("PATH", tk_root.join("bin").display().to_string())];
        let tk = &probe(&ctx(tmp.path(), Profile::Quick, &env)).data.installs[0];
        assert_eq!(tk.version.as_deref(), Some("12.4"));
        assert_eq!(tk.version_source.as_deref(), Some("folder name"));
    }

    #[cfg(unix)]
    #[test]
    fn a_hanging_nvcc_is_cut_off_at_the_deadline() {
        let tmp = tempfile::tempdir().unwrap();
        let tk_root = tmp.path().join("cuda-12.6");
        fake_nvcc(&tk_root, "sleep 30");
        let env = [("PATH", tk_root.join("bin").display().to_string())];
        let start = Instant::now();
        let probed = probe(&ctx(tmp.path(), Profile::Full, &env));
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "took {:?}",
            start.elapsed()
        );
        let tk = &probed.data.installs[0];
        assert!(
            tk.error
                .as_deref()
                .is_some_and(|e| e.starts_with("nvcc --version: timed out")),
            "{tk:?}"
        );
        assert_eq!(tk.version.as_deref(), Some("12.6"));
        assert_eq!(probed.status, ProbeStatus::Ok);
    }

    #[test]
    fn versioned_cuda_path_variables_are_selectors_too() {
        let tmp = tempfile::tempdir().unwrap();
        let v = tmp.path().join("v12.8");
        write(&v.join("version.json"), &version_json("12.8.93"));
        let env = [
            ("CUDA_PATH_V12_8", v.display().to_string()),
            ("CUDA_PATH_VX", "/x".to_string()),
        ];
        let facts = probe(&ctx(tmp.path(), Profile::Quick, &env)).data;
        assert_eq!(facts.installs.len(), 1);
        assert_eq!(facts.installs[0].found_by, vec!["cuda_path_versioned"]);
        assert_eq!(facts.cuda_path_version, None);
        assert!(is_versioned_cuda_path_var("CUDA_PATH_V13_0"));
        assert!(!is_versioned_cuda_path_var("CUDA_PATH_V13"));
        assert!(!is_versioned_cuda_path_var("CUDA_PATH_V13_0_1"));
        assert!(!is_versioned_cuda_path_var("CUDA_PATH"));
    }

    /// CMake's FindCUDAToolkit reads CUDAToolkit_ROOT, conda and older tools CUDA_ROOT: each
    /// leads to its toolkit, and one naming no folder is recorded for judging.
    #[test]
    fn cuda_root_and_cudatoolkit_root_are_selectors_too() {
        let tmp = tempfile::tempdir().unwrap();
        let rt = tmp.path().join("rt");
        write(&rt.join("version.json"), &version_json("12.8.90"));
        let env = [
            ("CUDAToolkit_ROOT", rt.display().to_string()),
            ("CUDA_ROOT", "/nonexistent/cuda-12.9".to_string()),
        ];
        let facts = probe(&ctx(tmp.path(), Profile::Quick, &env)).data;
        assert_eq!(facts.installs.len(), 1, "{:?}", facts.installs);
        assert_eq!(facts.installs[0].found_by, vec!["cudatoolkit_root"]);
        assert_eq!(facts.installs[0].nvcc, None, "a runtime-only folder");
        assert_eq!(
            facts.selector_errors.get("CUDA_ROOT").map(String::as_str),
            Some("/nonexistent/cuda-12.9: no such folder")
        );
    }

    #[test]
    fn windows_paths_are_understood_as_data_on_any_os() {
        let win = r"C:\Program Files\NVIDIA GPU Computing Toolkit\CUDA\v13.0";
        assert_eq!(folder_version(win).as_deref(), Some("13.0"));
        assert_eq!(folder_version(&format!(r"{win}\")).as_deref(), Some("13.0"));
        assert_eq!(
            folder_version("/usr/local/cuda-12.4/").as_deref(),
            Some("12.4")
        );
        assert_eq!(folder_version("/usr/local/cuda"), None);
        assert_eq!(folder_version(r"C:\tools\vendor"), None);
        assert_eq!(nvcc_logical(win), format!(r"{win}\bin\nvcc.exe"));
        assert_eq!(trim_trailing_separators(r"C:\"), r"C:\");
        assert_eq!(trim_trailing_separators(&format!(r"{win}\")), win);

        // A Windows CUDA_PATH seen on Linux (WSL passes some variables through) is no folder here.
        let tmp = tempfile::tempdir().unwrap();
        let probed = probe(&ctx(
            tmp.path(),
            Profile::Quick,
            &[("CUDA_PATH", win.to_string())],
        ));
        if !cfg!(windows) {
            assert_eq!(probed.status, ProbeStatus::Absent);
            assert!(probed
                .error
                .unwrap_or_default()
                .contains(&format!("CUDA_PATH={win} (no such folder)")));
        }
    }

    #[test]
    fn cuda_h_gives_major_minor_when_there_is_no_version_file() {
        // The NVIDIA container images install from packages and ship no version.json.
        let tmp = tempfile::tempdir().unwrap();
        let header = "/* header */\n#ifndef __cuda_cuda_h__\n#define CUDA_VERSION 13000\n#define CUDA_VERSION_EXTRA 1\n";
        write(&tmp.path().join("opt/cuda/include/cuda.h"), header);
        let tk = &probe(&ctx(tmp.path(), Profile::Quick, &[])).data.installs[0];
        assert_eq!(tk.version.as_deref(), Some("13.0"));
        assert_eq!(tk.version_source.as_deref(), Some("cuda.h"));
        assert_eq!(tk.error, None);
        assert_eq!(
            parse_cuda_h("#define CUDA_VERSION 12040").as_deref(),
            Some("12.4")
        );
        assert_eq!(parse_cuda_h("#define CUDA_VERSION_MAJOR 12"), None);
        assert_eq!(parse_cuda_h("#define CUDA_VERSION abc"), None);
    }

    #[test]
    fn version_text_parsing() {
        assert_eq!(
            parse_nvcc_version("Cuda compilation tools, release 13.0, V13.0.88\nBuild cuda_13.0")
                .as_deref(),
            Some("13.0.88")
        );
        assert_eq!(
            parse_nvcc_version("Cuda compilation tools, release 12.4").as_deref(),
            Some("12.4")
        );
        assert_eq!(parse_nvcc_version("release x.y, Vx"), None);
        assert_eq!(parse_nvcc_version(""), None);
        assert_eq!(
            parse_version_json(&version_json("13.0.2")).as_deref(),
            Ok("13.0.2")
        );
        assert!(parse_version_json(r#"{"cuda": {"version": "+1.2"}}"#).is_err());
        assert!(parse_version_json("[]").is_err());
        assert_eq!(version_short("13.0.2").as_deref(), Some("13.0"));
        assert_eq!(version_short("13"), None);
        assert_eq!(parse_version_parts("1.2.3.4.5"), None);
        assert_eq!(parse_version_parts("12.-1"), None);
    }

    #[test]
    fn the_loader_view_lists_resolved_and_missing_runtime_libraries() {
        let tmp = tempfile::tempdir().unwrap();
        write(&tmp.path().join("usr/lib/libcudart.so.12"), "");
        let probed = probe(&ctx(tmp.path(), Profile::Quick, &[]));
        assert_eq!(probed.status, ProbeStatus::Absent);
        let view = probed.data.loader;
        assert_eq!(
            view.resolved.get("libcudart.so.12").map(String::as_str),
            Some("/usr/lib/libcudart.so.12")
        );
        assert_eq!(view.missing.len(), RUNTIME_SONAMES.len() - 1);
        assert!(!view.missing.contains(&"libcudart.so.12".to_string()));
    }

    #[cfg(unix)]
    #[test]
    fn an_unreadable_version_file_is_an_entry_error() {
        use std::os::unix::fs::PermissionsExt;
        // SAFETY: geteuid has no preconditions and touches no memory.
        if unsafe { libc::geteuid() } == 0 {
            return; // root reads any file
        }
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("usr/local/cuda-12.2/version.json");
        write(&file, &version_json("12.2.140"));
        fs::set_permissions(&file, fs::Permissions::from_mode(0o000)).unwrap();
        let tk = &probe(&ctx(tmp.path(), Profile::Quick, &[])).data.installs[0];
        assert!(
            tk.error
                .as_deref()
                .is_some_and(|e| e.starts_with("version.json: ")),
            "{tk:?}"
        );
        assert_eq!(tk.version.as_deref(), Some("12.2"));
    }
}
