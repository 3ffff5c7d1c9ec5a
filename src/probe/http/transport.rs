//! One request over a connection geoctl opened itself (TCP, then TLS), with
//! hyper's connection-level client doing the HTTP/1.1 or HTTP/2 framing.
//!
//! [`Timed`] sits between hyper and the stream and notes when the request was
//! written and when the first response byte arrived: for HTTP/1.x the first
//! byte read after a write, for HTTP/2 the first frame header of a stream (the
//! server's connection-level SETTINGS, PING and WINDOW_UPDATE frames on
//! stream 0 come before and do not count).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::AbortHandle;

use super::MAX_HEADER_BYTES;

/// The framing a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    Http1,
    Http2,
}

/// What [`Timed`] observed; shared with the check, which reads it after hyper took the stream.
#[derive(Debug, Default)]
pub(crate) struct Marks {
    last_write: Option<Instant>,
    /// When the request was fully written (the last write before the first byte).
    pub written: Option<Instant>,
    pub first_byte: Option<Instant>,
    /// The TLS peer closed without close_notify.
    pub eof_without_close_notify: bool,
    /// HTTP/2: the server's frames and ours, so that only stream frames count.
    h2: Option<(FrameScan, FrameScan)>,
}

pub(crate) type SharedMarks = Arc<Mutex<Marks>>;

pub(crate) fn marks(wire: Wire) -> SharedMarks {
    let h2 = (wire == Wire::Http2).then(|| (FrameScan::default(), FrameScan::writer()));
    Arc::new(Mutex::new(Marks { h2, ..Marks::default() }))
}

/// Where a reader or writer stands in an HTTP/2 frame sequence.
#[derive(Debug, Default)]
struct FrameScan {
    /// Bytes still to skip before the first frame (the client's connection preface).
    skip: usize,
    header: [u8; 9],
    have: usize,
    payload_left: usize,
    /// The payload being skipped belongs to a stream (id ≠ 0).
    payload_of_stream: bool,
}

/// What one read or write held.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    /// A frame of a stream started in it.
    stream_frame_start: bool,
    /// Some of its bytes belong to a stream's frame.
    stream_bytes: bool,
}

impl FrameScan {
    fn writer() -> Self {
        FrameScan { skip: 24, ..FrameScan::default() }
    }

    fn scan(&mut self, mut data: &[u8]) -> Seen {
        let mut seen = Seen::default();
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                continue;
            }
            if self.payload_left > 0 {
                let n = self.payload_left.min(data.len());
                self.payload_left -= n;
                seen.stream_bytes |= self.payload_of_stream;
                data = &data[n..];
                continue;
            }
            let take = (9 - self.have).min(data.len());
            self.header[self.have..self.have + take].copy_from_slice(&data[..take]);
            self.have += take;
            data = &data[take..];
            if self.have == 9 {
                self.have = 0;
                let h = &self.header;
                let stream = u32::from_be_bytes([h[5] & 0x7f, h[6], h[7], h[8]]);
                self.payload_of_stream = stream != 0;
                if stream != 0 {
                    seen.stream_frame_start = true;
                    seen.stream_bytes = true;
                }
                self.payload_left = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
            }
        }
        seen
    }
}

/// The stream as hyper sees it, with the timing notes of [`Marks`].
pub(crate) struct Timed<S> {
    inner: S,
    marks: SharedMarks,
}

impl<S> Timed<S> {
    pub(crate) fn new(inner: S, marks: SharedMarks) -> Self {
        Timed { inner, marks }
    }
}

