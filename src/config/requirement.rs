//! Requirements: what a project needs of a machine ("cuda>=12.1", "gpus>=2", "torch-cuda"),
//! parsed from the configuration and turned into rules.
//!
//! Grammar (docs/config.md#requirements):
//!
//! ```text
//! requirement = name [ constraint { "," constraint } ]
//! constraint  = op value
//! op          = ">=" | ">" | "<=" | "<" | "==" | "!="
//! name        = "cuda" | "driver" | "gpus" | "gpu-memory" | "compute-capability"
//!             | "torch-cuda" | "llama-offload"
//! ```
//!
//! `cuda`, `driver` and `compute-capability` take versions (`12.1`, `550.54.14`, `8.0`),
//! `gpus` a whole number, `gpu-memory` a size with its unit (`24GiB`, `16000MiB`, `40GB`);
//! `torch-cuda` and `llama-offload` take none. Spaces between the parts are allowed.
//!
//! Each requirement becomes two generated rules, so that requirements are judged like every
//! other rule (CEL over Facts, the same findings, the same reports): `requirement-<name>`
//! (error) fires when the facts show the requirement is not met, and
//! `requirement-<name>-unverified` (warn) when the facts cannot tell (the probe that would was
//! skipped in this profile, or failed). Versions in Facts are strings, and CEL has no version
//! comparison, so a version constraint is compiled here into an anchored regular expression
//! that matches exactly the versions that satisfy it (see [`version_regex`]).

use crate::rules::{Category, Severity};
use std::fmt;

/// What a requirement is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The highest CUDA version the driver supports.
    Cuda,
    /// The NVIDIA driver version.
    Driver,
    /// How many GPUs CUDA programs see (after CUDA_VISIBLE_DEVICES).
    Gpus,
    /// Total memory of every GPU CUDA programs see.
    GpuMemory,
    /// Compute capability of every GPU CUDA programs see.
    ComputeCapability,
    /// Some environment's torch runs on the GPU.
    TorchCuda,
    /// Some environment's llama-cpp-python offloads to the GPU.
    LlamaOffload,
}

/// The kind of value a requirement compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueKind {
    Version,
    Count,
    Memory,
    Flag,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Cuda,
        Kind::Driver,
        Kind::Gpus,
        Kind::GpuMemory,
        Kind::ComputeCapability,
        Kind::TorchCuda,
        Kind::LlamaOffload,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Cuda => "cuda",
            Kind::Driver => "driver",
            Kind::Gpus => "gpus",
            Kind::GpuMemory => "gpu-memory",
            Kind::ComputeCapability => "compute-capability",
            Kind::TorchCuda => "torch-cuda",
            Kind::LlamaOffload => "llama-offload",
        }
    }

    fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    fn value_kind(self) -> ValueKind {
        match self {
            Kind::Cuda | Kind::Driver | Kind::ComputeCapability => ValueKind::Version,
            Kind::Gpus => ValueKind::Count,
            Kind::GpuMemory => ValueKind::Memory,
            Kind::TorchCuda | Kind::LlamaOffload => ValueKind::Flag,
        }
    }

    /// The report section its findings go in.
    pub fn category(self) -> Category {
        match self {
            Kind::Cuda | Kind::Driver => Category::Driver,
            Kind::Gpus | Kind::GpuMemory | Kind::ComputeCapability => Category::Gpu,
            Kind::TorchCuda | Kind::LlamaOffload => Category::Python,
        }
    }

    /// The id of the rule that fires when the requirement is not met.
    pub fn rule_id(self) -> String {
        format!("requirement-{}", self.name())
    }

    /// The id of the rule that fires when the facts cannot tell.
    pub fn unverified_rule_id(self) -> String {
        format!("requirement-{}-unverified", self.name())
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
    Ne,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Ge => ">=",
            Op::Gt => ">",
            Op::Le => "<=",
            Op::Lt => "<",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }

    /// Whether `ordering` (fact compared with the required value) satisfies the operator.
    pub fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Op::Ge => ordering != Less,
            Op::Gt => ordering == Greater,
            Op::Le => ordering != Greater,
            Op::Lt => ordering == Less,
            Op::Eq => ordering == Equal,
            Op::Ne => ordering != Equal,
        }
    }
}

/// A value a requirement compares with.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Dotted version components: `12.1` is `[12, 1]`.
    Version(Vec<u64>),
    Count(u64),
    /// A memory size in MiB (may have a fraction: 40GB is 38146.97 MiB).
    Mib(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    pub op: Op,
    pub value: Value,
}

/// One parsed requirement.
#[derive(Debug, Clone, PartialEq)]
pub struct Requirement {
    /// As written (trimmed), for messages.
    pub text: String,
    pub kind: Kind,
    pub constraints: Vec<Constraint>,
}

