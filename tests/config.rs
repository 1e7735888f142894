//! The configuration end to end, through the real binary: finding the nearest gpu-doctor.toml
//! or pyproject.toml, every kind of configuration error with its line and column, waivers,
//! requirements judged over recorded facts of real machines, the fail level, extra rule files
//! and Python environments named relative to the configuration.

mod common;

use common::{real_venv, write};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(path: &str) -> String {
    format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))
}

fn facts(name: &str) -> String {
    fixture(&format!("facts/{name}.json"))
}

/// gpu-doctor in `dir`, with no configuration chosen by the environment of the test run.
fn doctor(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gpu-doctor"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("GPU_DOCTOR_CONFIG")
        .env_remove("GPU_DOCTOR_NO_CONFIG")
        .env_remove("GPU_DOCTOR_PROJECT_DIR")
        .output()
        .expect("gpu-doctor runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `check --facts NAME --format json` in `dir`: the exit code and the document.
fn judge(dir: &Path, facts_name: &str, extra: &[&str]) -> (i32, Value) {
    let f = facts(facts_name);
    let mut args = vec!["check", "--facts", f.as_str(), "--format", "json"];
    args.extend_from_slice(extra);
    let out = doctor(dir, &args);
    let code = out.status.code().unwrap_or(-1);
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "exit {code}, no JSON ({e}): {}{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    });
    (code, doc)
}

/// "rule subject" of every finding.
fn ids(doc: &Value, key: &str) -> Vec<String> {
    doc[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {doc}"))
        .iter()
        .map(|f| match f["subject"].as_str() {
            Some(s) => format!("{} {s}", f["rule"].as_str().unwrap_or("")),
            None => f["rule"].as_str().unwrap_or("").to_string(),
        })
        .collect()
}

fn has(doc: &Value, key: &str, rule: &str) -> bool {
    ids(doc, key)
        .iter()
        .any(|i| i == rule || i.starts_with(&format!("{rule} ")))
}

/// The configuration a report names, as a path from the folder gpu-doctor ran in (the name is
/// relative to it when the file is inside it).
fn config_of(dir: &Path, doc: &Value) -> PathBuf {
    let name = doc["config"]
        .as_str()
        .unwrap_or_else(|| panic!("no configuration in {doc}"));
    dir.join(name)
}

fn project() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(tmp.path()).unwrap();
    (tmp, root)
}

// ---------------------------------------------------------------------------------------------
// discovery

#[test]
fn the_nearest_configuration_above_the_working_folder_applies() {
    let (_tmp, root) = project();
    write(
        &root.join("gpu-doctor.toml"),
        "requirements = [\"gpus>=2\"]\n",
    );
    let deep = root.join("a/b/c");
    std::fs::create_dir_all(&deep).unwrap();
    let (code, doc) = judge(&deep, "h100", &[]);
    assert_eq!(code, 1, "{doc}");
    assert!(has(&doc, "findings", "requirement-gpus"), "{doc}");
    assert_eq!(config_of(&deep, &doc), root.join("gpu-doctor.toml"));

    // A nearer one wins, wholly: its folder has no requirement.
    write(&root.join("a/gpu-doctor.toml"), "fail_on = \"error\"\n");
    let (code, doc) = judge(&deep, "h100", &[]);
    assert_eq!(code, 0, "{doc}");
    assert!(!has(&doc, "findings", "requirement-gpus"), "{doc}");

    // --no-config uses none; --config names one.
    let (code, doc) = judge(&root, "h100", &["--no-config"]);
    assert_eq!((code, doc["config"].is_null()), (0, true), "{doc}");
    let file = root.join("gpu-doctor.toml");
    let (code, _) = judge(&deep, "h100", &["--config", file.to_str().unwrap()]);
    assert_eq!(code, 1);
}

#[test]
fn pyproject_counts_only_with_its_table_and_gpu_doctor_toml_wins_beside_it() {
    let (_tmp, root) = project();
    write(
        &root.join("pyproject.toml"),
        "[project]\nname = \"demo\"\n\n[tool.gpu-doctor]\nrequirements = [\"gpus>=2\"]\n",
    );
    // A package's own pyproject.toml without the table does not stop the walk.
    write(
        &root.join("pkg/pyproject.toml"),
        "[project]\nname = \"pkg\"\n",
    );
    let (code, doc) = judge(&root.join("pkg"), "h100", &[]);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(
        config_of(&root.join("pkg"), &doc),
        root.join("pyproject.toml")
    );
    assert!(has(&doc, "findings", "requirement-gpus"), "{doc}");

    // An unrelated broken pyproject.toml (no mention of gpu-doctor) is not read.
    write(&root.join("pkg/pyproject.toml"), "[project\nname = 1\n");
    let (code, _) = judge(&root.join("pkg"), "h100", &[]);
    assert_eq!(code, 1);

    // gpu-doctor.toml beside it wins.
    write(
        &root.join("gpu-doctor.toml"),
        "requirements = [\"gpus>=1\"]\n",
    );
    let (code, doc) = judge(&root, "h100", &[]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(config_of(&root, &doc), root.join("gpu-doctor.toml"));
}

// ---------------------------------------------------------------------------------------------
// errors

/// A diagnostic a broken configuration must produce: line, column, part of the message.
type Expected = (usize, usize, &'static str);

/// Every broken fixture: exit 2, nothing on stdout, no --output written, and the message
/// names the file, the line, the column and what was expected.
#[test]
fn every_configuration_error_names_its_place() {
    let cases: &[(&str, &[Expected])] = &[
        (
            "invalid-toml.toml",
            &[(3, 1, "invalid TOML: missing comma between array elements")],
        ),
        (
            "unknown-key.toml",
            &[(
                2,
                1,
                "unknown key `fail-on` in the configuration; did you mean `fail_on`?",
            )],
        ),
        (
            "wrong-type.toml",
            &[(
                1,
                16,
                "`requirements` must be an array of strings, found string",
            )],
        ),
        (
            "bad-profile.toml",
            &[(
                1,
                11,
                "unknown profile \"fast\"; expected one of: quick, standard, full",
            )],
        ),
        (
            "bad-requirement.toml",
            &[(
                3,
                20,
                "invalid requirement \"gpu-memory>=24\": expected a unit after 24",
            )],
        ),
        (
            "requirement-arity.toml",
            &[
                (
                    1,
                    30,
                    "\"torch-cuda>=2\": this requirement takes no comparison",
                ),
                (
                    1,
                    39,
                    "\"cuda\": expected a comparison after `cuda`, like \"cuda>=12.1\"",
                ),
            ],
        ),
        (
            "duplicate-requirement.toml",
            &[(1, 42, "`cuda` is already required on line 1")],
        ),
        (
            "waiver-missing-reason.toml",
            &[(1, 1, "a waiver needs `reason`")],
        ),
        (
            "waiver-bad-date.toml",
            &[(
                4,
                11,
                "`waiver.expires` must be a date like 2027-01-31, found \"31.01.2027\"",
            )],
        ),
        (
            "waiver-unknown-rule.toml",
            &[(
                2,
                8,
                "no loaded rule `persistance-mode-off`; did you mean `persistence-mode-off`?",
            )],
        ),
        (
            "missing-rule-file.toml",
            &[(
                1,
                10,
                "no-such-rules.toml not found (relative paths are relative to",
            )],
        ),
        (
            "llama-keys.toml",
            &[
                (
                    2,
                    1,
                    "unknown key `llama.modell` in [llama]; did you mean `model`?",
                ),
                (
                    3,
                    12,
                    "`llama.binaries` must be an array of strings, found string",
                ),
            ],
        ),
        (
            "python-environments.toml",
            &[(
                2,
                26,
                "`python.environments` must be an array of strings, found integer in it",
            )],
        ),
    ];
    let (_tmp, root) = project();
    let report = root.join("report.json");
    for (file, expected) in cases {
        let path = fixture(&format!("config/broken/{file}"));
        let h100 = facts("h100");
        let out = doctor(
            &root,
            &[
                "check",
                "--config",
                &path,
                "--facts",
                &h100,
                "--format",
                "json",
                "--output",
                report.to_str().unwrap(),
            ],
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {stderr}");
        assert!(out.stdout.is_empty(), "{file}: {}", text(&out.stdout));
        assert!(!report.exists(), "{file}: the report was written");
        assert!(
            stderr.starts_with("gpu-doctor: invalid configuration:\n"),
            "{file}: {stderr}"
        );
        for (line, column, message) in *expected {
            let place = format!("{path}:{line}:{column}: error: ");
            let found = stderr
                .lines()
                .any(|l| l.starts_with(&place) && l.contains(message));
            assert!(found, "{file}: expected {place}...{message} in:\n{stderr}");
        }
        // The source line is shown with a caret under the column.
        assert!(stderr.contains(" | "), "{file}: {stderr}");
    }
}

#[test]
fn a_pyproject_without_the_table_named_with_config_is_an_error() {
    let (_tmp, root) = project();
    let path = fixture("config/pyproject-without-table/pyproject.toml");
    let out = doctor(
        &root,
        &["check", "--config", &path, "--facts", &facts("h100")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(&format!(
            "{path}:1:1: error: this pyproject.toml has no [tool.gpu-doctor] table"
        )),
        "{}",
        text(&out.stderr)
    );
    let out = doctor(
        &root,
        &[
            "check",
            "--config",
            "no-such.toml",
            "--facts",
            &facts("h100"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no-such.toml:1:1: error: cannot read the configuration"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn errors_in_a_discovered_pyproject_table_point_into_it() {
    let (_tmp, root) = project();
    write(
        &root.join("pyproject.toml"),
        "[project]\nname = \"demo\"\n\n[tool.gpu-doctor]\nrequirements = [\"gpu>=2\"]\n\n[tool.gpu-doctor.python]\nenvs = []\n",
    );
    let out = doctor(&root, &["check", "--facts", &facts("h100")]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("pyproject.toml:5:18: error: invalid requirement \"gpu>=2\": unknown requirement `gpu`; did you mean `gpus`?"),
        "{stderr}"
    );
    assert!(
        stderr.contains("pyproject.toml:8:1: error: unknown key `tool.gpu-doctor.python.envs`"),
        "{stderr}"
    );
}

/// `[tool] gpu-doctor = "yes"` means to configure gpu-doctor: an error at that value, in
/// discovery and with `--config`, not a pyproject.toml passed over.
#[test]
fn a_tool_gpu_doctor_that_is_not_a_table_is_an_error_at_its_value() {
    let (_tmp, root) = project();
    let pyproject = root.join("pyproject.toml");
    write(
        &pyproject,
        "[project]\nname = \"demo\"\n\n[tool]\ngpu-doctor = \"yes\"\n",
    );
    for extra in [&[][..], &["--config", pyproject.to_str().unwrap()][..]] {
        let recorded = facts("h100");
        let mut args = vec!["check", "--facts", recorded.as_str()];
        args.extend_from_slice(extra);
        let out = doctor(&root, &args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(
            stderr.contains(
                "pyproject.toml:5:14: error: `tool.gpu-doctor` must be a table (`[tool.gpu-doctor]`), found string"
            ),
            "{extra:?}: {stderr}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// requirements over recorded facts

/// Each requirement against the H100 recording (1 × H100 80GB HBM3, 81559 MiB, compute
/// capability 9.0, driver 580.159.04 supporting CUDA 13.0): met, or not met.
#[test]
fn requirements_are_judged_over_the_h100_recording() {
    let cases = [
        ("gpus>=1", true),
        ("gpus>=2", false),
        ("gpus==1", true),
        ("cuda>=12.1", true),
        ("cuda>=13.1", false),
        ("cuda>=12.1,<13", false),
        ("cuda==13", true),
        ("driver>=550", true),
        ("driver>=580.159.4", true),
        ("driver>=580.160", false),
        ("driver<580", false),
        ("compute-capability>=8.0", true),
        ("compute-capability>=9.0", true),
        ("compute-capability>=10.0", false),
        ("compute-capability==9", true),
        // NVML reports 81559 MiB for this "80GB" card: less than 80 GiB.
        ("gpu-memory>=79GiB", true),
        ("gpu-memory>=80GiB", false),
        ("gpu-memory>=80GB", true),
        ("gpu-memory > 81559MiB", false),
    ];
    let (_tmp, root) = project();
    for (req, met) in cases {
        write(
            &root.join("gpu-doctor.toml"),
            &format!("requirements = [\"{req}\"]\n"),
        );
        let (code, doc) = judge(&root, "h100", &[]);
        let kind = req
            .split(|c: char| "<>=!".contains(c) || c == ' ')
            .next()
            .unwrap();
        let id = format!("requirement-{kind}");
        assert_eq!(code, if met { 0 } else { 1 }, "{req}: {doc}");
        assert_eq!(
            !has(&doc, "findings", &id),
            met,
            "{req}: {:?}",
            ids(&doc, "findings")
        );
        if !met {
            let f = doc["findings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["rule"] == id.as_str())
                .unwrap();
            assert_eq!(f["severity"], "error");
            assert!(
                f["title"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("Requirement {req} is not met: ")),
                "{f}"
            );
        }
    }
}

#[test]
fn without_a_driver_gpu_requirements_are_not_met() {
    let (_tmp, root) = project();
    write(
        &root.join("gpu-doctor.toml"),
        "requirements = [\"gpus>=1\", \"cuda>=12.1\", \"gpu-memory>=8GiB\"]\n",
    );
    let (code, doc) = judge(&root, "debian12-no-gpu", &[]);
    assert_eq!(code, 1);
    for id in [
        "requirement-gpus",
        "requirement-cuda",
        "requirement-gpu-memory",
    ] {
        assert!(
            has(&doc, "findings", id),
            "{id}: {:?}",
            ids(&doc, "findings")
        );
    }
}

/// The quick profile does not load the driver or start Python: those requirements cannot be
/// told, which is a warning, not an error. What files show is told: the recording's only
/// llama-cpp-python has no GPU backend, so llama-offload is not met even here.
#[test]
fn requirements_the_facts_cannot_tell_are_warnings() {
    let (_tmp, root) = project();
    write(
        &root.join("gpu-doctor.toml"),
        "requirements = [\"gpus>=1\", \"torch-cuda\", \"llama-offload\"]\n",
    );
    let (code, doc) = judge(&root, "h100-python-quick", &[]);
    let found = ids(&doc, "findings");
    for id in [
        "requirement-gpus-unverified",
        "requirement-torch-cuda-unverified",
        "requirement-llama-offload",
    ] {
        assert!(found.iter().any(|f| f == id), "{id}: {found:?}");
    }
    for id in [
        "requirement-gpus",
        "requirement-torch-cuda",
        "requirement-llama-offload-unverified",
    ] {
        assert!(!found.iter().any(|f| f == id), "{id}: {found:?}");
    }
    assert_eq!(code, 1, "{found:?}");
    let (code, doc) = judge(&root, "h100-quick", &[]);
    assert_eq!(code, 0, "{:?}", ids(&doc, "findings"));
    let (code, _) = judge(&root, "h100-quick", &["--fail-on", "warn"]);
    assert_eq!(code, 1);
}

/// Every requirement's generated rules run on every recorded machine without an evaluation
/// error (a CEL type error only shows when a rule runs: `!e.name in list` loaded fine).
#[test]
fn every_requirement_evaluates_on_every_recording() {
    let (_tmp, root) = project();
    write(
        &root.join("gpu-doctor.toml"),
        "requirements = [\"cuda>=12.1\", \"driver>=550\", \"gpus>=1\", \"gpu-memory>=24GiB\", \"compute-capability>=8.0\", \"torch-cuda\", \"llama-offload\"]\n",
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/facts");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        let (_, doc) = judge(&root, &name, &[]);
        assert!(
            !has(&doc, "findings", "rule-evaluation-failed"),
            "{name}: {:?}",
            ids(&doc, "findings")
        );
    }
}

/// Where the full profile ran the offload proof, `llama-offload` follows where the test model's
/// layers went, not only what llama_supports_gpu_offload() said. h100-offload-cuda: the CUDA
/// build in `.venv` put 3 of 3 layers on the H100: met. The same recording with the proof's
/// placement edited to 0 of 3 (a scenario: the library says it supports offload, the layers
/// stay on the CPU): not met, although the live answer still says true.
#[test]
fn llama_offload_follows_the_offload_proof_where_it_ran() {
    let (_tmp, root) = project();
    write(
        &root.join("gpu-doctor.toml"),
        "requirements = [\"llama-offload\"]\n",
    );
    let (_, doc) = judge(&root, "h100-offload-cuda", &[]);
    assert!(!has(&doc, "findings", "requirement-llama-offload"), "{doc}");
    assert!(
        !has(&doc, "findings", "requirement-llama-offload-unverified"),
        "{doc}"
    );

    let mut facts: Value =
        serde_json::from_str(&std::fs::read_to_string(facts("h100-offload-cuda")).unwrap())
            .unwrap();
    let stacks = facts["offload"]["stacks"].as_array_mut().unwrap();
    let python = stacks
        .iter_mut()
        .find(|s| s["kind"] == "llama-cpp-python")
        .unwrap();
    python["placement"]["layers_on_gpu"] = 0.into();
    let live_says = facts["python"]["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == ".venv")
        .unwrap()["live"]["llama_cpp"]["supports_gpu_offload"]
        .clone();
    assert_eq!(live_says, true);
    let edited = root.join("layers-on-cpu.json");
    write(&edited, &facts.to_string());
    let out = doctor(
        &root,
        &[
            "check",
            "--facts",
            edited.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(has(&doc, "findings", "requirement-llama-offload"), "{doc}");
    assert_eq!(out.status.code(), Some(1));
}

/// h100-python: `.venv` holds a CPU-only llama-cpp-python, `/opt/torch/.venv` a CUDA torch
/// that ran a tensor on the H100 (the live probe's answers).
#[test]
fn python_requirements_follow_the_environments_answers() {
    let (_tmp, root) = project();
    write(
        &root.join("gpu-doctor.toml"),
        "requirements = [\"torch-cuda\", \"llama-offload\"]\n",
    );
    let (_, doc) = judge(&root, "h100-python", &[]);
    assert!(!has(&doc, "findings", "requirement-torch-cuda"), "{doc}");
    assert!(has(&doc, "findings", "requirement-llama-offload"), "{doc}");

    // Naming the environments narrows the requirement to them: none of the recording's
    // environments was named by a configuration, so torch-cuda is not met there.
    write(
        &root.join("gpu-doctor.toml"),
        "requirements = [\"torch-cuda\"]\n\n[python]\nenvironments = [\".venv\"]\n",
    );
    let (code, doc) = judge(&root, "h100-python", &[]);
    assert_eq!(code, 1);
    assert!(has(&doc, "findings", "requirement-torch-cuda"), "{doc}");
}

#[test]
fn explain_and_rules_show_a_requirements_rules_and_where_it_is_written() {
    let (_tmp, root) = project();
    write(
        &root.join("gpu-doctor.toml"),
        "# ours\n\nrequirements = [\n  \"gpus>=2\",\n]\n",
    );
    let out = doctor(&root, &["explain", "requirement-gpus"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        stdout.contains("(gpu-doctor.toml:4): `gpus>=2`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("derived.visibility.cuda_visible_gpus >= 2"),
        "{stdout}"
    );
    let out = doctor(&root, &["rules"]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("requirement-gpus "), "{stdout}");
    assert!(stdout.contains("requirement-gpus-unverified "), "{stdout}");
}

// ---------------------------------------------------------------------------------------------
// waivers

const FAR: &str = "2999-12-31";
const PAST: &str = "2020-01-31";

fn waiver(rule: &str, subject: Option<&str>, expires: &str) -> String {
    let subject = subject
        .map(|s| format!("subject = \"{s}\"\n"))
        .unwrap_or_default();
    format!(
        "[[waiver]]\nrule = \"{rule}\"\n{subject}reason = \"tracked in OPS-12\"\nexpires = {expires}\nowner = \"gpu-team\"\n\n"
    )
}

#[test]
fn active_waivers_take_findings_out_of_the_verdict_and_show_them_as_waived() {
    let (_tmp, root) = project();
    let config = waiver("llama-cpp-cpu-build", Some("environment .venv"), FAR)
        + &waiver("python-envs-none-complete", None, FAR);
    write(&root.join("gpu-doctor.toml"), &config);
    let (code, doc) = judge(&root, "h100-python", &[]);
    assert_eq!(code, 0, "{doc}");
    assert!(
        ids(&doc, "findings").is_empty(),
        "{:?}",
        ids(&doc, "findings")
    );
    assert_eq!(
        ids(&doc, "waived"),
        [
            "llama-cpp-cpu-build environment .venv (Python 3.12)",
            "python-envs-none-complete"
        ]
    );
    assert_eq!(doc["verdict"]["waived"], 2);
    let w = &doc["waived"][0]["waiver"];
    assert_eq!(w["reason"], "tracked in OPS-12");
    assert_eq!(w["expires"], FAR);
    assert_eq!(w["owner"], "gpu-team");
    assert_eq!(w["source"], "gpu-doctor.toml:1");

    // Human: a "waived" line in its section and the count in the last line.
    let out = doctor(&root, &["check", "--facts", &facts("h100-python")]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "    ~ waived until 2999-12-31: llama-cpp-python 0.3.36 in .venv is a CPU-only build"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("reason: tracked in OPS-12 (gpu-doctor.toml:1, gpu-team)"),
        "{stdout}"
    );
    assert!(
        stdout
            .trim_end()
            .ends_with("(2 findings waived by gpu-doctor.toml)"),
        "{stdout}"
    );

    // JUnit: the check is skipped with the waiver, not failed and not passed.
    let out = doctor(
        &root,
        &[
            "check",
            "--facts",
            &facts("h100-python"),
            "--format",
            "junit",
        ],
    );
    let xml = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(xml.contains("failures=\"0\""), "{xml}");
    assert!(
        xml.contains("<testcase name=\"llama-cpp-cpu-build on environment .venv (Python 3.12)\""),
        "{xml}"
    );
    assert!(
        xml.contains(
            "<skipped message=\"waived until 2999-12-31: tracked in OPS-12 (gpu-doctor.toml:1)"
        ),
        "{xml}"
    );

    // SARIF: the result is there, suppressed.
    let out = doctor(
        &root,
        &[
            "check",
            "--facts",
            &facts("h100-python"),
            "--format",
            "sarif",
        ],
    );
    let sarif: Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert!(results
        .iter()
        .all(|r| r["suppressions"][0]["kind"] == "external"));

    // Both still validate: JUnit against the Jenkins XSD, SARIF against its JSON schema.
    std::fs::write(root.join("waived.xml"), &xml).unwrap();
    std::fs::write(root.join("waived.sarif"), &out.stdout).unwrap();
    let v = format_validators();
    let xsd = v.join("junit-10.xsd").display().to_string();
    let schema = v.join("sarif-2.1.0.json").display().to_string();
    validate(&v, &["junit", &xsd], &root.join("waived.xml"));
    validate(&v, &["sarif", &schema], &root.join("waived.sarif"));
}

/// The folder with the JUnit XSD, the SARIF schema and a venv to check them with, made once by
/// tests/support/format-validators.sh (as tests/formats.rs uses it).
fn format_validators() -> PathBuf {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/format-validators.sh"
    );
    let out = Command::new("bash")
        .arg(script)
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    PathBuf::from(text(&out.stdout).trim())
}

fn validate(validators: &Path, args: &[&str], file: &Path) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/validate_formats.py"
    );
    let out = Command::new(validators.join("venv/bin/python"))
        .arg(script)
        .args(args)
        .arg(file)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}: {}{}",
        file.display(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn a_subject_limits_a_waiver_to_that_item() {
    let (_tmp, root) = project();
    // seed-laptop: torch-toolkit-major-mismatch is about .venv310 only.
    write(
        &root.join("gpu-doctor.toml"),
        &waiver(
            "torch-toolkit-major-mismatch",
            Some("environment .venv"),
            FAR,
        ),
    );
    let (_, doc) = judge(&root, "seed-laptop", &[]);
    assert!(
        has(&doc, "findings", "torch-toolkit-major-mismatch"),
        "{doc}"
    );
    assert!(ids(&doc, "waived").is_empty());
    write(
        &root.join("gpu-doctor.toml"),
        &waiver(
            "torch-toolkit-major-mismatch",
            Some("environment .venv310"),
            FAR,
        ),
    );
    let (_, doc) = judge(&root, "seed-laptop", &[]);
    assert!(
        !has(&doc, "findings", "torch-toolkit-major-mismatch"),
        "{doc}"
    );
    assert_eq!(
        ids(&doc, "waived"),
        ["torch-toolkit-major-mismatch environment .venv310 (Python 3.10)"]
    );
    // With its details in parentheses, the subject matches too.
    write(
        &root.join("gpu-doctor.toml"),
        &waiver(
            "torch-toolkit-major-mismatch",
            Some("environment .venv310 (Python 3.10)"),
            FAR,
        ),
    );
    let (_, doc) = judge(&root, "seed-laptop", &[]);
    assert_eq!(ids(&doc, "waived").len(), 1);
}

#[test]
fn an_expired_waiver_waives_nothing_and_is_a_finding() {
    let (_tmp, root) = project();
    write(
        &root.join("gpu-doctor.toml"),
        &(String::from("fail_on = \"error\"\n\n")
            + &waiver("python-envs-none-complete", None, PAST)),
    );
    let (code, doc) = judge(&root, "h100-python", &[]);
    assert_eq!(code, 1);
    assert!(has(&doc, "findings", "python-envs-none-complete"), "{doc}");
    assert!(ids(&doc, "waived").is_empty());
    let expired = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "config-waiver-expired")
        .unwrap_or_else(|| panic!("{doc}"));
    assert_eq!(expired["severity"], "warn");
    assert_eq!(expired["category"], "python");
    assert_eq!(expired["subject"], "waiver gpu-doctor.toml:3");
    assert_eq!(
        expired["title"],
        "The waiver for python-envs-none-complete expired on 2020-01-31"
    );
    // A string date works like a TOML date.
    write(
        &root.join("gpu-doctor.toml"),
        &waiver("python-envs-none-complete", None, &format!("\"{FAR}\"")),
    );
    let (_, doc) = judge(&root, "h100-python", &[]);
    assert_eq!(ids(&doc, "waived"), ["python-envs-none-complete"]);
}

// ---------------------------------------------------------------------------------------------
// fail level, profile, rule files, environments

#[test]
fn the_fail_level_comes_from_the_configuration_unless_the_command_line_says() {
    let (_tmp, root) = project();
    // seed-laptop has errors and warnings; h100 with an unverifiable requirement has a warning.
    write(
        &root.join("gpu-doctor.toml"),
        "fail_on = \"warn\"\nrequirements = [\"torch-cuda\"]\n",
    );
    let (code, doc) = judge(&root, "h100", &[]);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(doc["verdict"]["fail_on"], "warn");
    let (code, doc) = judge(&root, "h100", &["--fail-on", "error"]);
    assert_eq!(
        (code, &doc["verdict"]["fail_on"]),
        (0, &Value::from("error"))
    );
    write(&root.join("gpu-doctor.toml"), "fail_on = \"never\"\n");
    let (code, _) = judge(&root, "seed-laptop", &[]);
    assert_eq!(code, 0);
}

#[test]
fn rule_files_are_relative_to_the_configuration() {
    let (_tmp, root) = project();
    write(
        &root.join("ci/gpu-doctor.toml"),
        "rules = [\"rules/team.toml\"]\nfail_on = \"warn\"\n",
    );
    write(
        &root.join("ci/rules/team.toml"),
        "[[rule]]\nid = \"team-needs-two-gpus\"\ncategory = \"gpu\"\nseverity = \"warn\"\nsince = \"1.0.0\"\nwhen = \"driver.gpu_count < 2\"\ntitle = \"{driver.gpu_count} GPU(s); the team's jobs need two\"\nexplain = \"Our training jobs shard over two GPUs.\"\nfix.none = \"use the two-GPU pool\"\n",
    );
    let config = root.join("ci/gpu-doctor.toml");
    // From elsewhere, through --config: the rule file is still found beside the configuration.
    let (code, doc) = judge(&root, "h100", &["--config", config.to_str().unwrap()]);
    assert_eq!(code, 1, "{doc}");
    assert!(has(&doc, "findings", "team-needs-two-gpus"), "{doc}");
    // A waiver may name the project's own rule.
    std::fs::write(
        &config,
        format!(
            "rules = [\"rules/team.toml\"]\nfail_on = \"warn\"\n\n{}",
            waiver("team-needs-two-gpus", None, FAR)
        ),
    )
    .unwrap();
    let (code, doc) = judge(&root, "h100", &["--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{doc}");
    // An error in the rule file is the rule file's, with its own place.
    write(&root.join("ci/rules/team.toml"), "[[rule]]\nid = \"x\"\n");
    let out = doctor(
        &root,
        &[
            "check",
            "--config",
            config.to_str().unwrap(),
            "--facts",
            &facts("h100"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("team.toml:1:1: error: missing required keys"),
        "{}",
        text(&out.stderr)
    );
}

/// `[python] environments` names a real venv relative to the configuration; the
/// configuration's folder becomes the project folder; the profile comes from the file.
#[test]
fn python_environments_and_the_profile_come_from_the_configuration() {
    let (_tmp, root) = project();
    real_venv(&root.join("envs/train"));
    write(
        &root.join("app/gpu-doctor.toml"),
        "profile = \"quick\"\n\n[python]\nenvironments = [\"../envs/train\"]\n",
    );
    let sub = root.join("app/src/pkg");
    std::fs::create_dir_all(&sub).unwrap();
    let out = doctor(&sub, &["facts"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let facts: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(facts["profile"], "quick");
    let py = &facts["python"];
    assert_eq!(
        Path::new(py["project_dir"].as_str().unwrap()),
        root.join("app")
    );
    let env = py["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["found_by"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == "config")
        })
        .unwrap_or_else(|| panic!("{py}"));
    assert_eq!(
        Path::new(env["path"].as_str().unwrap()),
        root.join("envs/train")
    );
    assert_eq!(env["exists"], true);

    // --no-config: the working folder is the project, and the venv is not named.
    let out = doctor(&sub, &["--no-config", "facts", "--profile", "quick"]);
    let facts: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        Path::new(facts["python"]["project_dir"].as_str().unwrap()),
        sub
    );
    assert!(!facts["python"]["environments"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["found_by"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "config")));
}

#[test]
fn the_example_configuration_with_every_key_loads() {
    let (_tmp, root) = project();
    let path = fixture("config/example.toml");
    let out = doctor(&root, &["rules", "--config", &path]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for id in [
        "team-gpu-is-big",
        "requirement-cuda",
        "requirement-driver",
        "requirement-gpus",
        "requirement-gpu-memory",
        "requirement-compute-capability",
        "requirement-torch-cuda",
        "requirement-llama-offload",
    ] {
        assert!(stdout.contains(&format!("{id} ")), "{id}: {stdout}");
    }
    let (_, doc) = judge(&root, "h100", &["--config", &path]);
    assert!(!has(&doc, "findings", "requirement-gpu-memory"), "{doc}");
}

/// A repository can commit gpu-doctor.toml as a symlink to /dev/zero (git keeps symlinks):
/// the doctor refuses it at once with exit 2 instead of reading without end.
#[cfg(unix)]
#[test]
fn a_configuration_that_is_not_a_regular_file_is_refused() {
    let (_tmp, root) = project();
    let link = root.join("gpu-doctor.toml");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    // Discovery passes over what is not a regular file; named with --config it is refused.
    let named = link.to_string_lossy().into_owned();
    let out = doctor(
        &root,
        &["check", "--config", &named, "--facts", &facts("h100")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not a regular file"),
        "{}",
        text(&out.stderr)
    );
}
