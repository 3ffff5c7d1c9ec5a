//! `geoctl stack …`: render, deploy, inspect, upgrade and remove a region's stack.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressDrawTarget};

use super::checks::parse_interval;
use super::swarm::connect;
use super::Context;
use crate::cli::output::{note, or_dash};
use crate::config::Settings;

use crate::error::Context as _;
use crate::region::RegionStore;
use crate::stack::deploy::{self, Action, DeployOptions, DeployReport};
use crate::stack::{self, Rendered, StackSettings};
use crate::swarm::node::short;
use crate::swarm::service::{desired_replicas, service_name};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct Target {
    /// Region whose stack this is
    #[arg(long, value_name = "CODE")]
    region: String,
}

#[derive(Debug, clap::Args)]
struct DeployFlags {
    /// Directory holding your own stack.yml.tera [default: stack.templates, else the built-in one]
    #[arg(long, value_name = "DIR")]
    templates: Option<PathBuf>,
    /// Show what would change, change nothing
    #[arg(long)]
    dry_run: bool,
    /// Return once the changes are sent, without waiting for convergence
    #[arg(long)]
    detach: bool,
    /// Give up waiting for convergence after this long
    #[arg(long, value_parser = parse_interval, default_value = "5m")]
    timeout: Duration,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Write the region's stack file (no engine needed; holds no secret value)
    Render {
        #[command(flatten)]
        target: Target,
        /// Write here instead of stdout
        #[arg(long, short, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Directory holding your own stack.yml.tera
        #[arg(long, value_name = "DIR")]
        templates: Option<PathBuf>,
    },
    /// Create or update the region's stack; unchanged services are not touched
    Deploy {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        flags: DeployFlags,
    },
    /// Rolling update of the stack to another image
    Upgrade {
        #[command(flatten)]
        target: Target,
        /// The image to run (must be on the engine: `geoctl image build --tag …`)
        #[arg(long)]
        image: String,
        #[command(flatten)]
        flags: DeployFlags,
    },
    /// The stack's services and their replicas
    Services {
        #[command(flatten)]
        target: Target,
    },
    /// The stack's tasks, with their errors
    Ps {
        #[command(flatten)]
        target: Target,
    },
    /// Remove the stack: services, networks and its secrets
    Rm {
        #[command(flatten)]
        target: Target,
        /// Also remove the stack's volumes (the agents' spools)
        #[arg(long)]
        volumes: bool,
        /// Do not ask for confirmation
        #[arg(long, short)]
        yes: bool,
        #[arg(long)]
        dry_run: bool,
    },
}

pub async fn run(ctx: &Context, args: Args) -> crate::error::Result<()> {
    match args.command {
        Command::Render { target, file, templates } => {
            let rendered = render(ctx, &ctx.settings, &target.region, templates.as_deref()).await?;
            match file {
                Some(path) => {
                    std::fs::write(&path, &rendered.yaml).with_context(|| format!("writing {}", path.display()))?;
                    note(format!(
                        "wrote stack {} for region {} to {}",
                        rendered.stack.name,
                        target.region,
                        path.display()
                    ));
                }
                None => std::io::stdout().lock().write_all(rendered.yaml.as_bytes())?,
            }
            Ok(())
        }
        Command::Deploy { target, flags } => deploy_region(ctx, &ctx.settings, &target.region, &flags).await,
        Command::Upgrade { target, image, flags } => {
            let mut settings = ctx.settings.clone();
            settings.regions.entry(target.region.clone()).or_default().stack.image = Some(image);
            deploy_region(ctx, &settings, &target.region, &flags).await
        }
        Command::Services { target } => services(ctx, &target.region).await,
        Command::Ps { target } => ps(ctx, &target.region).await,
        Command::Rm { target, volumes, yes, dry_run } => {
            let name = StackSettings::resolve(&ctx.settings, &target.region)?.name;
            let engine = connect(ctx, Some(&target.region)).await?;
            if !dry_run {
                ctx.confirm(&format!("remove stack {name} from {}?", engine.endpoint), yes)?;
            }
            let removal = deploy::remove(&engine, &name, volumes, dry_run, Duration::from_secs(120)).await?;
            let verb = if dry_run { "would remove" } else { "removed" };
            if removal.is_empty() {
                note(format!("stack {name}: nothing to remove"));
            } else {
                note(format!(
                    "stack {name}: {verb} {} service(s), {} network(s), {} secret(s), {} volume(s)",
                    removal.services.len(),
                    removal.networks.len(),
                    removal.secrets.len(),
                    removal.volumes.len()
                ));
            }
            ctx.printer.print(&removal, |_| vec![])
        }
    }
}

