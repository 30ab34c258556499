//! read_file, write_file, edit_file: the lesson's texts, inside the workspace only.
//!
//! Files are opened beneath the workspace without following a symlink swapped in after the
//! check ([`beneath`]), and only regular files (a FIFO would block forever). read_file streams:
//! it keeps only what its answer can show (50,000 characters) and counts the rest, so a huge
//! file costs time, not memory.

use super::beneath::{self, Access};
use super::path::safe_path;
use crate::text::prefix;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The longest answer read_file gives, in characters (the lesson's cut).
const ANSWER: usize = 50_000;

fn open(root: &Path, path: &str, access: Access) -> Result<(std::fs::File, PathBuf), String> {
    let resolved = safe_path(root, path)?;
    let file = beneath::open(root, &resolved, access)
        .map_err(|e| format!("{}: {e}", resolved.display()))?;
    Ok((file, resolved))
}

fn not_utf8(path: &Path, offset: u64) -> String {
    format!(
        "{} is not UTF-8 text (invalid byte at offset {offset}); inspect it with bash instead",
        path.display()
    )
}

/// Text files only: bytes that are not UTF-8 are refused rather than silently altered, so an
/// edit can never corrupt them.
fn read_text(root: &Path, path: &str) -> Result<(String, PathBuf), String> {
    let (mut file, resolved) = open(root, path, Access::Read)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| format!("{}: {e}", resolved.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|e| not_utf8(&resolved, e.utf8_error().valid_up_to() as u64))?;
    Ok((text, resolved))
}

pub fn read(root: &Path, path: &str, limit: Option<i64>) -> String {
    match read_head(root, path, limit) {
        Ok(text) => text,
        Err(e) => format!("Error: {e}"),
    }
}

/// The lesson's `"\n".join(lines[:limit] + ["... (N more)"])[:50000]`, read as a stream.
fn read_head(root: &Path, path: &str, limit: Option<i64>) -> Result<String, String> {
    let (mut file, resolved) = open(root, path, Access::Read)?;
    // `if limit and limit < len(lines)`: zero or no limit reads everything.
    let limit = limit.filter(|&l| l > 0).map(|l| l as u64);
    let mut lines = Lines::new(limit.unwrap_or(u64::MAX));
    let mut buf = vec![0u8; 64 * 1024];
    let mut carry = Vec::new(); // the start of a character cut by the chunk's end
    let mut offset = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("{}: {e}", resolved.display())),
        };
        carry.extend_from_slice(&buf[..n]);
        let valid = match std::str::from_utf8(&carry) {
            Ok(text) => text.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(), // cut, not invalid
            Err(e) => return Err(not_utf8(&resolved, offset + e.valid_up_to() as u64)),
        };
        lines.feed(std::str::from_utf8(&carry[..valid]).expect("checked above"));
        offset += valid as u64;
        carry.drain(..valid);
    }
    if !carry.is_empty() {
        return Err(not_utf8(&resolved, offset));
    }
    let (mut kept, count) = lines.finish();
    if let Some(limit) = limit.filter(|&l| l < count) {
        kept.truncate(limit as usize);
        kept.push(format!("... ({} more)", count - limit));
    }
    Ok(prefix(&kept.join("\n"), ANSWER).to_string())
}

/// Python's `str.splitlines()` over a stream: counts every line, keeps the first ones while
/// they fit in the answer.
struct Lines {
    kept: Vec<String>,
    /// Characters kept so far, with the newlines that will join them.
    kept_chars: usize,
    keep_at_most: u64,
    count: u64,
    current: String,
    /// Characters in `current`.
    current_kept: usize,
    /// Characters since the last line break (the current line exists once there is one).
    current_chars: usize,
    /// A `\r` ended the last line: a `\n` right after it belongs to it.
    after_cr: bool,
}

impl Lines {
    fn new(keep_at_most: u64) -> Self {
        Lines {
            kept: Vec::new(),
            kept_chars: 0,
            keep_at_most,
            count: 0,
            current: String::new(),
            current_kept: 0,
            current_chars: 0,
            after_cr: false,
        }
    }

