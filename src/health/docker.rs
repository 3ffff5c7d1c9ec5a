//! What the Docker Engine says about a region's stack: whether the engine
//! answers, whether it manages a swarm, and each service's running/desired
//! task counts. The engine is the region's (`DOCKER_HOST_<REGION>`, else
//! `DOCKER_HOST`, else the local socket: [`crate::swarm::Endpoint::for_region`]),
//! reached through [`crate::swarm::Engine`] like every other command;
//! the stack is the region's stack name (`geoctl-<code>` unless configured).

use serde::Serialize;

use super::{Part, Status};
use crate::swarm::service::service_name;
use crate::swarm::{Endpoint, Engine, DEFAULT_HOST};

/// One service of a region's stack.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceCounts {
    pub name: String,
    pub running: u64,
    pub desired: u64,
}

/// An engine as seen once per command: a part whose engine is absent or down is reported,
/// not failed.
pub enum EngineReach {
    /// Nothing configured and no local socket.
    NotConfigured,
    Unreachable(String),
    Reachable {
        engine: Engine,
        swarm_manager: bool,
    },
}

impl EngineReach {
    pub async fn connect(endpoint: &Endpoint) -> Self {
        if endpoint.host == DEFAULT_HOST && !std::path::Path::new(&DEFAULT_HOST["unix://".len()..]).exists() {
            return EngineReach::NotConfigured;
        }
        let engine = match Engine::connect(endpoint).await {
            Ok(engine) => engine,
            Err(e) => return EngineReach::Unreachable(e.to_string()),
        };
        match engine.swarm_state().await {
            Ok(state) => EngineReach::Reachable { swarm_manager: state.manager, engine },
            Err(e) => EngineReach::Unreachable(format!("{}: {e}", endpoint.host)),
        }
    }

    /// The services of the region's stack; an `Err` part says why they cannot be known.
    pub async fn stack_services(&self, stack: &str) -> Result<Vec<ServiceCounts>, Part> {
        let engine = match self {
            EngineReach::NotConfigured => {
                return Err(Part::new(
                    Status::NotConfigured,
                    "engine not configured (DOCKER_HOST_<REGION> or DOCKER_HOST)",
                ))
            }
            // An engine that should answer and does not is the region's failure, named with its address.
            EngineReach::Unreachable(e) => return Err(Part::new(Status::Down, format!("engine unreachable: {e}"))),
            EngineReach::Reachable { swarm_manager: false, .. } => {
                return Err(Part::new(Status::NotDeployed, "engine is not a swarm manager"))
            }
            EngineReach::Reachable { engine, .. } => engine,
        };
        let services = engine.stack_services(stack).await.map_err(|e| Part::new(Status::Down, e.to_string()))?;
        Ok(services
            .iter()
            .map(|s| ServiceCounts {
                name: service_name(s).to_string(),
                running: s.service_status.as_ref().and_then(|st| st.running_tasks).unwrap_or(0),
                desired: s.service_status.as_ref().and_then(|st| st.desired_tasks).unwrap_or(0),
            })
            .collect())
    }
}
