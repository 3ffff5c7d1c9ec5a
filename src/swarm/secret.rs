//! Swarm secrets. Their values go from a file, a variable or stdin straight
//! to the engine: never on argv, stdout or in logs. Swarm secrets cannot
//! change, so a rotation is a new versioned secret that the services move to,
//! after which the old one goes.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use bollard::models::{Secret as DockerSecret, SecretSpec, ServiceSpec};
use bollard::query_parameters::{ListSecretsOptions, ListServicesOptions, UpdateServiceOptions};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{api_message, Engine, SwarmError, NAMESPACE_LABEL};
use crate::config::Secret;

/// One row of `secret ls` (never the value: the API does not return it).
#[derive(Debug, Clone, Serialize)]
pub struct SecretRow {
    pub name: String,
    pub id: String,
    pub base: Option<String>,
    pub stack: Option<String>,
    pub created_at: Option<String>,
}

/// What a rotation did.
#[derive(Debug, Clone, Serialize)]
pub struct Rotation {
    pub base: String,
    pub new_name: String,
    pub unchanged: bool,
    pub services: Vec<String>,
    pub removed: Vec<String>,
}

/// A secret's unversioned name: every rotation of it shares this label.
pub const SECRET_BASE_LABEL: &str = "io.geoctl.secret";

/// `<base>-<12 hex digits>`: a new value gets a new name, since Swarm secrets
/// cannot change; the same value always gets the same name, so a redeploy
/// with nothing new changes nothing.
pub fn versioned_name(base: &str, value: &Secret) -> String {
    let mut hasher = Sha256::new();
    hasher.update(base.as_bytes());
    hasher.update([0]);
    hasher.update(value.expose().as_bytes());
    let digest = hasher.finalize();
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("{base}-{hex}")
}

impl Engine {
    pub async fn secrets(&self) -> Result<Vec<DockerSecret>, SwarmError> {
        self.docker.list_secrets(None::<ListSecretsOptions>).await.map_err(SwarmError::api("listing secrets"))
    }

    pub async fn secret_rows(&self) -> Result<Vec<SecretRow>, SwarmError> {
        self.require_manager().await?;
        let mut rows: Vec<SecretRow> = self
            .secrets()
            .await?
            .into_iter()
            .map(|s| {
                let spec = s.spec.unwrap_or_default();
                let labels = spec.labels.unwrap_or_default();
                SecretRow {
                    name: spec.name.unwrap_or_default(),
                    id: s.id.unwrap_or_default(),
                    base: labels.get(SECRET_BASE_LABEL).cloned(),
                    stack: labels.get(NAMESPACE_LABEL).cloned(),
                    created_at: s.created_at.map(|d| d.to_string()),
                }
            })
            .collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(rows)
    }

    /// Secret ids by name.
    pub async fn secret_ids(&self) -> Result<BTreeMap<String, String>, SwarmError> {
        Ok(self.secrets().await?.into_iter().filter_map(|s| Some((s.spec?.name?, s.id?))).collect())
    }

    /// Creates a secret; the value travels only in the request body.
    pub async fn create_secret(
        &self,
        name: &str,
        value: &Secret,
        labels: HashMap<String, String>,
    ) -> Result<String, SwarmError> {
        let spec = SecretSpec {
            name: Some(name.to_string()),
            labels: Some(labels),
            data: Some(base64::engine::general_purpose::STANDARD.encode(value.expose())),
            ..Default::default()
        };
        let created = self
            .docker
            .create_secret(spec)
            .await
            .map_err(|e| SwarmError::Api { action: format!("creating secret {name}"), message: api_message(&e) })?;
        Ok(created.id)
    }

