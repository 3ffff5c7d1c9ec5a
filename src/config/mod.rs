//! geoctl's configuration: one resolver for every layer.
//!
//! Precedence, highest first: command-line flag > environment variable >
//! config file > built-in default. Every secret can also come from
//! `<NAME>_FILE` (environment) or `<key>_file` (config file): a file holding
//! the value, as Docker and Kubernetes mount secrets. Each resolved value
//! remembers where it came from, so `geoctl config show` can say.

mod agent;
mod dashboard;
mod file;
mod secret;

pub use agent::{Agent, AgentFlags, LogFormat};
pub use dashboard::{Dashboard, DashboardFlags};
pub use file::{AgentSection, AlertingSection, DashboardSection, FileConfig, NotifySection, StackSection};
pub use secret::{mask, scrub, Secret};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::duration::{self, BareUnit};

/// The file name looked for in the working directory and the user's config directory.
pub const FILE_NAME: &str = "geoctl.yaml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} not found; pass an existing file to --config or GEOCTL_CONFIG")]
    FileMissing { path: PathBuf },
    #[error("cannot read config file {path}: {source}")]
    FileUnreadable { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is invalid: {message}")]
    FileInvalid { path: PathBuf, message: String },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("both {a} and {b} are set; they are exclusive, keep one")]
    Exclusive { a: String, b: String },
    #[error("{origin} names file {path}, which cannot be read: {source}")]
    SecretFileUnreadable { origin: String, path: PathBuf, source: std::io::Error },
    #[error("{origin} names file {path}, which is empty")]
    SecretFileEmpty { origin: String, path: PathBuf },
}

