//! The line filter between the real stdin and rmcp. rmcp answers a malformed message with an
//! error that has no `id` and reads lines of up to 16 MiB; here every line is judged first:
//! one that is not JSON is dropped without a reply (there is no request to answer), JSON
//! that is no JSON-RPC message gets Invalid Request (-32600) with the line's `id` when it has
//! one, a line longer than [`MAX_LINE`] is skipped without being held in memory, and every
//! other line reaches rmcp unchanged.

use serde_json::{json, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// The longest line read, without its newline (a tool call's arguments are small).
pub const MAX_LINE: usize = 4 * 1024 * 1024;

/// What becomes of one line.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// To rmcp, unchanged.
    Pass,
    /// Nowhere, without a reply.
    Drop,
    /// Not to rmcp; this JSON-RPC error goes back to the client.
    Reply(Value),
}

/// Judges one complete line (with or without its newline).
pub fn judge(line: &[u8]) -> Verdict {
    let Ok(value) = serde_json::from_slice::<Value>(line) else {
        return Verdict::Drop;
    };
    if is_message(&value) {
        return Verdict::Pass;
    }
    // An id the reply can carry: a string, a number or null.
    let id = match value.get("id") {
        Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
        _ => Value::Null,
    };
    Verdict::Reply(json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": -32600, "message": "Invalid Request"},
    }))
}

/// A JSON-RPC 2.0 request, notification or response (batches are no longer part of MCP).
fn is_message(value: &Value) -> bool {
    let Some(object) = value.as_object() else {
        return false;
    };
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return false;
    }
    let id = object.get("id");
    match object.get("method") {
        Some(method) => method.is_string() && id.is_none_or(|id| id.is_string() || id.is_number()),
        None => id.is_some() && (object.contains_key("result") != object.contains_key("error")),
    }
}

/// One line read by [`read_line`].
#[derive(Debug, PartialEq)]
pub enum Line {
    /// A line (the last one may lack its newline), in the buffer.
    Full,
    /// A line longer than the limit, skipped up to its newline; the buffer is empty.
    TooLong,
    /// The input ended.
    End,
}

/// Reads the next line into `buf`, holding at most `max` bytes of it (plus the newline).
pub async fn read_line<R: AsyncBufRead + Unpin>(
    input: &mut R,
    max: usize,
    buf: &mut Vec<u8>,
) -> std::io::Result<Line> {
    buf.clear();
    let mut too_long = false;
    loop {
        let chunk = input.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(match (too_long, buf.is_empty()) {
                (true, _) => Line::TooLong,
                (false, true) => Line::End,
                (false, false) => Line::Full,
            });
        }
        let newline = chunk.iter().position(|&b| b == b'\n');
        let used = newline.map_or(chunk.len(), |i| i + 1);
        if !too_long {
            let content = buf.len() + used - usize::from(newline.is_some());
            if content > max {
                too_long = true;
                *buf = Vec::new();
            } else {
                buf.extend_from_slice(&chunk[..used]);
            }
        }
        input.consume(used);
        if newline.is_some() {
            return Ok(if too_long { Line::TooLong } else { Line::Full });
        }
    }
}

