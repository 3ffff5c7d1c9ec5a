use crate::support::{geoctl_in, TestDb};

#[test]
fn migrate_twice_on_an_empty_database() {
    let db = TestDb::empty();
    let status = db.geoctl(&["db", "status", "-o", "json"]).success().json();
    assert!(status.as_array().unwrap().iter().all(|m| m["applied"] == false));

    let first = db.geoctl(&["db", "migrate", "-o", "json"]).success().json();
    assert_eq!(first["applied"].as_array().unwrap().len(), status.as_array().unwrap().len());
    let second = db.geoctl(&["db", "migrate", "-o", "json"]).success();
    assert!(second.stderr.contains("up to date"), "{}", second.stderr);
    assert_eq!(second.json()["applied"].as_array().unwrap().len(), 0);

    let status = db.geoctl(&["db", "status", "-o", "json"]).success().json();
    assert!(status.as_array().unwrap().iter().all(|m| m["applied"] == true && m["checksum_mismatch"] == false));
    assert_eq!(db.count("regions"), 3);
}

#[test]
fn migrate_dry_run_changes_nothing() {
    let db = TestDb::empty();
    let run = db.geoctl(&["db", "migrate", "--dry-run", "-o", "json"]).success();
    assert!(!run.json()["pending"].as_array().unwrap().is_empty());
    assert_eq!(db.scalar("to_regclass('regions') IS NULL"), "true");
}

/// The legacy app's tables, as they exist before geoctl, with rows.
pub(crate) const LEGACY: &str = r#"
CREATE TABLE monitors (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL,
    type text NOT NULL,
    target text NOT NULL,
    frequency_minutes integer NOT NULL DEFAULT 5,
    enabled boolean NOT NULL DEFAULT true,
    status text NOT NULL DEFAULT 'up',
    config jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE monitor_results (
    id bigserial PRIMARY KEY,
    monitor_id uuid NOT NULL REFERENCES monitors(id),
    checked_at timestamptz NOT NULL DEFAULT now(),
    status text NOT NULL,
    response_time_ms integer,
    details jsonb,
    is_up boolean NOT NULL
);
INSERT INTO monitors (id, name, type, target, frequency_minutes, enabled, status, config) VALUES
  ('11111111-1111-1111-1111-111111111111', 'legacy-site', 'http_request', 'https://legacy.example.com', 5, true, 'up', '{"method":"GET","expectedStatus":200}'),
  ('22222222-2222-2222-2222-222222222222', 'legacy-db', 'port_check', 'db.example.com:5432', 1, false, 'paused', '{}');
INSERT INTO monitor_results (monitor_id, checked_at, status, response_time_ms, details, is_up) VALUES
  ('11111111-1111-1111-1111-111111111111', '2026-11-01T10:00:00Z', 'up', 120, '{"code":200}', true),
  ('11111111-1111-1111-1111-111111111111', '2026-11-01T10:05:00Z', 'down', NULL, '{"error":"timeout"}', false),
  ('22222222-2222-2222-2222-222222222222', '2026-11-01T10:00:00Z', 'up', 3, NULL, true);
"#;

const LEGACY_MONITORS: &str =
    "SELECT string_agg(concat_ws('|', id, name, type, target, frequency_minutes, enabled, status, config, created_at, updated_at), ';' ORDER BY id) FROM monitors";
pub(crate) const LEGACY_RESULTS: &str =
    "SELECT string_agg(concat_ws('|', id, monitor_id, checked_at, status, response_time_ms, details, is_up), ';' ORDER BY id) FROM monitor_results";

#[test]
fn migrate_keeps_legacy_tables_and_rows() {
    let db = TestDb::empty();
    db.exec(LEGACY);
    let monitors_before = db.scalar(LEGACY_MONITORS);
    let results_before = db.scalar(LEGACY_RESULTS);

    db.geoctl(&["db", "migrate"]).success();
    db.geoctl(&["db", "migrate"]).success();

    assert_eq!(db.scalar(LEGACY_MONITORS), monitors_before, "legacy monitors changed");
    assert_eq!(db.scalar(LEGACY_RESULTS), results_before, "legacy results changed");
    // geoctl's columns were added next to the legacy ones.
    assert_eq!(
        db.scalar("SELECT count(*) FROM information_schema.columns WHERE table_name = 'monitor_results' AND column_name IN ('execution_region', 'tls_handshake_time', 'region_specific_metrics')"),
        "3"
    );

    // geoctl reads the legacy monitors and can manage them.
    let list = db.geoctl(&["monitor", "list", "-o", "json"]).success().json();
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["legacy-db", "legacy-site"]);
    let site = db.geoctl(&["monitor", "show", "legacy-site", "-o", "json"]).success().json();
    assert_eq!(site["interval_seconds"], 300);
    assert_eq!(site["config"]["expectedStatus"], 200);
    db.geoctl(&["monitor", "regions", "add", "legacy-site", "eu-west"]).success();
    db.geoctl(&["monitor", "update", "legacy-site", "--every", "30s"]).success();
    assert_eq!(db.scalar("SELECT frequency_minutes FROM monitors WHERE name = 'legacy-site'"), "1");
    assert_eq!(db.count("monitor_results"), 3);
}

