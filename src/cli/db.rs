//! `geoctl db migrate|status`.

use serde::Serialize;

use super::Context;
use crate::output::{note, or_dash};
use crate::store;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Apply pending migrations (safe to run again: applied ones are skipped)
    Migrate {
        /// Show the pending migrations without applying them
        #[arg(long)]
        dry_run: bool,
    },
    /// Show which migrations are applied and which are pending
    Status,
}

#[derive(Serialize)]
struct MigrateReport {
    applied: Vec<i64>,
    pending: Vec<i64>,
    dry_run: bool,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let pool = ctx.pool().await?;
    match args.command {
        Command::Migrate { dry_run } => {
            let pending: Vec<i64> =
                store::status(&pool).await?.into_iter().filter(|m| !m.applied).map(|m| m.version).collect();
            let report = if dry_run {
                MigrateReport { applied: vec![], pending, dry_run }
            } else {
                MigrateReport { applied: store::migrate(&pool).await?, pending: vec![], dry_run }
            };
            match (dry_run, report.applied.len(), report.pending.len()) {
                (true, _, 0) | (false, 0, _) => note("database is up to date; nothing to apply"),
                (true, _, n) => note(format!("{n} migration(s) would be applied (dry run, nothing changed)")),
                (false, n, _) => note(format!("applied {n} migration(s)")),
            }
            ctx.printer.print(&report, |p| {
                let versions = if dry_run { &report.pending } else { &report.applied };
                let mut table = p.table(["VERSION", if dry_run { "WOULD APPLY" } else { "APPLIED" }]);
                for v in versions {
                    table.add_row([v.to_string(), "yes".into()]);
                }
                vec![table]
            })
        }
        Command::Status => {
            let states = store::status(&pool).await?;
            ctx.printer.print(&states, |p| {
                let mut table = p.table(["VERSION", "DESCRIPTION", "STATE", "APPLIED AT"]);
                for m in &states {
                    let state = match (m.applied, m.checksum_mismatch) {
                        (true, true) => "mismatch",
                        (true, false) => "applied",
                        (false, _) => "pending",
                    };
                    table.add_row(vec![
                        m.version.to_string().into(),
                        m.description.clone().into(),
                        p.status_cell(state),
                        or_dash(m.applied_at.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC"))).into(),
                    ]);
                }
                vec![table]
            })
        }
    }
}
