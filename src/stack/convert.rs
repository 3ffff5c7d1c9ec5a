//! A Compose stack file → the Swarm objects `docker stack deploy` would make
//! of it: services `<stack>_<service>`, networks `<stack>_<network>`, volumes
//! `<stack>_<volume>`, all labelled `com.docker.stack.namespace=<stack>`.
//!
//! Pure: what exists on the engine comes in as arguments (secret ids, the
//! image each reference resolves to), so the conversion is tested without one.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::models::{
    EndpointPortConfig, EndpointSpec, EndpointSpecModeEnum, HealthConfig, Ipam, IpamConfig, Limit, Mount,
    MountTmpfsOptions, MountType, MountVolumeOptions, NetworkAttachmentConfig, NetworkCreateRequest, ResourceObject,
    ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, ServiceSpecRollbackConfig, ServiceSpecUpdateConfig,
    TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecFile, TaskSpecContainerSpecSecrets, TaskSpecLogDriver,
    TaskSpecPlacement, TaskSpecPlacementPreferences, TaskSpecPlacementSpread, TaskSpecResources, TaskSpecRestartPolicy,
};
use serde::de::DeserializeOwned;

use super::compose::{self, ComposeFile, UpdateConfig};
use super::{parse_bytes, parse_cpus, IMAGE_LABEL, NAMESPACE_LABEL};
use crate::duration::{self, BareUnit};

/// What deploying a stack file makes.
#[derive(Debug, Clone)]
pub struct StackObjects {
    pub networks: Vec<NetworkCreateRequest>,
    /// Docker secret names the services reference (they must exist).
    pub secrets: Vec<String>,
    pub services: Vec<ServiceSpec>,
}

