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
mod watcher;

pub use awaiter::Awaiter;
pub use capture::{Capture, RunEnd};
pub use events::{Subscription, TaskEvent, TaskEventKind, MAX_PENDING_PROGRESS, PROGRESS_EVERY};
pub use lesson::started_line;
pub use record::{Finished, Notification, OutputStats, Status, TaskRecord, TaskState};
pub use registry::shutdown_all;
pub use watcher::Watcher;

use crate::error::{Error, Result};
use crate::exec::{Ended, EventSink, ExecEvent, Executor, LocalExecutor, LocalSettings, TaskSpec};
use crate::runtime::{forked_from, Cancel};
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
    fn nothing_yet(&self) -> bool {
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

/// Where and as what [`BackgroundManager::start_with`] starts a task.
#[derive(Clone, Copy, Debug, Default)]
pub struct StartAt<'a> {
    /// An id the caller drew (one that keeps ids of its own, such as the Python `tasks` dict,
    /// avoids them so); `None` draws the lesson's 8 hex characters.
    pub id: Option<&'a str>,
    /// The directory it runs in; `None` means the manager's (the lesson's module runs each
    /// task in its WORKDIR global as it is at that moment).
    pub workdir: Option<&'a Path>,
}

/// What [`BackgroundManager::wait`] (and [`Awaiter::wait`]) waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until<'a> {
    /// The task has ended (or the manager does not know it).
    Ended(&'a str),
    /// A finished task's notification is queued, or nothing runs; the queue is left as is.
    Finished,
    /// No task runs.
    Idle,
    /// As `Finished`, then takes the oldest notification (`None`: nothing queued, nothing
    /// runs: the end).
    Next,
}

impl Until<'_> {
    fn holds(&self, state: &State) -> bool {
        match self {
            Until::Ended(id) => state.tasks.get(*id).is_none_or(|t| !t.is_running()),
            Until::Finished | Until::Next => !state.nothing_yet(),
            Until::Idle => state.running == 0,
        }
    }
}

/// Which records a [`Snapshot`] carries.
#[derive(Clone, Copy, Debug)]
pub enum Records<'a> {
    /// Only the counts.
    None,
    One(&'a str),
    /// Every task, in start order.
    All,
    /// What changed since a caller last looked: every task from start number `from` on, and
    /// those of `open` (ids that ran then) that have ended since.
    Since {
        from: usize,
        open: &'a [String],
    },
}

/// The manager at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub tasks: Vec<TaskRecord>,
    /// Tasks started so far (the next one's start number).
    pub started: usize,
    pub running: usize,
    /// Notifications waiting in the queue.
    pub queued: usize,
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
        let owner = self.owner.load(Ordering::Relaxed);
        if forked_from(owner) {
            self.owner.store(std::process::id(), Ordering::Relaxed);
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

    /// What a wait for `until` gives once it is woken: `None` if `until` does not hold yet,
    /// else the notification [`Until::Next`] takes. The sync and the async waits both end here.
    fn woke(&self, state: &mut State, until: &Until<'_>) -> Option<Option<Notification>> {
        if !until.holds(state) {
            return None;
        }
        Some(match until {
            Until::Next => self.take_one(state),
            _ => None,
        })
    }

    /// How long stopping a task can take: the grace period, the SIGKILL, and the pipe cut-off.
    pub(crate) fn stop_bound(&self) -> Duration {
        self.executor.stop_bound()
    }

    pub(crate) fn snapshot(&self, which: Records<'_>) -> Snapshot {
        let state = self.lock();
        let tasks = match which {
            Records::None => Vec::new(),
            Records::One(id) => state.tasks.get(id).cloned().into_iter().collect(),
            Records::All => state.order.iter().map(|id| state.tasks[id].clone()).collect(),
            Records::Since { from, open } => {
                let ended = open.iter().filter_map(|id| state.tasks.get(id.as_str()));
                let ended = ended.filter(|t| !t.is_running());
                let new = state.order.iter().skip(from).map(|id| &state.tasks[id]);
                ended.chain(new).cloned().collect()
            }
        };
        Snapshot {
            tasks,
            started: state.order.len(),
            running: state.running,
            queued: state.queue.len(),
        }
    }

    /// Asks a running task to stop without waiting. `Err` carries the text to show the user.
    pub(crate) fn request_kill(&self, task_id: &str) -> std::result::Result<(), String> {
        let state = self.lock();
        match state.tasks.get(task_id) {
            None => Err(lesson::unknown_task(task_id)),
            Some(t) => match t.kill() {
                None => Err(lesson::not_running(task_id, t.status().as_str())),
                Some(kill) => {
                    kill.cancel();
                    Ok(())
                }
            },
        }
    }

    pub(crate) fn request_kill_all(&self) {
        let state = self.lock();
        state.tasks.values().filter_map(TaskRecord::kill).for_each(Cancel::cancel);
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
                None => lesson::new_id_avoiding(|id| state.tasks.contains_key(id)),
            };
            let record = TaskRecord::new(id.clone(), command.to_string());
            let cancel = record.kill().cloned().unwrap_or_default();
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
            task.started(pid);
        }
        self.hub.publish(id, TaskEventKind::Started { pid });
    }

    /// Records the end of a task and queues its one notification, in one step under the lock.
    /// `redactor` is the one the task's output went through (so its result came redacted).
    fn finish(&self, id: &str, end: RunEnd, redactor: &Redactor) {
        let mut done = conclude(end, self.timeout);
        // Results of a run come redacted; an error text (a start that failed) may not.
        if let std::borrow::Cow::Owned(text) = redactor.redact(&done.result) {
            done.result = text;
        }
        let mut state = self.lock();
        let Some(task) = state.tasks.get_mut(id) else {
            return;
        };
        let (status, exit_code) = (done.status, done.exit_code);
        let note = Notification {
            task_id: id.to_string(),
            status,
            command: prefix(&task.command, 80).to_string(),
            result: redactor.cut(&done.result, self.preview_limit).into_owned(),
            exit_code,
        };
        task.finish(done);
        state.queue.push_back(note);
        state.running -= 1;
        self.hub.publish(id, TaskEventKind::Finished { status, exit_code });
        drop(state);
        self.changed.notify_all();
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }
}

