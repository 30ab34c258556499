//! The state file: records and notifications that outlive their manager, dead owners, adoption,
//! and files that are not bgagent's. Real processes and files; a crashed owner is this test
//! binary run again as a child (`child_role`) and SIGKILLed.

mod common;

use bgagent::background::Until;
use bgagent::{BackgroundManager, Error, Options};
use common::TempDir;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const LONG: Option<Duration> = Some(Duration::from_secs(60));
const CHILD_ENV: &str = "BGAGENT_STATE_TEST_CHILD";

fn options(dir: &Path) -> Options {
    Options {
        workdir: Some(dir.to_path_buf()),
        grace: Duration::from_millis(300),
        max_running: None,
        ..Options::default()
    }
}

fn open(dir: &Path, state: &Path, adopt: Option<&str>) -> bgagent::Result<BackgroundManager> {
    common::use_supervisor();
    let state = Some(state.to_path_buf());
    BackgroundManager::new(Options { state, adopt: adopt.map(str::to_string), ..options(dir) })
}

/// Polls `done` until it holds; fails the test after a minute.
fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn sibling(state: &Path, suffix: &str) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[test]
fn without_a_state_nothing_is_stored() {
    let dir = TempDir::new();
    let m = BackgroundManager::new(options(&dir.0)).unwrap();
    assert_eq!(m.owner_id(), None);
    assert!(m.stored().unwrap().is_empty());
}

#[test]
fn a_finished_task_is_listed_by_the_next_manager() {
    let dir = TempDir::new();
    let state = dir.0.join("state.db");
    let first = open(&dir.0, &state, None).unwrap();
    let owner = first.owner_id().unwrap().to_string();
    let id = first.start("echo persisted");
    first.wait(Until::Ended(&id), LONG).unwrap();
    drop(first);

    let second = open(&dir.0, &state, None).unwrap();
    assert_ne!(second.owner_id(), Some(owner.as_str()));
    let stored = second.stored().unwrap();
    let task = stored.iter().find(|t| t.id == id).expect("the first manager's task");
    assert_eq!(task.owner, owner);
    assert!(!task.owner_alive);
    assert_eq!(task.status, "completed");
    assert_eq!(task.command, "echo persisted");
    assert_eq!(task.exit_code, Some(0));
    assert!(task.result.as_deref().unwrap().contains("persisted"));
    assert!(task.started_at.is_some() && task.ended_at.is_some());
    // Listed only: its notification is the dead owner's, for an adopter.
    assert!(second.drain().is_empty());
    assert_eq!(second.check(None), "No background tasks.");
}

/// The crashed owner: opens the state, finishes one task (its notification left undelivered),
/// starts one held by a file that never comes, says so, and waits to be killed.
#[test]
fn child_role() {
    let Some(dir) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else { return };
    let m = open(&dir, &dir.join("state.db"), None).unwrap();
    let quick = m.start("echo quick result");
    m.wait(Until::Ended(&quick), LONG).unwrap();
    let marker = std::fs::read_to_string(dir.join("marker")).unwrap();
    let held = m.start(&format!(
        ": {marker}; echo ran >> ran; touch started; \
         until [ -e release ]; do sleep 0.05; done; echo again >> ran"
    ));
    until("the held task to run", || {
        dir.join("started").exists() && m.task(&held).and_then(|t| t.pid()).is_some()
    });
    let ids = format!("{}\n{quick}\n{held}\n", m.owner_id().unwrap());
    std::fs::write(dir.join("ids.tmp"), ids).unwrap();
    std::fs::rename(dir.join("ids.tmp"), dir.join("ids")).unwrap();
    loop {
        std::thread::park();
    }
}

