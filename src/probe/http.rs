//! HTTP(S) probe: a small HTTP/1.1 client written directly over a fresh
//! TCP (+ rustls) connection per check, so every phase is measured.
//!
//! * Requests are HTTP/1.1 with `Connection: close` and
//!   `Accept-Encoding: identity` (bodies are never compressed, so the keyword
//!   search sees the raw bytes and `response_size` is the wire body size).
//! * Responses: `Content-Length`, `Transfer-Encoding: chunked` (with
//!   trailers) and close-delimited bodies; `1xx` interim responses are
//!   skipped; HEAD/204/304 have no body.
//! * Limits: header block (and chunked trailers) ≤ 64 KiB
//!   ([`FailureKind::HeadersTooLarge`]); body ≤ `max_body_bytes`
//!   ([`FailureKind::BodyTooLarge`]); the first 1 MiB is kept for the keyword
//!   search; the whole check (all hops) is bounded by `ProbeOptions::timeout`.
//! * Redirects (301/302/303/307/308 with `Location`) are followed up to
//!   `max_redirects`, each on a new connection; one more redirect than that is
//!   [`FailureKind::TooManyRedirects`]. With `max_redirects == 0` redirects
//!   are not followed and the 3xx response is judged like any other.
//!   Phases and `resolved_address` are those of the first hop; `total_ms` and
//!   the facts (status, size, certificate, CDN) are of the final response.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rustls::pki_types::ServerName;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use url::{Host, Position, Url};

use super::resolve::{resolve_host, ResolveError};
use super::timing::{ms, Clock, Phases, Timeline};
use super::{tls, AddressResult, Failure, FailureKind, ProbeKind, ProbeOptions, ProbeResult, TargetError};

/// Maximum size of the response header block (and of chunked trailers).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// How much of the body is kept for the keyword search.
pub const KEEP_BODY_BYTES: usize = 1024 * 1024;
/// Default cap on the response body size.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 8 * 1024 * 1024;
/// Default redirect limit.
pub const DEFAULT_MAX_REDIRECTS: u32 = 5;
const MAX_CHUNK_LINE: usize = 4096;
const USER_AGENT: &str = concat!("geoctl-probe/", env!("CARGO_PKG_VERSION"));

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
    /// Body size cap; larger bodies fail with `body_too_large`.
    pub max_body_bytes: u64,
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

/// CDN facts derived from response headers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CdnInfo {
    pub provider: Option<String>,
    pub cache_status: Option<String>,
    pub edge_location: Option<String>,
}

/// Facts about the (final) HTTP response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpFacts {
    /// e.g. `HTTP/1.1`; `None` if no response head was received.
    pub version: Option<String>,
    pub status: Option<u16>,
    /// Body bytes read (after de-chunking).
    pub response_size: u64,
    /// notAfter of the server's leaf certificate (https; also set when
    /// verification failed, if the certificate was received).
    pub cert_expires_at: Option<DateTime<Utc>>,
    pub cdn: Option<CdnInfo>,
    /// Number of redirects followed.
    pub redirects: u32,
    /// URL of the final request.
    pub final_url: String,
}

