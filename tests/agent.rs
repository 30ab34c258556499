//! The agent loop over real HTTP, real tools and real background tasks.

mod common;

use _core::agent::{background_results, Loop, LoopConfig, LoopEvents, LoopPolicy};
use _core::llm::{HttpClient, HttpConfig, Model, ScriptedModel};
use _core::tools::BuiltinTools;
use _core::Error;
use common::messages_server::{message, text, tool_use, MessagesServer, Reply};
use common::Workspace;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Recorder {
    tools: Vec<(String, String)>,
    injected: Vec<String>,
}

impl LoopEvents for Recorder {
    fn tool(&mut self, name: &str, output: &str) {
        self.tools.push((name.to_string(), output.to_string()));
    }
    fn injected(&mut self, text: &str) {
        self.injected.push(text.to_string());
    }
}

/// Runs one loop in the workspace; `interrupt_after` simulates Ctrl-C.
fn run_loop(
    ws: &Workspace,
    model: &dyn Model,
    mirror: bool,
    messages: &mut Vec<Value>,
    interrupt_after: Option<Duration>,
) -> (Result<(), Error>, Recorder) {
    let config = LoopConfig {
        model: "test-model".into(),
        system: LoopConfig::lesson_system(&ws.root),
        max_tokens: 8000,
        policy: if mirror {
            LoopPolicy::lesson()
        } else {
            LoopPolicy::production(Duration::from_secs(30))
        },
    };
    let began = Instant::now();
    let interrupted = move || interrupt_after.is_some_and(|d| began.elapsed() > d);
    let mut tools =
        BuiltinTools { ctx: config.policy.tool_context(&ws.root, &ws.manager, &interrupted) };
    let mut events = Recorder::default();
    let result = Loop {
        config: &config,
        model,
        manager: &ws.manager,
        tools: &mut tools,
        events: &mut events,
        interrupted: &interrupted,
    }
    .run(messages);
    (result, events)
}

fn http(server: &MessagesServer) -> HttpClient {
    HttpClient::new(HttpConfig {
        base_url: server.url(),
        api_key: Some("k".into()),
        auth_token: None,
        timeout: Duration::from_secs(10),
        max_retries: 0,
        stream: true,
    })
    .unwrap()
}

fn msg(content: Value, stop: &str) -> Reply {
    Reply::Message(message(content, stop))
}

#[test]
fn a_background_result_is_injected_before_the_next_call() {
    let setup = Workspace::new();
    let server = MessagesServer::start(vec![
        msg(
            json!([tool_use("t1", "background_run", json!({"command": "echo built"}))]),
            "tool_use",
        ),
        msg(json!([tool_use("t2", "bash", json!({"command": "sleep 0.3"}))]), "tool_use"),
        msg(json!([text("done")]), "end_turn"),
    ]);
    let mut messages = vec![json!({"role": "user", "content": "build"})];
    let (result, events) = run_loop(&setup, &http(&server), true, &mut messages, None);
    result.unwrap();
    let id = setup.manager.tasks()[0].id.clone();
    let injected =
        format!("<background-results>\n[bg:{id}] completed: built\n</background-results>");
    assert_eq!(events.injected, vec![injected.clone()]);
    assert_eq!(messages[5], json!({"role": "user", "content": injected}));
    assert_eq!(messages.len(), 7);
    assert_eq!(
        events.tools[0],
        ("background_run".to_string(), format!("Background task {id} started: echo built"))
    );
    let third = &server.requests()[2].body;
    assert_eq!(third["messages"][5]["content"], injected.as_str());
    assert_eq!(third["tools"].as_array().unwrap().len(), 6);
}

#[test]
fn production_waits_for_running_tasks_at_end_turn() {
    let setup = Workspace::new();
    let server = MessagesServer::start(vec![
        msg(
            json!([tool_use(
                "t1",
                "background_run",
                json!({"command": "sleep 0.4; echo late; exit 2"})
            )]),
            "tool_use",
        ),
        msg(json!([text("waiting on it")]), "end_turn"),
        msg(json!([text("it printed late")]), "end_turn"),
    ]);
    let mut messages = vec![json!({"role": "user", "content": "go"})];
    run_loop(&setup, &http(&server), false, &mut messages, None).0.unwrap();
    let id = setup.manager.tasks()[0].id.clone();
    assert_eq!(
        messages[4]["content"],
        format!("<background-results>\n[bg:{id}] completed (exit 2): late\n</background-results>")
    );
    assert_eq!(messages.len(), 6);
    assert_eq!(server.requests()[0].body["tools"].as_array().unwrap().len(), 8);
}

