//! Tests of the derived values, on the facts of the two machines the project was built for
//! (the H100 test machine and the seed's Windows laptop) and on hand-made variations.

use super::*;
use crate::facts::{CudaDevice, Gpu, Toolkit};

const H100_UUID: &str = "GPU-5a3b1c2d-0000-1111-2222-333344445555";

fn gpu(index: u32, uuid: &str, cc: (u32, u32), arch: &str) -> Gpu {
    Gpu {
        index,
        name: format!("GPU {index}"),
        uuid: uuid.to_string(),
        compute_capability: format!("{}.{}", cc.0, cc.1),
        cc_major: cc.0,
        cc_minor: cc.1,
        architecture: arch.to_string(),
        ..Gpu::default()
    }
}

fn toolkit(root: &str, version: &str, source: &str, found_by: &[&str]) -> Toolkit {
    let v = Version::parse(version).expect("test version");
    Toolkit {
        root: root.to_string(),
        version: Some(version.to_string()),
        version_short: v.short(),
        major: Some(v.major()),
        version_source: Some(source.to_string()),
        found_by: found_by.iter().map(|s| s.to_string()).collect(),
        ..Toolkit::default()
    }
}

/// The GPU test machine as gpu-machine.md describes it.
fn h100() -> Facts {
    let mut f = Facts::empty("standard");
    f.host.os = "linux".into();
    f.host.env.cuda_home = Some("/usr/local/cuda".into());
    f.host.env.nvidia_visible_devices = Some("0".into());
    f.driver.version = Some("580.159.04".into());
    f.driver.cuda_version = Some("13.0".into());
    f.driver.kernel_module.version = Some("580.159.04".into());
    f.driver.gpu_count = 1;
    f.driver.gpus = vec![gpu(0, H100_UUID, (9, 0), "Hopper")];
    f.driver.gpus[0].name = "NVIDIA H100 80GB HBM3".into();
    f.toolkits.installs = vec![toolkit(
        "/usr/local/cuda-13.0",
        "13.0.2",
        "version.json",
        &["path", "cuda_home", "default_location"],
    )];
    f.toolkits.path_root = Some("/usr/local/cuda-13.0".into());
    f
}

/// The seed's laptop: Windows, RTX 4060 Laptop GPU, CUDA_PATH at the v13.0 toolkit, and a driver
/// whose CUDA is 12.1 (the report says "CUDA: 12.1 supported").
fn laptop() -> Facts {
    let root = r"C:\Program Files\NVIDIA GPU Computing Toolkit\CUDA\v13.0";
    let mut f = Facts::empty("standard");
    f.host.os = "windows".into();
    f.host.env.cuda_path = Some(root.into());
    f.driver.version = Some("531.79".into());
    f.driver.gpu_count = 1;
    f.driver.gpus = vec![gpu(
        0,
        "GPU-0c0ffee0-aaaa-bbbb-cccc-ddddeeeeffff",
        (8, 9),
        "",
    )];
    f.driver.gpus[0].name = "NVIDIA GeForce RTX 4060 Laptop GPU".into();
    f.toolkits.installs = vec![toolkit(root, "13.0.1", "version.json", &["cuda_path"])];
    f
}

#[test]
fn h100_machine() {
    let f = h100();
    let d = derive(&f);
    assert_eq!(d.driver_version.as_deref(), Some("580.159.04"));
    assert_eq!(d.driver_branch, Some(580));
    assert_eq!(d.driver_max_cuda.as_deref(), Some("13.0"));
    assert_eq!(d.driver_max_cuda_source.as_deref(), Some("nvml"));
    assert_eq!(d.toolkit_versions, vec!["13.0"]);
    assert_eq!(d.visibility.physical_gpus, 1);
    assert_eq!(d.visibility.cuda_visible_gpus, 1);
    assert!(
        !d.visibility.cuda_hides_all
            && !d.visibility.cuda_hides_some
            && !d.visibility.nvidia_hides_all
    );

    let g = &gpu_views(&f, &d)[0];
    assert!(g.cuda_visible);
    assert_eq!(g.cuda_ordinal, Some(0));
    assert_eq!(g.gpu.architecture, "Hopper");
    assert_eq!(g.arch_first_cuda.as_deref(), Some("11.8"));
    assert_eq!(g.arch_last_cuda_major, None);

    let t = &toolkit_views(&f, &d)[0];
    assert_eq!(t.min_driver_for_major.as_deref(), Some("580"));
    assert_eq!(t.toolkit_driver.as_deref(), Some("580.95.05"));
    assert_eq!(t.driver_runs_programs, Some(true));
    assert_eq!(t.driver_meets_toolkit, Some(true));
    assert_eq!(t.selected_by, vec!["cuda_home", "path"]);
}

#[test]
fn h100_in_the_quick_profile_uses_the_kernel_module_and_the_table() {
    let mut f = h100();
    f.driver.version = None;
    f.driver.cuda_version = None;
    f.driver.gpus.clear();
    f.driver.gpu_count = 0;
    let d = derive(&f);
    assert_eq!(d.driver_version.as_deref(), Some("580.159.04"));
    assert_eq!(d.driver_max_cuda.as_deref(), Some("13.0"));
    assert_eq!(d.driver_max_cuda_source.as_deref(), Some("knowledge"));
    assert_eq!(toolkit_views(&f, &d)[0].driver_runs_programs, Some(true));
}

#[test]
fn cu_driver_get_version_is_the_second_choice() {
    let mut f = h100();
    f.driver.cuda_version = None;
    f.cuda.driver_api_version = Some("13.0".into());
    let d = derive(&f);
    assert_eq!(d.driver_max_cuda_source.as_deref(), Some("cuda"));
    f.cuda.driver_api_version = Some("garbage".into());
    assert_eq!(
        derive(&f).driver_max_cuda_source.as_deref(),
        Some("knowledge")
    );
}

