//! bgagent: the "s08 Background Tasks" lesson as real software.
//!
//! Modules, each depending only on those below it:
//! - [`cli`] (feature `cli`): the command line (the Python bindings are their own crate);
//! - `mcp` (feature `mcp`): `bgagent mcp`, the background tools of [`kit`] as an MCP server
//!   over stdio;
//! - [`session`]: one session for every face: a [`session::SessionConfig`] assembled into
//!   the loop with its model, tools, manager, policy, trace and events;
//! - [`trace`]: the trace of a run (JSON lines) and its picture (HTML, SVG);
//! - [`agent`]: the loop (drain, inject, model, tools) and its [`agent::LoopPolicy`];
//! - [`tools`]: the lesson's six tools (and production's three more);
//! - [`background`]: the BackgroundManager (task table, notification queue, task events);
//! - [`store`]: the state file (SQLite) that keeps task records and notifications across
//!   restarts;
//! - [`exec`]: the executor seam through which every command runs;
//! - [`llm`]: the Messages API types, client and scripted model;
//! - [`runtime`]: the shared runtime, interrupts, cancel handles and `Seconds`;
//! - [`defaults`]: every default a face offers;
//! - `secrets`: the API credentials' variables and the one rule that redacts their values;
//! - [`error`]: the core's one error type.

pub mod agent;
pub mod background;
#[cfg(feature = "cli")]
pub mod cli;
pub mod defaults;
pub mod error;
pub mod exec;
pub mod kit;
pub mod llm;
#[cfg(feature = "mcp")]
pub mod mcp;
pub mod runtime;
mod secrets;
pub mod session;
pub mod store;
pub mod text;
pub mod tools;
pub mod trace;

pub use background::{BackgroundManager, Notification, Options, Status, TaskRecord};
pub use error::{Error, Result};

/// Call first in `main` of a program that starts tasks. Each owner of tasks has a supervisor:
/// the same executable started again, which starts the tasks and ends what is left of them
/// when the owner dies, however it dies. In that second process this call becomes the
/// supervisor and never returns; in the first it names this executable as the supervisor's.
pub fn init() {
    if let Some(owner) = std::env::var_os(exec::supervisor::ENV) {
        exec::supervisor::run(&owner.to_string_lossy());
    }
    exec::supervisor::set_command(vec!["/proc/self/exe".into()]);
}
