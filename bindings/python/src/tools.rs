//! The lesson module's tools for Python (`bgagent.s08`): each runs the core's tool in a
//! workspace, without the GIL.

use super::convert::to_py;
use super::errors::bad_seconds;
use super::pending::Pending;
use bgagent::agent::LoopConfig;
use bgagent::exec::{LocalExecutor, LocalSettings};
use bgagent::runtime::Seconds;
use bgagent::tools::{self, Interrupted};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::OnceLock;

fn workspace_err(e: String) -> PyErr {
    PyValueError::new_err(e)
}

/// The workspace root as the tools compare against it (symlinks resolved). A relative one
/// stays relative, so every path is refused, as in the lesson.
fn workspace(workdir: &std::path::Path) -> PyResult<PathBuf> {
    if workdir.is_relative() {
        return Ok(workdir.to_path_buf());
    }
    tools::resolve(workdir)
        .ok_or_else(|| PyValueError::new_err(format!("too many symlinks in {}", workdir.display())))
}

/// `safe_path(workdir, p)`: the resolved path, or ValueError `Path escapes workspace: {p}`.
#[pyfunction]
pub fn safe_path(workdir: PathBuf, p: &str) -> PyResult<PathBuf> {
    tools::safe_path(&workspace(&workdir)?, p).map_err(workspace_err)
}

/// The blocking bash tool in `workdir` (120 s timeout, Ctrl-C stops it and its children).
#[pyfunction]
#[pyo3(signature = (workdir, command, timeout=tools::BASH_TIMEOUT.as_secs_f64()),
       text_signature = "(workdir, command, timeout=120.0)")]
pub fn run_bash(py: Python<'_>, workdir: PathBuf, command: &str, timeout: f64) -> PyResult<String> {
    let timeout = Seconds::positive("timeout", timeout).map_err(bad_seconds)?.duration();
    let pending = Pending::default();
    py.detach(|| {
        let interrupted = || pending.interrupted();
        // The lesson's module: the lesson's blocklist, and the environment passed on whole.
        let guard = tools::Guard::Lesson;
        tools::bash(local_executor()?, &workdir, command, timeout, &interrupted, guard, false)
            .map_err(|Interrupted| pending.interrupt_error())
    })
}

/// The executor for the bash tool when no manager is given: local processes, no log files.
fn local_executor() -> PyResult<&'static LocalExecutor> {
    static LOCAL: OnceLock<std::result::Result<LocalExecutor, String>> = OnceLock::new();
    let local = LOCAL.get_or_init(|| {
        let settings = LocalSettings { log_dir: Some(std::env::temp_dir()), ..Default::default() };
        LocalExecutor::new(settings).map_err(|e| e.to_string())
    });
    local.as_ref().map_err(|e| PyOSError::new_err(e.clone()))
}

#[pyfunction]
#[pyo3(signature = (workdir, path, limit=None))]
pub fn run_read(
    py: Python<'_>,
    workdir: PathBuf,
    path: &str,
    limit: Option<i64>,
) -> PyResult<String> {
    let root = workspace(&workdir)?;
    // Files can be slow (a network mount, a huge file): never hold the GIL meanwhile.
    Ok(py.detach(|| tools::read(&root, path, limit, tools::Guard::Lesson)))
}

#[pyfunction]
pub fn run_write(py: Python<'_>, workdir: PathBuf, path: &str, content: &str) -> PyResult<String> {
    let root = workspace(&workdir)?;
    Ok(py.detach(|| tools::write(&root, path, content, tools::Guard::Lesson)))
}

#[pyfunction]
pub fn run_edit(
    py: Python<'_>,
    workdir: PathBuf,
    path: &str,
    old_text: &str,
    new_text: &str,
) -> PyResult<String> {
    let root = workspace(&workdir)?;
    Ok(py.detach(|| tools::edit(&root, path, old_text, new_text, tools::Guard::Lesson)))
}

/// A workspace file's whole text, for the lesson module's rarer paths (arguments of other
/// types than the tools take); OSError with the lesson's text (Python's) if it cannot be read.
#[pyfunction]
pub fn read_text(py: Python<'_>, workdir: PathBuf, path: &str) -> PyResult<String> {
    let root = workspace(&workdir)?;
    py.detach(|| tools::whole_text(&root, path, tools::Guard::Lesson)).map_err(PyOSError::new_err)
}

/// The lesson's six tool schemas (with `extended`, production's eight).
#[pyfunction]
#[pyo3(signature = (extended=false))]
pub fn tool_schemas(py: Python<'_>, extended: bool) -> PyResult<Bound<'_, PyAny>> {
    let list = if extended { tools::extended_tools() } else { tools::lesson_tools() };
    to_py(py, &Value::Array(list))
}

/// The lesson's system prompt for a workspace.
#[pyfunction]
pub fn lesson_system(workdir: PathBuf) -> String {
    LoopConfig::lesson_system(&workdir)
}
