//! The `monitors` and `monitor_regions` tables. Every change runs in one
//! transaction and validates the monitor as it would be after the change.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::plan::{plan_fields, plan_overrides, Planned};
use super::{
    frequency_minutes, validate_interval, validate_target, validate_timeout, DownRule, Header, MonitorError,
    MonitorType,
};
use crate::region::{validate_thresholds, RegionStore};
use crate::store::Change;

/// A monitor as stored, with the regions it runs in. Every way it can be shown (`Serialize`,
/// `Debug`, [`Monitor::config_text`]) masks credential header values; only the check reads them.
#[derive(Clone, Serialize)]
pub struct Monitor {
    pub id: Uuid,
    pub name: String,
    /// The stored type (`http_request`, `port_check`, `ping_host`, `dns`, or a legacy value).
    #[serde(rename = "type")]
    pub stored_type: String,
    pub target: String,
    pub interval_seconds: i32,
    pub frequency_minutes: i32,
    pub timeout_ms: Option<i32>,
    pub enabled: bool,
    pub status: String,
    pub down_rule: String,
    #[serde(serialize_with = "super::spec::serialize_masked_config")]
    pub config: Value,
    pub regions: Vec<MonitorRegion>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl Monitor {
    pub fn kind(&self) -> Option<MonitorType> {
        MonitorType::parse(&self.stored_type)
    }

    pub fn region_codes(&self) -> Vec<String> {
        self.regions.iter().map(|r| r.region.clone()).collect()
    }

    /// The config as one line of JSON, credential headers masked.
    pub fn config_text(&self) -> String {
        super::spec::masked_config(&self.config).to_string()
    }
}

/// Debug output goes through the masking `Serialize`, so logs cannot show a credential.
impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Monitor {}", serde_json::to_string(self).map_err(|_| std::fmt::Error)?)
    }
}

impl std::fmt::Debug for MonitorRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MonitorRegion {}", serde_json::to_string(self).map_err(|_| std::fmt::Error)?)
    }
}

/// A monitor's assignment to one region, with that region's overrides.
#[derive(Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct MonitorRegion {
    #[sqlx(rename = "region_code")]
    pub region: String,
    pub enabled: bool,
    pub timeout_ms: Option<i32>,
    pub interval_seconds: Option<i32>,
    pub schedule: Option<String>,
    pub latency_warning_ms: Option<i32>,
    pub latency_critical_ms: Option<i32>,
    #[serde(serialize_with = "super::spec::serialize_masked_headers")]
    pub headers: Option<Value>,
    pub priority: i32,
    pub notes: Option<String>,
}

impl MonitorRegion {
    /// An assignment to `region` with no overrides: the monitor's own settings apply there.
    pub fn plain(region: &str) -> Self {
        MonitorRegion {
            region: region.into(),
            enabled: true,
            timeout_ms: None,
            interval_seconds: None,
            schedule: None,
            latency_warning_ms: None,
            latency_critical_ms: None,
            headers: None,
            priority: 0,
            notes: None,
        }
    }
}

#[derive(sqlx::FromRow)]
struct MonitorRow {
    id: Uuid,
    name: Option<String>,
    stored_type: Option<String>,
    target: Option<String>,
    interval_seconds: Option<i32>,
    frequency_minutes: Option<i32>,
    timeout_ms: Option<i32>,
    enabled: Option<bool>,
    status: Option<String>,
    down_rule: Option<String>,
    config: Option<Value>,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
}

// Casts keep reads working on legacy tables whose column types differ slightly.
const MONITOR_COLUMNS: &str = "id, name::text AS name, type::text AS stored_type, target::text AS target, \
    interval_seconds, frequency_minutes::int AS frequency_minutes, timeout_ms, enabled, status::text AS status, \
    down_rule, config::jsonb AS config, created_at::timestamptz AS created_at, updated_at::timestamptz AS updated_at";

