//! Host probe: the operating system, CPU features that decide which llama.cpp build fits,
//! memory, the environment variables that steer GPU use, and NVIDIA GPUs on the PCI bus.
//!
//! Linux facts are read from /proc and /sys under the context's root (so tests can use fixture
//! trees); sysinfo supplies the OS name and kernel on every platform. The PCI scan works with no
//! driver at all, which is how "a GPU is there but no driver is installed" is told apart from
//! "there is no GPU".

use super::{ProbeContext, Probed};
use crate::facts::{CpuFacts, GpuEnvironment, HostFacts, MemoryFacts, PciGpu};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use sysinfo::System;

const NVIDIA_PCI_VENDOR: &str = "0x10de";

/// Variables that change how CUDA programs and llama.cpp behave at run time, kept verbatim.
const STEERING_VARIABLES: &[&str] = &[
    "CUDA_DEVICE_ORDER",
    "CUDA_LAUNCH_BLOCKING",
    "CUDA_MODULE_LOADING",
    "CUDA_CACHE_DISABLE",
    // Toolkit selectors besides CUDA_HOME and CUDA_PATH (CMake's FindCUDAToolkit, conda).
    "CUDA_ROOT",
    "CUDAToolkit_ROOT",
    "CUDA_VERSION",
    "GGML_CUDA_FORCE_MMQ",
    "GGML_CUDA_FORCE_CUBLAS",
    "GGML_CUDA_NO_PINNED",
    "GGML_CUDA_ENABLE_UNIFIED_MEMORY",
    "LLAMA_CPP_LIB_PATH",
    "LLAMA_ARG_N_GPU_LAYERS",
    "NVIDIA_DRIVER_CAPABILITIES",
    "NVIDIA_REQUIRE_CUDA",
    "PYTORCH_CUDA_ALLOC_CONF",
    "TORCH_CUDA_ARCH_LIST",
];

pub fn probe(ctx: &ProbeContext) -> Probed<HostFacts> {
    let on_real_root = ctx.fs_root == Path::new("/");
    let proc_release = read(ctx, "/proc/sys/kernel/osrelease");
    let facts = HostFacts {
        os: std::env::consts::OS.to_string(),
        os_release: on_real_root
            .then(|| System::long_os_version().ok())
            .flatten(),
        kernel: proc_release
            .clone()
            .or_else(|| System::kernel_version().ok()),
        arch: std::env::consts::ARCH.to_string(),
        hostname: on_real_root.then(|| System::host_name().ok()).flatten(),
        wsl2: is_wsl2(ctx, proc_release.as_deref()),
        container: in_container(ctx),
        cpu: cpu(ctx),
        memory: memory(ctx),
        env: gpu_environment(ctx),
        pci_gpus: nvidia_pci_devices(ctx),
    };
    Probed::ok(facts)
}

fn read(ctx: &ProbeContext, path: &str) -> Option<String> {
    fs::read_to_string(ctx.sys_path(path))
        .ok()
        .map(|s| s.trim().to_string())
}

/// WSL2 kernels carry "microsoft" in their release ("5.15.153.1-microsoft-standard-WSL2") and
/// expose the GPU through /usr/lib/wsl/lib rather than /dev/nvidia*.
fn is_wsl2(ctx: &ProbeContext, release: Option<&str>) -> bool {
    let named = release.is_some_and(|r| r.to_ascii_lowercase().contains("microsoft"));
    named || ctx.sys_path("/usr/lib/wsl/lib").is_dir()
}

fn in_container(ctx: &ProbeContext) -> bool {
    if ctx.sys_path("/.dockerenv").exists() || ctx.sys_path("/run/.containerenv").exists() {
        return true;
    }
    read(ctx, "/proc/1/cgroup").is_some_and(|c| {
        ["docker", "kubepods", "containerd", "libpod"]
            .iter()
            .any(|k| c.contains(k))
    })
}

fn cpu(ctx: &ProbeContext) -> CpuFacts {
    let logical = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    let Some(info) = read(ctx, "/proc/cpuinfo") else {
        return CpuFacts {
            logical_cores: logical,
            ..Default::default()
        };
    };
    parse_cpuinfo(&info, logical)
}

