//! The address lookup of a check: one A and/or AAAA question to a recursive
//! nameserver, over a UDP socket of its own (TCP when the answer is truncated).
//!
//! This is what a check's DNS phase times, so it does only that: no cache, no
//! connection pool, no background task. Every check still asks the nameserver.
//! Names the stub does not handle (single labels, which need search domains;
//! `localhost`; names in `/etc/hosts`) go through hickory's resolver instead
//! (see [`super::resolve`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::{DNSClass, Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use super::IpPreference;

/// The UDP payload size offered with EDNS(0): the DNS flag day 2020 value,
/// which avoids IP fragmentation.
const UDP_PAYLOAD: u16 = 1232;

/// How to ask.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    /// Tried in order at each attempt.
    pub servers: std::sync::Arc<Vec<SocketAddr>>,
    /// Per question and server.
    pub timeout: Duration,
    /// Rounds over the servers.
    pub attempts: usize,
}

/// Why no address came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StubError {
    /// No server answered in time.
    Timeout,
    /// The name exists with no address of the family, or does not exist.
    NoRecords(ResponseCode),
    /// Something else: a refusal, a server failure, a socket error, a malformed answer.
    Failed(String),
}

/// The addresses of the fully-qualified `name`: `A`, `AAAA`, or both asked at
/// once (IPv4 first in the result; one family failing is not an error when the
/// other has addresses).
pub(crate) async fn lookup(name: &Name, family: IpPreference, upstream: &Upstream) -> Result<Vec<IpAddr>, StubError> {
    match family {
        IpPreference::V4 => ask(name, RecordType::A, upstream).await,
        IpPreference::V6 => ask(name, RecordType::AAAA, upstream).await,
        IpPreference::Any => {
            let (a, aaaa) = tokio::join!(ask(name, RecordType::A, upstream), ask(name, RecordType::AAAA, upstream));
            match (a, aaaa) {
                (Ok(mut a), Ok(aaaa)) => {
                    a.extend(aaaa);
                    Ok(a)
                }
                (Ok(found), Err(_)) | (Err(_), Ok(found)) => Ok(found),
                // The more telling error of the two: a failure over "no records", "no records" over a timeout
                // of the other family.
                (Err(a), Err(b)) => Err(match (a, b) {
                    (e @ StubError::Failed(_), _) | (_, e @ StubError::Failed(_)) => e,
                    (e @ StubError::NoRecords(_), _) | (_, e @ StubError::NoRecords(_)) => e,
                    (e, _) => e,
                }),
            }
        }
    }
}

/// One question, to each server in turn, `attempts` rounds.
async fn ask(name: &Name, kind: RecordType, upstream: &Upstream) -> Result<Vec<IpAddr>, StubError> {
    let mut last = StubError::Failed("no nameserver configured".into());
    for _ in 0..upstream.attempts.max(1) {
        for &server in upstream.servers.iter() {
            match exchange(server, name, kind, upstream.timeout).await {
                Ok(answer) => match answer.metadata.response_code {
                    ResponseCode::NoError => {
                        let found = addresses(&answer, name, kind);
                        return if found.is_empty() {
                            Err(StubError::NoRecords(ResponseCode::NoError))
                        } else {
                            Ok(found)
                        };
                    }
                    ResponseCode::NXDomain => return Err(StubError::NoRecords(ResponseCode::NXDomain)),
                    // A server failure or refusal: another server (or round) may do better.
                    code => last = StubError::Failed(format!("no records ({})", super::dns::rcode_name(code))),
                },
                Err(e) => last = e,
            }
        }
    }
    Err(last)
}

/// One question as asked: what an answer must match.
struct Question<'a> {
    id: u16,
    name: &'a Name,
    kind: RecordType,
}

