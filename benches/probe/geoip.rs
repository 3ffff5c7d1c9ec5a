//! Part 4: what target facts cost. Two databases of the GeoIP2 City and ASN
//! layouts (written here, tens of thousands of networks each) are opened as
//! geoctl opens them; the figure is lookups per second (both databases, one
//! check's worth each) and the CPU each check gains, from the process's own
//! CPU clock.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;

use geoctl::geo::GeoDb;

#[path = "../../tests/integration/mmdb.rs"]
#[allow(dead_code)]
mod mmdb;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Networks (/24s) in each database
    #[arg(long, default_value_t = 50_000)]
    networks: u32,
    /// Lookups to time
    #[arg(long, default_value_t = 2_000_000)]
    lookups: u32,
    #[arg(long)]
    json: PathBuf,
}

/// This process's CPU time (user + system), in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// The /24 number `i` of 10.0.0.0/8 and 100.64.0.0/10, spread so the tree is not one path.
fn network(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000 + (i.wrapping_mul(2_654_435_761) % 65_536) * 256)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut seen = std::collections::HashSet::new();
    let nets: Vec<Ipv4Addr> = (0..args.networks).map(network).filter(|n| seen.insert(*n)).collect();
    let city: Vec<_> = nets
        .iter()
        .enumerate()
        .map(|(i, n)| (*n, 24, mmdb::city("SG", &format!("City {i}"), 1.0 + (i % 80) as f64, 100.0)))
        .collect();
    let asn: Vec<_> =
        nets.iter().enumerate().map(|(i, n)| (*n, 24, mmdb::asn(64_512 + i as u32 % 1000, "Bench Net"))).collect();
    let (city_path, asn_path) = (dir.path().join("city.mmdb"), dir.path().join("asn.mmdb"));
    std::fs::write(&city_path, mmdb::build("GeoLite2-City", &city))?;
    std::fs::write(&asn_path, mmdb::build("GeoLite2-ASN", &asn))?;
    let opened = Instant::now();
    let geo = GeoDb::open(Some(&city_path), Some(&asn_path))?;
    let open_ms = opened.elapsed().as_secs_f64() * 1e3;

    let addresses: Vec<std::net::IpAddr> = (0..4096u32)
        .map(|i| std::net::IpAddr::V4(Ipv4Addr::from(u32::from(nets[i as usize % nets.len()]) + (i % 250))))
        .collect();
    let mut found = 0u64;
    let (wall, cpu) = (Instant::now(), cpu_seconds());
    for i in 0..args.lookups {
        if geo.lookup(addresses[i as usize % addresses.len()]).is_some() {
            found += 1;
        }
    }
    let (wall, cpu) = (wall.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    anyhow::ensure!(found == u64::from(args.lookups), "{found} of {} lookups found their network", args.lookups);
    let per_second = f64::from(args.lookups) / wall;
    let cpu_per_check_us = cpu / f64::from(args.lookups) * 1e6;
    println!(
        "part 4: GeoIP lookups (city + ASN, {} networks each): {} lookups/s, {:.3} µs CPU added per check, \
         databases opened in {open_ms:.1} ms",
        nets.len(),
        crate::report::fmt_rate(per_second),
        cpu_per_check_us
    );
    crate::report::write_part(
        &args.json,
        &json!({ "geoip": {
            "networks_per_database": nets.len(),
            "lookups": args.lookups,
            "lookups_per_second": per_second,
            "cpu_us_per_check": cpu_per_check_us,
            "open_ms": open_ms,
        }}),
    )
}
