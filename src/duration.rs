//! Human durations (`500ms`, `30s`, `5m`, `1h`, `1d`) as operators type them.

use std::time::Duration;

/// What a bare number (no unit) means where it is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareUnit {
    /// A bare number is rejected: the unit must be written.
    Rejected,
    Seconds,
    Milliseconds,
}

/// [`parse`] with a rule the duration must meet (a minimum, a maximum). A bare number gets only
/// suggestions the rule accepts: `90` as a retention of at least 1d suggests `90d`, never `90s`.
pub fn parse_checked(text: &str, rule: impl Fn(Duration) -> Result<(), String>) -> Result<Duration, String> {
    let trimmed = text.trim();
    if let Ok(n) = trimmed.parse::<u64>() {
        let valid: Vec<String> = [("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
            .into_iter()
            .filter(|(_, secs)| n.checked_mul(*secs).is_some_and(|s| rule(Duration::from_secs(s)).is_ok()))
            .map(|(unit, _)| format!("{trimmed}{unit}"))
            .collect();
        return Err(match valid.as_slice() {
            [] => format!("`{trimmed}` has no unit, and no unit makes it valid: {}", rule(Duration::ZERO).unwrap_err()),
            [one] => format!("`{trimmed}` has no unit; did you mean {one}?"),
            many => format!("`{trimmed}` has no unit; write it like {}", many.join(", ")),
        });
    }
    let d = parse(trimmed, BareUnit::Rejected)?;
    rule(d)?;
    Ok(d)
}

/// Parses `1500ms`, `30s`, `5m`, `1h`, `1d`, or a combination such as `1m30s`.
pub fn parse(text: &str, bare: BareUnit) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration; write it like 30s, 5m or 1h".into());
    }
    if let Ok(n) = text.parse::<u64>() {
        return match bare {
            BareUnit::Seconds => Ok(Duration::from_secs(n)),
            BareUnit::Milliseconds => Ok(Duration::from_millis(n)),
            BareUnit::Rejected => Err(format!("`{text}` has no unit; write it like {text}s, {text}m or {text}h")),
        };
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("invalid duration `{text}`; write it like 30s, 5m or 1h"));
        }
        let number: u64 = rest[..digits].parse().map_err(|_| format!("duration `{text}` is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let millis_per_unit: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(format!("invalid duration unit `{unit}` in `{text}`; use ms, s, m, h or d")),
        };
        let part = number.checked_mul(millis_per_unit).ok_or_else(|| format!("duration `{text}` is too large"))?;
        total =
            total.checked_add(Duration::from_millis(part)).ok_or_else(|| format!("duration `{text}` is too large"))?;
    }
    Ok(total)
}

/// Formats a duration the way [`parse`] reads it, largest units first.
pub fn format(duration: Duration) -> String {
    let mut millis = duration.as_millis();
    if millis == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400_000u128), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if millis >= size {
            out.push_str(&format!("{}{unit}", millis / size));
            millis %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(parse("30s", BareUnit::Rejected), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m", BareUnit::Rejected), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h", BareUnit::Rejected), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("1m30s", BareUnit::Rejected), Ok(Duration::from_secs(90)));
        assert_eq!(parse("250ms", BareUnit::Rejected), Ok(Duration::from_millis(250)));
        assert_eq!(parse("10", BareUnit::Seconds), Ok(Duration::from_secs(10)));
        assert_eq!(parse("10", BareUnit::Milliseconds), Ok(Duration::from_millis(10)));
    }

    #[test]
    fn rejects_garbage_with_a_hint() {
        assert!(parse("10", BareUnit::Rejected).unwrap_err().contains("no unit"));
        let at_least_a_day = |d: Duration| {
            if d >= Duration::from_secs(86_400) {
                Ok(())
            } else {
                Err("keep at least 1d".to_string())
            }
        };
        assert_eq!(parse_checked("90", at_least_a_day).unwrap_err(), "`90` has no unit; write it like 90h, 90d");
        assert_eq!(parse_checked("7", at_least_a_day).unwrap_err(), "`7` has no unit; did you mean 7d?");
        assert_eq!(parse_checked("2d", at_least_a_day), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_checked("90s", at_least_a_day).unwrap_err(), "keep at least 1d");
        assert!(parse("-5m", BareUnit::Rejected).is_err());
        assert!(parse("5 minutes", BareUnit::Rejected).is_err());
        assert!(parse("5y", BareUnit::Rejected).unwrap_err().contains("unit"));
        assert!(parse("", BareUnit::Rejected).is_err());
        assert!(parse("99999999999999999999d", BareUnit::Rejected).is_err());
    }

    #[test]
    fn format_round_trips() {
        for text in ["30s", "5m", "1h", "1m30s", "250ms", "1d"] {
            let d = parse(text, BareUnit::Rejected).unwrap();
            assert_eq!(format(d), text);
        }
    }
}
