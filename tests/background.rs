//! The BackgroundManager against real processes: the lesson's strings, timeouts, process
//! groups, kill, concurrency, odd output.

mod common;

use bgagent::background::{
    Finished, Records, TaskEvent, TaskEventKind, TaskState, TimedOut, Until,
};
use bgagent::exec::{MemoryExecutor, Scripted};
use bgagent::{BackgroundManager, Notification, Options, Status};
use common::{marker, processes_with};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LONG: Option<Duration> = Some(Duration::from_secs(30));

/// Polls `ready` until it holds; fails the test with `what` after a generous deadline.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < give_up, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// True once the process has exited (gone, or a zombie nobody reaped yet).
fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_or(true, |stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')))
}

fn manager(options: Options) -> BackgroundManager {
    common::use_supervisor();
    BackgroundManager::new(options).expect("manager")
}

fn quick() -> Options {
    Options { grace: Duration::from_millis(300), ..Options::default() }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bgagent-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A command whose process tree names `marker`: the shell and two nested shells.
fn tree_with(marker: &str, tail: &str) -> String {
    format!("sh -c 'sleep 600; :' {marker} & sh -c 'sleep 600; :' {marker}{tail}; :")
}

/// `check(id)` once the task has ended.
fn wait_check(m: &BackgroundManager, id: &str) -> String {
    finish(m, id);
    m.check(Some(id))
}

/// How the task ended, once it has.
fn finish(m: &BackgroundManager, id: &str) -> Finished {
    assert_eq!(m.wait(Until::Ended(id), LONG), Ok(None), "task {id} did not finish");
    m.task(id).unwrap().finished().expect("it ended").clone()
}

#[test]
fn run_and_check_print_the_lessons_strings() {
    let m = manager(Options::default());
    assert_eq!(m.check(None), "No background tasks.");
    let long = format!("echo {}", "x".repeat(100));
    let line = m.run(&long);
    let id = &line["Background task ".len().."Background task ".len() + 8];
    assert_eq!(line, format!("Background task {id} started: {}", &long[..80]));
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    finish(&m, id);
    assert_eq!(m.check(Some(id)), format!("[completed] {}\n{}", &long[..60], "x".repeat(100)));
    assert_eq!(m.check(Some("nope")), "Error: Unknown task nope");
    assert_eq!(m.check(None), format!("{id}: [completed] {}", &long[..60]));
    assert_eq!(m.check(Some("")), m.check(None), "an empty id lists all, like the lesson");
}

#[test]
fn running_tasks_show_running_and_run_does_not_wait() {
    let m = manager(quick());
    let id = m.start("sleep 30");
    assert_eq!(m.check(Some(&id)), "[running] sleep 30\n(running)");
    assert!(m.snapshot(Records::None).running > 0);
    assert!(m.drain().is_empty());
    m.kill(&id);
}

#[test]
fn check_lists_tasks_in_start_order() {
    let m = manager(Options::default());
    let ids: Vec<String> = (0..5).map(|i| m.start(&format!("sleep 0.{}", 5 - i))).collect();
    let listed: Vec<String> =
        m.check(None).lines().map(|l| l.split(':').next().unwrap().to_string()).collect();
    assert_eq!(listed, ids);
}

#[test]
fn result_is_stdout_then_stderr_stripped_and_notification_is_complete() {
    let m = manager(Options::default());
    let id = m.start("printf '\\n  out  '; printf 'err\\n\\n' >&2; exit 7");
    let mut notes = m.wait_for_notifications(LONG);
    assert_eq!(notes.len(), 1);
    // Production's details: the whole output is in the result, so no tail; the log (none:
    // so small an output stays in memory).
    let details = std::mem::take(&mut notes[0].details);
    assert_eq!(details.tail, "");
    assert_eq!(details.log_path, m.task(&id).unwrap().finished().unwrap().output.log_path);
    assert_eq!(
        notes,
        vec![Notification {
            task_id: id.clone(),
            status: Status::Completed,
            command: "printf '\\n  out  '; printf 'err\\n\\n' >&2; exit 7".into(),
            result: "out  err".into(),
            exit_code: Some(7),
            details: Default::default(),
        }]
    );
    let empty = m.start("true");
    finish(&m, &empty);
    assert_eq!(m.check(Some(&empty)), "[completed] true\n(no output)");
}

#[test]
fn output_and_preview_are_cut_by_characters() {
    let m = manager(Options { output_limit: 10, preview_limit: 4, ..Options::default() });
    let id = m.start("printf 'héllo wörld and more'");
    let note = m.wait_for_notifications(LONG).pop().unwrap();
    assert_eq!(m.task(&id).unwrap().result(), Some("héllo wörl"));
    assert_eq!(note.result, "héll");
    let id = m.start("printf 'abcdefghi      '");
    finish(&m, &id);
    assert_eq!(m.task(&id).unwrap().result(), Some("abcdefghi"), "strip comes first");
}

#[test]
fn large_output_keeps_an_exact_head_and_the_newest_output_in_its_log() {
    let dir = temp_dir("logs");
    let m =
        manager(Options { log_dir: Some(dir.clone()), log_limit: 100_000, ..Options::default() });
    // 588_895 bytes: the numbers 1..100000, one per line.
    let id = m.start("seq 1 100000");
    let t = finish(&m, &id);
    let full: String = (1..=100_000).map(|i| format!("{i}\n")).collect();
    assert_eq!(Some(t.result.as_str()), Some(&full[..50_000]));
    assert_eq!(t.output.stdout_bytes, full.len() as u64);
    // The log counts every byte, and keeps the newest (between half the limit and all of it)
    // in two files: `{id}.log.1`, then `{id}.log`.
    assert_eq!(t.output.log_bytes, full.len() as u64);
    let dropped = t.output.log_dropped as usize;
    assert!(t.output.log_cut && (50_000..=100_000).contains(&(full.len() - dropped)));
    let path = t.output.log_path.unwrap();
    let older = std::fs::read_to_string(path.with_extension("log.1")).unwrap();
    let newer = std::fs::read_to_string(&path).unwrap();
    assert_eq!(older + &newer, full[dropped..]);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Output the result shows whole stays in memory: no file for it, and the log path says so.
#[test]
fn a_short_output_gets_no_log_file_and_a_longer_one_gets_all_of_it() {
    let dir = temp_dir("short-logs");
    let m = manager(Options { log_dir: Some(dir.clone()), ..Options::default() });
    let line = format!("{}\n", "x".repeat(99));
    let short = finish(&m, &m.start(&format!("printf '{}'; printf 'err\\n' >&2", line.trim_end())));
    assert_eq!(Some(short.result.as_str()), Some(&*format!("{}err", "x".repeat(99))));
    let o = &short.output;
    assert_eq!((o.stdout_bytes, o.stderr_bytes, o.log_bytes), (99, 4, 103));
    assert_eq!(o.log_path, None);
    // The two pipes are read as output comes: either may come first.
    let held = o.log_held.as_deref().expect("the log, in memory");
    let (out, err) = ("x".repeat(99).into_bytes(), b"err\n".to_vec());
    assert!(held == [&out[..], &err].concat() || held == [&err[..], &out].concat(), "{held:?}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no file");
    let nothing = finish(&m, &m.start("true"));
    assert_eq!((nothing.output.log_path, nothing.output.log_held), (None, None));

    // One byte more than memory holds: the file has all of it, from the first byte.
    let size = bgagent::background::LOG_IN_MEMORY + 1;
    let long = finish(&m, &m.start(&format!("head -c {size} /dev/zero | tr '\\0' y")));
    let path = long.output.log_path.expect("a log file");
    assert_eq!(std::fs::read(&path).unwrap(), vec![b'y'; size]);
    assert_eq!((long.output.log_bytes, long.output.log_held), (size as u64, None));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A manager whose results show less than memory would hold keeps a file for output past them.
#[test]
fn output_longer_than_the_result_shows_gets_a_file_however_short() {
    let m = manager(Options { output_limit: 10, ..Options::default() });
    let t = finish(&m, &m.start("echo 0123456789ab"));
    assert_eq!(Some(t.result.as_str()), Some("0123456789"));
    let log = std::fs::read_to_string(t.output.log_path.expect("a log file")).unwrap();
    assert_eq!((log.as_str(), t.output.log_held), ("0123456789ab\n", None));
}

/// A killed task's result is `Error: Killed`, which shows none of its output: the output goes
/// to its file however short.
#[test]
fn a_stopped_task_keeps_its_short_output_in_a_file() {
    let dir = temp_dir("stopped");
    let m = manager(quick());
    let ready = dir.join("ready");
    let id = m.start(&format!("echo partial; touch {}; sleep 60", ready.display()));
    wait_until("the task has printed", || ready.exists());
    m.kill(&id);
    let t = finish(&m, &id);
    assert_eq!((t.status, Some(t.result.as_str())), (Status::Killed, Some("Error: Killed")));
    let log = std::fs::read_to_string(t.output.log_path.expect("a log file")).unwrap();
    assert_eq!((log.as_str(), t.output.log_held), ("partial\n", None));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn invalid_utf8_is_replaced_not_an_error() {
    let m = manager(Options::default());
    let id = m.start("printf 'ok \\377\\376 \\303'");
    let t = finish(&m, &id);
    assert_eq!(t.status, Status::Completed);
    assert_eq!(Some(t.result.as_str()), Some("ok \u{FFFD}\u{FFFD} \u{FFFD}"));
}

#[test]
fn timeout_stops_the_whole_group() {
    let mark = marker();
    let m = manager(Options { timeout: Duration::from_millis(400), ..quick() });
    let id = m.start(&tree_with(&mark, ""));
    let t = finish(&m, &id);
    assert_eq!(t.status, Status::Timeout);
    assert_eq!(Some(t.result.as_str()), Some("Error: Timeout (0.4s)"));
    assert_eq!(t.exit_code, None);
    assert_eq!(processes_with(&mark), Vec::<String>::new());
}

#[test]
fn a_child_ignoring_sigterm_gets_sigkill_after_the_grace_period() {
    let mark = marker();
    let m = manager(quick());
    let ready = temp_dir("trap").join("ready");
    let id = m
        .start(&format!("trap '' TERM; touch {}; sh -c 'sleep 600; :' {mark}; :", ready.display()));
    wait_until("SIGTERM is ignored and the child runs", || {
        ready.exists() && !processes_with(&mark).is_empty()
    });
    let asked = Instant::now();
    let text = m.kill(&id);
    assert_eq!(text, format!("[killed] {}\nError: Killed", &m.task(&id).unwrap().command[..60]));
    let took = m.task(&id).unwrap().finished().unwrap().ended - asked;
    assert!(took >= Duration::from_millis(300), "SIGKILL came before the grace period: {took:?}");
    assert_eq!(m.task(&id).unwrap().exit_code(), None);
    assert_eq!(processes_with(&mark), Vec::<String>::new());
    assert_eq!(m.kill(&id), format!("Error: Task {id} is not running (killed)"));
    assert_eq!(m.kill("nope"), "Error: Unknown task nope");
}

#[test]
fn a_grandchild_holding_the_pipe_does_not_hold_the_task() {
    let mark = marker();
    let m = manager(quick());
    let id = m.start(&format!("sh -c 'sleep 600; :' {mark} & echo started"));
    let t = finish(&m, &id);
    assert_eq!(t.status, Status::Completed);
    assert_eq!(Some(t.result.as_str()), Some("started"));
    assert_eq!(t.exit_code, Some(0));
    let elapsed = m.task(&id).unwrap().elapsed();
    assert!(elapsed < Duration::from_secs(20), "finished within the wait bound");
    assert_eq!(processes_with(&mark), Vec::<String>::new());
}

#[test]
fn leftovers_with_redirected_output_are_killed_when_the_shell_exits() {
    let mark = marker();
    let m = manager(quick());
    let id = m.start(&format!("sh -c 'sleep 600; :' {mark} >/dev/null 2>&1 & echo done"));
    let t = finish(&m, &id);
    assert_eq!(Some(t.result.as_str()), Some("done"));
    assert_eq!(processes_with(&mark), Vec::<String>::new());
}

#[test]
fn dropping_the_manager_kills_running_tasks() {
    let mark = marker();
    let m = manager(quick());
    m.start(&tree_with(&mark, ""));
    wait_until("the shell and its two children run", || processes_with(&mark).len() == 3);
    drop(m);
    assert_eq!(processes_with(&mark), Vec::<String>::new());
}

#[test]
fn shutdown_kills_everything_and_queues_their_notifications() {
    let m = manager(quick());
    let ids: HashSet<String> = (0..5).map(|_| m.start("sleep 60")).collect();
    m.shutdown();
    assert_eq!(m.snapshot(Records::None).running, 0);
    let notes = m.drain();
    assert_eq!(notes.iter().map(|n| n.task_id.clone()).collect::<HashSet<_>>(), ids);
    assert!(notes.iter().all(|n| n.status == Status::Killed && n.exit_code.is_none()));
}

#[test]
fn a_command_that_cannot_start_is_an_error_task() {
    let dir = temp_dir("gone");
    let m = manager(Options { workdir: Some(dir.clone()), ..Options::default() });
    std::fs::remove_dir_all(&dir).unwrap();
    let id = m.start("echo hi");
    let note = m.wait_for_notifications(LONG).pop().unwrap();
    assert_eq!(note.task_id, id);
    assert_eq!(note.status, Status::Error);
    assert_eq!(note.exit_code, None);
    assert!(note.result.starts_with("Error: cannot start sh in "), "{}", note.result);
}

#[test]
fn bad_options_are_refused() {
    let missing = Options { workdir: Some("/no/such/dir".into()), ..Options::default() };
    let e = BackgroundManager::new(missing).err().unwrap().to_string();
    assert!(e.contains("/no/such/dir"), "{e}");
    let zero = Options { timeout: Duration::ZERO, ..Options::default() };
    assert!(BackgroundManager::new(zero).is_err());
}

#[test]
fn commands_run_in_the_workdir() {
    let dir = temp_dir("cwd");
    let m = manager(Options { workdir: Some(dir.clone()), ..Options::default() });
    let id = m.start("pwd");
    let t = finish(&m, &id);
    assert_eq!(t.result, std::fs::canonicalize(&dir).unwrap().display().to_string());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_thousand_tasks_drained_by_four_threads_arrive_exactly_once() {
    let m = Arc::new(manager(Options { max_running: None, ..Options::default() }));
    let ids: HashSet<String> = (0..1000).map(|i| m.start(&format!("echo {i}"))).collect();
    let drainers: Vec<_> = (0..4)
        .map(|_| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    // Empty only once nothing runs and nothing is queued.
                    let batch = m.wait_for_notifications(None);
                    if batch.is_empty() {
                        return got;
                    }
                    got.extend(batch);
                }
            })
        })
        .collect();
    let all: Vec<Notification> = drainers.into_iter().flat_map(|d| d.join().unwrap()).collect();
    assert_eq!(all.len(), 1000, "no loss, no duplicate");
    let seen: HashSet<String> = all.iter().map(|n| n.task_id.clone()).collect();
    assert_eq!(seen, ids);
    for n in &all {
        let number: usize = n.command["echo ".len()..].parse().unwrap();
        assert_eq!(n.result, number.to_string());
        assert_eq!(n.status, Status::Completed);
    }
}

#[test]
fn wait_for_notifications_returns_empty_when_nothing_runs_or_on_timeout() {
    let m = manager(quick());
    assert!(m.wait_for_notifications(None).is_empty());
    let id = m.start("sleep 30");
    assert!(m.wait_for_notifications(Some(Duration::from_millis(100))).is_empty());
    assert_eq!(m.wait(Until::Ended(&id), Some(Duration::from_millis(50))), Err(TimedOut));
    assert_eq!(m.task(&id).unwrap().status(), Status::Running);
    assert_eq!(m.wait(Until::Ended("nope"), None), Ok(None), "an unknown task is not waited for");
    m.kill(&id);
    assert_eq!(m.wait_for_notifications(None).len(), 1);
}

#[test]
fn kill_reaches_leftovers_after_the_shell_has_exited() {
    let mark = marker();
    let m = manager(quick());
    let command = format!("sh -c 'sleep 600; :' {mark} & exit 0");
    let id = m.start(&command);
    wait_until("the task's shell has a pid", || m.task(&id).unwrap().pid().is_some());
    let shell = m.task(&id).unwrap().pid().unwrap();
    wait_until("the shell is gone and its child holds the pipes", || {
        exited(shell) && !processes_with(&mark).is_empty()
    });
    assert_eq!(m.task(&id).unwrap().status(), Status::Running, "the pipe grace (2 s) still runs");
    assert_eq!(m.kill(&id), format!("[killed] {}\nError: Killed", &command[..60]));
    assert_eq!(processes_with(&mark), Vec::<String>::new());
}

/// The pids of the zombies whose parent is `parent`.
fn dead_children(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some((_, rest)) = stat.rsplit_once(") ") else { continue };
        let fields: Vec<&str> = rest.split(' ').collect();
        if fields[0] == "Z" && fields[1] == parent.to_string() {
            found.extend(entry.file_name().to_str().and_then(|pid| pid.parse::<u32>().ok()));
        }
    }
    found
}

