//! What the pages and `/api/v1/…` show, read with the queries the CLI uses: `report` for uptime,
//! percentiles and series, `results::status` for each monitor's cross-region state,
//! `alert::manage` for incidents, `queue::status` for each region's backlog and agents.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::range::Range;
use super::DashboardError;
use crate::alert::manage::{self, Incident};
use crate::monitor::{Monitor, MonitorStore, Placement};
use crate::queue::heartbeat::Heartbeat;
use crate::queue::status::{self, Backlog};
use crate::queue::{RedisEndpoint, RegionQueue};
use crate::region::{Region, RegionStore};
use crate::report::{self, MonitorReport, Report};
use crate::results::query::{self, ResultRow};
use crate::results::status::{statuses, MonitorStatus};

/// How long a region's queue may take to answer before its card says so: a page polled every
/// few seconds must not wait on one unreachable Redis.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(3);
/// Recent failures and incidents a monitor page lists.
const LIST_LIMIT: i64 = 20;

/// The range as the response says it, with what it was read from.
#[derive(Debug, Clone, Serialize)]
pub struct RangeView {
    #[serde(flatten)]
    pub range: Range,
    /// Set when the whole days from `summarized_since` to `summarized_until` come from the daily
    /// summaries: percentiles and the TLS and first-byte averages then cover only the results
    /// outside those days.
    pub summarized_since: Option<DateTime<Utc>>,
    pub summarized_until: Option<DateTime<Utc>>,
}

/// `GET /api/v1/overview`.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub range: RangeView,
    pub regions: Vec<RegionCard>,
    /// Every monitor's cross-region state now, with its open incidents.
    pub monitors: Vec<MonitorStatus>,
}

/// One region's card.
#[derive(Debug, Clone, Serialize)]
pub struct RegionCard {
    pub code: String,
    pub name: String,
    /// The queue's backlog and live agents; `None` when it could not be read (see `queue_error`).
    pub queue: Option<Backlog>,
    pub queue_error: Option<String>,
    /// The live agents' versions, each once.
    pub agent_versions: Vec<String>,
    /// Checks of every monitor in the region over the range.
    pub checks: i64,
    pub successful: i64,
    pub uptime_percentage: Option<f64>,
    /// The highest p95 of the region's monitors: percentiles of different targets do not add up,
    /// so the card shows the slowest.
    pub slowest_p95_ms: Option<f64>,
    pub slowest_p95_monitor: Option<String>,
    /// Open incidents of the region itself (a region failure, not a target's).
    pub open_incidents: Vec<Incident>,
}

/// A monitor as the dashboard shows it: no config, no headers, the target's password masked.
#[derive(Debug, Clone, Serialize)]
pub struct MonitorView {
    pub id: Uuid,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub target: String,
    pub interval_seconds: i32,
    pub enabled: bool,
    pub down_rule: String,
    pub regions: Vec<String>,
}

impl From<&Monitor> for MonitorView {
    fn from(m: &Monitor) -> Self {
        MonitorView {
            id: m.id,
            name: m.name.clone(),
            kind: m.stored_type.clone(),
            target: crate::probe::display_url(&m.target),
            interval_seconds: m.interval_seconds,
            enabled: m.enabled,
            down_rule: m.down_rule.clone(),
            regions: m.region_codes(),
        }
    }
}

/// `GET /api/v1/monitors/{id}`.
#[derive(Debug, Clone, Serialize)]
pub struct MonitorPage {
    pub range: RangeView,
    pub monitor: MonitorView,
    pub status: MonitorStatus,
    /// Per-region statistics, series, landings and hop counts over the range.
    pub report: MonitorReport,
    pub bucket_seconds: i64,
    /// The monitor's incidents opened in the range, and any still open, newest first.
    pub incidents: Vec<Incident>,
    /// Its most recent failed checks in the range, newest first, with their errors (and a
    /// synthetic check's steps and screenshot size).
    pub failures: Vec<ResultRow>,
}

/// Reads the dashboard's data; holds one connection per region's queue, made on first use and
/// dropped when it fails, so a restarted Redis is found again.
pub struct Source {
    pub pool: PgPool,
    settings: crate::config::Settings,
    queues: tokio::sync::Mutex<HashMap<String, RegionQueue>>,
}

impl Source {
    pub fn new(pool: PgPool, settings: crate::config::Settings) -> Self {
        Source { pool, settings, queues: Default::default() }
    }

