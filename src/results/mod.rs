//! Results: what a region measured, written in batches, and the per-region
//! daily and hourly summaries kept correct as results arrive.

pub mod histogram;
pub mod query;
pub mod run;
pub mod status;
pub mod summary;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::geo::{GeoDb, TargetFacts};
use crate::probe::trace::Route;
use crate::probe::{Failure, FailureKind, ProbeResult};
use crate::synthetic::FlowResult;

/// One check's outcome as it is stored: which region measured it, when, and
/// each phase it measured (a phase not measured is `None`, stored NULL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewResult {
    pub monitor_id: Uuid,
    pub execution_region: String,
    pub target_region: Option<String>,
    pub checked_at: DateTime<Utc>,
    pub up: bool,
    pub dns_ms: Option<f64>,
    pub connect_ms: Option<f64>,
    pub tls_ms: Option<f64>,
    pub first_byte_ms: Option<f64>,
    pub total_ms: f64,
    /// One network round trip: the TCP connect time, or a ping's average RTT.
    pub network_latency_ms: Option<f64>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub resolved_ip: Option<String>,
    pub http_version: Option<String>,
    pub status_code: Option<i32>,
    pub response_size: Option<i64>,
    pub cert_expires_at: Option<DateTime<Utc>>,
    pub cdn_provider: Option<String>,
    pub cdn_cache_status: Option<String>,
    pub cdn_edge_location: Option<String>,
    /// Kind-specific facts (ping statistics, DNS answers, per-address results).
    pub details: Value,
    /// The scheduled run this result belongs to (`<monitor id>:<region>:<scheduled time ms>`):
    /// at most one result is stored per key. `None` for manual checks.
    pub run_key: Option<String>,
    /// Where the reached address is, from the GeoIP databases: `None` when no
    /// database is configured or none holds the address.
    #[serde(default)]
    pub target: Option<TargetFacts>,
    /// Hops up to and including the destination, as `traceroute` numbers them
    /// (`None`: no trace this run).
    #[serde(default)]
    pub hop_count: Option<i32>,
    /// One entry per hop (`null` for a silent hop), when traced.
    #[serde(default)]
    pub route_latency: Option<Value>,
    /// Synthetic checks: each step's outcome, time and phases.
    #[serde(default)]
    pub steps: Option<Value>,
    /// Synthetic checks: the PNG or JPEG of the failing browser step (at most [`MAX_SCREENSHOT_BYTES`]).
    #[serde(default)]
    pub screenshot: Option<Vec<u8>>,
}

/// Largest screenshot stored with a result: the most the browser driver returns.
pub const MAX_SCREENSHOT_BYTES: usize = crate::synthetic::browser::MAX_SCREENSHOT;

impl NewResult {
    /// The stored form of a probe's result, measured on behalf of `region`.
    pub fn from_probe(monitor_id: Uuid, region: &str, result: &ProbeResult) -> Self {
        let http = result.http.as_ref();
        let cdn = http.and_then(|h| h.cdn.as_ref());
        let ping_rtt = result.ping.as_ref().and_then(|p| p.avg_ms);
        let mut details = json!({ "kind": result.kind });
        if let Some(ping) = &result.ping {
            details["ping"] = json!(ping);
        }
        if let Some(dns) = &result.dns {
            details["dns"] = json!(dns);
        }
        if let Some(http) = http {
            details["redirects"] = json!(http.redirects);
            details["final_url"] = json!(http.final_url);
        }
        if !result.per_address.is_empty() {
            details["per_address"] = json!(result.per_address);
        }
        NewResult {
            monitor_id,
            execution_region: region.to_string(),
            target_region: None,
            checked_at: result.started_at,
            up: result.up,
            dns_ms: result.phases.dns_ms,
            connect_ms: result.phases.connect_ms,
            tls_ms: result.phases.tls_ms,
            first_byte_ms: result.phases.first_byte_ms,
            total_ms: result.phases.total_ms,
            network_latency_ms: result.phases.connect_ms.or(ping_rtt),
            error_kind: result.failure.as_ref().map(|f| f.kind.to_string()),
            error_message: result.failure.as_ref().map(|f| f.message.clone()),
            resolved_ip: result.resolved_address.map(|a| a.to_string()),
            http_version: http.and_then(|h| h.version.clone()),
            status_code: http.and_then(|h| h.status).map(i32::from),
            response_size: http.map(|h| h.response_size as i64),
            cert_expires_at: http.and_then(|h| h.cert_expires_at),
            cdn_provider: cdn.and_then(|c| c.provider.clone()),
            cdn_cache_status: cdn.and_then(|c| c.cache_status.clone()),
            cdn_edge_location: cdn.and_then(|c| c.edge_location.clone()),
            details,
            run_key: None,
            target: None,
            hop_count: None,
            route_latency: None,
            steps: None,
            screenshot: None,
        }
    }

