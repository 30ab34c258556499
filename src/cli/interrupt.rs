//! Ctrl-C during a turn: SIGINT sets a flag the loop polls.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by SIGINT during a turn; the loop polls it.
pub(crate) static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

pub(crate) fn install_signal_handlers() {
    use nix::sys::signal::{sigaction, signal, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action =
        SigAction::new(SigHandler::Handler(on_sigint), SaFlags::SA_RESTART, SigSet::empty());
    // SAFETY: the handler only stores to an atomic; SIGPIPE's default ends the program
    // quietly when its output pipe closes (`bgagent -p ... | head -1`).
    unsafe {
        let _ = sigaction(Signal::SIGINT, &action);
        let _ = signal(Signal::SIGPIPE, SigHandler::SigDfl);
    }
}

/// True once Ctrl-C was pressed in this turn.
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
