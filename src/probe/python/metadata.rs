//! Package metadata read as text: dist-info folder names, the header block of `METADATA`,
//! `Requires-Dist` lines with their PEP 508 environment markers, and `WHEEL` tags.
//!
//! torch's Linux wheels name the NVIDIA runtime wheels they need in `Requires-Dist` lines
//! guarded by markers (`platform_system == "Linux" and platform_machine == "x86_64"`), and
//! tensorflow's name them under `extra == "and-cuda"`. To say which of those an environment
//! lacks, the markers are evaluated here for the environment's platform, with three-valued
//! logic: a marker that asks about something unknown is "unknown", and only a definite "true"
//! makes a requirement count.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// METADATA headers are a few KiB; the long description that follows is skipped. torch's
/// whole METADATA is about 30 KiB.
const MAX_METADATA: u64 = 512 * 1024;
/// Small text files (WHEEL, version.py, __init__.py, pyvenv.cfg).
pub(crate) const MAX_SMALL_FILE: u64 = 64 * 1024;

/// Read at most `limit` bytes of a text file; larger files are an error, not a truncation,
/// unless `allow_truncate` (METADATA: only its head is needed).
pub(crate) fn read_text(path: &Path, limit: u64, allow_truncate: bool) -> Result<String, String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > limit {
        if !allow_truncate {
            return Err(format!("{}: larger than {limit} bytes", path.display()));
        }
        bytes.truncate(limit as usize);
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// PEP 503 normalization: lower case, runs of `-`, `_`, `.` become one `-`.
pub(crate) fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
            continue;
        }
        if sep && !out.is_empty() {
            out.push('-');
        }
        sep = false;
        out.extend(c.to_lowercase());
    }
    out
}

/// Name and version from a `.dist-info` (or `.egg-info`) folder name:
/// `nvidia_cublas_cu12-12.4.5.8.dist-info` -> ("nvidia-cublas-cu12", "12.4.5.8").
/// Wheel installers escape `-` in names as `_`, so the first `-` ends the name.
pub(crate) fn parse_dist_dir(dir_name: &str) -> Option<(String, String)> {
    let stem = dir_name
        .strip_suffix(".dist-info")
        .or_else(|| dir_name.strip_suffix(".egg-info"))?;
    let (name, rest) = stem.split_once('-')?;
    // egg-info names may carry "-py3.11" after the version.
    let version = rest.split('-').next().unwrap_or(rest);
    if name.is_empty() || version.is_empty() {
        return None;
    }
    Some((normalize_name(name), version.to_string()))
}

/// The headers of a METADATA file that matter here.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Metadata {
    pub version: Option<String>,
    pub requires: Vec<Requirement>,
}

/// Read a dist-info's METADATA headers.
pub(crate) fn read_metadata(path: &Path) -> Result<Metadata, String> {
    let text = read_text(path, MAX_METADATA, true)?;
    Ok(parse_metadata(&text))
}

/// Parse METADATA headers (RFC 822 style) up to the first blank line.
pub(crate) fn parse_metadata(text: &str) -> Metadata {
    let mut meta = Metadata::default();
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        // Folded continuation lines belong to the previous header (a description).
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            "version" => meta.version = Some(value.to_string()),
            "requires-dist" => meta.requires.extend(parse_requirement(value)),
            _ => {}
        }
    }
    meta
}

/// One `Requires-Dist` value.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Requirement {
    /// Normalized name.
    pub name: String,
    /// Extras requested of it: `cuda-toolkit[cublas,cudart]`.
    pub extras: Vec<String>,
    /// The environment marker after `;`, if any.
    pub marker: Option<String>,
}

/// Parse `name[extra,...] (spec) ; marker` in both the old (`(==1.0) ;`) and new styles.
pub(crate) fn parse_requirement(text: &str) -> Option<Requirement> {
    let (spec, marker) = match text.split_once(';') {
        Some((s, m)) => (s, Some(m.trim().to_string()).filter(|m| !m.is_empty())),
        None => (text, None),
    };
    let spec = spec.trim();
    let name_end = spec
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(spec.len());
    let name = &spec[..name_end];
    if name.is_empty() {
        return None;
    }
    let rest = spec[name_end..].trim_start();
    let extras = match rest.strip_prefix('[').and_then(|r| r.split_once(']')) {
        Some((list, _)) => list
            .split(',')
            .map(normalize_name)
            .filter(|e| !e.is_empty())
            .collect(),
        None => Vec::new(),
    };
    Some(Requirement {
        name: normalize_name(name),
        extras,
        marker,
    })
}

