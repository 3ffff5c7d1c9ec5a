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
//!   `per_channel` rows at once; a channel that does not answer stops its own batch (the rest
//!   wait for the same backoff, untried) and never holds up another channel.
//! - **Backoff.** After a retryable failure the row waits `backoff_base × 2^(attempts-1)`,
//!   capped at `backoff_max`; once `give_up_after` (24 h) has passed since the row was written
//!   it is `failed`. A refusal (4xx other than 408/429, SMTP 5xx) is `failed` at once: see
//!   [`super::send`]. `geoctl notification retry ID` makes a row due again.
//! - **Alertmanager** forgets a firing alert at its `endsAt`; every `alertmanager_repost` the
//!   open incidents already delivered to an Alertmanager channel are posted again (by
//!   whichever alerter runs; Alertmanager merges identical alerts), not through the outbox.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
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
            per_channel: 4,
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
    /// The wait after the `attempts`-th failed attempt.
    pub fn backoff(&self, attempts: i32) -> Duration {
        let exponent = attempts.saturating_sub(1).clamp(0, 30) as u32;
        self.backoff_base.saturating_mul(1u32 << exponent).min(self.backoff_max)
    }

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
    /// Not tried: their channel had just failed to answer.
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

/// Delivers the due rows of one channel until none is left or the budget is spent.
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
        let mut rows = event::load(pool, &ids).await?;
        rows.sort_by_key(|r| r.notification_id);
        let silent = AtomicBool::new(false);
        let outcomes: Vec<(i64, Option<Answer>)> = futures::stream::iter(rows.iter())
            .map(|row| attempt(notifier, channel, row, &silent))
            .buffer_unordered(options.per_channel.max(1))
            .collect()
            .await;
        let mut retry_at: Option<DateTime<Utc>> = None;
        for (id, answer) in &outcomes {
            if let Some(answer) = answer {
                let (state, next) = record(pool, *id, answer, options).await?;
                match state.as_str() {
                    "delivered" => report.delivered += 1,
                    "failed" => report.failed += 1,
                    _ => {
                        report.retrying += 1;
                        retry_at = retry_at.max(Some(next));
                    }
                }
            }
        }
        let deferred: Vec<i64> = outcomes.iter().filter(|(_, a)| a.is_none()).map(|(id, _)| *id).collect();
        if !deferred.is_empty() {
            let at = retry_at.unwrap_or_else(|| Utc::now() + chrono_duration(options.backoff_base));
            sqlx::query("UPDATE notifications SET next_attempt_at = $2 WHERE id = ANY($1) AND state = 'pending'")
                .bind(&deferred)
                .bind(at)
                .execute(pool)
                .await?;
            report.deferred += deferred.len();
        }
        if silent.load(Ordering::Relaxed) {
            break;
        }
    }
    Ok(report)
}

/// Sends one row, unless its channel has just failed to answer another (then `None`).
async fn attempt(notifier: &Notifier, channel: &Channel, row: &Loaded, silent: &AtomicBool) -> (i64, Option<Answer>) {
    if silent.load(Ordering::Relaxed) {
        return (row.notification_id, None);
    }
    let answer = match notifier.renderer.render(&row.notice) {
        Ok(text) => send::send(channel, &row.notice, &text, &notifier.options.send_options()).await,
        Err(e) => Answer { verdict: Verdict::Retry, status: None, detail: e.to_string() },
    };
    if answer.verdict == Verdict::Retry && answer.status.is_none() {
        silent.store(true, Ordering::Relaxed);
    }
    if answer.verdict != Verdict::Delivered {
        tracing::warn!(
            channel = channel.name(),
            notification = row.notification_id,
            status = answer.status,
            "not delivered: {}",
            answer.detail
        );
    }
    (row.notification_id, Some(answer))
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

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Records one attempt; returns the row's state and when it is due next.
async fn record(
    pool: &PgPool,
    id: i64,
    answer: &Answer,
    options: &DeliveryOptions,
) -> Result<(String, DateTime<Utc>), sqlx::Error> {
    let status = answer.status.map(i32::from);
    let detail = (!answer.detail.is_empty()).then_some(answer.detail.as_str());
    let row: (String, DateTime<Utc>) = match answer.verdict {
        Verdict::Delivered => {
            sqlx::query_as(
                "UPDATE notifications SET state = 'delivered', attempts = attempts + 1, last_attempt_at = now(),
                    delivered_at = now(), last_status = $2, last_error = NULL
                 WHERE id = $1 RETURNING state, next_attempt_at",
            )
            .bind(id)
            .bind(status)
            .fetch_one(pool)
            .await?
        }
        Verdict::Rejected => {
            sqlx::query_as(
                "UPDATE notifications SET state = 'failed', attempts = attempts + 1, last_attempt_at = now(),
                    last_status = $2, last_error = $3
                 WHERE id = $1 RETURNING state, next_attempt_at",
            )
            .bind(id)
            .bind(status)
            .bind(detail)
            .fetch_one(pool)
            .await?
        }
        Verdict::Retry => {
            // The backoff follows the attempts so far; past the give-up age the row fails.
            let attempts: i32 = sqlx::query_scalar("SELECT attempts + 1 FROM notifications WHERE id = $1")
                .bind(id)
                .fetch_one(pool)
                .await?;
            sqlx::query_as(
                "UPDATE notifications SET attempts = attempts + 1, last_attempt_at = now(),
                    last_status = $2, last_error = $3,
                    next_attempt_at = now() + $4,
                    state = CASE WHEN created_at + $5 <= now() + $4 THEN 'failed' ELSE 'pending' END
                 WHERE id = $1 RETURNING state, next_attempt_at",
            )
            .bind(id)
            .bind(status)
            .bind(detail.or(Some("no answer")))
            .bind(options.backoff(attempts))
            .bind(options.give_up_after)
            .fetch_one(pool)
            .await?
        }
    };
    Ok(row)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let o = DeliveryOptions::default();
        let secs: Vec<u64> = [1, 2, 3, 10, 40].iter().map(|&a| o.backoff(a).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 3600, 3600]);
    }
}
