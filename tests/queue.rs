//! The cap on running tasks (`Options::max_running`): real processes, each of which marks
//! itself while it runs; the tests hold each task open with a file of their own and let it go
//! when they choose, so no step depends on timing.

mod common;

use common::TempDir;

use bgagent::background::{production, StartAt, Subscription, TaskEventKind, Until};
use bgagent::session::SessionConfig;
use bgagent::tools::{call, ToolContext, BASH_TIMEOUT};
use bgagent::{BackgroundManager, Options, Status};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

const LONG: Option<Duration> = Some(Duration::from_secs(60));

fn manager(dir: &Path, max_running: Option<usize>) -> BackgroundManager {
    common::use_supervisor();
    let options = Options {
        workdir: Some(dir.to_path_buf()),
        grace: Duration::from_millis(300),
        max_running,
        ..Options::default()
    };
    BackgroundManager::new(options).unwrap()
}

/// A task that marks itself running (`run.K`), writes how many tasks are marked at that moment
/// to `counts`, waits for `go.K`, and unmarks itself just before it ends.
fn held(k: usize) -> String {
    format!(
        "touch run.{k}; ls | grep -c '^run\\.' >> counts; \
         until [ -e go.{k} ]; do sleep 0.01; done; rm run.{k}"
    )
}

fn release(dir: &Path, k: usize) {
    std::fs::write(dir.join(format!("go.{k}")), "").unwrap();
}

/// Polls `ready` until it holds; fails the test with `what` after a generous deadline.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < give_up, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The next lifecycle event (progress skipped): `(task_id, kind)`.
fn next(events: &Subscription) -> (String, TaskEventKind) {
    loop {
        let event = events.recv(LONG).expect("an event");
        if !matches!(event.kind, TaskEventKind::Progress { .. }) {
            return (event.task_id, event.kind);
        }
    }
}

