//! Reading a configuration file: TOML with spans, every key checked by hand so that every
//! problem is reported at once, each as `file:line:column: error: ...` with the source line
//! (the rule loader's diagnostics, crate::rules::Diagnostic).
//!
//! Unknown keys are errors with a "did you mean" suggestion; values are checked for type and
//! meaning (a profile name, a requirement's grammar, a date). Whether a waiver's rule exists is
//! checked later, once the rules are loaded ([`super::Config::check_waivers`]).

use super::requirement::{self, Requirement};
use super::{Config, Date, LlamaSettings, Setting, Waiver};
use crate::cli::FailOn;
use crate::probe::Profile;
use crate::rules::spanned::{self, find, Blank, Entry, Problems, Str};
use crate::rules::{did_you_mean, Diagnostic, LoadError, SourceFile, StringMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};

const TOP_KEYS: &[&str] = &[
    "profile",
    "fail_on",
    "rules",
    "requirements",
    "python",
    "llama",
    "waiver",
];
const PYTHON_KEYS: &[&str] = &["environments"];
const LLAMA_KEYS: &[&str] = &["model", "binaries", "commands"];
const WAIVER_KEYS: &[&str] = &["rule", "subject", "reason", "expires", "owner"];

/// Where the settings are in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A gpu-doctor.toml: the whole file.
    Own,
    /// A pyproject.toml: the `[tool.gpu-doctor]` table.
    Pyproject,
}

/// Parse `text` (the file `path`, shown as `name`) into a configuration.
pub fn parse(path: &Path, name: &str, text: &str, layout: Layout) -> Result<Config, LoadError> {
    let file = SourceFile::new(name, text);
    let (doc, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        let diagnostics = errors
            .iter()
            .map(|e| {
                let at = e.span().map_or(0, |s| s.start);
                file.diag(at, format!("invalid TOML: {}", e.message().trim()))
            })
            .collect();
        return Err(LoadError { diagnostics });
    }
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut reader = Reader {
        file,
        dir,
        diags: Vec::new(),
    };
    let mut config = Config::empty(path, name, text, layout);
    match layout {
        Layout::Own => reader.settings(doc.get_ref(), "", &mut config),
        Layout::Pyproject => match (tool_table(doc.get_ref()), tool_entry(doc.get_ref())) {
            (Some(table), _) => reader.settings(table, "tool.gpu-doctor.", &mut config),
            // `[tool] gpu-doctor = "yes"`: meant as configuration, so not to be ignored.
            (None, Some(value)) => reader.error(
                value.span().start,
                format!(
                    "`tool.gpu-doctor` must be a table (`[tool.gpu-doctor]`), found {}",
                    value.get_ref().type_str()
                ),
            ),
            (None, None) => reader.error(
                0,
                "this pyproject.toml has no [tool.gpu-doctor] table: add one, or name a gpu-doctor.toml",
            ),
        },
    }
    if reader.diags.is_empty() {
        Ok(config)
    } else {
        let mut diagnostics = reader.diags;
        diagnostics.sort_by_key(|d| (d.line, d.column));
        Err(LoadError { diagnostics })
    }
}

/// `tool.gpu-doctor` of a pyproject.toml, whatever its type.
pub fn tool_entry<'t, 'i>(doc: &'t DeTable<'i>) -> Option<&'t toml::Spanned<DeValue<'i>>> {
    let DeValue::Table(tool) = doc.get("tool")?.get_ref() else {
        return None;
    };
    tool.get("gpu-doctor")
}

/// `[tool.gpu-doctor]` of a pyproject.toml, when it is a table.
pub fn tool_table<'t, 'i>(doc: &'t DeTable<'i>) -> Option<&'t DeTable<'i>> {
    let tool = doc.get("tool")?;
    let DeValue::Table(tool) = tool.get_ref() else {
        return None;
    };
    match tool.get("gpu-doctor")?.get_ref() {
        DeValue::Table(t) => Some(t),
        _ => None,
    }
}

struct Reader<'a> {
    file: SourceFile<'a>,
    /// The configuration's folder: relative paths are relative to it.
    dir: PathBuf,
    diags: Vec<Diagnostic>,
}

impl Problems for Reader<'_> {
    fn problem(&mut self, offset: usize, message: String) {
        self.error(offset, message);
    }
}

