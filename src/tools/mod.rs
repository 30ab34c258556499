//! The agent's tools: the lesson's six (bash, read_file, write_file, edit_file, background_run,
//! check_background) and, in production mode, wait_background and kill_background.
//!
//! A tool never fails the loop: every problem comes back as an `Error: ...` text for the model.
//! The only thing that escapes is an interrupt (Ctrl-C), which the loop must see.

mod bash;
mod beneath;
mod files;
mod lesson_args;
mod path;

pub use crate::runtime::Interrupted;
pub use bash::{bash, is_dangerous, Guard, BASH_TIMEOUT};
pub use files::{edit, read, whole_text, write};
pub use path::{resolve, safe_path};

use crate::background::{BackgroundManager, Until};
use crate::runtime::{poll_until, Interrupt, Seconds};
use crate::secrets::Redactor;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

/// Runs tool calls and names the tools offered to the model: the built-in tools, or tools
/// given by the caller (the Python mirror's `TOOL_HANDLERS`).
pub trait ToolRunner: Send {
    fn schemas(&self) -> crate::Result<Vec<Value>>;
    fn run(&mut self, name: &str, input: &Value) -> Result<String, Interrupted>;
}

/// What a tool call may touch.
pub struct ToolContext<'a> {
    pub workdir: &'a Path,
    pub manager: &'a BackgroundManager,
    /// Offer and accept wait_background and kill_background.
    pub extended: bool,
    /// Longest wait_background may block.
    pub max_wait: Duration,
    /// The blocking bash tool's timeout ([`BASH_TIMEOUT`] in the lesson).
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

/// The lesson's tool list, string for string.
pub fn lesson_tools() -> Vec<Value> {
    let string = json!({"type": "string"});
    let schema = |props: Value, required: &[&str]| {
        let mut s = json!({"type": "object", "properties": props});
        if !required.is_empty() {
            s["required"] = json!(required);
        }
        s
    };
    let tool = |name: &str, description: &str, input_schema: Value| json!({"name": name, "description": description, "input_schema": input_schema});
    vec![
        tool(
            "bash",
            "Run a shell command (blocking).",
            schema(json!({"command": string}), &["command"]),
        ),
        tool(
            "read_file",
            "Read file contents.",
            schema(json!({"path": string, "limit": {"type": "integer"}}), &["path"]),
        ),
        tool(
            "write_file",
            "Write content to file.",
            schema(json!({"path": string, "content": string}), &["path", "content"]),
        ),
        tool(
            "edit_file",
            "Replace exact text in file.",
            schema(
                json!({"path": string, "old_text": string, "new_text": string}),
                &["path", "old_text", "new_text"],
            ),
        ),
        tool(
            "background_run",
            "Run command in background thread. Returns task_id immediately.",
            schema(json!({"command": string}), &["command"]),
        ),
        tool(
            "check_background",
            "Check background task status. Omit task_id to list all.",
            schema(json!({"task_id": string}), &[]),
        ),
    ]
}

/// The lesson's tools plus the two that production mode adds.
pub fn extended_tools() -> Vec<Value> {
    let mut tools = lesson_tools();
    tools.push(json!({
        "name": "wait_background",
        "description": "Wait until a background task finishes (or, without task_id, until any \
                        finishes), at most timeout seconds. Returns the task status.",
        "input_schema": {"type": "object", "properties": {
            "task_id": {"type": "string"}, "timeout": {"type": "number"}}},
    }));
    tools.push(json!({
        "name": "kill_background",
        "description": "Stop a running background task and everything it started.",
        "input_schema": {"type": "object", "properties": {"task_id": {"type": "string"}},
                         "required": ["task_id"]},
    }));
    tools
}

/// Runs one tool call. Unknown tools and bad arguments come back as text for the model.
pub fn call(ctx: &ToolContext, name: &str, input: &Value) -> Result<String, Interrupted> {
    let redactor = Redactor::when(ctx.hide_secrets);
    let output = dispatch(ctx, name, input, &redactor)?;
    // In production a tool's output never carries the API credentials (`cat .env`). Outputs
    // that are cut were redacted before the cut; this catches every other text.
    Ok(match redactor.redact(&output) {
        Cow::Borrowed(_) => output,
        Cow::Owned(redacted) => redacted,
    })
}

