//! Tests of the rule engine as a whole: load errors with exact positions, run-time failures,
//! every built-in rule on hand-built facts (each must fire on its case and stay quiet on a
//! healthy machine), and the generated reference.

use super::eval::{evaluate_with, Inputs};
use super::*;
use crate::facts::python::{
    EditorInterpreter, LiveLlama, LiveProbe, LiveTorch, LiveTorchDevice, LlamaCppFacts, PythonEnv,
    PyvenvCfg, TorchFacts, VersionMismatch,
};
use crate::facts::{
    CudaDevice, Ecc, Facts, Gpu, GpuMemory, GpuProcess, KernelCheck, PciGpu, ProbeOutcome,
    ProbeStatus, Toolkit,
};
use crate::knowledge::derive::{
    python_derived, venv_views, Derived, GpuView, ToolkitVariable, ToolkitView, Visibility,
};

// ---------------------------------------------------------------------------------------------
// Load errors

fn load_err(text: &str) -> String {
    let mut set = RuleSet::empty();
    match set.load_str("rules/test.toml", text) {
        Ok(()) => panic!("expected a load error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// A valid rule with `extra` lines appended; `when` replaced when given.
fn rule_with(when: &str, extra: &str) -> String {
    format!(
        "[[rule]]\nid = \"test-rule\"\ncategory = \"host\"\nseverity = \"warn\"\nsince = \"0.1.0\"\nwhen = {when}\ntitle = \"t\"\nexplain = \"e\"\n{extra}"
    )
}

#[test]
fn a_valid_user_rule_loads() {
    let mut set = RuleSet::empty();
    set.load_str("mine.toml", &rule_with("\"host.os == 'linux'\"", ""))
        .unwrap();
    let rule = set.get("test-rule").unwrap();
    assert_eq!(
        (rule.scope, rule.severity, rule.category),
        (Scope::Host, Severity::Warn, Category::Host)
    );
    assert_eq!((rule.source.as_str(), rule.line), ("mine.toml", 2));
}

#[test]
fn toml_syntax_errors_point_at_the_line() {
    let err = load_err("[[rule]]\nid = \"unterminated\nwhen = 1\n");
    assert!(err.starts_with("rules/test.toml:2:"), "{err}");
    assert!(err.contains("error: invalid TOML"), "{err}");
}

#[test]
fn unknown_keys_are_named_with_a_suggestion() {
    let err = load_err(&rule_with("\"true\"", "severty = \"x\"\n"));
    assert!(
        err.starts_with(
            "rules/test.toml:9:1: error: unknown key `severty` in a rule; did you mean `severity`?"
        ),
        "{err}"
    );
    let err = load_err(&rule_with("\"true\"", "fix.bsh = \"x\"\n"));
    assert!(
        err.starts_with("rules/test.toml:9:5: error: unknown key `fix.bsh`; did you mean `bash`?"),
        "{err}"
    );
}

#[test]
fn bad_values_list_the_allowed_ones() {
    let text = rule_with("\"true\"", "").replace("severity = \"warn\"", "severity = \"fatal\"");
    let err = load_err(&text);
    assert!(
        err.starts_with("rules/test.toml:4:12: error: unknown severity \"fatal\"; expected one of: error, warn, info"),
        "{err}"
    );
    let err = load_err(&rule_with("\"true\"", "scope = \"gpus\"\n"));
    assert!(
        err.contains("rules/test.toml:9:9: error: unknown scope \"gpus\"; did you mean `gpu`?"),
        "{err}"
    );
    let err = load_err(&rule_with("\"true\"", "").replace("\"host\"", "\"network\""));
    assert!(err.contains("unknown category \"network\""), "{err}");
    assert!(
        err.contains("expected one of: host, driver, gpu, cuda, toolkit, python, llama, probe"),
        "{err}"
    );
}

#[test]
fn missing_keys_and_bad_ids_are_reported() {
    let err = load_err("[[rule]]\nid = \"Bad_Id\"\n");
    assert!(
        err.contains("rules/test.toml:2:6: error: rule id \"Bad_Id\" is not kebab-case"),
        "{err}"
    );
    let expected = "rules/test.toml:1:1: error: missing required keys in this rule: \
                    category, severity, since, when, title, explain";
    assert!(err.contains(expected), "{err}");
}

#[test]
fn cel_syntax_errors_point_inside_the_expression() {
    // `when = "host.os == && true"`: the `&&` is at column 20 of line 6.
    let err = load_err(&rule_with("\"host.os == && true\"", ""));
    assert!(
        err.starts_with("rules/test.toml:6:20: error: invalid condition: Syntax error"),
        "{err}"
    );
    // In a multi-line literal string, the second line of the expression.
    let err = load_err(&rule_with(
        "'''\nhost.os == 'linux' &&\n  driver.gpu_count >'''",
        "",
    ));
    assert!(
        err.starts_with("rules/test.toml:8:21: error: invalid condition"),
        "{err}"
    );
    // Escapes in a basic string shift the columns; the mapping follows them.
    let err = load_err(&rule_with("\"host.os == \\\"x\\\" && && 1\"", ""));
    assert!(
        err.starts_with("rules/test.toml:6:29: error: invalid condition"),
        "{err}"
    );
}

#[test]
fn unknown_fact_paths_are_load_errors_with_a_suggestion() {
    let err = load_err(&rule_with("\"driver.gpu_cout > 0\"", ""));
    assert!(
        err.starts_with("rules/test.toml:6:16: error: unknown fact `driver.gpu_cout`; did you mean `gpu_count`?"),
        "{err}"
    );
    let err = load_err(&rule_with(
        "\"driver.gpus.exists(g, g.name == 'x') && host.env.cuda_visble_devices == ''\"",
        "",
    ));
    assert!(
        err.contains(
            "unknown fact `host.env.cuda_visble_devices`; did you mean `cuda_visible_devices`?"
        ),
        "{err}"
    );
    assert!(err.starts_with("rules/test.toml:6:58:"), "{err}");
    // In templates too, through arrays.
    let text = rule_with("\"true\"", "").replace(
        "title = \"t\"",
        "title = \"pids {driver.gpus.processes.pidd}\"",
    );
    let err = load_err(&text);
    assert!(
        err.starts_with("rules/test.toml:7:38: error: unknown fact `driver.gpus.processes.pidd`"),
        "{err}"
    );
}

#[test]
fn variables_must_be_bound_in_the_rules_scope() {
    let err = load_err(&rule_with("\"gpu.index == 0\"", ""));
    assert!(
        err.starts_with("rules/test.toml:6:9: error: unknown variable `gpu` for scope \"host\""),
        "{err}"
    );
    assert!(
        err.contains("bound only in rules with scope = \"gpu\""),
        "{err}"
    );
    let err = load_err(&rule_with("\"hots.os == 'linux'\"", ""));
    assert!(err.contains("unknown variable `hots`"), "{err}");
    assert!(err.contains("did you mean `host`?"), "{err}");
    // Comprehension variables are not roots.
    let mut set = RuleSet::empty();
    set.load_str(
        "x.toml",
        &rule_with("\"driver.gpus.exists(d, d.index == 0)\"", ""),
    )
    .unwrap();
}

#[test]
fn templates_are_checked() {
    let text = rule_with(
        "\"true\"",
        "evidence = [\"a {driver.dev_nodes}\", \"b {oops\"]\n",
    );
    let err = load_err(&text);
    assert!(
        err.contains("rules/test.toml:9:17: error: `driver.dev_nodes` is a group of facts"),
        "{err}"
    );
    assert!(
        err.contains("rules/test.toml:9:40: error: `{` is never closed"),
        "{err}"
    );
}

#[test]
fn every_error_of_a_file_is_reported_in_order() {
    let text = format!(
        "{}\n{}",
        rule_with("\"driver.gpu_cout > 0\"", ""),
        rule_with("\"host.os == \"", "")
    );
    let err = load_err(&text);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("rules/test.toml:"))
        .collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines[0].starts_with("rules/test.toml:6:16:"), "{err}");
    assert!(
        lines[1].starts_with("rules/test.toml:11:6: error: duplicate rule id `test-rule`"),
        "{err}"
    );
    assert!(
        lines[2].starts_with("rules/test.toml:15:20: error: invalid condition"),
        "{err}"
    );
    assert!(
        lines[1].contains("duplicate rule id `test-rule`: already used at rules/test.toml:2"),
        "{err}"
    );
    assert!(err.ends_with("3 errors"), "{err}");
}

/// `caused_by` names rules that exist; a typo would leave a consequence counted on its own.
#[test]
fn caused_by_names_loaded_rules() {
    let mut set = RuleSet::builtin().unwrap();
    let typo = rule_with(
        "\"false\"",
        "caused_by = [\"cuda-visible-devices-hide-all\"]\n",
    );
    let err = set.load_str("mine.toml", &typo).unwrap_err().to_string();
    assert!(
        err.contains(
            "mine.toml:9:14: error: `caused_by` names no loaded rule: `cuda-visible-devices-hide-all`; did you mean `cuda-visible-devices-hides-all`?"
        ),
        "{err}"
    );
    let itself = rule_with("\"false\"", "caused_by = [\"test-rule\"]\n");
    let err = set.load_str("mine.toml", &itself).unwrap_err().to_string();
    assert!(
        err.contains("rule `test-rule` cannot be caused by itself"),
        "{err}"
    );
    let err = load_err(&rule_with("\"false\"", "caused_by = \"gpu-throttled\"\n"));
    assert!(err.contains("`caused_by` must be"), "{err}");
    let good = rule_with("\"false\"", "caused_by = [\"gpu-throttled\"]\n");
    set.load_str("mine.toml", &good).unwrap();
    assert_eq!(set.get("test-rule").unwrap().caused_by, ["gpu-throttled"]);
}

/// Findings of a rule with `caused_by` move under the finding of their cause (the same
/// environment's, when the cause is about one), and only causes are counted.
#[test]
fn consequences_move_under_their_cause() {
    let mut set = RuleSet::builtin().unwrap();
    let rules = format!(
        "{}\n{}",
        rule_with("\"true\"", "").replace("test-rule", "cause-rule"),
        rule_with("\"true\"", "caused_by = [\"cause-rule\"]\n").replace("test-rule", "effect-rule")
    );
    set.load_str("mine.toml", &rules).unwrap();
    let finding = |rule: &str, env: Option<&str>| Finding {
        rule: rule.into(),
        severity: Severity::Error,
        category: "python".into(),
        scope: "venv".into(),
        subject: env.map(|e| format!("environment {e}")),
        title: rule.into(),
        explain: String::new(),
        evidence: Vec::new(),
        fix: None,
        consequences: Vec::new(),
        environment: env.map(str::to_string),
    };
    let grouped = crate::rules::group_by_cause(
        &set,
        vec![
            finding("effect-rule", Some(".venv")),
            finding("cause-rule", Some(".venv-b")),
            finding("effect-rule", Some(".venv-b")),
            finding("cause-rule", Some(".venv")),
            finding("effect-rule", None),
        ],
    );
    let shape: Vec<(String, Option<String>, Vec<Option<String>>)> = grouped
        .iter()
        .map(|f| {
            (
                f.rule.clone(),
                f.environment.clone(),
                f.consequences
                    .iter()
                    .map(|c| c.environment.clone())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (
                "cause-rule".to_string(),
                Some(".venv-b".to_string()),
                vec![Some(".venv-b".to_string())]
            ),
            (
                "cause-rule".to_string(),
                Some(".venv".to_string()),
                vec![Some(".venv".to_string())]
            ),
            // A machine-wide finding is not caused by one environment's problem.
            ("effect-rule".to_string(), None, vec![]),
        ]
    );
    // The exit code still weighs a consequence more severe than its cause.
    let mut mild = finding("cause-rule", None);
    mild.severity = Severity::Info;
    let grouped =
        crate::rules::group_by_cause(&set, vec![mild, finding("effect-rule", Some(".venv"))]);
    assert_eq!(grouped.len(), 1);
    let verdict = crate::report::Verdict::new(&grouped, crate::cli::FailOn::Error);
    assert_eq!((verdict.errors, verdict.exit_code), (0, 1));
}

#[test]
fn user_rules_replace_builtin_ones_only_when_they_say_so() {
    let mut set = RuleSet::builtin().unwrap();
    let replacing = rule_with("\"false\"", "").replace("test-rule", "gpu-throttled");
    let err = set
        .load_str("mine.toml", &replacing)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rule id `gpu-throttled` is already defined at rules/core.toml:"),
        "{err}"
    );
    assert!(err.contains("add `override = true`"), "{err}");
    let count = set.rules().len();
    set.load_str("mine.toml", &format!("{replacing}override = true\n"))
        .unwrap();
    assert_eq!(set.rules().len(), count);
    assert_eq!(set.get("gpu-throttled").unwrap().source, "mine.toml");
    let err = set
        .load_str(
            "mine.toml",
            &rule_with("\"false\"", "override = true\n").replace("test-rule", "no-such-rule"),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`override = true`, but no loaded rule has the id `no-such-rule`"),
        "{err}"
    );
}

#[test]
fn unreadable_files_are_load_errors() {
    let mut set = RuleSet::empty();
    let err = set
        .load_file(std::path::Path::new("/nonexistent/rules.toml"))
        .unwrap_err();
    assert!(err
        .to_string()
        .starts_with("/nonexistent/rules.toml:1:1: error: cannot read the rule file"));
}

// ---------------------------------------------------------------------------------------------
// Facts for the built-in rules

fn probe(status: ProbeStatus) -> ProbeOutcome {
    ProbeOutcome {
        status,
        error: None,
        duration_ms: 3.0,
        deadline_ms: 10_000,
    }
}

fn h100(index: u32) -> Gpu {
    Gpu {
        index,
        name: "NVIDIA H100 80GB HBM3".into(),
        uuid: format!("GPU-0000000{index}-aaaa-bbbb-cccc-dddddddddddd"),
        pci_bus_id: format!("0000:0{index}:00.0"),
        compute_capability: "9.0".into(),
        cc_major: 9,
        architecture: "Hopper".into(),
        memory: GpuMemory {
            total_mib: 81559,
            used_mib: 1024,
            free_mib: 80535,
            used_percent: 1.3,
        },
        persistence_mode: Some(true),
        compute_mode: Some("default".into()),
        mig_enabled: Some(false),
        ecc: Ecc {
            enabled: Some(true),
            volatile_uncorrected: Some(0),
            aggregate_uncorrected: Some(0),
            retired_pages_double_bit: Some(0),
            retired_pages_single_bit: Some(0),
            retired_pages_pending: Some(false),
            remapped_rows_uncorrectable: Some(0),
            remapping_pending: Some(false),
            remapping_failed: Some(false),
        },
        throttle_reasons: vec!["gpu_idle".into()],
        temperature_c: Some(33),
        ..Gpu::default()
    }
}

/// A project environment where torch 2.11.0+cu130 and a CUDA llama-cpp-python 0.3.30 both
/// work on the H100, as the live probe saw them.
fn healthy_env(name: &str) -> PythonEnv {
    let path = format!("/srv/proj/{name}");
    let site = format!("{path}/lib/python3.12/site-packages");
    let libs = [
        "libggml-base.so",
        "libggml-cpu.so",
        "libggml-cuda.so",
        "libggml.so",
        "libllama.so",
    ];
    PythonEnv {
        name: name.into(),
        canonical_path: Some(path.clone()),
        exists: true,
        kind: "venv".into(),
        layout: "posix".into(),
        found_by: vec!["project".into()],
        inside_project: true,
        python: format!("{path}/bin/python"),
        python_exists: true,
        python_version: Some("3.12.3".into()),
        python_version_source: Some("pyvenv.cfg".into()),
        pyvenv_cfg: Some(PyvenvCfg {
            home: Some("/usr/bin".into()),
            version: Some("3.12.3".into()),
            ..PyvenvCfg::default()
        }),
        base_python: Some("/usr/bin/python3".into()),
        base_python_exists: Some(true),
        site_packages: Some(site.clone()),
        site_packages_exists: true,
        torch: TorchFacts {
            installed: true,
            version: Some("2.11.0+cu130".into()),
            dist_version: Some("2.11.0".into()),
            local_tag: Some("cu130".into()),
            cuda: Some("13.0".into()),
            cuda_version: Some("13.0".into()),
            cuda_major: Some(13),
            cuda_build: true,
            cuda_library: true,
            version_file: Some(format!("{site}/torch/version.py")),
            ..TorchFacts::default()
        },
        llama_cpp: LlamaCppFacts {
            installed: true,
            version: Some("0.3.30".into()),
            lib_dir: Some(format!("{site}/llama_cpp/lib")),
            lib_files: libs.iter().map(|l| l.to_string()).collect(),
            backends: vec!["cpu".into(), "cuda".into()],
            gpu_backends: vec!["cuda".into()],
            cuda_backend: true,
            cuda_library: Some("libggml-cuda.so".into()),
            cuda_needed: vec![
                "libcudart.so.13".into(),
                "libcublas.so.13".into(),
                "libcuda.so.1".into(),
            ],
            cuda_runtime_major: Some(13),
            ..LlamaCppFacts::default()
        },
        live: Some(LiveProbe {
            status: "ok".into(),
            python_version: Some("3.12.3".into()),
            torch: LiveTorch {
                attempted: true,
                import_ok: true,
                version: Some("2.11.0+cu130".into()),
                cuda: Some("13.0".into()),
                cuda_available: Some(true),
                device_count: 1,
                devices: vec![LiveTorchDevice {
                    index: 0,
                    name: "NVIDIA H100 80GB HBM3".into(),
                    capability: "9.0".into(),
                    tensor_ok: true,
                    tensor_error: None,
                }],
                arch_list: ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]
                    .iter()
                    .map(|a| a.to_string())
                    .collect(),
                ..LiveTorch::default()
            },
            llama_cpp: LiveLlama {
                attempted: true,
                import_ok: true,
                version: Some("0.3.30".into()),
                supports_gpu_offload: Some(true),
                backends: vec!["CUDA".into(), "CPU".into()],
                ..LiveLlama::default()
            },
            ..LiveProbe::default()
        }),
        path,
        ..PythonEnv::default()
    }
}

