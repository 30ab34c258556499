//! `bgagent.BackgroundManager` for Python.

use super::aio::awaitable;
use super::bad_seconds;
use super::wait_interruptibly;
use bgagent::background::{
    lesson, production, BackgroundManager, Details, Notification, Options, Records, StartAt,
    Subscription, TimedOut, Until,
};
use bgagent::defaults;
use bgagent::error::Error;
use bgagent::runtime::Seconds;
use pyo3::exceptions::{PyKeyError, PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde::Serialize;
use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

fn to_py_err(e: Error) -> PyErr {
    Python::attach(|py| super::errors::core_error(py, &e))
}

/// A core value as Python sees it: its serde form (dicts, lists, str, int, None).
fn to_py<'py>(py: Python<'py>, value: &impl Serialize) -> PyResult<Bound<'py, PyAny>> {
    Ok(pythonize::pythonize(py, value)?)
}

/// A notification as Python gets it: the lesson's keys and the exit code, and production's
/// `duration`, `log_path` and `tail` unless the manager keeps the lesson's form.
#[derive(Serialize)]
struct Note {
    #[serde(flatten)]
    note: Notification,
    #[serde(flatten)]
    details: Option<Details>,
}

impl Note {
    fn shaped(mut note: Notification, details: bool) -> Note {
        let details = details.then(|| std::mem::take(&mut note.details));
        Note { note, details }
    }

    fn all(notes: Vec<Notification>, details: bool) -> Vec<Note> {
        notes.into_iter().map(|n| Note::shaped(n, details)).collect()
    }
}

/// What a wait hands to Python, built once the GIL is held (also from a future).
enum Woke {
    /// `Until::Next`: the notification taken, or None (nothing queued, nothing running).
    Note(Option<Note>),
    /// The other conditions: whether it held before the timeout.
    Held(bool),
    /// `wait_for_notifications`: what was drained.
    Notes(Vec<Note>),
}

impl<'py> IntoPyObject<'py> for Woke {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Woke::Note(note) => to_py(py, &note),
            Woke::Held(held) => Ok(pyo3::types::PyBool::new(py, held).to_owned().into_any()),
            Woke::Notes(notes) => to_py(py, &notes),
        }
    }
}

/// `fut`, bounded by `timeout` seconds if given: `None` when the time ran out first.
async fn within<T>(limit: Option<Duration>, fut: impl Future<Output = T>) -> Option<T> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, fut).await.ok(),
        None => Some(fut.await),
    }
}

/// A `timeout` argument in seconds (None: no limit), checked.
fn limit(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    Ok(Seconds::limit("timeout", timeout).map_err(bad_seconds)?.map(Seconds::duration))
}

fn no_notification(limit: Option<Duration>) -> PyErr {
    let seconds = limit.map_or(0.0, |l| l.as_secs_f64());
    PyTimeoutError::new_err(format!("no notification within {seconds} s"))
}

/// Python's `until` (with `task_id` for "ended") as the core's.
fn until<'a>(until: &str, task_id: Option<&'a str>) -> PyResult<Until<'a>> {
    match (until, task_id) {
        ("ended", Some(id)) => Ok(Until::Ended(id)),
        ("ended", None) => Err(PyValueError::new_err("until='ended' needs a task_id")),
        ("finished", None) => Ok(Until::Finished),
        ("idle", None) => Ok(Until::Idle),
        ("next", None) => Ok(Until::Next),
        ("finished" | "idle" | "next", Some(_)) => {
            Err(PyValueError::new_err(format!("until={until:?} takes no task_id")))
        }
        _ => Err(PyValueError::new_err(format!(
            "until must be 'ended', 'finished', 'idle' or 'next', not {until:?}"
        ))),
    }
}

