//! node-problem-detector's custom plugin monitor running gpu-doctor, as docs/kubernetes.md
//! sets it up: the config (docs/examples/npd-gpu-doctor.json) against the rules NPD applies
//! when it loads one (pkg/custompluginmonitor/types/config.go), the rule's command through the
//! real binary read the way NPD reads a plugin (pkg/custompluginmonitor/plugin/plugin.go), and
//! the DaemonSet (docs/examples/npd-gpu-doctor-daemonset.yaml) through `kubernetes-validate
//! --strict` and PyYAML from PyPI (tests/support/kubernetes/validators.sh).
//!
//! NPD itself does not run here: it needs Go 1.26 or a container runtime, and Debian 12 has
//! neither (research/fleet-contracts.md §3).

use gpu_doctor::probe::process;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// NPD reads at most this much of a plugin's stdout (maxCustomPluginBufferBytes).
const NPD_MAX_STDOUT: usize = 4 << 10;

fn npd_config() -> Value {
    let path = format!("{ROOT}/docs/examples/npd-gpu-doctor.json");
    let text = fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A Go duration (`time.ParseDuration`): decimal numbers with units, `1h30m`, `300s`, `1.5s`.
fn go_duration(text: &str) -> Result<Duration, String> {
    let units = [
        ("ns", 1e-9),
        ("us", 1e-6),
        ("µs", 1e-6),
        ("ms", 1e-3),
        ("s", 1.0),
        ("m", 60.0),
        ("h", 3600.0),
    ];
    let mut rest = text;
    let mut seconds = 0.0;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or(format!("{text:?}: missing unit"))?;
        let number: f64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{text:?}: bad number"))?;
        rest = &rest[digits..];
        // Longest unit first, so that "ms" is not read as "m".
        let (unit, scale) = units
            .iter()
            .filter(|(u, _)| rest.starts_with(u))
            .max_by_key(|(u, _)| u.len())
            .ok_or(format!("{text:?}: unknown unit"))?;
        seconds += number * scale;
        rest = &rest[unit.len()..];
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The keys NPD's Go structs decode; Go ignores any other key, so a misspelt one would be
/// silently without effect. Here it fails.
fn assert_only_keys(what: &str, v: &Value, allowed: &[&str]) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("{what} is not an object"));
    for key in obj.keys() {
        assert!(
            allowed.contains(&key.as_str()),
            "{what} has {key:?}, which NPD does not read (it reads {allowed:?})"
        );
    }
}

fn string<'v>(v: &'v Value, key: &str, what: &str) -> &'v str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{what}.{key} should be a string: {v}"))
}

#[test]
fn npd_config_passes_the_checks_npd_makes_when_it_loads_one() {
    let c = npd_config();
    assert_only_keys(
        "the config",
        &c,
        &[
            "plugin",
            "pluginConfig",
            "source",
            "conditions",
            "rules",
            "metricsReporting",
        ],
    );
    assert_eq!(c["plugin"], "custom", "NPD supports only the custom plugin");
    assert!(!string(&c, "source", "config").is_empty());
    let global = &c["pluginConfig"];
    assert_only_keys(
        "pluginConfig",
        global,
        &[
            "invoke_interval",
            "timeout",
            "max_output_length",
            "concurrency",
            "enable_message_change_based_condition_update",
            "skip_initial_status",
        ],
    );
    let timeout = go_duration(string(global, "timeout", "pluginConfig")).unwrap();
    let interval = go_duration(string(global, "invoke_interval", "pluginConfig")).unwrap();
    assert!(interval > Duration::ZERO);
    // gpu-doctor's line is at most 80 bytes: a smaller limit would cut it.
    assert!(global["max_output_length"].as_u64().unwrap() >= 80);
    assert!(global["concurrency"].as_u64().unwrap() >= 1);

    let conditions = c["conditions"].as_array().expect("conditions");
    for cond in conditions {
        assert_only_keys("a condition", cond, &["type", "reason", "message"]);
        for key in ["type", "reason", "message"] {
            assert!(!string(cond, key, "condition").is_empty());
        }
    }
    let rules = c["rules"].as_array().expect("rules");
    assert!(!rules.is_empty());
    for rule in rules {
        assert_only_keys(
            "a rule",
            rule,
            &[
                "type",
                "condition",
                "reason",
                "path",
                "args",
                "timeout",
                "invoke_interval",
            ],
        );
        let kind = string(rule, "type", "rule");
        assert!(kind == "permanent" || kind == "temporary", "{kind}");
        if kind == "permanent" {
            let condition = string(rule, "condition", "rule");
            assert!(
                conditions.iter().any(|c| c["type"] == condition),
                "permanent problem {condition} does not have a preset default condition"
            );
        }
        let rule_timeout = go_duration(string(rule, "timeout", "rule")).unwrap();
        assert!(
            rule_timeout <= timeout,
            "plugin timeout is greater than global timeout"
        );
        assert!(Path::new(string(rule, "path", "rule")).is_absolute());
        assert!(!string(rule, "reason", "rule").is_empty());
    }
}

