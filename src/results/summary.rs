//! `regional_monitor_summaries`: one row per monitor, region and UTC day.
//!
//! Writers keep running totals: each recorded batch adds its counts, sums,
//! minima and maxima to the rows it touches (one upsert, whatever the day
//! already holds), and marks the row's percentiles as not computed
//! (`percentiles_exact = false`, percentiles NULL). A day's exact percentiles
//! come from its results, once it is closed: [`finalize`] (an agent's periodic
//! task, `geoctl summaries refresh`) or [`rebuild`] recompute closed days from
//! their results; readers needing today's percentiles compute them from the
//! results, as `report` does.
//!
//! Recomputing a day and writing into it exclude each other with one advisory
//! lock per day: writers take it shared (inside the batch's one statement,
//! before it writes anything; see `results::record`), a recompute exclusively,
//! so no running total is lost or counted twice.
//!
//! Days before the prune horizon (`db prune` records it in `results_retention`)
//! lost some or all of their results: their summaries are all that is left, so
//! nothing recomputes them.
//!
//! `regional_monitor_hourly_summaries` holds the same counts and sums per UTC hour (no
//! percentiles, which cannot be added up), so a report of a day reads hours instead of every
//! result. The same statement keeps them as running totals, under the same day lock; a
//! recompute of a day rebuilds its hours too; `db prune` deletes the hours of the days it cut
//! into or dropped, which reports read from their daily summaries.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, PgPool};

/// The exclusion lock of one day's summaries.
const DAY_LOCK: &str = "hashtextextended('geoctl:summary-day:' || d::text, 0)";

/// A query returning one row (`days`, how many) after taking the shared lock of each UTC day of
/// the `timestamptz[]` expression `checked_at`, in day order (so a writer never waits on a
/// recompute holding a day it needs later). [`crate::results::record`] runs it first inside its
/// one statement, before any row is written.
pub(crate) fn lock_days_shared_sql(checked_at: &str) -> String {
    format!(
        "SELECT count(pg_advisory_xact_lock_shared({DAY_LOCK})) AS days \
         FROM (SELECT DISTINCT (t AT TIME ZONE 'UTC')::date AS d FROM unnest({checked_at}) t ORDER BY 1) x"
    )
}

/// Takes one day's lock exclusively until the end of the connection's transaction (which must
/// be an explicit one): waits for the writers into the day to commit, and makes later ones wait.
pub async fn lock_day(conn: &mut PgConnection, day: NaiveDate) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("SELECT pg_advisory_xact_lock({DAY_LOCK}) FROM (SELECT $1::date AS d) x"))
        .bind(day)
        .execute(conn)
        .await
        .map(|_| ())
}

/// A nullable running sum: NULL + x = x.
fn add(column: &str) -> String {
    format!("{column} = COALESCE(s.{column} + EXCLUDED.{column}, s.{column}, EXCLUDED.{column})")
}

/// An average kept as a sum and a count.
fn avg(avg: &str, sum: &str, count: &str) -> String {
    format!(
        "{avg} = COALESCE(s.{sum} + EXCLUDED.{sum}, s.{sum}, EXCLUDED.{sum}) \
         / NULLIF(COALESCE(s.{count}, 0) + EXCLUDED.{count}, 0)"
    )
}

/// The distinct values of one region metric (`country_code`, `isp`) over rows
/// aliased `alias`, sorted, NULL when none was measured; `count` gives its size.
fn distinct_set(alias: &str, key: &str, count: bool) -> String {
    let set = format!(
        "array_agg(DISTINCT {alias}.region_specific_metrics->>'{key}' ORDER BY {alias}.region_specific_metrics->>'{key}') \
         FILTER (WHERE {alias}.region_specific_metrics->>'{key}' IS NOT NULL)"
    );
    if count {
        format!("cardinality({set})")
    } else {
        set
    }
}

/// The union of a stored set and a batch's, sorted, NULL when both are.
fn merge_sets(column: &str) -> String {
    format!("(SELECT array_agg(DISTINCT v ORDER BY v) FROM unnest(s.{column} || EXCLUDED.{column}) v)")
}

