//! `bgagent.Client`: the built-in Messages API client, shaped like the SDK's.

use super::errors::{bad_seconds, model_error};
use super::message::{build_request, create_message};
use super::stream::PyMessageStream;
use bgagent::defaults;
use bgagent::llm::{HttpClient, HttpConfig};
use bgagent::runtime::Seconds;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::Value;
use std::sync::Arc;

/// The built-in Messages API client, for Python. `client.messages.create(**kwargs)` works
/// like the SDK's, so it can stand where `anthropic.Anthropic()` stands.
#[pyclass(frozen, name = "Client", module = "bgagent")]
pub struct PyClient {
    pub(crate) http: Arc<HttpClient>,
}

#[pymethods]
impl PyClient {
    #[new]
    // The signature Python shows names the defaults themselves (checked against DEFAULTS).
    #[pyo3(signature = (*, base_url=None, api_key=None, auth_token=None,
                        timeout=defaults::CLIENT_TIMEOUT.as_secs_f64(),
                        max_retries=defaults::CLIENT_MAX_RETRIES, stream=false),
           text_signature = "(*, base_url=None, api_key=None, auth_token=None, timeout=600.0, \
                             max_retries=2, stream=False)")]
    fn new(
        base_url: Option<String>,
        api_key: Option<String>,
        auth_token: Option<String>,
        timeout: f64,
        max_retries: u32,
        stream: bool,
    ) -> PyResult<Self> {
        let timeout = Seconds::positive("timeout", timeout).map_err(bad_seconds)?.duration();
        let env = HttpConfig::from_env();
        let config = HttpConfig {
            base_url: base_url.filter(|u| !u.is_empty()).unwrap_or(env.base_url),
            api_key: api_key.or(env.api_key),
            auth_token: auth_token.or(env.auth_token),
            timeout,
            max_retries,
            stream,
        };
        let http = HttpClient::new(config).map_err(|e| Python::attach(|py| model_error(py, &e)))?;
        Ok(PyClient { http: Arc::new(http) })
    }

    /// `self`, so that `client.messages.create(...)` reads like the SDK.
    #[getter]
    fn messages(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[getter]
    fn base_url(&self) -> String {
        self.http.config().base_url.clone()
    }

    /// One Messages API call; returns the message (attribute and key access both work). Every
    /// other keyword (`temperature`, `tool_choice`, `thinking`, `stop_sequences`, `metadata`,
    /// ...) goes into the request as given.
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
        create_message(py, self.http.as_ref(), &request)
    }

    /// Like the SDK's `client.messages.stream(...)`: a context manager whose `text_stream`
    /// yields the text as it arrives, and `get_final_message()` the whole message.
    #[pyo3(signature = (*, model, messages, max_tokens, system=None, tools=None, **other))]
    #[allow(clippy::too_many_arguments)]
    fn stream(
        &self,
        model: Option<String>,
        messages: &Bound<'_, PyAny>,
        max_tokens: u32,
        system: Option<String>,
        tools: Option<&Bound<'_, PyAny>>,
        other: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyMessageStream> {
        let mut request = build_request(model, messages, max_tokens, system, tools, other)?;
        request.extra.insert("stream".into(), Value::Bool(true));
        Ok(PyMessageStream::start(self.http.clone(), request))
    }

    fn __repr__(&self) -> String {
        format!("<bgagent.Client base_url={:?}>", self.http.config().base_url)
    }
}
