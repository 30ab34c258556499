//! The supervisor: one small process per owner that starts the owner's tasks, so that nothing
//! a task starts can outlive the task or the owner, whatever signal ends the owner.
//!
//! It runs the command the embedding program names ([`set_command`]: the CLI its own binary,
//! Python the interpreter), in a process group of its own so that a Ctrl-C at the terminal
//! does not reach it. The owner sends it orders over a socket (`protocol`); it answers
//! with reports that one reader task on the runtime hands to whoever waits for them. Without
//! a command (a Rust program that did not name one) there is no supervisor: tasks are
//! started by the owner itself, and only a normal exit cleans up.
//!
//! Its invariants (the server keeps them; `server` and `table` say how):
//!
//! - **Who starts what.** Every supervised task's shell is the supervisor's child, leader of
//!   a session and process group of its own, with descriptors 0 to 2 and no others. The
//!   supervisor is a child subreaper, and so is each shell: while a shell lives, what its
//!   task orphans goes to it; once it has exited, to the supervisor. So every process a task
//!   starts stays below the supervisor, even one that leaves the group or the session.
//! - **Who reaps what.** Only the supervisor reaps: a shell when its exit is taken (its pidfd,
//!   or a SIGCHLD); the dead of a group only once the owner has released the task (before
//!   that, they keep the group's number from being reused); the orphans of tasks that are
//!   over, found by a sweep of its children; at the owner's death, all. The owner reaps none
//!   of a task's processes, and never waits for the supervisor.
//! - **Who signals a group, and when.** Only the supervisor, by the group's number, and only
//!   while something of the group is unreaped (the shell, or the dead it left), so the number
//!   is surely the task's: the owner's signals (the timeout's or a cancel's SIGTERM, SIGKILL
//!   after the grace period) until the task is released, then the release's SIGKILL. Orphans
//!   of tasks that are over are killed one by one by pid, with what they started, by a sweep.
//!   The owner signals nothing by number: it only gives orders.
//! - **The owner's death.** The supervisor watches the owner's pidfd (and the socket closing):
//!   it stops serving, sends SIGTERM to every task's group, SIGKILL once they are empty or a
//!   second has passed, then kills every live descendant of its own (escaped ones too) until
//!   none is left (for two seconds at most), reaps them, removes the directories it was told
//!   to ([`remove_at_exit`]), and exits.
//! - **The supervisor's death** (a task may kill it). The owner's reader sees the socket
//!   close; every running task is ended from the owner through the pidfd of its shell that
//!   the supervisor handed over with its start (the shell stopped, then each descendant killed
//!   through a pidfd of its own, never by number alone), and ends as `Lost`. The next start
//!   starts a new supervisor, unless the dead one never got ready.
//! - **Forks.** A forked child of the owner inherits the socket but not the tasks: it gives
//!   no orders, and starts a supervisor of its own if it runs tasks.
//!
//! Without a supervisor the owner starts each shell, as leader of a new group (not session),
//! reaps it, and signals the group itself; what leaves the group is not followed.

mod protocol;
mod server;
mod spawn;
mod table;

use crate::runtime::forked_from;
use nix::sys::socket::MsgFlags;
use protocol::{Order, Report, Start};
use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::oneshot;

/// Set in the supervisor's environment to the owner's pid; its presence means "be one".
pub const ENV: &str = "BGAGENT_SUPERVISOR";

/// How long a start may wait for the supervisor (which may itself still be starting).
const START_BOUND: Duration = Duration::from_secs(60);

static COMMAND: OnceLock<Vec<OsString>> = OnceLock::new();

/// Names the command that starts a supervisor: a program that calls [`run`] when it finds
/// [`ENV`] set. Only the first call counts.
pub fn set_command(argv: Vec<OsString>) {
    let _ = COMMAND.set(argv);
}

/// The supervisor's whole life; `owner` comes from [`ENV`]. Never returns.
pub fn run(owner: &str) -> ! {
    server::serve(owner.parse().unwrap_or(0));
    std::process::exit(0)
}

/// Directories a supervisor removes once its owner is gone (told again to a supervisor that
/// replaces one that died), each with the process that made it: a forked child inherits the
/// list, and its supervisor must not remove its parent's.
static REMOVE_AT_EXIT: Mutex<Vec<(u32, PathBuf)>> = Mutex::new(Vec::new());

