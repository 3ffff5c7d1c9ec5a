//! The agent's settings (`geoctl agent`): flag > environment > `agent:` in the config file >
//! default, resolved like every other setting so `config show` says where each came from.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{ok_string, AgentSection, ConfigError, Layers, Sourced};
use crate::duration::{self, BareUnit};

/// The agent's flags as given on the command line (`None`: not given).
#[derive(Debug, Clone, Default)]
pub struct AgentFlags {
    pub region: Option<String>,
    pub concurrency: Option<String>,
    pub lock_duration: Option<String>,
    pub stalled_interval: Option<String>,
    pub listen: Option<String>,
    pub spool_dir: Option<String>,
    pub spool_max: Option<String>,
    pub shutdown_timeout: Option<String>,
    pub resync_interval: Option<String>,
    pub log_format: Option<String>,
    /// `agent health --url`.
    pub health_url: Option<String>,
    /// `--browser`: `Some("true")` when given.
    pub browser: Option<String>,
    pub browser_concurrency: Option<String>,
}

/// How a service logs on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// The agent's settings, each with its origin.
#[derive(Debug, Clone)]
pub struct Agent {
    /// The region whose queue it runs (`WORKER_REGION`); required only to run one.
    pub region: Option<Sourced<String>>,
    pub concurrency: Sourced<usize>,
    pub lock_duration: Sourced<Duration>,
    /// `None`: the lock duration.
    pub stalled_interval: Option<Sourced<Duration>>,
    pub listen: Sourced<SocketAddr>,
    pub spool_dir: Sourced<PathBuf>,
    pub spool_max: Sourced<usize>,
    pub shutdown_timeout: Sourced<Duration>,
    pub resync_interval: Sourced<Duration>,
    pub log_format: Sourced<LogFormat>,
    /// The readiness endpoint `agent health` asks.
    pub health_url: Sourced<String>,
    /// Work on the region's browser queue (`browser-<code>`) instead of its plain one.
    pub browser: Sourced<bool>,
    /// Journeys at once on the browser queue; `None`: from the memory limit (see
    /// [`crate::agent::browser_concurrency`]).
    pub browser_concurrency: Option<Sourced<usize>>,
}

impl Agent {
    pub(super) fn resolve(
        layers: &Layers,
        flags: &AgentFlags,
        file: Option<&AgentSection>,
    ) -> Result<Self, ConfigError> {
        let file = file.cloned().unwrap_or_default();
        // Durations as the agent's flags always took them: a bare number is seconds, zero allowed.
        let seconds = |s: &str| duration::parse(s, BareUnit::Seconds);
        let number = |n: Option<usize>| n.map(|n| n.to_string());
        Ok(Agent {
            region: layers.plain(
                flag("--region", &flags.region),
                "WORKER_REGION",
                file.region.as_deref(),
                None,
                ok_string,
            )?,
            concurrency: defaulted(
                layers,
                flag("--concurrency", &flags.concurrency),
                "MAX_CONCURRENT_EXECUTIONS",
                number(file.concurrency).as_deref(),
                "10",
                parse_count,
            )?,
            lock_duration: defaulted(
                layers,
                flag("--lock-duration", &flags.lock_duration),
                "AGENT_LOCK_DURATION",
                file.lock_duration.as_deref(),
                "30s",
                seconds,
            )?,
            stalled_interval: layers.plain(
                flag("--stalled-interval", &flags.stalled_interval),
                "AGENT_STALLED_INTERVAL",
                file.stalled_interval.as_deref(),
                None,
                seconds,
            )?,
            listen: defaulted(
                layers,
                flag("--listen", &flags.listen),
                "AGENT_LISTEN",
                file.listen.as_deref(),
                ":3001",
                parse_listen,
            )?,
            spool_dir: defaulted(
                layers,
                flag("--spool-dir", &flags.spool_dir),
                "AGENT_SPOOL_DIR",
                file.spool_dir.as_ref().and_then(|p| p.to_str()),
                "/var/lib/geoctl/spool",
                |s| ok_string(s).map(PathBuf::from),
            )?,
            spool_max: defaulted(
                layers,
                flag("--spool-max", &flags.spool_max),
                "AGENT_SPOOL_MAX",
                number(file.spool_max).as_deref(),
                "100000",
                parse_count,
            )?,
            shutdown_timeout: defaulted(
                layers,
                flag("--shutdown-timeout", &flags.shutdown_timeout),
                "AGENT_SHUTDOWN_TIMEOUT",
                file.shutdown_timeout.as_deref(),
                "30s",
                seconds,
            )?,
            resync_interval: defaulted(
                layers,
                flag("--resync-interval", &flags.resync_interval),
                "AGENT_RESYNC_INTERVAL",
                file.resync_interval.as_deref(),
                "5m",
                seconds,
            )?,
            log_format: defaulted(
                layers,
                flag("--log-format", &flags.log_format),
                "LOG_FORMAT",
                file.log_format.as_deref(),
                "text",
                parse_log_format,
            )?,
            health_url: defaulted(
                layers,
                flag("--url", &flags.health_url),
                "AGENT_HEALTH_URL",
                file.health_url.as_deref(),
                "http://127.0.0.1:3001/health/ready",
                ok_string,
            )?,
            browser: defaulted(
                layers,
                flag("--browser", &flags.browser),
                "AGENT_BROWSER",
                file.browser.map(|b| b.to_string()).as_deref(),
                "false",
                super::parse_bool,
            )?,
            browser_concurrency: layers.plain(
                flag("--browser-concurrency", &flags.browser_concurrency),
                "AGENT_BROWSER_CONCURRENCY",
                number(file.browser_concurrency).as_deref(),
                None,
                parse_count,
            )?,
        })
    }
}

/// A flag as the resolver takes it: its name and, when given, its text.
pub(super) fn flag<'a>(name: &'static str, value: &'a Option<String>) -> Option<(&'static str, &'a str)> {
    value.as_deref().map(|v| (name, v))
}

/// A value that always has one: flag, env, file, default.
pub(super) fn defaulted<T>(
    layers: &Layers,
    flag: Option<(&'static str, &str)>,
    env_name: &str,
    from_file: Option<&str>,
    default: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Sourced<T>, ConfigError> {
    Ok(layers.plain(flag, env_name, from_file, Some(default), parse)?.expect("has a default"))
}

/// A whole number (0 allowed: the agent says itself why a count of 0 cannot run).
fn parse_count(text: &str) -> Result<usize, String> {
    text.parse().map_err(|_| format!("`{text}` is not a whole number"))
}

/// `:3001` → every interface, port 3001; otherwise `HOST:PORT`.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let full = if text.starts_with(':') { format!("0.0.0.0{text}") } else { text.to_string() };
    full.parse()
        .map_err(|_| format!("`{text}` is not an address; use :PORT or HOST:PORT, e.g. :3001 or 127.0.0.1:3001"))
}

fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("`{text}` is not a log format; use text or json")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen(":3001").unwrap(), "0.0.0.0:3001".parse().unwrap());
        assert_eq!(parse_listen("127.0.0.1:9").unwrap(), "127.0.0.1:9".parse().unwrap());
        assert!(parse_listen("3001").is_err());
    }

    #[test]
    fn log_formats() {
        assert_eq!(parse_log_format("json").unwrap(), LogFormat::Json);
        assert!(parse_log_format("yaml").unwrap_err().contains("text or json"));
    }
}
