//! Browser steps: headless Chromium driven over the DevTools protocol.
//!
//! The caller hands over actions whose strings are already interpolated;
//! [`run`] never panics and always closes the browser it started.
//!
//! The protocol runs over `--remote-debugging-pipe` (no port, no websocket):
//! `process` starts and always ends Chromium, `cdp` frames the messages,
//! `page` runs the actions and counts what the page reports, `timing` turns
//! Chromium's figures into [`PageTiming`].

mod cdp;
mod page;
mod process;
mod timing;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

pub use page::MAX_SCREENSHOT;

/// One action of a browser step, written in scripts as a one-key map
/// (`- goto: URL`, `- click: SELECTOR`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Open an http(s) URL and wait for its `load` event.
    Goto(String),
    /// Click the first element matching a CSS selector.
    Click(String),
    /// Wait until an element matching a CSS selector exists.
    WaitFor(String),
    /// Type a value into the element matching a selector.
    Fill { selector: String, value: String },
    /// The text of the element matching a selector contains a string.
    ExpectText { selector: String, contains: String },
}

/// How to run a journey.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Chromium binary.
    pub chromium: PathBuf,
    /// Bound on each action.
    pub action_timeout: Duration,
    /// Take a PNG screenshot when an action fails.
    pub screenshot_on_failure: bool,
}

/// Navigation timing of one page, in milliseconds; `None` when the browser
/// did not measure it (a reused connection has no connect).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PageTiming {
    pub url: String,
    pub dns_ms: Option<f64>,
    pub connect_ms: Option<f64>,
    pub tls_ms: Option<f64>,
    pub first_byte_ms: Option<f64>,
    pub dom_content_loaded_ms: Option<f64>,
    pub load_ms: Option<f64>,
    /// Absent in results stored before it was measured.
    #[serde(default)]
    pub first_contentful_paint_ms: Option<f64>,
    pub largest_contentful_paint_ms: Option<f64>,
}

/// What a journey measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Wall time of the whole journey, browser start included.
    pub duration: Duration,
    /// One entry per navigation (`goto`).
    pub pages: Vec<PageTiming>,
    pub console_errors: u32,
    pub failed_requests: u32,
    /// The first action that failed: its index in the step and why.
    pub failure: Option<(usize, String)>,
    /// The viewport when an action failed and screenshots were asked for: a
    /// PNG, or a JPEG when the PNG is over [`MAX_SCREENSHOT`] (never larger;
    /// dropped with a note in the failure when even a half-size JPEG is).
    pub screenshot: Option<Vec<u8>>,
}

impl Outcome {
    /// `image/png` or `image/jpeg`, from the screenshot's first bytes.
    pub fn screenshot_content_type(&self) -> Option<&'static str> {
        match self.screenshot.as_deref()? {
            [0x89, b'P', b'N', b'G', ..] => Some("image/png"),
            [0xff, 0xd8, 0xff, ..] => Some("image/jpeg"),
            _ => None,
        }
    }
}

/// The Chromium to use: `CHROMIUM_PATH` when set, else the first of the usual
/// names found on `PATH`. `None` means this host cannot run browser steps.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM_PATH").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return is_executable(&path).then_some(path);
    }
    let dirs = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
        .iter()
        .find_map(|name| std::env::split_paths(&dirs).map(|dir| dir.join(name)).find(|path| is_executable(path)))
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Startup (launch, a tab, a session) gets at least this long, whatever the
/// action timeout.
const MIN_STARTUP: Duration = Duration::from_secs(10);
/// Bound on the screenshot after a failure.
const SCREENSHOT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long past its deadline a waiting action may take to report what it last saw.
const LAST_WORD: Duration = Duration::from_secs(1);

