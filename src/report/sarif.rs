//! The sarif format: one SARIF 2.1.0 log, for code-scanning tools (GitHub code scanning,
//! Azure DevOps, SARIF viewers). Valid against the official 2.1.0 JSON schema.
//!
//! `tool.driver.rules` lists every rule judged with (id, name, short and full description,
//! help with the fix commands as Markdown, default level); `results` has one result per
//! finding, with its level (error, warning, note), the message, a logical location naming
//! the item it is about (the GPU, the toolkit, the environment), and a partial fingerprint
//! so repeated uploads recognise the same finding. `invocations` carries the exit code.
//!
//! SARIF's `fixes` describe edits to files, which a fix command is not, so the commands go in
//! the message and in the result's `properties.fix`. A finding about the machine has no file
//! to point at; it gets a logical location only (which the schema allows).

use super::ReportInput;
use crate::app::AppError;
use crate::fix::Shell;
use crate::rules::{Finding, Rule, Severity};
use serde_json::{json, Value};

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

pub fn render(input: &ReportInput) -> Result<String, AppError> {
    let rules: Vec<&Rule> = input.rules.rules().iter().collect();
    let log = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "gpu-doctor",
                "version": input.facts.tool.version,
                "rules": rules.iter().map(|r| descriptor(r)).collect::<Vec<_>>(),
            }},
            "invocations": [{
                "executionSuccessful": true,
                "exitCode": input.verdict.exit_code,
            }],
            "results": input.findings.iter().map(|f| result(f, &rules, super::machine_shell(input)))
                .chain(input.waived.iter().map(|w| suppressed(w, &rules, super::machine_shell(input))))
                .collect::<Vec<_>>(),
            "properties": {
                "ready": input.verdict.ready,
                "failOn": input.verdict.fail_on,
                "profile": input.facts.profile,
                "overrides": super::overrides(input.rules),
            },
        }],
    });
    let mut text =
        serde_json::to_string_pretty(&log).map_err(|e| AppError::Internal(e.to_string()))?;
    text.push('\n');
    Ok(text)
}

/// A reportingDescriptor for one rule.
fn descriptor(rule: &Rule) -> Value {
    let mut help = rule.docs.trim().to_string();
    for (lang, fixes) in [
        ("bash", &rule.fix_bash_alternatives),
        ("powershell", &rule.fix_powershell_alternatives),
    ] {
        for fix in fixes.iter() {
            help.push_str(&format!("\n\n```{lang}\n{fix}\n```"));
        }
    }
    if let Some(none) = &rule.fix_none {
        help.push_str(&format!("\n\nNo fix command: {none}."));
    }
    json!({
        "id": rule.id,
        "name": pascal(&rule.id),
        "shortDescription": { "text": rule.title },
        "fullDescription": { "text": rule.explain },
        "help": { "text": rule.docs.trim(), "markdown": help },
        "defaultConfiguration": { "level": level(rule.severity) },
        "properties": {
            "category": rule.category.as_str(),
            "scope": rule.scope.as_str(),
            "tags": [rule.category.as_str()],
            "source": format!("{}:{}", rule.source, rule.line),
        },
    })
}

/// A result for one finding.
fn result(f: &Finding, rules: &[&Rule], shell: Shell) -> Value {
    let mut result = json!({
        "ruleId": f.rule,
        "level": level(f.severity),
        "message": { "text": message(f, shell) },
        "partialFingerprints": {
            "gpuDoctorFinding/v1": format!("{}|{}", f.rule, f.subject.as_deref().unwrap_or("host")),
        },
        "properties": {
            "category": f.category,
            "scope": f.scope,
            "evidence": f.evidence,
            "fix": f.fix,
        },
    });
    if let Some(index) = rules.iter().position(|r| r.id == f.rule) {
        result["ruleIndex"] = json!(index);
    }
    if let Some(subject) = &f.subject {
        result["locations"] = json!([{
            "logicalLocations": [{ "name": subject, "kind": f.scope }],
        }]);
    }
    result
}

/// A waived finding: a result with an accepted external suppression (the configuration's
/// waiver), which code-scanning tools show as dismissed.
fn suppressed(w: &super::Waived, rules: &[&Rule], shell: Shell) -> Value {
    let mut r = result(&w.finding, rules, shell);
    r["suppressions"] = json!([{
        "kind": "external",
        "status": "accepted",
        "justification": format!("{} (until {}, {})", w.waiver.reason, w.waiver.expires, w.waiver.source),
    }]);
    r
}

/// Title, explanation and fix commands as plain text.
fn message(f: &Finding, shell: Shell) -> String {
    let mut m = format!("{}\n\n{}", f.title, f.explain);
    for e in &f.evidence {
        m.push_str(&format!("\n- {e}"));
    }
    if let Some(cmd) = shell.command(f) {
        m.push_str(&format!("\n\nFix ({}): {cmd}", shell.name()));
    }
    let consequences = super::consequence_lines(f);
    if !consequences.is_empty() {
        m.push_str(&format!("\n\n{}", super::CONSEQUENCES_HEADING));
        for c in consequences {
            m.push_str(&format!("\n- {c}"));
        }
    }
    m
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warn => "warning",
        Severity::Info => "note",
    }
}

/// "driver-library-mismatch" -> "DriverLibraryMismatch", SARIF's customary rule name.
fn pascal(id: &str) -> String {
    id.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_are_pascal_case() {
        assert_eq!(pascal("driver-library-mismatch"), "DriverLibraryMismatch");
        assert_eq!(pascal("cuda_device-x"), "CudaDeviceX");
    }
}
