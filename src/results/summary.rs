//! `regional_monitor_summaries`: one row per monitor, region and UTC day,
//! always recomputed from the results themselves (exact percentiles), so an
//! incremental refresh and a full rebuild give the same answer.

use chrono::NaiveDate;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// One summary row's identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub monitor_id: Uuid,
    pub region: String,
    pub day: NaiveDate,
}

/// The aggregate over the results that `{join}` selects.
const UPSERT: &str = "
INSERT INTO regional_monitor_summaries AS s (monitor_id, region_code, day, total_checks, successful_checks,
    failed_checks, uptime_percentage, avg_response_time, min_response_time, max_response_time,
    p50_response_time, p95_response_time, p99_response_time, avg_network_latency, avg_dns_time, avg_tcp_time,
    unique_countries, unique_isps, updated_at)
SELECT r.monitor_id, r.execution_region, (r.checked_at AT TIME ZONE 'UTC')::date AS day,
    count(*), count(*) FILTER (WHERE r.is_up), count(*) FILTER (WHERE NOT r.is_up),
    100.0 * count(*) FILTER (WHERE r.is_up) / count(*),
    avg(r.total_time) FILTER (WHERE r.is_up),
    min(r.total_time) FILTER (WHERE r.is_up),
    max(r.total_time) FILTER (WHERE r.is_up),
    percentile_cont(0.50) WITHIN GROUP (ORDER BY r.total_time) FILTER (WHERE r.is_up),
    percentile_cont(0.95) WITHIN GROUP (ORDER BY r.total_time) FILTER (WHERE r.is_up),
    percentile_cont(0.99) WITHIN GROUP (ORDER BY r.total_time) FILTER (WHERE r.is_up),
    avg(r.network_latency), avg(r.dns_resolution_time), avg(r.tcp_connect_time),
    NULL, NULL, now()
FROM monitor_results r {join}
WHERE r.execution_region IS NOT NULL AND r.is_up IS NOT NULL
GROUP BY 1, 2, 3
ON CONFLICT (monitor_id, region_code, day) DO UPDATE SET
    total_checks = EXCLUDED.total_checks, successful_checks = EXCLUDED.successful_checks,
    failed_checks = EXCLUDED.failed_checks, uptime_percentage = EXCLUDED.uptime_percentage,
    avg_response_time = EXCLUDED.avg_response_time, min_response_time = EXCLUDED.min_response_time,
    max_response_time = EXCLUDED.max_response_time, p50_response_time = EXCLUDED.p50_response_time,
    p95_response_time = EXCLUDED.p95_response_time, p99_response_time = EXCLUDED.p99_response_time,
    avg_network_latency = EXCLUDED.avg_network_latency, avg_dns_time = EXCLUDED.avg_dns_time,
    avg_tcp_time = EXCLUDED.avg_tcp_time, updated_at = now()";
// unique_countries / unique_isps stay NULL: agents do not know their
// vantage point's country or ISP yet, and an unmeasured count is not 0.

/// Each key's results: its day as a time range that the (monitor, region,
/// checked_at) index serves. Keys are distinct, so no result is counted twice.
const KEYS_JOIN: &str = "JOIN unnest($1::uuid[], $2::text[], $3::date[]) AS k(monitor_id, region, day)
    ON r.monitor_id = k.monitor_id AND r.execution_region = k.region
   AND r.checked_at >= (k.day::timestamp AT TIME ZONE 'UTC')
   AND r.checked_at < ((k.day + 1)::timestamp AT TIME ZONE 'UTC')";

/// Recomputes the summaries of `keys` inside the caller's transaction.
/// Writers lock each key first (in sorted order, so never a deadlock): a
/// concurrent writer's results are then committed and seen, and no update is lost.
pub async fn refresh(conn: &mut PgConnection, keys: &[Key]) -> Result<(), sqlx::Error> {
    if keys.is_empty() {
        return Ok(());
    }
    let mut sorted = keys.to_vec();
    sorted.sort();
    sorted.dedup();
    for key in &sorted {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("geoctl:summary:{}:{}:{}", key.monitor_id, key.region, key.day))
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(&UPSERT.replace("{join}", KEYS_JOIN))
        .bind(sorted.iter().map(|k| k.monitor_id).collect::<Vec<_>>())
        .bind(sorted.iter().map(|k| k.region.clone()).collect::<Vec<_>>())
        .bind(sorted.iter().map(|k| k.day).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Recomputes every summary of `day` (or of every day with results) from the
/// results. Summaries of days whose results were pruned are left as they are.
pub async fn rebuild(pool: &PgPool, day: Option<NaiveDate>) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let keys: Vec<(Uuid, String, NaiveDate)> = sqlx::query_as(
        "SELECT DISTINCT monitor_id, execution_region, (checked_at AT TIME ZONE 'UTC')::date FROM monitor_results \
         WHERE execution_region IS NOT NULL AND is_up IS NOT NULL AND monitor_id IS NOT NULL \
         AND ($1::date IS NULL OR (checked_at >= ($1::timestamp AT TIME ZONE 'UTC') \
              AND checked_at < (($1 + 1)::timestamp AT TIME ZONE 'UTC')))",
    )
    .bind(day)
    .fetch_all(&mut *tx)
    .await?;
    let keys: Vec<Key> = keys.into_iter().map(|(monitor_id, region, day)| Key { monitor_id, region, day }).collect();
    refresh(&mut tx, &keys).await?;
    tx.commit().await?;
    Ok(keys.len() as u64)
}
