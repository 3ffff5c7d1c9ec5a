//! The alerter's tick against PostgreSQL: read everything [`eval::evaluate`]
//! needs, and write what it decided, in one transaction.
//!
//! A tick reads a fixed number of queries whatever the number of monitors
//! (monitors with their regions, state, open incidents, windows, channels, and
//! the results since the last tick), and writes a fixed number too: the changed
//! state in one statement, the flapping state in one, and every incident opened,
//! resolved or fired again with its events and outbox rows in two ([`Writes`]),
//! whether the tick opens one incident or a thousand. Results are read keyed by
//! monitor and a `checked_at` range, so a results table partitioned by day (or
//! distributed by monitor) is read only where the new rows are.
//!
//! Everything happens under [`TICK_LOCK`], a transaction-scoped advisory lock
//! that manual changes ([`super::manage`]) take too: an `incident resolve`
//! never interleaves with a tick, and even two alerters that both believed they
//! lead would evaluate one after the other from the same committed state, so
//! no result is counted twice and no event is written twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::eval::{
    self, Flap, Liveness, Maintenance, Memory, MonitorView, Observation, OpenIncident, RegionView, Streak, Track,
    Transition,
};
use super::{AlertError, Cause, Settings, Subject};
use crate::monitor::DownRule;
use crate::results::status::fresh_for;

/// The advisory lock (transaction scope) that serializes ticks and manual changes.
pub const TICK_LOCK: i64 = 0x6765_6f63_746c_0002;

/// How late a result may be committed after the time it was checked and still
/// be counted: the longest check timeout (2 min) and the agents' batching.
const LATE_GRACE: chrono::Duration = chrono::Duration::minutes(3);
/// The furthest back a tick reads: on the first tick, and after a long pause
/// (older results say nothing about now; their streaks would only replay the past).
const LOOKBACK: chrono::Duration = chrono::Duration::minutes(15);

/// What one tick did, for the alerter's log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TickReport {
    pub evaluated_at: Option<DateTime<Utc>>,
    pub monitors: usize,
    pub results: usize,
    pub opened: usize,
    pub resolved: usize,
    pub events: usize,
    pub notifications: usize,
    /// Where the tick's time went, for the alerter's log.
    #[serde(skip)]
    pub phases: Phases,
}

/// Milliseconds of one tick by phase: reading (lock, state, results, incidents), evaluating,
/// writing (state, incidents, events, outbox), committing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phases {
    pub read_ms: u64,
    pub evaluate_ms: u64,
    pub write_ms: u64,
    pub commit_ms: u64,
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Phases { read_ms, evaluate_ms, write_ms, commit_ms } = self;
        write!(f, "read {read_ms} ms, evaluate {evaluate_ms} ms, write {write_ms} ms, commit {commit_ms} ms")
    }
}

/// Which channels hear about which incidents.
pub(crate) struct Routing {
    by_monitor: HashMap<Uuid, Vec<Uuid>>,
    default: Vec<Uuid>,
    region: Vec<Uuid>,
}

impl Routing {
    /// The monitor's own channels, else the default list; region incidents go to the region list.
    pub(crate) fn channels(&self, subject: &Subject) -> &[Uuid] {
        match subject {
            Subject::Monitor(id) => self.by_monitor.get(id).map_or(&self.default[..], |c| &c[..]),
            Subject::Region(_) => &self.region,
        }
    }

    /// Reads the routing of `monitors` (all when `None`). Configured names that
    /// are not channels are bad input.
    pub(crate) async fn load(
        conn: &mut PgConnection,
        settings: &Settings,
        monitors: Option<&[Uuid]>,
    ) -> Result<Self, AlertError> {
        let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT monitor_id, channel_id FROM monitor_channels WHERE $1::uuid[] IS NULL OR monitor_id = ANY($1)",
        )
        .bind(monitors)
        .fetch_all(&mut *conn)
        .await?;
        let mut by_monitor: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for (monitor, channel) in rows {
            by_monitor.entry(monitor).or_default().push(channel);
        }
        let default = configured_channels(conn, "alerting.default_channels", &settings.default_channels).await?;
        let region = configured_channels(conn, "alerting.region_channels", &settings.region_channels).await?;
        Ok(Routing { by_monitor, default, region })
    }
}

/// The ids of channels named in the configuration.
async fn configured_channels(conn: &mut PgConnection, origin: &str, names: &[String]) -> Result<Vec<Uuid>, AlertError> {
    channel_ids(conn, names).await.map_err(|e| match e {
        AlertError::UnknownChannels(names) => AlertError::UnknownConfiguredChannels { origin: origin.into(), names },
        other => other,
    })
}

