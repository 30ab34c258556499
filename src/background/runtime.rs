//! The process-wide machinery every manager shares: one small tokio runtime that watches all
//! tasks (so a thousand tasks cost a thousand futures, not a thousand threads), and a list of
//! live managers so that interpreter exit can shut them all down.

use super::Inner;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use tokio::runtime::{Builder, Runtime};

pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        raise_open_file_limit();
        Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(4)
            .thread_name("bgagent-worker")
            .enable_all()
            .build()
            .expect("cannot start the bgagent runtime threads")
    })
}

/// Each running task holds three descriptors (two pipes and a process handle), so the common
/// soft limit of 1024 would cap us near 300 tasks. Raise it to the hard limit, as Go does.
fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

fn registry() -> &'static Mutex<Vec<Weak<Inner>>> {
    static REGISTRY: OnceLock<Mutex<Vec<Weak<Inner>>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(Vec::new()))
}

pub fn register(inner: &Arc<Inner>) {
    let mut list = registry().lock().unwrap_or_else(|p| p.into_inner());
    list.retain(|w| w.strong_count() > 0);
    list.push(Arc::downgrade(inner));
}

/// Kills every running task of every manager still alive and waits for them to end.
pub fn shutdown_all() {
    let live: Vec<Arc<Inner>> = {
        let list = registry().lock().unwrap_or_else(|p| p.into_inner());
        list.iter().filter_map(Weak::upgrade).collect()
    };
    for inner in &live {
        inner.request_kill_all();
    }
    for inner in &live {
        inner.wait_idle(Some(inner.stop_bound()));
        // At exit no Drop will run for managers still referenced: clean up their temp logs now.
        inner.remove_own_log_dir();
    }
}