/// Converts `file` for stack `namespace`. `secret_ids` maps Docker secret names
/// to ids; `images` maps image references to what to deploy instead (the local
/// image id, so that no task start asks a registry).
pub fn convert(
    namespace: &str,
    file: &ComposeFile,
    secret_ids: &BTreeMap<String, String>,
    images: &BTreeMap<String, String>,
) -> Result<StackObjects, String> {
    let networks = networks(namespace, file)?;
    let mut secrets = Vec::new();
    for (key, def) in &file.secrets {
        if def.file.is_some() || def.external != Some(true) {
            return Err(format!("secret `{key}`: only external secrets are supported (`external: true` and a `name`)"));
        }
        secrets.push(def.name.clone().unwrap_or_else(|| key.clone()));
    }
    let services = file
        .services
        .iter()
        .map(|(name, service)| {
            service_spec(namespace, name, service, file, secret_ids, images)
                .map_err(|e| format!("service `{name}`: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(StackObjects { networks, secrets, services })
}

fn stack_labels(namespace: &str, labels: &BTreeMap<String, String>) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = labels.clone().into_iter().collect();
    out.insert(NAMESPACE_LABEL.into(), namespace.into());
    out
}

/// The network's name on the engine.
pub fn network_name(namespace: &str, key: &str, def: Option<&compose::Network>) -> String {
    match def {
        Some(def) if def.external == Some(true) => def.name.clone().unwrap_or_else(|| key.to_string()),
        Some(compose::Network { name: Some(name), .. }) => name.clone(),
        _ => format!("{namespace}_{key}"),
    }
}

fn networks(namespace: &str, file: &ComposeFile) -> Result<Vec<NetworkCreateRequest>, String> {
    let mut out = Vec::new();
    let used_default = file.services.values().any(|s| s.networks.is_none());
    if used_default && !file.networks.contains_key("default") {
        out.push(NetworkCreateRequest {
            name: format!("{namespace}_default"),
            driver: Some("overlay".into()),
            scope: Some("swarm".into()),
            labels: Some(stack_labels(namespace, &BTreeMap::new())),
            ..Default::default()
        });
    }
    for (key, def) in &file.networks {
        let def = def.clone().unwrap_or_default();
        if def.external == Some(true) {
            continue;
        }
        let driver = def.driver.clone().unwrap_or_else(|| "overlay".into());
        let ipam = def.ipam.as_ref().map(|ipam| Ipam {
            driver: ipam.driver.clone(),
            config: Some(
                ipam.config.iter().map(|c| IpamConfig { subnet: c.subnet.clone(), ..Default::default() }).collect(),
            ),
            ..Default::default()
        });
        out.push(NetworkCreateRequest {
            name: network_name(namespace, key, Some(&def)),
            driver: Some(driver),
            scope: Some("swarm".into()),
            attachable: def.attachable,
            options: Some(def.driver_opts.iter().map(|(k, v)| (k.clone(), compose::scalar(v))).collect()),
            labels: Some(stack_labels(namespace, &def.labels)),
            ipam,
            ..Default::default()
        });
    }
    Ok(out)
}

fn service_spec(
    namespace: &str,
    name: &str,
    service: &compose::Service,
    file: &ComposeFile,
    secret_ids: &BTreeMap<String, String>,
    images: &BTreeMap<String, String>,
) -> Result<ServiceSpec, String> {
    let deploy = &service.deploy;
    let image = images.get(&service.image).cloned().unwrap_or_else(|| service.image.clone());

    let mut secrets = Vec::new();
    for secret in &service.secrets {
        let r = secret.reference();
        let def = &file.secrets[&r.source];
        let secret_name = def.name.clone().unwrap_or_else(|| r.source.clone());
        let secret_id = secret_ids
            .get(&secret_name)
            .cloned()
            .ok_or_else(|| format!("secret `{secret_name}` does not exist on the engine"))?;
        secrets.push(TaskSpecContainerSpecSecrets {
            file: Some(TaskSpecContainerSpecFile {
                name: Some(r.target.unwrap_or(r.source)),
                uid: Some(r.uid.unwrap_or_else(|| "0".into())),
                gid: Some(r.gid.unwrap_or_else(|| "0".into())),
                mode: Some(r.mode.unwrap_or(0o444)),
            }),
            secret_id: Some(secret_id),
            secret_name: Some(secret_name),
        });
    }

    let mounts = service.volumes.iter().map(|m| mount(namespace, m, file)).collect::<Result<Vec<_>, _>>()?;

    let network_keys = service.networks.clone().unwrap_or_else(|| vec!["default".into()]);
    let networks = network_keys
        .iter()
        .map(|key| {
            let def = file.networks.get(key).cloned().flatten();
            NetworkAttachmentConfig {
                target: Some(network_name(namespace, key, def.as_ref())),
                aliases: Some(vec![name.to_string()]),
                ..Default::default()
            }
        })
        .collect();

    let health_check = service.healthcheck.as_ref().map(health).transpose()?;
    let container_spec = TaskSpecContainerSpec {
        image: Some(image),
        labels: Some(stack_labels(namespace, &service.labels)),
        command: service.entrypoint.as_ref().map(compose::Words::to_vec),
        args: service.command.as_ref().map(compose::Words::to_vec),
        hostname: service.hostname.clone(),
        env: Some(service.environment.to_vec()).filter(|e| !e.is_empty()),
        dir: service.working_dir.clone(),
        user: service.user.clone(),
        read_only: service.read_only,
        init: service.init,
        mounts: Some(mounts).filter(|m| !m.is_empty()),
        stop_grace_period: service.stop_grace_period.as_deref().map(nanos).transpose()?,
        health_check,
        secrets: Some(secrets).filter(|s| !s.is_empty()),
        sysctls: Some(service.sysctls.iter().map(|(k, v)| (k.clone(), compose::scalar(v))).collect())
            .filter(|s: &HashMap<String, String>| !s.is_empty()),
        capability_add: service.cap_add.clone(),
        capability_drop: service.cap_drop.clone(),
        ..Default::default()
    };

    let mode = match deploy.mode.as_deref().unwrap_or("replicated") {
        "replicated" => ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(deploy.replicas.unwrap_or(1) as i64) }),
            ..Default::default()
        },
        "global" => ServiceSpecMode { global: Some(HashMap::new()), ..Default::default() },
        other => return Err(format!("deploy.mode `{other}` is not supported; use replicated or global")),
    };

    let restart_policy = deploy
        .restart_policy
        .as_ref()
        .map(|r| -> Result<_, String> {
            Ok(TaskSpecRestartPolicy {
                condition: r.condition.as_deref().map(enum_value).transpose()?,
                delay: r.delay.as_deref().map(nanos).transpose()?,
                max_attempts: r.max_attempts,
                window: r.window.as_deref().map(nanos).transpose()?,
            })
        })
        .transpose()?;

    let resources = TaskSpecResources {
        limits: deploy
            .resources
            .limits
            .as_ref()
            .map(|l| -> Result<_, String> {
                Ok(Limit { nano_cpus: cpus(l.cpus.as_ref())?, memory_bytes: bytes(l.memory.as_ref())?, pids: l.pids })
            })
            .transpose()?,
        reservations: deploy
            .resources
            .reservations
            .as_ref()
            .map(|r| -> Result<_, String> {
                Ok(ResourceObject {
                    nano_cpus: cpus(r.cpus.as_ref())?,
                    memory_bytes: bytes(r.memory.as_ref())?,
                    ..Default::default()
                })
            })
            .transpose()?,
        ..Default::default()
    };

    let placement = TaskSpecPlacement {
        constraints: Some(deploy.placement.constraints.clone()).filter(|c| !c.is_empty()),
        preferences: Some(
            deploy
                .placement
                .preferences
                .iter()
                .map(|p| TaskSpecPlacementPreferences {
                    spread: Some(TaskSpecPlacementSpread { spread_descriptor: Some(p.spread.clone()) }),
                })
                .collect(),
        )
        .filter(|p: &Vec<_>| !p.is_empty()),
        max_replicas: deploy.placement.max_replicas_per_node,
        ..Default::default()
    };

    let log_driver = service.logging.as_ref().map(|l| TaskSpecLogDriver {
        name: l.driver.clone(),
        options: Some(l.options.iter().map(|(k, v)| (k.clone(), compose::scalar(v))).collect()),
    });

    let mut labels = stack_labels(namespace, &deploy.labels);
    labels.insert(IMAGE_LABEL.into(), service.image.clone());

    // Compose's defaults: TCP, through the routing mesh.
    let ports: Vec<EndpointPortConfig> = service
        .ports
        .iter()
        .map(|p| {
            Ok(EndpointPortConfig {
                target_port: Some(p.target.into()),
                published_port: p.published.map(i64::from),
                protocol: Some(enum_value(p.protocol.as_deref().unwrap_or("tcp"))?),
                publish_mode: Some(enum_value(p.mode.as_deref().unwrap_or("ingress"))?),
                ..Default::default()
            })
        })
        .collect::<Result<_, String>>()?;
    let ports = (!ports.is_empty()).then_some(ports);
    Ok(ServiceSpec {
        name: Some(format!("{namespace}_{name}")),
        labels: Some(labels),
        task_template: Some(TaskSpec {
            container_spec: Some(container_spec),
            resources: Some(resources),
            restart_policy,
            placement: Some(placement),
            networks: Some(networks),
            log_driver,
            force_update: Some(0),
            ..Default::default()
        }),
        mode: Some(mode),
        update_config: deploy.update_config.as_ref().map(update_config).transpose()?,
        rollback_config: deploy.rollback_config.as_ref().map(rollback_config).transpose()?,
        endpoint_spec: Some(EndpointSpec { mode: Some(EndpointSpecModeEnum::VIP), ports }),
        ..Default::default()
    })
}

