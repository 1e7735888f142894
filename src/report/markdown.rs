//! The markdown format: an onboarding checklist. A heading with the verdict, then per report
//! section a task list: `- [x]` for each check that passed (or could not apply), `- [ ]` for
//! each that found something to do, with the explanation and the fix command in the judged
//! machine's shell (a ```powershell block for Windows facts, ```bash elsewhere). The Python section opens with the environment matrix as judged. A
//! finding another one causes is a ticked item that names its cause. GitHub, GitLab and most
//! wikis render the boxes; the github format appends the same text to $GITHUB_STEP_SUMMARY.
//!
//! Foreign text is escaped so it cannot open markup (a `*` in a GPU name, a `<` in an error),
//! and code fences are made longer than any run of backticks inside them.

use super::checks::{checks, Check, State};
use super::{severity_word, ReportInput};
use crate::fix::Shell;
use crate::rules::{Category, Finding, Severity};
use std::fmt::Write;

pub fn render(input: &ReportInput) -> String {
    let all = checks(input);
    let mut out = heading(input);
    let mut categories: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
    let mut others: Vec<&str> = all
        .iter()
        .map(|c| c.category)
        .filter(|c| !categories.contains(c))
        .collect();
    others.sort_unstable();
    others.dedup();
    categories.extend(others);
    for category in categories {
        let members: Vec<&Check> = all.iter().filter(|c| c.category == category).collect();
        if members.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n## {}\n", title_case(category));
        if category == "python" {
            environments(&mut out, &input.derived.python.matrix);
        }
        for check in members {
            item(&mut out, check, super::machine_shell(input));
        }
    }
    out
}

/// The environment matrix as judged (crate::rules::Judgement), as a table.
fn environments(out: &mut String, rows: &[crate::knowledge::derive::MatrixRow]) {
    if rows.is_empty() {
        return;
    }
    out.push_str(
        "| environment | python | torch | torch on GPU | llama.cpp GPU | verdict | used by |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|\n");
    for r in rows {
        let used_by = if r.used_by.is_empty() {
            "—".to_string()
        } else {
            r.used_by.join(", ")
        };
        let cells = [
            &r.env,
            &r.python,
            &r.torch,
            &r.cuda_usable,
            &r.llama,
            &r.verdict,
            &used_by,
        ];
        let cells: Vec<String> = cells.iter().map(|c| inline(c)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out.push('\n');
}

fn heading(input: &ReportInput) -> String {
    let v = input.verdict;
    let f = input.facts;
    let status = if v.ready { "ready" } else { "not ready" };
    let mut out = format!("# gpu-doctor: {status}\n\n");
    let host = f.host.hostname.as_deref().unwrap_or("this machine");
    let _ = writeln!(
        out,
        "{} · gpu-doctor {} · profile {} · {} error(s), {} warning(s), {} note(s) · fails on {} · exit code {}",
        inline(host),
        inline(&f.tool.version),
        inline(&f.profile),
        v.errors,
        v.warnings,
        v.infos,
        v.fail_on,
        v.exit_code,
    );
    for o in super::overrides(input.rules) {
        let _ = writeln!(out, "\n> {}", inline(&o.text()));
    }
    out
}

fn item(out: &mut String, check: &Check, shell: Shell) {
    let name = match &check.subject {
        Some(s) => format!("`{}` on {}", check.id, inline(s)),
        None => format!("`{}`", check.id),
    };
    match &check.state {
        State::Passed => {
            let _ = writeln!(out, "- [x] {name}");
        }
        State::NotApplicable => {
            let scope = check.rule.map(|r| r.scope.as_str()).unwrap_or("?");
            let _ = writeln!(out, "- [x] {name}: not applicable (no {scope} here)");
        }
        State::Found(found) => {
            for f in found {
                finding(out, &name, f, shell);
            }
        }
        State::Waived(waived) => {
            let _ = writeln!(out, "- [x] {name}: {}", inline(&super::waived_text(waived)));
        }
        State::CausedBy { finding, cause } => {
            let text = State::caused_by_text(finding, cause);
            let _ = writeln!(out, "- [x] {name}: {}", inline(&text));
        }
    }
}

/// A finding as an open task (a closed one for notes), with what to do indented under it.
fn finding(out: &mut String, name: &str, f: &Finding, shell: Shell) {
    let mark = if f.severity >= Severity::Warn {
        "[ ]"
    } else {
        "[x]"
    };
    let _ = writeln!(
        out,
        "- {mark} **{}** {name}: {}",
        severity_word(f.severity),
        inline(&f.title)
    );
    let _ = writeln!(out, "\n  {}", inline(&f.explain).replace('\n', "\n  "));
    for e in &f.evidence {
        let _ = writeln!(out, "  - {}", inline(e));
    }
    if let Some(cmd) = shell.command(f) {
        out.push('\n');
        fence(out, shell.fence(), cmd);
    }
    let consequences = super::consequence_lines(f);
    if !consequences.is_empty() {
        let _ = writeln!(out, "\n  {}", super::CONSEQUENCES_HEADING);
        for c in consequences {
            let _ = writeln!(out, "  - {}", inline(&c));
        }
    }
    out.push('\n');
}

/// A fenced code block, indented into the list item, with a fence no line inside can close.
fn fence(out: &mut String, lang: &str, code: &str) {
    let longest = longest_run(code, '`');
    let ticks = "`".repeat(longest.max(2) + 1);
    let _ = writeln!(out, "  {ticks}{lang}");
    for line in code.split('\n') {
        let _ = writeln!(out, "  {}", super::visible(line));
    }
    let _ = writeln!(out, "  {ticks}");
}

fn longest_run(s: &str, c: char) -> usize {
    let (mut best, mut run) = (0, 0);
    for ch in s.chars() {
        run = if ch == c { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

/// Text escaped for inline Markdown: punctuation that could start markup gets a backslash,
/// and line breaks become spaces so one item stays one item.
pub(super) fn inline(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|' | '~' | '!' | '&' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' => out.push(' '),
            c if c.is_control() => out.push_str(&super::visible(&c.to_string())),
            _ => out.push(c),
        }
    }
    out
}

fn title_case(s: &str) -> String {
    match s {
        "gpu" => "GPU".to_string(),
        "cuda" => "CUDA".to_string(),
        _ => {
            let mut chars = s.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_text_cannot_open_markup() {
        assert_eq!(inline("a*b_c <x>\n`y`"), "a\\*b\\_c \\<x\\> \\`y\\`");
    }

    #[test]
    fn fences_outgrow_backticks_inside() {
        let mut out = String::new();
        fence(&mut out, "bash", "echo ````x````");
        assert!(out.starts_with("  `````bash\n"), "{out}");
        assert!(out.ends_with("  `````\n"), "{out}");
    }
}
