//! `bgagent.BackgroundManager` for Python.

use super::wait_interruptibly;
use crate::background::{BackgroundManager, Notification, Options, Status, TaskRecord};
use crate::error::Error;
use crate::runtime::Seconds;
use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;

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

/// Runs shell commands in the background and queues one notification per finished task.
#[pyclass(frozen, subclass, name = "BackgroundManager", module = "bgagent")]
pub struct PyBackgroundManager {
    manager: BackgroundManager,
}

impl PyBackgroundManager {
    pub(crate) fn manager(&self) -> &BackgroundManager {
        &self.manager
    }
}

#[pymethods]
impl PyBackgroundManager {
    #[new]
    #[pyo3(signature = (workdir=None, *, timeout=300.0, output_limit=50_000, preview_limit=500,
                        grace=2.0, log_dir=None, log_limit=64 * 1024 * 1024, pass_api_key=false))]
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
            timeout: Seconds::positive("timeout", timeout)?.duration(),
            output_limit,
            preview_limit,
            grace: Seconds::non_negative("grace", grace)?.duration(),
            log_dir,
            log_limit,
            executor: None,
            hide_secrets: !pass_api_key,
        };
        Ok(PyBackgroundManager { manager: BackgroundManager::new(options).map_err(to_py_err)? })
    }

    /// Starts `command` in the background; returns `Background task {id} started: {command}`.
    /// `workdir`: run this one task there instead of in the manager's directory.
    #[pyo3(signature = (command, workdir=None))]
    fn run(&self, py: Python<'_>, command: &str, workdir: Option<PathBuf>) -> String {
        py.detach(|| match &workdir {
            Some(dir) => self.manager.run_in(command, dir),
            None => self.manager.run(command),
        })
    }

    /// Starts `command` in the background and returns its task id.
    #[pyo3(signature = (command, workdir=None))]
    fn start(&self, py: Python<'_>, command: &str, workdir: Option<PathBuf>) -> String {
        py.detach(|| match &workdir {
            Some(dir) => self.manager.start_in(command, dir),
            None => self.manager.start(command),
        })
    }

    #[pyo3(signature = (task_id=None))]
    fn check(&self, task_id: Option<&str>) -> String {
        self.manager.check(task_id)
    }

    fn drain_notifications<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        notification_list(py, &self.manager.drain_notifications())
    }

    #[pyo3(signature = (timeout=None))]
    fn wait_for_notifications<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let got = wait_interruptibly(py, timeout, |slice| self.manager.poll_notifications(slice))?;
        notification_list(py, &got.unwrap_or_default())
    }

    #[pyo3(signature = (task_id, timeout=None))]
    fn wait(&self, py: Python<'_>, task_id: &str, timeout: Option<f64>) -> PyResult<String> {
        wait_interruptibly(py, timeout, |slice| {
            match self.manager.wait_task(task_id, Some(slice)) {
                Some(Status::Running) => None,
                _ => Some(()),
            }
        })?;
        Ok(self.manager.check(Some(task_id)))
    }

    /// Stops a running task (SIGTERM to its process group, SIGKILL after `grace`), waits for
    /// it to end, and returns `check(task_id)`.
    fn kill(&self, py: Python<'_>, task_id: &str) -> PyResult<String> {
        if let Err(message) = self.manager.request_kill(task_id) {
            return Ok(message);
        }
        // Bounded like the Rust `kill`: grace, SIGKILL, then the pipe cut-off.
        self.wait(py, task_id, Some(self.manager.stop_bound().as_secs_f64()))
    }

    fn has_running_tasks(&self) -> bool {
        self.manager.has_running_tasks()
    }

    /// Kills every running task and waits for them to end.
    fn shutdown(&self, py: Python<'_>) {
        py.detach(|| self.manager.shutdown());
    }

    /// `{task_id: {"status", "result", "command"}}` in start order, like the lesson's dict.
    #[getter]
    fn tasks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let all = PyDict::new(py);
        for t in self.manager.tasks() {
            let d = PyDict::new(py);
            d.set_item("status", t.status.as_str())?;
            d.set_item("result", t.result.as_deref())?;
            d.set_item("command", &t.command)?;
            all.set_item(&t.id, d)?;
        }
        Ok(all)
    }

    /// Everything known about one task: exit code, byte counts, log file.
    fn info<'py>(&self, py: Python<'py>, task_id: &str) -> PyResult<Bound<'py, PyDict>> {
        match self.manager.task(task_id) {
            Some(t) => info_dict(py, &t),
            None => Err(PyKeyError::new_err(format!("Unknown task {task_id}"))),
        }
    }

    #[getter]
    fn workdir(&self) -> PathBuf {
        self.manager.workdir().to_path_buf()
    }

    #[getter]
    fn log_dir(&self) -> Option<PathBuf> {
        self.manager.log_dir().map(PathBuf::from)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<Bound<'_, PyAny>>,
        _exc: Option<Bound<'_, PyAny>>,
        _tb: Option<Bound<'_, PyAny>>,
    ) -> bool {
        self.shutdown(py);
        false
    }

    fn __repr__(&self) -> String {
        let tasks = self.manager.tasks().len();
        let running = self.manager.running_count();
        format!(
            "<BackgroundManager workdir={:?} tasks={tasks} running={running}>",
            self.manager.workdir().display().to_string()
        )
    }
}

impl Drop for PyBackgroundManager {
    fn drop(&mut self) {
        // Stopping tasks can take the grace period: do it without holding the GIL.
        if self.manager.has_running_tasks() {
            Python::attach(|py| py.detach(|| self.manager.shutdown()));
        }
    }
}
