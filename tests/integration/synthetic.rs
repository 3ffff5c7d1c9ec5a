//! Synthetic checks against a local API: a login that issues a token, endpoints that require
//! it, a slow one. `probe --type synthetic`, `monitor create|apply|check` with scripts, and the
//! secrets a script reads never shown or stored.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use serde_json::Value;

use crate::support::{geoctl_in, TestDb};

/// The password the login accepts; tests pass it as `DEMO_PASSWORD` and look for it in output.
pub const PASSWORD: &str = "pw-Zq81-never-shown";
/// The token the login issues.
pub const TOKEN: &str = "tok-7f3a91c2e5";

/// A local API, one request per connection, on a loopback port of its own.
pub struct Api {
    pub url: String,
}

impl Api {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                std::thread::spawn(move || serve(stream));
            }
        });
        Api { url }
    }
}

fn serve(mut stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
    let mut length = 0usize;
    let mut authorization = String::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or((&header, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap_or(0),
            "authorization" => authorization = value.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0u8; length];
    let _ = reader.read_exact(&mut body);
    let authorized = authorization == format!("Bearer {TOKEN}");
    let json = |status: u16, body: Value| (status, "application/json", body.to_string());
    let (status, content_type, text) = match (method.as_str(), path.as_str()) {
        ("POST", "/login") => {
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if request["password"] == PASSWORD {
                json(200, serde_json::json!({ "token": TOKEN, "user": request["user"] }))
            } else {
                json(401, serde_json::json!({ "error": "bad password" }))
            }
        }
        ("GET", "/api/me") if authorized => json(200, serde_json::json!({ "user": "demo", "orders": [42] })),
        ("GET", "/api/orders/42") if authorized => json(200, serde_json::json!({ "id": 42, "status": "shipped" })),
        ("GET", p) if p.starts_with("/api/") => json(401, serde_json::json!({ "error": "no token" })),
        ("GET", "/slow") => {
            std::thread::sleep(Duration::from_millis(400));
            (200, "text/plain", "slow but fine".to_string())
        }
        ("GET", "/text") => (200, "text/plain", "hello demo, no errors here".to_string()),
        ("GET", "/app") => (200, "text/html", APP_PAGE.to_string()),
        ("GET", "/app/data") => {
            std::thread::sleep(Duration::from_millis(200));
            (200, "text/plain", "loaded".to_string())
        }
        _ => (404, "text/plain", "not found".to_string()),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

/// A page whose button loads its content from `/app/data` (which answers after 200 ms).
const APP_PAGE: &str = r##"<!doctype html><html><head><title>app</title><link rel="icon" href="data:,"></head><body>
<button id="load" onclick="fetch('/app/data').then(r => r.text()).then(t => {
  const p = document.createElement('p'); p.id = 'result'; p.textContent = t; document.body.appendChild(p); })">load</button>
</body></html>"##;

fn example() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/examples/synthetic.yaml").to_string()
}

/// No Chromium here, whatever the machine has: browser steps take the "no browser" path.
const NO_BROWSER: (&str, &str) = ("CHROMIUM_PATH", "/nonexistent/chromium");

