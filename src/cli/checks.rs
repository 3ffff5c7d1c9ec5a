//! Check settings shared by `monitor create|update` and `probe`, and the
//! parsers of what operators type for them.

use std::path::PathBuf;
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
    /// Request header 'Name: value', repeatable; the value may be @FILE or env:VAR to keep it out
    /// of the process arguments; replaces all headers on update (http)
    #[arg(long = "header", value_name = "HEADER")]
    headers: Vec<String>,
    /// Request headers from a file, one 'Name: value' per line (# comments) (http)
    #[arg(long, value_name = "FILE")]
    header_file: Option<PathBuf>,
    /// Record type to query: A, AAAA, CNAME, MX, NS, TXT, SOA, CAA, SRV (dns)
    #[arg(long, value_parser = parse_record_type)]
    record_type: Option<String>,
    /// An answer the query must return, repeatable (dns)
    #[arg(long = "expect-answer")]
    expect_answers: Vec<String>,
    /// Also trace the route to the target every Nth run in each region (1 = every run)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::monitor::MAX_TRACE_EVERY)))]
    trace_every: Option<u32>,
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

/// `--header` values and `--header-file`, parsed by geoctl rather than clap, whose "invalid
/// value" error would print the (likely secret) text.
pub fn headers(typed: &[String], file: Option<&std::path::Path>) -> Result<Vec<Header>, MonitorError> {
    crate::monitor::resolve_headers(typed, file, |name| std::env::var(name).ok())
}

pub fn parse_method(text: &str) -> Result<String, String> {
    settings::parse_method(text).map_err(|e| e.to_string())
}

pub fn parse_record_type(text: &str) -> Result<String, String> {
    settings::parse_record_type(text).map_err(|e| e.to_string())
}

impl CheckOptions {
    pub fn into_settings(self) -> Result<CheckSettings, MonitorError> {
        Ok(CheckSettings {
            headers: headers(&self.headers, self.header_file.as_deref())?,
            method: self.method,
            expect_status: self.expect_status,
            keyword: self.keyword,
            keyword_absent: self.keyword_absent,
            record_type: self.record_type,
            expect_answers: self.expect_answers,
            trace_every: self.trace_every,
        })
    }
}
