//! Reading results back: recent rows, per-region statistics over a window,
//! and time series for charts.

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

/// A monitor's most recent results, newest first.
pub async fn recent(
    pool: &PgPool,
    monitor_id: Uuid,
    region: Option<&str>,
    since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<ResultRow>, sqlx::Error> {
    rows(pool, monitor_id, region, (since, None), false, limit).await
}

/// A monitor's most recent failed checks in `[since, until]`, newest first (the dashboard's list).
pub async fn recent_failures(
    pool: &PgPool,
    monitor_id: Uuid,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<ResultRow>, sqlx::Error> {
    rows(pool, monitor_id, None, (since, Some(until)), true, limit).await
}

async fn rows(
    pool: &PgPool,
    monitor_id: Uuid,
    region: Option<&str>,
    (since, until): (DateTime<Utc>, Option<DateTime<Utc>>),
    failed_only: bool,
    limit: i64,
) -> Result<Vec<ResultRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.id::int8 AS id, r.checked_at, r.execution_region AS region, r.is_up AS up,
                (r.region_specific_metrics->>'status_code')::int AS status_code,
                r.dns_resolution_time AS dns_ms, r.tcp_connect_time AS connect_ms, r.tls_handshake_time AS tls_ms,
                r.first_byte_time AS first_byte_ms,
                COALESCE(r.total_time, r.response_time_ms::float8) AS total_ms, r.error_kind, r.error_message,
                r.steps, length(r.screenshot) AS screenshot_bytes
         FROM monitor_results r
         WHERE r.monitor_id = $1 AND ($2::text IS NULL OR r.execution_region = $2) AND r.checked_at >= $3
           AND ($4::timestamptz IS NULL OR r.checked_at <= $4) AND (NOT $5 OR r.is_up = false)
         ORDER BY r.checked_at DESC LIMIT $6",
    )
    .bind(monitor_id)
    .bind(region)
    .bind(since)
    .bind(until)
    .bind(failed_only)
    .bind(limit)
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
}

/// The statistics of `monitors` per region over `[since, until]`.
pub async fn region_stats(
    pool: &PgPool,
    monitors: &[Uuid],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<RegionStats>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.monitor_id, r.execution_region AS region, count(*) AS checks,
                count(*) FILTER (WHERE r.is_up) AS successful,
                (100.0 * count(*) FILTER (WHERE r.is_up) / count(*))::float8 AS uptime_percentage,
                percentile_cont(0.50) WITHIN GROUP (ORDER BY r.total_time) FILTER (WHERE r.is_up) AS p50_ms,
                percentile_cont(0.95) WITHIN GROUP (ORDER BY r.total_time) FILTER (WHERE r.is_up) AS p95_ms,
                percentile_cont(0.99) WITHIN GROUP (ORDER BY r.total_time) FILTER (WHERE r.is_up) AS p99_ms,
                avg(r.total_time) FILTER (WHERE r.is_up) AS avg_ms,
                avg(r.dns_resolution_time) AS avg_dns_ms, avg(r.tcp_connect_time) AS avg_connect_ms,
                avg(r.tls_handshake_time) AS avg_tls_ms, avg(r.first_byte_time) AS avg_first_byte_ms,
                count(r.total_time) FILTER (WHERE r.is_up) AS response_count,
                count(r.dns_resolution_time) AS dns_count, count(r.tcp_connect_time) AS connect_count
         FROM monitor_results r
         WHERE r.monitor_id = ANY($1) AND r.checked_at >= $2 AND r.checked_at <= $3
           AND r.execution_region IS NOT NULL AND r.is_up IS NOT NULL
         GROUP BY r.monitor_id, r.execution_region
         ORDER BY r.monitor_id, r.execution_region",
    )
    .bind(monitors)
    .bind(since)
    .bind(until)
    .fetch_all(pool)
    .await
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

/// Results of `[since, until]` grouped into `bucket_seconds` buckets per monitor and region, oldest first.
pub async fn series(
    pool: &PgPool,
    monitors: &[Uuid],
    (since, until): (DateTime<Utc>, DateTime<Utc>),
    bucket_seconds: i64,
) -> Result<Vec<SeriesPoint>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.monitor_id, r.execution_region AS region,
                to_timestamp(floor(extract(epoch FROM r.checked_at) / $4) * $4) AS bucket,
                count(*) AS checks, count(*) FILTER (WHERE r.is_up) AS successful,
                avg(r.total_time) FILTER (WHERE r.is_up) AS avg_ms
         FROM monitor_results r
         WHERE r.monitor_id = ANY($1) AND r.checked_at >= $2 AND r.checked_at <= $3
           AND r.execution_region IS NOT NULL AND r.is_up IS NOT NULL
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )
    .bind(monitors)
    .bind(since)
    .bind(until)
    .bind(bucket_seconds as f64)
    .fetch_all(pool)
    .await
}

/// One day's summary of one monitor in one region, as the report merges it.
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