#[test]
fn seed_laptop_with_a_cuda_12_1_driver_cannot_run_cuda_13_programs() {
    let f = laptop();
    let d = derive(&f);
    assert_eq!(d.driver_branch, Some(531));
    assert_eq!(d.driver_max_cuda.as_deref(), Some("12.1"));
    assert_eq!(d.driver_max_cuda_source.as_deref(), Some("knowledge"));

    let g = &gpu_views(&f, &d)[0];
    assert_eq!(g.gpu.architecture, "Ada Lovelace", "filled from the table");
    assert_eq!(g.arch_first_cuda.as_deref(), Some("11.8"));
    assert_eq!(g.cuda_ordinal, Some(0));

    let t = &toolkit_views(&f, &d)[0];
    assert_eq!(t.min_driver_for_major.as_deref(), Some("580"));
    assert_eq!(
        t.toolkit_driver, None,
        "13.x Windows installers bundle no driver"
    );
    assert_eq!(t.driver_runs_programs, Some(false));
    assert_eq!(t.driver_meets_toolkit, None);
    assert_eq!(t.selected_by, vec!["cuda_path"]);
}

#[test]
fn seed_laptop_after_a_driver_update() {
    let mut f = laptop();
    f.driver.version = Some("581.57".into());
    f.driver.cuda_version = Some("13.0".into());
    let d = derive(&f);
    assert_eq!(d.driver_max_cuda_source.as_deref(), Some("nvml"));
    assert_eq!(toolkit_views(&f, &d)[0].driver_runs_programs, Some(true));
}

#[test]
fn windows_uses_the_windows_columns() {
    let mut f = laptop();
    f.driver.version = Some("527.41".into());
    f.toolkits.installs = vec![toolkit(r"C:\CUDA\v12.0", "12.0", "folder name", &[])];
    let t = &toolkit_views(&f, &derive(&f))[0];
    assert_eq!(t.min_driver_for_major.as_deref(), Some("528.33"));
    assert_eq!(t.toolkit_driver.as_deref(), Some("527.41"));
    assert_eq!(t.driver_runs_programs, Some(false));
    assert_eq!(t.driver_meets_toolkit, Some(true));
    // The same driver number read as Linux would satisfy 525.60.13.
    f.host.os = "linux".into();
    assert_eq!(
        toolkit_views(&f, &derive(&f))[0].driver_runs_programs,
        Some(true)
    );
}

#[test]
fn toolkit_driver_uses_the_update_only_from_version_json() {
    let mut f = h100();
    f.driver.version = Some("550.54.14".into());
    f.driver.cuda_version = Some("12.4".into());
    f.toolkits.installs = vec![
        toolkit(
            "/usr/local/cuda-12.4",
            "12.4.1",
            "version.json",
            &["default_location"],
        ),
        toolkit("/opt/cuda", "12.4.131", "nvcc", &["default_location"]),
        toolkit(
            "/usr/local/cuda-13.0",
            "13.0.0",
            "version.json",
            &["default_location"],
        ),
    ];
    let d = derive(&f);
    assert_eq!(d.toolkit_versions, vec!["12.4", "13.0"]);
    let views = toolkit_views(&f, &d);
    assert_eq!(views[0].toolkit_driver.as_deref(), Some("550.54.15"));
    assert_eq!(views[0].driver_runs_programs, Some(true));
    assert_eq!(
        views[0].driver_meets_toolkit,
        Some(false),
        "12.4 Update 1 ships 550.54.15"
    );
    assert_eq!(
        views[1].toolkit_driver.as_deref(),
        Some("550.54.14"),
        "nvcc build number: GA row"
    );
    assert_eq!(views[1].driver_meets_toolkit, Some(true));
    assert_eq!(
        views[2].driver_runs_programs,
        Some(false),
        "a 550 driver runs no CUDA 13 program"
    );
    // PATH's nvcc belongs to cuda-13.0; CUDA_HOME=/usr/local/cuda names no root by its text.
    assert!(views[0].selected_by.is_empty() && views[1].selected_by.is_empty());
    assert_eq!(views[2].selected_by, vec!["path"]);
}

#[test]
fn no_driver_means_unknown_not_false() {
    let mut f = h100();
    f.driver.version = None;
    f.driver.cuda_version = None;
    f.driver.kernel_module.version = None;
    let d = derive(&f);
    assert_eq!(
        (
            d.driver_version.clone(),
            d.driver_branch,
            d.driver_max_cuda.clone()
        ),
        (None, None, None)
    );
    let t = &toolkit_views(&f, &d)[0];
    assert_eq!(
        (t.driver_runs_programs, t.driver_meets_toolkit),
        (None, None)
    );
    assert_eq!(t.min_driver_for_major.as_deref(), Some("580"));
}

