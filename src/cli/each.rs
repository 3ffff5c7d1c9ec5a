//! `--all`: one command over every configured region, region by region. A
//! region that fails (its engine unreachable, its stack not converging) is
//! reported for that region, with the error naming its engine, and the others
//! carry on; the command fails (exit 1) when any region did.

use std::future::Future;

use super::Context;
use crate::cli::output::note;

/// The regions `--all` covers: those of the config (file, `regions.<code>`,
/// or per-region variables), in order.
pub fn configured_regions(ctx: &Context) -> crate::error::Result<Vec<String>> {
    let codes: Vec<String> = ctx.settings.regions.keys().cloned().collect();
    if codes.is_empty() {
        return Err(crate::error::input_error(
            "--all found no region in the config: add regions.<code> to the config file (or set a per-region variable such as DOCKER_HOST_<REGION>)",
        ));
    }
    Ok(codes)
}

/// Runs `run` for each configured region in turn; `what` names the command in the summary.
pub async fn each_region<F, Fut>(ctx: &Context, what: &str, mut run: F) -> crate::error::Result<()>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = crate::error::Result<()>>,
{
    let codes = configured_regions(ctx)?;
    let mut failed = Vec::new();
    for code in &codes {
        if let Err(err) = run(code.clone()).await {
            note(format!("region {code}: {what} failed: {err:#}"));
            failed.push(code.clone());
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(crate::error::failed(format!(
        "{what} failed in {} of {} region(s): {}",
        failed.len(),
        codes.len(),
        failed.join(", ")
    )))
}
