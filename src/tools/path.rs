//! `safe_path`: keep every file tool inside the workspace.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// `(root / p).resolve()` must stay under `root`, or the tool refuses with the lesson's text.
/// A relative root refuses every path, as the lesson's check does (an absolute resolved path
/// is never relative to a relative root), instead of being taken from `/`.
pub fn safe_path(root: &Path, p: &str) -> Result<PathBuf, String> {
    if !root.is_absolute() {
        return Err(format!("Path escapes workspace: {p}"));
    }
    // What Python says when a path holds a NUL (the lesson's resolve() raises it).
    if p.contains('\0') {
        return Err("embedded null byte".to_string());
    }
    match resolve(&root.join(p)) {
        Some(path) if path.starts_with(root) => Ok(path),
        // A path with too many links cannot be checked, so it is refused too.
        _ => Err(format!("Path escapes workspace: {p}")),
    }
}

/// Like Python's `Path.resolve()`: follows symlinks as far as the path exists, then continues
/// lexically, so a path that does not exist yet still resolves (and cannot hide a `..`).
/// `None` when it takes more than 40 links (the kernel's own limit, ELOOP beyond it).
pub fn resolve(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::from("/");
    let mut pending: VecDeque<OsString> = parts(path);
    let mut links_followed = 0;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            out.pop();
            continue;
        }
        let next = out.join(&part);
        let link = std::fs::symlink_metadata(&next).is_ok_and(|m| m.file_type().is_symlink());
        match std::fs::read_link(&next) {
            Ok(target) if link => {
                links_followed += 1;
                if links_followed > 40 {
                    return None;
                }
                if target.is_absolute() {
                    out = PathBuf::from("/");
                }
                for (i, p) in parts(&target).into_iter().enumerate() {
                    pending.insert(i, p);
                }
            }
            _ => out = next,
        }
    }
    Some(out)
}

fn parts(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_inside_resolve_and_escapes_are_refused() {
        let root = std::env::temp_dir().join(format!("bgagent-path-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(root.join("a")).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("out")).unwrap();
        std::os::unix::fs::symlink("a", root.join("in")).unwrap();

        assert_eq!(safe_path(&root, "a/new/file.txt").unwrap(), root.join("a/new/file.txt"));
        assert_eq!(safe_path(&root, "in/x").unwrap(), root.join("a/x"));
        assert_eq!(safe_path(&root, "new/../a/./y").unwrap(), root.join("a/y"));
        std::os::unix::fs::symlink(".", root.join("d")).unwrap();
        let deep = format!("{}out/hostname", "d/".repeat(40));
        for bad in ["../x", "/etc/passwd", "out/passwd", "nope/../../x", "out/../../..", &deep] {
            assert_eq!(safe_path(&root, bad), Err(format!("Path escapes workspace: {bad}")));
        }
        std::fs::remove_dir_all(root).unwrap();
    }
}
