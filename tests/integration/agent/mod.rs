//! `geoctl agent` against real Redis and PostgreSQL: the end-to-end scenario,
//! the fault drills (each counting results per scheduled run: none doubled,
//! none lost beyond an outage) and bad input.

mod bad_input;
mod drills;
mod e2e;
pub mod harness;
mod slots;
