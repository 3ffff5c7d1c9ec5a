//! Reports over a time window: for each monitor and each region that measured
//! it, uptime, exact percentiles, average phase times, and average response
//! time per time bucket. The model serialises as it is (JSON/YAML); [`spark`]
//! draws it for a terminal and [`html`] as one self-contained page.

pub mod html;
pub mod spark;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::monitor::Monitor;
use crate::results::query::{self, RegionStats, SeriesPoint};
use crate::results::summary;

/// About this many buckets per chart: enough to see a shape, few enough for
/// one terminal line.
pub const BUCKETS: i64 = 60;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub bucket_seconds: i64,
    /// Set when the window reaches before the prune horizon: up to this time,
    /// checks, uptime and the response, DNS and connect averages come from the
    /// daily summaries (whole UTC days); percentiles and the TLS and first-byte
    /// averages cover the results from this time on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summarized_until: Option<DateTime<Utc>>,
    pub monitors: Vec<MonitorReport>,
    /// The reported monitors' incidents open now (filled by the caller that reads them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub open_incidents: Vec<crate::alert::manage::Incident>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MonitorReport {
    pub monitor_id: Uuid,
    pub name: String,
    /// Only regions with results in the window, by region code.
    pub regions: Vec<RegionReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegionReport {
    #[serde(flatten)]
    pub stats: RegionStats,
    /// Every bucket of the window, oldest first, including empty ones.
    pub series: Vec<Bucket>,
    /// Where the region's checks reached the target (country, city, network),
    /// most frequent first; checks no GeoIP database located are left out.
    pub landed: Vec<Landing>,
    /// Median route length of the region's traced checks; `None` when none was traced.
    pub median_hop_count: Option<f64>,
}

/// One place a region reached the target, and how often.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Landing {
    #[serde(skip)]
    pub monitor_id: Uuid,
    #[serde(skip)]
    pub region: String,
    pub country: Option<String>,
    pub city: Option<String>,
    pub asn: Option<i64>,
    pub isp: Option<String>,
    pub checks: i64,
    /// Percent of the region's recorded checks in the window.
    pub share: f64,
}

/// Where each region's checks landed and its median hop count over `[since, until]`.
async fn landings(
    pool: &PgPool,
    ids: &[Uuid],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<(Vec<Landing>, Vec<(Uuid, String, Option<f64>)>), sqlx::Error> {
    let landed = sqlx::query_as(
        "SELECT * FROM (
            SELECT monitor_id, region_code AS region, country_code::text AS country, city, asn, isp,
                count(*) AS checks,
                (100.0 * count(*) / sum(count(*)) OVER (PARTITION BY monitor_id, region_code))::float8 AS share
            FROM regional_performance_metrics
            WHERE monitor_id = ANY($1) AND checked_at >= $2 AND checked_at <= $3
            GROUP BY monitor_id, region_code, country_code, city, asn, isp) l
         WHERE country IS NOT NULL OR city IS NOT NULL OR asn IS NOT NULL OR isp IS NOT NULL
         ORDER BY monitor_id, region, checks DESC, country, city, asn",
    )
    .bind(ids)
    .bind(since)
    .bind(until)
    .fetch_all(pool)
    .await?;
    let hops = sqlx::query_as(
        "SELECT monitor_id, region_code,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY hop_count) FILTER (WHERE hop_count IS NOT NULL)
         FROM regional_performance_metrics
         WHERE monitor_id = ANY($1) AND checked_at >= $2 AND checked_at <= $3
         GROUP BY monitor_id, region_code",
    )
    .bind(ids)
    .bind(since)
    .bind(until)
    .fetch_all(pool)
    .await?;
    Ok((landed, hops))
}

/// One time bucket of one region. `avg_ms` is the average response time of
/// the successful checks; `None` when there were none.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    pub start: DateTime<Utc>,
    pub checks: i64,
    pub successful: i64,
    pub avg_ms: Option<f64>,
}

