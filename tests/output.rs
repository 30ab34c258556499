//! Reading a task's output through the manager: while it runs (a reader waiting for what
//! comes), after its end, its last lines, and an unknown id.

use bgagent::background::{BackgroundManager, Options, Until};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

fn manager(dir: &std::path::Path) -> BackgroundManager {
    BackgroundManager::new(Options { workdir: Some(dir.into()), ..Options::default() }).unwrap()
}

#[test]
fn a_reader_waits_for_output_as_it_comes_and_reads_after_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    let id = m.start("echo one; while [ ! -e go ]; do sleep 0.01; done; echo two; exit 3");
    let first = m.read(&id, 0, 65536, LONG).unwrap();
    assert_eq!((first.text.as_str(), first.next, first.running), ("one\n", 4, true));
    // While it runs, info() counts the bytes so far. The stream's count follows the log's a
    // moment later (the executor stores the bytes, then reports them), so it is polled.
    let give_up = std::time::Instant::now() + LONG;
    let info = loop {
        let info = serde_json::to_value(m.task(&id).unwrap()).unwrap();
        if info["stdout_bytes"].as_u64() == Some(4) {
            break info;
        }
        assert!(std::time::Instant::now() < give_up, "{info}");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!((info["status"].as_str(), info["log_bytes"].as_u64()), (Some("running"), Some(4)));
    // Nothing more yet: a read without a timeout gives nothing and the same offset.
    let none = m.read(&id, 4, 65536, Duration::ZERO).unwrap();
    assert_eq!((none.text.as_str(), none.next, none.running), ("", 4, true));
    // A reader on another thread waits for what the release lets the task print.
    std::thread::scope(|s| {
        let reader = s.spawn(|| m.read(&id, 4, 65536, LONG).unwrap());
        std::fs::write(dir.path().join("go"), "").unwrap();
        let got = reader.join().unwrap();
        assert!(!got.text.is_empty() && "two\n".starts_with(&got.text), "{got:?}");
    });
    m.wait(Until::Ended(&id), Some(LONG)).unwrap();
    let all = m.read(&id, 0, 65536, Duration::ZERO).unwrap();
    assert_eq!(all.text, "one\ntwo\n");
    assert_eq!((all.next, all.dropped, all.running, all.exit_code), (8, 0, false, Some(3)));
    // Past the end, once ended: no wait, whatever the timeout.
    let end = m.read(&id, 8, 65536, LONG).unwrap();
    assert_eq!((end.text.as_str(), end.next, end.running), ("", 8, false));
    assert_eq!(m.tail(&id, 1).unwrap(), ("two\n".to_string(), 8));
    assert_eq!(m.tail(&id, 5).unwrap(), ("one\ntwo\n".to_string(), 8));
}

#[test]
fn a_read_waits_through_the_end_of_a_task_without_output() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    let id = m.start("while [ ! -e go ]; do sleep 0.01; done");
    std::thread::scope(|s| {
        let reader = s.spawn(|| m.read(&id, 0, 10, LONG).unwrap());
        std::fs::write(dir.path().join("go"), "").unwrap();
        let got = reader.join().unwrap();
        assert_eq!((got.text.as_str(), got.running, got.exit_code), ("", false, Some(0)));
    });
}

#[test]
fn a_long_log_keeps_its_newest_bytes_and_says_what_it_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let options =
        Options { workdir: Some(dir.path().into()), log_limit: 20_000, ..Options::default() };
    let m = BackgroundManager::new(options).unwrap();
    let id = m.start("seq 1 100000");
    m.wait(Until::Ended(&id), Some(LONG)).unwrap();
    let read = m.read(&id, 0, 100, Duration::ZERO).unwrap();
    assert!(read.dropped > 0 && read.next == read.dropped + read.text.len() as u64, "{read:?}");
    let info = serde_json::to_value(m.task(&id).unwrap()).unwrap();
    assert_eq!(info["log_dropped"].as_u64(), Some(read.dropped));
    let (tail, end) = m.tail(&id, 3).unwrap();
    assert_eq!(tail, "99998\n99999\n100000\n");
    assert_eq!(end, info["log_bytes"].as_u64().unwrap());
}

#[test]
fn an_unknown_task_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    assert_eq!(m.read("nope", 0, 10, Duration::ZERO).unwrap_err(), "Error: Unknown task nope");
    assert_eq!(m.tail("nope", 3).unwrap_err(), "Error: Unknown task nope");
}

#[test]
fn an_async_read_waits_for_output() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path());
    let id = m.start("echo a; while [ ! -e go ]; do sleep 0.01; done; echo b");
    let awaiter = m.awaiter();
    let rt = bgagent::runtime::runtime();
    let first = rt.block_on(awaiter.read(&id, 0, 100, LONG)).unwrap();
    assert_eq!(first.text, "a\n");
    let reader = rt.spawn({
        let (awaiter, id) = (awaiter.clone(), id.clone());
        async move { awaiter.read(&id, 2, 100, LONG).await }
    });
    std::fs::write(dir.path().join("go"), "").unwrap();
    let got = rt.block_on(reader).unwrap().unwrap();
    assert!("b\n".starts_with(&got.text) && !got.text.is_empty(), "{got:?}");
    assert!(rt.block_on(awaiter.read("nope", 0, 1, Duration::ZERO)).is_err());
}
