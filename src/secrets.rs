//! The API credentials: which variables hold them, and the one rule that keeps their values
//! out of what bgagent writes (task results and notifications, tool outputs, log files, the
//! trace).
//!
//! The rule, in [`Redactor`]: every occurrence of a secret value (8 characters or more, so a
//! short test value cannot blank out ordinary words) becomes `[redacted]`. Text is redacted
//! before it is cut, never after, and where text is cut, a tail of what is kept that could be
//! the start of a secret goes too, so no start of a secret survives a cut. Streams (log files,
//! a task's output as it arrives) go through [`RedactStream`], which holds back a tail that
//! could still grow into a secret until the next bytes (or the end) decide it.

use crate::text::prefix;
use serde_json::Value;
use std::borrow::Cow;

/// The variables that hold the API credentials bgagent itself uses. In production, tasks do
/// not get them and their values are redacted from what bgagent writes.
pub const SECRET_VARS: [&str; 2] = ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"];

/// What a secret becomes.
pub const MARKER: &str = "[redacted]";

/// Values shorter than this (in characters) are not secrets to redact: a test key such as
/// `k` would otherwise blank out every `k` in every output.
pub const SHORTEST: usize = 8;

/// The shortest tail of a cut text that counts as the start of a secret. Text is redacted
/// before it is cut, so a tail that matches is nearly always ordinary text (a result that ends
/// in `s`, as keys start); three characters of a key tell nothing (`sk-` is every key's start).
pub const SHORTEST_TAIL: usize = 4;

/// Knows the secret values and removes them from text.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    /// Longest first, so that where one secret starts another, the longer one is replaced.
    secrets: Vec<Box<[u8]>>,
    /// `first[b]`: some secret starts with byte `b` (most bytes start nothing: a quick skip).
    first: Option<Box<[bool; 256]>>,
}

impl Redactor {
    /// The current values of [`SECRET_VARS`]. Read at each use, so a key set later (by the
    /// CLI's `.env`, say) is still covered.
    pub fn from_env() -> Self {
        Redactor::new(SECRET_VARS.iter().filter_map(|name| std::env::var(name).ok()))
    }

    /// [`Redactor::from_env`] when `hide` is set, else one that changes nothing (the lesson,
    /// and a caller that chose to pass the key on).
    pub fn when(hide: bool) -> Self {
        if hide {
            Redactor::from_env()
        } else {
            Redactor::default()
        }
    }

    /// Redacts `values` (those of [`SHORTEST`] characters or more).
    pub fn new<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> Self {
        let mut secrets: Vec<Box<[u8]>> = values
            .into_iter()
            .filter(|v| v.as_ref().chars().count() >= SHORTEST)
            .map(|v| v.as_ref().as_bytes().into())
            .collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        let first = (!secrets.is_empty()).then(|| {
            let mut first = Box::new([false; 256]);
            for s in &secrets {
                first[s[0] as usize] = true;
            }
            first
        });
        Redactor { secrets, first }
    }

