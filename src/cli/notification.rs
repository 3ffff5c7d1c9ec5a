//! `geoctl notification …`: the outbox — what is owed to which channel, what the receivers
//! answered — and `retry` for a row that failed.

use comfy_table::Table;

use super::Context;
use crate::cli::output::{note, or_dash, Printer};
use crate::notify::outbox::{self, Row};
use crate::notify::{DeliveryOptions, Notifier};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List notifications, newest first
    List {
        /// Only the failed ones (refused by the receiver, or given up on after 24 h)
        #[arg(long)]
        failed: bool,
        /// At most this many
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Make a notification due again and deliver it now; shows what the receiver answered
    Retry { id: i64 },
}

/// Delivery as configured: the default timing, with the configured templates and dashboard.
pub(crate) fn delivery_options(ctx: &Context) -> DeliveryOptions {
    DeliveryOptions {
        dashboard_url: ctx.settings.dashboard_url.as_ref().map(|s| s.value.clone()),
        templates: ctx.settings.notify_templates.as_ref().map(|s| s.value.clone()),
        ..DeliveryOptions::default()
    }
}

fn table(p: &Printer, rows: &[Row]) -> Table {
    let mut t = p.table(["ID", "CHANNEL", "INCIDENT", "EVENT", "STATE", "ATTEMPTS", "STATUS", "ANSWER", "NEXT/DONE"]);
    for r in rows {
        let when = match r.state.as_str() {
            "delivered" => or_dash(r.delivered_at.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())),
            "pending" => r.next_attempt_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            _ => or_dash(r.last_attempt_at.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())),
        };
        t.add_row(vec![
            r.id.to_string().into(),
            r.channel.clone().into(),
            r.incident_id.to_string().into(),
            r.event.clone().into(),
            p.status_cell(&r.state),
            r.attempts.to_string().into(),
            or_dash(r.last_status).into(),
            or_dash(r.last_error.clone()).into(),
            when.into(),
        ]);
    }
    t
}

pub async fn run(ctx: &Context, args: Args) -> crate::error::Result<()> {
    let p = &ctx.printer;
    let pool = ctx.pool().await?;
    match args.command {
        Command::List { failed, limit } => {
            let rows = outbox::list(&pool, failed, limit.max(1)).await?;
            p.print(&rows, |p| vec![table(p, &rows)])
        }
        Command::Retry { id } => {
            let notifier = Notifier::new(delivery_options(ctx))?;
            let row = outbox::retry(&pool, &notifier, id).await?;
            let said =
                super::channel::describe(row.last_status.map(|s| s as u16), row.last_error.as_deref().unwrap_or(""));
            match row.state.as_str() {
                "delivered" => note(format!("notification {id} delivered to {}", row.channel)),
                "pending" => note(format!(
                    "notification {id} not delivered yet ({said}); the alerter tries again at {}",
                    row.next_attempt_at.format("%Y-%m-%d %H:%M:%S UTC")
                )),
                state => note(format!("notification {id} {state}: {said}")),
            }
            let rows = [row];
            p.print(&rows, |p| vec![table(p, &rows)])?;
            if rows[0].state == "delivered" {
                Ok(())
            } else {
                Err(crate::error::failed(format!("notification {id} was not delivered")))
            }
        }
    }
}
