//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod messages_server;

/// Starts tasks through a supervisor process, as the CLI and the Python package do (the
/// `bgagent` binary is one). Without this, a test process starts its tasks itself.
pub fn use_supervisor() {
    bgagent::exec::supervisor::set_command(vec![env!("CARGO_BIN_EXE_bgagent").into()]);
}

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

/// A fresh directory under the system's temporary one (its real path, symlinks resolved),
/// removed with everything in it on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("bgagent-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(std::fs::canonicalize(dir).unwrap())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A temporary workspace with a manager running in it (short grace period); removed on drop.
pub struct Workspace {
    pub root: std::path::PathBuf,
    pub manager: bgagent::BackgroundManager,
}

impl Workspace {
    pub fn new() -> Self {
        let root = std::env::temp_dir().join(format!("bgagent-ws-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&root).unwrap();
        let root = std::fs::canonicalize(root).unwrap();
        let options = bgagent::Options {
            workdir: Some(root.clone()),
            grace: std::time::Duration::from_millis(300),
            ..bgagent::Options::default()
        };
        Workspace { manager: bgagent::BackgroundManager::new(options).unwrap(), root }
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
