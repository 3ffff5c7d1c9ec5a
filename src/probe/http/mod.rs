//! HTTP(S) probe: geoctl's own DNS lookup, TCP connect and TLS handshake
//! (each timed), then one request over that connection with hyper's
//! connection-level client, HTTP/1.1 or HTTP/2 as ALPN settles it.
//!
//! * [`request`]: the request (default headers, auth, body);
//!   `Accept-Encoding: gzip, deflate, br, zstd` unless the spec sets one.
//! * [`response`]: the body, read within `max_body_bytes` on the wire and
//!   decoded, its content coding decoded before the keyword search;
//!   `response_size` is the wire size, `decoded_size` the decoded one.
//! * [`redirect`]: 301/302/303/307/308 with `Location` are followed up to
//!   `max_redirects`, each on a new connection; one more is
//!   [`FailureKind::TooManyRedirects`]; credentials stay with their origin.
//!   With `max_redirects == 0` the 3xx is judged like any other response.
//! * [`cdn`]: CDN facts from the final response's headers.
//! * [`transport`]: the timed stream under hyper (first-byte time).
//!
//! Limits: header block ≤ 64 KiB ([`FailureKind::HeadersTooLarge`]); body ≤
//! `max_body_bytes` ([`FailureKind::BodyTooLarge`]); the first 1 MiB of the
//! decoded body is kept for the keyword search; the whole check (all hops) is
//! bounded by `ProbeOptions::timeout`. A response cut short of its framing
//! (Content-Length, chunked, HTTP/2 END_STREAM), including a TLS stream that
//! ends without close_notify, is [`FailureKind::Protocol`].
//! Phases and `resolved_address` are those of the first hop; `total_ms` and
//! the facts (status, size, certificate, CDN) are of the final response.

mod cdn;
mod redirect;
mod request;
mod response;
mod transport;

pub use cdn::{detect_cdn, CdnInfo};
pub(crate) use response::contains;

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rustls::pki_types::ServerName;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinSet;
use url::{Host, Url};

use super::connect::{dial, family, literal_conflict, DialTimes, Pinned};
use super::resolve::resolve_host;
use super::timing::{ms, Clock, Phases, Timeline};
use super::{tls, AddressResult, Failure, FailureKind, ProbeKind, ProbeOptions, ProbeResult, TargetError};
use redirect::{is_redirect, Hop};
use response::{BodyError, BodySink};
use transport::{exchange, Conn, SharedMarks, Wire, MAX_HEADER_FIELDS};

/// Maximum size of the response header block (HTTP/2: of the header list).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// How much of the body is kept for the keyword search.
pub const KEEP_BODY_BYTES: usize = 1024 * 1024;
/// Default cap on the response body size.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 8 * 1024 * 1024;
/// Default redirect limit.
pub const DEFAULT_MAX_REDIRECTS: u32 = 5;

/// Request authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Auth {
    #[default]
    None,
    Basic {
        user: String,
        pass: String,
    },
    Bearer(String),
}

/// Which HTTP version to speak.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpVersion {
    /// https: HTTP/2 when the server agrees (ALPN `h2,http/1.1`), else HTTP/1.1; http: HTTP/1.1.
    #[default]
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only (https: ALPN `h2`; http: cleartext HTTP/2 with prior knowledge).
    Http2,
}

impl HttpVersion {
    /// The ALPN protocols offered in the TLS handshake.
    pub(crate) fn alpn(self) -> &'static [&'static [u8]] {
        match self {
            HttpVersion::Auto => &[b"h2", b"http/1.1"],
            HttpVersion::Http1 => &[b"http/1.1"],
            HttpVersion::Http2 => &[b"h2"],
        }
    }
}

impl FromStr for HttpVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(HttpVersion::Auto),
            "1.1" | "http/1.1" | "http1" | "1" => Ok(HttpVersion::Http1),
            "2" | "http/2" | "http2" | "h2" => Ok(HttpVersion::Http2),
            other => Err(format!("unknown HTTP version `{other}`; use auto, 1.1 or 2")),
        }
    }
}

