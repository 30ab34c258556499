//! SIGTERM and SIGHUP (a closed terminal sends SIGHUP) end the CLI cleanly: the turn in
//! progress is interrupted, so its foreground command is stopped; every background task is
//! killed; then the process exits with 128 + the signal's number (143, 129).
//!
//! The handler only stores to atomics and writes one byte to a pipe; a thread waiting on
//! that pipe does the rest, whatever the main thread is blocked in (a prompt, a read of stdin).

use super::interrupt::INTERRUPTED;
use crate::background::BackgroundManager;
use nix::fcntl::OFlag;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The signal that asked the CLI to end; 0 while none came.
static ENDING: AtomicI32 = AtomicI32::new(0);
/// The pipe's write end while a watcher listens; -1 otherwise.
static WAKE: AtomicI32 = AtomicI32::new(-1);
/// A turn is running (its tools may have a foreground command to stop).
static IN_TURN: AtomicBool = AtomicBool::new(false);

extern "C" fn on_end_signal(signal: libc::c_int) {
    ENDING.store(signal, Ordering::SeqCst);
    INTERRUPTED.store(true, Ordering::SeqCst);
    let fd = WAKE.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; the buffer is a valid byte.
        unsafe { libc::write(fd, [1u8].as_ptr().cast(), 1) };
    }
}

/// True once SIGTERM or SIGHUP came: a turn that starts then is interrupted at once.
pub fn requested() -> bool {
    ENDING.load(Ordering::SeqCst) != 0
}

/// Marks a turn as running until dropped.
pub struct TurnRunning;

impl TurnRunning {
    pub fn start() -> Self {
        IN_TURN.store(true, Ordering::SeqCst);
        TurnRunning
    }
}

impl Drop for TurnRunning {
    fn drop(&mut self) {
        IN_TURN.store(false, Ordering::SeqCst);
    }
}

/// Listens for SIGTERM and SIGHUP while it lives.
pub struct EndWatch {
    write: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl EndWatch {
    pub fn start(manager: Arc<BackgroundManager>) -> std::io::Result<EndWatch> {
        use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
        // Close-on-exec: no task may hold the pipe.
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        WAKE.store(write.as_raw_fd(), Ordering::SeqCst);
        let action = SigAction::new(
            SigHandler::Handler(on_end_signal),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        // SAFETY: the handler only stores to atomics and calls write(2).
        unsafe {
            let _ = sigaction(Signal::SIGTERM, &action);
            let _ = sigaction(Signal::SIGHUP, &action);
        }
        let thread = std::thread::spawn(move || {
            let mut byte = [0u8];
            let _ = std::fs::File::from(read).read(&mut byte);
            let signal = ENDING.load(Ordering::SeqCst);
            if signal != 0 {
                end(&manager, signal);
            }
        });
        Ok(EndWatch { write: Some(write), thread: Some(thread) })
    }
}

/// Kills every task, lets the interrupted turn stop its foreground command, then exits.
fn end(manager: &BackgroundManager, signal: i32) -> ! {
    manager.shutdown();
    let give_up = Instant::now() + manager.stop_bound();
    while IN_TURN.load(Ordering::SeqCst) && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::process::exit(128 + signal)
}

impl Drop for EndWatch {
    /// The session ended by itself: closing the pipe lets the thread return.
    fn drop(&mut self) {
        WAKE.store(-1, Ordering::SeqCst);
        drop(self.write.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