const REGION_COLUMNS: &str = "region_code, enabled, timeout_ms, interval_seconds, schedule, latency_warning_ms, \
    latency_critical_ms, headers, priority, notes";

/// A monitor to create.
#[derive(Debug, Clone)]
pub struct NewMonitor {
    pub name: String,
    pub kind: MonitorType,
    pub target: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub down_rule: DownRule,
    /// Type-specific settings (method, expected status, keyword, headers, …).
    pub config: Map<String, Value>,
    /// `None`: every active region (or the default one when geo distribution is off).
    pub regions: Option<Vec<String>>,
    pub enabled: bool,
    /// Accept intervals outside 10s..1d.
    pub force: bool,
}

/// Changes to a monitor; `None` keeps a field. In `config`, `Value::Null` removes a key.
#[derive(Debug, Clone, Default)]
pub struct MonitorPatch {
    pub name: Option<String>,
    pub target: Option<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub down_rule: Option<DownRule>,
    pub config: Map<String, Value>,
    pub force: bool,
}

/// Per-region overrides; `None` keeps a field, `clear` resets all of them first.
#[derive(Debug, Clone, Default)]
pub struct RegionOverrides {
    pub clear: bool,
    pub enabled: Option<bool>,
    pub timeout: Option<Duration>,
    pub interval: Option<Duration>,
    pub schedule: Option<String>,
    pub latency_warning_ms: Option<i32>,
    pub latency_critical_ms: Option<i32>,
    pub headers: Option<Vec<Header>>,
    pub priority: Option<i32>,
    pub notes: Option<String>,
    pub force: bool,
}

/// Where monitors may run, from the configuration.
#[derive(Debug, Clone)]
pub struct Placement {
    pub geo_distribution: bool,
    /// `DEFAULT_REGION` when set; otherwise the database's default region.
    pub default_region: Option<String>,
}

/// How a region list changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionEdit {
    Set,
    Add,
    Remove,
}

/// Result rows `monitor delete` removes per transaction.
pub const DELETE_BATCH: i64 = 10_000;

pub struct MonitorStore<'a> {
    pool: &'a PgPool,
    placement: Placement,
}

impl<'a> MonitorStore<'a> {
    pub fn new(pool: &'a PgPool, placement: Placement) -> Self {
        Self { pool, placement }
    }

    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    pub async fn list(&self) -> Result<Vec<Monitor>, MonitorError> {
        let mut conn = self.pool.acquire().await?;
        let rows: Vec<MonitorRow> =
            sqlx::query_as(&format!("SELECT {MONITOR_COLUMNS} FROM monitors ORDER BY name, created_at, id"))
                .fetch_all(&mut *conn)
                .await?;
        let mut assignments: std::collections::HashMap<Uuid, Vec<MonitorRegion>> = std::collections::HashMap::new();
        let regions: Vec<MonitorRegionRow> = sqlx::query_as(&format!(
            "SELECT monitor_id, {REGION_COLUMNS} FROM monitor_regions ORDER BY priority DESC, region_code"
        ))
        .fetch_all(&mut *conn)
        .await?;
        for r in regions {
            assignments.entry(r.monitor_id).or_default().push(r.region);
        }
        Ok(rows
            .into_iter()
            .map(|row| {
                let regions = assignments.remove(&row.id).unwrap_or_default();
                assemble(row, regions)
            })
            .collect())
    }

