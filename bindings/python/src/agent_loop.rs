//! `run_loop`: the agent loop for Python, through the core's session. The adapters here let
//! Python objects stand where the core takes its own: a client, the `TOOLS` and
//! `TOOL_HANDLERS`, a subclass's overridden tools and drain, `print`.
//!
//! The loop runs without the GIL; it takes the GIL back only to touch Python objects: the
//! conversation list, a Python client, Python tool handlers, `print`, and the signal check.

use super::background::PyBackgroundManager;
use super::client::PyClient;
use super::conversation::{MessageCache, PyConversation};
use super::convert::{to_json, to_py};
use super::errors::{bad_seconds, core_error};
use super::pending::Pending;
use super::scripted::PyScriptedClient;
use super::trace::PyTracer;
use bgagent::agent::{Drain, LoopEvents};
use bgagent::background::{Details, Notification};
use bgagent::defaults;
use bgagent::error::{Error, Result};
use bgagent::llm::{CallContext, Model, ModelError, Request, Response};
use bgagent::runtime::Seconds;
use bgagent::session::{SessionConfig, Turn};
use bgagent::tools::{
    self, BackgroundRun, BuiltinTools, CheckBackground, Interrupted, KillBackground, Tool,
    ToolRunner,
};
use pyo3::exceptions::{PyKeyboardInterrupt, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn is_interrupt(py: Python<'_>, e: &PyErr) -> bool {
    e.is_instance_of::<PyKeyboardInterrupt>(py)
}

/// Any Python object with `.messages.create(**kwargs)`: `anthropic.Anthropic()`, a fake.
struct PyModel<'a> {
    client: Py<PyAny>,
    /// The model name as the caller gave it: `None` reaches the client as `None`, as in the
    /// lesson (the request itself carries `""` then).
    model: Option<String>,
    pending: &'a Pending,
}

/// Reads `name` as an attribute (SDK objects) or, failing that, as a key (dicts).
fn field<'py>(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    obj.getattr(name).or_else(|e| obj.get_item(name).map_err(|_| e))
}

impl Model for PyModel<'_> {
    fn create(
        &self,
        request: &Request,
        _ctx: &mut CallContext,
    ) -> std::result::Result<Response, ModelError> {
        Python::attach(|py| {
            let call = || -> PyResult<Response> {
                let kwargs = PyDict::new(py);
                kwargs.set_item("model", &self.model)?;
                kwargs.set_item("system", &request.system)?;
                let messages = PyList::empty(py);
                for message in &request.messages {
                    messages.append(to_py(py, message)?)?;
                }
                kwargs.set_item("messages", messages)?;
                kwargs.set_item("tools", to_py(py, &json!(request.tools))?)?;
                kwargs.set_item("max_tokens", request.max_tokens)?;
                let messages = self.client.bind(py).getattr("messages")?;
                let response = messages.call_method("create", (), Some(&kwargs))?;
                let content = field(&response, "content")?;
                let content = content.try_iter()?.map(|b| to_json(&b?)).collect::<PyResult<_>>()?;
                let stop = field(&response, "stop_reason")?;
                let stop_reason = if stop.is_none() { None } else { Some(stop.str()?.to_string()) };
                Ok(Response { content, stop_reason, rest: Default::default() })
            };
            call().map_err(|e| {
                if is_interrupt(py, &e) {
                    self.pending.keep(e);
                    return ModelError::Interrupted;
                }
                let text = e.to_string();
                self.pending.keep(e);
                ModelError::Other(text)
            })
        })
    }
}

/// Tools given as Python objects: the `TOOLS` list and the `TOOL_HANDLERS` dict.
struct PyTools<'a> {
    schemas: Py<PyList>,
    handlers: Py<PyDict>,
    pending: &'a Pending,
}

