//! `geoctl health` and `geoctl doctor` against real Redis servers: the one
//! `scripts/test` started and one this test starts and stops.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::TestDb;

fn redis_url(db: u8) -> String {
    let base =
        std::env::var("GEOCTL_TEST_REDIS_URL").or_else(|_| std::env::var("REDIS_URL")).expect("run `scripts/test`");
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(&format!("/{db}"));
    url.to_string()
}

/// A Redis server of this test's own, on a free loopback port.
struct OwnRedis {
    child: Child,
    port: u16,
}

impl OwnRedis {
    fn start() -> Self {
        Self::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/test installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        OwnRedis { child, port }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn redis_exec(url: &str, commands: &[&[&str]]) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_connection().unwrap();
    for args in commands {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        let _: redis::Value = cmd.query(&mut conn).unwrap();
    }
}

#[test]
fn stopped_redis_is_named_and_fails_health() {
    let db = TestDb::migrated();
    let us = redis_url(13);
    let ap = redis_url(14);
    let mut eu = OwnRedis::start();
    let eu_url = format!("redis://127.0.0.1:{}/0", eu.port);
    // A live agent and a waiting job in us-east.
    let now_ms = chrono::Utc::now().timestamp_millis().to_string();
    redis_exec(
        &us,
        &[
            &["DEL", "geoctl:agents:us-east:a1", "bull:monitor-us-east:wait", "bull:monitor-us-east:7"],
            &["HSET", "geoctl:agents:us-east:a1", "id", "a1", "host", "node-1", "version", "0.1.0", "jobs_done", "12"],
            &["EXPIRE", "geoctl:agents:us-east:a1", "60"],
            &["LPUSH", "bull:monitor-us-east:wait", "7"],
            &["HSET", "bull:monitor-us-east:7", "name", "execute-monitor", "timestamp", &now_ms],
        ],
    );
    let env = [
        ("REDIS_URL_US_EAST", us.as_str()),
        ("REDIS_URL_EU_WEST", eu_url.as_str()),
        ("REDIS_URL_AP_SOUTH", ap.as_str()),
    ];

    let healthy = db.geoctl_with(&["health", "-o", "json"], &env).success().json();
    let regions = healthy.as_array().unwrap();
    assert_eq!(regions.len(), 3);
    let us_east = regions.iter().find(|r| r["region"] == "us-east").unwrap();
    assert_eq!(us_east["healthy"], true, "{us_east}");
    assert_eq!(us_east["live_agents"][0]["id"], "a1");
    assert_eq!(us_east["live_agents"][0]["jobs_done"], 12);
    assert_eq!(us_east["queue"]["waiting"], 1);
    assert!(us_east["queue"]["oldest_waiting_seconds"].as_f64().unwrap() < 60.0);
    assert!(us_east["redis"]["latency_ms"].as_f64().is_some());
    // No Swarm stack here: reported, not failed.
    assert_ne!(us_east["services"]["status"], "ok");
    let ap_south = regions.iter().find(|r| r["region"] == "ap-south").unwrap();
    assert_eq!(ap_south["agents"]["status"], "not_deployed");

    eu.stop();
    let run = db.geoctl_with(&["health"], &env);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("eu-west") && run.stderr.contains("Redis unreachable"), "{}", run.stderr);
    assert!(!run.stderr.contains("us-east"), "only the stopped region is named: {}", run.stderr);
    // One region at a time; an unknown one is bad input.
    db.geoctl_with(&["health", "--region", "us-east"], &env).success();
    db.geoctl_with(&["health", "--region", "eu-wset"], &env).usage_error(&["unknown region `eu-wset`", "eu-west"]);

