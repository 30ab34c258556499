//! The agent loop: drain → inject → model → tools → repeat.
//!
//! One loop serves both faces; a [`LoopPolicy`] says how it differs. The lesson's policy is
//! the lesson's loop, string for string; production's (the default for `Agent` and the CLI)
//! also waits, at the end of a turn, for tasks still running, so their results are never left
//! behind, and offers the wait_background and kill_background tools.

use crate::background::{BackgroundManager, Notification, Records, Until};
use crate::error::{Error, Result};
use crate::llm::block::tool_result;
use crate::llm::{CallContext, Model, ModelError, Request, Response};
use crate::runtime::{poll_until, Interrupt};
use crate::tools::{BackgroundRun, Interrupted, Tool, ToolContext, ToolRunner, BASH_TIMEOUT};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// Where production departs from the lesson, one named switch each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopPolicy {
    /// Injected result lines say `(exit N)` for a non-zero exit code.
    pub exit_codes_in_results: bool,
    /// At the end of a turn, wait up to this long for tasks still running and inject their
    /// results; `None` returns at once, as the lesson does.
    pub wait_at_end_turn: Option<Duration>,
    /// Tool calls in a reply cut off by `max_tokens` get an error result, so the conversation
    /// stays valid.
    pub answer_cut_off_calls: bool,
    /// Offer wait_background and kill_background besides the lesson's six tools.
    pub extended_tools: bool,
    /// The bash tool's commands do not get the API credentials, and tool outputs have their
    /// values redacted.
    pub hide_secrets: bool,
}

impl LoopPolicy {
    /// Exactly the lesson's behaviour.
    pub fn lesson() -> Self {
        LoopPolicy {
            exit_codes_in_results: false,
            wait_at_end_turn: None,
            answer_cut_off_calls: false,
            extended_tools: false,
            hide_secrets: false,
        }
    }

    /// The production loop; `max_wait` bounds the wait at the end of a turn and wait_background.
    pub fn production(max_wait: Duration) -> Self {
        LoopPolicy {
            exit_codes_in_results: true,
            wait_at_end_turn: Some(max_wait),
            answer_cut_off_calls: true,
            extended_tools: true,
            hide_secrets: true,
        }
    }

    /// The one place the built-in tools' context is made, for every face.
    pub fn tool_context<'a>(
        &self,
        workdir: &'a Path,
        manager: &'a BackgroundManager,
        interrupted: Interrupt<'a>,
    ) -> ToolContext<'a> {
        let max_wait = self.wait_at_end_turn.unwrap_or(Duration::ZERO);
        ToolContext {
            workdir,
            manager,
            extended: self.extended_tools,
            max_wait,
            default_wait: max_wait,
            bash_timeout: BASH_TIMEOUT,
            hide_secrets: self.hide_secrets,
            interrupted,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LoopConfig {
    pub model: String,
    pub system: String,
    pub max_tokens: u32,
    pub policy: LoopPolicy,
}

impl LoopConfig {
    /// The lesson's system prompt for a workspace.
    pub fn lesson_system(workdir: &std::path::Path) -> String {
        format!(
            "You are a coding agent at {}. Use {} for long-running commands.",
            workdir.display(),
            BackgroundRun::NAME
        )
    }
}

/// Where the conversation lives: a Rust vector, or a Python list mutated in place.
pub trait Conversation: Send {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Every message as JSON, for the request.
    fn to_json(&self) -> Result<Vec<Value>>;
    /// What `to_json` gave, back once the request is done with it: a conversation that keeps
    /// its messages converted (Python's) takes them back instead of copying them each call.
    fn sent(&self, _messages: Vec<Value>) {}
    /// Appends a user message (text or a list of blocks).
    fn push_user(&mut self, content: Value) -> Result<()>;
    fn push_assistant(&mut self, response: &Response) -> Result<()>;
}

impl Conversation for Vec<Value> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn to_json(&self) -> Result<Vec<Value>> {
        Ok(self.clone())
    }
    fn push_user(&mut self, content: Value) -> Result<()> {
        self.push(json!({"role": "user", "content": content}));
        Ok(())
    }
    fn push_assistant(&mut self, response: &Response) -> Result<()> {
        self.push(json!({"role": "assistant", "content": response.content}));
        Ok(())
    }
}

