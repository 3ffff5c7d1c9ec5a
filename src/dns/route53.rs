//! Reading and changing a hosted zone and geoctl's health checks.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, HealthCheckConfig, HealthCheckType, ResourceRecord,
    ResourceRecordSet, ResourceRecordSetRegion, RrType,
};
use aws_sdk_route53::Client;

use super::{
    caller_prefix, normalize, CheckRef, CheckState, Current, DnsError, RecordState, Step, HEALTH_PATH, HEALTH_PORT, TTL,
};

fn failed<E, R>(action: &str, err: &aws_sdk_route53::error::SdkError<E, R>) -> DnsError
where
    E: aws_sdk_route53::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let detail = crate::aws::describe(err);
    if matches!(crate::aws::code(err), Some("InvalidClientTokenId" | "SignatureDoesNotMatch" | "AccessDenied")) {
        return DnsError::Input(format!(
            "Route 53 refused {action} ({detail}); check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and permissions"
        ));
    }
    DnsError::Route53(format!("Route 53: {action} failed: {detail}"))
}

/// The hosted zone's id, if the zone exists.
pub async fn find_zone(client: &Client, zone: &str) -> Result<Option<String>, DnsError> {
    let out = client
        .list_hosted_zones_by_name()
        .dns_name(zone)
        .send()
        .await
        .map_err(|e| failed("looking up the hosted zone", &e))?;
    Ok(out
        .hosted_zones()
        .iter()
        .find(|z| normalize(z.name()) == zone)
        .map(|z| z.id().trim_start_matches("/hostedzone/").to_string()))
}

pub async fn create_zone(client: &Client, zone: &str) -> Result<String, DnsError> {
    let out = client
        .create_hosted_zone()
        .name(zone)
        .caller_reference(format!("geoctl:{zone}:{}", uuid::Uuid::new_v4().simple()))
        .send()
        .await
        .map_err(|e| failed("creating the hosted zone", &e))?;
    Ok(out.hosted_zone().map(|z| z.id().trim_start_matches("/hostedzone/").to_string()).unwrap_or_default())
}

/// Every record set of the zone and every health check geoctl made for it.
pub async fn read_state(client: &Client, zone_id: &str, zone: &str) -> Result<Current, DnsError> {
    let mut current = Current::default();
    let mut next: Option<(String, RrType, Option<String>)> = None;
    loop {
        let mut req = client.list_resource_record_sets().hosted_zone_id(zone_id);
        if let Some((name, kind, id)) = next.take() {
            req = req.start_record_name(name).start_record_type(kind).set_start_record_identifier(id);
        }
        let out = req.send().await.map_err(|e| failed("listing records", &e))?;
        for set in out.resource_record_sets() {
            current.records.push(RecordState {
                name: normalize(set.name()),
                kind: set.r#type().as_str().to_string(),
                set_identifier: set.set_identifier().map(String::from),
                aws_region: set.region().map(|r| r.as_str().to_string()),
                ttl: set.ttl(),
                values: set.resource_records().iter().map(|r| r.value().to_string()).collect(),
                health_check_id: set.health_check_id().map(String::from),
            });
        }
        match (out.is_truncated(), out.next_record_name(), out.next_record_type()) {
            (true, Some(name), Some(kind)) => {
                next = Some((name.to_string(), kind.clone(), out.next_record_identifier().map(String::from)))
            }
            _ => break,
        }
    }

    let prefix = caller_prefix(zone);
    let mut marker: Option<String> = None;
    loop {
        let out = client
            .list_health_checks()
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| failed("listing health checks", &e))?;
        for check in out.health_checks() {
            let Some(rest) = check.caller_reference().strip_prefix(&prefix) else { continue };
            let config = check.health_check_config();
            current.checks.push(CheckState {
                id: check.id().to_string(),
                region: rest.split(':').next().unwrap_or_default().to_string(),
                kind: config.map(|c| c.r#type().as_str().to_string()).unwrap_or_default(),
                ip: config.and_then(|c| c.ip_address()).map(String::from),
                fqdn: config.and_then(|c| c.fully_qualified_domain_name()).map(String::from),
                port: config.and_then(|c| c.port()),
                path: config.and_then(|c| c.resource_path()).map(String::from),
            });
        }
        match (out.is_truncated(), out.next_marker()) {
            (true, Some(m)) => marker = Some(m.to_string()),
            _ => break,
        }
    }
    Ok(current)
}

