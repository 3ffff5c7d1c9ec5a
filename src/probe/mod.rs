//! Probe engine: HTTP(S), TCP, ICMP ping and DNS checks with per-phase timing.
//!
//! Entry point is [`run`], which never panics: every failure (including an
//! internal panic, which is caught) is reported as a [`ProbeResult`] with
//! `up == false` and a [`Failure`].
//!
//! # Timing model
//! All times are `f64` milliseconds (microsecond resolution).
//!
//! [`Phases`] holds the **duration** of each phase; a phase that did not
//! happen is `None` (never `0`):
//! * `dns_ms` — name resolution (`None` when the host is an IP literal),
//! * `connect_ms` — TCP connect (including failed or slower attempts on other
//!   addresses of the same host, raced as [`connect`] describes),
//! * `tls_ms` — TLS handshake (`None` for `http://`),
//! * `first_byte_ms` — from the request being fully written to the first
//!   response byte (server think time + one round trip); with HTTP/2, the
//!   first byte of a frame of the request's stream (the server's connection
//!   SETTINGS do not count),
//! * `total_ms` — the whole check, from start to end (all redirect hops,
//!   body read included).
//!
//! [`Timeline`] holds the same events **cumulatively** from the start of the
//! check, with the same meaning as curl's `-w` variables
//! (`time_namelookup`, `time_connect`, `time_appconnect`,
//! `time_starttransfer`).
//!
//! For HTTP checks that follow redirects, `phases`/`timeline` and
//! `resolved_address` describe the **first hop**; `total_ms` covers all hops;
//! the facts in [`HttpFacts`] (status, size, certificate, CDN) describe the
//! **final** response.

pub mod connect;
pub mod credential;
pub mod dns;
pub mod http;
pub mod ping;
pub mod resolve;
mod stub;
pub mod tcp;
pub mod timing;
mod tls;
pub mod trace;

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use dns::{DnsFacts, DnsSpec, RecordType};
pub use http::{Auth, CdnInfo, HttpFacts, HttpSpec, HttpVersion, StatusRanges, StatusRangesError};
pub use ping::{PingMethod, PingMode, PingSpec, PingStats};
pub use tcp::TcpSpec;
pub use timing::{Phases, Timeline};

/// What to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeSpec {
    Http(HttpSpec),
    Tcp(TcpSpec),
    Ping(PingSpec),
    Dns(DnsSpec),
}

/// The kind of probe (also used to parse targets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    Http,
    Tcp,
    Ping,
    Dns,
}

impl ProbeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Http => "http",
            ProbeKind::Tcp => "tcp",
            ProbeKind::Ping => "ping",
            ProbeKind::Dns => "dns",
        }
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProbeKind {
    type Err = TargetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "http" | "https" => Ok(ProbeKind::Http),
            "tcp" => Ok(ProbeKind::Tcp),
            "ping" | "icmp" => Ok(ProbeKind::Ping),
            "dns" => Ok(ProbeKind::Dns),
            other => Err(TargetError::UnknownKind(other.to_string())),
        }
    }
}

/// Which address family to use when a name resolves to several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IpPreference {
    /// Both families, raced as RFC 8305 describes (see [`connect`]).
    #[default]
    Any,
    V4,
    V6,
}

impl FromStr for IpPreference {
    type Err = TargetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "any" | "" => Ok(IpPreference::Any),
            "v4" | "4" | "ipv4" => Ok(IpPreference::V4),
            "v6" | "6" | "ipv6" => Ok(IpPreference::V6),
            other => Err(TargetError::InvalidIpPreference(other.to_string())),
        }
    }
}

impl IpPreference {
    pub(crate) fn allows(self, ip: &IpAddr) -> bool {
        match self {
            IpPreference::Any => true,
            IpPreference::V4 => ip.is_ipv4(),
            IpPreference::V6 => ip.is_ipv6(),
        }
    }
}

/// Options shared by all probe kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOptions {
    /// Nameserver (`ip:port`, UDP+TCP) to use instead of the system resolver
    /// configuration. `/etc/hosts` is honoured either way for host lookups
    /// (not for [`DnsSpec`] checks, which always query DNS).
    pub nameserver: Option<SocketAddr>,
    pub ip_preference: IpPreference,
    /// Bound on the whole check (for ping: on waiting for the last reply,
    /// i.e. the probe takes at most `(count-1)*interval + timeout`).
    pub timeout: Duration,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions { nameserver: None, ip_preference: IpPreference::Any, timeout: Duration::from_secs(10) }
    }
}

