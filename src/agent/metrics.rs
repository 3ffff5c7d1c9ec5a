//! The agent's metrics in Prometheus' text format, written by `prometheus-client`
//! (its escaping, its histograms). Probe metrics carry blackbox_exporter's names
//! (so its Grafana dashboards work) with `monitor` and `region` labels; the
//! agent's own are prefixed `geoctl_`. A phase that was not measured is left
//! out, never shown as 0.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
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

const LATENESS_BOUNDS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
const BATCH_BOUNDS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0];

/// The counters the agent's parts bump themselves (plain atomics, so a job pays one atomic add);
/// shared with the registry, which reads them when scraped.
#[derive(Debug, Default)]
pub struct Counts {
    jobs: [AtomicU64; 4],
    pub spool_depth: AtomicU64,
    pub spool_dropped: AtomicU64,
    pub spool_rejected: AtomicU64,
    /// Monitor definitions runs took from the agent's cache / read from PostgreSQL.
    pub definitions_cached: AtomicU64,
    pub definitions_read: AtomicU64,
    /// Jobs this agent's stall checks moved back to wait: jobs whose worker died holding them.
    pub jobs_stalled: AtomicU64,
}

/// Everything the agent reports: a registry (labelled with the region) holding the histograms and
/// two collectors that read, at scrape time, the last check per monitor and the [`Counts`].
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    probes: Arc<Mutex<BTreeMap<Uuid, LastProbe>>>,
    counts: Arc<Counts>,
    lateness: Histogram,
    batch: Histogram,
}

/// The agent's parts reach the counters as fields of the metrics (`metrics.spool_depth`).
impl std::ops::Deref for Metrics {
    type Target = Counts;
    fn deref(&self) -> &Counts {
        &self.counts
    }
}

impl Metrics {
    pub fn new(region: &str) -> Self {
        let mut registry =
            Registry::with_labels([(Cow::Borrowed("region"), Cow::Owned(region.to_string()))].into_iter());
        let probes = Arc::new(Mutex::default());
        let counts = Arc::new(Counts::default());
        registry.register_collector(Box::new(ProbeGauges(Arc::clone(&probes))));
        registry.register_collector(Box::new(Arc::clone(&counts)));
        let lateness = Histogram::new(LATENESS_BOUNDS.iter().copied());
        registry.register(
            "geoctl_run_start_lateness_seconds",
            "How long after its scheduled time a run started",
            lateness.clone(),
        );
        let batch = Histogram::new(BATCH_BOUNDS.iter().copied());
        registry.register("geoctl_record_batch_size", "Results written per database batch", batch.clone());
        Metrics { registry, probes, counts, lateness, batch }
    }