/// Detect CDN provider, cache status and edge location from response headers
/// (names must be lower-case).
pub fn detect_cdn(headers: &[(String, String)]) -> Option<CdnInfo> {
    let get = |name: &str| -> Option<&str> {
        headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
    };
    let server = get("server").unwrap_or("").to_ascii_lowercase();
    let via = get("via").unwrap_or("").to_ascii_lowercase();
    let x_cache = get("x-cache").map(str::to_string);
    let mut info = CdnInfo::default();

    if let Some(ray) = get("cf-ray") {
        info.provider = Some("Cloudflare".into());
        info.edge_location = ray.rsplit_once('-').map(|(_, loc)| loc.to_string()).filter(|l| !l.is_empty());
        info.cache_status = get("cf-cache-status").map(str::to_string);
    } else if server == "cloudflare" {
        info.provider = Some("Cloudflare".into());
        info.cache_status = get("cf-cache-status").map(str::to_string);
    } else if get("x-amz-cf-id").is_some() || get("x-amz-cf-pop").is_some() || via.contains("cloudfront") {
        info.provider = Some("CloudFront".into());
        info.edge_location = get("x-amz-cf-pop").map(str::to_string);
        info.cache_status = x_cache.clone();
    } else if let Some(vid) = get("x-vercel-id") {
        info.provider = Some("Vercel".into());
        info.edge_location = vid.split("::").next().map(str::to_string);
        info.cache_status = get("x-vercel-cache").map(str::to_string);
    } else if get("x-fastly-request-id").is_some()
        || get("fastly-debug-digest").is_some()
        || get("x-served-by").is_some_and(|v| v.contains("cache-"))
    {
        info.provider = Some("Fastly".into());
        // x-served-by: "cache-fra-eddf8230045-FRA[, cache-...-XYZ]" -> last POP wins
        info.edge_location = get("x-served-by")
            .and_then(|v| v.split(',').next_back())
            .and_then(|v| v.trim().rsplit_once('-'))
            .map(|(_, loc)| loc.to_string());
        info.cache_status = x_cache.clone();
    } else if server.contains("akamai")
        || get("x-akamai-transformed").is_some()
        || get("akamai-grn").is_some()
        || get("akamai-cache-status").is_some()
    {
        info.provider = Some("Akamai".into());
        info.cache_status = get("akamai-cache-status").map(str::to_string).or(x_cache.clone());
    } else if get("x-azure-ref").is_some() || get("x-msedge-ref").is_some() {
        info.provider = Some("Azure Front Door".into());
        info.cache_status = x_cache.clone();
    } else if server.starts_with("bunnycdn") {
        info.provider = Some("BunnyCDN".into());
        info.edge_location = server.split_once('-').map(|(_, l)| l.to_ascii_uppercase());
        info.cache_status = get("cdn-cache").map(str::to_string);
    } else if get("x-nf-request-id").is_some() || server == "netlify" {
        info.provider = Some("Netlify".into());
        info.cache_status = get("cache-status").map(str::to_string);
    } else if server == "gws" || server == "google frontend" || via.contains("google") {
        info.provider = Some("Google".into());
    } else if via.contains("varnish") {
        info.provider = Some("Varnish".into());
        info.cache_status = x_cache.clone();
    }

    if info.cache_status.is_none() {
        info.cache_status = x_cache
            .or_else(|| get("x-cache-status").map(str::to_string))
            .or_else(|| get("cdn-cache-status").map(str::to_string))
            .or_else(|| get("cache-status").map(str::to_string));
    }
    if info == CdnInfo::default() {
        None
    } else {
        Some(info)
    }
}

// ---------------------------------------------------------------------------
// Check state

#[derive(Debug, Default, Clone, Copy)]
struct HopTiming {
    dns: Option<Duration>,
    dns_done: Option<Instant>,
    connect: Option<Duration>,
    connect_done: Option<Instant>,
    tls: Option<Duration>,
    tls_done: Option<Instant>,
    first_byte: Option<Duration>,
    first_byte_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Pinned {
    ip: IpAddr,
    dns: Option<Duration>,
    dns_done: Option<Instant>,
}

struct State {
    stage: &'static str,
    first: HopTiming,
    resolved: Option<IpAddr>,
    pinned: Option<Pinned>,
    version: Option<String>,
    status: Option<u16>,
    headers: Vec<(String, String)>,
    cert_expires_at: Option<DateTime<Utc>>,
    redirects: u32,
    final_url: String,
    body: BodySink,
}

struct BodySink {
    size: u64,
    max: u64,
    keep: bool,
    kept: Vec<u8>,
}

impl BodySink {
    fn push(&mut self, data: &[u8]) -> Result<(), Failure> {
        let len = data.len() as u64;
        if self.size.saturating_add(len) > self.max {
            self.size = self.max;
            return Err(Failure::new(
                FailureKind::BodyTooLarge,
                format!("response body exceeds {} bytes; stopped reading", self.max),
            ));
        }
        self.size += len;
        if self.keep && self.kept.len() < KEEP_BODY_BYTES {
            let room = KEEP_BODY_BYTES - self.kept.len();
            self.kept.extend_from_slice(&data[..data.len().min(room)]);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// I/O plumbing

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

struct Reader {
    io: Box<dyn Io>,
    buf: Vec<u8>,
    pos: usize,
}

impl Reader {
    fn new(io: Box<dyn Io>) -> Self {
        Reader { io, buf: Vec::with_capacity(16 * 1024), pos: 0 }
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Read more bytes into the buffer; `Ok(0)` at EOF.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + 16 * 1024, 0);
        match self.io.read(&mut self.buf[old..]).await {
            Ok(n) => {
                self.buf.truncate(old + n);
                Ok(n)
            }
            Err(e) => {
                self.buf.truncate(old);
                Err(e)
            }
        }
    }

    /// Read a line (without CR LF), bounded by `max` bytes.
    async fn read_line(&mut self, max: usize, what: &str) -> Result<Vec<u8>, Failure> {
        loop {
            if let Some(i) = self.available().iter().position(|&b| b == b'\n') {
                let mut line = self.available()[..i].to_vec();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.consume(i + 1);
                return Ok(line);
            }
            if self.available().len() > max {
                return Err(Failure::new(FailureKind::Protocol, format!("{what} line longer than {max} bytes")));
            }
            let n = self.fill().await.map_err(|e| io_failure(what, &e))?;
            if n == 0 {
                return Err(Failure::new(FailureKind::Protocol, format!("connection closed while reading {what}")));
            }
        }
    }
}

fn io_failure(stage: &str, e: &io::Error) -> Failure {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return Failure::new(FailureKind::Protocol, format!("connection closed unexpectedly while {stage}"));
    }
    Failure::new(FailureKind::Other, format!("I/O error while {stage}: {e}"))
}

// ---------------------------------------------------------------------------
// Response parsing

#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    version: String,
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Index just past the blank line ending the header block.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            let line = &buf[line_start..i];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() && line_start != 0 {
                return Some(i + 1);
            }
            line_start = i + 1;
        }
    }
    None
}

