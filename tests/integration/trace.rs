//! Route traces through network namespaces this test creates: this machine →
//! router r1 → router r2 → host dst, over veth pairs, in 198.18.0.0/15 (the
//! range RFC 2544 sets aside for tests). `probe --type trace` must find the
//! hops Debian's `traceroute -n` finds, record a silent hop as null, and keep
//! to its hop limit and time bound. Needs root: `scripts/test` as root sets
//! `GEOCTL_TEST_ROUTES=required`, and then not being root fails them; without
//! it they skip with a message.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::agent::harness::{wait_until, Agent, Redis};
use crate::mmdb;
use crate::support::{geoctl_in, requirement_unmet, TestDb};

fn run(args: &[&str]) -> std::process::Output {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// The chain of namespaces, removed when dropped.
struct Bed {
    /// The third octet of every address of this bed: 198.18.<k>.0/24.
    k: u32,
    names: [String; 3],
    host_link: String,
}

impl Bed {
    /// A new chain, or `None` (the test skips) when not root and the run does not require it.
    fn new() -> Option<Bed> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            requirement_unmet("GEOCTL_TEST_ROUTES", "route tests create network namespaces and need root");
            return None;
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let k = (std::process::id() * 7 + n) % 250 + 1;
        let tag = format!("g{}x{n}", std::process::id() % 100_000);
        let names = ["r1", "r2", "dst"].map(|role| format!("{tag}{role}"));
        let bed = Bed { k, host_link: format!("{tag}h"), names };
        bed.build();
        Some(bed)
    }

    fn ip(&self, host: u32) -> String {
        format!("198.18.{}.{host}", self.k)
    }

    fn target(&self) -> String {
        self.ip(130)
    }

    /// The IPv6 twin of [`Bed::ip`]: link `link` (0 host–r1, 1 r1–r2, 2 r2–dst) in fd12:<k>:<link>::/64.
    fn ip6(&self, link: u32, host: u32) -> String {
        let ip: std::net::Ipv6Addr = format!("fd12:{:x}:{link}::{host}", self.k).parse().unwrap();
        ip.to_string()
    }

    fn target6(&self) -> String {
        self.ip6(2, 2)
    }

    fn ns(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// Runs a command inside namespace `i`.
    fn exec(&self, i: usize, args: &[&str]) {
        let mut all = vec!["ip", "netns", "exec", self.ns(i)];
        all.extend_from_slice(args);
        run(&all);
    }

    fn build(&self) {
        let [r1, r2, dst] = [0, 1, 2].map(|i| self.ns(i).to_string());
        for ns in [&r1, &r2, &dst] {
            run(&["ip", "netns", "add", ns]);
        }
        // host ↔ r1 in .0/26, r1 ↔ r2 in .64/26, r2 ↔ dst in .128/26.
        run(&["ip", "link", "add", &self.host_link, "type", "veth", "peer", "name", "up0", "netns", &r1]);
        run(&["ip", "-n", &r1, "link", "add", "down0", "type", "veth", "peer", "name", "up0", "netns", &r2]);
        run(&["ip", "-n", &r2, "link", "add", "down0", "type", "veth", "peer", "name", "up0", "netns", &dst]);
        let addr = |ns: Option<&str>, dev: &str, host: u32| {
            let cidr = format!("{}/26", self.ip(host));
            match ns {
                None => run(&["ip", "addr", "add", &cidr, "dev", dev]),
                Some(ns) => run(&["ip", "-n", ns, "addr", "add", &cidr, "dev", dev]),
            };
        };
        addr(None, &self.host_link, 1);
        addr(Some(&r1), "up0", 2);
        addr(Some(&r1), "down0", 65);
        addr(Some(&r2), "up0", 66);
        addr(Some(&r2), "down0", 129);
        addr(Some(&dst), "up0", 130);
        // The same chain in IPv6, without duplicate address detection (for the
        // link-local addresses too) so that neighbour discovery works at once:
        // the lower end of each link is ::1, the upper ::2.
        run(&["sysctl", "-qw", &format!("net.ipv6.conf.{}.accept_dad=0", self.host_link)]);
        for (ns, devs) in [(&r1, &["up0", "down0"][..]), (&r2, &["up0", "down0"]), (&dst, &["up0"])] {
            for dev in devs {
                run(&["ip", "netns", "exec", ns, "sysctl", "-qw", &format!("net.ipv6.conf.{dev}.accept_dad=0")]);
            }
        }
        let addr6 = |ns: Option<&str>, dev: &str, link: u32, host: u32| {
            let cidr = format!("{}/64", self.ip6(link, host));
            match ns {
                None => run(&["ip", "-6", "addr", "add", &cidr, "dev", dev, "nodad"]),
                Some(ns) => run(&["ip", "-n", ns, "-6", "addr", "add", &cidr, "dev", dev, "nodad"]),
            };
        };
        addr6(None, &self.host_link, 0, 1);
        addr6(Some(&r1), "up0", 0, 2);
        addr6(Some(&r1), "down0", 1, 1);
        addr6(Some(&r2), "up0", 1, 2);
        addr6(Some(&r2), "down0", 2, 1);
        addr6(Some(&dst), "up0", 2, 2);
        run(&["ip", "link", "set", &self.host_link, "up"]);
        for (ns, devs) in [(&r1, &["lo", "up0", "down0"][..]), (&r2, &["lo", "up0", "down0"]), (&dst, &["lo", "up0"])] {
            for dev in devs {
                run(&["ip", "-n", ns, "link", "set", dev, "up"]);
            }
        }
        run(&["ip", "route", "add", &format!("198.18.{}.0/24", self.k), "via", &self.ip(2)]);
        run(&["ip", "-n", &r1, "route", "add", &format!("{}/26", self.ip(128)), "via", &self.ip(66)]);
        run(&["ip", "-n", &r2, "route", "add", &format!("{}/26", self.ip(0)), "via", &self.ip(65)]);
        run(&["ip", "-n", &dst, "route", "add", "default", "via", &self.ip(129)]);
        let net6 = format!("fd12:{:x}::/32", self.k);
        run(&["ip", "-6", "route", "add", &net6, "via", &self.ip6(0, 2)]);
        run(&["ip", "-n", &r1, "-6", "route", "add", &format!("{}/64", self.ip6(2, 0)), "via", &self.ip6(1, 2)]);
        run(&["ip", "-n", &r2, "-6", "route", "add", &format!("{}/64", self.ip6(0, 0)), "via", &self.ip6(1, 1)]);
        run(&["ip", "-n", &dst, "-6", "route", "add", "default", "via", &self.ip6(2, 1)]);
        for i in 0..3 {
            // No ICMP rate limit: every probe gets its answer.
            self.exec(i, &["sysctl", "-qw", "net.ipv4.icmp_ratelimit=0"]);
            self.exec(i, &["sysctl", "-qw", "net.ipv6.icmp.ratelimit=0"]);
            self.exec(i, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
            self.exec(i, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
        }
    }

    /// r2 stays silent: it forwards but sends no time-exceeded.
    fn silence_r2(&self) {
        self.exec(1, &["iptables", "-A", "OUTPUT", "-p", "icmp", "--icmp-type", "time-exceeded", "-j", "DROP"]);
    }

    /// r2 forwards nothing and answers nothing: everything past r1 is silent.
    fn black_hole_at_r2(&self) {
        self.exec(1, &["iptables", "-A", "FORWARD", "-j", "DROP"]);
        self.exec(1, &["iptables", "-A", "OUTPUT", "-p", "icmp", "-j", "DROP"]);
    }

    /// The hops `traceroute -n` finds: the first address per hop, `None` for `*`.
    fn traceroute(&self) -> Vec<Option<String>> {
        self.traceroute_to(&self.target())
    }

    fn traceroute_to(&self, target: &str) -> Vec<Option<String>> {
        let out = run(&["traceroute", "-n", "-q", "1", "-w", "1", "-m", "10", target]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .map(|line| {
                let address = line.split_whitespace().nth(1).unwrap_or("*");
                (address != "*").then(|| address.to_string())
            })
            .collect()
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        // Deleting the host's end removes its peer and the routes through it.
        let _ = Command::new("ip").args(["link", "del", &self.host_link]).output();
        for ns in &self.names {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

fn trace(dir: &std::path::Path, target: &str, extra: &[&str], env: &[(&str, &str)]) -> (i32, Value, Duration) {
    let mut args = vec!["probe", target, "--type", "trace", "-o", "json"];
    args.extend_from_slice(extra);
    let started = Instant::now();
    let out = geoctl_in(dir, &args, env);
    let took = started.elapsed();
    let json = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", out.stdout, out.stderr));
    (out.code, json, took)
}

fn addresses(route: &Value) -> Vec<Option<String>> {
    route["hops"].as_array().unwrap().iter().map(|h| h["address"].as_str().map(str::to_string)).collect()
}

#[test]
fn trace_finds_the_hops_traceroute_finds() {
    let Some(bed) = Bed::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    let expected = vec![Some(bed.ip(2)), Some(bed.ip(66)), Some(bed.target())];
    assert_eq!(bed.traceroute(), expected, "the test bed itself is not as built");

    let (code, route, _) = trace(dir.path(), &bed.target(), &[], &[]);
    assert_eq!(code, 0, "{route}");
    assert_eq!(addresses(&route), expected);
    assert_eq!(route["hop_count"], 3);
    assert_eq!(route["reached"], true);
    assert_eq!(route["probes_sent"], 9);
    for hop in route["hops"].as_array().unwrap() {
        assert!(hop["rtts_ms"].as_array().unwrap().iter().all(|r| r.as_f64().is_some_and(|ms| ms > 0.0)), "{hop}");
    }

    // r2 silent: traceroute shows `*`, geoctl a hop without address; the target is still 3 hops away.
    bed.silence_r2();
    let expected = vec![Some(bed.ip(2)), None, Some(bed.target())];
    assert_eq!(bed.traceroute(), expected);
    let (code, route, _) = trace(dir.path(), &bed.target(), &[], &[]);
    assert_eq!(code, 0, "{route}");
    assert_eq!(addresses(&route), expected);
    assert_eq!(route["hop_count"], 3);
    assert_eq!(route["hops"][1]["rtts_ms"], serde_json::json!([null, null, null]));
}

#[test]
fn ipv6_traces_find_the_hops_traceroute_finds() {
    let Some(bed) = Bed::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    let expected = vec![Some(bed.ip6(0, 2)), Some(bed.ip6(1, 2)), Some(bed.target6())];
    assert_eq!(bed.traceroute_to(&bed.target6()), expected, "the IPv6 test bed itself is not as built");

    let (code, route, _) = trace(dir.path(), &bed.target6(), &[], &[]);
    assert_eq!(code, 0, "{route}");
    assert_eq!(addresses(&route), expected);
    assert_eq!(route["address"], bed.target6());
    assert_eq!((route["hop_count"].as_u64(), route["probes_sent"].as_u64()), (Some(3), Some(9)), "{route}");

    // r2 silent in IPv6 too: a hop without address, the target still third.
    bed.exec(1, &["ip6tables", "-A", "OUTPUT", "-p", "icmpv6", "--icmpv6-type", "time-exceeded", "-j", "DROP"]);
    let expected = vec![Some(bed.ip6(0, 2)), None, Some(bed.target6())];
    assert_eq!(bed.traceroute_to(&bed.target6()), expected);
    let (code, route, _) = trace(dir.path(), &bed.target6(), &[], &[]);
    assert_eq!(code, 0, "{route}");
    assert_eq!(addresses(&route), expected);
}

/// An OUTPUT rule on this machine that drops UDP to one address, removed when dropped:
/// sending there fails with EPERM, as under a firewall or seccomp policy that forbids it.
struct UdpForbidden(String);

impl UdpForbidden {
    fn to(address: &str) -> Self {
        run(&["iptables", "-I", "OUTPUT", "-d", address, "-p", "udp", "-j", "DROP"]);
        UdpForbidden(address.to_string())
    }
}

impl Drop for UdpForbidden {
    fn drop(&mut self) {
        let _ = Command::new("iptables").args(["-D", "OUTPUT", "-d", &self.0, "-p", "udp", "-j", "DROP"]).output();
    }
}

#[test]
fn tracing_where_udp_is_not_permitted_is_refused_and_nothing_is_written() {
    let Some(bed) = Bed::new() else { return };
    let db = TestDb::migrated();
    let target = bed.target();
    db.geoctl(&["monitor", "create", "--name", "walled", "--type", "ping", "--target", &target, "--trace-every", "1"])
        .success();
    let _forbidden = UdpForbidden::to(&target);

    let out = db.geoctl(&["probe", &target, "--type", "trace", "-o", "json"]);
    out.usage_error(&["cannot trace", "not permitted"]);
    // The monitor's ping still works, but its manual check cannot trace as asked: refused, not recorded.
    db.geoctl(&["monitor", "check", "walled", "--region", "us-east"]).usage_error(&["cannot trace", "walled"]);
    assert_eq!(db.count("monitor_results"), 0);
    assert_eq!(db.count("regional_performance_metrics"), 0);
}

#[test]
fn hop_limit_and_time_bound_hold() {
    let Some(bed) = Bed::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Two hops allowed, three needed: two hops probed, six packets, not reached.
    let (code, route, _) = trace(dir.path(), &bed.target(), &["--max-hops", "2"], &[]);
    assert_eq!(code, 1, "{route}");
    assert_eq!(addresses(&route), vec![Some(bed.ip(2)), Some(bed.ip(66))]);
    assert_eq!(route["probes_sent"], 6);
    assert!(route["hop_count"].is_null() && route["reached"] == false);

    // Past r1 nothing answers: the trace ends at its timeout, not after 30 silent hops.
    bed.black_hole_at_r2();
    let (code, route, took) = trace(dir.path(), &bed.target(), &["--timeout", "3s"], &[]);
    assert_eq!(code, 1, "{route}");
    assert!(took < Duration::from_millis(4_500), "took {took:?}");
    let hops = route["hops"].as_array().unwrap();
    assert_eq!(hops[0]["address"], bed.ip(2));
    assert!(hops[1..].iter().all(|h| h["address"].is_null()));
    assert!(hops.len() < 30 && route["probes_sent"].as_u64().unwrap() <= 3 * hops.len() as u64, "{route}");
    assert_eq!(route["failure"]["kind"], "timeout");
}

#[test]
fn bad_hop_limits_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["0", "65", "many"] {
        geoctl_in(dir.path(), &["probe", "127.0.0.1", "--type", "trace", "--max-hops", bad], &[])
            .usage_error(&["--max-hops"]);
    }
    geoctl_in(dir.path(), &["probe", "127.0.0.1:80", "--max-hops", "3"], &[]).usage_error(&["--type trace"]);
    geoctl_in(dir.path(), &["probe", "127.0.0.1", "--type", "trace", "--count", "3"], &[]).usage_error(&["--count"]);
}

/// City and ASN databases for the bed: its target in Singapore on AS64500, and one network per link.
fn geo_databases(bed: &Bed, dir: &std::path::Path) -> (String, String) {
    let k = bed.k as u8;
    let city = mmdb::build(
        "GeoLite2-City",
        &[(Ipv4Addr::new(198, 18, k, 130), 32, mmdb::city("SG", "Singapore", 1.2897, 103.8501))],
    );
    let asn = mmdb::build(
        "GeoLite2-ASN",
        &[
            (Ipv4Addr::new(198, 18, k, 0), 26, mmdb::asn(64510, "Access Net")),
            (Ipv4Addr::new(198, 18, k, 64), 26, mmdb::asn(64511, "Transit Net")),
            (Ipv4Addr::new(198, 18, k, 128), 26, mmdb::asn(64500, "Edge Net SG")),
        ],
    );
    let (city_path, asn_path) = (dir.join("city.mmdb"), dir.join("asn.mmdb"));
    std::fs::write(&city_path, city).unwrap();
    std::fs::write(&asn_path, asn).unwrap();
    (city_path.to_str().unwrap().to_string(), asn_path.to_str().unwrap().to_string())
}

#[test]
fn monitors_record_routes_and_the_report_shows_where_regions_landed() {
    let Some(bed) = Bed::new() else { return };
    let db = TestDb::migrated();
    let (city_path, asn_path) = geo_databases(&bed, &db.dir());
    let env = [("GEOIP_CITY_DB", city_path.as_str()), ("GEOIP_ASN_DB", asn_path.as_str())];

    let target = bed.target();
    db.geoctl(&["monitor", "create", "--name", "edge", "--type", "ping", "--target", &target, "--trace-every", "1"])
        .success();
    for region in ["us-east", "eu-west", "ap-south"] {
        db.geoctl_with(&["monitor", "check", "edge", "--region", region], &env).success();
    }
    // A manual check shows the route it traced, hop by hop, with each hop's network.
    let shown =
        db.geoctl_with(&["monitor", "check", "edge", "--region", "us-east", "-o", "json"], &env).success().json();
    assert_eq!(addresses(&shown["route"]), vec![Some(bed.ip(2)), Some(bed.ip(66)), Some(target.clone())]);
    assert_eq!(shown["route"]["hops"][1]["asn"], 64511);
    let table = db.geoctl_with(&["monitor", "check", "edge", "--region", "us-east"], &env).success().stdout;
    assert!(table.contains("HOP") && table.contains(&bed.ip(66)) && table.contains("AS64511"), "{table}");
    bed.silence_r2();
    db.geoctl_with(&["monitor", "check", "edge", "--region", "ap-south"], &env).success();

    let route: Value = serde_json::from_str(&db.scalar(
        "SELECT route_latency FROM regional_performance_metrics WHERE region_code = 'ap-south' ORDER BY checked_at DESC LIMIT 1",
    ))
    .unwrap();
    assert!(route[1].is_null(), "{route}");
    assert_eq!(route[0]["asn"], 64510);
    assert_eq!(route[2]["address"], target);
    assert_eq!(route[2]["asn"], 64500);
    assert_eq!(db.scalar("SELECT string_agg(DISTINCT hop_count::text, ',') FROM regional_performance_metrics"), "3");
    assert_eq!(db.scalar("SELECT string_agg(DISTINCT target_region, ',') FROM monitor_results"), "ap-south");

    let report = db.geoctl(&["report", "--since", "1h"]).success().stdout;
    for needle in ["Singapore, SG", "AS64500 Edge Net SG", "100%", "3.0"] {
        assert!(report.contains(needle), "report lacks {needle}:\n{report}");
    }
    eprintln!("{report}");
    let json = db.geoctl(&["report", "--since", "1h", "-o", "json"]).success().json();
    let regions = json["monitors"][0]["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 3);
    for region in regions {
        assert_eq!(region["landed"][0]["city"], "Singapore", "{region}");
        assert_eq!(region["median_hop_count"], 3.0);
    }
    let html = db.dir().join("report.html");
    db.geoctl(&["report", "--since", "1h", "--html", html.to_str().unwrap()]).success();
    let page = std::fs::read_to_string(html).unwrap();
    assert!(page.contains("Where each region reached the target") && page.contains("Singapore, SG"));
}

/// The agent records the same facts as a manual check: target facts on every result, and the
/// route on every Nth scheduled run.
#[test]
fn the_agent_records_target_facts_and_every_second_route() {
    let Some(bed) = Bed::new() else { return };
    let db = TestDb::migrated();
    let (city_path, asn_path) = geo_databases(&bed, &db.dir());
    let redis = Redis::start();
    let redis_url = redis.url(1);
    let env = [("REDIS_URL_US_EAST", redis_url.as_str())];
    let agent_env = [
        ("REDIS_URL_US_EAST", redis_url.as_str()),
        ("DATABASE_URL", db.url.as_str()),
        ("GEOIP_CITY_DB", city_path.as_str()),
        ("GEOIP_ASN_DB", asn_path.as_str()),
    ];
    let agent = Agent::start("us-east", &agent_env, &db.dir().join("us-east"), &[]);
    let target = bed.target();
    let create = [
        "monitor",
        "create",
        "--name",
        "edge",
        "--type",
        "ping",
        "--target",
        &target,
        "--every",
        "1s",
        "--force",
        "--timeout",
        "1s",
        "--regions",
        "us-east",
        "--trace-every",
        "2",
    ];
    db.geoctl_with(&create, &env).success();
    wait_until("six results from the agent", Duration::from_secs(40), || db.count("monitor_results") >= 6);
    agent.terminate(Duration::from_secs(15));

    assert_eq!(
        db.scalar("SELECT string_agg(DISTINCT coalesce(target_region, '-'), ',') FROM monitor_results"),
        "ap-south"
    );
    let facts = "SELECT string_agg(DISTINCT concat_ws('/', country_code, city, asn, isp), ',') FROM regional_performance_metrics";
    assert_eq!(db.scalar(facts), "SG/Singapore/64500/Edge Net SG");
    let (traced, untraced): (i64, i64) = (
        db.scalar("SELECT count(*) FROM regional_performance_metrics WHERE hop_count = 3").parse().unwrap(),
        db.scalar(
            "SELECT count(*) FROM regional_performance_metrics WHERE hop_count IS NULL AND route_latency IS NULL",
        )
        .parse()
        .unwrap(),
    );
    assert!(traced >= 2 && untraced >= 2, "every second run traces: {traced} traced, {untraced} not");
    assert_eq!(traced + untraced, db.count("regional_performance_metrics"));
    let route: Value = serde_json::from_str(
        &db.scalar("SELECT route_latency FROM regional_performance_metrics WHERE hop_count = 3 LIMIT 1"),
    )
    .unwrap();
    let asns: Vec<_> = route.as_array().unwrap().iter().map(|hop| hop["asn"].as_u64()).collect();
    assert_eq!(asns, [Some(64510), Some(64511), Some(64500)], "{route}");
}
