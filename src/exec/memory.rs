//! An executor that runs nothing: each command's behaviour comes from a script. It lets tests
//! check the manager's bookkeeping (ordering, exactly-once delivery, events, kill, timeout)
//! without processes, and shows what another executor has to provide: a run that keeps a log
//! hands out its reader (here the log is all in memory: a script's output is as long as the
//! test that wrote it).

use super::{Ended, EventSink, ExecEvent, Executor, Exit, OutputLog, Stream, TaskSpec};
use crate::runtime::{runtime, Cancel};
use crate::secrets::Redactor;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// What a scripted command does.
#[derive(Clone, Debug)]
pub enum Scripted {
    /// Prints `stdout` and `stderr`, then exits with `code`.
    Exit { stdout: String, stderr: String, code: i32 },
    /// Runs until cancelled or timed out.
    Hang,
    /// Cannot start.
    Fail(String),
}

type Script = dyn Fn(&TaskSpec) -> Scripted + Send + Sync;

pub struct MemoryExecutor {
    script: Box<Script>,
    next_pid: AtomicU32,
    launched: Mutex<Vec<TaskSpec>>,
}

impl MemoryExecutor {
    pub fn new(script: impl Fn(&TaskSpec) -> Scripted + Send + Sync + 'static) -> Self {
        MemoryExecutor {
            script: Box::new(script),
            next_pid: AtomicU32::new(1000),
            launched: Mutex::new(Vec::new()),
        }
    }

    /// Every spec launched so far, in order.
    pub fn launched(&self) -> Vec<TaskSpec> {
        self.launched.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Executor for MemoryExecutor {
    fn launch(&self, spec: TaskSpec, cancel: Cancel, mut events: Box<dyn EventSink>) {
        let behaviour = (self.script)(&spec);
        let pid = self.next_pid.fetch_add(1, Ordering::SeqCst);
        self.launched.lock().unwrap_or_else(|p| p.into_inner()).push(spec.clone());
        runtime().spawn(async move {
            let log = spec.keep_log.then(OutputLog::new);
            let redactor = Redactor::when(spec.hide_secrets);
            let end = |code, ended| Exit {
                code,
                ended,
                output: log.as_ref().map(OutputLog::end).unwrap_or_default(),
            };
            let start = |events: &mut Box<dyn EventSink>| {
                if let Some(log) = &log {
                    events.log(log.clone());
                }
                events.event(ExecEvent::Started { pid });
            };
            match behaviour {
                Scripted::Fail(message) => events.event(ExecEvent::Failed(message)),
                Scripted::Exit { stdout, stderr, code } => {
                    start(&mut events);
                    let out = [(Stream::Stdout, stdout), (Stream::Stderr, stderr)];
                    for (stream, text) in out.iter().filter(|(_, t)| !t.is_empty()) {
                        if let Some(log) = &log {
                            log.hold(redactor.redact(text).as_bytes());
                        }
                        events.event(ExecEvent::Output { stream: *stream, bytes: text.as_bytes() });
                    }
                    events.event(ExecEvent::Exited(end(Some(code), Ended::Exited)));
                }
                Scripted::Hang => {
                    start(&mut events);
                    let ended = tokio::select! {
                        () = cancel.cancelled() => Ended::Cancelled,
                        () = tokio::time::sleep(spec.timeout) => Ended::TimedOut,
                    };
                    events.event(ExecEvent::Exited(end(None, ended)));
                }
            }
        });
    }

    fn stop_bound(&self) -> Duration {
        Duration::from_secs(1)
    }
}
