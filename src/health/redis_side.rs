//! What a region's Redis says: reachable, live agents (heartbeats), the
//! BullMQ queue's backlog.

use std::collections::HashMap;

use serde::Serialize;

use crate::config::{RegionEndpoints, Tuning};

/// A Redis URL with the configured password put in, and where it points.
pub struct RedisTarget {
    url: String,
    /// `host:port/db`, for messages.
    pub server: String,
}

/// The region's Redis, or `None` when none is configured. Errors name the
/// problem, never the password.
pub fn redis_target(endpoints: &RegionEndpoints) -> Result<Option<RedisTarget>, String> {
    let Some(url) = &endpoints.redis_url else { return Ok(None) };
    let mut parsed =
        url::Url::parse(url.value.expose()).map_err(|e| format!("invalid Redis URL ({}): {e}", url.value.masked()))?;
    if let Some(password) = &endpoints.redis_password {
        if parsed.password().is_none() {
            let _ = parsed.set_password(Some(password.value.expose()));
        }
    }
    let server =
        format!("{}:{}{}", parsed.host_str().unwrap_or("localhost"), parsed.port().unwrap_or(6379), parsed.path());
    Ok(Some(RedisTarget { url: parsed.to_string(), server }))
}

/// Connects and PINGs within the configured timeouts.
pub async fn connect_redis(target: &RedisTarget, tuning: &Tuning) -> Result<redis::aio::MultiplexedConnection, String> {
    let secret = crate::config::Secret::new(target.url.clone());
    let scrub = |e: redis::RedisError| crate::config::scrub(&e.to_string(), &secret);
    let client = redis::Client::open(target.url.as_str()).map_err(scrub)?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(tuning.redis_connection_timeout.value))
        .set_response_timeout(Some(tuning.redis_command_timeout.value));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| format!("{}: {}", target.server, scrub(e)))?;
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map_err(|e| format!("{}: {}", target.server, scrub(e)))?;
    Ok(conn)
}

/// One live agent, from its heartbeat hash `geoctl:agents:<region>:<id>`.
#[derive(Debug, Clone, Serialize)]
pub struct Agent {
    pub id: String,
    pub host: Option<String>,
    pub version: Option<String>,
    pub started_at: Option<String>,
    pub jobs_done: Option<u64>,
}

pub async fn agents(conn: &mut redis::aio::MultiplexedConnection, region: &str) -> Result<Vec<Agent>, String> {
    let pattern = format!("geoctl:agents:{region}:*");
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(500)
            .query_async(conn)
            .await
            .map_err(|e| e.to_string())?;
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    keys.sort();
    let mut out = Vec::new();
    for key in keys {
        let mut fields: HashMap<String, String> =
            redis::cmd("HGETALL").arg(&key).query_async(conn).await.map_err(|e| e.to_string())?;
        if fields.is_empty() {
            continue; // expired between SCAN and HGETALL
        }
        let id = fields.remove("id").unwrap_or_else(|| key.rsplit(':').next().unwrap_or_default().to_string());
        out.push(Agent {
            id,
            host: fields.remove("host"),
            version: fields.remove("version"),
            started_at: fields.remove("started_at"),
            jobs_done: fields.remove("jobs_done").and_then(|n| n.parse().ok()),
        });
    }
    Ok(out)
}

/// The region's BullMQ queue (`bull:monitor-<code>:…`).
#[derive(Debug, Clone, Serialize)]
pub struct QueueCounts {
    pub queue: String,
    /// Waiting plus prioritized jobs.
    pub waiting: u64,
    pub active: u64,
    pub delayed: u64,
    pub failed: u64,
    /// Age of the job that has waited longest; None when nothing waits.
    pub oldest_waiting_seconds: Option<f64>,
}

pub async fn queue(conn: &mut redis::aio::MultiplexedConnection, region: &str) -> Result<QueueCounts, String> {
    let name = format!("monitor-{region}");
    let key = |part: &str| format!("bull:{name}:{part}");
    let (wait, prioritized, active, delayed, failed, oldest): (u64, u64, u64, u64, u64, Option<String>) = redis::pipe()
        .cmd("LLEN")
        .arg(key("wait"))
        .cmd("ZCARD")
        .arg(key("prioritized"))
        .cmd("LLEN")
        .arg(key("active"))
        .cmd("ZCARD")
        .arg(key("delayed"))
        .cmd("ZCARD")
        .arg(key("failed"))
        // BullMQ pushes new jobs on the left: the oldest waits at the right end.
        .cmd("LINDEX")
        .arg(key("wait"))
        .arg(-1)
        .query_async(conn)
        .await
        .map_err(|e| e.to_string())?;
    let mut oldest_waiting_seconds = None;
    if let Some(id) = oldest {
        let timestamp: Option<i64> =
            redis::cmd("HGET").arg(key(&id)).arg("timestamp").query_async(conn).await.map_err(|e| e.to_string())?;
        if let Some(ms) = timestamp {
            oldest_waiting_seconds = Some(((chrono::Utc::now().timestamp_millis() - ms).max(0)) as f64 / 1000.0);
        }
    }
    Ok(QueueCounts { queue: name, waiting: wait + prioritized, active, delayed, failed, oldest_waiting_seconds })
}
