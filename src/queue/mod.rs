//! Regional queues in BullMQ's Redis layout.
//!
//! Each region's Redis holds one BullMQ queue named `monitor-<region code>` (the
//! existing app's name, so regions may share one Redis). geoctl reads and writes
//! it through the `bullmq-official` crate, which keeps the layout BullMQ's Node
//! and Python clients use: they can add, run and count the same jobs.
//!
//! What geoctl keeps on a region's queue:
//!
//! - **One job scheduler per (monitor, region)**, id [`scheduler_id`]
//!   `monitor-<monitor uuid>`. Its jobs are named [`JOB_NAME`] (`execute-monitor`)
//!   and get BullMQ's scheduler job ids `repeat:monitor-<uuid>:<scheduled ms>`,
//!   the natural key of one scheduled run. The id has no `:` of its own because
//!   BullMQ only accepts job ids with exactly three `:`-separated parts.
//!   Timing: the monitor-region's cron `schedule` when set (BullMQ `pattern`),
//!   else `every` = the monitor-region's interval or the monitor's, in ms.
//! - **Job data** [`MonitorJob`]: `{monitorId, type, target, frequencyMinutes,
//!   region, executionRegion, createdAt}`, `type` in the stored spelling
//!   (`http_request`, …). No header, credential or other secret: the agent reads
//!   the monitor's current definition from PostgreSQL when it runs the job.
//! - **Job options** [`job_options`]: 3 attempts with exponential backoff from
//!   2 s, keep the last 100 completed and 50 failed jobs. A target that is down
//!   is a result, not a failed job; attempts are for the agent's own failures.
//! - **Agent heartbeats** ([`heartbeat`]): one hash per live agent,
//!   `geoctl:agents:<region>:<agent id>`, fields `id`, `host`, `version`,
//!   `started_at` (RFC 3339), `jobs_done`, `browser` (can it run browser steps), refreshed well within its TTL
//!   ([`heartbeat::TTL`]); an agent that stops refreshing disappears by itself.
//!
//! **Two lanes per region.** Monitors whose synthetic script has a browser step
//! ([`Lane::Browser`]) are scheduled on a second queue of the same format,
//! `browser-<region code>`, which only agents started with `--browser` (the
//! stack's `browser` service) work on; every other monitor stays on
//! `monitor-<code>`. A browser job thus never waits behind plain checks, and an
//! agent without Chromium never takes one. A monitor's lane follows its stored
//! script: reconciling a lane removes the schedulers and waiting jobs of the
//! monitors that now belong to the other, and adds those that came over.
//!
//! PostgreSQL is the source of truth. [`schedule::reconcile`] makes one region's
//! queue match it (add missing schedulers, remove stale ones and the waiting
//! jobs of deleted monitors, reschedule changed timings); `queue sync` runs it
//! for every region and agents run it at start and after every reconnect.
//! [`schedule::follow`] is the narrow version the `monitor` commands run after
//! each write, for the regions the change concerns.

mod connect;
pub mod control;
pub mod heartbeat;
mod job;
pub mod schedule;
pub mod stalled;
pub mod status;

pub use connect::{RedisEndpoint, RegionQueue};
pub use job::{desired_scheduler, job_options, monitor_of, scheduler_id, DesiredScheduler, MonitorJob, Timing};

/// The queue of a region: `monitor-<code>`.
pub fn queue_name(region: &str) -> String {
    Lane::Plain.queue_name(region)
}

/// Which of a region's two queues a monitor's jobs go to (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    /// `monitor-<code>`: every check that needs no browser; any agent.
    Plain,
    /// `browser-<code>`: synthetic scripts with browser steps; agents started with `--browser`.
    Browser,
}

impl Lane {
    pub const ALL: [Lane; 2] = [Lane::Plain, Lane::Browser];