fn update_config(u: &UpdateConfig) -> Result<ServiceSpecUpdateConfig, String> {
    Ok(ServiceSpecUpdateConfig {
        parallelism: Some(u.parallelism.unwrap_or(1)),
        delay: u.delay.as_deref().map(nanos).transpose()?,
        failure_action: u.failure_action.as_deref().map(enum_value).transpose()?,
        monitor: u.monitor.as_deref().map(nanos).transpose()?,
        max_failure_ratio: u.max_failure_ratio,
        order: u.order.as_deref().map(enum_value).transpose()?,
    })
}

fn rollback_config(u: &UpdateConfig) -> Result<ServiceSpecRollbackConfig, String> {
    Ok(ServiceSpecRollbackConfig {
        parallelism: Some(u.parallelism.unwrap_or(1)),
        delay: u.delay.as_deref().map(nanos).transpose()?,
        failure_action: u.failure_action.as_deref().map(enum_value).transpose()?,
        monitor: u.monitor.as_deref().map(nanos).transpose()?,
        max_failure_ratio: u.max_failure_ratio,
        order: u.order.as_deref().map(enum_value).transpose()?,
    })
}

fn mount(namespace: &str, m: &compose::Mount, file: &ComposeFile) -> Result<Mount, String> {
    match m.kind.as_str() {
        "tmpfs" => Ok(Mount {
            target: Some(m.target.clone()),
            typ: Some(MountType::TMPFS),
            tmpfs_options: m
                .tmpfs
                .as_ref()
                .map(|t| -> Result<_, String> {
                    Ok(MountTmpfsOptions {
                        size_bytes: bytes(t.size.as_ref())?,
                        mode: t.mode.map(i64::from),
                        ..Default::default()
                    })
                })
                .transpose()?,
            ..Default::default()
        }),
        "volume" => {
            let source = m.source.as_ref().map(|key| {
                let def = file.volumes.get(key).cloned().flatten().unwrap_or_default();
                match def.name {
                    Some(name) => name,
                    None if def.external == Some(true) => key.clone(),
                    None => format!("{namespace}_{key}"),
                }
            });
            Ok(Mount {
                target: Some(m.target.clone()),
                source,
                typ: Some(MountType::VOLUME),
                read_only: m.read_only,
                volume_options: Some(MountVolumeOptions {
                    no_copy: m.volume.as_ref().and_then(|v| v.nocopy),
                    labels: Some(stack_labels(namespace, &BTreeMap::new())),
                    ..Default::default()
                }),
                ..Default::default()
            })
        }
        "bind" => Ok(Mount {
            target: Some(m.target.clone()),
            source: m.source.clone(),
            typ: Some(MountType::BIND),
            read_only: m.read_only,
            ..Default::default()
        }),
        other => Err(format!("volume type `{other}` is not supported; use volume, tmpfs or bind")),
    }
}