    /// The stored form of a synthetic flow: its total is the sum of its steps, its phases each
    /// step's measured phases summed (a phase no step measured stays NULL), its error the first
    /// failing step's, its status code the last request step's; the steps go in `steps`.
    pub fn from_flow(monitor_id: Uuid, region: &str, flow: &FlowResult) -> Self {
        let phases = flow.phase_sums();
        let first_connect = flow.steps.iter().find_map(|s| s.phases.as_ref().and_then(|p| p.connect_ms));
        let mut steps = flow.steps.clone();
        let mut screenshot = None;
        if let (Some(png), Some(step)) = (&flow.screenshot, steps.iter_mut().find(|s| s.failure.is_some())) {
            if png.len() <= MAX_SCREENSHOT_BYTES {
                screenshot = Some(png.clone());
                step.screenshot = Some(format!("stored with this result ({} bytes)", png.len()));
            } else {
                step.screenshot =
                    Some(format!("not stored: {} bytes, over the {MAX_SCREENSHOT_BYTES}-byte limit", png.len()));
            }
        }
        NewResult {
            monitor_id,
            execution_region: region.to_string(),
            target_region: None,
            checked_at: flow.started_at,
            up: flow.up,
            dns_ms: phases.dns_ms,
            connect_ms: phases.connect_ms,
            tls_ms: phases.tls_ms,
            first_byte_ms: phases.first_byte_ms,
            total_ms: flow.total_ms,
            network_latency_ms: first_connect,
            error_kind: flow.failure.as_ref().map(|f| f.kind.to_string()),
            error_message: flow.failure.as_ref().map(|f| f.message.clone()),
            resolved_ip: None,
            http_version: None,
            status_code: flow.steps.iter().rev().find_map(|s| s.status).map(i32::from),
            response_size: None,
            cert_expires_at: None,
            cdn_provider: None,
            cdn_cache_status: None,
            cdn_edge_location: None,
            details: json!({ "kind": "synthetic", "failed_step": flow.failed_step }),
            run_key: None,
            target: None,
            hop_count: None,
            route_latency: None,
            steps: Some(json!(steps)),
            screenshot,
        }
    }

    /// Adds a traced route: its hop count and per-hop facts, each hop's ASN
    /// looked up (into `route` too) when a database is configured. A trace
    /// this process was not permitted to send measured nothing: it adds
    /// nothing, so both stay NULL, and its failure is returned.
    pub fn add_route(&mut self, route: &mut Route, geo: &GeoDb) -> Result<(), Failure> {
        if let Some(failure) = route.failure.as_ref().filter(|f| f.kind == FailureKind::NotPermitted) {
            return Err(failure.clone());
        }
        for hop in &mut route.hops {
            hop.asn = hop.address.and_then(|ip| geo.asn(ip));
        }
        self.hop_count = route.hop_count.and_then(|n| i32::try_from(n).ok());
        self.route_latency = Some(route.route_latency());
        Ok(())
    }

    /// Adds what the GeoIP databases hold about the reached address.
    pub fn locate(&mut self, geo: &GeoDb) {
        self.target = self.resolved_ip.as_deref().and_then(|ip| ip.parse().ok()).and_then(|ip| geo.lookup(ip));
    }

