//! The BackgroundManager: runs shell commands in the background and queues one notification
//! per finished task, to be drained before the next model call.
//!
//! All state lives under one mutex (the task table and the notification queue together). There
//! is one wait, [`BackgroundManager::wait`] for an [`Until`]: a condition variable wakes it,
//! and a watch channel wakes its async twin [`Awaiter::wait`]. Commands run through an
//! [`Executor`]; every change is published as a [`TaskEvent`] to whoever subscribed. The
//! lesson's own words (run's line, check's text, the id draw) are in [`lesson`].

mod awaiter;
mod capture;
mod events;
pub mod lesson;
mod record;
mod registry;
mod shared;
mod watcher;

pub use awaiter::Awaiter;
pub use capture::{Capture, RunEnd};
pub use events::{Subscription, TaskEvent, TaskEventKind, MAX_PENDING_PROGRESS, PROGRESS_EVERY};
pub use lesson::started_line;
pub use record::{Finished, Notification, OutputStats, Status, TaskRecord, TaskState};
pub use registry::shutdown_all;
pub use shared::{conclude, Records, Snapshot, StartAt, TimedOut, Until, LOG_IN_MEMORY, LOST};
use shared::{Inner, State};
pub use watcher::Watcher;

use crate::error::{Error, Result};
use crate::exec::{Executor, LocalExecutor, LocalSettings};
use events::Hub;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How a manager is built. `Options::default()` gives the lesson's values.
#[derive(Clone)]
pub struct Options {
    /// Where commands run; `None` means the current directory.
    pub workdir: Option<PathBuf>,
    pub timeout: Duration,
    /// Characters of output kept as a task's result.
    pub output_limit: usize,
    /// Characters of the result carried by a notification.
    pub preview_limit: usize,
    /// Local executor: between SIGTERM and SIGKILL when a task is stopped.
    pub grace: Duration,
    /// Local executor: where per-task log files go; `None` means a fresh temporary directory,
    /// removed with the manager.
    pub log_dir: Option<PathBuf>,
    /// Local executor: bytes of output kept in each task's log file.
    pub log_limit: u64,
    /// Runs the commands; `None` builds a [`LocalExecutor`] from the three settings above.
    pub executor: Option<Arc<dyn Executor>>,
    /// Tasks do not get the API credentials, and their values are redacted from results
    /// (production's default; the lesson passes everything on).
    pub hide_secrets: bool,
}

impl Default for Options {
    fn default() -> Self {
        let local = LocalSettings::default();
        Options {
            workdir: None,
            timeout: crate::defaults::TASK_TIMEOUT,
            output_limit: crate::defaults::OUTPUT_LIMIT,
            preview_limit: crate::defaults::PREVIEW_LIMIT,
            grace: local.grace,
            log_dir: None,
            log_limit: local.log_limit,
            executor: None,
            hide_secrets: false,
        }
    }
}

/// Runs commands in the background. Dropping it stops every task it still runs.
pub struct BackgroundManager {
    inner: Arc<Inner>,
}

