//! The agent loop over real HTTP, real tools and real background tasks.

mod common;

use bgagent::agent::{background_results, LoopConfig, LoopEvents, LoopPolicy};
use bgagent::llm::{HttpClient, HttpConfig, Model, ScriptedModel};
use bgagent::session::{SessionConfig, Turn};
use bgagent::trace::Tracer;
use bgagent::Error;
use common::messages_server::{message, text, tool_use, Gate, MessagesServer, Reply};
use common::Workspace;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

#[derive(Default)]
struct Recorder {
    tools: Vec<(String, String)>,
    injected: Vec<String>,
}

impl LoopEvents for Recorder {
    fn tool(&mut self, _id: &str, name: &str, output: &str) {
        self.tools.push((name.to_string(), output.to_string()));
    }
    fn injected(&mut self, text: &str) {
        self.injected.push(text.to_string());
    }
}

/// Runs one loop in the workspace, through the session every face uses; `ctrl_c` says when
/// Ctrl-C is pressed.
fn run_loop(
    ws: &Workspace,
    model: &dyn Model,
    mirror: bool,
    messages: &mut Vec<Value>,
    ctrl_c: Option<&(dyn Fn() -> bool + Sync)>,
) -> (Result<(), Error>, Recorder) {
    let config = SessionConfig::new(&ws.root)
        .model("test-model")
        .mirror(mirror)
        .max_wait(Duration::from_secs(30));
    let interrupted = move || ctrl_c.is_some_and(|pressed| pressed());
    let mut events = Recorder::default();
    let result = config.session(model, &ws.manager, None).turn(Turn {
        messages,
        user: None,
        events: &mut events,
        interrupted: &interrupted,
        drain: None,
    });
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

/// A reply held until the manager has finished a task (its notification is queued by then).
fn after_a_task_ends(ws: &Workspace, reply: Reply) -> Reply {
    let events = ws.manager.subscribe();
    let finished =
        move || std::iter::from_fn(|| events.try_recv()).any(|e| e.kind.name() == "finished");
    Reply::After(Gate(Arc::new(finished)), Box::new(reply))
}

#[test]
fn a_background_result_is_injected_before_the_next_call() {
    let setup = Workspace::new();
    let server = MessagesServer::start(vec![
        msg(
            json!([tool_use("t1", "background_run", json!({"command": "echo built"}))]),
            "tool_use",
        ),
        after_a_task_ends(
            &setup,
            msg(json!([tool_use("t2", "bash", json!({"command": "true"}))]), "tool_use"),
        ),
        msg(json!([text("done")]), "end_turn"),
    ]);
    let mut messages = vec![json!({"role": "user", "content": "build"})];
    let (result, events) = run_loop(&setup, &http(&server), true, &mut messages, None);
    result.unwrap();
    let id = setup.manager.snapshot(bgagent::background::Records::All).tasks[0].id.clone();
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
    // The task ends only once the model has ended its turn, so only the wait can catch it.
    let go = setup.root.join("go");
    let end_turn = msg(json!([text("waiting on it")]), "end_turn");
    let release = move || std::fs::write(&go, "").is_ok();
    let server = MessagesServer::start(vec![
        msg(
            json!([tool_use(
                "t1",
                "background_run",
                json!({"command": "while [ ! -e go ]; do sleep 0.01; done; echo late; exit 2"})
            )]),
            "tool_use",
        ),
        Reply::After(Gate(Arc::new(release)), Box::new(end_turn)),
        msg(json!([text("it printed late")]), "end_turn"),
    ]);
    let mut messages = vec![json!({"role": "user", "content": "go"})];
    run_loop(&setup, &http(&server), false, &mut messages, None).0.unwrap();
    let id = setup.manager.snapshot(bgagent::background::Records::All).tasks[0].id.clone();
    // Production's line: exit code and duration (no log file: the output stayed in memory).
    let injected = messages[4]["content"].as_str().unwrap();
    let (head, rest) = injected.split_once("s): ").unwrap();
    assert!(head.starts_with(&format!("<background-results>\n[bg:{id}] completed (exit 2, ")));
    assert_eq!(rest, "late\n</background-results>");
    assert_eq!(messages.len(), 6);
    assert_eq!(server.requests()[0].body["tools"].as_array().unwrap().len(), 10);
}

#[test]
fn ctrl_c_during_tools_answers_every_tool_use() {
    let setup = Workspace::new();
    let mark = common::marker();
    let server = MessagesServer::start(vec![msg(
        json!([
            tool_use("t1", "bash", json!({"command": format!("sh -c 'sleep 600; :' {mark}; :")})),
            tool_use("t2", "write_file", json!({"path": "never.txt", "content": "x"}))
        ]),
        "tool_use",
    )]);
    let mut messages = vec![json!({"role": "user", "content": "go"})];
    // Ctrl-C once the bash command runs, however long the model call took.
    let pressed = || !common::processes_with(&mark).is_empty();
    let (result, _) = run_loop(&setup, &http(&server), false, &mut messages, Some(&pressed));
    assert!(matches!(result, Err(Error::Interrupted)));
    assert_eq!(common::processes_with(&mark), Vec::<String>::new(), "bash's command is stopped");
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
    let note = |code| bgagent::Notification {
        task_id: "abc".into(),
        status: bgagent::Status::Completed,
        command: "x".into(),
        result: "out".into(),
        exit_code: code,
        details: Default::default(),
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

#[test]
fn empty_replies_are_not_kept_and_a_tool_use_stop_without_calls_ends_the_turn() {
    // The test server refuses what the API refuses (empty content, unanswered tool calls), so
    // a second turn fails if the first left the conversation invalid.
    for mirror in [true, false] {
        let ws = Workspace::new();
        let server = MessagesServer::start(vec![
            msg(json!([]), "end_turn"),
            msg(json!([text("no calls after all")]), "tool_use"),
            msg(json!([text("still fine")]), "end_turn"),
        ]);
        let model = http(&server);
        let mut messages = vec![json!({"role": "user", "content": "one"})];
        run_loop(&ws, &model, mirror, &mut messages, None).0.unwrap();
        assert_eq!(messages.len(), 1, "the empty reply is not kept (mirror {mirror})");
        messages.push(json!({"role": "user", "content": "two"}));
        run_loop(&ws, &model, mirror, &mut messages, None).0.unwrap();
        assert_eq!(messages.last().unwrap()["content"][0]["text"], "no calls after all");
        messages.push(json!({"role": "user", "content": "three"}));
        run_loop(&ws, &model, mirror, &mut messages, None).0.unwrap();
        assert_eq!(messages.last().unwrap()["content"][0]["text"], "still fine");
        assert_eq!(server.requests().len(), 3);
    }
}

/// Blocks the loop has no use for, as the API sends them with extended thinking and its web
/// search tool: the text the loop reads cites a search result.
fn blocks_passed_through() -> Vec<Value> {
    vec![
        json!({"type": "thinking", "thinking": "The user wants «files» \"listed\"\\ — 🦓\n",
               "signature": "EqQBCkYIBxgCKkD+/w=="}),
        json!({"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a=="}),
        json!({"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search",
               "input": {"query": "zebra 🦓", "max_uses": 2}}),
        json!({"type": "web_search_tool_result", "tool_use_id": "srvtoolu_01",
               "content": [{"type": "web_search_result", "url": "https://example.com/z",
                            "title": "Z", "encrypted_content": "Eq8=", "page_age": null}]}),
        json!({"type": "text", "text": "Zebras, as found.",
               "citations": [{"type": "web_search_result_location", "url": "https://example.com/z",
                              "title": "Z", "encrypted_index": "Eo8=", "cited_text": "stripes"}]}),
    ]
}

#[test]
fn blocks_the_loop_does_not_read_go_back_to_the_model_as_they_came() {
    for stream in [false, true] {
        let setup = Workspace::new();
        let mut content = blocks_passed_through();
        content.push(tool_use("t1", "check_background", json!({})));
        let content = Value::Array(content);
        let server = MessagesServer::start(vec![
            msg(content.clone(), "tool_use"),
            msg(json!([text("done")]), "end_turn"),
        ]);
        let client = HttpClient::new(HttpConfig {
            base_url: server.url(),
            api_key: Some("k".into()),
            auth_token: None,
            timeout: Duration::from_secs(10),
            max_retries: 0,
            stream,
        })
        .unwrap();
        let mut messages = vec![json!({"role": "user", "content": "go"})];
        run_loop(&setup, &client, false, &mut messages, None).0.unwrap();
        // Compared as text: the same keys in the same order, the same escapes.
        assert_eq!(messages[1]["content"].to_string(), content.to_string(), "stream: {stream}");
        let sent = &server.requests()[1].body["messages"];
        assert_eq!(sent[1]["content"].to_string(), content.to_string(), "stream: {stream}");
        assert_eq!(sent[2]["content"][0]["tool_use_id"], "t1");
    }
}

#[test]
fn a_session_config_sets_up_each_face_the_same_way() {
    let lesson = SessionConfig::new("/w").mirror(true).pass_api_key(false);
    assert_eq!(lesson.policy(), LoopPolicy::lesson());
    assert!(!lesson.hide_secrets());
    let production = SessionConfig::new("/w").max_wait(Duration::from_secs(7));
    assert_eq!(production.policy(), LoopPolicy::production(Duration::from_secs(7)));
    let passed = SessionConfig::new("/w").pass_api_key(true);
    assert!(!passed.policy().hide_secrets && !passed.manager_options().hide_secrets);
    let config = SessionConfig::new("/w").model("m").loop_config();
    assert_eq!(config.system, LoopConfig::lesson_system(std::path::Path::new("/w")));
    assert_eq!((config.model.as_str(), config.max_tokens), ("m", bgagent::defaults::MAX_TOKENS));
    assert_eq!(SessionConfig::new("/w").system("S").loop_config().system, "S");
    let options = SessionConfig::new("/w").task_timeout(Duration::from_secs(9)).manager_options();
    assert_eq!(options.timeout, Duration::from_secs(9));
    assert_eq!(options.workdir.as_deref(), Some(std::path::Path::new("/w")));
}

#[test]
fn a_traced_session_records_the_turn() {
    let ws = Workspace::new();
    let model = ScriptedModel::new(vec![serde_json::from_value(
        json!({"content": [{"type": "text", "text": "hello"}], "stop_reason": "end_turn"}),
    )
    .unwrap()]);
    let config = SessionConfig::new(&ws.root).model("test-model").mirror(true);
    let tracer = Tracer::in_memory(&config.run_info());
    let mut messages = vec![json!({"role": "user", "content": "hi"})];
    let mut events = Recorder::default();
    let never = || false;
    config
        .session(&model, &ws.manager, Some(&tracer))
        .turn(Turn {
            messages: &mut messages,
            user: Some("hi"),
            events: &mut events,
            interrupted: &never,
            drain: None,
        })
        .unwrap();
    let lines: Vec<Value> =
        tracer.lines().iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["mode"], "mirror");
    let named = |event: &str| lines.iter().find(|l| l["event"] == event).cloned();
    assert_eq!(named("user_input").unwrap()["text"], "hi");
    assert_eq!(named("turn_end").unwrap()["outcome"], "done");
    assert_eq!(messages.len(), 2);
}

#[test]
fn production_reads_a_task_while_it_runs_and_reports_its_end() {
    use bgagent::background::StartAt;
    let setup = Workspace::new();
    // A task of known id (ids are drawn at random): a line, then the rest once released.
    let command = "printf 'first\\n'; while [ ! -e go ]; do sleep 0.01; done; seq 1 3000; exit 1";
    let at = StartAt { id: Some("job1"), ..StartAt::default() };
    setup.manager.start_with(command, at).unwrap();
    let first = setup.manager.read("job1", 0, 100, Duration::from_secs(60)).unwrap();
    assert_eq!(first.text, "first\n");
    let server = MessagesServer::start(vec![
        msg(json!([tool_use("t1", "check_background", json!({"task_id": "job1"}))]), "tool_use"),
        msg(json!([tool_use("t2", "read_background", json!({"task_id": "job1"}))]), "tool_use"),
        msg(json!([tool_use("t3", "bash", json!({"command": "touch go"}))]), "tool_use"),
        after_a_task_ends(
            &setup,
            msg(
                json!([tool_use("t4", "read_background", json!({"task_id": "job1", "after": 6}))]),
                "tool_use",
            ),
        ),
        msg(
            json!([tool_use(
                "t5",
                "bash",
                json!({"command": "echo in the back", "run_in_background": true})
            )]),
            "tool_use",
        ),
        msg(json!([text("started")]), "end_turn"),
        msg(json!([text("done")]), "end_turn"),
    ]);
    let mut messages = vec![json!({"role": "user", "content": "watch it"})];
    let (result, events) = run_loop(&setup, &http(&server), false, &mut messages, None);
    result.unwrap();
    let tools = &events.tools;
    assert_eq!(tools[0].1, format!("[running] {}\nfirst", &command[..60]));
    assert_eq!(tools[1].1, "first\n[next offset: 6; the task still runs]");
    let seq: String = (1..=3000).map(|n| format!("{n}\n")).collect();
    let end = 6 + seq.len();
    let want = format!("{seq}[next offset: {end}; the task has ended: completed (exit 1)]");
    assert_eq!(tools[3].1, want);
    let (line, rest) = tools[4].1.split_once('\n').unwrap();
    assert!(line.starts_with("Background task ") && line.ends_with(" started: echo in the back"));
    let id = &line["Background task ".len()..line.len() - " started: echo in the back".len()];
    let log = setup.manager.log_dir().unwrap().join(format!("{id}.log"));
    assert!(rest.starts_with(&format!("Log file: {}\n", log.display())), "{rest}");
    // job1's report: exit code, duration, log file, the head and the tail.
    let report = events.injected.iter().find(|t| t.contains("[bg:job1]")).unwrap();
    let job1_log = setup.manager.log_dir().unwrap().join("job1.log");
    assert!(report.contains("[bg:job1] completed (exit 1, "), "{report}");
    assert!(report.contains(&format!(", log {}): first\n1\n2\n", job1_log.display())), "{report}");
    assert!(report.ends_with("2999\n3000\n</background-results>"), "{report}");
    // The task started through bash: reported at the end of the turn.
    assert!(events.injected.iter().any(|t| t.contains(&format!("[bg:{id}] completed (exit 0, "))));
}
