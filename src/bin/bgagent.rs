//! `bgagent`: runs shell commands in the background and prints each one's notification as it
//! finishes, in completion order.

use _core::{BackgroundManager, Options, Status};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Ctrl-C or SIGTERM must stop the tasks too: they run in their own process groups, so the
/// terminal's signal never reaches them.
fn catch_interrupts() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action =
        SigAction::new(SigHandler::Handler(on_interrupt), SaFlags::empty(), SigSet::empty());
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let _ = unsafe { sigaction(signal, &action) };
    }
}

const USAGE: &str = "usage: bgagent COMMAND [COMMAND ...]

Runs each COMMAND with `sh -c` in the background, all at once, and prints one line per
finished task as it finishes: [bg:ID] STATUS (exit CODE): RESULT
Exits 0 when every command completed with exit code 0, 1 otherwise.

options:
  -h, --help     show this help
  -V, --version  show the version";

fn main() -> ExitCode {
    let commands: Vec<String> = std::env::args().skip(1).collect();
    match commands.first().map(String::as_str) {
        None => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some("-V" | "--version") => {
            println!("bgagent {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let manager = match BackgroundManager::new(Options::default()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("bgagent: {e}");
            return ExitCode::from(2);
        }
    };
    catch_interrupts();
    for command in &commands {
        println!("{}", manager.run(command));
    }
    let mut all_ok = true;
    loop {
        if INTERRUPTED.load(Ordering::SeqCst) {
            eprintln!("bgagent: interrupted, stopping {} task(s)", manager.running_count());
            manager.shutdown();
            return ExitCode::from(130);
        }
        let Some(notes) = manager.poll_notifications(Duration::from_millis(100)) else {
            continue;
        };
        if notes.is_empty() {
            break;
        }
        for n in notes {
            all_ok &= n.status == Status::Completed && n.exit_code == Some(0);
            let code = n.exit_code.map_or("none".to_string(), |c| c.to_string());
            println!("[bg:{}] {} (exit {code}): {}", n.task_id, n.status, n.result);
        }
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
