//! Starting a command and watching it until nothing of it is left.
//!
//! This is the one seam through which background work runs: `spawn` starts `sh -c command` as
//! the leader of its own process group, and `supervise` reads its output, enforces the timeout,
//! answers kill requests, and signals the whole group so that no process outlives the task.

use super::capture::{combine, LogFile, StreamHead};
use super::record::{Outcome, OutputStats, Status};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::process::{Child, Command};
use tokio::sync::Notify;
use tokio::time::{sleep_until, Instant};

/// Per-task limits, fixed when the manager is built.
#[derive(Clone, Debug)]
pub struct Limits {
    pub timeout: Duration,
    /// Between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// How long output pipes may stay open after the shell exits (a grandchild holding them).
    pub pipe_grace: Duration,
    pub output_limit: usize,
    pub log_limit: u64,
}

/// How long output pipes may stay open after the shell exits.
pub const PIPE_GRACE: Duration = Duration::from_secs(2);

impl Limits {
    /// For a command run in the foreground: the default grace and output cap, no log file.
    pub fn foreground(timeout: Duration) -> Self {
        let defaults = super::Options::default();
        Limits {
            timeout,
            grace: defaults.grace,
            pipe_grace: PIPE_GRACE,
            output_limit: defaults.output_limit,
            log_limit: 0,
        }
    }
}

/// A started command: the shell, its process group id and its two output pipes.
pub struct Running {
    child: Child,
    pgid: i32,
    stdout: AsyncFd<File>,
    stderr: AsyncFd<File>,
}

/// Starts `sh -c command` in `workdir` as the leader of a new process group.
/// Must be called inside the tokio runtime (the pipes register with its reactor).
pub fn spawn(command: &str, workdir: &Path) -> io::Result<Running> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let pgid = child.id().map(|p| p as i32).unwrap_or_default();
    let pipes = child.stdout.take().zip(child.stderr.take());
    let Some((stdout, stderr)) = pipes else {
        return Err(io::Error::other("the shell's output pipes were not created"));
    };
    Ok(Running {
        pgid,
        stdout: async_pipe(stdout.into_owned_fd()?)?,
        stderr: async_pipe(stderr.into_owned_fd()?)?,
        child,
    })
}

/// Our own readiness-based reader, so a pipe needs no buffer of its own while it waits:
/// a thousand quiet tasks then cost no read buffers at all.
fn async_pipe(fd: OwnedFd) -> io::Result<AsyncFd<File>> {
    // SAFETY: fcntl on a descriptor we own, with valid flags.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: the File owns the descriptor and keeps it open for the AsyncFd's whole life.
    unsafe { AsyncFd::register_with_interest(File::from(fd), Interest::READABLE) }
        .map_err(io::Error::from)
}

/// Sends `signal` to every process in the group; false if the group is already gone.
pub fn signal_group(pgid: i32, signal: Signal) -> bool {
    pgid > 0 && killpg(Pid::from_raw(pgid), signal).is_ok()
}

/// True while a process of the group is alive. Zombies do not count: once killed, orphans
/// wait for init to reap them, which can take seconds, and they run nothing meanwhile.
fn group_alive(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces, so parse after the last ')'.
        let mut fields = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|f| f.parse::<i32>().ok());
        pgrp == Some(pgid) && !matches!(state, Some("Z" | "X"))
    })
}

thread_local! {
    // One read buffer per runtime thread, shared by all the tasks it serves.
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 * 1024]);
}

/// One output pipe and what it keeps.
struct Stream {
    fd: Option<AsyncFd<File>>,
    head: StreamHead,
}

impl Stream {
    fn open(&self) -> bool {
        self.fd.is_some()
    }

    fn close(&mut self) {
        self.fd = None;
        self.head.finish();
    }

    /// Waits until the pipe can be read, then reads a bounded amount (so a flood of output
    /// cannot starve the timeout), and closes it at end of file or on a read error.
    async fn read_some(&mut self, log: &Mutex<LogFile>) {
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
                            self.head.push(&buf[..n]);
                            log.lock().unwrap_or_else(|p| p.into_inner()).write(&buf[..n]);
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
            self.close();
        }
    }
}