#[test]
fn children_a_task_leaves_dead_are_reaped_by_the_supervisor() {
    let m = manager(quick());
    // A shell that stays, to learn the supervisor's pid (its parent).
    let sleeper = m.start("sleep 600");
    wait_until("the task has a pid", || m.task(&sleeper).unwrap().pid().is_some());
    let shell = m.task(&sleeper).unwrap().pid().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{shell}/stat")).unwrap();
    let supervisor: u32 =
        stat.rsplit_once(") ").unwrap().1.split(' ').nth(1).unwrap().parse().unwrap();
    // Each shell leaves a child it never waits for, which comes to the supervisor dead (or
    // dies there): only SIGCHLD tells of it.
    for _ in 0..20 {
        let id = m.start("setsid true & exec true");
        assert_eq!(finish(&m, &id).status, Status::Completed);
    }
    wait_until("no dead child of the supervisor is left", || dead_children(supervisor).is_empty());
    m.kill(&sleeper);
}

/// Every event of a subscription until `done` says stop.
fn collect(
    events: &bgagent::background::Subscription,
    mut done: impl FnMut(&[TaskEvent]) -> bool,
) -> Vec<TaskEvent> {
    let mut got = Vec::new();
    while !done(&got) {
        got.push(events.recv(LONG).expect("an event within 30 s"));
    }
    got
}

