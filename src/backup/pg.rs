//! Running `pg_dump` and `psql` against a database URL without putting a
//! credential on their command line: connection parameters go into `PG*`
//! environment variables and the password into a temporary passfile
//! (mode 0600, removed when done).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::process::Stdio;

use percent_encoding::percent_decode_str;
use tokio::process::Command;

use super::BackupError;
use crate::config::{scrub, Secret};

/// A PostgreSQL client tool (`pg_dump`, `psql`) bound to one database.
pub struct PgTool {
    url: Secret,
    env: BTreeMap<&'static str, String>,
    passfile: Option<Passfile>,
    /// `host:port/db`, for messages.
    pub server: String,
}

/// URL query parameters that libpq also reads from the environment.
const PARAMS: &[(&str, &str)] = &[
    ("host", "PGHOST"),
    ("hostaddr", "PGHOSTADDR"),
    ("port", "PGPORT"),
    ("user", "PGUSER"),
    ("dbname", "PGDATABASE"),
    ("sslmode", "PGSSLMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
    ("connect_timeout", "PGCONNECT_TIMEOUT"),
    ("options", "PGOPTIONS"),
    ("target_session_attrs", "PGTARGETSESSIONATTRS"),
];

impl PgTool {
    pub fn new(url: &Secret) -> Result<Self, BackupError> {
        let bad = |message: &str| {
            BackupError::Input(format!(
                "invalid database URL ({}): {message}; use postgres://user@host:port/db",
                url.masked()
            ))
        };
        let parsed = url::Url::parse(url.expose()).map_err(|e| bad(&e.to_string()))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(bad("not a postgres:// URL"));
        }
        let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        let mut env = BTreeMap::new();
        if let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) {
            env.insert("PGHOST", decode(host.trim_start_matches('[').trim_end_matches(']')));
        }
        if let Some(port) = parsed.port() {
            env.insert("PGPORT", port.to_string());
        }
        if !parsed.username().is_empty() {
            env.insert("PGUSER", decode(parsed.username()));
        }
        let db = parsed.path().trim_start_matches('/');
        if !db.is_empty() {
            env.insert("PGDATABASE", decode(db));
        }
        let mut password = parsed.password().map(decode);
        for (key, value) in parsed.query_pairs() {
            if key == "password" {
                password = Some(value.into_owned());
            } else if let Some((_, var)) = PARAMS.iter().find(|(k, _)| *k == key) {
                env.insert(var, value.into_owned());
            } else {
                tracing::warn!("database URL parameter `{key}` is not passed to pg_dump/psql");
            }
        }
        let passfile = password.filter(|p| !p.is_empty()).map(|p| Passfile::create(&p)).transpose()?;
        let server = format!(
            "{}:{}/{}",
            env.get("PGHOST").map_or("localhost", String::as_str),
            env.get("PGPORT").map_or("5432", String::as_str),
            env.get("PGDATABASE").map_or("", String::as_str)
        );
        Ok(PgTool { url: url.clone(), env, passfile, server })
    }

    /// The same server and credentials, another database.
    pub fn with_database(&self, database: &str) -> Result<Self, BackupError> {
        let mut url = url::Url::parse(self.url.expose()).map_err(|e| BackupError::Input(e.to_string()))?;
        url.set_path(database);
        PgTool::new(&Secret::new(url.to_string()))
    }

    /// The URL, for a sqlx connection.
    pub fn url(&self) -> &Secret {
        &self.url
    }

    /// `program` with this database's connection in its environment and
    /// nothing inherited that could point it elsewhere.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("PG") {
                cmd.env_remove(name);
            }
        }
        cmd.envs(&self.env).env("PGAPPNAME", "geoctl").env("PGCONNECT_TIMEOUT", "10");
        if let Some(passfile) = &self.passfile {
            cmd.env("PGPASSFILE", &passfile.path);
        }
        cmd.stdin(Stdio::null()).kill_on_drop(true);
        cmd
    }

    /// Removes the password from a tool's message.
    pub fn scrub(&self, text: &str) -> String {
        scrub(text, &self.url)
    }
}

