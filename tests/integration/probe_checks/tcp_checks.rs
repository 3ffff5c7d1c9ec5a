use geoctl::probe::{run, FailureKind, ProbeKind, ProbeSpec, TcpSpec};

use super::support::{closed_port, opts, serve};

#[tokio::test]
async fn open_port_is_up() {
    let (addr, _) = serve(None, |_io| async {}).await;
    let r = run(&ProbeSpec::Tcp(TcpSpec::new("127.0.0.1", addr.port())), &opts(3000)).await;
    assert!(r.up, "{:?}", r.failure);
    assert_eq!(r.kind, ProbeKind::Tcp);
    assert_eq!(r.target, format!("127.0.0.1:{}", addr.port()));
    assert_eq!(r.phases.dns_ms, None);
    assert!(r.phases.connect_ms.is_some());
    assert_eq!(r.phases.tls_ms, None);
    assert_eq!(r.phases.first_byte_ms, None);
    assert_eq!(r.resolved_address, Some(addr.ip()));
}

#[tokio::test]
async fn hostname_resolution_is_timed() {
    let (addr, _) = serve(None, |_io| async {}).await;
    let spec = ProbeSpec::parse_target(ProbeKind::Tcp, &format!("localhost:{}", addr.port())).unwrap();
    let r = run(&spec, &opts(3000)).await;
    assert!(r.up, "{:?}", r.failure);
    assert!(r.phases.dns_ms.is_some());
    assert!(r.timeline.unwrap().connect_ms.unwrap() >= r.phases.dns_ms.unwrap());
}

#[tokio::test]
async fn closed_port_is_refused() {
    let closed = closed_port();
    let r = run(&ProbeSpec::Tcp(TcpSpec::new("127.0.0.1", closed.addr.port())), &opts(3000)).await;
    assert!(!r.up);
    assert_eq!(r.failure_kind(), Some(FailureKind::Refused), "{:?}", r.failure);
    assert_eq!(r.phases.connect_ms, None);
}

#[tokio::test]
async fn expect_closed() {
    let closed = closed_port();
    let mut spec = TcpSpec::new("127.0.0.1", closed.addr.port());
    spec.expect_closed = true;
    let r = run(&ProbeSpec::Tcp(spec), &opts(3000)).await;
    assert!(r.up, "{:?}", r.failure);
    assert!(r.failure.is_none());

    let (open, _) = serve(None, |_io| async {}).await;
    let mut spec = TcpSpec::new("127.0.0.1", open.port());
    spec.expect_closed = true;
    let r = run(&ProbeSpec::Tcp(spec), &opts(3000)).await;
    assert!(!r.up);
    assert_eq!(r.failure_kind(), Some(FailureKind::PortOpen));
}
