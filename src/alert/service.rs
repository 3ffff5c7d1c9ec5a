//! The long-running alerter: stand by until it holds the leader lock, then
//! read the regions' heartbeats, tick, and hand the outbox to delivery, every
//! `alerting.interval`, until SIGTERM/SIGINT or the lock is lost.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use std::sync::atomic::Ordering;
use std::sync::Arc;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::time::{sleep, MissedTickBehavior};

use super::eval::Liveness;
use super::leader::{Leadership, RETRY};
use super::store::{self, Evaluator, MonitorWatch, TickReport};
use super::{AlertError, Settings};
use crate::notify::Notifier;
use crate::queue::heartbeat;
use crate::queue::{RedisEndpoint, RegionQueue};

/// How long one region's Redis may take to answer within a tick: a region
/// that does not answer must not hold up the verdicts of every other.
const ASK_BUDGET: Duration = Duration::from_secs(2);
/// How long to leave a Redis that could not be reached before trying again.
const RECONNECT_AFTER: Duration = Duration::from_secs(30);

/// The regions' Redis, connected as they become reachable.
pub struct Heartbeats {
    config: crate::config::Settings,
    queues: HashMap<String, RegionQueue>,
    retry_at: HashMap<String, Instant>,
    /// Per region, the agents last found live: asked about first, so a tick scans a region's
    /// keys only when none of them beats any more.
    seen: HashMap<String, Vec<String>>,
    /// Per region, when its freshest agent last beat, as far as this alerter has seen. A region
    /// whose agents are all gone is called agentless only once that is [`heartbeat::TTL`] ago
    /// (three beats), as if their heartbeats had expired: an agent stopped cleanly removes its
    /// heartbeat, and a rolling update (stop-first) must not open and resolve an incident.
    last_beat: HashMap<String, Instant>,
}

impl Heartbeats {
    pub fn new(config: &crate::config::Settings) -> Self {
        Heartbeats {
            config: config.clone(),
            queues: HashMap::new(),
            retry_at: HashMap::new(),
            seen: HashMap::new(),
            last_beat: HashMap::new(),
        }
    }

    /// What each active region's heartbeats say. A region with no Redis
    /// configured here, or whose Redis does not answer within [`ASK_BUDGET`],
    /// is left out: the evaluator then judges its results alone rather than
    /// calling it dead. Regions are asked side by side.
    pub async fn read(&mut self, pool: &PgPool) -> Result<HashMap<String, Liveness>, AlertError> {
        let regions = crate::region::RegionStore::active_codes(pool).await?;
        let now = Instant::now();
        let mut connects = Vec::new();
        for code in &regions {
            if self.queues.contains_key(code) || self.retry_at.get(code).is_some_and(|t| *t > now) {
                continue;
            }
            let Ok(endpoint) = RedisEndpoint::resolve(&self.config, code) else { continue };
            let tuning = self.config.tuning.clone();
            connects.push(async move {
                let connected = tokio::time::timeout(ASK_BUDGET, RegionQueue::connect(&endpoint, &tuning)).await;
                (endpoint.region.clone(), connected)
            });
        }
        for (code, connected) in futures::future::join_all(connects).await {
            match connected {
                Ok(Ok(queue)) => {
                    self.queues.insert(code, queue);
                }
                Ok(Err(e)) => self.unreachable(code, &e.to_string()),
                Err(_) => self.unreachable(code, "no answer in time"),
            }
        }
        let asks = regions.iter().filter_map(|code| self.queues.get(code)).map(|queue| {
            let seen = self.seen.get(&queue.region).cloned().unwrap_or_default();
            async move { (queue.region.clone(), tokio::time::timeout(ASK_BUDGET, live_agents(queue, &seen)).await) }
        });
        let mut liveness = HashMap::new();
        for (code, agents) in futures::future::join_all(asks).await {
            match agents {
                Ok(Ok(agents)) if agents.is_empty() => {
                    self.seen.remove(&code);
                    if let Some(l) = absent(self.last_beat.get(&code).copied(), now) {
                        liveness.insert(code, l);
                    }
                }
                Ok(Ok(agents)) => {
                    let freshest = agents.iter().map(|(_, age)| *age).min().unwrap_or_default();
                    self.last_beat.insert(code.clone(), now.checked_sub(freshest).unwrap_or(now));
                    self.seen.insert(code.clone(), agents.into_iter().map(|(id, _)| id).collect());
                    liveness.insert(code, Liveness::Live);
                }
                Ok(Err(e)) => self.unreachable(code, &e.to_string()),
                Err(_) => self.unreachable(code, "no answer in time"),
            }
        }
        Ok(liveness)
    }

