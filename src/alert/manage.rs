//! What operators do by hand: list, show, acknowledge and resolve incidents;
//! add, list and end maintenance windows; a monitor's alert settings. Changes
//! take the tick lock, so they never interleave with the alerter's tick, and
//! write their events through the same outbox writer.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::store::{channel_ids, lock_ticks, IncidentRef, Routing, Writes};
use super::{AlertError, Settings, Subject};
use crate::error::Carried;
use crate::monitor::apply::MonitorDecl;
use crate::store::Change;

// The row type is part of a monitor's status (`results::status`, below alerting); alerting
// writes and reads the rows.
pub use crate::results::status::Incident;
use crate::results::status::INCIDENT_COLUMNS;

fn subject(incident: &Incident) -> Subject {
    match (&incident.monitor, &incident.region) {
        (Some(m), _) => Subject::Monitor(m.id),
        (None, code) => Subject::Region(code.clone().unwrap_or_default()),
    }
}

/// The newest incidents first; `open` keeps the unresolved ones; `monitor` keeps one monitor's.
pub async fn list(pool: &PgPool, open: bool, monitor: Option<Uuid>, limit: i64) -> Result<Vec<Incident>, AlertError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents i LEFT JOIN monitors m ON m.id = i.monitor_id
         WHERE (NOT $1 OR i.resolved_at IS NULL) AND ($2::uuid IS NULL OR i.monitor_id = $2)
         ORDER BY i.opened_at DESC, i.id DESC LIMIT $3"
    ))
    .bind(open)
    .bind(monitor)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// The open incidents of these monitors, for `monitor status` and `report`.
pub async fn open_for(pool: &PgPool, monitors: &[Uuid]) -> Result<Vec<Incident>, AlertError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents i LEFT JOIN monitors m ON m.id = i.monitor_id
         WHERE i.resolved_at IS NULL AND i.monitor_id = ANY($1) ORDER BY i.opened_at"
    ))
    .bind(monitors)
    .fetch_all(pool)
    .await?)
}

/// `#12 down (acknowledged), #14 latency`, or `-`: a status table's cell.
pub fn incident_refs(incidents: &[Incident]) -> String {
    if incidents.is_empty() {
        return "-".into();
    }
    let refs: Vec<String> = incidents
        .iter()
        .map(|i| match i.state() {
            "open" => format!("#{} {}", i.id, i.cause),
            state => format!("#{} {} ({state})", i.id, i.cause),
        })
        .collect();
    refs.join(", ")
}

async fn fetch(conn: &mut PgConnection, id: i64) -> Result<Incident, AlertError> {
    sqlx::query_as(&format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents i LEFT JOIN monitors m ON m.id = i.monitor_id WHERE i.id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(AlertError::NoIncident(id))
}

/// One event of an incident's timeline, with what became of its notifications.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Event {
    pub id: i64,
    pub kind: String,
    pub at: DateTime<Utc>,
    pub detail: Value,
    pub pending: i64,
    pub delivered: i64,
    pub failed: i64,
    pub suppressed: i64,
}

/// A result near an incident.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct NearbyResult {
    pub checked_at: DateTime<Utc>,
    pub region: Option<String>,
    pub up: Option<bool>,
    pub total_ms: Option<f64>,
    pub error: Option<String>,
}

/// An incident, its timeline, and its monitor's results around it.
#[derive(Debug, Clone, Serialize)]
pub struct Detail {
    pub incident: Incident,
    pub events: Vec<Event>,
    pub results: Vec<NearbyResult>,
}

/// How far around an incident `show` reads its monitor's results.
const AROUND: chrono::Duration = chrono::Duration::minutes(10);
/// Most results `show` lists.
const MAX_NEARBY: i64 = 200;

pub async fn show(pool: &PgPool, id: i64) -> Result<Detail, AlertError> {
    let mut conn = pool.acquire().await?;
    let incident = fetch(&mut conn, id).await?;
    let events: Vec<Event> = sqlx::query_as(
        "SELECT e.id, e.kind, e.at, e.detail,
                count(*) FILTER (WHERE n.state = 'pending') AS pending,
                count(*) FILTER (WHERE n.state = 'delivered') AS delivered,
                count(*) FILTER (WHERE n.state = 'failed') AS failed,
                count(*) FILTER (WHERE n.state = 'suppressed') AS suppressed
         FROM incident_events e LEFT JOIN notifications n ON n.event_id = e.id
         WHERE e.incident_id = $1 GROUP BY e.id ORDER BY e.at, e.id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let results = match incident.monitor_id() {
        Some(monitor) => {
            let from = incident.opened_at - AROUND;
            let to = incident.resolved_at.map_or_else(Utc::now, |r| r + AROUND);
            // The newest results of the range, shown oldest first.
            sqlx::query_as(
                "SELECT * FROM (
                     SELECT checked_at, execution_region AS region, is_up AS up, total_time AS total_ms,
                            NULLIF(concat_ws(': ', error_kind, error_message), '') AS error
                     FROM monitor_results WHERE monitor_id = $1 AND checked_at BETWEEN $2 AND $3
                     ORDER BY checked_at DESC LIMIT $4) r ORDER BY checked_at",
            )
            .bind(monitor)
            .bind(from)
            .bind(to)
            .bind(MAX_NEARBY)
            .fetch_all(&mut *conn)
            .await?
        }
        None => Vec::new(),
    };
    Ok(Detail { incident, events, results })
}

