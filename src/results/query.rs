//! Reading results back: recent rows, per-region statistics over a window,
//! and time series for charts.
//!
//! Results are partitioned by day: every query here names both ends of the time it reads, so
//! the planner opens only those days' partitions.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// One stored result, as `monitor results` shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ResultRow {
    /// The row's id (`monitor results --screenshot ID` fetches its screenshot).
    pub id: i64,
    pub checked_at: DateTime<Utc>,
    pub region: Option<String>,
    pub up: Option<bool>,
    pub status_code: Option<i32>,
    pub dns_ms: Option<f64>,
    pub connect_ms: Option<f64>,
    pub tls_ms: Option<f64>,
    pub first_byte_ms: Option<f64>,
    pub total_ms: Option<f64>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    /// Synthetic checks: each step's outcome, time and phases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<serde_json::Value>,
    /// Synthetic checks: the size of the failing browser step's stored screenshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub screenshot_bytes: Option<i32>,
}

/// The screenshot stored with result `id` of `monitor_id` (`None`: no such result, or none stored).
pub async fn screenshot(pool: &PgPool, monitor_id: Uuid, id: i64) -> Result<Option<Vec<u8>>, sqlx::Error> {
    let found: Option<Option<Vec<u8>>> =
        sqlx::query_scalar("SELECT screenshot FROM monitor_results WHERE monitor_id = $1 AND id = $2")
            .bind(monitor_id)
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(found.flatten())
}

/// How far ahead of this host's clock a result may have been stamped (an agent's clock running
/// fast) and still count as already measured: "up to now" reads up to now plus this.
pub const CLOCK_SLACK: chrono::Duration = chrono::Duration::hours(1);

/// A half-open time range `[from, to)` of results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// `(checked_at >= $n AND checked_at < $n+1 OR …)` over `spans`, their parameters numbered from
/// `first`: one OR branch per span, which partition pruning follows branch by branch.
pub(crate) fn spans_sql(column: &str, spans: &[Span], first: usize) -> String {
    let branches: Vec<String> = (0..spans.len())
        .map(|i| format!("{column} >= ${} AND {column} < ${}", first + 2 * i, first + 2 * i + 1))
        .collect();
    format!("({})", branches.join(" OR "))
}

