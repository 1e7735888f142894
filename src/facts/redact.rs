//! `--redact`: Facts and reports without the things that identify a person or a machine, for
//! sharing in an issue or a support bundle.
//!
//! What goes, in every string value of the Facts (so in every finding, fix and report made
//! from them, since rules and reports only read Facts):
//! - home folders: this user's (`HOME`, `USERPROFILE`) wherever it is, and any
//!   `/home/NAME`, `/Users/NAME`, `/root` and `X:\Users\NAME` path, become `~`;
//! - user names: this user's (`USER`, `LOGNAME`, `USERNAME`) and those the home folders named,
//!   as whole words, become `redacted-user` (generic account names such as `root` or `runner`
//!   are not personal and stay);
//! - the host name (as recorded, and its first label), as a whole word: `redacted-host`;
//! - GPU serial numbers: `redacted-serial-001`, ...;
//! - GPU and MIG UUIDs, and any other UUID: `GPU-redacted-001`, `MIG-redacted-001`,
//!   `redacted-uuid-001`. The same UUID always gets the same placeholder within one run, and a
//!   UUID prefix (as `CUDA_VISIBLE_DEVICES` may hold) gets the placeholder of the one GPU it
//!   names, so the facts still join up and the verdict is the one the real facts give.
//!
//! PCI bus ids, GPU names, driver and library versions stay: they identify hardware and
//! software models, not a person or a machine, and the findings need them.
//!
//! Reports also name files that are not in the Facts (the configuration, user rule files):
//! [`redact_text`] removes home folders from a rendered report too. Placeholders use only
//! letters, digits, `-` and `~`, so no output format needs them escaped.

use super::Facts;
use serde_json::Value;
use std::collections::BTreeSet;

/// Accounts that name a role, not a person.
const GENERIC_USERS: &[&str] = &[
    "root",
    "admin",
    "administrator",
    "user",
    "ubuntu",
    "debian",
    "runner",
    "ec2-user",
    "vagrant",
    "nobody",
    "public",
    "default",
    "shared",
    "all users",
    "default user",
];

/// Characters that end a path inside a longer text (`PATH=/a:/b`, `"…"`, `(…)`).
fn ends_path(c: char) -> bool {
    c.is_whitespace() || "\"'`;,=()[]{}<>|&".contains(c)
}

/// Characters that continue a word, for whole-word replacement.
fn in_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

/// Redact `facts` (see the module documentation) using this process's user and home folder.
/// Fails (rather than give back anything unredacted) in the one case it cannot redact.
pub fn redact(facts: Facts) -> Result<Facts, String> {
    let me = Me::from_env();
    Redactor::new(&facts, &me).facts(facts)
}

/// Remove home folders from a rendered report (the parts that do not come from Facts).
pub fn redact_text(text: &str) -> String {
    let me = Me::from_env();
    replace_homes(text, me.home.as_deref(), &mut BTreeSet::new())
}

/// The user running the doctor, as the environment names them.
#[derive(Debug, Default, Clone)]
pub struct Me {
    pub home: Option<String>,
    pub users: Vec<String>,
}

impl Me {
    pub fn from_env() -> Me {
        // Lossy, as the facts hold the environment: a home that is not UTF-8 is still redacted.
        let var = |k: &str| {
            std::env::var_os(k)
                .map(|v| v.to_string_lossy().into_owned())
                .filter(|v| !v.trim().is_empty())
        };
        let home = var("HOME")
            .or_else(|| var("USERPROFILE"))
            .map(|h| h.trim_end_matches(['/', '\\']).to_string())
            // `/` or `C:` as a home would redact every path.
            .filter(|h| h.chars().filter(|c| *c == '/' || *c == '\\').count() >= 1 && h.len() > 3);
        let users = ["USER", "LOGNAME", "USERNAME"]
            .iter()
            .filter_map(|k| var(k))
            .collect();
        Me { home, users }
    }
}

/// What one redaction replaces, gathered from the Facts before any is changed.
pub struct Redactor {
    home: Option<String>,
    users: Vec<String>,
    hosts: Vec<String>,
    serials: Vec<(String, String)>,
    /// Lower-case UUIDs as written ("gpu-…", "mig-…" or bare), and their placeholders.
    uuids: std::cell::RefCell<Vec<(String, String)>>,
    /// The GPUs' full UUIDs (lower case), in NVML then CUDA order, for prefix lookups.
    known_gpus: Vec<String>,
}

