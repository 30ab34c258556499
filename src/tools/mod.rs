//! The agent's tools: the lesson's six (bash, read_file, write_file, edit_file, background_run,
//! check_background) and, in production mode, wait_background and kill_background. Each is a
//! type in a file of its own ([`Tool`]: name, schema, parse, run), listed once in `TOOLS`.
//!
//! A tool never fails the loop: every problem comes back as an `Error: ...` text for the model.
//! The only thing that escapes is an interrupt (Ctrl-C), which the loop must see.

mod args;
mod background_run;
mod bash;
mod beneath;
mod check_background;
mod edit_file;
mod files;
mod kill_background;
mod path;
mod read_file;
mod wait_background;
mod write_file;

pub use crate::runtime::Interrupted;
pub use args::{Args, Text};
pub use background_run::BackgroundRun;
pub use bash::{bash, is_dangerous, Bash, Guard, BASH_TIMEOUT};
pub use check_background::CheckBackground;
pub use edit_file::EditFile;
pub use files::{edit, read, whole_text, write};
pub use kill_background::KillBackground;
pub use path::{resolve, safe_path};
pub use read_file::{Limit, ReadFile};
pub use wait_background::WaitBackground;
pub use write_file::WriteFile;

use crate::background::BackgroundManager;
use crate::runtime::Interrupt;
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

/// One built-in tool: its name, what the model is told about it, how its input becomes a
/// typed call, and what the call does. The type is the typed call.
pub trait Tool: Sized {
    const NAME: &'static str;
    /// Offered (and accepted) only in production mode.
    const PRODUCTION_ONLY: bool = false;
    /// The entry in the request's tool list: name, description, input schema.
    fn schema() -> Value;
    /// The call, or the answer the model gets instead (a missing or mistyped argument, worded
    /// for the mode `args` is read in).
    fn parse(args: &Args) -> Result<Self, String>;
    fn run(self, ctx: &ToolContext, redactor: &Redactor) -> Result<String, Interrupted>;
}

/// A tool's entry in the list: what [`Tool`] says, without its type.
struct Entry {
    name: &'static str,
    production_only: bool,
    schema: fn() -> Value,
    call: fn(&ToolContext, &Value, &Redactor) -> Result<String, Interrupted>,
}

impl Entry {
    const fn of<T: Tool>() -> Entry {
        Entry {
            name: T::NAME,
            production_only: T::PRODUCTION_ONLY,
            schema: T::schema,
            call: parse_and_run::<T>,
        }
    }

    fn offered(&self, extended: bool) -> bool {
        extended || !self.production_only
    }
}

fn parse_and_run<T: Tool>(
    ctx: &ToolContext,
    input: &Value,
    redactor: &Redactor,
) -> Result<String, Interrupted> {
    let args = Args::new(T::NAME, input, ctx.guard() == Guard::Lesson);
    match T::parse(&args) {
        Ok(call) => call.run(ctx, redactor),
        Err(answer) => Ok(answer),
    }
}

/// Every built-in tool, in the order the model is told of them (the lesson's six first). A new
/// tool is a file with a type that implements [`Tool`], and a line here.
const TOOLS: &[Entry] = &[
    Entry::of::<Bash>(),
    Entry::of::<ReadFile>(),
    Entry::of::<WriteFile>(),
    Entry::of::<EditFile>(),
    Entry::of::<BackgroundRun>(),
    Entry::of::<CheckBackground>(),
    Entry::of::<WaitBackground>(),
    Entry::of::<KillBackground>(),
];

/// A tool's entry in the request's tool list.
fn schema(name: &str, description: &str, properties: Value, required: &[&str]) -> Value {
    let mut input_schema = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        input_schema["required"] = json!(required);
    }
    json!({"name": name, "description": description, "input_schema": input_schema})
}

/// The tools offered in a mode: the lesson's six, or (`extended`) production's eight.
pub fn schemas(extended: bool) -> Vec<Value> {
    TOOLS.iter().filter(|t| t.offered(extended)).map(|t| (t.schema)()).collect()
}

/// The lesson's tool list, string for string.
pub fn lesson_tools() -> Vec<Value> {
    schemas(false)
}

/// The lesson's tools plus the two that production mode adds.
pub fn extended_tools() -> Vec<Value> {
    schemas(true)
}

/// Runs one tool call. Unknown tools and bad arguments come back as text for the model.
pub fn call(ctx: &ToolContext, name: &str, input: &Value) -> Result<String, Interrupted> {
    let redactor = Redactor::when(ctx.hide_secrets);
    let output = match TOOLS.iter().find(|t| t.name == name && t.offered(ctx.extended)) {
        Some(tool) => (tool.call)(ctx, input, &redactor)?,
        None => format!("Unknown tool: {name}"),
    };
    // In production a tool's output never carries the API credentials (`cat .env`). Outputs
    // that are cut were redacted before the cut; this catches every other text.
    Ok(match redactor.redact(&output) {
        Cow::Borrowed(_) => output,
        Cow::Owned(redacted) => redacted,
    })
}

/// The built-in tools as the loop's tool runner.
pub struct BuiltinTools<'a> {
    pub ctx: ToolContext<'a>,
}

impl ToolRunner for BuiltinTools<'_> {
    fn schemas(&self) -> crate::Result<Vec<Value>> {
        Ok(schemas(self.ctx.extended))
    }

    fn run(&mut self, name: &str, input: &Value) -> Result<String, Interrupted> {
        call(&self.ctx, name, input)
    }
}
