//! The part of the Compose file format (3.x, as `docker stack deploy` reads it)
//! that geoctl deploys. Unknown keys are errors, not silently dropped: a key
//! geoctl would ignore is a key the operator believes took effect.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_yaml_ng::Value;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeFile {
    pub version: Option<String>,
    pub services: BTreeMap<String, Service>,
    #[serde(default)]
    pub networks: BTreeMap<String, Option<Network>>,
    #[serde(default)]
    pub volumes: BTreeMap<String, Option<Volume>>,
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretDef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub image: String,
    pub command: Option<Words>,
    pub entrypoint: Option<Words>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub working_dir: Option<String>,
    pub read_only: Option<bool>,
    pub init: Option<bool>,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    #[serde(default)]
    pub sysctls: BTreeMap<String, Value>,
    #[serde(default)]
    pub environment: Environment,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub secrets: Vec<ServiceSecret>,
    pub networks: Option<Vec<String>>,
    #[serde(default)]
    pub ports: Vec<Port>,
    #[serde(default)]
    pub volumes: Vec<Mount>,
    pub healthcheck: Option<Healthcheck>,
    pub stop_grace_period: Option<String>,
    pub logging: Option<Logging>,
    #[serde(default)]
    pub deploy: Deploy,
}

/// A published port, in the long form only (`target`, `published`, `protocol`, `mode`): the
/// short `"8080:80"` leaves protocol and mode to defaults a reader has to know.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    pub target: u16,
    pub published: Option<u16>,
    pub protocol: Option<String>,
    pub mode: Option<String>,
}

/// `command: ["a", "b"]` or `command: a b`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Words {
    List(Vec<String>),
    Line(String),
}

impl Words {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Words::List(words) => words.clone(),
            Words::Line(line) => line.split_whitespace().map(str::to_string).collect(),
        }
    }
}

/// `environment:` as a map or as a list of `NAME=value`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Environment {
    Map(BTreeMap<String, Option<Value>>),
    List(Vec<String>),
}

impl Default for Environment {
    fn default() -> Self {
        Environment::List(Vec::new())
    }
}

impl Environment {
    /// `NAME=value`, sorted, as `docker stack deploy` sends them.
    pub fn to_vec(&self) -> Vec<String> {
        let mut out: Vec<String> = match self {
            Environment::List(items) => items.clone(),
            Environment::Map(map) => map
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}={}", scalar(v)),
                    None => k.clone(),
                })
                .collect(),
        };
        out.sort();
        out
    }
}

/// A YAML scalar as the text Docker wants (`3` → "3", `true` → "true").
pub fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => serde_yaml_ng::to_string(other).unwrap_or_default().trim().to_string(),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ServiceSecret {
    Short(String),
    Long(SecretRef),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub source: String,
    pub target: Option<String>,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub mode: Option<u32>,
}

impl ServiceSecret {
    pub fn reference(&self) -> SecretRef {
        match self {
            ServiceSecret::Short(source) => {
                SecretRef { source: source.clone(), target: None, uid: None, gid: None, mode: None }
            }
            ServiceSecret::Long(r) => r.clone(),
        }
    }
}

/// Long-syntax `volumes:` entries (`type: volume|tmpfs|bind`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    #[serde(rename = "type")]
    pub kind: String,
    pub source: Option<String>,
    pub target: String,
    pub read_only: Option<bool>,
    pub tmpfs: Option<TmpfsOptions>,
    pub volume: Option<VolumeOptions>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TmpfsOptions {
    pub size: Option<Value>,
    pub mode: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeOptions {
    pub nocopy: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    pub test: Option<Words>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub retries: Option<i64>,
    pub start_period: Option<String>,
    pub disable: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    pub driver: Option<String>,
    #[serde(default)]
    pub options: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    pub mode: Option<String>,
    pub replicas: Option<u64>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub placement: Placement,
    pub restart_policy: Option<RestartPolicy>,
    pub update_config: Option<UpdateConfig>,
    pub rollback_config: Option<UpdateConfig>,
    #[serde(default)]
    pub resources: Resources,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    #[serde(default)]
    pub constraints: Vec<String>,
    #[serde(default)]
    pub preferences: Vec<Preference>,
    pub max_replicas_per_node: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preference {
    pub spread: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartPolicy {
    pub condition: Option<String>,
    pub delay: Option<String>,
    pub max_attempts: Option<i64>,
    pub window: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    pub parallelism: Option<i64>,
    pub delay: Option<String>,
    pub failure_action: Option<String>,
    pub monitor: Option<String>,
    pub max_failure_ratio: Option<f64>,
    pub order: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub limits: Option<ResourceValues>,
    pub reservations: Option<ResourceValues>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceValues {
    pub cpus: Option<Value>,
    pub memory: Option<Value>,
    pub pids: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub driver: Option<String>,
    pub attachable: Option<bool>,
    pub external: Option<bool>,
    pub name: Option<String>,
    #[serde(default)]
    pub driver_opts: BTreeMap<String, Value>,
    pub ipam: Option<Ipam>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ipam {
    pub driver: Option<String>,
    #[serde(default)]
    pub config: Vec<IpamConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpamConfig {
    pub subnet: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    pub name: Option<String>,
    pub external: Option<bool>,
    pub driver: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretDef {
    pub external: Option<bool>,
    pub name: Option<String>,
    pub file: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl ComposeFile {
    /// Parses a stack file; the message carries the line and column.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: ComposeFile = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        if let Some(version) = &file.version {
            if !version.starts_with('3') {
                return Err(format!("version `{version}` is not a Compose 3.x stack file"));
            }
        }
        for (name, service) in &file.services {
            for secret in &service.secrets {
                let source = secret.reference().source;
                if !file.secrets.contains_key(&source) {
                    return Err(format!("service `{name}` uses secret `{source}`, which `secrets:` does not define"));
                }
            }
            for network in service.networks.iter().flatten() {
                if !file.networks.contains_key(network) {
                    return Err(format!(
                        "service `{name}` uses network `{network}`, which `networks:` does not define"
                    ));
                }
            }
            for mount in &service.volumes {
                if mount.kind == "volume" {
                    if let Some(source) = &mount.source {
                        if !file.volumes.contains_key(source) {
                            return Err(format!(
                                "service `{name}` mounts volume `{source}`, which `volumes:` does not define"
                            ));
                        }
                    }
                }
            }
        }
        Ok(file)
    }
}
