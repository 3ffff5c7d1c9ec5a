use serde_json::Value;

use crate::support::TestDb;

const HOSTILE: &str = "<script>alert(1)</script>";

/// Two monitors with results seeded by hand, so every number is known:
/// `web` from eu-west (4 of 5 up: 10, 20, 30, 40 ms, one failure at 500 ms;
/// DNS on the successful checks only, TLS never) and from us-east (100 and
/// 200 ms, DNS never); the hostile-named one from ap-south. Rows outside the
/// window or without a region must not count.
fn seeded() -> TestDb {
    let db = TestDb::migrated();
    let create = |name: &str, kind: &str, target: &str, regions: &str| -> String {
        let m = db
            .geoctl(&[
                "monitor",
                "create",
                "--name",
                name,
                "--type",
                kind,
                "--target",
                target,
                "--regions",
                regions,
                "-o",
                "json",
            ])
            .success()
            .json();
        m["id"].as_str().unwrap().to_string()
    };
    let web = create("web", "http", "https://example.com", "eu-west,us-east");
    let hostile = create(HOSTILE, "ping", "127.0.0.1", "ap-south");
    db.exec(&format!(
        "INSERT INTO monitor_results (monitor_id, checked_at, is_up, execution_region, dns_resolution_time, tcp_connect_time,
                                      tls_handshake_time, first_byte_time, total_time) VALUES
           ('{web}', now() - interval '200 minutes', true,  'eu-west', 1,    5,  NULL, 4,    10),
           ('{web}', now() - interval '150 minutes', true,  'eu-west', 2,    5,  NULL, 8,    20),
           ('{web}', now() - interval '100 minutes', false, 'eu-west', NULL, 5,  NULL, NULL, 500),
           ('{web}', now() - interval '50 minutes',  true,  'eu-west', 3,    5,  NULL, 12,   30),
           ('{web}', now() - interval '10 minutes',  true,  'eu-west', 4,    5,  NULL, 16,   40),
           ('{web}', now() - interval '3 days',      false, 'eu-west', 9,    9,  9,    9,    9999),
           ('{web}', now() - interval '120 minutes', true,  'us-east', NULL, 10, 20,   50,   100),
           ('{web}', now() - interval '20 minutes',  true,  'us-east', NULL, 10, 40,   50,   200),
           ('{web}', now() - interval '30 minutes',  true,  NULL,      NULL, 1,  1,    1,    1),
           ('{hostile}', now() - interval '40 minutes', true, 'ap-south', NULL, NULL, NULL, NULL, 12),
           ('{hostile}', now() - interval '5 minutes',  true, 'ap-south', NULL, NULL, NULL, NULL, 14)"
    ));
    db
}

fn monitor<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["monitors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

fn region<'a>(monitor: &'a Value, code: &str) -> &'a Value {
    monitor["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == code)
        .unwrap_or_else(|| panic!("no {code} in {monitor}"))
}

#[track_caller]
fn assert_close(value: &Value, expected: f64) {
    let actual = value.as_f64().unwrap_or_else(|| panic!("{value} is not a number"));
    assert!((actual - expected).abs() < 1e-9, "expected {expected}, got {actual}");
}

#[test]
fn json_has_exact_stats_null_phases_and_a_series_per_region() {
    let db = seeded();
    let report = db.geoctl(&["report", "--since", "24h", "-o", "json"]).success().json();
    assert!(report["since"].as_str().unwrap().parse::<chrono::DateTime<chrono::Utc>>().is_ok());
    assert_eq!(report["monitors"].as_array().unwrap().len(), 2);

    let web = monitor(&report, "web");
    let codes: Vec<&str> = web["regions"].as_array().unwrap().iter().map(|r| r["region"].as_str().unwrap()).collect();
    assert_eq!(codes, ["eu-west", "us-east"], "the row without a region is not a region");

    let eu = region(web, "eu-west");
    assert_eq!(eu["checks"], 5, "the 3-day-old row is outside the window");
    assert_eq!(eu["successful"], 4);
    assert_close(&eu["uptime_percentage"], 80.0);
    // Percentiles over the successful checks 10, 20, 30, 40 (interpolated, exact).
    assert_close(&eu["p50_ms"], 25.0);
    assert_close(&eu["p95_ms"], 38.5);
    assert_close(&eu["p99_ms"], 39.7);
    assert_close(&eu["avg_ms"], 25.0);
    assert_close(&eu["avg_dns_ms"], 2.5);
    assert_close(&eu["avg_connect_ms"], 5.0);
    assert_close(&eu["avg_first_byte_ms"], 10.0);
    assert!(eu["avg_tls_ms"].is_null(), "never measured is null, not 0: {eu}");

    let us = region(web, "us-east");
    assert_close(&us["uptime_percentage"], 100.0);
    assert_close(&us["p50_ms"], 150.0);
    assert_close(&us["avg_tls_ms"], 30.0);
    assert!(us["avg_dns_ms"].is_null());

    let series = eu["series"].as_array().unwrap();
    assert!((60..=61).contains(&series.len()), "{} buckets", series.len());
    let sum = |key: &str| series.iter().map(|b| b[key].as_i64().unwrap()).sum::<i64>();
    assert_eq!((sum("checks"), sum("successful")), (5, 4));
    assert!(series.iter().filter(|b| b["checks"] == 0).all(|b| b["avg_ms"].is_null()));
    let failed: Vec<&Value> = series.iter().filter(|b| b["checks"] != b["successful"]).collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["avg_ms"].is_null(), "a bucket whose only check failed has no response time");

    // One monitor by name, in YAML too.
    let only = db.geoctl(&["report", "--monitor", "web", "-o", "json"]).success().json();
    assert_eq!(only["monitors"].as_array().unwrap().len(), 1);
    let yaml = db.geoctl(&["report", "--monitor", "web", "-o", "yaml"]).success();
    assert!(yaml.stdout.contains("p50_ms: 25"), "{}", yaml.stdout);
}

