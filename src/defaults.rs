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
/// Bytes of output kept in each task's log file: the newest, once a task has printed more.
pub const LOG_LIMIT: u64 = 64 * 1024 * 1024;
/// Production keeps at most this many finished tasks: past it, the oldest whose notification
/// was taken are let go (the lesson keeps every one).
pub const KEEP_FINISHED: usize = 1000;
/// Production keeps at most this many bytes of finished tasks' log files in its own log
/// directory, removing the oldest first (the lesson keeps every one).
pub const LOG_BUDGET: u64 = 1024 * 1024 * 1024;
/// Production's longest wait, at the end of a turn and in wait_background, for running tasks.
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// The `max_tokens` of each model call of the loop.
pub const MAX_TOKENS: u32 = 8000;
/// The built-in client: the timeout of one attempt, and the extra attempts after a
/// retryable failure.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(600);
pub const CLIENT_MAX_RETRIES: u32 = 2;

/// Production's cap on background tasks running at once: twice the CPUs this process may use
/// (its affinity mask, so a container's or `taskset`'s limit counts), and at least 4, since
/// most tasks wait on the network or the disk more than they compute.
pub fn max_running() -> usize {
    (2 * usable_cpus()).max(4)
}

/// The CPUs this process may run on (`sched_getaffinity`), or 1 if that cannot be read.
fn usable_cpus() -> usize {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity fills it for this
    // process (pid 0) and CPU_COUNT only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            return (libc::CPU_COUNT(&set) as usize).max(1);
        }
    }
    1
}
