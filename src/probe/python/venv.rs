//! One environment folder read from its files: pyvenv.cfg, the layout (POSIX `bin/` +
//! `lib/pythonX.Y/site-packages`, or Windows `Scripts\` + `Lib\site-packages`), the
//! interpreter and whether it (and the base interpreter it was made from) still exists, the
//! Python version and the site-packages folder.
//!
//! Both layouts are recognised on any host, so a Windows environment copied or recorded as a
//! fixture is read on Linux the same way. pyvenv.cfg is not INI: each line is split on its
//! first `=` (as uv and CPython's `site.py` do), unknown keys and junk lines are ignored.

use super::metadata::{read_text, MAX_SMALL_FILE};
use crate::facts::python::{PythonEnv, PyvenvCfg};
use std::fs;
use std::path::{Path, PathBuf};

pub(crate) const LAYOUT_POSIX: &str = "posix";
pub(crate) const LAYOUT_WINDOWS: &str = "windows";

/// Fill the interpreter, version, pyvenv.cfg and site-packages fields of `env` from `dir`.
pub(crate) fn inspect(dir: &Path, env: &mut PythonEnv) {
    env.exists = dir.is_dir();
    if !env.exists {
        // A stale VIRTUAL_ENV or config entry: name the interpreter it would have had.
        env.kind = "unknown".into();
        env.layout = LAYOUT_POSIX.into();
        env.python = dir
            .join("bin")
            .join("python3")
            .to_string_lossy()
            .into_owned();
        env.errors.push(format!(
            "the environment folder {} does not exist",
            dir.display()
        ));
        return;
    }
    let cfg_path = dir.join("pyvenv.cfg");
    let conda = dir.join("conda-meta").is_dir();
    env.kind = if cfg_path.is_file() {
        "venv"
    } else if conda {
        "conda"
    } else {
        "unknown"
    }
    .to_string();
    env.layout = layout(dir, conda).to_string();

    if cfg_path.is_file() {
        match read_text(&cfg_path, MAX_SMALL_FILE, false) {
            Ok(text) => env.pyvenv_cfg = Some(parse_pyvenv_cfg(&text)),
            Err(e) => env
                .errors
                .push(format!("pyvenv.cfg could not be read: {e}")),
        }
    }
    interpreter(dir, conda, env);
    python_version(dir, env);
    base_python(env);
    site_packages(dir, env);
    env.interpreter_version_mismatch =
        version_mismatch(env, interpreter_file_version(env), "files");
}

/// "3.12" when the environment's interpreter resolves to a file named python3.12 (a venv's
/// link to its base, the base's own versioned name); None for copies named python3 or python.
fn interpreter_file_version(env: &PythonEnv) -> Option<String> {
    let real = fs::canonicalize(&env.python).ok()?;
    let name = real.file_name()?.to_string_lossy().into_owned();
    let version = name.strip_prefix("python")?.trim_end_matches(".exe");
    let version = version.trim_end_matches('t');
    clean_version(version)
}

fn major_minor(v: &str) -> String {
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// The mismatch between pyvenv.cfg's version and `interpreter` (a venv's only), as `seen_by`
/// saw it; None when they agree or either is unknown.
pub(crate) fn version_mismatch(
    env: &PythonEnv,
    interpreter: Option<String>,
    seen_by: &str,
) -> Option<crate::facts::python::VersionMismatch> {
    let made_with = env
        .pyvenv_cfg
        .as_ref()?
        .version
        .as_deref()
        .and_then(clean_version)?;
    let interpreter = interpreter?;
    if major_minor(&made_with) == major_minor(&interpreter) {
        return None;
    }
    let stranded = env
        .site_packages
        .clone()
        .filter(|_| env.site_packages_exists && env.layout != LAYOUT_WINDOWS);
    Some(crate::facts::python::VersionMismatch {
        pyvenv_cfg: made_with,
        interpreter,
        seen_by: seen_by.to_string(),
        stranded_site_packages: stranded,
    })
}

/// The site-packages the interpreter really reads when its version is not pyvenv.cfg's:
/// lib/pythonX.Y/site-packages of its own version, when that exists.
pub(crate) fn running_site_packages(env: &PythonEnv) -> Option<PathBuf> {
    let mismatch = env.interpreter_version_mismatch.as_ref()?;
    let dir = Path::new(&env.path)
        .join("lib")
        .join(format!("python{}", major_minor(&mismatch.interpreter)))
        .join("site-packages");
    dir.is_dir().then_some(dir)
}

/// Parse pyvenv.cfg text.
pub(crate) fn parse_pyvenv_cfg(text: &str) -> PyvenvCfg {
    let mut cfg = PyvenvCfg::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().to_string();
        match key.trim().to_ascii_lowercase().as_str() {
            "home" => cfg.home = Some(value),
            // venv writes `version`, virtualenv and uv `version_info`; keep the first seen.
            "version" | "version_info" => {
                cfg.version.get_or_insert(value);
            }
            "include-system-site-packages" => {
                cfg.include_system_site_packages = match value.to_ascii_lowercase().as_str() {
                    "true" => Some(true),
                    "false" => Some(false),
                    _ => None,
                }
            }
            "executable" | "base-executable" => {
                cfg.executable.get_or_insert(value);
            }
            "implementation" => cfg.implementation = Some(value),
            "uv" => cfg.uv = Some(value),
            "virtualenv" => cfg.virtualenv = Some(value),
            "prompt" => cfg.prompt = Some(value),
            _ => {}
        }
    }
    cfg
}

