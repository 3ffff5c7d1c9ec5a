//! Running a planned check once and turning what it measured into the row to
//! record: the one path of `monitor check` and the agents. It lives with the
//! rows it makes, above `monitor` (whose plan it runs), so monitors need not
//! know results.

use uuid::Uuid;

use super::NewResult;
use crate::geo::GeoDb;
use crate::monitor::check::{Check, CheckPlan};
use crate::probe::trace::Route;
use crate::probe::{self, ProbeOptions, ProbeResult};
use crate::synthetic::{flow, FlowResult, RunOptions};

/// What a check measured, as it is shown.
#[derive(Debug, Clone)]
pub enum Measured {
    /// A probe, and the route traced with it when one was. A route this process
    /// was not permitted to trace is recorded as none; its failure says why.
    Probe(Box<ProbeResult>, Option<Route>),
    Flow(FlowResult),
}

/// Runs `plan` on behalf of `region`; `trace` also traces the route when the plan asks for
/// traces. The result is located with `geo` (probes; a flow reaches several places).
pub async fn run(plan: &CheckPlan, monitor: Uuid, region: &str, geo: &GeoDb, trace: bool) -> (NewResult, Measured) {
    let options = ProbeOptions { timeout: plan.timeout, ..ProbeOptions::default() };
    match &plan.check {
        Check::Probe(spec) => {
            let measured = probe::run(spec, &options).await;
            let mut result = NewResult::from_probe(monitor, region, &measured);
            result.locate(geo);
            let mut route = None;
            if let Some((spec, _)) = plan.trace.as_ref().filter(|_| trace) {
                let traced = route.insert(probe::trace::run(spec, &options).await);
                // Not permitted: nothing measured, so nothing added; the route's failure says so.
                let _ = result.add_route(traced, geo);
            }
            (result, Measured::Probe(Box::new(measured), route))
        }
        Check::Synthetic(script) => {
            let measured = flow::run(script, &RunOptions::new(plan.timeout)).await;
            (NewResult::from_flow(monitor, region, &measured), Measured::Flow(measured))
        }
    }
}
