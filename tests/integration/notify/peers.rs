//! Real peers: Debian's Alertmanager routing geoctl's alerts to a local webhook, and PyPI's
//! aiosmtpd receiving geoctl's email over STARTTLS with AUTH. Both are installed by
//! `scripts/test`; without them these tests fail, they never skip.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use geoctl::notify::{deliver_due, DeliveryOptions, Notifier};

use super::{add_event, open_incident, runtime, Receiver};
use crate::probe_checks::support::Ca;
use crate::support::{ClosedPort, TestDb};

/// A child process killed when the test ends, however it ends.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port free a moment ago, for a peer that binds it itself.
fn free_port() -> u16 {
    let closed = ClosedPort::new();
    closed.port
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn alertmanager(dir: &std::path::Path, port: u16, webhook: &str) -> Peer {
    let binary = std::env::var("GEOCTL_TEST_ALERTMANAGER").unwrap_or_else(|_| "prometheus-alertmanager".into());
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname, incident]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: hook\n    webhook_configs:\n      - url: {webhook}\n        send_resolved: true\n"
        ),
    )
    .unwrap();
    let child = Command::new(&binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start Alertmanager ({binary}): {e}; scripts/test installs Debian's prometheus-alertmanager")
        });
    let peer = Peer(child);
    wait_until("Alertmanager to listen", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    peer
}

