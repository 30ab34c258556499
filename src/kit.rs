//! Background tasks for a loop of one's own (on the `anthropic` SDK, an OpenAI-style loop, an
//! MCP server): the definitions of production's background tools, in the Anthropic or the
//! OpenAI Chat Completions format; one call that runs a tool use and gives the tool-result
//! text; and the `<background-results>` block a loop injects for finished tasks. The names,
//! schemas and texts are those bgagent's own loop gives the model.

use crate::agent::{background_results, production_results};
use crate::background::{BackgroundManager, Notification};
use crate::runtime::{Interrupt, Interrupted};
use crate::tools::{self, ToolContext, BACKGROUND_TOOLS};
use serde_json::{json, Value};
use std::time::Duration;

/// How a tool definition is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `{"name", "description", "input_schema"}` (the Messages API).
    Anthropic,
    /// `{"type": "function", "function": {"name", "description", "parameters"}}` (Chat
    /// Completions).
    OpenAi,
}

/// The background tools over one manager.
pub struct BackgroundTools<'a> {
    manager: &'a BackgroundManager,
    default_wait: Duration,
    max_wait: Duration,
}

impl<'a> BackgroundTools<'a> {
    /// `wait_background` waits [`crate::defaults::MAX_WAIT`] at most, and that long when no
    /// timeout is given.
    pub fn new(manager: &'a BackgroundManager) -> Self {
        let wait = crate::defaults::MAX_WAIT;
        BackgroundTools { manager, default_wait: wait, max_wait: wait }
    }

    /// How long `wait_background` blocks without a timeout, and at most.
    pub fn waits(mut self, default: Duration, max: Duration) -> Self {
        self.default_wait = default.min(max);
        self.max_wait = max;
        self
    }

    /// The six tools' definitions, in the order [`BACKGROUND_TOOLS`] names them.
    pub fn definitions(&self, format: Format) -> Vec<Value> {
        let all = tools::extended_tools();
        let ours =
            BACKGROUND_TOOLS.iter().filter_map(|name| all.iter().find(|t| t["name"] == *name));
        ours.map(|t| match format {
            Format::Anthropic => t.clone(),
            Format::OpenAi => json!({"type": "function", "function": {
                "name": t["name"],
                "description": t["description"],
                "parameters": t["input_schema"],
            }}),
        })
        .collect()
    }

    /// Runs one tool use: `input` is the tool's arguments as an object, or as the JSON text
    /// of one (as OpenAI sends them). Every problem (an unknown tool, a bad argument) comes
    /// back as an `Error: ...` text for the model.
    pub fn call(&self, name: &str, input: &Value) -> String {
        match self.call_until(name, input, &|| false) {
            Ok(text) => text,
            Err(Interrupted) => "Error: interrupted".to_string(),
        }
    }

    /// [`Self::call`], polling `interrupted` while a tool waits (Ctrl-C).
    pub fn call_until(
        &self,
        name: &str,
        input: &Value,
        interrupted: Interrupt<'_>,
    ) -> Result<String, Interrupted> {
        if !BACKGROUND_TOOLS.contains(&name) {
            return Ok(format!("Unknown tool: {name}"));
        }
        let parsed;
        let input = match input {
            Value::String(text) => match serde_json::from_str::<Value>(text) {
                Ok(value) => {
                    parsed = value;
                    &parsed
                }
                Err(e) => return Ok(format!("Error: the arguments of {name} are not JSON: {e}")),
            },
            other => other,
        };
        if !input.is_object() {
            return Ok(format!("Error: the arguments of {name} must be a JSON object"));
        }
        let ctx = ToolContext {
            workdir: self.manager.workdir(),
            manager: self.manager,
            extended: true,
            max_wait: self.max_wait,
            default_wait: self.default_wait,
            bash_timeout: tools::BASH_TIMEOUT,
            hide_secrets: self.manager.hides_secrets(),
            interrupted,
        };
        tools::call(&ctx, name, input)
    }
}

/// The block a loop injects for drained notifications: production's (status, exit code,
/// duration, log file, the head and the tail of the output) or, with `lesson`, the lesson's
/// one line per task.
pub fn results_block(notes: &[Notification], lesson: bool) -> String {
    if lesson {
        background_results(notes, false)
    } else {
        production_results(notes)
    }
}
