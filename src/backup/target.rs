//! Where backups are stored: an S3 bucket (multipart uploads) or a local
//! directory, behind one set of operations so every command works on both.

use std::path::{Path, PathBuf};
use std::pin::Pin;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, CompletedMultipartUpload, CompletedPart,
    ExpirationStatus, LifecycleRule, LifecycleRuleFilter,
};
use aws_sdk_s3::Client;
use chrono::{DateTime, Utc};
use tokio::io::{AsyncBufRead, AsyncWriteExt as _, BufReader};

use super::{BackupError, PREFIX};
use crate::aws::{code, describe};

/// A stored object under [`PREFIX`].
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub key: String,
    pub bytes: u64,
    pub modified: Option<DateTime<Utc>>,
}

pub enum Target {
    S3 { client: Client, bucket: String, endpoint: Option<String> },
    Local { dir: PathBuf },
}

/// A byte stream being read from the target.
pub type Reader = Pin<Box<dyn AsyncBufRead + Send>>;

const LIFECYCLE_RULE_ID: &str = "geoctl-abort-incomplete-backup-uploads";

impl Target {
    /// `s3://bucket/database/` or the directory, for messages.
    pub fn describe(&self) -> String {
        match self {
            Target::S3 { bucket, endpoint: Some(e), .. } => format!("s3://{bucket}/{PREFIX} at {e}"),
            Target::S3 { bucket, .. } => format!("s3://{bucket}/{PREFIX}"),
            Target::Local { dir } => dir.join(PREFIX).display().to_string(),
        }
    }

