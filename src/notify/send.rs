//! One attempt to hand a notice to one channel, and what the receiver answered.
//!
//! HTTP receivers are reached through the probe's HTTP client (rustls, the crate's one TLS
//! stack), redirects not followed: a receiver that redirects is misconfigured, not down.
//!
//! What an answer means for the outbox ([`Verdict`]):
//! - 2xx (SMTP 2xx): delivered;
//! - 5xx, 408, 429, no answer (refused, timeout, TLS), a secret that cannot be read now: tried
//!   again later, with backoff;
//! - any other 3xx/4xx (SMTP 5xx): rejected. The receiver says the request itself is wrong (a
//!   revoked key, a bad URL); sending it again would be refused again, so the row is `failed` at
//!   once, with the status and the first 200 bytes of the answer, until `notification retry`.

use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::Sha256;

use super::channel::{read_ca, Channel, Kind, PAGERDUTY_EVENTS_URL};
use super::render::Rendered;
use super::Notice;
use crate::config::Secret;
use crate::probe::http::{HttpSpec, StatusRanges};
use crate::probe::ProbeOptions;

/// How much of a receiver's answer is kept.
pub const ANSWER_BYTES: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Delivered,
    /// The receiver refused the request; another attempt would be refused too.
    Rejected,
    /// Not delivered this time; try again later.
    Retry,
}

/// What the receiver answered, with no secret in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    pub verdict: Verdict,
    /// HTTP status, or the SMTP reply code; absent when nothing answered.
    pub status: Option<u16>,
    /// The first [`ANSWER_BYTES`] bytes of the answer's body, or why there was none.
    pub detail: String,
}

impl Answer {
    fn retry(detail: impl Into<String>) -> Self {
        Answer { verdict: Verdict::Retry, status: None, detail: detail.into() }
    }
}

/// What every attempt needs besides the notice.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// Bound on one attempt, connection included.
    pub timeout: Duration,
    /// How long Alertmanager keeps a firing alert without hearing of it again (its `endsAt`).
    pub alertmanager_ttl: Duration,
    pub dashboard_url: Option<String>,
}

/// One attempt. Never fails: whatever went wrong is in the answer, for the outbox to record.
pub async fn send(channel: &Channel, notice: &Notice, text: &Rendered, options: &SendOptions) -> Answer {
    let secret = match &channel.spec.secret {
        Some(secret_ref) => match secret_ref.resolve() {
            Ok(secret) => Some(secret),
            Err(reason) => return Answer::retry(format!("the secret ({secret_ref}) cannot be read: {reason}")),
        },
        None => None,
    };
    let ca = match channel.spec.settings.ca_file.as_deref().map(read_ca).transpose() {
        Ok(ca) => ca,
        Err(e) => return Answer::retry(e.to_string()),
    };
    let attempt = async {
        match channel.kind() {
            Kind::Email => super::email::send(channel, notice, text, secret.as_ref(), ca, options.timeout).await,
            _ => post(request(channel, notice, text, secret.as_ref(), options), notice, ca, options.timeout).await,
        }
    };
    // lettre's timeout bounds each SMTP read and write, not the whole conversation; the outbox's
    // lease needs the whole attempt bounded.
    let answer = tokio::time::timeout(options.timeout + Duration::from_millis(500), attempt)
        .await
        .unwrap_or_else(|_| Answer::retry(format!("timeout: no answer within {:?}", options.timeout)));
    match &secret {
        Some(secret) => Answer { detail: scrub(&answer.detail, secret), ..answer },
        None => answer,
    }
}

/// An HTTP request to make.
struct Request {
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    bearer: Option<String>,
}

