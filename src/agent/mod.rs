//! `geoctl agent`: the worker that runs in each region. It takes the jobs of
//! its region's queue, runs each monitor's check from there and records the
//! result exactly once per scheduled run.
//!
//! What runs in one agent process:
//! - a BullMQ worker on `monitor-<region>` (or, with `--browser`, on
//!   `browser-<region>`: see [`crate::queue::Lane`]) with bounded concurrency,
//!   whose jobs are run by [`job::Runner`];
//! - the [`recorder`]: batched writes to PostgreSQL, an on-disk [`spool`]
//!   while the database is away;
//! - a watcher that checks Redis and PostgreSQL every second (readiness),
//!   refreshes the heartbeat, and reconciles the queue with the database at
//!   start, after Redis comes back or restarts, and periodically;
//! - the [`http`] endpoints: `/health/live`, `/health/ready`, `/metrics`.
//!
//! SIGTERM or SIGINT: stop taking jobs, let in-flight ones finish within the
//! shutdown timeout, flush the results, exit 0.

pub mod definitions;
pub mod http;
pub mod job;
pub mod metrics;
pub mod recorder;
pub mod slots;
pub mod spool;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::watch;

use crate::queue::{heartbeat, schedule, RegionQueue};
use job::{JobRef, ProbeMode, Runner};
use metrics::Metrics;
use recorder::Recorder;
use slots::Slots;
use spool::Spool;

/// How one agent runs.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub region: String,
    /// Jobs run at once.
    pub concurrency: usize,
    /// How long a job's lock lasts without renewal: after a crash, its job is
    /// run again once the lock has expired and a stall check sees it.
    pub lock_duration: Duration,
    /// How often stalled jobs (expired locks) are looked for.
    pub stalled_interval: Duration,
    pub listen: SocketAddr,
    pub spool_dir: PathBuf,
    /// Most results the spool keeps; beyond it the oldest are dropped.
    pub spool_max: usize,
    pub shutdown_timeout: Duration,
    /// Reconcile the queue with the database this often, on top of the
    /// reconciliations after a Redis restart or reconnect.
    pub resync_interval: Duration,
    pub probe_mode: ProbeMode,
    /// The GeoIP databases each result's target facts come from (opened once, shared by every job).
    pub geo: Arc<crate::geo::GeoDb>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(
        "cannot open the spool directory {dir}: {source}; set --spool-dir (AGENT_SPOOL_DIR) to a writable directory"
    )]
    Spool { dir: PathBuf, source: std::io::Error },
    #[error("cannot listen on {addr}: {source}; choose another --listen address (AGENT_LISTEN)")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot start the worker on queue {queue}: {reason}")]
    Worker { queue: String, reason: String },
    #[error("cannot install the signal handlers: {0}")]
    Signals(std::io::Error),
}

impl crate::error::Coded for AgentError {
    fn exit(&self) -> crate::error::Exit {
        use crate::error::Exit;
        match self {
            // The operator's directory setting: fix the flag.
            AgentError::Spool { .. } => Exit::Input,
            AgentError::Listen { .. } | AgentError::Worker { .. } | AgentError::Signals(_) => Exit::Failed,
        }
    }
}

/// What the readiness endpoint reports, kept current by the watcher (and by
/// the recorder the moment a write finds the database gone).
#[derive(Debug, Default)]
pub struct Health {
    redis: AtomicBool,
    db: AtomicBool,
    draining: AtomicBool,
}

impl Health {
    pub fn redis_ok(&self) -> bool {
        self.redis.load(Ordering::Relaxed)
    }
    pub fn db_ok(&self) -> bool {
        self.db.load(Ordering::Relaxed)
    }
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
    pub fn set_redis(&self, ok: bool) {
        self.redis.store(ok, Ordering::Relaxed);
    }
    pub fn set_db(&self, ok: bool) {
        self.db.store(ok, Ordering::Relaxed);
    }
}