fn kinds<'a>(events: &'a [TaskEvent], id: &str) -> Vec<&'a str> {
    events.iter().filter(|e| e.task_id == id).map(|e| e.kind.name()).collect()
}

#[test]
fn events_follow_a_task_from_queued_to_drained_in_time_order() {
    let m = manager(quick());
    let events = m.subscribe();
    let id = m.start("for i in 1 2 3; do echo $i; sleep 0.3; done; exit 3");
    let got = collect(&events, |got| got.iter().any(|e| e.kind.name() == "finished"));
    let notes = m.drain();
    assert_eq!(notes.len(), 1);
    let got = [got, collect(&events, |got| !got.is_empty())].concat();
    let names = kinds(&got, &id);
    assert_eq!(names[..2], ["queued", "started"]);
    assert_eq!(names[names.len() - 2..], ["finished", "drained"]);
    assert!(names.contains(&"progress"), "outputs 0.3 s apart publish progress: {names:?}");
    assert!(got.windows(2).all(|w| w[0].at <= w[1].at), "times never go backwards");
    let pid = m.task(&id).unwrap().pid().unwrap();
    assert_eq!(got[1].kind, TaskEventKind::Started { pid, waited: None });
    let finished = &got[names.len() - 2].kind;
    assert_eq!(
        *finished,
        TaskEventKind::Finished { status: Status::Completed, exit_code: Some(3) }
    );
    let last_progress = got.iter().rev().find_map(|e| match e.kind {
        TaskEventKind::Progress { stdout_bytes, .. } => Some(stdout_bytes),
        _ => None,
    });
    assert!(last_progress.unwrap() >= 2 && last_progress.unwrap() <= 6);
}