/// The lesson's status and result for how a run ended: the output (`(no output)` if none),
/// or the message that says why there is none. The bash tool's answer is this result too.
pub fn conclude(end: RunEnd, timeout: Duration) -> Finished {
    let (status, result, exit_code, output) = match end {
        RunEnd::Failed(message) => {
            (Status::Error, format!("Error: {message}"), None, OutputStats::default())
        }
        RunEnd::Ran { ended, code, text, output } => {
            let (status, result) = match ended {
                Ended::TimedOut => {
                    (Status::Timeout, format!("Error: Timeout ({}s)", seconds(timeout)))
                }
                Ended::Cancelled => (Status::Killed, "Error: Killed".to_string()),
                Ended::Lost => (Status::Error, LOST.to_string()),
                Ended::Exited if text.is_empty() => (Status::Completed, "(no output)".to_string()),
                Ended::Exited => (Status::Completed, text),
            };
            (status, result, code, output)
        }
    };
    Finished { status, result, exit_code, ended: Instant::now(), pid: None, output }
}

/// The result of a task ended because bgagent's supervisor died while it ran.
pub const LOST: &str = "Error: bgagent's supervisor died while this task ran (a task may have \
                        killed it), so the task was ended and its exit status is unknown; its \
                        output so far is in its log. A new supervisor runs later tasks.";

fn seconds(d: Duration) -> String {
    // 300.0 prints as "300" and 0.5 as "0.5", as the lesson's f-string would print them.
    format!("{}", d.as_secs_f64())
}

/// In a `fork()`ed child, the tasks that were running belong to the parent: they run there,
/// and no thread here watches them. They end here, without a notification (the parent gets
/// the real one), so nothing here waits for them forever; new tasks run as usual.
fn leave_to_parent(state: &mut State, parent: u32) {
    let message = format!("started by process {parent}, which forked this one; it runs there");
    for task in state.tasks.values_mut().filter(|t| t.is_running()) {
        task.finish(conclude(RunEnd::Failed(message.clone()), Duration::ZERO));
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

    fn finish(&mut self, end: RunEnd) {
        self.done = true;
        let capture = made(&mut self.capture, &self.inner);
        self.inner.finish(&self.id, end, capture.redactor());
    }
}

/// The task's capture, made now if it was not yet.
fn made<'a>(capture: &'a mut Option<Box<Capture>>, inner: &Inner) -> &'a mut Capture {
    capture.get_or_insert_with(|| {
        let redactor = Redactor::when(inner.hide_secrets);
        Box::new(Capture::new(inner.output_limit, redactor))
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
            self.finish(RunEnd::Failed("internal failure: the executor stopped reporting".into()));
        }
    }
}
