//! What one (monitor, region) looks like on a queue: its scheduler id, timing,
//! job data and job options, derived from the stored monitor alone.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::monitor::{Monitor, MonitorRegion};

/// Attempts per job: the agent's own failures (crash, lost connection, a write
/// that could not be made) are retried; a target that is down is a result.
pub const ATTEMPTS: u32 = 3;
/// First retry delay; BullMQ doubles it per attempt.
pub const BACKOFF: Duration = Duration::from_secs(2);
/// Finished jobs kept for inspection.
pub const KEEP_COMPLETED: usize = 100;
pub const KEEP_FAILED: usize = 50;

/// The stable scheduler id of a monitor on a region's queue: `monitor-<uuid>`.
pub fn scheduler_id(monitor: Uuid) -> String {
    format!("monitor-{monitor}")
}

/// The monitor a scheduler id (or a job id `repeat:monitor-<uuid>:<ms>`) belongs to.
pub fn monitor_of(id: &str) -> Option<Uuid> {
    let id = id.strip_prefix("repeat:").map_or(id, |rest| rest.rsplit_once(':').map_or(rest, |(s, _)| s));
    id.strip_prefix("monitor-").and_then(|u| Uuid::parse_str(u).ok())
}

/// The data of every `execute-monitor` job: what the existing app's workers
/// read, and nothing secret (the agent reads headers and credentials from
/// PostgreSQL at run time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MonitorJob {
    pub monitor_id: Uuid,
    /// The stored spelling: `http_request`, `port_check`, `ping_host`, `dns`.
    #[serde(rename = "type")]
    pub kind: String,
    pub target: String,
    pub frequency_minutes: i32,
    /// The region whose queue holds the job.
    pub region: String,
    /// The region that runs it (the same: each region runs its own queue).
    pub execution_region: String,
    /// When the monitor was created (RFC 3339), as the existing app sends it.
    pub created_at: Option<String>,
}

/// When a scheduler fires: a fixed interval or a cron pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Timing {
    /// Every N milliseconds (BullMQ `every`).
    Every(u64),
    /// A cron pattern (BullMQ `pattern`), from the region's `schedule` override.
    Cron(String),
}

impl Timing {
    pub fn repeat_options(&self) -> bullmq::job_scheduler::RepeatOptions {
        match self {
            Timing::Every(ms) => bullmq::job_scheduler::RepeatOptions { every: Some(*ms), ..Default::default() },
            Timing::Cron(pattern) => {
                bullmq::job_scheduler::RepeatOptions { pattern: Some(pattern.clone()), ..Default::default() }
            }
        }
    }

    /// The repeat options of a scheduler being added or rescheduled now
    /// (`now_ms`, Unix ms): an interval's first run is [`first_run_delay`]
    /// after now, so schedulers made together do not fire together.
    pub fn repeat_options_from(&self, monitor: Uuid, now_ms: u64) -> bullmq::job_scheduler::RepeatOptions {
        let mut options = self.repeat_options();
        if let Timing::Every(every) = self {
            options.start_date = Some(now_ms + first_run_delay(monitor, *every));
        }
        options
    }

    /// How people read it: `every 1m` or `cron */5 * * * *`.
    pub fn describe(&self) -> String {
        match self {
            Timing::Every(ms) => format!("every {}", crate::duration::format(Duration::from_millis(*ms))),
            Timing::Cron(pattern) => format!("cron {pattern}"),
        }
    }
}

/// Longest wait before an interval scheduler's first run.
pub const MAX_FIRST_RUN_DELAY_MS: u64 = 60_000;

