//! The report as one self-contained HTML page: inline CSS and inline SVG, no
//! scripts and nothing fetched, so it opens offline and can be mailed around.
//! The page is the Tera template `templates/report/page.html`, rendered with
//! auto-escaping; the charts' SVG is drawn here, and every string from the
//! database in it goes through Tera's `escape_html`.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Bucket, MonitorReport, RegionReport, Report, UptimeGrade};

/// Writing into a `String` cannot fail.
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {{
        let _ = write!($out, $($arg)*);
    }};
}

/// The page skeleton and one monitor's section of it, built into the binary.
const PAGE: &str = include_str!("../../templates/report/page.html");
const MONITOR: &str = include_str!("../../templates/report/monitor.html");
/// The page's style sheet: inline in the report, a file of its own on the dashboard (whose
/// policy allows no inline style; the legend swatches are small SVGs for the same reason).
pub const STYLE: &str = include_str!("../../templates/report/style.css");

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    tera::escape_html(text)
}

/// The page's templates, parsed once per render (the page includes the monitor section).
fn templates() -> tera::Tera {
    let mut tera = tera::Tera::default();
    tera.autoescape_on(vec![".html"]);
    tera.add_raw_templates(vec![("page.html", PAGE), ("monitor.html", MONITOR)])
        .expect("the built-in report templates parse");
    tera
}

/// Region colours, told apart in colour and in greyscale; red is kept for failures.
const REGION_COLOURS: [&str; 8] =
    ["#2563eb", "#ea580c", "#0d9488", "#7c3aed", "#db2777", "#65a30d", "#0891b2", "#a16207"];
const FAILURE_COLOUR: &str = "#dc2626";
const PHASES: [(&str, &str); 4] =
    [("DNS", "#8b5cf6"), ("Connect", "#0ea5e9"), ("TLS", "#f59e0b"), ("First byte", "#10b981")];

/// Milliseconds, to a precision that suits their size.
pub fn format_ms(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

fn optional_ms(ms: Option<f64>) -> String {
    ms.map_or_else(|| "-".into(), format_ms)
}

fn format_uptime(percent: Option<f64>) -> String {
    percent.map_or_else(|| "-".into(), |p| format!("{p:.2}%"))
}

/// The CSS class and bar colour of an uptime.
fn uptime_style(percent: f64) -> (&'static str, &'static str) {
    match UptimeGrade::of(percent) {
        UptimeGrade::Good => ("up", "#2da44e"),
        UptimeGrade::Degraded => ("warn", "#d4a72c"),
        UptimeGrade::Poor => ("down", FAILURE_COLOUR),
    }
}

fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// What the template shows: text already formatted, charts already drawn.
#[derive(Serialize)]
struct Page<'a> {
    since: String,
    until: String,
    bucket: String,
    version: &'static str,
    style: &'static str,
    phases: [(&'static str, &'static str); 4],
    summary: Vec<SummaryRow<'a>>,
    monitors: Vec<MonitorSection<'a>>,
}

#[derive(Serialize)]
struct SummaryRow<'a> {
    monitor: &'a str,
    region: &'a str,
    checks: i64,
    class: &'static str,
    uptime: String,
    /// In [`super::summary_times`] order.
    times: [String; 8],
}

#[derive(Serialize)]
struct MonitorSection<'a> {
    name: &'a str,
    /// Empty when the monitor has no results in the window (and then no charts).
    legend: Vec<LegendEntry<'a>>,
    line_chart: String,
    uptime_bars: String,
    /// None when no region measured any phase.
    phase_bars: Option<String>,
    landing: Vec<LandingRow>,
}

#[derive(Serialize)]
struct LegendEntry<'a> {
    code: &'a str,
    colour: &'static str,
}

#[derive(Serialize)]
struct LandingRow {
    region: String,
    reached: String,
    network: String,
    share: String,
    hops: String,
}

