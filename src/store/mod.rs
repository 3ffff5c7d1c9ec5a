//! The PostgreSQL connection and the embedded migrations.

pub mod partition;
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
    #[error(
        "database {server} has no geoctl schema; run `geoctl db migrate` to create it \
         (or check that DATABASE_URL names geoctl's database)"
    )]
    NoSchema { server: String },
    #[error(
        "database {server} has the existing app's tables but no geoctl schema; run `geoctl db migrate`, \
         which adds geoctl's tables next to them and keeps their rows"
    )]
    LegacySchema { server: String },
    #[error(
        "database {server} is {behind} migration(s) behind this geoctl ({applied} of {known} applied, \
         next: {next}); run `geoctl db migrate`"
    )]
    SchemaBehind { server: String, behind: usize, applied: usize, known: usize, next: String },
    #[error(transparent)]
    Partition(#[from] partition::PartitionError),
}

/// A query that fails once connected (the pool timed out, a constraint refused a row) is a
/// failure; commands that can blame the input check it before they write.
impl crate::error::Coded for sqlx::Error {
    fn exit(&self) -> crate::error::Exit {
        crate::error::Exit::Failed
    }
}

impl crate::error::Coded for StoreError {
    fn exit(&self) -> crate::error::Exit {
        use crate::error::Exit;
        match self {
            StoreError::NotConfigured | StoreError::InvalidUrl { .. } => Exit::Input,
            // Not a fault of the run, and running it again will not help: the operator must
            // migrate (or point DATABASE_URL at the right database), as with a bad setting.
            StoreError::NoSchema { .. } | StoreError::LegacySchema { .. } | StoreError::SchemaBehind { .. } => {
                Exit::Input
            }
            StoreError::Unreachable { .. } | StoreError::Migrate(_) => Exit::Failed,
            StoreError::Partition(e) => e.exit(),
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

/// [`connect`], then [`require_schema`]: what every command that works on geoctl's
/// tables (and the agent) opens the database with. Only what migrates it
/// (`db migrate`, `region init`), `db status` and backups, which must work on
/// any schema, use [`connect`] alone.
pub async fn open(url: Option<&Secret>, tuning: &Tuning) -> Result<PgPool, StoreError> {
    let pool = connect(url, tuning).await?;
    require_schema(&pool).await?;
    Ok(pool)
}

/// Fails unless every migration embedded in this binary is applied, saying
/// what is missing in the operator's terms: no geoctl schema at all, the
/// existing app's tables without geoctl's, or N migrations behind. One query
/// when the schema is there. Migrations applied that this binary does not
/// know (a newer geoctl migrated) only warn: they add to the schema, and an
/// older agent restarted during a rolling upgrade must keep working.
pub async fn require_schema(pool: &PgPool) -> Result<(), StoreError> {
    let server = server_of(&pool.connect_options());
    let err = |e: sqlx::Error| StoreError::Migrate(e.to_string());
    let applied: Vec<i64> = match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(pool)
        .await
    {
        Ok(versions) => versions,
        // 42P01 undefined_table: no migration was ever recorded here.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => {
            let legacy: bool =
                sqlx::query_scalar("SELECT to_regclass('monitors') IS NOT NULL").fetch_one(pool).await.map_err(err)?;
            return Err(if legacy { StoreError::LegacySchema { server } } else { StoreError::NoSchema { server } });
        }
        Err(e) => return Err(err(e)),
    };
    let known: Vec<&sqlx::migrate::Migration> =
        MIGRATOR.iter().filter(|m| m.migration_type.is_up_migration()).collect();
    let missing: Vec<&&sqlx::migrate::Migration> = known.iter().filter(|m| !applied.contains(&m.version)).collect();
    if let Some(next) = missing.first() {
        if missing.len() == known.len() {
            return Err(StoreError::NoSchema { server });
        }
        return Err(StoreError::SchemaBehind {
            server,
            behind: missing.len(),
            applied: known.len() - missing.len(),
            known: known.len(),
            next: format!("{}_{}", next.version, next.description.replace(' ', "_")),
        });
    }
    let unknown: Vec<String> =
        applied.iter().filter(|v| !known.iter().any(|m| m.version == **v)).map(i64::to_string).collect();
    if !unknown.is_empty() {
        tracing::warn!(
            "database {server} has migration(s) {} that this geoctl does not know: a newer geoctl migrated it; \
             upgrade this one",
            unknown.join(", ")
        );
    }
    Ok(())
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

/// What `migrate` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Migrated {
    pub applied: Vec<i64>,
    /// Indexes an interrupted concurrent build had left INVALID, dropped and built again.
    pub rebuilt_indexes: Vec<String>,
}

/// Applies pending migrations, first rebuilding any index of geoctl's that an
/// interrupted `CREATE INDEX CONCURRENTLY` left INVALID (`IF NOT EXISTS` would
/// otherwise skip it and record the migration as applied).
pub async fn migrate(pool: &PgPool) -> Result<Migrated, StoreError> {
    let err = |e: sqlx::Error| StoreError::Migrate(e.to_string());
    // One geoctl migration at a time, so an index another one is still building
    // (invalid until it finishes) is never taken for a leftover.
    let mut lock = pool.acquire().await.map_err(err)?;
    sqlx::query("SELECT pg_advisory_lock(hashtext('geoctl:migrate'))").execute(&mut *lock).await.map_err(err)?;
    let out = migrate_locked(pool).await;
    let _ = sqlx::query("SELECT pg_advisory_unlock(hashtext('geoctl:migrate'))").execute(&mut *lock).await;
    out
}

async fn migrate_locked(pool: &PgPool) -> Result<Migrated, StoreError> {
    let err = |e: sqlx::Error| StoreError::Migrate(e.to_string());
    let before: Vec<i64> = applied(pool).await?.into_iter().map(|(v, _, _)| v).collect();
    let mut rebuilt = Vec::new();
    let mut rerun = Vec::new();
    for index in invalid_indexes(pool).await? {
        let Some(version) = index.migration else { continue };
        if index.on_partition {
            // Its migration names the table it now is a partition of; rebuilt where it is.
            sqlx::raw_sql(&format!("REINDEX INDEX CONCURRENTLY \"{}\"", index.name.replace('"', "\"\"")))
                .execute(pool)
                .await
                .map_err(err)?;
            rebuilt.push(index.name);
            continue;
        }
        sqlx::raw_sql(&format!("DROP INDEX CONCURRENTLY IF EXISTS \"{}\"", index.name.replace('"', "\"\"")))
            .execute(pool)
            .await
            .map_err(err)?;
        if before.contains(&version) {
            rerun.push(version);
        }
        rebuilt.push(index.name);
    }
    let unpartitioned = partition::pending(&before);
    partition::prepare(pool, chrono::Utc::now(), &unpartitioned).await?;
    if let Err(e) = run_pending(pool).await {
        if !unpartitioned.is_empty() {
            // The error that stopped the migrations is the one to report; this one only logs.
            if let Err(cleanup) = partition::unprepare(pool, &unpartitioned).await {
                tracing::warn!("could not drop the past partitions' CHECK constraints: {cleanup}");
            }
        }
        return Err(e);
    }
    // Applied migrations are not run again by sqlx: their index files are
    // idempotent (`IF NOT EXISTS`), so run them again here.
    for m in MIGRATOR.iter().filter(|m| rerun.contains(&m.version)) {
        sqlx::raw_sql(&m.sql).execute(pool).await.map_err(err)?;
    }
    let applied = MIGRATOR.iter().map(|m| m.version).filter(|v| !before.contains(v)).collect();
    // Writes from the moment the migration is done have their days' partitions.
    partition::maintain(pool, chrono::Utc::now().date_naive(), partition::AHEAD_DAYS).await?;
    Ok(Migrated { applied, rebuilt_indexes: rebuilt })
}

/// Runs the pending migrations, again when one gave up waiting for a lock (the partitioning
/// migration waits at most a second, so the existing app's writes never queue longer behind it).
async fn run_pending(pool: &PgPool) -> Result<(), StoreError> {
    let mut attempt = 1;
    loop {
        match MIGRATOR.run(pool).await {
            Err(sqlx::migrate::MigrateError::Execute(e) | sqlx::migrate::MigrateError::ExecuteMigration(e, _))
                if attempt < 5 && partition::is_lock_timeout(&e) =>
            {
                tracing::info!(attempt, "a migration waited too long for a lock; trying again");
                tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
                attempt += 1;
            }
            other => return other.map_err(|e| StoreError::Migrate(e.to_string())),
        }
    }
}

/// An index that PostgreSQL will not use: a concurrent build that failed or was interrupted.
#[derive(Debug, Clone, Serialize)]
pub struct InvalidIndex {
    pub name: String,
    pub table: String,
    /// The geoctl migration that builds it; `None` for someone else's index.
    pub migration: Option<i64>,
    /// On a partition (of a table partitioned since that migration): built again in place.
    #[serde(skip)]
    pub on_partition: bool,
}

impl InvalidIndex {
    /// How to repair it.
    pub fn fix(&self) -> String {
        match self.migration {
            Some(_) => "run `geoctl db migrate`: it drops the index and builds it again".into(),
            None => format!("not geoctl's: rebuild it with `REINDEX INDEX CONCURRENTLY {}`", self.name),
        }
    }
}

/// Every INVALID index of the current schema, with the geoctl migration that builds it.
pub async fn invalid_indexes(pool: &PgPool) -> Result<Vec<InvalidIndex>, StoreError> {
    let rows: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT c.relname::text, t.relname::text, t.relispartition FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE NOT i.indisvalid AND n.nspname = current_schema() ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| StoreError::Migrate(e.to_string()))?;
    Ok(rows
        .into_iter()
        .map(|(name, table, on_partition)| {
            let builds = format!("IF NOT EXISTS {name}\n");
            let migration = MIGRATOR
                .iter()
                .find(|m| m.sql.contains("CREATE") && m.sql.contains(&builds) && m.sql.contains("CONCURRENTLY"))
                .map(|m| m.version);
            InvalidIndex { name, table, migration, on_partition }
        })
        .collect())
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