/// Why a check is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The overall check timeout expired (or no ping reply arrived).
    Timeout,
    /// Name resolution failed (NXDOMAIN, no address of the wanted family, resolver error).
    Dns,
    /// DNS check: answers did not match the expected ones.
    DnsMismatch,
    /// TCP connection refused (RST).
    Refused,
    /// Other TCP connect failure (unreachable, ...).
    Connect,
    TlsExpired,
    TlsNameMismatch,
    TlsUntrusted,
    /// Other TLS failure.
    Tls,
    /// Status code outside the expected ranges.
    HttpStatus,
    /// Keyword present/absent contrary to expectation.
    Keyword,
    TooManyRedirects,
    /// Malformed / truncated response.
    Protocol,
    /// Response header block larger than the cap.
    HeadersTooLarge,
    /// Response body larger than the cap.
    BodyTooLarge,
    /// TCP check with `expect_closed`: the port was open.
    PortOpen,
    /// ICMP sockets not allowed for this process.
    NotPermitted,
    /// Synthetic step: an expectation (time, header, JSON value, extraction) not met.
    Assertion,
    /// Synthetic browser step: the page did not do what the step expects.
    Browser,
    /// Synthetic browser step on a host without Chromium.
    NoBrowser,
    /// Invalid spec or anything else (I/O errors mid-response, internal errors).
    Other,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::Dns => "dns",
            FailureKind::DnsMismatch => "dns_mismatch",
            FailureKind::Refused => "refused",
            FailureKind::Connect => "connect",
            FailureKind::TlsExpired => "tls_expired",
            FailureKind::TlsNameMismatch => "tls_name_mismatch",
            FailureKind::TlsUntrusted => "tls_untrusted",
            FailureKind::Tls => "tls",
            FailureKind::HttpStatus => "http_status",
            FailureKind::Keyword => "keyword",
            FailureKind::TooManyRedirects => "too_many_redirects",
            FailureKind::Protocol => "protocol",
            FailureKind::HeadersTooLarge => "headers_too_large",
            FailureKind::BodyTooLarge => "body_too_large",
            FailureKind::PortOpen => "port_open",
            FailureKind::NotPermitted => "not_permitted",
            FailureKind::Assertion => "assertion",
            FailureKind::Browser => "browser",
            FailureKind::NoBrowser => "no_browser",
            FailureKind::Other => "other",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure with a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure { kind, message: message.into() }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// Result of probing one address when `HttpSpec::probe_all_addresses` is set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AddressResult {
    pub address: IpAddr,
    pub up: bool,
    pub phases: Phases,
    pub status: Option<u16>,
    pub failure: Option<Failure>,
}

/// Outcome of one check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeResult {
    pub up: bool,
    pub kind: ProbeKind,
    pub target: String,
    pub started_at: DateTime<Utc>,
    pub phases: Phases,
    /// Cumulative timings (curl-style), HTTP and TCP only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Timeline>,
    pub resolved_address: Option<IpAddr>,
    /// `IPv4` or `IPv6`: the family of `resolved_address` (HTTP and TCP), the
    /// one that answered when several were raced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_family: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpFacts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping: Option<PingStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsFacts>,
    pub failure: Option<Failure>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_address: Vec<AddressResult>,
}

impl ProbeResult {
    pub(crate) fn new(kind: ProbeKind, target: String, started_at: DateTime<Utc>) -> Self {
        ProbeResult {
            up: false,
            kind,
            target,
            started_at,
            phases: Phases::default(),
            timeline: None,
            resolved_address: None,
            ip_family: None,
            http: None,
            ping: None,
            dns: None,
            failure: None,
            per_address: Vec::new(),
        }
    }

    /// Convenience: the failure kind, if down.
    pub fn failure_kind(&self) -> Option<FailureKind> {
        self.failure.as_ref().map(|f| f.kind)
    }
}

/// Errors from parsing user-supplied targets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("empty target")]
    Empty,
    #[error("unknown probe kind `{0}`; use http, tcp, ping or dns")]
    UnknownKind(String),
    #[error("invalid URL `{}`: {reason}", display_url(.input))]
    InvalidUrl { input: String, reason: String },
    #[error("unsupported scheme `{0}`; use http:// or https://")]
    UnsupportedScheme(String),
    #[error("URL `{}` has no host", display_url(.0))]
    MissingHost(String),
    #[error("`{0}` has no port; use host:port, e.g. `{0}:443`")]
    MissingPort(String),
    #[error("invalid port in `{0}`; expected 1-65535")]
    InvalidPort(String),
    #[error("invalid host `{0}`")]
    InvalidHost(String),
    #[error("unsupported DNS record type `{0}`; use one of A, AAAA, CNAME, MX, TXT, NS, SOA, PTR, SRV, CAA")]
    UnsupportedRecordType(String),
    #[error("invalid IP preference `{0}`; use any, v4 or v6")]
    InvalidIpPreference(String),
}

