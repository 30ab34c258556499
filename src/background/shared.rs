//! A manager's shared state: the task table and the notification queue under one mutex, the
//! wait on them ([`Until`]), and the sink through which the executor reports each task. The
//! manager, its awaiters and the registry of live managers all hold it; it holds none of them.

use super::capture::{Capture, RunEnd};
use super::events::{Hub, TaskEventKind, PROGRESS_EVERY};
use super::live::LiveOutput;
use super::record::{
    Details, Finished, FinishedSince, Notification, OutputStats, Status, TaskRecord,
};
use super::retention::{remove_files, Kept, Retention};
use super::{lesson, production};
use crate::exec::{Ended, EventSink, ExecEvent, Executor, OutputLog, TaskSpec};
use crate::runtime::{forked_from, Cancel};
use crate::secrets::Redactor;
use crate::store::{Store, TaskEnd};
use crate::text::prefix;
use std::collections::{BTreeMap, HashMap, VecDeque};
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

#[derive(Default)]
pub(super) struct State {
    /// Task ids by start number, in start order (those let go are gone from it).
    pub(super) order: BTreeMap<u64, String>,
    /// Tasks started so far: the next one's start number.
    pub(super) started: u64,
    pub(super) tasks: HashMap<String, TaskRecord>,
    pub(super) queue: VecDeque<Notification>,
    /// Tasks not yet ended: waiting for a slot, or holding one.
    pub(super) running: usize,
    /// Tasks holding a slot: handed to the executor, and not yet reported ended (which the
    /// local executor reports once the process group is gone, not when the shell exits).
    pub(super) slots: usize,
    /// Tasks waiting for a slot, first in line first, with what starts them.
    pub(super) waiting: VecDeque<TaskSpec>,
    /// What is kept of finished tasks ([`Retention`]).
    pub(super) kept: Kept,
    /// The state file, if the manager keeps one: every write to it is made under this lock,
    /// so the file and the table change in the same order.
    pub(super) store: Option<Store>,
}

impl State {
    /// A task has just finished: retention counts it, and may let older ones go. Returns the
    /// log files to remove.
    pub(super) fn ended(&mut self, id: &str, delivered: bool, keep: &Retention) -> Vec<PathBuf> {
        self.kept.ended((&mut self.tasks, &mut self.order), id, delivered, keep)
    }

    /// The state file drops the rows of the tasks retention let go.
    pub(super) fn flush_gone(&mut self) {
        if let (Some(store), Some(gone)) = (&mut self.store, &mut self.kept.gone) {
            if !gone.is_empty() {
                store.let_go(gone);
                gone.clear();
            }
        }
    }

    /// The oldest `count` queued notifications were handed over: so recorded.
    pub(super) fn handed_over(&mut self, count: usize) {
        if let Some(store) = &mut self.store {
            store.delivered(count);
        }
    }

    /// A task's notification was taken.
    pub(super) fn delivered(&mut self, id: &str) {
        self.kept.delivered(&mut self.tasks, id);
    }

    /// Lets go what is past the limits; returns the log files to remove.
    pub(super) fn retain(&mut self, keep: &Retention) -> Vec<PathBuf> {
        self.kept.retain((&mut self.tasks, &mut self.order), keep)
    }

    /// The notifications of the tasks that finished after `cursor` (finish numbers from
    /// `cursor` on), oldest first, and the cursor to pass next.
    pub(super) fn finished_since(&self, cursor: u64) -> FinishedSince {
        let next = self.kept.finish_numbers();
        let mut ended: Vec<(u64, &Notification)> = self
            .tasks
            .values()
            .filter_map(|t| Some((t.end_no.filter(|no| *no >= cursor)?, t.notification.as_ref()?)))
            .collect();
        ended.sort_unstable_by_key(|(no, _)| *no);
        let waiting = self.waiting.len();
        FinishedSince {
            missing: next.saturating_sub(cursor) - ended.len() as u64,
            notes: ended.into_iter().map(|(_, note)| note.clone()).collect(),
            cursor: next,
            running: self.running - waiting,
            waiting,
        }
    }

    /// Nothing queued yet, but a task still runs: what the waits wait out.
    pub(super) fn nothing_yet(&self) -> bool {
        self.queue.is_empty() && self.running > 0
    }

    /// Where a waiting task is in line (1 = next), and how many tasks hold a slot.
    pub(super) fn place(&self, id: &str) -> Option<(usize, usize)> {
        let at = self.waiting.iter().position(|spec| spec.id == id)?;
        Some((at + 1, self.slots))
    }
}