/// A problem in a requirement: the character index in its text, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub at: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

const UNITS: &[(&str, f64)] = &[
    ("MiB", 1.0),
    ("GiB", 1024.0),
    ("TiB", 1024.0 * 1024.0),
    ("MB", 1e6 / 1_048_576.0),
    ("GB", 1e9 / 1_048_576.0),
    ("TB", 1e12 / 1_048_576.0),
];

/// A small cursor over the requirement's characters.
struct Cursor<'a> {
    chars: Vec<char>,
    pos: usize,
    text: &'a str,
}

impl Cursor<'_> {
    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(|c| c == ' ' || c == '\t') {
            self.pos += 1;
        }
    }
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn take_while(&mut self, f: impl Fn(char) -> bool) -> String {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }
    fn error(&self, at: usize, message: impl Into<String>) -> ParseError {
        let _ = self.text;
        ParseError {
            at,
            message: message.into(),
        }
    }
}

/// Parse one requirement. Errors say where (a character index into `text`) and what was
/// expected.
pub fn parse(text: &str) -> Result<Requirement, ParseError> {
    let mut c = Cursor {
        chars: text.chars().collect(),
        pos: 0,
        text,
    };
    c.skip_spaces();
    let name_at = c.pos;
    let name = c.take_while(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
    let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
    let Some(kind) = Kind::parse(&name) else {
        let shown = if name.is_empty() {
            "an empty name".to_string()
        } else {
            format!("`{name}`")
        };
        let hint = crate::rules::did_you_mean(&name, names.iter().copied());
        return Err(c.error(
            name_at,
            format!(
                "unknown requirement {shown}{hint}; expected one of: {}",
                names.join(", ")
            ),
        ));
    };
    let mut constraints = Vec::new();
    c.skip_spaces();
    while c.peek().is_some() {
        if !constraints.is_empty() {
            if c.peek() != Some(',') {
                return Err(c.error(c.pos, "expected `,` and another comparison, or the end"));
            }
            c.pos += 1;
            c.skip_spaces();
        }
        constraints.push(constraint(&mut c, kind)?);
        c.skip_spaces();
    }
    check_arity(&c, kind, &constraints, name_at)?;
    Ok(Requirement {
        text: text.trim().to_string(),
        kind,
        constraints,
    })
}

/// Flags take no comparison; every other kind needs at least one.
fn check_arity(
    c: &Cursor,
    kind: Kind,
    constraints: &[Constraint],
    name_at: usize,
) -> Result<(), ParseError> {
    let flag = kind.value_kind() == ValueKind::Flag;
    if flag && !constraints.is_empty() {
        return Err(c.error(
            name_at,
            format!(
                "`{}` takes no comparison: write just \"{}\"",
                kind.name(),
                kind.name()
            ),
        ));
    }
    if !flag && constraints.is_empty() {
        return Err(c.error(
            c.chars.len(),
            format!(
                "expected a comparison after `{}`, like \"{}\"",
                kind.name(),
                example(kind)
            ),
        ));
    }
    Ok(())
}

/// How to write several comparisons of one kind, for the duplicate-requirement message.
pub fn combined_example(kind: Kind) -> &'static str {
    match kind {
        Kind::Cuda => "cuda>=12.1,<13",
        Kind::Driver => "driver>=550,<600",
        Kind::Gpus => "gpus>=2,<=4",
        Kind::GpuMemory => "gpu-memory>=24GiB,<=80GiB",
        Kind::ComputeCapability => "compute-capability>=8.0,<10.0",
        Kind::TorchCuda => "torch-cuda",
        Kind::LlamaOffload => "llama-offload",
    }
}

fn example(kind: Kind) -> &'static str {
    match kind {
        Kind::Cuda => "cuda>=12.1",
        Kind::Driver => "driver>=550",
        Kind::Gpus => "gpus>=2",
        Kind::GpuMemory => "gpu-memory>=24GiB",
        Kind::ComputeCapability => "compute-capability>=8.0",
        Kind::TorchCuda => "torch-cuda",
        Kind::LlamaOffload => "llama-offload",
    }
}

