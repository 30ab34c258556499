//! The package's exceptions, named after the anthropic SDK's where they mean the same thing,
//! and the mapping from the core's errors to them.

use bgagent::error::Error;
use bgagent::llm::ModelError;
use bgagent::runtime::BadSeconds;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt, PyOSError, PyValueError};
use pyo3::prelude::*;

create_exception!(
    bgagent,
    BgagentError,
    PyException,
    "Every error bgagent raises derives from this."
);
create_exception!(bgagent, APIError, BgagentError, "A model call failed.");
create_exception!(bgagent, APIStatusError, APIError, "The server answered with an error status.");
create_exception!(bgagent, BadRequestError, APIStatusError, "HTTP 400.");
create_exception!(bgagent, AuthenticationError, APIStatusError, "HTTP 401: check the API key.");
create_exception!(bgagent, PermissionDeniedError, APIStatusError, "HTTP 403.");
create_exception!(
    bgagent,
    NotFoundError,
    APIStatusError,
    "HTTP 404: check the base URL and model."
);
create_exception!(bgagent, RateLimitError, APIStatusError, "HTTP 429.");
create_exception!(bgagent, InternalServerError, APIStatusError, "HTTP 5xx (529: overloaded).");
create_exception!(bgagent, APIConnectionError, APIError, "The server could not be reached.");
create_exception!(
    bgagent,
    APITimeoutError,
    APIConnectionError,
    "The server did not answer in time."
);
create_exception!(
    bgagent,
    APIResponseValidationError,
    APIError,
    "The server's answer was not a Messages API response."
);
create_exception!(
    bgagent,
    ConfigError,
    BgagentError,
    "A missing model name, API key or setting: set it and try again."
);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("BgagentError", py.get_type::<BgagentError>())?;
    m.add("APIError", py.get_type::<APIError>())?;
    m.add("APIStatusError", py.get_type::<APIStatusError>())?;
    m.add("BadRequestError", py.get_type::<BadRequestError>())?;
    m.add("AuthenticationError", py.get_type::<AuthenticationError>())?;
    m.add("PermissionDeniedError", py.get_type::<PermissionDeniedError>())?;
    m.add("NotFoundError", py.get_type::<NotFoundError>())?;
    m.add("RateLimitError", py.get_type::<RateLimitError>())?;
    m.add("InternalServerError", py.get_type::<InternalServerError>())?;
    m.add("APIConnectionError", py.get_type::<APIConnectionError>())?;
    m.add("APITimeoutError", py.get_type::<APITimeoutError>())?;
    m.add("APIResponseValidationError", py.get_type::<APIResponseValidationError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    Ok(())
}

pub fn model_error(py: Python<'_>, e: &ModelError) -> PyErr {
    let message = e.to_string();
    let err = match e {
        ModelError::Status { status, .. } => match status {
            400 => BadRequestError::new_err(message.clone()),
            401 => AuthenticationError::new_err(message.clone()),
            403 => PermissionDeniedError::new_err(message.clone()),
            404 => NotFoundError::new_err(message.clone()),
            429 => RateLimitError::new_err(message.clone()),
            s if *s >= 500 => InternalServerError::new_err(message.clone()),
            _ => APIStatusError::new_err(message.clone()),
        },
        ModelError::Connection { .. } => APIConnectionError::new_err(message.clone()),
        ModelError::Timeout { .. } => APITimeoutError::new_err(message.clone()),
        ModelError::InvalidResponse { .. } => APIResponseValidationError::new_err(message.clone()),
        ModelError::Config(_) => ConfigError::new_err(message.clone()),
        ModelError::Other(_) => APIError::new_err(message.clone()),
        ModelError::Interrupted => return PyKeyboardInterrupt::new_err("interrupted"),
    };
    let value = err.value(py);
    let _ = value.setattr("message", &message);
    if let ModelError::Status { status, error_type, request_id, .. } = e {
        let _ = value.setattr("status_code", *status);
        let _ = value.setattr("type", error_type);
        let _ = value.setattr("request_id", request_id.as_deref());
    }
    err
}

pub fn core_error(py: Python<'_>, e: &Error) -> PyErr {
    match e {
        Error::Model(m) => model_error(py, m),
        Error::Interrupted => PyKeyboardInterrupt::new_err("interrupted"),
        Error::BadLogDir { .. } | Error::State { .. } => PyOSError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// A duration argument the core's one rule refused: ValueError naming the parameter.
pub(crate) fn bad_seconds(e: BadSeconds) -> PyErr {
    PyValueError::new_err(e.to_string())
}
