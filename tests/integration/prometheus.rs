//! The Prometheus files under examples/ against Debian's promtool and Prometheus: the scrape
//! configuration and rules load, the rules' own unit tests pass, a live agent's /metrics passes
//! `promtool check metrics`, and Prometheus scraping that agent (a static target) reads back
//! `probe_success` and the shipped recording rules over it. The Grafana dashboard only queries
//! series the agents export or the rules record.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::agent::harness::{free_port, wait_until, Agent, Redis, Target};
use crate::support::{geoctl_in, TestDb};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Runs a Debian tool that `scripts/test` installs; missing, the test fails (never skips).
#[track_caller]
fn tool(name: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(name)
        .args(args)
        .current_dir(examples().join("prometheus"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{name}` ({e}); scripts/test installs Debian's prometheus"));
    child.stdin.take().unwrap().write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{name} {args:?} failed:\n{text}");
    text
}

#[test]
fn promtool_accepts_the_shipped_config_and_rules_and_their_tests_pass() {
    let text = tool("promtool", &["check", "config", "prometheus.yml"], None);
    assert!(text.contains("SUCCESS: 2 rule files found"), "{text}");
    tool("promtool", &["check", "rules", "rules/recording.yml", "rules/alerting.yml"], None);
    let text = tool("promtool", &["test", "rules", "rules/tests.yml"], None);
    assert!(text.contains("SUCCESS"), "{text}");
}

/// Every series the Grafana dashboard asks for is recorded by the rules, exported by the agent,
/// or Prometheus' own `up`.
#[test]
fn the_grafana_dashboard_queries_only_known_series() {
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(examples().join("grafana/geoctl-regions.json")).unwrap())
            .unwrap();
    let recording = std::fs::read_to_string(examples().join("prometheus/rules/recording.yml")).unwrap();
    let exported = include_str!("../../src/agent/metrics.rs");
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 6);
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let series: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .filter(|w| w.contains(':') || w.starts_with("geoctl_") || w.starts_with("probe_"))
                .collect();
            assert!(!series.is_empty() || expr.contains("up{"), "{expr}");
            for name in series {
                let known = recording.contains(&format!("record: {name}\n")) || exported.contains(&format!("\"{name}"));
                assert!(known, "panel `{}` queries `{name}`, which nothing records or exports", panel["title"]);
            }
        }
    }
}

struct Prometheus {
    child: Child,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Debian's Prometheus scraping `target` every second, with the shipped recording rules.
    fn start(dir: &Path, target: &str) -> Prometheus {
        let rules = examples().join("prometheus/rules/recording.yml");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['{}']\n\
                 scrape_configs:\n  - job_name: geoctl-agents\n    static_configs:\n      - targets: ['{target}']\n",
                rules.display()
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot run `prometheus`; scripts/test installs Debian's prometheus");
        Prometheus { child, port }
    }

    /// The instant vector of `query`, empty while Prometheus is not up yet.
    fn query(&self, query: &str) -> Vec<Value> {
        let path = format!(
            "/api/v1/query?query={}",
            percent_encoding::utf8_percent_encode(query, percent_encoding::NON_ALPHANUMERIC)
        );
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else { return Vec::new() };
        use std::io::Read as _;
        let _ = write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v["data"]["result"].as_array().cloned())
            .unwrap_or_default()
    }
}

#[test]
fn prometheus_scrapes_a_live_agent_and_reads_probe_success() {
    let db = TestDb::migrated();
    let redis = Redis::start();
    let target = Target::start();
    let redis_url = redis.url(0);
    let env = [("DATABASE_URL", db.url.as_str()), ("REDIS_URL_EU_WEST", redis_url.as_str())];
    let agent = Agent::start("eu-west", &env, &db.dir().join("spool"), &[]);
    let url = target.url();
    geoctl_in(
        &db.dir(),
        &[
            "monitor",
            "create",
            "--name",
            "web",
            "--type",
            "http",
            "--target",
            &url,
            "--every",
            "5s",
            "--timeout",
            "5s",
            "--force",
            "--regions",
            "eu-west",
        ],
        &env,
    )
    .success();
    wait_until("the agent's first check", Duration::from_secs(30), || agent.metric("probe_success{").is_some());

    let (_, metrics) = agent.get("/metrics").unwrap();
    tool("promtool", &["check", "metrics"], Some(&metrics));

    let prometheus = Prometheus::start(&db.dir(), &format!("127.0.0.1:{}", agent.port));
    let mut found = Vec::new();
    wait_until("Prometheus to read probe_success", Duration::from_secs(60), || {
        found = prometheus.query("probe_success");
        !found.is_empty()
    });
    let sample = &found[0];
    assert_eq!(sample["metric"]["monitor"], "web", "{sample}");
    assert_eq!(sample["metric"]["region"], "eu-west", "{sample}");
    assert_eq!(sample["metric"]["job"], "geoctl-agents", "{sample}");
    assert_eq!(sample["value"][1], "1", "{sample}");
    // The shipped recording rules evaluate over the live series (a ratio: on a loaded machine a
    // check may have timed out, so not necessarily 1).
    wait_until("the recording rules", Duration::from_secs(60), || {
        prometheus.query("region:probe_success:ratio_1h").iter().any(|s| {
            let ratio: f64 = s["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(-1.0);
            s["metric"]["region"] == "eu-west" && ratio > 0.0 && ratio <= 1.0
        })
    });
}