fn constraint(c: &mut Cursor, kind: Kind) -> Result<Constraint, ParseError> {
    let op_at = c.pos;
    let op_text = c.take_while(|ch| matches!(ch, '<' | '>' | '=' | '!'));
    let op = match op_text.as_str() {
        ">=" => Op::Ge,
        ">" => Op::Gt,
        "<=" => Op::Le,
        "<" => Op::Lt,
        "==" => Op::Eq,
        "!=" => Op::Ne,
        "=" => return Err(c.error(op_at, "expected `==` (or >=, >, <=, <, !=), found `=`")),
        _ => {
            return Err(c.error(
                op_at,
                format!(
                    "expected a comparison (>=, >, <=, <, ==, !=) after `{}`",
                    kind.name()
                ),
            ))
        }
    };
    c.skip_spaces();
    let value = match kind.value_kind() {
        ValueKind::Version => Value::Version(version(c, kind)?),
        ValueKind::Count => Value::Count(count(c)?),
        ValueKind::Memory => Value::Mib(memory(c)?),
        ValueKind::Flag => unreachable_flag(c)?,
    };
    Ok(Constraint { op, value })
}

/// Flags never reach value parsing (the comparison is refused first); kept total anyway.
fn unreachable_flag(c: &Cursor) -> Result<Value, ParseError> {
    Err(c.error(c.pos, "this requirement takes no comparison"))
}

fn version(c: &mut Cursor, kind: Kind) -> Result<Vec<u64>, ParseError> {
    let at = c.pos;
    let text = c.take_while(|ch| ch.is_ascii_digit() || ch == '.');
    let parts: Option<Vec<u64>> = text.split('.').map(|p| p.parse().ok()).collect();
    match parts {
        Some(parts) if !text.is_empty() && parts.len() <= 4 => Ok(parts),
        _ => Err(c.error(
            at,
            format!(
                "expected a version like {} (numbers joined by dots)",
                match kind {
                    Kind::Driver => "550 or 550.54.14",
                    Kind::ComputeCapability => "8.0",
                    _ => "12.1",
                }
            ),
        )),
    }
}

fn count(c: &mut Cursor) -> Result<u64, ParseError> {
    let at = c.pos;
    let text = c.take_while(|ch| ch.is_ascii_digit());
    text.parse()
        .map_err(|_| c.error(at, "expected a whole number of GPUs, like 2"))
}

fn memory(c: &mut Cursor) -> Result<f64, ParseError> {
    let at = c.pos;
    let number = c.take_while(|ch| ch.is_ascii_digit() || ch == '.');
    let value: f64 = number
        .parse()
        .map_err(|_| c.error(at, "expected a size like 24GiB, 16000MiB or 40GB"))?;
    c.skip_spaces();
    let unit_at = c.pos;
    let unit = c.take_while(|ch| ch.is_ascii_alphabetic());
    let units: Vec<&str> = UNITS.iter().map(|(u, _)| *u).collect();
    let factor = UNITS
        .iter()
        .find(|(u, _)| u.eq_ignore_ascii_case(&unit))
        .map(|(_, f)| *f)
        .ok_or_else(|| {
            let found = if unit.is_empty() {
                "no unit".to_string()
            } else {
                format!("`{unit}`")
            };
            c.error(
                unit_at,
                format!(
                    "expected a unit after {number} ({}), found {found}",
                    units.join(", ")
                ),
            )
        })?;
    Ok(value * factor)
}

// ---------------------------------------------------------------------------------------------
// Requirements as rules

/// A rule generated from a requirement, as the fields of a `[[rule]]` table.
#[derive(Debug, Clone)]
pub struct GeneratedRule {
    pub id: String,
    pub category: Category,
    pub severity: Severity,
    pub when: String,
    pub title: String,
    pub explain: String,
    pub evidence: Vec<String>,
    pub docs: String,
    pub fix_none: String,
}

/// The two rules of a requirement: not met (error) and cannot tell (warn). `configured_envs`
/// narrows `torch-cuda` and `llama-offload` to the environments the configuration names.
/// `origin` says where the requirement was written ("gpu-doctor.toml:5").
pub fn rules(req: &Requirement, configured_envs: bool, origin: &str) -> [GeneratedRule; 2] {
    let c = conditions(req, configured_envs);
    let text = &req.text;
    let docs = format!(
        "A requirement of this project's configuration ({origin}): `{text}`.\n\n{}\n\n\
         `{}` fires when the facts show the requirement is not met; `{}` when they cannot \
         tell (the probe that would tell was skipped in this profile, or failed). Change or \
         remove the requirement in the configuration, or waive the finding there with a \
         reason and an expiry date.",
        c.meaning,
        req.kind.rule_id(),
        req.kind.unverified_rule_id()
    );
    let unmet = GeneratedRule {
        id: req.kind.rule_id(),
        category: req.kind.category(),
        severity: Severity::Error,
        when: c.unmet.clone(),
        title: format!("Requirement {text} is not met: {}", c.actual),
        explain: format!(
            "This project's configuration ({origin}) requires {text}: {} {}",
            c.meaning, c.consequence
        ),
        evidence: c.evidence.clone(),
        docs: docs.clone(),
        fix_none: "a machine that meets it, or the other findings' fixes; the requirement \
                   itself is the project's policy"
            .to_string(),
    };
    let unverified = GeneratedRule {
        id: req.kind.unverified_rule_id(),
        category: req.kind.category(),
        severity: Severity::Warn,
        when: c.unverified.clone(),
        title: format!("Requirement {text} could not be checked: {}", c.unknown),
        explain: format!(
            "This project's configuration ({origin}) requires {text}, but these facts cannot \
             tell whether the machine meets it ({}). Run gpu-doctor with --profile standard \
             (or full) to check it.",
            c.unknown
        ),
        evidence: c.evidence,
        docs,
        fix_none: "run gpu-doctor check --profile standard".to_string(),
    };
    [unmet, unverified]
}

