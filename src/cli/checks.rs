//! Check settings shared by `monitor create|update` and `probe`, and the
//! parsers of what operators type for them.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::duration::{self, BareUnit};
use crate::monitor::{DownRule, Header, MonitorError, MonitorType, StatusRanges};

/// Type-specific check settings.
#[derive(Debug, clap::Args)]
pub struct CheckOptions {
    /// HTTP method (http)
    #[arg(long, value_parser = parse_method)]
    method: Option<String>,
    /// Accepted status codes, e.g. 200-299,301 (http)
    #[arg(long, value_parser = parse_status)]
    expect_status: Option<StatusRanges>,
    /// Text the body must contain (http)
    #[arg(long)]
    keyword: Option<String>,
    /// The keyword must be absent instead (http)
    #[arg(long, requires = "keyword")]
    keyword_absent: bool,
    /// Request header 'Name: value', repeatable; replaces all headers on update (http)
    #[arg(long = "header", value_parser = parse_header)]
    headers: Vec<Header>,
    /// Record type to query: A, AAAA, CNAME, MX, NS, TXT, SOA, CAA, SRV (dns)
    #[arg(long, value_parser = parse_record_type)]
    record_type: Option<String>,
    /// An answer the query must return, repeatable (dns)
    #[arg(long = "expect-answer")]
    expect_answers: Vec<String>,
}

pub fn parse_type(text: &str) -> Result<MonitorType, String> {
    text.parse().map_err(|e: MonitorError| e.to_string())
}

pub fn parse_interval(text: &str) -> Result<Duration, String> {
    duration::parse(text, BareUnit::Rejected)
}

pub fn parse_latency(text: &str) -> Result<i32, String> {
    let d = duration::parse(text, BareUnit::Milliseconds)?;
    if d.is_zero() || d > Duration::from_secs(600) {
        return Err("use a latency above 0 and at most 10m".into());
    }
    Ok(d.as_millis() as i32)
}

pub fn parse_rule(text: &str) -> Result<DownRule, String> {
    text.parse().map_err(|e: MonitorError| e.to_string())
}

pub fn parse_status(text: &str) -> Result<StatusRanges, String> {
    text.parse().map_err(|e: crate::probe::StatusRangesError| e.to_string())
}

pub fn parse_header(text: &str) -> Result<Header, String> {
    text.parse().map_err(|e: MonitorError| e.to_string())
}

pub fn parse_method(text: &str) -> Result<String, String> {
    let upper = text.to_ascii_uppercase();
    match upper.as_str() {
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => Ok(upper),
        _ => Err(format!("unsupported method `{text}`; use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS")),
    }
}

pub fn parse_record_type(text: &str) -> Result<String, String> {
    let upper = text.to_ascii_uppercase();
    match upper.as_str() {
        "A" | "AAAA" | "CNAME" | "MX" | "NS" | "TXT" | "SOA" | "CAA" | "SRV" | "PTR" => Ok(upper),
        _ => Err(format!("unsupported record type `{text}`; use A, AAAA, CNAME, MX, NS, TXT, SOA, CAA, SRV or PTR")),
    }
}

impl CheckOptions {
    /// The config keys these options set, after checking each applies to `kind`.
    pub fn into_config(self, kind: MonitorType, name: &str) -> Result<Map<String, Value>, MonitorError> {
        let not_for = |option: &'static str, applies: MonitorType| MonitorError::OptionNotForType {
            option,
            applies: applies.short(),
            name: name.to_string(),
            kind: kind.short(),
        };
        let mut config = Map::new();
        let http_options = [
            ("--method", self.method.is_some()),
            ("--expect-status", self.expect_status.is_some()),
            ("--keyword", self.keyword.is_some()),
            ("--header", !self.headers.is_empty()),
        ];
        let dns_options = [("--record-type", self.record_type.is_some()), ("--expect-answer", !self.expect_answers.is_empty())];
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
            config.insert("keyword".into(), keyword.into());
            config.insert("keyword_absent".into(), self.keyword_absent.into());
        }
        if !self.headers.is_empty() {
            config.insert("headers".into(), serde_json::to_value(self.headers).expect("headers serialise"));
        }
        if let Some(record_type) = self.record_type {
            config.insert("record_type".into(), record_type.into());
        }
        if !self.expect_answers.is_empty() {
            config.insert("expected_answers".into(), self.expect_answers.into());
        }
        Ok(config)
    }
}

