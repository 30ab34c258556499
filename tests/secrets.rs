//! The API key never reaches what bgagent writes, wherever it falls: across the 50,000- and
//! 500-character cuts of task results, bash and read_file, in task log files, and in the trace
//! even when the key holds `"` and `\`. Real processes, a real key in the environment.

mod common;

use bgagent::background::Until;
use bgagent::tools::{call, ToolContext, BASH_TIMEOUT};
use bgagent::{BackgroundManager, Options, Status};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Once;
use std::time::Duration;

/// Quotes, a backslash, regex-looking and non-ASCII characters: none of them may let it pass.
const KEY: &str = r#"sk-ant-api03-"quoted"\back\slash.*+?(x|y)$-ünïcode-0123456789-END"#;

/// Sets the key in this process's environment once, before any test reads it (every test in
/// this binary uses the same value, so the tests running side by side agree).
fn with_key() -> &'static str {
    static SET: Once = Once::new();
    SET.call_once(|| std::env::set_var("ANTHROPIC_API_KEY", KEY));
    KEY
}

/// Neither the start of the key nor a piece of its middle or end in `text`, in any escaping
/// (JSON escapes only the quotes and backslashes, which these pieces leave out).
fn assert_no_key(text: &str, what: &str) {
    for piece in ["sk-an", "ünïcode", "6789-END"] {
        assert!(!text.contains(piece), "{what} holds {piece:?} of the key: {text:?}");
    }
}

/// A workspace holding `key.txt` (the key, as a task would find it in a file).
struct Dir(std::path::PathBuf);

impl Dir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("bgagent-secrets-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("key.txt"), KEY).unwrap();
        Dir(std::fs::canonicalize(dir).unwrap())
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn production(dir: &Path) -> BackgroundManager {
    with_key();
    common::use_supervisor();
    let options = Options {
        workdir: Some(dir.to_path_buf()),
        log_dir: Some(dir.join("logs")),
        hide_secrets: true,
        ..Options::default()
    };
    BackgroundManager::new(options).unwrap()
}

/// Prints `before` x's, then the key (in 3-byte writes, so it tends to arrive in pieces),
/// then ` tail`.
fn key_after(before: usize) -> String {
    format!("head -c {before} /dev/zero | tr '\\0' x; dd bs=3 status=none < key.txt; echo ' tail'")
}

#[test]
fn a_key_straddling_the_result_and_preview_cuts_leaves_none_of_its_characters() {
    let dir = Dir::new();
    let m = production(&dir.0);
    for before in [49_995, 49_990, 50_000 - KEY.chars().count() + 1] {
        let id = m.start(&key_after(before));
        let _ = m.wait(Until::Ended(&id), Some(Duration::from_secs(60)));
        assert_eq!(m.task(&id).unwrap().status(), Status::Completed);
        let result = m.task(&id).unwrap().result().unwrap().to_string();
        assert_no_key(&result, "the result");
        // Redacted before the cut: the kept text is the x's and the start of the marker.
        let want = format!("{}[redacted] tail", "x".repeat(before));
        assert_eq!(result, want.chars().take(50_000).collect::<String>());
    }
    for before in [495, 499] {
        let id = m.start(&key_after(before));
        let _ = m.wait(Until::Ended(&id), Some(Duration::from_secs(60)));
        let note = m.drain().into_iter().find(|n| n.task_id == id).unwrap();
        assert_no_key(&note.result, "the notification");
        assert_eq!(note.result.chars().count(), 500.min(before + 15));
        assert_eq!(
            m.task(&id).unwrap().result().unwrap().to_string(),
            format!("{}[redacted] tail", "x".repeat(before))
        );
    }
}

#[test]
fn log_files_are_private_and_redacted_as_results_are() {
    let dir = Dir::new();
    let m = production(&dir.0);
    let keys = "echo start; dd bs=2 status=none < key.txt; echo; cat key.txt >&2; echo end";
    // A short output stays in memory; past LOG_IN_MEMORY bytes it is a file. Redacted alike.
    let filler = "yes filler | head -n 1000";
    for (command, in_file) in [(keys.to_string(), false), (format!("{keys}; {filler}"), true)] {
        let id = m.start(&command);
        let _ = m.wait(Until::Ended(&id), Some(Duration::from_secs(60)));
        assert_eq!(m.task(&id).unwrap().status(), Status::Completed);
        let output = m.task(&id).unwrap().finished().unwrap().output.clone();
        let log = match (&output.log_path, &output.log_held) {
            (Some(path), None) => {
                let mode = std::fs::metadata(path).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "the log is its user's only");
                std::fs::read_to_string(path).unwrap()
            }
            (None, Some(held)) => String::from_utf8(held.to_vec()).unwrap(),
            other => panic!("a log in a file or in memory: {other:?}"),
        };
        assert_eq!(output.log_path.is_some(), in_file, "{command}");
        assert_no_key(&log, "the log");
        assert_eq!(log.matches("[redacted]").count(), 2, "{log}");
        // stdout and stderr are two pipes: which is read first is up to the scheduler.
        assert!(log.contains("start\n") && log.contains("end\n"), "{log}");
        // `log_bytes` counts what the log holds: the redacted output.
        assert_eq!(output.log_bytes, log.len() as u64);
        assert_eq!(
            output.stdout_bytes + output.stderr_bytes,
            (log.len() + 2 * (KEY.len() - 10)) as u64
        );
    }
}