#[test]
fn selectors_match_by_folder_name_when_found_by_is_missing() {
    let mut f = laptop();
    f.toolkits.installs[0].found_by.clear();
    f.host.env.cuda_path =
        Some(r"c:/program files/nvidia gpu computing toolkit/cuda/v13.0\".into());
    f.host.env.cuda_home = Some(r"C:\Program Files\NVIDIA GPU Computing Toolkit\CUDA\v12.4".into());
    assert_eq!(
        toolkit_views(&f, &derive(&f))[0].selected_by,
        vec!["cuda_path"]
    );
    // Linux paths are case-sensitive.
    let mut f = h100();
    f.toolkits.installs[0].found_by.clear();
    f.toolkits.path_root = None;
    f.host.env.cuda_home = Some("/usr/local/CUDA-13.0".into());
    assert!(toolkit_views(&f, &derive(&f))[0].selected_by.is_empty());
    f.host.env.cuda_home = Some("/usr/local/cuda-13.0/".into());
    assert_eq!(
        toolkit_views(&f, &derive(&f))[0].selected_by,
        vec!["cuda_home"]
    );
}

// ---------------------------------------------------------------------------------------------
// CUDA_VISIBLE_DEVICES

fn three_gpus(cvd: Option<&str>) -> Facts {
    let mut f = Facts::empty("standard");
    f.host.os = "linux".into();
    f.driver.gpus = vec![
        gpu(0, "GPU-aaaa1111-0000", (8, 0), "Ampere"),
        gpu(1, "GPU-aaaa2222-0000", (8, 0), "Ampere"),
        gpu(2, "GPU-bbbb3333-0000", (8, 0), "Ampere"),
    ];
    f.driver.gpu_count = 3;
    f.host.env.cuda_visible_devices = cvd.map(str::to_string);
    f
}

fn ordinals(f: &Facts) -> Vec<Option<u32>> {
    gpu_views(f, &derive(f))
        .iter()
        .map(|g| g.cuda_ordinal)
        .collect()
}

#[test]
fn unset_shows_every_gpu_in_index_order() {
    let f = three_gpus(None);
    let v = derive(&f).visibility;
    assert_eq!(
        (
            v.physical_gpus,
            v.cuda_visible_gpus,
            v.cuda_hides_all,
            v.cuda_hides_some
        ),
        (3, 3, false, false)
    );
    assert_eq!(ordinals(&f), vec![Some(0), Some(1), Some(2)]);
}

#[test]
fn empty_minus_one_and_nodevfiles_hide_everything() {
    for value in ["", " ", "-1", "NoDevFiles", "-1,0"] {
        let f = three_gpus(Some(value));
        let v = derive(&f).visibility;
        assert!(v.cuda_hides_all, "{value:?}");
        assert!(!v.cuda_hides_some, "{value:?}");
        assert_eq!(v.cuda_visible_gpus, 0, "{value:?}");
        assert_eq!(v.cuda_hidden_indices, vec![0, 1, 2], "{value:?}");
        assert_eq!(ordinals(&f), vec![None, None, None], "{value:?}");
        assert!(gpu_views(&f, &derive(&f)).iter().all(|g| !g.cuda_visible));
    }
    let v = derive(&three_gpus(Some("-1,0"))).visibility;
    assert_eq!(v.cuda_invalid_entries, vec!["-1"]);
    assert_eq!(v.cuda_ignored_entries, vec!["0"]);
    assert!(derive(&three_gpus(Some("")))
        .visibility
        .cuda_invalid_entries
        .is_empty());
}

#[test]
fn the_list_stops_at_the_first_invalid_entry() {
    // The CUDA Programming Guide's own example: 0,2,-1,1 shows 0 and 2.
    let f = three_gpus(Some("0,2,-1,1"));
    let v = derive(&f).visibility;
    assert_eq!(v.cuda_visible_gpus, 2);
    assert!(v.cuda_hides_some && !v.cuda_hides_all);
    assert_eq!(v.cuda_hidden_indices, vec![1]);
    assert_eq!(v.cuda_invalid_entries, vec!["-1"]);
    assert_eq!(v.cuda_ignored_entries, vec!["1"]);
    assert_eq!(ordinals(&f), vec![Some(0), None, Some(1)]);

    let v = derive(&three_gpus(Some("1,7,x"))).visibility;
    assert_eq!(v.cuda_visible_gpus, 1);
    assert_eq!(v.cuda_invalid_entries, vec!["7", "x"]);
    assert!(v.cuda_ignored_entries.is_empty());
}

#[test]
fn order_in_the_list_sets_the_ordinals() {
    let f = three_gpus(Some("2, 0"));
    assert_eq!(ordinals(&f), vec![Some(1), None, Some(0)]);
    let v = derive(&f).visibility;
    assert_eq!(v.cuda_hidden_indices, vec![1]);
}

#[test]
fn uuids_and_unique_prefixes_select_gpus() {
    let f = three_gpus(Some("GPU-bbbb,gpu-aaaa2222-0000"));
    assert_eq!(ordinals(&f), vec![None, Some(1), Some(0)]);
    // "GPU-aaaa" matches two GPUs: not unique, so invalid, and it ends the list.
    let v = derive(&three_gpus(Some("GPU-aaaa,2"))).visibility;
    assert!(v.cuda_hides_all);
    assert_eq!(v.cuda_invalid_entries, vec!["GPU-aaaa"]);
    assert_eq!(v.cuda_ignored_entries, vec!["2"]);
    assert!(
        derive(&three_gpus(Some("GPU-ffff")))
            .visibility
            .cuda_hides_all
    );
}

#[test]
fn a_duplicate_entry_ends_the_list() {
    let v = derive(&three_gpus(Some("0,0,1"))).visibility;
    assert_eq!(v.cuda_visible_gpus, 1);
    assert_eq!(v.cuda_invalid_entries, vec!["0"]);
    assert_eq!(v.cuda_ignored_entries, vec!["1"]);
}

#[test]
fn mig_instances_count_as_devices() {
    // Old form names the parent GPU; the new form cannot be tied to one.
    let f = three_gpus(Some("MIG-GPU-bbbb3333-0000/1/0,MIG-7f3e0b8a-1234"));
    let v = derive(&f).visibility;
    assert_eq!(v.cuda_visible_gpus, 2);
    assert!(!v.cuda_hides_all);
    assert_eq!(v.cuda_hidden_indices, vec![0, 1]);
    assert_eq!(ordinals(&f), vec![None, None, Some(0)]);
}

#[test]
fn without_nvml_indices_cannot_be_checked_but_empty_still_hides_all() {
    let mut f = three_gpus(Some("0,5"));
    f.driver.gpus.clear();
    f.driver.gpu_count = 0;
    let v = derive(&f).visibility;
    assert_eq!(v.cuda_visible_gpus, 2);
    assert!(!v.cuda_hides_all && !v.cuda_hides_some);
    assert!(v.cuda_invalid_entries.is_empty());
    f.host.env.cuda_visible_devices = Some("NoDevFiles".into());
    assert!(derive(&f).visibility.cuda_hides_all);
}

#[test]
fn nvidia_visible_devices_none_or_void_hides_all() {
    for (value, hides) in [
        ("none", true),
        ("void", true),
        ("NONE", true),
        ("all", false),
        ("0", false),
        ("", false),
    ] {
        let mut f = h100();
        f.host.env.nvidia_visible_devices = Some(value.into());
        assert_eq!(derive(&f).visibility.nvidia_hides_all, hides, "{value:?}");
    }
}

#[test]
fn the_cuda_probes_own_ordinals_win() {
    let mut f = three_gpus(None);
    // CUDA enumerates fastest first: here GPU 2 came first.
    for (ordinal, index) in [(0u32, 2usize), (1, 0), (2, 1)] {
        f.cuda.devices.push(CudaDevice {
            ordinal,
            uuid: Some(f.driver.gpus[index].uuid.to_uppercase()),
            ..CudaDevice::default()
        });
    }
    assert_eq!(ordinals(&f), vec![Some(1), Some(2), Some(0)]);
}

#[test]
fn unknown_architecture_is_filled_but_a_known_one_is_kept() {
    let mut f = three_gpus(None);
    f.driver.gpus[0].architecture = "Unknown".into();
    f.driver.gpus[1].architecture = "Ampere (NVML)".into();
    f.driver.gpus[2] = gpu(2, "GPU-x", (7, 0), "");
    let views = gpu_views(&f, &derive(&f));
    assert_eq!(views[0].gpu.architecture, "Ampere");
    assert_eq!(views[1].gpu.architecture, "Ampere (NVML)");
    assert_eq!(views[2].gpu.architecture, "Volta");
    assert_eq!(views[2].arch_last_cuda_major, Some(12));
    let mut f = three_gpus(None);
    f.driver.gpus[0] = gpu(0, "GPU-y", (8, 8), "");
    assert_eq!(
        gpu_views(&f, &derive(&f))[0].gpu.architecture,
        "",
        "8.8 is left out of the table"
    );
}

// ---------------------------------------------------------------------------------------------
// Python environments: views, advice and the project summary

use crate::facts::python::{LiveProbe, PythonEnv, TorchFacts};

/// The seed's laptop as recorded in fixtures/facts/seed-laptop.json.
fn seed_laptop() -> Facts {
    let text = include_str!("../../../fixtures/facts/seed-laptop.json");
    serde_json::from_str(text).expect("the seed laptop fixture parses as Facts")
}

fn view<'v>(views: &'v [VenvView], name: &str) -> &'v VenvView {
    views
        .iter()
        .find(|v| v.env.name == name)
        .unwrap_or_else(|| panic!("no environment {name}"))
}

