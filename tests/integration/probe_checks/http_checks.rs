use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use geoctl::probe::{run, Auth, FailureKind, HttpSpec, ProbeResult, ProbeSpec, StatusRanges};
use tokio::io::AsyncWriteExt;

use super::support::{closed_port, dns_server, opts, read_request, read_request_with_body, serve, BoxIo};

async fn respond(mut io: BoxIo, resp: &'static [u8]) {
    let _ = read_request(&mut io).await;
    let _ = io.write_all(resp).await;
    let _ = io.shutdown().await;
}

async fn http(url: String, timeout_ms: u64) -> ProbeResult {
    run(&ProbeSpec::Http(HttpSpec::new(url)), &opts(timeout_ms)).await
}

async fn http_spec(spec: HttpSpec, timeout_ms: u64) -> ProbeResult {
    run(&ProbeSpec::Http(spec), &opts(timeout_ms)).await
}

#[tokio::test]
async fn ip_literal_has_no_dns_or_tls_phase() {
    let (addr, _) =
        serve(None, |io| respond(io, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: test\r\n\r\nhello")).await;
    let r = http(format!("http://{addr}/"), 5000).await;
    assert!(r.up, "{:?}", r.failure);
    assert_eq!(r.phases.dns_ms, None);
    assert!(r.phases.connect_ms.is_some());
    assert_eq!(r.phases.tls_ms, None);
    assert!(r.phases.first_byte_ms.is_some());
    let total = r.phases.total_ms;
    assert!(total >= r.phases.connect_ms.unwrap() + r.phases.first_byte_ms.unwrap());
    assert_eq!(r.resolved_address, Some(addr.ip()));
    let h = r.http.as_ref().unwrap();
    assert_eq!(h.status, Some(200));
    assert_eq!(h.version.as_deref(), Some("HTTP/1.1"));
    assert_eq!(h.response_size, 5);
    assert_eq!(h.cert_expires_at, None);
    assert_eq!(h.redirects, 0);
    let tl = r.timeline.unwrap();
    assert_eq!(tl.namelookup_ms, None);
    assert!(tl.first_byte_ms.unwrap() >= tl.connect_ms.unwrap());

    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["kind"], "http");
    assert!(json["phases"]["dns_ms"].is_null());
    assert!(json["phases"]["tls_ms"].is_null());
    assert!(json["phases"]["connect_ms"].is_f64());
    assert!(json["failure"].is_null());
}

#[tokio::test]
async fn delayed_response_lands_in_first_byte() {
    let (addr, _) = serve(None, |mut io| async move {
        let _ = read_request(&mut io).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        let _ = io.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await;
    })
    .await;
    let r = http(format!("http://{addr}/slow"), 5000).await;
    assert!(r.up, "{:?}", r.failure);
    let fb = r.phases.first_byte_ms.unwrap();
    let connect = r.phases.connect_ms.unwrap();
    assert!(fb >= 150.0, "first byte {fb}");
    // Relative, not `< 100 ms`: a loaded machine may be slow, but the delay is the server's.
    assert!(connect < fb, "connect {connect} vs first byte {fb}");
    assert_eq!(r.phases.dns_ms, None);
    assert!(r.timeline.unwrap().first_byte_ms.unwrap() >= 150.0);
    assert_eq!(r.http.unwrap().status, Some(204));
}

#[tokio::test]
async fn slow_dns_lands_in_dns_phase() {
    let (addr, _) = serve(None, |io| respond(io, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")).await;
    let dns = dns_server(&[("slow.test.", Ipv4Addr::LOCALHOST)], Duration::from_millis(120)).await;
    let mut o = opts(5000);
    o.nameserver = Some(dns.addr);
    let spec = HttpSpec::new(format!("http://slow.test:{}/", addr.port()));
    let r = run(&ProbeSpec::Http(spec), &o).await;
    assert!(r.up, "{:?}", r.failure);
    let d = r.phases.dns_ms.expect("dns phase");
    assert!(d >= 120.0, "dns {d}");
    // The delay is the resolver's: each later phase is shorter than it (relative, not `< 100 ms`).
    assert!(r.phases.connect_ms.unwrap() < d, "{:?}", r.phases);
    assert!(r.phases.first_byte_ms.unwrap() < d, "{:?}", r.phases);
    assert!(r.timeline.unwrap().connect_ms.unwrap() >= d);
    assert_eq!(r.resolved_address, Some(addr.ip()));
    assert!(dns.queries.load(Ordering::SeqCst) >= 1);

    // Resolvers are shared between checks but never cache: the next check
    // asks the nameserver again and measures the same delay.
    let before = dns.queries.load(Ordering::SeqCst);
    let again = run(&ProbeSpec::Http(HttpSpec::new(format!("http://slow.test:{}/", addr.port()))), &o).await;
    assert!(again.phases.dns_ms.expect("dns phase") >= 120.0, "{:?}", again.phases);
    assert!(dns.queries.load(Ordering::SeqCst) > before);
}

#[tokio::test]
async fn hosts_file_is_honoured() {
    // `localhost` comes from /etc/hosts; the configured nameserver is a dead port.
    let (addr, _) = serve(None, |io| respond(io, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")).await;
    let r = http(format!("http://localhost:{}/", addr.port()), 5000).await;
    assert!(r.up, "{:?}", r.failure);
    assert!(r.phases.dns_ms.is_some());
    assert_eq!(r.resolved_address, Some(addr.ip()));
}

#[tokio::test]
async fn unknown_host_is_dns_failure() {
    let dns = dns_server(&[], Duration::ZERO).await;
    let mut o = opts(3000);
    o.nameserver = Some(dns.addr);
    let r = run(&ProbeSpec::Http(HttpSpec::new("http://nope.test/")), &o).await;
    assert!(!r.up);
    assert_eq!(r.failure_kind(), Some(FailureKind::Dns), "{:?}", r.failure);
    assert!(r.phases.dns_ms.is_some());
    assert_eq!(r.phases.connect_ms, None);
}

#[tokio::test]
async fn refused_port() {
    let closed = closed_port();
    let t = Instant::now();
    let r = http(format!("http://{}/", closed.addr), 3000).await;
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(!r.up);
    assert_eq!(r.failure_kind(), Some(FailureKind::Refused), "{:?}", r.failure);
    assert_eq!(r.phases.connect_ms, None);
    assert_eq!(r.phases.first_byte_ms, None);
    assert!(r.http.is_none());
}

#[tokio::test]
async fn silent_server_times_out() {
    let (addr, _) = serve(None, |mut io| async move {
        let _ = read_request(&mut io).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let t = Instant::now();
    let r = http(format!("http://{addr}/"), 500).await;
    let el = t.elapsed();
    assert!(el >= Duration::from_millis(450) && el < Duration::from_secs(3), "{el:?}");
    assert_eq!(r.failure_kind(), Some(FailureKind::Timeout), "{:?}", r.failure);
    assert!(r.failure.unwrap().message.contains("first response byte"));
    assert!(r.phases.connect_ms.is_some());
    assert_eq!(r.phases.first_byte_ms, None);
    assert!(r.phases.total_ms >= 450.0);
}

#[tokio::test]
async fn redirect_loop_is_too_many_redirects() {
    let (addr, conns) =
        serve(None, |io| respond(io, b"HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n")).await;
    let mut spec = HttpSpec::new(format!("http://{addr}/loop"));
    spec.max_redirects = 3;
    let r = http_spec(spec, 5000).await;
    assert_eq!(r.failure_kind(), Some(FailureKind::TooManyRedirects), "{:?}", r.failure);
    assert_eq!(conns.load(Ordering::SeqCst), 4, "initial request + 3 redirects");
    assert_eq!(r.http.as_ref().unwrap().redirects, 3);
}

#[tokio::test]
async fn redirects_are_followed_and_first_hop_phases_kept() {
    let (addr, conns) = serve(None, |mut io| async move {
        let req = read_request(&mut io).await;
        if req.starts_with("GET /start ") {
            tokio::time::sleep(Duration::from_millis(120)).await;
            let _ = io.write_all(b"HTTP/1.1 301 Moved\r\nLocation: /final?x=1\r\nContent-Length: 0\r\n\r\n").await;
        } else if req.starts_with("GET /final?x=1 ") {
            let _ = io.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nwelcome home").await;
        } else {
            let _ = io.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n").await;
        }
    })
    .await;
    let mut spec = HttpSpec::new(format!("http://{addr}/start"));
    spec.keyword = Some(("home".into(), true));
    let r = http_spec(spec, 5000).await;
    assert!(r.up, "{:?}", r.failure);
    assert_eq!(conns.load(Ordering::SeqCst), 2);
    // phases are those of the first hop (the slow redirect)
    assert!(r.phases.first_byte_ms.unwrap() >= 120.0);
    let h = r.http.unwrap();
    assert_eq!(h.status, Some(200));
    assert_eq!(h.redirects, 1);
    assert!(h.final_url.ends_with("/final?x=1"), "{}", h.final_url);
    assert_eq!(h.response_size, 12);
}

#[tokio::test]
async fn zero_max_redirects_judges_the_3xx() {
    let (addr, _) =
        serve(None, |io| respond(io, b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n")).await;
    let mut spec = HttpSpec::new(format!("http://{addr}/"));
    spec.max_redirects = 0;
    spec.expected_status = "200-299".parse().unwrap();
    let r = http_spec(spec, 3000).await;
    assert_eq!(r.failure_kind(), Some(FailureKind::HttpStatus));
    assert_eq!(r.http.unwrap().status, Some(302));
}

#[tokio::test]
async fn endless_body_is_bounded() {
    let (addr, _) = serve(None, |mut io| async move {
        let _ = read_request(&mut io).await;
        let _ = io.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n").await;
        let chunk = vec![b'x'; 64 * 1024];
        loop {
            if io.write_all(&chunk).await.is_err() {
                break;
            }
        }
    })
    .await;
    let mut spec = HttpSpec::new(format!("http://{addr}/"));
    spec.max_body_bytes = 2 * 1024 * 1024;
    spec.keyword = Some(("needle".into(), true));
    let t = Instant::now();
    let r = http_spec(spec, 10_000).await;
    assert!(t.elapsed() < Duration::from_secs(8));
    assert_eq!(r.failure_kind(), Some(FailureKind::BodyTooLarge), "{:?}", r.failure);
    let h = r.http.unwrap();
    assert_eq!(h.status, Some(200));
    assert_eq!(h.response_size, 2 * 1024 * 1024);
}

#[tokio::test]
async fn endless_chunked_body_is_bounded() {
    let (addr, _) = serve(None, |mut io| async move {
        let _ = read_request(&mut io).await;
        let _ = io.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").await;
        let mut chunk = b"8000\r\n".to_vec();
        chunk.extend(std::iter::repeat_n(b'y', 0x8000));
        chunk.extend_from_slice(b"\r\n");
        loop {
            if io.write_all(&chunk).await.is_err() {
                break;
            }
        }
    })
    .await;
    let mut spec = HttpSpec::new(format!("http://{addr}/"));
    spec.max_body_bytes = 1024 * 1024;
    let r = http_spec(spec, 10_000).await;
    assert_eq!(r.failure_kind(), Some(FailureKind::BodyTooLarge), "{:?}", r.failure);
}

#[tokio::test]
async fn huge_headers_are_bounded() {
    let (addr, _) = serve(None, |mut io| async move {
        let _ = read_request(&mut io).await;
        let _ = io.write_all(b"HTTP/1.1 200 OK\r\n").await;
        let line = format!("X-Junk: {}\r\n", "a".repeat(1000));
        loop {
            if io.write_all(line.as_bytes()).await.is_err() {
                break;
            }
        }
    })
    .await;
    let t = Instant::now();
    let r = http(format!("http://{addr}/"), 10_000).await;
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(r.failure_kind(), Some(FailureKind::HeadersTooLarge), "{:?}", r.failure);
    assert!(r.failure.as_ref().unwrap().message.contains("65536 bytes"), "{:?}", r.failure);
}

/// A small head with `fields` header fields (Content-Length among them).
async fn head_with_fields(fields: usize) -> ProbeResult {
    let (addr, _) = serve(None, move |mut io| async move {
        let _ = read_request(&mut io).await;
        let mut head = String::from("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n");
        for i in 1..fields {
            head.push_str(&format!("X-F{i}: v\r\n"));
        }
        head.push_str("\r\nok");
        let _ = io.write_all(head.as_bytes()).await;
        let _ = io.shutdown().await;
    })
    .await;
    http(format!("http://{addr}/"), 5000).await
}

#[tokio::test]
async fn header_fields_are_bounded_by_count_with_a_message_saying_so() {
    // At the limit the check passes: the bound is not below what it says.
    let r = head_with_fields(100).await;
    assert!(r.up, "{:?}", r.failure);
    // One more, in a head of ~1.4 kB, fails as too large, and the message names the count, not bytes.
    let r = head_with_fields(101).await;
    assert!(!r.up);
    assert_eq!(r.failure_kind(), Some(FailureKind::HeadersTooLarge), "{:?}", r.failure);
    let msg = &r.failure.as_ref().unwrap().message;
    assert!(msg.contains("more than 100 header fields"), "{msg}");
}

#[tokio::test]
async fn slow_drip_body_ends_at_timeout() {
    let (addr, _) = serve(None, |mut io| async move {
        let _ = read_request(&mut io).await;
        let _ = io.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n").await;
        for _ in 0..1000 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if io.write_all(b"z").await.is_err() {
                break;
            }
        }
    })
    .await;
    let t = Instant::now();
    let r = http(format!("http://{addr}/"), 700).await;
    let el = t.elapsed();
    assert!(el < Duration::from_secs(3), "{el:?}");
    assert_eq!(r.failure_kind(), Some(FailureKind::Timeout), "{:?}", r.failure);
    assert!(r.failure.as_ref().unwrap().message.contains("body"));
    assert!(r.phases.first_byte_ms.is_some());
    let h = r.http.unwrap();
    assert_eq!(h.status, Some(200));
    assert!(h.response_size > 0 && h.response_size < 1000, "{}", h.response_size);
}

#[tokio::test]
async fn status_and_keyword_checks() {
    let (addr, _) = serve(None, |mut io| async move {
        let req = read_request(&mut io).await;
        let resp: &[u8] = if req.starts_with("GET /down ") {
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nall is well"
        };
        let _ = io.write_all(resp).await;
    })
    .await;
    let mut spec = HttpSpec::new(format!("http://{addr}/down"));
    spec.expected_status = "200-299".parse().unwrap();
    let r = http_spec(spec, 3000).await;
    assert_eq!(r.failure_kind(), Some(FailureKind::HttpStatus));
    assert!(r.failure.unwrap().message.contains("503"));

    let mut spec = HttpSpec::new(format!("http://{addr}/down"));
    spec.expected_status = "200-299,503".parse().unwrap();
    assert!(http_spec(spec, 3000).await.up);

    let mut spec = HttpSpec::new(format!("http://{addr}/"));
    spec.keyword = Some(("missing".into(), true));
    assert_eq!(http_spec(spec, 3000).await.failure_kind(), Some(FailureKind::Keyword));

    let mut spec = HttpSpec::new(format!("http://{addr}/"));
    spec.keyword = Some(("well".into(), false));
    assert_eq!(http_spec(spec, 3000).await.failure_kind(), Some(FailureKind::Keyword));

    let mut spec = HttpSpec::new(format!("http://{addr}/"));
    spec.keyword = Some(("well".into(), true));
    assert!(http_spec(spec, 3000).await.up);
}

#[tokio::test]
async fn chunked_and_close_delimited_bodies() {
    let (addr, _) = serve(None, |mut io| async move {
        let req = read_request(&mut io).await;
        if req.starts_with("GET /chunked ") {
            let _ = io
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nHello\r\nf;x=y\r\n, chunked world\r\n0\r\nX-Trailer: 1\r\n\r\n")
                .await;
            // keep the connection open: the chunked framing must end the read
            tokio::time::sleep(Duration::from_secs(5)).await;
        } else {
            let _ = io.write_all(b"HTTP/1.0 200 OK\r\n\r\nuntil the end").await;
            let _ = io.shutdown().await;
        }
    })
    .await;
    let mut spec = HttpSpec::new(format!("http://{addr}/chunked"));
    spec.keyword = Some(("chunked world".into(), true));
    let r = http_spec(spec, 3000).await;
    assert!(r.up, "{:?}", r.failure);
    assert!(r.phases.total_ms < 2000.0);
    assert_eq!(r.http.unwrap().response_size, 20);

    let r = http(format!("http://{addr}/close"), 3000).await;
    assert!(r.up, "{:?}", r.failure);
    let h = r.http.unwrap();
    assert_eq!(h.response_size, 13);
    assert_eq!(h.version.as_deref(), Some("HTTP/1.0"));
}

#[tokio::test]
async fn interim_1xx_is_skipped_and_head_has_no_body() {
    let (addr, _) = serve(None, |mut io| async move {
        let req = read_request(&mut io).await;
        if req.starts_with("HEAD ") {
            // Content-Length describes the GET body; none follows
            let _ = io.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n").await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        } else {
            let _ = io
                .write_all(
                    b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                )
                .await;
        }
    })
    .await;
    let r = http(format!("http://{addr}/"), 3000).await;
    assert!(r.up, "{:?}", r.failure);
    assert_eq!(r.http.unwrap().status, Some(200));

    let mut spec = HttpSpec::new(format!("http://{addr}/"));
    spec.method = "HEAD".into();
    let r = http_spec(spec, 3000).await;
    assert!(r.up, "{:?}", r.failure);
    assert!(r.phases.total_ms < 2000.0);
    assert_eq!(r.http.unwrap().response_size, 0);
}

#[tokio::test]
async fn request_carries_method_headers_body_and_auth() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let (addr, _) = serve(None, move |mut io| {
        let seen = s2.clone();
        async move {
            let req = read_request_with_body(&mut io).await;
            seen.lock().unwrap().push(req);
            let _ = io.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n").await;
        }
    })
    .await;
    let mut spec = HttpSpec::new(format!("http://{addr}/api?q=1"));
    spec.method = "POST".into();
    spec.headers = vec![("X-Probe".into(), "geo".into())];
    spec.body = Some(b"{\"a\":1}".to_vec());
    spec.auth = Auth::Basic { user: "Aladdin".into(), pass: "open sesame".into() };
    let r = http_spec(spec, 3000).await;
    assert!(r.up, "{:?}", r.failure);

    let mut spec = HttpSpec::new(format!("http://{addr}/b"));
    spec.auth = Auth::Bearer("tok123".into());
    assert!(http_spec(spec, 3000).await.up);

    let reqs = seen.lock().unwrap().clone();
    assert!(reqs[0].starts_with("POST /api?q=1 HTTP/1.1\r\n"), "{}", reqs[0]);
    assert!(reqs[0].contains(&format!("Host: 127.0.0.1:{}\r\n", addr.port())));
    assert!(reqs[0].contains("Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"));
    assert!(reqs[0].contains("X-Probe: geo\r\n"));
    assert!(reqs[0].contains("Content-Length: 7\r\n"));
    assert!(reqs[0].ends_with("\r\n\r\n{\"a\":1}"), "the body follows the head: {:?}", reqs[0]);
    assert!(reqs[1].contains("Authorization: Bearer tok123\r\n"));
}

#[tokio::test]
async fn malformed_responses_are_protocol_failures() {
    let (addr, _) = serve(None, |mut io| async move {
        let req = read_request(&mut io).await;
        if req.starts_with("GET /garbage ") {
            let _ = io.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n").await;
        } else if req.starts_with("GET /short ") {
            let _ = io.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc").await;
        }
        // otherwise: close without responding
        let _ = io.shutdown().await;
    })
    .await;
    for path in ["garbage", "short", "nothing"] {
        let r = http(format!("http://{addr}/{path}"), 3000).await;
        assert_eq!(r.failure_kind(), Some(FailureKind::Protocol), "{path}: {:?}", r.failure);
    }
}

#[tokio::test]
async fn cdn_headers_are_reported() {
    let (addr, _) = serve(None, |io| {
        respond(
            io,
            b"HTTP/1.1 200 OK\r\nServer: cloudflare\r\nCF-RAY: 8a1b2c3d4e5f6789-AMS\r\ncf-cache-status: HIT\r\nContent-Length: 0\r\n\r\n",
        )
    })
    .await;
    let r = http(format!("http://{addr}/"), 3000).await;
    let cdn = r.http.unwrap().cdn.unwrap();
    assert_eq!(cdn.provider.as_deref(), Some("Cloudflare"));
    assert_eq!(cdn.edge_location.as_deref(), Some("AMS"));
    assert_eq!(cdn.cache_status.as_deref(), Some("HIT"));
}

#[tokio::test]
async fn probe_all_addresses_reports_each() {
    let (addr, _) = serve(None, |io| respond(io, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")).await;
    // 127.0.0.1 serves, 127.0.0.2 on the same port refuses
    let dns = dns_server(
        &[("multi.test.", Ipv4Addr::new(127, 0, 0, 1)), ("multi.test.", Ipv4Addr::new(127, 0, 0, 2))],
        Duration::from_millis(30),
    )
    .await;
    let mut o = opts(3000);
    o.nameserver = Some(dns.addr);
    let mut spec = HttpSpec::new(format!("http://multi.test:{}/", addr.port()));
    spec.probe_all_addresses = true;
    let r = run(&ProbeSpec::Http(spec), &o).await;
    assert_eq!(r.per_address.len(), 2, "{:?}", r);
    let a1 = r.per_address.iter().find(|a| a.address == addr.ip()).unwrap();
    let a2 = r.per_address.iter().find(|a| a.address != addr.ip()).unwrap();
    assert!(a1.up && a1.status == Some(200));
    assert!(a1.phases.dns_ms.unwrap() >= 30.0);
    assert!(!a2.up);
    assert!(a2.failure.is_some());
    assert!(!r.up, "one address down => check down");
    assert!(r.failure.is_some());
}

#[tokio::test]
async fn invalid_spec_is_a_result_not_a_panic() {
    let r = http("ftp://example.com/".into(), 1000).await;
    assert!(!r.up);
    assert_eq!(r.failure_kind(), Some(FailureKind::Other));
    assert!(r.failure.unwrap().message.contains("unsupported scheme `ftp`"));
    let bad: Result<StatusRanges, _> = "2xx".parse();
    assert!(bad.is_err());
    let (addr, _) = serve(None, |io| respond(io, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")).await;
    let mut spec = HttpSpec::new(format!("http://{addr}/"));
    spec.headers = vec![("Bad Header".into(), "x".into())];
    let r = http_spec(spec, 1000).await;
    assert_eq!(r.failure_kind(), Some(FailureKind::Other));
}
