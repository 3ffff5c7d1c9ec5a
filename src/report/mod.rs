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

/// About this many buckets per chart: enough to see a shape, few enough for
/// one terminal line.
pub const BUCKETS: i64 = 60;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub bucket_seconds: i64,
    pub monitors: Vec<MonitorReport>,
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

    /// Every region code in the report, sorted: charts give each the same colour everywhere.
    pub fn region_codes(&self) -> Vec<&str> {
        let mut codes: Vec<&str> =
            self.monitors.iter().flat_map(|m| m.regions.iter().map(|r| r.stats.region.as_str())).collect();
        codes.sort_unstable();
        codes.dedup();
        codes
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

/// Reads the statistics and series of `monitors` over `[since, until]`.
pub async fn build(
    pool: &PgPool,
    monitors: &[Monitor],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Report, sqlx::Error> {
    let ids: Vec<Uuid> = monitors.iter().map(|m| m.id).collect();
    let bucket_seconds = bucket_seconds(since, until);
    let stats = query::region_stats(pool, &ids, since).await?;
    let points = query::series(pool, &ids, since, bucket_seconds).await?;
    Ok(assemble(monitors, stats, points, since, until, bucket_seconds))
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
        regions_of.entry(stats.monitor_id).or_default().push(RegionReport { stats, series });
    }
    let monitors = monitors
        .iter()
        .map(|m| {
            let mut regions = regions_of.remove(&m.id).unwrap_or_default();
            regions.sort_by(|a, b| a.stats.region.cmp(&b.stats.region));
            MonitorReport { monitor_id: m.id, name: m.name.clone(), regions }
        })
        .collect();
    Report { since, until, bucket_seconds, monitors }
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
