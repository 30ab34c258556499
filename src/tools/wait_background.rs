//! `wait_background` (production only): block until a task (or any task) finishes, bounded.

use super::args::Args;
use super::tool::{schema, Tool, ToolContext};
use crate::background::Until;
use crate::runtime::Interrupted;
use crate::runtime::{poll_until, Seconds};
use crate::secrets::Redactor;
use serde_json::{json, Value};

/// A call of the `wait_background` tool.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitBackground {
    /// `None`: until any task finishes.
    pub task_id: Option<String>,
    /// Seconds, as the model gave them (checked when run); `None`: the longest wait allowed.
    pub timeout: Option<f64>,
}

impl Tool for WaitBackground {
    const NAME: &'static str = "wait_background";
    const PRODUCTION_ONLY: bool = true;

    fn schema() -> Value {
        let description = "Wait until a background task finishes (or, without task_id, until \
                           any finishes), at most timeout seconds. Returns the task status.";
        let properties = json!({"task_id": {"type": "string"}, "timeout": {"type": "number"}});
        schema(Self::NAME, description, properties, &[])
    }

    fn parse(args: &Args) -> Result<Self, String> {
        let task_id = args.optional_string("task_id")?;
        Ok(WaitBackground { task_id, timeout: args.optional_number("timeout")? })
    }

    fn run(self, ctx: &ToolContext, _: &Redactor) -> Result<String, Interrupted> {
        let limit = match self.timeout.map(|t| Seconds::non_negative("timeout", t)) {
            None => ctx.max_wait,
            Some(Ok(t)) => t.duration().min(ctx.max_wait),
            Some(Err(e)) => return Ok(format!("Error: {e}")),
        };
        let task_id = self.task_id.as_deref();
        if let Some(id) = task_id {
            if ctx.manager.task(id).is_none() {
                return Ok(format!("Error: Unknown task {id}"));
            }
        }
        let until = match task_id {
            Some(id) => Until::Ended(id),
            // Leave the queue alone: the loop injects what finished before the next call.
            None => Until::Finished,
        };
        poll_until(ctx.interrupted, Some(limit), |slice| {
            ctx.manager.wait(until, Some(slice)).ok().map(drop)
        })?;
        Ok(ctx.manager.check(task_id))
    }
}
