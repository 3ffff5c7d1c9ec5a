//! Database backups: `pg_dump` streamed through gzip into S3 (a multipart
//! upload, memory bounded by a few parts whatever the database size) or into
//! a local directory when no bucket is configured; the list, prune, restore
//! and verify that work on what it wrote.
//!
//! Each backup is three objects under [`PREFIX`]: the dump
//! (`backup-YYYYMMDD-HHMMSS.sql.gz`), its SHA-256 (`….sha256`, in
//! `sha256sum` format, written after the upload: a streamed multipart upload
//! cannot know it when its metadata is fixed) and a manifest (`….json`) with
//! the row count of every table, taken in the dump's own snapshot.

mod pg;
mod pipeline;
mod target;

pub use pg::{PgTool, ToolVersion};
pub use pipeline::{expected_sha256, restore, run, user_relations, verify, RestoreOptions, RunSummary, VerifyReport};
pub use target::{ObjectInfo, Target};

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// Where backups live, in a bucket or under the local directory.
pub const PREFIX: &str = "database/";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Something the operator must fix: a name, a setting, a missing bucket.
    #[error("{0}")]
    Input(String),
    /// The storage (S3 or the directory) failed.
    #[error("{0}")]
    Storage(String),
    /// pg_dump, psql or the database failed.
    #[error("{0}")]
    Database(String),
    #[error("interrupted; the partial upload was aborted and nothing was kept")]
    Interrupted,
}

impl crate::error::Coded for BackupError {
    fn exit(&self) -> crate::error::Exit {
        use crate::error::Exit;
        match self {
            BackupError::Input(_) => Exit::Input,
            BackupError::Storage(_) | BackupError::Database(_) | BackupError::Interrupted => Exit::Failed,
        }
    }
}

/// The object name of a backup taken at `at`.
pub fn name_for(at: DateTime<Utc>) -> String {
    at.format("backup-%Y%m%d-%H%M%S.sql.gz").to_string()
}

/// When the backup called `name` was taken, if `name` is a backup's name.
pub fn parse_name(name: &str) -> Option<DateTime<Utc>> {
    let stamp = name.strip_prefix("backup-")?.strip_suffix(".sql.gz")?;
    if stamp.len() != 15 {
        return None;
    }
    NaiveDateTime::parse_from_str(stamp, "%Y%m%d-%H%M%S").ok().map(|t| t.and_utc())
}

/// Checks a NAME given on the command line.
pub fn validate_name(name: &str) -> Result<(), BackupError> {
    if parse_name(name).is_some() {
        Ok(())
    } else {
        Err(BackupError::Input(format!(
            "`{name}` is not a backup name; use a name as `geoctl backup list` shows it (backup-YYYYMMDD-HHMMSS.sql.gz)"
        )))
    }
}

pub fn sha256_key(name: &str) -> String {
    format!("{PREFIX}{name}.sha256")
}

pub fn manifest_key(name: &str) -> String {
    format!("{PREFIX}{name}.json")
}

pub fn dump_key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// What a backup recorded about itself at dump time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub sha256: String,
    /// Size of the compressed object.
    pub bytes: u64,
    /// Size of the SQL before compression.
    pub dump_bytes: u64,
    pub server_version: String,
    pub pg_dump_version: String,
    /// Row count of every table (`schema.table`, quoted as needed), in the dump's snapshot.
    pub tables: BTreeMap<String, i64>,
}

/// One backup as `backup list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BackupInfo {
    pub name: String,
    pub taken_at: DateTime<Utc>,
    pub bytes: u64,
    /// False when the upload finished but its checksum sidecar is missing
    /// (the run was cut off between the two): such a backup cannot be verified.
    pub checksum: bool,
}

/// Groups a listing into backups: dumps with a valid name, newest first.
pub fn backups(objects: &[ObjectInfo]) -> Vec<BackupInfo> {
    let mut out: Vec<BackupInfo> = objects
        .iter()
        .filter_map(|o| {
            let name = o.key.strip_prefix(PREFIX)?;
            let taken_at = parse_name(name)?;
            let checksum = objects.iter().any(|s| s.key == sha256_key(name));
            Some(BackupInfo { name: name.to_string(), taken_at, bytes: o.bytes, checksum })
        })
        .collect();
    out.sort_by_key(|b| std::cmp::Reverse(b.taken_at));
    out
}

/// The backups `prune --keep-days` removes: those taken more than `keep_days`
/// before `now`, never the newest one (a prune must not leave nothing).
pub fn to_prune(backups: &[BackupInfo], keep_days: u32, now: DateTime<Utc>) -> Vec<BackupInfo> {
    let cutoff = now - TimeDelta::days(i64::from(keep_days));
    let newest = backups.iter().map(|b| b.taken_at).max();
    backups.iter().filter(|b| b.taken_at < cutoff && Some(b.taken_at) != newest).cloned().collect()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The digest in a `sha256sum`-format sidecar.
pub fn parse_sha256_sidecar(text: &str) -> Option<String> {
    let digest = text.split_whitespace().next()?;
    (digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit())).then(|| digest.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn names_round_trip() {
        let at = Utc.with_ymd_and_hms(2026, 11, 29, 1, 2, 3).unwrap();
        assert_eq!(name_for(at), "backup-20261129-010203.sql.gz");
        assert_eq!(parse_name("backup-20261129-010203.sql.gz"), Some(at));
        for bad in
            ["backup-2026-11-29.sql.gz", "x.sql.gz", "backup-20261129-010203.sql", "backup-20261399-010203.sql.gz"]
        {
            assert_eq!(parse_name(bad), None, "{bad}");
            assert_eq!(crate::error::Coded::exit(&validate_name(bad).unwrap_err()), crate::error::Exit::Input);
        }
    }

    #[test]
    fn prune_keeps_recent_and_the_newest() {
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 0, 0, 0).unwrap();
        let info = |days: i64| BackupInfo {
            name: name_for(now - TimeDelta::days(days)),
            taken_at: now - TimeDelta::days(days),
            bytes: 1,
            checksum: true,
        };
        let all = vec![info(1), info(29), info(31), info(90)];
        let pruned: Vec<_> = to_prune(&all, 30, now).into_iter().map(|b| b.name).collect();
        assert_eq!(pruned, vec![info(31).name, info(90).name]);
        // Only old backups: the newest survives.
        let old = vec![info(40), info(50)];
        let pruned: Vec<_> = to_prune(&old, 30, now).into_iter().map(|b| b.name).collect();
        assert_eq!(pruned, vec![info(50).name]);
    }

    #[test]
    fn sidecar_parses_sha256sum_format() {
        let digest = "a".repeat(64);
        assert_eq!(parse_sha256_sidecar(&format!("{digest}  backup-x.sql.gz\n")), Some(digest));
        assert_eq!(parse_sha256_sidecar("nothex  x"), None);
    }
}
