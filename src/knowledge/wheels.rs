//! Typed access to the Python wheel tables: rules/knowledge/torch.toml (PyTorch releases, their
//! CUDA variants, Pythons and architecture lists) and rules/knowledge/llama_cpp_python.toml
//! (llama-cpp-python's prebuilt CUDA wheels).
//!
//! Also the one place that knows how GPU code matches a GPU: [`arch_covers`] applies NVIDIA's
//! binary-compatibility rule to an architecture list such as `torch.cuda.get_arch_list()`.

use super::{tables, Os, Version};
use serde::Deserialize;

/// Base of PyTorch's per-variant wheel indexes.
pub const TORCH_INDEX_BASE: &str = "https://download.pytorch.org/whl/";
/// Base of llama-cpp-python's per-variant CUDA wheel indexes.
pub const LLAMA_INDEX_BASE: &str = "https://abetlen.github.io/llama-cpp-python/whl/";

/// rules/knowledge/torch.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TorchTable {
    pub release: Vec<TorchRelease>,
    pub arch_list: Vec<TorchArchList>,
}

/// One PyTorch release series ("2.5" covers 2.5.0 and 2.5.1).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TorchRelease {
    pub series: String,
    /// CUDA variants published for Linux and Windows x86_64: "cu121", ...
    pub variants: Vec<String>,
    /// What `pip install torch` from PyPI gets on Linux x86_64.
    pub linux_default: String,
    /// What it gets on Windows ("cpu").
    pub windows_default: String,
    /// Pythons with wheels, "major.minor", inclusive.
    pub python_min: String,
    pub python_max: String,
    /// A newer Python with Linux-only (experimental) wheels.
    pub linux_python_max: Option<String>,
    pub note: Option<String>,
    pub source: String,
    pub reviewed: String,
}

/// The architectures in the builds of some variants of some series.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TorchArchList {
    pub series: Vec<String>,
    pub variants: Vec<String>,
    pub linux: Vec<String>,
    /// Where the Windows build differs; None: as Linux.
    pub windows: Option<Vec<String>>,
    pub note: Option<String>,
    pub source: String,
    pub reviewed: String,
}

/// rules/knowledge/llama_cpp_python.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlamaTable {
    pub wheels: Vec<LlamaWheels>,
}

/// The CUDA wheels of a range of llama-cpp-python releases.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlamaWheels {
    pub first: String,
    pub last: String,
    pub linux: Vec<String>,
    pub windows: Vec<String>,
    /// "cp" (one wheel per CPython, python_min..python_max) or "py3" (any Python from python_min).
    pub python: String,
    pub python_min: String,
    pub python_max: Option<String>,
    pub archs_cuda11: Option<Vec<String>>,
    pub archs_cuda12: Option<Vec<String>>,
    pub archs_cuda13: Option<Vec<String>>,
    pub note: Option<String>,
    pub source: String,
    pub reviewed: String,
}

// ---------------------------------------------------------------------------------------------
// CUDA variants

/// A CUDA wheel variant: "cu121" is CUDA 12.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Variant {
    pub major: u32,
    pub minor: u32,
}

