//! The state file's schema: its version (`PRAGMA user_version`), the number that marks it as
//! bgagent's (`PRAGMA application_id`), and the steps that take an older file to this version.

/// "bgAG" in ASCII: a SQLite file with another number is some other program's.
pub(super) const APPLICATION_ID: i32 = 0x6267_4147;

/// The version this build writes; a file with a higher one is refused, never rewritten.
pub(super) const VERSION: i32 = MIGRATIONS.len() as i32;

/// `MIGRATIONS[n]` takes a file from version `n` to `n + 1` (version 0: a new, empty file).
/// Each runs in the transaction that also sets the new version, so a step is all or nothing.
pub(super) const MIGRATIONS: &[&str] = &[V1];

/// Times are Unix seconds (REAL). A task's status is one of the manager's, or `starting`
/// (handed to the executor, no process reported yet). One notification per finished task;
/// `seq` orders them as they were queued.
const V1: &str = "
CREATE TABLE owners (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    log_dir TEXT,
    started_at REAL NOT NULL,
    ended_at REAL,
    adopted_by TEXT
);
CREATE TABLE tasks (
    owner TEXT NOT NULL,
    id TEXT NOT NULL,
    command TEXT NOT NULL,
    workdir TEXT NOT NULL,
    status TEXT NOT NULL,
    queued_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    pid INTEGER,
    exit_code INTEGER,
    result TEXT,
    log_path TEXT,
    PRIMARY KEY (owner, id)
);
CREATE INDEX tasks_open ON tasks (status) WHERE status IN ('queued', 'starting', 'running');
CREATE TABLE notifications (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    task_id TEXT NOT NULL,
    status TEXT NOT NULL,
    command TEXT NOT NULL,
    result TEXT NOT NULL,
    exit_code INTEGER,
    duration REAL NOT NULL,
    log_path TEXT,
    tail TEXT NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX notifications_by_task ON notifications (owner, task_id);
CREATE INDEX notifications_pending ON notifications (owner, seq) WHERE delivered = 0;
";
