//! Monitors declared in a file (`examples/monitors.yaml`), made so in one
//! transaction: created when missing, updated when different, left alone
//! when equal. Monitors not in the file are not touched.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Map, Value};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::plan::{plan_fields, plan_overrides};
use super::settings::{parse_method, parse_record_type, CheckSettings};
use super::store::{
    clean_name, load_named, Monitor, MonitorPatch, MonitorRegion, MonitorStore, NewMonitor, RegionEdit, RegionOverrides,
};
use super::{frequency_minutes, validate_interval, validate_target, validate_timeout};
use super::{DownRule, Header, MonitorError, MonitorType, StatusRanges};
use crate::duration::{self, BareUnit};
use crate::error::Carried;
use crate::region::validate_thresholds;
use crate::store::Change;

/// The file: `monitors:` and a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorFile {
    pub monitors: Vec<MonitorDecl>,
}

/// One monitor as declared. Durations are written like the flags (`30s`, `5m`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorDecl {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Synthetic monitors: defaults to the script's first URL.
    #[serde(default)]
    pub target: Option<String>,
    /// Synthetic monitors: the script, inline (a mapping with `steps:`) or the path of its file.
    #[serde(default)]
    pub script: Option<serde_yaml_ng::Value>,
    pub every: Option<String>,
    pub timeout: Option<String>,
    /// Omitted: every active region for a new monitor, unchanged for an existing one.
    pub regions: Option<Vec<String>>,
    pub down_when: Option<String>,
    #[serde(default)]
    pub force: bool,
    pub method: Option<String>,
    pub expect_status: Option<String>,
    pub keyword: Option<String>,
    #[serde(default)]
    pub keyword_absent: bool,
    #[serde(default)]
    pub headers: Vec<String>,
    pub record_type: Option<String>,
    #[serde(default)]
    pub expect_answers: Vec<String>,
    pub trace_every: Option<u32>,
    /// Per-region overrides; regions not listed have none.
    #[serde(default)]
    pub region_overrides: BTreeMap<String, OverrideDecl>,
    /// Alerting: consecutive failed runs before a region is failing (omitted: unchanged, default `alerting.confirm`).
    pub confirm: Option<u32>,
    /// Consecutive passing runs before it passes again.
    pub recover: Option<u32>,
    /// Channels to notify; `[]` returns to `alerting.default_channels`.
    pub notify: Option<Vec<String>>,
}

impl MonitorDecl {
    /// Whether it states any alert setting (`confirm`, `recover`, `notify`).
    fn sets_alerting(&self) -> bool {
        self.confirm.is_some() || self.recover.is_some() || self.notify.is_some()
    }
}

/// Writes one monitor's declared alert settings (`confirm`, `recover`, `notify`) in [`apply`]'s
/// transaction, once every declared monitor exists, and says what changed. Alerting owns their
/// rules and the channels and sits above monitors, so the caller hands its writer in
/// (`alert::manage::write_declared`), and its errors travel as a [`Carried`].
pub type AlertWriter =
    dyn for<'c> Fn(&'c mut PgConnection, Uuid, &'c MonitorDecl) -> BoxFuture<'c, Result<Change, Carried>> + Sync;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideDecl {
    pub every: Option<String>,
    pub timeout: Option<String>,
    pub schedule: Option<String>,
    pub latency_warning: Option<String>,
    pub latency_critical: Option<String>,
    #[serde(default)]
    pub headers: Vec<String>,
    pub priority: Option<i32>,
    pub notes: Option<String>,
    pub enabled: Option<bool>,
}

/// What applying did (or would do) to one monitor.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Applied {
    pub name: String,
    pub change: Change,
}

impl MonitorFile {
    pub fn parse(text: &str) -> Result<Self, MonitorError> {
        serde_yaml_ng::from_str(text).map_err(|e| MonitorError::Invalid(format!("invalid monitors file: {e}")))
    }
}

