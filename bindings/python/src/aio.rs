//! Awaitables for asyncio: Rust futures run on the core's tokio runtime (one per process, so a
//! fork worker gets its own) and resolve a future on the caller's event loop. Cancelling that
//! future drops the Rust future at once.

use pyo3::prelude::*;
use pyo3_async_runtimes::generic::{self, ContextExt, Runtime};
use pyo3_async_runtimes::TaskLocals;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Results being handed to Python right now, and whether Python is exiting.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static CLOSING: AtomicBool = AtomicBool::new(false);

/// At the interpreter's exit (atexit, before it finalizes): no more results are handed to
/// Python, and those in flight finish first (at most two seconds).
pub(crate) fn close(py: Python<'_>) {
    CLOSING.store(true, Ordering::SeqCst);
    py.detach(|| {
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while IN_FLIGHT.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < give_up {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    });
}

/// The core's runtime, as pyo3-async-runtimes sees a runtime.
pub(crate) struct CoreRuntime;

tokio::task_local! {
    static LOCALS: TaskLocals;
}

impl Runtime for CoreRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle = tokio::task::JoinHandle<()>;

    fn spawn<F>(fut: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        bgagent::runtime::runtime().spawn(fut)
    }

    /// Where a future's result is handed to Python (the library runs `f` holding the GIL).
    /// Counted, so that the interpreter's exit can wait for those in flight ([`close`]): a
    /// thread that takes the GIL while Python finalizes aborts the process.
    fn spawn_blocking<F>(f: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        let runtime = bgagent::runtime::runtime();
        if CLOSING.load(Ordering::SeqCst) {
            IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
            return runtime.spawn_blocking(|| {}); // Python is exiting: nobody awaits it
        }
        runtime.spawn_blocking(move || {
            struct Done;
            impl Drop for Done {
                fn drop(&mut self) {
                    IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
                }
            }
            let _done = Done;
            f()
        })
    }
}

impl ContextExt for CoreRuntime {
    fn scope<F, R>(locals: TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        Box::pin(LOCALS.scope(locals, fut))
    }

    fn get_task_locals() -> Option<TaskLocals> {
        LOCALS.try_with(|l| l.clone()).ok()
    }
}

/// An awaitable on the running event loop that resolves with what `fut` gives.
pub(crate) fn awaitable<'py, F, T>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    generic::future_into_py::<CoreRuntime, _, T>(py, fut)
}