#[test]
fn go_durations_parse_as_go_does() {
    assert_eq!(go_duration("300s").unwrap(), Duration::from_secs(300));
    assert_eq!(go_duration("1h30m").unwrap(), Duration::from_secs(5400));
    assert_eq!(go_duration("1.5s").unwrap(), Duration::from_millis(1500));
    assert_eq!(go_duration("250ms").unwrap(), Duration::from_millis(250));
    assert!(go_duration("5").is_err());
    assert!(go_duration("5 s").is_err());
    assert!(go_duration("").is_err());
}

/// NPD's reading of a plugin: exit 0 OK, 1 NonOK, anything else Unknown; the message is
/// stdout (at most 4 KiB read), TrimSpace'd, cut to max_output_length bytes.
#[derive(Debug, PartialEq)]
enum Status {
    Ok,
    NonOk,
    Unknown,
}

struct PluginResult {
    status: Status,
    message: Vec<u8>,
    /// The message before the cut, to tell whether NPD cut anything.
    whole: Vec<u8>,
    stderr: String,
}

fn run_as_npd(rule: &Value, max_output_length: usize, extra: &[&str]) -> PluginResult {
    let args: Vec<&str> = rule["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("args are strings"))
        .collect();
    let timeout = go_duration(string(rule, "timeout", "rule")).unwrap();
    // The rule's path, /opt/gpu-doctor/gpu-doctor, is the binary under test here.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"));
    cmd.args(&args).args(extra).env("GPU_DOCTOR_NO_CONFIG", "1");
    let out = process::run(&mut cmd, timeout, NPD_MAX_STDOUT).expect("run gpu-doctor");
    assert!(!out.timed_out, "NPD would have killed it after {timeout:?}");
    let stdout = &out.stdout[..out.stdout.len().min(NPD_MAX_STDOUT)];
    let whole = String::from_utf8_lossy(stdout).trim().as_bytes().to_vec();
    let message = whole[..whole.len().min(max_output_length)].to_vec();
    let status = match out.code {
        Some(0) => Status::Ok,
        Some(1) => Status::NonOk,
        _ => Status::Unknown,
    };
    PluginResult {
        status,
        message,
        whole,
        stderr: out.stderr_text(),
    }
}

fn facts_fixtures() -> Vec<PathBuf> {
    let mut list: Vec<PathBuf> = fs::read_dir(format!("{ROOT}/fixtures/facts"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    list.sort();
    list
}

#[test]
fn the_npd_rule_gives_npd_whole_lines_and_ok_or_non_ok() {
    let c = npd_config();
    let max = c["pluginConfig"]["max_output_length"].as_u64().unwrap() as usize;
    let rule = &c["rules"][0];
    let known_rules = {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"));
        cmd.args(["rules", "--no-config"]);
        process::run(&mut cmd, Duration::from_secs(60), 1 << 20)
            .unwrap()
            .stdout_text()
    };
    let mut seen = Vec::new();
    for facts in facts_fixtures() {
        let facts = facts.display().to_string();
        let r = run_as_npd(rule, max, &["--facts", &facts]);
        assert_ne!(r.status, Status::Unknown, "{facts}: {}", r.stderr);
        assert_eq!(r.message, r.whole, "{facts}: NPD would cut the line");
        let message = String::from_utf8(r.message).expect("NPD's cut left whole characters");
        assert!(!message.contains('\n'), "{facts}: {message:?}");
        match r.status {
            Status::Ok => assert!(message.starts_with("OK: ready"), "{message}"),
            _ => {
                let id = message.split(':').next().unwrap();
                assert!(
                    known_rules
                        .lines()
                        .any(|l| l.split_whitespace().next() == Some(id)),
                    "{facts}: {message:?} does not start with a rule id"
                );
            }
        }
        seen.push((facts, r.status));
    }
    let status_of = |name: &str| {
        seen.iter()
            .find(|(f, _)| f.ends_with(name))
            .map(|(_, s)| s)
            .unwrap()
    };
    assert_eq!(*status_of("/h100.json"), Status::Ok);
    assert_eq!(*status_of("/seed-laptop.json"), Status::NonOk);
}

#[test]
fn no_verdict_is_npd_unknown() {
    let c = npd_config();
    let r = run_as_npd(&c["rules"][0], 80, &["--facts", "/nonexistent/facts.json"]);
    assert_eq!(r.status, Status::Unknown);
    assert!(r.stderr.contains("/nonexistent/facts.json"), "{}", r.stderr);
}

/// The venv with kubernetes-validate and PyYAML, made once by validators.sh.
fn validators() -> PathBuf {
    let script = format!("{ROOT}/tests/support/kubernetes/validators.sh");
    let out = process::run(
        Command::new("bash").arg(script),
        Duration::from_secs(600),
        1 << 20,
    )
    .expect("run tests/support/kubernetes/validators.sh");
    assert!(
        out.success(),
        "tests/support/kubernetes/validators.sh failed ({}); it needs python3-venv and access to PyPI on a cold cache:\n{}",
        out.describe_end(),
        out.stderr_text()
    );
    PathBuf::from(out.stdout_text().trim()).join("venv/bin")
}

const DAEMONSET: &str = "docs/examples/npd-gpu-doctor-daemonset.yaml";

#[test]
fn daemonset_passes_kubernetes_validate_strict_and_mounts_what_the_config_names() {
    let bin = validators();
    let manifest = format!("{ROOT}/{DAEMONSET}");
    for version in ["1.37.0", "1.28.0"] {
        let mut cmd = Command::new(bin.join("kubernetes-validate"));
        cmd.args(["--strict", "-k", version, &manifest]);
        let out = process::run(&mut cmd, Duration::from_secs(120), 1 << 20).unwrap();
        assert!(
            out.success(),
            "kubernetes-validate --strict -k {version}: {}{}",
            out.stdout_text(),
            out.stderr_text()
        );
    }

    // The manifest read by a real YAML parser, handed over as JSON.
    let mut cmd = Command::new(bin.join("python"));
    cmd.args([
        "-c",
        "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        &manifest,
    ]);
    let out = process::run(&mut cmd, Duration::from_secs(60), 1 << 20).unwrap();
    assert!(out.success(), "{}", out.stderr_text());
    let docs: Vec<Value> = serde_json::from_str(&out.stdout_text()).unwrap();
    let ds = docs
        .iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("a DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let volumes = pod["volumes"].as_array().unwrap();
    let mounts = container["volumeMounts"].as_array().unwrap();
    let volume = |mount_path: &str| {
        let m = mounts
            .iter()
            .find(|m| m["mountPath"] == mount_path)
            .unwrap_or_else(|| panic!("nothing mounted at {mount_path}"));
        volumes.iter().find(|v| v["name"] == m["name"]).unwrap()
    };

    // NPD is told to load the config, from the ConfigMap key the docs create it under.
    let command: Vec<&str> = container["command"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let flag = "--config.custom-plugin-monitor=";
    let config_path = command
        .iter()
        .find_map(|a| a.strip_prefix(flag))
        .expect("--config.custom-plugin-monitor");
    let (dir, file) = config_path.rsplit_once('/').unwrap();
    let items = volume(dir)["configMap"]["items"].as_array().unwrap();
    assert!(items.iter().any(|i| i["path"] == file && i["key"] == file));
    let text = fs::read_to_string(&manifest).unwrap();
    assert!(text.contains(&format!(
        "--from-file={file}=docs/examples/npd-gpu-doctor.json"
    )));

    // The binary the rule runs is under a read-only hostPath mount.
    let path = npd_config()["rules"][0]["path"]
        .as_str()
        .unwrap()
        .to_string();
    let (bin_dir, _) = path.rsplit_once('/').unwrap();
    assert!(volume(bin_dir)["hostPath"]["path"].is_string());
    let mount = mounts.iter().find(|m| m["mountPath"] == bin_dir).unwrap();
    assert_eq!(mount["readOnly"], true);

    // The GPUs reach the container through the NVIDIA runtime.
    assert_eq!(pod["runtimeClassName"], "nvidia");
    let env = container["env"].as_array().unwrap();
    assert!(env
        .iter()
        .any(|e| e["name"] == "NVIDIA_VISIBLE_DEVICES" && e["value"] == "all"));
}
