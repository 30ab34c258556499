//! What the manager remembers about a task, and the notification it sends when the task ends.

use crate::runtime::Cancel;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Running,
    Completed,
    Timeout,
    Error,
    Killed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Timeout => "timeout",
            Status::Error => "error",
            Status::Killed => "killed",
        }
    }
}

impl std::str::FromStr for Status {
    type Err = String;

    /// The names `as_str` gives, back to the status.
    fn from_str(s: &str) -> std::result::Result<Status, String> {
        [Status::Running, Status::Completed, Status::Timeout, Status::Error, Status::Killed]
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("unknown task status {s:?}"))
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finished task, as pushed onto the notification queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub task_id: String,
    pub status: Status,
    /// The command's first 80 characters.
    pub command: String,
    /// The result's first `preview_limit` characters.
    pub result: String,
    /// The shell's exit code; `None` when a signal ended it or it never started.
    pub exit_code: Option<i32>,
}

/// What a task's output amounted to: byte counts and where the full text was logged.
#[derive(Clone, Debug, Default)]
pub struct OutputStats {
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    /// Bytes of output stored in the log (redacted, as stored), in its file or in memory.
    pub log_bytes: u64,
    pub log_cut: bool,
    /// The log file; `None` when none was written (no output, or the log is in memory).
    pub log_path: Option<PathBuf>,
    /// The log itself when it stayed in memory: a task that ended by itself with at most
    /// [`super::LOG_IN_MEMORY`] bytes of output (its result shows them all) gets no file.
    pub log_held: Option<Box<[u8]>>,
    /// A problem with the log file (the task itself still ran).
    pub log_error: Option<String>,
}

/// How a task ended, as the supervisor reports it.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub result: String,
    pub exit_code: Option<i32>,
    pub output: OutputStats,
}

/// The manager's record of one task.
#[derive(Clone, Debug)]
pub struct TaskRecord {
    pub id: String,
    pub command: String,
    pub status: Status,
    /// `None` while the task runs.
    pub result: Option<String>,
    pub exit_code: Option<i32>,
    pub started: Instant,
    pub finished: Option<Instant>,
    pub output: OutputStats,
    /// The process id the executor reported (for a local task, also its process group).
    pub pid: Option<u32>,
    /// Stops it while it runs; let go once it has ended.
    pub(crate) kill: Option<Cancel>,
}

impl TaskRecord {
    pub(crate) fn new(id: String, command: String) -> Self {
        TaskRecord {
            id,
            command,
            status: Status::Running,
            result: None,
            exit_code: None,
            started: Instant::now(),
            finished: None,
            output: OutputStats::default(),
            pid: None,
            kill: Some(Cancel::new()),
        }
    }

    pub(crate) fn finish(&mut self, status: Status, mut outcome: Outcome) {
        // Kept as long as the record: without the slack a redaction or a cut left.
        outcome.result.shrink_to_fit();
        self.status = status;
        self.result = Some(outcome.result);
        self.exit_code = outcome.exit_code;
        self.finished = Some(Instant::now());
        self.output = outcome.output;
        self.kill = None;
    }

    /// How long the task ran (so far, while it runs).
    pub fn elapsed(&self) -> Duration {
        self.finished.unwrap_or_else(Instant::now) - self.started
    }
}
