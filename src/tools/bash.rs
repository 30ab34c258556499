//! The blocking `bash` tool: a command run to its end in the foreground, through the same
//! executor as background tasks (own process group, timeout with TERM then KILL, bounded
//! output), stopped by Ctrl-C. Also the command guard every command-running tool uses.

use super::args::Args;
use super::tool::{schema, Guard, Tool, ToolContext};
use crate::background::{conclude, BackgroundManager, Capture, StartAt};
use crate::exec::{EventSink, ExecEvent, Executor, TaskSpec};
use crate::runtime::{poll_until, Cancel, Interrupt, Interrupted};
use crate::secrets::Redactor;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::time::Duration;

/// The blocking `bash` tool's timeout, as in the lesson.
pub const BASH_TIMEOUT: Duration = Duration::from_secs(120);

/// Characters of output the tool returns, as in the lesson.
const OUTPUT_LIMIT: usize = 50_000;

/// Commands the lesson refuses to run, by substring. (A substring check, not a security
/// boundary: `su\do` or `rm -fr /` pass it.)
const DANGEROUS: [&str; 5] = ["rm -rf /", "sudo", "shutdown", "reboot", "> /dev/"];

/// Redirections production lets through, though the lesson's `> /dev/` refuses them.
const HARMLESS: [&str; 3] = ["> /dev/null", "> /dev/stdout", "> /dev/stderr"];

pub fn is_dangerous(command: &str, guard: Guard) -> bool {
    let command = match guard {
        Guard::Lesson => std::borrow::Cow::Borrowed(command),
        Guard::Production => std::borrow::Cow::Owned(without_harmless_redirections(command)),
    };
    DANGEROUS.iter().any(|d| command.contains(d))
}

/// `command` with each harmless redirection cut out, when a word boundary follows it.
fn without_harmless_redirections(command: &str) -> String {
    let mut out = command.to_string();
    for target in HARMLESS {
        let mut from = 0;
        while let Some(at) = out[from..].find(target).map(|i| i + from) {
            let end = at + target.len();
            let boundary = out[end..].chars().next().is_none_or(|c| " \t\n;|&)".contains(c));
            if boundary {
                out.replace_range(at..end, " ");
            } else {
                from = end;
            }
        }
    }
    out
}

/// A call of the `bash` tool.
#[derive(Debug, Clone, PartialEq)]
pub struct Bash {
    pub command: String,
    /// Production only: start it as a background task and answer at once.
    pub run_in_background: bool,
}

impl Tool for Bash {
    const NAME: &'static str = "bash";

    fn schema() -> Value {
        let properties = json!({"command": {"type": "string"}});
        schema(Self::NAME, "Run a shell command (blocking).", properties, &["command"])
    }

    fn production_schema() -> Value {
        let description = "Run a shell command (blocking). With run_in_background: true it runs \
                           as a background task instead: the answer gives its task_id and log \
                           file at once (read_background reads its output).";
        let properties = json!({"command": {"type": "string"},
            "run_in_background": {"type": "boolean"}});
        schema(Self::NAME, description, properties, &["command"])
    }

    fn parse(args: &Args) -> Result<Self, String> {
        args.lesson_require(&["command"])?;
        // The lesson's blocklist test (`d in command`) is the first to touch it.
        args.lesson_command(|t| format!("Error: argument of type '{t}' is not iterable"))?;
        // The lesson's tool has no such argument: ignored there.
        let background =
            if args.lesson { None } else { args.optional_bool("run_in_background")? };
        Ok(Bash { command: args.string("command")?, run_in_background: background == Some(true) })
    }

    fn run(self, ctx: &ToolContext, _: &Redactor) -> Result<String, Interrupted> {
        if self.run_in_background {
            return Ok(in_background(ctx, &self.command));
        }
        let executor = ctx.manager.executor().as_ref();
        let (timeout, guard) = (ctx.bash_timeout, ctx.guard());
        bash(
            executor,
            ctx.workdir,
            &self.command,
            timeout,
            ctx.interrupted,
            guard,
            ctx.hide_secrets,
        )
    }
}

/// `bash` with `run_in_background`: a background task, answered with its id and log file.
fn in_background(ctx: &ToolContext, command: &str) -> String {
    if is_dangerous(command, ctx.guard()) {
        return "Error: Dangerous command blocked".into();
    }
    let Some(submitted) = ctx.manager.submit(command, StartAt::default()) else {
        return "Error: the task could not be started".into();
    };
    let line = BackgroundManager::submitted_line(&submitted, command);
    // The local executor's file for the task (written once the output outgrows memory).
    let log = match ctx.manager.log_dir() {
        Some(dir) => dir.join(format!("{}.log", submitted.id)).display().to_string(),
        None => "(none: this executor keeps no file)".into(),
    };
    format!(
        "{line}\nLog file: {log}\nRead its output with read_background (task_id {}); its \
         result comes when it ends.",
        submitted.id
    )
}

/// Runs `command` in `workdir` to its end (or its timeout, or Ctrl-C) and returns its output.
/// With `hide_secrets`, the command does not get the API credentials and their values are
/// redacted from the output before it is cut.
pub fn bash(
    executor: &dyn Executor,
    workdir: &Path,
    command: &str,
    timeout: Duration,
    interrupted: Interrupt<'_>,
    guard: Guard,
    hide_secrets: bool,
) -> Result<String, Interrupted> {
    if is_dangerous(command, guard) {
        return Ok("Error: Dangerous command blocked".into());
    }
    let (send, done) = channel();
    let cancel = Cancel::new();
    let spec = TaskSpec {
        id: "bash".into(),
        command: command.into(),
        workdir: workdir.into(),
        timeout,
        keep_log: false,
        hold_output: 0,
        hide_secrets,
    };
    let capture = Capture::new(OUTPUT_LIMIT, Redactor::when(hide_secrets));
    let sink = Foreground { capture, timeout, done: Some(send) };
    executor.launch(spec, cancel.clone(), Box::new(sink));
    let ended = |wait| match done.recv_timeout(wait) {
        Ok(text) => Some(text),
        Err(RecvTimeoutError::Timeout) => None,
        Err(RecvTimeoutError::Disconnected) => Some("Error: the command's watcher stopped".into()),
    };
    match poll_until(interrupted, None, ended) {
        Ok(text) => Ok(text.unwrap_or_default()),
        Err(Interrupted) => {
            cancel.cancel();
            let _ = done.recv_timeout(executor.stop_bound());
            Err(Interrupted)
        }
    }
}

/// Collects the output and sends the result text once the run ends.
struct Foreground {
    capture: Capture,
    timeout: Duration,
    done: Option<Sender<String>>,
}

impl EventSink for Foreground {
    fn event(&mut self, event: ExecEvent<'_>) {
        if let Some(end) = self.capture.take(event) {
            if let Some(done) = self.done.take() {
                let _ = done.send(conclude(end, self.timeout).result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_lets_harmless_redirections_through_and_nothing_else() {
        let lesson = Guard::Lesson;
        let production = Guard::Production;
        for ok in
            ["ls > /dev/null", "make 2> /dev/null; echo", "a > /dev/stderr && b > /dev/stdout"]
        {
            assert!(is_dangerous(ok, lesson), "{ok}");
            assert!(!is_dangerous(ok, production), "{ok}");
        }
        for bad in ["dd if=x > /dev/sda", "x > /dev/null > /dev/sda", "x > /dev/nullx", "sudo ls"] {
            assert!(is_dangerous(bad, lesson) && is_dangerous(bad, production), "{bad}");
        }
    }
}