/// The whole page.
pub fn render(report: &Report) -> String {
    let palette = Palette::new(report);
    let page = Page {
        since: format_time(report.since),
        until: format_time(report.until),
        bucket: bucket_label(report.bucket_seconds),
        version: env!("CARGO_PKG_VERSION"),
        style: STYLE,
        phases: PHASES,
        summary: if report.is_empty() { Vec::new() } else { summary_rows(report) },
        monitors: report.monitors.iter().map(|m| monitor_section(report, m, &palette)).collect(),
    };
    let context = tera::Context::from_serialize(&page).expect("the page is a map of strings, numbers and lists");
    // The template is built in and a unit test renders it, so it cannot fail on a user's data.
    templates().render("page.html", &context).expect("the built-in report template renders")
}

/// One monitor's section (response time per region, uptime, phases, landings), for a page of
/// the dashboard: region colours are those of the whole `report`.
pub fn monitor_html(report: &Report, monitor: &MonitorReport) -> String {
    let section = monitor_section(report, monitor, &Palette::new(report));
    let mut context = tera::Context::new();
    context.insert("monitor", &section);
    context.insert("phases", &PHASES);
    templates().render("monitor.html", &context).expect("the built-in monitor section renders")
}

fn bucket_label(seconds: i64) -> String {
    match seconds {
        s if s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// One colour per region code, the same in every chart of the page.
struct Palette<'a> {
    codes: Vec<&'a str>,
}

impl<'a> Palette<'a> {
    fn new(report: &'a Report) -> Self {
        Palette { codes: report.region_codes() }
    }

    fn colour(&self, region: &str) -> &'static str {
        let index = self.codes.iter().position(|c| *c == region).unwrap_or(0);
        REGION_COLOURS[index % REGION_COLOURS.len()]
    }
}

fn summary_rows(report: &Report) -> Vec<SummaryRow<'_>> {
    let mut rows = Vec::new();
    for monitor in &report.monitors {
        for region in &monitor.regions {
            let s = &region.stats;
            rows.push(SummaryRow {
                monitor: &monitor.name,
                region: &s.region,
                checks: s.checks,
                class: s.uptime_percentage.map_or("", |p| uptime_style(p).0),
                uptime: format_uptime(s.uptime_percentage),
                times: super::summary_times(s).map(optional_ms),
            });
        }
    }
    rows
}

fn monitor_section<'a>(report: &Report, monitor: &'a MonitorReport, palette: &Palette) -> MonitorSection<'a> {
    let mut section = MonitorSection {
        name: &monitor.name,
        legend: Vec::new(),
        line_chart: String::new(),
        uptime_bars: String::new(),
        phase_bars: None,
        landing: Vec::new(),
    };
    if monitor.regions.is_empty() {
        return section;
    }
    section.legend = monitor
        .regions
        .iter()
        .map(|r| LegendEntry { code: &r.stats.region, colour: palette.colour(&r.stats.region) })
        .collect();
    line_chart(&mut section.line_chart, report, monitor, palette);
    uptime_bars(&mut section.uptime_bars, &monitor.regions);
    if monitor.regions.iter().any(|r| phases(r).iter().any(Option::is_some)) {
        let mut bars = String::new();
        phase_bars(&mut bars, &monitor.regions);
        section.phase_bars = Some(bars);
    }
    section.landing = landing_rows(&monitor.regions);
    section
}

/// Where each region reached the target, when any was located or traced.
fn landing_rows(regions: &[RegionReport]) -> Vec<LandingRow> {
    let mut rows = Vec::new();
    if regions.iter().all(|r| r.landed.is_empty() && r.median_hop_count.is_none()) {
        return rows;
    }
    for region in regions {
        let hops = region.median_hop_count.map_or_else(|| "-".to_string(), |h| format!("{h:.1}"));
        let code = &region.stats.region;
        if region.landed.is_empty() {
            let dash = || "-".to_string();
            rows.push(LandingRow { region: code.clone(), reached: dash(), network: dash(), share: dash(), hops });
            continue;
        }
        for (i, l) in region.landed.iter().enumerate() {
            rows.push(LandingRow {
                region: code.clone(),
                reached: super::place(l),
                network: super::network(l),
                share: format!("{:.0}%", l.share),
                hops: if i == 0 { hops.clone() } else { String::new() },
            });
        }
    }
    rows
}

