//! ICMP echo probe.
//!
//! Socket choice ([`PingMode::Auto`]): an unprivileged ICMP datagram socket
//! (`SOCK_DGRAM`/`IPPROTO_ICMP`, allowed when the process' group is within
//! `net.ipv4.ping_group_range`), else a raw socket (needs `CAP_NET_RAW`),
//! else a [`FailureKind::NotPermitted`] failure explaining how to allow it.
//!
//! Echo requests are sent every `interval`; the probe waits up to
//! `ProbeOptions::timeout` after the last request for outstanding replies.
//! Up when at least one reply arrived.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;

use super::resolve::resolve_host;
use super::timing::{ms, Clock};
use super::{parse_host, Failure, FailureKind, ProbeKind, ProbeOptions, ProbeResult, TargetError};

/// Which kind of ICMP socket to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PingMode {
    /// Datagram socket, falling back to a raw socket.
    #[default]
    Auto,
    /// Unprivileged ICMP datagram socket only.
    Dgram,
    /// Raw socket only (CAP_NET_RAW).
    Raw,
}

/// The socket kind actually used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PingMethod {
    Dgram,
    Raw,
}

/// A ping check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingSpec {
    pub host: String,
    /// Number of echo requests (default 3, at least 1).
    pub count: u32,
    /// Time between requests (default 1 s).
    pub interval: Duration,
    pub mode: PingMode,
}

impl PingSpec {
    pub fn new(host: impl Into<String>) -> Self {
        PingSpec { host: host.into(), count: 3, interval: Duration::from_secs(1), mode: PingMode::Auto }
    }

    pub fn parse(target: &str) -> Result<Self, TargetError> {
        Ok(PingSpec::new(parse_host(target)?))
    }
}

/// Ping statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PingStats {
    pub method: Option<PingMethod>,
    pub sent: u32,
    pub received: u32,
    pub loss_pct: f64,
    pub min_ms: Option<f64>,
    pub avg_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Round-trip times of the replies, in sequence order.
    pub rtts_ms: Vec<f64>,
}

