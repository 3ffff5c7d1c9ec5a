//! `geoctl dashboard`: the read-only web UI and its JSON API.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::Context;
use crate::cli::output::note;
use crate::dashboard::{self, data::Source, Auth};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on; beyond loopback it needs --token-file or --basic-auth-file
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// File holding the bearer token every request must show (one line, 16 characters or more)
    #[arg(long, value_name = "FILE", conflicts_with = "basic_auth_file")]
    token_file: Option<PathBuf>,
    /// File holding `user:password` for HTTP basic authentication
    #[arg(long, value_name = "FILE")]
    basic_auth_file: Option<PathBuf>,
}

pub async fn run(ctx: &Context, args: Args) -> crate::error::Result<()> {
    // Refused before anything connects: an unprotected public listener never starts.
    let auth = Auth::from_files(args.token_file.as_deref(), args.basic_auth_file.as_deref())?;
    dashboard::check_listen(args.listen, &auth)?;
    let pool = ctx.pool().await?;
    let source = Source::new(pool, ctx.settings.clone());
    let ready = |bound: SocketAddr| {
        // The URL on stdout (scripts read it), the talk on stderr.
        println!("http://{bound}/");
        note(format!("dashboard listening on http://{bound}/ (Ctrl-C stops it)"));
    };
    dashboard::serve(source, auth, args.listen, ready, shutdown()).await?;
    Ok(())
}

/// SIGINT or SIGTERM: stop taking connections and let the ones in flight finish.
async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
