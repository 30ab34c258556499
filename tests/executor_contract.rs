//! One contract for every executor: what the background manager and the bash tool rely on
//! when they launch through `Executor`, checked through the trait alone.
//!
//! The contract is a list of checks (the `contract_*` functions, each generic over the
//! executor). Each executor declares, in the `contract!` lines at the end, the checks it
//! supports, and why it leaves out the others. An executor added later (one that runs
//! commands in a container, say) gets its own `contract!` line and has to pass the checks
//! that mean something for it.
//!
//! - `LocalExecutor`, started through a supervisor as the CLI and the Python package run it,
//!   passes every check.
//! - `MemoryExecutor` runs no process: its script below plays each command of the contract as
//!   a `Scripted` value. It passes what those can say (exit codes, order of events, a start
//!   that fails, timeout, cancel). A script cannot die by a signal, keeps no log, and has no
//!   processes or descriptors, so the signal, log, session and descriptor checks are not its.

mod common;

use bgagent::exec::{
    Ended, EventSink, ExecEvent, Executor, Exit, LocalExecutor, LocalSettings, MemoryExecutor,
    OutputStats, Scripted, Stream, TaskSpec,
};
use bgagent::runtime::Cancel;
use common::{marker, processes_with};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long any one event may take to come (generous: the machine may be loaded).
const PATIENCE: Duration = Duration::from_secs(60);
/// A timeout no check reaches.
const LONG: Duration = Duration::from_secs(600);

/// The contract's commands. The memory executor's script knows each by its text.
const OUTPUT: &str = "echo one; echo two >&2; echo three";
const HANG: &str = "sleep 600";
const LOGGED: &str = "printf 'logged\\n'";

/// An event as received (owned, so it can cross threads).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Started(u32),
    Output(Stream, Vec<u8>),
    Exited(Exit),
    Failed(String),
}

/// Hands every event to the test thread; dropped (which the test sees) when the executor is
/// done with the run.
struct Collect(std::sync::mpsc::Sender<Event>);

impl EventSink for Collect {
    fn event(&mut self, event: ExecEvent<'_>) {
        let event = match event {
            ExecEvent::Started { pid } => Event::Started(pid),
            ExecEvent::Output { stream, bytes } => Event::Output(stream, bytes.to_vec()),
            ExecEvent::Exited(exit) => Event::Exited(exit),
            ExecEvent::Failed(why) => Event::Failed(why),
        };
        let _ = self.0.send(event);
    }
}

/// One launched run.
struct Run {
    events: Receiver<Event>,
    cancel: Cancel,
    /// Every event received so far, in order.
    seen: Vec<Event>,
}

impl Run {
    /// The next event; fails the test if none comes in time or the run is over.
    fn next(&mut self) -> Event {
        let event = self.events.recv_timeout(PATIENCE).expect("an event in time");
        self.seen.push(event.clone());
        event
    }

    /// Every event until the last, checking that nothing follows it: the executor drops the
    /// sink after the last event, and nothing may come before it does.
    fn all(mut self) -> Vec<Event> {
        loop {
            if let Event::Exited(_) | Event::Failed(_) = self.next() {
                break;
            }
        }
        match self.events.recv_timeout(PATIENCE) {
            Err(RecvTimeoutError::Disconnected) => self.seen,
            Ok(after) => panic!("an event after the last one: {after:?} (after {:?})", self.seen),
            Err(RecvTimeoutError::Timeout) => panic!("the executor kept the sink after the end"),
        }
    }

    /// Events up to the end; the run's exit (it must have started).
    fn exit(self) -> Exit {
        match self.all().pop() {
            Some(Event::Exited(exit)) => exit,
            other => panic!("the run did not exit: {other:?}"),
        }
    }
}

/// A temporary directory the commands run in.
fn workdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn spec(command: &str, workdir: &Path, timeout: Duration) -> TaskSpec {
    TaskSpec {
        id: format!("t{}", uuid::Uuid::new_v4().simple()),
        command: command.to_string(),
        workdir: workdir.to_path_buf(),
        timeout,
        keep_log: false,
        hold_output: 0,
        hide_secrets: false,
    }
}

fn launch<E: Executor>(executor: &E, spec: TaskSpec) -> Run {
    let (send, events) = channel();
    let cancel = Cancel::new();
    executor.launch(spec, cancel.clone(), Box::new(Collect(send)));
    Run { events, cancel, seen: Vec::new() }
}

