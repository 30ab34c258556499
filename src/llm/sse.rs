//! Assembling a streamed (SSE) Messages API response into the same `Response` the
//! non-streaming call returns: text, thinking and citations appended, tool input JSON (a
//! server tool's too) joined then parsed, blocks that come whole kept as they came.

use super::{ModelError, Response};
use serde_json::{json, Value};

#[derive(Default)]
pub struct StreamAssembler {
    message: Option<Response>,
    blocks: Vec<Value>,
    /// Tool input JSON received so far, per block.
    partial_json: Vec<String>,
    finished: bool,
}

/// The HTTP status the API uses for an error type, for errors sent inside a stream.
pub fn status_for(error_type: &str) -> u16 {
    match error_type {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "overloaded_error" => 529,
        _ => 500,
    }
}

impl StreamAssembler {
    /// Takes one SSE event. `on_text` sees each text delta as it arrives.
    pub fn event(
        &mut self,
        name: &str,
        data: &str,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<(), String> {
        if name == "ping" || data.trim().is_empty() {
            return Ok(());
        }
        let data: Value =
            serde_json::from_str(data).map_err(|e| format!("bad JSON in '{name}' event: {e}"))?;
        // An index from the server is trusted only as far as the blocks seen so far.
        let index = || match data["index"].as_u64() {
            Some(i) => Ok(i.min(usize::MAX as u64) as usize),
            None => Err(format!("'{name}' has no block index: {}", data["index"])),
        };
        match name {
            "message_start" => {
                let message = serde_json::from_value(data["message"].clone())
                    .map_err(|e| format!("bad message_start: {e}"))?;
                self.message = Some(message);
            }
            "content_block_start" => {
                let index = index()?;
                let block = &data["content_block"];
                if !block.is_object() {
                    return Err(format!("content block {index} is not an object: {block}"));
                }
                if index > self.blocks.len() {
                    let seen = self.blocks.len();
                    return Err(format!("content block {index} started after only {seen}"));
                }
                if index == self.blocks.len() {
                    self.blocks.push(Value::Null);
                    self.partial_json.push(String::new());
                }
                self.blocks[index] = block.clone();
            }
            "content_block_delta" => {
                let index = index()?;
                let block = self.blocks.get_mut(index).ok_or("delta for an unknown block")?;
                let delta = &data["delta"];
                match delta["type"].as_str() {
                    Some("text_delta") => {
                        let piece = delta["text"].as_str().unwrap_or_default();
                        append(block, "text", piece);
                        on_text(piece);
                    }
                    Some("input_json_delta") => {
                        self.partial_json[index]
                            .push_str(delta["partial_json"].as_str().unwrap_or_default());
                    }
                    Some("thinking_delta") => {
                        append(block, "thinking", delta["thinking"].as_str().unwrap_or_default())
                    }
                    Some("signature_delta") => block["signature"] = delta["signature"].clone(),
                    Some("citations_delta") => match &mut block["citations"] {
                        Value::Array(citations) => citations.push(delta["citation"].clone()),
                        other => *other = json!([delta["citation"]]),
                    },
                    _ => {}
                }
            }
            "content_block_stop" => {
                let index = index()?;
                let json = self.partial_json.get(index).map(String::as_str).unwrap_or_default();
                if !json.is_empty() {
                    let input: Value = serde_json::from_str(json)
                        .map_err(|e| format!("tool input of block {index} is not JSON: {e}"))?;
                    self.blocks[index]["input"] = input;
                }
            }
            "message_delta" => {
                let message = self.message.as_mut().ok_or("message_delta before message_start")?;
                if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                    message.stop_reason = Some(reason.to_string());
                }
                if let Some(seq) = data["delta"].get("stop_sequence") {
                    message.rest.insert("stop_sequence".into(), seq.clone());
                }
                if let Some(usage) = data["usage"].as_object() {
                    let total = message.rest.entry("usage").or_insert_with(|| json!({}));
                    if !total.is_object() {
                        *total = json!({});
                    }
                    for (k, v) in usage {
                        total[k] = v.clone();
                    }
                }
            }
            "message_stop" => self.finished = true,
            _ => {}
        }
        Ok(())
    }

    pub fn finish(self) -> Result<Response, String> {
        if !self.finished {
            return Err("the stream ended before message_stop".into());
        }
        let mut message = self.message.ok_or("the stream had no message_start")?;
        message.content = self.blocks.into_iter().filter(|b| !b.is_null()).collect();
        Ok(message)
    }
}

fn append(block: &mut Value, key: &str, piece: &str) {
    match &mut block[key] {
        Value::String(s) => s.push_str(piece),
        other => *other = Value::String(piece.to_string()),
    }
}

/// An `error` event inside a stream becomes the same error an HTTP error status would.
pub fn stream_error(data: &str) -> ModelError {
    let v: Value = serde_json::from_str(data).unwrap_or_default();
    let error_type = v["error"]["type"].as_str().unwrap_or("api_error").to_string();
    let message = v["error"]["message"].as_str().unwrap_or(data).to_string();
    ModelError::Status { status: status_for(&error_type), error_type, message, request_id: None }
}
