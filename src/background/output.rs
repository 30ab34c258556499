//! Reading a task's output through the manager, while it runs and after: [`Read`] by
//! offset (waiting for more, bounded), the last lines ([`last_lines`]), and production's
//! report of a finished task (exit code, duration, log, head and tail of its output).

use super::awaiter::Awaiter;
use super::lesson;
use super::live::LiveOutput;
use super::record::{Notification, TaskRecord};
use super::shared::{Inner, Records, Until};
use crate::exec::OutputLog;
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
            Some(live) => last_lines(&live.log, lines),
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

/// Reads `[from, to)` of `log` as text (fewer bytes if the log moved on meanwhile).
fn read_range(log: &OutputLog, from: u64, to: u64) -> String {
    let mut text = String::new();
    let mut at = from;
    while at < to {
        let chunk = log.read(at, (to - at) as usize);
        if chunk.next <= at {
            break;
        }
        text.push_str(&chunk.text);
        at = chunk.next;
    }
    text
}

/// The last `lines` lines of `log` (a last line without its newline counts), and the
/// offset where they end. Reads backwards in growing windows, so a long log costs only its
/// end; a window that starts within a line leaves that partial line out.
pub fn last_lines(log: &OutputLog, lines: usize) -> (String, u64) {
    let stats = log.stats();
    let (end, kept) = (stats.log_bytes, stats.log_dropped);
    if lines == 0 {
        return (String::new(), end);
    }
    let mut window: u64 = 8192;
    loop {
        let start = end.saturating_sub(window).max(kept);
        let text = read_range(log, start, end);
        let body = text.strip_suffix('\n').unwrap_or(&text);
        let whole = start == kept;
        // Where each of the last lines starts: after the newline before it.
        let starts: Vec<usize> = body.match_indices('\n').map(|(i, _)| i + 1).collect();
        if starts.len() >= lines {
            return (text[starts[starts.len() - lines]..].to_string(), end);
        }
        if whole || window >= 1 << 24 {
            // All there is, or a window of 16 MiB without enough lines: what it holds, from
            // the first whole line (unless the log's first kept byte starts one).
            let from = if whole { 0 } else { starts.first().copied().unwrap_or(0) };
            return (text[from..].to_string(), end);
        }
        window *= 8;
    }
}

/// Lines of the output's end a production report shows, at most.
const TAIL_LINES: usize = 20;
/// Characters of the output's tail a production report shows, at most.
const TAIL_CHARS: usize = 2000;

/// Production's line for a finished task in `<background-results>`: its status, exit code,
/// duration and log, then the head of its output (the notification's preview) and, if the
/// preview did not reach it, the tail (where a test run puts its summary).
pub fn report(note: &Notification, task: Option<&TaskRecord>) -> String {
    let Some(task) = task else {
        // A task no longer known (forgotten): what the notification says.
        return match note.exit_code {
            Some(code) => {
                format!("[bg:{}] {} (exit {code}): {}", note.task_id, note.status, note.result)
            }
            None => format!("[bg:{}] {}: {}", note.task_id, note.status, note.result),
        };
    };
    let mut facts = vec![match note.exit_code {
        Some(code) => format!("exit {code}"),
        None => "no exit code".to_string(),
    }];
    facts.push(format!("{:.1}s", task.elapsed().as_secs_f64()));
    let path = task.finished().and_then(|f| f.output.log_path.clone());
    let path = path.or_else(|| task.live.as_ref().and_then(|l| l.log.stats().log_path));
    if let Some(path) = path {
        facts.push(format!("log {}", path.display()));
    }
    let mut text =
        format!("[bg:{}] {} ({}): {}", note.task_id, note.status, facts.join(", "), note.result);
    // The tail, where the head did not show the end: the preview cut the result, or the
    // result is a message (killed, timed out) and the output is only in the log.
    let full = task.result().unwrap_or_default();
    let cut = note.result.len() < full.len();
    let message = note.status != super::record::Status::Completed;
    if let Some(live) = task.live.as_ref().filter(|_| cut || message) {
        let (tail, _) = last_lines(&live.log, TAIL_LINES);
        let tail = tail.trim_end();
        let tail = &tail[tail.len() - prefix_from_end(tail, TAIL_CHARS)..];
        if !tail.is_empty() && !note.result.trim_end().ends_with(tail) {
            text.push_str("\n[... the output's end:]\n");
            text.push_str(tail);
        }
    }
    text
}

/// How many bytes the last `chars` characters of `text` take.
fn prefix_from_end(text: &str, chars: usize) -> usize {
    text.char_indices()
        .rev()
        .nth(chars.saturating_sub(1))
        .map_or(text.len(), |(i, _)| text.len() - i)
}
