//! The real stdin and stdout, wired to rmcp through the line filter: rmcp reads what the
//! filter passes, and one writer puts rmcp's lines and the filter's replies on stdout, whole
//! lines each, so they never interleave.

use super::lines;
use super::stop::Stop;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::mpsc;

/// What rmcp reads and where it writes. When stdin ends, `stop` is asked first (a blocking
/// wait returns at once), then rmcp sees its input end.
pub fn filtered(stop: Arc<Stop>) -> (DuplexStream, DuplexStream) {
    let (rmcp_reads, to_rmcp) = tokio::io::duplex(64 * 1024);
    let (rmcp_writes, from_rmcp) = tokio::io::duplex(64 * 1024);
    let (replies, mut out) = mpsc::channel::<Vec<u8>>(64);

    tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(line) = out.recv().await {
            if stdout.write_all(&line).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });
    let from_rmcp_to_stdout = replies.clone();
    tokio::spawn(async move {
        let mut from_rmcp = BufReader::new(from_rmcp);
        loop {
            let mut line = Vec::new();
            match from_rmcp.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if from_rmcp_to_stdout.send(line).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    tokio::spawn(async move {
        let mut to_rmcp = to_rmcp;
        let stdin = BufReader::with_capacity(64 * 1024, tokio::io::stdin());
        lines::filter(stdin, &mut to_rmcp, replies).await;
        stop.ask();
        drop(to_rmcp);
    });
    (rmcp_reads, rmcp_writes)
}