impl crate::error::Coded for TargetError {
    fn exit(&self) -> crate::error::Exit {
        crate::error::Exit::Input
    }
}

impl ProbeSpec {
    pub fn kind(&self) -> ProbeKind {
        match self {
            ProbeSpec::Http(_) => ProbeKind::Http,
            ProbeSpec::Tcp(_) => ProbeKind::Tcp,
            ProbeSpec::Ping(_) => ProbeKind::Ping,
            ProbeSpec::Dns(_) => ProbeKind::Dns,
        }
    }

    /// Human-readable target (URL, `host:port`, host, or `name TYPE`).
    pub fn target(&self) -> String {
        match self {
            ProbeSpec::Http(s) => s.url.clone(),
            ProbeSpec::Tcp(s) => s.target(),
            ProbeSpec::Ping(s) => s.host.clone(),
            ProbeSpec::Dns(s) => format!("{} {}", s.name, s.record_type),
        }
    }

    /// Bad input: the target is an IP literal of the family `preference`
    /// excludes (`-4` with `[::1]`); says so and how to fix it.
    pub fn literal_conflict(&self, preference: IpPreference) -> Option<String> {
        let host = match self {
            ProbeSpec::Http(s) => http::parse_url(&s.url).ok()?.host_str()?.to_string(),
            ProbeSpec::Tcp(s) => s.host.clone(),
            ProbeSpec::Ping(s) => s.host.clone(),
            ProbeSpec::Dns(_) => return None,
        };
        connect::literal_conflict(&host, preference)
    }

    /// Parse a CLI target into a spec with default settings:
    /// * http: a URL (`http://` or `https://`; a bare `host[/path]` gets `https://`),
    /// * tcp: `host:port` or `[v6]:port`,
    /// * ping: a host name or IP address,
    /// * dns: `name` (A record) or `name TYPE` / `name/TYPE` (e.g. `example.com MX`).
    pub fn parse_target(kind: ProbeKind, target: &str) -> Result<ProbeSpec, TargetError> {
        match kind {
            ProbeKind::Http => HttpSpec::parse(target).map(ProbeSpec::Http),
            ProbeKind::Tcp => TcpSpec::parse(target).map(ProbeSpec::Tcp),
            ProbeKind::Ping => PingSpec::parse(target).map(ProbeSpec::Ping),
            ProbeKind::Dns => DnsSpec::parse(target).map(ProbeSpec::Dns),
        }
    }
}

/// The one rule for host names: RFC 1123 labels (letters, digits and `-`, neither first nor
/// last; 1 to 63 characters, 253 in all). DNS names may also hold `_` labels
/// (`_dmarc.example.com`): `allow_underscore`. Stored monitors, DNS checks and zone names use it.
pub fn check_hostname(host: &str, allow_underscore: bool) -> Result<(), String> {
    if host.is_empty() || host.len() > 253 {
        return Err("host name must be 1 to 253 characters".into());
    }
    for label in host.split('.') {
        let ok_chars = label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || (allow_underscore && c == '_'));
        if label.is_empty() || label.len() > 63 || !ok_chars || label.starts_with('-') || label.ends_with('-') {
            return Err(format!("`{host}` is not a valid host name"));
        }
    }
    Ok(())
}

/// Validate a bare host (name or IP, IPv6 optionally in brackets); returns it without brackets.
pub(crate) fn parse_host(input: &str) -> Result<String, TargetError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(TargetError::Empty);
    }
    let unbracketed = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(s);
    if unbracketed.parse::<IpAddr>().is_ok() {
        return Ok(unbracketed.to_string());
    }
    match url::Host::parse(s) {
        Ok(url::Host::Domain(d)) => Ok(d),
        Ok(url::Host::Ipv4(ip)) => Ok(ip.to_string()),
        Ok(url::Host::Ipv6(ip)) => Ok(ip.to_string()),
        Err(_) => Err(TargetError::InvalidHost(s.to_string())),
    }
}

/// Run one check. Never panics: failures (and caught panics) are results.
/// Must be called within a Tokio runtime.
pub async fn run(spec: &ProbeSpec, opts: &ProbeOptions) -> ProbeResult {
    let started_at = Utc::now();
    // In the caller's task (a task per check costs more than a local check does), with a panic caught
    // at each poll.
    let mut inner = std::pin::pin!(run_inner(spec, opts));
    let caught = std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(r)) => std::task::Poll::Ready(Ok(r)),
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    })
    .await;
    match caught {
        Ok(r) => without_password(r, spec),
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            let mut r = ProbeResult::new(spec.kind(), spec.target(), started_at);
            r.phases.total_ms = timing::ms((Utc::now() - started_at).to_std().unwrap_or_default());
            r.failure = Some(Failure::new(FailureKind::Other, format!("internal error: the check failed: {why}")));
            r
        }
    }
}