/// How long after being (re)scheduled a monitor's interval scheduler first
/// runs: a stable share of its interval, at most [`MAX_FIRST_RUN_DELAY_MS`],
/// taken from the monitor's id. BullMQ keeps an `every` scheduler in the
/// phase of its first run, so monitors created by one `monitor apply` (or
/// re-created by one resync after Redis lost its data) would otherwise all
/// run in the same second of every interval, and a region's agents would
/// start each burst late. Prometheus spreads its scrape targets the same way.
pub fn first_run_delay(monitor: Uuid, every_ms: u64) -> u64 {
    let window = every_ms.min(MAX_FIRST_RUN_DELAY_MS);
    if window == 0 {
        return 0;
    }
    // The UUID's bits are random (v4) or time-ordered (v7); fold them all.
    let bits = monitor.as_u128();
    ((bits as u64) ^ ((bits >> 64) as u64)) % window
}

/// The scheduler a monitor should have on one region's queue.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredScheduler {
    pub id: String,
    pub monitor: Uuid,
    pub monitor_name: String,
    pub timing: Timing,
    pub data: MonitorJob,
}

/// The scheduler `monitor` should have in `region`, or `None` when it must
/// not run there (monitor paused, region assignment disabled, or absent).
/// `region_active` is whether the region itself is enabled.
pub fn desired_scheduler(monitor: &Monitor, region: &str, region_active: bool) -> Option<DesiredScheduler> {
    let assignment: &MonitorRegion = monitor.regions.iter().find(|r| r.region == region)?;
    if !monitor.enabled || !assignment.enabled || !region_active {
        return None;
    }
    let timing = match assignment.schedule.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(pattern) => Timing::Cron(pattern.to_string()),
        None => {
            let seconds = assignment.interval_seconds.unwrap_or(monitor.interval_seconds).max(1);
            Timing::Every(seconds as u64 * 1000)
        }
    };
    Some(DesiredScheduler {
        id: scheduler_id(monitor.id),
        monitor: monitor.id,
        monitor_name: monitor.name.clone(),
        timing,
        data: MonitorJob {
            monitor_id: monitor.id,
            kind: monitor.stored_type.clone(),
            target: monitor.target.clone(),
            frequency_minutes: monitor.frequency_minutes,
            region: region.to_string(),
            execution_region: region.to_string(),
            created_at: monitor.created_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        },
    })
}

