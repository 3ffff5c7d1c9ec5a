//! Monitors: what is checked, how often, from which regions, and when it
//! counts as down. Types, validation and the rules live here; the table
//! access is in [`store`].

pub mod apply;
pub mod check;
pub mod create;
mod plan;
pub mod settings;
mod spec;
mod store;

pub use crate::probe::StatusRanges;
pub use spec::{next_runs, resolve_header, resolve_headers, DownRule, Header};
pub use store::{
    Monitor, MonitorPatch, MonitorRegion, MonitorStore, NewMonitor, Placement, RegionEdit, RegionOverrides,
};

use std::net::IpAddr;
use std::time::Duration;

use crate::probe::{check_hostname, ProbeKind, ProbeSpec, TargetError};
use crate::region::RegionError;

/// Shortest interval accepted without `--force`.
pub const MIN_INTERVAL: Duration = Duration::from_secs(10);
/// Longest interval accepted without `--force`.
pub const MAX_INTERVAL: Duration = Duration::from_secs(86_400);
/// Most runs between two traces of a monitor's route (`trace_every`).
pub const MAX_TRACE_EVERY: u32 = 10_000;
/// Longest per-check timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(120);

/// The kinds of check, stored under the existing app's names so its workers
/// and geoctl read each other's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MonitorType {
    Http,
    Tcp,
    Ping,
    Dns,
    /// A scripted flow of requests and browser journeys (see [`crate::synthetic`]).
    Synthetic,
}

impl MonitorType {
    pub const ALL: [MonitorType; 5] =
        [MonitorType::Http, MonitorType::Tcp, MonitorType::Ping, MonitorType::Dns, MonitorType::Synthetic];

    /// The name in the `monitors.type` column.
    pub fn stored(self) -> &'static str {
        match self {
            MonitorType::Http => "http_request",
            MonitorType::Tcp => "port_check",
            MonitorType::Ping => "ping_host",
            MonitorType::Dns => "dns",
            MonitorType::Synthetic => "synthetic_test",
        }
    }

    /// The name operators type.
    pub fn short(self) -> &'static str {
        match self {
            MonitorType::Http => "http",
            MonitorType::Tcp => "tcp",
            MonitorType::Ping => "ping",
            MonitorType::Dns => "dns",
            MonitorType::Synthetic => "synthetic",
        }
    }

    /// Accepts both spellings (`http` and `http_request`, …).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|t| t.short() == text || t.stored() == text)
    }
}

