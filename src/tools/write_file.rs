//! `write_file`: create or replace a file inside the workspace.

use super::args::{Args, Text};
use super::files;
use super::path::safe_path;
use super::tool::{schema, Tool, ToolContext};
use crate::runtime::Interrupted;
use crate::secrets::Redactor;
use serde_json::{json, Value};

/// A call of the `write_file` tool.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteFile {
    pub path: String,
    pub content: Text,
}

impl Tool for WriteFile {
    const NAME: &'static str = "write_file";

    fn schema() -> Value {
        let properties = json!({"path": {"type": "string"}, "content": {"type": "string"}});
        schema(Self::NAME, "Write content to file.", properties, &["path", "content"])
    }

    fn parse(args: &Args) -> Result<Self, String> {
        args.lesson_require(&["path", "content"])?;
        args.lesson_path()?;
        Ok(WriteFile { path: args.string("path")?, content: args.text("content")? })
    }

    fn run(self, ctx: &ToolContext, _: &Redactor) -> Result<String, Interrupted> {
        Ok(match &self.content {
            Text::Str(content) => files::write(ctx.workdir, &self.path, content, ctx.guard()),
            // The lesson checks the path, then `write_text` refuses the content.
            Text::Other(t) => match safe_path(ctx.workdir, &self.path) {
                Err(e) => format!("Error: {e}"),
                Ok(_) => format!("Error: data must be str, not {t}"),
            },
        })
    }
}
