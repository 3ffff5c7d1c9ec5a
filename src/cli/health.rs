//! `geoctl health` and `geoctl doctor`.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::time::Duration;

use super::Context;
use crate::cli::output::{note, or_dash};
use crate::error::input_error;
use crate::health::{self, doctor, EngineReach, RegionHealth};
use crate::region::RegionStore;
use crate::stack::StackSettings;
use crate::swarm::Endpoint;

#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// Only this region
    #[arg(long, value_name = "CODE")]
    region: Option<String>,
    /// Refresh until interrupted
    #[arg(long)]
    watch: bool,
    /// Refresh interval with --watch
    #[arg(long, default_value = "5s", value_parser = super::checks::parse_interval)]
    interval: Duration,
}

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {}

pub async fn run(ctx: &Context, args: HealthArgs) -> crate::error::Result<()> {
    let codes = regions(ctx, args.region.as_deref()).await?;
    loop {
        // Regions sharing an engine share one connection.
        let mut engines: HashMap<Endpoint, EngineReach> = HashMap::new();
        let mut report = Vec::new();
        for code in &codes {
            let endpoint = Endpoint::for_region(&ctx.settings, Some(code));
            if !engines.contains_key(&endpoint) {
                let engine = EngineReach::connect(&endpoint).await;
                engines.insert(endpoint.clone(), engine);
            }
            let stack =
                StackSettings::resolve(&ctx.settings, code).map_or_else(|_| format!("geoctl-{code}"), |s| s.name);
            report.push(health::region(&ctx.settings, code, &engines[&endpoint], &stack).await);
        }
        if args.watch && ctx.printer.terminal {
            print!("\x1b[2J\x1b[H");
        }
        print(ctx, &report)?;
        let unhealthy: Vec<String> =
            report.iter().filter(|r| !r.healthy).map(|r| format!("{} ({})", r.region, r.reasons.join("; "))).collect();
        if !args.watch {
            if unhealthy.is_empty() {
                return Ok(());
            }
            return Err(crate::error::failed(format!("unhealthy: {}", unhealthy.join(", "))));
        }
        for line in &unhealthy {
            note(format!("unhealthy: {line}"));
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// The active regions from the database, or the configured ones when it
/// cannot be reached; `--region` picks one of them.
async fn regions(ctx: &Context, only: Option<&str>) -> crate::error::Result<Vec<String>> {
    let mut codes = match ctx.pool().await {
        Ok(pool) => RegionStore::active_codes(&pool).await?,
        Err(e) => {
            note(format!("database not usable ({e}); checking the configured regions"));
            ctx.settings.regions.keys().cloned().collect()
        }
    };
    codes.sort();
    if let Some(code) = only {
        if !codes.iter().any(|c| c == code) {
            return Err(input_error(format!(
                "unknown region `{code}`; active regions: {}",
                if codes.is_empty() { "none".into() } else { codes.join(", ") }
            )));
        }
        codes.retain(|c| c == code);
    }
    Ok(codes)
}

fn print(ctx: &Context, report: &[RegionHealth]) -> crate::error::Result<()> {
    ctx.printer.print(report, |p| {
        let mut t = p.table(["region", "status", "redis", "agents", "queue", "oldest wait", "services", "app"]);
        for r in report {
            let ms = |v: Option<f64>| v.map(|v| format!(" {v:.1}ms")).unwrap_or_default();
            let counts = |q: &health::QueueCounts| {
                format!("{} waiting, {} active, {} delayed, {} failed", q.waiting, q.active, q.delayed, q.failed)
            };
            let oldest = |q: &health::QueueCounts| q.oldest_waiting_seconds.map(|s| format!("{s:.0}s"));
            // A browser queue in use gets a second line in the queue's cells.
            let (queue, oldest) = match (&r.queue, &r.browser_queue) {
                (Some(q), Some(b)) => (
                    Some(format!("{}\nbrowser: {}", counts(q), counts(b))),
                    Some(format!("{}\nbrowser: {}", or_dash(oldest(q)), or_dash(oldest(b)))),
                ),
                (q, _) => (q.as_ref().map(counts), q.as_ref().and_then(oldest)),
            };
            t.add_row(vec![
                comfy_table::Cell::new(&r.region),
                p.status_cell(if r.healthy { "up" } else { "down" }),
                comfy_table::Cell::new(format!("{}{}", r.redis.status.as_str(), ms(r.redis.latency_ms))),
                comfy_table::Cell::new(match r.agents.status {
                    health::Status::Ok => r.agents.detail.clone(),
                    other => other.as_str().to_string(),
                }),
                comfy_table::Cell::new(or_dash(queue)),
                comfy_table::Cell::new(or_dash(oldest)),
                comfy_table::Cell::new(match r.services.status {
                    health::Status::Ok | health::Status::Down => r.services.detail.clone(),
                    other => other.as_str().to_string(),
                }),
                comfy_table::Cell::new(format!("{}{}", r.app.status.as_str(), ms(r.app.latency_ms))),
            ]);
        }
        vec![t]
    })
}

pub async fn doctor(ctx: &Context, _args: DoctorArgs) -> crate::error::Result<()> {
    let items = doctor::run(&ctx.settings).await;
    let color = ctx.printer.color && std::io::stdout().is_terminal();
    ctx.printer.print(&items, |p| {
        let mut t = p.table(["", "check", "detail", "fix"]);
        for item in &items {
            let mark = if item.ok { "✓" } else { "✗" };
            let cell = if color {
                comfy_table::Cell::new(mark).fg(if item.ok {
                    comfy_table::Color::Green
                } else {
                    comfy_table::Color::Red
                })
            } else {
                comfy_table::Cell::new(mark)
            };
            t.add_row(vec![
                cell,
                comfy_table::Cell::new(&item.check),
                comfy_table::Cell::new(&item.detail),
                comfy_table::Cell::new(item.fix.clone().unwrap_or_default()),
            ]);
        }
        vec![t]
    })?;
    let failed: Vec<&str> = items.iter().filter(|i| !i.ok).map(|i| i.check.as_str()).collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(crate::error::failed(format!("{} check(s) failed: {}", failed.len(), failed.join(", "))))
    }
}
