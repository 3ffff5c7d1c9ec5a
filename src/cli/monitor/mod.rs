//! `geoctl monitor …`: create, list, show, update, delete, pause, resume, the
//! regions a monitor runs in; `observe` holds check, status and results.

mod observe;

use std::time::Duration;

use comfy_table::Table;
use serde_json::Value;

use super::checks::{headers, parse_interval, parse_latency, parse_rule, parse_type, CheckOptions};
use super::region::report_change;
use super::Context;
use crate::alert::manage::AlertPatch;
use crate::cli::output::{or_dash, Printer};
use crate::duration;
use crate::monitor::{
    DownRule, Monitor, MonitorError, MonitorPatch, MonitorStore, MonitorType, NewMonitor, RegionEdit, RegionOverrides,
};
use crate::queue::schedule::Touched;
use crate::store::Change;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create a monitor (in every active region unless --regions says otherwise)
    Create {
        /// Unique name
        #[arg(long)]
        name: String,
        /// http, tcp, ping, dns or synthetic (the stored names http_request, port_check, ping_host,
        /// synthetic_test are accepted too)
        #[arg(long = "type", value_parser = parse_type)]
        kind: MonitorType,
        /// URL (http), HOST:PORT (tcp), host (ping) or domain name (dns); synthetic: a label
        /// [default: the script's first URL]
        #[arg(long, required_unless_present = "script")]
        target: Option<String>,
        /// The YAML script of a synthetic monitor (see examples/synthetic.yaml), stored with it
        #[arg(long, value_name = "FILE")]
        script: Option<std::path::PathBuf>,
        /// How often to check: 30s, 5m, 1h (10s to 1d without --force)
        #[arg(long, value_parser = parse_interval, default_value = "1m", allow_hyphen_values = true)]
        every: Duration,
        /// Per-check timeout, at most the interval and 2m
        #[arg(long, value_parser = parse_interval, default_value = "10s", allow_hyphen_values = true)]
        timeout: Duration,
        /// Regions to run in, comma-separated [default: every active region]
        #[arg(long, value_delimiter = ',', num_args = 1..)]
        regions: Option<Vec<String>>,
        /// When the monitor is down across regions: all, majority, any, at-least:N
        #[arg(long, default_value = "majority", value_parser = parse_rule)]
        down_when: DownRule,
        #[command(flatten)]
        checks: CheckOptions,
        #[command(flatten)]
        alerting: AlertOptions,
        /// Create it paused
        #[arg(long)]
        paused: bool,
        /// Allow intervals under 10s or over 1d
        #[arg(long)]
        force: bool,
        /// Validate and show the monitor without creating it
        #[arg(long)]
        dry_run: bool,
    },
    /// List monitors
    List,
    /// Show one monitor (by id or name)
    Show { monitor: String },
    /// Change a monitor
    Update {
        monitor: String,
        /// New name
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        target: Option<String>,
        #[arg(long, value_parser = parse_interval, allow_hyphen_values = true)]
        every: Option<Duration>,
        #[arg(long, value_parser = parse_interval, allow_hyphen_values = true)]
        timeout: Option<Duration>,
        #[arg(long, value_parser = parse_rule)]
        down_when: Option<DownRule>,
        #[command(flatten)]
        checks: CheckOptions,
        #[command(flatten)]
        alerting: AlertOptions,
        /// Replace a synthetic monitor's script
        #[arg(long, value_name = "FILE")]
        script: Option<std::path::PathBuf>,
        /// Remove the keyword check
        #[arg(long, conflicts_with = "keyword")]
        no_keyword: bool,
        /// Allow intervals under 10s or over 1d
        #[arg(long)]
        force: bool,
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete a monitor with its results
    Delete {
        monitor: String,
        /// Do not ask for confirmation
        #[arg(long, short)]
        yes: bool,
        /// Succeed (exit 0) when there is no such monitor; without it that is exit 2, so typos show
        #[arg(long)]
        ignore_not_found: bool,
        #[arg(long)]
        dry_run: bool,
    },
    /// Stop checking a monitor in every region
    Pause {
        monitor: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// Start checking a paused monitor again
    Resume {
        monitor: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// The regions a monitor runs in, and per-region overrides
    #[command(subcommand)]
    Regions(RegionsCommand),
    /// Create or update the monitors declared in a file, in one transaction
    Apply {
        /// YAML file with a `monitors:` list (see examples/monitors.yaml); `-` reads stdin
        #[arg(long, short = 'f', value_name = "FILE")]
        file: std::path::PathBuf,
        /// Show what would change without writing
        #[arg(long)]
        dry_run: bool,
    },
    /// Run a monitor's check once, now, from here on behalf of a region, and record it
    Check(observe::CheckArgs),
    /// Each region's latest state and the monitor's overall state under its down rule
    Status(observe::StatusArgs),
    /// Recent results, newest first
    Results(observe::ResultsArgs),
}

#[derive(Debug, clap::Subcommand)]
enum RegionsCommand {
    /// Replace the monitor's regions (MONITOR CODES), or set one region's overrides (MONITOR --region R …)
    Set {
        monitor: String,
        /// Region codes, comma- or space-separated
        #[arg(value_delimiter = ',', required_unless_present = "region", conflicts_with = "region")]
        codes: Vec<String>,
        /// The region whose overrides to set
        #[arg(long)]
        region: Option<String>,
        #[command(flatten)]
        overrides: OverrideOptions,
        #[arg(long)]
        dry_run: bool,
    },
    /// Add regions to a monitor
    Add {
        monitor: String,
        #[arg(value_delimiter = ',', required = true)]
        codes: Vec<String>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove regions from a monitor (it keeps at least one)
    Remove {
        monitor: String,
        #[arg(value_delimiter = ',', required = true)]
        codes: Vec<String>,
        #[arg(long)]
        dry_run: bool,
    },
}

/// When the alerter calls a region failing for this monitor, and whom it tells.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Alerting")]
struct AlertOptions {
    /// Consecutive failed runs before a region counts as failing [default: alerting.confirm, 2]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    confirm: Option<u32>,
    /// Consecutive passing runs before it counts as passing again [default: alerting.recover, 2]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    recover: Option<u32>,
    /// Channels to notify, comma-separated; `--notify ''` returns to alerting.default_channels
    #[arg(long, value_name = "CHANNELS", value_delimiter = ',')]
    notify: Option<Vec<String>>,
}

impl AlertOptions {
    fn patch(self) -> AlertPatch {
        let notify = self
            .notify
            .map(|names| names.into_iter().map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect::<Vec<_>>());
        AlertPatch { confirm: self.confirm, recover: self.recover, notify }
    }
}

/// Checks alert settings before anything is written: an unknown channel is bad input.
async fn check_alerting(pool: &sqlx::PgPool, patch: &AlertPatch) -> crate::error::Result<()> {
    if !patch.is_empty() {
        let mut conn = pool.acquire().await?;
        crate::alert::manage::check_alerting(&mut conn, patch).await?;
    }
    Ok(())
}

/// Writes a monitor's alert settings (already checked); returns what changed.
async fn write_alerting(pool: &sqlx::PgPool, monitor: uuid::Uuid, patch: &AlertPatch) -> crate::error::Result<Change> {
    if patch.is_empty() {
        return Ok(Change::Unchanged);
    }
    let mut tx = pool.begin().await?;
    let change = crate::alert::manage::set_monitor_alerting(&mut tx, monitor, patch).await?;
    tx.commit().await?;
    Ok(change)
}

#[derive(Debug, clap::Args)]
struct OverrideOptions {
    /// Reset this region's overrides before applying the others
    #[arg(long, requires = "region")]
    clear: bool,
    /// Per-region timeout
    #[arg(long, value_parser = parse_interval, requires = "region")]
    timeout: Option<Duration>,
    /// Per-region interval
    #[arg(long, value_parser = parse_interval, requires = "region")]
    every: Option<Duration>,
    /// Per-region cron schedule, e.g. '*/5 * * * *'
    #[arg(long, requires = "region")]
    schedule: Option<String>,
    /// Per-region latency warning threshold, e.g. 300ms
    #[arg(long, value_parser = parse_latency, requires = "region")]
    latency_warning: Option<i32>,
    /// Per-region latency critical threshold, e.g. 800ms
    #[arg(long, value_parser = parse_latency, requires = "region")]
    latency_critical: Option<i32>,
    /// Per-region request header 'Name: value' (value may be @FILE or env:VAR), repeatable
    /// (replaces the region's headers)
    #[arg(long = "header", value_name = "HEADER", requires = "region")]
    headers: Vec<String>,
    /// Per-region request headers from a file, one 'Name: value' per line
    #[arg(long, value_name = "FILE", requires = "region")]
    header_file: Option<std::path::PathBuf>,
    /// Higher runs first
    #[arg(long, requires = "region", allow_negative_numbers = true)]
    priority: Option<i32>,
    /// Free text for operators
    #[arg(long, requires = "region")]
    notes: Option<String>,
    /// Stop (false) or resume (true) checks in this region only
    #[arg(long, requires = "region")]
    enabled: Option<bool>,
    /// Allow intervals under 10s or over 1d
    #[arg(long)]
    force: bool,
}

pub async fn run(ctx: &Context, args: Args) -> crate::error::Result<()> {
    let pool = ctx.pool().await;
    // For a check, 1 means "down", so not reaching the database is 3.
    let pool = if matches!(args.command, Command::Check(_)) { crate::error::checking(pool)? } else { pool? };
    let store = MonitorStore::new(&pool, ctx.placement());
    let p = &ctx.printer;
    let (monitor, change, dry_run, regions_before) = match args.command {
        Command::Check(a) => return crate::error::checking(observe::check(ctx, &pool, &store, a).await),
        Command::Apply { file, dry_run } => return apply(ctx, &pool, &store, &file, dry_run).await,
        Command::Status(a) => return observe::status(ctx, &pool, &store, a).await,
        Command::Results(a) => return observe::results(ctx, &pool, &store, a).await,
        Command::List => {
            let monitors = store.list().await?;
            return p.print(&monitors, |p| vec![list_table(p, &monitors)]);
        }
        Command::Show { monitor } => {
            let monitor = store.get(&monitor).await?;
            let stored = {
                let mut conn = pool.acquire().await?;
                crate::alert::manage::monitor_alerting(&mut conn, monitor.id).await?
            };
            let shown = Shown { alerting: ShownAlerting::new(stored, &ctx.settings.alerting.settings()), monitor };
            return p.print(&shown, |p| detail_tables(p, &shown.monitor, Some(&shown.alerting)));
        }
        Command::Create {
            name,
            kind,
            target,
            script,
            every,
            timeout,
            regions,
            down_when,
            checks,
            alerting,
            paused,
            force,
            dry_run,
        } => {
            let alerting = alerting.patch();
            check_alerting(&pool, &alerting).await?;
            let mut config = checks.into_settings()?.into_config(kind, &name)?;
            let target = match (kind, script) {
                (MonitorType::Synthetic, Some(path)) => {
                    let text = crate::synthetic::script::read(&path)?;
                    let script = crate::synthetic::Script::parse(&text)?;
                    if script.needs_browser() {
                        let placement = ctx.placement();
                        let codes = match &regions {
                            Some(codes) => codes.clone(),
                            None if placement.geo_distribution => {
                                crate::region::RegionStore::active_codes(&pool).await?
                            }
                            None => placement.default_region.clone().into_iter().collect(),
                        };
                        browser_regions(ctx, &codes).await?;
                    }
                    config.insert(crate::monitor::check::SCRIPT_KEY.into(), text.into());
                    target.unwrap_or_else(|| script.target())
                }
                (MonitorType::Synthetic, None) => {
                    return Err(crate::error::input_error(
                        "--type synthetic needs --script FILE (see examples/synthetic.yaml)",
                    ))
                }
                (_, Some(_)) => return Err(crate::error::input_error("--script goes with --type synthetic")),
                (_, None) => target.unwrap_or_default(),
            };
            let new = NewMonitor {
                name,
                kind,
                target,
                interval: every,
                timeout,
                down_rule: down_when,
                config,
                regions,
                enabled: !paused,
                force,
            };
            let (monitor, mut change) =
                crate::monitor::create::create_or_unchanged(&pool, &store, &ctx.placement(), new, dry_run).await?;
            if !dry_run && write_alerting(&pool, monitor.id, &alerting).await? == Change::Updated {
                change = if change == Change::Unchanged { Change::Updated } else { change };
            }
            (monitor, change, dry_run, Vec::new())
        }
        Command::Update {
            monitor,
            name,
            target,
            every,
            timeout,
            down_when,
            checks,
            alerting,
            script,
            no_keyword,
            force,
            dry_run,
        } => {
            let alerting = alerting.patch();
            let current = store.get(&monitor).await?;
            check_alerting(&pool, &alerting).await?;
            let kind = current.kind().ok_or_else(|| MonitorError::UnsupportedStoredType {
                name: current.name.clone(),
                stored: current.stored_type.clone(),
            })?;
            let mut config = checks.into_settings()?.into_config(kind, &current.name)?;
            if no_keyword {
                config.insert("keyword".into(), Value::Null);
                config.insert("keyword_absent".into(), Value::Null);
            }
            if let Some(path) = script {
                if kind != MonitorType::Synthetic {
                    return Err(crate::error::input_error("--script goes with synthetic monitors"));
                }
                let text = crate::synthetic::script::read(&path)?;
                if crate::synthetic::Script::parse(&text)?.needs_browser() {
                    browser_regions(ctx, &current.region_codes()).await?;
                }
                config.insert(crate::monitor::check::SCRIPT_KEY.into(), text.into());
            }
            let patch = MonitorPatch { name, target, interval: every, timeout, down_rule: down_when, config, force };
            let nothing = patch.name.is_none()
                && patch.target.is_none()
                && patch.interval.is_none()
                && patch.timeout.is_none()
                && patch.down_rule.is_none()
                && patch.config.is_empty();
            if nothing && alerting.is_empty() {
                return Err(crate::error::input_error(
                    "nothing to update; pass a field to change, e.g. --every 5m (see `geoctl monitor update --help`)",
                ));
            }
            let (m, mut c) = if nothing {
                (current.clone(), Change::Unchanged)
            } else {
                store.update(&current.id.to_string(), patch, dry_run).await?
            };
            if !dry_run && write_alerting(&pool, m.id, &alerting).await? == Change::Updated && c == Change::Unchanged {
                c = Change::Updated;
            }
            (m, c, dry_run, current.region_codes())
        }
        Command::Delete { monitor, yes, dry_run, ignore_not_found } => {
            let found = match store.get(&monitor).await {
                Err(MonitorError::NotFound(name)) if ignore_not_found => {
                    crate::cli::output::note(format!("no monitor `{name}`; nothing to delete"));
                    return Ok(());
                }
                found => found?,
            };
            if !dry_run {
                ctx.confirm(&format!("Delete monitor `{}` and all its results?", found.name), yes)?;
            }
            let regions_before = found.region_codes();
            (store.delete(&found.id.to_string(), dry_run).await?, Change::Deleted, dry_run, regions_before)
        }
        Command::Pause { monitor, dry_run } => {
            let (m, c) = store.set_enabled(&monitor, false, dry_run).await?;
            let regions = m.region_codes();
            (m, c, dry_run, regions)
        }
        Command::Resume { monitor, dry_run } => {
            let (m, c) = store.set_enabled(&monitor, true, dry_run).await?;
            let regions = m.region_codes();
            (m, c, dry_run, regions)
        }
        Command::Regions(command) => {
            let regions_before = match &command {
                RegionsCommand::Set { monitor, .. }
                | RegionsCommand::Add { monitor, .. }
                | RegionsCommand::Remove { monitor, .. } => store.get(monitor).await?.region_codes(),
            };
            let (m, c, dry_run) = match command {
                RegionsCommand::Set { monitor, codes, region: Some(region), overrides, dry_run } => {
                    let _ = codes;
                    let o = overrides;
                    let schedule = o.schedule.clone();
                    let overrides = RegionOverrides {
                        clear: o.clear,
                        enabled: o.enabled,
                        timeout: o.timeout,
                        interval: o.every,
                        schedule: o.schedule,
                        latency_warning_ms: o.latency_warning,
                        latency_critical_ms: o.latency_critical,
                        headers: match headers(&o.headers, o.header_file.as_deref())? {
                            list if list.is_empty() => None,
                            list => Some(list),
                        },
                        priority: o.priority,
                        notes: o.notes,
                        force: o.force,
                    };
                    let (m, c) = store.set_overrides(&monitor, &region, overrides, dry_run).await?;
                    if let Some(schedule) = schedule.filter(|s| !s.trim().is_empty()) {
                        let runs = crate::monitor::next_runs(&schedule, chrono::Utc::now(), 3);
                        let runs: Vec<String> =
                            runs.iter().map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).collect();
                        crate::cli::output::note(format!(
                            "schedule `{schedule}` in {region}: next runs {}",
                            runs.join(", ")
                        ));
                    }
                    (m, c, dry_run)
                }
                RegionsCommand::Set { monitor, codes, region: None, dry_run, .. } => {
                    browser_script_regions(ctx, &store.get(&monitor).await?, &codes).await?;
                    let (m, c) = store.edit_regions(&monitor, RegionEdit::Set, &codes, dry_run).await?;
                    (m, c, dry_run)
                }
                RegionsCommand::Add { monitor, codes, dry_run } => {
                    browser_script_regions(ctx, &store.get(&monitor).await?, &codes).await?;
                    let (m, c) = store.edit_regions(&monitor, RegionEdit::Add, &codes, dry_run).await?;
                    (m, c, dry_run)
                }
                RegionsCommand::Remove { monitor, codes, dry_run } => {
                    let (m, c) = store.edit_regions(&monitor, RegionEdit::Remove, &codes, dry_run).await?;
                    (m, c, dry_run)
                }
            };
            (m, c, dry_run, regions_before)
        }
    };
    report_change("monitor", &monitor.name, change, dry_run);
    if !dry_run && change != Change::Unchanged {
        let after = (change != Change::Deleted).then(|| monitor.clone());
        super::queue::follow_up(ctx, &pool, &[Touched { id: monitor.id, after, regions_before }]).await;
    }
    p.print(&monitor, |p| detail_tables(p, &monitor, None))
}

/// A script with browser steps goes only to regions that can run it: those whose stack has a
/// browser service (`regions.<code>.stack.browser_replicas` > 0), or where a live agent works on
/// the browser queue (one started by hand with `--browser`). Anything else is refused before a
/// write, as its jobs would wait on a queue no agent takes.
async fn browser_regions(ctx: &Context, regions: &[String]) -> crate::error::Result<()> {
    use crate::queue::heartbeat::{browser_support, BrowserSupport};
    for region in regions {
        if crate::stack::has_browser_service(&ctx.settings, region) {
            continue;
        }
        if browser_support(&ctx.settings, region).await == BrowserSupport::Yes {
            continue;
        }
        return Err(crate::error::input_error(format!(
            "region `{region}` has no browser service for this script's browser steps; add one with \
             `regions.{region}.stack.browser_replicas: 1` in geoctl.yaml, `geoctl image build --with-browser` and \
             `geoctl stack deploy --region {region}` (or start `geoctl agent --browser` there), or leave the \
             region out of the monitor's regions"
        )));
    }
    Ok(())
}

/// [`browser_regions`] for regions a stored monitor is being given, when its script needs a browser.
async fn browser_script_regions(
    ctx: &Context,
    monitor: &crate::monitor::Monitor,
    codes: &[String],
) -> crate::error::Result<()> {
    if crate::queue::Lane::of(monitor) == crate::queue::Lane::Browser {
        browser_regions(ctx, codes).await?;
    }
    Ok(())
}

async fn apply(
    ctx: &Context,
    pool: &sqlx::PgPool,
    store: &MonitorStore<'_>,
    path: &std::path::Path,
    dry_run: bool,
) -> crate::error::Result<()> {
    use std::io::Read as _;
    let mut text = String::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    read.map_err(|e| crate::error::input_error(format!("cannot read {}: {e}", path.display())))?;
    let file = crate::monitor::apply::MonitorFile::parse(&text)?;
    for decl in file.monitors.iter().filter(|d| d.needs_browser()) {
        let codes = match &decl.regions {
            Some(codes) => codes.clone(),
            None => crate::region::RegionStore::active_codes(pool).await?,
        };
        browser_regions(ctx, &codes)
            .await
            .map_err(|e| crate::error::input_error(format!("monitor `{}`: {e:#}", decl.name)))?;
    }
    let before = if dry_run { Vec::new() } else { store.list().await? };
    let applied =
        crate::monitor::apply::apply(pool, store, &file, dry_run, &crate::alert::manage::write_declared).await?;
    let changed = applied.iter().filter(|a| a.change != Change::Unchanged).count();
    crate::cli::output::note(match (dry_run, changed) {
        (_, 0) => "nothing to change; every monitor is as declared".to_string(),
        (true, n) => format!("{n} monitor(s) would change (dry run, nothing written)"),
        (false, n) => format!("{n} monitor(s) changed"),
    });
    ctx.printer.print(&applied, |p| {
        let mut table = p.table(["MONITOR", if dry_run { "WOULD BE" } else { "CHANGE" }]);
        for a in &applied {
            let change =
                serde_json::to_value(a.change).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
            table.add_row(vec![a.name.clone().into(), p.status_cell(&change)]);
        }
        vec![table]
    })?;
    if changed > 0 && !dry_run {
        let after = store.list().await?;
        let touched: Vec<Touched> = applied
            .iter()
            .filter(|a| a.change != Change::Unchanged)
            .filter_map(|a| after.iter().find(|m| m.name == a.name))
            .map(|m| Touched {
                id: m.id,
                after: Some(m.clone()),
                regions_before: before.iter().find(|b| b.id == m.id).map(Monitor::region_codes).unwrap_or_default(),
            })
            .collect();
        super::queue::follow_up(ctx, pool, &touched).await;
    }
    Ok(())
}

fn short_type(m: &Monitor) -> String {
    m.kind().map_or_else(|| m.stored_type.clone(), |k| k.short().to_string())
}

fn list_table(p: &Printer, monitors: &[Monitor]) -> Table {
    let mut table = p.table(["ID", "NAME", "TYPE", "TARGET", "EVERY", "REGIONS", "STATUS"]);
    for m in monitors {
        let regions = m.region_codes();
        table.add_row(vec![
            m.id.to_string()[..8].to_string().into(),
            m.name.clone().into(),
            short_type(m).into(),
            m.target.clone().into(),
            duration::format(Duration::from_secs(m.interval_seconds.max(0) as u64)).into(),
            (if regions.is_empty() { "-".into() } else { regions.join(",") }).into(),
            p.status_cell(if m.enabled { "active" } else { "paused" }),
        ]);
    }
    table
}

/// `monitor show`: the monitor, and how the alerter treats it.
#[derive(serde::Serialize)]
struct Shown {
    #[serde(flatten)]
    monitor: Monitor,
    alerting: ShownAlerting,
}

/// A monitor's alert settings in effect, each saying whether it is the monitor's own or the
/// configured default (which changes with the configuration).
#[derive(serde::Serialize)]
struct ShownAlerting {
    confirm: u32,
    recover: u32,
    notify: Vec<String>,
    /// Which of the three come from `alerting.*` rather than the monitor.
    defaults: Vec<&'static str>,
}

impl ShownAlerting {
    fn new(stored: crate::alert::manage::MonitorAlerting, config: &crate::alert::Settings) -> Self {
        let mut defaults = Vec::new();
        let mut own =
            |value: Option<i32>, default: u32, name: &'static str| match value.and_then(|v| u32::try_from(v).ok()) {
                Some(v) => v,
                None => {
                    defaults.push(name);
                    default
                }
            };
        let confirm = own(stored.confirm, config.confirm, "confirm");
        let recover = own(stored.recover, config.recover, "recover");
        let notify = if stored.notify.is_empty() {
            defaults.push("notify");
            config.default_channels.clone()
        } else {
            stored.notify
        };
        ShownAlerting { confirm, recover, notify, defaults }
    }

    fn rows(&self) -> Vec<(&'static str, String)> {
        let origin = |name: &str, key: &str| {
            if self.defaults.contains(&name) {
                format!(" (default: alerting.{key})")
            } else {
                String::new()
            }
        };
        let notify = if self.notify.is_empty() { "-".to_string() } else { self.notify.join(", ") };
        vec![
            ("alert confirm", format!("{} failed runs{}", self.confirm, origin("confirm", "confirm"))),
            ("alert recover", format!("{} passing runs{}", self.recover, origin("recover", "recover"))),
            ("notify", format!("{notify}{}", origin("notify", "default_channels"))),
        ]
    }
}

fn detail_tables(p: &Printer, m: &Monitor, alerting: Option<&ShownAlerting>) -> Vec<Table> {
    let mut fields = p.table(["FIELD", "VALUE"]);
    let secs = |s: i32| duration::format(Duration::from_secs(s.max(0) as u64));
    let rows: Vec<(&str, String)> = vec![
        ("id", m.id.to_string()),
        ("name", m.name.clone()),
        ("type", format!("{} ({})", short_type(m), m.stored_type)),
        ("target", m.target.clone()),
        ("every", secs(m.interval_seconds)),
        ("timeout", or_dash(m.timeout_ms.map(|ms| duration::format(Duration::from_millis(ms.max(0) as u64))))),
        ("down when", m.down_rule.clone()),
        ("status", if m.enabled { "active".into() } else { "paused".into() }),
        ("config", if m.config.as_object().is_some_and(|o| o.is_empty()) { "-".into() } else { m.config_text() }),
    ];
    for (k, v) in rows.into_iter().chain(alerting.map(ShownAlerting::rows).unwrap_or_default()) {
        fields.add_row([k.to_string(), v]);
    }
    let mut regions =
        p.table(["REGION", "ENABLED", "EVERY", "TIMEOUT", "SCHEDULE", "WARN", "CRIT", "PRIORITY", "NOTES"]);
    for r in &m.regions {
        let ms = |v: Option<i32>| or_dash(v.map(|v| format!("{v}ms")));
        regions.add_row(vec![
            r.region.clone().into(),
            p.status_cell(if r.enabled { "yes" } else { "no" }),
            or_dash(r.interval_seconds.map(secs)).into(),
            ms(r.timeout_ms).into(),
            or_dash(r.schedule.as_ref()).into(),
            ms(r.latency_warning_ms).into(),
            ms(r.latency_critical_ms).into(),
            r.priority.to_string().into(),
            or_dash(r.notes.as_ref()).into(),
        ]);
    }
    vec![fields, regions]
}
