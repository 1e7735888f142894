//! Python probe: every Python environment of the project and the GPU packages in each,
//! read from files.
//!
//! The static tier (the quick profile's whole Python view): [`discover`] finds the
//! environments, [`venv`] reads each one's pyvenv.cfg, interpreter and layout, and [`site`]
//! reads its site-packages. Nothing there starts Python or loads a native library, so a broken
//! environment cannot hang or crash the probe, and a project with a few environments is read in
//! a few milliseconds. Asking each interpreter (does `import torch` work, does CUDA initialise)
//! is the live tier's job ([`live`], standard and full profiles): each environment's own
//! interpreter in a child process under a deadline, all at once.
//!
//! The project folder is `GPU_DOCTOR_PROJECT_DIR` when set, else the current directory.

pub mod cache;
pub(crate) mod differences;
pub(crate) mod discover;
pub mod live;
pub(crate) mod metadata;
pub(crate) mod project_hash;
pub(crate) mod reach;
pub(crate) mod site;
pub(crate) mod tools;
pub(crate) mod venv;

use crate::facts::python::{PythonEnv, PythonFacts};
use crate::probe::{ProbeContext, Probed};
use discover::{Discovery, Found};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The variable naming the project folder (the current directory when unset).
pub const PROJECT_DIR_VAR: &str = "GPU_DOCTOR_PROJECT_DIR";
/// PATH entries compared with environment folders at most.
const MAX_PATH_ENTRIES: usize = 256;

/// Find and inspect the project's Python environments.
pub fn probe(ctx: &ProbeContext) -> Probed<PythonFacts> {
    let mut facts = PythonFacts::default();
    let project = project_dir(ctx, &mut facts.errors);
    facts.project_dir = project.as_ref().map(|p| p.to_string_lossy().into_owned());
    let project_canonical = project
        .as_deref()
        .and_then(|p| std::fs::canonicalize(p).ok());

    let discovery = discover::discover(ctx, project.as_deref());
    let Discovery {
        envs,
        active,
        editor,
        editor_env,
        searched,
        truncated,
        errors,
    } = discovery;
    facts.searched = searched;
    facts.scan_truncated = truncated;
    facts.errors.extend(errors);

    let user_site = reach::UserSite::of(ctx);
    let mut inspected: Vec<PythonEnv> = envs
        .iter()
        .map(|found| {
            inspect(
                found,
                project.as_deref(),
                project_canonical.as_deref(),
                &user_site,
            )
        })
        .collect();
    mark_path_first(ctx, &mut inspected);
    live::probe_all(ctx, &mut inspected);
    for env in &mut inspected {
        live_version_mismatch(env);
        env.static_live_differences = differences::of(env);
    }

    // Names are fixed now; keep them for the top-level pointers before sorting.
    let name_of = |i: Option<usize>| i.and_then(|i| inspected.get(i)).map(|e| e.name.clone());
    facts.active = name_of(active);
    facts.editor = editor.map(|mut e| {
        e.environment = name_of(editor_env);
        e
    });
    facts.path_first = inspected
        .iter()
        .find(|e| e.path_first)
        .map(|e| e.name.clone());
    facts.llama_cpp_lib_override = llama_override(ctx);

    // Inside the project first, by name; then the rest by path.
    inspected.sort_by(|a, b| (!a.inside_project, &a.name).cmp(&(!b.inside_project, &b.name)));
    facts.environments = inspected;

    if facts.environments.is_empty() {
        let what = format!(
            "no Python environment found (looked in: {})",
            facts.searched.join(", ")
        );
        return Probed::absent(facts, what);
    }
    Probed::ok(facts)
}

fn project_dir(ctx: &ProbeContext, errors: &mut Vec<String>) -> Option<PathBuf> {
    if let Some(dir) = ctx.nonempty_var(PROJECT_DIR_VAR) {
        let path = PathBuf::from(dir);
        if !path.is_dir() {
            errors.push(format!("{PROJECT_DIR_VAR}={dir} is not a folder"));
            return None;
        }
        return Some(discover::normalize(&absolute_from_cwd(path)));
    }
    match std::env::current_dir() {
        Ok(dir) => Some(dir),
        Err(e) => {
            errors.push(format!("the current directory cannot be read: {e}"));
            None
        }
    }
}

