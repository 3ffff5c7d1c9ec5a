//! Scheduling follows PostgreSQL: plan the difference between what the
//! database says should run in a region and what its queue holds, then apply it.
//!
//! [`reconcile`] does it for a whole queue (`queue sync`, agents at start and
//! after every reconnect); [`follow`] for the monitors one command changed, in
//! the regions that change concerns. Both compare before they write, so a
//! second run changes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::job::monitor_of;
use super::{
    desired_scheduler, job_options, DesiredScheduler, Lane, QueueError, RedisEndpoint, RegionQueue, Timing, JOB_NAME,
};
use crate::config::Settings;
use crate::monitor::{Monitor, MonitorError, MonitorStore, Placement};
use crate::region::RegionStore;

/// Queue writes in flight at once: enough to hide the round trip, few enough
/// not to crowd a small Redis.
const CONCURRENCY: usize = 32;

/// What PostgreSQL says should be scheduled: every monitor and the active regions.
#[derive(Debug, Clone)]
pub struct Wanted {
    monitors: Vec<Monitor>,
    /// Each monitor's lane, worked out once (it parses the script).
    lanes: HashMap<Uuid, Lane>,
    active_regions: BTreeSet<String>,
}

impl Wanted {
    /// Reads every monitor with its regions, and the active regions, in two queries.
    pub async fn load(pool: &PgPool) -> Result<Self, MonitorError> {
        // Reads only: the placement rules matter to creation, not here.
        let store = MonitorStore::new(pool, Placement { geo_distribution: true, default_region: None });
        let monitors = store.list().await?;
        let active_regions = RegionStore::active_codes(pool).await?.into_iter().collect();
        let lanes = monitors.iter().map(|m| (m.id, Lane::of(m))).collect();
        Ok(Wanted { monitors, lanes, active_regions })
    }

    pub fn active_regions(&self) -> &BTreeSet<String> {
        &self.active_regions
    }

    /// The schedulers `region`'s queue of `lane` should hold.
    pub fn schedulers(&self, region: &str, lane: Lane) -> Vec<DesiredScheduler> {
        let active = self.active_regions.contains(region);
        self.monitors
            .iter()
            .filter(|m| self.lanes.get(&m.id) == Some(&lane))
            .filter_map(|m| desired_scheduler(m, region, active))
            .collect()
    }
}

/// A scheduler as found on a queue.
#[derive(Debug, Clone, Serialize)]
pub struct FoundScheduler {
    pub id: String,
    pub name: String,
    pub timing: Option<Timing>,
    pub data: Option<Value>,
    /// When it fires next (ms since the epoch).
    pub next: Option<u64>,
    /// Whether the job of that next run exists (`None`: not checked). BullMQ
    /// only creates a scheduler's following job from the current one, so a
    /// scheduler whose job was lost never fires again until it is re-added.
    #[serde(skip)]
    pub next_exists: Option<bool>,
}

/// One planned change and what it needs.
struct Step {
    change: Change,
    desired: Option<DesiredScheduler>,
    /// Remove the scheduler before adding it again (its next run is lost).
    recreate: bool,
}

/// One change made (or, in a dry run, to be made) to a queue.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub region: String,
    pub action: Action,
    /// The scheduler or job id.
    pub id: String,
    /// The monitor's name, when it still exists.
    pub monitor: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// A scheduler the queue lacks.
    Add,
    /// A scheduler whose timing or job data differs from the database.
    Reschedule,
    /// A scheduler of a monitor that no longer runs in the region.
    Remove,
    /// A waiting job of a monitor that no longer runs in the region.
    RemoveJob,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Reschedule => "reschedule",
            Action::Remove => "remove",
            Action::RemoveJob => "remove-job",
        }
    }
}

/// What a reconcile did to one region's queue.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub region: String,
    pub changes: Vec<Change>,
    /// Schedulers already as the database says.
    pub unchanged: usize,
    /// Schedulers on the queue that geoctl did not create (left alone).
    pub foreign: usize,
}

/// Every scheduler on the queue, in two round trips.
pub async fn list_schedulers(queue: &RegionQueue) -> Result<Vec<FoundScheduler>, QueueError> {
    let keys = queue.bull().keys();
    let mut conn = queue.connection();
    let ids: Vec<(String, f64)> = queue
        .redis(
            "listing job schedulers",
            redis::cmd("ZRANGE").arg(keys.repeat()).arg(0).arg(-1).arg("WITHSCORES").query_async(&mut conn),
        )
        .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for (id, score) in &ids {
        pipe.hgetall(format!("{}repeat:{id}", keys.key_prefix()));
        pipe.exists(keys.job_key(&format!("repeat:{id}:{}", *score as u64)));
    }
    let replies: Vec<redis::Value> = queue.redis("reading job schedulers", pipe.query_async(&mut conn)).await?;
    let mut replies = replies.into_iter();
    let mut out = Vec::with_capacity(ids.len());
    for (id, score) in ids {
        let fields: HashMap<String, String> =
            replies.next().and_then(|v| redis::from_redis_value(v).ok()).unwrap_or_default();
        let exists: bool = replies.next().and_then(|v| redis::from_redis_value(v).ok()).unwrap_or(false);
        let mut f = found(id, Some(score as u64), &fields);
        f.next_exists = Some(exists);
        out.push(f);
    }
    Ok(out)
}

