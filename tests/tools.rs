//! The six tools (and production's two more) against a real workspace and real processes.

mod common;

use bgagent::tools::{call, extended_tools, lesson_tools, Interrupted, ToolContext, BASH_TIMEOUT};
use common::{marker, processes_with, Workspace};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

trait Tools {
    fn ctx<'a>(&'a self, interrupted: &'a (dyn Fn() -> bool + Sync)) -> ToolContext<'a>;
    fn call(&self, name: &str, input: Value) -> String;
    fn path(&self, rel: &str) -> PathBuf;
}

impl Tools for Workspace {
    fn ctx<'a>(&'a self, interrupted: &'a (dyn Fn() -> bool + Sync)) -> ToolContext<'a> {
        ToolContext {
            workdir: &self.root,
            manager: &self.manager,
            extended: true,
            max_wait: Duration::from_secs(30),
            default_wait: Duration::from_secs(30),
            bash_timeout: BASH_TIMEOUT,
            hide_secrets: true,
            interrupted,
        }
    }

    fn call(&self, name: &str, input: Value) -> String {
        call(&self.ctx(&|| false), name, &input).unwrap()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

#[test]
fn tool_schemas_are_the_lessons() {
    let names = |tools: Vec<Value>| -> Vec<String> {
        tools.iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(
        names(lesson_tools()),
        ["bash", "read_file", "write_file", "edit_file", "background_run", "check_background"]
    );
    let production = ["read_background", "wait_background", "kill_background", "list_background"];
    assert_eq!(names(extended_tools())[6..], production);
    let bash = &lesson_tools()[0];
    assert_eq!(
        bash,
        &json!({"name": "bash", "description": "Run a shell command (blocking).",
                "input_schema": {"type": "object", "properties": {"command": {"type": "string"}},
                                 "required": ["command"]}})
    );
    assert!(lesson_tools()[5]["input_schema"].get("required").is_none());
}

#[test]
fn bash_runs_in_the_workspace_and_blocks_dangerous_commands() {
    let ws = Workspace::new();
    assert_eq!(
        ws.call("bash", json!({"command": "pwd; echo err >&2"})),
        format!("{}\nerr", ws.root.display())
    );
    assert_eq!(ws.call("bash", json!({"command": "true"})), "(no output)");
    for bad in ["sudo ls", "rm -rf /", "echo x > /dev/sda", "shutdown now", "reboot"] {
        assert_eq!(ws.call("bash", json!({"command": bad})), "Error: Dangerous command blocked");
        assert_eq!(
            ws.call("background_run", json!({"command": bad})),
            "Error: Dangerous command blocked"
        );
    }
}

#[test]
fn bash_timeout_leaves_nothing_behind() {
    let ws = Workspace::new();
    let mark = marker();
    let ctx = ToolContext { bash_timeout: Duration::from_millis(300), ..ws.ctx(&|| false) };
    let input = json!({"command": format!("sh -c 'sleep 600; :' {mark}; :")});
    assert_eq!(call(&ctx, "bash", &input).unwrap(), "Error: Timeout (0.3s)");
    assert_eq!(processes_with(&mark), Vec::<String>::new());
}

#[test]
fn bash_stops_at_ctrl_c() {
    let ws = Workspace::new();
    let mark = marker();
    let pressed = AtomicBool::new(false);
    let interrupted = || pressed.load(Ordering::SeqCst);
    let ctx = ws.ctx(&interrupted);
    std::thread::scope(|s| {
        // Ctrl-C once the command runs.
        s.spawn(|| {
            while processes_with(&mark).is_empty() {
                std::thread::sleep(Duration::from_millis(5));
            }
            pressed.store(true, Ordering::SeqCst);
        });
        let input = json!({"command": format!("sh -c 'sleep 600; :' {mark}; :")});
        assert_eq!(call(&ctx, "bash", &input), Err(Interrupted));
    });
    assert_eq!(processes_with(&mark), Vec::<String>::new());
}

#[test]
fn read_file_with_and_without_limit() {
    let ws = Workspace::new();
    std::fs::write(ws.path("f.txt"), "one\ntwo\r\nthree\nfour\n").unwrap();
    assert_eq!(ws.call("read_file", json!({"path": "f.txt"})), "one\ntwo\nthree\nfour");
    assert_eq!(
        ws.call("read_file", json!({"path": "f.txt", "limit": 2})),
        "one\ntwo\n... (2 more)"
    );
    assert_eq!(ws.call("read_file", json!({"path": "f.txt", "limit": 4})), "one\ntwo\nthree\nfour");
    assert_eq!(ws.call("read_file", json!({"path": "f.txt", "limit": 0})), "one\ntwo\nthree\nfour");
    std::fs::write(ws.path("big.txt"), "é".repeat(60_000)).unwrap();
    assert_eq!(ws.call("read_file", json!({"path": "big.txt"})).chars().count(), 50_000);
}

#[test]
fn read_file_errors_are_text() {
    let ws = Workspace::new();
    std::fs::write(ws.path("bin"), b"ok\xff\xfe").unwrap();
    let bad = ws.call("read_file", json!({"path": "bin"}));
    assert!(
        bad.starts_with("Error: ") && bad.contains("not UTF-8 text (invalid byte at offset 2)"),
        "{bad}"
    );
    let missing = ws.call("read_file", json!({"path": "nope.txt"}));
    assert!(missing.starts_with("Error: ") && missing.contains("No such file"), "{missing}");
    assert_eq!(
        ws.call("read_file", json!({"path": "../x"})),
        "Error: Path escapes workspace: ../x"
    );
    assert_eq!(ws.call("read_file", json!({})), "Error: read_file needs the argument 'path'");
    assert_eq!(
        ws.call("read_file", json!({"path": "bin", "limit": "3"})),
        "Error: argument 'limit' of read_file must be an integer"
    );
}

#[test]
fn write_and_edit_files() {
    let ws = Workspace::new();
    assert_eq!(
        ws.call("write_file", json!({"path": "a/b/c.txt", "content": "héllo hello"})),
        "Wrote 11 bytes"
    );
    assert_eq!(std::fs::read_to_string(ws.path("a/b/c.txt")).unwrap(), "héllo hello");
    assert_eq!(
        ws.call("edit_file", json!({"path": "a/b/c.txt", "old_text": "hello", "new_text": "bye"})),
        "Edited a/b/c.txt"
    );
    assert_eq!(std::fs::read_to_string(ws.path("a/b/c.txt")).unwrap(), "héllo bye");
    assert_eq!(
        ws.call("edit_file", json!({"path": "a/b/c.txt", "old_text": "zzz", "new_text": "y"})),
        "Error: Text not found in a/b/c.txt"
    );
    assert_eq!(
        ws.call("write_file", json!({"path": "/tmp/evil", "content": "x"})),
        "Error: Path escapes workspace: /tmp/evil"
    );
    assert_eq!(
        ws.call("write_file", json!({"path": "x", "content": 5})),
        "Error: argument 'content' of write_file must be a string"
    );
    assert!(!Path::new("/tmp/evil").exists());
}

#[test]
fn symlinks_out_of_the_workspace_are_refused() {
    let ws = Workspace::new();
    std::os::unix::fs::symlink("/etc", ws.path("etc")).unwrap();
    assert_eq!(
        ws.call("read_file", json!({"path": "etc/hostname"})),
        "Error: Path escapes workspace: etc/hostname"
    );
    assert_eq!(
        ws.call("write_file", json!({"path": "etc/new/file", "content": "x"})),
        "Error: Path escapes workspace: etc/new/file"
    );
}

#[test]
fn background_tools_start_check_wait_and_kill() {
    let ws = Workspace::new();
    // The task runs until the test creates `go`.
    let command = "while [ ! -e go ]; do sleep 0.01; done; echo done";
    let started = ws.call("background_run", json!({"command": command}));
    let id = started.split_whitespace().nth(2).unwrap().to_string();
    assert_eq!(
        ws.call("check_background", json!({"task_id": id})),
        format!("[running] {}\n(running)", command)
    );
    std::fs::write(ws.path("go"), "").unwrap();
    assert_eq!(
        ws.call("wait_background", json!({"task_id": id})),
        format!("[completed] {}\ndone", command)
    );
    assert_eq!(ws.call("check_background", json!({})), format!("{id}: [completed] {}", command));
    let long = ws.call("background_run", json!({"command": "sleep 60"}));
    let long_id = long.split_whitespace().nth(2).unwrap();
    let waited = ws.call("wait_background", json!({"timeout": 0.2}));
    assert!(waited.contains(&format!("{long_id}: [running] sleep 60")), "{waited}");
    assert_eq!(
        ws.call("kill_background", json!({"task_id": long_id})),
        "[killed] sleep 60\nError: Killed"
    );
    assert_eq!(ws.call("wait_background", json!({"task_id": "nope"})), "Error: Unknown task nope");
    for bad in [json!(-1), json!(1e300)] {
        let text = ws.call("wait_background", json!({"timeout": bad}));
        assert!(text.starts_with("Error: timeout must be a non-negative number"), "{text}");
    }
    assert_eq!(ws.call("teleport", json!({})), "Unknown tool: teleport");
}

#[test]
fn lesson_mode_does_not_know_the_production_tools() {
    let ws = Workspace::new();
    let ctx = ToolContext { extended: false, ..ws.ctx(&|| false) };
    assert_eq!(call(&ctx, "wait_background", &json!({})).unwrap(), "Unknown tool: wait_background");
    assert_eq!(
        call(&ctx, "kill_background", &json!({"task_id": "x"})).unwrap(),
        "Unknown tool: kill_background"
    );
}

#[test]
fn only_regular_files_are_read_and_a_fifo_does_not_block() {
    let ws = Workspace::new();
    let fifo = std::ffi::CString::new(ws.path("pipe").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let want = format!("Error: {}: is not a regular file", ws.path("pipe").display());
    assert_eq!(ws.call("read_file", json!({"path": "pipe"})), want);
    let edit = json!({"path": "pipe", "old_text": "a", "new_text": "b"});
    assert_eq!(ws.call("edit_file", edit), want);
    std::os::unix::net::UnixListener::bind(ws.path("sock")).unwrap();
    let out = ws.call("read_file", json!({"path": "sock"}));
    assert!(out.starts_with("Error: ") && out.contains("sock"), "{out}");
    let out = ws.call("read_file", json!({"path": "."}));
    assert!(out.starts_with("Error: ") && out.contains("Is a directory"), "{out}");
}

#[test]
fn an_absolute_symlink_that_stays_inside_still_works() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("a")).unwrap();
    std::fs::write(ws.path("a/file.txt"), "inside\n").unwrap();
    std::os::unix::fs::symlink(ws.path("a"), ws.path("abs")).unwrap();
    assert_eq!(ws.call("read_file", json!({"path": "abs/file.txt"})), "inside");
    let written = ws.call("write_file", json!({"path": "abs/new/x.txt", "content": "hi"}));
    assert_eq!(written, "Wrote 2 bytes");
    assert_eq!(std::fs::read_to_string(ws.path("a/new/x.txt")).unwrap(), "hi");
}

#[test]
fn a_directory_swapped_for_a_symlink_never_leads_outside() {
    // A task swaps a directory for a symlink to outside, again and again, while the file
    // tools run: checking a path and then opening it by name would leak now and then.
    let ws = Workspace::new();
    let outside = ws.root.with_extension("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("f.txt"), "OUTSIDE\n").unwrap();
    std::fs::create_dir_all(ws.path("d")).unwrap();
    std::fs::write(ws.path("d/f.txt"), "inside\n").unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let swapper = {
        let (root, outside, stop) = (ws.root.clone(), outside.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = std::fs::rename(root.join("d"), root.join("d.real"));
                let _ = std::os::unix::fs::symlink(&outside, root.join("d"));
                let _ = std::fs::remove_file(root.join("d"));
                let _ = std::fs::rename(root.join("d.real"), root.join("d"));
            }
        })
    };
    let mut leaks = 0;
    for i in 0..20_000 {
        let read = ws.call("read_file", json!({"path": "d/f.txt"}));
        leaks += usize::from(read.contains("OUTSIDE"));
        if i % 50 == 0 {
            let write = json!({"path": "d/f.txt", "content": "inside\n"});
            ws.call("write_file", write);
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    assert_eq!(leaks, 0);
    assert_eq!(std::fs::read_to_string(outside.join("f.txt")).unwrap(), "OUTSIDE\n");
    std::fs::remove_dir_all(outside).unwrap();
}

#[test]
fn a_relative_workspace_refuses_every_path() {
    for p in ["x.txt", "/etc/hostname", "sub/x.txt"] {
        assert_eq!(
            bgagent::tools::safe_path(Path::new("sub"), p),
            Err(format!("Path escapes workspace: {p}"))
        );
    }
}

#[test]
fn production_bash_may_write_to_dev_null_and_the_lesson_may_not() {
    let ws = Workspace::new();
    let command = json!({"command": "echo hidden > /dev/null; echo shown"});
    assert_eq!(ws.call("bash", command.clone()), "shown");
    let lesson = ToolContext { extended: false, ..ws.ctx(&|| false) };
    assert_eq!(call(&lesson, "bash", &command).unwrap(), "Error: Dangerous command blocked");
}
