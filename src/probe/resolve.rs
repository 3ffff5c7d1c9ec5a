//! Host name resolution honouring `/etc/hosts`, with an optional explicit
//! nameserver `ip:port`.
//!
//! Every lookup asks a nameserver (nothing is cached or shared between
//! checks) so that the DNS phase of every check is really measured. A
//! multi-label name asks through the [`super::stub`] resolver: one question
//! per family on a socket of its own. Single labels (search domains),
//! `localhost` and names in `/etc/hosts` go through a fresh hickory resolver.
//! Reading the system configuration (`/etc/resolv.conf`, `/etc/hosts`) costs
//! more than a local lookup, so it is read once per [`SYSTEM_CONF_TTL`] and reused.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ProtocolConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::Name;
use hickory_resolver::TokioResolver;

use super::stub::{self, StubError};
use super::{FailureKind, IpPreference, ProbeOptions};

/// Outcome of resolving a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Addresses of the wanted family, in resolver order.
    pub addrs: Vec<IpAddr>,
    /// Time spent resolving; `None` for IP literals.
    pub dns: Option<Duration>,
}

/// Resolution failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("resolving `{host}` timed out after {} ms", elapsed.as_millis())]
    Timeout { host: String, elapsed: Duration },
    #[error("resolving `{host}` failed: {message}")]
    Failed { host: String, message: String, elapsed: Duration },
    #[error("`{host}` has no {family} address")]
    NoAddress { host: String, family: &'static str, elapsed: Duration },
    #[error("resolver configuration error: {0}")]
    Config(String),
}

/// Only reached when resolving is a step of a command (not a probe's own result, which
/// records the failure instead of returning it).
impl crate::error::Coded for ResolveError {
    fn exit(&self) -> crate::error::Exit {
        crate::error::Exit::Failed
    }
}

impl ResolveError {
    pub fn kind(&self) -> FailureKind {
        match self {
            ResolveError::Timeout { .. } => FailureKind::Timeout,
            _ => FailureKind::Dns,
        }
    }

    /// How long the lookup took to get its (failing) answer, the DNS phase of a check that
    /// failed there. A lookup that timed out got no answer and measured nothing: its phase is
    /// absent, as it is when the check's own timeout ends the lookup first (whichever of the two
    /// timers fires first must not change what the result says).
    pub fn elapsed(&self) -> Option<Duration> {
        match self {
            ResolveError::Failed { elapsed, .. } | ResolveError::NoAddress { elapsed, .. } => Some(*elapsed),
            ResolveError::Timeout { .. } | ResolveError::Config(_) => None,
        }
    }
}

/// Parse an IP literal, accepting IPv6 in brackets.
pub fn ip_literal(host: &str) -> Option<IpAddr> {
    let h = host.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(host);
    h.parse().ok()
}

/// How long the system resolver configuration is reused before it is read again.
pub const SYSTEM_CONF_TTL: Duration = Duration::from_secs(30);

/// What the system says about resolving, read at most once per [`SYSTEM_CONF_TTL`].
struct SystemConf {
    config: ResolverConfig,
    options: ResolverOpts,
    /// The nameservers the stub asks over UDP.
    udp_servers: Arc<Vec<SocketAddr>>,
    /// Lower-case names `/etc/hosts` gives addresses to (without a trailing dot).
    hosts: HashSet<String>,
}

fn system_conf() -> Result<Arc<SystemConf>, String> {
    type Cached = Option<(Instant, Arc<SystemConf>)>;
    static CONF: OnceLock<Mutex<Cached>> = OnceLock::new();
    let mut cached = CONF.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some((read_at, conf)) = cached.as_ref() {
        if read_at.elapsed() < SYSTEM_CONF_TTL {
            return Ok(conf.clone());
        }
    }
    let (config, options) = hickory_resolver::system_conf::read_system_conf().map_err(|e| e.to_string())?;
    let udp_servers = config
        .name_servers()
        .iter()
        .flat_map(|ns| {
            ns.connections
                .iter()
                .filter(|c| matches!(c.protocol, ProtocolConfig::Udp))
                .map(|c| SocketAddr::new(ns.ip, c.port))
        })
        .collect();
    let hosts = std::fs::read_to_string("/etc/hosts").map(|text| hosts_names(&text)).unwrap_or_default();
    let conf = Arc::new(SystemConf { config, options, udp_servers: Arc::new(udp_servers), hosts });
    *cached = Some((Instant::now(), conf.clone()));
    Ok(conf)
}