/// A URL as it may be shown: a password in its user information replaced by `****`. Not a URL
/// (or none to hide): unchanged.
pub fn display_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some(credential::MASK));
            url.to_string()
        }
        _ => text.to_string(),
    }
}

/// The result with the target URL's password taken out of everything it shows: the target,
/// the final URL and the failure messages (which may quote the URL).
fn without_password(mut r: ProbeResult, spec: &ProbeSpec) -> ProbeResult {
    let ProbeSpec::Http(http) = spec else { return r };
    // Only a URL with user information (`user:password@`) has a password: without an `@` there is
    // none, and parsing the URL again after every check is a few thousand instructions for nothing.
    if !http.url.contains('@') {
        return r;
    }
    let Some(password) = url::Url::parse(&http.url).ok().and_then(|u| u.password().map(str::to_string)) else {
        return r;
    };
    let clean = |text: &str| credential::scrub(&display_url(text), &password);
    r.target = clean(&r.target);
    if let Some(facts) = r.http.as_mut() {
        facts.final_url = clean(&facts.final_url);
    }
    if let Some(failure) = r.failure.as_mut() {
        failure.message = clean(&failure.message);
    }
    for address in &mut r.per_address {
        if let Some(failure) = address.failure.as_mut() {
            failure.message = clean(&failure.message);
        }
    }
    r
}

async fn run_inner(spec: &ProbeSpec, opts: &ProbeOptions) -> ProbeResult {
    match spec {
        ProbeSpec::Http(s) => http::run(s, opts).await,
        ProbeSpec::Tcp(s) => tcp::run(s, opts).await,
        ProbeSpec::Ping(s) => ping::run(s, opts).await,
        ProbeSpec::Dns(s) => dns::run(s, opts).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_targets_per_kind() {
        match ProbeSpec::parse_target(ProbeKind::Http, "https://example.com/health").unwrap() {
            ProbeSpec::Http(s) => {
                assert_eq!(s.url, "https://example.com/health");
                assert_eq!(s.max_redirects, 5);
                assert_eq!(s.method, "GET");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            ProbeSpec::parse_target(ProbeKind::Http, "ftp://example.com/").unwrap_err().to_string(),
            "unsupported scheme `ftp`; use http:// or https://"
        );
        let tcp = ProbeSpec::parse_target(ProbeKind::Tcp, "db.internal:5432").unwrap();
        assert_eq!(tcp.target(), "db.internal:5432");
        assert_eq!(tcp.kind(), ProbeKind::Tcp);
        assert_eq!(
            ProbeSpec::parse_target(ProbeKind::Tcp, "db.internal").unwrap_err().to_string(),
            "`db.internal` has no port; use host:port, e.g. `db.internal:443`"
        );
        assert_eq!(ProbeSpec::parse_target(ProbeKind::Ping, "[2001:db8::1]").unwrap().target(), "2001:db8::1");
        assert!(ProbeSpec::parse_target(ProbeKind::Ping, "bad host!").is_err());
        assert_eq!(ProbeSpec::parse_target(ProbeKind::Dns, "example.com/mx").unwrap().target(), "example.com MX");
        assert_eq!("ICMP".parse::<ProbeKind>().unwrap(), ProbeKind::Ping);
        assert!("smtp".parse::<ProbeKind>().is_err());
        assert_eq!("v6".parse::<IpPreference>().unwrap(), IpPreference::V6);
        assert!("v5".parse::<IpPreference>().is_err());
    }

    #[test]
    fn failure_kinds_serialize_snake_case() {
        use FailureKind::*;
        for k in [
            Timeout,
            Dns,
            DnsMismatch,
            Refused,
            Connect,
            TlsExpired,
            TlsNameMismatch,
            TlsUntrusted,
            Tls,
            HttpStatus,
            Keyword,
            TooManyRedirects,
            Protocol,
            HeadersTooLarge,
            BodyTooLarge,
            PortOpen,
            NotPermitted,
            Assertion,
            Browser,
            NoBrowser,
            Other,
        ] {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
            assert_eq!(serde_json::from_str::<FailureKind>(&json).unwrap(), k);
        }
        assert_eq!(serde_json::to_string(&ProbeKind::Http).unwrap(), "\"http\"");
    }
}
