//! The supervisor process: it starts every task of one owner, so every process a task starts
//! descends from it, and it is a child subreaper, so whatever a task leaves behind comes back
//! to it. It waits on one epoll set for the owner's orders, the owner's death, each task
//! shell's exit (a pidfd each) and SIGCHLD (a signalfd, for adopted orphans).
//!
//! A task's shell is a subreaper too, so while it lives its orphans go to it; an orphan that
//! reaches the supervisor therefore belongs to a task whose shell has exited, and is killed.
//! Only the supervisor signals a task's group, and only while something of the group is
//! unreaped (the shell until it exits, then the dead of what it left), so the group's number
//! cannot have been reused by a stranger.
//!
//! Orphans are found by a sweep of the supervisor's own children (listed by the kernel, or
//! read from every process on the machine where it does not list them). A live orphan
//! arrives without a signal, so a sweep follows each task's end; a dead one sends SIGCHLD,
//! but so does each shell, and SIGCHLD coalesces, so its pid is not trusted: the kernel is
//! asked whether a child other than a known shell is waitable. Sweeps are rate-limited, and
//! reports are sent before a sweep runs, so no exit report waits behind one.

use super::protocol::{Order, Report, Start, REPORTS_PER_PACKET, REPORT_SIZE};
use super::spawn::{Plan, Spawner};
use super::table::{judge, Do, Orphan, Table, Waitable};
use crate::exec::local::procs::{self, pidfd_open};
use std::collections::HashSet;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The socket to the owner is our standard input.
const SOCKET: RawFd = 0;
/// Epoll keys of the three fixed sources; task keys are the owner's tokens.
const KEY_SOCKET: u64 = u64::MAX;
const KEY_OWNER: u64 = u64::MAX - 1;
const KEY_SIGNALS: u64 = u64::MAX - 2;
/// The largest order we read (a command with its environment).
pub const MAX_ORDER: usize = 1 << 20;
/// Sweeps for orphans at most this often while tasks end in a burst (or less often, when a
/// sweep itself takes long: it reads each orphan, or every process on the machine where the
/// kernel does not list our children).
const SWEEP_EVERY: Duration = Duration::from_millis(250);
/// Starts made between two looks at everything else.
const STARTS_PER_WAKE: usize = 64;
/// Starts read ahead from the socket at most (each holds two pipes).
const MAX_QUEUED_STARTS: usize = 256;

struct Server {
    epoll: OwnedFd,
    signals: OwnedFd,
    devnull: OwnedFd,
    spawner: Spawner,
    /// The tasks (each with a pidfd of its shell) and the starts read but not made yet (each
    /// with its two pipes): what is decided about them is decided there.
    table: Table<OwnedFd, Vec<OwnedFd>>,
    /// The kernel lists our children in /proc: a sweep reads those, not every process.
    children_listed: bool,
    buf: Vec<u8>,
    /// The environment of the latest start that sent one.
    env: Vec<CString>,
    /// Reports not sent yet: all of one wake-up go in one packet (or a few).
    outbox: Vec<u8>,
    /// The shells' pidfds for the `Started` reports in `outbox`, in order.
    outbox_fds: Vec<OwnedFd>,
    /// Directories to remove once the owner is gone.
    remove_at_exit: Vec<PathBuf>,
    last_sweep: Option<Instant>,
    /// At least [`SWEEP_EVERY`], and twenty times what the last sweep took.
    sweep_every: Duration,
    sweep_at: Option<Instant>,
}

