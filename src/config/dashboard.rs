//! `geoctl dashboard`'s settings: flag > environment > `dashboard:` in the config file >
//! default, so a dashboard run as a service (or by hand) can keep them in the file, and
//! `config show` says where each came from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::agent::{defaulted, flag, parse_listen};
use super::{ok_string, ConfigError, DashboardSection, Layers, Sourced};

/// The dashboard's flags as given on the command line (`None`: not given).
#[derive(Debug, Clone, Default)]
pub struct DashboardFlags {
    pub listen: Option<String>,
    pub token_file: Option<String>,
    pub basic_auth_file: Option<String>,
}

/// The dashboard's settings, each with its origin. The credentials files are only named here:
/// the dashboard reads (and checks) them when it starts.
#[derive(Debug, Clone)]
pub struct Dashboard {
    pub listen: Sourced<SocketAddr>,
    pub token_file: Option<Sourced<PathBuf>>,
    pub basic_auth_file: Option<Sourced<PathBuf>>,
}

impl Dashboard {
    pub(super) fn resolve(
        layers: &Layers,
        flags: &DashboardFlags,
        file: Option<&DashboardSection>,
        cwd: &Path,
    ) -> Result<Self, ConfigError> {
        let file = file.cloned().unwrap_or_default();
        // A relative path is taken from the working directory, as the GeoIP databases' are.
        let path = |s: &str| ok_string(s).map(|s| cwd.join(s));
        Ok(Dashboard {
            listen: defaulted(
                layers,
                flag("--listen", &flags.listen),
                "DASHBOARD_LISTEN",
                file.listen.as_deref(),
                "127.0.0.1:8080",
                parse_listen,
            )?,
            token_file: layers.plain(
                flag("--token-file", &flags.token_file),
                "DASHBOARD_TOKEN_FILE",
                file.token_file.as_ref().and_then(|p| p.to_str()),
                None,
                path,
            )?,
            basic_auth_file: layers.plain(
                flag("--basic-auth-file", &flags.basic_auth_file),
                "DASHBOARD_BASIC_AUTH_FILE",
                file.basic_auth_file.as_ref().and_then(|p| p.to_str()),
                None,
                path,
            )?,
        })
    }
}
