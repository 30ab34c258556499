//! The lesson's answers to tool arguments that are missing or of another type.
//!
//! The lesson's handlers are Python: `kw["command"]` raises KeyError for a missing key, and a
//! number where a string belongs raises a TypeError somewhere in its code; its loop answers
//! `Error: {exception}`. In the lesson's mode the built-in tools give the same texts (the
//! Python type names are those `json.loads` gives a tool's input).

use super::bash::Guard;
use super::files;
use super::path::safe_path;
use serde_json::Value;
use std::path::Path;

/// The keys each lesson handler reads with `kw[key]`, in the order it reads them.
fn required(tool: &str) -> &'static [&'static str] {
    match tool {
        "bash" | "background_run" => &["command"],
        "read_file" => &["path"],
        "write_file" => &["path", "content"],
        "edit_file" => &["path", "old_text", "new_text"],
        _ => &[],
    }
}

/// Python's name for the type of a JSON value.
fn py_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Python's truth value of a JSON value.
fn py_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// The lesson's whole answer to this call when an argument is missing or is not what the
/// lesson's code takes; `None` when the arguments are ordinary (the call then runs as usual).
pub fn answer(root: &Path, tool: &str, input: &Value) -> Option<String> {
    if let Some(key) = required(tool).iter().find(|k| input.get(**k).is_none()) {
        return Some(format!("Error: '{key}'"));
    }
    let arg = |key: &str| input.get(key).unwrap_or(&Value::Null);
    let text = |key: &str| arg(key).as_str();
    let kind = |key: &str| py_type(arg(key));
    match tool {
        "bash" | "background_run" if text("command").is_none() => Some(match arg("command") {
            Value::Array(_) | Value::Object(_) => {
                format!("Error: {tool} takes a string command, not a {}", kind("command"))
            }
            // The blocklist test (`d in command`) or the answer's `command[:80]` fails first.
            _ if tool == "bash" => {
                format!("Error: argument of type '{}' is not iterable", kind("command"))
            }
            _ => format!("Error: '{}' object is not subscriptable", kind("command")),
        }),
        "read_file" | "write_file" | "edit_file" if text("path").is_none() => Some(format!(
            "Error: unsupported operand type(s) for /: 'PosixPath' and '{}'",
            kind("path")
        )),
        "read_file" => read_limit(root, text("path")?, input.get("limit")?),
        "write_file" if text("content").is_none() => Some(match safe_path(root, text("path")?) {
            Err(e) => format!("Error: {e}"),
            Ok(_) => format!("Error: data must be str, not {}", kind("content")),
        }),
        "edit_file" if text("old_text").is_none() || text("new_text").is_none() => {
            let path = text("path")?;
            let whole = match files::whole_text(root, path, Guard::Lesson) {
                Ok(whole) => whole,
                Err(e) => return Some(format!("Error: {e}")),
            };
            Some(match text("old_text") {
                None => format!(
                    "Error: 'in <string>' requires string as left operand, not {}",
                    kind("old_text")
                ),
                Some(old) if !whole.contains(old) => format!("Error: Text not found in {path}"),
                Some(_) => {
                    format!("Error: replace() argument 2 must be str, not {}", kind("new_text"))
                }
            })
        }
        "check_background" => match input.get("task_id") {
            Some(id @ (Value::Array(_) | Value::Object(_))) if py_truthy(id) => {
                Some(format!("Error: unhashable type: '{}'", py_type(id)))
            }
            Some(Value::Bool(true)) => Some("Error: Unknown task True".to_string()),
            Some(id @ Value::Number(_)) if py_truthy(id) => {
                Some(format!("Error: Unknown task {id}"))
            }
            _ => None,
        },
        _ => None,
    }
}

/// read_file's `limit` when it is not an integer: the lesson's `if limit and limit <
/// len(lines)` and `lines[:limit]`, after the file has been read.
fn read_limit(root: &Path, path: &str, limit: &Value) -> Option<String> {
    if limit.is_null() || limit.is_i64() || limit.is_u64() {
        return None; // the usual path
    }
    let effective = match limit {
        Value::Bool(b) => b.then_some(1),
        _ if !py_truthy(limit) => None,
        _ => {
            let lines = match files::count_lines(root, path, Guard::Lesson) {
                Ok(lines) => lines as f64,
                Err(e) => return Some(format!("Error: {e}")),
            };
            return Some(match limit {
                Value::Number(n) if n.as_f64().unwrap_or(0.0) >= lines => {
                    files::read(root, path, None, Guard::Lesson)
                }
                Value::Number(_) => {
                    "Error: slice indices must be integers or None or have an __index__ method"
                        .to_string()
                }
                other => format!(
                    "Error: '<' not supported between instances of '{}' and 'int'",
                    py_type(other)
                ),
            });
        }
    };
    Some(files::read(root, path, effective, Guard::Lesson))
}