#[test]
fn the_example_flow_passes_and_shows_each_step_without_the_secret() {
    let api = Api::start();
    let dir = tempfile::tempdir().unwrap();
    let env = [("APP_URL", api.url.as_str()), ("DEMO_PASSWORD", PASSWORD), NO_BROWSER];
    let args = ["probe", "--type", "synthetic", "--script", &example()];
    let table = geoctl_in(dir.path(), &args, &env).success();
    for step in ["login", "profile", "order"] {
        assert!(table.stdout.contains(step), "{step} missing:\n{}", table.stdout);
    }
    let json_run = geoctl_in(dir.path(), &[&args[..], &["-o", "json"]].concat(), &env).success();
    let flow = json_run.json();
    assert_eq!(flow["up"], true);
    let steps = flow["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    let mut sum = 0.0;
    for step in steps {
        assert_eq!(step["outcome"], "passed", "{step}");
        assert_eq!(step["status"], 200);
        assert!(step["phases"]["dns_ms"].is_null(), "an IP literal has no DNS phase: {step}");
        assert!(step["phases"]["connect_ms"].as_f64().unwrap() > 0.0, "each step has its own connection");
        sum += step["duration_ms"].as_f64().unwrap();
    }
    assert!((flow["total_ms"].as_f64().unwrap() - sum).abs() < 0.01, "total is the sum of the steps");
    // Extraction and interpolation: the order URL holds the id the profile step extracted.
    assert!(steps[2]["url"].as_str().unwrap().ends_with("/api/orders/42"), "{}", steps[2]);
    for run in [&table, &json_run] {
        assert!(!run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD));
    }

    // The wrong password: the login step fails and names itself; later steps are skipped.
    let wrong = [("APP_URL", api.url.as_str()), ("DEMO_PASSWORD", "pw-wrong-one"), NO_BROWSER];
    let down = geoctl_in(dir.path(), &[&args[..], &["-o", "json"]].concat(), &wrong);
    assert_eq!(down.code, 1, "{down:?}");
    assert!(down.stderr.contains("step `login`: status 401"), "{}", down.stderr);
    let flow = down.json();
    assert_eq!(flow["failed_step"], "login");
    assert_eq!(flow["steps"][1]["outcome"], "skipped");
    assert!(flow["steps"][1]["duration_ms"].is_null());
    assert!(!down.stdout.contains("pw-wrong-one") && !down.stderr.contains("pw-wrong-one"));
}

#[test]
fn each_assertion_kind_fails_naming_its_step() {
    let api = Api::start();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("expect: { status: 201 }", "/text", "status 200; expected 201", "http_status"),
        ("expect: { max_ms: 100 }", "/slow", "expected at most 100 ms", "assertion"),
        ("expect: { body_contains: goodbye }", "/text", "body does not contain `goodbye`", "keyword"),
        ("expect: { body_absent: errors }", "/text", "body contains `errors`", "keyword"),
        ("expect: { headers: { content-type: json } }", "/text", "header `content-type` is `text/plain`", "assertion"),
        ("expect: { headers: { x-missing: a } }", "/text", "header `x-missing` is missing", "assertion"),
        ("expect: { json: { \"$.user\": demo } }", "/text", "not JSON", "assertion"),
        ("expect: { status: 401, json: { \"$.error\": other } }", "/api/me", "`$.error` is \"no token\"", "assertion"),
        (
            "expect: { status: 401 }\n    extract: { t: \"$.nothing\" }",
            "/api/me",
            "extract `t`: `$.nothing` selects nothing",
            "assertion",
        ),
        ("expect: {}", "/nowhere", "status 404", "http_status"),
    ];
    for (expect, path, message, kind) in cases {
        let script = format!(
            "vars: {{ base: \"{}\" }}\nsteps:\n  - name: first\n    request: {{ url: \"{{{{ base }}}}/text\" }}\n  - name: checked\n    request: {{ url: \"{{{{ base }}}}{path}\" }}\n    {expect}\n  - name: after\n    request: {{ url: \"{{{{ base }}}}/text\" }}\n",
            api.url
        );
        let file = dir.path().join("case.yaml");
        std::fs::write(&file, &script).unwrap();
        let run = geoctl_in(
            dir.path(),
            &["probe", "--type", "synthetic", "--script", file.to_str().unwrap(), "-o", "json"],
            &[NO_BROWSER],
        );
        assert_eq!(run.code, 1, "{expect}: {run:?}");
        let flow = run.json();
        assert_eq!(flow["failed_step"], "checked", "{expect}");
        assert_eq!(flow["failure"]["kind"], kind, "{expect}: {}", flow["failure"]);
        let why = flow["failure"]["message"].as_str().unwrap();
        assert!(why.starts_with("step `checked`: ") && why.contains(message), "{expect}: {why}");
        assert_eq!(flow["steps"][0]["outcome"], "passed");
        assert_eq!(flow["steps"][2]["outcome"], "skipped");
    }
}