impl Bucket {
    pub fn failed(&self) -> i64 {
        self.checks - self.successful
    }
}

impl Report {
    /// No monitor had a result in the window.
    pub fn is_empty(&self) -> bool {
        self.monitors.iter().all(|m| m.regions.is_empty())
    }

    /// Whether any region has target facts or traced routes to show.
    pub fn has_landings(&self) -> bool {
        self.monitors.iter().flat_map(|m| &m.regions).any(|r| !r.landed.is_empty() || r.median_hop_count.is_some())
    }

    /// Every region code in the report, sorted: charts give each the same colour everywhere.
    pub fn region_codes(&self) -> Vec<&str> {
        let mut codes: Vec<&str> =
            self.monitors.iter().flat_map(|m| m.regions.iter().map(|r| r.stats.region.as_str())).collect();
        codes.sort_unstable();
        codes.dedup();
        codes
    }
}

/// `City, CC`, or whichever of the two is known.
pub fn place(l: &Landing) -> String {
    match (&l.city, &l.country) {
        (Some(city), Some(country)) => format!("{city}, {country}"),
        (Some(one), None) | (None, Some(one)) => one.clone(),
        (None, None) => "-".into(),
    }
}

/// `AS64500 Org`, or whichever of the two is known.
pub fn network(l: &Landing) -> String {
    match (l.asn, &l.isp) {
        (Some(asn), Some(isp)) => format!("AS{asn} {isp}"),
        (Some(asn), None) => format!("AS{asn}"),
        (None, Some(isp)) => isp.clone(),
        (None, None) => "-".into(),
    }
}

/// How an uptime reads at a glance; the terminal and the page colour it alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UptimeGrade {
    /// 99% or more.
    Good,
    /// 95% or more.
    Degraded,
    Poor,
}

impl UptimeGrade {
    pub fn of(percent: f64) -> Self {
        if percent >= 99.0 {
            UptimeGrade::Good
        } else if percent >= 95.0 {
            UptimeGrade::Degraded
        } else {
            UptimeGrade::Poor
        }
    }
}

/// The window `[since, until]` that ends at `until` and reaches back `length`,
/// never before 1970 (no result is older, and the bucket grid stays finite).
pub fn window(until: DateTime<Utc>, length: Duration) -> DateTime<Utc> {
    let length = chrono::Duration::from_std(length).unwrap_or(chrono::Duration::MAX);
    until.checked_sub_signed(length).map_or(DateTime::UNIX_EPOCH, |since| since.max(DateTime::UNIX_EPOCH))
}

/// Bucket size for about [`BUCKETS`] buckets over the window, in whole seconds.
pub fn bucket_seconds(since: DateTime<Utc>, until: DateTime<Utc>) -> i64 {
    let span = (until - since).num_seconds().max(1);
    ((span + BUCKETS - 1) / BUCKETS).max(1)
}

/// Bucket starts from the one holding `since` to the one holding `until`,
/// aligned to multiples of `bucket_seconds` since the epoch as the series query is.
fn bucket_grid(since: DateTime<Utc>, until: DateTime<Utc>, bucket_seconds: i64) -> Vec<i64> {
    let first = since.timestamp().div_euclid(bucket_seconds) * bucket_seconds;
    let last = until.timestamp().div_euclid(bucket_seconds) * bucket_seconds;
    (first..=last).step_by(bucket_seconds as usize).collect()
}

/// Where a report reads whole days from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Days {
    /// Results wherever they are kept; summaries only for days the prune cut into.
    Results,
    /// The daily summaries for every day before `until`'s, results only for that day: a long
    /// window then costs one row per monitor, region and day instead of every check
    /// (the dashboard's ranges over a day).
    Summaries,
}

