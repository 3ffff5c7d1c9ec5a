//! Route probe: the hops to a host, found as `traceroute` finds them.
//!
//! UDP datagrams with increasing TTL (IPv6: hop limit) go to high ports of the
//! target; each router that drops one for its TTL answers ICMP time exceeded,
//! and the target answers port unreachable. The answers arrive on each
//! socket's error queue (`IP_RECVERR`/`IPV6_RECVERR`), which needs no
//! privilege, so no raw socket is needed.
//!
//! Per hop [`TraceSpec::queries`] probes go out at once, and the hop is
//! done when each has an answer or [`TraceSpec::wait`] has passed. A hop that
//! answered none is silent (`address` `None`). The run stops at the target,
//! at an unreachable answer, at [`TraceSpec::max_hops`], or when the
//! check's timeout is spent: at most `max_hops × queries` packets, and no
//! longer than `ProbeOptions::timeout`.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};

use super::resolve::resolve_host;
use super::timing::ms;
use super::{parse_host, Failure, FailureKind, ProbeOptions, TargetError};

/// The most hops a trace may go (`--max-hops`), as `traceroute` allows.
pub const MAX_HOPS: u8 = 64;
/// First destination port, as `traceroute` uses; each probe takes the next.
const BASE_PORT: u16 = 33434;

/// A route probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSpec {
    pub host: String,
    /// Give up after this many hops (1..=[`MAX_HOPS`], default 30).
    pub max_hops: u8,
    /// Probes per hop (default 3).
    pub queries: u8,
    /// How long a hop's answers are waited for (default 2 s).
    pub wait: Duration,
}

impl TraceSpec {
    pub fn new(host: impl Into<String>) -> Self {
        TraceSpec { host: host.into(), max_hops: 30, queries: 3, wait: Duration::from_secs(2) }
    }

    pub fn parse(target: &str) -> Result<Self, TargetError> {
        Ok(TraceSpec::new(parse_host(target)?))
    }
}

/// One hop: who answered and each probe's round trip (`None`: no answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hop {
    /// The TTL the probes were sent with: the hop's number as `traceroute` prints it.
    pub ttl: u8,
    /// The first address that answered; `None` for a silent hop.
    pub address: Option<IpAddr>,
    pub rtts_ms: Vec<Option<f64>>,
    /// The ASN of `address`, filled in by the caller when a database is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
}

impl Hop {
    pub fn silent(&self) -> bool {
        self.address.is_none()
    }
}

/// What a trace found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub target: String,
    pub started_at: DateTime<Utc>,
    pub address: Option<IpAddr>,
    /// One entry per TTL sent, in order, silent hops included.
    pub hops: Vec<Hop>,
    /// Whether the target itself answered.
    pub reached: bool,
    /// Hops up to and including the target (its TTL); `None` when it was not reached.
    pub hop_count: Option<u32>,
    pub probes_sent: u32,
    pub total_ms: f64,
    /// Why the trace ended before reaching the target, when it did.
    pub failure: Option<Failure>,
}

impl Route {
    /// The stored form (`route_latency`): one entry per hop, `null` for a silent one.
    pub fn route_latency(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.hops.iter().map(|h| if h.silent() { serde_json::Value::Null } else { serde_json::json!(h) }).collect(),
        )
    }
}

/// Traces the route to `spec.host`. Never fails outright: a failure is in the route.
pub async fn run(spec: &TraceSpec, opts: &ProbeOptions) -> Route {
    let started_at = Utc::now();
    let start = Instant::now();
    let mut route = Route {
        target: spec.host.clone(),
        started_at,
        address: None,
        hops: Vec::new(),
        reached: false,
        hop_count: None,
        probes_sent: 0,
        total_ms: 0.0,
        failure: None,
    };
    let deadline = start + opts.timeout;
    let address = match tokio::time::timeout(opts.timeout, resolve_host(&spec.host, opts)).await {
        Ok(Ok(resolved)) => resolved.addrs.first().copied(),
        Ok(Err(e)) => {
            route.failure = Some(Failure::new(FailureKind::Dns, e.to_string()));
            None
        }
        Err(_) => {
            route.failure = Some(Failure::new(FailureKind::Timeout, "name resolution timed out"));
            None
        }
    };
    if let Some(address) = address {
        route.address = Some(address);
        let spec = spec.clone();
        let traced = tokio::task::spawn_blocking(move || trace_blocking(address, &spec, deadline)).await;
        match traced {
            Ok(Ok(found)) => {
                route.probes_sent = found.probes_sent;
                route.reached = found.reached;
                route.hop_count = found.reached.then_some(found.hops.len() as u32);
                route.hops = found.hops;
                route.failure = found.end;
            }
            Ok(Err(failure)) => route.failure = Some(failure),
            Err(e) => route.failure = Some(Failure::new(FailureKind::Other, format!("trace task failed: {e}"))),
        }
    }
    route.total_ms = ms(start.elapsed());
    route
}

