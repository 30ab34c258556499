//! `background_run`: start a command as a background task and answer at once.

use super::args::Args;
use super::bash::is_dangerous;
use super::tool::{schema, Tool, ToolContext};
use crate::runtime::Interrupted;
use crate::secrets::Redactor;
use serde_json::{json, Value};

/// A call of the `background_run` tool.
#[derive(Debug, Clone, PartialEq)]
pub struct BackgroundRun {
    pub command: String,
}

impl Tool for BackgroundRun {
    const NAME: &'static str = "background_run";

    fn schema() -> Value {
        let description = "Run command in background thread. Returns task_id immediately.";
        schema(Self::NAME, description, json!({"command": {"type": "string"}}), &["command"])
    }

    fn parse(args: &Args) -> Result<Self, String> {
        args.lesson_require(&["command"])?;
        // The lesson's answer (`command[:80]`) is the first to touch it.
        args.lesson_command(|t| format!("Error: '{t}' object is not subscriptable"))?;
        Ok(BackgroundRun { command: args.string("command")? })
    }

    fn run(self, ctx: &ToolContext, _: &Redactor) -> Result<String, Interrupted> {
        Ok(if is_dangerous(&self.command, ctx.guard()) {
            "Error: Dangerous command blocked".to_string()
        } else {
            ctx.manager.run(&self.command)
        })
    }
}
