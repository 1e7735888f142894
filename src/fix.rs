//! `gpu-doctor fix`: the fix commands of this machine's findings, shown, and run only when the
//! user says `--yes`.
//!
//! Without `--yes` nothing runs: the plan is printed (each finding and its command, already
//! quoted for the shell) with a last line saying that nothing was run. With `--yes` each
//! command runs in turn, in the chosen shell (`bash -c` or `pwsh -NoProfile -NonInteractive
//! -Command`), with the terminal's standard streams (so `sudo` can ask for a password and
//! the output shows as it comes) and under a deadline; the first failure stops the run. Then the
//! caller judges the machine again and reports.
//!
//! Only the fixes of built-in rules, and of rule files the user trusts by naming them with
//! `--trust-rules FILE`, run with `--yes`. A rule file a repository brings (named in its
//! gpu-doctor.toml, or with `--rules`) is data for judging: its fix commands are shown, never
//! run, since anyone who can commit to the repository could write them. Every command is shown
//! with its control characters written out ([`crate::report::visible`]), so an escape sequence
//! cannot hide what would run.
//!
//! Some commands are never run for the user, even with `--yes`: those that only change the
//! shell they run in (`export`, `unset`, `source`, `cd`, `$env:X = ...`, `Remove-Item Env:`) do
//! nothing in a child shell, so they are printed for the user's own shell; and a reboot is left
//! to the user to time.

use crate::report::visible;
use crate::rules::Finding;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// The shell a fix command is written for and run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    Bash,
    PowerShell,
}

impl Shell {
    /// bash on Unix, PowerShell on Windows.
    pub fn native() -> Shell {
        if cfg!(windows) {
            Shell::PowerShell
        } else {
            Shell::Bash
        }
    }

    /// The shell of the machine a facts document describes (its `host.os`): PowerShell for
    /// Windows, bash elsewhere. A replayed recording is fixed in its own machine's shell.
    pub fn of_os(os: &str) -> Shell {
        if os == "windows" {
            Shell::PowerShell
        } else {
            Shell::Bash
        }
    }

    /// The language name of a Markdown code fence.
    pub fn fence(self) -> &'static str {
        match self {
            Shell::Bash => "bash",
            Shell::PowerShell => "powershell",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Shell::Bash => "bash",
            Shell::PowerShell => "PowerShell",
        }
    }

    /// The finding's command for this shell, if it has one.
    pub fn command(self, finding: &Finding) -> Option<&str> {
        let fix = finding.fix.as_ref()?;
        match self {
            Shell::Bash => fix.bash.as_deref(),
            Shell::PowerShell => fix.powershell.as_deref(),
        }
    }
}

/// What `fix --yes` does with a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Run it.
    Run,
    /// It changes only the shell it runs in: printed for the user's own shell.
    YourShell,
    /// It restarts the machine: left to the user.
    Reboot,
    /// It comes from a rule file the user has not trusted (`--trust-rules`): shown, not run.
    Untrusted,
}

/// One command of the plan and the findings it fixes.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub command: String,
    pub action: Action,
    /// "rule-id: title" of each finding this command fixes (several GPUs may share one).
    pub fixes: Vec<String>,
    /// The untrusted rule file the command comes from, for [`Action::Untrusted`].
    pub source: Option<String>,
}

