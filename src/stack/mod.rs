//! Per-region stacks: rendered from Tera templates (`templates/`), turned into
//! Swarm service specs, and deployed the way `docker stack deploy` does.
//!
//! Rendering needs only the region and the configuration; [`deploy`] is the
//! part that talks to an engine.

pub mod compose;
pub mod convert;
pub mod deploy;
pub mod ready;
mod settings;

pub use settings::{parse_bytes, parse_cpus, StackSettings, DEFAULT_BROWSER_IMAGE, DEFAULT_IMAGE};

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{env_suffix, Secret, Settings};
use crate::region::Region;

/// Whether the region's stack runs a browser service (`regions.<code>.stack.browser_replicas` > 0).
/// A stack section that does not resolve counts as none: the commands that deploy it say why.
pub fn has_browser_service(settings: &Settings, code: &str) -> bool {
    StackSettings::resolve(settings, code).is_ok_and(|stack| stack.browser_replicas > 0)
}

/// Whether a region's browser queue is part of it, for the commands that read or act on its
/// queues (`queue pause` and the other actions, `health`): when its stack runs a browser service,
/// or the queue is in use in the Redis `plain` talks to ([`crate::queue::control::in_use`], which
/// writes nothing). `queue status` decides the same from the counts it has already read, and also
/// shows a browser queue that only has live agents.
pub async fn browser_lane_in_use(
    settings: &Settings,
    plain: &crate::queue::RegionQueue,
) -> Result<bool, crate::queue::QueueError> {
    Ok(has_browser_service(settings, &plain.region)
        || crate::queue::control::in_use(plain, crate::queue::Lane::Browser).await?)
}

/// The template every stack is rendered from unless `--templates DIR` or
/// `stack.templates` names another directory holding a `stack.yml.tera`.
pub const TEMPLATE_NAME: &str = "stack.yml.tera";
const BUILT_IN: &str = include_str!("../../templates/stack.yml.tera");

// The labels and names Swarm objects carry are the engine module's; the stack uses them.
pub use crate::swarm::secret::{versioned_name, SECRET_BASE_LABEL};
pub use crate::swarm::NAMESPACE_LABEL;
/// The label `docker stack` records a service's image under.
pub const IMAGE_LABEL: &str = "com.docker.stack.image";
/// geoctl's fingerprint of the spec it sent: equal means nothing to update.
pub const SPEC_HASH_LABEL: &str = "io.geoctl.spec-hash";

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("{key}: {message}")]
    Setting { key: String, message: String },
    #[error("template {path}: {message}")]
    Template { path: String, message: String },
    #[error("the stack rendered from {path} is not a valid stack file: {message}")]
    Compose { path: String, message: String },
    #[error("the stack's secret `{key}` has no source; set {env} (or {env}_FILE, or `{file_key}` in the config file)")]
    SecretSource { key: String, env: String, file_key: String },
}

impl crate::error::Coded for StackError {
    /// All of these are fixed by changing the configuration or the templates.
    fn exit(&self) -> crate::error::Exit {
        match self {
            StackError::Setting { .. }
            | StackError::Template { .. }
            | StackError::Compose { .. }
            | StackError::SecretSource { .. } => crate::error::Exit::Input,
        }
    }
}

/// A Docker secret the stack reads through `<ENV>_FILE`.
#[derive(Debug, Clone, Serialize)]
pub struct StackSecret {
    /// Key in the stack file and file name under /run/secrets.
    pub key: String,
    /// The variable the agent reads (with `_FILE`).
    pub env: String,
    /// The Docker secret's name: `<stack>_<key>-<digest>`, new for each new value.
    pub name: String,
    /// `<stack>_<key>`: what every version of it shares.
    pub base: String,
    #[serde(skip)]
    pub value: Secret,
}

/// A rendered stack: the file, and what deploying it needs besides.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub stack: StackSettings,
    pub yaml: String,
    pub secrets: Vec<StackSecret>,
    /// Where the template came from, for messages.
    pub template: String,
}

#[derive(Serialize)]
struct RegionVars<'a> {
    code: &'a str,
    name: &'a str,
}

