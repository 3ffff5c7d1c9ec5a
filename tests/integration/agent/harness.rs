//! What the agent tests run against: private Redis and PostgreSQL servers a
//! test can stop and start without disturbing another test, a local HTTP
//! target, and `geoctl agent` processes.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits up to `timeout` for `done`, checking every 100 ms.
#[track_caller]
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A redis-server of the test's own, without persistence: a restart loses
/// everything, like a wiped Redis.
pub struct Redis {
    pub port: u16,
    password: Option<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    pub fn with_password(password: &str) -> Self {
        Self::start_with(Some(password.to_string()))
    }

    fn start_with(password: Option<String>) -> Self {
        let mut redis = Redis { port: free_port(), password, dir: tempfile::tempdir().unwrap(), child: None };
        redis.up();
        redis
    }

    /// Starts the server (again) on its port.
    pub fn up(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(password) = &self.password {
            cmd.args(["--requirepass", password]);
        }
        self.child = Some(cmd.spawn().expect("redis-server (scripts/test installs it)"));
        wait_until("redis-server to listen", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
    }

    /// Stops the server abruptly.
    pub fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self, db: u8) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    /// One redis-cli command on database `db`; its output, trimmed.
    pub fn cli(&self, db: u8, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-p", &self.port.to_string(), "-n", &db.to_string()]);
        if let Some(password) = &self.password {
            cmd.env("REDISCLI_AUTH", password);
        }
        let out = cmd.args(args).output().expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.down();
    }
}

/// A PostgreSQL server of the test's own (initdb in a temporary directory),
/// for drills that stop the database.
pub struct Postgres {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    running: bool,
}

impl Postgres {
    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's Debian package (scripts/test installs it)")
            .filter_map(|e| Some(e.ok()?.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .max()
            .expect("an initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            run_ok(Command::new("chown").arg("postgres:").arg(dir.path()));
        }
        let data = dir.path().join("data");
        run_ok(as_owner(&bin.join("initdb")).arg("-D").arg(&data).args([
            "-U",
            "geoctl",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ]));
        let mut pg = Postgres { port: free_port(), dir, bin, running: false };
        pg.up();
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://geoctl@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server; on `port` when given (a port no agent knows), else its own.
    pub fn up_on(&mut self, port: u16) {
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            self.dir.path().display()
        );
        run_ok(
            as_owner(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.path().join("data"))
                .arg("-l")
                .arg(self.dir.path().join("server.log"))
                .args(["-w", "-t", "60", "-o", &options, "start"]),
        );
        self.running = true;
    }

    pub fn up(&mut self) {
        self.up_on(self.port);
    }

    pub fn down(&mut self) {
        if self.running {
            run_ok(
                as_owner(&self.bin.join("pg_ctl"))
                    .arg("-D")
                    .arg(self.dir.path().join("data"))
                    .args(["-m", "fast", "-w", "stop"]),
            );
            self.running = false;
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            let _ = as_owner(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.path().join("data"))
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// PostgreSQL refuses to run as root: as root, run its tools as `postgres`.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

#[track_caller]
fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An HTTP server on 127.0.0.1 answering every request with `status`
/// after `delay_ms`, counting the requests it received and the most it
/// answered at once.
pub struct Target {
    pub port: u16,
    pub hits: Arc<AtomicUsize>,
    pub most_at_once: Arc<AtomicUsize>,
    pub delay_ms: Arc<AtomicU64>,
    pub status: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
}

impl Target {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = Target {
            port,
            hits: Arc::default(),
            most_at_once: Arc::default(),
            delay_ms: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            stop: Arc::default(),
        };
        let (hits, delay, status, stop) =
            (target.hits.clone(), target.delay_ms.clone(), target.status.clone(), target.stop.clone());
        let (most, now) = (target.most_at_once.clone(), Arc::new(AtomicUsize::new(0)));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(mut stream) = stream else { continue };
                let (hits, delay, status, most, now) =
                    (hits.clone(), delay.clone(), status.clone(), most.clone(), now.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let mut request = Vec::new();
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    hits.fetch_add(1, Ordering::SeqCst);
                    most.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(delay.load(Ordering::SeqCst)));
                    let code = status.load(Ordering::SeqCst);
                    now.fetch_sub(1, Ordering::SeqCst);
                    let _ = write!(stream, "HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
                });
            }
        });
        target
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// One `geoctl agent` process, its log in a file.
pub struct Agent {
    child: Option<Child>,
    pub port: u16,
    pub log: PathBuf,
}

/// The options drills use: short locks and checks, so they run in seconds.
pub const FAST: &[&str] =
    &["--lock-duration", "2s", "--stalled-interval", "1s", "--resync-interval", "2s", "--shutdown-timeout", "10s"];

/// Checks at once, unless a test's own options say otherwise.
const CONCURRENCY: &[&str] = &["--concurrency", "4"];

impl Agent {
    /// Starts `geoctl agent --region <region>` with `env` (DATABASE_URL,
    /// REDIS_URL_<REGION>, …) and the spool in `spool`.
    pub fn start(region: &str, env: &[(&str, &str)], spool: &Path, extra: &[&str]) -> Self {
        let port = free_port();
        let log = spool.with_extension(format!("{region}.{port}.log"));
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_geoctl"));
        cmd.args(["agent", "--region", region, "--listen", &listen, "--spool-dir"])
            .arg(spool)
            .args(FAST)
            .args(if extra.contains(&"--concurrency") { &[] } else { CONCURRENCY })
            .args(extra)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", spool.parent().unwrap())
            .env("RUST_LOG", "info,sqlx=warn,bullmq=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let agent = Agent { child: Some(cmd.spawn().expect("start geoctl agent")), port, log };
        wait_until("the agent's HTTP endpoint", Duration::from_secs(20), || agent.get("/health/live").is_some());
        agent
    }

    /// GET `path`: (status, body), or `None` when nothing answers.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()))
    }

