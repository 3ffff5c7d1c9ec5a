//! One region's stack values: region override > top-level `stack:` > built-in default.

use std::path::PathBuf;

use serde::Serialize;

use super::StackError;
use crate::config::{Settings, StackSection};

/// The image `geoctl image build` tags and stacks deploy unless configured otherwise.
pub const DEFAULT_IMAGE: &str = "geoctl:latest";
/// The image `geoctl image build --with-browser` tags and browser services deploy unless configured otherwise.
pub const DEFAULT_BROWSER_IMAGE: &str = "geoctl:browser";

/// A browser agent's limits by default: two journeys (see `agent::MEMORY_PER_JOURNEY`) and
/// the agent, one CPU, and a `/dev/shm` that holds two renderers' frames.
const DEFAULT_BROWSER_MEMORY: &str = "768M";
const DEFAULT_BROWSER_CPUS: &str = "1";
const DEFAULT_BROWSER_SHM: &str = "256M";

/// The dashboard service behind a Traefik that watches the Swarm (its swarm provider, as the
/// seed's `traefik:v3` runs): the service's labels name the router and the port, and the service
/// joins the external overlay network Traefik is on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Traefik {
    /// The host name of the router's rule.
    pub host: String,
    pub network: String,
    pub entrypoint: String,
    /// `None`: no `tls.certresolver` label.
    pub certresolver: Option<String>,
}

/// Everything the templates may use about a region's stack, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StackSettings {
    /// Stack name: services are `<name>_<service>`.
    pub name: String,
    pub image: String,
    pub replicas: u32,
    /// `MAX_CONCURRENT_EXECUTIONS` of each agent.
    pub concurrency: u32,
    pub cpus_limit: String,
    pub memory_limit: String,
    pub cpus_reservation: String,
    pub memory_reservation: String,
    /// Node label whose value must be the region code (`node.labels.<label> == <code>`).
    pub placement_label: String,
    pub network_subnet: Option<String>,
    pub app_image: Option<String>,
    pub app_replicas: u32,
    /// A `geoctl alerter` service next to the agents; off unless asked for.
    pub alerter: bool,
    /// A `geoctl dashboard` service, published on `dashboard_port`; off unless asked for.
    pub dashboard: bool,
    /// Where the dashboard is published through the routing mesh; not with `traefik`.
    pub dashboard_port: u16,
    /// The dashboard behind the Swarm's Traefik (labels, the shared network, no published port).
    pub traefik: Option<Traefik>,
    /// Replicas of the `browser` service; 0 (the default) renders none.
    pub browser_replicas: u32,
    pub browser_image: String,
    /// `--browser-concurrency` of each browser agent; `None`: the agent derives it from its limit.
    pub browser_concurrency: Option<u32>,
    pub browser_cpus_limit: String,
    pub browser_memory_limit: String,
    /// The tmpfs `/dev/shm` of each browser task, in bytes (compose's tmpfs size is a number).
    pub browser_shm_bytes: i64,
    #[serde(skip)]
    pub templates: Option<PathBuf>,
}

