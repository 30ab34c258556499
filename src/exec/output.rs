//! Reading a run's log while it runs: [`OutputLog`] is the reading side of the log an
//! executor writes, handed to the run's [`EventSink`](super::EventSink) before `Started`.
//!
//! Offsets count the bytes of the output as stored (redacted, both streams in the order they
//! were read), from 0. The log keeps only the newest bytes (the local executor's `log_limit`):
//! a reader whose offset fell behind is told how many bytes it missed. The caller holds its
//! offset, so any number of readers follow the same log without taking output from each other.
//! A read gives whole UTF-8 characters only: the start of a character whose end has not been
//! written yet waits for the next read, and becomes U+FFFD only once the run has ended.
//! [`OutputStats`], what the log amounted to, is here too: the reader gives it while the run
//! goes on.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What a run's output amounted to: byte counts, and where the full text went (a file, or
/// memory). The executor fills the `log_*` fields; whoever reads the output (a task's
/// capture) counts the bytes of each stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutputStats {
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    /// Bytes of output stored, after redaction (`[redacted]` counted): the offset the log
    /// reached, older bytes it no longer keeps included.
    pub log_bytes: u64,
    /// The log no longer keeps its oldest bytes (it keeps the newest).
    pub log_cut: bool,
    /// How many of its oldest bytes the log no longer keeps.
    pub log_dropped: u64,
    /// The log file (its newest part; the part before it is `{path}.1`), if one was created.
    #[serde(serialize_with = "lossy_path")]
    pub log_path: Option<PathBuf>,
    /// The log itself when it stayed in memory (see
    /// [`TaskSpec::hold_output`](super::TaskSpec::hold_output)); `None` when it is in the file
    /// or empty. Shared with the run's [`OutputLog`].
    #[serde(skip)]
    pub log_held: Option<Arc<[u8]>>,
    /// A problem with the log (the command itself still ran).
    pub log_error: Option<String>,
}

/// A path as text, whatever its bytes (one that is not UTF-8 gets U+FFFD).
fn lossy_path<S: serde::Serializer>(path: &Option<PathBuf>, to: S) -> Result<S::Ok, S::Error> {
    match path {
        Some(p) => to.serialize_some(&p.to_string_lossy()),
        None => to.serialize_none(),
    }
}

/// What one read gave.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chunk {
    /// Whole characters from the stored bytes read (an invalid byte is U+FFFD).
    pub text: String,
    /// Where the next read starts.
    pub next: u64,
    /// Bytes between the offset read from and `text` that the log no longer keeps (including
    /// the rest of a character cut in two where the log dropped its older part).
    pub dropped_before: u64,
    /// The run has ended and nothing follows `next`: the last read.
    pub ended: bool,
}

/// The reading side of a run's log. Clones share it.
#[derive(Clone)]
pub struct OutputLog {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for OutputLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("OutputLog")
            .field("end", &state.end)
            .field("kept_from", &state.kept_from)
            .field("ended", &state.ended)
            .finish_non_exhaustive()
    }
}

struct Shared {
    state: Mutex<State>,
    /// Blocking readers wait here for more output or the end.
    changed: Condvar,
    /// Async readers wait here.
    notify: tokio::sync::Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One file of the log: the bytes `[start, start + len)` of the output.
pub(crate) struct Segment {
    start: u64,
    len: u64,
    path: PathBuf,
    /// Open while the run writes: it reads what was renamed or removed meanwhile. Closed at
    /// the end (a finished task holds no descriptor); reads open `path` then.
    file: Option<Arc<File>>,
}

#[derive(Default)]
struct State {
    /// Bytes stored so far: the offset the next byte gets.
    end: u64,
    /// `end` less the start of a character not yet complete: what a read may give.
    complete: u64,
    /// The last bytes stored (up to 3), to tell whether they start a character.
    tail: Vec<u8>,
    /// The first offset still kept.
    kept_from: u64,
    /// The output while it is only in memory: the bytes `[0, held.len())`, no segment.
    held: Vec<u8>,
    /// What memory kept once the run ended (shared with its `OutputStats`).
    held_at_end: Option<Arc<[u8]>>,
    /// Oldest first; at most two.
    segments: Vec<Segment>,
    /// The newest segment's path, once there is a file.
    path: Option<PathBuf>,
    error: Option<String>,
    ended: bool,
}

impl State {
    /// Counts `bytes` as stored after what was.
    fn grow(&mut self, bytes: &[u8]) {
        self.end += bytes.len() as u64;
        let keep = bytes.len().min(3);
        self.tail.extend_from_slice(&bytes[bytes.len() - keep..]);
        let extra = self.tail.len().saturating_sub(3);
        self.tail.drain(..extra);
        self.complete = self.end - incomplete_tail(&self.tail) as u64;
    }