/// The commands for `findings` in `shell`, one step per distinct command, in report order.
/// `only` limits it to those rule ids (all findings when empty). `untrusted` maps the id of each
/// rule whose fix must not run to its file.
pub fn plan(
    findings: &[Finding],
    only: &[String],
    shell: Shell,
    untrusted: &BTreeMap<String, String>,
) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let wanted = |f: &Finding| only.is_empty() || only.contains(&f.rule);
    for finding in findings.iter().filter(|f| wanted(f)) {
        let Some(command) = shell.command(finding) else {
            continue;
        };
        let what = match &finding.subject {
            Some(s) => format!("{}: {} ({s})", finding.rule, finding.title),
            None => format!("{}: {}", finding.rule, finding.title),
        };
        let source = untrusted.get(&finding.rule).cloned();
        match steps.iter_mut().find(|s| s.command == command) {
            // The same command as a trusted rule's: it may run.
            Some(step) => {
                step.fixes.push(what);
                if source.is_none() && step.action == Action::Untrusted {
                    step.action = action(command, shell);
                    step.source = None;
                }
            }
            None => steps.push(Step {
                command: command.to_string(),
                action: match source {
                    Some(_) => Action::Untrusted,
                    None => action(command, shell),
                },
                fixes: vec![what],
                source,
            }),
        }
    }
    steps
}

/// How `--yes` treats `command`: see the module documentation.
pub fn action(command: &str, shell: Shell) -> Action {
    let words: Vec<&str> = command
        .split(|c: char| c.is_whitespace() || c == ';' || c == '&' || c == '|')
        .filter(|w| !w.is_empty())
        .collect();
    if words
        .iter()
        .any(|w| matches!(*w, "reboot" | "shutdown" | "Restart-Computer"))
    {
        return Action::Reboot;
    }
    let first = words.first().copied().unwrap_or("");
    let shell_only = match shell {
        Shell::Bash => matches!(first, "export" | "unset" | "source" | "." | "cd" | "alias"),
        Shell::PowerShell => {
            first.starts_with("$env:")
                || (first.eq_ignore_ascii_case("Remove-Item")
                    && words.get(1).is_some_and(|w| w.starts_with("Env:")))
                || first.eq_ignore_ascii_case("Set-Location")
                || first == "&" && command.contains("Activate.ps1")
        }
    };
    if shell_only {
        Action::YourShell
    } else {
        Action::Run
    }
}

/// The plan as text: each step's findings and command, and what `--yes` would do with it.
pub fn render_plan(steps: &[Step], shell: Shell, will_run: bool) -> String {
    let mut out = String::new();
    if steps.is_empty() {
        out.push_str("Nothing to fix: no finding has a fix command");
        let _ = writeln!(out, " for {}.", shell.name());
        return out;
    }
    for step in steps {
        for what in &step.fixes {
            let _ = writeln!(out, "• {}", visible(what));
        }
        for line in step.command.split('\n') {
            let _ = writeln!(out, "  $ {}", visible(line));
        }
        match step.action {
            Action::Run => {}
            Action::Untrusted => {
                let file = step.source.as_deref().unwrap_or("a rule file");
                let _ = writeln!(
                    out,
                    "    (from {}, which you have not trusted: --yes does not run it; read the \
                     file, then run it yourself or pass --trust-rules {})",
                    visible(file),
                    visible(file)
                );
            }
            Action::YourShell => {
                out.push_str("    (changes only the shell it runs in: run it in your own shell)\n")
            }
            Action::Reboot => {
                out.push_str("    (restarts the machine: run it yourself when it suits you)\n")
            }
        }
    }
    let runnable = steps.iter().filter(|s| s.action == Action::Run).count();
    if !will_run {
        let _ = writeln!(
            out,
            "\nNothing was run. `gpu-doctor fix --yes` runs the {runnable} command(s) above \
             that can run here ({}), one after the other, then checks again.",
            shell.name()
        );
    }
    out
}

/// Why `--yes` cannot run here, if it cannot: the facts are another machine's, the commands
/// hold `--redact` placeholders, or the shell is not installed.
pub fn can_run(shell: Shell, recorded_facts: bool, redacted: bool) -> Result<(), String> {
    if recorded_facts {
        return Err(
            "fix --yes runs commands on this machine, so it judges this machine: leave out --facts"
                .to_string(),
        );
    }
    if redacted {
        return Err(
            "fix --yes cannot run redacted commands (their paths are placeholders): leave out --redact"
                .to_string(),
        );
    }
    shell_command(shell, "").map(|_| ())
}

