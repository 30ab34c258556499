//! A task's output while it runs: the reading side of its log (from the executor) and the
//! byte counts of each stream (from its capture), shared by the task's sink and its record,
//! so `info()` and readers see them before the task ends.

use crate::exec::{OutputLog, OutputStats};
use std::sync::atomic::{AtomicU64, Ordering};

/// What a running task's record shares with the sink that feeds it.
#[derive(Debug)]
pub struct LiveOutput {
    pub log: OutputLog,
    stdout_bytes: AtomicU64,
    stderr_bytes: AtomicU64,
}

impl LiveOutput {
    pub(crate) fn new(log: OutputLog) -> Self {
        LiveOutput { log, stdout_bytes: AtomicU64::new(0), stderr_bytes: AtomicU64::new(0) }
    }

    /// The capture counted this much of each stream so far.
    pub(crate) fn counted(&self, (stdout, stderr): (u64, u64)) {
        self.stdout_bytes.store(stdout, Ordering::Relaxed);
        self.stderr_bytes.store(stderr, Ordering::Relaxed);
    }

    /// The output so far, as `info()` shows it.
    pub fn stats(&self) -> OutputStats {
        OutputStats {
            stdout_bytes: self.stdout_bytes.load(Ordering::Relaxed),
            stderr_bytes: self.stderr_bytes.load(Ordering::Relaxed),
            ..self.log.stats()
        }
    }
}
