//! The kit for a loop of one's own (`bgagent::kit`): the six tools' definitions in both
//! formats, one call that runs a tool use (arguments as an object or as JSON text), the
//! cursor of `wait_background`, a task's working directory beneath the workspace, and the
//! injected block. Real processes; tasks that must still run wait for a file the test makes.

mod common;

use common::TempDir;

use bgagent::kit::{results_block, BackgroundTools, Format};
use bgagent::tools::{extended_tools, BACKGROUND_TOOLS};
use bgagent::{BackgroundManager, Options};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

fn manager(dir: &Path, keep_finished: Option<usize>) -> BackgroundManager {
    common::use_supervisor();
    let options = Options {
        workdir: Some(dir.to_path_buf()),
        grace: Duration::from_millis(300),
        keep_finished,
        ..Options::default()
    };
    BackgroundManager::new(options).unwrap()
}

/// The task id in `background_run`'s answer.
fn id_of(started: &str) -> String {
    let id = started.strip_prefix("Background task ").expect(started);
    id[..8].to_string()
}

#[test]
fn the_definitions_are_the_production_tools_in_both_formats() {
    let dir = TempDir::new();
    let m = manager(&dir.0, None);
    let kit = BackgroundTools::new(&m);
    let anthropic = kit.definitions(Format::Anthropic);
    let names: Vec<&str> = anthropic.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, BACKGROUND_TOOLS);
    // The same definitions bgagent's own loop sends.
    let own = extended_tools();
    for tool in &anthropic {
        assert!(own.contains(tool), "{tool}");
    }
    let openai = kit.definitions(Format::OpenAi);
    assert_eq!(openai.len(), 6);
    for (o, a) in openai.iter().zip(&anthropic) {
        assert_eq!(o["type"], "function");
        let f = o["function"].as_object().unwrap();
        assert_eq!(f.keys().collect::<Vec<_>>(), ["name", "description", "parameters"]);
        assert_eq!((&f["name"], &f["parameters"]), (&a["name"], &a["input_schema"]));
        assert_eq!(f["parameters"]["type"], "object");
    }
}

