//! `geoctl backup …` against moto's S3 (started by `scripts/test`) and the
//! local-directory default, with the real pg_dump and psql.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{block_on, TestDb};

const SECRET_KEY: &str = "test-secret-key-never-printed";

fn endpoint() -> String {
    std::env::var("GEOCTL_TEST_AWS_ENDPOINT")
        .expect("no S3-compatible server for tests: run `scripts/test`, or set GEOCTL_TEST_AWS_ENDPOINT")
}

/// A bucket of its own on moto, and the environment that points geoctl at it.
pub struct Bucket {
    pub name: String,
    pub client: aws_sdk_s3::Client,
}

pub fn aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("S3_ENDPOINT", endpoint.into()),
        ("ROUTE53_ENDPOINT", endpoint.into()),
    ]
}

pub fn aws_settings(endpoint: &str) -> geoctl::config::Aws {
    use geoctl::config::{Secret, Source, Sourced};
    let plain = |v: &str| Some(Sourced { value: v.to_string(), source: Source::Default });
    let secret = |v: &str| Some(Sourced { value: Secret::new(v), source: Source::Default });
    geoctl::config::Aws {
        region: plain("us-east-1"),
        s3_endpoint: plain(endpoint),
        route53_endpoint: plain(endpoint),
        s3_bucket: None,
        access_key_id: secret("testing"),
        secret_access_key: secret(SECRET_KEY),
    }
}

impl Bucket {
    fn new() -> Self {
        let name = format!("geoctl-test-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let client = block_on(async {
            let client = geoctl::aws::s3(&aws_settings(&endpoint())).await.unwrap();
            client.create_bucket().bucket(&name).send().await.unwrap();
            client
        });
        Bucket { name, client }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = aws_env(&endpoint());
        env.push(("S3_MONITOR_BUCKET_NAME", self.name.clone()));
        env
    }

    fn keys(&self) -> Vec<String> {
        block_on(async {
            let out = self.client.list_objects_v2().bucket(&self.name).send().await.unwrap();
            out.contents().iter().filter_map(|o| o.key().map(String::from)).collect()
        })
    }

    fn pending_uploads(&self) -> Vec<String> {
        block_on(async {
            let out = self.client.list_multipart_uploads().bucket(&self.name).send().await.unwrap();
            out.uploads().iter().filter_map(|u| u.key().map(String::from)).collect()
        })
    }
}

