//! `--concurrency` bounds the checks an agent runs at once, not the jobs it
//! holds: a job whose result is waiting to be stored lends its check slot, so
//! the agent takes another job meanwhile, up to a bound.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::drills::{rows_with_key, run_key_of, QUEUE};
use super::harness::{wait_until, Agent, Redis, Runs, Target};
use crate::support::{block_on, TestDb};

/// Jobs one agent at `--concurrency 1` holds at most: the one in its check slot and the 64 that
/// lent theirs (`geoctl::agent::MOST_WAITING`).
const MOST_HELD: usize = 1 + geoctl::agent::MOST_WAITING;

#[test]
fn jobs_waiting_for_their_results_lend_their_check_slot_up_to_a_bound() {
    let db = TestDb::migrated();
    let redis = Redis::start();
    let target = Target::start();
    // Checks that take a moment, so two at once would overlap at the target.
    target.delay_ms.store(10, Ordering::SeqCst);
    let redis_url = redis.url(0);
    let env = [("DATABASE_URL", db.url.as_str()), ("REDIS_URL_EU_WEST", redis_url.as_str())];
    // More runs due every second than the agent can hold (a monitor has one job at a time).
    let mut file = String::from("monitors:\n");
    for i in 0..(MOST_HELD + 15) {
        let url = target.url();
        file +=
            &format!("  - {{name: m{i}, type: http, target: \"{url}\", every: 1s, timeout: 1s, force: true, regions: [eu-west]}}\n");
    }
    let path = db.dir().join("monitors.yaml");
    std::fs::write(&path, file).unwrap();
    db.geoctl_with(&["monitor", "apply", "-f", path.to_str().unwrap()], &env).success();
    let ids: Vec<String> =
        super::harness::rows(&db.url, "SELECT id::text FROM monitors").into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(ids.len(), MOST_HELD + 15);
    let agent = Agent::start("eu-west", &env, &db.dir().join("spool"), &["--concurrency", "1"]);
    let results = || -> usize { db.scalar("SELECT count(*) FROM monitor_results").parse().unwrap() };
    wait_until("the first results", Duration::from_secs(20), || results() >= 5);

    // Hold the results table for 3 s: every write waits, so jobs pile up waiting for their results.
    let url = db.url.clone();
    let hold = std::thread::spawn(move || {
        block_on(async {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            sqlx::raw_sql("BEGIN; LOCK TABLE monitor_results IN EXCLUSIVE MODE; SELECT pg_sleep(3); COMMIT")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        })
    });
    let active = format!("bull:{QUEUE}:active");
    let (mut most_held, started) = (0, Instant::now());
    while started.elapsed() < Duration::from_millis(2800) {
        most_held = most_held.max(redis.cli(0, &["LLEN", &active]).parse::<usize>().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    hold.join().unwrap();
    assert_eq!(
        most_held, MOST_HELD,
        "jobs held while their results waited: one in its check slot, the rest lending theirs"
    );
    assert_eq!(target.most_at_once.load(Ordering::SeqCst), 1, "never more than one check at once");

    let done = results();
    wait_until("the held results written", Duration::from_secs(10), || results() >= done + MOST_HELD);
    assert_eq!(agent.terminate(Duration::from_secs(20)), 0);
    assert_eq!(redis.cli(0, &["ZCARD", &format!("bull:{QUEUE}:failed")]), "0", "no job failed");
    for id in &ids {
        let runs = Runs::of(&db.url, id, "eu-west");
        assert!(runs.doubled.is_empty(), "recorded twice: {:?}", runs.doubled);
    }
    for job in redis.cli(0, &["ZRANGE", &format!("bull:{QUEUE}:completed"), "0", "-1"]).lines() {
        let monitor = ids.iter().find(|id| job.contains(id.as_str())).expect("a job of one of the monitors");
        assert_eq!(rows_with_key(&db.url, &run_key_of(monitor, job)), 1, "completed job {job} has one result");
    }
}
