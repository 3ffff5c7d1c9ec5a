//! The `regions` table.

use sqlx::{PgExecutor, PgPool, Postgres, Transaction};

use crate::store::Change;

use super::{
    suggestion, validate_code, validate_coordinates, validate_country, validate_thresholds, Region, RegionError,
};

const COLUMNS: &str = "code, name, city, country_code, latitude, longitude, latency_warning_ms, \
                       latency_critical_ms, is_active, is_default, created_at, updated_at";

/// Fields to set on a region; `None` leaves a field as it is. Also the input of `add`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegionPatch {
    pub name: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub latency_warning_ms: Option<i32>,
    pub latency_critical_ms: Option<i32>,
}

impl RegionPatch {
    pub fn is_empty(&self) -> bool {
        *self == RegionPatch::default()
    }

    /// The region as it would be after this patch, validated.
    pub fn apply(&self, mut region: Region) -> Result<Region, RegionError> {
        if let Some(name) = &self.name {
            if name.trim().is_empty() {
                return Err(RegionError::EmptyName);
            }
            crate::text::check("region name", name.trim(), crate::text::MAX_REGION_NAME).map_err(RegionError::Text)?;
            region.name = name.trim().to_string();
        }
        if let Some(city) = &self.city {
            crate::text::check("city", city.trim(), crate::text::MAX_REGION_NAME).map_err(RegionError::Text)?;
            region.city = Some(city.trim().to_string()).filter(|c| !c.is_empty());
        }
        if let Some(country) = &self.country {
            region.country_code = Some(validate_country(country)?);
        }
        region.latitude = self.latitude.or(region.latitude);
        region.longitude = self.longitude.or(region.longitude);
        region.latency_warning_ms = self.latency_warning_ms.unwrap_or(region.latency_warning_ms);
        region.latency_critical_ms = self.latency_critical_ms.unwrap_or(region.latency_critical_ms);
        validate_coordinates(region.latitude, region.longitude)?;
        validate_thresholds(region.latency_warning_ms, region.latency_critical_ms)?;
        Ok(region)
    }
}

pub struct RegionStore<'a> {
    pool: &'a PgPool,
}

impl<'a> RegionStore<'a> {
    pub fn new(pool: &'a PgPool) -> Self {
        Self { pool }
    }

