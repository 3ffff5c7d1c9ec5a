use serde_json::Value;

use crate::support::TestDb;

fn region_codes(monitor: &Value) -> Vec<String> {
    let mut codes: Vec<String> =
        monitor["regions"].as_array().unwrap().iter().map(|r| r["region"].as_str().unwrap().to_string()).collect();
    codes.sort();
    codes
}

#[test]
fn create_in_chosen_regions_all_regions_or_refuse_unknown_ones() {
    let db = TestDb::migrated();
    let web = db
        .geoctl(&[
            "monitor",
            "create",
            "--name",
            "web",
            "--type",
            "http",
            "--target",
            "https://example.com",
            "--every",
            "1m",
            "--regions",
            "eu-west,ap-south",
            "--output",
            "json",
        ])
        .success()
        .json();
    assert_eq!(region_codes(&web), ["ap-south", "eu-west"]);
    assert_eq!(web["type"], "http_request");
    assert_eq!(web["interval_seconds"], 60);
    assert_eq!(web["frequency_minutes"], 1);

    let all = db
        .geoctl(&[
            "monitor",
            "create",
            "--name",
            "all",
            "--type",
            "http",
            "--target",
            "https://example.com",
            "-o",
            "json",
        ])
        .success()
        .json();
    assert_eq!(region_codes(&all), ["ap-south", "eu-west", "us-east"]);

    let before = db.count("monitors");
    db.geoctl(&[
        "monitor",
        "create",
        "--name",
        "typo",
        "--type",
        "http",
        "--target",
        "https://example.com",
        "--regions",
        "eu-wset",
    ])
    .usage_error(&["unknown region `eu-wset`", "us-east", "eu-west", "ap-south"]);
    db.geoctl(&["monitor", "create", "--name", "web", "--type", "http", "--target", "https://example.org"])
        .usage_error(&["already exists"]);
    assert_eq!(db.count("monitors"), before);
    assert_eq!(db.count("monitor_regions"), 5);

    // A disabled region is refused too, and named as such.
    db.geoctl(&["region", "disable", "ap-south"]).success();
    db.geoctl(&[
        "monitor",
        "create",
        "--name",
        "x",
        "--type",
        "ping",
        "--target",
        "127.0.0.1",
        "--regions",
        "ap-south",
    ])
    .usage_error(&["disabled", "active regions: us-east, eu-west"]);
    let only_active = db
        .geoctl(&[
            "monitor",
            "create",
            "--name",
            "active-only",
            "--type",
            "ping",
            "--target",
            "127.0.0.1",
            "-o",
            "json",
        ])
        .success()
        .json();
    assert_eq!(region_codes(&only_active), ["eu-west", "us-east"]);
}

#[test]
fn bad_input_is_refused_and_nothing_is_written() {
    let db = TestDb::migrated();
    let base = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut args = vec!["monitor", "create", "--name", "bad"];
        args.extend_from_slice(extra);
        args
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (base(&["--type", "http", "--target", "example.com"]), "did you mean https://example.com"),
        (base(&["--type", "http", "--target", "ftp://example.com/file"]), "unsupported scheme `ftp`"),
        (base(&["--type", "http", "--target", "https://"]), "invalid http target"),
        (base(&["--type", "http", "--target", "https://user:pw@example.com"]), "credentials"),
        (base(&["--type", "tcp", "--target", "db.example.com"]), "HOST:PORT"),
        (base(&["--type", "tcp", "--target", "db.example.com:99999"]), "port"),
        (base(&["--type", "ping", "--target", "http://x"]), "without scheme"),
        (base(&["--type", "dns", "--target", "10.0.0.1"]), "domain name"),
        (base(&["--type", "smtp", "--target", "x"]), "unknown monitor type `smtp`"),
        (base(&["--type", "http", "--target", "https://e.com", "--every", "5s"]), "too short"),
        (base(&["--type", "http", "--target", "https://e.com", "--every", "2d"]), "too long"),
        (base(&["--type", "http", "--target", "https://e.com", "--every", "0s"]), "at least 1s"),
        (base(&["--type", "http", "--target", "https://e.com", "--every", "-5m"]), "invalid duration"),
        (base(&["--type", "http", "--target", "https://e.com", "--every", "30"]), "no unit"),
        (base(&["--type", "http", "--target", "https://e.com", "--every", "1m", "--timeout", "2m"]), "timeout"),
        (base(&["--type", "http", "--target", "https://e.com", "--header", "NoColon"]), "invalid header"),
        (base(&["--type", "http", "--target", "https://e.com", "--expect-status", "2xx"]), "status"),
        (base(&["--type", "http", "--target", "https://e.com", "--down-when", "most"]), "invalid down rule"),
        (base(&["--type", "tcp", "--target", "h:1", "--keyword", "ok"]), "`keyword` applies to http monitors only"),
        (base(&["--type", "http", "--target", "https://e.com", "--record-type", "MX"]), "dns monitors only"),
        (base(&["--type", "http", "--target", "https://e.com", "--regions", ""]), "region"),
        (base(&["--type", "http", "--target", "https://e.com", "--bogus"]), "--bogus"),
        (vec!["monitor", "create", "--name", "", "--type", "http", "--target", "https://e.com"], "name"),
    ];
    for (args, needle) in &cases {
        db.geoctl(args).usage_error(&[needle]);
    }
    assert_eq!(db.count("monitors"), 0);
    assert_eq!(db.count("monitor_regions"), 0);

    // --force lifts the interval bounds.
    let fast = db
        .geoctl(&[
            "monitor",
            "create",
            "--name",
            "fast",
            "--type",
            "http",
            "--target",
            "https://e.com",
            "--every",
            "5s",
            "--timeout",
            "5s",
            "--force",
            "-o",
            "json",
        ])
        .success()
        .json();
    assert_eq!(fast["interval_seconds"], 5);
    assert_eq!(fast["frequency_minutes"], 1);
}

