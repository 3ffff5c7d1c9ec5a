//! `geoctl probe TARGET`: one check from here, now, with its phase table —
//! what an operator reaches for instead of `curl -w`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use comfy_table::Table;

use super::checks::{parse_interval, parse_type, CheckOptions};
use super::Context;
use crate::error::{input_error, TargetDown};
use crate::monitor::check::spec_from_config;
use crate::monitor::MonitorType;
use crate::output::{or_dash, Printer};
use crate::probe::{self, HttpVersion, IpPreference, ProbeOptions, ProbeResult, ProbeSpec};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// URL (http/https), HOST:PORT (tcp), or a host name with --type ping|dns
    target: String,
    /// http, tcp, ping or dns [default: http for URLs, tcp for HOST:PORT]
    #[arg(long = "type", value_parser = parse_type)]
    kind: Option<MonitorType>,
    #[command(flatten)]
    checks: CheckOptions,
    /// Bound on the whole check
    #[arg(long, value_parser = parse_interval, default_value = "10s", allow_hyphen_values = true)]
    timeout: Duration,
    /// Use IPv4 addresses only
    #[arg(long, short = '4', conflicts_with = "ipv6")]
    ipv4: bool,
    /// Use IPv6 addresses only
    #[arg(long, short = '6')]
    ipv6: bool,
    /// Speak HTTP/1.1 only (http)
    #[arg(long = "http1.1", conflicts_with = "http2")]
    http1: bool,
    /// Speak HTTP/2 only (http; cleartext http:// with prior knowledge)
    #[arg(long)]
    http2: bool,
    /// Check every address the name resolves to (http); down if any is down
    #[arg(long)]
    all_addresses: bool,
    /// Redirects to follow (http; 0 = judge the 3xx itself)
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=20))]
    max_redirects: Option<u32>,
    /// Extra trusted CA certificate, PEM (http)
    #[arg(long, value_name = "PEM_FILE")]
    cacert: Option<PathBuf>,
    /// Resolver IP:PORT instead of the system's
    #[arg(long, value_name = "IP:PORT")]
    nameserver: Option<SocketAddr>,
    /// Echo requests to send (ping)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    count: Option<u32>,
    /// Up when the port is closed (tcp)
    #[arg(long)]
    expect_closed: bool,
}

/// The type a target implies when `--type` is not given.
fn infer_kind(target: &str) -> Result<MonitorType, anyhow::Error> {
    if target.contains("://") {
        return Ok(MonitorType::Http);
    }
    let looks_like_host_port = target.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && port.parse::<u16>().is_ok() && (!host.contains(':') || host.ends_with(']'))
    });
    if looks_like_host_port {
        return Ok(MonitorType::Tcp);
    }
    Err(input_error(format!(
        "cannot tell what kind of check `{target}` is; pass --type ping|dns|tcp|http, or a URL such as https://{target}/"
    )))
}

pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let kind = match args.kind {
        Some(kind) => kind,
        None => infer_kind(&args.target)?,
    };
    if args.timeout.is_zero() || args.timeout > crate::monitor::MAX_TIMEOUT {
        return Err(input_error("--timeout must be above 0 and at most 2m"));
    }
    let only = |applies: MonitorType, option: &str, set: bool| {
        if set && kind != applies {
            Err(input_error(format!("{option} applies to {} checks only", applies.short())))
        } else {
            Ok(())
        }
    };
    only(MonitorType::Http, "--all-addresses", args.all_addresses)?;
    only(MonitorType::Http, "--max-redirects", args.max_redirects.is_some())?;
    only(MonitorType::Http, "--cacert", args.cacert.is_some())?;
    only(MonitorType::Http, "--http1.1", args.http1)?;
    only(MonitorType::Http, "--http2", args.http2)?;
    only(MonitorType::Ping, "--count", args.count.is_some())?;
    only(MonitorType::Tcp, "--expect-closed", args.expect_closed)?;

    let config = args.checks.into_settings()?.into_config(kind, &args.target)?;
    let mut spec = spec_from_config(kind, &args.target, &config)?;
    match &mut spec {
        ProbeSpec::Http(http) => {
            http.probe_all_addresses = args.all_addresses;
            http.version = match (args.http1, args.http2) {
                (true, _) => HttpVersion::Http1,
                (_, true) => HttpVersion::Http2,
                _ => HttpVersion::Auto,
            };
            if let Some(n) = args.max_redirects {
                http.max_redirects = n;
            }
            if let Some(path) = &args.cacert {
                let pem = std::fs::read(path)
                    .with_context(|| format!("reading --cacert {}", path.display()))
                    .map_err(|e| input_error(format!("{e:#}")))?;
                http.extra_root_ca_pem = Some(pem);
            }
        }
        ProbeSpec::Ping(ping) => {
            if let Some(count) = args.count {
                ping.count = count;
            }
        }
        ProbeSpec::Tcp(tcp) => tcp.expect_closed = args.expect_closed,
        ProbeSpec::Dns(_) => {}
    }
    let options = ProbeOptions {
        nameserver: args.nameserver,
        ip_preference: match (args.ipv4, args.ipv6) {
            (true, _) => IpPreference::V4,
            (_, true) => IpPreference::V6,
            _ => IpPreference::Any,
        },
        timeout: args.timeout,
    };
    if let Some(conflict) = spec.literal_conflict(options.ip_preference) {
        return Err(input_error(conflict));
    }
    let result = probe::run(&spec, &options).await;
    ctx.printer.print(&result, |p| result_tables(p, &result))?;
    match &result.failure {
        None if result.up => Ok(()),
        failure => Err(TargetDown(format!(
            "{} is down: {}",
            result.target,
            failure.as_ref().map_or_else(|| "check failed".to_string(), ToString::to_string)
        ))
        .into()),
    }
}