impl Variant {
    /// "cu121" -> 12.1, "cu118" -> 11.8, "cu130" -> 13.0. The last digit is the minor version
    /// (no CUDA release has had a two-digit minor). None for "cpu" and anything else.
    pub fn parse(name: &str) -> Option<Variant> {
        let digits = name.strip_prefix("cu")?;
        if digits.len() < 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (major, minor) = digits.split_at(digits.len() - 1);
        Some(Variant {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }

    /// From a CUDA version "12.1" (torch.version.cuda).
    pub fn from_cuda(version: &str) -> Option<Variant> {
        let v = Version::parse(version)?;
        Some(Variant {
            major: v.major(),
            minor: v.minor()?,
        })
    }

    /// "cu121".
    pub fn name(&self) -> String {
        format!("cu{}{}", self.major, self.minor)
    }

    /// "12.1".
    pub fn cuda(&self) -> String {
        format!("{}.{}", self.major, self.minor)
    }
}

/// `https://download.pytorch.org/whl/cu126`.
pub fn torch_index_url(variant: &str) -> String {
    format!("{TORCH_INDEX_BASE}{variant}")
}

/// `https://abetlen.github.io/llama-cpp-python/whl/cu125`.
pub fn llama_index_url(variant: &str) -> String {
    format!("{LLAMA_INDEX_BASE}{variant}")
}

// ---------------------------------------------------------------------------------------------
// Architectures

/// "sm_89" for compute capability 8.9.
pub fn sm_name(cc: (u32, u32)) -> String {
    format!("sm_{}{}", cc.0, cc.1)
}

/// One entry of an architecture list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArchEntry {
    /// `sm_XY`: SASS, runs on X.Z for Z >= Y.
    Sass(u32, u32),
    /// `sm_XYa`: SASS for exactly X.Y.
    Exact(u32, u32),
    /// `compute_XY`: PTX, JIT-compiled for any GPU of X.Y or newer.
    Ptx(u32, u32),
}

/// "sm_86" -> 8.6, "sm_120" -> 12.0, "sm_90a" (exact), "sm_100f" (family: as plain SASS),
/// "compute_90" (PTX). The last digit is the minor version.
fn parse_arch(entry: &str) -> Option<ArchEntry> {
    let entry = entry.trim().to_ascii_lowercase();
    let (ptx, rest) = match entry.strip_prefix("sm_") {
        Some(r) => (false, r),
        None => (true, entry.strip_prefix("compute_")?),
    };
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let suffix = &rest[digits.len()..];
    if digits.len() < 2 || !matches!(suffix, "" | "a" | "f") {
        return None;
    }
    let (major, minor) = digits.split_at(digits.len() - 1);
    let cc = (major.parse().ok()?, minor.parse().ok()?);
    Some(match (ptx, suffix) {
        (true, _) => ArchEntry::Ptx(cc.0, cc.1),
        (false, "a") => ArchEntry::Exact(cc.0, cc.1),
        (false, _) => ArchEntry::Sass(cc.0, cc.1),
    })
}

/// Whether code built for `list` runs on a GPU of compute capability `cc`, by NVIDIA's
/// binary-compatibility rule: SASS for the same major and an equal or lower minor (sm_86 runs
/// on 8.9, never on 9.0), arch-specific SASS (sm_90a) on exactly that GPU, or PTX of an equal or
/// lower capability, which the driver JIT-compiles.
pub fn arch_covers(list: &[String], cc: (u32, u32)) -> bool {
    list.iter().filter_map(|e| parse_arch(e)).any(|e| match e {
        ArchEntry::Sass(major, minor) => major == cc.0 && minor <= cc.1,
        ArchEntry::Exact(major, minor) => (major, minor) == cc,
        ArchEntry::Ptx(major, minor) => (major, minor) <= cc,
    })
}

// ---------------------------------------------------------------------------------------------
// PyTorch

/// "2.5" for "2.5.1+cu121", "2.10" for "2.10.0".
pub fn torch_series(version: &str) -> Option<String> {
    let public = version.split('+').next()?;
    Version::parse(public)?.short()
}

/// "2.5.1" for "2.5.1+cu121": the version pip is asked for.
pub fn public_version(version: &str) -> Option<&str> {
    let public = version.split('+').next()?.trim();
    Version::parse(public).map(|_| public)
}

/// The release row of a series.
pub fn torch_release(series: &str) -> Option<&'static TorchRelease> {
    let wanted = Version::parse(series)?;
    tables()
        .torch
        .release
        .iter()
        .find(|r| Version::parse(&r.series).is_some_and(|v| v == wanted))
}

/// Every release row, newest first.
pub fn torch_releases_newest_first() -> Vec<&'static TorchRelease> {
    let mut rows: Vec<&TorchRelease> = tables().torch.release.iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(Version::parse(&r.series)));
    rows
}

impl TorchRelease {
    /// The newest Python with wheels on this OS.
    pub fn python_max_for(&self, os: Os) -> &str {
        match (os, &self.linux_python_max) {
            (Os::Linux, Some(max)) => max,
            _ => &self.python_max,
        }
    }

    /// Whether this series has wheels for Python `python` ("3.13" or "3.13.1") on `os`.
    pub fn supports_python(&self, python: &str, os: Os) -> bool {
        in_range(python, &self.python_min, Some(self.python_max_for(os)))
    }

