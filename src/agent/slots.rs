//! Check slots: `--concurrency` bounds the checks an agent runs at once, not
//! the jobs it holds.
//!
//! A job is acknowledged only once its result is durable (its batch committed,
//! or fsynced to the spool), so a crash never loses an acknowledged run. That
//! wait belongs to the recorder, not to the check: while a job waits for its
//! batch, it lends its check slot to the worker, which may take one more job
//! in its place. The worker's own concurrency is raised by one for each job
//! waiting and lowered when the job gives its slot back, so a new job is taken
//! only when a check slot is free: jobs do not queue inside an agent behind busy
//! checks, where another agent of the region could have run them.
//!
//! At most `most_waiting` jobs wait at once; beyond that a job keeps
//! its slot while it waits, which slows taking new jobs down to the pace at
//! which results are stored (for instance while the database is slow).
//!
//! A job that finishes while a check slot is free takes the next job in the
//! same Redis call that completes it (BullMQ's `moveToFinished` with
//! `fetchNext`), one call and one round trip instead of two. The worker
//! chains that way only while it holds no more jobs than its concurrency, so
//! such a job keeps its place in the concurrency until the worker reports it
//! completed ([`Slots::finished`]). The check slots themselves are permits:
//! however the worker's count and the jobs it chains interleave, no more than
//! `--concurrency` checks run at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a finished job may keep its place without the worker reporting
/// it completed (a completion that failed reports no job): then it gives it up.
const FINISHING_AT_MOST: Duration = Duration::from_secs(2);

/// The check slots of one worker.
pub struct Slots {
    /// Checks run at once (`--concurrency`).
    checks: usize,
    /// One permit per check slot.
    permits: Arc<Semaphore>,
    /// Most jobs waiting for their results to be stored with their slot lent.
    most_waiting: usize,
    state: Mutex<State>,
    /// Weak: the worker's processor holds the slots.
    worker: OnceLock<Weak<bullmq::Worker>>,
}

#[derive(Default)]
struct State {
    /// Jobs waiting with their slot lent.
    waiting: usize,
    /// Jobs that finished while a check slot was free, until the worker reports them completed
    /// (with the next job taken in the same call, or none).
    finishing: HashMap<String, Instant>,
}

/// A job's check slot, held while it checks.
pub struct CheckSlot {
    _permit: OwnedSemaphorePermit,
}

/// A lent check slot, given back when dropped (when the job ends).
#[must_use = "the slot is given back when the lease is dropped"]
pub struct Lease {
    /// The slot, when it was not lent (the bound on waiting jobs was reached).
    kept: Option<CheckSlot>,
    lent: Option<(Arc<Slots>, String)>,
}

impl Slots {
    pub fn new(checks: usize, most_waiting: usize) -> Arc<Self> {
        let checks = checks.max(1);
        Arc::new(Slots {
            checks,
            permits: Arc::new(Semaphore::new(checks)),
            most_waiting,
            state: Mutex::default(),
            worker: OnceLock::new(),
        })
    }

    /// The worker whose concurrency the slots steer. Jobs that finish their
    /// checks before it is attached keep their slots while they wait.
    pub fn attach(&self, worker: &Arc<bullmq::Worker>) {
        let _ = self.worker.set(Arc::downgrade(worker));
    }

    /// A check slot for a job about to check; waits while every slot is busy
    /// (only when the worker took a job the moment another one chained one).
    pub async fn check(&self) -> CheckSlot {
        CheckSlot { _permit: self.permits.clone().acquire_owned().await.expect("check slots are never closed") }
    }

    /// Lends the calling job's check slot to the worker while the job waits
    /// for its result to be stored.
    pub fn lend(self: &Arc<Self>, job_id: &str, slot: CheckSlot) -> Lease {
        let Some(worker) = self.worker() else { return Lease { kept: Some(slot), lent: None } };
        let mut state = self.lock();
        if state.waiting >= self.most_waiting {
            return Lease { kept: Some(slot), lent: None };
        }
        drop(slot);
        state.waiting += 1;
        self.steer(&worker, &mut state);
        Lease { kept: None, lent: Some((self.clone(), job_id.to_string())) }
    }

    /// The worker completed (or failed) a job: a place it kept is given up.
    pub fn finished(&self, job_id: &str) {
        let mut state = self.lock();
        if state.finishing.remove(job_id).is_some() {
            if let Some(worker) = self.worker() {
                self.steer(&worker, &mut state);
            }
        }
    }

    /// A lent slot comes back as its job ends: the job keeps its place while
    /// the worker completes it when a check slot is free, so the worker takes
    /// the next job in the same call.
    fn give_back(&self, job_id: String) {
        let Some(worker) = self.worker() else { return };
        let mut state = self.lock();
        state.waiting -= 1;
        forget_stale(&mut state.finishing);
        if self.permits.available_permits() > state.finishing.len() {
            state.finishing.insert(job_id, Instant::now());
        }
        self.steer(&worker, &mut state);
    }

    /// The worker's concurrency: the check slots, plus the jobs lending theirs, plus the finished
    /// jobs keeping their place.
    fn steer(&self, worker: &bullmq::Worker, state: &mut State) {
        forget_stale(&mut state.finishing);
        worker.set_concurrency(self.checks + state.waiting + state.finishing.len());
    }

    fn worker(&self) -> Option<Arc<bullmq::Worker>> {
        self.worker.get().and_then(Weak::upgrade)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn forget_stale(finishing: &mut HashMap<String, Instant>) {
    let now = Instant::now();
    finishing.retain(|_, since| now.duration_since(*since) < FINISHING_AT_MOST);
}

impl Drop for Lease {
    fn drop(&mut self) {
        drop(self.kept.take());
        if let Some((slots, job_id)) = self.lent.take() {
            slots.give_back(job_id);
        }
    }
}
