//! The config file (`geoctl.yaml`). `examples/geoctl.yaml` documents every key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub database_url: Option<String>,
    pub database_url_file: Option<PathBuf>,
    pub default_region: Option<String>,
    pub enable_geo_distribution: Option<bool>,
    pub database: Option<DatabaseSection>,
    pub redis: Option<RedisSection>,
    #[serde(default)]
    pub regions: BTreeMap<String, RegionSection>,
    pub aws: Option<AwsSection>,
    pub docker_host: Option<String>,
    pub docker_cert_path: Option<PathBuf>,
    /// Stack values every region starts from; `regions.<code>.stack` overrides them key by key.
    #[serde(default)]
    pub stack: StackSection,
    pub backup: Option<BackupSection>,
    /// MaxMind-format city database (`.mmdb`): the target's country, city and coordinates.
    pub geoip_city_db: Option<PathBuf>,
    /// MaxMind-format ASN database (`.mmdb`): the target's ASN and organisation.
    pub geoip_asn_db: Option<PathBuf>,
    pub alerting: Option<AlertingSection>,
    pub notify: Option<NotifySection>,
    /// `geoctl agent`'s settings.
    pub agent: Option<AgentSection>,
    /// `geoctl dashboard`'s settings.
    pub dashboard: Option<DashboardSection>,
}

/// `dashboard:`: `geoctl dashboard`'s settings, written as its flags take them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardSection {
    pub listen: Option<String>,
    /// A file holding the bearer token (not the token itself: it never sits in this file).
    pub token_file: Option<PathBuf>,
    /// A file holding `user:password`.
    pub basic_auth_file: Option<PathBuf>,
}

/// `agent:`: `geoctl agent`'s settings, written as its flags take them (`30s`, `:3001`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    pub region: Option<String>,
    pub concurrency: Option<usize>,
    #[serde(default, deserialize_with = "text")]
    pub lock_duration: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub stalled_interval: Option<String>,
    pub listen: Option<String>,
    pub spool_dir: Option<PathBuf>,
    pub spool_max: Option<usize>,
    #[serde(default, deserialize_with = "text")]
    pub shutdown_timeout: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub resync_interval: Option<String>,
    pub log_format: Option<String>,
    pub health_url: Option<String>,
    pub browser: Option<bool>,
    pub browser_concurrency: Option<usize>,
}

/// Notification text and links (`notify:`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySection {
    /// A directory whose `title.txt`, `text.txt`, `email.html` replace the built-in templates.
    pub templates: Option<PathBuf>,
    /// The dashboard link notifications carry.
    pub dashboard_url: Option<String>,
}

/// `alerting:`: the alerter's rules and where incidents go.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingSection {
    pub confirm: Option<u32>,
    pub recover: Option<u32>,
    pub region_impaired_ratio: Option<f64>,
    pub region_impaired_min: Option<u32>,
    pub flap_changes: Option<u32>,
    #[serde(default, deserialize_with = "text")]
    pub flap_window: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub interval: Option<String>,
    pub default_channels: Option<Vec<String>>,
    pub region_channels: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSection {
    pub dir: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    pub connection_limit: Option<u32>,
    #[serde(default, deserialize_with = "text")]
    pub pool_timeout: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub idle_timeout: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSection {
    #[serde(default, deserialize_with = "text")]
    pub connection_timeout: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub command_timeout: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSection {
    pub redis_url: Option<String>,
    pub redis_url_file: Option<PathBuf>,
    pub redis_password: Option<String>,
    pub redis_password_file: Option<PathBuf>,
    pub public_address: Option<String>,
    pub aws_region: Option<String>,
    pub health_url: Option<String>,
    pub docker_host: Option<String>,
    pub docker_cert_path: Option<PathBuf>,
    #[serde(default)]
    pub stack: StackSection,
}

/// What a region's stack may change. Every key is optional; the stack module
/// merges region > top-level `stack:` > built-in default.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackSection {
    pub name: Option<String>,
    pub image: Option<String>,
    pub replicas: Option<u32>,
    pub concurrency: Option<u32>,
    #[serde(default, deserialize_with = "text")]
    pub cpus_limit: Option<String>,
    pub memory_limit: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub cpus_reservation: Option<String>,
    pub memory_reservation: Option<String>,
    pub placement_label: Option<String>,
    pub network_subnet: Option<String>,
    pub app_image: Option<String>,
    pub app_replicas: Option<u32>,
    /// Run a `geoctl alerter` in the stack (one leads across regions; the others stand by).
    pub alerter: Option<bool>,
    /// Run `geoctl dashboard` in the stack (it needs `dashboard.token_file` or
    /// `dashboard.basic_auth_file`: it listens beyond loopback).
    pub dashboard: Option<bool>,
    /// The port the dashboard service is published on.
    pub dashboard_port: Option<u16>,
    /// Route the dashboard through the Swarm's Traefik instead of publishing a port: the host
    /// name its router matches (`Host(...)`).
    pub dashboard_host: Option<String>,
    /// The external overlay network the dashboard shares with Traefik [default: traefik-public].
    pub traefik_network: Option<String>,
    /// Traefik's entry point for the dashboard's router [default: websecure].
    pub traefik_entrypoint: Option<String>,
    /// Traefik's certificate resolver for the router [default: letsencrypt]; empty: none (TLS
    /// from Traefik's default certificate or its own configuration).
    pub traefik_certresolver: Option<String>,
    pub templates: Option<PathBuf>,
    /// Replicas of the `browser` service (agents with Chromium on the region's browser queue); 0: none.
    pub browser_replicas: Option<u32>,
    pub browser_image: Option<String>,
    /// Journeys at once per browser agent; unset: from its memory limit.
    pub browser_concurrency: Option<u32>,
    #[serde(default, deserialize_with = "text")]
    pub browser_cpus_limit: Option<String>,
    pub browser_memory_limit: Option<String>,
    /// Size of the browser service's tmpfs `/dev/shm` (Chromium's shared memory).
    pub browser_shm_size: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSection {
    pub region: Option<String>,
    pub s3_endpoint: Option<String>,
    pub route53_endpoint: Option<String>,
    pub s3_bucket: Option<String>,
    pub access_key_id: Option<String>,
    pub access_key_id_file: Option<PathBuf>,
    pub secret_access_key: Option<String>,
    pub secret_access_key_file: Option<PathBuf>,
}

/// Durations may be written as `10s` or as a bare number; keep the text and
/// let the resolver apply the key's unit.
fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Integer(u64),
        Float(f64),
        Text(String),
    }
    Ok(Option::<Scalar>::deserialize(d)?.map(|t| match t {
        Scalar::Integer(n) => n.to_string(),
        Scalar::Float(n) => n.to_string(),
        Scalar::Text(s) => s,
    }))
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::FileUnreadable { path: path.into(), source })?;
        Self::parse(&text).map_err(|message| ConfigError::FileInvalid { path: path.into(), message })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml_ng::from_str(text).map_err(|e| e.to_string())
    }
}