fn interval(text: Option<&str>, default: &str, what: &str) -> Result<Duration, MonitorError> {
    duration::parse(text.unwrap_or(default), BareUnit::Rejected)
        .map_err(|e| MonitorError::Invalid(format!("{what}: {e}")))
}

fn latency(text: &Option<String>) -> Result<Option<i32>, MonitorError> {
    text.as_deref()
        .map(|t| {
            duration::parse(t, BareUnit::Milliseconds)
                .map(|d| d.as_millis().min(i32::MAX as u128) as i32)
                .map_err(|e| MonitorError::Invalid(format!("latency: {e}")))
        })
        .transpose()
}

/// A declaration's headers, resolved as `--header` resolves them (`@FILE`, `env:VAR`), so a
/// monitors file need not hold a credential either. `what` names the list in errors.
fn headers(list: &[String], what: &str) -> Result<Vec<Header>, MonitorError> {
    list.iter()
        .enumerate()
        .map(|(i, h)| super::resolve_header(h, &format!("{what}[{i}]"), |var| std::env::var(var).ok()))
        .collect()
}

impl MonitorDecl {
    fn kind(&self) -> Result<MonitorType, MonitorError> {
        self.kind.parse()
    }

    /// The script's text: inline scripts as YAML text, others read from their file.
    fn script_text(&self) -> Result<Option<String>, MonitorError> {
        Ok(match &self.script {
            None => None,
            Some(serde_yaml_ng::Value::String(path)) => {
                Some(crate::synthetic::script::read(std::path::Path::new(path))?)
            }
            Some(inline) => {
                Some(serde_yaml_ng::to_string(inline).map_err(|e| MonitorError::Invalid(format!("script: {e}")))?)
            }
        })
    }

    /// A valid synthetic script with browser steps (where agents must have a browser).
    pub fn needs_browser(&self) -> bool {
        self.kind().is_ok_and(|k| k == MonitorType::Synthetic)
            && self
                .script_text()
                .ok()
                .flatten()
                .and_then(|text| crate::synthetic::Script::parse(&text).ok())
                .is_some_and(|script| script.needs_browser())
    }

    /// The `config` column and the target this declaration stores: its settings, and for a
    /// synthetic monitor its script (validated; inline scripts stored as YAML text).
    fn config_and_target(&self, kind: MonitorType) -> Result<(Map<String, Value>, String), MonitorError> {
        let mut config = self.settings()?.into_config(kind, &self.name)?;
        let target = match (kind, self.script_text()?) {
            (MonitorType::Synthetic, Some(text)) => {
                let parsed = crate::synthetic::Script::parse(&text)?;
                config.insert(super::check::SCRIPT_KEY.into(), text.into());
                self.target.clone().unwrap_or_else(|| parsed.target())
            }
            (MonitorType::Synthetic, None) => {
                return Err(MonitorError::Invalid(
                    "a synthetic monitor needs `script:` (inline, or the path of its file)".into(),
                ))
            }
            (_, Some(_)) => return Err(MonitorError::Invalid("`script:` is for `type: synthetic` only".into())),
            (_, None) => self.target.clone().unwrap_or_default(),
        };
        Ok((config, target))
    }

    fn settings(&self) -> Result<CheckSettings, MonitorError> {
        Ok(CheckSettings {
            method: self.method.as_deref().map(parse_method).transpose()?,
            expect_status: self
                .expect_status
                .as_deref()
                .map(|s| s.parse::<StatusRanges>().map_err(|e| MonitorError::Invalid(e.to_string())))
                .transpose()?,
            keyword: self.keyword.clone(),
            keyword_absent: self.keyword_absent,
            headers: headers(&self.headers, "headers")?,
            record_type: self.record_type.as_deref().map(parse_record_type).transpose()?,
            expect_answers: self.expect_answers.clone(),
            trace_every: self.trace_every,
        })
    }