/// A monitor's most recent results checked from `since` to `until`, newest first.
pub async fn recent(
    pool: &PgPool,
    monitor_id: Uuid,
    region: Option<&str>,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<ResultRow>, sqlx::Error> {
    rows(pool, monitor_id, region, (since, until), false, limit).await
}

/// A monitor's most recent failed checks in `[since, until]`, newest first (the dashboard's list).
pub async fn recent_failures(
    pool: &PgPool,
    monitor_id: Uuid,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<ResultRow>, sqlx::Error> {
    rows(pool, monitor_id, None, (since, until), true, limit).await
}

async fn rows(
    pool: &PgPool,
    monitor_id: Uuid,
    region: Option<&str>,
    (since, until): (DateTime<Utc>, DateTime<Utc>),
    failed_only: bool,
    limit: i64,
) -> Result<Vec<ResultRow>, sqlx::Error> {
    // The failures' filter is written out, not a parameter, so the planner can use the index of
    // failed checks (a monitor that rarely fails would otherwise have every result of the range
    // read to find its last twenty failures).
    let failed = if failed_only { "AND r.is_up = false" } else { "" };
    sqlx::query_as(&format!(
        "SELECT r.id::int8 AS id, r.checked_at, r.execution_region AS region, r.is_up AS up,
                (r.region_specific_metrics->>'status_code')::int AS status_code,
                r.dns_resolution_time AS dns_ms, r.tcp_connect_time AS connect_ms, r.tls_handshake_time AS tls_ms,
                r.first_byte_time AS first_byte_ms,
                COALESCE(r.total_time, r.response_time_ms::float8) AS total_ms, r.error_kind, r.error_message,
                r.steps, length(r.screenshot) AS screenshot_bytes
         FROM monitor_results r
         WHERE r.monitor_id = $1 AND ($2::text IS NULL OR r.execution_region = $2)
           AND r.checked_at >= $3 AND r.checked_at <= $5 {failed}
         ORDER BY r.checked_at DESC LIMIT $4",
    ))
    .bind(monitor_id)
    .bind(region)
    .bind(since)
    .bind(limit)
    .bind(until)
    .fetch_all(pool)
    .await
}

/// Uptime, exact percentiles and phase averages of one monitor in one region over a window.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RegionStats {
    pub monitor_id: Uuid,
    pub region: String,
    pub checks: i64,
    pub successful: i64,
    pub uptime_percentage: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub avg_ms: Option<f64>,
    pub avg_dns_ms: Option<f64>,
    pub avg_connect_ms: Option<f64>,
    pub avg_tls_ms: Option<f64>,
    pub avg_first_byte_ms: Option<f64>,
    /// How many values each average is over, to weigh it when merged with daily summaries.
    #[serde(skip)]
    pub response_count: i64,
    #[serde(skip)]
    pub dns_count: i64,
    #[serde(skip)]
    pub connect_count: i64,
    #[serde(skip)]
    pub tls_count: i64,
    #[serde(skip)]
    pub first_byte_count: i64,
}

/// The statistics of `monitors` over the results checked in `spans` (none: nothing to read), with
/// exact percentiles.
pub async fn region_stats(pool: &PgPool, monitors: &[Uuid], spans: &[Span]) -> Result<Vec<RegionStats>, sqlx::Error> {
    if spans.is_empty() {
        return Ok(Vec::new());
    }
    let p = |q: &str| format!("percentile_cont({q}) WITHIN GROUP (ORDER BY r.total_time) FILTER (WHERE r.is_up)");
    let sql = format!(
        "SELECT r.monitor_id, r.execution_region AS region, count(*) AS checks,
                count(*) FILTER (WHERE r.is_up) AS successful,
                (100.0 * count(*) FILTER (WHERE r.is_up) / count(*))::float8 AS uptime_percentage,
                {} AS p50_ms, {} AS p95_ms, {} AS p99_ms,
                avg(r.total_time) FILTER (WHERE r.is_up) AS avg_ms,
                avg(r.dns_resolution_time) AS avg_dns_ms, avg(r.tcp_connect_time) AS avg_connect_ms,
                avg(r.tls_handshake_time) AS avg_tls_ms, avg(r.first_byte_time) AS avg_first_byte_ms,
                count(r.total_time) FILTER (WHERE r.is_up) AS response_count,
                count(r.dns_resolution_time) AS dns_count, count(r.tcp_connect_time) AS connect_count,
                count(r.tls_handshake_time) AS tls_count, count(r.first_byte_time) AS first_byte_count
         FROM monitor_results r
         WHERE r.monitor_id = ANY($1) AND {} AND r.execution_region IS NOT NULL AND r.is_up IS NOT NULL
         GROUP BY r.monitor_id, r.execution_region
         ORDER BY r.monitor_id, r.execution_region",
        p("0.50"),
        p("0.95"),
        p("0.99"),
        spans_sql("r.checked_at", spans, 2)
    );
    bind_spans(sqlx::query_as(&sql).bind(monitors), spans).fetch_all(pool).await
}

/// Binds each span's two ends, in the order [`spans_sql`] numbers them.
pub(crate) fn bind_spans<'q, O>(
    mut query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    spans: &[Span],
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    for span in spans {
        query = query.bind(span.from).bind(span.to);
    }
    query
}

/// Average response time and uptime of one region in one time bucket.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SeriesPoint {
    pub monitor_id: Uuid,
    pub region: String,
    pub bucket: DateTime<Utc>,
    pub checks: i64,
    pub successful: i64,
    pub avg_ms: Option<f64>,
}

/// The results checked in `spans` grouped into `bucket_seconds` buckets per monitor and region,
/// oldest first.
pub async fn series(
    pool: &PgPool,
    monitors: &[Uuid],
    spans: &[Span],
    bucket_seconds: i64,
) -> Result<Vec<SeriesPoint>, sqlx::Error> {
    if spans.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT r.monitor_id, r.execution_region AS region,
                to_timestamp(floor(extract(epoch FROM r.checked_at) / $2) * $2) AS bucket,
                count(*) AS checks, count(*) FILTER (WHERE r.is_up) AS successful,
                avg(r.total_time) FILTER (WHERE r.is_up) AS avg_ms
         FROM monitor_results r
         WHERE r.monitor_id = ANY($1) AND {} AND r.execution_region IS NOT NULL AND r.is_up IS NOT NULL
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        spans_sql("r.checked_at", spans, 3)
    );
    bind_spans(sqlx::query_as(&sql).bind(monitors).bind(bucket_seconds as f64), spans).fetch_all(pool).await
}

