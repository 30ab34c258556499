//! `bgagent mcp`: the background tools of [`crate::kit`] as an MCP server over stdio, for a
//! host (an editor, another agent) that runs its own loop. One production manager serves the
//! session: secrets hidden from tasks, a cap on tasks running at once, retention, logs. When
//! stdin closes or SIGTERM, SIGINT or SIGHUP comes, every task is killed and the server
//! returns; a blocking `wait_background` is interrupted rather than waited for.

mod lines;
mod server;
mod stdio;
mod stop;

use crate::background::BackgroundManager;
use crate::session::SessionConfig;
use rmcp::ServiceExt;
use server::Server;
use std::path::PathBuf;
use std::sync::Arc;
use stop::Stop;

/// Serves until stdin closes (0) or a signal comes (128 + its number). `Err` is a message
/// for the user (exit 2). The caller has called [`crate::init`], so the supervisor ends the
/// tasks if this process dies some other way.
pub fn serve(workspace: PathBuf, max_running: usize) -> Result<i32, String> {
    let config = SessionConfig::new(workspace).max_running(Some(max_running));
    let manager = BackgroundManager::new(config.manager_options()).map_err(|e| e.to_string())?;
    let manager = Arc::new(manager);
    let stop = Arc::new(Stop::default());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the server's runtime: {e}"))?;
    let ended = runtime.block_on(serve_until_the_end(manager.clone(), stop.clone()));
    stop.ask();
    manager.shutdown();
    // The reader of stdin may still block in read(2): no waiting for it.
    runtime.shutdown_background();
    ended
}

async fn serve_until_the_end(
    manager: Arc<BackgroundManager>,
    stop: Arc<Stop>,
) -> Result<i32, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut signals = Vec::new();
    for kind in [SignalKind::terminate(), SignalKind::interrupt(), SignalKind::hangup()] {
        let number = kind.as_raw_value();
        let mut stream =
            signal(kind).map_err(|e| format!("cannot watch for signal {number}: {e}"))?;
        signals.push(Box::pin(async move {
            stream.recv().await;
            number
        }));
    }
    let signalled = futures_util::future::select_all(signals);
    tokio::pin!(signalled);

    let (read, write) = stdio::filtered(stop.clone());
    // The filter holds lines to its own limit; rmcp's would never be reached.
    let transport = rmcp::transport::async_rw::AsyncRwTransport::new_server(read, write);
    let running = tokio::select! {
        started = Server::new(manager, stop.clone()).serve(transport) => match started {
            Ok(running) => running,
            Err(_) if stop.asked() => return Ok(0), // the client left before initialize
            Err(e) => return Err(format!("the MCP handshake failed: {e}")),
        },
        (number, _, _) = &mut signalled => return Ok(128 + number),
    };
    tokio::select! {
        _ = running.waiting() => Ok(0),
        (number, _, _) = &mut signalled => Ok(128 + number),
    }
}
