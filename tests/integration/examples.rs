use crate::support::geoctl_in;

/// The documented example config must stay loadable.
#[test]
fn example_config_file_loads() {
    let dir = tempfile::tempdir().unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/geoctl.yaml");
    let run = geoctl_in(dir.path(), &["config", "show", "--config", example, "-o", "json"], &[]).success();
    let rows = run.json();
    let value = |key: &str| rows.as_array().unwrap().iter().find(|r| r["key"] == key).unwrap()["value"].clone();
    assert_eq!(value("default_region"), "us-east");
    assert_eq!(value("redis.command_timeout"), "5s");
    assert_eq!(value("regions.eu-west.redis_url"), "redis://127.0.0.1:6379/1");
    assert_eq!(value("aws.s3_bucket"), "geoctl-backups");
}
