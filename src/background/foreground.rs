//! A command run to its end in the foreground (the `bash` tool), watched exactly like a
//! background task: own process group, timeout with TERM then KILL, bounded output.

use super::capture::LogFile;
use super::process::{self, Limits};
use super::record::Status;
use super::runtime::runtime;
use std::path::Path;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

pub struct ForegroundRun {
    kill: Arc<Notify>,
    done: Receiver<(Status, String)>,
}

impl ForegroundRun {
    /// Starts `command`; a command that cannot start ends at once with status `Error`.
    pub fn start(command: &str, workdir: &Path, limits: Limits) -> ForegroundRun {
        let (send, done) = channel();
        let kill = Arc::new(Notify::new());
        let rt = runtime();
        let spawned = {
            let _in_runtime = rt.enter();
            process::spawn(command, workdir)
        };
        match spawned {
            Err(e) => {
                let text = format!("Error: cannot start sh in {}: {e}", workdir.display());
                let _ = send.send((Status::Error, text));
            }
            Ok(running) => {
                let watch = process::supervise(running, kill.clone(), limits, LogFile::none());
                rt.spawn(async move {
                    let (status, outcome) = watch.await;
                    let _ = send.send((status, outcome.result));
                });
            }
        }
        ForegroundRun { kill, done }
    }

    /// Waits at most `timeout` for the end: `Some((status, result))` once it has ended.
    pub fn wait(&self, timeout: Duration) -> Option<(Status, String)> {
        match self.done.recv_timeout(timeout) {
            Ok(end) => Some(end),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                Some((Status::Error, "Error: the command's watcher stopped".into()))
            }
        }
    }

    /// Stops the command (SIGTERM to its group, SIGKILL after the grace period).
    pub fn kill(&self) {
        self.kill.notify_one();
    }

    /// Waits for the end, however long it takes (bounded by the command's own timeout).
    pub fn finish(self) -> (Status, String) {
        loop {
            if let Some(end) = self.wait(Duration::from_secs(3600)) {
                return end;
            }
        }
    }
}