/// The options of every scheduled job.
pub fn job_options() -> bullmq::JobOptions {
    use bullmq::types::{BackoffStrategy, RemoveOnFinish};
    bullmq::JobOptions::new()
        .attempts(ATTEMPTS)
        .backoff(BackoffStrategy::Exponential(BACKOFF.as_millis() as u64))
        .remove_on_complete(RemoveOnFinish::Count(KEEP_COMPLETED))
        .remove_on_fail(RemoveOnFinish::Count(KEEP_FAILED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_runs_spread_over_the_interval_up_to_a_minute_and_stay_put() {
        let ids: Vec<Uuid> =
            (0..1000u128).map(|i| Uuid::from_u128(i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835))).collect();
        for every in [1_000u64, 60_000, 3_600_000] {
            let delays: Vec<u64> = ids.iter().map(|id| first_run_delay(*id, every)).collect();
            let window = every.min(MAX_FIRST_RUN_DELAY_MS);
            assert!(delays.iter().all(|d| *d < window), "every {every}: a delay outside [0, {window})");
            // Spread: each tenth of the window gets some of the 1,000 monitors.
            let mut tenths = [0usize; 10];
            for d in &delays {
                tenths[(d * 10 / window) as usize] += 1;
            }
            assert!(tenths.iter().all(|n| *n >= 50), "every {every}: uneven spread {tenths:?}");
        }
        // The same monitor always gets the same delay (a resync keeps its phase).
        assert_eq!(first_run_delay(ids[7], 60_000), first_run_delay(ids[7], 60_000));
        assert_eq!(first_run_delay(ids[7], 0), 0);
        let options = Timing::Every(60_000).repeat_options_from(ids[7], 1_000_000);
        assert_eq!(options.every, Some(60_000));
        assert_eq!(options.start_date, Some(1_000_000 + first_run_delay(ids[7], 60_000)));
        let cron = Timing::Cron("*/5 * * * *".into()).repeat_options_from(ids[7], 1_000_000);
        assert_eq!(cron.start_date, None, "cron patterns keep their own times");
    }
    use serde_json::json;

    fn monitor(regions: Vec<MonitorRegion>) -> Monitor {
        Monitor {
            id: Uuid::nil(),
            name: "api".into(),
            stored_type: "http_request".into(),
            target: "https://example.com".into(),
            interval_seconds: 60,
            frequency_minutes: 1,
            timeout_ms: None,
            enabled: true,
            status: "active".into(),
            down_rule: "majority".into(),
            config: json!({"headers": [{"name": "Authorization", "value": "Bearer s3cret"}]}),
            regions,
            created_at: None,
            updated_at: None,
        }
    }

    fn assignment(region: &str) -> MonitorRegion {
        MonitorRegion::plain(region)
    }

    /// A monitor's lane follows its stored script: browser steps put it on the browser queue.
    #[test]
    fn only_synthetic_scripts_with_browser_steps_take_the_browser_lane() {
        use crate::queue::Lane;
        let synthetic = |script: &str| Monitor {
            stored_type: "synthetic_test".into(),
            config: json!({ "script": script }),
            ..monitor(vec![assignment("eu-west")])
        };
        let page = "steps:\n  - name: page\n    browser: [ { goto: \"http://127.0.0.1:9/\" } ]\n";
        let api = "steps:\n  - name: api\n    request: { url: \"http://127.0.0.1:9/\" }\n";
        assert_eq!(Lane::of(&synthetic(page)), Lane::Browser);
        assert_eq!(Lane::of(&synthetic(api)), Lane::Plain);
        assert_eq!(Lane::of(&synthetic("steps: [")), Lane::Plain, "an unparsable script stays plain");
        assert_eq!(Lane::of(&monitor(vec![assignment("eu-west")])), Lane::Plain);
    }

    #[test]
    fn job_data_has_the_existing_apps_fields_and_no_secret() {
        let m = monitor(vec![assignment("eu-west")]);
        let d = desired_scheduler(&m, "eu-west", true).unwrap();
        let value = serde_json::to_value(&d.data).unwrap();
        let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["createdAt", "executionRegion", "frequencyMinutes", "monitorId", "region", "target", "type"].to_vec()
        );
        assert_eq!(value["type"], "http_request");
        assert!(!value.to_string().contains("s3cret"));
        assert_eq!(d.id, "monitor-00000000-0000-0000-0000-000000000000");
        assert_eq!(d.timing, Timing::Every(60_000));
    }

    #[test]
    fn region_overrides_set_the_timing() {
        let mut a = assignment("eu-west");
        a.interval_seconds = Some(30);
        assert_eq!(
            desired_scheduler(&monitor(vec![a.clone()]), "eu-west", true).unwrap().timing,
            Timing::Every(30_000)
        );
        a.schedule = Some("*/5 * * * *".into());
        assert_eq!(
            desired_scheduler(&monitor(vec![a]), "eu-west", true).unwrap().timing,
            Timing::Cron("*/5 * * * *".into())
        );
    }

    #[test]
    fn paused_disabled_or_unassigned_means_no_scheduler() {
        let mut m = monitor(vec![assignment("eu-west")]);
        assert!(desired_scheduler(&m, "us-east", true).is_none());
        assert!(desired_scheduler(&m, "eu-west", false).is_none());
        m.regions[0].enabled = false;
        assert!(desired_scheduler(&m, "eu-west", true).is_none());
        m.regions[0].enabled = true;
        m.enabled = false;
        assert!(desired_scheduler(&m, "eu-west", true).is_none());
    }

    #[test]
    fn ids_map_back_to_their_monitor() {
        let id = Uuid::new_v4();
        assert_eq!(monitor_of(&scheduler_id(id)), Some(id));
        assert_eq!(monitor_of(&format!("repeat:{}:1700000000000", scheduler_id(id))), Some(id));
        assert_eq!(monitor_of("something-else"), None);
        // BullMQ accepts job ids with exactly three `:`-separated parts.
        assert_eq!(format!("repeat:{}:1", scheduler_id(id)).split(':').count(), 3);
    }
}