/// The CEL and the words of one requirement.
struct Conditions {
    /// The facts show it is not met.
    unmet: String,
    /// The facts cannot tell, and do not show it met.
    unverified: String,
    /// What the machine has, as a template, for the title.
    actual: String,
    /// What the requirement means, in a sentence.
    meaning: String,
    /// What happens when it is not met.
    consequence: &'static str,
    /// Why it cannot be told.
    unknown: &'static str,
    evidence: Vec<String>,
}

/// The driver probe asked NVML (or found no driver at all), so GPU counts are facts.
const GPUS_KNOWN: &str = "'driver' in probes && (probes.driver.status == 'absent' || \
                          driver.version != null || driver.init_error != null)";
/// The Python probe ran (and found environments, or found none).
const PYTHON_KNOWN: &str = "'python' in probes && probes.python.status in ['ok', 'absent']";
/// A GPU CUDA programs see: not hidden by CUDA_VISIBLE_DEVICES.
const VISIBLE: &str = "!(g.index in derived.visibility.cuda_hidden_indices)";

fn conditions(req: &Requirement, configured_envs: bool) -> Conditions {
    match req.kind {
        Kind::Cuda => version_conditions(
            req,
            "derived.driver_max_cuda",
            "the highest CUDA the driver here supports is {derived.driver_max_cuda}",
            "the highest CUDA version the NVIDIA driver supports",
            "CUDA programs built for a newer CUDA do not start on this driver.",
        ),
        Kind::Driver => version_conditions(
            req,
            "derived.driver_version",
            "the driver version here is {derived.driver_version}",
            "the NVIDIA driver version",
            "the project's GPU stack needs that driver.",
        ),
        Kind::Gpus => Conditions {
            unmet: unmet(
                GPUS_KNOWN,
                &req.constraints
                    .iter()
                    .map(|c| int_cmp("derived.visibility.cuda_visible_gpus", c))
                    .collect::<Vec<_>>()
                    .join(" && "),
            ),
            unverified: format!("!({GPUS_KNOWN})"),
            actual: "CUDA programs here see {derived.visibility.cuda_visible_gpus} GPU(s)"
                .to_string(),
            meaning: "the number of GPUs CUDA programs see (after CUDA_VISIBLE_DEVICES)."
                .to_string(),
            consequence: "Work sized for that many GPUs fails or runs short of them here.",
            unknown: "the driver was not asked how many GPUs there are (the quick profile does not load it)",
            evidence: vec![
                "GPUs NVML sees: {derived.visibility.physical_gpus}".to_string(),
                "CUDA_VISIBLE_DEVICES: {host.env.cuda_visible_devices}".to_string(),
            ],
        },
        Kind::GpuMemory | Kind::ComputeCapability => per_gpu_conditions(req),
        Kind::TorchCuda => torch_conditions(configured_envs),
        Kind::LlamaOffload => llama_conditions(configured_envs),
    }
}

/// "Known and not met", from the two conditions.
fn unmet(known: &str, met: &str) -> String {
    format!("({known}) && !({met})")
}

/// "Not known and not met", from the two conditions.
fn unverified(known: &str, met: &str) -> String {
    format!("!({known}) && !({met})")
}

fn version_conditions(
    req: &Requirement,
    path: &str,
    actual: &str,
    what: &str,
    consequence: &'static str,
) -> Conditions {
    let regexes: Vec<String> = req
        .constraints
        .iter()
        .map(|c| match &c.value {
            Value::Version(v) => format!("{path}.matches('{}')", version_regex(c.op, v)),
            _ => "false".to_string(),
        })
        .collect();
    // No driver at all is a fact (the requirement is not met); a driver whose version could
    // not be read is not.
    let known =
        format!("{path} != null || ('driver' in probes && probes.driver.status == 'absent')");
    let met = format!("{path} != null && {}", regexes.join(" && "));
    Conditions {
        unmet: unmet(&known, &met),
        // Not known means the version is null, so it is not met either.
        unverified: format!("!({known})"),
        actual: actual.to_string(),
        meaning: format!(
            "{what} must satisfy {}.",
            req.constraints
                .iter()
                .map(constraint_text)
                .collect::<Vec<_>>()
                .join(" and ")
        ),
        consequence,
        unknown: "the driver's version could not be read",
        evidence: vec![
            "driver: {derived.driver_version}, CUDA up to {derived.driver_max_cuda} (from {derived.driver_max_cuda_source})".to_string(),
        ],
    }
}

