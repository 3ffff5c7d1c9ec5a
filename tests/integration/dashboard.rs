//! `geoctl dashboard` as a process: its JSON API over seeded results (raw and summarised), the
//! refusal to listen beyond loopback unprotected, the token and basic credentials, the security
//! headers, and the pages in headless Chromium (no console error, the range switch fetches the
//! new range, a target's markup shows as text).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use geoctl::synthetic::browser::{self, Action, Options};
use serde_json::Value;

use crate::support::{geoctl_in, TestDb, TestRedis};

/// What a target answered: markup that must reach the page as text, never as elements.
const HOSTILE: &str = "<img src=x onerror=\"console.error('xss')\"><script>console.error('xss')</script>";

/// A running `geoctl dashboard`, stopped (by its own pid) when dropped.
struct Dashboard {
    child: Child,
    /// `127.0.0.1:port`, whatever address it listens on.
    addr: String,
}

impl Dashboard {
    fn start(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Dashboard {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_geoctl"));
        cmd.arg("dashboard")
            .args(args)
            .current_dir(db.dir())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", db.dir())
            .env("DATABASE_URL", &db.url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start geoctl dashboard");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        if line.is_empty() {
            let mut stderr = String::new();
            child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
            panic!("the dashboard printed no URL; stderr:\n{stderr}");
        }
        let port = line.trim().trim_end_matches('/').rsplit(':').next().unwrap().to_string();
        Dashboard { child, addr: format!("127.0.0.1:{port}") }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        http_get(&self.addr, path, headers)
    }

    /// A JSON answer that must be 200.
    #[track_caller]
    fn json(&self, path: &str) -> Value {
        let answer = self.get(path, &[]);
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{path} is not JSON ({e}): {}", answer.body))
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.0 GET (so the body is never chunked), read to the end.
fn http_get(addr: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    Answer { status, headers, body: body.to_string() }
}

/// `web` (eu-west and us-east) with results of the last hours, a failure whose error is
/// [`HOSTILE`], and one eu-west check three days ago that only the daily summaries keep; an open
/// incident of `web` and one of the region ap-south. Returns the monitor's id.
fn seeded(db: &TestDb) -> String {
    let web = db
        .geoctl(&[
            "monitor",
            "create",
            "--name",
            "web",
            "--type",
            "http",
            "--target",
            "https://example.com/health",
            "--regions",
            "eu-west,us-east",
            "-o",
            "json",
        ])
        .success()
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // geoctl refuses credentials in a URL; a row written before that rule (or by the app) has them.
    db.exec(&format!("UPDATE monitors SET target = 'https://ops:hunter2@example.com/health' WHERE id = '{web}'"));
    let hostile = HOSTILE.replace('\'', "''");
    db.exec(&format!(
        "INSERT INTO monitor_results (monitor_id, checked_at, is_up, execution_region, dns_resolution_time,
                                      tcp_connect_time, tls_handshake_time, first_byte_time, total_time,
                                      error_kind, error_message) VALUES
           ('{web}', now() - interval '50 minutes', true,  'eu-west', 1, 5, 7, 12, 30, NULL, NULL),
           ('{web}', now() - interval '20 minutes', false, 'eu-west', NULL, NULL, NULL, NULL, 500, 'http', '{hostile}'),
           ('{web}', now() - interval '10 minutes', true,  'eu-west', 1, 5, 7, 16, 40, NULL, NULL),
           ('{web}', now() - interval '5 hours',    true,  'us-east', NULL, 10, 20, 50, 100, NULL, NULL),
           ('{web}', now() - interval '3 days',     true,  'eu-west', 1, 5, 7, 9, 20, NULL, NULL);
         INSERT INTO incidents (kind, cause, severity, monitor_id, summary, regions, first_error)
           VALUES ('monitor', 'down', 'critical', '{web}', 'web is down in eu-west', '{{eu-west}}', '{hostile}');
         INSERT INTO incidents (kind, cause, severity, region_code, summary)
           VALUES ('region', 'region_impaired', 'warning', 'ap-south', 'ap-south sees most targets down')"
    ));
    // The summaries hold the old day; then its raw row goes, so only the summaries can count it.
    db.geoctl(&["summaries", "rebuild"]).success();
    db.exec(&format!(
        "DELETE FROM monitor_results WHERE monitor_id = '{web}' AND checked_at < now() - interval '2 days'"
    ));
    web
}

fn region<'a>(regions: &'a Value, key: &str, code: &str) -> &'a Value {
    regions.as_array().unwrap().iter().find(|r| r[key] == code).unwrap_or_else(|| panic!("no {code} in {regions}"))
}

