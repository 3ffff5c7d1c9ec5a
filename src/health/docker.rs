//! What the Docker Engine says about a region's stack: whether the engine
//! answers, whether it manages a swarm, and each service's running/desired
//! task counts. The engine is the region's (`DOCKER_HOST_<REGION>`, else
//! `DOCKER_HOST`, else the local socket: [`crate::swarm::Endpoint::for_region`]);
//! the stack is the region's stack name (`geoctl-<code>` unless configured).

use std::collections::HashMap;

use bollard::query_parameters::{ListSecretsOptions, ListServicesOptions};
use bollard::Docker;
use serde::Serialize;

use super::{Part, Status};
use crate::swarm::{Endpoint, DEFAULT_HOST};

/// One service of a region's stack.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceCounts {
    pub name: String,
    pub running: u64,
    pub desired: u64,
}

/// An engine as seen once per command.
pub enum Engine {
    /// Nothing configured and no local socket.
    NotConfigured,
    Unreachable(String),
    Reachable {
        docker: Docker,
        swarm_manager: bool,
        host: String,
    },
}

impl Engine {
    pub async fn connect(endpoint: &Endpoint) -> Self {
        if endpoint.host == DEFAULT_HOST && !std::path::Path::new(&DEFAULT_HOST["unix://".len()..]).exists() {
            return Engine::NotConfigured;
        }
        let docker = match crate::swarm::Engine::connect(endpoint).await {
            Ok(engine) => engine.docker,
            Err(e) => return Engine::Unreachable(e.to_string()),
        };
        let info = match docker.info().await {
            Ok(info) => info,
            Err(e) => return Engine::Unreachable(format!("{}: {}", endpoint.host, crate::swarm::api_message(&e))),
        };
        let swarm_manager = info.swarm.and_then(|s| s.control_available).unwrap_or(false);
        Engine::Reachable { docker, swarm_manager, host: endpoint.host.clone() }
    }

    /// The services of the region's stack; an `Err` part says why they cannot be known.
    pub async fn stack_services(&self, stack: &str) -> Result<Vec<ServiceCounts>, Part> {
        let docker = match self {
            Engine::NotConfigured => {
                return Err(Part::new(
                    Status::NotConfigured,
                    "engine not configured (DOCKER_HOST_<REGION> or DOCKER_HOST)",
                ))
            }
            // An engine that should answer and does not is the region's failure, named with its address.
            Engine::Unreachable(e) => return Err(Part::new(Status::Down, format!("engine unreachable: {e}"))),
            Engine::Reachable { swarm_manager: false, .. } => {
                return Err(Part::new(Status::NotDeployed, "engine is not a swarm manager"))
            }
            Engine::Reachable { docker, .. } => docker,
        };
        let filters = HashMap::from([("label".to_string(), vec![format!("{NAMESPACE_LABEL}={stack}")])]);
        let services = docker
            .list_services(Some(ListServicesOptions { filters: Some(filters), status: Some(true) }))
            .await
            .map_err(|e| Part::new(Status::Down, format!("listing services: {e}")))?;
        let mut out: Vec<ServiceCounts> = services
            .into_iter()
            .map(|s| ServiceCounts {
                name: s.spec.and_then(|spec| spec.name).unwrap_or_default(),
                running: s.service_status.as_ref().and_then(|st| st.running_tasks).unwrap_or(0),
                desired: s.service_status.as_ref().and_then(|st| st.desired_tasks).unwrap_or(0),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Names of the swarm's secrets (a manager only).
    pub async fn secret_names(&self) -> Option<Vec<String>> {
        let Engine::Reachable { docker, swarm_manager: true, .. } = self else { return None };
        let secrets = docker.list_secrets(None::<ListSecretsOptions>).await.ok()?;
        Some(secrets.into_iter().filter_map(|s| s.spec.and_then(|spec| spec.name)).collect())
    }
}

/// The label `docker stack deploy` (and geoctl) put on a stack's objects.
pub const NAMESPACE_LABEL: &str = "com.docker.stack.namespace";
