//! What the manager remembers about a task, and the notification it sends when the task ends.
//! The serialised forms (serde) are what every face hands out: the Python dicts, the trace.

use super::live::LiveOutput;
pub use crate::exec::OutputStats;
use crate::runtime::Cancel;
use serde::{Serialize, Serializer};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for a slot under the manager's cap (production only: the lesson has no cap).
    Queued,
    Running,
    Completed,
    Timeout,
    Error,
    Killed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
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
        [
            Status::Queued,
            Status::Running,
            Status::Completed,
            Status::Timeout,
            Status::Error,
            Status::Killed,
        ]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Notification {
    pub task_id: String,
    pub status: Status,
    /// The command's first 80 characters.
    pub command: String,
    /// The result's first `preview_limit` characters.
    pub result: String,
    /// The shell's exit code; `None` when a signal ended it or it never started.
    pub exit_code: Option<i32>,
    /// What production tells beyond the lesson's keys; not in the lesson's forms (serde
    /// leaves it out: see [`Details`]).
    #[serde(skip)]
    pub details: Details,
}

/// What production's notification adds to the lesson's: how long the task ran, where its
/// output is, and the output's end where the result does not show it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Details {
    /// From its start to its end, in seconds (zero if it never started).
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
    /// Its log file, as it was when the task ended (`None`: no file, or only in memory).
    pub log_path: Option<std::path::PathBuf>,
    /// The output's last lines (at most 20, at most 2,000 characters) when the result does
    /// not end with them: the preview cut it, or the result is a message (killed, timed out)
    /// and the output is only in the log. Empty otherwise.
    pub tail: String,
}

fn seconds<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(d.as_secs_f64())
}

/// The tasks that finished after a cursor (`BackgroundManager::finished_since`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FinishedSince {
    /// Their notifications, in the order they finished.
    pub notes: Vec<Notification>,
    /// The cursor to pass next: how many tasks have finished so far (less than the cursor
    /// asked with if that came from elsewhere, such as a manager before a restart).
    pub cursor: u64,
    /// Tasks that finished after the cursor but are no longer kept (`keep_finished`).
    pub missing: u64,
    /// Tasks running, and waiting for a slot, now.
    pub running: usize,
    pub waiting: usize,
}

/// How a task ended: everything that is known only once it has.
#[derive(Clone, Debug)]
pub struct Finished {
    pub status: Status,
    /// The lesson's result text: the output, or the message that says why there is none.
    pub result: String,
    /// The shell's exit code; `None` when a signal ended it or it never started.
    pub exit_code: Option<i32>,
    pub ended: Instant,
    /// The process id it ran as, if it started.
    pub pid: Option<u32>,
    pub output: OutputStats,
}

/// Where a task is in its life. Cancelling `kill` stops it (what `kill` does).
#[derive(Clone, Debug)]
pub enum TaskState {
    /// Waiting for a slot: the manager's cap on running tasks is reached. Not yet handed to
    /// the executor; `kill` takes it out of the queue.
    Waiting {
        kill: Cancel,
    },
    /// Handed to the executor, which has not reported a process yet.
    Starting {
        kill: Cancel,
    },
    /// Its process runs (for a local task, also its process group).
    Running {
        pid: u32,
        started: Instant,
        kill: Cancel,
    },
    Finished(Finished),
}

/// The manager's record of one task.
#[derive(Clone, Debug)]
pub struct TaskRecord {
    pub id: String,
    pub command: String,
    /// When it was submitted (`run`/`start`).
    pub queued: Instant,
    /// When it got a slot and was handed to the executor (`None` while it waits, or if it
    /// never started); its elapsed time and its timeout count from here.
    pub slot: Option<Instant>,
    /// It waited for a slot (the cap was reached when it was submitted).
    pub waited_for_slot: bool,
    /// Its timeout (the manager's, or its own).
    pub timeout: Duration,
    pub state: TaskState,
    /// Its log file was removed to keep finished tasks' logs within the manager's
    /// `log_budget` (its `log_path` is `None` since).
    pub log_removed: bool,
    /// Its start number (the manager's `order` key).
    pub(crate) start_no: u64,
    /// Its finish number, once it has finished.
    pub(crate) end_no: Option<u64>,
    /// Its notification was taken (drained), or it had none: retention may let it go.
    pub(crate) delivered: bool,
    /// Its log and byte counts as they grow, once the executor handed the log over; kept
    /// after the end so the output can still be read.
    pub live: Option<Arc<LiveOutput>>,
    /// The notification it queued when it ended, kept with the record so that a caller
    /// who follows finished tasks by cursor (`finished_since`) reads the same words.
    pub notification: Option<Notification>,
}

