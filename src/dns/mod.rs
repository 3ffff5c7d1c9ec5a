//! GeoDNS on Route 53: per active region, an HTTPS health check on
//! `https://<code>.<zone>/api/health`, a plain record `<code>.<zone>` and a
//! latency record at the zone apex (set identifier = region code, the
//! region's AWS region, tied to its health check); disabled and deleted
//! regions lose theirs.
//!
//! [`plan`] is pure: from what should exist and what exists to the steps
//! between them, so `dns plan` and `dns sync` show and apply the same set,
//! and a sync after a sync finds nothing.

mod route53;

pub use route53::{apply, create_zone, find_zone, read_state};

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::Serialize;

/// Where each region's app answers its health check.
pub const HEALTH_PATH: &str = "/api/health";
pub const HEALTH_PORT: i32 = 443;
pub const TTL: i64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Route53(String),
}

impl crate::error::Coded for DnsError {
    fn exit(&self) -> crate::error::Exit {
        match self {
            DnsError::Input(_) => crate::error::Exit::Input,
            DnsError::Route53(_) => crate::error::Exit::Failed,
        }
    }
}

/// An active region as DNS should announce it.
#[derive(Debug, Clone)]
pub struct DesiredRegion {
    pub code: String,
    pub address: IpAddr,
    pub aws_region: String,
}

/// A Route 53 health check that geoctl created (its caller reference says so).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckState {
    pub id: String,
    pub region: String,
    pub kind: String,
    pub ip: Option<String>,
    pub fqdn: Option<String>,
    pub port: Option<i32>,
    pub path: Option<String>,
}

/// A record set as read from the zone (names without the trailing dot).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordState {
    pub name: String,
    pub kind: String,
    pub set_identifier: Option<String>,
    pub aws_region: Option<String>,
    pub ttl: Option<i64>,
    pub values: Vec<String>,
    pub health_check_id: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Current {
    pub records: Vec<RecordState>,
    pub checks: Vec<CheckState>,
}

/// A health check a record points to: one that exists, or the one this sync creates for a region.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckRef {
    Existing(String),
    New(String),
}

/// A record set as it should be.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredRecord {
    pub name: String,
    pub kind: String,
    pub set_identifier: Option<String>,
    pub aws_region: Option<String>,
    pub value: String,
    pub health_check: Option<CheckRef>,
}

/// One change, in the order `apply` performs them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Step {
    CreateHealthCheck { region: String, fqdn: String, ip: String },
    UpsertRecord { region: String, record: DesiredRecord },
    DeleteRecord { region: String, record: RecordState },
    DeleteHealthCheck { region: String, id: String },
}

impl Step {
    pub fn region(&self) -> &str {
        match self {
            Step::CreateHealthCheck { region, .. }
            | Step::UpsertRecord { region, .. }
            | Step::DeleteRecord { region, .. }
            | Step::DeleteHealthCheck { region, .. } => region,
        }
    }

    /// (action, what, detail) for the plan table.
    pub fn describe(&self) -> (&'static str, String, String) {
        match self {
            Step::CreateHealthCheck { fqdn, ip, .. } => {
                ("create", "health check".into(), format!("HTTPS {ip}:{HEALTH_PORT} https://{fqdn}{HEALTH_PATH}"))
            }
            Step::UpsertRecord { record, .. } => {
                let routing = match (&record.set_identifier, &record.aws_region) {
                    (Some(id), Some(r)) => format!(" latency {r}, set {id}, health-checked"),
                    _ => String::new(),
                };
                ("upsert", format!("{} {}", record.kind, record.name), format!("{} ttl {TTL}{routing}", record.value))
            }
            Step::DeleteRecord { record, .. } => (
                "delete",
                format!("{} {}", record.kind, record.name),
                format!(
                    "{}{}",
                    record.values.join(","),
                    record.set_identifier.as_ref().map(|s| format!(" set {s}")).unwrap_or_default()
                ),
            ),
            Step::DeleteHealthCheck { id, .. } => ("delete", "health check".into(), id.clone()),
        }
    }
}

/// The caller-reference prefix marking geoctl's health checks for `zone`.
pub fn caller_prefix(zone: &str) -> String {
    format!("geoctl:{zone}:")
}

