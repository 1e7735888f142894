//! Evaluating rules over Facts: bind the variables, run each condition once per item of its
//! scope, and turn every rule that holds into a [`Finding`] with its messages rendered.
//!
//! Nothing here can fail the run. A condition that errors (a type mismatch, a missing map key,
//! a result that is not a boolean), or even panics inside the CEL interpreter, becomes a
//! `rule-evaluation-failed` finding that names the rule and the error; other rules still run.

use super::template::Bindings;
use super::{Category, ProbeView, Rule, RuleSet, Scope, Severity, HOST_VARIABLES};
use crate::facts::Facts;
use crate::knowledge::derive::{
    derive_with_venvs, gpu_views, llama_views, toolkit_views, Derived, GpuView, ToolkitView,
    VenvView,
};
use crate::shell::{quote_bash, quote_powershell};
use serde::Serialize;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The rule id of the finding made when a rule cannot be evaluated.
pub const EVALUATION_FAILED: &str = "rule-evaluation-failed";

/// Something a rule found, with its messages rendered for this machine.
#[derive(Serialize, schemars::JsonSchema, Clone, Debug, PartialEq)]
pub struct Finding {
    /// The rule's id (or [`EVALUATION_FAILED`]).
    pub rule: String,
    pub severity: Severity,
    /// The report section: host, driver, gpu, cuda, toolkit, python, llama or probe.
    pub category: String,
    /// The rule's scope: host, gpu, toolkit, probe, cuda_device, venv or llama.
    pub scope: String,
    /// The item a scoped rule found something about: "GPU 0 (NVIDIA H100 80GB HBM3)",
    /// "toolkit /usr/local/cuda-12.4", "probe cuda", "CUDA device 0 (NVIDIA H100 80GB HBM3)",
    /// "environment .venv (Python 3.13)".
    pub subject: Option<String>,
    pub title: String,
    pub explain: String,
    pub evidence: Vec<String>,
    /// Commands that fix it, already quoted for their shell; `None` when the rule has none
    /// (or a value a command needs is unknown on this machine).
    pub fix: Option<Fix>,
    /// Findings this one causes (rules that name its rule in `caused_by`): shown under it and
    /// not counted on their own (crate::rules::group_by_cause).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub consequences: Vec<Finding>,
    /// The Python environment the finding is about (venv and llama scopes), which ties a
    /// consequence to its cause in the same environment.
    #[serde(skip)]
    pub environment: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct Fix {
    pub bash: Option<String>,
    pub powershell: Option<String>,
}

/// One item of a scope: the value bound to the scope's variable, and how findings name it.
struct Item {
    subject: String,
    /// The Python environment the item belongs to, if any.
    environment: Option<String>,
    json: Json,
    cel: cel::Value,
}

/// The host-wide variables, as JSON (for templates) and as CEL values (for conditions).
struct HostValues {
    json: Vec<(&'static str, Json)>,
}

impl HostValues {
    fn new(facts: &Facts, derived: &Derived) -> HostValues {
        let json = HOST_VARIABLES
            .iter()
            .map(|&name| {
                let value = match name {
                    "host" => serde_json::to_value(&facts.host),
                    "driver" => serde_json::to_value(&facts.driver),
                    "cuda" => serde_json::to_value(&facts.cuda),
                    "toolkits" => serde_json::to_value(&facts.toolkits),
                    "probes" => serde_json::to_value(&facts.probes),
                    "python" => serde_json::to_value(&facts.python),
                    "offload" => serde_json::to_value(&facts.offload),
                    _ => serde_json::to_value(derived),
                };
                (name, value.unwrap_or(Json::Null))
            })
            .collect();
        HostValues { json }
    }

    fn context(&self, env: &std::sync::Arc<cel::Env>) -> cel::Context<'static, 'static> {
        let mut ctx = cel::Context::with_env(env.clone());
        for (name, json) in &self.json {
            ctx.add_variable_from_value(*name, to_cel(json));
        }
        ctx
    }

    fn bindings<'a>(&'a self, item: Option<(&'static str, &'a Json)>) -> Bindings<'a> {
        let mut vars: Vec<(&str, &Json)> = self.json.iter().map(|(n, v)| (*n, v)).collect();
        vars.extend(item);
        Bindings::new(vars)
    }
}

/// JSON to a CEL value. Facts always convert; should one not, the variable is `null` and the
/// rules that read it fail visibly instead of the run.
fn to_cel(json: &Json) -> cel::Value {
    cel::to_value(json).unwrap_or(cel::Value::Null)
}

/// What evaluation binds besides Facts: the derived values and the per-item views. Computed
/// from Facts by the knowledge module; tests build them by hand.
pub(crate) struct Inputs {
    pub derived: Derived,
    pub gpus: Vec<GpuView>,
    pub toolkits: Vec<ToolkitView>,
    pub venvs: Vec<VenvView>,
}