/// Runs the agent until SIGTERM/SIGINT and returns the signal's name. `queue` is the region's
/// queue, connected; `pool` the results database.
pub async fn run(options: AgentOptions, queue: RegionQueue, pool: PgPool) -> Result<&'static str, AgentError> {
    let region = options.region.clone();
    let spool = Spool::open(&options.spool_dir, options.spool_max)
        .map_err(|source| AgentError::Spool { dir: options.spool_dir.clone(), source })?;
    if !spool.is_empty() {
        tracing::info!(rows = spool.depth(), "results from an earlier run are in the spool; writing them first");
    }
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| AgentError::Listen { addr: options.listen, source })?;
    let mut signals = Signals::install().map_err(AgentError::Signals)?;

    let health = Arc::new(Health::default());
    health.set_redis(true);
    health.set_db(true);
    let metrics = Arc::new(Metrics::new(&region));
    let (recorder, recorder_task) = Recorder::start(pool.clone(), spool, health.clone(), metrics.clone());
    let slots = Slots::new(options.concurrency, most_waiting(options.concurrency));
    let runner = Arc::new(
        Runner::new(
            &region,
            pool.clone(),
            recorder.clone(),
            metrics.clone(),
            health.clone(),
            options.probe_mode,
            options.geo.clone(),
        )
        .lending(slots.clone()),
    );

    let listen_task = tokio::spawn(runner.definitions().listen());
    let mut watcher = Watcher::new(&options, queue.clone(), pool.clone(), health.clone(), metrics.clone());
    watcher.reconcile("start").await;

    let worker = Arc::new(start_worker(&options, &queue, runner.clone()).await?);
    slots.attach(&worker);
    let events_task = tokio::spawn(drain_events(worker.clone(), slots.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let server = tokio::spawn(http::serve(listener, health.clone(), metrics.clone(), stop_rx.clone()));
    let stalled_task =
        tokio::spawn(check_stalled(queue.clone(), options.stalled_interval, metrics.clone(), stop_rx.clone()));
    let watch_task = tokio::spawn(watcher.run(stop_rx));
    tracing::info!(region = %region, queue = %queue.name(), redis = %queue.endpoint(), concurrency = options.concurrency,
        listen = %options.listen, "agent started");

    let signal = signals.next().await;
    tracing::info!(signal, timeout = %crate::duration::format(options.shutdown_timeout),
        "stopping: no new jobs, finishing the ones in flight");
    health.draining.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + options.shutdown_timeout;
    tokio::select! {
        closed = worker.close(options.shutdown_timeout.as_millis() as u64) => {
            if let Err(e) = closed {
                tracing::warn!(error = %e, "closing the worker");
            }
        }
        again = signals.next() => tracing::warn!(signal = again, "second signal: not waiting for jobs in flight"),
    }
    // Results already handed in are written (or spooled) before exit.
    recorder.stop().await;
    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(5));
    if tokio::time::timeout(left, recorder_task).await.is_err() {
        tracing::warn!("the recorder did not finish in time; unacknowledged jobs run again elsewhere");
    }
    let _ = stop_tx.send(true);
    listen_task.abort();
    events_task.abort();
    let _ = watch_task.await;
    let _ = stalled_task.await;
    let _ = server.await;
    if let Err(e) = heartbeat::clear(&queue, &watcher_id()).await {
        tracing::debug!(error = %e, "heartbeat not removed; it expires by itself");
    }
    tracing::info!(jobs_done = metrics.jobs_done(), "agent stopped");
    Ok(signal)
}

/// Logs a panic at error level with its message and place, on any thread, so an agent that
/// panics leaves its cause in the service's log in the log's own format (JSON lines too), not
/// only as the runtime's plain text. Installed by `geoctl agent` before anything runs.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_string());
        let location = info.location().map_or_else(|| "unknown".to_string(), |l| format!("{}:{}", l.file(), l.line()));
        let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
        tracing::error!(panic = %message, location = %location, thread = %thread, "panicked: {message}");
    }));
}

async fn start_worker(
    options: &AgentOptions,
    queue: &RegionQueue,
    runner: Arc<Runner>,
) -> Result<bullmq::Worker, AgentError> {
    let processor = move |job: bullmq::Job, _cancel: bullmq::worker::CancellationToken| {
        let runner = runner.clone();
        async move {
            let job = JobRef::from_bull(&job);
            match runner.run(&job).await {
                Ok(outcome) => Ok(serde_json::json!({ "outcome": outcome.label() })),
                Err(e) => {
                    tracing::warn!(job = %job.id, error = %e, "job failed; the queue retries it");
                    Err(bullmq::Error::ProcessingError(e.to_string()))
                }
            }
        }
    };
    let worker_options = bullmq::WorkerOptions::new()
        .connection(queue.bull().connection().options().clone())
        .name(format!("geoctl-agent-{}", agent_id()))
        .concurrency(options.concurrency.max(1))
        .lock_duration(options.lock_duration)
        .stalled_interval(options.stalled_interval)
        // The agent runs the stall check itself (check_stalled), to count what it finds.
        .skip_stalled_check()
        .run_retry_delay(Duration::from_millis(500));
    bullmq::Worker::with_options(queue.name(), processor, worker_options)
        .await
        .map_err(|e| AgentError::Worker { queue: queue.name().to_string(), reason: e.to_string() })
}

