//! Agent heartbeats in a region's Redis: how `queue status` counts live agents.
//!
//! Each agent keeps one hash, `geoctl:agents:<region>:<agent id>`, with fields
//! `id`, `host`, `version`, `started_at` (RFC 3339), `jobs_done` and `browser`
//! (`yes` when it can run the browser steps of synthetic checks), and a TTL
//! of [`TTL`]. It rewrites the hash (and its TTL) every [`INTERVAL`]; an agent
//! that dies stops refreshing and its key expires, so "live" needs no cleanup.
//! The region is in the key because regions may share one Redis.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use super::{QueueError, RegionQueue};

/// How long a heartbeat stays without being refreshed.
pub const TTL: Duration = Duration::from_secs(30);
/// How often an agent refreshes it: a third of the TTL, so two missed beats are tolerated.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// The key of one agent's heartbeat.
pub fn key(region: &str, agent_id: &str) -> String {
    format!("geoctl:agents:{region}:{agent_id}")
}

/// One live agent, as its heartbeat says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Heartbeat {
    pub id: String,
    pub host: String,
    pub version: String,
    pub started_at: String,
    pub jobs_done: u64,
    /// Whether the agent found a Chromium for browser steps; `None` from agents that predate it.
    pub browser: Option<bool>,
}

impl Heartbeat {
    fn from_fields(mut fields: HashMap<String, String>) -> Option<Self> {
        Some(Heartbeat {
            id: fields.remove("id")?,
            host: fields.remove("host").unwrap_or_default(),
            version: fields.remove("version").unwrap_or_default(),
            started_at: fields.remove("started_at").unwrap_or_default(),
            jobs_done: fields.get("jobs_done").and_then(|n| n.parse().ok()).unwrap_or(0),
            browser: fields.get("browser").map(|b| b == "yes"),
        })
    }
}

/// Writes (or refreshes) an agent's heartbeat in one round trip.
pub async fn beat(queue: &RegionQueue, beat: &Heartbeat) -> Result<(), QueueError> {
    let key = key(&queue.region, &beat.id);
    let mut pipe = redis::pipe();
    pipe.atomic()
        .hset_multiple(
            &key,
            &[
                ("id", beat.id.clone()),
                ("host", beat.host.clone()),
                ("version", beat.version.clone()),
                ("started_at", beat.started_at.clone()),
                ("jobs_done", beat.jobs_done.to_string()),
                ("browser", if beat.browser == Some(true) { "yes" } else { "no" }.to_string()),
            ],
        )
        .ignore()
        .expire(&key, TTL.as_secs() as i64)
        .ignore();
    let mut conn = queue.connection();
    queue.redis("writing the agent heartbeat", pipe.query_async::<()>(&mut conn)).await
}

/// Removes an agent's heartbeat (on a clean shutdown).
pub async fn clear(queue: &RegionQueue, agent_id: &str) -> Result<(), QueueError> {
    let mut conn = queue.connection();
    queue
        .redis(
            "removing the agent heartbeat",
            redis::cmd("DEL").arg(key(&queue.region, agent_id)).query_async::<()>(&mut conn),
        )
        .await
}

/// The live agents of the queue's region.
pub async fn live(queue: &RegionQueue) -> Result<Vec<Heartbeat>, QueueError> {
    let pattern = format!("{}*", key(&queue.region, ""));
    let mut conn = queue.connection();
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = queue
            .redis(
                "listing agent heartbeats",
                redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000).query_async(&mut conn),
            )
            .await?;
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for k in &keys {
        pipe.hgetall(k);
    }
    let hashes: Vec<HashMap<String, String>> =
        queue.redis("reading agent heartbeats", pipe.query_async(&mut conn)).await?;
    let mut agents: Vec<Heartbeat> = hashes.into_iter().filter_map(Heartbeat::from_fields).collect();
    agents.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(agents)
}

/// Which of these agents still have a heartbeat, with how long ago each last beat (from what is
/// left of its TTL), in one round trip. A caller that already knows live agents asks about them
/// rather than [`live`]'s scan, which walks every key of the region's Redis (one per queued job
/// besides the heartbeats: tens of round trips at 10,000 monitors).
pub async fn still_live(queue: &RegionQueue, ids: &[String]) -> Result<Vec<(String, Duration)>, QueueError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.pttl(key(&queue.region, id));
    }
    let mut conn = queue.connection();
    let left: Vec<i64> = queue.redis("checking agent heartbeats", pipe.query_async(&mut conn)).await?;
    Ok(ids
        .iter()
        .zip(left)
        .filter_map(|(id, ms)| match ms {
            // No such key: gone (expired, or removed on a clean shutdown).
            -2 => None,
            // A key without a TTL, which no agent writes: taken as fresh.
            -1 => Some((id.clone(), Duration::ZERO)),
            ms => Some((id.clone(), TTL.saturating_sub(Duration::from_millis(ms.max(0) as u64)))),
        })
        .collect())
}

/// Whether a region can run browser steps, as its live agents say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrowserSupport {
    /// At least one live agent has a browser.
    Yes,
    /// Live agents, none with a browser (agents that predate the field do not count as "none").
    No { agents: usize },
    /// No live agent to ask, or the region's Redis could not be read: nothing to refuse on.
    Unknown(String),
}

/// What `region`'s live agents say about browsers.
pub async fn browser_support(settings: &crate::config::Settings, region: &str) -> BrowserSupport {
    let agents = match RegionQueue::open(settings, region).await {
        Ok(queue) => {
            let agents = live(&queue).await;
            queue.close().await;
            agents
        }
        Err(e) => return BrowserSupport::Unknown(e.to_string()),
    };
    match agents {
        Err(e) => BrowserSupport::Unknown(e.to_string()),
        Ok(agents) if agents.is_empty() => BrowserSupport::Unknown("no live agent".into()),
        Ok(agents) if agents.iter().any(|a| a.browser != Some(false)) => BrowserSupport::Yes,
        Ok(agents) => BrowserSupport::No { agents: agents.len() },
    }
}
