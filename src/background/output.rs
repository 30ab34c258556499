//! Reading a task's output through the manager, while it runs and after: [`Read`] by
//! offset (waiting for more, bounded), and the last lines.

use super::awaiter::Awaiter;
use super::lesson;
use super::live::LiveOutput;
use super::record::TaskRecord;
use super::shared::{Inner, Records, Until};
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one read of a task's output gave.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Read {
    /// Whole characters of the output from `after` on.
    pub text: String,
    /// The offset to read from next.
    pub next: u64,
    /// Bytes from `after` on that the log no longer keeps (they came before `text`).
    pub dropped: u64,
    /// The task still waits or runs.
    pub running: bool,
    /// Its exit code, once it has ended (`None` also when a signal ended it).
    pub exit_code: Option<i32>,
}

/// A task's log and whether it has ended, at one moment.
struct Look {
    live: Option<Arc<LiveOutput>>,
    running: bool,
    exit_code: Option<i32>,
}

impl Look {
    fn of(task: &TaskRecord) -> Look {
        Look { live: task.live.clone(), running: task.is_running(), exit_code: task.exit_code() }
    }

    fn read(&self, after: u64, max_bytes: usize) -> Read {
        let chunk = match &self.live {
            Some(live) => live.log.read(after, max_bytes),
            None => Default::default(),
        };
        Read {
            text: chunk.text,
            next: if self.live.is_some() { chunk.next } else { after },
            dropped: chunk.dropped_before,
            running: self.running,
            exit_code: self.exit_code,
        }
    }

    /// A read from `after` has nothing to wait for: text is there, or the task is done.
    fn ready(&self, after: u64) -> bool {
        !self.running || self.live.as_ref().is_some_and(|l| l.log.read(after, 1).next > after)
    }
}

impl Inner {
    fn look(&self, task_id: &str) -> Result<Look, String> {
        let snapshot = self.snapshot(Records::One(task_id));
        snapshot.tasks.first().map(Look::of).ok_or_else(|| lesson::unknown_task(task_id))
    }

    /// Up to `max_bytes` of a task's output from offset `after`, waiting up to `timeout`
    /// for some while the task runs. `Err` carries the text to show for an unknown task.
    pub(crate) fn read(
        &self,
        task_id: &str,
        after: u64,
        max_bytes: usize,
        timeout: Duration,
    ) -> Result<Read, String> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let look = self.look(task_id)?;
            let left = deadline.map_or(timeout, |d| d.saturating_duration_since(Instant::now()));
            if look.ready(after) || left.is_zero() {
                return Ok(look.read(after, max_bytes));
            }
            match look.live.as_ref().filter(|live| !live.log.has_ended()) {
                Some(live) => {
                    live.log.wait(after, left);
                }
                // No log yet (the task waits for a slot or is starting), or the log ended and
                // the record is about to: the manager's wait, which the log's arrival and the
                // task's end both wake (in slices, to look at the deadline again).
                None => {
                    let had_log = look.live.is_some();
                    let slice = left.min(Duration::from_millis(20));
                    let _counted = LogWaiter::new(&self.log_waiters);
                    drop(self.wait_while(Some(slice), |s| {
                        s.tasks
                            .get(task_id)
                            .is_some_and(|t| t.is_running() && t.live.is_some() == had_log)
                    }));
                }
            }
        }
    }

    /// The last `lines` lines of a task's output, and the offset where they end.
    pub(crate) fn tail(&self, task_id: &str, lines: usize) -> Result<(String, u64), String> {
        let look = self.look(task_id)?;
        Ok(match &look.live {
            Some(live) => live.log.last_lines(lines),
            None => (String::new(), 0),
        })
    }
}

/// Counts a read waiting for its task's log while it lives (dropped too when an async read is
/// cancelled), so that a log's arrival wakes the manager's waits only when someone waits for it.
struct LogWaiter<'a>(&'a AtomicUsize);

impl<'a> LogWaiter<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        LogWaiter(count)
    }
}

impl Drop for LogWaiter<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Awaiter {
    /// [`super::BackgroundManager::read`] for event loops: waits without a thread.
    pub async fn read(
        &self,
        task_id: &str,
        after: u64,
        max_bytes: usize,
        timeout: Duration,
    ) -> Result<Read, String> {
        let look = self.inner.look(task_id)?;
        if !look.ready(after) && !timeout.is_zero() {
            let _ = tokio::time::timeout(timeout, self.ready(task_id, after)).await;
        }
        Ok(self.inner.look(task_id)?.read(after, max_bytes))
    }

    /// Resolves once a read from `after` would give text, or the task has ended.
    async fn ready(&self, task_id: &str, after: u64) {
        loop {
            let Ok(look) = self.inner.look(task_id) else { return };
            if look.ready(after) {
                return;
            }
            match &look.live {
                Some(live) if !live.log.has_ended() => live.log.changed(after).await,
                Some(_) => {
                    self.wait(Until::Ended(task_id)).await;
                }
                // No log yet: its arrival wakes the wait (looked at again shortly anyway).
                None => {
                    let _counted = LogWaiter::new(&self.inner.log_waiters);
                    let _ = tokio::time::timeout(
                        Duration::from_millis(20),
                        self.wait(Until::Ended(task_id)),
                    )
                    .await;
                }
            }
        }
    }
}
