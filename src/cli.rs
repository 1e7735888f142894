//! The command line, as clap definitions and nothing else.

use crate::probe::Profile;
use crate::rules::Severity;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "gpu-doctor",
    version,
    about = "Tells you, before GPU work starts, whether this machine will really run it on the GPU, and how to fix it when it won't.",
    after_help = "Exit codes: 0 ready, 1 not ready (a finding at or above --fail-on), 2 no verdict (bad input or internal error).\nWith no subcommand, `gpu-doctor` runs `check`."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub check: CheckArgs,

    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// When to colour the output. auto: on a terminal, unless NO_COLOR is set (and not
    /// empty); always and never win over NO_COLOR, as in cargo.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,

    /// Show evidence, information-level details and probe timings.
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// Say nothing meant for a person: `check` writes no human report (the exit code is the
    /// verdict; a --format or --output asked for is still written), `exec` only why it did not
    /// run the command. Errors still go to standard error.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Use this configuration file (a gpu-doctor.toml, or a pyproject.toml with
    /// [tool.gpu-doctor]) instead of the nearest one above the project folder.
    #[arg(long, value_name = "FILE", global = true, env = "GPU_DOCTOR_CONFIG")]
    pub config: Option<PathBuf>,

    /// Use no configuration file (wins over --config; GPU_DOCTOR_NO_CONFIG=1 does the same
    /// unless a file is named).
    #[arg(long, global = true)]
    pub no_config: bool,

    /// Neither read nor write the live-result cache (the quick profile then shows no live
    /// answers; docs/pre-commit.md).
    #[arg(
        long,
        global = true,
        env = "GPU_DOCTOR_NO_CACHE",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub no_cache: bool,

    /// Remove user names, home folders, the host name, GPU serial numbers and UUIDs from the
    /// report and from recorded facts (docs/security.md).
    #[arg(long, global = true)]
    pub redact: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Probe this machine (or read recorded facts) and judge it. The default command.
    Check(CheckArgs),
    /// Probe this machine and print the Facts as JSON, for `check --facts` elsewhere.
    Facts(FactsArgs),
    /// List the rules gpu-doctor judges with.
    Rules(RulesArgs),
    /// Explain one rule: what it checks, why, and how to fix it; or find the rules by a symptom
    /// ("assigned to device CPU").
    Explain(ExplainArgs),
    /// Show the commands that fix this machine's findings; run them only with --yes.
    Fix(FixArgs),
    /// Read a GGUF model's header and say how many of its layers fit in this GPU's free memory.
    Model(ModelArgs),
    /// Run a command only when the preflight passes: `gpu-doctor exec -- make train`.
    Exec(ExecArgs),
    /// Write a starter gpu-doctor.toml, the pre-commit hook and CI jobs into a project.
    Init(InitArgs),
    /// Slurm HealthCheckProgram: check this node, drain it when not ready, resume it when ready
    /// and gpu-doctor drained it (docs/slurm.md).
    SlurmHealthcheck(SlurmHealthcheckArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Internal: run one probe in this child process and print its JSON (used for isolation).
    #[command(name = "__probe", hide = true)]
    Probe(ProbeArgs),
}

#[derive(Debug, Args, Clone, Default)]
pub struct CheckArgs {
    /// How much to probe: quick (files only, for pre-commit), standard, or full (runs a kernel).
    #[arg(long, value_enum)]
    pub profile: Option<Profile>,

    /// Judge recorded facts from FILE (`-` for standard input) instead of probing this machine.
    #[arg(long, value_name = "FILE")]
    pub facts: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    /// The lowest severity that makes the exit code 1.
    #[arg(long, value_enum)]
    pub fail_on: Option<FailOn>,

    /// Extra rule file (TOML) to judge with; may be given several times.
    #[arg(long = "rules", value_name = "FILE")]
    pub rule_files: Vec<PathBuf>,