/// Summaries of one monitor in one region added up over one report bucket: counts, and each
/// average as the sum and count of the values measured (`None`: none measured, or a grain that
/// does not keep it: daily summaries have no TLS or first-byte times).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Summed {
    pub monitor_id: Uuid,
    pub region: String,
    pub bucket: DateTime<Utc>,
    pub checks: i64,
    pub successful: i64,
    pub response_sum: Option<f64>,
    pub response_count: i64,
    pub dns_sum: Option<f64>,
    pub dns_count: i64,
    pub connect_sum: Option<f64>,
    pub connect_count: i64,
    pub tls_sum: Option<f64>,
    pub tls_count: i64,
    pub first_byte_sum: Option<f64>,
    pub first_byte_count: i64,
    /// The response-time histogram of its successful checks (see [`super::histogram`]); `None`:
    /// none, or a grain that does not keep one (daily summaries).
    pub histogram: Option<super::histogram::Counts>,
}

/// The report bucket of `start`: the `bucket_seconds` bucket since the epoch holding it, or
/// holding `$2` (the window's start) for a summary that began before it (the day the window
/// starts in, read whole because the prune horizon cut into it).
fn bucket_of(start: &str) -> String {
    format!("to_timestamp(floor(extract(epoch FROM greatest({start}, $2)) / $3) * $3)")
}

/// The daily summaries of `monitors` for the days `from..until` (until excluded), added up per
/// `bucket_seconds` bucket from `since`.
pub async fn summed_days(
    pool: &PgPool,
    monitors: &[Uuid],
    (from, until): (chrono::NaiveDate, chrono::NaiveDate),
    since: DateTime<Utc>,
    bucket_seconds: i64,
) -> Result<Vec<Summed>, sqlx::Error> {
    // Rows written before running totals existed have averages and no counts: a measured average
    // is over the successful checks (response) or all checks (phases).
    let sql = format!(
        "SELECT monitor_id, region_code AS region, {} AS bucket,
                sum(total_checks)::int8 AS checks, sum(successful_checks)::int8 AS successful,
                sum(COALESCE(response_time_sum, avg_response_time * COALESCE(response_time_count, successful_checks)))
                    AS response_sum,
                sum(CASE WHEN avg_response_time IS NULL THEN 0 ELSE COALESCE(response_time_count, successful_checks) END)::int8
                    AS response_count,
                sum(COALESCE(dns_time_sum, avg_dns_time * COALESCE(dns_time_count, total_checks))) AS dns_sum,
                sum(CASE WHEN avg_dns_time IS NULL THEN 0 ELSE COALESCE(dns_time_count, total_checks) END)::int8 AS dns_count,
                sum(COALESCE(tcp_time_sum, avg_tcp_time * COALESCE(tcp_time_count, total_checks))) AS connect_sum,
                sum(CASE WHEN avg_tcp_time IS NULL THEN 0 ELSE COALESCE(tcp_time_count, total_checks) END)::int8
                    AS connect_count,
                NULL::float8 AS tls_sum, 0::int8 AS tls_count, NULL::float8 AS first_byte_sum, 0::int8 AS first_byte_count,
                NULL::int4[] AS histogram
         FROM regional_monitor_summaries
         WHERE monitor_id = ANY($1) AND day >= $4 AND day < $5
         GROUP BY 1, 2, 3",
        bucket_of("(day::timestamp AT TIME ZONE 'UTC')")
    );
    sqlx::query_as(&sql)
        .bind(monitors)
        .bind(since)
        .bind(bucket_seconds as f64)
        .bind(from)
        .bind(until)
        .fetch_all(pool)
        .await
}

/// Where [`summed`] reads a window's part from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    /// The hourly summaries of its whole hours, one row per hour (with its histogram), for the
    /// caller to add up: one pass over the hours gives the series, the figures and the percentiles.
    Hours,
    /// The results themselves, added up here per bucket as the hourly summaries would hold them,
    /// with their histograms: the partial hours at a window's edges, in one pass.
    Results,
}

