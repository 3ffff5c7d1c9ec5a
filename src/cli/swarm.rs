//! `geoctl swarm …`: init, join, leave, join-token, status — and the
//! `--region` flag every engine command shares to pick that region's engine.

use std::time::Duration;

use super::Context;
use crate::cli::output::note;
use crate::swarm::join::{JoinRequest, Membership, Role};
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
    /// Join another node's engine to a region's swarm, through its API, and label it for the region
    Join {
        /// The region whose swarm the node joins (its engine is the manager)
        #[arg(long, value_name = "CODE")]
        region: String,
        #[command(flatten)]
        node: NodeEngineArgs,
        /// The node's role
        #[arg(long, value_enum, default_value = "worker")]
        role: RoleArg,
        /// Address the node advertises to the swarm [default: the host of --engine]
        #[arg(long, value_name = "ADDR")]
        advertise_addr: Option<String>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Take a node out of a region's swarm: drain it, then have its engine leave
    Leave {
        /// The region whose swarm the node leaves
        #[arg(long, value_name = "CODE")]
        region: String,
        #[command(flatten)]
        node: NodeEngineArgs,
        /// Give up when its tasks have not moved off it after this long
        #[arg(long, value_parser = super::checks::parse_interval, default_value = "2m")]
        timeout: Duration,
        #[arg(long)]
        dry_run: bool,
    },
    /// The swarm as this engine sees it, with quorum warnings
    Status {
        #[command(flatten)]
        engine: EngineArgs,
    },
}

/// The engine of the node joining or leaving.
#[derive(Debug, Clone, clap::Args)]
struct NodeEngineArgs {
    /// The node's Docker Engine, e.g. tcp://HOST:2376
    #[arg(long, value_name = "URL", value_parser = crate::config::parse_docker_host)]
    engine: String,
    /// Its TLS client certificates (ca.pem, cert.pem, key.pem) [default: the region's docker_cert_path]
    #[arg(long, value_name = "DIR")]
    cert_path: Option<String>,
}

impl NodeEngineArgs {
    async fn connect(&self, ctx: &Context, region: &str) -> crate::error::Result<Engine> {
        let cert_path = self.cert_path.clone().or_else(|| Endpoint::for_region(&ctx.settings, Some(region)).cert_path);
        Ok(Engine::connect(&Endpoint { host: self.engine.clone(), cert_path }).await?)
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    Worker,
    Manager,
}

fn print_membership(ctx: &Context, membership: &Membership) -> crate::error::Result<()> {
    ctx.printer.print(membership, |p| {
        if membership.steps.is_empty() {
            return vec![];
        }
        let mut t = p.table(["STEP"]);
        for step in &membership.steps {
            t.add_row(vec![step.clone()]);
        }
        vec![t]
    })?;
    let node = membership.node_id.as_deref().map_or("-", crate::swarm::node::short);
    let what = if membership.dry_run {
        "dry run, nothing changed"
    } else if membership.changed {
        "changed"
    } else {
        "unchanged"
    };
    note(format!(
        "region {}: node {node} ({}) at {}: {what}",
        membership.region,
        membership.role.as_str(),
        membership.engine
    ));
    for warning in &membership.warnings {
        note(format!("warning: {warning}"));
    }
    Ok(())
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
        Command::Join { region, node, role, advertise_addr, dry_run } => {
            let stack = crate::stack::StackSettings::resolve(&ctx.settings, &region)?;
            let label = stack.placement_label.clone();
            let manager = connect(ctx, Some(&region)).await?;
            let node = node.connect(ctx, &region).await?;
            let role = match role {
                RoleArg::Worker => Role::Worker,
                RoleArg::Manager => Role::Manager,
            };
            let request = JoinRequest {
                region: &region,
                label: &label,
                role,
                advertise_addr: advertise_addr.as_deref(),
                dry_run,
            };
            // No registry: the node gets the region's images from its manager before it is labelled
            // for the region, so no task is placed where its image is missing.
            let mut copied = Vec::new();
            for image in std::iter::once(&stack.image).chain(stack.app_image.as_ref()) {
                let step = format!("copy image {image} from {} to {}", manager.endpoint, node.endpoint);
                if dry_run {
                    if node.image_id(image).await? != manager.image_id(image).await? {
                        note(format!("would {step}"));
                        copied.push(step);
                    }
                } else if manager.copy_image_to(image, &node).await? {
                    note(format!("done: {step}"));
                    copied.push(step);
                }
            }
            let mut membership = crate::swarm::join::join(&manager, &node, &request, &mut |step| note(step)).await?;
            membership.changed |= !dry_run && !copied.is_empty();
            membership.steps.splice(0..0, copied);
            print_membership(ctx, &membership)
        }
        Command::Leave { region, node, timeout, dry_run } => {
            let manager = connect(ctx, Some(&region)).await?;
            let node = node.connect(ctx, &region).await?;
            let membership =
                crate::swarm::join::leave(&manager, &node, &region, timeout, dry_run, &mut |step| note(step)).await?;
            print_membership(ctx, &membership)
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