pub(crate) struct Inner {
    pub(super) workdir: PathBuf,
    pub(super) timeout: Duration,
    pub(super) output_limit: usize,
    pub(super) preview_limit: usize,
    pub(super) executor: Arc<dyn Executor>,
    pub(super) hide_secrets: bool,
    /// At most this many tasks hold a slot (run) at once; `None`: no limit.
    pub(super) max_running: Option<usize>,
    /// What is kept of finished tasks.
    pub(super) retention: Retention,
    /// The executor was built here, so it is closed here.
    pub(super) owns_executor: bool,
    pub(super) state: Mutex<State>,
    pub(super) changed: Condvar,
    /// Bumped with every `changed` notification, for async waits.
    pub(super) version: tokio::sync::watch::Sender<u64>,
    pub(super) hub: Hub,
    /// The process whose tasks these are (see [`Inner::lock`]).
    pub(super) owner: AtomicU32,
    /// Reads waiting for a task's log to arrive; a log's arrival wakes the waits only then.
    pub(super) log_waiters: std::sync::atomic::AtomicUsize,
    /// This manager's owner id in its state file, if it keeps one.
    pub(super) owner_id: Option<String>,
}

/// Where and as what [`BackgroundManager::start_with`](super::BackgroundManager::start_with) starts a task.
#[derive(Clone, Copy, Debug, Default)]
pub struct StartAt<'a> {
    /// An id the caller drew (one that keeps ids of its own, such as the Python `tasks` dict,
    /// avoids them so); `None` draws the lesson's 8 hex characters.
    pub id: Option<&'a str>,
    /// The directory it runs in; `None` means the manager's (the lesson's module runs each
    /// task in its WORKDIR global as it is at that moment).
    pub workdir: Option<&'a Path>,
    /// Its own timeout, counted from its start; `None` means the manager's.
    pub timeout: Option<Duration>,
}

/// A task just submitted: its id, and where it waits if the cap made it wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submitted {
    pub id: String,
    /// `Some((place in line, tasks running))` if it waits for a slot; `None`: it started.
    pub waiting: Option<(usize, usize)>,
}

/// What [`BackgroundManager::wait`](super::BackgroundManager::wait) (and [`Awaiter::wait`](super::Awaiter::wait)) waits for.
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
    /// A task finished after the cursor (see [`FinishedSince`]), or nothing runs; nothing is
    /// taken from the queue.
    FinishedSince(u64),
}

impl Until<'_> {
    pub(super) fn holds(&self, state: &State) -> bool {
        match self {
            Until::Ended(id) => state.tasks.get(*id).is_none_or(|t| !t.is_running()),
            Until::Finished | Until::Next => !state.nothing_yet(),
            Until::Idle => state.running == 0,
            Until::FinishedSince(cursor) => {
                state.kept.finish_numbers() > *cursor || state.running == 0
            }
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
    /// What changed since a caller last looked: every task from start number `from` on,
    /// those of `open` (ids that ran then) that have ended since, and those of `waiting` (ids
    /// that waited for a slot then) that no longer wait.
    Since {
        from: usize,
        open: &'a [String],
        waiting: &'a [String],
    },
}

/// The manager at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub tasks: Vec<TaskRecord>,
    /// Tasks started so far (the next one's start number).
    pub started: usize,
    /// Tasks not yet ended: those in `waiting` and those that hold a slot.
    pub running: usize,
    /// Tasks waiting in line for a slot (under the cap).
    pub waiting: usize,
    /// Notifications waiting in the queue.
    pub queued: usize,
}

