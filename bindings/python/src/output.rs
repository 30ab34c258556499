//! Reading a task's output from Python: `read` (waits with the GIL released, Ctrl-C
//! interrupts), its awaitable twin, and the last lines.

use super::aio::awaitable;
use super::background::PyBackgroundManager;
use super::{bad_seconds, wait_interruptibly};
use bgagent::background::{BackgroundManager, Read};
use bgagent::runtime::Seconds;
use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use std::time::Duration;

/// The longest wait a timeout of None stands for (the longest `Seconds` allows).
const FOREVER: Duration = Duration::from_secs(Seconds::MAX as u64);

/// An unknown id: the KeyError `info()` raises too.
fn unknown(message: String) -> PyErr {
    PyKeyError::new_err(message.trim_start_matches("Error: ").to_string())
}

/// A read as Python's dict: text, next, dropped, running, exit_code.
struct ReadDict(Read);

impl<'py> IntoPyObject<'py> for ReadDict {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(pythonize::pythonize(py, &self.0)?)
    }
}

/// Nothing to hand back yet: no text, no bytes skipped, and the task still runs.
fn nothing_yet(read: &Read, after: u64) -> bool {
    read.running && read.next == after && read.text.is_empty()
}

fn manager<'a>(core: &'a Bound<'_, PyBackgroundManager>) -> &'a BackgroundManager {
    core.get().manager()
}

/// Up to `max_bytes` of a task's output from offset `after`, waiting up to `timeout` seconds
/// (None: no limit) for some while the task runs.
#[pyfunction]
#[pyo3(signature = (core, task_id, after=0, max_bytes=65536, timeout=Some(0.0)),
       text_signature = "(core, task_id, after=0, max_bytes=65536, timeout=0.0)")]
pub fn read_output<'py>(
    py: Python<'py>,
    core: &Bound<'py, PyBackgroundManager>,
    task_id: &str,
    after: u64,
    max_bytes: usize,
    timeout: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let m = manager(core);
    let got =
        wait_interruptibly(py, timeout, |slice| match m.read(task_id, after, max_bytes, slice) {
            Ok(read) if nothing_yet(&read, after) => None,
            other => Some(other),
        })?;
    let read = match got {
        Some(read) => read,
        None => m.read(task_id, after, max_bytes, Duration::ZERO),
    };
    ReadDict(read.map_err(unknown)?).into_pyobject(py)
}

/// `read_output` for asyncio: holds no thread, and cancelling it stops the wait.
#[pyfunction]
#[pyo3(signature = (core, task_id, after=0, max_bytes=65536, timeout=Some(0.0)),
       text_signature = "(core, task_id, after=0, max_bytes=65536, timeout=0.0)")]
pub fn read_output_async<'py>(
    py: Python<'py>,
    core: &Bound<'py, PyBackgroundManager>,
    task_id: String,
    after: u64,
    max_bytes: usize,
    timeout: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let limit = Seconds::limit("timeout", timeout).map_err(bad_seconds)?;
    let limit = limit.map_or(FOREVER, Seconds::duration);
    let awaiter = manager(core).awaiter();
    awaitable(py, async move {
        awaiter.read(&task_id, after, max_bytes, limit).await.map(ReadDict).map_err(unknown)
    })
}

/// The last `lines` lines of a task's output.
#[pyfunction]
#[pyo3(signature = (core, task_id, lines=20))]
pub fn tail_output(
    core: &Bound<'_, PyBackgroundManager>,
    task_id: &str,
    lines: usize,
) -> PyResult<String> {
    manager(core).tail(task_id, lines).map(|(text, _)| text).map_err(unknown)
}
