//! The fault drills. Each counts results per scheduled run: none recorded
//! twice, none missing except the runs scheduled while Redis was gone.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::harness::{active_job, free_port, wait_until, Agent, Postgres, Redis, Runs, Target};
use crate::support::{geoctl_in, TestDb};

pub(super) const QUEUE: &str = "monitor-eu-west";

/// Creates an HTTP monitor on `target` running in eu-west; returns its id.
fn create_monitor(dir: &Path, env: &[(&str, &str)], name: &str, target: &Target, every: &str) -> String {
    let url = target.url();
    let run = geoctl_in(
        dir,
        &[
            "monitor",
            "create",
            "--name",
            name,
            "--type",
            "http",
            "--target",
            &url,
            "--every",
            every,
            "--timeout",
            every,
            "--force",
            "--regions",
            "eu-west",
            "-o",
            "json",
        ],
        env,
    )
    .success();
    run.json()["id"].as_str().unwrap().to_string()
}

pub(super) fn run_key_of(monitor: &str, job_id: &str) -> String {
    format!("{monitor}:eu-west:{}", job_id.rsplit(':').next().unwrap())
}

pub(super) fn rows_with_key(url: &str, key: &str) -> usize {
    super::harness::rows(url, &format!("SELECT id::text FROM monitor_results WHERE run_key = '{key}'")).len()
}

#[test]
fn sigkill_mid_job_the_run_is_recorded_once_by_the_next_agent() {
    let db = TestDb::migrated();
    let redis = Redis::start();
    let target = Target::start();
    target.delay_ms.store(1500, Ordering::SeqCst);
    let redis_url = redis.url(0);
    let env = [("DATABASE_URL", db.url.as_str()), ("REDIS_URL_EU_WEST", redis_url.as_str())];
    let spool = db.dir().join("spool");
    let first = Agent::start("eu-west", &env, &spool, &[]);
    let id = create_monitor(&db.dir(), &env, "slow", &target, "2s");

    let job = active_job(&redis, 0, QUEUE);
    wait_until("the check to reach the target", Duration::from_secs(10), || target.hits() > 0);
    first.kill();
    target.delay_ms.store(0, Ordering::SeqCst);
    let second = Agent::start("eu-west", &env, &spool, &[]);
    let key = run_key_of(&id, &job);
    let killed_at: i64 = job.rsplit(':').next().unwrap().parse().unwrap();
    wait_until("the killed run to be recorded", Duration::from_secs(20), || rows_with_key(&db.url, &key) == 1);
    // The operator sees the death: the agent whose stall check found the killed run counts it.
    assert_eq!(second.metric("geoctl_jobs_stalled_total"), Some(1.0), "{}", second.log_text());
    assert!(second.log_text().contains(&job), "the stalled job is named in the log:\n{}", second.log_text());
    wait_until("two more runs", Duration::from_secs(20), || {
        Runs::of(&db.url, &id, "eu-west").scheduled.iter().filter(|t| **t > killed_at).count() >= 2
    });
    assert_eq!(second.terminate(Duration::from_secs(20)), 0);

    let runs = Runs::of(&db.url, &id, "eu-west");
    assert_eq!(rows_with_key(&db.url, &key), 1, "the killed run has exactly one result");
    assert!(runs.doubled.is_empty(), "recorded twice: {:?}", runs.doubled);
    let missing = runs.missing(&redis, 0, "eu-west", &id);
    assert!(missing.is_empty(), "completed runs without a result: {missing:?}");
}

#[test]
fn sigterm_finishes_the_runs_in_flight_records_them_and_exits_0() {
    let db = TestDb::migrated();
    let redis = Redis::start();
    let target = Target::start();
    target.delay_ms.store(1500, Ordering::SeqCst);
    let redis_url = redis.url(0);
    let env = [("DATABASE_URL", db.url.as_str()), ("REDIS_URL_EU_WEST", redis_url.as_str())];
    let agent = Agent::start("eu-west", &env, &db.dir().join("spool"), &[]);
    let id = create_monitor(&db.dir(), &env, "slow", &target, "2s");

    let job = active_job(&redis, 0, QUEUE);
    wait_until("the check to reach the target", Duration::from_secs(10), || target.hits() > 0);
    let log = agent.log.clone();
    let started = Instant::now();
    assert_eq!(agent.terminate(Duration::from_secs(20)), 0, "{}", std::fs::read_to_string(&log).unwrap());
    assert!(started.elapsed() < Duration::from_secs(10), "drained within the shutdown timeout");
    super::bad_input::assert_exit_logged(&std::fs::read_to_string(&log).unwrap(), "received SIGTERM");

    assert_eq!(rows_with_key(&db.url, &run_key_of(&id, &job)), 1, "the run in flight was recorded");
    assert_eq!(redis.cli(0, &["LLEN", &format!("bull:{QUEUE}:active")]), "0", "nothing left in flight");
    let completed = redis.cli(0, &["ZRANGE", &format!("bull:{QUEUE}:completed"), "0", "-1"]);
    assert!(!completed.is_empty());
    for job in completed.lines() {
        assert_eq!(rows_with_key(&db.url, &run_key_of(&id, job)), 1, "completed job {job} has one result");
    }
    let runs = Runs::of(&db.url, &id, "eu-west");
    assert!(runs.doubled.is_empty(), "recorded twice: {:?}", runs.doubled);
    assert!(redis.cli(0, &["ZCARD", &format!("bull:{QUEUE}:failed")]) == "0", "no job failed");
}