    /// A monitor by id, `None` when there is none: the agent's read of a
    /// monitor's current definition before each run.
    pub async fn find(&self, id: Uuid) -> Result<Option<Monitor>, MonitorError> {
        let mut conn = self.pool.acquire().await?;
        match load(&mut conn, id).await {
            Ok(monitor) => Ok(Some(monitor)),
            Err(MonitorError::Database(sqlx::Error::RowNotFound)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn count(&self) -> Result<i64, MonitorError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM monitors").fetch_one(self.pool).await?)
    }

    /// The id of a monitor named by id or unique name, inside the caller's transaction.
    pub async fn resolve_id(conn: &mut PgConnection, reference: &str) -> Result<Uuid, MonitorError> {
        resolve(conn, reference).await
    }

    /// A monitor by id or unique name.
    pub async fn get(&self, reference: &str) -> Result<Monitor, MonitorError> {
        let mut conn = self.pool.acquire().await?;
        let id = resolve(&mut conn, reference).await?;
        load(&mut conn, id).await
    }

    /// Creates a monitor and its region assignments. With `dry_run` everything
    /// is validated and the transaction rolled back.
    pub async fn create(&self, new: NewMonitor, dry_run: bool) -> Result<Monitor, MonitorError> {
        let mut tx = self.pool.begin().await?;
        let out = self.create_in(&mut tx, new).await?;
        finish(tx, dry_run).await?;
        Ok(out)
    }

    /// [`Self::create`] inside the caller's transaction.
    pub async fn create_in(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        new: NewMonitor,
    ) -> Result<Monitor, MonitorError> {
        let name = clean_name(&new.name)?;
        let target = validate_target(new.kind, &new.target)?;
        let interval_seconds = validate_interval(new.interval, new.force)?;
        let timeout_ms = validate_timeout(new.timeout, interval_seconds)?;

        lock_monitors(&mut *tx).await?;
        ensure_name_free(&mut *tx, &name, None).await?;
        let regions = self.choose_regions(&mut *tx, new.regions.as_deref()).await?;

        let id: Uuid = sqlx::query_scalar(
            "INSERT INTO monitors (name, type, target, frequency_minutes, interval_seconds, timeout_ms, \
             enabled, status, down_rule, config, created_at, updated_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10, now(), now()) RETURNING id",
        )
        .bind(&name)
        .bind(new.kind.stored())
        .bind(&target)
        .bind(frequency_minutes(interval_seconds))
        .bind(interval_seconds)
        .bind(timeout_ms)
        .bind(new.enabled)
        .bind(if new.enabled { "active" } else { "paused" })
        .bind(new.down_rule.to_string())
        .bind(Value::Object(new.config))
        .fetch_one(&mut **tx)
        .await?;
        insert_regions(&mut *tx, id, &regions).await?;
        let monitor = load(&mut *tx, id).await?;
        Ok(monitor)
    }

    /// Applies a patch; writes only when something differs.
    pub async fn update(
        &self,
        reference: &str,
        patch: MonitorPatch,
        dry_run: bool,
    ) -> Result<(Monitor, Change), MonitorError> {
        let mut tx = self.pool.begin().await?;
        let out = self.update_in(&mut tx, reference, patch).await?;
        finish(tx, dry_run).await?;
        Ok(out)
    }

    /// [`Self::update`] inside the caller's transaction.
    pub async fn update_in(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        reference: &str,
        patch: MonitorPatch,
    ) -> Result<(Monitor, Change), MonitorError> {
        lock_monitors(&mut *tx).await?;
        let id = resolve(&mut *tx, reference).await?;
        let current = load(&mut *tx, id).await?;
        let kind = managed_kind(&current)?;

        let name = match &patch.name {
            Some(n) => {
                let n = clean_name(n)?;
                ensure_name_free(&mut *tx, &n, Some(id)).await?;
                n
            }
            None => current.name.clone(),
        };
        let Planned { target, interval_seconds, timeout_ms, down_rule, config } = plan_fields(&current, kind, &patch)?;
        let unchanged = name == current.name
            && target == current.target
            && interval_seconds == current.interval_seconds
            && timeout_ms == current.timeout_ms
            && down_rule == current.down_rule
            && config == current.config;
        if unchanged {
            return Ok((current, Change::Unchanged));
        }
        sqlx::query(
            "UPDATE monitors SET name=$2, target=$3, interval_seconds=$4, frequency_minutes=$5, timeout_ms=$6, \
             down_rule=$7, config=$8, updated_at=now() WHERE id=$1",
        )
        .bind(id)
        .bind(&name)
        .bind(&target)
        .bind(interval_seconds)
        .bind(frequency_minutes(interval_seconds))
        .bind(timeout_ms)
        .bind(&down_rule)
        .bind(&config)
        .execute(&mut **tx)
        .await?;
        let monitor = load(&mut *tx, id).await?;
        Ok((monitor, Change::Updated))
    }

    /// Pauses (`false`) or resumes (`true`) a monitor in every region.
    pub async fn set_enabled(
        &self,
        reference: &str,
        enabled: bool,
        dry_run: bool,
    ) -> Result<(Monitor, Change), MonitorError> {
        let mut tx = self.pool.begin().await?;
        let id = resolve(&mut tx, reference).await?;
        let current = load(&mut tx, id).await?;
        if current.enabled == enabled {
            return Ok((current, Change::Unchanged));
        }
        sqlx::query("UPDATE monitors SET enabled=$2, status=$3, updated_at=now() WHERE id=$1")
            .bind(id)
            .bind(enabled)
            .bind(if enabled { "active" } else { "paused" })
            .execute(&mut *tx)
            .await?;
        let monitor = load(&mut tx, id).await?;
        finish(tx, dry_run).await?;
        Ok((monitor, Change::Updated))
    }

    /// Deletes a monitor with its region assignments, results and summaries.
    /// Its results go first, [`DELETE_BATCH`] rows per short transaction, so a
    /// monitor with millions of results neither holds one huge transaction nor
    /// blocks writers; the monitor itself and what is left go in the last one.
    pub async fn delete(&self, reference: &str, dry_run: bool) -> Result<Monitor, MonitorError> {
        let monitor = self.get(reference).await?;
        if !dry_run {
            for table in ["regional_performance_metrics", "monitor_results"] {
                // Partition by partition: a ctid names a row only within one.
                for part in crate::store::partition::leaves(self.pool, table).await? {
                    loop {
                        let deleted = sqlx::query(&format!(
                            "DELETE FROM {part} WHERE ctid = ANY (ARRAY(SELECT ctid FROM {part} WHERE monitor_id = $1 LIMIT $2))"
                        ))
                        .bind(monitor.id)
                        .bind(DELETE_BATCH)
                        .execute(self.pool)
                        .await?
                        .rows_affected();
                        if deleted < DELETE_BATCH as u64 {
                            break;
                        }
                    }
                }
            }
        }
        let mut tx = self.pool.begin().await?;
        lock_monitors(&mut tx).await?;
        let id = resolve(&mut tx, &monitor.id.to_string()).await?;
        let monitor = load(&mut tx, id).await?;
        for table in [
            "regional_monitor_summaries",
            "regional_monitor_hourly_summaries",
            "regional_monitor_hourly_landings",
            "regional_performance_metrics",
            "monitor_results",
            "monitor_regions",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE monitor_id = $1")).bind(id).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM monitors WHERE id = $1").bind(id).execute(&mut *tx).await?;
        finish(tx, dry_run).await?;
        Ok(monitor)
    }

    /// Sets, adds or removes the regions a monitor runs in. Overrides of
    /// regions that stay are kept.
    pub async fn edit_regions(
        &self,
        reference: &str,
        edit: RegionEdit,
        codes: &[String],
        dry_run: bool,
    ) -> Result<(Monitor, Change), MonitorError> {
        let mut tx = self.pool.begin().await?;
        let out = self.edit_regions_in(&mut tx, reference, edit, codes).await?;
        finish(tx, dry_run).await?;
        Ok(out)
    }

    /// [`Self::edit_regions`] inside the caller's transaction.
    pub async fn edit_regions_in(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        reference: &str,
        edit: RegionEdit,
        codes: &[String],
    ) -> Result<(Monitor, Change), MonitorError> {
        let id = resolve(&mut *tx, reference).await?;
        let current = load(&mut *tx, id).await?;
        let have = current.region_codes();
        let mut codes: Vec<String> = codes.to_vec();
        codes.dedup();
        if edit != RegionEdit::Remove {
            self.check_regions(&mut *tx, &codes).await?;
        }
        let wanted: Vec<String> = match edit {
            RegionEdit::Set => codes.clone(),
            RegionEdit::Add => have.iter().chain(codes.iter().filter(|c| !have.contains(c))).cloned().collect(),
            RegionEdit::Remove => {
                if let Some(missing) = codes.iter().find(|c| !have.contains(c)) {
                    return Err(MonitorError::NotInRegion { monitor: current.name, region: missing.clone() });
                }
                have.iter().filter(|c| !codes.contains(c)).cloned().collect()
            }
        };
        if wanted.is_empty() {
            return Err(MonitorError::NoRegions(current.name));
        }
        let added: Vec<String> = wanted.iter().filter(|c| !have.contains(c)).cloned().collect();
        let removed: Vec<String> = have.iter().filter(|c| !wanted.contains(c)).cloned().collect();
        if added.is_empty() && removed.is_empty() {
            return Ok((current, Change::Unchanged));
        }
        sqlx::query("DELETE FROM monitor_regions WHERE monitor_id = $1 AND region_code = ANY($2)")
            .bind(id)
            .bind(&removed)
            .execute(&mut **tx)
            .await?;
        insert_regions(&mut *tx, id, &added).await?;
        touch(&mut *tx, id).await?;
        let monitor = load(&mut *tx, id).await?;
        Ok((monitor, Change::Updated))
    }

    /// Sets one region's overrides for a monitor.
    pub async fn set_overrides(
        &self,
        reference: &str,
        region: &str,
        o: RegionOverrides,
        dry_run: bool,
    ) -> Result<(Monitor, Change), MonitorError> {
        let mut tx = self.pool.begin().await?;
        let out = self.set_overrides_in(&mut tx, reference, region, o).await?;
        finish(tx, dry_run).await?;
        Ok(out)
    }

    /// [`Self::set_overrides`] inside the caller's transaction.
    pub async fn set_overrides_in(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        reference: &str,
        region: &str,
        o: RegionOverrides,
    ) -> Result<(Monitor, Change), MonitorError> {
        let id = resolve(&mut *tx, reference).await?;
        let current = load(&mut *tx, id).await?;
        let Some(existing) = current.regions.iter().find(|r| r.region == region) else {
            // Name the region error first when the code itself is wrong.
            RegionStore::fetch(&mut *tx, region).await?;
            return Err(MonitorError::NotInRegion { monitor: current.name, region: region.into() });
        };
        let next = plan_overrides(&current, existing, o)?;
        if next.latency_warning_ms.is_some() || next.latency_critical_ms.is_some() {
            let defaults: (i32, i32) =
                sqlx::query_as("SELECT latency_warning_ms, latency_critical_ms FROM regions WHERE code = $1")
                    .bind(region)
                    .fetch_one(&mut **tx)
                    .await?;
            validate_thresholds(
                next.latency_warning_ms.unwrap_or(defaults.0),
                next.latency_critical_ms.unwrap_or(defaults.1),
            )?;
        }
        if &next == existing {
            return Ok((current, Change::Unchanged));
        }
        sqlx::query(
            "UPDATE monitor_regions SET enabled=$3, timeout_ms=$4, interval_seconds=$5, schedule=$6, \
             latency_warning_ms=$7, latency_critical_ms=$8, headers=$9, priority=$10, notes=$11, updated_at=now() \
             WHERE monitor_id=$1 AND region_code=$2",
        )
        .bind(id)
        .bind(region)
        .bind(next.enabled)
        .bind(next.timeout_ms)
        .bind(next.interval_seconds)
        .bind(&next.schedule)
        .bind(next.latency_warning_ms)
        .bind(next.latency_critical_ms)
        .bind(&next.headers)
        .bind(next.priority)
        .bind(&next.notes)
        .execute(&mut **tx)
        .await?;
        touch(&mut *tx, id).await?;
        let monitor = load(&mut *tx, id).await?;
        Ok((monitor, Change::Updated))
    }

    /// The regions a new monitor runs in.
    async fn choose_regions(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        requested: Option<&[String]>,
    ) -> Result<Vec<String>, MonitorError> {
        match requested {
            Some(codes) => {
                let mut codes = codes.to_vec();
                codes.dedup();
                if codes.is_empty() {
                    return Err(MonitorError::Invalid("--regions is empty; name at least one region".into()));
                }
                self.check_regions(tx, &codes).await?;
                Ok(codes)
            }
            None if self.placement.geo_distribution => Ok(RegionStore::active_codes(&mut **tx).await?),
            None => Ok(vec![self.default_region(tx).await?]),
        }
    }

    /// Every code is an active region, and geo distribution allows it.
    async fn check_regions(&self, tx: &mut Transaction<'_, Postgres>, codes: &[String]) -> Result<(), MonitorError> {
        RegionStore::require_active(tx, codes).await?;
        if !self.placement.geo_distribution {
            let default = self.default_region(tx).await?;
            let others: Vec<String> = codes.iter().filter(|c| **c != default).cloned().collect();
            if !others.is_empty() {
                return Err(MonitorError::GeoDisabled { default, requested: others });
            }
        }
        Ok(())
    }

    async fn default_region(&self, tx: &mut Transaction<'_, Postgres>) -> Result<String, MonitorError> {
        match &self.placement.default_region {
            Some(code) => {
                RegionStore::require_active(tx, std::slice::from_ref(code)).await?;
                Ok(code.clone())
            }
            None => Ok(RegionStore::default_code(&mut **tx).await?),
        }
    }
}

/// The monitors named `names` with their regions, in two queries whatever
/// their number, by name (legacy databases may repeat a name).
pub(crate) async fn load_named(
    conn: &mut PgConnection,
    names: &[String],
) -> Result<std::collections::HashMap<String, Vec<Monitor>>, MonitorError> {
    let rows: Vec<MonitorRow> =
        sqlx::query_as(&format!("SELECT {MONITOR_COLUMNS} FROM monitors WHERE name = ANY($1) ORDER BY created_at"))
            .bind(names)
            .fetch_all(&mut *conn)
            .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let regions: Vec<MonitorRegionRow> = sqlx::query_as(&format!(
        "SELECT monitor_id, {REGION_COLUMNS} FROM monitor_regions WHERE monitor_id = ANY($1) \
         ORDER BY priority DESC, region_code"
    ))
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut by_id: std::collections::HashMap<Uuid, Vec<MonitorRegion>> = std::collections::HashMap::new();
    for r in regions {
        by_id.entry(r.monitor_id).or_default().push(r.region);
    }
    let mut out: std::collections::HashMap<String, Vec<Monitor>> = std::collections::HashMap::new();
    for row in rows {
        let regions = by_id.remove(&row.id).unwrap_or_default();
        let monitor = assemble(row, regions);
        out.entry(monitor.name.clone()).or_default().push(monitor);
    }
    Ok(out)
}

#[derive(sqlx::FromRow)]
struct MonitorRegionRow {
    monitor_id: Uuid,
    #[sqlx(flatten)]
    region: MonitorRegion,
}

fn assemble(row: MonitorRow, regions: Vec<MonitorRegion>) -> Monitor {
    let interval_seconds = row.interval_seconds.or(row.frequency_minutes.map(|m| m.saturating_mul(60))).unwrap_or(300);
    Monitor {
        id: row.id,
        name: row.name.unwrap_or_default(),
        stored_type: row.stored_type.unwrap_or_default(),
        target: row.target.unwrap_or_default(),
        interval_seconds,
        frequency_minutes: row.frequency_minutes.unwrap_or_else(|| frequency_minutes(interval_seconds)),
        timeout_ms: row.timeout_ms,
        enabled: row.enabled.unwrap_or(true),
        status: row.status.unwrap_or_else(|| "active".into()),
        down_rule: row.down_rule.unwrap_or_else(|| DownRule::default().to_string()),
        config: row.config.unwrap_or_else(|| Value::Object(Map::new())),
        regions,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

async fn load(conn: &mut PgConnection, id: Uuid) -> Result<Monitor, MonitorError> {
    let row: MonitorRow = sqlx::query_as(&format!("SELECT {MONITOR_COLUMNS} FROM monitors WHERE id = $1"))
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    let regions: Vec<MonitorRegion> = sqlx::query_as(&format!(
        "SELECT {REGION_COLUMNS} FROM monitor_regions WHERE monitor_id = $1 ORDER BY priority DESC, region_code"
    ))
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(assemble(row, regions))
}

/// Finds a monitor by id, else by name; duplicate legacy names must be named by id.
async fn resolve(conn: &mut PgConnection, reference: &str) -> Result<Uuid, MonitorError> {
    if let Ok(id) = Uuid::parse_str(reference) {
        let found: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM monitors WHERE id = $1").bind(id).fetch_optional(&mut *conn).await?;
        if let Some(id) = found {
            return Ok(id);
        }
    }
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM monitors WHERE name = $1 ORDER BY created_at")
        .bind(reference)
        .fetch_all(&mut *conn)
        .await?;
    match ids.as_slice() {
        [] => Err(MonitorError::NotFound(reference.into())),
        [id] => Ok(*id),
        _ => Err(MonitorError::Ambiguous {
            name: reference.into(),
            count: ids.len(),
            ids: ids.iter().map(Uuid::to_string).collect(),
        }),
    }
}

fn managed_kind(monitor: &Monitor) -> Result<MonitorType, MonitorError> {
    monitor.kind().ok_or_else(|| MonitorError::UnsupportedStoredType {
        name: monitor.name.clone(),
        stored: monitor.stored_type.clone(),
    })
}

pub(crate) fn clean_name(name: &str) -> Result<String, MonitorError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(MonitorError::Invalid(
            "monitor name must be 1 to 200 characters without control characters".into(),
        ));
    }
    if Uuid::parse_str(name).is_ok() {
        return Err(MonitorError::Invalid("a monitor name must not look like an id (uuid)".into()));
    }
    Ok(name.to_string())
}

async fn ensure_name_free(
    tx: &mut Transaction<'_, Postgres>,
    name: &str,
    except: Option<Uuid>,
) -> Result<(), MonitorError> {
    let taken: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM monitors WHERE name = $1 AND ($2::uuid IS NULL OR id <> $2))")
            .bind(name)
            .bind(except)
            .fetch_one(&mut **tx)
            .await?;
    if taken {
        Err(MonitorError::DuplicateName(name.into()))
    } else {
        Ok(())
    }
}

/// Name uniqueness is checked, not constrained (legacy rows may repeat names),
/// so writers that create or rename take this lock first.
pub(crate) async fn lock_monitors(tx: &mut Transaction<'_, Postgres>) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('geoctl:monitor-names'))").execute(&mut **tx).await.map(|_| ())
}

async fn insert_regions(tx: &mut Transaction<'_, Postgres>, id: Uuid, codes: &[String]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO monitor_regions (monitor_id, region_code) SELECT $1, unnest($2::text[]) \
         ON CONFLICT (monitor_id, region_code) DO NOTHING",
    )
    .bind(id)
    .bind(codes)
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

async fn touch(tx: &mut Transaction<'_, Postgres>, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE monitors SET updated_at = now() WHERE id = $1").bind(id).execute(&mut **tx).await.map(|_| ())
}

/// Commits, or rolls back for a dry run (the caller shows what would have been).
async fn finish(tx: Transaction<'_, Postgres>, dry_run: bool) -> Result<(), sqlx::Error> {
    if dry_run {
        tx.rollback().await
    } else {
        tx.commit().await
    }
}
