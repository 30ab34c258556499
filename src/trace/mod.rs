//! The trace of a run: one JSON object per line, in time order, that a viewer can join into a
//! picture ([`view`]). Schema `bgagent-trace` version [`VERSION`]: its lines are [`Line`]s, one
//! type the writer serialises and the view reads (docs/trace.md says when each is written).
//!
//! Events come from several threads (the loop, the task-event watcher); the one writer stamps
//! each with seconds since the start and never lets `t` go backwards. Long texts are cut to
//! [`TEXT_LIMIT`] characters with their full length recorded, and the API credentials are
//! redacted from every string of every line before it is serialised (so a key holding `"` or
//! `\` cannot slip through as its JSON escape), and before a text is cut.

pub mod event;
pub mod view;

use crate::agent::{LoopEvents, WaitEnd};
use crate::background::TaskEventKind;
use crate::background::{Awaiter, BackgroundManager, Notification, TaskEvent, Watcher};
use crate::llm::Response;
use crate::secrets::Redactor;
pub use event::{Event, Header, Line, Outcome, TasksInAnswer};
use serde_json::Value;
use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const SCHEMA: &str = "bgagent-trace";
/// 2: `tool_call` and `tool_result` name their tasks (`task_id`, `ended_tasks`).
pub const VERSION: u64 = 2;
/// Characters kept of any text (model text, tool input and output, injected block).
pub const TEXT_LIMIT: usize = 2000;
/// Lines a trace kept in memory holds at most, the header and the `lines_dropped` line
/// included. Past it the oldest lines go (`task_progress` lines first, which the picture does
/// not draw), so that a long session keeps its newest turns.
pub const MEMORY_LIMIT: usize = 100_000;

/// What the header line says about the run.
#[derive(Clone, Debug, Default)]
pub struct RunInfo {
    /// "mirror" (the lesson's loop) or "production".
    pub mode: String,
    pub model: String,
    pub workdir: PathBuf,
}

enum Out {
    File { file: BufWriter<File>, path: PathBuf, failed: bool },
    Memory(Kept),
}

/// A trace kept in memory: its header and its newest lines, at most `limit` lines in all.
/// Adding a line costs the same however long the session, and reading them all is linear.
struct Kept {
    limit: usize,
    header: Option<String>,
    /// Lines after the header, numbered in the order they came. Progress lines apart, so
    /// that the oldest one is at hand when one must go.
    progress: Chain,
    others: Chain,
    next: u64,
    /// Lines let go so far, and how many of them were `task_progress` lines.
    dropped: u64,
    dropped_progress: u64,
    /// The time of the newest line let go that was not a progress line (the header's while
    /// there is none): the picture before it is incomplete.
    dropped_until: f64,
}

impl Kept {
    fn new(limit: usize) -> Kept {
        Kept {
            // The header, and a line saying how many went: at least one more line beside them.
            limit: limit.max(3),
            header: None,
            progress: Chain::default(),
            others: Chain::default(),
            next: 0,
            dropped: 0,
            dropped_progress: 0,
            dropped_until: 0.0,
        }
    }

    fn push(&mut self, progress: bool, t: f64, line: &str) {
        if self.header.is_none() {
            self.header = Some(line.to_string());
            self.dropped_until = t;
            return;
        }
        let chain = if progress { &mut self.progress } else { &mut self.others };
        chain.push(self.next, t, line);
        self.next += 1;
        // Once a line went, the line that says so takes a place too.
        while 1 + usize::from(self.dropped > 0) + self.progress.len() + self.others.len()
            > self.limit
        {
            if self.progress.pop_front().is_some() {
                self.dropped_progress += 1;
            } else if let Some(t) = self.others.pop_front() {
                self.dropped_until = t;
            }
            self.dropped += 1;
        }
    }