/// What the loop reports as it goes (the lesson prints tool calls; a REPL streams text).
pub trait LoopEvents: Send {
    /// A model call starts.
    fn model_call(&mut self) {}
    /// A streamed piece of the model's text.
    fn text(&mut self, _piece: &str) {}
    /// The model call returned.
    fn model_reply(&mut self, _response: &Response) {}
    /// A tool is about to run (`id`: its tool_use id).
    fn tool_start(&mut self, _id: &str, _name: &str, _input: &Value) {}
    /// A tool ran.
    fn tool(&mut self, _id: &str, _name: &str, _output: &str) {}
    /// Notifications taken from the queue.
    fn drained(&mut self, _notes: &[Notification]) {}
    fn injected(&mut self, _text: &str) {}
    /// Production at the end of a turn: waiting (at most `max_wait`) for `running` tasks.
    fn waiting(&mut self, _running: usize, _max_wait: Duration) {}
    /// That wait ended.
    fn waited(&mut self, _why: WaitEnd) {}
}

/// Why production's wait at the end of a turn ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitEnd {
    /// Results arrived.
    Results,
    /// No task runs any more, and no result came to inject.
    NothingRunning,
    /// `max_wait` passed.
    MaxWait,
}

impl WaitEnd {
    const ALL: [WaitEnd; 3] = [WaitEnd::Results, WaitEnd::NothingRunning, WaitEnd::MaxWait];

    /// The words the trace says it with.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitEnd::Results => "results",
            WaitEnd::NothingRunning => "nothing running",
            WaitEnd::MaxWait => "max_wait",
        }
    }
}

impl serde::Serialize for WaitEnd {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for WaitEnd {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let word = String::deserialize(d)?;
        let known = WaitEnd::ALL.into_iter().find(|w| w.as_str() == word);
        known.ok_or_else(|| serde::de::Error::custom(format!("no wait ends with {word:?}")))
    }
}

/// Prints nothing.
pub struct Quiet;
impl LoopEvents for Quiet {}

/// Everything the loop works with.
pub struct Loop<'a> {
    pub config: &'a LoopConfig,
    pub model: &'a dyn Model,
    pub manager: &'a BackgroundManager,
    pub tools: &'a mut dyn ToolRunner,
    pub events: &'a mut dyn LoopEvents,
    /// Polled while waiting; true means Ctrl-C was pressed.
    pub interrupted: Interrupt<'a>,
    /// Takes the queued notifications instead of `manager.drain_notifications()` (a Python
    /// subclass that overrides it); `None`: the manager's own.
    pub drain: Option<Drain<'a>>,
}

/// A replacement for the manager's drain (see `Loop::drain`).
pub type Drain<'a> = &'a (dyn Fn() -> Result<Vec<Notification>> + Sync);

/// `<background-results>` with one line per finished task.
pub fn background_results(notes: &[Notification], with_exit_codes: bool) -> String {
    let lines: Vec<String> = notes
        .iter()
        .map(|n| match n.exit_code {
            Some(code) if with_exit_codes && code != 0 => {
                format!("[bg:{}] {} (exit {code}): {}", n.task_id, n.status, n.result)
            }
            _ => format!("[bg:{}] {}: {}", n.task_id, n.status, n.result),
        })
        .collect();
    format!("<background-results>\n{}\n</background-results>", lines.join("\n"))
}

/// Production's `<background-results>`: per finished task its status, exit code, duration
/// and log file, the head of its output and, where the head stops short, its tail.
pub fn production_results(notes: &[Notification]) -> String {
    let lines: Vec<String> = notes.iter().map(crate::background::production::report).collect();
    format!("<background-results>\n{}\n</background-results>", lines.join("\n"))
}

