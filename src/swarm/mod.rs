//! A region's Docker Engine, through its API (bollard): connecting and
//! negotiating the API version, and the Swarm objects geoctl manages —
//! the swarm itself, nodes, secrets, networks, images and cleanup.

pub mod image;
pub mod join;
pub mod node;
pub mod prune;
pub mod secret;
pub mod service;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::models::{LocalNodeState, NetworkCreateRequest, SwarmInitRequest};
use bollard::query_parameters::ListNetworksOptions;
use bollard::Docker;

use crate::config::Settings;

/// The label `docker stack` groups a stack's objects by (geoctl's stacks carry it too).
pub const NAMESPACE_LABEL: &str = "com.docker.stack.namespace";
/// Where an engine listens when nothing else is configured.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// Requests that wait on the engine (image builds) get this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    #[error("cannot reach the Docker Engine at {endpoint}: {message}; start dockerd or point DOCKER_HOST (or regions.<code>.docker_host) at a running engine")]
    Unreachable { endpoint: String, message: String },
    #[error("the Docker Engine at {endpoint} and geoctl do not accept each other's certificates ({message}); docker_cert_path (regions.<code>.docker_cert_path, DOCKER_CERT_PATH_<REGION>) must hold ca.pem (the CA that signed the engine's certificate), and cert.pem and key.pem signed by the CA the engine verifies clients with")]
    TlsRefused { endpoint: String, message: String },
    #[error(
        "the Docker Engine at {endpoint} is not in a swarm; run `geoctl swarm init` (or `geoctl region init`) first"
    )]
    NotInSwarm { endpoint: String },
    #[error("the Docker Engine at {endpoint} is a swarm worker, not a manager; point DOCKER_HOST (or regions.<code>.docker_host) at a manager")]
    NotManager { endpoint: String },
    #[error("unknown node `{node}`; nodes: {}", .known.join(", "))]
    UnknownNode { node: String, known: Vec<String> },
    #[error("image `{image}` is not on the engine at {endpoint}; build it with `geoctl image build --tag {image}` (nothing is pulled from a registry)")]
    MissingImage { image: String, endpoint: String },
    #[error("service `{service}` can run on no node: no ready, active node satisfies {}; label one (`geoctl node label NODE --region CODE`) or change the placement", .constraints.join(" and "))]
    Unsatisfiable { service: String, constraints: Vec<String> },
    #[error("{0}")]
    Invalid(String),
    #[error("{action}: {message}")]
    Api { action: String, message: String },
    #[error("service {service} did not converge: {message}")]
    Converge { service: String, message: String },
    #[error("region `{region}`: agents not ready after {waited} s: {missing}")]
    AgentsNotReady { region: String, waited: u64, missing: String },
}

impl crate::error::Coded for SwarmError {
    /// What the operator fixes by changing input is exit 2; the rest are failures.
    fn exit(&self) -> crate::error::Exit {
        use crate::error::Exit;
        match self {
            SwarmError::NotInSwarm { .. }
            | SwarmError::NotManager { .. }
            | SwarmError::UnknownNode { .. }
            | SwarmError::MissingImage { .. }
            | SwarmError::Unsatisfiable { .. }
            | SwarmError::Invalid(_) => Exit::Input,
            SwarmError::Unreachable { .. }
            | SwarmError::TlsRefused { .. }
            | SwarmError::Api { .. }
            | SwarmError::Converge { .. }
            | SwarmError::AgentsNotReady { .. } => Exit::Failed,
        }
    }
}

