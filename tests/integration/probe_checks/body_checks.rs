//! Content codings decoded before the keyword check, and responses cut short.

use std::io::Write;

use geoctl::probe::{run, FailureKind, HttpSpec, ProbeSpec};
use tokio::io::AsyncWriteExt;

use super::support::{acceptor, opts, read_request, serve, Ca};

const PAGE: &[u8] = b"<html><body>all systems operational</body></html>";

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn gzip_page_with_the_keyword_is_up() {
    let (addr, _) = serve(None, |mut io| async move {
        let req = read_request(&mut io).await.to_ascii_lowercase();
        let body = gzip(PAGE);
        let mut resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n", body.len()).into_bytes();
        if req.contains("accept-encoding: gzip") {
            resp.extend_from_slice(b"Content-Encoding: gzip\r\n\r\n");
            resp.extend_from_slice(&body);
        } else {
            resp = b"HTTP/1.1 406 Not Acceptable\r\nContent-Length: 0\r\n\r\n".to_vec();
        }
        let _ = io.write_all(&resp).await;
    })
    .await;
    let mut spec = HttpSpec::new(format!("http://{addr}/"));
    spec.keyword = Some(("systems operational".into(), true));
    let r = run(&ProbeSpec::Http(spec.clone()), &opts(3000)).await;
    assert!(r.up, "{:?}", r.failure);
    let h = r.http.unwrap();
    assert_eq!(h.content_encoding.as_deref(), Some("gzip"));
    assert_eq!(h.response_size, gzip(PAGE).len() as u64);
    assert_eq!(h.decoded_size, Some(PAGE.len() as u64));

    spec.keyword = Some(("systems operational".into(), false));
    let r = run(&ProbeSpec::Http(spec), &opts(3000)).await;
    assert_eq!(r.failure_kind(), Some(FailureKind::Keyword), "{:?}", r.failure);
}

#[tokio::test]
async fn tls_stream_ending_without_close_notify() {
    let ca = Ca::new("truncation CA");
    let tls = acceptor(ca.leaf(&["localhost"], (2020, 1, 1), (2045, 1, 1)));
    let (addr, _) = serve(Some(tls), |mut io| async move {
        let req = read_request(&mut io).await;
        let resp: &[u8] = if req.starts_with("GET /short ") {
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
        } else {
            b"HTTP/1.1 200 OK\r\n\r\nuntil the end"
        };
        let _ = io.write_all(resp).await;
        let _ = io.flush().await;
        // dropped without shutdown(): the TCP stream ends with no close_notify
    })
    .await;
    let probe = |path: &str| {
        let mut spec = HttpSpec::new(format!("https://localhost:{}/{path}", addr.port()));
        spec.extra_root_ca_pem = Some(ca.pem());
        async move { run(&ProbeSpec::Http(spec), &opts(3000)).await }
    };
    let r = probe("short").await;
    assert_eq!(r.failure_kind(), Some(FailureKind::Protocol), "{:?}", r.failure);
    assert!(r.failure.unwrap().message.contains("close_notify"));
    // A body delimited by the end of the stream has no length to fall short of.
    let r = probe("close").await;
    assert!(r.up, "{:?}", r.failure);
    assert_eq!(r.http.unwrap().response_size, 13);
}