impl Inputs {
    pub fn derive(facts: &Facts) -> Inputs {
        let (derived, venvs) = derive_with_venvs(facts);
        let gpus = gpu_views(facts, &derived);
        let toolkits = toolkit_views(facts, &derived);
        Inputs {
            derived,
            gpus,
            toolkits,
            venvs,
        }
    }
}

/// The items a scope runs over, named as its findings' subjects; `None` for host scope. Reports
/// that list every check (junit, markdown) use this, so item names are spelled in one place.
pub fn scope_subjects(scope: Scope, facts: &Facts) -> Option<Vec<String>> {
    if scope == Scope::Host {
        return None;
    }
    let inputs = Inputs::derive(facts);
    Some(
        items(scope, facts, &inputs)
            .into_iter()
            .map(|i| i.subject)
            .collect(),
    )
}

/// "environment .venv (Python 3.13)".
fn venv_subject(v: &VenvView) -> String {
    match &v.python_minor {
        Some(py) => format!("environment {} (Python {py})", v.env.name),
        None => format!("environment {}", v.env.name),
    }
}

/// The items a scope iterates over.
fn items(scope: Scope, facts: &Facts, inputs: &Inputs) -> Vec<Item> {
    let item = |subject: String, json: Json| Item {
        cel: to_cel(&json),
        subject,
        environment: None,
        json,
    };
    match scope {
        Scope::Host => Vec::new(),
        Scope::Gpu => inputs
            .gpus
            .iter()
            .map(|g| {
                let subject = format!("GPU {} ({})", g.gpu.index, g.gpu.name);
                item(subject, serde_json::to_value(g).unwrap_or(Json::Null))
            })
            .collect(),
        Scope::Toolkit => inputs
            .toolkits
            .iter()
            .map(|t| {
                let subject = format!("toolkit {}", t.toolkit.root);
                item(subject, serde_json::to_value(t).unwrap_or(Json::Null))
            })
            .collect(),
        Scope::Probe => facts
            .probes
            .iter()
            .map(|(name, o)| {
                let view = ProbeView {
                    name: name.clone(),
                    status: o.status.as_str().to_string(),
                    error: o.error.clone(),
                    duration_ms: o.duration_ms,
                    deadline_ms: o.deadline_ms,
                };
                item(
                    format!("probe {name}"),
                    serde_json::to_value(&view).unwrap_or(Json::Null),
                )
            })
            .collect(),
        Scope::CudaDevice => facts
            .cuda
            .devices
            .iter()
            .map(|d| {
                let subject = format!("CUDA device {} ({})", d.ordinal, d.name);
                item(subject, serde_json::to_value(d).unwrap_or(Json::Null))
            })
            .collect(),
        Scope::Llama => llama_views(facts, &inputs.derived, &inputs.venvs)
            .into_iter()
            .map(|v| {
                let subject = v.stack.name.clone();
                Item {
                    environment: v.stack.environment.clone(),
                    ..item(subject, serde_json::to_value(&v).unwrap_or(Json::Null))
                }
            })
            .collect(),
        Scope::Venv => inputs
            .venvs
            .iter()
            .map(|v| Item {
                environment: Some(v.env.name.clone()),
                ..item(
                    venv_subject(v),
                    serde_json::to_value(v).unwrap_or(Json::Null),
                )
            })
            .collect(),
    }
}

/// Evaluate every rule over `facts`. Findings come sorted: errors first, then by category
/// (report order), rule id, and item order.
pub fn evaluate(rules: &RuleSet, facts: &Facts) -> Vec<Finding> {
    evaluate_with(rules, facts, &Inputs::derive(facts))
}

/// What judging a machine decided, once, for every report to render: the findings and the
/// derived values they were judged with (among them `derived.python.matrix`, each
/// environment's verdict). Reports compute none of it again.
#[derive(Debug, Clone)]
pub struct Judgement {
    /// Sorted as [`evaluate`] sorts them; [`Judgement::group_by_cause`] moves consequences
    /// under their cause.
    pub findings: Vec<Finding>,
    pub derived: Derived,
}

impl Judgement {
    /// Judge `facts` with `rules`: derive the values once, evaluate every rule over them.
    pub fn new(rules: &RuleSet, facts: &Facts) -> Judgement {
        let inputs = Inputs::derive(facts);
        let findings = evaluate_with(rules, facts, &inputs);
        Judgement {
            findings,
            derived: inputs.derived,
        }
    }

    /// Put each consequence under its cause (crate::rules::group_by_cause); after waivers,
    /// so that a waived finding neither counts nor gathers others.
    pub fn group_by_cause(&mut self, rules: &RuleSet) {
        let findings = std::mem::take(&mut self.findings);
        self.findings = super::group_by_cause(rules, findings);
    }
}