/// A libpq passfile holding one password for any host, removed on drop.
struct Passfile {
    path: PathBuf,
}

impl Passfile {
    fn create(password: &str) -> Result<Self, BackupError> {
        let path = std::env::temp_dir().join(format!("geoctl-pgpass-{}", uuid::Uuid::new_v4().simple()));
        let escaped = password.replace('\\', "\\\\").replace(':', "\\:");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("*:*:*:*:{escaped}\n").as_bytes()).map(|_| f))
            .map_err(|e| {
                BackupError::Database(format!("cannot write a temporary passfile in {}: {e}", path.display()))
            })?;
        let _ = file.flush();
        Ok(Passfile { path })
    }
}

impl Drop for Passfile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A PostgreSQL major version as a tool or server reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolVersion {
    pub major: u32,
    pub text: String,
}

impl ToolVersion {
    /// From `pg_dump --version`: `pg_dump (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)`.
    pub fn parse_tool(output: &str) -> Option<Self> {
        let text = output.split_whitespace().nth(2)?.to_string();
        let major = text.split(['.', 'b', 'r', 'd']).next()?.parse().ok()?;
        Some(ToolVersion { major, text })
    }

    /// From `SHOW server_version_num` (150014) and `SHOW server_version` ("15.14 (Debian …)").
    pub fn from_server(num: i32, text: &str) -> Self {
        ToolVersion { major: (num / 10000) as u32, text: text.split_whitespace().next().unwrap_or(text).to_string() }
    }
}

/// `pg_dump`'s version; fails when it is missing.
pub async fn pg_dump_version() -> Result<ToolVersion, BackupError> {
    let out = Command::new("pg_dump").arg("--version").output().await.map_err(|e| {
        BackupError::Input(format!(
            "cannot run pg_dump ({e}); install the PostgreSQL client matching the server (Debian: postgresql-client)"
        ))
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    ToolVersion::parse_tool(&text)
        .ok_or_else(|| BackupError::Database(format!("cannot read pg_dump's version from `{}`", text.trim())))
}

/// A pg_dump older than the server cannot dump it faithfully.
pub fn check_versions(pg_dump: &ToolVersion, server: &ToolVersion) -> Result<(), BackupError> {
    if pg_dump.major < server.major {
        return Err(BackupError::Input(format!(
            "pg_dump {} is older than the server (PostgreSQL {}); install the PostgreSQL {} client tools \
             (Debian: postgresql-client-{}) and put them first on PATH",
            pg_dump.text, server.text, server.major, server.major
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let tool = ToolVersion::parse_tool("pg_dump (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)\n").unwrap();
        assert_eq!(tool.major, 15);
        assert_eq!(ToolVersion::parse_tool("pg_dump (PostgreSQL) 17beta2").unwrap().major, 17);
        let server = ToolVersion::from_server(160004, "16.4 (Debian 16.4-1)");
        let err = check_versions(&tool, &server).unwrap_err().to_string();
        assert!(err.contains("15.14") && err.contains("16.4"), "{err}");
        assert!(check_versions(&tool, &ToolVersion::from_server(150002, "15.2")).is_ok());
    }

    #[test]
    fn credentials_stay_off_the_command_line() {
        let tool = PgTool::new(&Secret::new("postgres://app:s%3Acret@db.example:6543/prod?sslmode=require")).unwrap();
        assert_eq!(tool.env["PGUSER"], "app");
        assert_eq!(tool.env["PGSSLMODE"], "require");
        assert!(!tool.env.values().any(|v| v.contains("cret")));
        let passfile = std::fs::read_to_string(&tool.passfile.as_ref().unwrap().path).unwrap();
        assert_eq!(passfile, "*:*:*:*:s\\:cret\n");
        assert_eq!(tool.server, "db.example:6543/prod");
        let path = tool.passfile.as_ref().unwrap().path.clone();
        drop(tool);
        assert!(!path.exists());
    }
}
