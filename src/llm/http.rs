//! The built-in client for the Anthropic Messages API: keep-alive connections, retries with
//! backoff that honour `retry-after`, a request timeout, and streaming (SSE).

use super::sse::{stream_error, StreamAssembler};
use super::sse_lines::SseParser;
use super::{CallContext, Model, ModelError, Progress, Request, Response};
use crate::runtime::{poll_until, runtime, Interrupted, Seconds};
use futures_util::StreamExt;
use serde_json::Value;
use std::sync::mpsc::{channel, Sender};
use std::sync::OnceLock;
use std::time::Duration;

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// The most a response may take, streamed or not; and the most one streamed event may take.
/// (Real replies are far smaller: these only stop a broken server from eating memory.)
pub const MAX_BODY: usize = 256 << 20;
pub const MAX_EVENT: usize = 64 << 20;
/// How much of an error body is read, and how much of it goes into the error's message.
const ERROR_BODY: usize = 64 << 10;
const ERROR_TEXT: usize = 4096;

#[derive(Clone)]
pub struct HttpConfig {
    pub base_url: String,
    /// Sent as `x-api-key`.
    pub api_key: Option<String>,
    /// Sent as `Authorization: Bearer`, when there is no API key.
    pub auth_token: Option<String>,
    /// For one attempt, streaming included.
    pub timeout: Duration,
    /// Extra attempts after a retryable failure.
    pub max_retries: u32,
    pub stream: bool,
}

impl HttpConfig {
    /// `ANTHROPIC_BASE_URL`, `ANTHROPIC_API_KEY` and `ANTHROPIC_AUTH_TOKEN` from the environment.
    pub fn from_env() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        HttpConfig {
            base_url: var("ANTHROPIC_BASE_URL").unwrap_or_else(|| DEFAULT_BASE_URL.to_string()),
            api_key: var("ANTHROPIC_API_KEY"),
            auth_token: var("ANTHROPIC_AUTH_TOKEN"),
            timeout: crate::defaults::CLIENT_TIMEOUT,
            max_retries: crate::defaults::CLIENT_MAX_RETRIES,
            stream: false,
        }
    }

    fn url(&self) -> String {
        format!("{}/v1/messages", self.base_url.trim_end_matches('/'))
    }
}

// Never print the key.
impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("auth_token", &self.auth_token.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("stream", &self.stream)
            .finish()
    }
}

#[derive(Debug)]
pub struct HttpClient {
    config: HttpConfig,
    /// Built at the first call: building one reads the system's root certificates (about
    /// 20 ms), which a client never used (`import bgagent.s08`, an `Agent` given a script)
    /// should not pay.
    http: OnceLock<Result<reqwest::Client, String>>,
}

impl HttpClient {
    /// Never fails today (the HTTP client is built at the first call, and a failure to build
    /// it is that call's error); the `Result` stays for the settings it may check later.
    pub fn new(config: HttpConfig) -> Result<Self, ModelError> {
        Ok(HttpClient { config, http: OnceLock::new() })
    }

    fn http(&self) -> Result<reqwest::Client, ModelError> {
        let built = self.http.get_or_init(|| {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .pool_idle_timeout(Duration::from_secs(60))
                .build()
                .map_err(|e| format!("cannot build the HTTP client: {e}"))
        });
        built.clone().map_err(ModelError::Config)
    }

    pub fn from_env() -> Result<Self, ModelError> {
        Self::new(HttpConfig::from_env())
    }

    pub fn config(&self) -> &HttpConfig {
        &self.config
    }
}

impl Model for HttpClient {
    fn create(&self, request: &Request, ctx: &mut CallContext) -> Result<Response, ModelError> {
        if request.model.is_empty() {
            return Err(ModelError::Config("no model name: set MODEL_ID".into()));
        }
        if self.config.api_key.is_none() && self.config.auth_token.is_none() {
            return Err(ModelError::Config(
                "no API key: set ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN)".into(),
            ));
        }
        let mut body =
            serde_json::to_value(request).map_err(|e| ModelError::Other(e.to_string()))?;
        if self.config.stream {
            body["stream"] = Value::Bool(true);
        }
        let http = self.http()?;
        let (send, progress) = channel();
        let task = runtime().spawn(call_with_retries(http, self.config.clone(), body, send));
        // Wait here, not on the runtime, so Ctrl-C can be noticed between slices.
        let on_text = &mut *ctx.on_text;
        let outcome = poll_until(ctx.interrupted, None, |slice| {
            match Progress::receive(&progress, slice, "the request task")? {
                Progress::Text(piece) => {
                    on_text(&piece);
                    None
                }
                Progress::Done(result) => Some(result),
            }
        });
        match outcome {
            Ok(result) => result.unwrap_or(Err(ModelError::Interrupted)),
            Err(Interrupted) => {
                task.abort();
                Err(ModelError::Interrupted)
            }
        }
    }
}

/// One attempt's failure, and whether another attempt may help.
struct Failure {
    error: ModelError,
    retry: bool,
    retry_after: Option<Duration>,
}

