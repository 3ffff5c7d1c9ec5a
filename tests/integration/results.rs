use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use geoctl::results::{record, NewResult};
use serde_json::json;
use uuid::Uuid;

use crate::support::{block_on, TestDb};

/// A local HTTP server answering every request after `delay`; runs until the test ends.
fn slow_server(delay: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(50) {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                std::thread::sleep(delay);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            });
        }
    });
    port
}

pub(crate) fn result(monitor: Uuid, region: &str, at: chrono::DateTime<Utc>, up: bool, total: f64) -> NewResult {
    NewResult {
        monitor_id: monitor,
        execution_region: region.into(),
        target_region: None,
        checked_at: at,
        up,
        dns_ms: None,
        connect_ms: Some(total / 10.0),
        tls_ms: None,
        first_byte_ms: Some(total / 2.0),
        total_ms: total,
        network_latency_ms: Some(total / 10.0),
        error_kind: (!up).then(|| "refused".into()),
        error_message: (!up).then(|| "connection refused".into()),
        resolved_ip: Some("127.0.0.1".into()),
        http_version: Some("HTTP/1.1".into()),
        status_code: up.then_some(200),
        response_size: Some(2),
        cert_expires_at: None,
        cdn_provider: None,
        cdn_cache_status: None,
        cdn_edge_location: None,
        details: json!({}),
        run_key: None,
        target: None,
        hop_count: None,
        route_latency: None,
        steps: None,
        screenshot: None,
    }
}

#[test]
fn a_check_records_its_region_and_each_phase_in_its_field() {
    let db = TestDb::migrated();
    let port = slow_server(Duration::from_millis(150));
    db.geoctl(&[
        "monitor",
        "create",
        "--name",
        "ip",
        "--type",
        "http",
        "--target",
        &format!("http://127.0.0.1:{port}/"),
        "--regions",
        "eu-west,us-east",
    ])
    .success();
    db.geoctl(&[
        "monitor",
        "create",
        "--name",
        "named",
        "--type",
        "http",
        "--target",
        &format!("http://localhost:{port}/"),
        "--regions",
        "ap-south",
    ])
    .success();

    let run = db.geoctl(&["monitor", "check", "ip", "--region", "eu-west", "-o", "json"]).success();
    assert!(run.stderr.contains("recorded"), "{}", run.stderr);
    assert_eq!(run.json()["up"], true);
    let row = |name: &str, column: &str| {
        db.scalar(&format!(
            "SELECT {column} FROM monitor_results r JOIN monitors m ON m.id = r.monitor_id WHERE m.name = '{name}'"
        ))
    };
    assert_eq!(row("ip", "execution_region"), "eu-west");
    assert_eq!(row("ip", "dns_resolution_time IS NULL"), "true", "an IP literal needs no DNS");
    assert_eq!(row("ip", "tls_handshake_time IS NULL"), "true", "http has no TLS");
    assert_eq!(row("ip", "tcp_connect_time < 100"), "true");
    assert_eq!(row("ip", "first_byte_time >= 150"), "true", "the server's delay belongs to first byte");
    assert_eq!(row("ip", "total_time >= first_byte_time"), "true");
    assert_eq!(row("ip", "is_up AND r.status = 'up' AND response_time_ms >= 150"), "true");
    assert_eq!(db.count("regional_performance_metrics"), 1);
    assert_eq!(db.scalar("SELECT status_code FROM regional_performance_metrics"), "200");

    // A host name is resolved, so DNS is measured.
    db.geoctl(&["monitor", "check", "named"]).success();
    assert_eq!(row("named", "execution_region"), "ap-south");
    assert_eq!(row("named", "dns_resolution_time IS NOT NULL"), "true");

    // Regions the monitor does not run in are refused; nothing is recorded.
    db.geoctl(&["monitor", "check", "ip", "--region", "ap-south"]).usage_error(&["does not run in region `ap-south`"]);
    db.geoctl(&["monitor", "check", "ip", "--region", "mars"]).usage_error(&["unknown region `mars`"]);
    db.geoctl(&["monitor", "check", "ip", "--region", "us-east", "--dry-run"]).success();
    assert_eq!(db.count("monitor_results"), 2);
}

