//! `geoctl probe TARGET`: one check from here, now, with its phase table —
//! what an operator reaches for instead of `curl -w`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::checks::{parse_interval, parse_type, CheckOptions};
use super::Context;
use crate::cli::output::{flow_tables, located_tables, route_tables, Located};
use crate::error::Context as _;
use crate::error::{input_error, TargetDown};
use crate::monitor::check::spec_from_config;
use crate::monitor::settings::CheckSettings;
use crate::monitor::MonitorType;
use crate::probe::{self, trace, FailureKind, HttpVersion, IpPreference, ProbeOptions, ProbeSpec};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// URL (http/https), HOST:PORT (tcp), or a host name with --type ping|dns
    #[arg(required_unless_present = "script")]
    target: Option<String>,
    /// http, tcp, ping, dns, synthetic (a --script), or trace (the route, hop by hop) [default: http for URLs,
    /// tcp for HOST:PORT, synthetic with --script]
    #[arg(long = "type", value_parser = parse_probe_type)]
    kind: Option<ProbeType>,
    /// The YAML script of a synthetic check (see examples/synthetic.yaml); `-` reads stdin
    #[arg(long, value_name = "FILE", conflicts_with = "target")]
    script: Option<PathBuf>,
    /// Give up a trace after this many hops (trace; 1-64) [default: 30]
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=i64::from(trace::MAX_HOPS)))]
    max_hops: Option<u8>,
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

/// A check of a monitor's type, or a route trace (not a monitor type of its own:
/// monitors trace with `--trace-every`).
#[derive(Debug, Clone, Copy)]
enum ProbeType {
    Check(MonitorType),
    Trace,
}

fn parse_probe_type(text: &str) -> Result<ProbeType, String> {
    if text.trim().eq_ignore_ascii_case("trace") {
        Ok(ProbeType::Trace)
    } else {
        parse_type(text).map(ProbeType::Check).map_err(|e| format!("{e}, or trace"))
    }
}

