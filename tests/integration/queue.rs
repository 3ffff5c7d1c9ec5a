//! Regional queues on a real Redis: scheduling follows the database, a region
//! that is down or not configured blocks nothing, `queue sync` heals, status
//! counts are BullMQ's.

use std::collections::HashMap;

use serde_json::Value;

use crate::support::{Run, TestDb, TestRedis};

/// The env that points regions at `redis` (all regions may share one Redis:
/// their queues have different names).
fn env_for(redis: &TestRedis, regions: &[&str]) -> Vec<(String, String)> {
    regions.iter().map(|r| (format!("REDIS_URL_{}", r.to_uppercase().replace('-', "_")), redis.url.clone())).collect()
}

fn geoctl(db: &TestDb, env: &[(String, String)], args: &[&str]) -> Run {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    db.geoctl_with(args, &env)
}

/// Scheduler ids on a region's queue.
fn schedulers(redis: &TestRedis, region: &str) -> Vec<String> {
    redis.cmd(&["ZRANGE", &format!("bull:monitor-{region}:repeat"), "0", "-1"])
}

fn scheduler(redis: &TestRedis, region: &str, id: &str) -> HashMap<String, String> {
    redis.cmd(&["HGETALL", &format!("bull:monitor-{region}:repeat:{id}")])
}

/// 1 when an `every` scheduler's first run is already in `wait` (its spread was
/// over by the time it was added), else 0: it waits in `delayed`.
fn first_run_due(redis: &TestRedis, region: &str) -> i64 {
    let waiting: Vec<String> = redis.cmd(&["LRANGE", &format!("bull:monitor-{region}:wait"), "0", "-1"]);
    waiting.iter().filter(|id| id.starts_with("repeat:")).count() as i64
}

/// Jobs waiting or delayed on a region's queue.
fn next_runs(redis: &TestRedis, region: &str) -> Vec<String> {
    let mut ids: Vec<String> = redis.cmd(&["LRANGE", &format!("bull:monitor-{region}:wait"), "0", "-1"]);
    ids.extend(redis.cmd::<Vec<String>>(&["ZRANGE", &format!("bull:monitor-{region}:delayed"), "0", "-1"]));
    ids
}

fn create(db: &TestDb, env: &[(String, String)], name: &str, regions: &str) -> (String, Run) {
    let run = geoctl(
        db,
        env,
        &[
            "monitor",
            "create",
            "--name",
            name,
            "--type",
            "http",
            "--target",
            "https://example.com/health",
            "--every",
            "1m",
            "--regions",
            regions,
            "--header",
            "Authorization: Bearer hunter2",
            "-o",
            "json",
        ],
    )
    .success();
    (run.json()["id"].as_str().unwrap().to_string(), run)
}