/// The methods a stored check may use (a monitor's `--method`, a synthetic step's `method`),
/// upper-cased; the error names them.
pub fn parse_method(text: &str) -> Result<String, String> {
    let upper = text.to_ascii_uppercase();
    match upper.as_str() {
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => Ok(upper),
        _ => Err(format!("unsupported method `{text}`; use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS")),
    }
}

/// An HTTP check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSpec {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Request method (e.g. `GET`, `HEAD`, `POST`).
    pub method: String,
    /// Extra request headers. A user `Host`, `User-Agent`, `Accept` or
    /// `Accept-Encoding` replaces the default one.
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub auth: Auth,
    /// Accepted final status codes (default `200-399`).
    pub expected_status: StatusRanges,
    /// `(keyword, present)`: the body must contain (`true`) or must not
    /// contain (`false`) the keyword (searched in the first 1 MiB).
    pub keyword: Option<(String, bool)>,
    pub max_redirects: u32,
    /// Probe every resolved address of the host (concurrently); the check is
    /// up only if all addresses are up. Details in `ProbeResult::per_address`.
    pub probe_all_addresses: bool,
    /// Additional trusted root CA certificates (PEM), on top of the webpki roots.
    pub extra_root_ca_pem: Option<Vec<u8>>,
    /// Body size cap, on the wire and decoded; larger bodies fail with `body_too_large`.
    pub max_body_bytes: u64,
    /// HTTP version to speak.
    pub version: HttpVersion,
    /// Keep the final response's headers and first [`KEEP_BODY_BYTES`] decoded body bytes for
    /// the caller ([`run_reading`]): synthetic steps judge and extract from them.
    pub keep_response: bool,
}

impl HttpSpec {
    /// A GET check of `url` with default settings (URL not validated here;
    /// use [`HttpSpec::parse`] for that).
    pub fn new(url: impl Into<String>) -> Self {
        HttpSpec {
            url: url.into(),
            method: "GET".into(),
            headers: Vec::new(),
            body: None,
            auth: Auth::None,
            expected_status: StatusRanges::default(),
            keyword: None,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            probe_all_addresses: false,
            extra_root_ca_pem: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            version: HttpVersion::Auto,
            keep_response: false,
        }
    }

    /// Validate a URL target; a target without `scheme://` gets `https://`.
    pub fn parse(target: &str) -> Result<Self, TargetError> {
        let url = parse_url(target)?;
        Ok(HttpSpec::new(url.to_string()))
    }
}

/// Parse and validate an http(s) URL.
pub fn parse_url(target: &str) -> Result<Url, TargetError> {
    let s = target.trim();
    if s.is_empty() {
        return Err(TargetError::Empty);
    }
    let full = if s.contains("://") { s.to_string() } else { format!("https://{s}") };
    let url = Url::parse(&full).map_err(|e| TargetError::InvalidUrl { input: s.to_string(), reason: e.to_string() })?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(TargetError::UnsupportedScheme(other.to_string())),
    }
    match url.host() {
        None | Some(Host::Domain("")) => Err(TargetError::MissingHost(s.to_string())),
        Some(_) => Ok(url),
    }
}

// ---------------------------------------------------------------------------
// Status ranges

/// A set of accepted status codes, parsed from e.g. `200-299,301`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRanges(Vec<(u16, u16)>);

/// Error parsing [`StatusRanges`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid status ranges `{input}`: {reason} (expected e.g. `200-299,301`)")]
pub struct StatusRangesError {
    pub input: String,
    pub reason: String,
}

impl crate::error::Coded for StatusRangesError {
    fn exit(&self) -> crate::error::Exit {
        crate::error::Exit::Input
    }
}

