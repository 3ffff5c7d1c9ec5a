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
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use uuid::Uuid;

use crate::monitor::check::{self, CheckPlan};
use crate::monitor::{Monitor, MonitorError, MonitorStore, Placement};

/// The channel the trigger notifies.
pub const CHANNEL: &str = "geoctl_monitor_changed";
/// Wait between attempts to listen again after the connection was lost.
const RELISTEN_EVERY: Duration = Duration::from_secs(1);

/// One monitor's definition as read, shared by the runs that use it, with its check for this
/// agent's region worked out at the first run that needs it.
pub struct Definition {
    pub monitor: Monitor,
    region: String,
    plan: OnceLock<Result<CheckPlan, String>>,
}

impl Definition {
    fn new(monitor: Monitor, region: &str) -> Self {
        Definition { monitor, region: region.to_string(), plan: OnceLock::new() }
    }

    /// The check this monitor runs in the agent's region (its overrides applied), or why it
    /// cannot be checked.
    pub fn plan(&self) -> Result<&CheckPlan, &str> {
        self.plan
            .get_or_init(|| {
                let assignment = self.monitor.regions.iter().find(|r| r.region == self.region);
                check::plan(&self.monitor, assignment).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(String::as_str)
    }
}

struct Entry {
    definition: Arc<Definition>,
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
    /// The agent's region, whose overrides the checks take.
    region: String,
    state: Mutex<State>,
}

impl Definitions {
    pub fn new(pool: PgPool, region: &str) -> Arc<Self> {
        Arc::new(Definitions { pool, region: region.to_string(), state: Mutex::default() })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("definitions lock")
    }

    /// A fresh definition, without asking the database.
    pub fn fresh(&self, id: Uuid) -> Option<Arc<Definition>> {
        let state = self.state();
        state.entries.get(&id).filter(|e| e.fresh && state.listening).map(|e| e.definition.clone())
    }

    /// The last definition read, fresh or not: what runs go on from while the
    /// database is unreachable.
    pub fn last_known(&self, id: Uuid) -> Option<Arc<Definition>> {
        self.state().entries.get(&id).map(|e| e.definition.clone())
    }

    /// The definition from the database (`None`: deleted), kept for the next runs.
    pub async fn read(&self, id: Uuid) -> Result<Option<Arc<Definition>>, MonitorError> {
        let generation = self.state().generation;
        let store = MonitorStore::new(&self.pool, Placement { geo_distribution: true, default_region: None });
        let found = store.find(id).await?.map(|monitor| Arc::new(Definition::new(monitor, &self.region)));
        let mut state = self.state();
        let fresh = state.listening && state.generation == generation;
        match &found {
            Some(definition) => {
                state.entries.insert(id, Entry { definition: definition.clone(), fresh });
            }
            None => {
                state.entries.remove(&id);
            }
        }
        Ok(found)
    }

    /// A definition, from the cache when fresh, else from the database.
    pub async fn get(&self, id: Uuid) -> Result<(Option<Arc<Definition>>, Source), MonitorError> {
        if let Some(definition) = self.fresh(id) {
            return Ok((Some(definition), Source::Cache));
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
