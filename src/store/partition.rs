//! Results and metrics partitioned by UTC day on `checked_at`, and their hourly
//! summaries and landing counts on `hour`: partitions made ahead, rows moved out
//! of the default partition, whole days dropped by retention. The layout and the
//! run-key rule are described in
//! `migrations/20261206100001_results_partitioned_by_day.sql`, the hours' in
//! `migrations/20261207300001_hourly_partitioned_by_day.sql`.
//!
//! Every DDL here runs in a short transaction that waits at most
//! [`LOCK_TIMEOUT`] for its locks (writers queue behind a waiting lock, so a
//! long wait would stall them) and is tried again a few times when it could not
//! get them.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgPool;

/// The per-result tables, partitioned by day on `checked_at`.
pub const TABLES: [&str; 2] = ["monitor_results", "regional_performance_metrics"];

/// The migration that partitions them.
pub const MIGRATION: i64 = 20261206100001;

/// The per-hour tables kept from them, partitioned by day on `hour`.
pub const HOURLY: [&str; 2] = ["regional_monitor_hourly_summaries", "regional_monitor_hourly_landings"];

/// The migration that partitions those.
pub const HOURLY_MIGRATION: i64 = 20261207300001;

/// Every table partitioned by day, with the migration that partitions it.
pub const ALL: [(&str, i64); 4] =
    [(TABLES[0], MIGRATION), (TABLES[1], MIGRATION), (HOURLY[0], HOURLY_MIGRATION), (HOURLY[1], HOURLY_MIGRATION)];

/// The column `table` is partitioned on.
fn key(table: &str) -> &'static str {
    if HOURLY.contains(&table) {
        "hour"
    } else {
        "checked_at"
    }
}

/// The tables whose partitioning is not among the `applied` migrations yet.
pub fn pending(applied: &[i64]) -> Vec<&'static str> {
    ALL.iter().filter(|(_, m)| !applied.contains(m)).map(|(t, _)| *t).collect()
}

/// The longest a DDL statement here waits for a lock before giving up and trying again.
const LOCK_TIMEOUT: &str = "1s";
const LOCK_ATTEMPTS: u32 = 5;

/// Days made ahead by `db maintain`, today included.
pub const AHEAD_DAYS: u32 = 7;

#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error(
        "cannot create partition {partition} of {table}: {message}. The role `{role}` needs to own {table} \
         (`ALTER TABLE {table} OWNER TO {role};`, as its owner) and CREATE on schema {schema} \
         (`GRANT CREATE ON SCHEMA {schema} TO {role};`); until then rows for {day} land in {table}_default"
    )]
    Permission { table: String, partition: String, day: NaiveDate, role: String, schema: String, message: String },
    #[error(
        "{table} has rows without {column} or with {column} at or after {bound}, so it cannot become the \
         partition of the past: correct or delete them (`SELECT * FROM {table} WHERE {column} IS NULL OR \
         {column} >= {bound}`) and run `geoctl db migrate` again"
    )]
    PastOutOfBound { table: String, column: String, bound: String },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl crate::error::Coded for PartitionError {
    fn exit(&self) -> crate::error::Exit {
        crate::error::Exit::Failed
    }
}

/// One partition of a table and the range of `checked_at` it holds (`None`: unbounded).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Partition {
    pub name: String,
    pub is_default: bool,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl Partition {
    /// Holds part of `[from, to)`.
    fn overlaps(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        !self.is_default && self.from.is_none_or(|f| f < to) && self.to.is_none_or(|t| t > from)
    }
}

