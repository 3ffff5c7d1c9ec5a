//! What one notification is about: the event, its incident and the incident's monitor, read in
//! one query for a whole batch of outbox rows.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::results::status::INCIDENT_COLUMNS;

pub use crate::results::status::{Incident, MonitorRef};

/// One event of an incident.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub id: i64,
    /// `opened`, `resolved`, `acknowledged`, `flapping`, `firing`, `note`, or `test` (from
    /// `geoctl channel test`, never stored).
    pub kind: String,
    pub at: DateTime<Utc>,
    pub detail: serde_json::Value,
}

/// One notification to send: an event of an incident, and the key every attempt carries.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    pub idempotency_key: String,
    pub event: Event,
    pub incident: Incident,
}

impl Notice {
    /// The event ends the incident for receivers that track state (PagerDuty, Alertmanager).
    pub fn resolves(&self) -> bool {
        self.event.kind == "resolved"
    }

    /// A made-up incident for `geoctl channel test`, so a receiver sees what a real one looks
    /// like, marked as a test everywhere it shows.
    pub fn test(channel: &str) -> Notice {
        let now = Utc::now();
        Notice {
            idempotency_key: format!("test-{}", Uuid::new_v4()),
            event: Event { id: 0, kind: "test".into(), at: now, detail: serde_json::json!({"channel": channel}) },
            incident: Incident {
                id: 0,
                kind: "monitor".into(),
                cause: "down".into(),
                severity: "warning".into(),
                monitor: None,
                region: None,
                summary: format!("geoctl test notification for channel {channel}"),
                regions: Vec::new(),
                first_error: None,
                in_maintenance: false,
                opened_at: now,
                acknowledged_at: None,
                acknowledged_by: None,
                resolved_at: None,
                resolved_by: None,
            },
        }
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    notification_id: i64,
    channel_id: Uuid,
    idempotency_key: String,
    event_id: i64,
    event_kind: String,
    event_at: DateTime<Utc>,
    detail: serde_json::Value,
    #[sqlx(flatten)]
    incident: Incident,
}

/// The outbox rows with their events and incidents; callers add the filter.
fn select() -> String {
    format!(
        "SELECT n.id AS notification_id, n.channel_id, n.idempotency_key, e.id AS event_id, e.kind AS event_kind,
            e.at AS event_at, e.detail, {INCIDENT_COLUMNS}
         FROM notifications n
         JOIN incident_events e ON e.id = n.event_id
         JOIN incidents i ON i.id = e.incident_id
         LEFT JOIN monitors m ON m.id = i.monitor_id"
    )
}

/// An outbox row with what it is about.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub notification_id: i64,
    pub channel_id: Uuid,
    pub notice: Notice,
}

/// The given outbox rows with their notices.
pub async fn load(pool: &PgPool, ids: &[i64]) -> Result<Vec<Loaded>, sqlx::Error> {
    let rows: Vec<Row> =
        sqlx::query_as(&format!("{} WHERE n.id = ANY($1)", select())).bind(ids).fetch_all(pool).await?;
    Ok(rows.into_iter().map(loaded).collect())
}

/// The `opened` row of each open incident already delivered to a channel of `kind`: what
/// Alertmanager must be told again while the incident lasts.
pub async fn open_delivered(pool: &PgPool, kind: &str) -> Result<Vec<Loaded>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "{} JOIN alert_channels c ON c.id = n.channel_id
         WHERE c.kind = $1 AND e.kind = 'opened' AND n.state = 'delivered' AND i.resolved_at IS NULL",
        select()
    ))
    .bind(kind)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(loaded).collect())
}

fn loaded(r: Row) -> Loaded {
    Loaded { notification_id: r.notification_id, channel_id: r.channel_id, notice: notice(r) }
}

fn notice(r: Row) -> Notice {
    Notice {
        idempotency_key: r.idempotency_key,
        event: Event { id: r.event_id, kind: r.event_kind, at: r.event_at, detail: r.detail },
        incident: r.incident,
    }
}
