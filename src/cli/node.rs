//! `geoctl node …`: list the swarm's nodes, label them by region, drain and activate them.

use bollard::models::NodeSpecAvailabilityEnum;

use super::swarm::{connect, EngineArgs};
use super::Context;
use crate::cli::output::{note, or_dash};
use crate::swarm::node::{short, NodeChange};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List nodes with their role, state and labels
    Ls {
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Put a node in a region: label `<label>=<region>` (on that region's engine)
    Label {
        /// Node id, id prefix or hostname
        node: String,
        /// The region the node serves
        #[arg(long, value_name = "CODE")]
        region: String,
        /// Label name the stack's placement uses
        #[arg(long, default_value = "region")]
        label: String,
        /// Remove the label instead
        #[arg(long)]
        remove: bool,
        #[arg(long)]
        dry_run: bool,
    },
    /// Move every task off a node (availability drain)
    Drain {
        node: String,
        #[command(flatten)]
        engine: EngineArgs,
        #[arg(long)]
        dry_run: bool,
    },
    /// Let the scheduler use a node again (availability active)
    Activate {
        node: String,
        #[command(flatten)]
        engine: EngineArgs,
        #[arg(long)]
        dry_run: bool,
    },
}

pub async fn run(ctx: &Context, args: Args) -> crate::error::Result<()> {
    let (node, change, what, dry_run) = match args.command {
        Command::Ls { engine } => {
            let rows = engine.connect(ctx).await?.node_rows().await?;
            return ctx.printer.print(&rows, |p| {
                let mut t = p.table(["ID", "HOSTNAME", "ROLE", "STATUS", "AVAILABILITY", "MANAGER", "LABELS"]);
                for r in &rows {
                    let labels: Vec<String> = r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    t.add_row(vec![
                        short(&r.id).to_string(),
                        r.hostname.clone(),
                        r.role.clone(),
                        r.status.clone(),
                        r.availability.clone(),
                        or_dash(r.manager_status.clone()),
                        labels.join(","),
                    ]);
                }
                vec![t]
            });
        }
        Command::Label { node, region, label, remove, dry_run } => {
            let engine = connect(ctx, Some(&region)).await?;
            let value = (!remove).then_some(region.as_str());
            let change = engine.label_node(&node, &label, value, dry_run).await?;
            let what = if remove { format!("label {label} removed") } else { format!("label {label}={region}") };
            (node, change, what, dry_run)
        }
        Command::Drain { node, engine, dry_run } => {
            let change =
                engine.connect(ctx).await?.set_availability(&node, NodeSpecAvailabilityEnum::DRAIN, dry_run).await?;
            (node, change, "availability drain".to_string(), dry_run)
        }
        Command::Activate { node, engine, dry_run } => {
            let change =
                engine.connect(ctx).await?.set_availability(&node, NodeSpecAvailabilityEnum::ACTIVE, dry_run).await?;
            (node, change, "availability active".to_string(), dry_run)
        }
    };
    let verdict = match (change, dry_run) {
        (NodeChange::Unchanged, _) => "unchanged",
        (NodeChange::Changed, true) => "would change (dry run)",
        (NodeChange::Changed, false) => "changed",
    };
    note(format!("node {node}: {what}: {verdict}"));
    Ok(())
}