impl StackSettings {
    pub fn resolve(settings: &Settings, code: &str) -> Result<Self, StackError> {
        let empty = StackSection::default();
        let region = settings.regions.get(code).map_or(&empty, |r| &r.stack);
        let top = &settings.stack;
        macro_rules! pick {
            ($field:ident) => {
                region.$field.clone().or_else(|| top.$field.clone())
            };
        }
        let origin = |key: &str| format!("config key regions.{code}.stack.{key} (or stack.{key})");
        let stack = StackSettings {
            name: pick!(name).unwrap_or_else(|| format!("geoctl-{code}")),
            image: pick!(image).unwrap_or_else(|| DEFAULT_IMAGE.to_string()),
            replicas: pick!(replicas).unwrap_or(1),
            concurrency: pick!(concurrency).unwrap_or(5),
            cpus_limit: pick!(cpus_limit).unwrap_or_else(|| "0.5".into()),
            memory_limit: pick!(memory_limit).unwrap_or_else(|| "256M".into()),
            cpus_reservation: pick!(cpus_reservation).unwrap_or_else(|| "0.1".into()),
            memory_reservation: pick!(memory_reservation).unwrap_or_else(|| "64M".into()),
            placement_label: pick!(placement_label).unwrap_or_else(|| "region".into()),
            network_subnet: pick!(network_subnet),
            app_image: pick!(app_image),
            app_replicas: pick!(app_replicas).unwrap_or(1),
            alerter: pick!(alerter).unwrap_or(false),
            dashboard: pick!(dashboard).unwrap_or(false),
            dashboard_port: pick!(dashboard_port).unwrap_or(8080),
            traefik: pick!(dashboard_host).map(|host| Traefik {
                host,
                network: pick!(traefik_network).unwrap_or_else(|| "traefik-public".into()),
                entrypoint: pick!(traefik_entrypoint).unwrap_or_else(|| "websecure".into()),
                certresolver: Some(pick!(traefik_certresolver).unwrap_or_else(|| "letsencrypt".into()))
                    .filter(|r| !r.is_empty()),
            }),
            templates: pick!(templates),
            browser_replicas: pick!(browser_replicas).unwrap_or(0),
            browser_image: pick!(browser_image).unwrap_or_else(|| DEFAULT_BROWSER_IMAGE.to_string()),
            browser_concurrency: pick!(browser_concurrency),
            browser_cpus_limit: pick!(browser_cpus_limit).unwrap_or_else(|| DEFAULT_BROWSER_CPUS.into()),
            browser_memory_limit: pick!(browser_memory_limit).unwrap_or_else(|| DEFAULT_BROWSER_MEMORY.into()),
            browser_shm_bytes: 0,
        };
        let shm = pick!(browser_shm_size).unwrap_or_else(|| DEFAULT_BROWSER_SHM.into());
        let Some(browser_shm_bytes) = parse_bytes(&shm) else {
            return Err(StackError::Setting {
                key: origin("browser_shm_size"),
                message: format!("`{shm}` is not a memory size; use e.g. 256M"),
            });
        };
        let stack = StackSettings { browser_shm_bytes, ..stack };
        stack.validate(origin)
    }

