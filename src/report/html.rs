//! The report as one self-contained HTML page: inline CSS and inline SVG, no
//! scripts and nothing fetched, so it opens offline and can be mailed around.
//! Every string that comes from the database goes through [`escape`].

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::{Bucket, MonitorReport, RegionReport, Report, UptimeGrade};

/// Writing into a `String` cannot fail.
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {{
        let _ = write!($out, $($arg)*);
    }};
}

/// Region colours, told apart in colour and in greyscale; red is kept for failures.
const REGION_COLOURS: [&str; 8] =
    ["#2563eb", "#ea580c", "#0d9488", "#7c3aed", "#db2777", "#65a30d", "#0891b2", "#a16207"];
const FAILURE_COLOUR: &str = "#dc2626";
const PHASES: [(&str, &str); 4] =
    [("DNS", "#8b5cf6"), ("Connect", "#0ea5e9"), ("TLS", "#f59e0b"), ("First byte", "#10b981")];

/// The page's style sheet; the dashboard serves it as a file, since its policy allows no inline style.
/// Legend swatches are small SVGs for the same reason: a `style` attribute would be refused.
pub const STYLE: &str = "
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f5f7; color: #1f2328; font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; }
main { max-width: 1040px; margin: 0 auto; padding: 24px 20px 40px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 0 0 12px; overflow-wrap: anywhere; }
h3 { font-size: 13px; margin: 0 0 6px; color: #57606a; text-transform: uppercase; letter-spacing: .04em; }
.meta, .note { color: #57606a; margin: 0 0 16px; }
section { background: #fff; border: 1px solid #d8dee4; border-radius: 8px; padding: 16px 20px; margin: 16px 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 8px; border-bottom: 1px solid #eaeef2; text-align: right; white-space: nowrap; }
th { font-size: 12px; color: #57606a; font-weight: 600; background: #f6f8fa; }
th:nth-child(-n+2), td:nth-child(-n+2) { text-align: left; }
td.name { white-space: normal; overflow-wrap: anywhere; max-width: 220px; }
.up { color: #1a7f37; } .warn { color: #9a6700; } .down { color: #cf222e; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 16px; margin: 4px 0 8px; font-size: 13px; padding: 0; list-style: none; }
.legend li { display: flex; align-items: center; gap: 6px; }
.swatch { width: 14px; height: 4px; border-radius: 2px; display: inline-block; }
.swatch.block { height: 12px; width: 12px; }
.cross { color: #dc2626; font-weight: 700; }
.charts { display: flex; flex-wrap: wrap; gap: 16px 32px; margin-top: 16px; }
.charts > div { flex: 1 1 440px; min-width: 0; }
svg { display: block; width: 100%; height: auto; }
svg text { font: 11px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; fill: #57606a; }
svg text.label { font-size: 12px; fill: #1f2328; }
svg .grid { stroke: #eaeef2; stroke-width: 1; }
svg .axis { stroke: #8c959f; stroke-width: 1; }
svg .track { fill: #eaeef2; }
footer { color: #8c959f; font-size: 12px; text-align: center; }
";

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

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

/// The whole page.
pub fn render(report: &Report) -> String {
    let palette = Palette::new(report);
    let mut out = String::with_capacity(64 * 1024);
    w!(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    w!(out, "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    w!(out, "<title>geoctl report, {} to {}</title>\n", format_time(report.since), format_time(report.until));
    w!(out, "<style>{STYLE}</style>\n</head>\n<body>\n<main>\n");
    w!(out, "<h1>Uptime and latency by region</h1>\n");
    w!(
        out,
        "<p class=\"meta\">{} to {} &middot; {} monitor(s) &middot; charts average response time per {}</p>\n",
        format_time(report.since),
        format_time(report.until),
        report.monitors.len(),
        bucket_label(report.bucket_seconds)
    );
    if report.is_empty() {
        w!(out, "<section><p class=\"note\">No results in this window.</p></section>\n");
    } else {
        summary_table(&mut out, report);
    }
    for monitor in &report.monitors {
        monitor_section(&mut out, report, monitor, &palette);
    }
    w!(out, "<footer>Generated by geoctl {} at {}</footer>\n", env!("CARGO_PKG_VERSION"), format_time(report.until));
    w!(out, "</main>\n</body>\n</html>\n");
    out
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

fn summary_table(out: &mut String, report: &Report) {
    w!(out, "<section>\n<h2>Summary</h2>\n<div class=\"scroll\"><table>\n<thead><tr>");
    for header in
        ["Monitor", "Region", "Checks", "Uptime", "p50", "p95", "p99", "DNS", "Connect", "TLS", "First byte", "Total"]
    {
        w!(out, "<th>{header}</th>");
    }
    w!(out, "</tr></thead>\n<tbody>\n");
    for monitor in &report.monitors {
        for region in &monitor.regions {
            let s = &region.stats;
            let class = s.uptime_percentage.map_or("", |p| uptime_style(p).0);
            w!(
                out,
                "<tr><td class=\"name\">{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{}</td>",
                escape(&monitor.name),
                escape(&s.region),
                s.checks,
                format_uptime(s.uptime_percentage)
            );
            for value in [
                s.p50_ms,
                s.p95_ms,
                s.p99_ms,
                s.avg_dns_ms,
                s.avg_connect_ms,
                s.avg_tls_ms,
                s.avg_first_byte_ms,
                s.avg_ms,
            ] {
                w!(out, "<td>{}</td>", optional_ms(value));
            }
            w!(out, "</tr>\n");
        }
    }
    w!(out, "</tbody>\n</table></div>\n");
    w!(out, "<p class=\"note\">Percentiles and total are over successful checks; phase times are averages over the checks that measured them (- = never measured).</p>\n</section>\n");
}

/// One monitor's section (response time per region, uptime, phases, landings), for a page of
/// the dashboard: region colours are those of the whole `report`.
pub fn monitor_html(report: &Report, monitor: &MonitorReport) -> String {
    let mut out = String::with_capacity(16 * 1024);
    monitor_section(&mut out, report, monitor, &Palette::new(report));
    out
}

fn monitor_section(out: &mut String, report: &Report, monitor: &MonitorReport, palette: &Palette) {
    w!(out, "<section>\n<h2>{}</h2>\n", escape(&monitor.name));
    if monitor.regions.is_empty() {
        w!(out, "<p class=\"note\">No results in this window.</p>\n</section>\n");
        return;
    }
    w!(out, "<h3>Average response time</h3>\n<ul class=\"legend\">");
    for region in &monitor.regions {
        w!(
            out,
            "<li><svg class=\"swatch\" viewBox=\"0 0 14 4\" aria-hidden=\"true\"><rect width=\"14\" height=\"4\" rx=\"2\" fill=\"{}\"/></svg>{}</li>",
            palette.colour(&region.stats.region),
            escape(&region.stats.region)
        );
    }
    w!(out, "<li><span class=\"cross\">&times;</span>failed checks</li></ul>\n");
    line_chart(out, report, monitor, palette);
    w!(out, "<div class=\"charts\">\n<div>\n<h3>Uptime</h3>\n");
    uptime_bars(out, &monitor.regions);
    w!(out, "</div>\n<div>\n<h3>Average phase times</h3>\n");
    if monitor.regions.iter().all(|r| phases(r).iter().all(Option::is_none)) {
        w!(out, "<p class=\"note\">No phase was measured in this window.</p>\n");
    } else {
        w!(out, "<ul class=\"legend\">");
        for (name, colour) in PHASES {
            w!(out, "<li><svg class=\"swatch block\" viewBox=\"0 0 12 12\" aria-hidden=\"true\"><rect width=\"12\" height=\"12\" rx=\"2\" fill=\"{colour}\"/></svg>{name}</li>");
        }
        w!(out, "</ul>\n");
        phase_bars(out, &monitor.regions);
    }
    w!(out, "</div>\n</div>\n");
    landing_table(out, &monitor.regions);
    w!(out, "</section>\n");
}

/// Where each region reached the target, when any was located or traced.
fn landing_table(out: &mut String, regions: &[RegionReport]) {
    if regions.iter().all(|r| r.landed.is_empty() && r.median_hop_count.is_none()) {
        return;
    }
    w!(out, "<h3>Where each region reached the target</h3>\n<div class=\"scroll\"><table>\n<thead><tr>");
    for header in ["Region", "Reached", "ASN", "Share", "Median hops"] {
        w!(out, "<th>{header}</th>");
    }
    w!(out, "</tr></thead>\n<tbody>\n");
    for region in regions {
        let hops = region.median_hop_count.map_or_else(|| "-".to_string(), |h| format!("{h:.1}"));
        if region.landed.is_empty() {
            w!(
                out,
                "<tr><td>{}</td><td>-</td><td>-</td><td>-</td><td>{hops}</td></tr>\n",
                escape(&region.stats.region)
            );
        }
        for (i, l) in region.landed.iter().enumerate() {
            w!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.0}%</td><td>{}</td></tr>\n",
                escape(&region.stats.region),
                escape(&super::place(l)),
                escape(&super::network(l)),
                l.share,
                if i == 0 { hops.as_str() } else { "" }
            );
        }
    }
    w!(out, "</tbody>\n</table></div>\n");
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

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x&'y")</script>"#),
            "&lt;script&gt;alert(&quot;x&amp;&#39;y&quot;)&lt;/script&gt;"
        );
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