/// A Linux environment with the given torch build, no live facts.
fn linux_env(name: &str, python: &str, torch: Option<(&str, Option<&str>)>) -> PythonEnv {
    let path = format!("/srv/proj/{name}");
    let mut env = PythonEnv {
        name: name.into(),
        python: format!("{path}/bin/python"),
        path,
        exists: true,
        python_exists: true,
        layout: "posix".into(),
        kind: "venv".into(),
        python_version: Some(python.into()),
        ..PythonEnv::default()
    };
    if let Some((version, cuda)) = torch {
        let local = version.split_once('+').map(|(_, t)| t.to_string());
        env.torch = TorchFacts {
            installed: true,
            version: Some(version.into()),
            local_tag: local,
            cuda: cuda.map(str::to_string),
            cuda_major: cuda.and_then(Version::parse).map(|v| v.major()),
            cuda_build: cuda.is_some(),
            ..TorchFacts::default()
        };
    }
    env
}

fn with_envs(mut f: Facts, envs: Vec<PythonEnv>) -> Facts {
    f.python.environments = envs;
    f
}

fn views_of(f: &Facts) -> Vec<VenvView> {
    venv_views(f, &derive(f))
}

#[test]
fn seed_laptop_environment_matrix() {
    let f = seed_laptop();
    let rows = environment_matrix(&f);
    let got: Vec<String> = rows
        .iter()
        .map(|r| {
            [
                &r.env,
                &r.python,
                &r.torch,
                &r.cuda_usable,
                &r.llama,
                &r.verdict,
            ]
            .map(String::as_str)
            .join(" | ")
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ".venv | 3.13 | CPU | no | none | broken",
            ".venv310 | 3.10 | 2.5.1+cu121 | yes | — | partial",
            ".venv-gpu | 3.11 | — | — | — | empty",
        ]
    );
    assert_eq!(rows[0].used_by, vec!["shell", "editor", "path"]);
    assert!(rows[1].used_by.is_empty());
}

