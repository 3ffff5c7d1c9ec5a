//! A region's Redis: where it is (from the configuration) and a checked
//! connection to its queue that fails fast and names the region.

use std::future::Future;
use std::time::Duration;

use crate::config::{env_suffix, Secret, Settings, Tuning};

use super::{Lane, QueueError};

/// How to reach one region's Redis, password merged into the URL.
#[derive(Debug, Clone)]
pub struct RedisEndpoint {
    pub region: String,
    url: Secret,
    /// The variable an operator sets for the password, for hints.
    password_var: String,
}

impl RedisEndpoint {
    /// The endpoint of `region` from `regions.<code>.redis_url` /
    /// `REDIS_URL_<REGION>` (and `_FILE`), with `REDIS_PASSWORD_<REGION>` (or its
    /// `_FILE`) as the password when set. No URL is bad input, naming the variable.
    pub fn resolve(settings: &Settings, region: &str) -> Result<Self, QueueError> {
        let suffix = env_suffix(region);
        let endpoints = settings.regions.get(region);
        let Some(url) = endpoints.and_then(|e| e.redis_url.as_ref()) else {
            return Err(QueueError::NoRedis { region: region.into(), var: format!("REDIS_URL_{suffix}") });
        };
        let password = endpoints.and_then(|e| e.redis_password.as_ref());
        let origin = url.source.to_string();
        let invalid =
            |reason: String| QueueError::InvalidUrl { origin: origin.clone(), shown: url.value.masked(), reason };
        let mut parsed = url::Url::parse(url.value.expose()).map_err(|e| invalid(e.to_string()))?;
        if !matches!(parsed.scheme(), "redis" | "rediss") {
            return Err(invalid(format!("scheme `{}`", parsed.scheme())));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(invalid("no host".into()));
        }
        let db = parsed.path().trim_start_matches('/');
        if !db.is_empty() && db.parse::<u16>().is_err() {
            return Err(invalid(format!("database `{db}` is not a number")));
        }
        if let Some(password) = password {
            parsed.set_password(Some(password.value.expose())).map_err(|_| invalid("cannot hold a password".into()))?;
        }
        Ok(RedisEndpoint {
            region: region.into(),
            url: Secret::new(parsed.to_string()),
            password_var: format!("REDIS_PASSWORD_{suffix}"),
        })
    }

    /// The endpoint as it may be shown: the password masked.
    pub fn shown(&self) -> String {
        self.url.masked()
    }

    /// `host:port/db`, for messages that name the server without its URL.
    pub fn server(&self) -> String {
        let url = url::Url::parse(self.url.expose()).expect("resolve keeps a parsed URL");
        format!("{}:{}{}", url.host_str().unwrap_or("localhost"), url.port().unwrap_or(6379), url.path())
    }

    fn has_password(&self) -> bool {
        url::Url::parse(self.url.expose()).is_ok_and(|u| u.password().is_some())
    }
}

/// A region's queue, connected. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct RegionQueue {
    pub region: String,
    /// Which of the region's queues this is.
    pub lane: Lane,
    endpoint: String,
    url: Secret,
    queue: bullmq::Queue,
    command_timeout: Duration,
}

impl RegionQueue {
    /// Connects and checks the server answers (and accepts the password)
    /// within `REDIS_CONNECTION_TIMEOUT`; no retry loop, so an unreachable
    /// region fails in seconds, not minutes.
    pub async fn connect(endpoint: &RedisEndpoint, tuning: &Tuning) -> Result<Self, QueueError> {
        Self::connect_lane(endpoint, tuning, Lane::Plain).await
    }

    /// [`connect`](Self::connect) to one lane's queue of the region.
    pub async fn connect_lane(endpoint: &RedisEndpoint, tuning: &Tuning, lane: Lane) -> Result<Self, QueueError> {
        let connect_timeout = tuning.redis_connection_timeout.value;
        let command_timeout = tuning.redis_command_timeout.value;
        let shown = endpoint.shown();
        let fail = |e: redis::RedisError| classify(endpoint, &shown, e);
        let client = redis::Client::open(endpoint.url.expose()).map_err(|e| QueueError::InvalidUrl {
            origin: format!("region `{}`", endpoint.region),
            shown: shown.clone(),
            reason: crate::config::scrub(&e.to_string(), &endpoint.url),
        })?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(command_timeout));
        let check = async {
            let mut conn = client.get_multiplexed_async_connection_with_config(&config).await.map_err(fail)?;
            redis::cmd("PING").query_async::<String>(&mut conn).await.map_err(fail)
        };
        let timed_out = |what: &str, timeout: Duration| QueueError::Unreachable {
            region: endpoint.region.clone(),
            endpoint: shown.clone(),
            reason: format!("no answer to {what} within {}", crate::duration::format(timeout)),
        };
        tokio::time::timeout(connect_timeout + command_timeout, check)
            .await
            .map_err(|_| timed_out("connect", connect_timeout))??;