/// Renders `region`'s stack from the configuration. `templates` (a directory)
/// beats `stack.templates` from the configuration, which beats the built-in one.
pub fn render(settings: &Settings, region: &Region, templates: Option<&Path>) -> Result<Rendered, StackError> {
    let stack = StackSettings::resolve(settings, &region.code)?;
    let secrets = secrets(settings, &region.code, &stack.name)?;
    let dashboard_auth = if stack.dashboard { Some(dashboard_secret(settings, &stack.name)?) } else { None };
    let dir: Option<PathBuf> = templates.map(Path::to_path_buf).or_else(|| stack.templates.clone());
    let (text, origin) = match &dir {
        Some(dir) => {
            let path = dir.join(TEMPLATE_NAME);
            let text = std::fs::read_to_string(&path).map_err(|e| StackError::Template {
                path: path.display().to_string(),
                message: format!("cannot read it ({e}); --templates DIR must hold a {TEMPLATE_NAME}"),
            })?;
            (text, path.display().to_string())
        }
        None => (BUILT_IN.to_string(), format!("templates/{TEMPLATE_NAME} (built in)")),
    };
    let mut tera = tera::Tera::default();
    tera.autoescape_on(vec![]);
    let template_error = |e: tera::Error| StackError::Template { path: origin.clone(), message: error_chain(&e) };
    tera.add_raw_template(TEMPLATE_NAME, &text).map_err(template_error)?;
    let mut context = tera::Context::new();
    context.insert("region", &RegionVars { code: &region.code, name: &region.name });
    context.insert("suffix", &env_suffix(&region.code));
    context.insert("stack", &stack);
    context.insert("secrets", &secrets);
    context.insert("dashboard_auth", &dashboard_auth);
    context.insert("version", env!("CARGO_PKG_VERSION"));
    let yaml = tera.render(TEMPLATE_NAME, &context).map_err(template_error)?;
    // What the template produced must be a stack this module can deploy.
    compose::ComposeFile::parse(&yaml).map_err(|message| StackError::Compose { path: origin.clone(), message })?;
    let secrets = secrets.into_iter().chain(dashboard_auth).collect();
    Ok(Rendered { stack, yaml, secrets, template: origin })
}

/// Tera nests the useful part (the line, the missing variable) in sources.
fn error_chain(err: &tera::Error) -> String {
    crate::error::chain(err).replace('\n', " ")
}

/// The dashboard service's credentials, from the file `dashboard.token_file` or
/// `dashboard.basic_auth_file` names (read and checked as `geoctl dashboard` reads them): it
/// listens beyond loopback, so it never runs without one.
fn dashboard_secret(settings: &Settings, stack: &str) -> Result<StackSecret, StackError> {
    let d = &settings.dashboard;
    let path = |f: &Option<crate::config::Sourced<PathBuf>>| f.as_ref().map(|f| f.value.clone());
    let refused = |message: String| StackError::Setting { key: "stack.dashboard".into(), message };
    let auth = crate::dashboard::Auth::from_files(path(&d.token_file).as_deref(), path(&d.basic_auth_file).as_deref())
        .map_err(|e| refused(e.to_string()))?;
    let (env, value) = match auth {
        crate::dashboard::Auth::Bearer(token) => ("DASHBOARD_TOKEN", token),
        crate::dashboard::Auth::Basic(line) => ("DASHBOARD_BASIC_AUTH", line),
        crate::dashboard::Auth::Open => {
            return Err(refused(
                "the dashboard service listens beyond loopback and needs credentials: set dashboard.token_file \
                 or dashboard.basic_auth_file (or DASHBOARD_TOKEN_FILE / DASHBOARD_BASIC_AUTH_FILE)"
                    .into(),
            ))
        }
    };
    let key = env.to_ascii_lowercase();
    let base = format!("{stack}_{key}");
    let name = versioned_name(&base, &value);
    Ok(StackSecret { key, env: env.into(), name, base, value })
}

/// The secrets an agent of `code` needs, with their values from the configuration.
fn secrets(settings: &Settings, code: &str, stack: &str) -> Result<Vec<StackSecret>, StackError> {
    let suffix = env_suffix(code);
    let region = settings.regions.get(code);
    let sources = [
        ("DATABASE_URL".to_string(), "database_url".to_string(), settings.database_url.as_ref(), true),
        (
            format!("REDIS_URL_{suffix}"),
            format!("regions.{code}.redis_url"),
            region.and_then(|r| r.redis_url.as_ref()),
            true,
        ),
        (
            format!("REDIS_PASSWORD_{suffix}"),
            format!("regions.{code}.redis_password"),
            region.and_then(|r| r.redis_password.as_ref()),
            false,
        ),
    ];
    let mut out = Vec::new();
    for (env, file_key, value, required) in sources {
        let key = env.to_ascii_lowercase();
        let Some(value) = value else {
            if required {
                return Err(StackError::SecretSource { key, env, file_key });
            }
            continue;
        };
        let base = format!("{stack}_{key}");
        let name = versioned_name(&base, &value.value);
        out.push(StackSecret { key, env, name, base, value: value.value.clone() });
    }
    Ok(out)
}