struct Found {
    hops: Vec<Hop>,
    reached: bool,
    probes_sent: u32,
    end: Option<Failure>,
}

/// What one probe's answer said.
enum Answer {
    /// A router on the way (time exceeded).
    Router(IpAddr),
    /// The target (port unreachable from it).
    Target(IpAddr),
    /// Something on the way said the target cannot be reached.
    Unreachable(IpAddr, String),
}

struct Probe {
    socket: Socket,
    sent: Instant,
    answer: Option<(Answer, f64)>,
}

fn not_permitted(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES))
}

fn socket_failure(what: &str, e: io::Error) -> Failure {
    if not_permitted(&e) {
        Failure::new(
            FailureKind::NotPermitted,
            format!(
                "{what}: {e}; sending UDP probes is not permitted here (a firewall rule or seccomp filter forbids it)"
            ),
        )
    } else {
        Failure::new(FailureKind::Other, format!("{what}: {e}"))
    }
}

fn trace_blocking(target: IpAddr, spec: &TraceSpec, deadline: Instant) -> Result<Found, Failure> {
    let max_hops = spec.max_hops.clamp(1, MAX_HOPS);
    let queries = spec.queries.max(1);
    let mut found = Found { hops: Vec::new(), reached: false, probes_sent: 0, end: None };
    for ttl in 1..=max_hops {
        if Instant::now() >= deadline {
            found.end = Some(Failure::new(FailureKind::Timeout, format!("timed out before hop {ttl}")));
            return Ok(found);
        }
        let mut probes = Vec::with_capacity(usize::from(queries));
        for q in 0..queries {
            let port = BASE_PORT.wrapping_add(u16::from(ttl - 1) * u16::from(queries) + u16::from(q));
            probes.push(send_probe(target, port, ttl)?);
            found.probes_sent += 1;
        }
        collect(&mut probes, (Instant::now() + spec.wait).min(deadline));
        let mut hop = Hop { ttl, address: None, rtts_ms: Vec::new(), asn: None };
        let mut reached = false;
        let mut unreachable = None;
        for probe in &probes {
            hop.rtts_ms.push(probe.answer.as_ref().map(|(_, rtt)| *rtt));
            let Some((answer, _)) = &probe.answer else { continue };
            let (Answer::Router(from) | Answer::Target(from) | Answer::Unreachable(from, _)) = answer;
            hop.address.get_or_insert(*from);
            match answer {
                Answer::Target(_) => reached = true,
                Answer::Unreachable(from, why) => unreachable = Some(format!("{from} answered {why}")),
                Answer::Router(_) => {}
            }
        }
        found.hops.push(hop);
        if reached {
            found.reached = true;
            return Ok(found);
        }
        if let Some(why) = unreachable {
            found.end = Some(Failure::new(FailureKind::Connect, why));
            return Ok(found);
        }
    }
    found.end = Some(Failure::new(FailureKind::Other, format!("{target} not reached within {max_hops} hops")));
    Ok(found)
}

fn send_probe(target: IpAddr, port: u16, ttl: u8) -> Result<Probe, Failure> {
    let domain = if target.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(|e| socket_failure("UDP socket", e))?;
    let fd = socket.as_raw_fd();
    let on: libc::c_int = 1;
    let (level, name) = if target.is_ipv4() {
        socket.set_ttl_v4(u32::from(ttl)).map_err(|e| socket_failure("setting the TTL", e))?;
        (libc::SOL_IP, libc::IP_RECVERR)
    } else {
        socket.set_unicast_hops_v6(u32::from(ttl)).map_err(|e| socket_failure("setting the hop limit", e))?;
        (libc::SOL_IPV6, libc::IPV6_RECVERR)
    };
    // SAFETY: a valid socket and a c_int option value of the size passed.
    let set = unsafe {
        libc::setsockopt(fd, level, name, (&on as *const libc::c_int).cast(), size_of::<libc::c_int>() as u32)
    };
    if set != 0 {
        return Err(socket_failure("enabling the error queue", io::Error::last_os_error()));
    }
    socket.set_nonblocking(true).map_err(|e| socket_failure("UDP socket", e))?;
    socket.connect(&SocketAddr::new(target, port).into()).map_err(|e| socket_failure("UDP connect", e))?;
    let sent = Instant::now();
    match socket.send(&[0u8; 32]) {
        Ok(_) => Ok(Probe { socket, sent, answer: None }),
        // A local error for this destination (no route): it is on the error queue too.
        Err(e) if !not_permitted(&e) => Ok(Probe { socket, sent, answer: None }),
        Err(e) => Err(socket_failure("sending a probe", e)),
    }
}

