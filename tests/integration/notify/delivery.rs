//! The outbox delivered to local receivers that check what real ones check.

use std::time::{Duration, Instant};

use geoctl::notify::{deliver_due, DeliveryOptions, Notifier};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{add_event, open_incident, runtime, Receiver};
use crate::support::{ClosedPort, TestDb};

/// Short timings, so a test waits for backoff in milliseconds rather than minutes.
fn options() -> DeliveryOptions {
    DeliveryOptions {
        timeout: Duration::from_secs(2),
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
        alertmanager_repost: Duration::from_secs(3600),
        ..DeliveryOptions::default()
    }
}

fn pool(rt: &tokio::runtime::Runtime, db: &TestDb) -> sqlx::PgPool {
    rt.block_on(sqlx::PgPool::connect(&db.url)).unwrap()
}

/// A secret file in the test's directory, for `--secret-file`.
fn secret_file(db: &TestDb, name: &str, value: &str) -> String {
    let path = db.dir().join(name);
    std::fs::write(&path, format!("{value}\n")).unwrap();
    path.display().to_string()
}

fn add_channel(db: &TestDb, args: &[&str]) {
    db.geoctl(&[&["channel", "add"][..], args].concat()).success();
}

const WEBHOOK_KEY: &str = "whsec_9f8e7d6c5b4a";
const ROUTING_KEY: &str = "R0UTINGKEY0123456789abcdef012345";

