//! Integration tests of the probe engine against local servers started by
//! the tests themselves (127.0.0.1 only).

pub(crate) mod support;

mod dns_checks;
mod http_checks;
mod ping_checks;
mod tcp_checks;
mod tls_checks;