    /// "3.9–3.12" for messages.
    pub fn python_range(&self, os: Os) -> String {
        format!("{}–{}", self.python_min, self.python_max_for(os))
    }

    /// The variants, parsed, that exist (every published variant exists for both OSes).
    pub fn cuda_variants(&self) -> Vec<Variant> {
        self.variants
            .iter()
            .filter_map(|v| Variant::parse(v))
            .collect()
    }

    /// What `pip install torch` gets on `os`.
    pub fn pypi_default(&self, os: Os) -> &str {
        match os {
            Os::Linux => &self.linux_default,
            Os::Windows => &self.windows_default,
        }
    }
}

/// `major.minor` of `python` within `[min, max]` (max None: no upper bound).
fn in_range(python: &str, min: &str, max: Option<&str>) -> bool {
    let Some(py) = Version::parse(python).and_then(|v| v.short()) else {
        return false;
    };
    let (Some(py), Some(min)) = (Version::parse(&py), Version::parse(min)) else {
        return false;
    };
    py >= min && max.and_then(Version::parse).is_none_or(|max| py <= max)
}

/// The first (oldest) series with wheels for this Python on this OS.
pub fn first_torch_for_python(python: &str, os: Os) -> Option<&'static TorchRelease> {
    torch_releases_newest_first()
        .into_iter()
        .rev()
        .find(|r| r.supports_python(python, os))
}

/// The architecture list of a build, when the table knows it.
pub fn torch_arch_list(series: &str, variant: &str, os: Os) -> Option<&'static [String]> {
    let wanted = Version::parse(series)?;
    let row = tables().torch.arch_list.iter().find(|r| {
        r.variants.iter().any(|v| v == variant)
            && r.series
                .iter()
                .any(|s| Version::parse(s).is_some_and(|v| v == wanted))
    })?;
    Some(match (os, &row.windows) {
        (Os::Windows, Some(w)) => w.as_slice(),
        _ => row.linux.as_slice(),
    })
}

// ---------------------------------------------------------------------------------------------
// llama-cpp-python

impl LlamaWheels {
    /// Whether `version` is one of this row's releases.
    pub fn covers(&self, version: &str) -> bool {
        let (Some(v), Some(first), Some(last)) = (
            Version::parse(version),
            Version::parse(&self.first),
            Version::parse(&self.last),
        ) else {
            return false;
        };
        v >= first && v <= last
    }

    /// The CUDA variants published for `os`, parsed.
    pub fn variants(&self, os: Os) -> Vec<Variant> {
        let names = match os {
            Os::Linux => &self.linux,
            Os::Windows => &self.windows,
        };
        names.iter().filter_map(|v| Variant::parse(v)).collect()
    }

    pub fn supports_python(&self, python: &str) -> bool {
        in_range(python, &self.python_min, self.python_max.as_deref())
    }

    /// "3.9–3.12", or "3.8 and newer" for py3 wheels.
    pub fn python_range(&self) -> String {
        match &self.python_max {
            Some(max) => format!("{}–{max}", self.python_min),
            None => format!("{} and newer", self.python_min),
        }
    }

    /// The architectures of the builds for a CUDA major; None: all.
    pub fn archs(&self, cuda_major: u32) -> Option<&[String]> {
        match cuda_major {
            11 => self.archs_cuda11.as_deref(),
            12 => self.archs_cuda12.as_deref(),
            13 => self.archs_cuda13.as_deref(),
            _ => None,
        }
    }

    /// "0.3.25–0.3.35" or "0.3.4".
    pub fn releases(&self) -> String {
        if self.first == self.last {
            self.first.clone()
        } else {
            format!("{}–{}", self.first, self.last)
        }
    }
}

/// Every row, newest releases first.
pub fn llama_rows_newest_first() -> Vec<&'static LlamaWheels> {
    let mut rows: Vec<&LlamaWheels> = tables().llama_cpp.wheels.iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(Version::parse(&r.last)));
    rows
}

/// The row holding this release's wheels, if it has any.
pub fn llama_row_for(version: &str) -> Option<&'static LlamaWheels> {
    tables().llama_cpp.wheels.iter().find(|r| r.covers(version))
}

