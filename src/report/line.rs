//! The line format: one line of at most 80 bytes (newline not counted), for engines that keep
//! a short message with an exit code: node-problem-detector's custom plugins (it trims stdout
//! and keeps `max_output_length` bytes, 80 by default), Slurm drain reasons, NHC's `die`.
//!
//! Not ready: the first failing finding, rule id first, `rule-id: title`, and `(+N)` when more
//! findings fail; ready: `OK: ready`, with the count of findings below the fail level. Text
//! that does not fit is cut on a character boundary and ends with `…`; the 80 is in bytes,
//! the `…` (3 bytes) included, so no consumer cuts a character in half.

use super::ReportInput;

/// node-problem-detector's default `max_output_length`.
pub const MAX_BYTES: usize = 80;

pub fn render(input: &ReportInput) -> String {
    let mut line = verdict_line(input);
    let overrides = super::overrides(input.rules).len();
    if overrides > 0 {
        line = fit(
            &line,
            &format!(" ({overrides} built-in rule(s) overridden)"),
        );
    }
    line.push('\n');
    line
}

/// The line, without its newline.
pub(super) fn verdict_line(input: &ReportInput) -> String {
    let failing: Vec<_> = input
        .findings
        .iter()
        .filter(|f| input.verdict.fails(f.severity))
        .collect();
    let Some(first) = failing.first() else {
        let below = input.findings.len();
        return if below == 0 {
            "OK: ready".to_string()
        } else {
            fit(
                &format!("OK: ready ({below} finding(s) below the fail level)"),
                "",
            )
        };
    };
    let suffix = match failing.len() {
        1 => String::new(),
        n => format!(" (+{})", n - 1),
    };
    fit(&format!("{}: {}", first.rule, first.title), &suffix)
}

/// `head` then `suffix` in at most [`MAX_BYTES`] bytes, `head` cut with `…` when needed;
/// control characters (line breaks included) become spaces.
fn fit(head: &str, suffix: &str) -> String {
    let head: String = head
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let head = head.trim();
    if head.len() + suffix.len() <= MAX_BYTES {
        return format!("{head}{suffix}");
    }
    const ELLIPSIS: &str = "…";
    let mut end = MAX_BYTES.saturating_sub(suffix.len() + ELLIPSIS.len());
    while !head.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ELLIPSIS}{suffix}", head[..end].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_whole() {
        assert_eq!(fit("rule: title", " (+2)"), "rule: title (+2)");
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary_in_bytes() {
        let head = format!("driver-library-mismatch: {}", "é".repeat(60));
        let line = fit(&head, " (+12)");
        assert!(line.len() <= MAX_BYTES, "{} bytes: {line}", line.len());
        assert!(line.ends_with("… (+12)"), "{line}");
        assert!(line.starts_with("driver-library-mismatch: é"));
    }

    #[test]
    fn line_breaks_do_not_survive() {
        assert_eq!(fit("a\nb\r\tc", ""), "a b  c");
    }
}
