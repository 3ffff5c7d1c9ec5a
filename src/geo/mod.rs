//! Where a check landed: the reached address's country, city, coordinates,
//! ASN and organisation, from the operator's MaxMind-format databases
//! (GeoLite2, DB-IP, … `.mmdb` files with the GeoIP2 City and ASN layouts).
//!
//! The files are memory-mapped once per process ([`GeoDb::open`]); a lookup
//! walks the mapped search tree and decodes a few fields, well under a
//! microsecond. Nothing is guessed: no database, or an address a database
//! does not hold, leaves the facts `None`. Every address is looked up (real
//! databases hold no private ranges; test databases may).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use maxminddb::{Mmap, Reader};
use serde::{Deserialize, Deserializer, Serialize};

/// A database file geoctl cannot use.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("{setting} names {path}, which cannot be read: {reason}; point it at an existing .mmdb file or unset it")]
    Unreadable { setting: &'static str, path: PathBuf, reason: String },
    #[error("{setting} names {path}, which is not a MaxMind-format database: {reason}")]
    Corrupt { setting: &'static str, path: PathBuf, reason: String },
}

/// A database named in the configuration is the operator's to fix.
impl crate::error::Coded for GeoError {
    fn exit(&self) -> crate::error::Exit {
        match self {
            GeoError::Unreadable { .. } | GeoError::Corrupt { .. } => crate::error::Exit::Input,
        }
    }
}

/// What the databases say about one address. A fact the databases do not hold is `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetFacts {
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    /// The city's English name.
    pub city: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub asn: Option<u32>,
    /// The organisation the ASN is registered to (the ISP or network).
    pub org: Option<String>,
}

impl TargetFacts {
    fn is_empty(&self) -> bool {
        *self == TargetFacts::default()
    }
}

/// The configured databases, memory-mapped; either may be absent.
#[derive(Default)]
pub struct GeoDb {
    city: Option<Mapped>,
    asn: Option<Mapped>,
}

/// One mapped file, and whether it has been reported for records that do not decode.
struct Mapped {
    reader: Reader<Mmap>,
    setting: &'static str,
    path: PathBuf,
    warned: AtomicBool,
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoDb").field("city", &self.city.is_some()).field("asn", &self.asn.is_some()).finish()
    }
}

impl GeoDb {
    /// Maps the named files; a missing or unreadable file, or one that is not
    /// a MaxMind-format database, is an error naming the file and its setting.
    pub fn open(city: Option<&Path>, asn: Option<&Path>) -> Result<Self, GeoError> {
        Ok(GeoDb {
            city: city.map(|p| map("GEOIP_CITY_DB", p)).transpose()?,
            asn: asn.map(|p| map("GEOIP_ASN_DB", p)).transpose()?,
        })
    }

    /// Whether any database is configured.
    pub fn is_configured(&self) -> bool {
        self.city.is_some() || self.asn.is_some()
    }

    /// The facts of `ip`; `None` when no database holds anything about it.
    pub fn lookup(&self, ip: IpAddr) -> Option<TargetFacts> {
        let mut facts = TargetFacts::default();
        if let Some(city) = self.city.as_ref().and_then(|db| db.decode::<CityRecord>(ip)) {
            // ISO codes only: the column is two letters, and a malformed one is no fact.
            facts.country = city
                .country
                .iso_code
                .filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()))
                .map(str::to_string);
            facts.city = city.city.names.en.map(str::to_string);
            facts.latitude = city.location.latitude;
            facts.longitude = city.location.longitude;
        }
        if let Some(asn) = self.asn.as_ref().and_then(|db| db.decode::<AsnRecord>(ip)) {
            facts.asn = asn.autonomous_system_number;
            facts.org = asn.autonomous_system_organization.map(str::to_string);
        }
        (!facts.is_empty()).then_some(facts)
    }

    /// Only the ASN of `ip` (route hops).
    pub fn asn(&self, ip: IpAddr) -> Option<u32> {
        self.asn.as_ref().and_then(|db| db.decode::<AsnRecord>(ip)).and_then(|a| a.autonomous_system_number)
    }
}

impl Mapped {
    /// The record of `ip`, or `None` when the database holds none (or cannot
    /// hold it: an IPv6 address in an IPv4-only database). A record that does
    /// not decode is `None` too, and the first one of each file is logged.
    fn decode<'a, T: Deserialize<'a>>(&'a self, ip: IpAddr) -> Option<T> {
        match self.reader.lookup(ip).ok()?.decode::<T>() {
            Ok(record) => record,
            Err(error) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "{} {}: records do not decode as expected ({error}); their facts are left empty \
                         (reported once per file)",
                        self.setting,
                        self.path.display()
                    );
                }
                None
            }
        }
    }
}

// The fields geoctl reads, and only those: fields it does not read cannot fail a
// record, and numbers are taken at any width the file stores them in. (The
// `geoip2` types of the maxminddb crate insist on the exact MaxMind type, so a
// GeoLite2-shaped file written with a uint16 ASN decoded to nothing.)

