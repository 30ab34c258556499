//! PyO3 adapters: convert arguments and results, release the GIL while waiting, and delegate
//! to the core. No logic here that a Rust caller would also need.

mod agent_loop;
mod aio;
mod background;
mod client;
mod conversation;
mod convert;
mod defaults;
mod errors;
mod kit;
mod message;
mod output;
mod pending;
mod scripted;
mod stream;
mod tools;
mod trace;

// Also reached by the paths they had when they lived here (`super::wait_interruptibly`).
pub(crate) use errors::bad_seconds;
pub(crate) use pending::wait_interruptibly;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

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
    m.add_class::<client::PyClient>()?;
    m.add_class::<agent_loop::StopFlag>()?;
    m.add_class::<conversation::MessageCache>()?;
    m.add_class::<scripted::PyScriptedClient>()?;
    m.add_class::<trace::PyTracer>()?;
    m.add_function(wrap_pyfunction!(trace::render_html, m)?)?;
    m.add_function(wrap_pyfunction!(trace::render_svg, m)?)?;
    m.add_class::<stream::PyMessageStream>()?;
    m.add_function(wrap_pyfunction!(background::started_line, m)?)?;
    m.add_function(wrap_pyfunction!(background::queued_line, m)?)?;
    m.add_function(wrap_pyfunction!(background::new_task_id, m)?)?;
    m.add_function(wrap_pyfunction!(background::check_text, m)?)?;
    m.add_function(wrap_pyfunction!(output::read_output, m)?)?;
    m.add_function(wrap_pyfunction!(output::read_output_async, m)?)?;
    m.add_function(wrap_pyfunction!(output::tail_output, m)?)?;
    m.add_function(wrap_pyfunction!(_shutdown_all, m)?)?;
    m.add_function(wrap_pyfunction!(_set_supervisor, m)?)?;
    m.add_function(wrap_pyfunction!(_supervise, m)?)?;
    m.add_function(wrap_pyfunction!(agent_loop::run_loop, m)?)?;
    m.add_function(wrap_pyfunction!(tools::safe_path, m)?)?;
    m.add_function(wrap_pyfunction!(tools::run_bash, m)?)?;
    m.add_function(wrap_pyfunction!(tools::run_read, m)?)?;
    m.add_function(wrap_pyfunction!(tools::run_write, m)?)?;
    m.add_function(wrap_pyfunction!(tools::run_edit, m)?)?;
    m.add_function(wrap_pyfunction!(tools::read_text, m)?)?;
    m.add_function(wrap_pyfunction!(tools::tool_schemas, m)?)?;
    m.add_function(wrap_pyfunction!(kit::kit_definitions, m)?)?;
    m.add_function(wrap_pyfunction!(kit::kit_call, m)?)?;
    m.add_function(wrap_pyfunction!(kit::kit_call_async, m)?)?;
    m.add_function(wrap_pyfunction!(kit::results_block, m)?)?;
    m.add_function(wrap_pyfunction!(tools::lesson_system, m)?)?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    defaults::register(m)?;
    errors::register(m)?;
    Ok(())
}
