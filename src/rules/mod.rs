//! Rules are data: TOML rule packs whose conditions are CEL expressions, evaluated over Facts.
//!
//! A rule says when something is wrong (`when`, a CEL expression over the bound variables),
//! how bad it is, and how to tell the user: a one-line title, an explanation, evidence lines,
//! longer docs, and fix commands for bash and PowerShell. Messages are templates filled from
//! the same values the condition saw; values put into fix commands are quoted for the shell.
//! docs/writing-rules.md is the guide for rule authors; docs/rules.md is generated from the
//! built-in rules by [`render_reference`], docs/symptoms.md (what users see, and the rules for
//! it) by [`render_symptoms`].
//!
//! Loading a rule file ([`RuleSet::load_file`]) checks everything it can before a rule ever
//! runs, and reports every problem of a file as `file:line:column: error: ...`: TOML syntax,
//! unknown and missing keys, bad values, duplicate ids, CEL syntax, variables that the rule's
//! scope does not bind, and fact paths that do not exist in the Facts schema. The built-in
//! packs get the same checks in a test ([`RuleSet::builtin_checked`]) and load without them at
//! run time ([`RuleSet::builtin`]), which keeps the pre-commit hook fast.
//! Evaluating ([`evaluate`]) never fails: a rule that errors at run time becomes a
//! `rule-evaluation-failed` finding, and the other rules still run.
//!
//! CEL is side-effect free and total: a rule file can read facts and nothing else, so loading
//! one from a repository (a pre-commit hook, say) is safe.

mod cause;
mod diag;
mod eval;
pub mod limits;
mod load;
mod paths;
mod reference;
pub(crate) mod spanned;
mod template;
#[cfg(test)]
mod tests;

pub use cause::{all_findings, group_by_cause};
pub use diag::{Diagnostic, LoadError};
pub use eval::{evaluate, scope_subjects, Finding, Fix, Judgement, EVALUATION_FAILED};
pub use reference::{render_reference, render_symptoms};

/// For the configuration's diagnostics (crate::config), which point into files the same way.
pub(crate) use diag::{did_you_mean, SourceFile, StringMap};

use serde::Serialize;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// How bad a finding is. Ordered: `Info < Warn < Error`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    schemars::JsonSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warn,
    Error,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Error, Severity::Warn, Severity::Info];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Error => "error",
        }
    }
}

/// The report section a rule's findings are grouped under. The order here is report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Host,
    Driver,
    Gpu,
    Cuda,
    Toolkit,
    Python,
    Llama,
    Probe,
}

impl Category {
    pub const ALL: [Category; 8] = [
        Category::Host,
        Category::Driver,
        Category::Gpu,
        Category::Cuda,
        Category::Toolkit,
        Category::Python,
        Category::Llama,
        Category::Probe,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Host => "host",
            Category::Driver => "driver",
            Category::Gpu => "gpu",
            Category::Cuda => "cuda",
            Category::Toolkit => "toolkit",
            Category::Python => "python",
            Category::Llama => "llama",
            Category::Probe => "probe",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What a rule is evaluated over: once for the host, or once per item of a kind, with the
/// item bound to a variable of the scope's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Once. Variables: `host`, `driver`, `cuda`, `toolkits`, `probes`, `derived`, `python`, `offload`.
    Host,
    /// Once per GPU NVML sees, bound as `gpu` (crate::knowledge::derive::GpuView).
    Gpu,
    /// Once per CUDA toolkit found, bound as `toolkit` (crate::knowledge::derive::ToolkitView).
    Toolkit,
    /// Once per probe that ran or was skipped, bound as `probe` ([`ProbeView`]).
    Probe,
    /// Once per device the CUDA driver API enumerated, bound as `cuda_device`
    /// (crate::facts::CudaDevice).
    CudaDevice,
    /// Once per Python environment found, bound as `venv`
    /// (crate::knowledge::derive::VenvView).
    Venv,
    /// Once per llama.cpp stack of the offload proof, bound as `llama`
    /// (crate::knowledge::derive::LlamaView).
    Llama,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Scope::Host,
        Scope::Gpu,
        Scope::Toolkit,
        Scope::Probe,
        Scope::CudaDevice,
        Scope::Venv,
        Scope::Llama,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Host => "host",
            Scope::Gpu => "gpu",
            Scope::Toolkit => "toolkit",
            Scope::Probe => "probe",
            Scope::CudaDevice => "cuda_device",
            Scope::Venv => "venv",
            Scope::Llama => "llama",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The variable the item is bound to; `None` for host scope.
    pub fn variable(self) -> Option<&'static str> {
        match self {
            Scope::Host => None,
            other => Some(other.as_str()),
        }
    }

