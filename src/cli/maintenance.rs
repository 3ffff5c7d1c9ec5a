//! `geoctl maintenance prune`: free the space stopped containers, dangling
//! images and unused volumes hold on a region's engine.

use super::swarm::EngineArgs;
use super::Context;
use crate::output::{note, or_dash};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
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

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let Command::Prune { engine, dry_run, yes } = args.command;
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
