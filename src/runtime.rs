//! What every part of the core shares, depending on nothing else in the crate: the one tokio
//! runtime, the interrupt (Ctrl-C) with the one helper that polls for it, the cancel handle
//! that stops a running task, and `Seconds`, a duration checked once where it enters.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::runtime::{Builder, Runtime};
use tokio::sync::Notify;

/// The process-wide runtime: two workers watch every task and every HTTP call, so a thousand
/// tasks cost a thousand futures, not a thousand threads. Blocking work goes to its small
/// blocking pool, never to the two workers.
///
/// A `fork()`ed child has none of its parent's threads, so it gets a runtime of its own; the
/// parent's copy is forgotten, never dropped (dropping it would wait for threads that are
/// not there).
pub fn runtime() -> &'static Runtime {
    static CURRENT: AtomicPtr<Runtime> = AtomicPtr::new(std::ptr::null_mut());
    static OWNER: AtomicU32 = AtomicU32::new(0);
    static CREATING: Mutex<()> = Mutex::new(());
    if !forked_from(OWNER.load(Ordering::Acquire)) {
        // SAFETY: set below before OWNER, from a leaked Box: valid for the process's life.
        return unsafe { &*CURRENT.load(Ordering::Acquire) };
    }
    let _one_at_a_time = CREATING.lock().unwrap_or_else(|p| p.into_inner());
    if forked_from(OWNER.load(Ordering::Acquire)) {
        raise_open_file_limit();
        let runtime = Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(4)
            .thread_name("bgagent-worker")
            .enable_all()
            .build()
            .expect("cannot start the bgagent runtime threads");
        CURRENT.store(Box::into_raw(Box::new(runtime)), Ordering::Release);
        OWNER.store(std::process::id(), Ordering::Release);
    }
    // SAFETY: as above.
    unsafe { &*CURRENT.load(Ordering::Acquire) }
}

/// Whether this process is not `maker`, the process that made something it holds: then it
/// is a `fork()`ed child with a copy of the maker's memory (threads, links, tasks), none of
/// which is its own. The one test for that everywhere (0, no maker, counts as another).
pub fn forked_from(maker: u32) -> bool {
    maker != std::process::id()
}

/// Each running task holds a few descriptors (two pipes, a process handle), so the common soft
/// limit of 1024 would cap us near 300 tasks. Raise it to the hard limit, as Go does; tasks
/// get the user's limit back (see [`user_open_file_limit`]).
fn raise_open_file_limit() {
    let _ = user_open_file_limit();
}

/// The soft open-file limit this process had before we raised it: what tasks should get.
pub fn user_open_file_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    static USER: OnceLock<u64> = OnceLock::new();
    *USER.get_or_init(|| match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard {
                let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
            }
            soft
        }
        Err(_) => 1024,
    })
}

/// The user pressed Ctrl-C; whatever waited has stopped what it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// Polled while something waits; true means Ctrl-C was pressed. Python's signal check can
/// only run on the thread that holds the GIL, so an interrupt is asked, not pushed.
pub type Interrupt<'a> = &'a (dyn Fn() -> bool + Sync);

/// How often waits look at the interrupt.
pub const POLL: Duration = Duration::from_millis(50);

/// The one waiting loop: calls `step` with slices of at most [`POLL`] until it returns
/// `Some`, `limit` has passed (`Ok(None)`), or `interrupted` says stop.
pub fn poll_until<T>(
    interrupted: Interrupt<'_>,
    limit: Option<Duration>,
    mut step: impl FnMut(Duration) -> Option<T>,
) -> Result<Option<T>, Interrupted> {
    let deadline = limit.map(|l| Instant::now() + l);
    loop {
        let slice =
            deadline.map_or(POLL, |d| d.saturating_duration_since(Instant::now()).min(POLL));
        if let Some(done) = step(slice) {
            return Ok(Some(done));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        if interrupted() {
            return Err(Interrupted);
        }
    }
}

/// Asks a running task to stop. Clones share one flag; once cancelled it stays cancelled, so a
/// request made before anyone waits is not lost.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<CancelState>);

#[derive(Debug, Default)]
struct CancelState {
    set: AtomicBool,
    notify: Notify,
}

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.set.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.set.load(Ordering::SeqCst)
    }

    /// Resolves once [`Cancel::cancel`] has been called (at once if it already was).
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// A number of seconds from a user, a flag or a model, checked once where it enters: finite,
/// not negative (or, where zero makes no sense, positive), and at most [`Seconds::MAX`], so
/// that adding it to an `Instant` can never overflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seconds(Duration);

