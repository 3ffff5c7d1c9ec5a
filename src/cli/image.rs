//! `geoctl image build`: the agent image, from this geoctl binary, with no
//! base image and no registry.

use std::collections::HashMap;

use super::swarm::EngineArgs;
use super::Context;
use crate::cli::output::note;
use crate::error::input_error;
use crate::stack::DEFAULT_IMAGE;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Build the agent image from the running geoctl binary (FROM scratch, nothing pulled)
    Build {
        /// Image tag
        #[arg(long, short, default_value = DEFAULT_IMAGE)]
        tag: String,
        /// Extra image label KEY=VALUE (repeatable)
        #[arg(long, value_name = "KEY=VALUE")]
        label: Vec<String>,
        #[command(flatten)]
        engine: EngineArgs,
        /// Build on every configured region's engine, one after another (no registry: each engine needs its own)
        #[arg(long, conflicts_with = "region")]
        all: bool,
    },
}

pub async fn run(ctx: &Context, args: Args) -> crate::error::Result<()> {
    let Command::Build { tag, label, engine, all } = args.command;
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
                build_on(ctx, &engine, &tag, labels).await
            }
        })
        .await;
    }
    let engine = engine.connect(ctx).await?;
    build_on(ctx, &engine, &tag, labels).await
}

async fn build_on(
    ctx: &Context,
    engine: &crate::swarm::Engine,
    tag: &str,
    labels: HashMap<String, String>,
) -> crate::error::Result<()> {
    note(format!("building {tag} on {} from {}", engine.endpoint, std::env::current_exe()?.display()));
    let built = engine.build_agent_image(tag, labels).await?;
    ctx.printer.print(&built, |p| {
        let mut t = p.table(["TAG", "ID", "FILES", "CONTEXT"]);
        t.add_row(vec![
            built.tag.clone(),
            built.id.clone(),
            built.files.to_string(),
            format!("{:.1} MB", built.context_bytes as f64 / 1e6),
        ]);
        vec![t]
    })
}
