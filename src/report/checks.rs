//! The list of checks that the CI formats (junit, sarif, markdown) show: every rule, once per
//! item of its scope, with the findings it made there, and the rules whose scope had no item.
//!
//! Findings only say what went wrong; a checklist or a test report must also list what passed
//! and what could not apply, so this crosses the rule set with the items the rules ran over.
//! Item names come from crate::rules::scope_subjects, the same code that names findings'
//! subjects, so a finding lands on its item's check.

use super::{ReportInput, Waived};
use crate::rules::{scope_subjects, Finding, Rule, Scope, Severity, EVALUATION_FAILED};
use std::collections::BTreeMap;

/// One check: a rule on one item (or on the host), and what it found there.
pub(super) struct Check<'a> {
    /// The rule's id (`rule-evaluation-failed` for a finding about a broken rule).
    pub id: &'a str,
    /// The rule, when it is in the rule set.
    pub rule: Option<&'a Rule>,
    pub category: &'a str,
    /// The item checked; `None` for host-scope rules and for rules with no item to check.
    pub subject: Option<String>,
    pub state: State<'a>,
}

pub(super) enum State<'a> {
    /// The rule ran and found nothing.
    Passed,
    /// The rule found something (normally one finding).
    Found(Vec<&'a Finding>),
    /// The rule's scope had no items on this machine (no GPU, no toolkit, ...).
    NotApplicable,
    /// The rule found something that the configuration waives.
    Waived(Vec<&'a Waived>),
    /// The rule found something that another finding causes: it is shown with its cause and
    /// counted there (crate::rules::group_by_cause).
    CausedBy {
        finding: &'a Finding,
        cause: &'a Finding,
    },
}

impl State<'_> {
    /// "a consequence of rule-id (subject), counted there: title".
    pub fn caused_by_text(finding: &Finding, cause: &Finding) -> String {
        let of = match &cause.subject {
            Some(s) => format!("{} on {s}", cause.rule),
            None => cause.rule.clone(),
        };
        format!("caused by {of}, counted there: {}", finding.title)
    }
}

impl Check<'_> {
    /// "driver-library-mismatch" or "no-kernel-image on GPU 0 (NVIDIA H100)".
    pub fn name(&self) -> String {
        match &self.subject {
            Some(s) => format!("{} on {s}", self.id),
            None => self.id.to_string(),
        }
    }

    /// The worst severity found, when something was.
    pub fn worst(&self) -> Option<Severity> {
        match &self.state {
            State::Found(found) => found.iter().map(|f| f.severity).max(),
            _ => None,
        }
    }
}

/// Every check, in rule order, items in the order the rules ran over them; findings that no
/// rule of the set explains (a broken rule) come last, one check each.
pub(super) fn checks<'a>(input: &ReportInput<'a>) -> Vec<Check<'a>> {
    let mut out = Vec::new();
    let mut used = vec![false; input.findings.len()];
    // Listing venvs derives their views, so each scope is listed once.
    let mut per_scope: BTreeMap<Scope, Option<Vec<String>>> = BTreeMap::new();
    for rule in input.rules.rules() {
        let subjects = per_scope
            .entry(rule.scope)
            .or_insert_with(|| scope_subjects(rule.scope, input.facts))
            .clone();
        let base = |subject: Option<String>, state: State<'a>| Check {
            id: rule.id.as_str(),
            rule: Some(rule),
            category: rule.category.as_str(),
            subject,
            state,
        };
        match subjects {
            None => out.push(base(None, take(input, &mut used, &rule.id, None))),
            Some(list) if list.is_empty() => out.push(base(None, State::NotApplicable)),
            Some(list) => {
                for s in list {
                    let state = take(input, &mut used, &rule.id, Some(&s));
                    out.push(base(Some(s), state));
                }
            }
        }
        // A finding whose item this module did not list still gets a check of its own.
        for (i, f) in input.findings.iter().enumerate() {
            if !used[i] && f.rule == rule.id {
                used[i] = true;
                out.push(base(f.subject.clone(), State::Found(vec![f])));
            }
        }
    }
    for (i, f) in input.findings.iter().enumerate() {
        if !used[i] {
            out.push(Check {
                id: f.rule.as_str(),
                rule: None,
                category: f.category.as_str(),
                subject: f.subject.clone(),
                state: State::Found(vec![f]),
            });
        }
    }
    out
}

