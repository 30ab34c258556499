//! The agent's tools: the lesson's six (bash, read_file, write_file, edit_file, background_run,
//! check_background) and, in production mode, read_background, wait_background,
//! kill_background and list_background. Each is a
//! type in a file of its own ([`Tool`]: name, schema, parse, run), listed once in `TOOLS`.
//!
//! A tool never fails the loop: every problem comes back as an `Error: ...` text for the model.
//! The only thing that escapes is an interrupt (Ctrl-C), which the loop must see.

mod args;
mod beneath;
mod files;
mod path;
mod tool;

pub use crate::runtime::Interrupted;
pub use args::{Args, Text};
pub use bash::{bash, is_dangerous, BASH_TIMEOUT};
pub use files::{edit, read, whole_text, write};
pub use path::{resolve, safe_path};
pub use read_file::Limit;
pub use tool::{Guard, Tool, ToolContext};

use crate::secrets::Redactor;
use serde_json::Value;
use std::borrow::Cow;

/// Runs tool calls and names the tools offered to the model: the built-in tools, or tools
/// given by the caller (the Python mirror's `TOOL_HANDLERS`).
pub trait ToolRunner: Send {
    fn schemas(&self) -> crate::Result<Vec<Value>>;
    fn run(&mut self, name: &str, input: &Value) -> Result<String, Interrupted>;
}

/// A tool's entry in the list: what [`Tool`] says, without its type.
struct Entry {
    name: &'static str,
    production_only: bool,
    schema: fn() -> Value,
    production_schema: fn() -> Value,
    call: fn(&ToolContext, &Value, &Redactor) -> Result<String, Interrupted>,
}

impl Entry {
    const fn of<T: Tool>() -> Entry {
        Entry {
            name: T::NAME,
            production_only: T::PRODUCTION_ONLY,
            schema: T::schema,
            production_schema: T::production_schema,
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

/// Declares each tool's file, exports its type and lists it in `TOOLS`.
macro_rules! tools {
    ($($file:ident::$tool:ident),* $(,)?) => {
        $(mod $file; pub use $file::$tool;)*
        /// Every built-in tool, in the order the model is told of them.
        const TOOLS: &[Entry] = &[$(Entry::of::<$tool>()),*];
    };
}

// A new tool is a file with a type that implements [`Tool`], and a line here. The lesson's six
// come first, in the lesson's order.
tools! {
    bash::Bash,
    read_file::ReadFile,
    write_file::WriteFile,
    edit_file::EditFile,
    background_run::BackgroundRun,
    check_background::CheckBackground,
    read_background::ReadBackground,
    wait_background::WaitBackground,
    kill_background::KillBackground,
    list_background::ListBackground,
}

/// The tools that work the background tasks, in the order they are offered: what a loop of
/// one's own adds (see [`crate::kit`]) and what the MCP server serves.
pub const BACKGROUND_TOOLS: [&str; 6] = [
    BackgroundRun::NAME,
    CheckBackground::NAME,
    ReadBackground::NAME,
    WaitBackground::NAME,
    KillBackground::NAME,
    ListBackground::NAME,
];

/// The tools offered in a mode: the lesson's six, or (`extended`) production's eight.
pub fn schemas(extended: bool) -> Vec<Value> {
    let schema = |t: &Entry| if extended { (t.production_schema)() } else { (t.schema)() };
    TOOLS.iter().filter(|t| t.offered(extended)).map(schema).collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse<T: Tool>(input: Value, lesson: bool) -> Result<T, String> {
        T::parse(&Args::new(T::NAME, &input, lesson))
    }

    #[test]
    fn each_tool_is_listed_once_under_the_name_its_schema_gives() {
        let names: Vec<&str> = TOOLS.iter().map(|t| t.name).collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        for tool in TOOLS {
            assert_eq!((tool.schema)()["name"], tool.name);
        }
        let lesson: Vec<&str> = TOOLS.iter().filter(|t| t.offered(false)).map(|t| t.name).collect();
        assert_eq!(lesson.len(), 6, "{lesson:?}");
    }

    #[test]
    fn input_is_parsed_into_a_typed_call_in_either_mode() {
        for lesson in [false, true] {
            let read = parse::<ReadFile>(json!({"path": "a", "limit": 3}), lesson);
            assert_eq!(read, Ok(ReadFile { path: "a".into(), limit: Limit::Lines(Some(3)) }));
            let write = parse::<WriteFile>(json!({"path": "a", "content": "x"}), lesson);
            assert_eq!(write, Ok(WriteFile { path: "a".into(), content: Text::Str("x".into()) }));
        }
        let wait = parse::<WaitBackground>(json!({"timeout": 2.5}), false);
        assert_eq!(wait, Ok(WaitBackground { task_id: None, timeout: Some(2.5), cursor: None }));
    }

    #[test]
    fn odd_arguments_are_worded_for_the_mode() {
        let missing = json!({});
        assert_eq!(parse::<Bash>(missing.clone(), true), Err("Error: 'command'".into()));
        let production = parse::<Bash>(missing, false);
        assert_eq!(production, Err("Error: bash needs the argument 'command'".into()));
        // What the lesson's code only fails on after reading the file stays in the call.
        let read = parse::<ReadFile>(json!({"path": "a", "limit": 1.5}), true);
        assert_eq!(read.map(|r| r.limit), Ok(Limit::Fractional(1.5)));
        let read = parse::<ReadFile>(json!({"path": "a", "limit": 1.5}), false);
        assert_eq!(read, Err("Error: argument 'limit' of read_file must be an integer".into()));
        let edit = parse::<EditFile>(json!({"path": "a", "old_text": 1, "new_text": "b"}), true);
        assert_eq!(edit.map(|e| e.old_text), Ok(Text::Other("int")));
    }
}