/// The names a hosts file gives addresses to, lower case.
fn hosts_names(text: &str) -> HashSet<String> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .flat_map(|line| line.split_whitespace().skip(1))
        .map(|name| name.trim_end_matches('.').to_ascii_lowercase())
        .collect()
}

/// How long a question waits before it is asked again, and how many rounds over the nameservers a
/// lookup makes, whichever resolver asks: the system's `options timeout:` and `attempts:` (5 s and
/// 2 when unset, as glibc and Go use), the wait shortened so that every round fits in the check's
/// timeout. A lost UDP question is thus asked again, as any resolver does, instead of holding the
/// check until its timeout and failing it.
fn retransmit(check_timeout: Duration, system: Option<&ResolverOpts>) -> (Duration, usize) {
    let defaults = ResolverOpts::default();
    let system = system.unwrap_or(&defaults);
    let attempts = system.attempts.clamp(1, 5);
    let wait = system.timeout.min(check_timeout / attempts as u32);
    (wait.clamp(Duration::from_millis(50), Duration::from_secs(30)), attempts)
}

/// Build a resolver. `nameserver` overrides the system configuration (UDP
/// with TCP fallback on that `ip:port`, no search domains).
pub(crate) fn build_resolver(
    nameserver: Option<SocketAddr>,
    use_hosts: bool,
    timeout: Duration,
    strategy: LookupIpStrategy,
) -> Result<TokioResolver, String> {
    let provider = TokioRuntimeProvider::default();
    let mut system = None;
    let mut builder = match nameserver {
        Some(ns) => {
            let mut server = NameServerConfig::udp_and_tcp(ns.ip());
            server.connections = vec![ConnectionConfig::udp(), ConnectionConfig::tcp()];
            for c in &mut server.connections {
                c.port = ns.port();
            }
            TokioResolver::builder_with_config(ResolverConfig::from_name_servers(vec![server]), provider)
        }
        None => {
            let conf = system_conf()?;
            let mut builder = TokioResolver::builder_with_config(conf.config.clone(), provider);
            *builder.options_mut() = conf.options.clone();
            system = Some(conf);
            builder
        }
    };
    let o: &mut ResolverOpts = builder.options_mut();
    (o.timeout, o.attempts) = retransmit(timeout, system.as_ref().map(|c| &c.options));
    o.cache_size = 0;
    o.ip_strategy = strategy;
    o.use_hosts_file = if use_hosts { ResolveHosts::Always } else { ResolveHosts::Never };
    builder.build().map_err(|e| e.to_string())
}

/// The system's first configured nameserver, for reporting.
pub(crate) fn system_nameserver() -> Option<SocketAddr> {
    let conf = system_conf().ok()?;
    let ns = conf.config.name_servers().first()?;
    let port = ns.connections.first().map(|c| c.port).unwrap_or(53);
    Some(SocketAddr::new(ns.ip, port))
}

/// Human message for a hickory error.
pub(crate) fn net_error_message(e: &NetError) -> String {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(nr)) => {
            format!("no records ({})", super::dns::rcode_name(nr.response_code))
        }
        other => other.to_string(),
    }
}

pub(crate) fn is_timeout(e: &NetError) -> bool {
    matches!(e, NetError::Timeout)
}

