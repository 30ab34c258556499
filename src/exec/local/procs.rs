//! What /proc says about the processes on the machine: enough to find a group's members and
//! a process's descendants, and a pidfd to wait for one.

use std::collections::HashSet;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr;

/// One process, from `/proc/PID/stat`.
#[derive(Clone, Copy, Debug)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
    /// Dead and waiting to be reaped: it runs nothing.
    pub zombie: bool,
}

/// Every process that can be read now.
pub fn all() -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| stat(entry.file_name().to_str()?.parse::<i32>().ok()?))
        .collect()
}

/// One process's `/proc/PID/stat`, if it can be read: one open and one read (the fields we
/// use come first, well within the buffer).
pub fn stat(pid: i32) -> Option<Proc> {
    let mut file = std::fs::File::open(format!("/proc/{pid}/stat")).ok()?;
    let mut buf = [0u8; 512];
    let n = file.read(&mut buf).ok()?;
    parse_stat(pid, std::str::from_utf8(&buf[..n]).ok()?)
}

/// Whether this kernel lists each thread's children in /proc (`CONFIG_PROC_CHILDREN`).
pub fn children_listed() -> bool {
    let me = std::process::id();
    std::path::Path::new(&format!("/proc/{me}/task/{me}/children")).exists()
}

/// The children of `pid` (of every thread of it), from `/proc/PID/task/TID/children`; empty
/// when it cannot be read. Only what [`children_listed`] says the kernel has.
pub fn children(pid: i32) -> Vec<i32> {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for thread in threads.flatten() {
        // Read in pieces, the list resumes after the last pid read: a child added meanwhile
        // is at the end, and one reaped meanwhile cannot hide another.
        if let Ok(list) = std::fs::read_to_string(thread.path().join("children")) {
            found.extend(list.split_ascii_whitespace().filter_map(|p| p.parse::<i32>().ok()));
        }
    }
    found
}

/// The pids of every descendant of `root` (not `root` itself), following the children lists.
pub fn descendants_listed(root: i32) -> Vec<i32> {
    let mut found = children(root);
    let mut i = 0;
    while i < found.len() {
        let below = children(found[i]);
        found.extend(below);
        i += 1;
    }
    found
}

/// "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so the fields are
/// read after the last ')'.
fn parse_stat(pid: i32, stat: &str) -> Option<Proc> {
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    let session = fields.next()?.parse().ok()?;
    Some(Proc { pid, ppid, pgrp, session, zombie: matches!(state, "Z" | "X") })
}

/// A descriptor for the process (readable once it has exited, zombie or not).
pub fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor just created, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as std::os::fd::RawFd) })
}

/// Sends `signal` to the process behind `pidfd` (never to a stranger that took its number).
pub fn pidfd_signal(pidfd: &OwnedFd, signal: i32) -> bool {
    // SAFETY: pidfd_send_signal with a pidfd we hold and no siginfo.
    let sent = unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), signal, ptr::null::<u8>(), 0)
    };
    sent == 0
}

/// Whether the process behind `pidfd` has exited (a pidfd polls readable from then on).
pub fn has_exited(pidfd: &OwnedFd) -> bool {
    let mut pfd = libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: poll on one descriptor we hold, without waiting.
    unsafe { libc::poll(&mut pfd, 1, 0) != 0 }
}

/// Ends a task whose supervisor is gone, signalling nothing by number alone; true if its
/// shell was still running. The shell, known by the pidfd the supervisor handed over, is
/// stopped first: alive and stopped, it stays the subreaper of everything below it, so
/// nothing can slip out from under it. Then each live descendant is killed through a pidfd
/// of its own, after checking (with that pidfd holding it) that it is still below the shell;
/// this repeats until none is left. The shell is killed last.
pub fn end_orphaned_task(shell: i32, pidfd: &OwnedFd) -> bool {
    if has_exited(pidfd) || !pidfd_signal(pidfd, libc::SIGSTOP) {
        return false;
    }
    for _ in 0..100 {
        let all = all();
        let below: Vec<i32> = descendants(&all, shell);
        let family: HashSet<i32> = below.iter().copied().chain([shell]).collect();
        let mut killed = 0;
        for &pid in &below {
            let Ok(fd) = pidfd_open(pid) else { continue };
            let still_below = stat(pid).is_some_and(|p| !p.zombie && family.contains(&p.ppid));
            // Alive now, so the stat read above was of the process this pidfd holds.
            if still_below && !has_exited(&fd) && pidfd_signal(&fd, libc::SIGKILL) {
                killed += 1;
            }
        }
        if killed == 0 {
            break;
        }
    }
    pidfd_signal(pidfd, libc::SIGKILL);
    true
}

/// The pids of every descendant of `root` in `procs` (not `root` itself).
pub fn descendants(procs: &[Proc], root: i32) -> Vec<i32> {
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(procs.iter().filter(|p| p.ppid == parent && p.pid != parent).map(|p| p.pid));
        i += 1;
    }
    found.remove(0);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let p = parse_stat(42, "42 (a) b (c) S 7 42 40 0 -1").unwrap();
        assert_eq!((p.pid, p.ppid, p.pgrp, p.session, p.zombie), (42, 7, 42, 40, false));
        assert!(parse_stat(43, "43 (sh) Z 1 43 43 0").unwrap().zombie);
        assert!(parse_stat(44, "garbage").is_none());
    }

    #[test]
    fn descendants_follow_the_parent_links() {
        let p = |pid, ppid| Proc { pid, ppid, pgrp: pid, session: pid, zombie: false };
        let procs = [p(1, 0), p(10, 1), p(11, 10), p(12, 11), p(20, 1), p(13, 10)];
        let mut found = descendants(&procs, 10);
        found.sort();
        assert_eq!(found, vec![11, 12, 13]);
    }

    #[test]
    fn children_lists_name_our_children_and_theirs() {
        if !children_listed() {
            return; // a kernel without CONFIG_PROC_CHILDREN: the supervisor scans instead
        }
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 60 & wait"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        // Polled: the lists are read thread by thread while the test harness's other threads
        // come and go, and one such read missed the child once beside other tests.
        while !children(std::process::id() as i32).contains(&pid) {
            assert!(std::time::Instant::now() < deadline, "the shell is never listed");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // The shell starts its sleep in its own time: poll until it is listed below.
        let below = loop {
            let below = descendants_listed(pid);
            if !below.is_empty() {
                break below;
            }
            assert!(std::time::Instant::now() < deadline, "the sleep never appeared");
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        assert_eq!(below.len(), 1);
        assert_eq!(stat(below[0]).unwrap().ppid, pid);
        // SAFETY: kill(2) of the shell's unreaped child; the shell's `wait` then returns.
        unsafe { libc::kill(below[0], libc::SIGKILL) };
        child.wait().unwrap();
    }
}