/// The partitions of `table`, oldest first, the default last; empty when it is not partitioned.
pub async fn partitions(pool: &PgPool, table: &str) -> Result<Vec<Partition>, sqlx::Error> {
    // The bounds as PostgreSQL prints them, read back in the same session (same time zone).
    sqlx::query_as(
        "SELECT c.relname::text AS name, b.expr = 'DEFAULT' AS is_default,
                (regexp_match(b.expr, $$FROM \\('([^']+)'\\)$$))[1]::timestamptz AS \"from\",
                (regexp_match(b.expr, $$TO \\('([^']+)'\\)$$))[1]::timestamptz AS \"to\"
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid,
              LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS expr) b
         WHERE i.inhparent = to_regclass($1)
         ORDER BY is_default, 3 NULLS FIRST",
    )
    .bind(table)
    .fetch_all(pool)
    .await
}

/// The tables that hold `table`'s rows: its partitions, or itself when it is not partitioned.
/// Deleting by `ctid` must name one of these: a `ctid` is unique only within one of them.
pub async fn leaves(pool: &PgPool, table: &str) -> Result<Vec<String>, sqlx::Error> {
    let parts = partitions(pool, table).await?;
    Ok(if parts.is_empty() { vec![table.to_string()] } else { parts.into_iter().map(|p| p.name).collect() })
}

fn day_start(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
}

/// A timestamp as an SQL literal (DDL takes no parameters).
fn literal(t: DateTime<Utc>) -> String {
    format!("'{}'", t.format("%Y-%m-%d %H:%M:%S%.6f+00"))
}

/// Runs `statements` in one transaction that waits at most [`LOCK_TIMEOUT`] for each lock, again
/// after a pause when a lock was not granted in time; returns each statement's rows affected.
async fn ddl(pool: &PgPool, statements: &[String]) -> Result<Vec<u64>, sqlx::Error> {
    let mut attempt = 1;
    loop {
        match ddl_once(pool, statements).await {
            Err(e) if attempt < LOCK_ATTEMPTS && is_lock_timeout(&e) => {
                tracing::info!(attempt, "waited {LOCK_TIMEOUT} for a lock; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(attempt))).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn ddl_once(pool: &PgPool, statements: &[String]) -> Result<Vec<u64>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")).execute(&mut *tx).await?;
    let mut affected = Vec::with_capacity(statements.len());
    for statement in statements {
        affected.push(sqlx::query(statement).execute(&mut *tx).await?.rows_affected());
    }
    tx.commit().await?;
    Ok(affected)
}

/// `lock_not_available`: `lock_timeout` expired.
pub fn is_lock_timeout(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "55P03")
}

fn is_permission_denied(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "42501")
}

/// The end of the partition of the past the migration attaches: the start of the day after
/// tomorrow (UTC), a day of margin for writes made while the migration runs.
fn past_bound(now: DateTime<Utc>) -> DateTime<Utc> {
    day_start(now.date_naive() + Duration::days(2))
}

/// Before the migrations that partition `tables` run: proves each of them that is still a plain
/// heap holds only rows before the partition of the past's bound, with a `CHECK … NOT VALID` (a
/// catalog change under a brief lock) then `VALIDATE` (a scan under a lock writers pass), each in
/// its own transaction, so the migration's `ATTACH PARTITION` skips the scan. A table that is
/// not there yet needs nothing: the migration attaches it empty.
pub async fn prepare(pool: &PgPool, now: DateTime<Utc>, tables: &[&str]) -> Result<(), PartitionError> {
    let bound = literal(past_bound(now));
    for &table in tables {
        let column = key(table);
        let heap: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
                            WHERE c.oid = to_regclass($1) AND c.relkind = 'r' AND a.attname = $2)",
        )
        .bind(table)
        .bind(column)
        .fetch_one(pool)
        .await?;
        if !heap {
            continue;
        }
        // Named after the partition the heap becomes: the migration drops it once attached.
        let check = format!("{table}_past_bound");
        ddl(
            pool,
            &[
                format!("ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {check}"),
                format!(
                    "ALTER TABLE {table} ADD CONSTRAINT {check} \
                     CHECK ({column} IS NOT NULL AND {column} < {bound}) NOT VALID"
                ),
            ],
        )
        .await?;
        if let Err(e) = sqlx::query(&format!("ALTER TABLE {table} VALIDATE CONSTRAINT {check}")).execute(pool).await {
            // Left in place, it would refuse the existing app's writes after the bound.
            ddl(pool, &[format!("ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {check}")]).await?;
            if e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "23514") {
                return Err(PartitionError::PastOutOfBound { table: table.into(), column: column.into(), bound });
            }
            return Err(e.into());
        }
    }
    Ok(())
}

/// Takes away what [`prepare`] added when the migration did not run after all.
pub async fn unprepare(pool: &PgPool, tables: &[&str]) -> Result<(), sqlx::Error> {
    for table in tables {
        let heap: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_class WHERE oid = to_regclass($1) AND relkind = 'r')")
                .bind(table)
                .fetch_one(pool)
                .await?;
        if heap {
            ddl(pool, &[format!("ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {table}_past_bound")]).await?;
        }
    }
    Ok(())
}

