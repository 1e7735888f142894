//! Message and fix templates: text with `{path.to.value}` placeholders, filled from the JSON of
//! the variables bound for a rule (the same values its condition saw).
//!
//! - `{{` and `}}` are literal braces.
//! - A path may go through an array to its items: `{gpu.processes.pid}` is every pid. A
//!   numeric step picks one item: `{driver.gpus.0.name}`.
//! - In text (title, explain, evidence): lists are joined with ", " (an empty list is "none"),
//!   maps are written `key=value, ...`, `null` is "unknown", and numbers lose trailing zeros.
//!   An evidence line whose every placeholder is `null` or an empty list is left out.
//! - In fixes, every value is quoted for its shell ([`crate::shell`]); a list becomes one
//!   quoted word per item. A fix that would need an unknown (`null`) value or an empty list
//!   is not shown at all: a command with a hole in it is worse than none.

use super::paths::{Segment, Span};
use serde_json::Value as Json;
use std::borrow::Cow;

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Template {
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    Text(String),
    Value(Placeholder),
}

/// `{root.segment...}`, with where it was written (character offsets in the template).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Placeholder {
    pub root: String,
    pub root_span: Span,
    pub segments: Vec<Segment>,
}

impl Placeholder {
    pub fn dotted(&self) -> String {
        let mut s = self.root.clone();
        for seg in &self.segments {
            s.push('.');
            s.push_str(&seg.name);
        }
        s
    }
}

/// A template syntax error: character offset and message.
pub(crate) type TemplateError = (usize, String);

impl Template {
    /// Parse `src`, reporting every malformed placeholder.
    pub fn parse(src: &str) -> Result<Template, Vec<TemplateError>> {
        let chars: Vec<char> = src.chars().collect();
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut errors = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            if (c == '{' && next == Some('{')) || (c == '}' && next == Some('}')) {
                text.push(c);
                i += 2;
            } else if c == '}' {
                errors.push((
                    i,
                    "`}` without a matching `{`; write `}}` for a literal brace".into(),
                ));
                i += 1;
            } else if c == '{' {
                let Some(len) = chars[i + 1..].iter().position(|&c| c == '}' || c == '{') else {
                    errors.push((
                        i,
                        "`{` is never closed; write `{{` for a literal brace".into(),
                    ));
                    break;
                };
                let close = i + 1 + len;
                if chars[close] == '{' {
                    errors.push((
                        i,
                        "`{` is never closed; write `{{` for a literal brace".into(),
                    ));
                    i = close;
                    continue;
                }
                match parse_placeholder(&chars[i + 1..close], i + 1) {
                    Ok(p) => {
                        if !text.is_empty() {
                            parts.push(Part::Text(std::mem::take(&mut text)));
                        }
                        parts.push(Part::Value(p));
                    }
                    Err(e) => errors.push(e),
                }
                i = close + 1;
            } else {
                text.push(c);
                i += 1;
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        if errors.is_empty() {
            Ok(Template { parts })
        } else {
            Err(errors)
        }
    }

    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.parts.iter().filter_map(|p| match p {
            Part::Value(v) => Some(v),
            Part::Text(_) => None,
        })
    }

