//! read_file, write_file, edit_file: the lesson's texts, inside the workspace only.
//!
//! Files are opened beneath the workspace without following a symlink swapped in after the
//! check ([`beneath`]), and only regular files (a FIFO would block forever). read_file streams:
//! it keeps only what its answer can show (50,000 characters) and counts the rest, so a huge
//! file costs time, not memory. In production the API credentials are redacted as the file is
//! read, before the answer is cut (see [`crate::secrets`]).

use super::beneath::{self, Access};
use super::path::safe_path;
use super::tool::Guard;
use crate::secrets::{RedactStream, Redactor};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The longest answer read_file gives, in characters (the lesson's cut).
const ANSWER: usize = 50_000;

/// Why a file tool failed. Worded two ways: the lesson's (the text of the Python exception its
/// code would raise) and production's (what to do about it).
enum Failure {
    /// Refused by `safe_path`: the same text both ways.
    Refused(String),
    Io {
        at: PathBuf,
        error: std::io::Error,
    },
    NotUtf8 {
        at: PathBuf,
        offset: u64,
        bytes: Vec<u8>,
        truncated: bool,
    },
}

impl Failure {
    fn io(at: &Path) -> impl Fn(std::io::Error) -> Failure + '_ {
        move |error| Failure::Io { at: at.to_path_buf(), error }
    }

    fn text(&self, guard: Guard) -> String {
        match (self, guard) {
            (Failure::Refused(text), _) => format!("Error: {text}"),
            (Failure::Io { at, error }, Guard::Lesson) => match error.raw_os_error() {
                // OSError's own str(): `[Errno 2] No such file or directory: '/w/x'`.
                Some(code) => format!(
                    "Error: [Errno {code}] {}: {}",
                    strerror(code),
                    crate::text::py_repr(&at.to_string_lossy())
                ),
                None => format!("Error: {}: {error}", at.display()),
            },
            (Failure::Io { at, error }, Guard::Production) => {
                format!("Error: {}: {error}", at.display())
            }
            (Failure::NotUtf8 { offset, bytes, truncated, .. }, Guard::Lesson) => {
                // UnicodeDecodeError's str().
                let reason = if *truncated {
                    "unexpected end of data"
                } else if matches!(bytes[0], 0x80..=0xC1 | 0xF5..=0xFF) {
                    "invalid start byte"
                } else {
                    "invalid continuation byte"
                };
                let what = match bytes.len() {
                    1 => format!("byte 0x{:02x} in position {offset}", bytes[0]),
                    n => format!("bytes in position {offset}-{}", offset + n as u64 - 1),
                };
                format!("Error: 'utf-8' codec can't decode {what}: {reason}")
            }
            (Failure::NotUtf8 { at, offset, .. }, Guard::Production) => format!(
                "Error: {} is not UTF-8 text (invalid byte at offset {offset}); inspect it with \
                 bash instead",
                at.display()
            ),
        }
    }
}

/// The C library's text for an errno (what Python shows), without Rust's "(os error N)".
fn strerror(code: i32) -> String {
    let text = std::io::Error::from_raw_os_error(code).to_string();
    text.strip_suffix(&format!(" (os error {code})")).unwrap_or(&text).to_string()
}

fn open(root: &Path, path: &str, access: Access) -> Result<(std::fs::File, PathBuf), Failure> {
    let resolved = safe_path(root, path).map_err(Failure::Refused)?;
    let file = beneath::open(root, &resolved, access)
        .map_err(|f| Failure::Io { at: f.at, error: f.error })?;
    Ok((file, resolved))
}

/// The invalid piece of `bytes` a UTF-8 decode stops at: its offset, bytes, and whether the
/// text simply ended inside a character.
fn utf8_failure(at: &Path, base: u64, bytes: &[u8], e: std::str::Utf8Error) -> Failure {
    let start = e.valid_up_to();
    let len = e.error_len().unwrap_or(bytes.len() - start);
    Failure::NotUtf8 {
        at: at.to_path_buf(),
        offset: base + start as u64,
        bytes: bytes[start..start + len].to_vec(),
        truncated: e.error_len().is_none(),
    }
}

/// Text files only: bytes that are not UTF-8 are refused rather than silently altered, so an
/// edit can never corrupt them.
fn read_text(root: &Path, path: &str) -> Result<(String, PathBuf), Failure> {
    let (mut file, resolved) = open(root, path, Access::Read)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(Failure::io(&resolved))?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok((text, resolved)),
        Err(e) => Err(utf8_failure(&resolved, 0, e.as_bytes(), e.utf8_error())),
    }
}

/// The whole text of a file, or why it could not be read (worded for `guard`, without the
/// tools' "Error: " in front).
pub fn whole_text(root: &Path, path: &str, guard: Guard) -> Result<String, String> {
    read_text(root, path).map(|(text, _)| text).map_err(|f| {
        let text = f.text(guard);
        text.strip_prefix("Error: ").map(str::to_string).unwrap_or(text)
    })
}