impl ToolRunner for PyTools<'_> {
    fn schemas(&self) -> Result<Vec<Value>> {
        Python::attach(|py| {
            let list = self.schemas.bind(py);
            list.iter().map(|t| to_json(&t)).collect::<PyResult<Vec<_>>>()
        })
        .map_err(|e| Error::InvalidMessage(format!("TOOLS: {e}")))
    }

    fn run(&mut self, name: &str, input: &Value) -> std::result::Result<String, Interrupted> {
        Python::attach(|py| {
            // The lesson's `handler(...) if handler else f"Unknown tool: ..."`: None is unknown.
            let handler = self.handlers.bind(py).get_item(name).ok().flatten();
            match handler.filter(|h| h.is_truthy().unwrap_or(true)) {
                Some(handler) => call_handler(&handler, input, self.pending),
                None => Ok(format!("Unknown tool: {name}")),
            }
        })
    }
}

/// `handler(**input)` as the lesson's loop calls it: whatever it raises becomes "Error: ..."
/// for the model, except an interrupt, which stops the loop.
fn call_handler(
    handler: &Bound<'_, PyAny>,
    input: &Value,
    pending: &Pending,
) -> std::result::Result<String, Interrupted> {
    let py = handler.py();
    let kwargs = to_py(py, input).and_then(|k| Ok(k.cast_into::<PyDict>()?));
    let output =
        kwargs.and_then(|k| handler.call((), Some(&k))).and_then(|o| Ok(o.str()?.to_string()));
    match output {
        Ok(text) => Ok(text),
        Err(e) if is_interrupt(py, &e) => {
            pending.keep(e);
            Err(Interrupted)
        }
        Err(e) => Ok(format!("Error: {}", e.value(py))),
    }
}

/// The built-in tools, with some replaced by Python callables (the methods a
/// `BackgroundManager` subclass overrides, keyed by the method's name): same schemas, same
/// command guard.
struct OverriddenTools<'a> {
    builtin: BuiltinTools<'a>,
    overrides: Py<PyDict>,
    pending: &'a Pending,
}

impl ToolRunner for OverriddenTools<'_> {
    fn schemas(&self) -> Result<Vec<Value>> {
        self.builtin.schemas()
    }

    fn run(&mut self, name: &str, input: &Value) -> std::result::Result<String, Interrupted> {
        let command = input.get("command").and_then(Value::as_str);
        let guard = self.builtin.ctx.guard();
        if name == BackgroundRun::NAME && command.is_some_and(|c| tools::is_dangerous(c, guard)) {
            return Ok("Error: Dangerous command blocked".to_string());
        }
        let handler = overridable(name).and_then(|method| {
            Python::attach(|py| {
                self.overrides.bind(py).get_item(method).ok().flatten().map(Bound::unbind)
            })
        });
        match handler {
            Some(handler) => {
                Python::attach(|py| call_handler(handler.bind(py), input, self.pending))
            }
            None => self.builtin.run(name, input),
        }
    }
}

/// The manager's method that answers a tool, for the tools a subclass can take over.
fn overridable(tool: &str) -> Option<&'static str> {
    match tool {
        BackgroundRun::NAME => Some("run"),
        CheckBackground::NAME => Some("check"),
        KillBackground::NAME => Some("kill"),
        _ => None,
    }
}

/// Prints what the lesson prints, through Python's `print` (so notebooks show it).
struct PyEvents {
    echo: bool,
}

impl LoopEvents for PyEvents {
    fn tool(&mut self, _id: &str, name: &str, output: &str) {
        if self.echo {
            Python::attach(|py| {
                let print = py.import("builtins").and_then(|b| b.getattr("print"));
                if let Ok(print) = print {
                    let _ = print.call1((format!("> {name}:"),));
                    let _ = print.call1((bgagent::text::prefix(output, 200),));
                }
            });
        }
    }
}

enum Builtin<'a> {
    Plain(BuiltinTools<'a>),
    Overridden(OverriddenTools<'a>),
}

/// A Python `drain_notifications` (a subclass's override): its dicts, read back as
/// notifications.
struct PyDrain<'a> {
    drain: Py<PyAny>,
    pending: &'a Pending,
}

