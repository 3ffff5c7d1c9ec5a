use crate::support::{geoctl_in, TestDb};

#[test]
fn precedence_flag_env_file_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("geoctl.yaml"), "default_region: ap-south\ndatabase:\n  connection_limit: 4\n")
        .unwrap();
    let show = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["config", "show", "-o", "json"];
        all.extend_from_slice(args);
        let run = geoctl_in(dir.path(), &all, env).success();
        let rows = run.json();
        let row = rows.as_array().unwrap().iter().find(|r| r["key"] == "default_region").unwrap().clone();
        (row["value"].as_str().unwrap().to_string(), row["source"].as_str().unwrap().to_string())
    };
    assert_eq!(show(&[], &[]).0, "ap-south");
    assert!(show(&[], &[]).1.starts_with("file "));
    assert_eq!(show(&[], &[("DEFAULT_REGION", "eu-west")]), ("eu-west".into(), "env DEFAULT_REGION".into()));
    assert_eq!(
        show(&["--default-region", "us-east"], &[("DEFAULT_REGION", "eu-west")]),
        ("us-east".into(), "flag --default-region".into())
    );
}

#[test]
fn config_show_masks_every_secret() {
    let dir = tempfile::tempdir().unwrap();
    let pw_file = dir.path().join("redis-pw");
    std::fs::write(&pw_file, "FileSecret9\n").unwrap();
    let env = [
        ("DATABASE_URL", "postgres://geoctl:DbSecret1@db.internal:5432/geoctl"),
        ("REDIS_URL_US_EAST", "redis://:RedisSecret2@redis-us:6379/0"),
        ("REDIS_PASSWORD_EU_WEST_FILE", pw_file.to_str().unwrap()),
        ("AWS_ACCESS_KEY_ID", "AKIASECRET3"),
        ("AWS_SECRET_ACCESS_KEY", "AwsSecret4"),
        ("S3_ENDPOINT", "http://127.0.0.1:5000"),
    ];
    for format in ["table", "json", "yaml"] {
        let run = geoctl_in(dir.path(), &["config", "show", "-o", format], &env).success();
        for secret in ["DbSecret1", "RedisSecret2", "FileSecret9", "AKIASECRET3", "AwsSecret4"] {
            assert!(
                !run.stdout.contains(secret) && !run.stderr.contains(secret),
                "{secret} leaked in {format}:\n{}",
                run.stdout
            );
        }
        assert!(run.stdout.contains("db.internal"), "{}", run.stdout);
        assert!(run.stdout.contains("regions.eu-west.redis_password"), "{}", run.stdout);
    }
}

#[test]
fn bad_configuration_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    geoctl_in(dir.path(), &["config", "show"], &[("DATABASE_URL_FILE", empty.to_str().unwrap())])
        .usage_error(&["empty"]);
    geoctl_in(dir.path(), &["config", "show", "--config", "nope.yaml"], &[]).usage_error(&["not found"]);
    std::fs::write(dir.path().join("geoctl.yaml"), "regions: [oops\n").unwrap();
    geoctl_in(dir.path(), &["config", "show"], &[]).usage_error(&["geoctl.yaml", "invalid"]);
    std::fs::write(dir.path().join("geoctl.yaml"), "").unwrap();
    geoctl_in(dir.path(), &["config", "show"], &[("DB_CONNECTION_LIMIT", "0")]).usage_error(&["DB_CONNECTION_LIMIT"]);
    geoctl_in(dir.path(), &["config", "show"], &[("DEFAULT_REGION", "Not A Region")])
        .usage_error(&["invalid region code"]);
}

#[test]
fn database_url_from_a_secret_file() {
    let db = TestDb::migrated();
    let file = db.dir().join("db-url");
    std::fs::write(&file, format!("{}\n", db.url)).unwrap();
    let run = geoctl_in(&db.dir(), &["region", "list", "-o", "json"], &[("DATABASE_URL_FILE", file.to_str().unwrap())])
        .success();
    assert_eq!(run.json().as_array().unwrap().len(), 3);
}

/// A database on a closed port fails at once with the cause and the endpoint, not after the
/// pool's timeout; neither the password nor a secret URL parameter is printed.
#[test]
fn an_unreachable_database_fails_fast_with_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let closed = crate::support::ClosedPort::new();
    let url = format!("postgres://geoctl:Pw7Secret@127.0.0.1:{}/geoctl?sslpassword=K3ySecret", closed.port);
    let started = std::time::Instant::now();
    let run = geoctl_in(dir.path(), &["region", "list"], &[("DATABASE_URL", &url), ("DB_POOL_TIMEOUT", "60s")]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "waited for the pool timeout");
    assert!(run.stderr.contains("connection refused"), "{}", run.stderr);
    assert!(run.stderr.contains(&format!("127.0.0.1:{}/geoctl", closed.port)), "{}", run.stderr);
    for secret in ["Pw7Secret", "K3ySecret"] {
        assert!(!run.stderr.contains(secret), "{secret} printed: {}", run.stderr);
    }
    assert!(run.stderr.contains("sslpassword"), "the ignored parameter is named: {}", run.stderr);
}
