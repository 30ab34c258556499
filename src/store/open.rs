//! Opening the state file: what is checked before anything is written, and how it is set up.
//!
//! Durability: the file is in WAL mode with `synchronous=NORMAL`. A commit is in the
//! operating system's hands once it returns, so a killed process (SIGKILL, a panic, an OOM
//! kill) loses nothing it committed; a power loss or a kernel crash may lose the last few
//! commits (never the file: SQLite stays consistent), since the WAL is synced only at
//! checkpoints.

use super::schema::{APPLICATION_ID, MIGRATIONS, VERSION};
use crate::error::{Error, Result};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

/// How long a write waits for another process's transaction on the same file.
const BUSY: Duration = Duration::from_secs(10);

const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Opens (or creates) the state file at `path`, checked and migrated to [`VERSION`].
pub(super) fn open(path: &Path) -> Result<Connection> {
    let fail = |reason: String| Error::State { path: path.to_path_buf(), reason };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| fail(format!("cannot create its directory: {e}")))?;
        }
    }
    // Made here, not by SQLite, for its mode; SQLite gives the WAL files the same one.
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => check(path)?,
        Err(e) => return Err(fail(e.to_string())),
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| fail(e.to_string()))?;
    setup(conn).map_err(|e| match e {
        SetupError::Sql(e) => fail(e.to_string()),
        SetupError::Refused(e) => e,
    })
}

/// Refuses, before anything writes to it, a file that is not bgagent's state or is newer
/// than this build: its header first, then (read-only) its contents.
fn check(path: &Path) -> Result<()> {
    let foreign = |reason: &str| Error::StateNotBgagent {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let mut header = Vec::with_capacity(100);
    std::fs::File::open(path)
        .and_then(|f| f.take(100).read_to_end(&mut header))
        .map_err(|e| Error::State { path: path.to_path_buf(), reason: e.to_string() })?;
    if header.is_empty() {
        return Ok(()); // an empty file is an empty database: made new
    }
    if header.len() < 100 || &header[..16] != MAGIC {
        return Err(foreign("it is not a SQLite database"));
    }
    let word = |at: usize| i32::from_be_bytes(header[at..at + 4].try_into().expect("4 bytes"));
    ours(path, word(68), word(60))?;
    // Read-only: a file refused here is left exactly as it was.
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| foreign(&format!("it cannot be opened: {e}")))?;
    let _ = conn.busy_timeout(BUSY);
    let damaged = |e: rusqlite::Error| foreign(&format!("it is damaged: {e}"));
    // The header may be older than the WAL (its commits reach the file at checkpoints).
    let app: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0)).map_err(damaged)?;
    let version: i32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(damaged)?;
    ours(path, app, version)?;
    let tables: i64 =
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).map_err(damaged)?;
    if app == 0 && tables > 0 {
        return Err(foreign(
            "it is another program's SQLite database (tables but no bgagent mark)",
        ));
    }
    let verdict: String =
        conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0)).map_err(damaged)?;
    if verdict != "ok" {
        return Err(foreign(&format!("it is damaged: {verdict}")));
    }
    Ok(())
}

enum SetupError {
    Sql(rusqlite::Error),
    Refused(Error),
}

impl From<rusqlite::Error> for SetupError {
    fn from(e: rusqlite::Error) -> Self {
        SetupError::Sql(e)
    }
}

/// WAL, `synchronous=NORMAL`, and the schema brought to [`VERSION`] in one transaction.
fn setup(mut conn: Connection) -> std::result::Result<Connection, SetupError> {
    conn.busy_timeout(BUSY)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(SetupError::Sql(rusqlite::Error::InvalidQuery));
    }
    conn.execute_batch("PRAGMA synchronous=NORMAL")?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Read again under the write lock: another process may have migrated meanwhile.
    let version: i32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > VERSION {
        let path = tx.path().map(Into::into).unwrap_or_default();
        return Err(SetupError::Refused(Error::StateTooNew {
            path,
            found: version,
            known: VERSION,
        }));
    }
    if version == 0 {
        tx.execute_batch(&format!("PRAGMA application_id={APPLICATION_ID}"))?;
    }
    for (from, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(step)?;
        tx.execute_batch(&format!("PRAGMA user_version={}", from + 1))?;
    }
    tx.commit()?;
    Ok(conn)
}

/// A file's application id and schema version (from its header, then through SQLite, as the
/// header may lag the WAL) must be bgagent's, and a version this build knows.
fn ours(path: &Path, app: i32, version: i32) -> Result<()> {
    if app != APPLICATION_ID && app != 0 {
        return Err(Error::StateNotBgagent {
            path: path.to_path_buf(),
            reason: "it is another program's SQLite database (its application_id)".to_string(),
        });
    }
    if version > VERSION {
        return Err(Error::StateTooNew {
            path: path.to_path_buf(),
            found: version,
            known: VERSION,
        });
    }
    Ok(())
}