impl PyDrain<'_> {
    fn call(&self) -> Result<Vec<Notification>> {
        Python::attach(|py| {
            let got = self.drain.bind(py).call0().and_then(|list| {
                list.try_iter()?.map(|n| notification_from(&n?)).collect::<PyResult<Vec<_>>>()
            });
            got.map_err(|e| {
                let text = format!("drain_notifications: {e}");
                self.pending.keep(e);
                Error::InvalidMessage(text)
            })
        })
    }
}

/// A notification dict (the manager's, or one a Python drain made) read back.
pub(crate) fn notification_from(note: &Bound<'_, PyAny>) -> PyResult<Notification> {
    let status: String = note.get_item("status")?.extract()?;
    Ok(Notification {
        task_id: note.get_item("task_id")?.extract()?,
        status: status.parse().map_err(PyValueError::new_err)?,
        command: note.get_item("command")?.extract()?,
        result: note.get_item("result")?.extract()?,
        exit_code: note.get_item("exit_code").ok().and_then(|c| c.extract().ok()),
        // Production's details, when the dict carries them (the manager's own dicts do).
        details: Details {
            duration: note
                .get_item("duration")
                .ok()
                .and_then(|d| d.extract::<f64>().ok())
                .and_then(|d| Duration::try_from_secs_f64(d).ok())
                .unwrap_or_default(),
            log_path: note.get_item("log_path").ok().and_then(|p| p.extract().ok()),
            tail: note.get_item("tail").ok().and_then(|t| t.extract().ok()).unwrap_or_default(),
        },
    })
}

/// The model behind a built-in client (called without going through Python), if it is one.
fn native_model(client: &Bound<'_, PyAny>) -> Option<Arc<dyn Model>> {
    if let Ok(c) = client.cast::<PyClient>() {
        return Some(c.get().http.clone());
    }
    client.cast::<PyScriptedClient>().ok().map(|c| c.get().model.clone())
}

/// Set from any thread to interrupt a loop running on another (`run_loop(stop=...)`), as
/// Ctrl-C does: tool calls get their answers and the loop raises KeyboardInterrupt.
#[pyclass(frozen, module = "bgagent._core")]
#[derive(Default)]
pub struct StopFlag(Arc<AtomicBool>);

#[pymethods]
impl StopFlag {
    #[new]
    fn new() -> Self {
        StopFlag::default()
    }

    fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Runs the agent loop on `messages` (a list, mutated in place).
#[pyfunction]
#[pyo3(signature = (messages, *, client, model, system, manager, workdir, tools=None, handlers=None,
                    mirror=false, max_wait=defaults::MAX_WAIT.as_secs_f64(),
                    max_tokens=defaults::MAX_TOKENS, echo=true, pass_api_key=false,
                    stop=None, overrides=None, drain=None, trace=None, cache=None),
       text_signature = "(messages, *, client, model, system, manager, workdir, tools=None, \
                         handlers=None, mirror=False, max_wait=300.0, max_tokens=8000, \
                         echo=True, pass_api_key=False, stop=None, overrides=None, drain=None, \
                         trace=None, cache=None)")]
