//! The state file: a manager's task records and notification queue kept in SQLite, so that a
//! restarted process still knows its tasks and the results that finished while it was away.
//!
//! [`Store::open`] checks the file (one that is not SQLite, is damaged, is another program's
//! or is from a newer bgagent is refused and left as it is), migrates it, registers a new
//! owner and ends the tasks of every dead owner: those recorded as starting or running become
//! `killed` with a notification, never to run again. An owner is a manager, alive while it
//! holds the `flock` on its file in `<state>.owners/`. Only a manager that adopts a dead owner
//! ([`Store::adopt`]) gets its notifications and finished records; the others list them.
//!
//! Durability: WAL mode with `synchronous=NORMAL`. What was committed survives a killed
//! process (SIGKILL, a panic, the OOM killer); a power loss or a kernel crash may lose the last
//! commits (never the file's consistency), since the WAL is synced only at checkpoints.

mod open;
mod owners;
mod records;
mod schema;

pub use records::{Adopted, StoredNote, StoredTask, TaskEnd};

pub(crate) use records::now;
use records::path_text;

use crate::error::{Error, Result};
use owners::{OwnerLock, Probe};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// One manager's connection to the state file, as one owner.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    owner: String,
    lock: Option<OwnerLock>,
    /// The sequence numbers of this owner's notifications queued in memory, oldest first,
    /// one entry per notification (`None`: its write failed), so a count handed over maps to
    /// the right rows.
    pending: VecDeque<Option<i64>>,
    /// A write failed: said once on stderr, then the manager goes on in memory.
    failed: bool,
}

