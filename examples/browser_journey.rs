//! Runs one browser journey with geoctl's driver and prints what it measured
//! as JSON: `cargo run --example browser_journey -- '[{"goto":"http://127.0.0.1:8080/"}]'`.
//!
//! `scripts/bench synthetic` times it against Playwright; the browser tests
//! use the same driver in-process. Options: `--timeout-ms N` (default 10000)
//! and `--screenshot` (take one on failure; its size is printed).

use std::time::Duration;

use geoctl::synthetic::browser::{self, Action, Options};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut actions: Option<Vec<Action>> = None;
    let mut timeout = Duration::from_secs(10);
    let mut screenshot = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--timeout-ms" => {
                timeout = Duration::from_millis(args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| usage()))
            }
            "--screenshot" => screenshot = true,
            json => {
                actions = Some(serde_json::from_str(json).unwrap_or_else(|e| {
                    eprintln!("browser_journey: actions: {e}");
                    usage()
                }))
            }
        }
    }
    let Some(actions) = actions else { usage() };
    let Some(chromium) = browser::find_chromium() else {
        eprintln!("browser_journey: no Chromium: set CHROMIUM_PATH or install chromium");
        std::process::exit(1);
    };
    let opts = Options { chromium, action_timeout: timeout, screenshot_on_failure: screenshot };
    let outcome = browser::run(&actions, &opts).await;
    let report = serde_json::json!({
        "duration_ms": outcome.duration.as_secs_f64() * 1000.0,
        "pages": outcome.pages,
        "console_errors": outcome.console_errors,
        "failed_requests": outcome.failed_requests,
        "failure": outcome.failure,
        "screenshot_bytes": outcome.screenshot.as_ref().map(Vec::len),
        "screenshot_type": outcome.screenshot_content_type(),
    });
    println!("{report}");
    std::process::exit(if outcome.failure.is_some() { 1 } else { 0 });
}

fn usage() -> ! {
    eprintln!("usage: browser_journey [--timeout-ms N] [--screenshot] '<actions as JSON>'");
    std::process::exit(2);
}
