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
//!   It does keep a log's reader (all in memory, never rotated): the live-log checks that need
//!   no running process are its too.

mod common;

use bgagent::exec::{
    Chunk, Ended, EventSink, ExecEvent, Executor, Exit, LocalExecutor, LocalSettings,
    MemoryExecutor, OutputLog, OutputStats, Scripted, Stream, TaskSpec,
};
use bgagent::runtime::{runtime, Cancel};
use common::{marker, processes_with};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// How long any one event may take to come (generous: the machine may be loaded).
const PATIENCE: Duration = Duration::from_secs(60);
/// A timeout no check reaches.
const LONG: Duration = Duration::from_secs(600);

/// The contract's commands. The memory executor's script knows each by its text.
const OUTPUT: &str = "echo one; echo two >&2; echo three";
const HANG: &str = "sleep 600";
const LOGGED: &str = "printf 'logged\\n'";
/// "aé日𝄞z": characters of one to four bytes.
const MULTIBYTE: &str = r"printf 'a\303\251\346\227\245\360\235\204\236z'";
/// The log limit of the contract's local executor (small, so a check can pass it twice).
const LOG_LIMIT: u64 = 64 * 1024;

/// An event as received (owned, so it can cross threads).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Started(u32),
    Output(Stream, Vec<u8>),
    Exited(Exit),
    Failed(String),
}

/// Hands every event to the test thread; dropped (which the test sees) when the executor is
/// done with the run. The log's reader goes to its own channel, with whether it came before
/// any event.
struct Collect(Sender<Event>, Sender<(OutputLog, bool)>, bool);

impl EventSink for Collect {
    fn log(&mut self, log: OutputLog) {
        let _ = self.1.send((log, !self.2));
    }