#[test]
fn both_type_spellings_and_type_specific_settings() {
    let db = TestDb::migrated();
    let m = db
        .geoctl(&[
            "monitor",
            "create",
            "--name",
            "api",
            "--type",
            "http_request",
            "--target",
            "https://api.example.com/health",
            "--every",
            "30s",
            "--timeout",
            "5s",
            "--expect-status",
            "200-299,301",
            "--keyword",
            "ok",
            "--method",
            "head",
            "--header",
            "Authorization: Bearer abc123",
            "--header",
            "X-Trace: yes",
            "--down-when",
            "at-least:2",
            "-o",
            "json",
        ])
        .success()
        .json();
    assert_eq!(m["type"], "http_request");
    assert_eq!(m["interval_seconds"], 30);
    assert_eq!(m["timeout_ms"], 5000);
    assert_eq!(m["down_rule"], "at-least:2");
    assert_eq!(m["config"]["expected_status"], "200-299,301");
    assert_eq!(m["config"]["method"], "HEAD");
    // Credentials in headers are stored for the probe but never shown.
    assert_eq!(m["config"]["headers"][0]["value"], "****");
    assert_eq!(m["config"]["headers"][1]["value"], "yes");
    assert!(db.scalar("SELECT config FROM monitors WHERE name = 'api'").contains("abc123"));
    let shown = db.geoctl(&["monitor", "show", "api"]).success();
    assert!(!shown.stdout.contains("abc123"));

    for (kind, stored, target) in [
        ("tcp", "port_check", "db.internal:5432"),
        ("ping_host", "ping_host", "10.1.2.3"),
        ("dns", "dns", "example.com"),
    ] {
        let m = db
            .geoctl(&["monitor", "create", "--name", kind, "--type", kind, "--target", target, "-o", "json"])
            .success()
            .json();
        assert_eq!(m["type"], stored);
    }
    let dns = db
        .geoctl(&[
            "monitor",
            "update",
            "dns",
            "--record-type",
            "mx",
            "--expect-answer",
            "mail.example.com",
            "-o",
            "json",
        ])
        .success()
        .json();
    assert_eq!(dns["config"]["record_type"], "MX");
}

#[test]
fn geo_distribution_off_keeps_monitors_in_the_default_region() {
    let db = TestDb::migrated();
    let env = [("ENABLE_GEO_DISTRIBUTION", "false")];
    let m = db
        .geoctl_with(
            &["monitor", "create", "--name", "local", "--type", "ping", "--target", "127.0.0.1", "-o", "json"],
            &env,
        )
        .success()
        .json();
    assert_eq!(region_codes(&m), ["us-east"]);
    db.geoctl_with(
        &["monitor", "create", "--name", "far", "--type", "ping", "--target", "127.0.0.1", "--regions", "eu-west"],
        &env,
    )
    .usage_error(&["ENABLE_GEO_DISTRIBUTION=false", "eu-west"]);
    let env = [("ENABLE_GEO_DISTRIBUTION", "false"), ("DEFAULT_REGION", "ap-south")];
    let m = db
        .geoctl_with(
            &["monitor", "create", "--name", "mumbai", "--type", "ping", "--target", "127.0.0.1", "-o", "json"],
            &env,
        )
        .success()
        .json();
    assert_eq!(region_codes(&m), ["ap-south"]);
}

