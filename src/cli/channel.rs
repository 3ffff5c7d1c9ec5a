//! `geoctl channel …`: add, list, test and remove notification channels. Secrets are named
//! (`--secret-env`, `--secret-file`), never given: a value on the command line would sit in
//! shell history and process lists.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use comfy_table::Table;
use serde::Serialize;

use super::region::report_change;
use super::Context;
use crate::cli::output::{note, Printer};
use crate::notify::{
    channel, Channel, ChannelSpec, Kind, Notifier, NotifyError, SecretRef, Settings, SmtpTls, Verdict,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Add a channel (adding the same channel again changes nothing)
    Add {
        /// Channel name: lowercase letters, digits, `_`, `.`, `-`
        name: String,
        /// webhook, slack, email, pagerduty or alertmanager
        #[arg(long = "type", value_name = "TYPE")]
        kind: String,
        #[command(flatten)]
        settings: Box<SettingsArgs>,
        #[command(flatten)]
        secret: SecretArgs,
        /// Store the channel even though its secret cannot be read here (it exists only where the alerter runs)
        #[arg(long)]
        no_secret_check: bool,
        /// Validate and show the channel without writing it
        #[arg(long)]
        dry_run: bool,
    },
    /// List channels (secrets are never shown; where each comes from is)
    List,
    /// Send a test notification now and show what the receiver answered (exit 1 when not delivered)
    Test { name: String },
    /// Remove a channel (refused while monitors name it, unless --force)
    Remove {
        name: String,
        /// Also remove it from the monitors that name it
        #[arg(long)]
        force: bool,
        /// Do not ask for confirmation
        #[arg(long, short)]
        yes: bool,
    },
}

#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Channel settings")]
struct SettingsArgs {
    /// webhook: where to POST; alertmanager: its base URL (http://am:9093); pagerduty: the Events API endpoint [default: https://events.pagerduty.com/v2/enqueue]
    #[arg(long)]
    url: Option<String>,
    /// email: SMTP server host
    #[arg(long)]
    smtp_host: Option<String>,
    /// email: SMTP port [default: 587 for starttls, 465 for tls]
    #[arg(long)]
    smtp_port: Option<u16>,
    /// email: starttls, tls (implicit, port 465) or none [default: starttls]
    #[arg(long)]
    smtp_tls: Option<String>,
    /// email: SMTP user; its password is the channel's secret
    #[arg(long)]
    smtp_user: Option<String>,
    /// email: sender address
    #[arg(long)]
    from: Option<String>,
    /// email: recipients (repeat, or separate with commas)
    #[arg(long, value_delimiter = ',')]
    to: Vec<String>,
    /// PEM file of extra root certificates the receiver's TLS certificate may chain to
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
#[command(
    next_help_heading = "The channel's secret (webhook: signing key; slack: webhook URL; email: SMTP password; pagerduty: routing key; alertmanager: optional bearer token)"
)]
struct SecretArgs {
    /// Environment variable that holds it where notifications are sent (NAME_FILE works too)
    #[arg(long, value_name = "NAME", conflicts_with = "secret_file")]
    secret_env: Option<String>,
    /// File that holds it (a mounted Docker secret)
    #[arg(long, value_name = "PATH")]
    secret_file: Option<PathBuf>,
}

/// A channel as shown: settings masked, the secret's source only.
#[derive(Debug, Serialize)]
struct View {
    name: String,
    #[serde(rename = "type")]
    kind: Kind,
    settings: BTreeMap<&'static str, String>,
    secret_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<DateTime<Utc>>,
}

impl View {
    fn of(spec: &ChannelSpec, created_at: Option<DateTime<Utc>>) -> Self {
        View {
            name: spec.name.clone(),
            kind: spec.kind,
            settings: spec.shown_settings(),
            secret_from: spec.secret.as_ref().map(ToString::to_string),
            created_at,
        }
    }

    fn of_channel(c: &Channel) -> Self {
        View::of(&c.spec, Some(c.created_at))
    }
}