    /// Render for reading: see the module documentation.
    pub fn render_text(&self, vars: &Bindings) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Value(p) => out.push_str(&vars.lookup(p).to_text()),
            }
        }
        out
    }

    /// Render an evidence line, or `None` when it has placeholders and all of them are empty.
    pub fn render_evidence(&self, vars: &Bindings) -> Option<String> {
        let mut any = false;
        let mut all_empty = true;
        for p in self.placeholders() {
            any = true;
            all_empty &= vars.lookup(p).is_empty();
        }
        if any && all_empty {
            None
        } else {
            Some(self.render_text(vars))
        }
    }

    /// Render a command, quoting each value with `quote`; `None` when a value is unknown.
    pub fn render_fix(&self, vars: &Bindings, quote: fn(&str) -> Cow<'_, str>) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Value(p) => {
                    let words = vars.lookup(p).to_words()?;
                    let quoted: Vec<Cow<str>> = words.iter().map(|w| quote(w)).collect();
                    out.push_str(&quoted.join(" "));
                }
            }
        }
        Some(out)
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The inside of `{...}`: `root(.segment)*`, spaces around allowed.
fn parse_placeholder(inner: &[char], offset: usize) -> Result<Placeholder, TemplateError> {
    let lead = inner.iter().take_while(|c| c.is_whitespace()).count();
    let trail = inner.iter().rev().take_while(|c| c.is_whitespace()).count();
    let body = if lead + trail >= inner.len() {
        &[][..]
    } else {
        &inner[lead..inner.len() - trail]
    };
    let start = offset + lead;
    let text: String = body.iter().collect();
    let bad = || {
        let shown = if text.is_empty() {
            "nothing".to_string()
        } else {
            format!("`{text}`")
        };
        (
            start.saturating_sub(lead + 1),
            format!(
                "expected a fact path like `{{host.os}}` inside braces, found {shown} \
                 (write `{{{{` and `}}}}` for literal braces)"
            ),
        )
    };
    let mut segments = Vec::new();
    let mut pos = start;
    for (k, name) in text.split('.').enumerate() {
        let len = name.chars().count();
        let valid = !name.is_empty()
            && name.chars().all(is_ident_char)
            && (k > 0 || !name.starts_with(|c: char| c.is_ascii_digit()));
        if !valid {
            return Err(bad());
        }
        segments.push(Segment {
            name: name.to_string(),
            span: (pos, pos + len),
        });
        pos += len + 1;
    }
    let root = segments.remove(0);
    Ok(Placeholder {
        root: root.name,
        root_span: root.span,
        segments,
    })
}

// ---------------------------------------------------------------------------------------------
// Values

static NULL: Json = Json::Null;

/// The JSON of each variable bound for one evaluation.
pub(crate) struct Bindings<'a> {
    vars: Vec<(&'a str, &'a Json)>,
}

impl<'a> Bindings<'a> {
    pub fn new(vars: Vec<(&'a str, &'a Json)>) -> Bindings<'a> {
        Bindings { vars }
    }

    fn lookup(&self, p: &Placeholder) -> Looked<'a> {
        let Some(root) = self
            .vars
            .iter()
            .find(|(n, _)| *n == p.root)
            .map(|(_, v)| *v)
        else {
            return Looked {
                items: vec![&NULL],
                list: false,
            };
        };
        let mut items = Vec::new();
        let mut list = false;
        collect(root, &p.segments, &mut items, &mut list);
        // A path that ends on an array is a list of its items.
        if !list && items.len() == 1 {
            if let Json::Array(elements) = items[0] {
                items = elements.iter().collect();
                list = true;
            }
        }
        Looked { items, list }
    }
}

/// Follow `segments` from `value`, fanning out over arrays.
fn collect<'v>(value: &'v Json, segments: &[Segment], out: &mut Vec<&'v Json>, list: &mut bool) {
    let Some((first, rest)) = segments.split_first() else {
        out.push(value);
        return;
    };
    match value {
        Json::Array(items) => match first.name.parse::<usize>() {
            Ok(i) => collect(items.get(i).unwrap_or(&NULL), rest, out, list),
            Err(_) => {
                *list = true;
                for item in items {
                    collect(item, segments, out, list);
                }
            }
        },
        Json::Object(map) => collect(map.get(&first.name).unwrap_or(&NULL), rest, out, list),
        _ => out.push(&NULL),
    }
}

/// What a placeholder resolved to.
struct Looked<'a> {
    items: Vec<&'a Json>,
    list: bool,
}

impl Looked<'_> {
    fn is_empty(&self) -> bool {
        self.items.iter().all(|v| v.is_null())
    }

    fn to_text(&self) -> String {
        if !self.list {
            return self
                .items
                .first()
                .map_or_else(|| "unknown".to_string(), |v| scalar_text(v));
        }
        let words: Vec<String> = self
            .items
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| scalar_text(v))
            .collect();
        if words.is_empty() {
            "none".to_string()
        } else {
            words.join(", ")
        }
    }

    /// The words a fix gets; `None` when there is nothing known to put there.
    fn to_words(&self) -> Option<Vec<String>> {
        let words: Vec<String> = self
            .items
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| scalar_text(v))
            .collect();
        if words.is_empty() || (!self.list && self.items.iter().any(|v| v.is_null())) {
            None
        } else {
            Some(words)
        }
    }
}

fn scalar_text(value: &Json) -> String {
    match value {
        Json::Null => "unknown".to_string(),
        Json::Bool(b) => b.to_string(),
        Json::String(s) => s.clone(),
        Json::Number(n) => number_text(n),
        Json::Array(items) => {
            let words: Vec<String> = items.iter().map(scalar_text).collect();
            words.join(", ")
        }
        Json::Object(map) => {
            let pairs: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}={}", scalar_text(v)))
                .collect();
            pairs.join(", ")
        }
    }
}

