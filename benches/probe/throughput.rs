//! Part 1: HTTP checks per second, geoctl against blackbox_exporter, at the
//! same concurrency levels against the same target, in the same run.
//!
//! Each level runs closed loops of three clients against the same servers:
//! * a bare client (DNS query on a fresh UDP socket, fresh TCP connection,
//!   GET, read to the end) — the ceiling of the target servers and the kernel
//!   on this machine, to show the targets are not what limits the probers;
//! * geoctl: `geoctl::probe::run` with C checks in flight, in a process of its
//!   own so that its peak RSS (VmHWM) is geoctl's alone;
//! * blackbox_exporter, driven by [`crate::blackbox`].
//!
//! geoctl and blackbox_exporter each get the level's time in two halves, in
//! the order geoctl, blackbox, blackbox, geoctl, so that whatever else the
//! machine does drifts over both alike.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use geoctl::probe::{self, HttpSpec, IpPreference, ProbeOptions, ProbeSpec};

use crate::machine::{cpu_seconds, vm_hwm_kib, Usage};
use crate::report::{self, fmt_rate, percentile};

/// Bound on one check, for every client.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Target URL (its host is resolved through DNS on every check)
    #[arg(long)]
    url: String,
    /// The nameserver that resolves the target's host (for the bare client)
    #[arg(long)]
    dns: SocketAddr,
    /// blackbox_exporter's listen address
    #[arg(long)]
    blackbox: SocketAddr,
    /// blackbox_exporter's version, for the report
    #[arg(long, default_value = "")]
    blackbox_version: String,
    /// Checks in flight, per level
    #[arg(long, value_delimiter = ',', default_value = "1,64,512")]
    levels: Vec<usize>,
    /// Time per loop
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Check budget per loop (the loop ends at whichever comes first)
    #[arg(long, default_value_t = 300_000)]
    max_checks: u64,
    /// PIDs of the HTTP target, the DNS server and blackbox_exporter, to read their CPU time
    #[arg(long)]
    server_pid: u32,
    #[arg(long)]
    dns_pid: u32,
    #[arg(long)]
    blackbox_pid: u32,
    #[arg(long)]
    json: PathBuf,
}

#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    #[arg(long)]
    url: String,
    #[arg(long)]
    concurrency: usize,
    #[arg(long)]
    seconds: f64,
    #[arg(long)]
    max_checks: u64,
    /// Run the bare client (with this nameserver) instead of geoctl
    #[arg(long)]
    bare_with_dns: Option<SocketAddr>,
    /// The bare client's wait for a DNS answer before it asks again. Under valgrind (the cost
    /// mode) a check runs some fifty times slower, and 200 ms would make it ask again where
    /// geoctl, which waits what the namespace's resolv.conf says, asks once.
    #[arg(long, default_value_t = 200)]
    dns_retry_ms: u64,
    /// Bound on one check, for either client (the cost mode raises it: under valgrind, with 512
    /// in flight, a check waits seconds for its turn)
    #[arg(long, default_value_t = CHECK_TIMEOUT.as_secs())]
    check_timeout_secs: u64,
}

/// What closed loops did; loops of the same client add up.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Outcome {
    pub ok: u64,
    pub failed: u64,
    pub failures: BTreeMap<String, u64>,
    pub elapsed_s: f64,
    /// Duration of each successful check, ms.
    pub durations_ms: Vec<f64>,
    /// CPU time of the prober's own process, seconds.
    pub cpu_s: Option<f64>,
    /// Peak resident set of the prober's own process, KiB.
    pub vm_hwm_kib: Option<u64>,
}

impl Outcome {
    /// One check: its duration in ms, or why it failed.
    pub fn record(&mut self, result: Result<f64, String>) {
        match result {
            Ok(ms) => {
                self.ok += 1;
                self.durations_ms.push(ms);
            }
            Err(why) => {
                self.failed += 1;
                *self.failures.entry(why).or_default() += 1;
            }
        }
    }

