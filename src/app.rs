//! The application: turns a parsed command line into work and an exit code.
//!
//! Exit codes are an interface (docs/exit-codes.md): 0 ready, 1 not ready, 2 no verdict. Every
//! output is rendered in full before anything is written, so a failure never leaves half a
//! document on stdout.

use crate::cli::{
    CheckArgs, ChildProbe, Cli, ColorChoice, Command, FailOn, Format, GlobalArgs, OutputFormat,
};
use crate::config::{self, Config};
use crate::facts::{Facts, SCHEMA_VERSION};
use crate::probe::{self, ProbeContext, Profile};
use crate::report::{self, ReportInput, Verdict, Waived};
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
    /// The configuration file is invalid; the collected diagnostics, each with its place.
    Config(String),
    /// Something inside gpu-doctor went wrong.
    Internal(String),
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Input(m) => write!(f, "error: {m}"),
            AppError::Rules(m) => write!(f, "invalid rule file:\n{m}"),
            AppError::Config(m) => write!(f, "invalid configuration:\n{m}"),
            AppError::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

/// Run the command line and return the process exit code.
pub fn run(cli: Cli) -> i32 {
    configure_color(cli.global.color);
    if cli.global.no_cache {
        // The probes read their settings from the environment snapshot; the flag is the
        // variable's spelling on the command line. Set before any thread starts.
        std::env::set_var(crate::probe::python::cache::NO_CACHE_VAR, "1");
    }
    let global = &cli.global;
    let result = match cli.command {
        None => check(&cli.check, global),
        Some(Command::Check(args)) => check(&merge(&cli.check, args), global),
        Some(Command::Exec(args)) => exec(&merge(&cli.check, args.check), &args.command, global),
        Some(Command::Init(args)) => init(&args),
        Some(Command::Facts(args)) => facts(&args, global),
        Some(Command::Rules(args)) => list_rules(&args, global),
        Some(Command::Explain(args)) => explain(&args, global),
        Some(Command::Fix(args)) => fix(&cli.check, &args, global),
        Some(Command::Completions(args)) => completions(args.shell),
        Some(Command::Model(args)) => model(&args),
        Some(Command::SlurmHealthcheck(args)) => {
            crate::fleet::slurm::healthcheck(&cli.check, &args, global)
        }
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

fn check(args: &CheckArgs, global: &GlobalArgs) -> Result<i32, AppError> {
    let judged = judge(args, global)?;
    let text = report::render(
        args.format.unwrap_or(Format::Human),
        &judged.input(global.verbose),
    )?;
    let text = redact_text_if(text, global);
    match &args.output {
        Some(path) => write_output(path, &text)?,
        // --quiet: the human report is for a person; a format asked for is written.
        None if global.quiet && args.format.is_none_or(|f| f == Format::Human) => {}
        None => write_stdout(&text)?,
    }
    Ok(judged.verdict.exit_code)
}

/// Everything a check decided, for the reports.
struct Judged {
    config: Option<Config>,
    rules: RuleSet,
    facts: Facts,
    /// The findings (consequences under their causes) and the derived values.
    judgement: rules::Judgement,
    waived: Vec<Waived>,
    verdict: Verdict,
}

impl Judged {
    fn input(&self, verbose: bool) -> ReportInput<'_> {
        ReportInput {
            facts: &self.facts,
            findings: &self.judgement.findings,
            derived: &self.judgement.derived,
            verdict: &self.verdict,
            verbose,
            rules: &self.rules,
            waived: &self.waived,
            config: self.config.as_ref().map(|c| c.name.as_str()),
        }
    }
}

/// Judge as `check` does; the exit code and the line format's verdict, for fleet engines.
pub(crate) fn judge_line(args: &CheckArgs, global: &GlobalArgs) -> Result<(i32, String), AppError> {
    let judged = judge(args, global)?;
    let line = report::render(Format::Line, &judged.input(global.verbose))?;
    Ok((judged.verdict.exit_code, line.trim_end().to_string()))
}

/// Load the configuration and the rules, get the facts, judge them, apply the waivers.
/// Flags on the command line win over the configuration.
fn judge(args: &CheckArgs, global: &GlobalArgs) -> Result<Judged, AppError> {
    let config = load_config(global)?;
    let profile = args
        .profile
        .or(config.as_ref().and_then(|c| c.profile))
        .unwrap_or(Profile::Standard);
    let (rules, early_facts) = load_rules_while_probing_quick(args, profile, config.as_ref());
    let rules = rules?;
    let fail_on = args
        .fail_on
        .or(config.as_ref().and_then(|c| c.fail_on))
        .unwrap_or_default();
    let facts = match (early_facts, &args.facts) {
        (Some(facts), _) => facts,
        (None, Some(path)) => read_facts(path)?,
        (None, None) => probe::collect(&probe_context(profile, config.as_ref())),
    };
    let facts = redact_if(facts, global)?;
    let mut judgement = rules::Judgement::new(&rules, &facts);
    let waived = match &config {
        Some(c) => {
            let findings = std::mem::take(&mut judgement.findings);
            let (kept, waived) = c.apply_waivers(findings, &rules, config::today());
            judgement.findings = kept;
            waived
        }
        None => Vec::new(),
    };
    judgement.group_by_cause(&rules);
    let mut verdict = Verdict::new(&judgement.findings, fail_on);
    verdict.waived = waived.len();
    Ok(Judged {
        config,
        rules,
        facts,
        judgement,
        waived,
        verdict,
    })
}

/// Load the rules; in the quick profile, probe this machine meanwhile. Quick probes only read
/// files (milliseconds, nothing started), so the pre-commit hook waits for the longer of the
/// two instead of their sum. Other profiles start interpreters and the GPU: they probe only
/// once the rules are known to be valid.
fn load_rules_while_probing_quick(
    args: &CheckArgs,
    profile: Profile,
    config: Option<&Config>,
) -> (Result<RuleSet, AppError>, Option<Facts>) {
    if args.facts.is_some() || profile != Profile::Quick {
        return (load_rules(&args.rule_files, config), None);
    }
    std::thread::scope(|scope| {
        let probing = scope.spawn(|| probe::collect(&probe_context(profile, config)));
        let rules = load_rules(&args.rule_files, config);
        // Judging reads the embedded knowledge tables; parse them while the probes finish.
        crate::knowledge::tables();
        // The runner catches each probe's panic; should the runner itself fail, probe again
        // on this thread, where the outcome is reported like any other.
        (rules, probing.join().ok())
    })
}

fn write_output(path: &Path, text: &str) -> Result<(), AppError> {
    crate::files::write_report(path, text.as_bytes())
        .map_err(|e| AppError::Input(format!("cannot write {}: {e}", path.display())))
}

/// `gpu-doctor exec -- CMD`: judge, then run CMD in gpu-doctor's place, or say why not.
fn exec(
    args: &CheckArgs,
    command: &[std::ffi::OsString],
    global: &GlobalArgs,
) -> Result<i32, AppError> {
    if args.format.is_some() && args.output.is_none() {
        return Err(AppError::Input(
            "exec writes a report only with --output FILE: standard output belongs to the command"
                .to_string(),
        ));
    }
    let judged = judge(args, global)?;
    let input = judged.input(global.verbose);
    if let Some(path) = &args.output {
        write_output(
            path,
            &report::render(args.format.unwrap_or(Format::Human), &input)?,
        )?;
    }
    let v = &judged.verdict;
    let what = command
        .first()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !v.ready {
        if !global.quiet {
            eprint!("{}", report::render(Format::Human, &input)?);
        }
        eprintln!("gpu-doctor: not running {what}: this machine is not ready (exit code 1)");
        return Ok(EXIT_NOT_READY);
    }
    // An override may be why it is ready: said before the command runs, like a waiver.
    for o in report::overrides(&judged.rules) {
        eprintln!("gpu-doctor: {}", report::visible(&o.text()));
    }
    if v.errors + v.warnings > 0 && !global.quiet {
        eprintln!(
            "gpu-doctor: ready below the fail level ({} error(s), {} warning(s): `gpu-doctor check` shows them); running {what}",
            v.errors, v.warnings
        );
    }
    Ok(config::exec::run(command))
}

/// `gpu-doctor init`: the starter files.
fn init(args: &crate::cli::InitArgs) -> Result<i32, AppError> {
    use config::init::InitError;
    match config::init::init(&args.dir, args.force, &args.skip) {
        Ok(summary) => {
            write_stdout(&summary)?;
            Ok(EXIT_READY)
        }
        Err(InitError::Exists(paths)) => {
            let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            Err(AppError::Input(format!(
                "not overwriting {} (nothing was written); use --force to replace gpu-doctor's own files",
                list.join(", ")
            )))
        }
        Err(InitError::Io(e)) => Err(AppError::Input(format!("{e} (nothing was written)"))),
    }
}

/// The configuration this run uses (`--config`, `--no-config`, else the nearest one).
fn load_config(global: &GlobalArgs) -> Result<Option<Config>, AppError> {
    let config = config::resolve(global.config.as_deref(), global.no_config)
        .map_err(|e| AppError::Config(e.to_string()))?;
    if let (Some(c), true) = (&config, global.verbose) {
        eprintln!("gpu-doctor: using the configuration in {}", c.name);
    }
    Ok(config)
}

/// The probe context for this process, told which configuration the run uses.
fn probe_context(profile: Profile, config: Option<&Config>) -> ProbeContext {
    let mut ctx = ProbeContext::from_process(profile);
    config::prepare_probe_context(&mut ctx, config);
    ctx
}

fn facts(args: &crate::cli::FactsArgs, global: &GlobalArgs) -> Result<i32, AppError> {
    let config = load_config(global)?;
    let profile = args
        .profile
        .or(config.as_ref().and_then(|c| c.profile))
        .unwrap_or(Profile::Standard);
    let facts = probe::collect(&probe_context(profile, config.as_ref()));
    let facts = redact_if(facts, global)?;
    let mut text =
        serde_json::to_string_pretty(&facts).map_err(|e| AppError::Internal(e.to_string()))?;
    text.push('\n');
    match &args.output {
        Some(path) => write_output(path, &text)?,
        None => write_stdout(&text)?,
    }
    Ok(EXIT_READY)
}

/// `--redact`: the facts without user names, homes, host name, serials and UUIDs.
fn redact_if(facts: Facts, global: &GlobalArgs) -> Result<Facts, AppError> {
    if !global.redact {
        return Ok(facts);
    }
    crate::facts::redact::redact(facts).map_err(AppError::Internal)
}

/// `--redact` on a rendered report: the paths that do not come from the facts.
fn redact_text_if(text: String, global: &GlobalArgs) -> String {
    if global.redact {
        crate::facts::redact::redact_text(&text)
    } else {
        text
    }
}

/// `gpu-doctor fix`: the commands that fix the findings; with --yes, run them and check again.
fn fix(top: &CheckArgs, args: &crate::cli::FixArgs, global: &GlobalArgs) -> Result<i32, AppError> {
    use crate::fix::{self as fixes, Outcome, Shell};
    // --shell wins; else the judged machine's shell (a replayed Windows recording gets
    // PowerShell), known before judging only when this machine is the one judged.
    let chosen = args.shell.map(|s| match s {
        crate::cli::FixShell::Bash => Shell::Bash,
        crate::cli::FixShell::Powershell => Shell::PowerShell,
    });
    let own = CheckArgs {
        profile: args.profile,
        facts: args.facts.clone(),
        rule_files: args
            .rule_files
            .iter()
            .chain(&args.trust_rules)
            .cloned()
            .collect(),
        ..CheckArgs::default()
    };
    let check_args = merge(top, own);
    if args.yes {
        fixes::can_run(
            chosen.unwrap_or_else(Shell::native),
            check_args.facts.is_some(),
            global.redact,
        )
        .map_err(AppError::Input)?;
    }
    let judged = judge(&check_args, global)?;
    let shell = chosen.unwrap_or_else(|| Shell::of_os(&judged.facts.host.os));
    let known: Vec<&str> = judged.rules.rules().iter().map(|r| r.id.as_str()).collect();
    if let Some(id) = args.only.iter().find(|id| !known.contains(&id.as_str())) {
        let hint = closest(id, &known)
            .map(|c| format!(" Did you mean `{c}`?"))
            .unwrap_or_default();
        return Err(AppError::Input(format!(
            "no rule `{id}`.{hint} `gpu-doctor rules` lists them all."
        )));
    }
    let untrusted = untrusted_fixes(&judged.rules, &args.trust_rules);
    let steps = fixes::plan(&judged.judgement.findings, &args.only, shell, &untrusted);
    let plan = match args.format {
        OutputFormat::Human => fixes::render_plan(&steps, shell, args.yes),
        OutputFormat::Json => report::data::to_json(&report::data::fix_plan(&steps, shell))?,
    };
    write_stdout(&redact_text_if(plan, global))?;
    if !args.yes {
        return Ok(judged.verdict.exit_code);
    }
    let deadline = std::time::Duration::from_secs(args.timeout);
    let outcome = fixes::run_plan(&steps, shell, deadline, &mut io::stderr());
    eprintln!("gpu-doctor: checking again");
    let again = judge(&check_args, global)?;
    write_stdout(&report::render(
        Format::Human,
        &again.input(global.verbose),
    )?)?;
    match outcome {
        Outcome::Done(_) => Ok(again.verdict.exit_code),
        Outcome::Failed { command, why } => {
            eprintln!(
                "gpu-doctor: the fix `{}` failed: {why}; the commands after it did not run",
                report::visible(&command)
            );
            Ok(EXIT_NOT_READY)
        }
    }
}

/// The rules whose fixes `fix --yes` must not run, by id, with their file: those of every rule
/// file but the ones the user trusts (`trusted`, compared as canonical paths).
fn untrusted_fixes(
    rules: &RuleSet,
    trusted: &[std::path::PathBuf],
) -> std::collections::BTreeMap<String, String> {
    let canonical = |p: &Path| std::fs::canonicalize(p).ok();
    let trusted: Vec<_> = trusted.iter().filter_map(|p| canonical(p)).collect();
    rules
        .rules()
        .iter()
        .filter(|r| !r.builtin)
        .filter(|r| canonical(Path::new(&r.source)).is_none_or(|p| !trusted.contains(&p)))
        .map(|r| (r.id.clone(), r.source.clone()))
        .collect()
}

/// The built-in rules, the configuration's rule files, those named with --rules, and the
/// rules generated from the configuration's requirements; the waivers are checked against them.
fn load_rules(extra: &[std::path::PathBuf], config: Option<&Config>) -> Result<RuleSet, AppError> {
    let mut rules =
        RuleSet::builtin().map_err(|e| AppError::Internal(format!("built-in rules: {e}")))?;
    // A repository's configuration names rule files only inside its own folder (docs/security.md).
    for c in config.iter() {
        for f in &c.rule_files {
            crate::rules::limits::inside_folder(&f.value, &c.dir)
                .map_err(|why| AppError::Config(c.diag(f.at, why).to_string()))?;
        }
    }
    let configured = config
        .into_iter()
        .flat_map(|c| c.rule_files.iter().map(|f| &f.value));
    // A file named twice (in the configuration and with --trust-rules) is loaded once.
    let mut loaded = Vec::new();
    for path in configured.chain(extra) {
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
        if loaded.contains(&canonical) {
            continue;
        }
        loaded.push(canonical);
        rules
            .load_file(path)
            .map_err(|e| AppError::Rules(e.to_string()))?;
    }
    if let Some(c) = config {
        c.add_requirement_rules(&mut rules)
            .map_err(|e| AppError::Internal(format!("rules of the requirements: {e}")))?;
        c.check_waivers(&rules)
            .map_err(|e| AppError::Config(e.to_string()))?;
    }
    Ok(rules)
}

fn list_rules(args: &crate::cli::RulesArgs, global: &GlobalArgs) -> Result<i32, AppError> {
    let config = load_config(global)?;
    let rules = load_rules(&args.rule_files, config.as_ref())?;
    write_stdout(&match args.format {
        OutputFormat::Human => report::rule_list(&rules),
        OutputFormat::Json => report::data::to_json(&report::data::rule_list(&rules))?,
    })?;
    Ok(EXIT_READY)
}

fn explain(args: &crate::cli::ExplainArgs, global: &GlobalArgs) -> Result<i32, AppError> {
    let id = args.rule.as_str();
    let config = load_config(global)?;
    let rules = load_rules(&[], config.as_ref())?;
    let Some(rule) = rules.get(id) else {
        return explain_symptom(id, &rules, args.format);
    };
    write_stdout(&match args.format {
        OutputFormat::Human => report::explain_rule(rule),
        OutputFormat::Json => report::data::to_json(&report::data::explanation(rule))?,
    })?;
    Ok(EXIT_READY)
}

/// `gpu-doctor explain TEXT` where TEXT is no rule id: the rules that list it as a symptom
/// (one: its explanation; several: a list; in JSON always the list, as `rules` writes it);
/// none: an input error naming the nearest.
fn explain_symptom(text: &str, rules: &RuleSet, format: OutputFormat) -> Result<i32, AppError> {
    let matches = rules.by_symptom(text);
    if !matches.is_empty() {
        write_stdout(&match format {
            OutputFormat::Human => report::symptom_matches(&matches),
            OutputFormat::Json => report::data::to_json(&report::data::symptom_list(&matches))?,
        })?;
        return Ok(EXIT_READY);
    }
    let known: Vec<&str> = rules.rules().iter().map(|r| r.id.as_str()).collect();
    let nearest = match (closest(text, &known), rules.nearest_symptom(text)) {
        (Some(id), _) => format!(" Did you mean `{id}`?"),
        (None, Some((rule, symptom))) => format!(
            " The nearest symptom: \"{}\" (rule {}).",
            report::visible(symptom),
            rule.id
        ),
        (None, None) => String::new(),
    };
    Err(AppError::Input(format!(
        "no rule `{}` and no symptom that matches it.{nearest} `gpu-doctor rules` lists the rules, docs/symptoms.md the symptoms.",
        report::visible(text)
    )))
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
    let free_from = free.as_ref().map(|(_, w)| w.as_str());
    write_stdout(&match args.format {
        OutputFormat::Human => report::model_report(&summary, free_from, fit.as_ref()),
        OutputFormat::Json => report::data::to_json(&report::data::ModelDocument {
            model: &summary,
            free_memory: free_from.ok().map(str::to_string),
            no_estimate: free_from.err().cloned(),
            fit: fit.as_ref(),
        })?,
    })?;
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
        ChildProbe::LlamaEngine => probe::llama::engine::child_main(),
    }
}