/// CPU model and the feature flags llama.cpp's CPU backends are built for, from /proc/cpuinfo
/// (x86 "flags", Arm "Features").
pub fn parse_cpuinfo(info: &str, logical_cores: u32) -> CpuFacts {
    let field = |name: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let flags = field("flags")
        .or_else(|| field("Features"))
        .unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    CpuFacts {
        model: field("model name").or_else(|| field("Model")),
        logical_cores,
        avx: has("avx"),
        avx2: has("avx2"),
        fma: has("fma"),
        f16c: has("f16c"),
        avx512f: has("avx512f"),
        avx512_vnni: has("avx512_vnni"),
        avx512_bf16: has("avx512_bf16"),
        amx: has("amx_tile"),
        neon: has("asimd") || has("neon"),
    }
}

fn memory(ctx: &ProbeContext) -> MemoryFacts {
    if let Some(info) = read(ctx, "/proc/meminfo") {
        return parse_meminfo(&info);
    }
    let Ok(mut sys) = System::new() else {
        return MemoryFacts::default();
    };
    sys.refresh_memory();
    MemoryFacts {
        total_mib: sys.total_memory() / (1024 * 1024),
        available_mib: sys.available_memory() / (1024 * 1024),
    }
}

pub fn parse_meminfo(info: &str) -> MemoryFacts {
    let kib = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    MemoryFacts {
        total_mib: kib("MemTotal") / 1024,
        available_mib: kib("MemAvailable") / 1024,
    }
}

fn gpu_environment(ctx: &ProbeContext) -> GpuEnvironment {
    let owned = |name: &str| ctx.var(name).map(str::to_string);
    let other: BTreeMap<String, String> = STEERING_VARIABLES
        .iter()
        .filter_map(|&name| Some((name.to_string(), ctx.var(name)?.to_string())))
        .collect();
    GpuEnvironment {
        cuda_visible_devices: owned("CUDA_VISIBLE_DEVICES"),
        nvidia_visible_devices: owned("NVIDIA_VISIBLE_DEVICES"),
        cuda_path: owned("CUDA_PATH"),
        cuda_home: owned("CUDA_HOME"),
        ld_library_path: owned("LD_LIBRARY_PATH"),
        path_cuda_entries: cuda_path_entries(ctx.var("PATH").unwrap_or("")),
        other,
    }
}

/// PATH entries that belong to a CUDA toolkit or the NVIDIA driver, in order.
pub fn cuda_path_entries(path: &str) -> Vec<String> {
    let separator = if path.contains(';') { ';' } else { ':' };
    path.split(separator)
        .filter(|e| {
            let lower = e.to_ascii_lowercase();
            lower.contains("cuda") || lower.contains("nvidia")
        })
        .map(str::to_string)
        .collect()
}

/// NVIDIA display (0x0300) and 3D (0x0302) controllers from /sys/bus/pci/devices.
fn nvidia_pci_devices(ctx: &ProbeContext) -> Vec<PciGpu> {
    let Ok(entries) = fs::read_dir(ctx.sys_path("/sys/bus/pci/devices")) else {
        return Vec::new();
    };
    let mut gpus: Vec<PciGpu> = entries
        .flatten()
        .filter_map(|e| pci_gpu(&e.path(), &e.file_name().to_string_lossy()))
        .collect();
    gpus.sort_by(|a, b| a.bus_id.cmp(&b.bus_id));
    gpus
}