/// Every configuration error is the operator's to fix.
impl crate::error::Coded for ConfigError {
    fn exit(&self) -> crate::error::Exit {
        crate::error::Exit::Input
    }
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag(&'static str),
    Env(String),
    File(PathBuf),
    Default,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag(flag) => write!(f, "flag {flag}"),
            Source::Env(name) => write!(f, "env {name}"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// A resolved value and its origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Source,
}

/// Values given on the command line; they beat every other layer.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub config: Option<PathBuf>,
    pub database_url: Option<String>,
    pub default_region: Option<String>,
    /// `geoctl agent`'s own flags.
    pub agent: AgentFlags,
    /// `geoctl dashboard`'s own flags.
    pub dashboard: DashboardFlags,
}

/// The process environment, captured once so resolution is a pure function.
pub type Env = BTreeMap<String, String>;

/// Connection pool and timeout tuning, named after the seed's variables.
#[derive(Debug, Clone)]
pub struct Tuning {
    pub db_connection_limit: Sourced<u32>,
    pub db_pool_timeout: Sourced<Duration>,
    pub db_idle_timeout: Sourced<Duration>,
    pub redis_connection_timeout: Sourced<Duration>,
    pub redis_command_timeout: Sourced<Duration>,
}

/// One region's endpoints as this machine reaches them.
#[derive(Debug, Clone, Default)]
pub struct RegionEndpoints {
    pub redis_url: Option<Sourced<Secret>>,
    pub redis_password: Option<Sourced<Secret>>,
    /// The region's Docker Engine (`DOCKER_HOST_<REGION>`, `regions.<code>.docker_host`).
    pub docker_host: Option<Sourced<String>>,
    pub docker_cert_path: Option<Sourced<String>>,
    /// The region's stack overrides, as written in the file.
    pub stack: StackSection,
    /// The address the region's public entry point answers on (GeoDNS records, health checks).
    pub public_address: Option<Sourced<String>>,
    /// The AWS region Route 53 latency routing associates with the region.
    pub aws_region: Option<Sourced<String>>,
    /// The app's health endpoint in the region (`geoctl health`).
    pub health_url: Option<Sourced<String>>,
}

/// S3 (backups) and Route 53 (GeoDNS) settings.
#[derive(Debug, Clone, Default)]
pub struct Aws {
    pub region: Option<Sourced<String>>,
    pub s3_endpoint: Option<Sourced<String>>,
    pub route53_endpoint: Option<Sourced<String>>,
    pub s3_bucket: Option<Sourced<String>>,
    pub access_key_id: Option<Sourced<Secret>>,
    pub secret_access_key: Option<Sourced<Secret>>,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config_file: Option<PathBuf>,
    pub database_url: Option<Sourced<Secret>>,
    pub default_region: Option<Sourced<String>>,
    pub enable_geo_distribution: Sourced<bool>,
    pub tuning: Tuning,
    pub regions: BTreeMap<String, RegionEndpoints>,
    pub aws: Aws,
    /// The Docker Engine of regions that name none (`DOCKER_HOST`, `docker_host`).
    pub docker_host: Option<Sourced<String>>,
    /// Client certificates for `tcp://` engines (`DOCKER_CERT_PATH`, `docker_cert_path`).
    pub docker_cert_path: Option<Sourced<String>>,
    /// Stack values shared by every region (`stack:` in the file).
    pub stack: StackSection,
    /// Where backups go when no S3 bucket is configured.
    pub backup_dir: Sourced<PathBuf>,
    /// MaxMind-format databases for target facts (`GEOIP_CITY_DB`, `GEOIP_ASN_DB`); not secrets.
    pub geoip_city_db: Option<Sourced<PathBuf>>,
    pub geoip_asn_db: Option<Sourced<PathBuf>>,
    /// The alerter's rules and channels (`alerting:`, `ALERT_*`).
    pub alerting: Alerting,
    /// Template overrides for notifications (`NOTIFY_TEMPLATES`, `notify.templates`).
    pub notify_templates: Option<Sourced<PathBuf>>,
    /// The dashboard link notifications carry (`DASHBOARD_URL`, `notify.dashboard_url`).
    pub dashboard_url: Option<Sourced<String>>,
    /// The agent's settings (`agent:`, `WORKER_REGION`, `AGENT_*`, …).
    pub agent: Agent,
    /// `geoctl dashboard`'s settings (`dashboard:`, `DASHBOARD_*`).
    pub dashboard: Dashboard,
}

/// `alerting.*`, each with its origin.
#[derive(Debug, Clone)]
pub struct Alerting {
    pub confirm: Sourced<u32>,
    pub recover: Sourced<u32>,
    pub region_impaired_ratio: Sourced<f64>,
    pub region_impaired_min: Sourced<u32>,
    pub flap_changes: Sourced<u32>,
    pub flap_window: Sourced<Duration>,
    pub interval: Sourced<Duration>,
    pub default_channels: Sourced<Vec<String>>,
    pub region_channels: Sourced<Vec<String>>,
}

/// The alerting settings from the configuration (`alerting.*`), as the alerter uses them
/// (`alert::Settings`).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSettings {
    /// Consecutive failed runs before a region counts as failing for a monitor.
    pub confirm: u32,
    /// Consecutive passing runs before it counts as passing again.
    pub recover: u32,
    /// Share of a region's monitors that must fail there (and pass elsewhere) to impair it.
    pub region_impaired_ratio: f64,
    /// Fewest monitors a region must run before it can be judged impaired.
    pub region_impaired_min: usize,
    /// More state changes than this within `flap_window` is flapping.
    pub flap_changes: usize,
    pub flap_window: Duration,
    /// Channels for monitors that name none.
    pub default_channels: Vec<String>,
    /// Channels for region incidents.
    pub region_channels: Vec<String>,
    /// How often the leader evaluates.
    pub interval: Duration,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            confirm: 2,
            recover: 2,
            region_impaired_ratio: 0.5,
            region_impaired_min: 10,
            flap_changes: 5,
            flap_window: Duration::from_secs(30 * 60),
            default_channels: Vec::new(),
            region_channels: Vec::new(),
            interval: Duration::from_secs(2),
        }
    }
}

impl Alerting {
    /// The values, without their origins, as the alerter uses them.
    pub fn settings(&self) -> AlertSettings {
        AlertSettings {
            confirm: self.confirm.value,
            recover: self.recover.value,
            region_impaired_ratio: self.region_impaired_ratio.value,
            region_impaired_min: self.region_impaired_min.value as usize,
            flap_changes: self.flap_changes.value as usize,
            flap_window: self.flap_window.value,
            default_channels: self.default_channels.value.clone(),
            region_channels: self.region_channels.value.clone(),
            interval: self.interval.value,
        }
    }