#[test]
fn api_reads_results_for_a_day_and_summaries_beyond() {
    let db = TestDb::migrated();
    let web = seeded(&db);
    let redis = TestRedis::new();
    redis.cmd::<()>(&[
        "HSET",
        "geoctl:agents:eu-west:agent-1",
        "id",
        "agent-1",
        "host",
        "node-1",
        "version",
        "9.8.7",
        "started_at",
        "2026-01-01T00:00:00Z",
        "jobs_done",
        "3",
    ]);
    let dash = Dashboard::start(&db, &["--listen", "127.0.0.1:0"], &[("REDIS_URL_EU_WEST", &redis.url)]);
    // A monitor with no result and no incident: the pages show it with nothing to show.
    db.geoctl(&[
        "monitor",
        "create",
        "--name",
        "quiet",
        "--type",
        "tcp",
        "--target",
        "127.0.0.1:9",
        "--regions",
        "us-east",
    ])
    .success();
    let overview = dash.get("/?range=24h", &[]);
    assert_eq!(overview.status, 200, "{}", overview.body);
    assert!(overview.body.contains("quiet"));

    let day = dash.json("/api/v1/overview?range=24h");
    assert_eq!(day["range"]["name"], "24h");
    assert!(day["range"]["summarized_until"].is_string(), "whole hours from their summaries: {}", day["range"]);
    let eu = region(&day["regions"], "code", "eu-west");
    assert_eq!((eu["checks"].as_i64(), eu["successful"].as_i64()), (Some(3), Some(2)), "{eu}");
    assert_eq!(eu["agent_versions"], serde_json::json!(["9.8.7"]));
    assert_eq!(eu["queue"]["counts"]["waiting"], 0);
    // Percentiles over the hours from their histograms (the rows' hours were rebuilt above).
    assert_eq!(eu["slowest_p95_monitor"], "web");
    // No Redis configured for us-east: the card says so instead of failing the page.
    let us = region(&day["regions"], "code", "us-east");
    assert!(us["queue"].is_null() && us["queue_error"].as_str().unwrap().contains("REDIS_URL_US_EAST"), "{us}");
    let ap = region(&day["regions"], "code", "ap-south");
    assert_eq!(ap["open_incidents"][0]["cause"], "region_impaired");
    let status = region(&day["monitors"], "name", "web");
    assert_eq!(status["open_incidents"][0]["cause"], "down");

    let hour = dash.json("/api/v1/overview?range=1h");
    let eu = region(&hour["regions"], "code", "eu-west");
    assert_eq!(eu["checks"], 3);
    assert_eq!(region(&hour["regions"], "code", "us-east")["checks"], 0, "the us-east check is 5 hours old");

    // Over a day: whole days from the summaries, so the old check (its raw row deleted) counts.
    for range in ["7d", "30d"] {
        let long = dash.json(&format!("/api/v1/overview?range={range}"));
        assert!(long["range"]["summarized_until"].is_string(), "{range}: {}", long["range"]);
        let eu = region(&long["regions"], "code", "eu-west");
        assert_eq!((eu["checks"].as_i64(), eu["successful"].as_i64()), (Some(4), Some(3)), "{range}: {eu}");
    }

    let page = dash.json(&format!("/api/v1/monitors/{web}?range=24h"));
    assert_eq!(page["monitor"]["target"], "https://ops:****@example.com/health");
    assert!(page["monitor"].get("config").is_none(), "{}", page["monitor"]);
    let eu = region(&page["report"]["regions"], "region", "eu-west");
    assert_eq!(eu["avg_first_byte_ms"], 14.0);
    assert_eq!(eu["avg_tls_ms"], 7.0);
    assert_eq!(page["failures"].as_array().unwrap().len(), 1);
    assert_eq!(page["failures"][0]["error_message"], HOSTILE);
    assert_eq!(page["incidents"][0]["summary"], "web is down in eu-west");
    let body = dash.get(&format!("/api/v1/monitors/{web}?range=30d"), &[]).body;
    assert!(!body.contains("hunter2"), "the target's password is out of every answer");

    // The HTML carries the target's markup as text, under a policy that forbids inline script.
    let html = dash.get(&format!("/monitors/{web}?range=24h"), &[]);
    assert_eq!(html.status, 200);
    let csp = html.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert!(!html.body.contains("<script>console") && !html.body.contains("<img src=x"), "unescaped target text");
    assert!(html.body.contains("&lt;script&gt;console.error("), "the error is shown, escaped");
    assert!(!html.body.contains("hunter2"));

    // Bad requests say what is wrong.
    let bad = dash.get("/api/v1/overview?range=2w", &[]);
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("unknown range `2w`"), "{}", bad.body);
    let half = dash.get("/api/v1/overview?from=2026-01-01T00:00", &[]);
    assert_eq!(half.status, 400, "{}", half.body);
    let missing = dash.get("/api/v1/monitors/00000000-0000-0000-0000-000000000000", &[]);
    assert_eq!(missing.status, 404);
    let custom = dash.json("/api/v1/overview?from=2020-01-01T00:00Z&to=2020-01-02T00:00Z");
    assert_eq!(custom["range"]["name"], "custom");
    assert_eq!(region(&custom["regions"], "code", "eu-west")["checks"], 0);
}

