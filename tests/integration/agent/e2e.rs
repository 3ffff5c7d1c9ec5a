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
    // A run already started in ap-south may still land; after that, nothing.
    std::thread::sleep(Duration::from_secs(3));
    let (ap_south, eu_west) = (count("ap-south"), count("eu-west"));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(count("ap-south"), ap_south, "ap-south results stop once the region is removed");
    assert!(count("eu-west") >= eu_west + 2, "eu-west goes on");
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
