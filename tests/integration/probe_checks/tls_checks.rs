use std::time::Duration;

use chrono::{TimeZone, Utc};
use geoctl::probe::{run, FailureKind, HttpSpec, ProbeResult, ProbeSpec};
use tokio::io::AsyncWriteExt;

use super::support::{acceptor, opts, read_request, serve, serve_delayed, Ca, Leaf};

const VALID_FROM: (i32, u8, u8) = (2020, 1, 1);
const VALID_TO: (i32, u8, u8) = (2045, 1, 1);

async fn https_server(leaf: Leaf, pre_tls_delay: Duration) -> std::net::SocketAddr {
    let (addr, _) = serve_delayed(Some(acceptor(leaf)), pre_tls_delay, |mut io| async move {
        let _ = read_request(&mut io).await;
        let _ = io.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure").await;
        let _ = io.shutdown().await;
    })
    .await;
    addr
}

async fn probe(url: String, ca: Option<&Ca>) -> ProbeResult {
    let mut spec = HttpSpec::new(url);
    spec.extra_root_ca_pem = ca.map(|c| c.pem());
    run(&ProbeSpec::Http(spec), &opts(5000)).await
}

#[tokio::test]
async fn https_measures_tls_and_reports_cert_expiry() {
    let ca = Ca::new("probe test CA");
    let addr = https_server(ca.leaf(&["localhost"], VALID_FROM, VALID_TO), Duration::ZERO).await;
    let r = probe(format!("https://localhost:{}/", addr.port()), Some(&ca)).await;
    assert!(r.up, "{:?}", r.failure);
    assert!(r.phases.dns_ms.is_some(), "localhost resolved via /etc/hosts");
    assert!(r.phases.connect_ms.is_some());
    assert!(r.phases.tls_ms.is_some());
    assert!(r.phases.first_byte_ms.is_some());
    let tl = r.timeline.unwrap();
    assert!(tl.tls_ms.unwrap() >= tl.connect_ms.unwrap());
    assert!(tl.first_byte_ms.unwrap() >= tl.tls_ms.unwrap());
    let h = r.http.unwrap();
    assert_eq!(h.status, Some(200));
    assert_eq!(h.response_size, 6);
    assert_eq!(h.cert_expires_at, Some(Utc.with_ymd_and_hms(2045, 1, 1, 0, 0, 0).unwrap()));
}

#[tokio::test]
async fn slow_tls_accept_lands_in_tls_phase() {
    let ca = Ca::new("probe test CA");
    let addr = https_server(ca.leaf(&["127.0.0.1"], VALID_FROM, VALID_TO), Duration::from_millis(150)).await;
    let r = probe(format!("https://{addr}/"), Some(&ca)).await;
    assert!(r.up, "{:?}", r.failure);
    assert_eq!(r.phases.dns_ms, None, "IP literal");
    let tls = r.phases.tls_ms.unwrap();
    assert!(tls >= 150.0, "tls {tls}");
    // The delay is the handshake's: the other phases are shorter (relative, not `< 100 ms`).
    assert!(r.phases.connect_ms.unwrap() < tls, "{:?}", r.phases);
    assert!(r.phases.first_byte_ms.unwrap() < tls, "{:?}", r.phases);
}

#[tokio::test]
async fn expired_certificate() {
    let ca = Ca::new("probe test CA");
    let addr = https_server(ca.leaf(&["localhost"], (2000, 1, 1), (2001, 1, 1)), Duration::ZERO).await;
    let r = probe(format!("https://localhost:{}/", addr.port()), Some(&ca)).await;
    assert!(!r.up);
    assert_eq!(r.failure_kind(), Some(FailureKind::TlsExpired), "{:?}", r.failure);
    assert!(r.failure.as_ref().unwrap().message.contains("expired"));
    assert!(r.phases.connect_ms.is_some());
    assert_eq!(r.phases.tls_ms, None, "handshake did not complete");
    assert_eq!(r.http.unwrap().cert_expires_at, Some(Utc.with_ymd_and_hms(2001, 1, 1, 0, 0, 0).unwrap()));
}

#[tokio::test]
async fn wrong_name_certificate() {
    let ca = Ca::new("probe test CA");
    let addr = https_server(ca.leaf(&["other.example"], VALID_FROM, VALID_TO), Duration::ZERO).await;
    let r = probe(format!("https://localhost:{}/", addr.port()), Some(&ca)).await;
    assert_eq!(r.failure_kind(), Some(FailureKind::TlsNameMismatch), "{:?}", r.failure);
}

#[tokio::test]
async fn untrusted_certificate() {
    let ca = Ca::new("probe test CA");
    let addr = https_server(ca.leaf(&["localhost"], VALID_FROM, VALID_TO), Duration::ZERO).await;
    // no extra root: the private CA is unknown
    let r = probe(format!("https://localhost:{}/", addr.port()), None).await;
    assert_eq!(r.failure_kind(), Some(FailureKind::TlsUntrusted), "{:?}", r.failure);
    // trusting a different CA does not help
    let other = Ca::new("another CA");
    let r = probe(format!("https://localhost:{}/", addr.port()), Some(&other)).await;
    assert_eq!(r.failure_kind(), Some(FailureKind::TlsUntrusted), "{:?}", r.failure);
}

#[tokio::test]
async fn plain_http_server_on_https_url_is_tls_failure() {
    let (addr, _) = serve(None, |mut io| async move {
        let _ = io.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    })
    .await;
    let r = probe(format!("https://{addr}/"), None).await;
    assert_eq!(r.failure_kind(), Some(FailureKind::Tls), "{:?}", r.failure);
}

#[tokio::test]
async fn invalid_extra_root_pem() {
    let ca = Ca::new("probe test CA");
    let addr = https_server(ca.leaf(&["localhost"], VALID_FROM, VALID_TO), Duration::ZERO).await;
    let mut spec = HttpSpec::new(format!("https://localhost:{}/", addr.port()));
    spec.extra_root_ca_pem = Some(b"not a pem".to_vec());
    let r = run(&ProbeSpec::Http(spec), &opts(3000)).await;
    assert_eq!(r.failure_kind(), Some(FailureKind::Tls));
    assert!(r.failure.unwrap().message.contains("PEM"));
}
