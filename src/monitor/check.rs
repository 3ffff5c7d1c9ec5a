//! From a monitor's stored definition to the probe that checks it. The same
//! mapping serves `geoctl probe` (settings from flags), `monitor check` and
//! the agents (settings from the `config` column).

use std::time::Duration;

use serde_json::{Map, Value};

use super::{Monitor, MonitorError, MonitorRegion, MonitorType};
use crate::probe::trace::TraceSpec;
use crate::probe::{DnsSpec, HttpSpec, PingSpec, ProbeSpec, RecordType, StatusRanges, TcpSpec};
use crate::synthetic::Script;

/// Per-check timeout when neither the monitor nor its region sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a monitor runs: one probe, or a synthetic script.
#[derive(Debug, Clone)]
pub enum Check {
    Probe(ProbeSpec),
    Synthetic(Script),
}

/// What to run for one monitor in one region.
#[derive(Debug, Clone)]
pub struct CheckPlan {
    pub check: Check,
    pub timeout: Duration,
    /// Latency thresholds (ms) that make this region `degraded`: the
    /// monitor-region override, else the region's own.
    pub latency_warning_ms: Option<i32>,
    pub latency_critical_ms: Option<i32>,
    /// The route to trace every `.1`th run, when the monitor asks for traces.
    pub trace: Option<(TraceSpec, u32)>,
}

/// The check a monitor runs in `region` (its per-region overrides applied).
pub fn plan(monitor: &Monitor, region: Option<&MonitorRegion>) -> Result<CheckPlan, MonitorError> {
    let kind = monitor.kind().ok_or_else(|| MonitorError::UnsupportedStoredType {
        name: monitor.name.clone(),
        stored: monitor.stored_type.clone(),
    })?;
    let mut config = monitor.config.as_object().cloned().unwrap_or_default();
    if let Some(region_headers) = region.and_then(|r| r.headers.clone()) {
        config.insert("headers".into(), merge_headers(config.get("headers"), &region_headers));
    }
    let (check, trace) = if kind == MonitorType::Synthetic {
        (Check::Synthetic(script_from_config(&config)?), None)
    } else {
        let spec = spec_from_config(kind, &monitor.target, &config)?;
        let trace = config
            .get("trace_every")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0)
            .and_then(|n| Some((trace_spec(&spec)?, n)));
        (Check::Probe(spec), trace)
    };
    let timeout_ms = region.and_then(|r| r.timeout_ms).or(monitor.timeout_ms);
    Ok(CheckPlan {
        check,
        timeout: timeout_ms.map_or(DEFAULT_TIMEOUT, |ms| Duration::from_millis(ms.max(1) as u64)),
        latency_warning_ms: region.and_then(|r| r.latency_warning_ms),
        latency_critical_ms: region.and_then(|r| r.latency_critical_ms),
        trace,
    })
}

/// The route a check's target is reached by: its host (none for DNS checks,
/// which ask a resolver).
fn trace_spec(spec: &ProbeSpec) -> Option<TraceSpec> {
    let host = match spec {
        ProbeSpec::Http(s) => {
            crate::probe::http::parse_url(&s.url).ok()?.host_str()?.trim_matches(['[', ']']).to_string()
        }
        ProbeSpec::Tcp(s) => s.host.clone(),
        ProbeSpec::Ping(s) => s.host.clone(),
        ProbeSpec::Dns(_) => return None,
    };
    Some(TraceSpec::new(host))
}

/// Whether the run scheduled at `scheduled_ms` is one of every `every` runs of
/// a monitor checked each `interval_seconds`: counted from the epoch, so every
/// agent of a region agrees which runs trace.
pub fn trace_due(scheduled_ms: Option<i64>, interval_seconds: i32, every: u32) -> bool {
    let Some(ms) = scheduled_ms else { return every == 1 };
    let run = ms.div_euclid(i64::from(interval_seconds.max(1)) * 1000);
    run.rem_euclid(i64::from(every.max(1))) == 0
}

/// Region headers replace monitor headers of the same name (case-insensitive).
fn merge_headers(monitor: Option<&Value>, region: &Value) -> Value {
    let name_of = |h: &Value| h.get("name").and_then(Value::as_str).unwrap_or("").to_ascii_lowercase();
    let region_list = region.as_array().cloned().unwrap_or_default();
    let mut merged: Vec<Value> = monitor
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|h| !region_list.iter().any(|r| name_of(r) == name_of(h)))
        .cloned()
        .collect();
    merged.extend(region_list);
    Value::Array(merged)
}

/// The key of a synthetic monitor's script (its YAML text, as written) in `config`.
pub const SCRIPT_KEY: &str = "script";

/// A synthetic monitor's script, parsed and validated from its `config`.
pub fn script_from_config(config: &Map<String, Value>) -> Result<Script, MonitorError> {
    let text = config.get(SCRIPT_KEY).and_then(Value::as_str).ok_or_else(|| {
        MonitorError::Invalid(
            "a synthetic monitor needs a script; pass --script FILE (or `script:` in apply files)".into(),
        )
    })?;
    Ok(Script::parse(text)?)
}

