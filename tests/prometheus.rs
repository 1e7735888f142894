//! docs/prometheus.md's pieces, checked by the real programs: the systemd service and timer
//! (`systemd-analyze verify`, with no warning), the service's command through the real binary
//! into a textfile folder (`promtool check metrics`), and the alerting rules (`promtool check
//! rules`, and `promtool test rules` with series named as node_exporter and dcgm-exporter name
//! them). The prom format itself, and node_exporter serving it, are tested in tests/formats.rs.
//!
//! promtool comes from Debian's `prometheus` package and systemd-analyze from `systemd`; without
//! one, its test is skipped with a loud message (`make test` installs both).

use gpu_doctor::probe::process;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const SERVICE: &str = "docs/examples/gpu-doctor-textfile.service";
const TIMER: &str = "docs/examples/gpu-doctor-textfile.timer";
const INSTALLED: &str = "/usr/local/bin/gpu-doctor";

fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin", "/usr/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        eprintln!("\n*** SKIPPED: {name} not found (apt-get install prometheus systemd; `make test` does it) ***\n");
    }
    found
}

fn run(cmd: &mut Command) -> process::CommandOutput {
    process::run(cmd, Duration::from_secs(120), 1 << 20).expect("start the program")
}

/// The value of `Key=` in the [Service] section of the example unit.
fn unit_value(key: &str) -> String {
    let text = fs::read_to_string(format!("{ROOT}/{SERVICE}")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{SERVICE} has no {key}="))
        .to_string()
}

/// The service's ExecStart as arguments (it quotes nothing, so splitting on spaces is exact).
fn exec_start() -> Vec<String> {
    let line = unit_value("ExecStart");
    assert!(!line.contains(['"', '\'', '\\']), "quoting in {line}");
    line.split_whitespace().map(str::to_string).collect()
}

#[test]
fn service_and_timer_pass_systemd_analyze_verify_without_a_warning() {
    let Some(analyze) = program("systemd-analyze") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // verify checks that ExecStart's program exists: the binary under test stands in for it.
    let service = fs::read_to_string(format!("{ROOT}/{SERVICE}"))
        .unwrap()
        .replace(INSTALLED, env!("CARGO_BIN_EXE_gpu-doctor"));
    let units = [
        ("gpu-doctor-textfile.service", service),
        (
            "gpu-doctor-textfile.timer",
            fs::read_to_string(format!("{ROOT}/{TIMER}")).unwrap(),
        ),
    ];
    for (name, text) in &units {
        fs::write(dir.path().join(name), text).unwrap();
    }
    let out = run(Command::new(analyze)
        .arg("verify")
        .args(units.iter().map(|(n, _)| dir.path().join(n))));
    // Unknown keys are only warnings to systemd (exit 0): any message is a failure here.
    assert!(
        out.success() && out.stderr.is_empty() && out.stdout.is_empty(),
        "systemd-analyze verify ({}): {}{}",
        out.describe_end(),
        out.stdout_text(),
        out.stderr_text()
    );
}

#[test]
fn the_service_command_writes_a_file_promtool_accepts_where_the_unit_may_write() {
    let Some(promtool) = program("promtool") else {
        return;
    };
    let args = exec_start();
    assert_eq!(args[0], INSTALLED);
    let output_at = args.iter().position(|a| a == "--output").unwrap() + 1;
    let target = Path::new(&args[output_at]);
    let textfile_dir = target.parent().unwrap();
    // ProtectSystem=strict makes everything read-only but ReadWritePaths.
    assert_eq!(
        Path::new(&unit_value("ReadWritePaths")),
        textfile_dir,
        "the unit may not write where ExecStart writes"
    );
    // Debian's node_exporter reads that folder by default.
    if let Some(exporter) = program("prometheus-node-exporter") {
        let help = run(Command::new(exporter).arg("--help"));
        let text = format!("{}{}", help.stdout_text(), help.stderr_text());
        let default = format!(
            "--collector.textfile.directory=\"{}\"",
            textfile_dir.display()
        );
        assert!(text.contains(&default), "not the default folder: {text}");
    }

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(target.file_name().unwrap());
    for (facts, code) in [("h100.json", 0), ("seed-laptop.json", 1)] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"));
        let mut argv: Vec<String> = args[1..].to_vec();
        argv[output_at - 1] = file.display().to_string();
        cmd.args(&argv)
            .args(["--no-config", "--facts"])
            .arg(format!("{ROOT}/fixtures/facts/{facts}"));
        let out = run(&mut cmd);
        // SuccessExitStatus=1: both verdicts are a successful run of the unit.
        assert_eq!(out.code, Some(code), "{facts}: {}", out.stderr_text());
        assert!(unit_value("SuccessExitStatus").split(' ').any(|s| s == "1"));
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "left behind: {names:?}");
        let check = run(Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(fs::File::open(&file).unwrap()));
        assert!(
            check.success(),
            "promtool check metrics {facts}: {}{}",
            check.stdout_text(),
            check.stderr_text()
        );
        let text = fs::read_to_string(&file).unwrap();
        let ready = if code == 0 { 1 } else { 0 };
        assert!(
            text.contains(&format!("gpu_doctor_ready{{fail_on=\"error\"}} {ready}\n")),
            "{text}"
        );
    }
}

#[test]
fn alert_rules_pass_promtool_and_fire_as_documented() {
    let Some(promtool) = program("promtool") else {
        return;
    };
    let check = run(Command::new(&promtool)
        .args(["check", "rules"])
        .arg(format!("{ROOT}/docs/examples/gpu-doctor-alerts.yml")));
    assert!(
        check.success(),
        "promtool check rules: {}{}",
        check.stdout_text(),
        check.stderr_text()
    );
    let test = run(Command::new(&promtool).args(["test", "rules"]).arg(format!(
        "{ROOT}/tests/support/prometheus/gpu-doctor-alerts.test.yml"
    )));
    assert!(
        test.success(),
        "promtool test rules: {}{}",
        test.stdout_text(),
        test.stderr_text()
    );
}