    fn add(&mut self, other: Outcome) {
        let first = self.ok + self.failed == 0 && self.elapsed_s == 0.0;
        self.ok += other.ok;
        self.failed += other.failed;
        for (why, n) in other.failures {
            *self.failures.entry(why).or_default() += n;
        }
        self.elapsed_s += other.elapsed_s;
        self.durations_ms.extend(other.durations_ms);
        self.cpu_s = if first { other.cpu_s } else { self.cpu_s.zip(other.cpu_s).map(|(a, b)| a + b) };
        self.vm_hwm_kib = self.vm_hwm_kib.max(other.vm_hwm_kib);
    }

    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed_s.max(1e-9)
    }

    fn percentile_ms(&self, p: f64) -> Option<f64> {
        percentile(&mut self.durations_ms.clone(), p)
    }
}

/// When a loop stops: a deadline and a number of checks, whichever comes first.
pub struct Budget {
    deadline: Instant,
    left: AtomicU64,
}

impl Budget {
    fn new(duration: Duration, checks: u64) -> Arc<Self> {
        Arc::new(Budget { deadline: Instant::now() + duration, left: AtomicU64::new(checks) })
    }

    pub fn take(&self) -> bool {
        Instant::now() < self.deadline
            && self.left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
    }
}

/// Runs `concurrency` workers until the budget is spent and adds up what they did.
pub async fn closed_loop<F, Fut>(concurrency: usize, duration: Duration, max_checks: u64, worker: F) -> Outcome
where
    F: Fn(Arc<Budget>) -> Fut,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let budget = Budget::new(duration, max_checks);
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        set.spawn(worker(budget.clone()));
    }
    let mut outcome = Outcome::default();
    while let Some(joined) = set.join_next().await {
        outcome.add(joined.unwrap_or_else(|e| {
            let mut failed = Outcome::default();
            failed.record(Err(format!("worker failed: {e}")));
            failed
        }));
    }
    outcome.elapsed_s = start.elapsed().as_secs_f64();
    outcome
}

/// geoctl's probe engine with `concurrency` checks in flight.
pub async fn run_geoctl_load(
    url: &str,
    timeout: Duration,
    concurrency: usize,
    duration: Duration,
    max_checks: u64,
) -> Outcome {
    let spec = ProbeSpec::Http(HttpSpec::new(url));
    let options = ProbeOptions { ip_preference: IpPreference::V4, timeout, ..ProbeOptions::default() };
    closed_loop(concurrency, duration, max_checks, |budget| {
        let (spec, options) = (spec.clone(), options.clone());
        async move {
            let mut outcome = Outcome::default();
            while budget.take() {
                let result = probe::run(&spec, &options).await;
                outcome.record(match &result.failure {
                    None if result.up => Ok(result.phases.total_ms),
                    failure => Err(failure.as_ref().map_or("down".into(), |f| f.kind.to_string())),
                });
            }
            outcome
        }
    })
    .await
}

/// The `load` subcommand: one loop, reported as one JSON line on stdout.
pub async fn load(args: LoadArgs) -> anyhow::Result<()> {
    let duration = Duration::from_secs_f64(args.seconds);
    let timeout = Duration::from_secs(args.check_timeout_secs);
    let mut outcome = match args.bare_with_dns {
        None => run_geoctl_load(&args.url, timeout, args.concurrency, duration, args.max_checks).await,
        Some(dns) => {
            let retry = Duration::from_millis(args.dns_retry_ms);
            run_bare_load(&args.url, dns, retry, timeout, args.concurrency, duration, args.max_checks).await?
        }
    };
    let me = std::process::id();
    outcome.cpu_s = cpu_seconds(me);
    outcome.vm_hwm_kib = vm_hwm_kib(me);
    println!("{}", serde_json::to_string(&outcome)?);
    Ok(())
}

