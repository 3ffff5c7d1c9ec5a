//! Phase timing types and helpers. See the module docs of [`crate::probe`]
//! for the exact definition of each phase.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Duration of each phase in milliseconds; `None` when the phase did not happen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Phases {
    /// Name resolution. `None` for IP literals.
    pub dns_ms: Option<f64>,
    /// TCP connect.
    pub connect_ms: Option<f64>,
    /// TLS handshake. `None` for plain HTTP/TCP.
    pub tls_ms: Option<f64>,
    /// Request fully written -> first response byte.
    pub first_byte_ms: Option<f64>,
    /// Whole check.
    pub total_ms: f64,
}

/// Cumulative times from the start of the check (curl `-w` semantics):
/// `namelookup_ms` = time_namelookup, `connect_ms` = time_connect,
/// `tls_ms` = time_appconnect, `first_byte_ms` = time_starttransfer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub namelookup_ms: Option<f64>,
    pub connect_ms: Option<f64>,
    pub tls_ms: Option<f64>,
    pub first_byte_ms: Option<f64>,
}

/// Milliseconds as f64 with microsecond resolution.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// A monotonic stopwatch anchored at the start of a check.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start: Instant,
}

impl Clock {
    pub(crate) fn start() -> Self {
        Clock { start: Instant::now() }
    }

    pub(crate) fn started(&self) -> Instant {
        self.start
    }

    pub(crate) fn since_start(&self, at: Instant) -> f64 {
        ms(at.saturating_duration_since(self.start))
    }

    pub(crate) fn elapsed_ms(&self) -> f64 {
        ms(self.start.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ms_rounds_to_microseconds() {
        assert_eq!(ms(Duration::from_micros(1500)), 1.5);
        assert_eq!(ms(Duration::from_nanos(1_234_567)), 1.235);
        assert_eq!(ms(Duration::ZERO), 0.0);
    }
}
