//! Finding a project's Python environments without running Python.
//!
//! Sources, each recorded as a `found_by` tag on the environments it leads to:
//! - `project`: folders inside the project holding `pyvenv.cfg` or `conda-meta/`, to a bounded
//!   depth, skipping .git, node_modules, target, __pycache__ and site-packages;
//! - `virtual_env`, `conda_prefix`: the shell's active environment;
//! - `path`: the environment whose bin (Scripts) folder comes first on PATH, the one a bare
//!   `python` runs (a shell can put one there without setting VIRTUAL_ENV);
//! - `conda`: `~/.conda/environments.txt` and the `envs/` of conda, mamba and miniforge roots;
//! - `uv`: a uv project's environment (`pyproject.toml` + `uv.lock` → `.venv`, or
//!   `UV_PROJECT_ENVIRONMENT`);
//! - `editor`: VS Code's `python.defaultInterpreterPath` / `python.pythonPath` in
//!   `.vscode/settings.json` (JSON with comments and trailing commas, `${workspaceFolder}`);
//! - `config`: `[python] environments = [...]` of the configuration (`gpu-doctor.toml`, or
//!   `[tool.gpu-doctor.python]` in `pyproject.toml`; crate::config finds and reads it);
//! - `poetry`, `pyenv`, `hatch`, `pdm`: the environments those tools keep for the project
//!   (super::tools).
//!
//! Environments are de-duplicated by canonical path, so `.venv` reached through the project
//! scan, VIRTUAL_ENV and the editor is one environment with three tags. Every walk is bounded
//! (depth, folders, entries) and a folder reached twice (a symlink loop) is entered once.

use super::metadata::read_text;
use crate::facts::python::EditorInterpreter;
use crate::probe::ProbeContext;
use std::collections::{HashSet, VecDeque};
use std::fs;
use std::path::{Component, Path, PathBuf};

/// Folders below the project root that are checked for environments (the root is depth 0).
pub(crate) const MAX_DEPTH: usize = 3;
/// Folders entered at most by the project scan.
const MAX_DIRS: usize = 2_000;
/// Directory entries looked at, all folders together.
const MAX_ENTRIES: usize = 20_000;
/// Environments taken from one conda list or envs/ folder.
const MAX_CONDA_ENVS: usize = 128;
/// PATH entries looked at.
const MAX_PATH_ENTRIES: usize = 256;
/// Unreadable folders noted by the project scan, at most.
const MAX_SCAN_ERRORS: usize = 8;
/// Settings and config files larger than this are not read.
const MAX_CONFIG_FILE: u64 = 1024 * 1024;

/// Folders the project scan never enters: version control, build output, caches, and
/// site-packages (whose packages may ship test venvs of their own).
const SKIP: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    "node_modules",
    "target",
    "__pycache__",
    "site-packages",
    "dist-packages",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
];

pub(crate) const FOUND_PROJECT: &str = "project";
pub(crate) const FOUND_VIRTUAL_ENV: &str = "virtual_env";
pub(crate) const FOUND_CONDA_PREFIX: &str = "conda_prefix";
pub(crate) const FOUND_PATH: &str = "path";
pub(crate) const FOUND_CONDA: &str = "conda";
pub(crate) const FOUND_UV: &str = "uv";
pub(crate) const FOUND_EDITOR: &str = "editor";
pub(crate) const FOUND_CONFIG: &str = "config";

/// One environment folder after de-duplication.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// As first found (absolute).
    pub path: PathBuf,
    pub canonical: Option<PathBuf>,
    pub found_by: Vec<String>,
    pub active: bool,
    pub editor: bool,
    /// The name the tool that keeps it gives it (Poetry, pyenv, Hatch).
    pub tool_name: Option<String>,
}