/// Milliseconds with the precision that matters: sub-millisecond times keep three decimals.
pub fn ms(value: Option<f64>) -> String {
    match value {
        None => "-".into(),
        Some(v) if v < 10.0 => format!("{v:.3} ms"),
        Some(v) => format!("{v:.1} ms"),
    }
}

/// The phase table (duration and cumulative time of each phase) and the facts.
pub fn result_tables(p: &Printer, r: &ProbeResult) -> Vec<Table> {
    let mut phases = p.table(["PHASE", "TIME", "CUMULATIVE"]);
    let t = r.timeline.as_ref();
    let rows = [
        ("dns", r.phases.dns_ms, t.and_then(|t| t.namelookup_ms)),
        ("connect", r.phases.connect_ms, t.and_then(|t| t.connect_ms)),
        ("tls", r.phases.tls_ms, t.and_then(|t| t.tls_ms)),
        ("first byte", r.phases.first_byte_ms, t.and_then(|t| t.first_byte_ms)),
        ("total", Some(r.phases.total_ms), Some(r.phases.total_ms)),
    ];
    for (name, duration, cumulative) in rows {
        phases.add_row([name.to_string(), ms(duration), ms(cumulative)]);
    }

    let mut facts = p.table(["FACT", "VALUE"]);
    let state = if r.up { "up" } else { "down" };
    facts.add_row(vec!["result".into(), p.status_cell(state)]);
    facts.add_row(["target".to_string(), r.target.clone()]);
    let address = match (&r.resolved_address, &r.ip_family) {
        (Some(ip), Some(family)) => format!("{ip} ({family})"),
        (ip, _) => or_dash(ip.as_ref()),
    };
    facts.add_row(["address".to_string(), address]);
    if let Some(http) = &r.http {
        facts.add_row(["status".to_string(), or_dash(http.status)]);
        facts.add_row(["http version".to_string(), or_dash(http.version.as_ref())]);
        let size = match (&http.content_encoding, http.decoded_size) {
            (Some(coding), Some(decoded)) => format!("{} bytes {coding}, {decoded} bytes decoded", http.response_size),
            _ => format!("{} bytes", http.response_size),
        };
        facts.add_row(["response size".to_string(), size]);
        facts.add_row(["redirects".to_string(), http.redirects.to_string()]);
        facts.add_row([
            "certificate expires".to_string(),
            or_dash(http.cert_expires_at.map(|t| t.format("%Y-%m-%d %H:%M UTC"))),
        ]);
        if let Some(cdn) = &http.cdn {
            facts.add_row(["cdn".to_string(), format!("{:?}", cdn)]);
        }
    }
    if let Some(ping) = &r.ping {
        facts.add_row([
            "packets".to_string(),
            format!("{} sent, {} received ({:.0}% loss)", ping.sent, ping.received, ping.loss_pct),
        ]);
        facts.add_row([
            "rtt min/avg/max".to_string(),
            format!("{} / {} / {}", ms(ping.min_ms), ms(ping.avg_ms), ms(ping.max_ms)),
        ]);
    }
    if let Some(dns) = &r.dns {
        facts.add_row(["rcode".to_string(), or_dash(dns.rcode.as_ref())]);
        facts
            .add_row(["answers".to_string(), if dns.answers.is_empty() { "-".into() } else { dns.answers.join(", ") }]);
        facts.add_row(["resolver".to_string(), or_dash(dns.resolver.as_ref())]);
    }
    if let Some(failure) = &r.failure {
        facts.add_row(["failure".to_string(), format!("{}: {}", failure.kind, failure.message)]);
    }
    let mut tables = vec![phases, facts];
    if !r.per_address.is_empty() {
        let mut per = p.table(["ADDRESS", "RESULT", "CONNECT", "TLS", "FIRST BYTE", "TOTAL", "FAILURE"]);
        for a in &r.per_address {
            per.add_row(vec![
                a.address.to_string().into(),
                p.status_cell(if a.up { "up" } else { "down" }),
                ms(a.phases.connect_ms).into(),
                ms(a.phases.tls_ms).into(),
                ms(a.phases.first_byte_ms).into(),
                ms(Some(a.phases.total_ms)).into(),
                or_dash(a.failure.as_ref()).into(),
            ]);
        }
        tables.push(per);
    }
    tables
}
