//! Part 2: the phase times `geoctl probe` reports against `curl -w`, on
//! targets with one slow phase each. Both run as processes, alternately, in
//! the same network namespace against the same servers; geoctl's cumulative
//! `timeline` is compared with curl's cumulative times, median against median.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{json, Value};

use crate::report::{self, median};

/// Bound on one curl or geoctl run.
const RUN_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The geoctl binary
    #[arg(long)]
    geoctl: PathBuf,
    /// Runs of each tool per target
    #[arg(long, default_value_t = 15)]
    runs: usize,
    /// `TITLE|URL`, one per target (repeatable)
    #[arg(long = "case", value_parser = parse_case)]
    cases: Vec<(String, String)>,
    #[arg(long)]
    json: PathBuf,
}

fn parse_case(s: &str) -> Result<(String, String), String> {
    let (title, url) = s.rsplit_once('|').ok_or("expected TITLE|URL")?;
    Ok((title.to_string(), url.to_string()))
}

/// The compared events: our label and curl's `-w` variable.
const EVENTS: [(&str, &str); 5] = [
    ("DNS lookup done", "time_namelookup"),
    ("TCP connected", "time_connect"),
    ("TLS done", "time_appconnect"),
    ("first byte", "time_starttransfer"),
    ("total", "time_total"),
];

/// One run's cumulative times in ms, in the order of [`EVENTS`]; `None` for
/// an event that did not happen.
type Sample = [Option<f64>; 5];

async fn run_curl(url: &str) -> anyhow::Result<Sample> {
    let output = bounded(
        tokio::process::Command::new("curl")
            .args(["-4", "-sS", "-o", "/dev/null", "--noproxy", "*", "--max-time", "15", "-w"])
            .arg("%{time_namelookup} %{time_connect} %{time_appconnect} %{time_starttransfer} %{time_total}")
            .arg(url),
    )
    .await?;
    let text = String::from_utf8_lossy(&output);
    let secs: Vec<f64> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("unexpected curl -w output `{text}`"))?;
    anyhow::ensure!(secs.len() == 5, "unexpected curl -w output `{text}`");
    // curl reports 0 for a phase that did not happen (no TLS on http://).
    let ms = |i: usize| Some(secs[i] * 1000.0).filter(|&v| v > 0.0);
    Ok([ms(0), ms(1), ms(2), ms(3), ms(4)])
}

async fn run_geoctl(geoctl: &PathBuf, url: &str) -> anyhow::Result<Sample> {
    let output =
        bounded(tokio::process::Command::new(geoctl).args(["probe", url, "-o", "json", "-4", "--timeout", "15s"]))
            .await?;
    let result: Value = serde_json::from_slice(&output).context("parsing geoctl probe -o json")?;
    anyhow::ensure!(result["up"] == true, "geoctl probe {url}: down: {}", result["failure"]);
    let timeline = &result["timeline"];
    Ok([
        timeline["namelookup_ms"].as_f64(),
        timeline["connect_ms"].as_f64(),
        timeline["tls_ms"].as_f64(),
        timeline["first_byte_ms"].as_f64(),
        result["phases"]["total_ms"].as_f64(),
    ])
}

/// Runs a command to completion within [`RUN_TIMEOUT`]; its stdout.
async fn bounded(command: &mut tokio::process::Command) -> anyhow::Result<Vec<u8>> {
    command.kill_on_drop(true).stdin(std::process::Stdio::null());
    let output = tokio::time::timeout(RUN_TIMEOUT, command.output()).await.context("timed out")??;
    anyhow::ensure!(
        output.status.success(),
        "{:?} failed ({}): {}",
        command.as_std().get_program(),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(output.stdout)
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    println!("Part 2: phase accuracy, `geoctl probe -o json` vs `curl -w`, {} runs each, alternating", args.runs);
    println!("  compared: geoctl's cumulative `timeline` (and phases.total_ms) with curl's cumulative");
    println!("  time_namelookup / time_connect / time_appconnect / time_starttransfer / time_total, median vs median;");
    println!("  both processes run with -4 in the same namespace against the same servers;");
    println!("  within: |diff| ≤ 1 ms or ≤ 5 % of curl's median");
    println!();
    let mut cases = Vec::new();
    for (letter, (title, url)) in ('a'..).zip(&args.cases) {
        // One unmeasured run each: page cache, first-run costs.
        run_curl(url).await?;
        run_geoctl(&args.geoctl, url).await?;
        let (mut curl, mut geoctl) = (Vec::new(), Vec::new());
        for _ in 0..args.runs {
            curl.push(run_curl(url).await?);
            geoctl.push(run_geoctl(&args.geoctl, url).await?);
        }
        println!("  ({letter}) {title}");
        println!("      {url}");
        println!(
            "      {:<16} {:>12} {:>14} {:>10}  {:<7} {:>19} {:>19}",
            "cumulative to", "curl median", "geoctl median", "diff", "within", "curl min-max", "geoctl min-max"
        );
        let mut events = serde_json::Map::new();
        for (i, (label, curl_var)) in EVENTS.iter().enumerate() {
            let mut curl_values: Vec<f64> = curl.iter().filter_map(|s| s[i]).collect();
            let mut geoctl_values: Vec<f64> = geoctl.iter().filter_map(|s| s[i]).collect();
            let (curl_median, geoctl_median) = (median(&mut curl_values), median(&mut geoctl_values));
            let comparison = match (curl_median, geoctl_median) {
                (Some(c), Some(g)) => {
                    let diff = g - c;
                    let within = diff.abs() <= 1.0 || diff.abs() <= 0.05 * c;
                    println!(
                        "      {label:<16} {:>9.2} ms {:>11.2} ms {:>+7.2} ms  {:<7} {:>19} {:>19}",
                        c,
                        g,
                        diff,
                        if within { "yes" } else { "NO" },
                        range(&curl_values),
                        range(&geoctl_values),
                    );
                    json!({ "curl_median_ms": c, "geoctl_median_ms": g, "diff_ms": diff, "within_1ms_or_5pct": within })
                }
                (None, None) => {
                    println!("      {label:<16} {:>12} {:>14}   (did not happen: plain HTTP)", "-", "-");
                    json!({ "curl_median_ms": null, "geoctl_median_ms": null, "happened": false })
                }
                (c, g) => {
                    println!(
                        "      {label:<16} {:>12} {:>14}   only one tool reports it",
                        report::opt(c, 2),
                        report::opt(g, 2)
                    );
                    json!({ "curl_median_ms": c, "geoctl_median_ms": g, "within_1ms_or_5pct": false })
                }
            };
            events.insert(curl_var.to_string(), comparison);
        }
        println!();
        cases.push(json!({
            "case": title,
            "url": url,
            "runs": args.runs,
            "events": events,
            "curl_samples_ms": curl,
            "geoctl_samples_ms": geoctl,
        }));
    }
    report::write_part(&args.json, &json!({ "accuracy": { "cases": cases } }))
}

/// `min-max ms` of values already sorted by [`median`].
fn range(sorted: &[f64]) -> String {
    match (sorted.first(), sorted.last()) {
        (Some(lo), Some(hi)) => format!("{lo:.2}-{hi:.2} ms"),
        _ => "-".into(),
    }
}
