//! `geoctl db migrate|status|maintain|prune`.

use serde::Serialize;

use super::Context;
use crate::cli::output::{note, or_dash};
use crate::store;
use crate::store::partition;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Apply pending migrations (safe to run again: applied ones are skipped)
    Migrate {
        /// Show the pending migrations without applying them
        #[arg(long)]
        dry_run: bool,
    },
    /// Show which migrations are applied and which are pending
    Status,
    /// Create the day partitions of results, metrics and their hourly summaries for the next
    /// days, and move rows the default partitions caught into theirs, and rebuild the hourly
    /// summaries of hours holding rows written without geoctl (safe to run again; run it hourly
    /// or daily, e.g. from cron)
    Maintain {
        /// Days ahead to have partitions for, today not counted
        #[arg(long, default_value_t = partition::AHEAD_DAYS, value_parser = clap::value_parser!(u32).range(1..=366))]
        days: u32,
    },
    /// Delete per-check results older than a retention period: whole days are dropped, the day
    /// the cutoff falls in is trimmed row by row (daily summaries are kept)
    Prune {
        /// Keep this much history, e.g. 90d
        #[arg(
            long,
            value_parser = parse_retention,
            allow_hyphen_values = true,
            required_unless_present = "before",
            conflicts_with = "before"
        )]
        older_than: Option<std::time::Duration>,
        /// Delete the days before this one (YYYY-MM-DD, from 00:00 UTC): whole days only, none
        /// trimmed row by row
        #[arg(long, value_parser = parse_before, value_name = "DATE")]
        before: Option<chrono::NaiveDate>,
        /// Rows deleted per transaction
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
        batch: i64,
        /// Do not ask for confirmation
        #[arg(long, short)]
        yes: bool,
        /// Count what would be deleted without deleting
        #[arg(long)]
        dry_run: bool,
    },
}

/// The summaries' safety window: today's and yesterday's summaries are still being written as
/// running totals and get their exact percentiles from their results once the day is closed, so
/// results younger than this are never pruned (a typo like `90m` cannot wipe them either).
const MIN_RETENTION_DAYS: u64 = 2;
/// Longest retention: 100 years.
const MAX_RETENTION_DAYS: u64 = 36_500;

fn parse_retention(text: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse_checked(text, |d| {
        if d < std::time::Duration::from_secs(MIN_RETENTION_DAYS * 86_400) {
            Err(format!(
                "retention {text} is under {MIN_RETENTION_DAYS}d; the daily summaries need the results of today and \
                 yesterday, so keep at least {MIN_RETENTION_DAYS}d"
            ))
        } else if d > std::time::Duration::from_secs(MAX_RETENTION_DAYS * 86_400) {
            Err(format!("retention {text} is too long; the maximum is {MAX_RETENTION_DAYS}d"))
        } else {
            Ok(())
        }
    })
}

fn parse_before(text: &str) -> Result<chrono::NaiveDate, String> {
    let day = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|e| format!("`{text}` is not a date like 2026-09-01 ({e})"))?;
    let latest = (chrono::Utc::now() - chrono::Duration::days(MIN_RETENTION_DAYS as i64)).date_naive();
    if day > latest {
        return Err(format!(
            "{day} is within the last {MIN_RETENTION_DAYS}d; the daily summaries need the results of today and \
             yesterday, so the latest day to prune before is {latest}"
        ));
    }
    Ok(day)
}

#[derive(Serialize)]
struct MigrateReport {
    applied: Vec<i64>,
    pending: Vec<i64>,
    /// Indexes left INVALID by an interrupted concurrent build, dropped and built again.
    rebuilt_indexes: Vec<String>,
    dry_run: bool,
}

