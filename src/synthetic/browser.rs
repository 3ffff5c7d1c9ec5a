//! Browser steps: headless Chromium driven over the DevTools protocol.
//!
//! The caller hands over actions whose strings are already interpolated;
//! [`run`] never panics and always closes the browser it started.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One action of a browser step, written in scripts as a one-key map
/// (`- goto: URL`, `- click: SELECTOR`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Open a URL and wait for its `load` event.
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
    /// PNG bytes, taken when an action failed and screenshots were asked for.
    pub screenshot: Option<Vec<u8>>,
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

/// Runs the actions in one fresh headless browser.
// CONTRACT PLACEHOLDER: branch `browser` replaces this body with the real
// DevTools driver; nothing may land on main with this body.
pub async fn run(actions: &[Action], opts: &Options) -> Outcome {
    let _ = (actions, opts);
    Outcome { failure: Some((0, "browser steps are not built yet".into())), ..Outcome::default() }
}
