//! bgagent: the "s08 Background Tasks" lesson as real software.
//!
//! - [`background`]: the BackgroundManager (tasks, notification queue, process control).
//! - [`error`]: the core's one error type.

pub mod agent;
pub mod background;
pub mod cli;
pub mod error;
pub mod llm;
mod text;
pub mod tools;

pub use background::{BackgroundManager, Notification, Options, Status, TaskRecord};
pub use error::{Error, Result};

#[cfg(feature = "python")]
mod python;
