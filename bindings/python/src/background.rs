//! `bgagent.BackgroundManager` for Python.

use super::aio::awaitable;
use super::bad_seconds;
use super::wait_interruptibly;
use bgagent::background::{
    BackgroundManager, Notification, Options, Status, Subscription, TaskEvent, TaskEventKind,
    TaskRecord,
};
use bgagent::error::Error;
use bgagent::runtime::Seconds;
use pyo3::exceptions::{PyKeyError, PyTimeoutError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

fn to_py_err(e: Error) -> PyErr {
    Python::attach(|py| super::errors::core_error(py, &e))
}

fn notification_dict<'py>(py: Python<'py>, n: &Notification) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("task_id", &n.task_id)?;
    d.set_item("status", n.status.as_str())?;
    d.set_item("command", &n.command)?;
    d.set_item("result", &n.result)?;
    d.set_item("exit_code", n.exit_code)?;
    Ok(d)
}

fn notification_list<'py>(
    py: Python<'py>,
    list: &[Notification],
) -> PyResult<Vec<Bound<'py, PyDict>>> {
    list.iter().map(|n| notification_dict(py, n)).collect()
}

/// Notifications handed to Python from a future (built into dicts once the GIL is held).
struct Notes(Vec<Notification>);

impl<'py> IntoPyObject<'py> for Notes {
    type Target = PyList;
    type Output = Bound<'py, PyList>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, notification_list(py, &self.0)?)
    }
}

/// One notification, or None (nothing queued, nothing running).
struct Note(Option<Notification>);

impl<'py> IntoPyObject<'py> for Note {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self.0 {
            Some(n) => Ok(notification_dict(py, &n)?.into_any()),
            None => Ok(py.None().into_bound(py)),
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

fn info_dict<'py>(py: Python<'py>, t: &TaskRecord) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("task_id", &t.id)?;
    d.set_item("status", t.status.as_str())?;
    d.set_item("command", &t.command)?;
    d.set_item("result", t.result.as_deref())?;
    d.set_item("exit_code", t.exit_code)?;
    d.set_item("elapsed", t.elapsed().as_secs_f64())?;
    d.set_item("pid", t.pid)?;
    let o = &t.output;
    d.set_item("stdout_bytes", o.stdout_bytes)?;
    d.set_item("stderr_bytes", o.stderr_bytes)?;
    d.set_item("log_path", o.log_path.as_ref().map(|p| p.to_string_lossy().into_owned()))?;
    d.set_item("log_bytes", o.log_bytes)?;
    d.set_item("log_cut", o.log_cut)?;
    d.set_item("log_error", o.log_error.as_deref())?;
    Ok(d)
}

/// The core of `bgagent.BackgroundManager` (a Python class that wraps it and keeps the
/// `tasks` dict): runs shell commands in the background, queues one notification per task.
#[pyclass(frozen, name = "BackgroundManager", module = "bgagent._core")]
pub struct PyBackgroundManager {
    /// None only while it is dropped.
    manager: Option<BackgroundManager>,
    seen: Mutex<Seen>,
}

/// What the last `refresh` saw: how many tasks had started, and which of them still ran.
#[derive(Default)]
struct Seen {
    from: usize,
    open: Vec<String>,
}

impl PyBackgroundManager {
    pub(crate) fn manager(&self) -> &BackgroundManager {
        self.manager.as_ref().expect("a manager is there until it is dropped")
    }
}