#[test]
fn lifecycle_update_pause_regions_overrides_delete() {
    let db = TestDb::migrated();
    db.geoctl(&[
        "monitor",
        "create",
        "--name",
        "web",
        "--type",
        "http",
        "--target",
        "https://example.com",
        "--regions",
        "us-east",
    ])
    .success();
    let id = db.scalar("SELECT id FROM monitors WHERE name = 'web'");

    // Named by id or by name.
    assert_eq!(db.geoctl(&["monitor", "show", &id, "-o", "json"]).success().json()["name"], "web");
    db.geoctl(&["monitor", "show", "nope"]).usage_error(&["no monitor `nope`"]);

    let updated =
        db.geoctl(&["monitor", "update", "web", "--every", "90s", "--name", "website", "-o", "json"]).success().json();
    assert_eq!((updated["interval_seconds"].as_i64(), updated["frequency_minutes"].as_i64()), (Some(90), Some(2)));
    assert!(db.geoctl(&["monitor", "update", "website", "--every", "90s"]).success().stderr.contains("unchanged"));
    db.geoctl(&["monitor", "update", "website", "--every", "5s"]).usage_error(&["too short"]);
    db.geoctl(&["monitor", "update", "website", "--target", "tcp://x"]).usage_error(&["scheme"]);
    db.geoctl(&["monitor", "update", "website"]).usage_error(&["nothing to update"]);
    let dry = db.geoctl(&["monitor", "update", "website", "--every", "10m", "--dry-run", "-o", "json"]).success();
    assert_eq!(dry.json()["interval_seconds"], 600);
    assert_eq!(db.scalar(&format!("SELECT interval_seconds FROM monitors WHERE id = '{id}'")), "90");

    db.geoctl(&["monitor", "pause", "website"]).success();
    assert_eq!(db.scalar("SELECT enabled FROM monitors"), "false");
    assert!(db.geoctl(&["monitor", "pause", "website"]).success().stderr.contains("unchanged"));
    db.geoctl(&["monitor", "resume", "website"]).success();
    assert_eq!(db.scalar("SELECT status FROM monitors"), "active");

    let m = db.geoctl(&["monitor", "regions", "add", "website", "eu-west,ap-south", "-o", "json"]).success().json();
    assert_eq!(region_codes(&m), ["ap-south", "eu-west", "us-east"]);
    let m = db.geoctl(&["monitor", "regions", "remove", "website", "us-east", "-o", "json"]).success().json();
    assert_eq!(region_codes(&m), ["ap-south", "eu-west"]);
    db.geoctl(&["monitor", "regions", "remove", "website", "ap-south,eu-west"]).usage_error(&["at least one region"]);
    db.geoctl(&["monitor", "regions", "add", "website", "mars-1"]).usage_error(&["unknown region `mars-1`"]);

    let m = db
        .geoctl(&[
            "monitor",
            "regions",
            "set",
            "website",
            "--region",
            "eu-west",
            "--timeout",
            "20s",
            "--every",
            "5m",
            "--latency-warning",
            "400ms",
            "--latency-critical",
            "900ms",
            "--priority",
            "5",
            "--notes",
            "slow CDN",
            "-o",
            "json",
        ])
        .success()
        .json();
    let eu = m["regions"].as_array().unwrap().iter().find(|r| r["region"] == "eu-west").unwrap();
    assert_eq!((eu["timeout_ms"].as_i64(), eu["interval_seconds"].as_i64()), (Some(20_000), Some(300)));
    assert_eq!(eu["notes"], "slow CDN");
    db.geoctl(&["monitor", "regions", "set", "website", "--region", "us-east", "--timeout", "5s"])
        .usage_error(&["does not run in region `us-east`"]);
    db.geoctl(&["monitor", "regions", "set", "website", "--region", "eu-west", "--latency-warning", "1s"])
        .usage_error(&["must be below"]);
    db.geoctl(&["monitor", "regions", "set", "website", "--region", "eu-west", "--schedule", "soon"])
        .usage_error(&["cron"]);

    // Replacing the set keeps the overrides of a region that stays.
    let m = db.geoctl(&["monitor", "regions", "set", "website", "eu-west,us-east", "-o", "json"]).success().json();
    assert_eq!(region_codes(&m), ["eu-west", "us-east"]);
    assert_eq!(db.scalar("SELECT timeout_ms FROM monitor_regions WHERE region_code = 'eu-west'"), "20000");

    db.geoctl(&["monitor", "delete", "website"]).usage_error(&["--yes"]);
    db.geoctl(&["monitor", "delete", "website", "--dry-run"]).success();
    assert_eq!(db.count("monitors"), 1);
    db.geoctl(&["monitor", "delete", "website", "--yes"]).success();
    assert_eq!((db.count("monitors"), db.count("monitor_regions")), (0, 0));
}

