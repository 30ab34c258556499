//! Bounded output capture.
//!
//! The lesson keeps `(stdout + stderr).strip()[:limit]`. Holding whole streams for that would let a
//! chatty command eat memory, so each stream keeps only what the formula can ever show: its
//! leading whitespace and its first `limit` characters after it (both capped), plus one bit
//! saying whether anything but whitespace came later. [`combine`] rebuilds the exact result.

use crate::text::{is_py_space, py_rstrip};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Incremental lossy UTF-8 decoding: invalid sequences become U+FFFD exactly as
/// `String::from_utf8_lossy` would make them, even when a chunk boundary splits a character.
#[derive(Default)]
struct Utf8Decoder {
    pending: Vec<u8>,
}

impl Utf8Decoder {
    fn decode(&mut self, bytes: &[u8], out: &mut String) {
        let joined;
        let mut rest: &[u8] = if self.pending.is_empty() {
            bytes
        } else {
            self.pending.extend_from_slice(bytes);
            joined = std::mem::take(&mut self.pending);
            &joined
        };
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    return;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    // SAFETY-free: `good` was just validated.
                    out.push_str(std::str::from_utf8(good).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &bad[n..];
                        }
                        None => {
                            // An incomplete character at the end: wait for the next chunk.
                            self.pending = bad.to_vec();
                            return;
                        }
                    }
                }
            }
        }
    }

    fn finish(&mut self, out: &mut String) {
        if !self.pending.is_empty() {
            self.pending.clear();
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
}

/// What one stream keeps of its text.
pub struct StreamHead {
    limit: usize,
    decoder: Utf8Decoder,
    /// Leading whitespace, at most `limit` characters.
    leading: String,
    leading_chars: usize,
    /// Text from the first non-whitespace character on, at most `limit` characters.
    body: String,
    body_chars: usize,
    /// A non-whitespace character came after `body` was full.
    more_beyond: bool,
    /// The last character was `\r` (a `\n` right after it belongs to the same line break).
    after_cr: bool,
    /// Total bytes read from the stream.
    pub bytes: u64,
}

impl StreamHead {
    pub fn new(limit: usize) -> Self {
        StreamHead {
            limit,
            decoder: Utf8Decoder::default(),
            leading: String::new(),
            leading_chars: 0,
            body: String::new(),
            body_chars: 0,
            more_beyond: false,
            after_cr: false,
            bytes: 0,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.bytes += bytes.len() as u64;
        // Once something visible lies past the kept head, nothing more can change the result.
        if self.more_beyond {
            return;
        }
        let mut text = String::new();
        self.decoder.decode(bytes, &mut text);
        self.take(&text);
    }

    pub fn finish(&mut self) {
        let mut text = String::new();
        self.decoder.finish(&mut text);
        self.take(&text);
    }

    fn take(&mut self, text: &str) {
        for c in text.chars() {
            // Universal newlines, as Python's text mode reads a pipe: \r\n and \r become \n.
            let c = match (c, std::mem::replace(&mut self.after_cr, c == '\r')) {
                ('\n', true) => continue,
                ('\r', _) => '\n',
                (c, _) => c,
            };
            if self.body_chars == 0 && is_py_space(c) {
                if self.leading_chars < self.limit {
                    self.leading.push(c);
                    self.leading_chars += 1;
                }
            } else if self.body_chars < self.limit {
                self.body.push(c);
                self.body_chars += 1;
            } else if !is_py_space(c) {
                self.more_beyond = true;
                return;
            }
        }
    }
}

/// `(stdout + stderr).strip()[:limit]`, computed from the two kept heads.
pub fn combine(stdout: &StreamHead, stderr: &StreamHead, limit: usize) -> String {
    // stdout's leading whitespace always goes to strip(); stderr's goes only if stdout is blank.
    let pieces: &[&str] = if stdout.body_chars > 0 {
        &[&stdout.body, &stderr.leading, &stderr.body]
    } else {
        &[&stderr.body]
    };
    let mut head = String::new();
    let mut count = 0;
    let mut more_beyond = stdout.more_beyond || stderr.more_beyond;
    'outer: for piece in pieces {
        for c in piece.chars() {
            if count < limit {
                head.push(c);
                count += 1;
            } else if !is_py_space(c) {
                more_beyond = true;
                break 'outer;
            }
        }
    }
    // Without anything visible past the cut, strip() would have removed the trailing blanks.
    if more_beyond {
        head
    } else {
        py_rstrip(&head).to_string()
    }
}

/// The task's full output, written as it arrives, up to a byte cap.
pub struct LogFile {
    /// `None` keeps no log (foreground commands).
    path: Option<PathBuf>,
    file: Option<File>,
    cap: u64,
    /// Bytes of output stored (the cut marker is not counted).
    pub written: u64,
    pub cut: bool,
    pub error: Option<String>,
}

impl LogFile {
    pub fn new(path: PathBuf, cap: u64) -> Self {
        LogFile { path: Some(path), file: None, cap, written: 0, cut: false, error: None }
    }

    /// A log that stores nothing.
    pub fn none() -> Self {
        LogFile { path: None, file: None, cap: 0, written: 0, cut: false, error: None }
    }

    /// The file's path, once it exists (it is created at the first byte of output).
    pub fn created_path(&self) -> Option<&Path> {
        self.path.as_deref().filter(|_| self.file.is_some() || self.written > 0)
    }

    // Writes are small and go to the page cache, so plain blocking writes are fine here.
    pub fn write(&mut self, bytes: &[u8]) {
        let Some(path) = &self.path else { return };
        if self.cut || self.error.is_some() || bytes.is_empty() {
            return;
        }
        if self.file.is_none() {
            match File::create(path) {
                Ok(f) => self.file = Some(f),
                Err(e) => {
                    self.error = Some(format!("cannot create {}: {e}", path.display()));
                    return;
                }
            }
        }
        let room = self.cap - self.written;
        let take = (bytes.len() as u64).min(room) as usize;
        let file = self.file.as_mut().expect("file opened above");
        let mut result = file.write_all(&bytes[..take]);
        self.written += take as u64;
        if take < bytes.len() {
            self.cut = true;
            let marker = format!(
                "\n[bgagent: log cut at {} bytes; the rest of the output was not stored]\n",
                self.cap
            );
            result = result.and_then(|()| file.write_all(marker.as_bytes()));
        }
        if let Err(e) = result {
            self.error = Some(format!("cannot write {}: {e}", path.display()));
        }
    }

    /// Closes the file; its path stays readable through [`LogFile::created_path`].
    pub fn close(&mut self) {
        self.file = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Python's text-mode reading of one stream: lossy UTF-8, universal newlines.
    fn text_mode(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).replace("\r\n", "\n").replace('\r', "\n")
    }

    fn python_result(stdout: &[u8], stderr: &[u8], limit: usize) -> String {
        let all = text_mode(stdout) + &text_mode(stderr);
        crate::text::prefix(crate::text::py_strip(&all), limit).to_string()
    }

    fn kept_result(stdout: &[u8], stderr: &[u8], limit: usize, chunk: usize) -> String {
        let mut out = StreamHead::new(limit);
        let mut err = StreamHead::new(limit);
        for c in stdout.chunks(chunk.max(1)) {
            out.push(c);
        }
        for c in stderr.chunks(chunk.max(1)) {
            err.push(c);
        }
        out.finish();
        err.finish();
        combine(&out, &err, limit)
    }

    #[test]
    fn combine_matches_the_python_formula() {
        let samples: &[&[u8]] = &[
            b"",
            b"   ",
            b"\n\nhello  \n",
            b"  a b c d e f g   ",
            b"abcdefghij",
            b"abcde     ",
            b"abcde     x",
            "héllo wörld ".as_bytes(),
            b"\xff\xfe bad \xc3",
            b"\xe6\x97\xa5\xe6\x9c\xac",
            b"\x1c\x1dsep\x1e",
            b"a\r\nb\rc\r",
            b"\r\n\r\r\nx\r",
        ];
        for out in samples {
            for err in samples {
                for limit in [0, 1, 3, 5, 7, 12, 100] {
                    for chunk in [1, 2, 3, 64] {
                        assert_eq!(
                            kept_result(out, err, limit, chunk),
                            python_result(out, err, limit),
                            "stdout={out:?} stderr={err:?} limit={limit} chunk={chunk}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn decoder_splits_characters_across_chunks() {
        let text = "日本語 ✓";
        let mut d = Utf8Decoder::default();
        let mut out = String::new();
        for b in text.as_bytes() {
            d.decode(&[*b], &mut out);
        }
        d.finish(&mut out);
        assert_eq!(out, text);
    }

    #[test]
    fn log_is_capped_with_a_marker() {
        let dir = std::env::temp_dir().join(format!("bgagent-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut log = LogFile::new(dir.join("t.log"), 10);
        log.write(b"12345678");
        log.write(b"abcdef");
        log.close();
        let text = std::fs::read_to_string(dir.join("t.log")).unwrap();
        assert!(text.starts_with("12345678ab\n[bgagent: log cut at 10 bytes"));
        assert_eq!(log.written, 10);
        assert!(log.cut);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