/// Largest facts file read: a recorded machine's facts are tens of KiB; `/dev/zero` given as
/// `--facts` must not grow the doctor until the system kills it.
pub const MAX_FACTS_BYTES: u64 = 16 * 1024 * 1024;
/// How long reading a facts file may take (scaled for tests by
/// `GPU_DOCTOR_TEST_DEADLINE_SCALE`): a FIFO with no writer, or a terminal as standard input,
/// must not keep the doctor waiting for ever.
pub const FACTS_READ_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Read and check a recorded Facts document; `-` is standard input. At most
/// [`MAX_FACTS_BYTES`] are read, within [`FACTS_READ_DEADLINE`].
pub fn read_facts(path: &Path) -> Result<Facts, AppError> {
    let name = if path == Path::new("-") {
        "<stdin>".to_string()
    } else {
        path.display().to_string()
    };
    let bytes = read_facts_bytes(path, &name)?;
    facts_from_bytes(&name, bytes)
}

/// The bytes of a facts file (at most one more than the cap), read on a thread so that opening or reading can be given up at
/// the deadline (opening a FIFO blocks until a writer comes). A thread left blocked ends with
/// the process, which exits right after the error.
fn read_facts_bytes(path: &Path, name: &str) -> Result<Vec<u8>, AppError> {
    let deadline = crate::probe::process::scaled(FACTS_READ_DEADLINE);
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = path.to_path_buf();
    std::thread::Builder::new()
        .name("facts-reader".to_string())
        .spawn(move || {
            let _ = tx.send(read_capped(&owned));
        })
        .map_err(|e| AppError::Internal(format!("cannot start the facts reader: {e}")))?;
    match rx.recv_timeout(deadline) {
        Ok(result) => result.map_err(|e| AppError::Input(cannot_read_facts(path, name, &e))),
        Err(_) => Err(AppError::Input(format!(
            "cannot read facts from {name}: nothing came within {:.0} s (a FIFO with no \
             writer, or a terminal?); give a facts file written by `gpu-doctor facts`",
            deadline.as_secs_f64()
        ))),
    }
}