/// Polls `ready` until it holds; fails the test with `what` after a generous deadline.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let give_up = Instant::now() + PATIENCE;
    while !ready() {
        assert!(Instant::now() < give_up, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---- The checks ----

/// The command's exit code comes back as it is, and an exit by itself is `Exited`.
fn contract_exit_codes<E: Executor>(executor: &E) {
    let dir = workdir();
    for code in [0, 3, 255] {
        let exit = launch(executor, spec(&format!("exit {code}"), dir.path(), LONG)).exit();
        assert_eq!((exit.code, exit.ended), (Some(code), Ended::Exited), "exit {code}");
    }
}

/// A shell ended by a signal has no exit code, and still ended by itself.
fn contract_signal_death<E: Executor>(executor: &E) {
    let dir = workdir();
    let exit = launch(executor, spec("kill -9 $$", dir.path(), LONG)).exit();
    assert_eq!((exit.code, exit.ended), (None, Ended::Exited));
}

/// `Started` first, then only output, then one `Exited`, then nothing; each stream's bytes
/// arrive whole and in order (the order between the two streams is not promised).
fn contract_output_order<E: Executor>(executor: &E) {
    let dir = workdir();
    let events = launch(executor, spec(OUTPUT, dir.path(), LONG)).all();
    assert!(matches!(events.first(), Some(Event::Started(pid)) if *pid > 0), "{events:?}");
    let Some(Event::Exited(exit)) = events.last() else { panic!("no exit last: {events:?}") };
    assert_eq!((exit.code, exit.ended), (Some(0), Ended::Exited));
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    for event in &events[1..events.len() - 1] {
        match event {
            Event::Output(Stream::Stdout, bytes) => stdout.extend_from_slice(bytes),
            Event::Output(Stream::Stderr, bytes) => stderr.extend_from_slice(bytes),
            other => panic!("not output between start and exit: {other:?} in {events:?}"),
        }
    }
    assert_eq!(String::from_utf8(stdout).unwrap(), "one\nthree\n");
    assert_eq!(String::from_utf8(stderr).unwrap(), "two\n");
}

/// A command that cannot start (its directory is gone) is one `Failed` naming why, alone.
fn contract_failed_start<E: Executor>(executor: &E) {
    let dir = workdir();
    let gone = dir.path().join("gone");
    let events = launch(executor, spec("echo hi", &gone, LONG)).all();
    match &events[..] {
        [Event::Failed(why)] => assert!(why.contains(&*gone.to_string_lossy()), "{why}"),
        other => panic!("not a single failure: {other:?}"),
    }
}

/// The timeout stops the command: no exit code, `TimedOut`.
fn contract_timeout<E: Executor>(executor: &E) {
    let dir = workdir();
    let exit = launch(executor, spec(HANG, dir.path(), Duration::from_millis(300))).exit();
    assert_eq!((exit.code, exit.ended), (None, Ended::TimedOut));
}

/// A cancel stops a started command: no exit code, `Cancelled`.
fn contract_cancel<E: Executor>(executor: &E) {
    let dir = workdir();
    let mut run = launch(executor, spec(HANG, dir.path(), LONG));
    assert!(matches!(run.next(), Event::Started(_)));
    run.cancel.cancel();
    let exit = run.exit();
    assert_eq!((exit.code, exit.ended), (None, Ended::Cancelled));
}

/// The log: a short output of a run that ended by itself stays in memory; past what is held,
/// or when the run was stopped, it is a file in the executor's log directory; without
/// `keep_log` there is none.
fn contract_log<E: Executor>(executor: &E) {
    let dir = workdir();
    let logged = |hold_output, command: &str| {
        let spec = TaskSpec { keep_log: true, hold_output, ..spec(command, dir.path(), LONG) };
        let id = spec.id.clone();
        (id, launch(executor, spec))
    };

    let (_, run) = logged(1024, LOGGED);
    let held = run.exit().output;
    let want = OutputStats {
        log_held: Some(b"logged\n".to_vec().into()),
        log_bytes: 7,
        ..OutputStats::default()
    };
    assert_eq!(held, want);

    let (id, run) = logged(0, LOGGED);
    let log = run.exit().output;
    let path = executor.log_dir().expect("a log directory").join(format!("{id}.log"));
    assert_eq!(
        log,
        OutputStats { log_path: Some(path.clone()), log_bytes: 7, ..OutputStats::default() }
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"logged\n");

    // Stopped: its output goes to the file however short.
    let (id, mut run) = logged(1024, &format!("{LOGGED}; {HANG}"));
    while !matches!(run.next(), Event::Output(..)) {}
    run.cancel.cancel();
    let exit = run.exit();
    assert_eq!(exit.ended, Ended::Cancelled);
    let path = executor.log_dir().unwrap().join(format!("{id}.log"));
    assert_eq!(
        exit.output,
        OutputStats { log_path: Some(path.clone()), log_bytes: 7, ..OutputStats::default() }
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"logged\n");

    let unlogged = launch(executor, spec(LOGGED, dir.path(), LONG)).exit();
    assert_eq!(unlogged.output, OutputStats::default());
}

/// A grandchild that leaves the task's process group and session (`setsid`) still ends with
/// its task, whether the task ends by itself or is cancelled. It is not promised gone when
/// `Exited` comes: it is found and killed shortly after the task ends.
fn contract_left_session<E: Executor>(executor: &E) {
    let dir = workdir();
    for stop in [false, true] {
        let (mark, ready) = (marker(), dir.path().join(format!("escaped-{stop}")));
        let escape = format!(
            "setsid sh -c 'touch {}; sleep 600; :' {mark} >/dev/null 2>&1 &",
            ready.display()
        );
        let wait = format!("while [ ! -e {} ]; do sleep 0.01; done", ready.display());
        let tail = if stop { "sleep 600" } else { "echo left" };
        let mut run = launch(executor, spec(&format!("{escape} {wait}; {tail}"), dir.path(), LONG));
        if stop {
            wait_until("the escape runs", || ready.exists());
            run.cancel.cancel();
        } else {
            assert!(matches!(run.next(), Event::Started(_)));
        }
        let exit = run.exit();
        assert_eq!(exit.ended, if stop { Ended::Cancelled } else { Ended::Exited });
        assert!(ready.exists(), "the escape ran");
        wait_until("the escaped process is gone", || processes_with(&mark).is_empty());
    }
}

/// The command gets descriptors 0, 1 and 2 and no other (the shell lists its own: an entry
/// that is gone once listed was the listing's own directory).
fn contract_only_std_fds<E: Executor>(executor: &E) {
    let dir = workdir();
    let list = r#"for f in /proc/$$/fd/*; do [ -e "$f" ] && echo "${f##*/}"; done"#;
    let events = launch(executor, spec(list, dir.path(), LONG)).all();
    let mut stdout = Vec::new();
    for event in &events {
        if let Event::Output(Stream::Stdout, bytes) = event {
            stdout.extend_from_slice(bytes);
        }
    }
    let fds: BTreeSet<u32> =
        String::from_utf8(stdout).unwrap().lines().map(|fd| fd.parse().unwrap()).collect();
    assert_eq!(fds, BTreeSet::from([0, 1, 2]), "{events:?}");
}

// ---- The executors ----

/// The local executor as the CLI and the Python package run it: through a supervisor.
fn local() -> LocalExecutor {
    common::use_supervisor();
    let settings = LocalSettings { grace: Duration::from_millis(300), ..LocalSettings::default() };
    LocalExecutor::new(settings).unwrap()
}

/// The memory executor, its script playing each command of the contract.
fn memory() -> MemoryExecutor {
    MemoryExecutor::new(|spec| {
        if !spec.workdir.is_dir() {
            return Scripted::Fail(format!("cannot start sh in {}", spec.workdir.display()));
        }
        let exit = |stdout: &str, stderr: &str, code| Scripted::Exit {
            stdout: stdout.to_string(),
            stderr: stderr.to_string(),
            code,
        };
        match spec.command.as_str() {
            OUTPUT => exit("one\nthree\n", "two\n", 0),
            HANG => Scripted::Hang,
            command => match command.strip_prefix("exit ").and_then(|n| n.parse().ok()) {
                Some(code) => exit("", "", code),
                None => Scripted::Fail(format!("the script does not play {command}")),
            },
        }
    })
}

/// One test per check an executor supports.
macro_rules! contract {
    ($executor:ident: $($check:ident),* $(,)?) => {
        mod $executor {
            $(
                #[test]
                fn $check() {
                    super::$check(&super::$executor());
                }
            )*
        }
    };
}

contract!(local:
    contract_exit_codes,
    contract_signal_death,
    contract_output_order,
    contract_failed_start,
    contract_timeout,
    contract_cancel,
    contract_log,
    contract_left_session,
    contract_only_std_fds,
);

// Not here: signal_death (a script exits with a code), log (it keeps none),
// left_session and only_std_fds (it has no processes and no descriptors).
contract!(memory:
    contract_exit_codes,
    contract_output_order,
    contract_failed_start,
    contract_timeout,
    contract_cancel,
);
