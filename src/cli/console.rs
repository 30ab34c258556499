//! What the CLI prints: colours (off with --no-color, NO_COLOR, or output to a pipe), the
//! lesson's tool lines, streamed text, a spinner on stderr, and the --trace file.

use crate::agent::LoopEvents;
use crate::background::{BackgroundManager, Notification, Subscription, TaskEvent, TaskEventKind};
use crate::llm::Response;
use crate::text::prefix;
use serde_json::{json, Value};
use std::fs::File;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub fn new(no_color: bool) -> Self {
        let env_off = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style { color: !no_color && !env_off && std::io::stdout().is_terminal() }
    }

    pub fn paint(&self, ansi: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{ansi}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn prompt(&self) -> String {
        self.paint("36", "s08 >> ")
    }
}

/// Prints to stdout; a closed pipe ends the program quietly (SIGPIPE is left at its default).
pub fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// `--trace FILE`: one JSON object per line, each with seconds since the start.
pub struct Trace {
    file: Mutex<File>,
    start: Instant,
    path: std::path::PathBuf,
    /// A write failed (a full disk): said once on stderr, then the trace goes quiet.
    failed: AtomicBool,
}

impl Trace {
    pub fn create(path: &std::path::Path) -> std::io::Result<Arc<Trace>> {
        Ok(Arc::new(Trace {
            file: Mutex::new(File::create(path)?),
            start: Instant::now(),
            path: path.to_path_buf(),
            failed: AtomicBool::new(false),
        }))
    }

    pub fn event(&self, kind: &str, fields: Value) {
        self.event_at(kind, fields, Instant::now());
    }

    /// A task's start, its process starting, and its end, at the times the manager recorded.
    pub fn task_event(&self, event: &TaskEvent) {
        let id = &event.task_id;
        match &event.kind {
            TaskEventKind::Queued { command } => {
                self.event_at("task_start", json!({"task_id": id, "command": command}), event.at)
            }
            TaskEventKind::Started { pid } => {
                self.event_at("task_running", json!({"task_id": id, "pid": pid}), event.at)
            }
            TaskEventKind::Finished { status, exit_code } => {
                let fields =
                    json!({"task_id": id, "status": status.as_str(), "exit_code": exit_code});
                self.event_at("task_end", fields, event.at)
            }
            _ => {}
        }
    }

    /// An event that happened at `at`.
    pub fn event_at(&self, kind: &str, mut fields: Value, at: Instant) {
        fields["t"] = json!(at.saturating_duration_since(self.start).as_secs_f64());
        fields["event"] = json!(kind);
        // The API credentials never reach the trace.
        let line = crate::text::redact(&fields.to_string()).into_owned();
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let written = writeln!(file, "{line}").and_then(|()| file.flush());
        if let Err(e) = written {
            if !self.failed.swap(true, Ordering::Relaxed) {
                eprintln!("bgagent: cannot write the trace to {}: {e}", self.path.display());
            }
        }
    }
}

/// A small animation on stderr while the model thinks; only when stderr is a terminal.
pub struct Spinner {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Spinner {
    pub fn start() -> Option<Spinner> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
            let mut i = 0;
            while !flag.load(Ordering::SeqCst) {
                eprint!("\r{} thinking", frames[i % frames.len()]);
                i += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            eprint!("\r\x1b[K");
        });
        Some(Spinner { stop, thread: Some(thread) })
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Where the CLI's lines go.
#[derive(Clone)]
pub enum Sink {
    Stdout,
    /// One-shot mode keeps stdout for the answer alone.
    Stderr,
    /// Above the prompt while the user types (a turn started by --auto-resume).
    Printer(Arc<Mutex<Box<dyn rustyline::ExternalPrinter + Send>>>),
}

impl Sink {
    pub fn write(&self, text: &str) {
        match self {
            Sink::Stdout => say(text),
            Sink::Stderr => eprint!("{text}"),
            Sink::Printer(p) => {
                let mut printer = p.lock().unwrap_or_else(|e| e.into_inner());
                let _ = printer.print(text.trim_end_matches('\n').to_string());
            }
        }
    }
}

/// The loop's events as the CLI shows them.
pub struct CliEvents {
    pub style: Style,
    /// Print the model's text as it streams (REPL, demo); one-shot prints only the answer.
    pub stream_text: bool,
    pub sink: Sink,
    pub trace: Option<Arc<Trace>>,
    spinner: Option<Spinner>,
    /// Streamed text held back until its line ends (printer sink only).
    open_text: String,
    /// Streamed text was printed and its line is still open (direct sinks).
    text_open: bool,
}

impl CliEvents {
    pub fn new(style: Style, stream_text: bool, sink: Sink, trace: Option<Arc<Trace>>) -> Self {
        CliEvents {
            style,
            stream_text,
            sink,
            trace,
            spinner: None,
            open_text: String::new(),
            text_open: false,
        }
    }

