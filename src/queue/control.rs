//! What an operator does to a region's queue by hand: pause, resume, drain, clean finished jobs,
//! retry failed ones. Each action first reads whether there is anything to do, so re-running it
//! is safe and a dry run answers from the same reading without writing.

use std::time::Duration;

use super::{status, QueueError, RegionQueue};

/// What an action did (or, in a dry run, would do) to one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub changed: bool,
    /// One word for people: `paused`, `already paused`, `drained`, …
    pub result: &'static str,
    /// Jobs concerned, where the action counts them.
    pub jobs: Option<u64>,
}

impl Done {
    fn changed(result: &'static str, jobs: Option<u64>) -> Self {
        Done { changed: true, result, jobs }
    }

    fn unchanged(result: &'static str) -> Self {
        Done { changed: false, result, jobs: None }
    }
}

/// Stops agents taking jobs; scheduled jobs keep accumulating.
pub async fn pause(q: &RegionQueue, dry_run: bool) -> Result<Done, QueueError> {
    if q.run("reading the paused flag", q.bull().is_paused()).await? {
        return Ok(Done::unchanged("already paused"));
    }
    if !dry_run {
        q.run("pausing the queue", q.bull().pause()).await?;
    }
    Ok(Done::changed("paused", None))
}

/// Lets agents take jobs again.
pub async fn resume(q: &RegionQueue, dry_run: bool) -> Result<Done, QueueError> {
    if !q.run("reading the paused flag", q.bull().is_paused()).await? {
        return Ok(Done::unchanged("not paused"));
    }
    if !dry_run {
        q.run("resuming the queue", q.bull().resume()).await?;
    }
    Ok(Done::changed("resumed", None))
}

/// Removes every waiting job but the schedulers' next runs ([`status::drainable`]).
pub async fn drain(q: &RegionQueue, dry_run: bool) -> Result<Done, QueueError> {
    let waiting = status::drainable(q).await?.len() as u64;
    if waiting == 0 {
        return Ok(Done::unchanged("no waiting job"));
    }
    let removed = if dry_run { waiting } else { status::drain(q).await? };
    Ok(Done::changed("drained", Some(removed)))
}

/// Which finished jobs [`clean`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    Completed,
    Failed,
    Both,
}

impl Finished {
    /// BullMQ's names of the sets.
    pub fn states(self) -> &'static [&'static str] {
        match self {
            Finished::Completed => &["completed"],
            Finished::Failed => &["failed"],
            Finished::Both => &["completed", "failed"],
        }
    }
}

/// Removes the finished jobs BullMQ keeps for inspection that finished more than `older_than` ago.
pub async fn clean(q: &RegionQueue, which: Finished, older_than: Duration, dry_run: bool) -> Result<Done, QueueError> {
    let grace = older_than.as_millis() as u64;
    let mut removed = 0u64;
    for state in which.states() {
        if dry_run {
            removed += finished_before(q, state, grace).await?;
        } else {
            removed += q.run("cleaning finished jobs", q.bull().clean(grace, 0, state)).await?.len() as u64;
        }
    }
    if removed == 0 {
        return Ok(Done::unchanged("nothing to clean"));
    }
    Ok(Done::changed("cleaned", Some(removed)))
}

/// Moves failed jobs back to waiting so agents run them again.
pub async fn retry_failed(q: &RegionQueue, dry_run: bool) -> Result<Done, QueueError> {
    let failed = q.run("counting failed jobs", q.bull().get_failed_count()).await?;
    if failed == 0 {
        return Ok(Done::unchanged("no failed job"));
    }
    if !dry_run {
        q.run("retrying failed jobs", q.bull().retry_jobs("failed", 1000, None)).await?;
    }
    Ok(Done::changed("retried", Some(failed)))
}

/// Whether the region's queue of `lane` is in use in the Redis `q` talks to: it has schedulers,
/// jobs, or BullMQ's paused flag. Read through `q` (any lane of the region) without opening that
/// lane's queue, because opening a BullMQ queue writes its `meta` key: the check itself must not
/// make a queue look used. An operator's action covers a region's browser queue only when this
/// (or a configured browser service) says so, so pausing a region never leaves a paused browser
/// queue behind for a browser service added months later.
pub async fn in_use(q: &RegionQueue, lane: super::Lane) -> Result<bool, QueueError> {
    let keys = bullmq::QueueKeys::new(&lane.queue_name(&q.region), None);
    let mut exists = redis::cmd("EXISTS");
    for name in ["repeat", "wait", "paused", "active", "delayed", "prioritized", "completed", "failed"] {
        exists.arg(keys.get(name));
    }
    let mut conn = q.connection();
    let found: u64 = q.redis("looking for the queue's keys", exists.query_async(&mut conn)).await?;
    if found > 0 {
        return Ok(true);
    }
    let mut hexists = redis::cmd("HEXISTS");
    hexists.arg(keys.get("meta")).arg("paused");
    q.redis("reading the paused flag", hexists.query_async(&mut conn)).await
}

/// Finished jobs older than `grace` ms in `state`, counted without removing them (what
/// BullMQ's `clean` would remove, for a dry run).
async fn finished_before(q: &RegionQueue, state: &str, grace: u64) -> Result<u64, QueueError> {
    let key = q.bull().keys().get(state);
    let before = (chrono::Utc::now().timestamp_millis().max(0) as u64).saturating_sub(grace);
    let mut conn = q.connection();
    q.redis("counting finished jobs", redis::cmd("ZCOUNT").arg(key).arg("-inf").arg(before).query_async(&mut conn))
        .await
}
