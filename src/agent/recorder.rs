//! The recorder: one task that writes the agent's results in batches, or
//! spools them when PostgreSQL cannot take them, and writes the spool back in
//! order once it can.
//!
//! A job finishes only after its result is durable — committed, or fsynced to
//! the spool — so a crash never loses an acknowledged run. Batches form by
//! themselves: whatever arrived while the previous write was in flight is the
//! next batch, and a small one waits up to [`LINGER`] for company, so a lone
//! job is written within a few milliseconds and a busy agent writes in large
//! batches.
//!
//! Writes go over one connection of the recorder's own, kept open between
//! batches: a batch costs one round trip ([`results::record_on`]), where a
//! pooled connection would add a ping when taken and another when given back.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::metrics::Metrics;
use super::spool::Spool;
use super::Health;
use crate::results::{self, NewResult};

/// Most results written in one batch.
pub const MAX_BATCH: usize = 500;
/// A batch smaller than this waits up to [`LINGER`] for more results before it is written: one
/// statement's fixed cost is most of a small batch's (jobs lend their check slot while they wait,
/// see [`super::slots`], so waiting costs the queue nothing but latency).
pub const LINGER_FILL: usize = 32;
/// The longest a result waits for others to share its batch.
pub const LINGER: Duration = Duration::from_millis(2);
/// How long to wait between attempts to write the spool back while the
/// database refuses connections.
const RETRY_EVERY: Duration = Duration::from_millis(500);
/// Longest wait for one write. A write that timed out may still have been
/// committed; spooling it again is harmless (run keys keep results single).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the recorder makes sure today's and tomorrow's day partitions exist (a catalog
/// look when they do), so results keep landing in their day's partition when no one runs
/// `geoctl db maintain`.
const DAYS_AHEAD_EVERY: Duration = Duration::from_secs(3600);

/// Where a result ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Written,
    Spooled,
}

struct Submission {
    result: NewResult,
    done: oneshot::Sender<Result<Stored, String>>,
}

enum Message {
    Submit(Box<Submission>),
    /// Store everything handed in before, then end.
    Stop,
}

/// The handle jobs use to hand in their results.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Message>,
}

impl Recorder {
    /// Starts the recorder task. It ends at [`stop`](Self::stop) (or when
    /// every handle is dropped), after storing what it was given and, if the
    /// database is there, writing the spool.
    pub fn start(
        pool: PgPool,
        spool: Spool,
        health: Arc<Health>,
        metrics: Arc<Metrics>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        metrics.spool_depth.store(spool.depth() as u64, Ordering::Relaxed);
        let task = Task { pool, conn: None, spool, health, metrics, rx };
        (Recorder { tx }, tokio::spawn(task.run()))
    }

    /// Hands in a result and waits until it is durable.
    pub async fn record(&self, result: NewResult) -> Result<Stored, String> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Message::Submit(Box::new(Submission { result, done })))
            .await
            .map_err(|_| "the recorder has stopped".to_string())?;
        wait.await.map_err(|_| "the recorder stopped before the result was stored".to_string())?
    }

    /// Asks the recorder to store what it has and end.
    pub async fn stop(&self) {
        let _ = self.tx.send(Message::Stop).await;
    }
}

struct Task {
    /// For the spool's lookups.
    pool: PgPool,
    /// The connection writes go over, opened at the first write and after a failed one.
    conn: Option<PgConnection>,
    spool: Spool,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    rx: mpsc::Receiver<Message>,
}

/// What a failed write means for the rows in it.
enum Failure {
    /// The database is not there (connection, timeout, shutdown): try again later.
    Transient(String),
    /// The database refuses these rows (constraint, bad value): retrying will not help.
    Refused(String),
}

