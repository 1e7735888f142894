//! The project's llama.cpp settings and the n_gpu_layers its commands use.
//!
//! `[llama]` of gpu-doctor.toml, or `[tool.gpu-doctor.llama]` of pyproject.toml, as the
//! configuration module reads it (`crate::config`, the one parser of that file; see
//! docs/config.md):
//!
//! ```toml
//! [llama]
//! model = "models/my-model.gguf"          # the speed workload runs on it
//! binaries = ["/opt/llama.cpp/build/bin/llama-server"]
//! commands = ["python serve.py", "llama-server -m model.gguf -ngl 0"]
//! ```
//!
//! Each command is read for its n_gpu_layers: an argument (`-ngl 0`, `--n-gpu-layers=0`,
//! `n_gpu_layers=0`), else, when it runs a Python file of the project, that file
//! (`n_gpu_layers=0`, or a `Llama(` call that never sets it, which leaves llama-cpp-python's
//! default of 0).

use crate::facts::llama::{ConfigCommand, LlamaConfig};
use crate::probe::ProbeContext;
use std::path::{Path, PathBuf};

/// Files larger than this are not read.
const MAX_FILE: u64 = 1 << 20;
/// The argument names of n_gpu_layers in llama.cpp's programs and in wrappers.
const NGL_FLAGS: &[&str] = &[
    "-ngl",
    "--ngl",
    "--n-gpu-layers",
    "--n_gpu_layers",
    "--gpu-layers",
    "--gpu_layers",
    "-gl",
];
/// Calls that build a llama-cpp-python model and take n_gpu_layers.
const MODEL_CALLS: &[&str] = &["Llama(", "Llama.from_pretrained(", "LlamaCpp("];

/// The `[llama]` settings of the configuration this run follows, with each command read.
/// Commands' relative Python files are found from the configuration's folder.
pub fn read(ctx: &ProbeContext, project: &Path) -> LlamaConfig {
    let mut out = LlamaConfig::default();
    let config = match crate::config::for_probe(ctx, project) {
        Ok(Some(c)) => c,
        Ok(None) => return out,
        Err(e) => {
            out.errors.push(e);
            return out;
        }
    };
    let llama = &config.llama;
    out.source = Some(config.name.clone());
    out.model = llama.model.as_ref().map(|m| m.display().to_string());
    out.binaries = llama
        .binaries
        .iter()
        .map(|b| b.display().to_string())
        .collect();
    out.commands = llama
        .commands
        .iter()
        .map(|c| command(&config.dir, c))
        .collect();
    out.zero_layer_commands = out
        .commands
        .iter()
        .filter(|c| c.offloads_nothing)
        .map(|c| match &c.n_gpu_layers_source {
            Some(src) => format!("{} ({src})", c.command),
            None => c.command.clone(),
        })
        .collect();
    out
}

fn read_small(path: &Path, errors: &mut Vec<String>) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    if meta.len() > MAX_FILE {
        errors.push(format!("{} is larger than 1 MiB; not read", path.display()));
        return None;
    }
    match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(format!("{} could not be read: {e}", path.display()));
            None
        }
    }
}

/// One configured command and the n_gpu_layers it uses.
pub fn command(project: &Path, command: &str) -> ConfigCommand {
    let words = split_words(command);
    let mut out = ConfigCommand {
        command: command.to_string(),
        ..ConfigCommand::default()
    };
    if let Some((n, src)) = from_arguments(&words) {
        out.n_gpu_layers = Some(n);
        out.n_gpu_layers_source = Some(src);
    } else if let Some(script) = python_script(project, &words) {
        if let Some((n, src)) = from_python_file(&script) {
            out.n_gpu_layers = Some(n);
            out.n_gpu_layers_source = Some(src);
        }
    }
    out.offloads_nothing = out.n_gpu_layers == Some(0);
    out
}

/// Words of a command line, with simple quotes removed (no variable expansion).
fn split_words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in command.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if !word.is_empty() || any {
                    words.push(std::mem::take(&mut word));
                }
                any = false;
            }
            (None, c) => word.push(c),
        }
    }
    if !word.is_empty() || any {
        words.push(word);
    }
    words
}

/// `-ngl 0`, `--n-gpu-layers=0`, `n_gpu_layers=0` (a wrapper's key=value argument).
fn from_arguments(words: &[String]) -> Option<(i64, String)> {
    for (i, w) in words.iter().enumerate() {
        let (flag, inline) = match w.split_once('=') {
            Some((f, v)) => (f, Some(v)),
            None => (w.as_str(), None),
        };
        let is_flag = NGL_FLAGS.contains(&flag);
        let is_key = flag == "n_gpu_layers" || flag == "N_GPU_LAYERS";
        if !(is_flag || is_key) {
            continue;
        }
        let value = match inline {
            Some(v) => Some(v.to_string()),
            None if is_flag => words.get(i + 1).cloned(),
            None => None,
        };
        if let Some(n) = value.and_then(|v| v.trim().parse::<i64>().ok()) {
            let shown = match inline {
                Some(v) => format!("{flag}={v}"),
                None => format!("{flag} {n}"),
            };
            return Some((n, format!("argument {shown}")));
        }
    }
    None
}

/// The project Python file a command runs: `python serve.py`, `uv run app/serve.py`.
fn python_script(project: &Path, words: &[String]) -> Option<PathBuf> {
    let runs_python = words.iter().any(|w| {
        let name = Path::new(w)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        name.starts_with("python") || name == "uv" || name == "poetry" || name == "pipenv"
    });
    let file = words.iter().find(|w| w.ends_with(".py"))?;
    if !runs_python && words.first() != Some(file) {
        return None;
    }
    let path = Path::new(file);
    Some(if path.is_absolute() {
        path.to_path_buf()
    } else {
        project.join(path)
    })
}

