//! DNS probe: query one record type for a name and compare the answers.
//!
//! The name is queried as a fully-qualified name (no search domains) and
//! `/etc/hosts` is NOT consulted. The resolver is `DnsSpec::resolver`, else
//! `ProbeOptions::nameserver`, else the system configuration.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Instant;

use chrono::Utc;
use hickory_resolver::config::LookupIpStrategy;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RecordType as HRecordType;
use serde::{Deserialize, Serialize};

use super::resolve::{build_resolver, is_timeout, net_error_message, system_nameserver};
use super::timing::{ms, Clock};
use super::{Failure, FailureKind, ProbeKind, ProbeOptions, ProbeResult, TargetError};

/// Record types supported by DNS checks.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RecordType {
    A,
    AAAA,
    CNAME,
    MX,
    TXT,
    NS,
    SOA,
    PTR,
    SRV,
    CAA,
}

impl RecordType {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::A => "A",
            RecordType::AAAA => "AAAA",
            RecordType::CNAME => "CNAME",
            RecordType::MX => "MX",
            RecordType::TXT => "TXT",
            RecordType::NS => "NS",
            RecordType::SOA => "SOA",
            RecordType::PTR => "PTR",
            RecordType::SRV => "SRV",
            RecordType::CAA => "CAA",
        }
    }

    fn to_hickory(self) -> HRecordType {
        match self {
            RecordType::A => HRecordType::A,
            RecordType::AAAA => HRecordType::AAAA,
            RecordType::CNAME => HRecordType::CNAME,
            RecordType::MX => HRecordType::MX,
            RecordType::TXT => HRecordType::TXT,
            RecordType::NS => HRecordType::NS,
            RecordType::SOA => HRecordType::SOA,
            RecordType::PTR => HRecordType::PTR,
            RecordType::SRV => HRecordType::SRV,
            RecordType::CAA => HRecordType::CAA,
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecordType {
    type Err = TargetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_uppercase().as_str() {
            "A" => RecordType::A,
            "AAAA" => RecordType::AAAA,
            "CNAME" => RecordType::CNAME,
            "MX" => RecordType::MX,
            "TXT" => RecordType::TXT,
            "NS" => RecordType::NS,
            "SOA" => RecordType::SOA,
            "PTR" => RecordType::PTR,
            "SRV" => RecordType::SRV,
            "CAA" => RecordType::CAA,
            _ => return Err(TargetError::UnsupportedRecordType(s.trim().to_string())),
        })
    }
}

/// A DNS check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSpec {
    pub name: String,
    pub record_type: RecordType,
    /// Each expected value must be among the answers (order/case-insensitive,
    /// trailing dots and TXT quotes ignored). Empty: any non-empty answer is ok.
    pub expected: Vec<String>,
    /// Resolver `ip:port` to query; overrides `ProbeOptions::nameserver`.
    pub resolver: Option<SocketAddr>,
}

impl DnsSpec {
    pub fn new(name: impl Into<String>, record_type: RecordType) -> Self {
        DnsSpec { name: name.into(), record_type, expected: Vec::new(), resolver: None }
    }

    /// `name`, `name TYPE` or `name/TYPE`.
    pub fn parse(target: &str) -> Result<Self, TargetError> {
        let s = target.trim();
        if s.is_empty() {
            return Err(TargetError::Empty);
        }
        let (name, rtype) = match s.split_once(|c: char| c == '/' || c.is_whitespace()) {
            Some((n, t)) => (n.trim(), t.trim().parse::<RecordType>()?),
            None => (s, RecordType::A),
        };
        if super::check_hostname(name.trim_end_matches('.'), true).is_err() {
            return Err(TargetError::InvalidHost(name.to_string()));
        }
        Ok(DnsSpec::new(name, rtype))
    }
}

/// Facts from a DNS check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsFacts {
    pub record_type: RecordType,
    /// Answers of the requested type, in presentation format.
    pub answers: Vec<String>,
    /// Response code, e.g. `NOERROR`, `NXDOMAIN`; `None` if no response.
    pub rcode: Option<String>,
    pub resolution_ms: f64,
    /// Resolver queried (`ip:port`), if known.
    pub resolver: Option<String>,
}

/// Conventional upper-case mnemonic of a response code.
pub(crate) fn rcode_name(code: ResponseCode) -> String {
    match code {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        other => format!("{other:?}").to_ascii_uppercase(),
    }
}

fn normalize(s: &str) -> String {
    let s = s.trim();
    let s = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')).unwrap_or(s);
    s.trim_end_matches('.').to_ascii_lowercase()
}