#[test]
fn seed_laptop_venv_is_cpu_only_and_gets_cuda_12_advice() {
    let f = seed_laptop();
    let views = views_of(&f);
    let v = view(&views, ".venv");
    assert_eq!(v.python_minor.as_deref(), Some("3.13"));
    assert!(v.torch_cpu_only && v.llama_cpu_only);
    assert_eq!(v.torch_flavor.as_deref(), Some("CPU"));
    assert_eq!(
        (v.gpu_ready_torch, v.gpu_ready_llama),
        (Some(false), Some(false))
    );
    assert!(!v.complete);
    // torch 2.6.0 has cu118, cu124, cu126 and Windows cp313 wheels; the 12.1 driver runs
    // any 12.x build, so the newest is cu126 (cu121 has no Python 3.13 wheel at all).
    let a = &v.advice;
    assert_eq!(a.torch_spec.as_deref(), Some("torch==2.6.0"));
    assert_eq!(
        a.torch_index.as_deref(),
        Some("https://download.pytorch.org/whl/cu126")
    );
    assert!(a
        .torch_reason
        .as_deref()
        .is_some_and(|r| r.contains("minor-version compatibility")));
    // llama-cpp-python 0.3.16 has no Windows CUDA wheels; 0.3.35's py3 wheels fit 3.13. cu13x
    // needs driver 580, so cu125 is the newest that runs.
    assert_eq!(a.llama_method.as_deref(), Some("wheel"));
    assert_eq!(
        a.llama_wheel_spec.as_deref(),
        Some("llama-cpp-python==0.3.35")
    );
    assert_eq!(
        a.llama_wheel_index.as_deref(),
        Some("https://abetlen.github.io/llama-cpp-python/whl/cu125")
    );
    assert_eq!(a.llama_source_spec, None);
    // The wheel loads the CUDA 12 DLLs from CUDA_PATH, which names the 13.0 toolkit.
    assert_eq!(a.llama_requires.len(), 1, "{:?}", a.llama_requires);
    assert!(a.llama_requires[0].contains("CUDA_PATH") && a.llama_requires[0].contains("13.0"));
    assert!(a
        .llama_caveat
        .starts_with(" Before it works here, it needs CUDA_PATH"));
    assert_eq!(
        a.activate_ps1.as_deref(),
        Some(r"C:\Users\dev\proj\.venv\Scripts\Activate.ps1")
    );
    assert_eq!(a.py_launcher_flag.as_deref(), Some("-3.13"));
    // Why no CUDA wheel fitted the installed release.
    assert_eq!(v.no_cuda_wheels.len(), 1);
    assert!(
        v.no_cuda_wheels[0].starts_with(
            "llama-cpp-python 0.3.16 has prebuilt CUDA wheels for Linux only (Python 3.9–3.12)"
        ),
        "{}",
        v.no_cuda_wheels[0]
    );
    assert!(v.no_cuda_wheels[0].ends_with("on Windows is 0.3.22"));
}

#[test]
fn seed_laptop_venv310_runs_torch_but_extension_builds_would_use_cuda_13() {
    let mut f = seed_laptop();
    let views = views_of(&f);
    let v = view(&views, ".venv310");
    assert_eq!(v.gpu_ready_torch, Some(true));
    assert_eq!(v.gpu_ready_llama, None, "not installed");
    assert_eq!(v.torch_arch_source.as_deref(), Some("live"));
    assert!(v.torch_missing_archs.is_empty(), "sm_86 runs on 8.9");
    assert!(!v.torch_driver_too_old);
    assert_eq!(v.torch_min_driver.as_deref(), Some("528.33"));
    assert!(v.torch_toolkit_major_mismatch);
    assert_eq!(
        v.torch_build_toolkit.as_deref(),
        Some(r"CUDA_PATH=C:\Program Files\NVIDIA GPU Computing Toolkit\CUDA\v13.0 (CUDA 13.0)")
    );
    assert_eq!(
        v.advice.toolkit_for_torch, None,
        "no CUDA 12 toolkit installed"
    );
    assert_eq!(v.verdict, "partial");
    // Without the live answer, the wheel table says the same.
    f.python.environments[1].live = None;
    let views = views_of(&f);
    let v = view(&views, ".venv310");
    assert_eq!(v.torch_arch_source.as_deref(), Some("knowledge"));
    assert!(
        v.torch_arch_list.contains(&"sm_61".to_string()),
        "Windows list"
    );
    assert_eq!(v.gpu_ready_torch, Some(true));
}

#[test]
fn seed_laptop_project_summary() {
    let f = seed_laptop();
    let p = derive(&f).python;
    assert!(p.nvidia_gpu, "NVML counts the GPU; Windows has no PCI list");
    assert_eq!(p.env_count, 3);
    assert!(p.needs_torch && p.needs_llama);
    assert_eq!(p.needs_text, "torch and llama-cpp-python");
    assert!(p.complete.is_empty() && p.gpu_ready_env.is_none());
    assert!(p.several_none_complete);
    assert_eq!(
        p.used_env_not_ready, None,
        "no complete environment to switch to"
    );
    assert_eq!(p.active.as_deref(), Some(".venv"));
    assert_eq!(p.editor.as_deref(), Some(".venv"));
    let c = p.candidate.expect("an environment to complete");
    assert_eq!(c.env, ".venv", "the one the shell and the editor use");
    assert_eq!(c.python, r"C:\Users\dev\proj\.venv\Scripts\python.exe");
    assert_eq!(c.torch_spec.as_deref(), Some("torch==2.6.0"));
    assert_eq!(
        c.llama_wheel_spec.as_deref(),
        Some("llama-cpp-python==0.3.35")
    );
    assert_eq!(c.lacks.len(), 2);
    assert_eq!(p.matrix_lines.len(), 3);
    assert_eq!(
        p.matrix_lines[0],
        ".venv [shell, editor, path]: Python 3.13, torch CPU, CUDA usable: no, \
         llama-cpp-python GPU backend: none => broken"
    );
    assert_eq!(p.ggml_build_vars, vec!["GGML_CUDA_FORCE_MMQ=1"]);
}

#[test]
fn seed_laptop_after_a_driver_update_gets_cuda_13_builds() {
    let mut f = seed_laptop();
    f.driver.version = Some("581.57".into());
    f.driver.cuda_version = Some("13.0".into());
    let views = views_of(&f);
    let a = &view(&views, ".venv").advice;
    // torch 2.6.0 has no CUDA 13 build: cu126 stays the newest.
    assert_eq!(
        a.torch_index.as_deref(),
        Some("https://download.pytorch.org/whl/cu126")
    );
    // llama-cpp-python: cu132 now, and CUDA_PATH names the 13.0 toolkit.
    assert_eq!(a.llama_variant.as_deref(), Some("cu132"));
    assert_eq!(a.llama_requires.len(), 1, "{:?}", a.llama_requires);
    assert!(a.llama_requires[0].contains("bin\\x64"));
    // The empty environment gets the newest torch with CUDA 13.
    let a = &view(&views, ".venv-gpu").advice;
    assert_eq!(a.torch_spec.as_deref(), Some("torch"));
    assert_eq!(a.torch_variant.as_deref(), Some("cu132"));
}

