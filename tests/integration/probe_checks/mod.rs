//! Integration tests of the probe engine against local servers started by
//! the tests themselves (127.0.0.1 only, or a network namespace they make).

pub(crate) mod support;

mod body_checks;
mod dns_checks;
mod eyeballs_checks;
mod h2_checks;
mod http_checks;
mod lookup_checks;
mod ping_checks;
mod redirect_checks;
mod tcp_checks;
mod tls_checks;