/// How running the plan ended.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Every runnable command succeeded (this many ran).
    Done(usize),
    /// A command failed or could not start: its text and why. Later ones did not run.
    Failed { command: String, why: String },
}

/// Run each runnable step with `shell`, each under `deadline`, printing progress to `log`.
pub fn run_plan(
    steps: &[Step],
    shell: Shell,
    deadline: Duration,
    log: &mut dyn io::Write,
) -> Outcome {
    // The probes are done: a daemon a fix starts is the user's, and must outlive the doctor.
    crate::probe::process::stop_adopting();
    let mut ran = 0;
    for step in steps.iter().filter(|s| s.action == Action::Run) {
        let _ = writeln!(log, "gpu-doctor: running: {}", visible(&step.command));
        let _ = log.flush();
        match run_one(&step.command, shell, deadline) {
            Ok(()) => ran += 1,
            Err(why) => {
                return Outcome::Failed {
                    command: step.command.clone(),
                    why,
                }
            }
        }
    }
    Outcome::Done(ran)
}

/// Run one command in `shell` with the terminal's streams; an error says why it failed.
fn run_one(command: &str, shell: Shell, deadline: Duration) -> Result<(), String> {
    let mut cmd = shell_command(shell, command)?;
    let child = cmd
        .spawn()
        .map_err(|e| format!("{} could not start: {e}", shell.name()))?;
    match wait_with_deadline(child, deadline) {
        Ok(Some(status)) if status.success() => Ok(()),
        Ok(Some(status)) => Err(match status.code() {
            Some(code) => format!("it ended with exit code {code}"),
            None => "it was ended by a signal".to_string(),
        }),
        Ok(None) => Err(format!(
            "it ran longer than {} s and was stopped (--timeout)",
            deadline.as_secs()
        )),
        Err(e) => Err(format!("waiting for it failed: {e}")),
    }
}

/// The program that runs `command` in `shell`.
fn shell_command(shell: Shell, command: &str) -> Result<Command, String> {
    match shell {
        Shell::Bash => {
            let mut cmd = Command::new("bash");
            cmd.arg("-c").arg(command);
            Ok(cmd)
        }
        Shell::PowerShell => {
            let program = ["pwsh", "powershell"]
                .into_iter()
                .find(|p| which::which(p).is_ok())
                .ok_or("PowerShell (pwsh) is not installed here; run the commands yourself")?;
            let mut cmd = Command::new(program);
            cmd.args(["-NoProfile", "-NonInteractive", "-Command", command]);
            Ok(cmd)
        }
    }
}

