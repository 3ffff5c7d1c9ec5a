//! `geoctl backup …`: run, list, prune, restore, verify.

use std::io::IsTerminal as _;

use chrono::Utc;

use super::Context;
use crate::backup::{self, BackupError, PgTool, RestoreOptions, Target};
use crate::cli::output::note;
use crate::config::Secret;
use crate::error::input_error;

use crate::error::Context as _;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Dump the database (pg_dump | gzip) into the S3 bucket, or the backup directory when none is configured
    Run,
    /// List backups, newest first
    List,
    /// Delete backups older than --keep-days (the newest is always kept)
    Prune {
        /// Keep backups taken within this many days
        #[arg(long, default_value_t = 30, value_name = "DAYS")]
        keep_days: u32,
        /// Show what would be deleted without deleting
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation
        #[arg(long, short)]
        yes: bool,
    },
    /// Restore a backup into a database (the configured one, or the URL in --target-env)
    Restore {
        /// Backup name as `backup list` shows it (backup-YYYYMMDD-HHMMSS.sql.gz)
        name: String,
        /// Name of an environment variable holding the target database URL
        #[arg(long, value_name = "VAR")]
        target_env: Option<String>,
        /// Replace what a non-empty target holds (dropped in the restore's transaction)
        #[arg(long)]
        force: bool,
        /// Do not ask for confirmation
        #[arg(long, short)]
        yes: bool,
    },
    /// Check a backup: checksum, restore into a scratch database, compare row counts, drop it
    Verify {
        /// Backup name as `backup list` shows it
        name: String,
    },
}

