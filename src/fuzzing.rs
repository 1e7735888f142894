//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz), one per reader of foreign input.
//!
//! Each function takes arbitrary bytes and drives one reader the way the doctor does, then the
//! code downstream of it, so that a panic, a stack overflow or a hang anywhere on that path is
//! found. None of them returns anything: a reader that rejects the input is the expected outcome
//! for almost every input; only a crash is a finding. The fuzz targets and the regression tests
//! (`tests/fuzz_regressions.rs`, which replays `fuzz/regressions/`) call the same functions, so
//! a crash fixed once stays fixed without the fuzzer.
//!
//! Not part of the stable API.

use crate::cli::{FailOn, Format};
use crate::facts::Facts;
use crate::report::{self, ReportInput, Verdict};
use crate::rules::{self, RuleSet};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

/// Every output format, so that each renderer meets what the fuzzer makes.
const FORMATS: [Format; 8] = [
    Format::Human,
    Format::Json,
    Format::Junit,
    Format::Github,
    Format::Sarif,
    Format::Markdown,
    Format::Line,
    Format::Prom,
];

/// A real machine's facts, for judging fuzzed rules against.
const RECORDED_FACTS: &str = include_str!("../fixtures/facts/h100-python.json");

fn recorded_facts() -> &'static Facts {
    static FACTS: OnceLock<Facts> = OnceLock::new();
    FACTS.get_or_init(|| serde_json::from_str(RECORDED_FACTS).unwrap_or_default())
}

fn builtin_rules() -> &'static RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES.get_or_init(|| RuleSet::builtin().unwrap_or_default())
}

/// Judge `facts` with `rules` and render every format, as `gpu-doctor check` would.
fn judge_and_render(rules: &RuleSet, facts: &Facts) {
    let mut judgement = rules::Judgement::new(rules, facts);
    judgement.group_by_cause(rules);
    let verdict = Verdict::new(&judgement.findings, FailOn::Warn);
    for format in FORMATS {
        let input = ReportInput {
            facts,
            findings: &judgement.findings,
            derived: &judgement.derived,
            verdict: &verdict,
            verbose: true,
            rules,
            waived: &[],
            config: None,
        };
        let _ = report::render(format, &input);
    }
}

/// A GGUF model header (`gpu-doctor model FILE`): read, summarize, estimate the fit, report.
pub fn gguf_reader(data: &[u8]) {
    use crate::gguf::model::{layers_that_fit, summary_of, KvCacheType};
    let path = Path::new("fuzz.gguf");
    let Ok(file) = crate::gguf::reader::read_bytes(path, data) else {
        return;
    };
    let summary = summary_of(path, &file);
    for (free_mib, ctx, kv) in [
        (0, 0, KvCacheType::F16),
        (81_559, 4096, KvCacheType::Q8_0),
        (u64::MAX, u64::MAX, KvCacheType::Q4_0),
    ] {
        let fit = layers_that_fit(&summary, free_mib, ctx, kv);
        let _ = report::model_report(&summary, Ok("fuzz"), Some(&fit));
    }
}

/// A user's rule file (`--rules FILE`, or one named by a repository's configuration): load
/// it; when it loads, judge a recorded machine with it and render every format.
pub fn rules_loader(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut rules = RuleSet::empty();
    if rules.load_str("fuzz.toml", text).is_ok() {
        judge_and_render(&rules, recorded_facts());
    }
}

/// What one estimated evaluation step may take here, at most: about 0.2 µs in an optimized
/// build (rules::limits), ten times that for the fuzzer's instrumentation and a busy machine;
/// an unoptimized build is 10 to 30 times slower again.
const STEP_TIME: Duration = Duration::from_nanos(if cfg!(debug_assertions) {
    60_000
} else {
    2_000
});
/// Time any evaluation may take whatever its estimate: setting up, the built-in rules.
const EVALUATION_SLACK: Duration = Duration::from_secs(if cfg!(debug_assertions) { 5 } else { 1 });
/// Separates the rule files of one `rules_cost` input.
const FILE_SEPARATOR: &str = "\n#--- next file\n";