/// A manager whose commands run in memory: `ok N` prints N, `hang` runs until stopped, `fail`
/// cannot start.
fn in_memory(timeout: Duration) -> (BackgroundManager, Arc<MemoryExecutor>) {
    let executor = Arc::new(MemoryExecutor::new(|spec| {
        let words: Vec<&str> = spec.command.split_whitespace().collect();
        match words[..] {
            ["ok", n] => {
                Scripted::Exit { stdout: format!("{n}\n"), stderr: String::new(), code: 0 }
            }
            ["hang"] => Scripted::Hang,
            _ => Scripted::Fail(format!("no such thing: {}", spec.command)),
        }
    }));
    let options = Options { timeout, executor: Some(executor.clone()), ..Options::default() };
    (manager(options), executor)
}

#[test]
fn an_in_memory_executor_drives_the_same_contract() {
    let (m, executor) = in_memory(Duration::from_millis(200));
    let ok = m.start("ok 7");
    let hang = m.start("hang");
    let fail = m.start("fail");
    assert_eq!(wait_check(&m, &ok), "[completed] ok 7\n7");
    assert_eq!(wait_check(&m, &hang), "[timeout] hang\nError: Timeout (0.2s)");
    assert_eq!(wait_check(&m, &fail), "[error] fail\nError: no such thing: fail");
    let killed = m.start("hang");
    assert_eq!(m.kill(&killed), "[killed] hang\nError: Killed");
    let launched: Vec<String> = executor.launched().into_iter().map(|s| s.id).collect();
    assert_eq!(launched, [ok, hang, fail, killed]);
    assert!(executor.launched().iter().all(|s| s.workdir == m.workdir() && s.keep_log));
    assert_eq!(m.drain().len(), 4);
}