    /// The network facts of this region's view of the target.
    fn region_metrics(&self) -> Value {
        json!({
            "resolved_ip": self.resolved_ip,
            "status_code": self.status_code,
            "http_version": self.http_version,
            "cdn_edge_location": self.cdn_edge_location,
            "cdn_cache_status": self.cdn_cache_status,
            "country_code": self.target.as_ref().and_then(|t| t.country.clone()),
            "isp": self.target.as_ref().and_then(|t| t.org.clone()),
        })
    }
}

/// Writes a batch of results in one statement, so one round trip whatever its size: the
/// statement takes the shared lock of each day the batch writes into, inserts into both tables
/// from `unnest(…)` arrays and adds the new results to their daily and hourly summaries' running totals,
/// all in the implicit transaction of that one statement (all of it commits, or none). Its cost
/// depends on the batch, never on how many results the day already holds.
///
/// A result with a `run_key` is stored at most once per key, however often it
/// is recorded (a retried job, a replayed spool, two agents racing): the
/// second copy writes nothing and is not counted in the summaries. (Results are partitioned by
/// day: a copy measured on another day than the first is found by a look at the neighbouring
/// days; two such copies committed at the same instant are the one case left, see migration
/// `20261206100001`.) Returns how many results were new.
///
/// The statement's parameters are arrays, so a plan made for their values is no better than the
/// generic one and making it costs about a millisecond per call: a connection that records often
/// should be opened with [`recording_connection`] (the agent's recorder is), which asks for the
/// generic plan once per connection.
pub async fn record(pool: &PgPool, batch: &[NewResult]) -> Result<u64, sqlx::Error> {
    if batch.is_empty() {
        return Ok(0);
    }
    let mut conn = pool.acquire().await?;
    insert(&mut conn, batch).await
}

/// [`record`] on a connection of the caller's, which must not be inside a transaction of its
/// own: the statement's implicit transaction is what makes the day locks last until its commit.
pub async fn record_on(conn: &mut PgConnection, batch: &[NewResult]) -> Result<u64, sqlx::Error> {
    if batch.is_empty() {
        return Ok(0);
    }
    insert(conn, batch).await
}

/// A connection for [`record_on`], with the same settings as the pool's, that uses the generic
/// plan for every statement. A `SET` once per connection rather than the `options` startup
/// parameter, which PgBouncer refuses unless told to ignore it.
pub async fn recording_connection(pool: &PgPool) -> Result<PgConnection, sqlx::Error> {
    use sqlx::Connection as _;
    let mut conn = PgConnection::connect_with(pool.connect_options().as_ref()).await?;
    sqlx::query("SET plan_cache_mode = force_generic_plan").execute(&mut conn).await?;
    Ok(conn)
}

