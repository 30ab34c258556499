//! The trace's lines as one type: the writer serialises [`Line`]s, the view deserialises them.
//!
//! Reading is lenient, as a trace may come from another version or a hand: an unknown event
//! is [`Event::Unknown`], unknown fields are ignored, and a field that is missing or of the
//! wrong type takes its default (no number, an empty text) rather than losing the line.

use crate::agent::WaitEnd;
use crate::tools::{BackgroundRun, CheckBackground, Tool};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// One line: its time, in seconds since the trace began, and its event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Line {
    #[serde(default, deserialize_with = "lax")]
    pub t: f64,
    #[serde(flatten)]
    pub event: Event,
}

impl Line {
    /// A JSON object read as a line. One whose `event` is not a text is an unknown event (a
    /// number would otherwise name a variant by its index).
    pub fn read(value: &Value) -> Line {
        let line = value["event"].is_string().then(|| Line::deserialize(value).ok()).flatten();
        line.unwrap_or_else(|| Line {
            t: value["t"].as_f64().unwrap_or_default(),
            event: Event::Unknown,
        })
    }
}

/// Every kind of line a trace holds (docs/trace.md says when each is written). A text that
/// was cut has its full length in characters beside it (`text` and `text_length`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Header(Header),
    LinesDropped {
        #[serde(default, deserialize_with = "lax")]
        lines: u64,
        #[serde(default, deserialize_with = "lax")]
        task_progress: u64,
        #[serde(default, deserialize_with = "lax")]
        limit: u64,
    },
    UserInput {
        #[serde(default, deserialize_with = "lax")]
        turn: u64,
        #[serde(default, deserialize_with = "lax")]
        text: String,
        #[serde(default, deserialize_with = "lax", skip_serializing_if = "Option::is_none")]
        text_length: Option<u64>,
    },
    ModelCall {
        #[serde(default, deserialize_with = "lax")]
        turn: u64,
        #[serde(default, deserialize_with = "lax")]
        call: Option<u64>,
    },
    ModelReply {
        #[serde(default, deserialize_with = "lax")]
        turn: u64,
        #[serde(default, deserialize_with = "lax")]
        call: u64,
        #[serde(default, deserialize_with = "lax")]
        stop_reason: Option<String>,
        #[serde(default, deserialize_with = "lax")]
        duration: f64,
        #[serde(default, deserialize_with = "lax", skip_serializing_if = "Option::is_none")]
        usage: Option<Value>,
        #[serde(default, deserialize_with = "lax")]
        text: String,
        #[serde(default, deserialize_with = "lax", skip_serializing_if = "Option::is_none")]
        text_length: Option<u64>,
    },
    ToolCall {
        #[serde(default, deserialize_with = "lax")]
        turn: u64,
        #[serde(default, deserialize_with = "lax")]
        call: u64,
        #[serde(default, deserialize_with = "lax")]
        tool_use_id: String,
        #[serde(default, deserialize_with = "lax")]
        name: String,
        /// The task the call's input names (`task_id`), if any. Version 2.
        #[serde(default, deserialize_with = "lax", skip_serializing_if = "Option::is_none")]
        task_id: Option<String>,
        /// The input as JSON text.
        #[serde(default, deserialize_with = "lax")]
        input: String,
        #[serde(default, deserialize_with = "lax", skip_serializing_if = "Option::is_none")]
        input_length: Option<u64>,
    },
    ToolResult {
        #[serde(default, deserialize_with = "lax")]
        turn: u64,
        #[serde(default, deserialize_with = "lax")]
        call: u64,
        #[serde(default, deserialize_with = "lax")]
        tool_use_id: String,
        #[serde(default, deserialize_with = "lax")]
        name: String,
        #[serde(default, deserialize_with = "lax")]
        duration: f64,
        /// background_run: the task it started.
        #[serde(default, deserialize_with = "lax", skip_serializing_if = "Option::is_none")]
        task_id: Option<String>,
        /// check_background's list: the tasks it showed as no longer running. Version 2 (a
        /// version 1 reader finds them in `output`: [`TasksInAnswer`]).
        #[serde(default, deserialize_with = "lax_ids", skip_serializing_if = "Vec::is_empty")]
        ended_tasks: Vec<String>,
        #[serde(default, deserialize_with = "lax")]
        output: String,
        #[serde(default, deserialize_with = "lax", skip_serializing_if = "Option::is_none")]
        output_length: Option<u64>,
    },
    TaskQueued {
        #[serde(default, deserialize_with = "lax")]
        task_id: String,
        #[serde(default, deserialize_with = "lax")]
        command: String,
        #[serde(default, deserialize_with = "lax", skip_serializing_if = "Option::is_none")]
        command_length: Option<u64>,
        /// It waits for a slot under the manager's cap, this far back in line (1 = next).
        #[serde(default, deserialize_with = "lax", skip_serializing_if = "Option::is_none")]
        place: Option<u64>,
    },
    TaskStarted {
        #[serde(default, deserialize_with = "lax")]
        task_id: String,
        #[serde(default, deserialize_with = "lax")]
        pid: u32,
        /// Every task leads its own process group: equal to `pid`.
        #[serde(default, deserialize_with = "lax")]
        pgid: u32,
        /// Seconds it waited for a slot, if it had to.
        #[serde(default, deserialize_with = "lax", skip_serializing_if = "Option::is_none")]
        waited: Option<f64>,
    },
    TaskProgress {
        #[serde(default, deserialize_with = "lax")]
        task_id: String,
        #[serde(default, deserialize_with = "lax")]
        stdout_bytes: u64,
        #[serde(default, deserialize_with = "lax")]
        stderr_bytes: u64,
    },
    TaskFinished {
        #[serde(default, deserialize_with = "lax")]
        task_id: String,
        #[serde(default, deserialize_with = "lax")]
        status: String,
        #[serde(default, deserialize_with = "lax")]
        exit_code: Option<i64>,
        /// What the manager knew of the task when it ended (when the trace follows it).
        #[serde(flatten)]
        record: Option<Ended>,
    },
    TaskDrained {
        #[serde(default, deserialize_with = "lax")]
        task_id: String,
    },
    /// `call`: the model call the notifications precede.
    Drain {
        #[serde(default, deserialize_with = "lax")]
        turn: u64,
        #[serde(default, deserialize_with = "lax")]
        call: Option<u64>,
        #[serde(default, deserialize_with = "lax_ids")]
        task_ids: Vec<String>,
    },
    Inject {
        #[serde(default, deserialize_with = "lax")]
        turn: u64,
        #[serde(default, deserialize_with = "lax")]
        call: Option<u64>,
        #[serde(default, deserialize_with = "lax_ids")]
        task_ids: Vec<String>,
        #[serde(default, deserialize_with = "lax")]
        text: String,
        #[serde(default, deserialize_with = "lax", skip_serializing_if = "Option::is_none")]
        text_length: Option<u64>,
    },
    WaitStart {
        #[serde(default, deserialize_with = "lax")]
        turn: u64,
        #[serde(default, deserialize_with = "lax")]
        running: u64,
        #[serde(default, deserialize_with = "lax")]
        max_wait: f64,
    },
    WaitEnd {
        #[serde(default, deserialize_with = "lax")]
        turn: u64,
        #[serde(default, deserialize_with = "lax")]
        why: Option<WaitEnd>,
    },
    TurnEnd {
        #[serde(default, deserialize_with = "lax")]
        turn: u64,
        #[serde(default, deserialize_with = "lax")]
        outcome: Option<Outcome>,
        /// The error's message, for `outcome: error`.
        #[serde(default, deserialize_with = "lax", skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// An event this version does not know (never written).
    #[serde(other, skip_serializing)]
    Unknown,
}