#[test]
fn a_browser_step_where_no_browser_exists_is_a_clear_failure() {
    let api = Api::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("browser.yaml");
    let script = format!(
        "steps:\n  - name: api\n    request: {{ url: \"{}/text\" }}\n  - name: page\n    browser:\n      - goto: \"{}/text\"\n      - click: \"#go\"\n",
        api.url, api.url
    );
    std::fs::write(&file, script).unwrap();
    let run = geoctl_in(
        dir.path(),
        &["probe", "--type", "synthetic", "--script", file.to_str().unwrap(), "-o", "json"],
        &[NO_BROWSER],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let flow = run.json();
    assert_eq!(flow["failed_step"], "page");
    assert_eq!(flow["failure"]["kind"], "no_browser");
    assert!(flow["failure"]["message"].as_str().unwrap().contains("no browser in this region"));
}

/// Scripts that must be refused, with what the refusal must say.
const BAD_SCRIPTS: [(&str, &str); 7] = [
    ("steps: [", "not valid YAML"),
    ("steps: []", "no steps"),
    ("steps:\n  - name: a\n    grpc: { url: \"http://127.0.0.1:1/\" }\n", "unknown step kind or key `grpc`"),
    ("steps:\n  - name: a\n    request: { url: \"{{ bsae }}/x\" }\n", "undefined variable `bsae`"),
    (
        "steps:\n  - name: a\n    request: { url: \"http://127.0.0.1:1/\" }\n    extract: { t: \"$[\" }\n",
        "invalid JSONPath `$[`",
    ),
    (
        "steps:\n  - name: a\n    request: { url: \"http://127.0.0.1:1/\" }\n  - name: a\n    request: { url: \"http://127.0.0.1:1/\" }\n",
        "two steps are named `a`",
    ),
    ("steps:\n  - name: a\n    request: { url: \"http://127.0.0.1:1/\", verb: GET }\n", "unknown field `verb`"),
];

#[test]
fn bad_scripts_are_refused_at_create_and_apply_with_nothing_written() {
    let db = TestDb::migrated();
    let file = db.dir().join("bad.yaml");
    for (script, message) in BAD_SCRIPTS {
        std::fs::write(&file, script).unwrap();
        let path = file.to_str().unwrap();
        db.geoctl(&["monitor", "create", "--name", "flow", "--type", "synthetic", "--script", path])
            .usage_error(&[message]);
        db.geoctl(&["probe", "--type", "synthetic", "--script", path]).usage_error(&[message]);
        let apply = db.dir().join("monitors.yaml");
        std::fs::write(&apply, format!("monitors:\n  - name: flow\n    type: synthetic\n    script: {path}\n"))
            .unwrap();
        db.geoctl(&["monitor", "apply", "-f", apply.to_str().unwrap()]).usage_error(&[message]);
    }
    db.geoctl(&["monitor", "create", "--name", "flow", "--type", "synthetic", "--target", "x"])
        .usage_error(&["needs --script"]);
    db.geoctl(&["monitor", "create", "--name", "web", "--type", "http", "--script", file.to_str().unwrap()])
        .usage_error(&["--script goes with --type synthetic"]);
    assert_eq!(db.count("monitors"), 0);
    assert_eq!(db.count("monitor_regions"), 0);
}

#[test]
fn a_stored_script_runs_from_monitor_check_and_its_secret_is_never_stored() {
    let api = Api::start();
    let db = TestDb::migrated();
    let script = example();
    let create =
        ["monitor", "create", "--name", "checkout", "--type", "synthetic", "--script", &script, "--regions", "eu-west"];
    let created = db.geoctl(&[&create[..], &["-o", "json"]].concat()).success().json();
    assert_eq!(created["type"], "synthetic_test");
    assert_eq!(created["target"], "{{env.APP_URL}}/login");
    assert!(created["config"]["script"].as_str().unwrap().contains("{{ env.DEMO_PASSWORD }}"));
    // Created again as it is: unchanged.
    db.geoctl(&create).success();
    assert_eq!(db.count("monitors"), 1);

    let env = [("APP_URL", api.url.as_str()), ("DEMO_PASSWORD", PASSWORD), NO_BROWSER];
    let check = db.geoctl_with(&["monitor", "check", "checkout", "-o", "json"], &env).success();
    assert_eq!(check.json()["up"], true);
    assert!(!check.stdout.contains(PASSWORD) && !check.stderr.contains(PASSWORD));
    // A failing run whose URL carries the secret: masked in the output and in the row.
    let leaky = db.dir().join("leaky.yaml");
    std::fs::write(
        &leaky,
        "steps:\n  - name: leak\n    request: { url: \"{{ env.APP_URL }}/nowhere?pw={{ env.DEMO_PASSWORD }}\" }\n",
    )
    .unwrap();
    db.geoctl(&[
        "monitor",
        "create",
        "--name",
        "leaky",
        "--type",
        "synthetic",
        "--script",
        leaky.to_str().unwrap(),
        "--regions",
        "eu-west",
    ])
    .success();
    let down = db.geoctl_with(&["monitor", "check", "leaky", "-o", "json"], &env);
    assert_eq!(down.code, 1, "{down:?}");
    assert!(!down.stdout.contains(PASSWORD) && !down.stderr.contains(PASSWORD), "{down:?}");
    assert!(down.json()["steps"][0]["url"].as_str().unwrap().contains("pw=****"), "{}", down.stdout);

    assert_eq!(db.count("monitor_results"), 2);
    let rows = db.scalar("SELECT json_agg(r)::text FROM monitor_results r");
    assert!(!rows.contains(PASSWORD), "a secret reached the database: {rows}");
    let monitors = db.scalar("SELECT json_agg(m)::text FROM monitors m");
    assert!(!monitors.contains(PASSWORD));
    let steps: Value = serde_json::from_str(&db.scalar(
        "SELECT steps FROM monitor_results r JOIN monitors m ON m.id = r.monitor_id WHERE m.name = 'checkout'",
    ))
    .unwrap();
    assert_eq!(steps.as_array().unwrap().len(), 3);
    assert_eq!(steps[0]["name"], "login");
    // The script can be replaced; a bad one is refused and the stored one stays.
    let stored = db.scalar("SELECT config->>'script' FROM monitors WHERE name = 'leaky'");
    let bad = db.dir().join("bad.yaml");
    std::fs::write(&bad, "steps:\n  - name: a\n    request: { url: \"{{ nope }}\" }\n").unwrap();
    db.geoctl(&["monitor", "update", "leaky", "--script", bad.to_str().unwrap()])
        .usage_error(&["undefined variable `nope`"]);
    assert_eq!(db.scalar("SELECT config->>'script' FROM monitors WHERE name = 'leaky'"), stored);
    db.geoctl(&["monitor", "update", "leaky", "--script", &example()]).success();
    assert!(db.scalar("SELECT config->>'script' FROM monitors WHERE name = 'leaky'").contains("name: order"));
    let failed = db.scalar(
        "SELECT error_message FROM monitor_results r JOIN monitors m ON m.id = r.monitor_id WHERE m.name = 'leaky'",
    );
    assert!(failed.starts_with("step `leak`: status 404"), "{failed}");

    // `monitor results` shows the flow's steps.
    let results = db.geoctl(&["monitor", "results", "checkout", "-o", "json"]).success().json();
    assert_eq!(results[0]["steps"][2]["name"], "order", "{results}");
    let table = db.geoctl(&["monitor", "results", "leaky"]).success();
    assert!(table.stdout.contains("leak"), "{}", table.stdout);
}

#[test]
fn apply_files_take_inline_scripts_and_paths() {
    let api = Api::start();
    let db = TestDb::migrated();
    let file = db.dir().join("monitors.yaml");
    std::fs::write(
        &file,
        format!(
            "monitors:\n  - name: inline\n    type: synthetic\n    regions: [eu-west]\n    script:\n      vars: {{ base: \"{}\" }}\n      steps:\n        - name: text\n          request: {{ url: \"{{{{ base }}}}/text\" }}\n          expect: {{ body_contains: demo }}\n  - name: from-file\n    type: synthetic\n    regions: [eu-west]\n    script: {}\n",
            api.url,
            example()
        ),
    )
    .unwrap();
    db.geoctl(&["monitor", "apply", "-f", file.to_str().unwrap()]).success();
    assert_eq!(db.count("monitors"), 2);
    let again = db.geoctl(&["monitor", "apply", "-f", file.to_str().unwrap()]).success();
    assert!(again.stderr.contains("nothing to change"), "{}", again.stderr);
    let inline = db.geoctl(&["monitor", "show", "inline", "-o", "json"]).success().json();
    assert_eq!(inline["target"], format!("{}/text", api.url));
    db.geoctl_with(&["monitor", "check", "inline"], &[NO_BROWSER]).success();
}

/// An agent runs a stored flow like any monitor: each scheduled run recorded once, with its
/// steps. A browser script is refused for a region with no browser service configured and no
/// live `--browser` agent, before and after a plain agent is live there; an agent started with
/// `--browser` takes it, and the plain agent never does.
#[test]
fn an_agent_records_each_run_of_a_flow_once_and_says_when_it_has_no_browser() {
    use crate::agent::harness::{wait_until, Agent, Redis, Runs};
    let api = Api::start();
    let db = TestDb::migrated();
    let redis = Redis::start();
    let redis_url = redis.url(5);
    let env = [("REDIS_URL_EU_WEST", redis_url.as_str())];
    let page = db.dir().join("page.yaml");
    std::fs::write(&page, format!("steps:\n  - name: page\n    browser: [ {{ goto: \"{}/text\" }} ]\n", api.url))
        .unwrap();
    let create = |name: &str, script: &str| {
        db.geoctl_with(
            &[
                "monitor",
                "create",
                "--name",
                name,
                "--type",
                "synthetic",
                "--script",
                script,
                "--every",
                "2s",
                "--timeout",
                "2s",
                "--force",
                "--regions",
                "eu-west",
            ],
            &env,
        )
    };
    // No browser service configured and no browser agent: refused, nothing written.
    create("page", page.to_str().unwrap())
        .usage_error(&["region `eu-west` has no browser service", "regions.eu-west.stack.browser_replicas: 1"]);
    assert_eq!(db.count("monitors"), 0);
    create("flow", &example()).success();

    let mut agent_env = vec![
        ("DATABASE_URL", db.url.as_str()),
        ("REDIS_URL_EU_WEST", redis_url.as_str()),
        ("APP_URL", api.url.as_str()),
        ("DEMO_PASSWORD", PASSWORD),
    ];
    agent_env.push(NO_BROWSER);
    let agent = Agent::start("eu-west", &agent_env, &db.dir().join("eu-west"), &[]);
    let count = |name: &str| -> i64 {
        db.scalar(&format!(
            "SELECT count(*) FROM monitor_results r JOIN monitors m ON m.id = r.monitor_id WHERE m.name = '{name}'"
        ))
        .parse()
        .unwrap()
    };
    wait_until("results of the flow", Duration::from_secs(40), || count("flow") >= 2);

    let flow_id = db.scalar("SELECT id::text FROM monitors WHERE name = 'flow'");
    let runs = Runs::of(&db.url, &flow_id, "eu-west");
    assert!(runs.doubled.is_empty(), "runs recorded twice: {:?}", runs.doubled);
    let flow_rows = db.scalar(&format!(
        "SELECT json_agg(json_build_object('up', is_up, 'steps', jsonb_array_length(steps), 'key', run_key)) \
         FROM monitor_results WHERE monitor_id = '{flow_id}'"
    ));
    let flow_rows: Value = serde_json::from_str(&flow_rows).unwrap();
    for row in flow_rows.as_array().unwrap() {
        assert_eq!((row["up"].as_bool(), row["steps"].as_i64()), (Some(true), Some(3)), "{row}");
        assert!(row["key"].as_str().is_some_and(|k| k.starts_with(&flow_id)), "{row}");
    }
    assert!(!db.scalar("SELECT json_agg(r)::text FROM monitor_results r").contains(PASSWORD));

    // A live plain agent does not make the region able to run browser steps.
    wait_until("the agent's heartbeat", Duration::from_secs(20), || {
        redis.cli(5, &["KEYS", "geoctl:agents:eu-west:*"]).lines().count() > 0
    });
    let monitors = db.count("monitors");
    create("page-2", page.to_str().unwrap()).usage_error(&["region `eu-west` has no browser service"]);
    let apply = db.dir().join("browser-monitors.yaml");
    std::fs::write(
        &apply,
        format!(
            "monitors:\n  - name: page-3\n    type: synthetic\n    regions: [eu-west]\n    script: {}\n",
            page.display()
        ),
    )
    .unwrap();
    db.geoctl_with(&["monitor", "apply", "-f", apply.to_str().unwrap()], &env)
        .usage_error(&["monitor `page-3`", "region `eu-west` has no browser service"]);
    assert_eq!(db.count("monitors"), monitors);

    // A browser agent started by hand: the script is accepted, and its runs are that agent's.
    let chromium = crate::browser::chromium();
    if let Some(chromium) = chromium {
        let chromium = chromium.display().to_string();
        let mut browser_env = agent_env.clone();
        browser_env.retain(|(k, _)| *k != "CHROMIUM_PATH");
        browser_env.push(("CHROMIUM_PATH", chromium.as_str()));
        let browser_agent = Agent::start("eu-west", &browser_env, &db.dir().join("eu-west-browser"), &["--browser"]);
        wait_until("the browser agent's heartbeat", Duration::from_secs(20), || {
            redis.cli(5, &["KEYS", "geoctl:agents:eu-west:*"]).lines().count() > 1
        });
        create("page", page.to_str().unwrap()).success();
        wait_until("a journey recorded", Duration::from_secs(40), || count("page") >= 1);
        let kinds = db.scalar(
            "SELECT coalesce(string_agg(DISTINCT coalesce(error_kind, 'none'), ','), '') FROM monitor_results r \
             JOIN monitors m ON m.id = r.monitor_id WHERE m.name = 'page'",
        );
        assert!(!kinds.contains("no_browser"), "the plain agent took a browser job: {kinds}");
        let log = browser_agent.log.clone();
        assert_eq!(browser_agent.terminate(Duration::from_secs(20)), 0, "{}", std::fs::read_to_string(log).unwrap());
    }

    let log = agent.log.clone();
    assert_eq!(agent.terminate(Duration::from_secs(20)), 0, "{}", std::fs::read_to_string(log).unwrap());
}

#[test]
fn a_secret_file_is_read_where_the_script_runs_and_never_shown() {
    let api = Api::start();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("secret.yaml");
    std::fs::write(
        &script,
        "steps:\n  - name: login\n    request:\n      url: \"{{ env.APP_URL }}/login\"\n      json: { user: demo, password: \"{{ secret.DEMO_PASSWORD }}\" }\n    expect: { status: 200, body_absent: \"{{ secret.DEMO_PASSWORD }}\" }\n",
    )
    .unwrap();
    let secret = dir.path().join("demo_password");
    std::fs::write(&secret, format!("{PASSWORD}\n")).unwrap();
    let args = ["probe", "--type", "synthetic", "--script", script.to_str().unwrap(), "-o", "json"];
    let env = [("APP_URL", api.url.as_str()), ("DEMO_PASSWORD_FILE", secret.to_str().unwrap())];
    let run = geoctl_in(dir.path(), &args, &env).success();
    assert_eq!(run.json()["steps"][0]["status"], 200, "the secret's value (newline trimmed) was sent");
    assert!(!run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD));

    // A secret that cannot be read fails its step and says how to provide it.
    let missing = [("APP_URL", api.url.as_str()), ("DEMO_PASSWORD_FILE", "/nonexistent/demo_password")];
    let down = geoctl_in(dir.path(), &args, &missing);
    assert_eq!(down.code, 1, "{down:?}");
    assert!(down.stderr.contains("secret `DEMO_PASSWORD`: cannot read /nonexistent/demo_password"), "{}", down.stderr);
}

