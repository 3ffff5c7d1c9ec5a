//! Resolving a host and opening one TCP connection to it: the connect routine
//! of the HTTP and TCP probes.
//!
//! With several addresses the attempts race as RFC 8305 (Happy Eyeballs v2)
//! describes: the families are interleaved, IPv6 first (resolver order within
//! a family); a new attempt starts when the previous one fails
//! or after [`ATTEMPT_DELAY`] without an answer, and the first connection
//! made wins (the others are dropped). A host whose IPv6 address silently
//! drops packets is therefore reached over IPv4 a quarter second later
//! instead of being reported down.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::resolve::resolve_host;
use super::{Failure, FailureKind, IpPreference, ProbeOptions};

/// RFC 8305's "Connection Attempt Delay" (its recommended default).
pub const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// An address already resolved (by the caller), to connect to without a lookup.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pinned {
    pub ip: IpAddr,
    pub dns: Option<Duration>,
    pub dns_done: Option<Instant>,
}

/// What dialing measured so far; filled in as it goes, so that a check cut
/// short by its timeout still reports the phases that completed.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct DialTimes {
    pub dns: Option<Duration>,
    pub dns_done: Option<Instant>,
    pub connect: Option<Duration>,
    pub connect_done: Option<Instant>,
    /// The address connected to, or the last one tried.
    pub address: Option<IpAddr>,
}

/// `IPv4` or `IPv6`, as reported in results.
pub fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// Bad input: an IP literal of the family the preference excludes (`-4` with
/// `[::1]`, `-6` with `127.0.0.1`). Names are filtered by the lookup instead.
pub fn literal_conflict(host: &str, preference: IpPreference) -> Option<String> {
    let ip = super::resolve::ip_literal(host)?;
    if preference.allows(&ip) {
        return None;
    }
    let (wanted, flag) = match preference {
        IpPreference::V4 => ("IPv4", "-4/--ipv4"),
        _ => ("IPv6", "-6/--ipv6"),
    };
    Some(format!(
        "{ip} is an {} address but {flag} asks for {wanted} only; drop the flag or use an {wanted} address",
        family(&ip)
    ))
}

/// Resolve `host` (unless `pinned`) and connect to `port`.
pub(crate) async fn dial(
    host: &str,
    port: u16,
    opts: &ProbeOptions,
    pinned: Option<Pinned>,
    times: &mut DialTimes,
) -> Result<(TcpStream, SocketAddr), Failure> {
    let addrs = match pinned {
        Some(p) => {
            times.dns = p.dns;
            times.dns_done = p.dns_done;
            vec![p.ip]
        }
        None => {
            if let Some(message) = literal_conflict(host, opts.ip_preference) {
                return Err(Failure::new(FailureKind::Other, message));
            }
            let res = resolve_host(host, opts).await;
            let done = Instant::now();
            let dns = match &res {
                Ok(r) => r.dns,
                Err(e) => e.elapsed(),
            };
            times.dns = dns;
            times.dns_done = dns.map(|_| done);
            res.map_err(|e| Failure::new(e.kind(), e.to_string()))?.addrs
        }
    };
    let start = Instant::now();
    let (stream, addr) = race(&interleave(&addrs), port, times).await?;
    let done = Instant::now();
    times.connect = Some(done - start);
    times.connect_done = Some(done);
    times.address = Some(addr.ip());
    Ok((stream, addr))
}

/// RFC 8305 section 4: alternate the families, IPv6 first.
fn interleave(addrs: &[IpAddr]) -> Vec<IpAddr> {
    let (mut lead, mut other): (Vec<IpAddr>, Vec<IpAddr>) = addrs.iter().partition(|ip| ip.is_ipv6());
    lead.reverse();
    other.reverse();
    let mut out = Vec::with_capacity(addrs.len());
    while !lead.is_empty() || !other.is_empty() {
        out.extend(lead.pop());
        out.extend(other.pop());
    }
    out
}

fn connect_failure(addr: SocketAddr, e: &io::Error) -> Failure {
    let kind = if e.kind() == io::ErrorKind::ConnectionRefused { FailureKind::Refused } else { FailureKind::Connect };
    Failure::new(kind, format!("connect to {addr} failed: {e}"))
}

/// Staggered attempts; the first connection wins.
async fn race(order: &[IpAddr], port: u16, times: &mut DialTimes) -> Result<(TcpStream, SocketAddr), Failure> {
    let Some(&first) = order.first() else {
        return Err(Failure::new(FailureKind::Connect, "no address to connect to"));
    };
    times.address = Some(first);
    if order.len() == 1 {
        // The common case needs no task and no timer.
        let addr = SocketAddr::new(first, port);
        return TcpStream::connect(addr).await.map(|s| (s, addr)).map_err(|e| connect_failure(addr, &e));
    }
    let mut attempts: JoinSet<(SocketAddr, io::Result<TcpStream>)> = JoinSet::new();
    let mut next = 0usize;
    let mut last_failure: Option<Failure> = None;
    let mut next_start = Instant::now();
    loop {
        if next < order.len() && (attempts.is_empty() || Instant::now() >= next_start) {
            let addr = SocketAddr::new(order[next], port);
            times.address = Some(addr.ip());
            attempts.spawn(async move { (addr, TcpStream::connect(addr).await) });
            next += 1;
            next_start = Instant::now() + ATTEMPT_DELAY;
        }
        if attempts.is_empty() {
            return Err(last_failure.unwrap_or_else(|| Failure::new(FailureKind::Connect, "no address answered")));
        }
        let more = next < order.len();
        tokio::select! {
            joined = attempts.join_next() => match joined {
                Some(Ok((addr, Ok(stream)))) => return Ok((stream, addr)),
                Some(Ok((addr, Err(e)))) => {
                    last_failure = Some(connect_failure(addr, &e));
                    // A failed attempt lets the next one start at once.
                    next_start = Instant::now();
                }
                Some(Err(e)) => last_failure = Some(Failure::new(FailureKind::Other, format!("connect task failed: {e}"))),
                None => {}
            },
            _ = tokio::time::sleep_until(next_start.into()), if more => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_alternate_ipv6_first() {
        let ips: Vec<IpAddr> =
            ["192.0.2.1", "2001:db8::1", "2001:db8::2", "192.0.2.2"].iter().map(|s| s.parse().unwrap()).collect();
        let order: Vec<String> = interleave(&ips).iter().map(ToString::to_string).collect();
        assert_eq!(order, ["2001:db8::1", "192.0.2.1", "2001:db8::2", "192.0.2.2"]);
        let v4only: Vec<IpAddr> = ["192.0.2.1", "192.0.2.2"].iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(interleave(&v4only), v4only);
    }

    #[test]
    fn literal_of_the_excluded_family_is_named() {
        assert!(literal_conflict("::1", IpPreference::V4).unwrap().contains("-4/--ipv4"));
        assert!(literal_conflict("[::1]", IpPreference::V4).is_some());
        assert!(literal_conflict("127.0.0.1", IpPreference::V6).unwrap().contains("-6/--ipv6"));
        assert_eq!(literal_conflict("127.0.0.1", IpPreference::V4), None);
        assert_eq!(literal_conflict("example.com", IpPreference::V6), None);
        assert_eq!(literal_conflict("::1", IpPreference::Any), None);
    }
}
