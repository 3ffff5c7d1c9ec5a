//! A notification channel: its kind, the settings that are not secret, and where its one secret
//! comes from. The secret itself is read at send time and never stored, printed or logged.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use super::NotifyError;
use crate::config::{mask, Secret};
use crate::store::Change;

/// The receivers geoctl speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Webhook,
    Slack,
    Email,
    Pagerduty,
    Alertmanager,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Webhook => "webhook",
            Kind::Slack => "slack",
            Kind::Email => "email",
            Kind::Pagerduty => "pagerduty",
            Kind::Alertmanager => "alertmanager",
        }
    }

    /// What the channel's secret is, for messages.
    pub fn secret_role(self) -> &'static str {
        match self {
            Kind::Webhook => "the signing key",
            Kind::Slack => "the incoming-webhook URL",
            Kind::Email => "the SMTP password",
            Kind::Pagerduty => "the routing key",
            Kind::Alertmanager => "a bearer token",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = NotifyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "webhook" => Ok(Kind::Webhook),
            "slack" => Ok(Kind::Slack),
            "email" => Ok(Kind::Email),
            "pagerduty" => Ok(Kind::Pagerduty),
            "alertmanager" => Ok(Kind::Alertmanager),
            _ => Err(NotifyError::UnknownKind(s.to_string())),
        }
    }
}

/// How an email channel secures its SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS at all; only for a relay on the same host.
    None,
}

impl SmtpTls {
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        }
    }
}

impl FromStr for SmtpTls {
    type Err = NotifyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "starttls" => Ok(SmtpTls::Starttls),
            "tls" | "implicit" => Ok(SmtpTls::Tls),
            "none" => Ok(SmtpTls::None),
            _ => Err(NotifyError::Invalid {
                what: format!("SMTP TLS mode `{s}`"),
                message: "use starttls, tls or none".into(),
            }),
        }
    }
}

/// A channel's settings that are not secret, as stored in `alert_channels.settings`. Which keys a
/// kind takes is decided by [`ChannelSpec::new`]; absent keys are not stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// webhook: where to POST; alertmanager: its base URL; pagerduty: the Events API endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_tls: Option<SmtpTls>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// Extra root certificates (PEM) the receiver's TLS certificate may chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// Where a channel's secret comes from: `{"env": "NAME"}` or `{"file": "/path"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretRef {
    /// An environment variable of the process that sends; `NAME_FILE` works too, as for every
    /// secret of geoctl.
    Env(String),
    /// A file (a mounted Docker secret).
    File(PathBuf),
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env {name}"),
            SecretRef::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

impl SecretRef {
    /// Reads the secret now, from this process's environment or the file system.
    pub fn resolve(&self) -> Result<Secret, String> {
        self.resolve_in(&|name| std::env::var(name).ok())
    }

    fn resolve_in(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Secret, String> {
        let file = |path: &Path, origin: &str| {
            crate::config::read_secret_file(path, origin).map_err(|e| crate::error::chain(&e))
        };
        match self {
            SecretRef::File(path) => file(path, "the channel's secret"),
            SecretRef::Env(name) => match (env(name), env(&format!("{name}_FILE"))) {
                (Some(value), _) if !value.is_empty() => Ok(Secret::new(value)),
                (_, Some(path)) => file(Path::new(&path), &format!("env {name}_FILE")),
                _ => Err(format!("{name} (or {name}_FILE) is not set in this environment")),
            },
        }
    }
}

/// A valid channel, before it is stored. Not `Serialize`: what is shown of it goes through
/// [`ChannelSpec::shown_settings`], so a URL's token cannot reach output by accident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSpec {
    pub name: String,
    pub kind: Kind,
    pub settings: Settings,
    pub secret: Option<SecretRef>,
}

/// A stored channel.
#[derive(Debug, Clone)]
pub struct Channel {
    pub id: Uuid,
    pub spec: ChannelSpec,
    pub created_at: DateTime<Utc>,
}

impl Channel {
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn kind(&self) -> Kind {
        self.spec.kind
    }
}

/// The PagerDuty Events API v2 endpoint, for channels that name none.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

pub fn validate_name(name: &str) -> Result<(), NotifyError> {
    let ok = (1..=63).contains(&name.len())
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(NotifyError::InvalidName(name.to_string()))
    }
}

