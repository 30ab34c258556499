//! The executor seam: how a task's command is run. The background manager and the foreground
//! bash tool both launch through [`Executor`]; what they get back is a stream of
//! [`ExecEvent`]s, so nothing above this module knows whether the command runs as a local
//! process group ([`LocalExecutor`]), in memory ([`MemoryExecutor`], for tests), or, later,
//! somewhere else.

mod local;
mod memory;
mod output;

pub use local::{supervisor, LocalExecutor, LocalSettings};
pub use memory::{MemoryExecutor, Scripted};
pub use output::{Chunk, OutputLog, OutputStats};

use crate::runtime::Cancel;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What to run.
#[derive(Clone, Debug)]
pub struct TaskSpec {
    /// Unique within the manager; names the task's log file.
    pub id: String,
    /// A shell command line (`sh -c command`).
    pub command: String,
    pub workdir: PathBuf,
    /// After this long the command is stopped and ends as [`Ended::TimedOut`].
    pub timeout: Duration,
    /// Keep the full output in a log (background tasks do; the bash tool does not).
    pub keep_log: bool,
    /// A log of at most this many bytes (as stored: redacted) stays in memory, with no file,
    /// when the run ends by itself: the caller's result shows all of it then. Beyond it, or
    /// when the run is stopped, the log is a file. 0: always a file.
    pub hold_output: usize,
    /// Leave the API credentials (`secrets::SECRET_VARS`) out of the environment, and
    /// redact their values from the log.
    pub hide_secrets: bool,
}

/// Which output stream bytes came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// How a run ended, seen from the executor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The command ended by itself.
    Exited,
    /// The timeout stopped it.
    TimedOut,
    /// The cancel handle stopped it.
    Cancelled,
    /// The process that ran it died (a task can kill bgagent's supervisor), so it was ended.
    Lost,
}

/// The last event of a run that started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    /// The shell's exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    pub ended: Ended,
    /// Its byte counts are left to the reader of the output.
    pub output: OutputStats,
}

/// What a run reports, in this order: `Started`, any number of `Output`, then one `Exited`;
/// or a single `Failed` when the command could not start. Nothing comes after the last one.
#[derive(Debug)]
pub enum ExecEvent<'a> {
    Started { pid: u32 },
    Output { stream: Stream, bytes: &'a [u8] },
    Exited(Exit),
    Failed(String),
}

/// Receives a run's events. Called from the executor's own threads, one event at a time.
pub trait EventSink: Send {
    fn event(&mut self, event: ExecEvent<'_>);

    /// Receives the reading side of the run's log, once, before `Started`, when the run
    /// keeps a log ([`TaskSpec::keep_log`]): its output can be read by offset while it runs,
    /// and its byte counts and file are known before it ends.
    fn log(&mut self, log: OutputLog) {
        let _ = log;
    }
}

/// Runs commands. `launch` returns at once; the events follow on the executor's threads.
pub trait Executor: Send + Sync {
    fn launch(&self, spec: TaskSpec, cancel: Cancel, events: Box<dyn EventSink>);

    /// The longest a run may take to end once cancelled (so waits for it can be bounded).
    fn stop_bound(&self) -> Duration;

    /// Makes ready now what the first run would otherwise wait for (the local executor's
    /// supervisor), for a caller about to be busy elsewhere; a run does it itself otherwise.
    fn prepare(&self) {}

    /// Where log files go, if this executor keeps them on this machine.
    fn log_dir(&self) -> Option<&Path> {
        None
    }

    /// Removes what the executor keeps for itself (its own temporary log directory). Called
    /// when the owner goes away, also at interpreter exit when no destructor runs.
    fn close(&self) {}
}