/// Why a number of seconds was refused; the text names the parameter and what it needs.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{name} must be {want} number of seconds (at most {max:e}), got {value}", max = Seconds::MAX)]
pub struct BadSeconds {
    pub name: String,
    pub value: f64,
    want: &'static str,
}

impl Seconds {
    /// About 31 years: far beyond any wait, far below what an `Instant` can hold.
    pub const MAX: f64 = 1e9;

    /// Zero is refused (a timeout of zero would stop every task at once).
    pub fn positive(name: &str, value: f64) -> Result<Self, BadSeconds> {
        Self::check(name, value, value > 0.0, "a positive")
    }

    /// Zero is a valid value (a grace of 0, a wait of 0 that only polls).
    pub fn non_negative(name: &str, value: f64) -> Result<Self, BadSeconds> {
        Self::check(name, value, value >= 0.0, "a non-negative")
    }

    /// A wait's limit: `None` or infinity mean no limit; anything else as [`Self::non_negative`].
    pub fn limit(name: &str, value: Option<f64>) -> Result<Option<Self>, BadSeconds> {
        match value {
            None => Ok(None),
            Some(v) if v == f64::INFINITY => Ok(None),
            Some(v) => Self::non_negative(name, v).map(Some),
        }
    }

    fn check(
        name: &str,
        value: f64,
        sign_ok: bool,
        want: &'static str,
    ) -> Result<Self, BadSeconds> {
        if value.is_finite() && sign_ok && value <= Self::MAX {
            Ok(Seconds(Duration::from_secs_f64(value)))
        } else {
            Err(BadSeconds { name: name.to_string(), value, want })
        }
    }

    pub fn duration(self) -> Duration {
        self.0
    }
}

impl From<Seconds> for Duration {
    fn from(s: Seconds) -> Duration {
        s.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_checked_once() {
        assert_eq!(Seconds::positive("t", 1.5).unwrap().duration(), Duration::from_millis(1500));
        assert!(Seconds::positive("t", 0.0).is_err());
        assert_eq!(Seconds::non_negative("grace", 0.0).unwrap().duration(), Duration::ZERO);
        for bad in [f64::NAN, f64::INFINITY, -1.0, 1e20, 1e300] {
            let e = Seconds::non_negative("timeout", bad).unwrap_err();
            assert!(e.to_string().starts_with("timeout must be a non-negative number"), "{e}");
        }
        assert_eq!(Seconds::limit("timeout", Some(f64::INFINITY)), Ok(None));
        assert_eq!(Seconds::limit("timeout", None), Ok(None));
        assert!(Seconds::limit("timeout", Some(f64::NAN)).is_err());
        let e = Seconds::positive("max_wait", -2.0).unwrap_err().to_string();
        assert_eq!(e, "max_wait must be a positive number of seconds (at most 1e9), got -2");
    }

    #[test]
    fn poll_until_stops_on_result_limit_or_interrupt() {
        let mut calls = 0;
        let got = poll_until(&|| false, None, |_| {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(got, Ok(Some(3)));
        assert_eq!(poll_until(&|| false, Some(Duration::ZERO), |_| None::<()>), Ok(None));
        assert_eq!(poll_until(&|| true, None, |_| None::<()>), Err(Interrupted));
    }

    #[test]
    fn a_cancel_made_before_waiting_is_kept() {
        let cancel = Cancel::new();
        cancel.clone().cancel();
        runtime().block_on(cancel.cancelled());
        assert!(cancel.is_cancelled());
    }
}
