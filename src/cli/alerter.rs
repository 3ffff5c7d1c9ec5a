//! `geoctl alerter`: turn recorded results into incidents and an outbox of
//! notifications. Exactly one runs at a time across every region (a
//! PostgreSQL advisory lock); the others stand by and take over within
//! seconds of the leader's death.

use super::Context;
use crate::alert::service::{self, Heartbeats};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Evaluate once and exit (for cron and tests). Safe next to a running
    /// leader: ticks take turns and carry on from the same committed state
    #[arg(long)]
    once: bool,
}

impl Args {
    /// The long-running form logs like a service; `--once` like any command.
    pub fn is_service(&self) -> bool {
        !self.once
    }
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let settings = ctx.settings.alerting.settings();
    let pool = ctx.pool().await?;
    let mut heartbeats = Heartbeats::new(&ctx.settings);
    if !args.once {
        return service::run(&pool, &settings, &mut heartbeats).await;
    }
    let report = service::once(&pool, &settings, &mut heartbeats).await?;
    ctx.printer.print(&report, |p| {
        let mut t = p.table(["RESULTS", "MONITORS", "OPENED", "RESOLVED", "EVENTS", "NOTIFICATIONS"]);
        t.add_row(vec![
            report.results.to_string(),
            report.monitors.to_string(),
            report.opened.to_string(),
            report.resolved.to_string(),
            report.events.to_string(),
            report.notifications.to_string(),
        ]);
        vec![t]
    })
}