fn per_gpu_conditions(req: &Requirement) -> Conditions {
    let memory = req.kind == Kind::GpuMemory;
    let each: Vec<String> = req
        .constraints
        .iter()
        .map(|c| match &c.value {
            Value::Mib(mib) => format!(
                "g.memory.total_mib {} {}",
                c.op.as_str(),
                number_literal(*mib)
            ),
            Value::Version(v) => cc_cmp(c.op, v),
            Value::Count(_) => "false".to_string(),
        })
        .collect();
    let (actual, meaning, consequence) = if memory {
        (
            "the GPUs CUDA programs see have {driver.gpus.memory.total_mib} MiB",
            "the total memory of every GPU CUDA programs see",
            "Models and batches sized for that memory run out of it here.",
        )
    } else {
        (
            "the GPUs CUDA programs see have compute capability {driver.gpus.compute_capability}",
            "the compute capability of every GPU CUDA programs see",
            "Kernels and wheels built for those architectures do not run on older GPUs.",
        )
    };
    let met = format!(
        "derived.visibility.cuda_visible_gpus > 0 && driver.gpus.all(g, !({VISIBLE}) || ({}))",
        each.join(" && ")
    );
    Conditions {
        unmet: unmet(GPUS_KNOWN, &met),
        unverified: format!("!({GPUS_KNOWN})"),
        actual: actual.to_string(),
        meaning: format!(
            "{meaning} must satisfy {} (and there must be one).",
            req.constraints
                .iter()
                .map(constraint_text)
                .collect::<Vec<_>>()
                .join(" and ")
        ),
        consequence,
        unknown: "the driver was not asked about the GPUs (the quick profile does not load it)",
        evidence: vec![
            "GPUs: {driver.gpus.name}".to_string(),
            "hidden by CUDA_VISIBLE_DEVICES: {derived.visibility.cuda_hidden_indices}".to_string(),
        ],
    }
}

/// Whether environment `e` (of `python.environments`) is one the configuration names.
const CONFIGURED: &str = "'config' in e.found_by";

fn which_envs(configured_envs: bool) -> &'static str {
    if configured_envs {
        "one of the environments the configuration names"
    } else {
        "some Python environment of the project"
    }
}

/// torch runs on the GPU in some environment, as its own interpreter answered (the standard
/// profile's live probe): CUDA available and a tensor operation working on every GPU it sees.
/// An environment cannot tell when torch is installed but was not asked (the quick profile).
fn torch_conditions(configured_envs: bool) -> Conditions {
    let filter = if configured_envs { CONFIGURED } else { "true" };
    let met = format!(
        "python.environments.exists(e, {filter} && e.live != null && e.live.torch.cuda_available == true && e.live.torch.devices.all(d, d.tensor_ok))"
    );
    let known = format!(
        "{PYTHON_KNOWN} && python.environments.all(e, !({filter}) || !e.torch.installed || !e.python_exists || (e.live != null && e.live.torch.attempted))"
    );
    Conditions {
        unmet: unmet(&known, &met),
        unverified: unverified(&known, &met),
        actual: "no environment's torch runs on the GPU".to_string(),
        meaning: format!(
            "{} has a CUDA build of PyTorch that runs on this machine's GPU (torch.cuda.is_available() and a tensor operation on each GPU, asked of the environment's own Python).",
            which_envs(configured_envs)
        ),
        consequence: "PyTorch work would run on the CPU or fail.",
        unknown: "these facts have no answer from the environments' own Python (the quick profile reads only files, and facts recorded without the Python probe have none)",
        evidence: vec!["{derived.python.matrix_lines}".to_string()],
    }
}

