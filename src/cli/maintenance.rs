//! `geoctl maintenance`: windows in which incidents are recorded but not sent
//! (`add`, `list`, `end`), and `prune`, which frees the space stopped
//! containers, dangling images and unused volumes hold on a region's engine.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};

use super::checks::parse_interval;
use super::swarm::EngineArgs;
use super::Context;
use crate::alert::manage::{self, NewWindow, Scope, Window};
use crate::cli::output::{note, or_dash};
use crate::store::Change;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Add a maintenance window for a monitor or a region: its incidents are recorded, marked, and not sent
    #[command(group(clap::ArgGroup::new("scope").required(true).args(["monitor", "region"])))]
    #[command(group(clap::ArgGroup::new("end").required(true).args(["to", "for_"])))]
    Add {
        /// The monitor (id or name)
        #[arg(long)]
        monitor: Option<String>,
        /// The region (code): its region incidents, and monitor incidents seen only from it
        #[arg(long)]
        region: Option<String>,
        /// Start, RFC 3339 or `YYYY-MM-DD HH:MM` in UTC [default: now]
        #[arg(long, value_parser = parse_time)]
        from: Option<DateTime<Utc>>,
        /// End, RFC 3339 or `YYYY-MM-DD HH:MM` in UTC
        #[arg(long, value_parser = parse_time)]
        to: Option<DateTime<Utc>>,
        /// Length instead of --to, e.g. 2h
        #[arg(long = "for", id = "for_", value_parser = parse_interval)]
        for_: Option<Duration>,
        /// Why (shown with the window and its incidents)
        #[arg(long)]
        reason: String,
        /// Who adds it
        #[arg(long, env = "USER", default_value = "operator")]
        by: String,
    },
    /// Windows in force or to come
    List {
        /// Past windows too
        #[arg(long)]
        all: bool,
    },
    /// End a window now (one that has not started is removed)
    End { id: i64 },
    /// Remove stopped containers, dangling images and unused volumes
    Prune {
        #[command(flatten)]
        engine: EngineArgs,
        /// Show what would be removed
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation
        #[arg(long, short)]
        yes: bool,
    },
}

/// RFC 3339, or a UTC date and time without zone.
fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text.trim(), f).ok())
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            format!("`{text}` is not a time; write it like 2026-12-06T14:00:00Z or `2026-12-06 14:00` (UTC)")
        })
}

pub async fn run(ctx: &Context, args: Args) -> crate::error::Result<()> {
    match args.command {
        Command::Add { monitor, region, from, to, for_, reason, by } => {
            let now = Utc::now();
            let starts_at = from.unwrap_or(now);
            let ends_at = match (to, for_) {
                (Some(to), _) => to,
                (None, Some(length)) => starts_at + chrono::Duration::from_std(length).map_err(crate::error::failed)?,
                (None, None) => unreachable!("clap requires --to or --for"),
            };
            let scope = match (monitor, region) {
                (Some(m), _) => Scope::Monitor(m),
                (None, Some(r)) => Scope::Region(r),
                (None, None) => unreachable!("clap requires --monitor or --region"),
            };
            let pool = ctx.pool().await?;
            let window =
                manage::add_window(&pool, NewWindow { scope, starts_at, ends_at, reason, created_by: Some(by) }, now)
                    .await?;
            ctx.printer.print(&window, |p| vec![window_table(p, std::slice::from_ref(&window))])?;
            note(format!("maintenance window {} added", window.id));
            Ok(())
        }
        Command::List { all } => {
            let pool = ctx.pool().await?;
            let windows = manage::list_windows(&pool, all).await?;
            ctx.printer.print(&windows, |p| vec![window_table(p, &windows)])
        }
        Command::End { id } => {
            let pool = ctx.pool().await?;
            let (window, change) = manage::end_window(&pool, id).await?;
            ctx.printer.print(&window, |p| vec![window_table(p, std::slice::from_ref(&window))])?;
            note(match change {
                Change::Unchanged => format!("maintenance window {id} was already over; nothing changed"),
                Change::Deleted => format!("maintenance window {id} had not started; removed"),
                _ => format!("maintenance window {id} ended"),
            });
            Ok(())
        }
        Command::Prune { engine, dry_run, yes } => prune(ctx, engine, dry_run, yes).await,
    }
}

fn window_table(p: &crate::cli::output::Printer, windows: &[Window]) -> comfy_table::Table {
    let mut t = p.table(["ID", "SUBJECT", "FROM", "TO", "REASON", "BY"]);
    for w in windows {
        let subject = match (&w.monitor, &w.region_code) {
            (Some(m), _) => format!("monitor {m}"),
            (None, Some(r)) => format!("region {r}"),
            (None, None) => "-".into(),
        };
        t.add_row(vec![
            w.id.to_string(),
            subject,
            w.starts_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            w.ends_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            w.reason.clone(),
            or_dash(w.created_by.clone()),
        ]);
    }
    t
}

async fn prune(ctx: &Context, engine: EngineArgs, dry_run: bool, yes: bool) -> crate::error::Result<()> {
    let engine = engine.connect(ctx).await?;
    if !dry_run {
        ctx.confirm(
            &format!("remove stopped containers, dangling images and unused volumes on {}?", engine.endpoint),
            yes,
        )?;
    }
    let pruned = engine.prune(dry_run).await?;
    let verb = if dry_run { "would remove" } else { "removed" };
    ctx.printer.print(&pruned, |p| {
        let mut t = p.table(["KIND", "COUNT"]);
        t.add_row(vec!["containers".to_string(), pruned.containers.len().to_string()]);
        t.add_row(vec!["images".to_string(), pruned.images.len().to_string()]);
        t.add_row(vec!["volumes".to_string(), pruned.volumes.len().to_string()]);
        vec![t]
    })?;
    let mb = pruned.bytes.map(|b| format!("{:.1} MB", b as f64 / 1e6));
    note(format!("{verb}; space {}: {}", if dry_run { "held" } else { "freed" }, or_dash(mb)));
    Ok(())
}