/// An axis from 0 to a round number above `max`, in round steps.
struct Scale {
    top: f64,
    step: f64,
}

impl Scale {
    fn up_to(max: f64, ticks: f64) -> Scale {
        let max = if max > 0.0 && max.is_finite() { max } else { 1.0 };
        let rough = max / ticks;
        let magnitude = 10f64.powf(rough.log10().floor());
        let step =
            [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= rough).unwrap_or(10.0 * magnitude);
        Scale { top: (max / step).ceil() * step, step }
    }

    fn ticks(&self) -> impl Iterator<Item = f64> + '_ {
        let count = (self.top / self.step).round() as usize;
        (0..=count).map(move |i| i as f64 * self.step)
    }
}

/// Tick values are multiples of a round step, but `3 * 0.2` is not exactly
/// `0.6` in floating point: print at most three decimals, without trailing zeros.
fn tick_label(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Time ticks: the smallest round step that leaves at most 8 labels.
fn time_ticks(from: i64, to: i64) -> (Vec<i64>, &'static str) {
    const STEPS: [i64; 16] = [
        60,
        300,
        600,
        900,
        1800,
        3600,
        2 * 3600,
        3 * 3600,
        6 * 3600,
        12 * 3600,
        86_400,
        2 * 86_400,
        7 * 86_400,
        14 * 86_400,
        30 * 86_400,
        365 * 86_400,
    ];
    let span = (to - from).max(1);
    let step = STEPS.iter().copied().find(|s| span / s <= 8).unwrap_or(span);
    let format = if span <= 86_400 {
        "%H:%M"
    } else if step < 86_400 {
        "%b %d %H:%M"
    } else {
        "%b %d"
    };
    let first = (from + step - 1).div_euclid(step) * step;
    ((first..=to).step_by(step as usize).collect(), format)
}

fn line_chart(out: &mut String, report: &Report, monitor: &MonitorReport, palette: &Palette) {
    const W: f64 = 1000.0;
    const H: f64 = 300.0;
    const LEFT: f64 = 64.0;
    const RIGHT: f64 = 16.0;
    const TOP: f64 = 12.0;
    const BOTTOM: f64 = 36.0;
    let (x0, x1, y0, y1) = (LEFT, W - RIGHT, TOP, H - BOTTOM);

    let b = report.bucket_seconds;
    let grid = &monitor.regions[0].series;
    let t0 = grid.first().map_or(report.since.timestamp(), |s| s.start.timestamp());
    let t1 = grid.last().map_or(report.until.timestamp(), |s| s.start.timestamp() + b);
    let x = |t: f64| x0 + (t - t0 as f64) / ((t1 - t0).max(1) as f64) * (x1 - x0);
    let max = monitor.regions.iter().flat_map(|r| r.series.iter().filter_map(|p| p.avg_ms)).fold(0.0, f64::max);
    let scale = Scale::up_to(max, 5.0);
    let y = |ms: f64| y1 - ms / scale.top * (y1 - y0);

    w!(
        out,
        "<svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"Average response time of {} per region\">\n",
        escape(&monitor.name)
    );
    for tick in scale.ticks() {
        let ty = y(tick);
        w!(out, "<line class=\"grid\" x1=\"{x0}\" x2=\"{x1}\" y1=\"{ty:.1}\" y2=\"{ty:.1}\"/>");
        w!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} ms</text>\n",
            x0 - 6.0,
            ty + 4.0,
            tick_label(tick)
        );
    }
    let (ticks, format) = time_ticks(t0, t1);
    for t in ticks {
        let tx = x(t as f64);
        let label = DateTime::from_timestamp(t, 0).map(|d| d.format(format).to_string()).unwrap_or_default();
        w!(out, "<line class=\"axis\" x1=\"{tx:.1}\" x2=\"{tx:.1}\" y1=\"{y1}\" y2=\"{:.1}\"/>", y1 + 4.0);
        w!(out, "<text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>\n", y1 + 18.0);
    }
    w!(out, "<line class=\"axis\" x1=\"{x0}\" x2=\"{x1}\" y1=\"{y1}\" y2=\"{y1}\"/>");
    w!(out, "<line class=\"axis\" x1=\"{x0}\" x2=\"{x0}\" y1=\"{y0}\" y2=\"{y1}\"/>\n");
    w!(out, "<text x=\"{x1}\" y=\"{H}\" text-anchor=\"end\">UTC</text>\n");

    for region in &monitor.regions {
        let colour = palette.colour(&region.stats.region);
        let name = escape(&region.stats.region);
        let mid = |p: &Bucket| x(p.start.timestamp() as f64 + b as f64 / 2.0);
        let mut path = String::new();
        let mut previous_drawn = false;
        for p in &region.series {
            match p.avg_ms {
                Some(ms) => {
                    w!(path, "{}{:.1},{:.1} ", if previous_drawn { "L" } else { "M" }, mid(p), y(ms));
                    previous_drawn = true;
                }
                None => previous_drawn = false,
            }
        }
        w!(out, "<g><title>{name}</title>");
        w!(
            out,
            "<path d=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" stroke-linejoin=\"round\"/>",
            path.trim_end()
        );
        for p in &region.series {
            let px = mid(p);
            let when = p.start.format("%Y-%m-%d %H:%M");
            if let Some(ms) = p.avg_ms {
                w!(
                    out,
                    "<circle cx=\"{px:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{colour}\"><title>{name}, {when}: {} ({} checks, {} failed)</title></circle>",
                    y(ms),
                    format_ms(ms),
                    p.checks,
                    p.failed()
                );
            }
            if p.failed() > 0 {
                // On the line where there is one, on the axis when every check failed.
                let py = p.avg_ms.map_or(y1, y);
                w!(
                    out,
                    "<path d=\"M{:.1},{:.1}l7,7m0,-7l-7,7\" stroke=\"{FAILURE_COLOUR}\" stroke-width=\"2\"><title>{name}, {when}: {} of {} checks failed</title></path>",
                    px - 3.5,
                    py - 3.5,
                    p.failed(),
                    p.checks
                );
            }
        }
        w!(out, "</g>\n");
    }
    w!(out, "</svg>\n");
}

