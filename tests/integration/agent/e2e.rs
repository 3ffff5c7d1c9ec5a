//! Three regions, one agent each: a monitor runs in exactly its regions and
//! follows `monitor regions remove` and `monitor delete`.

use std::time::Duration;

use super::harness::{wait_until, Agent, Redis, Runs, Target};
use crate::support::TestDb;

/// (code, variable suffix, Redis database): the regions share one Redis, as they may.
const REGIONS: [(&str, &str, u8); 3] =
    [("us-east", "US_EAST", 1), ("eu-west", "EU_WEST", 2), ("ap-south", "AP_SOUTH", 3)];

#[test]
fn monitors_run_in_exactly_their_regions_and_follow_changes() {
    let db = TestDb::migrated();
    let redis = Redis::start();
    let target = Target::start();
    let redis_env: Vec<(String, String)> =
        REGIONS.iter().map(|(_, suffix, n)| (format!("REDIS_URL_{suffix}"), redis.url(*n))).collect();
    let env: Vec<(&str, &str)> = redis_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut agent_env = env.clone();
    agent_env.push(("DATABASE_URL", &db.url));
    let agents: Vec<Agent> =
        REGIONS.iter().map(|(code, ..)| Agent::start(code, &agent_env, &db.dir().join(code), &[])).collect();

    let url = target.url();
    let created = db
        .geoctl_with(
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
                "1s",
                "--timeout",
                "1s",
                "--force",
                "--regions",
                "eu-west,ap-south",
                "-o",
                "json",
            ],
            &env,
        )
        .success()
        .json();
    let id = created["id"].as_str().unwrap().to_string();
    let count = |region: &str| -> i64 {
        db.scalar(&format!(
            "SELECT count(*) FROM monitor_results WHERE monitor_id = '{id}' AND execution_region = '{region}'"
        ))
        .parse()
        .unwrap()
    };
    wait_until("results from eu-west and ap-south", Duration::from_secs(30), || {
        count("eu-west") >= 3 && count("ap-south") >= 3
    });
    assert_eq!(count("us-east"), 0, "us-east is not one of the monitor's regions");

    db.geoctl_with(&["monitor", "regions", "remove", "web", "ap-south"], &env).success();
    // A run already started in ap-south may still land; after that, nothing. Time is measured
    // in eu-west's runs (one a second), not in sleeps: two runs for a straggler to land, then
    // ap-south must stay still while eu-west goes on for two more.
    let eu_west = count("eu-west");
    wait_until("two more eu-west runs", Duration::from_secs(10), || count("eu-west") >= eu_west + 2);
    let (ap_south, eu_west) = (count("ap-south"), count("eu-west"));
    wait_until("eu-west to go on", Duration::from_secs(10), || count("eu-west") >= eu_west + 2);
    assert_eq!(count("ap-south"), ap_south, "ap-south results stop once the region is removed");
    assert_eq!(redis.cli(3, &["ZCARD", "bull:monitor-ap-south:repeat"]), "0", "ap-south's scheduler is gone");

    for (region, n) in [("eu-west", 2), ("ap-south", 3)] {
        let runs = Runs::of(&db.url, &id, region);
        assert!(runs.doubled.is_empty(), "{region}: runs recorded twice: {:?}", runs.doubled);
        let missing = runs.missing(&redis, n, region, &id);
        assert!(missing.is_empty(), "{region}: completed runs without a result: {missing:?}");
    }

    db.geoctl_with(&["monitor", "delete", "web", "--yes"], &env).success();
    wait_until("the monitor's schedulers gone in every region", Duration::from_secs(10), || {
        REGIONS.iter().all(|(code, _, n)| redis.cli(*n, &["ZCARD", &format!("bull:monitor-{code}:repeat")]) == "0")
    });
    for agent in agents {
        let log = agent.log.clone();
        assert_eq!(agent.terminate(Duration::from_secs(20)), 0, "{}", std::fs::read_to_string(log).unwrap());
    }
}

