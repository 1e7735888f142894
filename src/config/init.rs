//! `gpu-doctor init`: put gpu-doctor into a project. Writes a commented starter
//! `gpu-doctor.toml`, a GitHub Actions workflow and a GitLab CI job of its own, and the
//! pre-commit hook.
//!
//! Files that are gpu-doctor's own (`gpu-doctor.toml`, `.github/workflows/gpu-doctor.yml`,
//! `.gitlab/gpu-doctor.yml`) are never overwritten without `--force`: every target is checked
//! first, and when one exists nothing at all is written. Files the project shares with other
//! tools (`.pre-commit-config.yaml`, `.gitlab-ci.yml`) are created when missing and never
//! touched when present, even with `--force`: init prints the lines to add instead.
//!
//! Writing is all or nothing too: every file goes to a temporary file beside it first, and
//! only when all of them are written are they renamed into place. The temporary files are
//! registered with crate::signals, so an interrupt removes them.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

const CONFIG: &str = include_str!("templates/gpu-doctor.toml");
const PRE_COMMIT: &str = include_str!("templates/pre-commit-config.yaml");
const GITHUB: &str = include_str!("templates/github-workflow.yml");
const GITLAB_JOB: &str = include_str!("templates/gitlab-job.yml");
const GITLAB_CI: &str = include_str!("templates/gitlab-ci.yml");

/// The pieces init can leave out (`--skip`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Piece {
    /// The pre-commit hook.
    PreCommit,
    /// The GitHub Actions workflow.
    Github,
    /// The GitLab CI job.
    Gitlab,
}

/// One file init may write.
#[derive(Debug, Clone)]
pub struct Target {
    /// Relative to the project folder.
    pub path: &'static str,
    pub text: String,
    /// gpu-doctor's own file (`--force` may replace it), or one shared with other tools
    /// (created when missing, else left alone).
    pub own: bool,
    /// For a shared file that exists: what to add to it, and why it was not written.
    pub instead: Option<String>,
}

/// Why init did not write anything.
#[derive(Debug)]
pub enum InitError {
    /// These files exist (and `--force` was not given).
    Exists(Vec<PathBuf>),
    Io(String),
}

/// The files init would write for `dir`, leaving out `skip`.
pub fn targets(skip: &[Piece]) -> Vec<Target> {
    let version = env!("CARGO_PKG_VERSION");
    let mut out = vec![own("gpu-doctor.toml", CONFIG.to_string())];
    if !skip.contains(&Piece::PreCommit) {
        out.push(shared(
            ".pre-commit-config.yaml",
            PRE_COMMIT.replace("{version}", version),
        ));
    }
    if !skip.contains(&Piece::Github) {
        out.push(own(".github/workflows/gpu-doctor.yml", GITHUB.to_string()));
    }
    if !skip.contains(&Piece::Gitlab) {
        out.push(own(".gitlab/gpu-doctor.yml", GITLAB_JOB.to_string()));
        out.push(shared(".gitlab-ci.yml", GITLAB_CI.to_string()));
    }
    out
}

fn own(path: &'static str, text: String) -> Target {
    Target {
        path,
        text,
        own: true,
        instead: None,
    }
}

fn shared(path: &'static str, text: String) -> Target {
    Target {
        path,
        text,
        own: false,
        instead: None,
    }
}

/// Write the starter files into `dir`. Returns what was done, for the user.
pub fn init(dir: &Path, force: bool, skip: &[Piece]) -> Result<String, InitError> {
    let mut targets = targets(skip);
    let existing: Vec<PathBuf> = targets
        .iter()
        .filter(|t| t.own && dir.join(t.path).exists())
        .map(|t| dir.join(t.path))
        .chain(pyproject_config(dir))
        .collect();
    if !existing.is_empty() && !force {
        return Err(InitError::Exists(existing));
    }
    for t in targets.iter_mut().filter(|t| !t.own) {
        let path = dir.join(t.path);
        if path.exists() {
            t.instead = Some(advice_for(t.path, &path));
        }
    }
    let writes: Vec<&Target> = targets.iter().filter(|t| t.instead.is_none()).collect();
    write_all(dir, &writes)?;
    Ok(summary(dir, &targets))
}

/// A pyproject.toml with `[tool.gpu-doctor]` in `dir`: a gpu-doctor.toml would take its place.
fn pyproject_config(dir: &Path) -> Option<PathBuf> {
    let path = dir.join("pyproject.toml");
    let text = std::fs::read_to_string(&path).ok()?;
    let (doc, errors) = toml::de::DeTable::parse_recoverable(&text);
    (errors.is_empty() && super::parse::tool_table(doc.get_ref()).is_some()).then_some(path)
}

/// What to add to a shared file that already exists.
fn advice_for(name: &str, path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    match name {
        ".pre-commit-config.yaml" if text.contains("gpu-doctor") => {
            "it already mentions gpu-doctor".to_string()
        }
        ".pre-commit-config.yaml" => {
            let hook: String = PRE_COMMIT
                .lines()
                .skip_while(|l| !l.starts_with("  - repo: local"))
                .take_while(|l| !l.trim_start().starts_with("# Or gpu-doctor's own hooks"))
                .map(|l| format!("{l}\n"))
                .collect();
            format!("add this under its `repos:`:\n{hook}")
        }
        _ if text.contains(".gitlab/gpu-doctor.yml") => "it already includes the job".to_string(),
        _ => "add this to it:\ninclude:\n  - local: .gitlab/gpu-doctor.yml\n".to_string(),
    }
}

/// Write every target through a temporary file beside it; rename only when all are written.
fn write_all(dir: &Path, targets: &[&Target]) -> Result<(), InitError> {
    let mut staged: Vec<(crate::files::Staged, PathBuf)> = Vec::new();
    for t in targets {
        let path = dir.join(t.path);
        let parent = path.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent)
            .map_err(|e| InitError::Io(format!("cannot create {}: {e}", parent.display())))?;
        // Dropped on an error: the files staged so far are removed.
        let mut file = crate::files::Staged::create(&path)
            .and_then(|mut f| f.file().write_all(t.text.as_bytes()).map(|_| f))
            .map_err(|e| InitError::Io(format!("cannot write {}: {e}", path.display())))?;
        file.file()
            .sync_all()
            .map_err(|e| InitError::Io(format!("cannot write {}: {e}", path.display())))?;
        staged.push((file, path));
    }
    for (file, path) in staged {
        file.commit(false)
            .map_err(|e| InitError::Io(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}

fn summary(dir: &Path, targets: &[Target]) -> String {
    let mut out = String::new();
    for t in targets {
        // "gpu-doctor.toml" rather than "./gpu-doctor.toml" for the default folder.
        let shown = if dir == Path::new(".") {
            PathBuf::from(t.path)
        } else {
            dir.join(t.path)
        };
        match &t.instead {
            None => {
                let _ = writeln!(out, "wrote {}", shown.display());
            }
            Some(advice) => {
                let _ = writeln!(out, "left {} as it is: {advice}", shown.display());
            }
        }
    }
    out.push_str(
        "\nNext: set the requirements in gpu-doctor.toml, run `gpu-doctor` to see the verdict, \
         and `pre-commit install` to check before each commit.\n",
    );
    out
}
