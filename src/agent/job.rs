//! One job, start to end: read the monitor's current definition, plan the
//! check for this region, run it, hand the result to the recorder.
//!
//! A target that is down is a result and a completed job. A job whose monitor
//! was deleted, paused or taken out of this region completes without a result.
//! Only the agent's own failures (no definition to run, a result it could not
//! store) fail the job, so the queue retries it.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::definitions::{Definition, Definitions, Source};
use super::metrics::{Metrics, Outcome};
use super::recorder::Recorder;
use super::slots::Slots;
use super::Health;
use crate::geo::GeoDb;
use crate::monitor::check;
use crate::probe;
use crate::results::NewResult;

/// The parts of a queue job the agent uses.
#[derive(Debug, Clone)]
pub struct JobRef {
    pub id: String,
    pub data: Value,
    /// When the job was due (ms since the epoch), when known.
    pub due_ms: Option<i64>,
}

impl JobRef {
    pub fn from_bull(job: &bullmq::Job) -> Self {
        let scheduled = scheduled_ms(job.id());
        let due = scheduled.or_else(|| {
            let created = i64::try_from(job.timestamp()).ok().filter(|t| *t > 0)?;
            Some(created + job.opts().delay.unwrap_or(0) as i64)
        });
        JobRef { id: job.id().to_string(), data: job.data().clone(), due_ms: due }
    }
}

/// The scheduled time of a scheduler's job, from its id `repeat:<scheduler>:<ms>`.
pub fn scheduled_ms(job_id: &str) -> Option<i64> {
    let rest = job_id.strip_prefix("repeat:")?;
    rest.rsplit_once(':')?.1.parse().ok()
}

/// The idempotency key of one run: monitor, region and scheduled time, so a
/// retried, recovered or replayed run is still one row. A job that no
/// scheduler made is keyed by its own id.
pub fn run_key(monitor: Uuid, region: &str, job_id: &str) -> String {
    match scheduled_ms(job_id) {
        Some(ms) => format!("{monitor}:{region}:{ms}"),
        None => format!("{monitor}:{region}:job:{job_id}"),
    }
}

/// Why the agent could not do its part of a job.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("cannot read monitor {monitor} (and no earlier copy of it is cached): {reason}")]
    NoDefinition { monitor: Uuid, reason: String },
    #[error("result of monitor {monitor} not stored: {reason}")]
    NotStored { monitor: Uuid, reason: String },
}

impl crate::error::Coded for JobError {
    fn exit(&self) -> crate::error::Exit {
        match self {
            JobError::NoDefinition { .. } | JobError::NotStored { .. } => crate::error::Exit::Failed,
        }
    }
}

/// How checks are run: for real, or (benchmarks only) an instant success
/// that leaves the rest of the job's work — lookup, recording, metrics — as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeMode {
    Real,
    Instant,
}

pub struct Runner {
    region: String,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    mode: ProbeMode,
    geo: Arc<GeoDb>,
    /// The definitions runs use: kept until PostgreSQL says they changed, and
    /// the last ones read while it is unreachable.
    definitions: Arc<Definitions>,
    /// Where a job lends its check slot while its result is stored.
    slots: Option<Arc<Slots>>,
}

/// Longest wait for a monitor's definition before falling back to the cached one.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

impl Runner {
    pub fn new(
        region: &str,
        pool: PgPool,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        mode: ProbeMode,
        geo: Arc<GeoDb>,
    ) -> Self {
        let definitions = Definitions::new(pool, region);
        Runner { region: region.to_string(), recorder, metrics, health, mode, geo, definitions, slots: None }
    }

    /// Jobs lend their check slot to `slots` while their results are stored.
    pub fn lending(mut self, slots: Arc<Slots>) -> Self {
        self.slots = Some(slots);
        self
    }

    /// The definitions this runner uses; [`Definitions::listen`] keeps them current.
    pub fn definitions(&self) -> Arc<Definitions> {
        self.definitions.clone()
    }

    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    pub async fn run(&self, job: &JobRef) -> Result<Outcome, JobError> {
        let started = Utc::now();
        if let Some(due) = job.due_ms {
            self.metrics.observe_lateness((started.timestamp_millis() - due) as f64 / 1000.0);
        }
        let outcome = self.run_inner(job).await;
        self.metrics.count_job(*outcome.as_ref().unwrap_or(&Outcome::Failed));
        outcome
    }

