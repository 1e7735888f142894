//! Typed access to the compatibility tables in rules/knowledge/*.toml (embedded at build time),
//! and the values derived once from Facts and those tables for rules and fix commands.
//!
//! The tables are data so that a reviewer can check each row against its source without reading
//! Rust; this module is the only place that reads them, and every lookup rules need (which
//! driver a CUDA major needs, what CUDA a driver branch supports, what a compute capability is)
//! is a tested function here. docs/knowledge.md describes the tables.

pub mod derive;
pub mod version;
pub mod wheels;

pub use version::Version;

use serde::Deserialize;
use std::sync::OnceLock;

const CUDA_DRIVER_TOML: &str = include_str!("../../rules/knowledge/cuda_driver.toml");
const GPU_ARCH_TOML: &str = include_str!("../../rules/knowledge/gpu_arch.toml");
const TORCH_TOML: &str = include_str!("../../rules/knowledge/torch.toml");
const LLAMA_CPP_PYTHON_TOML: &str = include_str!("../../rules/knowledge/llama_cpp_python.toml");

/// Which column of a driver table applies. Linux covers WSL2 as well: there the Linux CUDA
/// libraries run on the Windows driver, whose version NVML reports in Linux form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    Linux,
    Windows,
}

impl Os {
    /// From `facts.host.os` ("linux", "windows", ...). Anything but Windows reads Linux columns.
    pub fn from_facts(os: &str) -> Os {
        if os.eq_ignore_ascii_case("windows") {
            Os::Windows
        } else {
            Os::Linux
        }
    }
}

/// rules/knowledge/cuda_driver.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CudaDriverTable {
    pub minor_compat: Vec<MinorCompat>,
    pub toolkit_release: Vec<ToolkitRelease>,
    pub branch: Vec<BranchRow>,
}

/// Minimum driver for running anything built with a CUDA major (minor-version compatibility).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinorCompat {
    pub cuda_major: u32,
    pub linux_min: String,
    pub windows_min: String,
    /// Drivers from this branch on support the major anyway (ordinary backward compatibility).
    pub below_branch: Option<u32>,
    pub note: Option<String>,
    pub source: String,
    pub reviewed: String,
}

/// Table 3: the driver bundled with one toolkit release.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolkitRelease {
    /// The toolkit's version.json version: "12.4.1" is 12.4 Update 1.
    pub version: String,
    /// NVIDIA's name for the release: "12.4 Update 1".
    pub label: String,
    /// First release of its major.minor; used when only "major.minor" is known.
    #[serde(default)]
    pub ga: bool,
    pub linux: String,
    /// None where NVIDIA lists N/A (13.x Windows installers bundle no driver).
    pub windows: Option<String>,
    pub source: String,
    pub reviewed: String,
}

/// Driver branch -> highest CUDA version it supports (derived from Table 3).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchRow {
    pub branch: u32,
    pub max_cuda: String,
    #[serde(default)]
    pub derived: bool,
    pub source: String,
    pub reviewed: String,
}

/// rules/knowledge/gpu_arch.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuArchTable {
    pub arch: Vec<ArchInfo>,
}

/// One compute capability.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchInfo {
    /// "major.minor", e.g. "8.9".
    pub cc: String,
    /// Architecture name, e.g. "Ada Lovelace".
    pub name: String,
    /// "data center", "Jetson" ... where the same architecture has several kinds of parts.
    pub segment: Option<String>,
    pub examples: Vec<String>,
    /// First CUDA release whose nvcc emits SASS for it; None where not pinned down.
    pub first_cuda: Option<String>,
    /// Last CUDA major that supports it, when a later major removed it.
    pub last_cuda_major: Option<u32>,
    pub note: Option<String>,
    pub source: String,
    pub reviewed: String,
}

