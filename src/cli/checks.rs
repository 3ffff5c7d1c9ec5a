//! Check settings shared by `monitor create|update` and `probe`, and the
//! parsers of what operators type for them.

use std::time::Duration;

use crate::duration::{self, BareUnit};
use crate::monitor::settings::{self, CheckSettings};
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
    settings::parse_method(text).map_err(|e| e.to_string())
}

pub fn parse_record_type(text: &str) -> Result<String, String> {
    settings::parse_record_type(text).map_err(|e| e.to_string())
}

impl From<CheckOptions> for CheckSettings {
    fn from(o: CheckOptions) -> Self {
        CheckSettings {
            method: o.method,
            expect_status: o.expect_status,
            keyword: o.keyword,
            keyword_absent: o.keyword_absent,
            headers: o.headers,
            record_type: o.record_type,
            expect_answers: o.expect_answers,
        }
    }
}