#[test]
fn duplicate_legacy_names_must_be_named_by_id() {
    let db = TestDb::migrated();
    db.exec("INSERT INTO monitors (name, type, target) VALUES ('twin', 'http_request', 'https://a.example'), ('twin', 'http_request', 'https://b.example')");
    db.geoctl(&["monitor", "show", "twin"]).usage_error(&["2 monitors are named `twin`"]);
    let id = db.scalar("SELECT id FROM monitors WHERE target = 'https://b.example'");
    assert_eq!(db.geoctl(&["monitor", "show", &id, "-o", "json"]).success().json()["target"], "https://b.example");
}

#[test]
fn list_output_formats_parse() {
    let db = TestDb::migrated();
    db.geoctl(&["monitor", "create", "--name", "web", "--type", "http", "--target", "https://example.com"]).success();
    let json = db.geoctl(&["monitor", "list", "-o", "json"]).success().json();
    assert_eq!(json.as_array().unwrap().len(), 1);
    let yaml = db.geoctl(&["monitor", "list", "-o", "yaml"]).success();
    let parsed: Value = serde_yaml_ng::from_str(&yaml.stdout).unwrap();
    assert_eq!(parsed[0]["name"], "web");
    let table = db.geoctl(&["monitor", "list"]).success();
    assert!(table.stdout.contains("web") && table.stdout.contains("NAME"));
    // Not a terminal: no colour codes, no box drawing.
    assert!(!table.stdout.contains('\u{1b}') && !table.stdout.contains('│'));
}

