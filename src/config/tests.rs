use super::*;

fn env(pairs: &[(&str, &str)]) -> Env {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn resolve_in(dir: &Path, flags: &Flags, env: &Env) -> Result<Settings, ConfigError> {
    Settings::resolve(flags, env, dir, None)
}

#[test]
fn precedence_is_flag_then_env_then_file_then_default() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        FILE_NAME,
        "database_url: postgres://file@h/db\ndefault_region: ap-south\ndatabase:\n  connection_limit: 7\n",
    );
    let with_env = env(&[("DATABASE_URL", "postgres://env@h/db"), ("DEFAULT_REGION", "eu-west")]);

    // Flag beats env and file.
    let flags = Flags {
        database_url: Some("postgres://flag@h/db".into()),
        default_region: Some("us-east".into()),
        ..Flags::default()
    };
    let s = resolve_in(dir.path(), &flags, &with_env).unwrap();
    assert_eq!(s.database_url.as_ref().unwrap().value.expose(), "postgres://flag@h/db");
    assert_eq!(s.database_url.unwrap().source, Source::Flag("--database-url"));
    assert_eq!(s.default_region.unwrap().value, "us-east");

    // Env beats file.
    let s = resolve_in(dir.path(), &Flags::default(), &with_env).unwrap();
    assert_eq!(s.database_url.as_ref().unwrap().value.expose(), "postgres://env@h/db");
    assert_eq!(s.database_url.unwrap().source, Source::Env("DATABASE_URL".into()));
    assert_eq!(s.default_region.unwrap().value, "eu-west");

    // File beats default.
    let s = resolve_in(dir.path(), &Flags::default(), &env(&[])).unwrap();
    assert_eq!(s.database_url.unwrap().value.expose(), "postgres://file@h/db");
    assert_eq!(s.default_region.unwrap().value, "ap-south");
    assert_eq!(s.tuning.db_connection_limit.value, 7);
    assert!(matches!(s.tuning.db_connection_limit.source, Source::File(_)));

    // Default when nothing sets it.
    assert_eq!(s.tuning.db_pool_timeout.value, Duration::from_secs(10));
    assert_eq!(s.tuning.db_pool_timeout.source, Source::Default);
    assert!(s.enable_geo_distribution.value);
}

#[test]
fn config_file_location_order() {
    let dir = tempfile::tempdir().unwrap();
    let user = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(user.path().join("geoctl")).unwrap();
    write(&user.path().join("geoctl"), FILE_NAME, "default_region: ap-south\n");
    let resolve = |flags: &Flags, env: &Env| Settings::resolve(flags, env, dir.path(), Some(user.path()));

    // Only the user's file exists.
    assert_eq!(resolve(&Flags::default(), &env(&[])).unwrap().default_region.unwrap().value, "ap-south");
    // ./geoctl.yaml beats the user's file.
    write(dir.path(), FILE_NAME, "default_region: eu-west\n");
    assert_eq!(resolve(&Flags::default(), &env(&[])).unwrap().default_region.unwrap().value, "eu-west");
    // GEOCTL_CONFIG beats ./geoctl.yaml.
    let named = write(dir.path(), "other.yaml", "default_region: us-east\n");
    let e = env(&[("GEOCTL_CONFIG", named.to_str().unwrap())]);
    assert_eq!(resolve(&Flags::default(), &e).unwrap().default_region.unwrap().value, "us-east");
    // --config beats GEOCTL_CONFIG; a missing named file is an error.
    let flags = Flags { config: Some(dir.path().join("missing.yaml")), ..Flags::default() };
    assert!(matches!(resolve(&flags, &e), Err(ConfigError::FileMissing { .. })));
}

