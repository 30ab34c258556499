//! A dead owner's finished tasks and undelivered notifications, taken into a new manager's
//! table and queue (`Options::adopt`).

use super::record::{Details, Finished, Notification, OutputStats, Status, TaskRecord};
use super::retention::Retention;
use super::shared::State;
use crate::error::Result;
use crate::store::{now, Adopted};
use std::time::{Duration, Instant};

/// Takes over dead owner `owner`: its notifications queued (in their order), its finished
/// tasks in the table, each counted by the retention as finished.
pub(super) fn adopt(state: &mut State, owner: &str, keep: &Retention) -> Result<()> {
    let Some(store) = &mut state.store else { return Ok(()) };
    let adopted = store.adopt(owner)?;
    let wall = now();
    for Adopted { task: stored, note } in adopted {
        let status = stored.status.parse().unwrap_or(Status::Error);
        let no = state.started;
        state.started += 1;
        let mut task =
            TaskRecord::new(stored.id.clone(), stored.command.clone(), Duration::ZERO, false, no);
        let ended = ago(wall, stored.ended_at.unwrap_or(wall));
        task.queued = ago(wall, stored.queued_at);
        task.slot = Some(stored.started_at.map_or(ended, |at| ago(wall, at)));
        let output = OutputStats { log_path: stored.log_path.clone(), ..OutputStats::default() };
        task.finish(Finished {
            status,
            result: stored.result.clone().unwrap_or_default(),
            exit_code: stored.exit_code,
            ended,
            pid: None,
            output,
        });
        let delivered = note.is_none();
        if let Some(n) = note {
            let note = Notification {
                task_id: n.task_id,
                status: n.status.parse().unwrap_or(Status::Error),
                command: n.command,
                result: n.result,
                exit_code: n.exit_code,
                details: Details {
                    duration: Duration::try_from_secs_f64(n.duration).unwrap_or_default(),
                    log_path: n.log_path,
                    tail: n.tail,
                },
            };
            task.notification = Some(note.clone());
            state.queue.push_back(note);
        }
        state.order.insert(no, stored.id.clone());
        state.tasks.insert(stored.id.clone(), task);
        // Log files are the dead owner's: only the records count here.
        let keep = Retention { removes_logs: false, ..*keep };
        let _ = state.ended(&stored.id, delivered, &keep);
    }
    state.flush_gone();
    Ok(())
}

/// The instant that was `at` (Unix seconds) when the wall clock read `wall`; now if that is
/// later or too far back to tell.
fn ago(wall: f64, at: f64) -> Instant {
    let back = Duration::try_from_secs_f64((wall - at).max(0.0)).unwrap_or_default();
    Instant::now().checked_sub(back).unwrap_or_else(Instant::now)
}
