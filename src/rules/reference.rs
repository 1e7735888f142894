//! The rule reference (docs/rules.md), generated from the rules themselves so that it cannot
//! disagree with them. A test fails when the committed file is stale.

use super::{Category, Rule, RuleSet};
use std::fmt::Write;

/// Markdown for every rule of `rules`: an index, then one section per rule, grouped by
/// category in report order.
pub fn render_reference(rules: &RuleSet) -> String {
    let mut out = String::new();
    out.push_str("# Rule reference\n\n");
    out.push_str(
        "<!-- Generated from rules/*.toml by `UPDATE_DOCS=1 cargo test --lib rules::`. Do not edit by hand. -->\n\n",
    );
    out.push_str(
        "Every check gpu-doctor makes is a rule: a TOML table with a CEL condition over the \
         machine's facts. `gpu-doctor explain <id>` prints one of these sections; \
         [writing-rules.md](writing-rules.md) explains how to write your own. In titles and \
         fixes, `{path}` stands for a value read from the facts of the machine being checked; \
         in a fix it is quoted for the shell.\n\n",
    );
    out.push_str(
        "One root cause is reported once. A rule that names others in `caused_by` makes \
         consequences: when a finding of one of those rules is present (about the same Python \
         environment, when it is about one; any, when it is about the whole machine), this \
         rule's finding is shown under it, in every format, and is not counted again; chains \
         collapse onto their first cause. The exit code still weighs every finding. Each \
         rule's section lists its causes.\n\n",
    );
    out.push_str("| id | severity | category | scope | title |\n|---|---|---|---|---|\n");
    let ordered = ordered(rules);
    for r in &ordered {
        let title = r.title.replace('|', "\\|");
        let _ = writeln!(
            out,
            "| [`{}`](#{}) | {} | {} | {} | {} |",
            r.id,
            r.id,
            r.severity.as_str(),
            r.category,
            r.scope,
            title
        );
    }
    for category in Category::ALL {
        let in_category: Vec<&&Rule> = ordered.iter().filter(|r| r.category == category).collect();
        if in_category.is_empty() {
            continue;
        }
        let _ = write!(out, "\n## Category `{category}`\n");
        for rule in in_category {
            section(&mut out, rule);
        }
    }
    out
}

/// Markdown for docs/symptoms.md: every symptom of `rules`, in alphabetical order, with the
/// rules that list it, so that someone arriving with a log line or an error message finds the
/// cause by what they saw.
pub fn render_symptoms(rules: &RuleSet) -> String {
    let mut out = String::new();
    out.push_str("# Symptoms\n\n");
    out.push_str(
        "<!-- Generated from the `symptoms` of rules/*.toml by `UPDATE_DOCS=1 cargo test --lib rules::`. Do not edit by hand. -->\n\n",
    );
    out.push_str(
        "What you may see when GPU work does not run on the GPU, and the rules that check for \
         its causes. `gpu-doctor explain \"TEXT\"` searches these symptoms (letter case \
         aside; a whole log line finds the symptom it contains); `gpu-doctor check` tells \
         which cause this machine has. Each rule is described in [rules.md](rules.md).\n\n",
    );
    let mut by_symptom: Vec<(&str, Vec<&Rule>)> = Vec::new();
    for rule in ordered(rules) {
        for symptom in &rule.symptoms {
            let key = symptom.to_lowercase();
            match by_symptom.iter_mut().find(|(s, _)| s.to_lowercase() == key) {
                Some((_, listed)) => listed.push(rule),
                None => by_symptom.push((symptom, vec![rule])),
            }
        }
    }
    by_symptom.sort_by_key(|(s, _)| s.to_lowercase());
    out.push_str("| you see | rules that check for its causes |\n|---|---|\n");
    for (symptom, listed) in &by_symptom {
        let links: Vec<String> = listed
            .iter()
            .map(|r| format!("[`{}`](rules.md#{})", r.id, r.id))
            .collect();
        let _ = writeln!(
            out,
            "| `{}` | {} |",
            symptom.replace('|', "\\|"),
            links.join(", ")
        );
    }
    out
}

/// Rules by category (report order), then id.
fn ordered(rules: &RuleSet) -> Vec<&Rule> {
    let mut list: Vec<&Rule> = rules.rules().iter().collect();
    list.sort_by(|a, b| a.category.cmp(&b.category).then_with(|| a.id.cmp(&b.id)));
    list
}

fn section(out: &mut String, r: &Rule) {
    let _ = write!(
        out,
        "\n### {}\n\n**{}** · category `{}` · scope `{}` · since {} · defined in `{}`\n\n",
        r.id,
        r.severity.as_str(),
        r.category,
        r.scope,
        r.since,
        r.source
    );
    let _ = write!(out, "**Title:** {}\n\n", r.title);
    if !r.caused_by.is_empty() {
        let causes: Vec<String> = r
            .caused_by
            .iter()
            .map(|c| format!("[`{c}`](#{c})"))
            .collect();
        let _ = write!(
            out,
            "**Shown under, and not counted apart from:** {}\n\n",
            causes.join(", ")
        );
    }
    if !r.symptoms.is_empty() {
        let seen: Vec<String> = r.symptoms.iter().map(|s| format!("`{s}`")).collect();
        let _ = write!(
            out,
            "**Symptoms** ([symptoms.md](symptoms.md)): {}\n\n",
            seen.join(" · ")
        );
    }
    let _ = write!(out, "**Fires when:**\n\n```cel\n{}\n```\n\n", r.when.trim());
    let docs = r.docs.trim();
    if docs.is_empty() {
        let _ = writeln!(out, "{}", r.explain.trim());
    } else {
        let _ = writeln!(out, "{docs}");
    }
    fixes(out, "bash", "bash", &r.fix_bash_alternatives);
    fixes(
        out,
        "PowerShell",
        "powershell",
        &r.fix_powershell_alternatives,
    );
    if let Some(reason) = &r.fix_none {
        let _ = write!(out, "\n**No fix command:** {}\n", reason.trim());
    }
}

/// A fix's code block; alternatives get one block each, in the order they are tried.
fn fixes(out: &mut String, shell: &str, lang: &str, alternatives: &[String]) {
    match alternatives {
        [] => {}
        [one] => {
            let _ = write!(
                out,
                "\n**Fix ({shell}):**\n\n```{lang}\n{}\n```\n",
                one.trim()
            );
        }
        many => {
            let _ = write!(
                out,
                "\n**Fix ({shell}):** the first of these whose values are known on the machine:\n"
            );
            for (i, fix) in many.iter().enumerate() {
                let _ = write!(
                    out,
                    "\n*Alternative {}:*\n\n```{lang}\n{}\n```\n",
                    i + 1,
                    fix.trim()
                );
            }
        }
    }
}
