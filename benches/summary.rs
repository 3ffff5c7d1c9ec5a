//! `scripts/bench summary`: what a recorded batch costs as the day fills up,
//! and what `monitor status` costs at 1,000 monitors.
//!
//! 1. Write cost: batches of one result per key (1,000 monitors in one
//!    region) recorded by `geoctl::results::record` (running totals) with 0
//!    results per key already recorded today, then with BENCH_PER_KEY (1,000)
//!    per key seeded, against the previous design in the same run: the same
//!    rows inserted, then each touched key's day recomputed from its results
//!    under one advisory lock round trip per key.
//! 2. `monitor status` at 1,000 monitors × 3 regions: one query for all
//!    (`results::status::statuses`) against one query per monitor (the
//!    previous loop).
//!
//! Needs GEOCTL_BENCH_DATABASE_URL pointing at a database it may empty. Prints figures and
//! writes them to target/bench/summary.json; nothing is asserted.

use std::time::Instant;

use anyhow::Context as _;
use chrono::Utc;
use geoctl::monitor::{MonitorStore, Placement};
use geoctl::results::{record, status, summary, NewResult};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The previous per-batch refresh: one lock round trip per key, then the
/// keys' whole day recomputed from results (exact percentiles).
const OLD_REFRESH: &str = "
INSERT INTO regional_monitor_summaries AS s (monitor_id, region_code, day, total_checks, successful_checks,
    failed_checks, uptime_percentage, avg_response_time, min_response_time, max_response_time,
    p50_response_time, p95_response_time, p99_response_time, avg_network_latency, avg_dns_time, avg_tcp_time,
    updated_at)
SELECT r.monitor_id, r.execution_region, (r.checked_at AT TIME ZONE 'UTC')::date AS day,
    count(*), count(*) FILTER (WHERE r.is_up), count(*) FILTER (WHERE NOT r.is_up),
    100.0 * count(*) FILTER (WHERE r.is_up) / count(*),
    avg(r.total_time) FILTER (WHERE r.is_up), min(r.total_time) FILTER (WHERE r.is_up),
    max(r.total_time) FILTER (WHERE r.is_up),
    percentile_cont(0.50) WITHIN GROUP (ORDER BY r.total_time) FILTER (WHERE r.is_up),
    percentile_cont(0.95) WITHIN GROUP (ORDER BY r.total_time) FILTER (WHERE r.is_up),
    percentile_cont(0.99) WITHIN GROUP (ORDER BY r.total_time) FILTER (WHERE r.is_up),
    avg(r.network_latency), avg(r.dns_resolution_time), avg(r.tcp_connect_time), now()
FROM monitor_results r
JOIN unnest($1::uuid[], $2::text[], $3::date[]) AS k(monitor_id, region, day)
    ON r.monitor_id = k.monitor_id AND r.execution_region = k.region
   AND r.checked_at >= (k.day::timestamp AT TIME ZONE 'UTC')
   AND r.checked_at < ((k.day + 1)::timestamp AT TIME ZONE 'UTC')
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

fn batch(monitors: &[Uuid], round: usize) -> Vec<NewResult> {
    let now = Utc::now();
    monitors
        .iter()
        .enumerate()
        .map(|(i, id)| NewResult {
            monitor_id: *id,
            execution_region: "us-east".into(),
            target_region: None,
            checked_at: now - chrono::Duration::milliseconds((round * 1000 + i) as i64),
            up: i % 50 != 0,
            dns_ms: Some(2.0),
            connect_ms: Some(20.0 + (i % 7) as f64),
            tls_ms: Some(25.0),
            first_byte_ms: Some(40.0),
            total_ms: 90.0 + (i % 13) as f64,
            network_latency_ms: Some(20.0),
            error_kind: None,
            error_message: None,
            resolved_ip: Some("192.0.2.10".into()),
            http_version: Some("HTTP/1.1".into()),
            status_code: Some(200),
            response_size: Some(512),
            cert_expires_at: None,
            cdn_provider: None,
            cdn_cache_status: None,
            cdn_edge_location: None,
            details: json!({ "kind": "http" }),
            run_key: Some(format!("{id}:us-east:{}", round * 1_000_000 + i)),
            target: None,
            hop_count: None,
            route_latency: None,
            steps: None,
            screenshot: None,
        })
        .collect()
}

/// The previous record: the same rows, then a per-key lock and an exact recompute of each key's day.
async fn old_record(pool: &PgPool, batch: &[NewResult]) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO monitor_results (monitor_id, execution_region, checked_at, is_up, status, total_time, \
         tcp_connect_time, network_latency) SELECT m, 'us-east', t, u, 'up', tt, 20, 20 \
         FROM unnest($1::uuid[], $2::timestamptz[], $3::bool[], $4::float8[]) AS x(m, t, u, tt)",
    )
    .bind(batch.iter().map(|r| r.monitor_id).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| r.checked_at).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| r.up).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| r.total_ms).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    let mut keys: Vec<(Uuid, String, chrono::NaiveDate)> =
        batch.iter().map(|r| (r.monitor_id, r.execution_region.clone(), r.checked_at.date_naive())).collect();
    keys.sort();
    keys.dedup();
    for (id, region, day) in &keys {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("geoctl:summary:{id}:{region}:{day}"))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(OLD_REFRESH)
        .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.1.clone()).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.2).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Milliseconds per batch over `rounds` batches.
