//! Property tests of the quoting every fix command relies on (`gpu_doctor::shell`): whatever a
//! value holds (spaces, quotes, `$`, backticks, `;`, newlines and other control characters,
//! any Unicode, Windows paths with drive letters and backslashes), the quoted word means
//! exactly that value to the shell, as one word.
//!
//! - bash: checked by a real bash. The quoted words are put in `printf '%s\0' WORDS` and what
//!   bash prints must be the values, byte for byte, in the C.UTF-8 and the plain C locale.
//! - PowerShell: not available here (it is neither in Debian nor on PyPI), so the quoted word
//!   is read back by a parser of PowerShell's verbatim (single-quoted) string literal written
//!   from the PowerShell Language Specification 3.0, §2.3.5.2 (`verbatim-string-literal`:
//!   a single-quote character, then any characters where a quote character appears only
//!   doubled, then a single-quote character; the single-quote characters are U+0027 and
//!   U+2018 to U+201B). That checks the quoting against the language's rules, not against a
//!   running PowerShell: a limitation, stated in docs/security.md.
//! - NUL cannot be part of a command-line argument on any system (arguments are C strings), so
//!   no quoting can carry it: bash quoting writes `\x00`, which ends the word there. Facts
//!   never hold one from the system (environment values and paths cannot); the last test pins
//!   down what happens if one did.

use gpu_doctor::probe::process;
use gpu_doctor::shell::{quote_bash, quote_powershell};
use proptest::prelude::*;
use std::process::Command;
use std::time::Duration;

/// Any string, a string dense in what shells treat specially, or a Windows path; no NUL.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ '\"$`;&|<>(){}\\[\\]*?!#~^%=,:@+\\\\\n\t\r\u{1b}\u{7f}a-zA-Z0-9é漢🎉‘’‚‛“”„\u{85}\u{9b}\u{2028}-]{0,24}",
        "[A-Za-z]:(\\\\[^\\\\/:*?\"<>|\u{0}]{1,12}){1,4}\\\\?",
        "(-{1,2}[a-z]{1,6}(=[a-z0-9 ]{0,6})?|[0-9]{1,4}|0x[0-9a-f]{1,4}|@[a-z]{1,5}|\\$[a-zA-Z:]{1,8})",
    ]
    .prop_map(|s| s.replace('\0', ""))
}

/// Run `script` with bash in `locale`, return stdout (bytes).
fn bash(script: &str, locale: &str) -> Vec<u8> {
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(script).env("LC_ALL", locale);
    let out = process::run(&mut cmd, Duration::from_secs(30), 1 << 20).expect("bash runs");
    assert!(
        out.success(),
        "bash failed ({}) on: {script}",
        out.describe_end()
    );
    out.stdout
}

/// The values bash sees for the quoted words, NUL separated.
fn through_bash(values: &[String], locale: &str) -> Vec<String> {
    let words: Vec<String> = values.iter().map(|v| quote_bash(v).into_owned()).collect();
    let out = bash(&format!("printf '%s\\0' {}", words.join(" ")), locale);
    let mut parts: Vec<String> = out
        .split(|b| *b == 0)
        .map(|p| String::from_utf8(p.to_vec()).expect("UTF-8 back"))
        .collect();
    parts.pop(); // after the last NUL
    parts
}

const PS_QUOTES: [char; 5] = ['\'', '\u{2018}', '\u{2019}', '\u{201A}', '\u{201B}'];

/// Read one PowerShell word as the language does: a verbatim string literal (§2.3.5.2), or a
/// decimal integer literal (§2.3.5.1.1: a run of decimal digits) whose text is its value as an
/// argument. `None` when `word` is not exactly one such token.
fn powershell_read(word: &str) -> Option<String> {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_digit()) {
        return Some(word.to_string());
    }
    let chars: Vec<char> = word.chars().collect();
    let (first, rest) = chars.split_first()?;
    if !PS_QUOTES.contains(first) {
        return None;
    }
    let mut value = String::new();
    let mut i = 0;
    while i < rest.len() {
        let c = rest[i];
        if PS_QUOTES.contains(&c) {
            match rest.get(i + 1) {
                // A doubled quote character is one of it.
                Some(next) if PS_QUOTES.contains(next) => {
                    value.push(c);
                    i += 2;
                }
                // The closing quote must end the word.
                _ if i + 1 == rest.len() => return Some(value),
                _ => return None,
            }
        } else {
            value.push(c);
            i += 1;
        }
    }
    None // never closed
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn bash_gives_back_every_value_as_one_word(values in prop::collection::vec(value(), 1..8)) {
        prop_assert_eq!(&through_bash(&values, "C.UTF-8"), &values);
        prop_assert_eq!(&through_bash(&values, "C"), &values);
    }

    /// The quoted word shows on one line with no raw control character, so a printed fix
    /// cannot hide or rewrite part of itself on a terminal.
    #[test]
    fn bash_words_hold_no_raw_control_character(v in value()) {
        let q = quote_bash(&v);
        prop_assert!(!q.chars().any(char::is_control), "{:?} -> {:?}", v, q);
    }

    #[test]
    fn powershell_reads_back_every_value_as_one_token(v in value()) {
        let q = quote_powershell(&v);
        prop_assert_eq!(powershell_read(&q), Some(v.clone()), "{:?} -> {}", v, q);
        // Only digits go unquoted: nothing else can be a parameter, a number with a suffix,
        // an array, a splat, a variable or a command.
        if !q.starts_with(PS_QUOTES) {
            prop_assert!(v.chars().all(|c| c.is_ascii_digit()));
        }
    }
}

/// The reader itself: it accepts what the specification accepts and nothing else, so the
/// property above cannot pass by reading anything as anything.
#[test]
fn the_powershell_reader_follows_the_specification() {
    assert_eq!(powershell_read("'it''s'").as_deref(), Some("it's"));
    assert_eq!(powershell_read("‘a’’b’").as_deref(), Some("a’b"));
    assert_eq!(
        powershell_read("'a'b'"),
        None,
        "a lone quote ends the string early"
    );
    assert_eq!(powershell_read("'open"), None);
    assert_eq!(powershell_read("bare"), None);
    assert_eq!(powershell_read("'a' 'b'"), None, "two tokens");
    assert_eq!(powershell_read("12").as_deref(), Some("12"));
    assert_eq!(powershell_read("1kb"), None);
}

/// Windows paths, spelled as users have them, keep every backslash in both shells.
#[test]
fn windows_paths_survive_both_shells() {
    let paths = [
        "C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA\\v12.8",
        "C:\\Users\\Zoë O'Neil\\proj\\.venv\\Scripts\\python.exe",
        "\\\\server\\share\\models\\x.gguf",
        "D:\\",
        "C:\\a\\$env:PATH\\`n",
    ];
    let values: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
    assert_eq!(through_bash(&values, "C.UTF-8"), values);
    for p in paths {
        assert_eq!(powershell_read(&quote_powershell(p)).as_deref(), Some(p));
    }
}

/// NUL cannot be passed in an argument: bash quoting writes it as `\x00`, where bash ends the
/// word. Documented rather than hidden.
#[test]
fn nul_ends_a_bash_word_where_it_stands() {
    assert_eq!(quote_bash("a\0b"), "$'a\\x00b'");
    assert_eq!(
        bash(&format!("printf '%s' {}", quote_bash("a\0b")), "C"),
        b"a"
    );
}
