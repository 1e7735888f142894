//! Dotted numeric versions ("580.159.04", "13.0", "12.4.131") compared the way NVIDIA means them:
//! part by part, as numbers, missing parts counting as zero.
//!
//! Plain string comparison gets driver versions wrong ("580.159.04" < "580.65.06" as text), and
//! semver parsers reject both two-part versions and leading zeros, so the project uses this.

use std::cmp::Ordering;
use std::fmt;

/// At most this many parts; nothing NVIDIA or CUDA publishes has more.
const MAX_PARTS: usize = 6;

/// A parsed version. Equality and order ignore trailing zero parts: "580" == "580.0.0".
#[derive(Debug, Clone)]
pub struct Version {
    parts: Vec<u32>,
    text: String,
}

impl Version {
    /// Parse "1", "13.0", "580.159.04". Surrounding whitespace is ignored; anything else that is
    /// not digits and dots (a sign, a suffix, an empty part) makes it None.
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.trim();
        let parts: Option<Vec<u32>> = text.split('.').map(parse_part).collect();
        let parts = parts.filter(|p| !p.is_empty() && p.len() <= MAX_PARTS)?;
        Some(Version {
            parts,
            text: text.to_string(),
        })
    }

    pub fn major(&self) -> u32 {
        self.parts[0]
    }

    pub fn minor(&self) -> Option<u32> {
        self.parts.get(1).copied()
    }

    pub fn patch(&self) -> Option<u32> {
        self.parts.get(2).copied()
    }

    pub fn parts(&self) -> &[u32] {
        &self.parts
    }

    /// "major.minor" ("13.0" for "13.0.2"); None when the version has no minor part.
    pub fn short(&self) -> Option<String> {
        Some(format!("{}.{}", self.major(), self.minor()?))
    }

    /// The text it was parsed from, trimmed (leading zeros kept: "580.65.06").
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn parse_part(part: &str) -> Option<u32> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let len = self.parts.len().max(other.parts.len());
        (0..len)
            .map(|i| {
                let a = self.parts.get(i).copied().unwrap_or(0);
                let b = other.parts.get(i).copied().unwrap_or(0);
                a.cmp(&b)
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `have >= need`, or None when either is not a version.
pub fn at_least(have: &str, need: &str) -> Option<bool> {
    Some(Version::parse(have)? >= Version::parse(need)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap_or_else(|| panic!("{s:?} should parse"))
    }

    #[test]
    fn driver_versions_compare_numerically_by_part() {
        assert!(v("580.159.04") > v("580.65.06"));
        assert!(v("580.65.06") > v("580.9"));
        assert!(v("575.57.08") < v("580"));
        assert!(v("1000") > v("999.99.99"));
        assert_eq!(v("580"), v("580.0.0"));
        assert_eq!(v("580.65.6"), v("580.65.06"));
        assert_eq!(v("580.65.06").cmp(&v("580.65.06")), Ordering::Equal);
    }

    #[test]
    fn parts_and_text_are_kept() {
        let x = v(" 580.159.04 ");
        assert_eq!(x.parts(), &[580, 159, 4]);
        assert_eq!(x.as_str(), "580.159.04");
        assert_eq!(x.to_string(), "580.159.04");
        assert_eq!((x.major(), x.minor(), x.patch()), (580, Some(159), Some(4)));
        assert_eq!(v("13.0.2").short().as_deref(), Some("13.0"));
        assert_eq!(v("13").short(), None);
    }

    #[test]
    fn things_that_are_not_versions_are_rejected() {
        for bad in [
            "",
            ".",
            "1.",
            ".1",
            "1..2",
            "+1",
            "-1",
            "1.2a",
            "v1.2",
            "1.2.3.4.5.6.7",
            "99999999999",
            "1 2",
        ] {
            assert!(Version::parse(bad).is_none(), "{bad:?} parsed");
        }
    }

    #[test]
    fn at_least_compares_or_says_unknown() {
        assert_eq!(at_least("580.159.04", "580.65.06"), Some(true));
        assert_eq!(at_least("575.57.08", "580"), Some(false));
        assert_eq!(at_least("580", "580.0"), Some(true));
        assert_eq!(at_least("n/a", "580"), None);
    }
}