/// Waits until every probe has an answer or `until` passes.
fn collect(probes: &mut [Probe], until: Instant) {
    loop {
        let pending: Vec<usize> = (0..probes.len()).filter(|&i| probes[i].answer.is_none()).collect();
        let now = Instant::now();
        if pending.is_empty() || now >= until {
            return;
        }
        let mut fds: Vec<libc::pollfd> =
            pending.iter().map(|&i| libc::pollfd { fd: probes[i].socket.as_raw_fd(), events: 0, revents: 0 }).collect();
        let wait_ms = (until - now).as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: `fds` is a live array of `fds.len()` pollfd entries.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
        if ready < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        let at = Instant::now();
        for (slot, &i) in fds.iter().zip(&pending) {
            if slot.revents & libc::POLLERR != 0 {
                let probe = &mut probes[i];
                if let Some(answer) = read_error(&probe.socket) {
                    probe.answer = Some((answer, ms(at - probe.sent)));
                }
            }
        }
    }
}

/// Reads one ICMP answer from a socket's error queue.
fn read_error(socket: &Socket) -> Option<Answer> {
    let mut data = [0u8; 64];
    let mut control = [0u64; 64];
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
    // SAFETY: an all-zero msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 64]>() as _;
    // SAFETY: `msg` points at buffers of the sizes it states.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
    if n < 0 {
        return None;
    }
    // SAFETY: CMSG_* walk the control buffer recvmsg filled, within msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let header = &*cmsg;
            let v4 = header.cmsg_level == libc::SOL_IP && header.cmsg_type == libc::IP_RECVERR;
            let v6 = header.cmsg_level == libc::SOL_IPV6 && header.cmsg_type == libc::IPV6_RECVERR;
            if v4 || v6 {
                let err_ptr = libc::CMSG_DATA(cmsg) as *const libc::sock_extended_err;
                let err = std::ptr::read_unaligned(err_ptr);
                let offender_ptr = err_ptr.add(1).cast::<u8>();
                let from = offender(offender_ptr)?;
                return Some(classify(&err, from));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    None
}

/// The address in `SO_EE_OFFENDER` (a sockaddr right after the error).
///
/// # Safety
/// `ptr` must point at a sockaddr_in or sockaddr_in6 within the control buffer.
unsafe fn offender(ptr: *const u8) -> Option<IpAddr> {
    let family = std::ptr::read_unaligned(ptr.cast::<libc::sa_family_t>());
    match i32::from(family) {
        libc::AF_INET => {
            let sin = std::ptr::read_unaligned(ptr.cast::<libc::sockaddr_in>());
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))))
        }
        libc::AF_INET6 => {
            let sin6 = std::ptr::read_unaligned(ptr.cast::<libc::sockaddr_in6>());
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

const SO_EE_ORIGIN_ICMP: u8 = 2;
const SO_EE_ORIGIN_ICMP6: u8 = 3;

fn classify(err: &libc::sock_extended_err, from: IpAddr) -> Answer {
    match (err.ee_origin, err.ee_type, err.ee_code) {
        // Time exceeded in transit.
        (SO_EE_ORIGIN_ICMP, 11, _) | (SO_EE_ORIGIN_ICMP6, 3, _) => Answer::Router(from),
        // Port unreachable: the target's own answer.
        (SO_EE_ORIGIN_ICMP, 3, 3) | (SO_EE_ORIGIN_ICMP6, 1, 4) => Answer::Target(from),
        (_, kind, code) => Answer::Unreachable(
            from,
            format!("{} (type {kind}, code {code})", io::Error::from_raw_os_error(err.ee_errno as i32)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_hops_are_null_in_the_stored_route() {
        let hop = |ttl, address: Option<&str>| Hop {
            ttl,
            address: address.map(|a| a.parse().unwrap()),
            rtts_ms: vec![address.map(|_| 1.5), None],
            asn: None,
        };
        let route = Route {
            target: "t".into(),
            started_at: Utc::now(),
            address: None,
            hops: vec![hop(1, Some("10.0.0.1")), hop(2, None), hop(3, Some("10.0.0.3"))],
            reached: true,
            hop_count: Some(3),
            probes_sent: 6,
            total_ms: 1.0,
            failure: None,
        };
        let stored = route.route_latency();
        assert_eq!(stored[0]["address"], "10.0.0.1");
        assert_eq!(stored[0]["rtts_ms"], serde_json::json!([1.5, null]));
        assert!(stored[1].is_null());
        assert_eq!(stored.as_array().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn loopback_is_one_hop() {
        let spec = TraceSpec::new("127.0.0.1");
        let route = run(&spec, &ProbeOptions::default()).await;
        assert!(route.reached, "{route:?}");
        assert_eq!(route.hop_count, Some(1));
        assert_eq!(route.hops[0].address, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(route.probes_sent, 3);
        assert!(route.hops[0].rtts_ms.iter().all(Option::is_some));
    }
}
