//! One page driven over a DevTools session: the actions, and the book of what
//! the page reported meanwhile (console errors, failed requests, navigations).
//!
//! What counts:
//! * a console error is a `console.error` or failed `console.assert` call,
//!   or an uncaught exception (script error or unhandled rejection);
//! * a failed request is one the network failed (DNS, refused, reset, blocked;
//!   not one the browser itself cancelled) or one answered with HTTP status
//!   400 or more; each request counts once. The browser's own request for
//!   `/favicon.ico` is not the page's and does not count.
//!
//! Actions wait for their element the way a user would (it must exist, and for
//! `click` and `fill` be visible) until the action's deadline, watching the
//! DOM from inside the page rather than polling it from here.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::cdp::{Connection, Message};
use super::timing::{page_timing, DocumentResponse, PageReport, NAVIGATION_JS};
use super::PageTiming;

/// Largest screenshot kept: beyond it a JPEG, then a half-size JPEG, is tried.
pub const MAX_SCREENSHOT: usize = 512 * 1024;
/// Found text quoted in a failure, in characters.
const QUOTE_CHARS: usize = 200;
/// Time the in-page wait leaves the action to report what it found.
const REPORT_MARGIN: Duration = Duration::from_millis(150);

pub struct Page {
    conn: Connection,
    session: Option<String>,
    pub book: Book,
    /// One entry per `goto`, pushed before navigating and completed as the
    /// navigation gets further, so a timed-out `goto` keeps what it measured.
    pub pages: Vec<PageTiming>,
    /// The `goto` under way: its URL as shown and its loader id.
    navigating: Option<(String, String)>,
}

#[derive(Debug, Default)]
pub struct Book {
    pub console_errors: u32,
    pub failed_requests: u32,
    counted: HashSet<String>,
    /// Responses to documents, by loader id (a navigation's request id).
    documents: HashMap<String, DocumentResponse>,
    /// Loader ids whose `load` fired.
    loaded: HashSet<String>,
    /// Loader ids whose document failed, with the network's reason.
    document_failed: HashMap<String, String>,
}

/// What the in-page wait (`WAIT_JS`) reports.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Probe {
    ok: bool,
    found: bool,
    hidden: bool,
    disabled: bool,
    text: Option<String>,
    error: Option<String>,
    x: f64,
    y: f64,
}

impl Book {
    /// Books one event of our page; true when it opened a dialog to dismiss.
    fn note(&mut self, method: &str, p: &Value) -> bool {
        match method {
            "Runtime.consoleAPICalled" if matches!(p["type"].as_str(), Some("error" | "assert")) => {
                self.console_errors += 1
            }
            "Runtime.exceptionThrown" => self.console_errors += 1,
            "Network.responseReceived" => {
                let request = p["requestId"].as_str().unwrap_or_default();
                let status = p["response"]["status"].as_f64().unwrap_or(0.0);
                let favicon = p["type"] == "Other"
                    && p["response"]["url"]
                        .as_str()
                        .is_some_and(|u| u.split(['?', '#']).next().unwrap_or(u).ends_with("/favicon.ico"));
                if status >= 400.0 && !favicon && self.counted.insert(request.to_string()) {
                    self.failed_requests += 1;
                }
                if p["type"] == "Document" && p["loaderId"].as_str() == Some(request) {
                    let response = serde_json::from_value(p["response"].clone()).unwrap_or_default();
                    self.documents.insert(request.to_string(), response);
                }
            }
            "Network.loadingFailed" => {
                let request = p["requestId"].as_str().unwrap_or_default().to_string();
                if p["type"] == "Document" {
                    let reason = p["errorText"].as_str().unwrap_or("failed").to_string();
                    self.document_failed.insert(request.clone(), reason);
                }
                if p["canceled"] != true && self.counted.insert(request) {
                    self.failed_requests += 1;
                }
            }
            "Page.lifecycleEvent" if p["name"] == "load" => {
                self.loaded.insert(p["loaderId"].as_str().unwrap_or_default().to_string());
            }
            "Page.javascriptDialogOpening" => return true,
            _ => {}
        }
        false
    }
}

impl Page {
    pub fn new(conn: Connection) -> Self {
        Page { conn, session: None, book: Book::default(), pages: Vec::new(), navigating: None }
    }

    /// Opens a tab and attaches to it, with the events the book needs.
    pub async fn open(&mut self) -> Result<(), String> {
        let target = self.call_in(None, "Target.createTarget", json!({ "url": "about:blank" })).await?;
        let target = target["targetId"].as_str().ok_or("Chromium opened a tab without an id")?.to_string();
        let attached =
            self.call_in(None, "Target.attachToTarget", json!({ "targetId": target, "flatten": true })).await?;
        self.session = Some(attached["sessionId"].as_str().ok_or("Chromium attached without a session")?.to_string());
        let mut pending = Vec::new();
        for (method, params) in [
            ("Page.enable", json!({})),
            ("Page.setLifecycleEventsEnabled", json!({ "enabled": true })),
            ("Runtime.enable", json!({})),
            ("Network.enable", json!({})),
        ] {
            pending.push(self.send(method, params).await?);
        }
        for id in pending {
            self.reply(id).await?;
        }
        Ok(())
    }

