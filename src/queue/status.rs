//! A region queue's state as operators read it: BullMQ's job counts, its
//! schedulers, live agents, the oldest waiting job, and whether the schedule
//! matches the database.

use serde::Serialize;

use super::heartbeat::{self, Heartbeat};
use super::schedule::{self, Wanted};
use super::{Lane, QueueError, RedisEndpoint, RegionQueue};
use crate::config::Settings;

/// Jobs per state, read exactly as BullMQ's `getJobCounts` reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub waiting: u64,
    pub active: u64,
    pub delayed: u64,
    pub prioritized: u64,
    pub completed: u64,
    pub failed: u64,
    pub paused: u64,
    #[serde(rename = "waiting-children")]
    pub waiting_children: u64,
}

/// What `queue status` shows for a reachable queue.
#[derive(Debug, Clone, Serialize)]
pub struct QueueState {
    pub counts: Counts,
    /// Whether the queue itself is paused (`queue pause`).
    pub is_paused: bool,
    pub schedulers: u64,
    pub live_agents: usize,
    pub agents: Vec<Heartbeat>,
    /// Seconds since the oldest waiting job became due; `None` when none waits.
    pub oldest_waiting_seconds: Option<f64>,
    /// Whether the schedulers are exactly what the database says.
    pub schedule_matches: bool,
    /// What `queue sync` would change (0 when it matches).
    pub sync_pending: usize,
}

/// What a region's queue carries now, without the schedule comparison: what the dashboard polls.
#[derive(Debug, Clone, Serialize)]
pub struct Backlog {
    pub counts: Counts,
    /// Whether the queue itself is paused (`queue pause`).
    pub is_paused: bool,
    pub agents: Vec<Heartbeat>,
    /// Seconds since the oldest waiting job became due; `None` when none waits.
    pub oldest_waiting_seconds: Option<f64>,
}

/// Reads the backlog in a handful of round trips; writes nothing.
pub async fn backlog(queue: &RegionQueue) -> Result<Backlog, QueueError> {
    let bull = queue.bull();
    let counts = counts(queue).await?;
    let is_paused = queue.run("reading the paused flag", bull.is_paused()).await?;
    // The agents that work on this lane: those started with `--browser` on the browser queue.
    let browser_lane = queue.lane == Lane::Browser;
    let agents: Vec<Heartbeat> =
        heartbeat::live(queue).await?.into_iter().filter(|a| (a.browser == Some(true)) == browser_lane).collect();
    let oldest_waiting_seconds = oldest_waiting(queue).await?;
    Ok(Backlog { counts, is_paused, agents, oldest_waiting_seconds })
}

/// Reads the state in a handful of round trips; writes nothing.
pub async fn read(queue: &RegionQueue, wanted: &Wanted) -> Result<QueueState, QueueError> {
    let Backlog { counts, is_paused, agents, oldest_waiting_seconds } = backlog(queue).await?;
    let schedulers = queue.run("counting job schedulers", queue.bull().get_job_schedulers_count()).await?;
    let plan = schedule::reconcile(queue, wanted, true).await?;
    Ok(QueueState {
        counts,
        is_paused,
        schedulers,
        live_agents: agents.len(),
        agents,
        oldest_waiting_seconds,
        schedule_matches: plan.changes.is_empty(),
        sync_pending: plan.changes.len(),
    })
}

/// Jobs per state, in one round trip.
pub async fn counts(queue: &RegionQueue) -> Result<Counts, QueueError> {
    let c = queue.run("counting jobs", queue.bull().get_job_counts()).await?;
    Ok(Counts {
        waiting: c.waiting,
        active: c.active,
        delayed: c.delayed,
        prioritized: c.prioritized,
        completed: c.completed,
        failed: c.failed,
        paused: c.paused,
        waiting_children: c.waiting_children,
    })
}

/// One region in `queue status`: where its Redis is and what its queue holds, or why that
/// cannot be told. Serialised as `queue status -o json` shows it.
#[derive(Debug, Serialize)]
pub struct RegionStatus {
    pub region: String,
    pub lane: Lane,
    pub queue: String,
    pub configured: bool,
    /// The Redis URL, password masked.
    pub endpoint: Option<String>,
    pub reachable: bool,
    pub error: Option<String>,
    #[serde(flatten)]
    pub state: Option<QueueState>,
}

