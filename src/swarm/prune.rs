//! `geoctl maintenance prune`: stopped containers, dangling images and unused
//! volumes, with the space they held.

use std::collections::HashMap;

use bollard::query_parameters::{
    ListContainersOptions, ListImagesOptions, ListVolumesOptions, PruneContainersOptions, PruneImagesOptions,
    PruneVolumesOptions,
};
use serde::Serialize;

use super::{Engine, SwarmError};

/// What was (or, with `--dry-run`, would be) removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Pruned {
    pub containers: Vec<String>,
    pub images: Vec<String>,
    pub volumes: Vec<String>,
    /// Bytes freed; for a dry run, what the containers' and images' own data
    /// amount to (volume sizes are not known without scanning them: None).
    pub bytes: Option<i64>,
}

impl Engine {
    pub async fn prune(&self, dry_run: bool) -> Result<Pruned, SwarmError> {
        let filters = |k: &str, v: &[&str]| HashMap::from([(k.to_string(), v.iter().map(|s| s.to_string()).collect())]);
        if dry_run {
            let containers = self
                .docker
                .list_containers(Some(ListContainersOptions {
                    all: true,
                    size: true,
                    filters: Some(filters("status", &["exited", "created", "dead"])),
                    ..Default::default()
                }))
                .await
                .map_err(SwarmError::api("listing containers"))?;
            let images = self
                .docker
                .list_images(Some(ListImagesOptions {
                    filters: Some(filters("dangling", &["true"])),
                    ..Default::default()
                }))
                .await
                .map_err(SwarmError::api("listing images"))?;
            let volumes = self
                .docker
                .list_volumes(Some(ListVolumesOptions { filters: Some(filters("dangling", &["true"])) }))
                .await
                .map_err(SwarmError::api("listing volumes"))?;
            let bytes =
                containers.iter().filter_map(|c| c.size_rw).sum::<i64>() + images.iter().map(|i| i.size).sum::<i64>();
            return Ok(Pruned {
                containers: containers.into_iter().filter_map(|c| c.id).collect(),
                images: images.into_iter().map(|i| i.id).collect(),
                volumes: volumes.volumes.unwrap_or_default().into_iter().map(|v| v.name).collect(),
                bytes: Some(bytes),
            });
        }
        let c = self
            .docker
            .prune_containers(None::<PruneContainersOptions>)
            .await
            .map_err(SwarmError::api("pruning containers"))?;
        let i = self
            .docker
            .prune_images(Some(PruneImagesOptions { filters: Some(filters("dangling", &["true"])) }))
            .await
            .map_err(SwarmError::api("pruning images"))?;
        let v =
            self.docker.prune_volumes(None::<PruneVolumesOptions>).await.map_err(SwarmError::api("pruning volumes"))?;
        Ok(Pruned {
            containers: c.containers_deleted.unwrap_or_default(),
            images: i.images_deleted.unwrap_or_default().into_iter().filter_map(|d| d.deleted.or(d.untagged)).collect(),
            volumes: v.volumes_deleted.unwrap_or_default(),
            bytes: Some(
                c.space_reclaimed.unwrap_or(0) + i.space_reclaimed.unwrap_or(0) + v.space_reclaimed.unwrap_or(0),
            ),
        })
    }
}
