//! What a manager keeps of finished tasks: `keep_finished` lets the oldest delivered records
//! go (their log files too when the log directory is the manager's own), `forget` lets one
//! go now, and `log_budget` removes the oldest finished logs. Real processes throughout.

mod common;

use bgagent::background::{production, Until, LOG_IN_MEMORY};
use bgagent::{BackgroundManager, Options};
use std::path::{Path, PathBuf};
use std::time::Duration;

const LONG: Option<Duration> = Some(Duration::from_secs(30));
/// Bytes each task prints: more than memory holds, so each finished task has a log file.
const SIZE: usize = LOG_IN_MEMORY + 1000;

fn manager(options: Options) -> BackgroundManager {
    common::use_supervisor();
    BackgroundManager::new(Options { grace: Duration::from_millis(300), ..options })
        .expect("manager")
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bgagent-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A command that prints SIZE bytes of `c`.
fn prints(c: char) -> String {
    format!("head -c {SIZE} /dev/zero | tr '\\0' {c}")
}

/// Runs `command` to its end; its id and its log file.
fn run_to_end(m: &BackgroundManager, command: &str) -> (String, PathBuf) {
    let id = m.start(command);
    assert_eq!(m.wait(Until::Ended(&id), LONG), Ok(None), "task {id} did not finish");
    let task = m.task(&id).unwrap();
    let path = task.finished().unwrap().output.log_path.clone().expect("a log file");
    (id, path)
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

/// Runs four printing tasks under `keep_finished: 2`, draining after each: the first two go.
fn four_tasks_keeping_two(m: &BackgroundManager) -> Vec<(String, PathBuf)> {
    let mut done = Vec::new();
    for c in ['a', 'b', 'c', 'd'] {
        done.push(run_to_end(m, &prints(c)));
        assert_eq!(m.drain().len(), 1);
    }
    for (id, _) in &done[..2] {
        assert!(m.task(id).is_none(), "{id} was let go");
        assert_eq!(m.check(Some(id)), format!("Error: Unknown task {id}"));
    }
    for (id, _) in &done[2..] {
        assert!(m.task(id).is_some(), "{id} is kept");
    }
    let listed = m.check(None);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.starts_with(&format!("{}: [completed]", done[2].0)), "{listed}");
    done
}

#[test]
fn past_keep_finished_the_oldest_delivered_go_with_their_logs_in_the_managers_own_directory() {
    let m = manager(Options { keep_finished: Some(2), log_budget: None, ..Options::default() });
    let done = four_tasks_keeping_two(&m);
    for (_, path) in &done[..2] {
        assert!(!path.exists(), "{} was removed", path.display());
    }
    for (_, path) in &done[2..] {
        assert_eq!(std::fs::read(path).unwrap().len(), SIZE);
    }
    assert_eq!(files_in(m.log_dir().unwrap()), 2);

    // Finished but not yet delivered: kept, even past the limit; the delivered ones make room.
    let undelivered: Vec<_> = ['e', 'f', 'g'].map(|c| run_to_end(&m, &prints(c))).into();
    for (id, path) in &done[2..] {
        assert!(m.task(id).is_none() && !path.exists(), "{id}, delivered and oldest, went");
    }
    for (id, path) in &undelivered {
        assert!(m.task(id).is_some() && path.exists(), "{id} waits for its notification");
    }
    assert_eq!(m.drain().len(), 3);
    let (first, path) = &undelivered[0];
    assert!(m.task(first).is_none() && !path.exists(), "once delivered, the oldest went");
    assert!(m.task(&undelivered[1].0).is_some() && m.task(&undelivered[2].0).is_some());
    assert_eq!(files_in(m.log_dir().unwrap()), 2);
}

#[test]
fn in_a_log_dir_the_user_named_the_records_go_and_the_files_stay() {
    let dir = temp_dir("keep-user-dir");
    let options =
        Options { keep_finished: Some(2), log_dir: Some(dir.clone()), ..Options::default() };
    let m = manager(options);
    let done = four_tasks_keeping_two(&m);
    for (_, path) in &done {
        assert_eq!(std::fs::read(path).unwrap().len(), SIZE, "{} stays", path.display());
    }
    assert_eq!(files_in(&dir), 4);
    drop(m);
    assert_eq!(files_in(&dir), 4, "the user's directory is theirs");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn forget_lets_a_delivered_task_go_and_refuses_every_other_kind() {
    let dir = temp_dir("forget");
    let m = manager(Options {
        workdir: Some(dir.clone()),
        max_running: Some(1),
        keep_finished: None,
        ..Options::default()
    });
    assert_eq!(m.forget("nope"), Err("Error: Unknown task nope".to_string()));

    let (done, path) = run_to_end(&m, &prints('x'));
    assert_eq!(m.forget(&done), Err(production::not_delivered(&done)), "undelivered");
    assert!(m.task(&done).is_some() && path.exists());

    let running = m.start("until [ -e go ]; do sleep 0.01; done");
    let queued = m.start("true");
    assert_eq!(m.check(Some(&queued)).lines().next(), Some("[queued] true"));
    assert_eq!(m.forget(&running), Err(production::cannot_forget(&running, "running")));
    assert_eq!(m.forget(&queued), Err(production::cannot_forget(&queued, "queued")));

    assert_eq!(m.drain().len(), 1);
    assert_eq!(m.forget(&done), Ok(()));
    assert!(m.task(&done).is_none(), "the record went");
    assert!(!path.exists(), "its log went with it (the manager's own directory)");
    assert_eq!(m.forget(&done), Err(format!("Error: Unknown task {done}")));
    assert!(m.check(None).lines().all(|line| !line.starts_with(&done)));

    std::fs::write(dir.join("go"), "").unwrap();
    assert_eq!(m.wait(Until::Idle, LONG), Ok(None));
    assert_eq!(m.drain().len(), 2);
    assert_eq!((m.forget(&running), m.forget(&queued)), (Ok(()), Ok(())));
    assert_eq!(m.check(None), "No background tasks.");
    drop(m);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn past_the_log_budget_the_oldest_finished_logs_go_first_and_info_says_so() {
    // Room for two logs, not three.
    let budget = 2 * SIZE as u64 + 10;
    let m =
        manager(Options { log_budget: Some(budget), keep_finished: None, ..Options::default() });
    let first = run_to_end(&m, &prints('a'));
    let second = run_to_end(&m, &prints('b'));
    assert!(first.1.exists() && second.1.exists());
    let third = run_to_end(&m, &prints('c'));
    assert!(!first.1.exists(), "the oldest log went");
    assert!(second.1.exists() && third.1.exists());
    assert_eq!(files_in(m.log_dir().unwrap()), 2);

    let record = m.task(&first.0).expect("the record stays");
    assert!(record.log_removed);
    let info = serde_json::to_value(&record).unwrap();
    assert_eq!((&info["log_removed"], &info["log_path"]), (&true.into(), &serde_json::Value::Null));
    assert_eq!(info["log_bytes"], SIZE as u64, "what the log held");
    assert_eq!(info["result"].as_str().unwrap().len(), SIZE, "the result stays");
    let kept = serde_json::to_value(m.task(&second.0).unwrap()).unwrap();
    assert_eq!(kept["log_removed"], false);
    assert_eq!(kept["log_path"], second.1.to_string_lossy().as_ref());
    // Undelivered notifications do not hold logs back: the budget is about the disk.
    assert_eq!(m.drain().len(), 3);
}

#[test]
fn a_running_tasks_log_is_never_removed_whatever_the_budget() {
    let dir = temp_dir("budget-running");
    let m = manager(Options {
        workdir: Some(dir.clone()),
        log_budget: Some(100),
        ..Options::default()
    });
    // Past what memory holds, so its file exists while it runs.
    let running =
        m.start(&format!("{}; touch printed; until [ -e go ]; do sleep 0.01; done", prints('r')));
    let logs = m.log_dir().unwrap().to_path_buf();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let full = |logs: &Path| {
        let mut files = std::fs::read_dir(logs).unwrap().map(|e| e.unwrap().path());
        files.any(|f| std::fs::metadata(f).is_ok_and(|m| m.len() == SIZE as u64))
    };
    while !dir.join("printed").exists() || !full(&logs) {
        assert!(std::time::Instant::now() < deadline, "the running task wrote its log");
        std::thread::sleep(Duration::from_millis(5));
    }
    let done = m.start(&prints('d'));
    assert_eq!(m.wait(Until::Ended(&done), LONG), Ok(None));
    let record = m.task(&done).unwrap();
    assert!(record.log_removed, "a finished log past the budget goes at once");
    assert_eq!(record.finished().unwrap().output.log_path, None);
    let files: Vec<_> = std::fs::read_dir(&logs).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "the running task's log stays: {files:?}");
    assert_eq!(std::fs::read(&files[0]).unwrap().len(), SIZE);

    std::fs::write(dir.join("go"), "").unwrap();
    assert_eq!(m.wait(Until::Ended(&running), LONG), Ok(None));
    assert!(m.task(&running).unwrap().log_removed, "once finished, it is under the budget");
    assert_eq!(files_in(&logs), 0);
    drop(m);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_lessons_options_keep_everything() {
    let session = bgagent::session::SessionConfig::new(std::env::temp_dir()).mirror(true);
    let lesson = session.manager_options();
    assert_eq!((lesson.keep_finished, lesson.log_budget), (None, None));
    let production = Options::default();
    assert_eq!(
        (production.keep_finished, production.log_budget),
        (Some(bgagent::defaults::KEEP_FINISHED), Some(bgagent::defaults::LOG_BUDGET))
    );
    assert_eq!((bgagent::defaults::KEEP_FINISHED, bgagent::defaults::LOG_BUDGET), (1000, 1 << 30));
}
