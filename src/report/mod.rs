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
    /// Set when part of the window was read from summaries: whole UTC days from the daily ones (a
    /// window longer than a day, or one reaching before the prune horizon; a bucket per day),
    /// whole hours from the hourly ones (a window longer than six hours; a bucket per hour, or
    /// per day beside days). From `summarized_since` to `summarized_until`, checks, uptime, the
    /// response, DNS and connect averages (and TLS and first byte over the hours) and the series
    /// come from the summaries. Percentiles then come from the response-time histograms of the
    /// hours and of the results at the edges (within `histogram::MAX_RELATIVE_ERROR`, 4.9 %),
    /// and cover the window less its whole days; where checks landed and the median hop count
    /// (exact) too, from the hours' landing counts and the edges' metrics rows. See [`plan`].
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

/// One place a region's checks landed, with the histogram of their routes' hop counts, as
/// [`landings`] reads it: unlocated checks are a place too, whose share and hops count.
#[derive(sqlx::FromRow)]
struct Place {
    #[sqlx(flatten)]
    landing: Landing,
    hops: Option<crate::results::histogram::Counts>,
}

/// Where each region's checks landed and its median hop count: over the metrics rows of `raw`, and
/// the hourly landing counts of the whole hours in `hours`, added up, in one pass over each.
async fn landings(
    pool: &PgPool,
    ids: &[Uuid],
    raw: &[Span],
    hours: &[Span],
) -> Result<(Vec<Landing>, Vec<(Uuid, String, Option<f64>)>), sqlx::Error> {
    if raw.is_empty() && hours.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    // Parameters: $1 the monitors, then the raw spans' ends, then the hours'.
    let hours_from = 2 + 2 * raw.len();
    let mut parts = Vec::new();
    if !raw.is_empty() {
        let spans = query::spans_sql("checked_at", raw, 2);
        parts.push(format!(
            "SELECT monitor_id, region_code, country_code::text AS country_code, city, asn, isp, count(*) AS checks,
                    geoctl_histogram(array_agg(hop_count) FILTER (WHERE hop_count >= 0)) AS counts
             FROM regional_performance_metrics WHERE monitor_id = ANY($1) AND {spans}
             GROUP BY 1, 2, 3, 4, 5, 6"
        ));
    }
    if !hours.is_empty() {
        let spans = query::spans_sql("hour", hours, hours_from);
        parts.push(format!(
            "SELECT monitor_id, region_code, country_code, city, asn, isp, checks, hop_counts AS counts
             FROM regional_monitor_hourly_landings WHERE monitor_id = ANY($1) AND {spans}"
        ));
    }
    let places = format!(
        "SELECT monitor_id, region_code AS region, country_code AS country, city, asn, isp,
            sum(checks)::int8 AS checks,
            (100.0 * sum(checks) / sum(sum(checks)) OVER (PARTITION BY monitor_id, region_code))::float8 AS share,
            geoctl_histogram_sum(counts) AS hops
         FROM ({}) u
         GROUP BY monitor_id, region_code, country_code, city, asn, isp
         ORDER BY monitor_id, region, checks DESC, country, city, asn",
        parts.join(" UNION ALL ")
    );
    let places: Vec<Place> =
        query::bind_spans(query::bind_spans(sqlx::query_as(&places).bind(ids), raw), hours).fetch_all(pool).await?;
    let mut added: HashMap<(Uuid, String), Vec<i64>> = HashMap::new();
    let mut landed = Vec::with_capacity(places.len());
    for Place { landing, hops } in places {
        if let Some(hops) = hops {
            crate::results::histogram::add(
                added.entry((landing.monitor_id, landing.region.clone())).or_default(),
                &hops.0,
            );
        }
        let l = &landing;
        // Checks no GeoIP database located count in the shares, and are not a place to show.
        if l.country.is_some() || l.city.is_some() || l.asn.is_some() || l.isp.is_some() {
            landed.push(landing);
        }
    }
    // percentile_cont's median of the hop counts, exactly: a hop count is its own bucket.
    let medians = added
        .into_iter()
        .map(|((m, r), counts)| (m, r, crate::results::histogram::percentile_by(&counts, 0.5, |i| i as f64)))
        .collect();
    Ok((landed, medians))
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

/// The bucket of a report that reads hourly summaries and no daily ones.
const HOUR_SECONDS: i64 = 3_600;

/// Windows up to this long are read from results alone: percentiles over all of the window, and
/// about [`BUCKETS`] buckets shorter than an hour. Longer ones read whole hours from the hourly
/// summaries.
const RESULTS_ONLY_UP_TO: chrono::Duration = chrono::Duration::hours(6);

/// Where a report reads each part of its window from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Results read row by row: the partial hours at the window's edges, and any hour before the
    /// hourly summaries begin (see migration `20261207100001`).
    pub raw: Vec<Span>,
    /// Whole hours read from their hourly summaries (at most two spans, one each side of the days).
    pub hours: Vec<Span>,
    /// Days `[from, until)` read from their daily summaries.
    pub days: Option<(NaiveDate, NaiveDate)>,
}