#[test]
fn redis_restart_not_ready_meanwhile_then_resynced_and_running_again() {
    let db = TestDb::migrated();
    let mut redis = Redis::start();
    let target = Target::start();
    let redis_url = redis.url(0);
    let env = [("DATABASE_URL", db.url.as_str()), ("REDIS_URL_EU_WEST", redis_url.as_str())];
    let agent = Agent::start("eu-west", &env, &db.dir().join("spool"), &[]);
    let id = create_monitor(&db.dir(), &env, "web", &target, "1s");
    let count = || Runs::of(&db.url, &id, "eu-west").scheduled.len();
    wait_until("first results", Duration::from_secs(20), || count() >= 2);
    assert!(agent.ready());

    let down_at = chrono::Utc::now().timestamp_millis();
    redis.down();
    wait_until("/health/ready to say 503", Duration::from_secs(10), || {
        agent.get("/health/ready").is_some_and(|(status, _)| status == 503)
    });
    std::thread::sleep(Duration::from_secs(2));
    // Back, empty: the schedule must come back from the database.
    redis.up();
    wait_until("/health/ready to say 200 again", Duration::from_secs(15), || agent.ready());
    let up_at = chrono::Utc::now().timestamp_millis();
    wait_until("the scheduler to be back", Duration::from_secs(15), || {
        redis.cli(0, &["ZCARD", &format!("bull:{QUEUE}:repeat")]) == "1"
    });
    let before = count();
    wait_until("runs after the restart", Duration::from_secs(20), || count() >= before + 3);
    let log = agent.log.clone();
    assert_eq!(agent.terminate(Duration::from_secs(20)), 0, "{}", std::fs::read_to_string(&log).unwrap());

    let runs = Runs::of(&db.url, &id, "eu-west");
    assert!(runs.doubled.is_empty(), "recorded twice: {:?}", runs.doubled);
    // Redis came back empty: what it completed since must all be recorded;
    // the runs due while it was gone never existed (the outage's gap).
    let missing = runs.missing(&redis, 0, "eu-west", &id);
    assert!(missing.is_empty(), "completed runs without a result: {missing:?}");
    let during: Vec<&i64> = runs.scheduled.iter().filter(|t| **t > down_at + 1000 && **t < up_at - 1000).collect();
    assert!(during.is_empty(), "nothing ran while Redis was down: {during:?}");
}

#[test]
fn postgres_down_results_spool_then_land_in_order_and_rows_of_deleted_monitors_are_set_aside() {
    let mut pg = Postgres::start();
    let redis = Redis::start();
    let target = Target::start();
    let home = tempfile::tempdir().unwrap();
    let (db_url, redis_url) = (pg.url(), redis.url(0));
    let env = [("DATABASE_URL", db_url.as_str()), ("REDIS_URL_EU_WEST", redis_url.as_str())];
    geoctl_in(home.path(), &["db", "migrate"], &env).success();
    let spool = home.path().join("spool");
    let agent = Agent::start("eu-west", &env, &spool, &[]);
    let keep = create_monitor(home.path(), &env, "keep", &target, "1s");
    let gone = create_monitor(home.path(), &env, "gone", &target, "1s");
    wait_until("first results", Duration::from_secs(20), || {
        Runs::of(&db_url, &keep, "eu-west").scheduled.len() >= 2
            && Runs::of(&db_url, &gone, "eu-west").scheduled.len() >= 2
    });

    pg.down();
    wait_until("/health/ready to say 503", Duration::from_secs(10), || {
        agent.get("/health/ready").is_some_and(|(status, _)| status == 503)
    });
    wait_until("results in the spool", Duration::from_secs(15), || {
        agent.metric("geoctl_spool_depth").is_some_and(|depth| depth >= 6.0)
    });
    // While no agent can reach it, `gone` is deleted: its spooled rows have no monitor any more.
    let side_port = free_port();
    pg.up_on(side_port);
    let side_url = format!("postgres://geoctl@127.0.0.1:{side_port}/postgres");
    geoctl_in(home.path(), &["monitor", "delete", "gone", "--yes"], &[("DATABASE_URL", &side_url), env[1]]).success();
    pg.down();
    pg.up();

    wait_until("the spool written back", Duration::from_secs(30), || {
        agent.metric("geoctl_spool_depth") == Some(0.0) && agent.ready()
    });
    let before = Runs::of(&db_url, &keep, "eu-west").scheduled.len();
    wait_until("live results again", Duration::from_secs(20), || {
        Runs::of(&db_url, &keep, "eu-west").scheduled.len() >= before + 2
    });
    let log = agent.log.clone();
    assert_eq!(agent.terminate(Duration::from_secs(20)), 0, "{}", std::fs::read_to_string(&log).unwrap());

    let runs = Runs::of(&db_url, &keep, "eu-west");
    assert!(runs.doubled.is_empty(), "recorded twice: {:?}", runs.doubled);
    let missing = runs.missing(&redis, 0, "eu-west", &keep);
    assert!(missing.is_empty(), "completed runs without a result: {missing:?}");
    let in_write_order: Vec<i64> = super::harness::rows(
        &db_url,
        &format!("SELECT split_part(run_key, ':', 3) FROM monitor_results WHERE monitor_id = '{keep}' ORDER BY id"),
    )
    .iter()
    .map(|r| r[0].parse().unwrap())
    .collect();
    assert!(in_write_order.windows(2).all(|w| w[0] < w[1]), "written in order: {in_write_order:?}");
    assert!(Runs::of(&db_url, &gone, "eu-west").scheduled.is_empty(), "no result of the deleted monitor landed");
    let rejected: Vec<String> = std::fs::read_dir(spool.join("rejected"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(!rejected.is_empty(), "the deleted monitor's spooled rows are set aside");
    assert!(rejected.iter().all(|r| r.contains("deleted") && r.contains(&gone)), "{rejected:?}");
}
