//! PyO3 adapters: convert arguments and results, release the GIL while waiting, and delegate
//! to the core. No logic here that a Rust caller would also need.

mod background;

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
    let deadline = timeout
        .filter(|t| t.is_finite() || t.is_nan())
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

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<background::PyBackgroundManager>()?;
    m.add_function(wrap_pyfunction!(_shutdown_all, m)?)?;
    Ok(())
}
