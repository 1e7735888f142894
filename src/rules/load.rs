//! Loading a rule file: parse the TOML keeping spans, read each `[[rule]]` table by hand so
//! that every problem is reported (not only the first, as serde would), then check what
//! TOML cannot: values from fixed lists, CEL syntax, variables per scope, fact paths,
//! templates, and duplicate ids.

use super::diag::{did_you_mean, Diagnostic, LoadError, SourceFile, StringMap};
use super::limits;
use super::paths::{comprehension_variables, tokenize, top_level_paths, Segment, TypeSchema};
use super::spanned::{self, find, Blank, Entry, Problems, Str};
use super::template::Template;
use super::{Category, ProbeView, Rule, Scope, Severity};
use crate::facts::python::PythonFacts;
use crate::facts::{CudaDevice, CudaFacts, DriverFacts, HostFacts, ProbeOutcome, ToolkitFacts};
use crate::knowledge::derive::{Derived, GpuView, ToolkitView, VenvView};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, OnceLock};
use toml::de::{DeTable, DeValue};

/// What evaluation needs of a rule, prepared once at load time.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub program: cel::Program,
    pub title: Template,
    pub explain: Template,
    pub evidence: Vec<Template>,
    /// Alternatives, in order: the first whose values are all known is the fix.
    pub fix_bash: Vec<Template>,
    pub fix_powershell: Vec<Template>,
}

/// The id of the finding made when a rule fails at run time; no rule may take it.
const RESERVED_IDS: &[&str] = &[super::EVALUATION_FAILED];

const RULE_KEYS: &[&str] = &[
    "id",
    "category",
    "severity",
    "scope",
    "since",
    "when",
    "title",
    "explain",
    "evidence",
    "docs",
    "fix",
    "override",
    "caused_by",
    "symptoms",
];
const REQUIRED_KEYS: &[&str] = &[
    "id", "category", "severity", "since", "when", "title", "explain",
];
const FIX_KEYS: &[&str] = &["bash", "powershell", "none"];

/// The longest symptom, in characters: a symptom is the distinctive part of one line a user
/// sees (a log line, an error message), not a paragraph.
const MAX_SYMPTOM_CHARS: usize = 200;

/// The JSON Schema of each variable's type, generated once.
fn schema(variable: &str) -> Option<&'static TypeSchema> {
    static SCHEMAS: OnceLock<BTreeMap<&'static str, TypeSchema>> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(|| {
        use schemars::schema_for;
        BTreeMap::from([
            ("host", TypeSchema::new(schema_for!(HostFacts))),
            ("driver", TypeSchema::new(schema_for!(DriverFacts))),
            ("cuda", TypeSchema::new(schema_for!(CudaFacts))),
            ("toolkits", TypeSchema::new(schema_for!(ToolkitFacts))),
            (
                "probes",
                TypeSchema::new(schema_for!(BTreeMap<String, ProbeOutcome>)),
            ),
            ("derived", TypeSchema::new(schema_for!(Derived))),
            ("python", TypeSchema::new(schema_for!(PythonFacts))),
            ("venv", TypeSchema::new(schema_for!(VenvView))),
            ("gpu", TypeSchema::new(schema_for!(GpuView))),
            ("toolkit", TypeSchema::new(schema_for!(ToolkitView))),
            ("probe", TypeSchema::new(schema_for!(ProbeView))),
            ("cuda_device", TypeSchema::new(schema_for!(CudaDevice))),
            (
                "offload",
                TypeSchema::new(schema_for!(crate::facts::llama::OffloadFacts)),
            ),
            (
                "llama",
                TypeSchema::new(schema_for!(crate::knowledge::derive::LlamaView)),
            ),
        ])
    });
    schemas.get(variable)
}

