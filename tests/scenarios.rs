//! Scenario fixtures: each one is a real machine's recording (fixtures/facts/*.json) with only
//! the facts that differ in that failure mode changed, and the findings the doctor must give.
//!
//! A scenario file (fixtures/scenarios/NAME.toml) names its base recording, the changes as JSON
//! pointers, and the expected exit code and findings: rule id, severity, and text the bash and
//! PowerShell fixes must contain. Every scenario also checks that its base recording alone does
//! not raise the expected rules, so the test proves the change is what triggers them.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Debug)]
struct Expected {
    rule: String,
    severity: String,
    subject: Option<String>,
    bash: Option<String>,
    powershell: Option<String>,
    title: Option<String>,
}

struct Scenario {
    name: String,
    base: String,
    changes: Vec<(String, Value)>,
    exit_code: i32,
    findings: Vec<Expected>,
    absent: Vec<String>,
    extra_args: Vec<String>,
    /// Text the human report must contain.
    human: Vec<String>,
    /// Rules that fire besides `findings`, whose fixes this scenario does not check: with
    /// `findings` they are every finding the report counts, so a wrong headline fails.
    others: Vec<String>,
    /// Findings shown under the finding that causes them, and not counted again.
    consequences: Vec<Consequence>,
}

/// A finding that must be grouped under its cause.
#[derive(Debug, Clone)]
struct Consequence {
    cause: String,
    rule: String,
}

