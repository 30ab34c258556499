//! The BackgroundManager: runs shell commands in the background and queues one notification
//! per finished task, to be drained before the next model call.
//!
//! All state lives under one mutex (the task table and the notification queue together), and a
//! condition variable wakes anyone waiting for a task to end (a watch channel wakes the async
//! waits of [`Awaiter`]). Commands run through an
//! [`Executor`]; every change is published as a [`TaskEvent`] to whoever subscribed.

mod awaiter;
mod capture;
mod events;
mod record;
mod registry;
mod watcher;

pub use awaiter::Awaiter;
pub use capture::Capture;
pub use events::{Subscription, TaskEvent, TaskEventKind, MAX_PENDING_PROGRESS, PROGRESS_EVERY};
pub use record::{Notification, Outcome, OutputStats, Status, TaskRecord};
pub use registry::shutdown_all;
pub use watcher::Watcher;

use crate::error::{Error, Result};
use crate::exec::{EventSink, ExecEvent, Executor, LocalExecutor, LocalSettings, TaskSpec};
use crate::runtime::Cancel;
use crate::secrets::Redactor;
use crate::text::prefix;
use events::Hub;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Bytes of a task's output kept in memory rather than in a log file, when the task ends by
/// itself and its result shows them all (a disk block, and a file each, for a line of output
/// would cost more than they hold).
pub const LOG_IN_MEMORY: usize = 4096;

/// A wait's timeout passed before what it waited for happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;

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
            timeout: Duration::from_secs(300),
            output_limit: 50_000,
            preview_limit: 500,
            grace: local.grace,
            log_dir: None,
            log_limit: local.log_limit,
            executor: None,
            hide_secrets: false,
        }
    }
}

#[derive(Default)]
struct State {
    /// Task ids in start order.
    order: Vec<String>,
    tasks: HashMap<String, TaskRecord>,
    queue: VecDeque<Notification>,
    running: usize,
}

impl State {
    /// Nothing queued yet, but a task still runs: what the waits wait out.
    fn nothing_yet(&mut self) -> bool {
        self.queue.is_empty() && self.running > 0
    }
}

pub(crate) struct Inner {
    workdir: PathBuf,
    timeout: Duration,
    output_limit: usize,
    preview_limit: usize,
    executor: Arc<dyn Executor>,
    hide_secrets: bool,
    /// The executor was built here, so it is closed here.
    owns_executor: bool,
    state: Mutex<State>,
    changed: Condvar,
    /// Bumped with every `changed` notification, for async waits.
    version: tokio::sync::watch::Sender<u64>,
    hub: Hub,
    /// The process whose tasks these are (see [`Inner::lock`]).
    owner: AtomicU32,
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

    /// A handle for async waits on this manager; it keeps the manager's state alive, not its
    /// tasks (they are stopped when the manager is dropped, which ends every wait).
    pub fn awaiter(&self) -> Awaiter {
        Awaiter { inner: Arc::clone(&self.inner) }
    }

    /// Takes the oldest queued notification, waiting (at most `timeout`) while none is queued
    /// and a task still runs. `Ok(None)`: nothing is queued and nothing runs (the end).
    pub fn next_notification(
        &self,
        timeout: Option<Duration>,
    ) -> std::result::Result<Option<Notification>, TimedOut> {
        let mut state = self.inner.wait_while(timeout, State::nothing_yet);
        if state.nothing_yet() {
            return Err(TimedOut);
        }
        Ok(self.inner.take_one(&mut state))
    }

    /// The longest `kill` waits for a task to end.
    pub fn stop_bound(&self) -> Duration {
        self.inner.stop_bound()
    }

    /// Every change from now on, as [`TaskEvent`]s (events before the call are not replayed).
    pub fn subscribe(&self) -> Subscription {
        self.inner.hub.subscribe()
    }

    /// Starts `command` and returns the lesson's line `Background task {id} started: {cmd}`.
    pub fn run(&self, command: &str) -> String {
        started_line(&self.start(command), command)
    }

    /// [`Self::run`] in another directory than the manager's.
    pub fn run_in(&self, command: &str, workdir: &Path) -> String {
        started_line(&self.start_in(command, workdir), command)
    }

    /// Starts `command` now and returns its id. Never blocks on the command.
    pub fn start(&self, command: &str) -> String {
        self.inner.start(None, command, None).unwrap_or_default()
    }

    /// [`Self::start`] in another directory than the manager's (the lesson's module runs each
    /// task in its WORKDIR global as it is at that moment).
    pub fn start_in(&self, command: &str, workdir: &Path) -> String {
        self.inner.start(None, command, Some(workdir)).unwrap_or_default()
    }

