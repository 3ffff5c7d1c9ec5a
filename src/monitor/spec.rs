//! Small value types of a monitor's definition, parsed from what operators type.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::MonitorError;
use crate::probe::credential::is_credential_header;

/// When a monitor counts as down across its regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DownRule {
    /// Down only when every region fails.
    All,
    /// Down when more than half of the regions fail.
    #[default]
    Majority,
    /// Down when any region fails.
    Any,
    /// Down when at least N regions fail.
    AtLeast(u32),
}

impl DownRule {
    /// Whether `failing` failed regions out of `total` make the monitor down.
    pub fn is_down(self, failing: usize, total: usize) -> bool {
        if total == 0 || failing == 0 {
            return false;
        }
        match self {
            DownRule::All => failing == total,
            DownRule::Majority => failing * 2 > total,
            DownRule::Any => true,
            DownRule::AtLeast(n) => failing >= (n as usize).min(total),
        }
    }
}

impl fmt::Display for DownRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownRule::All => f.write_str("all"),
            DownRule::Majority => f.write_str("majority"),
            DownRule::Any => f.write_str("any"),
            DownRule::AtLeast(n) => write!(f, "at-least:{n}"),
        }
    }
}

impl FromStr for DownRule {
    type Err = MonitorError;
    /// `all`, `majority`, `any`, `at-least:N` (also `at-least N`, `at-least-N`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let lower = text.trim().to_ascii_lowercase();
        let bad = || {
            MonitorError::Invalid(format!("invalid down rule `{text}`; use all, majority, any or at-least:N (N ≥ 1)"))
        };
        match lower.as_str() {
            "all" => Ok(DownRule::All),
            "majority" => Ok(DownRule::Majority),
            "any" => Ok(DownRule::Any),
            _ => {
                let n = lower
                    .strip_prefix("at-least")
                    .map(|rest| rest.trim_start_matches([':', '-', ' ', '=']))
                    .and_then(|n| n.parse::<u32>().ok())
                    .filter(|n| *n >= 1)
                    .ok_or_else(bad)?;
                Ok(DownRule::AtLeast(n))
            }
        }
    }
}

/// One request header, `Name: value`. Its `Debug` masks a credential's value; its `Serialize`
/// does not, because that is how it is stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub name: String,
    pub value: String,
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = if is_credential_header(&self.name) { MASKED } else { &self.value };
        f.debug_struct("Header").field("name", &self.name).field("value", &value).finish()
    }
}

/// Shown in place of a credential header's value.
pub use crate::probe::credential::MASK as MASKED;

/// A stored header list (`[{"name": …, "value": …}, …]`) with the values of credential headers
/// (by [`is_credential_header`]) replaced by [`MASKED`].
pub fn masked_headers(headers: &Value) -> Value {
    let mut headers = headers.clone();
    for header in headers.as_array_mut().into_iter().flatten() {
        let name = header.get("name").and_then(Value::as_str).unwrap_or("");
        if is_credential_header(name) && header.get("value").is_some() {
            header["value"] = Value::String(MASKED.into());
        }
    }
    headers
}

/// A monitor's `config` with its `headers` masked.
pub fn masked_config(config: &Value) -> Value {
    let mut config = config.clone();
    if let Some(headers) = config.get_mut("headers") {
        *headers = masked_headers(headers);
    }
    config
}

pub(super) fn serialize_masked_config<S: serde::Serializer>(config: &Value, s: S) -> Result<S::Ok, S::Error> {
    masked_config(config).serialize(s)
}

pub(super) fn serialize_masked_headers<S: serde::Serializer>(headers: &Option<Value>, s: S) -> Result<S::Ok, S::Error> {
    headers.as_ref().map(masked_headers).serialize(s)
}

impl FromStr for Header {
    type Err = MonitorError;
    /// `Name: value`. Errors never quote the text: a malformed header is likely a credential.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            MonitorError::Invalid(format!("invalid header: {why}; write it as 'Name: value' (the text is not shown)"))
        };
        let (name, value) = text.split_once(':').ok_or_else(|| bad("no ':' between name and value"))?;
        let name = name.trim();
        // RFC 9110 token characters.
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() || !name.chars().all(token) {
            return Err(bad("the name must be a token such as X-Api-Key"));
        }
        let value = value.trim();
        if value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
            return Err(bad("the value holds a line break or NUL"));
        }
        if value.chars().count() > crate::text::MAX_HEADER_VALUE {
            return Err(bad(&format!("the value must be at most {} characters", crate::text::MAX_HEADER_VALUE)));
        }
        Ok(Header { name: name.to_string(), value: value.to_string() })
    }
}