/// "windows" when the folder has the Windows shape, else "posix".
fn layout(dir: &Path, conda: bool) -> &'static str {
    let windows = dir.join("Scripts").join("python.exe").exists()
        || dir.join("Lib").join("site-packages").is_dir()
        || (conda && dir.join("python.exe").exists());
    if windows {
        LAYOUT_WINDOWS
    } else {
        LAYOUT_POSIX
    }
}

/// The interpreter, in uv's order per layout; the first candidate that is present at all (a
/// dangling symlink included) is the one, else the standard path so later errors can name it.
fn interpreter(dir: &Path, conda: bool, env: &mut PythonEnv) {
    let candidates: Vec<PathBuf> = if env.layout == LAYOUT_WINDOWS {
        vec![
            dir.join("Scripts").join("python.exe"),
            dir.join("bin").join("python.exe"),
            dir.join("python.exe"),
        ]
    } else {
        vec![
            dir.join("bin").join("python3"),
            dir.join("bin").join("python"),
        ]
    };
    let default = if env.layout == LAYOUT_WINDOWS && conda {
        dir.join("python.exe")
    } else {
        candidates[0].clone()
    };
    let chosen = candidates
        .into_iter()
        .find(|p| p.symlink_metadata().is_ok())
        .unwrap_or(default);
    env.python_exists = chosen.is_file();
    if let Ok(target) = fs::read_link(&chosen) {
        env.python_link_target = Some(target.to_string_lossy().into_owned());
    }
    env.python = chosen.to_string_lossy().into_owned();
}

/// The version: pyvenv.cfg, else conda-meta's python package record, else the lib folder.
fn python_version(dir: &Path, env: &mut PythonEnv) {
    if let Some(v) = env.pyvenv_cfg.as_ref().and_then(|c| c.version.as_deref()) {
        if let Some(v) = clean_version(v) {
            env.python_version = Some(v);
            env.python_version_source = Some("pyvenv.cfg".into());
            return;
        }
    }
    if let Some(v) = conda_python_version(dir) {
        env.python_version = Some(v);
        env.python_version_source = Some("conda-meta".into());
        return;
    }
    if env.layout == LAYOUT_POSIX {
        if let Some((v, _)) = lib_python_dirs(dir).into_iter().next() {
            env.python_version = Some(v);
            env.python_version_source = Some("lib folder".into());
        }
    }
}

/// "3.12.3.final.0" (virtualenv) -> "3.12.3"; anything not starting with digits -> None.
fn clean_version(v: &str) -> Option<String> {
    let parts: Vec<&str> = v
        .trim()
        .split('.')
        .take(3)
        .take_while(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        .collect();
    (parts.len() >= 2).then(|| parts.join("."))
}

/// conda-meta/python-3.11.5-h955ad1f_0.json -> "3.11.5".
fn conda_python_version(dir: &Path) -> Option<String> {
    let entries = fs::read_dir(dir.join("conda-meta")).ok()?;
    for entry in entries.flatten().take(4096) {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(rest) = name.strip_prefix("python-") else {
            continue;
        };
        if !name.ends_with(".json") {
            continue;
        }
        let version = rest.split('-').next().unwrap_or("");
        if let Some(v) = clean_version(version) {
            return Some(v);
        }
    }
    None
}

/// `lib/python3.12` (and `lib/python3.13t`, `lib64/…`) folders with their "3.12" version,
/// newest first.
fn lib_python_dirs(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for lib in ["lib", "lib64"] {
        let Ok(entries) = fs::read_dir(dir.join(lib)) else {
            continue;
        };
        for entry in entries.flatten().take(256) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix("python") else {
                continue;
            };
            if let Some(v) = clean_version(rest.trim_end_matches('t')) {
                out.push((v, entry.path()));
            }
        }
    }
    let key = |v: &str| -> Vec<u64> { v.split('.').filter_map(|p| p.parse().ok()).collect() };
    out.sort_by_key(|(v, _)| std::cmp::Reverse(key(v)));
    out
}

