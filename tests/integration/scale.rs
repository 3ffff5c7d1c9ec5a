//! Summaries that outlive pruning, and SQL that holds at scale: rebuilds day by
//! day, indexes left invalid by an interrupted build, batched deletes,
//! concurrent applies.

use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::{block_on, TestDb};

fn region_checks(report: &Value, code: &str) -> (i64, f64) {
    let regions = report["monitors"][0]["regions"].as_array().unwrap();
    let r = regions.iter().find(|r| r["region"] == code).unwrap_or_else(|| panic!("no {code} in {report}"));
    (r["checks"].as_i64().unwrap(), r["uptime_percentage"].as_f64().unwrap())
}

#[test]
fn a_report_over_pruned_days_reads_their_summaries_and_rebuild_leaves_them_alone() {
    let db = TestDb::migrated();
    db.geoctl(&["monitor", "create", "--name", "web", "--type", "http", "--target", "https://example.com"]).success();
    let id = db.scalar("SELECT id FROM monitors");
    // One check every two hours for 120 days, from two regions; one in ten down.
    db.exec(&format!(
        "INSERT INTO monitor_results (monitor_id, execution_region, checked_at, is_up, status, total_time, tcp_connect_time)
         SELECT '{id}', r, now() - interval '1 minute' - g * interval '2 hours', g % 10 <> 0,
                CASE WHEN g % 10 <> 0 THEN 'up' ELSE 'down' END, 50 + g % 13, 5
         FROM generate_series(0, 1439) g, (VALUES ('eu-west'), ('us-east')) v(r)"
    ));
    db.geoctl(&["summaries", "rebuild"]).success();
    let summaries = "SELECT string_agg(concat_ws('|', region_code, day, total_checks, successful_checks, \
                     round(p95_response_time::numeric, 6)), ';' ORDER BY region_code, day) FROM regional_monitor_summaries";
    let before = db.scalar(summaries);
    let full = db.geoctl(&["report", "--since", "120d", "-o", "json"]).success().json();
    let (checks, uptime) = region_checks(&full, "eu-west");
    assert_eq!(checks, 1440);
    assert!(full["summarized_until"].is_string(), "whole days from their summaries, pruned or not: {full}");

    db.geoctl(&["db", "prune", "--older-than", "90d", "--yes"]).success();
    let kept: i64 = db.count("monitor_results");
    assert!(kept < 2 * 1440 && kept > 2 * 1000, "{kept} results left");

    // The report still counts every check of the window: pruned days from their summaries.
    let after = db.geoctl(&["report", "--since", "120d", "-o", "json"]).success().json();
    assert_eq!(region_checks(&after, "eu-west"), (checks, uptime));
    assert_eq!(region_checks(&after, "us-east").0, 1440);
    assert!(after["summarized_until"].is_string(), "{after}");
    let series_checks: i64 = after["monitors"][0]["regions"][0]["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["checks"].as_i64().unwrap())
        .sum();
    assert_eq!(series_checks, 1440);
    // A window inside the kept results reads its whole days from their summaries too, and counts
    // as the results do.
    let recent = db.geoctl(&["report", "--since", "30d", "-o", "json"]).success().json();
    assert!(recent["summarized_since"].is_string(), "{recent}");
    assert_eq!(region_checks(&recent, "eu-west").0, 360);

    // A rebuild leaves pruned and partly pruned days as they were, and says so.
    let rebuild = db.geoctl(&["summaries", "rebuild"]).success();
    assert!(rebuild.stderr.contains("pruned day(s) as they are"), "{}", rebuild.stderr);
    assert_eq!(db.scalar(summaries), before);
    let cut = db.scalar("SELECT ((now() - interval '90 days') AT TIME ZONE 'UTC')::date");
    let old = db.scalar("SELECT ((now() - interval '100 days') AT TIME ZONE 'UTC')::date");
    for day in [&cut, &old] {
        db.geoctl(&["summaries", "rebuild", "--date", day]).usage_error(&["pruned", "kept as they are"]);
    }
    assert_eq!(db.scalar(summaries), before);
}

#[test]
fn rebuild_goes_day_by_day_past_the_lock_table() {
    let db = TestDb::migrated();
    // 400 monitors × 3 regions × 25 days = 30,000 summaries: one lock each in
    // one transaction overflowed the lock table (64 × max_connections slots).
    db.exec(
        "INSERT INTO monitor_results (monitor_id, execution_region, checked_at, is_up, status, total_time)
         SELECT md5('m' || m)::uuid, r, timestamptz '2026-10-01T12:00:00Z' + d * interval '1 day', true, 'up', 10 + m % 7
         FROM generate_series(1, 400) m, generate_series(0, 24) d, (VALUES ('us-east'), ('eu-west'), ('ap-south')) v(r)",
    );
    let run = db.geoctl(&["summaries", "rebuild", "-o", "json"]).success().json();
    assert_eq!(run["days"], 25);
    assert_eq!(run["summaries"], 30_000);
    assert_eq!(db.count("regional_monitor_summaries"), 30_000);
    assert_eq!(
        db.scalar(
            "SELECT bool_and(percentiles_exact AND p50_response_time IS NOT NULL) FROM regional_monitor_summaries"
        ),
        "true"
    );
}

fn index_state(db: &TestDb, name: &str) -> String {
    db.scalar(&format!(
        "SELECT concat_ws(',', i.indisvalid, i.indisunique) FROM pg_index i WHERE i.indexrelid = to_regclass('{name}')"
    ))
}

#[test]
fn an_index_left_invalid_by_an_interrupted_build_is_noticed_and_rebuilt() {
    // Before results were partitioned by day: a concurrent build is one on a plain table.
    let db = TestDb::migrated_before(20261206100001);
    assert_eq!(index_state(&db, "monitor_results_monitor_checked_idx"), "t,f");
    // As if `db migrate` had been interrupted while building it: the migration
    // unrecorded, an INVALID index under its name.
    db.exec(
        "DROP INDEX monitor_results_monitor_checked_idx;
         DELETE FROM _sqlx_migrations WHERE version = 20261129002005;
         INSERT INTO monitor_results (monitor_id, checked_at) VALUES
           ('00000000-0000-0000-0000-000000000001', '2026-11-01T00:00:00Z'),
           ('00000000-0000-0000-0000-000000000001', '2026-11-01T00:00:00Z')",
    );
    block_on(async {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let failed = sqlx::raw_sql(
            "CREATE UNIQUE INDEX CONCURRENTLY monitor_results_monitor_checked_idx ON monitor_results (monitor_id, checked_at)",
        )
        .execute(&pool)
        .await;
        assert!(failed.is_err(), "the build must fail on the duplicate");
    });
    assert_eq!(index_state(&db, "monitor_results_monitor_checked_idx"), "f,t");

    let status = db.geoctl(&["db", "status"]).success();
    assert!(status.stderr.contains("monitor_results_monitor_checked_idx"), "{}", status.stderr);
    assert!(status.stderr.contains("INVALID") && status.stderr.contains("geoctl db migrate"), "{}", status.stderr);
    let migrate = db.geoctl(&["db", "migrate", "-o", "json"]).success();
    assert!(migrate.stderr.contains("built again"), "{}", migrate.stderr);
    // The unrecorded one and every migration from the one the database stopped before, as the
    // migrations directory lists them.
    let mut later: Vec<i64> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.split('_').next()?.parse().ok())
        .filter(|v| *v == 20261129002005 || *v >= 20261206100001)
        .collect();
    later.sort();
    assert_eq!(migrate.json()["applied"], serde_json::json!(later));
    assert_eq!(index_state(&db, "monitor_results_monitor_checked_idx"), "t,f");

    // An applied migration's index found invalid is built again too, in place on the
    // partition it now belongs to.
    db.exec("DELETE FROM monitor_results; UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'monitor_results_run_key_key'::regclass");
    let migrate = db.geoctl(&["db", "migrate"]).success();
    assert!(migrate.stderr.contains("monitor_results_run_key_key"), "{}", migrate.stderr);
    assert_eq!(index_state(&db, "monitor_results_run_key_key"), "t,t");
    let status = db.geoctl(&["db", "status"]).success();
    assert!(!status.stderr.contains("INVALID"), "{}", status.stderr);
}

