//! `monitor check|status|results`: running a monitor's check now, and reading
//! what the regions measured.

use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;

use super::super::checks::parse_interval;
use super::super::Context;
use crate::cli::output::{flow_tables, located_tables, ms, or_dash, Located};
use crate::error::TargetDown;
use crate::error::{self, input_error};
use crate::monitor::{check, MonitorError, MonitorStore};
use crate::probe::FailureKind;
use crate::region::RegionStore;
use crate::results::run::{self, Measured};
use crate::results::{self, query, status};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Monitor id or name
    monitor: String,
    /// Region to record the result for [default: the default region if the monitor runs there, else its first]
    #[arg(long)]
    region: Option<String>,
    /// Run and print, but do not record
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Monitor id or name [default: every monitor]
    monitor: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ResultsArgs {
    /// Monitor id or name
    monitor: String,
    /// Only results measured from this region
    #[arg(long)]
    region: Option<String>,
    /// How far back to look, e.g. 1h, 7d
    #[arg(long, value_parser = parse_interval, default_value = "1h")]
    since: Duration,
    /// At most this many rows
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    limit: i64,
    /// Write the screenshot stored with result ID (a failed browser step's PNG) to stdout
    #[arg(long, value_name = "RESULT_ID")]
    screenshot: Option<i64>,
}

pub async fn check(ctx: &Context, pool: &PgPool, store: &MonitorStore<'_>, args: CheckArgs) -> error::Result<()> {
    let geo = ctx.geo()?;
    let monitor = store.get(&args.monitor).await?;
    let region_code = match args.region {
        Some(code) => code,
        None => {
            let default = match &ctx.settings.default_region {
                Some(d) => d.value.clone(),
                None => RegionStore::default_code(pool).await?,
            };
            let codes = monitor.region_codes();
            if codes.contains(&default) {
                default
            } else {
                codes.first().cloned().unwrap_or(default)
            }
        }
    };
    let assignment = monitor.regions.iter().find(|r| r.region == region_code);
    if assignment.is_none() {
        // An unknown code gets the region error with the active list; a known one "not in region".
        RegionStore::new(pool).get(&region_code).await?;
        return Err(MonitorError::NotInRegion { monitor: monitor.name.clone(), region: region_code }.into());
    }
    let plan = check::plan(&monitor, assignment)?;
    // A manual check of a monitor that traces traces too.
    let (recorded, measured) = run::run(&plan, monitor.id, &region_code, &geo, true).await;
    if let Measured::Probe(_, Some(route)) = &measured {
        if let Some(failure) = route.failure.as_ref().filter(|f| f.kind == FailureKind::NotPermitted) {
            return Err(input_error(format!(
                "cannot trace the route of {} (it has trace_every set): {}; nothing recorded",
                monitor.name, failure.message
            )));
        }
    }
    if args.dry_run {
        crate::cli::output::note(format!("checked {} for region {region_code}; not recorded (dry run)", monitor.name));
    } else {
        results::record(pool, std::slice::from_ref(&recorded)).await?;
        crate::cli::output::note(format!("checked {} for region {region_code}; result recorded", monitor.name));
    }
    let failure = match &measured {
        Measured::Probe(result, route) => {
            let shown = Located::new(result, geo.is_configured(), recorded.target.as_ref()).with_route(route.as_ref());
            ctx.printer.print(&shown, |p| located_tables(p, &shown))?;
            result.failure.clone()
        }
        Measured::Flow(flow) => {
            ctx.printer.print(flow, |p| flow_tables(p, flow))?;
            flow.failure.clone()
        }
    };
    if recorded.up {
        Ok(())
    } else {
        Err(TargetDown(format!("{} is down from {region_code}: {}", monitor.name, or_dash(failure.as_ref()))).into())
    }
}

pub async fn status(ctx: &Context, pool: &PgPool, store: &MonitorStore<'_>, args: StatusArgs) -> error::Result<()> {
    let monitors = match &args.monitor {
        Some(reference) => vec![store.get(reference).await?],
        None => store.list().await?,
    };
    let now = Utc::now();
    let mut statuses = status::statuses(pool, &monitors, now).await?;
    let ids: Vec<uuid::Uuid> = monitors.iter().map(|m| m.id).collect();
    for incident in crate::alert::manage::open_for(pool, &ids).await? {
        if let Some(s) = statuses.iter_mut().find(|s| Some(s.monitor_id) == incident.monitor_id()) {
            s.open_incidents.push(incident);
        }
    }
    ctx.printer.print(&statuses, |p| {
        let mut overview = p.table(["MONITOR", "STATE", "RULE", "REGIONS", "FAILING BELOW QUORUM", "INCIDENT"]);
        let mut detail = p.table(["MONITOR", "REGION", "STATE", "LAST CHECK", "TOTAL", "WARN/CRIT", "ERROR"]);
        for s in &statuses {
            let counts =
                s.regions.iter().map(|r| format!("{}:{}", r.region, r.state.as_str())).collect::<Vec<_>>().join(" ");
            overview.add_row(vec![
                s.name.clone().into(),
                p.status_cell(s.state.as_str()),
                s.rule.clone().into(),
                counts.into(),
                (if s.failing_below_quorum.is_empty() { "-".to_string() } else { s.failing_below_quorum.join(", ") })
                    .into(),
                crate::alert::manage::incident_refs(&s.open_incidents).into(),
            ]);
            for r in &s.regions {
                detail.add_row(vec![
                    s.name.clone().into(),
                    r.region.clone().into(),
                    p.status_cell(r.state.as_str()),
                    or_dash(r.checked_at.map(|t| t.format("%Y-%m-%d %H:%M:%S"))).into(),
                    ms(r.total_ms).into(),
                    format!("{}/{}ms", r.latency_warning_ms, r.latency_critical_ms).into(),
                    or_dash(r.error_kind.as_ref()).into(),
                ]);
            }
        }
        vec![overview, detail]
    })?;
    for s in statuses.iter().filter(|s| !s.failing_below_quorum.is_empty()) {
        crate::cli::output::note(format!(
            "{}: {} by the {} rule, but failing in {}",
            s.name,
            s.state.as_str(),
            s.rule,
            s.failing_below_quorum.join(", ")
        ));
    }
    Ok(())
}