fn pci_gpu(dir: &Path, bus_id: &str) -> Option<PciGpu> {
    let attr = |name: &str| {
        fs::read_to_string(dir.join(name))
            .ok()
            .map(|s| s.trim().to_string())
    };
    if attr("vendor")?.to_ascii_lowercase() != NVIDIA_PCI_VENDOR {
        return None;
    }
    let class = attr("class")?;
    if !(class.starts_with("0x0300") || class.starts_with("0x0302")) {
        return None;
    }
    let kernel_driver = fs::read_link(dir.join("driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    Some(PciGpu {
        bus_id: bus_id.to_string(),
        device_id: attr("device").unwrap_or_default(),
        kernel_driver,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Profile;
    use std::path::PathBuf;

    fn ctx_at(root: &Path, env: &[(&str, &str)]) -> ProbeContext {
        ProbeContext {
            profile: Profile::Quick,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            fs_root: PathBuf::from(root),
        }
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn reads_cpu_flags_that_matter_to_llama_cpp() {
        let info = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: fpu sse avx avx2 fma f16c avx512f avx512_vnni avx512_bf16 amx_tile\n";
        let cpu = parse_cpuinfo(info, 16);
        assert_eq!(
            cpu.model.as_deref(),
            Some("Intel(R) Xeon(R) Platinum 8480+")
        );
        assert!(
            cpu.avx2 && cpu.avx512f && cpu.avx512_vnni && cpu.avx512_bf16 && cpu.amx && cpu.fma
        );
        assert!(!cpu.neon);
        let old = parse_cpuinfo("model name : Old\nflags : fpu sse sse2 avx\n", 2);
        assert!(old.avx && !old.avx2 && !old.avx512f);
    }

    #[test]
    fn reads_memory_in_mib() {
        let m = parse_meminfo(
            "MemTotal:       24576000 kB\nMemFree: 1 kB\nMemAvailable:   12288000 kB\n",
        );
        assert_eq!((m.total_mib, m.available_mib), (24000, 12000));
        assert_eq!(parse_meminfo("garbage").total_mib, 0);
    }

    #[test]
    fn picks_cuda_and_driver_entries_from_path_on_both_systems() {
        let linux =
            cuda_path_entries("/opt/venv/bin:/usr/local/nvidia/bin:/usr/local/cuda/bin:/usr/bin");
        assert_eq!(linux, ["/usr/local/nvidia/bin", "/usr/local/cuda/bin"]);
        let windows = cuda_path_entries(
            r"C:\Windows;C:\Program Files\NVIDIA GPU Computing Toolkit\CUDA\v13.0\bin;C:\Python313",
        );
        assert_eq!(
            windows,
            [r"C:\Program Files\NVIDIA GPU Computing Toolkit\CUDA\v13.0\bin"]
        );
    }

    #[test]
    fn finds_an_nvidia_gpu_on_the_pci_bus_without_a_driver() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let gpu = "sys/bus/pci/devices/0000:00:06.0";
        write(root, &format!("{gpu}/vendor"), "0x10de\n");
        write(root, &format!("{gpu}/class"), "0x030200\n");
        write(root, &format!("{gpu}/device"), "0x2330\n");
        let audio = "sys/bus/pci/devices/0000:00:06.1";
        write(root, &format!("{audio}/vendor"), "0x10de\n");
        write(root, &format!("{audio}/class"), "0x040300\n");
        let other = "sys/bus/pci/devices/0000:00:02.0";
        write(root, &format!("{other}/vendor"), "0x8086\n");
        write(root, &format!("{other}/class"), "0x030000\n");
        let host = probe(&ctx_at(root, &[])).data;
        assert_eq!(host.pci_gpus.len(), 1);
        assert_eq!(host.pci_gpus[0].bus_id, "0000:00:06.0");
        assert_eq!(host.pci_gpus[0].device_id, "0x2330");
        assert_eq!(host.pci_gpus[0].kernel_driver, None);
    }

    #[test]
    fn detects_wsl2_and_keeps_steering_variables() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "proc/sys/kernel/osrelease",
            "5.15.153.1-microsoft-standard-WSL2\n",
        );
        let env = [
            ("CUDA_VISIBLE_DEVICES", ""),
            ("GGML_CUDA_FORCE_MMQ", "1"),
            ("HOME", "/root"),
        ];
        let host = probe(&ctx_at(dir.path(), &env)).data;
        assert!(host.wsl2);
        assert_eq!(
            host.kernel.as_deref(),
            Some("5.15.153.1-microsoft-standard-WSL2")
        );
        assert_eq!(host.env.cuda_visible_devices.as_deref(), Some(""));
        assert_eq!(
            host.env
                .other
                .get("GGML_CUDA_FORCE_MMQ")
                .map(String::as_str),
            Some("1")
        );
        assert!(!host.env.other.contains_key("HOME"));
    }
}