/// The figures of `monitors` over `spans` read at `grain`, each row in its `bucket_seconds`
/// bucket from `since`.
pub async fn summed(
    pool: &PgPool,
    grain: Grain,
    monitors: &[Uuid],
    spans: &[Span],
    since: DateTime<Utc>,
    bucket_seconds: i64,
) -> Result<Vec<Summed>, sqlx::Error> {
    if spans.is_empty() {
        return Ok(Vec::new());
    }
    let sql = match grain {
        Grain::Hours => format!(
            "SELECT monitor_id, region_code AS region, {} AS bucket,
                    total_checks AS checks, successful_checks AS successful,
                    response_time_sum AS response_sum, response_time_count AS response_count,
                    dns_time_sum AS dns_sum, dns_time_count AS dns_count,
                    tcp_time_sum AS connect_sum, tcp_time_count AS connect_count,
                    tls_time_sum AS tls_sum, tls_time_count AS tls_count,
                    first_byte_time_sum AS first_byte_sum, first_byte_time_count AS first_byte_count,
                    response_histogram AS histogram
             FROM regional_monitor_hourly_summaries
             WHERE monitor_id = ANY($1) AND {}",
            bucket_of("hour"),
            spans_sql("hour", spans, 4)
        ),
        Grain::Results => format!(
            "SELECT r.monitor_id, r.execution_region AS region, {} AS bucket,
                    count(*) AS checks, count(*) FILTER (WHERE r.is_up) AS successful,
                    sum(r.total_time) FILTER (WHERE r.is_up) AS response_sum,
                    count(r.total_time) FILTER (WHERE r.is_up) AS response_count,
                    sum(r.dns_resolution_time) AS dns_sum, count(r.dns_resolution_time) AS dns_count,
                    sum(r.tcp_connect_time) AS connect_sum, count(r.tcp_connect_time) AS connect_count,
                    sum(r.tls_handshake_time) AS tls_sum, count(r.tls_handshake_time) AS tls_count,
                    sum(r.first_byte_time) AS first_byte_sum, count(r.first_byte_time) AS first_byte_count,
                    {} AS histogram
             FROM monitor_results r
             WHERE r.monitor_id = ANY($1) AND {} AND r.execution_region IS NOT NULL AND r.is_up IS NOT NULL
             GROUP BY 1, 2, 3",
            bucket_of("r.checked_at"),
            super::histogram::counts_sql("r"),
            spans_sql("r.checked_at", spans, 4)
        ),
    };
    bind_spans(sqlx::query_as(&sql).bind(monitors).bind(since).bind(bucket_seconds as f64), spans).fetch_all(pool).await
}

/// One day's summary of one monitor in one region, as the status pages read it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DaySummary {
    pub monitor_id: Uuid,
    pub region: String,
    pub day: chrono::NaiveDate,
    pub checks: i64,
    pub successful: i64,
    pub avg_ms: Option<f64>,
    pub response_count: i64,
    pub avg_dns_ms: Option<f64>,
    pub dns_count: i64,
    pub avg_connect_ms: Option<f64>,
    pub connect_count: i64,
}

/// The daily summaries of `monitors` for the days `from..until` (until excluded).
pub async fn day_summaries(
    pool: &PgPool,
    monitors: &[Uuid],
    from: chrono::NaiveDate,
    until: chrono::NaiveDate,
) -> Result<Vec<DaySummary>, sqlx::Error> {
    // Counts of rows written before running totals existed are estimated from the checks.
    sqlx::query_as(
        "SELECT monitor_id, region_code AS region, day, total_checks::int8 AS checks,
                successful_checks::int8 AS successful, avg_response_time AS avg_ms,
                COALESCE(response_time_count, successful_checks)::int8 AS response_count,
                avg_dns_time AS avg_dns_ms, COALESCE(dns_time_count, total_checks)::int8 AS dns_count,
                avg_tcp_time AS avg_connect_ms, COALESCE(tcp_time_count, total_checks)::int8 AS connect_count
         FROM regional_monitor_summaries
         WHERE monitor_id = ANY($1) AND day >= $2 AND day < $3
         ORDER BY monitor_id, region_code, day",
    )
    .bind(monitors)
    .bind(from)
    .bind(until)
    .fetch_all(pool)
    .await
}
