//! Pure planners: a monitor's fields and one region's overrides as they would be after a change,
//! validated, before anything is written. The store applies what they return inside its
//! transaction; `monitor apply` calls the same functions to tell "unchanged" from "would change"
//! without a write, so both agree on what a change is.

use std::time::Duration;

use serde_json::Value;

use super::spec::validate_schedule;
use super::{
    validate_interval, validate_target, validate_timeout, Monitor, MonitorError, MonitorPatch, MonitorRegion,
    MonitorType, RegionOverrides,
};

/// A region assignment with overrides applied and validated (all but the
/// latency thresholds, which need the region's defaults).
pub(crate) fn plan_overrides(
    current: &Monitor,
    existing: &MonitorRegion,
    o: RegionOverrides,
) -> Result<MonitorRegion, MonitorError> {
    let region = existing.region.as_str();
    let mut next = if o.clear { MonitorRegion::plain(region) } else { existing.clone() };
    if let Some(enabled) = o.enabled {
        next.enabled = enabled;
    }
    if let Some(interval) = o.interval {
        next.interval_seconds = Some(validate_interval(interval, o.force)?);
    }
    let interval = next.interval_seconds.unwrap_or(current.interval_seconds);
    if let Some(timeout) = o.timeout {
        next.timeout_ms = Some(validate_timeout(timeout, interval)?);
    } else if let Some(ms) = next.timeout_ms.or(current.timeout_ms) {
        validate_timeout(Duration::from_millis(ms as u64), interval)?;
    }
    if let Some(schedule) = &o.schedule {
        next.schedule = Some(validate_schedule(schedule)?).filter(|s| !s.is_empty());
    }
    next.latency_warning_ms = o.latency_warning_ms.or(next.latency_warning_ms);
    next.latency_critical_ms = o.latency_critical_ms.or(next.latency_critical_ms);
    if let Some(headers) = o.headers {
        next.headers = Some(serde_json::to_value(headers).expect("headers serialise"));
    }
    if let Some(priority) = o.priority {
        next.priority = priority;
    }
    if let Some(notes) = o.notes {
        crate::text::check("notes", notes.trim(), crate::text::MAX_NOTES).map_err(MonitorError::Invalid)?;
        next.notes = Some(notes).filter(|n| !n.trim().is_empty());
    }
    Ok(next)
}

/// A monitor's fields after a patch (all but its name), validated.
pub(crate) struct Planned {
    pub target: String,
    pub interval_seconds: i32,
    pub timeout_ms: Option<i32>,
    pub down_rule: String,
    pub config: Value,
}

impl Planned {
    /// Nothing would change but, maybe, the name.
    pub fn same_as(&self, current: &Monitor) -> bool {
        self.target == current.target
            && self.interval_seconds == current.interval_seconds
            && self.timeout_ms == current.timeout_ms
            && self.down_rule == current.down_rule
            && self.config == current.config
    }
}

