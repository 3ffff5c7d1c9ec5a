//! Results and metrics partitioned by day (issue 24), and their hourly summaries and landing
//! counts: the three databases geoctl starts from, partitions made ahead, a write into a day
//! without one, retention by whole days.

use chrono::{DateTime, Duration, DurationRound, NaiveDate, Utc};
use geoctl::results::{record, NewResult};
use uuid::Uuid;

use crate::db::{LEGACY, LEGACY_RESULTS};
use crate::support::{block_on, TestDb};

const TABLES: [&str; 2] = ["monitor_results", "regional_performance_metrics"];
const HOURLY: [&str; 2] = ["regional_monitor_hourly_summaries", "regional_monitor_hourly_landings"];
/// Every table partitioned by day, in the order `db maintain` goes through them.
const ALL: [&str; 4] = [TABLES[0], TABLES[1], HOURLY[0], HOURLY[1]];

fn day_name(table: &str, day: NaiveDate) -> String {
    format!("{table}_p{}", day.format("%Y%m%d"))
}

fn partitions(db: &TestDb, table: &str) -> Vec<String> {
    db.scalar(&format!(
        "SELECT string_agg(inhrelid::regclass::text, ',' ORDER BY inhrelid::regclass::text) \
         FROM pg_inherits WHERE inhparent = '{table}'::regclass"
    ))
    .split(',')
    .map(String::from)
    .collect()
}

fn where_is(db: &TestDb, table: &str, filter: &str) -> String {
    db.scalar(&format!("SELECT string_agg(DISTINCT tableoid::regclass::text, ',') FROM {table} WHERE {filter}"))
}

fn monitor(db: &TestDb) -> Uuid {
    db.geoctl(&["monitor", "create", "--name", "web", "--type", "http", "--target", "https://example.com"]).success();
    db.scalar("SELECT id FROM monitors WHERE name = 'web'").parse().unwrap()
}

/// A result of `monitor` measured from us-east at `at`.
fn result(monitor: Uuid, at: chrono::DateTime<Utc>, run_key: Option<String>) -> NewResult {
    NewResult { run_key, ..crate::results::result(monitor, "us-east", at, true, 10.0) }
}

/// History as if partitioned on `start`: the partition of the past ends then, and the days
/// after it get their own partitions from `db maintain` once they hold results.
fn partitioned_since(db: &TestDb, start: NaiveDate) {
    for table in ALL {
        db.exec(&format!(
            "ALTER TABLE {table} DETACH PARTITION {table}_past;
             ALTER TABLE {table} ATTACH PARTITION {table}_past FOR VALUES FROM (MINVALUE) TO ('{start} 00:00:00+00')"
        ));
    }
}

fn write(db: &TestDb, batch: &[NewResult]) -> u64 {
    block_on(async {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let new = record(&pool, batch).await.unwrap();
        pool.close().await;
        new
    })
}

/// Every table partitioned: the partition of the past, the default one, and a partition for
/// each day from the past's bound (the day after tomorrow) to a week ahead.
fn assert_partitioned(db: &TestDb) {
    let today = Utc::now().date_naive();
    for table in ALL {
        assert_eq!(db.scalar(&format!("SELECT relkind FROM pg_class WHERE oid = '{table}'::regclass")), "p");
        let parts = partitions(db, table);
        assert!(parts.contains(&format!("{table}_past")), "{parts:?}");
        assert!(parts.contains(&format!("{table}_default")), "{parts:?}");
        for n in 2..=7 {
            assert!(parts.contains(&day_name(table, today + Duration::days(n))), "day +{n} missing: {parts:?}");
        }
        // The CHECK that let the heap be attached without a scan is gone.
        assert_eq!(db.scalar(&format!("SELECT count(*) FROM pg_constraint WHERE conname = '{table}_past_bound'")), "0");
    }
    // Every partition refuses a second copy of a run; the indexes the queries need are on all.
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM pg_inherits i WHERE i.inhparent = 'monitor_results'::regclass AND NOT EXISTS (
                 SELECT FROM pg_index x WHERE x.indrelid = i.inhrelid AND x.indisunique
                   AND pg_get_indexdef(x.indexrelid) LIKE '%(run_key) WHERE (run_key IS NOT NULL)')"
        ),
        "0"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_partition_tree('monitor_results_monitor_checked_idx') WHERE level = 1"),
        db.scalar("SELECT count(*) FROM pg_inherits WHERE inhparent = 'monitor_results'::regclass")
    );
    // The hours' keys (what the writers' upserts arbitrate on) and BRIN indexes are on every day.
    for table in HOURLY {
        let key: String = db.scalar(&format!(
            "SELECT conindid::regclass::text FROM pg_constraint WHERE conrelid = '{table}'::regclass AND contype IN ('p', 'u')"
        ));
        for index in [key, format!("{table}_hour_brin")] {
            assert_eq!(
                db.scalar(&format!("SELECT count(*) FROM pg_partition_tree('{index}') WHERE level = 1")),
                db.scalar(&format!("SELECT count(*) FROM pg_inherits WHERE inhparent = '{table}'::regclass")),
                "{index}"
            );
        }
    }
}

