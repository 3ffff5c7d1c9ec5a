//! `geoctl report`: per-region uptime, percentiles, phase averages and
//! latency charts, on the terminal, as JSON/YAML, and as an HTML page.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use comfy_table::{Cell, Color};

use super::checks::parse_interval;
use super::Context;
use crate::cli::output::{ms, note, or_dash, terminal_safe, Format, Printer};
use crate::error::Context as _;
use crate::monitor::MonitorStore;
use crate::report::{self, html, spark, MonitorReport, Report, UptimeGrade};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Monitor id or name [default: every monitor]
    #[arg(long)]
    monitor: Option<String>,
    /// How far back to look, e.g. 1h, 7d
    #[arg(long, value_parser = parse_interval, default_value = "24h")]
    since: Duration,
    /// Also write the report as one self-contained HTML page to FILE
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

pub async fn run(ctx: &Context, args: Args) -> crate::error::Result<()> {
    if let Some(path) = &args.html {
        check_writable_dir(path)?;
    }
    let pool = ctx.pool().await?;
    let store = MonitorStore::new(&pool, ctx.placement());
    let monitors = match &args.monitor {
        Some(reference) => vec![store.get(reference).await?],
        None => store.list().await?,
    };
    let until = Utc::now();
    let since = report::window(until, args.since);
    let mut report = report::build(&pool, &monitors, since, until).await.context("reading results")?;
    let ids: Vec<uuid::Uuid> = monitors.iter().map(|m| m.id).collect();
    report.open_incidents = crate::alert::manage::open_for(&pool, &ids).await?;
    explain_gaps(&report);
    for incident in &report.open_incidents {
        note(format!(
            "open incident {} ({}, since {}): {}",
            incident.id,
            incident.severity,
            incident.opened_at.format("%Y-%m-%d %H:%M UTC"),
            incident.summary
        ));
    }

    ctx.printer.print(&report, |p| {
        let mut tables = vec![stats_table(p, &report)];
        if report.has_landings() {
            tables.push(landing_table(p, &report));
        }
        tables
    })?;
    if ctx.printer.format == Format::Table && !report.is_empty() {
        print_charts(&ctx.printer, &report)?;
    }
    if let Some(path) = &args.html {
        write_atomically(path, html::render(&report).as_bytes())
            .with_context(|| format!("writing the HTML report to {}", path.display()))?;
        note(format!(
            "wrote the HTML report to {}",
            std::path::absolute(path).unwrap_or_else(|_| path.clone()).display()
        ));
    }
    Ok(())
}

/// Says on stderr what the report leaves out, so an empty one is not a mystery.
fn explain_gaps(report: &Report) {
    let since = report.since.format("%Y-%m-%d %H:%M UTC");
    if report.monitors.is_empty() {
        note("no monitors yet; create one with `geoctl monitor create`");
    } else if report.is_empty() {
        note(format!("no results since {since}; the report is empty (try a longer --since)"));
    } else {
        let silent: Vec<&str> =
            report.monitors.iter().filter(|m| m.regions.is_empty()).map(|m| m.name.as_str()).collect();
        if !silent.is_empty() {
            note(format!("no results since {since} for: {}", silent.join(", ")));
        }
    }
    if let (Some(from), Some(to)) = (report.summarized_since, report.summarized_until) {
        let detail = if report.bucket_seconds >= 86_400 {
            "daily and hourly summaries (a bucket per day): percentiles (within 5 %), TLS, first byte and where \
             checks landed leave out the whole days"
        } else {
            "hourly summaries (a bucket per hour): percentiles are read from their histograms, within 5 %"
        };
        note(format!(
            "{} to {} read from the {detail}",
            from.format("%Y-%m-%d %H:%M UTC"),
            to.format("%Y-%m-%d %H:%M UTC")
        ));
    }
}

fn stats_table(p: &Printer, report: &Report) -> comfy_table::Table {
    let mut table = p.table([
        "MONITOR",
        "REGION",
        "CHECKS",
        "UPTIME",
        "P50",
        "P95",
        "P99",
        "DNS",
        "CONNECT",
        "TLS",
        "FIRST BYTE",
        "TOTAL",
    ]);
    for monitor in &report.monitors {
        for region in &monitor.regions {
            let s = &region.stats;
            let mut row: Vec<Cell> = vec![
                monitor.name.as_str().into(),
                s.region.as_str().into(),
                s.checks.into(),
                uptime_cell(p, s.uptime_percentage),
            ];
            row.extend(report::summary_times(s).map(|v| Cell::new(ms(v))));
            table.add_row(row);
        }
    }
    table
}