#[test]
fn scheduling_follows_create_update_regions_pause_and_delete() {
    let db = TestDb::migrated();
    let redis = TestRedis::new();
    let env = env_for(&redis, &["us-east", "eu-west", "ap-south"]);
    let (id, run) = create(&db, &env, "api", "eu-west,ap-south");
    let sched = format!("monitor-{id}");
    assert!(run.stderr.contains("scheduled in eu-west"), "{}", run.stderr);
    assert_eq!(schedulers(&redis, "eu-west"), vec![sched.clone()]);
    assert_eq!(schedulers(&redis, "ap-south"), vec![sched.clone()]);
    assert!(schedulers(&redis, "us-east").is_empty());

    let hash = scheduler(&redis, "eu-west", &sched);
    assert_eq!(hash["name"], "execute-monitor");
    assert_eq!(hash["every"], "60000");
    let data: Value = serde_json::from_str(&hash["data"]).unwrap();
    assert_eq!(data["monitorId"], id.as_str());
    assert_eq!(data["type"], "http_request");
    assert_eq!(data["target"], "https://example.com/health");
    assert_eq!(data["frequencyMinutes"], 1);
    assert_eq!(data["region"], "eu-west");
    assert_eq!(data["executionRegion"], "eu-west");
    assert!(data["createdAt"].is_string());
    assert!(!hash["data"].contains("hunter2"), "a credential reached Redis: {}", hash["data"]);
    // The scheduler's next run waits (delayed by its spread, `first_run_delay`) with BullMQ's
    // scheduler job id.
    let next = next_runs(&redis, "eu-west");
    assert_eq!(next.len(), 1, "{next:?}");
    assert!(next[0].starts_with(&format!("repeat:{sched}:")), "{next:?}");

    geoctl(&db, &env, &["monitor", "update", "api", "--every", "2m"]).success();
    assert_eq!(scheduler(&redis, "eu-west", &sched)["every"], "120000");
    let next = next_runs(&redis, "eu-west");
    assert_eq!(next.len(), 1, "a rescheduled monitor has one next run: {next:?}");
    assert_eq!(scheduler(&redis, "ap-south", &sched)["every"], "120000");

    geoctl(&db, &env, &["monitor", "regions", "set", "api", "--region", "ap-south", "--every", "30s"]).success();
    assert_eq!(scheduler(&redis, "ap-south", &sched)["every"], "30000");
    assert_eq!(scheduler(&redis, "eu-west", &sched)["every"], "120000");

    geoctl(&db, &env, &["monitor", "regions", "add", "api", "us-east"]).success();
    assert_eq!(schedulers(&redis, "us-east"), vec![sched.clone()]);
    let run = geoctl(&db, &env, &["monitor", "regions", "remove", "api", "eu-west"]).success();
    assert!(run.stderr.contains("unscheduled from eu-west"), "{}", run.stderr);
    assert!(schedulers(&redis, "eu-west").is_empty());
    let next = next_runs(&redis, "eu-west");
    assert!(next.is_empty(), "the removed region keeps a next run: {next:?}");

    geoctl(&db, &env, &["monitor", "pause", "api"]).success();
    assert!(schedulers(&redis, "us-east").is_empty() && schedulers(&redis, "ap-south").is_empty());
    geoctl(&db, &env, &["monitor", "resume", "api"]).success();
    assert_eq!(schedulers(&redis, "us-east"), vec![sched.clone()]);

    geoctl(&db, &env, &["monitor", "delete", "api", "--yes"]).success();
    for region in ["us-east", "eu-west", "ap-south"] {
        assert!(schedulers(&redis, region).is_empty(), "{region} still has a scheduler");
    }
}

#[test]
fn monitor_apply_schedules_what_it_changed() {
    let db = TestDb::migrated();
    let redis = TestRedis::new();
    let env = env_for(&redis, &["us-east", "eu-west", "ap-south"]);
    let file = db.dir().join("monitors.yaml");
    std::fs::write(
        &file,
        "monitors:\n  - name: a\n    type: http\n    target: https://a.example.com\n    every: 1m\n    regions: [eu-west]\n",
    )
    .unwrap();
    geoctl(&db, &env, &["monitor", "apply", "-f", file.to_str().unwrap()]).success();
    assert_eq!(schedulers(&redis, "eu-west").len(), 1);
    assert!(schedulers(&redis, "us-east").is_empty());
}