/// Why a facts file could not be read, in the words the doctor has always used.
fn cannot_read_facts(path: &Path, name: &str, e: &io::Error) -> String {
    if path == Path::new("-") {
        format!("cannot read facts from standard input: {e}")
    } else {
        format!("cannot read facts file {name}: {e}")
    }
}

/// Check and parse the bytes read from a facts file: at most [`MAX_FACTS_BYTES`], UTF-8 text,
/// a Facts document ([`parse_facts`]).
pub fn facts_from_bytes(name: &str, bytes: Vec<u8>) -> Result<Facts, AppError> {
    if bytes.len() as u64 > MAX_FACTS_BYTES {
        return Err(AppError::Input(format!(
            "{name}: not a facts file: larger than {MAX_FACTS_BYTES} bytes (facts files are tens \
             of KiB; is it a device such as /dev/zero?)"
        )));
    }
    let text = String::from_utf8(bytes)
        .map_err(|e| AppError::Input(format!("{name}: not a facts file: not UTF-8 text: {e}")))?;
    parse_facts(name, &text)
}

/// Up to one byte more than [`MAX_FACTS_BYTES`] of `path` (`-`: standard input).
fn read_capped(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let cap = MAX_FACTS_BYTES + 1;
    if path == Path::new("-") {
        io::stdin().lock().take(cap).read_to_end(&mut bytes)?;
    } else {
        std::fs::File::open(path)?
            .take(cap)
            .read_to_end(&mut bytes)?;
    }
    Ok(bytes)
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
    let facts = serde_json::from_str(text).map_err(|e| {
        AppError::Input(format!(
            "{name}:{}:{}: invalid facts: {e}",
            e.line(),
            e.column()
        ))
    })?;
    check_sections(name, &value)?;
    Ok(facts)
}

