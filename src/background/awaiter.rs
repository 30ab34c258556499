//! Async waits on a manager, for event loops (Python's asyncio): the same conditions as the
//! blocking waits, woken by a watch channel instead of the condition variable, so a wait
//! holds no thread and ends at once when its future is dropped (cancelled).

use super::{Inner, Notification, State, Status, TaskRecord};
use std::sync::Arc;
use std::time::Duration;

/// A cloneable handle to a manager's state for async waits ([`super::BackgroundManager::awaiter`]).
#[derive(Clone)]
pub struct Awaiter {
    pub(super) inner: Arc<Inner>,
}

impl Awaiter {
    /// Resolves with the first `Some` that `ready` returns, looking again after every change.
    async fn until<T>(&self, mut ready: impl FnMut(&mut State) -> Option<T>) -> T {
        let mut changes = self.inner.version.subscribe();
        loop {
            changes.borrow_and_update(); // a change from here on wakes the wait below
            let value = ready(&mut self.inner.lock());
            if let Some(value) = value {
                return value;
            }
            // The sender lives in `inner`, which this handle keeps: it cannot close.
            let _ = changes.changed().await;
        }
    }

    /// Waits for the task to end; its status then, or `None` for an unknown id.
    pub async fn task(&self, task_id: &str) -> Option<Status> {
        self.until(|s| match s.tasks.get(task_id) {
            Some(t) if t.status == Status::Running => None,
            other => Some(other.map(|t| t.status)),
        })
        .await
    }

    /// Waits while nothing is queued and a task runs, then drains the queue.
    pub async fn notifications(&self) -> Vec<Notification> {
        let inner = &self.inner;
        self.until(|s| (!s.nothing_yet()).then(|| inner.drain(s))).await
    }

    /// The oldest notification, waiting while none is queued and a task runs; `None` once
    /// nothing is queued and nothing runs.
    pub async fn next_notification(&self) -> Option<Notification> {
        let inner = &self.inner;
        self.until(|s| (!s.nothing_yet()).then(|| inner.take_one(s))).await
    }

    /// Waits until no task runs.
    pub async fn idle(&self) {
        self.until(|s| (s.running == 0).then_some(())).await
    }

    /// Stops every running task and waits (at most the stop bound) for them to end.
    pub async fn shutdown(&self) {
        self.inner.request_kill_all();
        let _ = tokio::time::timeout(self.stop_bound(), self.idle()).await;
    }

    /// What the manager knows of a task now.
    pub fn record(&self, task_id: &str) -> Option<TaskRecord> {
        self.inner.record(task_id)
    }

    /// How long stopping a task can take (grace, SIGKILL, the pipe cut-off).
    pub fn stop_bound(&self) -> Duration {
        self.inner.stop_bound()
    }
}
