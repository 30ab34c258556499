//! Production's words, beside the lesson's ([`super::lesson`]): what is said about a task that
//! waits for a slot under the manager's cap, and about one that cannot be forgotten yet. The
//! lesson has no cap and keeps every task, so it never says these; every face (the Rust
//! manager, the Python package, the model's tools) says them from here.

use super::record::{FinishedSince, Notification};
use crate::text::prefix;

/// The result of a task taken out of the queue (`kill`, `shutdown`) before it got a slot.
pub const NEVER_STARTED: &str = "Error: Killed (never started)";

/// `run`'s answer for a task that waits for a slot: where it is in line and how many run,
/// so that a model does not start it again.
pub fn queued_line(id: &str, place: usize, running: usize, command: &str) -> String {
    format!(
        "Background task {id} queued ({} in line, {running} running): {}",
        ordinal(place),
        prefix(command, 80)
    )
}

/// What `check` shows in place of a result while a task waits for a slot.
pub fn waiting_result(place: usize, running: usize) -> String {
    format!("(queued: {} in line, {running} running)", ordinal(place))
}

/// What `start_now` answers for a task that does not wait for a slot.
pub fn not_queued(id: &str, status: &str) -> String {
    format!("Error: Task {id} is not queued ({status})")
}

/// What `forget` answers for a task that runs or waits for a slot.
pub fn cannot_forget(id: &str, status: &str) -> String {
    format!("Error: Task {id} is {status}: only a finished task can be forgotten (kill it first)")
}

/// What `forget` answers for a finished task whose notification is still queued.
pub fn not_delivered(id: &str) -> String {
    format!(
        "Error: Task {id} has a notification not yet delivered: drain it before forgetting the task"
    )
}

/// Production's line for a finished task in `<background-results>`: its status, exit code,
/// duration and log, then the head of its output (the notification's preview) and, if the
/// preview did not reach it, the tail (where a test run puts its summary).
pub fn report(note: &Notification) -> String {
    let details = &note.details;
    let mut facts = vec![match note.exit_code {
        Some(code) => format!("exit {code}"),
        None => "no exit code".to_string(),
    }];
    facts.push(format!("{:.1}s", details.duration.as_secs_f64()));
    if let Some(path) = &details.log_path {
        facts.push(format!("log {}", path.display()));
    }
    let mut text =
        format!("[bg:{}] {} ({}): {}", note.task_id, note.status, facts.join(", "), note.result);
    if !details.tail.is_empty() {
        text.push_str("\n[... the output's end:]\n");
        text.push_str(&details.tail);
    }
    text
}

/// `wait_background`'s answer to a cursor: production's report of each task that finished
/// after it, then the cursor to pass next and what still runs or waits.
pub fn finished_since(since: &FinishedSince, asked: u64) -> String {
    let mut lines: Vec<String> = since.notes.iter().map(report).collect();
    if since.notes.is_empty() {
        lines.push(format!("No task finished since cursor {asked}."));
    }
    if since.missing > 0 {
        let n = since.missing;
        lines.push(format!("({n} tasks that finished since cursor {asked} are no longer kept.)"));
    }
    let (running, waiting) = (since.running, since.waiting);
    lines.push(format!("[cursor: {}; {running} running, {waiting} queued]", since.cursor));
    lines.join("\n")
}

/// `wait_background`'s answer to a cursor past every task that finished here.
pub fn cursor_ahead(asked: u64, finished: u64) -> String {
    format!(
        "Error: cursor {asked} is past the {finished} tasks finished here (from another run?): \
         pass 0 to get every task kept"
    )
}

/// `42s`, `3m05s`, `2h07m`: how long a task has run, as a list shows it.
pub fn elapsed(took: std::time::Duration) -> String {
    let seconds = took.as_secs();
    match seconds {
        0..=59 => format!("{seconds}s"),
        60..=3599 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h{:02}m", seconds / 3600, seconds / 60 % 60),
    }
}

/// 1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st.
pub fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn production_texts() {
        let long = "y".repeat(100);
        assert_eq!(
            queued_line("ab", 3, 4, &long),
            format!("Background task ab queued (3rd in line, 4 running): {}", &long[..80])
        );
        let took = [0, 59, 60, 185, 3599, 3600, 7620].map(|s| elapsed(Duration::from_secs(s)));
        assert_eq!(took, ["0s", "59s", "1m00s", "3m05s", "59m59s", "1h00m", "2h07m"]);
        assert_eq!(waiting_result(1, 2), "(queued: 1st in line, 2 running)");
        assert_eq!(not_queued("ab", "running"), "Error: Task ab is not queued (running)");
        assert_eq!(
            cannot_forget("ab", "queued"),
            "Error: Task ab is queued: only a finished task can be forgotten (kill it first)"
        );
        assert!(not_delivered("ab").starts_with("Error: Task ab has a notification not yet"));
        let got: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111].map(ordinal).into();
        assert_eq!(
            got,
            [
                "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd",
                "101st", "111th"
            ]
        );
    }
}
