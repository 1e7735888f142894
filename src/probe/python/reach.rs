//! The folders an environment's interpreter imports packages from, read from files the way
//! CPython's `site.py` builds sys.path, without running Python.
//!
//! In a venv, `site.py` adds the environment's own site-packages, then the user's
//! site-packages (only when pyvenv.cfg says `include-system-site-packages = true`), then the
//! base installation's site-packages (same condition). Outside a venv (conda, a system prefix)
//! the user's site-packages comes first. Each of those folders has its `.pth` files read in
//! name order: a line that is an existing folder is appended to sys.path, an `import` line is
//! run (not here: only setuptools' editable finders are understood, by reading their mapping).
//! Editable finders sit on sys.meta_path after the path-based finder, so the folders they map
//! to come last.

use super::discover::normalize;
use super::metadata::{read_text, MAX_SMALL_FILE};
use super::venv::LAYOUT_WINDOWS;
use crate::facts::python::{ImportPath, PythonEnv};
use crate::probe::ProbeContext;
use std::fs;
use std::path::{Path, PathBuf};

/// .pth files read per site folder at most, and lines per file.
const MAX_PTH_FILES: usize = 256;
const MAX_PTH_LINES: usize = 1024;
/// pyvenv.cfg `home` links followed at most (a venv made from another venv's interpreter).
const MAX_BASE_HOPS: usize = 4;

pub(crate) const OWN: &str = "site-packages";
pub(crate) const PTH: &str = "pth";
pub(crate) const USER: &str = "user-site";
pub(crate) const BASE: &str = "base-site-packages";
pub(crate) const EDITABLE: &str = "editable";

/// Where the user's site-packages is, from the variables `site.py` reads.
#[derive(Debug, Clone, Default)]
pub(crate) struct UserSite {
    /// PYTHONUSERBASE, else ~/.local; None without a home folder.
    base: Option<PathBuf>,
    /// PYTHONNOUSERSITE is set.
    disabled: bool,
}

impl UserSite {
    pub fn of(ctx: &ProbeContext) -> UserSite {
        let base = ctx
            .nonempty_var("PYTHONUSERBASE")
            .map(PathBuf::from)
            .or_else(|| {
                ctx.nonempty_var("HOME")
                    .map(|h| Path::new(h).join(".local"))
            });
        UserSite {
            base,
            disabled: ctx.nonempty_var("PYTHONNOUSERSITE").is_some(),
        }
    }
}

/// One package an editable finder maps, to the folder that holds it.
#[derive(Debug, Clone)]
struct Mapped {
    package: String,
    folder: PathBuf,
    finder: PathBuf,
}

/// The import paths of `env`, in sys.path order, plus the packages editable finders map.
pub(crate) fn import_paths(env: &PythonEnv, user: &UserSite) -> Vec<ImportPath> {
    let mut paths = Vec::new();
    let mut mapped = Vec::new();
    // An interpreter of another version than pyvenv.cfg's reads its own version's folder.
    let own = if env.interpreter_version_mismatch.is_some() {
        super::venv::running_site_packages(env)
    } else {
        env.site_packages
            .as_deref()
            .filter(|_| env.site_packages_exists)
            .map(PathBuf::from)
    };
    let cfg = env.pyvenv_cfg.as_ref();
    let sees_base = cfg.and_then(|c| c.include_system_site_packages) == Some(true);
    let user_site = user_site(env, user).filter(|_| cfg.is_none() || sees_base);
    let mut site_dirs: Vec<(PathBuf, &str, Option<String>)> = Vec::new();
    if cfg.is_some() {
        site_dirs.extend(own.map(|d| (d, OWN, None)));
        site_dirs.extend(user_site.map(|d| (d, USER, None)));
        if sees_base {
            let via = Path::new(&env.path).join("pyvenv.cfg");
            for dir in base_site_dirs(env) {
                site_dirs.push((dir, BASE, Some(via.to_string_lossy().into_owned())));
            }
        }
    } else {
        site_dirs.extend(user_site.map(|d| (d, USER, None)));
        site_dirs.extend(own.map(|d| (d, OWN, None)));
    }
    for (dir, reached_by, via) in site_dirs {
        if !dir.is_dir() || contains(&paths, &dir) {
            continue;
        }
        paths.push(ImportPath {
            path: dir.to_string_lossy().into_owned(),
            reached_by: reached_by.into(),
            via,
            packages: Vec::new(),
        });
        read_pth_files(&dir, &mut paths, &mut mapped);
    }
    for m in mapped {
        paths.push(ImportPath {
            path: m.folder.to_string_lossy().into_owned(),
            reached_by: EDITABLE.into(),
            via: Some(m.finder.to_string_lossy().into_owned()),
            packages: vec![m.package],
        });
    }
    paths
}

fn contains(paths: &[ImportPath], dir: &Path) -> bool {
    paths.iter().any(|p| Path::new(&p.path) == dir)
}

/// ~/.local/lib/pythonX.Y/site-packages (POSIX layouts only: a Windows environment read here
/// has no user folder of this machine).
fn user_site(env: &PythonEnv, user: &UserSite) -> Option<PathBuf> {
    if user.disabled || env.layout == LAYOUT_WINDOWS {
        return None;
    }
    let xy = major_minor(env.python_version.as_deref()?)?;
    Some(
        user.base
            .as_ref()?
            .join("lib")
            .join(format!("python{xy}"))
            .join("site-packages"),
    )
}

fn major_minor(version: &str) -> Option<String> {
    let mut parts = version.split('.');
    Some(format!("{}.{}", parts.next()?, parts.next()?))
}

