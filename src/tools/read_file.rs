//! `read_file`: a file's text, its first `limit` lines if asked, cut at 50,000 characters.

use super::args::{py_truthy, py_type, Args};
use super::files;
use super::tool::{schema, Guard, Tool, ToolContext};
use crate::runtime::Interrupted;
use crate::secrets::Redactor;
use serde_json::{json, Value};

/// A call of the `read_file` tool.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadFile {
    pub path: String,
    pub limit: Limit,
}

/// How much of the file to show.
#[derive(Debug, Clone, PartialEq)]
pub enum Limit {
    /// The lesson's `lines[:limit]` (a negative one counts from the end); `None` or zero:
    /// every line.
    Lines(Option<i64>),
    /// The lesson's mode with a number that is not an integer: the lesson's `if limit and
    /// limit < len(lines)` compares it with the line count, and slicing with it fails.
    Fractional(f64),
    /// The lesson's mode with another type (Python's name of it): that comparison fails.
    Uncomparable(&'static str),
}

impl Tool for ReadFile {
    const NAME: &'static str = "read_file";

    fn schema() -> Value {
        let properties = json!({"path": {"type": "string"}, "limit": {"type": "integer"}});
        schema(Self::NAME, "Read file contents.", properties, &["path"])
    }

    fn parse(args: &Args) -> Result<Self, String> {
        args.lesson_require(&["path"])?;
        args.lesson_path()?;
        let path = args.string("path")?;
        let odd = |v: &&Value| !(v.is_null() || v.is_i64() || v.is_u64());
        let limit = match args.raw("limit").filter(|_| args.lesson).filter(odd) {
            Some(Value::Bool(b)) => Limit::Lines(b.then_some(1)),
            Some(v) if !py_truthy(v) => Limit::Lines(None),
            Some(Value::Number(n)) => Limit::Fractional(n.as_f64().unwrap_or(0.0)),
            Some(other) => Limit::Uncomparable(py_type(other)),
            None => Limit::Lines(args.optional_int("limit")?),
        };
        Ok(ReadFile { path, limit })
    }

    fn run(self, ctx: &ToolContext, redactor: &Redactor) -> Result<String, Interrupted> {
        let (root, path, guard) = (ctx.workdir, self.path.as_str(), ctx.guard());
        Ok(match self.limit {
            Limit::Lines(limit) => files::read_redacted(root, path, limit, guard, redactor),
            Limit::Fractional(n) => match line_count(ctx, path) {
                Err(answer) => answer,
                Ok(lines) if n >= lines => files::read_redacted(root, path, None, guard, redactor),
                Ok(_) => {
                    "Error: slice indices must be integers or None or have an __index__ method"
                        .into()
                }
            },
            Limit::Uncomparable(t) => match line_count(ctx, path) {
                Err(answer) => answer,
                Ok(_) => format!("Error: '<' not supported between instances of '{t}' and 'int'"),
            },
        })
    }
}

/// The lesson's `len(lines)`, which reads the file first (failing as it would).
fn line_count(ctx: &ToolContext, path: &str) -> Result<f64, String> {
    match files::count_lines(ctx.workdir, path, Guard::Lesson) {
        Ok(lines) => Ok(lines as f64),
        Err(e) => Err(format!("Error: {e}")),
    }
}
