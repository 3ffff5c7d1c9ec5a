//! What one notification is about: the event, its incident and the incident's monitor, read in
//! one query for a whole batch of outbox rows.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// The monitor an incident is about.
#[derive(Debug, Clone, Serialize)]
pub struct MonitorRef {
    pub id: Uuid,
    pub name: Option<String>,
    pub target: Option<String>,
}

/// An incident as receivers see it (webhook body v1, templates).
#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    pub id: i64,
    /// `monitor` or `region`.
    pub kind: String,
    /// `down`, `latency`, `region_impaired` or `no_agent`.
    pub cause: String,
    /// `critical` or `warning`.
    pub severity: String,
    pub monitor: Option<MonitorRef>,
    pub region: Option<String>,
    pub summary: String,
    pub regions: Vec<String>,
    pub first_error: Option<String>,
    pub in_maintenance: bool,
    pub opened_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
}

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
    incident_id: i64,
    incident_kind: String,
    cause: String,
    severity: String,
    monitor_id: Option<Uuid>,
    monitor_name: Option<String>,
    monitor_target: Option<String>,
    region_code: Option<String>,
    summary: String,
    regions: Vec<String>,
    first_error: Option<String>,
    in_maintenance: bool,
    opened_at: DateTime<Utc>,
    acknowledged_at: Option<DateTime<Utc>>,
    acknowledged_by: Option<String>,
    resolved_at: Option<DateTime<Utc>>,
    resolved_by: Option<String>,
}

const SELECT: &str =
    "SELECT n.id AS notification_id, n.channel_id, n.idempotency_key, e.id AS event_id, e.kind AS event_kind,
        e.at AS event_at, e.detail, i.id AS incident_id, i.kind AS incident_kind, i.cause, i.severity,
        i.monitor_id, m.name AS monitor_name, m.target AS monitor_target, i.region_code, i.summary, i.regions,
        i.first_error, i.in_maintenance, i.opened_at, i.acknowledged_at, i.acknowledged_by, i.resolved_at,
        i.resolved_by
    FROM notifications n
    JOIN incident_events e ON e.id = n.event_id
    JOIN incidents i ON i.id = e.incident_id
    LEFT JOIN monitors m ON m.id = i.monitor_id";

/// An outbox row with what it is about.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub notification_id: i64,
    pub channel_id: Uuid,
    pub notice: Notice,
}

/// The given outbox rows with their notices.
pub async fn load(pool: &PgPool, ids: &[i64]) -> Result<Vec<Loaded>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!("{SELECT} WHERE n.id = ANY($1)")).bind(ids).fetch_all(pool).await?;
    Ok(rows.into_iter().map(loaded).collect())
}

/// The `opened` row of each open incident already delivered to a channel of `kind`: what
/// Alertmanager must be told again while the incident lasts.
pub async fn open_delivered(pool: &PgPool, kind: &str) -> Result<Vec<Loaded>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "{SELECT} JOIN alert_channels c ON c.id = n.channel_id
         WHERE c.kind = $1 AND e.kind = 'opened' AND n.state = 'delivered' AND i.resolved_at IS NULL"
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
        incident: Incident {
            id: r.incident_id,
            kind: r.incident_kind,
            cause: r.cause,
            severity: r.severity,
            monitor: r.monitor_id.map(|id| MonitorRef { id, name: r.monitor_name, target: r.monitor_target }),
            region: r.region_code,
            summary: r.summary,
            regions: r.regions,
            first_error: r.first_error,
            in_maintenance: r.in_maintenance,
            opened_at: r.opened_at,
            acknowledged_at: r.acknowledged_at,
            acknowledged_by: r.acknowledged_by,
            resolved_at: r.resolved_at,
            resolved_by: r.resolved_by,
        },
    }
}