/// The first line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Header {
    #[serde(default, deserialize_with = "lax")]
    pub schema: String,
    /// 1 when missing: a trace before version 2 is read as version 1.
    #[serde(default = "version_1", deserialize_with = "lax_version")]
    pub version: u64,
    /// The bgagent version that wrote it.
    #[serde(default, deserialize_with = "lax")]
    pub bgagent: String,
    /// "mirror", "production" or "manager".
    #[serde(default, deserialize_with = "lax")]
    pub mode: Option<String>,
    #[serde(default, deserialize_with = "lax")]
    pub model: Option<String>,
    #[serde(default, deserialize_with = "lax")]
    pub workdir: String,
    #[serde(default, deserialize_with = "lax")]
    pub unix_time: f64,
}

/// What a finished task's line says of it when the manager still knew it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ended {
    #[serde(default, deserialize_with = "lax")]
    pub duration: f64,
    #[serde(default, deserialize_with = "lax")]
    pub stdout_bytes: u64,
    #[serde(default, deserialize_with = "lax")]
    pub stderr_bytes: u64,
    #[serde(default, deserialize_with = "lax")]
    pub log_path: Option<String>,
    #[serde(default, deserialize_with = "lax")]
    pub result: String,
    #[serde(default, deserialize_with = "lax", skip_serializing_if = "Option::is_none")]
    pub result_length: Option<u64>,
}

