//! `geoctl config show`.

use super::Context;
use crate::cli::output::or_dash;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// The effective configuration and where each value came from (secrets masked)
    Show,
}

pub fn run(ctx: &Context, args: Args) -> crate::error::Result<()> {
    match args.command {
        Command::Show => {
            let rows = ctx.settings.shown();
            ctx.printer.print(&rows, |p| {
                let mut table = p.table(["KEY", "VALUE", "SOURCE"]);
                for row in &rows {
                    table.add_row([row.key.clone(), or_dash(row.value.as_ref()), row.source.clone()]);
                }
                vec![table]
            })
        }
    }
}