impl StatusRanges {
    pub fn new(ranges: Vec<(u16, u16)>) -> Self {
        StatusRanges(ranges)
    }
    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.0
    }
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| lo <= status && status <= hi)
    }
}

impl Default for StatusRanges {
    fn default() -> Self {
        StatusRanges(vec![(200, 399)])
    }
}

impl fmt::Display for StatusRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for StatusRanges {
    type Err = StatusRangesError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| StatusRangesError { input: s.to_string(), reason };
        let code = |t: &str| -> Result<u16, StatusRangesError> {
            let t = t.trim();
            match t.parse::<u16>() {
                Ok(c) if (100..=999).contains(&c) => Ok(c),
                _ => Err(err(format!("`{t}` is not a status code (100-999)"))),
            }
        };
        let mut out = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err(err("empty element".into()));
            }
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (code(a)?, code(b)?),
                None => {
                    let c = code(part)?;
                    (c, c)
                }
            };
            if lo > hi {
                return Err(err(format!("range `{part}` is reversed")));
            }
            out.push((lo, hi));
        }
        Ok(StatusRanges(out))
    }
}

impl Serialize for StatusRanges {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StatusRanges {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------
// Result facts

/// Facts about the (final) HTTP response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpFacts {
    /// `HTTP/1.1`, `HTTP/2`, ...; `None` if no response head was received.
    pub version: Option<String>,
    pub status: Option<u16>,
    /// Body bytes on the wire (after de-chunking, before content decoding).
    pub response_size: u64,
    /// The body's content coding that was decoded (`gzip`, `deflate`, `br`, `zstd`).
    #[serde(default)]
    pub content_encoding: Option<String>,
    /// Body bytes after content decoding (only when a coding was decoded).
    #[serde(default)]
    pub decoded_size: Option<u64>,
    /// notAfter of the server's leaf certificate (https; also set when
    /// verification failed, if the certificate was received).
    pub cert_expires_at: Option<DateTime<Utc>>,
    pub cdn: Option<CdnInfo>,
    /// Number of redirects followed.
    pub redirects: u32,
    /// URL of the final request.
    pub final_url: String,
}

// ---------------------------------------------------------------------------
// The check

#[derive(Debug, Default, Clone, Copy)]
struct HopTiming {
    dial: DialTimes,
    tls: Option<Duration>,
    tls_done: Option<Instant>,
    first_byte: Option<Duration>,
    first_byte_at: Option<Instant>,
}

struct State {
    stage: &'static str,
    first: HopTiming,
    /// The timing notes of the first hop's connection, while it is open.
    marks: Option<SharedMarks>,
    pinned: Option<Pinned>,
    version: Option<String>,
    status: Option<u16>,
    headers: Vec<(String, String)>,
    cert_expires_at: Option<DateTime<Utc>>,
    redirects: u32,
    final_url: String,
    body: Option<BodySink>,
    /// The timing of a later hop's dial (a redirect), while it is under way.
    later_dial: DialTimes,
}

/// The stage from a hop's dial to its connection: the name is looked up first, unless the address
/// is known ([`State::resolving`] tells which part a timeout cut short).
const CONNECTING: &str = "connecting";

impl State {
    /// Whether the hop being connected is still waiting for its host name's addresses.
    fn resolving(&self) -> bool {
        let (dial, pinned) =
            if self.redirects == 0 { (&self.first.dial, self.pinned.is_some()) } else { (&self.later_dial, false) };
        let named = url::Url::parse(&self.final_url).is_ok_and(|u| u.domain().is_some());
        named && !pinned && dial.dns_done.is_none()
    }

    /// Takes the first hop's request-written and first-byte instants from its connection's notes.
    fn note_first_byte(&mut self) {
        let Some(marks) = self.marks.as_ref() else {
            return;
        };
        let m = marks.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some(written), Some(first)) = (m.written, m.first_byte) {
            self.first.first_byte = Some(first.saturating_duration_since(written));
            self.first.first_byte_at = Some(first);
        }
    }
}