    /// Every variable a rule of this scope may use.
    pub fn variables(self) -> Vec<&'static str> {
        let mut vars = HOST_VARIABLES.to_vec();
        vars.extend(self.variable());
        vars
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A symptom or a search for one, as compared: lowercase, runs of white space as one space.
fn symptom_words(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Variables bound in every scope.
pub const HOST_VARIABLES: [&str; 8] = [
    "host", "driver", "cuda", "toolkits", "probes", "derived", "python", "offload",
];

/// The value bound as `probe` in rules of scope "probe": one entry of `Facts.probes`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ProbeView {
    /// The probe's name: host, driver, cuda, toolkits.
    pub name: String,
    /// ok, absent, failed, timed_out, crashed or skipped.
    pub status: String,
    pub error: Option<String>,
    pub duration_ms: f64,
    pub deadline_ms: u64,
}

/// One rule, loaded and checked.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Stable kebab-case id; never reused for another meaning.
    pub id: String,
    pub category: Category,
    pub severity: Severity,
    pub scope: Scope,
    /// The gpu-doctor (or rule pack) version that introduced the rule.
    pub since: String,
    /// Rules whose findings cause this rule's: a finding of this rule is shown under such a
    /// finding (about the same environment, when both are about one) and not counted again.
    pub caused_by: Vec<String>,
    /// The CEL condition, as written.
    pub when: String,
    /// Templates, as written (see docs/writing-rules.md).
    pub title: String,
    pub explain: String,
    pub evidence: Vec<String>,
    /// Longer Markdown: why it matters, when it fires, how to fix. Not templated.
    pub docs: String,
    /// The bash fix as written: the first of `fix_bash_alternatives`.
    pub fix_bash: Option<String>,
    pub fix_powershell: Option<String>,
    /// Every alternative of `fix.bash` (a string, or a list of commands of which the first
    /// whose values are all known on the machine is shown). Empty when there is none.
    pub fix_bash_alternatives: Vec<String>,
    pub fix_powershell_alternatives: Vec<String>,
    /// Why there is no fix command, for rules that have none.
    pub fix_none: Option<String>,
    /// What a user sees when the rule's problem bites (a log line, an error message, "GPU
    /// slower than CPU"), as written: `gpu-doctor explain` searches them, and
    /// docs/symptoms.md lists them.
    pub symptoms: Vec<String>,
    /// The file the rule came from (`rules/core.toml` for built-in rules).
    pub source: String,
    /// The line of its `id` in that file.
    pub line: usize,
    /// Built into gpu-doctor (not from a user's or repository's file): its fixes run with
    /// `fix --yes`.
    pub builtin: bool,
    /// Where the built-in rule that this one replaces (`override = true`) is defined:
    /// "rules/core.toml:12". Reports show it like a waiver.
    pub replaces: Option<String>,
    pub(crate) compiled: Arc<load::Compiled>,
}

/// The built-in rule packs: file name and contents, embedded at compile time.
pub const BUILTIN: &[(&str, &str)] = &[
    ("rules/core.toml", include_str!("../../rules/core.toml")),
    ("rules/python.toml", include_str!("../../rules/python.toml")),
    ("rules/llama.toml", include_str!("../../rules/llama.toml")),
];

/// A set of loaded rules: the built-in packs plus any user files, in load order.
pub struct RuleSet {
    rules: Vec<Rule>,
    env: Arc<cel::Env>,
    /// What the user's rule files have taken of [`limits::TotalBudget`] so far.
    spent: limits::Spent,
}

impl fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleSet")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet::empty()
    }
}

impl RuleSet {
    /// A set with no rules.
    pub fn empty() -> RuleSet {
        RuleSet {
            rules: Vec::new(),
            env: Arc::new(cel::Env::stdlib()),
            spent: limits::Spent::default(),
        }
    }

    /// The built-in rules ([`BUILTIN`]). An error here is a bug in gpu-doctor.
    ///
    /// Their conditions are compiled in parallel and the checks that user rule files get are
    /// skipped: the test `builtin_packs_pass_every_check` runs them ([`Self::builtin_checked`]),
    /// and the pre-commit hook, which loads these rules on every commit, saves their time.
    pub fn builtin() -> Result<RuleSet, LoadError> {
        let mut set = RuleSet::empty();
        let texts: Vec<&str> = BUILTIN.iter().map(|(_, text)| *text).collect();
        let mut compiled = load::compile_conditions(&texts, &set.env);
        for (name, text) in BUILTIN {
            let loaded = load::load_vouched(name, text, &set.env, &set.rules, &mut compiled)?;
            set.add(loaded);
        }
        Ok(set)
    }