#[test]
fn an_empty_database_is_partitioned_with_days_made_ahead_and_maintain_is_idempotent() {
    let db = TestDb::migrated();
    assert_partitioned(&db);

    let again = db.geoctl(&["db", "maintain", "-o", "json"]).success();
    assert!(again.stderr.contains("nothing to do"), "{}", again.stderr);
    assert_eq!(again.json().as_array().unwrap().len(), 0);

    let today = Utc::now().date_naive();
    let more = db.geoctl(&["db", "maintain", "--days", "9", "-o", "json"]).success().json();
    let made: Vec<&str> = more.as_array().unwrap().iter().map(|c| c["partition"].as_str().unwrap()).collect();
    let mut expected = Vec::new();
    for table in ALL {
        for n in 8..=9 {
            expected.push(day_name(table, today + Duration::days(n)));
        }
    }
    assert_eq!(made, expected);
    db.geoctl(&["db", "maintain", "--days", "0"]).usage_error(&["--days"]);
}

#[test]
fn the_existing_apps_table_becomes_the_past_and_its_inserts_and_reads_keep_working() {
    let db = TestDb::empty();
    db.exec(LEGACY);
    let before = db.scalar(LEGACY_RESULTS);
    db.geoctl(&["db", "migrate"]).success();
    assert_partitioned(&db);
    assert_eq!(db.scalar(LEGACY_RESULTS), before, "legacy results changed");
    assert_eq!(where_is(&db, "monitor_results", "true"), "monitor_results_past");
    // Its primary key and foreign key stay on its rows; the sequence now belongs to the
    // partitioned table, so dropping the past one day keeps it.
    assert_eq!(
        db.scalar("SELECT conrelid::regclass::text FROM pg_constraint WHERE conname = 'monitor_results_pkey'"),
        "monitor_results_past"
    );
    assert_eq!(
        db.scalar("SELECT d.refobjid::regclass::text FROM pg_depend d WHERE d.objid = 'monitor_results_id_seq'::regclass AND d.deptype = 'a'"),
        "monitor_results"
    );

    // The app's own statements, unchanged: an insert now, one for a later day, reads by id.
    let site = "11111111-1111-1111-1111-111111111111";
    db.exec(&format!(
        "INSERT INTO monitor_results (monitor_id, checked_at, status, response_time_ms, details, is_up)
         VALUES ('{site}', now(), 'up', 99, '{{\"code\":200}}', true)"
    ));
    let id: i64 = db.scalar("SELECT id FROM monitor_results WHERE response_time_ms = 99").parse().unwrap();
    assert!(id > 3, "ids continue from the app's sequence: {id}");
    db.exec(&format!(
        "INSERT INTO monitor_results (monitor_id, checked_at, status, is_up) VALUES ('{site}', now() + interval '3 days', 'down', false)"
    ));
    assert_eq!(db.scalar(&format!("SELECT status FROM monitor_results WHERE id = {id}")), "up");
    let later = day_name("monitor_results", (Utc::now() + Duration::days(3)).date_naive());
    assert_eq!(where_is(&db, "monitor_results", "status = 'down' AND checked_at > now()"), later);
    assert_eq!(db.count("monitor_results"), 5);

    // geoctl reads the app's rows next to its own.
    let results = db.geoctl(&["monitor", "results", "legacy-site", "--since", "60d", "-o", "json"]).success().json();
    assert!(!results.as_array().unwrap().is_empty());
}

/// The migration that partitions results by day.
const PARTITIONING: i64 = 20261206100001;

#[test]
fn geoctls_own_database_keeps_its_results_and_one_result_per_run() {
    let db = TestDb::migrated_before(PARTITIONING);
    assert_eq!(db.scalar("SELECT relkind FROM pg_class WHERE oid = 'monitor_results'::regclass"), "r");
    // Written as the geoctl of before wrote it: this one refuses a schema it is ahead of.
    db.exec(
        "INSERT INTO monitors (name, type, target) VALUES ('web', 'http', 'https://example.com');
         INSERT INTO monitor_regions (monitor_id, region_code) SELECT id, 'us-east' FROM monitors",
    );
    let id: Uuid = db.scalar("SELECT id FROM monitors WHERE name = 'web'").parse().unwrap();
    let at = Utc::now() - Duration::hours(2);
    let key = format!("{id}:us-east:{}", at.timestamp_millis());
    // Rows as that geoctl wrote them (today's `record` also keeps hourly summaries, which this
    // schema has not yet).
    let stamp = at.to_rfc3339();
    db.exec(&format!(
        "INSERT INTO monitor_results (monitor_id, execution_region, checked_at, status, is_up, total_time, run_key)
         VALUES ('{id}', 'us-east', '{stamp}', 'up', true, 10, '{key}'), ('{id}', 'us-east', '{stamp}', 'up', true, 10, NULL);
         INSERT INTO regional_performance_metrics (monitor_id, region_code, checked_at, total_time, run_key)
         VALUES ('{id}', 'us-east', '{stamp}', 10, '{key}'), ('{id}', 'us-east', '{stamp}', 10, NULL)"
    ));

    db.geoctl(&["db", "migrate"]).success();
    assert_partitioned(&db);
    assert_eq!(db.count("monitor_results"), 2);
    assert_eq!(db.count("regional_performance_metrics"), 2);
    assert_eq!(where_is(&db, "monitor_results", "true"), "monitor_results_past");
    // The run stored before the change is still stored once.
    assert_eq!(write(&db, &[result(id, at, Some(key))]), 0);
    assert_eq!(db.count("monitor_results"), 2);
    let status = db.geoctl(&["monitor", "status", "web", "-o", "json"]).success().json();
    assert!(status.to_string().contains("us-east"), "{status}");
}

/// The migration that partitions the hourly summaries and landing counts by day.
const HOURLY_PARTITIONING: i64 = 20261207300001;

