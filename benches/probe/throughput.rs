//! Part 1: HTTP checks per second, geoctl against blackbox_exporter, at the
//! same concurrency levels against the same target, in the same run.
//!
//! Each level runs three closed loops, one after another, each for the same
//! time and check budget:
//! * a bare client (DNS query on a fresh UDP socket, fresh TCP connection,
//!   GET, read to the end) — the ceiling of the target servers and the kernel
//!   on this machine, to show the targets are not what limits the probers;
//! * geoctl: `geoctl::probe::run` with C checks in flight, in a process of its
//!   own so that its peak RSS (VmHWM) is geoctl's alone;
//! * blackbox_exporter: C keep-alive connections to its `/probe` endpoint,
//!   a check counted when the exporter reports `probe_success 1`.

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

use crate::report::{self, fmt_rate, percentile};

/// Bound on one check, for every client.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

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
}

/// What one closed loop did.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Outcome {
    pub ok: u64,
    pub failed: u64,
    pub failures: BTreeMap<String, u64>,
    pub elapsed_s: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// CPU time of the prober's own process, seconds.
    pub cpu_s: Option<f64>,
    /// Peak resident set of the prober's own process, KiB.
    pub vm_hwm_kib: Option<u64>,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed_s.max(1e-9)
    }
}

/// One worker's counts; merged into an [`Outcome`].
#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    failures: BTreeMap<String, u64>,
    durations_ms: Vec<f64>,
}

impl Tally {
    fn record(&mut self, result: Result<f64, String>) {
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
}

/// When a loop stops: a deadline and a number of checks, whichever comes first.
struct Budget {
    deadline: Instant,
    left: AtomicU64,
}

impl Budget {
    fn new(duration: Duration, checks: u64) -> Arc<Self> {
        Arc::new(Budget { deadline: Instant::now() + duration, left: AtomicU64::new(checks) })
    }

    fn take(&self) -> bool {
        Instant::now() < self.deadline
            && self.left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
    }
}

/// Runs `concurrency` workers until the budget is spent and merges their tallies.
async fn closed_loop<F, Fut>(concurrency: usize, duration: Duration, max_checks: u64, worker: F) -> Outcome
where
    F: Fn(Arc<Budget>) -> Fut,
    Fut: std::future::Future<Output = Tally> + Send + 'static,
{
    let budget = Budget::new(duration, max_checks);
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        set.spawn(worker(budget.clone()));
    }
    let mut outcome = Outcome::default();
    let mut durations = Vec::new();
    while let Some(joined) = set.join_next().await {
        let tally = joined.unwrap_or_else(|e| {
            let mut t = Tally::default();
            t.record(Err(format!("worker failed: {e}")));
            t
        });
        outcome.ok += tally.ok;
        outcome.failed += tally.failed;
        for (why, n) in tally.failures {
            *outcome.failures.entry(why).or_default() += n;
        }
        durations.extend(tally.durations_ms);
    }
    outcome.elapsed_s = start.elapsed().as_secs_f64();
    outcome.p50_ms = percentile(&mut durations, 0.50);
    outcome.p99_ms = percentile(&mut durations, 0.99);
    outcome
}

/// geoctl's probe engine with `concurrency` checks in flight.
pub async fn run_geoctl_load(url: &str, concurrency: usize, duration: Duration, max_checks: u64) -> Outcome {
    let spec = ProbeSpec::Http(HttpSpec::new(url));
    let options = ProbeOptions { ip_preference: IpPreference::V4, timeout: CHECK_TIMEOUT, ..ProbeOptions::default() };
    closed_loop(concurrency, duration, max_checks, |budget| {
        let (spec, options) = (spec.clone(), options.clone());
        async move {
            let mut tally = Tally::default();
            while budget.take() {
                let result = probe::run(&spec, &options).await;
                tally.record(match &result.failure {
                    None if result.up => Ok(result.phases.total_ms),
                    failure => Err(failure.as_ref().map_or("down".into(), |f| f.kind.to_string())),
                });
            }
            tally
        }
    })
    .await
}