#[allow(clippy::too_many_arguments)]
pub fn run_loop(
    py: Python<'_>,
    messages: &Bound<'_, PyList>,
    client: &Bound<'_, PyAny>,
    model: Option<String>,
    system: String,
    manager: &Bound<'_, PyAny>,
    workdir: PathBuf,
    tools: Option<&Bound<'_, PyList>>,
    handlers: Option<&Bound<'_, PyDict>>,
    mirror: bool,
    max_wait: f64,
    max_tokens: u32,
    echo: bool,
    pass_api_key: bool,
    stop: Option<&Bound<'_, StopFlag>>,
    overrides: Option<&Bound<'_, PyDict>>,
    drain: Option<&Bound<'_, PyAny>>,
    trace: Option<&Bound<'_, PyTracer>>,
    cache: Option<&Bound<'_, MessageCache>>,
) -> PyResult<()> {
    let tracer = trace.map(|t| Arc::clone(&t.get().tracer));
    let stop = stop.map(|s| Arc::clone(&s.get().0));
    let max_wait = Seconds::non_negative("max_wait", max_wait).map_err(bad_seconds)?.duration();
    let config = SessionConfig::new(workdir)
        .model(model.clone().unwrap_or_default())
        .system(system)
        .mirror(mirror)
        .pass_api_key(pass_api_key)
        .max_wait(max_wait)
        .max_tokens(max_tokens);
    let pending = Pending::default();
    let native = native_model(client);
    let py_model = PyModel { client: client.clone().unbind(), model, pending: &pending };
    let model: &dyn Model = match &native {
        Some(native) => native.as_ref(),
        None => &py_model,
    };
    let manager = core_manager(manager)?;
    let session = config.session(model, manager.get().manager(), tracer.as_deref());
    // Ctrl-C (in the main thread), or the stop flag of an async caller that was cancelled.
    let stopped = || stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst));
    let interrupted = || stopped() || pending.interrupted();
    let builtin = session.builtin_tools(&interrupted);
    let mut builtin = match overrides {
        Some(o) => Builtin::Overridden(OverriddenTools {
            builtin,
            overrides: o.clone().unbind(),
            pending: &pending,
        }),
        None => Builtin::Plain(builtin),
    };
    let drain = drain.map(|d| PyDrain { drain: d.clone().unbind(), pending: &pending });
    let drain_fn = drain.as_ref().map(|d| move || d.call());
    let mut py_tools = match (tools, handlers) {
        (Some(t), Some(h)) => Some(PyTools {
            schemas: t.clone().unbind(),
            handlers: h.clone().unbind(),
            pending: &pending,
        }),
        (None, None) => None,
        _ => return Err(PyValueError::new_err("give both tools and handlers, or neither")),
    };
    let runner: &mut dyn ToolRunner = match (&mut py_tools, &mut builtin) {
        (Some(t), _) => t,
        (None, Builtin::Overridden(t)) => t,
        (None, Builtin::Plain(t)) => t,
    };
    let sent = cache.map(|c| c.get().take()).unwrap_or_default();
    let mut conversation = PyConversation::new(messages.clone().unbind(), &pending, sent);
    let mut events = PyEvents { echo };
    let user = last_user_text(messages);
    let result = py.detach(|| {
        let turn = Turn {
            messages: &mut conversation,
            user: user.as_deref(),
            events: &mut events,
            interrupted: &interrupted,
            drain: drain_fn.as_ref().map(|d| d as Drain),
        };
        session.turn_with(runner, turn)
    });
    if let Some(cache) = cache {
        cache.get().put(conversation.into_sent());
    }
    // A Python exception raised inside (Ctrl-C, a Python client's error) is raised as itself.
    result.map_err(|e| pending.take().unwrap_or_else(|| core_error(py, &e)))
}

/// The text of the conversation's last message, when it is a user's text (it starts the turn).
fn last_user_text(messages: &Bound<'_, PyList>) -> Option<String> {
    let last = messages.get_item(messages.len().checked_sub(1)?).ok()?;
    last.get_item("content").ok()?.extract().ok()
}

/// The core of a `bgagent.BackgroundManager` (or the core object itself).
fn core_manager<'py>(manager: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBackgroundManager>> {
    if let Ok(core) = manager.cast::<PyBackgroundManager>() {
        return Ok(core.clone());
    }
    match manager.getattr("_core").map(|c| c.cast_into::<PyBackgroundManager>()) {
        Ok(Ok(core)) => Ok(core),
        _ => Err(PyTypeError::new_err(format!(
            "manager must be a bgagent.BackgroundManager, not {}",
            manager.get_type().name()?
        ))),
    }
}
