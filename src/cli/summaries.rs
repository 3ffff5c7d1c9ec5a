//! `geoctl summaries rebuild|refresh`: recompute daily per-region summaries from results.

use chrono::{NaiveDate, Utc};
use serde::Serialize;

use super::Context;
use crate::cli::output::note;
use crate::results::summary;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Recompute summaries exactly from the stored results (all days, or one UTC day),
    /// day by day; days whose results were pruned are kept as they are
    Rebuild {
        /// UTC day, YYYY-MM-DD
        #[arg(long)]
        date: Option<NaiveDate>,
    },
    /// Give closed days their exact percentiles (what agents do periodically)
    Refresh,
}

#[derive(Serialize)]
struct Refreshed {
    days: Vec<NaiveDate>,
}

pub async fn run(ctx: &Context, args: Args) -> crate::error::Result<()> {
    let pool = ctx.pool().await?;
    match args.command {
        Command::Rebuild { date } => {
            let report = summary::rebuild(&pool, date).await?;
            note(format!("rebuilt {} summary row(s) over {} day(s)", report.summaries, report.days));
            if report.pruned_days_kept > 0 {
                note(format!(
                    "kept {} pruned day(s) as they are: results before {} were deleted by `db prune`",
                    report.pruned_days_kept,
                    report.pruned_before.map_or_else(String::new, |h| h.format("%Y-%m-%d %H:%M UTC").to_string())
                ));
            }
            ctx.printer.print(&report, |p| {
                let mut table = p.table(["DATE", "DAYS", "SUMMARIES", "PRUNED DAYS KEPT"]);
                table.add_row([
                    date.map_or("all".into(), |d| d.to_string()),
                    report.days.to_string(),
                    report.summaries.to_string(),
                    report.pruned_days_kept.to_string(),
                ]);
                vec![table]
            })
        }
        Command::Refresh => {
            let days = summary::finalize(&pool, Utc::now().date_naive()).await?;
            let hours = summary::refresh_stale_hours(&pool).await?;
            if hours > 0 {
                note(format!("rebuilt the hourly summaries of {hours} hour(s) holding rows written without geoctl"));
            }
            note(match days.len() {
                0 => "every closed day's summaries are exact; unchanged".to_string(),
                n => format!("recomputed {n} closed day(s) with exact percentiles"),
            });
            let report = Refreshed { days };
            ctx.printer.print(&report, |p| {
                let mut table = p.table(["DAY", "REFRESHED"]);
                for d in &report.days {
                    table.add_row([d.to_string(), "yes".into()]);
                }
                vec![table]
            })
        }
    }
}
