//! The output formats, through the real binary, checked by their real consumers' validators:
//! JUnit against the Jenkins/Surefire junit-10.xsd, SARIF against the SARIF 2.1.0 JSON schema
//! (both fetched by tests/support/format-validators.sh), prom with `promtool check metrics`
//! (Debian package `prometheus`; skipped, loudly, when absent). And the contract every format
//! shares: the same exit code as json for the same facts.

use gpu_doctor::probe::process;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const FORMATS: [&str; 8] = [
    "human", "json", "junit", "github", "sarif", "markdown", "line", "prom",
];

/// A rule whose text holds everything that needs escaping somewhere.
const TRICKY_RULE: &str = r#"
[[rule]]
id = "tricky-text"
category = "host"
severity = "error"
since = "0.1.0"
when = "true"
title = "100% <sure> & \"quoted\", a:b \u0001 ü ]]>"
explain = "x < y && z > 1; ]]> `code` *star* _u_ [l](u) | pipe\r\nnext line\u0007"
evidence = ["50%, a:b"]
fix.bash = "echo '50%' ```x``` \"a,b:c\""
docs = "Escaping test."
"#;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn doctor(args: &[&str], envs: &[(&str, &Path)]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"));
    cmd.args(args)
        .env_remove("GITHUB_STEP_SUMMARY")
        .env("NO_COLOR", "1");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = process::run(&mut cmd, Duration::from_secs(60), 16 << 20).expect("run gpu-doctor");
    Out {
        code: out.code.unwrap_or(-1),
        stdout: out.stdout_text(),
        stderr: out.stderr_text(),
    }
}

fn fixtures() -> Vec<PathBuf> {
    let mut list: Vec<PathBuf> =
        fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/facts"))
            .expect("fixtures/facts")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
    list.sort();
    assert!(list.len() >= 5, "too few fixtures: {list:?}");
    list
}

fn tricky_rules(dir: &Path) -> PathBuf {
    let path = dir.join("tricky.toml");
    fs::write(&path, TRICKY_RULE).unwrap();
    path
}

/// Every fixture, with the built-in rules and with the tricky rule added, under each fail level.
fn cases(dir: &Path) -> Vec<Vec<String>> {
    let tricky = tricky_rules(dir).display().to_string();
    let mut cases = Vec::new();
    for f in fixtures() {
        let facts = f.display().to_string();
        for fail_on in ["error", "warn", "never"] {
            let base = vec![
                "check".into(),
                "--facts".into(),
                facts.clone(),
                "--fail-on".into(),
                fail_on.into(),
            ];
            let mut with_tricky = base.clone();
            with_tricky.extend(["--rules".to_string(), tricky.clone()]);
            cases.push(base);
            cases.push(with_tricky);
        }
    }
    cases
}

fn run_case(case: &[String], format: &str) -> Out {
    let mut args: Vec<&str> = case.iter().map(String::as_str).collect();
    args.extend(["--format", format]);
    doctor(&args, &[])
}

#[test]
fn every_format_gives_the_exit_code_of_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for case in cases(dir.path()) {
        let json = run_case(&case, "json");
        assert!(
            json.code == 0 || json.code == 1,
            "{case:?}: json exit {} {}",
            json.code,
            json.stderr
        );
        seen.insert(json.code);
        for format in FORMATS {
            let out = run_case(&case, format);
            assert_eq!(
                out.code, json.code,
                "{case:?} --format {format}: {}",
                out.stderr
            );
            assert!(
                !out.stdout.is_empty(),
                "{case:?} --format {format}: no output"
            );
        }
    }
    assert_eq!(
        seen.len(),
        2,
        "the fixtures should give both exit codes 0 and 1"
    );
}

#[test]
fn line_is_one_line_of_at_most_80_bytes_rule_id_first() {
    let dir = tempfile::tempdir().unwrap();
    for case in cases(dir.path()) {
        let out = run_case(&case, "line");
        let line = out.stdout.strip_suffix('\n').expect("ends with a newline");
        assert!(
            !line.contains('\n'),
            "{case:?}: more than one line: {line:?}"
        );
        assert!(line.len() <= 80, "{case:?}: {} bytes: {line}", line.len());
        let json: serde_json::Value =
            serde_json::from_str(&run_case(&case, "json").stdout).unwrap();
        if out.code == 1 {
            let id = line.split(':').next().unwrap();
            let failing_ids: Vec<&str> = json["findings"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|f| f["rule"].as_str())
                .collect();
            assert!(
                failing_ids.contains(&id),
                "{case:?}: `{id}` is no finding's rule: {line}"
            );
        } else {
            assert!(line.starts_with("OK"), "{case:?}: {line}");
        }
    }
}