fn protocol(msg: impl Into<String>) -> Failure {
    Failure::new(FailureKind::Protocol, msg)
}

fn parse_head(raw: &[u8]) -> Result<Head, Failure> {
    let text = String::from_utf8_lossy(raw);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let status_line = lines.by_ref().find(|l| !l.is_empty()).ok_or_else(|| protocol("empty response head"))?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        let shown: String = status_line.chars().take(60).collect();
        return Err(protocol(format!("not an HTTP/1.x response: `{shown}`")));
    }
    let code = parts.next().unwrap_or("");
    let status = match code.parse::<u16>() {
        Ok(c) if code.len() == 3 && (100..=999).contains(&c) => c,
        _ => return Err(protocol(format!("invalid status code `{code}`"))),
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            // obsolete line folding: continuation of the previous value
            match headers.last_mut() {
                Some((_, v)) => {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                None => return Err(protocol("header continuation before any header")),
            }
            continue;
        }
        let (name, value) =
            line.split_once(':').ok_or_else(|| protocol(format!("malformed header line `{}`", truncate(line, 60))))?;
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(protocol(format!("invalid header name `{}`", truncate(name, 60))));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(Head { version: version.to_string(), status, headers })
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    Close,
}

fn framing(method: &str, head: &Head) -> Result<Framing, Failure> {
    if method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&head.status)
        || head.status == 204
        || head.status == 304
    {
        return Ok(Framing::None);
    }
    let te: Vec<String> = head
        .get_all("transfer-encoding")
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    if !te.is_empty() {
        return Ok(if te.last().map(String::as_str) == Some("chunked") { Framing::Chunked } else { Framing::Close });
    }
    let mut len: Option<u64> = None;
    for v in head.get_all("content-length").flat_map(|v| v.split(',')) {
        let v = v.trim();
        let n: u64 = v.parse().map_err(|_| protocol(format!("invalid Content-Length `{}`", truncate(v, 40))))?;
        if len.is_some_and(|l| l != n) {
            return Err(protocol("conflicting Content-Length headers"));
        }
        len = Some(n);
    }
    Ok(match len {
        Some(n) => Framing::Length(n),
        None => Framing::Close,
    })
}

async fn read_head(r: &mut Reader) -> Result<Head, Failure> {
    loop {
        if let Some(end) = find_head_end(r.available()) {
            if end > MAX_HEADER_BYTES {
                break;
            }
            let head = parse_head(&r.available()[..end]);
            r.consume(end);
            return head;
        }
        if r.available().len() > MAX_HEADER_BYTES {
            break;
        }
        let n = r.fill().await.map_err(|e| io_failure("reading response headers", &e))?;
        if n == 0 {
            return Err(protocol(if r.available().is_empty() {
                "connection closed without a response".to_string()
            } else {
                "connection closed in the middle of the response headers".to_string()
            }));
        }
    }
    Err(Failure::new(FailureKind::HeadersTooLarge, format!("response headers exceed {MAX_HEADER_BYTES} bytes")))
}

