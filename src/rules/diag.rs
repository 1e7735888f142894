//! Load-time diagnostics: every problem of a rule file as `file:line:column: error: ...`, with
//! the source line and a caret under the column, collected rather than stopping at the first.
//!
//! Positions start as byte offsets into the file. Problems inside a string value (a CEL
//! condition, a template) start as character offsets into the decoded string; [`StringMap`]
//! turns those back into file offsets, through TOML escapes and multi-line strings.

use std::fmt;

/// One problem in a rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the user named it (`rules/core.toml` for built-in packs).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
    /// The source line the problem is on (for the code frame), when known.
    pub source_line: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: {}",
            self.file, self.line, self.column, self.message
        )?;
        if let Some(src) = &self.source_line {
            let number = self.line.to_string();
            let pad = " ".repeat(number.len());
            // The caret goes under the column; tabs keep their width by being copied.
            let lead: String = src
                .chars()
                .take(self.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n{pad} |\n{number} | {src}\n{pad} | {lead}^")?;
        }
        Ok(())
    }
}

/// Why a rule file (or the built-in rules) could not be loaded: every problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        if self.diagnostics.len() > 1 {
            write!(f, "\n{} errors", self.diagnostics.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

impl LoadError {
    /// An error about a whole file (it cannot be read, say), at line 1, column 1.
    pub fn file(file: &str, message: impl Into<String>) -> LoadError {
        LoadError {
            diagnostics: vec![Diagnostic {
                file: file.to_string(),
                line: 1,
                column: 1,
                message: message.into(),
                source_line: None,
            }],
        }
    }
}

/// A file's text with its line starts, to turn byte offsets into line and column.
pub(crate) struct SourceFile<'a> {
    pub name: &'a str,
    pub text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> SourceFile<'a> {
    pub fn new(name: &'a str, text: &'a str) -> SourceFile<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile {
            name,
            text,
            line_starts,
        }
    }

    /// 1-based line and character column of a byte offset (clamped to the text).
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(self.text, offset.min(self.text.len()));
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let column = self.text[start..offset].chars().count() + 1;
        (line, column)
    }

    /// A diagnostic at a byte offset.
    pub fn diag(&self, offset: usize, message: impl Into<String>) -> Diagnostic {
        let (line, column) = self.line_col(offset);
        let start = self.line_starts[line - 1];
        let end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i);
        let source_line = self.text[start..end].trim_end_matches('\r').to_string();
        Diagnostic {
            file: self.name.to_string(),
            line,
            column,
            message: message.into(),
            source_line: Some(source_line),
        }
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Where each character of a TOML string value sits in the file.
///
/// Built from the value's raw text (quotes included). When decoding by hand does not give
/// back the value the TOML parser produced (an escape this decoder does not know), every
/// character maps to the start of the value: less precise, never wrong about the line.
pub(crate) struct StringMap {
    /// File byte offset of character i of the decoded value; one more entry for its end.
    offsets: Vec<usize>,
    fallback: usize,
}

impl StringMap {
    /// `raw_start` is the byte offset of the value's first quote in the file.
    pub fn new(file_text: &str, raw_start: usize, raw_end: usize, value: &str) -> StringMap {
        let raw = file_text.get(raw_start..raw_end).unwrap_or("");
        let offsets = decode_offsets(raw)
            .filter(|(decoded, _)| decoded == value)
            .map(|(_, offsets)| offsets.into_iter().map(|o| o + raw_start).collect())
            .unwrap_or_default();
        StringMap {
            offsets,
            fallback: raw_start,
        }
    }

    /// The file offset of character `index` of the value.
    pub fn offset(&self, index: usize) -> usize {
        match self.offsets.get(index) {
            Some(&o) => o,
            None => self.offsets.last().copied().unwrap_or(self.fallback),
        }
    }
}