/// A browser step in a flow drives the real Chromium: a passing journey with its page's
/// timings from `probe`; a failing one, stored by `monitor check`, keeps its screenshot, which
/// `monitor results --screenshot` hands back.
#[test]
fn browser_steps_run_in_chromium_and_a_failure_keeps_its_screenshot() {
    if crate::browser::chromium().is_none() {
        return;
    }
    let api = Api::start();
    let db = TestDb::migrated();
    let script = |expected: &str| {
        format!(
            "steps:\n  - name: api\n    request: {{ url: \"{0}/text\" }}\n  - name: dashboard\n    browser:\n      \
             - goto: \"{0}/app\"\n      - click: \"#load\"\n      - wait_for: \"#result\"\n      \
             - expect_text: {{ selector: \"#result\", contains: {expected} }}\n",
            api.url
        )
    };
    let (good, bad) = (db.dir().join("good.yaml"), db.dir().join("bad.yaml"));
    std::fs::write(&good, script("loaded")).unwrap();
    std::fs::write(&bad, script("shipped")).unwrap();

    let flow = db.geoctl(&["probe", "--type", "synthetic", "--script", good.to_str().unwrap(), "-o", "json"]);
    let flow = flow.success().json();
    let page = &flow["steps"][1]["pages"][0];
    assert_eq!(flow["steps"][1]["outcome"], "passed", "{flow}");
    assert!(page["first_byte_ms"].as_f64().is_some() && page["load_ms"].as_f64().is_some(), "{flow}");
    assert!(page["dns_ms"].is_null(), "an IP literal has no DNS lookup: {page}");

    // The region has a browser service configured, so the browser script may run there.
    std::fs::write(db.dir().join("geoctl.yaml"), "regions:\n  us-east:\n    stack:\n      browser_replicas: 1\n")
        .unwrap();
    let create = ["monitor", "create", "--name", "dash", "--type", "synthetic", "--regions", "us-east", "--script"];
    db.geoctl(&[&create[..], &[bad.to_str().unwrap()]].concat()).success();
    let down = db.geoctl(&["monitor", "check", "dash", "--region", "us-east", "-o", "json"]);
    assert_eq!(down.code, 1, "{down:?}");
    assert_eq!(down.json()["failed_step"], "dashboard");
    assert!(down.json()["failure"]["message"].as_str().unwrap().contains("shipped"), "{}", down.stdout);
    let magic = db.scalar("SELECT encode(substring(screenshot from 1 for 4), 'hex') FROM monitor_results");
    assert!(magic == "89504e47" || magic.starts_with("ffd8"), "not a PNG or JPEG: {magic}");
    let id = db.scalar("SELECT id FROM monitor_results");
    let shot = db.geoctl(&["monitor", "results", "dash", "--screenshot", &id]).success();
    let stored: usize = db.scalar("SELECT length(screenshot) FROM monitor_results").parse().unwrap();
    assert!(stored > 1000 && stored <= geoctl::results::MAX_SCREENSHOT_BYTES, "{stored} bytes");
    assert!(shot.stdout.len() >= stored / 2, "the screenshot was not written to stdout");
}