/// The rows of `fresh` a summary counts, grouped by the summary's key (its first three columns).
const FRESH_BY_KEY: &str = "FROM fresh f
        WHERE f.execution_region IS NOT NULL AND f.is_up IS NOT NULL
        GROUP BY 1, 2, 3
        -- Rows locked in key order by every writer: two batches sharing keys never deadlock.
        ORDER BY 1, 2, 3";

/// A running total's checks plus a batch's.
const ADD_CHECKS: &str = "total_checks = s.total_checks + EXCLUDED.total_checks, \
    successful_checks = s.successful_checks + EXCLUDED.successful_checks";

/// The upsert that adds the results of `fresh` (a CTE of inserted
/// `monitor_results` rows) to their days' running totals.
pub fn add_fresh_sql() -> String {
    format!(
        "INSERT INTO regional_monitor_summaries AS s (monitor_id, region_code, day, total_checks, successful_checks,
            failed_checks, uptime_percentage, avg_response_time, min_response_time, max_response_time,
            p50_response_time, p95_response_time, p99_response_time, avg_network_latency, avg_dns_time, avg_tcp_time,
            unique_countries, unique_isps, response_time_sum, response_time_count, network_latency_sum,
            network_latency_count, dns_time_sum, dns_time_count, tcp_time_sum, tcp_time_count, percentiles_exact,
            updated_at, countries, isps)
        SELECT f.monitor_id, f.execution_region, (f.checked_at AT TIME ZONE 'UTC')::date,
            count(*), count(*) FILTER (WHERE f.is_up), count(*) FILTER (WHERE NOT f.is_up),
            100.0 * count(*) FILTER (WHERE f.is_up) / count(*),
            avg(f.total_time) FILTER (WHERE f.is_up), min(f.total_time) FILTER (WHERE f.is_up),
            max(f.total_time) FILTER (WHERE f.is_up), NULL, NULL, NULL,
            avg(f.network_latency), avg(f.dns_resolution_time), avg(f.tcp_connect_time),
            {}, {},
            sum(f.total_time) FILTER (WHERE f.is_up), count(f.total_time) FILTER (WHERE f.is_up),
            sum(f.network_latency), count(f.network_latency), sum(f.dns_resolution_time),
            count(f.dns_resolution_time), sum(f.tcp_connect_time), count(f.tcp_connect_time), false, now(),
            {}, {}
        {FRESH_BY_KEY}
        ON CONFLICT (monitor_id, region_code, day) DO UPDATE SET
            {ADD_CHECKS},
            failed_checks = s.failed_checks + EXCLUDED.failed_checks,
            uptime_percentage = 100.0 * (s.successful_checks + EXCLUDED.successful_checks)
                / (s.total_checks + EXCLUDED.total_checks),
            min_response_time = LEAST(s.min_response_time, EXCLUDED.min_response_time),
            max_response_time = GREATEST(s.max_response_time, EXCLUDED.max_response_time),
            p50_response_time = NULL, p95_response_time = NULL, p99_response_time = NULL,
            percentiles_exact = false, updated_at = now(),
            countries = {}, isps = {}, unique_countries = cardinality({}), unique_isps = cardinality({}),
            {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}",
        distinct_set("f", "country_code", true),
        distinct_set("f", "isp", true),
        distinct_set("f", "country_code", false),
        distinct_set("f", "isp", false),
        merge_sets("countries"),
        merge_sets("isps"),
        merge_sets("countries"),
        merge_sets("isps"),
        avg("avg_response_time", "response_time_sum", "response_time_count"),
        avg("avg_network_latency", "network_latency_sum", "network_latency_count"),
        avg("avg_dns_time", "dns_time_sum", "dns_time_count"),
        avg("avg_tcp_time", "tcp_time_sum", "tcp_time_count"),
        add("response_time_sum"),
        add("response_time_count"),
        add("network_latency_sum"),
        add("network_latency_count"),
        add("dns_time_sum"),
        add("dns_time_count"),
        add("tcp_time_sum"),
        add("tcp_time_count"),
    )
}