impl Redactor {
    pub fn new(facts: &Facts, me: &Me) -> Redactor {
        let mut hosts = Vec::new();
        if let Some(h) = facts.host.hostname.as_deref().map(str::trim) {
            if !h.is_empty() {
                hosts.push(h.to_string());
                let short = h.split('.').next().unwrap_or(h);
                if short != h && !short.is_empty() {
                    hosts.push(short.to_string());
                }
            }
        }
        let serials = facts
            .driver
            .gpus
            .iter()
            .filter_map(|g| g.serial.as_deref())
            .filter(|s| s.chars().any(|c| c.is_ascii_alphanumeric()) && !s.contains("N/A"))
            .collect::<BTreeSet<&str>>()
            .into_iter()
            .enumerate()
            .map(|(i, s)| (s.to_string(), format!("redacted-serial-{:03}", i + 1)))
            .collect();
        let mut known_gpus: Vec<String> = Vec::new();
        let gpu_uuids = facts.driver.gpus.iter().map(|g| g.uuid.as_str());
        let cuda_uuids = facts.cuda.devices.iter().filter_map(|d| d.uuid.as_deref());
        for u in gpu_uuids.chain(cuda_uuids) {
            let u = u.trim().to_ascii_lowercase();
            if u.starts_with("gpu-") && !known_gpus.contains(&u) {
                known_gpus.push(u);
            }
        }
        let mut r = Redactor {
            home: me.home.clone(),
            users: Vec::new(),
            hosts,
            serials,
            uuids: std::cell::RefCell::new(Vec::new()),
            known_gpus: known_gpus.clone(),
        };
        // Number the GPUs first, in their order, so GPU 0 is GPU-redacted-001.
        for u in &known_gpus {
            r.uuid_placeholder(u);
        }
        let mut users: BTreeSet<String> = me.users.iter().cloned().collect();
        if let Ok(value) = serde_json::to_value(facts) {
            for_each_string(&value, &mut |s| {
                replace_homes(s, r.home.as_deref(), &mut users);
            });
        }
        r.users = users
            .into_iter()
            .filter(|u| u.chars().count() >= 3 && !is_generic(u))
            .collect();
        // Longest first, so `alice` does not cut into `alice2`.
        r.users.sort_by_key(|u| std::cmp::Reverse(u.len()));
        r
    }

    /// The redacted copy of `facts`.
    ///
    /// Strings are redacted in the Facts' JSON form. Should a whole-word replacement turn a
    /// value the schema reads as a fixed word (a probe status `ok`, for a host named `ok`) into
    /// something it does not accept, the words are left to the fields that hold them (host
    /// name, serials) and only the patterns (homes, UUIDs) are replaced in free text.
    pub fn facts(&self, facts: Facts) -> Result<Facts, String> {
        let value = serde_json::to_value(&facts).map_err(|e| e.to_string())?;
        let full = self.map(&value, true);
        let mut redacted = match serde_json::from_value::<Facts>(full) {
            Ok(f) => f,
            Err(_) => serde_json::from_value(self.map(&value, false))
                .map_err(|e| format!("cannot redact these facts: {e}"))?,
        };
        if let Some(h) = redacted.host.hostname.as_mut() {
            *h = "redacted-host".to_string();
        }
        for gpu in &mut redacted.driver.gpus {
            if let Some(serial) = gpu.serial.as_mut() {
                if let Some((_, p)) = self.serials.iter().find(|(s, _)| s == serial) {
                    *serial = p.clone();
                }
            }
        }
        Ok(redacted)
    }

    fn map(&self, value: &Value, words: bool) -> Value {
        let mut value = value.clone();
        map_strings(&mut value, &mut |s| self.replace(s, words));
        value
    }

    /// One string with everything of the module documentation replaced.
    pub fn text(&self, s: &str) -> String {
        self.replace(s, true)
    }

    /// Patterns (homes, UUIDs) always; whole words (serials, host, users) when `words`.
    fn replace(&self, s: &str, words: bool) -> String {
        let mut out = replace_homes(s, self.home.as_deref(), &mut BTreeSet::new());
        out = self.replace_uuids(&out);
        if !words {
            return out;
        }
        for (serial, placeholder) in &self.serials {
            out = replace_word(&out, serial, placeholder);
        }
        for host in &self.hosts {
            out = replace_word(&out, host, "redacted-host");
        }
        for user in &self.users {
            out = replace_word(&out, user, "redacted-user");
        }
        out
    }

