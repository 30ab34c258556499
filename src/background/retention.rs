//! What a manager keeps of finished tasks. Past `keep_finished` finished tasks, the oldest
//! whose notification was already taken are let go (their record, and their log file when the
//! log directory is the manager's own); past `log_budget` bytes of finished tasks' log files,
//! the oldest of those files are removed (the record stays and says so). A task that runs or
//! waits, or whose notification is still queued, is never let go: nothing is lost that no one
//! has seen. The lesson keeps everything (both limits `None`).

use super::record::{TaskRecord, TaskState};
use super::{lesson, production};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// A manager's limits on what it keeps.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Retention {
    /// At most this many finished tasks are kept (`None`: all).
    pub keep_finished: Option<usize>,
    /// At most this many bytes of finished tasks' log files are kept (`None`: all).
    pub log_budget: Option<u64>,
    /// The log files are in the manager's own temporary directory, so it may remove them; a
    /// directory the user named (or another executor's) is left as it is.
    pub removes_logs: bool,
}

/// The task table retention works on: records by id, and ids by start number.
pub(super) type Tasks = HashMap<String, TaskRecord>;
pub(super) type Order = BTreeMap<u64, String>;

/// What retention keeps track of, beside the task table (under the same lock).
#[derive(Default)]
pub(super) struct Kept {
    /// Finished tasks kept.
    finished: usize,
    /// Tasks finished so far: the next one's finish number.
    finish_numbers: u64,
    /// Finished tasks kept whose notification was taken, by finish number: what retention
    /// may let go, oldest first.
    delivered: BTreeMap<u64, String>,
    /// Finished tasks kept whose log file the manager may remove, by finish number, and the
    /// bytes those files hold.
    logs: BTreeMap<u64, String>,
    log_total: u64,
    /// Ids let go since a reader last took them; `None` until one asks (so a manager no one
    /// asks keeps no list).
    let_go: Option<Vec<String>>,
    /// Ids let go whose rows the state file still has (`Some` only with a state file).
    pub(super) gone: Option<Vec<String>>,
}

impl Kept {
    /// A task has just finished (its record says so). `delivered`: it has no notification to
    /// wait for. Returns the log files to remove.
    pub(super) fn ended(
        &mut self,
        (tasks, order): (&mut Tasks, &mut Order),
        id: &str,
        delivered: bool,
        keep: &Retention,
    ) -> Vec<PathBuf> {
        let no = self.finish_numbers;
        self.finish_numbers += 1;
        let Some(task) = tasks.get_mut(id) else { return Vec::new() };
        task.end_no = Some(no);
        task.delivered = delivered;
        self.finished += 1;
        if delivered {
            self.delivered.insert(no, id.to_string());
        }
        if keep.removes_logs {
            if let Some(output) = task.finished().map(|f| &f.output) {
                if output.log_path.is_some() {
                    self.log_total += output.log_bytes;
                    self.logs.insert(no, id.to_string());
                }
            }
        }
        self.retain((tasks, order), keep)
    }

    /// A task's notification was taken: retention may let it go now.
    pub(super) fn delivered(&mut self, tasks: &mut Tasks, id: &str) {
        if let Some(task) = tasks.get_mut(id) {
            task.delivered = true;
            if let Some(no) = task.end_no {
                self.delivered.insert(no, id.to_string());
            }
        }
    }

    /// Lets go what is past the limits, oldest first; returns the log files to remove.
    pub(super) fn retain(
        &mut self,
        (tasks, order): (&mut Tasks, &mut Order),
        keep: &Retention,
    ) -> Vec<PathBuf> {
        let mut doomed = Vec::new();
        if let Some(limit) = keep.keep_finished {
            while self.finished > limit {
                let Some((_, id)) = self.delivered.pop_first() else { break };
                doomed.extend(self.let_go((tasks, order), &id));
            }
        }
        if let Some(budget) = keep.log_budget {
            while self.log_total > budget {
                let Some((_, id)) = self.logs.pop_first() else { break };
                let Some(task) = tasks.get_mut(&id) else { continue };
                if let Some(path) = remove_log(task, &mut self.log_total) {
                    task.log_removed = true;
                    doomed.push(path);
                }
            }
        }
        doomed
    }

    /// `forget`: lets one finished, delivered task go now. `Err` carries the text to show the
    /// user; `Ok` the log file to remove, if any.
    pub(super) fn forget(
        &mut self,
        (tasks, order): (&mut Tasks, &mut Order),
        id: &str,
    ) -> Result<Option<PathBuf>, String> {
        let Some(task) = tasks.get(id) else { return Err(lesson::unknown_task(id)) };
        if task.is_running() {
            return Err(production::cannot_forget(id, task.status().as_str()));
        }
        if !task.delivered {
            return Err(production::not_delivered(id));
        }
        if let Some(no) = task.end_no {
            self.delivered.remove(&no);
        }
        Ok(self.let_go((tasks, order), id))
    }

    /// How many tasks have finished so far (the next one's finish number).
    pub(super) fn finish_numbers(&self) -> u64 {
        self.finish_numbers
    }

    /// The ids let go since the last call (the first call starts the list).
    pub(super) fn take_let_go(&mut self) -> Vec<String> {
        std::mem::take(self.let_go.get_or_insert_with(Vec::new))
    }

    /// Drops a finished task's record; returns its log file if the manager removes it.
    fn let_go(&mut self, (tasks, order): (&mut Tasks, &mut Order), id: &str) -> Option<PathBuf> {
        let mut task = tasks.remove(id)?;
        order.remove(&task.start_no);
        self.finished -= 1;
        if let Some(list) = &mut self.let_go {
            list.push(id.to_string());
        }
        if let Some(gone) = &mut self.gone {
            gone.push(id.to_string());
        }
        let no = task.end_no?;
        self.logs.remove(&no)?;
        remove_log(&mut task, &mut self.log_total)
    }
}

/// Takes a finished task's log file out of its record, and its size out of `total`.
fn remove_log(task: &mut TaskRecord, total: &mut u64) -> Option<PathBuf> {
    let TaskState::Finished(f) = &mut task.state else { return None };
    *total -= f.output.log_bytes.min(*total);
    f.output.log_path.take()
}

/// Removes the log files let go (a file already gone is no matter).
pub(super) fn remove_files(paths: Vec<PathBuf>) {
    for path in paths {
        let _ = std::fs::remove_file(path);
    }
}