fn load(path: &Path) -> Scenario {
    let text = std::fs::read_to_string(path).unwrap();
    let doc: toml::Table =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let str_of = |t: &toml::Table, k: &str| t.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let changes = doc
        .get("change")
        .and_then(|c| c.as_array())
        .map(|a| {
            a.iter()
                .map(|c| {
                    let t = c.as_table().expect("[[change]] is a table");
                    let pointer = str_of(t, "path").expect("change.path");
                    let value = if t.get("null").and_then(|v| v.as_bool()) == Some(true) {
                        Value::Null
                    } else {
                        serde_json::to_value(t.get("value").expect("change.value or null = true"))
                            .unwrap()
                    };
                    (pointer, value)
                })
                .collect()
        })
        .unwrap_or_default();
    let expect = doc
        .get("expect")
        .and_then(|e| e.as_table())
        .expect("[expect]");
    let findings = expect
        .get("findings")
        .and_then(|f| f.as_array())
        .map(|a| {
            a.iter()
                .map(|f| {
                    let t = f.as_table().unwrap();
                    Expected {
                        rule: str_of(t, "rule").expect("finding.rule"),
                        severity: str_of(t, "severity").expect("finding.severity"),
                        subject: str_of(t, "subject"),
                        bash: str_of(t, "bash"),
                        powershell: str_of(t, "powershell"),
                        title: str_of(t, "title"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let list = |t: &toml::Table, k: &str| -> Vec<String> {
        t.get(k)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    Scenario {
        name: path.file_stem().unwrap().to_string_lossy().into_owned(),
        base: str_of(&doc, "base").expect("base"),
        changes,
        exit_code: expect
            .get("exit_code")
            .and_then(|v| v.as_integer())
            .expect("expect.exit_code") as i32,
        findings,
        absent: list(expect, "absent"),
        extra_args: list(&doc, "args"),
        human: list(expect, "human"),
        others: list(expect, "others"),
        consequences: consequences_of(expect),
    }
}

fn consequences_of(expect: &toml::Table) -> Vec<Consequence> {
    let Some(list) = expect.get("consequences").and_then(|c| c.as_array()) else {
        return Vec::new();
    };
    list.iter()
        .map(|c| {
            let t = c.as_table().expect("[[expect.consequences]] is a table");
            let field = |k: &str| {
                t.get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or_else(|| panic!("consequence.{k}"))
                    .to_string()
            };
            Consequence {
                cause: field("cause"),
                rule: field("rule"),
            }
        })
        .collect()
}

/// Set `value` at a JSON pointer, creating objects on the way and growing arrays by one.
fn set(doc: &mut Value, pointer: &str, value: Value) {
    let mut cur = doc;
    let parts: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        cur = match cur {
            Value::Object(map) => {
                if last {
                    map.insert(part.clone(), value);
                    return;
                }
                map.entry(part.clone())
                    .or_insert(Value::Object(Default::default()))
            }
            Value::Array(arr) => {
                let idx: usize = part
                    .parse()
                    .unwrap_or_else(|_| panic!("{pointer}: {part} is not an index"));
                if idx == arr.len() {
                    arr.push(Value::Null);
                }
                if last {
                    arr[idx] = value;
                    return;
                }
                &mut arr[idx]
            }
            _ => panic!("{pointer}: cannot descend into a scalar at {part}"),
        };
    }
}

fn judge(facts: &Value, format: &str, extra: &[String]) -> (i32, Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("facts.json");
    std::fs::write(&path, serde_json::to_vec(facts).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gpu-doctor"))
        .args([
            "check",
            "--facts",
            path.to_str().unwrap(),
            "--format",
            format,
        ])
        .args(extra)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let doc = if format == "json" {
        serde_json::from_str(&stdout).unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (
        out.status.code().unwrap_or(-1),
        doc,
        format!("{stdout}\n{stderr}"),
    )
}

fn rules_in(doc: &Value) -> Vec<&str> {
    doc["findings"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f["rule"].as_str()).collect())
        .unwrap_or_default()
}

fn check_scenario(s: &Scenario) {
    let base_path = root().join("fixtures/facts").join(&s.base);
    let base: Value = serde_json::from_slice(&std::fs::read(&base_path).unwrap()).unwrap();
    let (_, base_doc, _) = judge(&base, "json", &s.extra_args);
    for e in &s.findings {
        assert!(
            !rules_in(&base_doc).contains(&e.rule.as_str()),
            "{}: the base recording {} already raises {}: the scenario proves nothing",
            s.name,
            s.base,
            e.rule
        );
    }

    let mut facts = base;
    for (pointer, value) in &s.changes {
        set(&mut facts, pointer, value.clone());
    }
    let (code, doc, raw) = judge(&facts, "json", &s.extra_args);
    assert_eq!(code, s.exit_code, "{}: exit code\n{raw}", s.name);
    let (human_code, _, human) = judge(&facts, "human", &s.extra_args);
    assert_eq!(
        human_code, code,
        "{}: human and json disagree on the exit code\n{human}",
        s.name
    );

    let findings = doc["findings"].as_array().cloned().unwrap_or_default();
    for e in &s.findings {
        let hit = findings.iter().find(|f| {
            f["rule"] == e.rule.as_str()
                && e.subject.as_ref().is_none_or(|want| {
                    f["subject"]
                        .as_str()
                        .is_some_and(|s| s.contains(want.as_str()))
                })
        });
        let f = hit.unwrap_or_else(|| {
            panic!(
                "{}: expected finding {} not raised; got {:?}\n{raw}",
                s.name,
                e.rule,
                rules_in(&doc)
            )
        });
        assert_eq!(
            f["severity"],
            e.severity.as_str(),
            "{}: severity of {}",
            s.name,
            e.rule
        );
        if let Some(title) = &e.title {
            assert!(
                f["title"].as_str().unwrap_or("").contains(title.as_str()),
                "{}: title {:?}",
                s.name,
                f["title"]
            );
        }
        for (shell, want) in [("bash", &e.bash), ("powershell", &e.powershell)] {
            let want = want.as_ref().unwrap_or_else(|| {
                panic!(
                    "{}: {} must state its {shell} fix (the command, or \"none\")",
                    s.name, e.rule
                )
            });
            if want == "none" {
                assert!(
                    f["fix"][shell].is_null(),
                    "{}: {} has a {shell} fix {:?}",
                    s.name,
                    e.rule,
                    f["fix"][shell]
                );
                continue;
            }
            let got = f["fix"][shell].as_str().unwrap_or("");
            assert!(
                got.contains(want.as_str()),
                "{}: {} fix of {} is {got:?}, expected it to contain {want:?}",
                s.name,
                shell,
                e.rule
            );
        }
        assert!(
            human.contains(f["title"].as_str().unwrap()),
            "{}: the human report shows the title of {}",
            s.name,
            e.rule
        );
    }
    for text in &s.human {
        assert!(
            human.contains(text.as_str()),
            "{}: the human report lacks {text:?}\n{human}",
            s.name
        );
    }
    for absent in &s.absent {
        assert!(
            !rules_in(&doc).contains(&absent.as_str()),
            "{}: {} must not fire",
            s.name,
            absent
        );
    }
    let stated: Vec<&str> = s
        .findings
        .iter()
        .map(|e| e.rule.as_str())
        .chain(s.others.iter().map(String::as_str))
        .collect();
    assert_counted_findings(&s.name, &doc, &stated);
    check_grouping(&s.name, &facts, &doc, &s.consequences, &s.extra_args);
}

/// The findings the report counts are exactly the stated ones (in any order).
fn assert_counted_findings(name: &str, doc: &Value, stated: &[&str]) {
    let mut got = rules_in(doc);
    let mut want = stated.to_vec();
    got.sort_unstable();
    got.dedup();
    want.sort_unstable();
    want.dedup();
    assert_eq!(
        got, want,
        "{name}: the report counts these findings, the test states those; a finding nobody \
         stated is a wrong headline (or state it)"
    );
}

/// Each consequence sits under its cause in the JSON, is not counted, and every format shows
/// it with its cause without counting it again.
fn check_grouping(
    name: &str,
    facts: &Value,
    doc: &Value,
    consequences: &[Consequence],
    extra: &[String],
) {
    for (cause, under) in all_grouped(doc) {
        for rule in under {
            assert!(
                consequences
                    .iter()
                    .any(|c| c.cause == cause && c.rule == rule),
                "{name}: {rule} is grouped under {cause}, which the test does not state"
            );
        }
    }
    if consequences.is_empty() {
        return;
    }
    let counted = doc["findings"].as_array().unwrap();
    let severities = |sev: &str| counted.iter().filter(|f| f["severity"] == sev).count();
    assert_eq!(
        doc["verdict"]["errors"].as_u64(),
        Some(severities("error") as u64),
        "{name}: errors count the causes only"
    );
    for c in consequences {
        let cause = counted
            .iter()
            .find(|f| f["rule"] == c.cause.as_str())
            .unwrap_or_else(|| panic!("{name}: no cause {}", c.cause));
        let under = cause["consequences"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let finding = under
            .iter()
            .find(|f| f["rule"] == c.rule.as_str())
            .unwrap_or_else(|| panic!("{name}: {} is not under {}: {cause:#}", c.rule, c.cause));
        assert!(
            !rules_in(doc).contains(&c.rule.as_str()),
            "{name}: {} is counted on its own",
            c.rule
        );
        let title = finding["title"].as_str().unwrap();
        let (_, _, human) = judge(facts, "human", extra);
        let heading = human
            .find("Caused by this")
            .unwrap_or_else(|| panic!("{name}: no consequences in\n{human}"));
        let cause_at = human.find(cause["title"].as_str().unwrap()).unwrap();
        let title_head: String = title.chars().take(40).collect();
        let at = human[heading..]
            .find(&title_head)
            .unwrap_or_else(|| panic!("{name}: {title:?} not under its cause\n{human}"));
        assert!(
            cause_at < heading && heading + at > cause_at,
            "{name}\n{human}"
        );
        let (_, _, sarif) = judge(facts, "sarif", extra);
        let sarif: Value = serde_json::from_str(sarif.trim_end()).unwrap();
        let results = sarif["runs"][0]["results"].as_array().unwrap();
        assert!(
            !results.iter().any(|r| r["ruleId"] == c.rule.as_str()),
            "{name}: sarif counts {}",
            c.rule
        );
        let cause_result = results
            .iter()
            .find(|r| r["ruleId"] == c.cause.as_str())
            .unwrap();
        assert!(
            cause_result["message"]["text"]
                .as_str()
                .unwrap()
                .contains(&c.rule),
            "{name}: sarif's {} does not name {}",
            c.cause,
            c.rule
        );
        let (_, _, github) = judge(facts, "github", extra);
        assert!(
            !github.contains(&format!("title={}", c.rule)),
            "{name}: github annotates {} on its own",
            c.rule
        );
        assert!(
            github.contains(&format!("({} on ", c.rule))
                || github.contains(&format!("({})", c.rule)),
            "{name}: github does not show {}",
            c.rule
        );
        let (_, _, junit) = judge(facts, "junit", extra);
        assert!(
            junit.contains(&format!("skipped message=\"caused by {}", c.cause)),
            "{name}: junit does not mark {} as caused by {}\n{junit}",
            c.rule,
            c.cause
        );
        assert!(
            !junit.contains(&format!("type=\"{}\"", c.rule)),
            "{name}: junit fails {} on its own",
            c.rule
        );
        let (_, _, markdown) = judge(facts, "markdown", extra);
        assert!(
            markdown.contains(&format!("`{}`", c.rule))
                && markdown.contains(&format!("caused by {}", c.cause)),
            "{name}: markdown\n{markdown}"
        );
        assert!(
            !markdown.contains(&format!("** `{}`", c.rule)),
            "{name}: markdown lists {} as a task of its own",
            c.rule
        );
        let (_, _, line) = judge(facts, "line", extra);
        assert!(!line.starts_with(&c.rule), "{name}: line {line}");
        let (_, _, prom) = judge(facts, "prom", extra);
        assert!(
            !prom.contains(&format!("rule=\"{}\"", c.rule)),
            "{name}: prom counts {}",
            c.rule
        );
    }
}

/// (cause rule, the rules of its consequences) for every finding that has consequences.
fn all_grouped(doc: &Value) -> Vec<(String, Vec<String>)> {
    doc["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| {
                    let under: Vec<String> = f["consequences"]
                        .as_array()?
                        .iter()
                        .filter_map(|c| c["rule"].as_str().map(str::to_string))
                        .collect();
                    Some((f["rule"].as_str()?.to_string(), under))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_scenario_gives_its_findings_fixes_and_exit_code() {
    let dir = root().join("fixtures/scenarios");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no scenarios in {}", dir.display());
    for path in &paths {
        check_scenario(&load(path));
    }
    eprintln!("{} scenarios checked", paths.len());
}

#[test]
fn every_recording_replays_with_a_verdict() {
    let dir = root().join("fixtures/facts");
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let facts: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let (code, doc, raw) = judge(&facts, "json", &[]);
        assert!(
            code == 0 || code == 1,
            "{}: no verdict\n{raw}",
            path.display()
        );
        assert_eq!(doc["verdict"]["exit_code"].as_i64(), Some(i64::from(code)));
    }
}

/// A recording, the exit code it must get, every finding the report counts, and the findings
/// it must show under their cause (cause, consequence).
type Recorded = (
    &'static str,
    i32,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

/// What the H200 project (bench/gpu-machine-judging.sh) gets in every profile.
const H200_PROJECT: &[&str] = &[
    "llama-cpp-cpu-build",
    "python-env-in-use-not-gpu-ready",
    "venv-base-interpreter-missing",
    "venv-python-version-changed",
];

/// Every recorded machine with the verdict it must get: a finding nobody stated here (a wrong
/// headline) fails, and so does a recording without a row.
#[test]
fn recorded_machines_get_their_verdicts() {
    let cases: &[Recorded] = &[
        ("h100.json", 0, &[], &[]),
        ("h100-full.json", 0, &[], &[]),
        ("h100-quick.json", 0, &[], &[]),
        ("h100-cuda-engine.json", 0, &[], &[]),
        // CUDA_VISIBLE_DEVICES= on the H100: cuInit said CUDA_ERROR_NO_DEVICE.
        (
            "h100-cuda-visible-empty.json",
            1,
            &["cuda-visible-devices-hides-all"],
            &[],
        ),
        // CUDA_VISIBLE_DEVICES=GPU-1a0ddb37-d (a UUID prefix): the H100 stays visible.
        ("h100-cuda-visible-uuid.json", 0, &[], &[]),
        // The H100 with /opt/torch/.venv (torch 2.11.0+cu130) and a project .venv holding a
        // CPU-only llama-cpp-python built on Debian 12: the seed's silent fallback.
        (
            "h100-python.json",
            1,
            &["llama-cpp-cpu-build", "python-envs-none-complete"],
            &[],
        ),
        (
            "h100-python-quick.json",
            1,
            &["llama-cpp-cpu-build", "python-envs-none-complete"],
            &[],
        ),
        // A project .venv with a CUDA llama-cpp-python that reaches /opt/torch/.venv's torch
        // through a .pth line: the files show no torch, its interpreter imported 2.11.0+cu130
        // and ran a tensor on the H100. It is complete; `python` on PATH is /opt/torch/.venv,
        // which lacks llama-cpp-python.
        (
            "h100-offload-cuda.json",
            0,
            &["python-env-in-use-not-gpu-ready"],
            &[],
        ),
        // Two CPU-only builds (one carried from the development machine, one built on the H100,
        // which crashes) and a CUDA build: the carried build's 0 of 3 layers is its consequence.
        (
            "h100-offload.json",
            1,
            &[
                "llama-cpp-cpu-build",
                "llama-n-gpu-layers-zero",
                "llama-proof-crashed",
                "python-env-in-use-not-gpu-ready",
            ],
            &[("llama-cpp-cpu-build", "llama-layers-on-cpu")],
        ),
        // The H200 (bench/gpu-machine-judging.sh; layout in fixtures/reports): .venv-cuda is a
        // CUDA llama-cpp-python built there with torch reached through a .pth line (complete),
        // .venv-cpu the CPU-only build carried from the development machine, .venv-system a
        // --system-site-packages venv whose base reaches torch through a .pth line, .venv-gone a
        // venv whose base Python was removed, .venv-upgraded one made with 3.10 whose base
        // python3 is now 3.12; `python` on PATH is /opt/torch/.venv (no llama-cpp-python).
        ("h200-judging.json", 1, H200_PROJECT, &[]),
        ("h200-judging-quick.json", 1, H200_PROJECT, &[]),
        (
            "h200-judging-full.json",
            1,
            H200_PROJECT,
            &[("llama-cpp-cpu-build", "llama-layers-on-cpu")],
        ),
        ("h200-judging-cuda-visible-uuid.json", 1, H200_PROJECT, &[]),
        // CUDA_VISIBLE_DEVICES= there: one cause, the CUDA build's failure and the
        // incompleteness under it; the other environments' own causes stay.
        (
            "h200-judging-cuda-visible-empty.json",
            1,
            &[
                "cuda-visible-devices-hides-all",
                "llama-cpp-cpu-build",
                "venv-base-interpreter-missing",
                "venv-python-version-changed",
            ],
            &[
                (
                    "cuda-visible-devices-hides-all",
                    "llama-cpp-cuda-backend-fails",
                ),
                (
                    "cuda-visible-devices-hides-all",
                    "python-envs-none-complete",
                ),
            ],
        ),
        // CUDA_PATH=/usr/local/cuda-12.4, a folder that does not exist there.
        (
            "h200-judging-cuda-path-missing.json",
            1,
            &[
                "llama-cpp-cpu-build",
                "python-env-in-use-not-gpu-ready",
                "toolkit-variable-names-no-toolkit",
                "venv-base-interpreter-missing",
                "venv-python-version-changed",
            ],
            &[],
        ),
        // The development machine: no GPU, no driver, in a container.
        (
            "debian12-no-gpu.json",
            1,
            &["container-without-nvidia-driver"],
            &[],
        ),
        // The seed's laptop (tests/seed_laptop.rs checks each finding's fixes).
        (
            "seed-laptop.json",
            1,
            &[
                "driver-too-old-for-toolkit",
                "ggml-cuda-build-options-at-runtime",
                "llama-cpp-cpu-build",
                "python-envs-none-complete",
                "python-no-cuda-wheels",
                "torch-cpu-build",
                "torch-toolkit-major-mismatch",
            ],
            // Its CUDA_PATH names the v13.0 toolkit, which driver 531.14 cannot run.
            &[(
                "driver-too-old-for-toolkit",
                "toolkit-variable-newer-than-driver",
            )],
        ),
    ];
    let mut recordings: Vec<String> = std::fs::read_dir(root().join("fixtures/facts"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    recordings.sort();
    let mut stated: Vec<String> = cases.iter().map(|c| c.0.to_string()).collect();
    stated.sort();
    assert_eq!(
        recordings, stated,
        "every recording states its expected findings here"
    );
    for (file, code, rules, grouped) in cases {
        let facts: Value = serde_json::from_slice(
            &std::fs::read(root().join("fixtures/facts").join(file)).unwrap(),
        )
        .unwrap();
        let (got, doc, raw) = judge(&facts, "json", &[]);
        assert_eq!(got, *code, "{file}\n{raw}");
        assert_counted_findings(file, &doc, rules);
        let consequences: Vec<Consequence> = grouped
            .iter()
            .map(|(cause, rule)| Consequence {
                cause: cause.to_string(),
                rule: rule.to_string(),
            })
            .collect();
        check_grouping(file, &facts, &doc, &consequences, &[]);
    }
}

/// The matrix row of an environment in the human report.
fn matrix_row<'a>(human: &'a str, env: &str) -> &'a str {
    human
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{env} ")))
        .unwrap_or_else(|| panic!("no matrix row for {env}\n{human}"))
}

/// Where an environment's interpreter and its files disagree, the interpreter wins: in the
/// matrix, in the verdict and in the fix, and the evidence says both.
#[test]
fn live_answers_outrank_file_guesses() {
    let path = root().join("fixtures/facts/h100-offload-cuda.json");
    let mut facts: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    // As recorded: .venv's files show no torch (it comes through a .pth line); its
    // interpreter imported torch 2.11.0+cu130 and used the H100.
    assert_eq!(
        facts["python"]["environments"][0]["torch"]["installed"],
        false
    );
    let (code, doc, human) = judge(&facts, "json", &[]);
    assert_eq!(code, 0, "{human}");
    assert!(!rules_in(&doc).contains(&"python-envs-none-complete"));
    let (_, _, human) = judge(&facts, "human", &[]);
    let row = matrix_row(&human, ".venv");
    assert!(
        row.contains("2.11.0+cu130") && row.contains("ready"),
        "{row}"
    );
    // The matrix is judged once; JSON carries it, Markdown renders it.
    let venv = &doc["environments"][0];
    assert_eq!(
        (&venv["env"], &venv["torch"], &venv["verdict"]),
        (&".venv".into(), &"2.11.0+cu130".into(), &"ready".into()),
        "{:#}",
        doc["environments"]
    );
    let (_, _, markdown) = judge(&facts, "markdown", &[]);
    assert!(
        markdown.contains("| .venv | 3.12 | 2.11.0+cu130 | yes | CUDA | ready | — |"),
        "{markdown}"
    );
    let in_use = &doc["findings"][0];
    assert_eq!(in_use["rule"], "python-env-in-use-not-gpu-ready");
    assert_eq!(
        in_use["fix"]["bash"],
        "source /tmp/proj-cuda/.venv/bin/activate"
    );
    assert!(
        in_use["evidence"].to_string().contains(
            ".venv: its files show torch none, its interpreter imported torch 2.11.0+cu130"
        ),
        "{in_use:#}"
    );

    // Edited the other way: /opt/torch/.venv's files show the CUDA build, but its interpreter
    // imports a CPU build that comes first on sys.path.
    let live = &mut facts["python"]["environments"][1]["live"]["torch"];
    live["version"] = "2.6.0+cpu".into();
    live["cuda"] = Value::Null;
    live["cuda_available"] = false.into();
    live["device_count"] = 0.into();
    live["devices"] = Value::Array(Vec::new());
    live["arch_list"] = Value::Array(Vec::new());
    let (code, doc, raw) = judge(&facts, "json", &[]);
    assert_eq!(code, 1, "{raw}");
    let cpu = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "torch-cpu-build")
        .unwrap_or_else(|| panic!("no torch-cpu-build\n{raw}"));
    assert!(cpu["subject"]
        .as_str()
        .unwrap()
        .contains("/opt/torch/.venv"));
    assert!(
        cpu["title"].as_str().unwrap().contains("2.6.0+cpu"),
        "{cpu:#}"
    );
    let fix = cpu["fix"]["bash"].as_str().unwrap();
    assert!(
        fix.starts_with("/opt/torch/.venv/bin/python3 -m pip install") && fix.contains("/whl/cu"),
        "{fix}"
    );
    assert!(
        cpu["evidence"].to_string().contains(
            "its files show torch 2.11.0+cu130, its interpreter imported torch 2.6.0+cpu"
        ),
        "{raw}"
    );
    let (_, _, human) = judge(&facts, "human", &[]);
    let row = matrix_row(&human, "/opt/torch/.venv");
    assert!(row.contains("CPU") && row.contains("broken"), "{row}");
}

/// On the H100, /opt/torch/.venv's own interpreter reported torch 2.11.0+cu130 using the GPU.
#[test]
fn the_recorded_torch_venv_uses_the_h100() {
    let facts: Value = serde_json::from_slice(
        &std::fs::read(root().join("fixtures/facts/h100-python.json")).unwrap(),
    )
    .unwrap();
    let envs = facts["python"]["environments"].as_array().unwrap();
    let torch_env = envs
        .iter()
        .find(|e| e["name"] == "/opt/torch/.venv")
        .expect("torch venv discovered");
    assert_eq!(torch_env["torch"]["version"], "2.11.0+cu130");
    let live = &torch_env["live"]["torch"];
    assert_eq!(live["cuda_available"], true);
    assert_eq!(live["devices"][0]["name"], "NVIDIA H100 80GB HBM3");
    assert_eq!(live["devices"][0]["tensor_ok"], true);
    let (_, doc, raw) = judge(&facts, "json", &[]);
    let torch_findings: Vec<_> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"].as_str().unwrap_or("").starts_with("torch-"))
        .collect();
    assert!(torch_findings.is_empty(), "{raw}");
}

/// The H200 project (bench/gpu-machine-judging.sh) in the quick and standard profiles: the
/// environments that reach torch through `.pth` lines (their own, or the base's under
/// include-system-site-packages) show it from files alone as their interpreters did live, and an
/// environment whose interpreter cannot see its packages is broken, not empty.
#[test]
fn the_h200_project_matrix_is_the_same_from_files_and_from_the_interpreters() {
    let verdicts = |file: &str| -> Vec<(String, String, String)> {
        let facts: Value = serde_json::from_slice(
            &std::fs::read(root().join("fixtures/facts").join(file)).unwrap(),
        )
        .unwrap();
        let (_, doc, raw) = judge(&facts, "json", &[]);
        doc["environments"]
            .as_array()
            .unwrap_or_else(|| panic!("{file}: no matrix\n{raw}"))
            .iter()
            .map(|row| {
                let text = |k: &str| row[k].as_str().unwrap_or("").to_string();
                (text("env"), text("torch"), text("verdict"))
            })
            .collect()
    };
    let want = |torch: &'static str, verdict: &'static str| (torch, verdict);
    let expected = [
        (".venv-cpu", want("2.11.0+cu130", "broken")),
        (".venv-cuda", want("2.11.0+cu130", "ready")),
        (".venv-gone", want("—", "broken")),
        (".venv-system", want("2.11.0+cu130", "partial")),
        (".venv-upgraded", want("—", "broken")),
        ("/opt/torch/.venv", want("2.11.0+cu130", "partial")),
    ];
    for file in ["h200-judging-quick.json", "h200-judging.json"] {
        let got = verdicts(file);
        for (env, (torch, verdict)) in expected {
            let row = got
                .iter()
                .find(|(e, _, _)| e == env)
                .unwrap_or_else(|| panic!("{file}: no row for {env}: {got:?}"));
            assert_eq!(
                (row.1.as_str(), row.2.as_str()),
                (torch, verdict),
                "{file}: {env}"
            );
        }
    }
}
