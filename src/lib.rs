//! geoctl: the control plane for geo-distributed uptime and latency
//! monitoring on Docker Swarm. The domain modules hold no CLI code; `cli`
//! wires them to the command line.

pub mod agent;
pub mod alert;
pub mod aws;
pub mod backup;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod dns;
pub mod duration;
pub mod error;
pub mod geo;
pub mod health;
pub mod monitor;
pub mod notify;
pub mod probe;
pub mod provision;
pub mod queue;
pub mod region;
pub mod report;
pub mod results;
pub mod stack;
pub mod store;
pub mod swarm;
pub mod synthetic;
#[cfg(test)]
mod test_support;
pub mod text;
