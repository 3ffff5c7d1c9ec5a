//! What the pages and `/api/v1/…` show, read with the queries the CLI uses: `report` for uptime,
//! percentiles and series, `results::status` for each monitor's cross-region state,
//! `alert::manage` for incidents, `queue::status` for each region's backlog and agents.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::cache::Memo;
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
/// How long the overview's present (each monitor's latest results, open incidents, the queues)
/// is served before it is read again: half the pages' refresh period, so each refresh shows
/// what changed since the one before.
const STATE_MAX_AGE: Duration = Duration::from_secs(5);

/// How long a preset range's figures (the cards', and a monitor's report, incidents and
/// failures) are served before they are computed again: a 1,440th of the range (a day's figures
/// a minute old, the last hour's a few seconds), at least [`STATE_MAX_AGE`], at most five
/// minutes. What they cover travels with them (`range`).
fn range_max_age(range: &Range) -> Duration {
    let span = (range.until - range.since).to_std().unwrap_or_default();
    (span / 1440).clamp(STATE_MAX_AGE, Duration::from_secs(300))
}

/// The youngest a monitor's report over a preset range is computed again: the page's refresh
/// period. Its state comes from the present (5 s); its report over the last hour would otherwise
/// be read again every 5 s for every monitor someone looks at, and a monitor page's report
/// moves little in 10 s (a bucket of the hour's chart is a minute).
const REPORT_MIN_AGE: Duration = Duration::from_secs(super::server::REFRESH_SECONDS as u64);

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
/// dropped when it fails, so a restarted Redis is found again. Cheap to clone (the clones share
/// everything), so a refresh can run in a task of its own.
#[derive(Clone)]
pub struct Source {
    pub pool: PgPool,
    settings: Arc<crate::config::Settings>,
    queues: Arc<tokio::sync::Mutex<HashMap<String, RegionQueue>>>,
    /// Each preset range's figures for the region cards.
    figures: Arc<Memo<RangeFigures>>,
    /// The present, the same for every range.
    present: Arc<Memo<Present>>,
    /// Each monitor's report over each preset range, by `<id> <range>`.
    reports: Arc<Memo<MonitorFigures>>,
    /// Each preset range's overview as last built, with its JSON, and the two it was built from:
    /// it is built again only when one of them was renewed.
    built: Arc<Mutex<HashMap<String, Built>>>,
}

/// An overview and its JSON (`GET /api/v1/overview` answers with these bytes).
pub struct OverviewAnswer {
    pub overview: Overview,
    pub json: bytes::Bytes,
}

struct Built {
    figures: Arc<RangeFigures>,
    present: Arc<Present>,
    answer: Arc<OverviewAnswer>,
}

/// What the region cards show of a range, read from the report of every monitor.
struct RangeFigures {
    view: RangeView,
    regions: HashMap<String, RegionFigures>,
}

#[derive(Default)]
struct RegionFigures {
    checks: i64,
    successful: i64,
    /// The highest p95 of the region's monitors, and whose.
    slowest: Option<(f64, String)>,
}

/// A monitor's report over a range, the range it covers, the monitor's incidents opened in it
/// (and any still open) and its recent failures in it.
struct MonitorFigures {
    range: Range,
    report: Report,
    incidents: Vec<Incident>,
    failures: Vec<ResultRow>,
}

/// What is true now, whatever the range.
struct Present {
    regions: Vec<Region>,
    backlogs: Vec<Result<Backlog, String>>,
    /// Every monitor, and its cross-region state with its open incidents (in the same order).
    catalogue: Vec<Monitor>,
    monitors: Vec<MonitorStatus>,
    open: Vec<Incident>,
}

impl Source {
    pub fn new(pool: PgPool, settings: crate::config::Settings) -> Self {
        Source {
            pool,
            settings: Arc::new(settings),
            queues: Default::default(),
            figures: Default::default(),
            present: Default::default(),
            reports: Default::default(),
            built: Default::default(),
        }
    }