impl Inner {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not make the queue unreadable: the data is still consistent,
        // since every update is a single step under the lock.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let owner = self.owner.load(Ordering::Relaxed);
        if forked_from(owner) {
            self.owner.store(std::process::id(), Ordering::Relaxed);
            // The state file and the owner's lock are the parent's.
            if let Some(store) = state.store.take() {
                store.abandon();
            }
            leave_to_parent(&mut state, owner);
        }
        state
    }

    /// Waits on the condition variable while `busy` holds, at most `timeout`.
    pub(super) fn wait_while(
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
    pub(super) fn woke(
        &self,
        state: &mut State,
        until: &Until<'_>,
    ) -> Option<Option<Notification>> {
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
            Records::All => state.order.values().map(|id| state.tasks[id].clone()).collect(),
            Records::Since { from, open, waiting } => {
                let ended = open.iter().filter_map(|id| state.tasks.get(id.as_str()));
                let ended = ended.filter(|t| !t.is_running());
                let moved = waiting.iter().filter_map(|id| state.tasks.get(id.as_str()));
                let moved = moved.filter(|t| !t.is_waiting());
                let new = state.order.range(from as u64..).map(|(_, id)| &state.tasks[id]);
                ended.chain(moved).chain(new).cloned().collect()
            }
        };
        Snapshot {
            tasks,
            started: state.started as usize,
            running: state.running,
            waiting: state.waiting.len(),
            queued: state.queue.len(),
        }
    }

    /// Asks a running task to stop without waiting. `Err` carries the text to show the user.
    pub(crate) fn request_kill(&self, task_id: &str) -> std::result::Result<(), String> {
        let mut state = self.lock();
        if state.tasks.get(task_id).is_some_and(TaskRecord::is_waiting) {
            self.never_started(&mut state, task_id);
            drop(state);
            self.woken();
            return Ok(());
        }
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
        let mut state = self.lock();
        // The queue first, so that no slot the others free starts one of them.
        let waiting: Vec<String> = state.waiting.iter().map(|spec| spec.id.clone()).collect();
        for id in &waiting {
            self.never_started(&mut state, id);
        }
        state.tasks.values().filter_map(TaskRecord::kill).for_each(Cancel::cancel);
        drop(state);
        if !waiting.is_empty() {
            self.woken();
        }
    }

    /// Takes a waiting task out of the queue: it ends `killed`, never started, with its one
    /// notification. The caller wakes the waits once the lock is let go.
    fn never_started(&self, state: &mut State, id: &str) {
        state.waiting.retain(|spec| spec.id != id);
        let result = production::NEVER_STARTED.to_string();
        let preview = prefix(&result, self.preview_limit).to_string();
        let done = Finished {
            status: Status::Killed,
            result,
            exit_code: None,
            ended: Instant::now(),
            pid: None,
            output: OutputStats::default(),
        };
        // Nothing ran, so no log: nothing to remove, whatever the retention lets go.
        remove_files(self.queue_end(state, id, done, preview).unwrap_or_default());
    }

    /// Records how a task ended and queues its one notification (`preview`: the result as the
    /// notification carries it), under the lock; returns the log files the retention let go,
    /// or `None` for a task the table does not know.
    fn queue_end(
        &self,
        state: &mut State,
        id: &str,
        done: Finished,
        preview: String,
    ) -> Option<Vec<PathBuf>> {
        let task = state.tasks.get_mut(id)?;
        let (status, exit_code) = (done.status, done.exit_code);
        // The tail, where the head does not show the end: the preview cut the result, or the
        // result is a message (killed, timed out) and the output is only in the log.
        let head_is_all = preview.len() == done.result.len() && status == Status::Completed;
        let live = task.live.as_ref();
        let tail = live.filter(|_| !head_is_all).map(|l| l.tail_beyond(&preview));
        let log_path =
            (done.output.log_path.clone()).or_else(|| live.and_then(|l| l.log.stats().log_path));
        task.finish(done);
        let details =
            Details { duration: task.elapsed(), log_path, tail: tail.unwrap_or_default() };
        let note = Notification {
            task_id: id.to_string(),
            status,
            command: prefix(&task.command, 80).to_string(),
            result: preview,
            exit_code,
            details,
        };
        task.notification = Some(note.clone());
        if let Some(store) = &mut state.store {
            // Committed before the notification is queued or any wait woken.
            let end = TaskEnd {
                status: status.as_str(),
                exit_code,
                result: task.result().unwrap_or_default(),
                log_path: note.details.log_path.as_deref(),
                preview: &note.result,
                command: &note.command,
                duration: note.details.duration.as_secs_f64(),
                tail: &note.details.tail,
            };
            store.ended(id, &end);
        }
        state.queue.push_back(note);
        state.running -= 1;
        let doomed = state.ended(id, false, &self.retention);
        state.flush_gone();
        self.hub.publish(id, TaskEventKind::Finished { status, exit_code });
        Some(doomed)
    }

    /// Tells every wait that the table changed.
    fn woken(&self) {
        self.changed.notify_all();
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Starts a waiting task now, past the cap. `Err` carries the text to show the user.
    pub(crate) fn start_now(self: &Arc<Self>, task_id: &str) -> std::result::Result<(), String> {
        let mut state = self.lock();
        let Some(task) = state.tasks.get(task_id) else {
            return Err(lesson::unknown_task(task_id));
        };
        if !task.is_waiting() {
            return Err(production::not_queued(task_id, task.status().as_str()));
        }
        let at = state.waiting.iter().position(|spec| spec.id == task_id);
        let Some(spec) = at.and_then(|at| state.waiting.remove(at)) else {
            return Err(production::not_queued(task_id, "queued"));
        };
        let cancel = self.give_slot(&mut state, task_id);
        drop(state);
        self.launch(spec, cancel);
        Ok(())
    }

    /// Lets a finished task whose notification was taken go now, with its log file if the
    /// manager removes them. `Err` carries the text to show the user.
    pub(crate) fn forget(&self, task_id: &str) -> std::result::Result<(), String> {
        let mut state = self.lock();
        let state = &mut *state;
        let doomed = state.kept.forget((&mut state.tasks, &mut state.order), task_id)?;
        state.flush_gone();
        remove_files(doomed.into_iter().collect());
        Ok(())
    }

    /// The ids let go since the last call (the first call starts the list).
    pub(crate) fn take_let_go(&self) -> Vec<String> {
        self.lock().kept.take_let_go()
    }

    /// Where a waiting task is in line and how many tasks run; `None` if it does not wait.
    pub(crate) fn place(&self, task_id: &str) -> Option<(usize, usize)> {
        self.lock().place(task_id)
    }

    /// Marks a task as holding a slot; what stops it goes to the executor with it.
    fn give_slot(&self, state: &mut State, id: &str) -> Cancel {
        state.slots += 1;
        if let Some(store) = &mut state.store {
            store.slotted(id);
        }
        let task = state.tasks.get_mut(id).expect("a waiting task has a record");
        task.slotted();
        task.kill().cloned().unwrap_or_default()
    }

    /// The tasks first in line, while a slot is free, each with what stops it: for the
    /// caller to launch once the lock is let go.
    fn fill_slots(&self, state: &mut State) -> Vec<(TaskSpec, Cancel)> {
        let mut ready = Vec::new();
        while self.max_running.is_none_or(|cap| state.slots < cap) {
            let Some(spec) = state.waiting.pop_front() else { break };
            let cancel = self.give_slot(state, &spec.id);
            ready.push((spec, cancel));
        }
        ready
    }

    /// Submits a task: it starts now if a slot is free, else waits in line for one.
    pub(super) fn start(
        self: &Arc<Self>,
        id: Option<&str>,
        command: &str,
        at: StartAt<'_>,
    ) -> Option<Submitted> {
        let timeout = at.timeout.unwrap_or(self.timeout);
        let mut state = self.lock();
        let id = match id {
            Some(id) if state.tasks.contains_key(id) => return None,
            Some(id) => id.to_string(),
            None => lesson::new_id_avoiding(|id| state.tasks.contains_key(id)),
        };
        let spec = TaskSpec {
            id: id.clone(),
            command: command.to_string(),
            workdir: at.workdir.unwrap_or(&self.workdir).to_path_buf(),
            timeout,
            keep_log: true,
            // Output this short is all in the result (it is never cut): no file for it.
            hold_output: self.output_limit.min(LOG_IN_MEMORY),
            hide_secrets: self.hide_secrets,
        };
        let wait = self.max_running.is_some_and(|cap| state.slots >= cap);
        let no = state.started;
        state.started += 1;
        let record = TaskRecord::new(id.clone(), command.to_string(), timeout, wait, no);
        state.order.insert(no, id.clone());
        state.tasks.insert(id.clone(), record);
        state.running += 1;
        if let Some(store) = &mut state.store {
            store.submitted(&id, command, &spec.workdir, wait);
        }
        if wait {
            state.waiting.push_back(spec);
            let place = state.waiting.len();
            let queued = TaskEventKind::Queued { command: command.to_string(), place: Some(place) };
            self.hub.publish(&id, queued);
            return Some(Submitted { id, waiting: Some((place, state.slots)) });
        }
        state.slots += 1;
        let cancel = state.tasks[&id].kill().cloned().unwrap_or_default();
        self.hub.publish(&id, TaskEventKind::Queued { command: command.to_string(), place: None });
        drop(state);
        self.launch(spec, cancel);
        Some(Submitted { id, waiting: None })
    }

    /// Hands a task that holds a slot to the executor (never under the lock: an executor may
    /// report at once).
    fn launch(self: &Arc<Self>, spec: TaskSpec, cancel: Cancel) {
        let sink = TaskSink {
            inner: Arc::clone(self),
            id: spec.id.clone(),
            timeout: spec.timeout,
            capture: None,
            last_progress: Instant::now(),
            done: false,
            live: None,
        };
        self.executor.launch(spec, cancel, Box::new(sink));
    }

    /// Takes every queued notification, telling subscribers which were drained.
    pub(super) fn drain(&self, state: &mut State) -> Vec<Notification> {
        let notes: Vec<Notification> = state.queue.drain(..).collect();
        state.handed_over(notes.len());
        for n in &notes {
            state.delivered(&n.task_id);
            self.hub.publish(&n.task_id, TaskEventKind::Drained);
        }
        // Few files at a time (as many tasks as finished since the last drain), so they go
        // under the lock.
        remove_files(state.retain(&self.retention));
        state.flush_gone();
        notes
    }

    /// The oldest queued notification, told to subscribers as drained.
    pub(super) fn take_one(&self, state: &mut State) -> Option<Notification> {
        let note = state.queue.pop_front()?;
        state.handed_over(1);
        state.delivered(&note.task_id);
        self.hub.publish(&note.task_id, TaskEventKind::Drained);
        remove_files(state.retain(&self.retention));
        state.flush_gone();
        Some(note)
    }

    pub(super) fn started(&self, id: &str, pid: u32) {
        let mut state = self.lock();
        let mut waited = None;
        if let Some(store) = &mut state.store {
            store.started(id, pid);
        }
        if let Some(task) = state.tasks.get_mut(id) {
            task.started(pid);
            waited = task.waited_for_slot.then(|| task.waited().as_secs_f64());
        }
        self.hub.publish(id, TaskEventKind::Started { pid, waited });
    }

    /// Records the end of a task and queues its one notification, in one step under the lock.
    /// `redactor` is the one the task's output went through (so its result came redacted).
    pub(super) fn finish(
        self: &Arc<Self>,
        id: &str,
        end: RunEnd,
        redactor: &Redactor,
        timeout: Duration,
    ) {
        let mut done = conclude(end, timeout);
        // Results of a run come redacted; an error text (a start that failed) may not.
        if let std::borrow::Cow::Owned(text) = redactor.redact(&done.result) {
            done.result = text;
        }
        let preview = redactor.cut(&done.result, self.preview_limit).into_owned();
        let mut state = self.lock();
        let Some(doomed) = self.queue_end(&mut state, id, done, preview) else {
            return;
        };
        // The executor reports the end once the group is gone: its slot is free now.
        state.slots -= 1;
        let ready = self.fill_slots(&mut state);
        drop(state);
        remove_files(doomed);
        self.woken();
        for (spec, cancel) in ready {
            self.launch(spec, cancel);
        }
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
    let mut left = Vec::new();
    for task in state.tasks.values_mut().filter(|t| t.is_running()) {
        task.finish(conclude(RunEnd::Failed(message.clone()), Duration::ZERO));
        state.running -= 1;
        left.push(task.id.clone());
    }
    // They have no notification here: counted as delivered, under no limit (no log either).
    for id in left {
        state.ended(&id, true, &Retention::default());
    }
    // Those waiting for a slot ended above too; the parent starts them.
    state.waiting.clear();
    state.slots = 0;
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
    /// The task's timeout, for the result that names it.
    timeout: Duration,
    /// Made at the first event, on the thread that runs the task: made by the caller of
    /// `start`, its 440 bytes came and went between records that stay, and left holes.
    capture: Option<Box<Capture>>,
    last_progress: Instant,
    done: bool,
    /// Shared with the task's record once the executor handed over the log.
    live: Option<Arc<LiveOutput>>,
}

impl TaskSink {
    pub(super) fn capture(&mut self) -> &mut Capture {
        made(&mut self.capture, &self.inner)
    }

    pub(super) fn finish(&mut self, end: RunEnd) {
        self.done = true;
        let capture = made(&mut self.capture, &self.inner);
        self.inner.finish(&self.id, end, capture.redactor(), self.timeout);
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
        } else if output {
            let counted = self.capture().bytes();
            if let Some(live) = &self.live {
                live.counted(counted);
            }
            if self.last_progress.elapsed() >= PROGRESS_EVERY {
                self.last_progress = Instant::now();
                let (stdout_bytes, stderr_bytes) = counted;
                let progress = TaskEventKind::Progress { stdout_bytes, stderr_bytes };
                self.inner.hub.publish(&self.id, progress);
            }
        }
    }

    fn log(&mut self, log: OutputLog) {
        let live = Arc::new(LiveOutput::new(log));
        if let Some(task) = self.inner.lock().tasks.get_mut(&self.id) {
            task.live = Some(Arc::clone(&live));
        }
        self.live = Some(live);
        // A read that began before the task had a log waits for this (set under the lock, so
        // a read counted after this look sees the log before it would wait).
        if self.inner.log_waiters.load(Ordering::SeqCst) > 0 {
            self.inner.woken();
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
