use crate::support::TestDb;

#[test]
fn seed_regions_with_their_thresholds() {
    let db = TestDb::migrated();
    let regions = db.geoctl(&["region", "list", "--output", "json"]).success().json();
    let regions = regions.as_array().unwrap();
    let find = |code: &str| regions.iter().find(|r| r["code"] == code).unwrap_or_else(|| panic!("{code} missing"));
    assert_eq!(regions.len(), 3);
    let us = find("us-east");
    assert_eq!((us["latency_warning_ms"].as_i64(), us["latency_critical_ms"].as_i64()), (Some(200), Some(500)));
    assert_eq!(us["default"], true);
    assert_eq!(us["city"], "Ashburn");
    assert_eq!(us["latitude"], 39.0438);
    let eu = find("eu-west");
    assert_eq!((eu["latency_warning_ms"].as_i64(), eu["latency_critical_ms"].as_i64()), (Some(150), Some(300)));
    assert_eq!((eu["country"].as_str(), eu["longitude"].as_f64()), (Some("IE"), Some(-6.2603)));
    let ap = find("ap-south");
    assert_eq!((ap["latency_warning_ms"].as_i64(), ap["latency_critical_ms"].as_i64()), (Some(100), Some(250)));
    assert_eq!(ap["name"], "AP South (Mumbai)");

    let yaml = db.geoctl(&["region", "show", "eu-west", "-o", "yaml"]).success();
    let parsed: serde_json::Value = serde_yaml_ng::from_str(&yaml.stdout).unwrap();
    assert_eq!(parsed["code"], "eu-west");
    let table = db.geoctl(&["region", "list"]).success();
    assert!(table.stdout.contains("EU West (Ireland)") && table.stdout.contains("150ms"));
}

#[test]
fn add_update_and_validation() {
    let db = TestDb::migrated();
    let add = [
        "region",
        "add",
        "eu-central",
        "--name",
        "EU Central (Frankfurt)",
        "--city",
        "Frankfurt",
        "--country",
        "de",
        "--latitude",
        "50.1109",
        "--longitude",
        "8.6821",
        "--latency-warning",
        "120ms",
        "--latency-critical",
        "240ms",
        "-o",
        "json",
    ];
    let created = db.geoctl(&add).success().json();
    assert_eq!(created["country"], "DE");
    assert_eq!(created["latency_warning_ms"], 120);
    // Adding the same region again is a no-op; with other values it is refused.
    let again = db.geoctl(&add).success();
    assert!(again.stderr.contains("unchanged"), "{}", again.stderr);
    db.geoctl(&["region", "add", "eu-central", "--name", "Other"]).usage_error(&["already exists"]);

    let long_name = "x".repeat(100_000);
    let bad: &[(&[&str], &str)] = &[
        (&["region", "add", "EU_North", "--name", "x"], "invalid region code"),
        (&["region", "add", "x", "--name", "x"], "invalid region code"),
        (&["region", "add", "eu-north", "--name", "x", "--country", "XX"], "unknown country code `XX`"),
        (&["region", "add", "eu-north", "--name", "x", "--country", "SWE"], "ISO 3166-1"),
        (&["region", "add", "eu-north", "--name", "x", "--latitude", "91"], "latitude"),
        (&["region", "add", "eu-north", "--name", "x", "--longitude", "-181"], "longitude"),
        (
            &["region", "add", "eu-north", "--name", "x", "--latency-warning", "300ms", "--latency-critical", "200ms"],
            "must be below",
        ),
        (&["region", "add", "eu-north", "--name", "x", "--latency-warning", "fast"], "invalid"),
        (&["region", "add", "eu-north"], "name"),
        (&["region", "update", "eu-west", "--latency-warning", "400ms"], "must be below"),
        (&["region", "update", "eu-wset", "--city", "Cork"], "did you mean `eu-west`"),
        (&["region", "update", "eu-west"], "nothing to update"),
        (&["region", "add", "eu-north", "--name", "evil\u{1b}]0;owned\u{7}"], "control characters"),
        (&["region", "update", "eu-west", "--city", "Cork\u{1b}[2J"], "control characters"),
        (&["region", "add", "eu-north", "--name", &long_name], "at most 100 characters"),
        (&["region", "add", "eu-\u{1b}]0;x", "--name", "x"], "invalid region code"),
    ];
    for (args, needle) in bad {
        let run = db.geoctl(args).usage_error(&[needle]);
        assert!(!run.stderr.contains('\u{1b}'), "a control character reached the terminal: {:?}", run.stderr);
        assert!(run.stderr.len() < 2000, "the error repeats the input: {} bytes", run.stderr.len());
    }
    assert_eq!(db.count("regions"), 4);
    assert_eq!(db.scalar("SELECT latency_warning_ms FROM regions WHERE code = 'eu-west'"), "150");

    let dry = db.geoctl(&["region", "update", "eu-west", "--city", "Cork", "--dry-run", "-o", "json"]).success();
    assert_eq!(dry.json()["city"], "Cork");
    assert_eq!(db.scalar("SELECT city FROM regions WHERE code = 'eu-west'"), "Dublin");
    let updated = db.geoctl(&["region", "update", "eu-west", "--city", "Cork", "-o", "json"]).success().json();
    assert_eq!(updated["city"], "Cork");
    assert!(db.geoctl(&["region", "update", "eu-west", "--city", "Cork"]).success().stderr.contains("unchanged"));
}

#[test]
fn exactly_one_default_and_regions_in_use_are_kept() {
    let db = TestDb::migrated();
    db.geoctl(&["region", "disable", "us-east"]).usage_error(&["default region"]);
    db.geoctl(&["region", "set-default", "eu-west"]).success();
    assert_eq!(db.scalar("SELECT string_agg(code, ',') FROM regions WHERE is_default"), "eu-west");
    db.geoctl(&["region", "disable", "us-east"]).success();
    assert!(db.geoctl(&["region", "disable", "us-east"]).success().stderr.contains("unchanged"));
    db.geoctl(&["region", "set-default", "us-east"]).usage_error(&["disabled"]);
    db.geoctl(&["region", "enable", "us-east"]).success();

    db.geoctl(&[
        "monitor",
        "create",
        "--name",
        "api",
        "--type",
        "tcp",
        "--target",
        "127.0.0.1:5432",
        "--regions",
        "ap-south",
    ])
    .success();
    db.geoctl(&["region", "delete", "ap-south", "--yes"]).usage_error(&["in use by 1 monitor"]);
    db.geoctl(&["region", "delete", "eu-west", "--yes"]).usage_error(&["default region"]);
    // No terminal and no --yes: refuse rather than guess.
    db.geoctl(&["region", "delete", "us-east"]).usage_error(&["--yes"]);
    assert_eq!(db.count("regions"), 3);
    db.geoctl(&["region", "delete", "us-east", "--dry-run"]).success();
    assert_eq!(db.count("regions"), 3);
    db.geoctl(&["region", "delete", "us-east", "--yes"]).success();
    assert_eq!(db.count("regions"), 2);
}
