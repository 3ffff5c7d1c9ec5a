//! What a region's Redis says: reachable, live agents (heartbeats), the BullMQ queues' backlog.
//! Everything is read through [`crate::queue`] — its connection and password rule, its
//! heartbeat reading and its "oldest waiting" — so `health` and `queue status` cannot disagree
//! about the same queue.

use serde::Serialize;

use crate::config::Settings;
use crate::queue::status;
use crate::queue::{Lane, QueueError, RedisEndpoint, RegionQueue};

/// The region's BullMQ queue (`bull:monitor-<code>:…`).
#[derive(Debug, Clone, Serialize)]
pub struct QueueCounts {
    pub queue: String,
    /// Waiting jobs (on the wait list, or the paused list while the queue is paused) plus
    /// prioritized ones: the jobs "oldest waiting" is taken from.
    pub waiting: u64,
    pub active: u64,
    pub delayed: u64,
    pub failed: u64,
    /// Age of the job that has waited longest ([`status::oldest_waiting`]); None when nothing waits.
    pub oldest_waiting_seconds: Option<f64>,
}

pub async fn queue(queue: &RegionQueue) -> Result<QueueCounts, QueueError> {
    let counts = status::counts(queue).await?;
    Ok(QueueCounts {
        queue: queue.name().to_string(),
        waiting: counts.waiting + counts.paused + counts.prioritized,
        active: counts.active,
        delayed: counts.delayed,
        failed: counts.failed,
        oldest_waiting_seconds: status::oldest_waiting(queue).await?,
    })
}

/// The region's browser queue, read through `plain` (its Redis), when
/// [`crate::stack::browser_lane_in_use`] says it is part of the region; `None` otherwise.
pub async fn browser_queue(settings: &Settings, plain: &RegionQueue) -> Result<Option<QueueCounts>, QueueError> {
    if !crate::stack::browser_lane_in_use(settings, plain).await? {
        return Ok(None);
    }
    let browser = plain.lane(Lane::Browser).await?;
    let counts = queue(&browser).await;
    browser.close().await;
    counts.map(Some)
}

/// Why a configured Redis could not be used, for a health part or a doctor item: the server
/// and the reason when it is unreachable, the queue module's own message otherwise.
pub fn problem(endpoint: &RedisEndpoint, e: &QueueError) -> String {
    match e {
        QueueError::Unreachable { reason, .. } => format!("{}: {reason}", endpoint.server()),
        other => other.to_string(),
    }
}
