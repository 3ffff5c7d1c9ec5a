//! Regional health (`geoctl health`) and the operator's checklist
//! (`geoctl doctor`). Each part reports what it could see: a part whose
//! system is absent (no agents yet, no Swarm stack, no health URL) says
//! "not deployed" or "not configured" instead of failing.

mod docker;
pub mod doctor;
mod redis_side;

pub use docker::{EngineReach, ServiceCounts};
pub use redis_side::QueueCounts;

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::Settings;
use crate::probe::{http::HttpSpec, ProbeOptions, ProbeSpec};
use crate::queue::heartbeat::{self, Heartbeat};
use crate::queue::{QueueError, RedisEndpoint, RegionQueue};

/// A region whose oldest waiting job is older than this, with no live agent
/// taking jobs, is unhealthy.
pub const STALE_BACKLOG: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Down,
    NotDeployed,
    NotConfigured,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Down => "down",
            Status::NotDeployed => "not deployed",
            Status::NotConfigured => "not configured",
        }
    }
}

/// One part of a region's health.
#[derive(Debug, Clone, Serialize)]
pub struct Part {
    pub status: Status,
    pub detail: String,
    pub latency_ms: Option<f64>,
}

impl Part {
    fn new(status: Status, detail: impl Into<String>) -> Self {
        Part { status, detail: detail.into(), latency_ms: None }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RegionHealth {
    pub region: String,
    pub healthy: bool,
    /// Why it is not healthy, one line per cause.
    pub reasons: Vec<String>,
    pub redis: Part,
    pub agents: Part,
    pub live_agents: Vec<Heartbeat>,
    pub queue: Option<QueueCounts>,
    /// The region's browser queue (`browser-<code>`), when it has a browser service configured or
    /// the queue is in use; its jobs wait for agents started with `--browser` only.
    pub browser_queue: Option<QueueCounts>,
    pub services: Part,
    pub service_counts: Vec<ServiceCounts>,
    pub app: Part,
}

/// Everything `health` looks at for one region.
/// `engine` is the region's Docker Engine and `stack` its stack's name.
pub async fn region(settings: &Settings, code: &str, engine: &EngineReach, stack: &str) -> RegionHealth {
    let mut reasons = Vec::new();
    let mut live_agents = Vec::new();
    let mut queue = None;
    let mut browser_queue = None;
    let suffix = crate::config::env_suffix(code);
    let endpoints = settings.regions.get(code);

    let (redis, agents) = match RedisEndpoint::resolve(settings, code) {
        Err(QueueError::NoRedis { .. }) => {
            reasons.push(format!("no Redis configured; set REDIS_URL_{suffix} or regions.{code}.redis_url"));
            (
                Part::new(Status::NotConfigured, format!("set REDIS_URL_{suffix}")),
                Part::new(Status::NotConfigured, "needs Redis"),
            )
        }
        Err(e) => {
            let message = e.to_string();
            reasons.push(message.clone());
            (Part::new(Status::Down, message), Part::new(Status::NotConfigured, "needs Redis"))
        }
        Ok(endpoint) => {
            let started = Instant::now();
            match RegionQueue::connect(&endpoint, &settings.tuning).await {
                Err(e) => {
                    let message = redis_side::problem(&endpoint, &e);
                    reasons.push(format!("Redis unreachable: {message}"));
                    (Part::new(Status::Down, message), Part::new(Status::Down, "Redis unreachable"))
                }
                Ok(region_queue) => {
                    let mut redis = Part::new(Status::Ok, endpoint.server());
                    redis.latency_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
                    let agents = match heartbeat::live(&region_queue).await {
                        Ok(list) if list.is_empty() => Part::new(Status::NotDeployed, "no heartbeat"),
                        Ok(list) => {
                            let part = Part::new(Status::Ok, format!("{} live", list.len()));
                            live_agents = list;
                            part
                        }
                        Err(e) => Part::new(Status::Down, e.to_string()),
                    };
                    match redis_side::queue(&region_queue).await {
                        Ok(counts) => {
                            if live_agents.is_empty() {
                                if let Some(age) =
                                    counts.oldest_waiting_seconds.filter(|&a| a > STALE_BACKLOG.as_secs_f64())
                                {
                                    reasons.push(format!(
                                        "{} job(s) waiting, the oldest for {:.0}s, and no live agent",
                                        counts.waiting, age
                                    ));
                                }
                            }
                            queue = Some(counts);
                        }
                        Err(e) => reasons.push(format!("reading the queue: {e}")),
                    }
                    match redis_side::browser_queue(settings, &region_queue).await {
                        Ok(Some(counts)) => {
                            let browsers = live_agents.iter().filter(|a| a.browser == Some(true)).count();
                            if let Some(age) = counts
                                .oldest_waiting_seconds
                                .filter(|&a| browsers == 0 && a > STALE_BACKLOG.as_secs_f64())
                            {
                                reasons.push(format!(
                                    "{} browser job(s) waiting, the oldest for {age:.0}s, and no live agent \
                                     started with --browser (the stack's browser service: regions.{code}.stack.browser_replicas)",
                                    counts.waiting
                                ));
                            }
                            browser_queue = Some(counts);
                        }
                        Ok(None) => {}
                        Err(e) => reasons.push(format!("reading the browser queue: {e}")),
                    }
                    region_queue.close().await;
                    (redis, agents)
                }
            }
        }
    };

    let (services, service_counts) = match engine.stack_services(stack).await {
        Err(part) => {
            if part.status == Status::Down {
                reasons.push(part.detail.clone());
            }
            (part, Vec::new())
        }
        Ok(counts) if counts.is_empty() => (Part::new(Status::NotDeployed, format!("no stack {stack}")), counts),
        Ok(counts) => {
            let short: Vec<String> = counts
                .iter()
                .filter(|c| c.running < c.desired)
                .map(|c| format!("{} {}/{}", c.name, c.running, c.desired))
                .collect();
            if short.is_empty() {
                (Part::new(Status::Ok, format!("{} service(s) at their replicas", counts.len())), counts)
            } else {
                reasons.push(format!("services below their replicas: {}", short.join(", ")));
                (Part::new(Status::Down, short.join(", ")), counts)
            }
        }
    };

    let app = match endpoints.and_then(|e| e.health_url.as_ref()) {
        None => Part::new(Status::NotConfigured, format!("set HEALTH_URL_{suffix} or regions.{code}.health_url")),
        Some(url) => {
            let spec = ProbeSpec::Http(HttpSpec::new(url.value.clone()));
            let result =
                crate::probe::run(&spec, &ProbeOptions { timeout: Duration::from_secs(10), ..Default::default() })
                    .await;
            let mut part = if result.up {
                Part::new(Status::Ok, url.value.clone())
            } else {
                let why = result.failure.as_ref().map(|f| f.message.clone()).unwrap_or_else(|| "down".into());
                reasons.push(format!("app health endpoint {} is down: {why}", url.value));
                Part::new(Status::Down, why)
            };
            part.latency_ms = Some(result.phases.total_ms);
            part
        }
    };

    RegionHealth {
        region: code.to_string(),
        healthy: reasons.is_empty(),
        reasons,
        redis,
        agents,
        live_agents,
        queue,
        browser_queue,
        services,
        service_counts,
        app,
    }
}