impl Store {
    /// Opens `path` as a new owner, and ends the tasks of the
    /// owners found dead.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = open::open(path)?;
        let lock_dir = owners::lock_dir(path);
        let owner = owners::new_id();
        let fail = |reason: String| Error::State { path: path.to_path_buf(), reason };
        // The lock before the row: a row whose lock is free is a dead owner's.
        let lock = owners::hold(&lock_dir, &owner)
            .map_err(|e| fail(format!("cannot lock {}: {e}", lock_dir.display())))?;
        conn.execute(
            "INSERT INTO owners (id, pid, log_dir, started_at) VALUES (?1, ?2, ?3, ?4)",
            params![owner, std::process::id(), None::<String>, now()],
        )
        .map_err(|e| fail(e.to_string()))?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            owner,
            lock: Some(lock),
            pending: VecDeque::new(),
            failed: false,
        };
        store.reap().map_err(|e| fail(e.to_string()))?;
        Ok(store)
    }

    /// Where this owner's task logs go, for the result of a task it leaves running.
    pub fn record_log_dir(&self, dir: &Path) {
        let _ = self.conn.execute(
            "UPDATE owners SET log_dir = ?2 WHERE id = ?1",
            params![self.owner, path_text(dir)],
        );
    }

    /// This owner's id.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Ends what every dead owner left open: its starting and running tasks become `killed`,
    /// each with a notification; the owner is recorded as ended. Each owner in one
    /// transaction, so two managers opening at once end each task once.
    fn reap(&mut self) -> rusqlite::Result<()> {
        let suspects: Vec<(String, Option<String>)> = {
            let mut q = self.conn.prepare(
                "SELECT id, log_dir FROM owners WHERE id != ?1 AND (ended_at IS NULL OR id IN \
                 (SELECT owner FROM tasks WHERE status IN ('starting', 'running')))",
            )?;
            let rows = q.query_map([&self.owner], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let lock_dir = owners::lock_dir(&self.path);
        for (owner, log_dir) in suspects {
            let Probe::Dead(lock) = owners::probe(&lock_dir, &owner) else { continue };
            let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            records::kill_open(&tx, &owner, log_dir.as_deref().map(Path::new))?;
            tx.execute(
                "UPDATE owners SET ended_at = ?2 WHERE id = ?1 AND ended_at IS NULL",
                params![owner, now()],
            )?;
            tx.commit()?;
            if let Some(lock) = lock {
                lock.remove();
            }
        }
        Ok(())
    }

    /// Takes over dead owner `owner`'s finished tasks and undelivered notifications (in
    /// sequence order): they are this owner's from now on. Its queued tasks stay its own.
    pub fn adopt(&mut self, owner: &str) -> Result<Vec<Adopted>> {
        let fail = |reason: String| Error::Adopt { owner: owner.to_string(), reason };
        let known: Option<Option<String>> = self
            .conn
            .query_row("SELECT adopted_by FROM owners WHERE id = ?1", [owner], |r| r.get(0))
            .optional()
            .map_err(|e| fail(e.to_string()))?;
        match known {
            None => return Err(fail("no such owner in this state file".into())),
            Some(Some(by)) => return Err(fail(format!("it was adopted already (by {by})"))),
            Some(None) if owner == self.owner => return Err(fail("it is this manager".into())),
            Some(None) => {}
        }
        let lock = match owners::probe(&owners::lock_dir(&self.path), owner) {
            Probe::Alive => return Err(fail("it is alive (its lock is held)".into())),
            Probe::Dead(lock) => lock,
        };
        let me = self.owner.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| fail(e.to_string()))?;
        let adopted = records::adopt(&tx, owner, &me).map_err(|e| fail(e.to_string()))?;
        tx.execute(
            "UPDATE owners SET adopted_by = ?2, ended_at = coalesce(ended_at, ?3) WHERE id = ?1",
            params![owner, me, now()],
        )
        .map_err(|e| fail(e.to_string()))?;
        tx.commit().map_err(|e| fail(e.to_string()))?;
        if let Some(lock) = lock {
            lock.remove();
        }
        self.pending.extend(adopted.iter().filter_map(|a| a.note.as_ref().map(|n| Some(n.seq))));
        Ok(adopted)
    }

    /// Every task of the state file, every owner's, in the order they were queued.
    pub fn all(&self) -> Result<Vec<StoredTask>> {
        let lock_dir = owners::lock_dir(&self.path);
        let alive = |owner: &str| {
            owner == self.owner || matches!(owners::probe(&lock_dir, owner), Probe::Alive)
        };
        records::all(&self.conn, alive)
            .map_err(|e| Error::State { path: self.path.clone(), reason: e.to_string() })
    }

    /// Reports a failed write once; the manager goes on without it.
    fn wrote<T>(&mut self, what: &str, result: rusqlite::Result<T>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                if !self.failed {
                    self.failed = true;
                    eprintln!(
                        "bgagent: cannot {what} in the state file {}: {e}",
                        self.path.display()
                    );
                }
                None
            }
        }
    }

    /// A task submitted: waiting for a slot (`queued`) or handed to the executor now.
    pub fn submitted(&mut self, id: &str, command: &str, workdir: &Path, waiting: bool) {
        let status = if waiting { "queued" } else { "starting" };
        let r = self.conn.prepare_cached(
            "INSERT OR REPLACE INTO tasks (owner, id, command, workdir, status, queued_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        );
        let r = r.and_then(|mut q| {
            q.execute(params![self.owner, id, command, path_text(workdir), status, now()])
        });
        self.wrote("record a task", r);
    }

    /// A waiting task got its slot: it is handed to the executor (so never run again).
    pub fn slotted(&mut self, id: &str) {
        let r = self
            .conn
            .prepare_cached("UPDATE tasks SET status = 'starting' WHERE owner = ?1 AND id = ?2")
            .and_then(|mut q| q.execute(params![self.owner, id]));
        self.wrote("record a start", r);
    }

    /// The executor reported the task's process.
    pub fn started(&mut self, id: &str, pid: u32) {
        let r = self
            .conn
            .prepare_cached(
                "UPDATE tasks SET status = 'running', pid = ?3, started_at = ?4 \
                 WHERE owner = ?1 AND id = ?2 AND status = 'starting'",
            )
            .and_then(|mut q| q.execute(params![self.owner, id, pid, now()]));
        self.wrote("record a start", r);
    }

    /// A task ended: its record and its notification, committed together. The caller queues
    /// the notification in memory only after this returns.
    pub fn ended(&mut self, id: &str, end: &TaskEnd<'_>) {
        let owner = self.owner.clone();
        let r = records::ended(&mut self.conn, &owner, id, end);
        let seq = self.wrote("record an end", r);
        self.pending.push_back(seq);
    }

    /// The oldest `count` notifications queued in memory were handed over.
    pub fn delivered(&mut self, count: usize) {
        let count = count.min(self.pending.len());
        let Some(last) = self.pending.drain(..count).flatten().last() else { return };
        let r = self
            .conn
            .prepare_cached(
                "UPDATE notifications SET delivered = 1 \
                 WHERE owner = ?1 AND seq <= ?2 AND delivered = 0",
            )
            .and_then(|mut q| q.execute(params![self.owner, last]));
        self.wrote("record a delivery", r);
    }

    /// Tasks let go by the retention: their rows and notifications go too.
    pub fn let_go(&mut self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        let owner = self.owner.clone();
        let r = records::remove(&mut self.conn, &owner, ids);
        self.wrote("remove tasks", r);
    }

    /// This owner ends cleanly: recorded as ended, its lock let go.
    pub fn close(mut self) {
        let r = self
            .conn
            .execute("UPDATE owners SET ended_at = ?2 WHERE id = ?1", params![self.owner, now()]);
        self.wrote("record the end of its owner", r);
        if let Some(lock) = self.lock.take() {
            lock.remove();
        }
    }

    /// In a forked child: the connection and the lock are the parent's, so neither is closed
    /// here (closing a SQLite connection could checkpoint the parent's WAL).
    pub fn abandon(self) {
        std::mem::forget(self);
    }
}