#[test]
fn geoctls_hours_become_the_past_and_writes_keep_adding_to_them() {
    let db = TestDb::migrated_before(HOURLY_PARTITIONING);
    assert_eq!(
        db.scalar("SELECT relkind FROM pg_class WHERE oid = 'regional_monitor_hourly_summaries'::regclass"),
        "r"
    );
    db.exec(
        "INSERT INTO monitors (name, type, target) VALUES ('web', 'http', 'https://example.com');
         INSERT INTO monitor_regions (monitor_id, region_code) SELECT id, 'us-east' FROM monitors",
    );
    let id: Uuid = db.scalar("SELECT id FROM monitors WHERE name = 'web'").parse().unwrap();
    // The hour's first result, written by the geoctl of before (the same statement: the hourly
    // tables are there, plain).
    let hour = Utc::now().duration_trunc(chrono::TimeDelta::hours(1)).unwrap() - Duration::hours(1);
    let at = hour + Duration::minutes(1);
    assert_eq!(write(&db, &[result(id, at, None)]), 1);
    let before =
        db.scalar("SELECT string_agg(hour || ' ' || total_checks, ',') FROM regional_monitor_hourly_summaries");

    db.geoctl(&["db", "migrate"]).success();
    assert_partitioned(&db);
    assert_eq!(
        db.scalar("SELECT string_agg(hour || ' ' || total_checks, ',') FROM regional_monitor_hourly_summaries"),
        before
    );
    for table in HOURLY {
        assert_eq!(where_is(&db, table, "true"), format!("{table}_past"));
        assert_eq!(db.scalar(&format!("SELECT count(*) FROM pg_constraint WHERE conname = '{table}_past_bound'")), "0");
    }
    // The hour's next result adds to the same row (the upsert finds it in the past), and a
    // later day's hour lands in its own day.
    let later = at + Duration::days(3);
    assert_eq!(write(&db, &[result(id, at + Duration::seconds(30), None), result(id, later, None)]), 2);
    assert_eq!(
        db.scalar(&format!(
            "SELECT total_checks FROM regional_monitor_hourly_summaries WHERE hour = '{}'",
            hour.to_rfc3339()
        )),
        "2"
    );
    assert_eq!(
        where_is(&db, "regional_monitor_hourly_summaries", "hour > now() + interval '1 day'"),
        day_name("regional_monitor_hourly_summaries", later.date_naive())
    );
    let report = db.geoctl(&["report", "--since", "1d", "-o", "json"]).success().json();
    assert_eq!(report["monitors"][0]["regions"][0]["checks"], 2, "{report}");
}

#[test]
fn a_write_for_a_day_without_a_partition_lands_in_default_and_maintain_moves_it() {
    let db = TestDb::migrated();
    let id = monitor(&db);
    let far = Utc::now() + Duration::days(20);
    let key = format!("{id}:us-east:{}", far.timestamp_millis());
    assert_eq!(write(&db, &[result(id, far, Some(key.clone()))]), 1);
    assert_eq!(where_is(&db, "monitor_results", "true"), "monitor_results_default");
    assert_eq!(where_is(&db, "regional_performance_metrics", "true"), "regional_performance_metrics_default");

    let made = db.geoctl(&["db", "maintain", "-o", "json"]).success().json();
    let moved: Vec<(String, u64)> = made
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["partition"].as_str().unwrap().to_string(), c["moved_rows"].as_u64().unwrap()))
        .collect();
    let day = far.date_naive();
    assert_eq!(moved, ALL.map(|t| (day_name(t, day), 1)).to_vec());
    for table in ALL {
        assert_eq!(where_is(&db, table, "true"), day_name(table, day));
        assert_eq!(db.count(&format!("{table}_default")), 0);
    }
    // Moved with its run key: the run is still refused a second time.
    assert_eq!(write(&db, &[result(id, far, Some(key))]), 0);
    assert_eq!(db.scalar("SELECT sum(total_checks) FROM regional_monitor_summaries"), "1");
}

#[test]
fn a_run_retried_across_midnight_is_stored_once() {
    let db = TestDb::migrated();
    let id = monitor(&db);
    let midnight = (Utc::now().date_naive() + Duration::days(3)).and_hms_opt(0, 0, 0).unwrap().and_utc();
    let scheduled = midnight - Duration::seconds(30);
    let key = format!("{id}:us-east:{}", scheduled.timestamp_millis());
    assert_eq!(write(&db, &[result(id, midnight - Duration::seconds(1), Some(key.clone()))]), 1);
    // The retry measured after midnight lands in the next day's partition, whose unique index
    // has not seen the run: the look at the neighbouring days refuses it.
    assert_eq!(write(&db, &[result(id, midnight + Duration::seconds(5), Some(key.clone()))]), 0);
    // And the other way round: a copy measured before midnight recorded after the later one.
    let other = format!("{id}:us-east:{}", (scheduled - Duration::minutes(1)).timestamp_millis());
    assert_eq!(write(&db, &[result(id, midnight + Duration::seconds(20), Some(other.clone()))]), 1);
    assert_eq!(write(&db, &[result(id, midnight - Duration::seconds(50), Some(other))]), 0);
    assert_eq!(db.count("monitor_results"), 2);
    assert_eq!(db.count("regional_performance_metrics"), 2);
}

