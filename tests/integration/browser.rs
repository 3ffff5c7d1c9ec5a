//! The browser driver against real headless Chromium and a local site: a page
//! whose button loads content after a delay, one that throws console errors,
//! one that never finishes loading. No Chromium process may outlive a
//! journey, whether it ends, times out, or the process running it is killed.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use geoctl::synthetic::browser::{self, Action, Options, Outcome, MAX_SCREENSHOT};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{block_on, ClosedPort};

/// The env var the child process of the kill tests reads its journey from.
const CHILD_JOURNEY: &str = "GEOCTL_TEST_BROWSER_CHILD";

const APP: &str = r#"<!doctype html><html><head><title>app</title></head><body>
<h1>Demo</h1><label>Name <input id="name" value="old"></label><button id="load">Load</button>
<div id="status">idle</div>
<script>
document.getElementById('load').addEventListener('click', function () {
  document.getElementById('status').textContent = 'loading';
  setTimeout(function () {
    var d = document.createElement('div');
    d.id = 'result';
    d.textContent = 'loaded for ' + document.getElementById('name').value;
    document.body.appendChild(d);
  }, 300);
});
</script></body></html>"#;

const HANG: &str = r#"<!doctype html><html><body><p>almost there</p><img src="/never"></body></html>"#;

/// Chromium, or `None` (said loudly) when it is not installed and the run
/// does not require it; `scripts/test` installs it as root and requires it.
pub fn chromium() -> Option<PathBuf> {
    match browser::find_chromium() {
        Some(path) => Some(path),
        None if std::env::var_os("GEOCTL_TEST_CHROMIUM").is_some() => {
            panic!("scripts/test installed Chromium, but find_chromium() does not see it")
        }
        None => {
            eprintln!("SKIPPED: no Chromium (scripts/test installs Debian's chromium as root; or set CHROMIUM_PATH)");
            None
        }
    }
}

fn options(chromium: PathBuf, timeout: Duration) -> Options {
    Options { chromium, action_timeout: timeout, screenshot_on_failure: true }
}

fn goto(url: String) -> Action {
    Action::Goto(url)
}

