//! AWS event streams (Bedrock's ConverseStream and InvokeModel responses), decoded frame by
//! frame as the bytes arrive: a frame split across chunks waits for its end.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{HeaderValue, Message as Frame};

/// The frames of a stream, fed a chunk at a time.
#[derive(Default)]
pub struct Frames {
    decoder: MessageFrameDecoder,
    buffer: Vec<u8>,
}

impl Frames {
    /// Adds bytes of the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete frame, `Ok(None)` until more bytes come, `Err` once corrupt (the
    /// buffered rest is dropped).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, String> {
        let mut rest: &[u8] = &self.buffer;
        let before = rest.len();
        let decoded = self.decoder.decode_frame(&mut rest);
        let consumed = before - rest.len();
        self.buffer.drain(..consumed);
        match decoded {
            Ok(DecodedFrame::Complete(frame)) => Ok(Some(frame)),
            Ok(DecodedFrame::Incomplete) => Ok(None),
            Err(e) => {
                self.buffer.clear();
                Err(e.to_string())
            }
        }
    }
}

/// A string header of a frame (`:message-type`, `:event-type`, `:exception-type`).
pub fn header(frame: &Frame, name: &str) -> Option<String> {
    frame
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| match h.value() {
            HeaderValue::String(s) => Some(s.as_str().to_string()),
            _ => None,
        })
}
