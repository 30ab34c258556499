//! The lesson's REPL: `s08 >> ` prompt, one turn per line, `q`/`exit`/empty line/Ctrl-D to
//! quit. On a terminal it has line editing, history, a notice when a background task ends
//! while you type, and Ctrl-C cancels the turn (twice at the prompt quits). In production the
//! prompt says how many tasks run and wait (`s08 [2 running, 3 queued] >> `) while any do;
//! `--mirror` keeps the lesson's prompt.

use super::console::{say, Sink};
use super::failure::Failure;
use super::interrupt::INTERRUPTED;
use super::session::Session;
use crate::background::{Records, TaskEventKind, Watcher};
use crate::error::Error;
use rustyline::error::ReadlineError;
use rustyline::ExternalPrinter;
use serde_json::{json, Value};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};

const HELP: &str = "/tasks      the background tasks and their status
/kill ID    stop a background task
/tail ID [N] the last N lines (20) of a task's output
/clear      start a new conversation
/help       this list
q, exit, an empty line or Ctrl-D quits";

enum Flow {
    Continue,
    Quit,
}

pub fn run(session: &Session, auto_resume: bool) -> Result<(), Failure> {
    if std::io::stdin().is_terminal() {
        terminal(session, auto_resume)
    } else {
        piped(session)
    }
}

/// Handles one line typed at the prompt.
fn handle(session: &Session, messages: &mut Vec<Value>, line: &str) -> Flow {
    let line = line.trim();
    if matches!(line.to_lowercase().as_str(), "q" | "exit" | "") {
        return Flow::Quit;
    }
    if let Some(command) = line.strip_prefix('/') {
        let (name, arg) = command.split_once(' ').unwrap_or((command, ""));
        let text = match name {
            "tasks" => session.manager.list(),
            "kill" if !arg.trim().is_empty() => session.manager.kill(arg.trim()),
            "kill" => "usage: /kill ID".to_string(),
            "tail" => super::tail::tail(&session.manager, arg),
            "clear" => {
                messages.clear();
                "(new conversation)".to_string()
            }
            "help" => HELP.to_string(),
            _ => format!("unknown command /{name}; /help lists them"),
        };
        say(&format!("{text}\n"));
        return Flow::Continue;
    }
    messages.push(json!({"role": "user", "content": line}));
    let mut events = session.events(true, Sink::Stdout);
    match session.turn(messages, &mut events) {
        Ok(()) => {}
        Err(Error::Interrupted) => say("\n(turn cancelled; the conversation is kept)\n"),
        // The turn ends and the prompt returns; the conversation is as before the failed call.
        Err(e) => eprintln!("bgagent: {e}"),
    }
    say("\n");
    Flow::Continue
}

/// The prompt: the lesson's, or in production, while tasks run or wait, how many of each.
fn prompt(session: &Session) -> String {
    let counts = session.manager.snapshot(Records::None);
    if session.config.mirror || counts.running == 0 {
        return session.style.prompt();
    }
    let running = counts.running - counts.waiting;
    let text = match counts.waiting {
        0 => format!("s08 [{running} running] >> "),
        waiting => format!("s08 [{running} running, {waiting} queued] >> "),
    };
    session.style.paint("36", &text)
}

/// Piped input: the same REPL without line editing, one request per line.
fn piped(session: &Session) -> Result<(), Failure> {
    let mut messages = Vec::new();
    let mut stdin = std::io::stdin().lock();
    let mut raw = Vec::new();
    loop {
        say(&prompt(session));
        raw.clear();
        match stdin.read_until(b'\n', &mut raw) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(Failure(1, format!("cannot read stdin: {e}"))),
        }
        // A line that is not UTF-8 (Latin-1, say) is read with replacement characters.
        let text = String::from_utf8_lossy(&raw);
        let line = text.strip_suffix('\n').unwrap_or(&text);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Flow::Quit = handle(session, &mut messages, line) {
            return Ok(());
        }
    }
}

fn history_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    let dir = base.join("bgagent");
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join("history");
    // Made (empty, private) before the first load: rustyline writes a missing history file
    // whole, which would drop what another REPL appended at the same moment.
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new().append(true).create(true).mode(0o600).open(&path);
    Some(path)
}

/// What the main thread hears about: a line read at the prompt, or a task that ended there.
enum Input {
    Read(Result<String, ReadlineError>),
    TaskEnded,
}

type SharedPrinter = Arc<Mutex<Box<dyn ExternalPrinter + Send>>>;

