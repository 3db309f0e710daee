//! Incremental Server-Sent Events parser for response streams.
//!
//! Chunks arrive as Envoy forwards them, so an event may be split anywhere, even between the
//! `\r` and `\n` of a line ending. Every byte pushed comes back exactly once, in order, in the
//! `raw` of some [`SseEvent`] (or in [`SseParser::finish`]), so a caller that drops an event
//! still passes everything else through unchanged.

/// One event: its bytes as received (through the blank line ending it) and its fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub raw: Vec<u8>,
    /// `event:` field, if any.
    pub event: Option<String>,
    /// `data:` lines joined by `\n`; `None` when the event had no data line.
    pub data: Option<String>,
}

#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    /// Start of the next unparsed line in `buf` (the current event starts at 0).
    line_start: usize,
    event: Option<String>,
    data: Option<String>,
}

impl SseParser {
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// Adds a chunk and returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut event_start = 0;
        while let Some((line_end, next)) = self.next_line_end() {
            let line = &self.buf[self.line_start..line_end];
            if line.is_empty() {
                events.push(SseEvent {
                    raw: self.buf[event_start..next].to_vec(),
                    event: self.event.take(),
                    data: self.data.take(),
                });
                event_start = next;
            } else {
                let line = String::from_utf8_lossy(line).into_owned();
                self.field(&line);
            }
            self.line_start = next;
        }
        self.buf.drain(..event_start);
        self.line_start -= event_start;
        events
    }

    /// The bytes of an unfinished event at the end of the stream, with what it had parsed (a
    /// final event without its blank line, or a stream cut mid-event).
    pub fn finish(&mut self) -> Option<SseEvent> {
        if self.buf.is_empty() {
            return None;
        }
        let rest = &self.buf[self.line_start..];
        if !rest.is_empty() {
            let line = String::from_utf8_lossy(rest)
                .trim_end_matches('\r')
                .to_string();
            self.field(&line);
        }
        let event = SseEvent {
            raw: std::mem::take(&mut self.buf),
            event: self.event.take(),
            data: self.data.take(),
        };
        self.line_start = 0;
        Some(event)
    }

    /// Bytes held back waiting for the rest of an event.
    pub fn pending_len(&self) -> usize {
        self.buf.len()
    }

    /// End of the next complete line from `line_start` and where the one after starts. A `\r`
    /// as the last byte waits for the next chunk, which may bring its `\n`.
    fn next_line_end(&self) -> Option<(usize, usize)> {
        let rest = &self.buf[self.line_start..];
        let i = rest.iter().position(|&b| b == b'\n' || b == b'\r')?;
        let at = self.line_start + i;
        if rest[i] == b'\n' {
            return Some((at, at + 1));
        }
        match rest.get(i + 1) {
            Some(b'\n') => Some((at, at + 2)),
            Some(_) => Some((at, at + 1)),
            None => None,
        }
    }

    fn field(&mut self, line: &str) {
        if line.starts_with(':') {
            return; // comment
        }
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match name {
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "event" => self.event = Some(value.to_string()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(parser: &mut SseParser, chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut events: Vec<SseEvent> = chunks.iter().flat_map(|c| parser.push(c)).collect();
        events.extend(parser.finish());
        events
    }

    #[test]
    fn events_split_across_chunks_are_joined() {
        let mut parser = SseParser::new();
        let events = all(
            &mut parser,
            &[b"data: {\"a\"", b":1}\n", b"\ndata: [DONE]\n\n"],
        );
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].data.as_deref(), Some("{\"a\":1}"));
        assert_eq!(events[0].raw, b"data: {\"a\":1}\n\n");
        assert_eq!(events[1].data.as_deref(), Some("[DONE]"));
    }

    #[test]
    fn data_without_space_and_crlf_are_understood() {
        let mut parser = SseParser::new();
        let events = all(&mut parser, &[b"event:x\r\ndata:1\r", b"\ndata:2\r\n\r\n"]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event.as_deref(), Some("x"));
        assert_eq!(events[0].data.as_deref(), Some("1\n2"));
        assert_eq!(events[0].raw, b"event:x\r\ndata:1\r\ndata:2\r\n\r\n");
    }

    #[test]
    fn every_byte_comes_back_once_in_order() {
        let input = b": keepalive\n\ndata: a\n\ndata: b\r\n\r\ndata: cut";
        for split in 0..input.len() {
            let mut parser = SseParser::new();
            let events = all(&mut parser, &[&input[..split], &input[split..]]);
            let raw: Vec<u8> = events.iter().flat_map(|e| e.raw.clone()).collect();
            assert_eq!(raw, input, "split at {split}");
            let data: Vec<_> = events.iter().filter_map(|e| e.data.clone()).collect();
            assert_eq!(data, ["a", "b", "cut"], "split at {split}");
        }
    }

    #[test]
    fn a_bare_cr_ends_a_line_once_the_next_byte_is_known() {
        let mut parser = SseParser::new();
        assert!(parser.push(b"data: a\r\r").is_empty());
        let events = parser.push(b"x");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data.as_deref(), Some("a"));
        assert_eq!(parser.pending_len(), 1);
    }
}
