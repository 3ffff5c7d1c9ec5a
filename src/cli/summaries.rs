//! `geoctl summaries rebuild`: recompute daily per-region summaries from results.

use chrono::NaiveDate;
use serde::Serialize;

use super::Context;
use crate::output::note;
use crate::results::summary;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Recompute summaries from the stored results (all days, or one UTC day)
    Rebuild {
        /// UTC day, YYYY-MM-DD
        #[arg(long)]
        date: Option<NaiveDate>,
    },
}

#[derive(Serialize)]
struct Rebuilt {
    date: Option<NaiveDate>,
    summaries: u64,
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let pool = ctx.pool().await?;
    match args.command {
        Command::Rebuild { date } => {
            let summaries = summary::rebuild(&pool, date).await?;
            note(format!("rebuilt {summaries} summary row(s)"));
            let report = Rebuilt { date, summaries };
            ctx.printer.print(&report, |p| {
                let mut table = p.table(["DATE", "SUMMARIES"]);
                table.add_row([date.map_or("all".into(), |d| d.to_string()), summaries.to_string()]);
                vec![table]
            })
        }
    }
}