const BAR_ROW: f64 = 30.0;
const BAR_HEIGHT: f64 = 16.0;
const BAR_LABEL: f64 = 96.0;
const BAR_WIDTH: f64 = 210.0;
const BAR_SVG_WIDTH: f64 = 480.0;

fn region_label(out: &mut String, row_y: f64, region: &RegionReport) {
    w!(
        out,
        "<text class=\"label\" x=\"0\" y=\"{:.1}\">{}</text>",
        row_y + BAR_HEIGHT / 2.0 + 4.0,
        escape(&region.stats.region)
    );
}

fn uptime_bars(out: &mut String, regions: &[RegionReport]) {
    let height = regions.len() as f64 * BAR_ROW;
    w!(out, "<svg viewBox=\"0 0 {BAR_SVG_WIDTH} {height}\" role=\"img\" aria-label=\"Uptime per region\">\n");
    for (i, region) in regions.iter().enumerate() {
        let s = &region.stats;
        let row_y = i as f64 * BAR_ROW + (BAR_ROW - BAR_HEIGHT) / 2.0;
        region_label(out, row_y, region);
        w!(out, "<rect class=\"track\" x=\"{BAR_LABEL}\" y=\"{row_y:.1}\" width=\"{BAR_WIDTH}\" height=\"{BAR_HEIGHT}\" rx=\"3\"/>");
        let percent = s.uptime_percentage.unwrap_or(0.0).clamp(0.0, 100.0);
        let colour = uptime_style(percent).1;
        w!(
            out,
            "<rect x=\"{BAR_LABEL}\" y=\"{row_y:.1}\" width=\"{:.1}\" height=\"{BAR_HEIGHT}\" rx=\"3\" fill=\"{colour}\"><title>{}: {} up</title></rect>",
            percent / 100.0 * BAR_WIDTH,
            escape(&s.region),
            format_uptime(s.uptime_percentage)
        );
        w!(
            out,
            "<text class=\"label\" x=\"{:.1}\" y=\"{:.1}\">{} <tspan>({}/{} checks)</tspan></text>\n",
            BAR_LABEL + BAR_WIDTH + 8.0,
            row_y + BAR_HEIGHT / 2.0 + 4.0,
            format_uptime(s.uptime_percentage),
            s.successful,
            s.checks
        );
    }
    w!(out, "</svg>\n");
}

