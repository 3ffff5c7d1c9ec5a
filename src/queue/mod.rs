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
    format!("monitor-{region}")
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