impl Reader<'_> {
    fn error(&mut self, offset: usize, message: impl Into<String>) {
        let d = self.file.diag(offset, message);
        self.diags.push(d);
    }

    /// The settings table; `prefix` is how its keys are written in messages.
    fn settings(&mut self, table: &DeTable<'_>, prefix: &str, config: &mut Config) {
        let entries: Vec<Entry> = table.iter().collect();
        self.unknown_keys(&entries, TOP_KEYS, prefix, "the configuration");
        config.profile = self.choice(&entries, "profile", prefix, parse_profile, &PROFILES);
        config.fail_on = self.choice(&entries, "fail_on", prefix, parse_fail_on, &FAIL_ON);
        config.rule_files = self.rule_files(&entries, prefix);
        config.requirements = self.requirements(&entries, prefix);
        if let Some(python) = self.subtable(&entries, "python", prefix) {
            let inner = format!("{prefix}python.");
            self.unknown_keys(&python, PYTHON_KEYS, &inner, "[python]");
            if find(&python, "environments").is_some() {
                let envs = self.string_list(&python, "environments", &inner);
                config.python_environments =
                    Some(envs.iter().map(|s| self.dir.join(&s.value)).collect());
            }
        }
        if let Some(llama) = self.subtable(&entries, "llama", prefix) {
            config.llama = self.llama(&llama, &format!("{prefix}llama."));
        }
        config.waivers = self.waivers(&entries, prefix);
    }

    fn unknown_keys(&mut self, entries: &[Entry], known: &[&str], prefix: &str, what: &str) {
        for (key, _) in entries {
            let k = key.get_ref().as_ref();
            if !known.contains(&k) {
                let msg = format!(
                    "unknown key `{prefix}{k}` in {what}{}; expected one of: {}",
                    did_you_mean(k, known.iter().copied()),
                    known.join(", ")
                );
                self.error(key.span().start, msg);
            }
        }
    }

    fn string(&mut self, entries: &[Entry], key: &str, prefix: &str) -> Option<Str> {
        spanned::string(self, entries, key, &format!("{prefix}{key}"))
    }

    fn choice<T>(
        &mut self,
        entries: &[Entry],
        key: &str,
        prefix: &str,
        parse: fn(&str) -> Option<T>,
        allowed: &[&str],
    ) -> Option<T> {
        let shown = format!("{prefix}{key}");
        spanned::choice(self, entries, key, &shown, parse, allowed)
    }

    fn string_list(&mut self, entries: &[Entry], key: &str, prefix: &str) -> Vec<Str> {
        let shown = format!("{prefix}{key}");
        spanned::string_list(self, entries, key, &shown, Blank::Refused)
    }

    fn subtable<'t, 'i>(
        &mut self,
        entries: &[Entry<'t, 'i>],
        key: &str,
        prefix: &str,
    ) -> Option<Vec<Entry<'t, 'i>>> {
        let (_, value) = find(entries, key)?;
        match value.get_ref() {
            DeValue::Table(t) => Some(t.iter().collect()),
            other => {
                let msg = format!(
                    "`{prefix}{key}` must be a table (`[{prefix}{key}]`), found {}",
                    other.type_str()
                );
                self.error(value.span().start, msg);
                None
            }
        }
    }

    /// `rules = [...]`: files that exist, relative to the configuration's folder.
    fn rule_files(&mut self, entries: &[Entry], prefix: &str) -> Vec<Setting<PathBuf>> {
        let mut out = Vec::new();
        for s in self.string_list(entries, "rules", prefix) {
            let path = self.dir.join(&s.value);
            if let Some(why) = not_a_rule_file(&path) {
                let msg = format!(
                    "rule file {} {why} (relative paths are relative to {})",
                    path.display(),
                    self.dir.display()
                );
                self.error(s.span.start, msg);
                continue;
            }
            out.push(Setting {
                value: path,
                at: s.span.start,
            });
        }
        out
    }

    /// `requirements = [...]`: each parsed; one requirement per name.
    fn requirements(&mut self, entries: &[Entry], prefix: &str) -> Vec<Setting<Requirement>> {
        let mut out: Vec<Setting<Requirement>> = Vec::new();
        for s in self.string_list(entries, "requirements", prefix) {
            let map = StringMap::new(self.file.text, s.span.start, s.span.end, &s.value);
            let req = match requirement::parse(&s.value) {
                Ok(r) => r,
                Err(e) => {
                    let msg = format!("invalid requirement \"{}\": {}", s.value, e.message);
                    self.error(map.offset(e.at), msg);
                    continue;
                }
            };
            if let Some(first) = out.iter().find(|r| r.value.kind == req.kind) {
                let (line, _) = self.file.line_col(first.at);
                let msg = format!(
                    "`{}` is already required on line {line}; write it once, with every comparison in it: \"{}\"",
                    req.kind.name(),
                    requirement::combined_example(req.kind)
                );
                self.error(s.span.start, msg);
                continue;
            }
            out.push(Setting {
                value: req,
                at: s.span.start,
            });
        }
        out
    }

    fn llama(&mut self, entries: &[Entry], prefix: &str) -> LlamaSettings {
        self.unknown_keys(entries, LLAMA_KEYS, prefix, "[llama]");
        let model = self
            .string(entries, "model", prefix)
            .map(|s| self.dir.join(&s.value));
        let binaries = self
            .string_list(entries, "binaries", prefix)
            .into_iter()
            .map(|s| self.dir.join(&s.value))
            .collect();
        let commands = self
            .string_list(entries, "commands", prefix)
            .into_iter()
            .map(|s| s.value)
            .collect();
        LlamaSettings {
            model,
            binaries,
            commands,
        }
    }

    /// `[[waiver]]` tables.
    fn waivers(&mut self, entries: &[Entry], prefix: &str) -> Vec<Waiver> {
        let Some((key, value)) = find(entries, "waiver") else {
            return Vec::new();
        };
        let DeValue::Array(items) = value.get_ref() else {
            let msg =
                format!("`{prefix}waiver` must be an array of tables: write `[[{prefix}waiver]]`");
            self.error(key.span().start, msg);
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::Table(t) => {
                    let fields: Vec<Entry> = t.iter().collect();
                    out.extend(self.waiver(&fields, item.span(), prefix));
                }
                _ => self.error(
                    item.span().start,
                    format!("expected a `[[{prefix}waiver]]` table"),
                ),
            }
        }
        out
    }

    fn waiver(&mut self, entries: &[Entry], span: Range<usize>, prefix: &str) -> Option<Waiver> {
        let inner = format!("{prefix}waiver.");
        self.unknown_keys(entries, WAIVER_KEYS, &inner, "a waiver");
        let missing: Vec<&str> = ["rule", "reason", "expires"]
            .into_iter()
            .filter(|k| find(entries, k).is_none())
            .collect();
        if !missing.is_empty() {
            let msg = format!(
                "a waiver needs {}: say which rule, why, and until when (expires = 2027-01-31)",
                missing
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            self.error(span.start, msg);
        }
        let rule = self.string(entries, "rule", &inner);
        let subject = self.string(entries, "subject", &inner).map(|s| s.value);
        let reason = self.string(entries, "reason", &inner);
        if let Some(r) = reason.as_ref().filter(|r| r.value.trim().is_empty()) {
            self.error(
                r.span.start,
                "`reason` is empty: say why this finding is acceptable",
            );
        }
        let owner = self.string(entries, "owner", &inner).map(|s| s.value);
        let expires = self.date(entries, "expires", &inner);
        let (rule, reason, expires) = (rule?, reason?, expires?);
        let (line, _) = self.file.line_col(span.start);
        Some(Waiver {
            rule: Setting {
                value: rule.value,
                at: rule.span.start,
            },
            subject,
            reason: reason.value,
            expires,
            owner,
            line,
        })
    }

    /// A TOML local date (`2027-01-31`) or a string holding one.
    fn date(&mut self, entries: &[Entry], key: &str, prefix: &str) -> Option<Date> {
        let (_, value) = find(entries, key)?;
        let at = value.span().start;
        let parsed = match value.get_ref() {
            DeValue::Datetime(dt) => match (dt.date, dt.time) {
                (Some(d), None) => {
                    Date::new(i32::from(d.year), u32::from(d.month), u32::from(d.day))
                }
                _ => None,
            },
            DeValue::String(s) => Date::parse(s),
            _ => None,
        };
        if parsed.is_none() {
            let found = match value.get_ref() {
                DeValue::String(s) => format!("\"{s}\""),
                DeValue::Datetime(_) => "a date with a time".to_string(),
                other => format!("a {}", other.type_str()),
            };
            let msg = format!("`{prefix}{key}` must be a date like 2027-01-31, found {found}");
            self.error(at, msg);
        }
        parsed
    }
}

