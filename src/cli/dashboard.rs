//! `geoctl dashboard`: the read-only web UI and its JSON API.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::Context;
use crate::cli::output::note;
use crate::config::{DashboardFlags, Sourced};
use crate::dashboard::{self, data::Source, Auth};

// The values are resolved with every other setting (`config::Settings::resolve`: flag >
// environment > `dashboard:` in the config file > default), so clap only collects the flags' text.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on; beyond loopback it needs a token or basic-auth file [env: DASHBOARD_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<String>,
    /// File holding the bearer token every request must show (one line, 16 characters or more) [env: DASHBOARD_TOKEN_FILE]
    #[arg(long, value_name = "FILE", conflicts_with = "basic_auth_file")]
    token_file: Option<String>,
    /// File holding `user:password` for HTTP basic authentication [env: DASHBOARD_BASIC_AUTH_FILE]
    #[arg(long, value_name = "FILE")]
    basic_auth_file: Option<String>,
}

impl Args {
    /// The flags given, for the configuration resolver.
    pub fn flags(&self) -> DashboardFlags {
        DashboardFlags {
            listen: self.listen.clone(),
            token_file: self.token_file.clone(),
            basic_auth_file: self.basic_auth_file.clone(),
        }
    }
}

pub async fn run(ctx: &Context, _args: Args) -> crate::error::Result<()> {
    let settings = &ctx.settings.dashboard;
    let listen = settings.listen.value;
    let file = |f: &Option<Sourced<PathBuf>>| f.as_ref().map(|f| f.value.clone());
    // Refused before anything connects: an unprotected public listener never starts.
    let auth = Auth::from_files(file(&settings.token_file).as_deref(), file(&settings.basic_auth_file).as_deref())?;
    dashboard::check_listen(listen, &auth)?;
    let pool = ctx.pool().await?;
    let source = Source::new(pool, ctx.settings.clone());
    let ready = |bound: SocketAddr| {
        // The URL on stdout (scripts read it), the talk on stderr.
        println!("http://{bound}/");
        note(format!("dashboard listening on http://{bound}/ (Ctrl-C stops it)"));
    };
    dashboard::serve(source, auth, listen, ready, shutdown()).await?;
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
