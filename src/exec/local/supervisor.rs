//! The supervisor: one small process per owner that outlives the owner's death by any signal
//! (SIGKILL included) just long enough to stop every task group the owner had running.
//!
//! The owner tells it each group as it starts (`+pgid`) and ends (`-pgid`) over a socket. It
//! waits on that socket and on a pidfd of the owner: once the owner is gone (or the socket
//! closes), it sends SIGTERM to every group still listed, SIGKILL a second later, and exits.
//! It runs the command the embedding program names ([`set_command`]: the CLI its own binary,
//! Python the interpreter), in a process group of its own so that a Ctrl-C at the terminal
//! does not reach it. Without a command there is no supervisor: only a normal exit cleans up.

use nix::sys::signal::{killpg, signal, SigHandler, Signal};
use nix::unistd::Pid;
use std::collections::HashSet;
use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Set in the supervisor's environment to the owner's pid; its presence means "be one".
pub const ENV: &str = "BGAGENT_SUPERVISOR";

static COMMAND: OnceLock<Vec<OsString>> = OnceLock::new();

/// Names the command that starts a supervisor: a program that calls [`run`] when it finds
/// [`ENV`] set. Only the first call counts.
pub fn set_command(argv: Vec<OsString>) {
    let _ = COMMAND.set(argv);
}

/// This process's link to its supervisor. A forked child is another owner, so the link
/// remembers whose it is.
enum Link {
    Up {
        owner: u32,
        socket: UnixStream,
    },
    /// No command, or it could not start: do not try again for this owner.
    Down {
        owner: u32,
    },
}

static LINK: Mutex<Option<Link>> = Mutex::new(None);

/// Starts this process's supervisor if it has none yet. Done when an executor is made, so
/// that no task waits for it (a group started while the supervisor itself was starting
/// could otherwise be missed by an owner that dies right then).
pub fn ensure_started() {
    current(&mut lock(), true);
}

/// A task's process group started: the supervisor stops it if the owner dies. (A group that
/// starts in the instant before the owner's death, before this line is sent, can be missed.)
pub fn track(pgid: i32) {
    send(&format!("+{pgid}\n"), true);
}

/// The group is gone: its number may be reused by strangers, so it is forgotten.
pub fn untrack(pgid: i32) {
    send(&format!("-{pgid}\n"), false);
}

fn lock() -> std::sync::MutexGuard<'static, Option<Link>> {
    LINK.lock().unwrap_or_else(|p| p.into_inner())
}

/// This process's socket to its supervisor; with `start`, the supervisor is started first if
/// this process has none yet (a forked child inherits its parent's link, not its supervisor).
fn current(link: &mut Option<Link>, start_one: bool) -> Option<&UnixStream> {
    let me = std::process::id();
    let ours =
        matches!(&*link, Some(Link::Up { owner, .. } | Link::Down { owner }) if *owner == me);
    if !ours && start_one {
        *link = Some(start(me));
    }
    match link {
        Some(Link::Up { owner, socket }) if *owner == me => Some(socket),
        _ => None,
    }
}

fn send(line: &str, start_one: bool) {
    let mut link = lock();
    if let Some(socket) = current(&mut link, start_one) {
        // Never block and never raise SIGPIPE: a supervisor that died costs protection, not
        // the owner.
        // SAFETY: send(2) on a socket we own, with a valid buffer and length.
        unsafe {
            libc::send(
                socket.as_raw_fd(),
                line.as_ptr().cast(),
                line.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            );
        }
    }
}

