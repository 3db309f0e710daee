//! Gzip-encoded provider answers, decoded as they arrive so a translated stream is not held
//! back: each chunk yields the plain bytes it completes (members, headers and trailers split
//! across chunks are fine).

use std::io::Write;

use flate2::write::GzDecoder;

/// An incremental gzip decoder.
pub struct Gunzip {
    decoder: GzDecoder<Vec<u8>>,
    failed: bool,
}

impl Default for Gunzip {
    fn default() -> Self {
        Gunzip {
            decoder: GzDecoder::new(Vec::new()),
            failed: false,
        }
    }
}

impl Gunzip {
    /// The plain bytes `compressed` completes; `Err` once the stream is corrupt.
    pub fn push(&mut self, compressed: &[u8], end: bool) -> Result<Vec<u8>, String> {
        if self.failed {
            return Err("the provider's gzip stream is corrupt".into());
        }
        let written = self.decoder.write_all(compressed).and_then(|()| {
            if end {
                self.decoder.try_finish()
            } else {
                self.decoder.flush()
            }
        });
        if let Err(e) = written {
            self.failed = true;
            return Err(format!("the provider's gzip stream is corrupt: {e}"));
        }
        Ok(std::mem::take(self.decoder.get_mut()))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).expect("write");
        encoder.finish().expect("finish")
    }

    #[test]
    fn a_gzip_stream_split_at_every_byte_decodes_whole() {
        let plain = b"data: {\"a\":1}\n\ndata: [DONE]\n\n".repeat(20);
        let compressed = gzip(&plain);
        let mut gunzip = Gunzip::default();
        let last = compressed.len() - 1;
        let out: Vec<u8> = compressed
            .iter()
            .enumerate()
            .flat_map(|(i, b)| gunzip.push(&[*b], i == last).expect("decodes"))
            .collect();
        assert_eq!(out, plain);
    }

    #[test]
    fn a_corrupt_stream_is_an_error() {
        let mut gunzip = Gunzip::default();
        assert!(gunzip.push(b"definitely not gzip at all", true).is_err());
    }
}
