//! `gpu-doctor slurm-healthcheck`: a Slurm HealthCheckProgram that takes its own node out of
//! service when the node is not ready, and puts it back when it is ready again, but only when
//! gpu-doctor was the one that took it out.
//!
//! slurmd only logs a HealthCheckProgram's exit code: "any action to be taken must be
//! explicitly performed by the program" (slurm.conf). So the check drains its own node with
//! `scontrol update NodeName=N State=DRAIN Reason=gpu-doctor: RULE: TITLE`, and resumes a node
//! only when Slurm says it is drained with a reason that starts with `gpu-doctor:`. A node that an
//! administrator or another tool took out of service is never resumed and never has its reason
//! replaced (the convention of LBNL NHC's node-mark-offline and node-mark-online). With no
//! verdict (a bad rule or configuration file) nothing is touched: a typo in a file that every
//! node reads must not drain the whole cluster.
//!
//! Every scontrol runs from an argument vector (no shell) under a deadline. docs/slurm.md has
//! the contract.

use crate::app::{self, AppError};
use crate::cli::{CheckArgs, GlobalArgs, SlurmHealthcheckArgs};
use crate::probe::process;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Every reason gpu-doctor writes starts with this, and only such reasons are its to clear.
pub const REASON_PREFIX: &str = "gpu-doctor:";

/// One scontrol call's deadline. slurmd kills a HealthCheckProgram after 60 s; the check
/// itself takes well under 10 s, so it and two scontrol calls fit.
const SCONTROL_DEADLINE: Duration = Duration::from_secs(15);
const SCONTROL_MAX_OUTPUT: usize = 64 << 10;

/// HealthCheckProgram, Prolog and Epilog run with no PATH: where scontrol usually is.
const SCONTROL_DIRS: [&str; 3] = ["/usr/bin", "/usr/local/bin", "/opt/slurm/bin"];

/// What Slurm says about a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// Base state and flags as scontrol prints them: `IDLE`, `IDLE+DRAIN`, `MIXED+DRAIN`.
    pub state: String,
    /// The reason without the ` [user@time]` that Slurm adds; None when there is none.
    pub reason: Option<String>,
}

impl NodeStatus {
    fn has_flag(&self, names: &[&str]) -> bool {
        self.state
            .split('+')
            .any(|f| names.iter().any(|n| f.eq_ignore_ascii_case(n)))
    }

    /// DRAIN is set: drained (idle) or draining (jobs still running).
    pub fn drained(&self) -> bool {
        self.has_flag(&["DRAIN", "DRAINED", "DRAINING"])
    }

    /// Out of service, whoever did it: drained, down or failing.
    pub fn out_of_service(&self) -> bool {
        self.drained() || self.has_flag(&["DOWN", "FAIL", "FAILING"])
    }

    /// The reason is one gpu-doctor wrote.
    pub fn reason_is_ours(&self) -> bool {
        self.reason
            .as_deref()
            .is_some_and(|r| r.starts_with(REASON_PREFIX))
    }
}

/// What to do to the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Not ready and in service, or drained by gpu-doctor for another reason: drain with this.
    Drain(String),
    /// Ready, and drained by gpu-doctor: resume.
    Resume,
    /// Ready and in service: nothing to do.
    StayInService,
    /// Not ready, and already drained by gpu-doctor with this very reason.
    StayDrained,
    /// Out of service by someone else (or with no reason): never touched.
    NotOurs,
}

/// The whole policy: what a verdict does to a node in this state.
pub fn decide(ready: bool, node: &NodeStatus, reason: &str) -> Action {
    let ours = node.reason_is_ours();
    match (ready, node.out_of_service()) {
        (true, false) => Action::StayInService,
        (true, true) if ours && node.drained() => Action::Resume,
        (true, true) => Action::NotOurs,
        (false, false) => Action::Drain(reason.to_string()),
        (false, true) if !ours => Action::NotOurs,
        (false, true) if node.drained() && node.reason.as_deref() == Some(reason) => {
            Action::StayDrained
        }
        (false, true) => Action::Drain(reason.to_string()),
    }
}