/// [`evaluate`] with the derived values and views given.
pub(crate) fn evaluate_with(rules: &RuleSet, facts: &Facts, inputs: &Inputs) -> Vec<Finding> {
    let host = HostValues::new(facts, &inputs.derived);
    let root = host.context(rules.env());
    // Rules by scope, so that each item is bound once for all the rules of its scope:
    // converting a view into a CEL value is most of the cost of evaluating.
    let mut per_scope: BTreeMap<Scope, Vec<&Rule>> = BTreeMap::new();
    for rule in rules.rules() {
        per_scope.entry(rule.scope).or_default().push(rule);
    }
    let mut found: Vec<(usize, Finding)> = Vec::new();
    for (scope, scoped) in per_scope {
        let Some(var) = scope.variable() else {
            let vars = host.bindings(None);
            for rule in scoped {
                found.extend(check(rule, &root, &vars, None).map(|f| (0, f)));
            }
            continue;
        };
        for (order, item) in items(scope, facts, inputs).into_iter().enumerate() {
            let mut ctx = root.new_inner_scope();
            ctx.add_variable_from_value(var, item.cel);
            let vars = host.bindings(Some((var, &item.json)));
            for rule in &scoped {
                let finding = check(rule, &ctx, &vars, Some(&item.subject)).map(|f| Finding {
                    environment: item.environment.clone(),
                    ..f
                });
                found.extend(finding.map(|f| (order, f)));
            }
        }
    }
    found.sort_by(|(oa, a), (ob, b)| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| category_rank(&a.category).cmp(&category_rank(&b.category)))
            .then_with(|| a.rule.cmp(&b.rule))
            .then_with(|| oa.cmp(ob))
            .then_with(|| a.subject.cmp(&b.subject))
    });
    found.into_iter().map(|(_, f)| f).collect()
}

fn category_rank(category: &str) -> usize {
    Category::ALL
        .iter()
        .position(|c| c.as_str() == category)
        .unwrap_or(Category::ALL.len())
}

/// Run one rule's condition in `ctx`; a finding when it holds or fails.
fn check(
    rule: &Rule,
    ctx: &cel::Context,
    vars: &Bindings,
    subject: Option<&str>,
) -> Option<Finding> {
    let program = &rule.compiled.program;
    let result = catch_unwind(AssertUnwindSafe(|| program.execute(ctx)));
    match result {
        Ok(Ok(cel::Value::Bool(true))) => Some(finding(rule, vars, subject)),
        Ok(Ok(cel::Value::Bool(false))) => None,
        Ok(Ok(other)) => {
            let shown: String = format!("{other:?}").chars().take(80).collect();
            Some(failed(
                rule,
                subject,
                &format!("the condition gave {shown}, not true or false"),
            ))
        }
        Ok(Err(e)) => Some(failed(rule, subject, &e.to_string())),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_string());
            Some(failed(
                rule,
                subject,
                &format!("the CEL interpreter panicked: {message}"),
            ))
        }
    }
}

/// The finding of a rule that holds, its templates rendered with `vars`.
fn finding(rule: &Rule, vars: &Bindings, subject: Option<&str>) -> Finding {
    let c = &rule.compiled;
    // The first alternative whose values are all known is the fix.
    let fix = Fix {
        bash: c
            .fix_bash
            .iter()
            .find_map(|t| t.render_fix(vars, quote_bash)),
        powershell: c
            .fix_powershell
            .iter()
            .find_map(|t| t.render_fix(vars, quote_powershell)),
    };
    let has_fix = fix.bash.is_some() || fix.powershell.is_some();
    Finding {
        rule: rule.id.clone(),
        severity: rule.severity,
        category: rule.category.as_str().to_string(),
        scope: rule.scope.as_str().to_string(),
        subject: subject.map(str::to_string),
        title: c.title.render_text(vars),
        explain: c.explain.render_text(vars),
        evidence: c
            .evidence
            .iter()
            .filter_map(|t| t.render_evidence(vars))
            .collect(),
        fix: has_fix.then_some(fix),
        consequences: Vec::new(),
        environment: None,
    }
}

/// The finding for a rule that could not be evaluated.
fn failed(rule: &Rule, subject: Option<&str>, error: &str) -> Finding {
    let condition: Vec<&str> = rule.when.split_whitespace().collect();
    let subject = match subject {
        Some(s) => format!("rule {} on {s}", rule.id),
        None => format!("rule {}", rule.id),
    };
    Finding {
        rule: EVALUATION_FAILED.to_string(),
        severity: Severity::Error,
        category: Category::Probe.as_str().to_string(),
        scope: rule.scope.as_str().to_string(),
        title: format!("rule {} could not be evaluated: {error}", rule.id),
        explain: format!(
            "The condition of rule `{}` ({}:{}) failed while running on {}, so whether what it \
             checks is wrong on this machine is unknown. This is a bug in the rule: fix its \
             condition (guard map keys with `'key' in map` and optional values with `x != null`), \
             or report it if it is a built-in rule.",
            rule.id, rule.source, rule.line, subject
        ),
        subject: Some(subject),
        evidence: vec![
            format!("when: {}", condition.join(" ")),
            format!("error: {error}"),
        ],
        fix: None,
        consequences: Vec::new(),
        environment: None,
    }
}
