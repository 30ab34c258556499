//! The blocking `bash` tool: a command run to its end in the foreground, through the same
//! executor as background tasks (own process group, timeout with TERM then KILL, bounded
//! output), stopped by Ctrl-C.

use crate::background::Capture;
use crate::exec::{EventSink, ExecEvent, Executor, TaskSpec};
use crate::runtime::{poll_until, Cancel, Interrupt, Interrupted};
use std::path::Path;
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::time::Duration;

/// The blocking `bash` tool's timeout, as in the lesson.
pub const BASH_TIMEOUT: Duration = Duration::from_secs(120);

/// Characters of output the tool returns, as in the lesson.
const OUTPUT_LIMIT: usize = 50_000;

/// Commands the lesson refuses to run, by substring.
const DANGEROUS: [&str; 5] = ["rm -rf /", "sudo", "shutdown", "reboot", "> /dev/"];

pub fn is_dangerous(command: &str) -> bool {
    DANGEROUS.iter().any(|d| command.contains(d))
}

/// Runs `command` in `workdir` to its end (or its timeout, or Ctrl-C) and returns its output.
pub fn bash(
    executor: &dyn Executor,
    workdir: &Path,
    command: &str,
    timeout: Duration,
    interrupted: Interrupt<'_>,
) -> Result<String, Interrupted> {
    if is_dangerous(command) {
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
    };
    let sink = Foreground { capture: Capture::new(OUTPUT_LIMIT, timeout), done: Some(send) };
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
    done: Option<Sender<String>>,
}

impl EventSink for Foreground {
    fn event(&mut self, event: ExecEvent<'_>) {
        if let Some((_, outcome)) = self.capture.take(event) {
            if let Some(done) = self.done.take() {
                let _ = done.send(outcome.result);
            }
        }
    }
}