/// One header as written, `Name: value`, `Name: @FILE` (the file's content, trimmed) or
/// `Name: env:VAR` (the variable's value), so a credential need not appear in process arguments or
/// in a monitors file. `origin` says where it was written (`--header #2`, `headers[0]`); errors
/// name it and never quote the text. The flags and `monitor apply` files both resolve through it.
pub fn resolve_header(text: &str, origin: &str, env: impl Fn(&str) -> Option<String>) -> Result<Header, MonitorError> {
    let in_origin = |e: MonitorError| MonitorError::Invalid(format!("{origin}: {e}"));
    let mut header: Header = text.parse().map_err(in_origin)?;
    if let Some(path) = header.value.strip_prefix('@') {
        let content = std::fs::read_to_string(path).map_err(|e| {
            MonitorError::Invalid(format!("{origin}: the value of header {} names file {path}: {e}", header.name))
        })?;
        header.value = content.trim().to_string();
    } else if let Some(var) = header.value.strip_prefix("env:") {
        header.value = env(var).ok_or_else(|| {
            MonitorError::Invalid(format!(
                "{origin}: the value of header {} names environment variable {var}, which is not set",
                header.name
            ))
        })?;
    } else {
        return Ok(header);
    }
    // The value came from elsewhere; check it like a typed one.
    let name = header.name.clone();
    format!("{}: {}", header.name, header.value)
        .parse()
        .map_err(|_| MonitorError::Invalid(format!("{origin}: the value of header {name} holds a line break or NUL")))
}

/// Headers as typed (`--header`), each resolved by [`resolve_header`]; then the lines of `file`
/// (`--header-file`), one header per line, `#` comments. Errors say which header or line is
/// wrong, never its text.
pub fn resolve_headers(
    typed: &[String],
    file: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<Header>, MonitorError> {
    let mut headers = Vec::new();
    let resolve = |text: &str, origin: &str| resolve_header(text, origin, &env);
    for (i, text) in typed.iter().enumerate() {
        headers.push(resolve(text, &format!("--header #{}", i + 1))?);
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| MonitorError::Invalid(format!("cannot read --header-file {}: {e}", path.display())))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if !line.is_empty() && !line.starts_with('#') {
                headers.push(resolve(line, &format!("--header-file {} line {}", path.display(), i + 1))?);
            }
        }
    }
    Ok(headers)
}

/// A cron schedule override: five fields (minute hour day-of-month month day-of-week), checked
/// by `croner` (a maintained cron parser), so `99 * * * *` and `*/0 * * * *` are refused with the
/// parser's reason. Returns the schedule with single spaces.
pub fn validate_schedule(text: &str) -> Result<String, MonitorError> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let bad = |why: String| {
        MonitorError::Invalid(format!(
            "invalid schedule `{text}`: {why}; use a five-field cron expression such as '*/5 * * * *'"
        ))
    };
    if fields.len() != 5 {
        return Err(bad(format!("it has {} fields", fields.len())));
    }
    let schedule = fields.join(" ");
    parse_cron(&schedule).map_err(bad)?;
    Ok(schedule)
}

fn parse_cron(schedule: &str) -> Result<croner::Cron, String> {
    schedule.parse::<croner::Cron>().map_err(|e| e.to_string())
}