impl Question<'_> {
    /// The query on the wire (RFC 1035 §4.1): a header asking for recursion, the question (class
    /// IN) and an EDNS(0) OPT record offering [`UDP_PAYLOAD`] (RFC 6891). Written by hand: it is
    /// fixed but for the id, the name and the type, and hickory's general encoder (name compression
    /// table, record machinery) cost a check more than the rest of the question.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + 1 + self.name.len() + 4 + 11);
        out.extend_from_slice(&self.id.to_be_bytes());
        // QR 0 (a query), opcode 0, RD 1; then one question, no answer or authority record, one
        // additional record (the OPT).
        out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]);
        for label in self.name.iter() {
            // `Name` holds labels of at most 63 bytes.
            out.push(label.len() as u8);
            out.extend_from_slice(label);
        }
        out.push(0);
        out.extend_from_slice(&u16::from(self.kind).to_be_bytes());
        out.extend_from_slice(&u16::from(DNSClass::IN).to_be_bytes());
        // OPT: the root name, its type, the payload size in the class field, then extended rcode,
        // version and flags all 0 (no DNSSEC), and no options.
        out.push(0);
        out.extend_from_slice(&u16::from(RecordType::OPT).to_be_bytes());
        out.extend_from_slice(&UDP_PAYLOAD.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        out
    }

    /// Whether `m` is the answer to this question: same id, a response, same question.
    fn answered_by(&self, m: &Message) -> bool {
        m.metadata.id == self.id
            && m.metadata.message_type == MessageType::Response
            && match m.queries.first() {
                Some(a) => a.query_type() == self.kind && a.name().eq_ignore_root_case(self.name),
                // A server error may come without the question.
                None => m.metadata.response_code != ResponseCode::NoError,
            }
    }
}

/// Sends one question to `server` and returns its answer (over TCP when the UDP one was truncated).
async fn exchange(server: SocketAddr, name: &Name, kind: RecordType, timeout: Duration) -> Result<Message, StubError> {
    let deadline = Instant::now() + timeout;
    let question = Question { id: rand::random(), name, kind };
    let bytes = question.encode();

    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let io = |e: std::io::Error| StubError::Failed(format!("querying {server}: {e}"));
    let socket = UdpSocket::bind(local).await.map_err(io)?;
    socket.connect(server).await.map_err(io)?;
    socket.send(&bytes).await.map_err(io)?;
    let mut buf = vec![0u8; usize::from(UDP_PAYLOAD) + 256];
    let answer = loop {
        let n = match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
            Err(_) => return Err(StubError::Timeout),
            Ok(r) => r.map_err(io)?,
        };
        // Anything that is not the answer to this question (a late answer to an earlier one on a
        // reused port, a spoofing attempt) is ignored; the deadline bounds the wait.
        match Message::from_vec(&buf[..n]) {
            Ok(m) if question.answered_by(&m) => break m,
            _ => continue,
        }
    };
    if !answer.metadata.truncation {
        return Ok(answer);
    }
    tokio::time::timeout_at(deadline, over_tcp(server, &bytes, &question)).await.map_err(|_| StubError::Timeout)?
}

/// The question again over TCP (RFC 7766), for an answer too large for UDP.
async fn over_tcp(server: SocketAddr, query: &[u8], question: &Question<'_>) -> Result<Message, StubError> {
    let io = |e: std::io::Error| StubError::Failed(format!("querying {server} over TCP: {e}"));
    let mut stream = TcpStream::connect(server).await.map_err(io)?;
    let len = u16::try_from(query.len()).map_err(|_| StubError::Failed("query too long".into()))?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await.map_err(io)?;
    let len = stream.read_u16().await.map_err(io)?;
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await.map_err(io)?;
    match Message::from_vec(&buf) {
        Ok(m) if question.answered_by(&m) => Ok(m),
        Ok(_) => Err(StubError::Failed(format!("{server} answered another question over TCP"))),
        Err(e) => Err(StubError::Failed(format!("malformed answer from {server}: {e}"))),
    }
}