fn dispatch(
    ctx: &ToolContext,
    name: &str,
    input: &Value,
    redactor: &Redactor,
) -> Result<String, Interrupted> {
    if ctx.guard() == Guard::Lesson {
        // Missing keys and other types get the texts the lesson's Python raises.
        if let Some(text) = lesson_args::answer(ctx.workdir, name, input) {
            return Ok(text);
        }
    }
    let args = Args { tool: name, input };
    let text = match name {
        "bash" => match args.string("command") {
            Ok(command) => return run_bash(ctx, command),
            Err(e) => Err(e),
        },
        "read_file" => args.string("path").and_then(|p| {
            let limit = args.optional_int("limit")?;
            Ok(files::read_redacted(ctx.workdir, p, limit, ctx.guard(), redactor))
        }),
        "write_file" => args
            .string("path")
            .and_then(|p| Ok(files::write(ctx.workdir, p, args.string("content")?, ctx.guard()))),
        "edit_file" => args.string("path").and_then(|p| {
            let (old, new) = (args.string("old_text")?, args.string("new_text")?);
            Ok(files::edit(ctx.workdir, p, old, new, ctx.guard()))
        }),
        "background_run" => args.string("command").map(|command| {
            if is_dangerous(command, ctx.guard()) {
                "Error: Dangerous command blocked".to_string()
            } else {
                ctx.manager.run(command)
            }
        }),
        "check_background" => args.optional_string("task_id").map(|id| ctx.manager.check(id)),
        "wait_background" if ctx.extended => {
            let task_id = args.optional_string("task_id");
            let timeout = args.optional_number("timeout");
            match (task_id, timeout) {
                (Ok(id), Ok(t)) => return wait_background(ctx, id, t),
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        }
        "kill_background" if ctx.extended => args.string("task_id").map(|id| ctx.manager.kill(id)),
        _ => Ok(format!("Unknown tool: {name}")),
    }
    .unwrap_or_else(|e| e);
    Ok(text)
}

/// The blocking `bash` tool, through the manager's executor.
pub fn run_bash(ctx: &ToolContext, command: &str) -> Result<String, Interrupted> {
    let executor = ctx.manager.executor().as_ref();
    let guard = ctx.guard();
    bash(executor, ctx.workdir, command, ctx.bash_timeout, ctx.interrupted, guard, ctx.hide_secrets)
}

fn wait_background(
    ctx: &ToolContext,
    task_id: Option<&str>,
    timeout: Option<f64>,
) -> Result<String, Interrupted> {
    let limit = match timeout.map(|t| Seconds::non_negative("timeout", t)) {
        None => ctx.max_wait,
        Some(Ok(t)) => t.duration().min(ctx.max_wait),
        Some(Err(e)) => return Ok(format!("Error: {e}")),
    };
    if let Some(id) = task_id {
        if ctx.manager.task(id).is_none() {
            return Ok(format!("Error: Unknown task {id}"));
        }
    }
    poll_until(ctx.interrupted, Some(limit), |slice| {
        let until = match task_id {
            Some(id) => Until::Ended(id),
            // Leave the queue alone: the loop injects what finished before the next model call.
            None => Until::Finished,
        };
        ctx.manager.wait(until, Some(slice)).ok().map(drop)
    })?;
    Ok(ctx.manager.check(task_id))
}

/// Reads a tool's arguments, turning a missing or mistyped one into text for the model.
struct Args<'a> {
    tool: &'a str,
    input: &'a Value,
}

impl<'a> Args<'a> {
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.input.get(key).filter(|v| !v.is_null())
    }

    fn string(&self, key: &str) -> Result<&'a str, String> {
        match self.get(key) {
            None => Err(format!("Error: {} needs the argument '{key}'", self.tool)),
            Some(v) => v.as_str().ok_or_else(|| self.mistyped(key, "a string")),
        }
    }

    fn optional_string(&self, key: &str) -> Result<Option<&'a str>, String> {
        self.get(key).map(|v| v.as_str().ok_or_else(|| self.mistyped(key, "a string"))).transpose()
    }

    fn optional_int(&self, key: &str) -> Result<Option<i64>, String> {
        self.get(key)
            .map(|v| v.as_i64().ok_or_else(|| self.mistyped(key, "an integer")))
            .transpose()
    }

    fn optional_number(&self, key: &str) -> Result<Option<f64>, String> {
        self.get(key).map(|v| v.as_f64().ok_or_else(|| self.mistyped(key, "a number"))).transpose()
    }

    fn mistyped(&self, key: &str, want: &str) -> String {
        format!("Error: argument '{key}' of {} must be {want}", self.tool)
    }
}

/// The built-in tools as the loop's tool runner.
pub struct BuiltinTools<'a> {
    pub ctx: ToolContext<'a>,
}

impl ToolRunner for BuiltinTools<'_> {
    fn schemas(&self) -> crate::Result<Vec<Value>> {
        Ok(if self.ctx.extended { extended_tools() } else { lesson_tools() })
    }

    fn run(&mut self, name: &str, input: &Value) -> Result<String, Interrupted> {
        call(&self.ctx, name, input)
    }
}