    /// Write the report to FILE instead of standard output, atomically (a temporary file in
    /// the same folder, renamed over FILE): for node_exporter's textfile collector.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: CMD's own when the check passes (127: CMD not found, 126: not executable); 1 when it fails (the findings go to stderr, CMD does not run); 2 no verdict."
)]
pub struct ExecArgs {
    #[command(flatten)]
    pub check: CheckArgs,

    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The project folder to write into.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,

    /// Replace gpu-doctor's own files that exist (never a .pre-commit-config.yaml or
    /// .gitlab-ci.yml: init says what to add to those).
    #[arg(long)]
    pub force: bool,

    /// Leave a piece out; may be given several times.
    #[arg(long, value_enum, value_name = "PIECE")]
    pub skip: Vec<crate::config::init::Piece>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 ready, 1 not ready (drained, or already out of service), 2 no verdict or scontrol failed (the node is left as it is). See docs/slurm.md."
)]
pub struct SlurmHealthcheckArgs {
    /// How much to probe (default standard: NVML and CUDA initialisation).
    #[arg(long, value_enum)]
    pub profile: Option<Profile>,

    /// Judge recorded facts from FILE instead of probing this node.
    #[arg(long, value_name = "FILE")]
    pub facts: Option<PathBuf>,

    /// The lowest severity that drains the node.
    #[arg(long, value_enum)]
    pub fail_on: Option<FailOn>,

    /// Extra rule file (TOML) to judge with; may be given several times.
    #[arg(long = "rules", value_name = "FILE")]
    pub rule_files: Vec<PathBuf>,

    /// The Slurm node name (default: $SLURMD_NODENAME, else the host name up to its first dot,
    /// as slurmd takes it).
    #[arg(long, value_name = "NAME", env = "SLURMD_NODENAME")]
    pub node: Option<String>,

    /// The scontrol to run (default: scontrol on PATH, else in /usr/bin, /usr/local/bin,
    /// /opt/slurm/bin).
    #[arg(long, value_name = "PATH")]
    pub scontrol: Option<PathBuf>,

    /// Read the node's state and say what would be done, without changing it.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct FactsArgs {
    /// How much to probe.
    #[arg(long, value_enum)]
    pub profile: Option<Profile>,

    /// Write the facts to FILE instead of standard output, atomically (as check --output).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RulesArgs {
    /// Extra rule file (TOML) to load and list with the built-in ones.
    #[arg(long = "rules", value_name = "FILE")]
    pub rule_files: Vec<PathBuf>,

    /// Output format: human, or json (schema in docs/rules.schema.json).
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The rule's id, as `gpu-doctor rules` lists it; any other text is searched in the rules'
    /// symptoms (letter case aside), docs/symptoms.md lists them.
    pub rule: String,

