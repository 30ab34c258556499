#![allow(dead_code)]
//! A fake Anthropic Messages API on 127.0.0.1: scripted replies (JSON, SSE, errors, stalls,
//! dropped connections) and a record of every request, for tests of the HTTP client.

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// What the server does with one POST /v1/messages.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A full Messages API response; sent as SSE when the request has `"stream": true`.
    Message(Value),
    Error {
        status: u16,
        error_type: String,
        message: String,
        headers: Vec<(String, String)>,
    },
    /// Read the request, send nothing for that long, then close.
    Stall(Duration),
    /// Read the request, close without a response.
    Close,
    /// 200, application/json, a body that is not JSON.
    Malformed,
    /// A stream that breaks off after the content (a promised length never arrives).
    CutStream(Value),
    /// Any status, content type and body bytes (streams included: a body sent whole).
    Raw {
        status: u16,
        content_type: String,
        body: Vec<u8>,
    },
    /// Holds the reply until the gate opens (at most a minute): lets a test order what the
    /// loop sees without sleeping.
    After(Gate, Box<Reply>),
}

/// A condition the server polls before replying.
#[derive(Clone)]
pub struct Gate(pub Arc<dyn Fn() -> bool + Send + Sync>);

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gate")
    }
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    /// `Null` when the body is not JSON.
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Shared {
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    /// Open connections (by accept order), so Drop can shut them down and free their threads.
    streams: Mutex<Vec<Option<TcpStream>>>,
    stopped: Mutex<bool>,
    wake: Condvar,
}

// A panicking test must not turn Drop into a second panic (abort) over a poisoned lock.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub struct MessagesServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl MessagesServer {
    pub fn start(replies: Vec<Reply>) -> MessagesServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let shared = Arc::new(Shared::default());
        lock(&shared.replies).extend(replies);
        let s = Arc::clone(&shared);
        let acceptor = thread::spawn(move || {
            for conn in listener.incoming() {
                if *lock(&s.stopped) {
                    break;
                }
                let Ok(stream) = conn else { continue };
                // Without it, small writes wait on delayed ACKs (~40 ms per request).
                let _ = stream.set_nodelay(true);
                let id = {
                    let mut streams = lock(&s.streams);
                    streams.push(stream.try_clone().ok());
                    streams.len() - 1
                };
                let s = Arc::clone(&s);
                thread::spawn(move || {
                    let _ = serve(&stream, &s);
                    // Close for real: the clone kept for Drop would hold the socket open.
                    let _ = stream.shutdown(Shutdown::Both);
                    lock(&s.streams)[id] = None;
                });
            }
        });
        MessagesServer { addr, shared, acceptor: Some(acceptor) }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn push(&self, reply: Reply) {
        lock(&self.shared.replies).push_back(reply);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }
}