#[test]
fn a_dead_owners_tasks_are_killed_and_its_notifications_go_to_its_adopter_once() {
    let dir = TempDir::new();
    let state = dir.0.join("state.db");
    let marker = common::marker();
    std::fs::write(dir.0.join("marker"), &marker).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_role", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &dir.0)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    until("the child to start its tasks", || {
        assert!(child.try_wait().unwrap().is_none(), "the child ended early");
        dir.0.join("ids").exists()
    });
    let ids = std::fs::read_to_string(dir.0.join("ids")).unwrap();
    let [owner, quick, held]: [&str; 3] = ids.lines().collect::<Vec<_>>().try_into().unwrap();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Its supervisor ends the held task once the owner is gone.
    until("the held task to be killed", || common::processes_with(&marker).is_empty());
    std::fs::write(dir.0.join("release"), "").unwrap();

    // A manager that adopts nothing ends the dead owner's running task, and only lists.
    let bystander = open(&dir.0, &state, None).unwrap();
    let stored = bystander.stored().unwrap();
    let row = |id: &str| stored.iter().find(|t| t.id == id).unwrap().clone();
    let (q, h) = (row(quick), row(held));
    assert_eq!((q.status.as_str(), q.owner.as_str(), q.owner_alive), ("completed", owner, false));
    assert!(q.result.unwrap().contains("quick result"));
    assert_eq!(h.status, "killed");
    let result = h.result.unwrap();
    assert!(
        result.starts_with(&format!(
            "Error: Killed: the process that ran this task (owner {owner}) ended before it did"
        )),
        "{result}"
    );
    assert!(bystander.drain().is_empty());
    assert_eq!(bystander.check(None), "No background tasks.");

    // The adopter gets both notifications, in the order they were queued, once.
    let adopter = open(&dir.0, &state, Some(owner)).unwrap();
    let notes = adopter.drain();
    let got: Vec<(&str, &str)> =
        notes.iter().map(|n| (n.task_id.as_str(), n.status.as_str())).collect();
    assert_eq!(got, [(quick, "completed"), (held, "killed")]);
    assert!(notes[0].result.contains("quick result"));
    assert!(notes[1].result.contains(&format!("owner {owner}")));
    assert!(adopter.drain().is_empty());
    assert!(adopter.check(Some(quick)).contains("quick result"));
    assert!(adopter.check(None).contains(held));
    let adopter_id = adopter.owner_id().unwrap().to_string();
    assert!(adopter.stored().unwrap().iter().any(|t| t.id == quick && t.owner == adopter_id));
    // Adopted once: a second adoption is refused.
    let again = open(&dir.0, &state, Some(owner)).err().expect("adopted already");
    assert!(matches!(again, Error::Adopt { .. }), "{again}");
    drop(adopter);
    // The deliveries were written: the adopter's own adopter gets the records, not the
    // notifications again.
    let heir = open(&dir.0, &state, Some(&adopter_id)).unwrap();
    assert!(heir.drain().is_empty());
    assert!(heir.check(Some(held)).contains("killed"));
    drop((heir, bystander));

    // The held command ran once, and never again.
    let ran = std::fs::read_to_string(dir.0.join("ran")).unwrap();
    assert_eq!(ran, "ran\n");
    let conn = rusqlite::Connection::open(&state).unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn two_live_owners_list_each_other_and_cannot_adopt_each_other() {
    let dir = TempDir::new();
    let state = dir.0.join("state.db");
    let a = open(&dir.0, &state, None).unwrap();
    let b = open(&dir.0, &state, None).unwrap();
    let ta = a.start("echo from a");
    let tb = b.start("echo from b");
    a.wait(Until::Ended(&ta), LONG).unwrap();
    b.wait(Until::Ended(&tb), LONG).unwrap();
    for (m, other, id) in [(&a, &b, &tb), (&b, &a, &ta)] {
        let stored = m.stored().unwrap();
        let t = stored.iter().find(|t| &t.id == id).expect("the other's task");
        assert_eq!(t.owner, other.owner_id().unwrap());
        assert!(t.owner_alive);
        // Each runs and reports only its own.
        assert!(!m.check(None).contains(id.as_str()));
    }
    for owner in [a.owner_id().unwrap(), b.owner_id().unwrap()] {
        let e = open(&dir.0, &state, Some(owner)).err().expect("a live owner");
        assert!(matches!(&e, Error::Adopt { reason, .. } if reason.contains("alive")), "{e}");
    }
    let e = open(&dir.0, &state, Some("0123456789abcdef")).err().expect("an unknown owner");
    assert!(matches!(&e, Error::Adopt { reason, .. } if reason.contains("no such owner")), "{e}");
    // The refused openers ended cleanly: a and b still see each other alive.
    assert!(a.stored().unwrap().iter().all(|t| t.owner_alive));
}

#[test]
fn retention_letting_a_task_go_deletes_its_row() {
    let dir = TempDir::new();
    let state = dir.0.join("state.db");
    common::use_supervisor();
    let options = Options { keep_finished: Some(1), state: Some(state.clone()), ..options(&dir.0) };
    let m = BackgroundManager::new(options).unwrap();
    let ids: Vec<String> = (0..3).map(|i| m.start(&format!("echo {i}"))).collect();
    for id in &ids {
        m.wait(Until::Ended(id), LONG).unwrap();
    }
    assert_eq!(m.drain().len(), 3);
    let stored: Vec<String> = m.stored().unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(m.task(&stored[0]).is_some());
}

