//! The Messages API client against a local server speaking the API (JSON and SSE).

mod common;

use bgagent::llm::{CallContext, HttpClient, HttpConfig, Model, ModelError, Request, Response};
use common::messages_server::{error, message, text, tool_use, MessagesServer, Reply};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn config(url: &str) -> HttpConfig {
    HttpConfig {
        base_url: url.to_string(),
        api_key: Some("sk-test".into()),
        auth_token: None,
        timeout: Duration::from_secs(10),
        max_retries: 2,
        stream: false,
    }
}

fn request() -> Request {
    Request {
        model: "test-model".into(),
        system: "be brief".into(),
        messages: vec![json!({"role": "user", "content": "hi"})],
        tools: vec![json!({"name": "bash", "input_schema": {"type": "object"}})],
        max_tokens: 100,
        extra: Default::default(),
    }
}

fn call(config: HttpConfig) -> (Result<Response, ModelError>, Vec<String>) {
    let client = HttpClient::new(config).unwrap();
    let mut pieces = Vec::new();
    let mut on_text = |p: &str| pieces.push(p.to_string());
    let mut ctx = CallContext { on_text: &mut on_text, interrupted: &|| false };
    let result = client.create(&request(), &mut ctx);
    (result, pieces)
}

fn retry_after_zero(status: u16) -> Reply {
    retry_after(status, "0")
}

fn retry_after(status: u16, seconds: &str) -> Reply {
    match error(status, "try later") {
        Reply::Error { status, error_type, message, mut headers } => {
            headers.push(("retry-after".into(), seconds.into()));
            Reply::Error { status, error_type, message, headers }
        }
        other => other,
    }
}

#[test]
fn a_json_reply_becomes_a_response_and_the_request_is_well_formed() {
    let reply = message(
        json!([text("hello"), tool_use("t1", "bash", json!({"command": "ls"}))]),
        "tool_use",
    );
    let server = MessagesServer::start(vec![Reply::Message(reply.clone())]);
    let (result, _) = call(config(&server.url()));
    let response = result.unwrap();
    assert_eq!(response.content, reply["content"].as_array().unwrap().clone());
    assert_eq!(response.stop_reason.as_deref(), Some("tool_use"));
    assert_eq!(response.rest["id"], reply["id"]);
    let sent = &server.requests()[0];
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some("sk-test"));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.body["model"], "test-model");
    assert_eq!(sent.body["system"], "be brief");
    assert_eq!(sent.body["max_tokens"], 100);
    assert!(sent.body.get("stream").is_none());
}

#[test]
fn a_streamed_reply_assembles_into_the_same_blocks() {
    let reply = message(
        json!([
            text("Hé, wörld! 日本"),
            tool_use("t1", "write_file", json!({"path": "a/b.txt", "content": "✓ 🎉"}))
        ]),
        "tool_use",
    );
    let server =
        MessagesServer::start(vec![Reply::Message(reply.clone()), Reply::Message(reply.clone())]);
    let (plain, _) = call(config(&server.url()));
    let (streamed, pieces) = call(HttpConfig { stream: true, ..config(&server.url()) });
    let (plain, streamed) = (plain.unwrap(), streamed.unwrap());
    assert_eq!(streamed.content, plain.content);
    assert_eq!(streamed.stop_reason.as_deref(), Some("tool_use"));
    assert!(pieces.len() > 1, "text arrives in pieces: {pieces:?}");
    assert_eq!(pieces.concat(), "Hé, wörld! 日本");
    assert_eq!(server.requests()[1].body["stream"], true);
}

