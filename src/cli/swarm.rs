//! `geoctl swarm …`: init, join-token, status — and the `--region` flag every
//! engine command shares to pick that region's engine.

use super::Context;
use crate::output::note;
use crate::swarm::{quorum_warnings, Endpoint, Engine};

/// Which engine: the region's (`regions.<code>.docker_host`), else `DOCKER_HOST`, else the local socket.
#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    /// Use this region's Docker Engine [default: DOCKER_HOST, else the local socket]
    #[arg(long, value_name = "CODE")]
    pub region: Option<String>,
}

impl EngineArgs {
    pub async fn connect(&self, ctx: &Context) -> crate::error::Result<Engine> {
        connect(ctx, self.region.as_deref()).await
    }
}

/// Connects to the engine of `region` (or the default one).
pub async fn connect(ctx: &Context, region: Option<&str>) -> crate::error::Result<Engine> {
    if let Some(code) = region {
        crate::region::validate_code(code)?;
    }
    let endpoint = Endpoint::for_region(&ctx.settings, region);
    Ok(Engine::connect(&endpoint).await?)
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Make the engine the first manager of a new swarm (nothing to do when it is in one)
    Init {
        /// Address other nodes reach this one on (needed when the host has several)
        #[arg(long, value_name = "ADDR")]
        advertise_addr: Option<String>,
        #[command(flatten)]
        engine: EngineArgs,
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the command that joins another node as a worker or a manager
    JoinToken {
        #[arg(value_parser = ["worker", "manager"])]
        role: String,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// The swarm as this engine sees it, with quorum warnings
    Status {
        #[command(flatten)]
        engine: EngineArgs,
    },
}

#[derive(serde::Serialize)]
struct Status {
    endpoint: String,
    #[serde(flatten)]
    state: crate::swarm::SwarmState,
    managers_unreachable: Option<u64>,
    warnings: Vec<String>,
}

pub async fn run(ctx: &Context, args: Args) -> crate::error::Result<()> {
    match args.command {
        Command::Init { advertise_addr, engine, dry_run } => {
            let engine = engine.connect(ctx).await?;
            if engine.swarm_state().await?.active {
                note(format!("{}: already in a swarm; unchanged", engine.endpoint));
                return Ok(());
            }
            if dry_run {
                note(format!("{}: would initialise a swarm (dry run)", engine.endpoint));
                return Ok(());
            }
            engine.init_swarm(advertise_addr.as_deref()).await?;
            note(format!("{}: swarm initialised; this engine is its manager", engine.endpoint));
            Ok(())
        }
        Command::JoinToken { role, engine } => {
            let engine = engine.connect(ctx).await?;
            let token = engine.join_token(role == "manager").await?;
            let addr = engine.swarm_state().await?.node_addr.unwrap_or_else(|| "MANAGER_ADDR".into());
            println!("docker swarm join --token {token} {addr}:2377");
            Ok(())
        }
        Command::Status { engine } => {
            let engine = engine.connect(ctx).await?;
            let state = engine.swarm_state().await?;
            let mut unreachable = None;
            let mut warnings = Vec::new();
            if state.manager {
                let nodes = engine.node_rows().await?;
                let managers: Vec<_> = nodes.iter().filter(|n| n.manager_status.is_some()).collect();
                let down =
                    managers.iter().filter(|n| n.manager_status.as_deref() == Some("unreachable")).count() as u64;
                unreachable = Some(down);
                warnings = quorum_warnings(managers.len() as u64, down);
            } else if state.active {
                warnings.push("this engine is a worker: point --region / DOCKER_HOST at a manager".into());
            }
            let status =
                Status { endpoint: engine.endpoint.clone(), state, managers_unreachable: unreachable, warnings };
            ctx.printer.print(&status, |p| {
                let mut t = p.table(["FIELD", "VALUE"]);
                let s = &status.state;
                let or = |v: Option<u64>| v.map_or("-".to_string(), |n| n.to_string());
                t.add_row(vec!["engine".to_string(), status.endpoint.clone()]);
                t.add_row(vec!["swarm".to_string(), if s.active { "active" } else { "inactive" }.to_string()]);
                t.add_row(vec![
                    "role".to_string(),
                    if s.manager {
                        "manager"
                    } else if s.active {
                        "worker"
                    } else {
                        "-"
                    }
                    .into(),
                ]);
                t.add_row(vec!["node".to_string(), s.node_id.clone().unwrap_or_else(|| "-".into())]);
                t.add_row(vec!["managers".to_string(), or(s.managers)]);
                t.add_row(vec!["nodes".to_string(), or(s.nodes)]);
                t.add_row(vec!["cpus".to_string(), or(s.cpus)]);
                vec![t]
            })?;
            for warning in &status.warnings {
                note(format!("warning: {warning}"));
            }
            Ok(())
        }
    }
}