fn lock(m: &SharedMarks) -> std::sync::MutexGuard<'_, Marks> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<S: AsyncRead + Unpin> AsyncRead for Timed<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if !new.is_empty() {
                    let mut m = lock(&self.marks);
                    if m.first_byte.is_none() {
                        let first = match m.h2.as_mut() {
                            Some((reader, _)) => reader.scan(new).stream_frame_start,
                            None => true,
                        };
                        if first {
                            m.first_byte = Some(Instant::now());
                            m.written = m.last_write;
                        }
                    }
                }
                Poll::Ready(Ok(()))
            }
            // A TLS peer that closes without close_notify: an end of stream like
            // any other here; whether the response was complete is for the
            // framing (Content-Length, chunked, HTTP/2 END_STREAM) to say.
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                lock(&self.marks).eof_without_close_notify = true;
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S> Timed<S> {
    /// Notes a write of `data` (HTTP/2: only one carrying a stream's frame, so
    /// that a SETTINGS acknowledgement does not move the request's end).
    fn wrote(&self, data: &[u8]) {
        let mut m = lock(&self.marks);
        if m.first_byte.is_some() {
            return;
        }
        let request_bytes = match m.h2.as_mut() {
            Some((_, writer)) => writer.scan(data).stream_bytes,
            None => true,
        };
        if request_bytes {
            m.last_write = Some(Instant::now());
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Timed<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = res {
            self.wrote(&data[..n]);
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(mut n)) = res {
            for buf in bufs {
                let take = n.min(buf.len());
                self.wrote(&buf[..take]);
                n -= take;
                if n == 0 {
                    break;
                }
            }
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// An HTTP/1 connection's I/O, to be polled until it ends.
type ConnFuture = Pin<Box<dyn Future<Output = Result<(), hyper::Error>> + Send>>;

/// What drives a connection's I/O while the check waits for the response.
///
/// An HTTP/1 connection is polled by the check's own task, alongside what the
/// check awaits ([`Conn::drive`]): no task per check, and no wake-ups handed
/// between threads. HTTP/2 needs an executor for its streams, so its
/// connection runs in a task of its own, aborted when the check is done with
/// it (or is dropped by its timeout), so no socket outlives its check.
pub(crate) enum Conn {
    /// `None` once the connection has ended.
    Polled(Option<ConnFuture>),
    Spawned(AbortHandle),
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Conn::Spawned(task) = self {
            task.abort();
        }
    }
}

impl Conn {
    /// Awaits `work` (sending the request, reading the body) while driving the connection.
    pub(crate) async fn drive<F: Future>(&mut self, work: F) -> F::Output {
        let mut work = std::pin::pin!(work);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(out) = work.as_mut().poll(cx) {
                return Poll::Ready(out);
            }
            let Conn::Polled(slot) = self else { return Poll::Pending };
            let Some(conn) = slot else { return Poll::Pending };
            if conn.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // The connection is done (its end or error reaches `work` through hyper's channels).
            *slot = None;
            work.as_mut().poll(cx)
        })
        .await
    }
}

/// Sends `request` over `io` and returns the response head (and its body
/// stream) plus what drives the connection.
pub(crate) async fn exchange<S>(
    io: S,
    wire: Wire,
    marks: SharedMarks,
    request: http::Request<Full<Bytes>>,
) -> Result<(http::Response<Incoming>, Conn), hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(Timed::new(io, marks));
    match wire {
        Wire::Http1 => {
            let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
                .title_case_headers(true)
                .max_buf_size(MAX_HEADER_BYTES)
                .max_headers(1000)
                .handshake(io)
                .await?;
            let mut conn = Conn::Polled(Some(Box::pin(conn)));
            let response = conn.drive(sender.send_request(request)).await?;
            Ok((response, conn))
        }
        Wire::Http2 => {
            let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                .max_header_list_size(MAX_HEADER_BYTES as u32)
                .handshake(io)
                .await?;
            let conn = Conn::Spawned(tokio::spawn(conn).abort_handle());
            let response = sender.send_request(request).await?;
            Ok((response, conn))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h2_scan_skips_connection_frames() {
        let mut scan = FrameScan::default();
        // SETTINGS (6 bytes payload) on stream 0, split across reads
        let settings = [0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100];
        assert_eq!(scan.scan(&settings[..4]), Seen::default());
        assert_eq!(scan.scan(&settings[4..]), Seen::default());
        // SETTINGS ACK, then HEADERS on stream 1
        let ack_then_headers = [0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 5, 1, 4, 0, 0, 0, 1, 1, 2, 3, 4, 5];
        assert_eq!(scan.scan(&ack_then_headers), Seen { stream_frame_start: true, stream_bytes: true });
        // the writer skips the client preface first
        let mut writer = FrameScan::writer();
        assert_eq!(writer.scan(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Seen::default());
        assert!(writer.scan(&ack_then_headers).stream_bytes);
    }
}
