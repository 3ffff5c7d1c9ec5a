//! The agent's metrics in Prometheus' text format. Probe metrics carry
//! blackbox_exporter's names (so its Grafana dashboards work) with `monitor`
//! and `region` labels; the agent's own are prefixed `geoctl_`. A phase that
//! was not measured is left out, never shown as 0.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use uuid::Uuid;

use crate::results::NewResult;

/// What a job came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The target was up; result recorded.
    Up,
    /// The target was down; result recorded (the job still completed).
    Down,
    /// The monitor was deleted, paused or no longer runs here: no result.
    Skipped,
    /// The agent could not do its part (retried by the queue).
    Failed,
}

impl Outcome {
    const ALL: [Outcome; 4] = [Outcome::Up, Outcome::Down, Outcome::Skipped, Outcome::Failed];

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Up => "up",
            Outcome::Down => "down",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
        }
    }
}

/// The last check of one monitor from this region.
#[derive(Debug, Clone)]
struct LastProbe {
    monitor: String,
    result: NewResult,
}

#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram { bounds, counts: vec![0; bounds.len()], sum: 0.0, count: 0 }
    }

    fn observe(&mut self, value: f64) {
        for (bound, count) in self.bounds.iter().zip(self.counts.iter_mut()) {
            if value <= *bound {
                *count += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str, labels: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

const LATENESS_BOUNDS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
const BATCH_BOUNDS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0];

#[derive(Debug)]
pub struct Metrics {
    region: String,
    probes: Mutex<BTreeMap<Uuid, LastProbe>>,
    jobs: [AtomicU64; 4],
    lateness: Mutex<Histogram>,
    batch: Mutex<Histogram>,
    pub spool_depth: AtomicU64,
    pub spool_dropped: AtomicU64,
    pub spool_rejected: AtomicU64,
    /// Monitor definitions runs took from the agent's cache / read from PostgreSQL.
    pub definitions_cached: AtomicU64,
    pub definitions_read: AtomicU64,
    /// Jobs this agent's stall checks moved back to wait: jobs whose worker died holding them.
    pub jobs_stalled: AtomicU64,
}

impl Metrics {
    pub fn new(region: &str) -> Self {
        Metrics {
            region: region.to_string(),
            probes: Mutex::default(),
            jobs: Default::default(),
            lateness: Mutex::new(Histogram::new(LATENESS_BOUNDS)),
            batch: Mutex::new(Histogram::new(BATCH_BOUNDS)),
            spool_depth: AtomicU64::new(0),
            spool_dropped: AtomicU64::new(0),
            spool_rejected: AtomicU64::new(0),
            definitions_cached: AtomicU64::new(0),
            definitions_read: AtomicU64::new(0),
            jobs_stalled: AtomicU64::new(0),
        }
    }

    pub fn count_job(&self, outcome: Outcome) {
        self.jobs[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Jobs that reached the end (recorded or skipped), for the heartbeat.
    pub fn jobs_done(&self) -> u64 {
        [Outcome::Up, Outcome::Down, Outcome::Skipped]
            .iter()
            .map(|o| self.jobs[*o as usize].load(Ordering::Relaxed))
            .sum()
    }

    /// How late a run started, in seconds after its scheduled time.
    pub fn observe_lateness(&self, seconds: f64) {
        self.lateness.lock().expect("metrics lock").observe(seconds.max(0.0));
    }

    pub fn observe_batch(&self, rows: usize) {
        self.batch.lock().expect("metrics lock").observe(rows as f64);
    }

    pub fn observe_probe(&self, monitor: &str, result: &NewResult) {
        let last = LastProbe { monitor: monitor.to_string(), result: result.clone() };
        self.probes.lock().expect("metrics lock").insert(result.monitor_id, last);
    }

    /// A monitor that no longer runs here stops being reported.
    pub fn forget(&self, monitor_id: Uuid) {
        self.probes.lock().expect("metrics lock").remove(&monitor_id);
    }

    /// Everything, in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let region = escape(&self.region);
        self.render_probes(&mut out);
        let _ = writeln!(
            out,
            "# HELP geoctl_jobs_total Jobs this agent finished, by outcome\n# TYPE geoctl_jobs_total counter"
        );
        for outcome in Outcome::ALL {
            let value = self.jobs[outcome as usize].load(Ordering::Relaxed);
            let _ = writeln!(out, "geoctl_jobs_total{{region=\"{region}\",outcome=\"{}\"}} {value}", outcome.label());
        }
        let labels = format!("region=\"{region}\"");
        self.lateness.lock().expect("metrics lock").render(
            &mut out,
            "geoctl_run_start_lateness_seconds",
            "How long after its scheduled time a run started",
            &labels,
        );
        self.batch.lock().expect("metrics lock").render(
            &mut out,
            "geoctl_record_batch_size",
            "Results written per database batch",
            &labels,
        );
        for (name, help, kind, value) in [
            ("geoctl_spool_depth", "Results waiting in the on-disk spool", "gauge", &self.spool_depth),
            (
                "geoctl_spool_dropped_total",
                "Results dropped because the spool was full",
                "counter",
                &self.spool_dropped,
            ),
            ("geoctl_spool_rejected_total", "Results the database refused, set aside", "counter", &self.spool_rejected),
            (
                "geoctl_jobs_stalled_total",
                "Jobs this agent's stall checks found held by a dead worker and moved back to wait",
                "counter",
                &self.jobs_stalled,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            let _ = writeln!(out, "{name}{{{labels}}} {}", value.load(Ordering::Relaxed));
        }
        let name = "geoctl_definition_lookups_total";
        let _ = writeln!(
            out,
            "# HELP {name} Monitor definitions runs used, from the agent's cache or read from PostgreSQL\n# TYPE {name} counter"
        );
        for (source, value) in [("cache", &self.definitions_cached), ("database", &self.definitions_read)] {
            let _ = writeln!(out, "{name}{{{labels},source=\"{source}\"}} {}", value.load(Ordering::Relaxed));
        }
        out
    }

    fn render_probes(&self, out: &mut String) {
        let probes = self.probes.lock().expect("metrics lock");
        let region = escape(&self.region);
        let labels = |p: &LastProbe| {
            format!("monitor=\"{}\",monitor_id=\"{}\",region=\"{region}\"", escape(&p.monitor), p.result.monitor_id)
        };
        let seconds = |ms: f64| ms / 1000.0;
        let gauges: [(&str, &str, Reading); 5] = [
            ("probe_success", "Whether the last check succeeded", |r| Some(if r.up { 1.0 } else { 0.0 })),
            ("probe_duration_seconds", "How long the last check took", |r| Some(r.total_ms / 1000.0)),
            ("probe_http_status_code", "HTTP status of the last check's response", |r| r.status_code.map(f64::from)),
            ("probe_ssl_earliest_cert_expiry", "Expiry of the served certificate, Unix seconds", |r| {
                r.cert_expires_at.map(|t| t.timestamp() as f64)
            }),
            ("probe_dns_lookup_time_seconds", "Name resolution time of the last check", |r| {
                r.dns_ms.map(|ms| ms / 1000.0)
            }),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for probe in probes.values() {
                if let Some(v) = value(&probe.result) {
                    let _ = writeln!(out, "{name}{{{}}} {v}", labels(probe));
                }
            }
        }
        let name = "probe_http_duration_seconds";
        let _ = writeln!(out, "# HELP {name} Duration of each HTTP phase of the last check\n# TYPE {name} gauge");
        for probe in probes.values() {
            if probe.result.status_code.is_none() && probe.result.first_byte_ms.is_none() {
                continue;
            }
            for (phase, ms) in http_phases(&probe.result) {
                if let Some(ms) = ms {
                    let _ = writeln!(out, "{name}{{{},phase=\"{phase}\"}} {}", labels(probe), seconds(ms));
                }
            }
        }
    }
}

/// One number of a result, when it was measured.
type Reading = fn(&NewResult) -> Option<f64>;

/// blackbox_exporter's phases: `processing` is request written → first
/// byte, `transfer` the rest of the check after the first byte.
fn http_phases(r: &NewResult) -> [(&'static str, Option<f64>); 5] {
    let before_transfer: Option<f64> =
        r.first_byte_ms.map(|fb| fb + r.dns_ms.unwrap_or(0.0) + r.connect_ms.unwrap_or(0.0) + r.tls_ms.unwrap_or(0.0));
    let transfer = before_transfer.map(|t| (r.total_ms - t).max(0.0));
    [
        ("resolve", r.dns_ms),
        ("connect", r.connect_ms),
        ("tls", r.tls_ms),
        ("processing", r.first_byte_ms),
        ("transfer", transfer),
    ]
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_blackbox_names_and_leaves_out_what_was_not_measured() {
        let metrics = Metrics::new("eu-west");
        let result: NewResult = serde_json::from_value(serde_json::json!({
            "monitor_id": "7f1d5c36-5b8e-4d35-9d51-6b4d6f0c9a11", "execution_region": "eu-west", "target_region": null,
            "checked_at": "2026-11-28T10:00:00Z", "up": true, "dns_ms": null, "connect_ms": 2.0, "tls_ms": null,
            "first_byte_ms": 5.0, "total_ms": 10.0, "network_latency_ms": null, "error_kind": null, "error_message": null,
            "resolved_ip": null, "http_version": "HTTP/1.1", "status_code": 200, "response_size": 10,
            "cert_expires_at": null, "cdn_provider": null, "cdn_cache_status": null, "cdn_edge_location": null,
            "details": {}
        }))
        .unwrap();
        metrics.observe_probe("api \"main\"", &result);
        metrics.count_job(Outcome::Up);
        metrics.observe_lateness(0.2);
        let text = metrics.render();
        let labels = r#"monitor="api \"main\"",monitor_id="7f1d5c36-5b8e-4d35-9d51-6b4d6f0c9a11",region="eu-west""#;
        assert!(text.contains(&format!("probe_success{{{labels}}} 1")), "{text}");
        assert!(text.contains(&format!("probe_http_status_code{{{labels}}} 200")), "{text}");
        assert!(text.contains(&format!("probe_http_duration_seconds{{{labels},phase=\"connect\"}} 0.002")), "{text}");
        assert!(text.contains(&format!("probe_http_duration_seconds{{{labels},phase=\"transfer\"}} 0.003")), "{text}");
        assert!(!text.contains("phase=\"tls\""), "tls was not measured:\n{text}");
        assert!(!text.contains("probe_dns_lookup_time_seconds{"), "dns was not measured:\n{text}");
        assert!(text.contains("geoctl_jobs_total{region=\"eu-west\",outcome=\"up\"} 1"), "{text}");
        assert!(text.contains("geoctl_run_start_lateness_seconds_bucket{region=\"eu-west\",le=\"0.25\"} 1"), "{text}");
        assert!(text.contains("geoctl_jobs_stalled_total{region=\"eu-west\"} 0"), "{text}");
    }
}