fn health(h: &compose::Healthcheck) -> Result<HealthConfig, String> {
    if h.disable == Some(true) {
        return Ok(HealthConfig { test: Some(vec!["NONE".into()]), ..Default::default() });
    }
    let test = h.test.as_ref().map(|t| match t {
        compose::Words::List(words) => words.clone(),
        compose::Words::Line(line) => vec!["CMD-SHELL".into(), line.clone()],
    });
    Ok(HealthConfig {
        test,
        interval: h.interval.as_deref().map(nanos).transpose()?,
        timeout: h.timeout.as_deref().map(nanos).transpose()?,
        retries: h.retries,
        start_period: h.start_period.as_deref().map(nanos).transpose()?,
        ..Default::default()
    })
}

/// Compose durations (`5s`, `1m30s`) as Docker's nanoseconds.
fn nanos(text: &str) -> Result<i64, String> {
    let d: Duration = duration::parse(text, BareUnit::Rejected)?;
    i64::try_from(d.as_nanos()).map_err(|_| format!("duration `{text}` is too large"))
}

fn cpus(value: Option<&serde_yaml_ng::Value>) -> Result<Option<i64>, String> {
    value
        .map(|v| {
            let text = compose::scalar(v);
            parse_cpus(&text).ok_or_else(|| format!("`{text}` is not a CPU count"))
        })
        .transpose()
}

fn bytes(value: Option<&serde_yaml_ng::Value>) -> Result<Option<i64>, String> {
    value
        .map(|v| {
            let text = compose::scalar(v);
            parse_bytes(&text).ok_or_else(|| format!("`{text}` is not a size"))
        })
        .transpose()
}