#[test]
fn retryable_statuses_are_retried_then_succeed() {
    let server = MessagesServer::start(vec![
        retry_after_zero(529),
        retry_after_zero(429),
        Reply::Message(message(json!([text("ok")]), "end_turn")),
    ]);
    let (result, _) = call(config(&server.url()));
    assert_eq!(result.unwrap().text(), "ok");
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn an_absurd_retry_after_falls_back_to_the_usual_backoff() {
    let server = MessagesServer::start(vec![
        retry_after(529, "1e20"),
        retry_after(529, "-5"),
        Reply::Message(message(json!([text("ok")]), "end_turn")),
    ]);
    let (result, _) = call(config(&server.url()));
    assert_eq!(result.unwrap().text(), "ok");
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn retries_stop_after_two_and_client_errors_are_not_retried() {
    let server = MessagesServer::start(vec![
        retry_after_zero(500),
        retry_after_zero(500),
        retry_after_zero(500),
    ]);
    let (result, _) = call(config(&server.url()));
    match result {
        Err(ModelError::Status { status: 500, error_type, .. }) => {
            assert_eq!(error_type, "api_error")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.requests().len(), 3);

    let server = MessagesServer::start(vec![error(401, "bad key")]);
    let (result, _) = call(config(&server.url()));
    let e = result.unwrap_err();
    assert!(matches!(&e, ModelError::Status { status: 401, .. }), "{e:?}");
    assert!(e.to_string().contains("authentication_error: bad key"), "{e}");
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn stalls_time_out_and_drops_are_connection_errors() {
    let server = MessagesServer::start(vec![
        Reply::Stall(Duration::from_secs(30)),
        Reply::Close,
        Reply::Malformed,
    ]);
    let quick =
        HttpConfig { timeout: Duration::from_millis(300), max_retries: 0, ..config(&server.url()) };
    let began = Instant::now();
    assert!(matches!(call(quick.clone()).0, Err(ModelError::Timeout { .. })));
    assert!(began.elapsed() < Duration::from_secs(20));
    assert!(matches!(call(quick.clone()).0, Err(ModelError::Connection { .. })));
    match call(quick).0 {
        Err(ModelError::InvalidResponse { reason, .. }) => {
            assert!(reason.contains("not JSON"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_unreachable_server_names_its_url_and_what_to_check() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let e = call(HttpConfig { max_retries: 0, ..config(&url) }).0.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&format!("{url}/v1/messages")) && text.contains("ANTHROPIC_BASE_URL"),
        "{text}"
    );
}

#[test]
fn missing_settings_are_reported_before_any_request() {
    let server = MessagesServer::start(vec![]);
    let no_key = HttpConfig { api_key: None, ..config(&server.url()) };
    match call(no_key).0 {
        Err(ModelError::Config(m)) => assert!(m.contains("ANTHROPIC_API_KEY"), "{m}"),
        other => panic!("{other:?}"),
    }
    let token =
        HttpConfig { api_key: None, auth_token: Some("tok".into()), ..config(&server.url()) };
    server.push(Reply::Message(message(json!([text("ok")]), "end_turn")));
    call(token).0.unwrap();
    assert_eq!(server.requests()[0].header("authorization"), Some("Bearer tok"));
    assert!(!format!("{:?}", config("x")).contains("sk-test"), "Debug never shows the key");
}

#[test]
fn ctrl_c_abandons_a_pending_call() {
    let server = MessagesServer::start(vec![Reply::Stall(Duration::from_secs(30))]);
    let client = HttpClient::new(config(&server.url())).unwrap();
    let began = Instant::now();
    let interrupted = || began.elapsed() > Duration::from_millis(200);
    let mut ignore = |_: &str| {};
    let mut ctx = CallContext { on_text: &mut ignore, interrupted: &interrupted };
    assert_eq!(client.create(&request(), &mut ctx), Err(ModelError::Interrupted));
    assert!(began.elapsed() < Duration::from_secs(20));
}

#[test]
fn a_stream_cut_off_after_text_was_shown_is_not_retried() {
    let reply = message(json!([text("partial answer")]), "end_turn");
    let server =
        MessagesServer::start(vec![Reply::CutStream(reply.clone()), Reply::Message(reply)]);
    let (result, pieces) = call(HttpConfig { stream: true, ..config(&server.url()) });
    assert!(matches!(result, Err(ModelError::Connection { .. })), "{result:?}");
    assert_eq!(pieces.concat(), "partial answer", "shown once, not again by a retry");
    assert_eq!(server.requests().len(), 1);
}

/// A streamed reply made of these `(event, data)` pairs, sent as raw bytes.
fn raw_stream(events: &[(&str, String)]) -> Reply {
    let body: String = events.iter().map(|(e, d)| format!("event: {e}\ndata: {d}\n\n")).collect();
    Reply::Raw { status: 200, content_type: "text/event-stream".into(), body: body.into_bytes() }
}

fn stream_config(url: &str) -> HttpConfig {
    HttpConfig { stream: true, max_retries: 0, ..config(url) }
}

fn start_event() -> (&'static str, String) {
    let message = json!({"id": "m", "type": "message", "role": "assistant", "content": []});
    ("message_start", json!({"type": "message_start", "message": message}).to_string())
}

fn invalid_reason(result: Result<Response, ModelError>) -> String {
    match result {
        Err(ModelError::InvalidResponse { reason, .. }) => reason,
        other => panic!("expected an invalid response, got {other:?}"),
    }
}

#[test]
fn block_indexes_from_the_server_are_checked_not_trusted() {
    let block = |index: &str, block: Value| {
        let data =
            format!(r#"{{"type":"content_block_start","index":{index},"content_block":{block}}}"#);
        ("content_block_start", data)
    };
    let text_block = json!({"type": "text", "text": ""});
    let cases = [
        (block("1e15", text_block.clone()), "has no block index: 1000000000000000.0"),
        (block("1000000000000000", text_block.clone()), "started after only 0"),
        (block("3", text_block.clone()), "content block 3 started after only 0"),
        (block("0", json!("just a string")), "content block 0 is not an object"),
    ];
    for ((event, data), want) in cases {
        let server = MessagesServer::start(vec![raw_stream(&[start_event(), (event, data)])]);
        let reason = invalid_reason(call(stream_config(&server.url())).0);
        assert!(reason.contains(want), "{reason}");
    }
}

#[test]
fn a_16_mib_event_streams_and_an_oversized_one_is_refused() {
    let big = "x".repeat(16 << 20);
    let events = |piece: &str| {
        let delta = json!({"type": "content_block_delta", "index": 0,
                           "delta": {"type": "text_delta", "text": piece}});
        let block = json!({"type": "content_block_start", "index": 0,
                           "content_block": {"type": "text", "text": ""}});
        let stop = json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}});
        vec![
            start_event(),
            ("content_block_start", block.to_string()),
            ("content_block_delta", delta.to_string()),
            ("content_block_stop", json!({"type": "content_block_stop", "index": 0}).to_string()),
            ("message_delta", stop.to_string()),
            ("message_stop", json!({"type": "message_stop"}).to_string()),
        ]
    };
    let server = MessagesServer::start(vec![raw_stream(&events(&big))]);
    let (result, pieces) = call(stream_config(&server.url()));
    assert_eq!(result.unwrap().text().len(), 16 << 20);
    assert_eq!(pieces.concat().len(), 16 << 20);

    let huge = "x".repeat(65 << 20);
    let server = MessagesServer::start(vec![raw_stream(&events(&huge))]);
    let reason = invalid_reason(call(stream_config(&server.url())).0);
    assert_eq!(reason, "a server-sent event is larger than 64 MiB");
}

#[test]
fn a_huge_error_page_leaves_a_short_message_with_status_and_request_id() {
    let page = format!("<html><body>{}</body></html>", "<p>bad gateway</p>".repeat(300_000));
    let reply =
        Reply::Raw { status: 502, content_type: "text/html".into(), body: page.into_bytes() };
    let server = MessagesServer::start(vec![reply]);
    let (result, _) = call(HttpConfig { max_retries: 0, ..config(&server.url()) });
    match result {
        Err(ModelError::Status { status, message, request_id, .. }) => {
            assert_eq!(status, 502);
            assert!(message.starts_with("<html><body><p>bad gateway</p>"), "{message}");
            assert!(message.ends_with("... (cut; the body was longer)"), "{message}");
            assert!(message.len() < 5000, "{} bytes", message.len());
            assert!(request_id.is_some_and(|id| id.starts_with("req")));
        }
        other => panic!("expected a status error, got {other:?}"),
    }
}