    let doctor = db.geoctl_with(&["doctor", "-o", "json"], &env);
    assert_eq!(doctor.code, 1);
    let items = doctor.json();
    let item = |name: &str| {
        items
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["check"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name}: {items}"))
    };
    assert_eq!(item("redis eu-west reachable")["ok"], false);
    assert_eq!(item("redis us-east reachable")["ok"], true);
    assert_eq!(item("database migrated")["ok"], true);
    assert_eq!(item("clock skew")["ok"], true);
    redis_exec(&us, &[&["DEL", "geoctl:agents:us-east:a1", "bull:monitor-us-east:wait", "bull:monitor-us-east:7"]]);
}

#[test]
fn doctor_names_a_missing_secret_and_pending_migrations() {
    let db = TestDb::empty();
    let us = redis_url(13);
    let env = [("REDIS_URL_US_EAST", us.as_str())];
    let run = db.geoctl_with(&["doctor"], &env);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("✗"), "{}", run.stdout);
    assert!(run.stdout.contains("geoctl db migrate"), "{}", run.stdout);
    db.geoctl(&["db", "migrate"]).success();
    // Migrated: the seed's active regions need their Redis URLs.
    let run = db.geoctl_with(&["doctor", "-o", "json"], &env);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("secret REDIS_URL_AP_SOUTH") && run.stderr.contains("secret REDIS_URL_EU_WEST"),
        "{}",
        run.stderr
    );
    let items = run.json();
    let missing = items.as_array().unwrap().iter().find(|i| i["check"] == "secret REDIS_URL_AP_SOUTH").unwrap();
    assert!(missing["fix"].as_str().unwrap().contains("REDIS_URL_AP_SOUTH_FILE"));
}

/// Each region is looked at on its own Docker Engine (`DOCKER_HOST_<REGION>`, else
/// `DOCKER_HOST`, else the local socket) and under its own stack name (`geoctl-<code>` unless
/// configured). Needs the engine `scripts/test` starts, in a swarm.
#[test]
fn health_asks_each_regions_engine_for_its_own_stack() {
    let db = TestDb::migrated();
    std::fs::write(db.dir().join("geoctl.yaml"), "regions:\n  eu-west:\n    stack:\n      name: custom-eu\n").unwrap();
    let env = [("DOCKER_HOST_US_EAST", "unix:///nonexistent/docker.sock")];
    let report = db.geoctl_with(&["health", "-o", "json"], &env).json();
    let services = |code: &str| {
        let region = report.as_array().unwrap().iter().find(|r| r["region"] == code).unwrap();
        region["services"]["detail"].as_str().unwrap().to_string()
    };
    assert!(services("us-east").contains("unreachable") && services("us-east").contains("/nonexistent/docker.sock"));
    assert_eq!(services("eu-west"), "no stack custom-eu");
    assert_eq!(services("ap-south"), "no stack geoctl-ap-south");
}