#[test]
fn many_tasks_and_drainers_see_every_lifecycle_event_once_and_in_order() {
    let (m, _) = in_memory(Duration::from_secs(300));
    let m = Arc::new(m);
    let events = m.subscribe();
    let ids: Vec<String> = (0..500)
        .map(|i| m.start(&if i % 7 == 0 { "fail".to_string() } else { format!("ok {i}") }))
        .collect();
    let drainers: Vec<_> = (0..3)
        .map(|_| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                let mut got = 0;
                loop {
                    let batch = m.wait_for_notifications(None);
                    if batch.is_empty() {
                        return got;
                    }
                    got += batch.len();
                }
            })
        })
        .collect();
    let drained: usize = drainers.into_iter().map(|d| d.join().unwrap()).sum();
    assert_eq!(drained + m.drain().len(), 500);
    let got =
        collect(&events, |got| got.iter().filter(|e| e.kind.name() == "drained").count() == 500);
    assert!(got.windows(2).all(|w| w[0].at <= w[1].at));
    let mut per_task: HashMap<&str, Vec<&str>> = HashMap::new();
    for e in &got {
        per_task.entry(e.task_id.as_str()).or_default().push(e.kind.name());
    }
    for (i, id) in ids.iter().enumerate() {
        let want: &[&str] = if i % 7 == 0 {
            &["queued", "finished", "drained"]
        } else {
            &["queued", "started", "finished", "drained"]
        };
        assert_eq!(per_task[id.as_str()], want, "task {i}");
    }
    assert!(events.try_recv().is_none(), "nothing twice");
}