/// A day partition made by [`maintain`].
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    pub table: String,
    pub partition: String,
    pub day: NaiveDate,
    /// Rows of that day moved out of the default partition into it.
    pub moved_rows: u64,
}

/// Makes sure each table partitioned by day has a partition for each day from `today` to
/// `today + ahead_days`, for each day its default partition holds rows of (moving them in), and,
/// for the hourly tables, for each day the results have one (so a day's hours are dropped with
/// its results, and a rebuilt day's hours land in their day). Idempotent: a day already covered
/// is left alone. Tables not partitioned yet (migration pending) are skipped.
pub async fn maintain(pool: &PgPool, today: NaiveDate, ahead_days: u32) -> Result<Vec<Created>, PartitionError> {
    let mut created = Vec::new();
    let mut results_days = Vec::new();
    for (table, _) in ALL {
        let parts = partitions(pool, table).await?;
        let Some(default) = parts.iter().find(|p| p.is_default) else { continue };
        let column = key(table);
        let first = format!("{table}_p{}", today.format("%Y%m%d"));
        let stray: Vec<NaiveDate> = match sqlx::query_scalar(&format!(
            "SELECT DISTINCT ({column} AT TIME ZONE 'UTC')::date FROM {} WHERE {column} IS NOT NULL",
            default.name
        ))
        .fetch_all(pool)
        .await
        {
            Ok(days) => days,
            Err(e) => return Err(refused(pool, e, table, &first, today).await),
        };
        let mut days: Vec<NaiveDate> = (0..=i64::from(ahead_days)).map(|n| today + Duration::days(n)).collect();
        days.extend(stray);
        if TABLES.contains(&table) {
            // A day partition's range is exactly its day.
            results_days.extend(parts.iter().filter(|p| !p.is_default && p.from.is_some()).filter_map(|p| p.from));
        } else {
            days.extend(results_days.iter().map(|from| from.date_naive()));
        }
        days.sort();
        days.dedup();
        for day in days {
            let (from, to) = (day_start(day), day_start(day + Duration::days(1)));
            if parts.iter().any(|p| p.overlaps(from, to)) {
                continue;
            }
            let partition = format!("{table}_p{}", day.format("%Y%m%d"));
            match create_day(pool, table, &default.name, &partition, from, to).await {
                Ok(moved_rows) => {
                    if TABLES.contains(&table) {
                        results_days.push(from);
                    }
                    created.push(Created { table: table.into(), partition, day, moved_rows })
                }
                Err(e) => return Err(refused(pool, e, table, &partition, day).await),
            }
        }
    }
    Ok(created)
}

/// A failed step of [`maintain`]; a refused permission says what to grant to whom.
async fn refused(pool: &PgPool, e: sqlx::Error, table: &str, partition: &str, day: NaiveDate) -> PartitionError {
    if !is_permission_denied(&e) {
        return e.into();
    }
    let who: Result<(String, String), _> =
        sqlx::query_as("SELECT current_user::text, current_schema()::text").fetch_one(pool).await;
    let (role, schema) = who.unwrap_or_else(|_| ("<role>".into(), "public".into()));
    PartitionError::Permission {
        table: table.into(),
        partition: partition.into(),
        day,
        role,
        schema,
        message: e.as_database_error().map_or_else(|| e.to_string(), |d| d.message().to_string()),
    }
}

/// One day's partition, built beside the table and attached, which locks the table only in
/// SHARE UPDATE EXCLUSIVE mode (writers pass; `CREATE TABLE … PARTITION OF` would stop them).
/// The default partition is locked against writes first, so none of the day's rows arrives there
/// between the move and the attach, which checks the default holds none. A per-result table's
/// day gets its own unique run key; the hourly tables' keys include the hour, and the attach
/// builds them on the day from the partitioned table's.
async fn create_day(
    pool: &PgPool,
    table: &str,
    default: &str,
    partition: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let (from, to) = (literal(from), literal(to));
    let column = key(table);
    let range = format!("{column} >= {from} AND {column} < {to}");
    let mut statements = vec![
        // Its CHECKs too: a partition must have the partitioned table's.
        format!("CREATE TABLE {partition} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"),
        // Proves the bound to the attach, so it does not scan the moved rows.
        format!("ALTER TABLE {partition} ADD CONSTRAINT {partition}_bound CHECK ({range})"),
        format!("LOCK TABLE {default} IN EXCLUSIVE MODE"),
        format!(
            "WITH moved AS (DELETE FROM {default} WHERE {range} RETURNING *) \
             INSERT INTO {partition} SELECT * FROM moved"
        ),
    ];
    const MOVED: usize = 3;
    if TABLES.contains(&table) {
        statements.push(format!(
            "CREATE UNIQUE INDEX {partition}_run_key_key ON {partition} (run_key) WHERE run_key IS NOT NULL"
        ));
    }
    statements.push(format!("ALTER TABLE {table} ATTACH PARTITION {partition} FOR VALUES FROM ({from}) TO ({to})"));
    statements.push(format!("ALTER TABLE {partition} DROP CONSTRAINT {partition}_bound"));
    let affected = ddl(pool, &statements).await?;
    Ok(affected[MOVED])
}