/// The columns of an hourly summary after its key, over the results aliased `alias`, in the
/// order [`add_fresh_hours_sql`] and [`RECOMPUTE_HOURS`] insert them.
fn hour_totals(alias: &str) -> String {
    let a = alias;
    format!(
        "count(*), count(*) FILTER (WHERE {a}.is_up), sum({a}.total_time) FILTER (WHERE {a}.is_up), \
         count({a}.total_time) FILTER (WHERE {a}.is_up), sum({a}.dns_resolution_time), count({a}.dns_resolution_time), \
         sum({a}.tcp_connect_time), count({a}.tcp_connect_time), sum({a}.tls_handshake_time), \
         count({a}.tls_handshake_time), sum({a}.first_byte_time), count({a}.first_byte_time), {}",
        super::histogram::counts_sql(a)
    )
}

const HOUR_COLUMNS: &str = "monitor_id, hour, region_code, total_checks, successful_checks, response_time_sum, \
    response_time_count, dns_time_sum, dns_time_count, tcp_time_sum, tcp_time_count, tls_time_sum, tls_time_count, \
    first_byte_time_sum, first_byte_time_count, response_histogram";

/// The upsert that adds the results of `fresh` (a CTE of inserted `monitor_results` rows) to
/// their hours' running totals; [`add_fresh_sql`]'s twin, under the same day locks.
pub fn add_fresh_hours_sql() -> String {
    let sums = ["response_time", "dns_time", "tcp_time", "tls_time", "first_byte_time"]
        .map(|c| format!("{}, {c}_count = s.{c}_count + EXCLUDED.{c}_count", add(&format!("{c}_sum"))))
        .join(", ");
    format!(
        "INSERT INTO regional_monitor_hourly_summaries AS s ({HOUR_COLUMNS})
        SELECT f.monitor_id, date_trunc('hour', f.checked_at, 'UTC'), f.execution_region, {}
        {FRESH_BY_KEY}
        ON CONFLICT (monitor_id, hour, region_code) DO UPDATE SET {ADD_CHECKS}, {sums},
            response_histogram = geoctl_histogram_add(s.response_histogram, EXCLUDED.response_histogram)",
        hour_totals("f")
    )
}

/// Every hourly summary of the hours `[$1, $2)`, recomputed from their results (after
/// [`DELETE_HOURS`]).
const RECOMPUTE_HOURS: &str = "
INSERT INTO regional_monitor_hourly_summaries ({columns})
SELECT r.monitor_id, date_trunc('hour', r.checked_at, 'UTC'), r.execution_region, {totals}
FROM monitor_results r
WHERE r.checked_at >= $1 AND r.checked_at < $2
  AND r.execution_region IS NOT NULL AND r.is_up IS NOT NULL AND r.monitor_id IS NOT NULL
GROUP BY 1, 2, 3";

/// The landing columns after the key, over the metrics rows aliased `m`.
const LANDED: &str = "count(*), geoctl_histogram(array_agg(m.hop_count) FILTER (WHERE m.hop_count >= 0))";

/// The upsert that adds the metrics rows of `landed` (a CTE of inserted
/// `regional_performance_metrics` rows) to their hours' landing counts.
pub fn add_landed_sql() -> String {
    format!(
        "INSERT INTO regional_monitor_hourly_landings AS s ({LANDING_COLUMNS})
        SELECT m.monitor_id, date_trunc('hour', m.checked_at, 'UTC'), m.region_code, m.country_code, m.city, m.asn,
               m.isp, {LANDED}
        FROM landed m
        WHERE m.region_code IS NOT NULL AND m.monitor_id IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5, 6, 7
        -- Rows locked in key order by every writer: two batches sharing keys never deadlock.
        ORDER BY 1, 2, 3, 4, 5, 6, 7
        ON CONFLICT (monitor_id, hour, region_code, country_code, city, asn, isp) DO UPDATE SET
            checks = s.checks + EXCLUDED.checks, hop_counts = geoctl_histogram_add(s.hop_counts, EXCLUDED.hop_counts)"
    )
}

const LANDING_COLUMNS: &str = "monitor_id, hour, region_code, country_code, city, asn, isp, checks, hop_counts";

/// Every landing count of the hours `[$1, $2)`, recomputed from their metrics rows.
const RECOMPUTE_LANDINGS: &str = "
INSERT INTO regional_monitor_hourly_landings ({columns})
SELECT m.monitor_id, date_trunc('hour', m.checked_at, 'UTC'), m.region_code, m.country_code, m.city, m.asn, m.isp,
       {landed}
