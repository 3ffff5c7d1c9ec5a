//! `geoctl incident`: list, show, acknowledge and resolve what the alerter opened.

use super::Context;
use crate::alert::manage::{self, Incident};
use crate::cli::output::{note, or_dash};
use crate::monitor::MonitorStore;
use crate::store::Change;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Incidents, newest first
    List {
        /// Only the unresolved ones
        #[arg(long)]
        open: bool,
        /// Only this monitor's (id or name)
        #[arg(long)]
        monitor: Option<String>,
        /// Show at most this many
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// An incident's timeline of events, and its monitor's results around it
    Show { id: i64 },
    /// Acknowledge an open incident (its channels hear it; PagerDuty stops escalating)
    Ack {
        id: i64,
        /// Who acknowledges
        #[arg(long, env = "USER", default_value = "operator")]
        by: String,
    },
    /// Resolve an incident by hand; a later failure opens a new one
    Resolve {
        id: i64,
        /// Who resolves
        #[arg(long, env = "USER", default_value = "operator")]
        by: String,
    },
}

pub async fn run(ctx: &Context, args: Args) -> crate::error::Result<()> {
    let pool = ctx.pool().await?;
    let settings = ctx.settings.alerting.settings();
    match args.command {
        Command::List { open, monitor, limit } => {
            let monitor = match monitor {
                Some(reference) => Some(MonitorStore::new(&pool, ctx.placement()).get(&reference).await?.id),
                None => None,
            };
            let incidents = manage::list(&pool, open, monitor, limit.max(1)).await?;
            ctx.printer.print(&incidents, |p| vec![incident_table(p, &incidents)])
        }
        Command::Show { id } => {
            let detail = manage::show(&pool, id).await?;
            ctx.printer.print(&detail, |p| {
                let mut events = p.table(["AT", "EVENT", "SUMMARY", "PENDING", "DELIVERED", "FAILED", "SUPPRESSED"]);
                for e in &detail.events {
                    events.add_row(vec![
                        e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        e.kind.clone(),
                        e.detail.get("summary").and_then(|s| s.as_str()).unwrap_or("").to_string(),
                        e.pending.to_string(),
                        e.delivered.to_string(),
                        e.failed.to_string(),
                        e.suppressed.to_string(),
                    ]);
                }
                let mut results = p.table(["CHECKED AT", "REGION", "STATE", "TOTAL MS", "ERROR"]);
                for r in &detail.results {
                    let state = match r.up {
                        Some(true) => "up",
                        Some(false) => "down",
                        None => "-",
                    };
                    results.add_row(vec![
                        comfy_table::Cell::new(r.checked_at.format("%Y-%m-%d %H:%M:%S").to_string()),
                        comfy_table::Cell::new(or_dash(r.region.clone())),
                        p.status_cell(state),
                        comfy_table::Cell::new(crate::cli::output::ms(r.total_ms)),
                        comfy_table::Cell::new(or_dash(r.error.clone())),
                    ]);
                }
                vec![incident_table(p, std::slice::from_ref(&detail.incident)), events, results]
            })
        }
        Command::Ack { id, by } => {
            let (incident, change) = manage::ack(&pool, &settings, id, &by).await?;
            say(ctx, &incident, change, "acknowledged")
        }
        Command::Resolve { id, by } => {
            let (incident, change) = manage::resolve(&pool, &settings, id, &by).await?;
            say(ctx, &incident, change, "resolved")
        }
    }
}

fn say(ctx: &Context, incident: &Incident, change: Change, verb: &str) -> crate::error::Result<()> {
    ctx.printer.print(incident, |p| vec![incident_table(p, std::slice::from_ref(incident))])?;
    if change == Change::Unchanged {
        note(format!("incident {} was already {verb}; nothing changed", incident.id));
    } else {
        note(format!("incident {} {verb}", incident.id));
    }
    Ok(())
}

fn incident_table(p: &crate::cli::output::Printer, incidents: &[Incident]) -> comfy_table::Table {
    let mut t = p.table(["ID", "STATE", "SEVERITY", "SUBJECT", "SUMMARY", "OPENED", "RESOLVED", "NOTE"]);
    for i in incidents {
        let subject = i.monitor.as_ref().and_then(|m| m.name.clone()).or_else(|| i.region.clone()).unwrap_or_default();
        let mut notes = Vec::new();
        if i.in_maintenance {
            notes.push("in maintenance".to_string());
        }
        if let Some(by) = &i.acknowledged_by {
            notes.push(format!("ack by {by}"));
        }
        if let Some(by) = i.resolved_by.as_ref().filter(|b| *b != "alerter") {
            notes.push(format!("resolved by {by}"));
        }
        t.add_row(vec![
            comfy_table::Cell::new(i.id),
            p.status_cell(i.state()),
            comfy_table::Cell::new(&i.severity),
            comfy_table::Cell::new(subject),
            comfy_table::Cell::new(&i.summary),
            comfy_table::Cell::new(i.opened_at.format("%Y-%m-%d %H:%M:%S")),
            comfy_table::Cell::new(or_dash(i.resolved_at.map(|t| t.format("%Y-%m-%d %H:%M:%S")))),
            comfy_table::Cell::new(notes.join(", ")),
        ]);
    }
    t
}