/// Applies `steps` in order: health checks first, then one change batch
/// for the records (waited on until Route 53 reports it INSYNC), then the
/// health checks nothing points to any more.
pub async fn apply(
    client: &Client,
    zone_id: &str,
    zone: &str,
    steps: &[Step],
    wait: Duration,
    note: impl Fn(String),
) -> Result<(), DnsError> {
    let mut created: BTreeMap<String, String> = BTreeMap::new();
    for step in steps {
        if let Step::CreateHealthCheck { region, fqdn, ip } = step {
            let config = HealthCheckConfig::builder()
                .r#type(HealthCheckType::Https)
                .ip_address(ip)
                .fully_qualified_domain_name(fqdn)
                .port(HEALTH_PORT)
                .resource_path(HEALTH_PATH)
                .request_interval(30)
                .failure_threshold(3)
                .enable_sni(true)
                .build()
                .map_err(|e| DnsError::Route53(e.to_string()))?;
            let out = client
                .create_health_check()
                .caller_reference(format!("{}{region}:{}", caller_prefix(zone), uuid::Uuid::new_v4().simple()))
                .health_check_config(config)
                .send()
                .await
                .map_err(|e| failed(&format!("creating the health check of {region}"), &e))?;
            let id = out.health_check().map(|c| c.id().to_string()).unwrap_or_default();
            note(format!("created health check {id} for {region}"));
            created.insert(region.clone(), id);
        }
    }

    let mut changes = Vec::new();
    for step in steps {
        let change = match step {
            Step::UpsertRecord { record, .. } => {
                let mut set = ResourceRecordSet::builder()
                    .name(format!("{}.", record.name))
                    .r#type(RrType::from(record.kind.as_str()))
                    .ttl(TTL)
                    .resource_records(ResourceRecord::builder().value(&record.value).build().map_err(build)?);
                if let Some(id) = &record.set_identifier {
                    set = set.set_identifier(id);
                }
                if let Some(region) = &record.aws_region {
                    set = set.region(ResourceRecordSetRegion::from(region.as_str()));
                }
                match &record.health_check {
                    Some(CheckRef::Existing(id)) => set = set.health_check_id(id),
                    Some(CheckRef::New(region)) => {
                        let id = created
                            .get(region)
                            .ok_or_else(|| DnsError::Route53(format!("no health check for {region}")))?;
                        set = set.health_check_id(id);
                    }
                    None => {}
                }
                Change::builder().action(ChangeAction::Upsert).resource_record_set(set.build().map_err(build)?)
            }
            Step::DeleteRecord { record, .. } => {
                let mut set = ResourceRecordSet::builder()
                    .name(format!("{}.", record.name))
                    .r#type(RrType::from(record.kind.as_str()))
                    .set_ttl(record.ttl)
                    .set_set_identifier(record.set_identifier.clone())
                    .set_health_check_id(record.health_check_id.clone());
                if let Some(region) = &record.aws_region {
                    set = set.region(ResourceRecordSetRegion::from(region.as_str()));
                }
                for value in &record.values {
                    set = set.resource_records(ResourceRecord::builder().value(value).build().map_err(build)?);
                }
                Change::builder().action(ChangeAction::Delete).resource_record_set(set.build().map_err(build)?)
            }
            _ => continue,
        };
        changes.push(change.build().map_err(build)?);
    }
    if !changes.is_empty() {
        let count = changes.len();
        let batch =
            ChangeBatch::builder().comment("geoctl dns sync").set_changes(Some(changes)).build().map_err(build)?;
        let out = client
            .change_resource_record_sets()
            .hosted_zone_id(zone_id)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| failed("changing records", &e))?;
        let change_id = out.change_info().map(|c| c.id().to_string()).unwrap_or_default();
        note(format!("submitted {count} record change(s) ({change_id}); waiting for INSYNC"));
        let deadline = Instant::now() + wait;
        loop {
            let status = client
                .get_change()
                .id(&change_id)
                .send()
                .await
                .map_err(|e| failed("reading the change's status", &e))?;
            if status.change_info().map(|c| c.status()) == Some(&ChangeStatus::Insync) {
                break;
            }
            if Instant::now() > deadline {
                return Err(DnsError::Route53(format!(
                    "change {change_id} is still PENDING after {}s; it will finish on its own — run `geoctl dns plan` later",
                    wait.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    for step in steps {
        if let Step::DeleteHealthCheck { region, id } = step {
            client
                .delete_health_check()
                .health_check_id(id)
                .send()
                .await
                .map_err(|e| failed(&format!("deleting the health check of {region}"), &e))?;
            note(format!("deleted health check {id} of {region}"));
        }
    }
    Ok(())
}

fn build(err: aws_sdk_route53::error::BuildError) -> DnsError {
    DnsError::Route53(format!("building a Route 53 request: {err}"))
}
