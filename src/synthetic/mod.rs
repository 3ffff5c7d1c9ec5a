//! Synthetic checks: scripted multi-step API flows and real-browser journeys
//! (the existing app's `synthetic_test` monitors), run like any other probe
//! from every region a monitor is assigned to.
//!
//! * [`script`]: the YAML script, parsed and validated before it is stored or run.
//! * [`flow`]: running a script once; each step's timing and outcome, the first failure.
//! * [`browser`]: headless Chromium for the browser steps of a script.

pub mod browser;
pub mod flow;
pub mod script;

pub use flow::{FlowResult, RunOptions, StepOutcome, StepResult};
pub use script::{Script, ScriptError};