#[test]
fn a_region_without_redis_or_down_blocks_neither_the_others_nor_the_write() {
    let db = TestDb::migrated();
    let redis = TestRedis::new();
    // us-east works, eu-west points at a closed port, ap-south has no Redis at all.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut env = env_for(&redis, &["us-east"]);
    env.push(("REDIS_URL_EU_WEST".into(), format!("redis://:sekrit@127.0.0.1:{closed}/0")));
    env.push(("REDIS_CONNECTION_TIMEOUT".into(), "2s".into()));
    let (id, run) = create(&db, &env, "api", "us-east,eu-west,ap-south");
    assert_eq!(schedulers(&redis, "us-east"), vec![format!("monitor-{id}")]);
    assert_eq!(db.count("monitors"), 1);
    assert!(
        run.stderr.contains("not scheduled in ap-south") && run.stderr.contains("REDIS_URL_AP_SOUTH"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("not scheduled in eu-west") && run.stderr.contains("queue sync"), "{}", run.stderr);
    assert!(!run.stderr.contains("sekrit") && !run.stdout.contains("sekrit"), "{}", run.stderr);

    // With no Redis configured anywhere, monitors are managed as before.
    let none: Vec<(String, String)> = Vec::new();
    geoctl(&db, &none, &["monitor", "update", "api", "--every", "5m"]).success();
    geoctl(&db, &none, &["monitor", "delete", "api", "--yes"]).success();
    assert_eq!(db.count("monitors"), 0);
}

#[test]
fn queue_sync_heals_a_flushed_redis_and_removes_what_the_database_lost() {
    let db = TestDb::migrated();
    let redis = TestRedis::new();
    let env = env_for(&redis, &["us-east", "eu-west", "ap-south"]);
    let (a, _) = create(&db, &env, "a", "us-east,eu-west");
    let (b, _) = create(&db, &env, "b", "eu-west");
    redis.cmd::<()>(&["FLUSHDB"]);

    let status = geoctl(&db, &env, &["queue", "status", "--region", "eu-west", "-o", "json"]).success().json();
    assert_eq!(status[0]["schedule_matches"], false);
    assert_eq!(status[0]["sync_pending"], 2);

    let dry = geoctl(&db, &env, &["queue", "sync", "--dry-run", "-o", "json"]).success().json();
    let adds: usize = dry.as_array().unwrap().iter().map(|r| r["changes"].as_array().unwrap().len()).sum();
    assert_eq!(adds, 3);
    assert!(schedulers(&redis, "eu-west").is_empty(), "a dry run wrote");

    let run = geoctl(&db, &env, &["queue", "sync"]).success();
    assert!(
        run.stdout.contains(&format!("monitor-{a}")) && run.stdout.contains(&format!("monitor-{b}")),
        "{}",
        run.stdout
    );
    let mut eu = schedulers(&redis, "eu-west");
    eu.sort();
    let mut expected = vec![format!("monitor-{a}"), format!("monitor-{b}")];
    expected.sort();
    assert_eq!(eu, expected);
    assert_eq!(schedulers(&redis, "us-east"), vec![format!("monitor-{a}")]);

    let again = geoctl(&db, &env, &["queue", "sync"]).success();
    assert!(again.stderr.contains("eu-west: unchanged"), "{}", again.stderr);

    // A scheduler whose current run was lost would never fire again: sync re-adds it.
    let runs = next_runs(&redis, "us-east");
    assert_eq!(runs.len(), 1, "{runs:?}");
    redis.cmd::<()>(&["LREM", "bull:monitor-us-east:wait", "0", &runs[0]]);
    redis.cmd::<()>(&["DEL", &format!("bull:monitor-us-east:{}", runs[0])]);
    let run = geoctl(&db, &env, &["queue", "sync", "--region", "us-east"]).success();
    assert!(run.stdout.contains("next run was lost"), "{}", run.stdout);
    assert_eq!(next_runs(&redis, "us-east").len(), 1);

    // A monitor deleted behind geoctl's back, and a changed interval.
    db.exec(&format!(
        "DELETE FROM monitors WHERE id = '{b}'; UPDATE monitors SET interval_seconds = 300 WHERE id = '{a}'"
    ));
    let run = geoctl(&db, &env, &["queue", "sync", "--region", "eu-west", "-o", "json"]).success();
    let changes = &run.json()[0]["changes"];
    let actions: Vec<(&str, &str)> = changes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["action"].as_str().unwrap(), c["detail"].as_str().unwrap()))
        .collect();
    assert!(actions.contains(&("remove", "monitor deleted")), "{actions:?}");
    assert!(actions.iter().any(|(a, d)| *a == "reschedule" && d.contains("5m")), "{actions:?}");
    assert_eq!(schedulers(&redis, "eu-west"), vec![format!("monitor-{a}")]);
    assert_eq!(scheduler(&redis, "eu-west", &format!("monitor-{a}"))["every"], "300000");
}