/// What a wait for `until` gives Python: for "next" the notification (TimeoutError when the
/// time ran out), else whether it held.
fn woke(
    until: Until<'_>,
    got: Result<Option<Notification>, TimedOut>,
    limit: Option<Duration>,
    details: bool,
) -> PyResult<Woke> {
    match (until, got) {
        (Until::Next, Ok(note)) => Ok(Woke::Note(note.map(|n| Note::shaped(n, details)))),
        (Until::Next, Err(TimedOut)) => Err(no_notification(limit)),
        (_, got) => Ok(Woke::Held(got.is_ok())),
    }
}

/// The core of `bgagent.BackgroundManager` (a Python class that wraps it and keeps the
/// `tasks` dict): runs shell commands in the background, queues one notification per task.
#[pyclass(frozen, name = "BackgroundManager", module = "bgagent._core")]
pub struct PyBackgroundManager {
    /// None only while it is dropped.
    manager: Option<BackgroundManager>,
    seen: Mutex<Seen>,
    /// Notifications carry production's details (see [`Note`]).
    details: bool,
}

/// What the last `refresh` saw: how many tasks had started, which of them still ran, and
/// which waited for a slot.
#[derive(Default)]
struct Seen {
    from: usize,
    open: Vec<String>,
    waiting: Vec<String>,
}

impl PyBackgroundManager {
    pub(crate) fn manager(&self) -> &BackgroundManager {
        self.manager.as_ref().expect("a manager is there until it is dropped")
    }

    /// Takes the tasks let go out of `tasks` and out of what `refresh` follows.
    fn prune_seen(&self, seen: &mut Seen, tasks: &Bound<'_, PyDict>) -> PyResult<()> {
        let gone = self.manager().take_let_go();
        if gone.is_empty() {
            return Ok(());
        }
        let set: HashSet<&str> = gone.iter().map(String::as_str).collect();
        seen.open.retain(|id| !set.contains(id.as_str()));
        seen.waiting.retain(|id| !set.contains(id.as_str()));
        for id in &gone {
            if tasks.contains(id)? {
                tasks.del_item(id)?;
            }
        }
        Ok(())
    }

    /// The core's wait, in slices between which Ctrl-C is looked for.
    fn wait_for(
        &self,
        py: Python<'_>,
        until: Until<'_>,
        timeout: Option<f64>,
    ) -> PyResult<Result<Option<Notification>, TimedOut>> {
        let got =
            wait_interruptibly(py, timeout, |slice| self.manager().wait(until, Some(slice)).ok())?;
        Ok(got.ok_or(TimedOut))
    }
}

