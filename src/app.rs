//! The application: turns a parsed command line into work and an exit code.
//!
//! Exit codes are an interface (docs/exit-codes.md): 0 ready, 1 not ready, 2 no verdict. Every
//! output is rendered in full before anything is written, so a failure never leaves half a
//! document on stdout.

use crate::cli::{CheckArgs, ChildProbe, Cli, ColorChoice, Command, FailOn, Format};
use crate::facts::{Facts, SCHEMA_VERSION};
use crate::probe::{self, ProbeContext, Profile};
use crate::report::{self, ReportInput, Verdict};
use crate::rules::{self, RuleSet};
use clap::CommandFactory;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;

pub const EXIT_READY: i32 = 0;
pub const EXIT_NOT_READY: i32 = 1;
pub const EXIT_NO_VERDICT: i32 = 2;

/// Why no verdict could be reached. Both kinds exit with code 2.
#[derive(Debug)]
pub enum AppError {
    /// The user's input is wrong: a flag, a facts file, a rule file. Says what and where.
    Input(String),
    /// A rule file is invalid; the text is the collected diagnostics, each with its place.
    Rules(String),
    /// Something inside gpu-doctor went wrong.
    Internal(String),
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Input(m) => write!(f, "error: {m}"),
            AppError::Rules(m) => write!(f, "invalid rule file:\n{m}"),
            AppError::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

/// Run the command line and return the process exit code.
pub fn run(cli: Cli) -> i32 {
    configure_color(cli.global.color);
    let verbose = cli.global.verbose;
    let result = match cli.command {
        None => check(&cli.check, verbose),
        Some(Command::Check(args)) => check(&merge(&cli.check, args), verbose),
        Some(Command::Facts(args)) => facts(args.profile.unwrap_or(Profile::Standard)),
        Some(Command::Rules(args)) => list_rules(&args.rule_files),
        Some(Command::Explain(args)) => explain(&args.rule),
        Some(Command::Completions(args)) => completions(args.shell),
        Some(Command::Model(args)) => model(&args),
        Some(Command::Probe(args)) => return child_probe(args.probe, args.profile),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gpu-doctor: {e}");
            EXIT_NO_VERDICT
        }
    }
}

/// Options given before the subcommand apply unless the subcommand repeats them.
fn merge(top: &CheckArgs, sub: CheckArgs) -> CheckArgs {
    let mut rule_files = top.rule_files.clone();
    rule_files.extend(sub.rule_files);
    CheckArgs {
        profile: sub.profile.or(top.profile),
        facts: sub.facts.or_else(|| top.facts.clone()),
        format: sub.format.or(top.format),
        fail_on: sub.fail_on.or(top.fail_on),
        rule_files,
        output: sub.output.or_else(|| top.output.clone()),
    }
}

fn configure_color(choice: ColorChoice) {
    match choice {
        ColorChoice::Always => owo_colors::set_override(true),
        ColorChoice::Never => owo_colors::set_override(false),
        ColorChoice::Auto => {
            // owo-colors lets FORCE_COLOR beat NO_COLOR; no-color.org says NO_COLOR wins.
            if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
                owo_colors::set_override(false);
            }
        }
    }
}

fn check(args: &CheckArgs, verbose: bool) -> Result<i32, AppError> {
    let rules = load_rules(&args.rule_files)?;
    let facts = match &args.facts {
        Some(path) => read_facts(path)?,
        None => probe::collect(&ProbeContext::from_process(
            args.profile.unwrap_or(Profile::Standard),
        )),
    };
    let findings = rules::evaluate(&rules, &facts);
    let verdict = Verdict::new(&findings, args.fail_on.unwrap_or_default());
    let input = ReportInput {
        facts: &facts,
        findings: &findings,
        verdict: &verdict,
        verbose,
        rules: &rules,
    };
    let text = report::render(args.format.unwrap_or(Format::Human), &input)?;
    match &args.output {
        Some(path) => report::write_atomic(path, &text)
            .map_err(|e| AppError::Input(format!("cannot write {}: {e}", path.display())))?,
        None => write_stdout(&text)?,
    }
    Ok(verdict.exit_code)
}

fn facts(profile: Profile) -> Result<i32, AppError> {
    let facts = probe::collect(&ProbeContext::from_process(profile));
    let mut text =
        serde_json::to_string_pretty(&facts).map_err(|e| AppError::Internal(e.to_string()))?;
    text.push('\n');
    write_stdout(&text)?;
    Ok(EXIT_READY)
}

fn load_rules(extra: &[std::path::PathBuf]) -> Result<RuleSet, AppError> {
    let mut rules =
        RuleSet::builtin().map_err(|e| AppError::Internal(format!("built-in rules: {e}")))?;
    for path in extra {
        rules
            .load_file(path)
            .map_err(|e| AppError::Rules(e.to_string()))?;
    }
    Ok(rules)
}

fn list_rules(extra: &[std::path::PathBuf]) -> Result<i32, AppError> {
    let rules = load_rules(extra)?;
    write_stdout(&report::rule_list(&rules))?;
    Ok(EXIT_READY)
}

fn explain(id: &str) -> Result<i32, AppError> {
    let rules = load_rules(&[])?;
    let Some(rule) = rules.get(id) else {
        let known: Vec<&str> = rules.rules().iter().map(|r| r.id.as_str()).collect();
        let hint = closest(id, &known)
            .map(|c| format!(" Did you mean `{c}`?"))
            .unwrap_or_default();
        return Err(AppError::Input(format!(
            "no rule `{id}`.{hint} `gpu-doctor rules` lists them all."
        )));
    };
    write_stdout(&report::explain_rule(rule))?;
    Ok(EXIT_READY)
}