/// Reads the worker's events for as long as it runs: a completed or failed job gives up the place
/// it kept to take the next job in the same call (see [`slots`]). The worker queues one or two
/// events per job in an unbounded channel and never drops one, so an agent that did not read them
/// would grow by about 800 bytes a job (16 MiB every 20,000 jobs). (Stalled jobs are counted by
/// [`check_stalled`]: the crate's `Stalled` event never comes.)
async fn drain_events(worker: Arc<bullmq::Worker>, slots: Arc<Slots>) {
    use bullmq::worker::WorkerEvent;
    while let Some(event) = worker.next_event().await {
        match event {
            WorkerEvent::Completed { job_id, .. } | WorkerEvent::Failed { job_id, .. } => slots.finished(&job_id),
            WorkerEvent::Error(error) => tracing::debug!(error = %error, "queue worker"),
            _ => {}
        }
    }
}

/// Runs the queue's stall check every `interval` until stopped (see [`crate::queue::stalled`]):
/// jobs whose worker died holding them go back to wait, and `geoctl_jobs_stalled_total` counts
/// them, so an operator sees agents dying. bullmq-official's own check is skipped: it moves the
/// jobs too but never says which.
async fn check_stalled(queue: RegionQueue, interval: Duration, metrics: Arc<Metrics>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped(&mut stop) => return,
        }
        match crate::queue::stalled::check(&queue, interval).await {
            Ok(jobs) if jobs.is_empty() => {}
            Ok(jobs) => {
                metrics.jobs_stalled.fetch_add(jobs.len() as u64, Ordering::Relaxed);
                tracing::warn!(count = jobs.len(), jobs = %jobs.join(","),
                    "jobs held by a worker that stopped renewing their locks (died?) went back to wait");
            }
            Err(e) => tracing::debug!(error = %e, "stall check not made; trying again at the next"),
        }
    }
}

/// Memory one concurrent journey is given in a browser agent's limit. Measured in the browser
/// image (cgroup v1 stats, one journey on a small page): 173 MiB peak of anonymous and shared
/// memory for geoctl and Chromium together, plus Chromium's code in the page cache (506 MiB
/// charged at peak, most of it reclaimable and shared by every journey of the task). Real
/// pages weigh more than that test page; 320 MiB leaves them the difference.
pub const MEMORY_PER_JOURNEY: u64 = 320 << 20;
/// What the agent process itself keeps, out of the limit, before any journey.
pub const AGENT_MEMORY: u64 = 128 << 20;

/// `--browser-concurrency`'s default: as many journeys as the memory limit holds after the
/// agent's own share (at least one); two when there is no limit to go by.
pub fn browser_concurrency(memory_limit: Option<u64>) -> usize {
    match memory_limit {
        Some(limit) => (limit.saturating_sub(AGENT_MEMORY) / MEMORY_PER_JOURNEY).max(1) as usize,
        None => 2,
    }
}

/// The memory limit of this process's cgroup (v2 `memory.max`, else v1
/// `memory.limit_in_bytes`); `None` when unlimited or unreadable.
pub fn cgroup_memory_limit() -> Option<u64> {
    ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| text.trim().parse::<u64>().ok())
        // cgroup v1 writes "no limit" as a number near i64::MAX.
        .filter(|limit| *limit < 1 << 50)
}

/// Most jobs that wait for their results with their check slot lent (see [`slots`]): enough for a
/// few batches to form while one commits, so even at `--concurrency 1` a result shares its
/// statement with others, and bounded so a stalled database does not make the agent take jobs
/// without end. With checks that take real time, far fewer wait: about the results per second
/// times one commit.
fn most_waiting(concurrency: usize) -> usize {
    concurrency.clamp(MOST_WAITING, recorder::MAX_BATCH)
}

/// The least of [`most_waiting`], whatever the concurrency.
pub const MOST_WAITING: usize = 64;

/// This process's agent id: host name and process id, unique among live agents.
pub fn agent_id() -> String {
    format!("{}-{}", host_name(), std::process::id())
}