#[test]
fn secrets_come_from_files_trimmed_and_never_empty() {
    let dir = tempfile::tempdir().unwrap();
    let secret = write(dir.path(), "pw", "s3cret\n");
    let e = env(&[("REDIS_PASSWORD_US_EAST_FILE", secret.to_str().unwrap())]);
    let s = resolve_in(dir.path(), &Flags::default(), &e).unwrap();
    let pw = s.regions["us-east"].redis_password.as_ref().unwrap();
    assert_eq!(pw.value.expose(), "s3cret");
    assert_eq!(pw.source, Source::Env("REDIS_PASSWORD_US_EAST_FILE".into()));

    let empty = write(dir.path(), "empty", "");
    let e = env(&[("AWS_SECRET_ACCESS_KEY_FILE", empty.to_str().unwrap())]);
    let err = resolve_in(dir.path(), &Flags::default(), &e).unwrap_err();
    assert!(matches!(err, ConfigError::SecretFileEmpty { .. }), "{err}");

    let e = env(&[("DATABASE_URL", "postgres://a@h/d"), ("DATABASE_URL_FILE", secret.to_str().unwrap())]);
    assert!(matches!(resolve_in(dir.path(), &Flags::default(), &e), Err(ConfigError::Exclusive { .. })));

    // The file's `_file` keys work the same way.
    write(dir.path(), FILE_NAME, &format!("aws:\n  secret_access_key_file: {}\n", secret.display()));
    let s = resolve_in(dir.path(), &Flags::default(), &env(&[])).unwrap();
    assert_eq!(s.aws.secret_access_key.unwrap().value.expose(), "s3cret");
}

#[test]
fn redis_url_file_is_not_a_region_named_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = write(dir.path(), "redis", "redis://:pw@127.0.0.1:6379/0\n");
    let e = env(&[("REDIS_URL_FILE", url.to_str().unwrap()), ("REDIS_PASSWORD_FILE", url.to_str().unwrap())]);
    let s = resolve_in(dir.path(), &Flags::default(), &e).unwrap();
    assert!(!s.regions.contains_key("file"), "{:?}", s.regions.keys().collect::<Vec<_>>());
    let e = env(&[("REDIS_URL_EU_WEST_FILE", url.to_str().unwrap())]);
    assert!(resolve_in(dir.path(), &Flags::default(), &e).unwrap().regions.contains_key("eu-west"));
}

#[test]
fn database_passwords_with_at_and_hash_are_masked_whole() {
    let dir = tempfile::tempdir().unwrap();
    let e = env(&[("DATABASE_URL", "postgres://geoctl:p@ss#W0rd@127.0.0.1:5432/geoctl?sslpassword=k3y")]);
    let shown = serde_json::to_string(&resolve_in(dir.path(), &Flags::default(), &e).unwrap().shown()).unwrap();
    for leaked in ["ss#", "W0rd", "k3y"] {
        assert!(!shown.contains(leaked), "{leaked} leaked: {shown}");
    }
    assert!(shown.contains("postgres://geoctl:****@127.0.0.1:5432/geoctl"), "{shown}");
}

#[test]
fn shown_values_mask_every_secret() {
    let dir = tempfile::tempdir().unwrap();
    let e = env(&[
        ("DATABASE_URL", "postgres://geoctl:dbpass@db:5432/geoctl"),
        ("REDIS_URL_EU_WEST", "redis://:redispass@redis:6379/0"),
        ("REDIS_PASSWORD_EU_WEST", "redispass2"),
        ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEY"),
        ("AWS_SECRET_ACCESS_KEY", "awssecretvalue"),
    ]);
    let s = resolve_in(dir.path(), &Flags::default(), &e).unwrap();
    let shown = serde_json::to_string(&s.shown()).unwrap();
    for secret in ["dbpass", "redispass", "redispass2", "AKIAEXAMPLEKEY", "awssecretvalue"] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
    assert!(shown.contains("postgres://geoctl:****@db:5432/geoctl"));
    assert!(shown.contains("regions.eu-west.redis_url"));
}

#[test]
fn invalid_values_name_their_origin() {
    let dir = tempfile::tempdir().unwrap();
    let err = resolve_in(dir.path(), &Flags::default(), &env(&[("DB_POOL_TIMEOUT", "soon")])).unwrap_err();
    assert!(err.to_string().contains("env DB_POOL_TIMEOUT"), "{err}");
    let err = resolve_in(dir.path(), &Flags::default(), &env(&[("ENABLE_GEO_DISTRIBUTION", "maybe")])).unwrap_err();
    assert!(err.to_string().contains("boolean"), "{err}");
    write(dir.path(), FILE_NAME, "databse_url: x\n");
    let err = resolve_in(dir.path(), &Flags::default(), &env(&[])).unwrap_err();
    assert!(err.to_string().contains("databse_url"), "{err}");
}