/// Runs the actions in one fresh headless browser, stopping at the first that
/// fails. Each action is bounded by `action_timeout`; a `goto` opens only
/// http(s) URLs, waits for the page's `load` event, and fails on a network
/// error or an HTTP status of 400 or more for the document. The browser and its profile are gone when this
/// returns, and a panic inside is reported as a failure of action 0.
pub async fn run(actions: &[Action], opts: &Options) -> Outcome {
    let started = Instant::now();
    let (owned_actions, owned_opts) = (actions.to_vec(), opts.clone());
    let mut outcome = match tokio::spawn(async move { journey(&owned_actions, &owned_opts).await }).await {
        Ok(outcome) => outcome,
        Err(e) => {
            Outcome { failure: Some((0, format!("internal error: browser task failed: {e}"))), ..Outcome::default() }
        }
    };
    outcome.duration = started.elapsed();
    outcome
}

async fn journey(actions: &[Action], opts: &Options) -> Outcome {
    let mut outcome = Outcome::default();
    if actions.is_empty() {
        return outcome;
    }
    let (chromium, pipe) = match process::Chromium::launch(&opts.chromium) {
        Ok(started) => started,
        Err(e) => {
            outcome.failure = Some((0, format!("could not start Chromium (`{}`): {e}", opts.chromium.display())));
            return outcome;
        }
    };
    let mut page = page::Page::new(cdp::Connection::new(pipe));
    let startup = opts.action_timeout.max(MIN_STARTUP);
    let opened = match tokio::time::timeout(startup, page.open()).await {
        Ok(opened) => opened,
        Err(_) => Err(format!("no answer within {}", crate::duration::format(startup))),
    };
    if let Err(e) = opened {
        let log = chromium.log_tail();
        let log = if log.is_empty() { String::new() } else { format!("; its log ends: {}", page::quote(&log)) };
        outcome.failure = Some((0, format!("Chromium did not start a page: {e}{log}")));
        chromium.close().await;
        return outcome;
    }

    for (index, action) in actions.iter().enumerate() {
        let deadline = Instant::now() + opts.action_timeout;
        // An action that waits on the page until `deadline` says, when it passes, what it last
        // saw ("found `idle`"); the hard bound leaves it a moment past the deadline to say so, as
        // a CDP round trip on a busy machine can straddle it. A navigation has no such answer.
        let bound = if matches!(action, Action::Goto(_)) { deadline } else { deadline + LAST_WORD };
        let done = match tokio::time::timeout_at(bound, act(&mut page, action, deadline)).await {
            Ok(done) => done,
            Err(_) => Err(timed_out(action, opts.action_timeout)),
        };
        if let Err(why) = done {
            page.note_unfinished();
            outcome.failure = Some((index, why));
            break;
        }
    }
    if let Some((_, why)) = outcome.failure.as_mut().filter(|_| opts.screenshot_on_failure) {
        match tokio::time::timeout(SCREENSHOT_TIMEOUT, page.screenshot()).await {
            Ok(Ok(png)) => outcome.screenshot = Some(png),
            Ok(Err(e)) => why.push_str(&format!(" (no screenshot: {e})")),
            Err(_) => why.push_str(" (no screenshot: the page did not render one in 5s)"),
        }
    }
    outcome.console_errors = page.book.console_errors;
    outcome.failed_requests = page.book.failed_requests;
    outcome.pages = std::mem::take(&mut page.pages);
    drop(page);
    chromium.close().await;
    outcome
}

async fn act(page: &mut page::Page, action: &Action, deadline: Instant) -> Result<(), String> {
    match action {
        Action::Goto(url) => page.goto(url).await,
        Action::Click(selector) => page.click(selector, deadline).await,
        Action::WaitFor(selector) => page.wait_for(selector, deadline).await,
        Action::Fill { selector, value } => page.fill(selector, value, deadline).await,
        Action::ExpectText { selector, contains } => page.expect_text(selector, contains, deadline).await,
    }
}

/// Why an action that ran out of time failed, naming what it waited for.
fn timed_out(action: &Action, timeout: Duration) -> String {
    let within = crate::duration::format(timeout);
    match action {
        Action::Goto(url) => {
            format!("`{}` did not finish loading within {within}", crate::probe::display_url(url))
        }
        Action::Click(selector) | Action::WaitFor(selector) | Action::Fill { selector, .. } => {
            format!("`{selector}` did not appear within {within}")
        }
        Action::ExpectText { selector, contains } => {
            format!("`{selector}` did not show `{}` within {within}", page::quote(contains))
        }
    }
}
