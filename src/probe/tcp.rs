//! TCP port probe: DNS + connect time.
//!
//! Up when the port accepts a connection, or — with `expect_closed` — when it
//! does not (refused, unreachable or no answer within the timeout).

use std::net::SocketAddr;

use chrono::Utc;

use super::connect::{dial, family, DialTimes};
use super::timing::{ms, Clock, Timeline};
use super::{parse_host, Failure, FailureKind, ProbeKind, ProbeOptions, ProbeResult, TargetError};

/// A TCP check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSpec {
    pub host: String,
    pub port: u16,
    /// Up when the port is NOT open.
    pub expect_closed: bool,
}

impl TcpSpec {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        TcpSpec { host: host.into(), port, expect_closed: false }
    }

    /// `host:port` (IPv6 as `[addr]:port`).
    pub fn target(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Parse `host:port` or `[v6]:port`.
    pub fn parse(target: &str) -> Result<Self, TargetError> {
        let s = target.trim();
        if s.is_empty() {
            return Err(TargetError::Empty);
        }
        if let Ok(sa) = s.parse::<SocketAddr>() {
            if sa.port() == 0 {
                return Err(TargetError::InvalidPort(s.to_string()));
            }
            return Ok(TcpSpec::new(sa.ip().to_string(), sa.port()));
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || (h.starts_with('[') && h.ends_with(']')) => (h, p),
            _ => return Err(TargetError::MissingPort(s.to_string())),
        };
        let port: u16 = match port.parse() {
            Ok(p) if p > 0 => p,
            _ => return Err(TargetError::InvalidPort(s.to_string())),
        };
        Ok(TcpSpec::new(parse_host(host)?, port))
    }
}

/// Run a TCP check.
pub async fn run(spec: &TcpSpec, opts: &ProbeOptions) -> ProbeResult {
    let started_at = Utc::now();
    let clock = Clock::start();
    let mut r = ProbeResult::new(ProbeKind::Tcp, spec.target(), started_at);
    let mut times = DialTimes::default();

    let res = tokio::time::timeout(opts.timeout, dial(&spec.host, spec.port, opts, None, &mut times)).await;
    let outcome = match res {
        Ok(o) => o.map(|(_stream, addr)| addr),
        Err(_) => Err(Failure::new(
            FailureKind::Timeout,
            format!("no connection to {} within {} ms", spec.target(), opts.timeout.as_millis()),
        )),
    };

    r.phases.dns_ms = times.dns.map(ms);
    r.phases.connect_ms = times.connect.map(ms);
    r.resolved_address = times.address;
    r.ip_family = times.address.as_ref().map(|ip| family(ip).to_string());
    r.timeline = Some(Timeline {
        namelookup_ms: times.dns_done.map(|i| clock.since_start(i)),
        connect_ms: times.connect_done.map(|i| clock.since_start(i)),
        ..Timeline::default()
    });
    match (outcome, spec.expect_closed) {
        (Ok(_), false) => r.up = true,
        (Ok(sa), true) => {
            r.failure = Some(Failure::new(FailureKind::PortOpen, format!("port {sa} is open but expected closed")))
        }
        (Err(f), false) => r.failure = Some(f),
        (Err(f), true) => {
            // Name resolution failures still fail: we could not check the port.
            if matches!(f.kind, FailureKind::Dns | FailureKind::Other) {
                r.failure = Some(f);
            } else {
                r.up = true;
            }
        }
    }
    r.phases.total_ms = clock.elapsed_ms();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_targets() {
        assert_eq!(TcpSpec::parse("example.com:443").unwrap(), TcpSpec::new("example.com", 443));
        assert_eq!(TcpSpec::parse("[::1]:22").unwrap(), TcpSpec::new("::1", 22));
        assert_eq!(TcpSpec::parse("10.0.0.1:80").unwrap().target(), "10.0.0.1:80");
        assert_eq!(TcpSpec::parse("::1").unwrap_err(), TargetError::MissingPort("::1".into()));
        assert!(matches!(TcpSpec::parse("example.com"), Err(TargetError::MissingPort(_))));
        assert!(matches!(TcpSpec::parse("example.com:0"), Err(TargetError::InvalidPort(_))));
        assert!(matches!(TcpSpec::parse("example.com:99999"), Err(TargetError::InvalidPort(_))));
        assert_eq!(TcpSpec::new("::1", 22).target(), "[::1]:22");
    }
}