pub(crate) fn plan_fields(current: &Monitor, kind: MonitorType, patch: &MonitorPatch) -> Result<Planned, MonitorError> {
    let target = match &patch.target {
        Some(t) => validate_target(kind, t)?,
        None => current.target.clone(),
    };
    let interval_seconds = match patch.interval {
        Some(i) => validate_interval(i, patch.force)?,
        None => current.interval_seconds,
    };
    let timeout_ms = match (patch.timeout, current.timeout_ms) {
        (Some(t), _) => Some(validate_timeout(t, interval_seconds)?),
        (None, Some(ms)) => Some(validate_timeout(Duration::from_millis(ms as u64), interval_seconds)?),
        (None, None) => None,
    };
    let down_rule = patch.down_rule.map(|r| r.to_string()).unwrap_or_else(|| current.down_rule.clone());
    let mut config = current.config.as_object().cloned().unwrap_or_default();
    for (key, value) in &patch.config {
        if value.is_null() {
            config.remove(key);
        } else {
            config.insert(key.clone(), value.clone());
        }
    }
    Ok(Planned { target, interval_seconds, timeout_ms, down_rule, config: Value::Object(config) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn monitor() -> Monitor {
        Monitor {
            id: uuid::Uuid::nil(),
            name: "api".into(),
            stored_type: "http_request".into(),
            target: "https://example.com".into(),
            interval_seconds: 60,
            frequency_minutes: 1,
            timeout_ms: Some(10_000),
            enabled: true,
            status: "active".into(),
            down_rule: "any".into(),
            config: json!({"method": "GET", "keyword": "ok"}),
            regions: vec![MonitorRegion::plain("us-east")],
            created_at: None,
            updated_at: None,
        }
    }

    #[test]
    fn an_empty_patch_plans_the_monitor_as_it_is() {
        let current = monitor();
        let planned = plan_fields(&current, MonitorType::Http, &MonitorPatch::default()).unwrap();
        assert!(planned.same_as(&current));
    }

    #[test]
    fn a_patch_sets_validates_and_removes_fields() {
        let current = monitor();
        let patch = MonitorPatch {
            target: Some(" https://example.org ".into()),
            interval: Some(Duration::from_secs(30)),
            config: serde_json::Map::from_iter([
                ("keyword".to_string(), Value::Null),
                ("method".into(), json!("HEAD")),
            ]),
            ..Default::default()
        };
        let planned = plan_fields(&current, MonitorType::Http, &patch).unwrap();
        assert_eq!(planned.target, "https://example.org");
        assert_eq!(planned.interval_seconds, 30);
        assert_eq!(planned.config, json!({"method": "HEAD"}));
        assert!(!planned.same_as(&current));
    }

    #[test]
    fn a_shorter_interval_is_checked_against_the_kept_timeout() {
        let current = monitor();
        // The stored 10 s timeout no longer fits a 5 s interval (forced below the minimum).
        let patch = MonitorPatch { interval: Some(Duration::from_secs(5)), force: true, ..Default::default() };
        assert!(matches!(plan_fields(&current, MonitorType::Http, &patch), Err(MonitorError::Timeout { .. })));
        let bad_target = MonitorPatch { target: Some("example.org".into()), ..Default::default() };
        assert!(matches!(
            plan_fields(&current, MonitorType::Http, &bad_target),
            Err(MonitorError::InvalidTarget { .. })
        ));
    }

    #[test]
    fn overrides_apply_on_the_existing_assignment_or_on_a_cleared_one() {
        let current = monitor();
        let mut existing = MonitorRegion::plain("us-east");
        existing.priority = 5;
        existing.notes = Some("primary".into());
        let o = RegionOverrides {
            interval: Some(Duration::from_secs(120)),
            schedule: Some("*/5  * * * *".into()),
            notes: Some("  ".into()),
            ..Default::default()
        };
        let next = plan_overrides(&current, &existing, o).unwrap();
        assert_eq!(next.interval_seconds, Some(120));
        assert_eq!(next.schedule.as_deref(), Some("*/5 * * * *"));
        assert_eq!(next.priority, 5, "kept");
        assert_eq!(next.notes, None, "blank notes clear them");

        let cleared = plan_overrides(&current, &next, RegionOverrides { clear: true, ..Default::default() }).unwrap();
        assert_eq!(cleared, MonitorRegion::plain("us-east"));
    }

    #[test]
    fn an_override_timeout_must_fit_the_interval_in_force_there() {
        let current = monitor();
        let existing = MonitorRegion::plain("us-east");
        let too_long = RegionOverrides { timeout: Some(Duration::from_secs(90)), ..Default::default() };
        assert!(matches!(plan_overrides(&current, &existing, too_long), Err(MonitorError::Timeout { .. })));
        let fits = RegionOverrides {
            interval: Some(Duration::from_secs(300)),
            timeout: Some(Duration::from_secs(90)),
            ..Default::default()
        };
        assert_eq!(plan_overrides(&current, &existing, fits).unwrap().timeout_ms, Some(90_000));
        let bad_cron = RegionOverrides { schedule: Some("every minute".into()), ..Default::default() };
        assert!(plan_overrides(&current, &existing, bad_cron).is_err());
    }
}