/// This process's link to its supervisor. A forked child is another owner, so the link
/// remembers whose it is.
enum Link {
    /// A supervisor was started; if it has died since, the next use starts another.
    Up { owner: u32, link: Arc<Shared> },
    /// No command, or it could not start: do not try again for this owner.
    Down { owner: u32 },
}

static LINK: Mutex<Option<Link>> = Mutex::new(None);

/// What the owner's threads share about one supervisor.
struct Shared {
    /// The process that started this supervisor: only it may give orders (a forked child
    /// inherits the socket, but not the tasks).
    owner: u32,
    socket: OwnedFd,
    /// The socket again, registered with the runtime to wait until it takes an order when it
    /// is full (made by the first such wait: it needs the runtime).
    writable: OnceLock<tokio::io::unix::AsyncFd<std::fs::File>>,
    /// The supervisor's pid (for the warning when it dies).
    pid: u32,
    /// It said it was ready (so it can start: were it to die, another is worth a try).
    ready: AtomicBool,
    /// The longest order the socket takes in one packet (its send buffer, which the system
    /// may have granted smaller than asked).
    max_order: usize,
    alive: AtomicBool,
    next_token: AtomicU64,
    /// The environment the supervisor has from the latest start that sent one.
    last_env: Mutex<Option<Vec<(OsString, OsString)>>>,
    waiting: Mutex<HashMap<u64, Waiting>>,
}

/// Who waits for a task's reports.
struct Waiting {
    /// The shell's pid (and group) and a pidfd of it, once started.
    shell: Option<(i32, OwnedFd)>,
    started: Option<oneshot::Sender<Result<i32, i32>>>,
    exited: Option<oneshot::Sender<(i32, bool)>>,
    released: Option<oneshot::Sender<()>>,
}

/// This process's supervisor.
#[derive(Clone)]
pub struct Supervisor(Arc<Shared>);

/// This process's supervisor, started if this process has none yet (a forked child inherits
/// its parent's link, not its supervisor); `None` if it has none.
pub fn current() -> Option<Supervisor> {
    current_link().map(Supervisor)
}

fn current_link() -> Option<Arc<Shared>> {
    let mut guard = LINK.lock().unwrap_or_else(|p| p.into_inner());
    let me = std::process::id();
    let dead_early = match &*guard {
        Some(Link::Up { owner, link })
            if !forked_from(*owner) && !link.alive.load(Ordering::Acquire) =>
        {
            // One that was ready and then died (a task may kill it) is replaced; one that died
            // before it was ready would only die again.
            (!link.ready.load(Ordering::Acquire)).then_some(link.pid)
        }
        _ => None,
    };
    if let Some(pid) = dead_early {
        eprintln!(
            "bgagent: warning: the supervisor (pid {pid}) stopped before it was ready; {WITHOUT}"
        );
        *guard = Some(Link::Down { owner: me });
    }
    let usable = match &*guard {
        Some(Link::Up { owner, link }) => {
            !forked_from(*owner) && link.alive.load(Ordering::Acquire)
        }
        Some(Link::Down { owner }) => !forked_from(*owner),
        None => false,
    };
    if !usable {
        *guard = Some(match start_supervisor() {
            Ok(link) => Link::Up { owner: me, link },
            Err(e) => {
                if let Some(e) = e {
                    eprintln!("bgagent: warning: cannot start the supervisor ({e}); {WITHOUT}");
                }
                Link::Down { owner: me }
            }
        });
    }
    match &*guard {
        Some(Link::Up { link, .. }) if link.alive.load(Ordering::Acquire) => Some(link.clone()),
        _ => None,
    }
}

/// The error of a wait or a start cut short because the supervisor died.
#[derive(Debug)]
pub struct Died;

impl std::fmt::Display for Died {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "bgagent's supervisor died before it reported this task's start (a task may have \
             killed it), so whether the command ran is unknown; a new supervisor runs later tasks",
        )
    }
}

impl std::error::Error for Died {}

impl Died {
    /// Whether `e` is this error.
    pub fn is(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|inner| inner.is::<Died>())
    }
}

/// What is lost when tasks run without a supervisor.
const WITHOUT: &str = "tasks are started by this process instead, so what a task leaves running \
                       may outlive this process if it is killed";