#[test]
fn the_default_log_dir_is_removed_with_the_manager() {
    let m = manager(Options::default());
    let dir: PathBuf = m.log_dir().unwrap().to_path_buf();
    assert!(dir.is_dir());
    // More than a log kept in memory holds, so it has a file.
    finish(&m, &m.start("yes logged | head -n 1000"));
    assert_eq!(
        std::fs::read_to_string(dir.join(format!("{}.log", m.snapshot(Records::All).tasks[0].id)))
            .unwrap(),
        "logged\n".repeat(1000)
    );
    drop(m);
    assert!(!Path::new(&dir).exists());
}

/// A command that runs until `go` exists, then prints `done`.
fn until_exists(go: &Path) -> String {
    format!("while [ ! -e {} ]; do sleep 0.01; done; echo done", go.display())
}

#[test]
fn one_wait_for_each_condition_sync_and_async() {
    let m = manager(quick());
    let awaiter = m.awaiter();
    let block_on = |f| bgagent::runtime::runtime().block_on(f);
    // Nothing runs: every condition holds at once, and there is no next notification.
    for until in [Until::Finished, Until::Idle, Until::Next, Until::Ended("nope")] {
        assert_eq!(m.wait(until, None), Ok(None), "{until:?}");
        assert_eq!(block_on(awaiter.wait(until)), None, "{until:?}");
    }
    let go = temp_dir("go").join("go");
    let id = m.start(&until_exists(&go));
    let short = Some(Duration::from_millis(50));
    for until in [Until::Finished, Until::Idle, Until::Next, Until::Ended(&id)] {
        assert_eq!(m.wait(until, short), Err(TimedOut), "{until:?} while the task waits");
    }
    std::fs::write(&go, "").unwrap();
    assert_eq!(m.wait(Until::Ended(&id), LONG), Ok(None));
    assert_eq!(m.wait(Until::Finished, None), Ok(None), "the queue is left as it is");
    assert_eq!(m.snapshot(Records::None).queued, 1);
    let note = m.wait(Until::Next, LONG).unwrap().expect("the task's notification");
    assert_eq!((note.task_id.as_str(), note.result.as_str()), (id.as_str(), "done"));
    assert_eq!(m.wait(Until::Next, None), Ok(None), "taken once");

    // The async twin takes the same notification the sync one would.
    let other = m.start("echo async");
    let note = block_on(awaiter.wait(Until::Next)).expect("a notification");
    assert_eq!((note.task_id, note.result), (other, "async".to_string()));
    std::fs::remove_dir_all(go.parent().unwrap()).unwrap();
}

