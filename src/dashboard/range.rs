//! The time range every page and API call takes from its URL: `range=1h|24h|7d|30d`, or
//! `from=…&to=…` (RFC 3339, or a browser's `datetime-local` value read as UTC).

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

/// The ranges the selector offers, by their URL name.
pub const PRESETS: [(&str, &str, i64); 4] = [
    ("1h", "last hour", 3600),
    ("24h", "last 24 hours", 86_400),
    ("7d", "last 7 days", 7 * 86_400),
    ("30d", "last 30 days", 30 * 86_400),
];

/// The longest custom range: what the daily summaries keep in a year, and a bound on the work.
const LONGEST_DAYS: i64 = 400;

/// The query parameters that say the range.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct RangeQuery {
    pub range: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// A resolved range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Range {
    /// `1h`, `24h`, `7d`, `30d` or `custom`.
    pub name: String,
    /// How a person reads it ("last 24 hours").
    pub label: String,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

impl Range {
    /// The query string that asks for this range again (links keep it).
    pub fn query(&self) -> String {
        match self.name.as_str() {
            "custom" => format!(
                "from={}&to={}",
                self.since.format("%Y-%m-%dT%H:%M:%SZ"),
                self.until.format("%Y-%m-%dT%H:%M:%SZ")
            ),
            name => format!("range={name}"),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RangeError {
    #[error("unknown range `{0}`: use 1h, 24h, 7d or 30d, or from=…&to=… (e.g. from=2026-03-01T00:00Z&to=2026-03-02T00:00Z)")]
    Unknown(String),
    #[error("`{0}` is not a time: use RFC 3339 (2026-03-01T12:00:00Z) or 2026-03-01T12:00 (UTC)")]
    BadTime(String),
    #[error("a custom range needs both `from` and `to`")]
    HalfCustom,
    #[error("`from` must be before `to`")]
    Backwards,
    #[error("a custom range may span at most {LONGEST_DAYS} days")]
    TooLong,
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, RangeError> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%MZ"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc());
        }
    }
    Err(RangeError::BadTime(text.to_string()))
}

/// The range a request asks for, 24h when it says none.
pub fn resolve(query: &RangeQuery, now: DateTime<Utc>) -> Result<Range, RangeError> {
    let nonempty = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
    match (nonempty(&query.from), nonempty(&query.to)) {
        (Some(from), Some(to)) => {
            let (since, until) = (parse_time(&from)?, parse_time(&to)?);
            if since >= until {
                return Err(RangeError::Backwards);
            }
            if until - since > chrono::Duration::days(LONGEST_DAYS) {
                return Err(RangeError::TooLong);
            }
            let format = "%Y-%m-%d %H:%M UTC";
            let label = format!("{} to {}", since.format(format), until.format(format));
            Ok(Range { name: "custom".into(), label, since, until })
        }
        (None, None) => {
            let name = nonempty(&query.range).unwrap_or_else(|| "24h".into());
            let (name, label, seconds) =
                PRESETS.iter().find(|(n, _, _)| *n == name).ok_or(RangeError::Unknown(name.clone()))?;
            Ok(Range {
                name: (*name).into(),
                label: (*label).into(),
                since: now - chrono::Duration::seconds(*seconds),
                until: now,
            })
        }
        _ => Err(RangeError::HalfCustom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(range: Option<&str>, from: Option<&str>, to: Option<&str>) -> RangeQuery {
        RangeQuery { range: range.map(Into::into), from: from.map(Into::into), to: to.map(Into::into) }
    }

    #[test]
    fn presets_and_default() {
        let now: DateTime<Utc> = "2026-03-10T12:00:00Z".parse().unwrap();
        let day = resolve(&q(None, None, None), now).unwrap();
        assert_eq!((day.name.as_str(), day.since), ("24h", now - chrono::Duration::days(1)));
        let month = resolve(&q(Some("30d"), None, None), now).unwrap();
        assert_eq!(month.query(), "range=30d");
        assert_eq!(resolve(&q(Some("2w"), None, None), now), Err(RangeError::Unknown("2w".into())));
    }

    #[test]
    fn custom_ranges_are_checked() {
        let now: DateTime<Utc> = "2026-03-10T12:00:00Z".parse().unwrap();
        let r = resolve(&q(Some("1h"), Some("2026-03-01T00:00"), Some("2026-03-03T00:00:00Z")), now).unwrap();
        assert_eq!(r.name, "custom");
        assert_eq!(r.query(), "from=2026-03-01T00:00:00Z&to=2026-03-03T00:00:00Z");
        assert_eq!(resolve(&q(None, Some("2026-03-01T00:00"), None), now), Err(RangeError::HalfCustom));
        assert_eq!(
            resolve(&q(None, Some("2026-03-02T00:00"), Some("2026-03-01T00:00")), now),
            Err(RangeError::Backwards)
        );
        assert_eq!(
            resolve(&q(None, Some("2020-01-01T00:00"), Some("2026-03-01T00:00")), now),
            Err(RangeError::TooLong)
        );
        assert!(matches!(resolve(&q(None, Some("yesterday"), Some("now")), now), Err(RangeError::BadTime(_))));
    }
}
