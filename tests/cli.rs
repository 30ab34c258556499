//! The `bgagent` binary, run as a user runs it, against a local Messages API server.

mod common;

use common::messages_server::{error, message, text, tool_use, MessagesServer, Reply};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("bgagent-cli-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Dir(std::fs::canonicalize(dir).unwrap())
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary in `dir`, with a clean environment pointing at `url`.
fn bgagent(dir: &Dir, url: Option<&str>) -> Command {
    in_clean_env(Command::new(env!("CARGO_BIN_EXE_bgagent")), dir, url)
}

/// Proxy settings the test's own environment might carry: the servers here are local, and a
/// test that wants a proxy names it.
const PROXY_VARS: [&str; 8] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// `cmd` in `dir`, with no Anthropic or proxy settings but the server at `url`.
fn in_clean_env(mut cmd: Command, dir: &Dir, url: Option<&str>) -> Command {
    cmd.current_dir(&dir.0)
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .env_remove("ANTHROPIC_BASE_URL")
        .env_remove("MODEL_ID")
        .env("NO_COLOR", "1");
    for name in PROXY_VARS {
        cmd.env_remove(name);
    }
    if let Some(url) = url {
        cmd.env("ANTHROPIC_BASE_URL", url)
            .env("ANTHROPIC_API_KEY", "k")
            .env("MODEL_ID", "test-model");
    }
    cmd
}

/// `bgagent -p go` against `server`, its stderr captured.
fn one_shot(dir: &Dir, server: &MessagesServer) -> Child {
    let mut cmd = bgagent(dir, Some(&server.url()));
    cmd.args(["-p", "go"]).stderr(Stdio::piped()).spawn().unwrap()
}

/// Starts `cmd` with `stdin` as its whole input (then closed), capturing its output.
fn spawn_with_stdin(mut cmd: Command, stdin: &str) -> Child {
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child
}

fn run_with_stdin(cmd: Command, stdin: &str) -> Output {
    spawn_with_stdin(cmd, stdin).wait_with_output().unwrap()
}

/// Polls `done` until it holds. After 30 s (a bound for failures only) kills `child` and fails,
/// naming `what` was awaited.
fn wait_until(child: &mut Child, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("gave up after 30 s waiting until {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `cmd`'s output, stdin closed. After 30 s (a bound for failures only, such as a read that
/// blocks forever) kills it and fails, naming `what` ran.
fn output_or_fail(mut cmd: Command, what: &str) -> Output {
    let mut child =
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not end within 30 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn msg(content: Value, stop: &str) -> Reply {
    Reply::Message(message(content, stop))
}

#[test]
fn help_and_version() {
    let dir = Dir::new();
    let help = bgagent(&dir, None).arg("--help").output().unwrap();
    assert!(help.status.success());
    for flag in [
        "--model",
        "--base-url",
        "--workdir",
        "--mirror",
        "--prompt",
        "--script",
        "--trace",
        "--demo",
    ] {
        assert!(out(&help).contains(flag), "{flag} in help");
    }
    let version = bgagent(&dir, None).arg("--version").output().unwrap();
    assert_eq!(out(&version).trim(), format!("bgagent {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn missing_model_or_key_is_one_line_and_exit_2() {
    let dir = Dir::new();
    let no_model =
        bgagent(&dir, None).args(["-p", "hi"]).env("ANTHROPIC_API_KEY", "k").output().unwrap();
    assert_eq!(no_model.status.code(), Some(2));
    assert_eq!(err(&no_model), "bgagent: no model name: set MODEL_ID or pass --model NAME\n");
    let no_key = bgagent(&dir, None).args(["-p", "hi", "--model", "m"]).output().unwrap();
    assert_eq!(no_key.status.code(), Some(2));
    assert_eq!(
        err(&no_key),
        "bgagent: no API key: set ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN)\n"
    );
    let bad_flag = bgagent(&dir, None).arg("--frobnicate").output().unwrap();
    assert_eq!(bad_flag.status.code(), Some(2));
}

#[test]
fn one_shot_prints_the_final_answer_and_runs_tools() {
    let dir = Dir::new();
    let server = MessagesServer::start(vec![
        msg(
            json!([tool_use("t1", "write_file", json!({"path": "hi.txt", "content": "hello"}))]),
            "tool_use",
        ),
        msg(json!([text("Wrote hi.txt.")]), "end_turn"),
    ]);
    let o = bgagent(&dir, Some(&server.url())).args(["-p", "write hi.txt"]).output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "Wrote hi.txt.\n");
    assert!(err(&o).contains("> write_file:\nWrote 5 bytes\n"), "{}", err(&o));
    assert_eq!(std::fs::read_to_string(dir.0.join("hi.txt")).unwrap(), "hello");
    let first = &server.requests()[0].body;
    assert_eq!(first["stream"], true);
    assert_eq!(first["messages"][0]["content"], "write hi.txt");
    assert_eq!(
        first["system"],
        format!(
            "You are a coding agent at {}. Use background_run for long-running commands.",
            dir.0.display()
        )
    );
}

#[test]
fn one_shot_reads_the_prompt_from_stdin() {
    let dir = Dir::new();
    let server = MessagesServer::start(vec![msg(json!([text("ok")]), "end_turn")]);
    let mut cmd = bgagent(&dir, Some(&server.url()));
    cmd.args(["-p", "-"]);
    let o = run_with_stdin(cmd, "from stdin\n");
    assert_eq!(out(&o), "ok\n");
    assert_eq!(server.requests()[0].body["messages"][0]["content"], "from stdin\n");
}

#[test]
fn api_errors_and_dead_servers_exit_1_with_the_reason() {
    let dir = Dir::new();
    let server = MessagesServer::start(vec![error(401, "invalid x-api-key")]);
    let o = bgagent(&dir, Some(&server.url())).args(["-p", "hi"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).starts_with("bgagent: 401 authentication_error: invalid x-api-key"),
        "{}",
        err(&o)
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let o = bgagent(&dir, Some(&url)).args(["-p", "hi"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains(&format!("cannot reach the model server at {url}/v1/messages")),
        "{}",
        err(&o)
    );
    assert_eq!(err(&o).lines().count(), 1, "one line, no stack trace");
}

#[test]
fn repl_over_piped_stdin() {
    let dir = Dir::new();
    // The task ends only once the second model call is under way (so it is still running when
    // that turn ends, and the REPL waits for it).
    let command = "until [ -e release ]; do sleep 0.01; done; echo bg-out";
    let server = MessagesServer::start(vec![
        msg(
            json!([
                text("Starting."),
                tool_use("t1", "background_run", json!({"command": command}))
            ]),
            "tool_use",
        ),
        msg(json!([text("Started it.")]), "end_turn"),
        msg(json!([text("It printed bg-out.")]), "end_turn"),
        error(500, "server trouble"),
        error(500, "server trouble"),
        error(500, "server trouble"),
        msg(json!([text("Back again.")]), "end_turn"),
    ]);
    let mut child = spawn_with_stdin(
        bgagent(&dir, Some(&server.url())),
        "start it\n/tasks\nfail please\nhello again\n/help\n/clear\nq\n",
    );
    wait_until(&mut child, "the second model call", || server.requests().len() >= 2);
    std::fs::write(dir.0.join("release"), "").unwrap();
    let o = child.wait_with_output().unwrap();
    let stdout = out(&o);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        stdout.starts_with("s08 >> Starting.\n> background_run:\nBackground task "),
        "{stdout}"
    );
    assert!(stdout.contains("<background-results>\n[bg:"), "{stdout}");
    assert!(stdout.contains("It printed bg-out.\n"), "{stdout}");
    assert!(stdout.contains(&format!(": [completed] {command}  (exit 0, ")), "/tasks: {stdout}");
    assert!(err(&o).contains("bgagent: 500 api_error: server trouble"), "{}", err(&o));
    assert!(stdout.contains("Back again.\n"), "the REPL goes on after an API error: {stdout}");
    assert!(stdout.contains("/kill ID") && stdout.contains("(new conversation)"), "{stdout}");
    assert_eq!(stdout.matches("s08 >> ").count(), 7);
}

#[test]
fn demo_runs_end_to_end_offline() {
    let dir = Dir::new();
    let o = bgagent(&dir, None).arg("--demo").output().unwrap();
    let stdout = out(&o);
    assert!(o.status.success(), "{}", err(&o));
    // Each line says when (+seconds since the start) and who: you, the model, a tool, the loop.
    let said = |who: &str, text: &str| {
        stdout.lines().any(|l| {
            let rest = l.strip_prefix('+').and_then(|r| r.split_once("s  "));
            rest.is_some_and(|(secs, line)| {
                secs.trim().parse::<f64>().is_ok() && line.starts_with(who) && line.contains(text)
            })
        })
    };
    assert!(said("you", "Run \"sleep 5 && echo done\" in the background"), "{stdout}");
    assert!(said("you", "Start 3 background tasks"), "{stdout}");
    assert!(said("you", "Run pytest in the background"), "{stdout}");
    assert!(said("tool", "background_run returned:"), "{stdout}");
    assert!(said("loop", "waiting for 3 background tasks (max 5m)"), "{stdout}");
    assert_eq!(stdout.matches("the loop injects into the conversation:").count(), 5, "{stdout}");
    assert_eq!(stdout.matches("Background update: [bg:").count(), 5, "{stdout}");
    // Production's report: status, exit code and duration, then the output.
    let reported = |output: &str| {
        stdout.lines().any(|l| {
            l.contains("] completed (exit 0, ") && l.trim_end().ends_with(&format!("s): {output}"))
        })
    };
    assert!(reported("done") && reported("3 passed in 2.01s"), "{stdout}");
    assert!(stdout.contains("Background tasks at the end:\n"), "{stdout}");
    let workspace = stdout.lines().next().unwrap().rsplit(' ').next().unwrap().to_string();
    assert!(!std::path::Path::new(&workspace).exists(), "the demo workspace is removed");
}

#[test]
fn the_mirror_demo_ends_with_the_lessons_gap_in_plain_words() {
    let dir = Dir::new();
    let o = bgagent(&dir, None).args(["--demo", "--mirror"]).output().unwrap();
    let stdout = out(&o);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(stdout.matches("the loop injects").count(), 0, "{stdout}");
    assert!(stdout.contains("5 results are still in the queue."), "{stdout}");
    assert!(stdout.contains("only with your next message"), "{stdout}");
    assert!(stdout.contains("Production mode (bgagent --demo, without --mirror)"), "{stdout}");
    assert_eq!(stdout.matches(": [completed] ").count(), 5, "{stdout}");
}

#[test]
fn trace_records_every_kind_of_event() {
    let dir = Dir::new();
    let server = MessagesServer::start(vec![
        msg(json!([tool_use("t1", "background_run", json!({"command": "sleep 0.2"}))]), "tool_use"),
        msg(json!([text("waiting")]), "end_turn"),
        msg(json!([text("done")]), "end_turn"),
    ]);
    let trace = dir.0.join("trace.jsonl");
    let o = bgagent(&dir, Some(&server.url()))
        .args(["-p", "go", "--trace"])
        .arg(&trace)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let events: Vec<Value> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds[0], "header");
    let header = &events[0];
    assert_eq!(
        (header["schema"].as_str(), header["version"].as_u64()),
        (Some("bgagent-trace"), Some(2))
    );
    assert_eq!(
        (header["mode"].as_str(), header["model"].as_str()),
        (Some("production"), Some("test-model"))
    );
    for kind in [
        "user_input",
        "model_call",
        "model_reply",
        "tool_call",
        "tool_result",
        "task_queued",
        "task_started",
        "task_finished",
        "wait_start",
        "wait_end",
        "drain",
        "inject",
        "task_drained",
        "turn_end",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let times: Vec<f64> = events.iter().map(|e| e["t"].as_f64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "t never decreases: {times:?}");
    // The joins: tool call -> task -> drain -> the model call that saw it.
    let find = |kind: &str| events.iter().find(|e| e["event"] == kind).unwrap();
    let task = find("tool_result")["task_id"].as_str().unwrap();
    assert_eq!(find("task_queued")["task_id"], task);
    assert_eq!(find("task_finished")["status"], "completed");
    assert_eq!(find("inject")["task_ids"], json!([task]));
    let seen_by = find("inject")["call"].as_u64().unwrap();
    assert_eq!(seen_by, 3, "the end-of-turn wait injects before the third call");
    assert!(events.iter().any(|e| e["event"] == "model_call" && e["call"] == seen_by));
    assert_eq!(find("wait_end")["why"], "results");
    assert_eq!(find("model_reply")["text"], "");
    assert_eq!(find("turn_end")["outcome"], "done");
}

/// Version 2 names the tasks of a tool's answer: the task background_run started, the task a
/// call's input names, and the tasks check_background showed as ended; the picture marks a
/// result the model saw that way and then again when it was injected.
#[test]
fn a_traced_check_names_the_ended_tasks_it_showed_and_the_page_marks_them_seen_twice() {
    let dir = Dir::new();
    // The bash call returns once the task's end is in the trace, so the check after it shows
    // the task ended, as a reader of the lines before the check knows it.
    let until_finished = "until grep -q '\"task_finished\"' trace.jsonl; do sleep 0.02; done";
    let script = json!([
        {"content": [
            tool_use("t1", "background_run", json!({"command": "echo one"})),
            tool_use("t2", "bash", json!({"command": until_finished})),
            tool_use("t3", "check_background", json!({})),
            tool_use("t4", "check_background", json!({"task_id": "nosuch"})),
        ], "stop_reason": "tool_use"},
        {"content": [text("seen")], "stop_reason": "end_turn"},
    ]);
    std::fs::write(dir.0.join("script.json"), script.to_string()).unwrap();
    let o = bgagent(&dir, None)
        .args(["-p", "go", "--script", "script.json", "--trace", "trace.jsonl"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let events: Vec<Value> = std::fs::read_to_string(dir.0.join("trace.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_id = |kind: &str, id: &str| {
        let found = events.iter().find(|e| e["event"] == kind && e["tool_use_id"] == id);
        found.unwrap_or_else(|| panic!("{kind} {id} in {events:?}"))
    };
    let task = by_id("tool_result", "t1")["task_id"].as_str().unwrap().to_string();
    assert!(events.iter().any(|e| e["event"] == "task_queued" && e["task_id"] == task));
    assert_eq!(by_id("tool_result", "t3")["ended_tasks"], json!([task]));
    assert_eq!(by_id("tool_call", "t4")["task_id"], "nosuch");
    assert!(by_id("tool_result", "t4").get("ended_tasks").is_none(), "not a listing");
    assert!(by_id("tool_call", "t3").get("task_id").is_none(), "names no task");
    let o = bgagent(&dir, None).args(["view", "trace.jsonl", "-o", "page.html"]).output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let page = std::fs::read_to_string(dir.0.join("page.html")).unwrap();
    let lane = &page[page.find(&format!("data-task-id='{task}'")).unwrap()..];
    let lane = &lane[..lane.find("</g>").unwrap()];
    assert!(lane.contains("→ call 2 · seen twice: by check_background, then injected"), "{lane}");
}

#[test]
fn a_script_file_replaces_the_server() {
    let dir = Dir::new();
    let script = dir.0.join("script.json");
    std::fs::write(
        &script,
        json!([{"content": [{"type": "text", "text": "scripted hi"}], "stop_reason": "end_turn"}])
            .to_string(),
    )
    .unwrap();
    let o = bgagent(&dir, None).args(["-p", "hi", "--script"]).arg(&script).output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "scripted hi\n");
}

#[test]
fn a_closed_output_pipe_ends_quietly() {
    let dir = Dir::new();
    let server =
        MessagesServer::start(vec![msg(json!([text(&"many lines\n".repeat(20000))]), "end_turn")]);
    let mut child = bgagent(&dir, Some(&server.url()))
        .args(["-p", "hi"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // like `| head -1` exiting at once
    let o = child.wait_with_output().unwrap();
    assert!(err(&o).is_empty(), "no panic, no message: {}", err(&o));
}

#[test]
fn ctrl_c_in_one_shot_stops_tools_and_exits_130() {
    let dir = Dir::new();
    let mark = common::marker();
    let server = MessagesServer::start(vec![msg(
        json!([tool_use(
            "t1",
            "bash",
            json!({"command": format!("sh -c 'sleep 600; :' {mark}; :")})
        )]),
        "tool_use",
    )]);
    let mut child = one_shot(&dir, &server);
    wait_until(&mut child, "the bash tool's command runs", || {
        !common::processes_with(&mark).is_empty()
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130));
    assert_eq!(common::processes_with(&mark), Vec::<String>::new());
}

#[test]
fn sigterm_and_sighup_kill_every_task_and_exit_143_and_129() {
    use nix::sys::signal::Signal::{SIGHUP, SIGTERM};
    for (signal, code) in [(SIGTERM, 143), (SIGHUP, 129)] {
        let dir = Dir::new();
        let mark = common::marker();
        let (bg, fg) = (format!("{mark}bg"), format!("{mark}fg"));
        let server = MessagesServer::start(vec![msg(
            json!([
                tool_use(
                    "t1",
                    "background_run",
                    json!({"command": format!("sh -c 'sleep 600; :' {bg}")})
                ),
                tool_use("t2", "bash", json!({"command": format!("sh -c 'sleep 600; :' {fg}; :")}))
            ]),
            "tool_use",
        )]);
        let mut child = one_shot(&dir, &server);
        wait_until(&mut child, "the background and the bash command run", || {
            !common::processes_with(&bg).is_empty() && !common::processes_with(&fg).is_empty()
        });
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, signal).unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(code), "{signal}: {}", err(&o));
        assert_eq!(common::processes_with(&mark), Vec::<String>::new(), "{signal}");
    }
}

#[test]
fn sigterm_at_the_repl_prompt_kills_the_tasks() {
    let dir = Dir::new();
    let mark = common::marker();
    let server = MessagesServer::start(vec![
        msg(
            json!([tool_use(
                "t1",
                "background_run",
                json!({"command": format!("sh -c 'sleep 600; :' {mark}")})
            )]),
            "tool_use",
        ),
        msg(json!([text("started")]), "end_turn"),
    ]);
    let mut cmd = bgagent(&dir, Some(&server.url()));
    // Production mode would wait for the task at the end of the turn; the lesson's loop does not.
    cmd.arg("--mirror").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"start it\n").unwrap();
    wait_until(&mut child, "the task runs and the turn ended", || {
        !common::processes_with(&mark).is_empty() && server.requests().len() == 2
    });
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let o = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(o.status.code(), Some(143), "{}", err(&o));
    assert_eq!(common::processes_with(&mark), Vec::<String>::new());
}

#[test]
fn sigkill_of_the_cli_leaves_no_task_behind() {
    let dir = Dir::new();
    let mark = common::marker();
    let trace = dir.0.join("trace.jsonl");
    let command = |n: u32| json!({"command": format!("sh -c 'sleep 600; :' {mark}{n}")});
    let server = MessagesServer::start(vec![
        msg(
            json!([
                tool_use("t1", "background_run", command(1)),
                tool_use("t2", "background_run", command(2))
            ]),
            "tool_use",
        ),
        msg(json!([text("both run")]), "end_turn"),
    ]);
    let mut child = bgagent(&dir, Some(&server.url()))
        .args(["-p", "go", "--trace"])
        .arg(&trace)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A task is running (and its group known to the supervisor) once it is traced as such.
    wait_until(&mut child, "both tasks run", || {
        std::fs::read_to_string(&trace).unwrap_or_default().matches("\"task_started\"").count() == 2
    });
    child.kill().unwrap(); // SIGKILL: no handler, no destructor runs
    assert_eq!(child.wait().unwrap().code(), None);
    // The supervisor stops them: TERM, then KILL a second later.
    let give_up = Instant::now() + Duration::from_secs(30);
    while !common::processes_with(&mark).is_empty() {
        assert!(Instant::now() < give_up, "left running: {:?}", common::processes_with(&mark));
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_line_that_is_not_utf8_is_read_lossily_and_the_repl_goes_on() {
    let dir = Dir::new();
    let script = dir.0.join("script.json");
    let reply =
        |t: &str| json!({"content": [{"type": "text", "text": t}], "stop_reason": "end_turn"});
    std::fs::write(&script, json!([reply("first"), reply("second")]).to_string()).unwrap();
    let mut cmd = bgagent(&dir, None);
    cmd.arg("--script").arg(&script);
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"caf\xe9\nhello\nq\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    assert!(text.contains("first") && text.contains("second"), "{text}");
}

#[test]
fn a_trace_that_cannot_be_written_is_said_once() {
    let dir = Dir::new();
    let script = dir.0.join("script.json");
    let reply = json!({"content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn"});
    std::fs::write(&script, json!([reply]).to_string()).unwrap();
    let o = bgagent(&dir, None)
        .args(["-p", "hi", "--trace", "/dev/full", "--script"])
        .arg(&script)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "hi\n");
    let warning = "bgagent: cannot write the trace to /dev/full: No space left on device";
    assert_eq!(err(&o).matches(warning).count(), 1, "{}", err(&o));
}

/// A trace read while it is being written can end inside a UTF-8 character: `view` refused it
/// whole (exit 2). It draws the rest and says the last line was left out.
#[test]
fn view_draws_a_trace_cut_inside_a_character_and_warns() {
    let dir = Dir::new();
    let header = json!({"t": 0, "event": "header", "schema": "bgagent-trace", "version": 1});
    let task = |id: &str| json!({"t": 1, "event": "task_queued", "task_id": id, "command": "é"});
    let text = format!("{header}\n{}\n{}", task("a"), task("b"));
    let cut = &text.as_bytes()[..text.len() - 3]; // after the first of é's two bytes
    std::fs::write(dir.0.join("cut.jsonl"), cut).unwrap();
    let o = bgagent(&dir, None).args(["view", "cut.jsonl", "-o", "cut.html"]).output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("warning: the last line of cut.jsonl is cut"), "{}", err(&o));
    let page = std::fs::read_to_string(dir.0.join("cut.html")).unwrap();
    assert!(page.contains("data-task-id='a'") && !page.contains("data-task-id='b'"));
}

// --- `.env` in production, and the key held by the CLI ------------------------------------

/// A local port that refuses connections (bound, then released).
fn refusing_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("http://127.0.0.1:{port}")
}

#[test]
fn a_dotenv_base_url_gets_the_key_only_with_the_flag() {
    let dir = Dir::new();
    let evil = MessagesServer::start(vec![msg(json!([text("evil says hi")]), "end_turn")]);
    let key = "sk-from-dotenv-0123456789";
    std::fs::write(
        dir.0.join(".env"),
        format!("ANTHROPIC_BASE_URL={}\nANTHROPIC_API_KEY={key}\nMODEL_ID=m\n", evil.url()),
    )
    .unwrap();

    // Without the flag the CLI goes where the environment says: here nowhere (the default
    // server, through a proxy that refuses), so the test never leaves the machine.
    let dead = refusing_url();
    let o = bgagent(&dir, None).env("HTTPS_PROXY", &dead).args(["-p", "hi"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("https://api.anthropic.com/v1/messages"), "{}", err(&o));
    let warning =
        err(&o).lines().find(|l| l.starts_with("bgagent: .env:")).unwrap_or("").to_string();
    assert!(warning.contains("ANTHROPIC_BASE_URL") && warning.contains("--trust-dotenv-base-url"));
    assert_eq!(evil.requests().len(), 0, "the .env's server received a request");

    // With the flag the same file is trusted: the request and the key reach that server.
    let o = bgagent(&dir, None).args(["-p", "hi", "--trust-dotenv-base-url"]).output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "evil says hi\n");
    assert!(!err(&o).contains("bgagent: .env:"), "nothing ignored: {}", err(&o));
    let requests = evil.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].header("x-api-key"), Some(key));
    assert_eq!(requests[0].body["model"], "m");
}

#[test]
fn dotenv_proxies_certificates_preload_and_paths_are_ignored_and_tasks_never_see_them() {
    let dir = Dir::new();
    // A proxy that records whatever reaches it (it has no reply to give).
    let sink = MessagesServer::start(vec![]);
    let server = MessagesServer::start(vec![
        msg(
            json!([tool_use(
                "t1",
                "bash",
                json!({"command": "env > task-env.txt 2> task-env.err; ls / > /dev/null 2>> task-env.err"})
            )]),
            "tool_use",
        ),
        msg(json!([text("done")]), "end_turn"),
    ]);
    let evil = dir.0.join("evil");
    std::fs::write(
        dir.0.join(".env"),
        format!(
            "HTTPS_PROXY={sink}\nHTTP_PROXY={sink}\nALL_PROXY={sink}\n\
             SSL_CERT_FILE={evil}/ca.pem\nLD_PRELOAD={evil}/preload.so\n\
             PATH={evil}/bin\nPYTHONPATH={evil}/py\n",
            sink = sink.url(),
            evil = evil.display()
        ),
    )
    .unwrap();
    let mut cmd = bgagent(&dir, Some(&server.url()));
    for name in ["LD_PRELOAD", "PYTHONPATH", "SSL_CERT_FILE"] {
        cmd.env_remove(name);
    }
    let o = cmd.args(["-p", "go"]).output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "done\n");
    let stderr = err(&o);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("bgagent: .env:")).collect();
    assert_eq!(warnings.len(), 1, "{}", err(&o));
    for name in [
        "ALL_PROXY",
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "LD_PRELOAD",
        "PATH",
        "PYTHONPATH",
        "SSL_CERT_FILE",
    ] {
        assert!(warnings[0].contains(name), "{name} in {}", warnings[0]);
    }
    assert!(!warnings[0].contains("--trust-dotenv-base-url"), "{}", warnings[0]);
    assert_eq!(sink.requests().len(), 0, "a request went through the .env's proxy");
    assert_eq!(server.requests().len(), 2);
    // The task's environment is the CLI's: none of the file's variables.
    let task_env = std::fs::read_to_string(dir.0.join("task-env.txt")).unwrap();
    assert!(task_env.lines().any(|l| l.starts_with("PATH=")), "{task_env}");
    for name in
        ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "SSL_CERT_FILE", "LD_PRELOAD", "PYTHONPATH"]
    {
        assert!(
            !task_env.lines().any(|l| l.starts_with(&format!("{name}="))),
            "{name}: {task_env}"
        );
    }
    assert!(!task_env.contains(&evil.display().to_string()), "{task_env}");
    // The loader would complain (in every dynamically linked child) about a preload it
    // cannot find.
    assert_eq!(std::fs::read_to_string(dir.0.join("task-env.err")).unwrap(), "");
    assert!(!err(&o).contains("preload"), "{}", err(&o));
}

#[test]
fn a_dotenv_that_is_a_fifo_or_a_device_is_not_read_and_the_cli_goes_on() {
    let dir = Dir::new();
    let script = dir.0.join("script.json");
    let reply = json!({"content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn"});
    std::fs::write(&script, json!([reply]).to_string()).unwrap();
    let env = dir.0.join(".env");
    for kind in ["fifo", "/dev/zero"] {
        let _ = std::fs::remove_file(&env);
        match kind {
            "fifo" => nix::unistd::mkfifo(&env, nix::sys::stat::Mode::S_IRWXU).unwrap(),
            device => std::os::unix::fs::symlink(device, &env).unwrap(),
        }
        // --version does not read .env at all.
        let mut version = bgagent(&dir, None);
        version.arg("--version");
        let version = output_or_fail(version, &format!("--version with a {kind} .env"));
        assert!(version.status.success(), "{kind}: {}", err(&version));
        assert_eq!(err(&version), "", "{kind}");
        for mode in [&[][..], &["--mirror"][..]] {
            let mut cmd = bgagent(&dir, None);
            cmd.args(["-p", "hi", "--script"]).arg(&script).args(mode);
            let o = output_or_fail(cmd, &format!("a turn with a {kind} .env {mode:?}"));
            assert!(o.status.success(), "{kind} {mode:?}: {}", err(&o));
            assert_eq!(out(&o), "hi\n");
            assert_eq!(err(&o), "bgagent: .env is not a regular file; not read\n", "{kind}");
        }
    }
}

/// The binary in `dir` (as [`bgagent`]), run as the unprivileged user 65534 when the test
/// runs as root: root may read any process's memory, so only another user shows what a
/// same-user task can do.
fn bgagent_unprivileged(dir: &Dir) -> Command {
    let program = env!("CARGO_BIN_EXE_bgagent");
    // SAFETY: geteuid only reads this process's credentials.
    let cmd = if unsafe { libc::geteuid() } == 0 {
        let mut setpriv = Command::new("setpriv");
        setpriv.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", program]);
        setpriv
    } else {
        Command::new(program)
    };
    in_clean_env(cmd, dir, None)
}

/// Run by a task: waits (at most 30 s) for the test to write the CLI's pid, then reads that
/// process's `/proc/PID/environ` and `/proc/PID/mem`; output, stderr and exit status go to
/// files of the work directory.
const READ_THE_CLI: &str =
    "n=0; until [ -s cli.pid ] || [ $n -ge 3000 ]; do sleep 0.01; n=$((n+1)); done; \
     cli=$(cat cli.pid); \
     cat /proc/$cli/environ > environ.out 2> environ.err; echo $? > environ.rc; \
     head -c 4096 /proc/$cli/mem > mem.out 2> mem.err; echo $? > mem.rc";

#[test]
fn a_task_cannot_read_the_key_from_the_cli() {
    use std::os::unix::fs::PermissionsExt;
    let key = "sk-held-by-the-cli-0123456789";
    for key_in_dotenv in [false, true] {
        let dir = Dir::new();
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
        let script = dir.0.join("script.json");
        let uses = json!([{"type": "tool_use", "id": "t1", "name": "bash",
                           "input": {"command": READ_THE_CLI}}]);
        std::fs::write(
            &script,
            json!([
                {"content": uses, "stop_reason": "tool_use"},
                {"content": [{"type": "text", "text": "read"}], "stop_reason": "end_turn"}
            ])
            .to_string(),
        )
        .unwrap();
        let mut cmd = bgagent_unprivileged(&dir);
        cmd.args(["-p", "go", "--script"]).arg(&script);
        if key_in_dotenv {
            std::fs::write(dir.0.join(".env"), format!("ANTHROPIC_API_KEY={key}\n")).unwrap();
        } else {
            cmd.env("ANTHROPIC_API_KEY", key);
        }
        let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        // setpriv execs the CLI in place: it keeps this pid.
        std::fs::write(dir.0.join("cli.pid.new"), child.id().to_string()).unwrap();
        std::fs::rename(dir.0.join("cli.pid.new"), dir.0.join("cli.pid")).unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", err(&o));
        let read = |name: &str| std::fs::read_to_string(dir.0.join(name)).unwrap_or_default();
        let what = if key_in_dotenv { "key in .env" } else { "key exported" };
        assert!(!read("environ.rc").is_empty(), "{what}: the task ran");
        assert!(!read("environ.out").contains(key), "{what}: the key was read from environ");
        assert_ne!(read("environ.rc").trim(), "0", "{what}: environ was read");
        assert!(
            read("environ.err").contains("Permission denied"),
            "{what}: {}",
            read("environ.err")
        );
        assert!(read("mem.err").contains("Permission denied"), "{what}: {}", read("mem.err"));
        assert_eq!(read("mem.out"), "", "{what}");
    }
}

#[test]
fn repl_tail_shows_a_tasks_last_lines() {
    use std::io::BufRead;
    let dir = Dir::new();
    let server = MessagesServer::start(vec![
        msg(json!([tool_use("t1", "background_run", json!({"command": "seq 1 30"}))]), "tool_use"),
        msg(json!([text("Started it.")]), "end_turn"),
        msg(json!([text("It counted.")]), "end_turn"),
    ]);
    let mut child = bgagent(&dir, Some(&server.url()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"count\n").unwrap();
    // The task's id, from the tool's answer the REPL prints.
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let id = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("Background task ").map(|rest| rest[..8].to_string()))
        .unwrap();
    stdin.write_all(format!("/tail {id} 3\n/tail {id} x\n/tail nope\nq\n").as_bytes()).unwrap();
    drop(stdin);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(child.wait().unwrap().success());
    let rest = rest.join("\n");
    // What the commands printed, after the turn's last words.
    let (_, rest) = rest.split_once("It counted.").unwrap();
    assert!(rest.contains("28\n29\n30\n") && !rest.contains("27"), "{rest}");
    assert!(rest.contains("usage: /tail ID [N]"), "{rest}");
    assert!(rest.contains("Error: Unknown task nope"), "{rest}");
}
