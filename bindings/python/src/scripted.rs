//! `bgagent.ScriptedClient`: a model that answers from a script, for notebooks, examples and
//! tests without a key. The same model the CLI's `--script` (and, with `demo()`, `--demo`)
//! plays.

use super::convert::to_json;
use super::message::{build_request, create_message};
use bgagent::llm::{Model, Response, ScriptedModel};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::sync::Arc;

/// A client whose `messages.create` answers with the next of `responses` (each a dict with
/// `content` blocks and a `stop_reason`), recording the last `keep_requests` requests it got
/// (100 unless told; None: every one).
#[pyclass(frozen, name = "ScriptedClient", module = "bgagent")]
pub struct PyScriptedClient {
    pub(crate) model: Arc<dyn Model>,
    script: Option<Arc<ScriptedModel>>,
}

#[pymethods]
impl PyScriptedClient {
    #[new]
    // The signature Python shows names the default itself (ScriptedModel::KEEP_REQUESTS).
    #[pyo3(signature = (responses, *, keep_requests=Some(ScriptedModel::KEEP_REQUESTS)),
           text_signature = "(responses, *, keep_requests=100)")]
    fn new(responses: &Bound<'_, PyAny>, keep_requests: Option<usize>) -> PyResult<Self> {
        let parsed: Vec<Response> = serde_json::from_value(to_json(responses)?).map_err(|e| {
            PyValueError::new_err(format!(
                "responses must be a list of {{'content': [...], 'stop_reason': ...}}: {e}"
            ))
        })?;
        let script = Arc::new(ScriptedModel::new(parsed).keeping(keep_requests));
        Ok(PyScriptedClient { model: script.clone(), script: Some(script) })
    }

    /// The model of `bgagent --demo`: it plays the lesson's three prompts (`DEMO_PROMPTS`).
    #[staticmethod]
    fn demo() -> Self {
        PyScriptedClient { model: Arc::new(bgagent::cli::demo::DemoModel), script: None }
    }

    /// The lesson's three "try it" prompts, which `demo()` answers.
    #[classattr]
    #[allow(non_snake_case)]
    fn DEMO_PROMPTS() -> Vec<&'static str> {
        bgagent::cli::demo::PROMPTS.to_vec()
    }

    /// `self`, so that `client.messages.create(...)` reads like the SDK.
    #[getter]
    fn messages(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// The next scripted reply (the requests are recorded); APIError when none is left.
    #[pyo3(signature = (*, model, messages, max_tokens, system=None, tools=None, **other))]
    #[allow(clippy::too_many_arguments)]
    fn create<'py>(
        &self,
        py: Python<'py>,
        model: Option<String>,
        messages: &Bound<'py, PyAny>,
        max_tokens: u32,
        system: Option<String>,
        tools: Option<&Bound<'py, PyAny>>,
        other: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request = build_request(model, messages, max_tokens, system, tools, other)?;
        create_message(py, self.model.as_ref(), &request)
    }

    /// The requests received so far (the last `keep_requests`), as the JSON bodies a server
    /// would have got, oldest first.
    #[getter]
    fn requests<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let bodies = self.script.as_ref().map(|s| s.requests()).unwrap_or_default();
        let list = PyList::empty(py);
        for body in &bodies {
            list.append(super::convert::to_py(py, body)?)?;
        }
        Ok(list)
    }

    /// How many scripted replies are left.
    #[getter]
    fn remaining(&self) -> usize {
        self.script.as_ref().map_or(0, |s| s.remaining())
    }

    fn __repr__(&self) -> String {
        match &self.script {
            Some(s) => format!("<bgagent.ScriptedClient remaining={}>", s.remaining()),
            None => "<bgagent.ScriptedClient demo>".to_string(),
        }
    }
}