/// Acknowledges an open incident: an `acknowledged` event goes to its channels
/// (PagerDuty stops escalating). Acknowledging twice changes nothing.
pub async fn ack(pool: &PgPool, settings: &Settings, id: i64, by: &str) -> Result<(Incident, Change), AlertError> {
    let mut tx = pool.begin().await?;
    lock_ticks(&mut tx).await?;
    let incident = fetch(&mut tx, id).await?;
    if incident.resolved_at.is_some() {
        return Err(AlertError::AlreadyResolved(id));
    }
    if incident.acknowledged_at.is_some() {
        return Ok((incident, Change::Unchanged));
    }
    sqlx::query("UPDATE incidents SET acknowledged_at = now(), acknowledged_by = $2 WHERE id = $1")
        .bind(id)
        .bind(by)
        .execute(&mut *tx)
        .await?;
    let detail = json!({ "summary": format!("acknowledged by {by}: {}", incident.summary), "by": by });
    announce(&mut tx, settings, &incident, "acknowledged", detail).await?;
    let incident = fetch(&mut tx, id).await?;
    tx.commit().await?;
    Ok((incident, Change::Updated))
}

/// Resolves an incident by hand. A monitor's failing streaks start again, so
/// it takes a new `confirm` streak of failures — a later failure — to open a
/// new incident; a region incident whose cause still holds opens again at the
/// next tick. Resolving twice changes nothing.
pub async fn resolve(pool: &PgPool, settings: &Settings, id: i64, by: &str) -> Result<(Incident, Change), AlertError> {
    let mut tx = pool.begin().await?;
    lock_ticks(&mut tx).await?;
    let incident = fetch(&mut tx, id).await?;
    if incident.resolved_at.is_some() {
        return Ok((incident, Change::Unchanged));
    }
    sqlx::query("UPDATE incidents SET resolved_at = now(), resolved_by = $2 WHERE id = $1")
        .bind(id)
        .bind(by)
        .execute(&mut *tx)
        .await?;
    if let Some(monitor) = incident.monitor_id() {
        let reset = if incident.cause == "latency" {
            "UPDATE alert_region_state SET slow = false, slow_toward = 0 WHERE monitor_id = $1"
        } else {
            "UPDATE alert_region_state SET failing = false, failing_toward = 0 WHERE monitor_id = $1"
        };
        sqlx::query(reset).bind(monitor).execute(&mut *tx).await?;
        // A running leader keeps the streaks in memory while `alert_cursor` still holds the time
        // it wrote; moving the cursor by a microsecond makes it read the reset state at its next
        // tick, and the results it reads from there are the same to within that microsecond.
        sqlx::query("UPDATE alert_cursor SET evaluated_at = evaluated_at - interval '1 microsecond'")
            .execute(&mut *tx)
            .await?;
    }
    let detail = json!({ "summary": format!("resolved by {by}: {}", incident.summary), "by": by, "manual": true });
    announce(&mut tx, settings, &incident, "resolved", detail).await?;
    let incident = fetch(&mut tx, id).await?;
    tx.commit().await?;
    Ok((incident, Change::Updated))
}

async fn announce(
    conn: &mut PgConnection,
    settings: &Settings,
    incident: &Incident,
    kind: &'static str,
    detail: Value,
) -> Result<(), AlertError> {
    let subject = subject(incident);
    let monitors = incident.monitor_id().map(|m| vec![m]);
    let routing = Routing::load(conn, settings, monitors.as_deref()).await?;
    let mut writes = Writes::default();
    writes.event(IncidentRef::Stored(incident.id), kind, detail, routing.channels(&subject), incident.in_maintenance);
    writes.write(conn).await?;
    Ok(())
}