    pub async fn list(&self) -> Result<Vec<Region>, RegionError> {
        Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM regions ORDER BY is_default DESC, created_at, code"))
            .fetch_all(self.pool)
            .await?)
    }

    pub async fn active_codes<'e>(executor: impl PgExecutor<'e>) -> Result<Vec<String>, RegionError> {
        Ok(sqlx::query_scalar("SELECT code FROM regions WHERE is_active ORDER BY is_default DESC, created_at, code")
            .fetch_all(executor)
            .await?)
    }

    pub async fn get(&self, code: &str) -> Result<Region, RegionError> {
        let mut conn = self.pool.acquire().await?;
        Self::fetch(&mut conn, code).await
    }

    /// The region, or an error that lists the active ones.
    /// Whether a region with this code exists, active or not.
    pub async fn exists(&self, code: &str) -> Result<bool, RegionError> {
        Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM regions WHERE code = $1)")
            .bind(code)
            .fetch_one(self.pool)
            .await?)
    }

    pub async fn fetch(conn: &mut sqlx::PgConnection, code: &str) -> Result<Region, RegionError> {
        let found: Option<Region> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM regions WHERE code = $1"))
            .bind(code)
            .fetch_optional(&mut *conn)
            .await?;
        match found {
            Some(region) => Ok(region),
            None => {
                let active = Self::active_codes(&mut *conn).await?;
                let hint = suggestion(code, &active);
                Err(RegionError::Unknown { code: code.into(), active, hint })
            }
        }
    }

    /// Every code must name an active region; checked inside the caller's transaction.
    pub async fn require_active(tx: &mut Transaction<'_, Postgres>, codes: &[String]) -> Result<(), RegionError> {
        let active = Self::active_codes(&mut **tx).await?;
        for code in codes {
            if active.contains(code) {
                continue;
            }
            let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM regions WHERE code = $1)")
                .bind(code)
                .fetch_one(&mut **tx)
                .await?;
            return Err(if exists {
                RegionError::Inactive { code: code.clone(), active }
            } else {
                let hint = suggestion(code, &active);
                RegionError::Unknown { code: code.clone(), active, hint }
            });
        }
        Ok(())
    }

    /// The default region's code.
    pub async fn default_code<'e>(executor: impl PgExecutor<'e>) -> Result<String, RegionError> {
        sqlx::query_scalar("SELECT code FROM regions WHERE is_default")
            .fetch_optional(executor)
            .await?
            .ok_or(RegionError::NoDefault)
    }

    /// Adds a region. Adding one that exists with the same values is a no-op,
    /// so a provisioning script can run twice.
    pub async fn add(&self, code: &str, fields: &RegionPatch, dry_run: bool) -> Result<(Region, Change), RegionError> {
        validate_code(code)?;
        let name = fields.name.clone().filter(|n| !n.trim().is_empty()).ok_or(RegionError::EmptyName)?;
        let template = Region {
            code: code.into(),
            name,
            city: None,
            country_code: None,
            latitude: None,
            longitude: None,
            latency_warning_ms: 200,
            latency_critical_ms: 500,
            is_active: true,
            is_default: false,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        };
        let wanted = fields.apply(template)?;

        let mut tx = self.pool.begin().await?;
        lock_regions(&mut tx).await?;
        let existing: Option<Region> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM regions WHERE code = $1"))
            .bind(code)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(existing) = existing {
            return if same_fields(&existing, &wanted) {
                Ok((existing, Change::Unchanged))
            } else {
                Err(RegionError::Exists { code: code.into() })
            };
        }
        if dry_run {
            return Ok((wanted, Change::Created));
        }
        let region: Region = sqlx::query_as(&format!(
            "INSERT INTO regions (code, name, city, country_code, latitude, longitude, \
             latency_warning_ms, latency_critical_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) RETURNING {COLUMNS}"
        ))
        .bind(&wanted.code)
        .bind(&wanted.name)
        .bind(&wanted.city)
        .bind(&wanted.country_code)
        .bind(wanted.latitude)
        .bind(wanted.longitude)
        .bind(wanted.latency_warning_ms)
        .bind(wanted.latency_critical_ms)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((region, Change::Created))
    }

    /// Validates the patch against the current row; writes only when something differs.
    pub async fn update(
        &self,
        code: &str,
        patch: &RegionPatch,
        dry_run: bool,
    ) -> Result<(Region, Change), RegionError> {
        let mut tx = self.pool.begin().await?;
        lock_regions(&mut tx).await?;
        let current = Self::fetch(&mut tx, code).await?;
        let wanted = patch.apply(current.clone())?;
        if same_fields(&current, &wanted) {
            return Ok((current, Change::Unchanged));
        }
        if dry_run {
            return Ok((wanted, Change::Updated));
        }
        let region: Region = sqlx::query_as(&format!(
            "UPDATE regions SET name=$2, city=$3, country_code=$4, latitude=$5, longitude=$6, \
             latency_warning_ms=$7, latency_critical_ms=$8, updated_at=now() WHERE code=$1 RETURNING {COLUMNS}"
        ))
        .bind(code)
        .bind(&wanted.name)
        .bind(&wanted.city)
        .bind(&wanted.country_code)
        .bind(wanted.latitude)
        .bind(wanted.longitude)
        .bind(wanted.latency_warning_ms)
        .bind(wanted.latency_critical_ms)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((region, Change::Updated))
    }

    /// Enables or disables a region. The default region cannot be disabled.
    pub async fn set_active(&self, code: &str, active: bool, dry_run: bool) -> Result<(Region, Change), RegionError> {
        let mut tx = self.pool.begin().await?;
        lock_regions(&mut tx).await?;
        let mut current = Self::fetch(&mut tx, code).await?;
        if current.is_active == active {
            return Ok((current, Change::Unchanged));
        }
        if !active && current.is_default {
            return Err(RegionError::IsDefault { code: code.into() });
        }
        if dry_run {
            current.is_active = active;
            return Ok((current, Change::Updated));
        }
        let region: Region = sqlx::query_as(&format!(
            "UPDATE regions SET is_active=$2, updated_at=now() WHERE code=$1 RETURNING {COLUMNS}"
        ))
        .bind(code)
        .bind(active)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((region, Change::Updated))
    }

    /// Makes `code` the one default region, in one transaction.
    pub async fn set_default(&self, code: &str, dry_run: bool) -> Result<(Region, Change), RegionError> {
        let mut tx = self.pool.begin().await?;
        lock_regions(&mut tx).await?;
        let mut current = Self::fetch(&mut tx, code).await?;
        if current.is_default {
            return Ok((current, Change::Unchanged));
        }
        if !current.is_active {
            let active = Self::active_codes(&mut *tx).await?;
            return Err(RegionError::Inactive { code: code.into(), active });
        }
        if dry_run {
            current.is_default = true;
            return Ok((current, Change::Updated));
        }
        sqlx::query("UPDATE regions SET is_default=false, updated_at=now() WHERE is_default").execute(&mut *tx).await?;
        let region: Region = sqlx::query_as(&format!(
            "UPDATE regions SET is_default=true, updated_at=now() WHERE code=$1 RETURNING {COLUMNS}"
        ))
        .bind(code)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((region, Change::Updated))
    }

    /// Deletes a region no monitor uses and that is not the default.
    pub async fn delete(&self, code: &str, dry_run: bool) -> Result<(Region, Change), RegionError> {
        let mut tx = self.pool.begin().await?;
        lock_regions(&mut tx).await?;
        let current = Self::fetch(&mut tx, code).await?;
        if current.is_default {
            return Err(RegionError::IsDefault { code: code.into() });
        }
        let monitors: i64 = sqlx::query_scalar("SELECT count(*) FROM monitor_regions WHERE region_code = $1")
            .bind(code)
            .fetch_one(&mut *tx)
            .await?;
        if monitors > 0 {
            return Err(RegionError::InUse { code: code.into(), monitors });
        }
        if !dry_run {
            sqlx::query("DELETE FROM regions WHERE code = $1").bind(code).execute(&mut *tx).await?;
            tx.commit().await?;
        }
        Ok((current, Change::Deleted))
    }
}

/// Serialises writers to `regions` so the "exactly one default" and "in use"
/// checks cannot race with another geoctl.
async fn lock_regions(tx: &mut Transaction<'_, Postgres>) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('geoctl:regions'))").execute(&mut **tx).await.map(|_| ())
}

fn same_fields(a: &Region, b: &Region) -> bool {
    a.name == b.name
        && a.city == b.city
        && a.country_code == b.country_code
        && a.latitude == b.latitude
        && a.longitude == b.longitude
        && a.latency_warning_ms == b.latency_warning_ms
        && a.latency_critical_ms == b.latency_critical_ms
}