/// The platform a requirement's marker is evaluated for. `None` fields are unknown.
#[derive(Debug, Clone, Default)]
pub(crate) struct MarkerEnv {
    /// "Linux", "Windows", "Darwin".
    pub platform_system: Option<String>,
    /// "linux", "win32", "darwin".
    pub sys_platform: Option<String>,
    /// "x86_64", "aarch64", "AMD64", "ARM64".
    pub platform_machine: Option<String>,
    /// "3.12".
    pub python_version: Option<String>,
    /// "3.12.3".
    pub python_full_version: Option<String>,
    /// The extras being installed (normalized).
    pub extras: Vec<String>,
}

impl MarkerEnv {
    /// The platform of a wheel tag's platform part: `manylinux_2_28_x86_64`, `win_amd64`,
    /// `macosx_11_0_arm64`. Unknown tags (`any`) leave everything unknown.
    pub fn from_platform_tag(platform: &str) -> MarkerEnv {
        let mut env = MarkerEnv::default();
        let (system, sys) = if platform.contains("linux") {
            ("Linux", "linux")
        } else if platform.starts_with("win") {
            ("Windows", "win32")
        } else if platform.starts_with("macosx") {
            ("Darwin", "darwin")
        } else {
            return env;
        };
        env.platform_system = Some(system.to_string());
        env.sys_platform = Some(sys.to_string());
        env.platform_machine = machine_of_tag(platform).map(str::to_string);
        env
    }

    /// The platform of an environment laid out as `layout` ("windows"/"posix") on this host.
    pub fn from_layout(layout: &str) -> MarkerEnv {
        if layout == "windows" {
            return MarkerEnv {
                platform_system: Some("Windows".into()),
                sys_platform: Some("win32".into()),
                platform_machine: Some("AMD64".into()),
                ..MarkerEnv::default()
            };
        }
        let (system, sys) = match std::env::consts::OS {
            "linux" => ("Linux", "linux"),
            "macos" => ("Darwin", "darwin"),
            _ => return MarkerEnv::default(),
        };
        MarkerEnv {
            platform_system: Some(system.into()),
            sys_platform: Some(sys.into()),
            platform_machine: Some(std::env::consts::ARCH.into()),
            ..MarkerEnv::default()
        }
    }

    pub fn with_python(mut self, version: Option<&str>) -> MarkerEnv {
        if let Some(v) = version {
            let parts: Vec<&str> = v.split('.').collect();
            if parts.len() >= 2 {
                self.python_version = Some(format!("{}.{}", parts[0], parts[1]));
            }
            if parts.len() >= 3 {
                self.python_full_version = Some(v.to_string());
            }
        }
        self
    }

    pub fn with_extras(mut self, extras: &[String]) -> MarkerEnv {
        self.extras = extras.iter().map(|e| normalize_name(e)).collect();
        self
    }

    fn variable(&self, name: &str) -> Option<&str> {
        match name {
            "platform_system" => self.platform_system.as_deref(),
            "sys_platform" => self.sys_platform.as_deref(),
            "platform_machine" => self.platform_machine.as_deref(),
            "python_version" => self.python_version.as_deref(),
            "python_full_version" => self.python_full_version.as_deref(),
            "os_name" => match self.sys_platform.as_deref() {
                Some("win32") => Some("nt"),
                Some(_) => Some("posix"),
                None => None,
            },
            _ => None,
        }
    }
}

/// The machine part of a wheel platform tag.
fn machine_of_tag(platform: &str) -> Option<&'static str> {
    const MACHINES: &[(&str, &str)] = &[
        ("win_amd64", "AMD64"),
        ("win_arm64", "ARM64"),
        ("win32", "x86"),
        ("x86_64", "x86_64"),
        ("aarch64", "aarch64"),
        ("arm64", "arm64"),
        ("ppc64le", "ppc64le"),
        ("s390x", "s390x"),
        ("i686", "i686"),
        ("armv7l", "armv7l"),
    ];
    MACHINES
        .iter()
        .find(|(suffix, _)| platform.ends_with(suffix))
        .map(|&(_, m)| m)
}