impl ArchInfo {
    /// (major, minor) of `cc`; None for a malformed row (the table test rejects those).
    pub fn cc_parts(&self) -> Option<(u32, u32)> {
        let (major, minor) = self.cc.split_once('.')?;
        Some((major.parse().ok()?, minor.parse().ok()?))
    }
}

/// Every table, parsed.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    pub cuda_driver: CudaDriverTable,
    pub gpu_arch: GpuArchTable,
    pub torch: wheels::TorchTable,
    pub llama_cpp: wheels::LlamaTable,
}

/// Parse the embedded tables, saying which file is wrong and where.
pub fn parse_tables() -> Result<Tables, String> {
    let cuda_driver = toml::from_str(CUDA_DRIVER_TOML)
        .map_err(|e| format!("rules/knowledge/cuda_driver.toml: {e}"))?;
    let gpu_arch =
        toml::from_str(GPU_ARCH_TOML).map_err(|e| format!("rules/knowledge/gpu_arch.toml: {e}"))?;
    let torch =
        toml::from_str(TORCH_TOML).map_err(|e| format!("rules/knowledge/torch.toml: {e}"))?;
    let llama_cpp = toml::from_str(LLAMA_CPP_PYTHON_TOML)
        .map_err(|e| format!("rules/knowledge/llama_cpp_python.toml: {e}"))?;
    Ok(Tables {
        cuda_driver,
        gpu_arch,
        torch,
        llama_cpp,
    })
}

/// The embedded tables, parsed once. The tables are compiled in and tested, so a parse failure
/// is a build defect; it yields empty tables (every lookup: unknown) rather than a panic.
pub fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| parse_tables().unwrap_or_default())
}

/// Highest CUDA version ("13.0") a driver supports, from its branch: the table row of the
/// highest branch at or below the driver's. None for unparsable or pre-450 drivers.
pub fn driver_max_cuda(driver_version: &str) -> Option<String> {
    let branch = Version::parse(driver_version)?.major();
    tables()
        .cuda_driver
        .branch
        .iter()
        .filter(|row| row.branch <= branch)
        .max_by_key(|row| row.branch)
        .map(|row| row.max_cuda.clone())
}

/// Minimum driver that runs programs built with any CUDA `major` release.
pub fn min_driver_for_cuda_major(major: u32, os: Os) -> Option<&'static str> {
    let row = tables()
        .cuda_driver
        .minor_compat
        .iter()
        .find(|r| r.cuda_major == major)?;
    Some(match os {
        Os::Linux => row.linux_min.as_str(),
        Os::Windows => row.windows_min.as_str(),
    })
}

/// The Table 3 row for a toolkit: the exact release for "12.4.1", the GA release of the
/// major.minor for "12.4" or for a full version that names no release (nvcc's "12.4.131").
pub fn toolkit_release(version: &str) -> Option<&'static ToolkitRelease> {
    let wanted = Version::parse(version)?;
    let minor = wanted.minor()?;
    let rows = &tables().cuda_driver.toolkit_release;
    let same_minor = |r: &&ToolkitRelease| {
        Version::parse(&r.version)
            .is_some_and(|v| v.major() == wanted.major() && v.minor() == Some(minor))
    };
    let exact = wanted.patch().and_then(|_| {
        rows.iter()
            .find(|r| Version::parse(&r.version).is_some_and(|v| v.parts() == wanted.parts()))
    });
    exact.or_else(|| rows.iter().filter(same_minor).find(|r| r.ga))
}

/// Driver bundled with a toolkit release (Table 3), for that OS; None where unknown or N/A.
pub fn toolkit_driver(version: &str, os: Os) -> Option<&'static str> {
    let row = toolkit_release(version)?;
    match os {
        Os::Linux => Some(row.linux.as_str()),
        Os::Windows => row.windows.as_deref(),
    }
}

