//! `background_run`: start a command as a background task and answer at once.

use super::args::Args;
use super::bash::is_dangerous;
use super::path::safe_path;
use super::tool::{schema, Tool, ToolContext};
use crate::background::StartAt;
use crate::runtime::{Interrupted, Seconds};
use crate::secrets::Redactor;
use serde_json::{json, Value};

/// A call of the `background_run` tool.
#[derive(Debug, Clone, PartialEq)]
pub struct BackgroundRun {
    pub command: String,
    /// Production only: seconds, as the model gave them (checked when run); `None`: the
    /// manager's timeout.
    pub timeout: Option<f64>,
    /// Production only: where it runs, beneath the workspace (checked when run); `None`: the
    /// workspace.
    pub workdir: Option<String>,
}

impl Tool for BackgroundRun {
    const NAME: &'static str = "background_run";

    fn schema() -> Value {
        let description = "Run command in background thread. Returns task_id immediately.";
        schema(Self::NAME, description, json!({"command": {"type": "string"}}), &["command"])
    }

    fn production_schema() -> Value {
        let description = "Run command in background thread. Returns task_id immediately. \
                           timeout: seconds it may run once started (default: the manager's). \
                           workdir: a directory beneath the workspace to run it in (default: \
                           the workspace).";
        let properties = json!({
            "command": {"type": "string"},
            "timeout": {"type": "number"},
            "workdir": {"type": "string"},
        });
        schema(Self::NAME, description, properties, &["command"])
    }

    fn parse(args: &Args) -> Result<Self, String> {
        args.lesson_require(&["command"])?;
        // The lesson's answer (`command[:80]`) is the first to touch it.
        args.lesson_command(|t| format!("Error: '{t}' object is not subscriptable"))?;
        // The lesson's tool has no timeout: an argument of that name is ignored there.
        // The lesson's tool has no timeout: an argument of that name is ignored there.
        let timeout = if args.lesson { None } else { args.optional_number("timeout")? };
        // Nor a workdir.
        let workdir = if args.lesson { None } else { args.optional_string("workdir")? };
        Ok(BackgroundRun { command: args.string("command")?, timeout, workdir })
    }

    fn run(self, ctx: &ToolContext, _: &Redactor) -> Result<String, Interrupted> {
        Ok(if is_dangerous(&self.command, ctx.guard()) {
            "Error: Dangerous command blocked".to_string()
        } else {
            let timeout = match self.timeout.map(|t| Seconds::positive("timeout", t)) {
                None => None,
                Some(Ok(t)) => Some(t.duration()),
                Some(Err(e)) => return Ok(format!("Error: {e}")),
            };
            let workdir = match self.workdir.as_deref().map(|w| beneath(ctx.workdir, w)) {
                None => None,
                Some(Ok(dir)) => Some(dir),
                Some(Err(e)) => return Ok(e),
            };
            let at = StartAt { timeout, workdir: workdir.as_deref(), ..StartAt::default() };
            ctx.manager.run_with(&self.command, at)
        })
    }
}

/// A task's working directory: `dir` (relative to the workspace, or absolute) resolved, and
/// refused unless it is a directory beneath the workspace. Only where the command starts is
/// checked: without a sandbox the command itself can still reach whatever the user can.
fn beneath(workspace: &std::path::Path, dir: &str) -> Result<std::path::PathBuf, String> {
    let resolved = safe_path(workspace, dir).map_err(|e| format!("Error: {e}"))?;
    if !resolved.is_dir() {
        return Err(format!("Error: workdir {dir} is not a directory"));
    }
    Ok(resolved)
}
