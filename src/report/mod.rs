//! Reports: one module per output format. Renderers only read the Facts and what judging
//! decided (findings, derived values, the environment matrix); none probes or judges.
//!
//! Every format is rendered to a String first and written whole, and every format returns the
//! same exit code for the same findings: the verdict is computed once, here.

mod checks;
pub mod data;
mod github;
mod human;
mod json;
pub use json::json_schema as report_json_schema;
mod junit;
mod line;
mod markdown;
mod prom;
mod sarif;
mod visible;

use crate::app::AppError;
use crate::cli::{FailOn, Format};
use crate::facts::Facts;
use crate::rules::{Finding, Rule, RuleSet, Severity};
use serde::Serialize;

pub use visible::visible;

/// Everything a renderer may use.
pub struct ReportInput<'a> {
    pub facts: &'a Facts,
    /// The findings, each consequence under its cause (crate::rules::Judgement).
    pub findings: &'a [Finding],
    /// The values the findings were judged with: the environment matrix and each
    /// environment's verdict are `derived.python.matrix`. Rendered, never recomputed.
    pub derived: &'a crate::knowledge::derive::Derived,
    pub verdict: &'a Verdict,
    pub verbose: bool,
    /// The rules judged with: formats that list every check (junit, sarif, markdown) need the
    /// ones that found nothing too.
    pub rules: &'a RuleSet,
    /// Findings an active waiver of the configuration covers: shown as waived, not counted.
    pub waived: &'a [Waived],
    /// The configuration file used, as messages name it.
    pub config: Option<&'a str>,
}

/// A finding that an active waiver covers, and the waiver.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Waived {
    #[serde(flatten)]
    pub finding: Finding,
    pub waiver: WaiverNote,
}