/// Results checked before this time may have been deleted by [`prune`] (it records the cutoff in
/// `results_retention` first).
pub async fn pruned_before(pool: &PgPool) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar("SELECT max(pruned_before) FROM results_retention").fetch_one(pool).await
}

/// The first day whose results are all still there.
pub fn first_whole_day(horizon: DateTime<Utc>) -> NaiveDate {
    let day = horizon.date_naive();
    if horizon == day.and_hms_opt(0, 0, 0).unwrap().and_utc() {
        day
    } else {
        day.succ_opt().unwrap_or(day)
    }
}

/// What a retention run removed (or would remove).
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    pub cutoff: DateTime<Utc>,
    /// Rows deleted one by one (from the day the cutoff falls in, and the default partition).
    pub monitor_results: i64,
    pub regional_performance_metrics: i64,
    /// Whole days detached and dropped (or that would be).
    pub dropped_partitions: Vec<String>,
    /// Hourly summaries of the days the cutoff reaches into deleted row by row (from the
    /// partition of the past and the default one; their days are dropped whole): reports read
    /// those days from their daily summaries.
    pub hourly_summaries: i64,
    pub dry_run: bool,
}

/// A prune that would take results the summaries still need.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error(
        "the summaries of {day} are still running totals without exact percentiles, which are computed from that \
         day's results; run `geoctl summaries refresh` first, or keep more history with a longer --older-than"
    )]
    Unsettled { day: NaiveDate },
    #[error(transparent)]
    Partition(#[from] PartitionError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl crate::error::Coded for PruneError {
    fn exit(&self) -> crate::error::Exit {
        match self {
            PruneError::Unsettled { .. } => crate::error::Exit::Input,
            PruneError::Partition(e) => e.exit(),
            PruneError::Db(_) => crate::error::Exit::Failed,
        }
    }
}

/// Removes per-result rows checked before `cutoff`: each day partition wholly before it is
/// detached and dropped (milliseconds, no WAL for its rows, no bloat left behind); the partition
/// the cutoff falls in (a day, or the partition of the past) and the default partition are
/// trimmed `batch` rows per short transaction. Daily summaries are kept, and the cutoff is
/// recorded first in `results_retention`, which tells the summaries which days lost results;
/// the hourly summaries and landing counts of every day the cutoff reaches into go, their days
/// dropped whole the same way.
pub async fn prune(pool: &PgPool, cutoff: DateTime<Utc>, batch: i64, dry_run: bool) -> Result<PruneReport, PruneError> {
    // Days already cut into by an earlier prune are left as they are by the summaries; only the
    // days this prune would newly cut into must be settled.
    let first_whole = pruned_before(pool).await?.map(first_whole_day);
    let unsettled: Option<NaiveDate> = sqlx::query_scalar(
        "SELECT min(day) FROM regional_monitor_summaries
         WHERE NOT percentiles_exact AND day <= $1 AND ($2::date IS NULL OR day >= $2)",
    )
    .bind(cutoff.date_naive())
    .bind(first_whole)
    .fetch_one(pool)
    .await?;
    if let Some(day) = unsettled {
        return Err(PruneError::Unsettled { day });
    }
    if !dry_run {
        // Recorded first: a prune interrupted halfway has still cut into these days.
        sqlx::query(
            "INSERT INTO results_retention (table_name, pruned_before) SELECT unnest($1::text[]), $2 \
             ON CONFLICT (table_name) DO UPDATE SET \
             pruned_before = GREATEST(results_retention.pruned_before, EXCLUDED.pruned_before), pruned_at = now()",
        )
        .bind(TABLES.map(String::from).to_vec())
        .bind(cutoff)
        .execute(pool)
        .await?;
    }
    // The hours go up to the first day left whole, as `report::plan` reads them: their days
    // are dropped whole. The four tables are independent: they go side by side, each on a
    // connection of its own, so the prune takes as long as its slowest part.
    let first_whole = first_whole_day(cutoff).and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let ((results, mut dropped), (metrics, d1), (hourly_summaries, d2), (_, d3)) = tokio::try_join!(
        prune_table(pool, TABLES[0], cutoff, batch, dry_run),
        prune_table(pool, TABLES[1], cutoff, batch, dry_run),
        prune_table(pool, HOURLY[0], first_whole, batch, dry_run),
        prune_table(pool, HOURLY[1], first_whole, batch, dry_run),
    )?;
    dropped.extend(d1.into_iter().chain(d2).chain(d3));
    Ok(PruneReport {
        cutoff,
        monitor_results: results,
        regional_performance_metrics: metrics,
        dropped_partitions: dropped,
        hourly_summaries,
        dry_run,
    })
}

