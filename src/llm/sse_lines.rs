//! Server-sent events from a byte stream: lines (ended by `\n`, `\r\n` or `\r`), fields,
//! and a blank line that ends each event. Each byte is looked at once, however the stream is
//! cut into chunks, and an event larger than a limit is refused instead of growing without end.

/// One event: its name (`message` when the server gave none) and its data lines, joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

pub struct SseParser {
    /// Bytes not yet part of a whole line.
    pending: Vec<u8>,
    /// How much of `pending` was already searched for a line end.
    searched: usize,
    /// A `\r` ended the last line: a `\n` right after it belongs to it.
    after_cr: bool,
    event: String,
    data: Vec<u8>,
    has_data: bool,
    limit: usize,
}

impl SseParser {
    /// `limit`: the most bytes one event may take.
    pub fn new(limit: usize) -> Self {
        SseParser {
            pending: Vec::new(),
            searched: 0,
            after_cr: false,
            event: String::new(),
            data: Vec::new(),
            has_data: false,
            limit,
        }
    }

    /// Takes the next chunk of the stream; returns the events it completed.
    pub fn push(&mut self, mut chunk: &[u8]) -> Result<Vec<SseEvent>, String> {
        if chunk.is_empty() {
            return Ok(Vec::new()); // a `\r` at the end of the last chunk still waits for its `\n`
        }
        if self.after_cr && chunk.first() == Some(&b'\n') {
            chunk = &chunk[1..];
        }
        self.after_cr = false;
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        let mut at = self.searched;
        while let Some(offset) = self.pending[at..].iter().position(|&b| b == b'\n' || b == b'\r') {
            let end = at + offset;
            let mut next = end + 1;
            if self.pending[end] == b'\r' {
                match self.pending.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.after_cr = true, // the `\n` may come with the next chunk
                }
            }
            let line = self.pending[start..end].to_vec();
            if let Some(event) = self.line(&line)? {
                events.push(event);
            }
            start = next;
            at = next;
        }
        self.pending.drain(..start);
        self.searched = self.pending.len();
        if self.pending.len() + self.data.len() > self.limit {
            return Err(self.too_large());
        }
        Ok(events)
    }

    fn too_large(&self) -> String {
        format!("a server-sent event is larger than {} MiB", self.limit >> 20)
    }

    /// One whole line: a field, a comment, or the blank line that ends an event.
    fn line(&mut self, line: &[u8]) -> Result<Option<SseEvent>, String> {
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        if line[0] == b':' {
            return Ok(None); // a comment
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match field {
            b"event" => self.event = String::from_utf8_lossy(value).into_owned(),
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
                if self.data.len() > self.limit {
                    return Err(self.too_large());
                }
            }
            _ => {} // id, retry and unknown fields mean nothing here
        }
        Ok(None)
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = std::mem::take(&mut self.event);
        let data = std::mem::take(&mut self.data);
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        let event = if event.is_empty() { "message".to_string() } else { event };
        Some(SseEvent { event, data: String::from_utf8_lossy(&data).into_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::new(1 << 20);
        chunks.iter().flat_map(|c| parser.push(c).unwrap()).collect()
    }

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent { event: event.into(), data: data.into() }
    }

    #[test]
    fn fields_lines_and_blank_lines_make_events_however_the_stream_is_cut() {
        let stream =
            b"event: a\ndata: 1\n\n: comment\r\nevent:b\r\ndata:x\r\ndata: y\r\n\r\ndata\n\n\
                       event: only-a-name\n\nevent: c\rdata: z\r\r";
        let want = vec![ev("a", "1"), ev("b", "x\ny"), ev("message", ""), ev("c", "z")];
        assert_eq!(parse(&[stream]), want);
        for size in 1..8 {
            let chunks: Vec<&[u8]> = stream.chunks(size).collect();
            assert_eq!(parse(&chunks), want, "in chunks of {size}");
            let with_empty: Vec<&[u8]> = chunks.iter().flat_map(|c| [*c, &b""[..]]).collect();
            assert_eq!(parse(&with_empty), want, "in chunks of {size} with empty ones between");
        }
    }

    #[test]
    fn an_event_past_the_limit_is_refused() {
        let mut parser = SseParser::new(100);
        assert!(parser.push(&[b'x'; 60]).is_ok());
        assert_eq!(
            parser.push(&[b'x'; 60]).unwrap_err(),
            "a server-sent event is larger than 0 MiB"
        );
        let mut parser = SseParser::new(100);
        let err =
            parser.push(b"data: 0123456789012345678901234567890123456789\n".repeat(3).as_slice());
        assert!(err.is_err());
    }
}