/// Run a DNS check.
pub async fn run(spec: &DnsSpec, opts: &ProbeOptions) -> ProbeResult {
    let started_at = Utc::now();
    let clock = Clock::start();
    let target = format!("{} {}", spec.name, spec.record_type);
    let mut r = ProbeResult::new(ProbeKind::Dns, target, started_at);
    let ns = spec.resolver.or(opts.nameserver);
    let resolver_label = ns.or_else(system_nameserver).map(|s| s.to_string());
    let mut facts = DnsFacts {
        record_type: spec.record_type,
        answers: Vec::new(),
        rcode: None,
        resolution_ms: 0.0,
        resolver: resolver_label,
    };
    let resolver = match build_resolver(ns, false, opts.timeout, LookupIpStrategy::Ipv4thenIpv6) {
        Ok(res) => res,
        Err(e) => {
            r.failure = Some(Failure::new(FailureKind::Dns, format!("resolver setup failed: {e}")));
            r.dns = Some(facts);
            r.phases.total_ms = clock.elapsed_ms();
            return r;
        }
    };
    let name = if spec.name.ends_with('.') { spec.name.clone() } else { format!("{}.", spec.name) };
    let t0 = Instant::now();
    let res = tokio::time::timeout(opts.timeout, resolver.lookup(name.as_str(), spec.record_type.to_hickory())).await;
    let elapsed = t0.elapsed();
    facts.resolution_ms = ms(elapsed);
    r.phases.dns_ms = Some(ms(elapsed));

    let outcome: Result<(), Failure> = match res {
        Err(_) => {
            Err(Failure::new(FailureKind::Timeout, format!("no DNS answer within {} ms", opts.timeout.as_millis())))
        }
        Ok(Err(e)) => {
            if let NetError::Dns(DnsError::NoRecordsFound(nr)) = &e {
                facts.rcode = Some(rcode_name(nr.response_code));
            } else if let NetError::Dns(DnsError::ResponseCode(code)) = &e {
                facts.rcode = Some(rcode_name(*code));
            }
            let kind = if is_timeout(&e) { FailureKind::Timeout } else { FailureKind::Dns };
            Err(Failure::new(
                kind,
                format!("{} {} lookup failed: {}", spec.name, spec.record_type, net_error_message(&e)),
            ))
        }
        Ok(Ok(lookup)) => {
            facts.rcode = Some(rcode_name(lookup.message().metadata.response_code));
            let want = spec.record_type.to_hickory();
            facts.answers = lookup
                .answers()
                .iter()
                .filter(|rec| rec.record_type() == want)
                .map(|rec| rec.data.to_string())
                .collect();
            if facts.answers.is_empty() {
                Err(Failure::new(FailureKind::Dns, format!("no {} records for {}", spec.record_type, spec.name)))
            } else {
                let got: Vec<String> = facts.answers.iter().map(|a| normalize(a)).collect();
                let missing: Vec<&String> = spec.expected.iter().filter(|e| !got.contains(&normalize(e))).collect();
                if missing.is_empty() {
                    Ok(())
                } else {
                    Err(Failure::new(
                        FailureKind::DnsMismatch,
                        format!("expected {} {:?} but got {:?}", spec.record_type, missing, facts.answers),
                    ))
                }
            }
        }
    };
    match outcome {
        Ok(()) => r.up = true,
        Err(f) => r.failure = Some(f),
    }
    r.dns = Some(facts);
    r.phases.total_ms = clock.elapsed_ms();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_targets() {
        assert_eq!(DnsSpec::parse("example.com").unwrap(), DnsSpec::new("example.com", RecordType::A));
        assert_eq!(DnsSpec::parse("example.com MX").unwrap().record_type, RecordType::MX);
        assert_eq!(DnsSpec::parse("example.com/aaaa").unwrap().record_type, RecordType::AAAA);
        assert_eq!(
            DnsSpec::parse("example.com/XYZ").unwrap_err().to_string(),
            "unsupported DNS record type `XYZ`; use one of A, AAAA, CNAME, MX, TXT, NS, SOA, PTR, SRV, CAA"
        );
        assert!(matches!(DnsSpec::parse("bad..name"), Err(TargetError::InvalidHost(_))));
    }

    #[test]
    fn normalization() {
        assert_eq!(normalize("\"v=spf1 -all\""), "v=spf1 -all");
        assert_eq!(normalize("Mail.Example.com."), "mail.example.com");
    }
}
