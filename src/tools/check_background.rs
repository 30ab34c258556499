//! `check_background`: one task's status and result, or every task's status.

use super::args::{py_truthy, py_type, Args};
use super::read_background::TAIL_LINES;
use super::tool::{schema, Tool, ToolContext};
use crate::background::lesson;
use crate::runtime::Interrupted;
use crate::secrets::Redactor;
use serde_json::{json, Value};

/// A call of the `check_background` tool.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckBackground {
    /// `None`: list every task.
    pub task_id: Option<String>,
}

impl Tool for CheckBackground {
    const NAME: &'static str = "check_background";

    fn schema() -> Value {
        let description = "Check background task status. Omit task_id to list all.";
        schema(Self::NAME, description, json!({"task_id": {"type": "string"}}), &[])
    }

    fn parse(args: &Args) -> Result<Self, String> {
        if args.lesson {
            // The lesson's `if task_id:` then `self.tasks.get(task_id)`, with another type.
            match args.raw("task_id") {
                Some(id @ (Value::Array(_) | Value::Object(_))) if py_truthy(id) => {
                    return Err(format!("Error: unhashable type: '{}'", py_type(id)))
                }
                Some(Value::Bool(true)) => return Err("Error: Unknown task True".to_string()),
                Some(id @ Value::Number(_)) if py_truthy(id) => {
                    return Err(format!("Error: Unknown task {id}"))
                }
                _ => {}
            }
        }
        Ok(CheckBackground { task_id: args.optional_string("task_id")? })
    }

    fn run(self, ctx: &ToolContext, _: &Redactor) -> Result<String, Interrupted> {
        // Production shows a running task's last lines where the lesson says `(running)`.
        let running = self.task_id.as_deref().and_then(|id| ctx.manager.task(id));
        if let Some(task) = running.filter(|t| ctx.extended && t.is_running() && !t.is_waiting()) {
            let (lines, _) = ctx.manager.tail(&task.id, TAIL_LINES).unwrap_or_default();
            // No output yet: `(running)`, as the lesson says.
            let lines = lines.trim_end();
            if !lines.is_empty() {
                let shown = Some(("running", task.command.as_str(), Some(lines)));
                return Ok(lesson::check_one(&task.id, shown));
            }
        }
        Ok(ctx.manager.check(self.task_id.as_deref()))
    }
}