    fn resolve(layers: &Layers, file: Option<&AlertingSection>) -> Result<Self, ConfigError> {
        let file = file.cloned().unwrap_or_default();
        let defaults = AlertSettings::default();
        let count = |env: &str, value: Option<u32>, default: u32| {
            layers.required(env, value.map(|n| n.to_string()), &default.to_string(), parse_streak)
        };
        let list = |env: &str, value: Option<Vec<String>>| {
            layers.required(env, value.map(|v| v.join(",")), "", |s| Ok(parse_list(s)))
        };
        Ok(Alerting {
            confirm: count("ALERT_CONFIRM", file.confirm, defaults.confirm)?,
            recover: count("ALERT_RECOVER", file.recover, defaults.recover)?,
            region_impaired_ratio: layers.required(
                "ALERT_REGION_IMPAIRED_RATIO",
                file.region_impaired_ratio.map(|r| r.to_string()),
                &defaults.region_impaired_ratio.to_string(),
                parse_ratio,
            )?,
            region_impaired_min: count(
                "ALERT_REGION_IMPAIRED_MIN",
                file.region_impaired_min,
                defaults.region_impaired_min as u32,
            )?,
            flap_changes: count("ALERT_FLAP_CHANGES", file.flap_changes, defaults.flap_changes as u32)?,
            flap_window: layers
                .required("ALERT_FLAP_WINDOW", file.flap_window, "30m", |s| parse_duration(s, BareUnit::Seconds))?,
            interval: layers
                .required("ALERT_INTERVAL", file.interval, "2s", |s| parse_duration(s, BareUnit::Seconds))?,
            default_channels: list("ALERT_DEFAULT_CHANNELS", file.default_channels)?,
            region_channels: list("ALERT_REGION_CHANNELS", file.region_channels)?,
        })
    }
}

/// One line of `config show`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShownValue {
    pub key: String,
    pub value: Option<String>,
    pub source: String,
    pub secret: bool,
}