fn seconds(d: Duration) -> String {
    // 300.0 prints as "300" and 0.5 as "0.5", as the lesson's f-string would print them.
    format!("{}", d.as_secs_f64())
}

/// Runs a started command to its end and reports how it ended.
pub async fn supervise(
    running: Running,
    kill: Arc<Notify>,
    limits: Limits,
    log: LogFile,
) -> (Status, Outcome) {
    // Both pipes write to the log from one task; the lock is never contended.
    let log = Mutex::new(log);
    let Running { mut child, pgid, stdout, stderr } = running;
    let mut out = Stream { fd: Some(stdout), head: StreamHead::new(limits.output_limit) };
    let mut err = Stream { fd: Some(stderr), head: StreamHead::new(limits.output_limit) };

    let timeout_at = Instant::now() + limits.timeout;
    let mut stopped: Option<Status> = None; // Timeout or Killed, once we decided to stop it
    let mut exit: Option<std::process::ExitStatus> = None;
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
            () = out.read_some(&log), if out.open() => {}
            () = err.read_some(&log), if err.open() => {}
            status = child.wait(), if exit.is_none() => {
                // A failed wait means the child is gone already; treat it as a signal death.
                exit = Some(status.unwrap_or_else(|_| signal_exit_status()));
                // Pipes still open now are held by leftovers: give them a moment, then kill.
                let deadline = Instant::now() + limits.pipe_grace;
                kill_at = Some(kill_at.map_or(deadline, |k| k.min(deadline)));
            }
            // Also after the shell's exit: leftovers may still hold its pipes.
            _ = kill.notified(), if stopped.is_none() => {
                stopped = Some(Status::Killed);
                signal_group(pgid, Signal::SIGTERM);
                let deadline = Instant::now() + limits.grace;
                kill_at = Some(kill_at.map_or(deadline, |k| k.min(deadline)));
            }
            _ = sleep_until(wake_at) => {
                let now = Instant::now();
                if stopped.is_none() && exit.is_none() && now >= timeout_at {
                    stopped = Some(Status::Timeout);
                    signal_group(pgid, Signal::SIGTERM);
                    kill_at = Some(now + limits.grace);
                }
                if kill_at.is_some_and(|k| now >= k) {
                    signal_group(pgid, Signal::SIGKILL);
                    kill_at = None;
                    // A process that left the group could still hold a pipe: stop waiting soon.
                    give_up_at = Some(now + Duration::from_millis(500));
                }
                if give_up_at.is_some_and(|g| now >= g) {
                    out.close();
                    err.close();
                    give_up_at = None;
                }
            }
        }
    }
    // Whatever is left of the group (`cmd &` with its output redirected) ends with the task.
    // SIGKILL takes effect asynchronously: wait (briefly) until the group is really gone.
    if signal_group(pgid, Signal::SIGKILL) {
        let give_up = Instant::now() + Duration::from_secs(1);
        while group_alive(pgid) && Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let mut log = log.into_inner().unwrap_or_else(|p| p.into_inner());
    log.close();

    let exit_code = exit.and_then(|s| s.code());
    let (status, result) = match stopped {
        Some(Status::Timeout) => {
            (Status::Timeout, format!("Error: Timeout ({}s)", seconds(limits.timeout)))
        }
        Some(Status::Killed) => (Status::Killed, "Error: Killed".to_string()),
        _ => {
            let text = combine(&out.head, &err.head, limits.output_limit);
            let text = if text.is_empty() { "(no output)".to_string() } else { text };
            (Status::Completed, text)
        }
    };
    let output = OutputStats {
        stdout_bytes: out.head.bytes,
        stderr_bytes: err.head.bytes,
        log_bytes: log.written,
        log_cut: log.cut,
        log_path: log.created_path().map(Path::to_path_buf),
        log_error: log.error.clone(),
    };
    let outcome = Outcome { result, exit_code, output };
    (status, outcome)
}

fn signal_exit_status() -> std::process::ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    std::process::ExitStatus::from_raw(libc::SIGKILL)
}