/// The final response as a caller that reads it sees it (only with
/// [`HttpSpec::keep_response`]): its headers, and its first [`KEEP_BODY_BYTES`]
/// decoded body bytes.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// One HTTP check of a single address that also hands back the final
/// response's headers and kept body (synthetic request steps). The spec's
/// `keep_response` decides whether the body is kept; `probe_all_addresses` is ignored.
pub async fn run_reading(spec: &HttpSpec, opts: &ProbeOptions) -> (ProbeResult, Response) {
    let started_at = Utc::now();
    let clock = Clock::start();
    match parse_url(&spec.url) {
        Ok(url) => check_reading(spec, opts, &url, None, started_at, clock).await,
        Err(e) => {
            let mut r = ProbeResult::new(ProbeKind::Http, spec.url.clone(), started_at);
            r.failure = Some(Failure::new(FailureKind::Other, e.to_string()));
            r.phases.total_ms = clock.elapsed_ms();
            (r, Response::default())
        }
    }
}

/// Run an HTTP check.
pub async fn run(spec: &HttpSpec, opts: &ProbeOptions) -> ProbeResult {
    let started_at = Utc::now();
    let clock = Clock::start();
    let url = match parse_url(&spec.url) {
        Ok(u) => u,
        Err(e) => {
            let mut r = ProbeResult::new(ProbeKind::Http, spec.url.clone(), started_at);
            r.failure = Some(Failure::new(FailureKind::Other, e.to_string()));
            r.phases.total_ms = clock.elapsed_ms();
            return r;
        }
    };
    if spec.probe_all_addresses {
        run_all_addresses(spec, opts, url, started_at, clock).await
    } else {
        check_single(spec, opts, &url, None, started_at, clock).await
    }
}

async fn run_all_addresses(
    spec: &HttpSpec,
    opts: &ProbeOptions,
    url: Url,
    started_at: DateTime<Utc>,
    clock: Clock,
) -> ProbeResult {
    let host = url.host_str().unwrap_or_default().to_string();
    let down = |failure: Failure, dns_ms: Option<f64>| {
        let mut r = ProbeResult::new(ProbeKind::Http, spec.url.clone(), started_at);
        r.phases.dns_ms = dns_ms;
        r.failure = Some(failure);
        r.phases.total_ms = clock.elapsed_ms();
        r
    };
    let host_unbracketed = host.trim_start_matches('[').trim_end_matches(']');
    if let Some(message) = literal_conflict(host_unbracketed, opts.ip_preference) {
        return down(Failure::new(FailureKind::Other, message), None);
    }
    let resolved = tokio::time::timeout(opts.timeout, resolve_host(&host, opts)).await;
    let dns_done = Instant::now();
    let resolved = match resolved {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return down(Failure::new(e.kind(), e.to_string()), e.elapsed().map(ms)),
        Err(_) => {
            let message = format!("resolving `{host}` timed out after {} ms", opts.timeout.as_millis());
            return down(Failure::new(FailureKind::Timeout, message), None);
        }
    };
    // The per-address checks share what is left of the overall timeout.
    let mut per_opts = opts.clone();
    per_opts.timeout = opts.timeout.saturating_sub(dns_done.duration_since(clock.started()));
    let mut set = JoinSet::new();
    for (i, ip) in resolved.addrs.iter().copied().enumerate() {
        let spec = spec.clone();
        let opts = per_opts.clone();
        let url = url.clone();
        let pinned = Pinned { ip, dns: resolved.dns, dns_done: resolved.dns.map(|_| dns_done) };
        set.spawn(async move { (i, check_single(&spec, &opts, &url, Some(pinned), started_at, clock).await) });
    }
    let mut results: Vec<(usize, ProbeResult)> = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(r) => results.push(r),
            Err(e) => tracing::warn!("per-address probe task failed: {e}"),
        }
    }
    results.sort_by_key(|(i, _)| *i);
    let per_address: Vec<AddressResult> = results
        .iter()
        .map(|(i, r)| AddressResult {
            address: resolved.addrs[*i],
            up: r.up,
            phases: r.phases,
            status: r.http.as_ref().and_then(|h| h.status),
            failure: r.failure.clone(),
        })
        .collect();
    let mut top = match results.first() {
        Some((_, r)) => r.clone(),
        None => down(Failure::new(FailureKind::Other, "no address was probed"), None),
    };
    let all_up = !per_address.is_empty() && per_address.iter().all(|a| a.up);
    top.up = all_up;
    if !all_up && top.failure.is_none() {
        if let Some(a) = per_address.iter().find(|a| !a.up) {
            if let Some(f) = &a.failure {
                top.failure = Some(Failure::new(f.kind, format!("{}: {}", a.address, f.message)));
            }
        }
    }
    top.per_address = per_address;
    top.phases.total_ms = clock.elapsed_ms();
    top
}