fn found(id: String, next: Option<u64>, fields: &HashMap<String, String>) -> FoundScheduler {
    let timing = match (fields.get("every").and_then(|v| v.parse().ok()), fields.get("pattern")) {
        (Some(every), _) => Some(Timing::Every(every)),
        (None, Some(pattern)) => Some(Timing::Cron(pattern.clone())),
        (None, None) => None,
    };
    FoundScheduler {
        id,
        name: fields.get("name").cloned().unwrap_or_default(),
        timing,
        data: fields.get("data").and_then(|d| serde_json::from_str(d).ok()),
        next,
        next_exists: None,
    }
}

/// One scheduler by id (`None` when absent).
async fn get_scheduler(queue: &RegionQueue, id: &str) -> Result<Option<FoundScheduler>, QueueError> {
    let found = queue.run("reading a job scheduler", queue.bull().get_job_scheduler(id)).await?;
    Ok(found.map(|s| FoundScheduler {
        id: s.key,
        name: s.name,
        timing: s.every.map(Timing::Every).or(s.pattern.map(Timing::Cron)),
        data: s.data,
        next: s.next,
        next_exists: None,
    }))
}

/// The changes that make `found` match `desired`, for the monitors `in_scope`
/// accepts (schedulers of other monitors and foreign schedulers are left alone).
fn plan(
    region: &str,
    desired: &[DesiredScheduler],
    found: &[FoundScheduler],
    names: &HashMap<Uuid, String>,
    in_scope: impl Fn(Uuid) -> bool,
) -> (Vec<Step>, usize) {
    let found_by_id: HashMap<&str, &FoundScheduler> = found.iter().map(|f| (f.id.as_str(), f)).collect();
    let desired_ids: HashSet<&str> = desired.iter().map(|d| d.id.as_str()).collect();
    let mut changes = Vec::new();
    let mut unchanged = 0;
    for d in desired.iter().filter(|d| in_scope(d.monitor)) {
        let change = |action, detail: String| Change {
            region: region.into(),
            action,
            id: d.id.clone(),
            monitor: Some(d.monitor_name.clone()),
            detail,
        };
        match found_by_id.get(d.id.as_str()) {
            None => changes.push(Step {
                change: change(Action::Add, d.timing.describe()),
                desired: Some(d.clone()),
                recreate: false,
            }),
            Some(f) => {
                let data = serde_json::to_value(&d.data).ok();
                let lost = f.next_exists == Some(false);
                let detail = if f.timing.as_ref() != Some(&d.timing) {
                    let was = f.timing.as_ref().map_or("no timing".into(), Timing::describe);
                    Some(format!("{was} → {}", d.timing.describe()))
                } else if f.name != JOB_NAME || f.data != data {
                    Some("job data changed".to_string())
                } else if lost {
                    Some("its next run was lost".to_string())
                } else {
                    None
                };
                match detail {
                    Some(detail) => changes.push(Step {
                        change: change(Action::Reschedule, detail),
                        desired: Some(d.clone()),
                        recreate: lost,
                    }),
                    None => unchanged += 1,
                }
            }
        }
    }
    for f in found {
        let Some(monitor) = monitor_of(&f.id) else { continue };
        if desired_ids.contains(f.id.as_str()) || !in_scope(monitor) {
            continue;
        }
        let detail = if names.contains_key(&monitor) { "not scheduled here" } else { "monitor deleted" };
        changes.push(Step {
            change: Change {
                region: region.into(),
                action: Action::Remove,
                id: f.id.clone(),
                monitor: names.get(&monitor).cloned(),
                detail: detail.into(),
            },
            desired: None,
            recreate: false,
        });
    }
    (changes, unchanged)
}

/// Applies planned changes, [`CONCURRENCY`] at a time: schedulers first, then the jobs to
/// remove, because BullMQ refuses to remove a run while its scheduler still exists.
async fn apply(queue: &RegionQueue, planned: &[Step]) -> Result<(), QueueError> {
    let (jobs, schedulers): (Vec<&Step>, Vec<&Step>) =
        planned.iter().partition(|step| step.change.action == Action::RemoveJob);
    apply_concurrently(queue, &schedulers).await?;
    apply_concurrently(queue, &jobs).await
}

