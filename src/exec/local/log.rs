//! A task's full output, written as it arrives; past a byte cap the oldest part goes.
//!
//! A short output stays in memory: the file is created only once the output passes what the
//! task keeps in memory (`hold`), or at the end when the run did not end by itself (its
//! result then shows a message, not the output). Most commands print little, and a file per
//! task cost a disk block each and, past thousands of tasks, a directory of files.
//!
//! The log keeps the newest output (a server that runs for days stays readable) in two
//! segments of half the cap each: `{id}.log`, the newest, and `{id}.log.1`, the one before.
//! When `{id}.log` is full it is renamed to `{id}.log.1`, which drops the older one, and a new
//! `{id}.log` starts: nothing is ever copied, and this works on any filesystem. The disk holds
//! at most the cap, and at least half of it once the output passed it.
//!
//! What is stored is readable while the run goes on, through the [`OutputLog`] the writer
//! updates: it reads memory and the segments' open files, so a rename never loses a reader's
//! bytes.
//!
//! The file is private to its user (0600): it holds everything the command printed. In
//! production the API credentials are redacted from it as from the task's result: each
//! stream goes through its own [`RedactStream`] (a key split across chunks is still found,
//! and output of the other stream in between cannot break it up), which holds back a tail
//! that could be the start of a key until the next chunk or the end decides it. What stays in
//! memory is redacted the same way.

