//! The MCP server's handler: the kit's six tools, listed with the kit's definitions and run
//! by the kit, each call on a blocking thread (`wait_background` blocks).
//!
//! Results: every text a tool gives is a normal text result (`isError` false), exactly what
//! bgagent's own loop gives the model, `Error: ...` texts included: the texts are written for
//! the model, and a task's output may itself begin with "Error:", so the prefix cannot tell a
//! refused call. A tool name the server does not have is the one error result (`isError`
//! true, "Unknown tool: NAME"); the server goes on serving.

use super::stop::Stop;
use crate::background::BackgroundManager;
use crate::kit::{BackgroundTools, Format};
use crate::runtime::Interrupted;
use crate::tools::BACKGROUND_TOOLS;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `wait_background` without a timeout waits this long: under a host's usual request timeout
/// (often 60 s), with room for the answer.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// The longest `wait_background` a call may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(50);

const INSTRUCTIONS: &str = "Shell commands that run in the background in this workspace, \
    a bounded number at once: start one with background_run, then collect what finished with \
    wait_background (cursor 0 the first time, then the cursor its last answer gave), or look \
    at one task with check_background / read_background; kill_background stops one.";

pub struct Server {
    manager: Arc<BackgroundManager>,
    stop: Arc<Stop>,
    tools: Vec<Tool>,
    /// Tool calls under way: the last to end empties the notification queue.
    calls: Arc<AtomicUsize>,
}

impl Server {
    pub fn new(manager: Arc<BackgroundManager>, stop: Arc<Stop>) -> Self {
        let tools = BackgroundTools::new(&manager).definitions(Format::Anthropic);
        let tools = tools.into_iter().map(tool).collect();
        Server { manager, stop, tools, calls: Arc::default() }
    }
}

/// An Anthropic-format definition as an MCP tool (the same name, description and schema).
fn tool(definition: Value) -> Tool {
    let text = |key: &str| definition[key].as_str().unwrap_or_default().to_string();
    let schema = match &definition["input_schema"] {
        Value::Object(schema) => schema.clone(),
        _ => Default::default(),
    };
    Tool::new(text("name"), text("description"), Arc::new(schema))
}

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("bgagent", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        if !BACKGROUND_TOOLS.contains(&name.as_str()) {
            let text = format!("Unknown tool: {name}");
            return Ok(CallToolResult::error(vec![ContentBlock::text(text)]).into());
        }
        let input = Value::Object(request.arguments.unwrap_or_default());
        let (manager, stop, cancelled) = (self.manager.clone(), self.stop.clone(), context.ct);
        let calls = self.calls.clone();
        calls.fetch_add(1, Ordering::SeqCst);
        let text = tokio::task::spawn_blocking(move || {
            let kit = BackgroundTools::new(&manager).waits(DEFAULT_WAIT, MAX_WAIT);
            // A wait ends when the server ends or the client cancels the request.
            let interrupted = || stop.asked() || cancelled.is_cancelled();
            let text = kit
                .call_until(&name, &input, &interrupted)
                .unwrap_or_else(|Interrupted| "Error: interrupted".to_string());
            // Nothing here reads the notification queue (the cursor takes its place), so it
            // is emptied: a finished task counts as delivered, retention may let it go, and a
            // `wait_background` without task_id or cursor waits for a task that finishes
            // after it was called. Not while another call runs: that may be such a wait.
            if calls.fetch_sub(1, Ordering::SeqCst) == 1 {
                drop(manager.drain());
            }
            text
        })
        .await
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
    }
}
