//! The local executor: every command runs as `sh -c command`, leader of its own process group.
//! Its output is read as it comes (and written to the task's log file, which keeps the newest
//! part, readable while the run goes on); the timeout,
//! a cancel and the end of the shell all end with the whole group signalled, so no process
//! outlives its task.

mod group;
mod log;
mod procs;
pub mod supervisor;

use super::{Ended, EventSink, ExecEvent, Executor, Exit, OutputLog, Stream, TaskSpec};
use crate::runtime::{runtime, Cancel};
use group::Running;
use log::LogFile;
use nix::sys::signal::Signal;
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::time::{sleep_until, Instant};

/// Why a command holding a NUL byte fails (what Python's `subprocess` says).
const NUL_IN_COMMAND: &str = "embedded null byte";

/// How long output pipes may stay open after the shell exits (a grandchild holding them).
pub const PIPE_GRACE: Duration = Duration::from_secs(2);

/// What only means something for local processes.
#[derive(Clone, Debug)]
pub struct LocalSettings {
    /// Between SIGTERM and SIGKILL when a command is stopped.
    pub grace: Duration,
    /// How long output pipes may stay open after the shell exits.
    pub pipe_grace: Duration,
    /// Where log files go; `None` means a fresh temporary directory, removed with the executor.
    pub log_dir: Option<PathBuf>,
    /// Bytes of output each task's log keeps on disk (its newest; at least half of this once
    /// the output passed it).
    pub log_limit: u64,
}

impl Default for LocalSettings {
    fn default() -> Self {
        LocalSettings {
            grace: crate::defaults::GRACE,
            pipe_grace: PIPE_GRACE,
            log_dir: None,
            log_limit: crate::defaults::LOG_LIMIT,
        }
    }
}

/// The executor on this machine. The supervisor and the temporary log directory come with
/// the first task (or the first question where logs go), not with the executor: a manager
/// made and never used (the lesson's module makes one as it is imported) costs no process
/// and leaves no directory, and the directory exists only while a supervisor is there to
/// remove it whatever ends the owner.
pub struct LocalExecutor {
    settings: LocalSettings,
    /// Where logs go: the directory the settings name, or our own once made. One made after `close` (a task started later) goes when the
    /// supervisor does.
    log_dir: OnceLock<Arc<Path>>,
    /// Held while our own directory is being made.
    making: Mutex<()>,
    /// Our own temporary log directory, until it is removed, with the process that made it:
    /// only that one removes it (a forked child shares it).
    own_log_dir: Mutex<Option<(u32, tempfile::TempDir)>>,
}

impl LocalExecutor {
    pub fn new(settings: LocalSettings) -> io::Result<Self> {
        let log_dir = OnceLock::new();
        if let Some(dir) = &settings.log_dir {
            std::fs::create_dir_all(dir)?;
            let _ = log_dir.set(Arc::from(dir.as_path()));
        }
        let (making, own_log_dir) = (Mutex::new(()), Mutex::new(None));
        Ok(LocalExecutor { settings, log_dir, making, own_log_dir })
    }

    /// The log directory, made now if it is our own and not made yet.
    fn dir(&self) -> Result<&Arc<Path>, String> {
        if let Some(dir) = self.log_dir.get() {
            return Ok(dir);
        }
        // One maker at a time; a failure is not kept (a full /tmp may have room later).
        let _making = self.making.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(dir) = self.log_dir.get() {
            return Ok(dir);
        }
        let dir = self.make_own_log_dir()?;
        Ok(self.log_dir.get_or_init(|| dir))
    }

    fn make_own_log_dir(&self) -> Result<Arc<Path>, String> {
        // Only the user may read the logs (they hold whatever the tasks printed).
        let prefix = format!("bgagent-{}-", std::process::id());
        let dir = tempfile::Builder::new()
            .prefix(&prefix)
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(|e| {
                let parent = std::env::temp_dir();
                format!("cannot create a log directory in {}: {e}", parent.display())
            })?;
        // Removed with its owner even when no destructor runs (SIGTERM, SIGKILL): this
        // starts the supervisor if there is none yet.
        supervisor::remove_at_exit(dir.path());
        let path = Arc::from(dir.path());
        *self.own_log_dir.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((std::process::id(), dir));
        Ok(path)
    }
}