use crate::exec::{OutputLog, OutputStats, Stream};
use crate::secrets::{RedactStream, Redactor};
use std::fs::{File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Arc;

pub struct LogFile {
    /// `None` keeps no log (foreground commands).
    path: Option<PathBuf>,
    /// Where the newest segment goes when the next one starts: `{path}.1`.
    older: PathBuf,
    /// The newest segment, once there is a file.
    file: Option<Arc<File>>,
    /// Bytes in the newest segment.
    segment_len: u64,
    /// Most bytes in one segment: half the cap.
    segment: u64,
    /// Bytes of output kept in memory before the file is created.
    hold: usize,
    /// Bytes memory holds now.
    held: usize,
    /// Nothing more is stored (a file could not be made or written).
    stopped: bool,
    /// What readers see; the counts and the error live there.
    out: OutputLog,
    stdout: RedactStream,
    stderr: RedactStream,
    /// Decided bytes, reused from chunk to chunk.
    decided: Vec<u8>,
}

impl LogFile {
    /// With `hide_secrets`, the API credentials' current values are redacted from the log.
    /// Up to `hold` bytes (and no more than a segment, half of `cap`) stay in memory until
    /// [`LogFile::close`].
    pub fn new(path: Option<PathBuf>, cap: u64, hold: usize, hide_secrets: bool) -> Self {
        let redactor = Redactor::when(hide_secrets);
        // A cap below 2 still keeps one byte per segment.
        let segment = (cap / 2).max(1);
        let older = path.as_ref().map_or_else(PathBuf::new, |p| {
            let mut name = p.clone().into_os_string();
            name.push(".1");
            name.into()
        });
        LogFile {
            path,
            older,
            file: None,
            segment_len: 0,
            segment,
            hold: usize::try_from(segment).map_or(hold, |segment| hold.min(segment)),
            held: 0,
            stopped: false,
            out: OutputLog::new(),
            stdout: redactor.stream(),
            stderr: redactor.stream(),
            decided: Vec::new(),
        }
    }

    /// The reading side, if this keeps a log.
    pub fn reader(&self) -> Option<OutputLog> {
        self.path.as_ref().map(|_| self.out.clone())
    }

    /// Takes a chunk of `stream`'s output: what the redactor has decided goes to the log.
    pub fn write(&mut self, stream: Stream, bytes: &[u8]) {
        if self.path.is_none() || self.stopped {
            return;
        }
        let mut decided = std::mem::take(&mut self.decided);
        decided.clear();
        match stream {
            Stream::Stdout => self.stdout.push(bytes, &mut decided),
            Stream::Stderr => self.stderr.push(bytes, &mut decided),
        }
        self.store(&decided);
        self.decided = decided;
    }

    // Writes are small and go to the page cache, so plain blocking writes are fine here.
    fn store(&mut self, bytes: &[u8]) {
        if self.path.is_none() || self.stopped || bytes.is_empty() {
            return;
        }
        if self.file.is_none() {
            if self.held + bytes.len() <= self.hold {
                self.out.hold(bytes);
                self.held += bytes.len();
                return;
            }
            if !self.spill() {
                return;
            }
        }
        self.append(bytes);
    }

    /// Appends to the segments, starting a new one whenever the newest is full.
    fn append(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.segment_len >= self.segment && !self.rotate() {
                return;
            }
            let Some(file) = &self.file else { return };
            let take = (bytes.len() as u64).min(self.segment - self.segment_len) as usize;
            // Count only what reached the file (a full disk takes part of a write, or none).
            let (done, result) = write_counted(file, &bytes[..take]);
            self.segment_len += done as u64;
            self.out.appended(&bytes[..done]);
            if let Err(e) = result {
                return self.fail(format!("cannot write {}: {e}", self.shown()));
            }
            bytes = &bytes[take..];
        }
    }

    /// The newest segment becomes the older one (the one before is dropped: the bytes stored
    /// are already redacted, so dropping them cannot leave part of a key), and a new one
    /// starts. False (with the error noted) if that failed.
    fn rotate(&mut self) -> bool {
        let Some(path) = &self.path else { return false };
        if let Err(e) = std::fs::rename(path, &self.older) {
            let why = format!("cannot rename {} to {}: {e}", path.display(), self.older.display());
            self.fail(why);
            return false;
        }
        match create_private(path) {
            Ok(file) => {
                let file = Arc::new(file);
                self.out.rotated(&self.older, path, Arc::clone(&file));
                self.file = Some(file);
                self.segment_len = 0;
                true
            }
            Err(e) => {
                self.out.renamed(&self.older);
                let why = format!("cannot create {}: {e}", path.display());
                self.fail(why);
                false
            }
        }
    }

    fn fail(&mut self, why: String) {
        self.stopped = true;
        self.file = None;
        self.out.failed(why);
    }

    fn shown(&self) -> String {
        self.path.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
    }

    /// Creates the file and moves what memory held into it; false (with the error noted, and
    /// the held output kept) if that failed.
    fn spill(&mut self) -> bool {
        let Some(path) = &self.path else { return false };
        // A `.1` left by an earlier log of this name is no part of this one.
        let _ = std::fs::remove_file(&self.older);
        let file = match create_private(path) {
            Ok(f) => Arc::new(f),
            Err(e) => {
                let why = format!("cannot create {}: {e}", path.display());
                self.fail(why);
                return false;
            }
        };
        let held = self.out.held_copy();
        let (done, result) = write_counted(&file, &held);
        // What did not reach the file is not stored.
        self.out.spilled(path, Arc::clone(&file), done as u64);
        self.held = 0;
        self.segment_len = done as u64;
        self.file = Some(file);
        if let Err(e) = result {
            let why = format!("cannot write {}: {e}", path.display());
            self.fail(why);
            return false;
        }
        true
    }

    /// Stores what the redactors still held (the output ended: it was not a key), and closes
    /// the log: its readers see the end. `in_memory`: the output may stay in memory (the run
    /// ended by itself, so its result shows it); otherwise it goes to the file. The path is
    /// reported only if the file was created.
    pub fn close(mut self, in_memory: bool) -> OutputStats {
        let mut held = Vec::new();
        self.stdout.finish(&mut held);
        self.store(&held);
        held.clear();
        self.stderr.finish(&mut held);
        self.store(&held);
        if !in_memory && !self.stopped && self.file.is_none() && self.held > 0 {
            self.spill();
        }
        self.file = None;
        self.out.end()
    }
}

/// Writes `bytes` to `file`; how many reached it, and the error that stopped it if any.
fn write_counted(mut file: &File, bytes: &[u8]) -> (usize, std::io::Result<()>) {
    let mut done = 0;
    while done < bytes.len() {
        match file.write(&bytes[done..]) {
            Ok(0) => return (done, Err(std::io::ErrorKind::WriteZero.into())),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (done, Err(e)),
        }
    }
    (done, Ok(()))
}