    fn store(&self) -> MonitorStore<'_> {
        // Reads only: placement rules matter to creation.
        MonitorStore::new(&self.pool, Placement { geo_distribution: true, default_region: None })
    }

    pub async fn overview(&self, range: &Range) -> Result<Overview, DashboardError> {
        let monitors = self.store().list().await?;
        let regions: Vec<Region> =
            RegionStore::new(&self.pool).list().await?.into_iter().filter(|r| r.is_active).collect();
        let report = report::build(&self.pool, &monitors, range.since, range.until).await?;
        let mut states = statuses(&self.pool, &monitors, Utc::now()).await?;
        let open = manage::list(&self.pool, true, None, 1000).await?;
        for state in &mut states {
            state.open_incidents = open.iter().filter(|i| i.monitor_id == Some(state.monitor_id)).cloned().collect();
        }
        let backlogs = futures::future::join_all(regions.iter().map(|r| self.backlog(&r.code))).await;
        let cards =
            regions.iter().zip(backlogs).map(|(region, backlog)| card(region, backlog, &report, &open)).collect();
        Ok(Overview { range: view(range, &report), regions: cards, monitors: states })
    }

    pub async fn monitor(&self, id: Uuid, range: &Range) -> Result<MonitorPage, DashboardError> {
        let monitor = self.store().find(id).await?.ok_or(DashboardError::NoMonitor(id))?;
        let one = std::slice::from_ref(&monitor);
        let mut report = report::build(&self.pool, one, range.since, range.until).await?;
        let mut state = statuses(&self.pool, one, Utc::now()).await?.pop().expect("one status per monitor");
        state.open_incidents = manage::open_for(&self.pool, &[id]).await?;
        let incidents = manage::list(&self.pool, false, Some(id), LIST_LIMIT)
            .await?
            .into_iter()
            .filter(|i| i.resolved_at.is_none() || (i.opened_at >= range.since && i.opened_at <= range.until))
            .collect();
        let failures = query::recent_failures(&self.pool, id, range.since, range.until, LIST_LIMIT).await?;
        Ok(MonitorPage {
            range: view(range, &report),
            monitor: MonitorView::from(&monitor),
            status: state,
            bucket_seconds: report.bucket_seconds,
            report: report.monitors.pop().expect("one report per monitor"),
            incidents,
            failures,
        })
    }

    /// The monitor's report as a whole, for the charts the static report draws.
    pub fn charts(page: &MonitorPage) -> Report {
        Report {
            since: page.range.range.since,
            until: page.range.range.until,
            bucket_seconds: page.bucket_seconds,
            summarized_since: page.range.summarized_since,
            summarized_until: page.range.summarized_until,
            monitors: vec![page.report.clone()],
            open_incidents: Vec::new(),
        }
    }

    /// The region's backlog, or why it cannot be read.
    async fn backlog(&self, region: &str) -> Result<Backlog, String> {
        let queue = {
            let cached = self.queues.lock().await.get(region).cloned();
            match cached {
                Some(queue) => queue,
                None => {
                    let endpoint = RedisEndpoint::resolve(&self.settings, region).map_err(|e| e.to_string())?;
                    let queue =
                        tokio::time::timeout(QUEUE_TIMEOUT, RegionQueue::connect(&endpoint, &self.settings.tuning))
                            .await
                            .map_err(|_| format!("Redis did not answer within {}s", QUEUE_TIMEOUT.as_secs()))?
                            .map_err(|e| e.to_string())?;
                    self.queues.lock().await.insert(region.to_string(), queue.clone());
                    queue
                }
            }
        };
        let read = tokio::time::timeout(QUEUE_TIMEOUT, status::backlog(&queue)).await;
        match read {
            Ok(Ok(backlog)) => Ok(backlog),
            failed => {
                self.queues.lock().await.remove(region);
                Err(match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("Redis did not answer within {}s", QUEUE_TIMEOUT.as_secs()),
                })
            }
        }
    }
}

fn view(range: &Range, report: &Report) -> RangeView {
    RangeView {
        range: range.clone(),
        summarized_since: report.summarized_since,
        summarized_until: report.summarized_until,
    }
}

fn card(region: &Region, backlog: Result<Backlog, String>, report: &Report, open: &[Incident]) -> RegionCard {
    let (mut checks, mut successful) = (0, 0);
    let mut slowest: Option<(f64, &str)> = None;
    for monitor in &report.monitors {
        for r in monitor.regions.iter().filter(|r| r.stats.region == region.code) {
            checks += r.stats.checks;
            successful += r.stats.successful;
            if let Some(p95) = r.stats.p95_ms.filter(|p| slowest.is_none_or(|(s, _)| *p > s)) {
                slowest = Some((p95, &monitor.name));
            }
        }
    }
    let mut versions: Vec<String> =
        backlog.as_ref().map(|b| b.agents.iter().map(|a: &Heartbeat| a.version.clone()).collect()).unwrap_or_default();
    versions.sort();
    versions.dedup();
    let (queue, queue_error) = match backlog {
        Ok(b) => (Some(b), None),
        Err(e) => (None, Some(e)),
    };
    RegionCard {
        code: region.code.clone(),
        name: region.name.clone(),
        queue,
        queue_error,
        agent_versions: versions,
        checks,
        successful,
        uptime_percentage: (checks > 0).then(|| 100.0 * successful as f64 / checks as f64),
        slowest_p95_ms: slowest.map(|(p, _)| p),
        slowest_p95_monitor: slowest.map(|(_, m)| m.to_string()),
        open_incidents: open
            .iter()
            .filter(|i| i.monitor_id.is_none() && i.region_code.as_deref() == Some(region.code.as_str()))
            .cloned()
            .collect(),
    }
}