#[test]
fn apply_a_monitors_file_is_idempotent_and_all_or_nothing() {
    let db = TestDb::migrated();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/monitors.yaml");
    let dry = db.geoctl(&["monitor", "apply", "-f", example, "--dry-run", "-o", "json"]).success().json();
    assert_eq!(dry.as_array().unwrap().len(), 4);
    assert!(dry.as_array().unwrap().iter().all(|a| a["change"] == "created"));
    assert_eq!(db.count("monitors"), 0);

    let first = db.geoctl(&["monitor", "apply", "-f", example, "-o", "json"]).success().json();
    assert!(first.as_array().unwrap().iter().all(|a| a["change"] == "created"));
    assert_eq!(db.count("monitors"), 4);
    let home = db.geoctl(&["monitor", "show", "homepage", "-o", "json"]).success().json();
    assert_eq!(region_codes(&home), ["ap-south", "eu-west", "us-east"]);
    let ap = home["regions"].as_array().unwrap().iter().find(|r| r["region"] == "ap-south").unwrap().clone();
    assert_eq!((ap["timeout_ms"].as_i64(), ap["latency_critical_ms"].as_i64()), (Some(20_000), Some(800)));
    assert_eq!(
        db.geoctl(&["monitor", "show", "mail-exchanger", "-o", "json"]).success().json()["config"]["record_type"],
        "MX"
    );

    let again = db.geoctl(&["monitor", "apply", "-f", example, "-o", "json"]).success();
    assert!(again.json().as_array().unwrap().iter().all(|a| a["change"] == "unchanged"), "{}", again.stdout);
    assert!(again.stderr.contains("nothing to change"));

    // A change to one monitor updates only it; a removed key is removed.
    let edited = std::fs::read_to_string(example)
        .unwrap()
        .replace("    keyword: Example Domain\n", "")
        .replace("every: 30s", "every: 45s");
    let path = db.dir().join("edited.yaml");
    std::fs::write(&path, &edited).unwrap();
    let changed = db.geoctl(&["monitor", "apply", "-f", path.to_str().unwrap(), "-o", "json"]).success().json();
    let change = |name: &str| changed.as_array().unwrap().iter().find(|a| a["name"] == name).unwrap()["change"].clone();
    assert_eq!(
        (change("homepage"), change("api-database"), change("edge-gateway")),
        ("updated".into(), "updated".into(), "unchanged".into())
    );
    assert_eq!(db.scalar("SELECT config ? 'keyword' FROM monitors WHERE name = 'homepage'"), "false");

    // One bad entry: nothing at all is written, and the entry is named.
    let bad = edited.replace("regions: [us-east]", "regions: [eu-wset]").replace("name: edge-gateway", "name: new-one");
    std::fs::write(&path, bad).unwrap();
    db.geoctl(&["monitor", "apply", "-f", path.to_str().unwrap()])
        .usage_error(&["monitors[1] (`api-database`)", "unknown region `eu-wset`"]);
    assert_eq!(db.count("monitors"), 4);
    assert_eq!(db.scalar("SELECT count(*) FROM monitors WHERE name = 'new-one'"), "0");

    for (text, needle) in [
        (
            "monitors:\n  - name: x\n    type: http\n    target: https://e.com\n    colour: red\n",
            "unknown field `colour`",
        ),
        ("monitors:\n  - name: x\n    type: smtp\n    target: e.com\n", "unknown monitor type"),
        (
            "monitors:\n  - {name: x, type: ping, target: 10.0.0.1}\n  - {name: x, type: ping, target: 10.0.0.2}\n",
            "declared twice",
        ),
        ("monitors:\n  - {name: x, type: tcp, target: db:1, keyword: up}\n", "`keyword` applies to http"),
        ("not yaml: [", "invalid monitors file"),
    ] {
        std::fs::write(&path, text).unwrap();
        db.geoctl(&["monitor", "apply", "-f", path.to_str().unwrap()]).usage_error(&[needle]);
    }
    db.geoctl(&["monitor", "apply", "-f", "/nonexistent.yaml"]).usage_error(&["cannot read"]);
    assert_eq!(db.count("monitors"), 4);
}

/// A monitors file's headers resolve `@FILE` and `env:VAR` as `--header` does, in the monitor's
/// headers and in its region overrides: the stored value is the file's or the variable's, never
/// the reference; an unset variable is exit 2 naming the entry and the variable, and nothing is
/// written.
#[test]
fn apply_files_resolve_header_references_like_the_flags() {
    let db = TestDb::migrated();
    let token = db.dir().join("token");
    std::fs::write(&token, "Bearer from-a-file\n").unwrap();
    let path = db.dir().join("monitors.yaml");
    let text = format!(
        "monitors:\n  - name: api\n    type: http\n    target: https://api.example.com/\n    regions: [eu-west]\n    \
         headers:\n      - \"Authorization: @{}\"\n      - \"X-Api-Key: env:GEOCTL_TEST_API_KEY\"\n    \
         region_overrides:\n      eu-west:\n        headers: [\"X-Region-Key: env:GEOCTL_TEST_REGION_KEY\"]\n",
        token.display()
    );
    std::fs::write(&path, &text).unwrap();
    let file = path.to_str().unwrap();
    let env = [("GEOCTL_TEST_API_KEY", "key-from-env"), ("GEOCTL_TEST_REGION_KEY", "region-key-from-env")];
    let applied = db.geoctl_with(&["monitor", "apply", "-f", file, "-o", "json"], &env).success();
    assert_eq!(applied.json()[0]["change"], "created", "{}", applied.stdout);
    let config = db.scalar("SELECT config::text FROM monitors WHERE name = 'api'");
    assert!(config.contains("Bearer from-a-file") && config.contains("key-from-env"), "{config}");
    assert!(!config.contains("env:") && !config.contains('@'), "a reference was stored as the value: {config}");
    let overrides = db.scalar("SELECT headers::text FROM monitor_regions WHERE region_code = 'eu-west'");
    assert!(overrides.contains("region-key-from-env") && !overrides.contains("env:"), "{overrides}");
    assert!(
        !applied.stdout.contains("key-from-env") && !applied.stderr.contains("key-from-env"),
        "a secret was printed"
    );
    let again = db.geoctl_with(&["monitor", "apply", "-f", file, "-o", "json"], &env).success();
    assert_eq!(again.json()[0]["change"], "unchanged", "{}", again.stdout);

    let missing = text.replace("name: api", "name: api-2").replace("GEOCTL_TEST_API_KEY", "GEOCTL_TEST_UNSET_KEY");
    std::fs::write(&path, format!("{}{}", text, missing.trim_start_matches("monitors:\n"))).unwrap();
    db.geoctl_with(&["monitor", "apply", "-f", file], &env).usage_error(&[
        "monitors[1] (`api-2`)",
        "headers[1]",
        "GEOCTL_TEST_UNSET_KEY",
        "not set",
    ]);
    assert_eq!(db.count("monitors"), 1);
}