    fn feed(&mut self, text: &str) {
        if !self.room() && self.current_kept == 0 {
            return self.count_only(text.as_bytes());
        }
        for c in text.chars() {
            if std::mem::take(&mut self.after_cr) && c == '\n' {
                continue;
            }
            let is_break = matches!(c, '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{1c}'..='\u{1e}')
                || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}');
            if is_break {
                self.end_line();
                self.after_cr = c == '\r';
            } else {
                self.current_chars += 1;
                if self.room() {
                    self.current.push(c);
                    self.current_kept += 1;
                }
            }
        }
    }

    /// Past what the answer can show, lines are only counted: byte by byte (the text is valid
    /// UTF-8, so the three-byte breaks U+2028/9 and the two-byte U+0085 are whole here).
    fn count_only(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if std::mem::take(&mut self.after_cr) && b == b'\n' {
                i += 1;
                continue;
            }
            let next = |k: usize| bytes.get(i + k).copied();
            let brk = match b {
                b'\n' | b'\r' | 0x0b | 0x0c | 0x1c..=0x1e => 1,
                0xC2 if next(1) == Some(0x85) => 2,
                0xE2 if next(1) == Some(0x80) && matches!(next(2), Some(0xA8 | 0xA9)) => 3,
                _ => 0,
            };
            if brk == 0 {
                self.current_chars += 1;
                i += 1;
            } else {
                self.end_line();
                self.after_cr = b == b'\r';
                i += brk;
            }
        }
    }

    /// Whether the line being read can still show in the answer.
    fn room(&self) -> bool {
        (self.kept.len() as u64) < self.keep_at_most
            && self.kept_chars + self.current_kept <= ANSWER
    }

    fn end_line(&mut self) {
        self.count += 1;
        let line = std::mem::take(&mut self.current);
        if (self.kept.len() as u64) < self.keep_at_most && self.kept_chars <= ANSWER {
            self.kept_chars += self.current_kept + 1;
            self.kept.push(line);
        }
        self.current_kept = 0;
        self.current_chars = 0;
    }

    /// The kept lines and how many lines there were in all.
    fn finish(mut self) -> (Vec<String>, u64) {
        if self.current_chars > 0 {
            self.end_line();
        }
        (self.kept, self.count)
    }
}

pub fn write(root: &Path, path: &str, content: &str) -> String {
    let written = open(root, path, Access::Write { make_dirs: true }).and_then(|(mut f, p)| {
        f.write_all(content.as_bytes()).map_err(|e| format!("{}: {e}", p.display()))
    });
    match written {
        // The lesson counts characters (Python's len) and calls them bytes.
        Ok(()) => format!("Wrote {} bytes", content.chars().count()),
        Err(e) => format!("Error: {e}"),
    }
}

pub fn edit(root: &Path, path: &str, old_text: &str, new_text: &str) -> String {
    let text = match read_text(root, path) {
        Ok((t, _)) => t,
        Err(e) => return format!("Error: {e}"),
    };
    if !text.contains(old_text) {
        return format!("Error: Text not found in {path}");
    }
    let edited = open(root, path, Access::Write { make_dirs: false }).and_then(|(mut f, p)| {
        let new = text.replacen(old_text, new_text, 1);
        f.write_all(new.as_bytes()).map_err(|e| format!("{}: {e}", p.display()))
    });
    match edited {
        Ok(()) => format!("Edited {path}"),
        Err(e) => format!("Error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::py_splitlines;

    #[test]
    fn streamed_lines_match_python_splitlines_however_the_text_is_cut() {
        let texts =
            ["", "a", "a\n", "\n\n", "a\r\nb\rc\n\rd", "x\u{2028}y\u{85}z\x0b\x0c\x1c", "é\r"];
        for text in texts {
            let want: Vec<String> = py_splitlines(text).into_iter().map(String::from).collect();
            for size in 1..4 {
                let mut lines = Lines::new(u64::MAX);
                let chars: Vec<char> = text.chars().collect();
                for piece in chars.chunks(size) {
                    lines.feed(&piece.iter().collect::<String>());
                }
                let (kept, count) = lines.finish();
                assert_eq!((kept, count), (want.clone(), want.len() as u64), "{text:?} by {size}");
            }
        }
    }

    #[test]
    fn counting_only_agrees_with_python_splitlines() {
        let texts = [
            "",
            "a",
            "a\n",
            "\n\n",
            "a\r\nb\rc\n\rd",
            "x\u{2028}y\u{85}z\x0b\x0c\x1c",
            "é\r",
            "\r",
            "\r\n",
        ];
        for text in texts {
            for size in 1..4 {
                let mut lines = Lines::new(0); // keeps nothing: counts only
                let chars: Vec<char> = text.chars().collect();
                for piece in chars.chunks(size) {
                    lines.feed(&piece.iter().collect::<String>());
                }
                let want = py_splitlines(text).len() as u64;
                assert_eq!(lines.finish(), (Vec::new(), want), "{text:?} by {size}");
            }
        }
    }

    #[test]
    fn only_what_the_answer_shows_is_kept() {
        let mut lines = Lines::new(u64::MAX);
        for _ in 0..100_000 {
            lines.feed("0123456789\n");
        }
        let (kept, count) = lines.finish();
        assert_eq!(count, 100_000);
        assert!(kept.len() < 4600, "{} lines kept", kept.len());
        let mut lines = Lines::new(u64::MAX);
        lines.feed(&"y".repeat(200_000));
        lines.feed("\nshort\nthird");
        let (kept, count) = lines.finish();
        assert_eq!((kept.len(), kept[0].len(), count), (1, ANSWER + 1, 3));
        let mut lines = Lines::new(2);
        lines.feed("a\nb\nc\nd");
        assert_eq!(lines.finish(), (vec!["a".to_string(), "b".to_string()], 4));
    }
}