#[test]
fn h100_cpu_torch_gets_the_newest_variant_of_its_release() {
    let f = with_envs(
        h100(),
        vec![linux_env(".venv", "3.11.9", Some(("2.5.1+cpu", None)))],
    );
    let views = views_of(&f);
    let v = &views[0];
    assert!(v.torch_cpu_only);
    assert_eq!(v.torch_build, "CPU");
    assert_eq!(v.advice.torch_spec.as_deref(), Some("torch==2.5.1"));
    assert_eq!(v.advice.torch_variant.as_deref(), Some("cu124"));
    assert_eq!(
        v.advice.activate.as_deref(),
        Some("/srv/proj/.venv/bin/activate")
    );
    assert_eq!(v.advice.python_command.as_deref(), Some("python3.11"));
    // No environment holds llama-cpp-python: the advice still says how to add it. The H100
    // machine's driver runs CUDA 13: cu132 of the newest release with wheels.
    assert_eq!(v.advice.llama_variant.as_deref(), Some("cu132"));
    assert_eq!(
        v.advice.llama_spec.as_deref(),
        Some("llama-cpp-python==0.3.35")
    );
    // Its CUDA 13 runtime is on the loader path there: nothing lacking.
    assert!(
        v.advice.llama_requires.is_empty(),
        "{:?}",
        v.advice.llama_requires
    );
    assert_eq!(v.advice.llama_caveat, "");
}

#[test]
fn an_old_driver_limits_the_variant_and_flags_newer_builds() {
    // Driver 470 (CUDA 11.4) runs CUDA 11 builds only.
    let mut f = with_envs(
        h100(),
        vec![linux_env(
            ".venv",
            "3.10.12",
            Some(("2.5.1+cu124", Some("12.4"))),
        )],
    );
    f.driver.version = Some("470.256.02".into());
    f.driver.cuda_version = Some("11.4".into());
    let views = views_of(&f);
    let v = &views[0];
    assert!(v.torch_driver_too_old);
    assert_eq!(v.torch_min_driver.as_deref(), Some("525.60.13"));
    assert_eq!(v.gpu_ready_torch, Some(false));
    assert_eq!(v.advice.torch_variant.as_deref(), Some("cu118"));
    assert_eq!(v.advice.torch_spec.as_deref(), Some("torch==2.5.1"));
    // Below 450.80.02 even CUDA 11 is out: no CUDA build fits.
    f.driver.version = Some("440.100".into());
    f.driver.cuda_version = Some("10.2".into());
    let views = views_of(&f);
    assert_eq!(views[0].advice.torch_index, None);
    assert_eq!(views[0].advice.llama_method.as_deref(), Some("source"));
    assert_eq!(
        views[0].advice.llama_source_spec.as_deref(),
        Some("llama-cpp-python")
    );
}

#[test]
fn blackwell_needs_a_cu128_build_and_moves_to_a_newer_release() {
    let mut f = with_envs(
        h100(),
        vec![linux_env(
            ".venv",
            "3.12.3",
            Some(("2.6.0+cu126", Some("12.6"))),
        )],
    );
    f.driver.gpus[0].name = "NVIDIA GeForce RTX 5090".into();
    f.driver.gpus[0].cc_major = 12;
    f.driver.gpus[0].cc_minor = 0;
    let views = views_of(&f);
    let v = &views[0];
    assert_eq!(v.torch_missing_archs, vec!["sm_120"]);
    assert_eq!(
        v.torch_missing_gpus,
        vec!["GPU 0 NVIDIA GeForce RTX 5090 (compute capability 12.0)"]
    );
    assert_eq!(v.torch_arch_source.as_deref(), Some("knowledge"));
    assert_eq!(v.gpu_ready_torch, Some(false));
    // 2.6 has no build with sm_120: the newest release's newest build the driver runs.
    assert_eq!(v.advice.torch_spec.as_deref(), Some("torch"));
    assert_eq!(v.advice.torch_variant.as_deref(), Some("cu132"));
    // llama-cpp-python: cu118 has no PTX, so on Blackwell only CUDA 12/13 builds qualify.
    f.driver.version = Some("575.57.08".into());
    f.driver.cuda_version = Some("12.9".into());
    let views = views_of(&f);
    assert_eq!(views[0].advice.llama_variant.as_deref(), Some("cu125"));
    // A 12.9 driver: the newest release with a CUDA 12 build carrying sm_120 is 2.11 (cu128;
    // 2.12 and 2.13 have only cu126, without it, and CUDA 13 builds).
    assert_eq!(views[0].advice.torch_variant.as_deref(), Some("cu128"));
    assert!(views[0]
        .advice
        .torch_reason
        .as_deref()
        .is_some_and(|r| r.contains("torch 2.11 or later")));
}

#[test]
fn python_313_has_no_llama_wheel_before_0_3_21_and_a_source_build_needs_nvcc() {
    let mut env = linux_env(".venv", "3.15.0", None);
    env.llama_cpp.installed = true;
    env.llama_cpp.version = Some("0.3.16".into());
    env.llama_cpp.backends = vec!["cpu".into()];
    let mut f = with_envs(h100(), vec![env]);
    f.python.environments[0].python_version = Some("3.13.1".into());
    let v = &views_of(&f)[0];
    assert!(v.llama_cpu_only);
    assert!(v.llama_no_cuda_wheels.as_deref().is_some_and(|w| w
        .contains("for Python 3.9–3.12 only; the first release with CUDA wheels for Python 3.13 on Linux is 0.3.21")));
    // Linux: 0.3.35's cu132 wheel fits.
    assert_eq!(v.advice.llama_method.as_deref(), Some("wheel"));
    // No toolkit and Python 3.7 (older than any wheel): a source build, which needs nvcc.
    f.toolkits = Default::default();
    f.python.environments[0].python_version = Some("3.7.17".into());
    let v = &views_of(&f)[0];
    assert_eq!(v.advice.llama_method.as_deref(), Some("source"));
    assert_eq!(
        v.advice.llama_source_spec.as_deref(),
        Some("llama-cpp-python==0.3.16")
    );
    assert!(v.advice.llama_build_needs[0].starts_with("nvcc from a CUDA toolkit: none found"));
    assert!(v.advice.llama_caveat.contains("nvcc from a CUDA toolkit"));
    // A release newer than the table is not judged.
    f.python.environments[0].llama_cpp.version = Some("0.3.36".into());
    assert_eq!(views_of(&f)[0].llama_no_cuda_wheels, None);
}

