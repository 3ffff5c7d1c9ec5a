//! `geoctl statuspage`: the public status pages `geoctl dashboard` serves at `/status/<slug>`.

use super::Context;
use crate::cli::output::note;
use crate::dashboard::statuspage::{self, StatusPage};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Publish monitors on /status/SLUG (running it again replaces the title and monitors)
    Add {
        /// The page's address: lowercase letters, digits and '-'
        slug: String,
        /// The page's heading
        #[arg(long)]
        title: String,
        /// Monitors to publish, by name or id, in page order
        #[arg(long, value_delimiter = ',', required = true)]
        monitors: Vec<String>,
    },
    /// List the status pages
    List,
    /// Remove a status page (its monitors stay)
    Remove { slug: String },
}

pub async fn run(ctx: &Context, args: Args) -> crate::error::Result<()> {
    let pool = ctx.pool().await?;
    match args.command {
        Command::Add { slug, title, monitors } => {
            let page = statuspage::put(&pool, &slug, &title, &monitors).await?;
            note(format!(
                "status page `{}` publishes {} monitor(s) at /status/{}",
                page.slug,
                page.monitors.len(),
                page.slug
            ));
            print(ctx, &[page])
        }
        Command::List => print(ctx, &statuspage::list(&pool).await?),
        Command::Remove { slug } => {
            let page = statuspage::remove(&pool, &slug).await?;
            note(format!("removed status page `{}`", page.slug));
            Ok(())
        }
    }
}

fn print(ctx: &Context, pages: &[StatusPage]) -> crate::error::Result<()> {
    ctx.printer.print(&pages, |p| {
        let mut table = p.table(["SLUG", "TITLE", "MONITORS", "UPDATED"]);
        for page in pages {
            table.add_row(vec![
                page.slug.clone(),
                page.title.clone(),
                page.monitors.join(", "),
                page.updated_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            ]);
        }
        vec![table]
    })
}