#[test]
fn prune_drops_whole_days_keeps_summaries_and_reports_read_across_the_boundary() {
    let db = TestDb::migrated();
    let id = monitor(&db);
    partitioned_since(&db, Utc::now().date_naive() - Duration::days(40));
    let now = Utc::now();
    let batch: Vec<NewResult> = (1..=39).map(|n| result(id, now - Duration::days(n), None)).collect();
    assert_eq!(write(&db, &batch), 39);
    // Days without their partition: all in the default one, until maintenance.
    assert_eq!(db.count("monitor_results_default"), 39);
    db.geoctl(&["db", "maintain"]).success();
    assert_eq!(db.count("monitor_results_default"), 0);
    assert_eq!(db.count("monitor_results"), 39);

    // Closed days still without exact percentiles need their results: refused, nothing dropped.
    let parts_before = partitions(&db, "monitor_results");
    db.geoctl(&["db", "prune", "--older-than", "30d", "--yes"]).usage_error(&["summaries refresh"]);
    db.geoctl(&["db", "prune", "--older-than", "1d", "--yes"]).usage_error(&["under 2d"]);
    db.geoctl(&["db", "prune", "--older-than", "-3d", "--yes"]).usage_error(&["--older-than"]);
    assert_eq!(partitions(&db, "monitor_results"), parts_before);
    assert_eq!(db.count("monitor_results"), 39);
    assert_eq!(db.scalar("SELECT count(*) FROM results_retention"), "0");

    db.geoctl(&["summaries", "refresh"]).success();
    let checks = |db: &TestDb| {
        let report = db.geoctl(&["report", "--since", "45d", "-o", "json"]).success().json();
        report["monitors"][0]["regions"][0]["checks"].as_i64().unwrap()
    };
    assert_eq!(checks(&db), 39);

    let dry = db.geoctl(&["db", "prune", "--older-than", "30d", "--dry-run", "-o", "json"]).success().json();
    assert_eq!(dry["dropped_partitions"].as_array().unwrap().len(), 42, "{dry}");
    assert_eq!(db.count("monitor_results"), 39);

    let done = db.geoctl(&["db", "prune", "--older-than", "30d", "--yes", "-o", "json"]).success().json();
    // Days 31..39 ago and the past, whole, in each table; the result 30 days ago row by row. The
    // hours go up to the first whole day: the day of 30 days ago too, whole.
    let dropped: Vec<&str> =
        done["dropped_partitions"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(dropped.len(), 42, "{dropped:?}");
    for table in ALL {
        assert!(dropped.contains(&format!("{table}_past").as_str()));
        let first = if HOURLY.contains(&table) { 30 } else { 31 };
        for n in first..=39 {
            assert!(dropped.contains(&day_name(table, (now - Duration::days(n)).date_naive()).as_str()), "{table} {n}");
        }
    }
    assert_eq!(done["monitor_results"], 1);
    assert_eq!(done["regional_performance_metrics"], 1);
    assert_eq!(done["hourly_summaries"], 0, "no hour deleted row by row");
    assert_eq!(db.count("monitor_results"), 29);
    assert_eq!(db.count("regional_performance_metrics"), 29);
    assert_eq!(db.count("regional_monitor_hourly_summaries"), 29);
    assert_eq!(db.count("regional_monitor_hourly_landings"), 29);
    assert_eq!(db.count("regional_monitor_summaries"), 39, "summaries are kept");
    assert_ne!(db.scalar("SELECT min(pruned_before) FROM results_retention"), "");
    // The report reads the pruned days from their summaries: the same checks as before.
    assert_eq!(checks(&db), 39);
    // Writes keep working, for today and for a day before the partitions (the default catches it).
    assert_eq!(write(&db, &[result(id, Utc::now(), None), result(id, now - Duration::days(60), None)]), 2);
    assert_eq!(where_is(&db, "monitor_results", "checked_at < now() - interval '50 days'"), "monitor_results_default");
    let again = db.geoctl(&["db", "prune", "--older-than", "30d", "--yes", "-o", "json"]).success().json();
    assert_eq!(again["dropped_partitions"].as_array().unwrap().len(), 0);
    assert_eq!(again["monitor_results"], 1, "the stray row in the default partition, row by row");

    // By date: whole days only, none trimmed. Refused inside the safety window, malformed, or
    // next to --older-than, with nothing dropped.
    let parts_before = partitions(&db, "monitor_results");
    let yesterday = (Utc::now() - Duration::days(1)).date_naive().to_string();
    db.geoctl(&["db", "prune", "--before", &yesterday, "--yes"]).usage_error(&["within the last 2d"]);
    db.geoctl(&["db", "prune", "--before", "20261301", "--yes"]).usage_error(&["not a date"]);
    db.geoctl(&["db", "prune", "--before", "2026-01-01", "--older-than", "30d", "--yes"]).usage_error(&["--before"]);
    db.geoctl(&["db", "prune", "--yes"]).usage_error(&["--older-than"]);
    assert_eq!(partitions(&db, "monitor_results"), parts_before);
    let day = (now - Duration::days(20)).date_naive();
    let by_date = db.geoctl(&["db", "prune", "--before", &day.to_string(), "--yes", "-o", "json"]).success().json();
    assert_eq!(by_date["monitor_results"], 0, "{by_date}");
    assert_eq!(by_date["hourly_summaries"], 0, "{by_date}");
    let dropped: Vec<&str> =
        by_date["dropped_partitions"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    // Days 21..29 ago in every table, and the results' day of 30 days ago, trimmed last time.
    assert_eq!(dropped.len(), 38, "{dropped:?}");
    assert!(dropped.contains(&day_name("monitor_results", (now - Duration::days(30)).date_naive()).as_str()));
    assert!(!dropped.contains(&day_name("monitor_results", day).as_str()));
    assert_eq!(db.scalar(&format!("SELECT count(*) FROM monitor_results WHERE checked_at < '{day}'")), "0");
    assert_eq!(db.scalar(&format!("SELECT count(*) FROM monitor_results WHERE checked_at >= '{day}'")), "21");
}

#[test]
fn maintain_without_the_right_to_create_partitions_says_what_to_grant_and_writes_go_on() {
    let db = TestDb::migrated();
    let id = monitor(&db);
    let last = Utc::now().date_naive() + Duration::days(7);
    for table in TABLES {
        db.exec(&format!("DROP TABLE {}", day_name(table, last)));
    }
    let role = format!("geoctl_nopriv_{}", Uuid::new_v4().simple());
    db.exec(&format!("CREATE ROLE {role} LOGIN"));
    struct DropRole<'a>(&'a TestDb, String);
    impl Drop for DropRole<'_> {
        fn drop(&mut self) {
            self.0.exec(&format!("DROP OWNED BY {0}; DROP ROLE {0}", self.1));
        }
    }
    let _cleanup = DropRole(&db, role.clone());
    db.exec(&format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"));
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_username(&role).unwrap();
    url.set_password(None).unwrap();

    let run = db.geoctl_with(&["db", "maintain"], &[("DATABASE_URL", url.as_str())]);
    assert_eq!(run.code, 1, "{run:?}");
    for part in ["monitor_results", &day_name("monitor_results", last), "GRANT CREATE ON SCHEMA public TO", &role] {
        assert!(run.stderr.contains(part), "{part} not in {}", run.stderr);
    }
    assert!(!partitions(&db, "monitor_results").contains(&day_name("monitor_results", last)));
    // The writers' rows for that day land in the default partition meanwhile.
    let at = last.and_hms_opt(12, 0, 0).unwrap().and_utc();
    assert_eq!(write(&db, &[result(id, at, None)]), 1);
    assert_eq!(where_is(&db, "monitor_results", "true"), "monitor_results_default");
}

#[test]
fn deleting_a_monitor_takes_only_its_own_rows_from_every_day() {
    let db = TestDb::migrated();
    let web = monitor(&db);
    db.geoctl(&["monitor", "create", "--name", "api", "--type", "http", "--target", "https://example.org"]).success();
    let api: Uuid = db.scalar("SELECT id FROM monitors WHERE name = 'api'").parse().unwrap();
    // The first rows of several partitions share their ctids: web's in some, api's in others.
    let day = |n: i64| Utc::now() + Duration::days(n);
    let rows =
        [result(web, day(2), None), result(api, day(3), None), result(api, day(4), None), result(web, day(4), None)];
    assert_eq!(write(&db, &rows), 4);
    db.geoctl(&["monitor", "delete", "web", "--yes"]).success();
    assert_eq!(db.scalar(&format!("SELECT count(*) FROM monitor_results WHERE monitor_id = '{api}'")), "2");
    assert_eq!(db.count("monitor_results"), 2);
    assert_eq!(db.count("regional_performance_metrics"), 2);
}

/// Per region: checks, successful ones, and the response, DNS, connect and TLS averages.
type Figures = Vec<(String, i64, i64, Option<f64>, Option<f64>, Option<f64>, Option<f64>)>;

/// Checks per region and report bucket (its start).
type Buckets = Vec<(String, DateTime<Utc>, i64)>;

/// What the results say about `[since, until]`: the figures, and the checks of each region and
/// `bucket`-second bucket.
fn from_results(db: &TestDb, since: DateTime<Utc>, until: DateTime<Utc>, bucket: i64) -> (Figures, Buckets) {
    block_on(async {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let figures = sqlx::query_as(
            "SELECT execution_region, count(*), count(*) FILTER (WHERE is_up), avg(total_time) FILTER (WHERE is_up),
                    avg(dns_resolution_time), avg(tcp_connect_time), avg(tls_handshake_time)
             FROM monitor_results WHERE checked_at >= $1 AND checked_at <= $2 GROUP BY 1 ORDER BY 1",
        )
        .bind(since)
        .bind(until)
        .fetch_all(&pool)
        .await
        .unwrap();
        let buckets = sqlx::query_as(
            "SELECT execution_region, to_timestamp(floor(extract(epoch FROM checked_at) / $3) * $3), count(*)
             FROM monitor_results WHERE checked_at >= $1 AND checked_at <= $2 GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .bind(since)
        .bind(until)
        .bind(bucket as f64)
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        (figures, buckets)
    })
}

/// `report::build` over `[since, until]`: its figures, its checks per region and bucket, and the
/// report itself.
fn from_report(db: &TestDb, since: DateTime<Utc>, until: DateTime<Utc>) -> (Figures, Buckets, geoctl::report::Report) {
    block_on(async {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let placement = geoctl::monitor::Placement { geo_distribution: false, default_region: None };
        let monitors = geoctl::monitor::MonitorStore::new(&pool, placement).list().await.unwrap();
        let report = geoctl::report::build(&pool, &monitors, since, until).await.unwrap();
        pool.close().await;
        let regions = &report.monitors[0].regions;
        let figures = regions
            .iter()
            .map(|r| {
                let s = &r.stats;
                (s.region.clone(), s.checks, s.successful, s.avg_ms, s.avg_dns_ms, s.avg_connect_ms, s.avg_tls_ms)
            })
            .collect();
        let buckets = regions
            .iter()
            .flat_map(|r| r.series.iter().filter(|b| b.checks > 0).map(|b| (r.stats.region.clone(), b.start, b.checks)))
            .collect();
        (figures, buckets, report)
    })
}

/// The hourly summaries, one line per row.
fn hourly_rows(db: &TestDb) -> String {
    db.scalar(
        "SELECT string_agg(concat_ws(' ', monitor_id, hour, region_code, total_checks, successful_checks,
                round(response_time_sum::numeric, 6), response_time_count, round(dns_time_sum::numeric, 6),
                dns_time_count, round(tcp_time_sum::numeric, 6), tcp_time_count, round(tls_time_sum::numeric, 6),
                tls_time_count, round(first_byte_time_sum::numeric, 6), first_byte_time_count,
                response_histogram::text), E'\\n'
                ORDER BY monitor_id, hour, region_code)
         FROM regional_monitor_hourly_summaries",
    )
}

