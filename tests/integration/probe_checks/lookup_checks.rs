//! The address lookup of an HTTP check against nameservers that do what
//! real ones sometimes do: answer with a CNAME chain, truncate the UDP answer
//! (so the question is asked again over TCP), send a stray answer first, fail,
//! lose a question.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use geoctl::probe::{run, FailureKind, HttpSpec, ProbeSpec};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

use super::support::{opts, read_request, serve};

/// How the test nameserver behaves.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// `www.chain.test` is a CNAME to `edge.cdn.test`, whose A record is 127.0.0.1.
    Chain,
    /// Over UDP only an empty, truncated answer; the real one over TCP.
    Truncate,
    /// First an answer with another id, then the right one.
    Stray,
    /// SERVFAIL to everything.
    ServFail,
    /// The first UDP question gets no answer at all (lost), later ones the right one.
    LoseFirst,
    /// No answer to anything.
    Silent,
}

struct Nameserver {
    addr: SocketAddr,
    udp: Arc<AtomicUsize>,
    tcp: Arc<AtomicUsize>,
}

fn answer(query: &Message, mode: Mode, over_tcp: bool) -> Message {
    let mut resp = Message::response(query.metadata.id, query.metadata.op_code);
    resp.metadata.recursion_desired = query.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.add_queries(query.queries.clone());
    if mode == Mode::ServFail {
        resp.metadata.response_code = ResponseCode::ServFail;
        return resp;
    }
    if mode == Mode::Truncate && !over_tcp {
        resp.metadata.truncation = true;
        return resp;
    }
    let Some(q) = query.queries.first() else { return resp };
    if q.query_type != RecordType::A {
        return resp;
    }
    let edge = Name::from_ascii("edge.cdn.test.").unwrap();
    if mode == Mode::Chain {
        resp.add_answer(Record::from_rdata(q.name.clone(), 60, RData::CNAME(CNAME(edge.clone()))));
        resp.add_answer(Record::from_rdata(edge, 60, RData::A(A(Ipv4Addr::LOCALHOST))));
    } else {
        // An unrelated record first: only the asked name's address counts.
        resp.add_answer(Record::from_rdata(edge, 60, RData::A(A(Ipv4Addr::new(127, 0, 0, 9)))));
        resp.add_answer(Record::from_rdata(q.name.clone(), 60, RData::A(A(Ipv4Addr::LOCALHOST))));
    }
    resp
}

/// A nameserver on 127.0.0.1 (UDP and TCP on the same port).
async fn nameserver(mode: Mode) -> Nameserver {
    // A free UDP port may be taken for TCP (another test's connection): try another one.
    let mut tries = 0;
    let (udp_sock, tcp_listener) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        match TcpListener::bind(udp.local_addr().unwrap()).await {
            Ok(tcp) => break (Arc::new(udp), tcp),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 50 => tries += 1,
            Err(e) => panic!("no port free for both UDP and TCP: {e}"),
        }
    };
    let addr = udp_sock.local_addr().unwrap();
    let (udp, tcp) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let counter = udp.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, peer)) = udp_sock.recv_from(&mut buf).await {
            let Ok(query) = Message::from_vec(&buf[..n]) else { continue };
            if counter.fetch_add(1, Ordering::SeqCst) == 0 && mode == Mode::LoseFirst || mode == Mode::Silent {
                continue;
            }
            if mode == Mode::Stray {
                let mut stray = answer(&query, mode, false);
                stray.metadata.id = query.metadata.id.wrapping_add(1);
                stray.answers.clear();
                stray.add_answer(Record::from_rdata(
                    query.queries[0].name.clone(),
                    60,
                    RData::A(A(Ipv4Addr::new(127, 0, 0, 66))),
                ));
                let _ = udp_sock.send_to(&stray.to_vec().unwrap(), peer).await;
            }
            let _ = udp_sock.send_to(&answer(&query, mode, false).to_vec().unwrap(), peer).await;
        }
    });
    let counter = tcp.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = tcp_listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let Ok(len) = stream.read_u16().await else { return };
                let mut buf = vec![0u8; usize::from(len)];
                if stream.read_exact(&mut buf).await.is_err() {
                    return;
                }
                let Ok(query) = Message::from_vec(&buf) else { return };
                let bytes = answer(&query, mode, true).to_vec().unwrap();
                let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&bytes);
                let _ = stream.write_all(&framed).await;
            });
        }
    });
    Nameserver { addr, udp, tcp }
}

