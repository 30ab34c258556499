//! Traces from Python: `Tracer` (a file or memory) that `run_loop(trace=...)` records into and
//! that follows a manager's tasks, and the rendering of a trace as HTML or SVG.

use super::background::PyBackgroundManager;
use bgagent::background::Watcher;
use bgagent::trace::view::{self, Run};
use bgagent::trace::{RunInfo, Tracer};
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Records a run as trace lines: into `path` (JSON lines), or in memory when `path` is None.
#[pyclass(frozen, name = "Tracer", module = "bgagent._core")]
pub struct PyTracer {
    pub(crate) tracer: Arc<Tracer>,
    followers: Mutex<Vec<Watcher>>,
}

#[pymethods]
impl PyTracer {
    #[new]
    #[pyo3(signature = (path=None, *, mode="production", model="", workdir=None))]
    fn new(
        path: Option<PathBuf>,
        mode: &str,
        model: &str,
        workdir: Option<PathBuf>,
    ) -> PyResult<Self> {
        let info = RunInfo {
            mode: mode.into(),
            model: model.into(),
            workdir: workdir.unwrap_or_default(),
        };
        let tracer = match &path {
            Some(p) => Tracer::to_file(p, &info).map_err(|e| {
                PyOSError::new_err(format!("cannot write the trace {}: {e}", p.display()))
            })?,
            None => Tracer::in_memory(&info),
        };
        Ok(PyTracer { tracer, followers: Mutex::default() })
    }

    /// Records `manager`'s task events from now on, until `close()`.
    fn follow(&self, manager: &Bound<'_, PyBackgroundManager>) {
        let follower = self.tracer.follow(manager.get().manager());
        self.followers.lock().unwrap_or_else(|p| p.into_inner()).push(follower);
    }

    /// Stops following managers (after recording the events already published).
    fn close(&self, py: Python<'_>) {
        let followers =
            std::mem::take(&mut *self.followers.lock().unwrap_or_else(|p| p.into_inner()));
        py.detach(|| drop(followers));
    }

    /// Waits until the task events published so far are recorded.
    fn settle(&self, py: Python<'_>) {
        let followers = self.followers.lock().unwrap_or_else(|p| p.into_inner());
        py.detach(|| followers.iter().for_each(Watcher::settle));
    }

    /// The lines recorded in memory (empty for a trace written to a file), once the task
    /// events published so far are among them.
    fn lines(&self, py: Python<'_>) -> Vec<String> {
        self.settle(py);
        self.tracer.lines()
    }

    /// The file the trace goes to, or None.
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        self.tracer.path()
    }
}

/// The self-contained HTML page of a trace's lines.
#[pyfunction]
pub fn render_html(lines: Vec<String>) -> String {
    view::html(&Run::from_lines(lines.iter().map(String::as_str)))
}

/// The SVG picture of a trace's lines.
#[pyfunction]
pub fn render_svg(lines: Vec<String>) -> String {
    view::svg(&Run::from_lines(lines.iter().map(String::as_str)))
}
