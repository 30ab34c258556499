//! Owners: each manager on a state file is one, under a random id, alive while it holds the
//! lock on its own file in `<state>.owners/` (`flock`, taken for the manager's life). An
//! owner whose lock can be taken is dead, whatever its pid says (pids are reused). The lock
//! file is opened close-on-exec, so the supervisor and the tasks do not hold it.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The directory of the owners' lock files beside the state file.
pub(super) fn lock_dir(state: &Path) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push(".owners");
    PathBuf::from(name)
}

/// A new owner's id: 16 random hex digits.
pub(super) fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_string()
}

/// An owner's lock, held until dropped (closing the file lets it go).
pub(super) struct OwnerLock {
    _file: File,
    path: PathBuf,
}

impl OwnerLock {
    /// The lock file is removed (the owner is dead and recorded as such): dropping the lock
    /// after that lets nobody see a live owner.
    pub(super) fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Takes the new owner `id`'s lock (its file made 0600, the directory 0700).
pub(super) fn hold(dir: &Path, id: &str) -> std::io::Result<OwnerLock> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let path = dir.join(format!("{id}.lock"));
    let file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
    if !try_lock(&file)? {
        return Err(std::io::Error::other("a new owner's lock is held by another"));
    }
    Ok(OwnerLock { _file: file, path })
}

/// `None` if owner `id` is alive; else its lock, taken (held while the caller records its
/// death), or no lock at all if its file is gone.
pub(super) enum Probe {
    Alive,
    Dead(Option<OwnerLock>),
}

pub(super) fn probe(dir: &Path, id: &str) -> Probe {
    let path = dir.join(format!("{id}.lock"));
    let Ok(file) = std::fs::OpenOptions::new().write(true).open(&path) else {
        // An owner makes its lock file before it writes its row: no file, no live owner.
        return Probe::Dead(None);
    };
    match try_lock(&file) {
        Ok(false) => Probe::Alive,
        _ => Probe::Dead(Some(OwnerLock { _file: file, path })),
    }
}

/// `flock(LOCK_EX | LOCK_NB)`: `Ok(false)` if another open file holds it.
fn try_lock(file: &File) -> std::io::Result<bool> {
    // SAFETY: flock on a descriptor this File owns for the whole call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}