/// The request of an HTTP channel: its URL, body and, for webhooks, the signature.
fn request(
    channel: &Channel,
    notice: &Notice,
    text: &Rendered,
    secret: Option<&Secret>,
    options: &SendOptions,
) -> Request {
    let kind = channel.kind();
    let url = channel.spec.settings.url.clone().unwrap_or_default();
    let dashboard_url = options.dashboard_url.as_deref();
    let secret_text = secret.map(|s| s.expose().to_string());
    let (url, body, bearer) = match kind {
        Kind::Webhook => (url, webhook_body(notice, text, dashboard_url), None),
        Kind::Slack => (secret_text.unwrap_or_default(), slack_body(notice, text, dashboard_url), None),
        Kind::Pagerduty => {
            let url = channel.spec.settings.url.clone().unwrap_or_else(|| PAGERDUTY_EVENTS_URL.to_string());
            (url, pagerduty_body(notice, text, secret_text.as_deref().unwrap_or_default(), dashboard_url), None)
        }
        Kind::Alertmanager => (
            format!("{}/api/v2/alerts", url.trim_end_matches('/')),
            alertmanager_body(notice, text, options.alertmanager_ttl, dashboard_url),
            secret_text,
        ),
        Kind::Email => unreachable!("email goes over SMTP"),
    };
    let body = body.to_string().into_bytes();
    let mut headers = Vec::new();
    if kind == Kind::Webhook {
        headers.push(("X-Geoctl-Event".to_string(), notice.event.kind.clone()));
        if let Some(key) = secret {
            headers
                .push(("X-Geoctl-Signature".into(), signature(key.expose().as_bytes(), Utc::now().timestamp(), &body)));
        }
    }
    Request { url, headers, body, bearer }
}

async fn post(request: Request, notice: &Notice, ca: Option<Vec<u8>>, timeout: Duration) -> Answer {
    let mut spec = HttpSpec::new(request.url);
    spec.method = "POST".into();
    spec.headers = request.headers;
    spec.headers.push(("Content-Type".into(), "application/json".into()));
    spec.headers.push(("Idempotency-Key".into(), notice.idempotency_key.clone()));
    spec.headers.push(("User-Agent".into(), concat!("geoctl/", env!("CARGO_PKG_VERSION")).into()));
    spec.body = Some(request.body);
    if let Some(token) = request.bearer {
        spec.auth = crate::probe::http::Auth::Bearer(token);
    }
    // Every status is read, so a refusal's body can be recorded; the verdict is ours.
    spec.expected_status = StatusRanges::new(vec![(100, 599)]);
    spec.max_redirects = 0;
    spec.extra_root_ca_pem = ca;
    spec.keep_response = true;
    spec.max_body_bytes = 64 * 1024;
    let options = ProbeOptions { timeout, ..ProbeOptions::default() };
    let (result, response) = crate::probe::http::run_reading(&spec, &options).await;
    let status = result.http.as_ref().and_then(|h| h.status);
    let Some(status) = status else {
        let why = result.failure.map_or_else(|| "no answer".to_string(), |f| format!("{}: {}", f.kind, f.message));
        return Answer::retry(why);
    };
    let verdict = match status {
        200..=299 => Verdict::Delivered,
        408 | 429 | 500..=599 => Verdict::Retry,
        _ => Verdict::Rejected,
    };
    Answer { verdict, status: Some(status), detail: snippet(&response.body) }
}

/// The first [`ANSWER_BYTES`] bytes of an answer as text, cut on a character boundary.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(ANSWER_BYTES)]).into_owned();
    // A cut multi-byte character shows as U+FFFD at the end; drop it.
    text.trim_end_matches('\u{FFFD}').trim().to_string()
}