#[test]
fn geoctl_keeps_the_apps_indexes_and_drops_only_its_unused_ones() {
    let db = TestDb::empty();
    db.exec(
        "CREATE TABLE monitor_results (id bigserial PRIMARY KEY, monitor_id uuid, checked_at timestamptz,
                                       execution_region text, target_region text);
         CREATE INDEX idx_monitor_results_region ON monitor_results(monitor_id, execution_region);
         CREATE INDEX idx_monitor_results_time_region ON monitor_results(checked_at, execution_region);
         CREATE INDEX idx_monitor_results_target_region ON monitor_results(target_region, checked_at)",
    );
    db.geoctl(&["db", "migrate"]).success();
    let indexes = db.scalar(
        // The app's indexes stay with its rows, on the partition of the past.
        "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes \
         WHERE tablename IN ('monitor_results', 'monitor_results_past')",
    );
    for kept in [
        "idx_monitor_results_region",
        "idx_monitor_results_time_region",
        "idx_monitor_results_target_region",
        "monitor_results_monitor_checked_idx",
        "monitor_results_monitor_region_checked_idx",
        "monitor_results_run_key_key",
    ] {
        assert!(indexes.split(',').any(|i| i == kept), "{kept} missing from {indexes}");
    }
    for dropped in ["monitor_results_execution_region_checked_idx", "monitor_results_target_region_idx"] {
        assert!(!indexes.split(',').any(|i| i == dropped), "{dropped} still in {indexes}");
    }
}