FROM regional_performance_metrics m
WHERE m.checked_at >= $1 AND m.checked_at < $2 AND m.region_code IS NOT NULL AND m.monitor_id IS NOT NULL
GROUP BY 1, 2, 3, 4, 5, 6, 7";

/// The hourly summaries of the hours `[$1, $2)`, before they are recomputed (the hours of a
/// monitor or region without results any more must go too), and the marks of rows no summary
/// counted in them ([`refresh_stale_hours`]): the recompute counts those rows. The hour's BRIN
/// index finds them.
const DELETE_HOURS: &str = "
WITH unmarked AS (DELETE FROM hourly_summaries_stale WHERE hour >= $1 AND hour < $2),
landings AS (DELETE FROM regional_monitor_hourly_landings WHERE hour >= $1 AND hour < $2)
DELETE FROM regional_monitor_hourly_summaries WHERE hour >= $1 AND hour < $2";

/// Recomputes the hourly summaries of `[from, to)`, inside a transaction that holds the lock of
/// their day.
async fn recompute_hours(conn: &mut PgConnection, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query(DELETE_HOURS).bind(from).bind(to).execute(&mut *conn).await?;
    let hours = RECOMPUTE_HOURS.replace("{columns}", HOUR_COLUMNS).replace("{totals}", &hour_totals("r"));
    sqlx::query(&hours).bind(from).bind(to).execute(&mut *conn).await?;
    let landings = RECOMPUTE_LANDINGS.replace("{columns}", LANDING_COLUMNS).replace("{landed}", LANDED);
    sqlx::query(&landings).bind(from).bind(to).execute(&mut *conn).await?;
    Ok(())
}

/// Rebuilds the hourly summaries of every hour marked as holding rows written around them (the
/// existing app's inserts; see migration `20261207100001`), each day's under its lock, and
/// unmarks them; hours the prune horizon reached are only unmarked (reports read their days from
/// the daily summaries). `db maintain` and `summaries refresh` run it. Returns the hours rebuilt.
pub async fn refresh_stale_hours(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let first =
        pruned_before(pool).await?.map(|p| first_whole_day(p).and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    if let Some(first) = first {
        sqlx::query("DELETE FROM hourly_summaries_stale WHERE hour < $1").bind(first).execute(pool).await?;
    }
    let hours: Vec<DateTime<Utc>> =
        sqlx::query_scalar("SELECT hour FROM hourly_summaries_stale ORDER BY hour").fetch_all(pool).await?;
    for hour in &hours {
        let mut tx = pool.begin().await?;
        lock_day(&mut tx, hour.date_naive()).await?;
        // A new statement, a new snapshot: it sees every row whose writer held the lock.
        recompute_hours(&mut tx, *hour, *hour + chrono::Duration::hours(1)).await?;
        tx.commit().await?;
    }
    Ok(hours.len() as u64)
}

/// From when the hourly summaries hold every result (`None`: always); see migration
/// `20261207100001`. Reports read the hours before it from results.
pub async fn hours_complete_from(pool: &PgPool) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let from: Option<Option<DateTime<Utc>>> =
        sqlx::query_scalar("SELECT complete_from FROM hourly_summaries_coverage").fetch_optional(pool).await?;
    Ok(from.flatten())
}

/// Every summary of one day, recomputed exactly from its results.
const RECOMPUTE_DAY: &str = "
INSERT INTO regional_monitor_summaries AS s (monitor_id, region_code, day, total_checks, successful_checks,
    failed_checks, uptime_percentage, avg_response_time, min_response_time, max_response_time,
    p50_response_time, p95_response_time, p99_response_time, avg_network_latency, avg_dns_time, avg_tcp_time,
    unique_countries, unique_isps, response_time_sum, response_time_count, network_latency_sum,
    network_latency_count, dns_time_sum, dns_time_count, tcp_time_sum, tcp_time_count, percentiles_exact, updated_at,
    countries, isps)
