//! The github format: GitHub Actions workflow commands, one annotation per finding
//! (`::error title=...::message`, `::warning`, `::notice`), then one plain verdict line; and,
//! when $GITHUB_STEP_SUMMARY names a file, the markdown checklist appended to it.
//!
//! Escaping follows the runner's (and @actions/core's) rules: in the message `%`, CR and LF
//! become `%25`, `%0D`, `%0A`; in property values `:` and `,` also become `%3A`, `%2C`. So an
//! annotation is always one line, and no text from a machine can start a command of its own.
//!
//! The summary is appended with a single write of the whole text, cut to GitHub's 1 MiB limit
//! for a step summary. Failing to write it is said on stderr and does not change the exit
//! code: every format gives the same exit code for the same findings.

use super::{markdown, severity_word, ReportInput};
use crate::app::AppError;
use crate::fix::Shell;
use crate::rules::{Finding, Severity};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

/// GitHub refuses step summaries larger than this.
const SUMMARY_LIMIT: usize = 1024 * 1024;

pub fn render(input: &ReportInput) -> Result<String, AppError> {
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        let summary = markdown::render(input);
        if let Err(e) = append_summary(Path::new(&path), &summary) {
            eprintln!(
                "gpu-doctor: cannot append the summary to $GITHUB_STEP_SUMMARY ({}): {e}",
                Path::new(&path).display()
            );
        }
    }
    Ok(annotations(input))
}

/// One workflow command per finding, then the verdict.
fn annotations(input: &ReportInput) -> String {
    let mut out = String::new();
    for f in input.findings {
        out.push_str(&annotation(f, super::machine_shell(input)));
        out.push('\n');
    }
    for o in super::overrides(input.rules) {
        let _ = writeln!(
            out,
            "::warning title=gpu-doctor: {}::{}",
            escape_property(&o.rule),
            escape_data(&o.text())
        );
    }
    let v = input.verdict;
    let _ = writeln!(
        out,
        "gpu-doctor: {} ({} error(s), {} warning(s), {} note(s){}; fails on {})",
        if v.ready { "ready" } else { "not ready" },
        v.errors,
        v.warnings,
        v.infos,
        if v.waived > 0 {
            format!(", {} waived", v.waived)
        } else {
            String::new()
        },
        v.fail_on
    );
    out
}

/// `::error title=rule-id: title::message` for one finding.
fn annotation(f: &Finding, shell: Shell) -> String {
    let command = match f.severity {
        Severity::Error => "error",
        Severity::Warn => "warning",
        Severity::Info => "notice",
    };
    let title = match &f.subject {
        Some(s) => format!("{} ({s}): {}", f.rule, f.title),
        None => format!("{}: {}", f.rule, f.title),
    };
    format!(
        "::{command} title={}::{}",
        escape_property(&title),
        escape_data(&message(f, shell))
    )
}

/// The annotation's body: what is wrong, why, and the fix.
fn message(f: &Finding, shell: Shell) -> String {
    let mut m = format!("{} [{}]\n{}", f.title, severity_word(f.severity), f.explain);
    for e in &f.evidence {
        let _ = write!(m, "\n  evidence: {e}");
    }
    if let Some(cmd) = shell.command(f) {
        let _ = write!(m, "\nFix ({}): {cmd}", shell.name());
    }
    let consequences = super::consequence_lines(f);
    if !consequences.is_empty() {
        let _ = write!(m, "\n{}", super::CONSEQUENCES_HEADING);
        for c in consequences {
            let _ = write!(m, "\n  - {c}");
        }
    }
    let _ = write!(m, "\nDetails: gpu-doctor explain {}", f.rule);
    m
}

/// Escaping for a command's message (@actions/core `escapeData`).
pub(super) fn escape_data(s: &str) -> String {
    let escaped = s
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A");
    // Every other control character is written out.
    super::visible(&escaped).into_owned()
}

/// Escaping for a property value (@actions/core `escapeProperty`).
pub(super) fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Append `summary` to the step summary file with one write, cut to the size GitHub takes.
fn append_summary(path: &Path, summary: &str) -> std::io::Result<()> {
    let text = cut(summary, SUMMARY_LIMIT);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)?;
    file.write_all(text.as_bytes())
}

/// At most `limit` bytes of `s`, cut on a character boundary, with a note when cut.
fn cut(s: &str, limit: usize) -> String {
    if s.len() <= limit {
        return s.to_string();
    }
    const NOTE: &str = "\n\n(summary cut to GitHub's 1 MiB limit; run gpu-doctor for the rest)\n";
    let mut end = limit.saturating_sub(NOTE.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{NOTE}", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_actions_core() {
        // The golden string verified against @actions/core 3.0.1 (fleet-contracts.md §6).
        let line = format!(
            "::error title={},file={}::{}",
            escape_property("GD001: driver"),
            escape_property("env/a,b.toml"),
            escape_data("NVML init failed\nFix: … (100% sure)")
        );
        assert_eq!(
            line,
            "::error title=GD001%3A driver,file=env/a%2Cb.toml::NVML init failed%0AFix: … (100%25 sure)"
        );
        assert_eq!(escape_data("a\r\n%0A"), "a%0D%0A%250A");
    }

    #[test]
    fn cuts_on_a_character_boundary() {
        let s = "é".repeat(1000);
        let c = cut(&s, 200);
        assert!(c.len() <= 200, "{}", c.len());
        assert!(c.ends_with("rest)\n"));
        assert_eq!(cut("short", 200), "short");
    }
}