/// `count` checks of `monitor` from us-east and eu-west, every `every` minutes back from 3 minutes
/// before `now`: one in `down` down, DNS measured every other time and, with `tls`, TLS every
/// third (daily summaries keep no TLS times).
fn checks(monitor: Uuid, now: DateTime<Utc>, count: i64, every: i64, down: i64, tls: bool) -> Vec<NewResult> {
    (0..count)
        .flat_map(|n| {
            ["us-east", "eu-west"].map(|region| NewResult {
                dns_ms: (n % 2 == 0).then_some(1.0 + (n % 5) as f64),
                tls_ms: (tls && n % 3 == 0).then_some(4.0 + (n % 4) as f64),
                // Two places, and every sixth check located nowhere; a route traced three times in four.
                target: (n % 6 != 0).then(|| geoctl::geo::TargetFacts {
                    country: Some(["DE", "US"][(n % 2) as usize].into()),
                    city: (n % 2 == 0).then(|| "Berlin".into()),
                    latitude: None,
                    longitude: None,
                    asn: Some(64_500 + (n % 2) as u32),
                    org: Some("Example Net".into()),
                }),
                hop_count: (n % 4 != 0).then_some(6 + (n % 7) as i32),
                ..crate::results::result(
                    monitor,
                    region,
                    now - Duration::minutes(3 + every * n),
                    n % down != 0,
                    10.0 + (n % 13) as f64,
                )
            })
        })
        .collect()
}