    /// The placeholder for a UUID token (lower case, with its `gpu-`/`mig-` prefix if any).
    fn uuid_placeholder(&self, token: &str) -> String {
        // A prefix of exactly one GPU's UUID names that GPU (CUDA_VISIBLE_DEVICES=GPU-1a0d).
        let mut named = self.known_gpus.iter().filter(|g| g.starts_with(token));
        let target = match (named.next(), named.next()) {
            (Some(one), None) => one.clone(),
            _ => token.to_string(),
        };
        let mut uuids = self.uuids.borrow_mut();
        if let Some((_, p)) = uuids.iter().find(|(u, _)| *u == target) {
            return p.clone();
        }
        let kind = if target.starts_with("gpu-") {
            "GPU-redacted"
        } else if target.starts_with("mig-") {
            "MIG-redacted"
        } else {
            "redacted-uuid"
        };
        let n = uuids.iter().filter(|(_, p)| p.starts_with(kind)).count() + 1;
        let placeholder = format!("{kind}-{n:03}");
        uuids.push((target, placeholder.clone()));
        placeholder
    }

    /// Replace `GPU-<hex>`, `MIG-<hex>` and bare 8-4-4-4-12 UUIDs.
    fn replace_uuids(&self, s: &str) -> String {
        let chars: Vec<char> = s.chars().collect();
        let mut out = String::with_capacity(s.len());
        let mut i = 0;
        while i < chars.len() {
            let boundary = i == 0 || !chars[i - 1].is_alphanumeric();
            if boundary {
                if let Some(len) = uuid_token_len(&chars[i..]) {
                    let token: String = chars[i..i + len].iter().collect();
                    out.push_str(&self.uuid_placeholder(&token.to_ascii_lowercase()));
                    i += len;
                    continue;
                }
            }
            out.push(chars[i]);
            i += 1;
        }
        out
    }
}

fn is_generic(user: &str) -> bool {
    GENERIC_USERS.contains(&user.to_ascii_lowercase().as_str())
}

/// The length of a UUID token at the start of `chars`: `GPU-`/`MIG-` and at least four hex
/// digits (a prefix is enough), or a bare 8-4-4-4-12 UUID; it must end at a word boundary.
fn uuid_token_len(chars: &[char]) -> Option<usize> {
    let hex_run = |from: usize| {
        chars[from..]
            .iter()
            .take_while(|c| c.is_ascii_hexdigit() || **c == '-')
            .count()
    };
    let ends_well = |end: usize| chars.get(end).is_none_or(|c| !c.is_alphanumeric());
    let prefix: String = chars
        .iter()
        .take(4)
        .collect::<String>()
        .to_ascii_lowercase();
    if prefix == "gpu-" || prefix == "mig-" {
        let mut run = hex_run(4);
        while run > 0 && chars[4 + run - 1] == '-' {
            run -= 1;
        }
        let digits = chars[4..4 + run]
            .iter()
            .filter(|c| c.is_ascii_hexdigit())
            .count();
        return (digits >= 4 && ends_well(4 + run)).then_some(4 + run);
    }
    let groups = [8, 4, 4, 4, 12];
    let mut at = 0;
    for (k, len) in groups.iter().enumerate() {
        let hex = chars[at..]
            .iter()
            .take_while(|c| c.is_ascii_hexdigit())
            .count();
        if hex != *len {
            return None;
        }
        at += len;
        if k < groups.len() - 1 {
            if chars.get(at) != Some(&'-') {
                return None;
            }
            at += 1;
        }
    }
    ends_well(at).then_some(at)
}

/// Replace `word` where it stands as a whole word (not inside a longer name).
fn replace_word(s: &str, word: &str, with: &str) -> String {
    if word.is_empty() || !s.contains(word) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut prev: Option<char> = None;
    while let Some(at) = rest.find(word) {
        let before = rest[..at].chars().next_back().or(prev);
        let after = rest[at + word.len()..].chars().next();
        let whole = !before.is_some_and(in_word) && !after.is_some_and(in_word);
        out.push_str(&rest[..at]);
        out.push_str(if whole { with } else { word });
        prev = word.chars().next_back();
        rest = &rest[at + word.len()..];
    }
    out.push_str(rest);
    out
}

