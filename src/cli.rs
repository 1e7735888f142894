//! The command line, as clap definitions and nothing else.

use crate::probe::Profile;
use crate::rules::Severity;
use clap::{Args, Parser, Subcommand, ValueEnum};
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
    /// When to colour the output; NO_COLOR in the environment means never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,

    /// Show evidence, information-level details and probe timings.
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Probe this machine (or read recorded facts) and judge it. The default command.
    Check(CheckArgs),
    /// Probe this machine and print the Facts as JSON, for `check --facts` elsewhere.
    Facts(FactsArgs),
    /// List the rules gpu-doctor judges with.
    Rules(RulesArgs),
    /// Explain one rule: what it checks, why, and how to fix it.
    Explain(ExplainArgs),
    /// Read a GGUF model's header and say how many of its layers fit in this GPU's free memory.
    Model(ModelArgs),
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
pub struct FactsArgs {
    /// How much to probe.
    #[arg(long, value_enum)]
    pub profile: Option<Profile>,
}

#[derive(Debug, Args)]
pub struct RulesArgs {
    /// Extra rule file (TOML) to load and list with the built-in ones.
    #[arg(long = "rules", value_name = "FILE")]
    pub rule_files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The rule's id, as `gpu-doctor rules` lists it.
    pub rule: String,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}