    fn event(&mut self, event: ExecEvent<'_>) {
        self.2 = true;
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
    logs: Receiver<(OutputLog, bool)>,
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

    /// The log's reader, which must have come before any event, once.
    fn log(&self) -> OutputLog {
        let (log, first) = self.logs.recv_timeout(PATIENCE).expect("the log's reader");
        assert!(first, "the log's reader comes before Started");
        assert!(self.logs.try_recv().is_err(), "one reader");
        log
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
    let ((send, events), (give, logs)) = (channel(), channel());
    let cancel = Cancel::new();
    executor.launch(spec, cancel.clone(), Box::new(Collect(send, give, false)));
    Run { events, logs, cancel, seen: Vec::new() }
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

/// A spec that keeps a log, holding `hold` bytes in memory.
fn logged(command: &str, dir: &Path, hold: usize) -> TaskSpec {
    TaskSpec { keep_log: true, hold_output: hold, ..spec(command, dir, LONG) }
}

/// Reads from `after` in reads of `max_bytes` until nothing more comes for now; the chunks.
fn read_all(log: &OutputLog, mut after: u64, max_bytes: usize) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    loop {
        let chunk = log.read(after, max_bytes);
        assert!(chunk.next >= after, "{chunk:?} from {after}");
        let stop = chunk.next == after || chunk.ended;
        after = chunk.next;
        chunks.push(chunk);
        if stop {
            return chunks;
        }
    }
}

/// Waits until `log` has stored `bytes` bytes.
fn wait_for_bytes(log: &OutputLog, bytes: u64) {
    wait_until(&format!("{bytes} bytes are stored"), || log.stats().log_bytes >= bytes);
}

/// A run that keeps a log hands out its reader before `Started`, one without a log does not;
/// the reader gives the whole output by offset, whole characters only however small the reads,
/// and says when it has given the last; its counts are the exit's.
fn contract_live_log<E: Executor>(executor: &E) {
    let dir = workdir();
    for hold in [0, 1024] {
        let run = launch(executor, logged(MULTIBYTE, dir.path(), hold));
        let log = run.log();
        let exit = run.exit();
        let chunks = read_all(&log, 0, 2);
        assert!(chunks.last().unwrap().ended, "the last read says so");
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["a", "é", "日", "𝄞", "z"], "hold {hold}");
        let last = log.read(11, 2);
        assert_eq!(last, Chunk { next: 11, ended: true, ..Chunk::default() });
        // A read that starts inside a character gives what is there, as U+FFFD.
        assert_eq!(log.read(2, 100).text, "\u{FFFD}日𝄞z");
        let stats = log.stats();
        assert_eq!((stats.log_bytes, stats.log_cut), (11, false));
        assert_eq!((exit.output.log_bytes, &exit.output.log_path), (11, &stats.log_path));
        assert!(log.has_ended());
        // Two readers of one log: each holds its offset.
        let (one, two) = (read_all(&log, 0, 4), read_all(&log, 0, 100));
        let joined: String = one.into_iter().map(|c| c.text).collect();
        assert_eq!((joined.as_str(), two[0].text.as_str()), ("aé日𝄞z", "aé日𝄞z"));
    }
    let mut unlogged = launch(executor, spec(MULTIBYTE, dir.path(), LONG));
    let logs = std::mem::replace(&mut unlogged.logs, channel().1);
    unlogged.exit();
    assert!(logs.try_recv().is_err(), "no reader without a log");
}

/// A cancelled run's reader sees the end: a waiting reader wakes, and an incomplete character
/// at the end is given as U+FFFD.
fn contract_live_log_killed<E: Executor>(executor: &E) {
    let dir = workdir();
    let ready = dir.path().join("ready");
    // "abc" and the first byte of "é", then it hangs.
    let command = format!(r"printf 'abc\303'; touch {}; {HANG}", ready.display());
    let mut run = launch(executor, logged(&command, dir.path(), 1024));
    let log = run.log();
    assert!(matches!(run.next(), Event::Started(_)));
    wait_for_bytes(&log, 4);
    let first = log.read(0, 100);
    assert_eq!((first.text.as_str(), first.next, first.ended), ("abc", 3, false));
    assert!(!log.wait(3, Duration::ZERO), "only the start of a character");
    let waiter = {
        let log = log.clone();
        std::thread::spawn(move || log.wait(3, PATIENCE))
    };
    run.cancel.cancel();
    assert!(waiter.join().unwrap(), "the waiting reader woke at the end");
    let exit = run.exit();
    assert_eq!((exit.ended, exit.output.log_bytes), (Ended::Cancelled, 4));
    // Stopped: the output went to the file at the end; the offsets stay.
    assert!(exit.output.log_path.is_some());
    let last = log.read(3, 100);
    assert_eq!((last.text.as_str(), last.next, last.ended), ("\u{FFFD}", 4, true));
    assert_eq!(log.read(0, 100).text, "abc\u{FFFD}");
}

/// A reader waits for output as it arrives, blocking or async; the start of a character does
/// not wake it, its end does.
fn contract_live_log_wait<E: Executor>(executor: &E) {
    let dir = workdir();
    let (go, half, go2) = (dir.path().join("go"), dir.path().join("half"), dir.path().join("go2"));
    let wait_for = |file: &Path| format!("while [ ! -e {} ]; do sleep 0.01; done", file.display());
    let command = format!(
        r"{}; printf 'x\303'; touch {}; {}; printf '\251y'",
        wait_for(&go),
        half.display(),
        wait_for(&go2)
    );
    let run = launch(executor, logged(&command, dir.path(), 1024));
    let log = run.log();
    let blocking = {
        let log = log.clone();
        std::thread::spawn(move || log.wait(0, PATIENCE))
    };
    let waiting = {
        let log = log.clone();
        runtime().spawn(async move { tokio::time::timeout(PATIENCE, log.changed(0)).await })
    };
    assert!(!log.wait(0, Duration::ZERO), "nothing yet");
    std::fs::write(&go, "").unwrap();
    assert!(blocking.join().unwrap(), "the blocking reader woke");
    runtime().block_on(waiting).unwrap().expect("the async reader woke");
    wait_until("half a character is printed", || half.exists());
    wait_for_bytes(&log, 2);
    assert_eq!(log.read(0, 100), Chunk { text: "x".into(), next: 1, ..Chunk::default() });
    assert!(!log.wait(1, Duration::from_millis(50)), "half a character wakes no one");
    let blocking = {
        let log = log.clone();
        std::thread::spawn(move || log.wait(1, PATIENCE))
    };
    std::fs::write(&go2, "").unwrap();
    assert!(blocking.join().unwrap());
    let rest: String = read_all(&log, 1, 100).into_iter().map(|c| c.text).collect();
    assert!(rest.starts_with('é'), "{rest}");
    assert_eq!(run.exit().output.log_bytes, 4);
}

/// Past the log limit the oldest output goes: a reader far behind is told how much it missed
/// and reads on from the oldest byte kept, across the two files, while the run goes on.
fn contract_log_rotation<E: Executor>(executor: &E) {
    let dir = workdir();
    let (ready, go) = (dir.path().join("ready"), dir.path().join("go"));
    // 168_894 bytes: more than twice the limit.
    let command = format!(
        "seq 1 30000; touch {}; while [ ! -e {} ]; do sleep 0.01; done; echo end",
        ready.display(),
        go.display()
    );
    let printed: String = (1..=30000).map(|i| format!("{i}\n")).collect();
    let total = printed.len() as u64;
    assert!(total > 2 * LOG_LIMIT);
    let spec = logged(&command, dir.path(), 1024);
    let id = spec.id.clone();
    let run = launch(executor, spec);
    let log = run.log();
    wait_until("all is printed", || ready.exists());
    wait_for_bytes(&log, total);
    let stats = log.stats();
    assert!(stats.log_cut && stats.log_dropped > 0, "{stats:?}");
    let kept = total - stats.log_dropped;
    assert!((LOG_LIMIT / 2..=LOG_LIMIT).contains(&kept), "kept {kept}");
    // Two readers, in reads of different sizes, get the same newest output.
    for max_bytes in [1000, 1 << 20] {
        let chunks = read_all(&log, 0, max_bytes);
        assert_eq!(chunks[0].dropped_before, stats.log_dropped);
        assert!(chunks[1..].iter().all(|c| c.dropped_before == 0));
        let text: String = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(text, printed[stats.log_dropped as usize..], "max_bytes {max_bytes}");
        assert_eq!(chunks.last().unwrap().next, total);
    }
    // On disk: the older part, then the newer, as the reader saw them.
    let path = stats.log_path.clone().expect("a file");
    assert_eq!(path, executor.log_dir().unwrap().join(format!("{id}.log")));
    let older = std::fs::read(path.with_extension("log.1")).unwrap();
    let newer = std::fs::read(&path).unwrap();
    assert_eq!([older, newer].concat(), printed.as_bytes()[stats.log_dropped as usize..]);
    // A reader that kept up goes on where it was.
    std::fs::write(&go, "").unwrap();
    let exit = run.exit();
    assert_eq!(exit.output.log_bytes, total + 4);
    let end = log.read(total, 100);
    assert_eq!(
        (end.text.as_str(), end.next, end.ended, end.dropped_before),
        ("end\n", total + 4, true, 0)
    );
}

// ---- The executors ----

/// The local executor as the CLI and the Python package run it: through a supervisor.
fn local() -> LocalExecutor {
    common::use_supervisor();
    let settings = LocalSettings {
        grace: Duration::from_millis(300),
        log_limit: LOG_LIMIT,
        ..LocalSettings::default()
    };
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
            LOGGED => exit("logged\n", "", 0),
            MULTIBYTE => exit("aé日𝄞z", "", 0),
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
    contract_live_log,
    contract_live_log_killed,
    contract_live_log_wait,
    contract_log_rotation,
);

// Not here: signal_death (a script exits with a code), log (it keeps no file),
// left_session and only_std_fds (it has no processes and no descriptors), the live log's
// checks that need output while the run goes on, and rotation (its log is all in memory).
contract!(memory:
    contract_exit_codes,
    contract_output_order,
    contract_failed_start,
    contract_timeout,
    contract_cancel,
    contract_live_log,
);