    /// Opens a URL and waits for its `load` event; fails on a network error
    /// or an HTTP status of 400 or more for the document.
    pub async fn goto(&mut self, url: &str) -> Result<(), String> {
        let shown = crate::probe::display_url(url);
        openable(url).map_err(|why| format!("`{shown}`: {why}"))?;
        self.pages.push(PageTiming { url: shown.clone(), ..PageTiming::default() });
        let nav = self.call("Page.navigate", json!({ "url": url })).await?;
        if let Some(error) = nav["errorText"].as_str().filter(|e| !e.is_empty()) {
            return Err(format!("`{shown}`: {error}"));
        }
        // A same-document navigation (a #fragment) loads nothing.
        let Some(loader) = nav["loaderId"].as_str().map(str::to_string) else { return Ok(()) };
        self.navigating = Some((shown.clone(), loader.clone()));
        while !self.book.loaded.contains(&loader) && !self.book.document_failed.contains_key(&loader) {
            self.pump().await?;
        }
        self.note_page(&shown, &loader, None);
        if let Some(error) = self.book.document_failed.get(&loader) {
            return Err(format!("`{shown}`: {error}"));
        }
        let status = self.book.documents.get(&loader).map_or(0, |d| d.status);
        if status >= 400 {
            return Err(format!("`{shown}` answered HTTP {status}"));
        }
        let report: PageReport = serde_json::from_value(self.evaluate(NAVIGATION_JS).await?).unwrap_or_default();
        self.note_page(&shown, &loader, Some(&report));
        self.navigating = None;
        Ok(())
    }

    /// After a `goto` that timed out: the document's network phases as far as they got.
    pub fn note_unfinished(&mut self) {
        if let Some((shown, loader)) = self.navigating.take() {
            self.note_page(&shown, &loader, None);
        }
    }

    fn note_page(&mut self, shown: &str, loader: &str, report: Option<&PageReport>) {
        let timing = page_timing(shown, self.book.documents.get(loader), report);
        if let Some(last) = self.pages.last_mut() {
            *last = timing;
        }
    }

    pub async fn click(&mut self, selector: &str, deadline: Instant) -> Result<(), String> {
        let found = self.wait(selector, "click", "", deadline).await?;
        let at = |kind: &str| json!({ "type": kind, "x": found.x, "y": found.y, "button": "left", "clickCount": 1 });
        self.call("Input.dispatchMouseEvent", json!({ "type": "mouseMoved", "x": found.x, "y": found.y })).await?;
        self.call("Input.dispatchMouseEvent", at("mousePressed")).await?;
        self.call("Input.dispatchMouseEvent", at("mouseReleased")).await?;
        Ok(())
    }

    pub async fn wait_for(&mut self, selector: &str, deadline: Instant) -> Result<(), String> {
        self.wait(selector, "exists", "", deadline).await.map(drop)
    }

    /// Focuses the field, selects what it holds and types the value over it
    /// (`Input.insertText`, so the page sees input events as from a keyboard).
    pub async fn fill(&mut self, selector: &str, value: &str, deadline: Instant) -> Result<(), String> {
        self.wait(selector, "fill", value, deadline).await?;
        if !value.is_empty() {
            self.call("Input.insertText", json!({ "text": value })).await?;
        }
        Ok(())
    }

    pub async fn expect_text(&mut self, selector: &str, contains: &str, deadline: Instant) -> Result<(), String> {
        self.wait(selector, "text", contains, deadline).await.map(drop)
    }

    /// A PNG of the viewport; a JPEG, then a half-size JPEG, when it is over
    /// [`MAX_SCREENSHOT`].
    pub async fn screenshot(&mut self) -> Result<Vec<u8>, String> {
        let half = json!({ "x": 0, "y": 0, "width": 1280, "height": 800, "scale": 0.5 });
        let mut size = 0;
        for params in [
            json!({ "format": "png" }),
            json!({ "format": "jpeg", "quality": 70 }),
            json!({ "format": "jpeg", "quality": 50, "clip": half }),
        ] {
            let shot = self.call("Page.captureScreenshot", params).await?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(shot["data"].as_str().unwrap_or_default())
                .map_err(|e| format!("screenshot: {e}"))?;
            if bytes.len() <= MAX_SCREENSHOT {
                return Ok(bytes);
            }
            size = bytes.len();
        }
        Err(format!("the screenshot was dropped: {size} bytes even as a half-size JPEG, over the {MAX_SCREENSHOT}"))
    }