#[pymethods]
impl PyBackgroundManager {
    #[new]
    #[pyo3(signature = (workdir=None, *, timeout=300.0, output_limit=50_000, preview_limit=500,
                        grace=2.0, log_dir=None, log_limit=67_108_864, pass_api_key=false))]
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
    ) -> PyResult<Self> {
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
        };
        let manager = BackgroundManager::new(options).map_err(to_py_err)?;
        Ok(PyBackgroundManager { manager: Some(manager), seen: Mutex::default() })
    }

    /// Starts `command` as task `task_id` (in `workdir` if given); false if that id is taken.
    #[pyo3(signature = (task_id, command, workdir=None))]
    fn start_as(
        &self,
        py: Python<'_>,
        task_id: &str,
        command: &str,
        workdir: Option<PathBuf>,
    ) -> bool {
        py.detach(|| self.manager().start_as(task_id, command, workdir.as_deref()))
    }

    fn drain_notifications<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        notification_list(py, &self.manager().drain_notifications())
    }

    #[pyo3(signature = (timeout=None))]
    fn wait_for_notifications<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let got =
            wait_interruptibly(py, timeout, |slice| self.manager().poll_notifications(slice))?;
        notification_list(py, &got.unwrap_or_default())
    }

    /// `wait` for asyncio: resolves (true if this manager knows the id) once the task ended or
    /// `timeout` passed. Holds no thread; cancelling it stops the wait at once.
    #[pyo3(signature = (task_id, timeout=None))]
    fn wait_async<'py>(
        &self,
        py: Python<'py>,
        task_id: String,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let limit = limit(timeout)?;
        let awaiter = self.manager().awaiter();
        let known = self.manager().task(&task_id).is_some();
        awaitable(py, async move {
            within(limit, awaiter.task(&task_id)).await;
            Ok(known)
        })
    }

    /// `wait_for_notifications` for asyncio.
    #[pyo3(signature = (timeout=None))]
    fn wait_for_notifications_async<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let limit = limit(timeout)?;
        let awaiter = self.manager().awaiter();
        awaitable(py, async move {
            Ok(Notes(within(limit, awaiter.notifications()).await.unwrap_or_default()))
        })
    }

    /// The oldest notification, waiting (at most `timeout` seconds, else TimeoutError) while
    /// none is queued and a task runs; None once nothing is queued and nothing runs.
    #[pyo3(signature = (timeout=None))]
    fn next_notification<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let limit = limit(timeout)?;
        let got = wait_interruptibly(py, timeout, |slice| {
            self.manager().next_notification(Some(slice)).ok()
        })?;
        match got {
            Some(note) => Note(note).into_pyobject(py),
            None => Err(no_notification(limit)),
        }
    }

    /// `next_notification` for asyncio.
    #[pyo3(signature = (timeout=None))]
    fn next_notification_async<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let limit = limit(timeout)?;
        let awaiter = self.manager().awaiter();
        awaitable(py, async move {
            match within(limit, awaiter.next_notification()).await {
                Some(note) => Ok(Note(note)),
                None => Err(no_notification(limit)),
            }
        })
    }

    /// `kill` for asyncio: resolves with None once the task ended, or with the error text.
    fn kill_async<'py>(&self, py: Python<'py>, task_id: String) -> PyResult<Bound<'py, PyAny>> {
        let refused = self.manager().request_kill(&task_id).err();
        let awaiter = self.manager().awaiter();
        awaitable(py, async move {
            if refused.is_none() {
                within(Some(awaiter.stop_bound()), awaiter.task(&task_id)).await;
            }
            Ok(refused)
        })
    }

    /// `shutdown` for asyncio: kills every running task; resolves once they ended.
    fn shutdown_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let awaiter = self.manager().awaiter();
        awaitable(py, async move {
            awaiter.shutdown().await;
            Ok(())
        })
    }

    /// Waits (at most `timeout`) for the task to end; true if this manager knows the id.
    #[pyo3(signature = (task_id, timeout=None))]
    fn wait(&self, py: Python<'_>, task_id: &str, timeout: Option<f64>) -> PyResult<bool> {
        let mut known = false;
        wait_interruptibly(py, timeout, |slice| {
            match self.manager().wait_task(task_id, Some(slice)) {
                Some(Status::Running) => None,
                status => {
                    known = status.is_some();
                    Some(())
                }
            }
        })?;
        Ok(known || self.manager().task(task_id).is_some())
    }

    /// Stops a running task (SIGTERM to its process group, SIGKILL after `grace`) and waits
    /// for it to end; `None` then, or the error text if the task is unknown or not running.
    fn kill(&self, py: Python<'_>, task_id: &str) -> PyResult<Option<String>> {
        if let Err(message) = self.manager().request_kill(task_id) {
            return Ok(Some(message));
        }
        // Bounded like the Rust `kill`: grace, SIGKILL, then the pipe cut-off.
        self.wait(py, task_id, Some(self.manager().stop_bound().as_secs_f64()))?;
        Ok(None)
    }

    fn has_running_tasks(&self) -> bool {
        self.manager().has_running_tasks()
    }

    fn running_count(&self) -> usize {
        self.manager().running_count()
    }

    /// Kills every running task and waits for them to end.
    fn shutdown(&self, py: Python<'_>) {
        py.detach(|| self.manager().shutdown());
    }

    /// Brings `tasks` (`{task_id: {"status", "result", "command"}}`) up to date: adds the tasks
    /// started since the last call and updates, in place, the entries of those that ended.
    /// Other entries (planted by the caller) are left as they are.
    fn refresh(&self, tasks: &Bound<'_, PyDict>) -> PyResult<()> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let (changed, from) = self.manager().changes(seen.from, &seen.open);
        let ended: HashSet<&str> =
            changed.iter().filter(|t| t.status != Status::Running).map(|t| t.id.as_str()).collect();
        seen.open.retain(|id| !ended.contains(id.as_str()));
        for t in &changed {
            // Ended ones are not running, so a running one here is new since the last call.
            if t.status == Status::Running {
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
            entry.set_item("status", t.status.as_str())?;
            entry.set_item("result", t.result.as_deref())?;
        }
        seen.from = from;
        Ok(())
    }

    /// Every task event from now on (queued, started, progress, finished, drained).
    fn subscribe(&self) -> PyTaskEvents {
        PyTaskEvents(self.manager().subscribe())
    }

    /// Everything known about one task: exit code, byte counts, log file.
    fn info<'py>(&self, py: Python<'py>, task_id: &str) -> PyResult<Bound<'py, PyDict>> {
        match self.manager().task(task_id) {
            Some(t) => info_dict(py, &t),
            None => Err(PyKeyError::new_err(format!("Unknown task {task_id}"))),
        }
    }

    #[getter]
    fn workdir(&self) -> PathBuf {
        self.manager().workdir().to_path_buf()
    }

    #[getter]
    fn log_dir(&self) -> Option<PathBuf> {
        self.manager().log_dir().map(PathBuf::from)
    }
}

