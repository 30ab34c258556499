//! `bgagent --demo`: a built-in model plays the lesson's three "try it" prompts against real
//! background tasks in a temporary workspace. No key, no network.

use crate::llm::block::{text, tool_use};
use crate::llm::{CallContext, Model, ModelError, Request, Response};
use crate::tools::{BackgroundRun, CheckBackground, Tool, WriteFile};
use serde_json::{json, Value};

/// The lesson's suggested prompts.
pub const PROMPTS: [&str; 3] = [
    "Run \"sleep 5 && echo done\" in the background, then create a file while it runs",
    "Start 3 background tasks: \"sleep 2\", \"sleep 4\", \"sleep 6\". Check their status.",
    "Run pytest in the background and keep working on other things",
];

/// One model turn of a plan: some text, then tool calls (none means the turn ends).
struct Step {
    say: &'static str,
    calls: Vec<(&'static str, Value)>,
}

fn plan(prompt: usize) -> Vec<Step> {
    let step = |say, calls| Step { say, calls };
    match prompt {
        0 => vec![
            step(
                "I'll start that in the background.",
                vec![(BackgroundRun::NAME, json!({"command": "sleep 5 && echo done"}))],
            ),
            step(
                "While it runs, I'll create the file.",
                vec![(
                    WriteFile::NAME,
                    json!({"path": "notes.txt", "content": "Written while sleep 5 runs.\n"}),
                )],
            ),
            step("notes.txt is written and the sleep is still running in the background.", vec![]),
        ],
        1 => vec![
            step(
                "Starting all three.",
                vec![
                    (BackgroundRun::NAME, json!({"command": "sleep 2"})),
                    (BackgroundRun::NAME, json!({"command": "sleep 4"})),
                    (BackgroundRun::NAME, json!({"command": "sleep 6"})),
                ],
            ),
            step("Let me check on them.", vec![(CheckBackground::NAME, json!({}))]),
            step("All three are running; their results will arrive as they finish.", vec![]),
        ],
        _ => vec![
            step(
                "There is no test suite here yet, so I'll write a small one first.",
                vec![(
                    WriteFile::NAME,
                    json!({"path": "run_tests.sh", "content": "sleep 2\necho '3 passed in 2.01s'\n"}),
                )],
            ),
            step(
                "Now the tests run in the background.",
                vec![(BackgroundRun::NAME, json!({"command": "sh run_tests.sh"}))],
            ),
            step(
                "Meanwhile, other work: a changelog.",
                vec![(
                    WriteFile::NAME,
                    json!({"path": "CHANGELOG.md", "content": "# Changelog\n\n- Tests added.\n"}),
                )],
            ),
            step("The changelog is written while the tests keep running.", vec![]),
        ],
    }
}

/// Plays the plans: it reads the conversation to know which prompt it is on and how far.
pub struct DemoModel;

fn is_text(m: &Value) -> Option<&str> {
    m["content"].as_str()
}

impl Model for DemoModel {
    fn create(&self, request: &Request, ctx: &mut CallContext) -> Result<Response, ModelError> {
        let messages = &request.messages;
        let (start, prompt) = messages
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, m)| {
                let text = is_text(m)?;
                PROMPTS.iter().position(|p| *p == text).map(|k| (i, k))
            })
            .ok_or_else(|| {
                ModelError::Other("the demo model only knows the demo's prompts".into())
            })?;
        let replies: Vec<&Value> =
            messages[start..].iter().filter(|m| m["role"] == "assistant").collect();
        let steps = plan(prompt);
        let last = messages.last().and_then(is_text).unwrap_or_default();
        let (say, calls) =
            if replies.len() >= steps.len() && last.starts_with("<background-results>") {
                // The plan is done; a background result came in: report it.
                let lines: Vec<&str> = last.lines().filter(|l| l.starts_with("[bg:")).collect();
                (format!("Background update: {}", lines.join("; ")), vec![])
            } else {
                let step = &steps[replies.len().min(steps.len() - 1)];
                (step.say.to_string(), step.calls.clone())
            };
        let mut content = vec![text(&say)];
        for (i, (name, input)) in calls.iter().enumerate() {
            let id = format!("toolu_demo_{prompt}_{}_{i}", replies.len());
            content.push(tool_use(&id, name, input.clone()));
        }
        (ctx.on_text)(&say);
        let stop = if calls.is_empty() { "end_turn" } else { "tool_use" };
        Ok(Response { content, stop_reason: Some(stop.into()), rest: Default::default() })
    }
}