/// `text` without the secret: the whole value, its URL password and secret query values (see
/// [`crate::config::scrub`]) and, for a URL such as Slack's, the path that holds its token.
pub(crate) fn scrub(text: &str, secret: &Secret) -> String {
    let mut out = text.replace(secret.expose(), crate::probe::credential::MASK);
    out = crate::config::scrub(&out, secret);
    if let Ok(url) = url::Url::parse(secret.expose()) {
        if url.path().len() > 1 {
            out = out.replace(url.path(), "/****");
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Bodies

/// The webhook body, version 1. Documented in the README ("Channels and delivery"); fields are
/// only ever added within a version.
pub fn webhook_body(notice: &Notice, text: &Rendered, dashboard_url: Option<&str>) -> Value {
    json!({
        "version": 1,
        "idempotency_key": notice.idempotency_key,
        "event": notice.event,
        "incident": notice.incident,
        "title": text.title,
        "text": text.text,
        "dashboard_url": dashboard_url,
    })
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, as `X-Geoctl-Signature` carries it.
pub fn signature(key: &[u8], unix: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(format!("{unix}.").as_bytes());
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={unix},v1={hex}")
}

/// Slack's mrkdwn gives `&`, `<` and `>` a meaning.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn clip(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max_chars - 1).collect();
    out.push('…');
    out
}

/// An incoming-webhook message: `text` is the notification's fallback, the blocks what people
/// see (header ≤ 150 characters, section ≤ 3000, as Slack limits them).
pub fn slack_body(notice: &Notice, text: &Rendered, dashboard_url: Option<&str>) -> Value {
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": clip(&text.title, 150)}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(&slack_escape(&text.text), 3000)}}),
    ];
    if let Some(url) = dashboard_url {
        blocks.push(json!({"type": "actions", "elements": [{
            "type": "button", "text": {"type": "plain_text", "text": "Open dashboard"}, "url": url,
        }]}));
    }
    blocks.push(json!({"type": "context", "elements": [{
        "type": "mrkdwn",
        "text": format!("geoctl · incident #{} · {}", notice.incident.id, notice.event.kind),
    }]}));
    json!({"text": slack_escape(&text.title), "blocks": blocks})
}

/// The PagerDuty alert of an incident: one per incident, so its resolve closes its trigger.
pub fn pagerduty_dedup_key(notice: &Notice) -> String {
    if notice.event.kind == "test" {
        notice.idempotency_key.clone()
    } else {
        format!("geoctl-incident-{}", notice.incident.id)
    }
}

/// An Events API v2 event: `trigger` with a payload, or `acknowledge`/`resolve` of the alert
/// with the incident's `dedup_key`.
pub fn pagerduty_body(notice: &Notice, text: &Rendered, routing_key: &str, dashboard_url: Option<&str>) -> Value {
    let action = match notice.event.kind.as_str() {
        "resolved" => "resolve",
        "acknowledged" => "acknowledge",
        _ => "trigger",
    };
    let mut body = json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": pagerduty_dedup_key(notice),
    });
    if action == "trigger" {
        let i = &notice.incident;
        let source = i
            .monitor
            .as_ref()
            .and_then(|m| m.target.clone().or(m.name.clone()))
            .or(i.region.clone())
            .unwrap_or_else(|| "geoctl".into());
        let severity = if notice.event.kind == "test" { "info" } else { i.severity.as_str() };
        body["payload"] = json!({
            "summary": clip(&text.title, 1024),
            "source": source,
            "severity": severity,
            "timestamp": notice.event.at,
            "component": i.monitor.as_ref().and_then(|m| m.name.clone()),
            "group": i.region.clone().or_else(|| (!i.regions.is_empty()).then(|| i.regions.join(","))),
            "class": i.cause,
            "custom_details": {"incident": i, "event": notice.event, "text": text.text},
        });
        body["client"] = json!("geoctl");
        if let Some(url) = dashboard_url {
            body["client_url"] = json!(url);
            body["links"] = json!([{"href": url, "text": "geoctl dashboard"}]);
        }
    }
    body
}

/// The alert's name, by what the incident is about.
fn alertname(notice: &Notice) -> &'static str {
    match (notice.event.kind.as_str(), notice.incident.cause.as_str()) {
        ("test", _) => "GeoctlTest",
        (_, "down") => "GeoctlMonitorDown",
        (_, "latency") => "GeoctlMonitorSlow",
        (_, "region_impaired") => "GeoctlRegionImpaired",
        (_, "no_agent") => "GeoctlRegionNoAgent",
        _ => "GeoctlIncident",
    }
}