/// Creates (or truncates) `path`, open to read too (the log's readers use it), readable and
/// writable by its owner only, whatever the umask
/// and whatever mode a file already there had.
fn create_private(path: &std::path::Path) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(0o600))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-ant-api03-log\"key\\with-quotes";

    /// A log of at most `cap` bytes that holds `hold` in memory.
    fn log_with(cap: u64, hold: usize, redactor: Redactor) -> (tempfile::TempDir, LogFile) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogFile::new(Some(dir.path().join("t.log")), cap, hold, false);
        log.stdout = redactor.stream();
        log.stderr = redactor.stream();
        (dir, log)
    }

    /// The two segments, older first, as one.
    fn kept(dir: &tempfile::TempDir) -> Vec<u8> {
        let older = std::fs::read(dir.path().join("t.log.1")).unwrap_or_default();
        [older, std::fs::read(dir.path().join("t.log")).unwrap()].concat()
    }

    #[test]
    fn the_log_keeps_the_newest_output_in_two_segments() {
        // Held in memory first: the segments count what was held too.
        for hold in [0, 4] {
            let (dir, mut log) = log_with(10, hold, Redactor::default());
            let reader = log.reader().unwrap();
            log.write(Stream::Stdout, b"1234");
            log.write(Stream::Stdout, b"5678");
            log.write(Stream::Stderr, b"abcdef");
            // Offsets are the stream's: what was dropped reads as dropped.
            let chunk = reader.read(0, 100);
            assert_eq!((chunk.text.as_str(), chunk.dropped_before), ("678abcdef", 5), "{hold}");
            assert_eq!((chunk.next, chunk.ended), (14, false));
            let summary = log.close(true);
            assert_eq!(std::fs::read(dir.path().join("t.log.1")).unwrap(), b"678ab");
            assert_eq!(kept(&dir), b"678abcdef");
            assert_eq!((summary.log_bytes, summary.log_cut, summary.log_dropped), (14, true, 5));
            assert_eq!(summary.log_path, Some(dir.path().join("t.log")));
            assert_eq!(summary.log_held, None);
        }
    }

    #[test]
    fn a_short_output_stays_in_memory_and_a_longer_one_goes_whole_to_the_file() {
        let (dir, mut log) = log_with(1 << 20, 16, Redactor::default());
        log.write(Stream::Stdout, b"out\n");
        log.write(Stream::Stderr, b"err\n");
        let summary = log.close(true);
        assert!(!dir.path().join("t.log").exists(), "no file");
        assert_eq!(summary.log_path, None);
        assert_eq!(summary.log_held.as_deref(), Some(&b"out\nerr\n"[..]));
        assert_eq!((summary.log_bytes, summary.log_cut, summary.log_error), (8, false, None));

        let (dir, mut log) = log_with(1 << 20, 16, Redactor::default());
        log.write(Stream::Stdout, b"0123456789");
        log.write(Stream::Stderr, b"abcdefghij");
        log.write(Stream::Stdout, b"!");
        let summary = log.close(true);
        let text = std::fs::read_to_string(dir.path().join("t.log")).unwrap();
        assert_eq!(text, "0123456789abcdefghij!");
        assert_eq!(
            (summary.log_path, summary.log_held, summary.log_bytes),
            (Some(dir.path().join("t.log")), None, 21)
        );
    }

    /// A run that did not end by itself shows a message, not its output: the output goes to
    /// the file however short.
    #[test]
    fn a_short_output_goes_to_the_file_when_it_may_not_stay_in_memory() {
        let (dir, mut log) = log_with(1 << 20, 16, Redactor::default());
        log.write(Stream::Stdout, b"partial");
        let summary = log.close(false);
        assert_eq!(std::fs::read_to_string(dir.path().join("t.log")).unwrap(), "partial");
        assert_eq!(
            (summary.log_path.is_some(), summary.log_held, summary.log_bytes),
            (true, None, 7)
        );
        // Nothing printed: no file either way.
        let (dir, log) = log_with(1 << 20, 16, Redactor::default());
        let summary = log.close(false);
        assert!(!dir.path().join("t.log").exists());
        assert_eq!((summary.log_path, summary.log_held, summary.log_bytes), (None, None, 0));
    }

    #[test]
    fn bytes_that_never_reached_a_full_disk_are_not_counted() {
        for hold in [0, 100] {
            let mut log = LogFile::new(Some("/dev/full".into()), 1 << 20, hold, false);
            log.write(Stream::Stdout, &[b'z'; 50]);
            log.write(Stream::Stdout, &[b'x'; 65536]);
            log.write(Stream::Stdout, &[b'y'; 65536]);
            let summary = log.close(true);
            assert_eq!(summary.log_bytes, 0, "{hold}");
            assert!(summary.log_error.unwrap().contains("No space left on device"));
        }
    }

    /// A file that cannot be created leaves the output held in memory where it is.
    #[test]
    fn a_log_that_cannot_be_created_keeps_what_memory_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("t.log");
        let mut log = LogFile::new(Some(path), 1 << 20, 16, false);
        log.write(Stream::Stdout, b"kept");
        let summary = log.close(false);
        assert_eq!((summary.log_path, summary.log_held.as_deref()), (None, Some(&b"kept"[..])));
        assert_eq!(summary.log_bytes, 4);
        assert!(summary.log_error.unwrap().starts_with("cannot create"));
    }

    #[test]
    fn the_log_is_private_to_its_user_even_over_an_old_file() {
        let (dir, mut log) = log_with(100, 0, Redactor::default());
        let path = dir.path().join("t.log");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(0o666)).unwrap();
        log.write(Stream::Stdout, b"new");
        log.close(true);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
    }

    #[test]
    fn a_key_split_across_chunks_and_interleaved_with_stderr_is_redacted() {
        let out = format!("start {KEY} end ");
        // In the file, and in memory.
        for hold in [0, 1 << 10] {
            for at in 0..=out.len() {
                let (dir, mut log) = log_with(1 << 20, hold, Redactor::new([KEY]));
                log.write(Stream::Stdout, &out.as_bytes()[..at]);
                log.write(Stream::Stderr, b"<err>");
                log.write(Stream::Stdout, &out.as_bytes()[at..]);
                log.write(Stream::Stdout, b"sk-ant");
                let summary = log.close(true);
                let text = match summary.log_held {
                    Some(held) => String::from_utf8(held.to_vec()).unwrap(),
                    None => std::fs::read_to_string(dir.path().join("t.log")).unwrap(),
                };
                assert!(!text.contains("api03"), "split at {at}: {text}");
                // The held-back tail comes out when it is decided: at the next chunk, or at
                // close.
                let stdout_only = text.replace("<err>", "");
                assert_eq!(stdout_only, "start [redacted] end sk-ant", "split at {at}");
                // `bytes` counts what the log holds: the redacted output.
                assert_eq!(summary.log_bytes, text.len() as u64);
            }
        }
    }

    #[test]
    fn segments_count_redacted_bytes() {
        let (dir, mut log) = log_with(24, 0, Redactor::new([KEY]));
        log.write(Stream::Stdout, format!("ab{KEY}cdefgh").as_bytes());
        log.write(Stream::Stdout, b"0123456789");
        let summary = log.close(true);
        // "ab[redacted]" "cdefgh012345" "6789": 28 bytes in segments of 12.
        assert_eq!(std::fs::read(dir.path().join("t.log.1")).unwrap(), b"cdefgh012345");
        assert_eq!(std::fs::read(dir.path().join("t.log")).unwrap(), b"6789");
        assert_eq!((summary.log_bytes, summary.log_dropped), (28, 12));
    }

    /// A `.1` segment left by an earlier log of the same name is no part of a new one.
    #[test]
    fn an_old_segment_goes_when_the_file_is_made() {
        let (dir, mut log) = log_with(100, 0, Redactor::default());
        std::fs::write(dir.path().join("t.log.1"), "old").unwrap();
        log.write(Stream::Stdout, b"new");
        log.close(true);
        assert_eq!(kept(&dir), b"new");
    }
}