/// An HTTP server on 127.0.0.1 answering 200.
async fn web() -> u16 {
    let (addr, _) = serve(None, |mut io| async move {
        let _ = read_request(&mut io).await;
        let _ = io.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
    })
    .await;
    addr.port()
}

async fn check(host: &str, port: u16, ns: &Nameserver) -> geoctl::probe::ProbeResult {
    let mut o = opts(3000);
    o.nameserver = Some(ns.addr);
    run(&ProbeSpec::Http(HttpSpec::new(format!("http://{host}:{port}/"))), &o).await
}

#[tokio::test]
async fn a_cname_chain_is_followed_to_the_address() {
    let (ns, port) = (nameserver(Mode::Chain).await, web().await);
    let r = check("www.chain.test", port, &ns).await;
    assert!(r.up, "{:?}", r.failure);
    assert_eq!(r.resolved_address, Some(Ipv4Addr::LOCALHOST.into()));
    assert!(r.phases.dns_ms.is_some());
}

#[tokio::test]
async fn a_truncated_answer_is_asked_again_over_tcp() {
    let (ns, port) = (nameserver(Mode::Truncate).await, web().await);
    let r = check("big.answer.test", port, &ns).await;
    assert!(r.up, "{:?}", r.failure);
    assert_eq!(r.resolved_address, Some(Ipv4Addr::LOCALHOST.into()), "the unrelated record was used");
    assert_eq!((ns.udp.load(Ordering::SeqCst), ns.tcp.load(Ordering::SeqCst)), (1, 1));
}

#[tokio::test]
async fn an_answer_to_another_question_is_ignored() {
    let (ns, port) = (nameserver(Mode::Stray).await, web().await);
    let r = check("stray.test", port, &ns).await;
    // 127.0.0.66 (the stray answer's address) has no server: taking it would fail the check.
    assert!(r.up, "{:?}", r.failure);
    assert_eq!(r.resolved_address, Some(Ipv4Addr::LOCALHOST.into()));
}

#[tokio::test]
async fn a_server_failure_is_a_dns_failure_that_says_so() {
    let (ns, port) = (nameserver(Mode::ServFail).await, web().await);
    let r = check("broken.test", port, &ns).await;
    assert!(!r.up);
    assert_eq!(r.failure_kind(), Some(FailureKind::Dns), "{:?}", r.failure);
    let message = &r.failure.as_ref().unwrap().message;
    assert!(message.contains("SERVFAIL"), "{message}");
    // Asked twice (two attempts), then gave up: no endless retry, well within the timeout.
    assert_eq!(ns.udp.load(Ordering::SeqCst), 2);
    assert!(r.phases.dns_ms.unwrap() < 1000.0, "{:?}", r.phases);
    assert_eq!(r.phases.connect_ms, None);
}

#[tokio::test]
async fn a_lost_question_is_asked_again_within_the_timeout() {
    let (ns, port) = (nameserver(Mode::LoseFirst).await, web().await);
    // A 3 s check asks again after 1.5 s (the system's 5 s wait, fitted so both rounds fit).
    let r = check("lossy.test", port, &ns).await;
    assert!(r.up, "a lost UDP question failed the check: {:?}", r.failure);
    assert_eq!(r.resolved_address, Some(Ipv4Addr::LOCALHOST.into()));
    assert_eq!(ns.udp.load(Ordering::SeqCst), 2);
    // The wait for the lost answer is DNS time: the phase says the lookup was slow.
    let dns = r.phases.dns_ms.unwrap();
    assert!((1400.0..2900.0).contains(&dns), "{:?}", r.phases);
}

#[tokio::test]
async fn a_check_that_times_out_waiting_for_the_nameserver_says_so() {
    let (ns, port) = (nameserver(Mode::Silent).await, web().await);
    let mut o = opts(1000);
    o.nameserver = Some(ns.addr);
    let r = run(&ProbeSpec::Http(HttpSpec::new(format!("http://silent.test:{port}/"))), &o).await;
    let failure = r.failure.expect("down");
    assert!(!r.up);
    assert!(failure.message.contains("resolv"), "the wait was for the name, not the connection: {failure:?}");
    assert!(!failure.message.contains("connecting"), "{failure:?}");
    // Nothing was measured but the total: no lookup finished, no connection was tried.
    assert_eq!((r.phases.dns_ms, r.phases.connect_ms), (None, None), "{:?}", r.phases);
    assert!(ns.udp.load(Ordering::SeqCst) >= 2, "the question was asked again");
}
