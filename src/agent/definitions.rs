//! The monitor definitions an agent runs from, read once and kept until
//! PostgreSQL says they changed.
//!
//! A trigger (migration `20261130000001`) sends `NOTIFY geoctl_monitor_changed`
//! with a monitor's id whenever its row or its region assignments change, from
//! whichever program changed them. While the agent listens, a definition read
//! since listening began is used as it is; a notification makes the next run
//! read it again, so a change takes effect by the next run without a query per
//! run. While not listening (starting, connection lost) every run reads its
//! definition, as before the cache existed. While PostgreSQL is unreachable,
//! runs go on from the last definition read (their results go to the spool).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use uuid::Uuid;

use crate::monitor::{Monitor, MonitorError, MonitorStore, Placement};

/// The channel the trigger notifies.
pub const CHANNEL: &str = "geoctl_monitor_changed";
/// Wait between attempts to listen again after the connection was lost.
const RELISTEN_EVERY: Duration = Duration::from_secs(1);

struct Entry {
    monitor: Monitor,
    /// Read while listening and not notified since: usable without a query.
    fresh: bool,
}

#[derive(Default)]
struct State {
    entries: HashMap<Uuid, Entry>,
    listening: bool,
    /// Bumped by every notification and every change of `listening`: a read
    /// is kept fresh only when nothing happened while it was in flight.
    generation: u64,
}

/// Where a definition came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    Database,
}

pub struct Definitions {
    pool: PgPool,
    state: Mutex<State>,
}

impl Definitions {
    pub fn new(pool: PgPool) -> Arc<Self> {
        Arc::new(Definitions { pool, state: Mutex::default() })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("definitions lock")
    }

    /// A fresh definition, without asking the database.
    pub fn fresh(&self, id: Uuid) -> Option<Monitor> {
        let state = self.state();
        state.entries.get(&id).filter(|e| e.fresh && state.listening).map(|e| e.monitor.clone())
    }

    /// The last definition read, fresh or not: what runs go on from while the
    /// database is unreachable.
    pub fn last_known(&self, id: Uuid) -> Option<Monitor> {
        self.state().entries.get(&id).map(|e| e.monitor.clone())
    }

    /// The definition from the database (`None`: deleted), kept for the next runs.
    pub async fn read(&self, id: Uuid) -> Result<Option<Monitor>, MonitorError> {
        let generation = self.state().generation;
        let store = MonitorStore::new(&self.pool, Placement { geo_distribution: true, default_region: None });
        let found = store.find(id).await?;
        let mut state = self.state();
        let fresh = state.listening && state.generation == generation;
        match &found {
            Some(monitor) => {
                state.entries.insert(id, Entry { monitor: monitor.clone(), fresh });
            }
            None => {
                state.entries.remove(&id);
            }
        }
        Ok(found)
    }

    /// A definition, from the cache when fresh, else from the database.
    pub async fn get(&self, id: Uuid) -> Result<(Option<Monitor>, Source), MonitorError> {
        if let Some(monitor) = self.fresh(id) {
            return Ok((Some(monitor), Source::Cache));
        }
        Ok((self.read(id).await?, Source::Database))
    }

    /// A notification's payload: one monitor's id, or `*` for all of them.
    fn changed(&self, payload: &str) {
        let mut state = self.state();
        state.generation += 1;
        match Uuid::parse_str(payload) {
            Ok(id) => {
                if let Some(entry) = state.entries.get_mut(&id) {
                    entry.fresh = false;
                }
            }
            Err(_) => state.entries.values_mut().for_each(|e| e.fresh = false),
        }
    }

    fn set_listening(&self, listening: bool) {
        let mut state = self.state();
        state.generation += 1;
        state.listening = listening;
        if !listening {
            state.entries.values_mut().for_each(|e| e.fresh = false);
        }
    }

    /// Listens for changes until the task is aborted, listening again after
    /// every lost connection (meanwhile every run reads its definition).
    pub async fn listen(self: Arc<Self>) {
        let mut logged_failure = false;
        loop {
            match self.listen_once().await {
                Ok(()) => logged_failure = false,
                Err(e) if !logged_failure => {
                    tracing::warn!(error = %e, "not listening for monitor changes; every run reads its monitor meanwhile");
                    logged_failure = true;
                }
                Err(_) => {}
            }
            self.set_listening(false);
            tokio::time::sleep(RELISTEN_EVERY).await;
        }
    }

    /// One listening session: returns when its connection is lost.
    async fn listen_once(&self) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        // A lost connection ends this session, so the gap marks every definition stale.
        listener.eager_reconnect(false);
        listener.listen(CHANNEL).await?;
        self.set_listening(true);
        tracing::debug!(channel = CHANNEL, "listening for monitor changes");
        loop {
            match listener.try_recv().await? {
                Some(notification) => self.changed(notification.payload()),
                None => {
                    tracing::info!("lost the connection listening for monitor changes; listening again");
                    return Ok(());
                }
            }
        }
    }
}