/// llama-cpp-python offloads in some environment. Where the offload proof ran that
/// environment's llama-cpp-python (the full profile), its answer is where the test model's
/// layers really went: every one on a GPU. Elsewhere it is what the live probe asked:
/// llama_supports_gpu_offload(), true only when a GPU backend loaded and found a device. An
/// environment whose files show no GPU backend needs no asking.
fn llama_conditions(configured_envs: bool) -> Conditions {
    let filter = if configured_envs { CONFIGURED } else { "true" };
    let proved = "e.name in derived.python.llama_proved";
    let all_on_gpu = "e.name in derived.python.llama_proved_on_gpu";
    let met = format!(
        "python.environments.exists(e, {filter} && ({all_on_gpu} || (!({proved}) && e.live != null && e.live.llama_cpp.supports_gpu_offload == true)))"
    );
    // An environment tells when the proof loaded the model with it, when its live probe
    // asked, or when its files show no GPU backend.
    let known = format!(
        "{PYTHON_KNOWN} && python.environments.all(e, !({filter}) || !e.llama_cpp.installed || !e.python_exists || {proved} || (e.live != null && e.live.llama_cpp.attempted) || (size(e.llama_cpp.gpu_backends) == 0 && !e.llama_cpp.cuda_backend))"
    );
    Conditions {
        unmet: unmet(&known, &met),
        unverified: unverified(&known, &met),
        actual: "no environment's llama-cpp-python offloads to the GPU".to_string(),
        meaning: format!(
            "{} has a llama-cpp-python that puts every layer on the GPU here: every layer of the offload proof's test model on a GPU where the full profile ran the proof, else llama_supports_gpu_offload().",
            which_envs(configured_envs)
        ),
        consequence: "n_gpu_layers would do nothing: every layer would run on the CPU.",
        unknown: "these facts have no answer from llama-cpp-python itself (the quick profile reads only files, and facts recorded without the Python probe have none)",
        evidence: vec!["{derived.python.matrix_lines}".to_string()],
    }
}

fn constraint_text(c: &Constraint) -> String {
    let value = match &c.value {
        Value::Version(v) => join_version(v),
        Value::Count(n) => n.to_string(),
        Value::Mib(m) => format!("{} MiB", number_literal(*m)),
    };
    format!("{} {value}", c.op.as_str())
}

fn join_version(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

/// A number for CEL: whole numbers without a fraction, others with up to 3 decimals.
fn number_literal(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.3}")
    }
}

fn int_cmp(path: &str, c: &Constraint) -> String {
    match &c.value {
        Value::Count(n) => format!("{path} {} {n}", c.op.as_str()),
        _ => "false".to_string(),
    }
}