fn table(p: &Printer, views: &[View]) -> Table {
    let mut t = p.table(["NAME", "TYPE", "SETTINGS", "SECRET FROM"]);
    for v in views {
        let settings: Vec<String> = v.settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
        t.add_row([
            v.name.clone(),
            v.kind.to_string(),
            settings.join(" "),
            v.secret_from.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    t
}

/// How long `channel add` waits for an SMTP server before warning.
const SMTP_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn run(ctx: &Context, args: Args) -> crate::error::Result<()> {
    let p = &ctx.printer;
    match args.command {
        Command::Add { name, kind, settings, secret, no_secret_check, dry_run } => {
            let kind: Kind = kind.parse()?;
            let secret = match (secret.secret_env, secret.secret_file) {
                (Some(name), _) => Some(SecretRef::Env(name)),
                (None, Some(path)) => Some(SecretRef::File(std::path::absolute(&path).unwrap_or(path))),
                (None, None) => None,
            };
            let settings = Settings {
                url: settings.url,
                smtp_host: settings.smtp_host,
                smtp_port: settings.smtp_port,
                smtp_tls: settings.smtp_tls.as_deref().map(str::parse::<SmtpTls>).transpose()?,
                smtp_user: settings.smtp_user,
                from: settings.from,
                to: settings.to,
                ca_file: settings.ca_file.map(|p| std::path::absolute(&p).unwrap_or(p)),
            };
            let spec = ChannelSpec::new(&name, kind, settings, secret)?;
            let secret = if no_secret_check { None } else { spec.check_secret()? };
            if dry_run {
                report_change("channel", &name, crate::store::Change::Created, true);
                return p.print(&View::of(&spec, None), |p| vec![table(p, &[View::of(&spec, None)])]);
            }
            let pool = ctx.pool().await?;
            let (channel, change) = channel::add(&pool, &spec).await?;
            report_change("channel", &name, change, false);
            if channel.kind() == Kind::Email {
                if let Err(reason) = crate::notify::email::check(&channel, secret.as_ref(), SMTP_CHECK_TIMEOUT).await {
                    let server = channel.spec.shown_settings().get("smtp_host").cloned().unwrap_or_default();
                    note(format!(
                        "warning: channel `{name}` is stored, but its SMTP server {server} did not answer as configured: \
                         {reason}; fix the server or the settings, then `geoctl channel test {name}`"
                    ));
                }
            }
            let view = View::of_channel(&channel);
            p.print(&view, |p| vec![table(p, std::slice::from_ref(&view))])
        }
        Command::List => {
            let pool = ctx.pool().await?;
            let views: Vec<View> = channel::list(&pool).await?.iter().map(View::of_channel).collect();
            p.print(&views, |p| vec![table(p, &views)])
        }
        Command::Test { name } => {
            let pool = ctx.pool().await?;
            let channel = channel::get(&pool, &name).await?;
            let notifier = Notifier::new(super::notification::delivery_options(ctx))?;
            let answer = notifier.send_test(&channel).await?;
            let said = describe(answer.status, &answer.detail);
            if answer.verdict != Verdict::Delivered {
                return Err(NotifyError::TestFailed { channel: name, answer: said }.into());
            }
            note(format!("channel `{name}`: delivered; the receiver answered {said}"));
            p.print(&answer, |p| {
                let mut t = p.table(["CHANNEL", "RESULT", "STATUS", "ANSWER"]);
                t.add_row([
                    name.clone(),
                    "delivered".into(),
                    crate::cli::output::or_dash(answer.status),
                    answer.detail.clone(),
                ]);
                vec![t]
            })
        }
        Command::Remove { name, force, yes } => {
            let pool = ctx.pool().await?;
            let channel = channel::get(&pool, &name).await?;
            let monitors = channel::used_by(&pool, &channel).await?;
            if !monitors.is_empty() && !force {
                return Err(NotifyError::InUse { name, monitors }.into());
            }
            ctx.confirm(&format!("remove channel {name} and its undelivered notifications?"), yes)?;
            let removed_from = channel::remove(&pool, &name, force).await?;
            if !removed_from.is_empty() {
                note(format!("channel `{name}` removed from monitor(s) {}", removed_from.join(", ")));
            }
            report_change("channel", &name, crate::store::Change::Deleted, false);
            Ok(())
        }
    }
}

/// "HTTP 401: {body}" / "SMTP 250: …" / the reason nothing answered.
pub(super) fn describe(status: Option<u16>, detail: &str) -> String {
    let detail = if detail.is_empty() { "(empty body)" } else { detail };
    match status {
        Some(code) => format!("{code}: {detail}"),
        None => format!("no answer: {detail}"),
    }
}