async fn apply_concurrently(queue: &RegionQueue, steps: &[&Step]) -> Result<(), QueueError> {
    stream::iter(steps.iter().copied().map(Ok))
        .try_for_each_concurrent(CONCURRENCY, |Step { change, desired, recreate }| async move {
            match (change.action, desired) {
                (Action::Add | Action::Reschedule, Some(d)) => {
                    if *recreate {
                        queue.run("removing a job scheduler", queue.bull().remove_job_scheduler(&d.id)).await?;
                    }
                    let data = serde_json::to_value(&d.data).unwrap_or(Value::Null);
                    let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
                    let op = queue.bull().upsert_job_scheduler(
                        &d.id,
                        d.timing.repeat_options_from(d.monitor, now_ms),
                        Some(JOB_NAME),
                        Some(data),
                        Some(job_options()),
                    );
                    queue.run("adding a job scheduler", op).await.map(drop)
                }
                (Action::Remove, _) => {
                    queue.run("removing a job scheduler", queue.bull().remove_job_scheduler(&change.id)).await.map(drop)
                }
                (Action::RemoveJob, _) => queue.run("removing a job", queue.bull().remove(&change.id)).await.map(drop),
                (Action::Add | Action::Reschedule, None) => Ok(()),
            }
        })
        .await
}

/// Makes one region's queue match the database: adds missing schedulers,
/// reschedules changed ones, removes those of monitors that no longer run
/// there (deleted, paused, region removed) and their waiting jobs. Schedulers
/// geoctl did not create are left alone and counted. With `dry_run` nothing is
/// written and the report says what would change.
///
/// `queue sync` runs it for each region; agents run it at start and after
/// every reconnect, so a wiped Redis heals without an operator.
pub async fn reconcile(queue: &RegionQueue, wanted: &Wanted, dry_run: bool) -> Result<SyncReport, QueueError> {
    let region = queue.region.clone();
    let desired = wanted.schedulers(&region, queue.lane);
    let found = list_schedulers(queue).await?;
    let names: HashMap<Uuid, String> = wanted.monitors.iter().map(|m| (m.id, m.name.clone())).collect();
    let (mut planned, unchanged) = plan(&region, &desired, &found, &names, |_| true);
    let foreign = found.iter().filter(|f| monitor_of(&f.id).is_none()).count();

    let scheduled: HashSet<Uuid> = desired.iter().map(|d| d.monitor).collect();
    planned.extend(orphan_jobs(queue, &names, |m| !scheduled.contains(&m)).await?);
    if !dry_run {
        apply(queue, &planned).await?;
    }
    Ok(SyncReport { region, changes: planned.into_iter().map(|s| s.change).collect(), unchanged, foreign })
}

/// [`reconcile`] for both lanes of `queue`'s region, one report: what `queue sync` and every
/// agent run, so a monitor that moved lanes leaves the one queue as it joins the other.
pub async fn reconcile_region(queue: &RegionQueue, wanted: &Wanted, dry_run: bool) -> Result<SyncReport, QueueError> {
    let mut total: Option<SyncReport> = None;
    for lane in Lane::ALL {
        let lane_queue = queue.lane(lane).await?;
        let report = reconcile(&lane_queue, wanted, dry_run).await;
        if lane != queue.lane {
            lane_queue.close().await;
        }
        let report = report?;
        match total.as_mut() {
            None => total = Some(report),
            Some(total) => {
                total.changes.extend(report.changes);
                total.unchanged += report.unchanged;
                total.foreign += report.foreign;
            }
        }
    }
    Ok(total.expect("two lanes"))
}

/// Removal steps for the waiting, delayed and prioritized jobs of geoctl's
/// schedulers whose monitor `orphaned` says no longer runs in this region
/// (removing a scheduler leaves a run that is already due). Active jobs are
/// left to finish.
async fn orphan_jobs(
    queue: &RegionQueue,
    names: &HashMap<Uuid, String>,
    orphaned: impl Fn(Uuid) -> bool,
) -> Result<Vec<Step>, QueueError> {
    let keys = queue.bull().keys();
    let mut pipe = redis::pipe();
    pipe.lrange(keys.wait(), 0, -1).lrange(keys.paused(), 0, -1).zrange(keys.delayed(), 0, -1).zrange(
        keys.prioritized(),
        0,
        -1,
    );
    let mut conn = queue.connection();
    let lists: Vec<Vec<String>> = queue.redis("listing waiting jobs", pipe.query_async(&mut conn)).await?;
    let mut orphans: Vec<String> = lists
        .into_iter()
        .flatten()
        .filter(|id| id.starts_with("repeat:") && monitor_of(id).is_some_and(&orphaned))
        .collect();
    orphans.sort();
    orphans.dedup();
    Ok(orphans
        .into_iter()
        .map(|job_id| {
            let monitor = monitor_of(&job_id).and_then(|m| names.get(&m).cloned());
            let detail = if monitor.is_some() { "not scheduled here" } else { "monitor deleted" };
            Step {
                change: Change {
                    region: queue.region.clone(),
                    action: Action::RemoveJob,
                    id: job_id,
                    monitor,
                    detail: detail.into(),
                },
                desired: None,
                recreate: false,
            }
        })
        .collect())
}