pub async fn run(ctx: &Context, args: Args) -> crate::error::Result<()> {
    // Migrating and showing migrations work on any schema; pruning and partitions need geoctl's.
    let pool = match args.command {
        Command::Prune { .. } | Command::Maintain { .. } => ctx.pool().await?,
        Command::Migrate { .. } | Command::Status => ctx.pool_any_schema().await?,
    };
    match args.command {
        Command::Migrate { dry_run } => {
            let pending: Vec<i64> =
                store::status(&pool).await?.into_iter().filter(|m| !m.applied).map(|m| m.version).collect();
            let report = if dry_run {
                let rebuild: Vec<String> = store::invalid_indexes(&pool)
                    .await?
                    .into_iter()
                    .filter(|i| i.migration.is_some())
                    .map(|i| i.name)
                    .collect();
                MigrateReport { applied: vec![], pending, rebuilt_indexes: rebuild, dry_run }
            } else {
                let done = store::migrate(&pool).await?;
                MigrateReport { applied: done.applied, pending: vec![], rebuilt_indexes: done.rebuilt_indexes, dry_run }
            };
            for name in &report.rebuilt_indexes {
                let verb = if dry_run { "would drop and build again" } else { "dropped and built again" };
                note(format!("index {name} was left INVALID by an interrupted build; {verb}"));
            }
            match (dry_run, report.applied.len(), report.pending.len()) {
                (true, _, 0) | (false, 0, _) => note("database is up to date; nothing to apply"),
                (true, _, n) => note(format!("{n} migration(s) would be applied (dry run, nothing changed)")),
                (false, n, _) => note(format!("applied {n} migration(s)")),
            }
            ctx.printer.print(&report, |p| {
                let versions = if dry_run { &report.pending } else { &report.applied };
                if versions.is_empty() {
                    return vec![];
                }
                let mut table = p.table(["VERSION", if dry_run { "WOULD APPLY" } else { "APPLIED" }]);
                for v in versions {
                    table.add_row([v.to_string(), "yes".into()]);
                }
                vec![table]
            })
        }
        Command::Prune { older_than, before, batch, yes, dry_run } => {
            let cutoff = match (older_than, before) {
                (Some(keep), _) => {
                    chrono::Utc::now()
                        - chrono::Duration::from_std(keep).expect("retention is at most MAX_RETENTION_DAYS")
                }
                (None, Some(day)) => day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc(),
                (None, None) => unreachable!("clap requires --older-than or --before"),
            };
            if !dry_run {
                ctx.confirm(&format!("Delete results checked before {}?", cutoff.format("%Y-%m-%d %H:%M UTC")), yes)?;
            }
            let report = partition::prune(&pool, cutoff, batch, dry_run).await?;
            let (verb, dropped) = if dry_run { ("would delete", "would drop") } else { ("deleted", "dropped") };
            note(format!(
                "{dropped} {} day partition(s); {verb} {} result(s) and {} metric row(s) row by row, checked before {}",
                report.dropped_partitions.len(),
                report.monitor_results,
                report.regional_performance_metrics,
                cutoff.format("%Y-%m-%d %H:%M UTC")
            ));
            ctx.printer.print(&report, |p| {
                let mut table = p.table(["TABLE", if dry_run { "WOULD DELETE" } else { "DELETED" }]);
                table.add_row(["monitor_results".to_string(), report.monitor_results.to_string()]);
                table.add_row([
                    "regional_performance_metrics".to_string(),
                    report.regional_performance_metrics.to_string(),
                ]);
                table.add_row(["regional_monitor_hourly_summaries".to_string(), report.hourly_summaries.to_string()]);
                for name in &report.dropped_partitions {
                    table
                        .add_row([name.clone(), if dry_run { "whole (would drop)" } else { "whole (dropped)" }.into()]);
                }
                vec![table]
            })
        }
        Command::Maintain { days } => {
            let created = partition::maintain(&pool, chrono::Utc::now().date_naive(), days).await?;
            let moved: u64 = created.iter().map(|c| c.moved_rows).sum();
            let rebuilt = crate::results::summary::refresh_stale_hours(&pool).await?;
            if rebuilt > 0 {
                note(format!("rebuilt the hourly summaries of {rebuilt} hour(s) holding rows written without geoctl"));
            }
            match created.len() {
                0 => note(format!("every day up to {days} day(s) ahead has its partitions; nothing to do")),
                n => note(format!("created {n} partition(s); moved {moved} row(s) out of the default partitions")),
            }
            ctx.printer.print(&created, |p| {
                if created.is_empty() {
                    return vec![];
                }
                let mut table = p.table(["TABLE", "DAY", "PARTITION", "MOVED ROWS"]);
                for c in &created {
                    table.add_row([c.table.clone(), c.day.to_string(), c.partition.clone(), c.moved_rows.to_string()]);
                }
                vec![table]
            })
        }
        Command::Status => {
            let states = store::status(&pool).await?;
            for index in store::invalid_indexes(&pool).await? {
                note(format!(
                    "warning: index {} on {} is INVALID (an interrupted concurrent build) and unused by PostgreSQL; {}",
                    index.name,
                    index.table,
                    index.fix()
                ));
            }
            ctx.printer.print(&states, |p| {
                let mut table = p.table(["VERSION", "DESCRIPTION", "STATE", "APPLIED AT"]);
                for m in &states {
                    let state = match (m.applied, m.checksum_mismatch) {
                        (true, true) => "mismatch",
                        (true, false) => "applied",
                        (false, _) => "pending",
                    };
                    table.add_row(vec![
                        m.version.to_string().into(),
                        m.description.clone().into(),
                        p.status_cell(state),
                        or_dash(m.applied_at.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC"))).into(),
                    ]);
                }
                vec![table]
            })
        }
    }
}