    /// Rotates the secret whose base name (or current name) is `name` to `value`:
    /// creates `<base>-<digest>`, moves every service that used an older
    /// version to it, waits for them, then removes the old versions.
    pub async fn rotate_secret(&self, name: &str, value: &Secret, dry_run: bool) -> Result<Rotation, SwarmError> {
        self.require_manager().await?;
        let all = self.secrets().await?;
        let versions: Vec<&DockerSecret> = all
            .iter()
            .filter(|s| {
                let spec = s.spec.as_ref();
                let labels = spec.and_then(|s| s.labels.as_ref());
                spec.and_then(|s| s.name.as_deref()) == Some(name)
                    || labels.and_then(|l| l.get(SECRET_BASE_LABEL)).map(String::as_str) == Some(name)
            })
            .collect();
        let Some(first) = versions.first() else {
            return Err(SwarmError::Invalid(format!(
                "no secret named `{name}` (or versions of it); create it with `geoctl secret create {name}`"
            )));
        };
        let labels = first.spec.as_ref().and_then(|s| s.labels.clone()).unwrap_or_default();
        let base = labels.get(SECRET_BASE_LABEL).cloned().unwrap_or_else(|| name.to_string());
        let new_name = versioned_name(&base, value);
        let old_ids: Vec<String> = versions
            .iter()
            .filter(|s| s.spec.as_ref().and_then(|s| s.name.as_deref()) != Some(new_name.as_str()))
            .filter_map(|s| s.id.clone())
            .collect();
        let exists = versions.iter().any(|s| s.spec.as_ref().and_then(|s| s.name.as_deref()) == Some(&new_name));

        let services = self
            .docker
            .list_services(None::<ListServicesOptions>)
            .await
            .map_err(SwarmError::api("listing services"))?;
        let users: Vec<_> =
            services.into_iter().filter(|s| secret_refs(s.spec.as_ref()).any(|id| old_ids.contains(&id))).collect();
        let mut rotation = Rotation {
            base: base.clone(),
            new_name: new_name.clone(),
            unchanged: exists && users.is_empty() && old_ids.is_empty(),
            services: users.iter().filter_map(|s| s.spec.as_ref()?.name.clone()).collect(),
            removed: versions
                .iter()
                .filter(|s| s.id.as_ref().is_some_and(|id| old_ids.contains(id)))
                .filter_map(|s| s.spec.as_ref()?.name.clone())
                .collect(),
        };
        if dry_run || rotation.unchanged {
            return Ok(rotation);
        }
        let mut new_labels = labels.clone();
        new_labels.insert(SECRET_BASE_LABEL.into(), base.clone());
        let new_id = if exists {
            all.iter()
                .find(|s| s.spec.as_ref().and_then(|s| s.name.as_deref()) == Some(&new_name))
                .and_then(|s| s.id.clone())
                .unwrap_or_default()
        } else {
            self.create_secret(&new_name, value, new_labels).await?
        };
        let mut moved = Vec::new();
        for service in &users {
            let mut spec = service.spec.clone().unwrap_or_default();
            let refs =
                spec.task_template.as_mut().and_then(|t| t.container_spec.as_mut()).and_then(|c| c.secrets.as_mut());
            for r in refs.into_iter().flatten() {
                if r.secret_id.as_ref().is_some_and(|id| old_ids.contains(id)) {
                    r.secret_id = Some(new_id.clone());
                    r.secret_name = Some(new_name.clone());
                }
            }
            let id = service.id.clone().unwrap_or_default();
            let version = service.version.as_ref().and_then(|v| v.index).unwrap_or_default() as i32;
            self.docker
                .update_service(&id, spec, UpdateServiceOptions { version, ..Default::default() }, None)
                .await
                .map_err(SwarmError::api(format!("moving service {id} to secret {new_name}")))?;
            moved.push(id);
        }
        // A new secret reference changes the task template: every moved service rolls its tasks.
        let rolling = moved.iter().cloned().collect();
        self.wait_services(&moved, &rolling, &Default::default(), std::time::Duration::from_secs(300), None).await?;
        let mut removed = Vec::new();
        for s in versions.iter().filter(|s| s.id.as_ref().is_some_and(|id| old_ids.contains(id))) {
            let id = s.id.clone().unwrap_or_default();
            self.docker.delete_secret(&id).await.map_err(SwarmError::api(format!("removing old secret {id}")))?;
            removed.extend(s.spec.as_ref().and_then(|s| s.name.clone()));
        }
        rotation.removed = removed;
        Ok(rotation)
    }
}

/// The secret ids a service spec references.
pub fn secret_refs(spec: Option<&ServiceSpec>) -> impl Iterator<Item = String> + '_ {
    spec.and_then(|s| s.task_template.as_ref())
        .and_then(|t| t.container_spec.as_ref())
        .and_then(|c| c.secrets.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|r| r.secret_id.clone())
}