/// Where each region reached the target: one row per place, with its share
/// of the region's checks, and the region's median hop count.
fn landing_table(p: &Printer, report: &Report) -> comfy_table::Table {
    let mut table = p.table(["MONITOR", "REGION", "REACHED", "ASN", "SHARE", "MEDIAN HOPS"]);
    for monitor in &report.monitors {
        for region in &monitor.regions {
            let hops = or_dash(region.median_hop_count.map(|h| format!("{h:.1}")));
            if region.landed.is_empty() && region.median_hop_count.is_some() {
                table.add_row([
                    monitor.name.clone(),
                    region.stats.region.clone(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    hops.clone(),
                ]);
            }
            for (i, l) in region.landed.iter().enumerate() {
                table.add_row([
                    monitor.name.clone(),
                    region.stats.region.clone(),
                    report::place(l),
                    report::network(l),
                    format!("{:.0}%", l.share),
                    if i == 0 { hops.clone() } else { String::new() },
                ]);
            }
        }
    }
    table
}

fn uptime_cell(p: &Printer, percent: Option<f64>) -> Cell {
    let Some(percent) = percent else { return Cell::new("-") };
    let cell = Cell::new(format!("{percent:.2}%"));
    if !p.color {
        return cell;
    }
    cell.fg(match UptimeGrade::of(percent) {
        UptimeGrade::Good => Color::Green,
        UptimeGrade::Degraded => Color::Yellow,
        UptimeGrade::Poor => Color::Red,
    })
}

/// ANSI styling when the printer allows colour, plain text otherwise.
fn paint(p: &Printer, sgr: &str, text: &str) -> String {
    if p.color {
        format!("\x1b[{sgr}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// A sparkline per region, under the table: one cell per bucket, `·` where
/// nothing was checked, and a `×` line under buckets with failed checks.
fn print_charts(p: &Printer, report: &Report) -> crate::error::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let minutes = report.bucket_seconds as f64 / 60.0;
    writeln!(
        out,
        "\nAverage response time since {}, one mark per {} (· no checks, × failed checks)",
        report.since.format("%Y-%m-%d %H:%M UTC"),
        if minutes >= 1.0 { format!("{minutes:.0} min") } else { format!("{} s", report.bucket_seconds) }
    )?;
    for monitor in report.monitors.iter().filter(|m| !m.regions.is_empty()) {
        write_monitor_charts(&mut out, p, monitor)?;
    }
    out.flush()?;
    Ok(())
}

fn write_monitor_charts(
    out: &mut impl std::io::Write,
    p: &Printer,
    monitor: &MonitorReport,
) -> crate::error::Result<()> {
    writeln!(out, "\n{}", paint(p, "1", &terminal_safe(&monitor.name)))?;
    let width = monitor.regions.iter().map(|r| r.stats.region.chars().count()).max().unwrap_or(0);
    for region in &monitor.regions {
        let line = spark::sparkline(&region.series);
        let chart: String = line
            .cells
            .iter()
            .map(|c| match c.glyph {
                spark::NO_DATA => paint(p, "2", "·"),
                glyph if c.failures => paint(p, "31", &glyph.to_string()),
                glyph => paint(p, "36", &glyph.to_string()),
            })
            .collect();
        let range = match (line.min_ms, line.max_ms) {
            (Some(lo), Some(hi)) => format!("min {}  max {}", ms(Some(lo)), ms(Some(hi))),
            _ => "no successful checks".to_string(),
        };
        writeln!(out, "  {:<width$}  {chart}  {range}", terminal_safe(&region.stats.region))?;
        if line.any_failures() {
            let marks: String = line.cells.iter().map(|c| if c.failures { '×' } else { ' ' }).collect();
            writeln!(out, "  {:<width$}  {}", "", paint(p, "31", marks.trim_end()))?;
        }
    }
    Ok(())
}

/// Refuses an --html path whose directory is missing before the report is built and printed.
fn check_writable_dir(path: &Path) -> crate::error::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(crate::error::input_error(format!(
            "--html {}: directory {} does not exist; create it or choose another path",
            path.display(),
            dir.display()
        )));
    }
    if path.is_dir() {
        return Err(crate::error::input_error(format!("--html {} is a directory; name a file", path.display())));
    }
    Ok(())
}

/// Writes `contents` to a temporary file next to `path` and renames it over
/// `path`, so readers see the old file or the whole new one, never a part.
fn write_atomically(path: &Path, contents: &[u8]) -> crate::error::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().context("the path names no file")?.to_string_lossy();
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    Ok(written?)
}