/// `example.com.` → `example.com`, lower case.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Checks a zone name given on the command line.
pub fn validate_zone(zone: &str) -> Result<String, DnsError> {
    let zone = normalize(zone);
    let ok = zone.contains('.') && crate::probe::check_hostname(&zone, false).is_ok();
    if ok {
        Ok(zone)
    } else {
        Err(DnsError::Input(format!("`{zone}` is not a DNS zone name; pass --zone like example.com")))
    }
}

/// The steps from `current` to what `desired` calls for. `known` holds every
/// region code the database has (active or not): their records are geoctl's
/// to remove when the region is not desired.
pub fn plan(zone: &str, desired: &[DesiredRegion], known: &[String], current: &Current) -> Vec<Step> {
    let mut creates = Vec::new();
    let mut upserts = Vec::new();
    let mut record_deletes = Vec::new();
    let mut check_deletes = Vec::new();
    let wanted: BTreeSet<&str> = desired.iter().map(|d| d.code.as_str()).collect();

    for region in desired {
        let fqdn = format!("{}.{zone}", region.code);
        let ip = region.address.to_string();
        let kind = if region.address.is_ipv4() { "A" } else { "AAAA" };
        let mut check = None;
        for existing in current.checks.iter().filter(|c| c.region == region.code) {
            let matches = existing.kind == "HTTPS"
                && existing.ip.as_deref() == Some(ip.as_str())
                && existing.fqdn.as_deref().map(normalize).as_deref() == Some(fqdn.as_str())
                && existing.port == Some(HEALTH_PORT)
                && existing.path.as_deref() == Some(HEALTH_PATH);
            if matches && check.is_none() {
                check = Some(CheckRef::Existing(existing.id.clone()));
            } else {
                check_deletes.push(Step::DeleteHealthCheck { region: region.code.clone(), id: existing.id.clone() });
            }
        }
        let check = check.unwrap_or_else(|| {
            creates.push(Step::CreateHealthCheck { region: region.code.clone(), fqdn: fqdn.clone(), ip: ip.clone() });
            CheckRef::New(region.code.clone())
        });
        let records = [
            DesiredRecord {
                name: fqdn.clone(),
                kind: kind.into(),
                set_identifier: None,
                aws_region: None,
                value: ip.clone(),
                health_check: None,
            },
            DesiredRecord {
                name: zone.to_string(),
                kind: kind.into(),
                set_identifier: Some(region.code.clone()),
                aws_region: Some(region.aws_region.clone()),
                value: ip.clone(),
                health_check: Some(check),
            },
        ];
        for record in records {
            let same_slot = |r: &&RecordState| r.name == record.name && r.set_identifier == record.set_identifier;
            let found = current.records.iter().filter(same_slot).find(|r| r.kind == record.kind);
            if found.is_none_or(|r| !same(r, &record)) {
                upserts.push(Step::UpsertRecord { region: region.code.clone(), record: record.clone() });
            }
            // The address changed family (A ⇄ AAAA): the old type goes.
            for other in current.records.iter().filter(same_slot).filter(|r| r.kind != record.kind && is_address(r)) {
                record_deletes.push(Step::DeleteRecord { region: region.code.clone(), record: other.clone() });
            }
        }
    }

    // Regions geoctl manages that are no longer wanted: known to the database, or marked by a check of ours.
    let managed: BTreeSet<&str> =
        known.iter().map(String::as_str).chain(current.checks.iter().map(|c| c.region.as_str())).collect();
    for record in &current.records {
        let owner = match &record.set_identifier {
            Some(id) if record.name == zone => Some(id.as_str()),
            None => record.name.strip_suffix(&format!(".{zone}")).filter(|code| !code.contains('.')),
            _ => None,
        };
        if let Some(code) = owner {
            if managed.contains(code) && !wanted.contains(code) && is_address(record) {
                record_deletes.push(Step::DeleteRecord { region: code.to_string(), record: record.clone() });
            }
        }
    }
    for check in current.checks.iter().filter(|c| !wanted.contains(c.region.as_str())) {
        check_deletes.push(Step::DeleteHealthCheck { region: check.region.clone(), id: check.id.clone() });
    }

    creates.into_iter().chain(upserts).chain(record_deletes).chain(check_deletes).collect()
}

fn is_address(record: &RecordState) -> bool {
    matches!(record.kind.as_str(), "A" | "AAAA")
}