    /// Runs the in-page wait until it succeeds or the deadline, again after
    /// a navigation replaced the document it watched.
    async fn wait(&mut self, selector: &str, kind: &str, text: &str, deadline: Instant) -> Result<Probe, String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now()).saturating_sub(REPORT_MARGIN);
            let expression =
                format!("({WAIT_JS})({}, {}, {}, {})", json!(selector), json!(kind), json!(text), left.as_millis());
            let probe = match self.evaluate(&expression).await {
                Ok(value) => serde_json::from_value::<Probe>(value).unwrap_or_default(),
                Err(e) if navigated(&e) && Instant::now() + REPORT_MARGIN < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if probe.ok {
                return Ok(probe);
            }
            if let Some(error) = probe.error {
                return Err(format!("`{selector}`: {error}"));
            }
            if Instant::now() + REPORT_MARGIN < deadline {
                // The document went away under the wait (a navigation); watch the next one.
                continue;
            }
            return Err(not_met(selector, kind, text, &probe));
        }
    }

    /// Runs a script in the page and returns its value (a promise is awaited).
    async fn evaluate(&mut self, expression: &str) -> Result<Value, String> {
        let result = self
            .call("Runtime.evaluate", json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }))
            .await?;
        if let Some(details) = result.get("exceptionDetails") {
            let why = details["exception"]["description"].as_str().or(details["text"].as_str()).unwrap_or("exception");
            return Err(format!("script in the page failed: {}", quote(why)));
        }
        Ok(result["result"]["value"].clone())
    }

    async fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let session = self.session.clone();
        self.call_in(session.as_deref(), method, params).await
    }

    async fn call_in(&mut self, session: Option<&str>, method: &str, params: Value) -> Result<Value, String> {
        let id = self.conn.send(method, params, session).await.map_err(|e| e.to_string())?;
        self.reply(id).await.map_err(|e| format!("{method}: {e}"))
    }

    async fn send(&mut self, method: &str, params: Value) -> Result<u64, String> {
        self.conn.send(method, params, self.session.as_deref()).await.map_err(|e| e.to_string())
    }

    /// Reads until the reply to command `id`, booking events meanwhile.
    async fn reply(&mut self, id: u64) -> Result<Value, String> {
        loop {
            let message = self.conn.recv().await.map_err(|e| e.to_string())?;
            if message.id == Some(id) {
                return match message.error {
                    Some(error) => Err(error.message),
                    None => Ok(message.result.unwrap_or_default()),
                };
            }
            self.event(message).await?;
        }
    }

    /// Reads and books one message.
    async fn pump(&mut self) -> Result<(), String> {
        let message = self.conn.recv().await.map_err(|e| e.to_string())?;
        self.event(message).await
    }

    async fn event(&mut self, message: Message) -> Result<(), String> {
        // Replies to commands abandoned by a timeout, and other targets' events.
        let Some(method) = message.method.as_deref() else { return Ok(()) };
        if message.session_id.is_none() || message.session_id != self.session {
            return Ok(());
        }
        if self.book.note(method, &message.params) {
            // alert(), confirm() and beforeunload would stop the page until answered.
            self.conn
                .send("Page.handleJavaScriptDialog", json!({ "accept": true }), self.session.as_deref())
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Only web pages: a `file://` or `chrome://` page would let a script read
/// the agent's files into a failure message.
fn openable(url: &str) -> Result<(), String> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
        Ok(u) => Err(format!("only http:// and https:// pages can be opened, not {}:", u.scheme())),
        Err(e) => Err(format!("not a URL: {e}")),
    }
}

/// Whether an evaluation failed because its document went away.
fn navigated(error: &str) -> bool {
    ["context was destroyed", "Cannot find context", "navigated or closed", "Cannot find default execution context"]
        .iter()
        .any(|s| error.contains(s))
}

/// Why a wait ended without its condition, from what it last saw.
fn not_met(selector: &str, kind: &str, text: &str, probe: &Probe) -> String {
    if !probe.found {
        return format!("no element matches `{selector}`");
    }
    match kind {
        "text" => format!(
            "`{selector}`: expected text containing `{}`, found `{}`",
            quote(text),
            quote(probe.text.as_deref().unwrap_or_default())
        ),
        _ if probe.hidden => format!("`{selector}` is not visible"),
        _ if probe.disabled => format!("`{selector}` is disabled or read-only"),
        _ => format!("`{selector}` did not become ready"),
    }
}

/// Whitespace collapsed, at most [`QUOTE_CHARS`] characters.
pub fn quote(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match collapsed.char_indices().nth(QUOTE_CHARS) {
        Some((cut, _)) => format!("{}…", &collapsed[..cut]),
        None => collapsed,
    }
}

