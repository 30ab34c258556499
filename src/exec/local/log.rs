//! A task's full output, written as it arrives, up to a byte cap.

use crate::exec::LogSummary;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

pub struct LogFile {
    /// `None` keeps no log (foreground commands).
    path: Option<PathBuf>,
    file: Option<File>,
    cap: u64,
    written: u64,
    cut: bool,
    error: Option<String>,
}

impl LogFile {
    pub fn new(path: Option<PathBuf>, cap: u64) -> Self {
        LogFile { path, file: None, cap, written: 0, cut: false, error: None }
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

    /// Closes the file; the path is reported only if the file was created.
    pub fn close(mut self) -> LogSummary {
        let created = self.file.take().is_some();
        LogSummary {
            path: self.path.filter(|_| created),
            bytes: self.written,
            cut: self.cut,
            error: self.error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_is_capped_with_a_marker() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogFile::new(Some(dir.path().join("t.log")), 10);
        log.write(b"12345678");
        log.write(b"abcdef");
        let summary = log.close();
        let text = std::fs::read_to_string(dir.path().join("t.log")).unwrap();
        assert!(text.starts_with("12345678ab\n[bgagent: log cut at 10 bytes"));
        assert_eq!((summary.bytes, summary.cut), (10, true));
        assert_eq!(summary.path, Some(dir.path().join("t.log")));
    }

    #[test]
    fn bytes_that_never_reached_a_full_disk_are_not_counted() {
        let mut log = LogFile::new(Some("/dev/full".into()), 1 << 20);
        log.write(&[b'x'; 65536]);
        log.write(&[b'y'; 65536]);
        let summary = log.close();
        assert_eq!(summary.bytes, 0);
        assert!(summary.error.unwrap().contains("No space left on device"));
    }
}