/// "waived until 2027-01-31: reason (gpu-doctor.toml:12)", for formats that list checks.
pub(crate) fn waived_text(waived: &[&Waived]) -> String {
    waived
        .iter()
        .map(|w| {
            format!(
                "waived until {}: {} ({}): {}",
                w.waiver.expires, w.waiver.reason, w.waiver.source, w.finding.title
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The findings a finding causes, one line each ("title (rule on subject)", control characters
/// escaped), for the formats that show them inside their cause's text. They are not counted on
/// their own.
pub(crate) fn consequence_lines(f: &Finding) -> Vec<String> {
    f.consequences
        .iter()
        .map(|c| match &c.subject {
            Some(s) => format!("{} ({} on {s})", c.title, c.rule),
            None => format!("{} ({})", c.title, c.rule),
        })
        // Titles and subjects carry machine and repository text (venv names, paths).
        .map(|line| visible(&line).into_owned())
        .collect()
}

/// The heading of those lines.
pub(crate) const CONSEQUENCES_HEADING: &str = "Caused by this (fix this first; not counted again):";

/// A built-in rule that a rule file replaced with `override = true`: shown in every format,
/// like a waiver, since it can silence what the built-in rule would find.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Override {
    pub rule: String,
    /// Where the built-in rule is defined: "rules/core.toml:12".
    pub builtin: String,
    /// Where the rule that replaces it is: "ci/rules.toml:3".
    pub by: String,
}

impl Override {
    /// "built-in rule `id` (rules/core.toml:12) is replaced by ci/rules.toml:3 (override = true)".
    pub fn text(&self) -> String {
        format!(
            "built-in rule `{}` ({}) is replaced by {} (override = true)",
            self.rule, self.builtin, self.by
        )
    }
}

/// Every built-in rule that a rule file replaced.
pub fn overrides(rules: &RuleSet) -> Vec<Override> {
    rules
        .rules()
        .iter()
        .filter_map(|r| {
            Some(Override {
                rule: r.id.clone(),
                builtin: r.replaces.clone()?,
                by: format!("{}:{}", r.source, r.line),
            })
        })
        .collect()
}

/// What a waived finding shows of its waiver.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct WaiverNote {
    pub reason: String,
    /// The last day it applies, `YYYY-MM-DD`.
    pub expires: String,
    pub owner: Option<String>,
    /// Where it is written: "gpu-doctor.toml:12".
    pub source: String,
}

/// The outcome of judging: ready or not, and the exit code that says so.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Verdict {
    /// No finding at or above the fail level.
    pub ready: bool,
    pub exit_code: i32,
    pub fail_on: &'static str,
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
    /// Findings waived by the configuration (not counted above).
    pub waived: usize,
}

impl Verdict {
    /// Counts the findings (a consequence is counted with its cause, not again); the exit code
    /// weighs the consequences too, so grouping never changes it.
    pub fn new(findings: &[Finding], fail_on: FailOn) -> Verdict {
        let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
        let failing = fail_on
            .threshold()
            .is_some_and(|t| crate::rules::all_findings(findings).any(|f| f.severity >= t));
        Verdict {
            ready: !failing,
            exit_code: if failing {
                crate::app::EXIT_NOT_READY
            } else {
                crate::app::EXIT_READY
            },
            fail_on: fail_on.as_str(),
            errors: count(Severity::Error),
            warnings: count(Severity::Warn),
            infos: count(Severity::Info),
            waived: 0,
        }
    }

    /// Whether a finding of this severity fails the run (is at or above the fail level).
    pub fn fails(&self, severity: Severity) -> bool {
        match self.fail_on {
            "error" => severity >= Severity::Error,
            "warn" => severity >= Severity::Warn,
            _ => false,
        }
    }
}

pub fn render(format: Format, input: &ReportInput) -> Result<String, AppError> {
    match format {
        Format::Human => Ok(human::render(input)),
        Format::Json => json::render(input),
        Format::Junit => Ok(junit::render(input)),
        Format::Github => github::render(input),
        Format::Sarif => sarif::render(input),
        Format::Markdown => Ok(markdown::render(input)),
        Format::Line => Ok(line::render(input)),
        Format::Prom => Ok(prom::render(input)),
    }
}

/// The shell the report's fix commands are shown in: the judged machine's (PowerShell for
/// Windows facts, even when replayed on Linux), since the other's commands would mislead there.
pub fn machine_shell(input: &ReportInput) -> crate::fix::Shell {
    crate::fix::Shell::of_os(&input.facts.host.os)
}

/// `gpu-doctor rules`: one line per rule.
pub fn rule_list(rules: &RuleSet) -> String {
    let width = rules.rules().iter().map(|r| r.id.len()).max().unwrap_or(0);
    let mut out = String::new();
    for r in rules.rules() {
        out.push_str(&format!(
            "{:<width$}  {:<5}  {:<8}  {}\n",
            r.id,
            severity_word(r.severity),
            r.category,
            visible(&r.title),
        ));
    }
    out
}

/// `gpu-doctor explain RULE`.
/// `gpu-doctor explain TEXT` found rules by symptom: one rule is explained under the symptom it
/// matched; several are listed, one line each, for `gpu-doctor explain <id>`.
pub fn symptom_matches(matches: &[(&Rule, &str)]) -> String {
    if let [(rule, symptom)] = matches {
        let head = format!("Symptom \"{}\": rule {}\n\n", visible(symptom), rule.id);
        return head + &explain_rule(rule);
    }
    let mut out = format!(
        "{} rules list this symptom; `gpu-doctor explain <id>` explains one:\n\n",
        matches.len()
    );
    let width = matches.iter().map(|(r, _)| r.id.len()).max().unwrap_or(0);
    for (rule, symptom) in matches {
        out.push_str(&format!(
            "  {:<width$}  {:<5}  \"{}\"\n",
            rule.id,
            rule.severity.as_str(),
            visible(symptom)
        ));
    }
    out
}

pub fn explain_rule(rule: &Rule) -> String {
    let mut out = format!(
        "{}  ({} · {} · scope {} · since {})\n\n",
        rule.id,
        severity_word(rule.severity),
        rule.category,
        rule.scope.as_str(),
        rule.since
    );
    out.push_str(&format!("When: {}\n\n", visible(&rule.when)));
    if !rule.symptoms.is_empty() {
        out.push_str("Symptoms:\n");
        for symptom in &rule.symptoms {
            out.push_str(&format!("  {}\n", visible(symptom)));
        }
        out.push('\n');
    }
    if !rule.caused_by.is_empty() {
        out.push_str(&format!(
            "Shown under, and not counted apart from: {}\n\n",
            visible(&rule.caused_by.join(", "))
        ));
    }
    // A rule file's text: its lines kept, anything else a terminal would obey written out.
    for line in rule.docs.trim().split('\n') {
        out.push_str(&visible(line));
        out.push('\n');
    }
    out.push('\n');
    // A rule may offer several commands: the first whose values are all known is shown.
    for (shell, fixes) in [
        ("bash", &rule.fix_bash_alternatives),
        ("PowerShell", &rule.fix_powershell_alternatives),
    ] {
        for (i, fix) in fixes.iter().enumerate() {
            let label = if i == 0 {
                format!("Fix ({shell}):")
            } else {
                "  or else:".to_string()
            };
            for (n, line) in fix.split('\n').enumerate() {
                let label = if n == 0 { label.as_str() } else { "" };
                out.push_str(&format!("{label:<18}{}\n", visible(line)));
            }
        }
    }
    out
}

pub fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warn => "warn",
        Severity::Info => "info",
    }
}