/// Integers as they are; other numbers rounded to two decimals without trailing zeros.
fn number_text(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let Some(f) = n.as_f64() else {
        return n.to_string();
    };
    let s = format!("{f:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::{quote_bash, quote_powershell};
    use serde_json::json;

    fn t(src: &str) -> Template {
        Template::parse(src).unwrap()
    }

    fn vars(v: &Json) -> Bindings<'_> {
        Bindings::new(vec![("x", v)])
    }

    #[test]
    fn parses_placeholders_and_escaped_braces() {
        let tpl = t("a {{b}} { x.y } {x.list.0}");
        let paths: Vec<String> = tpl.placeholders().map(Placeholder::dotted).collect();
        assert_eq!(paths, vec!["x.y", "x.list.0"]);
        assert_eq!(tpl.parts[0], Part::Text("a {b} ".into()));
        let first = tpl.placeholders().next().unwrap();
        assert_eq!(first.root_span, (10, 11));
        assert_eq!(first.segments[0].span, (12, 13));
    }

    #[test]
    fn reports_malformed_templates_with_offsets() {
        let errs = Template::parse("ok } and {x.y and {}").unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert_eq!(errs[0].0, 3);
        assert!(errs[0].1.contains("`}` without a matching `{`"));
        assert_eq!(errs[1].0, 9);
        assert!(errs[2].1.contains("found nothing"), "{errs:?}");
        assert!(Template::parse("{x.a-b}").is_err());
        assert!(Template::parse("{1x}").is_err());
    }

    #[test]
    fn renders_text_lists_maps_numbers_and_nulls() {
        let v = json!({"s": "S", "n": null, "f": 93.456, "g": 90.0, "i": 7, "l": [1, 2], "e": [],
                       "objs": [{"p": 1, "q": null}, {"p": 2, "q": "b"}], "m": {"a": "1"}});
        let x = vars(&v);
        assert_eq!(
            t("{x.s}/{x.n}/{x.f}/{x.g}/{x.i}").render_text(&x),
            "S/unknown/93.46/90/7"
        );
        assert_eq!(
            t("{x.l} | {x.e} | {x.objs.p} | {x.objs.q}").render_text(&x),
            "1, 2 | none | 1, 2 | b"
        );
        assert_eq!(
            t("{x.m} {x.objs.1.q} {x.missing}").render_text(&x),
            "a=1 b unknown"
        );
    }

    #[test]
    fn evidence_lines_without_values_are_dropped() {
        let v = json!({"n": null, "e": [], "s": ""});
        let x = vars(&v);
        assert_eq!(t("a: {x.n}, b: {x.e}").render_evidence(&x), None);
        assert_eq!(
            t("value: \"{x.s}\"").render_evidence(&x),
            Some("value: \"\"".into())
        );
        assert_eq!(
            t("plain text").render_evidence(&x),
            Some("plain text".into())
        );
    }

    #[test]
    fn fixes_quote_each_value_and_vanish_when_a_value_is_unknown() {
        let v = json!({"p": "/opt/my cuda", "i": 3, "pids": [12, 34], "n": null, "e": []});
        let x = vars(&v);
        assert_eq!(
            t("export CUDA_HOME={x.p}")
                .render_fix(&x, quote_bash)
                .unwrap(),
            "export CUDA_HOME='/opt/my cuda'"
        );
        assert_eq!(
            t("$env:CUDA_HOME = {x.p}")
                .render_fix(&x, quote_powershell)
                .unwrap(),
            "$env:CUDA_HOME = '/opt/my cuda'"
        );
        assert_eq!(
            t("nvidia-smi -i {x.i}").render_fix(&x, quote_bash).unwrap(),
            "nvidia-smi -i 3"
        );
        assert_eq!(
            t("kill {x.pids}").render_fix(&x, quote_bash).unwrap(),
            "kill 12 34"
        );
        assert_eq!(
            t("echo ${{HOME}}").render_fix(&x, quote_bash).unwrap(),
            "echo ${HOME}"
        );
        assert_eq!(t("x {x.n}").render_fix(&x, quote_bash), None);
        assert_eq!(t("x {x.e}").render_fix(&x, quote_bash), None);
    }
}