/// One table's part of [`prune`]: its days wholly before `cutoff` detached and dropped, the rest
/// before it deleted row by row. Returns the rows deleted and the partitions dropped.
async fn prune_table(
    pool: &PgPool,
    table: &str,
    cutoff: DateTime<Utc>,
    batch: i64,
    dry_run: bool,
) -> Result<(i64, Vec<String>), PruneError> {
    let parts = partitions(pool, table).await?;
    // Not partitioned (yet): the table itself is trimmed.
    let mut trimmed: Vec<String> = if parts.is_empty() { vec![table.to_string()] } else { Vec::new() };
    let mut dropped = Vec::new();
    for part in parts {
        if !part.is_default && part.to.is_some_and(|to| to <= cutoff) {
            if !dry_run {
                ddl(
                    pool,
                    &[
                        format!("ALTER TABLE {table} DETACH PARTITION {}", part.name),
                        format!("DROP TABLE {}", part.name),
                    ],
                )
                .await?;
            }
            dropped.push(part.name);
        } else if part.is_default || part.from.is_none_or(|from| from < cutoff) {
            trimmed.push(part.name);
        }
    }
    let mut count = 0;
    for part in trimmed {
        count += delete_before(pool, &part, key(table), cutoff, batch, dry_run).await?;
    }
    Ok((count, dropped))
}

/// Deletes (or counts) the rows of one table or partition whose `column` is before `cutoff`,
/// `batch` rows per statement, each its own transaction, so writers keep going meanwhile.
async fn delete_before(
    pool: &PgPool,
    table: &str,
    column: &str,
    cutoff: DateTime<Utc>,
    batch: i64,
    dry_run: bool,
) -> Result<i64, sqlx::Error> {
    if dry_run {
        return sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE {column} < $1"))
            .bind(cutoff)
            .fetch_one(pool)
            .await;
    }
    let mut count = 0;
    loop {
        let deleted = sqlx::query(&format!(
            "DELETE FROM {table} WHERE ctid = ANY (ARRAY(SELECT ctid FROM {table} WHERE {column} < $1 LIMIT $2))"
        ))
        .bind(cutoff)
        .bind(batch)
        .execute(pool)
        .await?
        .rows_affected() as i64;
        count += deleted;
        if deleted < batch {
            return Ok(count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_past_ends_at_the_start_of_the_day_after_tomorrow() {
        let now = "2026-12-06T23:59:59Z".parse().unwrap();
        assert_eq!(past_bound(now), "2026-12-08T00:00:00Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(literal(past_bound(now)), "'2026-12-08 00:00:00.000000+00'");
    }

    #[test]
    fn a_partition_overlaps_the_days_it_holds_part_of() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let past = Partition { name: "p".into(), is_default: false, from: None, to: Some(t("2026-12-08T00:00:00Z")) };
        assert!(past.overlaps(t("2026-12-07T00:00:00Z"), t("2026-12-08T00:00:00Z")));
        assert!(!past.overlaps(t("2026-12-08T00:00:00Z"), t("2026-12-09T00:00:00Z")));
        let default = Partition { name: "d".into(), is_default: true, from: None, to: None };
        assert!(!default.overlaps(t("2026-12-07T00:00:00Z"), t("2026-12-08T00:00:00Z")));
    }
}
