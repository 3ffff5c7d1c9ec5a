//! `monitor create` run twice is safe: a monitor already exactly as requested is "unchanged";
//! one that differs is refused with the fields that differ and a pointer to `monitor update`.

use sqlx::PgPool;

use super::{
    validate_interval, validate_target, validate_timeout, Monitor, MonitorError, MonitorStore, NewMonitor, Placement,
};
use crate::region::RegionStore;
use crate::store::Change;

/// Creates `new`, or reports [`Change::Unchanged`] when a monitor of that name is already the
/// same; [`MonitorError::ExistsDiffering`] when it is not.
pub async fn create_or_unchanged(
    pool: &PgPool,
    store: &MonitorStore<'_>,
    placement: &Placement,
    new: NewMonitor,
    dry_run: bool,
) -> Result<(Monitor, Change), MonitorError> {
    match store.create(new.clone(), dry_run).await {
        Ok(monitor) => Ok((monitor, Change::Created)),
        Err(MonitorError::DuplicateName(name)) => {
            let existing = store.get(&name).await?;
            let regions = match &new.regions {
                Some(codes) => codes.clone(),
                None if placement.geo_distribution => RegionStore::active_codes(pool).await?,
                None => vec![match &placement.default_region {
                    Some(code) => code.clone(),
                    None => RegionStore::default_code(pool).await?,
                }],
            };
            let fields = differences(&existing, &new, &regions)?;
            if fields.is_empty() {
                Ok((existing, Change::Unchanged))
            } else {
                Err(MonitorError::ExistsDiffering { name, fields })
            }
        }
        Err(e) => Err(e),
    }
}

/// The fields in which `existing` differs from what `new` would create.
pub fn differences(
    existing: &Monitor,
    new: &NewMonitor,
    regions: &[String],
) -> Result<Vec<&'static str>, MonitorError> {
    let interval = validate_interval(new.interval, new.force)?;
    let mut wanted_regions: Vec<&str> = regions.iter().map(String::as_str).collect();
    let mut have_regions: Vec<&str> = existing.regions.iter().map(|r| r.region.as_str()).collect();
    wanted_regions.sort_unstable();
    wanted_regions.dedup();
    have_regions.sort_unstable();
    let checks = [
        ("type", existing.stored_type == new.kind.stored()),
        ("target", existing.target == validate_target(new.kind, &new.target)?),
        ("interval", existing.interval_seconds == interval),
        ("timeout", existing.timeout_ms == Some(validate_timeout(new.timeout, interval)?)),
        ("down rule", existing.down_rule == new.down_rule.to_string()),
        ("check settings", existing.config == serde_json::Value::Object(new.config.clone())),
        ("paused", existing.enabled == new.enabled),
        ("regions", have_regions == wanted_regions),
    ];
    Ok(checks.into_iter().filter(|(_, same)| !same).map(|(field, _)| field).collect())
}
