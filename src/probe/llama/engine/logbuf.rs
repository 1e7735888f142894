//! Joins llama.cpp's log messages into whole lines.
//!
//! `llama_log_set` delivers formatted messages, not lines: most end in `\n`, but CONT (level 5)
//! fragments continue the previous line (the model-load progress dots), and a message may hold
//! several lines. The buffer is bounded so that a chatty library cannot fill memory or the
//! report: past [`MAX_LINES`] lines are counted, not kept, and each line is cut at
//! [`MAX_LINE_BYTES`].

use super::LogLine;

/// ggml_log_level's CONT: continue the previous message.
pub const LEVEL_CONT: u32 = 5;
/// Lines kept per section (start-up, one run); a tiny model logs a few hundred.
pub const MAX_LINES: usize = 20_000;
pub const MAX_LINE_BYTES: usize = 4096;

#[derive(Debug, Default)]
pub struct LogBuffer {
    lines: Vec<LogLine>,
    pending: String,
    pending_level: u32,
    last_level: u32,
    dropped: usize,
}

impl LogBuffer {
    pub const fn new() -> Self {
        LogBuffer {
            lines: Vec::new(),
            pending: String::new(),
            pending_level: 0,
            last_level: 0,
            dropped: 0,
        }
    }

    /// One message from the log callback.
    pub fn push(&mut self, level: u32, text: &str) {
        if level == LEVEL_CONT {
            if self.pending.is_empty() {
                self.pending_level = self.last_level;
            }
        } else {
            // A new message starts a new line, even when the last one lacked its newline.
            self.flush_pending();
            self.pending_level = level;
            self.last_level = level;
        }
        let mut rest = text;
        while let Some(end) = rest.find('\n') {
            self.pending.push_str(&rest[..end]);
            self.flush_line();
            rest = &rest[end + 1..];
        }
        self.pending.push_str(rest);
    }

    /// Everything logged since the last call (a partial line included), as whole lines; a
    /// note says how many lines were dropped past the cap.
    pub fn take(&mut self) -> Vec<LogLine> {
        self.flush_pending();
        let mut lines = std::mem::take(&mut self.lines);
        if self.dropped > 0 {
            lines.push(LogLine {
                level: 3,
                text: format!(
                    "gpu-doctor: {} further log lines were dropped (more than {MAX_LINES})",
                    self.dropped
                ),
            });
            self.dropped = 0;
        }
        lines
    }

    fn flush_pending(&mut self) {
        if !self.pending.is_empty() {
            self.flush_line();
        }
    }

    fn flush_line(&mut self) {
        let mut text = std::mem::take(&mut self.pending);
        if self.lines.len() >= MAX_LINES {
            self.dropped += 1;
            return;
        }
        if text.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        self.lines.push(LogLine {
            level: self.pending_level,
            text,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[LogLine]) -> Vec<(u32, &str)> {
        lines.iter().map(|l| (l.level, l.text.as_str())).collect()
    }

    #[test]
    fn messages_become_lines_with_their_level() {
        let mut b = LogBuffer::new();
        b.push(
            1,
            "load_tensors: layer   0 assigned to device CPU, is_swa = 0\n",
        );
        b.push(2, "a\nb\n");
        assert_eq!(
            texts(&b.take()),
            [
                (
                    1,
                    "load_tensors: layer   0 assigned to device CPU, is_swa = 0"
                ),
                (2, "a"),
                (2, "b")
            ]
        );
        assert!(b.take().is_empty());
    }

    #[test]
    fn cont_fragments_join_the_line_they_continue() {
        let mut b = LogBuffer::new();
        b.push(2, "llama_model_load: loading");
        b.push(LEVEL_CONT, ".");
        b.push(LEVEL_CONT, ".");
        b.push(LEVEL_CONT, "\n");
        // A CONT with nothing pending takes the level of the line before it.
        b.push(LEVEL_CONT, "...\n");
        assert_eq!(
            texts(&b.take()),
            [(2, "llama_model_load: loading.."), (2, "...")]
        );
    }

    #[test]
    fn a_message_without_newline_ends_its_line_when_the_next_message_starts() {
        let mut b = LogBuffer::new();
        b.push(4, "first");
        b.push(2, "second");
        assert_eq!(texts(&b.take()), [(4, "first"), (2, "second")]);
    }

    #[test]
    fn lines_past_the_cap_are_counted_and_long_lines_cut() {
        let mut b = LogBuffer::new();
        for _ in 0..MAX_LINES + 5 {
            b.push(1, "x\n");
        }
        let lines = b.take();
        assert_eq!(lines.len(), MAX_LINES + 1);
        assert!(lines[MAX_LINES]
            .text
            .contains("5 further log lines were dropped"));
        b.push(2, &"é".repeat(MAX_LINE_BYTES));
        let long = b.take();
        assert!(long[0].text.len() <= MAX_LINE_BYTES);
        assert!(long[0].text.chars().all(|c| c == 'é'));
    }
}