/// The findings of `rule` about `subject`, marked as used; else its waived findings there.
fn take<'a>(
    input: &ReportInput<'a>,
    used: &mut [bool],
    rule: &str,
    subject: Option<&str>,
) -> State<'a> {
    let findings = input.findings;
    // A rule that could not be evaluated on the item did not pass there: its
    // rule-evaluation-failed finding (subject "rule ID on ITEM") is the check's result.
    let failed = match subject {
        Some(s) => format!("rule {rule} on {s}"),
        None => format!("rule {rule}"),
    };
    let mut found = Vec::new();
    for (i, f) in findings.iter().enumerate() {
        let own = f.rule == rule && f.subject.as_deref() == subject;
        let broken = f.rule == EVALUATION_FAILED && f.subject.as_deref() == Some(failed.as_str());
        if !used[i] && (own || broken) {
            used[i] = true;
            found.push(f);
        }
    }
    if !found.is_empty() {
        return State::Found(found);
    }
    let consequence = findings.iter().find_map(|cause| {
        cause
            .consequences
            .iter()
            .find(|c| c.rule == rule && c.subject.as_deref() == subject)
            .map(|finding| State::CausedBy { finding, cause })
    });
    if let Some(state) = consequence {
        return state;
    }
    let waived: Vec<&Waived> = input
        .waived
        .iter()
        .filter(|w| w.finding.rule == rule && w.finding.subject.as_deref() == subject)
        .collect();
    if waived.is_empty() {
        State::Passed
    } else {
        State::Waived(waived)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Facts;
    use crate::report::Verdict;
    use crate::rules::RuleSet;

    fn fixture_facts() -> Vec<(String, Facts)> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/facts");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            out.push((name.clone(), crate::app::parse_facts(&name, &text).unwrap()));
        }
        out
    }

    #[test]
    fn every_finding_lands_on_exactly_one_check_of_a_listed_item() {
        let rules = RuleSet::builtin().unwrap();
        for (name, facts) in fixture_facts() {
            let judgement = crate::rules::Judgement::new(&rules, &facts);
            let findings = &judgement.findings;
            let verdict = Verdict::new(findings, crate::cli::FailOn::Error);
            let input = ReportInput {
                facts: &facts,
                findings,
                derived: &judgement.derived,
                verdict: &verdict,
                verbose: false,
                rules: &rules,
                waived: &[],
                config: None,
            };
            let all = checks(&input);
            let placed: usize = all
                .iter()
                .map(|c| match &c.state {
                    State::Found(f) => f.len(),
                    _ => 0,
                })
                .sum();
            assert_eq!(placed, findings.len(), "{name}");
            for c in &all {
                let Some(rule) = c.rule else { continue };
                let listed = scope_subjects(rule.scope, &facts);
                match (&listed, &c.subject) {
                    (None, None) => {}
                    (Some(l), None) => assert!(l.is_empty(), "{name}: {}", c.name()),
                    (Some(l), Some(s)) => assert!(l.contains(s), "{name}: stray {}", c.name()),
                    (None, Some(s)) => panic!("{name}: host rule with subject {s}"),
                }
            }
        }
    }

    #[test]
    fn a_rule_that_failed_to_evaluate_is_not_shown_as_passed() {
        let mut rules = RuleSet::empty();
        rules
            .load_str(
                "t.toml",
                r#"
[[rule]]
id = "bad-rule"
category = "host"
severity = "warn"
since = "0.1.0"
when = "host.env.other['NO_SUCH_KEY'] == 'x'"
title = "never"
explain = "never"
fix.none = "test"
docs = "test"
"#,
            )
            .unwrap();
        let facts = fixture_facts().remove(0).1;
        let judgement = crate::rules::Judgement::new(&rules, &facts);
        let findings = &judgement.findings;
        assert_eq!(findings.len(), 1, "{findings:?}");
        let verdict = Verdict::new(findings, crate::cli::FailOn::Error);
        let input = ReportInput {
            facts: &facts,
            findings,
            derived: &judgement.derived,
            verdict: &verdict,
            verbose: false,
            rules: &rules,
            waived: &[],
            config: None,
        };
        let all = checks(&input);
        assert_eq!(all.len(), 1);
        assert!(matches!(all[0].state, State::Found(_)), "{}", all[0].name());
    }
}
