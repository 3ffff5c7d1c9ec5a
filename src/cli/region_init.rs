//! `geoctl region init CODE` and `region destroy CODE`: a region from nothing
//! to running agents as one idempotent command, and back. The preconditions and the
//! order of the steps are [`crate::provision`]'s; this file parses, calls and prints.

use std::path::PathBuf;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressDrawTarget};

use super::stack::print_report;
use super::Context;
use crate::cli::output::note;
use crate::provision::{self, InitOptions};
use crate::region::RegionPatch;

/// Options of `region init` besides the region's own fields.
#[derive(Debug, Clone, clap::Args)]
pub struct InitFlags {
    /// Nodes to put in the region [default: the engine's own node, when no node is in it yet]
    #[arg(long = "node", value_name = "NODE")]
    pub nodes: Vec<String>,
    /// Address other nodes reach this one on, for a new swarm
    #[arg(long, value_name = "ADDR")]
    pub advertise_addr: Option<String>,
    /// Directory holding your own stack.yml.tera
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// Give up waiting for healthy agents with a heartbeat after this long
    #[arg(long, value_parser = super::checks::parse_interval, default_value = "5m")]
    pub timeout: Duration,
}

pub async fn init(
    ctx: &Context,
    code: &str,
    patch: RegionPatch,
    flags: InitFlags,
    dry_run: bool,
) -> crate::error::Result<()> {
    let options = InitOptions {
        nodes: flags.nodes,
        advertise_addr: flags.advertise_addr,
        templates: flags.templates,
        timeout: flags.timeout,
    };
    let plan = provision::plan_init(&ctx.settings, code, patch, options).await?;
    note(format!("region {code}: engine {}, stack {}", plan.engine.endpoint, plan.stack.name));
    let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let applied = provision::apply_init(&plan, dry_run, Some(&bars), note).await?;
    let Some(report) = applied.deploy else {
        note(format!("region {code}: dry run, nothing changed"));
        return Ok(());
    };
    print_report(ctx, &report)?;
    if !dry_run {
        let ready = provision::wait_ready(&plan).await?;
        let hosts: Vec<&str> = ready.agents.iter().map(|a| a.id.as_str()).collect();
        note(format!(
            "region {code}: {} agent(s) healthy with a heartbeat in Redis ({}){}",
            ready.agents.len(),
            hosts.join(", "),
            if ready.waited_seconds >= 1.0 { format!(", after {:.1} s", ready.waited_seconds) } else { String::new() }
        ));
    }
    if applied.steps.is_empty() {
        note(format!("region {code}: unchanged; its agents are running and healthy"));
    } else if dry_run {
        note(format!("region {code}: dry run, nothing changed"));
    } else {
        note(format!("region {code}: ready; its agents are running and healthy"));
    }
    Ok(())
}

pub async fn destroy(ctx: &Context, code: &str, volumes: bool, yes: bool, dry_run: bool) -> crate::error::Result<()> {
    let plan = provision::plan_destroy(&ctx.settings, code).await?;
    let name = &plan.stack;
    if !dry_run {
        ctx.confirm(
            &format!("destroy region {code}'s stack {name} (services, network, secrets) on {}?", plan.engine.endpoint),
            yes,
        )?;
    }
    let removal = provision::apply_destroy(&plan, volumes, dry_run).await?;
    if removal.is_empty() {
        note(format!("region {code}: stack {name} not found; nothing to remove"));
    } else {
        let verb = if dry_run { "would remove" } else { "removed" };
        note(format!(
            "region {code}: {verb} {} service(s), {} network(s), {} secret(s), {} volume(s); the region stays registered (`geoctl region delete {code}` removes it)",
            removal.services.len(),
            removal.networks.len(),
            removal.secrets.len(),
            removal.volumes.len()
        ));
    }
    ctx.printer.print(&removal, |_| vec![])
}
