//! The kit for a loop of one's own, for Python: the background tools' definitions, one call
//! that runs a tool use (blocking without the GIL, or as an awaitable), and the injected
//! block. The logic is the core's (`bgagent::kit`).

use super::agent_loop::notification_from;
use super::aio::awaitable;
use super::background::PyBackgroundManager;
use super::convert::{to_json, to_py};
use super::pending::Pending;
use bgagent::kit::{results_block as block, BackgroundTools, Format};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The six background tools' definitions: `format` "anthropic" or "openai".
#[pyfunction]
pub fn kit_definitions<'py>(
    py: Python<'py>,
    core: &PyBackgroundManager,
    format: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let format = match format {
        "anthropic" => Format::Anthropic,
        "openai" => Format::OpenAi,
        _ => {
            return Err(PyValueError::new_err(format!(
                "format must be 'anthropic' or 'openai', not {format:?}"
            )))
        }
    };
    to_py(py, &Value::Array(BackgroundTools::new(core.manager()).definitions(format)))
}

/// The arguments as the core takes them: a dict (any mapping the conversion takes), or the
/// JSON text of one (kept as text: the kit parses it and answers a bad one).
fn arguments(arguments: &Bound<'_, PyAny>) -> PyResult<Value> {
    match arguments.extract::<String>() {
        Ok(text) => Ok(Value::String(text)),
        Err(_) => to_json(arguments),
    }
}

/// Runs one tool use without the GIL; Ctrl-C stops a wait and raises KeyboardInterrupt.
#[pyfunction]
pub fn kit_call(
    py: Python<'_>,
    core: &PyBackgroundManager,
    name: &str,
    input: &Bound<'_, PyAny>,
) -> PyResult<String> {
    let input = arguments(input)?;
    let pending = Pending::default();
    py.detach(|| {
        let interrupted = || pending.interrupted();
        BackgroundTools::new(core.manager()).call_until(name, &input, &interrupted)
    })
    .map_err(|_| pending.interrupt_error())
}

/// Sets its flag when dropped: a cancelled awaitable stops the call it started.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// `kit_call` as an awaitable: the call runs on a blocking thread of the core's runtime, and
/// cancelling the awaitable stops a wait at its next look.
#[pyfunction]
pub fn kit_call_async<'py>(
    py: Python<'py>,
    core: Py<PyBackgroundManager>,
    name: String,
    input: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let input = arguments(input)?;
    awaitable(py, async move {
        let stop = Arc::new(AtomicBool::new(false));
        let _stop_on_drop = StopOnDrop(stop.clone());
        let call = tokio::task::spawn_blocking(move || {
            let interrupted = || stop.load(Ordering::SeqCst);
            BackgroundTools::new(core.get().manager()).call_until(&name, &input, &interrupted)
        });
        match call.await {
            Ok(Ok(text)) => Ok(text),
            // Only a cancel sets the flag, and then no one awaits this result.
            Ok(Err(_)) => Ok("Error: interrupted".to_string()),
            Err(e) => Err(PyValueError::new_err(format!("the tool call failed: {e}"))),
        }
    })
}

/// The `<background-results>` block for drained notification dicts: production's, or with
/// `lesson` the lesson's one line per task.
#[pyfunction]
#[pyo3(signature = (notes, lesson=false))]
pub fn results_block(notes: Vec<Bound<'_, PyAny>>, lesson: bool) -> PyResult<String> {
    let notes = notes.iter().map(notification_from).collect::<PyResult<Vec<_>>>()?;
    Ok(block(&notes, lesson))
}
