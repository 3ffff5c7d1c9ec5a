//! `geoctl region init CODE` and `region destroy CODE`: a region from nothing
//! to running agents as one idempotent command, and back.
//!
//! Every precondition is checked before the first change — engine reachable
//! and a manager (or not in a swarm yet), templates render, every secret has
//! a source, the image is on the engine — so a failure leaves no half-made
//! region. A second run finds everything in place and says so.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;

use super::stack::{deploy_rendered, print_report};
use super::swarm::connect;
use super::Context;
use crate::output::note;
use crate::queue::{RedisEndpoint, RegionQueue};
use crate::region::{Region, RegionPatch, RegionStore};
use crate::stack::{self, deploy, ready, StackSettings};
use crate::swarm::node::NodeChange;
use crate::swarm::SwarmError;

/// Options of `region init` besides the region's own fields.
#[derive(Debug, Clone, clap::Args)]
pub struct InitFlags {
    /// Nodes to put in the region [default: the engine's own node, when no node is in it yet]
    #[arg(long = "node", value_name = "NODE")]
    pub nodes: Vec<String>,
    /// Address other nodes reach this one on, for a new swarm
    #[arg(long, value_name = "ADDR")]
    pub advertise_addr: Option<String>,
    /// Directory holding your own stack.yml.tera
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// Give up waiting for healthy agents with a heartbeat after this long
    #[arg(long, value_parser = super::checks::parse_interval, default_value = "5m")]
    pub timeout: Duration,
}

pub async fn init(
    ctx: &Context,
    code: &str,
    patch: RegionPatch,
    flags: InitFlags,
    dry_run: bool,
) -> crate::error::Result<()> {
    crate::region::validate_code(code)?;
    let stack_settings = StackSettings::resolve(&ctx.settings, code)?;
    let engine = connect(ctx, Some(code)).await?;
    let state = engine.swarm_state().await?;
    if state.active && !state.manager {
        return Err(SwarmError::NotManager { endpoint: engine.endpoint.clone() }.into());
    }
    let pool = ctx.pool_any_schema().await?;
    let pending = crate::store::status(&pool).await?.iter().filter(|m| !m.applied).count();
    let store = RegionStore::new(&pool);
    let existing = if pending == 0 { store.get(code).await.ok() } else { None };
    let region = match &existing {
        Some(region) if patch.is_empty() => region.clone(),
        Some(region) => patch.apply(region.clone())?,
        None => {
            if patch.name.is_none() {
                return Err(crate::error::input_error(format!(
                    "region `{code}` is not registered yet: pass --name (and optionally --city, --country, …, as for `geoctl region add`)"
                )));
            }
            patch.apply(provisional(code))?
        }
    };
    if existing.is_some() && !patch.is_empty() {
        // Other values for a registered region are refused now, not halfway.
        store.add(code, &patch, true).await?;
    }
    // Templates render and every secret has a source: checked now, before any change.
    let rendered = stack::render(&ctx.settings, &region, flags.templates.as_deref())?;
    // The region's Redis answers: the agents' heartbeats are read from it at the end.
    let queue = RegionQueue::connect(&RedisEndpoint::resolve(&ctx.settings, code)?, &ctx.settings.tuning).await?;
    for image in std::iter::once(&stack_settings.image).chain(stack_settings.app_image.as_ref()) {
        if engine.image_id(image).await?.is_none() {
            return Err(SwarmError::MissingImage { image: image.clone(), endpoint: engine.endpoint.clone() }.into());
        }
    }
    let nodes: Vec<String> = if !flags.nodes.is_empty() {
        if state.active {
            for node in &flags.nodes {
                engine.find_node(node).await?;
            }
        }
        flags.nodes.clone()
    } else if state.active {
        let rows = engine.node_rows().await?;
        let in_region = rows.iter().any(|r| r.labels.get(&stack_settings.placement_label) == Some(&code.to_string()));
        if in_region {
            Vec::new()
        } else {
            state.node_id.clone().into_iter().collect()
        }
    } else {
        Vec::new()
    };

    let mut changes = Vec::new();
    let step = |changes: &mut Vec<String>, what: String| {
        let verb = if dry_run { "would" } else { "done:" };
        note(format!("  {verb} {what}"));
        changes.push(what);
    };
    note(format!("region {code}: engine {}, stack {}", engine.endpoint, stack_settings.name));
    if !state.active {
        step(&mut changes, "initialise a swarm on the engine".into());
        if !dry_run {
            engine.init_swarm(flags.advertise_addr.as_deref()).await?;
        }
    }
    let nodes = if nodes.is_empty() && !state.active {
        engine.swarm_state().await?.node_id.into_iter().collect()
    } else {
        nodes
    };
    for node in &nodes {
        let change = if dry_run && !state.active {
            NodeChange::Changed
        } else {
            engine.label_node(node, &stack_settings.placement_label, Some(code), dry_run).await?
        };
        if change == NodeChange::Changed {
            step(&mut changes, format!("label node {node} {}={code}", stack_settings.placement_label));
        }
    }
    if pending > 0 {
        step(&mut changes, format!("apply {pending} database migration(s)"));
        if !dry_run {
            crate::store::migrate(&pool).await?;
        }
    }
    let registered = if pending == 0 { existing.is_some() } else { store.get(code).await.is_ok() };
    if !registered || !patch.is_empty() {
        let (_, change) = if dry_run && pending > 0 {
            (region.clone(), crate::store::Change::Created)
        } else {
            store.add(code, &patch, dry_run).await?
        };
        if change != crate::store::Change::Unchanged {
            step(&mut changes, format!("register region {code}"));
        }
    }
    let labels_pending = changes.iter().any(|c| c.starts_with("label node"));
    if dry_run && (!state.active || labels_pending) {
        // The placement can only be checked against labels that exist.
        step(&mut changes, format!("deploy stack {} (secrets, network, services)", stack_settings.name));
        note(format!("region {code}: dry run, nothing changed"));
        return Ok(());
    }
    let report = deploy_rendered(ctx, &engine, &rendered, dry_run, true, flags.timeout).await?;
    if report.changed_anything() {
        step(
            &mut changes,
            format!(
                "deploy stack {}: {} secret(s), {} network(s), {} service(s) changed",
                report.stack,
                report.secrets_created.len(),
                report.networks_created.len(),
                report.updated()
            ),
        );
    }
    print_report(ctx, &report)?;
    if !dry_run {
        let ready = ready::wait_agents(&engine, &queue, &stack_settings.name, flags.timeout).await?;
        let hosts: Vec<&str> = ready.agents.iter().map(|a| a.id.as_str()).collect();
        note(format!(
            "region {code}: {} agent(s) healthy with a heartbeat in Redis ({}){}",
            ready.agents.len(),
            hosts.join(", "),
            if ready.waited_seconds >= 1.0 { format!(", after {:.1} s", ready.waited_seconds) } else { String::new() }
        ));
    }
    if changes.is_empty() {
        note(format!("region {code}: unchanged; its agents are running and healthy"));
    } else if dry_run {
        note(format!("region {code}: dry run, nothing changed"));
    } else {
        note(format!("region {code}: ready; its agents are running and healthy"));
    }
    Ok(())
}