/// One postable alert (Alertmanager API v2). Its labels stay the same for the incident's life,
/// so every post updates the same alert: `alertname`, `kind`, `severity`, `incident`, and
/// `monitor`/`region` where the incident has them (the regions a monitor incident spans change
/// while it lasts, so they are an annotation). A firing alert ends at `now + ttl` unless posted
/// again; a resolved one ends when the incident did.
pub fn alertmanager_body(notice: &Notice, text: &Rendered, ttl: Duration, dashboard_url: Option<&str>) -> Value {
    let i = &notice.incident;
    let mut labels = serde_json::Map::new();
    labels.insert("alertname".into(), json!(alertname(notice)));
    labels.insert("kind".into(), json!(if notice.event.kind == "test" { "test" } else { i.kind.as_str() }));
    labels.insert("severity".into(), json!(i.severity));
    labels.insert("incident".into(), json!(i.id.to_string()));
    if let Some(monitor) = &i.monitor {
        labels.insert("monitor".into(), json!(monitor.name.clone().unwrap_or_else(|| monitor.id.to_string())));
    }
    if let Some(region) = &i.region {
        labels.insert("region".into(), json!(region));
    }
    let ends_at = if notice.resolves() {
        i.resolved_at.unwrap_or(notice.event.at)
    } else {
        Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(4))
    };
    let mut alert = json!({
        "labels": labels,
        "annotations": {
            "summary": text.title,
            "description": text.text,
            "regions": i.regions.join(","),
            "first_error": i.first_error.clone().unwrap_or_default(),
        },
        "startsAt": i.opened_at,
        "endsAt": ends_at,
    });
    if let Some(url) = dashboard_url {
        alert["generatorURL"] = json!(url);
    }
    json!([alert])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered() -> Rendered {
        Rendered { title: "api down".into(), text: "a < b & c".into(), html: String::new() }
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_time_dot_body() {
        // Python: hmac.new(b"whsec_test", b'1700000000.{"version":1}', hashlib.sha256).hexdigest()
        let sig = signature(b"whsec_test", 1_700_000_000, br#"{"version":1}"#);
        assert_eq!(sig, "t=1700000000,v1=83171cbb758ad8691565f1c3f7f4593a985a0451a5e67181aba825c6a58bb106");
    }

    #[test]
    fn pagerduty_resolves_the_alert_its_trigger_opened() {
        let mut notice = Notice::test("pd");
        notice.event.kind = "opened".into();
        notice.incident.id = 42;
        let trigger = pagerduty_body(&notice, &rendered(), "R0UT1NG", None);
        assert_eq!(trigger["event_action"], "trigger");
        assert_eq!(trigger["dedup_key"], "geoctl-incident-42");
        assert_eq!(trigger["payload"]["severity"], "warning");
        notice.event.kind = "resolved".into();
        let resolve = pagerduty_body(&notice, &rendered(), "R0UT1NG", None);
        assert_eq!((resolve["event_action"].as_str(), resolve.get("payload")), (Some("resolve"), None));
        assert_eq!(resolve["dedup_key"], "geoctl-incident-42");
    }

    #[test]
    fn alertmanager_labels_stay_the_same_for_an_incident_and_resolving_ends_it() {
        let mut notice = Notice::test("am");
        notice.event.kind = "opened".into();
        notice.incident.id = 9;
        notice.incident.kind = "region".into();
        notice.incident.cause = "region_impaired".into();
        notice.incident.region = Some("eu-west".into());
        let ttl = Duration::from_secs(190);
        let firing = &alertmanager_body(&notice, &rendered(), ttl, None)[0];
        let labels = firing["labels"].as_object().unwrap();
        let names: Vec<&str> = labels.keys().map(String::as_str).collect();
        assert_eq!(names, ["alertname", "incident", "kind", "region", "severity"]);
        assert_eq!(
            (labels["alertname"].as_str(), labels["region"].as_str()),
            (Some("GeoctlRegionImpaired"), Some("eu-west"))
        );
        let ends: chrono::DateTime<Utc> = serde_json::from_value(firing["endsAt"].clone()).unwrap();
        assert!(ends > Utc::now() + chrono::Duration::seconds(180), "firing ends a ttl from now: {ends}");

        notice.event.kind = "resolved".into();
        notice.incident.resolved_at = Some(Utc::now());
        let resolved = &alertmanager_body(&notice, &rendered(), ttl, None)[0];
        assert_eq!(resolved["labels"], firing["labels"]);
        assert_eq!(resolved["endsAt"], serde_json::json!(notice.incident.resolved_at));
    }

    #[test]
    fn slack_text_is_escaped_and_the_dashboard_linked() {
        let body = slack_body(&Notice::test("s"), &rendered(), Some("https://dash.example.com"));
        assert_eq!(body["blocks"][1]["text"]["text"], "a &lt; b &amp; c");
        assert_eq!(body["blocks"][2]["elements"][0]["url"], "https://dash.example.com");
    }

    #[test]
    fn scrub_removes_a_slack_url_and_its_token_path() {
        let secret = Secret::new("https://hooks.slack.com/services/T000/B000/XXXXSECRET");
        let text = "posting to https://hooks.slack.com/services/T000/B000/XXXXSECRET failed; path /services/T000/B000/XXXXSECRET";
        let clean = scrub(text, &secret);
        assert!(!clean.contains("XXXXSECRET"), "{clean}");
        assert_eq!(snippet("é".repeat(150).as_bytes()).chars().count(), 100);
    }
}
