//! A project's configuration: `gpu-doctor.toml`, or `[tool.gpu-doctor]` in `pyproject.toml`,
//! and the commands that put gpu-doctor into a project (`init`, `exec`).
//!
//! The configuration says which profile and fail level a plain `gpu-doctor` uses, which extra
//! rule files to judge with, which Python environments are the project's, what the llama.cpp
//! offload proof runs (`[llama]`), what the project requires of a machine (`requirements`,
//! turned into generated rules: [`requirement`]) and which findings are accepted for now
//! (`[[waiver]]`, each with a reason and an expiry date: [`waiver`]). docs/config.md is the
//! reference.
//!
//! Finding it: the nearest `gpu-doctor.toml`, or `pyproject.toml` with a `[tool.gpu-doctor]`
//! table, in the project folder (`GPU_DOCTOR_PROJECT_DIR`, else the working folder) or a folder
//! above it; in one folder `gpu-doctor.toml` wins; a `pyproject.toml` without the table does not
//! stop the walk. `--config FILE` (`GPU_DOCTOR_CONFIG`) names one, `--no-config`
//! (`GPU_DOCTOR_NO_CONFIG`) uses none. Relative paths in it are relative to its folder, and its
//! folder becomes the project folder for Python discovery.
//!
//! This module is the one parser of the file: the probes that need a setting (the Python
//! discovery's environments, the llama probe's model) call [`for_probe`], which reads the file
//! the command line chose (passed to them in the probe context, see [`prepare_probe_context`]).

pub mod exec;
pub mod init;
mod parse;
pub mod requirement;
pub mod waiver;

pub use parse::Layout;
pub use waiver::{today, Date, Waiver};

use crate::probe::python::PROJECT_DIR_VAR;
use crate::probe::{ProbeContext, Profile};
use crate::rules::{Diagnostic, LoadError, RuleSet, SourceFile};
use requirement::Requirement;
use std::path::{Path, PathBuf};

/// The configuration file's name.
pub const FILE_NAME: &str = "gpu-doctor.toml";
/// Names the configuration file (what `--config` sets).
pub const CONFIG_VAR: &str = "GPU_DOCTOR_CONFIG";
/// Set (to anything but a false word) to use no configuration (what `--no-config` sets).
pub const NO_CONFIG_VAR: &str = "GPU_DOCTOR_NO_CONFIG";
/// Configuration files larger than this are refused.
const MAX_FILE: u64 = 1024 * 1024;

/// A value of the configuration and where it was written (a byte offset into the file).
#[derive(Debug, Clone)]
pub struct Setting<T> {
    pub value: T,
    pub at: usize,
}

/// `[llama]`: what the llama.cpp offload proof runs besides the doctor's own engine. Paths are
/// absolute (resolved against the configuration's folder); nothing here is checked to exist:
/// a model missing on this machine is the probe's finding, not a bad configuration.
#[derive(Debug, Clone, Default)]
pub struct LlamaSettings {
    /// A GGUF model to prove offload with (instead of the synthetic one).
    pub model: Option<PathBuf>,
    /// llama.cpp binaries (llama-cli, llama-server) to check.
    pub binaries: Vec<PathBuf>,
    /// Command lines the project runs llama.cpp with, as written.
    pub commands: Vec<String>,
}

/// A loaded, checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file.
    pub path: PathBuf,
    /// The file as messages name it.
    pub name: String,
    /// Its folder: relative paths in it are relative to this.
    pub dir: PathBuf,
    pub layout: Layout,
    pub profile: Option<Profile>,
    pub fail_on: Option<crate::cli::FailOn>,
    /// Extra rule files, absolute.
    pub rule_files: Vec<Setting<PathBuf>>,
    /// `[python] environments`, absolute; `None` when not set.
    pub python_environments: Option<Vec<PathBuf>>,
    pub llama: LlamaSettings,
    pub requirements: Vec<Setting<Requirement>>,
    pub waivers: Vec<Waiver>,
    /// The file's text, for diagnostics found after parsing.
    text: String,
}