#[pymethods]
impl PyBackgroundManager {
    #[new]
    // The signature Python shows names the defaults themselves (checked against DEFAULTS).
    #[pyo3(signature = (workdir=None, *, timeout=defaults::TASK_TIMEOUT.as_secs_f64(),
                        output_limit=defaults::OUTPUT_LIMIT, preview_limit=defaults::PREVIEW_LIMIT,
                        grace=defaults::GRACE.as_secs_f64(), log_dir=None,
                        log_limit=defaults::LOG_LIMIT, pass_api_key=false,
                        max_running=Some(defaults::max_running()),
                        keep_finished=Some(defaults::KEEP_FINISHED),
                        log_budget=Some(defaults::LOG_BUDGET), notification_details=true,
                        state=None, adopt=None),
           text_signature = "(workdir=None, *, timeout=300.0, output_limit=50000, \
                             preview_limit=500, grace=2.0, log_dir=None, log_limit=67108864, \
                             pass_api_key=False, max_running=..., keep_finished=1000, \
                             log_budget=1073741824, notification_details=True, state=None, \
                             adopt=None)")]
    #[allow(clippy::too_many_arguments)]
    fn new(
        workdir: Option<PathBuf>,
        timeout: f64,
        output_limit: usize,
        preview_limit: usize,
        grace: f64,
        log_dir: Option<PathBuf>,
        log_limit: u64,
        pass_api_key: bool,
        max_running: Option<usize>,
        keep_finished: Option<usize>,
        log_budget: Option<u64>,
        notification_details: bool,
        state: Option<PathBuf>,
        adopt: Option<String>,
    ) -> PyResult<Self> {
        let details = notification_details;
        let options = Options {
            workdir,
            timeout: Seconds::positive("timeout", timeout).map_err(bad_seconds)?.duration(),
            output_limit,
            preview_limit,
            grace: Seconds::non_negative("grace", grace).map_err(bad_seconds)?.duration(),
            log_dir,
            log_limit,
            executor: None,
            hide_secrets: !pass_api_key,
            max_running,
            keep_finished,
            log_budget,
            state,
            adopt,
        };
        let manager = BackgroundManager::new(options).map_err(to_py_err)?;
        // Starts the list of tasks let go, which `prune` and `refresh` take from.
        manager.take_let_go();
        Ok(PyBackgroundManager { manager: Some(manager), seen: Mutex::default(), details })
    }

    /// Starts `command` as task `task_id` (in `workdir` if given, with its own `timeout` in
    /// seconds if given), or puts it in line; false if that id is taken.
    #[pyo3(signature = (task_id, command, workdir=None, timeout=None))]
    fn start_as(
        &self,
        py: Python<'_>,
        task_id: &str,
        command: &str,
        workdir: Option<PathBuf>,
        timeout: Option<f64>,
    ) -> PyResult<bool> {
        let got = self.submit_as(py, task_id, command, workdir, timeout)?;
        Ok(!got.is_instance_of::<pyo3::types::PyBool>())
    }

    /// `start_as`, telling where the task waits: None if it started, `(place in line, tasks
    /// running)` if it waits for a slot, False if that id is taken.
    #[pyo3(signature = (task_id, command, workdir=None, timeout=None))]
    fn submit_as<'py>(
        &self,
        py: Python<'py>,
        task_id: &str,
        command: &str,
        workdir: Option<PathBuf>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let timeout = match timeout {
            None => None,
            Some(t) => Some(Seconds::positive("timeout", t).map_err(bad_seconds)?.duration()),
        };
        let at = StartAt { id: Some(task_id), workdir: workdir.as_deref(), timeout };
        match py.detach(|| self.manager().submit(command, at)) {
            None => Ok(pyo3::types::PyBool::new(py, false).to_owned().into_any()),
            Some(submitted) => submitted.waiting.into_pyobject(py),
        }
    }

    /// Starts a task that waits for a slot now, past the cap: None, or the error text (an
    /// unknown task, or one that does not wait).
    fn start_now(&self, py: Python<'_>, task_id: &str) -> Option<String> {
        py.detach(|| self.manager().start_now(task_id)).err()
    }

    /// `check(task_id)` for a task that waits for a slot (its place in line); None if it
    /// does not wait.
    fn check_queued(&self, task_id: &str) -> Option<String> {
        self.manager().place(task_id).map(|_| self.manager().check(Some(task_id)))
    }

    /// The cap on running tasks (None: no limit).
    #[getter]
    fn max_running(&self) -> Option<usize> {
        self.manager().max_running()
    }

    /// Every queued notification, in completion order; the queue is left empty.
    fn drain<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &Note::all(self.manager().drain(), self.details))
    }

    /// Waits (at most `timeout` seconds) until `until` holds: "ended" (the task `task_id`),
    /// "finished" (a notification is queued, or nothing runs), "idle" (nothing runs): true if
    /// it did. "next": as "finished", then takes the oldest notification (None: nothing
    /// queued, nothing running; TimeoutError if the time ran out).
    #[pyo3(signature = (until, timeout=None, task_id=None))]
    fn wait<'py>(
        &self,
        py: Python<'py>,
        until: &str,
        timeout: Option<f64>,
        task_id: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (limit, until) = (limit(timeout)?, self::until(until, task_id)?);
        let got = self.wait_for(py, until, timeout)?;
        woke(until, got, limit, self.details)?.into_pyobject(py)
    }

    /// `wait` for asyncio: holds no thread, and cancelling it stops the wait at once.
    #[pyo3(signature = (until, timeout=None, task_id=None))]
    fn wait_async<'py>(
        &self,
        py: Python<'py>,
        until: &str,
        timeout: Option<f64>,
        task_id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let limit = limit(timeout)?;
        self::until(until, task_id.as_deref())?; // refused here, not in the future
        let (until, awaiter) = (until.to_string(), self.manager().awaiter());
        let details = self.details;
        awaitable(py, async move {
            let until = self::until(&until, task_id.as_deref())?;
            let got = within(limit, awaiter.wait(until)).await.ok_or(TimedOut);
            woke(until, got, limit, details)
        })
    }

    /// `wait(until="finished")`, then `drain()`: `[]` means a timeout or that nothing runs.
    #[pyo3(signature = (timeout=None))]
    fn wait_for_notifications<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        // Timed out or not, what is queued is drained.
        let _ = self.wait_for(py, Until::Finished, timeout)?;
        self.drain(py)
    }

    /// `wait_for_notifications` for asyncio.
    #[pyo3(signature = (timeout=None))]
    fn wait_for_notifications_async<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let limit = limit(timeout)?;
        let (awaiter, details) = (self.manager().awaiter(), self.details);
        awaitable(py, async move {
            within(limit, awaiter.wait(Until::Finished)).await;
            Ok(Woke::Notes(Note::all(awaiter.drain(), details)))
        })
    }

    /// Stops a running task (SIGTERM to its process group, SIGKILL after `grace`) and waits
    /// for it to end; `None` then, or the error text if the task is unknown or not running.
    fn kill(&self, py: Python<'_>, task_id: &str) -> PyResult<Option<String>> {
        if let Err(message) = self.manager().awaiter().request_kill(task_id) {
            return Ok(Some(message));
        }
        // Bounded like the Rust `kill`: grace, SIGKILL, then the pipe cut-off.
        let bound = self.manager().stop_bound().as_secs_f64();
        let _ = self.wait_for(py, Until::Ended(task_id), Some(bound))?;
        Ok(None)
    }

    /// `kill` for asyncio: resolves with None once the task ended, or with the error text.
    fn kill_async<'py>(&self, py: Python<'py>, task_id: String) -> PyResult<Bound<'py, PyAny>> {
        let awaiter = self.manager().awaiter();
        let refused = awaiter.request_kill(&task_id).err();
        awaitable(py, async move {
            if refused.is_none() {
                within(Some(awaiter.stop_bound()), awaiter.wait(Until::Ended(&task_id))).await;
            }
            Ok(refused)
        })
    }

    /// Kills every running task and waits for them to end.
    fn shutdown(&self, py: Python<'_>) {
        py.detach(|| self.manager().shutdown());
    }

    /// `shutdown` for asyncio: kills every running task; resolves once they ended.
    fn shutdown_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let awaiter = self.manager().awaiter();
        awaitable(py, async move {
            awaiter.shutdown().await;
            Ok(())
        })
    }

    /// How many tasks run now.
    fn running_count(&self) -> usize {
        self.manager().snapshot(Records::None).running
    }

    /// Brings `tasks` (`{task_id: {"status", "result", "command"}}`) up to date: adds the tasks
    /// started since the last call and updates, in place, the entries of those that ended.
    /// Other entries (planted by the caller) are left as they are.
    fn refresh(&self, tasks: &Bound<'_, PyDict>) -> PyResult<()> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        self.prune_seen(&mut seen, tasks)?;
        let since = Records::Since { from: seen.from, open: &seen.open, waiting: &seen.waiting };
        let snapshot = self.manager().snapshot(since);
        let changed = snapshot.tasks;
        let moved: HashSet<&str> = changed.iter().map(|t| t.id.as_str()).collect();
        seen.open.retain(|id| !moved.contains(id.as_str()));
        seen.waiting.retain(|id| !moved.contains(id.as_str()));
        for t in &changed {
            // Each one here is new, started, or ended since the last call: filed anew.
            if t.is_waiting() {
                seen.waiting.push(t.id.clone());
            } else if t.is_running() {
                seen.open.push(t.id.clone());
            }
            let entry = match tasks.get_item(&t.id)?.map(|e| e.cast_into::<PyDict>()) {
                Some(Ok(entry)) => entry,
                _ => {
                    let entry = PyDict::new(tasks.py());
                    entry.set_item("command", &t.command)?;
                    tasks.set_item(&t.id, &entry)?;
                    entry
                }
            };
            entry.set_item("status", t.status().as_str())?;
            entry.set_item("result", t.result())?;
        }
        seen.from = snapshot.started;
        Ok(())
    }

    /// Takes out of `tasks` the entries of the tasks the core let go since the last call
    /// (`keep_finished`, `forget`); the others are left as they are.
    fn prune(&self, tasks: &Bound<'_, PyDict>) -> PyResult<()> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        self.prune_seen(&mut seen, tasks)
    }

    /// Lets a finished task whose notification was taken go now (its record, and its log
    /// file if the log directory is the manager's own): None, or the error text (an unknown
    /// task, one that runs or waits, or one whose notification is still queued).
    fn forget(&self, py: Python<'_>, task_id: &str) -> Option<String> {
        py.detach(|| self.manager().forget(task_id)).err()
    }

    /// Every task event from now on (queued, started, progress, finished, drained).
    fn subscribe(&self) -> PyTaskEvents {
        PyTaskEvents(self.manager().subscribe())
    }

    /// Everything known about one task: exit code, byte counts, log file.
    fn info<'py>(&self, py: Python<'py>, task_id: &str) -> PyResult<Bound<'py, PyAny>> {
        match self.manager().task(task_id) {
            Some(t) => to_py(py, &t),
            None => Err(PyKeyError::new_err(format!("Unknown task {task_id}"))),
        }
    }

    #[getter]
    fn workdir(&self) -> PathBuf {
        self.manager().workdir().to_path_buf()
    }

    /// This manager's owner id in its state file; None without one.
    #[getter]
    fn owner_id(&self) -> Option<String> {
        self.manager().owner_id().map(str::to_string)
    }

    /// Every task of the state file, every owner's, with its owner and whether it is alive.
    fn stored<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let stored = py.detach(|| self.manager().stored()).map_err(to_py_err)?;
        to_py(py, &stored)
    }

    #[getter]
    fn log_dir(&self) -> Option<PathBuf> {
        self.manager().log_dir().map(PathBuf::from)
    }
}

