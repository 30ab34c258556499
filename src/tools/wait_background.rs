//! `wait_background` (production only): block until a task (or any task) finishes, bounded;
//! or, given a cursor, answer every task that finished after it (at once if there are any).

use super::args::Args;
use super::tool::{schema, Tool, ToolContext};
use crate::background::{production, Until};
use crate::runtime::Interrupted;
use crate::runtime::{poll_until, Seconds};
use crate::secrets::Redactor;
use serde_json::{json, Value};

/// A call of the `wait_background` tool.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitBackground {
    /// `None`: until any task finishes.
    pub task_id: Option<String>,
    /// Seconds, as the model gave them (checked when run); `None`: the context's default.
    pub timeout: Option<f64>,
    /// The cursor a previous answer gave (0 at first): answer the tasks finished after it.
    pub cursor: Option<i64>,
}

impl Tool for WaitBackground {
    const NAME: &'static str = "wait_background";
    const PRODUCTION_ONLY: bool = true;

    fn schema() -> Value {
        let description = "Wait until a background task finishes (or, without task_id, until \
                           any finishes), at most timeout seconds. Returns the task status. \
                           With cursor (0 the first time, then the cursor the last answer \
                           gave) instead of task_id: returns every task that finished after \
                           the cursor, at once if there are any, and the cursor to pass next.";
        let properties = json!({
            "task_id": {"type": "string"},
            "timeout": {"type": "number"},
            "cursor": {"type": "integer"},
        });
        schema(Self::NAME, description, properties, &[])
    }

    fn parse(args: &Args) -> Result<Self, String> {
        let task_id = args.optional_string("task_id")?;
        let cursor = args.optional_int("cursor")?;
        if task_id.is_some() && cursor.is_some() {
            return Err("Error: give wait_background a task_id or a cursor, not both".into());
        }
        Ok(WaitBackground { task_id, timeout: args.optional_number("timeout")?, cursor })
    }

    fn run(self, ctx: &ToolContext, _: &Redactor) -> Result<String, Interrupted> {
        let limit = match self.timeout.map(|t| Seconds::non_negative("timeout", t)) {
            None => ctx.default_wait.min(ctx.max_wait),
            Some(Ok(t)) => t.duration().min(ctx.max_wait),
            Some(Err(e)) => return Ok(format!("Error: {e}")),
        };
        let task_id = self.task_id.as_deref();
        if let Some(id) = task_id {
            if ctx.manager.task(id).is_none() {
                return Ok(format!("Error: Unknown task {id}"));
            }
        }
        let cursor = match self.cursor.map(u64::try_from) {
            None => None,
            Some(Ok(cursor)) => Some(cursor),
            Some(Err(_)) => return Ok("Error: cursor must be 0 or more".to_string()),
        };
        let wait = |until: Until<'_>| {
            poll_until(ctx.interrupted, Some(limit), |slice| {
                ctx.manager.wait(until, Some(slice)).ok().map(drop)
            })
        };
        match (task_id, cursor) {
            (None, Some(cursor)) => {
                let mut since = ctx.manager.finished_since(cursor);
                if cursor > since.cursor {
                    return Ok(production::cursor_ahead(cursor, since.cursor));
                }
                // Something finished after the cursor already: the answer is there.
                if since.cursor == cursor {
                    wait(Until::FinishedSince(cursor))?;
                    since = ctx.manager.finished_since(cursor);
                }
                Ok(production::finished_since(&since, cursor))
            }
            (Some(id), _) => {
                wait(Until::Ended(id))?;
                Ok(ctx.manager.check(task_id))
            }
            // Leave the queue alone: the loop injects what finished before the next call.
            (None, None) => {
                wait(Until::Finished)?;
                Ok(ctx.manager.check(None))
            }
        }
    }
}