impl Settings {
    /// Resolves every layer. `cwd` and `user_config_dir` locate the implicit
    /// config files; they are parameters so tests need not touch the real ones.
    pub fn resolve(flags: &Flags, env: &Env, cwd: &Path, user_config_dir: Option<&Path>) -> Result<Self, ConfigError> {
        let config_file = locate_file(flags, env, cwd, user_config_dir)?;
        let file = match &config_file {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let layers = Layers { env, path: config_file.as_deref() };

        let database_url = layers.secret(
            flags.database_url.as_ref().map(|v| ("--database-url", v.as_str())),
            "DATABASE_URL",
            "database_url",
            file.database_url.as_deref(),
            file.database_url_file.as_deref(),
        )?;
        let default_region = layers.plain(
            flags.default_region.as_ref().map(|v| ("--default-region", v.as_str())),
            "DEFAULT_REGION",
            file.default_region.as_deref(),
            None,
            parse_region_code,
        )?;
        let enable_geo_distribution = layers
            .plain(
                None,
                "ENABLE_GEO_DISTRIBUTION",
                file.enable_geo_distribution.map(|b| b.to_string()).as_deref(),
                Some("true"),
                parse_bool,
            )?
            .expect("has a default");

        let db = file.database.clone().unwrap_or_default();
        let redis = file.redis.clone().unwrap_or_default();
        let tuning = Tuning {
            db_connection_limit: layers.required(
                "DB_CONNECTION_LIMIT",
                db.connection_limit.map(|n| n.to_string()),
                "10",
                parse_connection_limit,
            )?,
            db_pool_timeout: layers
                .required("DB_POOL_TIMEOUT", db.pool_timeout, "10s", |s| parse_duration(s, BareUnit::Seconds))?,
            db_idle_timeout: layers
                .required("DB_IDLE_TIMEOUT", db.idle_timeout, "5m", |s| parse_duration(s, BareUnit::Seconds))?,
            redis_connection_timeout: layers.required(
                "REDIS_CONNECTION_TIMEOUT",
                redis.connection_timeout,
                "10s",
                |s| parse_duration(s, BareUnit::Milliseconds),
            )?,
            redis_command_timeout: layers.required("REDIS_COMMAND_TIMEOUT", redis.command_timeout, "5s", |s| {
                parse_duration(s, BareUnit::Milliseconds)
            })?,
        };

        let mut regions = BTreeMap::new();
        for code in region_codes(env, &file) {
            let from_file = file.regions.get(&code).cloned().unwrap_or_default();
            let suffix = env_suffix(&code);
            let var = |prefix: &str| format!("{prefix}{suffix}");
            let endpoints = RegionEndpoints {
                redis_url: layers.secret(
                    None,
                    &var(region_env::REDIS_URL),
                    &format!("regions.{code}.redis_url"),
                    from_file.redis_url.as_deref(),
                    from_file.redis_url_file.as_deref(),
                )?,
                redis_password: layers.secret(
                    None,
                    &var(region_env::REDIS_PASSWORD),
                    &format!("regions.{code}.redis_password"),
                    from_file.redis_password.as_deref(),
                    from_file.redis_password_file.as_deref(),
                )?,
                docker_host: layers.plain(
                    None,
                    &var(region_env::DOCKER_HOST),
                    from_file.docker_host.as_deref(),
                    None,
                    parse_docker_host,
                )?,
                docker_cert_path: layers.plain(
                    None,
                    &var(region_env::DOCKER_CERT_PATH),
                    from_file.docker_cert_path.as_ref().and_then(|p| p.to_str()),
                    None,
                    ok_string,
                )?,
                stack: from_file.stack.clone(),
                public_address: layers.plain(
                    None,
                    &var(region_env::PUBLIC_ADDRESS),
                    from_file.public_address.as_deref(),
                    None,
                    parse_ip,
                )?,
                aws_region: layers.plain(
                    None,
                    &var(region_env::AWS_REGION),
                    from_file.aws_region.as_deref(),
                    None,
                    ok_string,
                )?,
                health_url: layers.plain(
                    None,
                    &var(region_env::HEALTH_URL),
                    from_file.health_url.as_deref(),
                    None,
                    parse_http_url,
                )?,
            };
            regions.insert(code, endpoints);
        }

        let aws_file = file.aws.clone().unwrap_or_default();
        let aws = Aws {
            region: layers.plain(None, "AWS_REGION", aws_file.region.as_deref(), None, ok_string)?,
            s3_endpoint: layers.plain(None, "S3_ENDPOINT", aws_file.s3_endpoint.as_deref(), None, parse_http_url)?,
            route53_endpoint: layers.plain(
                None,
                "ROUTE53_ENDPOINT",
                aws_file.route53_endpoint.as_deref(),
                None,
                parse_http_url,
            )?,
            s3_bucket: layers.plain(None, "S3_MONITOR_BUCKET_NAME", aws_file.s3_bucket.as_deref(), None, ok_string)?,
            access_key_id: layers.secret(
                None,
                "AWS_ACCESS_KEY_ID",
                "aws.access_key_id",
                aws_file.access_key_id.as_deref(),
                aws_file.access_key_id_file.as_deref(),
            )?,
            secret_access_key: layers.secret(
                None,
                "AWS_SECRET_ACCESS_KEY",
                "aws.secret_access_key",
                aws_file.secret_access_key.as_deref(),
                aws_file.secret_access_key_file.as_deref(),
            )?,
        };

        let docker_host = layers.plain(None, "DOCKER_HOST", file.docker_host.as_deref(), None, parse_docker_host)?;
        let docker_cert_path = layers.plain(
            None,
            "DOCKER_CERT_PATH",
            file.docker_cert_path.as_ref().and_then(|p| p.to_str()),
            None,
            ok_string,
        )?;
        let backup_dir =
            layers.required("BACKUP_DIR", file.backup.as_ref().and_then(|b| b.dir.clone()), "backups", |s| {
                ok_string(s).map(|s| cwd.join(s))
            })?;

        let geoip_path = |env_name: &str, from_file: &Option<PathBuf>| {
            layers.plain(None, env_name, from_file.as_ref().and_then(|p| p.to_str()), None, |s| {
                ok_string(s).map(|s| cwd.join(s))
            })
        };
        let geoip_city_db = geoip_path("GEOIP_CITY_DB", &file.geoip_city_db)?;
        let geoip_asn_db = geoip_path("GEOIP_ASN_DB", &file.geoip_asn_db)?;
        let alerting = Alerting::resolve(&layers, file.alerting.as_ref())?;
        let notify = file.notify.clone().unwrap_or_default();
        let notify_templates = geoip_path("NOTIFY_TEMPLATES", &notify.templates)?;
        let dashboard_url =
            layers.plain(None, "DASHBOARD_URL", notify.dashboard_url.as_deref(), None, parse_http_url)?;
        let agent = Agent::resolve(&layers, &flags.agent, file.agent.as_ref())?;
        let dashboard = Dashboard::resolve(&layers, &flags.dashboard, file.dashboard.as_ref(), cwd)?;

        Ok(Settings {
            config_file,
            database_url,
            default_region,
            enable_geo_distribution,
            tuning,
            regions,
            aws,
            docker_host,
            docker_cert_path,
            stack: file.stack.clone(),
            backup_dir,
            geoip_city_db,
            geoip_asn_db,
            alerting,
            notify_templates,
            dashboard_url,
            agent,
            dashboard,
        })
    }

    /// Every value as `config show` prints it: secrets masked.
    pub fn shown(&self) -> Vec<ShownValue> {
        fn plain<T: ToString>(key: &str, v: &Option<Sourced<T>>) -> ShownValue {
            ShownValue {
                key: key.into(),
                value: v.as_ref().map(|s| s.value.to_string()),
                source: v.as_ref().map_or("unset".into(), |s| s.source.to_string()),
                secret: false,
            }
        }
        fn secret(key: &str, v: &Option<Sourced<Secret>>) -> ShownValue {
            ShownValue {
                key: key.into(),
                value: v.as_ref().map(|s| s.value.masked()),
                source: v.as_ref().map_or("unset".into(), |s| s.source.to_string()),
                secret: true,
            }
        }
        fn duration(key: &str, v: &Sourced<Duration>) -> ShownValue {
            plain(key, &Some(Sourced { value: duration::format(v.value), source: v.source.clone() }))
        }
        let t = &self.tuning;
        let mut rows = vec![
            ShownValue {
                key: "config_file".into(),
                value: self.config_file.as_ref().map(|p| p.display().to_string()),
                source: if self.config_file.is_some() { "found".into() } else { "none found".into() },
                secret: false,
            },
            secret("database_url", &self.database_url),
            plain("default_region", &self.default_region),
            plain("enable_geo_distribution", &Some(self.enable_geo_distribution.clone())),
            plain("database.connection_limit", &Some(t.db_connection_limit.clone())),
            duration("database.pool_timeout", &t.db_pool_timeout),
            duration("database.idle_timeout", &t.db_idle_timeout),
            duration("redis.connection_timeout", &t.redis_connection_timeout),
            duration("redis.command_timeout", &t.redis_command_timeout),
        ];
        rows.push(plain("docker_host", &self.docker_host));
        rows.push(plain("docker_cert_path", &self.docker_cert_path));
        for (code, endpoints) in &self.regions {
            rows.push(secret(&format!("regions.{code}.redis_url"), &endpoints.redis_url));
            rows.push(secret(&format!("regions.{code}.redis_password"), &endpoints.redis_password));
            rows.push(plain(&format!("regions.{code}.docker_host"), &endpoints.docker_host));
            rows.push(plain(&format!("regions.{code}.docker_cert_path"), &endpoints.docker_cert_path));
            rows.push(plain(&format!("regions.{code}.public_address"), &endpoints.public_address));
            rows.push(plain(&format!("regions.{code}.aws_region"), &endpoints.aws_region));
            rows.push(plain(&format!("regions.{code}.health_url"), &endpoints.health_url));
        }
        rows.extend([
            plain("aws.region", &self.aws.region),
            plain("aws.s3_endpoint", &self.aws.s3_endpoint),
            plain("aws.route53_endpoint", &self.aws.route53_endpoint),
            plain("aws.s3_bucket", &self.aws.s3_bucket),
            secret("aws.access_key_id", &self.aws.access_key_id),
            secret("aws.secret_access_key", &self.aws.secret_access_key),
            plain(
                "backup.dir",
                &Some(Sourced {
                    value: self.backup_dir.value.display().to_string(),
                    source: self.backup_dir.source.clone(),
                }),
            ),
        ]);
        let path = |v: &Option<Sourced<PathBuf>>| {
            v.as_ref().map(|s| Sourced { value: s.value.display().to_string(), source: s.source.clone() })
        };
        rows.push(plain("geoip_city_db", &path(&self.geoip_city_db)));
        rows.push(plain("geoip_asn_db", &path(&self.geoip_asn_db)));
        let a = &self.alerting;
        let list = |v: &Sourced<Vec<String>>| Some(Sourced { value: v.value.join(","), source: v.source.clone() });
        rows.extend([
            plain("alerting.confirm", &Some(a.confirm.clone())),
            plain("alerting.recover", &Some(a.recover.clone())),
            plain("alerting.region_impaired_ratio", &Some(a.region_impaired_ratio.clone())),
            plain("alerting.region_impaired_min", &Some(a.region_impaired_min.clone())),
            plain("alerting.flap_changes", &Some(a.flap_changes.clone())),
            duration("alerting.flap_window", &a.flap_window),
            duration("alerting.interval", &a.interval),
            plain("alerting.default_channels", &list(&a.default_channels)),
            plain("alerting.region_channels", &list(&a.region_channels)),
        ]);
        rows.push(plain("notify.templates", &path(&self.notify_templates)));
        rows.push(plain("notify.dashboard_url", &self.dashboard_url));
        let g = &self.agent;
        let shown =
            |v: &Sourced<PathBuf>| Some(Sourced { value: v.value.display().to_string(), source: v.source.clone() });
        rows.extend([
            plain("agent.region", &g.region),
            plain("agent.concurrency", &Some(g.concurrency.clone())),
            duration("agent.lock_duration", &g.lock_duration),
            plain(
                "agent.stalled_interval",
                &g.stalled_interval
                    .as_ref()
                    .map(|v| Sourced { value: duration::format(v.value), source: v.source.clone() }),
            ),
            plain("agent.listen", &Some(g.listen.clone())),
            plain("agent.spool_dir", &shown(&g.spool_dir)),
            plain("agent.spool_max", &Some(g.spool_max.clone())),
            duration("agent.shutdown_timeout", &g.shutdown_timeout),
            duration("agent.resync_interval", &g.resync_interval),
            plain("agent.log_format", &Some(g.log_format.clone())),
            plain("agent.health_url", &Some(g.health_url.clone())),
        ]);
        let d = &self.dashboard;
        rows.extend([
            plain("dashboard.listen", &Some(d.listen.clone())),
            plain("dashboard.token_file", &path(&d.token_file)),
            plain("dashboard.basic_auth_file", &path(&d.basic_auth_file)),
        ]);
        rows
    }
}

/// `--config` > `GEOCTL_CONFIG` > `./geoctl.yaml` > `<user config dir>/geoctl/geoctl.yaml`.
/// A file named explicitly must exist; the implicit ones are optional.
fn locate_file(
    flags: &Flags,
    env: &Env,
    cwd: &Path,
    user_config_dir: Option<&Path>,
) -> Result<Option<PathBuf>, ConfigError> {
    let named = flags.config.clone().or_else(|| env.get("GEOCTL_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from));
    if let Some(path) = named {
        let path = if path.is_absolute() { path } else { cwd.join(path) };
        return if path.is_file() { Ok(Some(path)) } else { Err(ConfigError::FileMissing { path }) };
    }
    let implicit = [Some(cwd.join(FILE_NAME)), user_config_dir.map(|d| d.join("geoctl").join(FILE_NAME))];
    Ok(implicit.into_iter().flatten().find(|p| p.is_file()))
}

/// The environment and the file, consulted in that order.
struct Layers<'a> {
    env: &'a Env,
    path: Option<&'a Path>,
}

impl Layers<'_> {
    fn file_source(&self) -> Source {
        Source::File(self.path.map(Path::to_path_buf).unwrap_or_default())
    }

    fn file_origin(&self, key: &str) -> String {
        format!("{} key `{key}`", self.path.map(|p| p.display().to_string()).unwrap_or_default())
    }

    /// A non-secret value: flag, env, file, default.
    fn plain<T>(
        &self,
        flag: Option<(&'static str, &str)>,
        env_name: &str,
        from_file: Option<&str>,
        default: Option<&str>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<Sourced<T>>, ConfigError> {
        let candidate = if let Some((name, value)) = flag {
            Some((value.to_string(), Source::Flag(name), format!("flag {name}")))
        } else if let Some(value) = self.env.get(env_name) {
            Some((value.clone(), Source::Env(env_name.into()), format!("env {env_name}")))
        } else if let Some(value) = from_file {
            Some((value.to_string(), self.file_source(), self.file_origin(&env_name.to_lowercase())))
        } else {
            default.map(|value| (value.to_string(), Source::Default, "default".to_string()))
        };
        candidate
            .map(|(text, source, origin)| {
                parse(text.trim())
                    .map(|value| Sourced { value, source })
                    .map_err(|message| ConfigError::Invalid { origin, message })
            })
            .transpose()
    }

    /// A tuning value that always has one.
    fn required<T>(
        &self,
        env_name: &str,
        from_file: Option<String>,
        default: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Sourced<T>, ConfigError> {
        Ok(self.plain(None, env_name, from_file.as_deref(), Some(default), parse)?.expect("has a default"))
    }

    /// A secret: flag, `NAME`, `NAME_FILE`, file `key`, file `key_file`.
    fn secret(
        &self,
        flag: Option<(&'static str, &str)>,
        env_name: &str,
        file_key: &str,
        from_file: Option<&str>,
        from_file_path: Option<&Path>,
    ) -> Result<Option<Sourced<Secret>>, ConfigError> {
        if let Some((name, value)) = flag {
            return Ok(Some(Sourced { value: Secret::new(value), source: Source::Flag(name) }));
        }
        let env_file_name = format!("{env_name}_FILE");
        match (self.env.get(env_name), self.env.get(&env_file_name)) {
            (Some(_), Some(_)) => return Err(ConfigError::Exclusive { a: env_name.into(), b: env_file_name }),
            (Some(value), None) => {
                return Ok(Some(Sourced { value: Secret::new(value.clone()), source: Source::Env(env_name.into()) }))
            }
            (None, Some(path)) => {
                let value = read_secret_file(Path::new(path), &format!("env {env_file_name}"))?;
                return Ok(Some(Sourced { value, source: Source::Env(env_file_name) }));
            }
            (None, None) => {}
        }
        match (from_file, from_file_path) {
            (Some(_), Some(_)) => Err(ConfigError::Exclusive {
                a: self.file_origin(file_key),
                b: self.file_origin(&format!("{file_key}_file")),
            }),
            (Some(value), None) => Ok(Some(Sourced { value: Secret::new(value), source: self.file_source() })),
            (None, Some(path)) => {
                let value = read_secret_file(path, &self.file_origin(&format!("{file_key}_file")))?;
                Ok(Some(Sourced { value, source: self.file_source() }))
            }
            (None, None) => Ok(None),
        }
    }
}

/// Reads a mounted secret; one trailing newline (as `echo` writes) is dropped. Channels' secret
/// files (`notify::SecretRef`) are read with it too, at send time.
pub(crate) fn read_secret_file(path: &Path, origin: &str) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFileUnreadable {
        origin: origin.into(),
        path: path.into(),
        source,
    })?;
    let value = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
    if value.is_empty() {
        return Err(ConfigError::SecretFileEmpty { origin: origin.into(), path: path.into() });
    }
    Ok(Secret::new(value))
}

/// `us-east` ⇄ `US_EAST`, as in `REDIS_URL_US_EAST`.
pub fn env_suffix(code: &str) -> String {
    code.to_ascii_uppercase().replace('-', "_")
}

/// The per-region environment variables, each `<PREFIX><SUFFIX>` (`PUBLIC_ADDRESS_US_EAST`).
/// `region_codes` and `Settings::resolve` both read them from here, so every variable the
/// resolver reads for a region also makes that region known.
mod region_env {
    pub const REDIS_URL: &str = "REDIS_URL_";
    pub const REDIS_PASSWORD: &str = "REDIS_PASSWORD_";
    pub const DOCKER_HOST: &str = "DOCKER_HOST_";
    pub const DOCKER_CERT_PATH: &str = "DOCKER_CERT_PATH_";
    pub const PUBLIC_ADDRESS: &str = "PUBLIC_ADDRESS_";
    pub const AWS_REGION: &str = "AWS_REGION_";
    pub const HEALTH_URL: &str = "HEALTH_URL_";
    /// Secrets, which may also come from `<PREFIX><SUFFIX>_FILE`.
    pub const SECRETS: [&str; 2] = [REDIS_URL, REDIS_PASSWORD];
    pub const ALL: [&str; 7] =
        [REDIS_URL, REDIS_PASSWORD, DOCKER_HOST, DOCKER_CERT_PATH, PUBLIC_ADDRESS, AWS_REGION, HEALTH_URL];
}

/// Regions named in the file's `regions:` map or by any per-region variable
/// (`region_env`). A region registered in the database needs no extra step:
/// `env_suffix` is one-to-one on valid codes, so its variables are found here.
fn region_codes(env: &Env, file: &FileConfig) -> Vec<String> {
    let mut codes: Vec<String> = file.regions.keys().cloned().collect();
    for name in env.keys() {
        let Some((prefix, rest)) = region_env::ALL.iter().find_map(|p| name.strip_prefix(p).map(|rest| (*p, rest)))
        else {
            continue;
        };
        let rest = if region_env::SECRETS.contains(&prefix) {
            // REDIS_URL_FILE / REDIS_PASSWORD_FILE are the region-less `_FILE` forms, not a region `file`.
            if rest == "FILE" {
                ""
            } else {
                rest.strip_suffix("_FILE").unwrap_or(rest)
            }
        } else {
            rest
        };
        if !rest.is_empty() {
            codes.push(rest.to_ascii_lowercase().replace('_', "-"));
        }
    }
    codes.sort();
    codes.dedup();
    codes
}

fn ok_string(text: &str) -> Result<String, String> {
    if text.is_empty() {
        Err("is empty".into())
    } else {
        Ok(text.to_string())
    }
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("`{text}` is not a boolean; use true or false")),
    }
}

fn parse_connection_limit(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err(format!("`{text}` is not a connection limit; use a number from 1 to 1000")),
    }
}