fn completions(shell: clap_complete::Shell) -> Result<i32, AppError> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "gpu-doctor", &mut out);
    write_stdout(&String::from_utf8_lossy(&out))?;
    Ok(EXIT_READY)
}

/// `gpu-doctor model FILE`: the model's shape and how many layers fit on the GPU.
fn model(args: &crate::cli::ModelArgs) -> Result<i32, AppError> {
    use crate::cli::KvType;
    use crate::gguf::model::{layers_that_fit, summarize, KvCacheType};
    let summary = summarize(&args.file).map_err(|e| AppError::Input(e.to_string()))?;
    let kv = match args.kv_type {
        KvType::F16 => KvCacheType::F16,
        KvType::Q8_0 => KvCacheType::Q8_0,
        KvType::Q4_0 => KvCacheType::Q4_0,
    };
    let free = match args.free_mib {
        Some(mib) => Ok((mib, "--free-mib".to_string())),
        None => gpu_free_mib(args.gpu),
    };
    let fit = free
        .as_ref()
        .ok()
        .map(|(mib, _)| layers_that_fit(&summary, *mib, args.ctx.unwrap_or(0), kv));
    write_stdout(&report::model_report(
        &summary,
        free.as_ref().map(|(_, w)| w.as_str()),
        fit.as_ref(),
    ))?;
    Ok(EXIT_READY)
}

/// Free memory of GPU `index` as NVML reports it, with a description of where it came from.
fn gpu_free_mib(index: u32) -> Result<(u64, String), String> {
    let facts = probe::driver::probe(&ProbeContext::from_process(Profile::Standard)).data;
    match facts.gpus.iter().find(|g| g.index == index) {
        Some(g) => Ok((
            g.memory.free_mib,
            format!("GPU {index} ({}): {} MiB free", g.name, g.memory.free_mib),
        )),
        None if facts.gpus.is_empty() => {
            Err("no NVIDIA GPU found here; pass --free-mib to plan for another card".to_string())
        }
        None => Err(format!(
            "there is no GPU {index} (NVML sees {} GPUs)",
            facts.gpus.len()
        )),
    }
}

fn child_probe(which: ChildProbe, profile: Profile) -> i32 {
    match which {
        ChildProbe::Cuda => probe::cuda::child_main(profile),
    }
}

/// Read and check a recorded Facts document; `-` is standard input.
pub fn read_facts(path: &Path) -> Result<Facts, AppError> {
    let (name, text) = if path == Path::new("-") {
        let mut text = String::new();
        io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| AppError::Input(format!("cannot read facts from standard input: {e}")))?;
        ("<stdin>".to_string(), text)
    } else {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| AppError::Input(format!("cannot read facts file {name}: {e}")))?;
        (name, text)
    };
    parse_facts(&name, &text)
}

/// Parse a Facts document, refusing schemas newer than this build understands.
pub fn parse_facts(name: &str, text: &str) -> Result<Facts, AppError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        AppError::Input(format!(
            "{name}:{}:{}: not a facts file: {e}",
            e.line(),
            e.column()
        ))
    })?;
    let version = value.get("schema_version").and_then(|v| v.as_u64()).ok_or_else(|| {
        AppError::Input(format!(
            "{name}: not a facts file: expected a top-level \"schema_version\" number (write one with `gpu-doctor facts`)"
        ))
    })?;
    if version > u64::from(SCHEMA_VERSION) {
        return Err(AppError::Input(format!(
            "{name}: facts schema_version {version} is newer than this gpu-doctor understands ({SCHEMA_VERSION}); upgrade gpu-doctor to judge it"
        )));
    }
    serde_json::from_str(text).map_err(|e| {
        AppError::Input(format!(
            "{name}:{}:{}: invalid facts: {e}",
            e.line(),
            e.column()
        ))
    })
}

/// Write all of `text` to stdout. A closed pipe (`gpu-doctor | head`) is not an error.
fn write_stdout(text: &str) -> Result<(), AppError> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(AppError::Internal(format!(
            "cannot write to standard output: {e}"
        ))),
    }
}

/// The candidate closest to `word` by edit distance, when it is close enough to be a typo.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min()
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

impl FailOn {
    pub fn as_str(self) -> &'static str {
        match self {
            FailOn::Error => "error",
            FailOn::Warn => "warn",
            FailOn::Never => "never",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_newer_schema_and_names_the_file() {
        let err = parse_facts("box.json", r#"{"schema_version": 99}"#).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("error: box.json: facts schema_version 99 is newer"),
            "{text}"
        );
    }

    #[test]
    fn points_at_the_line_and_column_of_broken_json() {
        let err = parse_facts("box.json", "{\n  \"schema_version\": 1,\n  oops\n}").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("error: box.json:3:3: not a facts file"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_type_is_an_error_with_a_place() {
        let err = parse_facts(
            "f.json",
            r#"{"schema_version": 1, "driver": {"gpu_count": "two"}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("f.json:1:"), "{err}");
        assert!(err.to_string().contains("invalid facts"), "{err}");
    }

    #[test]
    fn suggests_close_rule_ids() {
        assert_eq!(
            closest(
                "persistance-mode-off",
                &["persistence-mode-off", "ecc-errors"]
            ),
            Some("persistence-mode-off")
        );
        assert_eq!(closest("zzz", &["persistence-mode-off"]), None);
    }
}
