//! `scripts/bench history`, the write side: `results::record` at batches of BENCH_BATCH (500)
//! on the agent's kind of connection, into the database GEOCTL_BENCH_DATABASE_URL names (one
//! layout per run; the script runs it against both). Monitor ids are those the script's
//! generated history uses. Prints one JSON line: results per second. With `plain-layout`, it
//! makes the layout before partitioning instead.

use std::time::Instant;

use chrono::Utc;
use geoctl::results::{record_on, recording_connection, NewResult};
use serde_json::json;
use uuid::Uuid;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn row(monitor_id: Uuid, region: &str, n: usize) -> NewResult {
    let at = Utc::now();
    NewResult {
        monitor_id,
        execution_region: region.into(),
        target_region: None,
        checked_at: at,
        up: n % 50 != 0,
        dns_ms: Some(1.5),
        connect_ms: Some(3.0 + (n % 7) as f64),
        tls_ms: Some(6.0),
        first_byte_ms: Some(20.0),
        total_ms: 40.0 + (n % 31) as f64,
        network_latency_ms: Some(3.0),
        error_kind: None,
        error_message: None,
        resolved_ip: Some("127.0.0.1".into()),
        http_version: Some("HTTP/1.1".into()),
        status_code: Some(200),
        response_size: Some(512),
        cert_expires_at: None,
        cdn_provider: None,
        cdn_cache_status: None,
        cdn_edge_location: None,
        details: json!({}),
        run_key: Some(format!("{monitor_id}:{region}:bench-{}-{n}", at.timestamp_nanos_opt().unwrap_or_default())),
        target: None,
        hop_count: None,
        route_latency: None,
        steps: None,
        screenshot: None,
    }
}

/// The layout before partitioning, with everything else of today's schema (the hourly
/// summaries too, so both layouts write the same): every embedded migration but the
/// partitioning, so a later `db migrate` applies only that.
async fn plain_layout(url: &str) -> anyhow::Result<()> {
    let earlier: Vec<_> = geoctl::store::MIGRATOR
        .iter()
        .filter(|m| {
            ![geoctl::store::partition::MIGRATION, geoctl::store::partition::HOURLY_MIGRATION].contains(&m.version)
        })
        .cloned()
        .collect();
    // `Migrator`'s fields are public for `migrate!` and exempt from semver; sqlx is pinned.
    let migrator =
        sqlx::migrate::Migrator { migrations: std::borrow::Cow::Owned(earlier), ..sqlx::migrate::Migrator::DEFAULT };
    let pool = sqlx::PgPool::connect(url).await?;
    migrator.run(&pool).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Not DATABASE_URL: scripts/test runs every bench once as a smoke check, and it must not
    // touch anyone's database.
    let Ok(url) = std::env::var("GEOCTL_BENCH_DATABASE_URL") else {
        println!(
            "history bench: set GEOCTL_BENCH_DATABASE_URL to a database it may empty (scripts/bench history does)"
        );
        return Ok(());
    };
    if std::env::args().any(|a| a == "plain-layout") {
        return plain_layout(&url).await;
    }
    let (monitors, batch, batches) =
        (env_usize("BENCH_MONITORS", 1000), env_usize("BENCH_BATCH", 500), env_usize("BENCH_BATCHES", 20));
    let pool = sqlx::PgPool::connect(&url).await?;
    // The ids the script's generated history uses.
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT md5('m' || g)::uuid FROM generate_series(1, $1) g")
        .bind(monitors as i32)
        .fetch_all(&pool)
        .await?;
    let mut conn = recording_connection(&pool).await?;
    let regions = ["us-east", "eu-west", "ap-south"];
    let mut n = 0usize;
    let mut make = || {
        (0..batch)
            .map(|_| {
                n += 1;
                row(ids[n % ids.len()], regions[n % 3], n)
            })
            .collect::<Vec<_>>()
    };
    // One warm-up batch: connection, plan and caches.
    record_on(&mut conn, &make()).await?;
    let mut written = 0u64;
    let started = Instant::now();
    for _ in 0..batches {
        written += record_on(&mut conn, &make()).await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({ "batch": batch, "batches": batches, "written": written, "results_per_s": written as f64 / seconds })
    );
    Ok(())
}