/// Load the rules of one file. `existing` are the rules already loaded (for duplicate ids);
/// `user` files may replace an existing rule with `override = true`. Runs on a thread with a
/// large stack, within the bounds of [`limits`] (rule files may be hostile). Also gives the
/// estimated evaluation steps of the file's rules, for the budget of all files together.
pub(crate) fn load(
    name: &str,
    text: &str,
    env: &cel::Env,
    existing: &[Rule],
    user: bool,
) -> Result<(Vec<Rule>, u64), LoadError> {
    if text.len() > limits::MAX_FILE_BYTES {
        return Err(LoadError::file(
            name,
            limits::file_too_large(text.len() as u64),
        ));
    }
    limits::on_loader_stack(|| {
        let mut loader = Loader::new(name, text, env, user, Checks::All, BTreeMap::new());
        let rules = load_bounded_with(&mut loader, existing)?;
        Ok((rules, loader.steps))
    })
}

/// Load a built-in pack ([`Checks::Vouched`]) on this thread: its size and depth are known.
/// `compiled` holds its conditions, compiled ahead by [`compile_conditions`]; the ones used are
/// taken out.
pub(crate) fn load_vouched(
    name: &str,
    text: &str,
    env: &cel::Env,
    existing: &[Rule],
    compiled: &mut BTreeMap<String, cel::Program>,
) -> Result<Vec<Rule>, LoadError> {
    let mut loader = Loader::new(name, text, env, false, Checks::Vouched, BTreeMap::new());
    std::mem::swap(&mut loader.compiled, compiled);
    let result = load_bounded_with(&mut loader, existing);
    std::mem::swap(&mut loader.compiled, compiled);
    result
}

/// Compile the conditions of these rule files, spread over the machine's cores: CEL parsing
/// is most of the time the built-in rules take to load. Conditions that fail are left out;
/// loading compiles them again and reports the error in place.
pub(crate) fn compile_conditions(texts: &[&str], env: &cel::Env) -> BTreeMap<String, cel::Program> {
    let mut conditions: Vec<String> = texts.iter().flat_map(|t| conditions_of(t)).collect();
    conditions.sort_unstable();
    conditions.dedup();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let chunk = conditions.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = conditions
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .filter_map(|c| Some((c.clone(), env.compile(c).ok()?)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .filter_map(|w| w.join().ok())
            .flatten()
            .collect()
    })
}