/// A Linux machine with one H100, driver 580 and CUDA 13.0, where nothing is wrong, and a
/// project whose active environment runs torch and llama-cpp-python on the GPU.
fn healthy() -> Facts {
    let mut f = Facts::empty("full");
    for name in ["host", "driver", "cuda", "toolkits", "python"] {
        f.probes.insert(name.into(), probe(ProbeStatus::Ok));
    }
    f.host.os = "linux".into();
    f.host.arch = "x86_64".into();
    f.host.pci_gpus = vec![PciGpu {
        bus_id: "0000:00:06.0".into(),
        device_id: "0x2330".into(),
        kernel_driver: Some("nvidia".into()),
    }];
    let d = &mut f.driver;
    d.library_found = true;
    d.library = "libnvidia-ml.so.1".into();
    d.library_path = Some("/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1".into());
    d.version = Some("580.95.05".into());
    d.cuda_version = Some("13.0".into());
    d.kernel_module.loaded = true;
    d.kernel_module.version = Some("580.95.05".into());
    d.dev_nodes.nvidiactl = true;
    d.dev_nodes.nvidia_uvm = true;
    d.dev_nodes.nvidia_uvm_tools = true;
    d.dev_nodes.gpus = vec![0];
    d.gpu_count = 1;
    d.gpus = vec![h100(0)];
    let c = &mut f.cuda;
    c.library_found = true;
    c.init_result = Some("CUDA_SUCCESS".into());
    c.init_message = Some("no error".into());
    c.driver_api_version = Some("13.0".into());
    c.device_count = 1;
    c.nvrtc.library_found = true;
    c.devices = vec![CudaDevice {
        ordinal: 0,
        name: "NVIDIA H100 80GB HBM3".into(),
        compute_capability: "9.0".into(),
        total_mib: 81559,
        context_ok: true,
        kernel: Some(KernelCheck {
            compiled: true,
            launched: true,
            verified: true,
            ..KernelCheck::default()
        }),
        ..CudaDevice::default()
    }];
    f.toolkits.installs = vec![Toolkit {
        root: "/usr/local/cuda-13.0".into(),
        version: Some("13.0.2".into()),
        version_short: Some("13.0".into()),
        major: Some(13),
        found_by: vec!["path".into()],
        ..Toolkit::default()
    }];
    f.toolkits.path_root = Some("/usr/local/cuda-13.0".into());
    f.toolkits.path_nvcc = Some("/usr/local/cuda-13.0/bin/nvcc".into());
    f.toolkits.path_version = Some("13.0".into());
    f.toolkits.installs[0].nvcc = Some("/usr/local/cuda-13.0/bin/nvcc".into());
    let lib = "/usr/local/cuda-13.0/targets/x86_64-linux/lib";
    f.toolkits.loader.resolved = [
        (
            "libcudart.so.13".to_string(),
            format!("{lib}/libcudart.so.13"),
        ),
        (
            "libcublas.so.13".to_string(),
            format!("{lib}/libcublas.so.13"),
        ),
    ]
    .into();
    f.toolkits.loader.missing = ["libcudart.so.12", "libcudart.so.11.0", "libcublas.so.12"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut env = healthy_env(".venv");
    env.active = true;
    f.python.project_dir = Some("/srv/proj".into());
    f.python.active = Some(".venv".into());
    f.python.environments = vec![env];
    f
}

/// Derived values and views as the knowledge module would compute them for a healthy machine,
/// built by hand so that these tests check the rules, not the knowledge tables. The Python
/// environment views are computed from the facts and these values (they are what the Python
/// rules compare), before a case's input edit changes anything.
fn inputs_for(facts: &Facts) -> Inputs {
    let n = facts.driver.gpus.len() as u32;
    let mut derived = Derived {
        driver_version: facts.driver.version.clone(),
        driver_branch: Some(580),
        driver_max_cuda: facts.driver.cuda_version.clone(),
        driver_max_cuda_source: Some("nvml".into()),
        visibility: Visibility {
            physical_gpus: n,
            cuda_visible_gpus: n,
            ..Visibility::default()
        },
        toolkit_versions: vec!["13.0".into()],
        python: Default::default(),
        toolkit_variables_broken: Vec::new(),
        toolkit_variables_too_new: Vec::new(),
    };
    let venvs = venv_views(facts, &derived);
    derived.python = python_derived(facts, &venvs);
    let gpus = facts
        .driver
        .gpus
        .iter()
        .map(|g| GpuView {
            gpu: g.clone(),
            cuda_visible: true,
            cuda_ordinal: Some(g.index),
            ..GpuView::default()
        })
        .collect();
    let toolkits = facts
        .toolkits
        .installs
        .iter()
        .map(|t| ToolkitView {
            toolkit: t.clone(),
            min_driver_for_major: Some("580.65.06".into()),
            toolkit_driver: Some("580.95.05".into()),
            driver_runs_programs: Some(true),
            driver_meets_toolkit: Some(true),
            selected_by: vec!["path".into()],
        })
        .collect();
    Inputs {
        derived,
        gpus,
        toolkits,
        venvs,
    }
}

fn builtin() -> RuleSet {
    RuleSet::builtin().unwrap_or_else(|e| panic!("built-in rules do not load:\n{e}"))
}

fn run(facts: &Facts, inputs: &Inputs) -> Vec<Finding> {
    evaluate_with(&builtin(), facts, inputs)
}

type FactsEdit = fn(&mut Facts);
type InputsEdit = fn(&mut Inputs);

fn no_input_change(_: &mut Inputs) {}

/// One case per built-in rule: how to break the healthy machine so that it fires.
fn cases() -> Vec<(&'static str, FactsEdit, InputsEdit)> {
    fn cuda_init(f: &mut Facts, result: &str) {
        f.cuda.init_result = Some(result.into());
        f.cuda.init_message = Some("message".into());
        f.cuda.devices.clear();
        f.probes.insert("cuda".into(), probe(ProbeStatus::Failed));
    }
    fn no_library(f: &mut Facts) {
        f.driver = crate::facts::DriverFacts {
            library: "libnvidia-ml.so.1".into(),
            library_search: vec!["/usr/lib/x86_64-linux-gnu".into(), "/usr/lib64".into()],
            ..Default::default()
        };
        f.probes.insert("driver".into(), probe(ProbeStatus::Absent));
    }
    let mut cases: Vec<(&'static str, FactsEdit, InputsEdit)> = vec![
        (
            "macos-has-no-cuda",
            |f| f.host.os = "macos".into(),
            no_input_change,
        ),
        (
            "nvidia-visible-devices-none",
            |f| {
                f.host.container = true;
                f.host.env.nvidia_visible_devices = Some("none".into());
            },
            |i| i.derived.visibility.nvidia_hides_all = true,
        ),
        ("nvidia-gpu-without-driver", no_library, no_input_change),
        (
            "container-without-nvidia-driver",
            |f| {
                no_library(f);
                f.host.container = true;
            },
            no_input_change,
        ),
        (
            "wsl2-without-nvidia-driver",
            |f| {
                no_library(f);
                f.host.wsl2 = true;
                f.host.pci_gpus.clear();
            },
            no_input_change,
        ),
        (
            "no-nvidia-driver",
            |f| {
                no_library(f);
                f.host.pci_gpus.clear();
            },
            no_input_change,
        ),
        (
            "nvml-driver-not-loaded",
            |f| {
                f.driver.init_error = Some("DriverNotLoaded".into());
                f.driver.kernel_module.loaded = false;
                f.probes.insert("driver".into(), probe(ProbeStatus::Failed));
            },
            no_input_change,
        ),
        (
            "driver-library-mismatch",
            |f| {
                f.driver.version_mismatch = true;
                f.driver.init_error = Some("LibRmVersionMismatch".into());
                f.probes.insert("driver".into(), probe(ProbeStatus::Failed));
            },
            no_input_change,
        ),
        (
            "nvidia-uvm-missing",
            |f| f.driver.dev_nodes.nvidia_uvm = false,
            no_input_change,
        ),
        (
            "dev-nodes-not-accessible",
            |f| {
                f.driver.dev_nodes.not_accessible =
                    vec!["/dev/nvidia0".into(), "/dev/nvidia-uvm".into()]
            },
            no_input_change,
        ),
        (
            "compute-mode-prohibited",
            |f| f.driver.gpus[0].compute_mode = Some("prohibited".into()),
            no_input_change,
        ),
        (
            "compute-mode-exclusive-busy",
            |f| {
                let g = &mut f.driver.gpus[0];
                g.compute_mode = Some("exclusive_process".into());
                g.processes = vec![GpuProcess {
                    pid: 4242,
                    name: Some("python".into()),
                    used_mib: Some(900),
                    kind: "compute".into(),
                }];
            },
            no_input_change,
        ),
        (
            "ecc-errors",
            |f| f.driver.gpus[0].ecc.volatile_uncorrected = Some(2),
            no_input_change,
        ),
        (
            "gpu-memory-almost-full",
            |f| {
                let g = &mut f.driver.gpus[0];
                g.memory = GpuMemory {
                    total_mib: 81559,
                    used_mib: 79000,
                    free_mib: 2559,
                    used_percent: 96.86,
                };
                g.processes = vec![
                    GpuProcess {
                        pid: 11,
                        name: Some("python".into()),
                        used_mib: Some(40000),
                        kind: "compute".into(),
                    },
                    GpuProcess {
                        pid: 12,
                        name: None,
                        used_mib: Some(39000),
                        kind: "compute".into(),
                    },
                ];
            },
            no_input_change,
        ),
        (
            "gpu-throttled",
            |f| f.driver.gpus[0].throttle_reasons = vec!["hw_thermal_slowdown".into()],
            no_input_change,
        ),
        (
            "persistence-mode-off",
            |f| f.driver.gpus[0].persistence_mode = Some(false),
            no_input_change,
        ),
        (
            "cuda-visible-devices-hides-all",
            |f| f.host.env.cuda_visible_devices = Some(String::new()),
            |i| {
                i.derived.visibility.cuda_hides_all = true;
                i.derived.visibility.cuda_visible_gpus = 0;
            },
        ),
        (
            "cuda-visible-devices-hides-some",
            |f| {
                f.driver.gpus.push(h100(1));
                f.host.env.cuda_visible_devices = Some("0".into());
            },
            |i| {
                i.derived.visibility.cuda_hides_some = true;
                i.derived.visibility.cuda_hidden_indices = vec![1];
                i.derived.visibility.cuda_visible_gpus = 1;
            },
        ),
        (
            "cuda-visible-devices-invalid-entry",
            |f| f.host.env.cuda_visible_devices = Some("0,7,1".into()),
            |i| {
                i.derived.visibility.cuda_invalid_entries = vec!["7".into()];
                i.derived.visibility.cuda_ignored_entries = vec!["1".into()];
            },
        ),
        (
            "cuda-init-no-device",
            |f| cuda_init(f, "CUDA_ERROR_NO_DEVICE"),
            no_input_change,
        ),
        (
            "cuda-init-insufficient-driver",
            |f| cuda_init(f, "CUDA_ERROR_INSUFFICIENT_DRIVER"),
            no_input_change,
        ),
        (
            "cuda-init-stub-library",
            |f| cuda_init(f, "CUDA_ERROR_STUB_LIBRARY"),
            no_input_change,
        ),
        (
            "cuda-init-system-driver-mismatch",
            |f| cuda_init(f, "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH"),
            no_input_change,
        ),
        (
            "cuda-init-compat-not-supported",
            |f| cuda_init(f, "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE"),
            no_input_change,
        ),
        (
            "cuda-init-unknown",
            |f| cuda_init(f, "CUDA_ERROR_UNKNOWN"),
            no_input_change,
        ),
        (
            "cuda-init-operating-system",
            |f| cuda_init(f, "CUDA_ERROR_OPERATING_SYSTEM"),
            no_input_change,
        ),
        (
            "cuda-init-devices-unavailable",
            |f| cuda_init(f, "CUDA_ERROR_DEVICES_UNAVAILABLE"),
            no_input_change,
        ),
        (
            "cuda-init-invalid-device",
            |f| cuda_init(f, "CUDA_ERROR_INVALID_DEVICE"),
            no_input_change,
        ),
        (
            "cuda-init-failed",
            |f| cuda_init(f, "CUDA_ERROR_ILLEGAL_STATE"),
            no_input_change,
        ),
        (
            "cuda-context-failed",
            |f| {
                let d = &mut f.cuda.devices[0];
                d.context_ok = false;
                d.context_error = Some("CUDA_ERROR_OUT_OF_MEMORY".into());
                // The kernel check fails too without a context: only the cause is reported.
                d.kernel = Some(KernelCheck {
                    error: Some("no context".into()),
                    ..KernelCheck::default()
                });
            },
            no_input_change,
        ),
        (
            "cuda-kernel-failed",
            |f| {
                let k = f.cuda.devices[0].kernel.as_mut().unwrap();
                k.verified = false;
                k.error = Some("element 17: expected 34, got 0".into());
            },
            no_input_change,
        ),
        (
            "cuda-kernel-check-skipped",
            |f| {
                f.cuda.nvrtc.library_found = false;
                let k = f.cuda.devices[0].kernel.as_mut().unwrap();
                *k = KernelCheck {
                    error: Some("libnvrtc not found".into()),
                    ..KernelCheck::default()
                };
            },
            no_input_change,
        ),
        (
            "driver-too-old-for-toolkit",
            |f| f.driver.version = Some("535.104.05".into()),
            |i| {
                i.derived.driver_version = Some("535.104.05".into());
                i.derived.driver_max_cuda = Some("12.2".into());
                i.toolkits[0].driver_runs_programs = Some(false);
                i.toolkits[0].driver_meets_toolkit = Some(false);
            },
        ),
        (
            "toolkit-driver-older-than-toolkit-release",
            |_| {},
            |i| i.toolkits[0].driver_meets_toolkit = Some(false),
        ),
        (
            "toolkit-selectors-disagree",
            |f| {
                f.toolkits.selectors_disagree = true;
                f.host.env.cuda_home = Some("/usr/local/cuda-12.4".into());
                f.toolkits.cuda_home_version = Some("12.4".into());
                f.toolkits.path_root = Some("/opt/cuda 13.0".into());
            },
            no_input_change,
        ),
        (
            "probe-crashed",
            |f| {
                let mut o = probe(ProbeStatus::Crashed);
                o.error = Some("index out of bounds".into());
                f.probes.insert("toolkits".into(), o);
            },
            no_input_change,
        ),
        (
            "probe-timed-out",
            |f| {
                f.probes.insert("cuda".into(), probe(ProbeStatus::TimedOut));
            },
            no_input_change,
        ),
        (
            "probe-failed",
            |f| {
                let mut o = probe(ProbeStatus::Failed);
                o.error = Some("NVML could not start (NoPermission)".into());
                f.driver.init_error = Some("NoPermission".into());
                f.probes.insert("driver".into(), o);
            },
            no_input_change,
        ),
    ];
    cases.extend(python_cases());
    cases
}

/// The environment of the healthy machine, to break.
fn env0(f: &mut Facts) -> &mut PythonEnv {
    &mut f.python.environments[0]
}

fn live0(f: &mut Facts) -> &mut LiveProbe {
    env0(f)
        .live
        .as_mut()
        .expect("the healthy environment has live facts")
}

/// torch 2.5.1+cpu, as `pip install torch` gives on Windows (and the cpu index everywhere).
fn cpu_torch(f: &mut Facts) {
    env0(f).torch = TorchFacts {
        installed: true,
        version: Some("2.5.1+cpu".into()),
        dist_version: Some("2.5.1+cpu".into()),
        local_tag: Some("cpu".into()),
        ..TorchFacts::default()
    };
    let t = &mut live0(f).torch;
    t.version = Some("2.5.1+cpu".into());
    t.cuda = None;
    t.cuda_available = Some(false);
    t.device_count = 0;
    t.devices.clear();
    t.arch_list.clear();
}

/// llama-cpp-python built from the PyPI sdist without CMAKE_ARGS.
fn cpu_llama(f: &mut Facts, version: &str) {
    let l = &mut env0(f).llama_cpp;
    l.version = Some(version.into());
    l.lib_files.retain(|x| !x.contains("cuda"));
    l.backends = vec!["cpu".into()];
    l.gpu_backends.clear();
    l.cuda_backend = false;
    l.cuda_library = None;
    l.cuda_needed.clear();
    l.cuda_runtime_major = None;
    let live = &mut live0(f).llama_cpp;
    live.version = Some(version.into());
    live.supports_gpu_offload = Some(false);
    live.backends = vec!["CPU".into()];
}

/// Python rules: how to break the healthy project so that each fires.
fn python_cases() -> Vec<(&'static str, FactsEdit, InputsEdit)> {
    vec![
        ("torch-cpu-build", cpu_torch, no_input_change),
        (
            "torch-cuda-too-new-for-driver",
            |f| {
                f.driver.version = Some("535.104.05".into());
                f.driver.cuda_version = Some("12.2".into());
                let t = &mut live0(f).torch;
                t.cuda_available = Some(false);
                t.cuda_error = Some(
                    "The NVIDIA driver on your system is too old (found version 12020)".into(),
                );
            },
            no_input_change,
        ),
        (
            "torch-arch-missing",
            |f| {
                // torch 2.0.1+cu117 on Python 3.10: sm_86 cubins do not run on Hopper.
                let e = env0(f);
                e.python_version = Some("3.10.12".into());
                e.torch.version = Some("2.0.1+cu117".into());
                e.torch.local_tag = Some("cu117".into());
                e.torch.cuda = Some("11.7".into());
                e.torch.cuda_version = Some("11.7".into());
                e.torch.cuda_major = Some(11);
                let live = live0(f);
                live.python_version = Some("3.10.12".into());
                let t = &mut live.torch;
                t.version = Some("2.0.1+cu117".into());
                t.cuda = Some("11.7".into());
                t.arch_list = [
                    "sm_37", "sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86",
                ]
                .iter()
                .map(|a| a.to_string())
                .collect();
                t.devices[0].tensor_ok = false;
                t.devices[0].tensor_error = Some(
                    "CUDA error: no kernel image is available for execution on the device".into(),
                );
            },
            no_input_change,
        ),
        (
            "torch-import-fails",
            |f| {
                let t = &mut live0(f).torch;
                t.import_ok = false;
                t.import_error = Some(
                    "OSError: libcudnn.so.9: cannot open shared object file: No such file or directory"
                        .into(),
                );
                t.cuda_available = None;
                t.devices.clear();
                t.arch_list.clear();
            },
            no_input_change,
        ),
        (
            "torch-cuda-unavailable",
            |f| {
                let t = &mut live0(f).torch;
                t.cuda_available = Some(false);
                t.cuda_error = Some("CUDA initialization: CUDA unknown error - this may be due to an incorrectly set up environment".into());
                t.device_count = 0;
                t.devices.clear();
                t.arch_list.clear();
            },
            no_input_change,
        ),
        (
            "llama-cpp-cpu-build",
            |f| cpu_llama(f, "0.3.30"),
            no_input_change,
        ),
        (
            "llama-cpp-cuda-backend-fails",
            |f| {
                let l = &mut env0(f).llama_cpp;
                l.cuda_needed = vec!["libcudart.so.12".into(), "libcublas.so.12".into()];
                l.cuda_runtime_major = Some(12);
                let live = &mut live0(f).llama_cpp;
                live.import_ok = false;
                live.import_error = Some("RuntimeError: Failed to load shared library '/srv/proj/.venv/lib/python3.12/site-packages/llama_cpp/lib/libllama.so': libcudart.so.12: cannot open shared object file: No such file or directory".into());
                live.supports_gpu_offload = None;
                live.backends.clear();
            },
            no_input_change,
        ),
        (
            "python-env-in-use-not-gpu-ready",
            |f| {
                // The shell activated an empty environment; .venv is complete.
                env0(f).active = false;
                let mut empty = healthy_env(".venv-new");
                empty.torch = TorchFacts::default();
                empty.llama_cpp = LlamaCppFacts::default();
                empty.live = None;
                empty.active = true;
                f.python.environments.push(empty);
                f.python.active = Some(".venv-new".into());
            },
            no_input_change,
        ),
        (
            "python-envs-none-complete",
            |f| {
                // torch works in one environment, llama-cpp-python in another.
                let mut llama_only = healthy_env(".venv-llama");
                llama_only.torch = TorchFacts::default();
                if let Some(l) = llama_only.live.as_mut() {
                    l.torch = LiveTorch::default();
                }
                env0(f).llama_cpp = LlamaCppFacts::default();
                live0(f).llama_cpp = LiveLlama::default();
                f.python.environments.push(llama_only);
            },
            no_input_change,
        ),
        (
            "python-no-cuda-wheels",
            |f| {
                // Python 3.13 with llama-cpp-python 0.3.16: CUDA wheels for 3.9-3.12 only.
                cpu_llama(f, "0.3.16");
                env0(f).python_version = Some("3.13.1".into());
                live0(f).python_version = Some("3.13.1".into());
            },
            no_input_change,
        ),
        (
            "editor-interpreter-missing",
            |f| {
                f.python.editor = Some(EditorInterpreter {
                    settings_file: "/home/u/proj/.vscode/settings.json".into(),
                    key: "python.defaultInterpreterPath".into(),
                    value: "${workspaceFolder}/.venv-old/bin/python".into(),
                    resolved: Some("/home/u/proj/.venv-old/bin/python".into()),
                    exists: false,
                    environment: None,
                });
            },
            no_input_change,
        ),
        (
            "venv-base-interpreter-unreadable",
            |f| {
                let e = env0(f);
                e.base_python = Some("/home/other/.pyenv/versions/3.12.3/bin/python3".into());
                e.base_python_exists = None;
                e.base_python_unreadable = Some("Permission denied (os error 13)".into());
                e.live = None; // its interpreter cannot start
            },
            no_input_change,
        ),
        (
            "venv-base-interpreter-missing",
            |f| {
                let e = env0(f);
                e.base_python = Some("/usr/local/bin/python3.12".into());
                e.base_python_exists = Some(false);
                e.live = None; // its interpreter cannot start
            },
            no_input_change,
        ),
        (
            "venv-python-version-changed",
            |f| {
                let e = env0(f);
                e.base_python = Some("/usr/bin/python3".into());
                e.interpreter_version_mismatch = Some(VersionMismatch {
                    pyvenv_cfg: "3.12.3".into(),
                    interpreter: "3.13.1".into(),
                    seen_by: "live".into(),
                    stranded_site_packages: Some(
                        "/srv/proj/.venv/lib/python3.12/site-packages".into(),
                    ),
                });
            },
            no_input_change,
        ),
        (
            "torch-toolkit-major-mismatch",
            |f| {
                f.host.env.cuda_home = Some("/usr/local/cuda-12.4".into());
                f.toolkits.cuda_home_version = Some("12.4".into());
            },
            no_input_change,
        ),
        (
            "ggml-cuda-build-options-at-runtime",
            |f| {
                f.host
                    .env
                    .other
                    .insert("GGML_CUDA_FORCE_MMQ".into(), "1".into());
            },
            no_input_change,
        ),
        (
            "python-live-check-failed",
            |f| {
                let l = live0(f);
                l.status = "crashed".into();
                l.error = Some(
                    "signal 11 (SIGSEGV) while starting; stderr ends with:\n\
                     Fatal Python error: Segmentation fault"
                        .into(),
                );
                l.stage = Some("start".into());
                l.torch = LiveTorch::default();
                l.llama_cpp = LiveLlama::default();
            },
            no_input_change,
        ),
        (
            "python-env-unreadable",
            |f| {
                env0(f).errors.push(
                    "site-packages could not be listed: /srv/proj/.venv/lib/python3.12/\
                     site-packages: Permission denied (os error 13)"
                        .into(),
                )
            },
            no_input_change,
        ),
        (
            "python-discovery-incomplete",
            |f| {
                f.python.errors.push(
                    "could not read the folder /srv/proj/pgdata: Permission denied (os error 13)"
                        .into(),
                )
            },
            no_input_change,
        ),
        (
            "toolkit-unreadable",
            |f| f.toolkits.installs[0].error = Some("nvcc --version: timed out after 3.0 s".into()),
            no_input_change,
        ),
        (
            "toolkit-variable-names-no-toolkit",
            |f| f.host.env.cuda_path = Some("/usr/local/cuda-12.9".into()),
            |i| {
                i.derived.toolkit_variables_broken = vec![ToolkitVariable {
                    name: "CUDA_PATH".into(),
                    value: "/usr/local/cuda-12.9".into(),
                    problem: "missing".into(),
                    why: "CUDA_PATH names /usr/local/cuda-12.9, which does not exist".into(),
                    use_root: Some("/usr/local/cuda-13.0".into()),
                    ps_path: "Env:CUDA_PATH".into(),
                    ..ToolkitVariable::default()
                }]
            },
        ),
        (
            "toolkit-variable-newer-than-driver",
            |f| f.host.env.cuda_path = Some("/usr/local/cuda-13.0".into()),
            |i| {
                i.derived.toolkit_variables_too_new = vec![ToolkitVariable {
                    name: "CUDA_PATH".into(),
                    value: "/usr/local/cuda-13.0".into(),
                    problem: "newer_than_driver".into(),
                    why: "CUDA_PATH names CUDA 13.0 at /usr/local/cuda-13.0, whose programs this driver cannot run".into(),
                    ps_path: "Env:CUDA_PATH".into(),
                    ..ToolkitVariable::default()
                }]
            },
        ),
        // The llama.cpp offload proof (rules/llama.toml): one stack each.
        (
            "llama-layers-on-cpu",
            |f| {
                llama_case(f, |s| {
                    s.system_info = Some("CPU : AVX2 = 1 | ".into());
                    s.backends = vec!["CPU".into()];
                    s.placement = Some(llama_load(0, false));
                })
            },
            no_input_change,
        ),
        (
            "llama-no-gpu-buffers",
            |f| llama_case(f, |s| s.placement = Some(llama_load(3, false))),
            no_input_change,
        ),
        (
            "llama-gpu-slower-than-cpu",
            |f| {
                llama_case(f, |s| {
                    s.speed = Some(crate::facts::llama::SpeedResult {
                        workload: "prompt processing of 512 tokens".into(),
                        prompt_tokens: 512,
                        gpu_ms: Some(400.0),
                        cpu_ms: Some(258.0),
                        gpu_tokens_per_s: Some(1280.0),
                        cpu_tokens_per_s: Some(1984.5),
                        gpu_layers_on_gpu: 3,
                        layers_total: 3,
                        judged: true,
                        ..Default::default()
                    })
                })
            },
            no_input_change,
        ),
        (
            "llama-cuda-arch-missing",
            |f| llama_case(f, |s| s.cuda_archs = vec!["10.0".into(), "12.0".into()]),
            no_input_change,
        ),
        (
            "llama-cuda-backend-fails-to-load",
            |f| {
                llama_case(f, |s| {
                    s.placement = None;
                    s.cuda_backend_load_error = Some(
                        "libcudart.so.12: cannot open shared object file: No such file or directory"
                            .into(),
                    );
                })
            },
            no_input_change,
        ),
        (
            "llama-proof-crashed",
            |f| {
                llama_case(f, |s| {
                    s.status = "crashed".into();
                    s.signal = Some(11);
                    s.error = Some("signal 11 (SIGSEGV) while loading the test model".into());
                    s.placement = None;
                    s.log_tail = vec!["print_info: n_layer_all           = 2".into()];
                })
            },
            no_input_change,
        ),
        (
            "llama-proof-failed",
            |f| {
                llama_case(f, |s| {
                    s.status = "timed_out".into();
                    s.error = Some("timed out after 60.0 s while loading the test model".into());
                    s.placement = None;
                })
            },
            no_input_change,
        ),
        (
            "llama-reference-engine-crashed",
            |f| {
                llama_case(f, |s| {
                    s.kind = "reference".into();
                    s.status = "crashed".into();
                    s.error = Some("killed by signal 6 (SIGABRT)".into());
                    s.placement = None;
                })
            },
            no_input_change,
        ),
        (
            "llama-n-gpu-layers-zero",
            |f| {
                f.offload.config.zero_layer_commands =
                    vec!["llama-server -m m.gguf -ngl 0 (argument -ngl 0)".into()];
            },
            no_input_change,
        ),
    ]
}

/// A healthy llama-cpp-python stack of .venv (3 of 3 layers on CUDA0), changed by `edit`.
fn llama_case(f: &mut Facts, edit: fn(&mut crate::facts::llama::LlamaStack)) {
    let mut stack = crate::facts::llama::LlamaStack {
        kind: "llama-cpp-python".into(),
        name: "llama-cpp-python in .venv".into(),
        environment: Some(".venv".into()),
        status: "ok".into(),
        system_info: Some("CUDA : ARCHS = 900 | CPU : AVX2 = 1 | ".into()),
        backends: vec!["CUDA".into(), "CPU".into()],
        cuda_archs: vec!["9.0".into()],
        gpu_devices: Some(1),
        placement: Some(llama_load(3, true)),
        ..Default::default()
    };
    edit(&mut stack);
    f.probes.insert("offload".into(), probe(ProbeStatus::Ok));
    f.offload.stacks.push(stack);
}

/// A load of the 3-layer test model with `on_gpu` layers on CUDA0, with or without a weight
/// buffer in GPU memory.
fn llama_load(on_gpu: u32, gpu_buffer: bool) -> crate::facts::llama::LoadRun {
    use crate::facts::llama::{BufferSize, LoadRun};
    let device = |i: u32| if i < on_gpu { "CUDA0" } else { "CPU" };
    LoadRun {
        n_gpu_layers: -1,
        layers_requested: 3,
        loaded: true,
        layers_total: 3,
        layer_devices: (0..3).map(|i| device(i).to_string()).collect(),
        layers_on_gpu: on_gpu,
        layers_source: "layer lines".into(),
        devices_used: vec!["CUDA0 (NVIDIA H100 80GB HBM3) (0000:00:06.0) - 80552 MiB free".into()],
        model_buffers: if gpu_buffer {
            vec![BufferSize {
                name: "CUDA0".into(),
                mib: 2.26,
                gpu: true,
            }]
        } else {
            vec![BufferSize {
                name: "CPU_Mapped".into(),
                mib: 2.39,
                gpu: false,
            }]
        },
        gpu_buffers: if gpu_buffer {
            vec!["CUDA0".into()]
        } else {
            vec![]
        },
        evidence: vec!["load_tensors: layer   0 assigned to device CPU, is_swa = 0".into()],
        ..LoadRun::default()
    }
}

/// Rules that rightly fire together with a case's rule: the same broken fact is a problem for
/// both (a driver too old for the toolkit is too old for the environment's torch as well).
fn companions(id: &str) -> &'static [&'static str] {
    match id {
        "driver-too-old-for-toolkit" => &["torch-cuda-too-new-for-driver"],
        "toolkit-selectors-disagree" => &["torch-toolkit-major-mismatch"],
        "python-no-cuda-wheels" => &["llama-cpp-cpu-build"],
        _ => &[],
    }
}

