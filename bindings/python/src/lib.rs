//! PyO3 adapters: convert arguments and results, release the GIL while waiting, and delegate
//! to the core. No logic here that a Rust caller would also need.

mod agent;
mod aio;
mod background;
mod conversation;
mod convert;
mod errors;
mod scripted;
mod stream;
mod trace;

use bgagent::runtime::{poll_until, BadSeconds, Seconds};
use pyo3::exceptions::{PyKeyboardInterrupt, PyValueError};
use pyo3::prelude::*;
use std::sync::Mutex;
use std::time::Duration;

/// Remembers the first Python exception raised while the GIL was released (a
/// KeyboardInterrupt from the signal check, whatever a Python client or handler raised), so
/// the caller raises that very exception.
#[derive(Default)]
pub(crate) struct Pending(Mutex<Option<PyErr>>);

impl Pending {
    pub fn keep(&self, e: PyErr) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(e);
    }

    pub fn take(&self) -> Option<PyErr> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// The core's interrupt check: runs Python's signal handlers (Ctrl-C raises there).
    pub fn interrupted(&self) -> bool {
        Python::attach(|py| match py.check_signals() {
            Ok(()) => false,
            Err(e) => {
                self.keep(e);
                true
            }
        })
    }

    /// The exception to raise for an interrupt: the one the signal check raised.
    pub fn interrupt_error(&self) -> PyErr {
        self.take().unwrap_or_else(|| PyKeyboardInterrupt::new_err("interrupted"))
    }
}

/// A duration argument the core's one rule refused: ValueError naming the parameter.
pub(crate) fn bad_seconds(e: BadSeconds) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// Runs `step` without the GIL until it returns `Some` or `timeout` seconds pass (`None` or
/// infinity: no limit), checking for Ctrl-C between slices so it raises promptly.
pub(crate) fn wait_interruptibly<T: Send>(
    py: Python<'_>,
    timeout: Option<f64>,
    step: impl FnMut(Duration) -> Option<T> + Send,
) -> PyResult<Option<T>> {
    let limit = Seconds::limit("timeout", timeout).map_err(bad_seconds)?.map(Seconds::duration);
    let pending = Pending::default();
    let interrupted = || pending.interrupted();
    py.detach(|| poll_until(&interrupted, limit, step)).map_err(|_| pending.interrupt_error())
}

/// Kills the running tasks of every live manager, and lets results being handed to asyncio
/// land; registered with `atexit` by the package.
#[pyfunction]
fn _shutdown_all(py: Python<'_>) {
    py.detach(bgagent::background::shutdown_all);
    aio::close(py);
}

/// Names the supervisor's command: the package passes the interpreter, told to call
/// [`_supervise`]. Tasks started before it is named have no supervisor.
#[pyfunction]
fn _set_supervisor(argv: Vec<std::ffi::OsString>) {
    bgagent::exec::supervisor::set_command(argv);
}

/// The supervisor's life, in a process the package started for it; never returns.
#[pyfunction]
fn _supervise() -> PyResult<()> {
    match std::env::var(bgagent::exec::supervisor::ENV) {
        Ok(owner) => bgagent::exec::supervisor::run(&owner),
        Err(_) => Err(PyValueError::new_err(format!(
            "only a process started as bgagent's supervisor ({} set) can supervise",
            bgagent::exec::supervisor::ENV
        ))),
    }
}

/// Runs the `bgagent` command with `argv` (the pip-installed script calls this); returns
/// its exit code.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<std::ffi::OsString>) -> i32 {
    py.detach(|| bgagent::cli::main(argv))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<background::PyBackgroundManager>()?;
    m.add_class::<background::PyTaskEvents>()?;
    m.add_class::<agent::PyClient>()?;
    m.add_class::<agent::StopFlag>()?;
    m.add_class::<conversation::MessageCache>()?;
    m.add_class::<scripted::PyScriptedClient>()?;
    m.add_class::<trace::PyTracer>()?;
    m.add_function(wrap_pyfunction!(trace::render_html, m)?)?;
    m.add_function(wrap_pyfunction!(trace::render_svg, m)?)?;
    m.add_class::<stream::PyMessageStream>()?;
    m.add_function(wrap_pyfunction!(background::started_line, m)?)?;
    m.add_function(wrap_pyfunction!(background::new_task_id, m)?)?;
    m.add_function(wrap_pyfunction!(background::check_text, m)?)?;
    m.add_function(wrap_pyfunction!(_shutdown_all, m)?)?;
    m.add_function(wrap_pyfunction!(_set_supervisor, m)?)?;
    m.add_function(wrap_pyfunction!(_supervise, m)?)?;
    m.add_function(wrap_pyfunction!(agent::run_loop, m)?)?;
    m.add_function(wrap_pyfunction!(agent::safe_path, m)?)?;
    m.add_function(wrap_pyfunction!(agent::run_bash, m)?)?;
    m.add_function(wrap_pyfunction!(agent::run_read, m)?)?;
    m.add_function(wrap_pyfunction!(agent::run_write, m)?)?;
    m.add_function(wrap_pyfunction!(agent::run_edit, m)?)?;
    m.add_function(wrap_pyfunction!(agent::read_text, m)?)?;
    m.add_function(wrap_pyfunction!(agent::tool_schemas, m)?)?;
    m.add_function(wrap_pyfunction!(agent::lesson_system, m)?)?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    errors::register(m)?;
    Ok(())
}
