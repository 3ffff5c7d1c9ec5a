//! Notification channels and the delivery of the outbox.
//!
//! The evaluator (`geoctl alerter`) writes one `notifications` row per (incident event, channel)
//! in the transaction that writes the event. This module owns everything after that: the
//! channels themselves ([`channel`]), what an event says ([`event`], [`render`]), how each kind
//! of receiver is spoken to ([`send`]), and the loop step that claims due rows, sends them and
//! records what the receiver answered ([`outbox`]). No clap here; `cli/channel.rs` and
//! `cli/notification.rs` wire it.

pub mod channel;
pub mod email;
pub mod event;
pub mod outbox;
pub mod render;
pub mod send;

pub use channel::{Channel, ChannelSpec, Kind, SecretRef, Settings, SmtpTls};
pub use event::Notice;
pub use outbox::{deliver_due, DeliveryOptions, DeliveryReport, Notifier};
pub use render::Renderer;
pub use send::{Answer, Verdict};

use crate::error::{Coded, Exit};

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("invalid channel name `{0}`: use 1-63 lowercase letters, digits, `_`, `.` or `-`, starting with a letter or digit")]
    InvalidName(String),
    #[error("unknown channel type `{0}`; use webhook, slack, email, pagerduty or alertmanager")]
    UnknownKind(String),
    #[error("unknown channel `{name}`; {}", known_list(.known))]
    UnknownChannel { name: String, known: Vec<String> },
    #[error("a {kind} channel needs {what}")]
    Missing { kind: Kind, what: String },
    #[error("{what} is not for {kind} channels; {hint}")]
    NotFor { kind: Kind, what: String, hint: String },
    #[error("invalid {what}: {message}")]
    Invalid { what: String, message: String },
    #[error("channel `{name}` cannot read its secret from {source_name}: {reason}; set it there, or pass --no-secret-check when only the alerter's host has it")]
    SecretUnavailable { name: String, source_name: String, reason: String },
    #[error(
        "channel `{0}` exists with other settings; remove it first (geoctl channel remove {0}) or pick another name"
    )]
    Exists(String),
    #[error("channel `{name}` is named by monitor(s) {}; change their --notify first, or pass --force to remove it from them too", .monitors.join(", "))]
    InUse { name: String, monitors: Vec<String> },
    #[error("template {name}: {reason}")]
    Template { name: String, reason: String },
    #[error("no notification {0}; see geoctl notification list")]
    UnknownNotification(i64),
    #[error("channel `{channel}`: the test notification was not delivered: {answer}")]
    TestFailed { channel: String, answer: String },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl Coded for NotifyError {
    fn exit(&self) -> Exit {
        match self {
            NotifyError::InvalidName(_)
            | NotifyError::UnknownKind(_)
            | NotifyError::UnknownChannel { .. }
            | NotifyError::Missing { .. }
            | NotifyError::NotFor { .. }
            | NotifyError::Invalid { .. }
            | NotifyError::SecretUnavailable { .. }
            | NotifyError::Exists(_)
            | NotifyError::InUse { .. }
            | NotifyError::Template { .. }
            | NotifyError::UnknownNotification(_) => Exit::Input,
            NotifyError::TestFailed { .. } | NotifyError::Database(_) => Exit::Failed,
        }
    }
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "there are none yet: geoctl channel add NAME --type …".to_string()
    } else {
        format!("channels: {}", known.join(", "))
    }
}
