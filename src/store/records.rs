//! The rows: tasks and notifications written and read.

use rusqlite::{params, Connection, Row, Transaction};
use std::path::{Path, PathBuf};

/// One task as the state file holds it (its serde form is Python's `stored()` entry).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StoredTask {
    /// The id of the manager (owner) that ran or queued it.
    pub owner: String,
    /// That owner holds its lock now.
    pub owner_alive: bool,
    pub id: String,
    pub command: String,
    pub workdir: PathBuf,
    /// `queued`, `starting` (handed to the executor, no process yet), `running`, or how it
    /// ended (`completed`, `timeout`, `error`, `killed`).
    pub status: String,
    /// Unix seconds.
    pub queued_at: f64,
    pub started_at: Option<f64>,
    pub ended_at: Option<f64>,
    pub pid: Option<u32>,
    pub exit_code: Option<i32>,
    pub result: Option<String>,
    pub log_path: Option<PathBuf>,
}

/// A notification as the state file holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredNote {
    pub seq: i64,
    pub task_id: String,
    pub status: String,
    pub command: String,
    pub result: String,
    pub exit_code: Option<i32>,
    /// Seconds.
    pub duration: f64,
    pub log_path: Option<PathBuf>,
    pub tail: String,
}

/// How a task ended, with the notification it queues.
pub struct TaskEnd<'a> {
    pub status: &'a str,
    pub exit_code: Option<i32>,
    pub result: &'a str,
    pub log_path: Option<&'a Path>,
    /// The notification's preview of the result, command and details.
    pub preview: &'a str,
    pub command: &'a str,
    pub duration: f64,
    pub tail: &'a str,
}

/// A finished task taken over from a dead owner, with its notification if it was not
/// delivered.
pub struct Adopted {
    pub task: StoredTask,
    pub note: Option<StoredNote>,
}

/// Now, in Unix seconds.
pub(crate) fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A path as stored: its text (lossy for a path that is not UTF-8).
pub(super) fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The statuses of a task not yet ended.
const OPEN: &str = "('queued', 'starting', 'running')";

/// Records an end and its notification in one transaction; returns the notification's
/// sequence number.
pub(super) fn ended(
    conn: &mut Connection,
    owner: &str,
    id: &str,
    end: &TaskEnd<'_>,
) -> rusqlite::Result<i64> {
    let tx = conn.transaction()?;
    let log = end.log_path.map(path_text);
    tx.prepare_cached(
        "UPDATE tasks SET status = ?3, exit_code = ?4, result = ?5, log_path = ?6, ended_at = ?7 \
         WHERE owner = ?1 AND id = ?2",
    )?
    .execute(params![owner, id, end.status, end.exit_code, end.result, log, now()])?;
    tx.prepare_cached(
        "INSERT INTO notifications \
         (owner, task_id, status, command, result, exit_code, duration, log_path, tail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        owner,
        id,
        end.status,
        end.command,
        end.preview,
        end.exit_code,
        end.duration,
        log,
        end.tail
    ])?;
    let seq = tx.last_insert_rowid();
    tx.commit()?;
    Ok(seq)
}