/// The `load` subcommand: one loop, reported as one JSON line on stdout.
pub async fn load(args: LoadArgs) -> anyhow::Result<()> {
    let duration = Duration::from_secs_f64(args.seconds);
    let mut outcome = match args.bare_with_dns {
        None => run_geoctl_load(&args.url, args.concurrency, duration, args.max_checks).await,
        Some(dns) => run_bare_load(&args.url, dns, args.concurrency, duration, args.max_checks).await?,
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
    }
    let limit = Duration::from_secs_f64(args.seconds) + CHECK_TIMEOUT + Duration::from_secs(20);
    let output = tokio::time::timeout(limit, command.output())
        .await
        .context("the load process did not finish in time")??;
    anyhow::ensure!(output.status.success(), "the load process failed ({})", output.status);
    serde_json::from_slice(&output.stdout).context("reading the load process's outcome")
}

/// The bare client: what a check costs with no prober around it.
async fn run_bare_load(
    url: &str,
    dns: SocketAddr,
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
            let mut tally = Tally::default();
            while budget.take() {
                let start = Instant::now();
                let check = tokio::time::timeout(CHECK_TIMEOUT, bare_check(dns, &query, port, &request)).await;
                tally.record(match check {
                    Ok(Ok(())) => Ok(start.elapsed().as_secs_f64() * 1000.0),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err("timeout".into()),
                });
            }
            tally
        }
    })
    .await)
}

async fn bare_check(dns: SocketAddr, query: &[u8], port: u16, request: &[u8]) -> Result<(), String> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.map_err(|e| format!("dns socket: {e}"))?;
    socket.send_to(query, dns).await.map_err(|e| format!("dns send: {e}"))?;
    let mut answer = [0u8; 512];
    let n = socket.recv(&mut answer).await.map_err(|e| format!("dns recv: {e}"))?;
    // The bench's DNS server puts the one A record's address last.
    if n < 16 || answer[3] & 0x0f != 0 || answer[7] != 1 {
        return Err("dns: no answer".into());
    }
    let ip = IpAddr::from([answer[n - 4], answer[n - 3], answer[n - 2], answer[n - 1]]);
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

/// blackbox_exporter probing `target` with `concurrency` probes in flight.
async fn run_blackbox_load(
    blackbox: SocketAddr,
    target: &str,
    concurrency: usize,
    duration: Duration,
    max_checks: u64,
) -> Outcome {
    let path = format!(
        "/probe?module=http_2xx&target={}",
        url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>()
    );
    let request = Arc::new(format!("GET {path} HTTP/1.1\r\nHost: {blackbox}\r\n\r\n").into_bytes());
    closed_loop(concurrency, duration, max_checks, |budget| {
        let request = request.clone();
        async move {
            let mut tally = Tally::default();
            let mut conn: Option<KeepAlive> = None;
            while budget.take() {
                let check = tokio::time::timeout(CHECK_TIMEOUT + Duration::from_secs(2), async {
                    if conn.is_none() {
                        conn = Some(KeepAlive::connect(blackbox).await?);
                    }
                    let body = conn.as_mut().expect("connected above").get(&request).await;
                    if body.is_err() {
                        conn = None;
                    }
                    body
                })
                .await;
                tally.record(match check {
                    Ok(Ok(body)) => judge_probe(&body),
                    Ok(Err(e)) => Err(format!("exporter: {e}")),
                    Err(_) => {
                        conn = None;
                        Err("exporter: timeout".into())
                    }
                });
            }
            tally
        }
    })
    .await
}

/// A check is counted when the exporter says `probe_success 1`; its time is
/// the exporter's own `probe_duration_seconds`.
fn judge_probe(body: &[u8]) -> Result<f64, String> {
    let text = String::from_utf8_lossy(body);
    let metric = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    match metric("probe_success") {
        Some(v) if v == 1.0 => Ok(metric("probe_duration_seconds").unwrap_or(f64::NAN) * 1000.0),
        Some(_) => Err(match metric("probe_http_status_code") {
            Some(code) if code > 0.0 => format!("probe_success 0 (status {code})"),
            _ => "probe_success 0".into(),
        }),
        None => Err("no probe_success in the exporter's answer".into()),
    }
}

/// One HTTP/1.1 keep-alive connection; answers with Content-Length or chunked bodies.
struct KeepAlive {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl KeepAlive {
    async fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(KeepAlive { stream, buf: Vec::with_capacity(8 * 1024) })
    }

