//! `read_background` (production only): a task's output while it runs or after: its last
//! lines, or what follows an offset, and where to read next.

use super::args::Args;
use super::tool::{schema, Tool, ToolContext};
use crate::background::BackgroundManager;
use crate::runtime::Interrupted;
use crate::secrets::Redactor;
use serde_json::{json, Value};
use std::time::Duration;

/// Lines shown when no offset is given.
pub const TAIL_LINES: usize = 20;
/// Bytes read per call: at most this many characters too.
const MAX_BYTES: usize = 50_000;

/// A call of the `read_background` tool.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadBackground {
    pub task_id: String,
    /// A byte offset a previous call gave; `None`: the last lines.
    pub after: Option<i64>,
}

impl Tool for ReadBackground {
    const NAME: &'static str = "read_background";
    const PRODUCTION_ONLY: bool = true;

    fn schema() -> Value {
        let description = "Read a background task's output, while it runs or after. Without \
                           after: its last 20 lines. With after (an offset a previous call \
                           gave): the output from there, up to 50000 characters. Ends with the \
                           offset to read from next and whether the task still runs.";
        let properties = json!({"task_id": {"type": "string"}, "after": {"type": "integer"}});
        schema(Self::NAME, description, properties, &["task_id"])
    }

    fn parse(args: &Args) -> Result<Self, String> {
        Ok(ReadBackground { task_id: args.string("task_id")?, after: args.optional_int("after")? })
    }

    fn run(self, ctx: &ToolContext, _: &Redactor) -> Result<String, Interrupted> {
        Ok(read_background(ctx.manager, &self.task_id, self.after))
    }
}

/// The tool's answer: the output asked for, then a line with the next offset and the
/// task's state.
pub fn read_background(manager: &BackgroundManager, id: &str, after: Option<i64>) -> String {
    let after = match after {
        Some(a) if a < 0 => return "Error: after must be an offset of 0 or more".to_string(),
        Some(a) => Some(a as u64),
        None => None,
    };
    let (mut text, next, dropped) = match after {
        None => match manager.tail(id, TAIL_LINES) {
            Ok((text, end)) => (text, end, 0),
            Err(message) => return message,
        },
        Some(after) => match manager.read(id, after, MAX_BYTES, Duration::ZERO) {
            Ok(read) => (read.text, read.next, read.dropped),
            Err(message) => return message,
        },
    };
    let Some(task) = manager.task(id) else {
        return crate::background::lesson::unknown_task(id);
    };
    if dropped > 0 {
        text.insert_str(0, &format!("[{dropped} bytes before this are no longer kept]\n"));
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let state = if task.is_running() {
        "the task still runs".to_string()
    } else {
        match task.exit_code() {
            Some(code) => format!("the task has ended: {} (exit {code})", task.status()),
            None => format!("the task has ended: {}", task.status()),
        }
    };
    let empty = if text.is_empty() { "(no output)\n" } else { "" };
    format!("{text}{empty}[next offset: {next}; {state}]")
}
