//! A node into a region's swarm and out of it, through the two engines' APIs:
//! the region's manager hands out the join token and labels the node for the
//! region; the new node's own engine is asked to join (Engine API
//! `POST /swarm/join`) or to leave. Nothing runs on the node's host but its
//! engine, so a node is added from wherever geoctl runs, over TLS.
//!
//! Both directions are idempotent: a node already in the region's swarm is
//! only (re)labelled, one already out is left alone. `dry_run` reads both
//! engines and reports the steps without changing either.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{NodeSpecAvailabilityEnum, NodeSpecRoleEnum, SwarmJoinRequest};
use bollard::query_parameters::{DeleteNodeOptions, LeaveSwarmOptions, ListTasksOptions};
use serde::Serialize;

use super::node::{short, NodeChange};
use super::{api_message, quorum_warnings, Engine, SwarmError};

/// How long a joined node gets to show up ready on the manager, and a leaving
/// one to show up down.
const SETTLE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Worker,
    Manager,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Worker => "worker",
            Role::Manager => "manager",
        }
    }
}

/// What `swarm join` / `swarm leave` did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Serialize)]
pub struct Membership {
    pub region: String,
    /// The engine of the node joining or leaving.
    pub engine: String,
    /// The region's manager.
    pub manager: String,
    pub node_id: Option<String>,
    pub role: Role,
    pub steps: Vec<String>,
    pub changed: bool,
    pub dry_run: bool,
    pub warnings: Vec<String>,
}

/// What to join: the region, the node label that places its services, and how.
#[derive(Debug, Clone)]
pub struct JoinRequest<'a> {
    pub region: &'a str,
    /// The placement label's name (`stack.placement_label`, `region` by default).
    pub label: &'a str,
    pub role: Role,
    /// The address the node advertises to the swarm; by default the host of
    /// its engine's `tcp://` address.
    pub advertise_addr: Option<&'a str>,
    pub dry_run: bool,
}

/// Joins `node`'s engine to the swarm `manager` manages and labels it for the
/// region; `note` hears each step as it is done.
pub async fn join(
    manager: &Engine,
    node: &Engine,
    request: &JoinRequest<'_>,
    note: &mut (dyn FnMut(String) + Send),
) -> Result<Membership, SwarmError> {
    let manager_state = manager.require_manager().await?;
    let node_state = node.swarm_state().await?;
    let mut out = Membership {
        region: request.region.to_string(),
        engine: node.endpoint.clone(),
        manager: manager.endpoint.clone(),
        node_id: None,
        role: request.role,
        steps: Vec::new(),
        changed: false,
        dry_run: request.dry_run,
        warnings: Vec::new(),
    };
    let members = manager.node_rows().await?;
    if node_state.active {
        let id = node_state.node_id.clone().unwrap_or_default();
        let Some(row) = members.iter().find(|r| r.id == id) else {
            return Err(SwarmError::Invalid(format!(
                "the engine at {} is already in another swarm (node {}); take it out of that one first (`geoctl swarm leave --engine {}` with that swarm's region)",
                node.endpoint,
                short(&id),
                node.endpoint
            )));
        };
        if row.role != request.role.as_str() {
            out.warnings.push(format!(
                "node {} is already in the swarm as a {}, not a {}; change its role with `docker node promote`/`demote`",
                short(&id),
                row.role,
                request.role.as_str()
            ));
        }
        out.node_id = Some(id);
    } else {
        let remote = manager_state.node_addr.clone().ok_or_else(|| SwarmError::Api {
            action: format!("reading the address of the manager at {}", manager.endpoint),
            message: "the engine reports none".into(),
        })?;
        let step =
            format!("join {} to the swarm of {} as a {}", node.endpoint, manager.endpoint, request.role.as_str());
        if !request.dry_run {
            let token = manager.join_token(request.role == Role::Manager).await?;
            let advertise = request.advertise_addr.map(str::to_string).or_else(|| engine_host(&node.endpoint));
            let join = SwarmJoinRequest {
                listen_addr: Some("0.0.0.0:2377".into()),
                advertise_addr: advertise,
                remote_addrs: Some(vec![format!("{remote}:2377")]),
                join_token: Some(token),
                ..Default::default()
            };
            node.docker.join_swarm(join).await.map_err(|e| SwarmError::Api {
                action: format!("joining {} to the swarm of {}", node.endpoint, manager.endpoint),
                message: api_message(&e),
            })?;
            let id = settle(node, |s| s.active.then(|| s.node_id.clone()).flatten()).await?;
            wait_for(manager, &id, "ready").await?;
            out.node_id = Some(id);
            out.changed = true;
        }
        note(format!("{}{step}", if request.dry_run { "would " } else { "done: " }));
        out.steps.push(step);
    }
    let label_step =
        format!("label node {} {}={}", out.node_id.as_deref().map_or("(new)", short), request.label, request.region);
    let labelled = match &out.node_id {
        Some(id) => manager.label_node(id, request.label, Some(request.region), request.dry_run).await?,
        None => NodeChange::Changed,
    };
    if labelled == NodeChange::Changed {
        note(format!("{}{label_step}", if request.dry_run { "would " } else { "done: " }));
        out.steps.push(label_step);
        out.changed |= !request.dry_run;
    }
    if request.role == Role::Manager {
        let managers = manager.node_rows().await?.iter().filter(|r| r.manager_status.is_some()).count() as u64;
        let managers = if out.node_id.is_none() { managers + 1 } else { managers };
        out.warnings.extend(quorum_warnings(managers, 0));
    }
    Ok(out)
}

