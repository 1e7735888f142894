//! Shell quoting for fix commands: a value from Facts (a path, a variable's value, a GPU
//! index) becomes exactly one word of a bash or PowerShell command, whatever it contains.
//!
//! - bash: values made only of `[A-Za-z0-9_@%+=:,./-]` stay as they are. Others are put in
//!   single quotes, where nothing is special except the single quote itself, written `'\''`.
//!   A value with a control character (a newline, a tab, an escape, or a C1 control such as
//!   U+009B, which some terminals read as an escape sequence) uses the ANSI-C form `$'...'`
//!   instead, so the command stays on one visible line and a terminal control sequence is
//!   never echoed raw. C1 controls are written as their UTF-8 bytes (`\xc2\x9b`), which mean
//!   the same character whatever the locale.
//! - PowerShell: every value is put in single quotes, except a plain decimal number. Inside
//!   single quotes PowerShell expands nothing; the quote is written twice. PowerShell also
//!   treats the typographic quotes `‘ ’ ‚ ‛` as single quotes, so those are doubled too.
//!   PowerShell needs quotes more often than bash: a bare word is a command in expression
//!   position (`$env:X = C:\cuda` runs `C:\cuda`), `,` builds an array, a leading `@` splats,
//!   a leading `-` names a parameter, and `1kb` or `0x10` are numbers.
//!
//! A NUL character cannot be part of a command-line argument on any system; bash gets `\x00`,
//! which ends the word there.

use std::borrow::Cow;

/// Characters that never need quoting in bash: not special anywhere in a word.
fn bash_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c)
}

/// Control characters (C0, DEL and C1), which `$'...'` spells with escapes.
fn is_control(c: char) -> bool {
    c.is_control()
}

/// Quote `value` as one bash word.
pub fn quote_bash(value: &str) -> Cow<'_, str> {
    if !value.is_empty() && value.chars().all(bash_safe) {
        return Cow::Borrowed(value);
    }
    if value.chars().any(is_control) {
        return Cow::Owned(ansi_c_quote(value));
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            // Close the quotes, add an escaped quote, reopen.
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    Cow::Owned(out)
}

