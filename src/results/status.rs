//! Cross-region status: each region's latest result judged against its
//! latency thresholds, and the monitor's rule for when it is down overall.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::query;
use crate::monitor::{DownRule, Monitor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Up,
    /// Up, but slower than the latency warning threshold.
    Degraded,
    Down,
    /// No result recent enough to judge.
    Unknown,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Degraded => "degraded",
            State::Down => "down",
            State::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RegionStatus {
    pub region: String,
    pub state: State,
    pub checked_at: Option<DateTime<Utc>>,
    pub total_ms: Option<f64>,
    pub latency_warning_ms: i32,
    pub latency_critical_ms: i32,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MonitorStatus {
    pub monitor_id: Uuid,
    pub name: String,
    pub rule: String,
    pub state: State,
    /// Regions whose latest result is down.
    pub failing: Vec<String>,
    /// Failing regions that the rule does not count as an outage: the
    /// failure a majority rule would otherwise hide.
    pub failing_below_quorum: Vec<String>,
    pub regions: Vec<RegionStatus>,
    /// The monitor's incidents open now (filled by the caller that reads them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub open_incidents: Vec<Incident>,
}

/// The monitor an incident is about: its name, and its target as shown (a password masked).
#[derive(Debug, Clone, Serialize)]
pub struct MonitorRef {
    pub id: Uuid,
    pub name: Option<String>,
    pub target: Option<String>,
}

/// An incident: one row of `incidents` with its monitor. Operators see it (`incident list`,
/// a monitor's status, `report`) and receivers get it (the webhook body v1, the notification
/// templates) as the same value. Alerting (`alert::manage`, the alerter) opens, reads and
/// resolves them, and `notify` sends them; the type is here, below both, so status needs
/// nothing above it.
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

/// The columns [`Incident`] is read from, for a query over `incidents i LEFT JOIN monitors m
/// ON m.id = i.monitor_id`.
pub const INCIDENT_COLUMNS: &str = "i.id, i.kind, i.cause, i.severity, i.monitor_id, m.name::text AS monitor_name, \
    m.target AS monitor_target, i.region_code, i.summary, i.regions, i.first_error, i.in_maintenance, i.opened_at, \
    i.acknowledged_at, i.acknowledged_by, i.resolved_at, i.resolved_by";

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for Incident {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        let monitor = match row.try_get::<Option<Uuid>, _>("monitor_id")? {
            Some(id) => Some(MonitorRef {
                id,
                name: row.try_get("monitor_name")?,
                // A target may carry a password (`https://user:pass@host`); no incident shows it.
                target: row.try_get::<Option<String>, _>("monitor_target")?.map(|t| crate::probe::display_url(&t)),
            }),
            None => None,
        };
        Ok(Incident {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            cause: row.try_get("cause")?,
            severity: row.try_get("severity")?,
            monitor,
            region: row.try_get("region_code")?,
            summary: row.try_get("summary")?,
            regions: row.try_get("regions")?,
            first_error: row.try_get("first_error")?,
            in_maintenance: row.try_get("in_maintenance")?,
            opened_at: row.try_get("opened_at")?,
            acknowledged_at: row.try_get("acknowledged_at")?,
            acknowledged_by: row.try_get("acknowledged_by")?,
            resolved_at: row.try_get("resolved_at")?,
            resolved_by: row.try_get("resolved_by")?,
        })
    }
}

impl Incident {
    pub fn state(&self) -> &'static str {
        match (self.resolved_at, self.acknowledged_at) {
            (Some(_), _) => "resolved",
            (None, Some(_)) => "acknowledged",
            (None, None) => "open",
        }
    }

    /// The monitor it is about, if it is a monitor's.
    pub fn monitor_id(&self) -> Option<Uuid> {
        self.monitor.as_ref().map(|m| m.id)
    }
}

/// Judges one region's latest result.
pub fn region_state(up: Option<bool>, total_ms: Option<f64>, warning_ms: i32, stale: bool) -> State {
    match (up, stale) {
        (None, _) | (_, true) => State::Unknown,
        (Some(false), _) => State::Down,
        (Some(true), _) if total_ms.is_some_and(|t| t > f64::from(warning_ms)) => State::Degraded,
        (Some(true), _) => State::Up,
    }
}

/// How long a region's latest result still says something: three intervals,
/// and at least five minutes. `monitor status` and the alerter both judge by it.
pub fn fresh_for(interval_seconds: i32) -> chrono::Duration {
    chrono::Duration::seconds((3 * i64::from(interval_seconds)).max(300))
}

/// Applies the rule to the regions that have a recent result.
pub fn overall(rule: DownRule, regions: &[RegionStatus]) -> (State, Vec<String>, Vec<String>) {
    let known: Vec<&RegionStatus> = regions.iter().filter(|r| r.state != State::Unknown).collect();
    let failing: Vec<String> = known.iter().filter(|r| r.state == State::Down).map(|r| r.region.clone()).collect();
    if known.is_empty() {
        return (State::Unknown, failing, Vec::new());
    }
    if rule.is_down(failing.len(), known.len()) {
        return (State::Down, failing, Vec::new());
    }
    // Failures below the quorum do not change the verdict; they are named instead.
    let state = if known.iter().any(|r| r.state == State::Degraded) { State::Degraded } else { State::Up };
    let below = failing.clone();
    (state, failing, below)
}

#[derive(sqlx::FromRow)]
struct Latest {
    monitor_id: Uuid,
    region: String,
    is_up: Option<bool>,
    checked_at: Option<DateTime<Utc>>,
    total_time: Option<f64>,
    error_kind: Option<String>,
    error_message: Option<String>,
    warning: i32,
    critical: i32,
    interval_seconds: Option<i32>,
}