async fn call_with_retries(
    http: reqwest::Client,
    config: HttpConfig,
    body: Value,
    progress: Sender<Progress>,
) {
    let mut attempt = 0;
    let result = loop {
        match attempt_once(&http, &config, &body, &progress).await {
            Ok(response) => break Ok(response),
            Err(f) if f.retry && attempt < config.max_retries => {
                tokio::time::sleep(backoff(attempt, f.retry_after)).await;
                attempt += 1;
            }
            Err(f) => break Err(f.error),
        }
    };
    let _ = progress.send(Progress::Done(result));
}

/// 0.5 s, 1 s, 2 s ... up to 8 s, unless the server said how long to wait (up to a minute).
fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    match retry_after {
        Some(d) if d <= Duration::from_secs(60) => d,
        _ => Duration::from_millis(500 * 2u64.pow(attempt.min(4))).min(Duration::from_secs(8)),
    }
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    let seconds =
        number("retry-after-ms").map(|ms| ms / 1000.0).or_else(|| number("retry-after"))?;
    // Anything odd (negative, NaN, absurdly large) is ignored and the usual backoff applies.
    Seconds::non_negative("retry-after", seconds).ok().map(Seconds::duration)
}

/// The error and its causes in one line ("error sending request: connection refused").
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

async fn attempt_once(
    http: &reqwest::Client,
    config: &HttpConfig,
    body: &Value,
    progress: &Sender<Progress>,
) -> Result<Response, Failure> {
    let url = config.url();
    let transport = |e: reqwest::Error| {
        let error = if e.is_timeout() {
            ModelError::Timeout { url: url.clone(), after: config.timeout }
        } else {
            ModelError::Connection { url: url.clone(), reason: describe(&e) }
        };
        Failure { error, retry: true, retry_after: None }
    };
    let invalid = |reason: String| Failure {
        error: ModelError::InvalidResponse { url: url.clone(), reason },
        retry: false,
        retry_after: None,
    };

    let mut req = http
        .post(&url)
        .timeout(config.timeout)
        .header("anthropic-version", "2023-06-01")
        .json(body);
    if let Some(key) = &config.api_key {
        req = req.header("x-api-key", key);
    } else if let Some(token) = &config.auth_token {
        req = req.bearer_auth(token);
    }
    let response = req.send().await.map_err(transport)?;
    let status = response.status().as_u16();
    if !response.status().is_success() {
        let wait = retry_after(response.headers());
        let request_id =
            response.headers().get("request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        // An error body can be anything (a proxy's 5 MB HTML page): keep the start of it.
        let (body, cut) = read_body(response, ERROR_BODY).await.unwrap_or_default();
        let parsed: Value = serde_json::from_slice(&body).unwrap_or_default();
        let error_type = parsed["error"]["type"].as_str().unwrap_or("api_error").to_string();
        let message = match parsed["error"]["message"].as_str() {
            Some(m) => error_text(m.as_bytes(), false),
            None if body.is_empty() => "(empty body)".into(),
            None => error_text(&body, cut),
        };
        let retry = matches!(status, 408 | 409 | 429) || status >= 500;
        let error = ModelError::Status { status, error_type, message, request_id };
        return Err(Failure { error, retry, retry_after: wait });
    }

    if body.get("stream") == Some(&Value::Bool(true)) {
        let mut chunks = response.bytes_stream();
        let mut parser = SseParser::new(MAX_EVENT);
        let mut assembler = StreamAssembler::default();
        let mut shown = false; // text already printed must not be printed again by a retry
        let mut received = 0usize;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| Failure { retry: !shown, ..transport(e) })?;
            received += chunk.len();
            if received > MAX_BODY {
                return Err(invalid(format!("the stream is longer than {} MiB", MAX_BODY >> 20)));
            }
            for event in parser.push(&chunk).map_err(invalid)? {
                if event.event == "error" {
                    let error = stream_error(&event.data);
                    return Err(Failure { error, retry: false, retry_after: None });
                }
                let mut on_text = |piece: &str| {
                    shown = true;
                    let _ = progress.send(Progress::Text(piece.to_string()));
                };
                assembler.event(&event.event, &event.data, &mut on_text).map_err(invalid)?;
            }
        }
        return assembler.finish().map_err(invalid);
    }

    let (bytes, cut) = read_body(response, MAX_BODY).await.map_err(transport)?;
    if cut {
        return Err(invalid(format!("the body is longer than {} MiB", MAX_BODY >> 20)));
    }
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(format!("the body is not JSON ({e})")))?;
    if !value["content"].is_array() {
        return Err(invalid("the body has no content list".into()));
    }
    serde_json::from_value(value).map_err(|e| invalid(e.to_string()))
}

/// The body, up to `limit` bytes; true if there was more (the rest is not read).
async fn read_body(
    response: reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut chunks = response.bytes_stream();
    let mut body = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > limit {
            body.extend_from_slice(&chunk[..limit - body.len()]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// The start of an error body (cut at a character boundary), saying whether more was left out.
fn error_text(body: &[u8], cut: bool) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_TEXT)]);
    let text = text.trim_end_matches('\u{FFFD}');
    if cut || body.len() > ERROR_TEXT {
        format!("{text}... (cut; the body was longer)")
    } else {
        text.to_string()
    }
}
