//! Reports over a time window: for each monitor and each region that measured
//! it, uptime, exact percentiles, average phase times, and average response
//! time per time bucket. The model serialises as it is (JSON/YAML); [`spark`]
//! draws it for a terminal and [`html`] as one self-contained page.

pub mod html;
pub mod spark;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone as _, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::monitor::Monitor;
use crate::results::query::{self, RegionStats, SeriesPoint, Span};
use crate::results::summary;

/// About this many buckets per chart: enough to see a shape, few enough for
/// one terminal line.
pub const BUCKETS: i64 = 60;

/// The bucket of a report that reads daily summaries.
const DAY_SECONDS: i64 = 86_400;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub bucket_seconds: i64,
    /// Set when whole UTC days of the window were read from the daily summaries (a window longer
    /// than a day, or one reaching before the prune horizon): from `summarized_since` to `summarized_until`, checks, uptime,
    /// the response, DNS and connect averages and the series (a bucket per day) come from the
    /// summaries; percentiles, the TLS and first-byte averages and where checks landed cover
    /// only the results outside that span. See [`plan`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summarized_since: Option<DateTime<Utc>>,
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

/// A row of [`landings`]: one place of one region, or (`whole`) the region's every check.
#[derive(sqlx::FromRow)]
struct LandingRow {
    monitor_id: Uuid,
    region: String,
    country: Option<String>,
    city: Option<String>,
    asn: Option<i64>,
    isp: Option<String>,
    checks: i64,
    median_hops: Option<f64>,
    whole: bool,
}

/// Where each region's checks landed and its median hop count over the results of `spans`.
/// One scan of the metrics for both: the region's own group (its checks, for the shares, and its
/// median route) and its places are two grouping sets of the same rows, one sort serving both.
async fn landings(
    pool: &PgPool,
    ids: &[Uuid],
    spans: &[Span],
) -> Result<(Vec<Landing>, Vec<(Uuid, String, Option<f64>)>), sqlx::Error> {
    if spans.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let sql = format!(
        "SELECT monitor_id, region_code AS region, country_code::text AS country, city, asn, isp,
            count(*) AS checks,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY hop_count) FILTER (WHERE hop_count IS NOT NULL)
                AS median_hops,
            GROUPING(country_code, city, asn, isp) <> 0 AS whole
         FROM regional_performance_metrics
         WHERE monitor_id = ANY($1) AND {}
         GROUP BY GROUPING SETS ((monitor_id, region_code), (monitor_id, region_code, country_code, city, asn, isp))
         ORDER BY monitor_id, region, whole DESC, checks DESC, country, city, asn",
        query::spans_sql("checked_at", spans, 2)
    );
    let rows: Vec<LandingRow> = query::bind_spans(sqlx::query_as(&sql).bind(ids), spans).fetch_all(pool).await?;
    let (mut landed, mut hops) = (Vec::new(), Vec::new());
    // Each region's own row comes first, before its places.
    let mut region_checks = 0;
    for row in rows {
        if row.whole {
            region_checks = row.checks;
            hops.push((row.monitor_id, row.region, row.median_hops));
        } else if row.country.is_some() || row.city.is_some() || row.asn.is_some() || row.isp.is_some() {
            landed.push(Landing {
                monitor_id: row.monitor_id,
                region: row.region,
                country: row.country,
                city: row.city,
                asn: row.asn,
                isp: row.isp,
                checks: row.checks,
                share: 100.0 * row.checks as f64 / region_checks.max(1) as f64,
            });
        }
    }
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

/// The times of a region's summary row, in the column order both the table and the page use:
/// p50, p95, p99, then the average DNS, connect, TLS, first byte and total.
pub fn summary_times(s: &RegionStats) -> [Option<f64>; 8] {
    [s.p50_ms, s.p95_ms, s.p99_ms, s.avg_dns_ms, s.avg_connect_ms, s.avg_tls_ms, s.avg_first_byte_ms, s.avg_ms]
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

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).expect("midnight").and_utc()
}

/// Where a report reads each part of its window from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Results read row by row: the partial days at the window's edges (at most two spans).
    pub raw: Vec<Span>,
    /// Days `[from, until)` read from their daily summaries.
    pub days: Option<(NaiveDate, NaiveDate)>,
}