    fn overrides(&self, region: &str) -> Result<RegionOverrides, MonitorError> {
        let o = self.region_overrides.get(region).cloned().unwrap_or_default();
        Ok(RegionOverrides {
            clear: true,
            enabled: o.enabled,
            timeout: o.timeout.as_deref().map(|t| interval(Some(t), "", "timeout")).transpose()?,
            interval: o.every.as_deref().map(|t| interval(Some(t), "", "every")).transpose()?,
            schedule: o.schedule.clone(),
            latency_warning_ms: latency(&o.latency_warning)?,
            latency_critical_ms: latency(&o.latency_critical)?,
            headers: (!o.headers.is_empty())
                .then(|| headers(&o.headers, &format!("region_overrides.{region}.headers")))
                .transpose()?,
            priority: o.priority,
            notes: o.notes.clone(),
            force: self.force,
        })
    }
}

/// The config keys a declaration owns: absent from the file means removed.
const OWNED_KEYS: [&str; 9] = [
    "method",
    "expected_status",
    "keyword",
    "keyword_absent",
    "headers",
    "record_type",
    "expected_answers",
    "trace_every",
    "script",
];

/// Applies every declaration in one transaction; on any error nothing is written.
pub async fn apply(
    pool: &PgPool,
    store: &MonitorStore<'_>,
    file: &MonitorFile,
    dry_run: bool,
    alerting: &AlertWriter,
) -> Result<Vec<Applied>, MonitorError> {
    let mut seen = std::collections::HashSet::new();
    for (index, decl) in file.monitors.iter().enumerate() {
        if !seen.insert(decl.name.trim()) {
            return Err(MonitorError::InEntry {
                index,
                name: decl.name.clone(),
                source: Box::new(MonitorError::Invalid("this name is declared twice in the file".into())),
            });
        }
    }
    let mut tx = pool.begin().await?;
    // Applies declaring the same new monitor run one after the other: a later
    // one finds the monitor the first created and says "unchanged".
    super::store::lock_monitors(&mut tx).await?;
    // What the file names, read in a fixed number of queries: a declaration
    // found equal to it costs no further round trip.
    let names: Vec<String> = file.monitors.iter().map(|d| d.name.trim().to_string()).collect();
    let known = Known {
        monitors: load_named(&mut tx, &names).await?,
        regions: sqlx::query_as::<_, (String, bool, i32, i32)>(
            "SELECT code, is_active, latency_warning_ms, latency_critical_ms FROM regions",
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|(code, active, warning, critical)| (code, (active, warning, critical)))
        .collect(),
        geo_distribution: store.placement().geo_distribution,
    };
    // New monitors whose declaration is valid are inserted together, in one
    // statement; every other declaration goes through the full path.
    let mut changes: Vec<Option<Change>> = vec![None; file.monitors.len()];
    let mut creates = Vec::new();
    for (index, decl) in file.monitors.iter().enumerate() {
        if let Some(row) = known.plan_create(decl) {
            creates.push(row);
            changes[index] = Some(Change::Created);
        }
    }
    insert_created(&mut tx, &creates).await?;
    let mut applied = Vec::with_capacity(file.monitors.len());
    for (index, decl) in file.monitors.iter().enumerate() {
        let change = match changes[index] {
            Some(change) => change,
            None => apply_one(store, &mut tx, decl, &known).await.map_err(|source| MonitorError::InEntry {
                index,
                name: decl.name.clone(),
                source: Box::new(source),
            })?,
        };
        applied.push(Applied { name: decl.name.trim().to_string(), change });
    }
    // Alert settings last, when every declared monitor exists, in the same transaction.
    for (index, decl) in file.monitors.iter().enumerate() {
        if !decl.sets_alerting() {
            continue;
        }
        let in_entry =
            |source: MonitorError| MonitorError::InEntry { index, name: decl.name.clone(), source: Box::new(source) };
        let id = MonitorStore::resolve_id(&mut tx, decl.name.trim()).await.map_err(in_entry)?;
        let change = alerting(&mut tx, id, decl).await.map_err(|e| in_entry(MonitorError::Alert(e)))?;
        applied[index].change = merge(applied[index].change, change);
    }
    if dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(applied)
}