/// Replace home folders in every path of `s` with `~`, adding the user names they hold to
/// `users`. `own` is this user's home, wherever it is.
fn replace_homes(s: &str, own: Option<&str>, users: &mut BTreeSet<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut token = String::new();
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        // A drive letter's colon (`C:\`) belongs to the path; other colons separate paths.
        let drive_colon = c == ':'
            && token.len() == 1
            && token.chars().all(|t| t.is_ascii_alphabetic())
            && matches!(chars.get(i + 1), Some('\\' | '/'));
        if ends_path(c) || (c == ':' && !drive_colon) {
            out.push_str(&home_in_path(&token, own, users));
            token.clear();
            out.push(c);
        } else {
            token.push(c);
        }
    }
    out.push_str(&home_in_path(&token, own, users));
    out
}

/// One path (or word) with its home folder, if it starts with one, replaced by `~`.
fn home_in_path(path: &str, own: Option<&str>, users: &mut BTreeSet<String>) -> String {
    if let Some(home) = own {
        if let Some(rest) = path.strip_prefix(home) {
            if rest.is_empty() || rest.starts_with(['/', '\\']) {
                return format!("~{rest}");
            }
        }
    }
    if path == "/root" || path.starts_with("/root/") {
        return format!("~{}", &path[5..]);
    }
    let lower = path.to_ascii_lowercase();
    // POSIX: …/home/NAME or …/Users/NAME (/var/home on Fedora Silverblue).
    for marker in ["/home/", "/users/"] {
        if let Some(at) = lower.find(marker) {
            let before_is_path = at == 0 || path.starts_with('/');
            if before_is_path && !is_windows_drive(path) {
                if let Some(rest) = take_name(&path[at + marker.len()..], users) {
                    return format!("~{rest}");
                }
            }
        }
    }
    // Windows: X:\Users\NAME, with either slash, doubled in JSON text.
    if is_windows_drive(path) {
        let after_drive = path[2..].trim_start_matches(['\\', '/']);
        for dir in ["users", "documents and settings"] {
            if after_drive.to_ascii_lowercase().starts_with(dir) {
                let rest = &after_drive[dir.len()..];
                if rest.starts_with(['\\', '/']) {
                    if let Some(rest) = take_name(rest.trim_start_matches(['\\', '/']), users) {
                        return format!("~{rest}");
                    }
                }
            }
        }
    }
    path.to_string()
}

fn is_windows_drive(path: &str) -> bool {
    let b = path.as_bytes();
    b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && matches!(b[2], b'\\' | b'/')
}

/// `NAME/rest`: record NAME as a user and return `/rest` (or `""`); `None` for no name or a
/// generic one (`/Users/Shared`, `C:\Users\Public` are not anyone's home).
fn take_name<'p>(after: &'p str, users: &mut BTreeSet<String>) -> Option<&'p str> {
    let end = after.find(['/', '\\']).unwrap_or(after.len());
    let name = &after[..end];
    if name.is_empty() || is_generic(name) {
        return None;
    }
    users.insert(name.to_string());
    Some(&after[end..])
}

/// Call `f` on every string value (not on object keys: those are names from the schema).
fn for_each_string(value: &Value, f: &mut impl FnMut(&str)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|v| for_each_string(v, f)),
        Value::Object(map) => map.values().for_each(|v| for_each_string(v, f)),
        _ => {}
    }
}

