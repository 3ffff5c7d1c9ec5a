//! Channels and the delivery of the notification outbox, against real receivers: local HTTP
//! servers that check what webhook, Slack and PagerDuty receivers check, Debian's Alertmanager
//! routing to a local webhook, and PyPI's aiosmtpd with STARTTLS and AUTH.
//!
//! Incidents, events and outbox rows are written with SQL, as the evaluator writes them.

mod channels;
mod delivery;
mod peers;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::probe_checks::support::{read_request_with_body, BoxIo};
use crate::support::TestDb;
use tokio::io::AsyncWriteExt;

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

/// A local HTTP receiver: keeps every request and answers with the status and body it is set to.
pub struct Receiver {
    pub addr: SocketAddr,
    pub got: Arc<Mutex<Vec<Received>>>,
    answer: Arc<Mutex<(u16, String, Duration)>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        Self::start_on(0).await
    }

    /// A receiver on a given port of 127.0.0.1 (one that was closed until now).
    pub async fn start_on(port: u16) -> Receiver {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let answer = Arc::new(Mutex::new((200, "ok".to_string(), Duration::ZERO)));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (g, a) = (got.clone(), answer.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(handle(Box::new(stream), g.clone(), a.clone()));
            }
        });
        Receiver { addr, got, answer }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn answer(&self, status: u16, body: &str) {
        let mut answer = self.answer.lock().unwrap();
        (answer.0, answer.1) = (status, body.to_string());
    }

    /// Answers each request only after `delay`, as a receiver that hangs does.
    pub fn delay(&self, delay: Duration) {
        self.answer.lock().unwrap().2 = delay;
    }

    pub fn requests(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

async fn handle(mut io: BoxIo, got: Arc<Mutex<Vec<Received>>>, answer: Arc<Mutex<(u16, String, Duration)>>) {
    let text = read_request_with_body(&mut io).await;
    let Some((head, body)) = text.split_once("\r\n\r\n") else { return };
    let mut lines = head.lines();
    let path = lines.next().unwrap_or_default().split(' ').nth(1).unwrap_or_default().to_string();
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    got.lock().unwrap().push(Received { path, headers, body: body.to_string() });
    let (status, body, delay) = answer.lock().unwrap().clone();
    tokio::time::sleep(delay).await;
    let response = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    let _ = io.write_all(response.as_bytes()).await;
    let _ = io.shutdown().await;
}

/// A multi-threaded runtime: receivers answer while the test blocks on a geoctl process.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A monitor `api` with an open incident whose `opened` event is owed to each named channel.
/// Returns the incident id.
pub fn open_incident(db: &TestDb, monitor: &str, channels: &[&str]) -> i64 {
    db.exec(&format!(
        "INSERT INTO monitors (name, type, target) VALUES ('{monitor}', 'http', 'https://{monitor}.example.com/health')"
    ));
    db.exec(&format!(
        "INSERT INTO incidents (kind, cause, severity, monitor_id, summary, regions, first_error)
         SELECT 'monitor', 'down', 'critical', id, '{monitor} is down in 2 of 3 regions',
                '{{eu-west,us-east}}', 'connect: connection refused'
         FROM monitors WHERE name = '{monitor}'"
    ));
    let id: i64 = db.scalar("SELECT max(id) FROM incidents").parse().unwrap();
    add_event(db, id, "opened", channels);
    id
}

/// An event of an incident, owed to each named channel, as the evaluator writes it.
pub fn add_event(db: &TestDb, incident: i64, kind: &str, channels: &[&str]) {
    if kind == "resolved" {
        db.exec(&format!("UPDATE incidents SET resolved_at = now() WHERE id = {incident}"));
    }
    let names = channels.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(",");
    db.exec(&format!(
        "WITH e AS (INSERT INTO incident_events (incident_id, kind) VALUES ({incident}, '{kind}') RETURNING id)
         INSERT INTO notifications (event_id, channel_id, idempotency_key)
         SELECT e.id, c.id, 'evt-' || e.id || '-' || c.name FROM e, alert_channels c WHERE c.name IN ({names})"
    ));
}