    /// The header, the `lines_dropped` line if any went, then the kept lines in order.
    fn lines(&self) -> Vec<String> {
        let mut lines =
            Vec::with_capacity(self.limit.min(2 + self.others.len() + self.progress.len()));
        lines.extend(self.header.iter().cloned());
        if self.dropped > 0 {
            let event = Event::LinesDropped {
                lines: self.dropped,
                task_progress: self.dropped_progress,
                limit: self.limit as u64,
            };
            lines.push(
                serde_json::to_string(&Line { t: self.dropped_until, event }).unwrap_or_default(),
            );
        }
        let (mut p, mut o) = (self.progress.iter().peekable(), self.others.iter().peekable());
        loop {
            let next = match (p.peek(), o.peek()) {
                (Some(a), Some(b)) if a.0 < b.0 => p.next(),
                (_, Some(_)) => o.next(),
                (Some(_), None) => p.next(),
                (None, None) => break,
            };
            lines.extend(next.map(|(_, line)| line.to_string()));
        }
        lines
    }
}

/// Bytes of lines stored together in one block.
const BLOCK: usize = 64 * 1024;

/// Lines in the order they came, first in first out, stored back to back in large blocks.
/// One allocation per line, 100,000 of them living among the loop's own short-lived ones,
/// fragmented the heap so that every allocation of the process slowed down (a turn took
/// several times as long); a block that empties is reused.
#[derive(Default)]
struct Chain {
    blocks: VecDeque<String>,
    /// The number of `blocks[0]` since the chain began.
    first_block: u64,
    lines: VecDeque<Stored>,
    spare: Option<String>,
}

struct Stored {
    seq: u64,
    t: f64,
    /// The block's number, and where the line is in it.
    block: u64,
    start: usize,
    end: usize,
}

impl Chain {
    fn len(&self) -> usize {
        self.lines.len()
    }

    fn push(&mut self, seq: u64, t: f64, text: &str) {
        let fits = self.blocks.back().is_some_and(|b| b.capacity() - b.len() >= text.len());
        if !fits {
            let block = match self.spare.take() {
                Some(spare) if spare.capacity() >= text.len() => spare,
                _ => String::with_capacity(BLOCK.max(text.len())),
            };
            self.blocks.push_back(block);
        }
        let block = self.first_block + self.blocks.len() as u64 - 1;
        let last = self.blocks.back_mut().expect("a block was added above");
        let start = last.len();
        last.push_str(text);
        self.lines.push_back(Stored { seq, t, block, start, end: last.len() });
    }

    /// Lets the oldest line go; its time.
    fn pop_front(&mut self) -> Option<f64> {
        let line = self.lines.pop_front()?;
        // Blocks before the next line's (all of them, once no line is left) are done with.
        let keep_from = self.lines.front().map_or(u64::MAX, |next| next.block);
        while self.first_block < keep_from && !self.blocks.is_empty() {
            let mut done = self.blocks.pop_front().expect("not empty");
            self.first_block += 1;
            done.clear();
            self.spare = Some(done);
        }
        Some(line.t)
    }

    fn iter(&self) -> impl Iterator<Item = (u64, &str)> {
        self.lines.iter().map(|l| {
            let block = &self.blocks[(l.block - self.first_block) as usize];
            (l.seq, &block[l.start..l.end])
        })
    }
}

struct Writer {
    out: Out,
    /// The last `t` written: no line gets an earlier one.
    last: f64,
    turn: u64,
    /// Model calls so far (the next one is `calls + 1`).
    calls: u64,
    /// The tasks queued so far, as written: a check_background answer names these.
    tasks: HashSet<String>,
}

/// Writes a trace to a file, or keeps it in memory.
pub struct Tracer {
    writer: Mutex<Writer>,
    start: Instant,
}

impl Tracer {
    /// A trace written to `path` (created or truncated), starting with its header line.
    pub fn to_file(path: &Path, info: &RunInfo) -> std::io::Result<Arc<Tracer>> {
        let file = BufWriter::new(File::create(path)?);
        let out = Out::File { file, path: path.to_path_buf(), failed: false };
        Ok(Tracer::with(out, info))
    }