/// `n_gpu_layers=N` in a Python file, or a model call that never sets it (default 0).
fn from_python_file(path: &Path) -> Option<(i64, String)> {
    let mut errors = Vec::new();
    let text = read_small(path, &mut errors)?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    for (i, line) in text.lines().enumerate() {
        let code = line.split('#').next().unwrap_or("");
        if let Some(at) = code.find("n_gpu_layers") {
            let rest = code[at + "n_gpu_layers".len()..].trim_start();
            let Some(value) = rest.strip_prefix('=').filter(|r| !r.starts_with('=')) else {
                continue;
            };
            let digits: String = value
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '-')
                .collect();
            if let Ok(n) = digits.parse::<i64>() {
                return Some((n, format!("{name}:{}: {}", i + 1, code.trim())));
            }
            // Set from a variable or an expression: not known here.
            return None;
        }
    }
    for (i, line) in text.lines().enumerate() {
        let code = line.split('#').next().unwrap_or("");
        if let Some(call) = MODEL_CALLS.iter().find(|c| code.contains(*c)) {
            let call = call.trim_end_matches('(');
            return Some((
                0,
                format!(
                    "{name}:{}: {call}(...) without n_gpu_layers (llama-cpp-python's default is 0)",
                    i + 1
                ),
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn project() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "gpu-doctor-llama-config-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn arguments_in_every_spelling() {
        let p = Path::new("/nonexistent");
        for (cmd, want) in [
            ("llama-server -m m.gguf -ngl 0", Some(0)),
            ("llama-cli --n-gpu-layers=99 -p hi", Some(99)),
            ("python app.py --n_gpu_layers 0", Some(0)),
            ("llm chat -o n_gpu_layers=0", Some(0)),
            ("llama-server -m 'my model.gguf' --gpu-layers -1", Some(-1)),
            ("llama-server -m m.gguf", None),
            ("llama-server -ngl", None),
        ] {
            assert_eq!(command(p, cmd).n_gpu_layers, want, "{cmd}");
        }
        let c = command(p, "llama-server -m m.gguf -ngl 0");
        assert!(c.offloads_nothing);
        assert_eq!(c.n_gpu_layers_source.as_deref(), Some("argument -ngl 0"));
    }

    #[test]
    fn python_files_are_read_for_the_setting_or_the_default() {
        let dir = project();
        fs::write(dir.join("serve.py"), "from llama_cpp import Llama\nllm = Llama(model_path='m.gguf', n_gpu_layers=0)  # CPU\n").unwrap();
        fs::write(
            dir.join("default.py"),
            "from llama_cpp import Llama\n\nllm = Llama(model_path='m.gguf')\n",
        )
        .unwrap();
        fs::write(
            dir.join("gpu.py"),
            "llm = Llama(model_path='m.gguf', n_gpu_layers=-1)\n",
        )
        .unwrap();
        fs::write(
            dir.join("var.py"),
            "llm = Llama(model_path='m.gguf', n_gpu_layers=layers)\n",
        )
        .unwrap();
        let serve = command(&dir, "python serve.py --port 8000");
        assert_eq!(serve.n_gpu_layers, Some(0));
        assert_eq!(
            serve.n_gpu_layers_source.as_deref(),
            Some("serve.py:2: llm = Llama(model_path='m.gguf', n_gpu_layers=0)")
        );
        let default = command(&dir, "uv run default.py");
        assert_eq!(default.n_gpu_layers, Some(0));
        assert!(default
            .n_gpu_layers_source
            .unwrap()
            .contains("default.py:3: Llama(...) without n_gpu_layers"));
        assert_eq!(command(&dir, "python3 gpu.py").n_gpu_layers, Some(-1));
        assert_eq!(command(&dir, "python3 var.py").n_gpu_layers, None);
        assert_eq!(command(&dir, "python3 missing.py").n_gpu_layers, None);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_config_is_read_through_the_configuration_module() {
        let dir = project();
        fs::write(
            dir.join("pyproject.toml"),
            "[tool.gpu-doctor.llama]\nmodel = \"models/m.gguf\"\ncommands = [\"llama-server -ngl 0\", \"llama-server -ngl 99\"]\nbinaries = [\"/opt/bin/llama-bench\"]\n",
        )
        .unwrap();
        let ctx = ProbeContext {
            profile: crate::probe::Profile::Full,
            env: Default::default(),
            fs_root: PathBuf::from("/"),
        };
        let c = read(&ctx, &dir);
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        assert!(c.source.as_deref().unwrap().ends_with("pyproject.toml"));
        assert_eq!(
            c.model.as_deref(),
            Some(dir.join("models/m.gguf").to_str().unwrap())
        );
        assert_eq!(c.binaries, ["/opt/bin/llama-bench"]);
        assert_eq!(c.commands.len(), 2);
        assert_eq!(
            c.zero_layer_commands,
            ["llama-server -ngl 0 (argument -ngl 0)"]
        );
        fs::write(dir.join("gpu-doctor.toml"), "[llama\n").unwrap();
        let c = read(&ctx, &dir);
        assert!(c.source.is_none());
        assert_eq!(
            c.errors.len(),
            1,
            "a broken file is reported: {:?}",
            c.errors
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn words_keep_quoted_spaces() {
        assert_eq!(split_words("a 'b c' \"d\" ''"), ["a", "b c", "d", ""]);
    }
}
