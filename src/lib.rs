//! geoctl: the control plane for geo-distributed uptime and latency
//! monitoring on Docker Swarm. The domain modules hold no CLI code; `cli`
//! wires them to the command line.

pub mod cli;
pub mod config;
pub mod duration;
pub mod error;
pub mod monitor;
pub mod output;
pub mod probe;
pub mod region;
pub mod report;
pub mod results;
pub mod store;
pub mod text;