    fn store(&self) -> MonitorStore<'_> {
        // Reads only: placement rules matter to creation.
        MonitorStore::new(&self.pool, Placement { geo_distribution: true, default_region: None })
    }

    /// The overview of a range. A preset range's is served from memory while its parts are
    /// young enough (see [`range_max_age`] and [`STATE_MAX_AGE`]); a custom range is read anew.
    pub async fn overview(&self, range: &Range) -> Result<Arc<OverviewAnswer>, DashboardError> {
        let preset = range.name != "custom";
        // The figures first: when they take long, the present read after them is still fresh.
        let figures = if preset {
            let (source, now) = (self.clone(), range.clone());
            self.figures
                .get(&range.name, range_max_age(range), || async move { source.read_figures(&now).await })
                .await?
        } else {
            Arc::new(self.read_figures(range).await?)
        };
        let present = self.present().await?;
        if let Some(built) = self.built.lock().expect("built lock").get(&range.name) {
            if Arc::ptr_eq(&built.figures, &figures) && Arc::ptr_eq(&built.present, &present) {
                return Ok(built.answer.clone());
            }
        }
        let overview = assemble(&figures, &present);
        let json = serde_json::to_vec(&overview).map_err(|e| DashboardError::Template(e.to_string()))?.into();
        let answer = Arc::new(OverviewAnswer { overview, json });
        if preset {
            let built = Built { figures, present, answer: answer.clone() };
            self.built.lock().expect("built lock").insert(range.name.clone(), built);
        }
        Ok(answer)
    }

    async fn present(&self) -> Result<Arc<Present>, DashboardError> {
        let source = self.clone();
        self.present.get("present", STATE_MAX_AGE, || async move { source.read_present().await }).await
    }

    /// The region cards' figures: each monitor's statistics alone (no series, no landings: the
    /// overview draws neither).
    async fn read_figures(&self, range: &Range) -> Result<RangeFigures, DashboardError> {
        let monitors = self.store().list().await?;
        let ids: Vec<Uuid> = monitors.iter().map(|m| m.id).collect();
        let names: HashMap<Uuid, &str> = monitors.iter().map(|m| (m.id, m.name.as_str())).collect();
        let stats = report::stats(&self.pool, &ids, range.since, range.until).await?;
        let mut regions: HashMap<String, RegionFigures> = HashMap::new();
        for r in &stats.regions {
            let figures = regions.entry(r.region.clone()).or_default();
            figures.checks += r.checks;
            figures.successful += r.successful;
            if let Some(p95) = r.p95_ms.filter(|p| figures.slowest.as_ref().is_none_or(|(s, _)| p > s)) {
                let name = names.get(&r.monitor_id).copied().unwrap_or_default();
                figures.slowest = Some((p95, name.to_string()));
            }
        }
        let view = RangeView {
            range: range.clone(),
            summarized_since: stats.summarized_since,
            summarized_until: stats.summarized_until,
        };
        Ok(RangeFigures { view, regions })
    }

    async fn read_present(&self) -> Result<Present, DashboardError> {
        let monitors = self.store().list().await?;
        let regions: Vec<Region> =
            RegionStore::new(&self.pool).list().await?.into_iter().filter(|r| r.is_active).collect();
        let mut states = statuses(&self.pool, &monitors, Utc::now()).await?;
        let open = manage::list(&self.pool, true, None, 1000).await?;
        for state in &mut states {
            state.open_incidents = open.iter().filter(|i| i.monitor_id() == Some(state.monitor_id)).cloned().collect();
        }
        let backlogs = futures::future::join_all(regions.iter().map(|r| self.backlog(&r.code))).await;
        Ok(Present { regions, backlogs, catalogue: monitors, monitors: states, open })
    }

    /// A monitor's page: its state from the present the overview also reads (a monitor created
    /// since is read on its own), its report, incidents and failures over a preset range served
    /// from memory like the overview's figures, so a page already asked for costs no query.
    pub async fn monitor(&self, id: Uuid, range: &Range) -> Result<MonitorPage, DashboardError> {
        let present = self.present().await?;
        let (monitor, state) = match present.catalogue.iter().position(|m| m.id == id) {
            Some(i) => (present.catalogue[i].clone(), present.monitors[i].clone()),
            None => {
                let monitor = self.store().find(id).await?.ok_or(DashboardError::NoMonitor(id))?;
                let one = std::slice::from_ref(&monitor);
                let mut state = statuses(&self.pool, one, Utc::now()).await?.pop().expect("one status per monitor");
                state.open_incidents = manage::open_for(&self.pool, &[id]).await?;
                (monitor, state)
            }
        };
        let figures = if range.name != "custom" {
            let (source, one, now) = (self.clone(), monitor.clone(), range.clone());
            let key = format!("{id} {}", range.name);
            let max_age = range_max_age(range).max(REPORT_MIN_AGE);
            self.reports.get(&key, max_age, || async move { source.read_monitor(one, now).await }).await?
        } else {
            Arc::new(self.read_monitor(monitor.clone(), range.clone()).await?)
        };
        let report = &figures.report;
        Ok(MonitorPage {
            range: RangeView {
                range: figures.range.clone(),
                summarized_since: report.summarized_since,
                summarized_until: report.summarized_until,
            },
            monitor: MonitorView::from(&monitor),
            status: state,
            bucket_seconds: report.bucket_seconds,
            report: report.monitors.first().cloned().expect("one report per monitor"),
            incidents: figures.incidents.clone(),
            failures: figures.failures.clone(),
        })
    }

    /// A monitor's report, incidents and failures, read side by side.
    async fn read_monitor(&self, monitor: Monitor, range: Range) -> Result<MonitorFigures, DashboardError> {
        let id = monitor.id;
        let (report, incidents, failures) = tokio::try_join!(
            async {
                Ok::<_, DashboardError>(
                    report::build(&self.pool, std::slice::from_ref(&monitor), range.since, range.until).await?,
                )
            },
            async { Ok(manage::list(&self.pool, false, Some(id), LIST_LIMIT).await?) },
            async { Ok(query::recent_failures(&self.pool, id, range.since, range.until, LIST_LIMIT).await?) },
        )?;
        let incidents = incidents
            .into_iter()
            .filter(|i| i.resolved_at.is_none() || (i.opened_at >= range.since && i.opened_at <= range.until))
            .collect();
        Ok(MonitorFigures { range, report, incidents, failures })
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

fn assemble(figures: &RangeFigures, present: &Present) -> Overview {
    let cards = present
        .regions
        .iter()
        .zip(&present.backlogs)
        .map(|(region, backlog)| card(region, backlog.clone(), figures.regions.get(&region.code), &present.open))
        .collect();
    Overview { range: figures.view.clone(), regions: cards, monitors: present.monitors.clone() }
}

fn card(
    region: &Region,
    backlog: Result<Backlog, String>,
    figures: Option<&RegionFigures>,
    open: &[Incident],
) -> RegionCard {
    let (checks, successful) = figures.map_or((0, 0), |f| (f.checks, f.successful));
    let slowest = figures.and_then(|f| f.slowest.clone());
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
        slowest_p95_ms: slowest.as_ref().map(|(p, _)| *p),
        slowest_p95_monitor: slowest.map(|(_, m)| m),
        open_incidents: open
            .iter()
            .filter(|i| i.monitor.is_none() && i.region.as_deref() == Some(region.code.as_str()))
            .cloned()
            .collect(),
    }
}