/// One monitor a command changed: its state after the change (`None` when
/// deleted) and the regions it ran in before.
#[derive(Debug, Clone)]
pub struct Touched {
    pub id: Uuid,
    pub after: Option<Monitor>,
    pub regions_before: Vec<String>,
}

/// A region whose queue could not follow the change.
#[derive(Debug, Clone, Serialize)]
pub struct NotScheduled {
    pub region: String,
    pub reason: String,
    /// Configuration, not an outage: no Redis set for the region.
    pub not_configured: bool,
}

/// What [`follow`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FollowReport {
    pub changes: Vec<Change>,
    pub not_scheduled: Vec<NotScheduled>,
}

/// Reschedules the monitors a command just changed, in the regions concerned
/// (those they ran in before or run in now). A region whose Redis is not
/// configured or unreachable is reported, never an error: the database write
/// stands and `queue sync` (or the region's agent) catches up.
pub async fn follow(settings: &Settings, pool: &PgPool, touched: &[Touched]) -> FollowReport {
    let mut report = FollowReport::default();
    let active: BTreeSet<String> = match RegionStore::active_codes(pool).await {
        Ok(codes) => codes.into_iter().collect(),
        Err(e) => {
            report.not_scheduled.push(NotScheduled {
                region: "*".into(),
                reason: format!("cannot read the active regions: {e}"),
                not_configured: false,
            });
            return report;
        }
    };
    let mut by_region: BTreeMap<String, Vec<&Touched>> = BTreeMap::new();
    for t in touched {
        let now = t.after.iter().flat_map(|m| m.regions.iter().map(|r| r.region.clone()));
        let concerned: BTreeSet<String> = t.regions_before.iter().cloned().chain(now).collect();
        for region in concerned {
            by_region.entry(region).or_default().push(t);
        }
    }
    let results = stream::iter(by_region)
        .map(|(region, monitors)| {
            let active = active.contains(&region);
            async move {
                let outcome = follow_region(settings, &region, active, &monitors).await;
                (region, outcome)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    for (region, outcome) in results {
        match outcome {
            Ok(changes) => report.changes.extend(changes),
            Err(e) => report.not_scheduled.push(NotScheduled {
                region,
                not_configured: matches!(e, QueueError::NoRedis { .. }),
                reason: e.to_string(),
            }),
        }
    }
    report.changes.sort_by(|a, b| (&a.region, &a.id).cmp(&(&b.region, &b.id)));
    report.not_scheduled.sort_by(|a, b| a.region.cmp(&b.region));
    report
}

async fn follow_region(
    settings: &Settings,
    region: &str,
    active: bool,
    monitors: &[&Touched],
) -> Result<Vec<Change>, QueueError> {
    let endpoint = RedisEndpoint::resolve(settings, region)?;
    let mut changes = Vec::new();
    // Both lanes: a monitor whose script gained or lost browser steps moves between them.
    for lane in Lane::ALL {
        let queue = RegionQueue::connect_lane(&endpoint, &settings.tuning, lane).await?;
        let followed = follow_lane(&queue, active, monitors).await;
        queue.bull().close().await;
        changes.extend(followed?);
    }
    Ok(changes)
}

async fn follow_lane(queue: &RegionQueue, active: bool, monitors: &[&Touched]) -> Result<Vec<Change>, QueueError> {
    let region = queue.region.as_str();
    let desired: Vec<DesiredScheduler> = monitors
        .iter()
        .filter_map(|t| t.after.as_ref())
        .filter(|m| Lane::of(m) == queue.lane)
        .filter_map(|m| desired_scheduler(m, region, active))
        .collect();
    let mut found = Vec::new();
    for t in monitors {
        found.extend(get_scheduler(queue, &super::scheduler_id(t.id)).await?);
    }
    let names: HashMap<Uuid, String> =
        monitors.iter().filter_map(|t| t.after.as_ref().map(|m| (m.id, m.name.clone()))).collect();
    let scope: HashSet<Uuid> = monitors.iter().map(|t| t.id).collect();
    let (mut planned, _) = plan(region, &desired, &found, &names, |m| scope.contains(&m));
    let kept: HashSet<Uuid> = desired.iter().map(|d| d.monitor).collect();
    planned.extend(orphan_jobs(queue, &names, |m| scope.contains(&m) && !kept.contains(&m)).await?);
    apply(queue, &planned).await?;
    Ok(planned.into_iter().map(|s| s.change).collect())
}
