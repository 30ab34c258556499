//! Reading a tool's arguments, in the two modes.
//!
//! Production words a missing or mistyped argument itself (`Error: bash needs the argument
//! 'command'`). The lesson's handlers are Python: `kw["command"]` raises KeyError for a missing
//! key, and a number where a string belongs raises a TypeError somewhere in its code; its loop
//! answers `Error: {exception}`. In the lesson's mode each tool's parse gives those same texts
//! (the Python type names are those `json.loads` gives a tool's input). Where the lesson's
//! code would only fail after touching a file, the mistyped value is kept in the typed call
//! ([`Text::Other`]) and the tool's run fails at that point.

use serde_json::Value;

/// One call's input, and the mode it is read in.
pub struct Args<'a> {
    tool: &'static str,
    input: &'a Value,
    /// The lesson's mode: its Python texts for odd arguments.
    pub lesson: bool,
}

/// A string argument as the lesson's code meets it: a string, or (in the lesson's mode only)
/// a value of another Python type, named, that its code fails on later.
#[derive(Debug, Clone, PartialEq)]
pub enum Text {
    Str(String),
    Other(&'static str),
}

impl<'a> Args<'a> {
    pub fn new(tool: &'static str, input: &'a Value, lesson: bool) -> Self {
        Args { tool, input, lesson }
    }

    /// The argument as given (a JSON null included).
    pub fn raw(&self, key: &str) -> Option<&'a Value> {
        self.input.get(key)
    }

    /// Production's reading: a null argument is no argument.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.raw(key).filter(|v| !v.is_null())
    }

    /// The lesson's `kw[key]` for each key its handler reads, in the order it reads them:
    /// the first one missing is its KeyError. Nothing to check in production.
    pub fn lesson_require(&self, keys: &[&str]) -> Result<(), String> {
        match keys.iter().find(|k| self.lesson && self.raw(k).is_none()) {
            Some(key) => Err(format!("Error: '{key}'")),
            None => Ok(()),
        }
    }

    /// The lesson's `WORKDIR / path` with a path that is not a string.
    pub fn lesson_path(&self) -> Result<(), String> {
        match self.raw("path").filter(|p| self.lesson && !p.is_string()) {
            Some(p) => Err(format!(
                "Error: unsupported operand type(s) for /: 'PosixPath' and '{}'",
                py_type(p)
            )),
            None => Ok(()),
        }
    }

    /// The lesson's failure for a `command` that is not a string: a list or dict is named,
    /// any other type fails where the tool's code first uses it (`scalar` words that).
    pub fn lesson_command(&self, scalar: impl Fn(&str) -> String) -> Result<(), String> {
        match self.raw("command").filter(|c| self.lesson && !c.is_string()) {
            Some(c @ (Value::Array(_) | Value::Object(_))) => {
                Err(format!("Error: {} takes a string command, not a {}", self.tool, py_type(c)))
            }
            Some(c) => Err(scalar(py_type(c))),
            None => Ok(()),
        }
    }

    pub fn string(&self, key: &str) -> Result<String, String> {
        match self.get(key) {
            None => Err(format!("Error: {} needs the argument '{key}'", self.tool)),
            Some(v) => v.as_str().map(str::to_string).ok_or_else(|| self.mistyped(key, "a string")),
        }
    }

    /// A string in production; in the lesson's mode, whatever is there (it was required).
    pub fn text(&self, key: &str) -> Result<Text, String> {
        match self.raw(key) {
            Some(v) if self.lesson && !v.is_string() => Ok(Text::Other(py_type(v))),
            _ => self.string(key).map(Text::Str),
        }
    }

    pub fn optional_string(&self, key: &str) -> Result<Option<String>, String> {
        let text = |v: &Value| v.as_str().map(str::to_string);
        self.get(key).map(|v| text(v).ok_or_else(|| self.mistyped(key, "a string"))).transpose()
    }

    pub fn optional_int(&self, key: &str) -> Result<Option<i64>, String> {
        self.get(key)
            .map(|v| v.as_i64().ok_or_else(|| self.mistyped(key, "an integer")))
            .transpose()
    }

    pub fn optional_number(&self, key: &str) -> Result<Option<f64>, String> {
        self.get(key).map(|v| v.as_f64().ok_or_else(|| self.mistyped(key, "a number"))).transpose()
    }

    pub fn optional_bool(&self, key: &str) -> Result<Option<bool>, String> {
        self.get(key)
            .map(|v| v.as_bool().ok_or_else(|| self.mistyped(key, "true or false")))
            .transpose()
    }

    fn mistyped(&self, key: &str, want: &str) -> String {
        format!("Error: argument '{key}' of {} must be {want}", self.tool)
    }
}

/// Python's name for the type of a JSON value.
pub fn py_type(v: &Value) -> &'static str {
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
pub fn py_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}
