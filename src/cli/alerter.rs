//! `geoctl alerter`: turn recorded results into incidents and an outbox of
//! notifications. Exactly one runs at a time across every region (a
//! PostgreSQL advisory lock); the others stand by and take over within
//! seconds of the leader's death.

use super::Context;
use crate::alert::service::{self, Heartbeats};
use crate::notify::Notifier;

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

pub async fn run(ctx: &Context, args: Args) -> crate::error::Result<()> {
    let settings = ctx.settings.alerting.settings();
    let pool = ctx.pool().await?;
    let mut heartbeats = Heartbeats::new(&ctx.settings);
    let notifier = Notifier::new(super::notification::delivery_options(ctx))?;
    if !args.once {
        return service::run(&pool, &settings, &mut heartbeats, notifier).await;
    }
    let tick = service::once(&pool, &settings, &mut heartbeats).await?;
    let delivery = crate::notify::deliver_due(&pool, &notifier).await?;
    let report = Once { tick, delivery };
    ctx.printer.print(&report, |p| {
        let mut t = p.table(["RESULTS", "MONITORS", "OPENED", "RESOLVED", "EVENTS", "NOTIFICATIONS", "DELIVERED"]);
        let (tick, delivery) = (&report.tick, &report.delivery);
        t.add_row(vec![
            tick.results.to_string(),
            tick.monitors.to_string(),
            tick.opened.to_string(),
            tick.resolved.to_string(),
            tick.events.to_string(),
            tick.notifications.to_string(),
            delivery.delivered.to_string(),
        ]);
        vec![t]
    })
}

/// What `alerter --once` did: one evaluation, then one round of delivery.
#[derive(serde::Serialize)]
struct Once {
    #[serde(flatten)]
    tick: crate::alert::store::TickReport,
    delivery: crate::notify::DeliveryReport,
}
