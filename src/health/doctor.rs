//! `geoctl doctor`: a checklist of what geoctl needs, each item ✓ or ✗
//! with how to fix it.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{redis_side, EngineReach};
use crate::config::{env_suffix, Settings};
use crate::queue::{QueueError, RedisEndpoint, RegionQueue};

#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub check: String,
    pub ok: bool,
    pub detail: String,
    /// How to fix it, when not ok.
    pub fix: Option<String>,
}

fn pass(check: impl Into<String>, detail: impl Into<String>) -> Item {
    Item { check: check.into(), ok: true, detail: detail.into(), fix: None }
}

fn fail(check: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Item {
    Item { check: check.into(), ok: false, detail: detail.into(), fix: Some(fix.into()) }
}

/// Clock skew beyond this breaks scheduling and result timestamps.
pub const MAX_SKEW: Duration = Duration::from_secs(2);

/// Runs every check; never fails itself (a failure is an ✗ item).
pub async fn run(settings: &Settings) -> Vec<Item> {
    let mut items = Vec::new();
    items.push(pass(
        "configuration valid",
        match &settings.config_file {
            Some(path) => format!("{}", path.display()),
            None => "no config file; environment and defaults".into(),
        },
    ));

    // Database: reachable, migrated, clock.
    let mut active: Vec<String> = Vec::new();
    match &settings.database_url {
        None => items.push(fail(
            "database reachable",
            "DATABASE_URL is not set",
            "set DATABASE_URL (or DATABASE_URL_FILE, or database_url in geoctl.yaml)",
        )),
        Some(url) => match crate::store::connect(Some(&url.value), &settings.tuning).await {
            Err(e) => items.push(fail(
                "database reachable",
                e.to_string(),
                "start PostgreSQL or fix DATABASE_URL; `geoctl config show` says where it came from",
            )),
            Ok(pool) => {
                items.push(pass("database reachable", url.value.masked()));
                match crate::store::status(&pool).await {
                    Ok(states) => {
                        let pending = states.iter().filter(|m| !m.applied).count();
                        if pending == 0 {
                            items.push(pass("database migrated", format!("{} migrations applied", states.len())));
                        } else {
                            items.push(fail(
                                "database migrated",
                                format!("{pending} migration(s) pending"),
                                "run `geoctl db migrate`",
                            ));
                        }
                    }
                    Err(e) => items.push(fail("database migrated", e.to_string(), "run `geoctl db migrate`")),
                }
                items.push(clock(&pool).await);
                active = crate::region::RegionStore::active_codes(&pool).await.unwrap_or_default();
            }
        },
    }

    // Each region's Redis: configured (a secret) and reachable.
    let mut regions: Vec<String> = settings.regions.keys().cloned().collect();
    regions.extend(active.iter().cloned());
    regions.sort();
    regions.dedup();
    for code in &regions {
        let suffix = env_suffix(code);
        match RedisEndpoint::resolve(settings, code) {
            Err(QueueError::NoRedis { .. }) => items.push(fail(
                format!("secret REDIS_URL_{suffix}"),
                format!("region {code} has no Redis URL"),
                format!("set REDIS_URL_{suffix} (or REDIS_URL_{suffix}_FILE, or regions.{code}.redis_url)"),
            )),
            Err(e) => {
                items.push(fail(format!("secret REDIS_URL_{suffix}"), e.to_string(), format!("fix REDIS_URL_{suffix}")))
            }
            Ok(endpoint) => {
                let started = Instant::now();
                match RegionQueue::connect(&endpoint, &settings.tuning).await {
                    Ok(queue) => {
                        items.push(pass(
                            format!("redis {code} reachable"),
                            format!("{} ({:.1} ms)", endpoint.server(), started.elapsed().as_secs_f64() * 1000.0),
                        ));
                        queue.close().await;
                    }
                    Err(e) => items.push(fail(
                        format!("redis {code} reachable"),
                        redis_side::problem(&endpoint, &e),
                        format!("start region {code}'s Redis or fix REDIS_URL_{suffix}"),
                    )),
                }
            }
        }
    }
    if settings.aws.s3_bucket.is_some() && settings.aws.access_key_id.is_none() {
        items.push(pass(
            "secret AWS_ACCESS_KEY_ID",
            "not set; the standard AWS chain (profile, instance role) will be used",
        ));
    }

    // Docker Engine and Swarm.
    let engine = EngineReach::connect(&crate::swarm::Endpoint::for_region(settings, None)).await;
    match &engine {
        EngineReach::NotConfigured => items.push(fail(
            "docker engine reachable",
            "no DOCKER_HOST and no /var/run/docker.sock",
            "set DOCKER_HOST to the region's engine (e.g. ssh://… or tcp://…:2376)",
        )),
        EngineReach::Unreachable(e) => {
            items.push(fail("docker engine reachable", e.clone(), "start dockerd or fix DOCKER_HOST"))
        }
        EngineReach::Reachable { swarm_manager, engine } => {
            items.push(pass("docker engine reachable", engine.endpoint.clone()));
            if *swarm_manager {
                items.push(pass("swarm manager", "this engine manages the swarm"));
                items.extend(swarm_ports(&engine.endpoint).await);
            } else {
                items.push(fail(
                    "swarm manager",
                    "the engine is not a swarm manager",
                    "initialise the swarm (`geoctl swarm init`), or point DOCKER_HOST at a manager",
                ));
            }
        }
    }
    items
}

/// Compares this machine's clock with the database's, halving the round trip.
async fn clock(pool: &sqlx::PgPool) -> Item {
    let before = chrono::Utc::now();
    let db: Result<chrono::DateTime<chrono::Utc>, _> =
        sqlx::query_scalar("SELECT clock_timestamp()").fetch_one(pool).await;
    let after = chrono::Utc::now();
    match db {
        Err(e) => fail("clock skew", e.to_string(), "check the database connection"),
        Ok(db) => {
            let local = before + (after - before) / 2;
            let skew = (local - db).num_milliseconds();
            let detail = format!("{skew:+} ms vs the database");
            if skew.unsigned_abs() as u128 <= MAX_SKEW.as_millis() {
                pass("clock skew", detail)
            } else {
                fail("clock skew", detail, "synchronise the clocks (chrony or systemd-timesyncd on both machines)")
            }
        }
    }
}

/// TCP ports of a manager that can be tried from here; UDP ones cannot be told.
async fn swarm_ports(host: &str) -> Vec<Item> {
    let address = url::Url::parse(host)
        .ok()
        .filter(|u| u.scheme() == "tcp")
        .and_then(|u| u.host_str().map(String::from))
        .unwrap_or_else(|| "127.0.0.1".into());
    let mut out = Vec::new();
    for (port, what) in [(2377u16, "cluster management"), (7946, "node communication")] {
        let reachable =
            tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect((address.as_str(), port)))
                .await
                .is_ok_and(|r| r.is_ok());
        let check = format!("swarm port {port}/tcp");
        if reachable {
            out.push(pass(check, format!("{address}:{port} open ({what})")));
        } else {
            out.push(fail(
                check,
                format!("{address}:{port} does not answer"),
                format!("open {port}/tcp between the nodes"),
            ));
        }
    }
    out.push(pass("swarm ports 7946/udp, 4789/udp", "cannot be told from here; open them between the nodes"));
    out
}
