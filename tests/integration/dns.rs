//! `geoctl dns plan|sync` against moto's Route 53 (started by `scripts/test`).

use crate::backup::{aws_env, aws_settings};
use crate::support::{block_on, TestDb};

const CONFIG: &str = "regions:
  us-east: { public_address: 192.0.2.10, aws_region: us-east-1 }
  eu-west: { public_address: 192.0.2.20, aws_region: eu-west-1 }
  ap-south: { public_address: '2001:db8::30', aws_region: ap-south-1 }
";

fn endpoint() -> String {
    std::env::var("GEOCTL_TEST_AWS_ENDPOINT").expect("run `scripts/test`, or set GEOCTL_TEST_AWS_ENDPOINT")
}

struct Zone {
    name: String,
    client: aws_sdk_route53::Client,
}

impl Zone {
    fn new() -> Self {
        let name = format!("geoctl-{}.test", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let client = block_on(geoctl::aws::route53(&aws_settings(&endpoint()))).unwrap();
        Zone { name, client }
    }

    /// (name, type, set identifier) of every A/AAAA record, and the number of geoctl's health checks.
    fn state(&self) -> (Vec<(String, String, Option<String>)>, usize) {
        block_on(async {
            let id = geoctl::dns::find_zone(&self.client, &self.name).await.unwrap().expect("zone exists");
            let state = geoctl::dns::read_state(&self.client, &id, &self.name).await.unwrap();
            let mut records: Vec<_> = state
                .records
                .iter()
                .filter(|r| r.kind == "A" || r.kind == "AAAA")
                .map(|r| (r.name.clone(), r.kind.clone(), r.set_identifier.clone()))
                .collect();
            records.sort();
            // Every latency record points at one of our checks.
            for r in state.records.iter().filter(|r| r.set_identifier.is_some()) {
                let check = r.health_check_id.as_deref().expect("latency record has a health check");
                assert!(state.checks.iter().any(|c| c.id == check), "{r:?}");
            }
            (records, state.checks.len())
        })
    }
}

#[test]
fn plan_sync_sync_disable_sync() {
    let db = TestDb::migrated();
    std::fs::write(db.dir().join("geoctl.yaml"), CONFIG).unwrap();
    let zone = Zone::new();
    let env = aws_env(&endpoint());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let z = zone.name.as_str();

    db.geoctl_with(&["dns", "plan", "--zone", z], &env).usage_error(&[
        "hosted zone",
        "does not exist",
        "--create-zone",
    ]);
    let planned =
        db.geoctl_with(&["dns", "sync", "--zone", z, "--create-zone", "--dry-run", "-o", "json"], &env).success();
    assert_eq!(planned.json().as_array().unwrap().len(), 9, "{}", planned.stdout);

    db.geoctl_with(&["dns", "sync", "--zone", z, "--create-zone"], &env).success();
    let (records, checks) = zone.state();
    assert_eq!(checks, 3);
    let expect = |codes: &[&str]| {
        let mut all = Vec::new();
        for code in codes {
            let kind = if *code == "ap-south" { "AAAA" } else { "A" };
            all.push((z.to_string(), kind.to_string(), Some(code.to_string())));
            all.push((format!("{code}.{z}"), kind.to_string(), None));
        }
        all.sort();
        all
    };
    assert_eq!(records, expect(&["us-east", "eu-west", "ap-south"]));

    let again = db.geoctl_with(&["dns", "sync", "--zone", z], &env).success();
    assert!(again.stderr.contains("unchanged"), "{}", again.stderr);
    assert_eq!(
        db.geoctl_with(&["dns", "plan", "--zone", z, "-o", "json"], &env).success().json(),
        serde_json::json!([])
    );

    db.geoctl(&["region", "disable", "eu-west"]).success();
    let plan = db.geoctl_with(&["dns", "plan", "--zone", z, "-o", "json"], &env).success().json();
    let steps = plan.as_array().unwrap();
    assert_eq!(steps.len(), 3, "{plan}");
    assert!(steps.iter().all(|s| s["region"] == "eu-west" && s["action"].as_str().unwrap().starts_with("delete")));
    db.geoctl_with(&["dns", "sync", "--zone", z], &env).success();
    let (records, checks) = zone.state();
    assert_eq!(records, expect(&["us-east", "ap-south"]));
    assert_eq!(checks, 2);
    db.geoctl_with(&["dns", "sync", "--zone", z], &env).success();
}

#[test]
fn region_without_aws_mapping_is_named() {
    let db = TestDb::migrated();
    std::fs::write(
        db.dir().join("geoctl.yaml"),
        "regions:\n  us-east: { public_address: 192.0.2.10, aws_region: us-east-1 }\n  eu-west: { public_address: 192.0.2.20 }\n",
    )
    .unwrap();
    let env = aws_env(&endpoint());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let zone = Zone::new();
    db.geoctl_with(&["dns", "sync", "--zone", &zone.name, "--create-zone"], &env).usage_error(&[
        "ap-south",
        "eu-west",
        "aws_region",
    ]);
    // Nothing was created, not even the zone.
    assert_eq!(block_on(geoctl::dns::find_zone(&zone.client, &zone.name)).unwrap(), None);
    db.geoctl_with(&["dns", "plan", "--zone", "not a zone"], &env).usage_error(&["not a DNS zone name"]);
}

/// PUBLIC_ADDRESS_<R> and AWS_REGION_<R> alone, with no Redis or Docker variable and no
/// config file, are the region's AWS mapping.
#[test]
fn aws_mapping_from_the_environment_alone() {
    let db = TestDb::migrated();
    db.geoctl(&["region", "disable", "eu-west"]).success();
    db.geoctl(&["region", "disable", "ap-south"]).success();
    let zone = Zone::new();
    let mut env = aws_env(&endpoint());
    env.push(("PUBLIC_ADDRESS_US_EAST", "192.0.2.10".into()));
    env.push(("AWS_REGION_US_EAST", "us-east-1".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let planned = db
        .geoctl_with(&["dns", "sync", "--zone", &zone.name, "--create-zone", "--dry-run", "-o", "json"], &env)
        .success()
        .json();
    let steps = planned.as_array().unwrap();
    assert_eq!(steps.len(), 3, "{planned}");
    assert!(steps.iter().all(|s| s["region"] == "us-east"), "{planned}");
    assert!(planned.to_string().contains("192.0.2.10"), "{planned}");
}