fn watcher_id() -> String {
    agent_id()
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

/// Keeps readiness current, the heartbeat fresh and the queue in line with
/// the database.
struct Watcher {
    region: String,
    queue: RegionQueue,
    pool: PgPool,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    resync_interval: Duration,
    started_at: String,
    /// Redis' run id: a new one means Redis restarted, maybe without its data.
    redis_run_id: Option<String>,
    last_resync: Instant,
    last_beat: Option<Instant>,
    resync_due: bool,
}

/// How often Redis and PostgreSQL are checked.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for one of those checks.
const WATCH_TIMEOUT: Duration = Duration::from_millis(900);

impl Watcher {
    fn new(
        options: &AgentOptions,
        queue: RegionQueue,
        pool: PgPool,
        health: Arc<Health>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Watcher {
            region: options.region.clone(),
            queue,
            pool,
            health,
            metrics,
            resync_interval: options.resync_interval,
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            redis_run_id: None,
            last_resync: Instant::now(),
            last_beat: None,
            resync_due: false,
        }
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.check().await,
                _ = stopped(&mut stop) => return,
            }
        }
    }

    async fn check(&mut self) {
        let db_ok =
            matches!(tokio::time::timeout(WATCH_TIMEOUT, sqlx::query("SELECT 1").execute(&self.pool)).await, Ok(Ok(_)));
        if db_ok != self.health.db_ok() {
            tracing::warn!(reachable = db_ok, "PostgreSQL {}", if db_ok { "is back" } else { "is unreachable" });
        }
        self.health.set_db(db_ok);

        let run_id = self.redis_run_id().await;
        let redis_ok = run_id.is_some();
        if redis_ok != self.health.redis_ok() {
            tracing::warn!(region = %self.region, "Redis {}", if redis_ok { "is back" } else { "is unreachable" });
            if redis_ok {
                self.resync_due = true;
            }
        }
        self.health.set_redis(redis_ok);
        if let Some(run_id) = run_id {
            if self.redis_run_id.as_ref().is_some_and(|known| *known != run_id) {
                tracing::warn!(region = %self.region, "Redis restarted");
                self.resync_due = true;
            }
            self.redis_run_id = Some(run_id);
        }
        if redis_ok && self.last_beat.is_none_or(|t| t.elapsed() >= heartbeat::INTERVAL) {
            self.beat().await;
        }
        if redis_ok && db_ok && (self.resync_due || self.last_resync.elapsed() >= self.resync_interval) {
            let why = if self.resync_due { "Redis came back" } else { "periodic" };
            self.reconcile(why).await;
        }
    }

    async fn redis_run_id(&self) -> Option<String> {
        let mut conn = self.queue.connection();
        let info =
            tokio::time::timeout(WATCH_TIMEOUT, redis::cmd("INFO").arg("server").query_async::<String>(&mut conn))
                .await
                .ok()?
                .ok()?;
        info.lines().find_map(|l| l.strip_prefix("run_id:")).map(|id| id.trim().to_string())
    }

    async fn beat(&mut self) {
        let beat = heartbeat::Heartbeat {
            id: agent_id(),
            host: host_name(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: self.started_at.clone(),
            jobs_done: self.metrics.jobs_done(),
            browser: Some(self.queue.lane == crate::queue::Lane::Browser),
        };
        match heartbeat::beat(&self.queue, &beat).await {
            Ok(()) => self.last_beat = Some(Instant::now()),
            Err(e) => tracing::warn!(error = %e, "heartbeat not written"),
        }
    }

    /// Makes the region's queue match the database; on failure, tries again
    /// at the next check.
    async fn reconcile(&mut self, why: &str) {
        let reconciled = async {
            let wanted = schedule::Wanted::load(&self.pool).await.map_err(|e| e.to_string())?;
            schedule::reconcile_region(&self.queue, &wanted, false).await.map_err(|e| e.to_string())
        };
        match reconciled.await {
            Ok(report) => {
                for change in &report.changes {
                    tracing::info!(region = %self.region, action = change.action.as_str(), id = %change.id,
                        monitor = change.monitor.as_deref().unwrap_or("-"), detail = %change.detail, "queue changed");
                }
                tracing::info!(region = %self.region, why, changed = report.changes.len(), unchanged = report.unchanged,
                    "queue reconciled with the database");
                self.resync_due = false;
                self.last_resync = Instant::now();
            }
            Err(e) => {
                tracing::warn!(region = %self.region, why, error = %e, "queue not reconciled yet; trying again");
                self.resync_due = true;
            }
        }
    }
}

/// Resolves once the stop flag is up (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// SIGTERM and SIGINT, as one stream (the agent's and the alerter's).
pub(crate) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub(crate) fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
    }

    pub(crate) async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::test_support::Captured;

    /// The default journeys per browser agent follow its memory limit, never below one.
    #[test]
    fn browser_concurrency_follows_the_memory_limit() {
        assert_eq!(super::browser_concurrency(Some(768 << 20)), 2, "the stack's default limit");
        assert_eq!(super::browser_concurrency(Some(2 << 30)), 6);
        assert_eq!(super::browser_concurrency(Some(256 << 20)), 1, "too small still runs one");
        assert_eq!(super::browser_concurrency(None), 2);
    }

    /// A panic is an error-level log line with its message and where it happened.
    #[test]
    fn a_panic_is_logged_at_error_level_with_its_message() {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || sink.clone()).with_ansi(false).finish();
        let previous = std::panic::take_hook();
        super::log_panics();
        let caught = tracing::subscriber::with_default(subscriber, || {
            std::panic::catch_unwind(|| panic!("the spool is {} bytes past its end", 42))
        });
        std::panic::set_hook(previous);
        assert!(caught.is_err());
        let out = captured.text();
        assert!(out.contains("ERROR"), "{out}");
        assert!(out.contains("panicked: the spool is 42 bytes past its end"), "{out}");
        assert!(out.contains(&format!("location={}:", file!())), "{out}");
    }
}