impl ChannelSpec {
    /// Checks what a kind needs and refuses what it does not take, so a stored channel always
    /// has what its sender reads. The secret is not read here (see [`ChannelSpec::check_secret`]).
    pub fn new(name: &str, kind: Kind, mut settings: Settings, secret: Option<SecretRef>) -> Result<Self, NotifyError> {
        validate_name(name)?;
        let missing = |what: &str| NotifyError::Missing { kind, what: what.to_string() };
        let not_for = |what: &str, hint: &str| NotifyError::NotFor { kind, what: what.into(), hint: hint.into() };
        let smtp_given = settings.smtp_host.is_some()
            || settings.smtp_port.is_some()
            || settings.smtp_tls.is_some()
            || settings.smtp_user.is_some()
            || settings.from.is_some()
            || !settings.to.is_empty();
        if kind != Kind::Email && smtp_given {
            return Err(not_for("--smtp-*, --from and --to", "they are for email channels"));
        }
        match kind {
            Kind::Webhook | Kind::Alertmanager => {
                let url = settings.url.as_deref().ok_or_else(|| missing("--url"))?;
                check_url(url)?;
            }
            Kind::Pagerduty => {
                if let Some(url) = &settings.url {
                    check_url(url)?;
                }
            }
            Kind::Slack => {
                if settings.url.is_some() {
                    return Err(not_for(
                        "--url",
                        "a Slack incoming-webhook URL holds its token, so it is the channel's secret: pass --secret-env or --secret-file",
                    ));
                }
            }
            Kind::Email => {
                if settings.url.is_some() {
                    return Err(not_for("--url", "give the server with --smtp-host"));
                }
                let host = settings.smtp_host.as_deref().ok_or_else(|| missing("--smtp-host"))?;
                if host.is_empty() || host.contains(['/', ' ', ':']) {
                    return Err(NotifyError::Invalid {
                        what: format!("SMTP host `{host}`"),
                        message: "give a host name or address, and the port with --smtp-port".into(),
                    });
                }
                let from = settings.from.as_deref().ok_or_else(|| missing("--from"))?;
                check_mailbox("--from", from)?;
                if settings.to.is_empty() {
                    return Err(missing("--to (one or more recipients)"));
                }
                for to in &settings.to {
                    check_mailbox("--to", to)?;
                }
                let tls = settings.smtp_tls.unwrap_or_default();
                settings.smtp_tls = Some(tls);
                settings.smtp_port = Some(settings.smtp_port.unwrap_or(tls.default_port()));
                if settings.smtp_user.is_some() && secret.is_none() {
                    return Err(missing("its SMTP password with --smtp-user: --secret-env NAME or --secret-file PATH"));
                }
                if settings.smtp_user.is_none() && secret.is_some() {
                    return Err(missing("--smtp-user for the password it is given"));
                }
            }
        }
        let secret_needed = matches!(kind, Kind::Webhook | Kind::Slack | Kind::Pagerduty);
        if secret_needed && secret.is_none() {
            return Err(missing(&format!(
                "its secret ({}): --secret-env NAME or --secret-file PATH",
                kind.secret_role()
            )));
        }
        if let Some(path) = &settings.ca_file {
            read_ca(path)?;
        }
        Ok(ChannelSpec { name: name.to_string(), kind, settings, secret })
    }

    /// Reads the secret here and now: `channel add` refuses a channel whose secret cannot be
    /// read, since every send would fail.
    pub fn check_secret(&self) -> Result<Option<Secret>, NotifyError> {
        let Some(secret_ref) = &self.secret else {
            return Ok(None);
        };
        let secret = secret_ref.resolve().map_err(|reason| NotifyError::SecretUnavailable {
            name: self.name.clone(),
            source_name: secret_ref.to_string(),
            reason,
        })?;
        if self.kind == Kind::Slack {
            check_url(secret.expose()).map_err(|_| NotifyError::Invalid {
                what: format!("secret of channel `{}` ({secret_ref})", self.name),
                message: "a Slack channel's secret is its incoming-webhook URL (https://hooks.slack.com/services/…)"
                    .into(),
            })?;
        }
        Ok(Some(secret))
    }