/// Everything discovery learned.
#[derive(Debug, Default)]
pub(crate) struct Discovery {
    pub envs: Vec<Found>,
    /// Index into `envs` of the VIRTUAL_ENV (else CONDA_PREFIX) environment.
    pub active: Option<usize>,
    pub editor: Option<EditorInterpreter>,
    /// Index into `envs` of the environment the editor setting points into.
    pub editor_env: Option<usize>,
    pub searched: Vec<String>,
    pub truncated: bool,
    pub errors: Vec<String>,
}

impl Discovery {
    /// Add `path` found by `how`, merging with an environment already found at the same
    /// canonical path. Returns its index.
    pub(crate) fn add(&mut self, path: PathBuf, how: &str) -> usize {
        let canonical = fs::canonicalize(&path).ok();
        let key = canonical.clone().unwrap_or_else(|| path.clone());
        let existing = self
            .envs
            .iter()
            .position(|f| f.canonical.as_ref().unwrap_or(&f.path) == &key);
        let index = existing.unwrap_or_else(|| {
            self.envs.push(Found {
                path,
                canonical,
                found_by: Vec::new(),
                active: false,
                editor: false,
                tool_name: None,
            });
            self.envs.len() - 1
        });
        let found = &mut self.envs[index];
        if !found.found_by.iter().any(|f| f == how) {
            found.found_by.push(how.to_string());
        }
        index
    }

    /// Record the name a tool gives environment `index` (the first name given is kept).
    pub(crate) fn name(&mut self, index: usize, name: &str) {
        self.envs[index]
            .tool_name
            .get_or_insert_with(|| name.to_string());
    }
}

/// Run every discovery source for the project at `project`.
pub(crate) fn discover(ctx: &ProbeContext, project: Option<&Path>) -> Discovery {
    let mut d = Discovery::default();
    active_envs(ctx, &mut d);
    path_env(ctx, &mut d);
    if let Some(project) = project {
        scan_project(project, &mut d);
        uv_env(ctx, project, &mut d);
        super::tools::discover(ctx, project, &mut d);
        editor_env(ctx, project, &mut d);
        config_envs(ctx, project, &mut d);
    }
    conda_envs(ctx, &mut d);
    d
}

/// A folder is an environment when it holds pyvenv.cfg (venv, virtualenv, uv) or conda-meta/.
pub(crate) fn is_env_dir(dir: &Path) -> bool {
    dir.join("pyvenv.cfg").is_file() || dir.join("conda-meta").is_dir()
}

fn active_envs(ctx: &ProbeContext, d: &mut Discovery) {
    for (var, how) in [
        ("VIRTUAL_ENV", FOUND_VIRTUAL_ENV),
        ("CONDA_PREFIX", FOUND_CONDA_PREFIX),
    ] {
        let Some(value) = ctx.nonempty_var(var) else {
            continue;
        };
        d.searched.push(format!("{var}={value}"));
        let index = d.add(absolute(Path::new(value)), how);
        d.envs[index].active = true;
        d.active.get_or_insert(index);
    }
}