/// The rows of a batch, with a copy of a run key inside the batch dropped
/// (the first one stays), inserted into `monitor_results` unless their run key
/// is already there; metric rows follow only the results actually inserted.
///
/// Why one statement keeps the summaries exact beside a recompute (`summaries rebuild|refresh`,
/// which holds a day's lock exclusively and then, in a new statement, recomputes the day from the
/// results its snapshot sees). `locked` takes the batch's day locks (shared) and every row the
/// statement writes comes out of `parsed`, which waits for `locked` (an InitPlan evaluated before
/// its first row): nothing is written before the locks are held, and they are held until the
/// statement's implicit transaction commits. So for each day either
/// - this batch committed before the recompute got its lock: the recompute's statement starts
///   after that, sees the batch's results and counts them, replacing the running totals; or
/// - the recompute committed before this batch got its lock: its count lacks the batch, and the
///   batch adds itself to what the recompute wrote. This statement's snapshot may predate the
///   recompute's commit, but nothing here reads the summaries through the snapshot: under READ
///   COMMITTED, `ON CONFLICT DO UPDATE` locks and updates the latest committed version of the
///   row (`s.…` is that version), and finds a row the snapshot does not see.
///
/// Either way each result is counted once, neither lost nor doubled.
const INSERT: &str = "
WITH locked AS MATERIALIZED (
    {lock_days}
), summarised AS MATERIALIZED (
    -- Until this statement's implicit transaction ends: the rows it inserts are added to their
    -- summaries here, so the trigger for rows written around them (migration 20261207100001)
    -- leaves their hours unmarked.
    SELECT set_config('geoctl.summarised', 'on', true) AS done
), parsed AS (
    SELECT u.*, row_number() OVER (PARTITION BY u.run_key ORDER BY u.ord) AS copy
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::bool[], $6::text[], $7::int[],
                $8::float8[], $9::float8[], $10::float8[], $11::float8[], $12::float8[], $13::float8[], $14::text[],
                $15::text[], $16::jsonb[], $17::jsonb[], $18::text[], $19::text[], $20::text[], $21::int[],
                $22::int8[], $23::timestamptz[], $24::text[], $25::text[], $26::text[], $27::text[], $28::text[],
                $29::text[], $30::int8[], $31::float8[], $32::float8[], $33::int[], $34::jsonb[], $35::jsonb[],
                $36::bytea[])
         WITH ORDINALITY AS u(monitor_id, region, given_target_region, checked_at, is_up, status, response_ms, total,
                              dns, connect, tls, first_byte, latency, error_kind, error_message, details, metrics,
                              run_key, ip, http_version, status_code, size, cert, cdn, cache, edge, country, isp,
                              city, asn, lat, lon, hop_count, route, steps, screenshot, ord)
    -- No row reaches an INSERT before every day lock is held (and the setting above is made).
    WHERE (SELECT days FROM locked) IS NOT NULL AND (SELECT done FROM summarised) IS NOT NULL
), input AS (
    -- The target's region: the active region nearest to its coordinates.
    SELECT p.*, COALESCE(p.given_target_region, (
        SELECT g.code FROM regions g
        WHERE g.is_active AND g.latitude IS NOT NULL AND g.longitude IS NOT NULL
          AND p.lat IS NOT NULL AND p.lon IS NOT NULL
        ORDER BY {distance}, g.code LIMIT 1)) AS target_region
    FROM parsed p
), fresh AS (
    INSERT INTO monitor_results (monitor_id, execution_region, target_region, checked_at, is_up, status,
        response_time_ms, total_time, dns_resolution_time, tcp_connect_time, tls_handshake_time, first_byte_time,
        network_latency, error_kind, error_message, details, region_specific_metrics, run_key, steps, screenshot)
    SELECT monitor_id, region, target_region, checked_at, is_up, status, response_ms, total, dns, connect, tls,
           first_byte, latency, error_kind, error_message, details, metrics, run_key, steps, screenshot
    FROM input i
    WHERE i.run_key IS NULL OR (i.copy = 1 AND (
        -- A copy of the run measured the day before or after: the unique index of this row's
        -- day cannot see it (migration 20261206100001). It names the three days, so each row
        -- probes only their partitions' run key indexes (pruned at run time). A scalar subquery
        -- with LIMIT, not NOT EXISTS, which the planner may turn into an anti join hashing
        -- every partition. $37 and $38 bound the days of the whole batch (the day before its
        -- first, the day after its last): parameters, so the generic plan drops every other
        -- day's partition once per statement, before it starts, rather than keeping all of
        -- them to prune again for each row (a cost that grew with the days kept: at 61 day
        -- partitions it was a quarter of the statement).
        SELECT true FROM monitor_results m
        WHERE m.run_key = i.run_key AND m.checked_at >= $37 AND m.checked_at < $38
          AND m.checked_at >= ((i.checked_at AT TIME ZONE 'UTC')::date - 1)::timestamp AT TIME ZONE 'UTC'
          AND m.checked_at < ((i.checked_at AT TIME ZONE 'UTC')::date + 2)::timestamp AT TIME ZONE 'UTC'
        LIMIT 1) IS NULL)
    -- One order for every writer, so two batches sharing run keys never deadlock.
    ORDER BY run_key, ord
    -- The arbiters are the unique indexes of the partition each row lands in: its day's run key.
    ON CONFLICT DO NOTHING
    RETURNING monitor_id, execution_region, checked_at, run_key, is_up, total_time, network_latency,
              dns_resolution_time, tcp_connect_time, tls_handshake_time, first_byte_time, region_specific_metrics
), landed AS (
    INSERT INTO regional_performance_metrics (monitor_id, region_code, checked_at, resolved_ip, http_version,
        status_code, response_size, tls_cert_expires_at, cdn_provider, cdn_cache_status, cdn_edge_location,
        dns_resolution_time, tcp_connect_time, tls_handshake_time, first_byte_time, total_time, run_key,
        country_code, isp, city, asn, latitude, longitude, hop_count, route_latency)
    SELECT monitor_id, region, checked_at, ip::inet, http_version, status_code, size, cert, cdn, cache, edge,
           dns, connect, tls, first_byte, total, run_key, country, isp, city, asn, lat, lon, hop_count, route
    FROM input i
    WHERE i.run_key IS NULL OR (i.copy = 1 AND i.run_key IN (SELECT f.run_key FROM fresh f WHERE f.run_key IS NOT NULL))
    ON CONFLICT DO NOTHING
    RETURNING monitor_id, region_code, checked_at, country_code, city, asn, isp, hop_count
), landings AS (
    {add_landed}
), totals AS (
    {add_fresh}
), hours AS (
    {add_fresh_hours}
)
SELECT count(*) FROM fresh";