#[test]
fn per_region_overrides_apply_to_the_check() {
    let db = TestDb::migrated();
    let port = slow_server(Duration::from_millis(1500));
    db.geoctl(&[
        "monitor",
        "create",
        "--name",
        "slow",
        "--type",
        "http",
        "--target",
        &format!("http://127.0.0.1:{port}/"),
        "--regions",
        "eu-west,us-east",
    ])
    .success();
    db.geoctl(&["monitor", "regions", "set", "slow", "--region", "eu-west", "--timeout", "1s"]).success();
    let eu = db.geoctl(&["monitor", "check", "slow", "--region", "eu-west", "-o", "json"]);
    assert_eq!(eu.code, 1, "{eu:?}");
    assert_eq!(eu.json()["failure"]["kind"], "timeout");
    db.geoctl(&["monitor", "check", "slow", "--region", "us-east"]).success();
    assert_eq!(db.scalar("SELECT error_kind FROM monitor_results WHERE execution_region = 'eu-west'"), "timeout");
    assert_eq!(db.scalar("SELECT is_up FROM monitor_results WHERE execution_region = 'us-east'"), "true");
}

#[test]
fn summaries_stay_equal_to_a_fresh_rebuild_under_concurrent_writers() {
    let db = TestDb::migrated();
    db.geoctl(&["monitor", "create", "--name", "web", "--type", "http", "--target", "https://example.com"]).success();
    let id: Uuid = db.scalar("SELECT id FROM monitors").parse().unwrap();
    let day1 = Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap();

    // 4 writers × 25 batches × 12 results, spread over two days and three regions.
    block_on(async {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let mut writers = Vec::new();
        for w in 0..4u32 {
            let pool = pool.clone();
            writers.push(tokio::spawn(async move {
                for b in 0..25u32 {
                    let batch: Vec<NewResult> = (0..12u32)
                        .map(|i| {
                            let n = (w * 1000 + b * 12 + i) as i64;
                            let region = ["us-east", "eu-west", "ap-south"][(n % 3) as usize];
                            let at = day1 + chrono::Duration::minutes(n * 7 % 2880);
                            result(id, region, at, n % 10 != 0, 10.0 + (n % 97) as f64)
                        })
                        .collect();
                    record(&pool, &batch).await.unwrap();
                }
            }));
        }
        for w in writers {
            w.await.unwrap();
        }
    });
    assert_eq!(db.count("monitor_results"), 1200);
    let snapshot = "SELECT string_agg(concat_ws('|', region_code, day, total_checks, successful_checks, failed_checks, \
        round(uptime_percentage::numeric, 6), round(avg_response_time::numeric, 6), min_response_time, max_response_time, \
        round(p50_response_time::numeric, 6), round(p95_response_time::numeric, 6), round(p99_response_time::numeric, 6), \
        round(avg_network_latency::numeric, 6), avg_dns_time, round(avg_tcp_time::numeric, 6), unique_countries, \
        percentiles_exact), ';' ORDER BY region_code, day) FROM regional_monitor_summaries";
    // Writers keep running totals: everything but the percentiles, which wait for the day's recompute.
    let totals = "SELECT string_agg(concat_ws('|', region_code, day, total_checks, successful_checks, failed_checks, \
        round(uptime_percentage::numeric, 6), round(avg_response_time::numeric, 6), min_response_time, max_response_time, \
        round(avg_network_latency::numeric, 6), avg_dns_time, round(avg_tcp_time::numeric, 6), unique_countries), ';' \
        ORDER BY region_code, day) FROM regional_monitor_summaries";
    let incremental = db.scalar(totals);
    assert_eq!(db.count("regional_monitor_summaries"), 6);
    assert_eq!(db.scalar("SELECT sum(total_checks) FROM regional_monitor_summaries"), "1200");
    assert_eq!(
        db.scalar("SELECT bool_or(percentiles_exact OR p50_response_time IS NOT NULL) FROM regional_monitor_summaries"),
        "false"
    );

    // Closed days get their exact percentiles, the totals unchanged.
    db.geoctl(&["summaries", "refresh"]).success();
    assert_eq!(db.scalar(totals), incremental);
    let exact = db.scalar(snapshot);
    assert_eq!(
        db.scalar(
            "SELECT bool_and(percentiles_exact AND p50_response_time IS NOT NULL) FROM regional_monitor_summaries"
        ),
        "true"
    );

    db.exec("UPDATE regional_monitor_summaries SET total_checks = 0, p50_response_time = NULL");
    db.geoctl(&["summaries", "rebuild", "--date", "2026-11-26"]).success();
    db.geoctl(&["summaries", "rebuild"]).success();
    assert_eq!(db.scalar(snapshot), exact);
    assert_eq!(db.scalar(totals), incremental);
    let refresh = db.geoctl(&["summaries", "refresh"]).success();
    assert!(refresh.stderr.contains("unchanged"), "{}", refresh.stderr);

    // Spot-check one summary against the results themselves.
    let expected = db.scalar(
        "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY total_time)::numeric, 6) FROM monitor_results \
         WHERE execution_region = 'eu-west' AND is_up AND checked_at < '2026-11-27T00:00:00Z'",
    );
    let stored = db.scalar("SELECT round(p50_response_time::numeric, 6) FROM regional_monitor_summaries WHERE region_code = 'eu-west' AND day = '2026-11-26'");
    assert_eq!(stored, expected);
    // DNS was never measured: its average is absent, not 0.
    assert_eq!(db.scalar("SELECT bool_and(avg_dns_time IS NULL) FROM regional_monitor_summaries"), "true");
}