#[test]
fn table_shows_each_region_a_dash_for_unmeasured_phases_and_a_chart() {
    let db = seeded();
    let run = db.geoctl(&["report"]).success();
    let out = &run.stdout;
    assert!(!out.contains('\x1b'), "no colour when stdout is not a terminal");
    let eu = out.lines().find(|l| l.contains("web") && l.contains("eu-west")).unwrap_or_else(|| panic!("{out}"));
    assert!(eu.contains("80.00%") && eu.contains("25.0 ms"), "{eu}");
    assert!(eu.split_whitespace().any(|t| t == "-"), "TLS shows `-`: {eu}");
    assert!(out.lines().any(|l| l.contains(HOSTILE) && l.contains("ap-south")), "{out}");

    // A sparkline per region: data, empty buckets and the failed bucket marked below.
    let charts = &out[out.find("Average response time").unwrap_or_else(|| panic!("no chart:\n{out}"))..];
    let line = charts.lines().find(|l| l.trim_start().starts_with("eu-west")).unwrap();
    assert!(line.contains('·') && line.contains('×') && line.chars().any(|c| ('▁'..='█').contains(&c)), "{line}");
    assert!(line.contains("min 10.0 ms") && line.contains("max 40.0 ms"), "{line}");
    let below = charts.lines().skip_while(|l| !l.trim_start().starts_with("eu-west")).nth(1).unwrap();
    assert_eq!(below.trim(), "×", "one bucket with failures is marked");
}

#[test]
fn html_page_is_self_contained_escapes_names_and_goes_with_json() {
    let db = seeded();
    std::fs::create_dir(db.dir().join("out")).unwrap();
    let run = db.geoctl(&["report", "--html", "out/report.html", "-o", "json"]).success();
    assert_eq!(run.json()["monitors"].as_array().unwrap().len(), 2, "JSON still goes to stdout");
    assert!(run.stderr.contains("wrote the HTML report to") && run.stderr.contains("report.html"), "{}", run.stderr);

    let entries: Vec<String> = std::fs::read_dir(db.dir().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries, ["report.html"], "no temporary file is left behind");
    let page = std::fs::read_to_string(db.dir().join("out/report.html")).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"));
    for tag in ["svg", "section", "table", "ul", "main"] {
        assert_eq!(
            page.matches(&format!("<{tag}")).count(),
            page.matches(&format!("</{tag}>")).count(),
            "unbalanced <{tag}>"
        );
    }
    // Line chart, uptime bars and phase bars for web; the ping monitor measured no phase.
    // (Legend swatches are small SVGs too, hidden from assistive technology.)
    assert_eq!(page.matches("<svg").count() - page.matches("aria-hidden=\"true\"><rect").count(), 5);
    assert_eq!(page.matches("role=\"img\"").count(), 5);
    assert!(page.contains("No phase was measured"));
    for code in ["eu-west", "us-east", "ap-south"] {
        assert!(page.contains(code), "{code} missing");
    }
    // Tera escapes `/` as well (`&#x2F;`), as OWASP advises for HTML text.
    assert!(page.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;"));
    assert!(!page.contains("<script"), "the hostile name is escaped and the page has no scripts");
    for external in ["http://", "https://", "src=", "<link", "url("] {
        assert!(!page.contains(external), "the page must not load anything: found {external}");
    }

    // Writing again replaces the page whole.
    db.geoctl(&["report", "--monitor", "web", "--html", "out/report.html"]).success();
    let page = std::fs::read_to_string(db.dir().join("out/report.html")).unwrap();
    assert!(!page.contains("alert(1)") && page.contains("eu-west"));
}

#[test]
fn bad_input_exits_2_and_writes_no_file() {
    let db = seeded();
    db.geoctl(&["report", "--monitor", "nope", "--html", "nope.html"]).usage_error(&["no monitor `nope`"]);
    assert!(!db.dir().join("nope.html").exists());
    db.geoctl(&["report", "--since", "soon", "--html", "soon.html"]).usage_error(&["--since"]);
    assert!(!db.dir().join("soon.html").exists());

    // A directory that does not exist is refused before the report is built or printed.
    let run = db.geoctl(&["report", "--html", "missing/report.html"]).usage_error(&["does not exist"]);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(!db.dir().join("missing").exists());
}

#[test]
fn no_results_in_the_window_is_an_empty_report_with_a_note() {
    let db = TestDb::migrated();
    db.geoctl(&["monitor", "create", "--name", "quiet", "--type", "ping", "--target", "127.0.0.1"]).success();
    let run = db.geoctl(&["report", "--since", "1h", "-o", "json", "--html", "empty.html"]).success();
    assert!(run.stderr.contains("no results since"), "{}", run.stderr);
    let report = run.json();
    assert_eq!(monitor(&report, "quiet")["regions"], Value::Array(vec![]));
    let page = std::fs::read_to_string(db.dir().join("empty.html")).unwrap();
    assert!(page.contains("No results in this window") && page.contains("quiet"));

    let table = db.geoctl(&["report"]).success();
    assert!(!table.stdout.contains("Average response time"), "no charts without data:\n{}", table.stdout);
}