    fn unreachable(&mut self, code: String, why: &str) {
        tracing::warn!(region = %code, "cannot read the region's heartbeats ({why}); judging its results alone");
        self.seen.remove(&code);
        self.queues.remove(&code);
        self.retry_at.insert(code, Instant::now() + RECONNECT_AFTER);
    }
}

/// What a region with no live agent is, given when this alerter last saw one of its agents beat:
/// agentless once that is [`heartbeat::TTL`] ago or was never seen (an alerter starting beside a
/// dead region says so at once); until then nothing (left out, like a region not read), so
/// the agent a rolling update starts has the time an expiring heartbeat would have given it.
fn absent(last_beat: Option<Instant>, now: Instant) -> Option<Liveness> {
    match last_beat {
        Some(at) if now.saturating_duration_since(at) < heartbeat::TTL => None,
        _ => Some(Liveness::NoAgent),
    }
}

/// The live agents of a region, each with how long ago it last beat: those of `seen` that still
/// beat, else (none does, or none was seen) those a scan of the region's heartbeats finds. A
/// region with any live agent is all the alerter needs to know, so it scans only to find the
/// first or to call the region dead.
async fn live_agents(
    queue: &RegionQueue,
    seen: &[String],
) -> Result<Vec<(String, Duration)>, crate::queue::QueueError> {
    let still = heartbeat::still_live(queue, seen).await?;
    if !still.is_empty() {
        return Ok(still);
    }
    let found: Vec<String> = heartbeat::live(queue).await?.into_iter().map(|h| h.id).collect();
    heartbeat::still_live(queue, &found).await
}

/// One tick: heartbeats, then evaluation. Delivery of the outbox it wrote is
/// [`deliver`]'s, beside it.
pub async fn once(pool: &PgPool, settings: &Settings, heartbeats: &mut Heartbeats) -> Result<TickReport, AlertError> {
    check_channels(pool, settings).await?;
    let liveness = heartbeats.read(pool).await?;
    store::tick(pool, settings, &liveness).await
}

/// Wait between attempts to listen for monitor changes again after the connection was lost.
const RELISTEN_EVERY: Duration = Duration::from_secs(1);

/// Listens on `geoctl_monitor_changed` for the leader until aborted, so it reads the monitors
/// again only when they changed. Every (re)start of listening counts as a change: what happened
/// while it was not listening is unknown.
fn watch_monitors(pool: PgPool, watch: Arc<MonitorWatch>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let listened = async {
                let mut listener = PgListener::connect_with(&pool).await?;
                listener.eager_reconnect(false);
                listener.listen(crate::agent::definitions::CHANNEL).await?;
                watch.listening.store(true, Ordering::Release);
                watch.changed.store(true, Ordering::Release);
                while listener.try_recv().await?.is_some() {
                    watch.changed.store(true, Ordering::Release);
                }
                Ok::<(), sqlx::Error>(())
            }
            .await;
            watch.listening.store(false, Ordering::Release);
            if let Err(e) = listened {
                tracing::debug!("not listening for monitor changes ({e}); every tick reads the monitors meanwhile");
            }
            sleep(RELISTEN_EVERY).await;
        }
    })
}

/// The configured channels (`alerting.default_channels`, `region_channels`) exist: a misnamed
/// one is bad input before anything is evaluated, not a failure at the first incident.
async fn check_channels(pool: &PgPool, settings: &Settings) -> Result<(), AlertError> {
    let mut conn = pool.acquire().await?;
    store::Routing::load(&mut conn, settings, Some(&[])).await.map(|_| ())
}

/// How often the leader's delivery looks for due notifications when no tick woke it: backoffs
/// end between ticks, and a standby's claims expire.
const DELIVERY_POLL: Duration = Duration::from_secs(1);
/// How often the leader makes sure the next days' result partitions exist (`db maintain`'s
/// work; agents only look one day ahead).
const MAINTAIN_EVERY: Duration = Duration::from_secs(3600);

/// Delivers the outbox until aborted, beside evaluation: one send may take a receiver's whole
/// timeout, which must not hold up the verdicts. `wake` (a tick that wrote notifications)
/// starts a round at once. A round aborted mid-send leaves its rows claimed until their lease
/// ends; then whoever delivers sends them again, under the same idempotency key.
fn deliver(pool: PgPool, notifier: Arc<Notifier>, wake: Arc<tokio::sync::Notify>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match crate::notify::deliver_due(&pool, &notifier).await {
                Ok(r) if r.delivered + r.failed + r.retrying > 0 => tracing::info!(
                    delivered = r.delivered,
                    failed = r.failed,
                    retrying = r.retrying,
                    deferred = r.deferred,
                    "delivery"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!("delivery failed, retrying: {e}"),
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = sleep(DELIVERY_POLL) => {}
            }
        }
    })
}

