//! Test harness: a throwaway database per test and a way to run the geoctl binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// The server `scripts/test` started (or the developer's, via DATABASE_URL).
fn admin_url() -> String {
    std::env::var("GEOCTL_TEST_DATABASE_URL").or_else(|_| std::env::var("DATABASE_URL")).expect(
        "no PostgreSQL for tests: run `scripts/test`, or set DATABASE_URL to a server where you may create databases",
    )
}

pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
}

/// A database of its own, dropped when the test ends.
pub struct TestDb {
    pub url: String,
    name: String,
    admin: String,
    /// Working directory and HOME for geoctl, so no stray config file is read.
    pub home: tempfile::TempDir,
    /// One runtime and pool for every query the test makes, made on first use: a poll
    /// loop (`wait_until` over `scalar`) would otherwise connect anew every 100 ms.
    client: std::sync::OnceLock<(tokio::runtime::Runtime, sqlx::PgPool)>,
}

impl TestDb {
    /// An empty database.
    pub fn empty() -> Self {
        let admin = admin_url();
        let name = format!("geoctl_test_{}", uuid::Uuid::new_v4().simple());
        block_on(async {
            let pool = sqlx::PgPool::connect(&admin).await.expect("connect to the test server");
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&pool).await.unwrap();
        });
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&name);
        TestDb { url: url.to_string(), name, admin, home: tempfile::tempdir().unwrap(), client: Default::default() }
    }

    /// A migrated database.
    pub fn migrated() -> Self {
        let db = Self::empty();
        db.geoctl(&["db", "migrate"]).success();
        db
    }

    /// A database migrated as a geoctl without the migrations from `version` on left it.
    pub fn migrated_before(version: i64) -> Self {
        let db = Self::empty();
        block_on(async {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
            let all = sqlx::migrate::Migrator::new(dir).await.unwrap();
            let earlier: Vec<_> = all.iter().filter(|m| m.version < version).cloned().collect();
            let migrator = sqlx::migrate::Migrator {
                migrations: std::borrow::Cow::Owned(earlier),
                ..sqlx::migrate::Migrator::DEFAULT
            };
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            migrator.run(&pool).await.unwrap();
            pool.close().await;
        });
        db
    }

    /// Runs `query` on this database's pool, on the test's own runtime.
    fn query<T>(&self, query: impl AsyncFnOnce(&sqlx::PgPool) -> T) -> T {
        let (runtime, pool) = self.client.get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let options = sqlx::postgres::PgPoolOptions::new().max_connections(2);
            let pool = runtime.block_on(options.connect(&self.url)).expect("connect to the test database");
            (runtime, pool)
        });
        runtime.block_on(query(pool))
    }

    /// Runs SQL statements (separated by `;`) on this database.
    pub fn exec(&self, sql: &str) {
        self.query(async |pool| sqlx::raw_sql(sql).execute(pool).await.unwrap());
    }

    /// The first column of the first row, as text.
    pub fn scalar(&self, sql: &str) -> String {
        let value: Option<String> = self
            .query(async |pool| sqlx::query_scalar(&format!("SELECT ({sql})::text")).fetch_one(pool).await.unwrap());
        value.unwrap_or_default()
    }

    pub fn count(&self, table: &str) -> i64 {
        self.scalar(&format!("SELECT count(*) FROM {table}")).parse().unwrap()
    }

    /// geoctl pointed at this database.
    pub fn geoctl(&self, args: &[&str]) -> Run {
        self.geoctl_with(args, &[])
    }

    pub fn geoctl_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut all = vec![("DATABASE_URL", self.url.as_str())];
        all.extend_from_slice(env);
        geoctl_in(self.home.path(), args, &all)
    }

    pub fn dir(&self) -> PathBuf {
        self.home.path().to_path_buf()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((runtime, pool)) = self.client.take() {
            runtime.block_on(pool.close());
        }
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop in a thread of its own: a test may be unwinding inside a runtime.
        let _ = std::thread::spawn(move || {
            block_on(async {
                if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&pool).await;
                }
            })
        })
        .join();
    }
}

