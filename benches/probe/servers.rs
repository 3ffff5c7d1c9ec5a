//! The benchmark's targets: an HTTP server (optionally late with its first
//! byte, or slow to accept connections) and a DNS server (optionally late with
//! chosen names). Each runs as a process of its own and exits after its
//! lifetime at the latest.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
/// Largest request head the server reads.
const MAX_REQUEST: usize = 8 * 1024;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn bind_http(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr).with_context(|| format!("binding {addr}"))?;
    // Deep enough for 512 clients connecting at once.
    Ok(socket.listen(4096)?)
}

pub async fn serve_http_for(addr: SocketAddr, first_byte_delay: Duration, lifetime: Duration) -> anyhow::Result<()> {
    let listener = bind_http(addr).await?;
    let _ = tokio::time::timeout(lifetime, serve_http(listener, first_byte_delay)).await;
    Ok(())
}

/// Answers each connection once and closes it, as a check expects.
pub async fn serve_http(listener: TcpListener, first_byte_delay: Duration) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(answer_http(stream, first_byte_delay));
            }
            // Out of file descriptors, most likely: let clients finish.
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

async fn answer_http(mut stream: TcpStream, first_byte_delay: Duration) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; MAX_REQUEST];
    let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut filled = 0;
        while filled < buf.len() {
            let n = stream.read(&mut buf[filled..]).await.ok()?;
            if n == 0 {
                return None;
            }
            filled += n;
            if head_complete(&buf[..filled]) {
                return Some(());
            }
        }
        None
    })
    .await;
    if !matches!(read, Ok(Some(()))) {
        return;
    }
    if !first_byte_delay.is_zero() {
        tokio::time::sleep(first_byte_delay).await;
    }
    if stream.write_all(RESPONSE).await.is_ok() {
        let _ = stream.shutdown().await;
    }
}

fn head_complete(buf: &[u8]) -> bool {
    buf.windows(4).any(|w| w == b"\r\n\r\n")
}

/// A listener whose accept queue (backlog 0, so one connection) is kept full
/// by a filler connection, so the kernel drops a client's SYN. When the
/// namespace's ListenOverflows counter shows the drop, the filler is taken off
/// the queue; the client's SYN retransmission (after the 1 s initial RTO) then
/// gets through. Connecting therefore takes about one second, for curl and
/// geoctl alike, and no packet is delayed artificially. Serves one client at a
/// time, which is how the accuracy part uses it.
pub fn serve_slow_accept(addr: SocketAddr, lifetime: Duration) -> anyhow::Result<()> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into()).with_context(|| format!("binding {addr}"))?;
    socket.listen(0)?;
    let listener: std::net::TcpListener = socket.into();
    listener.set_nonblocking(true)?;
    let end = Instant::now() + lifetime;
    while Instant::now() < end {
        let dropped_before = listen_overflows()?;
        let filler = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        // Wait for a client's SYN to be dropped.
        while listen_overflows()? == dropped_before {
            if Instant::now() >= end {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(300));
        drop(accept_within(&listener, Duration::from_secs(1))?);
        drop(filler);
        // The retransmitted SYN arrives about 700 ms from now.
        if let Some(stream) = accept_within(&listener, Duration::from_secs(5))? {
            std::thread::spawn(move || answer_blocking(stream));
        }
    }
    Ok(())
}

