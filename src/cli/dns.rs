//! `geoctl dns plan|sync`: GeoDNS records and health checks on Route 53.

use std::time::Duration;

use super::Context;
use crate::cli::output::note;
use crate::dns::{self, DesiredRegion, DnsError, Step};

use crate::error::Context as _;
use crate::region::RegionStore;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Show the changes `dns sync` would make
    Plan {
        /// Hosted zone, e.g. example.com
        #[arg(long)]
        zone: String,
    },
    /// Make Route 53 match the active regions, and wait until the change is in sync
    Sync {
        /// Hosted zone, e.g. example.com
        #[arg(long)]
        zone: String,
        /// Create the hosted zone when it does not exist
        #[arg(long)]
        create_zone: bool,
        /// Show the changes without making them
        #[arg(long)]
        dry_run: bool,
        /// How long to wait for Route 53 to report the change INSYNC
        #[arg(long, default_value = "5m", value_parser = super::checks::parse_interval)]
        wait: Duration,
    },
}

pub async fn run(ctx: &Context, args: Args) -> crate::error::Result<()> {
    let (zone, create_zone, apply, wait) = match args.command {
        Command::Plan { zone } => (zone, false, false, Duration::ZERO),
        Command::Sync { zone, create_zone, dry_run, wait } => (zone, create_zone, !dry_run, wait),
    };
    let zone = dns::validate_zone(&zone)?;
    let pool = ctx.pool().await?;
    let regions = RegionStore::new(&pool).list().await?;
    let known: Vec<String> = regions.iter().map(|r| r.code.clone()).collect();
    let desired = desired(ctx, regions.iter().filter(|r| r.is_active).map(|r| r.code.as_str()))?;

    let client = crate::aws::route53(&ctx.settings.aws).await?;
    let zone_id = match dns::find_zone(&client, &zone).await? {
        Some(id) => Some(id),
        None if create_zone && apply => {
            let id = dns::create_zone(&client, &zone).await?;
            note(format!("created hosted zone {zone} ({id})"));
            Some(id)
        }
        None if create_zone => None,
        None => {
            return Err(DnsError::Input(format!(
                "hosted zone {zone} does not exist in Route 53; create it, or pass --create-zone to `geoctl dns sync`"
            ))
            .into())
        }
    };
    let current = match &zone_id {
        Some(id) => dns::read_state(&client, id, &zone).await?,
        None => dns::Current::default(),
    };
    let steps = dns::plan(&zone, &desired, &known, &current);
    print_plan(ctx, &steps)?;
    if steps.is_empty() {
        note(format!("{zone}: unchanged, Route 53 matches the {} active region(s)", desired.len()));
        return Ok(());
    }
    if !apply {
        note(format!("{} change(s) planned; `geoctl dns sync --zone {zone}` applies them", steps.len()));
        return Ok(());
    }
    let zone_id = zone_id.expect("created above when applying");
    dns::apply(&client, &zone_id, &zone, &steps, wait, say).await.context("dns sync failed")?;
    note(format!("{zone}: applied {} change(s), in sync", steps.len()));
    Ok(())
}

/// Each active region's address and AWS region from the configuration; a
/// region missing either is named, with the keys to set.
fn desired<'a>(ctx: &Context, active: impl Iterator<Item = &'a str>) -> Result<Vec<DesiredRegion>, DnsError> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for code in active {
        let endpoints = ctx.settings.regions.get(code);
        let address = endpoints.and_then(|e| e.public_address.as_ref());
        let aws_region = endpoints.and_then(|e| e.aws_region.as_ref());
        match (address, aws_region) {
            (Some(address), Some(aws_region)) => out.push(DesiredRegion {
                code: code.to_string(),
                address: address.value.parse().map_err(|_| DnsError::Input(format!("{code}: bad public_address")))?,
                aws_region: aws_region.value.clone(),
            }),
            _ => missing.push(code.to_string()),
        }
    }
    if let Some(first) = missing.first() {
        return Err(DnsError::Input(format!(
            "active region(s) {} have no AWS mapping; set regions.{first}.public_address and regions.{first}.aws_region \
             in geoctl.yaml (or PUBLIC_ADDRESS_{s} and AWS_REGION_{s}), or disable the region",
            missing.join(", "),
            s = crate::config::env_suffix(first)
        )));
    }
    Ok(out)
}

fn print_plan(ctx: &Context, steps: &[Step]) -> crate::error::Result<()> {
    ctx.printer.print(steps, |p| {
        let mut t = p.table(["region", "action", "what", "detail"]);
        for step in steps {
            let (action, what, detail) = step.describe();
            t.add_row(vec![step.region().to_string(), action.to_string(), what, detail]);
        }
        vec![t]
    })
}

/// Progress messages of the domain code, on stderr.
fn say(message: String) {
    note(message)
}