    fn line(&self, text: &str) {
        self.sink.write(&format!("{text}\n"));
    }

    fn trace(&self, kind: &str, fields: Value) {
        if let Some(t) = &self.trace {
            t.event(kind, fields);
        }
    }
}

impl LoopEvents for CliEvents {
    fn model_call(&mut self) {
        self.trace("model_call", json!({}));
        if !matches!(self.sink, Sink::Printer(_)) {
            self.spinner = Spinner::start();
        }
    }

    fn text(&mut self, piece: &str) {
        self.spinner = None;
        if !self.stream_text {
            return;
        }
        match &self.sink {
            // Above a prompt only whole lines can be printed.
            Sink::Printer(_) => {
                self.open_text.push_str(piece);
                if let Some(end) = self.open_text.rfind('\n') {
                    let done: String = self.open_text.drain(..=end).collect();
                    self.sink.write(&done);
                }
            }
            sink => {
                sink.write(piece);
                self.text_open |= !piece.is_empty();
            }
        }
    }

    fn model_reply(&mut self, response: &Response) {
        self.spinner = None;
        if !self.open_text.is_empty() {
            let rest = std::mem::take(&mut self.open_text);
            self.sink.write(&format!("{rest}\n"));
        }
        if std::mem::take(&mut self.text_open) {
            self.sink.write("\n");
        }
        self.trace("model_reply", json!({"stop_reason": response.stop_reason}));
    }

    fn tool_start(&mut self, name: &str, input: &Value) {
        self.trace("tool_call", json!({"name": name, "input": input}));
    }

    fn tool(&mut self, name: &str, output: &str) {
        self.line(&self.style.paint("33", &format!("> {name}:")));
        self.line(prefix(output, 200));
        self.trace("tool_result", json!({"name": name, "output": prefix(output, 200)}));
    }

    fn drained(&mut self, notes: &[Notification]) {
        let ids: Vec<&str> = notes.iter().map(|n| n.task_id.as_str()).collect();
        self.trace("drain", json!({"task_ids": ids}));
    }

    fn injected(&mut self, text: &str) {
        self.line(&self.style.paint("2", text));
        self.trace("inject", json!({"text": text}));
    }
}

/// Follows a manager's task events on a thread, calling `on_event` for each.
pub struct TaskWatcher {
    events: Subscription,
    thread: Option<JoinHandle<()>>,
}

impl TaskWatcher {
    pub fn start(
        manager: &BackgroundManager,
        mut on_event: impl FnMut(&TaskEvent) + Send + 'static,
    ) -> TaskWatcher {
        let events = manager.subscribe();
        let mine = events.clone();
        let thread = std::thread::spawn(move || {
            while let Some(event) = mine.recv(None) {
                on_event(&event);
            }
        });
        TaskWatcher { events, thread: Some(thread) }
    }
}

impl Drop for TaskWatcher {
    /// The events already published are still handled, then the thread ends.
    fn drop(&mut self) {
        self.events.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