fn tool(dir: &Path, manager: &BackgroundManager, name: &str, input: Value) -> String {
    let never = || false;
    let ctx = ToolContext {
        workdir: dir,
        manager,
        extended: true,
        max_wait: Duration::from_secs(30),
        default_wait: Duration::from_secs(30),
        bash_timeout: BASH_TIMEOUT,
        hide_secrets: true,
        interrupted: &never,
    };
    call(&ctx, name, &input).unwrap()
}

#[test]
fn bash_output_is_cut_from_redacted_text() {
    let dir = Dir::new();
    let m = production(&dir.0);
    for before in [49_995, 49_990] {
        let output = tool(&dir.0, &m, "bash", json!({"command": key_after(before)}));
        assert_no_key(&output, "bash's output");
        let want = format!("{}[redacted] tail", "x".repeat(before));
        assert_eq!(output, want.chars().take(50_000).collect::<String>());
    }
}

#[test]
fn read_file_answers_are_cut_from_redacted_text() {
    let dir = Dir::new();
    let m = production(&dir.0);
    for before in [49_995, 49_990] {
        let text = format!("{}{KEY}\nsecond line\n", "é".repeat(before));
        std::fs::write(dir.0.join("big.txt"), text).unwrap();
        let answer = tool(&dir.0, &m, "read_file", json!({"path": "big.txt"}));
        assert_no_key(&answer, "read_file's answer");
        let want = format!("{}[redacted]\nsecond line", "é".repeat(before));
        assert_eq!(answer, want.chars().take(50_000).collect::<String>());
    }
    // A file that ends, at the cut, in the first characters of the key: they go too.
    let text = format!("{}{}", "z".repeat(49_995), &KEY[..20]);
    std::fs::write(dir.0.join("start.txt"), text).unwrap();
    let answer = tool(&dir.0, &m, "read_file", json!({"path": "start.txt"}));
    assert_eq!(answer, format!("{}[redacted]", "z".repeat(49_990)));
}

#[test]
fn a_key_with_quotes_and_backslashes_never_reaches_the_trace() {
    let dir = Dir::new();
    let script = dir.0.join("script.json");
    let reply = |content: Value, stop: &str| json!({"content": content, "stop_reason": stop});
    let replies = json!([
        reply(
            json!([
                {"type": "text", "text": format!("I will print {KEY} now")},
                {"type": "tool_use", "id": "a", "name": "bash", "input": {"command": "cat key.txt"}},
                {"type": "tool_use", "id": "b", "name": "bash",
                 "input": {"command": format!("echo '{KEY}' | wc -c")}},
            ]),
            "tool_use"
        ),
        reply(json!([{"type": "text", "text": "done"}]), "end_turn"),
    ]);
    std::fs::write(&script, replies.to_string()).unwrap();
    let trace = dir.0.join("trace.jsonl");
    let o = Command::new(env!("CARGO_BIN_EXE_bgagent"))
        .current_dir(&dir.0)
        .env("ANTHROPIC_API_KEY", KEY)
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .env("NO_COLOR", "1")
        .args(["-p", "go", "--script"])
        .arg(&script)
        .arg("--trace")
        .arg(&trace)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&trace).unwrap();
    assert_no_key(&text, "the trace");
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let find = |event: &str, id: &str| {
        lines.iter().find(|l| l["event"] == event && l["tool_use_id"] == id).unwrap().clone()
    };
    // Each string was redacted, then the line serialised: the marker stands where the key was.
    assert_eq!(find("tool_result", "a")["output"], "[redacted]");
    assert!(find("tool_call", "b")["input"].as_str().unwrap().contains("echo '[redacted]'"));
    let reply = lines.iter().find(|l| l["event"] == "model_reply").unwrap();
    assert_eq!(reply["text"], "I will print [redacted] now");
    // The tool outputs shown on stderr come redacted too.
    assert_no_key(&String::from_utf8_lossy(&o.stderr), "stderr");
}