/// Starts a supervisor; `Err(None)` when none is wanted (no command, or no pidfds: Linux
/// before 5.4), `Err(Some(why))` when it could not start.
fn start_supervisor() -> Result<Arc<Shared>, Option<io::Error>> {
    let Some((program, args)) = COMMAND.get().and_then(|argv| argv.split_first()) else {
        return Err(None);
    };
    super::procs::pidfd_open(std::process::id() as i32).map_err(|_| None)?;
    use nix::sys::socket::{setsockopt, socketpair, sockopt, AddressFamily, SockFlag, SockType};
    let (ours, theirs) =
        socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
            .map_err(|e| Some(e.into()))?;
    for fd in [&ours, &theirs] {
        // Room for many orders and reports in flight.
        let _ = setsockopt(fd, sockopt::SndBuf, &(4 << 20));
    }
    let owner = std::process::id();
    // An empty environment (no credentials, nothing that changes what code runs: PATH,
    // LD_PRELOAD, PYTHONPATH) and `/` as its directory: the supervisor needs neither, since
    // each start carries the task's environment and directory.
    let child = Command::new(program)
        .args(args)
        .env_clear()
        .env(ENV, owner.to_string())
        .current_dir("/")
        .stdin(Stdio::from(theirs))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| {
            Some(io::Error::new(e.kind(), format!("{}: {e}", Path::new(program).display())))
        })?;
    // Never waited for: it outlives us, or ends as we exit.
    // The send buffer as granted (the system may grant less than asked).
    let granted = nix::sys::socket::getsockopt(&ours, sockopt::SndBuf).unwrap_or(0);
    let max_order = granted.saturating_sub(8 << 10).min(server::MAX_ORDER);
    let link = Arc::new(Shared {
        owner,
        pid: child.id(),
        ready: AtomicBool::new(false),
        max_order,
        socket: ours,
        writable: OnceLock::new(),
        alive: AtomicBool::new(true),
        next_token: AtomicU64::new(1),
        last_env: Mutex::new(None),
        waiting: Mutex::new(HashMap::new()),
    });
    for (maker, dir) in REMOVE_AT_EXIT.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        if !forked_from(*maker) {
            let _ = link.try_send(&Order::RemoveAtExit(dir.clone()).encode());
        }
    }
    crate::runtime::runtime().spawn(read_reports(link.clone()));
    Ok(link)
}

/// Has this process's supervisor remove `dir` once this process is gone, however it ends
/// (SIGKILL included), starting the supervisor if there is none yet. For the owner's own
/// temporary directory only: `dir` must not be a directory the user named.
pub fn remove_at_exit(dir: &Path) {
    let entry = (std::process::id(), dir.to_path_buf());
    REMOVE_AT_EXIT.lock().unwrap_or_else(|p| p.into_inner()).push(entry);
    if let Some(link) = current_link() {
        let _ = link.try_send(&Order::RemoveAtExit(dir.to_path_buf()).encode());
    }
}

/// Hands each report to whoever waits for it, until the supervisor is gone; then the tasks
/// it ran are ended here (see [`lost`]) and every waiter learns that (its sender is dropped).
async fn read_reports(link: Arc<Shared>) {
    let registered = link.socket.try_clone().and_then(|own| {
        // SAFETY: the AsyncFd owns its duplicate of the socket for its whole life.
        unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(
                std::fs::File::from(own),
                tokio::io::Interest::READABLE,
            )
        }
        .map_err(io::Error::from)
    });
    if let Ok(readable) = registered {
        let mut buf = vec![0u8; protocol::REPORT_SIZE * protocol::REPORTS_PER_PACKET];
        'read: loop {
            let Ok(mut ready) = readable.readable().await else {
                break;
            };
            loop {
                match protocol::recv_packet(link.socket.as_raw_fd(), &mut buf) {
                    Ok(p) if p.bytes == 0 && server::hung_up(link.socket.as_raw_fd()) => {
                        break 'read
                    }
                    Ok(protocol::Received { bytes: n, fds, .. }) => {
                        let mut pidfds = fds.into_iter();
                        for report in Report::decode_all(&buf[..n]) {
                            let pidfd = match report {
                                Report::Started { .. } => pidfds.next(),
                                _ => None,
                            };
                            link.deliver(report, pidfd);
                        }
                    }
                    Err(nix::errno::Errno::EAGAIN) => {
                        ready.clear_ready();
                        break;
                    }
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(_) => break 'read,
                }
            }
        }
    }
    link.alive.store(false, Ordering::Release);
    let orphaned: Vec<Waiting> =
        link.waiting.lock().unwrap_or_else(|p| p.into_inner()).drain().map(|(_, w)| w).collect();
    let pid = link.pid;
    // Off the runtime's workers: ending a task reads /proc.
    let _ = tokio::task::spawn_blocking(move || lost(pid, orphaned)).await;
}

