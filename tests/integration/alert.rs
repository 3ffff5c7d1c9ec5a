//! The alerter through the binary against real PostgreSQL (and Redis for
//! heartbeats): results are inserted with SQL, with their region and time, so
//! each scenario is exact and fast.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::agent::harness::wait_until;
use crate::support::{TestDb, TestRedis};

const ALL: &str = "us-east,eu-west,ap-south";

/// A webhook channel, inserted as `geoctl channel add` would store it.
fn channel(db: &TestDb, name: &str) {
    db.exec(&format!(
        "INSERT INTO alert_channels (name, kind, settings) VALUES ('{name}', 'webhook', '{{\"url\": \"http://127.0.0.1:9/\"}}')"
    ));
}

/// A monitor in every region unless `extra` names its regions.
fn monitor(db: &TestDb, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["monitor", "create", "--name", name, "--type", "tcp", "--target", "127.0.0.1:9"];
    if !extra.contains(&"--regions") {
        args.extend(["--regions", ALL]);
    }
    args.extend_from_slice(extra);
    db.geoctl(&args).success();
    db.scalar(&format!("SELECT id FROM monitors WHERE name = '{name}'"))
}

/// One result of `monitor` in `region`, `ago` seconds ago.
fn result(db: &TestDb, monitor: &str, region: &str, ago: i64, up: bool) {
    let (total, kind, message) = if up { ("40", "NULL", "NULL") } else { ("NULL", "'timeout'", "'no answer in 10s'") };
    db.exec(&format!(
        "INSERT INTO monitor_results (monitor_id, execution_region, checked_at, is_up, status, total_time, error_kind, error_message)
         VALUES ('{monitor}', '{region}', now() - interval '{ago} seconds', {up}, '{}', {total}, {kind}, {message})",
        if up { "up" } else { "down" }
    ));
}

fn results(db: &TestDb, monitor: &str, agos: &[i64], up_in: &[&str], down_in: &[&str]) {
    for ago in agos {
        for r in up_in {
            result(db, monitor, r, *ago, true);
        }
        for r in down_in {
            result(db, monitor, r, *ago, false);
        }
    }
}

fn once(db: &TestDb, env: &[(&str, &str)]) -> serde_json::Value {
    db.geoctl_with(&["alerter", "--once", "-o", "json"], env).success().json()
}

fn count(db: &TestDb, sql: &str) -> i64 {
    db.scalar(&format!("SELECT count(*) FROM {sql}")).parse().unwrap()
}