/// The next `count` times a valid schedule fires after `after`, in UTC.
pub fn next_runs(
    schedule: &str,
    after: chrono::DateTime<chrono::Utc>,
    count: usize,
) -> Vec<chrono::DateTime<chrono::Utc>> {
    parse_cron(schedule).map(|cron| cron.iter_after(after).take(count).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_rules() {
        assert_eq!("majority".parse::<DownRule>().unwrap(), DownRule::Majority);
        assert_eq!("at-least:2".parse::<DownRule>().unwrap(), DownRule::AtLeast(2));
        assert_eq!("at-least 2".parse::<DownRule>().unwrap(), DownRule::AtLeast(2));
        assert!("at-least:0".parse::<DownRule>().is_err());
        assert!("most".parse::<DownRule>().is_err());
        assert!(!DownRule::Majority.is_down(1, 3));
        assert!(DownRule::Majority.is_down(2, 3));
        assert!(DownRule::Any.is_down(1, 3));
        assert!(!DownRule::All.is_down(2, 3));
        assert!(DownRule::AtLeast(2).is_down(2, 3));
        assert_eq!(DownRule::AtLeast(3).to_string().parse::<DownRule>().unwrap(), DownRule::AtLeast(3));
    }

    #[test]
    fn headers() {
        let h: Header = "X-Api-Key: abc: def".parse().unwrap();
        assert_eq!((h.name.as_str(), h.value.as_str()), ("X-Api-Key", "abc: def"));
        assert!("NoColon".parse::<Header>().is_err());
        assert!("Bad Name: x".parse::<Header>().is_err());
        assert!("X: a\r\nInjected: b".parse::<Header>().is_err());
        assert!(validate_schedule("*/5 * * * *").is_ok());
        assert!(validate_schedule("every minute").is_err());
        for bad in ["99 * * * *", "*/0 * * * *", "* * * * * *", "* 24 * * *", "* * 32 * *"] {
            assert!(validate_schedule(bad).is_err(), "{bad} accepted");
        }
        let after = chrono::DateTime::parse_from_rfc3339("2026-11-29T00:02:30Z").unwrap().to_utc();
        let runs: Vec<String> =
            next_runs("*/5 * * * *", after, 3).iter().map(|t| t.format("%H:%M").to_string()).collect();
        assert_eq!(runs, ["00:05", "00:10", "00:15"]);
    }

    #[test]
    fn malformed_headers_are_refused_without_their_text() {
        for text in ["Authorization=Bearer s3cret", "Authorization Bearer s3cret: x", "X: s3cret\r\nY: z"] {
            let err = text.parse::<Header>().unwrap_err().to_string();
            assert!(!err.contains("s3cret"), "{err}");
        }
        let typed = ["Accept: */*".to_string(), "Authorization=Bearer s3cret".to_string()];
        let err = resolve_headers(&typed, None, |_| None).unwrap_err().to_string();
        assert!(err.starts_with("--header #2: ") && !err.contains("s3cret"), "{err}");
    }

    #[test]
    fn header_values_from_files_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "Bearer from-file\n").unwrap();
        let list = dir.path().join("headers");
        std::fs::write(&list, "# credentials\nX-Api-Key: env:API_KEY\n\nAccept: text/html\n").unwrap();
        let typed = [format!("Authorization: @{}", token.display())];
        let env = |name: &str| (name == "API_KEY").then(|| "from-env".to_string());
        let headers = resolve_headers(&typed, Some(&list), env).unwrap();
        let pairs: Vec<(&str, &str)> = headers.iter().map(|h| (h.name.as_str(), h.value.as_str())).collect();
        assert_eq!(pairs, [("Authorization", "Bearer from-file"), ("X-Api-Key", "from-env"), ("Accept", "text/html")]);
        let err = resolve_headers(&["X-Api-Key: env:MISSING".into()], None, |_| None).unwrap_err().to_string();
        assert!(err.contains("MISSING") && err.contains("not set"), "{err}");
        std::fs::write(&list, "X-Api-Key s3cret\n").unwrap();
        let err = resolve_headers(&[], Some(&list), |_| None).unwrap_err().to_string();
        assert!(err.contains("line 1") && !err.contains("s3cret"), "{err}");
    }

    #[test]
    fn credential_headers_are_masked_in_stored_config_and_debug() {
        let config = serde_json::json!({
            "method": "GET",
            "headers": [{"name": "X-Api-Key", "value": "k3y"}, {"name": "Accept", "value": "text/html"}],
        });
        let masked = masked_config(&config);
        assert_eq!(masked["headers"][0]["value"], MASKED);
        assert_eq!(masked["headers"][1]["value"], "text/html");
        assert_eq!(masked["method"], "GET");
        let h: Header = "Authorization: Bearer s3cret".parse().unwrap();
        assert!(!format!("{h:?}").contains("s3cret"));
    }
}