/// How a turn ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Done,
    Interrupted,
    Error,
}

fn version_1() -> u64 {
    1
}

/// `T`, or its default when the value is not one.
fn lax<'de, D: Deserializer<'de>, T: DeserializeOwned + Default>(d: D) -> Result<T, D::Error> {
    Ok(T::deserialize(Value::deserialize(d)?).unwrap_or_default())
}

/// The texts of a list (other items, and a value that is no list, are left out).
fn lax_ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let value = Value::deserialize(d)?;
    let items = value.as_array().into_iter().flatten();
    Ok(items.filter_map(|v| v.as_str().map(str::to_string)).collect())
}

fn lax_version<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(Value::deserialize(d)?.as_u64().unwrap_or(1))
}

/// The tasks a tool's answer names, read from its text: the one the loop hands the trace (the
/// lesson's tools answer in text only). The one place a trace's task ids are found in text:
/// the writer fills `task_id` and `ended_tasks` with it, and a version 1 reader, whose lines
/// have no `ended_tasks`, finds them with it.
#[derive(Debug, Default, PartialEq)]
pub struct TasksInAnswer {
    /// background_run: `Background task {id} started: ...`.
    pub started: Option<String>,
    /// check_background's list: each of its lines is `{id}: [{status}] {command}`; those not
    /// `[running]` whose id `is_task`. Each `: [` in a line is tried as the end of an id (an
    /// id may hold one), so the cost follows the answer's length, not the number of tasks.
    pub ended: Vec<String>,
}