/// `at` in seconds on CLOCK_MONOTONIC, the clock of Python's `time.monotonic()` (and of
/// `Instant` on Linux, which has no public way to read it as a number).
fn monotonic(at: std::time::Instant) -> f64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec to write into; CLOCK_MONOTONIC is always there on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let now = now.tv_sec as f64 + now.tv_nsec as f64 / 1e9;
    now - at.elapsed().as_secs_f64()
}

/// A subscription to a manager's task events.
#[pyclass(frozen, name = "TaskEvents", module = "bgagent._core")]
pub struct PyTaskEvents(Subscription);

#[pymethods]
impl PyTaskEvents {
    /// The next event as `{"task_id", "event", "time", ...}` (`time` on `time.monotonic()`'s
    /// clock), waiting at most `timeout` seconds (None: no limit); None if none came or the
    /// subscription is closed.
    #[pyo3(signature = (timeout=None))]
    fn next<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        let got = wait_interruptibly(py, timeout, |slice| match self.0.recv(Some(slice)) {
            None if self.0.is_closed() => Some(None),
            None => None,
            event => Some(event),
        })?;
        let Some(event) = got.flatten() else { return Ok(py.None().into_bound(py)) };
        let dict = to_py(py, &event)?;
        dict.set_item("time", monotonic(event.at))?;
        Ok(dict)
    }

    /// Stops receiving; a waiting `next` returns None.
    fn close(&self) {
        self.0.close();
    }
}