/// Whether results were checked after a window's end, within the UTC day and the hour it ends in:
/// if not, that day's (hour's) running totals are exactly the window's part of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Later {
    pub in_day: bool,
    pub in_hour: bool,
}

/// Splits the window `[since, end)` into days read from their daily summaries, hours read from
/// their hourly summaries, and the results read row by row.
///
/// Days: a window longer than a day reads from summaries each day it covers whole, and its last
/// day when no result of that day comes after `end` (as in a report up to now); any window reads
/// the days before `pruned_first` (the first whole day after the prune horizon) from their
/// summaries, all that is left of them. Hours: what is left of a window longer than
/// [`RESULTS_ONLY_UP_TO`] is read from hourly summaries for each hour it covers whole from
/// `hours_from` on (`None`: they hold every hour), and its last hour when no result of that hour
/// comes after `end`. The rest, the partial hours at the edges, is read from results: at most two
/// hours however long the window. A shorter window is read from results alone, as exact as ever.
pub fn plan(
    since: DateTime<Utc>,
    end: DateTime<Utc>,
    pruned_first: Option<NaiveDate>,
    hours_from: Option<DateTime<Utc>>,
    later: Later,
) -> Plan {
    let (raw, days) = plan_days(since, end, pruned_first, !later.in_day);
    let mut plan = Plan { raw: Vec::new(), hours: Vec::new(), days };
    if end - chrono::Duration::microseconds(1) - since <= RESULTS_ONLY_UP_TO {
        plan.raw = raw;
        return plan;
    }
    for span in raw {
        split_hours(span, hours_from, span.to == end && !later.in_hour, &mut plan);
    }
    plan
}

/// The days part of [`plan`]: the spans left to read otherwise, and the days.
fn plan_days(
    since: DateTime<Utc>,
    end: DateTime<Utc>,
    pruned_first: Option<NaiveDate>,
    last_day_ends_at_end: bool,
) -> (Vec<Span>, Option<(NaiveDate, NaiveDate)>) {
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
        return (vec![Span { from: since, to: end }], None);
    }
    let mut raw = Vec::new();
    if since < midnight(from) {
        raw.push(Span { from: since, to: midnight(from) });
    }
    if midnight(until) < end {
        raw.push(Span { from: midnight(until), to: end });
    }
    (raw, Some((from, until)))
}

fn hour_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_opt(t.timestamp().div_euclid(HOUR_SECONDS) * HOUR_SECONDS, 0).unwrap()
}

fn hour_ceil(t: DateTime<Utc>) -> DateTime<Utc> {
    let floor = hour_floor(t);
    if floor == t {
        t
    } else {
        floor + chrono::Duration::seconds(HOUR_SECONDS)
    }
}

/// Reads the whole hours of `span` from `hours_from` on from their summaries (and the hour it
/// ends in, when `whole_last_hour`), the rest from results.
fn split_hours(span: Span, hours_from: Option<DateTime<Utc>>, whole_last_hour: bool, plan: &mut Plan) {
    let from = hour_ceil(hours_from.map_or(span.from, |h| h.max(span.from)));
    let to = if whole_last_hour { hour_ceil(span.to) } else { hour_floor(span.to) };
    if from >= to {
        plan.raw.push(span);
        return;
    }
    if span.from < from {
        plan.raw.push(Span { from: span.from, to: from });
    }
    plan.hours.push(Span { from, to });
    if to < span.to {
        plan.raw.push(Span { from: to, to: span.to });
    }
}

