//! A task's full output, written as it arrives, up to a byte cap.
//!
//! A short output stays in memory: the file is created only once the output passes what the
//! task keeps in memory (`hold`), or at the end when the run did not end by itself (its
//! result then shows a message, not the output). Most commands print little, and a file per
//! task cost a disk block each and, past thousands of tasks, a directory of files.
//!
//! The file is private to its user (0600): it holds everything the command printed. In
//! production the API credentials are redacted from it as from the task's result: each
//! stream goes through its own [`RedactStream`] (a key split across chunks is still found,
//! and output of the other stream in between cannot break it up), which holds back a tail
//! that could be the start of a key until the next chunk or the end decides it. What stays in
//! memory is redacted the same way.

use crate::exec::{OutputStats, Stream};
use crate::secrets::{RedactStream, Redactor};
use std::fs::{File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

pub struct LogFile {
    /// `None` keeps no log (foreground commands).
    path: Option<PathBuf>,
    file: Option<File>,
    /// Most bytes of output stored, counted after redaction (what the log holds).
    cap: u64,
    /// Bytes of output kept in memory before the file is created.
    hold: usize,
    /// The output stored so far, while there is no file.
    held: Vec<u8>,
    /// Bytes of output stored so far: redacted output, `[redacted]` markers included, the
    /// line that says the log was cut not included. At most `cap`.
    written: u64,
    cut: bool,
    error: Option<String>,
    stdout: RedactStream,
    stderr: RedactStream,
    /// Decided bytes, reused from chunk to chunk.
    decided: Vec<u8>,
}

impl LogFile {
    /// With `hide_secrets`, the API credentials' current values are redacted from the log.
    /// Up to `hold` bytes (and no more than `cap`) stay in memory until [`LogFile::close`].
    pub fn new(path: Option<PathBuf>, cap: u64, hold: usize, hide_secrets: bool) -> Self {
        let redactor = Redactor::when(hide_secrets);
        LogFile {
            path,
            file: None,
            cap,
            hold: usize::try_from(cap).map_or(hold, |cap| hold.min(cap)),
            held: Vec::new(),
            written: 0,
            cut: false,
            error: None,
            stdout: redactor.stream(),
            stderr: redactor.stream(),
            decided: Vec::new(),
        }
    }

    /// Takes a chunk of `stream`'s output: what the redactor has decided goes to the log.
    pub fn write(&mut self, stream: Stream, bytes: &[u8]) {
        if self.path.is_none() || self.cut || self.error.is_some() {
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
        if self.path.is_none() || self.cut || self.error.is_some() || bytes.is_empty() {
            return;
        }
        if self.file.is_none() {
            if self.held.len() + bytes.len() <= self.hold {
                self.held.extend_from_slice(bytes);
                self.written += bytes.len() as u64;
                return;
            }
            if !self.spill() {
                return;
            }
        }
        let Some(path) = &self.path else { return };
        let room = self.cap - self.written;
        let take = (bytes.len() as u64).min(room) as usize;
        let file = self.file.as_mut().expect("file created above");
        // Count only what reached the file (a full disk takes part of a write, or none).
        let (done, mut result) = write_counted(file, &bytes[..take]);
        self.written += done as u64;
        // The bytes stored are already redacted, so cutting them cannot leave part of a key.
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

    /// Creates the file and moves what memory held into it; false (with the error noted, and
    /// the held output kept) if that failed.
    fn spill(&mut self) -> bool {
        let Some(path) = &self.path else { return false };
        let mut file = match create_private(path) {
            Ok(f) => f,
            Err(e) => {
                self.error = Some(format!("cannot create {}: {e}", path.display()));
                return false;
            }
        };
        let (done, result) = write_counted(&mut file, &self.held);
        if let Err(e) = result {
            // What did not reach the file is not stored.
            self.written -= (self.held.len() - done) as u64;
            self.error = Some(format!("cannot write {}: {e}", path.display()));
        }
        self.held = Vec::new();
        self.file = Some(file);
        self.error.is_none()
    }

    /// Stores what the redactors still held (the output ended: it was not a key), and closes
    /// the log. `in_memory`: the output may stay in memory (the run ended by itself, so its
    /// result shows it); otherwise it goes to the file. The path is reported only if the file
    /// was created.
    pub fn close(mut self, in_memory: bool) -> OutputStats {
        let mut held = Vec::new();
        self.stdout.finish(&mut held);
        self.store(&held);
        held.clear();
        self.stderr.finish(&mut held);
        self.store(&held);
        if !in_memory && self.file.is_none() && !self.held.is_empty() {
            self.spill();
        }
        let created = self.file.take().is_some();
        OutputStats {
            log_path: self.path.filter(|_| created),
            log_bytes: self.written,
            log_cut: self.cut,
            log_error: self.error,
            log_held: (!self.held.is_empty()).then(|| self.held.into_boxed_slice()),
            ..OutputStats::default()
        }
    }
}

/// Writes `bytes` to `file`; how many reached it, and the error that stopped it if any.
fn write_counted(file: &mut File, bytes: &[u8]) -> (usize, std::io::Result<()>) {
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

/// Creates (or truncates) `path` readable and writable by its owner only, whatever the umask
/// and whatever mode a file already there had.
fn create_private(path: &std::path::Path) -> std::io::Result<File> {
    let file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
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

    #[test]
    fn log_is_capped_with_a_marker() {
        // Held in memory first: the cap counts what was held too.
        for hold in [0, 8] {
            let (dir, mut log) = log_with(10, hold, Redactor::default());
            log.write(Stream::Stdout, b"12345678");
            log.write(Stream::Stderr, b"abcdef");
            let summary = log.close(true);
            let text = std::fs::read_to_string(dir.path().join("t.log")).unwrap();
            assert!(text.starts_with("12345678ab\n[bgagent: log cut at 10 bytes"), "{hold}");
            assert_eq!((summary.log_bytes, summary.log_cut), (10, true));
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
                    Some(held) => String::from_utf8(held.into_vec()).unwrap(),
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
    fn the_cap_counts_redacted_bytes() {
        let (dir, mut log) = log_with(12, 0, Redactor::new([KEY]));
        log.write(Stream::Stdout, format!("ab{KEY}cdefgh").as_bytes());
        let summary = log.close(true);
        let text = std::fs::read_to_string(dir.path().join("t.log")).unwrap();
        assert!(text.starts_with("ab[redacted]\n[bgagent: log cut at 12 bytes"), "{text}");
        assert_eq!((summary.log_bytes, summary.log_cut), (12, true));
    }
}