/// Inserts a batch and adds it to the summaries in one statement; returns how many results were new.
async fn insert(conn: &mut PgConnection, batch: &[NewResult]) -> Result<u64, sqlx::Error> {
    let col = |f: fn(&NewResult) -> Option<f64>| batch.iter().map(f).collect::<Vec<_>>();
    let text = |f: fn(&NewResult) -> Option<String>| batch.iter().map(f).collect::<Vec<_>>();
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        INSERT
            .replace("{lock_days}", &summary::lock_days_shared_sql("$4::timestamptz[]"))
            .replace("{add_fresh}", &summary::add_fresh_sql())
            .replace("{add_fresh_hours}", &summary::add_fresh_hours_sql())
            .replace("{add_landed}", &summary::add_landed_sql())
            .replace("{distance}", &crate::geo::distance_sql("p.lat", "p.lon"))
    });
    let fact =
        |f: fn(&TargetFacts) -> Option<String>| batch.iter().map(|r| r.target.as_ref().and_then(f)).collect::<Vec<_>>();
    let coordinate =
        |f: fn(&TargetFacts) -> Option<f64>| batch.iter().map(|r| r.target.as_ref().and_then(f)).collect::<Vec<_>>();
    // The batch's days, for the bounds of the run-key look ($37, $38).
    let (first, last) = batch.iter().fold((batch[0].checked_at, batch[0].checked_at), |(first, last), r| {
        (first.min(r.checked_at), last.max(r.checked_at))
    });
    let new: i64 = sqlx::query_scalar(sql)
        .bind(batch.iter().map(|r| r.monitor_id).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.execution_region.clone()).collect::<Vec<_>>())
        .bind(text(|r| r.target_region.clone()))
        .bind(batch.iter().map(|r| r.checked_at).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.up).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| if r.up { "up" } else { "down" }.to_string()).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.total_ms.round().min(i32::MAX as f64) as i32).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.total_ms).collect::<Vec<_>>())
        .bind(col(|r| r.dns_ms))
        .bind(col(|r| r.connect_ms))
        .bind(col(|r| r.tls_ms))
        .bind(col(|r| r.first_byte_ms))
        .bind(col(|r| r.network_latency_ms))
        .bind(text(|r| r.error_kind.clone()))
        .bind(text(|r| r.error_message.clone()))
        .bind(batch.iter().map(|r| r.details.clone()).collect::<Vec<_>>())
        .bind(batch.iter().map(NewResult::region_metrics).collect::<Vec<_>>())
        .bind(text(|r| r.run_key.clone()))
        .bind(text(|r| r.resolved_ip.clone()))
        .bind(text(|r| r.http_version.clone()))
        .bind(batch.iter().map(|r| r.status_code).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.response_size).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.cert_expires_at).collect::<Vec<_>>())
        .bind(text(|r| r.cdn_provider.clone()))
        .bind(text(|r| r.cdn_cache_status.clone()))
        .bind(text(|r| r.cdn_edge_location.clone()))
        .bind(fact(|t| t.country.clone()))
        .bind(fact(|t| t.org.clone()))
        .bind(fact(|t| t.city.clone()))
        .bind(batch.iter().map(|r| r.target.as_ref().and_then(|t| t.asn).map(i64::from)).collect::<Vec<_>>())
        .bind(coordinate(|t| t.latitude))
        .bind(coordinate(|t| t.longitude))
        .bind(batch.iter().map(|r| r.hop_count).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.route_latency.clone()).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.steps.clone()).collect::<Vec<_>>())
        .bind(batch.iter().map(|r| r.screenshot.clone()).collect::<Vec<_>>())
        .bind(day_start(first, -1))
        .bind(day_start(last, 2))
        .fetch_one(conn)
        .await?;
    Ok(new as u64)
}