/// Resolve `host` (a name or IP literal) to addresses allowed by the
/// preference in `opts`. IP literals are returned as-is without a lookup.
pub async fn resolve_host(host: &str, opts: &ProbeOptions) -> Result<Resolved, ResolveError> {
    if let Some(ip) = ip_literal(host) {
        return Ok(Resolved { addrs: vec![ip], dns: None });
    }
    if let Some((name, upstream)) = stub_question(host, opts) {
        let start = Instant::now();
        let res = stub::lookup(&name, opts.ip_preference, &upstream).await;
        let elapsed = start.elapsed();
        let host = host.to_string();
        let family = family_name(opts.ip_preference);
        return match res {
            Ok(addrs) => Ok(Resolved { addrs, dns: Some(elapsed) }),
            Err(StubError::Timeout) => Err(ResolveError::Timeout { host, elapsed }),
            Err(StubError::NoRecords(ResponseCode::NoError)) => Err(ResolveError::NoAddress { host, family, elapsed }),
            Err(StubError::NoRecords(code)) => {
                let message = format!("no records ({})", super::dns::rcode_name(code));
                Err(ResolveError::Failed { host, message, elapsed })
            }
            Err(StubError::Failed(message)) => Err(ResolveError::Failed { host, message, elapsed }),
        };
    }
    let strategy = match opts.ip_preference {
        IpPreference::Any => LookupIpStrategy::Ipv4AndIpv6,
        IpPreference::V4 => LookupIpStrategy::Ipv4Only,
        IpPreference::V6 => LookupIpStrategy::Ipv6Only,
    };
    let resolver = build_resolver(opts.nameserver, true, opts.timeout, strategy).map_err(ResolveError::Config)?;
    // Fully-qualify multi-label names so search domains don't add queries.
    let query = if host.contains('.') && !host.ends_with('.') { format!("{host}.") } else { host.to_string() };
    let start = Instant::now();
    let res = resolver.lookup_ip(query.as_str()).await;
    let elapsed = start.elapsed();
    match res {
        Ok(lookup) => {
            let mut addrs: Vec<IpAddr> = Vec::new();
            for ip in lookup.iter() {
                if opts.ip_preference.allows(&ip) && !addrs.contains(&ip) {
                    addrs.push(ip);
                }
            }
            if addrs.is_empty() {
                return Err(ResolveError::NoAddress {
                    host: host.to_string(),
                    family: family_name(opts.ip_preference),
                    elapsed,
                });
            }
            Ok(Resolved { addrs, dns: Some(elapsed) })
        }
        Err(e) if is_timeout(&e) => Err(ResolveError::Timeout { host: host.to_string(), elapsed }),
        Err(NetError::Dns(DnsError::NoRecordsFound(nr)))
            if nr.response_code == hickory_resolver::proto::op::ResponseCode::NoError =>
        {
            Err(ResolveError::NoAddress { host: host.to_string(), family: family_name(opts.ip_preference), elapsed })
        }
        Err(e) => Err(ResolveError::Failed { host: host.to_string(), message: net_error_message(&e), elapsed }),
    }
}

/// The question the stub asks for `host` and where, or `None` when hickory's resolver must answer: a
/// single label (search domains apply), `localhost`, a name in `/etc/hosts`, no UDP nameserver.
fn stub_question(host: &str, opts: &ProbeOptions) -> Option<(Name, stub::Upstream)> {
    let bare = host.trim_end_matches('.');
    if !bare.contains('.') {
        return None;
    }
    // Names are mostly written in lower case already: a copy only when one is not.
    let lower = match bare.bytes().any(|b| b.is_ascii_uppercase()) {
        true => std::borrow::Cow::Owned(bare.to_ascii_lowercase()),
        false => std::borrow::Cow::Borrowed(bare),
    };
    if lower == "localhost" || lower.ends_with(".localhost") {
        return None;
    }
    // The hosts file is the system's even when the nameserver is not.
    let conf = system_conf().ok();
    if conf.as_ref().is_some_and(|c| c.hosts.contains(lower.as_ref())) {
        return None;
    }
    let servers = match opts.nameserver {
        Some(ns) => Arc::new(vec![ns]),
        None => conf.as_ref().map(|c| c.udp_servers.clone()).filter(|servers| !servers.is_empty())?,
    };
    let name = Name::from_ascii(format!("{bare}.")).ok()?;
    // The system's options go with the system's nameservers.
    let system = conf.as_ref().filter(|_| opts.nameserver.is_none()).map(|c| &c.options);
    let (timeout, attempts) = retransmit(opts.timeout, system);
    Some((name, stub::Upstream { servers, timeout, attempts }))
}

fn family_name(p: IpPreference) -> &'static str {
    match p {
        IpPreference::Any => "IP",
        IpPreference::V4 => "IPv4",
        IpPreference::V6 => "IPv6",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_question_is_asked_again_before_the_check_gives_up() {
        let s = Duration::from_secs;
        // glibc's defaults (5 s, 2 rounds) when the system sets nothing.
        assert_eq!(retransmit(s(30), None), (s(5), 2));
        assert_eq!(retransmit(s(10), None), (s(5), 2));
        // Shortened so both rounds fit in a shorter check.
        assert_eq!(retransmit(s(3), None), (Duration::from_millis(1500), 2));
        // The system's `options timeout:1 attempts:3`.
        let mut system = ResolverOpts::default();
        (system.timeout, system.attempts) = (s(1), 3);
        assert_eq!(retransmit(s(10), Some(&system)), (s(1), 3));
        // Never a wait so short that an answer on a slow link cannot arrive, nor endless rounds.
        assert_eq!(retransmit(Duration::from_millis(40), None), (Duration::from_millis(50), 2));
        system.attempts = 100;
        assert_eq!(retransmit(s(10), Some(&system)).1, 5);
    }
}
