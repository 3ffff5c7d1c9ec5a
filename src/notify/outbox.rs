//! Delivery of the outbox: claim due rows, send them, record what the receiver answered.
//!
//! [`deliver_due`] is one step of the alerter's loop. It is cheap when nothing is due (one
//! index-only query), and safe to run in several processes at once:
//!
//! - **Claiming is a lease.** A row is claimed with `FOR UPDATE SKIP LOCKED` and its
//!   `next_attempt_at` pushed past the attempt's deadline (`2 × timeout + 1 s`) in the same
//!   statement, so no other alerter takes it while it is being sent, and one that dies
//!   mid-send leaves it due again once the lease runs out. A crash may repeat an attempt (with
//!   the same idempotency key), never lose one.
//! - **Order per incident and channel.** A row is due only when no earlier event of the same
//!   incident is still pending for the same channel, so a receiver never sees `resolved`
//!   before the `opened` it ends (PagerDuty would keep the page open otherwise).
//! - **Channels are independent.** Each channel with due rows gets its own task, sending up to
//!   `per_channel` rows at once and recording them in one statement; a channel that does not
//!   answer stops its own work (its other due rows wait for the same backoff, untried) and
//!   never holds up another channel.
//! - **Backoff.** After a retryable failure the row waits `backoff_base × 2^(attempts-1)`,
//!   capped at `backoff_max`; once `give_up_after` (24 h) has passed since the row was written
//!   it is `failed`. A refusal (4xx other than 408/429, SMTP 5xx) is `failed` at once: see
//!   [`super::send`]. `geoctl notification retry ID` makes a row due again.
//! - **Alertmanager** forgets a firing alert at its `endsAt`; every `alertmanager_repost` the
//!   open incidents already delivered to an Alertmanager channel are posted again (by
//!   whichever alerter runs; Alertmanager merges identical alerts), not through the outbox.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::channel::{self, Channel};
use super::event::{self, Loaded};
use super::send::{self, Answer, SendOptions, Verdict};
use super::{NotifyError, Renderer};

/// How delivery behaves; [`Default`] is what the alerter runs with.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// Bound on one attempt (connection, TLS, request, answer).
    pub timeout: Duration,
    /// Rows of one channel sent at once.
    pub per_channel: usize,
    /// A channel's task stops claiming after this long; the rest is due at the next call.
    pub budget: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// A row still not delivered this long after it was written is `failed`.
    pub give_up_after: Duration,
    /// How often open incidents are posted to Alertmanager again.
    pub alertmanager_repost: Duration,
    pub dashboard_url: Option<String>,
    /// A directory of template overrides (`notify.templates`).
    pub templates: Option<PathBuf>,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            timeout: Duration::from_secs(10),
            per_channel: 8,
            budget: Duration::from_secs(5),
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(24 * 3600),
            alertmanager_repost: Duration::from_secs(60),
            dashboard_url: None,
            templates: None,
        }
    }
}

impl DeliveryOptions {
    /// How long a claimed row is ours. A claim takes at most `per_channel` rows and sends them
    /// all at once, each bounded by `timeout` (see [`send::send`]), so twice that and a second
    /// for the database covers claim to record.
    fn lease(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(1)
    }

    /// How long Alertmanager keeps an alert we stopped posting: a few missed reposts.
    fn alertmanager_ttl(&self) -> Duration {
        self.alertmanager_repost * 3 + self.timeout
    }

    fn send_options(&self) -> SendOptions {
        SendOptions {
            timeout: self.timeout,
            alertmanager_ttl: self.alertmanager_ttl(),
            dashboard_url: self.dashboard_url.clone(),
        }
    }
}

/// What the alerter keeps between calls: the options, the parsed templates, and when open
/// incidents were last posted to Alertmanager.
pub struct Notifier {
    pub options: DeliveryOptions,
    renderer: Renderer,
    last_repost: Mutex<Option<Instant>>,
}

impl Notifier {
    /// Parses the templates; a broken override is an error here, before anything is sent.
    pub fn new(options: DeliveryOptions) -> Result<Self, NotifyError> {
        let renderer = Renderer::new(options.templates.as_deref(), options.dashboard_url.clone())?;
        Ok(Notifier { options, renderer, last_repost: Mutex::new(None) })
    }