/// The supervisor died (a task may have killed it): its running tasks are ended here, each
/// through the pidfd of its shell that the supervisor handed over, and the loss is said. The
/// tasks then end as `error`; the next start starts a new supervisor.
fn lost(supervisor: u32, orphaned: Vec<Waiting>) {
    let mut ended = 0;
    for (pid, pidfd) in orphaned.iter().filter_map(|w| w.shell.as_ref()) {
        ended += usize::from(super::procs::end_orphaned_task(*pid, pidfd));
    }
    eprintln!(
        "bgagent: warning: the supervisor (pid {supervisor}) stopped; {ended} running task(s) \
         were ended; a new supervisor serves later tasks"
    );
}

impl Shared {
    fn deliver(&self, report: Report, pidfd: Option<OwnedFd>) {
        if report == Report::Ready {
            return self.ready.store(true, Ordering::Release);
        }
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let token = report.token();
        let Some(w) = waiting.get_mut(&token) else {
            return;
        };
        match report {
            Report::Started { pid, .. } => {
                w.shell = pidfd.map(|fd| (pid, fd));
                w.started.take().map(|s| s.send(Ok(pid)));
            }
            Report::Failed { errno, .. } => {
                w.started.take().map(|s| s.send(Err(errno)));
                waiting.remove(&token);
            }
            Report::Exited { status, gone, .. } => {
                w.exited.take().map(|s| s.send((status, gone)));
                if gone {
                    waiting.remove(&token);
                }
            }
            Report::Released { .. } => {
                w.released.take().map(|s| s.send(()));
                waiting.remove(&token);
            }
            Report::Ready => {}
        }
    }

    /// Sends an order without blocking; false if it cannot go now.
    fn try_send(&self, bytes: &[u8]) -> io::Result<()> {
        if forked_from(self.owner) {
            return Err(io::Error::other(
                "a forked child cannot give the parent's supervisor orders",
            ));
        }
        // No SIGPIPE if the peer is gone.
        let flags = MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT;
        nix::sys::socket::send(self.socket.as_raw_fd(), bytes, flags).map(drop).map_err(Into::into)
    }

    /// Makes `attempt` (a send that does not wait) until it does not find the socket full,
    /// waiting for room between tries; a full socket past `deadline` is `WouldBlock`.
    async fn when_room<T>(
        &self,
        deadline: tokio::time::Instant,
        mut attempt: impl FnMut() -> io::Result<T>,
    ) -> io::Result<T> {
        loop {
            match attempt() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
            let writable = self.writable()?;
            // Room may have come since the attempt: the readiness is cleared only when an
            // attempt made under it still found the socket full.
            loop {
                let Ok(ready) = tokio::time::timeout_at(deadline, writable.writable()).await else {
                    return Err(io::ErrorKind::WouldBlock.into());
                };
                let mut ready = ready?;
                match attempt() {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready.clear_ready(),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    other => return other,
                }
            }
        }
    }

    /// The socket registered for writability, registered now if it is not yet.
    fn writable(&self) -> io::Result<&tokio::io::unix::AsyncFd<std::fs::File>> {
        if let Some(fd) = self.writable.get() {
            return Ok(fd);
        }
        let own = std::fs::File::from(self.socket.try_clone()?);
        // SAFETY: the AsyncFd owns its duplicate of the socket for its whole life.
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(own, tokio::io::Interest::WRITABLE)
        }
        .map_err(io::Error::from)?;
        // Two made at once: one is kept, the other dropped (and deregistered).
        let _ = self.writable.set(fd);
        Ok(self.writable.get().expect("set just now"))
    }
}

/// A task's shell, started by the supervisor.
pub struct Supervised {
    pub pid: i32,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub handle: Handle,
}

/// The owner's hold on a supervised task: its exit, signals to its group, and its release.
pub struct Handle {
    link: Arc<Shared>,
    token: u64,
    exited: Option<oneshot::Receiver<(i32, bool)>>,
    /// `None` once nothing is left to release.
    released: Option<oneshot::Receiver<()>>,
}

