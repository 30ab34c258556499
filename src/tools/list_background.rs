//! `list_background` (production only): every task, with how long it has run, its last line,
//! its place in line or how it ended.

use super::args::Args;
use super::tool::{schema, Tool, ToolContext};
use crate::runtime::Interrupted;
use crate::secrets::Redactor;
use serde_json::{json, Value};

/// A call of the `list_background` tool (it takes no argument).
#[derive(Debug, Clone, PartialEq)]
pub struct ListBackground;

impl Tool for ListBackground {
    const NAME: &'static str = "list_background";
    const PRODUCTION_ONLY: bool = true;

    fn schema() -> Value {
        let description = "List every background task: its status and command, how long a \
                           running one has run and its last line of output, where a queued \
                           one waits, and how a finished one ended.";
        schema(Self::NAME, description, json!({}), &[])
    }

    fn parse(_: &Args) -> Result<Self, String> {
        Ok(ListBackground)
    }

    fn run(self, ctx: &ToolContext, _: &Redactor) -> Result<String, Interrupted> {
        Ok(ctx.manager.list())
    }
}
