//! Results: what a region measured, written in batches, and the per-region
//! daily summaries kept correct as results arrive.

pub mod query;
pub mod status;
pub mod summary;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::probe::ProbeResult;

/// One check's outcome as it is stored: which region measured it, when, and
/// each phase it measured (a phase not measured is `None`, stored NULL).
#[derive(Debug, Clone, PartialEq, Serialize)]
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
}

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
        }
    }

    /// The network facts of this region's view of the target.
    fn region_metrics(&self) -> Value {
        json!({
            "resolved_ip": self.resolved_ip,
            "status_code": self.status_code,
            "http_version": self.http_version,
            "cdn_edge_location": self.cdn_edge_location,
            "cdn_cache_status": self.cdn_cache_status,
        })
    }

    fn day(&self) -> NaiveDate {
        self.checked_at.date_naive()
    }
}

/// Writes a batch of results in one transaction and a fixed number of round
/// trips whatever its size (one `INSERT … SELECT FROM unnest(…)` per table),
/// then brings the affected daily summaries up to date.
pub async fn record(pool: &PgPool, batch: &[NewResult]) -> Result<(), sqlx::Error> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    let col = |f: fn(&NewResult) -> Option<f64>| batch.iter().map(f).collect::<Vec<_>>();
    let text = |f: fn(&NewResult) -> Option<String>| batch.iter().map(f).collect::<Vec<_>>();
    let ids: Vec<Uuid> = batch.iter().map(|r| r.monitor_id).collect();
    let regions: Vec<String> = batch.iter().map(|r| r.execution_region.clone()).collect();
    let times: Vec<DateTime<Utc>> = batch.iter().map(|r| r.checked_at).collect();
    let ups: Vec<bool> = batch.iter().map(|r| r.up).collect();
    let totals: Vec<f64> = batch.iter().map(|r| r.total_ms).collect();
    let response_ms: Vec<i32> = batch.iter().map(|r| r.total_ms.round().min(i32::MAX as f64) as i32).collect();
    let statuses: Vec<String> = batch.iter().map(|r| if r.up { "up" } else { "down" }.to_string()).collect();
    let details: Vec<Value> = batch.iter().map(|r| r.details.clone()).collect();
    let dns = col(|r| r.dns_ms);
    let connect = col(|r| r.connect_ms);
    let tls = col(|r| r.tls_ms);
    let first_byte = col(|r| r.first_byte_ms);

    sqlx::query(
        "INSERT INTO monitor_results (monitor_id, execution_region, target_region, checked_at, is_up, status, \
         response_time_ms, total_time, dns_resolution_time, tcp_connect_time, tls_handshake_time, first_byte_time, \
         network_latency, error_kind, error_message, details, region_specific_metrics) \
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::bool[], $6::text[], \
         $7::int[], $8::float8[], $9::float8[], $10::float8[], $11::float8[], $12::float8[], $13::float8[], \
         $14::text[], $15::text[], $16::jsonb[], $17::jsonb[])",
    )
    .bind(&ids)
    .bind(&regions)
    .bind(text(|r| r.target_region.clone()))
    .bind(&times)
    .bind(&ups)
    .bind(&statuses)
    .bind(&response_ms)
    .bind(&totals)
    .bind(&dns)
    .bind(&connect)
    .bind(&tls)
    .bind(&first_byte)
    .bind(col(|r| r.network_latency_ms))
    .bind(text(|r| r.error_kind.clone()))
    .bind(text(|r| r.error_message.clone()))
    .bind(&details)
    .bind(batch.iter().map(NewResult::region_metrics).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;

    sqlx::query(
        "INSERT INTO regional_performance_metrics (monitor_id, region_code, checked_at, resolved_ip, http_version, \
         status_code, response_size, tls_cert_expires_at, cdn_provider, cdn_cache_status, cdn_edge_location, \
         dns_resolution_time, tcp_connect_time, tls_handshake_time, first_byte_time, total_time) \
         SELECT m, r, t, ip::inet, v, s, z, e, p, c, l, d, tc, tl, f, tt FROM unnest($1::uuid[], $2::text[], \
         $3::timestamptz[], $4::text[], $5::text[], $6::int[], $7::int8[], $8::timestamptz[], $9::text[], $10::text[], \
         $11::text[], $12::float8[], $13::float8[], $14::float8[], $15::float8[], $16::float8[]) \
         AS u(m, r, t, ip, v, s, z, e, p, c, l, d, tc, tl, f, tt)",
    )
    .bind(&ids)
    .bind(&regions)
    .bind(&times)
    .bind(text(|r| r.resolved_ip.clone()))
    .bind(text(|r| r.http_version.clone()))
    .bind(batch.iter().map(|r| r.status_code).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| r.response_size).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| r.cert_expires_at).collect::<Vec<_>>())
    .bind(text(|r| r.cdn_provider.clone()))
    .bind(text(|r| r.cdn_cache_status.clone()))
    .bind(text(|r| r.cdn_edge_location.clone()))
    .bind(&dns)
    .bind(&connect)
    .bind(&tls)
    .bind(&first_byte)
    .bind(&totals)
    .execute(&mut *tx)
    .await?;

    let mut keys: Vec<summary::Key> = batch
        .iter()
        .map(|r| summary::Key { monitor_id: r.monitor_id, region: r.execution_region.clone(), day: r.day() })
        .collect();
    keys.sort();
    keys.dedup();
    summary::refresh(&mut tx, &keys).await?;
    tx.commit().await
}