impl Loop<'_> {
    /// Runs until the model ends its turn. On a model error or Ctrl-C the conversation stays
    /// valid: nothing of the failed call is added, and every tool_use gets its tool_result.
    pub fn run(&mut self, messages: &mut dyn Conversation) -> Result<()> {
        // The first tool call or task then finds its supervisor started during the model call.
        self.manager.prepare();
        loop {
            let notes = self.drain()?;
            if !notes.is_empty() && !messages.is_empty() {
                self.inject(messages, &notes)?;
            }
            let response = self.call_model(messages)?;
            // The API refuses an empty assistant message, so an empty reply is not kept; and a
            // `tool_use` stop with no tool_use block ends the turn (there is nothing to answer).
            if !response.content.is_empty() {
                messages.push_assistant(&response)?;
            }
            let calls_tools = response.tool_uses().next().is_some();
            if response.stop_reason.as_deref() != Some("tool_use") || !calls_tools {
                if self.config.policy.answer_cut_off_calls {
                    self.answer_cut_off_calls(messages, &response)?;
                }
                if let Some(max_wait) = self.config.policy.wait_at_end_turn {
                    if self.wait_for_stragglers(messages, max_wait)? {
                        continue;
                    }
                }
                return Ok(());
            }
            self.run_tools(messages, &response)?;
        }
    }

    fn drain(&self) -> Result<Vec<Notification>> {
        match self.drain {
            Some(drain) => drain(),
            None => Ok(self.manager.drain()),
        }
    }

    fn inject(&mut self, messages: &mut dyn Conversation, notes: &[Notification]) -> Result<()> {
        self.events.drained(notes);
        let text = if self.config.policy.exit_codes_in_results {
            production_results(notes)
        } else {
            background_results(notes, false)
        };
        self.events.injected(&text);
        messages.push_user(Value::String(text))
    }

    fn call_model(&mut self, messages: &dyn Conversation) -> Result<Response> {
        let request = Request {
            model: self.config.model.clone(),
            system: self.config.system.clone(),
            messages: messages.to_json()?,
            tools: self.tools.schemas()?,
            max_tokens: self.config.max_tokens,
            extra: Default::default(),
        };
        self.events.model_call();
        let events = &mut *self.events;
        let mut on_text = |piece: &str| events.text(piece);
        let mut ctx = CallContext { on_text: &mut on_text, interrupted: self.interrupted };
        let response = self.model.create(&request, &mut ctx);
        messages.sent(request.messages);
        let response = response.map_err(|e| match e {
            ModelError::Interrupted => Error::Interrupted,
            other => Error::Model(other),
        })?;
        self.events.model_reply(&response);
        Ok(response)
    }

    /// Production mode at the end of a turn: if tasks still run (or finished meanwhile), wait
    /// for their results, bounded by `max_wait`, and inject them. True if anything was injected.
    fn wait_for_stragglers(
        &mut self,
        messages: &mut dyn Conversation,
        max_wait: Duration,
    ) -> Result<bool> {
        let manager = self.manager;
        let running = manager.snapshot(Records::None).running;
        if running > 0 {
            self.events.waiting(running, max_wait);
        }
        let ended = poll_until(self.interrupted, Some(max_wait), |slice| {
            manager.wait(Until::Finished, Some(slice)).ok().map(drop)
        })
        .map_err(|Interrupted| Error::Interrupted)?;
        let notes = self.drain()?;
        if running > 0 {
            self.events.waited(match (ended, notes.is_empty()) {
                (_, false) => WaitEnd::Results,
                (Some(()), true) => WaitEnd::NothingRunning,
                (None, true) => WaitEnd::MaxWait,
            });
        }
        if notes.is_empty() {
            return Ok(false);
        }
        self.inject(messages, &notes)?;
        Ok(true)
    }

    /// A reply cut off (`max_tokens`) can hold tool calls; each needs a result, or the next
    /// request is rejected. They are not run: their input may be cut off too.
    fn answer_cut_off_calls(
        &mut self,
        messages: &mut dyn Conversation,
        response: &Response,
    ) -> Result<()> {
        let reason = response.stop_reason.as_deref().unwrap_or("none");
        let text =
            format!("Error: this tool call was cut off (stop_reason {reason}) and was not run");
        let results: Vec<Value> = response.tool_uses().map(|b| tool_result(b.id, &text)).collect();
        if results.is_empty() {
            return Ok(());
        }
        messages.push_user(Value::Array(results))
    }

    fn run_tools(&mut self, messages: &mut dyn Conversation, response: &Response) -> Result<()> {
        let mut results = Vec::new();
        let mut interrupted = false;
        for call in response.tool_uses() {
            let id_text = call.id.as_str().unwrap_or_default();
            let output = if interrupted {
                "Error: Interrupted by the user before this tool ran".to_string()
            } else {
                let name = call.name;
                self.events.tool_start(id_text, name, call.input);
                match self.tools.run(name, call.input) {
                    Ok(output) => {
                        self.events.tool(id_text, name, &output);
                        output
                    }
                    Err(Interrupted) => {
                        interrupted = true;
                        "Error: Interrupted by the user".to_string()
                    }
                }
            };
            results.push(tool_result(call.id, &output));
        }
        // Even when interrupted, every tool_use gets its result, so the next call is valid.
        messages.push_user(Value::Array(results))?;
        if interrupted {
            return Err(Error::Interrupted);
        }
        Ok(())
    }
}
