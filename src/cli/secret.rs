//! `geoctl secret …`: create, list and rotate Swarm secrets. A value comes
//! from a file, an environment variable or stdin — never from argv — and is
//! never printed.

use std::collections::HashMap;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use super::swarm::EngineArgs;
use super::Context;
use crate::cli::output::{note, or_dash};
use crate::config::Secret;
use crate::error::input_error;

use crate::error::Context as _;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

/// Where the value comes from; stdin when neither flag is given.
#[derive(Debug, clap::Args)]
struct Source {
    /// Read the value from this file (one trailing newline is dropped)
    #[arg(long, value_name = "FILE", conflicts_with = "from_env")]
    from_file: Option<PathBuf>,
    /// Read the value from this environment variable
    #[arg(long, value_name = "VAR")]
    from_env: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create a secret (nothing to do when one of that name exists)
    Create {
        name: String,
        #[command(flatten)]
        source: Source,
        #[command(flatten)]
        engine: EngineArgs,
        #[arg(long)]
        dry_run: bool,
    },
    /// List secrets (names only: values cannot be read back)
    Ls {
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Give a secret a new value: a new version, services moved to it, the old one removed
    Rotate {
        /// The secret's name (or its base name, for versions geoctl made)
        name: String,
        #[command(flatten)]
        source: Source,
        #[command(flatten)]
        engine: EngineArgs,
        #[arg(long)]
        dry_run: bool,
    },
}

impl Source {
    fn read(&self) -> crate::error::Result<Secret> {
        let text = if let Some(path) = &self.from_file {
            std::fs::read_to_string(path)
                .map_err(|e| input_error(format!("--from-file {}: cannot read it: {e}", path.display())))?
        } else if let Some(var) = &self.from_env {
            std::env::var(var).map_err(|_| input_error(format!("--from-env {var}: the variable is not set")))?
        } else {
            if std::io::stdin().is_terminal() {
                return Err(input_error("no value: pipe it on stdin, or pass --from-file FILE or --from-env VAR"));
            }
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("reading the value from stdin")?;
            text
        };
        let value = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
        if value.is_empty() {
            return Err(input_error("the secret's value is empty"));
        }
        Ok(Secret::new(value))
    }
}

fn check_name(name: &str) -> crate::error::Result<()> {
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(input_error(format!(
            "`{name}` is not a secret name; use up to 64 letters, digits, '-', '_' and '.'"
        )));
    }
    Ok(())
}

pub async fn run(ctx: &Context, args: Args) -> crate::error::Result<()> {
    match args.command {
        Command::Create { name, source, engine, dry_run } => {
            check_name(&name)?;
            let value = source.read()?;
            let engine = engine.connect(ctx).await?;
            engine.require_manager().await?;
            if engine.secret_ids().await?.contains_key(&name) {
                note(format!("secret {name}: exists; unchanged (change its value with `geoctl secret rotate {name}`)"));
            } else if dry_run {
                note(format!("secret {name}: would be created (dry run)"));
            } else {
                engine.create_secret(&name, &value, HashMap::new()).await?;
                note(format!("secret {name}: created"));
            }
            Ok(())
        }
        Command::Ls { engine } => {
            let rows = engine.connect(ctx).await?.secret_rows().await?;
            ctx.printer.print(&rows, |p| {
                let mut t = p.table(["NAME", "ID", "STACK", "CREATED"]);
                for r in &rows {
                    t.add_row(vec![
                        r.name.clone(),
                        r.id.chars().take(12).collect(),
                        or_dash(r.stack.clone()),
                        or_dash(r.created_at.clone()),
                    ]);
                }
                vec![t]
            })
        }
        Command::Rotate { name, source, engine, dry_run } => {
            check_name(&name)?;
            let value = source.read()?;
            let engine = engine.connect(ctx).await?;
            let rotation = engine.rotate_secret(&name, &value, dry_run).await?;
            if rotation.unchanged {
                note(format!("secret {}: already at this value ({}); unchanged", rotation.base, rotation.new_name));
            } else {
                let verb = if dry_run { "would rotate" } else { "rotated" };
                note(format!(
                    "secret {}: {verb} to {}; services moved: {}; old versions removed: {}",
                    rotation.base,
                    rotation.new_name,
                    if rotation.services.is_empty() { "none".into() } else { rotation.services.join(", ") },
                    if rotation.removed.is_empty() { "none".into() } else { rotation.removed.join(", ") },
                ));
            }
            Ok(())
        }
    }
}