/// The ids of the named channels, in order; any unknown name is bad input naming them all.
pub async fn channel_ids(conn: &mut PgConnection, names: &[String]) -> Result<Vec<Uuid>, AlertError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, Uuid)> = sqlx::query_as("SELECT name, id FROM alert_channels WHERE name = ANY($1)")
        .bind(names)
        .fetch_all(&mut *conn)
        .await?;
    let found: HashMap<String, Uuid> = rows.into_iter().collect();
    let missing: Vec<String> = names.iter().filter(|n| !found.contains_key(*n)).cloned().collect();
    if !missing.is_empty() {
        return Err(AlertError::UnknownChannels(missing));
    }
    Ok(names.iter().map(|n| found[n]).collect())
}

/// Which incident an event is about: one already stored, or the `n`th that the same
/// [`Writes`] opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IncidentRef {
    Stored(i64),
    Opening(usize),
}

/// An incident to insert.
#[derive(Debug, Clone)]
struct NewIncident {
    kind: &'static str,
    cause: Cause,
    monitor_id: Option<Uuid>,
    region_code: Option<String>,
    summary: String,
    regions: Vec<String>,
    first_error: Option<String>,
    in_maintenance: bool,
}

/// An event to insert, with one outbox row per channel.
#[derive(Debug, Clone)]
struct NewEvent {
    incident: IncidentRef,
    kind: &'static str,
    detail: Value,
    channels: Vec<Uuid>,
    /// Its outbox rows are `suppressed`, not `pending`.
    suppressed: bool,
}

/// What [`Writes::write`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Written {
    pub events: usize,
    pub notifications: usize,
}

/// The incident changes of one tick (or of one manual change), their events and their outbox
/// rows, gathered and then written in two statements whatever their number: one takes the new
/// incidents' and events' ids from their sequences, one writes every table (a statement of
/// data-modifying CTEs, each run to completion, whose foreign keys are checked at its end). A tick that
/// opens a thousand incidents costs the same two round trips as one that opens one; before,
/// each incident cost its own two, and such ticks took seconds.
///
/// Events get increasing ids in the order they were added, so the events of one incident are
/// delivered in that order. Each outbox row's idempotency key is
/// `geoctl-<incident>-<event>-<channel>`, the same for every attempt of it.
#[derive(Debug, Default)]
pub(crate) struct Writes {
    opening: Vec<NewIncident>,
    resolving: Vec<i64>,
    firing: Vec<i64>,
    events: Vec<NewEvent>,
}

impl Writes {
    /// An incident to open; its events name it by the returned reference.
    fn open(&mut self, o: &eval::Opening) -> IncidentRef {
        let (kind, monitor_id, region_code) = match &o.subject {
            Subject::Monitor(id) => ("monitor", Some(*id), None),
            Subject::Region(code) => ("region", None, Some(code.clone())),
        };
        self.opening.push(NewIncident {
            kind,
            cause: o.cause,
            monitor_id,
            region_code,
            summary: o.summary.clone(),
            regions: o.regions.clone(),
            first_error: o.first_error.clone(),
            in_maintenance: o.in_maintenance,
        });
        IncidentRef::Opening(self.opening.len() - 1)
    }

    /// Marks a stored incident resolved by the alerter (if it is still open).
    fn resolve(&mut self, incident: i64) {
        self.resolving.push(incident);
    }

    /// Takes a stored incident out of maintenance: it is announced again.
    fn fire(&mut self, incident: i64) {
        self.firing.push(incident);
    }

    /// An event about `incident` for `channels`.
    pub(crate) fn event(
        &mut self,
        incident: IncidentRef,
        kind: &'static str,
        detail: Value,
        channels: &[Uuid],
        suppressed: bool,
    ) {
        self.events.push(NewEvent { incident, kind, detail, channels: channels.to_vec(), suppressed });
    }