async fn check_single(
    spec: &HttpSpec,
    opts: &ProbeOptions,
    url: &Url,
    pinned: Option<Pinned>,
    started_at: DateTime<Utc>,
    clock: Clock,
) -> ProbeResult {
    check_reading(spec, opts, url, pinned, started_at, clock).await.0
}

async fn check_reading(
    spec: &HttpSpec,
    opts: &ProbeOptions,
    url: &Url,
    pinned: Option<Pinned>,
    started_at: DateTime<Utc>,
    clock: Clock,
) -> (ProbeResult, Response) {
    let mut st = State {
        stage: "starting",
        first: HopTiming::default(),
        marks: None,
        pinned,
        version: None,
        status: None,
        headers: Vec::new(),
        cert_expires_at: None,
        redirects: 0,
        final_url: url.to_string(),
        body: None,
        later_dial: DialTimes::default(),
    };
    let res = tokio::time::timeout(opts.timeout, check(spec, opts, url, &mut st)).await;
    let outcome = match res {
        Ok(r) => r,
        Err(_) => {
            st.note_first_byte();
            if st.stage == WAITING && st.first.first_byte.is_some() {
                st.stage = "reading the response headers";
            }
            if st.stage == CONNECTING && st.resolving() {
                st.stage = "resolving the host name";
            }
            Err(Failure::new(
                FailureKind::Timeout,
                format!("timed out after {} ms while {}", opts.timeout.as_millis(), st.stage),
            ))
        }
    };

    let mut r = ProbeResult::new(ProbeKind::Http, spec.url.clone(), started_at);
    let t = st.first;
    r.phases = Phases {
        dns_ms: t.dial.dns.map(ms),
        connect_ms: t.dial.connect.map(ms),
        tls_ms: t.tls.map(ms),
        first_byte_ms: t.first_byte.map(ms),
        total_ms: clock.elapsed_ms(),
    };
    r.timeline = Some(Timeline {
        namelookup_ms: t.dial.dns_done.map(|i| clock.since_start(i)),
        connect_ms: t.dial.connect_done.map(|i| clock.since_start(i)),
        tls_ms: t.tls_done.map(|i| clock.since_start(i)),
        first_byte_ms: t.first_byte_at.map(|i| clock.since_start(i)),
    });
    r.resolved_address = t.dial.address;
    r.ip_family = t.dial.address.as_ref().map(|ip| family(ip).to_string());
    if st.status.is_some() || st.cert_expires_at.is_some() {
        let body = st.body.as_ref();
        r.http = Some(HttpFacts {
            version: st.version.clone(),
            status: st.status,
            response_size: body.map_or(0, |b| b.wire_size),
            content_encoding: body.and_then(|b| b.coding.clone()),
            decoded_size: body.and_then(BodySink::decoded_size),
            cert_expires_at: st.cert_expires_at,
            cdn: detect_cdn(&st.headers),
            redirects: st.redirects,
            final_url: st.final_url.clone(),
        });
    }
    match outcome {
        Ok(()) => r.up = true,
        Err(f) => r.failure = Some(f),
    }
    let response = if spec.keep_response {
        Response { body: st.body.as_ref().map(|b| b.kept().to_vec()).unwrap_or_default(), headers: st.headers }
    } else {
        Response::default()
    };
    (r, response)
}