impl Drop for MessagesServer {
    fn drop(&mut self) {
        *lock(&self.shared.stopped) = true;
        self.shared.wake.notify_all();
        // accept() blocks; a connection of our own makes it return and see the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for stream in lock(&self.shared.streams).iter().flatten() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

fn next_id(prefix: &str) -> String {
    format!("{prefix}_test{:06}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

pub fn message(content: Value, stop_reason: &str) -> Value {
    let output_tokens = content.to_string().len() / 4 + 1;
    json!({
        "id": next_id("msg"), "type": "message", "role": "assistant", "model": "test-model",
        "content": content, "stop_reason": stop_reason, "stop_sequence": null,
        "usage": {"input_tokens": 25, "output_tokens": output_tokens},
    })
}

pub fn text(s: &str) -> Value {
    json!({"type": "text", "text": s})
}

pub fn tool_use(id: &str, name: &str, input: Value) -> Value {
    json!({"type": "tool_use", "id": id, "name": name, "input": input})
}

pub fn error(status: u16, message: &str) -> Reply {
    let error_type = match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    };
    Reply::Error {
        status,
        error_type: error_type.to_string(),
        message: message.to_string(),
        headers: vec![("request-id".to_string(), next_id("req"))],
    }
}

/// Serves one connection: requests in a loop while the client keeps it alive.
fn serve(out: &TcpStream, shared: &Shared) -> io::Result<()> {
    let mut reader = BufReader::new(out);
    while let Some(req) = read_request(&mut reader)? {
        lock(&shared.requests).push(req.clone());
        let route = req.path.split('?').next().unwrap_or("");
        let reply = match (req.method.as_str(), route) {
            ("GET", "/health") => {
                respond(out, 200, "text/plain", &[], b"ok")?;
                continue;
            }
            ("POST", "/v1/messages") => match conversation_problem(&req.body["messages"]) {
                // Refused as the real API refuses it, so every test checks the conversation.
                Some(problem) => error(400, &problem),
                None => lock(&shared.replies)
                    .pop_front()
                    .unwrap_or_else(|| error(500, "no scripted reply left")),
            },
            _ => error(404, &format!("no route for {} {}", req.method, req.path)),
        };
        let mut reply = reply;
        while let Reply::After(Gate(open), then) = reply {
            let give_up = std::time::Instant::now() + Duration::from_secs(60);
            while !open() && std::time::Instant::now() < give_up {
                thread::sleep(Duration::from_millis(5));
            }
            reply = *then;
        }
        match reply {
            Reply::Message(msg) if req.body["stream"] == json!(true) => {
                return write_sse(out, &msg, false)
            }
            Reply::CutStream(msg) => return write_sse(out, &msg, true),
            Reply::Message(msg) => {
                respond(out, 200, "application/json", &[], msg.to_string().as_bytes())?
            }
            Reply::Error { status, error_type, message, headers } => {
                let error = json!({"type": error_type, "message": message});
                let body = json!({"type": "error", "error": error}).to_string();
                respond(out, status, "application/json", &headers, body.as_bytes())?
            }
            Reply::Stall(time) => {
                // Wait on the stop flag, not a plain sleep, so Drop ends the stall at once.
                let stopped = lock(&shared.stopped);
                drop(shared.wake.wait_timeout_while(stopped, time, |stopped| !*stopped));
                return Ok(());
            }
            Reply::Close | Reply::After(..) => return Ok(()),
            Reply::Malformed => {
                respond(out, 200, "application/json", &[], b"{\"id\": \"msg_trunc")?
            }
            Reply::Raw { status, content_type, body } => {
                respond(out, status, &content_type, &[], &body)?
            }
        }
        if req.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
            break;
        }
    }
    Ok(())
}

/// What the real API would refuse in a conversation: an empty message, a tool_use without a
/// tool_result right after it, a tool_result without its tool_use just before.
pub fn conversation_problem(messages: &Value) -> Option<String> {
    let Some(messages) = messages.as_array() else {
        return Some("messages: a list is required".into());
    };
    let ids = |message: &Value, kind: &str, key: &str| -> Vec<String> {
        let blocks = message["content"].as_array().map(Vec::as_slice).unwrap_or_default();
        let of_kind = blocks.iter().filter(|b| b["type"] == kind);
        of_kind.map(|b| b[key].as_str().unwrap_or_default().to_string()).collect()
    };
    for (i, message) in messages.iter().enumerate() {
        let content = &message["content"];
        if content.as_array().is_some_and(Vec::is_empty) || content.as_str() == Some("") {
            return Some(format!("messages.{i}: all messages must have non-empty content"));
        }
        let results = ids(message, "tool_result", "tool_use_id");
        let before = if i > 0 { ids(&messages[i - 1], "tool_use", "id") } else { Vec::new() };
        if let Some(orphan) = results.iter().find(|id| !before.contains(id)) {
            return Some(format!(
                "messages.{i}: tool_result for {orphan} has no tool_use before it"
            ));
        }
        let calls = ids(message, "tool_use", "id");
        let after = messages.get(i + 1).map(|m| ids(m, "tool_result", "tool_use_id"));
        if let Some(unanswered) =
            calls.iter().find(|id| !after.as_ref().is_some_and(|a| a.contains(id)))
        {
            return Some(format!(
                "messages.{i}: tool_use {unanswered} has no tool_result after it"
            ));
        }
    }
    None
}

/// Request line, headers and a Content-Length body; `None` when the client closed.
fn read_request(reader: &mut BufReader<&TcpStream>) -> io::Result<Option<Recorded>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let Some((name, value)) = line.trim_end().split_once(':') else { break };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut req = Recorded { method, path, headers, body: Value::Null };
    let len = req.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    req.body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok(Some(req))
}

fn respond(
    mut out: &TcpStream,
    status: u16,
    content_type: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> io::Result<()> {
    // Clients read only the code; the reason phrase is free text.
    let reason = if status < 400 { "OK" } else { "Error" };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\n");
    head += &format!("content-length: {}\r\n", body.len());
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("request-id")) {
        head += &format!("request-id: {}\r\n", next_id("req"));
    }
    for (name, value) in headers {
        head += &format!("{name}: {value}\r\n");
    }
    head += "\r\n";
    // One write for head and body: no partial responses on the wire.
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    out.write_all(&bytes)?;
    out.flush()
}

/// Streams `msg` as the real API does; the caller closes, which ends the body. With `cut`, the
/// stream stops before `message_delta` although a longer body was promised: a transport error.
fn write_sse(mut out: &TcpStream, msg: &Value, cut: bool) -> io::Result<()> {
    let promise = if cut { "content-length: 1000000\r\n" } else { "" };
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
         request-id: {}\r\n{promise}connection: close\r\n\r\n",
        next_id("req")
    );
    out.write_all(head.as_bytes())?;
    let mut start = msg.clone();
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    start["stop_sequence"] = Value::Null;
    start["usage"]["output_tokens"] = json!(1);
    let mut events =
        vec![json!({"type": "message_start", "message": start}), json!({"type": "ping"})];
    let blocks = msg["content"].as_array().cloned().unwrap_or_default();
    for (index, block) in blocks.iter().enumerate() {
        let (first, deltas): (Value, Vec<Value>) = match block["type"].as_str() {
            // Text in deltas; its citations (a web search's) each in a delta of their own.
            Some("text") => {
                let parts = split(block["text"].as_str().unwrap_or(""), 3);
                let deltas = parts.into_iter().map(|t| json!({"type": "text_delta", "text": t}));
                let cited = block["citations"].as_array().into_iter().flatten();
                let citations = cited.map(|c| json!({"type": "citations_delta", "citation": c}));
                (json!({"type": "text", "text": ""}), deltas.chain(citations).collect())
            }
            // As the real API streams thinking: the text in deltas, then its signature.
            Some("thinking") => {
                let parts = split(block["thinking"].as_str().unwrap_or(""), 3);
                let thinking =
                    parts.into_iter().map(|t| json!({"type": "thinking_delta", "thinking": t}));
                let signature = json!({"type": "signature_delta", "signature": block["signature"]});
                let deltas = thinking.chain(block.get("signature").map(|_| signature));
                (json!({"type": "thinking", "thinking": ""}), deltas.collect())
            }
            // A server tool's call streams its input as a client tool's does.
            Some("tool_use" | "server_tool_use") => {
                let mut first = block.clone();
                first["input"] = json!({});
                // The real API opens with an empty partial_json.
                let input = block["input"].to_string();
                let parts = std::iter::once("").chain(split(&input, 4));
                let deltas = parts.map(|p| json!({"type": "input_json_delta", "partial_json": p}));
                (first, deltas.collect())
            }
            _ => (block.clone(), Vec::new()),
        };
        events.push(json!({"type": "content_block_start", "index": index, "content_block": first}));
        for delta in deltas {
            events.push(json!({"type": "content_block_delta", "index": index, "delta": delta}));
        }
        events.push(json!({"type": "content_block_stop", "index": index}));
    }
    if cut {
        events.truncate(events.len() - 1); // not even the last block's stop
    } else {
        events.push(json!({
            "type": "message_delta",
            "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": msg["stop_sequence"]},
            "usage": {"output_tokens": msg["usage"]["output_tokens"]},
        }));
        events.push(json!({"type": "message_stop"}));
    }
    for event in events {
        let name = event["type"].as_str().unwrap_or_default();
        out.write_all(format!("event: {name}\ndata: {event}\n\n").as_bytes())?;
        out.flush()?;
        // A pause lets the client see events in separate reads, as from the real API.
        thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Up to `n` pieces of `s`, cut only at char boundaries; at least one piece.
fn split(s: &str, n: usize) -> Vec<&str> {
    let size = s.len().div_ceil(n).max(1);
    let mut pieces = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let mut cut = size.min(rest.len());
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        let (piece, tail) = rest.split_at(cut);
        pieces.push(piece);
        rest = tail;
    }
    if pieces.is_empty() {
        pieces.push("");
    }
    pieces
}