/// The start (UTC midnight) of the day `days` days from `at`'s UTC day.
fn day_start(at: DateTime<Utc>, days: i64) -> DateTime<Utc> {
    at.date_naive().and_time(chrono::NaiveTime::MIN).and_utc() + chrono::Duration::days(days)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{Failure, FailureKind, Phases};
    use crate::synthetic::{StepOutcome, StepResult};

    fn step(name: &str, outcome: StepOutcome, phases: Option<Phases>, failure: Option<Failure>) -> StepResult {
        StepResult {
            name: name.into(),
            kind: if phases.is_some() { "request" } else { "browser" }.into(),
            outcome,
            duration_ms: phases.map(|p| p.total_ms).or(Some(40.0)),
            url: None,
            phases,
            status: phases.map(|_| 200),
            pages: Vec::new(),
            console_errors: None,
            failed_requests: None,
            failure,
            screenshot: None,
        }
    }

    #[test]
    fn a_flow_is_stored_with_summed_phases_its_failing_step_and_a_bounded_screenshot() {
        let request = |connect: Option<f64>, total: f64| Phases {
            dns_ms: None,
            connect_ms: connect,
            tls_ms: None,
            first_byte_ms: Some(1.0),
            total_ms: total,
        };
        let why = Failure::new(FailureKind::Browser, "action 2 (click #go): no such element");
        let mut flow = FlowResult {
            up: false,
            started_at: Utc::now(),
            total_ms: 70.0,
            steps: vec![
                step("login", StepOutcome::Passed, Some(request(Some(2.0), 10.0)), None),
                step("api", StepOutcome::Passed, Some(request(None, 20.0)), None),
                step("page", StepOutcome::Failed, None, Some(why.clone())),
            ],
            failed_step: Some("page".into()),
            failure: Some(Failure::new(FailureKind::Browser, format!("step `page`: {}", why.message))),
            screenshot: Some(vec![0u8; 100]),
        };
        let row = NewResult::from_flow(Uuid::nil(), "eu-west", &flow);
        assert_eq!(row.total_ms, 70.0);
        assert_eq!(row.dns_ms, None, "no step measured DNS: NULL, not 0");
        assert_eq!(row.connect_ms, Some(2.0), "summed over the steps that measured it");
        assert_eq!(row.first_byte_ms, Some(2.0));
        assert_eq!(row.error_kind.as_deref(), Some("browser"));
        assert!(row.error_message.as_deref().unwrap().starts_with("step `page`: "));
        assert_eq!(row.screenshot.as_ref().map(Vec::len), Some(100));
        assert!(row.steps.as_ref().unwrap()[2]["screenshot"].as_str().unwrap().contains("100 bytes"));

        flow.screenshot = Some(vec![0u8; MAX_SCREENSHOT_BYTES + 1]);
        let row = NewResult::from_flow(Uuid::nil(), "eu-west", &flow);
        assert!(row.screenshot.is_none());
        assert!(row.steps.as_ref().unwrap()[2]["screenshot"].as_str().unwrap().starts_with("not stored"));
    }
}
