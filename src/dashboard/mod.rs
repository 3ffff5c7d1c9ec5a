//! `geoctl dashboard`: a read-only web UI and the JSON API under it (`/api/v1/…`), served by axum
//! on the command's tokio runtime. Pages are Tera templates rendered on the server with inline
//! SVG charts; one small script (no inline script anywhere, so the Content-Security-Policy can
//! forbid them) refreshes the page's content every few seconds and keeps the range in the URL.
//! Templates, script and style sheet are compiled into the binary: nothing is fetched from
//! anywhere else, so it works offline.
//!
//! Listening beyond loopback needs a bearer token or basic credentials ([`auth`]).

pub mod auth;
mod cache;
pub mod data;
mod pages;
pub mod range;
mod server;
pub mod statuspage;

use std::net::SocketAddr;

use uuid::Uuid;

pub use auth::Auth;
pub use server::serve;

/// Why the dashboard cannot start or answer.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error(
        "refusing to listen on {0} without a token or basic-auth file (--token-file or --basic-auth-file, \
         DASHBOARD_TOKEN_FILE or DASHBOARD_BASIC_AUTH_FILE, dashboard.token_file or \
         dashboard.basic_auth_file): beyond loopback anyone who reaches the port could read every monitor; \
         give one of them, or listen on 127.0.0.1"
    )]
    Unprotected(SocketAddr),
    #[error("cannot use the credentials file {path}: {why}")]
    AuthFile { path: String, why: String },
    #[error(
        "both a token file and a basic-auth file are set (flags, DASHBOARD_* or dashboard: in the config \
         file); keep one"
    )]
    TwoAuths,
    #[error("cannot listen on {addr}: {why}")]
    Bind { addr: SocketAddr, why: String },
    #[error("no monitor {0}")]
    NoMonitor(Uuid),
    #[error(transparent)]
    StatusPage(#[from] statuspage::StatusPageError),
    #[error(transparent)]
    Range(#[from] range::RangeError),
    #[error("rendering the page: {0}")]
    Template(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Monitor(#[from] crate::monitor::MonitorError),
    #[error(transparent)]
    Region(#[from] crate::region::RegionError),
    #[error(transparent)]
    Alert(#[from] crate::alert::AlertError),
}

impl crate::error::Coded for DashboardError {
    fn exit(&self) -> crate::error::Exit {
        use crate::error::Exit;
        match self {
            DashboardError::Unprotected(_)
            | DashboardError::AuthFile { .. }
            | DashboardError::TwoAuths
            | DashboardError::NoMonitor(_)
            | DashboardError::Range(_) => Exit::Input,
            DashboardError::StatusPage(e) => crate::error::Coded::exit(e),
            DashboardError::Bind { .. }
            | DashboardError::Template(_)
            | DashboardError::Db(_)
            | DashboardError::Monitor(_)
            | DashboardError::Region(_)
            | DashboardError::Alert(_) => Exit::Failed,
        }
    }
}

impl crate::error::Coded for range::RangeError {
    fn exit(&self) -> crate::error::Exit {
        crate::error::Exit::Input
    }
}

/// Refuses an address beyond loopback when nothing protects it. `0.0.0.0` and `::` are every
/// address, so beyond loopback too.
pub fn check_listen(addr: SocketAddr, auth: &Auth) -> Result<(), DashboardError> {
    if auth.is_open() && !addr.ip().is_loopback() {
        return Err(DashboardError::Unprotected(addr));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn only_loopback_may_go_unprotected() {
        let open = Auth::Open;
        assert!(check_listen("127.0.0.1:8080".parse().unwrap(), &open).is_ok());
        assert!(check_listen("127.3.4.5:8080".parse().unwrap(), &open).is_ok());
        assert!(check_listen("[::1]:8080".parse().unwrap(), &open).is_ok());
        for beyond in ["0.0.0.0:8080", "[::]:8080", "10.0.0.5:8080", "172.17.0.1:8080"] {
            assert!(matches!(check_listen(beyond.parse().unwrap(), &open), Err(DashboardError::Unprotected(_))));
        }
        let token = Auth::Bearer(Secret::new("0123456789abcdef"));
        assert!(check_listen("0.0.0.0:8080".parse().unwrap(), &token).is_ok());
    }
}