/// `gpu-doctor: RULE: TITLE (+N)` from the line format (at most 80 bytes, cut on a character
/// boundary, no control characters). scontrol drops one trailing `"` from a reason, so none is
/// sent: what Slurm stores is then exactly what was sent, and the next run can compare.
pub fn drain_reason(line: &str) -> String {
    let reason = format!("{REASON_PREFIX} {}", line.trim());
    reason.trim_end_matches('"').trim_end().to_string()
}

/// Read `scontrol show node NODE` (the multi-line form): the node's State and Reason.
pub fn parse_show_node(node: &str, text: &str) -> Result<NodeStatus, String> {
    let mut in_record = false;
    let mut state = None;
    let mut reason = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("NodeName=") {
            in_record = rest.split_whitespace().next() == Some(node);
            continue;
        }
        if !in_record {
            continue;
        }
        if let Some(r) = line.strip_prefix("Reason=") {
            reason = Some(without_stamp(r).to_string());
            // What follows may be the reason's own further lines: no field is read from them.
            in_record = false;
            continue;
        }
        if state.is_none() {
            state = line
                .split_whitespace()
                .find_map(|t| t.strip_prefix("State="))
                .map(str::to_string);
        }
    }
    match state {
        Some(state) => Ok(NodeStatus { state, reason }),
        None => Err(format!(
            "no State= for node {node} in the output of scontrol show node: {}",
            first_line(text)
        )),
    }
}

/// `text [root@2026-11-25T06:59:58]` -> `text`.
fn without_stamp(reason: &str) -> &str {
    let reason = reason.trim_end();
    match reason.rfind(" [") {
        Some(i) if reason.ends_with(']') && reason[i..].contains('@') => reason[..i].trim_end(),
        _ => reason,
    }
}

