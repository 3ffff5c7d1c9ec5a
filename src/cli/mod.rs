//! The command line: global flags, dispatch, and the one place errors turn
//! into messages and exit codes.

mod agent;
mod alerter;
mod backup;
mod channel;
mod checks;
mod completions;
mod config;
mod dashboard;
mod db;
mod dns;
mod each;
mod health;
mod image;
mod incident;
mod maintenance;
mod monitor;
mod network;
mod node;
mod notification;
pub mod output;
mod probe;
mod queue;
mod region;
mod region_init;
mod report;
mod secret;
mod stack;
mod statuspage;
mod summaries;
mod swarm;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use sqlx::PgPool;

use crate::cli::output::{Format, Printer};
use crate::config::{Flags, LogFormat, Settings};
use crate::error::Context as _;
use crate::error::{input_error, Failure, EXIT_OK};

/// Control plane for geo-distributed uptime and latency monitoring on Docker Swarm.
#[derive(Debug, Parser)]
#[command(name = "geoctl", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Global options")]
struct GlobalArgs {
    /// Config file [default: $GEOCTL_CONFIG, ./geoctl.yaml, then ~/.config/geoctl/geoctl.yaml]
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// PostgreSQL URL [env: DATABASE_URL, DATABASE_URL_FILE]
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    /// Region used when geo distribution is off [env: DEFAULT_REGION]
    #[arg(long, global = true, value_name = "CODE")]
    default_region: Option<String>,
    /// Output format
    #[arg(short, long, global = true, value_enum, default_value_t = Format::Table)]
    output: Format,
    /// Never colour the output (also: NO_COLOR=1)
    #[arg(long, global = true)]
    no_color: bool,
    /// More logs on stderr (-v info, -vv debug); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the effective configuration
    Config(config::Args),
    /// Database migrations
    Db(db::Args),
    /// Monitoring regions
    Region(region::Args),
    /// Monitors and the regions they run in
    Monitor(monitor::Args),
    /// Check a target once, from here, now, and show each timing phase
    Probe(probe::Args),
    /// Each region's job queue: status, sync with the database, pause, resume, drain, clean, retry
    Queue(queue::Args),
    /// Daily per-region summaries
    Summaries(summaries::Args),
    /// Per-region uptime, percentiles, phase averages and latency charts
    Report(report::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions(completions::Args),
    /// Print the man page (roff)
    Man,
    /// Run a region's monitor jobs from its queue (the worker in each region's Swarm)
    Agent(agent::Args),
    /// A region's stack: render, deploy, upgrade, services, ps, rm
    Stack(stack::Args),
    /// The swarm of a region's engine: init, join-token, status
    Swarm(swarm::Args),
    /// Swarm nodes: list, label by region, drain, activate
    Node(node::Args),
    /// Swarm secrets: create, list, rotate (values never on argv or stdout)
    Secret(secret::Args),
    /// Overlay networks
    Network(network::Args),
    /// The agent image, built from this binary
    Image(image::Args),
    /// Maintenance windows (add, list, end) and engine housekeeping (prune)
    Maintenance(maintenance::Args),
    /// Turn results into incidents and notifications (one leader across all regions)
    Alerter(alerter::Args),
    /// Incidents: list, show, ack, resolve
    Incident(incident::Args),
    /// Database backups to S3 (or a local directory): run, list, prune, restore, verify
    Backup(backup::Args),
    /// GeoDNS on Route 53: latency records and health checks per active region
    Dns(dns::Args),
    /// Per-region health: Redis, agents, queue backlog, Swarm services, the app's endpoint
    Health(health::HealthArgs),
    /// Check everything geoctl needs, each item ✓ or ✗ with how to fix it
    Doctor(health::DoctorArgs),
    /// Notification channels: add, list, test, remove
    Channel(channel::Args),
    /// Serve the read-only web dashboard and its JSON API (/api/v1)
    Dashboard(dashboard::Args),
    /// Public status pages (/status/SLUG): add, list, remove
    Statuspage(statuspage::Args),
    /// The notification outbox: list, retry
    Notification(notification::Args),
}

/// What every command gets: the configuration, the printer, and whether a
/// person is there to answer prompts.
pub struct Context {
    pub settings: Settings,
    pub printer: Printer,
    pub interactive: bool,
}

impl Context {
    /// The database, refused unless it has this binary's whole schema ([`crate::store::open`]).
    pub async fn pool(&self) -> crate::error::Result<PgPool> {
        Ok(crate::store::open(self.settings.database_url.as_ref().map(|s| &s.value), &self.settings.tuning).await?)
    }

    /// The database whatever its schema: for what migrates it (`db`, `region init`) and for backups.
    pub async fn pool_any_schema(&self) -> crate::error::Result<PgPool> {
        Ok(crate::store::connect(self.settings.database_url.as_ref().map(|s| &s.value), &self.settings.tuning).await?)
    }

    /// The configured GeoIP databases, memory-mapped. Commands that record or
    /// show target facts open them once, before anything else, so a missing or
    /// corrupt file stops them before they write anything.
    pub fn geo(&self) -> Result<crate::geo::GeoDb, crate::geo::GeoError> {
        let path = |v: &Option<crate::config::Sourced<PathBuf>>| v.as_ref().map(|s| s.value.clone());
        crate::geo::GeoDb::open(
            path(&self.settings.geoip_city_db).as_deref(),
            path(&self.settings.geoip_asn_db).as_deref(),
        )
    }

    /// Where monitors may run, from the configuration.
    pub fn placement(&self) -> crate::monitor::Placement {
        crate::monitor::Placement {
            geo_distribution: self.settings.enable_geo_distribution.value,
            default_region: self.settings.default_region.as_ref().map(|s| s.value.clone()),
        }
    }