    async fn get(&mut self, request: &[u8]) -> std::io::Result<Vec<u8>> {
        self.buf.clear();
        self.stream.write_all(request).await?;
        let head = self.line_block().await?;
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        if !head.starts_with("http/1.1 200") {
            return Err(std::io::Error::other(format!("exporter answered `{}`", head.lines().next().unwrap_or(""))));
        }
        let header = |name: &str| {
            head.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')).map(|v| v.trim().to_string()))
        };
        if let Some(len) = header("content-length") {
            let len: usize = len.parse().map_err(|_| std::io::Error::other("bad content-length"))?;
            return self.take(len).await;
        }
        if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            let mut body = Vec::new();
            loop {
                let line = self.line().await?;
                let size = usize::from_str_radix(String::from_utf8_lossy(&line).split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| std::io::Error::other("bad chunk size"))?;
                if size == 0 {
                    while !self.line().await?.is_empty() {}
                    return Ok(body);
                }
                body.extend(self.take(size).await?);
                self.line().await?;
            }
        }
        Err(std::io::Error::other("answer without length"))
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// Bytes up to and without the next CRLF.
    async fn line(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[..i].to_vec();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            self.fill().await?;
        }
    }

    /// The header block, up to and without the blank line.
    async fn line_block(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = self.buf[..i].to_vec();
                self.buf.drain(..i + 4);
                return Ok(head);
            }
            if self.buf.len() > 64 * 1024 {
                return Err(std::io::Error::other("header block too large"));
            }
            self.fill().await?;
        }
    }

    async fn take(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        while self.buf.len() < n {
            self.fill().await?;
        }
        Ok(self.buf.drain(..n).collect())
    }
}

/// User plus system CPU time of a process, seconds (`/proc/PID/stat`, in
/// USER_HZ ticks, which are 1/100 s on Linux).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()
}

/// CPU used by each watched process while `run` ran, as % of one core.
struct CpuWatch {
    pids: Vec<u32>,
    before: Vec<Option<f64>>,
    start: Instant,
}

impl CpuWatch {
    fn start(pids: &[u32]) -> Self {
        CpuWatch { pids: pids.to_vec(), before: pids.iter().map(|&p| cpu_seconds(p)).collect(), start: Instant::now() }
    }

    fn percent(&self) -> Vec<Option<f64>> {
        let wall = self.start.elapsed().as_secs_f64().max(1e-9);
        self.pids
            .iter()
            .zip(&self.before)
            .map(|(&pid, before)| Some((cpu_seconds(pid)? - (*before)?) / wall * 100.0))
            .collect()
    }
}

/// One prober's loop at one level, with what the targets spent meanwhile.
struct Measured {
    outcome: Outcome,
    server_cpu: Option<f64>,
    dns_cpu: Option<f64>,
    /// CPU time the prober spent per successful check, ms.
    cpu_ms_per_check: Option<f64>,
}

