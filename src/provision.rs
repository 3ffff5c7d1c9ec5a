//! A region from nothing to running agents (`region init`), and back (`region destroy`): the
//! order of the steps and the preconditions before them, as plan-then-apply like [`crate::dns`].
//!
//! [`plan_init`] checks every precondition before the first change — engine reachable and a
//! manager (or not in a swarm yet), templates render, every secret has a source, the region's
//! Redis answers, the image is on the engine — so a failure leaves no half-made region.
//! [`apply_init`] then takes the steps in order and says each through `note`; the caller prints.
//! A second run finds everything in place and takes no step.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use indicatif::MultiProgress;
use sqlx::PgPool;

use crate::config::Settings;
use crate::queue::RegionQueue;
use crate::region::{Region, RegionPatch, RegionStore};
use crate::stack::deploy::{DeployOptions, DeployReport, Removal};
use crate::stack::ready::AgentsReady;
use crate::stack::{self, deploy, ready, Rendered, StackSettings};
use crate::store::Change;
use crate::swarm::node::NodeChange;
use crate::swarm::{Endpoint, Engine, SwarmError, SwarmState};

/// What `region init` takes besides the region's own fields.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Nodes to put in the region; none: the engine's own node, when no node is in it yet.
    pub nodes: Vec<String>,
    /// Address other nodes reach this one on, for a new swarm.
    pub advertise_addr: Option<String>,
    /// Directory holding the operator's own stack.yml.tera.
    pub templates: Option<PathBuf>,
    /// How long to wait for healthy agents with a heartbeat.
    pub timeout: Duration,
}

/// A region init whose preconditions all hold: what it found, and what it will apply.
pub struct InitPlan {
    pub code: String,
    pub stack: StackSettings,
    pub engine: Engine,
    state: SwarmState,
    pool: PgPool,
    /// Database migrations not applied yet.
    pending: usize,
    existing: Option<Region>,
    patch: RegionPatch,
    rendered: Rendered,
    queue: RegionQueue,
    /// Nodes to label for the region (before a swarm exists: none, the new one is labelled).
    nodes: Vec<String>,
    options: InitOptions,
}

/// The region's engine, as every engine command reaches it.
async fn engine(settings: &Settings, code: &str) -> crate::error::Result<Engine> {
    crate::region::validate_code(code)?;
    Ok(Engine::connect(&Endpoint::for_region(settings, Some(code))).await?)
}