/// `gpu-doctor model`: the model's shape, then the layer-fit estimate (or why there is none).
pub fn model_report(
    m: &crate::gguf::model::ModelSummary,
    free: Result<&str, &String>,
    fit: Option<&crate::gguf::model::FitEstimate>,
) -> String {
    let mib = |b: u64| format!("{:.0} MiB", b as f64 / (1024.0 * 1024.0));
    let opt = |v: Option<u64>| {
        v.map(|v| v.to_string())
            .unwrap_or_else(|| "unknown".to_string())
    };
    // The path and the architecture come from the machine and the file: shown, not obeyed.
    let mut out = format!("Model {}\n", visible(&m.path.display().to_string()));
    out.push_str(&format!(
        "  architecture {}, {} layers, context {}, embedding {}, {} heads ({} KV heads)\n",
        visible(m.architecture.as_deref().unwrap_or("unknown")),
        opt(m.block_count),
        opt(m.context_length),
        opt(m.embedding_length),
        opt(m.head_count),
        opt(m.head_count_kv),
    ));
    out.push_str(&format!(
        "  weights {} ({} tensors, mostly {}), file {}\n",
        mib(m.tensor_bytes),
        m.n_tensors,
        m.dominant_type.unwrap_or("unknown"),
        mib(m.file_size)
    ));
    match (free, fit) {
        (Ok(source), Some(f)) => {
            out.push_str(&format!("Free GPU memory: {}\n", visible(source)));
            out.push_str(&format!(
                "  context {} with a {} KV cache: {} MiB of KV per layer, compute buffer ~{}, reserve {}\n",
                f.n_ctx,
                f.kv_type.name(),
                f.kv_bytes_per_layer / (1024 * 1024),
                mib(f.compute_bytes),
                mib(f.reserve_bytes)
            ));
            if f.all_fit {
                out.push_str(&format!(
                    "  all {} layers and the output layer fit ({} of {} free): use n_gpu_layers={} (-ngl {}), or -1\n",
                    f.n_layer,
                    mib(f.full_offload_bytes),
                    mib(f.free_bytes),
                    f.n_gpu_layers,
                    f.n_gpu_layers
                ));
            } else {
                out.push_str(&format!(
                    "  {} of {} layers fit (the whole model needs {}, {} free): use n_gpu_layers={} (-ngl {}); the rest runs on the CPU\n",
                    f.layers_on_gpu,
                    f.n_layer,
                    mib(f.full_offload_bytes),
                    mib(f.free_bytes),
                    f.n_gpu_layers,
                    f.n_gpu_layers
                ));
            }
        }
        (Err(why), _) => out.push_str(&format!("No fit estimate: {why}\n")),
        (Ok(_), None) => out.push_str("No fit estimate.\n"),
    }
    out
}
