//! What the CLI prints: colours (off with --no-color, NO_COLOR, or output to a pipe), the
//! lesson's tool lines, streamed text and a spinner on stderr.

use crate::agent::LoopEvents;
use crate::llm::Response;
use crate::text::prefix;
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
    spinner: Option<Spinner>,
    /// Streamed text held back until its line ends (printer sink only).
    open_text: String,
    /// Streamed text was printed and its line is still open (direct sinks).
    text_open: bool,
    /// The demo's teaching view: each line labelled (who said it) and timed (`+2.1s` since
    /// this instant), the model's text printed whole.
    pub labelled: Option<Instant>,
    /// The model's text of the current call, for the labelled view.
    said: String,
}

/// How a wait's bound reads: `5m`, `1m30s`, `45s`.
pub fn minutes(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 60, s % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s}s"),
    }
}

impl CliEvents {
    pub fn new(style: Style, stream_text: bool, sink: Sink) -> Self {
        CliEvents {
            style,
            stream_text,
            sink,
            spinner: None,
            open_text: String::new(),
            text_open: false,
            labelled: None,
            said: String::new(),
        }
    }

    fn line(&self, text: &str) {
        self.sink.write(&format!("{text}\n"));
    }

    /// In the labelled view: `+  2.1s  label  text`, later lines of `text` indented under it.
    pub fn labelled_line(&self, label: &str, colour: &str, text: &str) {
        let Some(start) = self.labelled else { return };
        let head = format!("+{:>5.1}s  {label:<6} ", start.elapsed().as_secs_f64());
        let pad = " ".repeat(head.chars().count());
        for (i, line) in text.lines().enumerate() {
            let lead = if i == 0 { self.style.paint("2", &head) } else { pad.clone() };
            self.line(&format!("{lead}{}", self.style.paint(colour, line)));
        }
    }
}

impl LoopEvents for CliEvents {
    fn model_call(&mut self) {
        if !matches!(self.sink, Sink::Printer(_)) {
            self.spinner = Spinner::start();
        }
    }

    fn text(&mut self, piece: &str) {
        self.spinner = None;
        if self.labelled.is_some() {
            self.said.push_str(piece);
            return;
        }
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

    fn model_reply(&mut self, _response: &Response) {
        self.spinner = None;
        if self.labelled.is_some() {
            let said = std::mem::take(&mut self.said);
            if !said.trim().is_empty() {
                self.labelled_line("model", "1", said.trim_end());
            }
            return;
        }
        if !self.open_text.is_empty() {
            let rest = std::mem::take(&mut self.open_text);
            self.sink.write(&format!("{rest}\n"));
        }
        if std::mem::take(&mut self.text_open) {
            self.sink.write("\n");
        }
    }

    fn tool(&mut self, _id: &str, name: &str, output: &str) {
        if self.labelled.is_some() {
            let shown = format!("{name} returned:\n{}", prefix(output, 200));
            self.labelled_line("tool", "33", &shown);
            return;
        }
        self.line(&self.style.paint("33", &format!("> {name}:")));
        self.line(prefix(output, 200));
    }

    fn injected(&mut self, text: &str) {
        if self.labelled.is_some() {
            let shown = format!("the loop injects into the conversation:\n{text}");
            self.labelled_line("loop", "36", &shown);
            return;
        }
        self.line(&self.style.paint("2", text));
    }

    fn waiting(&mut self, running: usize, max_wait: Duration) {
        let tasks = if running == 1 { "task" } else { "tasks" };
        let text = format!("waiting for {running} background {tasks} (max {})", minutes(max_wait));
        if self.labelled.is_some() {
            self.labelled_line("loop", "36", &text);
        } else {
            self.line(&self.style.paint("2", &text));
        }
    }
}