/// Renders `code`'s stack: the region from the database, the rest from `settings`.
pub async fn render(
    ctx: &Context,
    settings: &Settings,
    code: &str,
    templates: Option<&std::path::Path>,
) -> crate::error::Result<Rendered> {
    crate::region::validate_code(code)?;
    let pool = ctx.pool().await?;
    let region = RegionStore::new(&pool).get(code).await?;
    Ok(stack::render(settings, &region, templates)?)
}

async fn deploy_region(
    ctx: &Context,
    settings: &Settings,
    code: &str,
    flags: &DeployFlags,
) -> crate::error::Result<()> {
    let rendered = render(ctx, settings, code, flags.templates.as_deref()).await?;
    let engine = connect(ctx, Some(code)).await?;
    let report = deploy_rendered(ctx, &engine, &rendered, flags.dry_run, !flags.detach, flags.timeout).await?;
    print_report(ctx, &report)
}

/// Deploys with a progress bar per service on stderr (when it is a terminal).
async fn deploy_rendered(
    _ctx: &Context,
    engine: &crate::swarm::Engine,
    rendered: &Rendered,
    dry_run: bool,
    wait: bool,
    timeout: Duration,
) -> crate::error::Result<DeployReport> {
    let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let options = DeployOptions { dry_run, wait, timeout };
    let report = deploy::deploy(engine, rendered, &options, Some(&bars)).await?;
    Ok(report)
}