fn parse_duration(text: &str, bare: BareUnit) -> Result<Duration, String> {
    let value = duration::parse(text, bare)?;
    if value.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(value)
}

/// A streak length or a count: a whole number of at least 1.
fn parse_streak(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{text}` is not a count; use a whole number of at least 1")),
    }
}

fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if r > 0.0 && r <= 1.0 => Ok(r),
        _ => Err(format!("`{text}` is not a ratio; use a number above 0 and at most 1, such as 0.5")),
    }
}

/// `a, b,c` → `[a, b, c]`; empty items are dropped.
fn parse_list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

fn parse_region_code(text: &str) -> Result<String, String> {
    crate::text::region_code(text).map(|_| text.to_string()).map_err(|e| e.to_string())
}

/// `unix:///path`, `tcp://host:port`, `http(s)://host:port`: what Docker clients accept.
pub fn parse_docker_host(text: &str) -> Result<String, String> {
    let known = ["unix://", "tcp://", "http://", "https://"];
    if known.iter().any(|scheme| text.starts_with(scheme) && text.len() > scheme.len()) {
        Ok(text.to_string())
    } else {
        Err(format!("`{text}` is not a Docker endpoint; use unix:///var/run/docker.sock or tcp://HOST:2376"))
    }
}

fn parse_ip(text: &str) -> Result<String, String> {
    text.parse::<std::net::IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| format!("`{text}` is not an IP address; use the region's public IPv4 or IPv6 address"))
}

/// An http(s) URL as the probe reads one, its scheme spelled out (the probe would guess `https://`).
fn parse_http_url(text: &str) -> Result<String, String> {
    match crate::probe::http::parse_url(text) {
        Ok(_) if text.contains("://") => Ok(text.into()),
        _ => Err(format!("`{text}` is not an http(s) URL")),
    }
}

#[cfg(test)]
mod tests;
