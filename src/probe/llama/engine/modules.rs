//! The `cuda` build's backend modules: loads them before the registry is listed. (Compiled in
//! every engine build so its tests run in CI; a build with linked-in backends skips it.)
//!
//! `make build-cuda` builds llama.cpp with `GGML_BACKEND_DL=ON`, so neither the CPU nor the
//! CUDA backend is linked into the binary: each is a module (`libggml-cpu.so`,
//! `libggml-cuda.so`) beside the executable, and nothing is registered until one is loaded.
//! That is what lets a CUDA build start on a machine without a driver or CUDA libraries.
//! llama.cpp's own `ggml_backend_load_all` would find them, but in a release build it skips a
//! module that does not load without a word (docs/reference-engine.md). So each module is
//! loaded by path with `ggml_backend_load`, which logs the loader's reason
//! (`load_backend: failed to load PATH: libcudart.so.13: cannot open shared object file: ...`),
//! and the outcome is kept per module in the report.

use super::child::{copy_c_str, take_log, LEVEL_ERROR};
use super::{BackendModule, LogLine};
use llama_cpp_sys_2 as sys;
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// Modules in the order llama.cpp's own `ggml_backend_load_all` tries them: a GPU backend
/// registers before the CPU, so its devices come first.
const MODULES: [&str; 2] = ["cuda", "cpu"];

/// Load the backend modules from the executable's folder, adding what llama.cpp logged
/// meanwhile to `log`. Returns nothing when backends are already registered (a build whose
/// backends are linked in: `--features cuda` without `GGML_BACKEND_DL`).
pub fn load(log: &mut Vec<LogLine>) -> Vec<BackendModule> {
    // SAFETY: a registry getter without arguments.
    if unsafe { sys::ggml_backend_reg_count() } > 0 {
        return Vec::new();
    }
    let dir = match module_dir() {
        Ok(dir) => dir,
        Err(why) => {
            return MODULES
                .iter()
                .map(|name| BackendModule {
                    name: (*name).to_string(),
                    error: Some(why.clone()),
                    ..BackendModule::default()
                })
                .collect();
        }
    };
    MODULES
        .iter()
        .map(|name| load_one(name, &dir.join(file_name(name)), log))
        .collect()
}

/// Where the modules are: beside the executable (`make build-cuda` puts them there, and so
/// does the bundle for other machines).
fn module_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find this executable's folder: {e}"))?;
    exe.parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("{} has no parent folder", exe.display()))
}

fn file_name(name: &str) -> String {
    if cfg!(windows) {
        format!("ggml-{name}.dll")
    } else {
        format!("libggml-{name}.so")
    }
}

fn load_one(name: &str, path: &Path, log: &mut Vec<LogLine>) -> BackendModule {
    let mut module = BackendModule {
        name: name.to_string(),
        path: path.display().to_string(),
        ..BackendModule::default()
    };
    if !path.is_file() {
        module.error = Some(format!("{} does not exist", path.display()));
        return module;
    }
    let Some(c_path) = path.to_str().and_then(|p| CString::new(p).ok()) else {
        module.error = Some("the module path is not valid UTF-8 or has a NUL byte".into());
        return module;
    };
    // SAFETY: a NUL-terminated path; ggml_backend_load dlopens it, runs its init and registers
    // the backend, or logs why not and returns NULL. The registry owns what it returns.
    let reg = unsafe { sys::ggml_backend_load(c_path.as_ptr()) };
    let lines = take_log();
    if reg.is_null() {
        module.error = Some(reason(&lines, &module.path));
    } else {
        module.loaded = true;
        // SAFETY: a live reg from the registry.
        module.backend = copy_c_str(unsafe { sys::ggml_backend_reg_name(reg) });
        // SAFETY: as above.
        module.devices = Some(unsafe { sys::ggml_backend_reg_dev_count(reg) } as u32);
    }
    log.extend(lines);
    module
}

/// Why a module did not load: the loader's words from llama.cpp's
/// `load_backend: failed to load PATH: REASON` (just REASON), else its last ERROR line.
fn reason(lines: &[LogLine], path: &str) -> String {
    let prefix = format!("failed to load {path}: ");
    let errors: Vec<&str> = lines
        .iter()
        .filter(|l| l.level == LEVEL_ERROR)
        .map(|l| l.text.trim())
        .collect();
    for text in &errors {
        if let Some(at) = text.find(&prefix) {
            return text[at + prefix.len()..].to_string();
        }
    }
    match errors.last() {
        Some(text) => text.to_string(),
        None => "ggml_backend_load returned NULL without a log line".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(level: u32, text: &str) -> LogLine {
        LogLine {
            level,
            text: text.into(),
        }
    }

    #[test]
    fn the_reason_is_the_loaders_own_words() {
        let lines = [
            line(2, "info"),
            line(
                LEVEL_ERROR,
                "load_backend: failed to load /b/libggml-cuda.so: libcudart.so.13: cannot open shared object file: No such file or directory",
            ),
        ];
        assert_eq!(
            reason(&lines, "/b/libggml-cuda.so"),
            "libcudart.so.13: cannot open shared object file: No such file or directory"
        );
        let other = [line(
            LEVEL_ERROR,
            "load_backend: failed to find ggml_backend_init in x",
        )];
        assert_eq!(
            reason(&other, "x"),
            "load_backend: failed to find ggml_backend_init in x"
        );
        assert!(reason(&[], "x").contains("without a log line"));
    }

    #[test]
    fn a_missing_module_is_named() {
        let mut log = Vec::new();
        let m = load_one("cuda", Path::new("/nonexistent/libggml-cuda.so"), &mut log);
        assert!(!m.loaded);
        assert_eq!(
            m.error.as_deref(),
            Some("/nonexistent/libggml-cuda.so does not exist")
        );
    }
}