/// The `when` strings of a rule file's `[[rule]]` tables; nothing for a file that does not
/// parse (loading reports why).
fn conditions_of(text: &str) -> Vec<String> {
    let Ok(doc) = DeTable::parse(text) else {
        return Vec::new();
    };
    let Some(DeValue::Array(tables)) = doc.get_ref().get("rule").map(|v| v.get_ref()) else {
        return Vec::new();
    };
    tables
        .iter()
        .filter_map(|t| match t.get_ref() {
            DeValue::Table(table) => match table.get("when").map(|w| w.get_ref()) {
                Some(DeValue::String(s)) => Some(s.to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn load_bounded_with(loader: &mut Loader<'_>, existing: &[Rule]) -> Result<Vec<Rule>, LoadError> {
    let text = loader.file.text;
    let (doc, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        let diagnostics = errors
            .iter()
            .map(|e| {
                let at = e.span().map_or(0, |s| s.start);
                loader.file.diag(at, toml_message(e.message()))
            })
            .collect();
        return Err(LoadError { diagnostics });
    }
    let rules = loader.document(doc.get_ref(), existing);
    if loader.diags.is_empty() {
        Ok(rules)
    } else {
        let mut diagnostics = std::mem::take(&mut loader.diags);
        diagnostics.sort_by_key(|d| (d.line, d.column));
        Err(LoadError { diagnostics })
    }
}

/// toml's messages end with a newline and sometimes start with "TOML parse error".
fn toml_message(message: &str) -> String {
    let m = message.trim();
    format!("invalid TOML: {m}")
}

struct Loader<'a> {
    file: SourceFile<'a>,
    env: &'a cel::Env,
    diags: Vec<Diagnostic>,
    user: bool,
    ids: Vec<IdUse>,
    /// Estimated evaluation steps of the conditions loaded so far ([`limits::MAX_FILE_COST`]).
    steps: u64,
    checks: Checks,
    /// Conditions compiled ahead of loading ([`compile_conditions`]), by their text.
    compiled: BTreeMap<String, cel::Program>,
}

/// How thoroughly a rule file is checked as it loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Checks {
    /// Everything: user rule files, and the built-in packs in the test that vouches for them.
    All,
    /// The built-in packs at run time: parsed and compiled, not re-checked. The test
    /// `builtin_packs_pass_every_check` loads them with [`Checks::All`] and compares the result,
    /// so the schema, path and limit checks (a third of the pre-commit hook's time) run in CI
    /// instead of on every commit.
    Vouched,
}

/// The keys that say what a rule is.
struct Header {
    id: Option<Str>,
    category: Option<Category>,
    severity: Option<Severity>,
    scope: Option<Scope>,
    since: Option<Str>,
    /// Rules whose findings cause this one's (`caused_by`), as written.
    caused_by: Vec<Str>,
}

/// The keys that say what a rule checks and tells; `None` parts had errors or are absent.
struct Body {
    when: Option<Str>,
    program: Option<cel::Program>,
    title: Option<Checked>,
    explain: Option<Checked>,
    evidence: Vec<Checked>,
    docs: Option<Str>,
    fix_bash: Vec<Checked>,
    fix_powershell: Vec<Checked>,
    fix_none: Option<Str>,
    /// What a user sees (log lines, error messages), as written; not templates.
    symptoms: Vec<String>,
}

/// A template as written and as parsed.
struct Checked {
    text: String,
    template: Option<Template>,
}

/// A rule's id as written, for the cross-rule checks; kept even when the rule has other
/// errors, so that a duplicate id is reported together with them.
struct IdUse {
    id: String,
    span: Range<usize>,
    line: usize,
    override_span: Option<Range<usize>>,
    caused_by: Vec<Str>,
}

impl Problems for Loader<'_> {
    fn problem(&mut self, offset: usize, message: String) {
        self.error(offset, message);
    }
}

impl<'a> Loader<'a> {
    fn new(
        name: &'a str,
        text: &'a str,
        env: &'a cel::Env,
        user: bool,
        checks: Checks,
        compiled: BTreeMap<String, cel::Program>,
    ) -> Loader<'a> {
        Loader {
            file: SourceFile::new(name, text),
            env,
            diags: Vec::new(),
            user,
            ids: Vec::new(),
            steps: 0,
            checks,
            compiled,
        }
    }

    fn error(&mut self, offset: usize, message: impl Into<String>) {
        let d = self.file.diag(offset, message);
        self.diags.push(d);
    }

    fn document(&mut self, doc: &DeTable<'_>, existing: &[Rule]) -> Vec<Rule> {
        let mut loaded = Vec::new();
        let mut saw_rules = false;
        for (key, value) in doc.iter() {
            if key.get_ref() != "rule" {
                let msg = format!(
                    "unknown top-level key `{}`; a rule file holds only `[[rule]]` tables",
                    key.get_ref()
                );
                self.error(key.span().start, msg);
                continue;
            }
            saw_rules = true;
            let tables = match value.get_ref() {
                DeValue::Array(items) => items.iter().collect::<Vec<_>>(),
                _ => {
                    self.error(
                        key.span().start,
                        "`rule` must be an array of tables: write `[[rule]]`",
                    );
                    continue;
                }
            };
            if let Some(t) = tables.get(limits::MAX_RULES_PER_FILE) {
                self.error(t.span().start, limits::too_many_rules(tables.len()));
                continue;
            }
            for t in tables {
                match t.get_ref() {
                    DeValue::Table(table) => loaded.extend(self.rule(t.span(), table)),
                    _ => self.error(t.span().start, "expected a `[[rule]]` table"),
                }
            }
        }
        if !saw_rules {
            self.error(0, "no rules: expected at least one `[[rule]]` table");
        }
        if self.steps > limits::MAX_FILE_COST {
            self.error(0, limits::file_cost_message(self.steps));
        }
        self.check_ids(existing);
        loaded
    }

    /// Duplicate ids in this file, ids already loaded (unless overridden), and `caused_by`
    /// naming a rule that is neither loaded nor in this file.
    fn check_ids(&mut self, existing: &[Rule]) {
        let ids = std::mem::take(&mut self.ids);
        self.check_causes(&ids, existing);
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for l in &ids {
            let id = l.id.as_str();
            if let Some(line) = seen.get(id) {
                let msg = format!(
                    "duplicate rule id `{id}`: already used at {}:{line}",
                    self.file.name
                );
                self.error(l.span.start, msg);
                continue;
            }
            seen.insert(id, l.line);
            let before = existing.iter().find(|r| r.id == id);
            match (before, &l.override_span) {
                (Some(r), None) => {
                    let msg = format!(
                        "rule id `{id}` is already defined at {}:{}; to replace that rule, add `override = true`",
                        r.source, r.line
                    );
                    self.error(l.span.start, msg);
                }
                (None, Some(span)) => {
                    let msg = format!("`override = true`, but no loaded rule has the id `{id}`");
                    self.error(span.start, msg);
                }
                _ => {}
            }
        }
    }

    /// Every rule a `caused_by` names exists (loaded before, or in this file) and is not the
    /// rule itself: a typo would silently leave a consequence counted on its own.
    fn check_causes(&mut self, ids: &[IdUse], existing: &[Rule]) {
        let known: Vec<&str> = existing
            .iter()
            .map(|r| r.id.as_str())
            .chain(ids.iter().map(|l| l.id.as_str()))
            .collect();
        for l in ids {
            for cause in &l.caused_by {
                let msg = if cause.value == l.id {
                    format!("rule `{}` cannot be caused by itself", l.id)
                } else if !known.contains(&cause.value.as_str()) {
                    format!(
                        "`caused_by` names no loaded rule: `{}`{}",
                        cause.value,
                        did_you_mean(&cause.value, known.iter().copied())
                    )
                } else {
                    continue;
                };
                self.error(cause.span.start, msg);
            }
        }
    }

    /// One `[[rule]]` table; `None` when it has errors (they are recorded).
    fn rule(&mut self, span: Range<usize>, table: &DeTable<'_>) -> Option<Rule> {
        let before = self.diags.len();
        let entries: Vec<Entry> = table.iter().collect();
        self.check_keys(&entries, span.start);
        let head = self.header(&entries);
        let body = self.body(&entries, head.scope);
        let override_span = self.override_flag(&entries);
        if let Some(id) = &head.id {
            let (line, _) = self.file.line_col(id.span.start);
            let (id, span) = (id.value.clone(), id.span.clone());
            self.ids.push(IdUse {
                id,
                span,
                line,
                override_span,
                caused_by: head.caused_by.clone(),
            });
        }
        if self.diags.len() > before {
            return None;
        }
        self.assemble(head, body)
    }

    /// Unknown keys, and every missing required key (in one message).
    fn check_keys(&mut self, entries: &[Entry], table_at: usize) {
        for (key, _) in entries {
            let k = key.get_ref().as_ref();
            if !RULE_KEYS.contains(&k) {
                let msg = format!(
                    "unknown key `{k}` in a rule{}; expected one of: {}",
                    did_you_mean(k, RULE_KEYS.iter().copied()),
                    RULE_KEYS.join(", ")
                );
                self.error(key.span().start, msg);
            }
        }
        let missing: Vec<&str> = REQUIRED_KEYS
            .iter()
            .copied()
            .filter(|k| find(entries, k).is_none())
            .collect();
        match missing.as_slice() {
            [] => {}
            [one] => self.error(
                table_at,
                format!("missing required key `{one}` in this rule"),
            ),
            many => {
                let msg = format!("missing required keys in this rule: {}", many.join(", "));
                self.error(table_at, msg);
            }
        }
    }

    /// What the rule is: id, category, severity, scope, since.
    fn header(&mut self, entries: &[Entry]) -> Header {
        let id = self.required_string(entries, "id");
        if let Some(id) = &id {
            self.check_id(id);
        }
        let categories = Category::ALL.map(|c| c.as_str());
        let category = self.choice(entries, "category", Category::parse, &categories);
        let severities = Severity::ALL.map(|s| s.as_str());
        let severity = self.choice(entries, "severity", parse_severity, &severities);
        let scope = match find(entries, "scope") {
            None => Some(Scope::Host),
            Some(_) => self.choice(
                entries,
                "scope",
                Scope::parse,
                &Scope::ALL.map(|s| s.as_str()),
            ),
        };
        let since = self.required_string(entries, "since");
        if let Some(s) = since.as_ref().filter(|s| !is_version(&s.value)) {
            let msg = format!(
                "`since` must be a version like \"0.1.0\", found \"{}\"",
                s.value
            );
            self.error(s.span.start, msg);
        }
        let caused_by =
            spanned::string_list(self, entries, "caused_by", "caused_by", Blank::Refused);
        Header {
            id,
            category,
            severity,
            scope,
            since,
            caused_by,
        }
    }

    /// What the rule checks and says: the condition, the templates, docs and fixes.
    fn body(&mut self, entries: &[Entry], scope: Option<Scope>) -> Body {
        let when = self.required_string(entries, "when");
        let program = when.as_ref().and_then(|w| self.condition(w, scope));
        let title = self.required_string(entries, "title");
        if let Some(t) = title.as_ref().filter(|t| t.value.contains('\n')) {
            self.error(
                t.span.start,
                "`title` must be one line; put details in `explain`",
            );
        }
        let title = title.map(|t| self.checked(t, scope));
        let explain = self
            .required_string(entries, "explain")
            .map(|t| self.checked(t, scope));
        let evidence = self.string_list(entries, "evidence");
        let evidence = evidence
            .into_iter()
            .map(|e| self.checked(e, scope))
            .collect();
        let docs = self.optional_string(entries, "docs");
        let (bash, powershell, fix_none) = self.fix(entries);
        let fix_bash = bash.into_iter().map(|f| self.checked(f, scope)).collect();
        let fix_powershell = powershell
            .into_iter()
            .map(|f| self.checked(f, scope))
            .collect();
        let symptoms = self.symptoms(entries);
        Body {
            when,
            program,
            title,
            explain,
            evidence,
            docs,
            fix_bash,
            fix_powershell,
            fix_none,
            symptoms,
        }
    }

    /// `symptoms`: what a user sees, each one line of at most [`MAX_SYMPTOM_CHARS`]
    /// characters, none twice in a rule (letter case aside: the search ignores it).
    fn symptoms(&mut self, entries: &[Entry]) -> Vec<String> {
        let mut symptoms: Vec<String> = Vec::new();
        for s in spanned::string_list(self, entries, "symptoms", "symptoms", Blank::Refused) {
            let length = s.value.chars().count();
            let twice = symptoms
                .iter()
                .any(|o| o.to_lowercase() == s.value.to_lowercase());
            let problem = if s.value.contains(['\n', '\r']) {
                "a symptom must be one line: the part of the log line or message a user would search for".to_string()
            } else if length > MAX_SYMPTOM_CHARS {
                format!(
                    "a symptom has at most {MAX_SYMPTOM_CHARS} characters, this one has {length}: keep the distinctive part of the line"
                )
            } else if twice {
                format!("symptom \"{}\" is listed twice in this rule", s.value)
            } else {
                symptoms.push(s.value);
                continue;
            };
            self.error(s.span.start, problem);
        }
        symptoms
    }

    /// A template string and its parsed form (`None` when it has errors).
    fn checked(&mut self, text: Str, scope: Option<Scope>) -> Checked {
        let template = self.template(&text, scope);
        Checked {
            text: text.value,
            template,
        }
    }

    /// Put together a rule whose parts all loaded; `None` if one is missing.
    fn assemble(&self, head: Header, body: Body) -> Option<Rule> {
        let (title, explain) = (body.title?, body.explain?);
        let split = |alternatives: Vec<Checked>| -> Option<(Vec<String>, Vec<Template>)> {
            let mut texts = Vec::new();
            let mut templates = Vec::new();
            for c in alternatives {
                templates.push(c.template?);
                texts.push(c.text);
            }
            Some((texts, templates))
        };
        let (fix_bash, fix_bash_t) = split(body.fix_bash)?;
        let (fix_powershell, fix_powershell_t) = split(body.fix_powershell)?;
        let mut evidence = Vec::new();
        let mut evidence_t = Vec::new();
        for e in body.evidence {
            evidence_t.push(e.template?);
            evidence.push(e.text);
        }
        let compiled = Compiled {
            program: body.program?,
            title: title.template?,
            explain: explain.template?,
            evidence: evidence_t,
            fix_bash: fix_bash_t,
            fix_powershell: fix_powershell_t,
        };
        let id = head.id?;
        let (line, _) = self.file.line_col(id.span.start);
        Some(Rule {
            id: id.value,
            category: head.category?,
            severity: head.severity?,
            scope: head.scope?,
            since: head.since?.value,
            caused_by: head.caused_by.into_iter().map(|c| c.value).collect(),
            when: body.when?.value,
            title: title.text,
            explain: explain.text,
            evidence,
            docs: body.docs.map(|d| d.value).unwrap_or_default(),
            fix_bash: fix_bash.first().cloned(),
            fix_powershell: fix_powershell.first().cloned(),
            fix_bash_alternatives: fix_bash,
            fix_powershell_alternatives: fix_powershell,
            fix_none: body.fix_none.map(|f| f.value),
            symptoms: body.symptoms,
            source: self.file.name.to_string(),
            builtin: !self.user,
            replaces: None,
            line,
            compiled: Arc::new(compiled),
        })
    }

    fn check_id(&mut self, id: &Str) {
        if !is_kebab_case(&id.value) {
            let msg = format!(
                "rule id \"{}\" is not kebab-case: expected lowercase letters and digits in words joined by `-`, like \"driver-too-old\"",
                id.value
            );
            self.error(id.span.start, msg);
        } else if RESERVED_IDS.contains(&id.value.as_str()) {
            let msg = format!(
                "rule id \"{}\" is reserved for gpu-doctor's own findings",
                id.value
            );
            self.error(id.span.start, msg);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Typed access to keys, recording what is wrong

    fn optional_string(&mut self, entries: &[Entry], key: &str) -> Option<Str> {
        spanned::string(self, entries, key, key)
    }

    /// A required string; a missing key was already reported (all of them at once).
    fn required_string(&mut self, entries: &[Entry], key: &str) -> Option<Str> {
        self.optional_string(entries, key)
    }

    /// A string that must be one of `allowed`.
    fn choice<T>(
        &mut self,
        entries: &[Entry],
        key: &str,
        parse: fn(&str) -> Option<T>,
        allowed: &[&str],
    ) -> Option<T> {
        spanned::choice(self, entries, key, key, parse, allowed)
    }

    fn string_list(&mut self, entries: &[Entry], key: &str) -> Vec<Str> {
        spanned::string_list(self, entries, key, key, Blank::Allowed)
    }

    /// `fix.bash` or `fix.powershell`: one command, or a list of alternatives.
    fn commands(&mut self, entries: &[Entry], key: &str) -> Vec<Str> {
        let Some((_, value)) = find(entries, key) else {
            return Vec::new();
        };
        match value.get_ref() {
            DeValue::String(_) => self.optional_string(entries, key).into_iter().collect(),
            DeValue::Array(items) if items.is_empty() => {
                let msg = format!(
                    "`fix.{key}` is an empty list; give a command, or a list of alternative commands"
                );
                self.error(value.span().start, msg);
                Vec::new()
            }
            DeValue::Array(_) => self.string_list(entries, key),
            other => {
                let msg = format!(
                    "`fix.{key}` must be a string or an array of strings (alternatives), found {}",
                    other.type_str()
                );
                self.error(value.span().start, msg);
                Vec::new()
            }
        }
    }

    /// The `fix` table: `bash`, `powershell` (each one command or a list of alternatives),
    /// `none`.
    fn fix(&mut self, entries: &[Entry]) -> (Vec<Str>, Vec<Str>, Option<Str>) {
        let Some((_, value)) = find(entries, "fix") else {
            return (Vec::new(), Vec::new(), None);
        };
        let DeValue::Table(table) = value.get_ref() else {
            let msg =
                "`fix` must be a table: write `fix.bash = \"...\"` and `fix.powershell = \"...\"`";
            self.error(value.span().start, msg);
            return (Vec::new(), Vec::new(), None);
        };
        let fix_entries: Vec<Entry> = table.iter().collect();
        for (key, _) in &fix_entries {
            let k = key.get_ref().as_ref();
            if !FIX_KEYS.contains(&k) {
                let msg = format!(
                    "unknown key `fix.{k}`{}; expected one of: fix.bash, fix.powershell, fix.none",
                    did_you_mean(k, FIX_KEYS.iter().copied())
                );
                self.error(key.span().start, msg);
            }
        }
        let bash = self.commands(&fix_entries, "bash");
        let powershell = self.commands(&fix_entries, "powershell");
        let none = self.optional_string(&fix_entries, "none");
        if let Some(n) = &none {
            if !bash.is_empty() || !powershell.is_empty() {
                self.error(
                    n.span.start,
                    "`fix.none` says there is no fix command, but the rule has one",
                );
            }
        }
        (bash, powershell, none)
    }

    fn override_flag(&mut self, entries: &[Entry]) -> Option<Range<usize>> {
        let (key, value) = find(entries, "override")?;
        match value.get_ref() {
            DeValue::Boolean(true) if self.user => Some(key.span()),
            DeValue::Boolean(_) if !self.user => {
                self.error(
                    key.span().start,
                    "`override` is for user rule files, not built-in packs",
                );
                None
            }
            DeValue::Boolean(false) => None,
            other => {
                let msg = format!(
                    "`override` must be true or false, found {}",
                    other.type_str()
                );
                self.error(value.span().start, msg);
                None
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Conditions and templates

    /// Compile and check a condition. `scope` is `None` when the rule's scope is invalid (then
    /// only the syntax is checked).
    fn condition(&mut self, when: &Str, scope: Option<Scope>) -> Option<cel::Program> {
        if self.checks == Checks::Vouched {
            return self.vouched_condition(when);
        }
        let map = StringMap::new(self.file.text, when.span.start, when.span.end, &when.value);
        if let Err((at, msg)) = limits::check_text(&when.value) {
            self.error(map.offset(at), msg);
            return None;
        }
        let program = match self.env.compile(&when.value) {
            Ok(p) => p,
            Err(errors) => {
                for e in &errors.errors {
                    let index = cel_char_index(&when.value, e.pos);
                    self.error(map.offset(index), format!("invalid condition: {}", e.msg));
                }
                return None;
            }
        };
        let bounds = limits::check_program(&program, scope.is_some_and(|s| s != Scope::Host));
        for (at, msg) in &bounds.violations {
            self.error(map.offset(*at), msg.clone());
        }
        if !bounds.violations.is_empty() {
            return None;
        }
        self.steps = self.steps.saturating_add(bounds.steps);
        let scope = scope?;
        let locals = comprehension_variables(program.expression());
        let allowed = scope.variables();
        let tokens = tokenize(&when.value);
        let paths = top_level_paths(&tokens, &locals);
        let references = program.references();
        let mut free: Vec<&str> = references
            .variables()
            .into_iter()
            .filter(|v| !locals.iter().any(|l| l == v))
            .collect();
        free.sort_unstable();
        let before = self.diags.len();
        for var in free.into_iter().filter(|v| !allowed.contains(v)) {
            let at = paths
                .iter()
                .find(|p| p.root == var)
                .map_or(0, |p| p.root_span.0);
            let msg = unknown_variable_message(var, scope);
            self.error(map.offset(at), msg);
        }
        for p in paths.iter().filter(|p| allowed.contains(&p.root.as_str())) {
            self.check_path(&map, &p.root, &p.segments, false);
        }
        (self.diags.len() == before).then_some(program)
    }

    /// A built-in condition: compiled ahead, or now; its checks ran in CI.
    fn vouched_condition(&mut self, when: &Str) -> Option<cel::Program> {
        if let Some(program) = self.compiled.remove(&when.value) {
            return Some(program);
        }
        match self.env.compile(&when.value) {
            Ok(program) => Some(program),
            Err(errors) => {
                self.error(when.span.start, format!("invalid condition: {errors}"));
                None
            }
        }
    }

    /// Check one path against its variable's schema.
    fn check_path(
        &mut self,
        map: &StringMap,
        root: &str,
        segments: &[Segment],
        through_arrays: bool,
    ) -> bool {
        let Some(schema) = schema(root) else {
            return true;
        };
        match schema.check(root, segments, through_arrays) {
            Ok(()) => true,
            Err((i, msg)) => {
                let at = segments.get(i).map_or(0, |s| s.span.0);
                self.error(map.offset(at), msg);
                false
            }
        }
    }

    /// Parse and check a template.
    fn template(&mut self, s: &Str, scope: Option<Scope>) -> Option<Template> {
        if self.checks == Checks::Vouched {
            return match Template::parse(&s.value) {
                Ok(t) => Some(t),
                Err(errors) => {
                    let messages: Vec<String> = errors.into_iter().map(|(_, m)| m).collect();
                    self.error(s.span.start, messages.join("; "));
                    None
                }
            };
        }
        let map = StringMap::new(self.file.text, s.span.start, s.span.end, &s.value);
        let template = match Template::parse(&s.value) {
            Ok(t) => t,
            Err(errors) => {
                for (at, msg) in errors {
                    self.error(map.offset(at), msg);
                }
                return None;
            }
        };
        let scope = scope?;
        let allowed = scope.variables();
        let before = self.diags.len();
        for p in template.placeholders() {
            if !allowed.contains(&p.root.as_str()) {
                self.error(
                    map.offset(p.root_span.0),
                    unknown_variable_message(&p.root, scope),
                );
                continue;
            }
            if !self.check_path(&map, &p.root, &p.segments, true) {
                continue;
            }
            let fields = schema(&p.root).and_then(|s| s.ends_on_struct(&p.segments));
            if let Some(fields) = fields {
                let msg = format!(
                    "`{}` is a group of facts, not a value; name one of its fields: {}",
                    p.dotted(),
                    fields.join(", ")
                );
                self.error(map.offset(p.root_span.0), msg);
            }
        }
        (self.diags.len() == before).then_some(template)
    }
}

fn parse_severity(s: &str) -> Option<Severity> {
    Severity::ALL.into_iter().find(|v| v.as_str() == s)
}

fn unknown_variable_message(var: &str, scope: Scope) -> String {
    let allowed = scope.variables();
    let elsewhere = Scope::ALL.into_iter().find(|s| s.variable() == Some(var));
    let hint = match elsewhere {
        Some(s) => format!(
            "; `{var}` is bound only in rules with scope = \"{}\"",
            s.as_str()
        ),
        None => did_you_mean(var, allowed.iter().copied()),
    };
    format!(
        "unknown variable `{var}` for scope \"{}\"{hint}; the variables are: {}",
        scope.as_str(),
        allowed.join(", ")
    )
}

/// CEL reports 1-based line and column (in characters); turn that into a character index.
fn cel_char_index(src: &str, (line, column): (isize, isize)) -> usize {
    let line = usize::try_from(line).unwrap_or(1).max(1);
    let column = usize::try_from(column).unwrap_or(1).max(1);
    let mut index = 0;
    for (n, text) in src.split('\n').enumerate() {
        let len = text.chars().count();
        if n + 1 == line {
            return index + (column - 1).min(len);
        }
        index += len + 1;
    }
    src.chars().count()
}

/// `a-b-c`: lowercase ASCII letters and digits, words joined by single dashes, a letter first.
fn is_kebab_case(id: &str) -> bool {
    id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.split('-').all(|w| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// `1.2.3`, optionally with a pre-release suffix (`0.2.0-dev`).
fn is_version(v: &str) -> bool {
    let core = v.split_once('-').map_or(v, |(core, _)| core);
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_versions() {
        assert!(is_kebab_case("no-nvidia-driver"));
        assert!(is_kebab_case("cuda-init-804"));
        assert!(!is_kebab_case("No-driver"));
        assert!(!is_kebab_case("no_driver"));
        assert!(!is_kebab_case("no--driver"));
        assert!(!is_kebab_case("-x"));
        assert!(!is_kebab_case("9x"));
        assert!(is_version("0.1.0") && is_version("1.20.3-dev"));
        assert!(!is_version("0.1") && !is_version("v0.1.0"));
    }

    #[test]
    fn cel_positions_become_character_indices() {
        assert_eq!(cel_char_index("1 +", (1, 4)), 3);
        assert_eq!(cel_char_index("a &&\n  b >", (2, 6)), 10);
        assert_eq!(cel_char_index("é +", (1, 3)), 2);
    }
}
