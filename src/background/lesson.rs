//! The lesson's words, in one place: what `run` and `check` answer, and how a task id is
//! drawn. The Rust manager, the Python package and the lesson's mirror all say them from here.

use crate::text::prefix;

/// `run`'s answer: `Background task {id} started: {command[:80]}`.
pub fn started_line(id: &str, command: &str) -> String {
    format!("Background task {id} started: {}", prefix(command, 80))
}

/// One task as `check` shows it: `[status] command[:60]`, then its result (or `(running)`
/// while there is none). `None`: no such task.
pub fn check_one(id: &str, task: Option<(&str, &str, Option<&str>)>) -> String {
    match task {
        None => unknown_task(id),
        Some((status, command, result)) => format!(
            "[{status}] {}\n{}",
            prefix(command, 60),
            result.filter(|r| !r.is_empty()).unwrap_or("(running)")
        ),
    }
}

/// What `check` and `kill` answer for an id no task has.
pub fn unknown_task(id: &str) -> String {
    format!("Error: Unknown task {id}")
}

/// What `kill` answers for a task that has ended.
pub fn not_running(id: &str, status: &str) -> String {
    format!("Error: Task {id} is not running ({status})")
}

/// What `check` says when there is no task.
pub const NO_TASKS: &str = "No background tasks.";

/// One task's line in `check`'s list.
pub fn check_line(id: &str, status: &str, command: &str) -> String {
    format!("{id}: [{status}] {}", prefix(command, 60))
}

/// Every task as `check` lists them, given `(id, status, command)` in start order.
pub fn check_all<'a>(tasks: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>) -> String {
    let lines: Vec<String> =
        tasks.into_iter().map(|(id, status, command)| check_line(id, status, command)).collect();
    if lines.is_empty() {
        NO_TASKS.to_string()
    } else {
        lines.join("\n")
    }
}

/// A fresh task id: 8 hex characters, as the lesson draws them (`uuid4().hex[:8]`).
pub fn new_id() -> String {
    let mut id = uuid::Uuid::new_v4().simple().to_string();
    id.truncate(8);
    id
}

/// A fresh id that `taken` does not know (a draw that names a known task draws again, so a
/// record is never overwritten).
pub fn new_id_avoiding(taken: impl Fn(&str) -> bool) -> String {
    loop {
        let id = new_id();
        if !taken(&id) {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lesson_texts() {
        let long = "x".repeat(100);
        assert_eq!(
            started_line("ab", &long),
            format!("Background task ab started: {}", &long[..80])
        );
        assert_eq!(check_one("zz", None), "Error: Unknown task zz");
        assert_eq!(check_one("a", Some(("running", "ls", None))), "[running] ls\n(running)");
        assert_eq!(
            check_one("a", Some(("completed", "ls", Some("")))),
            "[completed] ls\n(running)"
        );
        assert_eq!(
            check_one("a", Some(("completed", &long, Some("r")))),
            format!("[completed] {}\nr", &long[..60])
        );
        assert_eq!(check_all([]), "No background tasks.");
        assert_eq!(
            check_all([("a", "running", "ls"), ("b", "killed", "x")]),
            "a: [running] ls\nb: [killed] x"
        );
        let id = new_id();
        assert!(
            id.len() == 8 && id.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }
}