impl Executor for LocalExecutor {
    fn launch(&self, spec: TaskSpec, cancel: Cancel, mut events: Box<dyn EventSink>) {
        // No shell can be given it; Python's words, so the lesson's result comes out the same.
        if spec.command.contains('\0') {
            return events.event(ExecEvent::Failed(NUL_IN_COMMAND.to_string()));
        }
        let log_dir = match spec.keep_log.then(|| self.dir()) {
            None => None,
            Some(Ok(dir)) => Some(Arc::clone(dir)),
            Some(Err(why)) => return events.event(ExecEvent::Failed(why)),
        };
        let run = Run {
            log_dir,
            log_limit: self.settings.log_limit,
            stop: Stop { grace: self.settings.grace, pipe_grace: self.settings.pipe_grace },
            spec,
            cancel,
            events,
        };
        // Started with the first task, if this process has none yet.
        match supervisor::current() {
            // The supervisor forks and execs: here a start is a message and its answer. The
            // run's state (some 3 KiB) is made when a runtime thread first polls this, not
            // here: made on the caller's thread between the small records that outlive it,
            // it left a hole per task that the next ones were too big for (1.4 KiB of memory
            // per finished task).
            Some(supervisor) => {
                runtime().spawn(async move { Box::pin(run.supervised(supervisor)).await });
            }
            // fork and exec block: they run on the blocking pool, never on the workers that
            // serve running tasks and HTTP calls.
            None => {
                runtime().spawn_blocking(move || run.here());
            }
        }
    }

    fn stop_bound(&self) -> Duration {
        // The grace period, the SIGKILL, the pipe cut-off and the wait for the group to go.
        self.settings.grace + Duration::from_secs(3)
    }

    fn prepare(&self) {
        // Making our own log directory starts the supervisor too (it removes the directory).
        let _ = self.dir();
        supervisor::current();
    }

    fn log_dir(&self) -> Option<&Path> {
        self.dir().ok().map(|dir| &**dir)
    }

    fn close(&self) {
        let own = self.own_log_dir.lock().unwrap_or_else(|p| p.into_inner()).take();
        match own {
            Some((maker, dir)) if !crate::runtime::forked_from(maker) => drop(dir.close()),
            // A forked child: the directory is its parent's to remove.
            Some((_, dir)) => drop(dir.keep()),
            None => {}
        }
    }
}

impl Drop for LocalExecutor {
    fn drop(&mut self) {
        self.close();
    }
}

/// One run, handed to the runtime thread that carries it out.
struct Run {
    spec: TaskSpec,
    cancel: Cancel,
    stop: Stop,
    /// Where its log file goes, should it need one (`None`: it keeps no log).
    log_dir: Option<Arc<Path>>,
    log_limit: u64,
    events: Box<dyn EventSink>,
}

/// How a stop proceeds.
#[derive(Clone, Copy)]
struct Stop {
    /// Between SIGTERM and SIGKILL.
    grace: Duration,
    /// How long output pipes may stay open after the shell exits.
    pipe_grace: Duration,
}

impl Run {
    fn log(&self) -> LogFile {
        let path = self.log_dir.as_ref().map(|dir| dir.join(format!("{}.log", self.spec.id)));
        LogFile::new(path, self.log_limit, self.spec.hold_output, self.spec.hide_secrets)
    }

    /// Starts the command through the supervisor and runs it to its end.
    async fn supervised(mut self, supervisor: supervisor::Supervisor) {
        let started = group::spawn_supervised(&supervisor, &self.spec).await;
        let log = self.log();
        if let Some(running) = report_start(started, &self.spec, log.reader(), &mut self.events) {
            supervise(running, self.spec.timeout, self.cancel, self.stop, log, self.events).await;
        }
    }

    /// Starts the command here (it blocks), then watches it on the runtime.
    fn here(mut self) {
        let started = group::spawn_here(&self.spec);
        let log = self.log();
        if let Some(running) = report_start(started, &self.spec, log.reader(), &mut self.events) {
            let timeout = self.spec.timeout;
            runtime().spawn(supervise(running, timeout, self.cancel, self.stop, log, self.events));
        }
    }
}

/// Reports how a start went (a run that started hands out its log's reader first); the
/// running command if it did start.
fn report_start(
    started: io::Result<Running>,
    spec: &TaskSpec,
    log: Option<OutputLog>,
    events: &mut Box<dyn EventSink>,
) -> Option<Running> {
    match started {
        Err(e) if supervisor::Died::is(&e) => {
            events.event(ExecEvent::Failed(e.to_string()));
            None
        }
        Err(e) => {
            let workdir = spec.workdir.display();
            events.event(ExecEvent::Failed(format!("cannot start sh in {workdir}: {e}")));
            None
        }
        Ok(running) => {
            if let Some(log) = log {
                events.log(log);
            }
            events.event(ExecEvent::Started { pid: running.pgid as u32 });
            Some(running)
        }
    }
}

thread_local! {
    // One read buffer per runtime thread, shared by all the tasks it serves.
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 * 1024]);
}

/// Where output goes: the log and the events. Both pipes use it from one task, so the lock
/// is never contended; it only lets the two reads share it.
struct Sink {
    log: LogFile,
    events: Box<dyn EventSink>,
}