/// The state a file's declarations are compared with, read once.
struct Known {
    monitors: HashMap<String, Vec<Monitor>>,
    /// code → (active, latency warning, latency critical)
    regions: HashMap<String, (bool, i32, i32)>,
    geo_distribution: bool,
}

impl Known {
    /// True only when applying `decl` to the stored monitor would change
    /// nothing and raise no error; anything else takes the full path, which
    /// validates, writes and words errors as `monitor update` does.
    fn unchanged(&self, decl: &MonitorDecl, kind: MonitorType, patch: &MonitorPatch) -> bool {
        let [current] = self.monitors.get(decl.name.trim()).map(Vec::as_slice).unwrap_or_default() else {
            return false;
        };
        if MonitorType::parse(&current.stored_type) != Some(kind) || !self.geo_distribution {
            return false;
        }
        if !plan_fields(current, kind, patch).is_ok_and(|p| p.same_as(current)) {
            return false;
        }
        if let Some(wanted) = &decl.regions {
            let mut wanted = wanted.clone();
            wanted.sort();
            wanted.dedup();
            let mut have = current.region_codes();
            have.sort();
            if wanted.is_empty() || wanted != have || !wanted.iter().all(|c| self.regions.get(c).is_some_and(|r| r.0)) {
                return false;
            }
        }
        if !decl.region_overrides.keys().all(|r| current.regions.iter().any(|a| &a.region == r)) {
            return false;
        }
        current.regions.iter().all(|existing| {
            let Ok(o) = decl.overrides(&existing.region) else { return false };
            let Ok(next) = plan_overrides(current, existing, o) else { return false };
            if next.latency_warning_ms.is_some() || next.latency_critical_ms.is_some() {
                let Some(&(_, warning, critical)) = self.regions.get(&existing.region) else { return false };
                let (w, c) = (next.latency_warning_ms.unwrap_or(warning), next.latency_critical_ms.unwrap_or(critical));
                if validate_thresholds(w, c).is_err() {
                    return false;
                }
            }
            &next == existing
        })
    }
}

/// A new monitor, validated, with its region assignments.
struct CreateRow {
    name: String,
    stored_type: &'static str,
    target: String,
    interval_seconds: i32,
    timeout_ms: i32,
    down_rule: String,
    config: Value,
    regions: Vec<MonitorRegion>,
}

impl Known {
    /// The rows for a declared monitor that does not exist yet, when every part
    /// of it is valid; `None` sends it through the full path (which says what is wrong).
    fn plan_create(&self, decl: &MonitorDecl) -> Option<CreateRow> {
        if !self.geo_distribution || self.monitors.contains_key(decl.name.trim()) {
            return None;
        }
        let kind = decl.kind().ok()?;
        let every = interval(decl.every.as_deref(), "1m", "every").ok()?;
        let timeout = interval(decl.timeout.as_deref(), "10s", "timeout").ok()?;
        let down_rule: DownRule = decl.down_when.as_deref().unwrap_or("majority").parse().ok()?;
        let (config, target) = decl.config_and_target(kind).ok()?;
        let name = clean_name(&decl.name).ok()?;
        let target = validate_target(kind, &target).ok()?;
        let interval_seconds = validate_interval(every, decl.force).ok()?;
        let timeout_ms = validate_timeout(timeout, interval_seconds).ok()?;
        let codes: Vec<String> = match &decl.regions {
            Some(codes) => {
                let mut codes = codes.clone();
                codes.dedup();
                codes
            }
            None => self.regions.iter().filter(|(_, r)| r.0).map(|(code, _)| code.clone()).collect(),
        };
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        if unique.is_empty() || !unique.iter().all(|c| self.regions.get(c).is_some_and(|r| r.0)) {
            return None;
        }
        if !decl.region_overrides.keys().all(|r| unique.contains(r)) {
            return None;
        }
        let current = Monitor {
            id: uuid::Uuid::nil(),
            name: name.clone(),
            stored_type: kind.stored().to_string(),
            target: target.clone(),
            interval_seconds,
            frequency_minutes: frequency_minutes(interval_seconds),
            timeout_ms: Some(timeout_ms),
            enabled: true,
            status: "active".into(),
            down_rule: down_rule.to_string(),
            config: Value::Object(config.clone()),
            regions: Vec::new(),
            created_at: None,
            updated_at: None,
        };
        let mut regions = Vec::with_capacity(unique.len());
        for code in unique {
            let fresh = MonitorRegion::plain(&code);
            let next = plan_overrides(&current, &fresh, decl.overrides(&code).ok()?).ok()?;
            let &(_, warning, critical) = self.regions.get(&code)?;
            if (next.latency_warning_ms.is_some() || next.latency_critical_ms.is_some())
                && validate_thresholds(
                    next.latency_warning_ms.unwrap_or(warning),
                    next.latency_critical_ms.unwrap_or(critical),
                )
                .is_err()
            {
                return None;
            }
            regions.push(next);
        }
        Some(CreateRow {
            name,
            stored_type: kind.stored(),
            target,
            interval_seconds,
            timeout_ms,
            down_rule: down_rule.to_string(),
            config: Value::Object(config),
            regions,
        })
    }
}