fn absolute_from_cwd(path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        return path;
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(&path))
        .unwrap_or(path)
}

/// Read one discovered environment's files.
fn inspect(
    found: &Found,
    project: Option<&Path>,
    project_canonical: Option<&Path>,
    user_site: &reach::UserSite,
) -> PythonEnv {
    let mut env = PythonEnv {
        path: found.path.to_string_lossy().into_owned(),
        canonical_path: found
            .canonical
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        found_by: found.found_by.clone(),
        active: found.active,
        editor: found.editor,
        tool_name: found.tool_name.clone(),
        ..PythonEnv::default()
    };
    let relative = relative_name(found, project, project_canonical);
    env.inside_project = relative.is_some();
    env.name = relative.unwrap_or_else(|| env.path.clone());

    venv::inspect(&found.path, &mut env);
    env.import_paths = reach::import_paths(&env, user_site);
    if !env.import_paths.is_empty() {
        inspect_site(&mut env);
    }
    env
}

fn inspect_site(env: &mut PythonEnv) {
    let mut errors = Vec::new();
    let sp = site::SitePackages::read(
        &env.import_paths,
        &env.layout,
        env.python_version.as_deref(),
        &mut errors,
    );
    env.errors.extend(
        errors
            .into_iter()
            .map(|e| format!("site-packages could not be listed: {e}")),
    );
    env.torch = site::torch(&sp);
    env.llama_cpp = site::llama_cpp(&sp);
    env.gpu_stacks = site::gpu_stacks(&sp);
}

/// The environment's path relative to the project, when it is inside it: ".venv", "envs/gpu".
/// Compared both as found and canonically, so a symlinked project folder still matches.
fn relative_name(
    found: &Found,
    project: Option<&Path>,
    canonical: Option<&Path>,
) -> Option<String> {
    let pairs = [
        (Some(found.path.as_path()), project),
        (found.canonical.as_deref(), canonical),
    ];
    for (env, root) in pairs {
        let (Some(env), Some(root)) = (env, root) else {
            continue;
        };
        if let Ok(rel) = env.strip_prefix(root) {
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            return Some(if parts.is_empty() {
                ".".to_string()
            } else {
                parts.join("/")
            });
        }
    }
    None
}

/// The interpreter's own answer about its version replaces the guess from its file name.
fn live_version_mismatch(env: &mut PythonEnv) {
    let Some(version) = env
        .live
        .as_ref()
        .filter(|l| l.status == "ok")
        .and_then(|l| l.python_version.clone())
    else {
        return;
    };
    env.interpreter_version_mismatch = venv::version_mismatch(env, Some(version), "live");
}

/// Mark the environment whose interpreter folder comes first on PATH: the one a bare
/// `python` runs in this shell.
fn mark_path_first(ctx: &ProbeContext, envs: &mut [PythonEnv]) {
    let Some(path_var) = ctx.var("PATH").or_else(|| ctx.var("Path")) else {
        return;
    };
    let mut bin_dirs: HashMap<PathBuf, usize> = HashMap::new();
    for (i, env) in envs.iter().enumerate() {
        let Some(dir) = Path::new(&env.python).parent() else {
            continue;
        };
        if let Ok(canonical) = std::fs::canonicalize(dir) {
            bin_dirs.entry(canonical).or_insert(i);
        }
    }
    if bin_dirs.is_empty() {
        return;
    }
    for entry in std::env::split_paths(path_var).take(MAX_PATH_ENTRIES) {
        let Ok(canonical) = std::fs::canonicalize(&entry) else {
            continue;
        };
        if let Some(&i) = bin_dirs.get(&canonical) {
            envs[i].path_first = true;
            return;
        }
    }
}

fn llama_override(ctx: &ProbeContext) -> Option<crate::facts::python::LlamaLibOverride> {
    ["LLAMA_CPP_LIB_PATH", "LLAMA_CPP_LIB"]
        .iter()
        .find_map(|var| {
            ctx.nonempty_var(var)
                .map(|value| site::lib_override(var, value))
        })
}