#[test]
fn a_source_build_with_a_toolkit_the_driver_cannot_run_says_so() {
    let mut env = linux_env(".venv", "3.7.17", None);
    env.llama_cpp.installed = true;
    env.llama_cpp.version = Some("0.2.50".into());
    let mut f = with_envs(h100(), vec![env]);
    f.driver.version = Some("550.127.05".into());
    f.driver.cuda_version = Some("12.4".into());
    f.toolkits.installs[0].nvcc = Some("/usr/local/cuda-13.0/bin/nvcc".into());
    let a = &views_of(&f)[0].advice;
    assert_eq!(a.llama_method.as_deref(), Some("source"));
    assert_eq!(a.llama_build_cuda.as_deref(), Some("13.0"));
    assert!(
        a.llama_build_needs[0].starts_with("nvcc of a CUDA version this driver runs"),
        "{:?}",
        a.llama_build_needs
    );
}

#[test]
fn llama_cuda_backend_problems_name_the_missing_library() {
    let mut env = linux_env(".venv", "3.12.3", None);
    let l = &mut env.llama_cpp;
    l.installed = true;
    l.version = Some("0.3.30".into());
    l.lib_files = vec!["libggml-cuda.so".into(), "libllama.so".into()];
    l.gpu_backends = vec!["cuda".into()];
    l.cuda_backend = true;
    l.cuda_needed = vec![
        "libcudart.so.12".into(),
        "libcublas.so.12".into(),
        "libcuda.so.1".into(),
    ];
    l.cuda_runtime_major = Some(12);
    let mut f = with_envs(h100(), vec![env]);
    // What the H100 machine's loader resolves: the CUDA 13 runtime only.
    let lib = "/usr/local/cuda/targets/x86_64-linux/lib";
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
    let v = &views_of(&f)[0];
    assert_eq!(
        v.llama_missing_libs,
        vec!["libcudart.so.12", "libcublas.so.12"]
    );
    assert_eq!(
        v.llama_cuda_problem.as_deref(),
        Some("it needs libcudart.so.12, libcublas.so.12, which the dynamic loader does not find")
    );
    assert_eq!(v.gpu_ready_llama, Some(false));
    assert_eq!(v.llama_gpu_backend, "CUDA");
    assert!(!v.llama_cpu_only);
    // The live interpreter's word wins: it imported and offloads.
    f.python.environments[0].live = Some(LiveProbe {
        status: "ok".into(),
        llama_cpp: crate::facts::python::LiveLlama {
            attempted: true,
            import_ok: true,
            supports_gpu_offload: Some(true),
            backends: vec!["CUDA".into(), "CPU".into()],
            ..Default::default()
        },
        ..LiveProbe::default()
    });
    let v = &views_of(&f)[0];
    assert_eq!(v.llama_cuda_problem, None);
    assert_eq!(v.gpu_ready_llama, Some(true));
    // ...and when its import fails, that is the problem reported.
    let live = f.python.environments[0].live.as_mut().unwrap();
    live.llama_cpp.import_ok = false;
    live.llama_cpp.import_error =
        Some("RuntimeError: libcudart.so.12: cannot open shared object file".into());
    let v = &views_of(&f)[0];
    assert_eq!(
        v.llama_cuda_problem.as_deref(),
        Some(
            "import llama_cpp fails: RuntimeError: libcudart.so.12: cannot open shared object file"
        )
    );
}

#[test]
fn complete_is_relative_to_what_the_project_uses() {
    // A torch-only project: the CUDA torch environment is complete.
    let mut f = with_envs(
        h100(),
        vec![
            linux_env(".venv", "3.12.3", Some(("2.11.0+cu130", Some("13.0")))),
            linux_env(".venv-cpu", "3.12.3", Some(("2.11.0+cpu", None))),
        ],
    );
    f.python.environments[1].active = true;
    f.python.active = Some(".venv-cpu".into());
    let views = views_of(&f);
    assert!(views[0].complete && !views[1].complete);
    assert_eq!(
        (views[0].verdict.as_str(), views[1].verdict.as_str()),
        ("ready", "broken")
    );
    let p = python_derived(&f, &views);
    assert_eq!(p.gpu_ready_env.as_deref(), Some(".venv"));
    assert_eq!(p.used_env_not_ready.as_deref(), Some(".venv-cpu"));
    assert_eq!(p.used_not_ready_by, vec!["the shell (VIRTUAL_ENV)"]);
    assert_eq!(
        p.gpu_ready_activate.as_deref(),
        Some("/srv/proj/.venv/bin/activate")
    );
    assert!(!p.several_none_complete);
    // Without an NVIDIA GPU nothing is complete, and nothing is reported as incomplete.
    f.driver = Default::default();
    f.cuda = Default::default();
    let p = derive(&f).python;
    assert!(!p.nvidia_gpu && p.complete.is_empty() && !p.several_none_complete);
    assert_eq!(p.used_env_not_ready, None);
}