/// The base installation's site-packages folders that exist, in site.py's order. The base
/// prefix is found from pyvenv.cfg's `home` as CPython does, by looking upward for the
/// standard library; a `home` inside another venv leads on to that venv's own base.
pub(crate) fn base_site_dirs(env: &PythonEnv) -> Vec<PathBuf> {
    let Some(home) = env.pyvenv_cfg.as_ref().and_then(|c| c.home.clone()) else {
        return Vec::new();
    };
    if home.is_empty() || super::venv::is_foreign_path(&home) {
        return Vec::new();
    }
    let Some(xy) = env.python_version.as_deref().and_then(major_minor) else {
        return Vec::new();
    };
    let Some(prefix) = base_prefix(Path::new(&home), &xy, &env.layout) else {
        return Vec::new();
    };
    let py = format!("python{xy}");
    let candidates = if env.layout == LAYOUT_WINDOWS {
        vec![prefix.join("Lib").join("site-packages")]
    } else {
        vec![
            prefix.join("lib64").join(&py).join("site-packages"),
            prefix.join("lib").join(&py).join("site-packages"),
            // Debian's and Ubuntu's system Python.
            prefix.join("local/lib").join(&py).join("dist-packages"),
            prefix.join("lib/python3/dist-packages"),
            prefix.join("lib").join(&py).join("dist-packages"),
        ]
    };
    candidates.into_iter().filter(|d| d.is_dir()).collect()
}

fn base_prefix(home: &Path, xy: &str, layout: &str) -> Option<PathBuf> {
    let mut home = home.to_path_buf();
    for _ in 0..MAX_BASE_HOPS {
        if layout == LAYOUT_WINDOWS {
            return Some(home);
        }
        let landmark = Path::new("lib").join(format!("python{xy}")).join("os.py");
        if let Some(prefix) = home
            .ancestors()
            .take(3)
            .find(|d| d.join(&landmark).exists())
        {
            return Some(prefix.to_path_buf());
        }
        // `home` is a venv's bin folder: that venv's interpreter runs from its own base.
        let parent = home.parent()?;
        let cfg = parent.join("pyvenv.cfg");
        let text = read_text(&cfg, MAX_SMALL_FILE, false).ok()?;
        home = PathBuf::from(super::venv::parse_pyvenv_cfg(&text).home?);
    }
    None
}

/// site.addpackage for every .pth file of `site`: existing folders named by path lines are
/// appended; `import` lines of setuptools' editable installs have their finder's mapping read.
fn read_pth_files(site: &Path, paths: &mut Vec<ImportPath>, mapped: &mut Vec<Mapped>) {
    let Ok(entries) = fs::read_dir(site) else {
        return;
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pth") && !n.starts_with('.'))
        .collect();
    names.sort();
    for name in names.into_iter().take(MAX_PTH_FILES) {
        let file = site.join(&name);
        let Ok(text) = read_text(&file, MAX_SMALL_FILE, false) else {
            continue;
        };
        for line in text.lines().take(MAX_PTH_LINES) {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if line.starts_with("import ") || line.starts_with("import\t") {
                mapped.extend(editable_finder(site, line));
                continue;
            }
            let dir = normalize(&site.join(line.trim_end()));
            if dir.exists() && !contains(paths, &dir) {
                paths.push(ImportPath {
                    path: dir.to_string_lossy().into_owned(),
                    reached_by: PTH.into(),
                    via: Some(file.to_string_lossy().into_owned()),
                    packages: Vec::new(),
                });
            }
        }
    }
}

/// `import __editable___NAME_finder; __editable___NAME_finder.install()`: the packages that
/// finder's MAPPING (a dict literal of package name -> folder) maps, each to the folder that
/// holds it.
fn editable_finder(site: &Path, line: &str) -> Vec<Mapped> {
    let Some(module) = line
        .strip_prefix("import")
        .and_then(|rest| rest.split([';', ',']).next())
        .map(str::trim)
        .filter(|m| m.starts_with("__editable__") && m.ends_with("_finder"))
    else {
        return Vec::new();
    };
    let finder = site.join(format!("{module}.py"));
    let Ok(text) = read_text(&finder, MAX_SMALL_FILE, false) else {
        return Vec::new();
    };
    let Some(mapping) = text
        .lines()
        .find(|l| l.starts_with("MAPPING"))
        .and_then(|l| l.split_once('='))
        .map(|(_, dict)| dict)
    else {
        return Vec::new();
    };
    string_pairs(mapping)
        .into_iter()
        .filter_map(|(package, target)| {
            let target = PathBuf::from(target);
            Some(Mapped {
                package,
                folder: target.parent()?.to_path_buf(),
                finder: finder.clone(),
            })
        })
        .collect()
}

/// `{'a': '/x/a', "b": "/y/b"}` -> [("a", "/x/a"), ("b", "/y/b")]; anything else is skipped.
fn string_pairs(dict: &str) -> Vec<(String, String)> {
    let mut strings = Vec::new();
    let mut chars = dict.chars();
    while let Some(c) = chars.by_ref().find(|c| *c == '\'' || *c == '"') {
        let mut s = String::new();
        let mut escaped = false;
        for d in chars.by_ref() {
            match d {
                '\\' if !escaped => escaped = true,
                d if d == c && !escaped => break,
                d => {
                    s.push(d);
                    escaped = false;
                }
            }
        }
        strings.push(s);
    }
    strings
        .chunks_exact(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finder_mappings_are_read_as_string_pairs() {
        let line = " {'torch': '/src/proj/torch', \"llama_cpp\": \"/w/x\\\\y/llama_cpp\"}";
        assert_eq!(
            string_pairs(line),
            [
                ("torch".to_string(), "/src/proj/torch".to_string()),
                ("llama_cpp".to_string(), "/w/x\\y/llama_cpp".to_string())
            ]
        );
        assert!(string_pairs("{}").is_empty());
    }
}