/// The status of one monitor across its enabled regions.
pub async fn monitor_status(
    pool: &PgPool,
    monitor: &Monitor,
    now: DateTime<Utc>,
) -> Result<MonitorStatus, sqlx::Error> {
    let mut all = statuses(pool, std::slice::from_ref(monitor), now).await?;
    Ok(all.pop().expect("one status per monitor"))
}

/// How far back the latest result of a region is looked for: results are partitioned by day and
/// a bound lets the planner read only these days' partitions. A region silent for longer shows
/// no last check (it is long stale anyway).
const LOOKBACK: chrono::Duration = chrono::Duration::days(7);

/// The status of each monitor, in the order given, in one query whatever
/// their number: each enabled region's latest result of the last [`LOOKBACK`] (up to `now` and
/// [`query::CLOCK_SLACK`], so the days made ahead are not opened either), found through the
/// (monitor, region, checked_at) index.
pub async fn statuses(
    pool: &PgPool,
    monitors: &[Monitor],
    now: DateTime<Utc>,
) -> Result<Vec<MonitorStatus>, sqlx::Error> {
    let ids: Vec<Uuid> = monitors.iter().map(|m| m.id).collect();
    let rows: Vec<Latest> = sqlx::query_as(
        "SELECT mr.monitor_id, mr.region_code AS region, l.is_up, l.checked_at, l.total_time, l.error_kind,
                l.error_message,
                COALESCE(mr.latency_warning_ms, g.latency_warning_ms) AS warning,
                COALESCE(mr.latency_critical_ms, g.latency_critical_ms) AS critical,
                mr.interval_seconds
         FROM monitor_regions mr
         JOIN regions g ON g.code = mr.region_code
         LEFT JOIN LATERAL (
             SELECT is_up, checked_at, total_time, error_kind, error_message FROM monitor_results r
             WHERE r.monitor_id = mr.monitor_id AND r.execution_region = mr.region_code
               AND r.checked_at >= $2 AND r.checked_at <= $3
             ORDER BY checked_at DESC LIMIT 1) l ON true
         WHERE mr.monitor_id = ANY($1) AND mr.enabled
         ORDER BY mr.monitor_id, mr.region_code",
    )
    .bind(&ids)
    .bind(now - LOOKBACK)
    .bind(now + query::CLOCK_SLACK)
    .fetch_all(pool)
    .await?;
    let mut by_monitor: std::collections::HashMap<Uuid, Vec<Latest>> = std::collections::HashMap::new();
    for row in rows {
        by_monitor.entry(row.monitor_id).or_default().push(row);
    }
    Ok(monitors.iter().map(|m| judge(m, by_monitor.remove(&m.id).unwrap_or_default(), now)).collect())
}

fn judge(monitor: &Monitor, rows: Vec<Latest>, now: DateTime<Utc>) -> MonitorStatus {
    let regions: Vec<RegionStatus> = rows
        .into_iter()
        .map(|row| {
            let horizon = fresh_for(row.interval_seconds.unwrap_or(monitor.interval_seconds));
            let stale = row.checked_at.is_none_or(|t| now - t > horizon);
            RegionStatus {
                state: region_state(row.is_up, row.total_time, row.warning, stale),
                region: row.region,
                checked_at: row.checked_at,
                total_ms: row.total_time,
                latency_warning_ms: row.warning,
                latency_critical_ms: row.critical,
                error_kind: row.error_kind,
                error_message: row.error_message,
            }
        })
        .collect();
    let rule: DownRule = monitor.down_rule.parse().unwrap_or_default();
    let (state, failing, failing_below_quorum) = overall(rule, &regions);
    MonitorStatus {
        monitor_id: monitor.id,
        name: monitor.name.clone(),
        rule: rule.to_string(),
        state,
        failing,
        failing_below_quorum,
        regions,
        open_incidents: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(name: &str, state: State) -> RegionStatus {
        RegionStatus {
            region: name.into(),
            state,
            checked_at: None,
            total_ms: None,
            latency_warning_ms: 200,
            latency_critical_ms: 500,
            error_kind: None,
            error_message: None,
        }
    }

    #[test]
    fn one_of_three_down_is_up_by_majority_and_named() {
        let regions = [region("us-east", State::Up), region("eu-west", State::Down), region("ap-south", State::Up)];
        let (state, failing, below) = overall(DownRule::Majority, &regions);
        assert_eq!(state, State::Up);
        assert_eq!(failing, ["eu-west"]);
        assert_eq!(below, ["eu-west"]);
        assert_eq!(overall(DownRule::Any, &regions).0, State::Down);
        assert_eq!(overall(DownRule::All, &regions).0, State::Up);
        assert_eq!(overall(DownRule::AtLeast(2), &regions).0, State::Up);
    }

    #[test]
    fn two_of_three_down_is_down_by_majority() {
        let regions = [region("us-east", State::Down), region("eu-west", State::Down), region("ap-south", State::Up)];
        let (state, failing, below) = overall(DownRule::Majority, &regions);
        assert_eq!((state, failing.len(), below.len()), (State::Down, 2, 0));
    }

    #[test]
    fn thresholds_and_staleness() {
        assert_eq!(region_state(Some(true), Some(250.0), 200, false), State::Degraded);
        assert_eq!(region_state(Some(true), Some(150.0), 200, false), State::Up);
        assert_eq!(region_state(Some(true), Some(150.0), 200, true), State::Unknown);
        assert_eq!(region_state(None, None, 200, false), State::Unknown);
        let regions = [region("us-east", State::Degraded), region("eu-west", State::Unknown)];
        assert_eq!(overall(DownRule::Majority, &regions).0, State::Degraded);
        assert_eq!(overall(DownRule::Majority, &[region("x", State::Unknown)]).0, State::Unknown);
    }
}