#[test]
fn unknown_driver_means_unknown_readiness() {
    let mut f = with_envs(
        h100(),
        vec![linux_env(
            ".venv",
            "3.12.3",
            Some(("2.11.0+cu130", Some("13.0"))),
        )],
    );
    f.driver.version = None;
    f.driver.cuda_version = None;
    f.driver.kernel_module = Default::default();
    f.cuda = Default::default();
    let views = views_of(&f);
    assert_eq!(views[0].gpu_ready_torch, None);
    assert_eq!(views[0].verdict, "unknown");
    assert_eq!(matrix_row(&views[0]).cuda_usable, "unknown");
    // The advice does not hold the unknown driver against any variant.
    assert_eq!(views[0].advice.torch_variant.as_deref(), Some("cu130"));
}

#[test]
fn live_torch_failures_are_told_apart() {
    let mut f = with_envs(
        h100(),
        vec![linux_env(
            ".venv",
            "3.12.3",
            Some(("2.11.0+cu130", Some("13.0"))),
        )],
    );
    let mut live = LiveProbe {
        status: "ok".into(),
        ..LiveProbe::default()
    };
    live.torch.attempted = true;
    live.torch.import_ok = true;
    live.torch.cuda_available = Some(false);
    live.torch.cuda_error = Some("CUDA unknown error".into());
    f.python.environments[0].live = Some(live.clone());
    let v = &views_of(&f)[0];
    assert!(v.torch_cuda_unavailable);
    assert_eq!(v.torch_cuda_error.as_deref(), Some("CUDA unknown error"));
    // CUDA_VISIBLE_DEVICES= explains it: not this rule's to report.
    f.host.env.cuda_visible_devices = Some(String::new());
    assert!(!views_of(&f)[0].torch_cuda_unavailable);
    f.host.env.cuda_visible_devices = None;
    // An import failure is reported as such, with its message.
    live.torch.import_ok = false;
    live.torch.import_error = Some("OSError: libcudnn.so.9: cannot open shared object file".into());
    f.python.environments[0].live = Some(live.clone());
    let v = &views_of(&f)[0];
    assert!(!v.torch_cuda_unavailable);
    assert_eq!(v.gpu_ready_torch, Some(false));
    assert!(v
        .torch_import_error
        .as_deref()
        .is_some_and(|e| e.contains("libcudnn")));
    // A live probe that did not run is ignored.
    live.status = "timed_out".into();
    f.python.environments[0].live = Some(live);
    let v = &views_of(&f)[0];
    assert_eq!(v.torch_import_error, None);
    assert_eq!(v.gpu_ready_torch, Some(true), "the static judgement");
}

#[test]
fn no_environments_no_python_values() {
    let d = derive(&h100());
    assert_eq!(d.python.env_count, 0);
    assert!(d.python.matrix.is_empty() && !d.python.several_none_complete);
    assert_eq!(d.python.needs_text, "");
}

#[test]
fn a_deleted_environment_is_listed_but_not_counted() {
    let mut gone = linux_env(".venv-old", "3.12.3", None);
    gone.exists = false;
    let f = with_envs(
        h100(),
        vec![
            linux_env(".venv", "3.12.3", Some(("2.11.0+cpu", None))),
            gone,
        ],
    );
    let p = derive(&f).python;
    assert_eq!(p.env_count, 1);
    assert!(!p.several_none_complete);
    assert_eq!(p.matrix[1].verdict, "missing");
}

#[test]
fn conda_environments_have_no_activation_script_to_source() {
    let mut env = linux_env("envs/gpu", "3.12.3", Some(("2.11.0+cu130", Some("13.0"))));
    env.kind = "conda".into();
    let v = &views_of(&with_envs(h100(), vec![env]))[0];
    assert_eq!(
        (v.advice.activate.as_ref(), v.advice.activate_ps1.as_ref()),
        (None, None)
    );
    assert_eq!(v.verdict, "ready");
}

/// llama-cpp-python reached from outside the environment's own site-packages (a `.pth` line,
/// the base interpreter's): the files show none, the interpreter imported a CUDA build that
/// offloads. The interpreter's answer is the environment's package; the disagreement is named.
#[test]
fn an_imported_llama_cpp_outranks_files_that_show_none() {
    let mut f = with_envs(h100(), vec![linux_env(".venv", "3.12.3", None)]);
    let mut live = LiveProbe {
        status: "ok".into(),
        ..LiveProbe::default()
    };
    live.llama_cpp.attempted = true;
    live.llama_cpp.import_ok = true;
    live.llama_cpp.version = Some("0.3.36".into());
    live.llama_cpp.backends = vec!["CUDA".into(), "CPU".into()];
    live.llama_cpp.supports_gpu_offload = Some(true);
    f.python.environments[0].live = Some(live.clone());
    let v = &views_of(&f)[0];
    assert!(v.env.llama_cpp.installed);
    assert_eq!(v.llama_gpu_backend, "CUDA");
    assert_eq!(v.gpu_ready_llama, Some(true));
    assert_eq!((v.verdict.as_str(), v.complete), ("ready", true));
    assert_eq!(
        v.live_over_files,
        [".venv: its files show llama-cpp-python none, its interpreter imported llama-cpp-python 0.3.36: the interpreter's answer counts"]
    );
    // The files as read stay in the facts.
    assert!(!f.python.environments[0].llama_cpp.installed);
    // It imported, but offloads nothing: a broken CUDA build, whatever the files say.
    live.llama_cpp.supports_gpu_offload = Some(false);
    f.python.environments[0].live = Some(live.clone());
    let v = &views_of(&f)[0];
    assert_eq!(
        (v.verdict.as_str(), v.gpu_ready_llama),
        ("broken", Some(false))
    );
    assert!(v.llama_cuda_problem.is_some());
    // Files and interpreter agree: nothing to say.
    f.python.environments[0].llama_cpp = crate::facts::python::LlamaCppFacts {
        installed: true,
        version: Some("0.3.36".into()),
        ..Default::default()
    };
    assert!(views_of(&f)[0].live_over_files.is_empty());
}
