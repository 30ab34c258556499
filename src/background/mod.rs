//! The BackgroundManager: runs shell commands in the background and queues one notification
//! per finished task, to be drained before the next model call.
//!
//! All state lives under one mutex (the task table and the notification queue together). There
//! is one wait, [`BackgroundManager::wait`] for an [`Until`]: a condition variable wakes it,
//! and a watch channel wakes its async twin [`Awaiter::wait`]. Commands run through an
//! [`Executor`]; every change is published as a [`TaskEvent`] to whoever subscribed. The
//! lesson's own words (run's line, check's text, the id draw) are in [`lesson`]; production's
//! (a task that waits for a slot under the cap, [`Options::max_running`]) in [`production`].

mod adopt;
mod awaiter;
mod capture;
mod events;
pub mod lesson;
mod live;
mod output;
pub mod production;
mod record;
mod registry;
mod retention;
mod shared;
mod watcher;

pub use awaiter::Awaiter;
pub use capture::{Capture, RunEnd};
pub use events::{Subscription, TaskEvent, TaskEventKind, MAX_PENDING_PROGRESS, PROGRESS_EVERY};
pub use lesson::started_line;
pub use live::LiveOutput;
pub use output::Read;
pub use record::{
    Details, Finished, FinishedSince, Notification, OutputStats, Status, TaskRecord, TaskState,
};
pub use registry::shutdown_all;
use retention::Retention;
pub use shared::{
    conclude, Records, Snapshot, StartAt, Submitted, TimedOut, Until, LOG_IN_MEMORY, LOST,
};
use shared::{Inner, State};
pub use watcher::Watcher;

use crate::error::{Error, Result};
use crate::exec::{Executor, LocalExecutor, LocalSettings};
use crate::store::Store;
pub use crate::store::StoredTask;
use events::Hub;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How a manager is built. `Options::default()` gives the lesson's values, but for
/// production's cap on running tasks ([`crate::defaults::max_running`]) and its limits on
/// what is kept of finished tasks ([`crate::defaults::KEEP_FINISHED`],
/// [`crate::defaults::LOG_BUDGET`]).
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
    /// At most this many tasks run at once; the others wait in line (status `queued`), first
    /// come first started. `None`: no limit (the lesson's).
    pub max_running: Option<usize>,
    /// At most this many finished tasks are kept: past it, the oldest whose notification was
    /// taken are let go (their record, and their log file if `log_dir` is `None`, the
    /// manager's own directory). `None`: all (the lesson's).
    pub keep_finished: Option<usize>,
    /// At most this many bytes of finished tasks' log files are kept in the manager's own
    /// log directory: past it, the oldest are removed (the record says `log_removed`).
    /// Running tasks' logs are never removed, so the directory holds at most
    /// `log_budget + running × log_limit`. A `log_dir` the user names is never touched.
    /// `None`: no limit (the lesson's).
    pub log_budget: Option<u64>,
    /// A state file (SQLite) that keeps the task records and notifications beyond this
    /// manager; made 0600, in a 0700 directory if bgagent makes it. `None`: memory only (the
    /// lesson's).
    pub state: Option<PathBuf>,
    /// A dead owner of the state file whose undelivered notifications and finished tasks this
    /// manager takes over (its id, as [`BackgroundManager::stored`] lists it).
    pub adopt: Option<String>,
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
            max_running: Some(crate::defaults::max_running()),
            keep_finished: Some(crate::defaults::KEEP_FINISHED),
            log_budget: Some(crate::defaults::LOG_BUDGET),
            state: None,
            adopt: None,
        }
    }
}

/// Runs commands in the background. Dropping it stops every task it still runs.
pub struct BackgroundManager {
    inner: Arc<Inner>,
}