/// The folder with the validators, made once by tests/support/format-validators.sh.
fn validators() -> PathBuf {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/format-validators.sh"
    );
    let out = process::run(
        Command::new("bash").arg(script),
        Duration::from_secs(900),
        1 << 20,
    )
    .expect("run format-validators.sh");
    assert!(
        out.success(),
        "tests/support/format-validators.sh failed ({}); it needs python3-venv, npm and access to PyPI and npm on a cold cache:\n{}",
        out.describe_end(),
        out.stderr_text()
    );
    PathBuf::from(out.stdout_text().trim())
}

/// Write each case's output in `format` to files in `dir`; return them with the exit codes.
fn outputs(dir: &Path, format: &str, ext: &str) -> Vec<(PathBuf, Out)> {
    cases(dir)
        .iter()
        .enumerate()
        .map(|(i, case)| {
            let out = run_case(case, format);
            let path = dir.join(format!("case{i}.{ext}"));
            fs::write(&path, &out.stdout).unwrap();
            (path, out)
        })
        .collect()
}

fn validate(kind: &str, schema: &Path, files: &[(PathBuf, Out)]) {
    let root = validators();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/validate_formats.py"
    );
    let mut cmd = Command::new(root.join("venv/bin/python"));
    cmd.arg(script).arg(kind).arg(root.join(schema));
    cmd.args(files.iter().map(|(p, _)| p));
    let out = process::run(&mut cmd, Duration::from_secs(300), 4 << 20).expect("run validator");
    assert!(
        out.success(),
        "{kind} output is invalid ({}):\n{}{}",
        out.describe_end(),
        out.stdout_text(),
        out.stderr_text()
    );
}

#[test]
fn junit_validates_against_the_jenkins_xsd_and_fails_exactly_when_the_exit_code_does() {
    let dir = tempfile::tempdir().unwrap();
    let files = outputs(dir.path(), "junit", "xml");
    for (path, out) in &files {
        let failures = out.stdout.matches("<failure ").count();
        assert_eq!(
            failures > 0,
            out.code == 1,
            "{}: {failures} failures, exit {}",
            path.display(),
            out.code
        );
        assert!(out.stdout.contains("<testsuites "), "{}", path.display());
        // GitLab keeps only the first of testcases with the same classname and name.
        let mut names = std::collections::BTreeSet::new();
        for tc in out.stdout.split("<testcase ").skip(1) {
            let head = tc.split('>').next().unwrap();
            assert!(
                names.insert(head.to_string()),
                "{}: duplicate {head}",
                path.display()
            );
        }
    }
    // A machine without GPUs skips the per-GPU rules instead of passing them.
    let no_gpu = &files[0].1.stdout;
    assert!(
        no_gpu.contains("<skipped message=\"not applicable"),
        "{no_gpu}"
    );
    validate("junit", Path::new("junit-10.xsd"), &files);
}

#[test]
fn sarif_validates_against_the_sarif_2_1_0_schema() {
    let dir = tempfile::tempdir().unwrap();
    let files = outputs(dir.path(), "sarif", "sarif");
    for (path, out) in &files {
        let log: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&run_case(&case_of(path, dir.path()), "json").stdout).unwrap();
        assert_eq!(
            log["runs"][0]["results"].as_array().map(Vec::len),
            json["findings"].as_array().map(Vec::len),
            "{}: one result per finding",
            path.display()
        );
    }
    validate("sarif", Path::new("sarif-2.1.0.json"), &files);
}

/// The case whose output `path` ("caseN.ext") holds.
fn case_of(path: &Path, dir: &Path) -> Vec<String> {
    let stem = path.file_stem().unwrap().to_string_lossy();
    let i: usize = stem.trim_start_matches("case").parse().unwrap();
    cases(dir).swap_remove(i)
}

