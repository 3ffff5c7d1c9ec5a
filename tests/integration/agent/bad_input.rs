//! An agent that cannot run says why, with the variable to set, and writes nothing.

use super::harness::Redis;
use crate::support::TestDb;

#[test]
fn unknown_region_missing_redis_and_wrong_password_are_refused_clearly() {
    let db = TestDb::migrated();
    let spool = db.dir().join("spool");
    let spool = spool.to_str().unwrap();
    let agent =
        |region: &'static str| vec!["agent", "--region", region, "--spool-dir", spool, "--listen", "127.0.0.1:0"];

    db.geoctl(&agent("nope")).usage_error(&["unknown region `nope`", "eu-west"]);
    db.geoctl(&["agent", "--spool-dir", spool]).usage_error(&["--region", "WORKER_REGION"]);
    db.geoctl(&agent("eu-west")).usage_error(&["eu-west", "REDIS_URL_EU_WEST"]);

    let redis = Redis::with_password("right-horse-battery");
    let url = redis.url(0);
    let run =
        db.geoctl_with(&agent("eu-west"), &[("REDIS_URL_EU_WEST", &url), ("REDIS_PASSWORD_EU_WEST", "wr0ng-s3cret")]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("eu-west") && run.stderr.contains("REDIS_PASSWORD_EU_WEST"), "{}", run.stderr);
    assert!(!run.stderr.contains("wr0ng-s3cret"), "the password is never shown:\n{}", run.stderr);
    assert_exit_logged(&run.stderr, "refused the password");

    // Unreachable at start: the same, with the reason.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let run = db.geoctl_with(&agent("eu-west"), &[("REDIS_URL_EU_WEST", &format!("redis://127.0.0.1:{closed}/0"))]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_exit_logged(&run.stderr, "unreachable");

    assert_eq!(db.count("monitor_results"), 0);
    assert!(!std::path::Path::new(spool).exists(), "no spool created");
    assert_eq!(redis.cli(0, &["DBSIZE"]), "0", "nothing written to Redis");
}

/// The agent's last log line says, at error level, why it exits.
pub(super) fn assert_exit_logged(log: &str, reason: &str) {
    let last = log.lines().rev().find(|l| l.contains("agent exiting:"));
    assert!(
        last.is_some_and(|l| l.contains(" ERROR ") && l.contains(reason)),
        "no error-level `agent exiting: …{reason}…` line in the agent's log:\n{log}"
    );
}