impl Handle {
    /// Waits for the shell to exit. An error means the supervisor is gone.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let gone = || io::Error::other(Died);
        let exited = self.exited.as_mut().ok_or_else(gone)?;
        let exit = exited.await.map_err(|_| gone());
        self.exited = None;
        let (status, group_gone) = exit?;
        if group_gone {
            self.released = None;
        }
        Ok(ExitStatus::from_raw(status))
    }

    /// Something that signals the task's group while the task is not released.
    pub fn signaller(&self) -> Signaller {
        Signaller { link: self.link.clone(), token: self.token }
    }

    /// Tells the supervisor the task is over (it kills what is left of the group) and waits
    /// until the group is gone. The supervisor answers within seconds even when busy; the
    /// bound only covers a supervisor that stopped answering.
    pub async fn release(mut self) {
        let Some(released) = self.released.take() else {
            return; // nothing was left of the group when the shell exited
        };
        let deadline = tokio::time::Instant::now() + START_BOUND;
        if send_soon(&self.link, &Order::Release(self.token).encode(), deadline).await.is_ok() {
            let _ = tokio::time::timeout_at(deadline, released).await;
        }
    }
}

/// Signals one supervised task's group, through the supervisor (which knows whether the
/// group is still the task's).
#[derive(Clone)]
pub struct Signaller {
    link: Arc<Shared>,
    token: u64,
}

impl Signaller {
    pub fn signal(&self, signal: i32) {
        let order = Order::Signal { token: self.token, signal }.encode();
        if self.link.try_send(&order).is_err() {
            // Full for now (rare: it holds megabytes): send it from a task of its own.
            let (link, deadline) = (self.link.clone(), tokio::time::Instant::now() + START_BOUND);
            crate::runtime::runtime()
                .spawn(async move { send_soon(&link, &order, deadline).await });
        }
    }
}

/// Sends an order, waiting while the socket is full (until `deadline`).
async fn send_soon(link: &Shared, order: &[u8], deadline: tokio::time::Instant) -> io::Result<()> {
    link.when_room(deadline, || link.try_send(order)).await
}

impl Drop for Handle {
    /// Never released (the task's watcher stopped early): the supervisor still ends it.
    fn drop(&mut self) {
        if self.released.is_some() {
            let _ = self.link.try_send(&Order::Release(self.token).encode());
        }
    }
}

impl Supervisor {
    /// Starts `sh -c command` in `workdir` with the current environment and the user's
    /// open-file limit; returns once the supervisor has started it.
    pub async fn spawn(
        &self,
        command: &str,
        workdir: &Path,
        hide_secrets: bool,
    ) -> io::Result<Supervised> {
        let link = &self.0;
        if command.contains('\0') || workdir.as_os_str().as_encoded_bytes().contains(&0) {
            let message = "the command or its directory contains a NUL byte";
            return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        }
        let token = link.next_token.fetch_add(1, Ordering::Relaxed);
        let start = Start {
            token,
            nofile: crate::runtime::user_open_file_limit(),
            workdir: workdir.to_path_buf(),
            command: command.to_string(),
            env: Some(
                std::env::vars_os()
                    .filter(|(k, _)| {
                        !hide_secrets || !crate::secrets::SECRET_VARS.iter().any(|s| k == s)
                    })
                    .collect(),
            ),
        };
        let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC);
        let ((out_read, out_write), (err_read, err_write)) = (pipe()?, pipe()?);
        let (started_tx, started_rx) = oneshot::channel();
        let (exited_tx, exited_rx) = oneshot::channel();
        let (released_tx, released_rx) = oneshot::channel();
        let waiting = Waiting {
            shell: None,
            started: Some(started_tx),
            exited: Some(exited_tx),
            released: Some(released_tx),
        };
        link.waiting.lock().unwrap_or_else(|p| p.into_inner()).insert(token, waiting);
        let handle = Handle {
            link: link.clone(),
            token,
            exited: Some(exited_rx),
            released: Some(released_rx),
        };
        let fds = [out_write.as_raw_fd(), err_write.as_raw_fd()];
        if let Err(e) = send_start(link, start, &fds).await {
            link.waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(&token);
            handle.abandon();
            return Err(e);
        }
        drop((out_write, err_write)); // the shell holds the write ends now
        match tokio::time::timeout(START_BOUND, started_rx).await {
            Ok(Ok(Ok(pid))) => Ok(Supervised { pid, stdout: out_read, stderr: err_read, handle }),
            Ok(Ok(Err(errno))) => {
                handle.abandon();
                Err(io::Error::from_raw_os_error(errno))
            }
            Ok(Err(_)) => Err(io::Error::other(Died)),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "bgagent's supervisor did not answer within 60 s",
            )),
        }
    }
}