    /// Writes everything gathered, in the caller's transaction. An incident both resolved and
    /// fired again in one batch is not something the evaluator decides (a resolved incident is
    /// never announced again), and one statement may not update a row twice.
    pub(crate) async fn write(self, conn: &mut PgConnection) -> Result<Written, sqlx::Error> {
        debug_assert!(self.resolving.iter().all(|id| !self.firing.contains(id)));
        if self.opening.is_empty() && self.resolving.is_empty() && self.firing.is_empty() && self.events.is_empty() {
            return Ok(Written::default());
        }
        let (mut incident_ids, mut event_ids): (Vec<i64>, Vec<i64>) = sqlx::query_as(
            "SELECT ARRAY(SELECT nextval(pg_get_serial_sequence('incidents', 'id')) FROM generate_series(1, $1)),
                    ARRAY(SELECT nextval(pg_get_serial_sequence('incident_events', 'id')) FROM generate_series(1, $2))",
        )
        .bind(self.opening.len() as i64)
        .bind(self.events.len() as i64)
        .fetch_one(&mut *conn)
        .await?;
        // Whatever order the server handed them out in, the events added first get the lower ids.
        incident_ids.sort_unstable();
        event_ids.sort_unstable();
        let incidents: Vec<Value> = self
            .opening
            .iter()
            .zip(&incident_ids)
            .map(|(o, id)| {
                json!({
                    "id": id, "kind": o.kind, "cause": o.cause.as_str(), "severity": o.cause.severity(),
                    "monitor_id": o.monitor_id, "region_code": o.region_code, "summary": o.summary,
                    "regions": o.regions, "first_error": o.first_error, "in_maintenance": o.in_maintenance,
                })
            })
            .collect();
        let events: Vec<Value> = self
            .events
            .iter()
            .zip(&event_ids)
            .map(|(e, id)| {
                let incident = match e.incident {
                    IncidentRef::Stored(id) => id,
                    IncidentRef::Opening(n) => incident_ids[n],
                };
                json!({
                    "id": id, "incident_id": incident, "kind": e.kind, "detail": e.detail, "channels": e.channels,
                    "state": if e.suppressed { "suppressed" } else { "pending" },
                })
            })
            .collect();
        let (events, notifications): (i64, i64) = sqlx::query_as(
            "WITH opened AS (
                INSERT INTO incidents
                    (id, kind, cause, severity, monitor_id, region_code, summary, regions, first_error, in_maintenance)
                SELECT id, kind, cause, severity, monitor_id, region_code, summary, regions, first_error, in_maintenance
                FROM jsonb_to_recordset($1) AS o(id bigint, kind text, cause text, severity text, monitor_id uuid,
                     region_code text, summary text, regions text[], first_error text, in_maintenance bool)),
             resolved AS (
                UPDATE incidents SET resolved_at = now(), resolved_by = 'alerter'
                WHERE id = ANY($2) AND resolved_at IS NULL),
             fired AS (
                UPDATE incidents SET in_maintenance = false WHERE id = ANY($3)),
             e AS (
                SELECT * FROM jsonb_to_recordset($4)
                    AS e(id bigint, incident_id bigint, kind text, detail jsonb, channels uuid[], state text)),
             events AS (
                INSERT INTO incident_events (id, incident_id, kind, detail)
                SELECT id, incident_id, kind, detail FROM e RETURNING 1),
             n AS (
                INSERT INTO notifications (event_id, channel_id, idempotency_key, state)
                SELECT e.id, c, 'geoctl-' || e.incident_id || '-' || e.id || '-' || c, e.state
                FROM e, unnest(e.channels) AS c RETURNING 1)
             SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM n)",
        )
        .bind(Value::Array(incidents))
        .bind(&self.resolving)
        .bind(&self.firing)
        .bind(Value::Array(events))
        .fetch_one(conn)
        .await?;
        Ok(Written { events: events as usize, notifications: notifications as usize })
    }
}

/// Takes the tick lock for the rest of the transaction.
pub(crate) async fn lock_ticks(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(TICK_LOCK).execute(conn).await.map(|_| ())
}

#[derive(sqlx::FromRow)]
struct MonitorRegionRow {
    id: Uuid,
    name: Option<String>,
    down_rule: Option<String>,
    alert_confirm: Option<i32>,
    alert_recover: Option<i32>,
    region_code: String,
    interval_seconds: i32,
    timeout_ms: i32,
    warning_ms: i32,
    critical_ms: i32,
}