#[test]
fn queue_status_counts_and_actions() {
    let db = TestDb::migrated();
    let redis = TestRedis::new();
    let env = env_for(&redis, &["eu-west"]);
    create(&db, &env, "a", "eu-west");
    // Two waiting jobs, one failed, as BullMQ lays them out.
    for (id, ts) in [("w1", "1000"), ("w2", "2000")] {
        redis.cmd::<()>(&[
            "HSET",
            &format!("bull:monitor-eu-west:{id}"),
            "name",
            "execute-monitor",
            "data",
            "{}",
            "timestamp",
            ts,
            "delay",
            "0",
        ]);
        // At the right end, where BullMQ takes the next job: these waited longest.
        redis.cmd::<()>(&["RPUSH", "bull:monitor-eu-west:wait", id]);
    }
    redis.cmd::<()>(&[
        "HSET",
        "bull:monitor-eu-west:f1",
        "name",
        "execute-monitor",
        "data",
        "{}",
        "timestamp",
        "1",
        "attemptsMade",
        "3",
    ]);
    redis.cmd::<()>(&["ZADD", "bull:monitor-eu-west:failed", "1", "f1"]);
    redis.cmd::<()>(&[
        "HSET",
        "geoctl:agents:eu-west:agent-1",
        "id",
        "agent-1",
        "host",
        "h",
        "version",
        "0.1.0",
        "started_at",
        "2026-01-01T00:00:00Z",
        "jobs_done",
        "7",
    ]);
    redis.cmd::<()>(&["EXPIRE", "geoctl:agents:eu-west:agent-1", "30"]);

    let status = geoctl(&db, &env, &["queue", "status", "-o", "json"]).success().json();
    let entries = status.as_array().unwrap();
    assert_eq!(entries.len(), 3, "one entry per active region");
    let eu = entries.iter().find(|e| e["region"] == "eu-west").unwrap();
    assert_eq!(eu["reachable"], true);
    // w1, w2, and the scheduler's first run: delayed by its spread, unless that is already over.
    let due = first_run_due(&redis, "eu-west");
    assert_eq!(eu["counts"]["waiting"], 2 + due);
    assert_eq!(eu["counts"]["failed"], 1);
    assert_eq!(eu["counts"]["delayed"], 1 - due);
    assert_eq!(eu["schedulers"], 1);
    assert_eq!(eu["live_agents"], 1);
    assert_eq!(eu["agents"][0]["jobs_done"], 7);
    assert_eq!(eu["schedule_matches"], true);
    assert!(eu["oldest_waiting_seconds"].as_f64().unwrap() > 1000.0);
    let us = entries.iter().find(|e| e["region"] == "us-east").unwrap();
    assert_eq!(us["configured"], false);
    assert!(us["error"].as_str().unwrap().contains("REDIS_URL_US_EAST"));

    geoctl(&db, &env, &["queue", "pause", "--region", "eu-west"]).success();
    let again = geoctl(&db, &env, &["queue", "pause", "--region", "eu-west", "-o", "json"]).success().json();
    assert_eq!(again[0]["changed"], false);
    let eu = &geoctl(&db, &env, &["queue", "status", "--region", "eu-west", "-o", "json"]).success().json()[0];
    assert_eq!(eu["is_paused"], true);
    // BullMQ 5 keeps a paused queue's jobs in `wait` (older servers moved them to `paused`).
    let parked = eu["counts"]["waiting"].as_u64().unwrap() + eu["counts"]["paused"].as_u64().unwrap();
    assert_eq!(parked, 2 + due as u64);
    geoctl(&db, &env, &["queue", "resume", "--region", "eu-west"]).success();

    // Destructive ones ask; without a terminal they need --yes and change nothing.
    geoctl(&db, &env, &["queue", "drain", "--region", "eu-west"]).usage_error(&["--yes"]);
    let dry = geoctl(&db, &env, &["queue", "drain", "--region", "eu-west", "--dry-run", "-o", "json"]).success().json();
    assert_eq!(dry[0]["jobs"], 2, "the scheduler's current run is not drained");
    assert_eq!(redis.cmd::<i64>(&["LLEN", "bull:monitor-eu-west:wait"]), 2 + due);
    geoctl(&db, &env, &["queue", "drain", "--region", "eu-west", "--yes"]).success();
    assert_eq!(redis.cmd::<i64>(&["LLEN", "bull:monitor-eu-west:wait"]), due);
    assert_eq!(schedulers(&redis, "eu-west").len(), 1, "drain keeps the schedulers");
    let again = geoctl(&db, &env, &["queue", "drain", "--region", "eu-west", "--yes", "-o", "json"]).success().json();
    assert_eq!(again[0]["changed"], false);

    geoctl(&db, &env, &["queue", "retry-failed", "--region", "eu-west"]).success();
    assert_eq!(redis.cmd::<i64>(&["ZCARD", "bull:monitor-eu-west:failed"]), 0);
    assert_eq!(redis.cmd::<i64>(&["LLEN", "bull:monitor-eu-west:wait"]), 1 + due);

    // Finished jobs older than the grace period go, recent ones stay.
    let now = chrono::Utc::now().timestamp_millis().to_string();
    for (id, finished) in [("c1", "1000"), ("c2", now.as_str())] {
        redis.cmd::<()>(&[
            "HSET",
            &format!("bull:monitor-eu-west:{id}"),
            "name",
            "execute-monitor",
            "data",
            "{}",
            "timestamp",
            finished,
            "finishedOn",
            finished,
        ]);
        redis.cmd::<()>(&["ZADD", "bull:monitor-eu-west:completed", finished, id]);
    }
    geoctl(&db, &env, &["queue", "clean", "--region", "eu-west", "--older-than", "1h"]).usage_error(&["--yes"]);
    let dry =
        geoctl(&db, &env, &["queue", "clean", "--region", "eu-west", "--older-than", "1h", "--dry-run", "-o", "json"]);
    assert_eq!(dry.success().json()[0]["jobs"], 1);
    geoctl(&db, &env, &["queue", "clean", "--region", "eu-west", "--older-than", "1h", "--yes"]).success();
    let left: Vec<String> = redis.cmd(&["ZRANGE", "bull:monitor-eu-west:completed", "0", "-1"]);
    assert_eq!(left, vec!["c2".to_string()]);
}