    pub fn ready(&self) -> bool {
        self.get("/health/ready").is_some_and(|(s, _)| s == 200)
    }

    /// One sample of a metric (the first line starting with `prefix`).
    pub fn metric(&self, prefix: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics")?;
        body.lines().find(|l| l.starts_with(prefix))?.rsplit(' ').next()?.parse().ok()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        run_ok(Command::new("kill").args([&format!("-{name}"), &pid]));
    }

    /// SIGTERM, then the exit code (within `timeout`).
    pub fn terminate(mut self, timeout: Duration) -> i32 {
        self.signal("TERM");
        let mut child = self.child.take().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                panic!("agent did not exit within {timeout:?} of SIGTERM:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no goodbye, no flush.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs SQL on a database by URL; each row's columns as text.
pub fn rows(url: &str, sql: &str) -> Vec<Vec<String>> {
    crate::support::block_on(async {
        use sqlx::Row;
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let rows = sqlx::query(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows.iter()
            .map(|r| (0..r.len()).map(|i| r.try_get::<Option<String>, _>(i).unwrap().unwrap_or_default()).collect())
            .collect()
    })
}

/// How a region's runs of a monitor were recorded: the scheduled times of
/// its results (ms, ascending) and the run keys recorded more than once.
pub struct Runs {
    pub scheduled: Vec<i64>,
    pub doubled: Vec<String>,
    url: String,
    monitor: String,
    region: String,
}

impl Runs {
    pub fn of(url: &str, monitor: &str, region: &str) -> Self {
        let keyed = rows(
            url,
            &format!(
                "SELECT run_key, count(*)::text FROM monitor_results WHERE monitor_id = '{monitor}' \
                 AND execution_region = '{region}' GROUP BY run_key ORDER BY run_key"
            ),
        );
        let doubled = keyed.iter().filter(|r| r[1] != "1").map(|r| r[0].clone()).collect();
        let mut scheduled: Vec<i64> =
            keyed.iter().filter_map(|r| r[0].rsplit(':').next().and_then(|ms| ms.parse().ok())).collect();
        scheduled.sort();
        Runs { scheduled, doubled, url: url.into(), monitor: monitor.into(), region: region.into() }
    }

    /// The runs of `monitor` the queue completed (its scheduler's jobs in
    /// `completed`) that have no result. BullMQ itself skips a slot when a
    /// run starts later than the next one was due, so the queue's own record
    /// of what ran, not the clock, is what every result is checked against.
    ///
    /// While agents still run, a job may complete after these results were
    /// read (it completes only once its result is committed), so runs not in
    /// this snapshot are looked up again after the queue was read.
    pub fn missing(&self, redis: &Redis, db: u8, region: &str, monitor: &str) -> Vec<String> {
        let completed = redis.cli(db, &["ZRANGE", &format!("bull:monitor-{region}:completed"), "0", "-1"]);
        let prefix = format!("repeat:monitor-{monitor}:");
        let absent_from = |scheduled: &[i64]| -> Vec<String> {
            completed
                .lines()
                .filter_map(|job| job.strip_prefix(&prefix))
                .filter(|ms| !ms.parse().is_ok_and(|ms: i64| scheduled.contains(&ms)))
                .map(str::to_string)
                .collect()
        };
        let missing = absent_from(&self.scheduled);
        if missing.is_empty() {
            return missing;
        }
        absent_from(&Runs::of(&self.url, &self.monitor, &self.region).scheduled)
    }
}

/// The id of the first job active on a queue, once one is.
pub fn active_job(redis: &Redis, db: u8, queue: &str) -> String {
    let mut id = String::new();
    wait_until("a job in flight", Duration::from_secs(20), || {
        id = redis.cli(db, &["LINDEX", &format!("bull:{queue}:active"), "0"]);
        !id.is_empty()
    });
    id
}
