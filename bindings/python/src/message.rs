//! One Messages API call from Python's keywords, shared by `Client`, `ScriptedClient` and
//! `Client.messages.stream`: the request from the SDK's keywords, the call without the GIL,
//! the reply as a message object.

use super::convert::{to_block, to_json};
use super::errors::{model_error, ConfigError};
use super::pending::Pending;
use bgagent::llm::{CallContext, Model, Request, Response};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde_json::Value;

/// One call of a built-in model from Python: without the GIL, Ctrl-C stopping it, the reply
/// as a message object.
pub(crate) fn create_message<'py>(
    py: Python<'py>,
    model: &dyn Model,
    request: &Request,
) -> PyResult<Bound<'py, PyAny>> {
    let pending = Pending::default();
    let response = py.detach(|| {
        let mut ignore = |_: &str| {};
        let interrupted = || pending.interrupted();
        let mut ctx = CallContext { on_text: &mut ignore, interrupted: &interrupted };
        model.create(request, &mut ctx)
    });
    let response = response.map_err(|e| pending.take().unwrap_or_else(|| model_error(py, &e)))?;
    message_object(py, &response)
}

/// A request from `create`'s and `stream`'s keywords.
pub(crate) fn build_request(
    model: Option<String>,
    messages: &Bound<'_, PyAny>,
    max_tokens: u32,
    system: Option<String>,
    tools: Option<&Bound<'_, PyAny>>,
    other: Option<&Bound<'_, PyDict>>,
) -> PyResult<Request> {
    let model = model
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ConfigError::new_err("no model name: set MODEL_ID (or pass model=...)"))?;
    let messages = match to_json(messages)? {
        Value::Array(list) => list,
        _ => return Err(PyValueError::new_err("messages must be a list")),
    };
    let tools = match tools.map(to_json).transpose()? {
        Some(Value::Array(list)) => list,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err(PyValueError::new_err("tools must be a list")),
    };
    let extra = match other.map(|o| to_json(o.as_any())).transpose()? {
        Some(Value::Object(map)) => map,
        _ => Default::default(),
    };
    let system = system.unwrap_or_default();
    Ok(Request { model, system, messages, tools, max_tokens, extra })
}

/// A response as a `Block` whose `content` is a list of `Block`s.
pub(crate) fn message_object<'py>(
    py: Python<'py>,
    response: &Response,
) -> PyResult<Bound<'py, PyAny>> {
    let mut whole =
        serde_json::to_value(response).map_err(|e| PyValueError::new_err(e.to_string()))?;
    whole["content"] = Value::Null;
    let message = to_block(py, &whole)?;
    let blocks = PyList::empty(py);
    for block in &response.content {
        blocks.append(to_block(py, block)?)?;
    }
    message.set_item("content", blocks)?;
    Ok(message)
}