/// Splits the window `[since, end)` into the days its daily summaries answer and the results
/// read row by row. A window longer than a day reads from summaries each day it covers whole,
/// and its last day when no result of that day comes after `end` (`last_day_ends_at_end`: the
/// day's running totals are then exactly the window's part of it, as in a report up to now);
/// any window reads the days before `pruned_first` (the first whole day after the prune
/// horizon) from their summaries, all that is left of them. The rest (the partial day at the
/// start, and the last one when later results exist) is read from results: about a day at most
/// however long the window. A window of a day or less (the default 24 hours) is read from
/// results alone, as exact as ever: its percentiles cover all of it and its chart keeps buckets
/// shorter than a day.
pub fn plan(
    since: DateTime<Utc>,
    end: DateTime<Utc>,
    pruned_first: Option<NaiveDate>,
    last_day_ends_at_end: bool,
) -> Plan {
    let first_day = since.date_naive();
    let from = if midnight(first_day) == since { first_day } else { first_day.succ_opt().expect("a day after") };
    let last = end - chrono::Duration::microseconds(1);
    let mut until = if midnight(end.date_naive()) == end { end.date_naive() } else { last.date_naive() };
    if last_day_ends_at_end {
        until = until.max(last.date_naive().succ_opt().expect("a day after"));
    }
    let mut from = from;
    if last - since <= chrono::Duration::days(1) {
        until = from;
    }
    if let Some(pruned_first) = pruned_first.filter(|p| midnight(*p) > since) {
        from = first_day;
        until = until.max(pruned_first.min(last.date_naive().succ_opt().expect("a day after")));
    }
    if from >= until {
        return Plan { raw: vec![Span { from: since, to: end }], days: None };
    }
    let mut raw = Vec::new();
    if since < midnight(from) {
        raw.push(Span { from: since, to: midnight(from) });
    }
    if midnight(until) < end {
        raw.push(Span { from: midnight(until), to: end });
    }
    Plan { raw, days: Some((from, until)) }
}

/// Whether any of `ids` has a result checked from `end` to the end of its day.
async fn later_results_that_day(pool: &PgPool, ids: &[Uuid], end: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    let day_end = midnight((end - chrono::Duration::microseconds(1)).date_naive() + chrono::Days::new(1));
    if day_end <= end {
        return Ok(false);
    }
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM monitor_results
                        WHERE monitor_id = ANY($1) AND checked_at >= $2 AND checked_at < $3)",
    )
    .bind(ids)
    .bind(end)
    .bind(day_end)
    .fetch_one(pool)
    .await
}