/// The first `Tag:` of a WHEEL file: "cp312-cp312-manylinux_2_28_x86_64".
pub(crate) fn wheel_tag(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("tag"))
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The platform part of a wheel tag (after the second `-`).
pub(crate) fn tag_platform(tag: &str) -> Option<&str> {
    tag.splitn(3, '-').nth(2)
}

/// Does `req` apply to `env`? Only a marker that is definitely true (or no marker) counts.
pub(crate) fn applies(req: &Requirement, env: &MarkerEnv) -> bool {
    match &req.marker {
        None => true,
        Some(marker) => eval_marker(marker, env) == Some(true),
    }
}

/// Evaluate a PEP 508 marker. `None` means the answer depends on something unknown, or the
/// marker could not be parsed.
pub(crate) fn eval_marker(marker: &str, env: &MarkerEnv) -> Option<bool> {
    let tokens = tokenize(marker)?;
    let mut parser = Parser {
        tokens: &tokens,
        pos: 0,
        env,
        depth: 0,
    };
    let value = parser.or_expr()?;
    if parser.pos != tokens.len() {
        return None;
    }
    value
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    /// A variable name or keyword (and, or, in, not).
    Word(String),
    Str(String),
    Op(String),
}

fn tokenize(text: &str) -> Option<Vec<Token>> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' || c == ')' {
            out.push(if c == '(' { Token::Open } else { Token::Close });
            i += 1;
        } else if c == '"' || c == '\'' {
            let end = chars[i + 1..].iter().position(|&d| d == c)? + i + 1;
            out.push(Token::Str(chars[i + 1..end].iter().collect()));
            i = end + 1;
        } else if "=!<>~".contains(c) {
            let start = i;
            while i < chars.len() && "=!<>~".contains(chars[i]) {
                i += 1;
            }
            out.push(Token::Op(chars[start..i].iter().collect()));
        } else if c.is_alphanumeric() || c == '_' || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || "_.".contains(chars[i])) {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            return None;
        }
    }
    Some(out)
}

/// Recursive descent over `or_expr := and_expr ("or" and_expr)*`,
/// `and_expr := atom ("and" atom)*`, `atom := "(" or_expr ")" | value op value`.
/// The outer Option is "parsed", the inner one "known".
struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
    env: &'a MarkerEnv,
    depth: u32,
}

/// Nesting deeper than this is not a real marker; refusing it bounds the recursion.
const MAX_MARKER_DEPTH: u32 = 32;