impl Measured {
    fn json(&self) -> serde_json::Value {
        json!({
            "checks_per_s": self.outcome.rate(),
            "checks_ok": self.outcome.ok,
            "checks_failed": self.outcome.failed,
            "failures": self.outcome.failures,
            "elapsed_s": self.outcome.elapsed_s,
            "p50_ms": self.outcome.p50_ms,
            "p99_ms": self.outcome.p99_ms,
            "cpu_ms_per_check": self.cpu_ms_per_check,
            "peak_rss_kib": self.outcome.vm_hwm_kib,
            "http_server_cpu_pct": self.server_cpu,
            "dns_server_cpu_pct": self.dns_cpu,
        })
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let duration = Duration::from_secs_f64(args.seconds);
    let target_pids = [args.server_pid, args.dns_pid];
    println!("Part 1: HTTP checks per second, geoctl vs blackbox_exporter {} (same run)", args.blackbox_version);
    println!(
        "  target {} — own HTTP server and own DNS server, each a separate process, in a private network namespace",
        args.url
    );
    println!(
        "  every check: DNS query (A) + fresh TCP connection + GET + whole response; {} s or {} checks per loop",
        args.seconds, args.max_checks
    );
    println!("  bare = minimal Rust client doing the same steps: what the targets and kernel sustain here");
    println!();
    println!(
        "  {:>9}  {:<9} {:>10} {:>7} {:>8} {:>8} {:>12} {:>11} {:>11}",
        "in flight", "client", "checks/s", "failed", "p50 ms", "p99 ms", "CPU ms/check", "HTTP srv CPU", "DNS srv CPU"
    );
    let mut levels = Vec::new();
    for &concurrency in &args.levels {
        let child = |bare: Option<SocketAddr>| LoadArgs {
            url: args.url.clone(),
            concurrency,
            seconds: args.seconds,
            max_checks: args.max_checks,
            bare_with_dns: bare,
        };

        let watch = CpuWatch::start(&target_pids);
        let outcome = load_in_child(&child(Some(args.dns))).await?;
        let bare = measured(outcome, watch.percent(), None);

        let watch = CpuWatch::start(&target_pids);
        let outcome = load_in_child(&child(None)).await?;
        let own_cpu = outcome.cpu_s;
        let geoctl = measured(outcome, watch.percent(), own_cpu);

        let watch = CpuWatch::start(&[args.server_pid, args.dns_pid, args.blackbox_pid]);
        let outcome = run_blackbox_load(args.blackbox, &args.url, concurrency, duration, args.max_checks).await;
        let cpu = watch.percent();
        let blackbox_cpu = cpu[2].map(|pct| pct / 100.0 * outcome.elapsed_s);
        let blackbox = measured(outcome, cpu, blackbox_cpu);

        let ratio = geoctl.outcome.rate() / blackbox.outcome.rate().max(1e-9);
        for (name, m) in [("bare", &bare), ("geoctl", &geoctl), ("blackbox", &blackbox)] {
            println!(
                "  {:>9}  {:<9} {:>10} {:>7} {:>8} {:>8} {:>12} {:>11} {:>11}",
                if name == "bare" { concurrency.to_string() } else { String::new() },
                name,
                fmt_rate(m.outcome.rate()),
                m.outcome.failed,
                report::opt(m.outcome.p50_ms, 2),
                report::opt(m.outcome.p99_ms, 2),
                report::opt(m.cpu_ms_per_check, 3),
                report::pct(m.server_cpu),
                report::pct(m.dns_cpu),
            );
        }
        println!("  {:>9}  geoctl / blackbox = {ratio:.2}×   (issue's target: ≥ 3×)", "");
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
    let at_512 = levels.iter().find(|l| l["in_flight"] == 512);
    let peak_rss_kib = at_512.and_then(|l| l["geoctl"]["peak_rss_kib"].as_u64());
    match peak_rss_kib {
        Some(kib) => println!(
            "  geoctl peak RSS (VmHWM of the process running only the 512-in-flight loop): {:.1} MiB   (issue's target: < 64 MiB)",
            kib as f64 / 1024.0
        ),
        None => println!("  geoctl peak RSS at 512 in flight: not measured (no 512 level)"),
    }
    let blackbox_rss = vm_hwm_kib(args.blackbox_pid);
    if let Some(kib) = blackbox_rss {
        println!("  blackbox_exporter peak RSS over all its levels: {:.1} MiB", kib as f64 / 1024.0);
    }
    for level in &levels {
        println!(
            "  targets vs geoctl at {:>3} in flight: the bare client got {:.2}× geoctl's rate through the same servers",
            level["in_flight"], level["headroom_bare_to_geoctl"].as_f64().unwrap_or(f64::NAN)
        );
    }
    println!();
    let part = json!({
        "throughput": {
            "target": args.url,
            "seconds_per_loop": args.seconds,
            "max_checks_per_loop": args.max_checks,
            "blackbox_exporter_version": args.blackbox_version,
            "levels": levels,
            "geoctl_peak_rss_kib_at_512": peak_rss_kib,
            "blackbox_exporter_peak_rss_kib": blackbox_rss,
        }
    });
    report::write_part(&args.json, &part)
}

fn measured(outcome: Outcome, cpu: Vec<Option<f64>>, prober_cpu_s: Option<f64>) -> Measured {
    let cpu_ms_per_check = prober_cpu_s.filter(|_| outcome.ok > 0).map(|s| s * 1000.0 / outcome.ok as f64);
    Measured { server_cpu: cpu[0], dns_cpu: cpu[1], cpu_ms_per_check, outcome }
}