/// `trace_every` in a monitors file is owned like the other check settings: set, unchanged on a
/// second apply, removed when the line is, and refused (exit 2, nothing written) out of range or
/// on a DNS monitor, which has no route.
#[test]
fn apply_files_set_and_remove_trace_every() {
    let db = TestDb::migrated();
    let path = db.dir().join("monitors.yaml");
    let apply = |text: &str| {
        std::fs::write(&path, text).unwrap();
        db.geoctl(&["monitor", "apply", "-f", path.to_str().unwrap(), "-o", "json"])
    };
    let traced = "monitors:\n  - {name: edge, type: ping, target: 127.0.0.1, trace_every: 5}\n";
    assert_eq!(apply(traced).success().json()[0]["change"], "created");
    assert_eq!(db.scalar("SELECT config->>'trace_every' FROM monitors WHERE name = 'edge'"), "5");
    assert_eq!(apply(traced).success().json()[0]["change"], "unchanged");

    for (text, needle) in [
        ("monitors:\n  - {name: edge, type: ping, target: 127.0.0.1, trace_every: 0}\n", "must be 1"),
        ("monitors:\n  - {name: edge, type: ping, target: 127.0.0.1, trace_every: 10001}\n", "must be 1"),
        ("monitors:\n  - {name: edge, type: ping, target: 127.0.0.1, trace_every: -1}\n", "trace_every"),
        ("monitors:\n  - {name: resolver, type: dns, target: example.com, trace_every: 2}\n", "not a route"),
    ] {
        apply(text).usage_error(&[needle]);
    }
    assert_eq!(db.scalar("SELECT config->>'trace_every' FROM monitors WHERE name = 'edge'"), "5");
    assert_eq!(db.count("monitors"), 1);

    let untraced = "monitors:\n  - {name: edge, type: ping, target: 127.0.0.1}\n";
    assert_eq!(apply(untraced).success().json()[0]["change"], "updated");
    assert_eq!(db.scalar("SELECT config ? 'trace_every' FROM monitors WHERE name = 'edge'"), "false");
}

/// Running a changing command twice is safe: an identical create is "unchanged" (exit 0), a
/// differing one is refused pointing at `update`, and deleting what is absent is exit 2 naming
/// it unless --ignore-not-found.
#[test]
fn create_twice_is_unchanged_and_deleting_the_absent_is_named() {
    let db = TestDb::migrated();
    let create = ["monitor", "create", "--name", "web", "--type", "http", "--target", "https://example.com/"];
    db.geoctl(&create).success();
    let again = db.geoctl(&create).success();
    assert!(again.stderr.contains("unchanged"), "{}", again.stderr);
    let mut with_regions = create.to_vec();
    with_regions.extend(["--regions", "eu-west,us-east,ap-south", "--header", "X-Trace: 1"]);
    let differs = db.geoctl(&with_regions).usage_error(&["already exists", "check settings", "monitor update web"]);
    assert!(!differs.stderr.contains("regions"), "all active regions is the same: {}", differs.stderr);
    let mut other_target = create.to_vec();
    other_target[7] = "https://example.org/";
    db.geoctl(&other_target).usage_error(&["different target"]);
    assert_eq!(db.count("monitors"), 1);

    db.geoctl(&["monitor", "delete", "wbe", "--yes"]).usage_error(&["no monitor `wbe`"]);
    assert!(db.geoctl(&["monitor", "delete", "wbe", "--yes", "--ignore-not-found"]).success().stderr.contains("wbe"));
    db.geoctl(&["region", "delete", "eu-wset", "--yes"]).usage_error(&["unknown region `eu-wset`"]);
    db.geoctl(&["region", "delete", "eu-wset", "--yes", "--ignore-not-found"]).success();
    assert_eq!(db.count("monitors"), 1);
    assert_eq!(db.count("regions"), 3);
}