impl SwarmError {
    /// An API error with what geoctl was doing.
    pub fn api(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> SwarmError {
        let action = action.into();
        move |e| SwarmError::Api { action, message: api_message(&e) }
    }
}

/// The engine's own message, without bollard's wrapping. A failure below
/// HTTP (refused connection, TLS) is named by its innermost cause, which is
/// the part that says what happened: bollard's own text for it is only
/// "client error (SendRequest)".
pub fn api_message(err: &bollard::errors::Error) -> String {
    match err {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.trim().to_string(),
        other => {
            let mut cause: &dyn std::error::Error = other;
            while let Some(next) = cause.source() {
                cause = next;
            }
            let innermost = cause.to_string();
            if is_tls_refusal(&innermost) {
                format!("TLS refused: {innermost}")
            } else if std::ptr::eq(cause as *const _ as *const u8, other as *const _ as *const u8) {
                innermost
            } else {
                format!("{other}: {innermost}")
            }
        }
    }
}

/// Whether a connection failure's innermost cause is the TLS handshake
/// refusing a certificate (either side's).
fn is_tls_refusal(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("certificate") || lower.contains("unknownca") || lower.contains("unknown ca")
}

/// True when the engine answered 404.
pub fn is_not_found(err: &bollard::errors::Error) -> bool {
    matches!(err, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}

/// How to reach one engine.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub host: String,
    /// Directory with ca.pem, cert.pem and key.pem for `tcp://` with TLS.
    pub cert_path: Option<String>,
}

impl Endpoint {
    /// A region's engine: `regions.<code>.docker_host` (`DOCKER_HOST_<CODE>`),
    /// else `docker_host` (`DOCKER_HOST`), else the local socket.
    pub fn for_region(settings: &Settings, code: Option<&str>) -> Endpoint {
        let region = code.and_then(|c| settings.regions.get(c));
        let host = region
            .and_then(|r| r.docker_host.as_ref())
            .or(settings.docker_host.as_ref())
            .map_or_else(|| DEFAULT_HOST.to_string(), |h| h.value.clone());
        let cert_path = region
            .and_then(|r| r.docker_cert_path.as_ref())
            .or(settings.docker_cert_path.as_ref())
            .map(|p| p.value.clone());
        Endpoint { host, cert_path }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.host)
    }
}

/// A connected engine, its API version agreed.
#[derive(Debug, Clone)]
pub struct Engine {
    pub docker: Docker,
    pub endpoint: String,
}

impl Engine {
    /// Connects and negotiates the API version (1.41 engines and current ones
    /// alike); an engine that does not answer is an error naming it.
    pub async fn connect(endpoint: &Endpoint) -> Result<Engine, SwarmError> {
        let unreachable = |message: String| SwarmError::Unreachable { endpoint: endpoint.host.clone(), message };
        let timeout = REQUEST_TIMEOUT.as_secs();
        let version = bollard::API_DEFAULT_VERSION;
        let docker = if let Some(path) = endpoint.host.strip_prefix("unix://") {
            Docker::connect_with_unix(path, timeout, version)
        } else if let Some(dir) = &endpoint.cert_path {
            let dir = Path::new(dir);
            Docker::connect_with_ssl(
                &endpoint.host,
                &dir.join("key.pem"),
                &dir.join("cert.pem"),
                &dir.join("ca.pem"),
                timeout,
                version,
            )
        } else {
            Docker::connect_with_http(&endpoint.host, timeout, version)
        }
        .map_err(|e| unreachable(api_message(&e)))?;
        let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
            .await
            .map_err(|_| unreachable("no answer within 10 s".into()))?
            .map_err(|e| match api_message(&e).strip_prefix("TLS refused: ") {
                Some(why) => SwarmError::TlsRefused { endpoint: endpoint.host.clone(), message: why.to_string() },
                None => unreachable(api_message(&e)),
            })?;
        Ok(Engine { docker, endpoint: endpoint.host.clone() })
    }

    /// This engine's place in a swarm.
    pub async fn swarm_state(&self) -> Result<SwarmState, SwarmError> {
        let info = self.docker.info().await.map_err(SwarmError::api("reading the engine's info"))?;
        let swarm = info.swarm.unwrap_or_default();
        let active = swarm.local_node_state == Some(LocalNodeState::ACTIVE);
        Ok(SwarmState {
            active,
            manager: active && swarm.control_available == Some(true),
            node_id: swarm.node_id.filter(|id| !id.is_empty()),
            node_addr: swarm.node_addr.filter(|a| !a.is_empty()),
            managers: swarm.managers.map(|n| n as u64),
            nodes: swarm.nodes.map(|n| n as u64),
            cpus: info.ncpu.map(|n| n as u64),
        })
    }

    /// Fails unless this engine manages a swarm: every change needs one.
    pub async fn require_manager(&self) -> Result<SwarmState, SwarmError> {
        let state = self.swarm_state().await?;
        if !state.active {
            return Err(SwarmError::NotInSwarm { endpoint: self.endpoint.clone() });
        }
        if !state.manager {
            return Err(SwarmError::NotManager { endpoint: self.endpoint.clone() });
        }
        Ok(state)
    }

