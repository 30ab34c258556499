//! The conversation as a Python list, mutated in place like the lesson's, and what was last
//! sent of it, so that a model call converts only the messages that are new or changed.
//!
//! Converting a message from Python costs about 3 µs, so converting the whole list at every
//! call makes a long session quadratic. A message made of plain data stays converted, with a
//! snapshot of the objects it was made of ([`Snapshot`]); it is reused while every one of them
//! is still in place, which a walk comparing addresses tells at a small part of a conversion's
//! cost. A message changed in any way (in place included), and any message holding other
//! objects (an SDK object, whose conversion calls its code), is converted again.

use super::convert::{to_block, to_json, to_py, Snapshot};
use super::pending::Pending;
use bgagent::agent::Conversation;
use bgagent::error::{Error, Result};
use bgagent::llm::Response;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde_json::Value;
use std::sync::Mutex;

/// The messages as last sent, one by one.
#[derive(Default)]
pub(crate) struct Sent {
    /// Per message: the snapshot that tells it is unchanged, or None (convert it each time).
    snapshots: Vec<Option<Snapshot>>,
    /// Their JSON; lent to the request during a call (empty then).
    values: Vec<Value>,
}

impl Sent {
    /// Every message of `list` as JSON, converting only what is new or changed.
    fn refresh(&mut self, list: &Bound<'_, PyList>) -> PyResult<Vec<Value>> {
        let mut values = std::mem::take(&mut self.values);
        if values.len() != self.snapshots.len() {
            // Not given back (the call failed): nothing is known.
            values.clear();
            self.snapshots.clear();
        }
        let mut count = 0;
        for (i, message) in list.iter().enumerate() {
            count = i + 1;
            if let Some(Some(snapshot)) = self.snapshots.get(i) {
                if snapshot.matches(&message) {
                    continue;
                }
            }
            // Taken before converting: converting plain data runs no Python code, so no other
            // thread can change the message between the two.
            let snapshot = Snapshot::of(&message);
            let value = to_json(&message)?;
            if i < values.len() {
                values[i] = value;
                self.snapshots[i] = snapshot;
            } else {
                values.push(value);
                self.snapshots.push(snapshot);
            }
        }
        values.truncate(count);
        self.snapshots.truncate(count);
        Ok(values)
    }

    /// The messages `refresh` gave, back once the request is done with them.
    fn give_back(&mut self, values: Vec<Value>) {
        if self.values.is_empty() && values.len() == self.snapshots.len() {
            self.values = values;
        }
    }
}

/// What an `Agent` keeps of its conversation between runs (see the module's doc).
#[pyclass(frozen, module = "bgagent._core")]
#[derive(Default)]
pub struct MessageCache(Mutex<Sent>);

#[pymethods]
impl MessageCache {
    #[new]
    fn new() -> Self {
        MessageCache::default()
    }
}

impl MessageCache {
    /// Taken for one run (a run at the same time on another thread starts from nothing).
    pub(crate) fn take(&self) -> Sent {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub(crate) fn put(&self, sent: Sent) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = sent;
    }
}

/// `messages` as a Python list, mutated in place like the lesson's.
pub(crate) struct PyConversation<'a> {
    list: Py<PyList>,
    pending: &'a Pending,
    sent: Mutex<Sent>,
}

impl<'a> PyConversation<'a> {
    pub fn new(list: Py<PyList>, pending: &'a Pending, sent: Sent) -> Self {
        PyConversation { list, pending, sent: Mutex::new(sent) }
    }

    /// What was sent, for the next run.
    pub fn into_sent(self) -> Sent {
        self.sent.into_inner().unwrap_or_else(|p| p.into_inner())
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, Sent> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn append(
        &self,
        role: &str,
        content: impl FnOnce(Python<'_>) -> PyResult<Py<PyAny>>,
    ) -> Result<()> {
        Python::attach(|py| {
            let message = PyDict::new(py);
            message.set_item("role", role)?;
            message.set_item("content", content(py)?)?;
            self.list.bind(py).append(message)
        })
        .map_err(|e| self.invalid(e))
    }

    fn invalid(&self, e: PyErr) -> Error {
        let text = e.to_string();
        self.pending.keep(e);
        Error::InvalidMessage(text)
    }
}

impl Conversation for PyConversation<'_> {
    fn len(&self) -> usize {
        Python::attach(|py| self.list.bind(py).len())
    }

    fn to_json(&self) -> Result<Vec<Value>> {
        Python::attach(|py| self.memo().refresh(self.list.bind(py))).map_err(|e| self.invalid(e))
    }

    fn sent(&self, messages: Vec<Value>) {
        self.memo().give_back(messages);
    }

    fn push_user(&mut self, content: Value) -> Result<()> {
        self.append("user", |py| Ok(to_py(py, &content)?.unbind()))
    }

    fn push_assistant(&mut self, response: &Response) -> Result<()> {
        self.append("assistant", |py| {
            let blocks = PyList::empty(py);
            for block in &response.content {
                blocks.append(to_block(py, block)?)?;
            }
            Ok(blocks.into_any().unbind())
        })
    }
}