    async fn run_inner(&self, job: &JobRef) -> Result<Outcome, JobError> {
        let slot = match &self.slots {
            Some(slots) => Some(slots.check().await),
            None => None,
        };
        let monitor_id = job
            .data
            .get("monitorId")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
            .or_else(|| crate::queue::monitor_of(&job.id));
        let Some(monitor_id) = monitor_id else {
            tracing::warn!(job = %job.id, "job names no monitor (data.monitorId); completed without a result");
            return Ok(Outcome::Skipped);
        };
        let Some(definition) = self.definition(monitor_id).await? else {
            tracing::info!(job = %job.id, monitor = %monitor_id, "monitor deleted; job completed without a result");
            self.metrics.forget(monitor_id);
            return Ok(Outcome::Skipped);
        };
        let monitor = &definition.monitor;
        if crate::queue::desired_scheduler(monitor, &self.region, true).is_none() {
            tracing::info!(job = %job.id, monitor = %monitor.name, region = %self.region,
                "monitor paused or not assigned to this region; job completed without a result");
            self.metrics.forget(monitor_id);
            return Ok(Outcome::Skipped);
        }
        let plan = match definition.plan() {
            Ok(plan) => plan,
            Err(e) => {
                tracing::warn!(job = %job.id, monitor = %monitor.name, error = %e, "monitor cannot be checked; job completed without a result");
                return Ok(Outcome::Skipped);
            }
        };
        let mut result = match self.mode {
            ProbeMode::Real => {
                let trace = plan
                    .trace
                    .as_ref()
                    .is_some_and(|(_, every)| check::trace_due(job.due_ms, monitor.interval_seconds, *every));
                let (result, measured) =
                    crate::results::run::run(plan, monitor.id, &self.region, &self.geo, trace).await;
                if let crate::results::run::Measured::Probe(_, Some(route)) = &measured {
                    if let Some(failure) = route.failure.as_ref().filter(|f| f.kind == probe::FailureKind::NotPermitted)
                    {
                        tracing::warn!(monitor = %monitor.name, error = %failure, "route not traced; recorded without one");
                    }
                }
                result
            }
            ProbeMode::Instant => instant_result(monitor.id, &self.region),
        };
        result.run_key = Some(run_key(monitor.id, &self.region, &job.id));
        self.metrics.observe_probe(&monitor.name, &result);
        let up = result.up;
        let _lease = self.slots.as_ref().zip(slot).map(|(slots, slot)| slots.lend(&job.id, slot));
        self.recorder.record(result).await.map_err(|reason| JobError::NotStored { monitor: monitor.id, reason })?;
        Ok(if up { Outcome::Up } else { Outcome::Down })
    }

    /// The monitor's current definition; the last one read while the database
    /// is unreachable; `None` when it was deleted.
    async fn definition(&self, id: Uuid) -> Result<Option<Arc<Definition>>, JobError> {
        let last_known = |reason: String| {
            self.definitions.last_known(id).map(Some).ok_or(JobError::NoDefinition { monitor: id, reason })
        };
        if !self.health.db_ok() {
            return last_known("PostgreSQL is unreachable".into());
        }
        match tokio::time::timeout(LOOKUP_TIMEOUT, self.definitions.get(id)).await {
            Ok(Ok((monitor, source))) => {
                let counter = match source {
                    Source::Cache => &self.metrics.definitions_cached,
                    Source::Database => &self.metrics.definitions_read,
                };
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(monitor)
            }
            Ok(Err(e)) => last_known(e.to_string()),
            Err(_) => {
                last_known(format!("no answer from PostgreSQL within {}", crate::duration::format(LOOKUP_TIMEOUT)))
            }
        }
    }
}

/// What `ProbeMode::Instant` records: an up check that took no time.
fn instant_result(monitor: Uuid, region: &str) -> NewResult {
    let mut measured = probe::ProbeResult::new(probe::ProbeKind::Http, String::new(), Utc::now());
    measured.up = true;
    NewResult::from_probe(monitor, region, &measured)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_runs_are_keyed_by_their_scheduled_time() {
        let id = Uuid::parse_str("7f1d5c36-5b8e-4d35-9d51-6b4d6f0c9a11").unwrap();
        let job = format!("repeat:monitor-{id}:1764331200000");
        assert_eq!(scheduled_ms(&job), Some(1_764_331_200_000));
        assert_eq!(run_key(id, "eu-west", &job), format!("{id}:eu-west:1764331200000"));
        assert_eq!(run_key(id, "eu-west", "42"), format!("{id}:eu-west:job:42"));
        assert_eq!(scheduled_ms("42"), None);
    }
}
