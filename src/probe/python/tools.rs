//! Environments that project tools keep outside the project folder, or name from files in it:
//! Poetry, pyenv (and pyenv-virtualenv), Hatch and PDM. Each is found the way the tool itself
//! finds it, from its settings and variables, without running the tool:
//!
//! - `poetry`: a project using Poetry (`[tool.poetry]` or `poetry.lock`) has its environment in
//!   `.venv` when `virtualenvs.in-project` is true, or unset and `.venv` exists; otherwise in
//!   `virtualenvs.path` (default `{cache-dir}/virtualenvs`, cache-dir `~/.cache/pypoetry` on
//!   Linux) as `NAME-HASH-pyX.Y`: NAME the project's normalized name with shell-hostile
//!   characters replaced, HASH the first 8 characters of the URL-safe base64 of the SHA-256 of
//!   the project's real path (Poetry's `EnvManager.generate_env_name`). Settings come from
//!   `POETRY_VIRTUALENVS_IN_PROJECT`, `POETRY_VIRTUALENVS_PATH`, `POETRY_CACHE_DIR`, the
//!   project's `poetry.toml` and Poetry's `config.toml`, in that order.
//! - `pyenv`: `PYENV_VERSION`, else the nearest `.python-version` at or above the project,
//!   names versions in `$PYENV_ROOT/versions/` (default `~/.pyenv`): a Python installation
//!   ("3.12.1", or a prefix such as "3.12" resolved to the newest installed 3.12.x) or a
//!   pyenv-virtualenv environment (a link to `versions/X.Y.Z/envs/NAME`).
//! - `hatch`: a project using Hatch (`[tool.hatch]` or `hatch.toml`) keeps its environments in
//!   `{data}/env/virtual/NAME/HASH/ENV` (data `HATCH_DATA_DIR`, else `~/.local/share/hatch` on
//!   Linux; HASH as Poetry's, of the project path).
//! - `pdm`: `.pdm-python` in the project names the interpreter PDM uses.

use super::discover::{env_of_interpreter, home_dir, is_env_dir, normalize, Discovery};
use super::metadata::read_text;
use super::project_hash::short_urlsafe;
use crate::probe::ProbeContext;
use std::fs;
use std::path::{Path, PathBuf};

pub(crate) const FOUND_POETRY: &str = "poetry";
pub(crate) const FOUND_PYENV: &str = "pyenv";
pub(crate) const FOUND_HATCH: &str = "hatch";
pub(crate) const FOUND_PDM: &str = "pdm";

/// Settings files read at most this large.
const MAX_SETTINGS_FILE: u64 = 1024 * 1024;
/// Entries of a tool's environment folder looked at, and versions named, at most.
const MAX_ENTRIES: usize = 4096;
const MAX_VERSIONS: usize = 8;
/// Folders above the project searched for `.python-version`.
const MAX_PARENTS: usize = 32;

/// Run every tool's discovery for the project at `project`.
pub(crate) fn discover(ctx: &ProbeContext, project: &Path, d: &mut Discovery) {
    let pyproject = read_toml(&project.join("pyproject.toml"), d);
    poetry(ctx, project, pyproject.as_ref(), d);
    pyenv(ctx, project, d);
    hatch(ctx, project, pyproject.as_ref(), d);
    pdm(project, d);
}

fn read_toml(path: &Path, d: &mut Discovery) -> Option<toml::Table> {
    if !path.is_file() {
        return None;
    }
    let text = match read_text(path, MAX_SETTINGS_FILE, false) {
        Ok(t) => t,
        Err(e) => {
            d.errors.push(format!("could not read {e}"));
            return None;
        }
    };
    match text.parse::<toml::Table>() {
        Ok(table) => Some(table),
        Err(e) => {
            d.errors.push(format!(
                "{} is not valid TOML: {}",
                path.display(),
                e.message()
            ));
            None
        }
    }
}

/// `table.a.b.c`, when every step is a table.
fn lookup<'a>(table: &'a toml::Table, keys: &[&str]) -> Option<&'a toml::Value> {
    let (last, path) = keys.split_last()?;
    let mut here = table;
    for key in path {
        here = here.get(*key)?.as_table()?;
    }
    here.get(*last)
}