/// One output pipe.
struct Pipe {
    fd: Option<AsyncFd<File>>,
    stream: Stream,
}

impl Pipe {
    fn open(&self) -> bool {
        self.fd.is_some()
    }

    /// Waits until the pipe can be read, then reads a bounded amount (so a flood of output
    /// cannot starve the timeout), and closes it at end of file or on a read error.
    async fn read_some(&mut self, sink: &Mutex<Sink>) {
        let Some(fd) = &self.fd else {
            return std::future::pending().await;
        };
        let mut eof = true;
        if let Ok(mut ready) = fd.readable().await {
            eof = READ_BUF.with_borrow_mut(|buf| {
                for _ in 0..16 {
                    match ready.get_inner().read(buf) {
                        Ok(0) => return true,
                        Ok(n) => {
                            let mut sink = sink.lock().unwrap_or_else(|p| p.into_inner());
                            sink.log.write(self.stream, &buf[..n]);
                            let output =
                                ExecEvent::Output { stream: self.stream, bytes: &buf[..n] };
                            sink.events.event(output);
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            ready.clear_ready();
                            return false;
                        }
                        Err(_) => return true,
                    }
                }
                false
            });
        }
        if eof {
            self.fd = None;
        }
    }
}

/// Runs a started command to its end and reports how it ended.
async fn supervise(
    running: Running,
    timeout: Duration,
    cancel: Cancel,
    limits: Stop,
    log: LogFile,
    events: Box<dyn EventSink>,
) {
    let sink = Mutex::new(Sink { log, events });
    let Running { mut leader, pgid, stdout, stderr } = running;
    let group = leader.signaller(pgid);
    let mut out = Pipe { fd: Some(stdout), stream: Stream::Stdout };
    let mut err = Pipe { fd: Some(stderr), stream: Stream::Stderr };

    let timeout_at = Instant::now() + timeout;
    let mut stopped: Option<Ended> = None; // TimedOut or Cancelled, once we decided to stop it
    let mut exit: Option<ExitStatus> = None;
    let mut lost = false; // the supervisor died, and the task with it
    let mut kill_at: Option<Instant> = None; // when the group gets SIGKILL
    let mut give_up_at: Option<Instant> = None; // when we stop reading pipes after SIGKILL

    loop {
        if exit.is_some() && !out.open() && !err.open() {
            break;
        }
        let wake_at =
            [(stopped.is_none() && exit.is_none()).then_some(timeout_at), kill_at, give_up_at]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));

        tokio::select! {
            () = out.read_some(&sink), if out.open() => {}
            () = err.read_some(&sink), if err.open() => {}
            status = leader.wait(), if exit.is_none() => {
                if status.is_err() {
                    lost = true;
                }
                exit = Some(status.unwrap_or_else(|_| ExitStatus::from_raw(libc::SIGKILL)));
                // Pipes still open now are held by leftovers: give them a moment, then kill.
                let deadline = Instant::now() + limits.pipe_grace;
                kill_at = Some(kill_at.map_or(deadline, |k| k.min(deadline)));
            }
            // Also after the shell's exit: leftovers may still hold its pipes.
            () = cancel.cancelled(), if stopped.is_none() => {
                stopped = Some(Ended::Cancelled);
                group.signal(Signal::SIGTERM);
                let deadline = Instant::now() + limits.grace;
                kill_at = Some(kill_at.map_or(deadline, |k| k.min(deadline)));
            }
            () = sleep_until(wake_at) => {
                let now = Instant::now();
                if stopped.is_none() && exit.is_none() && now >= timeout_at {
                    stopped = Some(Ended::TimedOut);
                    group.signal(Signal::SIGTERM);
                    kill_at = Some(now + limits.grace);
                }
                if kill_at.is_some_and(|k| now >= k) {
                    group.signal(Signal::SIGKILL);
                    kill_at = None;
                    // A process that left the group could still hold a pipe: stop waiting soon.
                    give_up_at = Some(now + Duration::from_millis(500));
                }
                if give_up_at.is_some_and(|g| now >= g) {
                    out.fd = None;
                    err.fd = None;
                    give_up_at = None;
                }
            }
        }
    }
    // Whatever is left of the group (`cmd &` with its output redirected) ends with the task.
    leader.finish(pgid).await;
    let Sink { log, mut events } = sink.into_inner().unwrap_or_else(|p| p.into_inner());
    let code = exit.and_then(|s| s.code());
    let ended = if lost { Ended::Lost } else { stopped.unwrap_or(Ended::Exited) };
    // A run that ended by itself has a result that shows its output; a stopped one's shows a
    // message, so its output goes to the file however short.
    let output = log.close(ended == Ended::Exited);
    let exit = Exit { code, ended, output };
    events.event(ExecEvent::Exited(exit));
}