/// Whether this release has a CUDA wheel for this Python on this OS.
pub fn llama_has_wheels(version: &str, python: &str, os: Os) -> bool {
    llama_row_for(version).is_some_and(|r| !r.variants(os).is_empty() && r.supports_python(python))
}

/// The oldest release with CUDA wheels for this Python on this OS.
pub fn first_llama_for_python(python: &str, os: Os) -> Option<&'static str> {
    llama_rows_newest_first()
        .into_iter()
        .rev()
        .find(|r| !r.variants(os).is_empty() && r.supports_python(python))
        .map(|r| r.first.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn variants_parse_and_order() {
        let cu121 = Variant::parse("cu121").unwrap();
        assert_eq!((cu121.major, cu121.minor), (12, 1));
        assert_eq!(Variant::parse("cu118").unwrap().cuda(), "11.8");
        assert_eq!(Variant::parse("cu130").unwrap().name(), "cu130");
        assert!(Variant::parse("cu132") > Variant::parse("cu130"));
        assert!(Variant::parse("cu128") > Variant::parse("cu118"));
        assert!(Variant::parse("cu130") > Variant::parse("cu129"));
        for bad in ["cpu", "cu", "cu1", "rocm6.2", "cu12a", "xpu"] {
            assert_eq!(Variant::parse(bad), None, "{bad}");
        }
        assert_eq!(Variant::from_cuda("12.1"), Variant::parse("cu121"));
        assert_eq!(Variant::from_cuda("13"), None);
    }

    #[test]
    fn same_major_lower_minor_sass_runs_and_ptx_jits_forward() {
        let torch_cu121 = list(&[
            "sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90",
        ]);
        // The RTX 4060 (8.9) runs sm_86 cubins.
        assert!(arch_covers(&torch_cu121, (8, 9)));
        assert!(arch_covers(&torch_cu121, (9, 0)));
        // Never across majors: RTX 5090 (12.0) is not covered by sm_90.
        assert!(!arch_covers(&torch_cu121, (12, 0)));
        // sm_86 does not run on 8.0.
        assert!(!arch_covers(&list(&["sm_86"]), (8, 0)));
        // PTX JIT-compiles forward: compute_120 for 12.1, llama.cpp's compute_90 for Blackwell.
        let cu128 = list(&["sm_75", "sm_120", "compute_120"]);
        assert!(arch_covers(&cu128, (12, 1)));
        assert!(arch_covers(&cu128, (13, 0)));
        assert!(arch_covers(&list(&["sm_89", "compute_90"]), (12, 0)));
        assert!(!arch_covers(&list(&["sm_89", "compute_90"]), (8, 0)));
        // Arch-specific SASS runs on exactly that GPU.
        assert!(arch_covers(&list(&["sm_90a"]), (9, 0)));
        assert!(!arch_covers(&list(&["sm_90a"]), (9, 1)));
        assert!(!arch_covers(&list(&["garbage", "sm_", "sm_8"]), (8, 0)));
    }

    #[test]
    fn torch_series_and_public_versions() {
        assert_eq!(torch_series("2.5.1+cu121").as_deref(), Some("2.5"));
        assert_eq!(torch_series("2.10.0").as_deref(), Some("2.10"));
        assert_eq!(torch_series("junk"), None);
        assert_eq!(public_version("2.6.0+cpu"), Some("2.6.0"));
        assert_eq!(public_version("2.11.0"), Some("2.11.0"));
        assert_eq!(public_version("2.11.0a0+git"), None);
    }

    #[test]
    fn torch_releases_know_variants_pythons_and_pypi_defaults() {
        let r = torch_release("2.5").expect("2.5");
        assert_eq!(r.variants, list(&["cu118", "cu121", "cu124"]));
        assert_eq!(r.pypi_default(Os::Linux), "cu124");
        assert_eq!(r.pypi_default(Os::Windows), "cpu");
        // 2.5 had experimental Python 3.13 wheels on Linux only.
        assert!(r.supports_python("3.13.1", Os::Linux));
        assert!(!r.supports_python("3.13", Os::Windows));
        assert!(r.supports_python("3.9", Os::Windows) && !r.supports_python("3.8", Os::Linux));
        assert_eq!(r.python_range(Os::Windows), "3.9–3.12");
        assert!(torch_release("2.10").is_some_and(|r| r.supports_python("3.14", Os::Windows)));
        assert!(torch_release("2.14").is_none());
        assert_eq!(
            first_torch_for_python("3.13", Os::Windows).map(|r| r.series.as_str()),
            Some("2.6")
        );
        assert_eq!(
            first_torch_for_python("3.13", Os::Linux).map(|r| r.series.as_str()),
            Some("2.5")
        );
        assert_eq!(
            first_torch_for_python("3.14", Os::Linux).map(|r| r.series.as_str()),
            Some("2.9")
        );
        let newest = torch_releases_newest_first();
        assert_eq!(newest[0].series, "2.13");
        assert_eq!(newest.last().map(|r| r.series.as_str()), Some("2.0"));
    }

    #[test]
    fn torch_arch_lists_by_series_variant_and_os() {
        let w = torch_arch_list("2.5", "cu121", Os::Windows).unwrap();
        assert!(w.contains(&"sm_61".to_string()));
        let l = torch_arch_list("2.5", "cu121", Os::Linux).unwrap();
        assert!(!l.contains(&"sm_61".to_string()) && l.contains(&"sm_86".to_string()));
        // Measured on the GPU test machine: no PTX in 2.11 cu130.
        let m = torch_arch_list("2.11", "cu130", Os::Linux).unwrap();
        assert_eq!(
            m,
            list(&["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"])
        );
        // Windows rows default to the Linux list.
        assert_eq!(
            torch_arch_list("2.8", "cu129", Os::Windows),
            torch_arch_list("2.8", "cu129", Os::Linux)
        );
        assert_eq!(torch_arch_list("2.6", "cu118", Os::Linux), None); // not verified
        assert_eq!(
            torch_arch_list("2.5", "cu124", Os::Linux).map(|l| l.len()),
            Some(7)
        );
    }

    #[test]
    fn llama_rows_cover_releases_oses_and_pythons() {
        let r = llama_row_for("0.3.30").expect("0.3.30 has wheels");
        assert_eq!(r.releases(), "0.3.25–0.3.35");
        assert!(r.supports_python("3.13") && r.supports_python("3.14"));
        assert_eq!(
            r.variants(Os::Windows)
                .iter()
                .map(Variant::name)
                .collect::<Vec<_>>(),
            vec!["cu118", "cu124", "cu125", "cu130", "cu132"]
        );
        assert!(r.archs(12).unwrap().contains(&"compute_90".to_string()));
        assert!(!r.archs(11).unwrap().iter().any(|a| a.contains("90")));
        // 0.3.16: Linux only, CPython 3.9-3.12.
        let old = llama_row_for("0.3.16").unwrap();
        assert!(old.variants(Os::Windows).is_empty());
        assert!(!old.supports_python("3.13"));
        assert_eq!(old.archs(12), None); // "all"
        assert!(llama_has_wheels("0.3.16", "3.12", Os::Linux));
        assert!(!llama_has_wheels("0.3.16", "3.13", Os::Linux));
        assert!(!llama_has_wheels("0.3.16", "3.12", Os::Windows));
        // Releases without CUDA wheels, and unknown newer ones.
        for none in ["0.3.17", "0.3.2", "0.2.80", "0.3.36", "x"] {
            assert!(llama_row_for(none).is_none(), "{none}");
        }
        assert_eq!(first_llama_for_python("3.13", Os::Linux), Some("0.3.21"));
        assert_eq!(first_llama_for_python("3.13", Os::Windows), Some("0.3.22"));
        assert_eq!(first_llama_for_python("3.11", Os::Windows), Some("0.2.59"));
        assert_eq!(llama_rows_newest_first()[0].last, "0.3.35");
        assert_eq!(
            llama_index_url("cu125"),
            "https://abetlen.github.io/llama-cpp-python/whl/cu125"
        );
        assert_eq!(
            torch_index_url("cu126"),
            "https://download.pytorch.org/whl/cu126"
        );
    }
}