/// The actions cover a region's browser queue when it is in use, and only then: pausing a region
/// that never ran a journey leaves no browser queue behind.
#[test]
fn queue_actions_cover_the_browser_queue_in_use_and_create_none() {
    let db = TestDb::migrated();
    let redis = TestRedis::new();
    let env = env_for(&redis, &["eu-west", "us-east"]);
    // eu-west's browser queue holds a waiting journey and a failed one; us-east has none.
    redis.cmd::<()>(&["HSET", "bull:browser-eu-west:j1", "name", "execute-monitor", "data", "{}", "timestamp", "1"]);
    redis.cmd::<()>(&["RPUSH", "bull:browser-eu-west:wait", "j1"]);
    redis.cmd::<()>(&["HSET", "bull:browser-eu-west:j2", "name", "execute-monitor", "data", "{}", "timestamp", "1"]);
    redis.cmd::<()>(&["ZADD", "bull:browser-eu-west:failed", "1", "j2"]);

    let paused = geoctl(&db, &env, &["queue", "pause", "-o", "json"]).success().json();
    let mut queues: Vec<(&str, &str, bool)> = paused
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["region"] != "ap-south")
        .map(|o| (o["region"].as_str().unwrap(), o["queue"].as_str().unwrap(), o["changed"].as_bool().unwrap()))
        .collect();
    queues.sort();
    assert_eq!(
        queues,
        vec![
            ("eu-west", "browser-eu-west", true),
            ("eu-west", "monitor-eu-west", true),
            ("us-east", "monitor-us-east", true)
        ],
        "{paused}"
    );
    let browser_paused: Option<String> = redis.cmd(&["HGET", "bull:browser-eu-west:meta", "paused"]);
    assert_eq!(browser_paused.as_deref(), Some("1"), "BullMQ's paused flag on the browser queue");
    let stray: Vec<String> = redis.cmd(&["KEYS", "bull:browser-us-east:*"]);
    assert!(stray.is_empty(), "no browser queue made for us-east: {stray:?}");

    let retried = geoctl(&db, &env, &["queue", "retry-failed", "--region", "eu-west", "-o", "json"]).success().json();
    assert_eq!(retried[1]["queue"], "browser-eu-west");
    assert_eq!(retried[1]["jobs"], 1);
    assert_eq!(redis.cmd::<i64>(&["ZCARD", "bull:browser-eu-west:failed"]), 0);
    let resumed = geoctl(&db, &env, &["queue", "resume", "--region", "eu-west"]).success();
    assert!(resumed.stdout.contains("browser-eu-west"), "{}", resumed.stdout);
    let browser_paused: Option<String> = redis.cmd(&["HGET", "bull:browser-eu-west:meta", "paused"]);
    assert_eq!(browser_paused, None);
}

