//! The junit format: JUnit XML for CI test reports (GitLab's unit test reports, Jenkins'
//! junit and xunit plugins).
//!
//! There is no single JUnit standard; this writes the subset that both read and that validates
//! against the Surefire/Jenkins `junit-10.xsd`: `testsuites` > one `testsuite` per category
//! (host, driver, gpu, ...) > one `testcase` per rule and item. A check whose finding is at or
//! above the fail level is a `failure` (so the report has failures exactly when the exit code
//! is 1); a finding below it passes with the text in `system-out`; a rule whose scope had no
//! item (no GPU, no toolkit) is `skipped`. `testcase@file` is not written: the XSD forbids it.
//!
//! Everything foreign is escaped, and characters XML 1.0 cannot carry at all (control
//! characters, U+FFFE, U+FFFF) are dropped, so any Facts give a well-formed document.

use super::checks::{checks, Check, State};
use super::{severity_word, ReportInput};
use crate::fix::Shell;
use crate::rules::{Category, Finding};
use std::fmt::Write;

/// The classname prefix: GitLab shows the classname as the suite's name.
const PREFIX: &str = "gpu-doctor";

pub fn render(input: &ReportInput) -> String {
    let all = checks(input);
    let suites = group(&all);
    let failures = all.iter().filter(|c| is_failure(input, c)).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"{PREFIX}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{}\">",
        all.len(),
        seconds(total_ms(input)),
    );
    for (i, (category, members)) in suites.iter().enumerate() {
        suite(&mut out, input, category, members, i == 0);
    }
    out.push_str("</testsuites>\n");
    out
}

/// The checks grouped by category, in report order; unknown categories after, by name.
fn group<'c, 'a>(all: &'c [Check<'a>]) -> Vec<(String, Vec<&'c Check<'a>>)> {
    let rank = |c: &str| {
        Category::ALL
            .iter()
            .position(|k| k.as_str() == c)
            .unwrap_or(Category::ALL.len())
    };
    let mut names: Vec<&str> = all.iter().map(|c| c.category).collect();
    names.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    names.dedup();
    names
        .into_iter()
        .map(|n| {
            let members = all.iter().filter(|c| c.category == n).collect();
            (n.to_string(), members)
        })
        .collect()
}

fn suite(out: &mut String, input: &ReportInput, category: &str, members: &[&Check], first: bool) {
    let failures = members.iter().filter(|c| is_failure(input, c)).count();
    let skipped = members
        .iter()
        .filter(|c| {
            matches!(
                c.state,
                State::NotApplicable | State::Waived(_) | State::CausedBy { .. }
            )
        })
        .count();
    let hostname = input.facts.host.hostname.as_deref().unwrap_or("");
    let _ = writeln!(
        out,
        "  <testsuite name=\"{PREFIX}.{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{}\" hostname=\"{}\">",
        attr(category),
        members.len(),
        seconds(probe_ms(input, category)),
        attr(hostname),
    );
    if first {
        properties(out, input);
    }
    for check in members {
        testcase(out, input, category, check);
    }
    out.push_str("  </testsuite>\n");
}

/// Run-wide facts, once, so a CI page shows which gpu-doctor judged which machine how.
fn properties(out: &mut String, input: &ReportInput) {
    let f = input.facts;
    let v = input.verdict;
    let props = [
        ("gpu-doctor.version", f.tool.version.clone()),
        ("facts.schema_version", f.schema_version.to_string()),
        ("profile", f.profile.clone()),
        ("fail_on", v.fail_on.to_string()),
        ("ready", v.ready.to_string()),
        ("exit_code", v.exit_code.to_string()),
    ];
    let overrides = super::overrides(input.rules)
        .iter()
        .map(|o| ("gpu-doctor.override", o.text()))
        .collect::<Vec<_>>();
    out.push_str("    <properties>\n");
    for (name, value) in props.into_iter().chain(overrides) {
        let _ = writeln!(
            out,
            "      <property name=\"{}\" value=\"{}\"/>",
            attr(name),
            attr(&value)
        );
    }
    out.push_str("    </properties>\n");
}

