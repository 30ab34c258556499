//! Async waits on a manager, for event loops (Python's asyncio): the same [`Until`] as the
//! blocking wait, woken by a watch channel instead of the condition variable, so a wait
//! holds no thread and ends at once when its future is dropped (cancelled).

use super::record::Notification;
use super::shared::{Inner, Until};
use std::sync::Arc;
use std::time::Duration;

/// A cloneable handle to a manager's state for async waits ([`super::BackgroundManager::awaiter`]).
#[derive(Clone)]
pub struct Awaiter {
    pub(super) inner: Arc<Inner>,
}

impl Awaiter {
    /// [`super::BackgroundManager::wait`] without a timeout (bound it with the caller's own):
    /// resolves once `until` holds, with the notification [`Until::Next`] took.
    pub async fn wait(&self, until: Until<'_>) -> Option<Notification> {
        let mut changes = self.inner.version.subscribe();
        loop {
            changes.borrow_and_update(); // a change from here on wakes the wait below
            if let Some(got) = self.inner.woke(&mut self.inner.lock(), &until) {
                return got;
            }
            // The sender lives in `inner`, which this handle keeps: it cannot close.
            let _ = changes.changed().await;
        }
    }

    /// Stops every running task and waits (at most the stop bound) for them to end.
    pub async fn shutdown(&self) {
        self.inner.request_kill_all();
        let _ = tokio::time::timeout(self.stop_bound(), self.wait(Until::Idle)).await;
    }

    /// Everything queued, in completion order; the queue is left empty.
    pub fn drain(&self) -> Vec<Notification> {
        self.inner.drain(&mut self.inner.lock())
    }

    /// Asks a running task to stop without waiting. `Err` carries the text to show the user.
    pub fn request_kill(&self, task_id: &str) -> Result<(), String> {
        self.inner.request_kill(task_id)
    }

    /// What the manager knows of a task now.
    pub fn record(&self, task_id: &str) -> Option<super::record::TaskRecord> {
        self.inner.snapshot(super::shared::Records::One(task_id)).tasks.pop()
    }

    /// How long stopping a task can take (grace, SIGKILL, the pipe cut-off).
    pub fn stop_bound(&self) -> Duration {
        self.inner.stop_bound()
    }
}