/// The running totals' columns (everything but the percentiles, which wait for a recompute).
const TOTALS: &str = "SELECT string_agg(concat_ws('|', region_code, day, total_checks, successful_checks, \
    failed_checks, round(uptime_percentage::numeric, 6), round(avg_response_time::numeric, 6), min_response_time, \
    max_response_time, round(avg_network_latency::numeric, 6), avg_dns_time, round(avg_tcp_time::numeric, 6), \
    unique_countries), ';' ORDER BY region_code, day) FROM regional_monitor_summaries";

#[test]
fn a_batch_writes_nothing_until_a_recompute_holding_its_day_commits() {
    let db = TestDb::migrated();
    db.geoctl(&["monitor", "create", "--name", "web", "--type", "http", "--target", "https://example.com"]).success();
    let id: Uuid = db.scalar("SELECT id FROM monitors").parse().unwrap();
    let day = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
    block_on(async {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        // A recompute of the 26th holds its day (and has not finished).
        let mut recompute = pool.begin().await.unwrap();
        geoctl::results::summary::lock_day(&mut recompute, day.date_naive()).await.unwrap();

        let mut held = result(id, "eu-west", day, true, 20.0);
        held.run_key = Some("held".into());
        let other_day = result(id, "eu-west", day + chrono::Duration::days(1), true, 30.0);
        let writer = tokio::spawn({
            let pool = pool.clone();
            async move { record(&pool, &[held, other_day]).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!writer.is_finished(), "the batch went on while a recompute held one of its days");
        let waiting: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(waiting, 1, "the batch waits on the day lock");
        // Had the batch inserted its row before the lock, this write of the same run key would
        // wait for the batch's transaction; it goes through at once and keeps the key.
        let mut first = result(id, "us-east", day + chrono::Duration::days(2), true, 40.0);
        first.run_key = Some("held".into());
        let probe = tokio::time::timeout(Duration::from_secs(2), record(&pool, &[first])).await;
        assert_eq!(probe.expect("the batch held its run key before it held its day lock").unwrap(), 1);

        recompute.commit().await.unwrap();
        assert_eq!(writer.await.unwrap().unwrap(), 1, "the key was taken meanwhile; the other row is new");
    });
    assert_eq!(db.count("monitor_results"), 2);
    assert_eq!(db.count("regional_performance_metrics"), 2);
    assert_eq!(db.scalar("SELECT sum(total_checks) FROM regional_monitor_summaries"), "2");
    assert_eq!(db.scalar("SELECT execution_region FROM monitor_results WHERE run_key = 'held'"), "us-east");
}

#[test]
fn summaries_stay_exact_while_recomputes_race_the_writers() {
    let db = TestDb::migrated();
    db.geoctl(&["monitor", "create", "--name", "web", "--type", "http", "--target", "https://example.com"]).success();
    let id: Uuid = db.scalar("SELECT id FROM monitors").parse().unwrap();
    let day1 = Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap();

    // 3 writers × 40 batches × 6 results over two days; the same days are recomputed over and
    // over meanwhile, each time replacing the running totals with the results it sees, until
    // two thirds are written (so the last recompute races writes too, and the batches after it
    // add to what it wrote: a result it lost or doubled stays lost or doubled).
    let recomputes = block_on(async {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let mut writers = Vec::new();
        for w in 0..3u32 {
            let pool = pool.clone();
            writers.push(tokio::spawn(async move {
                for b in 0..40u32 {
                    let batch: Vec<NewResult> = (0..6u32)
                        .map(|i| {
                            let n = (w * 1000 + b * 6 + i) as i64;
                            let region = ["us-east", "eu-west"][(n % 2) as usize];
                            let at = day1 + chrono::Duration::minutes(n * 13 % 2880);
                            let mut r = result(id, region, at, n % 7 != 0, 10.0 + (n % 89) as f64);
                            r.run_key = Some(format!("race:{n}"));
                            r
                        })
                        .collect();
                    record(&pool, &batch).await.unwrap();
                }
            }));
        }
        let recompute = tokio::spawn({
            let pool = pool.clone();
            async move {
                let mut runs = 0u32;
                loop {
                    geoctl::results::summary::rebuild(&pool, None).await.unwrap();
                    runs += 1;
                    if sqlx::query_scalar::<_, i64>("SELECT count(*) FROM monitor_results")
                        .fetch_one(&pool)
                        .await
                        .unwrap()
                        >= 480
                    {
                        return runs;
                    }
                }
            }
        });
        for w in writers {
            w.await.unwrap();
        }
        recompute.await.unwrap()
    });
    assert!(recomputes >= 2, "the recomputes ran while the writers wrote ({recomputes})");
    assert_eq!(db.count("monitor_results"), 720);
    let raced = db.scalar(TOTALS);
    assert_eq!(db.scalar("SELECT sum(total_checks) FROM regional_monitor_summaries"), "720");
    db.geoctl(&["summaries", "rebuild"]).success();
    assert_eq!(db.scalar(TOTALS), raced, "a recompute from the results agrees with the raced totals");
}

#[test]
fn one_region_down_of_three_is_up_by_majority_and_named() {
    let db = TestDb::migrated();
    db.geoctl(&["monitor", "create", "--name", "web", "--type", "http", "--target", "https://example.com"]).success();
    let id: Uuid = db.scalar("SELECT id FROM monitors").parse().unwrap();
    let now = Utc::now();
    block_on(async {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let batch = [
            result(id, "us-east", now, true, 50.0),
            result(id, "eu-west", now, false, 3.0),
            result(id, "ap-south", now, true, 40.0),
        ];
        record(&pool, &batch).await.unwrap();
    });
    let run = db.geoctl(&["monitor", "status", "web", "-o", "json"]).success();
    let status = &run.json()[0];
    assert_eq!(status["state"], "up");
    assert_eq!(status["rule"], "majority");
    assert_eq!(status["failing_below_quorum"], json!(["eu-west"]));
    assert!(run.stderr.contains("failing in eu-west"), "{}", run.stderr);
    let table = db.geoctl(&["monitor", "status"]).success();
    assert!(table.stdout.contains("eu-west"), "{}", table.stdout);

    // Under `any` the same results are an outage.
    db.geoctl(&["monitor", "update", "web", "--down-when", "any"]).success();
    let status = db.geoctl(&["monitor", "status", "web", "-o", "json"]).success().json();
    assert_eq!(status[0]["state"], "down");

    // A slow region (over its 100ms warning) is degraded.
    block_on(async {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        record(
            &pool,
            &[result(id, "eu-west", Utc::now(), true, 120.0), result(id, "ap-south", Utc::now(), true, 180.0)],
        )
        .await
        .unwrap();
    });
    let status = db.geoctl(&["monitor", "status", "web", "-o", "json"]).success().json();
    let ap = status[0]["regions"].as_array().unwrap().iter().find(|r| r["region"] == "ap-south").unwrap().clone();
    assert_eq!(ap["state"], "degraded");
    assert_eq!(status[0]["state"], "degraded");

    let results = db.geoctl(&["monitor", "results", "web", "--region", "eu-west", "-o", "json"]).success().json();
    assert_eq!(results.as_array().unwrap().len(), 2);
    assert_eq!(results[0]["up"], true);
}

#[test]
fn a_scheduled_run_is_stored_once_however_often_and_concurrently_it_is_recorded() {
    let db = TestDb::migrated();
    db.geoctl(&["monitor", "create", "--name", "web", "--type", "http", "--target", "https://example.com"]).success();
    let id: Uuid = db.scalar("SELECT id FROM monitors").parse().unwrap();
    let start = Utc::now() - chrono::Duration::minutes(30);
    let mut batch: Vec<NewResult> = (0..30i64)
        .map(|i| {
            let region = ["us-east", "eu-west", "ap-south"][(i % 3) as usize];
            let at = start + chrono::Duration::seconds(i * 20);
            let mut r = result(id, region, at, i % 7 != 0, 10.0 + i as f64);
            r.run_key = Some(format!("{id}:{region}:{}", at.timestamp_millis()));
            r
        })
        .collect();
    // A copy inside the batch itself (a job replayed from the spool while still queued).
    batch.push(batch[4].clone());

    // Eight writers record the same batch at once: each run is stored once in all.
    let new: Vec<u64> = block_on(async {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let writers: Vec<_> = (0..8)
            .map(|_| {
                let (pool, batch) = (pool.clone(), batch.clone());
                tokio::spawn(async move { record(&pool, &batch).await.unwrap() })
            })
            .collect();
        let mut new = Vec::new();
        for w in writers {
            new.push(w.await.unwrap());
        }
        // And once more afterwards: nothing new.
        new.push(record(&pool, &batch).await.unwrap());
        new
    });
    assert_eq!(new.iter().sum::<u64>(), 30, "{new:?}");
    assert_eq!(new.last(), Some(&0));
    assert_eq!(db.count("monitor_results"), 30);
    assert_eq!(db.scalar("SELECT count(DISTINCT run_key) FROM monitor_results"), "30");
    assert_eq!(db.count("regional_performance_metrics"), 30);
    assert_eq!(db.scalar("SELECT sum(total_checks) FROM regional_monitor_summaries"), "30");

    // Manual checks carry no run key: each is its own result.
    let manual = result(id, "us-east", Utc::now(), true, 5.0);
    block_on(async {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        assert_eq!(record(&pool, &[manual.clone(), manual.clone()]).await.unwrap(), 2);
    });
    assert_eq!(db.count("monitor_results"), 32);
    assert_eq!(db.count("regional_performance_metrics"), 32);
}
