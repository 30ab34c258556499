//! The one error type of the core. Bindings map each variant to a Python exception.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A constructor argument that cannot work (Python: ValueError).
    #[error("{0}")]
    InvalidArgument(String),

    #[error("working directory {path} does not exist or is not a directory: {reason}")]
    BadWorkdir { path: PathBuf, reason: String },

    #[error("cannot create the log directory {path}: {reason}")]
    BadLogDir { path: PathBuf, reason: String },

    /// The state file cannot be opened, created or written.
    #[error("cannot use the state file {path}: {reason}")]
    State { path: PathBuf, reason: String },

    /// The state file is not bgagent's (not SQLite, another program's, or damaged); it is
    /// left as it is.
    #[error("{path} is not a bgagent state file ({reason}); it was left as it is")]
    StateNotBgagent { path: PathBuf, reason: String },

    /// The state file was written by a newer bgagent; it is left as it is.
    #[error(
        "the state file {path} has schema version {found}, newer than this bgagent knows \
         ({known}); it was left as it is"
    )]
    StateTooNew { path: PathBuf, found: i32, known: i32 },

    /// An owner that cannot be adopted (unknown, alive, or adopted already).
    #[error("cannot adopt owner {owner}: {reason}")]
    Adopt { owner: String, reason: String },

    /// The model call failed; the conversation is as it was before the call.
    #[error(transparent)]
    Model(#[from] crate::llm::ModelError),

    /// Ctrl-C; the conversation is left valid.
    #[error("interrupted")]
    Interrupted,

    /// A message in the conversation that cannot be sent.
    #[error("invalid message: {0}")]
    InvalidMessage(String),
}

impl From<crate::runtime::Interrupted> for Error {
    fn from(_: crate::runtime::Interrupted) -> Self {
        Error::Interrupted
    }
}

pub type Result<T> = std::result::Result<T, Error>;
