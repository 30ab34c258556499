//! A task's output while it runs: the reading side of its log (from the executor) and the
//! byte counts of each stream (from its capture), shared by the task's sink and its record,
//! so `info()` and readers see them before the task ends.

use crate::exec::{OutputLog, OutputStats};
use std::sync::atomic::{AtomicU64, Ordering};

/// What a running task's record shares with the sink that feeds it.
#[derive(Debug)]
pub struct LiveOutput {
    pub log: OutputLog,
    stdout_bytes: AtomicU64,
    stderr_bytes: AtomicU64,
}

impl LiveOutput {
    pub(crate) fn new(log: OutputLog) -> Self {
        LiveOutput { log, stdout_bytes: AtomicU64::new(0), stderr_bytes: AtomicU64::new(0) }
    }

    /// The capture counted this much of each stream so far.
    pub(crate) fn counted(&self, (stdout, stderr): (u64, u64)) {
        self.stdout_bytes.store(stdout, Ordering::Relaxed);
        self.stderr_bytes.store(stderr, Ordering::Relaxed);
    }

    /// The output so far, as `info()` shows it.
    pub fn stats(&self) -> OutputStats {
        OutputStats {
            stdout_bytes: self.stdout_bytes.load(Ordering::Relaxed),
            stderr_bytes: self.stderr_bytes.load(Ordering::Relaxed),
            ..self.log.stats()
        }
    }
}

/// Lines of the output's end production's notification carries, at most.
const TAIL_LINES: usize = 20;
/// Characters of it, at most.
const TAIL_CHARS: usize = 2000;

impl LiveOutput {
    /// The output's end (its last lines, at most `TAIL_LINES` of them and `TAIL_CHARS`
    /// characters), or "" when `shown` already ends with it. Reads only the log's last few
    /// KiB, so the manager may call it under its lock.
    pub(crate) fn tail_beyond(&self, shown: &str) -> String {
        let stats = self.log.stats();
        // Enough bytes for TAIL_CHARS characters of any width, and one cut character.
        let window = 4 * TAIL_CHARS as u64 + 4;
        let from = stats.log_bytes.saturating_sub(window).max(stats.log_dropped);
        let text = self.log.read_span(from, stats.log_bytes);
        let text = text.trim_end();
        let lines_from =
            text.match_indices('\n').rev().nth(TAIL_LINES - 1).map_or(0, |(i, _)| i + 1);
        let text = &text[lines_from..];
        let chars_from = text.char_indices().rev().nth(TAIL_CHARS - 1).map_or(0, |(i, _)| i);
        let tail = &text[chars_from..];
        if tail.is_empty() || shown.trim_end().ends_with(tail) {
            return String::new();
        }
        tail.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(bytes: &[u8]) -> LiveOutput {
        let log = OutputLog::new();
        log.hold(bytes);
        LiveOutput::new(log)
    }

    #[test]
    fn the_tail_is_the_last_lines_cut_to_whole_characters() {
        let lines: String = (1..=30).map(|n| format!("{n}\n")).collect();
        assert_eq!(
            live(lines.as_bytes()).tail_beyond("1\n2\n"),
            (11..=30).map(|n| n.to_string()).collect::<Vec<_>>().join("\n")
        );
        // One long line of two-byte characters: the last 2,000 of them, none split.
        let wide = "é".repeat(10_000);
        assert_eq!(live(wide.as_bytes()).tail_beyond(""), "é".repeat(TAIL_CHARS));
        // A result that already ends with the output's end: no tail.
        assert_eq!(live(b"a\nb\n").tail_beyond("a\nb"), "");
        assert_eq!(live(b"").tail_beyond(""), "");
    }
}
