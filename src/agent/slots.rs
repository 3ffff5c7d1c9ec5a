//! Check slots: `--concurrency` bounds the checks an agent runs at once, not
//! the jobs it holds.
//!
//! A job is acknowledged only once its result is durable (its batch committed,
//! or fsynced to the spool), so a crash never loses an acknowledged run. That
//! wait belongs to the recorder, not to the check: while a job waits for its
//! batch, it lends its check slot to the worker, which may take one more job
//! in its place. The worker's own concurrency is raised by one for each job
//! waiting and lowered when the job gives its slot back, so a new job is taken
//! only when a check slot is free: jobs never queue inside an agent behind busy
//! checks, where another agent of the region could have run them.
//!
//! At most `most_waiting` jobs wait at once; beyond that a job keeps
//! its slot while it waits, which slows taking new jobs down to the pace at
//! which results are stored (for instance while the database is slow).

use std::sync::{Arc, Mutex, OnceLock, Weak};

/// The check slots of one worker.
pub struct Slots {
    /// Checks run at once (`--concurrency`).
    checks: usize,
    /// Most jobs waiting for their results to be stored with their slot lent.
    most_waiting: usize,
    /// Jobs waiting with their slot lent.
    waiting: Mutex<usize>,
    /// Weak: the worker's processor holds the slots.
    worker: OnceLock<Weak<bullmq::Worker>>,
}

/// A lent check slot, given back when dropped.
#[must_use = "the slot is given back when the lease is dropped"]
pub struct Lease(Option<Arc<Slots>>);

impl Slots {
    pub fn new(checks: usize, most_waiting: usize) -> Arc<Self> {
        Arc::new(Slots { checks: checks.max(1), most_waiting, waiting: Mutex::new(0), worker: OnceLock::new() })
    }

    /// The worker whose concurrency the slots steer. Jobs that finish their
    /// checks before it is attached keep their slots while they wait.
    pub fn attach(&self, worker: &Arc<bullmq::Worker>) {
        let _ = self.worker.set(Arc::downgrade(worker));
    }

    /// Lends the calling job's check slot to the worker while the job waits
    /// for its result to be stored.
    pub fn lend(self: &Arc<Self>) -> Lease {
        let Some(worker) = self.worker.get().and_then(Weak::upgrade) else { return Lease(None) };
        let mut waiting = self.lock();
        if *waiting >= self.most_waiting {
            return Lease(None);
        }
        *waiting += 1;
        worker.set_concurrency(self.checks + *waiting);
        Lease(Some(self.clone()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, usize> {
        self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(slots) = self.0.take() else { return };
        let mut waiting = slots.lock();
        *waiting -= 1;
        if let Some(worker) = slots.worker.get().and_then(Weak::upgrade) {
            worker.set_concurrency(slots.checks + *waiting);
        }
    }
}