#[test]
fn a_tasks_state_carries_its_own_data_and_serialises_once() {
    let m = manager(quick());
    let go = temp_dir("state").join("go");
    let id = m.start(&until_exists(&go));
    wait_until("the task has a pid", || m.task(&id).unwrap().pid().is_some());
    let running = m.task(&id).unwrap();
    let TaskState::Running { pid, .. } = running.state else { panic!("{:?}", running.state) };
    let info = serde_json::to_value(&running).unwrap();
    assert_eq!(info["status"], "running");
    assert_eq!((info["result"].is_null(), info["exit_code"].is_null()), (true, true));
    assert_eq!(info["pid"], pid);
    let events = m.subscribe();
    std::fs::write(&go, "").unwrap();
    let done = finish(&m, &id);
    assert_eq!(
        (done.status, done.result.as_str(), done.exit_code),
        (Status::Completed, "done", Some(0))
    );
    assert_eq!(done.pid, Some(pid), "the pid stays known");
    let info = serde_json::to_value(m.task(&id).unwrap()).unwrap();
    let keys: Vec<&str> = info.as_object().unwrap().keys().map(String::as_str).collect();
    let want =
        "task_id status command result exit_code elapsed waited pid stdout_bytes stderr_bytes \
                log_bytes log_cut log_dropped log_path log_error log_removed";
    assert_eq!(keys, want.split_whitespace().collect::<Vec<_>>());
    assert_eq!(
        (&info["status"], &info["result"], &info["stdout_bytes"]),
        (&"completed".into(), &"done".into(), &5.into())
    );
    let note = serde_json::to_value(m.drain().pop().unwrap()).unwrap();
    assert_eq!(
        note,
        json!({"task_id": id, "status": "completed",
            "command": until_exists(&go)[..80], "result": "done", "exit_code": 0})
    );
    let finished = std::iter::from_fn(|| events.recv(LONG)).find(|e| e.kind.name() == "finished");
    let event = serde_json::to_value(finished.unwrap()).unwrap();
    let want = json!({"task_id": id, "event": "finished", "status": "completed", "exit_code": 0});
    assert_eq!(event, want);
    std::fs::remove_dir_all(go.parent().unwrap()).unwrap();
}