    /// Starts `command` under an id the caller drew (a caller that keeps ids of its own, such
    /// as the Python `tasks` dict, avoids them so); `false`, and nothing started, if a task
    /// already has that id.
    pub fn start_as(&self, task_id: &str, command: &str, workdir: Option<&Path>) -> bool {
        self.inner.start(Some(task_id), command, workdir).is_some()
    }

    /// The lesson's `check`: one task's status and result, or a line per task.
    pub fn check(&self, task_id: Option<&str>) -> String {
        let state = self.inner.lock();
        match task_id.filter(|id| !id.is_empty()) {
            Some(id) => match state.tasks.get(id) {
                None => format!("Error: Unknown task {id}"),
                Some(t) => format!(
                    "[{}] {}\n{}",
                    t.status,
                    prefix(&t.command, 60),
                    t.result.as_deref().filter(|r| !r.is_empty()).unwrap_or("(running)")
                ),
            },
            None if state.order.is_empty() => "No background tasks.".to_string(),
            None => state
                .order
                .iter()
                .map(|id| {
                    let t = &state.tasks[id];
                    format!("{id}: [{}] {}", t.status, prefix(&t.command, 60))
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// Makes ready what the first task would wait for (the supervisor that starts tasks), so
    /// that it starts while the caller does something else; a task does this itself if not.
    pub fn prepare(&self) {
        self.inner.executor.prepare();
    }

    /// Everything queued, in completion order; the queue is left empty.
    pub fn drain_notifications(&self) -> Vec<Notification> {
        self.inner.drain(&mut self.inner.lock())
    }

    /// Blocks while the queue is empty and a task still runs (at most `timeout`), then drains.
    pub fn wait_for_notifications(&self, timeout: Option<Duration>) -> Vec<Notification> {
        let mut state = self.inner.wait_while(timeout, State::nothing_yet);
        self.inner.drain(&mut state)
    }

    /// Blocks (at most `timeout`) until a finished task is queued or nothing runs, leaving the
    /// queue as it is; true once that holds.
    pub fn wait_for_finished(&self, timeout: Option<Duration>) -> bool {
        !self.inner.wait_while(timeout, State::nothing_yet).nothing_yet()
    }

    /// Blocks (at most `timeout`) until no task runs; true once that holds.
    pub fn wait_idle(&self, timeout: Option<Duration>) -> bool {
        self.inner.wait_idle(timeout)
    }

    /// One slice of [`Self::wait_for_notifications`] for callers that must look up between
    /// slices (for Ctrl-C): `None` while there is nothing yet and a task still runs.
    pub fn poll_notifications(&self, wait: Duration) -> Option<Vec<Notification>> {
        let mut state = self.inner.wait_while(Some(wait), State::nothing_yet);
        if state.nothing_yet() {
            None
        } else {
            Some(self.inner.drain(&mut state))
        }
    }

    /// Blocks until the task has ended (at most `timeout`); returns its status then, or `None`
    /// for an unknown id.
    pub fn wait_task(&self, task_id: &str, timeout: Option<Duration>) -> Option<Status> {
        let state = self.inner.wait_while(timeout, |s| {
            s.tasks.get(task_id).is_some_and(|t| t.status == Status::Running)
        });
        state.tasks.get(task_id).map(|t| t.status)
    }

    /// Waits for the task to end (at most `timeout`) and returns `check(task_id)`.
    pub fn wait(&self, task_id: &str, timeout: Option<Duration>) -> String {
        self.wait_task(task_id, timeout);
        self.check(Some(task_id))
    }

    /// Stops a running task (SIGTERM to its group, SIGKILL after the grace period), waits for
    /// it to end, and returns `check(task_id)`.
    pub fn kill(&self, task_id: &str) -> String {
        match self.request_kill(task_id) {
            Err(message) => message,
            Ok(()) => {
                self.wait_task(task_id, Some(self.inner.stop_bound()));
                self.check(Some(task_id))
            }
        }
    }

    /// Asks a running task to stop without waiting. `Err` carries the text to show the user.
    pub fn request_kill(&self, task_id: &str) -> std::result::Result<(), String> {
        let state = self.inner.lock();
        match state.tasks.get(task_id) {
            None => Err(format!("Error: Unknown task {task_id}")),
            Some(t) if t.status != Status::Running => {
                Err(format!("Error: Task {task_id} is not running ({})", t.status))
            }
            Some(t) => {
                t.kill.iter().for_each(Cancel::cancel);
                Ok(())
            }
        }
    }

    /// How many notifications wait in the queue.
    pub fn queued(&self) -> usize {
        self.inner.lock().queue.len()
    }

    pub fn has_running_tasks(&self) -> bool {
        self.inner.lock().running > 0
    }

    pub fn running_count(&self) -> usize {
        self.inner.lock().running
    }

    /// Snapshots of every task, in start order.
    pub fn tasks(&self) -> Vec<TaskRecord> {
        let state = self.inner.lock();
        state.order.iter().map(|id| state.tasks[id].clone()).collect()
    }

    /// What changed since a caller last looked: every task from start number `from` on, and
    /// those of `open` (ids that ran then) that have ended since. Also the new `from`.
    pub fn changes(&self, from: usize, open: &[String]) -> (Vec<TaskRecord>, usize) {
        let state = self.inner.lock();
        let ended = open.iter().filter_map(|id| state.tasks.get(id.as_str()));
        let ended = ended.filter(|t| t.status != Status::Running);
        let new = state.order.iter().skip(from).map(|id| &state.tasks[id]);
        (ended.chain(new).cloned().collect(), state.order.len())
    }

    pub fn task(&self, task_id: &str) -> Option<TaskRecord> {
        self.inner.record(task_id)
    }

    /// Stops every running task and waits for them to end. Their notifications stay queued.
    pub fn shutdown(&self) {
        self.inner.request_kill_all();
        self.inner.wait_idle(Some(self.inner.stop_bound()));
    }
}

/// The lesson's answer to `run`.
pub fn started_line(id: &str, command: &str) -> String {
    format!("Background task {id} started: {}", prefix(command, 80))
}

impl Drop for BackgroundManager {
    fn drop(&mut self) {
        self.shutdown();
        // Now, not when the last task watcher lets go of `inner` a moment later.
        self.inner.close_executor();
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not make the queue unreadable: the data is still consistent,
        // since every update is a single step under the lock.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let me = std::process::id();
        let owner = self.owner.swap(me, Ordering::Relaxed);
        if owner != me {
            leave_to_parent(&mut state, owner);
        }
        state
    }

    /// Waits on the condition variable while `busy` holds, at most `timeout`.
    fn wait_while(
        &self,
        timeout: Option<Duration>,
        mut busy: impl FnMut(&mut State) -> bool,
    ) -> MutexGuard<'_, State> {
        let guard = self.lock();
        match timeout {
            None => self.changed.wait_while(guard, busy).unwrap_or_else(|p| p.into_inner()),
            Some(t) => {
                let deadline = Instant::now() + t;
                let mut guard = guard;
                while busy(&mut guard) {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    guard =
                        self.changed.wait_timeout(guard, left).unwrap_or_else(|p| p.into_inner()).0;
                }
                guard
            }
        }
    }

    /// How long stopping a task can take: the grace period, the SIGKILL, and the pipe cut-off.
    pub(crate) fn stop_bound(&self) -> Duration {
        self.executor.stop_bound()
    }

    pub(crate) fn wait_idle(&self, timeout: Option<Duration>) -> bool {
        self.wait_while(timeout, |s| s.running > 0).running == 0
    }

    /// A snapshot of one task's record.
    pub(crate) fn record(&self, task_id: &str) -> Option<TaskRecord> {
        self.lock().tasks.get(task_id).cloned()
    }

    pub(crate) fn request_kill_all(&self) {
        let state = self.lock();
        for t in state.tasks.values().filter(|t| t.status == Status::Running) {
            t.kill.iter().for_each(Cancel::cancel);
        }
    }

    fn start(
        self: &Arc<Self>,
        id: Option<&str>,
        command: &str,
        workdir: Option<&Path>,
    ) -> Option<String> {
        let (id, cancel) = {
            let mut state = self.lock();
            let id = match id {
                Some(id) if state.tasks.contains_key(id) => return None,
                Some(id) => id.to_string(),
                // The lesson's 8 hex characters; a draw that names a known task draws again,
                // so a record is never overwritten.
                None => loop {
                    let id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
                    if !state.tasks.contains_key(&id) {
                        break id;
                    }
                },
            };
            let record = TaskRecord::new(id.clone(), command.to_string());
            let cancel = record.kill.clone().unwrap_or_default();
            state.order.push(id.clone());
            state.tasks.insert(id.clone(), record);
            state.running += 1;
            self.hub.publish(&id, TaskEventKind::Queued { command: command.to_string() });
            (id, cancel)
        };
        let spec = TaskSpec {
            id: id.clone(),
            command: command.to_string(),
            workdir: workdir.unwrap_or(&self.workdir).to_path_buf(),
            timeout: self.timeout,
            keep_log: true,
            // Output this short is all in the result (it is never cut): no file for it.
            hold_output: self.output_limit.min(LOG_IN_MEMORY),
            hide_secrets: self.hide_secrets,
        };
        let sink = TaskSink {
            inner: Arc::clone(self),
            id: id.clone(),
            capture: None,
            last_progress: Instant::now(),
            done: false,
        };
        self.executor.launch(spec, cancel, Box::new(sink));
        Some(id)
    }

    /// Takes every queued notification, telling subscribers which were drained.
    fn drain(&self, state: &mut State) -> Vec<Notification> {
        let notes: Vec<Notification> = state.queue.drain(..).collect();
        for n in &notes {
            self.hub.publish(&n.task_id, TaskEventKind::Drained);
        }
        notes
    }

    /// The oldest queued notification, told to subscribers as drained.
    fn take_one(&self, state: &mut State) -> Option<Notification> {
        let note = state.queue.pop_front()?;
        self.hub.publish(&note.task_id, TaskEventKind::Drained);
        Some(note)
    }

    fn started(&self, id: &str, pid: u32) {
        let mut state = self.lock();
        if let Some(task) = state.tasks.get_mut(id) {
            task.pid = Some(pid);
        }
        self.hub.publish(id, TaskEventKind::Started { pid });
    }

    /// Records the end of a task and queues its one notification, in one step under the lock.
    /// `redactor` is the one the task's output went through (so its result came redacted).
    fn finish(&self, id: &str, status: Status, mut outcome: record::Outcome, redactor: &Redactor) {
        // Results of a run come redacted; an error text (a start that failed) may not.
        if let std::borrow::Cow::Owned(text) = redactor.redact(&outcome.result) {
            outcome.result = text;
        }
        let mut state = self.lock();
        let Some(task) = state.tasks.get_mut(id) else {
            return;
        };
        task.finish(status, outcome);
        let note = Notification {
            task_id: id.to_string(),
            status,
            command: prefix(&task.command, 80).to_string(),
            result: redactor
                .cut(task.result.as_deref().unwrap_or_default(), self.preview_limit)
                .into_owned(),
            exit_code: task.exit_code,
        };
        let exit_code = note.exit_code;
        state.queue.push_back(note);
        state.running -= 1;
        self.hub.publish(id, TaskEventKind::Finished { status, exit_code });
        drop(state);
        self.changed.notify_all();
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }
}

/// In a `fork()`ed child, the tasks that were running belong to the parent: they run there,
/// and no thread here watches them. They end here, without a notification (the parent gets
/// the real one), so nothing here waits for them forever; new tasks run as usual.
fn leave_to_parent(state: &mut State, parent: u32) {
    let message =
        format!("Error: started by process {parent}, which forked this one; it runs there");
    for task in state.tasks.values_mut().filter(|t| t.status == Status::Running) {
        let outcome = Outcome { result: message.clone(), ..Outcome::default() };
        task.finish(Status::Error, outcome);
        state.running -= 1;
    }
}

impl Inner {
    pub(crate) fn close_executor(&self) {
        if self.owns_executor {
            self.executor.close();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close_executor();
    }
}

/// Where a task's events go: its output into the capture, its start and end into the table.
struct TaskSink {
    inner: Arc<Inner>,
    id: String,
    /// Made at the first event, on the thread that runs the task: made by the caller of
    /// `start`, its 440 bytes came and went between records that stay, and left holes.
    capture: Option<Box<Capture>>,
    last_progress: Instant,
    done: bool,
}

impl TaskSink {
    fn capture(&mut self) -> &mut Capture {
        made(&mut self.capture, &self.inner)
    }

    fn finish(&mut self, (status, outcome): (Status, Outcome)) {
        self.done = true;
        let capture = made(&mut self.capture, &self.inner);
        self.inner.finish(&self.id, status, outcome, capture.redactor());
    }
}

/// The task's capture, made now if it was not yet.
fn made<'a>(capture: &'a mut Option<Box<Capture>>, inner: &Inner) -> &'a mut Capture {
    capture.get_or_insert_with(|| {
        let redactor = Redactor::when(inner.hide_secrets);
        Box::new(Capture::new(inner.output_limit, inner.timeout, redactor))
    })
}

impl EventSink for TaskSink {
    fn event(&mut self, event: ExecEvent<'_>) {
        if let ExecEvent::Started { pid } = event {
            return self.inner.started(&self.id, pid);
        }
        let output = matches!(event, ExecEvent::Output { .. });
        if let Some(end) = self.capture().take(event) {
            self.finish(end);
        } else if output && self.last_progress.elapsed() >= PROGRESS_EVERY {
            self.last_progress = Instant::now();
            let (stdout_bytes, stderr_bytes) = self.capture().bytes();
            let progress = TaskEventKind::Progress { stdout_bytes, stderr_bytes };
            self.inner.hub.publish(&self.id, progress);
        }
    }
}

impl Drop for TaskSink {
    /// An executor that stops without reporting an end (a panic) must still end the task, or
    /// its waiters would hang.
    fn drop(&mut self) {
        if !self.done {
            self.finish(Capture::failed("internal failure: the executor stopped reporting"));
        }
    }
}