/// `db maintain`'s partitions for the next week and its hourly summaries, from the leader, so an installation without a
/// cron job for it keeps them too.
async fn maintain_partitions(pool: &PgPool) {
    let today = chrono::Utc::now().date_naive();
    match crate::store::partition::maintain(pool, today, 7).await {
        Ok(created) if !created.is_empty() => tracing::info!(created = created.len(), "result partitions created"),
        Ok(_) => {}
        Err(e) => tracing::warn!("could not create the next days' result partitions: {e}"),
    }
    // As `db maintain` does: the hours holding the existing app's rows get their summaries.
    match crate::results::summary::refresh_stale_hours(pool).await {
        Ok(n) if n > 0 => tracing::info!(hours = n, "hourly summaries rebuilt for rows written around them"),
        Ok(_) => {}
        Err(e) => tracing::warn!("could not rebuild the hourly summaries of hours with unsummarised rows: {e}"),
    }
}

/// Runs until a signal: stands by, leads, ticks. Checks the configured
/// channels first, so a misnamed one stops it before it ever leads.
pub async fn run(
    pool: &PgPool,
    settings: &Settings,
    heartbeats: &mut Heartbeats,
    notifier: Notifier,
) -> crate::error::Result<()> {
    let notifier = Arc::new(notifier);
    check_channels(pool, settings).await?;
    let mut signals = crate::agent::Signals::install()?;
    loop {
        tracing::info!("standing by for the alerter's leader lock");
        let mut leadership = loop {
            match Leadership::try_take(pool).await {
                Ok(Some(leadership)) => break leadership,
                Ok(None) => {}
                Err(e) => tracing::warn!("cannot ask for the leader lock: {e}"),
            }
            tokio::select! {
                signal = signals.next() => {
                    tracing::info!("{signal}: stopping");
                    return Ok(());
                }
                _ = sleep(RETRY) => {}
            }
        };
        tracing::info!("leading: evaluating every {}", crate::duration::format(settings.interval));
        let wake = Arc::new(tokio::sync::Notify::new());
        let delivery = deliver(pool.clone(), notifier.clone(), wake.clone());
        let watch = Arc::new(MonitorWatch::default());
        let watcher = watch_monitors(pool.clone(), watch.clone());
        // The state lives here while this process leads; a new leader reads it from the database.
        let mut evaluator = Evaluator::watching(watch);
        let mut every = tokio::time::interval(settings.interval);
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut maintained: Option<Instant> = None;
        loop {
            tokio::select! {
                signal = signals.next() => {
                    tracing::info!("{signal}: releasing the leader lock and stopping");
                    delivery.abort();
                    watcher.abort();
                    leadership.release().await;
                    return Ok(());
                }
                _ = every.tick() => {}
            }
            if !leadership.still().await {
                tracing::warn!("lost the leader lock's connection; standing by");
                delivery.abort();
                watcher.abort();
                break;
            }
            if maintained.is_none_or(|at| at.elapsed() >= MAINTAIN_EVERY) {
                maintain_partitions(pool).await;
                maintained = Some(Instant::now());
            }
            let started = Instant::now();
            let tick = match heartbeats.read(pool).await {
                Ok(liveness) => evaluator.tick(pool, settings, &liveness).await,
                Err(e) => Err(e),
            };
            let ms = started.elapsed().as_millis() as u64;
            if tick.as_ref().is_ok_and(|r| r.notifications > 0) {
                wake.notify_one();
            }
            match tick {
                Ok(r) if r.opened + r.resolved + r.events > 0 => tracing::info!(
                    results = r.results,
                    opened = r.opened,
                    resolved = r.resolved,
                    notifications = r.notifications,
                    ms,
                    phases = %r.phases,
                    "tick"
                ),
                Ok(r) => tracing::debug!(
                    results = r.results,
                    monitors = r.monitors,
                    ms,
                    phases = %r.phases,
                    "tick"
                ),
                Err(e) => tracing::warn!("tick failed, retrying at the next: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_without_agents_is_agentless_only_a_heartbeat_lifetime_after_the_last_beat() {
        let now = Instant::now();
        let ago = |secs: u64| now.checked_sub(Duration::from_secs(secs));
        assert_eq!(absent(None, now), Some(Liveness::NoAgent), "never seen beating: agentless at once");
        assert_eq!(absent(ago(1), now), None, "just stopped (a rolling update): not judged yet");
        assert_eq!(absent(ago(heartbeat::TTL.as_secs() - 1), now), None);
        assert_eq!(absent(ago(heartbeat::TTL.as_secs()), now), Some(Liveness::NoAgent));
        assert_eq!(absent(ago(600), now), Some(Liveness::NoAgent));
    }
}