#[test]
fn bare_numbers_follow_the_seed_units() {
    let dir = tempfile::tempdir().unwrap();
    let e = env(&[("DB_POOL_TIMEOUT", "20"), ("REDIS_COMMAND_TIMEOUT", "1500")]);
    let s = resolve_in(dir.path(), &Flags::default(), &e).unwrap();
    assert_eq!(s.tuning.db_pool_timeout.value, Duration::from_secs(20));
    assert_eq!(s.tuning.redis_command_timeout.value, Duration::from_millis(1500));
}

#[test]
fn every_per_region_variable_makes_its_region_known() {
    let dir = tempfile::tempdir().unwrap();
    let value = |prefix: &str| match prefix {
        region_env::REDIS_URL => "redis://127.0.0.1:6379/0",
        region_env::DOCKER_HOST => "tcp://127.0.0.1:2376",
        region_env::PUBLIC_ADDRESS => "192.0.2.10",
        region_env::HEALTH_URL => "http://127.0.0.1:8080/health",
        _ => "x",
    };
    for prefix in region_env::ALL {
        let name = format!("{prefix}US_EAST");
        let s = resolve_in(dir.path(), &Flags::default(), &env(&[(&name, value(prefix))])).unwrap();
        assert_eq!(s.regions.keys().collect::<Vec<_>>(), ["us-east"], "{name}");
        // …and the value is read for it, from that variable.
        let source = format!("env {name}");
        assert!(
            s.shown().iter().any(|row| row.key.starts_with("regions.us-east.") && row.source == source),
            "{name} not resolved: {:?}",
            s.shown()
        );
    }
}

#[test]
fn public_address_and_aws_region_alone_configure_a_region() {
    let dir = tempfile::tempdir().unwrap();
    let e = env(&[("PUBLIC_ADDRESS_US_EAST", "192.0.2.10"), ("AWS_REGION_US_EAST", "us-east-1")]);
    let s = resolve_in(dir.path(), &Flags::default(), &e).unwrap();
    let us_east = &s.regions["us-east"];
    assert_eq!(us_east.public_address.as_ref().unwrap().value, "192.0.2.10");
    assert_eq!(us_east.aws_region.as_ref().unwrap().value, "us-east-1");
}

#[test]
fn region_less_variables_name_no_region() {
    let dir = tempfile::tempdir().unwrap();
    let e = env(&[
        ("AWS_REGION", "us-east-1"),
        ("DOCKER_HOST", "unix:///var/run/docker.sock"),
        ("DOCKER_CERT_PATH", "/certs"),
        ("REDIS_URL", "redis://127.0.0.1:6379/0"),
    ]);
    assert!(resolve_in(dir.path(), &Flags::default(), &e).unwrap().regions.is_empty());
}

/// A registered region's variables are found by name alone because suffix and code map one to one.
#[test]
fn env_suffix_round_trips_every_valid_code() {
    for code in ["us-east", "eu-west-1", "ap-south2", "a--b", "x9"] {
        crate::text::region_code(code).unwrap();
        let name = format!("{}{}", region_env::AWS_REGION, env_suffix(code));
        let s = resolve_in(tempfile::tempdir().unwrap().path(), &Flags::default(), &env(&[(&name, "r")])).unwrap();
        assert_eq!(s.regions.keys().collect::<Vec<_>>(), [code]);
    }
}