impl Handle {
    /// Drops a handle whose task never started: there is nothing to release.
    fn abandon(mut self) {
        self.released = None;
    }
}

/// A start with its two pipes attached, refused if longer than the socket takes in one packet;
/// waits while the socket is full. The environment goes
/// only when it differs from the one sent last; deciding that and sending happen under one
/// lock, so the supervisor sees the starts in the order the decisions were made.
async fn send_start(link: &Shared, mut start: Start, fds: &[RawFd]) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage};
    let cmsgs = [ControlMessage::ScmRights(fds)];
    let flags = MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT;
    let give_up = tokio::time::Instant::now() + START_BOUND;
    let env = start.env.take();
    let attempt = || {
        let mut last = link.last_env.lock().unwrap_or_else(|p| p.into_inner());
        let same = *last == env;
        start.env = if same { None } else { env.clone() };
        let order = start.encode();
        if order.len() > link.max_order {
            let (size, most) = (order.len(), link.max_order);
            let message =
                format!("the command and environment take {size} bytes (at most {most} here)");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        }
        let iov = [io::IoSlice::new(&order)];
        let sent = sendmsg::<()>(link.socket.as_raw_fd(), &iov, &cmsgs, flags, None);
        if sent.is_ok() && !same {
            *last = env.clone();
        }
        sent.map(drop).map_err(io::Error::from)
    };
    link.when_room(give_up, attempt).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{
        recv, setsockopt, socketpair, sockopt, AddressFamily, SockFlag, SockType,
    };

    /// A link on a socket pair with a small buffer, and the other end (the supervisor's).
    fn link() -> (Arc<Shared>, OwnedFd) {
        let (ours, theirs) =
            socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
                .unwrap();
        setsockopt(&ours, sockopt::SndBuf, &4096).unwrap();
        let link = Shared {
            owner: std::process::id(),
            socket: ours,
            writable: OnceLock::new(),
            pid: 0,
            ready: AtomicBool::new(true),
            max_order: 4096,
            alive: AtomicBool::new(true),
            next_token: AtomicU64::new(1),
            last_env: Mutex::new(None),
            waiting: Mutex::new(HashMap::new()),
        };
        (Arc::new(link), theirs)
    }

    /// Sends orders until the socket is full; how many went.
    fn fill(link: &Shared, order: &[u8]) -> usize {
        let mut sent = 0;
        loop {
            match link.try_send(order) {
                Ok(()) => sent += 1,
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
                    return sent;
                }
            }
        }
    }

    #[test]
    fn an_order_waits_for_room_in_a_full_socket_and_goes_when_there_is() {
        let (link, theirs) = link();
        let order = vec![7u8; 512];
        let sent = fill(&link, &order);
        assert!(sent > 0);
        let (done, finished) = std::sync::mpsc::channel();
        let (tried, first_try) = std::sync::mpsc::channel();
        let waiting = (link.clone(), order.clone());
        crate::runtime::runtime().spawn(async move {
            let (link, order) = waiting;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            let mut tries = 0;
            let attempt = || {
                tries += 1;
                let sent = link.try_send(&order);
                let _ = tried.send(());
                sent
            };
            let sent = link.when_room(deadline, attempt).await.map_err(|e| e.kind());
            let _ = done.send((sent, tries));
        });
        // Nothing is read before the first try, which so finds the socket full.
        first_try.recv_timeout(Duration::from_secs(60)).unwrap();
        // The other side reads every order, the one that waited last (a blocking read).
        let mut buf = vec![0u8; 1024];
        for _ in 0..=sent {
            let n = recv(theirs.as_raw_fd(), &mut buf, MsgFlags::empty()).unwrap();
            assert_eq!(&buf[..n], &order[..]);
        }
        let (sent, tries) = finished.recv_timeout(Duration::from_secs(60)).unwrap();
        assert_eq!(sent, Ok(()));
        assert!(tries >= 2, "it went at the first try: the socket was not full");
    }

    #[test]
    fn an_order_that_finds_no_room_by_its_deadline_is_refused() {
        let (link, _theirs) = link();
        let order = vec![7u8; 512];
        fill(&link, &order);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(50);
        let refused = crate::runtime::runtime().block_on(send_soon(&link, &order, deadline));
        assert_eq!(refused.map_err(|e| e.kind()), Err(io::ErrorKind::WouldBlock));
    }
}
