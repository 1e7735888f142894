//! Finding rules by what a user saw: the `symptoms` of rule files, searched by
//! `gpu-doctor explain TEXT` through the real binary, and checked when a rule file loads.

use std::path::Path;
use std::process::{Command, Output};

fn doctor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gpu-doctor"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("gpu-doctor runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The rule ids of a several-match listing: the first word of each indented line.
fn listed_ids(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_seed_log_line_finds_every_rule_that_explains_it() {
    let out = doctor(&["explain", "assigned to device CPU"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let ids = listed_ids(&stdout);
    for id in [
        "llama-layers-on-cpu",
        "llama-n-gpu-layers-zero",
        "llama-cpp-cpu-build",
    ] {
        assert!(ids.iter().any(|i| i == id), "{id} missing:\n{stdout}");
    }
    assert!(stdout.contains("gpu-doctor explain <id>"), "{stdout}");
}

/// In JSON a symptom query gives the matching rules as `gpu-doctor rules --format json` lists
/// them (docs/rules.schema.json), each with the symptoms it lists, even for one match.
#[test]
fn a_symptom_query_in_json_lists_the_matching_rules_with_their_symptoms() {
    for (query, at_least) in [("assigned to device CPU", 3), ("[WinError 126]", 1)] {
        let out = doctor(&["explain", query, "--format", "json"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{query}: not JSON ({e}): {}", text(&out.stdout)));
        let rules = doc["rules"].as_array().expect("a rules list");
        assert!(rules.len() >= at_least, "{query}: {doc}");
        for rule in rules {
            let listed: Vec<String> = rule["symptoms"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_lowercase())
                .collect();
            let want = query.to_lowercase();
            assert!(
                listed
                    .iter()
                    .any(|s| want.contains(s.as_str()) || s.contains(&want)),
                "{query}: {} lists {listed:?}",
                rule["id"]
            );
        }
    }
}

#[test]
fn a_whole_pasted_log_line_in_another_case_finds_the_same_rules() {
    let pasted = doctor(&[
        "explain",
        "load_tensors: layer   0 ASSIGNED TO DEVICE cpu, is_swa = 0",
    ]);
    assert_eq!(pasted.status.code(), Some(0), "{}", text(&pasted.stderr));
    let short = doctor(&["explain", "assigned to device CPU"]);
    assert_eq!(
        listed_ids(&text(&pasted.stdout)),
        listed_ids(&text(&short.stdout))
    );
}

#[test]
fn one_matching_rule_is_explained_under_its_symptom() {
    let out = doctor(&["explain", "torch not compiled with cuda"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(
            "Symptom \"Torch not compiled with CUDA enabled\": rule torch-cpu-build\n"
        ),
        "{stdout}"
    );
    // The rule's own explanation follows, as `explain <id>` prints it.
    let by_id = text(&doctor(&["explain", "torch-cpu-build"]).stdout);
    assert!(stdout.ends_with(&by_id), "{stdout}");
    assert!(by_id.contains("Symptoms:\n"), "{by_id}");
}

#[test]
fn no_match_is_an_input_error_naming_the_nearest_symptom() {
    let out = doctor(&["explain", "the GPU fans are slower at night"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no symptom that matches it"), "{stderr}");
    assert!(
        stderr.contains("The nearest symptom: \"GPU slower than CPU\""),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    // A mistyped rule id still gets the id it resembles.
    let typo = doctor(&["explain", "no-nvidia-drivr"]);
    assert_eq!(typo.status.code(), Some(2));
    assert!(text(&typo.stderr).contains("Did you mean `no-nvidia-driver`?"));
}

fn project_with_rules(dir: &Path, rules: &str) -> String {
    std::fs::write(dir.join("team.toml"), rules).unwrap();
    let config = dir.join("gpu-doctor.toml");
    std::fs::write(&config, "rules = [\"team.toml\"]\n").unwrap();
    config.display().to_string()
}

const TEAM_RULE: &str = r#"[[rule]]
id = "model-cache-on-nfs"
category = "host"
severity = "warn"
since = "1.0.0"
when = "false"
title = "the model cache is on NFS"
explain = "Loading from NFS is slow."
symptoms = ["model load takes minutes"]
fix.none = "move the cache"
"#;

#[test]
fn a_projects_own_rule_is_found_by_its_symptom() {
    let dir = tempfile::tempdir().unwrap();
    let config = project_with_rules(dir.path(), TEAM_RULE);
    let out = doctor(&[
        "--config",
        &config,
        "explain",
        "Model load takes MINUTES on node 7",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout)
            .starts_with("Symptom \"model load takes minutes\": rule model-cache-on-nfs"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn bad_symptoms_are_refused_at_load_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "symptoms = \"one string\"",
            "`symptoms` must be an array of strings",
        ),
        ("symptoms = [\"\"]", "`symptoms` has an empty string"),
        ("symptoms = [\"a\\nb\"]", "a symptom must be one line"),
        (
            "symptoms = [\"Slow\", \"slow\"]",
            "symptom \"slow\" is listed twice",
        ),
        ("symptoms = [3]", "`symptoms` must be an array of strings"),
    ];
    let long = format!("symptoms = [\"{}\"]", "x".repeat(201));
    let cases = cases
        .into_iter()
        .map(|(line, message)| (line.to_string(), message))
        .chain([(long, "at most 200 characters, this one has 201")]);
    for (line, message) in cases {
        let rules = TEAM_RULE.replace("symptoms = [\"model load takes minutes\"]", &line);
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, &rules).unwrap();
        let out = doctor(&["rules", "--rules", &path.display().to_string()]);
        assert_eq!(out.status.code(), Some(2), "{line}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains("bad.toml:9:"), "{line}: {stderr}");
        assert!(stderr.contains(message), "{line}: {stderr}");
    }
}