    /// Sends a made-up notice to a channel now, outside the outbox (`geoctl channel test`).
    pub async fn send_test(&self, channel: &Channel) -> Result<Answer, NotifyError> {
        let notice = super::Notice::test(channel.name());
        let text = self.renderer.render(&notice)?;
        Ok(send::send(channel, &notice, &text, &self.options.send_options()).await)
    }
}

/// What one call did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryReport {
    pub delivered: usize,
    /// Refused by the receiver, or given up on: `failed`.
    pub failed: usize,
    /// Not delivered this time; due again after their backoff.
    pub retrying: usize,
    /// Not tried: their channel had just failed to answer; due with the rows that failed.
    pub deferred: usize,
    /// Open incidents posted to Alertmanager again, and how many of those posts failed.
    pub reposted: usize,
    pub repost_failures: usize,
}

impl DeliveryReport {
    fn add(&mut self, other: &DeliveryReport) {
        self.delivered += other.delivered;
        self.failed += other.failed;
        self.retrying += other.retrying;
        self.deferred += other.deferred;
        self.reposted += other.reposted;
        self.repost_failures += other.repost_failures;
    }
}

/// One step of the alerter's loop: every due row of every channel, each channel in its own
/// task, then the Alertmanager re-posts when their interval has passed. Returns within about
/// `budget + timeout`; run it beside evaluation, not in its way.
pub async fn deliver_due(pool: &PgPool, notifier: &Notifier) -> Result<DeliveryReport, NotifyError> {
    let channel_ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT channel_id FROM notifications WHERE state = 'pending' AND next_attempt_at <= now()",
    )
    .fetch_all(pool)
    .await?;
    let mut report = DeliveryReport::default();
    if !channel_ids.is_empty() {
        let channels = channel::by_ids(pool, &channel_ids).await?;
        let results = futures::future::join_all(channels.iter().map(|c| deliver_channel(pool, notifier, c))).await;
        for result in results {
            report.add(&result?);
        }
    }
    report.add(&repost_open_alerts(pool, notifier).await?);
    Ok(report)
}

/// Delivers the due rows of one channel until none is left or the budget is spent: claim up
/// to `per_channel` rows, send them all at once, record every answer in one statement. When
/// the receiver does not answer at all, the channel's other due rows wait as long as the
/// failed ones, untried, so a dead receiver costs one timeout per backoff step, not one per row.
pub async fn deliver_channel(
    pool: &PgPool,
    notifier: &Notifier,
    channel: &Channel,
) -> Result<DeliveryReport, NotifyError> {
    let options = &notifier.options;
    let started = Instant::now();
    let mut report = DeliveryReport::default();
    while started.elapsed() < options.budget {
        let ids = claim(pool, channel.id, options).await?;
        if ids.is_empty() {
            break;
        }
        let rows = event::load(pool, &ids).await?;
        let answers = futures::future::join_all(rows.iter().map(|row| attempt(notifier, channel, row))).await;
        let outcomes: Vec<(i64, &Answer)> = rows.iter().map(|r| r.notification_id).zip(&answers).collect();
        let recorded = record(pool, &outcomes, options).await?;
        let mut retry_at: Option<DateTime<Utc>> = None;
        for (state, next) in recorded {
            match state.as_str() {
                "delivered" => report.delivered += 1,
                "failed" => report.failed += 1,
                _ => {
                    report.retrying += 1;
                    retry_at = retry_at.max(Some(next));
                }
            }
        }
        let unanswered = answers.iter().any(|a| a.verdict == Verdict::Retry && a.status.is_none());
        if let (true, Some(at)) = (unanswered, retry_at) {
            let deferred = sqlx::query(
                "UPDATE notifications SET next_attempt_at = $2
                 WHERE channel_id = $1 AND state = 'pending' AND next_attempt_at <= now()",
            )
            .bind(channel.id)
            .bind(at)
            .execute(pool)
            .await?;
            report.deferred += deferred.rows_affected() as usize;
            break;
        }
    }
    Ok(report)
}

