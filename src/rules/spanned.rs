//! Reading a spanned TOML table (toml's `DeTable`) key by key, so that every problem of a file
//! is reported with its place, not only the first, as serde would. The rule loader and the
//! configuration reader both read their files this way; what differs is how a key is written
//! in their messages (`fix.bash`, `tool.gpu-doctor.profile`), which the caller passes.

use super::diag::did_you_mean;
use std::ops::Range;
use toml::de::DeValue;
use toml::Spanned;

/// One key of a table and its value, both with their places in the file.
pub(crate) type Entry<'t, 'i> = (
    &'t Spanned<std::borrow::Cow<'i, str>>,
    &'t Spanned<DeValue<'i>>,
);

/// A string value and where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Str {
    pub value: String,
    pub span: Range<usize>,
}

/// Where the problems of a file go: a byte offset into it and what is wrong there.
pub(crate) trait Problems {
    fn problem(&mut self, offset: usize, message: String);
}

pub(crate) fn find<'t, 'i>(entries: &[Entry<'t, 'i>], key: &str) -> Option<Entry<'t, 'i>> {
    entries
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .copied()
}

/// The string at `key`, if there is one; a value of another type is a problem. `shown` is how
/// the key is written in messages.
pub(crate) fn string(
    problems: &mut impl Problems,
    entries: &[Entry],
    key: &str,
    shown: &str,
) -> Option<Str> {
    let (_, value) = find(entries, key)?;
    match value.get_ref() {
        DeValue::String(s) => Some(Str {
            value: s.to_string(),
            span: value.span(),
        }),
        other => {
            let msg = format!("`{shown}` must be a string, found {}", other.type_str());
            problems.problem(value.span().start, msg);
            None
        }
    }
}

/// A string that must be one of `allowed`, parsed by `parse`.
pub(crate) fn choice<T>(
    problems: &mut impl Problems,
    entries: &[Entry],
    key: &str,
    shown: &str,
    parse: fn(&str) -> Option<T>,
    allowed: &[&str],
) -> Option<T> {
    let s = string(problems, entries, key, shown)?;
    let parsed = parse(&s.value);
    if parsed.is_none() {
        let msg = format!(
            "unknown {key} \"{}\"{}; expected one of: {}",
            s.value,
            did_you_mean(&s.value, allowed.iter().copied()),
            allowed.join(", ")
        );
        problems.problem(s.span.start, msg);
    }
    parsed
}

/// Whether a list may hold blank strings.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Blank {
    Allowed,
    Refused,
}

/// The strings of the array at `key` (none when it is absent); every other item is a problem.
pub(crate) fn string_list(
    problems: &mut impl Problems,
    entries: &[Entry],
    key: &str,
    shown: &str,
    blank: Blank,
) -> Vec<Str> {
    let Some((_, value)) = find(entries, key) else {
        return Vec::new();
    };
    let DeValue::Array(items) = value.get_ref() else {
        let msg = format!(
            "`{shown}` must be an array of strings, found {}",
            value.get_ref().type_str()
        );
        problems.problem(value.span().start, msg);
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items.iter() {
        match item.get_ref() {
            DeValue::String(s) if blank == Blank::Refused && s.trim().is_empty() => {
                problems.problem(item.span().start, format!("`{shown}` has an empty string"));
            }
            DeValue::String(s) => out.push(Str {
                value: s.to_string(),
                span: item.span(),
            }),
            other => {
                let msg = format!(
                    "`{shown}` must be an array of strings, found {} in it",
                    other.type_str()
                );
                problems.problem(item.span().start, msg);
            }
        }
    }
    out
}
