//! What the state file costs: 500 `true` tasks (no cap) with and without one, best of 3, and
//! reopening a state file of 100,000 finished tasks (time, and resident memory grown).
//!
//! Run: `cargo run --release --example state_bench`

use bgagent::background::Until;
use bgagent::{BackgroundManager, Options};
use std::path::Path;
use std::time::{Duration, Instant};

const TASKS: usize = 500;
const STORED: usize = 100_000;

fn options(dir: &Path) -> Options {
    Options {
        workdir: Some(dir.to_path_buf()),
        max_running: None,
        keep_finished: None,
        ..Options::default()
    }
}

/// Tasks per second for `TASKS` `true` tasks, from the first start to the last drain.
fn run(dir: &Path, state: Option<&Path>) -> f64 {
    let state = state.map(Path::to_path_buf);
    let m = BackgroundManager::new(Options { state, ..options(dir) }).expect("a manager");
    m.prepare();
    let began = Instant::now();
    let ids: Vec<String> = (0..TASKS).map(|_| m.start("true")).collect();
    let _ = m.wait(Until::Idle, Some(Duration::from_secs(600)));
    let drained = m.drain().len();
    let took = began.elapsed();
    assert_eq!(drained, ids.len());
    TASKS as f64 / took.as_secs_f64()
}

/// Resident memory in bytes (`/proc/self/statm`).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

fn main() {
    bgagent::init();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let best = |state: bool| {
        (0..3)
            .map(|i| {
                let path = dir.path().join(format!("run{i}.db"));
                run(dir.path(), state.then_some(path.as_path()))
            })
            .fold(0.0, f64::max)
    };
    let memory = best(false);
    let durable = best(true);
    println!("{TASKS} `true` tasks, no cap, best of 3:");
    println!("  in memory:      {memory:8.0} tasks/s");
    println!("  with the state: {durable:8.0} tasks/s");
    println!("  ratio:          {:8.2} (target >= 0.8)", durable / memory);

    // A state file of STORED finished tasks, written as a manager would have left it.
    let big = dir.path().join("big.db");
    let with_big = || Options { state: Some(big.clone()), ..options(dir.path()) };
    drop(BackgroundManager::new(with_big()).expect("a manager"));
    let conn = rusqlite::Connection::open(&big).expect("the state file");
    conn.execute_batch("BEGIN").unwrap();
    {
        let mut q = conn
            .prepare(
                "INSERT INTO tasks (owner, id, command, workdir, status, queued_at, started_at, \
                 ended_at, pid, exit_code, result, log_path) VALUES ('0000000000000000', ?1, \
                 'make test', '/tmp', 'completed', 1.0, 2.0, 3.0, 42, 0, ?2, NULL)",
            )
            .unwrap();
        for i in 0..STORED {
            q.execute(rusqlite::params![
                format!("{i:08x}"),
                "ok: all 120 tests passed\n".repeat(4)
            ])
            .unwrap();
        }
    }
    conn.execute_batch("COMMIT").unwrap();
    drop(conn);
    let size = std::fs::metadata(&big).map_or(0, |m| m.len());
    let before = rss();
    let began = Instant::now();
    let m = BackgroundManager::new(with_big()).expect("a manager");
    let took = began.elapsed();
    let grown = rss().saturating_sub(before);
    println!("reopening a state of {STORED} finished tasks ({} MB):", size / 1_000_000);
    println!(
        "  open: {:.1} ms, resident memory grown by {:.1} MB",
        took.as_secs_f64() * 1e3,
        grown as f64 / 1e6
    );
    let began = Instant::now();
    let listed = m.stored().expect("the rows").len();
    println!("  stored(): {listed} rows in {:.1} ms", began.elapsed().as_secs_f64() * 1e3);
}
