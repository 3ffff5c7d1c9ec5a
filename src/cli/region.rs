//! `geoctl region …`: list, show, add, update, enable, disable, set-default,
//! delete; `init` and `destroy` (in `region_init`) bring its stack up and down.

use comfy_table::Table;

use super::checks::parse_latency;
use super::Context;
use crate::cli::output::{note, or_dash, Printer};
use crate::region::{Region, RegionPatch, RegionStore};
use crate::store::Change;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List regions
    List,
    /// Show one region
    Show { code: String },
    /// Add a region (re-adding an identical region changes nothing)
    Add {
        /// Region code, e.g. eu-central
        code: String,
        #[command(flatten)]
        fields: Fields,
        /// Validate and show the result without writing
        #[arg(long)]
        dry_run: bool,
    },
    /// Change a region's fields
    Update {
        code: String,
        #[command(flatten)]
        fields: Fields,
        /// Validate and show the result without writing
        #[arg(long)]
        dry_run: bool,
    },
    /// Let monitors run in a region again
    Enable {
        code: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// Stop assigning monitors to a region (the default region cannot be disabled)
    Disable {
        code: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// Make a region the default
    SetDefault {
        code: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// Bring a region up from nothing: swarm, node labels, schema, registration, secrets, network, stack, healthy agents
    Init {
        /// Region code, e.g. eu-central
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        code: Option<String>,
        /// Every configured region, one after another; one failing does not stop the others
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        fields: Fields,
        #[command(flatten)]
        flags: super::region_init::InitFlags,
        /// Show the plan, change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove a region's stack, network and secrets from its engine (the region stays registered)
    Destroy {
        code: String,
        /// Also remove the agents' spool volumes
        #[arg(long)]
        volumes: bool,
        /// Do not ask for confirmation
        #[arg(long, short)]
        yes: bool,
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete a region that no monitor uses
    Delete {
        code: String,
        /// Do not ask for confirmation
        #[arg(long, short)]
        yes: bool,
        /// Succeed (exit 0) when there is no such region; without it that is exit 2, so typos show
        #[arg(long)]
        ignore_not_found: bool,
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, clap::Args)]
struct Fields {
    /// Display name, e.g. "EU Central (Frankfurt)"
    #[arg(long)]
    name: Option<String>,
    /// City the region's nodes are in
    #[arg(long)]
    city: Option<String>,
    /// ISO 3166-1 alpha-2 country code, e.g. DE
    #[arg(long)]
    country: Option<String>,
    /// Latitude, -90 to 90
    #[arg(long, allow_negative_numbers = true)]
    latitude: Option<f64>,
    /// Longitude, -180 to 180
    #[arg(long, allow_negative_numbers = true)]
    longitude: Option<f64>,
    /// Response time above which the region is degraded, e.g. 200ms
    #[arg(long, value_parser = parse_latency)]
    latency_warning: Option<i32>,
    /// Response time above which the region is critical, e.g. 500ms
    #[arg(long, value_parser = parse_latency)]
    latency_critical: Option<i32>,
}

impl From<Fields> for RegionPatch {
    fn from(f: Fields) -> Self {
        RegionPatch {
            name: f.name,
            city: f.city,
            country: f.country,
            latitude: f.latitude,
            longitude: f.longitude,
            latency_warning_ms: f.latency_warning,
            latency_critical_ms: f.latency_critical,
        }
    }
}

pub async fn run(ctx: &Context, args: Args) -> crate::error::Result<()> {
    let args = match args.command {
        Command::Init { code: Some(code), fields, flags, dry_run, .. } => {
            return super::region_init::init(ctx, &code, fields.into(), flags, dry_run).await
        }
        Command::Init { code: None, fields, flags, dry_run, .. } => {
            let patch: RegionPatch = fields.into();
            if !patch.is_empty() || flags.advertise_addr.is_some() || !flags.nodes.is_empty() {
                return Err(crate::error::input_error(
                    "region init --all takes no region fields, --advertise-addr or --node: they differ per region; give them with `region init CODE`",
                ));
            }
            return super::each::each_region(ctx, "region init", |code| {
                let (flags, patch) = (flags.clone(), RegionPatch::default());
                async move { super::region_init::init(ctx, &code, patch, flags, dry_run).await }
            })
            .await;
        }
        Command::Destroy { code, volumes, yes, dry_run } => {
            return super::region_init::destroy(ctx, &code, volumes, yes, dry_run).await
        }
        command => Args { command },
    };
    let pool = ctx.pool().await?;
    let store = RegionStore::new(&pool);
    let p = &ctx.printer;
    let (region, change, dry_run) = match args.command {
        Command::List => {
            let regions = store.list().await?;
            return p.print(&regions, |p| vec![list_table(p, &regions)]);
        }
        Command::Show { code } => {
            let region = store.get(&code).await?;
            return p.print(&region, |p| vec![detail_table(p, &region)]);
        }
        Command::Add { code, fields, dry_run } => {
            let (region, change) = store.add(&code, &fields.into(), dry_run).await?;
            (region, change, dry_run)
        }
        Command::Update { code, fields, dry_run } => {
            let patch: RegionPatch = fields.into();
            if patch.is_empty() {
                return Err(crate::error::input_error(
                    "nothing to update; pass at least one of --name, --city, --country, --latitude, --longitude, --latency-warning, --latency-critical",
                ));
            }
            let (region, change) = store.update(&code, &patch, dry_run).await?;
            (region, change, dry_run)
        }
        Command::Enable { code, dry_run } => {
            let (r, c) = store.set_active(&code, true, dry_run).await?;
            (r, c, dry_run)
        }
        Command::Disable { code, dry_run } => {
            let (r, c) = store.set_active(&code, false, dry_run).await?;
            (r, c, dry_run)
        }
        Command::SetDefault { code, dry_run } => {
            let (r, c) = store.set_default(&code, dry_run).await?;
            (r, c, dry_run)
        }
        Command::Delete { code, yes, dry_run, ignore_not_found } => {
            if ignore_not_found && !store.exists(&code).await? {
                note(format!("no region `{code}`; nothing to delete"));
                return Ok(());
            }
            if !dry_run {
                // Validate first so the prompt is only shown for a deletable region.
                store.delete(&code, true).await?;
                ctx.confirm(&format!("Delete region `{code}`?"), yes)?;
            }
            let (r, c) = store.delete(&code, dry_run).await?;
            (r, c, dry_run)
        }
        Command::Init { .. } | Command::Destroy { .. } => unreachable!("handled above"),
    };
    report_change("region", &region.code, change, dry_run);
    p.print(&region, |p| vec![detail_table(p, &region)])
}

/// One line on stderr saying what happened (or would have).
pub fn report_change(noun: &str, name: &str, change: Change, dry_run: bool) {
    let verb = match change {
        Change::Created => "created",
        Change::Updated => "updated",
        Change::Deleted => "deleted",
        Change::Unchanged => {
            note(format!("{noun} {name} unchanged (already as requested)"));
            return;
        }
    };
    if dry_run {
        note(format!("{noun} {name} would be {verb} (dry run, nothing changed)"));
    } else {
        note(format!("{noun} {name} {verb}"));
    }
}

fn list_table(p: &Printer, regions: &[Region]) -> Table {
    let mut table = p.table(["CODE", "NAME", "LOCATION", "WARN", "CRIT", "ACTIVE", "DEFAULT"]);
    for r in regions {
        table.add_row(vec![
            r.code.clone().into(),
            r.name.clone().into(),
            location(r).into(),
            format!("{}ms", r.latency_warning_ms).into(),
            format!("{}ms", r.latency_critical_ms).into(),
            p.status_cell(if r.is_active { "yes" } else { "no" }),
            (if r.is_default { "*" } else { "" }).into(),
        ]);
    }
    table
}

fn detail_table(p: &Printer, r: &Region) -> Table {
    let mut table = p.table(["FIELD", "VALUE"]);
    let rows: [(&str, String); 10] = [
        ("code", r.code.clone()),
        ("name", r.name.clone()),
        ("city", or_dash(r.city.as_ref())),
        ("country", or_dash(r.country_code.as_ref())),
        ("latitude", or_dash(r.latitude)),
        ("longitude", or_dash(r.longitude)),
        ("latency warning", format!("{}ms", r.latency_warning_ms)),
        ("latency critical", format!("{}ms", r.latency_critical_ms)),
        ("active", r.is_active.to_string()),
        ("default", r.is_default.to_string()),
    ];
    for (k, v) in rows {
        table.add_row([k.to_string(), v]);
    }
    table
}

fn location(r: &Region) -> String {
    let place = [r.city.clone(), r.country_code.clone()].into_iter().flatten().collect::<Vec<_>>().join(", ");
    match (r.latitude, r.longitude) {
        (Some(lat), Some(lon)) if !place.is_empty() => format!("{place} ({lat:.4}, {lon:.4})"),
        (Some(lat), Some(lon)) => format!("{lat:.4}, {lon:.4}"),
        _ => place,
    }
}