/// The first PATH entry that is an environment's bin or Scripts folder (or a conda root on
/// Windows, whose python.exe sits at the top).
fn path_env(ctx: &ProbeContext, d: &mut Discovery) {
    let Some(path) = ctx.var("PATH").or_else(|| ctx.var("Path")) else {
        return;
    };
    for entry in std::env::split_paths(path).take(MAX_PATH_ENTRIES) {
        if !entry.is_absolute() {
            continue;
        }
        let is_scripts = entry
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .is_some_and(|n| n == "bin" || n == "scripts");
        let env = match entry.parent() {
            Some(parent) if is_scripts => parent.to_path_buf(),
            _ => entry.clone(),
        };
        if is_env_dir(&env) {
            d.searched.push(format!("PATH entry {}", entry.display()));
            d.add(env, FOUND_PATH);
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// project scan

/// Breadth-first over the project to MAX_DEPTH, entering each real folder once.
fn scan_project(project: &Path, d: &mut Discovery) {
    d.searched
        .push(format!("{} (to depth {MAX_DEPTH})", project.display()));
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([(project.to_path_buf(), 0usize)]);
    let mut dirs = 0usize;
    let mut entries = 0usize;
    while let Some((dir, depth)) = queue.pop_front() {
        let Some(id) = folder_id(&dir) else { continue };
        if !seen.insert(id) {
            continue; // reached again through a symlink
        }
        if is_env_dir(&dir) {
            d.add(dir, FOUND_PROJECT);
            continue; // environments are not searched for nested environments
        }
        if depth >= MAX_DEPTH {
            continue;
        }
        dirs += 1;
        if dirs > MAX_DIRS {
            d.truncated = true;
            break;
        }
        let budget = MAX_ENTRIES.saturating_sub(entries);
        let children = subfolders(&dir, budget, &mut entries, &mut d.errors);
        if entries >= MAX_ENTRIES {
            d.truncated = true;
        }
        queue.extend(children.into_iter().map(|c| (c, depth + 1)));
    }
}

/// The subfolders of `dir` worth entering, sorted by name, reading at most `budget` entries.
/// A folder that cannot be read (no permission) may hide an environment: it is noted in
/// `errors`, a few at most.
fn subfolders(
    dir: &Path,
    budget: usize,
    entries: &mut usize,
    errors: &mut Vec<String>,
) -> Vec<PathBuf> {
    let read = match fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound && errors.len() < MAX_SCAN_ERRORS {
                errors.push(format!("could not read the folder {}: {e}", dir.display()));
            }
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for entry in read.flatten().take(budget) {
        *entries += 1;
        let name = entry.file_name();
        if SKIP.iter().any(|s| name == *s) {
            continue;
        }
        let is_dir = match entry.file_type() {
            Ok(t) if t.is_dir() => true,
            // A symlink to a folder (uv may make .venv one) is followed; loops are caught by
            // the folder identity check.
            Ok(t) if t.is_symlink() => entry.path().is_dir(),
            _ => false,
        };
        if is_dir {
            out.push(entry.path());
        }
    }
    out.sort();
    out
}

/// Identity of a folder, the same whichever path reaches it.
#[cfg(unix)]
fn folder_id(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(dir).ok()?;
    meta.is_dir().then(|| (meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn folder_id(dir: &Path) -> Option<PathBuf> {
    let canonical = fs::canonicalize(dir).ok()?;
    canonical.is_dir().then_some(canonical)
}

// ---------------------------------------------------------------------------------------------
// uv

/// A uv project (pyproject.toml and uv.lock) keeps its environment in `.venv`, or where
/// UV_PROJECT_ENVIRONMENT says (relative to the project when not absolute).
fn uv_env(ctx: &ProbeContext, project: &Path, d: &mut Discovery) {
    if !(project.join("pyproject.toml").is_file() && project.join("uv.lock").is_file()) {
        return;
    }
    let env = match ctx.nonempty_var("UV_PROJECT_ENVIRONMENT") {
        Some(v) => project.join(v),
        None => project.join(".venv"),
    };
    if env.is_dir() {
        d.searched
            .push(format!("uv project environment {}", env.display()));
        d.add(env, FOUND_UV);
    } else {
        d.searched.push(format!(
            "uv project environment {} (missing: `uv sync` creates it)",
            env.display()
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// editor

const EDITOR_KEYS: &[&str] = &["python.defaultInterpreterPath", "python.pythonPath"];

fn editor_env(ctx: &ProbeContext, project: &Path, d: &mut Discovery) {
    let file = project.join(".vscode").join("settings.json");
    if !file.is_file() {
        return;
    }
    d.searched.push(file.display().to_string());
    let text = match read_text(&file, MAX_CONFIG_FILE, false) {
        Ok(t) => t,
        Err(e) => {
            d.errors.push(format!("could not read {e}"));
            return;
        }
    };
    let value: serde_json::Value = match serde_json::from_str(&strip_jsonc(&text)) {
        Ok(v) => v,
        Err(e) => {
            d.errors
                .push(format!("{} is not valid JSON: {e}", file.display()));
            return;
        }
    };
    let Some((key, raw)) = EDITOR_KEYS
        .iter()
        .find_map(|k| value.get(*k).and_then(|v| v.as_str()).map(|v| (*k, v)))
    else {
        return;
    };
    let mut editor = EditorInterpreter {
        settings_file: file.to_string_lossy().into_owned(),
        key: key.to_string(),
        value: raw.to_string(),
        ..EditorInterpreter::default()
    };
    if let Some(path) = resolve_editor_path(ctx, project, raw) {
        editor.exists = path.exists();
        editor.resolved = Some(path.to_string_lossy().into_owned());
        let env_dir = env_of_interpreter(&path);
        if env_dir.is_dir() {
            let index = d.add(env_dir, FOUND_EDITOR);
            d.envs[index].editor = true;
            d.editor_env = Some(index);
        }
    }
    d.editor = Some(editor);
}

/// Resolve VS Code variables and make the path absolute. None when it cannot name a path on
/// this machine (an unknown variable, a Windows drive path read on Linux, a bare "python").
pub(crate) fn resolve_editor_path(
    ctx: &ProbeContext,
    project: &Path,
    raw: &str,
) -> Option<PathBuf> {
    let folder = project.to_string_lossy();
    let basename = project
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let home = home_dir(ctx).map(|h| h.to_string_lossy().into_owned());
    let mut text = raw
        .replace("${workspaceFolder}", &folder)
        .replace("${workspaceRoot}", &folder)
        .replace("${workspaceFolderBasename}", &basename);
    if let Some(home) = &home {
        text = text.replace("${userHome}", home);
        if let Some(rest) = text.strip_prefix('~') {
            if rest.is_empty() || rest.starts_with(['/', '\\']) {
                text = format!("{home}{rest}");
            }
        }
    }
    text = resolve_env_vars(ctx, &text)?;
    if text.contains("${") || super::venv::is_foreign_path(&text) {
        return None;
    }
    if !cfg!(windows) {
        // Settings written on Windows use backslashes; on this host they separate folders.
        text = text.replace('\\', "/");
    }
    let path = PathBuf::from(&text);
    if path.components().count() == 1 && !text.starts_with(['/', '.']) {
        return None; // "python": a command looked up on PATH, not a path
    }
    Some(normalize(&project.join(path)))
}

/// `${env:NAME}` from the context's environment; None when a variable is unset.
fn resolve_env_vars(ctx: &ProbeContext, text: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${env:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 6..];
        let end = after.find('}')?;
        out.push_str(ctx.var(&after[..end])?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// The environment folder an interpreter path belongs to: `…/env/bin/python` and
/// `…\env\Scripts\python.exe` -> env; `…\env\python.exe` (conda on Windows) -> env; a folder
/// is itself.
pub(crate) fn env_of_interpreter(path: &Path) -> PathBuf {
    if path.is_dir() {
        return path.to_path_buf();
    }
    let parent = path.parent().unwrap_or(path);
    let in_scripts = parent
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|n| n == "bin" || n == "scripts");
    if in_scripts {
        parent.parent().unwrap_or(parent).to_path_buf()
    } else {
        parent.to_path_buf()
    }
}

/// JSON with comments (`//`, `/* */`) and trailing commas, as VS Code writes settings, turned
/// into plain JSON. Strings are copied untouched (a `//` inside a path stays); comments become
/// spaces so serde_json's line and column numbers still point at the original text.
pub(crate) fn strip_jsonc(text: &str) -> String {
    let without_comments = strip_comments(text);
    strip_trailing_commas(&without_comments)
}

fn strip_comments(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut in_string = false;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if in_string {
            out.push(c);
            if c == '\\' {
                if let Some(n) = next {
                    out.push(n);
                    i += 1;
                }
            } else if c == '"' {
                in_string = false;
            }
            i += 1;
        } else if c == '"' {
            in_string = true;
            out.push(c);
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            out.push_str("  ");
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                out.push(if chars[i] == '\n' { '\n' } else { ' ' });
                i += 1;
            }
            // The closing "*/", when there is one.
            let close = (i < chars.len()) as usize * 2;
            out.push_str(&" ".repeat(close));
            i += close;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Drop a `,` that is followed (after whitespace) by `}` or `]`. Comments are gone already.
fn strip_trailing_commas(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if in_string {
            out.push(c);
            if c == '\\' {
                if let Some(&n) = chars.get(i + 1) {
                    out.push(n);
                    i += 1;
                }
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if c == ',' {
            let next = chars[i + 1..].iter().find(|ch| !ch.is_whitespace());
            out.push(if matches!(next, Some('}' | ']')) {
                ' '
            } else {
                ','
            });
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// config

/// `environments = [...]` under `[python]` of the run's configuration (gpu-doctor.toml, or
/// `[tool.gpu-doctor.python]` of pyproject.toml), as crate::config reads it: the file the
/// command line chose, else the nearest one at or above the project. Relative paths are
/// relative to the configuration's folder. Named environments are kept even when missing: the
/// user asked about them.
fn config_envs(ctx: &ProbeContext, project: &Path, d: &mut Discovery) {
    let config = match crate::config::for_probe(ctx, project) {
        Ok(Some(config)) => config,
        Ok(None) => return,
        Err(e) => {
            d.errors.push(e);
            return;
        }
    };
    let Some(list) = &config.python_environments else {
        return;
    };
    d.searched
        .push(format!("{} environments", config.path.display()));
    for path in list.iter().take(MAX_CONDA_ENVS) {
        d.add(normalize(path), FOUND_CONFIG);
    }
}

// ---------------------------------------------------------------------------------------------
// conda and mamba

fn conda_envs(ctx: &ProbeContext, d: &mut Discovery) {
    let home = home_dir(ctx);
    if let Some(home) = &home {
        let list = home.join(".conda").join("environments.txt");
        if list.is_file() {
            d.searched.push(list.display().to_string());
            if let Ok(text) = read_text(&list, MAX_CONFIG_FILE, false) {
                let listed = text.lines().map(str::trim).filter(|l| !l.is_empty());
                for line in listed.take(MAX_CONDA_ENVS) {
                    let path = PathBuf::from(line);
                    // environments.txt keeps entries of deleted environments: skip those.
                    if path.is_absolute() && is_env_dir(&path) {
                        d.add(path, FOUND_CONDA);
                    }
                }
            }
        }
    }
    for root in conda_roots(ctx, home.as_deref()) {
        let envs = root.join("envs");
        let Ok(entries) = fs::read_dir(&envs) else {
            continue;
        };
        d.searched.push(envs.display().to_string());
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .take(MAX_CONDA_ENVS)
            .map(|e| e.path())
            .filter(|p| is_env_dir(p))
            .collect();
        dirs.sort();
        for dir in dirs {
            d.add(dir, FOUND_CONDA);
        }
    }
}

/// Conda and mamba installation roots: CONDA_EXE's (…/bin/conda, …\Scripts\conda.exe,
/// …/condabin/conda), MAMBA_ROOT_PREFIX, and the default install folders in the home folder.
fn conda_roots(ctx: &ProbeContext, home: Option<&Path>) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Some(exe) = ctx.nonempty_var("CONDA_EXE") {
        if let Some(root) = Path::new(exe).parent().and_then(Path::parent) {
            roots.push(root.to_path_buf());
        }
    }
    if let Some(root) = ctx.nonempty_var("MAMBA_ROOT_PREFIX") {
        roots.push(PathBuf::from(root));
    }
    if let Some(home) = home {
        for name in [
            "miniconda3",
            "anaconda3",
            "miniforge3",
            "mambaforge",
            "micromamba",
        ] {
            roots.push(home.join(name));
        }
    }
    let mut seen = HashSet::new();
    roots.retain(|r| seen.insert(r.clone()));
    roots
}

pub(crate) fn home_dir(ctx: &ProbeContext) -> Option<PathBuf> {
    ctx.nonempty_var("HOME")
        .or_else(|| ctx.nonempty_var("USERPROFILE"))
        .map(PathBuf::from)
}

// ---------------------------------------------------------------------------------------------
// paths

/// `path` made absolute against the current directory (environment variables may be relative).
fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return normalize(path);
    }
    match std::env::current_dir() {
        Ok(cwd) => normalize(&cwd.join(path)),
        Err(_) => path.to_path_buf(),
    }
}

/// Remove `.` and resolve `..` lexically (no filesystem access, symlinks kept).
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for comp in path.components() {
        match comp {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Profile;
    use std::collections::BTreeMap;

    fn ctx(env: &[(&str, &str)]) -> ProbeContext {
        ProbeContext {
            profile: Profile::Quick,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            fs_root: PathBuf::from("/"),
        }
    }

    #[test]
    fn jsonc_comments_and_trailing_commas() {
        let text = r#"{
  // the interpreter
  "python.defaultInterpreterPath": "${workspaceFolder}/.venv/bin/python", /* inline */
  "url": "http://example.com/a//b", // a comment after a string with slashes
  "quote": "say \"hi\" // not a comment",
  "list": [1, 2, ],
  /* multi
     line */
  "last": {"a": 1,},
}"#;
        let clean = strip_jsonc(text);
        let v: serde_json::Value = serde_json::from_str(&clean).unwrap();
        assert_eq!(v["url"], "http://example.com/a//b");
        assert_eq!(v["quote"], "say \"hi\" // not a comment");
        assert_eq!(v["list"], serde_json::json!([1, 2]));
        assert_eq!(
            v["python.defaultInterpreterPath"],
            "${workspaceFolder}/.venv/bin/python"
        );
        // Line numbers survive: the stripped text has as many lines.
        assert_eq!(clean.lines().count(), text.lines().count());
    }

    #[test]
    fn jsonc_survives_unterminated_input() {
        for bad in [
            "/* never closed",
            "\"open string",
            "{\"a\": 1, // x",
            "\\",
            "/",
        ] {
            let _ = strip_jsonc(bad);
        }
        assert_eq!(strip_jsonc("[1,]"), "[1 ]");
    }

    #[test]
    fn editor_paths_resolve() {
        let c = ctx(&[("HOME", "/home/me"), ("ENVS", "/srv/envs")]);
        let project = Path::new("/work/proj");
        let r = |raw| resolve_editor_path(&c, project, raw);
        assert_eq!(
            r("${workspaceFolder}/.venv/bin/python"),
            Some(PathBuf::from("/work/proj/.venv/bin/python"))
        );
        assert_eq!(
            r(".venv310/bin/python"),
            Some(PathBuf::from("/work/proj/.venv310/bin/python"))
        );
        assert_eq!(
            r("~/envs/x/bin/python"),
            Some(PathBuf::from("/home/me/envs/x/bin/python"))
        );
        assert_eq!(r("${env:ENVS}/gpu"), Some(PathBuf::from("/srv/envs/gpu")));
        assert_eq!(r("${env:UNSET}/gpu"), None);
        assert_eq!(r("python"), None);
        if !cfg!(windows) {
            assert_eq!(
                r("${workspaceFolder}\\.venv\\Scripts\\python.exe"),
                Some(PathBuf::from("/work/proj/.venv/Scripts/python.exe"))
            );
            assert_eq!(r("C:\\Python313\\python.exe"), None);
        }
        assert_eq!(
            r("${workspaceFolder}/../other/.venv"),
            Some(PathBuf::from("/work/other/.venv"))
        );
    }

    #[test]
    fn interpreter_paths_map_to_their_environment() {
        let e = |p: &str| env_of_interpreter(Path::new(p));
        assert_eq!(e("/p/.venv/bin/python"), PathBuf::from("/p/.venv"));
        assert_eq!(e("/p/.venv/Scripts/python.exe"), PathBuf::from("/p/.venv"));
        assert_eq!(e("/p/conda/python.exe"), PathBuf::from("/p/conda"));
    }
}
