//! Whether a deployed region really works: Swarm calls a task running once
//! its health check passes, but only a heartbeat in the region's Redis shows
//! the agent is connected and taking jobs. [`wait_agents`] waits for both,
//! reading heartbeats exactly as `queue status` does ([`heartbeat::live`]).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bollard::models::TaskState;
use serde::Serialize;

use crate::queue::heartbeat::{self, Heartbeat};
use crate::queue::RegionQueue;
use crate::swarm::service::service_name;
use crate::swarm::{Engine, SwarmError};

const POLL: Duration = Duration::from_millis(500);

/// The service of a stack that runs the agents.
pub const AGENT_SERVICE: &str = "agent";

/// The running agents of a region, each with its heartbeat.
#[derive(Debug, Clone, Serialize)]
pub struct AgentsReady {
    pub service: String,
    pub agents: Vec<Heartbeat>,
    /// Seconds spent waiting for them.
    pub waited_seconds: f64,
}

/// What one look at the engine and Redis found.
struct Look {
    desired: u64,
    /// Host names (a task's short container id, Docker's default host name) of running tasks.
    running: BTreeSet<String>,
    beating: Vec<Heartbeat>,
    redis_error: Option<String>,
}

impl Look {
    fn missing(&self) -> Vec<&String> {
        self.running.iter().filter(|h| !self.beating.iter().any(|b| &b.host == *h)).collect()
    }

    fn ready(&self) -> bool {
        self.running.len() as u64 >= self.desired && self.desired > 0 && self.missing().is_empty()
    }

    /// Names what is missing, for the timeout error.
    fn shortfall(&self, queue: &RegionQueue) -> String {
        let mut parts = Vec::new();
        if (self.running.len() as u64) < self.desired {
            parts.push(format!("{} of {} task(s) running and healthy", self.running.len(), self.desired));
        }
        let missing = self.missing();
        if !missing.is_empty() {
            let hosts: Vec<&str> = missing.iter().map(|h| h.as_str()).collect();
            parts.push(format!(
                "no heartbeat (key {}*) in the region's Redis at {} from task container(s) {}",
                heartbeat::key(&queue.region, ""),
                queue.endpoint(),
                hosts.join(", ")
            ));
        }
        if let Some(e) = &self.redis_error {
            parts.push(format!("reading heartbeats failed: {e}"));
        }
        parts.join("; ")
    }
}

/// Waits until every replica of `<stack>_agent` runs (healthy, as Swarm
/// reports it) and has a live heartbeat in `queue`'s Redis, matched by host
/// name: a task's container is named after its short container id unless the
/// template sets a host name, in which case the count of heartbeats must reach
/// the replicas. Fails after `timeout` naming what was missing.
pub async fn wait_agents(
    engine: &Engine,
    queue: &RegionQueue,
    stack: &str,
    timeout: Duration,
) -> Result<AgentsReady, SwarmError> {
    let name = format!("{stack}_{AGENT_SERVICE}");
    let started = Instant::now();
    loop {
        let look = look(engine, queue, &name).await?;
        if look.ready() {
            let mut agents = look.beating;
            agents.retain(|b| look.running.contains(&b.host));
            return Ok(AgentsReady { service: name, agents, waited_seconds: started.elapsed().as_secs_f64() });
        }
        if started.elapsed() >= timeout {
            return Err(SwarmError::AgentsNotReady {
                region: queue.region.clone(),
                waited: timeout.as_secs(),
                missing: look.shortfall(queue),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn look(engine: &Engine, queue: &RegionQueue, name: &str) -> Result<Look, SwarmError> {
    let stack = name.rsplit_once('_').map_or(name, |(s, _)| s);
    let services = engine.stack_services(stack).await?;
    let Some(service) = services.iter().find(|s| service_name(s) == name) else {
        return Err(SwarmError::Invalid(format!(
            "the stack has no service `{name}` to wait for; the template must define a service named `{AGENT_SERVICE}`"
        )));
    };
    let id = service.id.clone().unwrap_or_default();
    let tasks = engine.tasks_of(std::slice::from_ref(&id)).await?;
    let own: Vec<_> = tasks.iter().collect();
    let desired = crate::swarm::service::desired_replicas(service, &own);
    let custom_host = service
        .spec
        .as_ref()
        .and_then(|s| s.task_template.as_ref())
        .and_then(|t| t.container_spec.as_ref())
        .and_then(|c| c.hostname.as_ref())
        .is_some_and(|h| !h.is_empty());
    let running_tasks: Vec<_> = tasks
        .iter()
        .filter(|t| t.desired_state == Some(TaskState::RUNNING))
        .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
        .collect();
    let (beating, redis_error) = match heartbeat::live(queue).await {
        Ok(b) => (b, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let running: BTreeSet<String> = if custom_host {
        // No way to tell the tasks' heartbeats apart: any live ones count, up to the tasks.
        beating.iter().take(running_tasks.len()).map(|b| b.host.clone()).collect()
    } else {
        running_tasks
            .iter()
            .filter_map(|t| t.status.as_ref()?.container_status.as_ref()?.container_id.clone())
            .map(|id| id.chars().take(12).collect())
            .collect()
    };
    Ok(Look { desired, running, beating, redis_error })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(host: &str) -> Heartbeat {
        Heartbeat {
            id: format!("{host}-1"),
            host: host.into(),
            version: "0".into(),
            started_at: String::new(),
            jobs_done: 0,
            browser: None,
        }
    }

    #[test]
    fn ready_needs_every_running_task_beating() {
        let running: BTreeSet<String> = ["aaa".to_string(), "bbb".to_string()].into();
        let look = Look { desired: 2, running: running.clone(), beating: vec![beat("aaa")], redis_error: None };
        assert!(!look.ready());
        assert_eq!(look.missing(), vec!["bbb"]);
        let look =
            Look { desired: 2, running: running.clone(), beating: vec![beat("aaa"), beat("bbb")], redis_error: None };
        assert!(look.ready());
        let look = Look { desired: 3, running, beating: vec![beat("aaa"), beat("bbb")], redis_error: None };
        assert!(!look.ready(), "a replica short");
        let look = Look { desired: 0, running: BTreeSet::new(), beating: vec![], redis_error: None };
        assert!(!look.ready(), "no agent is not a ready region");
    }
}