/// The rows `sql` gives with `$1` = `since` and `$2` = `until`.
fn window_rows<T>(db: &TestDb, sql: &str, since: DateTime<Utc>, until: DateTime<Utc>) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    block_on(async {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let rows = sqlx::query_as(sql).bind(since).bind(until).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    })
}

/// p50, p95 and p99 of the successful checks' response times in `[since, until]` per region, as
/// percentile_cont computes them over the results.
fn exact_percentiles(db: &TestDb, since: DateTime<Utc>, until: DateTime<Utc>) -> Vec<(String, [f64; 3])> {
    let rows: Vec<(String, f64, f64, f64)> = window_rows(
        db,
        "SELECT execution_region, percentile_cont(0.5) WITHIN GROUP (ORDER BY total_time),
                percentile_cont(0.95) WITHIN GROUP (ORDER BY total_time),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY total_time)
         FROM monitor_results WHERE checked_at >= $1 AND checked_at <= $2 AND is_up GROUP BY 1 ORDER BY 1",
        since,
        until,
    );
    rows.into_iter().map(|(region, a, b, c)| (region, [a, b, c])).collect()
}

/// Per region: where its checks landed (place, checks, share rounded to 0.01 %) and the median
/// hop count, as percentile_cont and a count over the metrics rows of `[since, until]` give them.
type Landed = Vec<(String, Option<String>, Option<String>, Option<i64>, Option<String>, i64, String)>;

fn landed_from_metrics(db: &TestDb, since: DateTime<Utc>, until: DateTime<Utc>) -> (Landed, Vec<(String, f64)>) {
    let landed = window_rows(
        db,
        "SELECT * FROM (
            SELECT region_code, country_code::text AS country, city, asn, isp, count(*),
                   round(100.0 * count(*) / sum(count(*)) OVER (PARTITION BY region_code), 2)::text
            FROM regional_performance_metrics WHERE checked_at >= $1 AND checked_at <= $2
            GROUP BY 1, 2, 3, 4, 5) l
         WHERE country IS NOT NULL OR city IS NOT NULL OR asn IS NOT NULL OR isp IS NOT NULL
         ORDER BY 1, 6 DESC, 2, 3, 4",
        since,
        until,
    );
    let hops = window_rows(
        db,
        "SELECT region_code, percentile_cont(0.5) WITHIN GROUP (ORDER BY hop_count)
         FROM regional_performance_metrics WHERE checked_at >= $1 AND checked_at <= $2 AND hop_count IS NOT NULL
         GROUP BY 1 ORDER BY 1",
        since,
        until,
    );
    (landed, hops)
}

/// The report's landings and median hop counts are exactly the metrics rows'.
#[track_caller]
fn assert_landed(report: &geoctl::report::Report, (landed, hops): (Landed, Vec<(String, f64)>)) {
    let regions = &report.monitors[0].regions;
    let got: Landed = regions
        .iter()
        .flat_map(|r| {
            r.landed.iter().map(|l| {
                let share = format!("{:.2}", l.share);
                (r.stats.region.clone(), l.country.clone(), l.city.clone(), l.asn, l.isp.clone(), l.checks, share)
            })
        })
        .collect();
    assert!(!landed.is_empty());
    assert_eq!(got, landed);
    let got: Vec<(String, f64)> =
        regions.iter().map(|r| (r.stats.region.clone(), r.median_hop_count.unwrap())).collect();
    assert_eq!(got, hops);
}