/// The type a target implies when `--type` is not given.
fn infer_kind(target: &str) -> crate::error::Result<MonitorType> {
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

pub async fn run(ctx: &Context, args: Args) -> crate::error::Result<()> {
    if args.timeout.is_zero() || args.timeout > crate::monitor::MAX_TIMEOUT {
        return Err(input_error("--timeout must be above 0 and at most 2m"));
    }
    let kind = match (args.kind, &args.script) {
        (Some(ProbeType::Check(MonitorType::Synthetic)) | None, Some(_)) => return run_synthetic(ctx, args).await,
        (Some(_), Some(_)) => return Err(input_error("--script goes with --type synthetic")),
        (Some(ProbeType::Check(MonitorType::Synthetic)), None) => {
            return Err(input_error("--type synthetic needs --script FILE (see examples/synthetic.yaml)"))
        }
        (Some(ProbeType::Trace), None) => return run_trace(ctx, args).await,
        (Some(ProbeType::Check(kind)), None) => kind,
        (None, None) => infer_kind(target_of(&args))?,
    };
    let target = target_of(&args).to_string();
    if args.max_hops.is_some() {
        return Err(input_error("--max-hops applies to --type trace only"));
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

    let geo = ctx.geo()?;
    let options = probe_options(&args);
    let settings = args.checks.into_settings()?;
    if settings.trace_every.is_some() {
        return Err(input_error("--trace-every applies to monitors; trace once with --type trace"));
    }
    let config = settings.into_config(kind, &target)?;
    let mut spec = spec_from_config(kind, &target, &config)?;
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
    if let Some(conflict) = spec.literal_conflict(options.ip_preference) {
        return Err(input_error(conflict));
    }
    let result = probe::run(&spec, &options).await;
    let target = result.resolved_address.and_then(|ip| geo.lookup(ip));
    let shown = Located::new(&result, geo.is_configured(), target.as_ref());
    ctx.printer.print(&shown, |p| located_tables(p, &shown))?;
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

fn target_of(args: &Args) -> &str {
    args.target.as_deref().unwrap_or_default()
}

/// The options a synthetic flow does not take.
fn single_check_options(args: &Args) -> [(&'static str, bool); 8] {
    [
        ("--all-addresses", args.all_addresses),
        ("--max-redirects", args.max_redirects.is_some()),
        ("--cacert", args.cacert.is_some()),
        ("--http1.1", args.http1),
        ("--http2", args.http2),
        ("--count", args.count.is_some()),
        ("--expect-closed", args.expect_closed),
        ("--max-hops", args.max_hops.is_some()),
    ]
}

/// `geoctl probe --type synthetic --script FILE`: the script's steps once, from here, each with
/// its outcome and time. `env.*` and `secret.*` come from this shell.
async fn run_synthetic(ctx: &Context, args: Args) -> crate::error::Result<()> {
    if let Some((option, _)) = single_check_options(&args).iter().find(|(_, set)| *set) {
        return Err(input_error(format!("{option} does not apply to --type synthetic (set it in the script)")));
    }
    let mut options = crate::synthetic::RunOptions::new(args.timeout);
    options.probe = probe_options(&args);
    if args.checks.into_settings()? != CheckSettings::default() {
        return Err(input_error(
            "check settings (--method, --keyword, --trace-every, …) do not apply to --type synthetic; set them in the script",
        ));
    }
    let path = args.script.as_deref().expect("run_synthetic is called with --script");
    let text = crate::synthetic::script::read(path)?;
    let script = crate::synthetic::Script::parse(&text)?;
    let flow = crate::synthetic::flow::run(&script, &options).await;
    let mut flow = flow;
    if let Some(png) = flow.screenshot.take() {
        let failing = flow.steps.iter_mut().find(|s| s.failure.is_some());
        let file = std::env::temp_dir()
            .join(format!("geoctl-screenshot-{}.png", flow.started_at.format("%Y%m%dT%H%M%S%.3fZ")));
        match std::fs::write(&file, &png) {
            Ok(()) => {
                if let Some(step) = failing {
                    step.screenshot = Some(file.display().to_string());
                }
            }
            Err(e) => crate::cli::output::note(format!("could not write the screenshot to {}: {e}", file.display())),
        }
    }
    ctx.printer.print(&flow, |p| flow_tables(p, &flow))?;
    match &flow.failure {
        None => Ok(()),
        Some(failure) => Err(TargetDown(format!("synthetic check failed: {failure}")).into()),
    }
}

/// Resolver, address family and time bound, as the flags set them.
fn probe_options(args: &Args) -> ProbeOptions {
    ProbeOptions {
        nameserver: args.nameserver,
        ip_preference: match (args.ipv4, args.ipv6) {
            (true, _) => IpPreference::V4,
            (_, true) => IpPreference::V6,
            _ => IpPreference::Any,
        },
        timeout: args.timeout,
    }
}

/// `geoctl probe HOST --type trace`: the hops to HOST, each with its address,
/// round trips and (with GEOIP_ASN_DB) network.
async fn run_trace(ctx: &Context, args: Args) -> crate::error::Result<()> {
    let options = probe_options(&args);
    let set = single_check_options(&args);
    if let Some((option, _)) = set.iter().filter(|(o, _)| *o != "--max-hops").find(|(_, set)| *set) {
        return Err(input_error(format!("{option} does not apply to --type trace")));
    }
    if args.checks.into_settings()? != CheckSettings::default() {
        return Err(input_error("check settings (--method, --keyword, --trace-every, …) do not apply to --type trace"));
    }
    let geo = ctx.geo()?;
    let mut spec =
        trace::TraceSpec::parse(args.target.as_deref().unwrap_or_default()).map_err(|e| input_error(e.to_string()))?;
    if let Some(max_hops) = args.max_hops {
        spec.max_hops = max_hops;
    }
    let mut route = trace::run(&spec, &options).await;
    for hop in &mut route.hops {
        hop.asn = hop.address.and_then(|ip| geo.asn(ip));
    }
    if let Some(failure) = route.failure.as_ref().filter(|f| f.kind == FailureKind::NotPermitted) {
        return Err(input_error(format!("cannot trace: {}", failure.message)));
    }
    ctx.printer.print(&route, |p| route_tables(p, &route))?;
    if route.reached {
        Ok(())
    } else {
        Err(TargetDown(format!(
            "{} not reached: {}",
            route.target,
            route.failure.as_ref().map_or_else(|| "no answer".to_string(), ToString::to_string)
        ))
        .into())
    }
}
