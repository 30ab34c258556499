//! PyO3 adapters: convert arguments and results, release the GIL while waiting, and delegate
//! to the core. No logic here that a Rust caller would also need.

mod agent;
mod background;
mod convert;
mod errors;

use pyo3::prelude::*;
use std::time::{Duration, Instant};

/// Runs `step` without the GIL in slices of at most 50 ms until it returns `Some` or
/// `timeout` seconds pass, checking for Ctrl-C between slices so it raises promptly.
pub(crate) fn wait_interruptibly<T: Send>(
    py: Python<'_>,
    timeout: Option<f64>,
    step: impl Fn(Duration) -> Option<T> + Sync,
) -> PyResult<Option<T>> {
    const SLICE: Duration = Duration::from_millis(50);
    if timeout.is_some_and(f64::is_nan) {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "timeout must be a number of seconds, not NaN",
        ));
    }
    // No timeout, or an infinite one, waits for as long as it takes.
    let deadline = timeout
        .filter(|t| t.is_finite())
        .map(|t| Instant::now() + Duration::from_secs_f64(t.clamp(0.0, 1e9)));
    loop {
        let slice = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
            None => SLICE,
        };
        if let Some(done) = py.detach(|| step(slice)) {
            return Ok(Some(done));
        }
        py.check_signals()?;
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
    }
}

/// Kills the running tasks of every live manager; registered with `atexit` by the package.
#[pyfunction]
fn _shutdown_all(py: Python<'_>) {
    py.detach(crate::background::shutdown_all);
}

/// The `KEY=value` pairs of a `.env` file (empty when there is no such file). The package
/// sets them through `os.environ`, so Python and Rust both see them.
#[pyfunction]
#[pyo3(signature = (path=".env".into()))]
fn read_dotenv(path: std::path::PathBuf) -> PyResult<Vec<(String, String)>> {
    let bad = |e: dotenvy::Error| {
        pyo3::exceptions::PyValueError::new_err(format!("{}: {e}", path.display()))
    };
    match dotenvy::from_path_iter(&path) {
        Ok(pairs) => pairs.map(|p| p.map_err(bad)).collect(),
        Err(e) if e.not_found() => Ok(Vec::new()),
        Err(e) => Err(bad(e)),
    }
}

/// Runs the `bgagent` command with `argv` (the pip-installed script calls this); returns
/// its exit code.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<std::ffi::OsString>) -> i32 {
    py.detach(|| crate::cli::main(argv))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<background::PyBackgroundManager>()?;
    m.add_class::<agent::PyClient>()?;
    m.add_function(wrap_pyfunction!(_shutdown_all, m)?)?;
    m.add_function(wrap_pyfunction!(agent::run_loop, m)?)?;
    m.add_function(wrap_pyfunction!(agent::safe_path, m)?)?;
    m.add_function(wrap_pyfunction!(agent::run_bash, m)?)?;
    m.add_function(wrap_pyfunction!(agent::run_read, m)?)?;
    m.add_function(wrap_pyfunction!(agent::run_write, m)?)?;
    m.add_function(wrap_pyfunction!(agent::run_edit, m)?)?;
    m.add_function(wrap_pyfunction!(agent::tool_schemas, m)?)?;
    m.add_function(wrap_pyfunction!(agent::lesson_system, m)?)?;
    m.add_function(wrap_pyfunction!(read_dotenv, m)?)?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    errors::register(m)?;
    Ok(())
}