pub async fn run(ctx: &Context, args: Args) -> crate::error::Result<()> {
    let target = target(ctx).await?;
    let progress = std::io::stderr().is_terminal();
    match args.command {
        Command::Run => {
            let url = database_url(ctx)?;
            let pg = PgTool::new(&url)?;
            let pool = ctx.pool_any_schema().await?;
            note(format!("backing up {} to {}", pg.server, target.describe()));
            let summary = backup::run(&target, &pool, &pg, progress, say).await.context("backup failed")?;
            let mb = summary.dump_bytes as f64 / 1e6;
            note(format!(
                "{}: {} rows in {} tables, {:.1} MB of SQL stored as {:.1} MB in {:.1}s ({:.1} MB/s)",
                summary.name,
                summary.rows,
                summary.tables,
                mb,
                summary.bytes as f64 / 1e6,
                summary.seconds,
                mb / summary.seconds.max(0.001)
            ));
            ctx.printer.print(&summary, |p| {
                let mut t = p.table(["name", "stored", "sql", "tables", "rows", "sha256"]);
                t.add_row(vec![
                    summary.name.clone(),
                    indicatif::HumanBytes(summary.bytes).to_string(),
                    indicatif::HumanBytes(summary.dump_bytes).to_string(),
                    summary.tables.to_string(),
                    summary.rows.to_string(),
                    summary.sha256.clone(),
                ]);
                vec![t]
            })
        }
        Command::List => {
            let list = backup::backups(&target.list().await?);
            let pending = target.pending_uploads().await?;
            if !pending.is_empty() {
                note(format!("{} unfinished upload(s); the next `backup run` aborts them", pending.len()));
            }
            ctx.printer.print(&list, |p| {
                let mut t = p.table(["name", "taken at (UTC)", "size", "checksum"]);
                for b in &list {
                    t.add_row(vec![
                        b.name.clone(),
                        b.taken_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        indicatif::HumanBytes(b.bytes).to_string(),
                        if b.checksum { "yes".into() } else { "missing".into() },
                    ]);
                }
                vec![t]
            })
        }
        Command::Prune { keep_days, dry_run, yes } => {
            let list = backup::backups(&target.list().await?);
            let doomed = backup::to_prune(&list, keep_days, Utc::now());
            if doomed.is_empty() {
                note(format!("nothing to prune: no backup older than {keep_days} days besides the newest"));
            } else if dry_run {
                note(format!("would delete {} backup(s) (dry run)", doomed.len()));
            } else {
                ctx.confirm(&format!("Delete {} backup(s) older than {keep_days} days?", doomed.len()), yes)?;
                for b in &doomed {
                    for key in [backup::sha256_key(&b.name), backup::manifest_key(&b.name), backup::dump_key(&b.name)] {
                        target.delete(&key).await?;
                    }
                }
                note(format!("deleted {} backup(s)", doomed.len()));
            }
            let names: Vec<&str> = doomed.iter().map(|b| b.name.as_str()).collect();
            ctx.printer.print(&serde_json::json!({ "deleted": names, "dry_run": dry_run }), |p| {
                let mut t = p.table(["deleted"]);
                for name in &names {
                    t.add_row(vec![*name]);
                }
                vec![t]
            })
        }
        Command::Restore { name, target_env, force, yes } => {
            // An unknown or unverifiable backup is refused before the target is looked at.
            backup::expected_sha256(&target, &name).await?;
            let url = match &target_env {
                Some(var) => Secret::new(std::env::var(var).map_err(|_| {
                    input_error(format!("--target-env names {var}, which is not set; export {var}=postgres://…"))
                })?),
                None => database_url(ctx)?,
            };
            let pg = PgTool::new(&url)?;
            let pool = crate::store::connect(Some(&url), &ctx.settings.tuning).await?;
            let existing = backup::user_relations(&pool).await.with_context(|| format!("inspecting {}", pg.server))?;
            pool.close().await;
            if existing > 0 && !force {
                return Err(input_error(format!(
                    "{} is not empty ({existing} tables, views or sequences); restore into an empty database, \
                     or pass --force to replace its contents",
                    pg.server
                )));
            }
            let question = if existing > 0 {
                format!("Replace everything in {} ({existing} relations) with {name}?", pg.server)
            } else {
                format!("Restore {name} into {}?", pg.server)
            };
            ctx.confirm(&question, yes)?;
            let bytes = backup::restore(&target, &name, &pg, RestoreOptions { replace: existing > 0, progress })
                .await
                .context("restore failed")?;
            note(format!("restored {name} ({}) into {}", indicatif::HumanBytes(bytes), pg.server));
            Ok(())
        }
        Command::Verify { name } => {
            backup::validate_name(&name)?;
            let url = database_url(ctx)?;
            let pg = PgTool::new(&url)?;
            let pool = ctx.pool_any_schema().await?;
            let report = backup::verify(&target, &name, &pool, &pg, &ctx.settings.tuning, progress)
                .await
                .context("verify failed")?;
            ctx.printer.print(&report, |p| {
                let mut t = p.table(["check", "result"]);
                t.add_row(vec!["checksum".to_string(), if report.checksum_ok { "ok" } else { "MISMATCH" }.into()]);
                t.add_row(vec!["tables".to_string(), report.tables.to_string()]);
                t.add_row(vec!["rows".to_string(), report.rows.to_string()]);
                for m in &report.mismatches {
                    let found = m.found.map_or("missing".to_string(), |n| n.to_string());
                    t.add_row(vec![m.table.clone(), format!("expected {} rows, found {found}", m.expected)]);
                }
                vec![t]
            })?;
            if report.ok {
                note(format!(
                    "{name} verified: checksum matches, {} tables restore with their row counts",
                    report.tables
                ));
                Ok(())
            } else {
                Err(crate::error::failed(format!("{name} failed verification")))
            }
        }
    }
}

/// The S3 bucket when one is configured, else the backup directory.
async fn target(ctx: &Context) -> crate::error::Result<Target> {
    let aws = &ctx.settings.aws;
    match &aws.s3_bucket {
        Some(bucket) => Ok(Target::S3 {
            client: crate::aws::s3(aws).await?,
            bucket: bucket.value.clone(),
            endpoint: aws.s3_endpoint.as_ref().map(|e| e.value.clone()),
        }),
        None => Ok(Target::Local { dir: ctx.settings.backup_dir.value.clone() }),
    }
}

fn database_url(ctx: &Context) -> crate::error::Result<Secret> {
    ctx.settings.database_url.as_ref().map(|s| s.value.clone()).ok_or_else(|| {
        BackupError::Input(
            "no database configured; set DATABASE_URL, pass --database-url, or add database_url to geoctl.yaml".into(),
        )
        .into()
    })
}

/// Progress messages of the domain code, on stderr.
fn say(message: String) {
    note(message)
}