/// Takes `node`'s engine out of the swarm `manager` manages: drains it (its
/// tasks move to the region's other nodes within `drain_timeout`), demotes it
/// if it is a manager, has it leave, and removes it from the node list.
pub async fn leave(
    manager: &Engine,
    node: &Engine,
    region: &str,
    drain_timeout: Duration,
    dry_run: bool,
    note: &mut (dyn FnMut(String) + Send),
) -> Result<Membership, SwarmError> {
    manager.require_manager().await?;
    let node_state = node.swarm_state().await?;
    let mut out = Membership {
        region: region.to_string(),
        engine: node.endpoint.clone(),
        manager: manager.endpoint.clone(),
        node_id: node_state.node_id.clone(),
        role: if node_state.manager { Role::Manager } else { Role::Worker },
        steps: Vec::new(),
        changed: false,
        dry_run,
        warnings: Vec::new(),
    };
    let Some(id) = node_state.node_id.clone().filter(|_| node_state.active) else {
        return Ok(out);
    };
    let row = manager.node_rows().await?.into_iter().find(|r| r.id == id).ok_or_else(|| {
        SwarmError::Invalid(format!(
            "the engine at {} is in another swarm (node {}), not the one managed at {}",
            node.endpoint,
            short(&id),
            manager.endpoint
        ))
    })?;
    if id == manager.swarm_state().await?.node_id.unwrap_or_default() {
        return Err(SwarmError::Invalid(format!(
            "{} is the region's manager itself; point the region at another manager before it leaves",
            node.endpoint
        )));
    }
    let mut step = |text: String, out: &mut Membership| {
        note(format!("{}{text}", if dry_run { "would " } else { "done: " }));
        out.steps.push(text);
        out.changed |= !dry_run;
    };
    if row.availability != NodeSpecAvailabilityEnum::DRAIN.to_string() {
        manager.set_availability(&id, NodeSpecAvailabilityEnum::DRAIN, dry_run).await?;
        step(format!("drain node {}", short(&id)), &mut out);
    }
    if !dry_run {
        wait_drained(manager, &id, drain_timeout).await?;
    }
    if node_state.manager {
        manager.set_role(&id, NodeSpecRoleEnum::WORKER, dry_run).await?;
        step(format!("demote node {} to a worker", short(&id)), &mut out);
    }
    if !dry_run {
        node.docker.leave_swarm(Some(LeaveSwarmOptions { force: false })).await.map_err(|e| SwarmError::Api {
            action: format!("asking {} to leave the swarm", node.endpoint),
            message: api_message(&e),
        })?;
        wait_for(manager, &id, "down").await?;
        manager.docker.delete_node(&id, Some(DeleteNodeOptions { force: false })).await.map_err(|e| {
            SwarmError::Api {
                action: format!("removing node {} from the node list", short(&id)),
                message: api_message(&e),
            }
        })?;
    }
    step(format!("have {} leave the swarm, and remove node {} from it", node.endpoint, short(&id)), &mut out);
    Ok(out)
}

