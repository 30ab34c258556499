//! The supervisor: one small process per owner that starts the owner's tasks, so that nothing
//! a task starts can outlive the task or the owner, whatever signal ends the owner.
//!
//! It runs the command the embedding program names ([`set_command`]: the CLI its own binary,
//! Python the interpreter), in a process group of its own so that a Ctrl-C at the terminal
//! does not reach it. The owner sends it orders over a socket ([`protocol`]); it answers
//! with reports that one reader task on the runtime hands to whoever waits for them. Without
//! a command (a Rust program that did not name one) there is no supervisor: tasks are
//! started by the owner itself, and only a normal exit cleans up.

mod protocol;
mod server;
mod spawn;

use protocol::{Order, Report, Start};
use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
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

/// This process's link to its supervisor. A forked child is another owner, so the link
/// remembers whose it is.
enum Link {
    Up {
        owner: u32,
        link: Arc<Shared>,
    },
    /// No command, or it could not start: do not try again for this owner.
    Down {
        owner: u32,
    },
}

static LINK: Mutex<Option<Link>> = Mutex::new(None);

/// What the owner's threads share about one supervisor.
struct Shared {
    /// The process that started this supervisor: only it may give orders (a forked child
    /// inherits the socket, but not the tasks).
    owner: u32,
    socket: OwnedFd,
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
    /// The shell's pid (and group), once started.
    pid: Option<i32>,
    started: Option<oneshot::Sender<Result<i32, i32>>>,
    exited: Option<oneshot::Sender<(i32, bool)>>,
    released: Option<oneshot::Sender<()>>,
}

/// Starts this process's supervisor if it has none yet. Done when an executor is made, so
/// the first task does not wait for it longer than it must.
pub fn ensure_started() {
    current_link();
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
    let ours =
        matches!(&*guard, Some(Link::Up { owner, .. } | Link::Down { owner }) if *owner == me);
    if !ours {
        *guard = Some(match start_supervisor() {
            Some(link) => Link::Up { owner: me, link },
            None => Link::Down { owner: me },
        });
    }
    match &*guard {
        Some(Link::Up { link, .. }) if link.alive.load(Ordering::Acquire) => Some(link.clone()),
        _ => None,
    }
}

fn start_supervisor() -> Option<Arc<Shared>> {
    let (program, args) = COMMAND.get()?.split_first()?;
    // The supervisor needs pidfds (Linux 5.4): without them, tasks are started here.
    super::procs::pidfd_open(std::process::id() as i32).ok()?;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (ours, theirs) =
        socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).ok()?;
    for fd in [&ours, &theirs] {
        // Room for many orders and reports in flight.
        set_buffer(fd.as_raw_fd(), libc::SO_SNDBUF, 4 << 20);
    }
    let owner = std::process::id();
    Command::new(program)
        .args(args)
        .env(ENV, owner.to_string())
        .stdin(Stdio::from(theirs))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .ok()?; // never waited for: it outlives us, or ends as we exit
    let max_order = send_buffer(ours.as_raw_fd()).saturating_sub(8 << 10).min(server::MAX_ORDER);
    let link = Arc::new(Shared {
        owner,
        max_order,
        socket: ours,
        alive: AtomicBool::new(true),
        next_token: AtomicU64::new(1),
        last_env: Mutex::new(None),
        waiting: Mutex::new(HashMap::new()),
    });
    crate::runtime::runtime().spawn(read_reports(link.clone()));
    Some(link)
}

fn set_buffer(fd: RawFd, option: libc::c_int, size: libc::c_int) {
    // SAFETY: setsockopt with a valid int option on a socket we own.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// The socket's send buffer as granted.
fn send_buffer(fd: RawFd) -> usize {
    let mut size: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    let out = (&mut size as *mut libc::c_int).cast();
    // SAFETY: getsockopt into an int on a socket we own.
    let ok = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, out, &mut len) };
    if ok == 0 {
        size.max(0) as usize
    } else {
        0
    }
}

/// Hands each report to whoever waits for it, until the supervisor is gone; then every
/// waiter learns that (its sender is dropped).
async fn read_reports(link: Arc<Shared>) {
    let fd = link.socket.as_raw_fd();
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
        let mut buf = vec![0u8; protocol::REPORT_SIZE * 4096];
        'read: loop {
            let Ok(mut ready) = readable.readable().await else {
                break;
            };
            loop {
                // SAFETY: recv(2) into our buffer on our socket, without blocking.
                let n = unsafe {
                    libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
                };
                if n > 0 {
                    Report::decode_all(&buf[..n as usize]).for_each(|r| link.deliver(r));
                    continue;
                }
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock if n < 0 => ready.clear_ready(),
                    io::ErrorKind::Interrupted if n < 0 => continue,
                    _ => break 'read,
                }
                break;
            }
        }
    }
    // The supervisor is gone (someone killed it): new tasks are started here from now on, and
    // the groups it left are stopped here, as its own cleanup would have (what left them is
    // out of reach now).
    link.alive.store(false, Ordering::Release);
    let orphaned: Vec<Waiting> =
        link.waiting.lock().unwrap_or_else(|p| p.into_inner()).drain().map(|(_, w)| w).collect();
    for pid in orphaned.iter().filter_map(|w| w.pid) {
        let _ =
            nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    }
}

impl Shared {
    fn deliver(&self, report: Report) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let token = report.token();
        let Some(w) = waiting.get_mut(&token) else {
            return;
        };
        match report {
            Report::Started { pid, .. } => {
                w.pid = Some(pid);
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
        }
    }

    /// Sends an order without blocking; false if it cannot go now.
    fn try_send(&self, bytes: &[u8]) -> io::Result<()> {
        if self.owner != std::process::id() {
            return Err(io::Error::other(
                "a forked child cannot give the parent's supervisor orders",
            ));
        }
        // SAFETY: send(2) on our socket with a valid buffer; no SIGPIPE if the peer is gone.
        let sent = unsafe {
            libc::send(
                self.socket.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if sent < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
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
        let gone = || io::Error::other("bgagent's supervisor stopped");
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
    loop {
        match link.try_send(order) {
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            other => return other,
        }
    }
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
                        !hide_secrets || !crate::text::SECRET_VARS.iter().any(|s| k == s)
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
            pid: None,
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
            Ok(Err(_)) => Err(io::Error::other("bgagent's supervisor stopped")),
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
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let cmsgs = [ControlMessage::ScmRights(fds)];
    let flags = MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT;
    let give_up = tokio::time::Instant::now() + START_BOUND;
    let env = start.env.take();
    loop {
        let sent = {
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
            sent
        };
        match sent {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) if tokio::time::Instant::now() < give_up => {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
