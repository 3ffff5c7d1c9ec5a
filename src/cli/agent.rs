//! `geoctl agent`: run the worker of one region, or check a running one.

use std::time::Duration;

use clap::Subcommand;

use super::Context;
use crate::agent::{self, job::ProbeMode, AgentOptions};
use crate::config::AgentFlags;
use crate::duration::{self, BareUnit};
use crate::error::input_error;
use crate::error::Context as _;

use crate::probe::{self, HttpSpec, ProbeOptions, ProbeSpec};
use crate::queue::{Lane, RegionQueue};
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

// The values are resolved with every other setting (`config::Settings::resolve`: flag >
// environment > `agent:` in the config file > default), so clap only collects the flags' text.

#[derive(Debug, clap::Args)]
struct HealthArgs {
    /// The agent's readiness endpoint [env: AGENT_HEALTH_URL] [default: http://127.0.0.1:3001/health/ready]
    #[arg(long)]
    url: Option<String>,
    /// Longest wait for the answer
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The region whose queue this agent runs (`monitor-<CODE>`) [env: WORKER_REGION]
    #[arg(long, value_name = "CODE")]
    region: Option<String>,
    /// Jobs run at once [env: MAX_CONCURRENT_EXECUTIONS] [default: 10]
    #[arg(long)]
    concurrency: Option<String>,
    /// A job's lock; after a crash its job runs again once the lock expired [env: AGENT_LOCK_DURATION] [default: 30s]
    #[arg(long)]
    lock_duration: Option<String>,
    /// How often jobs with expired locks are looked for [env: AGENT_STALLED_INTERVAL] [default: the lock duration]
    #[arg(long)]
    stalled_interval: Option<String>,
    /// Address of /health/live, /health/ready and /metrics (`:PORT` = every interface) [env: AGENT_LISTEN] [default: :3001]
    #[arg(long)]
    listen: Option<String>,
    /// Where results wait while PostgreSQL is unreachable (keep it on a volume) [env: AGENT_SPOOL_DIR] [default: /var/lib/geoctl/spool]
    #[arg(long)]
    spool_dir: Option<String>,
    /// Most results kept in the spool; past it the oldest are dropped (and counted) [env: AGENT_SPOOL_MAX] [default: 100000]
    #[arg(long)]
    spool_max: Option<String>,
    /// On SIGTERM/SIGINT, how long jobs in flight may take to finish [env: AGENT_SHUTDOWN_TIMEOUT] [default: 30s]
    #[arg(long)]
    shutdown_timeout: Option<String>,
    /// Reconcile the queue with the database this often (also done at start and after Redis comes back) [env: AGENT_RESYNC_INTERVAL] [default: 5m]
    #[arg(long)]
    resync_interval: Option<String>,
    /// Log format on stderr: text or json [env: LOG_FORMAT] [default: text]
    #[arg(long)]
    log_format: Option<String>,
    /// Work on the region's browser queue (`browser-<CODE>`: synthetic scripts with browser steps),
    /// not its plain one; needs Chromium (CHROMIUM_PATH or on PATH) [env: AGENT_BROWSER]
    #[arg(long)]
    browser: bool,
    /// With --browser: journeys at once, each its own Chromium [env: AGENT_BROWSER_CONCURRENCY]
    /// [default: the memory limit of the agent's cgroup less 128 MiB, per 320 MiB; 2 without a limit]
    #[arg(long)]
    browser_concurrency: Option<String>,
    /// Benchmarks only: every check succeeds at once without touching the network
    #[arg(long, hide = true)]
    instant_probe: bool,
}

impl Args {
    /// Whether this runs the agent itself (a long-running service), not a sub-command.
    pub fn is_service(&self) -> bool {
        self.command.is_none()
    }

    /// The flags given, for the configuration resolver.
    pub fn flags(&self) -> AgentFlags {
        let r = &self.run;
        AgentFlags {
            region: r.region.clone(),
            concurrency: r.concurrency.clone(),
            lock_duration: r.lock_duration.clone(),
            stalled_interval: r.stalled_interval.clone(),
            listen: r.listen.clone(),
            spool_dir: r.spool_dir.clone(),
            spool_max: r.spool_max.clone(),
            shutdown_timeout: r.shutdown_timeout.clone(),
            resync_interval: r.resync_interval.clone(),
            log_format: r.log_format.clone(),
            health_url: match &self.command {
                Some(Command::Health(h)) => h.url.clone(),
                None => None,
            },
            browser: r.browser.then(|| "true".to_string()),
            browser_concurrency: r.browser_concurrency.clone(),
        }
    }
}

pub async fn run(ctx: &Context, args: Args) -> crate::error::Result<()> {
    match args.command {
        Some(Command::Health(health)) => check_health(ctx, health).await,
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
    let settings = &ctx.settings.agent;
    let region = settings
        .region
        .as_ref()
        .map(|r| r.value.clone())
        .ok_or_else(|| input_error("no region; pass --region CODE or set WORKER_REGION"))?;
    if settings.concurrency.value == 0 {
        return Err(input_error("--concurrency (MAX_CONCURRENT_EXECUTIONS) must be at least 1"));
    }
    let geo = std::sync::Arc::new(ctx.geo()?);
    let pool = ctx.pool().await?;
    {
        let mut tx = pool.begin().await.context("reading the regions")?;
        RegionStore::require_active(&mut tx, std::slice::from_ref(&region)).await?;
    }
    let browser = settings.browser.value;
    let concurrency = if browser {
        if crate::synthetic::browser::find_chromium().is_none() {
            return Err(input_error(
                "--browser needs Chromium: set CHROMIUM_PATH or put chromium on PATH (the image of \
                 `geoctl image build --with-browser` has it)",
            ));
        }
        match &settings.browser_concurrency {
            Some(n) if n.value == 0 => {
                return Err(input_error("--browser-concurrency (AGENT_BROWSER_CONCURRENCY) must be at least 1"))
            }
            Some(n) => n.value,
            None => agent::browser_concurrency(agent::cgroup_memory_limit()),
        }
    } else {
        settings.concurrency.value
    };
    let lane = if browser { Lane::Browser } else { Lane::Plain };
    let queue = RegionQueue::open_lane(&ctx.settings, &region, lane).await?;
    let lock_duration = settings.lock_duration.value;
    let options = AgentOptions {
        region,
        concurrency,
        lock_duration,
        stalled_interval: settings.stalled_interval.as_ref().map_or(lock_duration, |s| s.value),
        listen: settings.listen.value,
        spool_dir: settings.spool_dir.value.clone(),
        spool_max: settings.spool_max.value,
        shutdown_timeout: settings.shutdown_timeout.value,
        resync_interval: settings.resync_interval.value,
        probe_mode: if args.instant_probe { ProbeMode::Instant } else { ProbeMode::Real },
        geo,
    };
    Ok(agent::run(options, queue, pool).await?)
}

/// Asks the agent's readiness endpoint, with the probe engine (the image has no curl).
async fn check_health(ctx: &Context, args: HealthArgs) -> crate::error::Result<()> {
    let url = &ctx.settings.agent.health_url.value;
    let spec = HttpSpec::parse(url).map_err(|e| input_error(format!("--url {url}: {e}")))?;
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
    Err(crate::error::failed(format!("agent at {url} is not ready: {why}")))
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    duration::parse(text, BareUnit::Seconds)
}
