//! Talking to a model: the Messages API's request and response, the `Model` trait, and three
//! models (the HTTP client, a scripted replay for tests and demos, and, in the Python binding,
//! any object with `.messages.create(**kwargs)`).
//!
//! Messages and content blocks stay JSON values: the loop passes through whatever the caller
//! put in the conversation (dicts, SDK objects converted to dicts, other block types), and
//! reads blocks through [`Block`].

pub mod block;
mod http;
mod scripted;
mod sse;
mod sse_lines;

pub use block::{Block, ToolUse};
pub use http::{HttpClient, HttpConfig};
pub use scripted::ScriptedModel;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

/// One call's input, as the lesson builds it.
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    pub model: String,
    pub system: String,
    pub messages: Vec<Value>,
    pub tools: Vec<Value>,
    pub max_tokens: u32,
    /// Any other Messages API field (`temperature`, `tool_choice`, `thinking`, ...), sent as
    /// given: the server decides what it accepts.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

/// The model's answer: the fields the loop reads, plus everything else kept as it came.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Response {
    #[serde(default)]
    pub content: Vec<Value>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(flatten)]
    pub rest: serde_json::Map<String, Value>,
}

impl Response {
    pub fn blocks(&self) -> impl Iterator<Item = Block<'_>> {
        self.content.iter().map(Block::of)
    }

    /// The tool calls, in order.
    pub fn tool_uses(&self) -> impl Iterator<Item = ToolUse<'_>> {
        self.blocks().filter_map(|b| match b {
            Block::ToolUse(call) => Some(call),
            _ => None,
        })
    }

    /// The text blocks joined, as a REPL would print them.
    pub fn text(&self) -> String {
        block::joined_text(&self.content)
    }
}

/// What a model call running on another thread (or task) reports to the one waiting for it:
/// each piece of text as it streams in, then the outcome.
pub enum Progress {
    Text(String),
    Done(Result<Response, ModelError>),
}

impl Progress {
    /// The next report, waiting at most `wait` (`None`: nothing yet). A sender gone without
    /// reporting the outcome is reported as a failure: `who` stopped.
    pub fn receive(from: &Receiver<Progress>, wait: Duration, who: &str) -> Option<Progress> {
        match from.recv_timeout(wait) {
            Ok(progress) => Some(progress),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                Some(Progress::Done(Err(ModelError::Other(format!("{who} stopped")))))
            }
        }
    }
}

/// Why a model call failed. Each kind maps to the Python exception of the same meaning.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ModelError {
    /// The server answered with an error status.
    #[error("{status} {error_type}: {message}{}", request_id.as_deref().map(|r| format!(" (request id {r})")).unwrap_or_default())]
    Status { status: u16, error_type: String, message: String, request_id: Option<String> },
    #[error("cannot reach the model server at {url}: {reason}. Check ANTHROPIC_BASE_URL and the network")]
    Connection { url: String, reason: String },
    #[error("the model server at {url} did not answer within {}s", after.as_secs_f64())]
    Timeout { url: String, after: Duration },
    /// The server answered, but not with a Messages API response.
    #[error("invalid response from {url}: {reason}")]
    InvalidResponse { url: String, reason: String },
    /// Missing model name or key, or an unusable setting.
    #[error("{0}")]
    Config(String),
    /// Any other failure (a Python client raising, a scripted model running dry).
    #[error("{0}")]
    Other(String),
    #[error("interrupted")]
    Interrupted,
}

/// What a model call may use while it runs.
pub struct CallContext<'a> {
    /// Called with each piece of text as it streams in (only streaming models call it).
    pub on_text: &'a mut dyn FnMut(&str),
    /// Polled while waiting; true means Ctrl-C was pressed.
    pub interrupted: &'a (dyn Fn() -> bool + Sync),
}

pub trait Model: Send + Sync {
    fn create(&self, request: &Request, ctx: &mut CallContext) -> Result<Response, ModelError>;
}
