//! A model that replays recorded responses: for tests and for the offline demo.

use super::{CallContext, Model, ModelError, Request, Response};
use std::collections::VecDeque;
use std::sync::Mutex;

pub struct ScriptedModel {
    responses: Mutex<VecDeque<Response>>,
    requests: Mutex<Vec<Request>>,
}

impl ScriptedModel {
    pub fn new(responses: Vec<Response>) -> Self {
        ScriptedModel { responses: Mutex::new(responses.into()), requests: Mutex::new(Vec::new()) }
    }

    /// Reads a JSON file holding a list of responses (`{"content": [...], "stop_reason": ...}`).
    pub fn from_file(path: &std::path::Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ModelError::Config(format!("cannot read script {}: {e}", path.display()))
        })?;
        let responses: Vec<Response> = serde_json::from_str(&text).map_err(|e| {
            ModelError::Config(format!(
                "script {} is not a JSON list of responses: {e}",
                path.display()
            ))
        })?;
        Ok(Self::new(responses))
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn remaining(&self) -> usize {
        self.responses.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Model for ScriptedModel {
    fn create(&self, request: &Request, ctx: &mut CallContext) -> Result<Response, ModelError> {
        self.requests.lock().unwrap_or_else(|p| p.into_inner()).push(request.clone());
        let next = self.responses.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
        let response = next.ok_or_else(|| {
            ModelError::Other("the scripted model has no response left".to_string())
        })?;
        let text = response.text();
        if !text.is_empty() {
            (ctx.on_text)(&text);
        }
        Ok(response)
    }
}
