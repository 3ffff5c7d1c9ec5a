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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::AbortHandle;

use super::MAX_HEADER_BYTES;

/// Most header fields an HTTP/1 response head may have: hyper's own default, which it parses
/// into an array on the stack. Asking hyper for more (`max_headers`) makes it allocate and fill
/// an array of that many entries twice for every response, whatever the response holds: at 1,000
/// that was an eighth of a check's instructions. 100 is what reqwest and Python's `http.client`
/// allow too; curl and Go (blackbox_exporter) bound only the bytes, which [`MAX_HEADER_BYTES`]
/// does here. A head over either limit fails the check as `headers_too_large`, saying which.
pub(crate) const MAX_HEADER_FIELDS: usize = 100;

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
    /// Bytes read from the stream (after TLS), which tells which of hyper's two limits on a
    /// response head ([`MAX_HEADER_FIELDS`], [`MAX_HEADER_BYTES`]) a head broke.
    pub read: usize,
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
                    m.read += new.len();
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
    /// The connection (`None` once it has ended), and the waker every [`Conn::drive`] of it polls
    /// with: hyper keeps the wakers it was polled with, so one drive's wakes may come during the next.
    Polled(Option<ConnFuture>, Option<Arc<InPoll>>),
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
    ///
    /// The two wake each other through hyper's channels (the request handed to the connection,
    /// the response handed back), and both wake this same task. A task woken while it is being
    /// polled is put back on the runtime's shared queue and another worker thread is woken to
    /// take it: a thread hop and two futex calls per check. So the wakes that happen inside this
    /// poll are caught by [`InPoll`] and answered by polling again, here; only wakes from outside
    /// (the socket, a timer) reach the task's own waker.
    pub(crate) async fn drive<F: Future>(&mut self, work: F) -> F::Output {
        let mut work = std::pin::pin!(work);
        std::future::poll_fn(|cx| {
            let flag = match self {
                Conn::Polled(_, Some(flag)) => {
                    if let Ok(mut task) = flag.task.lock() {
                        if !task.will_wake(cx.waker()) {
                            task.clone_from(cx.waker());
                        }
                    }
                    flag.clone()
                }
                Conn::Polled(_, in_poll) => in_poll.insert(InPoll::new(cx.waker())).clone(),
                // HTTP/2: the connection runs in its own task.
                Conn::Spawned(_) => return work.as_mut().poll(cx),
            };
            let waker = Waker::from(flag.clone());
            let mut inner = Context::from_waker(&waker);
            // Bounded, so a connection that keeps waking itself cannot starve the runtime.
            for _ in 0..8 {
                flag.woken.store(false, Ordering::SeqCst);
                flag.polling.store(true, Ordering::SeqCst);
                let polled = self.poll_both(work.as_mut(), &mut inner);
                flag.polling.store(false, Ordering::SeqCst);
                let woken = flag.woken.swap(false, Ordering::SeqCst);
                match polled {
                    Poll::Ready(out) => return Poll::Ready(out),
                    Poll::Pending if woken => continue,
                    Poll::Pending => return Poll::Pending,
                }
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        })
        .await
    }

    fn poll_both<F: Future>(&mut self, mut work: Pin<&mut F>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if let Poll::Ready(out) = work.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        let Conn::Polled(slot, _) = self else { return Poll::Pending };
        let Some(conn) = slot else { return Poll::Pending };
        if conn.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        // The connection is done (its end or error reaches `work` through hyper's channels).
        *slot = None;
        work.poll(cx)
    }
}

/// The waker [`Conn::drive`] polls with: a wake during the poll only raises `woken` (the poll
/// goes round again); any other wake goes to the task.
pub(crate) struct InPoll {
    task: Mutex<Waker>,
    polling: AtomicBool,
    woken: AtomicBool,
}

impl InPoll {
    fn new(task: &Waker) -> Arc<Self> {
        Arc::new(InPoll {
            task: Mutex::new(task.clone()),
            polling: AtomicBool::new(false),
            woken: AtomicBool::new(false),
        })
    }
}

impl std::task::Wake for InPoll {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        // Raised before `polling` is read: if the poll has just ended, it either sees `woken`
        // and goes round again, or has already returned and this wake reaches the task.
        if !self.polling.load(Ordering::SeqCst) {
            if let Ok(task) = self.task.lock() {
                task.wake_by_ref();
            }
        }
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
                .handshake(io)
                .await?;
            let mut conn = Conn::Polled(Some(Box::pin(conn)), None);
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