SELECT r.monitor_id, r.execution_region, $1::date,
    count(*), count(*) FILTER (WHERE r.is_up), count(*) FILTER (WHERE NOT r.is_up),
    100.0 * count(*) FILTER (WHERE r.is_up) / count(*),
    avg(r.total_time) FILTER (WHERE r.is_up),
    min(r.total_time) FILTER (WHERE r.is_up),
    max(r.total_time) FILTER (WHERE r.is_up),
    percentile_cont(0.50) WITHIN GROUP (ORDER BY r.total_time) FILTER (WHERE r.is_up),
    percentile_cont(0.95) WITHIN GROUP (ORDER BY r.total_time) FILTER (WHERE r.is_up),
    percentile_cont(0.99) WITHIN GROUP (ORDER BY r.total_time) FILTER (WHERE r.is_up),
    avg(r.network_latency), avg(r.dns_resolution_time), avg(r.tcp_connect_time),
    {unique_countries}, {unique_isps},
    sum(r.total_time) FILTER (WHERE r.is_up), count(r.total_time) FILTER (WHERE r.is_up),
    sum(r.network_latency), count(r.network_latency), sum(r.dns_resolution_time), count(r.dns_resolution_time),
    sum(r.tcp_connect_time), count(r.tcp_connect_time), true, now(), {countries}, {isps}
FROM monitor_results r
WHERE r.checked_at >= ($1::date::timestamp AT TIME ZONE 'UTC')
  AND r.checked_at < (($1::date + 1)::timestamp AT TIME ZONE 'UTC')
  AND r.execution_region IS NOT NULL AND r.is_up IS NOT NULL AND r.monitor_id IS NOT NULL
GROUP BY r.monitor_id, r.execution_region
ORDER BY r.monitor_id, r.execution_region
ON CONFLICT (monitor_id, region_code, day) DO UPDATE SET
    total_checks = EXCLUDED.total_checks, successful_checks = EXCLUDED.successful_checks,
    failed_checks = EXCLUDED.failed_checks, uptime_percentage = EXCLUDED.uptime_percentage,
    avg_response_time = EXCLUDED.avg_response_time, min_response_time = EXCLUDED.min_response_time,
    max_response_time = EXCLUDED.max_response_time, p50_response_time = EXCLUDED.p50_response_time,
    p95_response_time = EXCLUDED.p95_response_time, p99_response_time = EXCLUDED.p99_response_time,
    avg_network_latency = EXCLUDED.avg_network_latency, avg_dns_time = EXCLUDED.avg_dns_time,
    avg_tcp_time = EXCLUDED.avg_tcp_time, response_time_sum = EXCLUDED.response_time_sum,
    response_time_count = EXCLUDED.response_time_count, network_latency_sum = EXCLUDED.network_latency_sum,
    network_latency_count = EXCLUDED.network_latency_count, dns_time_sum = EXCLUDED.dns_time_sum,
    dns_time_count = EXCLUDED.dns_time_count, tcp_time_sum = EXCLUDED.tcp_time_sum,
    tcp_time_count = EXCLUDED.tcp_time_count, percentiles_exact = true, updated_at = now(),
    unique_countries = EXCLUDED.unique_countries, unique_isps = EXCLUDED.unique_isps,
    countries = EXCLUDED.countries, isps = EXCLUDED.isps";

/// [`RECOMPUTE_DAY`] with the same sets the running totals keep (`unique_countries`
/// and `unique_isps` count where the target was reached; NULL when never measured).
fn recompute_day_sql() -> String {
    RECOMPUTE_DAY
        .replace("{unique_countries}", &distinct_set("r", "country_code", true))
        .replace("{unique_isps}", &distinct_set("r", "isp", true))
        .replace("{countries}", &distinct_set("r", "country_code", false))
        .replace("{isps}", &distinct_set("r", "isp", false))
}

/// Recomputes every summary of one day, daily and hourly, in a transaction of its own; returns
/// the daily rows written.
async fn recompute_day(pool: &PgPool, day: NaiveDate) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    lock_day(&mut tx, day).await?;
    // A new statement, a new snapshot: it sees every writer that held the lock.
    let rows = sqlx::query(&recompute_day_sql()).bind(day).execute(&mut *tx).await?.rows_affected();
    let from = day.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    recompute_hours(&mut tx, from, from + chrono::Duration::days(1)).await?;
    tx.commit().await?;
    Ok(rows)
}

/// What a rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Rebuilt {
    /// Days recomputed from their results.
    pub days: u64,
    /// Summary rows written.
    pub summaries: u64,
    /// Days before the prune horizon, left as they are.
    pub pruned_days_kept: u64,
    pub pruned_before: Option<DateTime<Utc>>,
}