impl Config {
    fn empty(path: &Path, name: &str, text: &str, layout: Layout) -> Config {
        Config {
            path: path.to_path_buf(),
            name: name.to_string(),
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            layout,
            profile: None,
            fail_on: None,
            rule_files: Vec::new(),
            python_environments: None,
            llama: LlamaSettings::default(),
            requirements: Vec::new(),
            waivers: Vec::new(),
            text: text.to_string(),
        }
    }

    /// A diagnostic at a byte offset of the file.
    pub fn diag(&self, at: usize, message: impl Into<String>) -> Diagnostic {
        SourceFile::new(&self.name, &self.text).diag(at, message)
    }

    /// "gpu-doctor.toml:12" for a byte offset.
    pub fn place(&self, at: usize) -> String {
        let (line, _) = SourceFile::new(&self.name, &self.text).line_col(at);
        format!("{}:{line}", self.name)
    }

    /// Add the rules generated from the requirements. An error here is a bug in gpu-doctor
    /// (the requirement parsed, so its rules must load).
    pub fn add_requirement_rules(&self, rules: &mut RuleSet) -> Result<(), LoadError> {
        let configured = self.python_environments.is_some();
        for req in &self.requirements {
            let origin = self.place(req.at);
            let (line, _) = SourceFile::new(&self.name, &self.text).line_col(req.at);
            for rule in requirement::rules(&req.value, configured, &origin) {
                rules.load_str(&self.name, &rule_toml(&rule, line))?;
            }
        }
        Ok(())
    }

    /// Every waiver names a rule that is loaded; an unknown id is a mistake to point at.
    pub fn check_waivers(&self, rules: &RuleSet) -> Result<(), LoadError> {
        let ids: Vec<&str> = rules.rules().iter().map(|r| r.id.as_str()).collect();
        let diagnostics: Vec<Diagnostic> = self
            .waivers
            .iter()
            .filter(|w| rules.get(&w.rule.value).is_none())
            .map(|w| {
                let hint = crate::rules::did_you_mean(&w.rule.value, ids.iter().copied());
                self.diag(
                    w.rule.at,
                    format!(
                        "the waiver names no loaded rule `{}`{hint}; `gpu-doctor rules` lists them",
                        w.rule.value
                    ),
                )
            })
            .collect();
        if diagnostics.is_empty() {
            Ok(())
        } else {
            Err(LoadError { diagnostics })
        }
    }
}

/// A generated rule as TOML, written so that its `id` is on `line`: the rule then names the
/// configuration line of its requirement as its source (`gpu-doctor explain`, a rule that
/// fails to evaluate).
fn rule_toml(rule: &requirement::GeneratedRule, line: usize) -> String {
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let evidence: Vec<String> = rule.evidence.iter().map(|e| q(e)).collect();
    let mut text = "\n".repeat(line.saturating_sub(2));
    text.push_str(&format!(
        "[[rule]]\nid = {}\ncategory = {}\nseverity = {}\nsince = {}\nwhen = {}\ntitle = {}\nexplain = {}\nevidence = [{}]\ndocs = {}\nfix.none = {}\n",
        q(&rule.id),
        q(rule.category.as_str()),
        q(rule.severity.as_str()),
        q(env!("CARGO_PKG_VERSION")),
        q(&rule.when),
        q(&rule.title),
        q(&rule.explain),
        evidence.join(", "),
        q(&rule.docs),
        q(&rule.fix_none),
    ));
    text
}

/// Where the search for a configuration starts: the project folder.
pub fn search_start() -> Result<PathBuf, LoadError> {
    let cwd = std::env::current_dir()
        .map_err(|e| LoadError::file(".", format!("the current directory cannot be read: {e}")))?;
    match std::env::var_os(PROJECT_DIR_VAR).filter(|v| !v.is_empty()) {
        Some(dir) => Ok(cwd.join(dir)),
        None => Ok(cwd),
    }
}

/// The nearest configuration at or above `start`: `gpu-doctor.toml`, or a `pyproject.toml`
/// with a `[tool.gpu-doctor]` table (the first wins in one folder).
pub fn find(start: &Path) -> Result<Option<PathBuf>, LoadError> {
    for dir in start.ancestors() {
        let own = dir.join(FILE_NAME);
        if own.is_file() {
            return Ok(Some(own));
        }
        let pyproject = dir.join("pyproject.toml");
        if pyproject.is_file() && has_tool_table(&pyproject)? {
            return Ok(Some(pyproject));
        }
    }
    Ok(None)
}