/// Run one case: the findings of the broken machine.
fn case(id: &str) -> Vec<Finding> {
    let (_, edit_facts, edit_inputs) = cases()
        .into_iter()
        .find(|(i, _, _)| *i == id)
        .unwrap_or_else(|| panic!("no case for {id}"));
    let mut facts = healthy();
    edit_facts(&mut facts);
    let mut inputs = inputs_for(&facts);
    edit_inputs(&mut inputs);
    run(&facts, &inputs)
}

fn only<'f>(findings: &'f [Finding], id: &str) -> &'f Finding {
    let hits: Vec<&Finding> = findings.iter().filter(|f| f.rule == id).collect();
    assert_eq!(hits.len(), 1, "{id} should fire once: {findings:#?}");
    hits[0]
}

#[test]
fn a_healthy_machine_has_no_findings() {
    let facts = healthy();
    let findings = run(&facts, &inputs_for(&facts));
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn every_builtin_rule_fires_alone_on_its_case() {
    let ids: Vec<&str> = cases().iter().map(|(id, _, _)| *id).collect();
    for rule in builtin().rules() {
        assert!(
            ids.contains(&rule.id.as_str()),
            "built-in rule {} has no test case in cases()",
            rule.id
        );
    }
    for id in ids {
        // Each case breaks one thing, so exactly its rule fires: no consequence reported next
        // to its cause, no overlapping rules, and no evaluation failures.
        let findings = case(id);
        only(&findings, id);
        let others: Vec<&str> = findings
            .iter()
            .map(|f| f.rule.as_str())
            .filter(|r| *r != id && !companions(id).contains(r))
            .collect();
        assert!(others.is_empty(), "{id} also fired {others:?}");
        for companion in companions(id) {
            only(&findings, companion);
        }
    }
}

#[test]
fn linux_only_rules_stay_quiet_on_windows() {
    let mut facts = healthy();
    facts.host.os = "windows".into();
    facts.host.pci_gpus.clear();
    // Windows has no /proc/driver/nvidia and no /dev/nvidia* nodes.
    facts.driver.kernel_module = Default::default();
    facts.driver.dev_nodes = Default::default();
    facts.driver.gpus[0].persistence_mode = Some(false);
    let findings = run(&facts, &inputs_for(&facts));
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn the_quick_profile_sees_an_unloaded_kernel_module_in_files() {
    // Quick: NVML is found but not loaded, cuda is skipped; /proc/driver/nvidia is missing.
    let mut facts = healthy();
    facts.profile = "quick".into();
    facts.driver.version = None;
    facts.driver.gpus.clear();
    facts.driver.gpu_count = 0;
    facts.driver.kernel_module = Default::default();
    facts.driver.dev_nodes = Default::default();
    facts.cuda = Default::default();
    facts
        .probes
        .insert("cuda".into(), probe(ProbeStatus::Skipped));
    let findings = run(&facts, &inputs_for(&facts));
    let ids: Vec<&str> = findings.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(ids, vec!["nvml-driver-not-loaded"], "{findings:#?}");
    // The same with the module loaded: nothing to say.
    facts.driver.kernel_module.loaded = true;
    facts.driver.dev_nodes.nvidia_uvm = true;
    assert!(run(&facts, &inputs_for(&facts)).is_empty());
}

#[test]
fn root_causes_are_reported_once_not_with_their_consequences() {
    // A driver/library mismatch also fails the driver probe: only the mismatch is reported.
    let findings = case("driver-library-mismatch");
    assert_eq!(
        findings.iter().map(|f| f.rule.as_str()).collect::<Vec<_>>(),
        vec!["driver-library-mismatch"]
    );
    // A failed cuInit fails the cuda probe: only the CUDA rule is reported.
    let findings = case("cuda-init-stub-library");
    assert_eq!(
        findings.iter().map(|f| f.rule.as_str()).collect::<Vec<_>>(),
        vec!["cuda-init-stub-library"]
    );
    // Without /dev/nvidia-uvm, cuInit's 999 is explained by the missing node.
    let mut facts = healthy();
    facts.driver.dev_nodes.nvidia_uvm = false;
    facts.cuda.init_result = Some("CUDA_ERROR_UNKNOWN".into());
    let findings = run(&facts, &inputs_for(&facts));
    assert_eq!(
        findings.iter().map(|f| f.rule.as_str()).collect::<Vec<_>>(),
        vec!["nvidia-uvm-missing"]
    );
}

#[test]
fn no_driver_names_the_library_and_where_it_looked() {
    let findings = case("no-nvidia-driver");
    let f = only(&findings, "no-nvidia-driver");
    assert_eq!(f.title, "no NVIDIA driver: libnvidia-ml.so.1 not found");
    assert_eq!(
        f.evidence[0],
        "searched for libnvidia-ml.so.1 in: /usr/lib/x86_64-linux-gnu, /usr/lib64"
    );
    assert_eq!(
        (f.severity, f.category.as_str(), f.subject.as_deref()),
        (Severity::Error, "driver", None)
    );
    let fix = f.fix.as_ref().unwrap();
    assert!(fix.bash.as_deref().unwrap().contains("ubuntu-drivers"));
    assert!(fix
        .powershell
        .as_deref()
        .unwrap()
        .starts_with("Start-Process"));
    // With a GPU on the bus, the other rule says so, and shows the GPU.
    let findings = case("nvidia-gpu-without-driver");
    let f = only(&findings, "nvidia-gpu-without-driver");
    assert!(f.evidence[0].contains("0000:00:06.0"), "{f:#?}");
    assert!(!findings.iter().any(|f| f.rule == "no-nvidia-driver"));
}

#[test]
fn gpu_findings_name_the_gpu_and_quote_it_into_the_fix() {
    let findings = case("compute-mode-prohibited");
    let f = only(&findings, "compute-mode-prohibited");
    assert_eq!(f.subject.as_deref(), Some("GPU 0 (NVIDIA H100 80GB HBM3)"));
    assert_eq!(f.scope, "gpu");
    let fix = f.fix.as_ref().unwrap();
    assert_eq!(fix.bash.as_deref(), Some("sudo nvidia-smi -i 0 -c DEFAULT"));
    assert_eq!(
        fix.powershell.as_deref(),
        Some("nvidia-smi -i 0 -c DEFAULT")
    );
}

#[test]
fn memory_findings_list_the_processes() {
    let findings = case("gpu-memory-almost-full");
    let f = only(&findings, "gpu-memory-almost-full");
    assert_eq!(f.title, "GPU 0 memory is 96.86% used");
    assert!(
        f.evidence.contains(&"processes (pid): 11, 12".to_string()),
        "{f:#?}"
    );
    assert!(
        f.evidence.contains(&"process names: python".to_string()),
        "{f:#?}"
    );
    assert!(f.fix.is_none());
}

#[test]
fn throttling_ignores_idle_and_power_cap() {
    let mut facts = healthy();
    facts.driver.gpus[0].throttle_reasons = vec!["gpu_idle".into(), "sw_power_cap".into()];
    assert!(run(&facts, &inputs_for(&facts)).is_empty());
}

#[test]
fn selector_fix_quotes_paths_for_each_shell() {
    let findings = case("toolkit-selectors-disagree");
    let f = only(&findings, "toolkit-selectors-disagree");
    let fix = f.fix.as_ref().unwrap();
    assert_eq!(
        fix.bash.as_deref(),
        Some("export CUDA_HOME='/opt/cuda 13.0' CUDA_PATH='/opt/cuda 13.0'")
    );
    assert_eq!(
        fix.powershell.as_deref(),
        Some("$env:CUDA_PATH = '/opt/cuda 13.0'; $env:CUDA_HOME = '/opt/cuda 13.0'")
    );
    // The evidence leaves out the selector that is not set.
    assert_eq!(f.evidence.len(), 2, "{f:#?}");
    assert_eq!(f.evidence[0], "CUDA_HOME=/usr/local/cuda-12.4 (CUDA 12.4)");
    // Without an nvcc on PATH there is no toolkit to point at: no fix rather than a broken one.
    let mut facts = healthy();
    facts.toolkits.selectors_disagree = true;
    facts.toolkits.path_root = None;
    let findings = run(&facts, &inputs_for(&facts));
    assert!(only(&findings, "toolkit-selectors-disagree").fix.is_none());
}

#[test]
fn visibility_findings_show_the_value() {
    let findings = case("cuda-visible-devices-hides-all");
    let f = only(&findings, "cuda-visible-devices-hides-all");
    assert_eq!(f.title, "CUDA_VISIBLE_DEVICES=\"\" hides every GPU");
    assert_eq!(
        f.fix.as_ref().unwrap().powershell.as_deref(),
        Some("Remove-Item Env:CUDA_VISIBLE_DEVICES")
    );
    let findings = case("cuda-visible-devices-hides-some");
    let f = only(&findings, "cuda-visible-devices-hides-some");
    assert_eq!(f.title, "CUDA_VISIBLE_DEVICES=\"0\" hides GPU 1");
    assert_eq!(f.severity, Severity::Info);
}

#[test]
fn toolkit_and_probe_findings_have_subjects() {
    let findings = case("driver-too-old-for-toolkit");
    let f = only(&findings, "driver-too-old-for-toolkit");
    assert_eq!(f.subject.as_deref(), Some("toolkit /usr/local/cuda-13.0"));
    assert_eq!(
        f.title,
        "driver 535.104.05 is too old for CUDA 13.0.2 (/usr/local/cuda-13.0)"
    );
    let findings = case("probe-timed-out");
    let f = only(&findings, "probe-timed-out");
    assert_eq!(f.subject.as_deref(), Some("probe cuda"));
    assert_eq!(f.title, "the cuda probe did not finish within 10000 ms");
}

#[test]
fn findings_are_sorted_by_severity_category_rule_and_item() {
    let mut facts = healthy();
    facts.driver.gpus.push(h100(1));
    facts.driver.gpus.push(h100(10));
    for g in &mut facts.driver.gpus {
        g.persistence_mode = Some(false);
        g.throttle_reasons = vec!["hw_slowdown".into()];
    }
    facts.driver.gpus[2].index = 2;
    facts.driver.dev_nodes.nvidia_uvm = false;
    facts
        .probes
        .insert("toolkits".into(), probe(ProbeStatus::Crashed));
    let findings = run(&facts, &inputs_for(&facts));
    let order: Vec<(&str, Option<&str>)> = findings
        .iter()
        .map(|f| (f.rule.as_str(), f.subject.as_deref()))
        .collect();
    let gpu = |i: u32| format!("GPU {i} (NVIDIA H100 80GB HBM3)");
    let (g0, g1, g2) = (gpu(0), gpu(1), gpu(2));
    assert_eq!(
        order,
        vec![
            ("nvidia-uvm-missing", None),
            ("probe-crashed", Some("probe toolkits")),
            ("gpu-throttled", Some(g0.as_str())),
            ("gpu-throttled", Some(g1.as_str())),
            ("gpu-throttled", Some(g2.as_str())),
            ("persistence-mode-off", Some(g0.as_str())),
            ("persistence-mode-off", Some(g1.as_str())),
            ("persistence-mode-off", Some(g2.as_str())),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Run-time failures

#[test]
fn a_rule_that_fails_at_run_time_becomes_a_finding_and_others_still_run() {
    let mut set = builtin();
    let text = "[[rule]]\nid = \"needs-a-probe\"\ncategory = \"host\"\nseverity = \"info\"\nsince = \"0.1.0\"\n\
                when = \"probes.nvlink.status == 'ok'\"\ntitle = \"t\"\nexplain = \"e\"\n\n\
                [[rule]]\nid = \"not-a-boolean\"\ncategory = \"host\"\nseverity = \"info\"\nsince = \"0.1.0\"\n\
                when = \"host.os\"\ntitle = \"t\"\nexplain = \"e\"\n";
    set.load_str("mine.toml", text).unwrap();
    let mut facts = healthy();
    facts.driver.gpus[0].persistence_mode = Some(false);
    let findings = evaluate_with(&set, &facts, &inputs_for(&facts));
    let failed: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.rule == EVALUATION_FAILED)
        .collect();
    assert_eq!(failed.len(), 2, "{findings:#?}");
    let f = failed
        .iter()
        .find(|f| f.title.contains("needs-a-probe"))
        .unwrap();
    assert_eq!(
        (f.severity, f.category.as_str()),
        (Severity::Error, "probe")
    );
    assert_eq!(
        f.title,
        "rule needs-a-probe could not be evaluated: No such key: nvlink"
    );
    assert!(f.explain.contains("mine.toml:2"), "{}", f.explain);
    assert_eq!(f.evidence[0], "when: probes.nvlink.status == 'ok'");
    let f = failed
        .iter()
        .find(|f| f.title.contains("not-a-boolean"))
        .unwrap();
    assert!(f.title.contains("not true or false"), "{}", f.title);
    // The rest of the rules still ran.
    assert!(findings.iter().any(|f| f.rule == "persistence-mode-off"));
}

#[test]
fn evaluate_runs_with_the_real_derived_values() {
    let mut facts = healthy();
    facts.toolkits = Default::default();
    facts.host.env.cuda_visible_devices = Some("-1".into());
    let findings = evaluate(&builtin(), &facts);
    assert_eq!(
        findings[0].rule, "cuda-visible-devices-hides-all",
        "{findings:#?}"
    );
    assert!(
        findings.iter().all(|f| f.rule != EVALUATION_FAILED),
        "{findings:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The built-in pack as a whole

#[test]
fn every_builtin_rule_is_documented_and_has_a_fix_or_says_why_not() {
    for rule in builtin().rules() {
        let id = &rule.id;
        assert!(!rule.title.trim().is_empty(), "{id}: title");
        assert!(rule.explain.trim().len() > 40, "{id}: explain is too short");
        assert!(
            rule.docs.trim().len() > 80,
            "{id}: docs are missing or too short"
        );
        assert!(
            BUILTIN.iter().any(|(name, _)| *name == rule.source),
            "{id}: {}",
            rule.source
        );
        let has_fix = rule.fix_bash.is_some() || rule.fix_powershell.is_some();
        assert!(
            has_fix || rule.fix_none.as_deref().is_some_and(|r| !r.trim().is_empty()),
            "{id}: needs fix.bash / fix.powershell, or fix.none with the reason there is no command"
        );
        // Rules about something an administrator can change by command have a bash fix.
        let fixable = matches!(rule.category, Category::Driver | Category::Toolkit);
        if fixable && rule.fix_none.is_none() {
            assert!(
                rule.fix_bash.is_some(),
                "{id}: driver and toolkit rules need a bash fix"
            );
        }
    }
}

/// The built-in packs load at run time without the checks user files get
/// ([`RuleSet::builtin`]); this is where those checks run, and where the two loads are shown to
/// give the same rules.
#[test]
fn builtin_packs_pass_every_check() {
    let checked =
        RuleSet::builtin_checked().unwrap_or_else(|e| panic!("built-in rules fail a check:\n{e}"));
    let vouched = builtin();
    assert_eq!(checked.rules().len(), vouched.rules().len());
    for (c, v) in checked.rules().iter().zip(vouched.rules()) {
        assert_eq!(format!("{c:?}"), format!("{v:?}"), "rule {}", c.id);
    }
}

/// A built-in condition that does not compile is still an error of the vouched load (a bug in
/// gpu-doctor, not a silent rule), named with its file and line.
#[test]
fn vouched_load_reports_a_broken_condition() {
    let text = rule_with("\"host.os == \"", "");
    let mut compiled = super::load::compile_conditions(&[&text], &cel::Env::stdlib());
    assert!(
        compiled.is_empty(),
        "a broken condition is not compiled ahead"
    );
    let err = super::load::load_vouched("x.toml", &text, &cel::Env::stdlib(), &[], &mut compiled)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("x.toml:") && err.contains("invalid condition"),
        "{err}"
    );
}

/// docs/rules.md is generated; this fails when it is stale. Regenerate with
/// `UPDATE_DOCS=1 cargo test --lib rules::`.
#[test]
fn rule_reference_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/rules.md");
    let current = render_reference(&builtin());
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(path, &current).expect("write docs/rules.md");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == current,
        "docs/rules.md is stale: run `UPDATE_DOCS=1 cargo test --lib rules::`"
    );
}

/// docs/symptoms.md is generated from the rules' symptoms; this fails when it is stale.
#[test]
fn symptom_index_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/symptoms.md");
    let current = render_symptoms(&builtin());
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(path, &current).expect("write docs/symptoms.md");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == current,
        "docs/symptoms.md is stale: run `UPDATE_DOCS=1 cargo test --lib rules::`"
    );
}

#[test]
fn the_reference_has_a_section_per_rule() {
    let set = builtin();
    let doc = render_reference(&set);
    for rule in set.rules() {
        assert!(doc.contains(&format!("\n### {}\n", rule.id)), "{}", rule.id);
    }
    assert!(doc.contains("```bash\nsudo nvidia-smi -i {gpu.index} -c DEFAULT\n```"));
}

// ---------------------------------------------------------------------------------------------
// Python rules

#[test]
fn venv_findings_name_the_environment_and_bind_its_own_interpreter() {
    let findings = case("torch-cpu-build");
    let f = only(&findings, "torch-cpu-build");
    assert_eq!(f.scope, "venv");
    assert_eq!(f.category, "python");
    assert_eq!(
        f.subject.as_deref(),
        Some("environment .venv (Python 3.12)")
    );
    assert_eq!(
        f.title,
        "PyTorch 2.5.1+cpu in .venv is a CPU build: it cannot use the NVIDIA GPU"
    );
    let fix = f.fix.as_ref().unwrap();
    // The driver runs CUDA 13, torch 2.5 has cu118, cu121 and cu124: cu124.
    assert_eq!(
        fix.bash.as_deref(),
        Some("/srv/proj/.venv/bin/python -m pip install --force-reinstall torch==2.5.1 --index-url https://download.pytorch.org/whl/cu124")
    );
    assert_eq!(
        fix.powershell.as_deref(),
        Some("& '/srv/proj/.venv/bin/python' -m pip install --force-reinstall 'torch==2.5.1' --index-url 'https://download.pytorch.org/whl/cu124'")
    );
}

#[test]
fn interpreter_paths_are_quoted_for_each_shell() {
    let mut facts = healthy();
    cpu_torch(&mut facts);
    let e = env0(&mut facts);
    e.path = r"C:\Users\Dev O'Neil\my proj\.venv".into();
    e.python = r"C:\Users\Dev O'Neil\my proj\.venv\Scripts\python.exe".into();
    e.layout = "windows".into();
    let findings = run(&facts, &inputs_for(&facts));
    let fix = only(&findings, "torch-cpu-build").fix.clone().unwrap();
    assert!(
        fix.powershell.as_deref().unwrap().starts_with(
            r"& 'C:\Users\Dev O''Neil\my proj\.venv\Scripts\python.exe' -m pip install"
        ),
        "{fix:?}"
    );
    assert!(
        fix.bash.as_deref().unwrap().starts_with(
            r"'C:\Users\Dev O'\''Neil\my proj\.venv\Scripts\python.exe' -m pip install"
        ),
        "{fix:?}"
    );
}

#[test]
fn llama_fixes_pick_the_wheel_or_the_source_build() {
    // 0.3.30 on Linux with a CUDA 13 driver: the cu132 wheel of the same release.
    let findings = case("llama-cpp-cpu-build");
    let f = only(&findings, "llama-cpp-cpu-build");
    let fix = f.fix.as_ref().unwrap();
    assert_eq!(
        fix.bash.as_deref(),
        Some("/srv/proj/.venv/bin/python -m pip install --force-reinstall --no-cache-dir --only-binary=llama-cpp-python llama-cpp-python==0.3.30 --extra-index-url https://abetlen.github.io/llama-cpp-python/whl/cu132")
    );
    assert!(f.explain.ends_with("own interpreter."), "{}", f.explain);
    // Python 3.7: no wheel fits, so the second alternative, the CUDA source build.
    let mut facts = healthy();
    cpu_llama(&mut facts, "0.3.30");
    env0(&mut facts).python_version = Some("3.7.17".into());
    live0(&mut facts).python_version = Some("3.7.17".into());
    let findings = run(&facts, &inputs_for(&facts));
    let fix = only(&findings, "llama-cpp-cpu-build").fix.clone().unwrap();
    assert_eq!(
        fix.bash.as_deref(),
        Some("CMAKE_ARGS=\"-DGGML_CUDA=on\" /srv/proj/.venv/bin/python -m pip install --force-reinstall --no-cache-dir llama-cpp-python==0.3.30")
    );
    assert_eq!(
        fix.powershell.as_deref(),
        Some("$env:CMAKE_ARGS = \"-DGGML_CUDA=on\"; & '/srv/proj/.venv/bin/python' -m pip install --force-reinstall --no-cache-dir 'llama-cpp-python==0.3.30'")
    );
}

#[test]
fn a_missing_cuda_library_is_named() {
    let findings = case("llama-cpp-cuda-backend-fails");
    let f = only(&findings, "llama-cpp-cuda-backend-fails");
    assert!(
        f.title
            .contains("libcudart.so.12: cannot open shared object file"),
        "{}",
        f.title
    );
    assert!(
        f.evidence.contains(
            &"not found by the dynamic loader: libcudart.so.12, libcublas.so.12".to_string()
        ),
        "{:#?}",
        f.evidence
    );
}

#[test]
fn the_none_complete_finding_shows_the_matrix_and_completes_the_env_in_use() {
    let findings = case("python-envs-none-complete");
    let f = only(&findings, "python-envs-none-complete");
    assert_eq!(
        f.title,
        "no Python environment is complete: none of the 2 runs torch and llama-cpp-python on the GPU"
    );
    assert_eq!(f.subject, None);
    assert_eq!(
        f.evidence[..2],
        [
            ".venv [shell]: Python 3.12, torch 2.11.0+cu130, CUDA usable: yes, llama-cpp-python GPU backend: — => partial".to_string(),
            ".venv-llama: Python 3.12, torch —, CUDA usable: —, llama-cpp-python GPU backend: CUDA => partial".to_string(),
        ]
    );
    assert_eq!(f.evidence[2], ".venv lacks: llama-cpp-python with CUDA");
    assert_eq!(f.evidence.len(), 3, "empty matrix lines are left out");
    // Only llama-cpp-python is missing in .venv: the fourth alternative.
    let fix = f.fix.as_ref().unwrap();
    assert_eq!(
        fix.bash.as_deref(),
        Some("/srv/proj/.venv/bin/python -m pip install --force-reinstall --no-cache-dir --only-binary=llama-cpp-python llama-cpp-python==0.3.35 --extra-index-url https://abetlen.github.io/llama-cpp-python/whl/cu132")
    );
}

#[test]
fn the_env_in_use_finding_names_both_environments() {
    let findings = case("python-env-in-use-not-gpu-ready");
    let f = only(&findings, "python-env-in-use-not-gpu-ready");
    assert_eq!(
        f.title,
        "the environment in use is .venv-new, but the GPU-ready one is .venv"
    );
    assert!(
        f.explain.starts_with(".venv-new is selected by the shell (VIRTUAL_ENV), so scripts started from here run in it"),
        "{}",
        f.explain
    );
    let fix = f.fix.as_ref().unwrap();
    assert_eq!(
        fix.bash.as_deref(),
        Some("source /srv/proj/.venv/bin/activate")
    );
    assert_eq!(
        fix.powershell.as_deref(),
        Some("& '/srv/proj/.venv/bin/Activate.ps1'")
    );
}

#[test]
fn a_base_interpreter_fix_keeps_the_packages() {
    let findings = case("venv-base-interpreter-missing");
    let f = only(&findings, "venv-base-interpreter-missing");
    let fix = f.fix.as_ref().unwrap();
    assert_eq!(
        fix.bash.as_deref(),
        Some("python3.12 -m venv --upgrade /srv/proj/.venv")
    );
    assert_eq!(
        fix.powershell.as_deref(),
        Some("py '-3.12' -m venv --upgrade '/srv/proj/.venv'")
    );
}

#[test]
fn a_changed_python_version_is_fixed_by_recreating_the_environment() {
    let findings = case("venv-python-version-changed");
    let f = only(&findings, "venv-python-version-changed");
    assert_eq!(
        f.fix.as_ref().unwrap().bash.as_deref(),
        Some("/usr/bin/python3 -m venv --clear /srv/proj/.venv")
    );
    assert!(f.title.contains("made with Python 3.12.3"), "{}", f.title);
    assert!(f.title.contains("now Python 3.13.1"), "{}", f.title);
}

#[test]
fn toolkit_fix_appears_only_with_a_toolkit_of_torchs_major() {
    let findings = case("torch-toolkit-major-mismatch");
    let f = only(&findings, "torch-toolkit-major-mismatch");
    assert_eq!(
        f.fix.as_ref().unwrap().bash.as_deref(),
        Some("export CUDA_HOME=/usr/local/cuda-13.0 CUDA_PATH=/usr/local/cuda-13.0")
    );
    let mut facts = healthy();
    facts.host.env.cuda_home = Some("/usr/local/cuda-12.4".into());
    facts.toolkits.cuda_home_version = Some("12.4".into());
    facts.toolkits.installs[0].major = Some(12);
    let findings = run(&facts, &inputs_for(&facts));
    assert!(only(&findings, "torch-toolkit-major-mismatch")
        .fix
        .is_none());
}

#[test]
fn fix_alternatives_are_checked_when_loaded() {
    let err = load_err(&rule_with("\"true\"", "fix.bash = []\n"));
    assert!(
        err.contains("rules/test.toml:9:12: error: `fix.bash` is an empty list"),
        "{err}"
    );
    let err = load_err(&rule_with("\"true\"", "fix.bash = 3\n"));
    assert!(
        err.contains(
            "`fix.bash` must be a string or an array of strings (alternatives), found integer"
        ),
        "{err}"
    );
    let err = load_err(&rule_with(
        "\"true\"",
        "fix.bash = [\"ok\", \"{host.oss}\"]\n",
    ));
    assert!(err.contains("unknown fact `host.oss`"), "{err}");
    // Alternatives: the first whose values are known.
    let mut set = RuleSet::empty();
    let text = rule_with(
        "\"true\"",
        "fix.bash = [\"use {host.env.cuda_home}\", \"use {host.os}\"]\n",
    );
    set.load_str("mine.toml", &text).unwrap();
    let rule = set.get("test-rule").unwrap();
    assert_eq!(rule.fix_bash.as_deref(), Some("use {host.env.cuda_home}"));
    assert_eq!(rule.fix_bash_alternatives.len(), 2);
    let mut facts = healthy();
    let fix = |f: &Facts| {
        evaluate_with(&set, f, &inputs_for(f))[0]
            .fix
            .clone()
            .and_then(|x| x.bash)
    };
    assert_eq!(fix(&facts).as_deref(), Some("use linux"));
    facts.host.env.cuda_home = Some("/opt/cuda".into());
    assert_eq!(fix(&facts).as_deref(), Some("use /opt/cuda"));
}

#[test]
fn venv_and_python_variables_are_checked_and_scoped() {
    let err = load_err(&rule_with("\"venv.torch.installed\"", ""));
    assert!(
        err.contains("unknown variable `venv` for scope \"host\"; `venv` is bound only in rules with scope = \"venv\""),
        "{err}"
    );
    let err = load_err(&rule_with("\"venv.torch_cpu_onyl\"", "scope = \"venv\"\n"));
    assert!(
        err.contains("unknown fact `venv.torch_cpu_onyl`; did you mean `torch_cpu_only`?"),
        "{err}"
    );
    let err = load_err(&rule_with(
        "\"python.environments.size() > 0 && derived.python.nope\"",
        "",
    ));
    assert!(err.contains("unknown fact `derived.python.nope`"), "{err}");
    let mut set = RuleSet::empty();
    set.load_str(
        "x.toml",
        &rule_with(
            "\"python.active != null && venv.live.torch.import_ok\"",
            "scope = \"venv\"\n",
        ),
    )
    .unwrap();
}