/// Several user rule files (`--rules` and a configuration's; the input split at
/// [`FILE_SEPARATOR`]) loaded under the run's total budget (rules::limits::Spent); when they
/// load, judge a recorded machine with them. Evaluation taking longer than the budget's
/// estimate of it allows ([`STEP_TIME`] per estimated step, plus [`EVALUATION_SLACK`]) is a
/// crash: the estimate, which keeps a hostile repository from making every commit take
/// minutes, was not an upper bound.
pub fn rules_cost(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut rules = RuleSet::empty();
    for (i, file) in text.split(FILE_SEPARATOR).enumerate() {
        if rules
            .load_file_text(&format!("fuzz-{i}.toml"), file)
            .is_err()
        {
            return;
        }
    }
    let steps = rules.estimated_user_steps();
    let allowed = STEP_TIME
        .saturating_mul(u32::try_from(steps).unwrap_or(u32::MAX))
        .saturating_add(EVALUATION_SLACK);
    let start = std::time::Instant::now();
    let findings = rules::evaluate(&rules, recorded_facts());
    let took = start.elapsed();
    assert!(
        took <= allowed,
        "rules estimated at {steps} evaluation steps took {took:?} to evaluate, more than the \
         {allowed:?} that estimate allows ({} findings)",
        findings.len()
    );
}

/// A recorded facts file (`check --facts FILE`): parse it; when it parses, judge it with the
/// built-in rules and render every format, then redact it (`--redact`) and judge that too.
pub fn facts_reader(data: &[u8]) {
    // The checks of the bytes read (size cap, UTF-8), then parsing, as `read_facts` does.
    let Ok(facts) = crate::app::facts_from_bytes("fuzz.json", data.to_vec()) else {
        return;
    };
    judge_and_render(builtin_rules(), &facts);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::facts::redact::redact_text(text);
    if let Ok(redacted) = crate::facts::redact::redact(facts) {
        judge_and_render(builtin_rules(), &redacted);
    }
}

/// The dynamic section of a shared library (`libllama.so`, `libggml-cuda.so`).
pub fn elf_reader(data: &[u8]) {
    let _ = crate::probe::elf::parse_dynamic(data);
}

/// A llama.cpp log (from the user's llama.cpp, llama-cpp-python or llama-cli), as the offload
/// proof reads it: every function over log text.
pub fn log_parser(data: &[u8]) {
    use crate::probe::llama::log;
    let text = String::from_utf8_lossy(data);
    let parsed = log::parse_log(&text);
    let _ = format!("{parsed:?}");
    let _ = log::parse_load(&text);
    for line in log::tail(&text, 8) {
        let _ = log::quote(&line);
        let _ = log::is_gpu_device(&line);
    }
}

/// A project's configuration (`gpu-doctor.toml` or `[tool.gpu-doctor]` in `pyproject.toml`),
/// which comes with a repository: check it; when it is valid, add the rules its requirements
/// generate, check its waivers, judge a recorded machine and apply them, and render.
pub fn config_loader(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A `[tool...]` table makes it a pyproject.toml, so that the fuzzer explores both layouts.
    let name = if text.contains("[tool") {
        "/fuzz/pyproject.toml"
    } else {
        "/fuzz/gpu-doctor.toml"
    };
    let Ok(config) = crate::config::load_str(Path::new(name), text) else {
        return;
    };
    if config.requirements.is_empty() && config.waivers.is_empty() {
        return;
    }
    let Ok(mut rules) = RuleSet::builtin() else {
        return;
    };
    // A valid configuration whose generated rules do not load is a bug: make it a crash.
    if let Err(e) = config.add_requirement_rules(&mut rules) {
        panic!("the rules generated from a valid configuration do not load:\n{e}");
    }
    if config.check_waivers(&rules).is_err() {
        return;
    }
    let facts = recorded_facts();
    let mut judgement = rules::Judgement::new(&rules, facts);
    let (findings, waived) = config.apply_waivers(
        std::mem::take(&mut judgement.findings),
        &rules,
        crate::config::Date::from_unix_days(20_000),
    );
    judgement.findings = findings;
    judgement.group_by_cause(&rules);
    let verdict = Verdict::new(&judgement.findings, FailOn::Error);
    for format in FORMATS {
        let input = ReportInput {
            facts,
            findings: &judgement.findings,
            derived: &judgement.derived,
            verdict: &verdict,
            verbose: true,
            rules: &rules,
            waived: &waived,
            config: Some(&config.name),
        };
        let _ = report::render(format, &input);
    }
}