#[test]
fn a_call_takes_an_object_or_json_text_and_answers_every_problem_in_text() {
    let dir = TempDir::new();
    let m = manager(&dir.0, None);
    let kit = BackgroundTools::new(&m);
    let id = id_of(&kit.call("background_run", &json!({"command": "echo one"})));
    let text = Value::String(format!(r#"{{"task_id": "{id}", "timeout": 60}}"#));
    assert_eq!(kit.call("wait_background", &text), "[completed] echo one\none");
    assert_eq!(kit.call("bash", &json!({"command": "true"})), "Unknown tool: bash");
    let not_json = kit.call("check_background", &Value::String("{".into()));
    assert!(not_json.starts_with("Error: the arguments of check_background are not JSON"));
    let list = kit.call("check_background", &json!([]));
    assert_eq!(list, "Error: the arguments of check_background must be a JSON object");
    assert_eq!(
        kit.call("kill_background", &json!({})),
        "Error: kill_background needs the argument 'task_id'"
    );
    assert_eq!(
        kit.call("check_background", &json!({"task_id": "nope"})),
        "Error: Unknown task nope"
    );
    let both = kit.call("wait_background", &json!({"task_id": id, "cursor": 0}));
    assert_eq!(both, "Error: give wait_background a task_id or a cursor, not both");
}

#[test]
fn a_cursor_answers_what_finished_after_it_and_marks_nothing_delivered() {
    let dir = TempDir::new();
    let m = manager(&dir.0, None);
    let kit = BackgroundTools::new(&m);
    let one = id_of(&kit.call("background_run", &json!({"command": "echo one"})));
    let first = kit.call("wait_background", &json!({"cursor": 0, "timeout": 60}));
    assert!(first.starts_with(&format!("[bg:{one}] completed (exit 0, ")), "{first}");
    assert!(first.ends_with("): one\n[cursor: 1; 0 running, 0 queued]"), "{first}");
    // An answer lost on the way: the same cursor gives the same tasks again.
    let again = kit.call("wait_background", &json!({"cursor": 0, "timeout": 60}));
    assert_eq!(again.lines().next(), first.lines().next());
    // Nothing runs and nothing is new: at once.
    let nothing = kit.call("wait_background", &json!({"cursor": 1}));
    assert_eq!(nothing, "No task finished since cursor 1.\n[cursor: 1; 0 running, 0 queued]");
    let ahead = kit.call("wait_background", &json!({"cursor": 7}));
    assert!(ahead.starts_with("Error: cursor 7 is past the 1 tasks finished here"), "{ahead}");
    let negative = kit.call("wait_background", &json!({"cursor": -1}));
    assert_eq!(negative, "Error: cursor must be 0 or more");
    // A task that ends while the wait blocks: the wait answers it.
    let release = dir.0.join("release");
    let held = format!("until [ -e {} ]; do sleep 0.01; done; echo two", release.display());
    let two = id_of(&kit.call("background_run", &json!({"command": held})));
    // Without a timeout the kit's default applies: zero here, so it answers at once.
    let at_once = BackgroundTools::new(&m).waits(Duration::ZERO, Duration::from_secs(60));
    let running = at_once.call("wait_background", &json!({"cursor": 1}));
    assert_eq!(running, "No task finished since cursor 1.\n[cursor: 1; 1 running, 0 queued]");
    let waiter = std::thread::scope(|s| {
        let waiter = s.spawn(|| kit.call("wait_background", &json!({"cursor": 1, "timeout": 60})));
        std::fs::write(&release, "").unwrap();
        waiter.join().unwrap()
    });
    assert!(waiter.starts_with(&format!("[bg:{two}] completed (exit 0, ")), "{waiter}");
    assert!(waiter.ends_with("[cursor: 2; 0 running, 0 queued]"), "{waiter}");
    // The queue was left alone: both notifications are still there for a drain.
    assert_eq!(m.drain().len(), 2);
}

#[test]
fn tasks_let_go_after_a_cursor_are_counted_as_missing() {
    let dir = TempDir::new();
    let m = manager(&dir.0, Some(1));
    for k in 0..3 {
        let id = m.start(&format!("echo {k}"));
        let _ = m.wait(bgagent::background::Until::Ended(&id), Some(Duration::from_secs(60)));
        m.drain(); // delivered: retention may let it go
    }
    let since = m.finished_since(0);
    assert_eq!((since.notes.len(), since.missing, since.cursor), (1, 2, 3));
    let text = BackgroundTools::new(&m).call("wait_background", &json!({"cursor": 0}));
    assert!(text.contains("(2 tasks that finished since cursor 0 are no longer kept.)"), "{text}");
}

#[test]
fn a_task_runs_in_a_directory_beneath_the_workspace_only() {
    let dir = TempDir::new();
    std::fs::create_dir(dir.0.join("sub")).unwrap();
    std::fs::write(dir.0.join("file"), "").unwrap();
    let m = manager(&dir.0, None);
    let kit = BackgroundTools::new(&m);
    let id = id_of(&kit.call("background_run", &json!({"command": "pwd", "workdir": "sub"})));
    let done = kit.call("wait_background", &json!({"task_id": id, "timeout": 60}));
    assert_eq!(done, format!("[completed] pwd\n{}", dir.0.join("sub").display()));
    let absolute = dir.0.join("sub").display().to_string();
    let ok = kit.call("background_run", &json!({"command": "true", "workdir": absolute}));
    assert!(ok.starts_with("Background task "), "{ok}");
    for (workdir, refused) in [
        ("..", "Error: Path escapes workspace: .."),
        ("/tmp", "Error: Path escapes workspace: /tmp"),
        ("file", "Error: workdir file is not a directory"),
        ("missing", "Error: workdir missing is not a directory"),
    ] {
        let got = kit.call("background_run", &json!({"command": "true", "workdir": workdir}));
        assert_eq!(got, refused);
    }
}

#[test]
fn the_list_and_the_injected_block() {
    let dir = TempDir::new();
    let m = manager(&dir.0, None);
    let kit = BackgroundTools::new(&m);
    assert_eq!(kit.call("list_background", &json!({})), "No background tasks.");
    let id = id_of(&kit.call("background_run", &json!({"command": "echo out; exit 3"})));
    kit.call("wait_background", &json!({"task_id": id, "timeout": 60}));
    let list = kit.call("list_background", &json!({}));
    assert!(list.starts_with(&format!("{id}: [completed] echo out; exit 3  (exit 3, ")), "{list}");
    let notes = m.drain();
    let lesson = results_block(&notes, true);
    assert_eq!(
        lesson,
        format!("<background-results>\n[bg:{id}] completed: out\n</background-results>")
    );
    let production = results_block(&notes, false);
    assert!(production.starts_with(&format!("<background-results>\n[bg:{id}] completed (exit 3, ")));
    assert!(production.ends_with("): out\n</background-results>"), "{production}");
}