/// Copies the lines of `input` that pass to `to_rmcp` and sends the replies (whole lines)
/// to `replies`, until the input ends or either side is gone.
pub async fn filter<R, W>(mut input: R, mut to_rmcp: W, replies: mpsc::Sender<Vec<u8>>)
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = Vec::new();
    while let Ok(Line::Full | Line::TooLong) = read_line(&mut input, MAX_LINE, &mut buf).await {
        if buf.is_empty() {
            continue; // too long: skipped
        }
        match judge(&buf) {
            Verdict::Pass => {
                if !buf.ends_with(b"\n") {
                    buf.push(b'\n');
                }
                if to_rmcp.write_all(&buf).await.is_err() || to_rmcp.flush().await.is_err() {
                    return;
                }
            }
            Verdict::Drop => {}
            Verdict::Reply(error) => {
                let mut line = error.to_string().into_bytes();
                line.push(b'\n');
                if replies.send(line).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(id: Value) -> Verdict {
        Verdict::Reply(json!({
            "jsonrpc": "2.0", "id": id, "error": {"code": -32600, "message": "Invalid Request"},
        }))
    }

    #[test]
    fn messages_pass_unchanged() {
        for line in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x"}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":3,"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-1,"message":"m"}}"#,
            "{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":4}\r\n",
        ] {
            assert_eq!(judge(line.as_bytes()), Verdict::Pass, "{line}");
        }
    }

    #[test]
    fn what_is_not_json_is_dropped() {
        for line in ["", "\n", "not json", "{\"jsonrpc\":", "{}{}"] {
            assert_eq!(judge(line.as_bytes()), Verdict::Drop, "{line}");
        }
        assert_eq!(judge(b"\xff\xfe{}"), Verdict::Drop);
    }

    #[test]
    fn json_that_is_no_message_is_an_invalid_request_with_its_id() {
        assert_eq!(judge(br#"{"foo":1}"#), invalid(Value::Null));
        assert_eq!(judge(b"[]"), invalid(Value::Null));
        assert_eq!(judge(b"42"), invalid(Value::Null));
        assert_eq!(judge(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#), invalid(Value::Null));
        assert_eq!(judge(br#"{"jsonrpc":"1.0","id":7,"method":"ping"}"#), invalid(json!(7)));
        assert_eq!(judge(br#"{"id":"x","method":"ping"}"#), invalid(json!("x")));
        assert_eq!(judge(br#"{"jsonrpc":"2.0","id":8}"#), invalid(json!(8)));
        assert_eq!(judge(br#"{"jsonrpc":"2.0","id":9,"method":3}"#), invalid(json!(9)));
        // Both a result and an error, or an id that is an object: no message either.
        let both = br#"{"jsonrpc":"2.0","id":2,"result":{},"error":{}}"#;
        assert_eq!(judge(both), invalid(json!(2)));
        assert_eq!(judge(br#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#), invalid(Value::Null));
    }

    #[tokio::test]
    async fn a_long_line_is_skipped_and_the_next_one_read() {
        let input = format!("{}\nshort\nlast", "x".repeat(100));
        let mut input = tokio::io::BufReader::with_capacity(16, input.as_bytes());
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut input, 10, &mut buf).await.unwrap(), Line::TooLong);
        assert!(buf.is_empty());
        assert_eq!(read_line(&mut input, 10, &mut buf).await.unwrap(), Line::Full);
        assert_eq!(buf, b"short\n");
        assert_eq!(read_line(&mut input, 10, &mut buf).await.unwrap(), Line::Full);
        assert_eq!(buf, b"last");
        assert_eq!(read_line(&mut input, 10, &mut buf).await.unwrap(), Line::End);
        // Exactly the limit is kept.
        let mut exact = tokio::io::BufReader::new(&b"0123456789\n"[..]);
        assert_eq!(read_line(&mut exact, 10, &mut buf).await.unwrap(), Line::Full);
    }

    #[tokio::test]
    async fn the_filter_passes_drops_and_answers() {
        let input = concat!(
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n",
            "garbage\n",
            "{\"foo\":1,\"id\":5}\n",
            "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}",
        );
        let (tx, mut rx) = mpsc::channel(4);
        let mut to_rmcp = Vec::new();
        filter(input.as_bytes(), &mut to_rmcp, tx).await;
        assert_eq!(
            String::from_utf8(to_rmcp).unwrap(),
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n\
             {\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n"
        );
        let reply: Value = serde_json::from_slice(&rx.recv().await.unwrap()).unwrap();
        assert_eq!(
            reply,
            json!({"jsonrpc": "2.0", "id": 5, "error": {"code": -32600, "message": "Invalid Request"}})
        );
        assert!(rx.recv().await.is_none());
    }
}
