//! bgagent: the "s08 Background Tasks" lesson as real software.
//!
//! Modules, each depending only on those below it:
//! - [`cli`] (feature `cli`) and the Python adapters (feature `python`): the faces;
//! - [`trace`]: the trace of a run (JSON lines) and its picture (HTML, SVG);
//! - [`agent`]: the loop (drain, inject, model, tools) and its [`agent::LoopPolicy`];
//! - [`tools`]: the six tools (and production's two more);
//! - [`background`]: the BackgroundManager (task table, notification queue, task events);
//! - [`exec`]: the executor seam through which every command runs;
//! - [`llm`]: the Messages API types, client and scripted model;
//! - [`runtime`]: the shared runtime, interrupts, cancel handles and `Seconds`;
//! - `secrets`: the API credentials' variables and the one rule that redacts their values;
//! - [`error`]: the core's one error type.

pub mod agent;
pub mod background;
#[cfg(feature = "cli")]
pub mod cli;
pub mod error;
pub mod exec;
pub mod llm;
pub mod runtime;
mod secrets;
mod text;
pub mod tools;
pub mod trace;

pub use background::{BackgroundManager, Notification, Options, Status, TaskRecord};
pub use error::{Error, Result};

#[cfg(feature = "python")]
mod python;
