//! Content blocks: how the loop reads one, and the ones it writes.
//!
//! Blocks stay the JSON they came as, in the response and in the conversation: a block the
//! loop has no use for (thinking, redacted_thinking, a server tool's call or result, a type
//! not invented yet) goes back to the model exactly as it came. [`Block`] is a typed view of
//! one, borrowed from that JSON.

use serde_json::{json, Value};

/// One content block, read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Block<'a> {
    Text(&'a str),
    ToolUse(ToolUse<'a>),
    /// Any other block, as it came.
    Other(&'a Value),
}

/// A `tool_use` block: a call the loop answers with a `tool_result`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToolUse<'a> {
    /// Given back as it came in the result (normally a string).
    pub id: &'a Value,
    /// Empty when missing (the tool is then unknown).
    pub name: &'a str,
    /// `Null` when missing.
    pub input: &'a Value,
}

impl<'a> Block<'a> {
    pub fn of(block: &'a Value) -> Self {
        match block["type"].as_str() {
            Some("text") => match block["text"].as_str() {
                Some(text) => Block::Text(text),
                None => Block::Other(block),
            },
            Some("tool_use") => Block::ToolUse(ToolUse {
                id: &block["id"],
                name: block["name"].as_str().unwrap_or_default(),
                input: &block["input"],
            }),
            _ => Block::Other(block),
        }
    }
}

/// The text blocks' texts, joined by newlines (what a REPL prints of a reply).
pub fn joined_text(blocks: &[Value]) -> String {
    let texts = blocks.iter().filter_map(|b| match Block::of(b) {
        Block::Text(text) => Some(text),
        _ => None,
    });
    texts.collect::<Vec<_>>().join("\n")
}

/// A text block.
pub fn text(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

/// A tool_use block.
pub fn tool_use(id: &str, name: &str, input: Value) -> Value {
    json!({"type": "tool_use", "id": id, "name": name, "input": input})
}

/// The tool_result block answering the tool_use `id`.
pub fn tool_result(id: &Value, content: &str) -> Value {
    json!({"type": "tool_result", "tool_use_id": id, "content": content})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_read_as_the_loop_needs_them_and_others_stay_whole() {
        let thinking = json!({"type": "thinking", "thinking": "hm", "signature": "s"});
        assert_eq!(Block::of(&thinking), Block::Other(&thinking));
        assert_eq!(Block::of(&text("hi")), Block::Text("hi"));
        let odd_text = json!({"type": "text", "text": 5});
        assert_eq!(Block::of(&odd_text), Block::Other(&odd_text));
        let call = tool_use("t1", "bash", json!({"command": "ls"}));
        let Block::ToolUse(read) = Block::of(&call) else { panic!("{call}") };
        assert_eq!((read.id, read.name, read.input), (&json!("t1"), "bash", &call["input"]));
        let bare = json!({"type": "tool_use"});
        let Block::ToolUse(read) = Block::of(&bare) else { panic!("{bare}") };
        assert_eq!((read.id, read.name, read.input), (&Value::Null, "", &Value::Null));
    }
}