    /// Asks before destroying something. `--yes` skips the question; with no
    /// terminal to ask on, the command refuses instead of guessing.
    pub fn confirm(&self, question: &str, yes: bool) -> crate::error::Result<()> {
        if yes {
            return Ok(());
        }
        if !self.interactive {
            return Err(input_error(format!("{question} — not on a terminal, so pass --yes to confirm")));
        }
        let confirmed = dialoguer::Confirm::new()
            .with_prompt(crate::cli::output::terminal_safe(question))
            .default(false)
            .interact()
            .context("reading the confirmation")?;
        if confirmed {
            Ok(())
        } else {
            Err(crate::error::failed("cancelled; nothing was changed"))
        }
    }
}

/// A prompt that cannot read the terminal is a failure, as any I/O.
impl crate::error::Coded for dialoguer::Error {
    fn exit(&self) -> crate::error::Exit {
        crate::error::Exit::Failed
    }
}

/// Parses the command line, runs the command, prints any error, and
/// returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    // One TLS crypto provider for every library that asks rustls for the
    // default one (redis for `rediss://`, bollard, the AWS SDKs, which can bring aws-lc-rs next to ring); installing fails only when one is set.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return crate::error::EXIT_FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => EXIT_OK,
        // The reader went away (`geoctl … | head`): not an error worth a word.
        Err(err) if is_broken_pipe(&err) => EXIT_OK,
        Err(err) => {
            eprintln!("error: {}", crate::cli::output::terminal_safe(&render_error(&err)));
            err.exit().code()
        }
    }
}

fn is_broken_pipe(err: &Failure) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            || cause.downcast_ref::<serde_json::Error>().and_then(|e| e.io_error_kind())
                == Some(std::io::ErrorKind::BrokenPipe)
    })
}

/// `outer: inner: innermost`, without repeating a cause that the outer
/// message already contains.
fn render_error(err: &Failure) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// Logs on stderr. Commands log warnings unless `-v`; a long-running service
/// (`service` set: the agent) logs what it does at info, as text or JSON lines.
fn init_logging(verbose: u8, service: Option<LogFormat>) {
    let default = match (verbose, service.is_some()) {
        (0, false) => "warn",
        (0, true) | (1, _) => "info,sqlx=warn,bullmq=warn",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if service == Some(LogFormat::Json) {
        builder.with_writer(std::io::stderr).json().with_current_span(false).try_init()
    } else {
        let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        builder.with_writer(crate::cli::output::SafeLog::new(std::io::stderr, colour)).with_ansi(colour).try_init()
    };
}

async fn run(cli: Cli) -> crate::error::Result<()> {
    // These need no configuration, so a broken config file cannot stop them.
    match cli.command {
        Command::Completions(args) => return completions::completions(args),
        Command::Man => return completions::man(),
        _ => {}
    }
    let g = &cli.global;
    let flags = Flags {
        config: g.config.clone(),
        database_url: g.database_url.clone(),
        default_region: g.default_region.clone(),
        agent: match &cli.command {
            Command::Agent(args) => args.flags(),
            _ => Default::default(),
        },
        dashboard: match &cli.command {
            Command::Dashboard(args) => args.flags(),
            _ => Default::default(),
        },
    };
    let env: crate::config::Env = std::env::vars().collect();
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let settings = Settings::resolve(&flags, &env, &cwd, dirs::config_dir().as_deref())?;
    // After the settings: the agent's log format is one of them.
    let service_log = match &cli.command {
        Command::Agent(args) if args.is_service() => Some(settings.agent.log_format.value),
        Command::Alerter(args) if args.is_service() => Some(LogFormat::Text),
        _ => None,
    };
    init_logging(g.verbose, service_log);
    let ctx = Context {
        settings,
        printer: Printer::new(g.output, g.no_color),
        interactive: std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
    };
    match cli.command {
        Command::Config(args) => config::run(&ctx, args),
        Command::Db(args) => db::run(&ctx, args).await,
        Command::Region(args) => region::run(&ctx, args).await,
        Command::Monitor(args) => monitor::run(&ctx, args).await,
        Command::Probe(args) => crate::error::checking(probe::run(&ctx, args).await),
        Command::Queue(args) => queue::run(&ctx, args).await,
        Command::Summaries(args) => summaries::run(&ctx, args).await,
        Command::Report(args) => report::run(&ctx, args).await,
        Command::Completions(_) | Command::Man => unreachable!("handled before the configuration is read"),
        Command::Agent(args) => agent::run(&ctx, args).await,
        Command::Stack(args) => stack::run(&ctx, args).await,
        Command::Swarm(args) => swarm::run(&ctx, args).await,
        Command::Node(args) => node::run(&ctx, args).await,
        Command::Secret(args) => secret::run(&ctx, args).await,
        Command::Network(args) => network::run(&ctx, args).await,
        Command::Image(args) => image::run(&ctx, args).await,
        Command::Maintenance(args) => maintenance::run(&ctx, args).await,
        Command::Alerter(args) => alerter::run(&ctx, args).await,
        Command::Incident(args) => incident::run(&ctx, args).await,
        Command::Backup(args) => backup::run(&ctx, args).await,
        Command::Dns(args) => dns::run(&ctx, args).await,
        Command::Health(args) => health::run(&ctx, args).await,
        Command::Doctor(args) => health::doctor(&ctx, args).await,
        Command::Channel(args) => channel::run(&ctx, args).await,
        Command::Dashboard(args) => dashboard::run(&ctx, args).await,
        Command::Statuspage(args) => statuspage::run(&ctx, args).await,
        Command::Notification(args) => notification::run(&ctx, args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
