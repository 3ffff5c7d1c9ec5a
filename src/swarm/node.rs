//! Swarm nodes: list them, label them by region, drain and activate them.
//! Every change reads the node's spec and version, changes it, and sends it
//! back with that version, so a concurrent change is refused, not lost.

use std::collections::HashMap;

use bollard::models::{Node, NodeSpec, NodeSpecAvailabilityEnum, NodeSpecRoleEnum, NodeState};
use bollard::query_parameters::UpdateNodeOptions;
use serde::Serialize;

use super::{api_message, is_not_found, Engine, SwarmError};

/// One row of `node ls`.
#[derive(Debug, Clone, Serialize)]
pub struct NodeRow {
    pub id: String,
    pub hostname: String,
    pub role: String,
    pub status: String,
    pub availability: String,
    pub manager_status: Option<String>,
    pub labels: std::collections::BTreeMap<String, String>,
    pub cpus: Option<f64>,
    pub memory_bytes: Option<i64>,
}

impl NodeRow {
    fn from(node: &Node) -> NodeRow {
        let spec = node.spec.clone().unwrap_or_default();
        let description = node.description.clone().unwrap_or_default();
        let manager_status = node.manager_status.as_ref().map(|m| {
            if m.leader == Some(true) {
                "leader".to_string()
            } else {
                m.reachability.map_or_else(|| "unknown".into(), |r| r.to_string())
            }
        });
        let resources = description.resources.unwrap_or_default();
        NodeRow {
            id: node.id.clone().unwrap_or_default(),
            hostname: description.hostname.unwrap_or_default(),
            role: spec.role.map_or_else(String::new, |r| r.to_string()),
            status: node.status.as_ref().and_then(|s| s.state).map_or_else(String::new, |s| s.to_string()),
            availability: spec.availability.map_or_else(String::new, |a| a.to_string()),
            manager_status,
            labels: spec.labels.unwrap_or_default().into_iter().collect(),
            cpus: resources.nano_cpus.map(|n| n as f64 / 1e9),
            memory_bytes: resources.memory_bytes,
        }
    }

    /// Ready and active: the scheduler may place tasks on it.
    pub fn schedulable(&self) -> bool {
        self.status == NodeState::READY.to_string() && self.availability == NodeSpecAvailabilityEnum::ACTIVE.to_string()
    }
}

/// A node's change, for `--dry-run` and "unchanged".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum NodeChange {
    Changed,
    Unchanged,
}

impl Engine {
    pub async fn nodes(&self) -> Result<Vec<(Node, NodeRow)>, SwarmError> {
        self.require_manager().await?;
        let nodes = self.docker.list_nodes(None).await.map_err(SwarmError::api("listing nodes"))?;
        let mut rows: Vec<_> = nodes.into_iter().map(|n| (NodeRow::from(&n), n)).map(|(r, n)| (n, r)).collect();
        rows.sort_by(|a, b| a.1.hostname.cmp(&b.1.hostname).then(a.1.id.cmp(&b.1.id)));
        Ok(rows)
    }

    pub async fn node_rows(&self) -> Result<Vec<NodeRow>, SwarmError> {
        Ok(self.nodes().await?.into_iter().map(|(_, r)| r).collect())
    }

    /// A node by id, id prefix or hostname; unknown ones are named with the known ones.
    pub async fn find_node(&self, name: &str) -> Result<Node, SwarmError> {
        let nodes = self.nodes().await?;
        let found = nodes.iter().find(|(_, r)| r.id == name || r.hostname == name).or_else(|| {
            let prefixed: Vec<_> = nodes.iter().filter(|(_, r)| r.id.starts_with(name)).collect();
            (prefixed.len() == 1).then(|| prefixed[0])
        });
        match found {
            Some((node, _)) => Ok(node.clone()),
            None => Err(SwarmError::UnknownNode {
                node: name.to_string(),
                known: nodes.iter().map(|(_, r)| format!("{} ({})", r.hostname, short(&r.id))).collect(),
            }),
        }
    }

    /// Applies `change` to the node's spec and sends it back with the version it read.
    async fn update_node_spec(
        &self,
        name: &str,
        dry_run: bool,
        change: impl FnOnce(&mut NodeSpec),
    ) -> Result<NodeChange, SwarmError> {
        let node = self.find_node(name).await?;
        let id = node.id.clone().unwrap_or_default();
        let before = node.spec.clone().unwrap_or_default();
        let mut after = before.clone();
        change(&mut after);
        if after == before {
            return Ok(NodeChange::Unchanged);
        }
        if dry_run {
            return Ok(NodeChange::Changed);
        }
        let version = node.version.and_then(|v| v.index).unwrap_or_default() as i64;
        self.docker.update_node(&id, after, UpdateNodeOptions { version }).await.map_err(|e| {
            if is_not_found(&e) {
                SwarmError::UnknownNode { node: name.into(), known: vec![] }
            } else {
                SwarmError::Api { action: format!("updating node {name}"), message: api_message(&e) }
            }
        })?;
        Ok(NodeChange::Changed)
    }

    /// Sets (or with `value` None removes) one label.
    pub async fn label_node(
        &self,
        name: &str,
        key: &str,
        value: Option<&str>,
        dry_run: bool,
    ) -> Result<NodeChange, SwarmError> {
        self.update_node_spec(name, dry_run, |spec| {
            let labels = spec.labels.get_or_insert_with(HashMap::new);
            match value {
                Some(v) => {
                    labels.insert(key.to_string(), v.to_string());
                }
                None => {
                    labels.remove(key);
                }
            }
        })
        .await
    }

    pub async fn set_availability(
        &self,
        name: &str,
        availability: NodeSpecAvailabilityEnum,
        dry_run: bool,
    ) -> Result<NodeChange, SwarmError> {
        self.update_node_spec(name, dry_run, |spec| spec.availability = Some(availability)).await
    }

    /// Promotes or demotes a node.
    pub async fn set_role(&self, name: &str, role: NodeSpecRoleEnum, dry_run: bool) -> Result<NodeChange, SwarmError> {
        self.update_node_spec(name, dry_run, |spec| spec.role = Some(role)).await
    }
}

/// The 12-character id people see.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Whether one node satisfies a placement constraint such as
/// `node.labels.region == us-east`. Constraints geoctl cannot evaluate count
/// as satisfied: the scheduler stays the judge of those.
pub fn satisfies(node: &Node, constraint: &str) -> bool {
    let (key, expected, equal) = if let Some((k, v)) = constraint.split_once("!=") {
        (k.trim(), v.trim(), false)
    } else if let Some((k, v)) = constraint.split_once("==") {
        (k.trim(), v.trim(), true)
    } else {
        return true;
    };
    let spec = node.spec.clone().unwrap_or_default();
    let description = node.description.clone().unwrap_or_default();
    let actual: Option<String> = if let Some(label) = key.strip_prefix("node.labels.") {
        spec.labels.as_ref().and_then(|l| l.get(label).cloned())
    } else if let Some(label) = key.strip_prefix("engine.labels.") {
        description.engine.as_ref().and_then(|e| e.labels.as_ref()).and_then(|l| l.get(label).cloned())
    } else {
        match key {
            "node.id" => node.id.clone(),
            "node.hostname" => description.hostname.clone(),
            "node.role" => spec.role.map(|r| r.to_string()),
            "node.platform.os" => description.platform.as_ref().and_then(|p| p.os.clone()),
            "node.platform.arch" => description.platform.as_ref().and_then(|p| p.architecture.clone()),
            _ => return true,
        }
    };
    let matches = actual.is_some_and(|a| a.eq_ignore_ascii_case(expected));
    matches == equal
}