const PROFILES: [&str; 3] = ["quick", "standard", "full"];
const FAIL_ON: [&str; 3] = ["error", "warn", "never"];

fn parse_profile(s: &str) -> Option<Profile> {
    match s {
        "quick" => Some(Profile::Quick),
        "standard" => Some(Profile::Standard),
        "full" => Some(Profile::Full),
        _ => None,
    }
}

fn parse_fail_on(s: &str) -> Option<FailOn> {
    match s {
        "error" => Some(FailOn::Error),
        "warn" => Some(FailOn::Warn),
        "never" => Some(FailOn::Never),
        _ => None,
    }
}

/// Why `path` cannot be a rule file, in words: missing, or something other than a regular file
/// (a folder, a FIFO that would never answer, a device such as `/dev/zero`). Symlinks are
/// followed: what they point at is what would be read.
fn not_a_rule_file(path: &Path) -> Option<String> {
    use std::os::unix::fs::FileTypeExt;
    let kind = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some("not found".into()),
        Err(e) => return Some(format!("cannot be read: {e}")),
        Ok(meta) => meta.file_type(),
    };
    let what = if kind.is_file() {
        return None;
    } else if kind.is_dir() {
        "a folder"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "something other than a regular file"
    };
    Some(format!("is {what}, not a rule file (a regular TOML file)"))
}