/// The report's percentiles are the results' within the histograms' documented error.
#[track_caller]
fn assert_percentiles_close(report: &geoctl::report::Report, exact: &[(String, [f64; 3])]) {
    let regions = &report.monitors[0].regions;
    assert_eq!(regions.len(), exact.len());
    for (r, (region, want)) in regions.iter().zip(exact) {
        assert_eq!(&r.stats.region, region);
        let got = [r.stats.p50_ms, r.stats.p95_ms, r.stats.p99_ms].map(Option::unwrap);
        for (g, w) in got.iter().zip(want) {
            let error = (g - w).abs() / w;
            assert!(error <= geoctl::results::histogram::MAX_RELATIVE_ERROR, "{region}: {got:?} vs {want:?}");
        }
    }
}

#[track_caller]
fn assert_same(report: &Figures, results: &Figures) {
    let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() < 1e-9 * b.abs().max(1.0),
        (a, b) => a == b,
    };
    assert_eq!(report.len(), results.len(), "{report:?} vs {results:?}");
    for (r, e) in report.iter().zip(results) {
        assert!(
            (&r.0, r.1, r.2) == (&e.0, e.1, e.2)
                && close(r.3, e.3)
                && close(r.4, e.4)
                && close(r.5, e.5)
                && close(r.6, e.6),
            "report {r:?}, results {e:?}"
        );
    }
}

#[test]
fn reports_over_days_read_summaries_and_count_as_the_results_do_even_across_a_prune() {
    let db = TestDb::migrated();
    let id = monitor(&db);
    let today = Utc::now().date_naive();
    partitioned_since(&db, today - Duration::days(13));
    let now = Utc::now();
    // Every 90 minutes for 12 days from two regions; one in seven down, no TLS.
    let batch = checks(id, now, 12 * 16, 90, 7, false);
    assert_eq!(write(&db, &batch), 384);
    db.geoctl(&["db", "maintain"]).success();
    db.geoctl(&["summaries", "refresh"]).success();

    let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).unwrap().and_utc();
    // From a midnight before the prune horizon to now; and mid-day to an hour ago (its last day
    // has later results, so it is read from results), after the horizon.
    let windows =
        [(midnight(today - Duration::days(8)), now), (now - Duration::hours(4 * 24 + 5), now - Duration::hours(1))];
    let mut expected = Vec::new();
    for (since, until) in windows {
        let (figures, days) = from_results(&db, since, until, 86_400);
        let (got, got_days, report) = from_report(&db, since, until);
        assert_eq!(report.bucket_seconds, 86_400, "a bucket per day");
        assert!(report.summarized_since.is_some(), "a window over days reads their summaries");
        assert_same(&got, &figures);
        assert_eq!(got_days, days);
        expected.push((figures, days));
    }
    let hours_before = hourly_rows(&db);

    // 6 days: the second window (from 4 days 5 hours back) then starts after the horizon's day at
    // any time of day; with 5, from 00:00 to 05:00 UTC it started inside the partly pruned day.
    let pruned = db.geoctl(&["db", "prune", "--older-than", "6d", "--yes", "-o", "json"]).success().json();
    assert!(db.count("monitor_results") < 384);
    // The hours of the days the horizon reached into are gone (those days are read from their
    // daily summaries); the hours after it are left as they were.
    let first_whole = "(SELECT date_trunc('day', max(pruned_before), 'UTC') + interval '1 day' FROM results_retention)";
    assert_eq!(
        db.scalar(&format!("SELECT count(*) FROM regional_monitor_hourly_summaries WHERE hour < {first_whole}")),
        "0"
    );
    let kept = hourly_rows(&db);
    assert!(!kept.is_empty() && hours_before.ends_with(&kept), "the hours after the horizon are kept");
    // Dropped with their days, none deleted row by row.
    assert_eq!(pruned["hourly_summaries"], 0, "{pruned}");
    let dropped = pruned["dropped_partitions"].to_string();
    for table in HOURLY {
        let day = day_name(table, today - Duration::days(6));
        assert!(dropped.contains(&day), "{day} not in {dropped}");
    }
    for ((since, until), (figures, days)) in windows.into_iter().zip(expected) {
        let (got, got_days, _) = from_report(&db, since, until);
        assert_same(&got, &figures);
        assert_eq!(got_days, days, "the same checks per day, pruned days from their summaries");
    }
    // A rebuild after the prune recomputes only the days left whole, their hours as they were.
    db.geoctl(&["summaries", "rebuild"]).success();
    assert_eq!(hourly_rows(&db), kept);
}

