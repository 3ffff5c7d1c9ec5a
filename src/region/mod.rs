//! Monitoring regions: the model, its validation and its table.

mod store;

pub use store::{RegionPatch, RegionStore};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// A monitoring region (its own Swarm and Redis).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Region {
    pub code: String,
    pub name: String,
    pub city: Option<String>,
    #[sqlx(rename = "country_code")]
    #[serde(rename = "country")]
    pub country_code: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub latency_warning_ms: i32,
    pub latency_critical_ms: i32,
    #[sqlx(rename = "is_active")]
    #[serde(rename = "active")]
    pub is_active: bool,
    #[sqlx(rename = "is_default")]
    #[serde(rename = "default")]
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegionError {
    #[error(transparent)]
    InvalidCode(#[from] crate::text::InvalidRegionCode),
    #[error("unknown country code `{0}`: use an ISO 3166-1 alpha-2 code such as US, IE or IN")]
    UnknownCountry(String),
    #[error("latitude {0} is out of range; use a value from -90 to 90")]
    Latitude(f64),
    #[error("longitude {0} is out of range; use a value from -180 to 180")]
    Longitude(f64),
    #[error("latency warning ({warning} ms) must be below latency critical ({critical} ms), and both above 0")]
    Thresholds { warning: i32, critical: i32 },
    #[error("region name must not be empty")]
    EmptyName,
    #[error("{0}")]
    Text(String),
    #[error("unknown region `{code}`{hint}; active regions: {}", list(.active))]
    Unknown { code: String, active: Vec<String>, hint: String },
    #[error("region `{code}` is disabled; active regions: {}; enable it with `geoctl region enable {code}`", list(.active))]
    Inactive { code: String, active: Vec<String> },
    #[error("region `{code}` already exists with other values; change it with `geoctl region update {code} …`")]
    Exists { code: String },
    #[error("region `{code}` is the default region; make another region the default first (`geoctl region set-default CODE`)")]
    IsDefault { code: String },
    #[error("region `{code}` is in use by {monitors} monitor(s); remove it from them first (`geoctl monitor regions remove MONITOR {code}`)")]
    InUse { code: String, monitors: i64 },
    #[error("no default region is set; choose one with `geoctl region set-default CODE`")]
    NoDefault,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl crate::error::Coded for RegionError {
    fn exit(&self) -> crate::error::Exit {
        use crate::error::Exit;
        match self {
            RegionError::Database(_) => Exit::Failed,
            RegionError::InvalidCode(_)
            | RegionError::UnknownCountry(_)
            | RegionError::Latitude(_)
            | RegionError::Longitude(_)
            | RegionError::Thresholds { .. }
            | RegionError::EmptyName
            | RegionError::Text(_)
            | RegionError::Unknown { .. }
            | RegionError::Inactive { .. }
            | RegionError::Exists { .. }
            | RegionError::IsDefault { .. }
            | RegionError::InUse { .. }
            | RegionError::NoDefault => Exit::Input,
        }
    }
}

fn list(codes: &[String]) -> String {
    if codes.is_empty() {
        "(none)".into()
    } else {
        codes.join(", ")
    }
}

/// Region codes: `^[a-z][a-z0-9-]{1,49}$` (the rule is [`crate::text::region_code`]).
pub fn validate_code(code: &str) -> Result<(), RegionError> {
    Ok(crate::text::region_code(code)?)
}

/// ISO 3166-1 alpha-2, normalised to upper case.
pub fn validate_country(code: &str) -> Result<String, RegionError> {
    let upper = code.trim().to_ascii_uppercase();
    if upper.len() == 2 && ISO_3166_ALPHA2.split(' ').any(|c| c == upper) {
        Ok(upper)
    } else {
        Err(RegionError::UnknownCountry(code.to_string()))
    }
}

pub fn validate_coordinates(latitude: Option<f64>, longitude: Option<f64>) -> Result<(), RegionError> {
    if let Some(lat) = latitude.filter(|l| !(-90.0..=90.0).contains(l) || l.is_nan()) {
        return Err(RegionError::Latitude(lat));
    }
    if let Some(lon) = longitude.filter(|l| !(-180.0..=180.0).contains(l) || l.is_nan()) {
        return Err(RegionError::Longitude(lon));
    }
    Ok(())
}

pub fn validate_thresholds(warning: i32, critical: i32) -> Result<(), RegionError> {
    if warning > 0 && critical > 0 && warning < critical {
        Ok(())
    } else {
        Err(RegionError::Thresholds { warning, critical })
    }
}

/// " (did you mean `eu-west`?)" when one known code is a typo away.
pub fn suggestion(code: &str, known: &[String]) -> String {
    known
        .iter()
        .map(|k| (edit_distance(code, k), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let substitute = previous + usize::from(ca != b[j]);
            previous = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

const ISO_3166_ALPHA2: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        for ok in ["us-east", "eu-west", "ap-south-1", "xy"] {
            assert!(validate_code(ok).is_ok(), "{ok}");
        }
        for bad in ["", "u", "US-EAST", "1east", "-east", "us_east", "eu west", &"a".repeat(51)] {
            assert!(validate_code(bad).is_err(), "{bad}");
        }
        let err = validate_code(&"A".repeat(100_000)).unwrap_err().to_string();
        assert!(err.len() < 300, "a huge code is not repeated back: {} bytes", err.len());
    }

    #[test]
    fn countries_and_coordinates() {
        assert_eq!(validate_country("ie").unwrap(), "IE");
        assert!(validate_country("XX").is_err());
        assert!(validate_country("USA").is_err());
        assert!(validate_coordinates(Some(91.0), None).is_err());
        assert!(validate_coordinates(None, Some(-180.5)).is_err());
        assert!(validate_coordinates(Some(f64::NAN), None).is_err());
        assert!(validate_coordinates(Some(53.3), Some(-6.2)).is_ok());
        assert!(validate_thresholds(300, 150).is_err());
        assert!(validate_thresholds(150, 150).is_err());
        assert!(validate_thresholds(150, 300).is_ok());
    }

    #[test]
    fn suggests_near_misses_only() {
        let known = vec!["us-east".to_string(), "eu-west".to_string(), "ap-south".to_string()];
        assert_eq!(suggestion("eu-wset", &known), " (did you mean `eu-west`?)");
        assert_eq!(suggestion("mars-1", &known), "");
    }
}