impl Task {
    async fn run(mut self) {
        let mut messages: Vec<Message> = Vec::with_capacity(MAX_BATCH);
        let mut retry = tokio::time::interval(RETRY_EVERY);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut days_ahead = tokio::time::interval(DAYS_AHEAD_EVERY);
        days_ahead.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if !self.spool.is_empty() && self.health.db_ok() {
                self.drain_spool().await;
            }
            tokio::select! {
                received = self.rx.recv_many(&mut messages, MAX_BATCH) => {
                    let mut stop = received == 0;
                    if !stop {
                        self.linger(&mut messages).await;
                    }
                    let mut batch = Vec::with_capacity(messages.len());
                    for message in messages.drain(..) {
                        match message {
                            Message::Submit(submission) => batch.push(*submission),
                            Message::Stop => stop = true,
                        }
                    }
                    if !batch.is_empty() {
                        self.store(batch).await;
                    }
                    if stop {
                        break;
                    }
                }
                _ = retry.tick(), if !self.spool.is_empty() => {}
                _ = days_ahead.tick() => {
                    // Beside the writes, which never wait on it: a result for a day without its
                    // partition lands in the default one anyway.
                    let pool = self.pool.clone();
                    tokio::spawn(async move {
                        let today = chrono::Utc::now().date_naive();
                        if let Err(e) = crate::store::partition::maintain(&pool, today, 1).await {
                            tracing::warn!("could not create tomorrow's result partitions: {e}");
                        }
                    });
                }
            }
        }
        if !self.spool.is_empty() && self.health.db_ok() {
            self.drain_spool().await;
        }
        if !self.spool.is_empty() {
            tracing::warn!(
                rows = self.spool.depth(),
                "exiting with results in the spool; they are written at the next start"
            );
        }
    }

    /// Waits up to [`LINGER`] for a small batch to grow to [`LINGER_FILL`]; not at all once a stop
    /// is asked for.
    async fn linger(&mut self, messages: &mut Vec<Message>) {
        let deadline = tokio::time::Instant::now() + LINGER;
        while messages.len() < LINGER_FILL && !messages.iter().any(|m| matches!(m, Message::Stop)) {
            let room = MAX_BATCH - messages.len();
            match tokio::time::timeout_at(deadline, self.rx.recv_many(messages, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    /// Writes a batch straight to the database when nothing is spooled ahead
    /// of it, else (or when the write fails) appends it to the spool.
    async fn store(&mut self, batch: Vec<Submission>) {
        let (rows, waiting): (Vec<NewResult>, Vec<_>) = batch.into_iter().map(|s| (s.result, s.done)).unzip();
        self.metrics.observe_batch(rows.len());
        let mut outcome = Err(String::new());
        if self.spool.is_empty() && self.health.db_ok() {
            match self.write(&rows).await {
                Ok(()) => outcome = Ok(Stored::Written),
                Err(Failure::Transient(e)) => {
                    tracing::warn!(error = %e, rows = rows.len(), "database write failed; spooling")
                }
                Err(Failure::Refused(e)) => {
                    tracing::warn!(error = %e, rows = rows.len(), "database refused a batch; spooling it to sort out row by row")
                }
            }
        }
        if outcome.is_err() {
            outcome =
                self.spool.push(&rows).map(|()| Stored::Spooled).map_err(|e| format!("cannot spool results: {e}"));
            self.publish_spool();
        }
        for done in waiting {
            let _ = done.send(outcome.clone());
        }
    }

    /// Writes spooled batches, oldest first, until the spool is empty or the
    /// database fails again.
    async fn drain_spool(&mut self) {
        loop {
            let (seq, rows) = match self.spool.oldest() {
                Ok(Some(next)) => next,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the spool");
                    break;
                }
            };
            match self.write_spooled(seq, &rows).await {
                Ok(()) => {
                    if let Err(e) = self.spool.remove_oldest(seq) {
                        tracing::error!(error = %e, "cannot remove a written spool file");
                        break;
                    }
                    tracing::info!(rows = rows.len(), left = self.spool.depth(), "spooled results written");
                }
                Err(e) => {
                    tracing::warn!(error = %e, left = self.spool.depth(), "spool not written yet");
                    break;
                }
            }
            self.publish_spool();
        }
        self.publish_spool();
    }

    /// One spooled batch: rows of deleted monitors and rows the database
    /// refuses are set aside; the rest are written. Errors only when the
    /// database is unreachable (the batch stays spooled).
    async fn write_spooled(&mut self, seq: u64, rows: &[NewResult]) -> Result<(), String> {
        let ids: Vec<Uuid> = rows.iter().map(|r| r.monitor_id).collect();
        let existing: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM monitors WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.lost_database(e.to_string()))?;
        let mut keep = Vec::with_capacity(rows.len());
        for (index, row) in rows.iter().enumerate() {
            if existing.contains(&row.monitor_id) {
                keep.push((index, row.clone()));
            } else {
                self.set_aside(seq, index, row, "its monitor was deleted before the result could be written")?;
            }
        }
        let batch: Vec<NewResult> = keep.iter().map(|(_, r)| r.clone()).collect();
        match self.write(&batch).await {
            Ok(()) => Ok(()),
            Err(Failure::Transient(e)) => Err(e),
            Err(Failure::Refused(_)) => {
                // Find the rows at fault: each alone (a row already written
                // again is harmless, its run key keeps it single).
                for (index, row) in keep {
                    match self.write(std::slice::from_ref(&row)).await {
                        Ok(()) => {}
                        Err(Failure::Transient(e)) => return Err(e),
                        Err(Failure::Refused(reason)) => self.set_aside(seq, index, &row, &reason)?,
                    }
                }
                Ok(())
            }
        }
    }

    fn set_aside(&mut self, seq: u64, index: usize, row: &NewResult, reason: &str) -> Result<(), String> {
        self.spool.reject(seq, index, row, reason).map_err(|e| format!("cannot set a refused row aside: {e}"))?;
        self.metrics.spool_rejected.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn write(&mut self, rows: &[NewResult]) -> Result<(), Failure> {
        let reused = self.conn.is_some();
        let mut written = self.write_once(rows).await;
        if reused && matches!(&written, Err(e) if !is_refusal(e) && !matches!(e, sqlx::Error::PoolTimedOut)) {
            // The kept connection may have died while idle (PostgreSQL restarted, a proxy closed
            // it): once more on a new one. Had the first attempt committed after all, this one
            // writes nothing again: the agent's results all carry run keys.
            written = self.write_once(rows).await;
        }
        match written {
            Ok(_) => Ok(()),
            Err(e) if is_refusal(&e) => Err(Failure::Refused(e.to_string())),
            Err(e) => Err(Failure::Transient(self.lost_database(e.to_string()))),
        }
    }

    /// One attempt on the kept connection (opened when there is none), within [`WRITE_TIMEOUT`].
    /// The connection is kept only when it worked or the server refused the rows: after any
    /// other failure, or a timeout, it may be half-way through a message.
    async fn write_once(&mut self, rows: &[NewResult]) -> Result<u64, sqlx::Error> {
        let attempt = async {
            let mut conn = match self.conn.take() {
                Some(conn) => conn,
                None => results::recording_connection(&self.pool).await?,
            };
            let written = results::record_on(&mut conn, rows).await;
            if written.as_ref().map_or_else(is_refusal, |_| true) {
                self.conn = Some(conn);
            }
            written
        };
        tokio::time::timeout(WRITE_TIMEOUT, attempt).await.unwrap_or(Err(sqlx::Error::PoolTimedOut))
    }

    /// Marks the database down until the health watcher sees it again.
    fn lost_database(&self, error: String) -> String {
        self.health.set_db(false);
        error
    }

    fn publish_spool(&self) {
        self.metrics.spool_depth.store(self.spool.depth() as u64, Ordering::Relaxed);
        self.metrics.spool_dropped.store(self.spool.dropped(), Ordering::Relaxed);
    }
}

/// Data exceptions (class 22) and integrity violations (class 23) are the
/// rows' fault; anything else (connections, timeouts, shutdowns, locks) is
/// the database's state and passes.
fn is_refusal(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| code.starts_with("22") || code.starts_with("23")),
        _ => false,
    }
}
