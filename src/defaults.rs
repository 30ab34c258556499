//! Every default a face offers, in one place: the command line's flags, the Python
//! signatures (and `bgagent._core.DEFAULTS`) and the core's own `Default`s read them here, so
//! no face can drift from another.

use std::time::Duration;

/// A background task is stopped after this long.
pub const TASK_TIMEOUT: Duration = Duration::from_secs(300);
/// Characters of a task's output kept as its result.
pub const OUTPUT_LIMIT: usize = 50_000;
/// Characters of the result a notification carries.
pub const PREVIEW_LIMIT: usize = 500;
/// Between SIGTERM and SIGKILL when a task is stopped.
pub const GRACE: Duration = Duration::from_secs(2);
/// Bytes of output kept in each task's log file.
pub const LOG_LIMIT: u64 = 64 * 1024 * 1024;
/// Production's longest wait, at the end of a turn and in wait_background, for running tasks.
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// The `max_tokens` of each model call of the loop.
pub const MAX_TOKENS: u32 = 8000;
/// The built-in client: the timeout of one attempt, and the extra attempts after a
/// retryable failure.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(600);
pub const CLIENT_MAX_RETRIES: u32 = 2;
