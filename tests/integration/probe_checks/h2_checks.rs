//! HTTP/2: offered in the TLS handshake (ALPN `h2,http/1.1`), forced either
//! way, and timed like HTTP/1.1 (the server's SETTINGS are not the first byte).

use std::time::Duration;

use bytes::Bytes;
use geoctl::probe::{run, FailureKind, HttpSpec, HttpVersion, ProbeResult, ProbeSpec};
use tokio::io::AsyncWriteExt;

use super::support::{acceptor, acceptor_with_alpn, opts, read_request, serve, BoxIo, Ca};

const VALID: ((i32, u8, u8), (i32, u8, u8)) = ((2020, 1, 1), (2045, 1, 1));

/// Serves every stream of an HTTP/2 connection: `delay`, then 200 with a short body.
async fn serve_h2(io: BoxIo, delay: Duration) {
    let Ok(mut conn) = h2::server::handshake(io).await else {
        return;
    };
    while let Some(Ok((_request, mut respond))) = conn.accept().await {
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let head = http::Response::builder().status(200).header("content-length", "12").body(()).unwrap();
            if let Ok(mut body) = respond.send_response(head, false) {
                let _ = body.send_data(Bytes::from_static(b"hello over 2"), true);
            }
        });
    }
}

async fn probe(url: String, ca: &Ca, version: HttpVersion) -> ProbeResult {
    let mut spec = HttpSpec::new(url);
    spec.extra_root_ca_pem = Some(ca.pem());
    spec.version = version;
    spec.keyword = Some(("over 2".into(), true));
    run(&ProbeSpec::Http(spec), &opts(5000)).await
}

#[tokio::test]
async fn h2_is_negotiated_and_every_phase_measured() {
    let ca = Ca::new("h2 test CA");
    let tls = acceptor_with_alpn(ca.leaf(&["localhost"], VALID.0, VALID.1), &[b"h2", b"http/1.1"]);
    let (addr, _) = serve(Some(tls), |io| serve_h2(io, Duration::from_millis(150))).await;
    let r = probe(format!("https://localhost:{}/", addr.port()), &ca, HttpVersion::Auto).await;
    assert!(r.up, "{:?}", r.failure);
    let h = r.http.as_ref().unwrap();
    assert_eq!(h.version.as_deref(), Some("HTTP/2"));
    assert_eq!((h.status, h.response_size), (Some(200), 12));
    let p = r.phases;
    assert!(p.dns_ms.is_some() && p.connect_ms.is_some() && p.tls_ms.is_some(), "{p:?}");
    // The server's SETTINGS arrive at once; the response 150 ms later.
    let fb = p.first_byte_ms.unwrap();
    assert!(fb >= 150.0, "first byte {fb}");
    assert!(p.total_ms >= fb + p.tls_ms.unwrap());
    let t = r.timeline.unwrap();
    assert!(t.first_byte_ms.unwrap() >= t.tls_ms.unwrap() + 150.0, "{t:?}");

    // --http1.1 against a server that only speaks h2: the handshake fails.
    let r = probe(format!("https://localhost:{}/", addr.port()), &ca, HttpVersion::Http1).await;
    assert!(!r.up);
}

#[tokio::test]
async fn http1_only_server_is_unchanged_and_forcing_h2_fails_clearly() {
    let ca = Ca::new("h1 test CA");
    let tls = acceptor(ca.leaf(&["localhost"], VALID.0, VALID.1));
    let (addr, _) = serve(Some(tls), |mut io| async move {
        let _ = read_request(&mut io).await;
        let _ = io.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello over 2").await;
        let _ = io.shutdown().await;
    })
    .await;
    let url = format!("https://localhost:{}/", addr.port());
    let r = probe(url.clone(), &ca, HttpVersion::Auto).await;
    assert!(r.up, "{:?}", r.failure);
    assert_eq!(r.http.unwrap().version.as_deref(), Some("HTTP/1.1"));

    let r = probe(url, &ca, HttpVersion::Http2).await;
    assert!(!r.up);
    let f = r.failure.unwrap();
    assert!(matches!(f.kind, FailureKind::Protocol | FailureKind::Tls), "{f:?}");
}

#[tokio::test]
async fn cleartext_h2_with_prior_knowledge() {
    let (addr, _) = serve(None, |io| serve_h2(io, Duration::ZERO)).await;
    let mut spec = HttpSpec::new(format!("http://{addr}/"));
    spec.version = HttpVersion::Http2;
    let r = run(&ProbeSpec::Http(spec), &opts(3000)).await;
    assert!(r.up, "{:?}", r.failure);
    assert_eq!(r.http.unwrap().version.as_deref(), Some("HTTP/2"));
    assert_eq!(r.phases.tls_ms, None);
}
