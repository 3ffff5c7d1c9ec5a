//! A page's timing from what Chromium reports, with the probe's meanings.
//!
//! The network phases come from the DevTools `Network.ResourceTiming` of the
//! document's response, not from the page's `performance` entries: the page
//! sees coarsened times, where a loopback connect rounds to 0 and cannot be
//! told from "no connect", while DevTools marks a phase that did not happen
//! with -1 and flags a reused connection. So:
//! * `dns_ms`: `dnsStart`..`dnsEnd`; `None` for an IP literal (Chromium times
//!   its trivial "resolution") or a reused connection,
//! * `connect_ms`: TCP connect, `connectStart`..`connectEnd` less the TLS part
//!   (Chromium's connect span includes it); `None` on a reused connection,
//! * `tls_ms`: `sslStart`..`sslEnd`; `None` for `http://` or a reused connection,
//! * `first_byte_ms`: request sent (`sendEnd`) to the first byte of the
//!   response headers,
//! * `dom_content_loaded_ms`, `load_ms`, `first_contentful_paint_ms`,
//!   `largest_contentful_paint_ms`: from the start of the navigation to the
//!   event (`performance` navigation entry, and buffered `paint` and
//!   `largest-contentful-paint` observers read after `load`; headless Chromium
//!   may paint only after the next frame, so the script waits for one).

use serde::Deserialize;

use super::PageTiming;

/// `Network.ResourceTiming`: milliseconds after `requestTime`, -1 when the
/// phase did not happen.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResourceTiming {
    pub dns_start: f64,
    pub dns_end: f64,
    pub connect_start: f64,
    pub connect_end: f64,
    pub ssl_start: f64,
    pub ssl_end: f64,
    pub send_end: f64,
    /// Newer Chromium only; `receiveHeadersEnd` stands in when absent.
    pub receive_headers_start: Option<f64>,
    pub receive_headers_end: f64,
}

/// The document's response as `Network.responseReceived` reports it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DocumentResponse {
    pub status: u16,
    pub connection_reused: bool,
    pub timing: Option<ResourceTiming>,
}

/// What the page's script reports after `load` (see `NAVIGATION_JS`): times
/// from the start of the navigation, absent when the page has no entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PageReport {
    pub dom_content_loaded: Option<f64>,
    pub load: Option<f64>,
    pub fcp: Option<f64>,
    pub lcp: Option<f64>,
}

/// Reads the navigation entry and the first and largest contentful paints so
/// far. A page loaded in headless Chromium may have no paint entry yet when
/// `load` fires (nothing asked for a frame): the script asks for two frames
/// (the paint entries are queued after the first is presented) and waits at
/// most a second for the buffered entries in all: a loaded machine presents a
/// page's first frame that much after `load`, and a page that painted answers
/// at once.
pub const NAVIGATION_JS: &str = r#"new Promise(function (resolve) {
  var n = performance.getEntriesByType('navigation')[0];
  var report = n ? { dom_content_loaded: n.domContentLoadedEventStart, load: n.loadEventStart } : {};
  var pending = 2, done = false;
  function finish() { if (!done) { done = true; resolve(report); } }
  function settled() { if (--pending === 0) finish(); }
  function watch(type, take) {
    try {
      new PerformanceObserver(function (list, observer) {
        var e = take(list.getEntries()), key = type === 'paint' ? 'fcp' : 'lcp';
        if (e && report[key] == null) { report[key] = e.startTime; observer.disconnect(); settled(); }
      }).observe({ type: type, buffered: true });
    } catch (e) { settled(); }
  }
  watch('paint', function (e) { return e.filter(function (p) { return p.name === 'first-contentful-paint'; })[0]; });
  watch('largest-contentful-paint', function (e) { return e[e.length - 1]; });
  requestAnimationFrame(function () { requestAnimationFrame(function () {
    var p = performance.getEntriesByName('first-contentful-paint')[0];
    if (p && report.fcp == null) { report.fcp = p.startTime; settled(); }
  }); });
  setTimeout(finish, 1000);
})"#;