#[test]
fn prom_passes_promtool_check_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let files = outputs(dir.path(), "prom", "prom");
    for (path, out) in &files {
        assert!(out.stdout.ends_with('\n'), "{}", path.display());
        assert!(
            out.stdout.contains("\ngpu_doctor_ready{"),
            "{}",
            path.display()
        );
    }
    let gpu = files
        .iter()
        .find(|(_, o)| o.stdout.contains("gpu_doctor_gpu_info{"))
        .expect("a fixture with a GPU");
    assert!(
        gpu.1.stdout.contains("gpu=\"0\",UUID=\"GPU-"),
        "dcgm-exporter's labels: {}",
        gpu.1.stdout
    );
    if which::which("promtool").is_err() {
        eprintln!(
            "\n*** SKIPPED promtool check metrics: promtool is not installed (Debian: apt-get install prometheus) ***\n"
        );
        return;
    }
    for (path, _) in &files {
        // promtool reads the metrics on stdin, and process::run closes it: bash redirects.
        let mut cmd = Command::new("bash");
        cmd.args(["-c", "promtool check metrics < \"$1\"", "promtool"])
            .arg(path);
        let out = process::run(&mut cmd, Duration::from_secs(60), 1 << 20).expect("run promtool");
        assert!(
            out.success(),
            "promtool check metrics on {}:\n{}{}\n{}",
            path.display(),
            out.stdout_text(),
            out.stderr_text(),
            fs::read_to_string(path).unwrap()
        );
    }
}

