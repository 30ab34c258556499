//! How the command fails: an exit code and the one line that explains it.

use crate::error::Error;

/// An exit code and the one line that explains it.
pub(crate) struct Failure(pub i32, pub String);

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        match e {
            Error::Interrupted => Failure(130, "interrupted".into()),
            Error::Model(crate::llm::ModelError::Config(m)) => Failure(2, m),
            Error::Model(m) => Failure(1, m.to_string()),
            other => Failure(2, other.to_string()),
        }
    }
}

/// A flag's seconds refused: exit 2 with one line naming the flag.
impl From<crate::runtime::BadSeconds> for Failure {
    fn from(e: crate::runtime::BadSeconds) -> Self {
        Failure(2, format!("--{e}"))
    }
}
