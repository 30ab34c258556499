//! The `bgagent` binary, run as a user runs it.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

fn bgagent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bgagent"))
}

#[test]
fn prints_one_line_per_task_in_completion_order() {
    let out = bgagent().args(["sleep 0.5; echo slow", "echo fast"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("Background task ")
            && lines[0].ends_with(" started: sleep 0.5; echo slow")
    );
    assert!(
        lines[2].starts_with("[bg:") && lines[2].ends_with("] completed (exit 0): fast"),
        "{text}"
    );
    assert!(lines[3].ends_with("] completed (exit 0): slow"), "{text}");
}

#[test]
fn a_failing_command_makes_the_exit_code_one() {
    let out = bgagent().args(["true", "exit 3"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("completed (exit 3): (no output)"));
}

#[test]
fn usage_help_and_version() {
    let none = bgagent().output().unwrap();
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).starts_with("usage: bgagent"));
    let help = bgagent().arg("--help").output().unwrap();
    assert!(help.status.success() && String::from_utf8_lossy(&help.stdout).contains("COMMAND"));
    let version = bgagent().arg("-V").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("bgagent {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn sigint_stops_the_tasks_before_exiting() {
    let mark = common::marker();
    let child = bgagent()
        .arg(format!("sh -c 'sleep 600; :' {mark}; :"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted, stopping 1 task(s)"));
    assert_eq!(common::processes_with(&mark), Vec::<String>::new());
}