/// Wait for `child` until `deadline`; `None` when it ran over and was killed.
fn wait_with_deadline(mut child: Child, deadline: Duration) -> io::Result<Option<ExitStatus>> {
    let until = Instant::now() + deadline;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Fix, Severity};

    fn finding(rule: &str, subject: Option<&str>, bash: &str) -> Finding {
        Finding {
            rule: rule.to_string(),
            severity: Severity::Error,
            category: "host".to_string(),
            scope: "host".to_string(),
            subject: subject.map(str::to_string),
            title: format!("{rule} title"),
            explain: String::new(),
            evidence: Vec::new(),
            fix: Some(Fix {
                bash: Some(bash.to_string()),
                powershell: None,
            }),
            consequences: Vec::new(),
            environment: None,
        }
    }

    #[test]
    fn one_step_per_command_filtered_by_rule() {
        let findings = vec![
            finding("pm-off", Some("GPU 0"), "sudo nvidia-smi -pm 1"),
            finding("pm-off", Some("GPU 1"), "sudo nvidia-smi -pm 1"),
            finding("other", None, "true"),
        ];
        let steps = plan(&findings, &[], Shell::Bash, &BTreeMap::new());
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].fixes.len(), 2);
        let only = plan(
            &findings,
            &["other".to_string()],
            Shell::Bash,
            &BTreeMap::new(),
        );
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].command, "true");
        assert!(plan(&findings, &[], Shell::PowerShell, &BTreeMap::new()).is_empty());
    }

    #[test]
    fn shell_only_commands_and_reboots_are_left_to_the_user() {
        for c in [
            "export CUDA_HOME=/x",
            "unset A B",
            "source /v/bin/activate",
            "cd /tmp",
        ] {
            assert_eq!(action(c, Shell::Bash), Action::YourShell, "{c}");
        }
        assert_eq!(action("sudo reboot", Shell::Bash), Action::Reboot);
        assert_eq!(
            action("sudo apt-get install x && sudo reboot", Shell::Bash),
            Action::Reboot
        );
        for c in [
            "$env:CUDA_PATH = 'x'",
            "Remove-Item Env:CUDA_VISIBLE_DEVICES",
        ] {
            assert_eq!(action(c, Shell::PowerShell), Action::YourShell, "{c}");
        }
        assert_eq!(action("sudo nvidia-smi -pm 1", Shell::Bash), Action::Run);
        assert_eq!(
            action("'/p/python' -m pip install x", Shell::Bash),
            Action::Run
        );
    }

    #[test]
    fn a_failure_stops_the_run_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("after");
        let steps = plan(
            &[
                finding("a", None, "exit 3"),
                finding("b", None, &format!("touch '{}'", marker.display())),
            ],
            &[],
            Shell::Bash,
            &BTreeMap::new(),
        );
        let mut log = Vec::new();
        let outcome = run_plan(&steps, Shell::Bash, Duration::from_secs(30), &mut log);
        assert_eq!(
            outcome,
            Outcome::Failed {
                command: "exit 3".to_string(),
                why: "it ended with exit code 3".to_string()
            }
        );
        assert!(!marker.exists(), "the run stopped at the failure");
    }

    #[test]
    fn a_command_past_its_deadline_is_stopped() {
        let steps = plan(
            &[finding("slow", None, "sleep 30")],
            &[],
            Shell::Bash,
            &BTreeMap::new(),
        );
        let start = Instant::now();
        let outcome = run_plan(
            &steps,
            Shell::Bash,
            Duration::from_millis(300),
            &mut Vec::new(),
        );
        assert!(matches!(outcome, Outcome::Failed { ref why, .. } if why.contains("longer than")));
        assert!(start.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn an_untrusted_rule_files_fix_is_shown_escaped_and_not_run_but_a_trusted_one_runs() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, builtin) = (dir.path().join("repo"), dir.path().join("builtin"));
        let findings = [
            finding(
                "repo-rule",
                None,
                &format!("touch '{}'; true \u{1b}[2K\r $ ls", repo.display()),
            ),
            finding(
                "builtin-rule",
                None,
                &format!("touch '{}'", builtin.display()),
            ),
        ];
        let untrusted = BTreeMap::from([("repo-rule".to_string(), "ci/rules.toml".to_string())]);
        let steps = plan(&findings, &[], Shell::Bash, &untrusted);
        assert_eq!(steps[0].action, Action::Untrusted);
        let shown = render_plan(&steps, Shell::Bash, true);
        assert!(
            !shown.contains('\u{1b}') && !shown.contains('\r'),
            "{shown}"
        );
        assert!(shown.contains("true \\u{1b}[2K\\r $ ls"), "{shown}");
        assert!(shown.contains("--trust-rules ci/rules.toml"), "{shown}");
        let outcome = run_plan(
            &steps,
            Shell::Bash,
            Duration::from_secs(30),
            &mut Vec::new(),
        );
        assert_eq!(outcome, Outcome::Done(1));
        assert!(builtin.exists(), "the trusted fix ran");
        assert!(!repo.exists(), "the untrusted fix did not");
    }
}