/// A subscription to a manager's task events.
#[pyclass(frozen, name = "TaskEvents", module = "bgagent._core")]
pub struct PyTaskEvents(Subscription);

#[pymethods]
impl PyTaskEvents {
    /// The next event as `{"task_id", "event", ...}`, waiting at most `timeout` seconds (None:
    /// no limit); None if none came or the subscription is closed.
    #[pyo3(signature = (timeout=None))]
    fn next<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let got = wait_interruptibly(py, timeout, |slice| match self.0.recv(Some(slice)) {
            None if self.0.is_closed() => Some(None),
            None => None,
            event => Some(event),
        })?;
        got.flatten().map(|e| event_dict(py, &e)).transpose()
    }

    /// Stops receiving; a waiting `next` returns None.
    fn close(&self) {
        self.0.close();
    }
}

fn event_dict<'py>(py: Python<'py>, e: &TaskEvent) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("task_id", &e.task_id)?;
    d.set_item("event", e.kind.name())?;
    match &e.kind {
        TaskEventKind::Queued { command } => d.set_item("command", command)?,
        TaskEventKind::Started { pid } => d.set_item("pid", pid)?,
        TaskEventKind::Progress { stdout_bytes, stderr_bytes } => {
            d.set_item("stdout_bytes", stdout_bytes)?;
            d.set_item("stderr_bytes", stderr_bytes)?;
        }
        TaskEventKind::Finished { status, exit_code } => {
            d.set_item("status", status.as_str())?;
            d.set_item("exit_code", exit_code)?;
        }
        TaskEventKind::Drained => {}
    }
    Ok(d)
}

/// The lesson's answer to `run`: `Background task {task_id} started: {command[:80]}`.
#[pyfunction]
pub fn started_line(task_id: &str, command: &str) -> String {
    bgagent::background::started_line(task_id, command)
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
                let tasks = manager.as_ref().map_or(0, |m| m.changes(usize::MAX, &[]).1);
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