/// Sends one row.
async fn attempt(notifier: &Notifier, channel: &Channel, row: &Loaded) -> Answer {
    let answer = match notifier.renderer.render(&row.notice) {
        Ok(text) => send::send(channel, &row.notice, &text, &notifier.options.send_options()).await,
        Err(e) => Answer { verdict: Verdict::Retry, status: None, detail: e.to_string() },
    };
    if answer.verdict != Verdict::Delivered {
        tracing::warn!(
            channel = channel.name(),
            notification = row.notification_id,
            status = answer.status,
            "not delivered: {}",
            answer.detail
        );
    }
    answer
}

/// Claims up to `per_channel` due rows of a channel: locked against other alerters for the
/// claim, then leased by moving `next_attempt_at` past the attempt's deadline.
async fn claim(pool: &PgPool, channel_id: Uuid, options: &DeliveryOptions) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH due AS (
            SELECT n.id FROM notifications n JOIN incident_events e ON e.id = n.event_id
            WHERE n.channel_id = $1 AND n.state = 'pending' AND n.next_attempt_at <= now()
              AND NOT EXISTS (
                SELECT 1 FROM notifications p JOIN incident_events pe ON pe.id = p.event_id
                WHERE p.channel_id = n.channel_id AND p.state = 'pending'
                  AND pe.incident_id = e.incident_id AND p.event_id < n.event_id)
            ORDER BY n.next_attempt_at, n.id
            LIMIT $2
            FOR UPDATE OF n SKIP LOCKED)
         UPDATE notifications n SET next_attempt_at = now() + $3
         FROM due WHERE n.id = due.id
         RETURNING n.id",
    )
    .bind(channel_id)
    .bind(options.per_channel.max(1) as i64)
    .bind(options.lease())
    .fetch_all(pool)
    .await
}

/// Records a round's answers in one statement; returns each row's state and when it is due
/// next. A retried row waits `backoff_base × 2^(attempts before this one)`, at most
/// `backoff_max`, and fails instead when that wait would
/// end past `give_up_after` from the row's creation.
async fn record(
    pool: &PgPool,
    outcomes: &[(i64, &Answer)],
    options: &DeliveryOptions,
) -> Result<Vec<(String, DateTime<Utc>)>, sqlx::Error> {
    let ids: Vec<i64> = outcomes.iter().map(|(id, _)| *id).collect();
    let statuses: Vec<Option<i32>> = outcomes.iter().map(|(_, a)| a.status.map(i32::from)).collect();
    let details: Vec<Option<&str>> = outcomes
        .iter()
        .map(|(_, a)| match a.verdict {
            Verdict::Delivered => None,
            _ if a.detail.is_empty() => Some("(empty answer)"),
            _ => Some(a.detail.as_str()),
        })
        .collect();
    let verdicts: Vec<&str> = outcomes
        .iter()
        .map(|(_, a)| match a.verdict {
            Verdict::Delivered => "delivered",
            Verdict::Rejected => "rejected",
            Verdict::Retry => "retry",
        })
        .collect();
    sqlx::query_as(
        "WITH u AS (
            SELECT u.*, least($5::interval * power(2, least(n.attempts, 30)), $6::interval) AS wait
            FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[]) AS u(id, status, detail, verdict)
            JOIN notifications n ON n.id = u.id)
         UPDATE notifications n SET
            attempts = n.attempts + 1,
            last_attempt_at = now(),
            last_status = u.status,
            last_error = u.detail,
            delivered_at = CASE WHEN u.verdict = 'delivered' THEN now() ELSE n.delivered_at END,
            next_attempt_at = CASE WHEN u.verdict = 'retry' THEN now() + u.wait ELSE n.next_attempt_at END,
            state = CASE
                WHEN u.verdict = 'delivered' THEN 'delivered'
                WHEN u.verdict = 'rejected' THEN 'failed'
                WHEN n.created_at + $7 <= now() + u.wait THEN 'failed'
                ELSE 'pending' END
         FROM u WHERE n.id = u.id
         RETURNING n.state, n.next_attempt_at",
    )
    .bind(&ids)
    .bind(&statuses)
    .bind(&details)
    .bind(&verdicts)
    .bind(options.backoff_base)
    .bind(options.backoff_max)
    .bind(options.give_up_after)
    .fetch_all(pool)
    .await
}

