//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod messages_server;

/// A token no other process on the machine has in its command line.
pub fn marker() -> String {
    format!("bgmark{}", uuid::Uuid::new_v4().simple())
}

/// Command lines of the live processes that contain `marker`.
pub fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let line = String::from_utf8_lossy(&raw).replace('\0', " ");
        if line.contains(marker) {
            found.push(line);
        }
    }
    found
}