/// Replace every string value with `f`'s result.
fn map_strings(value: &mut Value, f: &mut impl FnMut(&str) -> String) {
    match value {
        Value::String(s) => *s = f(s),
        Value::Array(items) => items.iter_mut().for_each(|v| map_strings(v, f)),
        Value::Object(map) => map.values_mut().for_each(|v| map_strings(v, f)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{CudaDevice, Gpu};

    fn me() -> Me {
        Me {
            home: Some("/srv/people/zoe".to_string()),
            users: vec!["zoe".to_string()],
        }
    }

    fn redactor() -> Redactor {
        let mut facts = Facts::empty("standard");
        facts.host.hostname = Some("lab-node7.example.org".to_string());
        facts.driver.gpus = vec![
            Gpu {
                index: 0,
                uuid: "GPU-1a0ddb37-d77f-b2cb-74b3-35468ae7f1a5".to_string(),
                serial: Some("1752524021541".to_string()),
                ..Gpu::default()
            },
            Gpu {
                index: 1,
                uuid: "GPU-9ab5ca0e-224d-9345-58b2-03ac19f9ee18".to_string(),
                serial: Some("[N/A]".to_string()),
                ..Gpu::default()
            },
        ];
        facts.cuda.devices = vec![CudaDevice {
            uuid: Some("GPU-9ab5ca0e-224d-9345-58b2-03ac19f9ee18".to_string()),
            ..CudaDevice::default()
        }];
        facts.python.project_dir = Some("/home/alice/proj".to_string());
        Redactor::new(&facts, &me())
    }

    #[test]
    fn homes_become_tilde_in_every_spelling() {
        let r = redactor();
        for (input, want) in [
            ("/home/alice/proj/.venv", "~/proj/.venv"),
            ("/home/bob", "~"),
            ("/var/home/carol/x", "~/x"),
            ("/Users/dave/Library", "~/Library"),
            ("/Users/Shared/x", "/Users/Shared/x"),
            ("/root/.cache", "~/.cache"),
            ("/rooted", "/rooted"),
            ("/srv/people/zoe/work", "~/work"),
            ("/srv/people/zoey", "/srv/people/zoey"),
            ("C:\\Users\\erin\\proj", "~\\proj"),
            ("c:/users/erin/proj", "~/proj"),
            ("C:\\\\Users\\\\erin\\\\proj", "~\\\\proj"),
            ("C:\\Users\\Public\\x", "C:\\Users\\Public\\x"),
            (
                "PATH=/home/alice/bin:/usr/bin:/home/bob/.local/bin",
                "PATH=~/bin:/usr/bin:~/.local/bin",
            ),
            (
                "home = /home/alice/.pyenv/versions/3.12/bin",
                "home = ~/.pyenv/versions/3.12/bin",
            ),
            ("\"/home/alice\"", "\"~\""),
        ] {
            assert_eq!(r.text(input), want, "{input}");
        }
    }

    #[test]
    fn names_hosts_serials_and_uuids_get_placeholders() {
        let r = redactor();
        assert_eq!(
            r.text("alice ran on lab-node7.example.org (lab-node7), serial 1752524021541"),
            "redacted-user ran on redacted-host (redacted-host), serial redacted-serial-001"
        );
        // Not inside longer words.
        assert_eq!(
            r.text("malice lab-node77 alice2 zoe-x"),
            "malice lab-node77 alice2 zoe-x"
        );
        assert_eq!(
            r.text(
                "GPU-9ab5ca0e-224d-9345-58b2-03ac19f9ee18 GPU-1A0DDB37-D77F-B2CB-74B3-35468AE7F1A5"
            ),
            "GPU-redacted-002 GPU-redacted-001"
        );
        // A prefix names its GPU; an unknown UUID gets its own placeholder, stable in the run.
        assert_eq!(
            r.text("GPU-1a0ddb37,GPU-ffff0000"),
            "GPU-redacted-001,GPU-redacted-003"
        );
        assert_eq!(r.text("GPU-ffff0000"), "GPU-redacted-003");
        assert_eq!(
            r.text("MIG-GPU-9ab5ca0e-224d-9345-58b2-03ac19f9ee18/1/0 MIG-0d5a8c1e-1111-2222-3333-444455556666"),
            "MIG-GPU-redacted-002/1/0 MIG-redacted-001"
        );
        assert_eq!(
            r.text("id 123e4567-e89b-12d3-a456-426614174000."),
            "id redacted-uuid-001."
        );
        // Words that merely start like a UUID stay.
        assert_eq!(
            r.text("GPU-accelerated GPU-0 MIG-enabled"),
            "GPU-accelerated GPU-0 MIG-enabled"
        );
    }

    /// A host named like a fixed word of the schema (a probe status) still redacts: the
    /// field is replaced, the status stays what it was.
    #[test]
    fn a_host_named_like_a_schema_word_is_redacted_without_breaking_the_facts() {
        let mut facts = Facts::empty("quick");
        facts.host.hostname = Some("ok".to_string());
        facts.probes.insert(
            "host".to_string(),
            crate::facts::ProbeOutcome {
                status: crate::facts::ProbeStatus::Ok,
                error: Some("/home/alice/x GPU-1a0ddb37".to_string()),
                ..Default::default()
            },
        );
        let r = Redactor::new(&facts, &Me::default());
        let out = r.facts(facts).expect("redacts");
        assert_eq!(out.host.hostname.as_deref(), Some("redacted-host"));
        assert_eq!(out.probes["host"].status, crate::facts::ProbeStatus::Ok);
        assert_eq!(
            out.probes["host"].error.as_deref(),
            Some("~/x GPU-redacted-001")
        );
    }

    #[test]
    fn redacting_twice_changes_nothing_more() {
        let r = redactor();
        let once = r.text("/home/alice/x GPU-1a0ddb37 lab-node7 1752524021541");
        assert_eq!(r.text(&once), once);
    }
}