#[test]
fn what_the_pages_read_is_kept_for_seconds_and_follows_new_results() {
    let db = TestDb::migrated();
    let web = seeded(&db);
    let dash = Dashboard::start(&db, &["--listen", "127.0.0.1:0"], &[]);
    let eu_checks = |overview: &Value| region(&overview["regions"], "code", "eu-west")["checks"].as_i64();
    let eu_error = |page: &Value| region(&page["status"]["regions"], "region", "eu-west")["error_kind"].clone();
    assert_eq!(eu_checks(&dash.json("/api/v1/overview?range=1h")), Some(3));
    let page = dash.json(&format!("/api/v1/monitors/{web}?range=1h"));
    assert_eq!(eu_error(&page), Value::Null, "the latest eu-west check is up");

    db.exec(&format!(
        "INSERT INTO monitor_results (monitor_id, checked_at, is_up, execution_region, total_time, error_kind, error_message)
         VALUES ('{web}', now(), false, 'eu-west', NULL, 'timeout', 'no answer within 10s')"
    ));
    // Kept: the next answer is the one in memory (the hour's figures live 10 s)...
    assert_eq!(eu_checks(&dash.json("/api/v1/overview?range=1h")), Some(3), "served from memory");
    // ...and within their periods (10 s for the hour's figures, 5 s for the present) the new check
    // shows, in the cards and in the monitor's state.
    let started = std::time::Instant::now();
    loop {
        let overview = dash.json("/api/v1/overview?range=1h");
        let page = dash.json(&format!("/api/v1/monitors/{web}?range=1h"));
        if eu_checks(&overview) == Some(4) && eu_error(&page) == "timeout" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(25),
            "the new check is not shown after 25 s: {} / {}",
            region(&overview["regions"], "code", "eu-west"),
            page["status"]
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn beyond_loopback_is_refused_without_credentials_before_anything_connects() {
    let dir = tempfile::tempdir().unwrap();
    // No database configured at all: the refusal comes first.
    for listen in ["0.0.0.0:0", "[::]:0"] {
        geoctl_in(dir.path(), &["dashboard", "--listen", listen], &[]).usage_error(&[
            "refusing to listen on",
            "--token-file",
            "127.0.0.1",
        ]);
    }
    let short = dir.path().join("short");
    std::fs::write(&short, "tooshort\n").unwrap();
    let run =
        geoctl_in(dir.path(), &["dashboard", "--listen", "0.0.0.0:0", "--token-file", short.to_str().unwrap()], &[])
            .usage_error(&["shorter than 16 characters"]);
    assert!(!run.stderr.contains("tooshort"), "the file's content is never echoed: {}", run.stderr);
}

#[test]
fn beyond_loopback_every_request_needs_the_token() {
    let db = TestDb::migrated();
    let web = seeded(&db);
    let token = "0123456789abcdef0123456789abcdef";
    let file = db.dir().join("token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let dash = Dashboard::start(&db, &["--listen", "0.0.0.0:0", "--token-file", file.to_str().unwrap()], &[]);

    for path in ["/api/v1/overview", &format!("/api/v1/monitors/{web}"), "/?fragment=1"] {
        let refused = dash.get(path, &[]);
        assert_eq!(refused.status, 401, "{path}");
        assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
        let wrong = dash.get(path, &[("Authorization", "Bearer 0123456789abcdef0123456789abcdeX")]);
        assert_eq!(wrong.status, 401, "{path}");
        let right = dash.get(path, &[("Authorization", &format!("Bearer {token}"))]);
        assert_eq!(right.status, 200, "{path}: {}", right.body);
        assert!(!right.body.contains(token), "{path} shows the token");
    }
    // The page itself only asks for the token: none of the data is in it.
    let shell = dash.get("/", &[]);
    assert_eq!(shell.status, 200);
    assert!(shell.body.contains("id=\"token-form\"") && !shell.body.contains("web"), "{}", shell.body);
    assert_eq!(dash.get("/assets/dashboard.js", &[]).status, 200, "the script holds no data");

    let basic = db.dir().join("basic");
    std::fs::write(&basic, "ops:s3cret-pass\n").unwrap();
    let dash = Dashboard::start(&db, &["--listen", "0.0.0.0:0", "--basic-auth-file", basic.to_str().unwrap()], &[]);
    let refused = dash.get("/", &[]);
    assert_eq!(refused.status, 401);
    assert!(refused.header("www-authenticate").unwrap().starts_with("Basic"));
    // base64("ops:s3cret-pass")
    let right = dash.get("/", &[("Authorization", "Basic b3BzOnMzY3JldC1wYXNz")]);
    assert_eq!(right.status, 200);
    assert!(right.body.contains("web"));
}

#[test]
fn pages_load_clean_in_chromium_and_the_range_switch_fetches_the_new_range() {
    let Some(chromium) = crate::browser::chromium() else { return };
    let db = TestDb::migrated();
    let web = seeded(&db);
    let dash = Dashboard::start(&db, &["--listen", "127.0.0.1:0"], &[]);
    let options = Options { chromium, action_timeout: Duration::from_secs(20), screenshot_on_failure: false };
    let expect =
        |selector: &str, contains: &str| Action::ExpectText { selector: selector.into(), contains: contains.into() };
    let journey = vec![
        Action::Goto(dash.url("/?range=1h")),
        expect("#range-label", "last hour"),
        expect("#monitors", "web"),
        expect("#region-ap-south", "ap-south sees most targets down"),
        // The script fetches the 24h content in place; the label comes from the server's answer.
        Action::Click("a[data-range='24h']".into()),
        expect("#range-label", "last 24 hours"),
        expect("a[data-range='24h'][aria-current='page']", "24h"),
        Action::Goto(dash.url(&format!("/monitors/{web}?range=24h"))),
        expect("#failures", "<script>console.error('xss')</script>"),
        expect("#incidents", "web is down in eu-west"),
        expect("#charts", "failed checks"),
        Action::Click("a[data-range='30d']".into()),
        expect("#range-label", "daily summaries"),
    ];
    let outcome = crate::support::block_on(browser::run(&journey, &options));
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    assert_eq!(outcome.console_errors, 0, "console errors (CSP violations included) on the pages");
    assert_eq!(outcome.failed_requests, 0);
}

#[test]
fn a_status_page_is_public_and_shows_only_what_was_chosen() {
    let db = TestDb::migrated();
    seeded(&db);
    db.geoctl(&[
        "monitor",
        "create",
        "--name",
        "admin-panel",
        "--type",
        "http",
        "--target",
        "https://admin.internal.example/",
        "--regions",
        "ap-south",
    ])
    .success();
    db.geoctl(&["statuspage", "add", "public", "--title", "Acme status", "--monitors", "web,nope"])
        .usage_error(&["nope"]);
    db.geoctl(&["statuspage", "add", "Bad Slug", "--title", "Acme status", "--monitors", "web"])
        .usage_error(&["invalid slug `Bad Slug`"]);
    assert_eq!(db.count("status_pages"), 0, "refused input writes nothing");
    db.geoctl(&["statuspage", "add", "public", "--title", "Acme status", "--monitors", "web"]).success();
    let list = db.geoctl(&["statuspage", "list", "-o", "json"]).success().json();
    assert_eq!(list[0]["slug"], "public");
    assert_eq!(list[0]["monitors"], serde_json::json!(["web"]));

    let token = db.dir().join("token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();
    let dash = Dashboard::start(&db, &["--listen", "0.0.0.0:0", "--token-file", token.to_str().unwrap()], &[]);
    assert_eq!(dash.get("/api/v1/overview", &[]).status, 401, "the dashboard stays closed");
    let api = dash.json("/api/v1/status/public");
    assert_eq!(api["title"], "Acme status");
    let monitors = api["monitors"].as_array().unwrap();
    assert_eq!(monitors.len(), 1);
    let days = monitors[0]["days"].as_array().unwrap();
    assert_eq!(days.len(), 90);
    let three_days_ago = &days[86];
    assert_eq!((three_days_ago["checks"].as_i64(), three_days_ago["grade"].as_str()), (Some(1), Some("good")));
    assert_eq!(days[0]["grade"], "none");
    assert_eq!(monitors[0]["open_incidents"][0]["cause"], "down");
    let page = dash.get("/status/public", &[]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Acme status") && page.body.contains("web"));
    for (what, body) in [("API", dash.get("/api/v1/status/public", &[]).body), ("page", page.body)] {
        for hidden in ["admin-panel", "example", "eu-west", "us-east", "xss", "web is down", "hunter2"] {
            assert!(!body.contains(hidden), "the status {what} shows `{hidden}`:\n{body}");
        }
    }
    assert_eq!(dash.get("/status/nope", &[]).status, 404);

    if let Some(chromium) = crate::browser::chromium() {
        let options = Options { chromium, action_timeout: Duration::from_secs(20), screenshot_on_failure: false };
        let journey = vec![
            Action::Goto(dash.url("/status/public")),
            Action::ExpectText { selector: "#status-title".into(), contains: "Acme status".into() },
            Action::WaitFor("svg.days rect.bar.good".into()),
        ];
        let outcome = crate::support::block_on(browser::run(&journey, &options));
        assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
        assert_eq!((outcome.console_errors, outcome.failed_requests), (0, 0));
    }

    db.geoctl(&["statuspage", "remove", "public"]).success();
    assert_eq!(dash.get("/status/public", &[]).status, 404);
    assert_eq!(db.count("monitors"), 2, "removing a page keeps its monitors");
}

/// `dashboard:` in the config file sets what the flags set: an address beyond loopback without
/// credentials there is refused the same way, and with a token file named there it serves only
/// requests showing the token.
#[test]
fn the_address_and_the_token_file_can_come_from_the_config_file() {
    let db = TestDb::migrated();
    let web = seeded(&db);
    let config = db.dir().join("geoctl.yaml");
    std::fs::write(&config, "dashboard:\n  listen: 0.0.0.0:0\n").unwrap();
    db.geoctl(&["dashboard"]).usage_error(&["refusing to listen on 0.0.0.0:0", "dashboard.token_file"]);

    let token = "fedcba9876543210fedcba9876543210";
    std::fs::write(db.dir().join("token"), format!("{token}\n")).unwrap();
    std::fs::write(&config, "dashboard:\n  listen: 0.0.0.0:0\n  token_file: token\n").unwrap();
    let dash = Dashboard::start(&db, &[], &[]);
    let path = format!("/api/v1/monitors/{web}");
    assert_eq!(dash.get(&path, &[]).status, 401);
    assert_eq!(dash.get(&path, &[("Authorization", &format!("Bearer {token}"))]).status, 200);
}

/// The stack's dashboard service: absent unless asked for, refused without credentials (nothing
/// written), and when rendered it listens on every interface with the token as a secret of its
/// own (the agent does not get it), published on the configured port, in a file Docker accepts.
#[test]
fn the_stack_runs_a_dashboard_only_when_asked_and_only_with_credentials() {
    let db = TestDb::migrated();
    let env = [("REDIS_URL_US_EAST", "redis://127.0.0.1:6379/0")];
    let file = db.dir().join("stack.yml");
    let render = |config: &str| {
        std::fs::write(db.dir().join("geoctl.yaml"), config).unwrap();
        let _ = std::fs::remove_file(&file);
        db.geoctl_with(&["stack", "render", "--region", "us-east", "--file", file.to_str().unwrap()], &env)
    };
    render("").success();
    let plain = std::fs::read_to_string(&file).unwrap();
    assert!(!plain.contains("dashboard"), "off by default:\n{plain}");

    render("stack:\n  dashboard: true\n").usage_error(&["stack.dashboard", "dashboard.token_file"]);
    assert!(!file.exists(), "nothing written");

    std::fs::write(db.dir().join("token"), "0123456789abcdef0123456789abcdef\n").unwrap();
    render("dashboard:\n  token_file: token\nstack:\n  dashboard: true\n  dashboard_port: 9080\n").success();
    let with = std::fs::read_to_string(&file).unwrap();
    assert!(with.contains(r#"command: ["geoctl", "dashboard", "--listen", "0.0.0.0:8080"]"#), "{with}");
    assert!(with.contains("DASHBOARD_TOKEN_FILE: /run/secrets/dashboard_token"), "{with}");
    assert!(with.contains("published: 9080"), "{with}");
    assert!(!with.contains("0123456789abcdef"), "the token is a Docker secret, never in the file");
    let agent = &with[with.find("  agent:").unwrap()..with.find("  dashboard:").unwrap()];
    assert!(!agent.contains("dashboard_token"), "the agents do not get the dashboard's token:\n{agent}");
    let out = Command::new("docker")
        .args(["stack", "config", "-c", file.to_str().unwrap()])
        .output()
        .expect("run the docker CLI");
    assert!(out.status.success(), "docker stack config: {}", String::from_utf8_lossy(&out.stderr));
    let config = String::from_utf8_lossy(&out.stdout);
    assert!(config.contains("published: \"9080\"") || config.contains("published: 9080"), "{config}");

    // Behind the Swarm's Traefik: labels for its router, its network, and no published port.
    let traefik = "dashboard:\n  token_file: token\nstack:\n  dashboard: true\n  dashboard_host: status.example.com\n";
    render(traefik).success();
    let routed = std::fs::read_to_string(&file).unwrap();
    let dashboard = &routed[routed.find("  dashboard:").unwrap()..routed.find("\nnetworks:").unwrap()];
    for label in [
        "traefik.enable: \"true\"",
        "traefik.http.routers.geoctl-us-east-dashboard.rule: \"Host(`status.example.com`)\"",
        "traefik.http.routers.geoctl-us-east-dashboard.entrypoints: websecure",
        "traefik.http.routers.geoctl-us-east-dashboard.tls.certresolver: letsencrypt",
        "traefik.http.services.geoctl-us-east-dashboard.loadbalancer.server.port: \"8080\"",
        "traefik.swarm.network: traefik-public",
    ] {
        assert!(dashboard.contains(label), "{label}:\n{dashboard}");
    }
    assert!(!dashboard.contains("published:"), "no port published behind Traefik:\n{dashboard}");
    let out = Command::new("docker").args(["stack", "config", "-c", file.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "docker stack config: {}", String::from_utf8_lossy(&out.stderr));
    let config = String::from_utf8_lossy(&out.stdout);
    assert!(config.contains("name: traefik-public") && config.contains("external: true"), "{config}");
    // No certificate resolver when the operator's Traefik has its own TLS.
    render(&format!("{traefik}  traefik_certresolver: \"\"\n  traefik_network: edge\n")).success();
    let routed = std::fs::read_to_string(&file).unwrap();
    assert!(!routed.contains("certresolver") && routed.contains("traefik.swarm.network: edge"), "{routed}");

    // A value that would change Traefik's rule rather than name a host is refused, nothing written.
    for (key, value) in [
        ("dashboard_host", "\"a`) || Host(`evil.example\""),
        ("dashboard_host", "\"status example.com\""),
        ("traefik_network", "\"net;rm\""),
        ("traefik_entrypoint", "\"web secure\""),
    ] {
        let config = format!("dashboard:\n  token_file: token\nstack:\n  dashboard: true\n  dashboard_host: ok.example.com\n  {key}: {value}\n");
        let config =
            if key == "dashboard_host" { config.replacen("  dashboard_host: ok.example.com\n", "", 1) } else { config };
        render(&config).usage_error(&[key]);
        assert!(!file.exists(), "nothing written for {key}: {value}");
    }
}