/// Builds a page's timing; every phase Chromium did not measure stays `None`.
pub fn page_timing(url: &str, response: Option<&DocumentResponse>, report: Option<&PageReport>) -> PageTiming {
    let mut page = PageTiming { url: url.to_string(), ..PageTiming::default() };
    if let Some(t) = response.and_then(|r| r.timing.as_ref()) {
        let fresh = !response.is_some_and(|r| r.connection_reused);
        page.dns_ms = span(t.dns_start, t.dns_end).filter(|_| fresh && !ip_literal(url));
        page.tls_ms = span(t.ssl_start, t.ssl_end).filter(|_| fresh);
        page.connect_ms = span(t.connect_start, t.connect_end)
            .filter(|_| fresh)
            .map(|c| round((c - page.tls_ms.unwrap_or(0.0)).max(0.0)));
        let first_byte = t.receive_headers_start.filter(|s| *s >= 0.0).unwrap_or(t.receive_headers_end);
        page.first_byte_ms = span(t.send_end, first_byte);
    }
    if let Some(r) = report {
        page.dom_content_loaded_ms = r.dom_content_loaded.filter(|v| *v > 0.0).map(round);
        page.load_ms = r.load.filter(|v| *v > 0.0).map(round);
        page.first_contentful_paint_ms = r.fcp.filter(|v| *v > 0.0).map(round);
        page.largest_contentful_paint_ms = r.lcp.filter(|v| *v > 0.0).map(round);
    }
    page
}

fn ip_literal(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| matches!(u.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_))))
}

/// `end - start` when both happened (DevTools writes -1 otherwise).
fn span(start: f64, end: f64) -> Option<f64> {
    (start >= 0.0 && end >= start).then(|| round(end - start))
}

/// Microsecond resolution, like the probe's figures.
fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(connect: (f64, f64), ssl: (f64, f64)) -> ResourceTiming {
        ResourceTiming {
            dns_start: 0.5,
            dns_end: 2.0,
            connect_start: connect.0,
            connect_end: connect.1,
            ssl_start: ssl.0,
            ssl_end: ssl.1,
            send_end: 12.25,
            receive_headers_start: Some(40.0),
            receive_headers_end: 41.0,
        }
    }

    #[test]
    fn a_fresh_tls_connection_splits_connect_and_tls() {
        let response =
            DocumentResponse { status: 200, connection_reused: false, timing: Some(timing((2.0, 12.0), (4.0, 12.0))) };
        let page = page_timing("https://a/", Some(&response), None);
        assert_eq!(page.dns_ms, Some(1.5));
        assert_eq!(page.connect_ms, Some(2.0));
        assert_eq!(page.tls_ms, Some(8.0));
        assert_eq!(page.first_byte_ms, Some(27.75));
    }

    #[test]
    fn a_reused_connection_has_no_dns_connect_or_tls_not_zero() {
        // Chromium marks the phases -1 on reuse; the flag alone must be enough too.
        for t in [timing((-1.0, -1.0), (-1.0, -1.0)), timing((0.0, 0.0), (0.0, 0.0))] {
            let response = DocumentResponse { status: 200, connection_reused: true, timing: Some(t) };
            let page = page_timing("https://a/", Some(&response), None);
            assert_eq!((page.dns_ms, page.connect_ms, page.tls_ms), (None, None, None));
            assert_eq!(page.first_byte_ms, Some(27.75));
        }
    }

    #[test]
    fn plain_http_to_an_ip_has_connect_but_no_dns_or_tls() {
        // Chromium times even an IP literal's "resolution"; the probe calls that no DNS.
        let mut t = timing((0.1, 0.15), (-1.0, -1.0));
        t.receive_headers_start = None;
        let response = DocumentResponse { status: 200, connection_reused: false, timing: Some(t) };
        let page = page_timing("http://127.0.0.1/", Some(&response), None);
        assert_eq!((page.dns_ms, page.tls_ms), (None, None));
        assert_eq!(page.connect_ms, Some(0.05));
        assert_eq!(page.first_byte_ms, Some(28.75), "receiveHeadersEnd stands in for an old Chromium");
    }

    #[test]
    fn the_first_contentful_paint_is_read_from_the_report() {
        let report: PageReport = serde_json::from_str(r#"{"load": 80.0, "fcp": 41.25, "lcp": 0}"#).unwrap();
        let page = page_timing("http://a/", None, Some(&report));
        assert_eq!(page.first_contentful_paint_ms, Some(41.25));
        assert_eq!(page.largest_contentful_paint_ms, None, "0 means no entry");
    }

    #[test]
    fn page_events_not_reached_stay_none() {
        let report: PageReport = serde_json::from_str(r#"{"dom_content_loaded": 35.5, "load": 0}"#).unwrap();
        let page = page_timing("http://a/", None, Some(&report));
        assert_eq!(page.dom_content_loaded_ms, Some(35.5));
        assert_eq!(page.load_ms, None, "0 means the event has not happened");
        assert_eq!((page.first_contentful_paint_ms, page.largest_contentful_paint_ms), (None, None));
        assert_eq!((page.connect_ms, page.first_byte_ms), (None, None), "no response, no network phases");
    }
}