impl TaskRecord {
    /// A task that starts now (`waiting: false`) or waits for a slot.
    pub(crate) fn new(
        id: String,
        command: String,
        timeout: Duration,
        waiting: bool,
        start_no: u64,
    ) -> Self {
        let now = Instant::now();
        let kill = Cancel::new();
        TaskRecord {
            id,
            command,
            queued: now,
            slot: (!waiting).then_some(now),
            waited_for_slot: waiting,
            timeout,
            state: if waiting { TaskState::Waiting { kill } } else { TaskState::Starting { kill } },
            log_removed: false,
            start_no,
            end_no: None,
            delivered: false,
            live: None,
            notification: None,
        }
    }

    /// The lesson's status: `running` until it has ended; `queued` while it waits for a slot.
    pub fn status(&self) -> Status {
        match &self.state {
            TaskState::Waiting { .. } => Status::Queued,
            TaskState::Finished(f) => f.status,
            _ => Status::Running,
        }
    }

    /// It waits for a slot.
    pub fn is_waiting(&self) -> bool {
        matches!(self.state, TaskState::Waiting { .. })
    }

    pub fn is_running(&self) -> bool {
        self.finished().is_none()
    }

    pub fn finished(&self) -> Option<&Finished> {
        match &self.state {
            TaskState::Finished(f) => Some(f),
            _ => None,
        }
    }

    /// `None` while the task waits or runs.
    pub fn result(&self) -> Option<&str> {
        self.finished().map(|f| f.result.as_str())
    }

    pub fn exit_code(&self) -> Option<i32> {
        self.finished().and_then(|f| f.exit_code)
    }

    pub fn pid(&self) -> Option<u32> {
        match &self.state {
            TaskState::Waiting { .. } | TaskState::Starting { .. } => None,
            TaskState::Running { pid, .. } => Some(*pid),
            TaskState::Finished(f) => f.pid,
        }
    }

    /// What stops it, while it has not ended.
    pub(crate) fn kill(&self) -> Option<&Cancel> {
        match &self.state {
            TaskState::Waiting { kill }
            | TaskState::Starting { kill }
            | TaskState::Running { kill, .. } => Some(kill),
            TaskState::Finished(_) => None,
        }
    }

    /// It got a slot: it is handed to the executor now.
    pub(crate) fn slotted(&mut self) {
        if let TaskState::Waiting { kill } = &self.state {
            self.state = TaskState::Starting { kill: kill.clone() };
            self.slot = Some(Instant::now());
        }
    }

    /// The executor reported its process.
    pub(crate) fn started(&mut self, pid: u32) {
        if let TaskState::Starting { kill } = &self.state {
            let kill = kill.clone();
            self.state = TaskState::Running { pid, started: Instant::now(), kill };
        }
    }

    pub(crate) fn finish(&mut self, mut finished: Finished) {
        // Kept as long as the record: without the slack a redaction or a cut left.
        finished.result.shrink_to_fit();
        finished.pid = self.pid();
        self.state = TaskState::Finished(finished);
    }

    /// When it ended, or now.
    fn end(&self) -> Instant {
        self.finished().map_or_else(Instant::now, |f| f.ended)
    }

    /// How long the task ran (so far, while it runs), from its start: zero if it never got a
    /// slot.
    pub fn elapsed(&self) -> Duration {
        self.slot.map_or(Duration::ZERO, |slot| self.end().saturating_duration_since(slot))
    }

    /// How long it waited for a slot (so far, while it waits); zero if it never had to.
    pub fn waited(&self) -> Duration {
        if !self.waited_for_slot {
            return Duration::ZERO;
        }
        self.slot.unwrap_or_else(|| self.end()).saturating_duration_since(self.queued)
    }
}

/// The record as Python's `info()` and the trace show it: one flat map.
impl Serialize for TaskRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Info<'a> {
            task_id: &'a str,
            status: Status,
            command: &'a str,
            result: Option<&'a str>,
            exit_code: Option<i32>,
            elapsed: f64,
            waited: f64,
            pid: Option<u32>,
            #[serde(flatten)]
            output: &'a OutputStats,
            log_removed: bool,
        }
        // While it runs, what its log holds so far.
        let so_far = match (self.finished(), &self.live) {
            (None, Some(live)) => live.stats(),
            _ => OutputStats::default(),
        };
        Info {
            task_id: &self.id,
            status: self.status(),
            command: &self.command,
            result: self.result(),
            exit_code: self.exit_code(),
            elapsed: self.elapsed().as_secs_f64(),
            waited: self.waited().as_secs_f64(),
            pid: self.pid(),
            output: self.finished().map_or(&so_far, |f| &f.output),
            log_removed: self.log_removed,
        }
        .serialize(serializer)
    }
}