pub async fn results(ctx: &Context, pool: &PgPool, store: &MonitorStore<'_>, args: ResultsArgs) -> error::Result<()> {
    let monitor = store.get(&args.monitor).await?;
    if let Some(code) = &args.region {
        RegionStore::new(pool).get(code).await?;
    }
    if let Some(id) = args.screenshot {
        use std::io::{IsTerminal as _, Write as _};
        let png = query::screenshot(pool, monitor.id, id).await?.ok_or_else(|| {
            crate::error::input_error(format!(
                "no screenshot is stored with result {id} of {}; `geoctl monitor results {}` lists them",
                monitor.name, monitor.name
            ))
        })?;
        if std::io::stdout().is_terminal() {
            return Err(crate::error::input_error("the screenshot is a PNG; redirect it to a file (> shot.png)"));
        }
        std::io::stdout().write_all(&png)?;
        return Ok(());
    }
    let now = Utc::now();
    let since = now.checked_sub_signed(chrono::Duration::from_std(args.since).unwrap_or(chrono::Duration::MAX));
    let since = since.unwrap_or(chrono::DateTime::UNIX_EPOCH);
    let rows =
        query::recent(pool, monitor.id, args.region.as_deref(), since, now + query::CLOCK_SLACK, args.limit).await?;
    ctx.printer.print(&rows, |p| {
        let mut table = p.table([
            "CHECKED AT",
            "REGION",
            "RESULT",
            "STATUS",
            "DNS",
            "CONNECT",
            "TLS",
            "FIRST BYTE",
            "TOTAL",
            "ERROR",
        ]);
        for r in &rows {
            table.add_row(vec![
                r.checked_at.format("%Y-%m-%d %H:%M:%S").to_string().into(),
                or_dash(r.region.as_ref()).into(),
                p.status_cell(match r.up {
                    Some(true) => "up",
                    Some(false) => "down",
                    None => "-",
                }),
                or_dash(r.status_code).into(),
                ms(r.dns_ms).into(),
                ms(r.connect_ms).into(),
                ms(r.tls_ms).into(),
                ms(r.first_byte_ms).into(),
                ms(r.total_ms).into(),
                or_dash(r.error_kind.as_ref()).into(),
            ]);
        }
        let mut tables = vec![table];
        if rows.iter().any(|r| r.steps.is_some()) {
            tables.push(step_table(p, &rows));
        }
        tables
    })
}

/// The steps of synthetic results: each with its outcome, time and why it failed.
fn step_table(p: &crate::cli::output::Printer, rows: &[query::ResultRow]) -> comfy_table::Table {
    let mut table = p.table(["CHECKED AT", "REGION", "STEP", "OUTCOME", "TIME", "STATUS", "FAILURE"]);
    for r in rows {
        let Some(steps) = r.steps.as_ref().and_then(|s| s.as_array()) else { continue };
        for step in steps {
            let text = |key: &str| step.get(key).and_then(|v| v.as_str()).map(str::to_string);
            let mut failure =
                step.get("failure").and_then(|f| f.get("message")).and_then(|m| m.as_str()).map(str::to_string);
            if let Some(bytes) =
                r.screenshot_bytes.filter(|_| failure.is_some() && text("kind").as_deref() == Some("browser"))
            {
                failure = Some(format!(
                    "{} (screenshot: {bytes} bytes; `geoctl monitor results MONITOR --screenshot {}`)",
                    failure.unwrap_or_default(),
                    r.id
                ));
            }
            table.add_row(vec![
                r.checked_at.format("%Y-%m-%d %H:%M:%S").to_string().into(),
                or_dash(r.region.as_ref()).into(),
                or_dash(text("name")).into(),
                p.status_cell(text("outcome").as_deref().unwrap_or("-")),
                ms(step.get("duration_ms").and_then(|v| v.as_f64())).into(),
                or_dash(step.get("status").and_then(|v| v.as_u64())).into(),
                or_dash(failure).into(),
            ]);
        }
    }
    table
}