/// Docker's enums by their wire names (`on-failure`, `stop-first`).
fn enum_value<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|_| format!("`{text}` is not allowed here"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
version: "3.8"
services:
  agent:
    image: geoctl:latest
    command: ["geoctl", "agent"]
    environment:
      A: "1"
      B_FILE: /run/secrets/b
    secrets: [b]
    networks: [net]
    volumes:
      - type: volume
        source: spool
        target: /spool
      - type: tmpfs
        target: /tmp
        tmpfs: {size: 1024}
    deploy:
      replicas: 2
      restart_policy: {condition: on-failure, delay: 5s}
      update_config: {order: stop-first, failure_action: rollback}
      resources:
        limits: {cpus: "0.5", memory: 64M}
networks:
  net:
    driver: overlay
    attachable: true
    driver_opts: {encrypted: ""}
volumes:
  spool:
    name: "s_spool-{{.Task.Slot}}"
secrets:
  b:
    external: true
    name: s_b-123
"#;

    #[test]
    fn converts_as_docker_stack_deploy_names_things() {
        let file = ComposeFile::parse(FILE).unwrap();
        let ids = BTreeMap::from([("s_b-123".to_string(), "id1".to_string())]);
        let images = BTreeMap::from([("geoctl:latest".to_string(), "sha256:abc".to_string())]);
        let objects = convert("s", &file, &ids, &images).unwrap();
        assert_eq!(objects.networks.len(), 1);
        assert_eq!(objects.networks[0].name, "s_net");
        assert_eq!(objects.networks[0].labels.as_ref().unwrap()[NAMESPACE_LABEL], "s");
        let spec = &objects.services[0];
        assert_eq!(spec.name.as_deref(), Some("s_agent"));
        assert_eq!(spec.labels.as_ref().unwrap()[IMAGE_LABEL], "geoctl:latest");
        let task = spec.task_template.as_ref().unwrap();
        let c = task.container_spec.as_ref().unwrap();
        assert_eq!(c.image.as_deref(), Some("sha256:abc"));
        assert_eq!(c.args.as_ref().unwrap(), &["geoctl", "agent"]);
        assert_eq!(c.env.as_ref().unwrap(), &["A=1", "B_FILE=/run/secrets/b"]);
        let mounts = c.mounts.as_ref().unwrap();
        assert_eq!(mounts[0].source.as_deref(), Some("s_spool-{{.Task.Slot}}"));
        assert_eq!(mounts[1].tmpfs_options.as_ref().unwrap().size_bytes, Some(1024));
        assert_eq!(c.secrets.as_ref().unwrap()[0].secret_id.as_deref(), Some("id1"));
        assert_eq!(task.resources.as_ref().unwrap().limits.as_ref().unwrap().memory_bytes, Some(64 << 20));
        assert_eq!(task.restart_policy.as_ref().unwrap().delay, Some(5_000_000_000));
        assert_eq!(task.networks.as_ref().unwrap()[0].target.as_deref(), Some("s_net"));
    }

    #[test]
    fn a_missing_secret_is_named() {
        let file = ComposeFile::parse(FILE).unwrap();
        let err = convert("s", &file, &BTreeMap::new(), &BTreeMap::new()).unwrap_err();
        assert!(err.contains("s_b-123"), "{err}");
    }

    #[test]
    fn a_published_port_goes_through_the_routing_mesh_unless_told() {
        let yaml = "services:\n  a:\n    image: x\n    ports:\n      - {target: 8080, published: 9080}\n  \
                    b:\n    image: x\n    ports:\n      - {target: 53, protocol: udp, mode: host}\n";
        let objects = convert("s", &ComposeFile::parse(yaml).unwrap(), &BTreeMap::new(), &BTreeMap::new()).unwrap();
        let ports = |name: &str| {
            let spec = objects.services.iter().find(|s| s.name.as_deref() == Some(name)).unwrap();
            spec.endpoint_spec.as_ref().unwrap().ports.clone().unwrap()
        };
        let a = &ports("s_a")[0];
        assert_eq!((a.target_port, a.published_port), (Some(8080), Some(9080)));
        assert_eq!(serde_json::to_value(a.protocol).unwrap(), "tcp");
        assert_eq!(serde_json::to_value(a.publish_mode).unwrap(), "ingress");
        let b = &ports("s_b")[0];
        assert_eq!((b.published_port, serde_json::to_value(b.publish_mode).unwrap()), (None, "host".into()));
        let bad = "services:\n  a:\n    image: x\n    ports:\n      - {target: 1, mode: sideways}\n";
        let err = convert("s", &ComposeFile::parse(bad).unwrap(), &BTreeMap::new(), &BTreeMap::new()).unwrap_err();
        assert!(err.contains("sideways"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line() {
        let err = ComposeFile::parse("services:\n  a:\n    image: x\n    privileged: true\n").unwrap_err();
        assert!(err.contains("privileged") && err.contains("line"), "{err}");
    }
}