/// bash's `$'...'`: backslash escapes for control characters, `\\` and `\'`.
fn ansi_c_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 3);
    out.push_str("$'");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            // Two hex digits always: `\x` reads at most two, so a following digit is safe.
            // Byte by byte: a C1 control is two bytes in UTF-8.
            c if is_control(c) => {
                let mut bytes = [0u8; 4];
                for b in c.encode_utf8(&mut bytes).bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The characters PowerShell reads as a single quote.
const POWERSHELL_SINGLE_QUOTES: [char; 5] = ['\'', '\u{2018}', '\u{2019}', '\u{201A}', '\u{201B}'];

/// A plain decimal number means the same to PowerShell quoted or not, in argument and in
/// expression position; a leading zero would be dropped in expression position, so not those.
fn powershell_plain_number(value: &str) -> bool {
    !value.is_empty()
        && value.chars().all(|c| c.is_ascii_digit())
        && (value.len() == 1 || !value.starts_with('0'))
}

/// Quote `value` as one PowerShell word (or string expression).
pub fn quote_powershell(value: &str) -> Cow<'_, str> {
    if powershell_plain_number(value) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if POWERSHELL_SINGLE_QUOTES.contains(&c) {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Values that have broken quoting functions before.
    const TRICKY: &[&str] = &[
        "",
        " ",
        "plain",
        "/usr/local/cuda-12.4",
        "/opt/my cuda/bin",
        "it's",
        "''",
        "'",
        "\"double\"",
        "$HOME",
        "${PATH}",
        "$(id)",
        "`id`",
        "a;b",
        "a&&b",
        "a|b",
        "a>b",
        "<x>",
        "*",
        "?",
        "[a]",
        "{a,b}",
        "~",
        "~root",
        "#comment",
        "a#b",
        "!",
        "!!",
        "line1\nline2",
        "\n",
        "tab\there",
        "cr\r",
        "esc\u{1b}[31mred",
        "bell\u{7}",
        "del\u{7f}",
        "back\\slash",
        "trailing\\",
        "\\'",
        "C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA\\v12.8",
        "C:\\cuda\\bin",
        "naïve café",
        "日本語",
        "emoji 🎉",
        "‘smart’ “quotes” ‚low‛",
        "-rf",
        "--flag=x",
        "@splat",
        "a,b",
        "1kb",
        "0x10",
        "007",
        "0",
        "12",
        "=",
        "%PATH%",
        "a b  c",
        "x\u{0}y",
    ];

    /// Run all quoted words through one bash and read them back, NUL separated.
    fn bash_round_trip(values: &[String]) -> Vec<String> {
        let words: Vec<String> = values.iter().map(|v| quote_bash(v).into_owned()).collect();
        let script = format!("printf '%s\\0' {}", words.join(" "));
        let out = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("bash runs");
        assert!(out.status.success(), "bash failed on: {script}");
        let text = String::from_utf8(out.stdout).expect("utf-8 back");
        let mut parts: Vec<String> = text.split('\0').map(str::to_string).collect();
        parts.pop(); // after the last NUL
        parts
    }

    #[test]
    fn bash_round_trips_tricky_values() {
        let values: Vec<String> = TRICKY
            .iter()
            .filter(|v| !v.contains('\0'))
            .map(|v| v.to_string())
            .collect();
        assert_eq!(bash_round_trip(&values), values);
    }

    /// A small deterministic generator, so failures reproduce.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn random_values(count: usize) -> Vec<String> {
        let pool: Vec<char> =
            "aZ09 _-./:,=@%+'\"$`\\;&|<>(){}[]*?!#~^\n\t\r\u{1b}\u{7f}é漢🎉‘’‚‛“”\u{85}"
                .chars()
                .collect();
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        (0..count)
            .map(|_| {
                let len = (rng.next() % 12) as usize;
                (0..len)
                    .map(|_| pool[(rng.next() % pool.len() as u64) as usize])
                    .collect()
            })
            .collect()
    }

    #[test]
    fn bash_round_trips_random_values() {
        let values = random_values(400);
        assert_eq!(bash_round_trip(&values), values);
    }

    #[test]
    fn bash_leaves_safe_words_alone_and_uses_ansi_c_for_control_characters() {
        assert_eq!(quote_bash("/usr/local/cuda-12.4"), "/usr/local/cuda-12.4");
        assert!(matches!(quote_bash("a=b:c,d@e%f+g"), Cow::Borrowed(_)));
        assert_eq!(quote_bash(""), "''");
        assert_eq!(quote_bash("it's"), "'it'\\''s'");
        assert_eq!(quote_bash("a\nb"), "$'a\\nb'");
        assert_eq!(quote_bash("\u{1b}1"), "$'\\x1b1'");
        assert!(
            !quote_bash("esc\u{1b}[31m").contains('\u{1b}'),
            "no raw escape in commands"
        );
    }

    /// Read back a PowerShell single-quoted string by the language's rules: it starts and ends
    /// with a single-quote character, and inside, a quote character only appears doubled.
    fn powershell_unquote(word: &str) -> Option<String> {
        if powershell_plain_number(word) {
            return Some(word.to_string());
        }
        let chars: Vec<char> = word.chars().collect();
        if chars.len() < 2
            || !POWERSHELL_SINGLE_QUOTES.contains(&chars[0])
            || !POWERSHELL_SINGLE_QUOTES.contains(&chars[chars.len() - 1])
        {
            return None;
        }
        let inner = &chars[1..chars.len() - 1];
        let mut out = String::new();
        let mut i = 0;
        while i < inner.len() {
            let c = inner[i];
            if POWERSHELL_SINGLE_QUOTES.contains(&c) {
                // A lone quote would end the string early.
                if i + 1 >= inner.len() || !POWERSHELL_SINGLE_QUOTES.contains(&inner[i + 1]) {
                    return None;
                }
                i += 1;
            }
            out.push(c);
            i += 1;
        }
        Some(out)
    }

    #[test]
    fn powershell_quoting_follows_the_single_quote_rules() {
        let mut values: Vec<String> = TRICKY.iter().map(|v| v.to_string()).collect();
        values.extend(random_values(400));
        for v in &values {
            let q = quote_powershell(v);
            assert_eq!(
                powershell_unquote(&q).as_deref(),
                Some(v.as_str()),
                "{v:?} -> {q}"
            );
        }
    }

    #[test]
    fn powershell_quotes_everything_but_plain_numbers() {
        assert_eq!(quote_powershell("0"), "0");
        assert_eq!(quote_powershell("12"), "12");
        assert_eq!(quote_powershell("007"), "'007'");
        assert_eq!(quote_powershell("1kb"), "'1kb'");
        assert_eq!(quote_powershell("a,b"), "'a,b'");
        assert_eq!(quote_powershell("@splat"), "'@splat'");
        assert_eq!(quote_powershell("-rf"), "'-rf'");
        assert_eq!(quote_powershell("C:\\cuda"), "'C:\\cuda'");
        assert_eq!(quote_powershell("it's"), "'it''s'");
        assert_eq!(quote_powershell("‘x’"), "'‘‘x’’'");
        assert_eq!(quote_powershell("$env:PATH"), "'$env:PATH'");
        assert_eq!(quote_powershell(""), "''");
    }
}