#[test]
fn never_more_than_the_cap_run_and_the_line_moves_first_come_first_started() {
    let dir = TempDir::new();
    let m = manager(&dir.0, Some(2));
    let events = m.subscribe();
    let ids: Vec<String> = (0..6).map(|k| m.start(&held(k))).collect();
    // Two start, four wait in line, each told its place.
    let mut running = 0usize;
    let mut started = Vec::new();
    let mut seen_queued = Vec::new();
    while seen_queued.len() < 6 || started.len() < 2 {
        match next(&events) {
            (id, TaskEventKind::Queued { place, .. }) => seen_queued.push((id, place)),
            (id, TaskEventKind::Started { waited, .. }) => {
                assert_eq!(waited, None, "the first two never waited");
                running += 1;
                started.push(id);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let places: Vec<Option<usize>> = seen_queued.iter().map(|(_, p)| *p).collect();
    assert_eq!(places, [None, None, Some(1), Some(2), Some(3), Some(4)]);
    // The first two start side by side: their starts may be reported in either order.
    let (mut first_two, mut want) = (started.clone(), ids[..2].to_vec());
    first_two.sort();
    want.sort();
    assert_eq!(first_two, want);
    for (k, id) in ids.iter().enumerate().skip(2) {
        assert_eq!(m.task(id).unwrap().status(), Status::Queued);
        assert_eq!(m.place(id), Some((k - 1, 2)));
    }
    // Each release ends one task; the first in line takes its slot, and only it.
    for (k, next_to_end) in ids.iter().enumerate() {
        release(&dir.0, k);
        let mut finished = false;
        while !finished || (k + 2 < 6 && started.len() < k + 3) {
            match next(&events) {
                (id, TaskEventKind::Finished { status, .. }) => {
                    assert_eq!((&id, status), (next_to_end, Status::Completed));
                    running -= 1;
                    finished = true;
                }
                (id, TaskEventKind::Started { waited, .. }) => {
                    assert!(finished, "{id} started before a slot was free");
                    assert!(waited.is_some(), "a task that waited says how long");
                    running += 1;
                    started.push(id);
                }
                other => panic!("unexpected {other:?}"),
            }
            assert!(running <= 2, "{running} running");
        }
    }
    // Those that waited started in the order they came (the first two started side by side).
    assert_eq!(started[2..], ids[2..], "first come, first started");
    assert_eq!(m.wait(Until::Idle, LONG), Ok(None));
    // What the processes themselves saw: never more than two marked at once.
    let counts = std::fs::read_to_string(dir.0.join("counts")).unwrap();
    let counts: Vec<usize> = counts.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(counts.len(), 6);
    assert!(counts.iter().all(|&n| (1..=2).contains(&n)), "{counts:?}");
    let waited = m.task(&ids[5]).unwrap();
    assert!(waited.waited() > Duration::ZERO && waited.waited_for_slot);
    assert!(!m.task(&ids[0]).unwrap().waited_for_slot);
}

#[test]
fn a_queued_task_is_killed_out_of_the_line_and_shutdown_empties_it() {
    let dir = TempDir::new();
    let m = manager(&dir.0, Some(1));
    let events = m.subscribe();
    let blocker = m.start(&held(0));
    let first = m.start(&held(1));
    let second = m.start(&held(2));
    wait_until("the blocker runs", || dir.0.join("run.0").exists());
    assert_eq!(m.place(&second), Some((2, 1)));

    let text = m.kill(&first);
    assert_eq!(text, format!("[killed] {}\nError: Killed (never started)", &held(1)[..60]));
    let record = m.task(&first).unwrap();
    assert_eq!((record.exit_code(), record.pid()), (None, None));
    assert_eq!(m.place(&second), Some((1, 1)), "the line moved up");
    let notes = m.drain();
    assert_eq!(notes.len(), 1);
    assert_eq!(
        (notes[0].task_id.as_str(), notes[0].status, notes[0].result.as_str(), notes[0].exit_code),
        (first.as_str(), Status::Killed, production::NEVER_STARTED, None)
    );
    assert!(m.kill(&first).starts_with("Error: Task"), "killed once");

    m.shutdown();
    let notes = m.drain();
    let ended: Vec<(&str, Status, &str)> =
        notes.iter().map(|n| (n.task_id.as_str(), n.status, n.result.as_str())).collect();
    assert!(ended.contains(&(second.as_str(), Status::Killed, production::NEVER_STARTED)));
    assert!(ended.contains(&(blocker.as_str(), Status::Killed, "Error: Killed")));
    assert_eq!(notes.len(), 2, "one notification each");
    // Neither queued task ever ran, nor was it reported started.
    let mut lifecycle = Vec::new();
    while let Some(e) = events.try_recv() {
        lifecycle.push((e.task_id, e.kind.name()));
    }
    for id in [&first, &second] {
        let names: Vec<&str> = lifecycle.iter().filter(|(t, _)| t == id).map(|(_, n)| *n).collect();
        assert_eq!(names, ["queued", "finished", "drained"], "{id}");
    }
    assert!(!dir.0.join("run.1").exists() && !dir.0.join("run.2").exists());
}

#[test]
fn start_now_runs_a_queued_task_past_the_cap() {
    let dir = TempDir::new();
    let m = manager(&dir.0, Some(1));
    let blocker = m.start(&held(0));
    let queued = m.start(&held(1));
    assert_eq!(m.task(&queued).unwrap().status(), Status::Queued);
    assert_eq!(m.start_now(&queued), Ok(()));
    // Both run at once: each sees the other's mark, or its own and then the other's.
    wait_until("both run", || dir.0.join("run.0").exists() && dir.0.join("run.1").exists());
    assert_eq!(m.start_now(&queued), Err(format!("Error: Task {queued} is not queued (running)")));
    assert_eq!(m.start_now("nosuch"), Err("Error: Unknown task nosuch".to_string()));
    // The slot it took past the cap is given back like any other: a third waits for both.
    let third = m.start("true");
    assert_eq!(m.place(&third), Some((1, 2)));
    release(&dir.0, 0);
    assert_eq!(m.wait(Until::Ended(&blocker), LONG), Ok(None));
    assert_eq!(m.task(&third).unwrap().status(), Status::Queued, "one still runs past the cap");
    release(&dir.0, 1);
    assert_eq!(m.wait(Until::Ended(&third), LONG), Ok(None));
    assert_eq!(m.task(&third).unwrap().status(), Status::Completed);
}

#[test]
fn a_queued_tasks_timeout_counts_from_its_start() {
    let dir = TempDir::new();
    let m = manager(&dir.0, Some(1));
    let blocker = m.start(&held(0));
    let timeout = Duration::from_millis(500);
    let at = StartAt { timeout: Some(timeout), ..StartAt::default() };
    let line = m.run_with("touch ran; sleep 60", at);
    let id = line.split(' ').nth(2).unwrap().to_string();
    // It waits longer than its own timeout before it starts...
    wait_until("it waited past its timeout", || m.task(&id).unwrap().waited() > timeout * 2);
    assert_eq!(m.task(&id).unwrap().status(), Status::Queued);
    release(&dir.0, 0);
    assert_eq!(m.wait(Until::Ended(&blocker), LONG), Ok(None));
    // ...and still runs, until its timeout after its start.
    assert_eq!(m.wait(Until::Ended(&id), LONG), Ok(None));
    let record = m.task(&id).unwrap();
    assert!(dir.0.join("ran").exists(), "it ran");
    assert_eq!(record.status(), Status::Timeout);
    assert_eq!(record.result(), Some("Error: Timeout (0.5s)"));
    assert!(record.elapsed() >= timeout, "its run, from its start");
}

#[test]
fn run_and_check_say_where_a_queued_task_is() {
    let dir = TempDir::new();
    let m = manager(&dir.0, Some(1));
    let first = m.run(&held(0));
    assert!(first.contains(" started: "), "{first}");
    let long = format!("echo {}", "x".repeat(100));
    let second = m.run(&long);
    let id = second.split(' ').nth(2).unwrap().to_string();
    assert_eq!(
        second,
        format!("Background task {id} queued (1st in line, 1 running): {}", &long[..80])
    );
    let third = m.run("echo three");
    assert!(third.ends_with(" queued (2nd in line, 1 running): echo three"), "{third}");
    assert_eq!(
        m.check(Some(&id)),
        format!("[queued] {}\n(queued: 1st in line, 1 running)", &long[..60])
    );
    assert!(m.check(None).lines().nth(1).unwrap().ends_with(&format!("[queued] {}", &long[..60])));
    let info = serde_json::to_value(m.task(&id).unwrap()).unwrap();
    assert_eq!((info["status"].clone(), info["elapsed"].clone()), (json!("queued"), json!(0.0)));
    assert!(info["waited"].as_f64().unwrap() >= 0.0);
    release(&dir.0, 0);
    assert_eq!(m.wait(Until::Idle, LONG), Ok(None));
}

#[test]
fn the_models_background_run_takes_a_timeout_and_says_queued_in_production_only() {
    let dir = TempDir::new();
    let m = manager(&dir.0, Some(1));
    let no_interrupt = || false;
    let ctx = |extended: bool| ToolContext {
        workdir: &dir.0,
        manager: &m,
        extended,
        max_wait: Duration::from_secs(30),
        default_wait: Duration::from_secs(30),
        bash_timeout: BASH_TIMEOUT,
        hide_secrets: extended,
        interrupted: &no_interrupt,
    };
    let run = |extended, input| call(&ctx(extended), "background_run", &input).unwrap();
    assert!(run(true, json!({"command": held(0)})).contains(" started: "));
    let queued = run(true, json!({"command": "sleep 60", "timeout": 0.3}));
    assert!(queued.contains(" queued (1st in line, 1 running): sleep 60"), "{queued}");
    let id = queued.split(' ').nth(2).unwrap().to_string();
    assert_eq!(m.task(&id).unwrap().timeout, Duration::from_millis(300));
    let bad = run(true, json!({"command": "true", "timeout": -1}));
    assert!(bad.starts_with("Error: timeout"), "{bad}");
    // The lesson's tool knows no timeout: the manager's applies.
    let lesson = run(false, json!({"command": "true", "timeout": 0.3}));
    let lesson_id = lesson.split(' ').nth(2).unwrap().to_string();
    assert_eq!(m.task(&lesson_id).unwrap().timeout, Options::default().timeout);
    // The schemas: the lesson's stays as it was, production's has the timeout.
    let lesson_schema = &bgagent::tools::lesson_tools()[4];
    assert_eq!(lesson_schema["input_schema"]["properties"], json!({"command": {"type": "string"}}));
    let production_schema = &bgagent::tools::extended_tools()[4];
    assert_eq!(
        production_schema["input_schema"]["properties"]["timeout"],
        json!({"type": "number"})
    );
    release(&dir.0, 0);
    m.shutdown();
}

#[test]
fn production_caps_by_default_and_the_mirror_does_not() {
    let cap = bgagent::defaults::max_running();
    assert!(cap >= 4);
    assert_eq!(Options::default().max_running, Some(cap));
    let config = SessionConfig::new("/");
    assert_eq!(config.manager_options().max_running, Some(cap));
    assert_eq!(config.clone().max_running(Some(3)).manager_options().max_running, Some(3));
    assert_eq!(config.mirror(true).max_running(Some(3)).manager_options().max_running, None);
    let zero = Options { max_running: Some(0), ..Options::default() };
    assert!(BackgroundManager::new(zero).is_err());
}

/// Without a cap nothing ever waits: every task starts at once, and none is ever `queued`.
#[test]
fn without_a_cap_every_task_starts_at_once() {
    let dir = TempDir::new();
    let m = manager(&dir.0, None);
    let events = m.subscribe();
    let ids: Vec<String> = (0..8).map(|k| m.start(&held(k))).collect();
    wait_until("all run", || (0..8).all(|k| dir.0.join(format!("run.{k}")).exists()));
    for id in &ids {
        assert_ne!(m.task(id).unwrap().status(), Status::Queued);
    }
    while let Some(e) = events.try_recv() {
        if let TaskEventKind::Queued { place, .. } = e.kind {
            assert_eq!(place, None);
        }
    }
    (0..8).for_each(|k| release(&dir.0, k));
    assert_eq!(m.wait(Until::Idle, LONG), Ok(None));
}

/// `bgagent --max-running 1` with a scripted model: the second background_run is told it is
/// queued, the trace has its place and its wait, and the page draws the wait on its lane.
#[test]
fn the_cli_flag_caps_the_session_and_the_trace_shows_the_wait() {
    let dir = TempDir::new();
    let tool_use = |id: &str, name: &str, command: String| json!({"type": "tool_use", "id": id, "name": name, "input": {"command": command}});
    // The bash call returns once both tasks' ends are in the trace.
    let both_ended = "touch go.0; until [ \"$(grep -c '\"task_finished\"' trace.jsonl)\" -ge 2 ]; \
                      do sleep 0.02; done";
    let script = json!([
        {"content": [
            tool_use("t1", "background_run", held(0)),
            tool_use("t2", "background_run", "echo two".into()),
            tool_use("t3", "bash", both_ended.into()),
        ], "stop_reason": "tool_use"},
        {"content": [{"type": "text", "text": "done"}], "stop_reason": "end_turn"},
    ]);
    std::fs::write(dir.0.join("script.json"), script.to_string()).unwrap();
    let bgagent = || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_bgagent"));
        cmd.current_dir(&dir.0).env("NO_COLOR", "1");
        for name in ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "MODEL_ID"]
        {
            cmd.env_remove(name);
        }
        cmd
    };
    let o = bgagent()
        .args(["-p", "go", "--script", "script.json", "--trace", "trace.jsonl"])
        .args(["--max-running", "1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let events: Vec<serde_json::Value> = std::fs::read_to_string(dir.0.join("trace.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let result = events
        .iter()
        .find(|e| e["event"] == "tool_result" && e["tool_use_id"] == "t2")
        .expect("t2's result");
    let output = result["output"].as_str().unwrap();
    let task = result["task_id"].as_str().expect("the trace knows the task").to_string();
    assert_eq!(output, format!("Background task {task} queued (1st in line, 1 running): echo two"));
    let of = |kind: &str| events.iter().find(|e| e["event"] == kind && e["task_id"] == task);
    assert_eq!(of("task_queued").unwrap()["place"], 1);
    assert!(of("task_started").unwrap()["waited"].as_f64().is_some());
    let o = bgagent().args(["view", "trace.jsonl", "-o", "page.html"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page = std::fs::read_to_string(dir.0.join("page.html")).unwrap();
    let lane = &page[page.find(&format!("data-task-id='{task}'")).unwrap()..];
    let lane = &lane[..lane.find("</g>").unwrap()];
    assert!(lane.contains("class='wait'") && lane.contains("for a slot (1st in line)"), "{lane}");

    // A cap of nothing is refused, as a usage error.
    let o = bgagent().args(["-p", "go", "--script", "script.json", "--max-running", "0"]).output();
    assert_eq!(o.unwrap().status.code(), Some(2));
}

/// A slot is freed when the task's process group is gone, not when its shell exits: what the
/// first task left running in its group is gone before the next task starts.
#[test]
fn a_slot_is_held_until_the_group_is_gone() {
    let dir = TempDir::new();
    let m = manager(&dir.0, Some(1));
    let mark = common::marker();
    let (head, tail) = mark.split_at(6);
    // The shell exits at once; its group keeps a sleeper (its output elsewhere: no pipe holds
    // the task open).
    let first = m.start(&format!("sh -c 'sleep 600; :' {mark} >/dev/null 2>&1 & echo left"));
    // The marker is split so that this task's own command line does not hold it.
    let second = m.start(&format!(
        "if pgrep -f \"{head}\"\"{tail}\" >/dev/null; then echo leftover; else echo gone; fi"
    ));
    assert_eq!(m.wait(Until::Ended(&second), LONG), Ok(None));
    assert_eq!(m.task(&first).unwrap().result(), Some("left"));
    assert_eq!(m.task(&second).unwrap().result(), Some("gone"));
    assert!(common::processes_with(&mark).is_empty());
}