fn accept_within(listener: &std::net::TcpListener, limit: Duration) -> anyhow::Result<Option<std::net::TcpStream>> {
    let end = Instant::now() + limit;
    loop {
        match listener.accept() {
            Ok((stream, _)) => return Ok(Some(stream)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= end {
                    return Ok(None);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn answer_blocking(mut stream: std::net::TcpStream) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(REQUEST_TIMEOUT));
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => filled += n,
        }
        if head_complete(&buf[..filled]) {
            let _ = stream.write_all(RESPONSE);
            let _ = stream.shutdown(std::net::Shutdown::Write);
            return;
        }
    }
}

/// The network namespace's count of SYNs dropped because an accept queue was full.
fn listen_overflows() -> anyhow::Result<u64> {
    crate::machine::kernel_counter("netstat", "TcpExt", "ListenOverflows")
        .context("reading ListenOverflows from /proc/self/net/netstat")
}

pub fn parse_delay(s: &str) -> Result<(String, Duration), String> {
    let (name, ms) = s.split_once('=').ok_or("expected NAME=MILLISECONDS")?;
    let ms: u64 = ms.parse().map_err(|_| format!("`{ms}` is not a number of milliseconds"))?;
    Ok((name.trim_end_matches('.').to_ascii_lowercase(), Duration::from_millis(ms)))
}

/// Deep enough for 512 clients asking at once, as the HTTP listener's accept
/// queue is, and as production nameservers size theirs: the default buffer
/// (`net.core.rmem_default`, ~208 KiB) holds about 280 questions, and a
/// question dropped there costs its client a resolver retransmission (5 s for
/// geoctl and glibc), which would measure this server's buffer, not the
/// prober. SO_RCVBUFFORCE passes `net.core.rmem_max` (the benchmark runs as
/// root for its network namespace); if refused, SO_RCVBUF gets what it may.
fn deepen_receive_buffer(socket: &std::net::UdpSocket) {
    use std::os::fd::AsRawFd as _;
    const BYTES: libc::c_int = 8 << 20;
    for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: a valid socket descriptor and a c_int option value of the given size.
        let set = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&BYTES as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if set == 0 {
            return;
        }
    }
}

/// Answers over UDP from one thread (no runtime between the socket and the
/// answer): A queries for names under `zone` with 127.0.0.1 (TTL 0), other
/// types for those names with no answer, other names with NXDOMAIN. Names in
/// `delays` are answered from a thread of their own after their delay.
pub fn serve_dns(
    addr: SocketAddr,
    zone: &str,
    delays: &[(String, Duration)],
    lifetime: Duration,
) -> anyhow::Result<()> {
    let socket = std::net::UdpSocket::bind(addr).with_context(|| format!("binding {addr}/udp"))?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    deepen_receive_buffer(&socket);
    let zone = zone.trim_end_matches('.').to_ascii_lowercase();
    let end = Instant::now() + lifetime;
    let mut buf = [0u8; 1500];
    while Instant::now() < end {
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(received) => received,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(e) => return Err(e.into()),
        };
        let Some((name, reply)) = dns_answer(&buf[..n], &zone) else {
            continue;
        };
        match delays.iter().find(|(slow, _)| *slow == name) {
            Some(&(_, delay)) => {
                let socket = socket.try_clone()?;
                std::thread::spawn(move || {
                    std::thread::sleep(delay);
                    let _ = socket.send_to(&reply, peer);
                });
            }
            None => {
                let _ = socket.send_to(&reply, peer);
            }
        }
    }
    Ok(())
}

/// The queried name (lower case, no trailing dot) and the reply, or `None`
/// for anything that is not a single-question query.
fn dns_answer(query: &[u8], zone: &str) -> Option<(String, Vec<u8>)> {
    if query.len() < 12 || query[2] & 0x80 != 0 || u16::from_be_bytes([query[4], query[5]]) != 1 {
        return None;
    }
    let mut labels = Vec::new();
    let mut at = 12;
    loop {
        let len = *query.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + len)?).to_ascii_lowercase());
        at += len;
    }
    let qtype = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    let question_end = at + 4;
    if query.len() < question_end {
        return None;
    }
    let name = labels.join(".");
    let in_zone = name == zone || name.ends_with(&format!(".{zone}"));
    let answer_a = in_zone && qtype == 1;

    let mut reply = Vec::with_capacity(question_end + 16);
    reply.extend_from_slice(&query[0..2]); // id
    let rd = query[2] & 0x01;
    reply.push(0x80 | 0x04 | rd); // QR, AA, RD copied
    reply.push(0x80 | if in_zone { 0 } else { 3 }); // RA, NOERROR or NXDOMAIN
    reply.extend_from_slice(&[0, 1, 0, u8::from(answer_a), 0, 0, 0, 0]);
    reply.extend_from_slice(&query[12..question_end]);
    if answer_a {
        // name pointer to the question, A, IN, TTL 0, 4 bytes: 127.0.0.1
        reply.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 127, 0, 0, 1]);
    }
    Some((name, reply))
}