    /// A trace kept in memory (see [`Tracer::lines`]).
    pub fn in_memory(info: &RunInfo) -> Arc<Tracer> {
        Tracer::with(Out::Memory(Kept::new(MEMORY_LIMIT)), info)
    }

    fn with(out: Out, info: &RunInfo) -> Arc<Tracer> {
        let tracer = Arc::new(Tracer {
            writer: Mutex::new(Writer { out, last: 0.0, turn: 0, calls: 0, tasks: HashSet::new() }),
            start: Instant::now(),
        });
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        tracer.record(Event::Header(Header {
            schema: SCHEMA.into(),
            version: VERSION,
            bgagent: env!("CARGO_PKG_VERSION").into(),
            mode: Some(info.mode.clone()),
            model: Some(info.model.clone()),
            workdir: info.workdir.to_string_lossy().into(),
            unix_time: unix,
        }));
        tracer
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lines so far (a file trace gives none: read the file).
    pub fn lines(&self) -> Vec<String> {
        match &self.lock().out {
            Out::Memory(kept) => kept.lines(),
            Out::File { .. } => Vec::new(),
        }
    }

    /// The file, if the trace goes to one.
    pub fn path(&self) -> Option<PathBuf> {
        match &self.lock().out {
            Out::File { path, .. } => Some(path.clone()),
            Out::Memory(_) => None,
        }
    }

    /// Records `event` now.
    pub fn record(&self, event: Event) {
        self.record_at(event, Instant::now());
    }

    /// Records `event` as of `at` (or of the last line written, if that is later).
    pub fn record_at(&self, event: Event, at: Instant) {
        self.record_with(at, |_| event);
    }

    /// Records the event `make` makes from what was written before it, as of `at`.
    fn record_with(&self, at: Instant, make: impl FnOnce(&Writer) -> Event) {
        let mut w = self.lock();
        let event = make(&w);
        if let Event::TaskQueued { task_id, .. } = &event {
            w.tasks.insert(task_id.clone());
        }
        let t = at.saturating_duration_since(self.start).as_secs_f64().max(w.last);
        w.last = t;
        let stamp = (t * 1e6).round() / 1e6;
        let progress = matches!(event, Event::TaskProgress { .. });
        let mut line = serde_json::to_value(Line { t: stamp, event }).unwrap_or_default();
        // The API credentials never reach the trace: redacted in the values, not in the
        // serialised line, where a key's `"` or `\` would be escaped past the match.
        Redactor::from_env().redact_json(&mut line);
        let text = line.to_string();
        match &mut w.out {
            Out::Memory(kept) => kept.push(progress, stamp, &text),
            Out::File { file, path, failed } => {
                let written = writeln!(file, "{text}").and_then(|()| file.flush());
                if let Err(e) = written {
                    if !std::mem::replace(failed, true) {
                        eprintln!("bgagent: cannot write the trace to {}: {e}", path.display());
                    }
                }
            }
        }
    }

    /// A user's message starts turn N.
    fn user_input(&self, text: &str) {
        let turn = {
            let mut w = self.lock();
            w.turn += 1;
            w.turn
        };
        let (text, text_length) = cut(text);
        self.record(Event::UserInput { turn, text, text_length });
    }

    /// The turn ended (an error with its message).
    fn turn_end(&self, outcome: Outcome, message: Option<&str>) {
        let turn = self.lock().turn;
        let message = message.map(|m| Redactor::from_env().cut(m, TEXT_LIMIT).into_owned());
        self.record(Event::TurnEnd { turn, outcome: Some(outcome), message });
    }

    fn turn_and_call(&self) -> (u64, u64) {
        let w = self.lock();
        (w.turn, w.calls)
    }

    fn next_call(&self) -> (u64, u64) {
        let mut w = self.lock();
        w.calls += 1;
        (w.turn, w.calls)
    }

    /// One task event, with what the manager knows of the task (`tasks`) when it ends.
    pub fn task_event(&self, event: &TaskEvent, tasks: Option<&Awaiter>) {
        let task_id = event.task_id.clone();
        let line = match &event.kind {
            TaskEventKind::Queued { command, place } => {
                let (command, command_length) = cut(command);
                let place = place.map(|p| p as u64);
                Event::TaskQueued { task_id, command, command_length, place }
            }
            // Every task leads its own process group (and session): pgid = pid.
            &TaskEventKind::Started { pid, waited } => {
                Event::TaskStarted { task_id, pid, pgid: pid, waited }
            }
            &TaskEventKind::Progress { stdout_bytes, stderr_bytes } => {
                Event::TaskProgress { task_id, stdout_bytes, stderr_bytes }
            }
            TaskEventKind::Finished { status, exit_code } => {
                let record = tasks.and_then(|t| t.record(&task_id)).and_then(|record| {
                    let finished = record.finished()?;
                    let (result, result_length) = cut(&finished.result);
                    let o = &finished.output;
                    Some(event::Ended {
                        duration: record.elapsed().as_secs_f64(),
                        stdout_bytes: o.stdout_bytes,
                        stderr_bytes: o.stderr_bytes,
                        log_path: o.log_path.as_ref().map(|p| p.to_string_lossy().into_owned()),
                        result,
                        result_length,
                    })
                });
                Event::TaskFinished {
                    task_id,
                    status: status.as_str().into(),
                    exit_code: exit_code.map(i64::from),
                    record,
                }
            }
            TaskEventKind::Drained => Event::TaskDrained { task_id },
        };
        self.record_at(line, event.at);
    }

    /// Records `manager`'s task events from now on, from a thread of its own, until the
    /// returned [`Watcher`] is dropped.
    pub fn follow(self: &Arc<Self>, manager: &BackgroundManager) -> Watcher {
        let tasks = manager.awaiter();
        let tracer = Arc::clone(self);
        Watcher::start(manager, "bgagent-trace", move |event| {
            tracer.task_event(event, Some(&tasks))
        })
    }
}

/// Runs one turn of the loop (`run`, given the events to report to), traced when there is a
/// tracer: the user message that starts it (`user`: the conversation's last message, when it
/// is text), the loop's events (passed on to `events`), and how the turn ended. The one place
/// every face (CLI, Python) records a turn.
pub fn turn(
    tracer: Option<&Tracer>,
    user: Option<&str>,
    events: &mut dyn LoopEvents,
    run: impl FnOnce(&mut dyn LoopEvents) -> crate::Result<()>,
) -> crate::Result<()> {
    let Some(tracer) = tracer else { return run(events) };
    if let Some(text) = user {
        tracer.user_input(text);
    }
    let result = run(&mut Traced::new(tracer, events));
    match &result {
        Ok(()) => tracer.turn_end(Outcome::Done, None),
        Err(crate::Error::Interrupted) => tracer.turn_end(Outcome::Interrupted, None),
        Err(e) => tracer.turn_end(Outcome::Error, Some(&e.to_string())),
    }
    result
}

/// `text` redacted and cut to [`TEXT_LIMIT`] characters, and its full (redacted) length in
/// characters if it was cut.
fn cut(text: &str) -> (String, Option<u64>) {
    let redactor = Redactor::from_env();
    let text = redactor.redact(text);
    let was_cut = crate::text::prefix(&text, TEXT_LIMIT).len() < text.len();
    let length = was_cut.then(|| text.chars().count() as u64);
    (redactor.cut(&text, TEXT_LIMIT).into_owned(), length)
}

/// `value` as JSON text with the API credentials redacted from its strings first: once
/// serialised, a key holding `"` or `\` would be escaped and no longer match.
fn json_text(value: &Value) -> String {
    let redactor = Redactor::from_env();
    if redactor.is_empty() {
        return value.to_string();
    }
    let mut value = value.clone();
    redactor.redact_json(&mut value);
    value.to_string()
}

/// The loop's events recorded into a tracer, and passed on to `inner` (which prints them).
pub struct Traced<'a> {
    pub tracer: &'a Tracer,
    pub inner: &'a mut dyn LoopEvents,
    call_started: Option<Instant>,
    tool_started: Option<Instant>,
    text: String,
    drained: Vec<String>,
}

