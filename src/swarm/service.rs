//! Services and their tasks: listing a stack's, and waiting until they run
//! what was asked — or saying why they never will.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bollard::models::{Service, ServiceUpdateStatusStateEnum, Task, TaskState};
use bollard::query_parameters::{ListServicesOptions, ListTasksOptions};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::NAMESPACE_LABEL;
use super::{Engine, SwarmError};

/// Failed tasks of one service, since the change, that make a crash loop.
const CRASH_LOOP_FAILURES: usize = 3;
const POLL: Duration = Duration::from_millis(250);

impl Engine {
    /// The services of stack `namespace`, sorted by name.
    pub async fn stack_services(&self, namespace: &str) -> Result<Vec<Service>, SwarmError> {
        let filters = HashMap::from([("label".to_string(), vec![format!("{NAMESPACE_LABEL}={namespace}")])]);
        let mut services = self
            .docker
            .list_services(Some(ListServicesOptions { filters: Some(filters), status: Some(true) }))
            .await
            .map_err(SwarmError::api("listing services"))?;
        services.sort_by_key(|s| service_name(s).to_string());
        Ok(services)
    }

    /// The tasks of the given services (all of them, old and new).
    pub async fn tasks_of(&self, service_ids: &[String]) -> Result<Vec<Task>, SwarmError> {
        if service_ids.is_empty() {
            return Ok(Vec::new());
        }
        let filters = HashMap::from([("service".to_string(), service_ids.to_vec())]);
        self.docker
            .list_tasks(Some(ListTasksOptions { filters: Some(filters) }))
            .await
            .map_err(SwarmError::api("listing tasks"))
    }

