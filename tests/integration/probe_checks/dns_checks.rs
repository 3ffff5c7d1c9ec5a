use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use geoctl::probe::{run, DnsSpec, FailureKind, ProbeKind, ProbeSpec, RecordType};
use tokio::net::UdpSocket;

use super::support::{dns_server, opts};

fn spec(name: &str, expected: &[&str], resolver: std::net::SocketAddr) -> ProbeSpec {
    let mut s = DnsSpec::new(name, RecordType::A);
    s.expected = expected.iter().map(|e| e.to_string()).collect();
    s.resolver = Some(resolver);
    ProbeSpec::Dns(s)
}

#[tokio::test]
async fn a_record_matches_expected_and_is_timed() {
    let dns = dns_server(
        &[("www.test.", Ipv4Addr::new(127, 0, 0, 7)), ("www.test.", Ipv4Addr::new(127, 0, 0, 8))],
        Duration::from_millis(120),
    )
    .await;
    let r = run(&spec("www.test", &["127.0.0.8"], dns.addr), &opts(3000)).await;
    assert!(r.up, "{:?}", r.failure);
    assert_eq!(r.kind, ProbeKind::Dns);
    let d = r.dns.as_ref().unwrap();
    assert_eq!(d.rcode.as_deref(), Some("NOERROR"));
    let mut answers = d.answers.clone();
    answers.sort();
    assert_eq!(answers, vec!["127.0.0.7", "127.0.0.8"]);
    assert!(d.resolution_ms >= 120.0, "{}", d.resolution_ms);
    assert_eq!(r.phases.dns_ms, Some(d.resolution_ms));
    assert_eq!(r.phases.connect_ms, None);
    assert_eq!(d.resolver, Some(dns.addr.to_string()));

    // any answer is fine when nothing is expected
    let r = run(&spec("www.test.", &[], dns.addr), &opts(3000)).await;
    assert!(r.up, "{:?}", r.failure);
}

#[tokio::test]
async fn mismatch_nxdomain_and_nodata() {
    let dns = dns_server(&[("www.test.", Ipv4Addr::new(127, 0, 0, 7))], Duration::ZERO).await;
    let r = run(&spec("www.test", &["127.0.0.9"], dns.addr), &opts(3000)).await;
    assert!(!r.up);
    assert_eq!(r.failure_kind(), Some(FailureKind::DnsMismatch), "{:?}", r.failure);
    assert!(r.failure.unwrap().message.contains("127.0.0.9"));
    assert_eq!(r.dns.unwrap().answers, vec!["127.0.0.7"]);

    let r = run(&spec("nope.test", &[], dns.addr), &opts(3000)).await;
    assert_eq!(r.failure_kind(), Some(FailureKind::Dns), "{:?}", r.failure);
    assert_eq!(r.dns.unwrap().rcode.as_deref(), Some("NXDOMAIN"));

    // existing name, no MX records
    let mut s = DnsSpec::new("www.test", RecordType::MX);
    s.resolver = Some(dns.addr);
    let r = run(&ProbeSpec::Dns(s), &opts(3000)).await;
    assert_eq!(r.failure_kind(), Some(FailureKind::Dns), "{:?}", r.failure);
    assert_eq!(r.dns.unwrap().rcode.as_deref(), Some("NOERROR"));
}

#[tokio::test]
async fn unresponsive_resolver_times_out() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let t = Instant::now();
    let r = run(&spec("www.test", &[], addr), &opts(600)).await;
    let el = t.elapsed();
    assert!(el < Duration::from_secs(3), "{el:?}");
    assert!(!r.up);
    assert_eq!(r.failure_kind(), Some(FailureKind::Timeout), "{:?}", r.failure);
    drop(silent);
}

#[tokio::test]
async fn options_nameserver_is_used_when_spec_has_none() {
    let dns = dns_server(&[("www.test.", Ipv4Addr::new(127, 0, 0, 7))], Duration::ZERO).await;
    let mut o = opts(3000);
    o.nameserver = Some(dns.addr);
    let s = ProbeSpec::parse_target(ProbeKind::Dns, "www.test A").unwrap();
    let r = run(&s, &o).await;
    assert!(r.up, "{:?}", r.failure);
    assert_eq!(r.target, "www.test A");
}