    /// `swarm init` unless the engine is in one already; true when it made one.
    pub async fn init_swarm(&self, advertise_addr: Option<&str>) -> Result<bool, SwarmError> {
        if self.swarm_state().await?.active {
            return Ok(false);
        }
        let request = SwarmInitRequest {
            listen_addr: Some("0.0.0.0:2377".into()),
            advertise_addr: advertise_addr.map(str::to_string),
            ..Default::default()
        };
        self.docker
            .init_swarm(request)
            .await
            .map_err(|e| SwarmError::Invalid(format!("swarm init: {}", api_message(&e))))?;
        Ok(true)
    }

    /// The swarm's join token for `role` (worker or manager).
    pub async fn join_token(&self, manager: bool) -> Result<String, SwarmError> {
        self.require_manager().await?;
        let swarm = self.docker.inspect_swarm().await.map_err(SwarmError::api("reading the swarm"))?;
        let tokens = swarm.join_tokens.unwrap_or_default();
        let token = if manager { tokens.manager } else { tokens.worker };
        token
            .ok_or_else(|| SwarmError::Api { action: "reading the join token".into(), message: "none returned".into() })
    }

    /// Network ids by name, for the names given.
    pub async fn networks_named(&self, names: &[String]) -> Result<HashMap<String, String>, SwarmError> {
        let filters = HashMap::from([("name".to_string(), names.to_vec())]);
        let list = self
            .docker
            .list_networks(Some(ListNetworksOptions { filters: Some(filters) }))
            .await
            .map_err(SwarmError::api("listing networks"))?;
        // The name filter matches substrings: keep exact names only.
        Ok(list.into_iter().filter_map(|n| Some((n.name?, n.id?))).filter(|(name, _)| names.contains(name)).collect())
    }

    /// Creates the network unless one of that name exists; true when created.
    pub async fn ensure_network(&self, request: NetworkCreateRequest) -> Result<bool, SwarmError> {
        let name = request.name.clone();
        if self.networks_named(std::slice::from_ref(&name)).await?.contains_key(&name) {
            return Ok(false);
        }
        self.docker.create_network(request).await.map_err(SwarmError::api(format!("creating network {name}")))?;
        Ok(true)
    }
}

/// What `swarm status` reports about the local engine.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SwarmState {
    pub active: bool,
    pub manager: bool,
    pub node_id: Option<String>,
    pub node_addr: Option<String>,
    pub managers: Option<u64>,
    pub nodes: Option<u64>,
    pub cpus: Option<u64>,
}

/// An overlay network for a region's services: encrypted, attachable.
pub fn overlay_network(name: &str, subnet: Option<&str>, labels: HashMap<String, String>) -> NetworkCreateRequest {
    NetworkCreateRequest {
        name: name.to_string(),
        driver: Some("overlay".into()),
        scope: Some("swarm".into()),
        attachable: Some(true),
        options: Some(HashMap::from([("encrypted".to_string(), String::new())])),
        ipam: subnet.map(|s| bollard::models::Ipam {
            config: Some(vec![bollard::models::IpamConfig { subnet: Some(s.to_string()), ..Default::default() }]),
            ..Default::default()
        }),
        labels: Some(labels),
        ..Default::default()
    }
}

/// What quorum warnings a swarm's managers deserve: one manager, an even
/// number, or any unreachable.
pub fn quorum_warnings(managers: u64, unreachable: u64) -> Vec<String> {
    let mut out = Vec::new();
    if managers == 1 {
        out.push("one manager: if it fails the swarm cannot be managed; run three (tolerates one failure)".into());
    } else if managers > 0 && managers % 2 == 0 {
        out.push(format!("{managers} managers tolerate no more failures than {}; use an odd number", managers - 1));
    }
    if unreachable > 0 {
        let quorum = managers / 2 + 1;
        let reachable = managers.saturating_sub(unreachable);
        let verdict = if reachable >= quorum { "quorum holds" } else { "QUORUM LOST: the swarm cannot change" };
        out.push(format!("{unreachable} of {managers} managers unreachable; quorum needs {quorum}: {verdict}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum() {
        assert_eq!(quorum_warnings(3, 0).len(), 0);
        assert!(quorum_warnings(1, 0)[0].contains("one manager"));
        assert!(quorum_warnings(4, 0)[0].contains("odd"));
        assert!(quorum_warnings(3, 2)[0].contains("QUORUM LOST"));
        assert!(quorum_warnings(5, 1)[0].contains("quorum holds"));
    }
}
