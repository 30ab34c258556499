//! A shell as the leader of its own process group: starting it, signalling the group, and
//! waiting until nothing of the group is left.

use super::supervisor;
use crate::exec::TaskSpec;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::process::{Child, Command};

/// A started command: the shell, its process group id and its two output pipes.
pub struct Running {
    pub leader: Leader,
    pub pgid: i32,
    pub stdout: AsyncFd<File>,
    pub stderr: AsyncFd<File>,
}

/// Who started the shell, and so who learns how it ended.
pub enum Leader {
    /// The supervisor (its child); nothing of the task can outlive it.
    Supervised(supervisor::Handle),
    /// This process (no supervisor was named).
    Direct(Child),
}

impl Leader {
    /// Waits for the shell to exit. An error means the supervisor died first (it ended the
    /// task); a direct wait that fails counts as a death by signal.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        match self {
            Leader::Supervised(handle) => handle.wait().await,
            Leader::Direct(child) => {
                Ok(child.wait().await.unwrap_or_else(|_| ExitStatus::from_raw(libc::SIGKILL)))
            }
        }
    }

    /// What signals the task's group from now on.
    pub fn signaller(&self, pgid: i32) -> Signaller {
        match self {
            Leader::Supervised(handle) => Signaller::Supervisor(handle.signaller()),
            Leader::Direct(_) => Signaller::Here(pgid),
        }
    }

    /// After the task's end: SIGKILL whatever is left of the group (`cmd &` with its output
    /// redirected) and wait, briefly, until it is really gone.
    pub async fn finish(self, pgid: i32) {
        match self {
            Leader::Supervised(handle) => handle.release().await,
            Leader::Direct(_) => {
                if signal_group(pgid, Signal::SIGKILL) {
                    wait_until_gone(pgid, Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// Sends signals to a task's process group.
#[derive(Clone)]
pub enum Signaller {
    /// Through the supervisor, which knows whether the group is still the task's.
    Supervisor(supervisor::Signaller),
    /// Directly (no supervisor).
    Here(i32),
}

impl Signaller {
    pub fn signal(&self, signal: Signal) {
        match self {
            Signaller::Supervisor(s) => s.signal(signal as i32),
            Signaller::Here(pgid) => {
                signal_group(*pgid, signal);
            }
        }
    }
}

/// Starts `sh -c command` in `workdir` through the supervisor, as the leader of a new
/// process group (and session). Runs inside the runtime (the pipes register with its reactor).
pub async fn spawn_supervised(
    supervisor: &supervisor::Supervisor,
    spec: &TaskSpec,
) -> io::Result<Running> {
    let started = supervisor.spawn(&spec.command, &spec.workdir, spec.hide_secrets).await?;
    Ok(Running {
        pgid: started.pid,
        stdout: async_fd(started.stdout, true)?,
        stderr: async_fd(started.stderr, true)?,
        leader: Leader::Supervised(started.handle),
    })
}

/// Starts `sh -c command` in `workdir` from this process, as the leader of a new process group
/// (no supervisor was named). Blocking (fork and exec): call it off the runtime's workers,
/// but inside the runtime.
///
/// No `pre_exec` here: it would turn the vfork-like posix_spawn into a full fork, which halves
/// the rate of task starts (measured: 1004 against 1991 `true` tasks a second).
pub fn spawn_here(spec: &TaskSpec) -> io::Result<Running> {
    let mut command = Command::new("sh");
    if spec.hide_secrets {
        for name in crate::secrets::SECRET_VARS {
            command.env_remove(name);
        }
    }
    let mut child = command
        .arg("-c")
        .arg(&spec.command)
        .current_dir(&spec.workdir)
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
        stdout: async_fd(stdout.into_owned_fd()?, true)?,
        stderr: async_fd(stderr.into_owned_fd()?, true)?,
        leader: Leader::Direct(child),
    })
}

/// Our own readiness-based reader, so a pipe needs no buffer of its own while it waits:
/// a thousand quiet tasks then cost no read buffers at all.
fn async_fd(fd: OwnedFd, nonblocking: bool) -> io::Result<AsyncFd<File>> {
    if nonblocking {
        // SAFETY: fcntl on a descriptor we own, with valid flags.
        unsafe {
            let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0
            {
                return Err(io::Error::last_os_error());
            }
        }
    }
    // SAFETY: the File owns the descriptor and keeps it open for the AsyncFd's whole life.
    unsafe { AsyncFd::register_with_interest(File::from(fd), Interest::READABLE) }
        .map_err(io::Error::from)
}

/// Sends `signal` to every process in the group; false if the group is already gone.
fn signal_group(pgid: i32, signal: Signal) -> bool {
    pgid > 0 && killpg(Pid::from_raw(pgid), signal).is_ok()
}

/// Live (not zombie) members of the group. Zombies do not count: once killed, orphans wait
/// for init to reap them, which can take seconds, and they run nothing meanwhile.
fn live_members(pgid: i32) -> Vec<i32> {
    super::procs::all().into_iter().filter(|p| p.pgrp == pgid && !p.zombie).map(|p| p.pid).collect()
}

/// A pidfd becomes readable when its process exits, zombie or not.
fn pidfd(pid: i32) -> io::Result<AsyncFd<File>> {
    async_fd(super::procs::pidfd_open(pid)?, false)
}

/// After a SIGKILL to the group, waits (at most `bound`) until none of it is alive: one scan
/// of /proc (off the runtime's workers) finds the members, then each is awaited by pidfd.
/// Nothing can join the group after the SIGKILL: a fork with that signal pending fails.
async fn wait_until_gone(pgid: i32, bound: Duration) {
    let wait = async {
        let members = tokio::task::spawn_blocking(move || live_members(pgid)).await;
        let mut fallback = false;
        let mut fds = Vec::new();
        for pid in members.unwrap_or_default() {
            match pidfd(pid) {
                Ok(fd) => fds.push(fd),
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {} // already gone
                Err(_) => fallback = true,
            }
        }
        for fd in &fds {
            let _ = fd.readable().await;
        }
        // Without pidfds (an old kernel), look again now and then.
        while fallback {
            tokio::time::sleep(Duration::from_millis(10)).await;
            fallback = !tokio::task::spawn_blocking(move || live_members(pgid).is_empty())
                .await
                .unwrap_or(true);
        }
    };
    let _ = tokio::time::timeout(bound, wait).await;
}