/// Where the base interpreter named by pyvenv.cfg's `home` is, and whether it is still there.
fn base_python(env: &mut PythonEnv) {
    let Some(home) = env.pyvenv_cfg.as_ref().and_then(|c| c.home.clone()) else {
        return;
    };
    if home.is_empty() {
        return;
    }
    if is_foreign_path(&home) {
        // A Windows path read on Linux (or the reverse): recorded, not judged.
        env.base_python = Some(home);
        return;
    }
    let home = PathBuf::from(home);
    let mut names = vec!["python.exe", "python3", "python"];
    if env.layout != LAYOUT_WINDOWS {
        names.remove(0);
    }
    let major_minor = env.python_version.as_deref().and_then(|v| {
        let mut p = v.split('.');
        Some(format!("python{}.{}", p.next()?, p.next()?))
    });
    let mut candidates: Vec<PathBuf> = names.iter().map(|n| home.join(n)).collect();
    candidates.extend(major_minor.map(|n| home.join(n)));
    let mut unreadable = None;
    let found = candidates.iter().find(|p| match std::fs::metadata(p) {
        Ok(meta) => meta.is_file(),
        // Not "gone": there may well be an interpreter this user may not reach.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            unreadable.get_or_insert_with(|| e.to_string());
            false
        }
        Err(_) => false,
    });
    let shown = found.unwrap_or(&candidates[0]);
    env.base_python = Some(shown.to_string_lossy().into_owned());
    match (found, unreadable) {
        (None, Some(why)) => env.base_python_unreadable = Some(why),
        (found, _) => env.base_python_exists = Some(found.is_some()),
    }
}

/// A path of the other OS family: `C:\…` or `\\server\…` on a POSIX host.
pub(crate) fn is_foreign_path(path: &str) -> bool {
    if cfg!(windows) {
        return false;
    }
    let b = path.as_bytes();
    let drive = b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':';
    drive || path.starts_with("\\\\")
}

fn site_packages(dir: &Path, env: &mut PythonEnv) {
    let found = if env.layout == LAYOUT_WINDOWS {
        Some(dir.join("Lib").join("site-packages"))
    } else {
        posix_site_packages(dir, env.python_version.as_deref())
    };
    match found {
        Some(path) => {
            env.site_packages_exists = path.is_dir();
            env.site_packages = Some(path.to_string_lossy().into_owned());
        }
        None => env.errors.push(format!(
            "no site-packages folder found under {}",
            dir.join("lib").display()
        )),
    }
    if !env.site_packages_exists {
        if let Some(sp) = &env.site_packages {
            env.errors
                .push(format!("site-packages folder {sp} is missing"));
        }
    }
}

/// lib/pythonX.Y/site-packages for the known version, else the newest lib/python* folder
/// that has one.
fn posix_site_packages(dir: &Path, version: Option<&str>) -> Option<PathBuf> {
    let dirs = lib_python_dirs(dir);
    let major_minor = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
    if let Some(v) = version {
        let want = major_minor(v);
        if let Some((_, p)) = dirs
            .iter()
            .find(|(d, p)| major_minor(d) == want && p.join("site-packages").is_dir())
        {
            return Some(p.join("site-packages"));
        }
    }
    if let Some((_, p)) = dirs.iter().find(|(_, p)| p.join("site-packages").is_dir()) {
        return Some(p.join("site-packages"));
    }
    // Nothing there: name the path we expected, from the version when known.
    version
        .map(|v| {
            dir.join("lib")
                .join(format!("python{}", major_minor(v)))
                .join("site-packages")
        })
        .or_else(|| dirs.first().map(|(_, p)| p.join("site-packages")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyvenv_cfg_of_venv_uv_and_virtualenv() {
        let venv = "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.7\n\
            executable = /usr/bin/python3.11\ncommand = /usr/bin/python3 -m venv /x\n";
        let cfg = parse_pyvenv_cfg(venv);
        assert_eq!(cfg.home.as_deref(), Some("/usr/bin"));
        assert_eq!(cfg.version.as_deref(), Some("3.11.7"));
        assert_eq!(cfg.include_system_site_packages, Some(false));
        assert_eq!(cfg.executable.as_deref(), Some("/usr/bin/python3.11"));

        let uv = "home = /usr/bin\nimplementation = CPython\nuv = 0.11.15\nversion_info = 3.12.3\n\
            include-system-site-packages = false\n";
        let cfg = parse_pyvenv_cfg(uv);
        assert_eq!(cfg.uv.as_deref(), Some("0.11.15"));
        assert_eq!(cfg.implementation.as_deref(), Some("CPython"));
        assert_eq!(cfg.version.as_deref(), Some("3.12.3"));

        let junk = "[section]\nno equals here\n = orphan\nhome=C:\\Python313\nprompt = a=b\n";
        let cfg = parse_pyvenv_cfg(junk);
        assert_eq!(cfg.home.as_deref(), Some("C:\\Python313"));
        assert_eq!(cfg.prompt.as_deref(), Some("a=b"));
    }

    #[test]
    fn versions_are_cleaned() {
        assert_eq!(clean_version("3.12.3.final.0").as_deref(), Some("3.12.3"));
        assert_eq!(clean_version("3.13").as_deref(), Some("3.13"));
        assert_eq!(clean_version("3").as_deref(), None);
        assert_eq!(clean_version("banana").as_deref(), None);
    }

    #[test]
    fn foreign_paths() {
        if cfg!(windows) {
            return;
        }
        assert!(is_foreign_path("C:\\Users\\me\\Python313"));
        assert!(is_foreign_path("c:/x"));
        assert!(is_foreign_path("\\\\server\\share"));
        assert!(!is_foreign_path("/usr/bin"));
        assert!(!is_foreign_path("relative"));
    }
}