/// `health` reads a region's queue as `queue status` does: the same password rule (the region's
/// `REDIS_PASSWORD_<REGION>` wins over one in the URL) and the same oldest waiting job (due at
/// its `timestamp` plus `delay`, on the wait or the paused list), so the two cannot disagree.
#[test]
fn health_and_queue_status_agree_about_a_queue() {
    let db = TestDb::migrated();
    let redis = OwnRedis::start_with(&["--requirepass", "right-horse"]);
    let url = format!("redis://:wr0ng@127.0.0.1:{}/0", redis.port);
    let authed = format!("redis://:right-horse@127.0.0.1:{}/0", redis.port);
    // A job of a paused queue, created 20 minutes ago with a 10-minute delay: due 10 minutes ago.
    let created = (chrono::Utc::now().timestamp_millis() - 1_200_000).to_string();
    redis_exec(
        &authed,
        &[
            &["LPUSH", "bull:monitor-us-east:paused", "9"],
            &["HSET", "bull:monitor-us-east:9", "name", "execute-monitor", "timestamp", &created, "delay", "600000"],
        ],
    );
    let env = [("REDIS_URL_US_EAST", url.as_str()), ("REDIS_PASSWORD_US_EAST", "right-horse")];

    let status = db.geoctl_with(&["queue", "status", "--region", "us-east", "-o", "json"], &env).success().json();
    let queued = status[0]["oldest_waiting_seconds"].as_f64().unwrap_or_else(|| panic!("{status}"));
    // No live agent and a job waiting past the 5-minute limit: unhealthy, and said so.
    let run = db.geoctl_with(&["health", "--region", "us-east", "-o", "json"], &env);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("1 job(s) waiting") && run.stderr.contains("no live agent"), "{}", run.stderr);
    let health = run.json();
    assert_eq!(health[0]["redis"]["status"], "ok", "the region's password wins: {health}");
    assert_eq!(health[0]["queue"]["waiting"], 1, "a paused queue's jobs wait too: {health}");
    let healthy = health[0]["queue"]["oldest_waiting_seconds"].as_f64().unwrap_or_else(|| panic!("{health}"));
    assert!((590.0..700.0).contains(&queued), "due 10 minutes ago: {queued}");
    assert!((healthy - queued).abs() < 30.0, "health {healthy} s, queue status {queued} s");
    assert!(!run.stdout.contains("wr0ng") && !run.stderr.contains("wr0ng") && !run.stderr.contains("right-horse"));
}

/// A browser queue in use is part of a region's health: journeys waiting past the limit with live
/// agents, none of them started with `--browser`, make the region unhealthy, and the message says
/// where the browser agents come from; a live browser agent makes it healthy again.
#[test]
fn browser_jobs_waiting_with_no_browser_agent_make_the_region_unhealthy() {
    let db = TestDb::migrated();
    let redis = OwnRedis::start_with(&[]);
    let url = format!("redis://127.0.0.1:{}/0", redis.port);
    let created = (chrono::Utc::now().timestamp_millis() - 900_000).to_string();
    let beat = |id: &str, browser: &str| -> Vec<String> {
        ["HSET", &format!("geoctl:agents:us-east:{id}"), "id", id, "host", "h", "version", "0.1.0"]
            .into_iter()
            .map(str::to_string)
            .chain(["started_at", "2026-01-01T00:00:00Z", "jobs_done", "1", "browser", browser].map(str::to_string))
            .collect()
    };
    let plain_agent = beat("plain-1", "no");
    redis_exec(
        &url,
        &[
            &plain_agent.iter().map(String::as_str).collect::<Vec<_>>(),
            &["EXPIRE", "geoctl:agents:us-east:plain-1", "60"],
            &["LPUSH", "bull:browser-us-east:wait", "7"],
            &["HSET", "bull:browser-us-east:7", "name", "execute-monitor", "timestamp", &created, "delay", "0"],
        ],
    );
    let env = [("REDIS_URL_US_EAST", url.as_str())];
    let run = db.geoctl_with(&["health", "--region", "us-east", "-o", "json"], &env);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("1 browser job(s) waiting") && run.stderr.contains("browser_replicas"),
        "{}",
        run.stderr
    );
    let health = run.json();
    assert_eq!(health[0]["queue"]["queue"], "monitor-us-east");
    assert_eq!(health[0]["browser_queue"]["queue"], "browser-us-east");
    assert_eq!(health[0]["browser_queue"]["waiting"], 1, "{health}");

    let browser_agent = beat("browser-1", "yes");
    redis_exec(
        &url,
        &[
            &browser_agent.iter().map(String::as_str).collect::<Vec<_>>(),
            &["EXPIRE", "geoctl:agents:us-east:browser-1", "60"],
        ],
    );
    let run = db.geoctl_with(&["health", "--region", "us-east", "-o", "json"], &env);
    assert!(!run.stderr.contains("browser job(s) waiting"), "{}", run.stderr);
    let table = db.geoctl_with(&["health", "--region", "us-east"], &env);
    assert!(table.stdout.contains("browser: 1 waiting"), "{}", table.stdout);
}