/// The lesson's answer to `run`: `Background task {task_id} started: {command[:80]}`.
#[pyfunction]
pub fn started_line(task_id: &str, command: &str) -> String {
    lesson::started_line(task_id, command)
}

/// Production's answer to `run` for a task that waits for a slot: `Background task
/// {task_id} queued (2nd in line, 4 running): {command[:80]}`.
#[pyfunction]
pub fn queued_line(task_id: &str, place: usize, running: usize, command: &str) -> String {
    production::queued_line(task_id, place, running, command)
}

/// A fresh task id as the lesson draws it: 8 hex characters.
#[pyfunction]
pub fn new_task_id() -> String {
    lesson::new_id()
}

/// `[:60]`, sliced by Python: a command that is not a string fails (or not) as the lesson's.
fn first_60(py: Python<'_>) -> Bound<'_, pyo3::types::PySlice> {
    pyo3::types::PySlice::new(py, 0, 60, 1)
}

/// The lesson's `check` text over a `tasks` dict (`{task_id: {"status", "command",
/// "result"}}`, planted entries included): one task's, or a line per task (`task_id` falsy).
/// Keys and values are shown as the lesson's f-strings show them (`str()`), and an id is
/// looked up whatever its type, as the lesson's `dict.get` does.
#[pyfunction]
#[pyo3(signature = (tasks, task_id=None))]
pub fn check_text(
    tasks: &Bound<'_, PyDict>,
    task_id: Option<&Bound<'_, PyAny>>,
) -> PyResult<String> {
    let text =
        |value: &Bound<'_, PyAny>| -> PyResult<String> { Ok(value.str()?.to_cow()?.into_owned()) };
    if let Some(key) = task_id.filter(|id| id.is_truthy().unwrap_or(true)) {
        let id = text(key)?;
        let task = match tasks.get_item(key)? {
            Some(t) if t.is_truthy()? => t,
            _ => return Ok(lesson::check_one(&id, None)),
        };
        let status = text(&task.get_item("status")?)?;
        let command = text(&task.get_item("command")?.get_item(first_60(task.py()))?)?;
        // `t.get('result') or '(running)'`: a falsy result shows as running.
        let result = match task.call_method1("get", ("result",))? {
            r if r.is_truthy()? => Some(text(&r)?),
            _ => None,
        };
        return Ok(lesson::check_one(&id, Some((&status, &command, result.as_deref()))));
    }
    // A snapshot taken in one step: another thread may start a task meanwhile.
    let mut rows = Vec::new();
    for (id, t) in tasks.copy()?.iter() {
        // In the f-string's order: the status, then the command.
        let status = text(&t.get_item("status")?)?;
        let command = text(&t.get_item("command")?.get_item(first_60(t.py()))?)?;
        rows.push((text(&id)?, status, command));
    }
    Ok(lesson::check_all(rows.iter().map(|(i, s, c)| (i.as_str(), s.as_str(), c.as_str()))))
}

impl Drop for PyBackgroundManager {
    fn drop(&mut self) {
        // Stopping tasks can take the grace period, removing the temporary log directory
        // seconds, and freeing the task table tens of milliseconds (50,000 tasks): other
        // Python threads run meanwhile.
        let manager = self.manager.take();
        Python::attach(|py| {
            py.detach(|| {
                // How many tasks it has had (none is listed from past the last).
                let tasks = manager.as_ref().map_or(0, |m| m.snapshot(Records::None).started);
                drop(manager);
                if tasks >= 1000 {
                    merge_freed_memory();
                }
            })
        });
    }
}

/// glibc keeps the many small blocks just freed apart until the next large free merges them,
/// wherever that comes: 40 ms for 50,000 tasks' records, under the GIL when Python frees a big
/// dict next (the manager's `tasks`). Merged here, that time is spent without the GIL.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn merge_freed_memory() {
    // SAFETY: malloc_trim takes the allocator's own locks; it only merges and returns free
    // memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn merge_freed_memory() {}