/// Checks every precondition of `region init CODE`, changing nothing but refusing other values
/// for a registered region now rather than halfway (`store.add` with `dry_run`).
pub async fn plan_init(
    settings: &Settings,
    code: &str,
    patch: RegionPatch,
    options: InitOptions,
) -> crate::error::Result<InitPlan> {
    crate::region::validate_code(code)?;
    let stack_settings = StackSettings::resolve(settings, code)?;
    let engine = engine(settings, code).await?;
    let state = engine.swarm_state().await?;
    if state.active && !state.manager {
        return Err(SwarmError::NotManager { endpoint: engine.endpoint.clone() }.into());
    }
    // Any schema: an empty database is migrated as one of the steps.
    let pool = crate::store::connect(settings.database_url.as_ref().map(|s| &s.value), &settings.tuning).await?;
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
    let rendered = stack::render(settings, &region, options.templates.as_deref())?;
    // The region's Redis answers: the agents' heartbeats are read from it at the end.
    let queue = RegionQueue::open(settings, code).await?;
    for image in std::iter::once(&stack_settings.image).chain(stack_settings.app_image.as_ref()) {
        if engine.image_id(image).await?.is_none() {
            return Err(SwarmError::MissingImage { image: image.clone(), endpoint: engine.endpoint.clone() }.into());
        }
    }
    let nodes: Vec<String> = if !options.nodes.is_empty() {
        if state.active {
            for node in &options.nodes {
                engine.find_node(node).await?;
            }
        }
        options.nodes.clone()
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
    Ok(InitPlan {
        code: code.to_string(),
        stack: stack_settings,
        engine,
        state,
        pool,
        pending,
        existing,
        patch,
        rendered,
        queue,
        nodes,
        options,
    })
}

/// What [`apply_init`] did.
pub struct Applied {
    /// The steps taken (or, in a dry run, that would be), in order; empty: nothing to do.
    pub steps: Vec<String>,
    /// The stack deployment; `None` when a dry run stopped before it (the placement can only be
    /// checked against node labels that exist).
    pub deploy: Option<DeployReport>,
}

/// Takes the plan's steps in order — swarm, node labels, migrations, registration, stack — each
/// said through `note` as it is done (or, with `dry_run`, as it would be). `progress` shows the
/// services converging.
pub async fn apply_init(
    plan: &InitPlan,
    dry_run: bool,
    progress: Option<&MultiProgress>,
    note: impl Fn(String),
) -> crate::error::Result<Applied> {
    let code = plan.code.as_str();
    let engine = &plan.engine;
    let state = &plan.state;
    let mut steps = Vec::new();
    let step = |steps: &mut Vec<String>, what: String| {
        let verb = if dry_run { "would" } else { "done:" };
        note(format!("  {verb} {what}"));
        steps.push(what);
    };
    if !state.active {
        step(&mut steps, "initialise a swarm on the engine".into());
        if !dry_run {
            engine.init_swarm(plan.options.advertise_addr.as_deref()).await?;
        }
    }
    let nodes = if plan.nodes.is_empty() && !state.active {
        engine.swarm_state().await?.node_id.into_iter().collect()
    } else {
        plan.nodes.clone()
    };
    let label = &plan.stack.placement_label;
    for node in &nodes {
        let change = if dry_run && !state.active {
            NodeChange::Changed
        } else {
            engine.label_node(node, label, Some(code), dry_run).await?
        };
        if change == NodeChange::Changed {
            step(&mut steps, format!("label node {node} {label}={code}"));
        }
    }
    if plan.pending > 0 {
        step(&mut steps, format!("apply {} database migration(s)", plan.pending));
        if !dry_run {
            crate::store::migrate(&plan.pool).await?;
        }
    }
    let store = RegionStore::new(&plan.pool);
    let registered = if plan.pending == 0 { plan.existing.is_some() } else { store.get(code).await.is_ok() };
    if !registered || !plan.patch.is_empty() {
        let change =
            if dry_run && plan.pending > 0 { Change::Created } else { store.add(code, &plan.patch, dry_run).await?.1 };
        if change != Change::Unchanged {
            step(&mut steps, format!("register region {code}"));
        }
    }
    let labels_pending = steps.iter().any(|c| c.starts_with("label node"));
    if dry_run && (!state.active || labels_pending) {
        step(&mut steps, format!("deploy stack {} (secrets, network, services)", plan.stack.name));
        return Ok(Applied { steps, deploy: None });
    }
    let options = DeployOptions { dry_run, wait: true, timeout: plan.options.timeout };
    let report = deploy::deploy(engine, &plan.rendered, &options, progress).await?;
    if report.changed_anything() {
        step(
            &mut steps,
            format!(
                "deploy stack {}: {} secret(s), {} network(s), {} service(s) changed",
                report.stack,
                report.secrets_created.len(),
                report.networks_created.len(),
                report.updated()
            ),
        );
    }
    Ok(Applied { steps, deploy: Some(report) })
}

/// Waits until the region's agents run healthy with a heartbeat in its Redis (the last step of
/// a real init).
pub async fn wait_ready(plan: &InitPlan) -> crate::error::Result<AgentsReady> {
    Ok(ready::wait_agents(&plan.engine, &plan.queue, &plan.stack.name, plan.options.timeout).await?)
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

/// What `region destroy CODE` acts on: the region's stack on its engine, which must manage a swarm.
pub struct DestroyPlan {
    pub code: String,
    pub stack: String,
    pub engine: Engine,
}

/// Checks the preconditions of `region destroy CODE`; changes nothing.
pub async fn plan_destroy(settings: &Settings, code: &str) -> crate::error::Result<DestroyPlan> {
    crate::region::validate_code(code)?;
    let stack = StackSettings::resolve(settings, code)?.name;
    let engine = engine(settings, code).await?;
    engine.require_manager().await?;
    Ok(DestroyPlan { code: code.to_string(), stack, engine })
}

/// Removes the region's stack (services, network, secrets, and with `volumes` its volumes); the
/// region stays registered.
pub async fn apply_destroy(plan: &DestroyPlan, volumes: bool, dry_run: bool) -> crate::error::Result<Removal> {
    Ok(deploy::remove(&plan.engine, &plan.stack, volumes, dry_run, Duration::from_secs(120)).await?)
}