/// What the table knows about a compute capability.
pub fn arch_for_cc(major: u32, minor: u32) -> Option<ArchInfo> {
    tables()
        .gpu_arch
        .arch
        .iter()
        .find(|a| a.cc_parts() == Some((major, minor)))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REVIEWED: &str = "2026-11-25";

    fn is_date(s: &str) -> bool {
        let b = s.as_bytes();
        b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    }

    fn check_provenance(what: &str, source: &str, reviewed: &str) {
        assert!(
            source.trim().len() >= 10,
            "{what}: source {source:?} names no document"
        );
        assert!(
            is_date(reviewed),
            "{what}: reviewed {reviewed:?} is not a YYYY-MM-DD date"
        );
        assert!(reviewed <= REVIEWED, "{what}: reviewed in the future");
    }

    #[test]
    fn every_row_parses_and_names_its_source() {
        let t = parse_tables().expect("embedded tables parse");
        let d = &t.cuda_driver;
        assert!(d.minor_compat.len() >= 3 && d.toolkit_release.len() >= 40 && d.branch.len() >= 20);
        for r in &d.minor_compat {
            let what = format!("minor_compat {}", r.cuda_major);
            check_provenance(&what, &r.source, &r.reviewed);
            assert!(
                Version::parse(&r.linux_min).is_some() && Version::parse(&r.windows_min).is_some(),
                "{what}"
            );
        }
        for r in &d.toolkit_release {
            let what = format!("toolkit_release {}", r.version);
            check_provenance(&what, &r.source, &r.reviewed);
            assert_eq!(
                Version::parse(&r.version).map(|v| v.parts().len()),
                Some(3),
                "{what}: not X.Y.Z"
            );
            assert!(Version::parse(&r.linux).is_some(), "{what}: linux");
            assert!(
                r.windows
                    .as_deref()
                    .is_none_or(|w| Version::parse(w).is_some()),
                "{what}: windows"
            );
            assert!(!r.label.is_empty());
        }
        for r in &d.branch {
            let what = format!("branch {}", r.branch);
            check_provenance(&what, &r.source, &r.reviewed);
            assert!(
                Version::parse(&r.max_cuda)
                    .and_then(|v| v.short())
                    .is_some(),
                "{what}"
            );
            // Derived rows must say so in their source, for a reviewer.
            assert!(!r.derived || r.source.starts_with("derived from"), "{what}");
        }
        for a in &t.gpu_arch.arch {
            let what = format!("arch {}", a.cc);
            check_provenance(&what, &a.source, &a.reviewed);
            assert!(a.cc_parts().is_some(), "{what}: cc");
            assert!(!a.name.is_empty() && !a.examples.is_empty(), "{what}");
            assert!(
                a.first_cuda
                    .as_deref()
                    .is_none_or(|v| Version::parse(v).is_some()),
                "{what}: first_cuda"
            );
        }
    }

    #[test]
    fn every_wheel_row_parses_and_names_its_source() {
        use wheels::Variant;
        let t = parse_tables().expect("embedded tables parse");
        assert!(t.torch.release.len() >= 14 && t.torch.arch_list.len() >= 10);
        let is_minor = |v: &str| Version::parse(v).is_some_and(|v| v.parts().len() == 2);
        for r in &t.torch.release {
            let what = format!("torch release {}", r.series);
            check_provenance(&what, &r.source, &r.reviewed);
            assert!(is_minor(&r.series), "{what}: series");
            assert!(is_minor(&r.python_min) && is_minor(&r.python_max), "{what}");
            assert!(r.linux_python_max.as_deref().is_none_or(is_minor), "{what}");
            assert!(!r.variants.is_empty(), "{what}");
            for v in &r.variants {
                assert!(Variant::parse(v).is_some(), "{what}: variant {v}");
            }
            // The PyPI Linux default is one of the published variants; Windows gets the CPU build.
            assert!(r.variants.contains(&r.linux_default), "{what}");
            assert_eq!(r.windows_default, "cpu", "{what}");
        }
        for r in &t.torch.arch_list {
            let what = format!("torch arch_list {:?} {:?}", r.series, r.variants);
            check_provenance(&what, &r.source, &r.reviewed);
            for s in &r.series {
                let release = wheels::torch_release(s).expect("series has a release row");
                for v in &r.variants {
                    assert!(release.variants.contains(v), "{what}: {s} has no {v}");
                }
            }
            let all = r.linux.iter().chain(r.windows.iter().flatten());
            for a in all {
                assert!(
                    a.starts_with("sm_") || a.starts_with("compute_"),
                    "{what}: {a}"
                );
            }
        }
        assert!(t.llama_cpp.wheels.len() >= 9);
        for r in &t.llama_cpp.wheels {
            let what = format!("llama-cpp-python wheels {}", r.releases());
            check_provenance(&what, &r.source, &r.reviewed);
            assert!(
                Version::parse(&r.first) <= Version::parse(&r.last)
                    && Version::parse(&r.first).is_some(),
                "{what}"
            );
            assert!(matches!(r.python.as_str(), "cp" | "py3"), "{what}");
            assert_eq!(r.python == "cp", r.python_max.is_some(), "{what}");
            for v in r.linux.iter().chain(&r.windows) {
                assert!(Variant::parse(v).is_some(), "{what}: {v}");
            }
        }
        // Rows never overlap.
        let rows = &t.llama_cpp.wheels;
        for (i, a) in rows.iter().enumerate() {
            for b in &rows[i + 1..] {
                assert!(!a.covers(&b.first) && !b.covers(&a.first), "{a:?} / {b:?}");
            }
        }
    }

    #[test]
    fn every_major_minor_has_exactly_one_ga_row_and_no_duplicates() {
        let rows = &tables().cuda_driver.toolkit_release;
        let mut seen = std::collections::BTreeSet::new();
        for r in rows {
            assert!(seen.insert(r.version.clone()), "duplicate {}", r.version);
        }
        let shorts: std::collections::BTreeSet<String> = rows
            .iter()
            .filter_map(|r| Version::parse(&r.version)?.short())
            .collect();
        for short in shorts {
            let gas = rows
                .iter()
                .filter(|r| r.ga && r.version.starts_with(&format!("{short}.")))
                .count();
            assert_eq!(gas, 1, "{short} has {gas} GA rows");
        }
        let ccs: std::collections::BTreeSet<&str> = tables()
            .gpu_arch
            .arch
            .iter()
            .map(|a| a.cc.as_str())
            .collect();
        assert_eq!(
            ccs.len(),
            tables().gpu_arch.arch.len(),
            "duplicate compute capability"
        );
    }

    #[test]
    fn branch_rows_agree_with_table_3() {
        // Each branch's max CUDA has a GA release whose Linux driver is on that branch.
        for row in &tables().cuda_driver.branch {
            let driver = toolkit_driver(&row.max_cuda, Os::Linux).expect("GA row exists");
            assert_eq!(
                Version::parse(driver).map(|v| v.major()),
                Some(row.branch),
                "branch {}",
                row.branch
            );
        }
    }

    #[test]
    fn driver_branches_map_to_the_highest_cuda_they_support() {
        assert_eq!(driver_max_cuda("580.159.04").as_deref(), Some("13.0"));
        assert_eq!(driver_max_cuda("580.65.06").as_deref(), Some("13.0"));
        assert_eq!(driver_max_cuda("595.71.05").as_deref(), Some("13.2"));
        assert_eq!(driver_max_cuda("590.48.01").as_deref(), Some("13.1"));
        assert_eq!(driver_max_cuda("575.57.08").as_deref(), Some("12.9"));
        assert_eq!(driver_max_cuda("550.127.05").as_deref(), Some("12.4"));
        // Between rows: the lower row (565 reports 12.7 itself; no 12.7 toolkit exists).
        assert_eq!(driver_max_cuda("565.57.01").as_deref(), Some("12.6"));
        // Windows numbering lands on the right rows.
        assert_eq!(driver_max_cuda("576.02").as_deref(), Some("12.9"));
        assert_eq!(driver_max_cuda("572.61").as_deref(), Some("12.8"));
        assert_eq!(driver_max_cuda("528.33").as_deref(), Some("12.0"));
        // Newer than the table: at least the newest row.
        assert_eq!(driver_max_cuda("615.10").as_deref(), Some("13.2"));
        assert_eq!(driver_max_cuda("440.100"), None);
        assert_eq!(driver_max_cuda("garbage"), None);
    }

    #[test]
    fn minimum_drivers_per_cuda_major() {
        assert_eq!(min_driver_for_cuda_major(13, Os::Linux), Some("580"));
        assert_eq!(min_driver_for_cuda_major(13, Os::Windows), Some("580"));
        assert_eq!(min_driver_for_cuda_major(12, Os::Linux), Some("525.60.13"));
        assert_eq!(min_driver_for_cuda_major(12, Os::Windows), Some("528.33"));
        assert_eq!(min_driver_for_cuda_major(11, Os::Linux), Some("450.80.02"));
        assert_eq!(min_driver_for_cuda_major(11, Os::Windows), Some("452.39"));
        assert_eq!(min_driver_for_cuda_major(10, Os::Linux), None);
        assert_eq!(min_driver_for_cuda_major(14, Os::Linux), None);
    }

    #[test]
    fn toolkit_drivers_by_release() {
        assert_eq!(toolkit_driver("13.0.2", Os::Linux), Some("580.95.05"));
        assert_eq!(toolkit_driver("13.0", Os::Linux), Some("580.65.06"));
        // nvcc's build number names no release: the GA row.
        assert_eq!(toolkit_driver("13.0.88", Os::Linux), Some("580.65.06"));
        assert_eq!(toolkit_driver("12.4.1", Os::Windows), Some("551.78"));
        assert_eq!(toolkit_driver("12.4", Os::Windows), Some("551.61"));
        assert_eq!(toolkit_driver("11.0", Os::Linux), Some("450.51.05"));
        assert_eq!(toolkit_driver("13.0", Os::Windows), None); // N/A
        assert_eq!(toolkit_driver("12.7", Os::Linux), None); // no such release
        assert_eq!(toolkit_driver("13.4.1", Os::Linux), None); // not in the table
        assert_eq!(toolkit_driver("13", Os::Linux), None);
        assert_eq!(
            toolkit_release("12.6.2").map(|r| r.label.as_str()),
            Some("12.6 Update 2")
        );
    }

    #[test]
    fn compute_capabilities_map_to_architectures() {
        let h100 = arch_for_cc(9, 0).expect("9.0");
        assert_eq!(h100.name, "Hopper");
        assert_eq!(h100.first_cuda.as_deref(), Some("11.8"));
        assert_eq!(h100.last_cuda_major, None);
        let ada = arch_for_cc(8, 9).expect("8.9");
        assert_eq!(ada.name, "Ada Lovelace");
        assert!(ada.examples.iter().any(|e| e == "RTX 4060 Laptop GPU"));
        assert_eq!(
            arch_for_cc(7, 0).map(|a| (a.name, a.last_cuda_major)),
            Some(("Volta".into(), Some(12)))
        );
        assert_eq!(arch_for_cc(3, 7).and_then(|a| a.last_cuda_major), Some(11));
        assert_eq!(
            arch_for_cc(12, 0).and_then(|a| a.first_cuda).as_deref(),
            Some("12.8")
        );
        assert_eq!(arch_for_cc(8, 8), None); // unknown product, left out on purpose
        assert_eq!(arch_for_cc(99, 0), None);
    }

    #[test]
    fn os_from_facts() {
        assert_eq!(Os::from_facts("windows"), Os::Windows);
        assert_eq!(Os::from_facts("linux"), Os::Linux);
        assert_eq!(Os::from_facts(""), Os::Linux);
    }
}
