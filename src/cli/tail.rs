//! The REPL's `/tail ID [N]`: the last N lines (20 if not given) of a task's output, while it
//! runs or after.

use crate::background::BackgroundManager;

/// Lines shown when N is not given.
const LINES: usize = 20;

pub const USAGE: &str = "usage: /tail ID [N]";

/// What `/tail` prints for the text after the command's name.
pub fn tail(manager: &BackgroundManager, arg: &str) -> String {
    let mut words = arg.split_whitespace();
    let Some(id) = words.next() else { return USAGE.to_string() };
    let lines = match words.next().map(str::parse::<usize>) {
        None => LINES,
        Some(Ok(n)) if words.next().is_none() => n,
        Some(_) => return USAGE.to_string(),
    };
    match manager.tail(id, lines) {
        Err(message) => message,
        Ok((text, _)) if text.is_empty() => "(no output yet)".to_string(),
        Ok((text, _)) => text.strip_suffix('\n').unwrap_or(&text).to_string(),
    }
}