    /// Waits until every service runs its desired replicas of its current
    /// spec. Fails fast, with the task's own error, on a rejected task, a
    /// crash loop, a rollback of a rolling update in `rolling` (ids of the
    /// services whose tasks this run's spec update replaces, see
    /// [`rolls_tasks`]), or a task no node can take. Tasks in `before` (ids
    /// that existed before the change) are history, not failures.
    pub async fn wait_services(
        &self,
        service_ids: &[String],
        rolling: &HashSet<String>,
        before: &HashSet<String>,
        timeout: Duration,
        progress: Option<&MultiProgress>,
    ) -> Result<(), SwarmError> {
        if service_ids.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let mut bars: HashMap<String, ProgressBar> = HashMap::new();
        let style = ProgressStyle::with_template("{prefix:>32} [{bar:20}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> ");
        loop {
            let filters = HashMap::from([("id".to_string(), service_ids.to_vec())]);
            let services = self
                .docker
                .list_services(Some(ListServicesOptions { filters: Some(filters), status: Some(true) }))
                .await
                .map_err(SwarmError::api("listing services"))?;
            let tasks = self.tasks_of(service_ids).await?;
            let mut all_done = true;
            for service in &services {
                let id = service.id.clone().unwrap_or_default();
                let name = service_name(service).to_string();
                let own: Vec<&Task> = tasks.iter().filter(|t| t.service_id.as_deref() == Some(&id)).collect();
                let state = judge(service, &own, before, rolling.contains(&id))
                    .map_err(|message| SwarmError::Converge { service: name.clone(), message })?;
                if let Some(multi) = progress {
                    let bar = bars.entry(id.clone()).or_insert_with(|| {
                        let bar = multi.add(ProgressBar::new(state.desired));
                        bar.set_style(style.clone());
                        bar.set_prefix(name.clone());
                        bar
                    });
                    bar.set_length(state.desired);
                    bar.set_position(state.running.min(state.desired));
                    bar.set_message(state.note.clone());
                }
                all_done &= state.done;
            }
            if all_done {
                for bar in bars.values() {
                    bar.finish();
                }
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(SwarmError::Converge {
                    service: service_ids.join(", "),
                    message: format!("not converged after {} s", timeout.as_secs()),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// A service's progress towards its spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Convergence {
    pub desired: u64,
    pub running: u64,
    pub done: bool,
    pub note: String,
}

pub fn service_name(service: &Service) -> &str {
    service.spec.as_ref().and_then(|s| s.name.as_deref()).unwrap_or_default()
}

/// Replicas asked for (global services: one per task the scheduler made).
pub fn desired_replicas(service: &Service, tasks: &[&Task]) -> u64 {
    let mode = service.spec.as_ref().and_then(|s| s.mode.as_ref());
    match mode.and_then(|m| m.replicated.as_ref()) {
        Some(r) => r.replicas.unwrap_or(1).max(0) as u64,
        None => tasks.iter().filter(|t| t.desired_state == Some(TaskState::RUNNING)).count() as u64,
    }
}

/// The rollback of an earlier update, which left the service on its previous
/// spec: its `UpdateStatus` stays until the next update, so it says nothing
/// about a run that did not update the service. The message is Swarm's.
pub fn previous_rollback(service: &Service) -> Option<String> {
    let status = service.update_status.as_ref()?;
    matches!(
        status.state,
        Some(ServiceUpdateStatusStateEnum::ROLLBACK_STARTED | ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED)
    )
    .then(|| status.message.clone().unwrap_or_default())
}

/// Whether updating a service from `before` to `after` (both as the engine
/// shows them) makes Swarm replace its tasks: a rolling update, which Swarm
/// reports in `UpdateStatus`. The task template or the published ports
/// changed; placement alone does not count, as Swarm keeps a task whose node
/// still satisfies the new constraints (and then reports no update at all).
pub fn rolls_tasks(before: &Service, after: &Service) -> bool {
    let parts = |s: &Service| {
        let spec = s.spec.clone().unwrap_or_default();
        let mut template = spec.task_template.unwrap_or_default();
        template.placement = None;
        (template, spec.endpoint_spec)
    };
    parts(before) != parts(after)
}

/// Where one service stands, from its tasks: converged, on its way, or
/// failed (the error says why, in the engine's words). `rolling`: this run's
/// spec update replaces the service's tasks. Swarm clears `UpdateStatus` on
/// every spec update and sets it once its updater starts, so for a rolling
/// update it is this run's: not done until Swarm says COMPLETED (the old
/// tasks still run meanwhile, and a task that fails within the update's
/// monitor period still rolls it back), failed on a rollback. Otherwise any
/// status is an earlier update's, and the service is judged by its tasks.
pub fn judge(
    service: &Service,
    tasks: &[&Task],
    before: &HashSet<String>,
    rolling: bool,
) -> Result<Convergence, String> {
    let desired = desired_replicas(service, tasks);
    let state_of = |t: &Task| t.status.as_ref().and_then(|s| s.state);
    let error_of = |t: &Task| {
        let status = t.status.clone().unwrap_or_default();
        let exit = status.container_status.and_then(|c| c.exit_code).filter(|c| *c != 0);
        let text = status.err.filter(|e| !e.is_empty()).or(status.message).unwrap_or_default();
        match exit {
            Some(code) if !text.contains("exit") => format!("{text} (exit code {code})"),
            _ => text,
        }
    };
    let new = |t: &&&Task| !t.id.as_ref().is_some_and(|id| before.contains(id));

    if let Some(status) = &service.update_status {
        let message = status.message.clone().unwrap_or_default();
        match status.state {
            Some(ServiceUpdateStatusStateEnum::ROLLBACK_STARTED)
            | Some(ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED)
                if !rolling => {}
            Some(ServiceUpdateStatusStateEnum::ROLLBACK_STARTED)
            | Some(ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED)
            | Some(ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED) => {
                let cause = last_failure(tasks.iter().filter(new).copied(), &error_of);
                return Err(format!("the update was rolled back ({message}){cause}"));
            }
            Some(ServiceUpdateStatusStateEnum::PAUSED) => {
                let cause = last_failure(tasks.iter().filter(new).copied(), &error_of);
                return Err(format!("the update paused ({message}){cause}"));
            }
            _ => {}
        }
    }
    for task in tasks.iter().filter(new) {
        if state_of(task) == Some(TaskState::REJECTED) {
            return Err(format!("a task was rejected: {}", error_of(task)));
        }
        let pending = matches!(state_of(task), Some(TaskState::PENDING));
        let err = task.status.as_ref().and_then(|s| s.err.clone()).unwrap_or_default();
        if pending && (err.contains("no suitable node") || err.contains("insufficient resources")) {
            return Err(format!("no node can run it: {err}"));
        }
    }
    let failed: Vec<&Task> =
        tasks.iter().filter(new).copied().filter(|t| state_of(t) == Some(TaskState::FAILED)).collect();
    if failed.len() >= CRASH_LOOP_FAILURES {
        let cause = last_failure(failed.iter().copied(), &error_of);
        return Err(format!("crash loop: {} tasks failed{cause}", failed.len()));
    }
    let running = tasks
        .iter()
        .filter(|t| t.desired_state == Some(TaskState::RUNNING) && state_of(t) == Some(TaskState::RUNNING))
        .count() as u64;
    let starting = tasks
        .iter()
        .filter(|t| t.desired_state == Some(TaskState::RUNNING) && state_of(t) != Some(TaskState::RUNNING))
        .count();
    let stopping = tasks
        .iter()
        .filter(|t| t.desired_state != Some(TaskState::RUNNING) && state_of(t) == Some(TaskState::RUNNING))
        .count();
    let update_state = service.update_status.as_ref().and_then(|s| s.state);
    let updating = if rolling {
        desired > 0 && update_state != Some(ServiceUpdateStatusStateEnum::COMPLETED)
    } else {
        // An earlier update still under way (a rollback brings the tasks back to the spec).
        matches!(
            update_state,
            Some(ServiceUpdateStatusStateEnum::UPDATING | ServiceUpdateStatusStateEnum::ROLLBACK_STARTED)
        )
    };
    let done = running == desired && starting == 0 && stopping == 0 && !updating;
    let note = if done {
        "converged".to_string()
    } else if let Some(f) = failed.last() {
        format!("retrying after: {}", error_of(f))
    } else if updating {
        "updating".to_string()
    } else {
        format!("{starting} starting, {stopping} stopping")
    };
    Ok(Convergence { desired, running, done, note })
}

fn last_failure<'a>(tasks: impl Iterator<Item = &'a Task>, error_of: &impl Fn(&Task) -> String) -> String {
    let mut failed: Vec<&Task> = tasks
        .filter(|t| matches!(t.status.as_ref().and_then(|s| s.state), Some(TaskState::FAILED | TaskState::REJECTED)))
        .collect();
    failed.sort_by_key(|t| t.updated_at.clone().map(|d| d.to_string()));
    failed.last().map(|t| format!("; last task error: {}", error_of(t))).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, ServiceUpdateStatus, TaskStatus};

    fn service(state: ServiceUpdateStatusStateEnum) -> Service {
        Service {
            spec: Some(ServiceSpec {
                mode: Some(ServiceSpecMode {
                    replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_status: Some(ServiceUpdateStatus {
                state: Some(state),
                message: Some("update rolled back due to failure or early termination of task abc".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn running(id: &str) -> Task {
        Task {
            id: Some(id.into()),
            desired_state: Some(TaskState::RUNNING),
            status: Some(TaskStatus { state: Some(TaskState::RUNNING), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn a_rolling_update_is_done_when_swarm_says_completed() {
        let tasks = [running("old")];
        let tasks: Vec<&Task> = tasks.iter().collect();
        let mut updated = service(ServiceUpdateStatusStateEnum::COMPLETED);
        updated.update_status = None;
        // Right after the update call the old task still runs and Swarm has said nothing yet.
        assert!(!judge(&updated, &tasks, &HashSet::new(), true).unwrap().done);
        assert!(judge(&updated, &tasks, &HashSet::new(), false).unwrap().done, "nothing to replace");
        let state = judge(&service(ServiceUpdateStatusStateEnum::UPDATING), &tasks, &HashSet::new(), true).unwrap();
        assert!(!state.done);
        let state = judge(&service(ServiceUpdateStatusStateEnum::COMPLETED), &tasks, &HashSet::new(), true).unwrap();
        assert!(state.done);
    }

    #[test]
    fn only_the_task_template_and_ports_roll_tasks() {
        use bollard::models::{TaskSpec, TaskSpecContainerSpec, TaskSpecPlacement};
        let with = |image: &str, constraint: &str| Service {
            spec: Some(ServiceSpec {
                task_template: Some(TaskSpec {
                    container_spec: Some(TaskSpecContainerSpec { image: Some(image.into()), ..Default::default() }),
                    placement: Some(TaskSpecPlacement {
                        constraints: Some(vec![constraint.into()]),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(rolls_tasks(&with("a", "node.labels.r == x"), &with("b", "node.labels.r == x")));
        assert!(!rolls_tasks(&with("a", "node.labels.r == x"), &with("a", "node.labels.q == x")));
        let mut scaled = with("a", "node.labels.r == x");
        scaled.spec.as_mut().unwrap().mode = Some(ServiceSpecMode::default());
        assert!(!rolls_tasks(&with("a", "node.labels.r == x"), &scaled));
    }

    #[test]
    fn an_earlier_rollback_is_history_for_a_run_that_changed_nothing() {
        let tasks = [running("t1")];
        let tasks: Vec<&Task> = tasks.iter().collect();
        let rolled_back = service(ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED);
        let state = judge(&rolled_back, &tasks, &HashSet::new(), false).unwrap();
        assert!(state.done, "{state:?}");
        assert!(previous_rollback(&rolled_back).unwrap().contains("rolled back due to failure"));

        // This run's own rolling update rolled back: a failure.
        let err = judge(&rolled_back, &tasks, &HashSet::new(), true).unwrap_err();
        assert!(err.contains("the update was rolled back"), "{err}");

        // A rollback under way is not done yet, and not a failure.
        let rolling = service(ServiceUpdateStatusStateEnum::ROLLBACK_STARTED);
        assert!(!judge(&rolling, &tasks, &HashSet::new(), false).unwrap().done);

        // A paused rollback left tasks off the spec, whoever started it.
        let paused = service(ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED);
        assert!(judge(&paused, &tasks, &HashSet::new(), false).is_err());
        assert_eq!(previous_rollback(&paused), None);
    }
}
