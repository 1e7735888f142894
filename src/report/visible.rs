//! Text from the machine or a repository (paths, venv names, GGUF metadata, log lines, rule
//! text and fix commands of repository rule files) is shown, never obeyed, by the terminal.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `s` with every control character (C0 including the line break, DEL, C1) written out:
/// `\n`, `\r`, `\t`, and `\u{1b}` for the rest. An ESC can then neither colour, hide nor erase
/// what the report says, and a line break cannot start a line of its own. Renderers split
/// multi-line text at `\n` first and escape each line.
pub fn visible(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_written_out_and_the_rest_is_kept() {
        assert_eq!(
            visible("touch /tmp/x; true \u{1b}[2K\r  $ pip\u{9b}"),
            "touch /tmp/x; true \\u{1b}[2K\\r  $ pip\\u{9b}"
        );
        assert_eq!(visible("a\nb\tc"), "a\\nb\\tc");
        assert!(matches!(visible("C:\\Users\\é"), Cow::Borrowed(_)));
    }
}