    /// The lane of a monitor: [`Lane::Browser`] for a synthetic monitor whose stored script
    /// has a browser step. A script that does not parse stays plain: its runs record why.
    pub fn of(monitor: &crate::monitor::Monitor) -> Lane {
        let browser = monitor.kind() == Some(crate::monitor::MonitorType::Synthetic)
            && monitor
                .config
                .get(crate::monitor::check::SCRIPT_KEY)
                .and_then(serde_json::Value::as_str)
                .and_then(|text| crate::synthetic::Script::parse(text).ok())
                .is_some_and(|script| script.needs_browser());
        if browser {
            Lane::Browser
        } else {
            Lane::Plain
        }
    }

    /// The BullMQ queue of this lane in `region`. The browser queue's prefix differs from
    /// `monitor-` so that no region code can make one lane's name equal another's.
    pub fn queue_name(self, region: &str) -> String {
        match self {
            Lane::Plain => format!("monitor-{region}"),
            Lane::Browser => format!("browser-{region}"),
        }
    }

    /// `plain` or `browser`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Plain => "plain",
            Lane::Browser => "browser",
        }
    }
}

/// The name of every job geoctl schedules.
pub const JOB_NAME: &str = "execute-monitor";

/// What can go wrong talking to a region's queue. Every message names the
/// region; endpoints are shown with their password masked.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("region `{region}` has no Redis configured; set {var} (or `regions.{region}.redis_url` in geoctl.yaml)")]
    NoRedis { region: String, var: String },
    #[error(
        "{origin}: `{shown}` is not a Redis URL ({reason}); use redis://[:PASSWORD@]HOST[:PORT][/DB] or rediss://…"
    )]
    InvalidUrl { origin: String, shown: String, reason: String },
    #[error("Redis of region `{region}` at {endpoint} is unreachable: {reason}")]
    Unreachable { region: String, endpoint: String, reason: String },
    #[error("Redis of region `{region}` at {endpoint} refused the password; check {var}")]
    WrongPassword { region: String, endpoint: String, var: String },
    #[error("Redis of region `{region}` at {endpoint} requires a password; set {var}")]
    PasswordRequired { region: String, endpoint: String, var: String },
    #[error("Redis of region `{region}` at {endpoint} did not answer {what} within {timeout}; raise REDIS_COMMAND_TIMEOUT if it is just slow")]
    Timeout { region: String, endpoint: String, what: String, timeout: String },
    #[error("Redis of region `{region}` at {endpoint}: {what} failed: {reason}")]
    Command { region: String, endpoint: String, what: String, reason: String },
}

impl crate::error::Coded for QueueError {
    /// Configuration the operator must fix is exit 2; the rest are failures.
    fn exit(&self) -> crate::error::Exit {
        use crate::error::Exit;
        match self {
            QueueError::NoRedis { .. } | QueueError::InvalidUrl { .. } => Exit::Input,
            QueueError::Unreachable { .. }
            | QueueError::WrongPassword { .. }
            | QueueError::PasswordRequired { .. }
            | QueueError::Timeout { .. }
            | QueueError::Command { .. } => Exit::Failed,
        }
    }
}

impl QueueError {
    /// The region the error is about, when it names one.
    pub fn region(&self) -> Option<&str> {
        match self {
            QueueError::NoRedis { region, .. }
            | QueueError::Unreachable { region, .. }
            | QueueError::WrongPassword { region, .. }
            | QueueError::PasswordRequired { region, .. }
            | QueueError::Timeout { region, .. }
            | QueueError::Command { region, .. } => Some(region),
            QueueError::InvalidUrl { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Lane;

    #[test]
    fn each_lane_has_a_queue_no_region_code_can_collide_with() {
        assert_eq!(Lane::Plain.queue_name("eu-west"), "monitor-eu-west");
        assert_eq!(Lane::Browser.queue_name("eu-west"), "browser-eu-west");
        assert_ne!(Lane::Browser.queue_name("x"), Lane::Plain.queue_name("browser-x"));
        assert_eq!(super::queue_name("eu-west"), Lane::Plain.queue_name("eu-west"));
    }
}
