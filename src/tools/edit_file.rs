//! `edit_file`: replace the first occurrence of a text in a file.

use super::args::{Args, Text};
use super::files;
use super::tool::{schema, Guard, Tool, ToolContext};
use crate::runtime::Interrupted;
use crate::secrets::Redactor;
use serde_json::{json, Value};

/// A call of the `edit_file` tool.
#[derive(Debug, Clone, PartialEq)]
pub struct EditFile {
    pub path: String,
    pub old_text: Text,
    pub new_text: Text,
}

impl Tool for EditFile {
    const NAME: &'static str = "edit_file";

    fn schema() -> Value {
        let string = json!({"type": "string"});
        let properties = json!({"path": string, "old_text": string, "new_text": string});
        let required = ["path", "old_text", "new_text"];
        schema(Self::NAME, "Replace exact text in file.", properties, &required)
    }

    fn parse(args: &Args) -> Result<Self, String> {
        args.lesson_require(&["path", "old_text", "new_text"])?;
        args.lesson_path()?;
        let path = args.string("path")?;
        let old_text = args.text("old_text")?;
        Ok(EditFile { path, old_text, new_text: args.text("new_text")? })
    }

    fn run(self, ctx: &ToolContext, _: &Redactor) -> Result<String, Interrupted> {
        let (root, path) = (ctx.workdir, self.path.as_str());
        if let (Text::Str(old), Text::Str(new)) = (&self.old_text, &self.new_text) {
            return Ok(files::edit(root, path, old, new, ctx.guard()));
        }
        // The lesson's mode with another type: its code reads the file, then `old_text in
        // content` or `content.replace(old_text, new_text, 1)` fails.
        let whole = match files::whole_text(root, path, Guard::Lesson) {
            Ok(whole) => whole,
            Err(e) => return Ok(format!("Error: {e}")),
        };
        let old = match &self.old_text {
            Text::Other(t) => {
                return Ok(format!("Error: 'in <string>' requires string as left operand, not {t}"))
            }
            Text::Str(old) => old,
        };
        if !whole.contains(old.as_str()) {
            return Ok(format!("Error: Text not found in {path}"));
        }
        Ok(match &self.new_text {
            Text::Other(t) => format!("Error: replace() argument 2 must be str, not {t}"),
            Text::Str(new) => files::edit(root, path, old, new, ctx.guard()),
        })
    }
}
