//! A trace written by an earlier version of bgagent still draws the same picture: a golden
//! schema-1 trace (a production run with six background tasks, two check_background calls
//! that saw results before they were injected, waits that ended on results and on max_wait, a
//! result that waited in the queue while the loop was idle, and a task killed when the session
//! ended) is rendered, and a summary of the page is compared with the one its version drew.

use bgagent::trace::view::{html, Run};
use serde_json::Value;
use std::path::PathBuf;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// The pieces of `s` between each `open` and the next `close`.
fn all_between<'a>(s: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    let mut found = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find(open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(close) else { break };
        found.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    found
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> &'a str {
    all_between(s, open, close).first().copied().unwrap_or_default()
}

/// An attribute's value in a tag's text (`name='value'`).
fn attribute<'a>(tag: &'a str, name: &str) -> &'a str {
    between(tag, &format!(" {name}='"), "'")
}

/// What the page says, one fact a line, without its layout: the title; the loop's stretches
/// (kind by colour, step, label and duration); each task lane (id, command, facts, the arrow
/// to the drain and its style, the notes: "→ call N", "waited ...", "seen twice", "still
/// queued"); and each step (call, turn, stop reason, what it was sent, the tools it asked for).
fn summary(page: &str) -> String {
    let mut out = vec![format!("title: {}", between(page, "<h1>", "</h1>"))];
    if let Some(dropped) = all_between(page, "<p class='dropped'>", "</p>").first() {
        out.push(format!("dropped: {dropped}"));
    }
    let picture = between(page, "<div class='picture'>", "</div>");
    let loop_lane = between(picture, "<g data-lane='loop'>", "</g>");
    for rect in all_between(loop_lane, "<rect ", "</rect>") {
        let kind = match attribute(rect, "fill") {
            "#4c78a8" => "call",
            "#f58518" => "tool",
            "url(#stripes)" => "wait",
            "#f0f3f6" => "idle",
            other => other,
        };
        let step = attribute(rect, "data-step");
        out.push(format!("loop: {kind} step={step} {}", between(rect, "<title>", "</title>")));
    }
    for turn in all_between(loop_lane, "<text x=", "</text>").iter().skip(1) {
        out.push(format!("loop text: {}", turn.split_once('>').map_or("", |(_, t)| t)));
    }
    for lane in all_between(picture, "<g data-task-id='", "</g>") {
        let id = lane.split('\'').next().unwrap_or_default();
        let command = between(lane, "<title>", "</title>");
        let facts = between(lane, "fill='#24292f'>", "</text>");
        out.push(format!("task {id}: {command} | {facts}"));
        let arrow = all_between(lane, "<path ", "/>");
        if let Some(path) = arrow.first() {
            let dashed = if path.contains("stroke-dasharray") { ", dashed" } else { "" };
            out.push(format!("task {id} arrow: {}{dashed}", attribute(path, "stroke")));
        }
        if let Some(note) = all_between(lane, "class='note'>", "</text>").first() {
            let tag = lane[..lane.find("class='note'").unwrap()].rsplit("<text").next().unwrap();
            out.push(format!("task {id} notes ({}): {note}", attribute(tag, "fill")));
        }
    }
    for item in all_between(page, "<li data-step='", "</li>") {
        out.push(format!("step {}", item.replacen("'>", ": ", 1)));
    }
    let steps: Value = serde_json::from_str(between(
        page,
        "<script id='step-data' type='application/json'>",
        "</script>",
    ))
    .expect("the step data is JSON");
    for step in steps.as_array().expect("a list of steps") {
        let sent: Vec<String> = step["sent"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| format!("{}={:?}", m[0].as_str().unwrap(), m[1].as_str().unwrap()))
            .collect();
        let tools: Vec<String> = step["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                format!("{}({}) -> {:?}", t[0].as_str().unwrap(), t[1], t[2].as_str().unwrap())
            })
            .collect();
        out.push(format!(
            "call {} turn {} {}: reply {:?}; sent [{}]; tools [{}]",
            step["call"],
            step["turn"],
            step["stop_reason"].as_str().unwrap(),
            step["reply"].as_str().unwrap(),
            sent.join(", "),
            tools.join(", ")
        ));
    }
    out.join("\n") + "\n"
}

#[test]
fn a_schema_1_trace_draws_the_page_it_drew_when_it_was_written() {
    let bytes = std::fs::read(data("trace-v1.jsonl")).unwrap();
    let run = Run::from_bytes(&bytes);
    assert!(!run.cut_last_line);
    let got = summary(&html(&run));
    let want = std::fs::read_to_string(data("trace-v1.summary.txt")).unwrap();
    assert_eq!(got, want, "the page of tests/data/trace-v1.jsonl changed:\n{got}");
    // The marks this trace is kept for are there.
    assert_eq!(got.matches("seen twice: by check_background, then injected").count(), 3);
    assert!(got.contains("in the queue while the loop was idle"));
    assert!(got.contains("still queued when the trace ends"));
    assert!(
        got.contains("waited for tasks: max_wait") && got.contains("waited for tasks: results")
    );
}

/// The golden trace as version 2 writes it: the header says 2, each check_background result
/// names the tasks it showed as ended, and its text says nothing a reader could use.
fn as_version_2(v1: &str) -> String {
    let mut lines = Vec::new();
    for line in v1.lines() {
        let mut e: Value = serde_json::from_str(line).unwrap();
        if e["event"] == "header" {
            e["version"] = 2.into();
        }
        if e["event"] == "tool_result" && e["name"] == "check_background" {
            let output = e["output"].as_str().unwrap();
            let ended: Vec<&str> = output
                .lines()
                .filter(|l| !l.contains("[running]"))
                .map(|l| l.split(": [").next().unwrap())
                .collect();
            e["ended_tasks"] = ended.into();
            e["output"] = "(elided)".into();
        }
        lines.push(e.to_string());
    }
    lines.join("\n")
}

/// The lanes, their arrows and notes: what the tasks' lines and the joins draw.
fn lanes(summary: &str) -> Vec<&str> {
    summary.lines().filter(|l| l.starts_with("task ")).collect()
}

#[test]
fn a_version_2_trace_names_the_ended_tasks_and_draws_the_same_lanes() {
    let v1 = std::fs::read_to_string(data("trace-v1.jsonl")).unwrap();
    let want = std::fs::read_to_string(data("trace-v1.summary.txt")).unwrap();
    let v2 = as_version_2(&v1);
    assert!(!v2.contains("[completed]"), "no answer's text is left to read");
    let got = summary(&html(&Run::from_lines(v2.lines())));
    assert_eq!(lanes(&got), lanes(&want));
    assert_eq!(got.matches("seen twice").count(), 3);
    // Read as version 1 (a header that says so), the same lines mark nothing: a version 1
    // reader finds the tasks in the text alone.
    let as_v1 = v2.replacen("\"version\":2", "\"version\":1", 1);
    assert_ne!(as_v1, v2);
    let got = summary(&html(&Run::from_lines(as_v1.lines())));
    assert_eq!(got.matches("seen twice").count(), 0);
}