/// The local site, on a loopback port, serving HTTP/1.1 with keep-alive.
struct Site {
    base: String,
    /// Requests for `/never`, answered never.
    hung: Arc<AtomicUsize>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Site {
    fn start() -> Site {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hung = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let counter = hung.clone();
        std::thread::spawn(move || {
            block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let serve = async {
                    loop {
                        let Ok((socket, _)) = listener.accept().await else { continue };
                        tokio::spawn(serve_connection(socket, counter.clone()));
                    }
                };
                tokio::select! { _ = serve => {}, _ = stopped => {} }
            })
        });
        Site { base, hung, _stop: stop }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

async fn serve_connection(mut socket: tokio::net::TcpStream, hung: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        buf.drain(..head_end);
        let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let (status, body) = match path {
            "/app" => (200, APP.to_string()),
            "/errors" => (200, errors_page(query)),
            "/hang" => (200, HANG.to_string()),
            "/never" => {
                hung.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>().await;
                return;
            }
            _ => (404, "not found".to_string()),
        };
        let response = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
            if status == 200 { "OK" } else { "Not Found" },
            body.len()
        );
        if socket.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Two `console.error` calls, one uncaught exception; an image that is not
/// there (404) and one from a port that refuses connections.
fn errors_page(query: &str) -> String {
    let refused = query.strip_prefix("refused=").unwrap_or("9");
    format!(
        r#"<!doctype html><html><body><p>errors</p>
<img src="/missing.png"><img src="http://127.0.0.1:{refused}/gone.png">
<script>console.error('first'); console.log('not an error'); console.error('second');</script>
<script>throw new Error('uncaught');</script></body></html>"#
    )
}

fn describe(outcome: &Outcome) -> String {
    format!(
        "failure {:?}, pages {:?}, console errors {}, failed requests {}",
        outcome.failure, outcome.pages, outcome.console_errors, outcome.failed_requests
    )
}

#[test]
fn a_journey_clicks_waits_and_reads_with_each_pages_timing() {
    let Some(chromium) = chromium() else { return };
    let site = Site::start();
    let actions = vec![
        goto(site.url("/app")),
        Action::Fill { selector: "#name".into(), value: "ann".into() },
        Action::Click("#load".into()),
        Action::WaitFor("#result".into()),
        Action::ExpectText { selector: "#result".into(), contains: "loaded for ann".into() },
        goto(site.url("/app?again")),
    ];
    let outcome = block_on(browser::run(&actions, &options(chromium, Duration::from_secs(10))));
    assert_eq!(outcome.failure, None, "{}", describe(&outcome));
    assert!(outcome.duration >= Duration::from_millis(300), "the content came 300 ms after the click");
    assert_eq!((outcome.console_errors, outcome.failed_requests), (0, 0), "{}", describe(&outcome));
    assert_eq!(outcome.screenshot, None, "no failure, no screenshot");

    let [first, again] = &outcome.pages[..] else { panic!("one timing per goto: {}", describe(&outcome)) };
    assert_eq!(first.url, site.url("/app"));
    assert!(first.connect_ms.is_some_and(|ms| ms >= 0.0), "a fresh connection was timed: {first:?}");
    assert_eq!((first.dns_ms, first.tls_ms), (None, None), "an IP literal over http: {first:?}");
    let (dcl, load) = (first.dom_content_loaded_ms.unwrap(), first.load_ms.unwrap());
    assert!(first.first_byte_ms.is_some_and(|ms| ms > 0.0) && 0.0 < dcl && dcl <= load, "{first:?}");
    assert!(first.first_contentful_paint_ms.is_some_and(|ms| ms > 0.0), "the page shows text: {first:?}");
    // The site keeps connections alive: the second page reuses the first's,
    // which is "no connect", not a connect of 0 ms.
    assert_eq!((again.connect_ms, again.dns_ms), (None, None), "{again:?}");
    assert!(again.first_byte_ms.is_some() && again.load_ms.is_some(), "{again:?}");
}

#[test]
fn console_errors_and_failed_requests_are_counted() {
    let Some(chromium) = chromium() else { return };
    let site = Site::start();
    let refused = ClosedPort::new();
    let actions = vec![goto(site.url(&format!("/errors?refused={}", refused.port)))];
    let outcome = block_on(browser::run(&actions, &options(chromium, Duration::from_secs(10))));
    assert_eq!(outcome.failure, None, "a page with errors still loads: {}", describe(&outcome));
    assert_eq!(outcome.console_errors, 3, "two console.error calls and one uncaught exception: {}", describe(&outcome));
    assert_eq!(outcome.failed_requests, 2, "a 404 and a refused connection: {}", describe(&outcome));
}

#[test]
fn a_failing_expectation_says_what_it_wanted_and_found_with_a_bounded_screenshot() {
    let Some(chromium) = chromium() else { return };
    let site = Site::start();
    let actions = vec![
        goto(site.url("/app")),
        Action::ExpectText { selector: "#status".into(), contains: "loaded".into() },
        Action::Click("#load".into()),
    ];
    let started = Instant::now();
    let outcome = block_on(browser::run(&actions, &options(chromium, Duration::from_secs(1))));
    let (index, why) = outcome.failure.clone().expect("the text never appears");
    assert_eq!(index, 1, "{why}");
    assert_eq!(why, "`#status`: expected text containing `loaded`, found `idle`");
    // Unbounded, the wait would never end: the text never appears. The margin
    // is for a loaded machine starting Chromium.
    assert!(started.elapsed() < Duration::from_secs(20), "bounded by the 1 s action timeout: {:?}", started.elapsed());
    assert_eq!(outcome.pages.len(), 1, "the actions after the failure did not run");

    let shot = outcome.screenshot.as_deref().expect("a screenshot on failure");
    assert!(shot.len() <= MAX_SCREENSHOT && shot.len() > 1000, "{} bytes", shot.len());
    match outcome.screenshot_content_type() {
        Some("image/png") => assert!(shot.ends_with(&[0xae, 0x42, 0x60, 0x82]), "a whole PNG, IEND last"),
        Some("image/jpeg") => assert!(shot.ends_with(&[0xff, 0xd9])),
        other => panic!("not an image: {other:?}"),
    }
}

#[test]
fn an_element_that_never_appears_fails_its_action_without_a_screenshot_unless_asked() {
    let Some(chromium) = chromium() else { return };
    let site = Site::start();
    let actions = vec![goto(site.url("/app")), Action::Click("#nope".into())];
    let opts = Options { screenshot_on_failure: false, ..options(chromium, Duration::from_secs(2)) };
    let outcome = block_on(browser::run(&actions, &opts));
    // What the page last saw, or (on a machine too loaded for the page to
    // answer in time) the timeout itself.
    let expected = ["no element matches `#nope`", "`#nope` did not appear within 2s"];
    assert!(
        outcome.failure.as_ref().is_some_and(|(index, why)| *index == 1 && expected.contains(&why.as_str())),
        "{}",
        describe(&outcome)
    );
    assert_eq!(outcome.screenshot, None);
}

#[test]
fn a_document_answered_with_an_error_status_or_a_refused_connection_fails_its_goto() {
    let Some(chromium) = chromium() else { return };
    let site = Site::start();
    let refused = ClosedPort::new();
    let opts = Options { screenshot_on_failure: false, ..options(chromium, Duration::from_secs(10)) };
    let missing = site.url("/missing");
    let outcome = block_on(browser::run(&[goto(site.url("/app")), goto(missing.clone())], &opts));
    assert_eq!(outcome.failure, Some((1, format!("`{missing}` answered HTTP 404"))), "{}", describe(&outcome));
    assert_eq!(outcome.pages.len(), 2, "{}", describe(&outcome));

    let gone = format!("http://127.0.0.1:{}/", refused.port);
    let outcome = block_on(browser::run(&[goto(gone.clone())], &opts));
    assert_eq!(outcome.failure, Some((0, format!("`{gone}`: net::ERR_CONNECTION_REFUSED"))), "{}", describe(&outcome));
}

#[test]
fn a_page_that_never_finishes_loading_times_out_naming_it_and_leaves_no_chromium() {
    let Some(_) = chromium() else { return };
    let site = Site::start();
    let url = site.url("/hang");
    let mut child = journey_in_a_child(&[goto(url.clone())], Duration::from_secs(2));
    let browser = wait_for_browser_of(&mut child);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let outcome: Value = stdout
        .lines()
        .find_map(|line| line.split_once("OUTCOME ").map(|(_, json)| json))
        .map(|json| serde_json::from_str(json).unwrap())
        .unwrap_or_else(|| panic!("the child reported nothing:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(outcome["failure"], json!([0, format!("`{url}` did not finish loading within 2s")]), "{outcome}");
    let page = &outcome["pages"][0];
    assert!(page["first_byte_ms"].is_number() && page["load_ms"].is_null(), "measured as far as it got: {page}");
    assert!(site.hung.load(Ordering::SeqCst) >= 1, "the page was stuck on /never");

    assert_eq!(survivors(&browser), Vec::<i32>::new(), "Chromium processes left after the journey");
    assert!(!browser.profile.exists(), "the profile {} was removed", browser.profile.display());
}

#[test]
fn killing_the_process_that_runs_a_journey_leaves_no_chromium() {
    let Some(chromium) = chromium() else { return };
    let site = Site::start();
    for signal in [libc::SIGKILL, libc::SIGTERM] {
        let hung_before = site.hung.load(Ordering::SeqCst);
        let mut child = journey_in_a_child(&[goto(site.url("/hang"))], Duration::from_secs(120));
        let browser = wait_for_browser_of(&mut child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while site.hung.load(Ordering::SeqCst) == hung_before {
            assert!(Instant::now() < deadline, "the child's browser never asked for /never");
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: plain syscall on our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        child.wait().unwrap();

        let deadline = Instant::now() + Duration::from_secs(5);
        while !survivors(&browser).is_empty() {
            assert!(
                Instant::now() < deadline,
                "signal {signal}: Chromium outlived the process that started it: {:?}",
                survivors(&browser)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Nobody was left to remove the profile; the next journey does.
        let outcome =
            block_on(browser::run(&[goto(site.url("/app"))], &options(chromium.clone(), Duration::from_secs(10))));
        assert_eq!(outcome.failure, None, "{}", describe(&outcome));
        assert!(!browser.profile.exists(), "the next start swept {}", browser.profile.display());
    }
}

/// Not a test: the body of the child process the tests above start (and kill).
#[test]
#[ignore = "runs only as the child process of the browser tests"]
fn journey_in_child() {
    let Ok(journey) = std::env::var(CHILD_JOURNEY) else { return };
    let journey: Value = serde_json::from_str(&journey).unwrap();
    let actions: Vec<Action> = serde_json::from_value(journey["actions"].clone()).unwrap();
    let timeout = Duration::from_millis(journey["timeout_ms"].as_u64().unwrap());
    let outcome = block_on(browser::run(&actions, &options(browser::find_chromium().unwrap(), timeout)));
    let report = json!({ "failure": outcome.failure, "pages": outcome.pages });
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "OUTCOME {report}").unwrap();
    stdout.flush().unwrap();
}

/// This test binary again, running only [`journey_in_child`].
fn journey_in_a_child(actions: &[Action], timeout: Duration) -> std::process::Child {
    let journey = json!({ "actions": actions, "timeout_ms": timeout.as_millis() as u64 });
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "browser::journey_in_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_JOURNEY, journey.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The Chromium a process started: its pid (its process group) and profile.
struct Browser {
    pid: i32,
    profile: PathBuf,
}

fn wait_for_browser_of(child: &mut std::process::Child) -> Browser {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for (pid, stat, cmdline) in processes() {
            if stat_field(&stat, 1) == Some(child.id() as i32) {
                if let Some(dir) = cmdline.iter().find_map(|arg| arg.strip_prefix("--user-data-dir=")) {
                    return Browser { pid, profile: PathBuf::from(dir) };
                }
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "the child exited before its browser was seen");
        assert!(Instant::now() < deadline, "no Chromium child appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Running processes (not zombies) of the browser's group or naming its
/// profile (helpers that left the group, like the crash handler).
fn survivors(browser: &Browser) -> Vec<i32> {
    let profile = browser.profile.to_string_lossy();
    let mut seen = HashSet::new();
    processes()
        .into_iter()
        .filter(|(_, stat, cmdline)| {
            let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).unwrap_or("");
            state != "Z"
                && state != "X"
                && (stat_field(stat, 2) == Some(browser.pid) || cmdline.iter().any(|arg| arg.contains(&*profile)))
        })
        .map(|(pid, _, _)| pid)
        .filter(|pid| seen.insert(*pid))
        .collect()
}

/// Every process: pid, `/proc/PID/stat`, command line.
fn processes() -> Vec<(i32, String, Vec<String>)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            Some((pid, stat, args))
        })
        .collect()
}

/// A numeric field of `/proc/PID/stat` counted from the state (1: parent, 2: process group).
fn stat_field(stat: &str, n: usize) -> Option<i32> {
    stat.rsplit_once(')')?.1.split_whitespace().nth(n)?.parse().ok()
}