impl<'a> Traced<'a> {
    pub fn new(tracer: &'a Tracer, inner: &'a mut dyn LoopEvents) -> Self {
        Traced {
            tracer,
            inner,
            call_started: None,
            tool_started: None,
            text: String::new(),
            drained: Vec::new(),
        }
    }
}

fn seconds_since(start: Option<Instant>) -> f64 {
    start.map_or(0.0, |s| s.elapsed().as_secs_f64())
}

impl LoopEvents for Traced<'_> {
    fn model_call(&mut self) {
        let (turn, call) = self.tracer.next_call();
        self.call_started = Some(Instant::now());
        self.text.clear();
        self.tracer.record(Event::ModelCall { turn, call: Some(call) });
        self.inner.model_call();
    }

    fn text(&mut self, piece: &str) {
        if self.text.len() < 4 * TEXT_LIMIT {
            self.text.push_str(piece);
        }
        self.inner.text(piece);
    }

    fn model_reply(&mut self, response: &Response) {
        let (turn, call) = self.tracer.turn_and_call();
        let text =
            if self.text.is_empty() { response.text() } else { std::mem::take(&mut self.text) };
        let (text, text_length) = cut(&text);
        self.tracer.record(Event::ModelReply {
            turn,
            call,
            stop_reason: response.stop_reason.clone(),
            duration: seconds_since(self.call_started),
            usage: response.rest.get("usage").cloned(),
            text,
            text_length,
        });
        self.inner.model_reply(response);
    }

    fn tool_start(&mut self, id: &str, name: &str, input: &Value) {
        let (turn, call) = self.tracer.turn_and_call();
        self.tool_started = Some(Instant::now());
        let (text, input_length) = cut(&json_text(input));
        self.tracer.record(Event::ToolCall {
            turn,
            call,
            tool_use_id: id.into(),
            name: name.into(),
            task_id: input.get("task_id").and_then(Value::as_str).map(str::to_string),
            input: text,
            input_length,
        });
        self.inner.tool_start(id, name, input);
    }

    fn tool(&mut self, id: &str, name: &str, output: &str) {
        let (turn, call) = self.tracer.turn_and_call();
        let duration = seconds_since(self.tool_started);
        let (text, output_length) = cut(output);
        // The tasks it names, among those written so far: what a reader of the lines before
        // this one knows.
        self.tracer.record_with(Instant::now(), |w| {
            let tasks = TasksInAnswer::read(name, output, |task| w.tasks.contains(task));
            Event::ToolResult {
                turn,
                call,
                tool_use_id: id.into(),
                name: name.into(),
                duration,
                task_id: tasks.started,
                ended_tasks: tasks.ended,
                output: text,
                output_length,
            }
        });
        self.inner.tool(id, name, output);
    }

    fn drained(&mut self, notes: &[Notification]) {
        let (turn, call) = self.tracer.turn_and_call();
        self.drained = notes.iter().map(|n| n.task_id.clone()).collect();
        let task_ids = self.drained.clone();
        self.tracer.record(Event::Drain { turn, call: Some(call + 1), task_ids });
        self.inner.drained(notes);
    }

    fn injected(&mut self, text: &str) {
        let (turn, call) = self.tracer.turn_and_call();
        let task_ids = std::mem::take(&mut self.drained);
        let (text_cut, text_length) = cut(text);
        self.tracer.record(Event::Inject {
            turn,
            call: Some(call + 1),
            task_ids,
            text: text_cut,
            text_length,
        });
        self.inner.injected(text);
    }

    fn waiting(&mut self, running: usize, max_wait: Duration) {
        let (turn, _) = self.tracer.turn_and_call();
        let max_wait_seconds = max_wait.as_secs_f64();
        self.tracer.record(Event::WaitStart {
            turn,
            running: running as u64,
            max_wait: max_wait_seconds,
        });
        self.inner.waiting(running, max_wait);
    }

    fn waited(&mut self, why: WaitEnd) {
        let (turn, _) = self.tracer.turn_and_call();
        self.tracer.record(Event::WaitEnd { turn, why: Some(why) });
        self.inner.waited(why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A line of the loop that says which of them it is (`task_id`).
    fn numbered(i: impl ToString) -> Event {
        Event::TaskDrained { task_id: i.to_string() }
    }

    /// A progress line that says which of them it is.
    fn progress(i: impl ToString) -> Event {
        Event::TaskProgress { task_id: i.to_string(), stdout_bytes: 0, stderr_bytes: 0 }
    }

    /// Events reach the writer from several threads and late (a task event stamped before the
    /// line already written): `t` still never decreases.
    #[test]
    fn lines_are_in_time_order_whatever_order_events_arrive_in() {
        let tracer = Tracer::in_memory(&RunInfo::default());
        let early = Instant::now();
        std::thread::scope(|s| {
            for i in 0..4 {
                let tracer = &tracer;
                s.spawn(move || {
                    for j in 0..200 {
                        if j % 3 == 0 {
                            tracer.record_at(numbered(i), early);
                        } else {
                            tracer.record(numbered(i));
                        }
                    }
                });
            }
        });
        let lines = tracer.lines();
        assert_eq!(lines.len(), 801);
        let times: Vec<f64> = lines
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["t"].as_f64().unwrap())
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        let header: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            (header["event"].as_str(), header["version"].as_u64()),
            (Some("header"), Some(VERSION))
        );
    }

    fn parsed(lines: &[String]) -> Vec<Value> {
        lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// Past the limit the oldest lines go, in constant time per line: the header stays, a line
    /// says how many went, and exactly `MEMORY_LIMIT` lines are kept.
    #[test]
    fn an_in_memory_trace_keeps_its_header_and_its_newest_lines() {
        let tracer =
            Tracer::in_memory(&RunInfo { mode: "production".into(), ..RunInfo::default() });
        let extra = 5;
        let recorded = MEMORY_LIMIT + extra;
        for i in 0..recorded {
            tracer.record(numbered(i));
        }
        let lines = parsed(&tracer.lines());
        assert_eq!(lines.len(), MEMORY_LIMIT);
        assert_eq!(
            (lines[0]["event"].as_str(), lines[0]["mode"].as_str()),
            (Some("header"), Some("production"))
        );
        // Kept: the header, the marker and the newest MEMORY_LIMIT - 2 of the recorded lines.
        let dropped = recorded - (MEMORY_LIMIT - 2);
        assert_eq!(lines[1]["event"], "lines_dropped");
        assert_eq!(
            (lines[1]["lines"].as_u64(), lines[1]["task_progress"].as_u64()),
            (Some(dropped as u64), Some(0))
        );
        assert_eq!(lines[1]["limit"], MEMORY_LIMIT);
        assert_eq!(lines[2]["task_id"], dropped.to_string());
        assert_eq!(lines[MEMORY_LIMIT - 1]["task_id"], (recorded - 1).to_string());
        let times: Vec<f64> = lines.iter().map(|l| l["t"].as_f64().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        // The picture starts where lines went, and says so.
        let text = tracer.lines();
        let run = view::Run::from_lines(text.iter().map(String::as_str));
        assert_eq!(run.dropped, Some((dropped as u64, MEMORY_LIMIT as u64)));
        assert_eq!(run.start, times[1]);
        assert!(view::html(&run).contains(&format!("{dropped} lines of this trace were dropped")));
    }

    /// Progress lines (which the picture does not draw) go before any other line.
    #[test]
    fn progress_lines_go_first() {
        let tracer = Tracer::with(Out::Memory(Kept::new(6)), &RunInfo::default());
        tracer.record(numbered(0));
        tracer.record(progress(1));
        tracer.record(numbered(2));
        tracer.record(progress(3));
        tracer.record(numbered(4));
        let kept = |tracer: &Tracer| -> Vec<Value> {
            parsed(&tracer.lines()).iter().skip(1).map(|l| l["task_id"].clone()).collect()
        };
        let ids = |ids: &[&str]| -> Vec<Value> {
            ids.iter().map(|i| if i.is_empty() { Value::Null } else { json!(i) }).collect()
        };
        assert_eq!(kept(&tracer), ids(&["0", "1", "2", "3", "4"]), "within the limit, all kept");
        tracer.record(numbered(5));
        // The marker takes a place too: both progress lines went.
        let lines = parsed(&tracer.lines());
        assert_eq!(
            (lines[1]["lines"].as_u64(), lines[1]["task_progress"].as_u64()),
            (Some(2), Some(2))
        );
        assert_eq!(lines[1]["t"], lines[0]["t"], "no line of the loop went");
        assert_eq!(kept(&tracer), ids(&["", "0", "2", "4", "5"]));
        // Full of other lines: a new progress line is the oldest one, and goes at once.
        tracer.record(progress(6));
        assert_eq!(kept(&tracer), ids(&["", "0", "2", "4", "5"]));
        // Then the oldest line goes, and the marker gives its time.
        tracer.record(numbered(7));
        let lines = parsed(&tracer.lines());
        assert_eq!(lines.len(), 6);
        assert_eq!(
            (lines[1]["lines"].as_u64(), lines[1]["task_progress"].as_u64()),
            (Some(4), Some(3))
        );
        assert!(lines[1]["t"].as_f64() >= lines[0]["t"].as_f64());
        assert!(lines[1]["t"].as_f64() <= lines[2]["t"].as_f64());
        assert_eq!(kept(&tracer), ids(&["", "2", "4", "5", "7"]));
    }

    /// Lines of any length, across blocks, come back as they went in; emptied blocks go.
    #[test]
    fn a_chain_keeps_its_lines_whole_across_blocks() {
        let mut chain = Chain::default();
        let text = |i: u64| format!("{i}:{}", "x".repeat((i as usize * 7919) % (BLOCK / 3)));
        let mut kept = std::collections::VecDeque::new();
        for i in 0..400u64 {
            let line = if i == 50 { "y".repeat(BLOCK + 10) } else { text(i) };
            chain.push(i, i as f64, &line);
            kept.push_back((i, line));
            if i % 3 == 0 {
                assert_eq!(chain.pop_front(), kept.pop_front().map(|(i, _)| i as f64));
            }
            let got: Vec<(u64, &str)> = chain.iter().collect();
            let want: Vec<(u64, &str)> = kept.iter().map(|(i, l)| (*i, l.as_str())).collect();
            assert_eq!(got, want, "after line {i}");
        }
        // Only the blocks that hold kept lines stay (each at least 2/3 full: a line that does
        // not fit starts the next, and these lines are at most a third of a block).
        let spans = kept.iter().map(|(_, l)| l.len()).sum::<usize>() * 3 / (2 * BLOCK) + 2;
        assert!(chain.blocks.len() <= spans, "{} blocks", chain.blocks.len());
        while chain.pop_front().is_some() {}
        assert!(chain.blocks.is_empty() && chain.iter().next().is_none());
    }

    #[test]
    fn long_texts_are_cut_with_their_length() {
        let (text, length) = cut(&"é".repeat(TEXT_LIMIT + 5));
        assert_eq!(text.chars().count(), TEXT_LIMIT);
        assert_eq!(length, Some(TEXT_LIMIT as u64 + 5));
        assert_eq!(cut("short"), ("short".to_string(), None));
        let tracer = Tracer::in_memory(&RunInfo::default());
        tracer.user_input(&"x".repeat(TEXT_LIMIT + 1));
        let line = &parsed(&tracer.lines())[1];
        assert_eq!(line["text_length"], TEXT_LIMIT + 1);
        assert_eq!(line["text"].as_str().map(str::len), Some(TEXT_LIMIT));
    }
}