/// The addresses of `kind` the answer gives for `name`, following its CNAME chain.
fn addresses(answer: &Message, name: &Name, kind: RecordType) -> Vec<IpAddr> {
    let mut owner = name.clone();
    // A chain longer than the answer section is a loop.
    for _ in 0..=answer.answers.len() {
        let alias = answer.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(target) if r.name.eq_ignore_root_case(&owner) => Some(target.0.clone()),
            _ => None,
        });
        match alias {
            Some(next) => owner = next,
            None => break,
        }
    }
    let mut found = Vec::new();
    for r in &answer.answers {
        if !r.name.eq_ignore_root_case(&owner) && !r.name.eq_ignore_root_case(name) {
            continue;
        }
        let ip = match (&r.data, kind) {
            (RData::A(a), RecordType::A) => IpAddr::V4(a.0),
            (RData::AAAA(a), RecordType::AAAA) => IpAddr::V6(a.0),
            _ => continue,
        };
        if !found.contains(&ip) {
            found.push(ip);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::rr::rdata::{A, CNAME};
    use hickory_resolver::proto::rr::Record;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn addresses_follow_the_cname_chain_and_ignore_strangers() {
        let mut m = Message::response(1, hickory_resolver::proto::op::OpCode::Query);
        m.add_answer(Record::from_rdata(name("www.example.com."), 60, RData::CNAME(CNAME(name("edge.cdn.net.")))));
        m.add_answer(Record::from_rdata(name("edge.cdn.net."), 60, RData::A(A(Ipv4Addr::new(192, 0, 2, 7)))));
        m.add_answer(Record::from_rdata(name("other.example."), 60, RData::A(A(Ipv4Addr::new(192, 0, 2, 9)))));
        assert_eq!(addresses(&m, &name("www.example.com."), RecordType::A), vec![IpAddr::from([192, 0, 2, 7])]);
        assert!(addresses(&m, &name("www.example.com."), RecordType::AAAA).is_empty());
    }

    /// The hand-written query is the one hickory's encoder writes for the same question.
    #[test]
    fn the_query_is_hickorys_to_the_byte() {
        use hickory_resolver::proto::op::{Edns, Query};
        for (host, kind) in [("example.com.", RecordType::A), ("a-b.c.example.org.", RecordType::AAAA)] {
            let name = name(host);
            let question = Question { id: 0xbeef, name: &name, kind };
            let mut m = Message::query();
            m.metadata.id = 0xbeef;
            m.metadata.recursion_desired = true;
            m.add_query(Query::query(name.clone(), kind));
            let mut edns = Edns::new();
            edns.set_max_payload(UDP_PAYLOAD);
            m.set_edns(edns);
            assert_eq!(question.encode(), m.to_vec().unwrap(), "{host} {kind}");
        }
    }

    /// An answer matches its question by id, direction, type and name.
    #[test]
    fn only_the_answer_to_the_question_is_taken() {
        use hickory_resolver::proto::op::{OpCode, Query};
        let asked = name("www.example.com.");
        let question = Question { id: 7, name: &asked, kind: RecordType::A };
        let answer = |id: u16, host: &str, kind: RecordType| {
            let mut m = Message::response(id, OpCode::Query);
            m.add_query(Query::query(name(host), kind));
            m
        };
        assert!(question.answered_by(&answer(7, "www.example.com", RecordType::A)), "with or without the root");
        assert!(!question.answered_by(&answer(8, "www.example.com.", RecordType::A)));
        assert!(!question.answered_by(&answer(7, "www.example.org.", RecordType::A)));
        assert!(!question.answered_by(&answer(7, "www.example.com.", RecordType::AAAA)));
        let mut query = answer(7, "www.example.com.", RecordType::A);
        query.metadata.message_type = MessageType::Query;
        assert!(!question.answered_by(&query));
        let mut refused = Message::response(7, OpCode::Query);
        refused.metadata.response_code = ResponseCode::Refused;
        assert!(question.answered_by(&refused), "a server error may come without the question");
    }

    #[test]
    fn a_cname_loop_ends() {
        let mut m = Message::response(1, hickory_resolver::proto::op::OpCode::Query);
        m.add_answer(Record::from_rdata(name("a.example."), 60, RData::CNAME(CNAME(name("b.example.")))));
        m.add_answer(Record::from_rdata(name("b.example."), 60, RData::CNAME(CNAME(name("a.example.")))));
        assert!(addresses(&m, &name("a.example."), RecordType::A).is_empty());
    }
}
