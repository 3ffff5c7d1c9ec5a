//! Local test servers: HTTP(S) over tokio listeners on 127.0.0.1:0, a tiny
//! UDP DNS server (hickory-proto) with an injectable delay, and rcgen PKI.

use std::collections::HashMap;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use geoctl::probe::{IpPreference, ProbeOptions};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, UdpSocket};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub type BoxIo = Box<dyn Io>;

/// Options for tests: never touch the system resolver (names not in
/// /etc/hosts go to a dead local port), IPv4 only.
pub fn opts(timeout_ms: u64) -> ProbeOptions {
    ProbeOptions {
        nameserver: Some("127.0.0.1:9".parse().unwrap()),
        ip_preference: IpPreference::V4,
        timeout: Duration::from_millis(timeout_ms),
    }
}

/// Accept connections on 127.0.0.1:0 (optionally wrapped in TLS) and run
/// `handler` for each on its own task. Returns the bound address and a
/// connection counter.
pub async fn serve<F, Fut>(tls: Option<tokio_rustls::TlsAcceptor>, handler: F) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(BoxIo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    serve_delayed(tls, Duration::ZERO, handler).await
}

/// Like [`serve`], sleeping `pre_tls_delay` after accepting (before the TLS
/// handshake / handler).
pub async fn serve_delayed<F, Fut>(
    tls: Option<tokio_rustls::TlsAcceptor>,
    pre_tls_delay: Duration,
    handler: F,
) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(BoxIo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let handler = handler.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                if !pre_tls_delay.is_zero() {
                    tokio::time::sleep(pre_tls_delay).await;
                }
                let io: BoxIo = match tls {
                    Some(acc) => match acc.accept(stream).await {
                        Ok(s) => Box::new(s),
                        Err(_) => return, // handshake rejected by the client
                    },
                    None => Box::new(stream),
                };
                handler(io).await;
            });
        }
    });
    (addr, count)
}

/// Read a request head (up to the blank line); returns it as text.
pub async fn read_request(io: &mut BoxIo) -> String {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let res = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.len() > 65536 {
                break;
            }
            match io.read(&mut tmp).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
    })
    .await;
    let _ = res;
    String::from_utf8_lossy(&buf).into_owned()
}

/// The request head and then as many body bytes as its Content-Length says, so a test can
/// check the body itself (not just that the head ended).
pub async fn read_request_with_body(io: &mut BoxIo) -> String {
    let mut text = read_request(io).await;
    let Some(head_end) = text.find("\r\n\r\n").map(|i| i + 4) else { return text };
    let length: usize = text[..head_end]
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    let mut tmp = [0u8; 4096];
    while text.len() < head_end + length {
        match tokio::time::timeout(Duration::from_secs(5), io.read(&mut tmp)).await {
            Ok(Ok(n)) if n > 0 => text.push_str(&String::from_utf8_lossy(&tmp[..n])),
            _ => break,
        }
    }
    text
}

/// A port on 127.0.0.1 that refuses connections, and that no other test can take while the
/// returned guard lives (bound, never listening; binding, reading the port and dropping it would
/// let another test's listener take it before use).
pub struct ClosedPort {
    _socket: socket2::Socket,
    pub addr: SocketAddr,
}

pub fn closed_port() -> ClosedPort {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    ClosedPort { _socket: socket, addr }
}

/// Says on the real stderr, which the test harness does not capture, that a check could not run
/// here, so a pass is never silent about what it skipped.
pub fn skipped(test: &str, reason: impl std::fmt::Display) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "skipped: {test}: {reason}");
}

// ---------------------------------------------------------------------------
// DNS

pub struct DnsServer {
    pub addr: SocketAddr,
    pub queries: Arc<AtomicUsize>,
}

/// UDP DNS server on 127.0.0.1: answers A queries for the given names (FQDN,
/// lower-case, with trailing dot) after `delay`; other types of known names
/// get an empty NOERROR; unknown names get NXDOMAIN.
pub async fn dns_server(records: &[(&str, Ipv4Addr)], delay: Duration) -> DnsServer {
    let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = sock.local_addr().unwrap();
    let mut map: HashMap<String, Vec<Ipv4Addr>> = HashMap::new();
    for (name, ip) in records {
        map.entry(name.to_ascii_lowercase()).or_default().push(*ip);
    }
    let map = Arc::new(map);
    let queries = Arc::new(AtomicUsize::new(0));
    let q = queries.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                break;
            };
            let Ok(req) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            q.fetch_add(1, Ordering::SeqCst);
            let sock = sock.clone();
            let map = map.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
                resp.metadata.recursion_desired = req.metadata.recursion_desired;
                resp.metadata.recursion_available = true;
                resp.metadata.authoritative = true;
                resp.add_queries(req.queries.clone());
                for query in &req.queries {
                    let name = query.name.to_string().to_ascii_lowercase();
                    match map.get(&name) {
                        Some(ips) => {
                            if query.query_type == RecordType::A {
                                for ip in ips {
                                    resp.add_answer(Record::from_rdata(query.name.clone(), 60, RData::A(A(*ip))));
                                }
                            }
                        }
                        None => resp.metadata.response_code = ResponseCode::NXDomain,
                    }
                }
                if let Ok(bytes) = resp.to_vec() {
                    let _ = sock.send_to(&bytes, peer).await;
                }
            });
        }
    });
    DnsServer { addr, queries }
}

// ---------------------------------------------------------------------------
// PKI

pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

pub struct Leaf {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2049, 1, 1);
        let key = KeyPair::generate().unwrap();
        Ca { issuer: CertifiedIssuer::self_signed(params, key).unwrap() }
    }

    pub fn pem(&self) -> Vec<u8> {
        self.issuer.pem().into_bytes()
    }

    /// Leaf for `sans`, valid from `not_before` to `not_after` (y, m, d).
    pub fn leaf(&self, sans: &[&str], not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> Leaf {
        let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, sans[0]);
        params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            chain: vec![cert.der().clone(), self.issuer.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }
}

pub fn acceptor(leaf: Leaf) -> tokio_rustls::TlsAcceptor {
    acceptor_with_alpn(leaf, &[b"http/1.1"])
}

/// A TLS acceptor that agrees to the given ALPN protocols (e.g. `h2`).
pub fn acceptor_with_alpn(leaf: Leaf, alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(leaf.chain, leaf.key)
        .unwrap();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}