/// A maintenance window.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Window {
    pub id: i64,
    pub monitor_id: Option<Uuid>,
    pub monitor: Option<String>,
    pub region_code: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub reason: String,
    pub created_by: Option<String>,
}

/// What a window covers.
#[derive(Debug, Clone)]
pub enum Scope {
    /// A monitor, by id or name.
    Monitor(String),
    Region(String),
}

/// A window to add.
#[derive(Debug, Clone)]
pub struct NewWindow {
    pub scope: Scope,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub reason: String,
    pub created_by: Option<String>,
}

const WINDOW_COLUMNS: &str = "w.id, w.monitor_id, m.name::text AS monitor, w.region_code, w.starts_at, w.ends_at, \
    w.reason, w.created_by";

/// Adds a window. It must end after it starts and after now, and not overlap
/// another window of the same monitor or region (extend that one instead).
pub async fn add_window(pool: &PgPool, new: NewWindow, now: DateTime<Utc>) -> Result<Window, AlertError> {
    if new.ends_at <= new.starts_at {
        return Err(AlertError::Invalid(format!(
            "the window ends ({}) before it starts ({}); give --to after --from",
            new.ends_at.to_rfc3339(),
            new.starts_at.to_rfc3339()
        )));
    }
    if new.ends_at <= now {
        return Err(AlertError::Invalid(format!(
            "the window ended already ({}); give a --to in the future",
            new.ends_at.to_rfc3339()
        )));
    }
    crate::text::check("reason", &new.reason, crate::text::MAX_NOTES).map_err(AlertError::Invalid)?;
    let mut tx = pool.begin().await?;
    let (monitor, region) = match &new.scope {
        Scope::Monitor(reference) => (Some(crate::monitor::MonitorStore::resolve_id(&mut tx, reference).await?), None),
        Scope::Region(code) => {
            crate::region::RegionStore::fetch(&mut tx, code).await?;
            (None, Some(code.clone()))
        }
    };
    let overlapping: Option<(i64, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, starts_at, ends_at FROM maintenance_windows
         WHERE monitor_id IS NOT DISTINCT FROM $1 AND region_code IS NOT DISTINCT FROM $2
           AND starts_at < $4 AND ends_at > $3 ORDER BY starts_at LIMIT 1",
    )
    .bind(monitor)
    .bind(&region)
    .bind(new.starts_at)
    .bind(new.ends_at)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((id, starts, ends)) = overlapping {
        return Err(AlertError::Invalid(format!(
            "it overlaps maintenance window {id} ({} to {}) of the same {}; end that one with `geoctl maintenance end {id}` or choose times outside it",
            starts.to_rfc3339(),
            ends.to_rfc3339(),
            if monitor.is_some() { "monitor" } else { "region" }
        )));
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO maintenance_windows (monitor_id, region_code, starts_at, ends_at, reason, created_by)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(monitor)
    .bind(&region)
    .bind(new.starts_at)
    .bind(new.ends_at)
    .bind(&new.reason)
    .bind(&new.created_by)
    .fetch_one(&mut *tx)
    .await?;
    let window = fetch_window(&mut tx, id).await?;
    tx.commit().await?;
    Ok(window)
}

async fn fetch_window(conn: &mut PgConnection, id: i64) -> Result<Window, AlertError> {
    sqlx::query_as(&format!(
        "SELECT {WINDOW_COLUMNS} FROM maintenance_windows w LEFT JOIN monitors m ON m.id = w.monitor_id WHERE w.id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(AlertError::NoWindow(id))
}

/// Windows in force or to come; with `all`, past ones too.
pub async fn list_windows(pool: &PgPool, all: bool) -> Result<Vec<Window>, AlertError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {WINDOW_COLUMNS} FROM maintenance_windows w LEFT JOIN monitors m ON m.id = w.monitor_id
         WHERE $1 OR w.ends_at > now() ORDER BY w.starts_at, w.id"
    ))
    .bind(all)
    .fetch_all(pool)
    .await?)
}

/// Ends a window now; one that has not started yet is removed. Ending one that
/// is over changes nothing.
pub async fn end_window(pool: &PgPool, id: i64) -> Result<(Window, Change), AlertError> {
    let mut tx = pool.begin().await?;
    let window = fetch_window(&mut tx, id).await?;
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(&mut *tx).await?;
    let change = if window.ends_at <= now {
        Change::Unchanged
    } else if window.starts_at >= now {
        sqlx::query("DELETE FROM maintenance_windows WHERE id = $1").bind(id).execute(&mut *tx).await?;
        Change::Deleted
    } else {
        sqlx::query("UPDATE maintenance_windows SET ends_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        Change::Updated
    };
    let window = if change == Change::Deleted { window } else { fetch_window(&mut tx, id).await? };
    tx.commit().await?;
    Ok((window, change))
}

/// A monitor's alert settings; `None` keeps a field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertPatch {
    pub confirm: Option<u32>,
    pub recover: Option<u32>,
    /// Channel names; an empty list returns the monitor to the default channels.
    pub notify: Option<Vec<String>>,
}