/// Each probe and the section of the facts it fills.
const PROBE_SECTIONS: [(&str, &str); 6] = [
    ("host", "host"),
    ("driver", "driver"),
    ("cuda", "cuda"),
    ("toolkits", "toolkits"),
    ("python", "python"),
    ("offload", "offload"),
];

/// A missing section is not an empty machine: every facts document gpu-doctor writes has its
/// profile, its probes and the host, and the section of every probe that ran. A document that
/// lacks them (a report given as facts, a hand-cut file) would be judged as a healthy machine,
/// so it is refused with what it is and what it lacks.
fn check_sections(name: &str, value: &serde_json::Value) -> Result<(), AppError> {
    let has = |key: &str| value.get(key).is_some_and(|v| !v.is_null());
    if has("verdict") && has("findings") {
        let facts = if has("facts") {
            format!(
                " The facts it judged are its \"facts\" member: `jq .facts {} > facts.json`.",
                crate::shell::quote_bash(name)
            )
        } else {
            String::new()
        };
        return Err(AppError::Input(format!(
            "{name}: this is a gpu-doctor report (the output of `check --format json`), not facts.{facts}"
        )));
    }
    let mut missing: Vec<String> = ["profile", "probes", "host"]
        .into_iter()
        .filter(|key| !has(key))
        .map(|key| format!("\"{key}\""))
        .collect();
    let probes = value.get("probes").and_then(|p| p.as_object());
    for (probe, section) in PROBE_SECTIONS {
        let status = probes
            .and_then(|p| p.get(probe))
            .and_then(|o| o.get("status"))
            .and_then(|s| s.as_str());
        if let Some(status) = status.filter(|s| *s != "skipped" && !has(section)) {
            missing.push(format!("\"{section}\" (its probe says {status})"));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(AppError::Input(format!(
        "{name}: not a complete facts file: the section{} {} {} missing; `gpu-doctor facts` writes a whole one",
        if missing.len() == 1 { "" } else { "s" },
        missing.join(", "),
        if missing.len() == 1 { "is" } else { "are" },
    )))
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