impl TasksInAnswer {
    pub fn read(name: &str, output: &str, is_task: impl Fn(&str) -> bool) -> TasksInAnswer {
        let mut found = TasksInAnswer::default();
        match name {
            BackgroundRun::NAME => {
                found.started = output
                    .strip_prefix("Background task ")
                    .and_then(|rest| rest.split(' ').next())
                    .map(str::to_string);
            }
            CheckBackground::NAME => {
                for line in output.lines().filter(|l| !l.contains("[running]")) {
                    for (end, _) in line.match_indices(": [") {
                        if is_task(&line[..end]) {
                            found.ended.push(line[..end].to_string());
                        }
                    }
                }
            }
            _ => {}
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(value: Value) -> Line {
        Line::read(&value)
    }

    #[test]
    fn unknown_events_and_fields_and_mistyped_fields_are_tolerated() {
        let line = read(json!({"t": 1.5, "event": "from_the_future", "x": 1}));
        assert_eq!(line, Line { t: 1.5, event: Event::Unknown });
        for event in [json!(7), json!(null), json!(["header"])] {
            assert_eq!(
                read(json!({"t": 2, "event": event})),
                Line { t: 2.0, event: Event::Unknown }
            );
        }
        let line = read(json!({"t": "soon", "event": "model_call", "call": "x", "new": true}));
        assert_eq!(line, Line { t: 0.0, event: Event::ModelCall { turn: 0, call: None } });
        let line = read(json!({"event": "drain", "call": 3, "task_ids": ["a", 1, "b"]}));
        assert_eq!(
            line.event,
            Event::Drain { turn: 0, call: Some(3), task_ids: vec!["a".into(), "b".into()] }
        );
        let line = read(json!({"event": "wait_end", "why": "bored"}));
        assert_eq!(line.event, Event::WaitEnd { turn: 0, why: None });
    }

    #[test]
    fn a_header_without_a_version_is_version_1() {
        let Event::Header(h) = read(json!({"event": "header", "mode": "mirror"})).event else {
            panic!("a header")
        };
        assert_eq!((h.version, h.mode.as_deref(), h.model), (1, Some("mirror"), None));
        let Event::Header(h) = read(json!({"event": "header", "version": 2})).event else {
            panic!("a header")
        };
        assert_eq!(h.version, 2);
    }

    /// The wait's end and the turn's outcome keep the words version 1 wrote.
    #[test]
    fn lines_serialise_to_the_words_and_fields_of_the_schema() {
        let line = |event| serde_json::to_value(Line { t: 0.5, event }).unwrap();
        let why = [WaitEnd::Results, WaitEnd::NothingRunning, WaitEnd::MaxWait];
        let words: Vec<Value> =
            why.map(|why| line(Event::WaitEnd { turn: 1, why: Some(why) })["why"].clone()).into();
        assert_eq!(words, [json!("results"), json!("nothing running"), json!("max_wait")]);
        let end = line(Event::TurnEnd { turn: 2, outcome: Some(Outcome::Error), message: None });
        assert_eq!(end, json!({"t": 0.5, "event": "turn_end", "turn": 2, "outcome": "error"}));
        let finished = Event::TaskFinished {
            task_id: "a".into(),
            status: "completed".into(),
            exit_code: None,
            record: None,
        };
        assert_eq!(
            line(finished),
            json!({"t": 0.5, "event": "task_finished", "task_id": "a", "status": "completed",
                   "exit_code": null})
        );
        // Read back, every event is the one written.
        let events = [
            Event::Header(Header {
                version: 2,
                mode: Some("production".into()),
                ..Header::default()
            }),
            Event::ToolResult {
                turn: 1,
                call: 2,
                tool_use_id: "t".into(),
                name: "check_background".into(),
                duration: 0.25,
                task_id: None,
                ended_tasks: vec!["a".into()],
                output: "a: [completed] true".into(),
                output_length: None,
            },
            Event::TaskFinished {
                task_id: "a".into(),
                status: "killed".into(),
                exit_code: Some(-9),
                record: Some(Ended { log_path: None, result: "x".into(), ..Ended::default() }),
            },
            Event::WaitEnd { turn: 1, why: Some(WaitEnd::NothingRunning) },
        ];
        for event in events {
            let written = serde_json::to_string(&Line { t: 1.0, event: event.clone() }).unwrap();
            let value: Value = serde_json::from_str(&written).unwrap();
            assert_eq!(Line::read(&value).event, event, "{written}");
        }
    }

    #[test]
    fn task_ids_are_found_in_the_answers_of_background_run_and_check_background() {
        let any = |_: &str| true;
        let started = TasksInAnswer::read("background_run", "Background task ab12 started: x", any);
        assert_eq!(started.started.as_deref(), Some("ab12"));
        let refused =
            TasksInAnswer::read("background_run", "Error: Dangerous command blocked", any);
        assert_eq!(refused, TasksInAnswer::default());
        let known = |id: &str| ["a", "b: [c", "d"].contains(&id);
        let listing = "a: [completed] true\nb: [c: [error] x\nd: [running] sleep 1\nz: [killed] y";
        let check = TasksInAnswer::read("check_background", listing, known);
        assert_eq!(check.ended, ["a", "b: [c"]);
        assert_eq!(TasksInAnswer::read("bash", listing, any), TasksInAnswer::default());
    }
}