/// `text`'s lines joined with spaces, at most `max` bytes (cut on a character boundary).
fn one_line(text: &str, max: usize) -> String {
    let mut joined = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if joined.len() > max {
        let mut end = max;
        while !joined.is_char_boundary(end) {
            end -= 1;
        }
        joined.truncate(end);
        joined.push('…');
    }
    joined
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

fn first_line(text: &str) -> &str {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// `gpu-doctor slurm-healthcheck`: judge as `check` does, then drain, resume or leave the node.
/// Exit code: the verdict's (0 ready, 1 not ready) once Slurm has been told; 2 when there is no
/// verdict or scontrol failed, and then the node is left as it is.
pub fn healthcheck(
    top: &CheckArgs,
    args: &SlurmHealthcheckArgs,
    global: &GlobalArgs,
) -> Result<i32, AppError> {
    if top.format.is_some() || top.output.is_some() {
        return Err(AppError::Input(
            "slurm-healthcheck writes no report: --format and --output do not apply".to_string(),
        ));
    }
    let node = node_name(args.node.as_deref())?;
    check_and_act(top, args, global, &node).inspect_err(|e| {
        // slurmd logs a health check's stdout, not its stderr: the error goes to both.
        say(&format!(
            "gpu-doctor: {node} left as it is: {}",
            one_line(&e.to_string(), 400)
        ));
    })
}

fn check_and_act(
    top: &CheckArgs,
    args: &SlurmHealthcheckArgs,
    global: &GlobalArgs,
    node: &str,
) -> Result<i32, AppError> {
    let scontrol = scontrol_path(args.scontrol.as_deref())?;
    let (code, line) = app::judge_line(&check_args(top, args), global)?;
    let status = read_status(&scontrol, node)?;
    let ready = code == app::EXIT_READY;
    let action = decide(ready, &status, &drain_reason(&line));
    if !args.dry_run {
        match &action {
            Action::Drain(reason) => update(&scontrol, node, "DRAIN", Some(reason))?,
            Action::Resume => update(&scontrol, node, "RESUME", None)?,
            _ => {}
        }
    }
    let dry = args.dry_run;
    say(&describe(node, &action, &status, &line, ready, dry));
    Ok(code)
}

/// The check's options: the subcommand's, else those given before it.
fn check_args(top: &CheckArgs, args: &SlurmHealthcheckArgs) -> CheckArgs {
    let mut rule_files = top.rule_files.clone();
    rule_files.extend(args.rule_files.iter().cloned());
    CheckArgs {
        profile: args.profile.or(top.profile),
        facts: args.facts.clone().or_else(|| top.facts.clone()),
        fail_on: args.fail_on.or(top.fail_on),
        rule_files,
        ..CheckArgs::default()
    }
}

/// The one line slurmd logs with the exit code.
fn describe(
    node: &str,
    action: &Action,
    status: &NodeStatus,
    line: &str,
    ready: bool,
    dry: bool,
) -> String {
    let (drained, resumed) = if dry {
        ("would drain", "would resume")
    } else {
        ("drained", "resumed")
    };
    let reason = |r: &Option<String>| match r {
        Some(r) => format!("its reason {r:?} is not gpu-doctor's"),
        None => "it has no reason".to_string(),
    };
    match action {
        Action::Drain(r) => format!("gpu-doctor: {drained} {node}: {r}"),
        Action::Resume => format!(
            "gpu-doctor: {resumed} {node}: ready (it was drained with {:?})",
            status.reason.as_deref().unwrap_or("")
        ),
        Action::StayInService => format!("gpu-doctor: {node} is ready: {line}"),
        Action::StayDrained => format!("gpu-doctor: {node} stays drained: {line}"),
        Action::NotOurs => format!(
            "gpu-doctor: {node} is {}, left {} as it is: {}",
            if ready {
                "ready".to_string()
            } else {
                format!("not ready ({line})")
            },
            status.state,
            reason(&status.reason)
        ),
    }
}

fn say(text: &str) {
    // slurmd reads this through a pipe; a reader that went away changes nothing.
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// The node to act on: --node (or $SLURMD_NODENAME, through clap), else the host name up to
/// its first dot, which is what slurmd takes as its NodeName when not told one.
fn node_name(given: Option<&str>) -> Result<String, AppError> {
    let name = match given {
        Some(n) => n.to_string(),
        None => sysinfo::System::host_name()
            .ok()
            .and_then(|h| h.split('.').next().map(str::to_string))
            .ok_or_else(|| {
                AppError::Input("cannot read this host's name; pass --node NAME".to_string())
            })?,
    };
    // A comma or brackets would make a host list: one node's check must never drain others.
    let bad = |c: char| c.is_whitespace() || c.is_control() || ",[]=\"'".contains(c);
    if name.is_empty() || name.contains(bad) {
        return Err(AppError::Input(format!(
            "{name:?} is not one Slurm node name (expected no spaces, commas, brackets, quotes or `=`); pass --node NAME"
        )));
    }
    Ok(name)
}

/// --scontrol, else scontrol on PATH, else in the usual places.
fn scontrol_path(given: Option<&Path>) -> Result<PathBuf, AppError> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(SCONTROL_DIRS.map(PathBuf::from));
    let search = std::env::join_paths(&dirs).unwrap_or_default();
    which::which_in("scontrol", Some(search), "/").map_err(|_| {
        AppError::Input(format!(
            "scontrol not found on PATH nor in {}; pass --scontrol PATH",
            SCONTROL_DIRS.join(", ")
        ))
    })
}

fn read_status(scontrol: &Path, node: &str) -> Result<NodeStatus, AppError> {
    let out = scontrol_run(scontrol, &["show", "node", node])?;
    parse_show_node(node, &out).map_err(AppError::Input)
}

fn update(scontrol: &Path, node: &str, state: &str, reason: Option<&str>) -> Result<(), AppError> {
    let mut args = vec![
        "update".to_string(),
        format!("NodeName={node}"),
        format!("State={state}"),
    ];
    if let Some(r) = reason {
        args.push(format!("Reason={r}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    scontrol_run(scontrol, &args).map(|_| ())
}

/// Run scontrol under the deadline; its stdout, or an error that says what failed and how.
fn scontrol_run(scontrol: &Path, args: &[&str]) -> Result<String, AppError> {
    // The reason is shown in the summary line; the error names the call without it.
    let shown: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| !a.starts_with("Reason="))
        .collect();
    let what = format!("{} {}", scontrol.display(), shown.join(" "));
    let mut cmd = Command::new(scontrol);
    cmd.args(args);
    let out = process::run(&mut cmd, SCONTROL_DEADLINE, SCONTROL_MAX_OUTPUT)
        .map_err(|e| AppError::Input(format!("cannot run {what}: {e}")))?;
    if !out.success() {
        let stderr = out.stderr_text();
        let stdout = out.stdout_text();
        // scontrol's last words say most ("fatal: ..."); "Node x not found" is on stdout.
        let said = [last_line(&stderr), first_line(&stdout)]
            .into_iter()
            .find(|s| !s.is_empty())
            .unwrap_or("no message");
        let hint = if stderr.contains("configuration source") {
            " (scontrol found no slurm.conf: set SLURM_CONF)"
        } else {
            ""
        };
        return Err(AppError::Input(format!(
            "{what} failed ({}): {said}{hint}",
            out.describe_end()
        )));
    }
    Ok(out.stdout_text())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded from Debian 12's slurmctld 22.05.8 (a one-node cluster on localhost).
    const DRAINED: &str = "NodeName=vm Arch=x86_64 CoresPerSocket=1 \n   CPUAlloc=0 CPUEfctv=2 CPUTot=2 CPULoad=0.43\n   AvailableFeatures=(null)\n   ActiveFeatures=(null)\n   Gres=(null)\n   NodeAddr=127.0.0.1 NodeHostName=vm Version=22.05.8\n   OS=Linux 6.18.44-fc-v782 #1 SMP PREEMPT_DYNAMIC @0 \n   RealMemory=100 AllocMem=0 FreeMem=21676 Sockets=2 Boards=1\n   State=IDLE+DRAIN ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A\n   Partitions=debug \n   BootTime=2026-11-25T04:15:24 SlurmdStartTime=2026-11-25T06:59:53\n   LastBusyTime=2026-11-25T06:59:54\n   CfgTRES=cpu=2,mem=100M,billing=2\n   AllocTRES=\n   CapWatts=n/a\n   CurrentWatts=0 AveWatts=0\n   ExtSensorsJoules=n/s ExtSensorsWatts=0 ExtSensorsTemp=n/s\n   Reason=gpu-doctor: rule: title \"with quotes\" and = sign é… [root@2026-11-25T06:59:58]\n\n";

    fn status(state: &str, reason: Option<&str>) -> NodeStatus {
        NodeStatus {
            state: state.to_string(),
            reason: reason.map(str::to_string),
        }
    }

    #[test]
    fn reads_state_and_reason_without_the_stamp() {
        let s = parse_show_node("vm", DRAINED).unwrap();
        assert_eq!(s.state, "IDLE+DRAIN");
        assert_eq!(
            s.reason.as_deref(),
            Some("gpu-doctor: rule: title \"with quotes\" and = sign é…")
        );
        assert!(s.drained() && s.reason_is_ours());
    }

    #[test]
    fn an_idle_node_has_no_reason() {
        let text = DRAINED
            .replace("IDLE+DRAIN", "IDLE")
            .lines()
            .filter(|l| !l.contains("Reason="))
            .collect::<Vec<_>>()
            .join("\n");
        let s = parse_show_node("vm", &text).unwrap();
        assert_eq!(s, status("IDLE", None));
        assert!(!s.out_of_service());
    }

    #[test]
    fn takes_the_named_record_and_ignores_state_words_in_a_reason() {
        let text = "NodeName=other Arch=x\n   State=DOWN\n   Reason=x [a@b]\n\nNodeName=vm Arch=x\n   State=MIXED+DRAIN Weight=1\n   Reason=admin: State=IDLE on line one\n       State=IDLE on line two [root@t]\n";
        let s = parse_show_node("vm", text).unwrap();
        assert_eq!(s.state, "MIXED+DRAIN");
        assert_eq!(s.reason.as_deref(), Some("admin: State=IDLE on line one"));
        assert!(!s.reason_is_ours());
    }

    #[test]
    fn no_state_is_an_error_naming_the_output() {
        let err = parse_show_node("vm", "Node vm not found\n").unwrap_err();
        assert!(err.contains("Node vm not found"), "{err}");
    }

    #[test]
    fn a_failing_check_drains_a_node_in_service() {
        let r = "gpu-doctor: rule: title";
        for state in ["IDLE", "ALLOCATED", "MIXED", "UNKNOWN", "IDLE+COMPLETING"] {
            assert_eq!(
                decide(false, &status(state, None), r),
                Action::Drain(r.into())
            );
        }
    }

    #[test]
    fn a_node_someone_else_took_out_is_never_touched() {
        for (state, reason) in [
            ("IDLE+DRAIN", Some("maintenance")),
            ("MIXED+DRAIN", Some("NHC: check_fs_mount")),
            ("DOWN", Some("Not responding")),
            ("DOWN+DRAIN", Some("Prolog error")),
            ("IDLE+FAIL", Some("bad fan")),
            ("DOWN", None),
        ] {
            let s = status(state, reason);
            assert_eq!(decide(true, &s, "gpu-doctor: x"), Action::NotOurs, "{s:?}");
            assert_eq!(decide(false, &s, "gpu-doctor: x"), Action::NotOurs, "{s:?}");
        }
    }

    #[test]
    fn only_a_node_gpu_doctor_drained_is_resumed() {
        let ours = Some("gpu-doctor: rule: title");
        for state in ["IDLE+DRAIN", "MIXED+DRAIN", "DOWN+DRAIN", "ALLOCATED+DRAIN"] {
            assert_eq!(decide(true, &status(state, ours), "x"), Action::Resume);
        }
        assert_eq!(
            decide(true, &status("IDLE", None), "x"),
            Action::StayInService
        );
        // Down but not drained, even with gpu-doctor's words: not drained by gpu-doctor.
        assert_eq!(decide(true, &status("DOWN", ours), "x"), Action::NotOurs);
    }

    #[test]
    fn gpu_doctor_keeps_its_own_drain_up_to_date() {
        let s = status("IDLE+DRAIN", Some("gpu-doctor: old-rule: old"));
        assert_eq!(
            decide(false, &s, "gpu-doctor: old-rule: old"),
            Action::StayDrained
        );
        assert_eq!(
            decide(false, &s, "gpu-doctor: new-rule: new"),
            Action::Drain("gpu-doctor: new-rule: new".into())
        );
    }

    #[test]
    fn the_reason_is_the_line_with_the_prefix_and_no_trailing_quote() {
        assert_eq!(
            drain_reason("rule: title (+2)\n"),
            "gpu-doctor: rule: title (+2)"
        );
        assert_eq!(
            drain_reason("rule: says \"x\""),
            "gpu-doctor: rule: says \"x"
        );
        let long = drain_reason(&"é".repeat(40));
        assert!(long.len() <= REASON_PREFIX.len() + 1 + 80);
    }

    #[test]
    fn stamps_are_cut_only_when_they_look_like_one() {
        assert_eq!(without_stamp("a b [root@2026-01-01T00:00:00]"), "a b");
        assert_eq!(without_stamp("see [doc]"), "see [doc]");
        assert_eq!(without_stamp("plain"), "plain");
    }

    #[test]
    fn errors_become_one_bounded_line() {
        assert_eq!(
            one_line("invalid rule file:\n  a.toml:3:1: bad\n\n", 400),
            "invalid rule file: a.toml:3:1: bad"
        );
        let long = one_line(&"é".repeat(300), 401);
        assert!(long.len() <= 401 + '…'.len_utf8() && long.ends_with('…'));
    }

    #[test]
    fn node_names_that_are_host_lists_are_refused() {
        for bad in ["", "a,b", "gpu[1-4]", "a b", "x=y", "a\"b"] {
            assert!(node_name(Some(bad)).is_err(), "{bad:?}");
        }
        assert_eq!(node_name(Some("gpu-01.x")).unwrap(), "gpu-01.x");
    }
}