/// Posts the open incidents already delivered to Alertmanager channels again, once per
/// `alertmanager_repost`.
async fn repost_open_alerts(pool: &PgPool, notifier: &Notifier) -> Result<DeliveryReport, NotifyError> {
    {
        let mut last = notifier.last_repost.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|at| at.elapsed() < notifier.options.alertmanager_repost) {
            return Ok(DeliveryReport::default());
        }
        *last = Some(Instant::now());
    }
    let rows = event::open_delivered(pool, "alertmanager").await?;
    let mut report = DeliveryReport::default();
    if rows.is_empty() {
        return Ok(report);
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.channel_id).collect();
    let channels: BTreeMap<Uuid, Channel> = channel::by_ids(pool, &ids).await?.into_iter().map(|c| (c.id, c)).collect();
    let options = notifier.options.send_options();
    let posts = rows.iter().filter_map(|row| {
        let channel = channels.get(&row.channel_id)?;
        let text = notifier.renderer.render(&row.notice).ok()?;
        let options = &options;
        Some(async move { send::send(channel, &row.notice, &text, options).await })
    });
    for answer in futures::future::join_all(posts).await {
        report.reposted += 1;
        if answer.verdict != Verdict::Delivered {
            report.repost_failures += 1;
            tracing::warn!(
                status = answer.status,
                "re-posting an open incident to Alertmanager failed: {}",
                answer.detail
            );
        }
    }
    Ok(report)
}

// ---------------------------------------------------------------------------
// Listing and retrying

/// One outbox row as `geoctl notification list` shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Row {
    pub id: i64,
    pub channel: String,
    pub incident_id: i64,
    pub event: String,
    pub state: String,
    pub attempts: i32,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub idempotency_key: String,
}

const ROW_SELECT: &str = "SELECT n.id, c.name AS channel, e.incident_id, e.kind AS event, n.state, n.attempts,
        n.last_status, n.last_error, n.next_attempt_at, n.last_attempt_at, n.delivered_at, n.created_at,
        n.idempotency_key
    FROM notifications n JOIN alert_channels c ON c.id = n.channel_id JOIN incident_events e ON e.id = n.event_id";

/// The newest rows first; `failed_only` keeps the failed ones.
pub async fn list(pool: &PgPool, failed_only: bool, limit: i64) -> Result<Vec<Row>, NotifyError> {
    Ok(sqlx::query_as(&format!("{ROW_SELECT} WHERE ($1 = false OR n.state = 'failed') ORDER BY n.id DESC LIMIT $2"))
        .bind(failed_only)
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

pub async fn get(pool: &PgPool, id: i64) -> Result<Row, NotifyError> {
    sqlx::query_as(&format!("{ROW_SELECT} WHERE n.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(NotifyError::UnknownNotification(id))
}

/// Makes a failed (or suppressed, or waiting) row due now, then delivers its channel's due rows;
/// returns the row as it is afterwards. A delivered row is left alone.
pub async fn retry(pool: &PgPool, notifier: &Notifier, id: i64) -> Result<Row, NotifyError> {
    let row = get(pool, id).await?;
    if row.state == "delivered" {
        return Err(NotifyError::Invalid {
            what: format!("retry of notification {id}"),
            message: format!("it was delivered at {}", row.delivered_at.map(|t| t.to_rfc3339()).unwrap_or_default()),
        });
    }
    let channel_id: Uuid = sqlx::query_scalar(
        "UPDATE notifications SET state = 'pending', next_attempt_at = now() WHERE id = $1 RETURNING channel_id",
    )
    .bind(id)
    .fetch_one(pool)
    .await?;
    let channel = channel::by_ids(pool, &[channel_id]).await?.pop().ok_or(NotifyError::UnknownNotification(id))?;
    deliver_channel(pool, notifier, &channel).await?;
    get(pool, id).await
}