/// A region not stored yet, for rendering its stack in a plan.
fn provisional(code: &str) -> Region {
    Region {
        code: code.to_string(),
        name: code.to_string(),
        city: None,
        country_code: None,
        latitude: None,
        longitude: None,
        latency_warning_ms: 1000,
        latency_critical_ms: 3000,
        is_active: true,
        is_default: false,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

pub async fn destroy(ctx: &Context, code: &str, volumes: bool, yes: bool, dry_run: bool) -> crate::error::Result<()> {
    crate::region::validate_code(code)?;
    let name = StackSettings::resolve(&ctx.settings, code)?.name;
    let engine = connect(ctx, Some(code)).await?;
    engine.require_manager().await?;
    if !dry_run {
        ctx.confirm(
            &format!("destroy region {code}'s stack {name} (services, network, secrets) on {}?", engine.endpoint),
            yes,
        )?;
    }
    let removal = deploy::remove(&engine, &name, volumes, dry_run, Duration::from_secs(120)).await?;
    if removal.is_empty() {
        note(format!("region {code}: stack {name} not found; nothing to remove"));
    } else {
        let verb = if dry_run { "would remove" } else { "removed" };
        note(format!(
            "region {code}: {verb} {} service(s), {} network(s), {} secret(s), {} volume(s); the region stays registered (`geoctl region delete {code}` removes it)",
            removal.services.len(),
            removal.networks.len(),
            removal.secrets.len(),
            removal.volumes.len()
        ));
    }
    ctx.printer.print(&removal, |_| vec![])
}