/// The other half of the interop test in `queue.rs`: a job that BullMQ's own
/// Python client adds, in the seed's job format, is run by `geoctl agent`,
/// recorded once under its job id, and seen as completed by Python.
#[test]
fn a_job_added_by_python_bullmq_is_run_and_recorded_once() {
    let db = TestDb::migrated();
    let redis = Redis::start();
    let target = Target::start();
    let redis_url = redis.url(4);
    let env = [("REDIS_URL_EU_WEST", redis_url.as_str())];
    let url = target.url();
    db.geoctl_with(
        &[
            "monitor",
            "create",
            "--name",
            "py",
            "--type",
            "http",
            "--target",
            &url,
            "--every",
            "1h",
            "--regions",
            "eu-west",
        ],
        &env,
    )
    .success();
    let id = db.scalar("SELECT id::text FROM monitors WHERE name = 'py'");
    let add = r#"
import asyncio, sys
from bullmq import Queue
async def main(url, monitor, target):
    queue = Queue("monitor-eu-west", {"connection": url})
    data = {"monitorId": monitor, "type": "http_request", "target": target, "frequencyMinutes": 60,
            "region": "eu-west", "executionRegion": "eu-west", "createdAt": "2026-11-29T00:00:00Z"}
    job = await queue.add("execute-monitor", data, {"jobId": "from-python-1", "attempts": 3})
    print(job.id)
    await queue.close()
asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
"#;
    let Some(added) = crate::queue::python_bullmq(add, &[&redis_url, &id, &url]) else { return };
    assert_eq!(added.trim(), "from-python-1");

    let mut agent_env = env.to_vec();
    agent_env.push(("DATABASE_URL", &db.url));
    let agent = Agent::start("eu-west", &agent_env, &db.dir().join("spool"), &[]);
    let key = format!("{id}:eu-west:job:from-python-1");
    let rows = || -> i64 {
        db.scalar(&format!("SELECT count(*) FROM monitor_results WHERE run_key = '{key}' AND is_up")).parse().unwrap()
    };
    wait_until("the Python job's result", Duration::from_secs(30), || rows() >= 1);
    let state = r#"
import asyncio, sys
from bullmq import Queue
async def main(url):
    queue = Queue("monitor-eu-west", {"connection": url})
    print(await queue.getJobState("from-python-1"))
    await queue.close()
asyncio.run(main(sys.argv[1]))
"#;
    wait_until("BullMQ Python sees the job completed", Duration::from_secs(10), || {
        crate::queue::python_bullmq(state, &[&redis_url]).unwrap().trim() == "completed"
    });
    let log = agent.log.clone();
    assert_eq!(agent.terminate(Duration::from_secs(20)), 0, "{}", std::fs::read_to_string(log).unwrap());
    assert_eq!(rows(), 1, "the job is recorded exactly once");
    assert!(target.hits() >= 1);
}

/// The agent keeps the definitions it read and reads one again when PostgreSQL says it changed,
/// whoever changed it: here plain SQL, as the existing app writes, on `monitors` and then on
/// `monitor_regions`. Each change takes effect within a run or two, and unchanged runs take
/// their definition from the cache.
#[test]
fn definitions_come_from_the_cache_until_the_database_says_they_changed() {
    let db = TestDb::migrated();
    let redis = Redis::start();
    let (first, second) = (Target::start(), Target::start());
    let redis_url = redis.url(1);
    let env = [("REDIS_URL_US_EAST", redis_url.as_str())];
    let agent_env = [("REDIS_URL_US_EAST", redis_url.as_str()), ("DATABASE_URL", db.url.as_str())];
    let agent = Agent::start("us-east", &agent_env, &db.dir().join("us-east"), &[]);
    let url = first.url();
    let create = ["monitor", "create", "--name", "web", "--type", "http", "--target", &url, "--every", "1s", "--force"];
    db.geoctl_with(&[&create[..], &["--timeout", "1s", "--regions", "us-east"]].concat(), &env).success();
    wait_until("four checks of the first target", Duration::from_secs(30), || first.hits() >= 4);
    let cached = r#"geoctl_definition_lookups_total{region="us-east",source="cache"}"#;
    let read = r#"geoctl_definition_lookups_total{region="us-east",source="database"}"#;
    let (hits, reads) = (agent.metric(cached).unwrap(), agent.metric(read).unwrap());
    assert!(hits >= 2.0 && reads <= 2.0, "runs should use the cache: {hits} from it, {reads} read");

    db.exec(&format!("UPDATE monitors SET target = '{}' WHERE name = 'web'", second.url()));
    wait_until("the second target checked", Duration::from_secs(5), || second.hits() >= 2);
    // Two more runs of the new definition, and none of them asked the first target.
    let (before, checked) = (first.hits(), second.hits());
    wait_until("two more runs", Duration::from_secs(5), || second.hits() >= checked + 2);
    assert_eq!(first.hits(), before, "the old definition is no longer used");
    assert!(agent.metric(read).unwrap() > reads, "the changed definition was read again");

    // A region override the schedule does not depend on (so only the run can notice it): a
    // timeout shorter than the target's answer turns the next runs down.
    second.delay_ms.store(300, std::sync::atomic::Ordering::SeqCst);
    let down = || -> i64 { db.scalar("SELECT count(*) FROM monitor_results WHERE NOT is_up").parse().unwrap() };
    assert_eq!(down(), 0);
    db.exec("UPDATE monitor_regions SET timeout_ms = 100");
    wait_until("a run with the region's new timeout", Duration::from_secs(5), || down() >= 2);
    assert_eq!(agent.terminate(Duration::from_secs(15)), 0);
}