impl AlertPatch {
    /// Checks what needs no database: streaks of at least one run.
    pub fn validate(&self) -> Result<(), AlertError> {
        for (name, value) in [("confirm", self.confirm), ("recover", self.recover)] {
            if value == Some(0) {
                return Err(AlertError::Invalid(format!(
                    "{name} must be at least 1 (the consecutive runs it takes); the default is 2"
                )));
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self == &AlertPatch::default()
    }
}

/// Checks a patch without writing: streak lengths, and that every channel exists.
pub async fn check_alerting(conn: &mut PgConnection, patch: &AlertPatch) -> Result<(), AlertError> {
    patch.validate()?;
    if let Some(names) = &patch.notify {
        channel_ids(conn, names).await?;
    }
    Ok(())
}

/// Applies a monitor's alert settings inside the caller's transaction, so a
/// monitor and its settings are written together or not at all. Unknown
/// channels are bad input; settings already as asked change nothing.
pub async fn set_monitor_alerting(
    conn: &mut PgConnection,
    monitor: Uuid,
    patch: &AlertPatch,
) -> Result<Change, AlertError> {
    patch.validate()?;
    let channels = match &patch.notify {
        Some(names) => Some(channel_ids(conn, names).await?),
        None => None,
    };
    let current = monitor_alerting(conn, monitor).await?;
    let as_int = |v: Option<u32>| v.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    let mut wanted_names = patch.notify.clone().unwrap_or_else(|| current.notify.clone());
    wanted_names.sort();
    wanted_names.dedup();
    let same = as_int(patch.confirm).is_none_or(|c| current.confirm == Some(c))
        && as_int(patch.recover).is_none_or(|r| current.recover == Some(r))
        && wanted_names == current.notify;
    if same {
        return Ok(Change::Unchanged);
    }
    sqlx::query(
        "UPDATE monitors SET alert_confirm = COALESCE($2, alert_confirm), alert_recover = COALESCE($3, alert_recover)
         WHERE id = $1",
    )
    .bind(monitor)
    .bind(as_int(patch.confirm))
    .bind(as_int(patch.recover))
    .execute(&mut *conn)
    .await?;
    if let Some(channels) = channels {
        sqlx::query("DELETE FROM monitor_channels WHERE monitor_id = $1 AND NOT channel_id = ANY($2)")
            .bind(monitor)
            .bind(&channels)
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "INSERT INTO monitor_channels (monitor_id, channel_id) SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING",
        )
        .bind(monitor)
        .bind(&channels)
        .execute(&mut *conn)
        .await?;
    }
    Ok(Change::Updated)
}

/// `monitor apply`'s writer of a declared monitor's alert settings
/// ([`crate::monitor::apply::AlertWriter`]): [`set_monitor_alerting`] with what the declaration states.
pub fn write_declared<'c>(
    conn: &'c mut PgConnection,
    monitor: Uuid,
    decl: &'c MonitorDecl,
) -> BoxFuture<'c, Result<Change, Carried>> {
    let patch = AlertPatch { confirm: decl.confirm, recover: decl.recover, notify: decl.notify.clone() };
    Box::pin(async move { set_monitor_alerting(conn, monitor, &patch).await.map_err(Carried::new) })
}

/// A monitor's alert settings as stored: `None` means the configured default.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MonitorAlerting {
    pub confirm: Option<i32>,
    pub recover: Option<i32>,
    pub notify: Vec<String>,
}

pub async fn monitor_alerting(conn: &mut PgConnection, monitor: Uuid) -> Result<MonitorAlerting, AlertError> {
    let (confirm, recover): (Option<i32>, Option<i32>) =
        sqlx::query_as("SELECT alert_confirm, alert_recover FROM monitors WHERE id = $1")
            .bind(monitor)
            .fetch_one(&mut *conn)
            .await?;
    let notify: Vec<String> = sqlx::query_scalar(
        "SELECT c.name FROM monitor_channels mc JOIN alert_channels c ON c.id = mc.channel_id
         WHERE mc.monitor_id = $1 ORDER BY c.name",
    )
    .bind(monitor)
    .fetch_all(conn)
    .await?;
    Ok(MonitorAlerting { confirm, recover, notify })
}
