//! `--format json` of `rules`, `explain`, `model` and `fix`: one JSON document each, built from
//! the same values as the human output. Their JSON Schemas are published in docs/*.schema.json
//! (generated, checked by a test, like the facts' and the report's). Fields may be added; none
//! are removed or renamed.

use crate::app::AppError;
use crate::fix::{Action, Shell, Step};
use crate::gguf::model::{FitEstimate, ModelSummary};
use crate::rules::{Rule, RuleSet, Severity};
use schemars::JsonSchema;
use serde::Serialize;

/// `gpu-doctor rules --format json`.
#[derive(Serialize, JsonSchema)]
pub struct RuleList {
    pub rules: Vec<RuleEntry>,
}

/// One rule as `gpu-doctor rules` lists it.
#[derive(Serialize, JsonSchema)]
pub struct RuleEntry {
    pub id: String,
    pub severity: Severity,
    /// The report section: host, driver, gpu, cuda, toolkit, python, llama or probe.
    pub category: String,
    /// What it is judged per: host, gpu, toolkit, probe, cuda_device, venv or llama.
    pub scope: String,
    /// The version that introduced it.
    pub since: String,
    /// The title template, as written.
    pub title: String,
    /// Built into gpu-doctor, or from a rule file.
    pub builtin: bool,
    /// The file and line of its `id`.
    pub source: String,
    pub line: usize,
    /// What a user sees when it applies (log lines, error messages), as the rule lists them.
    pub symptoms: Vec<String>,
}

/// `gpu-doctor explain RULE --format json`.
#[derive(Serialize, JsonSchema)]
pub struct RuleExplanation {
    #[serde(flatten)]
    pub rule: RuleEntry,
    /// Rules whose findings cause this one's.
    pub caused_by: Vec<String>,
    /// The CEL condition, as written.
    pub when: String,
    /// The explanation template, as written.
    pub explain: String,
    /// The longer Markdown text: why it matters, when it fires, how to fix.
    pub docs: String,
    /// The fix templates per shell (each alternative, the first usable one is shown), or why
    /// there is none.
    pub fix: RuleFixes,
}

#[derive(Serialize, JsonSchema)]
pub struct RuleFixes {
    pub bash: Vec<String>,
    pub powershell: Vec<String>,
    pub none: Option<String>,
}

/// `gpu-doctor model FILE --format json`.
#[derive(Serialize, JsonSchema)]
pub struct ModelDocument<'a> {
    pub model: &'a ModelSummary,
    /// Where the free GPU memory planned for came from: `--free-mib`, or the GPU as NVML
    /// reported it; absent when unknown.
    pub free_memory: Option<String>,
    /// Why there is no fit estimate, when there is none.
    pub no_estimate: Option<String>,
    /// How many layers fit; absent without a known free memory.
    pub fit: Option<&'a FitEstimate>,
}

/// `gpu-doctor fix --format json`: the plan, which nothing ran.
#[derive(Serialize, JsonSchema)]
pub struct FixPlan {
    /// bash or powershell.
    pub shell: String,
    pub steps: Vec<PlanStep>,
}

#[derive(Serialize, JsonSchema)]
pub struct PlanStep {
    /// The command, quoted for the shell.
    pub command: String,
    /// What `fix --yes` would do with it: run; your_shell (it changes only the shell it runs
    /// in); reboot (left to you); untrusted (from a rule file you have not trusted).
    pub action: String,
    /// "rule-id: title" of each finding it fixes.
    pub fixes: Vec<String>,
    /// The untrusted rule file it comes from.
    pub source: Option<String>,
}

fn entry(r: &Rule) -> RuleEntry {
    RuleEntry {
        id: r.id.clone(),
        severity: r.severity,
        category: r.category.as_str().to_string(),
        scope: r.scope.as_str().to_string(),
        since: r.since.clone(),
        title: r.title.clone(),
        builtin: r.builtin,
        source: r.source.clone(),
        line: r.line,
        symptoms: r.symptoms.clone(),
    }
}

pub fn rule_list(rules: &RuleSet) -> RuleList {
    RuleList {
        rules: rules.rules().iter().map(entry).collect(),
    }
}

/// `gpu-doctor explain TEXT --format json` where TEXT is a symptom: the rules that list it, as
/// `gpu-doctor rules` lists them.
pub fn symptom_list(matches: &[(&Rule, &str)]) -> RuleList {
    RuleList {
        rules: matches.iter().map(|(r, _)| entry(r)).collect(),
    }
}

pub fn explanation(r: &Rule) -> RuleExplanation {
    RuleExplanation {
        rule: entry(r),
        caused_by: r.caused_by.clone(),
        when: r.when.clone(),
        explain: r.explain.clone(),
        docs: r.docs.clone(),
        fix: RuleFixes {
            bash: r.fix_bash_alternatives.clone(),
            powershell: r.fix_powershell_alternatives.clone(),
            none: r.fix_none.clone(),
        },
    }
}

pub fn fix_plan(steps: &[Step], shell: Shell) -> FixPlan {
    let action = |a: Action| match a {
        Action::Run => "run",
        Action::YourShell => "your_shell",
        Action::Reboot => "reboot",
        Action::Untrusted => "untrusted",
    };
    FixPlan {
        shell: shell.fence().to_string(),
        steps: steps
            .iter()
            .map(|s| PlanStep {
                command: s.command.clone(),
                action: action(s.action).to_string(),
                fixes: s.fixes.clone(),
                source: s.source.clone(),
            })
            .collect(),
    }
}

/// Pretty JSON with a final newline.
pub fn to_json<T: Serialize>(value: &T) -> Result<String, AppError> {
    let mut text =
        serde_json::to_string_pretty(value).map_err(|e| AppError::Internal(e.to_string()))?;
    text.push('\n');
    Ok(text)
}

/// Each published schema: its file under docs/ and its text.
pub fn json_schemas() -> Vec<(&'static str, String)> {
    let text = |schema: schemars::Schema| {
        let mut t = serde_json::to_string_pretty(&schema).unwrap_or_default();
        t.push('\n');
        t
    };
    vec![
        ("rules.schema.json", text(schemars::schema_for!(RuleList))),
        (
            "explain.schema.json",
            text(schemars::schema_for!(RuleExplanation)),
        ),
        (
            "model.schema.json",
            text(schemars::schema_for!(ModelDocument<'static>)),
        ),
        ("fix.schema.json", text(schemars::schema_for!(FixPlan))),
    ]
}

#[cfg(test)]
mod tests {
    /// docs/{rules,explain,model,fix}.schema.json are generated from these types; this fails
    /// when one is stale. Regenerate with `make docs`.
    #[test]
    fn published_schema_is_current() {
        for (name, current) in super::json_schemas() {
            let path = format!("{}/docs/{name}", env!("CARGO_MANIFEST_DIR"));
            crate::facts::check_published(&path, &current);
        }
    }
}