    pub fn count_job(&self, outcome: Outcome) {
        self.counts.jobs[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Jobs that reached the end (recorded or skipped), for the heartbeat.
    pub fn jobs_done(&self) -> u64 {
        [Outcome::Up, Outcome::Down, Outcome::Skipped]
            .iter()
            .map(|o| self.counts.jobs[*o as usize].load(Ordering::Relaxed))
            .sum()
    }

    /// How late a run started, in seconds after its scheduled time.
    pub fn observe_lateness(&self, seconds: f64) {
        self.lateness.observe(seconds.max(0.0));
    }

    pub fn observe_batch(&self, rows: usize) {
        self.batch.observe(rows as f64);
    }

    pub fn observe_probe(&self, monitor: &str, result: &NewResult) {
        let last = LastProbe { monitor: monitor.to_string(), result: result.clone() };
        self.probes.lock().expect("metrics lock").insert(result.monitor_id, last);
    }

    /// A monitor that no longer runs here stops being reported.
    pub fn forget(&self, monitor_id: Uuid) {
        self.probes.lock().expect("metrics lock").remove(&monitor_id);
    }

    /// Everything, in Prometheus' text exposition format (0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        prometheus_text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

impl Collector for Counts {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let mut jobs = encoder.encode_descriptor(
            "geoctl_jobs",
            "Jobs this agent finished, by outcome",
            None,
            MetricType::Counter,
        )?;
        for outcome in Outcome::ALL {
            let value = ConstCounter::new(self.jobs[outcome as usize].load(Ordering::Relaxed));
            value.encode(jobs.encode_family(&[("outcome", outcome.label())])?)?;
        }
        let single = [
            ("geoctl_spool_depth", "Results waiting in the on-disk spool", MetricType::Gauge, &self.spool_depth),
            (
                "geoctl_spool_dropped",
                "Results dropped because the spool was full",
                MetricType::Counter,
                &self.spool_dropped,
            ),
            (
                "geoctl_spool_rejected",
                "Results the database refused, set aside",
                MetricType::Counter,
                &self.spool_rejected,
            ),
            (
                "geoctl_jobs_stalled",
                "Jobs this agent's stall checks found held by a dead worker and moved back to wait",
                MetricType::Counter,
                &self.jobs_stalled,
            ),
        ];
        for (name, help, kind, value) in single {
            let value = value.load(Ordering::Relaxed);
            let metric = encoder.encode_descriptor(name, help, None, kind)?;
            match kind {
                MetricType::Gauge => ConstGauge::new(value).encode(metric)?,
                _ => ConstCounter::new(value).encode(metric)?,
            }
        }
        let mut lookups = encoder.encode_descriptor(
            "geoctl_definition_lookups",
            "Monitor definitions runs used, from the agent's cache or read from PostgreSQL",
            None,
            MetricType::Counter,
        )?;
        for (source, value) in [("cache", &self.definitions_cached), ("database", &self.definitions_read)] {
            ConstCounter::new(value.load(Ordering::Relaxed)).encode(lookups.encode_family(&[("source", source)])?)?;
        }
        Ok(())
    }
}

/// The last check of each monitor, as blackbox_exporter's gauges.
#[derive(Debug)]
struct ProbeGauges(Arc<Mutex<BTreeMap<Uuid, LastProbe>>>);

impl Collector for ProbeGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let probes = self.0.lock().expect("metrics lock");
        let labels: Vec<[(&str, String); 2]> = probes
            .values()
            .map(|p| [("monitor", p.monitor.clone()), ("monitor_id", p.result.monitor_id.to_string())])
            .collect();
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
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (probe, labels) in probes.values().zip(&labels) {
                if let Some(v) = value(&probe.result) {
                    ConstGauge::new(v).encode(family.encode_family(labels)?)?;
                }
            }
        }
        let mut family = encoder.encode_descriptor(
            "probe_http_duration_seconds",
            "Duration of each HTTP phase of the last check",
            None,
            MetricType::Gauge,
        )?;
        for (probe, labels) in probes.values().zip(&labels) {
            if probe.result.status_code.is_none() && probe.result.first_byte_ms.is_none() {
                continue;
            }
            for (phase, ms) in http_phases(&probe.result) {
                if let Some(ms) = ms {
                    let phase = (labels.as_slice(), [("phase", phase)]);
                    ConstGauge::new(ms / 1000.0).encode(family.encode_family(&phase)?)?;
                }
            }
        }
        Ok(())
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
        let labels = r#"region="eu-west",monitor="api \"main\"",monitor_id="7f1d5c36-5b8e-4d35-9d51-6b4d6f0c9a11""#;
        assert!(text.contains(&format!("probe_success{{{labels}}} 1")), "{text}");
        assert!(text.contains(&format!("probe_http_status_code{{{labels}}} 200")), "{text}");
        assert!(text.contains(&format!("probe_http_duration_seconds{{{labels},phase=\"connect\"}} 0.002")), "{text}");
        assert!(text.contains(&format!("probe_http_duration_seconds{{{labels},phase=\"transfer\"}} 0.003")), "{text}");
        assert!(!text.contains("phase=\"tls\""), "tls was not measured:\n{text}");
        assert!(!text.contains("probe_dns_lookup_time_seconds{"), "dns was not measured:\n{text}");
        assert!(text.contains("geoctl_jobs_total{region=\"eu-west\",outcome=\"up\"} 1"), "{text}");
        assert!(text.contains("geoctl_run_start_lateness_seconds_bucket{region=\"eu-west\",le=\"0.25\"} 1"), "{text}");
        assert!(text.contains("geoctl_jobs_stalled_total{region=\"eu-west\"} 0"), "{text}");
        assert!(text.contains("geoctl_definition_lookups_total{region=\"eu-west\",source=\"cache\"} 0"), "{text}");
        metrics.forget(result.monitor_id);
        assert!(!metrics.render().contains("probe_success{"), "a forgotten monitor is no longer reported");
    }

    /// What Prometheus' own checker says of a scrape with every kind of series in it (a label
    /// value needing escapes included). promtool comes with Debian's `prometheus`, which
    /// scripts/test installs.
    #[test]
    fn a_scrape_passes_promtool_check_metrics() {
        use std::io::Write as _;
        let metrics = Metrics::new("eu-west");
        let result: NewResult = serde_json::from_value(serde_json::json!({
            "monitor_id": "7f1d5c36-5b8e-4d35-9d51-6b4d6f0c9a11", "execution_region": "eu-west", "target_region": null,
            "checked_at": "2026-11-28T10:00:00Z", "up": false, "dns_ms": 1.5, "connect_ms": 2.0, "tls_ms": 3.0,
            "first_byte_ms": 5.0, "total_ms": 12.0, "network_latency_ms": null, "error_kind": "http_status",
            "error_message": "status 503", "resolved_ip": null, "http_version": "HTTP/1.1", "status_code": 503,
            "response_size": 10, "cert_expires_at": "2027-01-01T00:00:00Z", "cdn_provider": null,
            "cdn_cache_status": null, "cdn_edge_location": null, "details": {}
        }))
        .unwrap();
        metrics.observe_probe("api \"main\"\\\nnext", &result);
        metrics.count_job(Outcome::Down);
        metrics.observe_lateness(0.2);
        metrics.observe_batch(3);
        metrics.spool_depth.store(2, Ordering::Relaxed);
        let text = metrics.render();
        let mut promtool = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("promtool runs (apt-get install prometheus)");
        promtool.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("promtool reads the scrape");
        let out = promtool.wait_with_output().expect("promtool finishes");
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && said.trim().is_empty(), "promtool: {said}\n{text}");
    }
}
