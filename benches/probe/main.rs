//! The probe benchmark, driven by `scripts/bench probe`: checks per second
//! against Prometheus' blackbox_exporter, phase accuracy against `curl -w`,
//! batched result recording against one INSERT per result, and what GeoIP
//! target facts add to a check.
//!
//! The script prepares what needs root (the network namespace, the Debian
//! packages, PostgreSQL, blackbox_exporter) and runs this program's
//! subcommands; the target servers are this program too, started as separate
//! processes so that their work is not counted as the prober's. Each part
//! prints its figures and writes them as JSON; `report` joins the parts.
//!
//! Run without a subcommand (as `cargo test --all-targets` and `cargo bench`
//! do) it only checks, in a second, that a probe against its own server works.

mod accuracy;
mod blackbox;
mod geoip;
mod machine;
mod record;
mod report;
mod servers;
mod throughput;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "probe-bench", about = "geoctl probe benchmark (run it through scripts/bench probe)")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// HTTP target: answers every request with `200 ok` on a fresh connection, then closes it
    ServeHttp {
        #[arg(long)]
        listen: SocketAddr,
        /// Wait this long between reading the request and the first response byte
        #[arg(long, default_value_t = 0)]
        first_byte_delay_ms: u64,
        /// Keep the accept queue full so that each client's first SYN is dropped
        /// and connecting takes one SYN retransmission (about 1 s)
        #[arg(long)]
        slow_accept: bool,
        /// Exit after this long whatever happens
        #[arg(long, default_value_t = 900)]
        lifetime_secs: u64,
    },
    /// DNS target: answers A queries for every name under --zone with 127.0.0.1
    ServeDns {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long, default_value = "bench.test")]
        zone: String,
        /// NAME=MS: answer NAME only after MS milliseconds (repeatable)
        #[arg(long = "delay", value_parser = servers::parse_delay)]
        delays: Vec<(String, Duration)>,
        #[arg(long, default_value_t = 900)]
        lifetime_secs: u64,
    },
    /// Part 1: checks per second, geoctl against blackbox_exporter
    Throughput(throughput::Args),
    /// One load level in a process of its own (started by `throughput`)
    Load(throughput::LoadArgs),
    /// Part 2: phase times of `geoctl probe` against `curl -w`
    Accuracy(accuracy::Args),
    /// Part 3: results per second written to PostgreSQL, batched against one INSERT each
    Record(record::Args),
    /// Part 4: GeoIP lookups per second and the CPU they add to a check
    Geoip(geoip::Args),
    /// Joins the parts' JSON into one file
    Report {
        /// Part files, in order
        parts: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
}

/// The allocator `geoctl` ships with (see `src/main.rs`): the probe engine
/// measured here allocates as in `geoctl`, and the bare client shares it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    let outcome = match cli.command {
        None => smoke(),
        Some(Command::ServeHttp { listen, first_byte_delay_ms, slow_accept, lifetime_secs }) => {
            let lifetime = Duration::from_secs(lifetime_secs);
            if slow_accept {
                servers::serve_slow_accept(listen, lifetime)
            } else {
                runtime().block_on(servers::serve_http_for(
                    listen,
                    Duration::from_millis(first_byte_delay_ms),
                    lifetime,
                ))
            }
        }
        Some(Command::ServeDns { listen, zone, delays, lifetime_secs }) => {
            servers::serve_dns(listen, &zone, &delays, Duration::from_secs(lifetime_secs))
        }
        Some(Command::Throughput(args)) => runtime().block_on(throughput::run(args)),
        Some(Command::Load(args)) => runtime().block_on(throughput::load(args)),
        Some(Command::Accuracy(args)) => runtime().block_on(accuracy::run(args)),
        Some(Command::Record(args)) => runtime().block_on(record::run(args)),
        Some(Command::Geoip(args)) => geoip::run(args),
        Some(Command::Report { parts, out }) => report::join(&parts, &out),
    };
    if let Err(e) = outcome {
        eprintln!("probe bench: {e:#}");
        std::process::exit(1);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("building the Tokio runtime")
}

/// A few checks against an in-process server: proves the bench still builds
/// against the probe engine and that its server speaks HTTP, without the
/// packages and privileges the full benchmark needs.
fn smoke() -> anyhow::Result<()> {
    runtime().block_on(async {
        let listener = servers::bind_http("127.0.0.1:0".parse()?).await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(servers::serve_http(listener, Duration::ZERO));
        let url = format!("http://{addr}/");
        let outcome =
            throughput::run_geoctl_load(&url, throughput::CHECK_TIMEOUT, 4, Duration::from_millis(300), 200).await;
        server.abort();
        anyhow::ensure!(
            outcome.ok > 0 && outcome.failed == 0,
            "smoke check against {url}: {} up, {} down ({:?})",
            outcome.ok,
            outcome.failed,
            outcome.failures
        );
        println!("probe bench smoke check: {} checks up; the benchmark itself is `scripts/bench probe`", outcome.ok);
        Ok(())
    })
}