const WAITING: &str = "waiting for the first response byte";

async fn check(spec: &HttpSpec, opts: &ProbeOptions, start_url: &Url, st: &mut State) -> Result<(), Failure> {
    let mut method = spec.method.trim().to_ascii_uppercase();
    if method.is_empty() {
        method = "GET".into();
    }
    let mut hop = Hop {
        url: start_url.clone(),
        method,
        body: spec.body.clone(),
        auth: spec.auth.clone(),
        headers: spec.headers.clone(),
    };
    let mut n = 0u32;
    loop {
        st.final_url = hop.url.to_string();
        let (response, mut conn) = do_hop(spec, opts, &hop, n == 0, st).await?;
        let (parts, mut body) = response.into_parts();
        st.version = Some(version_name(parts.version).to_string());
        st.status = Some(parts.status.as_u16());
        st.headers = parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).trim().to_string()))
            .collect();
        let status = parts.status.as_u16();

        let location =
            parts.headers.get(http::header::LOCATION).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        if spec.max_redirects > 0 && is_redirect(status) {
            if let Some(loc) = location {
                if st.redirects >= spec.max_redirects {
                    return Err(Failure::new(
                        FailureKind::TooManyRedirects,
                        format!("more than {} redirects (last: {status} -> {loc})", spec.max_redirects),
                    ));
                }
                hop = hop.follow(status, &loc)?;
                drop((body, conn));
                st.redirects += 1;
                n += 1;
                continue;
            }
        }

        // final response: read the body
        st.stage = "reading the response body";
        let coding = parts.headers.get(http::header::CONTENT_ENCODING).and_then(|v| v.to_str().ok());
        let sink =
            st.body.insert(BodySink::new(coding, spec.max_body_bytes, spec.keyword.is_some() || spec.keep_response));
        let read = conn.drive(sink.read(&mut body)).await;
        let (eof_without_close_notify, bytes_read) = st
            .marks
            .as_ref()
            .and_then(|m| m.lock().ok().map(|m| (m.eof_without_close_notify, m.read)))
            .unwrap_or_default();
        drop((body, conn));
        match read {
            Ok(()) => {}
            Err(BodyError::Failure(f)) => return Err(f),
            Err(BodyError::Hyper(e)) => {
                return Err(hyper_failure(&e, "reading the response body", eof_without_close_notify, bytes_read))
            }
        }

        if !spec.expected_status.contains(status) {
            return Err(Failure::new(
                FailureKind::HttpStatus,
                format!("status {status} not in expected {}", spec.expected_status),
            ));
        }
        if let Some((kw, present)) = &spec.keyword {
            let sink = st.body.as_ref().expect("body read above");
            let found = contains(sink.kept(), kw.as_bytes());
            if found != *present {
                let searched = sink.decoded_size().unwrap_or(sink.wire_size);
                let scope = if searched as usize > KEEP_BODY_BYTES { " (first 1 MiB searched)" } else { "" };
                let what = if sink.coding.is_some() { "decoded body" } else { "body" };
                return Err(Failure::new(
                    FailureKind::Keyword,
                    if *present {
                        format!("keyword `{kw}` not found in {what}{scope}")
                    } else {
                        format!("keyword `{kw}` found in {what} but must be absent")
                    },
                ));
            }
        }
        return Ok(());
    }
}

