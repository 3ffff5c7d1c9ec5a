//! Part 3: results per second written to PostgreSQL — geoctl's batched writer
//! (`geoctl::results::record`) against one INSERT per result, the same
//! results, one connection each way, the tables emptied in between.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use uuid::Uuid;

use geoctl::results::NewResult;

use crate::report::{self, fmt_rate};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A migrated database with monitors assigned to regions
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Results written each way
    #[arg(long, default_value_t = 20_000)]
    results: usize,
    /// Results per call of the batched writer
    #[arg(long, default_value_t = 500)]
    batch: usize,
    #[arg(long)]
    json: PathBuf,
}

/// The same columns the batched writer fills in `monitor_results`.
const INSERT_ONE: &str = "INSERT INTO monitor_results (monitor_id, execution_region, target_region, checked_at, \
    is_up, status, response_time_ms, total_time, dns_resolution_time, tcp_connect_time, tls_handshake_time, \
    first_byte_time, network_latency, error_kind, error_message, details, region_specific_metrics) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)";

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.batch > 0, "--batch must be above 0");
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .connect(&args.database_url)
        .await
        .context("connecting to PostgreSQL")?;
    let version: String = sqlx::query_scalar("SHOW server_version").fetch_one(&pool).await?;
    let fsync: String = sqlx::query_scalar("SHOW fsync").fetch_one(&pool).await?;
    let assignments: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT monitor_id, region_code FROM monitor_regions ORDER BY monitor_id, region_code")
            .fetch_all(&pool)
            .await?;
    anyhow::ensure!(!assignments.is_empty(), "no monitor is assigned to a region; create monitors first");
    let results = results(&assignments, args.results);

    empty_tables(&pool).await?;
    let start = Instant::now();
    for result in &results {
        insert_one(&pool, result).await?;
    }
    let per_row_s = start.elapsed().as_secs_f64();
    check_count(&pool, results.len()).await?;

    empty_tables(&pool).await?;
    // A connection of its own, opened as the agent's recorder opens its one.
    let mut conn = geoctl::results::recording_connection(&pool).await.context("connecting to PostgreSQL")?;
    let start = Instant::now();
    for batch in results.chunks(args.batch) {
        geoctl::results::record_on(&mut conn, batch).await.context("geoctl::results::record_on")?;
    }
    let batched_s = start.elapsed().as_secs_f64();
    check_count(&pool, results.len()).await?;
    empty_tables(&pool).await?;

    let n = results.len() as f64;
    let (per_row_rate, batched_rate) = (n / per_row_s, n / batched_s);
    println!(
        "Part 3: recording results in PostgreSQL {version} (private instance, fsync={fsync}, one connection each way)"
    );
    println!(
        "  {} results for {} (monitor, region) assignments, written each way into emptied tables",
        results.len(),
        assignments.len()
    );
    println!(
        "  one INSERT per result (monitor_results only, autocommit)      {:>8.2} s  {:>8} results/s",
        per_row_s,
        fmt_rate(per_row_rate)
    );
    println!(
        "  geoctl::results::record, batches of {:<5}                     {:>8.2} s  {:>8} results/s",
        args.batch,
        batched_s,
        fmt_rate(batched_rate)
    );
    println!("    (each batch: monitor_results + regional_performance_metrics + daily summaries, one transaction)");
    println!("  batched / one-per-result = {:.1}×", batched_rate / per_row_rate);
    println!();
    report::write_part(
        &args.json,
        &json!({
            "recording": {
                "postgresql_version": version,
                "fsync": fsync,
                "results": results.len(),
                "assignments": assignments.len(),
                "per_row": { "seconds": per_row_s, "results_per_s": per_row_rate,
                             "writes": "one INSERT INTO monitor_results per result, autocommit" },
                "batched": { "seconds": batched_s, "results_per_s": batched_rate, "batch_size": args.batch,
                             "writes": "geoctl::results::record: monitor_results, regional_performance_metrics, summaries" },
                "ratio_batched_to_per_row": batched_rate / per_row_rate,
            }
        }),
    )
}

/// `count` plausible HTTP results spread over the assignments, one every
/// few milliseconds up to now, a few of them down.
fn results(assignments: &[(Uuid, String)], count: usize) -> Vec<NewResult> {
    let now = Utc::now();
    (0..count)
        .map(|i| {
            let (monitor_id, region) = &assignments[i % assignments.len()];
            let jitter = (i % 17) as f64 / 10.0;
            let up = i % 50 != 0;
            let (dns, connect, tls, first_byte) = (2.0 + jitter, 20.0 + jitter, 25.0 + jitter, 40.0 + 3.0 * jitter);
            NewResult {
                monitor_id: *monitor_id,
                execution_region: region.clone(),
                target_region: None,
                checked_at: now - chrono::Duration::milliseconds(5 * (count - i) as i64),
                up,
                dns_ms: Some(dns),
                connect_ms: Some(connect),
                tls_ms: up.then_some(tls),
                first_byte_ms: up.then_some(first_byte),
                total_ms: dns + connect + if up { tls + first_byte + 1.0 } else { 0.0 },
                network_latency_ms: Some(connect),
                error_kind: (!up).then(|| "tls".to_string()),
                error_message: (!up).then(|| "TLS handshake failed: certificate expired".to_string()),
                resolved_ip: Some("192.0.2.10".into()),
                http_version: up.then(|| "HTTP/1.1".to_string()),
                status_code: up.then_some(200),
                response_size: up.then_some(5120),
                cert_expires_at: Some(now + chrono::Duration::days(60)),
                cdn_provider: None,
                cdn_cache_status: None,
                cdn_edge_location: None,
                details: json!({ "kind": "http", "redirects": 0, "final_url": "https://example.com/" }),
                run_key: None,
                target: None,
                hop_count: None,
                route_latency: None,
                steps: None,
                screenshot: None,
            }
        })
        .collect()
}

async fn insert_one(pool: &PgPool, r: &NewResult) -> anyhow::Result<()> {
    let metrics = json!({
        "resolved_ip": r.resolved_ip,
        "status_code": r.status_code,
        "http_version": r.http_version,
        "cdn_edge_location": r.cdn_edge_location,
        "cdn_cache_status": r.cdn_cache_status,
    });
    sqlx::query(INSERT_ONE)
        .bind(r.monitor_id)
        .bind(&r.execution_region)
        .bind(&r.target_region)
        .bind(r.checked_at)
        .bind(r.up)
        .bind(if r.up { "up" } else { "down" })
        .bind(r.total_ms.round() as i32)
        .bind(r.total_ms)
        .bind(r.dns_ms)
        .bind(r.connect_ms)
        .bind(r.tls_ms)
        .bind(r.first_byte_ms)
        .bind(r.network_latency_ms)
        .bind(&r.error_kind)
        .bind(&r.error_message)
        .bind(&r.details)
        .bind(metrics)
        .execute(pool)
        .await?;
    Ok(())
}

async fn empty_tables(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("TRUNCATE monitor_results, regional_performance_metrics, regional_monitor_summaries")
        .execute(pool)
        .await?;
    Ok(())
}

async fn check_count(pool: &PgPool, expected: usize) -> anyhow::Result<()> {
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM monitor_results").fetch_one(pool).await?;
    anyhow::ensure!(count as usize == expected, "{count} results stored, {expected} written");
    Ok(())
}