#[test]
fn deleting_a_monitor_removes_its_results_in_batches() {
    let db = TestDb::migrated();
    db.geoctl(&["monitor", "create", "--name", "busy", "--type", "http", "--target", "https://example.com"]).success();
    db.geoctl(&["monitor", "create", "--name", "other", "--type", "http", "--target", "https://example.org"]).success();
    let id = db.scalar("SELECT id FROM monitors WHERE name = 'busy'");
    let other = db.scalar("SELECT id FROM monitors WHERE name = 'other'");
    // More than two batches of results, with their metric rows.
    db.exec(&format!(
        "INSERT INTO monitor_results (monitor_id, execution_region, checked_at, is_up, status, total_time)
         SELECT '{id}', 'us-east', now() - g * interval '1 second', true, 'up', 10 FROM generate_series(1, 25000) g;
         INSERT INTO regional_performance_metrics (monitor_id, region_code, checked_at)
         SELECT '{id}', 'us-east', now() - g * interval '1 second' FROM generate_series(1, 25000) g;
         INSERT INTO monitor_results (monitor_id, execution_region, checked_at, is_up, status, total_time)
         VALUES ('{other}', 'us-east', now(), true, 'up', 10)"
    ));
    db.geoctl(&["monitor", "delete", "busy", "--dry-run"]).success();
    assert_eq!(db.count("monitor_results"), 25_001);
    db.geoctl(&["monitor", "delete", "busy", "--yes"]).success();
    assert_eq!(db.scalar(&format!("SELECT count(*) FROM monitor_results WHERE monitor_id = '{id}'")), "0");
    assert_eq!(db.count("regional_performance_metrics"), 0);
    assert_eq!(db.count("monitor_results"), 1, "the other monitor's result stays");
    assert_eq!(db.count("monitors"), 1);
}

#[test]
fn concurrent_applies_of_the_same_new_monitor_wait_and_report_unchanged() {
    let db = TestDb::migrated();
    let path = db.dir().join("monitors.yaml");
    std::fs::write(
        &path,
        "monitors:\n  - name: shared\n    type: http\n    target: https://example.com\n    every: 1m\n    regions: [us-east, eu-west]\n",
    )
    .unwrap();
    let children: Vec<_> = (0..5)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_geoctl"))
                .args(["monitor", "apply", "-f", path.to_str().unwrap(), "-o", "json"])
                .current_dir(db.dir())
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("HOME", db.dir())
                .env("DATABASE_URL", &db.url)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut changes = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        changes.push(json[0]["change"].as_str().unwrap().to_string());
    }
    changes.sort();
    assert_eq!(changes, ["created", "unchanged", "unchanged", "unchanged", "unchanged"]);
    assert_eq!(db.count("monitors"), 1);
    assert_eq!(db.count("monitor_regions"), 2);
}
