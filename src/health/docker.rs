//! What the Docker Engine says about a region's stack: whether the engine
//! answers, whether it manages a swarm, and each service's running/desired
//! task counts. The engine is the one `DOCKER_HOST` names (default: the
//! local socket); the region's stack is `geoctl-<code>`.

use std::collections::HashMap;

use bollard::query_parameters::{ListSecretsOptions, ListServicesOptions};
use bollard::Docker;
use serde::Serialize;

use super::{Part, Status};

pub fn stack_name(code: &str) -> String {
    format!("geoctl-{code}")
}

/// One service of a region's stack.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceCounts {
    pub name: String,
    pub running: u64,
    pub desired: u64,
}

/// The engine as seen once per command.
pub enum Engine {
    /// No DOCKER_HOST and no local socket.
    NotConfigured,
    Unreachable(String),
    Reachable {
        docker: Docker,
        swarm_manager: bool,
        host: String,
    },
}

impl Engine {
    pub async fn connect() -> Self {
        let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        if std::env::var_os("DOCKER_HOST").is_none() && !std::path::Path::new("/var/run/docker.sock").exists() {
            return Engine::NotConfigured;
        }
        let docker = match Docker::connect_with_defaults() {
            Ok(d) => d.with_timeout(std::time::Duration::from_secs(10)),
            Err(e) => return Engine::Unreachable(format!("{host}: {e}")),
        };
        let info = match docker.info().await {
            Ok(info) => info,
            Err(e) => return Engine::Unreachable(format!("{host}: {e}")),
        };
        let swarm_manager = info.swarm.and_then(|s| s.control_available).unwrap_or(false);
        Engine::Reachable { docker, swarm_manager, host }
    }

    /// The services of the region's stack; an `Err` part says why they cannot be known.
    pub async fn stack_services(&self, code: &str) -> Result<Vec<ServiceCounts>, Part> {
        let docker = match self {
            Engine::NotConfigured => {
                return Err(Part::new(Status::NotConfigured, "engine not configured (DOCKER_HOST)"))
            }
            Engine::Unreachable(e) => return Err(Part::new(Status::NotDeployed, format!("engine unreachable: {e}"))),
            Engine::Reachable { swarm_manager: false, .. } => {
                return Err(Part::new(Status::NotDeployed, "engine is not a swarm manager"))
            }
            Engine::Reachable { docker, .. } => docker,
        };
        let filters = HashMap::from([("label".to_string(), vec![format!("{}={}", NAMESPACE_LABEL, stack_name(code))])]);
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