fn with<'a>(env: &'a [(&'static str, String)], extra: &[(&'static str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    all
}

fn seed(db: &TestDb, rows: u32) {
    db.exec(&format!(
        "CREATE SCHEMA app; CREATE TABLE app.\"Notes\" (id int PRIMARY KEY, body text); \
         INSERT INTO app.\"Notes\" SELECT g, md5(g::text) FROM generate_series(1, {rows}) g; \
         INSERT INTO monitors (name, type, target) VALUES ('backup-test', 'http', 'https://example.test/')"
    ));
}

#[test]
fn s3_backup_list_restore_verify() {
    let db = TestDb::migrated();
    seed(&db, 5000);
    let bucket = Bucket::new();
    let env = bucket.env();

    let run = db.geoctl_with(&["backup", "run", "-o", "json"], &with(&env, &[])).success();
    let summary = run.json();
    let name = summary["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("backup-") && name.ends_with(".sql.gz"), "{name}");
    assert!(summary["rows"].as_i64().unwrap() >= 5001, "{summary}");
    assert!(!run.stderr.contains(SECRET_KEY) && !run.stdout.contains(SECRET_KEY));
    let mut keys = bucket.keys();
    keys.sort();
    assert_eq!(
        keys,
        vec![format!("database/{name}"), format!("database/{name}.json"), format!("database/{name}.sha256")]
    );
    assert!(bucket.pending_uploads().is_empty());

    let list = db.geoctl_with(&["backup", "list", "-o", "json"], &with(&env, &[])).success().json();
    assert_eq!(list[0]["name"], name.as_str());
    assert_eq!(list[0]["checksum"], true);

    // Into a fresh database named by a variable, not on the command line.
    let fresh = TestDb::empty();
    let target = [("GEOCTL_RESTORE_URL", fresh.url.as_str())];
    let restore = ["backup", "restore", &name, "--target-env", "GEOCTL_RESTORE_URL", "--yes"];
    db.geoctl_with(&restore, &with(&env, &target)).success();
    for table in ["app.\"Notes\"", "monitors", "regions", "_sqlx_migrations"] {
        assert_eq!(fresh.count(table), db.count(table), "{table}");
    }
    assert_eq!(
        fresh.scalar("SELECT md5(string_agg(body, ',' ORDER BY id)) FROM app.\"Notes\""),
        db.scalar("SELECT md5(string_agg(body, ',' ORDER BY id)) FROM app.\"Notes\"")
    );

    // A non-empty target is refused without --force, and left as it was.
    fresh.exec("INSERT INTO app.\"Notes\" VALUES (-1, 'local change')");
    db.geoctl_with(&restore, &with(&env, &target)).usage_error(&["not empty", "--force"]);
    assert_eq!(fresh.count("app.\"Notes\""), 5001);
    let forced = ["backup", "restore", &name, "--target-env", "GEOCTL_RESTORE_URL", "--force", "--yes"];
    db.geoctl_with(&forced, &with(&env, &target)).success();
    assert_eq!(fresh.count("app.\"Notes\""), 5000);

    let verify = db.geoctl_with(&["backup", "verify", &name, "-o", "json"], &with(&env, &[])).success().json();
    assert_eq!(verify["ok"], true, "{verify}");
    assert_eq!(verify["checksum_ok"], true);
    assert!(verify["tables"].as_u64().unwrap() >= 3);
    // The scratch database is gone.
    assert_eq!(db.scalar("SELECT count(*) FROM pg_database WHERE datname LIKE 'geoctl_verify_%'"), "0");

    // Bad input: an unknown name, a malformed one.
    db.geoctl_with(&["backup", "restore", "backup-20000101-000000.sql.gz", "--yes"], &with(&env, &[]))
        .usage_error(&["no backup named backup-20000101-000000.sql.gz"]);
    db.geoctl_with(&["backup", "verify", "latest"], &with(&env, &[])).usage_error(&["not a backup name"]);
}

#[test]
fn corrupt_backup_fails_verify_and_restore() {
    let db = TestDb::migrated();
    let bucket = Bucket::new();
    let env = bucket.env();
    let name = db.geoctl_with(&["backup", "run", "-o", "json"], &with(&env, &[])).success().json()["name"]
        .as_str()
        .unwrap()
        .to_string();
    let wrong = format!("{}  {name}\n", "0".repeat(64));
    block_on(async {
        bucket
            .client
            .put_object()
            .bucket(&bucket.name)
            .key(format!("database/{name}.sha256"))
            .body(wrong.into_bytes().into())
            .send()
            .await
            .unwrap();
    });
    let verify = db.geoctl_with(&["backup", "verify", &name, "-o", "json"], &with(&env, &[]));
    assert_eq!(verify.code, 1, "{verify:?}");
    assert_eq!(verify.json()["checksum_ok"], false);
    let fresh = TestDb::empty();
    let restore = ["backup", "restore", &name, "--target-env", "GEOCTL_RESTORE_URL", "--yes"];
    let run = db.geoctl_with(&restore, &with(&env, &[("GEOCTL_RESTORE_URL", fresh.url.as_str())]));
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("corrupt"), "{}", run.stderr);
    // Nothing of the dump was committed.
    assert_eq!(fresh.scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"), "0");
}

#[test]
fn interrupted_upload_is_aborted_and_stale_ones_cleaned() {
    let db = TestDb::migrated();
    // Enough SQL (~150 MB) that the upload is still running when interrupted.
    db.exec(
        "CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((-g)::text) AS body \
         FROM generate_series(1, 2000000) g",
    );
    let bucket = Bucket::new();
    let env = bucket.env();

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_geoctl"));
    cmd.args(["backup", "run"])
        .current_dir(db.dir())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", db.dir())
        .env("DATABASE_URL", &db.url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while bucket.pending_uploads().is_empty() {
        assert!(Instant::now() < deadline, "the upload never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(bucket.pending_uploads().is_empty(), "a multipart upload was left behind");
    assert!(bucket.keys().is_empty(), "{:?}", bucket.keys());

    // An upload cut off without a chance to clean up (lost connection): the next run aborts it.
    block_on(async {
        bucket
            .client
            .create_multipart_upload()
            .bucket(&bucket.name)
            .key("database/backup-20000101-000000.sql.gz")
            .send()
            .await
            .unwrap();
    });
    db.exec("DROP TABLE big");
    let run = db.geoctl_with(&["backup", "run"], &with(&env, &[])).success();
    assert!(run.stderr.contains("aborted 1 unfinished upload"), "{}", run.stderr);
    assert!(bucket.pending_uploads().is_empty());
    // And the bucket now aborts incomplete uploads by itself.
    let rules = block_on(async {
        bucket.client.get_bucket_lifecycle_configuration().bucket(&bucket.name).send().await.unwrap()
    });
    assert!(rules.rules().iter().any(|r| r.abort_incomplete_multipart_upload().is_some()));
}

#[test]
fn local_directory_default_and_prune() {
    let db = TestDb::migrated();
    seed(&db, 10);
    let dir = db.dir().join("bk");
    let dir_s = dir.to_str().unwrap();
    let env = [("BACKUP_DIR", dir_s)];
    let name =
        db.geoctl_with(&["backup", "run", "-o", "json"], &env).success().json()["name"].as_str().unwrap().to_string();
    assert!(dir.join("database").join(&name).is_file());
    assert!(dir.join("database").join(format!("{name}.sha256")).is_file());
    db.geoctl_with(&["backup", "verify", &name], &env).success();

    // Two old backups (by the date in their names).
    for old in ["backup-20200101-000000.sql.gz", "backup-20200102-000000.sql.gz"] {
        for suffix in ["", ".sha256", ".json"] {
            std::fs::write(dir.join("database").join(format!("{old}{suffix}")), b"x").unwrap();
        }
    }
    let dry = db.geoctl_with(&["backup", "prune", "--keep-days", "30", "--dry-run", "-o", "json"], &env).success();
    assert_eq!(dry.json()["deleted"].as_array().unwrap().len(), 2);
    assert_eq!(std::fs::read_dir(dir.join("database")).unwrap().count(), 9);
    // Destructive: refused without --yes when nobody can answer.
    db.geoctl_with(&["backup", "prune", "--keep-days", "30"], &env).usage_error(&["--yes"]);
    db.geoctl_with(&["backup", "prune", "--keep-days", "30", "--yes"], &env).success();
    let list = db.geoctl_with(&["backup", "list", "-o", "json"], &env).success().json();
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec![name.as_str()]);
    let again = db.geoctl_with(&["backup", "prune", "--keep-days", "30", "--yes"], &env).success();
    assert!(again.stderr.contains("nothing to prune"), "{}", again.stderr);
}

#[test]
fn bad_storage_settings_are_clear_and_write_nothing() {
    let db = TestDb::migrated();
    let mut env = aws_env(&endpoint());
    env.push(("S3_MONITOR_BUCKET_NAME", "geoctl-no-such-bucket".into()));
    let run =
        db.geoctl_with(&["backup", "run"], &with(&env, &[])).usage_error(&["geoctl-no-such-bucket", "does not exist"]);
    assert!(!run.stderr.contains(SECRET_KEY));

    // Nothing listens on port 9 of loopback.
    let mut env = aws_env("http://127.0.0.1:9");
    env.push(("S3_MONITOR_BUCKET_NAME", "geoctl-backups".into()));
    let run = db.geoctl_with(&["backup", "run"], &with(&env, &[]));
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("127.0.0.1:9") && run.stderr.contains("cannot reach"), "{}", run.stderr);
    assert!(!run.stderr.contains(SECRET_KEY));
    // No backup was started: pg_dump never ran, so no snapshot is left open either.
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'geoctl' AND state = 'idle in transaction' \
             AND datname = current_database()"
        ),
        "0"
    );
}
