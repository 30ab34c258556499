//! Bounded output capture: what a task's result is made of.
//!
//! The lesson keeps `(stdout + stderr).strip()[:limit]`. Holding whole streams for that would let a
//! chatty command eat memory, so each stream keeps only what the formula can ever show: its
//! leading whitespace and its first `limit` characters after it (both capped), plus one bit
//! saying whether anything but whitespace came later. [`combine`] rebuilds the exact result.
//!
//! In production the API credentials are redacted before any of this: each stream goes
//! through a [`RedactStream`] first, so the result is cut from redacted text (a key that
//! straddles the cut leaves none of its characters) and the `[redacted]` marker, not the
//! key, counts towards the limit.

use super::record::OutputStats;
use crate::exec::{Ended, ExecEvent, Exit, Stream};
use crate::secrets::{RedactStream, Redactor};
use crate::text::{is_py_space, py_rstrip};

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
    /// Redacts the bytes before they are decoded and kept.
    redact: RedactStream,
    /// Bytes the redactor has decided, reused from chunk to chunk.
    decided: Vec<u8>,
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
    /// Total bytes read from the stream, as the command wrote them (before redaction).
    pub bytes: u64,
}

impl StreamHead {
    pub fn new(limit: usize, redactor: &Redactor) -> Self {
        StreamHead {
            limit,
            redact: redactor.stream(),
            decided: Vec::new(),
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
        self.decided.clear();
        self.redact.push(bytes, &mut self.decided);
        let mut text = String::new();
        self.decoder.decode(&self.decided, &mut text);
        self.take(&text);
    }

    pub fn finish(&mut self) {
        // What the redactor still held was not the start of a key after all.
        self.decided.clear();
        if !self.more_beyond {
            self.redact.finish(&mut self.decided);
        }
        let mut text = String::new();
        self.decoder.decode(&self.decided, &mut text);
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

/// `(stdout + stderr).strip()[:limit]`, computed from the two kept heads, and whether text
/// was cut off (something visible lies past the limit).
pub fn combine(stdout: &StreamHead, stderr: &StreamHead, limit: usize) -> (String, bool) {
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
        (head, true)
    } else {
        (py_rstrip(&head).to_string(), false)
    }
}

/// How a run ended, as its capture saw it; [`super::conclude`] decides the lesson's status
/// and result text from it.
#[derive(Debug)]
pub enum RunEnd {
    /// It ran. `text`: the lesson's `(stdout + stderr).strip()[:limit]`, redacted, for a run
    /// that ended by itself (empty for one that was stopped).
    Ran { ended: Ended, code: Option<i32>, text: String, output: OutputStats },
    /// It could not start (or its executor stopped reporting).
    Failed(String),
}

/// Turns a run's events into its output text and byte counts. The background manager and
/// the bash tool both use it.
pub struct Capture {
    out: StreamHead,
    err: StreamHead,
    limit: usize,
    redactor: Redactor,
}

impl Capture {
    /// `redactor` removes the API credentials from the result (one that knows none leaves
    /// the lesson's result exactly).
    pub fn new(limit: usize, redactor: Redactor) -> Self {
        let (out, err) = (StreamHead::new(limit, &redactor), StreamHead::new(limit, &redactor));
        Capture { out, err, limit, redactor }
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Takes one event of the run: `Some` once the run has ended.
    pub fn take(&mut self, event: ExecEvent<'_>) -> Option<RunEnd> {
        match event {
            ExecEvent::Started { .. } => None,
            ExecEvent::Output { stream, bytes } => {
                self.output(stream, bytes);
                None
            }
            ExecEvent::Exited(exit) => Some(self.finish(exit)),
            ExecEvent::Failed(message) => Some(RunEnd::Failed(message)),
        }
    }

    fn output(&mut self, stream: Stream, bytes: &[u8]) {
        match stream {
            Stream::Stdout => self.out.push(bytes),
            Stream::Stderr => self.err.push(bytes),
        }
    }

    /// Bytes seen so far on stdout and stderr.
    pub fn bytes(&self) -> (u64, u64) {
        (self.out.bytes, self.err.bytes)
    }

    fn finish(&mut self, exit: Exit) -> RunEnd {
        self.out.finish();
        self.err.finish();
        let text = if exit.ended == Ended::Exited {
            let (text, cut) = combine(&self.out, &self.err, self.limit);
            // Each stream came redacted; a key printed half to stdout, half to stderr
            // meets itself only here.
            let text = self.redactor.redact(&text);
            match cut {
                true => self.redactor.end_of_cut(&text, self.limit).into_owned(),
                false => text.into_owned(),
            }
        } else {
            String::new()
        };
        let output = OutputStats {
            stdout_bytes: self.out.bytes,
            stderr_bytes: self.err.bytes,
            ..exit.output
        };
        RunEnd::Ran { ended: exit.ended, code: exit.code, text, output }
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
        let mut out = StreamHead::new(limit, &Redactor::default());
        let mut err = StreamHead::new(limit, &Redactor::default());
        for c in stdout.chunks(chunk.max(1)) {
            out.push(c);
        }
        for c in stderr.chunks(chunk.max(1)) {
            err.push(c);
        }
        out.finish();
        err.finish();
        combine(&out, &err, limit).0
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

    const KEY: &str = "sk-ant-api03-cap\"ture\\key-ü";

    fn redacted_result(stdout: &[u8], stderr: &[u8], limit: usize, chunk: usize) -> String {
        let mut capture = Capture::new(limit, Redactor::new([KEY]));
        for c in stdout.chunks(chunk.max(1)) {
            capture.output(Stream::Stdout, c);
        }
        for c in stderr.chunks(chunk.max(1)) {
            capture.output(Stream::Stderr, c);
        }
        let exit = Exit { code: Some(0), ended: Ended::Exited, output: Default::default() };
        let end = capture.finish(exit);
        super::super::conclude(end, std::time::Duration::from_secs(1)).result
    }

    #[test]
    fn the_result_is_cut_from_redacted_output_whatever_the_chunks() {
        let outputs = [
            format!("{}{KEY} after", "x".repeat(40)),
            format!("  {KEY}{KEY}\n{}{KEY}", "é".repeat(30)),
            KEY.to_string(),
            format!("ab\r\n{KEY}\r"),
        ];
        for out in &outputs {
            for err in ["", "err text", KEY] {
                for limit in [0, 5, 9, 10, 11, 38, 41, 45, 50, 55, 200] {
                    let all = text_mode(out.as_bytes()) + &text_mode(err.as_bytes());
                    let want = Redactor::new([KEY]).cut(crate::text::py_strip(&all), limit);
                    let want = if want.is_empty() { "(no output)".into() } else { want };
                    for chunk in [1, 2, 3, 7, 64] {
                        let got = redacted_result(out.as_bytes(), err.as_bytes(), limit, chunk);
                        assert_eq!(got, want, "{out:?} {err:?} limit={limit} chunk={chunk}");
                        assert!(got.chars().count() <= limit.max(11), "{got}");
                        assert!(!got.contains("sk-ant"), "{got}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_key_split_between_stdout_and_stderr_is_redacted_too() {
        let (head, tail) = KEY.split_at(10);
        assert_eq!(redacted_result(head.as_bytes(), tail.as_bytes(), 100, 3), "[redacted]");
        // Cut inside it: the kept start of the key goes (no room for the marker here).
        assert_eq!(redacted_result(head.as_bytes(), tail.as_bytes(), 5, 3), "(no output)");
        let out = format!("{}{head}", "z".repeat(20));
        let got = redacted_result(out.as_bytes(), tail.as_bytes(), 25, 3);
        assert_eq!(got, format!("{}[redacted]", "z".repeat(15)));
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
}