impl std::str::FromStr for MonitorType {
    type Err = MonitorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| MonitorError::UnknownType(s.to_string()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("unknown monitor type `{0}`; use http, tcp, ping, dns or synthetic")]
    UnknownType(String),
    #[error("invalid {kind} target `{target}`: {reason}")]
    InvalidTarget { kind: &'static str, target: String, reason: String },
    #[error("interval {0} is too short; the minimum is 10s (pass --force, or `force: true` in a `monitor apply` file, to go below it)")]
    IntervalTooShort(String),
    #[error("interval {0} is too long; the maximum is 1d (pass --force, or `force: true` in a `monitor apply` file, to go above it)")]
    IntervalTooLong(String),
    #[error("interval must be at least 1s")]
    IntervalZero,
    #[error("timeout {timeout} must be above 0, at most {max} and not longer than the interval ({interval})")]
    Timeout { timeout: String, interval: String, max: String },
    #[error("{0}")]
    Invalid(String),
    #[error("`{option}` applies to {applies} monitors only, and `{name}` is a {kind} monitor")]
    OptionNotForType { option: &'static str, applies: &'static str, name: String, kind: &'static str },
    #[error(
        "a monitor named `{0}` already exists; choose another name or update it with `geoctl monitor update {0} …`"
    )]
    DuplicateName(String),
    #[error(
        "a monitor named `{name}` already exists with a different {}; change it with `geoctl monitor update {name} …`", .fields.join(", ")
    )]
    ExistsDiffering { name: String, fields: Vec<&'static str> },
    #[error("no monitor `{0}`; list them with `geoctl monitor list`")]
    NotFound(String),
    #[error("{count} monitors are named `{name}`; name one by its id: {}", .ids.join(", "))]
    Ambiguous { name: String, count: usize, ids: Vec<String> },
    #[error("geo distribution is off (ENABLE_GEO_DISTRIBUTION=false): monitors run in the default region `{default}` only, not in {}", .requested.join(", "))]
    GeoDisabled { default: String, requested: Vec<String> },
    #[error("a monitor needs at least one region; pause it with `geoctl monitor pause {0}` instead")]
    NoRegions(String),
    #[error("monitor `{monitor}` does not run in region `{region}`; add it first with `geoctl monitor regions add {monitor} {region}`")]
    NotInRegion { monitor: String, region: String },
    #[error("monitor `{name}` has type `{stored}`, which geoctl does not manage")]
    UnsupportedStoredType { name: String, stored: String },
    #[error(transparent)]
    Script(#[from] crate::synthetic::ScriptError),
    #[error("monitors[{index}] (`{name}`): {source}")]
    InEntry { index: usize, name: String, source: Box<MonitorError> },
    #[error(transparent)]
    Region(#[from] RegionError),
    /// A monitor's alert settings (unknown channel, a streak of 0), from alerting's writer
    /// (`apply::AlertWriter`).
    #[error(transparent)]
    Alert(crate::error::Carried),
    #[error(transparent)]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for MonitorError {
    fn from(e: sqlx::Error) -> Self {
        MonitorError::Database(e)
    }
}

impl crate::error::Coded for MonitorError {
    fn exit(&self) -> crate::error::Exit {
        use crate::error::Exit;
        match self {
            MonitorError::Database(_) => Exit::Failed,
            MonitorError::Region(e) => e.exit(),
            MonitorError::InEntry { source, .. } => source.exit(),
            MonitorError::Script(e) => e.exit(),
            MonitorError::Alert(e) => e.exit(),
            MonitorError::UnknownType(_)
            | MonitorError::InvalidTarget { .. }
            | MonitorError::IntervalTooShort(_)
            | MonitorError::IntervalTooLong(_)
            | MonitorError::IntervalZero
            | MonitorError::Timeout { .. }
            | MonitorError::Invalid(_)
            | MonitorError::OptionNotForType { .. }
            | MonitorError::DuplicateName(_)
            | MonitorError::ExistsDiffering { .. }
            | MonitorError::NotFound(_)
            | MonitorError::Ambiguous { .. }
            | MonitorError::GeoDisabled { .. }
            | MonitorError::NoRegions(_)
            | MonitorError::NotInRegion { .. }
            | MonitorError::UnsupportedStoredType { .. } => Exit::Input,
        }
    }
}

/// Checks an interval and returns it in whole seconds.
pub fn validate_interval(interval: Duration, force: bool) -> Result<i32, MonitorError> {
    let text = crate::duration::format(interval);
    if interval.as_secs() == 0 {
        return Err(MonitorError::IntervalZero);
    }
    if interval.subsec_millis() != 0 {
        return Err(MonitorError::Invalid(format!(
            "interval {text} has a fraction of a second; intervals have second precision"
        )));
    }
    if !force && interval < MIN_INTERVAL {
        return Err(MonitorError::IntervalTooShort(text));
    }
    if !force && interval > MAX_INTERVAL {
        return Err(MonitorError::IntervalTooLong(text));
    }
    i32::try_from(interval.as_secs()).map_err(|_| MonitorError::Invalid(format!("interval {text} is too long")))
}

/// Checks a timeout against the interval it must fit in; returns milliseconds.
pub fn validate_timeout(timeout: Duration, interval_seconds: i32) -> Result<i32, MonitorError> {
    let interval = Duration::from_secs(interval_seconds.max(0) as u64);
    if timeout.is_zero() || timeout > MAX_TIMEOUT || timeout > interval {
        return Err(MonitorError::Timeout {
            timeout: crate::duration::format(timeout),
            interval: crate::duration::format(interval),
            max: crate::duration::format(MAX_TIMEOUT),
        });
    }
    Ok(timeout.as_millis() as i32)
}

/// The existing app's `frequency_minutes`: the interval rounded up to whole minutes.
pub fn frequency_minutes(interval_seconds: i32) -> i32 {
    (interval_seconds + 59) / 60
}

/// Checks a target for a monitor type; returns it normalised. The probe's parser (the one the
/// agent runs the stored target through) decides what a URL, `host:port` or host is; a stored
/// monitor adds its own rules: stored-text limits, a URL spelled out with its scheme and without
/// credentials, RFC 1123 host names, and a DNS target that is a name (its record type is a setting).
pub fn validate_target(kind: MonitorType, target: &str) -> Result<String, MonitorError> {
    let target = target.trim();
    let fail = |reason: String| MonitorError::InvalidTarget {
        kind: kind.short(),
        target: crate::probe::display_url(target),
        reason,
    };
    if target.is_empty() {
        return Err(fail("it is empty".into()));
    }
    if target.chars().count() > crate::text::MAX_TARGET {
        return Err(fail(format!("it must be at most {} characters", crate::text::MAX_TARGET)));
    }
    if target.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(fail("it contains spaces or control characters".into()));
    }
    let probe_kind = match kind {
        MonitorType::Http if !target.contains("://") => {
            return Err(fail(format!("it has no scheme; did you mean https://{target} ?")))
        }
        MonitorType::Http => ProbeKind::Http,
        MonitorType::Tcp => ProbeKind::Tcp,
        MonitorType::Ping if target.contains("://") || target.contains('/') => {
            return Err(fail("use a host name or IP address, without scheme or path".into()))
        }
        MonitorType::Ping => ProbeKind::Ping,
        // A synthetic monitor's target names what it checks (the first URL of its script); the
        // script itself is validated by [`crate::synthetic::Script::parse`].
        MonitorType::Synthetic => return Ok(target.to_string()),
        MonitorType::Dns if target.parse::<IpAddr>().is_ok() => {
            return Err(fail("use a domain name to resolve, not an IP address".into()))
        }
        MonitorType::Dns => {
            check_hostname(target.trim_end_matches('.'), true).map_err(fail)?;
            return Ok(target.to_string());
        }
    };
    let host = match ProbeSpec::parse_target(probe_kind, target).map_err(|e| fail(target_reason(e)))? {
        ProbeSpec::Http(spec) => {
            let url = url::Url::parse(&spec.url).map_err(|e| fail(e.to_string()))?;
            if !url.username().is_empty() || url.password().is_some() {
                return Err(fail(
                    "it carries credentials; send them with --header 'Authorization: …' instead of the URL".into(),
                ));
            }
            url.host_str().unwrap_or_default().to_string()
        }
        ProbeSpec::Tcp(spec) => spec.host,
        ProbeSpec::Ping(spec) => spec.host,
        ProbeSpec::Dns(_) => unreachable!("DNS targets are checked above"),
    };
    let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(&host);
    if literal.parse::<IpAddr>().is_err() {
        check_hostname(&host, false).map_err(fail)?;
    }
    Ok(target.to_string())
}

/// The probe's parse error in the words of a monitor's target error.
fn target_reason(e: TargetError) -> String {
    match e {
        TargetError::InvalidUrl { reason, .. } => reason,
        TargetError::MissingHost(_) => "it has no host".into(),
        TargetError::MissingPort(_) => "use HOST:PORT, e.g. db.example.com:5432 or [2001:db8::1]:443".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_type_spellings_map_to_the_stored_name() {
        assert_eq!(MonitorType::parse("http").unwrap().stored(), "http_request");
        assert_eq!(MonitorType::parse("http_request").unwrap(), MonitorType::Http);
        assert_eq!(MonitorType::parse("tcp").unwrap().stored(), "port_check");
        assert_eq!(MonitorType::parse("ping_host").unwrap(), MonitorType::Ping);
        assert_eq!(MonitorType::parse("DNS").unwrap().stored(), "dns");
        assert!(MonitorType::parse("smtp").is_none());
    }

    #[test]
    fn intervals() {
        assert_eq!(validate_interval(Duration::from_secs(30), false).unwrap(), 30);
        assert!(matches!(validate_interval(Duration::from_secs(5), false), Err(MonitorError::IntervalTooShort(_))));
        assert_eq!(validate_interval(Duration::from_secs(5), true).unwrap(), 5);
        assert!(matches!(validate_interval(Duration::from_secs(86_401), false), Err(MonitorError::IntervalTooLong(_))));
        assert!(validate_interval(Duration::ZERO, true).is_err());
        assert!(validate_interval(Duration::from_millis(10_500), false).is_err());
        assert_eq!(frequency_minutes(30), 1);
        assert_eq!(frequency_minutes(60), 1);
        assert_eq!(frequency_minutes(61), 2);
    }

    #[test]
    fn timeouts_fit_the_interval() {
        assert_eq!(validate_timeout(Duration::from_secs(10), 60).unwrap(), 10_000);
        assert!(validate_timeout(Duration::from_secs(61), 60).is_err());
        assert!(validate_timeout(Duration::ZERO, 60).is_err());
        assert!(validate_timeout(Duration::from_secs(121), 3600).is_err());
    }

    #[test]
    fn targets_are_checked_for_their_type() {
        use MonitorType::*;
        assert_eq!(validate_target(Http, " https://example.com ").unwrap(), "https://example.com");
        assert!(validate_target(Http, "example.com").unwrap_err().to_string().contains("https://example.com"));
        assert!(validate_target(Http, "ftp://example.com").unwrap_err().to_string().contains("scheme `ftp`"));
        let err = validate_target(Http, "https://u:s3cret@example.com").unwrap_err().to_string();
        assert!(err.contains("credentials") && !err.contains("s3cret"), "{err}");
        assert!(validate_target(Http, "https://exa mple.com").is_err());
        assert!(validate_target(Http, "https://-bad-.com").is_err());
        assert!(validate_target(Tcp, "db.example.com:5432").is_ok());
        assert!(validate_target(Tcp, "[2001:db8::1]:443").is_ok());
        assert!(validate_target(Tcp, "db.example.com").is_err());
        assert!(validate_target(Tcp, "db.example.com:0").is_err());
        assert!(validate_target(Tcp, "db.example.com:70000").is_err());
        assert!(validate_target(Ping, "10.0.0.1").is_ok());
        assert!(validate_target(Ping, "https://example.com").is_err());
        assert!(validate_target(Dns, "_dmarc.example.com").is_ok());
        assert!(validate_target(Dns, "1.2.3.4").is_err());
        assert!(validate_target(Dns, "").is_err());
    }
}