pub fn print_report(ctx: &Context, report: &DeployReport) -> crate::error::Result<()> {
    ctx.printer.print(report, |p| {
        let mut t = p.table(["SERVICE", "ACTION", "VERSION"]);
        for s in &report.services {
            let action = match (s.action, report.dry_run) {
                (Action::Unchanged, _) => "unchanged",
                (Action::Create, false) => "created",
                (Action::Update, false) => "updated",
                (Action::Create, true) => "would create",
                (Action::Update, true) => "would update",
            };
            let version = match (s.version_before, s.version_after) {
                (Some(a), Some(b)) if a != b => format!("{a} → {b}"),
                (_, Some(b)) => b.to_string(),
                (a, None) => or_dash(a),
            };
            t.add_row(vec![s.name.clone(), action.to_string(), version]);
        }
        vec![t]
    })?;
    for line in &report.notes {
        note(line.clone());
    }
    let converged = report.converged_seconds.map(|s| format!(", converged in {s:.2} s")).unwrap_or_default();
    if report.changed_anything() {
        note(format!(
            "stack {}: {} of {} service(s) {}{}{}",
            report.stack,
            report.updated(),
            report.services.len(),
            if report.dry_run { "would change (dry run)" } else { "changed" },
            if report.secrets_created.is_empty() {
                String::new()
            } else {
                format!(", {} secret(s) created", report.secrets_created.len())
            },
            converged
        ));
    } else {
        note(format!("stack {}: unchanged{converged}", report.stack));
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct ServiceRow {
    name: String,
    id: String,
    mode: String,
    running: u64,
    desired: u64,
    image: String,
    version: Option<u64>,
}

async fn services(ctx: &Context, code: &str) -> crate::error::Result<()> {
    let name = StackSettings::resolve(&ctx.settings, code)?.name;
    let engine = connect(ctx, Some(code)).await?;
    engine.require_manager().await?;
    let services = engine.stack_services(&name).await?;
    let ids: Vec<String> = services.iter().filter_map(|s| s.id.clone()).collect();
    let tasks = engine.tasks_of(&ids).await?;
    let rows: Vec<ServiceRow> = services
        .iter()
        .map(|s| {
            let own: Vec<_> = tasks.iter().filter(|t| t.service_id == s.id).collect();
            let running = own
                .iter()
                .filter(|t| t.status.as_ref().and_then(|st| st.state) == Some(bollard::models::TaskState::RUNNING))
                .count() as u64;
            let spec = s.spec.clone().unwrap_or_default();
            ServiceRow {
                name: service_name(s).to_string(),
                id: s.id.clone().unwrap_or_default(),
                mode: if spec.mode.as_ref().and_then(|m| m.global.as_ref()).is_some() {
                    "global"
                } else {
                    "replicated"
                }
                .into(),
                running,
                desired: desired_replicas(s, &own),
                image: spec.labels.unwrap_or_default().get(stack::IMAGE_LABEL).cloned().unwrap_or_default(),
                version: s.version.as_ref().and_then(|v| v.index),
            }
        })
        .collect();
    if rows.is_empty() {
        note(format!("stack {name}: no services"));
    }
    ctx.printer.print(&rows, |p| {
        let mut t = p.table(["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "VERSION"]);
        for r in &rows {
            t.add_row(vec![
                short(&r.id).to_string(),
                r.name.clone(),
                r.mode.clone(),
                format!("{}/{}", r.running, r.desired),
                r.image.clone(),
                or_dash(r.version),
            ]);
        }
        vec![t]
    })
}

#[derive(serde::Serialize)]
struct TaskRow {
    id: String,
    name: String,
    node: String,
    desired: String,
    current: String,
    error: Option<String>,
}

async fn ps(ctx: &Context, code: &str) -> crate::error::Result<()> {
    let name = StackSettings::resolve(&ctx.settings, code)?.name;
    let engine = connect(ctx, Some(code)).await?;
    let nodes = engine.node_rows().await?;
    let services = engine.stack_services(&name).await?;
    let ids: Vec<String> = services.iter().filter_map(|s| s.id.clone()).collect();
    let mut tasks = engine.tasks_of(&ids).await?;
    tasks.sort_by_key(|t| {
        (t.service_id.clone(), t.slot, std::cmp::Reverse(t.created_at.clone().map(|d| d.to_string())))
    });
    let rows: Vec<TaskRow> = tasks
        .iter()
        .map(|t| {
            let service = services.iter().find(|s| s.id == t.service_id).map(service_name).unwrap_or_default();
            let status = t.status.clone().unwrap_or_default();
            let node = t.node_id.clone().unwrap_or_default();
            TaskRow {
                id: t.id.clone().unwrap_or_default(),
                name: format!("{service}.{}", t.slot.map_or_else(|| short(&node).to_string(), |s| s.to_string())),
                node: nodes.iter().find(|n| n.id == node).map_or(node.clone(), |n| n.hostname.clone()),
                desired: t.desired_state.map(|s| s.to_string()).unwrap_or_default(),
                current: status.state.map(|s| s.to_string()).unwrap_or_default(),
                error: status.err.filter(|e| !e.is_empty()),
            }
        })
        .collect();
    ctx.printer.print(&rows, |p| {
        let mut t = p.table(["ID", "NAME", "NODE", "DESIRED", "CURRENT", "ERROR"]);
        for r in &rows {
            t.add_row(vec![
                short(&r.id).to_string(),
                r.name.clone(),
                r.node.clone(),
                r.desired.clone(),
                r.current.clone(),
                or_dash(r.error.clone()),
            ]);
        }
        vec![t]
    })
}