        let options = bullmq::QueueOptions::new()
            .connection(bullmq::options::RedisConnectionOptions::new().url(endpoint.url.expose()));
        let queue = tokio::time::timeout(connect_timeout + command_timeout, async {
            bullmq::Queue::with_options(&lane.queue_name(&endpoint.region), options).await
        })
        .await
        .map_err(|_| timed_out("connect", connect_timeout))?
        .map_err(|e| bull_error(&endpoint.region, &shown, &endpoint.url, "opening the queue", e))?;
        Ok(RegionQueue {
            region: endpoint.region.clone(),
            lane,
            endpoint: shown,
            url: endpoint.url.clone(),
            queue,
            command_timeout,
        })
    }

    /// The region's queue as the configuration says: [`RedisEndpoint::resolve`], then [`connect`](Self::connect).
    pub async fn open(settings: &Settings, region: &str) -> Result<Self, QueueError> {
        Self::open_lane(settings, region, Lane::Plain).await
    }

    /// [`open`](Self::open) one lane's queue of the region.
    pub async fn open_lane(settings: &Settings, region: &str, lane: Lane) -> Result<Self, QueueError> {
        let endpoint = RedisEndpoint::resolve(settings, region)?;
        Self::connect_lane(&endpoint, &settings.tuning, lane).await
    }

    /// The region's queue of another lane, on the same Redis.
    pub async fn lane(&self, lane: Lane) -> Result<Self, QueueError> {
        if lane == self.lane {
            return Ok(self.clone());
        }
        let options = bullmq::QueueOptions::new()
            .connection(bullmq::options::RedisConnectionOptions::new().url(self.url.expose()));
        let queue =
            self.run("opening the queue", bullmq::Queue::with_options(&lane.queue_name(&self.region), options)).await?;
        Ok(RegionQueue { lane, queue, ..self.clone() })
    }

    /// Closes the queue's connections (a command's last use of it).
    pub async fn close(&self) {
        self.queue.close().await;
    }

    /// The BullMQ queue, for what this module does not wrap (the agent's worker).
    pub fn bull(&self) -> &bullmq::Queue {
        &self.queue
    }

    /// The queue's name, `monitor-<region>` or `browser-<region>`.
    pub fn name(&self) -> &str {
        self.queue.name()
    }

    /// The endpoint, password masked.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A connection for plain commands (heartbeats, listings); it reconnects by itself.
    pub fn connection(&self) -> bullmq::redis_connection::AnyConnection {
        self.queue.connection().connection()
    }

    /// Runs one queue operation within `REDIS_COMMAND_TIMEOUT`, naming the
    /// region and the operation when it fails.
    pub async fn run<T>(
        &self,
        what: &str,
        op: impl Future<Output = Result<T, bullmq::Error>>,
    ) -> Result<T, QueueError> {
        match tokio::time::timeout(self.command_timeout, op).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.command_error(what, e.to_string())),
            Err(_) => Err(QueueError::Timeout {
                region: self.region.clone(),
                endpoint: self.endpoint.clone(),
                what: what.into(),
                timeout: crate::duration::format(self.command_timeout),
            }),
        }
    }

    /// Like [`run`](Self::run) for plain redis commands.
    pub async fn redis<T>(
        &self,
        what: &str,
        op: impl Future<Output = Result<T, redis::RedisError>>,
    ) -> Result<T, QueueError> {
        self.run(what, async { op.await.map_err(bullmq::Error::from) }).await
    }

    fn command_error(&self, what: &str, reason: String) -> QueueError {
        QueueError::Command {
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
            what: what.into(),
            reason: crate::config::scrub(&reason, &self.url),
        }
    }
}

fn classify(endpoint: &RedisEndpoint, shown: &str, e: redis::RedisError) -> QueueError {
    let region = endpoint.region.clone();
    let var = endpoint.password_var.clone();
    let endpoint_shown = shown.to_string();
    if e.kind() == redis::ErrorKind::AuthenticationFailed || e.code() == Some("WRONGPASS") {
        return QueueError::WrongPassword { region, endpoint: endpoint_shown, var };
    }
    if e.code() == Some("NOAUTH") {
        return if endpoint.has_password() {
            QueueError::WrongPassword { region, endpoint: endpoint_shown, var }
        } else {
            QueueError::PasswordRequired { region, endpoint: endpoint_shown, var }
        };
    }
    QueueError::Unreachable {
        region,
        endpoint: endpoint_shown,
        reason: crate::config::scrub(&e.to_string(), &endpoint.url),
    }
}

fn bull_error(region: &str, shown: &str, url: &Secret, what: &str, e: bullmq::Error) -> QueueError {
    QueueError::Command {
        region: region.into(),
        endpoint: shown.into(),
        what: what.into(),
        reason: crate::config::scrub(&e.to_string(), url),
    }
}
