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
