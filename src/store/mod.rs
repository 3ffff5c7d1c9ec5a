//! The PostgreSQL connection and the embedded migrations.

pub mod reach;

use std::time::Duration;

use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use crate::config::{scrub, Secret, Tuning};

/// Every migration in `migrations/`, compiled into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// What a write did, so commands can say "unchanged" and stay idempotent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Created,
    Updated,
    Unchanged,
    Deleted,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no database configured; set DATABASE_URL, pass --database-url, or add database_url to geoctl.yaml")]
    NotConfigured,
    #[error("invalid database URL ({masked}): {message}")]
    InvalidUrl { masked: String, message: String },
    #[error("cannot connect to PostgreSQL at {server}: {message}")]
    Unreachable { server: String, message: String },
    #[error("migration failed: {0}")]
    Migrate(String),
}

impl crate::error::Coded for StoreError {
    fn exit(&self) -> crate::error::Exit {
        use crate::error::Exit;
        match self {
            StoreError::NotConfigured | StoreError::InvalidUrl { .. } => Exit::Input,
            StoreError::Unreachable { .. } | StoreError::Migrate(_) => Exit::Failed,
        }
    }
}

/// Where a database URL points, without credentials: `host:port/db`.
pub fn server_of(options: &PgConnectOptions) -> String {
    format!("{}:{}/{}", options.get_host(), options.get_port(), options.get_database().unwrap_or(""))
}

/// Connects a pool sized and timed by the seed's tuning variables. Errors
/// name the server and never the password.
pub async fn connect(url: Option<&Secret>, tuning: &Tuning) -> Result<PgPool, StoreError> {
    let url = url.ok_or(StoreError::NotConfigured)?;
    if !(url.expose().starts_with("postgres://") || url.expose().starts_with("postgresql://")) {
        return Err(StoreError::InvalidUrl {
            masked: url.masked(),
            message: "use a postgres:// or postgresql:// URL".into(),
        });
    }
    let supported = without_unsupported_params(url.expose());
    let options: PgConnectOptions = supported.parse().map_err(|e: sqlx::Error| StoreError::InvalidUrl {
        masked: url.masked(),
        message: scrub(&e.to_string(), url),
    })?;
    // A slow statement is worth a line at -v, not the statement's 40 lines at every run.
    let options = options
        .application_name("geoctl")
        .log_statements(tracing::log::LevelFilter::Debug)
        .log_slow_statements(tracing::log::LevelFilter::Info, Duration::from_secs(2));
    let server = server_of(&options);
    if options.get_socket().is_none() {
        let timeout = reach::CONNECT_TIMEOUT.min(tuning.db_pool_timeout.value);
        reach::tcp(options.get_host(), options.get_port(), timeout)
            .await
            .map_err(|cause| StoreError::Unreachable { server: server.clone(), message: cause })?;
    }
    PgPoolOptions::new()
        .max_connections(tuning.db_connection_limit.value)
        .acquire_timeout(tuning.db_pool_timeout.value)
        .idle_timeout(tuning.db_idle_timeout.value)
        .connect_with(options)
        .await
        .map_err(|e| StoreError::Unreachable { server, message: scrub(&e.to_string(), url) })
}

/// Connect parameters the PostgreSQL driver understands; it would log any other one with its
/// value at warning level (`sslpassword=…`), so those are dropped here with a warning naming
/// only the key.
const SUPPORTED_PARAMS: [&str; 17] = [
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
];

fn without_unsupported_params(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
            let supported = SUPPORTED_PARAMS.contains(&key) || key == "options" || key.starts_with("options[");
            if !supported && !key.is_empty() {
                tracing::warn!(
                    "ignoring the database URL parameter `{key}`: the PostgreSQL driver does not support it"
                );
            }
            supported
        })
        .collect();
    if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

/// One migration and whether it is applied here.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationState {
    pub version: i64,
    pub description: String,
    pub applied: bool,
    pub applied_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The file in this binary differs from what was applied.
    pub checksum_mismatch: bool,
}

/// Applies pending migrations; returns the versions it applied.
pub async fn migrate(pool: &PgPool) -> Result<Vec<i64>, StoreError> {
    let before: Vec<i64> = applied(pool).await?.into_iter().map(|(v, _, _)| v).collect();
    MIGRATOR.run(pool).await.map_err(|e| StoreError::Migrate(e.to_string()))?;
    Ok(MIGRATOR.iter().map(|m| m.version).filter(|v| !before.contains(v)).collect())
}

/// Every migration this binary knows, with its state in the database.
pub async fn status(pool: &PgPool) -> Result<Vec<MigrationState>, StoreError> {
    let applied = applied(pool).await?;
    Ok(MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| {
            let row = applied.iter().find(|(v, _, _)| *v == m.version);
            MigrationState {
                version: m.version,
                description: m.description.to_string(),
                applied: row.is_some(),
                applied_at: row.map(|(_, at, _)| *at),
                checksum_mismatch: row.is_some_and(|(_, _, sum)| sum.as_slice() != &*m.checksum),
            }
        })
        .collect())
}

async fn applied(pool: &PgPool) -> Result<Vec<(i64, chrono::DateTime<chrono::Utc>, Vec<u8>)>, StoreError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await
        .map_err(|e| StoreError::Migrate(e.to_string()))?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_as("SELECT version, installed_on, checksum FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
        .map_err(|e| StoreError::Migrate(e.to_string()))
}

/// What a retention run removed (or would remove).
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    pub cutoff: chrono::DateTime<chrono::Utc>,
    pub monitor_results: i64,
    pub regional_performance_metrics: i64,
    pub dry_run: bool,
}

/// Per-result tables that retention trims; daily summaries are kept.
const PRUNED_TABLES: [&str; 2] = ["monitor_results", "regional_performance_metrics"];

/// Deletes per-result rows older than `cutoff` in batches of `batch` rows,
/// each batch its own short transaction, so agents keep writing meanwhile.
pub async fn prune(
    pool: &PgPool,
    cutoff: chrono::DateTime<chrono::Utc>,
    batch: i64,
    dry_run: bool,
) -> Result<PruneReport, sqlx::Error> {
    let mut counts = [0i64; 2];
    for (table, count) in PRUNED_TABLES.iter().zip(counts.iter_mut()) {
        if dry_run {
            *count = sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE checked_at < $1"))
                .bind(cutoff)
                .fetch_one(pool)
                .await?;
            continue;
        }
        loop {
            let deleted = sqlx::query(&format!(
                "DELETE FROM {table} WHERE ctid = ANY (ARRAY(SELECT ctid FROM {table} WHERE checked_at < $1 LIMIT $2))"
            ))
            .bind(cutoff)
            .bind(batch)
            .execute(pool)
            .await?
            .rows_affected() as i64;
            *count += deleted;
            if deleted < batch {
                break;
            }
        }
    }
    Ok(PruneReport { cutoff, monitor_results: counts[0], regional_performance_metrics: counts[1], dry_run })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_url_parameters_are_dropped_before_the_driver_logs_them() {
        let url = "postgres://u:p@h/db?sslmode=require&sslpassword=k3y&options[search_path]=x";
        assert_eq!(without_unsupported_params(url), "postgres://u:p@h/db?sslmode=require&options[search_path]=x");
        assert_eq!(without_unsupported_params("postgres://h/db?sslpassword=k3y"), "postgres://h/db");
        assert_eq!(without_unsupported_params("postgres://h/db"), "postgres://h/db");
    }
}
