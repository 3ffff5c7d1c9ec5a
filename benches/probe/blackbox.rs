//! The blackbox_exporter side of part 1: C keep-alive connections to the
//! exporter's `/probe` endpoint, each asking for one `http_2xx` probe at a
//! time; a check counts when the exporter answers `probe_success 1`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::throughput::{closed_loop, Outcome, CHECK_TIMEOUT};

/// blackbox_exporter probing `target` with `concurrency` probes in flight.
pub async fn run_load(
    blackbox: SocketAddr,
    target: &str,
    concurrency: usize,
    duration: Duration,
    max_checks: u64,
) -> Outcome {
    let path = format!(
        "/probe?module=http_2xx&target={}",
        url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>()
    );
    let request = Arc::new(format!("GET {path} HTTP/1.1\r\nHost: {blackbox}\r\n\r\n").into_bytes());
    closed_loop(concurrency, duration, max_checks, |budget| {
        let request = request.clone();
        async move {
            let mut outcome = Outcome::default();
            let mut conn: Option<KeepAlive> = None;
            while budget.take() {
                let check = tokio::time::timeout(CHECK_TIMEOUT + Duration::from_secs(2), async {
                    if conn.is_none() {
                        conn = Some(KeepAlive::connect(blackbox).await?);
                    }
                    let body = conn.as_mut().expect("connected above").get(&request).await;
                    if body.is_err() {
                        conn = None;
                    }
                    body
                })
                .await;
                outcome.record(match check {
                    Ok(Ok(body)) => judge_probe(&body),
                    Ok(Err(e)) => Err(format!("exporter: {e}")),
                    Err(_) => {
                        conn = None;
                        Err("exporter: timeout".into())
                    }
                });
            }
            outcome
        }
    })
    .await
}

/// A check is counted when the exporter says `probe_success 1`; its time is
/// the exporter's own `probe_duration_seconds`.
fn judge_probe(body: &[u8]) -> Result<f64, String> {
    let text = String::from_utf8_lossy(body);
    let metric = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    match metric("probe_success") {
        Some(1.0) => Ok(metric("probe_duration_seconds").unwrap_or(f64::NAN) * 1000.0),
        Some(_) => Err(match metric("probe_http_status_code") {
            Some(code) if code > 0.0 => format!("probe_success 0 (status {code})"),
            _ => "probe_success 0".into(),
        }),
        None => Err("no probe_success in the exporter's answer".into()),
    }
}

/// One HTTP/1.1 keep-alive connection; answers with Content-Length or chunked bodies.
struct KeepAlive {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl KeepAlive {
    async fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(KeepAlive { stream, buf: Vec::with_capacity(8 * 1024) })
    }

    async fn get(&mut self, request: &[u8]) -> std::io::Result<Vec<u8>> {
        self.buf.clear();
        self.stream.write_all(request).await?;
        let head = self.line_block().await?;
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        if !head.starts_with("http/1.1 200") {
            return Err(std::io::Error::other(format!("exporter answered `{}`", head.lines().next().unwrap_or(""))));
        }
        let header = |name: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')).map(|v| v.trim().to_string()))
        };
        if let Some(len) = header("content-length") {
            let len: usize = len.parse().map_err(|_| std::io::Error::other("bad content-length"))?;
            return self.take(len).await;
        }
        if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            let mut body = Vec::new();
            loop {
                let line = self.line().await?;
                let size =
                    usize::from_str_radix(String::from_utf8_lossy(&line).split(';').next().unwrap_or("").trim(), 16)
                        .map_err(|_| std::io::Error::other("bad chunk size"))?;
                if size == 0 {
                    while !self.line().await?.is_empty() {}
                    return Ok(body);
                }
                body.extend(self.take(size).await?);
                self.line().await?;
            }
        }
        Err(std::io::Error::other("answer without length"))
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// Bytes up to and without the next CRLF.
    async fn line(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[..i].to_vec();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            self.fill().await?;
        }
    }

    /// The header block, up to and without the blank line.
    async fn line_block(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = self.buf[..i].to_vec();
                self.buf.drain(..i + 4);
                return Ok(head);
            }
            if self.buf.len() > 64 * 1024 {
                return Err(std::io::Error::other("header block too large"));
            }
            self.fill().await?;
        }
    }

    async fn take(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        while self.buf.len() < n {
            self.fill().await?;
        }
        Ok(self.buf.drain(..n).collect())
    }
}