#[test]
fn a_day_reads_whole_hours_from_their_summaries_and_counts_as_the_results_do() {
    let db = TestDb::migrated();
    let id = monitor(&db);
    let now = Utc::now();
    // Every 7 minutes for 30 hours from two regions; one in nine down, TLS too.
    let batch = checks(id, now, 30 * 60 / 7, 7, 9, true);
    let written = write(&db, &batch[..200]) + write(&db, &batch[200..]);
    assert_eq!(written as usize, batch.len());
    // The running totals the writes kept are what a recompute from the results gives.
    let running = hourly_rows(&db);
    assert!(running.lines().count() >= 2 * 30, "{running}");
    db.geoctl(&["summaries", "rebuild"]).success();
    assert_eq!(hourly_rows(&db), running);

    // Up to now (its last hour whole from its running totals, the partial first hour from
    // results); and one ending inside an hour with later results, whose part is read from results.
    let windows =
        [(now - Duration::hours(24), now), (now - Duration::minutes(20 * 60 + 13), now - Duration::minutes(77))];
    for (since, until) in windows {
        let (figures, hours) = from_results(&db, since, until, 3_600);
        let (got, got_hours, report) = from_report(&db, since, until);
        assert_eq!(report.bucket_seconds, 3_600, "a bucket per hour");
        let (from, to) = (report.summarized_since.unwrap(), report.summarized_until.unwrap());
        assert!(since < from && from - since < Duration::hours(1), "the partial first hour from results: {from}");
        assert!(to <= until && until - to < Duration::hours(1), "{to}");
        assert_same(&got, &figures);
        assert_eq!(got_hours, hours);
        assert!(got.iter().all(|f| f.6.is_some()), "TLS averaged over the hours too");
        assert_percentiles_close(&report, &exact_percentiles(&db, since, until));
        assert_landed(&report, landed_from_metrics(&db, since, until));
    }
    // Six hours or less: results alone.
    let (_, _, report) = from_report(&db, now - Duration::hours(6), now);
    assert_eq!(report.summarized_since, None);
}

#[test]
fn hours_recorded_before_the_hourly_summaries_existed_are_read_from_results_until_a_rebuild() {
    let db = TestDb::migrated();
    let id = monitor(&db);
    let now = Utc::now();
    let batch: Vec<NewResult> = (0..20 * 6)
        .map(|n: i64| crate::results::result(id, "us-east", now - Duration::minutes(5 + 10 * n), true, 10.0 + n as f64))
        .collect();
    write(&db, &batch);
    // As a database migrated three hours ago with results in it: no hours before then.
    let coverage = "date_trunc('hour', now(), 'UTC') - interval '3 hours'";
    db.exec(&format!("DELETE FROM regional_monitor_hourly_summaries WHERE hour < {coverage}"));
    db.exec(&format!("UPDATE hourly_summaries_coverage SET complete_from = {coverage}"));
    let since = now - Duration::hours(20);
    let (figures, _) = from_results(&db, since, now, 3_600);
    let (got, _, report) = from_report(&db, since, now);
    assert_same(&got, &figures);
    let (from, _) = (report.summarized_since.unwrap(), report.summarized_until.unwrap());
    let covered = now - from;
    assert!(covered >= Duration::hours(3) && covered <= Duration::hours(4), "the hours before from results: {from}");
    db.geoctl(&["summaries", "rebuild"]).success();
    assert_eq!(db.scalar("SELECT count(*) FROM hourly_summaries_coverage WHERE complete_from IS NULL"), "1");
    let (got, _, report) = from_report(&db, since, now);
    assert_same(&got, &figures);
    assert!(report.summarized_since.unwrap() - since < Duration::hours(1));
}

#[test]
fn rows_written_around_geoctl_are_counted_at_once_and_summarised_by_maintain() {
    let db = TestDb::migrated();
    let id = monitor(&db);
    let now = Utc::now();
    // Every 10 minutes for 20 hours from two regions through geoctl: no hour is marked.
    write(&db, &checks(id, now, 20 * 6, 10, 9, false));
    assert_eq!(db.count("hourly_summaries_stale"), 0);
    let summarised = hourly_rows(&db);

    // The existing app's INSERT into an hour geoctl summarised, by a role of its own with no
    // right on geoctl's summary tables: a slow success and a failure, no run key.
    let role = format!("geoctl_app_{}", Uuid::new_v4().simple());
    db.exec(&format!(
        "CREATE ROLE {role}; GRANT INSERT ON monitor_results TO {role};
         GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}"
    ));
    let at = (now - Duration::hours(5)).to_rfc3339();
    db.exec(&format!(
        "SET ROLE {role};
         INSERT INTO monitor_results (monitor_id, checked_at, status, is_up, execution_region, total_time)
         VALUES ('{id}', '{at}', 'up', true, 'us-east', 900), ('{id}', '{at}', 'down', false, 'us-east', NULL);
         RESET ROLE"
    ));
    db.exec(&format!("DROP OWNED BY {role}; DROP ROLE {role}"));
    assert_eq!(db.count("hourly_summaries_stale"), 1);
    assert_eq!(hourly_rows(&db), summarised, "nothing of those rows reached the summaries");

    // A day's report counts them at once: their hour is read from results.
    let since = now - Duration::hours(24);
    let (figures, hours) = from_results(&db, since, now, 3_600);
    let (got, got_hours, report) = from_report(&db, since, now);
    assert!(report.summarized_since.is_some(), "the other hours from their summaries");
    assert_same(&got, &figures);
    assert_eq!(got_hours, hours);
    assert_percentiles_close(&report, &exact_percentiles(&db, since, now));

    // db maintain rebuilds that hour from its results and unmarks it; the report reads it from
    // its summary now and still counts them.
    let run = db.geoctl(&["db", "maintain"]).success();
    assert!(run.stderr.contains("1 hour(s)"), "{}", run.stderr);
    assert_eq!(db.count("hourly_summaries_stale"), 0);
    let rebuilt = hourly_rows(&db);
    assert_ne!(rebuilt, summarised);
    db.geoctl(&["summaries", "rebuild"]).success();
    assert_eq!(hourly_rows(&db), rebuilt, "the hour as a rebuild of every day has it");
    let (got, got_hours, _) = from_report(&db, since, now);
    assert_same(&got, &figures);
    assert_eq!(got_hours, hours);
}