async fn time_batches(pool: &PgPool, monitors: &[Uuid], rounds: usize, first: usize, old: bool) -> anyhow::Result<f64> {
    let mut total = 0.0;
    for round in first..first + rounds {
        let b = batch(monitors, round);
        let start = Instant::now();
        if old {
            old_record(pool, &b).await?;
        } else {
            record(pool, &b).await?;
        }
        total += start.elapsed().as_secs_f64() * 1000.0;
    }
    Ok(total / rounds as f64)
}

async fn reset(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::raw_sql("TRUNCATE monitor_results, regional_performance_metrics, regional_monitor_summaries")
        .execute(pool)
        .await?;
    Ok(())
}

/// Seeds `per_key` results today for each monitor in us-east, and their summaries.
async fn seed(pool: &PgPool, per_key: usize) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO monitor_results (monitor_id, execution_region, checked_at, is_up, status, total_time, \
         tcp_connect_time, network_latency) \
         SELECT m.id, 'us-east', date_trunc('day', now()) + (g % 3600) * interval '1 second', g % 50 <> 0, 'up', \
                80 + g % 17, 20, 20 \
         FROM monitors m, generate_series(1, $1) g",
    )
    .bind(per_key as i32)
    .execute(pool)
    .await?;
    sqlx::raw_sql("ANALYZE monitor_results").execute(pool).await?;
    summary::rebuild(pool, Some(Utc::now().date_naive())).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Not DATABASE_URL: `cargo test --all-targets` runs this too, and must not empty anyone's database.
    let Ok(url) = std::env::var("GEOCTL_BENCH_DATABASE_URL") else {
        println!(
            "summary bench: set GEOCTL_BENCH_DATABASE_URL to a database it may empty (scripts/bench summary does)"
        );
        return Ok(());
    };
    let monitors_n = env_usize("BENCH_MONITORS", 1000);
    let per_key = env_usize("BENCH_PER_KEY", 1000);
    let rounds = env_usize("BENCH_ROUNDS", 5);
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(4).connect(&url).await.context("connecting")?;
    geoctl::store::migrate(&pool).await?;
    sqlx::raw_sql(
        "TRUNCATE monitor_results, regional_performance_metrics, regional_monitor_summaries, monitor_regions, monitors",
    )
    .execute(&pool)
    .await?;
    sqlx::query(
        "INSERT INTO monitors (name, type, target, frequency_minutes, interval_seconds, enabled, status, down_rule, config) \
         SELECT 'bench-' || g, 'http_request', 'https://example.com/' || g, 1, 60, true, 'active', 'majority', '{}' \
         FROM generate_series(1, $1) g",
    )
    .bind(monitors_n as i32)
    .execute(&pool)
    .await?;
    sqlx::raw_sql(
        "INSERT INTO monitor_regions (monitor_id, region_code) \
         SELECT m.id, r.code FROM monitors m, regions r WHERE r.code IN ('us-east', 'eu-west', 'ap-south')",
    )
    .execute(&pool)
    .await?;
    let monitors: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM monitors ORDER BY id").fetch_all(&pool).await?;

    println!("Write cost per batch ({monitors_n} results, one per key; mean of {rounds} batches)");
    let mut figures = serde_json::Map::new();
    for (label, old) in
        [("running totals (geoctl::results::record)", false), ("previous: per-key lock + exact recompute", true)]
    {
        reset(&pool).await?;
        let empty = time_batches(&pool, &monitors, rounds, 0, old).await?;
        reset(&pool).await?;
        seed(&pool, per_key).await?;
        let full = time_batches(&pool, &monitors, rounds, 100, old).await?;
        println!("  {label:<44} 0/key: {empty:>8.1} ms   {per_key}/key: {full:>8.1} ms   ratio {:.2}", full / empty);
        figures.insert(
            if old { "previous" } else { "running_totals" }.into(),
            json!({ "ms_per_batch_empty_day": empty, "ms_per_batch_full_day": full, "per_key": per_key,
                    "round_trips_per_batch": if old { 4 + monitors_n } else { 4 } }),
        );
    }

    // Status at N monitors × 3 regions, each with a recent result (us-east holds the seeded day).
    sqlx::raw_sql(
        "INSERT INTO monitor_results (monitor_id, execution_region, checked_at, is_up, status, total_time) \
         SELECT m.id, r, now() - interval '1 minute', true, 'up', 50 FROM monitors m, \
         (VALUES ('eu-west'), ('ap-south')) v(r); ANALYZE monitor_results",
    )
    .execute(&pool)
    .await?;
    let store = MonitorStore::new(&pool, Placement { geo_distribution: true, default_region: None });
    let all = store.list().await?;
    let now = Utc::now();
    let start = Instant::now();
    let one_query = status::statuses(&pool, &all, now).await?;
    let batched_ms = start.elapsed().as_secs_f64() * 1000.0;
    let start = Instant::now();
    for m in &all {
        status::monitor_status(&pool, m, now).await?;
    }
    let looped_ms = start.elapsed().as_secs_f64() * 1000.0;
    println!("monitor status at {} monitors × 3 regions", one_query.len());
    println!("  one query for all (now)                      {batched_ms:>8.1} ms   1 round trip");
    println!("  one query per monitor (previous)             {looped_ms:>8.1} ms   {} round trips", all.len());
    figures.insert(
        "status".into(),
        json!({ "monitors": all.len(), "one_query_ms": batched_ms, "per_monitor_ms": looped_ms }),
    );
    let dir =
        std::path::Path::new(&std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into())).join("bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(&figures)?)?;
    Ok(())
}