fn version_name(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// What a hyper error means for the check; `bytes_read` is what the connection had read.
fn hyper_failure(e: &hyper::Error, stage: &str, eof_without_close_notify: bool, bytes_read: usize) -> Failure {
    use std::error::Error as _;
    // (hyper says which parse error only with its server feature; its message is stable)
    if e.is_parse() && e.to_string().contains("too large") {
        // hyper gives one error for both limits; a head that broke the byte limit has had at
        // least that many bytes read, so fewer means it had too many fields.
        let msg = if bytes_read < MAX_HEADER_BYTES {
            format!("the response head has more than {MAX_HEADER_FIELDS} header fields, the most geoctl reads")
        } else {
            format!("response headers exceed {MAX_HEADER_BYTES} bytes")
        };
        return Failure::new(FailureKind::HeadersTooLarge, msg);
    }
    if e.is_incomplete_message() {
        let how = if eof_without_close_notify { " (TLS stream ended without close_notify)" } else { "" };
        return Failure::new(
            FailureKind::Protocol,
            format!("connection closed before the response was complete while {stage}{how}"),
        );
    }
    let mut detail = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        detail = format!("{detail}: {s}");
        source = s.source();
    }
    if e.is_parse() || e.is_parse_status() || e.is_user() || e.is_closed() || e.is_canceled() {
        return Failure::new(FailureKind::Protocol, format!("invalid response while {stage}: {detail}"));
    }
    if e.is_timeout() {
        return Failure::new(FailureKind::Timeout, format!("timed out while {stage}"));
    }
    if eof_without_close_notify {
        return Failure::new(
            FailureKind::Protocol,
            format!("truncated response while {stage}: TLS stream ended without close_notify ({detail})"),
        );
    }
    // HTTP/2 stream and connection errors are protocol failures too; the rest is I/O.
    let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
    if io.is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof) {
        return Failure::new(FailureKind::Protocol, format!("truncated response while {stage}: {detail}"));
    }
    let io = io.is_some();
    let kind = if io { FailureKind::Other } else { FailureKind::Protocol };
    let what = if io { "I/O error" } else { "protocol error" };
    Failure::new(kind, format!("{what} while {stage}: {detail}"))
}