impl BackgroundManager {
    /// A manager as `options` say. With [`Options::state`] it is a new owner of that state
    /// file (see [`crate::store`]): opening it ends the tasks that dead owners left running
    /// (`killed`, with a notification each, never run again); with [`Options::adopt`], it
    /// then takes over that dead owner's undelivered notifications (in the order they were
    /// queued) and its finished tasks. Without a `log_dir`, the logs then go to
    /// `<state>.logs/<owner>/`, kept across restarts.
    pub fn new(mut options: Options) -> Result<Self> {
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
        if options.max_running == Some(0) {
            return Err(Error::InvalidArgument(
                "max_running must be positive (None: no limit)".into(),
            ));
        }
        if options.timeout.is_zero() {
            return Err(Error::InvalidArgument("timeout must be positive".into()));
        }
        if options.adopt.is_some() && options.state.is_none() {
            return Err(Error::InvalidArgument(
                "adopt needs a state file: an owner lives in one".into(),
            ));
        }
        // The state file's log directory is the manager's own, as a temporary one would be.
        let mut own_logs = false;
        let store = match &options.state {
            None => None,
            Some(path) => {
                let store = Store::open(path)?;
                if options.log_dir.is_none() && options.executor.is_none() {
                    let mut dir = path.as_os_str().to_owned();
                    dir.push(".logs");
                    let dir = PathBuf::from(dir).join(store.owner());
                    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(
                        |e| Error::BadLogDir { path: dir.clone(), reason: e.to_string() },
                    )?;
                    store.record_log_dir(&dir);
                    options.log_dir = Some(dir);
                    own_logs = true;
                }
                Some(store)
            }
        };
        let owns_executor = options.executor.is_none();
        let retention = Retention {
            keep_finished: options.keep_finished,
            log_budget: options.log_budget,
            // Only the files in its own temporary directory are the manager's to remove.
            removes_logs: owns_executor && (options.log_dir.is_none() || own_logs),
        };
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
            max_running: options.max_running,
            retention,
            owns_executor,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            version: tokio::sync::watch::Sender::new(0),
            hub: Hub::default(),
            owner: AtomicU32::new(std::process::id()),
            log_waiters: Default::default(),
            owner_id: store.as_ref().map(|s| s.owner().to_string()),
        });
        if let Some(store) = store {
            let mut state = inner.lock();
            state.kept.gone = Some(Vec::new());
            state.store = Some(store);
            if let Some(owner) = options.adopt {
                if let Err(e) = adopt::adopt(&mut state, &owner, &inner.retention) {
                    // This owner ends before it began: recorded so, not left for a reaper.
                    if let Some(store) = state.store.take() {
                        store.close();
                    }
                    return Err(e);
                }
            }
        }
        registry::register(&inner);
        Ok(BackgroundManager { inner })
    }

    /// This manager's owner id in its state file; `None` without one.
    pub fn owner_id(&self) -> Option<&str> {
        self.inner.owner_id.as_deref()
    }

    /// Every task of the state file, every owner's (this one's too), with its owner and
    /// whether that owner is alive, in the order they were queued; empty without a state file.
    pub fn stored(&self) -> Result<Vec<StoredTask>> {
        match &self.inner.lock().store {
            None => Ok(Vec::new()),
            Some(store) => store.all(),
        }
    }

    pub fn workdir(&self) -> &Path {
        &self.inner.workdir
    }

    /// Tasks do not get the API credentials and their values are redacted from what they
    /// print (see [`Options::hide_secrets`]).
    pub fn hides_secrets(&self) -> bool {
        self.inner.hide_secrets
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

    /// Starts `command` now (or, at the cap, puts it in line) and returns its id. Never
    /// blocks on the command.
    pub fn start(&self, command: &str) -> String {
        self.start_with(command, StartAt::default()).unwrap_or_default()
    }

    /// [`Self::start`] under an id the caller drew, in another directory than the manager's
    /// and/or with a timeout of its own; `None`, and nothing started, if a task already has
    /// that id.
    pub fn start_with(&self, command: &str, at: StartAt<'_>) -> Option<String> {
        self.submit(command, at).map(|s| s.id)
    }

    /// [`Self::start_with`], telling also where the task waits if the cap made it wait.
    pub fn submit(&self, command: &str, at: StartAt<'_>) -> Option<Submitted> {
        self.inner.start(at.id, command, at)
    }

    /// Starts `command` and returns the lesson's line `Background task {id} started: {cmd}`,
    /// or, if it waits for a slot, production's `Background task {id} queued (2nd in line,
    /// 4 running): {cmd}`.
    pub fn run(&self, command: &str) -> String {
        self.run_with(command, StartAt::default())
    }

    /// [`Self::run`] with the choices of [`StartAt`] (a timeout of its own, say).
    pub fn run_with(&self, command: &str, at: StartAt<'_>) -> String {
        match self.submit(command, at) {
            None => lesson::started_line("", command),
            Some(s) => Self::submitted_line(&s, command),
        }
    }

    /// What `run` answers for a task submitted: started, or queued and where.
    pub fn submitted_line(submitted: &Submitted, command: &str) -> String {
        match submitted.waiting {
            None => lesson::started_line(&submitted.id, command),
            Some((place, running)) => {
                production::queued_line(&submitted.id, place, running, command)
            }
        }
    }

    /// Starts a task that waits for a slot now, past the cap. `Err` carries the text to show
    /// the user (an unknown task, or one that does not wait).
    pub fn start_now(&self, task_id: &str) -> std::result::Result<(), String> {
        self.inner.start_now(task_id)
    }

    /// Where a task waits in line (1 = next) and how many tasks run; `None` if it does not
    /// wait.
    pub fn place(&self, task_id: &str) -> Option<(usize, usize)> {
        self.inner.place(task_id)
    }

    /// The cap on running tasks (`None`: no limit).
    pub fn max_running(&self) -> Option<usize> {
        self.inner.max_running
    }

    /// The lesson's `check`: one task's status and result, or a line per task.
    pub fn check(&self, task_id: Option<&str>) -> String {
        let state = self.inner.lock();
        match task_id.filter(|id| !id.is_empty()) {
            Some(id) => {
                let task = state.tasks.get(id);
                // A task in line shows where it is (production only: the lesson has no cap).
                let waiting = state.place(id).map(|(at, n)| production::waiting_result(at, n));
                let result = |t: &'_ TaskRecord| t.result().map(str::to_string).or(waiting.clone());
                let task = task.map(|t| (t.status().as_str(), t.command.as_str(), result(t)));
                lesson::check_one(id, task.as_ref().map(|(s, c, r)| (*s, *c, r.as_deref())))
            }
            None => lesson::check_all(state.order.values().map(|id| {
                let t = &state.tasks[id];
                (id.as_str(), t.status().as_str(), t.command.as_str())
            })),
        }
    }

    /// Lets a finished task go now: its record, and its log file if the log directory is the
    /// manager's own. `Err` carries the text to show the user: an unknown task, one that runs
    /// or waits for a slot, or one whose notification is still queued (drain it first).
    pub fn forget(&self, task_id: &str) -> std::result::Result<(), String> {
        self.inner.forget(task_id)
    }

    /// The ids of the tasks let go (by `keep_finished` or [`Self::forget`]) since the last
    /// call, for a caller that mirrors the task table (Python's `tasks` dict). The list is
    /// kept only once someone asks: the first call starts it.
    pub fn take_let_go(&self) -> Vec<String> {
        self.inner.take_let_go()
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

    /// The notifications of the tasks that finished after `cursor` (0: since the start),
    /// in the order they finished, and the cursor to pass next time. Nothing is taken from
    /// the queue, so a caller who lost an answer asks again with the same cursor; wait for
    /// one with [`Until::FinishedSince`]. What `keep_finished` let go is counted as missing.
    pub fn finished_since(&self, cursor: u64) -> FinishedSince {
        self.inner.lock().finished_since(cursor)
    }

    /// Production's list of tasks (the REPL's `/tasks`, the model's `list_background`): the
    /// lesson's line per task (`{id}: [{status}] {command[:60]}`), with how long a running
    /// task has run and its last line of output, where a queued one is in line, and how a
    /// finished one ended.
    pub fn list(&self) -> String {
        let tasks = self.snapshot(Records::All).tasks;
        if tasks.is_empty() {
            return lesson::NO_TASKS.to_string();
        }
        let line = |t: &TaskRecord| {
            let line = lesson::check_line(&t.id, t.status().as_str(), &t.command);
            if t.is_waiting() {
                return match self.place(&t.id) {
                    Some((place, _)) => format!("{line}  ({} in line)", production::ordinal(place)),
                    None => line,
                };
            }
            let took = production::elapsed(t.elapsed());
            if !t.is_running() {
                return match t.exit_code() {
                    Some(code) => format!("{line}  (exit {code}, {took})"),
                    None => format!("{line}  ({took})"),
                };
            }
            match self.tail(&t.id, 1) {
                Ok((last, _)) if !last.trim().is_empty() => {
                    format!("{line}  ({took})  > {}", crate::text::prefix(last.trim(), 60))
                }
                _ => format!("{line}  ({took})"),
            }
        };
        tasks.iter().map(line).collect::<Vec<_>>().join("\n")
    }

    /// Waits while nothing is queued and a task runs (at most `timeout`), then drains: a
    /// convenience over [`Self::wait`] and [`Self::drain`].
    pub fn wait_for_notifications(&self, timeout: Option<Duration>) -> Vec<Notification> {
        let _ = self.wait(Until::Finished, timeout);
        self.drain()
    }

    /// Stops a running task (SIGTERM to its group, SIGKILL after the grace period), waits
    /// for it to end, and returns `check(task_id)`; or the text that says why it cannot. A
    /// task waiting for a slot leaves the line: `killed`, `Error: Killed (never started)`.
    pub fn kill(&self, task_id: &str) -> String {
        match self.inner.request_kill(task_id) {
            Err(message) => message,
            Ok(()) => {
                let _ = self.wait(Until::Ended(task_id), Some(self.inner.stop_bound()));
                self.check(Some(task_id))
            }
        }
    }

    /// Takes every waiting task out of the line (each ends `killed`, never started), stops
    /// every running one and waits for them to end. Their notifications stay queued.
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

    /// Up to `max_bytes` of a task's output from byte offset `after` (0: its start), waiting
    /// up to `timeout` for some while it runs; `Err` has the text for an unknown id.
    pub fn read(
        &self,
        task_id: &str,
        after: u64,
        max_bytes: usize,
        timeout: Duration,
    ) -> std::result::Result<Read, String> {
        self.inner.read(task_id, after, max_bytes, timeout)
    }

    /// The last `lines` lines of a task's output and the offset where they end.
    pub fn tail(&self, task_id: &str, lines: usize) -> std::result::Result<(String, u64), String> {
        self.inner.tail(task_id, lines)
    }

    /// A snapshot of one task's record, `None` for an unknown id.
    pub fn task(&self, task_id: &str) -> Option<TaskRecord> {
        self.snapshot(Records::One(task_id)).tasks.pop()
    }
}

impl Drop for BackgroundManager {
    fn drop(&mut self) {
        self.shutdown();
        // The owner ends here: recorded as ended, its lock let go. A task that outlived the
        // shutdown's wait is left `running`, and the next opener ends it as a dead owner's.
        let store = self.inner.lock().store.take();
        if let Some(store) = store {
            store.close();
        }
        // Now, not when the last task watcher lets go of `inner` a moment later.
        self.inner.close_executor();
    }
}
