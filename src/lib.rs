//! geoctl: the control plane for geo-distributed uptime and latency
//! monitoring on Docker Swarm. The domain modules hold no CLI code; `cli`
//! wires them to the command line.
//!
//! The modules are layered, lowest first; each imports only modules on the lines above its own,
//! so no two import each other, even through others (`scripts/lib/module_shape.py` shows the
//! graph and any cycle). Something a lower module needs from a higher one moves down to the
//! lower module, or the caller hands it in (as `monitor apply` is handed alerting's writer).
//!
//! ```text
//! error duration text           leaves: no import of the crate
//! probe geo
//! config                        every setting
//! store swarm aws synthetic
//! region notify dns backup
//! monitor
//! results queue
//! agent stack health
//! alert provision
//! report
//! dashboard
//! cli
//! ```

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
