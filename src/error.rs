//! Exit codes, decided in one place.
//!
//! Domain code returns typed errors; commands add context with `anyhow`.
//! [`exit_code`] walks the chain: anything that is the caller's fault
//! (an [`InputError`] anywhere in it, or a clap usage error) is exit 2,
//! everything else is exit 1.

use std::fmt;

/// Success.
pub const EXIT_OK: i32 = 0;
/// The command ran and failed (service unreachable, probe down, …).
pub const EXIT_FAILURE: i32 = 1;
/// The input was wrong: fix the command line, the config or the file.
pub const EXIT_USAGE: i32 = 2;

/// An error caused by what the user asked for. Its message says what is wrong
/// and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError(pub String);

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

/// Shorthand for building an [`InputError`] inside `anyhow` code.
pub fn input_error(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(InputError(message.into()))
}

/// The exit code for an error that reached `main`.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    let is_input = err.chain().any(|cause| {
        cause.is::<InputError>()
            || cause.downcast_ref::<crate::region::RegionError>().is_some_and(|e| e.is_input())
            || cause.downcast_ref::<crate::monitor::MonitorError>().is_some_and(|e| e.is_input())
            || cause.downcast_ref::<crate::config::ConfigError>().is_some_and(|e| e.is_input())
            || cause.downcast_ref::<crate::store::StoreError>().is_some_and(|e| e.is_input())
            || cause.downcast_ref::<crate::backup::BackupError>().is_some_and(|e| e.is_input())
            || cause.downcast_ref::<crate::aws::AwsError>().is_some_and(|e| e.is_input())
            || cause.downcast_ref::<crate::dns::DnsError>().is_some_and(|e| e.is_input())
    });
    if is_input {
        EXIT_USAGE
    } else {
        EXIT_FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_errors_are_exit_2_even_behind_context() {
        let err = input_error("bad region").context("creating monitor");
        assert_eq!(exit_code(&err), EXIT_USAGE);
    }

    #[test]
    fn other_errors_are_exit_1() {
        let err = anyhow::anyhow!("connection refused").context("connecting");
        assert_eq!(exit_code(&err), EXIT_FAILURE);
    }
}
