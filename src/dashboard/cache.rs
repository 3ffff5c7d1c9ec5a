//! A short-lived memory of what the pages read, so a wall screen, a dozen browsers and the
//! script's refresh every few seconds cost the database one computation per key and period
//! instead of one per request.
//!
//! A value younger than its `max_age` is served as it is. An older one (up to [`STALE_FACTOR`]
//! times `max_age`) is still served while one background task computes its successor, so no
//! request waits for a refresh; older still, or absent, the request computes it, and the
//! requests for the same key that arrive meanwhile wait for that one computation rather than
//! each starting their own. A value that took long to compute is kept longer ([`REFRESH_DUTY`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::DashboardError;

/// A value is computed again at the earliest this many times its last computation's duration
/// after that computation began.
const REFRESH_DUTY: u32 = 4;

/// How many keys a memo holds before it forgets the ones too old to serve.
const SWEEP_ABOVE: usize = 64;

/// How much older than its `max_age` a value may be and still be served while it is refreshed.
pub const STALE_FACTOR: u32 = 3;

struct Slot<V> {
    value: Option<(Instant, Arc<V>)>,
    max_age: Duration,
    /// How long the value took to compute.
    took: Duration,
    refreshing: bool,
    /// Held by the request computing an absent or too old value.
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl<V> Default for Slot<V> {
    fn default() -> Self {
        Slot { value: None, max_age: Duration::ZERO, took: Duration::ZERO, refreshing: false, gate: Default::default() }
    }
}

pub struct Memo<V> {
    slots: Mutex<HashMap<String, Slot<V>>>,
}

impl<V> Default for Memo<V> {
    fn default() -> Self {
        Memo { slots: Mutex::new(HashMap::new()) }
    }
}

/// What a look-up found.
enum Found<V> {
    Fresh(Arc<V>),
    /// Served as it is; a refresh is started when none is under way.
    Stale(Arc<V>, bool),
    Missing(Arc<tokio::sync::Mutex<()>>),
}

impl<V: Send + Sync + 'static> Memo<V> {
    fn find(&self, key: &str, max_age: Duration, claim_refresh: bool) -> Found<V> {
        let mut slots = self.slots.lock().expect("memo lock");
        let slot = slots.entry(key.to_string()).or_default();
        // A value that takes long to compute is kept longer, so refreshing it keeps the database
        // busy at most 1/REFRESH_DUTY of the time however large the history grows.
        slot.max_age = max_age.max(slot.took * REFRESH_DUTY);
        let max_age = slot.max_age;
        match &slot.value {
            Some((made, value)) if made.elapsed() < max_age => Found::Fresh(value.clone()),
            Some((made, value)) if claim_refresh && made.elapsed() < max_age * STALE_FACTOR => {
                let start = !slot.refreshing;
                slot.refreshing = true;
                Found::Stale(value.clone(), start)
            }
            _ => Found::Missing(slot.gate.clone()),
        }
    }

    fn store(&self, key: &str, made: Instant, value: Arc<V>) {
        let mut slots = self.slots.lock().expect("memo lock");
        let slot = slots.entry(key.to_string()).or_default();
        // A slower computation that began earlier does not replace a newer value.
        if slot.value.as_ref().is_none_or(|(at, _)| *at <= made) {
            slot.value = Some((made, value));
            slot.took = made.elapsed();
        }
        slot.refreshing = false;
        // Keys come and go (a monitor page per monitor and range): forget the ones nobody asked
        // for in a while, unless a computation of theirs is under way.
        if slots.len() > SWEEP_ABOVE {
            slots.retain(|_, slot| {
                slot.refreshing
                    || Arc::strong_count(&slot.gate) > 1
                    || slot.value.as_ref().is_some_and(|(made, _)| made.elapsed() < slot.max_age * STALE_FACTOR)
            });
        }
    }

    fn refresh_failed(&self, key: &str) {
        if let Some(slot) = self.slots.lock().expect("memo lock").get_mut(key) {
            slot.refreshing = false;
        }
    }

    /// The value of `key` no older than `max_age` (or a little older while its successor is being
    /// computed); `compute` makes a new one when needed. An error is not remembered: the next
    /// request tries again.
    pub async fn get<F, Fut>(
        self: &Arc<Self>,
        key: &str,
        max_age: Duration,
        compute: F,
    ) -> Result<Arc<V>, DashboardError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, DashboardError>> + Send + 'static,
    {
        let gate = match self.find(key, max_age, true) {
            Found::Fresh(value) => return Ok(value),
            Found::Stale(value, start) => {
                if start {
                    let (memo, key, work) = (self.clone(), key.to_string(), compute());
                    tokio::spawn(async move {
                        let made = Instant::now();
                        match work.await {
                            Ok(value) => memo.store(&key, made, Arc::new(value)),
                            Err(e) => {
                                tracing::warn!("dashboard: refreshing {key}: {e}");
                                memo.refresh_failed(&key);
                            }
                        }
                    });
                }
                return Ok(value);
            }
            Found::Missing(gate) => gate,
        };
        let _held = gate.lock().await;
        // Whoever held the gate before may have just made it.
        if let Found::Fresh(value) = self.find(key, max_age, false) {
            return Ok(value);
        }
        let made = Instant::now();
        let value = Arc::new(compute().await?);
        self.store(key, made, value.clone());
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn counting(calls: &Arc<AtomicU32>) -> impl Future<Output = Result<u32, DashboardError>> + Send + 'static {
        let calls = calls.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(calls.fetch_add(1, Ordering::SeqCst) + 1)
        }
    }

    #[tokio::test]
    async fn concurrent_misses_compute_once() {
        let memo: Arc<Memo<u32>> = Arc::default();
        let calls = Arc::new(AtomicU32::new(0));
        let gets = (0..8).map(|_| memo.get("24h", Duration::from_secs(60), || counting(&calls)));
        let values = futures::future::join_all(gets).await;
        assert!(values.iter().all(|v| **v.as_ref().unwrap() == 1));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_stale_value_is_served_while_one_refresh_runs() {
        let memo: Arc<Memo<u32>> = Arc::default();
        let calls = Arc::new(AtomicU32::new(0));
        let age = Duration::from_millis(500);
        assert_eq!(*memo.get("1h", age, || counting(&calls)).await.unwrap(), 1);
        tokio::time::sleep(age).await;
        // Stale: both answers are the old value at once, and only one refresh starts.
        assert_eq!(*memo.get("1h", age, || counting(&calls)).await.unwrap(), 1);
        assert_eq!(*memo.get("1h", age, || counting(&calls)).await.unwrap(), 1);
        // One thread: the refresh stores its value in the same poll that counts it.
        while calls.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(*memo.get("1h", age, || counting(&calls)).await.unwrap(), 2);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Too old to serve: the request waits for a new value.
        tokio::time::sleep(age * STALE_FACTOR).await;
        assert_eq!(*memo.get("1h", age, || counting(&calls)).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn keys_are_apart_and_errors_are_not_kept() {
        let memo: Arc<Memo<u32>> = Arc::default();
        let calls = Arc::new(AtomicU32::new(0));
        let failed = memo.get("30d", Duration::from_secs(60), || async { Err(DashboardError::Template("no".into())) });
        assert!(failed.await.is_err());
        assert_eq!(*memo.get("30d", Duration::from_secs(60), || counting(&calls)).await.unwrap(), 1);
        assert_eq!(*memo.get("1h", Duration::from_secs(60), || counting(&calls)).await.unwrap(), 2);
    }
}