    fn validate(self, origin: impl Fn(&str) -> String) -> Result<Self, StackError> {
        let bad = |key: &str, message: String| Err(StackError::Setting { key: origin(key), message });
        if !valid_name(&self.name) {
            return bad("name", format!("`{}` is not a stack name; use letters, digits, '-' and '_'", self.name));
        }
        if !(1..=1000).contains(&self.replicas) {
            return bad("replicas", format!("{} is out of range; use 1 to 1000", self.replicas));
        }
        if !(1..=1000).contains(&self.concurrency) {
            return bad("concurrency", format!("{} is out of range; use 1 to 1000", self.concurrency));
        }
        if self.dashboard_port == 0 {
            return bad("dashboard_port", "0 is not a port; use 1 to 65535".into());
        }
        if let Some(t) = &self.traefik {
            // Each value lands inside a label Traefik parses (`Host(`…`)`, a network name): a
            // backtick, space or comma there would change the rule, not just name a host.
            if crate::probe::check_hostname(&t.host, false).is_err() {
                return bad("dashboard_host", format!("`{}` is not a host name; use e.g. status.example.com", t.host));
            }
            if !valid_network(&t.network) {
                return bad("traefik_network", format!("`{}` is not a Docker network name", t.network));
            }
            let names = [
                ("traefik_entrypoint", Some(t.entrypoint.as_str())),
                ("traefik_certresolver", t.certresolver.as_deref()),
            ];
            for (key, value) in names {
                if let Some(v) = value.filter(|v| !valid_name(v)) {
                    return bad(key, format!("`{v}` is not a Traefik name; use letters, digits, '-' and '_'"));
                }
            }
        }
        if self.browser_replicas > 1000 {
            return bad("browser_replicas", format!("{} is out of range; use 0 to 1000", self.browser_replicas));
        }
        if self.browser_concurrency.is_some_and(|n| !(1..=100).contains(&n)) {
            return bad("browser_concurrency", "out of range; use 1 to 100, or leave it unset".into());
        }
        for (key, value) in [
            ("cpus_limit", &self.cpus_limit),
            ("cpus_reservation", &self.cpus_reservation),
            ("browser_cpus_limit", &self.browser_cpus_limit),
        ] {
            if parse_cpus(value).is_none() {
                return bad(key, format!("`{value}` is not a CPU count; use e.g. 0.5 or 2"));
            }
        }
        for (key, value) in [
            ("memory_limit", &self.memory_limit),
            ("memory_reservation", &self.memory_reservation),
            ("browser_memory_limit", &self.browser_memory_limit),
        ] {
            if parse_bytes(value).is_none() {
                return bad(key, format!("`{value}` is not a memory size; use e.g. 64M or 1G"));
            }
        }
        if parse_cpus(&self.cpus_reservation) > parse_cpus(&self.cpus_limit)
            || parse_bytes(&self.memory_reservation) > parse_bytes(&self.memory_limit)
        {
            return bad("cpus_reservation", "a reservation must not exceed its limit".into());
        }
        if !self.placement_label.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            || self.placement_label.is_empty()
        {
            return bad("placement_label", format!("`{}` is not a node label name", self.placement_label));
        }
        if let Some(subnet) = &self.network_subnet {
            if !is_cidr(subnet) {
                return bad("network_subnet", format!("`{subnet}` is not a subnet; use e.g. 10.20.1.0/24"));
            }
        }
        if self.image.trim().is_empty()
            || self.browser_image.trim().is_empty()
            || self.app_image.as_deref().is_some_and(|i| i.trim().is_empty())
        {
            return bad("image", "an image name must not be empty".into());
        }
        Ok(self)
    }
}

/// A Docker network name: a letter or digit, then letters, digits, '_', '.' and '-'.
fn valid_network(name: &str) -> bool {
    name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn is_cidr(text: &str) -> bool {
    text.split_once('/')
        .is_some_and(|(ip, bits)| ip.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= 128))
}

/// CPUs as Docker's NanoCPUs: "0.5" → 500_000_000.
pub fn parse_cpus(text: &str) -> Option<i64> {
    let value: f64 = text.trim().parse().ok()?;
    (value > 0.0 && value <= 1024.0).then(|| (value * 1e9).round() as i64)
}

/// Sizes as compose writes them: `64M`, `1g`, `512k`, `1024` (bytes); binary units.
pub fn parse_bytes(text: &str) -> Option<i64> {
    let text = text.trim().to_ascii_lowercase();
    let text = text.strip_suffix('b').unwrap_or(&text);
    let (digits, multiplier) = match text.chars().last()? {
        'k' => (&text[..text.len() - 1], 1i64 << 10),
        'm' => (&text[..text.len() - 1], 1 << 20),
        'g' => (&text[..text.len() - 1], 1 << 30),
        't' => (&text[..text.len() - 1], 1 << 40),
        _ => (text, 1),
    };
    let value: f64 = digits.trim().parse().ok()?;
    (value > 0.0).then_some((value * multiplier as f64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_cpus() {
        assert_eq!(parse_bytes("64M"), Some(64 << 20));
        assert_eq!(parse_bytes("1g"), Some(1 << 30));
        assert_eq!(parse_bytes("1.5G"), Some(3 << 29));
        assert_eq!(parse_bytes("2048"), Some(2048));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_cpus("0.25"), Some(250_000_000));
        assert_eq!(parse_cpus("0"), None);
    }
}
