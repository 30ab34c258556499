//! Task events: every change the manager makes (queued, started, output progress, finished,
//! drained) goes to each subscription, stamped with a monotonic time, in the order it happened.
//!
//! Lifecycle events are never dropped. Progress events are: a subscriber that falls behind
//! by more than [`MAX_PENDING_PROGRESS`] of them misses the newest, never a `Started` or a
//! `Finished`.

use super::record::Status;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// Serialised (serde) as the Python dicts show it: `{"event": name, ...its fields}`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum TaskEventKind {
    /// Submitted. `place`: it waits for a slot, this far back in line (1 = next); absent
    /// when it starts at once.
    Queued {
        command: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        place: Option<usize>,
    },
    /// Its process runs. `waited`: seconds it waited for a slot (only if it had to).
    Started {
        pid: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        waited: Option<f64>,
    },
    /// Bytes of output so far; sent at most a few times a second per task.
    Progress {
        stdout_bytes: u64,
        stderr_bytes: u64,
    },
    Finished {
        status: Status,
        exit_code: Option<i32>,
    },
    /// Its notification was taken from the queue.
    Drained,
}

impl TaskEventKind {
    pub fn name(&self) -> &'static str {
        match self {
            TaskEventKind::Queued { .. } => "queued",
            TaskEventKind::Started { .. } => "started",
            TaskEventKind::Progress { .. } => "progress",
            TaskEventKind::Finished { .. } => "finished",
            TaskEventKind::Drained => "drained",
        }
    }
}

/// Serialised as `{"task_id", "event", ...}` (its time is the caller's to show).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TaskEvent {
    /// Never earlier than the event before it.
    #[serde(skip)]
    pub at: Instant,
    pub task_id: String,
    #[serde(flatten)]
    pub kind: TaskEventKind,
}

/// Progress events a subscriber may have waiting before new ones are dropped.
pub const MAX_PENDING_PROGRESS: usize = 256;

/// How often a task's output progress is published, at most.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(250);

#[derive(Default)]
struct Pending {
    events: VecDeque<TaskEvent>,
    progress: usize,
    closed: bool,
    /// Events handed out by `recv` so far.
    taken: u64,
}

#[derive(Default)]
struct Queue {
    pending: Mutex<Pending>,
    ready: Condvar,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One subscriber's events. Clones share the queue; it stops receiving when the last clone
/// is dropped or [`Subscription::close`] is called.
#[derive(Clone)]
pub struct Subscription(Arc<Queue>);

impl Subscription {
    /// The next event, waiting at most `timeout` (`None`: until one comes or it is closed).
    pub fn recv(&self, timeout: Option<Duration>) -> Option<TaskEvent> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut pending = self.0.lock();
        loop {
            if let Some(event) = pending.events.pop_front() {
                if matches!(event.kind, TaskEventKind::Progress { .. }) {
                    pending.progress -= 1;
                }
                pending.taken += 1;
                return Some(event);
            }
            if pending.closed {
                return None;
            }
            pending = match deadline {
                None => self.0.ready.wait(pending).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    self.0.ready.wait_timeout(pending, left).unwrap_or_else(|p| p.into_inner()).0
                }
            };
        }
    }

    /// The next event if one is waiting.
    pub fn try_recv(&self) -> Option<TaskEvent> {
        self.recv(Some(Duration::ZERO))
    }

    /// How many events wait, and how many `recv` has handed out, read together: a consumer
    /// that counts what it has handled knows from these when it has caught up.
    pub fn backlog(&self) -> (usize, u64) {
        let pending = self.0.lock();
        (pending.events.len(), pending.taken)
    }

    /// True once closed (then `recv` returns `None` at once).
    pub fn is_closed(&self) -> bool {
        self.0.lock().closed
    }

    /// Stops receiving; events already waiting can still be taken, then `recv` returns `None`.
    pub fn close(&self) {
        self.0.lock().closed = true;
        self.0.ready.notify_all();
    }
}

/// The manager's side: the list of subscribers.
#[derive(Default)]
pub(crate) struct Hub {
    subscribers: Mutex<Vec<Weak<Queue>>>,
}

impl Hub {
    pub fn subscribe(&self) -> Subscription {
        let queue = Arc::new(Queue::default());
        self.lock().push(Arc::downgrade(&queue));
        Subscription(queue)
    }

    /// Sends one event to every subscriber. The time is taken under the hub's lock, so each
    /// subscriber sees times that never go backwards.
    pub fn publish(&self, task_id: &str, kind: TaskEventKind) {
        let mut subscribers = self.lock();
        if subscribers.is_empty() {
            return;
        }
        let event = TaskEvent { at: Instant::now(), task_id: task_id.to_string(), kind };
        let progress = matches!(event.kind, TaskEventKind::Progress { .. });
        subscribers.retain(|weak| {
            let Some(queue) = weak.upgrade() else { return false };
            let mut pending = queue.lock();
            if pending.closed {
                return false;
            }
            if progress {
                if pending.progress >= MAX_PENDING_PROGRESS {
                    return true;
                }
                pending.progress += 1;
            }
            pending.events.push_back(event.clone());
            drop(pending);
            queue.ready.notify_all();
            true
        });
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Weak<Queue>>> {
        self.subscribers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_subscriber_loses_progress_but_never_a_lifecycle_event() {
        let hub = Hub::default();
        let sub = hub.subscribe();
        hub.publish("a", TaskEventKind::Queued { command: "x".into(), place: None });
        for i in 0..(MAX_PENDING_PROGRESS as u64 + 50) {
            hub.publish("a", TaskEventKind::Progress { stdout_bytes: i, stderr_bytes: 0 });
        }
        hub.publish("a", TaskEventKind::Finished { status: Status::Completed, exit_code: Some(0) });
        let mut got = Vec::new();
        while let Some(e) = sub.try_recv() {
            got.push(e);
        }
        assert_eq!(got.len(), MAX_PENDING_PROGRESS + 2);
        assert_eq!(got[0].kind.name(), "queued");
        assert_eq!(got.last().unwrap().kind.name(), "finished");
        assert!(got.windows(2).all(|w| w[0].at <= w[1].at));
    }

    #[test]
    fn dropped_and_closed_subscriptions_stop_receiving() {
        let hub = Hub::default();
        let kept = hub.subscribe();
        drop(hub.subscribe());
        let closed = hub.subscribe();
        closed.close();
        hub.publish("a", TaskEventKind::Drained);
        assert_eq!(hub.lock().len(), 1);
        assert_eq!(kept.try_recv().map(|e| e.kind), Some(TaskEventKind::Drained));
        assert_eq!(closed.recv(None), None, "a closed subscription does not block");
    }
}
