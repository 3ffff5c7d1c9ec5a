//! `geoctl queue …`: each region's BullMQ queues — status, sync with the
//! database, pause, resume, drain, clean, retry-failed. The actions cover a region's browser
//! queue too when it has a browser service configured or the queue is in use.

use std::time::Duration;

use serde::Serialize;

use super::checks::parse_interval;
use super::Context;
use crate::cli::output::{note, or_dash, Printer};
use crate::error::Context as _;
use crate::queue::control::{self, Done};
use crate::queue::schedule::{self, SyncReport, Wanted};
use crate::queue::status::{self, RegionStatus};
use crate::queue::{Lane, QueueError, RegionQueue};
use crate::region::RegionStore;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Each active region's queue: job counts, schedulers, live agents, oldest waiting job, schedule vs database
    Status(Scope),
    /// Make each region's schedulers match the database (add missing, remove stale, reschedule changed)
    Sync {
        #[command(flatten)]
        scope: Scope,
        /// Show what would change without writing
        #[arg(long)]
        dry_run: bool,
    },
    /// Stop agents from taking jobs (scheduled jobs keep accumulating)
    Pause {
        #[command(flatten)]
        scope: Scope,
        #[arg(long)]
        dry_run: bool,
    },
    /// Let agents take jobs again
    Resume {
        #[command(flatten)]
        scope: Scope,
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove every waiting job (schedulers and their next runs stay)
    Drain {
        #[command(flatten)]
        scope: Scope,
        /// Do not ask for confirmation
        #[arg(long, short)]
        yes: bool,
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove finished jobs BullMQ keeps for inspection
    Clean {
        #[command(flatten)]
        scope: Scope,
        /// Which finished jobs
        #[arg(long, value_enum, default_value_t = Finished::Both)]
        state: Finished,
        /// Keep jobs that finished more recently than this, e.g. 1h
        #[arg(long, value_parser = parse_interval, default_value = "0s", allow_hyphen_values = true)]
        older_than: Duration,
        /// Do not ask for confirmation
        #[arg(long, short)]
        yes: bool,
        #[arg(long)]
        dry_run: bool,
    },
    /// Move failed jobs back to waiting so agents run them again
    RetryFailed {
        #[command(flatten)]
        scope: Scope,
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, clap::Args)]
struct Scope {
    /// One region [default: every active region]
    #[arg(long, value_name = "CODE")]
    region: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Finished {
    Completed,
    Failed,
    Both,
}

pub async fn run(ctx: &Context, args: Args) -> crate::error::Result<()> {
    let pool = ctx.pool().await?;
    match args.command {
        Command::Status(scope) => {
            let regions = regions(&pool, &scope).await?;
            let wanted = Wanted::load(&pool).await?;
            let lanes = regions.iter().flat_map(|r| Lane::ALL.map(|lane| (r, lane)));
            let mut entries =
                futures::future::join_all(lanes.map(|(r, lane)| status::of_region(&ctx.settings, r, lane, &wanted)))
                    .await;
            entries.retain(|e| e.lane == Lane::Plain || browser_lane_in_use(ctx, e));
            ctx.printer.print(&entries, |p| vec![status_table(p, &entries)])
        }
        Command::Sync { scope, dry_run } => sync(ctx, &pool, &scope, dry_run).await,
        Command::Pause { scope, dry_run } => {
            let regions = regions(&pool, &scope).await?;
            each_region(ctx, &regions, dry_run, |q| async move { control::pause(&q, dry_run).await }).await
        }
        Command::Resume { scope, dry_run } => {
            let regions = regions(&pool, &scope).await?;
            each_region(ctx, &regions, dry_run, |q| async move { control::resume(&q, dry_run).await }).await
        }
        Command::Drain { scope, yes, dry_run } => {
            let regions = regions(&pool, &scope).await?;
            if !dry_run {
                ctx.confirm(&format!("Remove every waiting job in {}?", regions.join(", ")), yes)?;
            }
            each_region(ctx, &regions, dry_run, |q| async move { control::drain(&q, dry_run).await }).await
        }
        Command::Clean { scope, state, older_than, yes, dry_run } => {
            let regions = regions(&pool, &scope).await?;
            let which = match state {
                Finished::Completed => control::Finished::Completed,
                Finished::Failed => control::Finished::Failed,
                Finished::Both => control::Finished::Both,
            };
            if !dry_run {
                let states = which.states().join(" and ");
                ctx.confirm(&format!("Remove {states} jobs in {}?", regions.join(", ")), yes)?;
            }
            each_region(ctx, &regions, dry_run, |q| async move { control::clean(&q, which, older_than, dry_run).await })
                .await
        }
        Command::RetryFailed { scope, dry_run } => {
            let regions = regions(&pool, &scope).await?;
            each_region(ctx, &regions, dry_run, |q| async move { control::retry_failed(&q, dry_run).await }).await
        }
    }
}

/// The regions a command covers: the one named (which must be active) or every active one.
async fn regions(pool: &sqlx::PgPool, scope: &Scope) -> crate::error::Result<Vec<String>> {
    let active = RegionStore::active_codes(pool).await?;
    match &scope.region {
        None => Ok(active),
        Some(code) => {
            let region = RegionStore::new(pool).get(code).await?;
            if !region.is_active {
                return Err(crate::region::RegionError::Inactive { code: code.clone(), active }.into());
            }
            Ok(vec![code.clone()])
        }
    }
}

/// Whether `queue status` shows a region's browser queue: what [`crate::stack::browser_lane_in_use`]
/// decides (a browser service configured, or schedulers, jobs or the paused flag), read from the
/// counts the status already holds, and also when live agents work on it (one started by hand
/// with `--browser`).
fn browser_lane_in_use(ctx: &Context, entry: &RegionStatus) -> bool {
    let configured = crate::stack::has_browser_service(&ctx.settings, &entry.region);
    let used = entry.state.as_ref().is_some_and(|s| {
        let c = &s.counts;
        s.schedulers > 0
            || s.live_agents > 0
            || s.is_paused
            || [c.waiting, c.active, c.delayed, c.prioritized, c.completed, c.failed, c.paused].iter().any(|n| *n > 0)
    });
    configured || used
}

fn status_table(p: &Printer, entries: &[RegionStatus]) -> comfy_table::Table {
    let mut table = p.table([
        "REGION",
        "QUEUE",
        "REDIS",
        "WAITING",
        "ACTIVE",
        "DELAYED",
        "PRIORITIZED",
        "COMPLETED",
        "FAILED",
        "PAUSED",
        "SCHEDULERS",
        "AGENTS",
        "OLDEST WAITING",
        "SCHEDULE",
    ]);
    for e in entries {
        let redis = match (&e.state, e.configured) {
            (Some(s), _) if s.is_paused => "paused".to_string(),
            (Some(_), _) => "up".to_string(),
            (None, false) => "not configured".to_string(),
            (None, true) => "unreachable".to_string(),
        };
        let mut row = vec![e.region.clone().into(), e.queue.clone().into(), p.status_cell(&redis)];
        match &e.state {
            Some(s) => {
                let c = &s.counts;
                row.extend(
                    [c.waiting, c.active, c.delayed, c.prioritized, c.completed, c.failed, c.paused, s.schedulers]
                        .map(|n| n.to_string().into()),
                );
                // Each lane counts the agents that work on it (see `queue::Lane`).
                row.push(s.live_agents.to_string().into());
                row.push(or_dash(s.oldest_waiting_seconds.map(|secs| format!("{secs:.1}s"))).into());
                let schedule = if s.schedule_matches {
                    "matches".to_string()
                } else {
                    format!("mismatch: {} to sync", s.sync_pending)
                };
                row.push(schedule.into());
            }
            None => row.extend((0..11).map(|_| "-".into())),
        }
        table.add_row(row);
    }
    // Both lanes of a region share its Redis: one note says why it cannot be read.
    for e in entries.iter().filter(|e| e.error.is_some() && e.lane == Lane::Plain) {
        note(format!("{}: {}", e.region, e.error.as_deref().unwrap_or_default()));
    }
    table
}

async fn sync(ctx: &Context, pool: &sqlx::PgPool, scope: &Scope, dry_run: bool) -> crate::error::Result<()> {
    let regions = regions(pool, scope).await?;
    let wanted = Wanted::load(pool).await?;
    let results = futures::future::join_all(regions.iter().map(|region| {
        let wanted = &wanted;
        async move {
            let queue = RegionQueue::open(&ctx.settings, region).await?;
            let report = schedule::reconcile_region(&queue, wanted, dry_run).await;
            queue.close().await;
            report
        }
    }))
    .await;
    let mut reports: Vec<SyncReport> = Vec::new();
    let mut failed: Vec<QueueError> = Vec::new();
    for (region, result) in regions.iter().zip(results) {
        match result {
            Ok(report) => reports.push(report),
            // Naming one region without a Redis is a mistake; in "every region" it is a note.
            Err(e @ QueueError::NoRedis { .. }) if scope.region.is_some() => return Err(e.into()),
            Err(QueueError::NoRedis { var, .. }) => note(format!("{region}: skipped, no Redis configured (set {var})")),
            Err(e) => failed.push(e),
        }
    }
    let changes: Vec<&schedule::Change> = reports.iter().flat_map(|r| &r.changes).collect();
    for r in &reports {
        let n = r.changes.len();
        let foreign =
            if r.foreign > 0 { format!(", {} scheduler(s) not geoctl's left alone", r.foreign) } else { String::new() };
        note(match (n, dry_run) {
            (0, _) => format!("{}: unchanged ({} scheduler(s) match the database{foreign})", r.region, r.unchanged),
            (n, true) => format!("{}: {n} change(s) would be made (dry run, nothing written){foreign}", r.region),
            (n, false) => format!("{}: {n} change(s) made, {} unchanged{foreign}", r.region, r.unchanged),
        });
    }
    ctx.printer.print(&reports, |p| {
        if changes.is_empty() {
            return Vec::new();
        }
        let mut table = p.table(["REGION", if dry_run { "WOULD" } else { "ACTION" }, "ID", "MONITOR", "DETAIL"]);
        for c in &changes {
            table.add_row(vec![
                c.region.clone(),
                c.action.as_str().to_string(),
                c.id.clone(),
                or_dash(c.monitor.as_ref()),
                c.detail.clone(),
            ]);
        }
        vec![table]
    })?;
    match failed.len() {
        0 => Ok(()),
        1 => Err(failed.remove(0).into()),
        n => {
            for e in &failed {
                note(format!("error: {e}"));
            }
            Err(crate::error::failed(format!("{n} regions could not be synced (see above)")))
        }
    }
}

/// What an action did to one queue of a region, as `-o json` shows it.
#[derive(Debug, Serialize)]
struct Outcome {
    region: String,
    /// `monitor-<code>` or `browser-<code>`; absent when the region's Redis could not be reached.
    queue: Option<String>,
    changed: bool,
    result: String,
    /// Jobs concerned, where the action counts them.
    jobs: Option<u64>,
    error: Option<String>,
}

/// The queues of a region an action covers: the plain one, and the browser one when
/// [`crate::stack::browser_lane_in_use`] says it is part of the region.
async fn lanes_of(ctx: &Context, plain: &RegionQueue) -> Result<Vec<RegionQueue>, QueueError> {
    if crate::stack::browser_lane_in_use(&ctx.settings, plain).await? {
        Ok(vec![plain.clone(), plain.lane(Lane::Browser).await?])
    } else {
        Ok(vec![plain.clone()])
    }
}

/// Runs an action on each region's queues (both lanes, see [`lanes_of`]), prints one line per
/// queue, and fails (after trying every region) when a region could not be reached.
async fn each_region<F, Fut>(ctx: &Context, regions: &[String], dry_run: bool, action: F) -> crate::error::Result<()>
where
    F: Fn(RegionQueue) -> Fut,
    Fut: std::future::Future<Output = Result<Done, QueueError>>,
{
    let mut outcomes = Vec::new();
    let mut failures = 0;
    for region in regions {
        let queues = match RegionQueue::open(&ctx.settings, region).await {
            Ok(plain) => {
                let lanes = lanes_of(ctx, &plain).await;
                if lanes.is_err() {
                    plain.close().await;
                }
                lanes
            }
            Err(e) if regions.len() == 1 => return Err(e).context(format!("region {region}")),
            Err(e) => Err(e),
        };
        let results = match queues {
            Ok(queues) => {
                let mut results = Vec::new();
                for queue in queues {
                    let outcome = action(queue.clone()).await;
                    queue.close().await;
                    results.push((Some(queue.name().to_string()), outcome));
                }
                results
            }
            Err(e) => vec![(None, Err(e))],
        };
        for (queue, result) in results {
            outcomes.push(match result {
                Ok(done) => Outcome {
                    region: region.clone(),
                    queue,
                    changed: done.changed,
                    result: if dry_run && done.changed {
                        format!("would be {} (dry run)", done.result)
                    } else {
                        done.result.to_string()
                    },
                    jobs: done.jobs,
                    error: None,
                },
                Err(e) => {
                    if !matches!(e, QueueError::NoRedis { .. }) {
                        failures += 1;
                    }
                    Outcome {
                        region: region.clone(),
                        queue,
                        changed: false,
                        result: "skipped".into(),
                        jobs: None,
                        error: Some(e.to_string()),
                    }
                }
            });
        }
    }
    for o in outcomes.iter().filter(|o| o.error.is_some()) {
        note(format!("{}: {}", o.region, o.error.as_deref().unwrap_or_default()));
    }
    ctx.printer.print(&outcomes, |p| {
        let mut table = p.table(["REGION", "QUEUE", "RESULT", "JOBS"]);
        for o in &outcomes {
            table.add_row(vec![
                o.region.clone().into(),
                or_dash(o.queue.as_ref()).into(),
                p.status_cell(&o.result),
                or_dash(o.jobs).into(),
            ]);
        }
        vec![table]
    })?;
    if failures > 0 {
        return Err(crate::error::failed(format!("{failures} queue(s) could not be reached (see above)")));
    }
    Ok(())
}

/// After a `monitor` command's database write: reschedule in the regions
/// concerned and say, on stderr, what changed and which regions could not
/// follow. Never fails the command: the database write stands and
/// `queue sync` catches up.
pub(super) async fn follow_up(ctx: &Context, pool: &sqlx::PgPool, touched: &[schedule::Touched]) {
    let report = schedule::follow(&ctx.settings, pool, touched).await;
    for c in &report.changes {
        let what = match c.action {
            schedule::Action::Add => format!("scheduled in {} ({})", c.region, c.detail),
            schedule::Action::Reschedule => format!("rescheduled in {} ({})", c.region, c.detail),
            schedule::Action::Remove => format!("unscheduled from {}", c.region),
            schedule::Action::RemoveJob => continue,
        };
        note(format!("{}: {what}", c.monitor.as_deref().unwrap_or(&c.id)));
    }
    let (unconfigured, down): (Vec<_>, Vec<_>) = report.not_scheduled.iter().partition(|n| n.not_configured);
    if !unconfigured.is_empty() {
        let regions: Vec<&str> = unconfigured.iter().map(|n| n.region.as_str()).collect();
        let vars: Vec<String> = regions.iter().map(|r| format!("REDIS_URL_{}", crate::config::env_suffix(r))).collect();
        note(format!(
            "not scheduled in {} (no Redis configured: set {}); run `geoctl queue sync` once it is",
            regions.join(", "),
            vars.join(", ")
        ));
    }
    for n in down {
        note(format!(
            "not scheduled in {}: {}; run `geoctl queue sync --region {}` when it is back",
            n.region, n.reason, n.region
        ));
    }
}