/// Connects (first hop: with the timing kept), sends the hop's request and
/// returns the response head with what drives the connection.
async fn do_hop(
    spec: &HttpSpec,
    opts: &ProbeOptions,
    hop: &Hop,
    first: bool,
    st: &mut State,
) -> Result<(http::Response<hyper::body::Incoming>, Conn), Failure> {
    let url = &hop.url;
    let host = url.host().ok_or_else(|| Failure::new(FailureKind::Other, "URL has no host"))?;
    let host_str = match &host {
        Host::Domain(d) => d.to_string(),
        Host::Ipv4(ip) => ip.to_string(),
        Host::Ipv6(ip) => ip.to_string(),
    };
    let port = url.port_or_known_default().unwrap_or(80);
    let https = url.scheme() == "https";

    // 1. resolve and connect
    st.stage = CONNECTING;
    st.later_dial = DialTimes::default();
    let times = if first { &mut st.first.dial } else { &mut st.later_dial };
    let pinned = if first { st.pinned } else { None };
    let (tcp, _addr) = dial(&host_str, port, opts, pinned, times).await?;
    let _ = tcp.set_nodelay(true);

    // 2. TLS, which also settles the HTTP version (ALPN)
    let (io, wire): (Box<dyn Io>, Wire) = if https {
        st.stage = "performing the TLS handshake";
        let (cfg, seen) = tls::client_config(spec.extra_root_ca_pem.as_deref(), spec.version.alpn())
            .map_err(|m| Failure::new(FailureKind::Tls, m))?;
        let server_name: ServerName<'static> = match &host {
            Host::Domain(d) => ServerName::try_from(d.to_string())
                .map_err(|e| Failure::new(FailureKind::Tls, format!("invalid TLS server name `{d}`: {e}")))?,
            Host::Ipv4(ip) => ServerName::IpAddress(IpAddr::V4(*ip).into()),
            Host::Ipv6(ip) => ServerName::IpAddress(IpAddr::V6(*ip).into()),
        };
        let t = Instant::now();
        let res = tokio_rustls::TlsConnector::from(cfg).connect(server_name, tcp).await;
        let done = Instant::now();
        let seen_expiry = seen.lock().ok().and_then(|g| g.as_ref().and_then(|c| tls::not_after(c)));
        st.cert_expires_at = seen_expiry;
        match res {
            Ok(s) => {
                if first {
                    st.first.tls = Some(done - t);
                    st.first.tls_done = Some(done);
                }
                let conn = s.get_ref().1;
                if let Some(leaf) = conn.peer_certificates().and_then(|c| c.first()) {
                    st.cert_expires_at = tls::not_after(leaf);
                }
                let h2 = conn.alpn_protocol() == Some(b"h2");
                if spec.version == HttpVersion::Http2 && !h2 {
                    return Err(Failure::new(
                        FailureKind::Protocol,
                        "the server did not agree to HTTP/2 in the TLS handshake (ALPN); drop --http2 to allow HTTP/1.1",
                    ));
                }
                (Box::new(s), if h2 { Wire::Http2 } else { Wire::Http1 })
            }
            Err(e) => {
                let (kind, mut msg) = tls::classify(&e);
                if let (FailureKind::TlsExpired, Some(exp)) = (kind, seen_expiry) {
                    msg = format!("{msg} (expired at {})", exp.to_rfc3339());
                }
                return Err(Failure::new(kind, msg));
            }
        }
    } else {
        // Cleartext HTTP/2 only when forced (prior knowledge, RFC 9113 section 3.3).
        (Box::new(tcp), if spec.version == HttpVersion::Http2 { Wire::Http2 } else { Wire::Http1 })
    };

    // 3. request and response head
    let request = request::build(url, &hop.method, &hop.headers, hop.body.as_deref(), &hop.auth, wire)?;
    let marks = transport::marks(wire);
    if first {
        st.marks = Some(marks.clone());
    }
    st.stage = WAITING;
    let res = exchange(io, wire, marks.clone(), request).await;
    if first {
        st.note_first_byte();
    }
    let (eof_without_close_notify, first_byte, bytes_read) =
        marks.lock().map(|m| (m.eof_without_close_notify, m.first_byte.is_some(), m.read)).unwrap_or((false, false, 0));
    let stage = if first_byte { "reading the response headers" } else { WAITING };
    res.map_err(|e| hyper_failure(&e, stage, eof_without_close_notify, bytes_read))
}

/// The stream under hyper: plain TCP or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ranges_parse() {
        let r: StatusRanges = "200-299, 301".parse().unwrap();
        assert!(r.contains(200) && r.contains(299) && r.contains(301));
        assert!(!r.contains(300) && !r.contains(302));
        assert_eq!(r.to_string(), "200-299,301");
        for bad in ["", "abc", "299-200", "200-", "50", "200,,301", "1000"] {
            let e = bad.parse::<StatusRanges>().unwrap_err();
            assert!(e.to_string().contains("expected e.g."), "{bad}: {e}");
        }
        assert!(StatusRanges::default().contains(302));
    }

    #[test]
    fn url_validation() {
        assert_eq!(
            parse_url("ftp://x.example").unwrap_err().to_string(),
            "unsupported scheme `ftp`; use http:// or https://"
        );
        assert_eq!(parse_url("example.com/x").unwrap().as_str(), "https://example.com/x");
        assert!(matches!(parse_url(""), Err(TargetError::Empty)));
        assert!(parse_url("http://[::1]:8080/").is_ok());
        assert!(matches!(parse_url("http://exa mple.com/"), Err(TargetError::InvalidUrl { .. })));
    }

    #[test]
    fn versions_parse() {
        assert_eq!("2".parse::<HttpVersion>().unwrap(), HttpVersion::Http2);
        assert_eq!("http/1.1".parse::<HttpVersion>().unwrap(), HttpVersion::Http1);
        assert!("3".parse::<HttpVersion>().is_err());
    }
}
