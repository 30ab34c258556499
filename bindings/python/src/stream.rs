//! `Client.messages.stream(...)`: the SDK's streaming shape over the built-in client. The call
//! runs on a thread of its own; text pieces come through a channel, read without the GIL.

use super::errors::model_error;
use super::message::message_object;
use super::pending::wait_interruptibly;
use bgagent::llm::{CallContext, HttpClient, Model, ModelError, Progress, Request, Response};
use pyo3::exceptions::{PyRuntimeError, PyStopIteration};
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};

/// A streamed reply in progress: iterate `text_stream`, then `get_final_message()`.
#[pyclass(frozen, name = "MessageStream", module = "bgagent")]
pub struct PyMessageStream {
    pieces: Mutex<Receiver<Progress>>,
    done: Mutex<Option<Result<Response, ModelError>>>,
    /// Set when the caller leaves the `with` block early: the call stops.
    abandoned: Arc<AtomicBool>,
}

impl PyMessageStream {
    pub fn start(http: Arc<HttpClient>, request: Request) -> Self {
        let (send, pieces) = channel();
        let abandoned = Arc::new(AtomicBool::new(false));
        let stop = abandoned.clone();
        std::thread::spawn(move || {
            let text = send.clone();
            let mut on_text = move |piece: &str| drop(text.send(Progress::Text(piece.to_string())));
            let interrupted = move || stop.load(Ordering::Relaxed);
            let mut ctx = CallContext { on_text: &mut on_text, interrupted: &interrupted };
            let _ = send.send(Progress::Done(http.create(&request, &mut ctx)));
        });
        PyMessageStream { pieces: Mutex::new(pieces), done: Mutex::new(None), abandoned }
    }

    /// The next piece of text, or `None` once the reply is complete.
    fn next_text(&self, py: Python<'_>) -> PyResult<Option<String>> {
        if self.done.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            return Ok(None);
        }
        let pieces = &self.pieces;
        let piece = wait_interruptibly(py, None, |slice| {
            let pieces = pieces.lock().unwrap_or_else(|p| p.into_inner());
            Progress::receive(&pieces, slice, "the stream's thread")
        })?;
        match piece {
            Some(Progress::Text(text)) => Ok(Some(text)),
            Some(Progress::Done(result)) => {
                *self.done.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
                Ok(None)
            }
            None => Ok(None),
        }
    }
}

#[pymethods]
impl PyMessageStream {
    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, pyo3::types::PyTuple>) {
        self.abandoned.store(true, Ordering::Relaxed);
    }

    /// The text as it arrives (this object is its own iterator).
    #[getter]
    fn text_stream(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<String> {
        self.next_text(py)?.ok_or_else(|| PyStopIteration::new_err(()))
    }

    /// Reads the rest of the stream and returns the whole message (or raises the API error).
    fn get_final_message<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        while self.next_text(py)?.is_some() {}
        let done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        match done.as_ref() {
            Some(Ok(response)) => message_object(py, response),
            Some(Err(e)) => Err(model_error(py, e)),
            None => Err(PyRuntimeError::new_err("the stream has not finished")),
        }
    }

    /// Waits until the whole message has arrived.
    fn until_done(&self, py: Python<'_>) -> PyResult<()> {
        self.get_final_message(py).map(drop)
    }
}
