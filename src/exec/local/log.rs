//! A task's full output, written as it arrives, up to a byte cap.
//!
//! The file is private to its user (0600): it holds everything the command printed. In
//! production the API credentials are redacted from it as from the task's result: each
//! stream goes through its own [`RedactStream`] (a key split across chunks is still found,
//! and output of the other stream in between cannot break it up), which holds back a tail
//! that could be the start of a key until the next chunk or the end decides it.

use crate::exec::{LogSummary, Stream};
use crate::secrets::{RedactStream, Redactor};
use std::fs::{File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

pub struct LogFile {
    /// `None` keeps no log (foreground commands).
    path: Option<PathBuf>,
    file: Option<File>,
    /// Most bytes of output stored, counted after redaction (what the file holds).
    cap: u64,
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
    pub fn new(path: Option<PathBuf>, cap: u64, hide_secrets: bool) -> Self {
        let redactor = Redactor::when(hide_secrets);
        LogFile {
            path,
            file: None,
            cap,
            written: 0,
            cut: false,
            error: None,
            stdout: redactor.stream(),
            stderr: redactor.stream(),
            decided: Vec::new(),
        }
    }

    /// Takes a chunk of `stream`'s output: what the redactor has decided goes to the file.
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
        let Some(path) = &self.path else { return };
        if self.cut || self.error.is_some() || bytes.is_empty() {
            return;
        }
        if self.file.is_none() {
            match create_private(path) {
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
        // Count only what reached the file (a full disk takes part of a write, or none).
        let mut done = 0;
        let mut result = Ok(());
        while done < take {
            match file.write(&bytes[done..take]) {
                Ok(0) => {
                    result = Err(std::io::ErrorKind::WriteZero.into());
                    break;
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
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

    /// Stores what the redactors still held (the output ended: it was not a key), closes the
    /// file; the path is reported only if the file was created.
    pub fn close(mut self) -> LogSummary {
        let mut held = Vec::new();
        self.stdout.finish(&mut held);
        self.store(&held);
        held.clear();
        self.stderr.finish(&mut held);
        self.store(&held);
        let created = self.file.take().is_some();
        LogSummary {
            path: self.path.filter(|_| created),
            bytes: self.written,
            cut: self.cut,
            error: self.error,
        }
    }
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

    fn log_with(cap: u64, redactor: Redactor) -> (tempfile::TempDir, LogFile) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogFile::new(Some(dir.path().join("t.log")), cap, false);
        log.stdout = redactor.stream();
        log.stderr = redactor.stream();
        (dir, log)
    }

    #[test]
    fn log_is_capped_with_a_marker() {
        let (dir, mut log) = log_with(10, Redactor::default());
        log.write(Stream::Stdout, b"12345678");
        log.write(Stream::Stderr, b"abcdef");
        let summary = log.close();
        let text = std::fs::read_to_string(dir.path().join("t.log")).unwrap();
        assert!(text.starts_with("12345678ab\n[bgagent: log cut at 10 bytes"));
        assert_eq!((summary.bytes, summary.cut), (10, true));
        assert_eq!(summary.path, Some(dir.path().join("t.log")));
    }

    #[test]
    fn bytes_that_never_reached_a_full_disk_are_not_counted() {
        let mut log = LogFile::new(Some("/dev/full".into()), 1 << 20, false);
        log.write(Stream::Stdout, &[b'x'; 65536]);
        log.write(Stream::Stdout, &[b'y'; 65536]);
        let summary = log.close();
        assert_eq!(summary.bytes, 0);
        assert!(summary.error.unwrap().contains("No space left on device"));
    }

    #[test]
    fn the_log_is_private_to_its_user_even_over_an_old_file() {
        let (dir, mut log) = log_with(100, Redactor::default());
        let path = dir.path().join("t.log");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(0o666)).unwrap();
        log.write(Stream::Stdout, b"new");
        log.close();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
    }

    #[test]
    fn a_key_split_across_chunks_and_interleaved_with_stderr_is_redacted() {
        let out = format!("start {KEY} end ");
        for at in 0..=out.len() {
            let (dir, mut log) = log_with(1 << 20, Redactor::new([KEY]));
            log.write(Stream::Stdout, &out.as_bytes()[..at]);
            log.write(Stream::Stderr, b"<err>");
            log.write(Stream::Stdout, &out.as_bytes()[at..]);
            log.write(Stream::Stdout, b"sk-ant");
            let summary = log.close();
            let text = std::fs::read_to_string(dir.path().join("t.log")).unwrap();
            assert!(!text.contains("api03"), "split at {at}: {text}");
            // The held-back tail comes out when it is decided: at the next chunk, or at close.
            let stdout_only = text.replace("<err>", "");
            assert_eq!(stdout_only, "start [redacted] end sk-ant", "split at {at}");
            // `bytes` counts what the file holds: the redacted output.
            assert_eq!(summary.bytes, text.len() as u64);
        }
    }

    #[test]
    fn the_cap_counts_redacted_bytes() {
        let (dir, mut log) = log_with(12, Redactor::new([KEY]));
        log.write(Stream::Stdout, format!("ab{KEY}cdefgh").as_bytes());
        let summary = log.close();
        let text = std::fs::read_to_string(dir.path().join("t.log")).unwrap();
        assert!(text.starts_with("ab[redacted]\n[bgagent: log cut at 12 bytes"), "{text}");
        assert_eq!((summary.bytes, summary.cut), (12, true));
    }
}
