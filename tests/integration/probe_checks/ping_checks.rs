use std::time::Duration;

use geoctl::probe::{run, FailureKind, PingMethod, PingMode, PingSpec, ProbeKind, ProbeResult, ProbeSpec};

use super::support::{opts, skipped};

async fn ping(host: &str, mode: PingMode) -> ProbeResult {
    let mut s = PingSpec::new(host);
    s.count = 3;
    s.interval = Duration::from_millis(50);
    s.mode = mode;
    run(&ProbeSpec::Ping(s), &opts(2000)).await
}

fn assert_ok(r: &ProbeResult) {
    assert!(r.up, "{:?}", r.failure);
    assert_eq!(r.kind, ProbeKind::Ping);
    let p = r.ping.as_ref().unwrap();
    assert_eq!(p.sent, 3);
    assert_eq!(p.received, 3);
    assert_eq!(p.loss_pct, 0.0);
    assert_eq!(p.rtts_ms.len(), 3);
    let (min, avg, max) = (p.min_ms.unwrap(), p.avg_ms.unwrap(), p.max_ms.unwrap());
    assert!(min <= avg && avg <= max, "{min} {avg} {max}");
    assert!(max < 1000.0);
    assert_eq!(r.phases.connect_ms, None);
    assert_eq!(r.phases.first_byte_ms, None);
    // three requests 50 ms apart
    assert!(r.phases.total_ms >= 100.0);
}

#[tokio::test]
async fn ping_loopback_auto() {
    let r = ping("127.0.0.1", PingMode::Auto).await;
    if r.failure_kind() == Some(FailureKind::NotPermitted) {
        let msg = &r.failure.as_ref().unwrap().message;
        assert!(msg.contains("ping_group_range") && msg.contains("CAP_NET_RAW"), "{msg}");
        skipped("ping_loopback_auto", format!("ICMP not permitted here: {msg}"));
        return;
    }
    assert_ok(&r);
    assert_eq!(r.phases.dns_ms, None);
    assert_eq!(r.resolved_address, Some("127.0.0.1".parse().unwrap()));
}

#[tokio::test]
async fn ping_loopback_raw_socket() {
    let r = ping("127.0.0.1", PingMode::Raw).await;
    if r.failure_kind() == Some(FailureKind::NotPermitted) {
        skipped("ping_loopback_raw_socket", "no CAP_NET_RAW");
        return;
    }
    assert_ok(&r);
    assert_eq!(r.ping.unwrap().method, Some(PingMethod::Raw));
}

#[tokio::test]
async fn ping_loopback_datagram_socket() {
    let r = ping("127.0.0.1", PingMode::Dgram).await;
    match r.failure_kind() {
        // unprivileged ICMP is disabled by net.ipv4.ping_group_range here
        Some(FailureKind::NotPermitted) => {
            let msg = &r.failure.as_ref().unwrap().message;
            assert!(msg.contains("sysctl -w net.ipv4.ping_group_range"), "{msg}");
            skipped("ping_loopback_datagram_socket", "unprivileged ICMP is disabled (net.ipv4.ping_group_range)");
        }
        _ => {
            assert_ok(&r);
            assert_eq!(r.ping.unwrap().method, Some(PingMethod::Dgram));
        }
    }
}

#[tokio::test]
async fn ping_ipv6_loopback() {
    let r = ping("::1", PingMode::Auto).await;
    match r.failure_kind() {
        Some(FailureKind::NotPermitted) | Some(FailureKind::Other) => {
            skipped("ping_ipv6_loopback", format!("{:?}", r.failure));
        }
        _ => assert_ok(&r),
    }
}

#[tokio::test]
async fn ping_localhost_name_resolves() {
    let r = ping("localhost", PingMode::Auto).await;
    if r.failure_kind() == Some(FailureKind::NotPermitted) {
        skipped("ping_localhost_name_resolves", "ICMP not permitted here");
        return;
    }
    assert_ok(&r);
    assert!(r.phases.dns_ms.is_some());
}