/// Decode a raw TOML string (basic, literal, or either multi-line form) and record, for each
/// decoded character, the byte offset in `raw` where it was written. The returned offsets
/// have one extra entry: the offset of the closing quote.
fn decode_offsets(raw: &str) -> Option<(String, Vec<usize>)> {
    let (delim, literal) = if raw.starts_with("'''") {
        ("'''", true)
    } else if raw.starts_with("\"\"\"") {
        ("\"\"\"", false)
    } else if raw.starts_with('\'') {
        ("'", true)
    } else if raw.starts_with('"') {
        ("\"", false)
    } else {
        return None;
    };
    if raw.len() < 2 * delim.len() || !raw.ends_with(delim) {
        return None;
    }
    let mut start = delim.len();
    let end = raw.len() - delim.len();
    if delim.len() == 3 {
        // A newline right after the opening delimiter is not part of the value.
        if raw[start..].starts_with("\r\n") {
            start += 2;
        } else if raw[start..].starts_with('\n') {
            start += 1;
        }
    }
    let body = &raw[start..end];
    let mut decoded = String::new();
    let mut offsets = Vec::new();
    if literal {
        for (i, c) in body.char_indices() {
            decoded.push(c);
            offsets.push(start + i);
        }
    } else {
        decode_basic(body, start, delim.len() == 3, &mut decoded, &mut offsets)?;
    }
    offsets.push(end);
    Some((decoded, offsets))
}

/// Decode the escapes of a basic string body.
fn decode_basic(
    body: &str,
    base: usize,
    multiline: bool,
    decoded: &mut String,
    offsets: &mut Vec<usize>,
) -> Option<()> {
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            decoded.push(c);
            offsets.push(base + i);
            continue;
        }
        let (_, e) = chars.next()?;
        let simple = match e {
            'b' => Some('\u{8}'),
            't' => Some('\t'),
            'n' => Some('\n'),
            'f' => Some('\u{c}'),
            'r' => Some('\r'),
            'e' => Some('\u{1b}'),
            '"' => Some('"'),
            '\\' => Some('\\'),
            _ => None,
        };
        if let Some(s) = simple {
            decoded.push(s);
            offsets.push(base + i);
            continue;
        }
        let digits = match e {
            'x' => 2,
            'u' => 4,
            'U' => 8,
            c if multiline && c.is_whitespace() => {
                // Line-ending backslash: skip whitespace and newlines up to the next text.
                while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
                    chars.next();
                }
                continue;
            }
            _ => return None,
        };
        let mut code = 0u32;
        for _ in 0..digits {
            let (_, h) = chars.next()?;
            code = code * 16 + h.to_digit(16)?;
        }
        decoded.push(char::from_u32(code)?);
        offsets.push(base + i);
    }
    Some(())
}

/// Levenshtein distance, for "did you mean" suggestions.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate to `word`, when it is close enough to be a likely typo.
pub(crate) fn closest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

/// " did you mean `x`?" or "".
pub(crate) fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> String {
    closest(word, candidates)
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_in_characters() {
        let f = SourceFile::new("x.toml", "ab\nçd = 1\n");
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(3), (2, 1));
        // "ç" is two bytes; "d" is the second character.
        assert_eq!(f.line_col(5), (2, 2));
        assert_eq!(f.line_col(999), (3, 1));
    }

    #[test]
    fn display_shows_the_line_with_a_caret() {
        let f = SourceFile::new("r.toml", "id = 1\nwhen = \"x >\"\n");
        let d = f.diag(13, "expected an expression");
        assert_eq!(
            d.to_string(),
            "r.toml:2:7: error: expected an expression\n  |\n2 | when = \"x >\"\n  |       ^"
        );
    }

    fn map_of(raw: &str, value: &str) -> Vec<usize> {
        let m = StringMap::new(raw, 0, raw.len(), value);
        (0..value.chars().count()).map(|i| m.offset(i)).collect()
    }

    #[test]
    fn string_offsets_follow_escapes_and_multiline_forms() {
        assert_eq!(map_of("'ab'", "ab"), vec![1, 2]);
        assert_eq!(map_of("\"a\\\"b\"", "a\"b"), vec![1, 2, 4]);
        assert_eq!(map_of("\"\\u00e9x\"", "éx"), vec![1, 7]);
        assert_eq!(map_of("'''\nab'''", "ab"), vec![4, 5]);
        assert_eq!(map_of("\"\"\"\na \\\n   b\"\"\"", "a b"), vec![4, 5, 11]);
        // A value this decoder cannot reproduce maps to the start of the value.
        assert_eq!(map_of("\"ab\"", "zz"), vec![0, 0]);
    }

    #[test]
    fn suggestions_pick_close_names_only() {
        let known = ["gpu_count", "gpus", "version"];
        assert_eq!(closest("gpu_cout", known), Some("gpu_count"));
        assert_eq!(closest("verison", known), Some("version"));
        assert_eq!(closest("temperature", known), None);
    }
}