const PAYLOAD_LEN: usize = 24;
static NEXT_ID: AtomicU16 = AtomicU16::new(0);

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        let word =
            if pair.len() == 2 { u16::from_be_bytes([pair[0], pair[1]]) } else { u16::from_be_bytes([pair[0], 0]) };
        sum += u32::from(word);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn echo_request(v6: bool, id: u16, seq: u16, nonce: &[u8; 8]) -> Vec<u8> {
    let mut p = vec![0u8; 8 + PAYLOAD_LEN];
    p[0] = if v6 { 128 } else { 8 };
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..16].copy_from_slice(nonce);
    for (i, b) in p[16..].iter_mut().enumerate() {
        *b = i as u8;
    }
    if !v6 {
        // ICMPv6 checksums are computed by the kernel (pseudo-header).
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// Parse a received packet; returns the sequence number of a matching echo reply.
fn parse_reply(buf: &[u8], v6: bool, method: PingMethod, id: u16, nonce: &[u8; 8]) -> Option<u16> {
    let icmp = if !v6 && method == PingMethod::Raw {
        // raw IPv4 sockets deliver the IP header too
        let ihl = usize::from(buf.first()? & 0x0f) * 4;
        buf.get(ihl..)?
    } else {
        buf
    };
    if icmp.len() < 16 {
        return None;
    }
    let reply_type = if v6 { 129 } else { 0 };
    if icmp[0] != reply_type || icmp[1] != 0 {
        return None;
    }
    // Datagram sockets: the kernel rewrites the identifier and demultiplexes for us.
    if method == PingMethod::Raw && u16::from_be_bytes([icmp[4], icmp[5]]) != id {
        return None;
    }
    if &icmp[8..16] != nonce {
        return None;
    }
    Some(u16::from_be_bytes([icmp[6], icmp[7]]))
}

fn current_ping_group_range() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range")
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn not_permitted(mode: PingMode, dgram_err: Option<&io::Error>, raw_err: Option<&io::Error>) -> Failure {
    let mut msg = String::from("ICMP sockets are not permitted for this process");
    if let Some(e) = dgram_err {
        msg.push_str(&format!(
            "; unprivileged ICMP (datagram) socket: {e} (net.ipv4.ping_group_range is `{}`)",
            current_ping_group_range()
        ));
    }
    if let Some(e) = raw_err {
        msg.push_str(&format!("; raw socket: {e} (needs CAP_NET_RAW)"));
    }
    msg.push_str(". To allow it, either run `sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"` (unprivileged ping for all groups), or grant CAP_NET_RAW (e.g. `setcap cap_net_raw+ep <binary>` or `--cap-add NET_RAW` for containers)");
    if mode != PingMode::Auto {
        msg.push_str(&format!(" [mode: {mode:?}]"));
    }
    Failure::new(FailureKind::NotPermitted, msg)
}

fn is_permission(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied || matches!(e.raw_os_error(), Some(1) | Some(13))
}

fn open(ip: IpAddr, ty: Type) -> io::Result<Socket> {
    let (domain, proto) =
        if ip.is_ipv4() { (Domain::IPV4, Protocol::ICMPV4) } else { (Domain::IPV6, Protocol::ICMPV6) };
    let s = Socket::new(domain, ty, Some(proto))?;
    s.set_nonblocking(true)?;
    // Connected sockets only receive packets from the target.
    s.connect(&SockAddr::from(SocketAddr::new(ip, 0)))?;
    Ok(s)
}

fn open_socket(ip: IpAddr, mode: PingMode) -> Result<(Socket, PingMethod), Failure> {
    let mut dgram_err = None;
    if mode != PingMode::Raw {
        match open(ip, Type::DGRAM) {
            Ok(s) => return Ok((s, PingMethod::Dgram)),
            Err(e) => dgram_err = Some(e),
        }
    }
    let mut raw_err = None;
    if mode != PingMode::Dgram {
        match open(ip, Type::RAW) {
            Ok(s) => return Ok((s, PingMethod::Raw)),
            Err(e) => raw_err = Some(e),
        }
    }
    let all_perm = dgram_err.iter().chain(raw_err.iter()).all(is_permission);
    if all_perm {
        Err(not_permitted(mode, dgram_err.as_ref(), raw_err.as_ref()))
    } else {
        let detail: Vec<String> = dgram_err
            .iter()
            .map(|e| format!("datagram socket: {e}"))
            .chain(raw_err.iter().map(|e| format!("raw socket: {e}")))
            .collect();
        Err(Failure::new(FailureKind::Other, format!("cannot open ICMP socket: {}", detail.join("; "))))
    }
}

async fn recv(fd: &AsyncFd<Socket>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let mut guard = fd.readable().await?;
        match guard.try_io(|inner| inner.get_ref().read(buf)) {
            Ok(r) => return r,
            Err(_would_block) => continue,
        }
    }
}

async fn send(fd: &AsyncFd<Socket>, pkt: &[u8]) -> io::Result<usize> {
    loop {
        let mut guard = fd.writable().await?;
        match guard.try_io(|inner| inner.get_ref().write(pkt)) {
            Ok(r) => return r,
            Err(_would_block) => continue,
        }
    }
}

fn nonce() -> [u8; 8] {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
    let mix = t ^ (u64::from(std::process::id()) << 32) ^ u64::from(NEXT_ID.load(Ordering::Relaxed));
    mix.to_be_bytes()
}

/// Run a ping check.
pub async fn run(spec: &PingSpec, opts: &ProbeOptions) -> ProbeResult {
    let started_at = Utc::now();
    let clock = Clock::start();
    let mut r = ProbeResult::new(ProbeKind::Ping, spec.host.clone(), started_at);
    let count = spec.count.clamp(1, u32::from(u16::MAX));
    let mut stats = PingStats {
        method: None,
        sent: 0,
        received: 0,
        loss_pct: 100.0,
        min_ms: None,
        avg_ms: None,
        max_ms: None,
        rtts_ms: Vec::new(),
    };

    let outcome = ping(spec, opts, count, &mut r, &mut stats).await;
    if stats.sent > 0 {
        stats.loss_pct = ((f64::from(stats.sent - stats.received) / f64::from(stats.sent)) * 1000.0).round() / 10.0;
    }
    if !stats.rtts_ms.is_empty() {
        let n = stats.rtts_ms.len() as f64;
        let sum: f64 = stats.rtts_ms.iter().sum();
        stats.min_ms = stats.rtts_ms.iter().copied().reduce(f64::min);
        stats.max_ms = stats.rtts_ms.iter().copied().reduce(f64::max);
        stats.avg_ms = Some((sum / n * 1000.0).round() / 1000.0);
    }
    match outcome {
        Ok(()) if stats.received > 0 => r.up = true,
        Ok(()) => {
            r.failure = Some(Failure::new(
                FailureKind::Timeout,
                format!(
                    "no echo reply from {} ({} sent)",
                    r.resolved_address.map(|a| a.to_string()).unwrap_or_else(|| spec.host.clone()),
                    stats.sent
                ),
            ))
        }
        Err(f) => r.failure = Some(f),
    }
    r.ping = Some(stats);
    r.phases.total_ms = clock.elapsed_ms();
    r
}

async fn ping(
    spec: &PingSpec,
    opts: &ProbeOptions,
    count: u32,
    r: &mut ProbeResult,
    stats: &mut PingStats,
) -> Result<(), Failure> {
    let resolved = match tokio::time::timeout(opts.timeout, resolve_host(&spec.host, opts)).await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            r.phases.dns_ms = e.elapsed().map(ms);
            return Err(Failure::new(e.kind(), e.to_string()));
        }
        Err(_) => return Err(Failure::new(FailureKind::Timeout, format!("resolving `{}` timed out", spec.host))),
    };
    r.phases.dns_ms = resolved.dns.map(ms);
    let ip = resolved.addrs[0];
    r.resolved_address = Some(ip);
    let v6 = ip.is_ipv6();

    let (sock, method) = open_socket(ip, spec.mode)?;
    stats.method = Some(method);
    // SAFETY: `sock` owns a valid, open descriptor; it is moved into the
    // AsyncFd and neither replaced nor closed while registered.
    let fd = unsafe { AsyncFd::register(sock) }
        .map_err(|e| Failure::new(FailureKind::Other, format!("cannot register ICMP socket: {e}")))?;

    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed).wrapping_add(std::process::id() as u16);
    let nonce = nonce();
    let mut sent_at: Vec<Option<Instant>> = vec![None; count as usize];
    let mut rtts: Vec<Option<f64>> = vec![None; count as usize];
    let mut buf = vec![0u8; 2048];
    let mut next_send = tokio::time::Instant::now();
    let mut deadline: Option<tokio::time::Instant> = None;

    loop {
        let all_sent = stats.sent >= count;
        if all_sent && stats.received >= stats.sent {
            break;
        }
        let wait_end = deadline.unwrap_or(next_send + opts.timeout);
        tokio::select! {
            _ = tokio::time::sleep_until(next_send), if !all_sent => {
                let seq = stats.sent as u16;
                let pkt = echo_request(v6, id, seq, &nonce);
                sent_at[stats.sent as usize] = Some(Instant::now());
                match send(&fd, &pkt).await {
                    Ok(_) => {}
                    Err(e) if is_permission(&e) => {
                        return Err(not_permitted(spec.mode, None, Some(&e)));
                    }
                    Err(e) => {
                        return Err(Failure::new(
                            FailureKind::Connect,
                            format!("sending ICMP echo to {ip} failed: {e}"),
                        ));
                    }
                }
                stats.sent += 1;
                if stats.sent >= count {
                    deadline = Some(tokio::time::Instant::now() + opts.timeout);
                } else {
                    next_send += spec.interval;
                }
            }
            res = recv(&fd, &mut buf) => {
                let now = Instant::now();
                match res {
                    Ok(n) => {
                        if let Some(seq) = parse_reply(&buf[..n], v6, method, id, &nonce) {
                            let i = usize::from(seq);
                            if i < sent_at.len() && rtts[i].is_none() {
                                if let Some(t) = sent_at[i] {
                                    rtts[i] = Some(ms(now - t));
                                    stats.received += 1;
                                }
                            }
                        }
                    }
                    Err(e) => {
                        // e.g. ICMP errors queued on the socket; keep waiting
                        tracing::debug!("ICMP receive error from {ip}: {e}");
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            _ = tokio::time::sleep_until(wait_end) => break,
        }
    }
    stats.rtts_ms = rtts.into_iter().flatten().collect();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_and_packet() {
        let nonce = [1, 2, 3, 4, 5, 6, 7, 8];
        let p = echo_request(false, 0x1234, 7, &nonce);
        assert_eq!(p[0], 8);
        // a correct checksum makes the one's complement sum zero
        assert_eq!(checksum(&p), 0);
        // build the matching reply as a raw IPv4 socket would deliver it
        let mut reply = vec![0x45u8];
        reply.extend_from_slice(&[0u8; 19]);
        let mut icmp = p.clone();
        icmp[0] = 0;
        reply.extend_from_slice(&icmp);
        assert_eq!(parse_reply(&reply, false, PingMethod::Raw, 0x1234, &nonce), Some(7));
        assert_eq!(parse_reply(&reply, false, PingMethod::Raw, 0x9999, &nonce), None);
        assert_eq!(parse_reply(&icmp, false, PingMethod::Dgram, 0, &nonce), Some(7));
        assert_eq!(parse_reply(&p, false, PingMethod::Dgram, 0, &nonce), None);
    }

    #[test]
    fn parse_target() {
        assert_eq!(PingSpec::parse("[::1]").unwrap().host, "::1");
        assert_eq!(PingSpec::parse("example.com").unwrap().count, 3);
        assert!(PingSpec::parse("").is_err());
    }
}
