//! One integration-test binary; every test talks to real PostgreSQL (and,
//! where it needs one, Redis) started by `scripts/test`, in a database of its own.

mod support;

mod agent;
mod alert;
mod backup;
mod browser;
mod config_cli;
mod dashboard;
mod db;
mod dns;
mod examples;
mod geo;
mod health;
mod history;
mod mmdb;
mod monitor;
mod notify;
mod probe_checks;
mod probe_cli;
mod prometheus;
mod queue;
mod region;
mod report;
mod results;
mod scale;
mod scripts;
mod swarm;
mod swarm_browser;
mod swarms;
mod synthetic;
mod trace;