#[test]
fn files_and_directories_are_private() {
    let dir = TempDir::new();
    let state = dir.0.join("made").join("here").join("state.db");
    let m = open(&dir.0, &state, None).unwrap();
    let id = m.start("seq 1 100000");
    m.wait(Until::Ended(&id), LONG).unwrap();
    assert_eq!(mode(&state), 0o600);
    assert_eq!(mode(&dir.0.join("made")), 0o700);
    assert_eq!(mode(&dir.0.join("made/here")), 0o700);
    assert_eq!(mode(&sibling(&state, "-wal")), 0o600);
    assert_eq!(mode(&sibling(&state, ".owners")), 0o700);
    let logs = sibling(&state, ".logs").join(m.owner_id().unwrap());
    assert_eq!(mode(&logs), 0o700);
    // The log stays in the state's log directory, past the manager.
    let log = m.task(&id).unwrap().finished().unwrap().output.log_path.clone().unwrap();
    assert!(log.starts_with(&logs), "{}", log.display());
    drop(m);
    assert!(log.exists());
}

/// Opening `state` fails as `expected` says, and leaves its bytes as they were.
fn refused(state: &Path, expected: fn(&Error) -> bool) {
    let before = std::fs::read(state).unwrap();
    let dir = state.parent().unwrap();
    let e = open(dir, state, None).err().expect("a refused file");
    assert!(expected(&e), "{e}");
    assert!(e.to_string().contains("left as it is"), "{e}");
    assert_eq!(std::fs::read(state).unwrap(), before, "the file was changed");
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_untouched() {
    let dir = TempDir::new();
    let state = dir.0.join("state.db");
    let bytes: Vec<u8> = (0..64).flat_map(|_| *uuid::Uuid::new_v4().as_bytes()).collect();
    std::fs::write(&state, bytes).unwrap();
    refused(
        &state,
        |e| matches!(e, Error::StateNotBgagent { reason, .. } if reason.contains("not a SQLite")),
    );
}

#[test]
fn another_programs_sqlite_file_is_refused_untouched() {
    let dir = TempDir::new();
    let plain = dir.0.join("plain.db");
    let conn = rusqlite::Connection::open(&plain).unwrap();
    conn.execute_batch("CREATE TABLE notes (x TEXT); INSERT INTO notes VALUES ('mine');").unwrap();
    drop(conn);
    refused(
        &plain,
        |e| matches!(e, Error::StateNotBgagent { reason, .. } if reason.contains("another program")),
    );
    let marked = dir.0.join("marked.db");
    let conn = rusqlite::Connection::open(&marked).unwrap();
    conn.execute_batch("PRAGMA application_id = 1234; CREATE TABLE t (x);").unwrap();
    drop(conn);
    refused(
        &marked,
        |e| matches!(e, Error::StateNotBgagent { reason, .. } if reason.contains("application_id")),
    );
}

#[test]
fn a_state_file_from_a_newer_bgagent_is_refused_untouched() {
    let dir = TempDir::new();
    let state = dir.0.join("state.db");
    drop(open(&dir.0, &state, None).unwrap());
    let conn = rusqlite::Connection::open(&state).unwrap();
    conn.execute_batch("PRAGMA user_version = 99").unwrap();
    drop(conn);
    refused(&state, |e| matches!(e, Error::StateTooNew { found: 99, .. }));
}

#[test]
fn a_damaged_state_file_is_refused_untouched() {
    let dir = TempDir::new();
    let state = dir.0.join("state.db");
    let m = open(&dir.0, &state, None).unwrap();
    for i in 0..50 {
        let id = m.start(&format!("echo {i} {}", "x".repeat(500)));
        m.wait(Until::Ended(&id), LONG).unwrap();
    }
    drop(m);
    let mut bytes = std::fs::read(&state).unwrap();
    assert!(bytes.len() > 3 * 4096, "{} bytes", bytes.len());
    // Past the first page (the header and the schema), every page is garbage.
    for (i, b) in bytes.iter_mut().enumerate().skip(4096) {
        *b = (i * 7 + 13) as u8;
    }
    std::fs::write(&state, &bytes).unwrap();
    refused(
        &state,
        |e| matches!(e, Error::StateNotBgagent { reason, .. } if reason.contains("damaged")),
    );
}
