//! A model that replays recorded responses: for tests and for the offline demo.

use super::{CallContext, Model, ModelError, Request, Response};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Mutex;

pub struct ScriptedModel {
    responses: Mutex<VecDeque<Response>>,
    /// The requests kept, as JSON text: a sixth of the memory of the values (a JSON object
    /// costs about 900 bytes per message as values), and written faster than they are copied.
    requests: Mutex<VecDeque<String>>,
    /// At most this many requests are kept, the latest (`None`: every one).
    keep: Option<usize>,
}

impl ScriptedModel {
    /// How many of the latest requests are kept unless told otherwise. Each request holds the
    /// whole conversation, so keeping every one of a long run costs memory quadratic in its
    /// length (845 MiB after 1,000 one-call turns), while tests look at the last few.
    pub const KEEP_REQUESTS: usize = 100;

    /// Keeps the last [`Self::KEEP_REQUESTS`] requests; see [`ScriptedModel::keeping`].
    pub fn new(responses: Vec<Response>) -> Self {
        ScriptedModel {
            responses: Mutex::new(responses.into()),
            requests: Mutex::new(VecDeque::new()),
            keep: Some(Self::KEEP_REQUESTS),
        }
    }

    /// Keeps the last `keep` requests (`None`: every one, `Some(0)`: none).
    pub fn keeping(mut self, keep: Option<usize>) -> Self {
        self.keep = keep;
        self
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

    /// The requests received so far, oldest first (the last ones, as many as it keeps), as
    /// the JSON bodies a server would have got.
    pub fn requests(&self) -> Vec<Value> {
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        requests.iter().map(|r| serde_json::from_str(r).unwrap_or_default()).collect()
    }

    pub fn remaining(&self) -> usize {
        self.responses.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn record(&self, request: &Request) {
        if self.keep == Some(0) {
            return;
        }
        let body = serde_json::to_string(request).unwrap_or_default();
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        if self.keep.is_some_and(|keep| requests.len() >= keep) {
            requests.pop_front();
        }
        requests.push_back(body);
    }
}

impl Model for ScriptedModel {
    fn create(&self, request: &Request, ctx: &mut CallContext) -> Result<Response, ModelError> {
        self.record(request);
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

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP_REQUESTS: usize = ScriptedModel::KEEP_REQUESTS;

    /// A request told apart from the others by its `max_tokens`.
    fn ask(model: &ScriptedModel, n: u32) {
        let request = Request {
            model: "m".into(),
            system: String::new(),
            messages: Vec::new(),
            tools: Vec::new(),
            max_tokens: n,
            extra: Default::default(),
        };
        let mut ignore = |_: &str| {};
        let mut ctx = CallContext { on_text: &mut ignore, interrupted: &|| false };
        model.create(&request, &mut ctx).unwrap();
    }

    fn kept(model: &ScriptedModel) -> Vec<u32> {
        model.requests().iter().map(|r| r["max_tokens"].as_u64().unwrap() as u32).collect()
    }

    #[test]
    fn keeps_the_latest_requests_up_to_its_bound() {
        let model = ScriptedModel::new(vec![Response::default(); 5]).keeping(Some(3));
        (1..=5).for_each(|n| ask(&model, n));
        assert_eq!(kept(&model), [3, 4, 5]);

        let all = ScriptedModel::new(vec![Response::default(); 5]).keeping(None);
        (1..=5).for_each(|n| ask(&all, n));
        assert_eq!(kept(&all), [1, 2, 3, 4, 5]);

        let none = ScriptedModel::new(vec![Response::default(); 2]).keeping(Some(0));
        (1..=2).for_each(|n| ask(&none, n));
        assert_eq!(kept(&none), [] as [u32; 0]);
        assert_eq!(none.remaining(), 0, "the replies are given all the same");
    }

    #[test]
    fn keeps_a_hundred_by_default() {
        let model = ScriptedModel::new(vec![Response::default(); KEEP_REQUESTS + 20]);
        (1..=KEEP_REQUESTS as u32 + 20).for_each(|n| ask(&model, n));
        assert_eq!(kept(&model), (21..=KEEP_REQUESTS as u32 + 20).collect::<Vec<_>>());
    }
}