/// A terminal: line editing and history. The prompt is read on its own thread, so a task that
/// ends while the user types can be announced above the prompt (and, with `auto_resume`, start
/// a turn whose output also goes above the prompt).
fn terminal(session: &Session, auto_resume: bool) -> Result<(), Failure> {
    let mut editor = rustyline::DefaultEditor::new()
        .map_err(|e| Failure(2, format!("cannot use the terminal: {e}")))?;
    let history = history_file();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    let printer: Option<SharedPrinter> = editor
        .create_external_printer()
        .ok()
        .map(|p| Arc::new(Mutex::new(Box::new(p) as Box<dyn ExternalPrinter + Send>)));
    let at_prompt = Arc::new(AtomicBool::new(false));
    let turn_above_prompt = Arc::new(AtomicBool::new(false));
    let (send, inputs) = mpsc::channel();
    // Each `go` carries the prompt to show: it says how many tasks run at that moment.
    let (go, go_ahead) = mpsc::channel::<String>();

    // The reader: one prompt per `go`.
    let reader = {
        let (send, at_prompt, turn_above) =
            (send.clone(), at_prompt.clone(), turn_above_prompt.clone());
        std::thread::spawn(move || {
            while let Ok(prompt) = go_ahead.recv() {
                let read = loop {
                    at_prompt.store(true, Ordering::SeqCst);
                    let read = editor.readline(&prompt);
                    at_prompt.store(false, Ordering::SeqCst);
                    // Ctrl-C while a turn runs above the prompt cancels that turn only.
                    if matches!(read, Err(ReadlineError::Interrupted))
                        && turn_above.load(Ordering::SeqCst)
                    {
                        INTERRUPTED.store(true, Ordering::SeqCst);
                        continue;
                    }
                    break read;
                };
                if let (Ok(line), Some(path)) = (&read, &history) {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                        // Appended under a lock, not saved whole: every REPL of the user
                        // shares this file, and another one running keeps its lines too.
                        let _ = editor.append_history(path);
                    }
                }
                if send.send(Input::Read(read)).is_err() {
                    return;
                }
            }
        })
    };

    // A task that ends while the prompt waits gets a line above it, without breaking what is typed.
    let _watcher = printer.clone().map(|printer| {
        let (waiting, style) = (at_prompt.clone(), session.style);
        Watcher::start(&session.manager, "bgagent-notices", move |event| {
            if let TaskEventKind::Finished { status, .. } = &event.kind {
                if waiting.load(Ordering::SeqCst) {
                    let line = style.paint("2", &format!("[bg:{}] {status}", event.task_id));
                    let _ = printer.lock().unwrap_or_else(|e| e.into_inner()).print(line);
                    if auto_resume {
                        let _ = send.send(Input::TaskEnded);
                    }
                }
            }
        })
    });

    let mut messages = Vec::new();
    let mut ctrl_c_once = false;
    let _ = go.send(prompt(session));
    let result = loop {
        let Ok(input) = inputs.recv() else { break Ok(()) };
        match input {
            Input::TaskEnded => {
                // Only when the user is still at the prompt and something waits to be told.
                let ready = at_prompt.load(Ordering::SeqCst)
                    && !messages.is_empty()
                    && session.manager.snapshot(Records::None).queued > 0;
                if let (true, Some(p)) = (ready, &printer) {
                    turn_above_prompt.store(true, Ordering::SeqCst);
                    let sink = Sink::Printer(p.clone());
                    let mut events = session.events(true, sink.clone());
                    let outcome = session.turn(&mut messages, &mut events);
                    turn_above_prompt.store(false, Ordering::SeqCst);
                    match outcome {
                        Ok(()) => {}
                        Err(Error::Interrupted) => {
                            sink.write("(turn cancelled; the conversation is kept)\n")
                        }
                        Err(e) => sink.write(&format!("bgagent: {e}\n")),
                    }
                }
            }
            Input::Read(Ok(line)) => {
                ctrl_c_once = false;
                if let Flow::Quit = handle(session, &mut messages, &line) {
                    break Ok(());
                }
                let _ = go.send(prompt(session));
            }
            Input::Read(Err(ReadlineError::Interrupted)) if !ctrl_c_once => {
                ctrl_c_once = true;
                say("(Ctrl-C again or Ctrl-D to quit)\n");
                let _ = go.send(prompt(session));
            }
            Input::Read(Err(ReadlineError::Interrupted | ReadlineError::Eof)) => break Ok(()),
            Input::Read(Err(ReadlineError::Io(e)))
                if e.kind() == std::io::ErrorKind::InvalidData =>
            {
                say("(that line was not UTF-8 text; type it again)\n");
                let _ = go.send(prompt(session));
            }
            Input::Read(Err(e)) => break Err(Failure(1, format!("cannot read the terminal: {e}"))),
        }
    };
    drop(go); // the reader ends at its next turn
    drop(reader);
    result
}
