//! Alerting's evaluation half: recorded results → incidents and the
//! notifications owed for them.
//!
//! - [`eval`] is pure: from each (monitor, region)'s new results, the state the
//!   last tick left, the open incidents, maintenance and agent liveness, it
//!   decides the new state and the incident transitions. No I/O, so every rule
//!   is unit-tested on its own.
//! - [`store`] reads all of that in one transaction per tick (results keyed by
//!   monitor and a `checked_at` range), runs [`eval::evaluate`], and writes the
//!   state, the incidents, their events and one outbox row per (event, channel)
//!   in the same transaction; `notify` delivers the outbox.
//! - [`leader`]: one active alerter across every region, by an advisory lock.
//! - [`manage`]: what operators do by hand (ack, resolve, maintenance windows,
//!   a monitor's alert settings), through the same event writer.

pub mod eval;
pub mod leader;
pub mod manage;
pub mod service;
pub mod store;

use serde::Serialize;

// The values live with the rest of the configuration, which resolves them and sits below
// alerting; `alert::Settings` stays their name here.
pub use crate::config::AlertSettings as Settings;

/// What an incident is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    Monitor(uuid::Uuid),
    Region(String),
}

/// Why an incident opened, as stored in `incidents.cause`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    Down,
    Latency,
    RegionImpaired,
    NoAgent,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Down => "down",
            Cause::Latency => "latency",
            Cause::RegionImpaired => "region_impaired",
            Cause::NoAgent => "no_agent",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Cause::Down, Cause::Latency, Cause::RegionImpaired, Cause::NoAgent].into_iter().find(|c| c.as_str() == text)
    }

    /// Latency is a warning; everything else pages.
    pub fn severity(self) -> &'static str {
        match self {
            Cause::Latency => "warning",
            Cause::Down | Cause::RegionImpaired | Cause::NoAgent => "critical",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("no incident {0}; list them with `geoctl incident list`")]
    NoIncident(i64),
    #[error("incident {0} is already resolved")]
    AlreadyResolved(i64),
    #[error("no maintenance window {0}; list them with `geoctl maintenance list`")]
    NoWindow(i64),
    #[error("unknown channel{} {}; add {} with `geoctl channel add`, list them with `geoctl channel list`",
        if .0.len() > 1 { "s" } else { "" },
        .0.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", "),
        if .0.len() > 1 { "them" } else { "it" })]
    UnknownChannels(Vec<String>),
    #[error("{origin} names unknown channel{} {}; add {} with `geoctl channel add` or fix the setting",
        if .names.len() > 1 { "s" } else { "" },
        .names.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", "),
        if .names.len() > 1 { "them" } else { "it" })]
    UnknownConfiguredChannels { origin: String, names: Vec<String> },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Monitor(#[from] crate::monitor::MonitorError),
    #[error(transparent)]
    Region(#[from] crate::region::RegionError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl crate::error::Coded for AlertError {
    fn exit(&self) -> crate::error::Exit {
        use crate::error::Exit;
        match self {
            AlertError::Database(_) => Exit::Failed,
            AlertError::Monitor(e) => e.exit(),
            AlertError::Region(e) => e.exit(),
            AlertError::NoIncident(_)
            | AlertError::AlreadyResolved(_)
            | AlertError::NoWindow(_)
            | AlertError::UnknownChannels(_)
            | AlertError::UnknownConfiguredChannels { .. }
            | AlertError::Invalid(_) => Exit::Input,
        }
    }
}

/// `1000` → `1,000`, as summaries read.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `a`, `a and b`, `a, b and c`.
pub fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}