/// Compute capability against `v` (major[.minor]) with `g.cc_major` and `g.cc_minor`.
fn cc_cmp(op: Op, v: &[u64]) -> String {
    let major = v.first().copied().unwrap_or(0);
    let Some(&minor) = v.get(1) else {
        return format!("g.cc_major {} {major}", op.as_str());
    };
    let gt = format!("(g.cc_major > {major} || (g.cc_major == {major} && g.cc_minor > {minor}))");
    let lt = format!("(g.cc_major < {major} || (g.cc_major == {major} && g.cc_minor < {minor}))");
    let eq = format!("(g.cc_major == {major} && g.cc_minor == {minor})");
    match op {
        Op::Gt => gt,
        Op::Lt => lt,
        Op::Eq => eq,
        Op::Ge => format!("!{lt}"),
        Op::Le => format!("!{gt}"),
        Op::Ne => format!("!{eq}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Version comparison as a regular expression

/// An anchored regular expression matching the dotted versions `v` for which
/// `v <op> required` holds. Components compare as numbers, as many as `required` has; a
/// version with fewer components counts the missing ones as 0, extra ones are ignored
/// (`cuda==12` is any 12.x). Leading zeros are allowed ("580.159.04").
///
/// `[.]` and `[0-9]` stand for a dot and a digit so that the expression needs no backslashes
/// inside a CEL string inside a TOML string.
pub fn version_regex(op: Op, required: &[u64]) -> String {
    let k = required.len();
    let mut cases: Vec<String> = Vec::new();
    let mut add_cmp_cases = |cmp: Pred| {
        for i in 0..k {
            let mut preds: Vec<Pred> = required[..i].iter().map(|&r| Pred::Eq(r)).collect();
            preds.push(match cmp {
                Pred::Gt(_) => Pred::Gt(required[i]),
                _ => Pred::Lt(required[i]),
            });
            if let Some(case) = case_regex(&preds) {
                cases.push(case);
            }
        }
    };
    if matches!(op, Op::Gt | Op::Ge | Op::Ne) {
        add_cmp_cases(Pred::Gt(0));
    }
    if matches!(op, Op::Lt | Op::Le | Op::Ne) {
        add_cmp_cases(Pred::Lt(0));
    }
    if matches!(op, Op::Eq | Op::Ge | Op::Le) {
        let preds: Vec<Pred> = required.iter().map(|&r| Pred::Eq(r)).collect();
        if let Some(case) = case_regex(&preds) {
            cases.push(case);
        }
    }
    if cases.is_empty() {
        // Nothing satisfies it (< 0): a pattern that matches no version.
        return "^[^0-9]*[.][.]$".to_string();
    }
    format!("^(?:{})$", cases.join("|"))
}

/// A condition on one version component.
#[derive(Debug, Clone, Copy)]
enum Pred {
    Eq(u64),
    Gt(u64),
    Lt(u64),
}

impl Pred {
    fn accepts_zero(self) -> bool {
        match self {
            Pred::Eq(r) => r == 0,
            Pred::Gt(_) => false,
            Pred::Lt(r) => r > 0,
        }
    }

    /// A regular expression for one component satisfying the condition; `None` when none does.
    fn regex(self) -> Option<String> {
        let alts = match self {
            Pred::Eq(r) => vec![r.to_string()],
            Pred::Gt(r) => greater_than(r),
            Pred::Lt(r) => less_than(r),
        };
        (!alts.is_empty()).then(|| format!("0*(?:{})", alts.join("|")))
    }
}

/// The version regex of one case: components 0.. with these conditions, then anything.
/// A component may be missing (the version ended) when it and all later conditions accept 0.
fn case_regex(preds: &[Pred]) -> Option<String> {
    let mut tail = "(?:[.][0-9]+)*".to_string();
    for (i, pred) in preds.iter().enumerate().rev() {
        let comp = pred.regex()?;
        let optional_rest = preds[i..].iter().all(|p| p.accepts_zero());
        tail = if i == 0 {
            format!("{comp}{tail}")
        } else if optional_rest {
            format!("(?:[.]{comp}{tail})?")
        } else {
            format!("[.]{comp}{tail}")
        };
    }
    Some(tail)
}

/// Canonical decimal numbers (no leading zeros) greater than `n`, as regex alternatives.
fn greater_than(n: u64) -> Vec<String> {
    let s: Vec<u32> = n
        .to_string()
        .chars()
        .filter_map(|c| c.to_digit(10))
        .collect();
    let len = s.len();
    let mut alts = vec![format!("[1-9][0-9]{{{len},}}")];
    for i in 0..len {
        if s[i] < 9 {
            let prefix: String = s[..i].iter().map(|d| d.to_string()).collect();
            alts.push(format!("{prefix}[{}-9]{}", s[i] + 1, digits(len - i - 1)));
        }
    }
    alts
}

/// Canonical decimal numbers less than `n`, as regex alternatives (none for 0).
fn less_than(n: u64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    let s: Vec<u32> = n
        .to_string()
        .chars()
        .filter_map(|c| c.to_digit(10))
        .collect();
    let len = s.len();
    let mut alts = vec!["0".to_string()];
    if len >= 2 {
        alts.push(format!("[1-9][0-9]{{0,{}}}", len - 2));
    }
    for i in 0..len {
        let low = if i == 0 { 1 } else { 0 };
        if s[i] > low {
            let prefix: String = s[..i].iter().map(|d| d.to_string()).collect();
            alts.push(format!(
                "{prefix}[{low}-{}]{}",
                s[i] - 1,
                digits(len - i - 1)
            ));
        }
    }
    alts
}

fn digits(n: usize) -> String {
    match n {
        0 => String::new(),
        n => format!("[0-9]{{{n}}}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    fn compare(fact: &[u64], required: &[u64]) -> Ordering {
        for (i, r) in required.iter().enumerate() {
            let f = fact.get(i).copied().unwrap_or(0);
            match f.cmp(r) {
                Ordering::Equal => continue,
                other => return other,
            }
        }
        Ordering::Equal
    }

    /// `text.matches(regex)` as the rules' CEL engine runs it.
    struct CelMatcher {
        env: std::sync::Arc<cel::Env>,
    }

    impl CelMatcher {
        fn new() -> CelMatcher {
            CelMatcher {
                env: std::sync::Arc::new(cel::Env::stdlib()),
            }
        }
        fn matches(&self, regex: &str, text: &str) -> bool {
            self.run(
                &self.env.compile(&format!("v.matches('{regex}')")).unwrap(),
                text,
            )
        }
        fn run(&self, program: &cel::Program, text: &str) -> bool {
            let mut ctx = cel::Context::with_env(self.env.clone());
            ctx.add_variable_from_value("v", text.to_string());
            match program.execute(&ctx) {
                Ok(cel::Value::Bool(b)) => b,
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    /// Every operator against many requirements, checked against a plain comparison of the
    /// components, through CEL's `matches`.
    #[test]
    fn version_regexes_agree_with_numeric_comparison() {
        let values = [
            0u64, 1, 2, 8, 9, 10, 11, 12, 19, 20, 99, 100, 109, 550, 580, 1000,
        ];
        let mut facts: Vec<Vec<u64>> = Vec::new();
        for &a in &values {
            facts.push(vec![a]);
            for &b in &[0u64, 1, 2, 9, 10, 54, 159] {
                facts.push(vec![a, b]);
                facts.push(vec![a, b, 4]);
            }
        }
        let requireds: Vec<Vec<u64>> = vec![
            vec![0],
            vec![12],
            vec![12, 1],
            vec![12, 0],
            vec![9, 10],
            vec![550, 54, 14],
            vec![100],
            vec![1, 0, 0],
        ];
        let ops = [Op::Ge, Op::Gt, Op::Le, Op::Lt, Op::Eq, Op::Ne];
        let cel = CelMatcher::new();
        for required in &requireds {
            for op in ops {
                let re = version_regex(op, required);
                let program = cel.env.compile(&format!("v.matches('{re}')")).unwrap();
                for fact in &facts {
                    let text = join_version(fact);
                    let expected = op.holds(compare(fact, required));
                    assert_eq!(
                        cel.run(&program, &text),
                        expected,
                        "{text} {} {} (regex {re})",
                        op.as_str(),
                        join_version(required)
                    );
                }
            }
        }
        // Leading zeros, as in driver versions.
        let re = version_regex(Op::Ge, &[580, 100, 4]);
        assert!(cel.matches(&re, "580.159.04"));
        assert!(!cel.matches(&re, "580.065.06"));
        assert!(!cel.matches(&re, "580.159x"));
        assert!(!cel.matches(&version_regex(Op::Lt, &[0]), "0"));
    }

    #[test]
    fn parses_every_kind() {
        let r = parse("cuda>=12.1").unwrap();
        assert_eq!(r.kind, Kind::Cuda);
        assert_eq!(
            r.constraints,
            vec![Constraint {
                op: Op::Ge,
                value: Value::Version(vec![12, 1])
            }]
        );
        let r = parse(" cuda >= 12.1 , < 13 ").unwrap();
        assert_eq!(r.constraints.len(), 2);
        assert_eq!(r.text, "cuda >= 12.1 , < 13");
        assert_eq!(
            parse("gpus>=2").unwrap().constraints[0].value,
            Value::Count(2)
        );
        assert_eq!(
            parse("gpu-memory>=24GiB").unwrap().constraints[0].value,
            Value::Mib(24576.0)
        );
        assert_eq!(
            parse("gpu-memory > 16000 mib").unwrap().constraints[0].value,
            Value::Mib(16000.0)
        );
        assert_eq!(parse("torch-cuda").unwrap().kind, Kind::TorchCuda);
        assert_eq!(parse("llama-offload").unwrap().kind, Kind::LlamaOffload);
        assert_eq!(
            parse("compute-capability>=8.0").unwrap().kind,
            Kind::ComputeCapability
        );
        assert_eq!(parse("driver>=550.54.14").unwrap().kind, Kind::Driver);
    }

    #[test]
    fn errors_point_at_the_character() {
        let e = parse("cuda-version>=12").unwrap_err();
        assert_eq!(e.at, 0);
        assert!(
            e.message.contains("unknown requirement `cuda-version`"),
            "{e}"
        );
        let e = parse("gpus=2").unwrap_err();
        assert_eq!((e.at, e.message.contains("`==`")), (4, true), "{e}");
        let e = parse("gpus>=two").unwrap_err();
        assert_eq!(e.at, 6, "{e}");
        let e = parse("gpu-memory>=24").unwrap_err();
        assert_eq!(e.at, 14, "{e}");
        assert!(e.message.contains("found no unit"), "{e}");
        let e = parse("gpu-memory>=24 GiBs").unwrap_err();
        assert_eq!(e.at, 15, "{e}");
        let e = parse("torch-cuda>=2").unwrap_err();
        assert!(e.message.contains("takes no comparison"), "{e}");
        let e = parse("cuda").unwrap_err();
        assert_eq!(e.at, 4, "{e}");
        assert!(e.message.contains("cuda>=12.1"), "{e}");
        let e = parse("cuda>=12.1 <13").unwrap_err();
        assert_eq!(e.at, 11, "{e}");
        let e = parse("gpus>=2x").unwrap_err();
        assert_eq!(e.at, 7, "{e}");
        assert_eq!(parse("").unwrap_err().at, 0);
    }

    #[test]
    fn compute_capability_compares_major_and_minor() {
        assert_eq!(cc_cmp(Op::Ge, &[8]), "g.cc_major >= 8");
        assert!(cc_cmp(Op::Ge, &[8, 6]).starts_with("!(g.cc_major < 8"));
    }
}