#[test]
fn ctrl_c_during_tools_answers_every_tool_use() {
    let setup = Workspace::new();
    let server = MessagesServer::start(vec![msg(
        json!([
            tool_use("t1", "bash", json!({"command": "sleep 30"})),
            tool_use("t2", "write_file", json!({"path": "never.txt", "content": "x"}))
        ]),
        "tool_use",
    )]);
    let mut messages = vec![json!({"role": "user", "content": "go"})];
    let began = Instant::now();
    let (result, _) =
        run_loop(&setup, &http(&server), false, &mut messages, Some(Duration::from_millis(300)));
    assert!(matches!(result, Err(Error::Interrupted)));
    assert!(began.elapsed() < Duration::from_secs(20));
    let answered: Vec<&str> = messages[2]["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tool_use_id"].as_str().unwrap())
        .collect();
    assert_eq!(answered, ["t1", "t2"]);
    assert!(!setup.root.join("never.txt").exists(), "no tool runs after Ctrl-C");
}

#[test]
fn a_model_error_leaves_the_conversation_as_it_was() {
    let setup = Workspace::new();
    let server = MessagesServer::start(vec![common::messages_server::error(400, "nope")]);
    let mut messages = vec![json!({"role": "user", "content": "go"})];
    let (result, _) = run_loop(&setup, &http(&server), false, &mut messages, None);
    assert!(matches!(result, Err(Error::Model(_))));
    assert_eq!(messages, vec![json!({"role": "user", "content": "go"})]);
}

#[test]
fn a_scripted_model_from_a_file_drives_the_loop() {
    let setup = Workspace::new();
    let script = setup.root.join("script.json");
    std::fs::write(
        &script,
        json!([
            {"content": [{"type": "tool_use", "id": "a", "name": "write_file",
                          "input": {"path": "hello.txt", "content": "hi"}}], "stop_reason": "tool_use"},
            {"content": [{"type": "text", "text": "wrote it"}], "stop_reason": "end_turn"}
        ])
        .to_string(),
    )
    .unwrap();
    let model = ScriptedModel::from_file(&script).unwrap();
    let mut messages = vec![json!({"role": "user", "content": "write"})];
    run_loop(&setup, &model, true, &mut messages, None).0.unwrap();
    assert_eq!(std::fs::read_to_string(setup.root.join("hello.txt")).unwrap(), "hi");
    assert_eq!(messages[2]["content"][0]["content"], "Wrote 2 bytes");
    assert_eq!(model.requests().len(), 2);
    assert_eq!(messages.len(), 4);
}

#[test]
fn result_lines_show_exit_codes_only_in_production() {
    let note = |code| _core::Notification {
        task_id: "abc".into(),
        status: _core::Status::Completed,
        command: "x".into(),
        result: "out".into(),
        exit_code: code,
    };
    let notes = [note(Some(1)), note(Some(0)), note(None)];
    assert_eq!(
        background_results(&notes, true),
        "<background-results>\n[bg:abc] completed (exit 1): out\n[bg:abc] completed: out\n[bg:abc] completed: out\n</background-results>"
    );
    assert!(!background_results(&notes, false).contains("exit"));
}

#[test]
fn tool_calls_cut_off_by_max_tokens_get_results_in_production() {
    let setup = Workspace::new();
    let server = MessagesServer::start(vec![
        msg(
            json!([text("Let me"), tool_use("t1", "bash", json!({"command": "echo x"}))]),
            "max_tokens",
        ),
        msg(json!([text("fine")]), "end_turn"),
    ]);
    let mut messages = vec![json!({"role": "user", "content": "go"})];
    run_loop(&setup, &http(&server), false, &mut messages, None).0.unwrap();
    assert_eq!(messages.len(), 3, "the turn ends, with every tool_use answered");
    assert_eq!(messages[2]["content"][0]["tool_use_id"], "t1");
    assert!(messages[2]["content"][0]["content"]
        .as_str()
        .unwrap()
        .contains("cut off (stop_reason max_tokens)"));
    messages.push(json!({"role": "user", "content": "again"}));
    run_loop(&setup, &http(&server), false, &mut messages, None).0.unwrap();
    assert_eq!(server.requests()[1].body["messages"][2]["content"][0]["type"], "tool_result");
}