#[test]
fn unreachable_database_names_the_host_not_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let url = "postgres://geoctl:Sup3rS3cret@127.0.0.1:1/geoctl";
    let run = geoctl_in(dir.path(), &["region", "list"], &[("DATABASE_URL", url), ("DB_POOL_TIMEOUT", "2s")]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("127.0.0.1:1/geoctl"), "{}", run.stderr);
    assert!(!run.stderr.contains("Sup3rS3cret"), "{}", run.stderr);
}

#[test]
fn missing_or_malformed_database_url_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    geoctl_in(dir.path(), &["db", "status"], &[]).usage_error(&["DATABASE_URL"]);
    let run = geoctl_in(dir.path(), &["db", "status"], &[("DATABASE_URL", "mysql://u:Pw0rd@h/db")]);
    run.usage_error(&["invalid database URL"]);
    let run = geoctl_in(dir.path(), &["db", "status"], &[("DATABASE_URL", "mysql://u:Pw0rd@h/db")]);
    assert!(!run.stderr.contains("Pw0rd"), "{}", run.stderr);
}

#[test]
fn prune_deletes_old_results_only_and_keeps_summaries() {
    let db = TestDb::migrated();
    db.exec(
        "INSERT INTO monitors (id, name, type, target) VALUES ('33333333-3333-3333-3333-333333333333', 'm', 'http_request', 'https://e.com');
         INSERT INTO monitor_results (monitor_id, checked_at, status, is_up, execution_region)
           SELECT '33333333-3333-3333-3333-333333333333', now() - (n || ' days')::interval - interval '1 hour', 'up', true, 'us-east' FROM generate_series(0, 99) n;
         INSERT INTO regional_monitor_summaries (monitor_id, region_code, day, total_checks)
           SELECT '33333333-3333-3333-3333-333333333333', 'us-east', (now() - (n || ' days')::interval)::date, 1 FROM generate_series(0, 99) n;",
    );
    db.geoctl(&["db", "prune", "--older-than", "90m"]).usage_error(&["under 2d"]);
    db.geoctl(&["db", "prune", "--older-than", "30d"]).usage_error(&["--yes"]);
    let dry = db.geoctl(&["db", "prune", "--older-than", "30d", "--dry-run", "-o", "json"]).success().json();
    assert_eq!(dry["monitor_results"], 70);
    assert_eq!(db.count("monitor_results"), 100);
    let done =
        db.geoctl(&["db", "prune", "--older-than", "30d", "--yes", "--batch", "7", "-o", "json"]).success().json();
    assert_eq!(done["monitor_results"], 70);
    assert_eq!(db.count("monitor_results"), 30);
    assert_eq!(db.count("regional_monitor_summaries"), 100);
    let again = db.geoctl(&["db", "prune", "--older-than", "30d", "--yes", "-o", "json"]).success().json();
    assert_eq!(again["monitor_results"], 0);
}

/// A database geoctl has not migrated is named as such, with the fix, for the CLI and the
/// agent alike (exit 2: the operator must act, a retry would not help); `db status` and
/// `db migrate` still work on it, and migrating fixes it.
#[test]
fn a_database_without_geoctls_schema_says_so_and_how_to_fix_it() {
    let db = TestDb::empty();
    let no_schema = ["no geoctl schema", "geoctl db migrate"];
    db.geoctl(&["region", "list"]).usage_error(&no_schema);
    db.geoctl(&["monitor", "list"]).usage_error(&no_schema);
    db.geoctl(&["agent", "--region", "us-east"]).usage_error(&no_schema);
    db.geoctl(&["db", "prune", "--older-than", "30d", "--yes"]).usage_error(&no_schema);
    db.geoctl(&["db", "status"]).success();
    assert_eq!(db.scalar("to_regclass('regions') IS NULL"), "true", "nothing was created");

    // The existing app's tables, not migrated yet.
    let legacy = TestDb::empty();
    legacy.exec(LEGACY);
    legacy.geoctl(&["monitor", "list"]).usage_error(&["existing app's tables", "geoctl db migrate", "keeps"]);

    // Behind: the newest migration this binary embeds is not applied.
    db.geoctl(&["db", "migrate"]).success();
    let known = db.geoctl(&["db", "status", "-o", "json"]).success().json().as_array().unwrap().len();
    let newest = db.scalar("SELECT max(version) FROM _sqlx_migrations");
    db.exec(&format!("DELETE FROM _sqlx_migrations WHERE version = {newest}"));
    let behind = format!("1 migration(s) behind this geoctl ({} of {known} applied, next: {newest}_", known - 1);
    db.geoctl(&["region", "list"]).usage_error(&[&behind, "geoctl db migrate"]);
    db.geoctl(&["agent", "--region", "us-east"]).usage_error(&[&behind]);
    db.geoctl(&["db", "migrate"]).success();
    db.geoctl(&["region", "list"]).success();

    // A newer geoctl's migration: this one still works, and says it is older.
    db.exec(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (29991231000001, 'from the future', true, '\\x00', 0)",
    );
    let run = db.geoctl(&["region", "list"]).success();
    assert!(run.stderr.contains("29991231000001") && run.stderr.contains("newer geoctl"), "{}", run.stderr);
}
