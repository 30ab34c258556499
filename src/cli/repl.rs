//! The lesson's REPL: `s08 >> ` prompt, one turn per line, `q`/`exit`/empty line/Ctrl-D to
//! quit. On a terminal it has line editing, history, a notice when a background task ends
//! while you type, and Ctrl-C cancels the turn (twice at the prompt quits).

use super::console::{say, TaskWatcher};
use super::{Failure, Session};
use crate::error::Error;
use rustyline::error::ReadlineError;
use rustyline::ExternalPrinter;
use serde_json::{json, Value};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const HELP: &str = "/tasks      the background tasks and their status
/kill ID    stop a background task
/clear      start a new conversation
/help       this list
q, exit, an empty line or Ctrl-D quits";

enum Flow {
    Continue,
    Quit,
}

pub fn run(session: &Session) -> Result<(), Failure> {
    if std::io::stdin().is_terminal() {
        terminal(session)
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
            "tasks" => session.manager.check(None),
            "kill" if !arg.trim().is_empty() => session.manager.kill(arg.trim()),
            "kill" => "usage: /kill ID".to_string(),
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
    let mut events = session.events(true, false);
    match session.turn(messages, &mut events) {
        Ok(()) => {}
        Err(Error::Interrupted) => say("\n(turn cancelled; the conversation is kept)\n"),
        // The turn ends and the prompt returns; the conversation is as before the failed call.
        Err(e) => eprintln!("bgagent: {e}"),
    }
    say("\n");
    Flow::Continue
}

/// Piped input: the same REPL without line editing, one request per line.
fn piped(session: &Session) -> Result<(), Failure> {
    let mut messages = Vec::new();
    let mut lines = std::io::stdin().lock().lines();
    loop {
        say(&session.style.prompt());
        let Some(Ok(line)) = lines.next() else { return Ok(()) };
        if let Flow::Quit = handle(session, &mut messages, &line) {
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
    Some(dir.join("history"))
}

fn terminal(session: &Session) -> Result<(), Failure> {
    let mut editor = rustyline::DefaultEditor::new()
        .map_err(|e| Failure(2, format!("cannot use the terminal: {e}")))?;
    let history = history_file();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    // A task that ends while the prompt waits gets a line above it, without breaking what is typed.
    let at_prompt = Arc::new(AtomicBool::new(false));
    let _watcher = editor.create_external_printer().ok().map(|mut printer| {
        let waiting = at_prompt.clone();
        let style = session.style;
        TaskWatcher::start(
            session.manager.clone(),
            |_| {},
            move |task| {
                if waiting.load(Ordering::SeqCst) {
                    let _ = printer
                        .print(style.paint("2", &format!("[bg:{}] {}", task.id, task.status)));
                }
            },
        )
    });
    let mut messages = Vec::new();
    let mut ctrl_c_once = false;
    loop {
        at_prompt.store(true, Ordering::SeqCst);
        let read = editor.readline(&session.style.prompt());
        at_prompt.store(false, Ordering::SeqCst);
        match read {
            Ok(line) => {
                ctrl_c_once = false;
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                    if let Some(path) = &history {
                        let _ = editor.save_history(path);
                    }
                }
                if let Flow::Quit = handle(session, &mut messages, &line) {
                    return Ok(());
                }
            }
            Err(ReadlineError::Interrupted) if !ctrl_c_once => {
                ctrl_c_once = true;
                say("(Ctrl-C again or Ctrl-D to quit)\n");
            }
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => return Ok(()),
            Err(e) => return Err(Failure(1, format!("cannot read the terminal: {e}"))),
        }
    }
}