/// A requirement of a test (root, a tool, a package) that this run lacks. Where `scripts/test`
/// provides it, it declares so with `<declared>=required` (`GEOCTL_TEST_ROUTES`,
/// `GEOCTL_TEST_PYTHON_BULLMQ`): then the test fails here, so a CI run cannot pass without running
/// it. Elsewhere (a developer's plain `cargo test`) the test is skipped, and says so.
#[track_caller]
pub fn requirement_unmet(declared: &str, what: &str) {
    if std::env::var(declared).is_ok_and(|v| v == "required") {
        panic!("{declared}=required: this run must provide it, but {what}");
    }
    eprintln!("SKIPPED: {what} (`scripts/test` as root provides it and sets {declared}=required)");
}

/// What one geoctl run did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn success(self) -> Self {
        assert_eq!(self.code, 0, "expected success\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    /// Exit code 2 (bad input) with a message containing each of `needles`.
    #[track_caller]
    pub fn usage_error(self, needles: &[&str]) -> Self {
        assert_eq!(self.code, 2, "expected exit 2\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        for needle in needles {
            assert!(self.stderr.contains(needle), "stderr lacks `{needle}`:\n{}", self.stderr);
        }
        self
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// Runs the geoctl binary in `dir` with only the given environment (plus PATH
/// and a HOME inside `dir`), and no terminal on stdin.
pub fn geoctl_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_geoctl"));
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join(".config"))
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run geoctl");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A loopback port where nothing listens and nothing can start listening while this lives: the
/// socket is bound but not listening, so connections are refused, and no other test can take
/// the port between "found free" and "used" (as with bind, read the port, drop).
pub struct ClosedPort {
    _socket: socket2::Socket,
    pub port: u16,
}

impl ClosedPort {
    pub fn new() -> Self {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
        let port = socket.local_addr().unwrap().as_socket().unwrap().port();
        ClosedPort { _socket: socket, port }
    }
}

/// The Redis server `scripts/test` started (or the developer's, via REDIS_URL).
fn redis_admin_url() -> String {
    std::env::var("GEOCTL_TEST_REDIS_URL").or_else(|_| std::env::var("REDIS_URL")).expect(
        "no Redis for tests: run `scripts/test`, or set REDIS_URL to a server whose numbered databases tests may flush",
    )
}

/// A Redis database of its own (a db index no other test of this run uses),
/// flushed before use and after.
pub struct TestRedis {
    pub url: String,
}

impl TestRedis {
    pub fn new() -> Self {
        // db 0 is left to people; scripts/test starts Redis with enough databases. Tests run
        // as processes of their own (nextest), so the next index is counted by Redis, not here.
        let admin = redis_admin_url();
        let next: u32 = redis_cmd(&admin, &["INCR", "geoctl-test:next-db"]);
        let db = (next - 1) % 255 + 1;
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&format!("/{db}"));
        let redis = TestRedis { url: url.to_string() };
        let databases: Vec<String> = redis.cmd(&["CONFIG", "GET", "databases"]);
        let available: u32 = databases.get(1).and_then(|n| n.parse().ok()).unwrap_or(16);
        assert!(
            db < available,
            "Redis has {available} databases and this run needs more; start it with --databases 256"
        );
        redis.cmd::<()>(&["FLUSHDB"]);
        redis
    }

    /// The URL of this database on the same server with other credentials or
    /// path parts, e.g. for a wrong password.
    pub fn url_with_user(&self, user: &str, password: Option<&str>) -> String {
        let mut url = url::Url::parse(&self.url).unwrap();
        url.set_username(user).unwrap();
        url.set_password(password).unwrap();
        url.to_string()
    }

    /// Runs one command on this database.
    pub fn cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        redis_cmd(&self.url, args)
    }
}

/// Runs one command on the Redis database `url` names.
fn redis_cmd<T: redis::FromRedisValue>(url: &str, args: &[&str]) -> T {
    block_on(async {
        let client = redis::Client::open(url).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(a);
        }
        cmd.query_async(&mut conn).await.unwrap()
    })
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let url = self.url.clone();
        let _ = std::thread::spawn(move || {
            block_on(async {
                if let Ok(client) = redis::Client::open(url) {
                    if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                        let _: Result<(), _> = redis::cmd("FLUSHDB").query_async(&mut conn).await;
                    }
                }
            })
        })
        .join();
    }
}
