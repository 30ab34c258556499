//! The live managers, so that interpreter exit can stop all their tasks (no destructor runs
//! for a manager still referenced then).

use super::shared::{Inner, Until};
use std::sync::{Arc, Mutex, OnceLock, Weak};

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
        drop(inner.wait_while(Some(inner.stop_bound()), |s| !Until::Idle.holds(s)));
        inner.close_executor();
    }
}
