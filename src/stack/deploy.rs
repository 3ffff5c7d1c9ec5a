//! Deploying a rendered stack through the Engine API, as `docker stack deploy`
//! would, but touching only what changed: a service whose spec fingerprint
//! (label `io.geoctl.spec-hash`) equals the new one is left alone, so an
//! unchanged redeploy updates nothing and bumps no service version.
//!
//! Every precondition is checked before the first change: a manager, the
//! images present on the engine, every secret either present or with a
//! source, and a node for every placement.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use bollard::models::ServiceSpec;
use bollard::query_parameters::{ListContainersOptions, ListVolumesOptions, RemoveVolumeOptions, UpdateServiceOptions};
use indicatif::MultiProgress;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::compose::ComposeFile;
use super::convert::{convert, StackObjects};
use super::{Rendered, NAMESPACE_LABEL, SECRET_BASE_LABEL, SPEC_HASH_LABEL};
use crate::swarm::node::satisfies;
use crate::swarm::service::{previous_rollback, rolls_tasks, service_name};
use crate::swarm::{api_message, Engine, SwarmError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Unchanged,
}

/// One service's part of a deploy.
#[derive(Debug, Clone, Serialize)]
pub struct ServicePlan {
    pub name: String,
    pub action: Action,
    /// The service's version before and after (None: it did not exist / dry run).
    pub version_before: Option<u64>,
    pub version_after: Option<u64>,
}

/// What a deploy did (or, dry, would do).
#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    pub stack: String,
    pub services: Vec<ServicePlan>,
    pub networks_created: Vec<String>,
    pub secrets_created: Vec<String>,
    pub secrets_removed: Vec<String>,
    /// Seconds from the first change to every service converged (None when not waited).
    pub converged_seconds: Option<f64>,
    pub dry_run: bool,
    /// What the operator should know that is not a failure (an earlier update that Swarm rolled back).
    pub notes: Vec<String>,
}

impl DeployReport {
    pub fn updated(&self) -> usize {
        self.services.iter().filter(|s| s.action != Action::Unchanged).count()
    }