/// Inserts new monitors and their region assignments in one statement.
async fn insert_created(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, rows: &[CreateRow]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let regions: Vec<(&str, &MonitorRegion)> =
        rows.iter().flat_map(|m| m.regions.iter().map(move |r| (m.name.as_str(), r))).collect();
    sqlx::query(
        "WITH m AS (
            INSERT INTO monitors (name, type, target, frequency_minutes, interval_seconds, timeout_ms, enabled,
                                  status, down_rule, config, created_at, updated_at)
            SELECT n, t, tg, f, i, tm, true, 'active', d, c, now(), now()
            FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[], $6::int[], $7::text[], $8::jsonb[])
                 AS u(n, t, tg, f, i, tm, d, c)
            RETURNING id, name)
         INSERT INTO monitor_regions (monitor_id, region_code, enabled, timeout_ms, interval_seconds, schedule,
                                      latency_warning_ms, latency_critical_ms, headers, priority, notes)
         SELECT m.id, r.code, r.enabled, r.tm, r.i, r.s, r.w, r.c, r.h, r.p, r.notes
         FROM unnest($9::text[], $10::text[], $11::bool[], $12::int[], $13::int[], $14::text[], $15::int[],
                     $16::int[], $17::jsonb[], $18::int[], $19::text[])
              AS r(name, code, enabled, tm, i, s, w, c, h, p, notes)
         JOIN m ON m.name = r.name",
    )
    .bind(rows.iter().map(|m| m.name.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|m| m.stored_type.to_string()).collect::<Vec<_>>())
    .bind(rows.iter().map(|m| m.target.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|m| frequency_minutes(m.interval_seconds)).collect::<Vec<_>>())
    .bind(rows.iter().map(|m| m.interval_seconds).collect::<Vec<_>>())
    .bind(rows.iter().map(|m| m.timeout_ms).collect::<Vec<_>>())
    .bind(rows.iter().map(|m| m.down_rule.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|m| m.config.clone()).collect::<Vec<_>>())
    .bind(regions.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>())
    .bind(regions.iter().map(|(_, r)| r.region.clone()).collect::<Vec<_>>())
    .bind(regions.iter().map(|(_, r)| r.enabled).collect::<Vec<_>>())
    .bind(regions.iter().map(|(_, r)| r.timeout_ms).collect::<Vec<_>>())
    .bind(regions.iter().map(|(_, r)| r.interval_seconds).collect::<Vec<_>>())
    .bind(regions.iter().map(|(_, r)| r.schedule.clone()).collect::<Vec<_>>())
    .bind(regions.iter().map(|(_, r)| r.latency_warning_ms).collect::<Vec<_>>())
    .bind(regions.iter().map(|(_, r)| r.latency_critical_ms).collect::<Vec<_>>())
    .bind(regions.iter().map(|(_, r)| r.headers.clone()).collect::<Vec<_>>())
    .bind(regions.iter().map(|(_, r)| r.priority).collect::<Vec<_>>())
    .bind(regions.iter().map(|(_, r)| r.notes.clone()).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The patch that makes a stored monitor what `decl` says (its regions aside).
fn patch_of(
    decl: &MonitorDecl,
    target: &str,
    config: Map<String, Value>,
    every: Duration,
    timeout: Duration,
    down_rule: DownRule,
) -> MonitorPatch {
    let mut config = config;
    for key in OWNED_KEYS {
        config.entry(key).or_insert(Value::Null);
    }
    MonitorPatch {
        name: None,
        target: Some(target.to_string()),
        interval: Some(every),
        timeout: Some(timeout),
        down_rule: Some(down_rule),
        config,
        force: decl.force,
    }
}

async fn apply_one(
    store: &MonitorStore<'_>,
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    decl: &MonitorDecl,
    known: &Known,
) -> Result<Change, MonitorError> {
    let kind = decl.kind()?;
    let every = interval(decl.every.as_deref(), "1m", "every")?;
    let timeout = interval(decl.timeout.as_deref(), "10s", "timeout")?;
    let down_rule: DownRule = decl.down_when.as_deref().unwrap_or("majority").parse()?;
    let (config, target) = decl.config_and_target(kind)?;
    if known.unchanged(decl, kind, &patch_of(decl, &target, config.clone(), every, timeout, down_rule)) {
        return Ok(Change::Unchanged);
    }
    let exists: Option<String> = sqlx::query_scalar("SELECT type::text FROM monitors WHERE name = $1 LIMIT 1")
        .bind(decl.name.trim())
        .fetch_optional(&mut **tx)
        .await?;

    let mut change = match exists {
        None => {
            let new = NewMonitor {
                name: decl.name.clone(),
                kind,
                target: target.clone(),
                interval: every,
                timeout,
                down_rule,
                config,
                regions: decl.regions.clone(),
                enabled: true,
                force: decl.force,
            };
            store.create_in(tx, new).await?;
            Change::Created
        }
        Some(stored) => {
            if MonitorType::parse(&stored) != Some(kind) {
                return Err(MonitorError::Invalid(format!(
                    "it exists with type `{stored}`; a type cannot change: delete it first or choose another name"
                )));
            }
            let patch = patch_of(decl, &target, config, every, timeout, down_rule);
            let (_, mut change) = store.update_in(tx, decl.name.trim(), patch).await?;
            if let Some(regions) = &decl.regions {
                let (_, c) = store.edit_regions_in(tx, decl.name.trim(), RegionEdit::Set, regions).await?;
                change = merge(change, c);
            }
            change
        }
    };
    for region in decl.region_overrides.keys() {
        let assigned: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM monitor_regions mr JOIN monitors m ON m.id = mr.monitor_id \
             WHERE m.name = $1 AND mr.region_code = $2)",
        )
        .bind(decl.name.trim())
        .bind(region)
        .fetch_one(&mut **tx)
        .await?;
        if !assigned {
            return Err(MonitorError::NotInRegion { monitor: decl.name.clone(), region: region.clone() });
        }
    }
    let regions: Vec<String> = sqlx::query_scalar(
        "SELECT mr.region_code FROM monitor_regions mr JOIN monitors m ON m.id = mr.monitor_id WHERE m.name = $1 ORDER BY 1",
    )
    .bind(decl.name.trim())
    .fetch_all(&mut **tx)
    .await?;
    for region in regions {
        let (_, c) = store.set_overrides_in(tx, decl.name.trim(), &region, decl.overrides(&region)?).await?;
        if change != Change::Created {
            change = merge(change, c);
        }
    }
    Ok(change)
}

fn merge(a: Change, b: Change) -> Change {
    if a == Change::Unchanged {
        b
    } else {
        a
    }
}