#[test]
fn a_target_failing_in_two_of_three_regions_opens_one_incident_with_one_notification_per_channel_then_resolves() {
    let db = TestDb::migrated();
    channel(&db, "ops-hook");
    channel(&db, "team-hook");
    channel(&db, "unused");
    let m = monitor(&db, "shop", &["--notify", "ops-hook,team-hook"]);

    // One failed run in two regions is not confirmed (confirm defaults to 2).
    results(&db, &m, &[60], &["ap-south"], &["us-east", "eu-west"]);
    assert_eq!(once(&db, &[])["opened"], 0);
    results(&db, &m, &[30], &["ap-south"], &["us-east", "eu-west"]);
    let report = once(&db, &[]);
    assert_eq!((report["opened"].as_i64(), report["notifications"].as_i64()), (Some(1), Some(2)), "{report}");
    assert_eq!(count(&db, "incidents"), 1);
    assert_eq!(
        db.scalar("SELECT summary || ' | ' || first_error || ' | ' || array_to_string(regions, ',') FROM incidents"),
        "shop is down in eu-west and us-east (rule: majority) | eu-west: timeout: no answer in 10s | eu-west,us-east"
    );
    assert_eq!(count(&db, "notifications WHERE state = 'pending'"), 2);
    assert_eq!(
        count(
            &db,
            "notifications n JOIN alert_channels c ON c.id = n.channel_id WHERE c.name IN ('ops-hook', 'team-hook')"
        ),
        2
    );
    assert_eq!(
        count(
            &db,
            "notifications n JOIN incident_events e ON e.id = n.event_id \
                    WHERE n.idempotency_key = 'geoctl-' || e.incident_id || '-' || e.id || '-' || n.channel_id"
        ),
        2
    );

    // Evaluating again with nothing new repeats nothing.
    assert_eq!(once(&db, &[])["events"], 0);
    assert_eq!(count(&db, "notifications"), 2);

    // Status and the incident list show it.
    let status = db.geoctl(&["monitor", "status", "shop", "-o", "json"]).success().json();
    assert_eq!(status[0]["open_incidents"][0]["cause"], "down");
    let open = db.geoctl(&["incident", "list", "--open", "-o", "json"]).success().json();
    assert_eq!(open.as_array().unwrap().len(), 1);
    // The same incident as receivers get it (webhook body v1): its monitor by id, name and target.
    assert_eq!(open[0]["monitor"], serde_json::json!({"id": m, "name": "shop", "target": "127.0.0.1:9"}));
    assert_eq!(status[0]["open_incidents"][0]["monitor"], open[0]["monitor"]);
    let report = db.geoctl(&["report", "--monitor", "shop", "-o", "json"]).success();
    assert_eq!(report.json()["open_incidents"][0]["summary"], open[0]["summary"]);
    assert!(report.stderr.contains("open incident"), "{}", report.stderr);

    // One passing run is not recovery; two are.
    results(&db, &m, &[20], &["us-east", "eu-west", "ap-south"], &[]);
    assert_eq!(once(&db, &[])["resolved"], 0);
    results(&db, &m, &[10], &["us-east", "eu-west", "ap-south"], &[]);
    assert_eq!(once(&db, &[])["resolved"], 1);
    assert_eq!(count(&db, "incidents WHERE resolved_at IS NOT NULL AND resolved_by = 'alerter'"), 1);
    assert_eq!(count(&db, "notifications"), 4, "one resolved notification per channel");

    let id = db.scalar("SELECT id FROM incidents");
    let shown = db.geoctl(&["incident", "show", &id, "-o", "json"]).success().json();
    let kinds: Vec<&str> = shown["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["opened", "resolved"]);
    assert_eq!(shown["results"].as_array().unwrap().len(), 12, "the results around it");
    let table = db.geoctl(&["incident", "show", &id]).success().stdout;
    for needle in ["shop is down in eu-west and us-east", "opened", "resolved", "timeout: no answer in 10s"] {
        assert!(table.contains(needle), "lacks `{needle}`:\n{table}");
    }
    let listed = db.geoctl(&["incident", "list"]).success().stdout;
    assert!(listed.contains("resolved") && listed.contains("shop"), "{listed}");
}

#[test]
fn a_region_seeing_everything_down_that_others_see_up_is_one_region_incident_and_no_monitor_incident() {
    let db = TestDb::migrated();
    channel(&db, "ops-pager");
    let names = ["a", "b", "c", "d"];
    let file = db.dir().join("monitors.yaml");
    let entries: Vec<String> = names
        .iter()
        .map(|n| format!("  - name: {n}\n    type: tcp\n    target: 127.0.0.1:9\n    down_when: any\n"))
        .collect();
    std::fs::write(&file, format!("monitors:\n{}", entries.concat())).unwrap();
    db.geoctl(&["monitor", "apply", "-f", file.to_str().unwrap()]).success();
    for n in names {
        let m = db.scalar(&format!("SELECT id FROM monitors WHERE name = '{n}'"));
        results(&db, &m, &[60, 30], &["us-east", "ap-south"], &["eu-west"]);
    }
    let env = [("ALERT_REGION_IMPAIRED_MIN", "4"), ("ALERT_REGION_CHANNELS", "ops-pager")];
    let report = once(&db, &env);
    assert_eq!(report["opened"], 1, "{report}");
    assert_eq!(count(&db, "incidents WHERE kind = 'monitor'"), 0);
    assert_eq!(
        db.scalar("SELECT kind || ' ' || cause || ' ' || region_code || ': ' || summary FROM incidents"),
        "region region_impaired eu-west: eu-west sees 4 of 4 monitors down that ap-south and us-east see up"
    );
    assert_eq!(
        count(&db, "notifications n JOIN alert_channels c ON c.id = n.channel_id WHERE c.name = 'ops-pager'"),
        1
    );

    // Still broken a tick later: still one incident, still none per monitor.
    for n in names {
        let m = db.scalar(&format!("SELECT id FROM monitors WHERE name = '{n}'"));
        results(&db, &m, &[20], &["us-east", "ap-south"], &["eu-west"]);
    }
    assert_eq!(once(&db, &env)["opened"], 0);
    assert_eq!(count(&db, "incidents"), 1);
}

/// The alerter's environment for regions that share one Redis (heartbeats carry the region in
/// their key).
fn shared_redis(redis: &TestRedis) -> [(&'static str, &str); 3] {
    [
        ("REDIS_URL_US_EAST", redis.url.as_str()),
        ("REDIS_URL_EU_WEST", redis.url.as_str()),
        ("REDIS_URL_AP_SOUTH", redis.url.as_str()),
    ]
}

/// An agent's heartbeat in `region`, as the agent writes it.
fn beat(redis: &TestRedis, region: &str, agent: &str) {
    let key = format!("geoctl:agents:{region}:{agent}");
    redis.cmd::<()>(&["HSET", &key, "id", agent, "host", "test", "version", "0", "started_at", "now"]);
    redis.cmd::<()>(&["EXPIRE", &key, "60"]);
}

#[test]
fn a_region_with_no_live_agent_is_a_region_incident_until_one_beats_again() {
    let db = TestDb::migrated();
    let redis = TestRedis::new();
    let env = shared_redis(&redis);
    let beat = |region: &str| beat(&redis, region, "agent-1");
    beat("us-east");
    beat("ap-south");
    let report = once(&db, &env);
    assert_eq!(report["opened"], 1, "{report}");
    assert_eq!(
        db.scalar("SELECT cause || ' ' || region_code || ': ' || summary FROM incidents WHERE resolved_at IS NULL"),
        "no_agent eu-west: no agent in eu-west: no live heartbeat for 3 intervals; its results are unknown"
    );
    assert_eq!(once(&db, &env)["opened"], 0, "one incident, not one per tick");
    beat("eu-west");
    assert_eq!(once(&db, &env)["resolved"], 1);
    assert_eq!(count(&db, "incidents WHERE resolved_at IS NULL"), 0);
}

/// A running leader asks first about the agents it last found live, and scans a region's
/// heartbeats only when none of them beats: an agent replaced by another is no incident, the
/// last one gone is one, and a new one resolves it.
#[test]
fn a_running_leader_follows_agents_that_come_and_go() {
    let db = TestDb::migrated();
    let redis = TestRedis::new();
    let env = shared_redis(&redis);
    let beat = |region: &str, agent: &str| beat(&redis, region, agent);
    let gone = |region: &str, agent: &str| redis.cmd::<()>(&["DEL", &format!("geoctl:agents:{region}:{agent}")]);
    for region in ["us-east", "eu-west", "ap-south"] {
        beat(region, "agent-1");
    }
    channel(&db, "hook");
    let leader = Alerter::start_with(&db, &env);
    wait_until("the alerter to lead", Duration::from_secs(10), || leader.leads());
    std::thread::sleep(Duration::from_secs(1));
    // eu-west's agent is replaced: the one the leader knows is gone, another beats.
    beat("eu-west", "agent-2");
    gone("eu-west", "agent-1");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(count(&db, "incidents"), 0, "a replaced agent is no region incident");
    // The last agent stops cleanly (its heartbeat removed, as a rolling update's stop-first does):
    // the region is given the heartbeat's lifetime (30 s since its last beat) for another to
    // start, and only then is it without an agent.
    gone("eu-west", "agent-2");
    let stopped = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(count(&db, "incidents"), 0, "an agent just stopped is no region incident yet");
    wait_until("the leader to open a no-agent incident", Duration::from_secs(45), || {
        count(&db, "incidents WHERE cause = 'no_agent' AND region_code = 'eu-west'") == 1
    });
    assert!(stopped.elapsed() >= Duration::from_secs(25), "opened {:?} after the stop", stopped.elapsed());
    beat("eu-west", "agent-3");
    wait_until("the leader to resolve it", Duration::from_secs(10), || {
        count(&db, "incidents WHERE resolved_at IS NOT NULL") == 1
    });
    assert_eq!(count(&db, "incidents"), 1);
}

#[test]
fn flapping_is_said_once_and_the_changes_after_it_are_recorded_but_not_sent() {
    let db = TestDb::migrated();
    channel(&db, "hook");
    let m = monitor(&db, "flappy", &["--notify", "hook", "--confirm", "1", "--recover", "1", "--regions", "us-east"]);
    let env = [("ALERT_FLAP_CHANGES", "2")];
    for (ago, up) in [(50, false), (40, true), (30, false), (20, true)] {
        result(&db, &m, "us-east", ago, up);
        once(&db, &env);
    }
    let states = db.scalar(
        "SELECT string_agg(e.kind || ':' || n.state, ' ' ORDER BY e.id) FROM incident_events e JOIN notifications n ON n.event_id = e.id",
    );
    // Changes 1 and 2 are sent; the third starts flapping (said once); the fourth is recorded only.
    assert_eq!(states, "opened:pending resolved:pending opened:suppressed flapping:pending resolved:suppressed");
    assert_eq!(count(&db, "incidents"), 2);
}

#[test]
fn maintenance_records_and_marks_incidents_without_sending_and_an_incident_outliving_it_fires() {
    let db = TestDb::migrated();
    channel(&db, "hook");
    let m = monitor(&db, "db", &["--notify", "hook"]);
    let added = db
        .geoctl(&["maintenance", "add", "--monitor", "db", "--for", "2h", "--reason", "upgrade", "-o", "json"])
        .success()
        .json();
    results(&db, &m, &[60, 30], &[], &["us-east", "eu-west", "ap-south"]);
    once(&db, &[]);
    assert_eq!(db.scalar("SELECT in_maintenance FROM incidents"), "true");
    assert_eq!(db.scalar("SELECT string_agg(state, ',') FROM notifications"), "suppressed");
    let listed = db.geoctl(&["maintenance", "list", "-o", "json"]).success().json();
    assert_eq!(listed[0]["reason"], "upgrade");
    let table = db.geoctl(&["maintenance", "list"]).success().stdout;
    assert!(table.contains("monitor db") && table.contains("upgrade"), "{table}");
    let incidents = db.geoctl(&["incident", "list", "--open"]).success().stdout;
    assert!(incidents.contains("in maintenance"), "{incidents}");

    // The window ends while the target is still down: the incident is sent now, once.
    db.geoctl(&["maintenance", "end", &added["id"].to_string()]).success();
    results(&db, &m, &[10], &[], &["us-east", "eu-west", "ap-south"]);
    once(&db, &[]);
    once(&db, &[]);
    assert_eq!(db.scalar("SELECT in_maintenance FROM incidents"), "false");
    assert_eq!(
        db.scalar("SELECT string_agg(e.kind || ':' || n.state, ' ' ORDER BY e.id) FROM incident_events e JOIN notifications n ON n.event_id = e.id"),
        "opened:suppressed firing:pending"
    );
}

#[test]
fn ack_and_manual_resolve_notify_and_a_later_failure_opens_a_new_incident() {
    let db = TestDb::migrated();
    channel(&db, "hook");
    let m = monitor(&db, "api", &[]);
    let env = [("ALERT_DEFAULT_CHANNELS", "hook")];
    results(&db, &m, &[90, 80], &[], &["us-east", "eu-west"]);
    once(&db, &env);
    let id = db.scalar("SELECT id FROM incidents");
    db.geoctl_with(&["incident", "ack", &id, "--by", "alice"], &env).success();
    assert_eq!(db.scalar("SELECT acknowledged_by FROM incidents"), "alice");
    // Twice is the same.
    db.geoctl_with(&["incident", "ack", &id, "--by", "bob"], &env).success();
    assert_eq!(db.scalar("SELECT acknowledged_by FROM incidents"), "alice");
    db.geoctl_with(&["incident", "resolve", &id, "--by", "alice"], &env).success();
    assert_eq!(db.scalar("SELECT resolved_by FROM incidents"), "alice");
    assert_eq!(
        db.scalar("SELECT string_agg(e.kind || ':' || n.state, ' ' ORDER BY e.id) FROM incident_events e JOIN notifications n ON n.event_id = e.id"),
        "opened:pending acknowledged:pending resolved:pending"
    );
    // Still failing, but it takes a new streak of failures to open again.
    results(&db, &m, &[70], &[], &["us-east", "eu-west"]);
    assert_eq!(once(&db, &env)["opened"], 0);
    results(&db, &m, &[60], &[], &["us-east", "eu-west"]);
    assert_eq!(once(&db, &env)["opened"], 1);
    assert_eq!(count(&db, "incidents"), 2);
    db.geoctl(&["incident", "ack", "999"]).usage_error(&["no incident 999"]);
}

#[test]
fn bad_input_is_exit_2_and_writes_nothing() {
    let db = TestDb::migrated();
    channel(&db, "hook");
    let create = |name: &str, extra: &[&str]| {
        let mut args = vec!["monitor", "create", "--name", name, "--type", "tcp", "--target", "127.0.0.1:9"];
        args.extend_from_slice(extra);
        db.geoctl(&args)
    };
    create("x", &["--notify", "hook,nope"]).usage_error(&["unknown channel `nope`", "geoctl channel add"]);
    create("x", &["--confirm", "0"]).usage_error(&["--confirm"]);
    assert_eq!(count(&db, "monitors"), 0);

    let file = db.dir().join("m.yaml");
    std::fs::write(&file, "monitors:\n  - name: y\n    type: tcp\n    target: 127.0.0.1:9\n    notify: [nope]\n")
        .unwrap();
    db.geoctl(&["monitor", "apply", "-f", file.to_str().unwrap()]).usage_error(&["unknown channel `nope`"]);
    std::fs::write(&file, "monitors:\n  - name: y\n    type: tcp\n    target: 127.0.0.1:9\n    confirm: 0\n").unwrap();
    db.geoctl(&["monitor", "apply", "-f", file.to_str().unwrap()]).usage_error(&["confirm must be at least 1"]);
    assert_eq!(count(&db, "monitors"), 0);

    monitor(&db, "z", &[]);
    db.geoctl(&["monitor", "update", "z", "--notify", "nope"]).usage_error(&["unknown channel `nope`"]);
    assert_eq!(count(&db, "monitor_channels"), 0);
    db.geoctl(&["monitor", "update", "z", "--notify", "hook", "--confirm", "3"]).success();
    assert_eq!(db.scalar("SELECT alert_confirm FROM monitors"), "3");
    assert_eq!(count(&db, "monitor_channels"), 1);

    let add = |extra: &[&str]| {
        let mut args = vec!["maintenance", "add", "--reason", "r"];
        args.extend_from_slice(extra);
        db.geoctl(&args)
    };
    add(&["--monitor", "z", "--from", "2030-01-02T00:00:00Z", "--to", "2030-01-01T00:00:00Z"])
        .usage_error(&["ends", "before it starts"]);
    add(&["--monitor", "nope", "--for", "1h"]).usage_error(&["no monitor `nope`"]);
    add(&["--region", "mars", "--for", "1h"]).usage_error(&["mars"]);
    add(&["--for", "1h"]).usage_error(&["--monitor"]);
    add(&["--region", "eu-west", "--from", "2030-01-01 10:00", "--for", "2h"]).success();
    add(&["--region", "eu-west", "--from", "2030-01-01 11:00", "--for", "2h"])
        .usage_error(&["overlaps maintenance window"]);
    assert_eq!(count(&db, "maintenance_windows"), 1);
    db.geoctl(&["maintenance", "end", "999"]).usage_error(&["no maintenance window 999"]);

    // A configured channel that does not exist stops the alerter before it writes anything.
    db.geoctl_with(&["alerter", "--once"], &[("ALERT_DEFAULT_CHANNELS", "ghost")])
        .usage_error(&["alerting.default_channels", "`ghost`"]);
    assert_eq!(count(&db, "alert_cursor"), 0);
    db.geoctl_with(&["alerter", "--once"], &[("ALERT_CONFIRM", "0")]).usage_error(&["ALERT_CONFIRM"]);
}

#[test]
fn monitor_show_prints_the_alert_settings_in_effect_and_where_they_come_from() {
    let db = TestDb::migrated();
    channel(&db, "hook");
    channel(&db, "pager");
    monitor(&db, "own", &["--notify", "hook,pager", "--confirm", "3"]);
    monitor(&db, "plain", &[]);

    let shown = db.geoctl(&["monitor", "show", "own"]).success().stdout;
    for expected in ["3 failed runs", "2 passing runs (default: alerting.recover)", "hook, pager"] {
        assert!(shown.contains(expected), "{expected:?} in:\n{shown}");
    }
    for own in ["failed runs (default", "pager (default"] {
        assert!(!shown.contains(own), "the monitor's own setting shown as a default ({own:?}):\n{shown}");
    }
    let json = db.geoctl(&["monitor", "show", "own", "-o", "json"]).success().json();
    assert_eq!(json["alerting"]["confirm"], 3);
    assert_eq!(json["alerting"]["notify"], serde_json::json!(["hook", "pager"]));
    assert_eq!(json["alerting"]["defaults"], serde_json::json!(["recover"]));
    assert_eq!(json["name"], "own", "the monitor's own fields stay where they were");

    // The defaults follow the configuration, and say so.
    let run =
        db.geoctl_with(&["monitor", "show", "plain"], &[("ALERT_CONFIRM", "4"), ("ALERT_DEFAULT_CHANNELS", "pager")]);
    let shown = run.success().stdout;
    for expected in ["4 failed runs (default: alerting.confirm)", "pager (default: alerting.default_channels)"] {
        assert!(shown.contains(expected), "{expected:?} in:\n{shown}");
    }
    let shown = db.geoctl(&["monitor", "show", "plain"]).success().stdout;
    assert!(shown.contains("- (default: alerting.default_channels)"), "{shown}");
}

/// A `geoctl alerter` process whose log is collected as it runs.
struct Alerter {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Alerter {
    fn start(db: &TestDb) -> Self {
        Self::start_with(db, &[])
    }

    fn start_with(db: &TestDb, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_geoctl"))
            .args(["alerter"])
            .current_dir(db.dir())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", db.dir())
            .env("DATABASE_URL", &db.url)
            .env("ALERT_INTERVAL", "200ms")
            .env("ALERT_DEFAULT_CHANNELS", "hook")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Alerter { child, log }
    }

    fn leads(&self) -> bool {
        self.log.lock().unwrap().contains("leading")
    }
}

impl Drop for Alerter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn two_alerters_one_leads_and_the_standby_takes_over_within_10_s_of_a_sigkill_without_repeating_an_event() {
    let db = TestDb::migrated();
    channel(&db, "hook");
    let m = monitor(&db, "api", &[]);
    let mut first = Alerter::start(&db);
    let mut second = Alerter::start(&db);
    wait_until("one alerter to lead", Duration::from_secs(10), || first.leads() || second.leads());
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !(first.leads() && second.leads()),
        "both lead:\n{}\n{}",
        first.log.lock().unwrap(),
        second.log.lock().unwrap()
    );
    let (leader, standby) = if first.leads() { (&mut first, &second) } else { (&mut second, &first) };

    results(&db, &m, &[2, 1], &["ap-south"], &["us-east", "eu-west"]);
    wait_until("the leader to open the incident", Duration::from_secs(10), || count(&db, "incidents") == 1);

    leader.child.kill().unwrap();
    leader.child.wait().unwrap();
    let killed = Instant::now();
    results(&db, &m, &[0], &["us-east", "eu-west", "ap-south"], &[]);
    wait_until("the standby to lead", Duration::from_secs(10), || standby.leads());
    let took_over = killed.elapsed();
    assert!(took_over < Duration::from_secs(10), "took {took_over:?}");
    db.exec(
        "INSERT INTO monitor_results (monitor_id, execution_region, checked_at, is_up, status, total_time)
         SELECT id, r, now(), true, 'up', 40 FROM monitors, unnest(ARRAY['us-east','eu-west','ap-south']) r",
    );
    wait_until("the standby to resolve it", Duration::from_secs(10), || {
        count(&db, "incidents WHERE resolved_at IS NOT NULL") == 1
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(count(&db, "incidents"), 1);
    assert_eq!(db.scalar("SELECT string_agg(kind, ',' ORDER BY id) FROM incident_events"), "opened,resolved");
    assert_eq!(count(&db, "notifications"), 2);
    eprintln!("standby took over {took_over:?} after the leader's SIGKILL");
}

#[test]
fn a_manual_resolve_resets_a_running_leaders_streaks_so_a_later_failure_opens_a_new_incident() {
    let db = TestDb::migrated();
    channel(&db, "hook");
    let m = monitor(&db, "api", &[]);
    let leader = Alerter::start(&db);
    wait_until("the alerter to lead", Duration::from_secs(10), || leader.leads());
    results(&db, &m, &[3, 2], &[], &["us-east", "eu-west"]);
    wait_until("the leader to open the incident", Duration::from_secs(10), || count(&db, "incidents") == 1);
    let id = db.scalar("SELECT id FROM incidents");
    db.geoctl_with(&["incident", "resolve", &id, "--by", "alice"], &[("ALERT_DEFAULT_CHANNELS", "hook")]).success();
    // Still failing: it takes a new streak of `confirm` (2) failures to open a new incident, as
    // with `alerter --once`; a leader still holding its old streaks would open one at the first.
    results(&db, &m, &[1], &[], &["us-east", "eu-west"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(&db, "incidents"), 1, "one failure after the resolve is not yet a streak of 2");
    results(&db, &m, &[0], &[], &["us-east", "eu-west"]);
    wait_until("the leader to open a new incident", Duration::from_secs(10), || {
        count(&db, "incidents WHERE resolved_at IS NULL") == 1
    });
    assert_eq!(count(&db, "incidents"), 2);
    assert_eq!(db.scalar("SELECT string_agg(kind, ',' ORDER BY id) FROM incident_events"), "opened,resolved,opened");
}

/// A running leader judges again only the monitors whose results moved; a monitor edited by hand
/// moved none, and is still judged under its new rule at once.
#[test]
fn a_running_leader_judges_an_edited_monitor_under_its_new_rule_without_a_new_result() {
    let db = TestDb::migrated();
    channel(&db, "hook");
    let m = monitor(&db, "api", &["--down-when", "any"]);
    let leader = Alerter::start(&db);
    wait_until("the alerter to lead", Duration::from_secs(10), || leader.leads());
    results(&db, &m, &[3, 2], &["eu-west", "ap-south"], &["us-east"]);
    wait_until("the leader to open the incident", Duration::from_secs(10), || count(&db, "incidents") == 1);
    db.geoctl(&["monitor", "update", "api", "--down-when", "all"]).success();
    // One region failing of three no longer makes it down under `all`.
    wait_until("the leader to resolve it under the new rule", Duration::from_secs(10), || {
        count(&db, "incidents WHERE resolved_at IS NOT NULL") == 1
    });
    assert_eq!(db.scalar("SELECT string_agg(kind, ',' ORDER BY id) FROM incident_events"), "opened,resolved");
}

/// The leader dies while a receiver holds its request: the standby delivers that notification
/// (again, under the same idempotency key, once the claim's lease ends) and everything after it.
#[test]
fn a_leader_killed_mid_delivery_leaves_the_standby_to_deliver_everything() {
    let rt = crate::notify::runtime();
    let hook = rt.block_on(crate::notify::Receiver::start());
    let db = TestDb::migrated();
    let secret = db.dir().join("hook-secret");
    std::fs::write(&secret, "whsec_failover\n").unwrap();
    let url = hook.url("/geoctl");
    db.geoctl(&[
        "channel",
        "add",
        "hook",
        "--type",
        "webhook",
        "--url",
        &url,
        "--secret-file",
        &secret.to_string_lossy(),
    ])
    .success();
    let m = monitor(&db, "api", &["--notify", "hook"]);
    let mut first = Alerter::start(&db);
    let mut second = Alerter::start(&db);
    wait_until("one alerter to lead", Duration::from_secs(10), || first.leads() || second.leads());
    let (leader, standby) = if first.leads() { (&mut first, &second) } else { (&mut second, &first) };

    hook.delay(Duration::from_secs(60));
    results(&db, &m, &[2, 1], &["ap-south"], &["us-east", "eu-west"]);
    wait_until("the leader to send the incident", Duration::from_secs(10), || hook.requests().len() == 1);
    leader.child.kill().unwrap();
    leader.child.wait().unwrap();
    hook.delay(Duration::ZERO);
    wait_until("the standby to lead", Duration::from_secs(10), || standby.leads());
    // Two passing runs everywhere (`recover` is 2): the incident resolves.
    results(&db, &m, &[1, 0], &["us-east", "eu-west", "ap-south"], &[]);
    // The held row is the standby's once its claim's lease (2 × the 10 s timeout + 1 s) ends.
    wait_until("both events delivered", Duration::from_secs(45), || {
        count(&db, "notifications WHERE state = 'delivered'") == 2
    });
    assert_eq!(count(&db, "notifications"), 2, "one notification per event");
    let keys: Vec<String> = hook.requests().iter().map(|r| r.header("Idempotency-Key").unwrap().to_string()).collect();
    let mut distinct = keys.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 2, "the opened and resolved events: {keys:?}");
    let repeated = keys.len() - distinct.len();
    assert!(repeated <= 1, "only the held send may arrive again: {keys:?}");
    let events: Vec<String> = hook.requests().iter().map(|r| r.json()["event"]["kind"].to_string()).collect();
    eprintln!("receiver got {} request(s) for 2 events ({repeated} repeated under its key): {events:?}", keys.len());
}

#[test]
fn the_stack_runs_an_alerter_only_when_asked_and_docker_accepts_the_file() {
    let db = TestDb::migrated();
    let env = [("REDIS_URL_US_EAST", "redis://127.0.0.1:6379/0")];
    let render = |config: &str| {
        std::fs::write(db.dir().join("geoctl.yaml"), config).unwrap();
        let file = db.dir().join("stack.yml");
        db.geoctl_with(&["stack", "render", "--region", "us-east", "--file", file.to_str().unwrap()], &env).success();
        std::fs::read_to_string(&file).unwrap()
    };
    let plain = render("");
    assert!(!plain.contains("alerter"), "off by default:\n{plain}");
    let with = render("stack:\n  alerter: true\n");
    assert!(with.contains("  alerter:\n"), "{with}");
    assert!(with.contains(r#"command: ["geoctl", "alerter"]"#), "{with}");
    assert!(with.contains("DATABASE_URL_FILE: /run/secrets/database_url"), "{with}");
    let out = Command::new("docker")
        .args(["stack", "config", "-c", db.dir().join("stack.yml").to_str().unwrap()])
        .output()
        .expect("run the docker CLI");
    assert!(out.status.success(), "docker stack config: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("alerter"));
}

#[test]
fn a_leader_stopped_with_sigterm_exits_0_and_hands_over_at_once() {
    let db = TestDb::migrated();
    channel(&db, "hook");
    let mut first = Alerter::start(&db);
    wait_until("the first alerter to lead", Duration::from_secs(10), || first.leads());
    let second = Alerter::start(&db);
    wait_until("the second to stand by", Duration::from_secs(10), || {
        second.log.lock().unwrap().contains("standing by")
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(!second.leads());
    let status = Command::new("kill").args(["-TERM", &first.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let stopped = Instant::now();
    let code = loop {
        if let Some(status) = first.child.try_wait().unwrap() {
            break status.code();
        }
        assert!(stopped.elapsed() < Duration::from_secs(5), "no exit within 5 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(0), "{}", first.log.lock().unwrap());
    assert!(first.log.lock().unwrap().contains("releasing the leader lock"));
    // The lock was given back, so the standby's next try (every 2 s) takes it.
    wait_until("the standby to lead", Duration::from_secs(3), || second.leads());
}

/// `alerter --once` with the driver logging every statement it sends (sqlx logs each at
/// debug): the report, and the tick's statements as logged (from taking the tick lock to the
/// commit; delivery follows, with statements per batch of rows), one per entry.
fn once_logging_statements(db: &TestDb) -> (serde_json::Value, Vec<String>) {
    let run = db
        .geoctl_with(
            &["alerter", "--once", "-o", "json"],
            &[
                ("RUST_LOG", "warn,sqlx::query=debug"),
                // Forty monitors down in the same two regions would otherwise be those regions' outage.
                ("ALERT_REGION_IMPAIRED_MIN", "1000"),
            ],
        )
        .success();
    // The logged statement is pretty-printed across (escaped) lines: one space between words.
    let statements = run
        .stderr
        .lines()
        .filter(|l| l.contains("sqlx::query"))
        .map(|l| l.replace("\\n", " ").split_whitespace().collect::<Vec<_>>().join(" "))
        .skip_while(|l| !l.contains("pg_advisory_xact_lock"))
        .collect::<Vec<_>>();
    let end = statements.iter().position(|l| l.contains("summary=\"COMMIT\"")).expect("the tick commits");
    let statements = statements[..=end].to_vec();
    (run.json(), statements)
}

/// A tick's incidents, events and outbox rows go to the server in the same statements whether
/// it opens two incidents or forty, and the rows are those the alerter always wrote.
#[test]
fn a_tick_writes_any_number_of_incidents_events_and_notifications_in_the_same_statements() {
    let mut counted = Vec::new();
    for n in [2usize, 40] {
        let db = TestDb::migrated();
        channel(&db, "ops-hook");
        channel(&db, "team-hook");
        let file = db.dir().join("monitors.yaml");
        let mut apply = String::from("monitors:\n");
        for i in 0..n {
            apply.push_str(&format!(
                "  - {{name: m{i}, type: tcp, target: \"127.0.0.1:9\", regions: [{ALL}], notify: [ops-hook, team-hook]}}\n"
            ));
        }
        std::fs::write(&file, apply).unwrap();
        db.geoctl(&["monitor", "apply", "-f", file.to_str().unwrap()]).success();
        // Two failed runs (confirm 2) in us-east and eu-west, passes in ap-south: each monitor is down.
        let insert = |agos: &str, down_in: &str| {
            db.exec(&format!(
                "INSERT INTO monitor_results (monitor_id, execution_region, checked_at, is_up, status, total_time, error_kind, error_message)
                 SELECT m.id, r, now() - make_interval(secs => ago), NOT (r = ANY('{{{down_in}}}')),
                        CASE WHEN r = ANY('{{{down_in}}}') THEN 'down' ELSE 'up' END,
                        CASE WHEN r = ANY('{{{down_in}}}') THEN NULL ELSE 40 END,
                        CASE WHEN r = ANY('{{{down_in}}}') THEN 'timeout' END,
                        CASE WHEN r = ANY('{{{down_in}}}') THEN 'no answer in 10s' END
                 FROM monitors m, unnest('{{{ALL}}}'::text[]) AS r, unnest('{{{agos}}}'::int[]) AS ago"
            ))
        };
        insert("60,30", "us-east,eu-west");
        let (opened, opening) = once_logging_statements(&db);
        assert_eq!(
            (opened["opened"].as_u64(), opened["events"].as_u64(), opened["notifications"].as_u64()),
            (Some(n as u64), Some(n as u64), Some(2 * n as u64)),
            "{opened}"
        );
        assert_eq!(
            count(
                &db,
                "incidents i JOIN monitors m ON m.id = i.monitor_id WHERE i.kind = 'monitor' AND i.cause = 'down'
                        AND i.severity = 'critical' AND i.resolved_at IS NULL AND NOT i.in_maintenance
                        AND i.summary = m.name::text || ' is down in eu-west and us-east (rule: majority)'
                        AND i.regions = '{eu-west,us-east}' AND i.first_error = 'eu-west: timeout: no answer in 10s'"
            ),
            n as i64
        );
        assert_eq!(count(&db, "(SELECT DISTINCT monitor_id FROM incidents) s"), n as i64, "one incident per monitor");
        assert_eq!(
            count(
                &db,
                "incident_events e JOIN incidents i ON i.id = e.incident_id JOIN monitors m ON m.id = i.monitor_id
                        WHERE e.kind = 'opened' AND e.detail ->> 'summary' = i.summary
                        AND e.detail #>> '{monitor,name}' = m.name::text AND (e.detail ->> 'muted')::bool = false"
            ),
            n as i64
        );
        assert_eq!(
            count(
                &db,
                "notifications n JOIN incident_events e ON e.id = n.event_id
                        JOIN alert_channels c ON c.id = n.channel_id AND c.name IN ('ops-hook', 'team-hook')
                        WHERE n.state = 'pending'
                        AND n.idempotency_key = 'geoctl-' || e.incident_id || '-' || e.id || '-' || n.channel_id"
            ),
            2 * n as i64
        );

        // Two passing runs everywhere resolve them all, again in the same statements.
        insert("20,10", "");
        let (resolved, resolving) = once_logging_statements(&db);
        assert_eq!(
            (resolved["resolved"].as_u64(), resolved["notifications"].as_u64()),
            (Some(n as u64), Some(2 * n as u64))
        );
        assert_eq!(count(&db, "incidents WHERE resolved_at IS NOT NULL AND resolved_by = 'alerter'"), n as i64);
        assert_eq!(
            count(
                &db,
                "incident_events e JOIN notifications n ON n.event_id = e.id WHERE e.kind = 'resolved'
                        AND e.id > (SELECT max(id) FROM incident_events WHERE kind = 'opened')"
            ),
            2 * n as i64,
            "each resolved event after every opened one, one row per channel"
        );
        let writing =
            |log: &[String], table: &str| log.iter().filter(|s| s.contains(&format!("INSERT INTO {table}"))).count();
        assert_eq!(writing(&opening, "incidents"), 1, "one statement inserts every incident:\n{}", opening.join("\n"));
        assert_eq!(writing(&opening, "notifications"), 1, "and every outbox row");
        assert_eq!(writing(&resolving, "notifications"), 1);
        counted.push((n, opening.len(), resolving.len()));
    }
    assert_eq!(counted[0].1, counted[1].1, "statements of the opening tick, by incidents: {counted:?}");
    assert_eq!(counted[0].2, counted[1].2, "statements of the resolving tick, by incidents: {counted:?}");
}