#[test]
fn alerting_settings_come_from_env_then_file_then_defaults_and_bad_values_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let s = resolve_in(dir.path(), &Flags::default(), &env(&[])).unwrap();
    assert_eq!(s.alerting.settings(), AlertSettings::default());
    assert_eq!(s.alerting.confirm.source, Source::Default);

    write(
        dir.path(),
        FILE_NAME,
        "alerting:\n  confirm: 3\n  flap_window: 10m\n  region_impaired_ratio: 0.8\n  default_channels: [a, b]\n",
    );
    let s = resolve_in(
        dir.path(),
        &Flags::default(),
        &env(&[("ALERT_CONFIRM", "4"), ("ALERT_REGION_CHANNELS", "ops, pager")]),
    )
    .unwrap();
    let a = s.alerting.settings();
    assert_eq!((a.confirm, a.recover), (4, 2), "env beats file; default fills the rest");
    assert_eq!(s.alerting.confirm.source, Source::Env("ALERT_CONFIRM".into()));
    assert_eq!(a.flap_window, Duration::from_secs(600));
    assert_eq!(a.region_impaired_ratio, 0.8);
    assert_eq!(a.default_channels, ["a", "b"]);
    assert_eq!(a.region_channels, ["ops", "pager"]);

    for (name, value) in [("ALERT_CONFIRM", "0"), ("ALERT_REGION_IMPAIRED_RATIO", "1.5"), ("ALERT_FLAP_WINDOW", "soon")]
    {
        let err = resolve_in(dir.path(), &Flags::default(), &env(&[(name, value)])).unwrap_err();
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[test]
fn agent_settings_come_from_flag_then_env_then_file_then_default() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        FILE_NAME,
        "agent:\n  region: ap-south\n  concurrency: 4\n  lock_duration: 45\n  listen: \":4001\"\n  log_format: json\n",
    );
    let with_env = env(&[("WORKER_REGION", "eu-west"), ("AGENT_LISTEN", "127.0.0.1:5001")]);
    let flags =
        Flags { agent: AgentFlags { region: Some("us-east".into()), ..AgentFlags::default() }, ..Flags::default() };
    let a = resolve_in(dir.path(), &flags, &with_env).unwrap().agent;
    assert_eq!(a.region.as_ref().unwrap().value, "us-east");
    assert_eq!(a.region.unwrap().source, Source::Flag("--region"));
    assert_eq!(a.listen.value, "127.0.0.1:5001".parse().unwrap());
    assert_eq!(a.listen.source, Source::Env("AGENT_LISTEN".into()));
    assert_eq!(a.concurrency.value, 4);
    assert_eq!(a.lock_duration.value, Duration::from_secs(45), "a bare number is seconds");
    assert_eq!(a.log_format.value, LogFormat::Json);
    assert_eq!(a.resync_interval.value, Duration::from_secs(300));
    assert_eq!(a.resync_interval.source, Source::Default);
    assert!(a.stalled_interval.is_none(), "unset: the agent uses the lock duration");

    let bad = env(&[("AGENT_SPOOL_MAX", "lots")]);
    let err = resolve_in(dir.path(), &Flags::default(), &bad).unwrap_err().to_string();
    assert!(err.contains("AGENT_SPOOL_MAX") && err.contains("lots"), "{err}");
}

#[test]
fn the_dashboards_settings_come_from_flag_env_or_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), FILE_NAME, "dashboard:\n  listen: 0.0.0.0:9000\n  token_file: secrets/token\n");
    // The file, its relative path taken from the working directory.
    let s = resolve_in(dir.path(), &Flags::default(), &env(&[])).unwrap();
    assert_eq!(s.dashboard.listen.value, "0.0.0.0:9000".parse().unwrap());
    assert!(matches!(s.dashboard.listen.source, Source::File(_)));
    assert_eq!(s.dashboard.token_file.unwrap().value, dir.path().join("secrets/token"));
    assert!(s.dashboard.basic_auth_file.is_none());
    // The environment beats the file, a flag beats both.
    let e = env(&[("DASHBOARD_LISTEN", ":8081"), ("DASHBOARD_BASIC_AUTH_FILE", "/run/secrets/basic")]);
    let s = resolve_in(dir.path(), &Flags::default(), &e).unwrap();
    assert_eq!(s.dashboard.listen.value, "0.0.0.0:8081".parse().unwrap());
    assert_eq!(s.dashboard.basic_auth_file.unwrap().value, PathBuf::from("/run/secrets/basic"));
    let flags = Flags {
        dashboard: DashboardFlags { listen: Some("127.0.0.1:0".into()), ..Default::default() },
        ..Flags::default()
    };
    let s = resolve_in(dir.path(), &flags, &e).unwrap();
    assert_eq!(s.dashboard.listen.source, Source::Flag("--listen"));
    assert!(s.shown().iter().any(|v| v.key == "dashboard.listen" && v.value.as_deref() == Some("127.0.0.1:0")));
    // Nothing set: loopback, no credentials.
    let empty = tempfile::tempdir().unwrap();
    let s = resolve_in(empty.path(), &Flags::default(), &env(&[])).unwrap();
    assert_eq!(
        (s.dashboard.listen.value, s.dashboard.listen.source),
        ("127.0.0.1:8080".parse().unwrap(), Source::Default)
    );
    // A bad address names where it came from.
    let err = resolve_in(dir.path(), &Flags::default(), &env(&[("DASHBOARD_LISTEN", "nowhere")])).unwrap_err();
    assert!(err.to_string().contains("DASHBOARD_LISTEN") && err.to_string().contains("nowhere"), "{err}");
}