#[test]
fn an_alert_reaches_alertmanagers_receiver_and_resolves() {
    let rt = runtime();
    let hook = rt.block_on(Receiver::start());
    let db = TestDb::migrated();
    let port = free_port();
    let _am = alertmanager(&db.dir(), port, &hook.url("/alertmanager"));
    let am_url = format!("http://127.0.0.1:{port}");
    db.geoctl(&["channel", "add", "am", "--type", "alertmanager", "--url", &am_url]).success();
    let test = db.geoctl(&["channel", "test", "am"]).success();
    assert!(test.stderr.contains("delivered; the receiver answered 200"), "{}", test.stderr);

    let incident = open_incident(&db, "api", &["am"]);
    let pool = rt.block_on(sqlx::PgPool::connect(&db.url)).unwrap();
    let options = DeliveryOptions { alertmanager_repost: Duration::ZERO, ..DeliveryOptions::default() };
    let notifier = Notifier::new(options).unwrap();
    let report = rt.block_on(deliver_due(&pool, &notifier)).unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");
    assert_eq!(report.reposted, 1, "the open incident is posted again when its interval passed: {report:?}");

    let ours = |status: &str| {
        hook.requests().iter().any(|r| {
            let body = r.json();
            body["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["status"] == status && a["labels"]["incident"] == incident.to_string().as_str())
        })
    };
    wait_until("the firing alert at the receiver", Duration::from_secs(20), || ours("firing"));
    let firing = hook.requests().into_iter().find(|r| r.body.contains("GeoctlMonitorDown")).unwrap().json();
    let labels = &firing["alerts"][0]["labels"];
    assert_eq!(labels["alertname"], "GeoctlMonitorDown");
    assert_eq!(
        (labels["monitor"].as_str(), labels["severity"].as_str(), labels["kind"].as_str()),
        (Some("api"), Some("critical"), Some("monitor"))
    );
    assert!(firing["alerts"][0]["annotations"]["summary"].as_str().unwrap().contains("api is down"));

    add_event(&db, incident, "resolved", &["am"]);
    let report = rt.block_on(deliver_due(&pool, &notifier)).unwrap();
    assert_eq!((report.delivered, report.reposted), (1, 0), "a resolved incident is not re-posted: {report:?}");
    wait_until("the resolved alert at the receiver", Duration::from_secs(20), || ours("resolved"));
}

/// Base64 in 64-character lines between PEM armour.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

struct Smtp {
    _peer: Peer,
    port: u16,
    inbox: std::path::PathBuf,
}

fn smtp_server(dir: &std::path::Path, ca: &Ca, user: &str, password: &str) -> Smtp {
    let python = std::env::var("GEOCTL_TEST_AIOSMTPD_PYTHON").expect(
        "no aiosmtpd: run the tests with scripts/test, which installs PyPI aiosmtpd into a venv and sets GEOCTL_TEST_AIOSMTPD_PYTHON",
    );
    let leaf = ca.leaf(&["localhost", "127.0.0.1"], (2020, 1, 1), (2048, 1, 1));
    let chain: String = leaf.chain.iter().map(|c| pem("CERTIFICATE", c)).collect();
    let (cert, key) = (dir.join("smtp.crt"), dir.join("smtp.key"));
    std::fs::write(&cert, chain).unwrap();
    std::fs::write(&key, pem("PRIVATE KEY", leaf.key.secret_der())).unwrap();
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let port = free_port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/integration/notify/smtp_server.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg(port.to_string())
        .args([&cert, &key])
        .args([user, password])
        .arg(&inbox)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start aiosmtpd");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "aiosmtpd did not start");
    Smtp { _peer: Peer(child), port, inbox }
}

#[test]
fn email_arrives_over_starttls_with_auth_in_text_and_html() {
    let rt = runtime();
    let db = TestDb::migrated();
    let ca = Ca::new("geoctl test CA");
    let ca_file = db.dir().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let smtp = smtp_server(&db.dir(), &ca, "geoctl", "smtp-s3cret-pw");
    let port = smtp.port.to_string();
    let ca_arg = ca_file.display().to_string();
    let add = [
        "channel",
        "add",
        "mail",
        "--type",
        "email",
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        &port,
        "--smtp-user",
        "geoctl",
        "--secret-env",
        "SMTP_PASSWORD",
        "--from",
        "geoctl@example.com",
        "--to",
        "ops@example.com,oncall@example.com",
        "--ca-file",
        &ca_arg,
    ];
    let right = [("SMTP_PASSWORD", "smtp-s3cret-pw")];
    let run = db.geoctl_with(&add, &right).success();
    assert!(!run.stderr.contains("warning"), "the server answered, so no warning: {}", run.stderr);

    let wrong = [("SMTP_PASSWORD", "not-the-password")];
    let test = db.geoctl_with(&["channel", "test", "mail"], &wrong);
    assert_eq!(test.code, 1, "{}", test.stderr);
    assert!(test.stderr.contains("535"), "the server's answer: {}", test.stderr);
    assert!(!test.stderr.contains("not-the-password"), "{}", test.stderr);

    let test = db.geoctl_with(&["channel", "test", "mail"], &right).success();
    assert!(test.stderr.contains("delivered; the receiver answered 250"), "{}", test.stderr);

    // The outbox, from this process, with the password in a file (a Docker secret in a stack).
    db.exec(&format!("UPDATE alert_channels SET secret_ref = '{{\"file\": \"{}\"}}'", {
        let path = db.dir().join("smtp.pw");
        std::fs::write(&path, "smtp-s3cret-pw\n").unwrap();
        path.display().to_string()
    }));
    open_incident(&db, "api", &["mail"]);
    let pool = rt.block_on(sqlx::PgPool::connect(&db.url)).unwrap();
    let notifier = Notifier::new(DeliveryOptions::default()).unwrap();
    let report = rt.block_on(deliver_due(&pool, &notifier)).unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");
    assert_eq!(db.scalar("SELECT last_status FROM notifications"), "250");

    let mut files: Vec<_> = std::fs::read_dir(&smtp.inbox).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert_eq!(files.len(), 2, "the test message and the incident's");
    let mail = std::fs::read_to_string(&files[1]).unwrap();
    let key = db.scalar("SELECT idempotency_key FROM notifications");
    assert!(mail.contains("Subject: [OPENED CRITICAL] api is down in 2 of 3 regions"), "{mail}");
    assert!(mail.contains(&format!("Message-ID: <{key}@geoctl>")), "{mail}");
    assert!(mail.contains("Content-Type: multipart/alternative"), "{mail}");
    assert!(mail.contains("Content-Type: text/plain") && mail.contains("Content-Type: text/html"), "{mail}");
    assert!(mail.contains("To: ops@example.com, oncall@example.com"), "{mail}");
}
