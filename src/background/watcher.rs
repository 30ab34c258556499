//! Following a manager's task events on a thread of its own (the CLI's notices, the trace).

use super::{BackgroundManager, Subscription, TaskEvent};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Calls `on_event` for each task event from its start on, until dropped; the events already
/// published by then are still handled.
pub struct Watcher {
    events: Subscription,
    thread: Option<JoinHandle<()>>,
    handled: Arc<AtomicU64>,
}

impl Watcher {
    pub fn start(
        manager: &BackgroundManager,
        name: &str,
        mut on_event: impl FnMut(&TaskEvent) + Send + 'static,
    ) -> Watcher {
        let events = manager.subscribe();
        let mine = events.clone();
        let handled = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&handled);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while let Some(event) = mine.recv(None) {
                    on_event(&event);
                    count.fetch_add(1, Ordering::SeqCst);
                }
            })
            .ok();
        Watcher { events, thread, handled }
    }

    /// Waits (at most a second) until the events published so far are handled.
    pub fn settle(&self) {
        let give_up = Instant::now() + Duration::from_secs(1);
        while Instant::now() < give_up && self.thread.is_some() {
            let (queued, taken) = self.events.backlog();
            if queued == 0 && self.handled.load(Ordering::SeqCst) == taken {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.events.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