    fn s3_error<E, R>(&self, action: &str, err: &aws_sdk_s3::error::SdkError<E, R>) -> BackupError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let Target::S3 { bucket, endpoint, .. } = self else { unreachable!("S3 errors come from S3") };
        let at = endpoint.as_deref().map(|e| format!(" at {e}")).unwrap_or_default();
        match code(err) {
            Some("NoSuchBucket") | Some("NotFound") if action == "checking the bucket" => BackupError::Input(format!(
                "S3 bucket `{bucket}`{at} does not exist; create it or set S3_MONITOR_BUCKET_NAME (aws.s3_bucket) \
                 to an existing bucket"
            )),
            Some(c @ ("InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AccessDenied" | "Forbidden" | "403")) => {
                BackupError::Input(format!(
                    "S3{at} refused {action} (bucket `{bucket}`, {c}); check AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY (or their _FILE forms) and the bucket's permissions"
                ))
            }
            _ => BackupError::Storage(format!("S3{at}: {action} (bucket `{bucket}`) failed: {}", describe(err))),
        }
    }

    /// Fails early, with a clear message, when the bucket or directory cannot be used.
    pub async fn check(&self) -> Result<(), BackupError> {
        match self {
            Target::S3 { client, bucket, .. } => {
                client
                    .head_bucket()
                    .bucket(bucket)
                    .send()
                    .await
                    .map_err(|e| self.s3_error("checking the bucket", &e))?;
            }
            Target::Local { dir } => {
                tokio::fs::create_dir_all(dir.join(PREFIX)).await.map_err(|e| {
                    BackupError::Input(format!(
                        "cannot use backup directory {} ({e}); set BACKUP_DIR (backup.dir) or configure an S3 bucket",
                        dir.display()
                    ))
                })?;
            }
        }
        Ok(())
    }

    /// Every object under the prefix.
    pub async fn list(&self) -> Result<Vec<ObjectInfo>, BackupError> {
        match self {
            Target::S3 { client, bucket, .. } => {
                let mut out = Vec::new();
                let mut pages = client.list_objects_v2().bucket(bucket).prefix(PREFIX).into_paginator().send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| self.s3_error("listing backups", &e))?;
                    for object in page.contents() {
                        out.push(ObjectInfo {
                            key: object.key().unwrap_or_default().to_string(),
                            bytes: object.size().unwrap_or(0).max(0) as u64,
                            modified: object
                                .last_modified()
                                .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
                        });
                    }
                }
                Ok(out)
            }
            Target::Local { dir } => {
                let mut out = Vec::new();
                let mut entries = match tokio::fs::read_dir(dir.join(PREFIX)).await {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                    Err(e) => return Err(local_error(dir, &e)),
                };
                while let Some(entry) = entries.next_entry().await.map_err(|e| local_error(dir, &e))? {
                    let meta = entry.metadata().await.map_err(|e| local_error(dir, &e))?;
                    if meta.is_file() {
                        out.push(ObjectInfo {
                            key: format!("{PREFIX}{}", entry.file_name().to_string_lossy()),
                            bytes: meta.len(),
                            modified: meta.modified().ok().map(DateTime::<Utc>::from),
                        });
                    }
                }
                Ok(out)
            }
        }
    }

    /// Starts writing `key`; nothing is visible under that name until [`Upload::finish`].
    pub async fn begin(&self, key: &str) -> Result<Upload, BackupError> {
        match self {
            Target::S3 { client, bucket, .. } => {
                let created = client
                    .create_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .content_type("application/gzip")
                    .send()
                    .await
                    .map_err(|e| self.s3_error("starting the upload", &e))?;
                let upload_id = created.upload_id().unwrap_or_default().to_string();
                Ok(Upload::S3 {
                    client: client.clone(),
                    bucket: bucket.clone(),
                    key: key.to_string(),
                    upload_id,
                    parts: Vec::new(),
                })
            }
            Target::Local { dir } => {
                let path = dir.join(key);
                let partial = partial_path(&path);
                let file = tokio::fs::File::create(&partial).await.map_err(|e| local_error(dir, &e))?;
                Ok(Upload::Local { file, partial, path })
            }
        }
    }

    /// Writes a small object whole.
    pub async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), BackupError> {
        match self {
            Target::S3 { client, bucket, .. } => {
                client
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .content_type(content_type)
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .map_err(|e| self.s3_error("writing a sidecar", &e))?;
            }
            Target::Local { dir } => {
                let path = dir.join(key);
                let partial = partial_path(&path);
                tokio::fs::write(&partial, body).await.map_err(|e| local_error(dir, &e))?;
                tokio::fs::rename(&partial, &path).await.map_err(|e| local_error(dir, &e))?;
            }
        }
        Ok(())
    }

    /// Reads a small object whole; `None` when it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BackupError> {
        match self.open(key).await? {
            None => Ok(None),
            Some(mut reader) => {
                let mut out = Vec::new();
                tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut out)
                    .await
                    .map_err(|e| BackupError::Storage(format!("reading {key}: {e}")))?;
                Ok(Some(out))
            }
        }
    }

    /// Streams an object; `None` when it does not exist.
    pub async fn open(&self, key: &str) -> Result<Option<Reader>, BackupError> {
        match self {
            Target::S3 { client, bucket, .. } => match client.get_object().bucket(bucket).key(key).send().await {
                Ok(out) => Ok(Some(Box::pin(out.body.into_async_read()))),
                Err(e) if matches!(code(&e), Some("NoSuchKey" | "NotFound")) => Ok(None),
                Err(e) => Err(self.s3_error("reading a backup", &e)),
            },
            Target::Local { dir } => match tokio::fs::File::open(dir.join(key)).await {
                Ok(file) => Ok(Some(Box::pin(BufReader::with_capacity(1 << 20, file)))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(local_error(dir, &e)),
            },
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), BackupError> {
        match self {
            Target::S3 { client, bucket, .. } => {
                client
                    .delete_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| self.s3_error("deleting", &e))?;
            }
            Target::Local { dir } => match tokio::fs::remove_file(dir.join(key)).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(local_error(dir, &e)),
            },
        }
        Ok(())
    }

    /// Uploads of a run that died without cleaning up (lost connection,
    /// killed machine): aborted multipart uploads under the prefix, or
    /// leftover `.partial` files. Returns the keys cleaned. Two backups must
    /// not run at once against one target.
    pub async fn abort_stale(&self) -> Result<Vec<String>, BackupError> {
        let mut cleaned = Vec::new();
        match self {
            Target::S3 { client, bucket, .. } => {
                for (key, id) in self.unfinished_uploads(client, bucket).await? {
                    client
                        .abort_multipart_upload()
                        .bucket(bucket)
                        .key(&key)
                        .upload_id(id)
                        .send()
                        .await
                        .map_err(|e| self.s3_error("aborting an unfinished upload", &e))?;
                    cleaned.push(key);
                }
            }
            Target::Local { .. } => {
                for object in self.list().await? {
                    if object.key.ends_with(".partial") {
                        self.delete(&object.key).await?;
                        cleaned.push(object.key.trim_end_matches(".partial").to_string());
                    }
                }
            }
        }
        Ok(cleaned)
    }

    /// Adds a lifecycle rule aborting incomplete uploads under the prefix
    /// after a day, keeping the bucket's other rules. Returns whether it
    /// changed anything; a refusal (no permission) is the caller's to report.
    pub async fn ensure_lifecycle_rule(&self) -> Result<bool, BackupError> {
        let Target::S3 { client, bucket, .. } = self else { return Ok(false) };
        let mut rules = match client.get_bucket_lifecycle_configuration().bucket(bucket).send().await {
            Ok(out) => out.rules().to_vec(),
            Err(e) if code(&e) == Some("NoSuchLifecycleConfiguration") => Vec::new(),
            Err(e) => return Err(self.s3_error("reading the lifecycle rules", &e)),
        };
        if rules.iter().any(|r| r.id() == Some(LIFECYCLE_RULE_ID)) {
            return Ok(false);
        }
        let rule = LifecycleRule::builder()
            .id(LIFECYCLE_RULE_ID)
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix(PREFIX).build())
            .abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder().days_after_initiation(1).build(),
            )
            .build()
            .map_err(|e| BackupError::Storage(e.to_string()))?;
        rules.push(rule);
        let config = BucketLifecycleConfiguration::builder()
            .set_rules(Some(rules))
            .build()
            .map_err(|e| BackupError::Storage(e.to_string()))?;
        client
            .put_bucket_lifecycle_configuration()
            .bucket(bucket)
            .lifecycle_configuration(config)
            .send()
            .await
            .map_err(|e| self.s3_error("setting the lifecycle rule", &e))?;
        Ok(true)
    }

    /// The (key, upload id) of every multipart upload under the prefix that was neither
    /// completed nor aborted.
    async fn unfinished_uploads(&self, client: &Client, bucket: &str) -> Result<Vec<(String, String)>, BackupError> {
        let listed = client
            .list_multipart_uploads()
            .bucket(bucket)
            .prefix(PREFIX)
            .send()
            .await
            .map_err(|e| self.s3_error("listing unfinished uploads", &e))?;
        Ok(listed.uploads().iter().filter_map(|u| Some((u.key()?.to_string(), u.upload_id()?.to_string()))).collect())
    }

    /// Unfinished uploads under the prefix (for tests and `backup list`'s warnings).
    pub async fn pending_uploads(&self) -> Result<Vec<String>, BackupError> {
        match self {
            Target::S3 { client, bucket, .. } => {
                Ok(self.unfinished_uploads(client, bucket).await?.into_iter().map(|(key, _)| key).collect())
            }
            Target::Local { .. } => {
                Ok(self.list().await?.into_iter().filter(|o| o.key.ends_with(".partial")).map(|o| o.key).collect())
            }
        }
    }
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

