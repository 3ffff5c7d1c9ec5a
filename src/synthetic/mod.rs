//! Synthetic checks: scripted multi-step API flows and real-browser journeys
//! (the existing app's `synthetic_test` monitors), run like any other probe
//! from every region a monitor is assigned to.
//!
//! `browser` drives headless Chromium for the browser steps of a script.

pub mod browser;
