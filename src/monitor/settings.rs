//! Type-specific check settings (method, expected status, keyword, headers,
//! DNS record type and answers) and their home in the `config` column.

use serde_json::{Map, Value};

use super::{Header, MonitorError, MonitorType, StatusRanges};

/// What a check looks for beyond "is it reachable", per type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckSettings {
    pub method: Option<String>,
    pub expect_status: Option<StatusRanges>,
    pub keyword: Option<String>,
    pub keyword_absent: bool,
    pub headers: Vec<Header>,
    pub record_type: Option<String>,
    pub expect_answers: Vec<String>,
    /// Trace the route every Nth run in each region.
    pub trace_every: Option<u32>,
}

/// The probe's rule ([`crate::probe::http::parse_method`]), which synthetic steps share.
pub fn parse_method(text: &str) -> Result<String, MonitorError> {
    crate::probe::http::parse_method(text).map_err(MonitorError::Invalid)
}

pub fn parse_record_type(text: &str) -> Result<String, MonitorError> {
    let upper = text.to_ascii_uppercase();
    match upper.as_str() {
        "A" | "AAAA" | "CNAME" | "MX" | "NS" | "TXT" | "SOA" | "CAA" | "SRV" | "PTR" => Ok(upper),
        _ => Err(MonitorError::Invalid(format!(
            "unsupported record type `{text}`; use A, AAAA, CNAME, MX, NS, TXT, SOA, CAA, SRV or PTR"
        ))),
    }
}

impl CheckSettings {
    /// The `config` keys these settings set, after checking each applies to `kind`.
    pub fn into_config(self, kind: MonitorType, name: &str) -> Result<Map<String, Value>, MonitorError> {
        let not_for = |option: &'static str, applies: MonitorType| MonitorError::OptionNotForType {
            option,
            applies: applies.short(),
            name: name.to_string(),
            kind: kind.short(),
        };
        let mut config = Map::new();
        let http_options = [
            ("method", self.method.is_some()),
            ("expect_status", self.expect_status.is_some()),
            ("keyword", self.keyword.is_some()),
            ("headers", !self.headers.is_empty()),
        ];
        let dns_options =
            [("record_type", self.record_type.is_some()), ("expect_answers", !self.expect_answers.is_empty())];
        if kind != MonitorType::Http {
            if let Some((option, _)) = http_options.iter().find(|(_, set)| *set) {
                return Err(not_for(option, MonitorType::Http));
            }
        }
        if kind != MonitorType::Dns {
            if let Some((option, _)) = dns_options.iter().find(|(_, set)| *set) {
                return Err(not_for(option, MonitorType::Dns));
            }
        }
        if let Some(method) = self.method {
            config.insert("method".into(), method.into());
        }
        if let Some(status) = self.expect_status {
            config.insert("expected_status".into(), status.to_string().into());
        }
        if let Some(keyword) = self.keyword {
            crate::text::check("--keyword", &keyword, crate::text::MAX_KEYWORD).map_err(MonitorError::Invalid)?;
            config.insert("keyword".into(), keyword.into());
            config.insert("keyword_absent".into(), self.keyword_absent.into());
        }
        if !self.headers.is_empty() {
            config.insert("headers".into(), serde_json::to_value(self.headers).expect("headers serialise"));
        }
        if let Some(record_type) = self.record_type {
            config.insert("record_type".into(), record_type.into());
        }
        for answer in &self.expect_answers {
            crate::text::check("--expect-answer", answer, crate::text::MAX_ANSWER).map_err(MonitorError::Invalid)?;
        }
        if !self.expect_answers.is_empty() {
            config.insert("expected_answers".into(), self.expect_answers.into());
        }
        if let Some(n) = self.trace_every {
            if !(1..=super::MAX_TRACE_EVERY).contains(&n) {
                return Err(MonitorError::Invalid(format!(
                    "trace_every of monitor `{name}` is {n}: it must be 1 (every run) to {}",
                    super::MAX_TRACE_EVERY
                )));
            }
            if kind == MonitorType::Dns {
                return Err(MonitorError::Invalid(format!(
                    "--trace-every does not apply to dns monitor `{name}`: it checks a resolver, not a route"
                )));
            }
            config.insert("trace_every".into(), n.into());
        }
        Ok(config)
    }
}
