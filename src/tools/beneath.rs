//! Opening a file beneath the workspace without a race: `safe_path` has already resolved every
//! symlink, so the resolved path is walked from the workspace one component at a time, each
//! opened relative to the last with `O_NOFOLLOW`. A directory swapped for a symlink after the
//! check then makes the open fail instead of leading outside.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

pub enum Access {
    Read,
    /// Create or truncate; with `make_dirs`, missing directories on the way are created.
    Write {
        make_dirs: bool,
    },
}

/// Why an open failed, and where: the directory on the way that could not be made (when
/// making directories), else `resolved` itself.
pub struct Failed {
    pub error: io::Error,
    pub at: PathBuf,
}

/// Opens `resolved` (a path `safe_path` returned for `root`) for `access`. Only regular files
/// open: a FIFO, socket or device is refused without blocking on it.
pub fn open(root: &Path, resolved: &Path, access: Access) -> Result<File, Failed> {
    let mut at = resolved.to_path_buf();
    open_in(root, resolved, access, &mut at).map_err(|error| Failed { error, at })
}

fn open_in(root: &Path, resolved: &Path, access: Access, at: &mut PathBuf) -> io::Result<File> {
    let rel = resolved.strip_prefix(root).map_err(|_| io::Error::other("outside the workspace"))?;
    let names: Vec<&std::ffi::OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name),
            _ => None,
        })
        .collect();
    let Some((last, dirs)) = names.split_last() else {
        return Err(io::Error::from_raw_os_error(libc::EISDIR));
    };
    let make_dirs = matches!(access, Access::Write { make_dirs: true });
    let mut dir = open_at(None, root.as_os_str(), libc::O_PATH | libc::O_DIRECTORY, 0)?;
    let mut walked = root.to_path_buf();
    for name in dirs {
        walked.push(name);
        let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW;
        dir = match open_at(Some(&dir), name, flags, 0) {
            Err(e) if make_dirs && e.kind() == io::ErrorKind::NotFound => {
                mkdir_at(&dir, name)?;
                open_at(Some(&dir), name, flags, 0)?
            }
            // Something that is not a directory stands where one must be made.
            Err(e) if make_dirs && e.raw_os_error() == Some(libc::ENOTDIR) => {
                at.clone_from(&walked);
                return Err(io::Error::from_raw_os_error(libc::EEXIST));
            }
            other => other?,
        };
    }
    // O_NONBLOCK: opening a FIFO must not wait for its other end.
    let flags = match access {
        Access::Read => libc::O_RDONLY,
        Access::Write { .. } => libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
    } | libc::O_NOFOLLOW
        | libc::O_NONBLOCK;
    let file = File::from(open_at(Some(&dir), last, flags, 0o666)?);
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(io::Error::from_raw_os_error(libc::EISDIR));
    }
    if !meta.is_file() {
        return Err(io::Error::other("is not a regular file"));
    }
    // Regular files ignore O_NONBLOCK, but clear it anyway for whoever reads the file later.
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let fd = file.as_raw_fd();
        libc::fcntl(fd, libc::F_SETFL, libc::fcntl(fd, libc::F_GETFL) & !libc::O_NONBLOCK);
    }
    Ok(file)
}

fn c_name(name: &std::ffi::OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn open_at(
    dir: Option<&OwnedFd>,
    name: &std::ffi::OsStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    let name = c_name(name)?;
    let dirfd = dir.map_or(libc::AT_FDCWD, AsRawFd::as_raw_fd);
    // SAFETY: openat with a valid C string and a directory descriptor we hold.
    let fd = unsafe { libc::openat(dirfd, name.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just opened, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn mkdir_at(dir: &OwnedFd, name: &std::ffi::OsStr) -> io::Result<()> {
    let name = c_name(name)?;
    // SAFETY: mkdirat with a valid C string and a directory descriptor we hold.
    if unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o777) } < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::AlreadyExists {
            return Err(e);
        }
    }
    Ok(())
}