/// Builds the probe for a type, a target and the type's settings.
pub fn spec_from_config(
    kind: MonitorType,
    target: &str,
    config: &Map<String, Value>,
) -> Result<ProbeSpec, MonitorError> {
    let invalid = |reason: String| MonitorError::InvalidTarget { kind: kind.short(), target: target.into(), reason };
    let text = |key: &str| config.get(key).and_then(Value::as_str).map(str::to_string);
    Ok(match kind {
        MonitorType::Http => {
            let mut spec = HttpSpec::parse(target).map_err(|e| invalid(e.to_string()))?;
            if let Some(method) = text("method") {
                spec.method = method;
            }
            if let Some(status) = text("expected_status") {
                spec.expected_status = status
                    .parse()
                    .map_err(|e: crate::probe::StatusRangesError| MonitorError::Invalid(e.to_string()))?;
            } else if let Some(code) = config.get("expectedStatus").and_then(Value::as_u64) {
                // The existing app's single expected status.
                let code = u16::try_from(code).unwrap_or(0);
                spec.expected_status = StatusRanges::new(vec![(code, code)]);
            }
            if let Some(keyword) = text("keyword") {
                let absent = config.get("keyword_absent").and_then(Value::as_bool).unwrap_or(false);
                spec.keyword = Some((keyword, !absent));
            }
            if let Some(headers) = config.get("headers").and_then(Value::as_array) {
                spec.headers = headers
                    .iter()
                    .filter_map(|h| Some((h.get("name")?.as_str()?.to_string(), h.get("value")?.as_str()?.to_string())))
                    .collect();
            }
            ProbeSpec::Http(spec)
        }
        MonitorType::Synthetic => {
            return Err(MonitorError::Invalid("a synthetic monitor runs a script, not a single probe".into()))
        }
        MonitorType::Tcp => ProbeSpec::Tcp(TcpSpec::parse(target).map_err(|e| invalid(e.to_string()))?),
        MonitorType::Ping => ProbeSpec::Ping(PingSpec::parse(target).map_err(|e| invalid(e.to_string()))?),
        MonitorType::Dns => {
            let record_type: RecordType = text("record_type")
                .as_deref()
                .unwrap_or("A")
                .parse()
                .map_err(|e: crate::probe::TargetError| MonitorError::Invalid(e.to_string()))?;
            let mut spec = DnsSpec::new(target.trim_end_matches('.'), record_type);
            spec.expected = config
                .get("expected_answers")
                .and_then(Value::as_array)
                .map(|list| list.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            ProbeSpec::Dns(spec)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn http_settings_reach_the_probe() {
        let config = json!({"method": "HEAD", "expected_status": "200-299,301", "keyword": "ok", "keyword_absent": true,
            "headers": [{"name": "X-A", "value": "1"}]});
        let ProbeSpec::Http(spec) =
            spec_from_config(MonitorType::Http, "https://e.com/x", config.as_object().unwrap()).unwrap()
        else {
            panic!("not http")
        };
        assert_eq!(spec.method, "HEAD");
        assert!(spec.expected_status.contains(301) && !spec.expected_status.contains(302));
        assert_eq!(spec.keyword, Some(("ok".into(), false)));
        assert_eq!(spec.headers, vec![("X-A".to_string(), "1".to_string())]);
    }

    #[test]
    fn legacy_expected_status_is_honoured() {
        let config = json!({"expectedStatus": 204});
        let ProbeSpec::Http(spec) =
            spec_from_config(MonitorType::Http, "https://e.com", config.as_object().unwrap()).unwrap()
        else {
            panic!("not http")
        };
        assert!(spec.expected_status.contains(204) && !spec.expected_status.contains(200));
    }

    #[test]
    fn region_headers_replace_same_named_monitor_headers() {
        let merged = merge_headers(
            Some(&json!([{"name": "X-A", "value": "1"}, {"name": "X-B", "value": "2"}])),
            &json!([{"name": "x-a", "value": "eu"}]),
        );
        assert_eq!(merged, json!([{"name": "X-B", "value": "2"}, {"name": "x-a", "value": "eu"}]));
    }

    #[test]
    fn dns_and_tcp_targets() {
        let config = json!({"record_type": "MX", "expected_answers": ["mail.e.com"]});
        let ProbeSpec::Dns(spec) = spec_from_config(MonitorType::Dns, "e.com", config.as_object().unwrap()).unwrap()
        else {
            panic!("not dns")
        };
        assert_eq!(spec.expected, vec!["mail.e.com".to_string()]);
        assert!(matches!(spec_from_config(MonitorType::Tcp, "db:5432", &Map::new()).unwrap(), ProbeSpec::Tcp(_)));
    }
}