    /// Output format: human, or json (schema in docs/explain.schema.json).
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ModelArgs {
    /// The model file (.gguf).
    pub file: PathBuf,
    /// Context length to plan for (default: the model's trained context).
    #[arg(long, value_name = "TOKENS")]
    pub ctx: Option<u64>,
    /// KV cache type (`--cache-type-k/-v` in llama.cpp, `type_k`/`type_v` in llama-cpp-python).
    #[arg(long, value_enum, default_value_t = KvType::F16)]
    pub kv_type: KvType,
    /// Free GPU memory to plan for, in MiB (default: what NVML reports for --gpu).
    #[arg(long, value_name = "MIB")]
    pub free_mib: Option<u64>,
    /// The GPU (NVML index) whose free memory counts.
    #[arg(long, default_value_t = 0)]
    pub gpu: u32,

    /// Output format: human, or json (schema in docs/model.schema.json).
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KvType {
    F16,
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q4_0")]
    Q4_0,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The probe to run in this process.
    #[arg(value_enum)]
    pub probe: ChildProbe,
    #[arg(long, value_enum, default_value_t = Profile::Standard)]
    pub profile: Profile,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ChildProbe {
    Cuda,
    /// The reference engine (llama.cpp); its request comes in GPU_DOCTOR_ENGINE_REQUEST.
    LlamaEngine,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// flutter-doctor-like report for a person.
    #[default]
    Human,
    /// Facts, findings and verdict as one JSON document.
    Json,
    /// JUnit XML for CI test reports (GitLab, Jenkins): a testcase per rule and item.
    Junit,
    /// GitHub Actions annotations; also a Markdown summary into $GITHUB_STEP_SUMMARY.
    Github,
    /// SARIF 2.1.0, for code-scanning tools.
    Sarif,
    /// A Markdown onboarding checklist with the fix commands.
    Markdown,
    /// One line of at most 80 bytes, rule id first (node-problem-detector, Slurm).
    Line,
    /// Prometheus text format for node_exporter's textfile collector.
    Prom,
}

/// The output of `rules`, `explain`, `model` and `fix`: for a person, or one JSON document
/// whose schema is published in docs/ (docs/formats.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum FailOn {
    #[default]
    Error,
    Warn,
    /// Always exit 0 when a verdict was reached.
    Never,
}

impl FailOn {
    /// The lowest severity that fails the run, or None for never.
    pub fn threshold(self) -> Option<Severity> {
        match self {
            FailOn::Error => Some(Severity::Error),
            FailOn::Warn => Some(Severity::Warn),
            FailOn::Never => None,
        }
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "Nothing runs without --yes. Exit codes: without --yes, the check's (0 ready, 1 not ready); with --yes, the check's after the fixes ran (1 also when a fix failed); 2 no verdict (bad input, PowerShell missing)."
)]
pub struct FixArgs {
    /// Only the fixes of these rules (ids as `gpu-doctor rules` lists them).
    #[arg(value_name = "RULE")]
    pub only: Vec<String>,

    /// The shell the commands are written for and run with (default: the judged machine's:
    /// PowerShell for Windows, also for recorded Windows facts; bash elsewhere).
    #[arg(long, value_enum)]
    pub shell: Option<FixShell>,

    /// Run the commands, one after the other (stopping at the first that fails), then check
    /// again. Without it nothing runs.
    #[arg(long)]
    pub yes: bool,

    /// The longest one command may run, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub timeout: u64,

    /// How much to probe.
    #[arg(long, value_enum)]
    pub profile: Option<Profile>,

    /// Show the fixes for recorded facts (they cannot be run: the facts are another machine's).
    #[arg(long, value_name = "FILE")]
    pub facts: Option<PathBuf>,

    /// Extra rule file (TOML) to judge with; may be given several times.
    #[arg(long = "rules", value_name = "FILE")]
    pub rule_files: Vec<PathBuf>,

    /// A rule file whose fix commands --yes may run: judged with like --rules, and trusted.
    /// May be given several times. The fixes of other rule files (--rules, those the
    /// configuration names) are shown, never run (docs/security.md).
    #[arg(long = "trust-rules", value_name = "FILE")]
    pub trust_rules: Vec<PathBuf>,

    /// Output format of the plan: human, or json (schema in docs/fix.schema.json; not with
    /// --yes, whose run talks to the terminal).
    #[arg(long, value_enum, default_value_t = OutputFormat::Human, conflicts_with = "yes")]
    pub format: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FixShell {
    Bash,
    Powershell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// The first variable that a flag reads from the environment (`GPU_DOCTOR_CONFIG`,
/// `SLURMD_NODENAME`, ...) whose value is not valid UTF-8, with the message that says so: clap
/// would only say "invalid UTF-8 was detected in one or more arguments".
pub fn unreadable_flag_variable() -> Option<String> {
    fn walk(cmd: &clap::Command) -> Option<String> {
        for arg in cmd.get_arguments() {
            let Some(name) = arg.get_env() else { continue };
            if let Some(value) = std::env::var_os(name).filter(|v| v.to_str().is_none()) {
                return Some(format!(
                    "the environment variable {} (read as --{}) is not valid UTF-8: {:?}",
                    name.to_string_lossy(),
                    arg.get_long().unwrap_or_default(),
                    value
                ));
            }
        }
        cmd.get_subcommands().find_map(walk)
    }
    walk(&Cli::command())
}

/// The options each subcommand reads of those it could be given without declaring them: the
/// global ones, and `check`'s, which the bare `gpu-doctor` takes before a subcommand (by clap
/// id). Any other given on the command line is refused, not silently ignored. None: not checked.
fn options_used_by(subcommand: &str) -> Option<&'static [&'static str]> {
    const JUDGING: &[&str] = &[
        "color",
        "verbose",
        "quiet",
        "config",
        "no_config",
        "no_cache",
        "redact",
        "profile",
        "facts",
        "format",
        "fail_on",
        "rule_files",
        "output",
    ];
    Some(match subcommand {
        "check" | "exec" => JUDGING,
        // fix writes its plan, then the human report: no --format, no --output.
        "fix" => &[
            "color",
            "verbose",
            "config",
            "no_config",
            "no_cache",
            "redact",
            "profile",
            "facts",
            "fail_on",
            "rule_files",
        ],
        "slurm-healthcheck" => &[
            "verbose",
            "config",
            "no_config",
            "no_cache",
            "redact",
            "profile",
            "facts",
            "fail_on",
            "rule_files",
        ],
        "facts" => &["verbose", "config", "no_config", "no_cache", "redact"],
        "rules" | "explain" => &["verbose", "config", "no_config"],
        "__probe" => return None,
        // completions, model
        _ => &[],
    })
}

/// The global options, by clap id: a subcommand's own options have other ids or are checked
/// by clap itself.
const GLOBAL_IDS: [&str; 7] = [
    "color",
    "verbose",
    "quiet",
    "config",
    "no_config",
    "no_cache",
    "redact",
];

/// An option given on the command line that the chosen subcommand would ignore, with the
/// message that refuses it (`gpu-doctor completions bash --redact`). Values from the
/// environment (GPU_DOCTOR_CONFIG, GPU_DOCTOR_NO_CACHE) are not refused: they apply where used.
pub fn unused_option(matches: &ArgMatches) -> Option<String> {
    let (name, sub) = matches.subcommand()?;
    let used = options_used_by(name)?;
    let given = |m: &ArgMatches, id: &str| {
        m.ids().any(|i| i.as_str() == id) && m.value_source(id) == Some(ValueSource::CommandLine)
    };
    // The options of `gpu-doctor` itself (not the groups clap makes of flattened structs).
    let command = Cli::command();
    let unused = command
        .get_arguments()
        .map(|a| a.get_id().as_str())
        .filter(|id| given(matches, id))
        .chain(GLOBAL_IDS.into_iter().filter(|id| given(sub, id)))
        .find(|id| !used.contains(id))?;
    let flag = command
        .get_arguments()
        .find(|a| a.get_id() == unused)
        .and_then(|a| a.get_long())
        .unwrap_or(unused);
    let users: Vec<&str> = [
        "check",
        "exec",
        "fix",
        "facts",
        "rules",
        "explain",
        "init",
        "slurm-healthcheck",
    ]
    .into_iter()
    .filter(|s| options_used_by(s).is_some_and(|u| u.contains(&unused)))
    .collect();
    // `gpu-doctor --format json rules`: rules has a --format of its own, after its name.
    let own = command
        .find_subcommand(name)
        .is_some_and(|c| c.get_arguments().any(|a| a.get_long() == Some(flag)));
    if own {
        return Some(format!(
            "--{flag} before `{name}` is `check`'s option; give `{name}`'s own after it: \
             `gpu-doctor {name} --{flag} ...`"
        ));
    }
    Some(format!(
        "`gpu-doctor {name}` does not use --{flag}, so it is refused rather than ignored \
         (--{flag} applies to: {}); `gpu-doctor {name} --help` lists the options it takes",
        users.join(", ")
    ))
}