fn start(owner: u32) -> Link {
    let Some((program, args)) = COMMAND.get().and_then(|c| c.split_first()) else {
        return Link::Down { owner };
    };
    let started = UnixStream::pair().and_then(|(ours, theirs)| {
        // Room for many starts while the supervisor itself is still starting.
        // SAFETY: setsockopt with a valid int option on a socket we own.
        unsafe {
            let size: libc::c_int = 4 << 20;
            libc::setsockopt(
                ours.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        Command::new(program)
            .args(args)
            .env(ENV, owner.to_string())
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map(|_child| ours) // never waited for: it outlives us, or ends as we exit
    });
    match started {
        Ok(socket) => Link::Up { owner, socket },
        Err(_) => Link::Down { owner },
    }
}

/// The supervisor's whole life; `owner` comes from [`ENV`]. Reads its orders from stdin.
pub fn run(owner: &str) -> ! {
    // SAFETY: setting dispositions to ignore, before anything else runs in this process.
    unsafe {
        for s in [Signal::SIGINT, Signal::SIGHUP, Signal::SIGPIPE] {
            let _ = signal(s, SigHandler::SigIgn);
        }
    }
    let owner: i32 = owner.parse().unwrap_or(0);
    let groups = follow(owner);
    stop(&groups);
    std::process::exit(0)
}

/// Collects the owner's groups until the owner is gone; returns those still running.
fn follow(owner: i32) -> HashSet<i32> {
    let mut orders = Orders::default();
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, owner, 0) };
    // SAFETY: a descriptor just created, owned by nobody else.
    let pidfd = (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) });
    let owner_alive = || nix::unistd::getppid().as_raw() == owner;
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 4096];
    while owner_alive() {
        let mut fds = vec![libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 }];
        if let Some(p) = &pidfd {
            fds.push(libc::pollfd { fd: p.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        }
        // Without a pidfd (an old kernel), look at the parent twice a second.
        let wait = if pidfd.is_some() { -1 } else { 500 };
        // SAFETY: poll on descriptors we hold, with the right length.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait) };
        if ready < 0 {
            continue; // EINTR
        }
        if fds.get(1).is_some_and(|p| p.revents != 0) {
            break; // the owner exited
        }
        if fds[0].revents == 0 {
            continue;
        }
        match stdin.read(&mut buf) {
            Ok(0) | Err(_) => break, // the owner closed the socket: it is exiting
            Ok(n) => orders.take(&buf[..n]),
        }
    }
    // What the owner sent before it died may still wait in the socket (the owner may even
    // have died before this process got here): take it without blocking.
    // SAFETY: fcntl on our own standard input.
    unsafe {
        let flags = libc::fcntl(0, libc::F_GETFL);
        libc::fcntl(0, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    while let Ok(n @ 1..) = stdin.read(&mut buf) {
        orders.take(&buf[..n]);
    }
    orders.groups
}

/// `+pgid` and `-pgid` lines, as they come in pieces.
#[derive(Default)]
struct Orders {
    pending: Vec<u8>,
    groups: HashSet<i32>,
}

impl Orders {
    fn take(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..end]);
            let (sign, number) = text.split_at(text.len().min(1));
            match (sign, number.parse::<i32>()) {
                ("+", Ok(pgid)) => self.groups.insert(pgid),
                ("-", Ok(pgid)) => self.groups.remove(&pgid),
                _ => false,
            };
        }
    }
}

/// SIGTERM to every group, SIGKILL to what is left a second later.
fn stop(groups: &HashSet<i32>) {
    let signal_all =
        |s: Option<Signal>| groups.iter().filter(|&&g| killpg(Pid::from_raw(g), s).is_ok()).count();
    if signal_all(Some(Signal::SIGTERM)) == 0 {
        return;
    }
    // Orphans that died stay as zombies until init reaps them, so this may wait it out.
    let give_up = Instant::now() + Duration::from_secs(1);
    while Instant::now() < give_up && signal_all(None) > 0 {
        std::thread::sleep(Duration::from_millis(20));
    }
    signal_all(Some(Signal::SIGKILL));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_arrive_in_pieces_and_ends_forget_a_group() {
        let mut orders = Orders::default();
        for piece in ["+12", "3\n+45", "6\n-123\n", "+7\nnonsense\n+x\n"] {
            orders.take(piece.as_bytes());
        }
        assert_eq!(orders.groups, HashSet::from([456, 7]));
    }
}