    /// The newest segment was renamed to `older`, replacing (and dropping the bytes of) the
    /// one before it.
    fn retire_newest(&mut self, older: &Path) {
        if self.segments.len() > 1 {
            self.segments.remove(0);
        }
        if let Some(previous) = self.segments.last_mut() {
            previous.path = older.into();
            self.kept_from = previous.start;
        }
    }

    fn held(&self) -> &[u8] {
        self.held_at_end.as_deref().unwrap_or(&self.held)
    }
}

/// How many of the last bytes of `tail` are the start of a character still to be completed.
fn incomplete_tail(tail: &[u8]) -> usize {
    for k in 1..=tail.len() {
        let start = tail[tail.len() - k];
        if start & 0xC0 != 0x80 {
            // Not a continuation byte: a character starts here, complete or not.
            return match std::str::from_utf8(&tail[tail.len() - k..]) {
                Err(e) if e.valid_up_to() == 0 && e.error_len().is_none() => k,
                _ => 0,
            };
        }
    }
    0
}

impl OutputLog {
    pub(crate) fn new() -> Self {
        OutputLog {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                changed: Condvar::new(),
                notify: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Up to `max_bytes` stored bytes from offset `after` on, as whole characters (one
    /// character is given whole even when it is longer than `max_bytes`). An offset past
    /// what was stored gives nothing and the same offset back.
    pub fn read(&self, after: u64, max_bytes: usize) -> Chunk {
        let state = self.shared.lock();
        let start = after.max(state.kept_from);
        let mut dropped = start - after;
        if start >= state.end || max_bytes == 0 {
            let ended = state.ended && start >= state.end;
            return Chunk { text: String::new(), next: start, dropped_before: dropped, ended };
        }
        // Room for one whole character however small `max_bytes` is.
        let want = (state.end - start).min(max_bytes.max(4) as u64) as usize;
        let (end, ended) = (state.end, state.ended);
        let mut bytes = vec![0; want];
        let got = if state.segments.is_empty() {
            let from = start as usize;
            bytes.copy_from_slice(&state.held()[from..from + want]);
            want
        } else {
            let pieces = pieces(&state.segments, start, want);
            drop(state);
            read_pieces(&pieces, &mut bytes)
        };
        bytes.truncate(got);
        // The log dropped its older part in the middle of a character: the rest of it goes
        // too.
        let mut skip = 0;
        if dropped > 0 {
            skip = bytes.iter().take(3).take_while(|b| *b & 0xC0 == 0x80).count();
            dropped += skip as u64;
        }
        // A file that went away (removed after the run) lost what it held: what came before
        // is all there is, and a read that finds nothing there skips it.
        let lost = want - got;
        let last = lost > 0 || (ended && start + want as u64 == end);
        let (text, used) = decode(&bytes[skip..], max_bytes, last);
        let mut next = start + (skip + used) as u64;
        if got == 0 {
            next += lost as u64;
            dropped += lost as u64;
        }
        Chunk { text, next, dropped_before: dropped, ended: ended && next == end }
    }

    /// Waits up to `timeout` until a read from `after` would give text, or the run has ended;
    /// false if the time ran out first.
    pub fn wait(&self, after: u64, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut state = self.shared.lock();
        loop {
            if ready(&state, after) {
                return true;
            }
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(86_400),
            };
            if left.is_zero() {
                return false;
            }
            state =
                self.shared.changed.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Resolves once a read from `after` would give text, or the run has ended (put a
    /// timeout around it as needed).
    pub async fn changed(&self, after: u64) {
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so a write between the two still wakes us.
            notified.as_mut().enable();
            if ready(&self.shared.lock(), after) {
                return;
            }
            notified.await;
        }
    }

    /// The log so far: bytes stored, bytes dropped, its file once there is one, a problem
    /// writing it. While the run goes on `log_held` is `None` (read the text instead).
    pub fn stats(&self) -> OutputStats {
        let state = self.shared.lock();
        OutputStats {
            log_bytes: state.end,
            log_dropped: state.kept_from,
            log_cut: state.kept_from > 0,
            log_path: state.path.clone(),
            log_held: state.held_at_end.clone(),
            log_error: state.error.clone(),
            ..OutputStats::default()
        }
    }

    /// Reads `[from, to)` as text (fewer bytes if the log moved on meanwhile).
    pub fn read_span(&self, from: u64, to: u64) -> String {
        let mut text = String::new();
        let mut at = from;
        while at < to {
            let chunk = self.read(at, (to - at) as usize);
            if chunk.next <= at {
                break;
            }
            text.push_str(&chunk.text);
            at = chunk.next;
        }
        text
    }

    /// The last `lines` lines (a last line without its newline counts), and the
    /// offset where they end. Reads backwards in growing windows, so a long log costs only its
    /// end; a window that starts within a line leaves that partial line out.
    pub fn last_lines(&self, lines: usize) -> (String, u64) {
        let stats = self.stats();
        let (end, kept) = (stats.log_bytes, stats.log_dropped);
        if lines == 0 {
            return (String::new(), end);
        }
        let mut window: u64 = 8192;
        loop {
            let start = end.saturating_sub(window).max(kept);
            let text = self.read_span(start, end);
            let body = text.strip_suffix('\n').unwrap_or(&text);
            let whole = start == kept;
            // Where each of the last lines starts: after the newline before it.
            let starts: Vec<usize> = body.match_indices('\n').map(|(i, _)| i + 1).collect();
            if starts.len() >= lines {
                return (text[starts[starts.len() - lines]..].to_string(), end);
            }
            if whole || window >= 1 << 24 {
                // All there is, or a window of 16 MiB without enough lines: what it holds, from
                // the first whole line (unless the log's first kept byte starts one).
                let from = if whole { 0 } else { starts.first().copied().unwrap_or(0) };
                return (text[from..].to_string(), end);
            }
            window *= 8;
        }
    }

    /// Whether the run has ended (nothing more will be stored).
    pub fn has_ended(&self) -> bool {
        self.shared.lock().ended
    }

    // ---- The writer's side ----

    fn update(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.shared.lock());
        self.shared.changed.notify_all();
        self.shared.notify.notify_waiters();
    }

    /// Stores `bytes` in memory.
    pub(crate) fn hold(&self, bytes: &[u8]) {
        self.update(|state| {
            state.held.extend_from_slice(bytes);
            state.grow(bytes);
        });
    }

    /// A copy of what memory holds, to move to a file.
    pub(crate) fn held_copy(&self) -> Vec<u8> {
        self.shared.lock().held.clone()
    }

    /// The held output is now the file's first segment: `written` of its bytes reached it
    /// (what did not is not stored).
    pub(crate) fn spilled(&self, path: &Path, file: Arc<File>, written: u64) {
        self.update(|state| {
            let held = std::mem::take(&mut state.held);
            (state.end, state.tail) = (0, Vec::new());
            state.grow(&held[..written as usize]);
            state.segments =
                vec![Segment { start: 0, len: written, path: path.into(), file: Some(file) }];
            state.path = Some(path.into());
        });
    }

    /// `bytes` reached the newest segment.
    pub(crate) fn appended(&self, bytes: &[u8]) {
        self.update(|state| {
            if let Some(newest) = state.segments.last_mut() {
                newest.len += bytes.len() as u64;
            }
            state.grow(bytes);
        });
    }

    /// The newest segment was renamed to `older` (replacing the one before, whose bytes are
    /// dropped), and a new empty one started at `path`.
    pub(crate) fn rotated(&self, older: &Path, path: &Path, file: Arc<File>) {
        self.update(|state| {
            state.retire_newest(older);
            let segment = Segment { start: state.end, len: 0, path: path.into(), file: Some(file) };
            state.segments.push(segment);
        });
    }

    /// The newest segment was renamed to `older`, and no new one could be made.
    pub(crate) fn renamed(&self, older: &Path) {
        self.update(|state| {
            state.retire_newest(older);
            state.path = Some(older.into());
        });
    }

    pub(crate) fn failed(&self, error: String) {
        self.update(|state| state.error = Some(error));
    }

    /// The run has ended: what memory held is kept as it is, the files are closed (reads
    /// open them by name), and every waiter wakes.
    pub(crate) fn end(&self) -> OutputStats {
        self.update(|state| {
            state.ended = true;
            state.complete = state.end;
            if !state.held.is_empty() {
                state.held_at_end = Some(Arc::from(std::mem::take(&mut state.held)));
            }
            for segment in &mut state.segments {
                segment.file = None;
            }
        });
        self.stats()
    }
}

/// Whether a read from `after` would give something now.
fn ready(state: &State, after: u64) -> bool {
    state.ended || state.complete > after.max(state.kept_from) || after < state.kept_from
}

/// Where the bytes `[start, start + len)` are: (segment file or path, offset in it, length).
type Piece = (Option<Arc<File>>, PathBuf, u64, usize);

fn pieces(segments: &[Segment], start: u64, len: usize) -> Vec<Piece> {
    let (mut at, end) = (start, start + len as u64);
    let mut pieces = Vec::new();
    for segment in segments {
        let seg_end = segment.start + segment.len;
        if at >= end || at >= seg_end || at < segment.start {
            continue;
        }
        let take = (end.min(seg_end) - at) as usize;
        pieces.push((segment.file.clone(), segment.path.clone(), at - segment.start, take));
        at += take as u64;
    }
    pieces
}

/// Reads the pieces into `into`, in order; how many bytes came before the first one that
/// failed or fell short.
fn read_pieces(pieces: &[Piece], into: &mut [u8]) -> usize {
    let mut done = 0;
    for (file, path, offset, len) in pieces {
        let opened;
        let file = match file {
            Some(file) => &**file,
            None => match File::open(path) {
                Ok(f) => {
                    opened = f;
                    &opened
                }
                Err(_) => return done,
            },
        };
        let got = read_at(file, *offset, &mut into[done..done + len]);
        done += got;
        if got < *len {
            return done;
        }
    }
    done
}

fn read_at(file: &File, offset: u64, into: &mut [u8]) -> usize {
    let mut done = 0;
    while done < into.len() {
        match file.read_at(&mut into[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    done
}

/// Decodes whole characters from `bytes`, using at most `limit` of them (or one character,
/// whatever its length); an invalid byte is U+FFFD. An incomplete character at the end waits,
/// unless `last` (nothing more will come): then it is U+FFFD. The text and the bytes used.
fn decode(bytes: &[u8], limit: usize, last: bool) -> (String, usize) {
    let mut text = String::new();
    let mut used = 0;
    while used < bytes.len() {
        let (valid, bad) = match std::str::from_utf8(&bytes[used..]) {
            Ok(s) => (s, None),
            Err(e) => {
                let valid = &bytes[used..used + e.valid_up_to()];
                (std::str::from_utf8(valid).unwrap_or_default(), Some(e.error_len()))
            }
        };
        // Whole characters up to the limit.
        let room = limit.saturating_sub(used);
        if valid.len() > room {
            let mut cut = room;
            while !valid.is_char_boundary(cut) {
                cut -= 1;
            }
            if cut == 0 && used == 0 {
                cut = valid.chars().next().map_or(0, char::len_utf8);
            }
            text.push_str(&valid[..cut]);
            return (text, used + cut);
        }
        text.push_str(valid);
        used += valid.len();
        match bad {
            None => break,
            Some(Some(n)) => {
                if used + n > limit && used > 0 {
                    break;
                }
                text.push(char::REPLACEMENT_CHARACTER);
                used += n;
            }
            Some(None) => {
                if last {
                    text.push(char::REPLACEMENT_CHARACTER);
                    used = bytes.len();
                }
                break;
            }
        }
    }
    (text, used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incomplete_tail_is_told_apart_from_invalid_bytes() {
        assert_eq!(incomplete_tail(b""), 0);
        assert_eq!(incomplete_tail(b"abc"), 0);
        assert_eq!(incomplete_tail("é".as_bytes()), 0);
        assert_eq!(incomplete_tail(&"é".as_bytes()[..1]), 1);
        assert_eq!(incomplete_tail(&"日".as_bytes()[..2]), 2);
        assert_eq!(incomplete_tail(&"𝄞".as_bytes()[..3]), 3);
        assert_eq!(incomplete_tail(b"\xff"), 0);
        assert_eq!(incomplete_tail(b"\xe6\x41"), 0);
    }

    #[test]
    fn decoding_keeps_characters_whole_within_the_limit() {
        let text = "a日b";
        assert_eq!(decode(text.as_bytes(), 2, false), ("a".into(), 1));
        assert_eq!(decode(text.as_bytes(), 4, false), ("a日".into(), 4));
        assert_eq!(decode(&text.as_bytes()[1..], 1, false), ("日".into(), 3), "one whole char");
        assert_eq!(decode(&text.as_bytes()[..3], 10, false), ("a".into(), 1));
        assert_eq!(decode(&text.as_bytes()[..3], 10, true), ("a\u{FFFD}".into(), 3));
        assert_eq!(decode(b"x\xffy", 10, false), ("x\u{FFFD}y".into(), 3));
        assert_eq!(decode(b"", 10, true), (String::new(), 0));
    }

    #[test]
    fn a_held_log_is_read_by_offset_and_waits_for_whole_characters() {
        let log = OutputLog::new();
        let bytes = "ab日".as_bytes();
        log.hold(&bytes[..3]);
        assert!(!log.wait(2, Duration::ZERO), "only the start of a character");
        let chunk = log.read(0, 100);
        assert_eq!((chunk.text.as_str(), chunk.next, chunk.ended), ("ab", 2, false));
        log.hold(&bytes[3..]);
        assert!(log.wait(2, Duration::ZERO));
        assert_eq!(log.read(2, 100).text, "日");
        log.hold(b"\xe6");
        let stats = log.end();
        assert_eq!(
            (stats.log_bytes, stats.log_held.as_deref()),
            (6, Some(&b"ab\xe6\x97\xa5\xe6"[..]))
        );
        let last = log.read(5, 100);
        assert_eq!((last.text.as_str(), last.next, last.ended), ("\u{FFFD}", 6, true));
        assert_eq!(log.read(6, 100), Chunk { next: 6, ended: true, ..Chunk::default() });
    }
}