/// The supervisor's whole life. Returns when the owner is gone and every task is stopped.
pub fn serve(owner: i32) {
    let Ok(mut server) = Server::new(owner) else {
        return;
    };
    // The owner replaces a supervisor that dies after this (a task may kill it), not one that
    // never got this far.
    server.send(&Report::Ready);
    server.flush();
    server.run();
    server.stop_everything();
    for dir in &server.remove_at_exit {
        // Does not follow symbolic links: only what is inside the directory goes.
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

impl Server {
    fn new(owner: i32) -> io::Result<Server> {
        // SAFETY: plain system calls on descriptors we create and own; the signal mask and
        // dispositions are set before anything else runs in this process.
        unsafe {
            for sig in [libc::SIGINT, libc::SIGHUP, libc::SIGPIPE] {
                libc::signal(sig, libc::SIG_IGN);
            }
            // A task gets 0, 1 and 2 and nothing else, whatever we inherited from the owner
            // (a descriptor the user's shell left open, an inheritable pipe); every one we
            // make ourselves is close-on-exec already.
            close_on_exec_from(3);
            cvt(libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))?;
            // It holds every task's environment (the key, when tasks are given it): a task
            // running as the same user must not read our memory or /proc/PID/environ.
            cvt(libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0))?;
            // Each task holds a pidfd here, and each queued start two pipes: the soft limit
            // goes up to the hard one (tasks get the user's back).
            let mut limit: libc::rlimit = std::mem::zeroed();
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                limit.rlim_cur = limit.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
            let mut chld: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut chld);
            libc::sigaddset(&mut chld, libc::SIGCHLD);
            libc::sigprocmask(libc::SIG_BLOCK, &chld, std::ptr::null_mut());
            let signals = OwnedFd::from_raw_fd(cvt(libc::signalfd(
                -1,
                &chld,
                libc::SFD_CLOEXEC | libc::SFD_NONBLOCK,
            ))?);
            let epoll = OwnedFd::from_raw_fd(cvt(libc::epoll_create1(libc::EPOLL_CLOEXEC))?);
            let devnull = OwnedFd::from_raw_fd(cvt(libc::open(
                c"/dev/null".as_ptr(),
                libc::O_RDWR | libc::O_CLOEXEC,
            ))?);
            let server = Server {
                epoll,
                signals,
                devnull,
                spawner: Spawner::new(),
                table: Table::new(),
                children_listed: procs::children_listed(),
                buf: vec![0; MAX_ORDER + 64],
                outbox: Vec::new(),
                outbox_fds: Vec::new(),
                remove_at_exit: Vec::new(),
                env: Vec::new(),
                last_sweep: None,
                sweep_every: SWEEP_EVERY,
                sweep_at: None,
            };
            server.watch(SOCKET, KEY_SOCKET)?;
            server.watch(server.signals.as_raw_fd(), KEY_SIGNALS)?;
            // The owner's pidfd stays open for our whole life: leak it into the epoll set.
            match pidfd_open(owner) {
                Ok(fd) => server.watch(std::mem::ManuallyDrop::new(fd).as_raw_fd(), KEY_OWNER)?,
                // Already gone: there is nothing to supervise, and nothing was started.
                Err(_) => return Err(io::Error::from_raw_os_error(libc::ESRCH)),
            }
            Ok(server)
        }
    }

    fn watch(&self, fd: RawFd, key: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: key };
        // SAFETY: epoll_ctl with descriptors we hold and a valid event.
        cvt(unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) })
            .map(drop)
    }

    /// Serves orders until the owner is gone.
    fn run(&mut self) {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
        loop {
            let wait_ms = self.next_wake().map_or(-1, |at| {
                let left = at.saturating_duration_since(Instant::now());
                left.as_millis().min(1000) as libc::c_int
            });
            // SAFETY: epoll_wait into a buffer of the given length.
            let n = unsafe {
                libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), 64, wait_ms)
            };
            for event in &events[..n.max(0) as usize] {
                match event.u64 {
                    KEY_OWNER => return,
                    KEY_SOCKET => {
                        if !self.read_orders() {
                            return;
                        }
                    }
                    KEY_SIGNALS => self.take_signals(),
                    token => self.shell_exited(token),
                }
            }
            for _ in 0..STARTS_PER_WAKE {
                let Some((start, fds)) = self.table.next_start() else { break };
                self.start(start, fds);
                // Each start is reported (with its shell's pidfd) before the next: should a
                // task kill us, the owner holds every shell we started and can end it.
                self.flush();
            }
            self.progress_releases();
            // Reports first: a sweep may take a while, and nothing waits for it.
            self.flush();
            if self.sweep_at.is_some_and(|at| Instant::now() >= at) {
                self.sweep();
            }
        }
    }

    fn send(&mut self, report: &Report) {
        self.outbox.extend_from_slice(&report.encode());
    }

    /// Sends the waiting reports, in packets of whole reports, each with the pidfds of the
    /// `Started` reports in it.
    fn flush(&mut self) {
        let mut fds = std::mem::take(&mut self.outbox_fds).into_iter();
        for packet in self.outbox.chunks(REPORT_SIZE * REPORTS_PER_PACKET) {
            let started =
                Report::decode_all(packet).filter(|r| matches!(r, Report::Started { .. })).count();
            let with: Vec<OwnedFd> = fds.by_ref().take(started).collect();
            send_packet(packet, &with);
        }
        self.outbox.clear();
    }

    /// Carries out what the table decided.
    fn apply(&mut self, todo: Vec<Do>) {
        for step in todo {
            match step {
                Do::Report(report) => self.send(&report),
                // SAFETY: kill(2) of a group the table holds as a task's: something of it is
                // unreaped, so the number cannot be a stranger's.
                Do::SignalGroup { pgid, signal } => unsafe {
                    libc::kill(-pgid, signal);
                },
                Do::Unwatch(token) => {
                    if let Some(pidfd) = self.table.shell(token) {
                        unwatch(&self.epoll, pidfd);
                    }
                }
                Do::SweepSoon => self.sweep_soon(),
            }
        }
    }

    fn next_wake(&self) -> Option<Instant> {
        if self.table.queued() > 0 {
            return Some(Instant::now());
        }
        let releasing = self.table.releasing().then(|| Instant::now() + Duration::from_millis(10));
        releasing.into_iter().chain(self.sweep_at).min()
    }

    /// Reads the orders waiting in the socket (while the queue of starts is short: the rest
    /// waits in the socket); false once the owner closed it.
    fn read_orders(&mut self) -> bool {
        while self.table.queued() < MAX_QUEUED_STARTS {
            let mut fds = Vec::new();
            match recv_order(&mut self.buf, &mut fds) {
                // An empty packet reads as 0 bytes too: only a hung-up socket means the end.
                Ok(0) if hung_up(SOCKET) => return false,
                Ok(0) => {}
                Ok(n) => {
                    let order = Order::decode(&self.buf[..n]);
                    match order {
                        // Started a few at a time (below), so that a burst of starts does not
                        // hold up signals, releases and exits behind it.
                        Some(Order::Start(start)) => self.table.queue(start, fds),
                        Some(Order::Release(token)) => self.release(token),
                        Some(Order::Signal { token, signal }) => self.signal(token, signal),
                        Some(Order::RemoveAtExit(dir)) => self.remove_at_exit.push(dir),
                        None => {}
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return false,
                // Anything else is one bad packet, not the owner leaving.
                Err(_) => {}
            }
        }
        true
    }

    fn start(&mut self, start: Start, fds: Vec<OwnedFd>) {
        let token = start.token;
        let report = match self.spawn(&start, &fds) {
            Ok((pid, pidfd)) => {
                self.outbox_fds.push(pidfd);
                Report::Started { token, pid }
            }
            Err(errno) => Report::Failed { token, errno },
        };
        drop(fds); // the task holds its own copies now
        self.send(&report);
    }

    /// Starts a task's shell; returns its pid and a pidfd of it for the owner.
    fn spawn(&mut self, start: &Start, fds: &[OwnedFd]) -> Result<(i32, OwnedFd), i32> {
        if let Some(env) = start.env_strings() {
            self.env = env; // kept for the starts that say "the same environment"
        }
        let [stdout, stderr] = fds else {
            return Err(libc::EBADF);
        };
        let plan = Plan {
            program: c"/bin/sh".into(),
            argv: vec![
                c"sh".into(),
                c"-c".into(),
                CString::new(start.command.as_bytes()).map_err(|_| libc::EINVAL)?,
            ],
            env: &self.env,
            workdir: CString::new(start.workdir.as_os_str().as_bytes())
                .map_err(|_| libc::EINVAL)?,
            stdin: self.devnull.as_raw_fd(),
            stdout: stdout.as_raw_fd(),
            stderr: stderr.as_raw_fd(),
            nofile: start.nofile,
        };
        let pid = self.spawner.spawn(&plan)?;
        // Our unreaped child: its pid cannot be reused, so this pidfd is surely its.
        let pidfds = pidfd_open(pid).and_then(|fd| Ok((fd.try_clone()?, fd)));
        let (for_owner, pidfd) = match pidfds {
            Ok(pair) => pair,
            Err(e) => {
                kill_and_reap(pid);
                return Err(e.raw_os_error().unwrap_or(libc::EIO));
            }
        };
        if let Err(e) = self.watch(pidfd.as_raw_fd(), start.token) {
            kill_and_reap(pid);
            return Err(e.raw_os_error().unwrap_or(libc::EIO));
        }
        self.table.started(start.token, pid, pidfd);
        Ok((pid, for_owner))
    }

    /// A task's shell exited: reap it and report its status (see [`Table::shell_exited`]).
    fn shell_exited(&mut self, token: u64) {
        let epoll = &self.epoll;
        let todo = self.table.shell_exited(token, |pid, pidfd| {
            unwatch(epoll, pidfd); // it stays readable from now on
            let status = reap_status(pidfd).unwrap_or(libc::SIGKILL);
            // Signal 0 asks whether any process of the group is left. (Were the number reused
            // in this instant, the answer would only send us the slow way, through a release.)
            // SAFETY: kill with signal 0 delivers nothing.
            let gone = unsafe { libc::kill(-pid, 0) } < 0;
            (status, gone)
        });
        self.apply(todo);
    }

    fn signal(&mut self, token: u64, signal: i32) {
        let todo = self.table.signal(token, signal).into_iter().collect();
        self.apply(todo);
    }

    fn release(&mut self, token: u64) {
        let todo = self.table.release(token, Instant::now());
        self.apply(todo);
        self.progress_releases();
    }

    /// Reaps what has died of each releasing group; a group that is empty is answered.
    fn progress_releases(&mut self) {
        let todo = self.table.progress_releases(Instant::now(), |pgid| {
            reap_group(pgid);
            // SAFETY: signal 0 only asks whether any process of the group is left.
            unsafe { libc::kill(-pgid, 0) < 0 }
        });
        self.apply(todo);
    }

    /// SIGCHLD: some child of ours changed state. Which one the signal does not say (it
    /// coalesces, and it is as likely a shell's, whose pidfd we may have seen first): ask the
    /// kernel which child is waitable. A shell is reaped and reported here and now; anything
    /// else is a dead orphan (or a dead member of an exited shell's group), for a sweep.
    fn take_signals(&mut self) {
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reading whole signalfd_siginfo records into one (only to empty the queue).
        while unsafe {
            libc::read(
                self.signals.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size,
            )
        } == size as isize
        {}
        // Each turn reaps the shell it finds, so the next finds another; a pid seen twice
        // (a shell that could not be reaped) ends the loop rather than spinning.
        let mut seen = HashSet::new();
        while let Some(pid) = waitable_child() {
            match self.table.waitable(pid) {
                Waitable::RunningShell(token) if seen.insert(pid) => self.shell_exited(token),
                Waitable::ReleasingShell(pgid) if seen.insert(pid) => reap_group(pgid),
                _ => {
                    // What the sweep spares (the dead of a group not yet released) stays
                    // waitable and hides any child behind it: the sweep looks at them all.
                    self.sweep_soon();
                    return;
                }
            }
        }
    }

    /// Schedules a sweep as soon as the rate of sweeps allows.
    fn sweep_soon(&mut self) {
        let now = Instant::now();
        let at = self.last_sweep.map_or(now, |last| (last + self.sweep_every).max(now));
        self.sweep_at = Some(self.sweep_at.map_or(at, |s| s.min(at)));
    }

    /// Kills every child of ours that is not a task's shell (an orphan of a task whose shell
    /// has exited) with everything it started, and reaps the dead ones. Orphans still in the
    /// group or session of a task that is not released are spared: that task may still be
    /// reading their output, and its release ends them.
    fn sweep(&mut self) {
        let began = Instant::now();
        self.last_sweep = Some(began);
        self.sweep_at = None;
        let me = std::process::id() as i32;
        let live_groups = self.table.live_groups();
        // Our children as the kernel lists them (the shells need no look), or else every
        // process on the machine, read once for the orphans and their descendants both.
        let all = if self.children_listed { Vec::new() } else { procs::all() };
        let orphans: Vec<procs::Proc> = if self.children_listed {
            let children = procs::children(me).into_iter();
            children.filter(|&pid| !self.table.is_shell(pid)).filter_map(procs::stat).collect()
        } else {
            all.iter().filter(|p| p.ppid == me && !self.table.is_shell(p.pid)).copied().collect()
        };
        let mut killed = false;
        for orphan in orphans {
            match judge(&live_groups, &orphan) {
                Orphan::Spare => continue,
                Orphan::Reap => {
                    reap(orphan.pid);
                    continue;
                }
                Orphan::Kill => {}
            }
            // Its descendants are read before anything is killed, so none moves up meanwhile.
            let below = if self.children_listed {
                procs::descendants_listed(orphan.pid)
            } else {
                procs::descendants(&all, orphan.pid)
            };
            for pid in std::iter::once(orphan.pid).chain(below) {
                // SAFETY: our child or its descendant: alive (or a zombie) right now.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            killed = true;
        }
        self.sweep_every = SWEEP_EVERY.max(began.elapsed() * 20);
        if killed {
            // Reap them once dead, and catch what they leave behind.
            self.sweep_soon();
        }
    }

    /// The owner is gone: SIGTERM to every task group, SIGKILL to what is left a second later,
    /// then kill every descendant (escaped ones included) until none is left.
    fn stop_everything(&mut self) {
        let groups = self.table.groups();
        let signal_all =
            |sig| groups.iter().filter(|&&g| unsafe { libc::kill(-g, sig) } == 0).count();
        signal_all(libc::SIGTERM);
        let me = std::process::id() as i32;
        let give_up = Instant::now() + Duration::from_secs(1);
        // Nothing is reaped before the SIGKILL below, so no group number can be reused.
        while Instant::now() < give_up {
            let live = procs::all();
            let left = live.iter().any(|p| !p.zombie && groups.contains(&p.pgrp));
            if !left {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        signal_all(libc::SIGKILL);
        let give_up = Instant::now() + Duration::from_secs(2);
        loop {
            reap_all();
            let all = procs::all();
            let live: Vec<i32> = procs::descendants(&all, me)
                .into_iter()
                .filter(|pid| all.iter().any(|p| p.pid == *pid && !p.zombie))
                .collect();
            if live.is_empty() || Instant::now() >= give_up {
                break;
            }
            for pid in live {
                // SAFETY: our descendant, alive right now.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Marks every descriptor from `first` on close-on-exec: one call since Linux 5.11, else one
/// look at /proc/self/fd (done once, at start, never in a task's child).
fn close_on_exec_from(first: RawFd) {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range with the CLOEXEC flag changes only flags of our own descriptors.
    let marked = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if marked == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return };
    let fds: Vec<RawFd> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd >= first)
        .collect();
    for fd in fds {
        // SAFETY: fcntl on a descriptor number; one that closed meanwhile (the listing's own)
        // only fails.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}

fn unwatch(epoll: &OwnedFd, fd: &OwnedFd) {
    // SAFETY: epoll_ctl on descriptors we hold.
    unsafe {
        let (epoll, fd) = (epoll.as_raw_fd(), fd.as_raw_fd());
        libc::epoll_ctl(epoll, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut());
    }
}

/// Receives one order with any descriptors it carries.
fn recv_order(buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
    let packet = super::protocol::recv_packet(SOCKET, buf).map_err(io::Error::from)?;
    // Descriptors that did not fit (out of descriptors) are lost: the start then fails for
    // want of its pipes, and says so.
    if !packet.fds_cut {
        *fds = packet.fds;
    }
    if packet.truncated {
        return Ok(1); // too long to read: decodes as nothing
    }
    Ok(packet.bytes)
}

/// Whether the other end of a socket has closed it.
pub(super) fn hung_up(fd: RawFd) -> bool {
    let mut pfd = libc::pollfd { fd, events: 0, revents: 0 };
    // SAFETY: poll on one descriptor we hold, without waiting.
    let ready = unsafe { libc::poll(&mut pfd, 1, 0) };
    ready > 0 && pfd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
}

/// Sends a packet with these descriptors; waits while the owner's side is full, unless the
/// owner is gone.
fn send_packet(bytes: &[u8], fds: &[OwnedFd]) {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let rights = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &rights };
    let iov = [io::IoSlice::new(bytes)];
    let flags = MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT;
    loop {
        match sendmsg::<()>(SOCKET, &iov, cmsgs, flags, None) {
            Ok(_) => return,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
            Err(_) => return, // the owner is gone
        }
        let mut pfd = libc::pollfd { fd: SOCKET, events: libc::POLLOUT, revents: 0 };
        // SAFETY: poll on our socket.
        unsafe { libc::poll(&mut pfd, 1, 100) };
    }
}

/// Reaps an exited child; returns its wait status.
fn reap_status(pidfd: &OwnedFd) -> Option<i32> {
    // SAFETY: waitid into a zeroed siginfo for the child behind our pidfd.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let flags = libc::WEXITED;
        cvt(libc::waitid(libc::P_PIDFD, pidfd.as_raw_fd() as libc::id_t, &mut info, flags)).ok()?;
        let status = info.si_status();
        Some(match info.si_code {
            libc::CLD_EXITED => (status & 0xff) << 8,
            libc::CLD_DUMPED => status | 0x80,
            _ => status,
        })
    }
}

/// A child of ours that has exited and is not reaped yet (it stays so), if any.
fn waitable_child() -> Option<i32> {
    // SAFETY: waitid into a zeroed siginfo; WNOHANG never blocks, WNOWAIT reaps nothing.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        let found = libc::waitid(libc::P_ALL, 0, &mut info, flags) == 0 && info.si_pid() != 0;
        found.then(|| info.si_pid())
    }
}

/// Reaps every dead child of ours in the group.
fn reap_group(pgid: i32) {
    // SAFETY: waitid into a zeroed siginfo; WNOHANG never blocks.
    unsafe {
        loop {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let flags = libc::WEXITED | libc::WNOHANG;
            if libc::waitid(libc::P_PGID, pgid as libc::id_t, &mut info, flags) < 0
                || info.si_pid() == 0
            {
                return;
            }
        }
    }
}

fn reap(pid: i32) {
    // SAFETY: a non-blocking wait for one child of ours.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
}

fn reap_all() {
    // SAFETY: non-blocking waits for any child of ours.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
}

/// Kills and reaps a child that was never reported to the owner.
fn kill_and_reap(pid: i32) {
    // SAFETY: our own unreaped child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}