fn testcase(out: &mut String, input: &ReportInput, category: &str, check: &Check) {
    let _ = write!(
        out,
        "    <testcase name=\"{}\" classname=\"{PREFIX}.{}\" time=\"0\"",
        attr(&check.name()),
        attr(category),
    );
    match &check.state {
        State::Passed => out.push_str("/>\n"),
        State::NotApplicable => {
            let _ = writeln!(
                out,
                ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                attr(&format!(
                    "not applicable: nothing of scope {} on this machine",
                    check.rule.map(|r| r.scope.as_str()).unwrap_or("?")
                ))
            );
        }
        State::Waived(waived) => {
            let _ = writeln!(
                out,
                ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                attr(&super::waived_text(waived))
            );
        }
        State::CausedBy { finding, cause } => {
            let _ = writeln!(
                out,
                ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                attr(&State::caused_by_text(finding, cause))
            );
        }
        State::Found(found) => {
            out.push_str(">\n");
            for f in found {
                finding(out, input, f);
            }
            out.push_str("    </testcase>\n");
        }
    }
}

/// A failure when the finding fails the run, else its text as output of a passing test.
fn finding(out: &mut String, input: &ReportInput, f: &Finding) {
    let body = text(&details(f, super::machine_shell(input)));
    if input.verdict.fails(f.severity) {
        let _ = writeln!(
            out,
            "      <failure message=\"{}\" type=\"{}\">{body}</failure>",
            attr(&format!("{}: {}", severity_word(f.severity), f.title)),
            attr(&f.rule),
        );
    } else {
        let _ = writeln!(
            out,
            "      <system-out>{}: {}\n{body}</system-out>",
            severity_word(f.severity),
            text(&f.title),
        );
    }
}

/// The finding's explanation, evidence and fix commands, as plain text.
fn details(f: &Finding, shell: Shell) -> String {
    let mut s = format!("{}\n\n{}\n", f.title, f.explain);
    for e in &f.evidence {
        let _ = writeln!(s, "  evidence: {e}");
    }
    if let Some(cmd) = shell.command(f) {
        let _ = writeln!(s, "fix ({}): {cmd}", shell.name());
    }
    let consequences = super::consequence_lines(f);
    if !consequences.is_empty() {
        let _ = writeln!(s, "{}", super::CONSEQUENCES_HEADING);
        for c in consequences {
            let _ = writeln!(s, "  - {c}");
        }
    }
    let _ = writeln!(s, "details: gpu-doctor explain {}", f.rule);
    s
}

fn is_failure(input: &ReportInput, check: &Check) -> bool {
    check.worst().is_some_and(|s| input.verdict.fails(s))
}

fn total_ms(input: &ReportInput) -> f64 {
    input.facts.probes.values().map(|p| p.duration_ms).sum()
}

/// The time of the probe that feeds a category; 0 when none does.
fn probe_ms(input: &ReportInput, category: &str) -> f64 {
    let probe = match category {
        "gpu" => "driver",
        "toolkit" => "toolkits",
        other => other,
    };
    input
        .facts
        .probes
        .get(probe)
        .map(|p| p.duration_ms)
        .unwrap_or(0.0)
}

/// Seconds with 3 decimals, as the XSD's SUREFIRE_TIME wants (no exponent, no sign).
fn seconds(ms: f64) -> String {
    if ms.is_finite() && ms > 0.0 {
        format!("{:.3}", ms / 1000.0)
    } else {
        "0.000".to_string()
    }
}

/// Whether XML 1.0 can carry this character at all.
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

/// Escaped for element content.
pub(super) fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().filter(|&c| xml_char(c)) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            _ => out.push(c),
        }
    }
    out
}

/// Escaped for a double-quoted attribute; whitespace as character references so a parser's
/// attribute normalisation keeps it.
pub(super) fn attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().filter(|&c| xml_char(c)) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_drops_what_xml_cannot_carry() {
        assert_eq!(
            attr("a<b>&\"c'\n\u{1}\u{FFFF}é"),
            "a&lt;b&gt;&amp;&quot;c&apos;&#10;é"
        );
        assert_eq!(text("x < y && \u{0}z\r"), "x &lt; y &amp;&amp; z&#13;");
    }

    #[test]
    fn time_fits_the_surefire_pattern() {
        assert_eq!(seconds(1234.5678), "1.235");
        assert_eq!(seconds(f64::NAN), "0.000");
        assert_eq!(seconds(-3.0), "0.000");
    }
}