fn local_error(dir: &Path, err: &std::io::Error) -> BackupError {
    BackupError::Storage(format!("backup directory {}: {err}", dir.display()))
}

/// An object being written: a multipart upload or a `.partial` file.
pub enum Upload {
    S3 { client: Client, bucket: String, key: String, upload_id: String, parts: Vec<CompletedPart> },
    Local { file: tokio::fs::File, partial: PathBuf, path: PathBuf },
}

impl Upload {
    /// Appends one part. S3 wants every part but the last to be at least 5 MiB.
    pub async fn write(&mut self, chunk: Vec<u8>) -> Result<(), BackupError> {
        match self {
            Upload::S3 { client, bucket, key, upload_id, parts } => {
                let number = parts.len() as i32 + 1;
                let out = client
                    .upload_part()
                    .bucket(bucket.as_str())
                    .key(key.as_str())
                    .upload_id(upload_id.as_str())
                    .part_number(number)
                    .body(ByteStream::from(chunk))
                    .send()
                    .await
                    .map_err(|e| BackupError::Storage(format!("uploading part {number} of {key}: {}", describe(&e))))?;
                parts.push(
                    CompletedPart::builder().part_number(number).set_e_tag(out.e_tag().map(String::from)).build(),
                );
            }
            Upload::Local { file, partial, .. } => {
                file.write_all(&chunk)
                    .await
                    .map_err(|e| BackupError::Storage(format!("writing {}: {e}", partial.display())))?;
            }
        }
        Ok(())
    }

    /// Makes the object visible under its name.
    pub async fn finish(self) -> Result<(), BackupError> {
        match self {
            Upload::S3 { client, bucket, key, upload_id, parts } => {
                let result = client
                    .complete_multipart_upload()
                    .bucket(&bucket)
                    .key(&key)
                    .upload_id(&upload_id)
                    .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                    .send()
                    .await;
                if let Err(e) = result {
                    let message = format!("completing the upload of {key}: {}", describe(&e));
                    let _ =
                        client.abort_multipart_upload().bucket(&bucket).key(&key).upload_id(&upload_id).send().await;
                    return Err(BackupError::Storage(message));
                }
            }
            Upload::Local { mut file, partial, path } => {
                let done = async {
                    file.flush().await?;
                    file.sync_all().await?;
                    tokio::fs::rename(&partial, &path).await
                }
                .await;
                if let Err(e) = done {
                    let _ = tokio::fs::remove_file(&partial).await;
                    return Err(BackupError::Storage(format!("finishing {}: {e}", path.display())));
                }
            }
        }
        Ok(())
    }

    /// Discards everything written.
    pub async fn abort(self) -> Result<(), BackupError> {
        match self {
            Upload::S3 { client, bucket, key, upload_id, .. } => {
                client
                    .abort_multipart_upload()
                    .bucket(&bucket)
                    .key(&key)
                    .upload_id(&upload_id)
                    .send()
                    .await
                    .map_err(|e| BackupError::Storage(format!("aborting the upload of {key}: {}", describe(&e))))?;
            }
            Upload::Local { file, partial, .. } => {
                drop(file);
                let _ = tokio::fs::remove_file(&partial).await;
            }
        }
        Ok(())
    }
}