/// A dead owner's tasks that were handed to the executor end `killed` (the supervisor killed
/// what ran), each with a notification. Its queued tasks never started: left as they are.
pub(super) fn kill_open(
    tx: &Transaction<'_>,
    owner: &str,
    log_dir: Option<&Path>,
) -> rusqlite::Result<()> {
    let open: Vec<(String, String, Option<f64>)> = {
        let mut q = tx.prepare(
            "SELECT id, command, started_at FROM tasks \
             WHERE owner = ?1 AND status IN ('starting', 'running')",
        )?;
        let rows = q.query_map([owner], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let at = now();
    for (id, command, started) in open {
        let log = log_dir.map(|d| d.join(format!("{id}.log"))).filter(|p| p.exists());
        let mut result = format!(
            "Error: Killed: the process that ran this task (owner {owner}) ended before it did"
        );
        if let Some(log) = &log {
            result.push_str(&format!("; its output so far is in {}", log.display()));
        }
        let log = log.as_deref().map(path_text);
        tx.execute(
            "UPDATE tasks SET status = 'killed', result = ?3, log_path = ?4, ended_at = ?5 \
             WHERE owner = ?1 AND id = ?2",
            params![owner, id, result, log, at],
        )?;
        tx.execute(
            "INSERT INTO notifications \
             (owner, task_id, status, command, result, exit_code, duration, log_path, tail) \
             VALUES (?1, ?2, 'killed', ?3, ?4, NULL, ?5, ?6, '')",
            params![
                owner,
                id,
                crate::text::prefix(&command, 80),
                result,
                started.map_or(0.0, |s| (at - s).max(0.0)),
                log
            ],
        )?;
    }
    Ok(())
}

/// Re-labels dead owner `from`'s finished tasks and their notifications as `to`'s; returns
/// them, each with its notification if undelivered, in the order of those (then the rest).
pub(super) fn adopt(tx: &Transaction<'_>, from: &str, to: &str) -> rusqlite::Result<Vec<Adopted>> {
    let mut adopted: Vec<Adopted> = {
        let mut q = tx.prepare(&format!(
            "SELECT {TASK}, n.seq, n.task_id, n.status, n.command, n.result, n.exit_code, \
             n.duration, n.log_path, n.tail \
             FROM tasks t LEFT JOIN notifications n \
             ON n.owner = t.owner AND n.task_id = t.id AND n.delivered = 0 \
             WHERE t.owner = ?1 AND t.status NOT IN {OPEN} \
             ORDER BY n.seq IS NULL, n.seq, t.queued_at"
        ))?;
        let rows = q.query_map([from], |r| {
            let task = task(r, false)?;
            let seq: Option<i64> = r.get(12)?;
            let note = match seq {
                None => None,
                Some(seq) => Some(StoredNote {
                    seq,
                    task_id: r.get(13)?,
                    status: r.get(14)?,
                    command: r.get(15)?,
                    result: r.get(16)?,
                    exit_code: r.get(17)?,
                    duration: r.get(18)?,
                    log_path: r.get::<_, Option<String>>(19)?.map(PathBuf::from),
                    tail: r.get(20)?,
                }),
            };
            Ok(Adopted { task, note })
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    tx.execute(
        &format!("UPDATE tasks SET owner = ?2 WHERE owner = ?1 AND status NOT IN {OPEN}"),
        params![from, to],
    )?;
    tx.execute(
        "UPDATE notifications SET owner = ?2 WHERE owner = ?1 AND task_id IN \
         (SELECT id FROM tasks WHERE owner = ?2)",
        params![from, to],
    )?;
    for a in &mut adopted {
        a.task.owner = to.to_string();
        a.task.owner_alive = true;
    }
    Ok(adopted)
}

/// Removes tasks of `owner` and their notifications.
pub(super) fn remove(conn: &mut Connection, owner: &str, ids: &[String]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for id in ids {
        tx.prepare_cached("DELETE FROM notifications WHERE owner = ?1 AND task_id = ?2")?
            .execute(params![owner, id])?;
        tx.prepare_cached("DELETE FROM tasks WHERE owner = ?1 AND id = ?2")?
            .execute(params![owner, id])?;
    }
    tx.commit()
}

/// The task columns, in the order [`task`] reads them.
const TASK: &str = "t.owner, t.id, t.command, t.workdir, t.status, t.queued_at, t.started_at, \
                    t.ended_at, t.pid, t.exit_code, t.result, t.log_path";

fn task(r: &Row<'_>, owner_alive: bool) -> rusqlite::Result<StoredTask> {
    Ok(StoredTask {
        owner: r.get(0)?,
        owner_alive,
        id: r.get(1)?,
        command: r.get(2)?,
        workdir: PathBuf::from(r.get::<_, String>(3)?),
        status: r.get(4)?,
        queued_at: r.get(5)?,
        started_at: r.get(6)?,
        ended_at: r.get(7)?,
        pid: r.get(8)?,
        exit_code: r.get(9)?,
        result: r.get(10)?,
        log_path: r.get::<_, Option<String>>(11)?.map(PathBuf::from),
    })
}

/// Every task, in the order they were queued, with whether its owner is alive.
pub(super) fn all(
    conn: &Connection,
    alive: impl Fn(&str) -> bool,
) -> rusqlite::Result<Vec<StoredTask>> {
    let mut q =
        conn.prepare(&format!("SELECT {TASK} FROM tasks t ORDER BY t.queued_at, t.rowid"))?;
    let mut tasks: Vec<StoredTask> =
        q.query_map([], |r| task(r, false))?.collect::<rusqlite::Result<_>>()?;
    let mut known = std::collections::HashMap::new();
    for t in &mut tasks {
        t.owner_alive = *known.entry(t.owner.clone()).or_insert_with(|| alive(&t.owner));
    }
    Ok(tasks)
}