/// [`read`] for one lane of one region of the configuration; never fails, a region that cannot
/// be read says why in its `error`.
pub async fn of_region(settings: &Settings, region: &str, lane: Lane, wanted: &Wanted) -> RegionStatus {
    let mut entry = RegionStatus {
        region: region.into(),
        lane,
        queue: lane.queue_name(region),
        configured: false,
        endpoint: None,
        reachable: false,
        error: None,
        state: None,
    };
    let endpoint = match RedisEndpoint::resolve(settings, region) {
        Ok(e) => e,
        Err(e) => {
            entry.error = Some(e.to_string());
            return entry;
        }
    };
    entry.configured = true;
    entry.endpoint = Some(endpoint.shown());
    let state = async {
        let queue = RegionQueue::connect_lane(&endpoint, &settings.tuning, lane).await?;
        let state = read(&queue, wanted).await;
        queue.close().await;
        state
    };
    match state.await {
        Ok(state) => {
            entry.reachable = true;
            entry.state = Some(state);
        }
        Err(e) => {
            entry.reachable = !matches!(e, QueueError::Unreachable { .. });
            entry.error = Some(e.to_string());
        }
    }
    entry
}

/// The oldest job of the wait (or paused) list: BullMQ pushes on the left and
/// takes from the right, so it is the rightmost. It became due at its
/// `timestamp` plus its `delay` (a scheduler's job waits in `delayed` first).
/// `queue status` and `health` both ask this, so they agree on a backlog's age.
pub async fn oldest_waiting(queue: &RegionQueue) -> Result<Option<f64>, QueueError> {
    let keys = queue.bull().keys();
    let mut conn = queue.connection();
    let mut pipe = redis::pipe();
    pipe.cmd("LINDEX").arg(keys.wait()).arg(-1).cmd("LINDEX").arg(keys.paused()).arg(-1);
    let tails: Vec<Option<String>> = queue.redis("finding the oldest waiting job", pipe.query_async(&mut conn)).await?;
    let mut due: Vec<u64> = Vec::new();
    for id in tails.into_iter().flatten() {
        let (timestamp, delay): (Option<u64>, Option<u64>) = queue
            .redis(
                "reading the oldest waiting job",
                redis::cmd("HMGET").arg(keys.job_key(&id)).arg("timestamp").arg("delay").query_async(&mut conn),
            )
            .await?;
        if let Some(ts) = timestamp {
            due.push(ts + delay.unwrap_or(0));
        }
    }
    let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
    Ok(due.into_iter().min().map(|t| now.saturating_sub(t) as f64 / 1000.0))
}

/// The jobs `queue drain` removes: waiting, paused and prioritized ones,
/// except each scheduler's current run (removing it would stop the scheduler).
pub async fn drainable(queue: &RegionQueue) -> Result<Vec<String>, QueueError> {
    let keep: std::collections::HashSet<String> = schedule::list_schedulers(queue)
        .await?
        .into_iter()
        .filter_map(|s| s.next.map(|next| format!("repeat:{}:{next}", s.id)))
        .collect();
    let keys = queue.bull().keys();
    let mut pipe = redis::pipe();
    pipe.lrange(keys.wait(), 0, -1).lrange(keys.paused(), 0, -1).zrange(keys.prioritized(), 0, -1);
    let mut conn = queue.connection();
    let lists: Vec<Vec<String>> = queue.redis("listing waiting jobs", pipe.query_async(&mut conn)).await?;
    Ok(lists.into_iter().flatten().filter(|id| !keep.contains(id)).collect())
}

/// Removes the [`drainable`] jobs one by one with BullMQ's job removal. Not
/// BullMQ's `drain`: with a scheduler's run waiting among other jobs, the
/// crate's drain script (1.4.4) removed that run from the list and left
/// another job's id without its data. Returns how many were removed.
pub async fn drain(queue: &RegionQueue) -> Result<u64, QueueError> {
    use futures::stream::{self, TryStreamExt};
    let ids = drainable(queue).await?;
    let removed: Vec<bool> = stream::iter(ids.iter().map(Ok))
        .map_ok(|id| queue.run("removing a job", queue.bull().remove(id)))
        .try_buffer_unordered(32)
        .try_collect()
        .await?;
    Ok(removed.into_iter().filter(|r| *r).count() as u64)
}