impl BackgroundManager {
    pub fn new(options: Options) -> Result<Self> {
        let workdir = match options.workdir {
            Some(dir) => dir,
            None => std::env::current_dir().map_err(|e| Error::BadWorkdir {
                path: PathBuf::from("."),
                reason: e.to_string(),
            })?,
        };
        let workdir = std::fs::canonicalize(&workdir)
            .and_then(|p| {
                if p.is_dir() {
                    Ok(p)
                } else {
                    Err(std::io::Error::other("not a directory"))
                }
            })
            .map_err(|e| Error::BadWorkdir { path: workdir.clone(), reason: e.to_string() })?;
        if options.timeout.is_zero() {
            return Err(Error::InvalidArgument("timeout must be positive".into()));
        }
        let owns_executor = options.executor.is_none();
        let executor = match options.executor {
            Some(executor) => executor,
            None => {
                if options.log_limit == 0 {
                    return Err(Error::InvalidArgument("log_limit must be positive".into()));
                }
                // An empty path would put the log files in the current directory.
                if options.log_dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
                    let message = "log_dir must name a directory (None for a temporary one)";
                    return Err(Error::InvalidArgument(message.into()));
                }
                let settings = LocalSettings {
                    grace: options.grace,
                    log_dir: options.log_dir.clone(),
                    log_limit: options.log_limit,
                    ..LocalSettings::default()
                };
                let local = LocalExecutor::new(settings).map_err(|e| Error::BadLogDir {
                    path: options.log_dir.unwrap_or_else(std::env::temp_dir),
                    reason: e.to_string(),
                })?;
                Arc::new(local)
            }
        };
        let inner = Arc::new(Inner {
            workdir,
            timeout: options.timeout,
            output_limit: options.output_limit,
            preview_limit: options.preview_limit,
            executor,
            hide_secrets: options.hide_secrets,
            owns_executor,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            version: tokio::sync::watch::Sender::new(0),
            hub: Hub::default(),
            owner: AtomicU32::new(std::process::id()),
        });
        registry::register(&inner);
        Ok(BackgroundManager { inner })
    }

    pub fn workdir(&self) -> &Path {
        &self.inner.workdir
    }

    /// The executor every task (and the bash tool) runs through.
    pub fn executor(&self) -> &Arc<dyn Executor> {
        &self.inner.executor
    }

    /// Where task logs go, if the executor keeps them on this machine.
    pub fn log_dir(&self) -> Option<&Path> {
        self.inner.executor.log_dir()
    }

    /// The longest `kill` waits for a task to end.
    pub fn stop_bound(&self) -> Duration {
        self.inner.stop_bound()
    }

    /// Makes ready what the first task would wait for (the supervisor that starts tasks), so
    /// that it starts while the caller does something else; a task does this itself if not.
    pub fn prepare(&self) {
        self.inner.executor.prepare();
    }

    /// A handle for async waits on this manager; it keeps the manager's state alive, not its
    /// tasks (they are stopped when the manager is dropped, which ends every wait).
    pub fn awaiter(&self) -> Awaiter {
        Awaiter { inner: Arc::clone(&self.inner) }
    }

    /// Starts `command` now and returns its id. Never blocks on the command.
    pub fn start(&self, command: &str) -> String {
        self.start_with(command, StartAt::default()).unwrap_or_default()
    }

    /// [`Self::start`] under an id the caller drew and/or in another directory than the
    /// manager's; `None`, and nothing started, if a task already has that id.
    pub fn start_with(&self, command: &str, at: StartAt<'_>) -> Option<String> {
        self.inner.start(at.id, command, at.workdir)
    }

    /// Starts `command` and returns the lesson's line `Background task {id} started: {cmd}`.
    pub fn run(&self, command: &str) -> String {
        lesson::started_line(&self.start(command), command)
    }

    /// The lesson's `check`: one task's status and result, or a line per task.
    pub fn check(&self, task_id: Option<&str>) -> String {
        let state = self.inner.lock();
        match task_id.filter(|id| !id.is_empty()) {
            Some(id) => {
                let task = state.tasks.get(id);
                lesson::check_one(id, task.map(|t| (t.status().as_str(), &*t.command, t.result())))
            }
            None => lesson::check_all(state.order.iter().map(|id| {
                let t = &state.tasks[id];
                (id.as_str(), t.status().as_str(), t.command.as_str())
            })),
        }
    }

    /// Everything queued, in completion order; the queue is left empty.
    pub fn drain(&self) -> Vec<Notification> {
        self.inner.drain(&mut self.inner.lock())
    }

    /// Blocks (at most `timeout`; `None`: no limit) until `until` holds. `Ok(Some)` only for
    /// [`Until::Next`], with the notification it took.
    pub fn wait(
        &self,
        until: Until<'_>,
        timeout: Option<Duration>,
    ) -> std::result::Result<Option<Notification>, TimedOut> {
        let mut state = self.inner.wait_while(timeout, |s| !until.holds(s));
        self.inner.woke(&mut state, &until).ok_or(TimedOut)
    }

    /// Waits while nothing is queued and a task runs (at most `timeout`), then drains: a
    /// convenience over [`Self::wait`] and [`Self::drain`].
    pub fn wait_for_notifications(&self, timeout: Option<Duration>) -> Vec<Notification> {
        let _ = self.wait(Until::Finished, timeout);
        self.drain()
    }

    /// Stops a running task (SIGTERM to its group, SIGKILL after the grace period), waits
    /// for it to end, and returns `check(task_id)`; or the text that says why it cannot.
    pub fn kill(&self, task_id: &str) -> String {
        match self.inner.request_kill(task_id) {
            Err(message) => message,
            Ok(()) => {
                let _ = self.wait(Until::Ended(task_id), Some(self.inner.stop_bound()));
                self.check(Some(task_id))
            }
        }
    }

    /// Stops every running task and waits for them to end. Their notifications stay queued.
    pub fn shutdown(&self) {
        self.inner.request_kill_all();
        let _ = self.wait(Until::Idle, Some(self.inner.stop_bound()));
    }

    /// Every change from now on, as [`TaskEvent`]s (events before the call are not replayed).
    pub fn subscribe(&self) -> Subscription {
        self.inner.hub.subscribe()
    }

    /// The counts, and the records `which` names, taken together.
    pub fn snapshot(&self, which: Records<'_>) -> Snapshot {
        self.inner.snapshot(which)
    }

    /// A snapshot of one task's record, `None` for an unknown id.
    pub fn task(&self, task_id: &str) -> Option<TaskRecord> {
        self.snapshot(Records::One(task_id)).tasks.pop()
    }
}

impl Drop for BackgroundManager {
    fn drop(&mut self) {
        self.shutdown();
        // Now, not when the last task watcher lets go of `inner` a moment later.
        self.inner.close_executor();
    }
}