#[test]
fn github_escapes_annotations_and_appends_the_summary_once() {
    let dir = tempfile::tempdir().unwrap();
    let tricky = tricky_rules(dir.path());
    let summary = dir.path().join("summary.md");
    fs::write(&summary, "earlier step\n").unwrap();
    let facts = fixtures()
        .into_iter()
        .find(|p| p.ends_with("h100.json"))
        .unwrap();
    let args = [
        "check",
        "--facts",
        facts.to_str().unwrap(),
        "--rules",
        tricky.to_str().unwrap(),
        "--format",
        "github",
    ];
    let out = doctor(&args, &[("GITHUB_STEP_SUMMARY", &summary)]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let tricky_line = lines
        .iter()
        .find(|l| l.contains("tricky-text"))
        .expect("the tricky annotation");
    assert!(
        tricky_line
            .starts_with("::error title=tricky-text%3A 100%25 <sure> & \"quoted\"%2C a%3Ab "),
        "{tricky_line}"
    );
    let message = tricky_line
        .split_once("::")
        .unwrap()
        .1
        .split_once("::")
        .unwrap()
        .1;
    assert!(message.contains("| pipe%0D%0Anext line"), "{message}");
    assert!(
        message.contains("50%25, a:b"),
        "message keeps : and , ({message})"
    );
    assert!(message.contains("Fix (bash): echo '50%25'"), "{message}");
    for l in &lines[..lines.len() - 1] {
        assert!(
            l.starts_with("::error ") || l.starts_with("::warning ") || l.starts_with("::notice "),
            "{l}"
        );
        assert!(!l.contains('\r'), "{l:?}");
    }
    assert!(lines.last().unwrap().starts_with("gpu-doctor: not ready"));
    let written = fs::read_to_string(&summary).unwrap();
    assert!(
        written.starts_with("earlier step\n# gpu-doctor: not ready\n"),
        "{written}"
    );
    assert_eq!(written.matches("# gpu-doctor:").count(), 1);
    assert!(
        written.contains("- [ ] **error** `tricky-text`"),
        "{written}"
    );
}

#[test]
fn markdown_is_a_checklist_with_fix_blocks() {
    let facts = fixtures()
        .into_iter()
        .find(|p| p.ends_with("h100-python.json"))
        .unwrap();
    let out = doctor(
        &[
            "check",
            "--facts",
            facts.to_str().unwrap(),
            "--format",
            "markdown",
        ],
        &[],
    );
    assert_eq!(out.code, 1);
    let md = out.stdout;
    assert!(md.starts_with("# gpu-doctor: not ready\n"), "{md}");
    assert!(md.contains("\n- [x] `"), "{md}");
    assert_eq!(md.matches("\n- [ ] **error**").count(), 2, "{md}");
    // The fixes in the judged machine's shell only: this recording is a Linux machine.
    assert!(
        md.contains("  ```bash\n") && !md.contains("  ```powershell\n"),
        "{md}"
    );
}

#[test]
fn output_replaces_the_file_atomically_and_keeps_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("gpu_doctor.prom");
    fs::write(&target, "old\n").unwrap();
    for f in fixtures() {
        let facts = f.to_str().unwrap();
        let json = doctor(&["check", "--facts", facts, "--format", "json"], &[]);
        let out = doctor(
            &[
                "check",
                "--facts",
                facts,
                "--format",
                "prom",
                "--output",
                target.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(out.code, json.code, "{}: {}", f.display(), out.stderr);
        assert_eq!(out.stdout, "", "--output leaves stdout empty");
        let written = fs::read_to_string(&target).unwrap();
        assert!(written.starts_with("# HELP gpu_doctor_ready "), "{written}");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            names.len(),
            1,
            "a temporary file was left behind: {names:?}"
        );
    }
    let missing = dir.path().join("no/such/dir/x.prom");
    let out = doctor(
        &[
            "check",
            "--facts",
            fixtures()[0].to_str().unwrap(),
            "--format",
            "prom",
            "--output",
            missing.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.code, 2, "an unwritable --output is no verdict");
    assert!(out.stderr.contains("cannot write"), "{}", out.stderr);
}

/// A node_exporter serving a textfile directory on loopback; killed when dropped.
struct NodeExporter {
    child: std::process::Child,
    port: u16,
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl NodeExporter {
    fn start(textfiles: &Path) -> NodeExporter {
        // A free port: bind to 0, note it, release it for the exporter.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("prometheus-node-exporter")
            .arg("--collector.disable-defaults")
            .arg("--collector.textfile")
            .arg(format!(
                "--collector.textfile.directory={}",
                textfiles.display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start prometheus-node-exporter");
        NodeExporter { child, port }
    }

    /// GET /metrics, retrying until the exporter listens (at most 10 s).
    fn scrape(&self) -> String {
        use std::io::{Read, Write};
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let attempt = (|| -> std::io::Result<String> {
                let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port))?;
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                write!(s, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
                let mut body = String::new();
                s.read_to_string(&mut body)?;
                Ok(body)
            })();
            match attempt {
                Ok(body)
                    if body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200") =>
                {
                    return body
                }
                _ if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                other => panic!("node_exporter did not serve /metrics: {other:?}"),
            }
        }
    }
}

#[test]
fn node_exporter_serves_the_prom_file_while_it_is_rewritten() {
    if which::which("prometheus-node-exporter").is_err() {
        eprintln!(
            "\n*** SKIPPED node_exporter test: prometheus-node-exporter is not installed (Debian: apt-get install prometheus-node-exporter) ***\n"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("gpu_doctor.prom");
    let all = fixtures();
    let failing = all
        .iter()
        .find(|p| p.ends_with("h100-python.json"))
        .unwrap()
        .clone();
    let ready = all
        .iter()
        .find(|p| p.ends_with("h100.json"))
        .unwrap()
        .clone();
    let write = |facts: &Path| {
        let out = doctor(
            &[
                "check",
                "--facts",
                facts.to_str().unwrap(),
                "--format",
                "prom",
                "--output",
                target.to_str().unwrap(),
            ],
            &[],
        );
        assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
    };
    write(&failing);
    let exporter = NodeExporter::start(dir.path());
    let body = exporter.scrape();
    assert!(
        body.contains("\ngpu_doctor_ready{fail_on=\"error\"} 0\n"),
        "{body}"
    );
    assert!(body.contains("\nnode_textfile_scrape_error 0\n"), "{body}");
    assert!(body.contains("node_textfile_mtime_seconds{file="), "{body}");
    // Rewrite the file over and over while scraping: with an atomic replace, every scrape
    // reads one whole file, never a missing or half-written one.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let writes = std::sync::atomic::AtomicUsize::new(0);
    /// Stops the writer even when an assertion fails, so the scope can end.
    struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                write(if i % 2 == 0 { &ready } else { &failing });
                writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                i += 1;
            }
        });
        let _stop = StopOnDrop(&stop);
        let mut scrapes = 0;
        // At least 25 scrapes, over at least 6 rewrites (bounded: 60 s).
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while scrapes < 25 || writes.load(std::sync::atomic::Ordering::Relaxed) < 6 {
            assert!(
                std::time::Instant::now() < deadline,
                "too slow: {scrapes} scrapes"
            );
            scrapes += 1;
            let body = exporter.scrape();
            assert!(body.contains("\nnode_textfile_scrape_error 0\n"), "{body}");
            // node_exporter sorts labels: UUID before gpu.
            assert!(
                body.contains("\ngpu_doctor_gpu_ready{UUID=\"GPU-"),
                "{body}"
            );
        }
    });
}