/// Runs one loop in a child process (this program's `load`), bounded in time.
async fn load_in_child(args: &LoadArgs) -> anyhow::Result<Outcome> {
    let mut command = tokio::process::Command::new(std::env::current_exe()?);
    command
        .arg("load")
        .args(["--url", &args.url])
        .args(["--concurrency", &args.concurrency.to_string()])
        .args(["--seconds", &args.seconds.to_string()])
        .args(["--max-checks", &args.max_checks.to_string()])
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped());
    if let Some(dns) = args.bare_with_dns {
        command.args(["--bare-with-dns", &dns.to_string()]);
        command.args(["--dns-retry-ms", &args.dns_retry_ms.to_string()]);
    }
    let limit = Duration::from_secs_f64(args.seconds) + CHECK_TIMEOUT + Duration::from_secs(20);
    let output =
        tokio::time::timeout(limit, command.output()).await.context("the load process did not finish in time")??;
    anyhow::ensure!(output.status.success(), "the load process failed ({})", output.status);
    serde_json::from_slice(&output.stdout).context("reading the load process's outcome")
}

/// The bare client: what a check costs with no prober around it.
async fn run_bare_load(
    url: &str,
    dns: SocketAddr,
    retry: Duration,
    timeout: Duration,
    concurrency: usize,
    duration: Duration,
    max_checks: u64,
) -> anyhow::Result<Outcome> {
    let parsed = url::Url::parse(url)?;
    let host = parsed.host_str().context("URL without host")?.to_string();
    let port = parsed.port_or_known_default().context("URL without port")?;
    let request = format!("GET {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n", parsed.path());
    let query = Arc::new(dns_query(&host));
    let request = Arc::new(request.into_bytes());
    Ok(closed_loop(concurrency, duration, max_checks, |budget| {
        let (query, request) = (query.clone(), request.clone());
        async move {
            let mut outcome = Outcome::default();
            while budget.take() {
                let start = Instant::now();
                let check = tokio::time::timeout(timeout, bare_check(dns, retry, &query, port, &request)).await;
                outcome.record(match check {
                    Ok(Ok(())) => Ok(start.elapsed().as_secs_f64() * 1000.0),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err("timeout".into()),
                });
            }
            outcome
        }
    })
    .await)
}

async fn bare_check(dns: SocketAddr, retry: Duration, query: &[u8], port: u16, request: &[u8]) -> Result<(), String> {
    let ip = bare_resolve(dns, retry, query).await?;
    let mut stream = TcpStream::connect((ip, port)).await.map_err(|e| format!("connect: {e}"))?;
    stream.write_all(request).await.map_err(|e| format!("write: {e}"))?;
    let mut response = Vec::with_capacity(256);
    stream.read_to_end(&mut response).await.map_err(|e| format!("read: {e}"))?;
    if response.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        Err("http: not 200".into())
    }
}

/// One A query on a fresh UDP socket, asked again after `retry` without an
/// answer (three times at most), as a stub resolver does.
async fn bare_resolve(dns: SocketAddr, retry: Duration, query: &[u8]) -> Result<IpAddr, String> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.map_err(|e| format!("dns socket: {e}"))?;
    let mut answer = [0u8; 512];
    for _ in 0..3 {
        socket.send_to(query, dns).await.map_err(|e| format!("dns send: {e}"))?;
        let Ok(received) = tokio::time::timeout(retry, socket.recv(&mut answer)).await else {
            continue;
        };
        let n = received.map_err(|e| format!("dns recv: {e}"))?;
        // The bench's DNS server puts the one A record's address last.
        if n < 16 || answer[3] & 0x0f != 0 || answer[7] != 1 {
            return Err("dns: no answer".into());
        }
        return Ok(IpAddr::from([answer[n - 4], answer[n - 3], answer[n - 2], answer[n - 1]]));
    }
    Err("dns: timeout".into())
}