/// Reads the statistics and series of `monitors` over `[since, until]`.
pub async fn build(
    pool: &PgPool,
    monitors: &[Monitor],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Report, sqlx::Error> {
    build_from(pool, monitors, since, until, Days::Results).await
}

/// [`build`], reading whole days as `days` says.
pub async fn build_from(
    pool: &PgPool,
    monitors: &[Monitor],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    days: Days,
) -> Result<Report, sqlx::Error> {
    let ids: Vec<Uuid> = monitors.iter().map(|m| m.id).collect();
    let bucket_seconds = bucket_seconds(since, until);
    // Days the prune cut into keep only their summaries: read those, and the results after them.
    let pruned = summary::pruned_before(pool)
        .await?
        .map(|h| summary::first_whole_day(h).and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    let asked = (days == Days::Summaries).then(|| until.date_naive().and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    let summarized_until = pruned.max(asked).filter(|t| *t > since);
    let raw_since = summarized_until.unwrap_or(since);
    let mut stats = query::region_stats(pool, &ids, raw_since, until).await?;
    let mut points = query::series(pool, &ids, (raw_since, until), bucket_seconds).await?;
    if let Some(end) = summarized_until {
        let days = query::day_summaries(pool, &ids, since.date_naive(), end.date_naive()).await?;
        merge_summaries(&mut stats, &mut points, days, since, bucket_seconds);
    }
    let mut report = assemble(monitors, stats, points, since, until, bucket_seconds);
    report.summarized_until = summarized_until;
    let (landed, hops) = landings(pool, &ids, since, until).await?;
    for region in report.monitors.iter_mut().flat_map(|m| m.regions.iter_mut()) {
        let key = (region.stats.monitor_id, region.stats.region.as_str());
        region.landed = landed.iter().filter(|l| (l.monitor_id, l.region.as_str()) == key).cloned().collect();
        region.median_hop_count =
            hops.iter().find(|(m, r, _)| (*m, r.as_str()) == key).and_then(|(_, _, median)| *median);
    }
    Ok(report)
}

/// A weighted average of two, either absent.
fn weighted(a: Option<f64>, a_n: i64, b: Option<f64>, b_n: i64) -> Option<f64> {
    match (a.filter(|_| a_n > 0), b.filter(|_| b_n > 0)) {
        (Some(a), Some(b)) => Some((a * a_n as f64 + b * b_n as f64) / (a_n + b_n) as f64),
        (a, b) => a.or(b),
    }
}

/// Adds daily summaries to the statistics and series read from results.
fn merge_summaries(
    stats: &mut Vec<RegionStats>,
    points: &mut Vec<SeriesPoint>,
    days: Vec<query::DaySummary>,
    since: DateTime<Utc>,
    bucket_seconds: i64,
) {
    for d in days {
        let position = stats.iter().position(|s| s.monitor_id == d.monitor_id && s.region == d.region);
        let s = match position {
            Some(i) => &mut stats[i],
            None => {
                stats.push(RegionStats {
                    monitor_id: d.monitor_id,
                    region: d.region.clone(),
                    checks: 0,
                    successful: 0,
                    uptime_percentage: None,
                    p50_ms: None,
                    p95_ms: None,
                    p99_ms: None,
                    avg_ms: None,
                    avg_dns_ms: None,
                    avg_connect_ms: None,
                    avg_tls_ms: None,
                    avg_first_byte_ms: None,
                    response_count: 0,
                    dns_count: 0,
                    connect_count: 0,
                });
                stats.last_mut().expect("just pushed")
            }
        };
        s.checks += d.checks;
        s.successful += d.successful;
        s.uptime_percentage = (s.checks > 0).then(|| 100.0 * s.successful as f64 / s.checks as f64);
        s.avg_ms = weighted(s.avg_ms, s.response_count, d.avg_ms, d.response_count);
        s.response_count += d.response_count;
        s.avg_dns_ms = weighted(s.avg_dns_ms, s.dns_count, d.avg_dns_ms, d.dns_count);
        s.dns_count += d.dns_count;
        s.avg_connect_ms = weighted(s.avg_connect_ms, s.connect_count, d.avg_connect_ms, d.connect_count);
        s.connect_count += d.connect_count;

        let start = d.day.and_hms_opt(0, 0, 0).expect("midnight").and_utc().max(since);
        let bucket = start.timestamp().div_euclid(bucket_seconds) * bucket_seconds;
        let bucket = Utc.timestamp_opt(bucket, 0).unwrap();
        match points.iter_mut().find(|p| p.monitor_id == d.monitor_id && p.region == d.region && p.bucket == bucket) {
            Some(p) => {
                p.avg_ms = weighted(p.avg_ms, p.successful, d.avg_ms, d.successful);
                p.checks += d.checks;
                p.successful += d.successful;
            }
            None => points.push(SeriesPoint {
                monitor_id: d.monitor_id,
                region: d.region,
                bucket,
                checks: d.checks,
                successful: d.successful,
                avg_ms: d.avg_ms,
            }),
        }
    }
    stats.sort_by(|a, b| (a.monitor_id, &a.region).cmp(&(b.monitor_id, &b.region)));
}

fn assemble(
    monitors: &[Monitor],
    stats: Vec<RegionStats>,
    points: Vec<SeriesPoint>,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    bucket_seconds: i64,
) -> Report {
    let grid = bucket_grid(since, until, bucket_seconds);
    let mut by_bucket: HashMap<(Uuid, String, i64), SeriesPoint> =
        points.into_iter().map(|p| ((p.monitor_id, p.region.clone(), p.bucket.timestamp()), p)).collect();
    let mut regions_of: HashMap<Uuid, Vec<RegionReport>> = HashMap::new();
    for stats in stats {
        let series = grid
            .iter()
            .map(|&start| match by_bucket.remove(&(stats.monitor_id, stats.region.clone(), start)) {
                Some(p) => Bucket { start: p.bucket, checks: p.checks, successful: p.successful, avg_ms: p.avg_ms },
                None => Bucket { start: Utc.timestamp_opt(start, 0).unwrap(), checks: 0, successful: 0, avg_ms: None },
            })
            .collect();
        regions_of.entry(stats.monitor_id).or_default().push(RegionReport {
            stats,
            series,
            landed: Vec::new(),
            median_hop_count: None,
        });
    }
    let monitors = monitors
        .iter()
        .map(|m| {
            let mut regions = regions_of.remove(&m.id).unwrap_or_default();
            regions.sort_by(|a, b| a.stats.region.cmp(&b.stats.region));
            MonitorReport { monitor_id: m.id, name: m.name.clone(), regions }
        })
        .collect();
    Report { since, until, bucket_seconds, summarized_until: None, monitors, open_incidents: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn about_sixty_aligned_buckets_cover_the_window() {
        let until = at("2026-03-01T12:34:56Z");
        let since = window(until, Duration::from_secs(24 * 3600));
        let size = bucket_seconds(since, until);
        assert_eq!(size, 24 * 60);
        let grid = bucket_grid(since, until, size);
        assert!(grid.len() == 60 || grid.len() == 61, "{} buckets", grid.len());
        assert!(grid[0] <= since.timestamp() && since.timestamp() < grid[0] + size);
        assert!(*grid.last().unwrap() <= until.timestamp() && until.timestamp() < grid.last().unwrap() + size);
        assert!(grid.iter().all(|s| s % size == 0));
    }

    #[test]
    fn short_and_absurd_windows_stay_finite() {
        let until = at("2026-03-01T00:00:00Z");
        let since = window(until, Duration::from_secs(30));
        assert_eq!(bucket_seconds(since, until), 1);
        assert!(bucket_grid(since, until, 1).len() <= 31);
        let since = window(until, Duration::from_secs(u64::MAX));
        assert_eq!(since, DateTime::UNIX_EPOCH);
        let size = bucket_seconds(since, until);
        assert!(bucket_grid(since, until, size).len() <= 61);
    }
}