    /// The settings as shown: URLs with their passwords and secret query values masked.
    pub fn shown_settings(&self) -> BTreeMap<&'static str, String> {
        let s = &self.settings;
        let mut out = BTreeMap::new();
        let mut put = |key, value: Option<String>| {
            if let Some(value) = value {
                out.insert(key, value);
            }
        };
        put("url", s.url.as_deref().map(mask));
        put("smtp_host", s.smtp_host.clone());
        put("smtp_port", s.smtp_port.map(|p| p.to_string()));
        put("smtp_tls", s.smtp_tls.map(|t| format!("{t:?}").to_lowercase()));
        put("smtp_user", s.smtp_user.clone());
        put("from", s.from.clone());
        put("to", (!s.to.is_empty()).then(|| s.to.join(", ")));
        put("ca_file", s.ca_file.as_ref().map(|p| p.display().to_string()));
        out
    }
}

fn check_url(url: &str) -> Result<(), NotifyError> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(NotifyError::Invalid {
            what: format!("URL `{}`", mask(url)),
            message: "use an http:// or https:// URL".into(),
        }),
    }
}

fn check_mailbox(flag: &str, address: &str) -> Result<(), NotifyError> {
    address.parse::<lettre::message::Mailbox>().map(|_| ()).map_err(|e| NotifyError::Invalid {
        what: format!("{flag} address `{address}`"),
        message: format!("{e}; use name@example.com or \"Name <name@example.com>\""),
    })
}

/// The PEM file of extra root certificates, read and checked to hold at least one certificate.
pub(crate) fn read_ca(path: &Path) -> Result<Vec<u8>, NotifyError> {
    let invalid = |message: String| NotifyError::Invalid { what: format!("CA file {}", path.display()), message };
    let pem = std::fs::read(path).map_err(|e| invalid(e.to_string()))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(invalid("holds no PEM certificate".into()));
    }
    Ok(pem)
}

// ---------------------------------------------------------------------------
// Store

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    name: String,
    kind: String,
    settings: sqlx::types::Json<Settings>,
    secret_ref: Option<sqlx::types::Json<SecretRef>>,
    created_at: DateTime<Utc>,
}

impl TryFrom<Row> for Channel {
    type Error = NotifyError;
    fn try_from(row: Row) -> Result<Self, NotifyError> {
        Ok(Channel {
            id: row.id,
            spec: ChannelSpec {
                kind: row.kind.parse()?,
                name: row.name,
                settings: row.settings.0,
                secret: row.secret_ref.map(|j| j.0),
            },
            created_at: row.created_at,
        })
    }
}

const COLUMNS: &str = "id, name, kind, settings, secret_ref, created_at";

pub async fn list(pool: &PgPool) -> Result<Vec<Channel>, NotifyError> {
    let rows: Vec<Row> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM alert_channels ORDER BY name")).fetch_all(pool).await?;
    rows.into_iter().map(Channel::try_from).collect()
}