fn same(current: &RecordState, desired: &DesiredRecord) -> bool {
    let check = match &desired.health_check {
        None => None,
        Some(CheckRef::Existing(id)) => Some(id.as_str()),
        Some(CheckRef::New(_)) => return false,
    };
    current.ttl == Some(TTL)
        && current.values == [desired.value.clone()]
        && current.aws_region == desired.aws_region
        && current.health_check_id.as_deref() == check
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(code: &str, ip: &str) -> DesiredRegion {
        DesiredRegion { code: code.into(), address: ip.parse().unwrap(), aws_region: "us-east-1".into() }
    }

    /// What Route 53 holds after `steps` are applied to `current` (checks get ids `hc-<region>`).
    fn applied(current: &Current, steps: &[Step]) -> Current {
        let mut next = current.clone();
        for step in steps {
            match step {
                Step::CreateHealthCheck { region, fqdn, ip } => next.checks.push(CheckState {
                    id: format!("hc-{region}"),
                    region: region.clone(),
                    kind: "HTTPS".into(),
                    ip: Some(ip.clone()),
                    fqdn: Some(fqdn.clone()),
                    port: Some(HEALTH_PORT),
                    path: Some(HEALTH_PATH.into()),
                }),
                Step::UpsertRecord { record, .. } => {
                    next.records.retain(|r| {
                        !(r.name == record.name && r.set_identifier == record.set_identifier && r.kind == record.kind)
                    });
                    next.records.push(RecordState {
                        name: record.name.clone(),
                        kind: record.kind.clone(),
                        set_identifier: record.set_identifier.clone(),
                        aws_region: record.aws_region.clone(),
                        ttl: Some(TTL),
                        values: vec![record.value.clone()],
                        health_check_id: record.health_check.as_ref().map(|c| match c {
                            CheckRef::Existing(id) => id.clone(),
                            CheckRef::New(region) => format!("hc-{region}"),
                        }),
                    });
                }
                Step::DeleteRecord { record, .. } => next.records.retain(|r| r != record),
                Step::DeleteHealthCheck { id, .. } => next.checks.retain(|c| &c.id != id),
            }
        }
        next
    }

    #[test]
    fn sync_converges_and_removes_disabled_regions() {
        let known = vec!["us-east".to_string(), "eu-west".to_string()];
        let desired = vec![region("us-east", "192.0.2.10"), region("eu-west", "192.0.2.20")];
        let mut current = Current::default();
        // An unrelated record stays untouched.
        current.records.push(RecordState {
            name: "www.example.com".into(),
            kind: "A".into(),
            set_identifier: None,
            aws_region: None,
            ttl: Some(300),
            values: vec!["198.51.100.1".into()],
            health_check_id: None,
        });
        let first = plan("example.com", &desired, &known, &current);
        assert_eq!(first.iter().filter(|s| matches!(s, Step::CreateHealthCheck { .. })).count(), 2);
        assert_eq!(first.iter().filter(|s| matches!(s, Step::UpsertRecord { .. })).count(), 4);
        let current = applied(&current, &first);
        assert!(plan("example.com", &desired, &known, &current).is_empty());

        let only_us = &desired[..1];
        let removal = plan("example.com", only_us, &known, &current);
        assert!(removal.iter().all(|s| s.region() == "eu-west"), "{removal:?}");
        assert_eq!(removal.iter().filter(|s| matches!(s, Step::DeleteRecord { .. })).count(), 2);
        assert_eq!(removal.iter().filter(|s| matches!(s, Step::DeleteHealthCheck { .. })).count(), 1);
        let current = applied(&current, &removal);
        assert!(plan("example.com", only_us, &known, &current).is_empty());
        assert!(current.records.iter().any(|r| r.name == "www.example.com"));
    }

    #[test]
    fn a_new_address_replaces_the_check_and_the_records() {
        let known = vec!["us-east".to_string()];
        let before = applied(
            &Current::default(),
            &plan("example.com", &[region("us-east", "192.0.2.10")], &known, &Current::default()),
        );
        let steps = plan("example.com", &[region("us-east", "2001:db8::1")], &known, &before);
        let kinds: Vec<&str> = steps.iter().map(|s| s.describe().0).collect();
        assert_eq!(kinds, ["create", "upsert", "upsert", "delete", "delete", "delete"], "{steps:?}");
    }

    #[test]
    fn zone_names() {
        assert_eq!(validate_zone("Example.COM.").unwrap(), "example.com");
        assert_eq!(crate::error::Coded::exit(&validate_zone("localhost").unwrap_err()), crate::error::Exit::Input);
        assert!(validate_zone("a b.com").is_err());
    }
}
