//! Python exceptions raised while the GIL was released, and waits that Ctrl-C interrupts.

use super::errors::bad_seconds;
use bgagent::runtime::{poll_until, Seconds};
use pyo3::exceptions::PyKeyboardInterrupt;
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
