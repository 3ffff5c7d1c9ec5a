//! Reading the final response's body within its limits, decoding its content
//! coding (`gzip`, `deflate`, `br`, `zstd`) on the way, and judging it.
//!
//! Both the bytes on the wire and the decoded bytes are bounded by the
//! spec's `max_body_bytes` (so a small compressed body cannot expand without
//! bound), and the first [`KEEP_BODY_BYTES`] decoded bytes are kept for the
//! keyword search.

use std::io::{self, Write};

use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::KEEP_BODY_BYTES;
use crate::probe::{Failure, FailureKind};

/// Where decoded bytes go: counted against the limit, the first ones kept.
struct Decoded {
    size: u64,
    max: u64,
    keep: bool,
    kept: Vec<u8>,
    over: bool,
}

impl Write for Decoded {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let len = data.len() as u64;
        if self.size.saturating_add(len) > self.max {
            self.over = true;
            self.size = self.max;
            return Err(io::Error::other("decoded body over the limit"));
        }
        self.size += len;
        if self.keep && self.kept.len() < KEEP_BODY_BYTES {
            let room = KEEP_BODY_BYTES - self.kept.len();
            self.kept.extend_from_slice(&data[..data.len().min(room)]);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A content-coding decoder writing into [`Decoded`].
enum Decoder {
    Identity(Decoded),
    /// `deflate` is zlib-wrapped by the RFC, raw in some servers: decided on the first bytes.
    DeflatePending(Decoded, Vec<u8>),
    Gzip(flate2::write::GzDecoder<Decoded>),
    Zlib(flate2::write::ZlibDecoder<Decoded>),
    Deflate(flate2::write::DeflateDecoder<Decoded>),
    Brotli(Box<brotli_decompressor::DecompressorWriter<Decoded>>),
    Zstd(zstd::stream::write::Decoder<'static, Decoded>),
}

/// The body of the final response, as far as it was read.
pub(crate) struct BodySink {
    /// Bytes on the wire (after HTTP framing, before content decoding).
    pub wire_size: u64,
    max: u64,
    /// The content coding being decoded (`gzip`, ...), if any.
    pub coding: Option<String>,
    decoder: Option<Decoder>,
    done: Option<Decoded>,
}

impl BodySink {
    /// A sink for a body with this `Content-Encoding` value; `keep` keeps the
    /// first decoded bytes for the keyword search.
    pub(crate) fn new(content_encoding: Option<&str>, max: u64, keep: bool) -> Self {
        let out = Decoded { size: 0, max, keep, kept: Vec::new(), over: false };
        let coding =
            content_encoding.map(|c| c.trim().to_ascii_lowercase()).filter(|c| !c.is_empty() && c != "identity");
        let decoder = match coding.as_deref() {
            None => Decoder::Identity(out),
            Some("gzip" | "x-gzip") => Decoder::Gzip(flate2::write::GzDecoder::new(out)),
            Some("deflate") => Decoder::DeflatePending(out, Vec::new()),
            Some("br") => Decoder::Brotli(Box::new(brotli_decompressor::DecompressorWriter::new(out, 16 * 1024))),
            Some("zstd") => match zstd::stream::write::Decoder::new(out) {
                Ok(d) => Decoder::Zstd(d),
                Err(_) => Decoder::Identity(Decoded { size: 0, max, keep, kept: Vec::new(), over: false }),
            },
            // Unknown or stacked codings are searched as they are.
            Some(_) => Decoder::Identity(out),
        };
        let coding = match &decoder {
            Decoder::Identity(_) => None,
            _ => coding,
        };
        BodySink { wire_size: 0, max, coding, decoder: Some(decoder), done: None }
    }

    fn too_large(&self, decoded: bool) -> Failure {
        let what = if decoded { "decoded response body" } else { "response body" };
        Failure::new(FailureKind::BodyTooLarge, format!("{what} exceeds {} bytes; stopped reading", self.max))
    }

    fn bad_coding(&self, e: &io::Error) -> Failure {
        Failure::new(
            FailureKind::Protocol,
            format!("invalid {} body: {e}", self.coding.as_deref().unwrap_or("encoded")),
        )
    }

    /// Takes the next bytes from the wire.
    pub(crate) fn push(&mut self, data: &[u8]) -> Result<(), Failure> {
        let len = data.len() as u64;
        if self.wire_size.saturating_add(len) > self.max {
            self.wire_size = self.max;
            return Err(self.too_large(false));
        }
        self.wire_size += len;
        let Some(decoder) = self.decoder.as_mut() else {
            return Ok(());
        };
        let res = match decoder {
            Decoder::Identity(out) => out.write_all(data),
            Decoder::DeflatePending(_, head) => {
                head.extend_from_slice(data);
                if head.len() < 2 {
                    return Ok(());
                }
                let Some(Decoder::DeflatePending(out, head)) = self.decoder.take() else {
                    return Ok(());
                };
                // RFC 1950: CM 8 and a header checksum divisible by 31.
                let zlib = head[0] & 0x0f == 8 && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0;
                let mut d = if zlib {
                    Decoder::Zlib(flate2::write::ZlibDecoder::new(out))
                } else {
                    Decoder::Deflate(flate2::write::DeflateDecoder::new(out))
                };
                let res = match &mut d {
                    Decoder::Zlib(z) => z.write_all(&head),
                    Decoder::Deflate(z) => z.write_all(&head),
                    _ => Ok(()),
                };
                self.decoder = Some(d);
                res
            }
            Decoder::Gzip(d) => d.write_all(data),
            Decoder::Zlib(d) => d.write_all(data),
            Decoder::Deflate(d) => d.write_all(data),
            Decoder::Brotli(d) => d.write_all(data),
            Decoder::Zstd(d) => d.write_all(data),
        };
        res.map_err(|e| if self.decoded_over() { self.too_large(true) } else { self.bad_coding(&e) })
    }

    fn decoded_over(&self) -> bool {
        match &self.decoder {
            Some(Decoder::Identity(o) | Decoder::DeflatePending(o, _)) => o.over,
            Some(Decoder::Gzip(d)) => d.get_ref().over,
            Some(Decoder::Zlib(d)) => d.get_ref().over,
            Some(Decoder::Deflate(d)) => d.get_ref().over,
            Some(Decoder::Brotli(d)) => d.get_ref().over,
            Some(Decoder::Zstd(d)) => d.get_ref().over,
            None => self.done.as_ref().is_some_and(|o| o.over),
        }
    }

    /// The body ended: flushes the decoder.
    pub(crate) fn finish(&mut self) -> Result<(), Failure> {
        let Some(decoder) = self.decoder.take() else {
            return Ok(());
        };
        let res: io::Result<Decoded> = match decoder {
            Decoder::Identity(o) => Ok(o),
            Decoder::DeflatePending(out, head) if head.is_empty() => Ok(out),
            Decoder::DeflatePending(out, head) => {
                let mut d = flate2::write::DeflateDecoder::new(out);
                d.write_all(&head).and_then(|_| d.finish())
            }
            Decoder::Gzip(d) => d.finish(),
            Decoder::Zlib(d) => d.finish(),
            Decoder::Deflate(d) => d.finish(),
            Decoder::Brotli(mut d) => d.flush().and_then(|_| d.into_inner().map_err(|_| io::Error::other("truncated"))),
            Decoder::Zstd(mut d) => d.flush().map(|_| d.into_inner()),
        };
        match res {
            Ok(out) => {
                self.done = Some(out);
                Ok(())
            }
            Err(e) if self.wire_size == 0 => {
                // An empty body (HEAD, 204, 304) with a coding header decodes to nothing.
                let _ = e;
                Ok(())
            }
            Err(e) => Err(self.bad_coding(&e)),
        }
    }

    /// Decoded bytes, when a coding was decoded to the end.
    pub(crate) fn decoded_size(&self) -> Option<u64> {
        self.coding.as_ref()?;
        self.done.as_ref().map(|o| o.size)
    }

    /// The first decoded bytes (identity bodies: the bytes themselves).
    pub(crate) fn kept(&self) -> &[u8] {
        match (&self.done, &self.decoder) {
            (Some(o), _) => &o.kept,
            (None, Some(Decoder::Identity(o))) => &o.kept,
            _ => &[],
        }
    }

    /// Reads `body` to its end (or the first limit), then flushes the decoder.
    pub(crate) async fn read(&mut self, body: &mut Incoming) -> Result<(), BodyError> {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(BodyError::Hyper)?;
            if let Ok(data) = frame.into_data() {
                self.push(&data).map_err(BodyError::Failure)?;
            }
        }
        self.finish().map_err(BodyError::Failure)
    }
}

/// Why reading a body stopped early.
pub(crate) enum BodyError {
    Failure(Failure),
    Hyper(hyper::Error),
}

/// `needle` in `hay` (an empty needle is always there).
pub(crate) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink_of(coding: Option<&str>, wire: &[u8], max: u64) -> Result<BodySink, Failure> {
        let mut sink = BodySink::new(coding, max, true);
        for piece in wire.chunks(7) {
            sink.push(piece)?;
        }
        sink.finish()?;
        Ok(sink)
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn identity_counts_and_keeps() {
        let s = sink_of(None, b"hello world", 100).unwrap();
        assert_eq!(s.wire_size, 11);
        assert_eq!(s.kept(), b"hello world");
        assert_eq!(s.decoded_size(), None);
        let e = sink_of(None, b"hello world", 4).err().unwrap();
        assert_eq!(e.kind, FailureKind::BodyTooLarge);
    }

    #[test]
    fn codings_are_decoded() {
        let text = b"the keyword is here, the keyword is here, the keyword is here";
        let gz = gzip(text);
        let s = sink_of(Some("gzip"), &gz, 1000).unwrap();
        assert_eq!(s.kept(), text);
        assert_eq!((s.wire_size, s.decoded_size()), (gz.len() as u64, Some(text.len() as u64)));

        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(text).unwrap();
        assert_eq!(sink_of(Some("deflate"), &z.finish().unwrap(), 1000).unwrap().kept(), text);
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(text).unwrap();
        assert_eq!(sink_of(Some("Deflate"), &raw.finish().unwrap(), 1000).unwrap().kept(), text);

        let zs = zstd::stream::encode_all(&text[..], 3).unwrap();
        assert_eq!(sink_of(Some("zstd"), &zs, 1000).unwrap().kept(), text);

        let e = sink_of(Some("gzip"), b"not gzip at all", 1000).err().unwrap();
        assert_eq!(e.kind, FailureKind::Protocol);
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let gz = gzip(&vec![b'a'; 1 << 20]);
        assert!(gz.len() < 4096);
        let e = sink_of(Some("gzip"), &gz, 64 * 1024).err().unwrap();
        assert_eq!(e.kind, FailureKind::BodyTooLarge);
        assert!(e.message.contains("decoded"), "{}", e.message);
    }
}