/// A rebuild that cannot be done as asked.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error(
        "the results of {day} were pruned (`db prune` deleted results checked before {horizon}), so its \
         summaries are all that is left of it and are kept as they are; rebuild a day from {first} on"
    )]
    Pruned { day: NaiveDate, horizon: String, first: NaiveDate },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl crate::error::Coded for RebuildError {
    fn exit(&self) -> crate::error::Exit {
        match self {
            RebuildError::Pruned { .. } => crate::error::Exit::Input,
            RebuildError::Db(_) => crate::error::Exit::Failed,
        }
    }
}

// The prune horizon is kept by `db prune` (`store::partition`), which the summaries read; it
// lives there so the store does not reach up into results.
pub use crate::store::partition::{first_whole_day, pruned_before};

/// Recomputes the summaries of `day` (or of every day with results), day by
/// day, each in its own short transaction. Days at or before the prune
/// horizon are left as they are: asking for one by `day` is refused.
pub async fn rebuild(pool: &PgPool, day: Option<NaiveDate>) -> Result<Rebuilt, RebuildError> {
    let horizon = pruned_before(pool).await?;
    let first = horizon.map(first_whole_day);
    let mut out = Rebuilt { pruned_before: horizon, ..Rebuilt::default() };
    let days: Vec<NaiveDate> = match day {
        Some(day) => {
            if let (Some(h), Some(first)) = (horizon, first) {
                if day < first {
                    return Err(RebuildError::Pruned {
                        day,
                        horizon: h.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                        first,
                    });
                }
            }
            vec![day]
        }
        None => {
            // From the prune horizon on: the days before it keep only their summaries, and naming
            // the range spares the partitions of those days (and what is left of them) a scan.
            let range: (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = sqlx::query_as(
                "SELECT min(checked_at), max(checked_at) FROM monitor_results \
                 WHERE checked_at >= $1 AND checked_at <= $2 \
                   AND execution_region IS NOT NULL AND is_up IS NOT NULL AND monitor_id IS NOT NULL",
            )
            .bind(first.map_or(DateTime::UNIX_EPOCH, |d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc()))
            // Nor the days made ahead, empty but for results from a clock far ahead.
            .bind(Utc::now() + super::query::CLOCK_SLACK)
            .fetch_one(pool)
            .await?;
            let (Some(lo), Some(hi)) = range else {
                hours_complete(pool).await?;
                return Ok(out);
            };
            let mut days = Vec::new();
            let mut d = lo.date_naive();
            while d <= hi.date_naive() {
                days.push(d);
                d = d.succ_opt().expect("a day after a stored result");
            }
            if let Some(first) = first {
                out.pruned_days_kept = sqlx::query_scalar::<_, i64>(
                    "SELECT count(DISTINCT day) FROM regional_monitor_summaries WHERE day < $1",
                )
                .bind(first)
                .fetch_one(pool)
                .await? as u64;
                days.retain(|d| *d >= first);
            }
            days
        }
    };
    let every_day = day.is_none();
    for day in days {
        out.summaries += recompute_day(pool, day).await?;
        out.days += 1;
    }
    if every_day {
        hours_complete(pool).await?;
    }
    Ok(out)
}

/// Every day with results has just had its hours recomputed (the days before the prune horizon
/// are read from their daily summaries): the hourly summaries are complete.
async fn hours_complete(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE hourly_summaries_coverage SET complete_from = NULL").execute(pool).await.map(|_| ())
}

/// Gives closed days (before `today`) whose running totals have no exact
/// percentiles yet their exact summaries. Agents run this periodically;
/// `geoctl summaries refresh` runs it once. Returns the days recomputed.
pub async fn finalize(pool: &PgPool, today: NaiveDate) -> Result<Vec<NaiveDate>, sqlx::Error> {
    let first = pruned_before(pool).await?.map(first_whole_day);
    let days: Vec<NaiveDate> = sqlx::query_scalar(
        "SELECT DISTINCT day FROM regional_monitor_summaries \
         WHERE NOT percentiles_exact AND day < $1 AND ($2::date IS NULL OR day >= $2) ORDER BY day",
    )
    .bind(today)
    .bind(first)
    .fetch_all(pool)
    .await?;
    for day in &days {
        recompute_day(pool, *day).await?;
    }
    Ok(days)
}