pub async fn by_ids(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<Channel>, NotifyError> {
    let rows: Vec<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM alert_channels WHERE id = ANY($1)"))
        .bind(ids)
        .fetch_all(pool)
        .await?;
    rows.into_iter().map(Channel::try_from).collect()
}

/// One channel by name; an unknown name lists the known ones.
pub async fn get(pool: &PgPool, name: &str) -> Result<Channel, NotifyError> {
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM alert_channels WHERE name = $1"))
        .bind(name)
        .fetch_optional(pool)
        .await?;
    match row {
        Some(row) => row.try_into(),
        None => Err(NotifyError::UnknownChannel {
            name: name.to_string(),
            known: list(pool).await?.into_iter().map(|c| c.spec.name).collect(),
        }),
    }
}

/// Stores a new channel. Adding the same channel again changes nothing; the same name with
/// other settings is refused rather than silently overwritten.
pub async fn add(pool: &PgPool, spec: &ChannelSpec) -> Result<(Channel, Change), NotifyError> {
    let inserted: Option<Row> = sqlx::query_as(&format!(
        "INSERT INTO alert_channels (name, kind, settings, secret_ref) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name) DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(&spec.name)
    .bind(spec.kind.as_str())
    .bind(sqlx::types::Json(&spec.settings))
    .bind(spec.secret.as_ref().map(sqlx::types::Json))
    .fetch_optional(pool)
    .await?;
    if let Some(row) = inserted {
        return Ok((row.try_into()?, Change::Created));
    }
    let existing = get(pool, &spec.name).await?;
    if &existing.spec == spec {
        Ok((existing, Change::Unchanged))
    } else {
        Err(NotifyError::Exists(spec.name.clone()))
    }
}

/// Monitors that name the channel, by name.
pub async fn used_by(pool: &PgPool, channel: &Channel) -> Result<Vec<String>, NotifyError> {
    Ok(sqlx::query_scalar(
        "SELECT coalesce(m.name, m.id::text) FROM monitor_channels mc JOIN monitors m ON m.id = mc.monitor_id
         WHERE mc.channel_id = $1 ORDER BY 1",
    )
    .bind(channel.id)
    .fetch_all(pool)
    .await?)
}

/// Removes a channel. While monitors name it, only `force` removes it (and it from them); its
/// undelivered notifications go with it.
pub async fn remove(pool: &PgPool, name: &str, force: bool) -> Result<Vec<String>, NotifyError> {
    let channel = get(pool, name).await?;
    let mut tx = pool.begin().await?;
    // Lock the channel so a monitor cannot start naming it between the check and the delete.
    sqlx::query("SELECT 1 FROM alert_channels WHERE id = $1 FOR UPDATE").bind(channel.id).execute(&mut *tx).await?;
    let monitors: Vec<String> = sqlx::query_scalar(
        "SELECT coalesce(m.name, m.id::text) FROM monitor_channels mc JOIN monitors m ON m.id = mc.monitor_id
         WHERE mc.channel_id = $1 ORDER BY 1",
    )
    .bind(channel.id)
    .fetch_all(&mut *tx)
    .await?;
    if !monitors.is_empty() && !force {
        return Err(NotifyError::InUse { name: name.to_string(), monitors });
    }
    sqlx::query("DELETE FROM monitor_channels WHERE channel_id = $1").bind(channel.id).execute(&mut *tx).await?;
    sqlx::query("DELETE FROM alert_channels WHERE id = $1").bind(channel.id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(monitors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook() -> Settings {
        Settings { url: Some("https://hooks.example.com/geoctl".into()), ..Settings::default() }
    }

    #[test]
    fn names_follow_the_table_rule() {
        assert!(validate_name("ops-team.eu_1").is_ok());
        for bad in ["", "Ops", "-x", "a b", &"a".repeat(64)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_kind_gets_what_it_needs() {
        let env = || Some(SecretRef::Env("K".into()));
        assert!(ChannelSpec::new("w", Kind::Webhook, webhook(), env()).is_ok());
        let e = ChannelSpec::new("w", Kind::Webhook, webhook(), None).unwrap_err().to_string();
        assert!(e.contains("--secret-env") && e.contains("signing key"), "{e}");
        let e = ChannelSpec::new("s", Kind::Slack, webhook(), env()).unwrap_err().to_string();
        assert!(e.contains("secret"), "{e}");
        let e = ChannelSpec::new("a", Kind::Alertmanager, Settings::default(), None).unwrap_err().to_string();
        assert!(e.contains("--url"), "{e}");
        let mail = Settings {
            smtp_host: Some("smtp.example.com".into()),
            from: Some("geoctl@example.com".into()),
            to: vec!["ops@example.com".into()],
            ..Settings::default()
        };
        let spec = ChannelSpec::new("m", Kind::Email, mail.clone(), None).unwrap();
        assert_eq!((spec.settings.smtp_tls, spec.settings.smtp_port), (Some(SmtpTls::Starttls), Some(587)));
        let bad = Settings { to: vec!["not an address".into()], ..mail };
        assert!(ChannelSpec::new("m", Kind::Email, bad, None).is_err());
        let stray = Settings { to: vec!["ops@example.com".into()], ..webhook() };
        assert!(ChannelSpec::new("w", Kind::Webhook, stray, env()).is_err());
    }

    #[test]
    fn secret_refs_are_stored_as_the_schema_says() {
        let json = serde_json::to_value(SecretRef::Env("SLACK_URL".into())).unwrap();
        assert_eq!(json, serde_json::json!({"env": "SLACK_URL"}));
        let json = serde_json::to_value(SecretRef::File("/run/secrets/pd".into())).unwrap();
        assert_eq!(json, serde_json::json!({"file": "/run/secrets/pd"}));
    }

    #[test]
    fn env_secrets_also_come_from_name_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "s3cret\n").unwrap();
        let path_text = path.display().to_string();
        let env = |name: &str| (name == "KEY_FILE").then(|| path_text.clone());
        let secret = SecretRef::Env("KEY".into()).resolve_in(&env).unwrap();
        assert_eq!(secret.expose(), "s3cret");
        let e = SecretRef::Env("OTHER".into()).resolve_in(&env).unwrap_err();
        assert!(e.contains("OTHER_FILE") && !e.contains("s3cret"), "{e}");
    }
}
