//! `geoctl agent`: run the worker of one region, or check a running one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Subcommand, ValueEnum};

use super::Context;
use crate::agent::{self, job::ProbeMode, AgentOptions};
use crate::duration::{self, BareUnit};
use crate::error::input_error;
use crate::error::Context as _;
use crate::probe::{self, HttpSpec, ProbeOptions, ProbeSpec};
use crate::queue::{RedisEndpoint, RegionQueue};
use crate::region::RegionStore;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Exit 0 when a running agent says it is ready (its Redis and PostgreSQL
    /// reachable), 1 otherwise: the container healthcheck, no curl needed
    Health(HealthArgs),
}

#[derive(Debug, clap::Args)]
struct HealthArgs {
    /// The agent's readiness endpoint
    #[arg(long, env = "AGENT_HEALTH_URL", default_value = "http://127.0.0.1:3001/health/ready")]
    url: String,
    /// Longest wait for the answer
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The region whose queue this agent runs (`monitor-<CODE>`)
    #[arg(long, env = "WORKER_REGION", value_name = "CODE")]
    region: Option<String>,
    /// Jobs run at once
    #[arg(long, env = "MAX_CONCURRENT_EXECUTIONS", default_value_t = 10)]
    concurrency: usize,
    /// A job's lock; after a crash its job runs again once the lock expired
    #[arg(long, env = "AGENT_LOCK_DURATION", default_value = "30s", value_parser = parse_duration)]
    lock_duration: Duration,
    /// How often jobs with expired locks are looked for [default: the lock duration]
    #[arg(long, env = "AGENT_STALLED_INTERVAL", value_parser = parse_duration)]
    stalled_interval: Option<Duration>,
    /// Address of /health/live, /health/ready and /metrics (`:PORT` = every interface)
    #[arg(long, env = "AGENT_LISTEN", default_value = ":3001", value_parser = parse_listen)]
    listen: SocketAddr,
    /// Where results wait while PostgreSQL is unreachable (keep it on a volume)
    #[arg(long, env = "AGENT_SPOOL_DIR", default_value = "/var/lib/geoctl/spool")]
    spool_dir: PathBuf,
    /// Most results kept in the spool; past it the oldest are dropped (and counted)
    #[arg(long, env = "AGENT_SPOOL_MAX", default_value_t = 100_000)]
    spool_max: usize,
    /// On SIGTERM/SIGINT, how long jobs in flight may take to finish
    #[arg(long, env = "AGENT_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    shutdown_timeout: Duration,
    /// Reconcile the queue with the database this often (also done at start and after Redis comes back)
    #[arg(long, env = "AGENT_RESYNC_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    resync_interval: Duration,
    /// Log format on stderr
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Benchmarks only: every check succeeds at once without touching the network
    #[arg(long, hide = true)]
    instant_probe: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Args {
    /// How the agent logs; `None` for the sub-commands, which log like any command.
    pub fn log_format(&self) -> Option<LogFormat> {
        self.command.is_none().then_some(self.run.log_format)
    }
}

pub async fn run(ctx: &Context, args: Args) -> crate::error::Result<()> {
    match args.command {
        Some(Command::Health(health)) => check_health(health).await,
        None => run_agent(ctx, args.run).await,
    }
}

/// Runs the agent and logs, at error level and as its last line, why it exits: the signal that
/// stopped it or the error that ended it (a panic is logged by [`agent::log_panics`]), so a task
/// or bench agent that is gone leaves its cause in its log.
async fn run_agent(ctx: &Context, args: RunArgs) -> crate::error::Result<()> {
    agent::log_panics();
    match start_agent(ctx, args).await {
        Ok(signal) => {
            tracing::error!(signal, "agent exiting: received {signal}");
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "agent exiting: {e:#}");
            Err(e)
        }
    }
}

async fn start_agent(ctx: &Context, args: RunArgs) -> crate::error::Result<&'static str> {
    let region = args.region.ok_or_else(|| input_error("no region; pass --region CODE or set WORKER_REGION"))?;
    if args.concurrency == 0 {
        return Err(input_error("--concurrency (MAX_CONCURRENT_EXECUTIONS) must be at least 1"));
    }
    let geo = std::sync::Arc::new(ctx.geo()?);
    let pool = ctx.pool().await?;
    {
        let mut tx = pool.begin().await.context("reading the regions")?;
        RegionStore::require_active(&mut tx, std::slice::from_ref(&region)).await?;
    }
    let endpoint = RedisEndpoint::resolve(&ctx.settings, &region)?;
    let queue = RegionQueue::connect(&endpoint, &ctx.settings.tuning).await?;
    let options = AgentOptions {
        region,
        concurrency: args.concurrency,
        lock_duration: args.lock_duration,
        stalled_interval: args.stalled_interval.unwrap_or(args.lock_duration),
        listen: args.listen,
        spool_dir: args.spool_dir,
        spool_max: args.spool_max,
        shutdown_timeout: args.shutdown_timeout,
        resync_interval: args.resync_interval,
        probe_mode: if args.instant_probe { ProbeMode::Instant } else { ProbeMode::Real },
        geo,
    };
    Ok(agent::run(options, queue, pool).await?)
}

/// Asks the agent's readiness endpoint, with the probe engine (the image has no curl).
async fn check_health(args: HealthArgs) -> crate::error::Result<()> {
    let spec = HttpSpec::parse(&args.url).map_err(|e| input_error(format!("--url {}: {e}", args.url)))?;
    let result =
        probe::run(&ProbeSpec::Http(spec), &ProbeOptions { timeout: args.timeout, ..ProbeOptions::default() }).await;
    if result.up {
        println!("ready");
        return Ok(());
    }
    let why = match (result.http.as_ref().and_then(|h| h.status), &result.failure) {
        (Some(status), _) => format!("HTTP {status}"),
        (None, Some(failure)) => failure.message.clone(),
        (None, None) => "no answer".into(),
    };
    Err(crate::error::failed(format!("agent at {} is not ready: {why}", args.url)))
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    duration::parse(text, BareUnit::Seconds)
}

/// `:3001` → every interface, port 3001; otherwise `HOST:PORT`.
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let full = if text.starts_with(':') { format!("0.0.0.0{text}") } else { text.to_string() };
    full.parse()
        .map_err(|_| format!("`{text}` is not an address; use :PORT or HOST:PORT, e.g. :3001 or 127.0.0.1:3001"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen(":3001").unwrap(), "0.0.0.0:3001".parse().unwrap());
        assert_eq!(parse_listen("127.0.0.1:9").unwrap(), "127.0.0.1:9".parse().unwrap());
        assert!(parse_listen("3001").is_err());
    }
}
