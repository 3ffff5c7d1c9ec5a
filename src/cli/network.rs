//! `geoctl network create`: an overlay network for a region's services.

use std::collections::HashMap;

use super::swarm::EngineArgs;
use super::Context;
use crate::cli::output::note;
use crate::error::input_error;
use crate::swarm::overlay_network;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create an encrypted, attachable overlay network (nothing to do when it exists)
    Create {
        name: String,
        /// Subnet, e.g. 10.20.1.0/24 [default: the engine picks one]
        #[arg(long)]
        subnet: Option<String>,
        #[command(flatten)]
        engine: EngineArgs,
        #[arg(long)]
        dry_run: bool,
    },
}

pub async fn run(ctx: &Context, args: Args) -> crate::error::Result<()> {
    let Command::Create { name, subnet, engine, dry_run } = args.command;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(input_error(format!("`{name}` is not a network name; use letters, digits, '-', '_' and '.'")));
    }
    if let Some(s) = &subnet {
        let ok = s
            .split_once('/')
            .is_some_and(|(ip, bits)| ip.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok());
        if !ok {
            return Err(input_error(format!("--subnet `{s}` is not a subnet; use e.g. 10.20.1.0/24")));
        }
    }
    let engine = engine.connect(ctx).await?;
    engine.require_manager().await?;
    let exists = engine.networks_named(std::slice::from_ref(&name)).await?.contains_key(&name);
    if exists {
        note(format!("network {name}: exists; unchanged"));
    } else if dry_run {
        note(format!("network {name}: would be created (overlay, encrypted, attachable) (dry run)"));
    } else {
        engine.ensure_network(overlay_network(&name, subnet.as_deref(), HashMap::new())).await?;
        note(format!("network {name}: created (overlay, encrypted, attachable)"));
    }
    Ok(())
}