    /// True when there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every secret replaced by [`MARKER`].
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if self.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = Vec::new();
        let (end, replaced) = self.scan(text.as_bytes(), true, &mut out);
        debug_assert_eq!(end, text.len());
        if !replaced {
            return Cow::Borrowed(text);
        }
        // A secret is whole UTF-8 and starts on a character boundary of valid text (its first
        // byte is never a continuation byte), so replacing it keeps the text valid.
        Cow::Owned(
            String::from_utf8(out)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        )
    }

    /// `text[:limit]` (in characters) of the redacted text, without the start of a secret at
    /// the cut. Use it for every cut of text that may hold a secret.
    pub fn cut<'a>(&self, text: &'a str, limit: usize) -> Cow<'a, str> {
        let redacted = self.redact(text);
        let kept = prefix(&redacted, limit);
        if kept.len() == redacted.len() {
            return redacted;
        }
        Cow::Owned(self.end_of_cut(kept, limit).into_owned())
    }

    /// `kept`, the first characters (at most `limit`) of a longer text, without a tail that
    /// could be the start of a secret: that tail becomes [`MARKER`] (when it fits in `limit`,
    /// taking characters before it if it must), so the result still has at most `limit`.
    pub fn end_of_cut<'a>(&self, kept: &'a str, limit: usize) -> Cow<'a, str> {
        let Some(start) = self.secret_start_at_end(kept) else {
            return Cow::Borrowed(kept);
        };
        let before = &kept[..start];
        let marker_chars = MARKER.chars().count();
        if limit < marker_chars {
            return Cow::Borrowed(before);
        }
        let room = limit - marker_chars;
        Cow::Owned(format!("{}{MARKER}", prefix(before, room)))
    }

    /// Where the longest tail of `text` that is a start of a secret, [`SHORTEST_TAIL`]
    /// characters or more, begins (a whole secret included, though a redacted text has none).
    fn secret_start_at_end(&self, text: &str) -> Option<usize> {
        let bytes = text.as_bytes();
        let mut best: Option<usize> = None;
        for s in &self.secrets {
            // Longest candidate first: the first match is this secret's longest.
            let longest = s.len().min(bytes.len());
            for n in (SHORTEST_TAIL..=longest).rev() {
                let start = bytes.len() - n;
                if bytes[start..] == s[..n] {
                    best = Some(best.map_or(start, |b| b.min(start)));
                    break;
                }
            }
        }
        // A start that matches in bytes begins with the secret's first byte, never a
        // continuation byte, so it is a character boundary of `text`.
        best.filter(|&b| text.is_char_boundary(b))
    }

    /// Redacts every string in `value` (object keys too), so a secret cannot reach the JSON
    /// written from it in any escaping.
    pub fn redact_json(&self, value: &mut Value) {
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(s) => {
                if let Cow::Owned(r) = self.redact(s) {
                    *s = r;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            Value::Object(map) => {
                let changed = map.keys().any(|k| matches!(self.redact(k), Cow::Owned(_)));
                if changed {
                    let old = std::mem::take(map);
                    for (k, v) in old {
                        map.insert(self.redact(&k).into_owned(), v);
                    }
                }
                map.values_mut().for_each(|v| self.redact_json(v));
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// A streaming redactor for one stream of bytes.
    pub fn stream(&self) -> RedactStream {
        RedactStream { redactor: self.clone(), held: Vec::new() }
    }

    /// Appends to `out` what `buf` becomes with its secrets replaced, up to where an
    /// undecided tail starts (a tail that could still grow into a secret); with `last`, the
    /// whole of `buf` is decided. Returns where the undecided tail starts, and whether a
    /// secret was replaced.
    fn scan(&self, buf: &[u8], last: bool, out: &mut Vec<u8>) -> (usize, bool) {
        let Some(first) = &self.first else {
            out.extend_from_slice(buf);
            return (buf.len(), false);
        };
        let mut emitted = 0; // buf[..emitted] is in `out`
        let mut replaced = false;
        let mut i = 0;
        while i < buf.len() {
            if !first[buf[i] as usize] {
                i += 1;
                continue;
            }
            let rest = &buf[i..];
            // Checked before a whole match: a shorter secret may match here while a longer
            // one, which would take precedence, is still undecided.
            if !last && self.secrets.iter().any(|s| s.len() > rest.len() && s.starts_with(rest)) {
                break;
            }
            if let Some(s) = self.secrets.iter().find(|s| rest.starts_with(s)) {
                out.extend_from_slice(&buf[emitted..i]);
                out.extend_from_slice(MARKER.as_bytes());
                i += s.len();
                emitted = i;
                replaced = true;
            } else {
                i += 1;
            }
        }
        out.extend_from_slice(&buf[emitted..i]);
        (i, replaced)
    }
}

/// Redacts a stream of bytes that arrives in chunks: a secret split across chunks is
/// replaced all the same. A tail that could be the start of a secret is held back until the
/// next chunk decides it, or [`RedactStream::finish`] (the stream ended: it was not one).
#[derive(Debug, Default)]
pub struct RedactStream {
    redactor: Redactor,
    held: Vec<u8>,
}

impl RedactStream {
    /// Appends to `out` what `bytes` (after what was held back) is decided to be.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if self.held.is_empty() {
            let (end, _) = self.redactor.scan(bytes, false, out);
            self.held.extend_from_slice(&bytes[end..]);
        } else {
            self.held.extend_from_slice(bytes);
            let buf = std::mem::take(&mut self.held);
            let (end, _) = self.redactor.scan(&buf, false, out);
            self.held = buf[end..].to_vec();
        }
    }

    /// The stream ended: appends to `out` what was held back, redacted.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let held = std::mem::take(&mut self.held);
        self.redactor.scan(&held, true, out);
    }

    /// Bytes held back, undecided.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-ant-api03-Zq9\"x\\y.*+?(a|b)$^-ünï-END";

    fn key() -> Redactor {
        Redactor::new([KEY])
    }

    /// Feeds `input` in pieces cut at `cuts` (byte offsets) and returns the whole output.
    fn streamed(r: &Redactor, input: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut s = r.stream();
        let mut out = Vec::new();
        let mut from = 0;
        for &c in cuts {
            s.push(&input[from..c], &mut out);
            from = c;
        }
        s.push(&input[from..], &mut out);
        s.finish(&mut out);
        out
    }

    #[test]
    fn every_occurrence_becomes_the_marker_whatever_characters_the_key_holds() {
        let text = format!("a{KEY}b {KEY}{KEY} é{KEY}");
        assert_eq!(key().redact(&text), "a[redacted]b [redacted][redacted] é[redacted]");
        assert!(matches!(key().redact("nothing here"), Cow::Borrowed(_)));
        // Regex-looking characters are only characters: no pattern matching.
        assert_eq!(key().redact("sk-ant-api03-Zq9\"x\\y.aaaa"), "sk-ant-api03-Zq9\"x\\y.aaaa");
    }

    #[test]
    fn short_values_are_not_secrets() {
        let r = Redactor::new(["k", "1234567", "ééééééé"]);
        assert!(r.is_empty());
        assert_eq!(r.redact("k 1234567"), "k 1234567");
        let r = Redactor::new(["12345678"]);
        assert_eq!(r.redact("x12345678y"), "x[redacted]y");
    }

    #[test]
    fn the_longer_of_two_overlapping_secrets_wins() {
        let r = Redactor::new(["abcdefgh", "abcdefghijkl"]);
        assert_eq!(r.redact("abcdefghijkl abcdefghij"), "[redacted] [redacted]ij");
        for at in 0..=14 {
            let out = streamed(&r, b"abcdefghijkl x", &[at]);
            assert_eq!(out, b"[redacted] x", "split at {at}");
        }
    }

    #[test]
    fn a_key_split_across_chunks_at_every_position_is_replaced() {
        let input = format!("€ before {KEY} mid {KEY}");
        let want = "€ before [redacted] mid [redacted]";
        let bytes = input.as_bytes();
        for a in 0..=bytes.len() {
            assert_eq!(streamed(&key(), bytes, &[a]), want.as_bytes(), "split at {a}");
        }
        // Byte by byte.
        let every: Vec<usize> = (1..bytes.len()).collect();
        assert_eq!(streamed(&key(), bytes, &every), want.as_bytes());
    }

    #[test]
    fn a_held_tail_is_released_once_it_cannot_be_the_key() {
        let r = key();
        let mut s = r.stream();
        let mut out = Vec::new();
        s.push(b"text sk-ant-", &mut out);
        assert_eq!(out, b"text ");
        assert_eq!(s.held(), "sk-ant-".len());
        s.push(b"other", &mut out);
        assert_eq!(out, b"text sk-ant-other");
        assert_eq!(s.held(), 0);
        // At the end, an undecided tail was not the key: it comes out as it was.
        s.push(b" sk-ant-api", &mut out);
        s.finish(&mut out);
        assert_eq!(out, b"text sk-ant-other sk-ant-api");
    }

    #[test]
    fn a_tail_that_starts_the_key_again_is_held_after_a_false_start() {
        // "sk-sk-ant-...": the first "sk-" is not the key, the second starts it.
        let input = format!("sk-{KEY}!");
        for a in 0..=input.len() {
            assert_eq!(streamed(&key(), input.as_bytes(), &[a]), b"sk-[redacted]!", "{a}");
        }
    }

    #[test]
    fn invalid_utf8_around_the_key_is_left_alone() {
        let mut input = b"\xff\xe6".to_vec();
        input.extend_from_slice(KEY.as_bytes());
        input.extend_from_slice(b"\xc3");
        for a in 0..=input.len() {
            assert_eq!(streamed(&key(), &input, &[a]), b"\xff\xe6[redacted]\xc3", "{a}");
        }
    }

    #[test]
    fn a_key_straddling_the_cut_leaves_none_of_its_characters() {
        let text = format!("{}{KEY} and more", "x".repeat(95));
        for limit in 90..140 {
            let cut = key().cut(&text, limit);
            assert!(cut.chars().count() <= limit, "{limit}: {cut}");
            assert!(!cut.contains("sk-"), "{limit}: {cut}");
        }
        // Redacted first, so the marker counts, not the key's characters.
        assert_eq!(key().cut(&text, 105), format!("{}[redacted]", "x".repeat(95)));
        assert_eq!(key().cut(&text, 109), format!("{}[redacted] and", "x".repeat(95)));
    }

    #[test]
    fn a_kept_tail_that_starts_the_key_goes_at_a_cut() {
        // What follows the cut is not the key, but the kept tail could be its start.
        let text = format!("{}sk-ant-api03-Zq9 is not it", "y".repeat(20));
        let cut = key().cut(&text, 36);
        assert_eq!(cut, format!("{}[redacted]", "y".repeat(20)));
        // The marker fits in the limit by taking characters before it.
        let cut = key().cut(&text, 24);
        assert_eq!(cut, format!("{}[redacted]", "y".repeat(14)));
        assert_eq!(cut.chars().count(), 24);
        // Three characters of a key are every key's start: they stay.
        assert_eq!(key().cut(&text, 23), format!("{}sk-", "y".repeat(20)));
        assert_eq!(key().cut("a result that ends in s and more", 23), "a result that ends in s");
        // Too small a limit for the marker: the tail simply goes.
        assert_eq!(key().cut("ab sk-ant-x", 7), "ab ");
        // No cut, no change: the text really ended there.
        assert_eq!(key().cut("ends sk-ant", 100), "ends sk-ant");
        // Non-ASCII before the tail is kept whole.
        assert_eq!(key().cut("日本語sk-ant-XYZ", 7), "日本語");
        assert_eq!(key().cut("日本語日本語日本語日本語sk-ant-XYZ", 16), "日本語日本語[redacted]");
        assert_eq!(Redactor::default().cut("日本語", 2), "日本");
    }

    #[test]
    fn json_strings_and_keys_are_redacted_before_serialising() {
        let mut value = serde_json::json!({
            "text": format!("key={KEY}"),
            "list": [KEY, 1, null, {"deep": KEY}],
            (KEY): true,
        });
        key().redact_json(&mut value);
        let line = value.to_string();
        assert!(!line.contains("sk-ant"), "{line}");
        assert_eq!(value["text"], "key=[redacted]");
        assert_eq!(value["list"][3]["deep"], "[redacted]");
        assert_eq!(value["[redacted]"], true);
    }
}
