//! read_file, write_file, edit_file: the lesson's texts, inside the workspace only.

use super::path::safe_path;
use crate::text::{prefix, py_splitlines};
use std::path::Path;

/// Text files only: bytes that are not UTF-8 are refused rather than silently altered, so an
/// edit can never corrupt them.
fn read_text(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "{} is not UTF-8 text (invalid byte at offset {}); inspect it with bash instead",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

pub fn read(root: &Path, path: &str, limit: Option<i64>) -> String {
    let text = match safe_path(root, path).and_then(|p| read_text(&p)) {
        Ok(text) => text,
        Err(e) => return format!("Error: {e}"),
    };
    let mut lines: Vec<String> = py_splitlines(&text).into_iter().map(str::to_string).collect();
    // `if limit and limit < len(lines)`: zero or no limit reads everything.
    if let Some(limit) = limit.filter(|&l| l > 0 && (l as usize) < lines.len()) {
        let more = lines.len() - limit as usize;
        lines.truncate(limit as usize);
        lines.push(format!("... ({more} more)"));
    }
    prefix(&lines.join("\n"), 50_000).to_string()
}

pub fn write(root: &Path, path: &str, content: &str) -> String {
    let written = safe_path(root, path).and_then(|p| {
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&p, content).map_err(|e| format!("{}: {e}", p.display()))
    });
    match written {
        // The lesson counts characters (Python's len) and calls them bytes.
        Ok(()) => format!("Wrote {} bytes", content.chars().count()),
        Err(e) => format!("Error: {e}"),
    }
}

pub fn edit(root: &Path, path: &str, old_text: &str, new_text: &str) -> String {
    let file = match safe_path(root, path) {
        Ok(p) => p,
        Err(e) => return format!("Error: {e}"),
    };
    let text = match read_text(&file) {
        Ok(t) => t,
        Err(e) => return format!("Error: {e}"),
    };
    if !text.contains(old_text) {
        return format!("Error: Text not found in {path}");
    }
    match std::fs::write(&file, text.replacen(old_text, new_text, 1)) {
        Ok(()) => format!("Edited {path}"),
        Err(e) => format!("Error: {}: {e}", file.display()),
    }
}