/// How many lines (as Python's `splitlines()` counts them) a file has, or why it could not be
/// read (as [`whole_text`] words it).
pub fn count_lines(root: &Path, path: &str, guard: Guard) -> Result<u64, String> {
    let mut lines = Lines::new(0);
    lines.feed(&whole_text(root, path, guard)?);
    Ok(lines.finish().1)
}

/// read_file as the lesson has it: the file's text as it is.
pub fn read(root: &Path, path: &str, limit: Option<i64>, guard: Guard) -> String {
    read_redacted(root, path, limit, guard, &Redactor::default())
}

/// read_file with the secrets `redactor` knows replaced before the answer is cut.
pub(crate) fn read_redacted(
    root: &Path,
    path: &str,
    limit: Option<i64>,
    guard: Guard,
    redactor: &Redactor,
) -> String {
    read_head(root, path, limit, redactor).unwrap_or_else(|f| f.text(guard))
}

/// The lesson's `"\n".join(lines[:limit] + ["... (N more)"])[:50000]`, read as a stream, of the
/// redacted text.
fn read_head(
    root: &Path,
    path: &str,
    limit: Option<i64>,
    redactor: &Redactor,
) -> Result<String, Failure> {
    let (mut file, resolved) = open(root, path, Access::Read)?;
    // `if limit and limit < len(lines)`: zero or no limit reads everything; a negative one
    // slices from the end, as Python does (so every line may be needed: keep what shows).
    let limit = limit.filter(|&l| l != 0);
    let keep = limit.filter(|&l| l > 0).map_or(u64::MAX, |l| l as u64);
    let mut lines = Lines::new(keep);
    let mut buf = vec![0u8; 64 * 1024];
    let mut carry = Vec::new(); // the start of a character cut by the chunk's end
    let mut offset = 0u64;
    // Redacted after the UTF-8 check, so a refusal names offsets in the file itself.
    let mut redact = redactor.stream();
    let mut decided = Vec::new();
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failure::Io { at: resolved, error: e }),
        };
        carry.extend_from_slice(&buf[..n]);
        let valid = match std::str::from_utf8(&carry) {
            Ok(text) => text.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(), // cut, not invalid
            Err(e) => return Err(utf8_failure(&resolved, offset, &carry, e)),
        };
        feed_redacted(&mut lines, &mut redact, &carry[..valid], &mut decided, false);
        offset += valid as u64;
        carry.drain(..valid);
    }
    if !carry.is_empty() {
        let e = std::str::from_utf8(&carry).expect_err("an incomplete character is left");
        return Err(utf8_failure(&resolved, offset, &carry, e));
    }
    feed_redacted(&mut lines, &mut redact, &[], &mut decided, true);
    let (mut kept, count) = lines.finish();
    if let Some(limit) = limit.filter(|&l| l < count as i64) {
        // `lines[:limit]`: a negative limit counts from the end.
        let shown =
            if limit > 0 { limit as u64 } else { count.saturating_sub(limit.unsigned_abs()) };
        kept.truncate(shown.min(kept.len() as u64) as usize);
        kept.push(format!("... ({} more)", count as i64 - limit));
    }
    Ok(redactor.cut(&kept.join("\n"), ANSWER).into_owned())
}

/// Feeds `valid` (UTF-8) to `lines` once `redact` has decided it; `end` releases what it held.
fn feed_redacted(
    lines: &mut Lines,
    redact: &mut RedactStream,
    valid: &[u8],
    decided: &mut Vec<u8>,
    end: bool,
) {
    decided.clear();
    redact.push(valid, decided);
    if end {
        redact.finish(decided);
    }
    // Valid text stays valid: a held tail starts where a key would, on a character boundary.
    lines.feed(&String::from_utf8_lossy(decided));
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

pub fn write(root: &Path, path: &str, content: &str, guard: Guard) -> String {
    let written = open(root, path, Access::Write { make_dirs: true })
        .and_then(|(mut f, p)| f.write_all(content.as_bytes()).map_err(Failure::io(&p)));
    match written {
        // The lesson counts characters (Python's len) and calls them bytes.
        Ok(()) => format!("Wrote {} bytes", content.chars().count()),
        Err(f) => f.text(guard),
    }
}

pub fn edit(root: &Path, path: &str, old_text: &str, new_text: &str, guard: Guard) -> String {
    let text = match read_text(root, path) {
        Ok((t, _)) => t,
        Err(f) => return f.text(guard),
    };
    if !text.contains(old_text) {
        return format!("Error: Text not found in {path}");
    }
    let new = text.replacen(old_text, new_text, 1);
    let edited = open(root, path, Access::Write { make_dirs: false })
        .and_then(|(mut f, p)| f.write_all(new.as_bytes()).map_err(Failure::io(&p)));
    match edited {
        Ok(()) => format!("Edited {path}"),
        Err(f) => f.text(guard),
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