    pub fn changed_anything(&self) -> bool {
        self.updated() > 0 || !self.networks_created.is_empty() || !self.secrets_created.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct DeployOptions {
    pub dry_run: bool,
    /// Wait for convergence (and then remove superseded secret versions).
    pub wait: bool,
    pub timeout: Duration,
}

/// Deploys `rendered` to `engine`. `progress` gets a bar per service while waiting.
pub async fn deploy(
    engine: &Engine,
    rendered: &Rendered,
    options: &DeployOptions,
    progress: Option<&MultiProgress>,
) -> Result<DeployReport, SwarmError> {
    let namespace = rendered.stack.name.as_str();
    let file = ComposeFile::parse(&rendered.yaml).map_err(SwarmError::Invalid)?;

    // Preconditions: nothing changes until all of them hold.
    engine.require_manager().await?;
    let mut images = BTreeMap::new();
    for service in file.services.values() {
        match engine.image_id(&service.image).await? {
            Some(id) => images.insert(service.image.clone(), id),
            None => {
                return Err(SwarmError::MissingImage {
                    image: service.image.clone(),
                    endpoint: engine.endpoint.clone(),
                })
            }
        };
    }
    let mut secret_ids = engine.secret_ids().await?;
    let mut missing_secrets = Vec::new();
    for name in file.secrets.values().map(|d| d.name.clone().unwrap_or_default()) {
        if secret_ids.contains_key(&name) {
            continue;
        }
        match rendered.secrets.iter().find(|s| s.name == name) {
            Some(source) => missing_secrets.push(source),
            None => {
                return Err(SwarmError::Invalid(format!(
                    "secret `{name}` does not exist on the engine and has no source; create it with `geoctl secret create {name}`"
                )))
            }
        }
    }
    // Placeholder ids let the conversion run before the secrets exist.
    let mut planned_ids = secret_ids.clone();
    for s in &missing_secrets {
        planned_ids.insert(s.name.clone(), format!("<new {}>", s.name));
    }
    let objects = convert(namespace, &file, &planned_ids, &images).map_err(SwarmError::Invalid)?;
    check_placement(engine, &objects).await?;

    let existing: HashMap<String, bollard::models::Service> =
        engine.stack_services(namespace).await?.into_iter().map(|s| (service_name(&s).to_string(), s)).collect();
    let network_names: Vec<String> = objects.networks.iter().map(|n| n.name.clone()).collect();
    let existing_networks = engine.networks_named(&network_names).await?;
    let mut report = DeployReport {
        stack: namespace.to_string(),
        services: Vec::new(),
        networks_created: network_names.iter().filter(|n| !existing_networks.contains_key(*n)).cloned().collect(),
        secrets_created: missing_secrets.iter().map(|s| s.name.clone()).collect(),
        secrets_removed: Vec::new(),
        converged_seconds: None,
        dry_run: options.dry_run,
        notes: Vec::new(),
    };
    if options.dry_run {
        for spec in &objects.services {
            let name = spec.name.clone().unwrap_or_default();
            let current = existing.get(&name);
            report.services.push(ServicePlan {
                action: action_for(current, &fingerprint(spec)),
                version_before: current.and_then(version),
                version_after: None,
                name,
            });
        }
        return Ok(report);
    }

    // Apply: secrets, networks, then services.
    let started = Instant::now();
    for s in &missing_secrets {
        let labels = HashMap::from([
            (NAMESPACE_LABEL.to_string(), namespace.to_string()),
            (SECRET_BASE_LABEL.to_string(), s.base.clone()),
        ]);
        let id = engine.create_secret(&s.name, &s.value, labels).await?;
        secret_ids.insert(s.name.clone(), id);
    }
    let objects = convert(namespace, &file, &secret_ids, &images).map_err(SwarmError::Invalid)?;
    for network in &objects.networks {
        engine.ensure_network(network.clone()).await?;
    }
    let known_tasks: HashSet<String> = engine
        .tasks_of(&existing.values().filter_map(|s| s.id.clone()).collect::<Vec<_>>())
        .await?
        .into_iter()
        .filter_map(|t| t.id)
        .collect();
    let mut ids = Vec::new();
    let mut rolling = HashSet::new();
    for spec in objects.services {
        let name = spec.name.clone().unwrap_or_default();
        let hash = fingerprint(&spec);
        let current = existing.get(&name);
        let action = action_for(current, &hash);
        let mut spec = spec;
        spec.labels.get_or_insert_with(HashMap::new).insert(SPEC_HASH_LABEL.into(), hash);
        let id = match (action, current) {
            (Action::Unchanged, Some(current)) => current.id.clone().unwrap_or_default(),
            (Action::Update, Some(current)) => {
                let id = current.id.clone().unwrap_or_default();
                let version = version(current).unwrap_or_default() as i32;
                engine
                    .docker
                    .update_service(&id, spec, UpdateServiceOptions { version, ..Default::default() }, None)
                    .await
                    .map_err(|e| SwarmError::Api {
                        action: format!("updating service {name}"),
                        message: api_message(&e),
                    })?;
                // Compared as the engine shows both, so its own defaults do not count as a change.
                let updated = engine.docker.inspect_service(&id, None).await.map_err(|e| SwarmError::Api {
                    action: format!("reading service {name}"),
                    message: api_message(&e),
                })?;
                if rolls_tasks(current, &updated) {
                    rolling.insert(id.clone());
                }
                id
            }
            _ => engine
                .docker
                .create_service(spec, None)
                .await
                .map_err(|e| SwarmError::Api { action: format!("creating service {name}"), message: api_message(&e) })?
                .id
                .unwrap_or_default(),
        };
        if action == Action::Unchanged {
            if let Some(message) = current.and_then(previous_rollback) {
                report.notes.push(format!("{name}: the previous update was rolled back ({message})"));
            }
        }
        report.services.push(ServicePlan {
            name,
            action,
            version_before: current.and_then(version),
            version_after: None,
        });
        ids.push(id);
    }

    if options.wait {
        engine.wait_services(&ids, &rolling, &known_tasks, options.timeout, progress).await?;
        report.converged_seconds = Some(started.elapsed().as_secs_f64());
        report.secrets_removed = remove_superseded_secrets(engine, namespace).await?;
    }
    let after: HashMap<String, bollard::models::Service> =
        engine.stack_services(namespace).await?.into_iter().map(|s| (service_name(&s).to_string(), s)).collect();
    for plan in &mut report.services {
        plan.version_after = after.get(&plan.name).and_then(version);
    }
    Ok(report)
}

fn version(service: &bollard::models::Service) -> Option<u64> {
    service.version.as_ref().and_then(|v| v.index)
}

fn action_for(current: Option<&bollard::models::Service>, hash: &str) -> Action {
    match current {
        None => Action::Create,
        Some(s) => {
            let labels = s.spec.as_ref().and_then(|s| s.labels.as_ref());
            if labels.and_then(|l| l.get(SPEC_HASH_LABEL)).map(String::as_str) == Some(hash) {
                Action::Unchanged
            } else {
                Action::Update
            }
        }
    }
}

/// A stable fingerprint of what geoctl asks for: JSON with sorted keys.
pub fn fingerprint(spec: &ServiceSpec) -> String {
    let value = serde_json::to_value(spec).unwrap_or_default();
    let text = serde_json::to_string(&value).unwrap_or_default();
    Sha256::digest(text.as_bytes()).iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Each service must fit on at least one ready, active node.
async fn check_placement(engine: &Engine, objects: &StackObjects) -> Result<(), SwarmError> {
    let nodes = engine.nodes().await?;
    for spec in &objects.services {
        let constraints = spec
            .task_template
            .as_ref()
            .and_then(|t| t.placement.as_ref())
            .and_then(|p| p.constraints.clone())
            .unwrap_or_default();
        let fits = nodes.iter().any(|(node, row)| row.schedulable() && constraints.iter().all(|c| satisfies(node, c)));
        if !fits {
            return Err(SwarmError::Unsatisfiable { service: spec.name.clone().unwrap_or_default(), constraints });
        }
    }
    Ok(())
}

/// Secret versions of this stack that no service uses any more.
async fn remove_superseded_secrets(engine: &Engine, namespace: &str) -> Result<Vec<String>, SwarmError> {
    let used: HashSet<String> = engine
        .docker
        .list_services(None::<bollard::query_parameters::ListServicesOptions>)
        .await
        .map_err(SwarmError::api("listing services"))?
        .iter()
        .flat_map(|s| crate::swarm::secret::secret_refs(s.spec.as_ref()).collect::<Vec<_>>())
        .collect();
    let mut removed = Vec::new();
    for secret in engine.secrets().await? {
        let spec = secret.spec.clone().unwrap_or_default();
        let labels = spec.labels.unwrap_or_default();
        let ours = labels.get(NAMESPACE_LABEL).map(String::as_str) == Some(namespace)
            && labels.contains_key(SECRET_BASE_LABEL);
        let id = secret.id.clone().unwrap_or_default();
        if ours && !used.contains(&id) {
            engine.docker.delete_secret(&id).await.map_err(SwarmError::api(format!("removing secret {id}")))?;
            removed.extend(spec.name);
        }
    }
    Ok(removed)
}

/// What `stack rm` removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Removal {
    pub services: Vec<String>,
    pub networks: Vec<String>,
    pub secrets: Vec<String>,
    pub volumes: Vec<String>,
}

impl Removal {
    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && self.networks.is_empty() && self.secrets.is_empty() && self.volumes.is_empty()
    }
}

/// Removes stack `namespace` as `docker stack rm` does (services, networks,
/// secrets labelled with it), waits for its containers to go, and with
/// `volumes` also removes its volumes.
pub async fn remove(
    engine: &Engine,
    namespace: &str,
    volumes: bool,
    dry_run: bool,
    timeout: Duration,
) -> Result<Removal, SwarmError> {
    engine.require_manager().await?;
    let label = format!("{NAMESPACE_LABEL}={namespace}");
    let filters = HashMap::from([("label".to_string(), vec![label.clone()])]);
    let services = engine.stack_services(namespace).await?;
    let networks = engine
        .docker
        .list_networks(Some(bollard::query_parameters::ListNetworksOptions { filters: Some(filters.clone()) }))
        .await
        .map_err(SwarmError::api("listing networks"))?;
    let secrets: Vec<_> = engine
        .secrets()
        .await?
        .into_iter()
        .filter(|s| {
            s.spec.as_ref().and_then(|s| s.labels.as_ref()).and_then(|l| l.get(NAMESPACE_LABEL)).map(String::as_str)
                == Some(namespace)
        })
        .collect();
    let mut removal = Removal {
        services: services.iter().map(|s| service_name(s).to_string()).collect(),
        networks: networks.iter().filter_map(|n| n.name.clone()).collect(),
        secrets: secrets.iter().filter_map(|s| s.spec.as_ref()?.name.clone()).collect(),
        volumes: Vec::new(),
    };
    let stack_volumes = |engine: &Engine| {
        let filters = filters.clone();
        let engine = engine.clone();
        async move {
            engine
                .docker
                .list_volumes(Some(ListVolumesOptions { filters: Some(filters) }))
                .await
                .map_err(SwarmError::api("listing volumes"))
                .map(|v| v.volumes.unwrap_or_default().into_iter().map(|v| v.name).collect::<Vec<_>>())
        }
    };
    if volumes {
        removal.volumes = stack_volumes(engine).await?;
    }
    if dry_run {
        return Ok(removal);
    }
    for service in &services {
        let id = service.id.clone().unwrap_or_default();
        engine
            .docker
            .delete_service(&id)
            .await
            .map_err(SwarmError::api(format!("removing service {}", service_name(service))))?;
    }
    // Networks and volumes are busy until the tasks' containers are gone.
    let deadline = Instant::now() + timeout;
    loop {
        let containers = engine
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters.clone()),
                ..Default::default()
            }))
            .await
            .map_err(SwarmError::api("listing containers"))?;
        if containers.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            return Err(SwarmError::Converge {
                service: namespace.into(),
                message: format!("{} container(s) still there after {} s", containers.len(), timeout.as_secs()),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for secret in &secrets {
        let id = secret.id.clone().unwrap_or_default();
        engine.docker.delete_secret(&id).await.map_err(SwarmError::api(format!("removing secret {id}")))?;
    }
    for network in &networks {
        let id = network.id.clone().unwrap_or_default();
        // The network may linger a moment after its last container.
        let mut attempt = 0;
        loop {
            match engine.docker.remove_network(&id).await {
                Ok(()) => break,
                Err(e) if crate::swarm::is_not_found(&e) => break,
                Err(e) if attempt < 40 => {
                    tracing::debug!("network {id} not removable yet: {}", api_message(&e));
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => {
                    return Err(SwarmError::Api { action: format!("removing network {id}"), message: api_message(&e) })
                }
            }
        }
    }
    if volumes {
        // Swarm names the spool volumes per slot; they carry the stack's label.
        removal.volumes = stack_volumes(engine).await?;
        for name in &removal.volumes {
            engine
                .docker
                .remove_volume(name, None::<RemoveVolumeOptions>)
                .await
                .map_err(SwarmError::api(format!("removing volume {name}")))?;
        }
    }
    Ok(removal)
}
