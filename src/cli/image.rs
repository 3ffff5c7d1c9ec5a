//! `geoctl image build`: the agent image, from this geoctl binary, with no
//! base image and no registry.

use std::collections::HashMap;

use super::swarm::EngineArgs;
use super::Context;
use crate::cli::output::note;
use crate::error::input_error;
use crate::stack::{DEFAULT_BROWSER_IMAGE, DEFAULT_IMAGE};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Build the agent image from the running geoctl binary (FROM scratch, nothing pulled)
    Build {
        /// Image tag [default: geoctl:latest, or geoctl:browser with --with-browser]
        #[arg(long, short)]
        tag: Option<String>,
        /// Extra image label KEY=VALUE (repeatable)
        #[arg(long, value_name = "KEY=VALUE")]
        label: Vec<String>,
        #[command(flatten)]
        engine: EngineArgs,
        /// Add the host's Debian Chromium, its libraries and a font set, for the stack's browser service
        #[arg(long)]
        with_browser: bool,
        /// Build on every configured region's engine, one after another (no registry: each engine needs its own)
        #[arg(long, conflicts_with = "region")]
        all: bool,
    },
}

pub async fn run(ctx: &Context, args: Args) -> crate::error::Result<()> {
    let Command::Build { tag, label, engine, all, with_browser } = args.command;
    let default = if with_browser { DEFAULT_BROWSER_IMAGE } else { DEFAULT_IMAGE };
    let tag = tag.unwrap_or_else(|| default.to_string());
    let mut labels = HashMap::new();
    for item in &label {
        let Some((k, v)) = item.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(input_error(format!("--label `{item}` is not KEY=VALUE")));
        };
        labels.insert(k.to_string(), v.to_string());
    }
    if all {
        return super::each::each_region(ctx, "image build", |code| {
            let (tag, labels) = (tag.clone(), labels.clone());
            async move {
                let engine = super::swarm::connect(ctx, Some(&code)).await?;
                build_on(ctx, &engine, &tag, labels, with_browser).await
            }
        })
        .await;
    }
    let engine = engine.connect(ctx).await?;
    build_on(ctx, &engine, &tag, labels, with_browser).await
}

async fn build_on(
    ctx: &Context,
    engine: &crate::swarm::Engine,
    tag: &str,
    labels: HashMap<String, String>,
    browser: bool,
) -> crate::error::Result<()> {
    note(format!("building {tag} on {} from {}", engine.endpoint, std::env::current_exe()?.display()));
    let built = engine.build_agent_image(tag, labels, browser).await?;
    ctx.printer.print(&built, |p| {
        let mut t = p.table(["TAG", "ID", "BROWSER", "FILES", "CONTEXT", "SIZE"]);
        t.add_row(vec![
            built.tag.clone(),
            built.id.clone(),
            if built.browser { "yes" } else { "no" }.to_string(),
            built.files.to_string(),
            format!("{:.1} MB", built.context_bytes as f64 / 1e6),
            built.size_bytes.map_or("-".into(), |b| format!("{:.1} MB", b as f64 / 1e6)),
        ]);
        vec![t]
    })
}