/// Average DNS, connect, TLS and first-byte times, in [`PHASES`] order.
fn phases(region: &RegionReport) -> [Option<f64>; 4] {
    let s = &region.stats;
    [s.avg_dns_ms, s.avg_connect_ms, s.avg_tls_ms, s.avg_first_byte_ms]
}

fn phase_bars(out: &mut String, regions: &[RegionReport]) {
    let sum = |r: &RegionReport| phases(r).iter().flatten().sum::<f64>();
    let scale = Scale::up_to(regions.iter().map(sum).fold(0.0, f64::max), 4.0);
    let axis_y = regions.len() as f64 * BAR_ROW;
    let height = axis_y + 20.0;
    let x = |ms: f64| BAR_LABEL + ms / scale.top * BAR_WIDTH;
    w!(
        out,
        "<svg viewBox=\"0 0 {BAR_SVG_WIDTH} {height}\" role=\"img\" aria-label=\"Average phase times per region\">\n"
    );
    for tick in scale.ticks() {
        let tx = x(tick);
        w!(out, "<line class=\"grid\" x1=\"{tx:.1}\" x2=\"{tx:.1}\" y1=\"0\" y2=\"{axis_y}\"/>");
        w!(out, "<text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n", axis_y + 14.0, tick_label(tick));
    }
    w!(out, "<text x=\"{:.1}\" y=\"{:.1}\">ms</text>\n", x(scale.top) + 20.0, axis_y + 14.0);
    for (i, region) in regions.iter().enumerate() {
        let row_y = i as f64 * BAR_ROW + (BAR_ROW - BAR_HEIGHT) / 2.0;
        region_label(out, row_y, region);
        let name = escape(&region.stats.region);
        let mut start = 0.0;
        let mut missing = Vec::new();
        for ((phase, colour), value) in PHASES.iter().zip(phases(region)) {
            let Some(ms) = value else {
                missing.push(*phase);
                continue;
            };
            w!(
                out,
                "<rect x=\"{:.1}\" y=\"{row_y:.1}\" width=\"{:.1}\" height=\"{BAR_HEIGHT}\" fill=\"{colour}\"><title>{name}, {phase}: {}</title></rect>",
                x(start),
                x(start + ms) - x(start),
                format_ms(ms)
            );
            start += ms;
        }
        let text = if missing.len() == PHASES.len() {
            "no phase measured".to_string()
        } else if missing.is_empty() {
            format_ms(start)
        } else {
            format!("{} (no {})", format_ms(start), missing.join(", "))
        };
        w!(
            out,
            "<text class=\"label\" x=\"{:.1}\" y=\"{:.1}\">{text}</text>\n",
            x(start) + 6.0,
            row_y + BAR_HEIGHT / 2.0 + 4.0
        );
    }
    w!(out, "<line class=\"axis\" x1=\"{BAR_LABEL}\" x2=\"{BAR_LABEL}\" y1=\"0\" y2=\"{axis_y}\"/>\n");
    w!(out, "</svg>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "<script>alert('x')</script>";

    /// One monitor named `name` measured from one region (named `region`) whose ISP is `isp`.
    fn report(name: &str, region: &str, isp: &str) -> Report {
        let since = "2026-03-01T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let id = uuid::Uuid::nil();
        let stats = crate::results::query::RegionStats {
            monitor_id: id,
            region: region.into(),
            checks: 2,
            successful: 1,
            uptime_percentage: Some(50.0),
            p50_ms: Some(12.0),
            p95_ms: Some(12.0),
            p99_ms: Some(12.0),
            avg_ms: Some(12.0),
            avg_dns_ms: Some(1.0),
            avg_connect_ms: Some(2.0),
            avg_tls_ms: None,
            avg_first_byte_ms: Some(4.0),
            response_count: 1,
            dns_count: 1,
            connect_count: 1,
            tls_count: 0,
            first_byte_count: 1,
        };
        let landing = super::super::Landing {
            monitor_id: id,
            region: region.into(),
            country: Some("DE".into()),
            city: None,
            asn: Some(64_512),
            isp: Some(isp.into()),
            checks: 2,
            share: 100.0,
        };
        let bucket = Bucket { start: since, checks: 2, successful: 1, avg_ms: Some(12.0) };
        let region = RegionReport { stats, series: vec![bucket], landed: vec![landing], median_hop_count: Some(7.0) };
        Report {
            since,
            until: since + chrono::Duration::hours(1),
            bucket_seconds: 3600,
            summarized_since: None,
            summarized_until: None,
            monitors: vec![MonitorReport { monitor_id: id, name: name.into(), regions: vec![region] }],
            open_incidents: Vec::new(),
        }
    }

    #[test]
    fn names_from_the_database_are_escaped_in_the_page_and_in_the_charts() {
        let page = render(&report(HOSTILE, HOSTILE, HOSTILE));
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("alert('x')"), "quotes are escaped too:\n{page}");
        let escaped = tera::escape_html(HOSTILE);
        // Summary table, section heading, legend, landing table (twice: region and ISP), the
        // line chart's label and tooltips, the bars' labels and tooltips.
        assert!(page.matches(&escaped).count() >= 10, "{page}");
        assert!(page.contains("<svg viewBox") && page.contains("<table>"), "the markup itself is not escaped");
    }

    #[test]
    fn the_page_has_its_skeleton_charts_and_notes() {
        let page = render(&report("web", "eu-west", "Example ISP"));
        assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"), "{page}");
        for tag in ["svg", "section", "table", "ul", "main", "style"] {
            assert_eq!(page.matches(&format!("<{tag}")).count(), page.matches(&format!("</{tag}>")).count(), "<{tag}>");
        }
        assert_eq!(page.matches("<svg viewBox").count(), 3, "line chart, uptime bars, phase bars");
        assert_eq!(page.matches("<svg class=\"swatch").count(), 5, "one region's and four phases' legend swatches");
        assert!(page.contains("<td class=\"warn\">50.00%</td>") || page.contains("<td class=\"down\">50.00%</td>"));
        assert!(page.contains("AS64512") || page.contains("64512"), "{page}");
        assert!(page.contains("2026-03-01 10:00 UTC to 2026-03-01 11:00 UTC"), "{page}");

        let mut quiet = report("quiet", "eu-west", "x");
        quiet.monitors[0].regions.clear();
        let page = render(&quiet);
        assert_eq!(page.matches("No results in this window.").count(), 2, "the summary's note and the monitor's");
        assert!(!page.contains("<svg"));
    }

    #[test]
    fn scales_end_on_round_numbers() {
        let s = Scale::up_to(87.0, 5.0);
        assert_eq!((s.top, s.step), (100.0, 20.0));
        assert_eq!(s.ticks().collect::<Vec<_>>(), [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        let s = Scale::up_to(0.0, 5.0);
        assert!(s.top > 0.0);
        let s = Scale::up_to(1234.0, 4.0);
        assert_eq!((s.top, s.step), (1500.0, 500.0));
    }

    #[test]
    fn tick_labels_hide_float_noise() {
        assert_eq!(tick_label(3.0 * 0.2), "0.6");
        assert_eq!(tick_label(40.0), "40");
        assert_eq!(tick_label(2.5), "2.5");
    }

    #[test]
    fn time_ticks_are_round_and_few() {
        let from = "2026-03-01T10:17:00Z".parse::<DateTime<Utc>>().unwrap().timestamp();
        let (ticks, format) = time_ticks(from, from + 86_400);
        assert!(ticks.len() <= 8 && ticks.len() >= 4, "{ticks:?}");
        assert!(ticks.iter().all(|t| t % 3600 == 0));
        assert_eq!(format, "%H:%M");
        let (ticks, format) = time_ticks(from, from + 30 * 86_400);
        assert!(ticks.len() <= 8);
        assert_eq!(format, "%b %d");
    }
}
