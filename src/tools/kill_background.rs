//! `kill_background` (production only): stop a running task and everything it started.

use super::args::Args;
use super::tool::{schema, Tool, ToolContext};
use crate::runtime::Interrupted;
use crate::secrets::Redactor;
use serde_json::{json, Value};

/// A call of the `kill_background` tool.
#[derive(Debug, Clone, PartialEq)]
pub struct KillBackground {
    pub task_id: String,
}

impl Tool for KillBackground {
    const NAME: &'static str = "kill_background";
    const PRODUCTION_ONLY: bool = true;

    fn schema() -> Value {
        let description = "Stop a running background task and everything it started.";
        schema(Self::NAME, description, json!({"task_id": {"type": "string"}}), &["task_id"])
    }

    fn parse(args: &Args) -> Result<Self, String> {
        Ok(KillBackground { task_id: args.string("task_id")? })
    }

    fn run(self, ctx: &ToolContext, _: &Redactor) -> Result<String, Interrupted> {
        Ok(ctx.manager.kill(&self.task_id))
    }
}
