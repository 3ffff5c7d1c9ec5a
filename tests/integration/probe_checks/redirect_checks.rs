//! Credentials stay with their origin: two local servers on different ports.

use std::sync::{Arc, Mutex};

use geoctl::probe::{run, Auth, HttpSpec, ProbeSpec};
use tokio::io::AsyncWriteExt;

use super::support::{opts, read_request, serve};

#[tokio::test]
async fn no_credential_header_reaches_another_origin() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let seen_b = seen.clone();
    let (other, _) = serve(None, move |mut io| {
        let seen = seen_b.clone();
        async move {
            let req = read_request(&mut io).await;
            seen.lock().unwrap().push(req);
            let _ = io.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
        }
    })
    .await;
    let seen_a = seen.clone();
    let (origin, _) = serve(None, move |mut io| {
        let seen = seen_a.clone();
        async move {
            let req = read_request(&mut io).await;
            let location = if req.starts_with("GET /same ") {
                "/elsewhere".to_string()
            } else if req.starts_with("GET /elsewhere ") {
                format!("http://127.0.0.1:{}/landing", other.port())
            } else {
                "/".to_string()
            };
            seen.lock().unwrap().push(req);
            let resp = format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n");
            let _ = io.write_all(resp.as_bytes()).await;
        }
    })
    .await;
    let mut spec = HttpSpec::new(format!("http://{origin}/same"));
    spec.auth = Auth::Bearer("bearer-secret".into());
    spec.headers = [
        ("X-Api-Key", "k-secret"),
        ("Cookie", "session=c-secret"),
        ("X-Session-Id", "s-secret"),
        ("X-Signature", "sig-secret"),
        ("X-Auth-Token", "t-secret"),
        ("X-Client-Secret", "cs-secret"),
        ("X-Trace", "trace-1"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    let r = run(&ProbeSpec::Http(spec), &opts(3000)).await;
    assert!(r.up, "{:?}", r.failure);
    assert_eq!(r.http.unwrap().redirects, 2);

    let reqs = seen.lock().unwrap().clone();
    assert_eq!(reqs.len(), 3, "{reqs:?}");
    // Same origin (first hop and the same-origin redirect): everything is sent.
    for req in &reqs[..2] {
        for secret in ["bearer-secret", "k-secret", "c-secret", "s-secret", "sig-secret", "t-secret", "cs-secret"] {
            assert!(req.contains(secret), "{secret} missing in:\n{req}");
        }
    }
    // The other origin: only what is not a credential.
    let landing = &reqs[2];
    assert!(landing.starts_with("GET /landing "), "{landing}");
    assert!(landing.contains("X-Trace: trace-1"), "{landing}");
    assert!(!landing.contains("-secret"), "a credential crossed origins:\n{landing}");
    assert!(!landing.to_ascii_lowercase().contains("authorization"), "{landing}");
}