#[derive(sqlx::FromRow)]
struct ResultRow {
    monitor_id: Uuid,
    execution_region: String,
    checked_at: DateTime<Utc>,
    is_up: bool,
    total_time: Option<f64>,
    error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct TrackRow {
    monitor_id: Uuid,
    region_code: String,
    failing: bool,
    failing_toward: i32,
    slow: bool,
    slow_toward: i32,
    last_checked_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct OpenRow {
    id: i64,
    cause: String,
    monitor_id: Option<Uuid>,
    region_code: Option<String>,
    regions: Vec<String>,
    in_maintenance: bool,
}

/// How often the leader reads the monitors again even though no notification said they
/// changed: a region turned off or a region's default threshold changed sends none.
const RELOAD_MONITORS_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// What a result may take from its `checked_at` to its commit beyond the check's own timeout:
/// a traceroute after the check, the agent's batching, a write retried.
const RECORD_SLACK: chrono::Duration = chrono::Duration::seconds(30);

/// Whether the monitors may have changed since the leader read them. The alerter's listener
/// on `geoctl_monitor_changed` sets `changed`; while it is not `listening` (starting, its
/// connection lost) every tick reads the monitors, as it cannot know.
#[derive(Debug, Default)]
pub struct MonitorWatch {
    pub changed: AtomicBool,
    pub listening: AtomicBool,
}

/// What the leader keeps between ticks so that a tick reads only what is new.
///
/// - **Monitors** are read once and again when [`MonitorWatch`] says they changed (and every
///   [`RELOAD_MONITORS_EVERY`]).
/// - **State** ([`Memory`]) is read from the database at the first tick and whenever another
///   alerter ticked in between (`alerter --once`, or a leader that did not yet know it lost the
///   lock: `alert_cursor` is not the time this one wrote), and after any failed tick, whose
///   changes to memory were not committed.
/// - **Results** are read from the previous tick's time less the longest check timeout (a check
///   commits its result after it ends), and only rows the previous tick's snapshot could not see
///   (their transaction id at or after that snapshot's xmin): the rows of the overlap that were
///   already counted stay on the server. What is sent is still checked against each track's
///   newest counted result, so a row sent twice is counted once.
/// - **Verdicts** are judged again only for the monitors whose inputs moved since the last tick
///   (see `eval`'s [`Memory::judged`]); reading the monitors again forgets what was judged, as
///   a monitor's rule or regions may have changed with no new result.
/// - **Writes** are the tracks whose streaks or error moved, plus those whose stored newest time
///   fell a third of their freshness behind (see [`Evaluator::due_for_saving`]). A track whose
///   results changed nothing is otherwise not written: replaying those results from the stored
///   state, as a new leader does, gives the same state.
#[derive(Default)]
pub struct Evaluator {
    monitors: Option<(Vec<MonitorView>, std::time::Instant)>,
    held: Option<Held>,
    watch: Option<Arc<MonitorWatch>>,
}

/// The state as this leader left it, and what its database copy holds.
struct Held {
    memory: Memory,
    /// Each track's `last_checked_at` as stored.
    saved: HashMap<(Uuid, String), Option<DateTime<Utc>>>,
    /// This leader's last tick: what it wrote to `alert_cursor`.
    evaluated_at: DateTime<Utc>,
    /// The xmin (low 32 bits) of a snapshot taken before that tick read its results.
    xmin: i64,
}

impl Evaluator {
    /// An evaluator whose monitors are read again when `watch` says so.
    pub fn watching(watch: Arc<MonitorWatch>) -> Self {
        Evaluator { watch: Some(watch), ..Evaluator::default() }
    }

    fn monitors_stale(&self) -> bool {
        let Some((_, read_at)) = &self.monitors else { return true };
        let changed = match &self.watch {
            Some(w) => !w.listening.load(Ordering::Acquire) || w.changed.swap(false, Ordering::AcqRel),
            // Without a listener (`alerter --once`) nothing says when they change.
            None => true,
        };
        changed || read_at.elapsed() >= RELOAD_MONITORS_EVERY
    }

    /// Tracks to write besides those whose streaks moved: new ones, and those whose stored
    /// newest time is a third of their freshness old, so that a leader taking over from the
    /// database judges every region that has a fresh result as known.
    fn due_for_saving(monitors: &[MonitorView], held: &Held) -> Vec<(Uuid, String)> {
        let index: HashMap<Uuid, &MonitorView> = monitors.iter().map(|m| (m.id, m)).collect();
        let mut due = Vec::new();
        // Over the tracks held rather than every monitor's regions: no key is built to look one up.
        for (key, track) in &held.memory.tracks {
            let Some(newest) = track.last_checked_at else { continue };
            let Some(r) = index.get(&key.0).and_then(|m| m.regions.iter().find(|r| r.code == key.1)) else { continue };
            let stale = match held.saved.get(key).copied().flatten() {
                Some(saved) => newest - saved >= fresh_for(r.interval_seconds) / 3,
                None => true,
            };
            if stale {
                due.push(key.clone());
            }
        }
        due
    }

    /// Evaluates once: reads, decides and writes in one transaction. `liveness` holds the
    /// regions whose heartbeats could be read (see [`eval::Liveness`]). A failed tick forgets
    /// the state it held, so the next one starts from what is committed.
    pub async fn tick(
        &mut self,
        pool: &PgPool,
        settings: &Settings,
        liveness: &HashMap<String, Liveness>,
    ) -> Result<TickReport, AlertError> {
        let ticked = self.tick_from_held(pool, settings, liveness).await;
        if ticked.is_err() {
            // A write that failed on a monitor deleted meanwhile, say: read them again too.
            self.monitors = None;
        }
        ticked
    }

    async fn tick_from_held(
        &mut self,
        pool: &PgPool,
        settings: &Settings,
        liveness: &HashMap<String, Liveness>,
    ) -> Result<TickReport, AlertError> {
        let held = self.held.take();
        let started = std::time::Instant::now();
        let mut tx = pool.begin().await?;
        lock_ticks(&mut tx).await?;
        // The time once the lock is ours (a tick that waited for another must not evaluate
        // "now" as the moment it started waiting), and an xmin no later than that of the
        // snapshot the results are read with: the next tick asks only for rows it could not see.
        let (now, xmin): (DateTime<Utc>, i64) = sqlx::query_as(
            "SELECT clock_timestamp(), pg_snapshot_xmin(pg_current_snapshot())::text::bigint % 4294967296",
        )
        .fetch_one(&mut *tx)
        .await?;
        let cursor: Option<DateTime<Utc>> =
            sqlx::query_scalar("SELECT evaluated_at FROM alert_cursor").fetch_optional(&mut *tx).await?;
        // Another alerter ticked since this one: carry on from what it committed.
        let held = held.filter(|h| Some(h.evaluated_at) == cursor);
        let reread = self.monitors_stale();
        if reread {
            self.monitors = Some((load_monitors(&mut tx, settings).await?, std::time::Instant::now()));
        }
        let monitors = &self.monitors.as_ref().expect("read above").0;
        let ids: Vec<Uuid> = monitors.iter().map(|m| m.id).collect();
        // The longest a result can commit after its `checked_at`.
        let grace =
            monitors.iter().flat_map(|m| m.regions.iter().map(|r| r.timeout_ms)).max().map_or(LATE_GRACE, |ms| {
                (chrono::Duration::milliseconds(i64::from(ms)) + RECORD_SLACK).min(LATE_GRACE)
            });
        let (mut held, since, unseen_from) = match held {
            Some(h) => {
                let since = (h.evaluated_at - grace).max(now - LOOKBACK);
                let xmin = h.xmin;
                (h, since, Some(xmin))
            }
            None => {
                let (memory, saved) = load_memory(&mut tx, &ids).await?;
                let since = cursor.map_or(now - LOOKBACK, |c| (c - LATE_GRACE).max(now - LOOKBACK));
                (Held { memory, saved, evaluated_at: now, xmin }, since, None)
            }
        };
        if reread {
            // A monitor's rule, confirm or regions may have changed: judge every monitor again.
            held.memory.judged = None;
        }

        // No upper bound: a row checked "after now" by an agent's clock is counted now, as the
        // next tick would not ask for it again. The lower bound keeps the read to today's (and
        // perhaps yesterday's) partition.
        let rows: Vec<ResultRow> = sqlx::query_as(
            "SELECT r.monitor_id, r.execution_region, r.checked_at, r.is_up, r.total_time,
                    CASE WHEN NOT r.is_up
                         THEN NULLIF(concat_ws(': ', r.error_kind, left(r.error_message, 300)), '') END AS error
             FROM monitor_results r
             WHERE r.checked_at > $1 AND r.is_up IS NOT NULL AND r.execution_region IS NOT NULL
               AND ($2::bigint IS NULL
                    OR ((r.xmin::text::bigint - $2) % 4294967296 + 4294967296) % 4294967296 < 2147483648)
             ORDER BY r.checked_at",
        )
        .bind(since)
        .bind(unseen_from)
        .fetch_all(&mut *tx)
        .await?;
        let mut report =
            TickReport { evaluated_at: Some(now), monitors: monitors.len(), results: rows.len(), ..Default::default() };
        let mut results: HashMap<(Uuid, String), Vec<Observation>> = HashMap::new();
        for r in rows {
            results.entry((r.monitor_id, r.execution_region)).or_default().push(Observation {
                checked_at: r.checked_at,
                up: r.is_up,
                total_ms: r.total_time,
                error: r.error,
            });
        }

        let open = load_open(&mut tx).await?;
        let maintenance = load_maintenance(&mut tx, now).await?;
        let read = started.elapsed();
        let outcome = eval::evaluate(
            &mut held.memory,
            &eval::Tick {
                now,
                settings,
                monitors,
                results: &results,
                liveness,
                open: &open,
                maintenance: &maintenance,
            },
        );

        let evaluated = started.elapsed();
        let mut save = outcome.changed_tracks.clone();
        save.extend(Self::due_for_saving(monitors, &held));
        save_tracks(&mut tx, &held.memory, &save).await?;
        save_flaps(&mut tx, &held.memory, &outcome.changed_flaps).await?;

        if !outcome.transitions.is_empty() {
            // Read now, for the monitors that changed only: channels can be removed at any time,
            // and routing to one that is gone would fail the tick.
            let involved: Vec<Uuid> = outcome
                .transitions
                .iter()
                .filter_map(|t| match t {
                    Transition::Open(o) => Some(&o.subject),
                    Transition::Resolve(r) => Some(&r.subject),
                    Transition::Firing { .. } => None,
                })
                .chain(open.keys().map(|(_, s)| s))
                .filter_map(|s| match s {
                    Subject::Monitor(id) => Some(*id),
                    Subject::Region(_) => None,
                })
                .collect();
            let routing = Routing::load(&mut tx, settings, Some(&involved)).await?;
            let subjects: HashMap<i64, Subject> = open.iter().map(|((_, s), o)| (o.id, s.clone())).collect();
            let names: HashMap<Uuid, &str> = monitors.iter().map(|m| (m.id, m.name.as_str())).collect();
            let mut writes = Writes::default();
            for transition in &outcome.transitions {
                stage(&mut writes, transition, &routing, &subjects, &names, &mut report);
            }
            let written = writes.write(&mut tx).await?;
            report.events = written.events;
            report.notifications = written.notifications;
        }
        sqlx::query(
            "INSERT INTO alert_cursor (singleton, evaluated_at) VALUES (true, $1)
             ON CONFLICT (singleton) DO UPDATE SET evaluated_at = EXCLUDED.evaluated_at",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let wrote = started.elapsed();
        tx.commit().await?;
        let ms = |d: std::time::Duration| d.as_millis() as u64;
        report.phases = Phases {
            read_ms: ms(read),
            evaluate_ms: ms(evaluated - read),
            write_ms: ms(wrote - evaluated),
            commit_ms: ms(started.elapsed() - wrote),
        };
        for key in save {
            let newest = held.memory.tracks.get(&key).and_then(|t| t.last_checked_at);
            held.saved.insert(key, newest);
        }
        held.evaluated_at = now;
        held.xmin = xmin;
        self.held = Some(held);
        Ok(report)
    }
}

/// Evaluates once from the database alone (`alerter --once`, tests): reads, decides and
/// writes in one transaction.
pub async fn tick(
    pool: &PgPool,
    settings: &Settings,
    liveness: &HashMap<String, Liveness>,
) -> Result<TickReport, AlertError> {
    Evaluator::default().tick(pool, settings, liveness).await
}

/// Adds one transition to the tick's writes: the incident change, its event(s) and their
/// outbox rows.
fn stage(
    writes: &mut Writes,
    transition: &Transition,
    routing: &Routing,
    subjects: &HashMap<i64, Subject>,
    names: &HashMap<Uuid, &str>,
    report: &mut TickReport,
) {
    match transition {
        Transition::Open(o) => {
            let incident = writes.open(o);
            report.opened += 1;
            let (kind, monitor_id, region) = match &o.subject {
                Subject::Monitor(id) => ("monitor", Some(*id), None),
                Subject::Region(code) => ("region", None, Some(code.clone())),
            };
            let monitor = monitor_id.map(|m| json!({ "id": m, "name": names.get(&m) }));
            let detail = json!({
                "summary": o.summary, "cause": o.cause, "severity": o.cause.severity(), "kind": kind,
                "monitor": monitor, "region": region, "regions": o.regions, "first_error": o.first_error,
                "in_maintenance": o.in_maintenance, "muted": o.muted,
            });
            let channels = routing.channels(&o.subject);
            writes.event(incident, "opened", detail, channels, o.muted);
            if o.flapping {
                let detail = json!({ "summary": format!("flapping: {}", o.summary), "monitor": monitor });
                writes.event(incident, "flapping", detail, channels, o.in_maintenance);
            }
        }
        Transition::Resolve(r) => {
            writes.resolve(r.incident);
            report.resolved += 1;
            let incident = IncidentRef::Stored(r.incident);
            let channels = routing.channels(&r.subject);
            let detail = json!({ "summary": r.summary, "cause": r.cause, "muted": r.muted });
            writes.event(incident, "resolved", detail, channels, r.muted);
            if r.flapping {
                let detail = json!({ "summary": format!("flapping: {}", r.summary) });
                writes.event(incident, "flapping", detail, channels, r.in_maintenance);
            }
        }
        Transition::Firing { incident, reason } => {
            writes.fire(*incident);
            let subject = subjects.get(incident).expect("firing is only decided for open incidents");
            let detail = json!({ "summary": reason, "reason": reason });
            writes.event(IncidentRef::Stored(*incident), "firing", detail, routing.channels(subject), false);
        }
    }
}

async fn load_monitors(conn: &mut PgConnection, settings: &Settings) -> Result<Vec<MonitorView>, sqlx::Error> {
    let rows: Vec<MonitorRegionRow> = sqlx::query_as(
        "SELECT m.id, m.name::text AS name, m.down_rule, m.alert_confirm, m.alert_recover, mr.region_code,
                COALESCE(mr.interval_seconds, m.interval_seconds, m.frequency_minutes * 60, 300) AS interval_seconds,
                COALESCE(mr.timeout_ms, m.timeout_ms, $1) AS timeout_ms,
                COALESCE(mr.latency_warning_ms, g.latency_warning_ms) AS warning_ms,
                COALESCE(mr.latency_critical_ms, g.latency_critical_ms) AS critical_ms
         FROM monitors m
         JOIN monitor_regions mr ON mr.monitor_id = m.id AND mr.enabled
         JOIN regions g ON g.code = mr.region_code AND g.is_active
         WHERE m.enabled IS DISTINCT FROM false
         ORDER BY m.id, mr.region_code",
    )
    .bind(crate::monitor::check::DEFAULT_TIMEOUT.as_millis() as i32)
    .fetch_all(conn)
    .await?;
    let mut monitors: Vec<MonitorView> = Vec::new();
    for row in rows {
        if monitors.last().is_none_or(|m| m.id != row.id) {
            let count = |v: Option<i32>, default: u32| v.and_then(|n| u32::try_from(n).ok()).unwrap_or(default);
            monitors.push(MonitorView {
                id: row.id,
                name: row.name.unwrap_or_else(|| row.id.to_string()),
                rule: row.down_rule.as_deref().and_then(|r| r.parse::<DownRule>().ok()).unwrap_or_default(),
                confirm: count(row.alert_confirm, settings.confirm),
                recover: count(row.alert_recover, settings.recover),
                regions: Vec::new(),
            });
        }
        monitors.last_mut().expect("pushed above").regions.push(RegionView {
            code: row.region_code,
            interval_seconds: row.interval_seconds,
            timeout_ms: row.timeout_ms,
            warning_ms: row.warning_ms,
            critical_ms: row.critical_ms,
        });
    }
    Ok(monitors)
}

/// The stored state of `ids`, and each track's stored newest time.
#[allow(clippy::type_complexity)]
async fn load_memory(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<(Memory, HashMap<(Uuid, String), Option<DateTime<Utc>>>), sqlx::Error> {
    let rows: Vec<TrackRow> = sqlx::query_as(
        "SELECT monitor_id, region_code, failing, failing_toward, slow, slow_toward, last_checked_at, last_error
         FROM alert_region_state WHERE monitor_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let streak = |on: bool, toward: i32| Streak { on, toward: toward.max(0) as u32 };
    let tracks: HashMap<(Uuid, String), Track> = rows
        .into_iter()
        .map(|r| {
            let track = Track {
                down: streak(r.failing, r.failing_toward),
                slow: streak(r.slow, r.slow_toward),
                last_checked_at: r.last_checked_at,
                last_error: r.last_error,
            };
            ((r.monitor_id, r.region_code), track)
        })
        .collect();
    let flaps: Vec<(Uuid, Vec<DateTime<Utc>>, bool)> =
        sqlx::query_as("SELECT monitor_id, changes, flapping FROM alert_monitor_state WHERE monitor_id = ANY($1)")
            .bind(ids)
            .fetch_all(conn)
            .await?;
    let flaps = flaps.into_iter().map(|(id, changes, flapping)| (id, Flap { changes, flapping })).collect();
    let memory = Memory { tracks, flaps, judged: None };
    let saved = memory.tracks.iter().map(|(key, t)| (key.clone(), t.last_checked_at)).collect();
    Ok((memory, saved))
}

async fn load_open(conn: &mut PgConnection) -> Result<HashMap<(Cause, Subject), OpenIncident>, sqlx::Error> {
    let rows: Vec<OpenRow> = sqlx::query_as(
        "SELECT id, cause, monitor_id, region_code, regions, in_maintenance FROM incidents WHERE resolved_at IS NULL",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let cause = Cause::parse(&r.cause)?;
            let subject = match (r.monitor_id, r.region_code) {
                (Some(id), _) => Subject::Monitor(id),
                (None, Some(code)) => Subject::Region(code),
                (None, None) => return None,
            };
            Some(((cause, subject), OpenIncident { id: r.id, regions: r.regions, in_maintenance: r.in_maintenance }))
        })
        .collect())
}

async fn load_maintenance(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<Maintenance, sqlx::Error> {
    let rows: Vec<(Option<Uuid>, Option<String>)> = sqlx::query_as(
        "SELECT monitor_id, region_code FROM maintenance_windows WHERE starts_at <= $1 AND ends_at > $1",
    )
    .bind(now)
    .fetch_all(conn)
    .await?;
    let mut maintenance = Maintenance::default();
    for row in rows {
        match row {
            (Some(monitor), _) => {
                maintenance.monitors.insert(monitor);
            }
            (None, Some(region)) => {
                maintenance.regions.insert(region);
            }
            (None, None) => {}
        }
    }
    Ok(maintenance)
}

/// Upserts the changed (monitor, region) state in one statement.
async fn save_tracks(
    conn: &mut PgConnection,
    memory: &Memory,
    changed: &std::collections::BTreeSet<(Uuid, String)>,
) -> Result<(), sqlx::Error> {
    if changed.is_empty() {
        return Ok(());
    }
    let mut monitor = Vec::new();
    let mut region = Vec::new();
    let (mut failing, mut failing_toward, mut slow, mut slow_toward) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut checked, mut error) = (Vec::new(), Vec::new());
    for key in changed {
        let t = memory.tracks.get(key).cloned().unwrap_or_default();
        monitor.push(key.0);
        region.push(key.1.clone());
        failing.push(t.down.on);
        failing_toward.push(t.down.toward as i32);
        slow.push(t.slow.on);
        slow_toward.push(t.slow.toward as i32);
        checked.push(t.last_checked_at);
        error.push(t.last_error);
    }
    sqlx::query(
        "INSERT INTO alert_region_state
             (monitor_id, region_code, failing, failing_toward, slow, slow_toward, last_checked_at, last_error)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::bool[], $4::int[], $5::bool[], $6::int[],
                              $7::timestamptz[], $8::text[])
         ON CONFLICT (monitor_id, region_code) DO UPDATE SET
             failing = EXCLUDED.failing, failing_toward = EXCLUDED.failing_toward, slow = EXCLUDED.slow,
             slow_toward = EXCLUDED.slow_toward, last_checked_at = EXCLUDED.last_checked_at,
             last_error = EXCLUDED.last_error",
    )
    .bind(&monitor)
    .bind(&region)
    .bind(&failing)
    .bind(&failing_toward)
    .bind(&slow)
    .bind(&slow_toward)
    .bind(&checked)
    .bind(&error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Upserts the changed flapping state in one statement.
async fn save_flaps(
    conn: &mut PgConnection,
    memory: &Memory,
    changed: &std::collections::BTreeSet<Uuid>,
) -> Result<(), sqlx::Error> {
    if changed.is_empty() {
        return Ok(());
    }
    let rows: Vec<Value> = changed
        .iter()
        .map(|id| {
            let flap = memory.flaps.get(id).cloned().unwrap_or_default();
            json!({ "monitor_id": id, "changes": flap.changes, "flapping": flap.flapping })
        })
        .collect();
    sqlx::query(
        "INSERT INTO alert_monitor_state (monitor_id, changes, flapping)
         SELECT monitor_id, changes, flapping
         FROM jsonb_to_recordset($1) AS f(monitor_id uuid, changes timestamptz[], flapping bool)
         ON CONFLICT (monitor_id) DO UPDATE SET changes = EXCLUDED.changes, flapping = EXCLUDED.flapping",
    )
    .bind(Value::Array(rows))
    .execute(conn)
    .await?;
    Ok(())
}