/// The project's name: `[project] name`, else `[tool.poetry] name`.
fn project_name(pyproject: &toml::Table) -> Option<String> {
    [&["project", "name"][..], &["tool", "poetry", "name"][..]]
        .iter()
        .find_map(|keys| lookup(pyproject, keys)?.as_str().map(str::to_string))
}

/// PEP 503 normalization: "My_Proj.Gpu" -> "my-proj-gpu".
pub(crate) fn normalize_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// The real path, as Python's `os.path.normcase(os.path.realpath(p))` gives it.
fn real_path_text(path: &Path) -> String {
    let real = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let text = real.to_string_lossy().into_owned();
    if cfg!(windows) {
        text.trim_start_matches(r"\\?\")
            .to_lowercase()
            .replace('/', "\\")
    } else {
        text
    }
}

// ---------------------------------------------------------------------------------------------
// Poetry

/// Poetry's name for a project's environments, before the `-pyX.Y` suffix.
pub(crate) fn poetry_env_name(name: &str, project: &Path) -> String {
    let sanitized: String = normalize_name(name)
        .chars()
        .map(|c| {
            if " $`!*@\"\\\r\n\t".contains(c) {
                '_'
            } else {
                c
            }
        })
        .take(42)
        .collect();
    format!("{sanitized}-{}", short_urlsafe(&real_path_text(project)))
}

/// Poetry's settings that place environments.
#[derive(Debug, Default)]
struct PoetrySettings {
    in_project: Option<bool>,
    virtualenvs_path: Option<String>,
    cache_dir: Option<String>,
}

impl PoetrySettings {
    /// Variables first, then the project's poetry.toml, then Poetry's config.toml.
    fn read(ctx: &ProbeContext, project: &Path, d: &mut Discovery) -> PoetrySettings {
        let mut s = PoetrySettings {
            in_project: ctx
                .nonempty_var("POETRY_VIRTUALENVS_IN_PROJECT")
                .and_then(poetry_bool),
            virtualenvs_path: ctx
                .nonempty_var("POETRY_VIRTUALENVS_PATH")
                .map(str::to_string),
            cache_dir: ctx.nonempty_var("POETRY_CACHE_DIR").map(str::to_string),
        };
        let files = [
            Some(project.join("poetry.toml")),
            poetry_config_dir(ctx).map(|d| d.join("config.toml")),
        ];
        for file in files.into_iter().flatten() {
            let Some(table) = read_toml(&file, d) else {
                continue;
            };
            let get = |keys: &[&str]| lookup(&table, keys).cloned();
            if s.in_project.is_none() {
                s.in_project = get(&["virtualenvs", "in-project"]).and_then(|v| v.as_bool());
            }
            if s.virtualenvs_path.is_none() {
                s.virtualenvs_path =
                    get(&["virtualenvs", "path"]).and_then(|v| v.as_str().map(str::to_string));
            }
            if s.cache_dir.is_none() {
                s.cache_dir = get(&["cache-dir"]).and_then(|v| v.as_str().map(str::to_string));
            }
        }
        s
    }

    fn virtualenvs(&self, ctx: &ProbeContext) -> Option<PathBuf> {
        let cache = self
            .cache_dir
            .as_ref()
            .map(PathBuf::from)
            .or_else(|| poetry_cache_dir(ctx))?;
        Some(match &self.virtualenvs_path {
            Some(p) => PathBuf::from(p.replace("{cache-dir}", &cache.to_string_lossy())),
            None => cache.join("virtualenvs"),
        })
    }
}

fn poetry_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn poetry_config_dir(ctx: &ProbeContext) -> Option<PathBuf> {
    if let Some(dir) = ctx.nonempty_var("POETRY_CONFIG_DIR") {
        return Some(PathBuf::from(dir));
    }
    platform_dir(ctx, PlatformDir::Config).map(|d| d.join("pypoetry"))
}

fn poetry_cache_dir(ctx: &ProbeContext) -> Option<PathBuf> {
    let base = platform_dir(ctx, PlatformDir::Cache)?;
    Some(if cfg!(windows) {
        base.join("pypoetry").join("Cache")
    } else {
        base.join("pypoetry")
    })
}

fn poetry(ctx: &ProbeContext, project: &Path, pyproject: Option<&toml::Table>, d: &mut Discovery) {
    let Some(pyproject) = pyproject else {
        return;
    };
    let uses_poetry =
        lookup(pyproject, &["tool", "poetry"]).is_some() || project.join("poetry.lock").is_file();
    if !uses_poetry {
        return;
    }
    let settings = PoetrySettings::read(ctx, project, d);
    let in_project = project.join(".venv");
    if settings.in_project != Some(false) && is_env_dir(&in_project) {
        d.searched.push(format!(
            "Poetry's in-project environment {}",
            in_project.display()
        ));
        let index = d.add(in_project, FOUND_POETRY);
        d.name(index, ".venv");
        return;
    }
    if settings.in_project == Some(true) {
        d.searched.push(format!(
            "Poetry's in-project environment {} (missing: `poetry install` creates it)",
            in_project.display()
        ));
        return;
    }
    let (Some(name), Some(dir)) = (project_name(pyproject), settings.virtualenvs(ctx)) else {
        return;
    };
    let env_name = poetry_env_name(&name, project);
    let prefix = format!("{env_name}-py");
    d.searched.push(format!(
        "Poetry's environments {}",
        dir.join(format!("{prefix}*")).display()
    ));
    for (path, file_name) in env_dirs(&dir, |n| n.starts_with(&prefix)) {
        let index = d.add(path, FOUND_POETRY);
        d.name(index, &file_name);
    }
}

/// The environment folders in `dir` whose names pass `keep`, sorted by name.
fn env_dirs(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<(PathBuf, String)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, String)> = entries
        .flatten()
        .take(MAX_ENTRIES)
        .map(|e| (e.path(), e.file_name().to_string_lossy().into_owned()))
        .filter(|(path, name)| keep(name) && is_env_dir(path))
        .collect();
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// pyenv

fn pyenv(ctx: &ProbeContext, project: &Path, d: &mut Discovery) {
    let Some(root) = ctx
        .nonempty_var("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| home_dir(ctx).map(|h| h.join(".pyenv")))
    else {
        return;
    };
    let (names, source) = match ctx.nonempty_var("PYENV_VERSION") {
        Some(v) => (split_versions(v), "PYENV_VERSION".to_string()),
        None => match version_file(project) {
            Some((file, text)) => (split_versions(&text), file.display().to_string()),
            None => return,
        },
    };
    let versions = root.join("versions");
    for name in names.iter().take(MAX_VERSIONS) {
        if name == "system" {
            continue;
        }
        match pyenv_version_dir(&versions, name) {
            Some(dir) => {
                d.searched.push(format!(
                    "pyenv version {name} ({source}): {}",
                    dir.display()
                ));
                // The version's own name: "3.12" resolves to "3.12.1".
                let resolved = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| name.clone());
                let index = d.add(dir, FOUND_PYENV);
                d.name(index, &resolved);
            }
            None => d.searched.push(format!(
                "pyenv version {name} ({source}): not installed in {}",
                versions.display()
            )),
        }
    }
}

/// Version names as pyenv reads them: words, `#` comments out, `:` also separating (for
/// PYENV_VERSION).
fn split_versions(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.split(|c: char| c.is_whitespace() || c == ':'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The nearest `.python-version` at or above `project`, with its text.
fn version_file(project: &Path) -> Option<(PathBuf, String)> {
    project.ancestors().take(MAX_PARENTS).find_map(|dir| {
        let file = dir.join(".python-version");
        let text = read_text(&file, MAX_SETTINGS_FILE, false).ok()?;
        Some((file, text))
    })
}

/// `versions/NAME`, else (pyenv ≥ 2.3) the newest installed version NAME is a prefix of:
/// "3.12" -> "3.12.1".
fn pyenv_version_dir(versions: &Path, name: &str) -> Option<PathBuf> {
    if name.contains(['/', '\\']) || name == ".." {
        return None;
    }
    let exact = versions.join(name);
    if exact.is_dir() {
        return Some(exact);
    }
    let prefix = format!("{name}.");
    let key = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    env_dirs_any(versions)
        .into_iter()
        .filter(|n| {
            n.strip_prefix(&prefix)
                .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || c == '.'))
        })
        .max_by_key(|n| key(n))
        .map(|n| versions.join(n))
}

fn env_dirs_any(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .take(MAX_ENTRIES)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Hatch

fn hatch(ctx: &ProbeContext, project: &Path, pyproject: Option<&toml::Table>, d: &mut Discovery) {
    let uses_hatch = pyproject.is_some_and(|p| lookup(p, &["tool", "hatch"]).is_some())
        || project.join("hatch.toml").is_file();
    if !uses_hatch {
        return;
    }
    let Some(name) = pyproject.and_then(project_name) else {
        return;
    };
    let Some(data) = ctx
        .nonempty_var("HATCH_DATA_DIR")
        .map(PathBuf::from)
        .or_else(|| platform_dir(ctx, PlatformDir::Data).map(|d| d.join("hatch")))
    else {
        return;
    };
    let name = normalize_name(&name);
    let mut checksums = vec![short_urlsafe(&project.to_string_lossy())];
    let real = short_urlsafe(&real_path_text(project));
    if !checksums.contains(&real) {
        checksums.push(real);
    }
    for checksum in checksums {
        let dir = data.join("env").join("virtual").join(&name).join(&checksum);
        d.searched
            .push(format!("Hatch's environments {}", dir.display()));
        for (path, env) in env_dirs(&dir, |n| !n.ends_with("-build")) {
            let index = d.add(path, FOUND_HATCH);
            d.name(index, &env);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PDM

fn pdm(project: &Path, d: &mut Discovery) {
    let file = project.join(".pdm-python");
    let Ok(text) = read_text(&file, MAX_SETTINGS_FILE, false) else {
        return;
    };
    let Some(line) = text.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return;
    };
    d.searched.push(file.display().to_string());
    let env = env_of_interpreter(&normalize(&project.join(line)));
    if env.is_dir() {
        d.add(env, FOUND_PDM);
    }
}

// ---------------------------------------------------------------------------------------------
// platform folders

#[derive(Clone, Copy)]
enum PlatformDir {
    Config,
    Cache,
    Data,
}

/// platformdirs' user folders, as the tools use them: XDG on Linux, ~/Library on macOS,
/// %APPDATA% / %LOCALAPPDATA% on Windows.
fn platform_dir(ctx: &ProbeContext, which: PlatformDir) -> Option<PathBuf> {
    let home = home_dir(ctx);
    if cfg!(windows) {
        let var = match which {
            PlatformDir::Config => "APPDATA",
            PlatformDir::Cache | PlatformDir::Data => "LOCALAPPDATA",
        };
        return ctx.nonempty_var(var).map(PathBuf::from);
    }
    if cfg!(target_os = "macos") {
        let sub = match which {
            PlatformDir::Config | PlatformDir::Data => "Library/Application Support",
            PlatformDir::Cache => "Library/Caches",
        };
        return home.map(|h| h.join(sub));
    }
    let (var, default) = match which {
        PlatformDir::Config => ("XDG_CONFIG_HOME", ".config"),
        PlatformDir::Cache => ("XDG_CACHE_HOME", ".cache"),
        PlatformDir::Data => ("XDG_DATA_HOME", ".local/share"),
    };
    ctx.nonempty_var(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home.map(|h| h.join(default)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized_like_poetry_and_hatch() {
        assert_eq!(normalize_name("My_Proj.Gpu"), "my-proj-gpu");
        assert_eq!(normalize_name("a__-.b"), "a-b");
        let dir = Path::new("/nonexistent/ptest/My_Proj.x");
        assert_eq!(
            poetry_env_name("My_Proj.Gpu", dir),
            "my-proj-gpu-pTNRyXtF"
                .replace("pTNRyXtF", &short_urlsafe("/nonexistent/ptest/My_Proj.x"))
        );
        let long = "x".repeat(60);
        assert!(poetry_env_name(&long, dir).starts_with(&format!("{}-", "x".repeat(42))));
    }

    #[test]
    fn pyenv_version_words() {
        assert_eq!(
            split_versions("3.12.1\n# comment\ngpu  system\n"),
            ["3.12.1", "gpu", "system"]
        );
        assert_eq!(split_versions("3.11:3.12"), ["3.11", "3.12"]);
    }
}