async fn read_exact_into(r: &mut Reader, mut remaining: u64, sink: &mut BodySink) -> Result<(), Failure> {
    let total = remaining;
    while remaining > 0 {
        if r.available().is_empty() {
            let n = r.fill().await.map_err(|e| io_failure("reading response body", &e))?;
            if n == 0 {
                return Err(protocol(format!("connection closed after {} of {} body bytes", total - remaining, total)));
            }
        }
        let take = (r.available().len() as u64).min(remaining) as usize;
        let res = sink.push(&r.available()[..take]);
        r.consume(take);
        res?;
        remaining -= take as u64;
    }
    Ok(())
}

async fn read_body(r: &mut Reader, fr: Framing, sink: &mut BodySink) -> Result<(), Failure> {
    match fr {
        Framing::None => Ok(()),
        Framing::Length(n) => read_exact_into(r, n, sink).await,
        Framing::Close => loop {
            let avail = r.available().len();
            if avail > 0 {
                let res = sink.push(r.available());
                r.consume(avail);
                res?;
            }
            match r.fill().await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                // TLS peers that close without close_notify
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(io_failure("reading response body", &e)),
            }
        },
        Framing::Chunked => {
            loop {
                let line = r.read_line(MAX_CHUNK_LINE, "chunk size").await?;
                let line = String::from_utf8_lossy(&line);
                let hex = line.split(';').next().unwrap_or("").trim();
                let size = u64::from_str_radix(hex, 16)
                    .map_err(|_| protocol(format!("invalid chunk size `{}`", truncate(hex, 40))))?;
                if size == 0 {
                    break;
                }
                read_exact_into(r, size, sink).await?;
                let end = r.read_line(MAX_CHUNK_LINE, "chunk end").await?;
                if !end.is_empty() {
                    return Err(protocol("missing CRLF after chunk data"));
                }
            }
            // trailers
            let mut trailer_bytes = 0usize;
            loop {
                let line = r.read_line(MAX_HEADER_BYTES, "chunked trailer").await?;
                if line.is_empty() {
                    return Ok(());
                }
                trailer_bytes += line.len() + 2;
                if trailer_bytes > MAX_HEADER_BYTES {
                    return Err(Failure::new(
                        FailureKind::HeadersTooLarge,
                        format!("chunked trailers exceed {MAX_HEADER_BYTES} bytes"),
                    ));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Request building

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 { T[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if chunk.len() > 2 { T[n as usize & 63] as char } else { '=' });
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() {
            let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            out.push(hex(b[i + 1]) * 16 + hex(b[i + 2]));
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn invalid_spec(msg: impl Into<String>) -> Failure {
    Failure::new(FailureKind::Other, msg)
}

fn build_request(
    url: &Url,
    method: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
    auth: &Auth,
) -> Result<Vec<u8>, Failure> {
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(invalid_spec(format!("invalid HTTP method `{method}`")));
    }
    let target = &url[Position::BeforePath..Position::AfterQuery];
    let target = if target.is_empty() { "/" } else { target };
    let mut host = url.host_str().unwrap_or_default().to_string();
    if let Some(p) = url.port() {
        host = format!("{host}:{p}");
    }
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut req = format!("{method} {target} HTTP/1.1\r\n");
    let mut push = |n: &str, v: &str| {
        req.push_str(n);
        req.push_str(": ");
        req.push_str(v);
        req.push_str("\r\n");
    };
    if !has("host") {
        push("Host", &host);
    }
    if !has("user-agent") {
        push("User-Agent", USER_AGENT);
    }
    if !has("accept") {
        push("Accept", "*/*");
    }
    if !has("accept-encoding") {
        push("Accept-Encoding", "identity");
    }
    match auth {
        Auth::None => {
            if !url.username().is_empty() && !has("authorization") {
                let creds =
                    format!("{}:{}", percent_decode(url.username()), percent_decode(url.password().unwrap_or("")));
                push("Authorization", &format!("Basic {}", base64(creds.as_bytes())));
            }
        }
        Auth::Basic { user, pass } => {
            push("Authorization", &format!("Basic {}", base64(format!("{user}:{pass}").as_bytes())));
        }
        Auth::Bearer(token) => {
            if token.contains(['\r', '\n']) {
                return Err(invalid_spec("bearer token contains a line break"));
            }
            push("Authorization", &format!("Bearer {token}"));
        }
    }
    for (n, v) in headers {
        if n.is_empty() || !n.bytes().all(is_token_byte) {
            return Err(invalid_spec(format!("invalid header name `{n}`")));
        }
        if v.contains(['\r', '\n', '\0']) {
            return Err(invalid_spec(format!("header `{n}` has an invalid value")));
        }
        if n.eq_ignore_ascii_case("connection") || n.eq_ignore_ascii_case("content-length") {
            continue; // managed by the probe
        }
        push(n, v);
    }
    push("Connection", "close");
    let needs_len = body.is_some() || ["POST", "PUT", "PATCH"].iter().any(|m| method.eq_ignore_ascii_case(m));
    if needs_len {
        push("Content-Length", &body.map_or(0, |b| b.len()).to_string());
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    if let Some(b) = body {
        bytes.extend_from_slice(b);
    }
    Ok(bytes)
}

// ---------------------------------------------------------------------------
// The check

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
    let resolved = tokio::time::timeout(opts.timeout, resolve_host(&host, opts)).await;
    let dns_done = Instant::now();
    let resolved = match resolved {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            let mut r = ProbeResult::new(ProbeKind::Http, spec.url.clone(), started_at);
            r.phases.dns_ms = e.elapsed().map(ms);
            r.failure = Some(Failure::new(e.kind(), e.to_string()));
            r.phases.total_ms = clock.elapsed_ms();
            return r;
        }
        Err(_) => {
            let mut r = ProbeResult::new(ProbeKind::Http, spec.url.clone(), started_at);
            r.failure = Some(Failure::new(
                FailureKind::Timeout,
                format!("resolving `{host}` timed out after {} ms", opts.timeout.as_millis()),
            ));
            r.phases.total_ms = clock.elapsed_ms();
            return r;
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
        None => {
            let mut r = ProbeResult::new(ProbeKind::Http, spec.url.clone(), started_at);
            r.failure = Some(Failure::new(FailureKind::Other, "no address was probed"));
            r
        }
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
    let mut st = State {
        stage: "starting",
        first: HopTiming::default(),
        resolved: None,
        pinned,
        version: None,
        status: None,
        headers: Vec::new(),
        cert_expires_at: None,
        redirects: 0,
        final_url: url.to_string(),
        body: BodySink { size: 0, max: spec.max_body_bytes, keep: spec.keyword.is_some(), kept: Vec::new() },
    };
    let res = tokio::time::timeout(opts.timeout, check(spec, opts, url, &mut st)).await;
    let outcome = match res {
        Ok(r) => r,
        Err(_) => Err(Failure::new(
            FailureKind::Timeout,
            format!("timed out after {} ms while {}", opts.timeout.as_millis(), st.stage),
        )),
    };

    let mut r = ProbeResult::new(ProbeKind::Http, spec.url.clone(), started_at);
    let t = st.first;
    r.phases = Phases {
        dns_ms: t.dns.map(ms),
        connect_ms: t.connect.map(ms),
        tls_ms: t.tls.map(ms),
        first_byte_ms: t.first_byte.map(ms),
        total_ms: clock.elapsed_ms(),
    };
    r.timeline = Some(Timeline {
        namelookup_ms: t.dns_done.map(|i| clock.since_start(i)),
        connect_ms: t.connect_done.map(|i| clock.since_start(i)),
        tls_ms: t.tls_done.map(|i| clock.since_start(i)),
        first_byte_ms: t.first_byte_at.map(|i| clock.since_start(i)),
    });
    r.resolved_address = st.resolved;
    if st.status.is_some() || st.cert_expires_at.is_some() {
        r.http = Some(HttpFacts {
            version: st.version.clone(),
            status: st.status,
            response_size: st.body.size,
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
    r
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

async fn check(spec: &HttpSpec, opts: &ProbeOptions, start_url: &Url, st: &mut State) -> Result<(), Failure> {
    let mut url = start_url.clone();
    let mut method = spec.method.trim().to_ascii_uppercase();
    if method.is_empty() {
        method = "GET".into();
    }
    let mut body: Option<Vec<u8>> = spec.body.clone();
    let mut auth = spec.auth.clone();
    let mut headers = spec.headers.clone();
    let mut hop = 0u32;
    loop {
        st.final_url = url.to_string();
        let (head, mut reader) = do_hop(spec, opts, &url, &method, body.as_deref(), &auth, &headers, hop, st).await?;
        st.version = Some(head.version.clone());
        st.status = Some(head.status);
        st.headers = head.headers.clone();

        let location = head.get("location").map(str::to_string);
        if spec.max_redirects > 0 && is_redirect(head.status) {
            if let Some(loc) = location {
                if st.redirects >= spec.max_redirects {
                    return Err(Failure::new(
                        FailureKind::TooManyRedirects,
                        format!("more than {} redirects (last: {} -> {})", spec.max_redirects, head.status, loc),
                    ));
                }
                let next = url
                    .join(&loc)
                    .map_err(|e| protocol(format!("invalid redirect Location `{}`: {e}", truncate(&loc, 200))))?;
                if !matches!(next.scheme(), "http" | "https") || next.host_str().is_none() {
                    return Err(protocol(format!("redirect to unsupported URL `{}`", truncate(next.as_str(), 200))));
                }
                if head.status == 303 || (matches!(head.status, 301 | 302) && method == "POST") {
                    if method != "HEAD" {
                        method = "GET".into();
                    }
                    body = None;
                }
                if !same_origin(&url, &next) {
                    auth = Auth::None;
                    headers
                        .retain(|(n, _)| !n.eq_ignore_ascii_case("authorization") && !n.eq_ignore_ascii_case("cookie"));
                }
                drop(reader);
                st.redirects += 1;
                url = next;
                hop += 1;
                continue;
            }
        }

        // final response: read the body
        st.stage = "reading the response body";
        let fr = framing(&method, &head)?;
        read_body(&mut reader, fr, &mut st.body).await?;
        drop(reader);

        if !spec.expected_status.contains(head.status) {
            return Err(Failure::new(
                FailureKind::HttpStatus,
                format!("status {} not in expected {}", head.status, spec.expected_status),
            ));
        }
        if let Some((kw, present)) = &spec.keyword {
            let found = contains(&st.body.kept, kw.as_bytes());
            if found != *present {
                let scope = if st.body.size as usize > KEEP_BODY_BYTES { " (first 1 MiB searched)" } else { "" };
                return Err(Failure::new(
                    FailureKind::Keyword,
                    if *present {
                        format!("keyword `{kw}` not found in body{scope}")
                    } else {
                        format!("keyword `{kw}` found in body but must be absent")
                    },
                ));
            }
        }
        return Ok(());
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

#[allow(clippy::too_many_arguments)]
async fn do_hop(
    spec: &HttpSpec,
    opts: &ProbeOptions,
    url: &Url,
    method: &str,
    body: Option<&[u8]>,
    auth: &Auth,
    headers: &[(String, String)],
    hop: u32,
    st: &mut State,
) -> Result<(Head, Reader), Failure> {
    let first = hop == 0;
    let request = build_request(url, method, headers, body, auth)?;
    let host = url.host().ok_or_else(|| invalid_spec("URL has no host"))?;
    let host_str = match &host {
        Host::Domain(d) => d.to_string(),
        Host::Ipv4(ip) => ip.to_string(),
        Host::Ipv6(ip) => ip.to_string(),
    };
    let port = url.port_or_known_default().unwrap_or(80);

    // 1. resolve
    let addrs: Vec<IpAddr> = match (first, st.pinned) {
        (true, Some(p)) => {
            st.first.dns = p.dns;
            st.first.dns_done = p.dns_done;
            vec![p.ip]
        }
        _ => {
            st.stage = "resolving the host name";
            let res = resolve_host(&host_str, opts).await;
            let done = Instant::now();
            let dns = match &res {
                Ok(r) => r.dns,
                Err(e) => e.elapsed(),
            };
            if first {
                st.first.dns = dns;
                st.first.dns_done = dns.map(|_| done);
            }
            res.map_err(|e: ResolveError| Failure::new(e.kind(), e.to_string()))?.addrs
        }
    };

    // 2. connect (addresses in order until one accepts)
    st.stage = "connecting";
    let t0 = Instant::now();
    let mut last_err: Option<(IpAddr, io::Error)> = None;
    let mut tcp: Option<TcpStream> = None;
    for ip in &addrs {
        if first {
            st.resolved = Some(*ip);
        }
        match TcpStream::connect(SocketAddr::new(*ip, port)).await {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last_err = Some((*ip, e)),
        }
    }
    let tcp = match tcp {
        Some(s) => s,
        None => {
            let (ip, e) =
                last_err.unwrap_or((IpAddr::from([0, 0, 0, 0]), io::Error::other("no address to connect to")));
            let kind =
                if e.kind() == io::ErrorKind::ConnectionRefused { FailureKind::Refused } else { FailureKind::Connect };
            return Err(Failure::new(kind, format!("connect to {} failed: {e}", SocketAddr::new(ip, port))));
        }
    };
    let connected = Instant::now();
    if first {
        st.first.connect = Some(connected - t0);
        st.first.connect_done = Some(connected);
    }
    let _ = tcp.set_nodelay(true);

    // 3. TLS
    let mut io: Box<dyn Io> = if url.scheme() == "https" {
        st.stage = "performing the TLS handshake";
        let (cfg, seen) =
            tls::client_config(spec.extra_root_ca_pem.as_deref()).map_err(|m| Failure::new(FailureKind::Tls, m))?;
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
                if let Some(leaf) = s.get_ref().1.peer_certificates().and_then(|c| c.first()) {
                    st.cert_expires_at = tls::not_after(leaf);
                }
                Box::new(s)
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
        Box::new(tcp)
    };

    // 4. request
    st.stage = "sending the request";
    io.write_all(&request).await.map_err(|e| io_failure("sending the request", &e))?;
    io.flush().await.map_err(|e| io_failure("sending the request", &e))?;
    let written = Instant::now();

    // 5. first byte
    st.stage = "waiting for the first response byte";
    let mut reader = Reader::new(io);
    let n = reader.fill().await.map_err(|e| io_failure("waiting for the response", &e))?;
    if n == 0 {
        return Err(protocol("server closed the connection without responding"));
    }
    let fb = Instant::now();
    if first {
        st.first.first_byte = Some(fb - written);
        st.first.first_byte_at = Some(fb);
    }

    // 6. head (skipping 1xx interim responses)
    st.stage = "reading the response headers";
    let mut skipped = 0usize;
    loop {
        let head = read_head(&mut reader).await?;
        if head.status == 101 {
            return Err(protocol("unexpected 101 Switching Protocols"));
        }
        if (100..200).contains(&head.status) {
            skipped += 1;
            if skipped > 16 {
                return Err(protocol("too many 1xx interim responses"));
            }
            continue;
        }
        return Ok((head, reader));
    }
}

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
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"Aladdin:open sesame"), "QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("x%zz"), "x%zz");
    }

    #[test]
    fn request_shape() {
        let url = Url::parse("http://u:p%40ss@example.com:8080/a?b=1#frag").unwrap();
        let req = build_request(&url, "POST", &[("X-Test".into(), "1".into())], Some(b"hi"), &Auth::None).unwrap();
        let s = String::from_utf8(req).unwrap();
        assert!(s.starts_with("POST /a?b=1 HTTP/1.1\r\nHost: example.com:8080\r\n"), "{s}");
        assert!(s.contains("Authorization: Basic dTpwQHNz\r\n"), "{s}");
        assert!(s.contains("X-Test: 1\r\n"));
        assert!(s.contains("Connection: close\r\n"));
        assert!(s.ends_with("Content-Length: 2\r\n\r\nhi"));
        assert!(build_request(&url, "GET", &[("X".into(), "a\r\nb".into())], None, &Auth::None).is_err());
        assert!(build_request(&url, "G T", &[], None, &Auth::None).is_err());
    }

    #[test]
    fn head_parsing() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: one\r\n  two\r\n\r\n";
        let end = find_head_end(raw).unwrap();
        assert_eq!(end, raw.len());
        let h = parse_head(&raw[..end]).unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.version, "HTTP/1.1");
        assert_eq!(h.get("x-a"), Some("one two"));
        assert_eq!(framing("GET", &h).unwrap(), Framing::Length(5));
        assert_eq!(framing("HEAD", &h).unwrap(), Framing::None);
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 20 OK\r\n\r\n").is_err());
        let bad = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").unwrap();
        assert!(framing("GET", &bad).is_err());
        let chunked = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").unwrap();
        assert_eq!(framing("GET", &chunked).unwrap(), Framing::Chunked);
        let close = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap();
        assert_eq!(framing("GET", &close).unwrap(), Framing::Close);
        assert_eq!(find_head_end(b"HTTP/1.1 200 OK\n\n"), Some(17));
        assert_eq!(find_head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n"), None);
    }

    async fn body_of(raw: &'static [u8], fr: Framing, max: u64) -> Result<Vec<u8>, Failure> {
        let (mut a, b) = tokio::io::duplex(1024);
        tokio::spawn(async move {
            let _ = a.write_all(raw).await;
        });
        let mut r = Reader::new(Box::new(b));
        let mut sink = BodySink { size: 0, max, keep: true, kept: Vec::new() };
        read_body(&mut r, fr, &mut sink).await?;
        assert_eq!(sink.size as usize, sink.kept.len());
        Ok(sink.kept)
    }

    #[tokio::test]
    async fn chunked_decoding() {
        let b = body_of(b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\n", Framing::Chunked, 100).await.unwrap();
        assert_eq!(b, b"Wikipedia");
        let e = body_of(b"4\r\nWiki", Framing::Chunked, 100).await.unwrap_err();
        assert_eq!(e.kind, FailureKind::Protocol);
        let e = body_of(b"zz\r\n", Framing::Chunked, 100).await.unwrap_err();
        assert_eq!(e.kind, FailureKind::Protocol);
        let e = body_of(b"4\r\nWikiXX", Framing::Chunked, 100).await.unwrap_err();
        assert_eq!(e.kind, FailureKind::Protocol);
        let e = body_of(b"a\r\n0123456789\r\n0\r\n\r\n", Framing::Chunked, 5).await.unwrap_err();
        assert_eq!(e.kind, FailureKind::BodyTooLarge);
    }

    #[tokio::test]
    async fn length_and_close_framing() {
        assert_eq!(body_of(b"hello world", Framing::Length(5), 100).await.unwrap(), b"hello");
        let e = body_of(b"hel", Framing::Length(5), 100).await.unwrap_err();
        assert_eq!(e.kind, FailureKind::Protocol);
        assert!(e.message.contains("3 of 5"), "{}", e.message);
        assert_eq!(body_of(b"until close", Framing::Close, 100).await.unwrap(), b"until close");
        let e = body_of(b"until close", Framing::Close, 4).await.unwrap_err();
        assert_eq!(e.kind, FailureKind::BodyTooLarge);
    }

    #[test]
    fn cdn_detection() {
        let h = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
        };
        let cf =
            detect_cdn(&h(&[("server", "cloudflare"), ("cf-ray", "8a1b2c3d4e5f6789-FRA"), ("cf-cache-status", "HIT")]))
                .unwrap();
        assert_eq!(cf.provider.as_deref(), Some("Cloudflare"));
        assert_eq!(cf.edge_location.as_deref(), Some("FRA"));
        assert_eq!(cf.cache_status.as_deref(), Some("HIT"));
        let cfr =
            detect_cdn(&h(&[("x-amz-cf-id", "abc"), ("x-amz-cf-pop", "FRA56-P1"), ("x-cache", "Hit from cloudfront")]))
                .unwrap();
        assert_eq!(cfr.provider.as_deref(), Some("CloudFront"));
        assert_eq!(cfr.edge_location.as_deref(), Some("FRA56-P1"));
        assert_eq!(cfr.cache_status.as_deref(), Some("Hit from cloudfront"));
        let fastly =
            detect_cdn(&h(&[("x-served-by", "cache-fra-eddf8230045-FRA, cache-ams21-AMS"), ("x-cache", "MISS, HIT")]))
                .unwrap();
        assert_eq!(fastly.provider.as_deref(), Some("Fastly"));
        assert_eq!(fastly.edge_location.as_deref(), Some("AMS"));
        assert_eq!(detect_cdn(&h(&[("server", "nginx")])), None);
        let generic = detect_cdn(&h(&[("x-cache", "HIT")])).unwrap();
        assert_eq!(generic.provider, None);
        assert_eq!(generic.cache_status.as_deref(), Some("HIT"));
    }
}