/// Whether a pyproject.toml has `[tool.gpu-doctor]` (or a `tool.gpu-doctor` of another type). One that does not mention gpu-doctor
/// at all is not parsed, so an unrelated broken pyproject.toml is not gpu-doctor's problem.
fn has_tool_table(path: &Path) -> Result<bool, LoadError> {
    let name = path.display().to_string();
    let text = read(path, &name)?;
    if !text.contains("gpu-doctor") {
        return Ok(false);
    }
    let (doc, errors) = toml::de::DeTable::parse_recoverable(&text);
    if let Some(e) = errors.first() {
        let file = SourceFile::new(&name, &text);
        let at = e.span().map_or(0, |s| s.start);
        let d = file.diag(at, format!("invalid TOML: {}", e.message().trim()));
        return Err(LoadError {
            diagnostics: vec![d],
        });
    }
    // Any `tool.gpu-doctor` makes it the configuration: one that is not a table is an error
    // there, not a file to pass over.
    Ok(parse::tool_entry(doc.get_ref()).is_some())
}

fn read(path: &Path, name: &str) -> Result<String, LoadError> {
    use std::io::Read;
    let cannot =
        |e: std::io::Error| LoadError::file(name, format!("cannot read the configuration: {e}"));
    let meta = std::fs::metadata(path).map_err(cannot)?;
    // A repository can commit the file as a symlink to /dev/zero or a FIFO: read only regular
    // files, and never more than the limit whatever the metadata says.
    if !meta.is_file() {
        return Err(LoadError::file(
            name,
            "cannot read the configuration: it is not a regular file".to_string(),
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(cannot)?
        .take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(LoadError::file(
            name,
            format!("the configuration is more than {MAX_FILE} bytes; more than 1 MiB is not a configuration"),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        LoadError::file(
            name,
            format!("cannot read the configuration: it is not UTF-8 text: {e}"),
        )
    })
}

/// Load and check the configuration at `path` (a pyproject.toml by its name, else a
/// gpu-doctor.toml), naming it `name` in messages.
pub fn load(path: &Path, name: &str) -> Result<Config, LoadError> {
    let text = read(path, name)?;
    let layout = if path.file_name().is_some_and(|n| n == "pyproject.toml") {
        Layout::Pyproject
    } else {
        Layout::Own
    };
    let absolute = absolute(path);
    parse::parse(&absolute, name, &text, layout)
}

/// Check configuration text as [`load`] does, as if it were the file `path` (absolute; its
/// name picks the layout). For the fuzz target (`fuzz/`); not a stable interface.
#[doc(hidden)]
pub fn load_str(path: &Path, text: &str) -> Result<Config, LoadError> {
    let layout = if path.file_name().is_some_and(|n| n == "pyproject.toml") {
        Layout::Pyproject
    } else {
        Layout::Own
    };
    parse::parse(path, &path.display().to_string(), text, layout)
}

/// The configuration the command line asks for: none (`--no-config`), `explicit`
/// (`--config` or `GPU_DOCTOR_CONFIG`), none (`GPU_DOCTOR_NO_CONFIG`), else the nearest one
/// found from the project folder.
pub fn resolve(explicit: Option<&Path>, no_config: bool) -> Result<Option<Config>, LoadError> {
    // Any bytes but "", "0", "false"... say "no configuration", UTF-8 or not.
    let env_no_config = std::env::var_os(NO_CONFIG_VAR)
        .is_some_and(|v| !v.is_empty() && !is_false_word(&v.to_string_lossy()));
    if no_config || (explicit.is_none() && env_no_config) {
        return Ok(None);
    }
    if let Some(path) = explicit {
        return load(path, &path.display().to_string()).map(Some);
    }
    let start = search_start()?;
    match find(&start)? {
        Some(path) => {
            let name = display_name(&path);
            load(&path, &name).map(Some)
        }
        None => Ok(None),
    }
}

/// A found file as messages name it: relative to the working folder when inside it.
fn display_name(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// Tell the probes which configuration this run uses (so they read the same file, or none),
/// and make its folder the project folder unless `GPU_DOCTOR_PROJECT_DIR` says otherwise.
pub fn prepare_probe_context(ctx: &mut ProbeContext, config: Option<&Config>) {
    match config {
        Some(c) => {
            ctx.env
                .insert(CONFIG_VAR.to_string(), c.path.display().to_string());
            ctx.env.remove(NO_CONFIG_VAR);
            if ctx.nonempty_var(PROJECT_DIR_VAR).is_none() {
                ctx.env
                    .insert(PROJECT_DIR_VAR.to_string(), c.dir.display().to_string());
            }
        }
        None => {
            ctx.env.remove(CONFIG_VAR);
            ctx.env.insert(NO_CONFIG_VAR.to_string(), "1".to_string());
        }
    }
}

/// The configuration a probe should follow: the one the command line chose (see
/// [`prepare_probe_context`]), else the nearest one above `project` (for probes run without
/// the command line, as in tests). Errors are text for the probe's `errors`.
pub fn for_probe(ctx: &ProbeContext, project: &Path) -> Result<Option<Config>, String> {
    if ctx
        .nonempty_var(NO_CONFIG_VAR)
        .is_some_and(|v| !is_false_word(v))
    {
        return Ok(None);
    }
    let path = match ctx.nonempty_var(CONFIG_VAR) {
        Some(p) => Some(PathBuf::from(p)),
        None => find(project).map_err(|e| e.to_string())?,
    };
    match path {
        Some(p) => load(&p, &p.display().to_string())
            .map(Some)
            .map_err(|e| e.to_string()),
        None => Ok(None),
    }
}

/// The words that turn a flag variable off (as clap's FalseyValueParser reads them).
fn is_false_word(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "n" | "no" | "f" | "false" | "off" | "0"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_own(text: &str) -> Result<Config, LoadError> {
        parse::parse(
            Path::new("/p/gpu-doctor.toml"),
            "gpu-doctor.toml",
            text,
            Layout::Own,
        )
    }

    #[test]
    fn generated_rules_load_and_name_the_requirement_line() {
        let text = "profile = \"quick\"\n\nrequirements = [\n  \"cuda>=12.1\",\n  \"gpus>=2\",\n  \"gpu-memory>=24GiB\",\n  \"compute-capability>=8.0\",\n  \"torch-cuda\",\n  \"llama-offload\",\n  \"driver>=550.54\",\n]\n";
        let config = parse_own(text).unwrap();
        let mut rules = RuleSet::builtin().unwrap();
        config.add_requirement_rules(&mut rules).unwrap();
        let rule = rules.get("requirement-gpus").unwrap();
        assert_eq!((rule.source.as_str(), rule.line), ("gpu-doctor.toml", 5));
        assert!(rules.get("requirement-llama-offload-unverified").is_some());
        assert_eq!(rules.get("requirement-driver").unwrap().line, 10);
    }

    #[test]
    fn every_problem_is_reported_with_its_place() {
        let text = "profil = \"quick\"\nfail_on = \"warning\"\nrequirements = [\"cuda>=12.1\", \"cuda<13\"]\n\n[[waiver]]\nrule = \"x\"\nexpires = \"2027-02-30\"\n";
        let err = parse_own(text).unwrap_err();
        let places: Vec<(usize, usize)> =
            err.diagnostics.iter().map(|d| (d.line, d.column)).collect();
        assert_eq!(
            places,
            vec![(1, 1), (2, 11), (3, 31), (5, 1), (7, 11)],
            "{err}"
        );
        let text = err.to_string();
        assert!(text.contains("did you mean `profile`?"), "{text}");
        assert!(
            text.contains("expected one of: error, warn, never"),
            "{text}"
        );
        assert!(text.contains("already required on line 3"), "{text}");
        assert!(text.contains("a waiver needs `reason`"), "{text}");
        assert!(text.contains("must be a date like 2027-01-31"), "{text}");
    }
}