#[derive(Deserialize)]
struct CityRecord<'a> {
    #[serde(borrow, default)]
    country: Country<'a>,
    #[serde(borrow, default)]
    city: City<'a>,
    #[serde(default)]
    location: Location,
}

#[derive(Deserialize, Default)]
struct Country<'a> {
    #[serde(borrow)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct City<'a> {
    #[serde(borrow, default)]
    names: Names<'a>,
}

#[derive(Deserialize, Default)]
struct Names<'a> {
    #[serde(borrow)]
    en: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct Location {
    #[serde(default, deserialize_with = "any_float")]
    latitude: Option<f64>,
    #[serde(default, deserialize_with = "any_float")]
    longitude: Option<f64>,
}

#[derive(Deserialize)]
struct AsnRecord<'a> {
    #[serde(default, deserialize_with = "any_u32")]
    autonomous_system_number: Option<u32>,
    #[serde(borrow)]
    autonomous_system_organization: Option<&'a str>,
}

/// An integer of any stored width (uint16/32/64/128, int32) that fits in a `u32`.
fn any_u32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = u32;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an integer from 0 to 4294967295")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u32, E> {
            u32::try_from(v).map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u32, E> {
            u32::try_from(v).map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
        }
        fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<u32, E> {
            u32::try_from(v).map_err(|_| E::invalid_value(serde::de::Unexpected::Other("a larger integer"), &self))
        }
    }
    deserializer.deserialize_any(Visitor).map(Some)
}

/// A coordinate stored as a double or a float.
fn any_float<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = f64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a number")
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
    }
    deserializer.deserialize_any(Visitor).map(Some)
}

fn map(setting: &'static str, path: &Path) -> Result<Mapped, GeoError> {
    let file = std::fs::File::open(path).map_err(|e| GeoError::Unreadable {
        setting,
        path: path.into(),
        reason: e.to_string(),
    })?;
    // SAFETY: the mapping is read-only. An operator replacing a database does
    // so by renaming a new file over it (as geoipupdate does), which leaves this
    // mapping on the old inode; truncating it in place is not supported.
    let mapped = unsafe { Mmap::map(&file) }.map_err(|e| GeoError::Unreadable {
        setting,
        path: path.into(),
        reason: e.to_string(),
    })?;
    let reader = Reader::from_source(mapped).map_err(|e| GeoError::Corrupt {
        setting,
        path: path.into(),
        reason: e.to_string(),
    })?;
    Ok(Mapped { reader, setting, path: path.into(), warned: AtomicBool::new(false) })
}

/// Great-circle distance in kilometres between two points (haversine, mean Earth radius).
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lon1) = (a.0.to_radians(), a.1.to_radians());
    let (lat2, lon2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * 6371.0088 * h.sqrt().min(1.0).asin()
}

/// The SQL twin of [`distance_km`] over `regions` row `g` and a point `(lat, lon)`,
/// so the nearest region is picked where results are written.
pub fn distance_sql(lat: &str, lon: &str) -> String {
    format!(
        "(2 * 6371.0088 * asin(least(1, sqrt(power(sin(radians(g.latitude - {lat}) / 2), 2) \
         + cos(radians({lat})) * cos(radians(g.latitude)) * power(sin(radians(g.longitude - {lon}) / 2), 2)))))"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn great_circle_distances() {
        let london = (51.5074, -0.1278);
        // Known distances: London–Paris 344 km, New York–London 5,570 km.
        assert!((distance_km(london, (48.8566, 2.3522)) - 344.0).abs() < 2.0);
        assert!((distance_km((40.7128, -74.0060), london) - 5_570.0).abs() < 10.0);
        assert_eq!(distance_km(london, london), 0.0);
        // Across the antimeridian: Fiji to Samoa is ~1,150 km, not ~39,000.
        assert!(distance_km((-18.1, 178.4), (-13.8, -171.8)) < 1_300.0);
    }

    #[test]
    fn missing_and_corrupt_files_name_the_file() {
        let missing = GeoDb::open(Some(Path::new("/nonexistent/city.mmdb")), None).unwrap_err();
        assert!(missing.to_string().contains("GEOIP_CITY_DB names /nonexistent/city.mmdb"), "{missing}");
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("asn.mmdb");
        std::fs::write(&junk, b"not a database").unwrap();
        let corrupt = GeoDb::open(None, Some(&junk)).unwrap_err();
        assert!(corrupt.to_string().contains(&format!("GEOIP_ASN_DB names {}", junk.display())), "{corrupt}");
        assert!(matches!(corrupt, GeoError::Corrupt { .. }));
    }

    #[test]
    fn no_database_no_facts() {
        let geo = GeoDb::default();
        assert!(!geo.is_configured());
        assert_eq!(geo.lookup("127.0.0.1".parse().unwrap()), None);
    }
}