#[test]
fn bad_redis_settings_are_named_and_no_password_is_printed() {
    let db = TestDb::migrated();
    let redis = TestRedis::new();
    // No Redis for the region asked for: bad input, the variable to set.
    let none: Vec<(String, String)> = Vec::new();
    geoctl(&db, &none, &["queue", "sync", "--region", "eu-west"]).usage_error(&["eu-west", "REDIS_URL_EU_WEST"]);
    geoctl(&db, &none, &["queue", "pause", "--region", "nope"]).usage_error(&["unknown region `nope`"]);
    let bad_url = vec![("REDIS_URL_EU_WEST".to_string(), "http://127.0.0.1:1/0".to_string())];
    geoctl(&db, &bad_url, &["queue", "sync", "--region", "eu-west"])
        .usage_error(&["REDIS_URL_EU_WEST", "not a Redis URL"]);

    // A wrong password: a failure (exit 1) naming region and variable, never the password.
    let user = format!("geoctl-test-{}", uuid::Uuid::new_v4().simple());
    redis.cmd::<()>(&["ACL", "SETUSER", &user, "on", ">right-pass", "~*", "&*", "+@all"]);
    let env = vec![
        ("REDIS_URL_EU_WEST".to_string(), redis.url_with_user(&user, None)),
        ("REDIS_PASSWORD_EU_WEST".to_string(), "wrong-pass".to_string()),
    ];
    let run = geoctl(&db, &env, &["queue", "sync", "--region", "eu-west"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("eu-west") && run.stderr.contains("REDIS_PASSWORD_EU_WEST"), "{}", run.stderr);
    assert!(!run.stderr.contains("wrong-pass") && !run.stdout.contains("wrong-pass"), "{}", run.stderr);
    // The right one from a file works.
    let file = db.dir().join("redis-password");
    std::fs::write(&file, "right-pass\n").unwrap();
    let env = vec![
        ("REDIS_URL_EU_WEST".to_string(), redis.url_with_user(&user, None)),
        ("REDIS_PASSWORD_EU_WEST_FILE".to_string(), file.to_str().unwrap().to_string()),
    ];
    geoctl(&db, &env, &["queue", "sync", "--region", "eu-west"]).success();
    redis.cmd::<()>(&["ACL", "DELUSER", &user]);

    // Unreachable: exit 1 naming region and endpoint, password masked, in seconds.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let env = vec![("REDIS_URL_EU_WEST".to_string(), format!("redis://:sekrit@127.0.0.1:{closed}/0"))];
    let run = geoctl(&db, &env, &["queue", "sync", "--region", "eu-west"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("eu-west") && run.stderr.contains(&format!("127.0.0.1:{closed}")), "{}", run.stderr);
    assert!(!run.stderr.contains("sekrit"), "{}", run.stderr);
}

/// Runs a Python snippet with PyPI `bullmq` importable (the venv
/// `scripts/test` prepares) and returns its stdout; `None`, said loudly, when
/// that venv is missing and the run does not require it
/// (`GEOCTL_TEST_PYTHON_BULLMQ=required`, set by `scripts/test` as root).
///
/// Hook for the agent's half of the interop test ("a job Python adds is run by
/// `geoctl agent`"): add a job with `Queue(name, {"connection": url}).add(…)`
/// through this, run the agent, and check the result row.
pub(crate) fn python_bullmq(script: &str, args: &[&str]) -> Option<String> {
    let Ok(python) = std::env::var("GEOCTL_TEST_PYTHON") else {
        crate::support::requirement_unmet(
            "GEOCTL_TEST_PYTHON_BULLMQ",
            "PyPI bullmq is not installed (GEOCTL_TEST_PYTHON is unset; see scripts/test's output for why)",
        );
        return None;
    };
    let out = std::process::Command::new(python).arg("-c").arg(script).args(args).output().expect("run python");
    assert!(out.status.success(), "python failed:\n{}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

const PYTHON_READ: &str = r#"
import asyncio, json, sys
from bullmq import Queue

async def main(url, name):
    queue = Queue(name, {"connection": url})
    counts = await queue.getJobCounts()
    schedulers = await queue.getJobSchedulers(0, -1, True)
    print(json.dumps({"counts": counts, "schedulers": schedulers}, default=str))
    await queue.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"#;

#[test]
fn bullmq_python_sees_geoctls_schedulers_and_the_same_counts() {
    let db = TestDb::migrated();
    let redis = TestRedis::new();
    let env = env_for(&redis, &["eu-west"]);
    let (a, _) = create(&db, &env, "a", "eu-west");
    let (b, _) = create(&db, &env, "b", "eu-west");
    geoctl(&db, &env, &["monitor", "regions", "set", "b", "--region", "eu-west", "--schedule", "*/5 * * * *"])
        .success();
    // Jobs in other states too, added with Python itself.
    let add = r#"
import asyncio, sys
from bullmq import Queue
async def main(url, name):
    queue = Queue(name, {"connection": url})
    for i in range(3):
        await queue.add("execute-monitor", {"monitorId": "x", "i": i})
    await queue.add("execute-monitor", {"monitorId": "y"}, {"priority": 5})
    await queue.close()
asyncio.run(main(sys.argv[1], sys.argv[2]))
"#;
    if python_bullmq(add, &[&redis.url, "monitor-eu-west"]).is_none() {
        return;
    }
    let seen: Value =
        serde_json::from_str(&python_bullmq(PYTHON_READ, &[&redis.url, "monitor-eu-west"]).unwrap()).unwrap();
    let mut ids: Vec<&str> =
        seen["schedulers"].as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap()).collect();
    ids.sort();
    let mut expected = [format!("monitor-{a}"), format!("monitor-{b}")];
    expected.sort();
    assert_eq!(ids, expected.iter().map(String::as_str).collect::<Vec<_>>());
    let by_key = |k: &str| seen["schedulers"].as_array().unwrap().iter().find(|s| s["key"] == k).unwrap().clone();
    let sa = by_key(&format!("monitor-{a}"));
    assert_eq!(sa["name"], "execute-monitor");
    assert_eq!(sa["every"].as_u64(), Some(60_000), "{sa}");
    assert_eq!(sa["template"]["data"]["monitorId"], a.as_str(), "{sa}");
    assert_eq!(by_key(&format!("monitor-{b}"))["pattern"], "*/5 * * * *");

    let status = geoctl(&db, &env, &["queue", "status", "--region", "eu-west", "-o", "json"]).success().json();
    let ours = &status[0]["counts"];
    let theirs = seen["counts"].as_object().unwrap();
    assert!(!theirs.is_empty());
    for (state, count) in theirs {
        assert_eq!(&ours[state.as_str()], count, "`{state}`: geoctl {ours} vs BullMQ Python {}", seen["counts"]);
    }
    // Three added by Python; the cron scheduler's run is delayed, and so is the `every` one's by
    // its spread (unless that is already over).
    let due = first_run_due(&redis, "eu-west");
    assert_eq!(ours["waiting"], 3 + due);
    assert_eq!(ours["prioritized"], 1);
    assert_eq!(ours["delayed"], 2 - due);
    assert_eq!(status[0]["schedulers"], 2);
}

/// A BullMQ Python worker that waits for jobs: prints `waiting`, then one JSON line, the first job
/// it took (`{"id", "taken_ms"}`) or `null` after the timeout.
const PYTHON_WORKER: &str = r#"
import asyncio, json, sys, time
from bullmq import Worker

async def main(url, name, timeout):
    taken = asyncio.get_running_loop().create_future()
    async def process(job, token):
        if not taken.done():
            taken.set_result({"id": job.id, "taken_ms": int(time.time() * 1000)})
        return "ok"
    worker = Worker(name, process, {"connection": url})
    print("waiting", flush=True)
    try:
        print(json.dumps(await asyncio.wait_for(taken, timeout)), flush=True)
    except asyncio.TimeoutError:
        print("null", flush=True)
    await worker.close()

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
"#;

/// A Python worker started before `monitor create` is already blocked waiting on the queue's
/// marker. BullMQ ≥ 5 wakes it through that key when a delayed job is added (`ZADD marker <due ms>
/// "1"`, which geoctl writes too, through the crate's addJobScheduler); the worker then sleeps until
/// the run is due. It must take the first run within a few seconds of its time. (It took nothing
/// in 35 s from a 10 s scheduler with redis-py 8, whose 5 s socket timeout cuts that sleep: see
/// scripts/lib/python_bullmq.sh.)
#[test]
fn a_waiting_python_worker_takes_geoctls_scheduled_run_when_it_is_due() {
    use std::io::BufRead;
    let db = TestDb::migrated();
    let redis = TestRedis::new();
    let env = env_for(&redis, &["eu-west"]);
    let Ok(python) = std::env::var("GEOCTL_TEST_PYTHON") else {
        panic!("PyPI bullmq is not installed (GEOCTL_TEST_PYTHON unset): run `scripts/test`, which installs it");
    };
    let mut worker = std::process::Command::new(python)
        .arg("-c")
        .arg(PYTHON_WORKER)
        .args([redis.url.as_str(), "monitor-eu-west", "40"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the Python worker");
    let mut lines = std::io::BufReader::new(worker.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "waiting");
    // Blocked on the marker (BZPOPMIN) before the scheduler exists.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !redis.cmd::<String>(&["CLIENT", "LIST"]).contains("cmd=bzpopmin") {
        assert!(std::time::Instant::now() < deadline, "the Python worker never waited on the queue");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let run = geoctl(
        &db,
        &env,
        &[
            "monitor",
            "create",
            "--name",
            "soon",
            "--type",
            "http",
            "--target",
            "https://example.com/",
            "--every",
            "10s",
            "--regions",
            "eu-west",
        ],
    );
    run.success();
    let jobs = next_runs(&redis, "eu-west");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let due: i64 = jobs[0].rsplit(':').next().unwrap().parse().unwrap();

    let taken: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let _ = worker.wait();
    assert!(!taken.is_null(), "the waiting Python worker never took the run due at {due} (ms)");
    assert_eq!(taken["id"], jobs[0].as_str());
    let late = taken["taken_ms"].as_i64().unwrap() - due;
    assert!(late < 3_000, "the waiting Python worker took the run {late} ms after it was due");

    // With no worker waiting, the marker of the next added scheduler's run stays for the next
    // worker to find: what BullMQ itself writes.
    let run = geoctl(
        &db,
        &env,
        &[
            "monitor",
            "create",
            "--name",
            "later",
            "--type",
            "http",
            "--target",
            "https://example.com/",
            "--every",
            "1h",
            "--regions",
            "eu-west",
            "-o",
            "json",
        ],
    );
    let id = run.success().json()["id"].as_str().unwrap().to_string();
    let delayed: Vec<String> = redis.cmd(&["ZRANGE", "bull:monitor-eu-west:delayed", "0", "-1"]);
    assert!(delayed.iter().any(|j| j.contains(&id)), "the new scheduler's run is delayed: {delayed:?}");
    // The member `1` at the due time of the first delayed run (the queue's, whoever added it).
    let first_due = delayed.iter().map(|j| j.rsplit(':').next().unwrap().parse::<i64>().unwrap()).min().unwrap();
    let marker: Option<String> = redis.cmd(&["ZSCORE", "bull:monitor-eu-west:marker", "1"]);
    assert_eq!(marker, Some(first_due.to_string()), "the delay marker");
}