/// Where a report over `[since, until]` of `ids` reads each part of its window from (see
/// [`plan`]), and its bucket size.
async fn read_plan(
    pool: &PgPool,
    ids: &[Uuid],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<(Plan, i64), sqlx::Error> {
    // The window inclusive of `until`, as a half-open range at the database's precision.
    let end = until + chrono::Duration::microseconds(1);
    // A window of a day or less reads its last day from results whatever comes after it (see
    // [`plan`]): no need to ask.
    let short = end - since <= chrono::Duration::days(1) + chrono::Duration::microseconds(1);
    let (pruned, later) = tokio::try_join!(summary::pruned_before(pool), async {
        if short {
            Ok(false)
        } else {
            later_results_that_day(pool, ids, end).await
        }
    })?;
    let plan = plan(since, end, pruned.map(summary::first_whole_day), !later);
    let bucket_seconds = if plan.days.is_some() { DAY_SECONDS } else { bucket_seconds(since, until) };
    Ok((plan, bucket_seconds))
}

/// The daily summaries of the plan's days, if it has any.
async fn planned_days(pool: &PgPool, ids: &[Uuid], plan: &Plan) -> Result<Vec<query::DaySummary>, sqlx::Error> {
    match plan.days {
        Some((from, to)) => query::day_summaries(pool, ids, from, to).await,
        None => Ok(Vec::new()),
    }
}

/// The part of `[since, until]` the plan reads from daily summaries.
fn summarized(
    plan: &Plan,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    match plan.days {
        Some((from, to)) => (Some(midnight(from).max(since)), Some(midnight(to).min(until))),
        None => (None, None),
    }
}

/// Reads the statistics and series of `monitors` over `[since, until]`: whole days from their
/// daily summaries and the partial edges from results (see [`plan`]), so a report over weeks
/// reads about as many rows as one over a day. A report that reads summaries has a bucket per
/// UTC day, the summaries' grain. Its queries are independent once the plan is known, so they
/// run side by side, each on a connection of its own.
pub async fn build(
    pool: &PgPool,
    monitors: &[Monitor],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Report, sqlx::Error> {
    let ids: Vec<Uuid> = monitors.iter().map(|m| m.id).collect();
    let (plan, bucket_seconds) = read_plan(pool, &ids, since, until).await?;
    let (mut stats, mut points, days, (landed, hops)) = tokio::try_join!(
        query::region_stats(pool, &ids, &plan.raw),
        query::series(pool, &ids, &plan.raw, bucket_seconds),
        planned_days(pool, &ids, &plan),
        landings(pool, &ids, &plan.raw),
    )?;
    merge_summaries(&mut stats, &mut points, days, since, bucket_seconds);
    let mut report = assemble(monitors, stats, points, since, until, bucket_seconds);
    (report.summarized_since, report.summarized_until) = summarized(&plan, since, until);
    for region in report.monitors.iter_mut().flat_map(|m| m.regions.iter_mut()) {
        let key = (region.stats.monitor_id, region.stats.region.as_str());
        region.landed = landed.iter().filter(|l| (l.monitor_id, l.region.as_str()) == key).cloned().collect();
        region.median_hop_count =
            hops.iter().find(|(m, r, _)| (*m, r.as_str()) == key).and_then(|(_, _, median)| *median);
    }
    Ok(report)
}

/// Each monitor's per-region statistics over `[since, until]`, read as [`build`] reads them.
#[derive(Debug, Clone)]
pub struct Stats {
    /// As [`Report::summarized_since`] and [`Report::summarized_until`].
    pub summarized_since: Option<DateTime<Utc>>,
    pub summarized_until: Option<DateTime<Utc>>,
    /// By monitor, then region.
    pub regions: Vec<RegionStats>,
}

/// The statistics of [`build`] without its series and landings, for a page that shows only
/// figures (the dashboard's region cards over every monitor): the same plan and merge, two
/// queries fewer, and no scan of the metrics.
pub async fn stats(
    pool: &PgPool,
    ids: &[Uuid],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Stats, sqlx::Error> {
    let (plan, bucket_seconds) = read_plan(pool, ids, since, until).await?;
    let (mut regions, days) =
        tokio::try_join!(query::region_stats(pool, ids, &plan.raw), planned_days(pool, ids, &plan))?;
    // The series the merge also fills is not wanted here.
    merge_summaries(&mut regions, &mut Vec::new(), days, since, bucket_seconds);
    let (summarized_since, summarized_until) = summarized(&plan, since, until);
    Ok(Stats { summarized_since, summarized_until, regions })
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
    Report {
        since,
        until,
        bucket_seconds,
        summarized_since: None,
        summarized_until: None,
        monitors,
        open_incidents: Vec::new(),
    }
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

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn span(from: &str, to: &str) -> Span {
        Span { from: at(from), to: at(to) }
    }

    #[test]
    fn a_week_up_to_now_reads_its_first_partial_day_from_results_and_the_rest_from_summaries() {
        let p = plan(at("2026-03-01T21:30:00Z"), at("2026-03-08T21:30:00Z"), None, true);
        assert_eq!(p.days, Some((day("2026-03-02"), day("2026-03-09"))));
        assert_eq!(p.raw, [span("2026-03-01T21:30:00Z", "2026-03-02T00:00:00Z")]);
        // Results after the window's end on its last day: that day is read from results too.
        let p = plan(at("2026-03-01T21:30:00Z"), at("2026-03-08T21:30:00Z"), None, false);
        assert_eq!(p.days, Some((day("2026-03-02"), day("2026-03-08"))));
        assert_eq!(
            p.raw,
            [
                span("2026-03-01T21:30:00Z", "2026-03-02T00:00:00Z"),
                span("2026-03-08T00:00:00Z", "2026-03-08T21:30:00Z")
            ]
        );
    }

    #[test]
    fn windows_on_midnights_need_no_results_and_short_ones_no_summaries() {
        let p = plan(at("2026-03-01T00:00:00Z"), at("2026-03-03T00:00:00Z"), None, false);
        assert_eq!((p.days, p.raw), (Some((day("2026-03-01"), day("2026-03-03"))), vec![]));
        // Under a day, across midnight: results alone, whatever the last day holds.
        let p = plan(at("2026-03-01T22:00:00Z"), at("2026-03-02T01:00:00Z"), None, true);
        assert_eq!((p.days, p.raw), (None, vec![span("2026-03-01T22:00:00Z", "2026-03-02T01:00:00Z")]));
        // A day exactly (the default report), across midnight: results alone.
        let p = plan(at("2026-03-01T06:00:00Z"), at("2026-03-02T06:00:00.000001Z"), None, true);
        assert_eq!((p.days, p.raw), (None, vec![span("2026-03-01T06:00:00Z", "2026-03-02T06:00:00.000001Z")]));
        // A bit more: the last day from its running totals.
        let p = plan(at("2026-03-01T05:00:00Z"), at("2026-03-02T06:00:00Z"), None, true);
        assert_eq!(p.days, Some((day("2026-03-02"), day("2026-03-03"))));
        assert_eq!(p.raw, [span("2026-03-01T05:00:00Z", "2026-03-02T00:00:00Z")]);
    }

    #[test]
    fn days_before_the_prune_horizon_come_from_summaries_even_in_a_short_window() {
        // The horizon cut into Mar 3: its summary and the days before are all that is left.
        let p = plan(at("2026-03-01T12:00:00Z"), at("2026-03-10T12:00:00Z"), Some(day("2026-03-04")), false);
        assert_eq!(p.days, Some((day("2026-03-01"), day("2026-03-10"))));
        assert_eq!(p.raw, [span("2026-03-10T00:00:00Z", "2026-03-10T12:00:00Z")]);
        let p = plan(at("2026-03-03T12:00:00Z"), at("2026-03-04T06:00:00Z"), Some(day("2026-03-04")), false);
        assert_eq!(p.days, Some((day("2026-03-03"), day("2026-03-04"))));
        assert_eq!(p.raw, [span("2026-03-04T00:00:00Z", "2026-03-04T06:00:00Z")]);
        // Nor does what follows a short window matter (`read_plan` does not ask for it).
        let later = plan(at("2026-03-03T12:00:00Z"), at("2026-03-04T06:00:00Z"), Some(day("2026-03-04")), true);
        assert_eq!(later, p);
        // A horizon before the window changes nothing.
        let p = plan(at("2026-03-05T12:00:00Z"), at("2026-03-05T18:00:00Z"), Some(day("2026-03-04")), false);
        assert_eq!(p.days, None);
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