impl Parser<'_> {
    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Word(w)) if w == word)
    }

    fn or_expr(&mut self) -> Option<Option<bool>> {
        let mut acc = self.and_expr()?;
        while self.peek_word("or") {
            self.pos += 1;
            let rhs = self.and_expr()?;
            acc = match (acc, rhs) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            };
        }
        Some(acc)
    }

    fn and_expr(&mut self) -> Option<Option<bool>> {
        let mut acc = self.atom()?;
        while self.peek_word("and") {
            self.pos += 1;
            let rhs = self.atom()?;
            acc = match (acc, rhs) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            };
        }
        Some(acc)
    }

    fn atom(&mut self) -> Option<Option<bool>> {
        if self.tokens.get(self.pos) == Some(&Token::Open) {
            self.depth += 1;
            if self.depth > MAX_MARKER_DEPTH {
                return None;
            }
            self.pos += 1;
            let inner = self.or_expr()?;
            if self.tokens.get(self.pos) != Some(&Token::Close) {
                return None;
            }
            self.pos += 1;
            self.depth -= 1;
            return Some(inner);
        }
        let lhs = self.value()?;
        let op = self.operator()?;
        let rhs = self.value()?;
        Some(self.compare(lhs, &op, rhs))
    }

    /// A value: a string literal (known) or a variable (known or not), with its name.
    fn value(&mut self) -> Option<(Option<String>, Option<String>)> {
        let token = self.tokens.get(self.pos)?.clone();
        self.pos += 1;
        match token {
            Token::Str(s) => Some((None, Some(s))),
            Token::Word(w) if w == "extra" => Some((Some(w), None)),
            Token::Word(w) => {
                let v = self.env.variable(&w).map(str::to_string);
                Some((Some(w), v))
            }
            _ => None,
        }
    }

    fn operator(&mut self) -> Option<String> {
        match self.tokens.get(self.pos)? {
            Token::Op(op) => {
                self.pos += 1;
                Some(op.clone())
            }
            Token::Word(w) if w == "in" => {
                self.pos += 1;
                Some("in".into())
            }
            Token::Word(w) if w == "not" => {
                if matches!(self.tokens.get(self.pos + 1), Some(Token::Word(n)) if n == "in") {
                    self.pos += 2;
                    Some("not in".into())
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    fn compare(
        &self,
        (lname, lval): (Option<String>, Option<String>),
        op: &str,
        (rname, rval): (Option<String>, Option<String>),
    ) -> Option<bool> {
        // `extra == "x"`: true exactly when x is among the extras being installed.
        if lname.as_deref() == Some("extra") || rname.as_deref() == Some("extra") {
            let lit = normalize_name(lval.as_deref().or(rval.as_deref())?);
            let present = self.env.extras.contains(&lit);
            return match op {
                "==" => Some(present),
                "!=" => Some(!present),
                _ => None,
            };
        }
        let (l, r) = (lval?, rval?);
        let versions = [lname.as_deref(), rname.as_deref()]
            .iter()
            .any(|n| matches!(n, Some("python_version" | "python_full_version")));
        match op {
            "in" => Some(r.contains(&l)),
            "not in" => Some(!r.contains(&l)),
            _ if versions => compare_versions(&l, op, &r),
            "==" | "===" => Some(l == r),
            "!=" => Some(l != r),
            _ => None,
        }
    }
}

/// Compare dotted numeric versions ("3.12" < "3.13"); non-numeric parts make it unknown.
fn compare_versions(l: &str, op: &str, r: &str) -> Option<bool> {
    let parse = |s: &str| -> Option<Vec<u64>> { s.split('.').map(|p| p.parse().ok()).collect() };
    let (mut a, mut b) = (parse(l)?, parse(r)?);
    let n = a.len().max(b.len());
    a.resize(n, 0);
    b.resize(n, 0);
    let ord = a.cmp(&b);
    use std::cmp::Ordering::*;
    Some(match op {
        "==" | "===" => ord == Equal,
        "!=" => ord != Equal,
        "<" => ord == Less,
        "<=" => ord != Greater,
        ">" => ord == Greater,
        ">=" => ord != Less,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux() -> MarkerEnv {
        MarkerEnv::from_platform_tag("manylinux_2_28_x86_64").with_python(Some("3.12.3"))
    }

    #[test]
    fn names_normalize_and_dist_dirs_split() {
        assert_eq!(normalize_name("Nvidia_CUBLAS.cu12"), "nvidia-cublas-cu12");
        assert_eq!(
            parse_dist_dir("nvidia_cublas_cu12-12.4.5.8.dist-info"),
            Some(("nvidia-cublas-cu12".into(), "12.4.5.8".into()))
        );
        assert_eq!(
            parse_dist_dir("llama_cpp_python-0.3.36.dist-info"),
            Some(("llama-cpp-python".into(), "0.3.36".into()))
        );
        assert_eq!(
            parse_dist_dir("torch-2.5.1+cu121.dist-info"),
            Some(("torch".into(), "2.5.1+cu121".into()))
        );
        assert_eq!(parse_dist_dir("foo-1.0-py3.11.egg-info").unwrap().1, "1.0");
        assert_eq!(parse_dist_dir("torch"), None);
        assert_eq!(parse_dist_dir("-1.0.dist-info"), None);
    }

    #[test]
    fn requirements_in_old_and_new_syntax() {
        let old = parse_requirement(
            "nvidia-cuda-runtime-cu12 (==12.4.127) ; platform_system == \"Linux\"",
        )
        .unwrap();
        assert_eq!(old.name, "nvidia-cuda-runtime-cu12");
        assert_eq!(old.marker.as_deref(), Some("platform_system == \"Linux\""));
        let kit = parse_requirement(
            "cuda-toolkit[cublas,cudart,nvrtc]==13.0.2; platform_system == \"Linux\"",
        )
        .unwrap();
        assert_eq!(kit.name, "cuda-toolkit");
        assert_eq!(kit.extras, ["cublas", "cudart", "nvrtc"]);
        let tf = parse_requirement("protobuf !=4.21.0,<6.0.0dev,>=3.20.3").unwrap();
        assert_eq!(tf.name, "protobuf");
        assert!(tf.marker.is_none());
        assert!(parse_requirement("  ; x").is_none());
    }

    #[test]
    fn markers_evaluate_for_the_wheel_platform() {
        let m = "platform_system == \"Linux\" and platform_machine == \"x86_64\"";
        assert_eq!(eval_marker(m, &linux()), Some(true));
        let win = MarkerEnv::from_platform_tag("win_amd64");
        assert_eq!(eval_marker(m, &win), Some(false));
        let arm = MarkerEnv::from_platform_tag("manylinux2014_aarch64");
        assert_eq!(eval_marker(m, &arm), Some(false));
        let m2 = "(sys_platform == 'linux' or sys_platform == 'win32') and extra == 'cublas'";
        assert_eq!(eval_marker(m2, &linux()), Some(false));
        let with = linux().with_extras(&["cublas".to_string()]);
        assert_eq!(eval_marker(m2, &with), Some(true));
        assert_eq!(
            eval_marker(m2, &win.with_extras(&["cublas".into()])),
            Some(true)
        );
    }

    #[test]
    fn python_version_markers_compare_numerically() {
        let m = "platform_system == \"Linux\" and python_version < \"3.13\"";
        assert_eq!(eval_marker(m, &linux()), Some(true));
        let py313 = linux().with_python(Some("3.13.1"));
        assert_eq!(eval_marker(m, &py313), Some(false));
        // 3.9 < 3.10 numerically, not as text.
        let py39 = linux().with_python(Some("3.9"));
        assert_eq!(
            eval_marker("python_version >= \"3.10\"", &py39),
            Some(false)
        );
    }

    #[test]
    fn unknowns_stay_unknown_and_garbage_is_refused() {
        let unknown = MarkerEnv::default();
        assert_eq!(eval_marker("platform_system == \"Linux\"", &unknown), None);
        // false and unknown is false; true or unknown is true.
        let m = "platform_machine == \"nope\" and implementation_name == \"cpython\"";
        assert_eq!(eval_marker(m, &linux()), Some(false));
        let m = "platform_machine == \"x86_64\" or implementation_name == \"cpython\"";
        assert_eq!(eval_marker(m, &linux()), Some(true));
        for bad in [
            "",
            "(",
            "platform_system ==",
            "a == 'b",
            "a == 'b' and",
            "((((",
            "a $ b",
        ] {
            assert_eq!(eval_marker(bad, &linux()), None, "{bad:?}");
        }
        let deep = format!("{}a == 'b'{}", "(".repeat(100), ")".repeat(100));
        assert_eq!(eval_marker(&deep, &linux()), None);
    }

    #[test]
    fn metadata_headers_stop_at_the_body() {
        let text = "Metadata-Version: 2.1\nName: torch\nVersion: 2.5.1\n\
            Requires-Dist: filelock\n\
            Requires-Dist: nvidia-nccl-cu12==2.21.5; platform_system == \"Linux\"\n\
            Description: folded\n  Requires-Dist: not-a-header\n\
            \n\
            Requires-Dist: in-the-body\n";
        let meta = parse_metadata(text);
        assert_eq!(meta.version.as_deref(), Some("2.5.1"));
        let names: Vec<_> = meta.requires.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["filelock", "nvidia-nccl-cu12"]);
    }

    #[test]
    fn wheel_tags() {
        let text = "Wheel-Version: 1.0\nTag: cp311-cp311-manylinux_2_17_aarch64\nTag: x\n";
        let tag = wheel_tag(text).unwrap();
        assert_eq!(tag_platform(&tag), Some("manylinux_2_17_aarch64"));
        let env = MarkerEnv::from_platform_tag(tag_platform(&tag).unwrap());
        assert_eq!(env.platform_machine.as_deref(), Some("aarch64"));
        assert_eq!(wheel_tag("Wheel-Version: 1.0\n"), None);
        assert!(MarkerEnv::from_platform_tag("any")
            .platform_system
            .is_none());
    }
}
