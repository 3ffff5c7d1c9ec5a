//! Statistics, number formatting and the JSON files of the parts.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::Value;

/// The `p` quantile (0..=1, nearest rank) of `values`; `None` when empty.
pub fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

/// The median; the mean of the two middle values for an even count.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 0 { (values[mid - 1] + values[mid]) / 2.0 } else { values[mid] })
}

pub fn fmt_rate(per_second: f64) -> String {
    if per_second >= 100.0 {
        format!("{per_second:.0}")
    } else {
        format!("{per_second:.1}")
    }
}

pub fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.decimals$}"))
}

pub fn pct(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.0}%"))
}

pub fn write_part(path: &Path, part: &Value) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_vec_pretty(part)?).with_context(|| format!("writing {}", path.display()))
}

/// Merges the parts' top-level objects into one file.
pub fn join(parts: &[PathBuf], out: &Path) -> anyhow::Result<()> {
    let mut all = serde_json::Map::new();
    all.insert("benchmark".into(), "probe".into());
    all.insert("geoctl_version".into(), env!("CARGO_PKG_VERSION").into());
    for path in parts {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let Value::Object(part) = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        else {
            anyhow::bail!("{} is not a JSON object", path.display());
        };
        all.extend(part);
    }
    write_part(out, &Value::Object(all))
}