/// The host of a `tcp://HOST:PORT` engine address: the address a node on
/// that engine is known by.
fn engine_host(endpoint: &str) -> Option<String> {
    let rest = endpoint.strip_prefix("tcp://").or_else(|| endpoint.strip_prefix("https://"))?;
    let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
    Some(host.trim_start_matches('[').trim_end_matches(']').to_string()).filter(|h| !h.is_empty())
}

/// Polls the node's own engine until `pick` finds what it waits for.
async fn settle<T>(node: &Engine, pick: impl Fn(&super::SwarmState) -> Option<T>) -> Result<T, SwarmError> {
    let started = Instant::now();
    loop {
        if let Some(found) = pick(&node.swarm_state().await?) {
            return Ok(found);
        }
        if started.elapsed() > SETTLE {
            return Err(SwarmError::Converge {
                service: format!("swarm membership of {}", node.endpoint),
                message: format!("not settled after {} s", SETTLE.as_secs()),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until the manager reports the node in `state` (ready, down).
async fn wait_for(manager: &Engine, id: &str, state: &str) -> Result<(), SwarmError> {
    let started = Instant::now();
    loop {
        let rows = manager.node_rows().await?;
        let now = rows.iter().find(|r| r.id == id).map(|r| r.status.clone());
        if now.as_deref() == Some(state) {
            return Ok(());
        }
        if started.elapsed() > SETTLE {
            return Err(SwarmError::Converge {
                service: format!("node {}", short(id)),
                message: format!(
                    "the manager at {} still reports it {} after {} s, not {state}",
                    manager.endpoint,
                    now.as_deref().unwrap_or("absent"),
                    SETTLE.as_secs()
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until no task the swarm wants running is on the node.
async fn wait_drained(manager: &Engine, id: &str, timeout: Duration) -> Result<(), SwarmError> {
    let started = Instant::now();
    let filters = HashMap::from([
        ("node".to_string(), vec![id.to_string()]),
        ("desired-state".to_string(), vec!["running".to_string()]),
    ]);
    loop {
        let tasks = manager
            .docker
            .list_tasks(Some(ListTasksOptions { filters: Some(filters.clone()) }))
            .await
            .map_err(SwarmError::api(format!("listing the tasks of node {}", short(id))))?;
        if tasks.is_empty() {
            return Ok(());
        }
        if started.elapsed() > timeout {
            let names: Vec<String> = tasks.iter().filter_map(|t| t.name.clone().or(t.id.clone())).collect();
            return Err(SwarmError::Converge {
                service: format!("drain of node {}", short(id)),
                message: format!(
                    "{} task(s) still on it after {} s ({}); does the region have another node its services may run on?",
                    tasks.len(),
                    timeout.as_secs(),
                    names.join(", ")
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_known_by_its_engine_host() {
        assert_eq!(engine_host("tcp://10.231.0.14:2376").as_deref(), Some("10.231.0.14"));
        assert_eq!(engine_host("tcp://[fd00::4]:2376").as_deref(), Some("fd00::4"));
        assert_eq!(engine_host("tcp://node-4.example:2376").as_deref(), Some("node-4.example"));
        assert_eq!(engine_host("unix:///var/run/docker.sock"), None);
    }
}