/// Whether any of `ids` has a result checked from `end` to the end of its day, and of its hour.
async fn later_results(pool: &PgPool, ids: &[Uuid], end: DateTime<Utc>) -> Result<Later, sqlx::Error> {
    let last = end - chrono::Duration::microseconds(1);
    let day_end = midnight(last.date_naive() + chrono::Days::new(1));
    let hour_end = hour_floor(last) + chrono::Duration::seconds(HOUR_SECONDS);
    let first: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT min(checked_at) FROM monitor_results WHERE monitor_id = ANY($1) AND checked_at >= $2 AND checked_at < $3",
    )
    .bind(ids)
    .bind(end)
    .bind(day_end)
    .fetch_one(pool)
    .await?;
    Ok(Later { in_day: first.is_some(), in_hour: first.is_some_and(|t| t < hour_end) })
}

/// What [`build`] and [`stats`] read: the plan of the window, its bucket size, each region's
/// statistics and, when asked, the series.
struct Read {
    plan: Plan,
    bucket_seconds: i64,
    stats: Vec<RegionStats>,
    points: Vec<SeriesPoint>,
}

/// Where [`read`] reads each part of `[since, until]` from for `ids` (see [`plan`]): the prune
/// horizon, where the hourly summaries begin, whether results come after it, and the hours
/// marked stale, which move to the results.
async fn plan_for(
    pool: &PgPool,
    ids: &[Uuid],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Plan, sqlx::Error> {
    // Inclusive of `until`, at the database's precision (microseconds): the plan's spans end
    // before `end`.
    let end = until + chrono::Duration::microseconds(1);
    let (pruned, hours_from, later) = tokio::try_join!(
        summary::pruned_before(pool),
        summary::hours_complete_from(pool),
        later_results(pool, ids, end),
    )?;
    let mut plan = plan(since, end, pruned.map(summary::first_whole_day), hours_from, later);
    if !plan.hours.is_empty() {
        let stale: Vec<DateTime<Utc>> =
            sqlx::query_scalar("SELECT hour FROM hourly_summaries_stale WHERE hour >= $1 AND hour < $2 ORDER BY hour")
                .bind(hour_floor(since))
                .bind(end)
                .fetch_all(pool)
                .await?;
        read_from_results(&mut plan, &stale);
    }
    Ok(plan)
}

/// Reads the statistics (and with `series` the series) of `ids` over `[since, until]` as `plan`
/// ([`plan_for`]) says: whole days from their daily summaries, whole hours from their hourly
/// summaries and the partial edges from results. The reads are independent and run side by
/// side, each on a connection of its own.
///
/// With hours to read, each source is read once, in the same shape (counts, sums and a
/// histogram per monitor, region and bucket: [`query::Summed`]), and added up here: the
/// percentiles come from the histograms, within `histogram::MAX_RELATIVE_ERROR`, without sorting
/// every time. Without (a window of six hours or less), or when the hours counted no successful
/// check, the results are read row by row, with exact percentiles (`percentile_cont`) and
/// buckets of minutes.
async fn read(
    pool: &PgPool,
    ids: &[Uuid],
    mut plan: Plan,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    series: bool,
) -> Result<Read, sqlx::Error> {
    // The summaries' grain: a bucket per day beside days, else per hour.
    let grain = if plan.days.is_some() { DAY_SECONDS } else { HOUR_SECONDS };
    let days = async {
        match plan.days {
            Some(days) => query::summed_days(pool, ids, days, since, DAY_SECONDS).await,
            None => Ok(Vec::new()),
        }
    };
    let (mut summed, edges, days) = if plan.hours.is_empty() {
        (Vec::new(), None, days.await?)
    } else {
        tokio::try_join!(
            query::summed(pool, query::Grain::Hours, ids, &plan.hours, since, grain),
            async { query::summed(pool, query::Grain::Results, ids, &plan.raw, since, grain).await.map(Some) },
            days,
        )?
    };
    // The hours hold nothing for these monitors (say, every row was written around geoctl): the
    // report is the one results alone give, with buckets of minutes and exact percentiles.
    if summed.is_empty() {
        plan.hours.clear();
    }
    let bucket_seconds = match (&plan.days, plan.hours.is_empty()) {
        (Some(_), _) => DAY_SECONDS,
        (None, false) => HOUR_SECONDS,
        (None, true) => bucket_seconds(since, until),
    };
    let from_histograms = summed.iter().any(|s| s.histogram.is_some());
    let (mut stats, mut points) = match edges {
        Some(edges) if from_histograms => {
            summed.extend(edges);
            (Vec::new(), Vec::new())
        }
        _ => tokio::try_join!(query::region_stats(pool, ids, &plan.raw), async {
            match series {
                true => query::series(pool, ids, &plan.raw, bucket_seconds).await,
                false => Ok(Vec::new()),
            }
        })?,
    };
    summed.extend(days);
    // Each region's histograms added up, taken out before the merge consumes the rows.
    let mut histograms: HashMap<Uuid, HashMap<String, Vec<i64>>> = HashMap::new();
    for s in summed.iter_mut() {
        let Some(counts) = s.histogram.take() else { continue };
        let regions = histograms.entry(s.monitor_id).or_default();
        if !regions.contains_key(&s.region) {
            regions.insert(s.region.clone(), Vec::new());
        }
        let added = regions.get_mut(&s.region).expect("inserted above");
        crate::results::histogram::add(added, &counts.0);
    }
    merge_summaries(&mut stats, &mut points, summed);
    if from_histograms {
        percentiles_from_histograms(&mut stats, &histograms);
    }
    if !series {
        // The merge also made points of the summaries' buckets; nobody asked for them.
        points.clear();
    }
    Ok(Read { plan, bucket_seconds, stats, points })
}

/// The part of `[since, until]` a plan reads from summaries, daily or hourly.
fn summarized(
    plan: &Plan,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let starts = plan.hours.iter().map(|h| h.from).chain(plan.days.map(|(from, _)| midnight(from)));
    let ends = plan.hours.iter().map(|h| h.to).chain(plan.days.map(|(_, to)| midnight(to)));
    (starts.min().map(|s| s.max(since)), ends.max().map(|e| e.min(until)))
}

/// Reads the statistics and series of `monitors` over `[since, until]` ([`read`]) and where
/// their checks landed. A report that reads daily summaries has a bucket per UTC day, one that
/// reads hourly ones a bucket per hour: the summaries' grains.
pub async fn build(
    pool: &PgPool,
    monitors: &[Monitor],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Report, sqlx::Error> {
    let ids: Vec<Uuid> = monitors.iter().map(|m| m.id).collect();
    let plan = plan_for(pool, &ids, since, until).await?;
    // Where checks landed, exactly, over the window less its whole days: the hours' landing counts
    // and the edges' metrics rows, read beside the figures.
    let (Read { plan, bucket_seconds, stats, points }, (landed, hops)) = tokio::try_join!(
        read(pool, &ids, plan.clone(), since, until, true),
        landings(pool, &ids, &plan.raw, &plan.hours),
    )?;
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
/// figures (the dashboard's region cards over every monitor): the same plan and merge, and no
/// scan of the metrics.
pub async fn stats(
    pool: &PgPool,
    ids: &[Uuid],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Stats, sqlx::Error> {
    let plan = plan_for(pool, ids, since, until).await?;
    let Read { plan, stats, .. } = read(pool, ids, plan, since, until, false).await?;
    let (summarized_since, summarized_until) = summarized(&plan, since, until);
    Ok(Stats { summarized_since, summarized_until, regions: stats })
}

/// Moves the hours in `stale` (sorted; hours holding rows no summary counted, see migration
/// `20261207100001`) out of the plan's hours into the spans read from results.
fn read_from_results(plan: &mut Plan, stale: &[DateTime<Utc>]) {
    let hour = chrono::Duration::seconds(HOUR_SECONDS);
    let mut hours = Vec::new();
    for span in std::mem::take(&mut plan.hours) {
        let mut from = span.from;
        for &h in stale.iter().filter(|h| span.from <= **h && **h < span.to) {
            if from < h {
                hours.push(Span { from, to: h });
            }
            plan.raw.push(Span { from: h, to: h + hour });
            from = h + hour;
        }
        if from < span.to {
            hours.push(Span { from, to: span.to });
        }
    }
    plan.hours = hours;
    // Adjacent spans as one: fewer ranges for the planner to prune partitions by.
    plan.raw.sort_by_key(|s| s.from);
    let mut raw: Vec<Span> = Vec::with_capacity(plan.raw.len());
    for span in plan.raw.drain(..) {
        match raw.last_mut() {
            Some(last) if last.to == span.from => last.to = span.to,
            _ => raw.push(span),
        }
    }
    plan.raw = raw;
}

/// Sets each region's percentiles from its histograms (the hours' and the edges') added up,
/// by monitor, then region.
fn percentiles_from_histograms(stats: &mut [RegionStats], added: &HashMap<Uuid, HashMap<String, Vec<i64>>>) {
    for s in stats {
        let counts = added.get(&s.monitor_id).and_then(|r| r.get(&s.region)).map_or(&[][..], |c| c.as_slice());
        let p = |q| crate::results::histogram::percentile(counts, q);
        (s.p50_ms, s.p95_ms, s.p99_ms) = (p(0.50), p(0.95), p(0.99));
    }
}

/// Adds `count` values summing to `sum` to `mean`, an average over `n` values.
fn add_mean(mean: &mut Option<f64>, n: &mut i64, sum: Option<f64>, count: i64) {
    let Some(sum) = sum.filter(|_| count > 0) else { return };
    *mean = Some(match *mean {
        Some(m) if *n > 0 => (m * *n as f64 + sum) / (*n + count) as f64,
        _ => sum / count as f64,
    });
    *n += count;
}

/// Adds summaries (added up per bucket) to the statistics and series read from results.
fn merge_summaries(stats: &mut Vec<RegionStats>, points: &mut Vec<SeriesPoint>, summed: Vec<query::Summed>) {
    let mut stat_at: HashMap<(Uuid, String), usize> =
        stats.iter().enumerate().map(|(i, s)| ((s.monitor_id, s.region.clone()), i)).collect();
    let mut point_at: HashMap<(Uuid, String, DateTime<Utc>), usize> =
        points.iter().enumerate().map(|(i, p)| ((p.monitor_id, p.region.clone(), p.bucket), i)).collect();
    for d in summed {
        let i = *stat_at.entry((d.monitor_id, d.region.clone())).or_insert_with(|| {
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
                tls_count: 0,
                first_byte_count: 0,
            });
            stats.len() - 1
        });
        let s = &mut stats[i];
        s.checks += d.checks;
        s.successful += d.successful;
        s.uptime_percentage = (s.checks > 0).then(|| 100.0 * s.successful as f64 / s.checks as f64);
        add_mean(&mut s.avg_ms, &mut s.response_count, d.response_sum, d.response_count);
        add_mean(&mut s.avg_dns_ms, &mut s.dns_count, d.dns_sum, d.dns_count);
        add_mean(&mut s.avg_connect_ms, &mut s.connect_count, d.connect_sum, d.connect_count);
        add_mean(&mut s.avg_tls_ms, &mut s.tls_count, d.tls_sum, d.tls_count);
        add_mean(&mut s.avg_first_byte_ms, &mut s.first_byte_count, d.first_byte_sum, d.first_byte_count);

        let key = (d.monitor_id, d.region, d.bucket);
        match point_at.get(&key) {
            Some(&j) => {
                let p = &mut points[j];
                // A bucket's average from results is over its successful checks.
                let mut n = p.successful;
                add_mean(&mut p.avg_ms, &mut n, d.response_sum, d.response_count);
                p.checks += d.checks;
                p.successful += d.successful;
            }
            None => {
                let mut avg_ms = None;
                add_mean(&mut avg_ms, &mut 0, d.response_sum, d.response_count);
                points.push(SeriesPoint {
                    monitor_id: key.0,
                    region: key.1.clone(),
                    bucket: key.2,
                    checks: d.checks,
                    successful: d.successful,
                    avg_ms,
                });
                point_at.insert(key, points.len() - 1);
            }
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

    /// The days part of the plan alone.
    fn day_plan(since: DateTime<Utc>, end: DateTime<Utc>, pruned_first: Option<NaiveDate>, whole_last: bool) -> Plan {
        let (raw, days) = plan_days(since, end, pruned_first, whole_last);
        Plan { raw, hours: Vec::new(), days }
    }

    const NONE_LATER: Later = Later { in_day: false, in_hour: false };

    #[test]
    fn a_day_up_to_now_reads_whole_hours_from_summaries_and_only_the_partial_first_one_from_results() {
        let (since, end) = (at("2026-03-01T12:34:56Z"), at("2026-03-02T12:34:56.000001Z"));
        let p = plan(since, end, None, None, NONE_LATER);
        assert_eq!(p.days, None);
        assert_eq!(p.hours, [span("2026-03-01T13:00:00Z", "2026-03-02T13:00:00Z")]);
        assert_eq!(p.raw, [span("2026-03-01T12:34:56Z", "2026-03-01T13:00:00Z")]);
        // Results after the end in its hour: that hour's part is read from results.
        let p = plan(since, end, None, None, Later { in_day: true, in_hour: true });
        assert_eq!(p.hours, [span("2026-03-01T13:00:00Z", "2026-03-02T12:00:00Z")]);
        assert_eq!(
            p.raw,
            [
                span("2026-03-01T12:34:56Z", "2026-03-01T13:00:00Z"),
                span("2026-03-02T12:00:00Z", "2026-03-02T12:34:56.000001Z")
            ]
        );
        // Later results that day but not that hour: the last hour still whole.
        let p = plan(since, end, None, None, Later { in_day: true, in_hour: false });
        assert_eq!(p.hours, [span("2026-03-01T13:00:00Z", "2026-03-02T13:00:00Z")]);
    }

    #[test]
    fn hours_before_the_hourly_summaries_begin_and_short_windows_are_read_from_results() {
        let (since, end) = (at("2026-03-01T12:34:56Z"), at("2026-03-02T12:00:00Z"));
        let p = plan(since, end, None, Some(at("2026-03-01T20:00:00Z")), NONE_LATER);
        assert_eq!(p.hours, [span("2026-03-01T20:00:00Z", "2026-03-02T12:00:00Z")]);
        assert_eq!(p.raw, [span("2026-03-01T12:34:56Z", "2026-03-01T20:00:00Z")]);
        // Hourly summaries that begin after the window: results alone.
        let p = plan(since, end, None, Some(at("2026-03-02T12:30:00Z")), NONE_LATER);
        assert_eq!((p.hours, p.raw), (vec![], vec![Span { from: since, to: end }]));
        // Six hours or less: results alone, exact percentiles and buckets under an hour.
        let p = plan(at("2026-03-01T06:10:00Z"), at("2026-03-01T12:10:00Z"), None, None, NONE_LATER);
        assert_eq!((p.hours, p.raw), (vec![], vec![span("2026-03-01T06:10:00Z", "2026-03-01T12:10:00Z")]));
    }

    #[test]
    fn marked_hours_move_from_the_summaries_to_results_joined_to_their_neighbours() {
        let mut p = plan(at("2026-03-01T12:34:56Z"), at("2026-03-02T12:00:00Z"), None, None, NONE_LATER);
        read_from_results(
            &mut p,
            &[at("2026-03-01T13:00:00Z"), at("2026-03-01T20:00:00Z"), at("2026-03-03T01:00:00Z")],
        );
        assert_eq!(
            p.hours,
            [
                span("2026-03-01T14:00:00Z", "2026-03-01T20:00:00Z"),
                span("2026-03-01T21:00:00Z", "2026-03-02T12:00:00Z")
            ]
        );
        assert_eq!(
            p.raw,
            [
                span("2026-03-01T12:34:56Z", "2026-03-01T14:00:00Z"),
                span("2026-03-01T20:00:00Z", "2026-03-01T21:00:00Z")
            ]
        );
    }

    #[test]
    fn a_week_reads_days_and_the_partial_first_day_by_the_hour() {
        let p = plan(at("2026-03-01T21:30:00Z"), at("2026-03-08T21:30:00Z"), None, None, NONE_LATER);
        assert_eq!(p.days, Some((day("2026-03-02"), day("2026-03-09"))));
        assert_eq!(p.hours, [span("2026-03-01T22:00:00Z", "2026-03-02T00:00:00Z")]);
        assert_eq!(p.raw, [span("2026-03-01T21:30:00Z", "2026-03-01T22:00:00Z")]);
        // The last day with later results: its whole hours too, then the partial one.
        let p = plan(
            at("2026-03-01T21:30:00Z"),
            at("2026-03-08T21:30:00Z"),
            None,
            None,
            Later { in_day: true, in_hour: true },
        );
        assert_eq!(p.days, Some((day("2026-03-02"), day("2026-03-08"))));
        assert_eq!(
            p.hours,
            [
                span("2026-03-01T22:00:00Z", "2026-03-02T00:00:00Z"),
                span("2026-03-08T00:00:00Z", "2026-03-08T21:00:00Z")
            ]
        );
        assert_eq!(
            p.raw,
            [
                span("2026-03-01T21:30:00Z", "2026-03-01T22:00:00Z"),
                span("2026-03-08T21:00:00Z", "2026-03-08T21:30:00Z")
            ]
        );
    }

    #[test]
    fn a_week_up_to_now_reads_its_first_partial_day_from_results_and_the_rest_from_summaries() {
        let p = day_plan(at("2026-03-01T21:30:00Z"), at("2026-03-08T21:30:00Z"), None, true);
        assert_eq!(p.days, Some((day("2026-03-02"), day("2026-03-09"))));
        assert_eq!(p.raw, [span("2026-03-01T21:30:00Z", "2026-03-02T00:00:00Z")]);
        // Results after the window's end on its last day: that day is read from results too.
        let p = day_plan(at("2026-03-01T21:30:00Z"), at("2026-03-08T21:30:00Z"), None, false);
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
        let p = day_plan(at("2026-03-01T00:00:00Z"), at("2026-03-03T00:00:00Z"), None, false);
        assert_eq!((p.days, p.raw), (Some((day("2026-03-01"), day("2026-03-03"))), vec![]));
        // Under a day, across midnight: results alone, whatever the last day holds.
        let p = day_plan(at("2026-03-01T22:00:00Z"), at("2026-03-02T01:00:00Z"), None, true);
        assert_eq!((p.days, p.raw), (None, vec![span("2026-03-01T22:00:00Z", "2026-03-02T01:00:00Z")]));
        // A day exactly (the default report), across midnight: results alone.
        let p = day_plan(at("2026-03-01T06:00:00Z"), at("2026-03-02T06:00:00.000001Z"), None, true);
        assert_eq!((p.days, p.raw), (None, vec![span("2026-03-01T06:00:00Z", "2026-03-02T06:00:00.000001Z")]));
        // A bit more: the last day from its running totals.
        let p = day_plan(at("2026-03-01T05:00:00Z"), at("2026-03-02T06:00:00Z"), None, true);
        assert_eq!(p.days, Some((day("2026-03-02"), day("2026-03-03"))));
        assert_eq!(p.raw, [span("2026-03-01T05:00:00Z", "2026-03-02T00:00:00Z")]);
    }

    #[test]
    fn days_before_the_prune_horizon_come_from_summaries_even_in_a_short_window() {
        // The horizon cut into Mar 3: its summary and the days before are all that is left.
        let p = day_plan(at("2026-03-01T12:00:00Z"), at("2026-03-10T12:00:00Z"), Some(day("2026-03-04")), false);
        assert_eq!(p.days, Some((day("2026-03-01"), day("2026-03-10"))));
        assert_eq!(p.raw, [span("2026-03-10T00:00:00Z", "2026-03-10T12:00:00Z")]);
        let p = day_plan(at("2026-03-03T12:00:00Z"), at("2026-03-04T06:00:00Z"), Some(day("2026-03-04")), false);
        assert_eq!(p.days, Some((day("2026-03-03"), day("2026-03-04"))));
        assert_eq!(p.raw, [span("2026-03-04T00:00:00Z", "2026-03-04T06:00:00Z")]);
        // A horizon before the window changes nothing.
        let p = day_plan(at("2026-03-05T12:00:00Z"), at("2026-03-05T18:00:00Z"), Some(day("2026-03-04")), false);
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