    /// The built-in rules loaded with every check a user's rule file gets.
    pub fn builtin_checked() -> Result<RuleSet, LoadError> {
        let mut set = RuleSet::empty();
        for (name, text) in BUILTIN {
            set.load_pack(name, text, false)?;
        }
        Ok(set)
    }

    /// Add the rules of a user's rule file. A rule whose id is already loaded is an error,
    /// unless the rule says `override = true`, which replaces the loaded rule. The files loaded
    /// this way share one budget ([`limits::MAX_RULE_FILES`], [`limits::MAX_TOTAL_RULE_BYTES`],
    /// [`limits::MAX_TOTAL_COST`]); the file that crosses it is refused, by name.
    pub fn load_file(&mut self, path: &Path) -> Result<(), LoadError> {
        let name = path.display().to_string();
        let text = self
            .spent
            .add_file()
            .and_then(|()| limits::read_rule_file(path))
            .map_err(|why| LoadError::file(&name, why))?;
        self.load_counted(&name, &text)
    }

    /// [`Self::load_file`] for a file already read (counted as one more file of the budget).
    pub fn load_file_text(&mut self, name: &str, text: &str) -> Result<(), LoadError> {
        self.spent
            .add_file()
            .map_err(|why| LoadError::file(name, why))?;
        self.load_counted(name, text)
    }

    /// Load a user's rule file whose count is taken; its bytes and cost are counted here.
    fn load_counted(&mut self, name: &str, text: &str) -> Result<(), LoadError> {
        let over = |why: String| LoadError::file(name, why);
        self.spent.add_bytes(text.len()).map_err(over)?;
        let (loaded, steps) = load::load(name, text, &self.env, &self.rules, true)?;
        self.spent.add_steps(steps).map_err(over)?;
        self.add(loaded);
        Ok(())
    }

    /// The estimated evaluation steps of the user's rule files loaded so far
    /// ([`limits::MAX_TOTAL_COST`]): an upper bound of what evaluating them costs.
    pub fn estimated_user_steps(&self) -> u64 {
        self.spent.steps()
    }

    /// Add user rules from text; `name` is used in messages. Same rules as [`Self::load_file`].
    pub fn load_str(&mut self, name: &str, text: &str) -> Result<(), LoadError> {
        self.load_pack(name, text, true)
    }

    fn load_pack(&mut self, name: &str, text: &str, user: bool) -> Result<(), LoadError> {
        let (loaded, _) = load::load(name, text, &self.env, &self.rules, user)?;
        self.add(loaded);
        Ok(())
    }

    /// Add loaded rules; one with the id of a loaded rule replaces it.
    fn add(&mut self, loaded: Vec<Rule>) {
        for rule in loaded {
            match self.rules.iter_mut().find(|r| r.id == rule.id) {
                Some(slot) => {
                    let replaces = match slot.builtin {
                        true => Some(format!("{}:{}", slot.source, slot.line)),
                        false => slot.replaces.take(),
                    };
                    *slot = rule;
                    slot.replaces = replaces;
                }
                None => self.rules.push(rule),
            }
        }
    }

    /// Every rule, in load order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule with this id.
    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// The rules with a symptom that matches `query`, each with the symptom it matched, in
    /// load order. A symptom matches when it contains the query or the query contains it
    /// (a whole pasted log line finds the rule listing its distinctive part), letter case and
    /// runs of spaces aside.
    pub fn by_symptom(&self, query: &str) -> Vec<(&Rule, &str)> {
        let query = symptom_words(query);
        if query.is_empty() {
            return Vec::new();
        }
        self.rules
            .iter()
            .filter_map(|rule| {
                let symptom = rule.symptoms.iter().find(|s| {
                    let s = symptom_words(s);
                    s.contains(&query) || query.contains(&s)
                })?;
                Some((rule, symptom.as_str()))
            })
            .collect()
    }

    /// The symptom that shares the most words with `query` (and its rule), for a search that
    /// matched nothing; `None` when no symptom shares a word of three letters or more.
    pub fn nearest_symptom(&self, query: &str) -> Option<(&Rule, &str)> {
        let words = |text: &str| -> Vec<String> {
            symptom_words(text)
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .filter(|w| w.chars().count() >= 3)
                .map(str::to_string)
                .collect()
        };
        let asked = words(query);
        self.rules
            .iter()
            .flat_map(|r| r.symptoms.iter().map(move |s| (r, s.as_str())))
            .map(|(r, s)| (words(s).iter().filter(|w| asked.contains(w)).count(), r, s))
            .filter(|(shared, _, _)| *shared > 0)
            .min_by_key(|(shared, _, _)| std::cmp::Reverse(*shared))
            .map(|(_, r, s)| (r, s))
    }

    pub(crate) fn env(&self) -> &Arc<cel::Env> {
        &self.env
    }
}