#[test]
fn webhook_slack_and_pagerduty_get_what_their_receivers_check() {
    let rt = runtime();
    let (hook, slack, pd) =
        rt.block_on(async { (Receiver::start().await, Receiver::start().await, Receiver::start().await) });
    pd.answer(202, r#"{"status":"success","message":"Event processed"}"#);
    let db = TestDb::migrated();
    let hook_url = hook.url("/geoctl");
    add_channel(
        &db,
        &["ops", "--type", "webhook", "--url", &hook_url, "--secret-file", &secret_file(&db, "w", WEBHOOK_KEY)],
    );
    let slack_secret = slack.url("/services/T0001/B0001/XXXXSLACKTOKEN");
    add_channel(&db, &["chat", "--type", "slack", "--secret-file", &secret_file(&db, "s", &slack_secret)]);
    let pd_url = pd.url("/v2/enqueue");
    add_channel(
        &db,
        &["pager", "--type", "pagerduty", "--url", &pd_url, "--secret-file", &secret_file(&db, "p", ROUTING_KEY)],
    );
    let incident = open_incident(&db, "api", &["ops", "chat", "pager"]);
    // A target with a password: receivers see it masked, as every other view of a monitor shows it.
    db.exec("UPDATE monitors SET target = 'https://ops:hunter2@api.example.com/health' WHERE name = 'api'");

    let pool = pool(&rt, &db);
    let notifier = Notifier::new(options()).unwrap();
    let report = rt.block_on(deliver_due(&pool, &notifier)).unwrap();
    assert_eq!((report.delivered, report.failed, report.retrying), (3, 0, 0), "{report:?}");

    // Webhook: version 1 body, a signature the receiver can verify, the row's idempotency key.
    let got = hook.requests();
    assert_eq!(got.len(), 1);
    let signature = got[0].header("X-Geoctl-Signature").expect("signed");
    let (t, v1) = signature.split_once(',').unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_KEY.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", got[0].body).as_bytes());
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(v1.strip_prefix("v1=").unwrap(), expected, "signature does not verify");
    let age = chrono::Utc::now().timestamp() - t.parse::<i64>().unwrap();
    assert!((0..60).contains(&age), "timestamp {t} is {age} s old");
    let key = db.scalar("SELECT n.idempotency_key FROM notifications n JOIN alert_channels c ON c.id = n.channel_id WHERE c.name = 'ops'");
    assert_eq!(got[0].header("Idempotency-Key"), Some(key.as_str()));
    let body = got[0].json();
    assert_eq!(body["version"], 1);
    assert_eq!(body["event"]["kind"], "opened");
    assert_eq!(body["incident"]["id"], incident);
    assert_eq!(body["incident"]["monitor"]["name"], "api");
    assert_eq!(body["incident"]["monitor"]["target"], "https://ops:****@api.example.com/health");
    assert!(!got[0].body.contains("hunter2"), "the target's password reached the receiver: {}", got[0].body);
    assert_eq!(body["incident"]["regions"], serde_json::json!(["eu-west", "us-east"]));
    assert!(body["title"].as_str().unwrap().contains("api is down"), "{body}");

    // Slack: an incoming-webhook message, posted to the URL that is the secret.
    let got = slack.requests();
    assert_eq!(got[0].path, "/services/T0001/B0001/XXXXSLACKTOKEN");
    let body = got[0].json();
    assert!(body["text"].as_str().is_some_and(|t| !t.is_empty()), "fallback text: {body}");
    assert_eq!(body["blocks"][0]["type"], "header");
    assert_eq!(body["blocks"][0]["text"]["type"], "plain_text");
    assert_eq!(body["blocks"][1]["type"], "section");
    assert_eq!(body["blocks"][1]["text"]["type"], "mrkdwn");

    // PagerDuty Events API v2: a trigger with the required payload fields.
    let got = pd.requests();
    let body = got[0].json();
    assert_eq!(body["routing_key"], ROUTING_KEY);
    assert_eq!(body["event_action"], "trigger");
    let dedup = format!("geoctl-incident-{incident}");
    assert_eq!(body["dedup_key"], dedup.as_str());
    let payload = &body["payload"];
    assert!(payload["summary"].as_str().is_some_and(|s| !s.is_empty() && s.len() <= 1024), "{payload}");
    assert_eq!(payload["source"], "https://ops:****@api.example.com/health");
    assert!(["critical", "error", "warning", "info"].contains(&payload["severity"].as_str().unwrap()));
    chrono::DateTime::parse_from_rfc3339(payload["timestamp"].as_str().unwrap()).expect("ISO 8601 timestamp");

    // Resolving: PagerDuty gets `resolve` for the same dedup_key; nothing else is due after.
    add_event(&db, incident, "resolved", &["ops", "chat", "pager"]);
    let report = rt.block_on(deliver_due(&pool, &notifier)).unwrap();
    assert_eq!(report.delivered, 3, "{report:?}");
    let resolve = pd.requests()[1].json();
    assert_eq!(
        (resolve["event_action"].as_str(), resolve["dedup_key"].as_str()),
        (Some("resolve"), Some(dedup.as_str()))
    );
    assert_eq!(hook.requests()[1].json()["event"]["kind"], "resolved");
    assert_eq!(db.scalar("SELECT count(*) FROM notifications WHERE state = 'delivered' AND attempts = 1"), "6");
    let report = rt.block_on(deliver_due(&pool, &notifier)).unwrap();
    assert_eq!(report, Default::default());
}

#[test]
fn a_refusal_is_recorded_with_its_status_and_no_secret_and_not_retried() {
    let rt = runtime();
    let pd = rt.block_on(Receiver::start());
    let echo = format!(
        r#"{{"status":"invalid event","message":"Event object is invalid","errors":["routing_key {ROUTING_KEY} is unknown"],"pad":"{}"}}"#,
        "x".repeat(300)
    );
    pd.answer(400, &echo);
    let db = TestDb::migrated();
    let pd_url = pd.url("/v2/enqueue");
    add_channel(
        &db,
        &["pager", "--type", "pagerduty", "--url", &pd_url, "--secret-file", &secret_file(&db, "p", ROUTING_KEY)],
    );
    open_incident(&db, "api", &["pager"]);
    let pool = pool(&rt, &db);
    let notifier = Notifier::new(options()).unwrap();
    let report = rt.block_on(deliver_due(&pool, &notifier)).unwrap();
    assert_eq!((report.delivered, report.failed), (0, 1), "{report:?}");
    assert_eq!(db.scalar("SELECT state || ' ' || last_status || ' ' || attempts FROM notifications"), "failed 400 1");
    let error = db.scalar("SELECT last_error FROM notifications");
    assert!(error.starts_with(r#"{"status":"invalid event""#), "{error}");
    assert!(error.len() <= 200 && !error.contains(ROUTING_KEY) && error.contains("****"), "{error}");

    std::thread::sleep(Duration::from_millis(300));
    rt.block_on(deliver_due(&pool, &notifier)).unwrap();
    assert_eq!(pd.requests().len(), 1, "a refusal is not sent again by itself");

    let list = db.geoctl(&["notification", "list", "--failed", "-o", "json"]).success();
    assert!(!list.stdout.contains(ROUTING_KEY), "{}", list.stdout);
    let rows = list.json();
    assert_eq!((rows[0]["state"].as_str(), rows[0]["last_status"].as_i64()), (Some("failed"), Some(400)));
    let id = rows[0]["id"].to_string();

    pd.answer(202, r#"{"status":"success"}"#);
    let run = db.geoctl(&["notification", "retry", &id]).success();
    assert!(run.stderr.contains("delivered to pager"), "{}", run.stderr);
    assert_eq!(db.scalar("SELECT state || ' ' || attempts FROM notifications"), "delivered 2");
    let same_key: Vec<_> = pd.requests().iter().map(|r| r.header("Idempotency-Key").unwrap().to_string()).collect();
    assert_eq!(same_key[0], same_key[1], "every attempt carries the same key");
    db.geoctl(&["notification", "retry", &id]).usage_error(&["was delivered"]);
    db.geoctl(&["notification", "retry", "999999"]).usage_error(&["no notification 999999"]);
}

#[test]
fn a_receiver_down_for_a_while_gets_everything_in_order_and_the_others_do_not_wait() {
    let rt = runtime();
    let up = rt.block_on(Receiver::start());
    let closed = ClosedPort::new();
    let port = closed.port;
    let db = TestDb::migrated();
    let key = secret_file(&db, "w", WEBHOOK_KEY);
    let down_url = format!("http://127.0.0.1:{port}/in");
    add_channel(&db, &["down", "--type", "webhook", "--url", &down_url, "--secret-file", &key]);
    add_channel(&db, &["up", "--type", "webhook", "--url", &up.url("/in"), "--secret-file", &key]);
    let first = open_incident(&db, "a", &["down", "up"]);
    open_incident(&db, "b", &["down", "up"]);
    open_incident(&db, "c", &["down", "up"]);
    add_event(&db, first, "resolved", &["down", "up"]);
    let pool = pool(&rt, &db);
    let notifier = Notifier::new(options()).unwrap();

    let report = rt.block_on(deliver_due(&pool, &notifier)).unwrap();
    assert_eq!(report.delivered, 4, "the working channel got everything in one call: {report:?}");
    let kinds: Vec<String> =
        up.requests().iter().map(|r| r.json()["event"]["kind"].as_str().unwrap().to_string()).collect();
    assert_eq!(kinds.last().map(String::as_str), Some("resolved"), "resolved after its opened: {kinds:?}");
    assert_eq!((report.retrying, report.deferred), (3, 1), "the dead channel's resolved waits untried: {report:?}");
    let down_rows =
        "SELECT count(*) FROM notifications n JOIN alert_channels c ON c.id = n.channel_id WHERE c.name = 'down'";
    assert_eq!(db.scalar(&format!("{down_rows} AND n.state = 'pending'")), "4");
    let first_wait = db.scalar(
        "SELECT extract(epoch FROM n.next_attempt_at - n.last_attempt_at) FROM notifications n
         JOIN alert_channels c ON c.id = n.channel_id WHERE c.name = 'down' AND n.attempts = 1 LIMIT 1",
    );
    let first_wait: f64 = first_wait.parse().unwrap();
    assert!((0.09..0.3).contains(&first_wait), "the first retry waits backoff_base (100 ms): {first_wait}");

    // Back, but answering 503 for a while: retried, with the status recorded.
    drop(closed);
    let back = rt.block_on(Receiver::start_on(port));
    back.answer(503, "maintenance");
    std::thread::sleep(Duration::from_millis(500));
    rt.block_on(deliver_due(&pool, &notifier)).unwrap();
    assert!(!back.requests().is_empty(), "the receiver was tried again after its backoff");
    let waiting: i64 =
        db.scalar(&format!("{down_rows} AND n.state = 'pending' AND n.last_status = 503")).parse().unwrap();
    assert!(waiting >= 1, "a 503 is retried, its status recorded");

    back.answer(200, "ok");
    let deadline = Instant::now() + Duration::from_secs(15);
    while db.scalar(&format!("{down_rows} AND n.state = 'delivered'")) != "4" {
        assert!(
            Instant::now() < deadline,
            "not all delivered: {}",
            db.scalar("SELECT string_agg(state, ',') FROM notifications")
        );
        std::thread::sleep(Duration::from_millis(150));
        rt.block_on(deliver_due(&pool, &notifier)).unwrap();
    }
    let delivered: Vec<(String, String)> = back
        .requests()
        .iter()
        .map(|r| {
            (r.header("Idempotency-Key").unwrap().to_string(), r.json()["event"]["kind"].as_str().unwrap().to_string())
        })
        .collect();
    let mut keys: Vec<&String> = delivered.iter().map(|(k, _)| k).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 4, "every notification arrived: {delivered:?}");
    let opened_a =
        format!("evt-{}-down", db.scalar(&format!("SELECT min(id) FROM incident_events WHERE incident_id = {first}")));
    let last_opened_a = delivered.iter().rposition(|(k, _)| *k == opened_a).unwrap();
    let first_resolved = delivered.iter().position(|(_, kind)| kind == "resolved").unwrap();
    assert!(last_opened_a < first_resolved, "resolved sent before its opened: {delivered:?}");
}

#[test]
fn a_row_not_delivered_within_give_up_after_fails() {
    let rt = runtime();
    let closed = ClosedPort::new();
    let db = TestDb::migrated();
    let url = format!("http://127.0.0.1:{}/in", closed.port);
    add_channel(
        &db,
        &["down", "--type", "webhook", "--url", &url, "--secret-file", &secret_file(&db, "w", WEBHOOK_KEY)],
    );
    open_incident(&db, "api", &["down"]);
    db.exec("UPDATE notifications SET created_at = now() - interval '2 seconds'");
    let pool = pool(&rt, &db);
    let notifier = Notifier::new(DeliveryOptions { give_up_after: Duration::from_secs(1), ..options() }).unwrap();
    let report = rt.block_on(deliver_due(&pool, &notifier)).unwrap();
    assert_eq!(report.failed, 1, "{report:?}");
    let row = db.scalar("SELECT state || ' ' || attempts || ' ' || (last_status IS NULL) FROM notifications");
    assert_eq!(row, "failed 1 true", "no answer has no status");
    assert!(db.scalar("SELECT last_error FROM notifications").contains("refused"));
}

#[test]
fn two_alerters_never_send_the_same_row_at_once() {
    let rt = runtime();
    let hook = rt.block_on(Receiver::start());
    let db = TestDb::migrated();
    add_channel(
        &db,
        &["ops", "--type", "webhook", "--url", &hook.url("/in"), "--secret-file", &secret_file(&db, "w", WEBHOOK_KEY)],
    );
    // 1,000 incidents opened at once, as the evaluator would write them.
    db.exec(
        "INSERT INTO monitors (name, type, target) SELECT 'm' || g, 'http', 'https://m' || g || '.example.com'
            FROM generate_series(1, 1000) g;
         INSERT INTO incidents (kind, cause, severity, monitor_id, summary)
            SELECT 'monitor', 'down', 'critical', id, name || ' is down' FROM monitors;
         INSERT INTO incident_events (incident_id, kind) SELECT id, 'opened' FROM incidents;
         INSERT INTO notifications (event_id, channel_id, idempotency_key)
            SELECT e.id, c.id, 'evt-' || e.id FROM incident_events e, alert_channels c;",
    );
    let pool = pool(&rt, &db);
    let (one, two) = (Notifier::new(options()).unwrap(), Notifier::new(options()).unwrap());
    let started = Instant::now();
    let (a, b) = rt.block_on(async { tokio::join!(deliver_due(&pool, &one), deliver_due(&pool, &two)) });
    let (a, b) = (a.unwrap(), b.unwrap());
    eprintln!("1,000 notifications to one webhook by two alerters: {:?} ({a:?}, {b:?})", started.elapsed());
    assert_eq!(a.delivered + b.delivered, 1000, "all within one call's budget: {a:?} {b:?}");
    let mut keys: Vec<String> =
        hook.requests().iter().map(|r| r.header("Idempotency-Key").unwrap().to_string()).collect();
    assert_eq!(keys.len(), 1000);
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 1000, "a row was sent twice");
}

#[test]
fn an_attempt_cut_short_by_a_crash_is_made_again_once_its_lease_ends() {
    let rt = runtime();
    // A receiver that accepts and never answers: the first alerter dies while it waits.
    let silent = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let silent_url = format!("http://{}/in", silent.local_addr().unwrap());
    rt.spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let hook = rt.block_on(Receiver::start());
    let db = TestDb::migrated();
    add_channel(
        &db,
        &["ops", "--type", "webhook", "--url", &silent_url, "--secret-file", &secret_file(&db, "w", WEBHOOK_KEY)],
    );
    open_incident(&db, "api", &["ops"]);
    let pool = pool(&rt, &db);
    let leader = Notifier::new(DeliveryOptions { timeout: Duration::from_secs(1), ..options() }).unwrap();
    let crashed =
        rt.block_on(async { tokio::time::timeout(Duration::from_millis(300), deliver_due(&pool, &leader)).await });
    assert!(crashed.is_err(), "the leader was still waiting for its receiver");
    assert_eq!(
        db.scalar("SELECT state || ' ' || attempts || ' ' || (next_attempt_at > now()) FROM notifications"),
        "pending 0 true",
        "claimed and leased, nothing recorded"
    );

    // The standby, with the receiver back: nothing while the lease lasts, then the row, once.
    db.exec(&format!("UPDATE alert_channels SET settings = jsonb_set(settings, '{{url}}', '\"{}\"')", hook.url("/in")));
    let standby = Notifier::new(options()).unwrap();
    assert_eq!(rt.block_on(deliver_due(&pool, &standby)).unwrap().delivered, 0);
    std::thread::sleep(Duration::from_millis(3100));
    assert_eq!(rt.block_on(deliver_due(&pool, &standby)).unwrap().delivered, 1);
    let key = db.scalar("SELECT idempotency_key FROM notifications");
    assert_eq!(hook.requests().iter().filter(|r| r.header("Idempotency-Key") == Some(key.as_str())).count(), 1);
    assert_eq!(db.scalar("SELECT state || ' ' || attempts FROM notifications"), "delivered 1");
}
