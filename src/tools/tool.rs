//! What a built-in tool is ([`Tool`]) and what its call may touch ([`ToolContext`]).

use super::args::Args;
use crate::background::BackgroundManager;
use crate::runtime::{Interrupt, Interrupted};
use crate::secrets::Redactor;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// Which blocklist the tools use: the lesson's exactly, or production's (the same list, but
/// writing to /dev/null, /dev/stdout or /dev/stderr is allowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    Lesson,
    Production,
}

/// What a tool call may touch.
pub struct ToolContext<'a> {
    pub workdir: &'a Path,
    pub manager: &'a BackgroundManager,
    /// Offer and accept wait_background and kill_background.
    pub extended: bool,
    /// Longest wait_background may block.
    pub max_wait: Duration,
    /// How long wait_background blocks when the model gives no timeout (at most `max_wait`).
    pub default_wait: Duration,
    /// The blocking bash tool's timeout ([`BASH_TIMEOUT`](super::BASH_TIMEOUT) in the lesson).
    pub bash_timeout: Duration,
    /// Commands do not get the API credentials; outputs have their values redacted (before
    /// any cut).
    pub hide_secrets: bool,
    /// Polled while a tool waits; true means Ctrl-C was pressed.
    pub interrupted: Interrupt<'a>,
}

impl ToolContext<'_> {
    /// Production's tools (the extended set) come with production's guard.
    pub fn guard(&self) -> Guard {
        if self.extended {
            Guard::Production
        } else {
            Guard::Lesson
        }
    }
}

/// One built-in tool: its name, what the model is told about it, how its input becomes a
/// typed call, and what the call does. The type is the typed call.
pub trait Tool: Sized {
    const NAME: &'static str;
    /// Offered (and accepted) only in production mode.
    const PRODUCTION_ONLY: bool = false;
    /// The entry in the request's tool list: name, description, input schema.
    fn schema() -> Value;
    /// The entry in production's tool list, if production offers more than the lesson.
    fn production_schema() -> Value {
        Self::schema()
    }
    /// The call, or the answer the model gets instead (a missing or mistyped argument, worded
    /// for the mode `args` is read in).
    fn parse(args: &Args) -> Result<Self, String>;
    fn run(self, ctx: &ToolContext, redactor: &Redactor) -> Result<String, Interrupted>;
}

/// A tool's entry in the request's tool list.
pub fn schema(name: &str, description: &str, properties: Value, required: &[&str]) -> Value {
    let mut input_schema = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        input_schema["required"] = json!(required);
    }
    json!({"name": name, "description": description, "input_schema": input_schema})
}