/// `(selector, kind, text, ms)`: resolves when the element is ready for the
/// action (`exists`, `click`: visible, with its centre; `fill`: a visible,
/// enabled text field, focused with its content selected; `text`: its text
/// contains `text`), or after `ms` with what it saw last.
const WAIT_JS: &str = r#"function (sel, kind, want, ms) {
  function check() {
    var el;
    try { el = document.querySelector(sel); } catch (e) { return { error: 'not a valid CSS selector' }; }
    if (!el) return { found: false };
    if (kind === 'exists') return { ok: true, found: true };
    if (kind === 'text') {
      var t = el.innerText;
      if (t == null) t = el.textContent || '';
      return { ok: t.indexOf(want) >= 0, found: true, text: t };
    }
    el.scrollIntoView({ block: 'center', inline: 'center' });
    var r = el.getBoundingClientRect();
    if (!(r.width > 0 && r.height > 0) || getComputedStyle(el).visibility === 'hidden') return { found: true, hidden: true };
    if (kind === 'fill') {
      var field = el.isContentEditable || el.tagName === 'TEXTAREA' ||
        (el.tagName === 'INPUT' && !/^(checkbox|radio|submit|button|reset|file|image|hidden|range|color)$/i.test(el.type));
      if (!field) return { error: 'not a text field (input, textarea or contenteditable)' };
      if (el.disabled || el.readOnly) return { found: true, disabled: true };
      el.focus();
      if (el.select) { el.select(); } else {
        var range = document.createRange(); range.selectNodeContents(el);
        var s = getSelection(); s.removeAllRanges(); s.addRange(range);
      }
      if (!want) document.execCommand('delete');
      return { ok: true, found: true };
    }
    return { ok: true, found: true, x: r.left + r.width / 2, y: r.top + r.height / 2 };
  }
  return new Promise(function (resolve) {
    var last = check();
    if (last.ok || last.error || ms <= 0) return resolve(last);
    var observer = new MutationObserver(tick), timer = setInterval(tick, 100);
    var stop = setTimeout(function () { finish(last); }, ms);
    observer.observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
    function tick() { last = check(); if (last.ok || last.error) finish(last); }
    function finish(r) { observer.disconnect(); clearInterval(timer); clearTimeout(stop); resolve(r); }
  });
}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_web_pages_can_be_opened() {
        assert!(openable("https://app.example.com/login").is_ok());
        assert!(openable("http://127.0.0.1:8080/").is_ok());
        for url in ["file:///etc/passwd", "chrome://version", "javascript:alert(1)", "about:blank"] {
            assert!(openable(url).unwrap_err().starts_with("only http:// and https://"), "{url}");
        }
        assert!(openable("/relative").unwrap_err().starts_with("not a URL"));
    }

    #[test]
    fn quotes_are_collapsed_and_bounded_on_a_character_boundary() {
        assert_eq!(quote("  Loading\n\t…  now "), "Loading … now");
        let long = "é".repeat(300);
        let q = quote(&long);
        assert_eq!(q.chars().count(), QUOTE_CHARS + 1);
        assert!(q.ends_with('…'));
    }

    #[test]
    fn each_request_counts_once_and_cancelled_ones_not_at_all() {
        let mut book = Book::default();
        let response = json!({ "requestId": "7", "type": "Image", "response": { "status": 404 } });
        book.note("Network.responseReceived", &response);
        let favicon =
            json!({ "requestId": "6", "type": "Other", "response": { "status": 404, "url": "http://a/favicon.ico" } });
        book.note("Network.responseReceived", &favicon);
        book.note("Network.loadingFailed", &json!({ "requestId": "7", "type": "Image", "errorText": "x" }));
        book.note(
            "Network.loadingFailed",
            &json!({ "requestId": "8", "canceled": true, "errorText": "net::ERR_ABORTED" }),
        );
        book.note("Network.loadingFailed", &json!({ "requestId": "9", "errorText": "net::ERR_CONNECTION_REFUSED" }));
        assert_eq!(book.failed_requests, 2);
    }

    #[test]
    fn console_errors_are_error_calls_asserts_and_uncaught_exceptions() {
        let mut book = Book::default();
        for kind in ["log", "error", "warning", "assert"] {
            book.note("Runtime.consoleAPICalled", &json!({ "type": kind }));
        }
        book.note("Runtime.exceptionThrown", &json!({}));
        assert_eq!(book.console_errors, 3);
    }

    #[test]
    fn a_missed_text_says_what_was_expected_and_what_was_found() {
        let probe = Probe { found: true, text: Some("Loading…".into()), ..Probe::default() };
        assert_eq!(
            not_met("#result", "text", "loaded", &probe),
            "`#result`: expected text containing `loaded`, found `Loading…`"
        );
        assert_eq!(not_met("#x", "click", "", &Probe::default()), "no element matches `#x`");
    }
}