/// A recursive A query for `host`.
fn dns_query(host: &str) -> Vec<u8> {
    let mut query = vec![0x42, 0x42, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in host.trim_end_matches('.').split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    query
}

/// One client's loops at one level, with what the machine did meanwhile.
#[derive(Default)]
struct Measured {
    outcome: Outcome,
    usage: Usage,
}

impl Measured {
    /// CPU time the prober's own process spent per successful check, ms:
    /// for geoctl and the bare client their load process, for blackbox the
    /// exporter (watched as the third process), not this driver.
    fn cpu_ms_per_check(&self) -> Option<f64> {
        let cpu_s = self.outcome.cpu_s.or_else(|| self.usage.cpu_s(2))?;
        (self.outcome.ok > 0).then(|| cpu_s * 1000.0 / self.outcome.ok as f64)
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "checks_per_s": self.outcome.rate(),
            "checks_ok": self.outcome.ok,
            "checks_failed": self.outcome.failed,
            "failures": self.outcome.failures,
            "elapsed_s": self.outcome.elapsed_s,
            "p50_ms": self.outcome.percentile_ms(0.50),
            "p99_ms": self.outcome.percentile_ms(0.99),
            "cpu_ms_per_check": self.cpu_ms_per_check(),
            "peak_rss_kib": self.outcome.vm_hwm_kib,
            "http_server_cpu_pct": self.usage.cpu_pct(0),
            "dns_server_cpu_pct": self.usage.cpu_pct(1),
            "machine_cpu_busy_pct": self.usage.machine_busy_pct(),
            "dns_queries_dropped": self.usage.dns_drops,
            "syns_dropped": self.usage.syn_drops,
        })
    }

    fn print(&self, level: &str, client: &str) {
        let drops = match (self.usage.dns_drops, self.usage.syn_drops) {
            (Some(d), Some(s)) => format!("{d}/{s}"),
            _ => "-".into(),
        };
        println!(
            "  {level:>9}  {client:<9} {:>9} {:>6} {:>7} {:>7} {:>8} {:>6} {:>6} {:>6} {:>8}",
            fmt_rate(self.outcome.rate()),
            self.outcome.failed,
            report::opt(self.outcome.percentile_ms(0.50), 2),
            report::opt(self.outcome.percentile_ms(0.99), 2),
            report::opt(self.cpu_ms_per_check(), 3),
            report::pct(self.usage.machine_busy_pct()),
            report::pct(self.usage.cpu_pct(0)),
            report::pct(self.usage.cpu_pct(1)),
            drops,
        );
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    println!("Part 1: HTTP checks per second, geoctl vs blackbox_exporter {} (same run)", args.blackbox_version);
    println!(
        "  target {} — own HTTP server and own DNS server, each a separate process, in a private network namespace",
        args.url
    );
    println!(
        "  every check: DNS query (A) + fresh TCP connection + GET + whole response; per level and client {} s",
        args.seconds
    );
    println!(
        "  (geoctl and blackbox in halves: geoctl, blackbox, blackbox, geoctl), at most {} checks a loop",
        args.max_checks
    );
    println!("  bare: a minimal Rust client doing the same steps — what the servers and kernel sustain here");
    println!("  CPU ms/check: the prober's own process (for blackbox the exporter, not this driver);");
    println!("  all: busy share of both cores; HTTP/DNS server: process CPU, % of one core (kernel softirq");
    println!("  time not included); dropped: DNS queries (socket buffer full) / SYNs (accept queue full)");
    println!();
    println!(
        "  {:>9}  {:<9} {:>9} {:>6} {:>7} {:>7} {:>8} {:>6} {:>6} {:>6} {:>8}",
        "", "", "", "", "", "", "CPU ms", "", "HTTP", "DNS", "dropped"
    );
    println!(
        "  {:>9}  {:<9} {:>9} {:>6} {:>7} {:>7} {:>8} {:>6} {:>6} {:>6} {:>8}",
        "in flight", "client", "checks/s", "failed", "p50 ms", "p99 ms", "/check", "all", "server", "server", "DNS/SYN"
    );
    let watched = [args.server_pid, args.dns_pid, args.blackbox_pid];
    let mut levels = Vec::new();
    for &concurrency in &args.levels {
        let loop_args = |seconds: f64, bare_with_dns: Option<SocketAddr>| LoadArgs {
            url: args.url.clone(),
            concurrency,
            seconds,
            max_checks: args.max_checks,
            bare_with_dns,
            dns_retry_ms: 200,
            check_timeout_secs: CHECK_TIMEOUT.as_secs(),
        };
        let half = args.seconds / 2.0;
        let (mut bare, mut geoctl, mut blackbox) = (Measured::default(), Measured::default(), Measured::default());

        let outcome = bare.usage.measure(&watched, load_in_child(&loop_args(args.seconds, Some(args.dns)))).await?;
        bare.outcome.add(outcome);
        for turn in ["geoctl", "blackbox", "blackbox", "geoctl"] {
            if turn == "geoctl" {
                let outcome = geoctl.usage.measure(&watched, load_in_child(&loop_args(half, None))).await?;
                geoctl.outcome.add(outcome);
            } else {
                let duration = Duration::from_secs_f64(half);
                let load = crate::blackbox::run_load(args.blackbox, &args.url, concurrency, duration, args.max_checks);
                let outcome = blackbox.usage.measure(&watched, load).await;
                blackbox.outcome.add(outcome);
            }
        }

        let ratio = geoctl.outcome.rate() / blackbox.outcome.rate().max(1e-9);
        bare.print(&concurrency.to_string(), "bare");
        geoctl.print("", "geoctl");
        blackbox.print("", "blackbox");
        println!("  {:>9}  geoctl / blackbox = {ratio:.2}×   (target: ≥ 5×)", "");
        for (name, m) in [("bare", &bare), ("geoctl", &geoctl), ("blackbox", &blackbox)] {
            if !m.outcome.failures.is_empty() {
                println!("  {:>9}  {name} failures: {:?}", "", m.outcome.failures);
            }
        }
        levels.push(json!({
            "in_flight": concurrency,
            "bare": bare.json(),
            "geoctl": geoctl.json(),
            "blackbox_exporter": blackbox.json(),
            "ratio_geoctl_to_blackbox": ratio,
            "headroom_bare_to_geoctl": bare.outcome.rate() / geoctl.outcome.rate().max(1e-9),
        }));
        println!();
    }
    let rate_at = |client: &str, n: u64| {
        levels.iter().find(|l| l["in_flight"] == n).and_then(|l| l[client]["checks_per_s"].as_f64())
    };
    if let (Some(at_64), Some(at_512)) = (rate_at("geoctl", 64), rate_at("geoctl", 512)) {
        println!("  geoctl checks/s at 512 in flight / at 64: {:.2}   (target: ≥ 1)", at_512 / at_64.max(1e-9));
    }
    // The same ratio for the bare client says how the servers and the kernel scale on this
    // machine: what the bare client loses at 512 is lost in the parts every prober shares.
    if let (Some(at_64), Some(at_512)) = (rate_at("bare", 64), rate_at("bare", 512)) {
        println!(
            "  bare client checks/s at 512 in flight / at 64: {:.2}   (the machine's own scaling)",
            at_512 / at_64.max(1e-9)
        );
    }
    let at_512 = levels.iter().find(|l| l["in_flight"] == 512);
    let peak_rss_kib = at_512.and_then(|l| l["geoctl"]["peak_rss_kib"].as_u64());
    match peak_rss_kib {
        Some(kib) => println!(
            "  geoctl peak RSS at 512 in flight (VmHWM of the processes that ran only that level): {:.1} MiB   (target: < 64 MiB)",
            kib as f64 / 1024.0
        ),
        None => println!("  geoctl peak RSS at 512 in flight: not measured (no 512 level)"),
    }
    let blackbox_rss = vm_hwm_kib(args.blackbox_pid);
    if let Some(kib) = blackbox_rss {
        println!("  blackbox_exporter peak RSS over all its levels: {:.1} MiB", kib as f64 / 1024.0);
    }
    let headroom: Vec<String> = levels
        .iter()
        .map(|l| format!("{:.2}× at {}", l["headroom_bare_to_geoctl"].as_f64().unwrap_or(f64::NAN), l["in_flight"]))
        .collect();
    println!("  servers' headroom, bare client's rate / geoctl's: {}", headroom.join(", "));
    println!();
    let part = json!({
        "throughput": {
            "target": args.url,
            "seconds_per_level_and_client": args.seconds,
            "max_checks_per_loop": args.max_checks,
            "blackbox_exporter_version": args.blackbox_version,
            "levels": levels,
            "geoctl_peak_rss_kib_at_512": peak_rss_kib,
            "blackbox_exporter_peak_rss_kib": blackbox_rss,
        }
    });
    report::write_part(&args.json, &part)
}
