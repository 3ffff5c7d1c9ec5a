//! The on-disk spool: results the database could not take yet, kept in order
//! until it can, and rows it refused for good, set aside with the reason.
//!
//! Layout under the spool directory:
//! - `pending/<sequence>.json`: one batch per file, a JSON array of results,
//!   written to a temporary file, fsynced, then renamed (a crash leaves either
//!   the whole batch or nothing). Sequence numbers give the order.
//! - `rejected/<sequence>-<n>.json`: one row the database refused, with why.
//!
//! The spool is bounded in rows; when a new batch would pass the bound, the
//! oldest batches are dropped and counted.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::results::NewResult;

const PENDING: &str = "pending";
const REJECTED: &str = "rejected";

/// One spooled batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    seq: u64,
    rows: usize,
}

/// A row set aside: what it was and why the database refused it.
#[derive(Debug, Serialize)]
struct Rejected<'a> {
    reason: &'a str,
    result: &'a NewResult,
}

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_rows: usize,
    entries: VecDeque<Entry>,
    next_seq: u64,
    depth: usize,
    dropped: u64,
    rejected: u64,
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir`, picking up what an
    /// earlier run left there.
    pub fn open(dir: &Path, max_rows: usize) -> io::Result<Self> {
        fs::create_dir_all(dir.join(PENDING))?;
        fs::create_dir_all(dir.join(REJECTED))?;
        let mut entries = Vec::new();
        for item in fs::read_dir(dir.join(PENDING))? {
            let path = item?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            match name.strip_suffix(".json").and_then(|s| s.parse::<u64>().ok()) {
                Some(seq) => {
                    let rows = read_batch(&path).map(|b| b.len()).unwrap_or(0);
                    entries.push(Entry { seq, rows });
                }
                // A temporary file from a write a crash interrupted: never renamed, so never acknowledged.
                None if name.ends_with(".tmp") => fs::remove_file(&path)?,
                None => {}
            }
        }
        entries.sort_by_key(|e| e.seq);
        let next_seq = entries.last().map_or(1, |e| e.seq + 1);
        let depth = entries.iter().map(|e| e.rows).sum();
        Ok(Spool {
            dir: dir.to_path_buf(),
            max_rows: max_rows.max(1),
            entries: entries.into(),
            next_seq,
            depth,
            dropped: 0,
            rejected: 0,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Rows waiting for the database.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Rows dropped because the spool was full, since this process started.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Rows set aside as refused, since this process started.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Appends a batch durably (fsynced file and directory), then drops the
    /// oldest batches while the spool holds more than its bound.
    pub fn push(&mut self, batch: &[NewResult]) -> io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let seq = self.next_seq;
        let path = self.pending_path(seq);
        write_durably(&path, &serde_json::to_vec(batch)?)?;
        self.next_seq += 1;
        self.entries.push_back(Entry { seq, rows: batch.len() });
        self.depth += batch.len();
        while self.depth > self.max_rows && self.entries.len() > 1 {
            let oldest = self.entries.pop_front().expect("more than one entry");
            fs::remove_file(self.pending_path(oldest.seq))?;
            self.depth -= oldest.rows;
            self.dropped += oldest.rows as u64;
            tracing::warn!(rows = oldest.rows, "spool full: dropped its oldest batch");
        }
        Ok(())
    }

    /// The oldest batch, read back from disk; `None` when the spool is empty.
    /// A file that cannot be read back is set aside whole.
    pub fn oldest(&mut self) -> io::Result<Option<(u64, Vec<NewResult>)>> {
        while let Some(entry) = self.entries.front().copied() {
            let path = self.pending_path(entry.seq);
            match read_batch(&path) {
                Ok(batch) => return Ok(Some((entry.seq, batch))),
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "unreadable spool file set aside");
                    fs::rename(&path, self.dir.join(REJECTED).join(format!("{:020}-unreadable.json", entry.seq)))?;
                    self.forget_front();
                }
            }
        }
        Ok(None)
    }

    /// Removes the oldest batch once it is written (or set aside).
    pub fn remove_oldest(&mut self, seq: u64) -> io::Result<()> {
        if self.entries.front().map(|e| e.seq) == Some(seq) {
            fs::remove_file(self.pending_path(seq))?;
            self.forget_front();
        }
        Ok(())
    }

    /// Sets one row aside with the reason the database refused it.
    pub fn reject(&mut self, seq: u64, index: usize, result: &NewResult, reason: &str) -> io::Result<()> {
        let path = self.dir.join(REJECTED).join(format!("{seq:020}-{index}.json"));
        write_durably(&path, &serde_json::to_vec_pretty(&Rejected { reason, result })?)?;
        self.rejected += 1;
        tracing::warn!(monitor = %result.monitor_id, reason, file = %path.display(), "result set aside");
        Ok(())
    }

    fn forget_front(&mut self) {
        if let Some(entry) = self.entries.pop_front() {
            self.depth -= entry.rows;
        }
    }

    fn pending_path(&self, seq: u64) -> PathBuf {
        self.dir.join(PENDING).join(format!("{seq:020}.json"))
    }
}

fn read_batch(path: &Path) -> io::Result<Vec<NewResult>> {
    Ok(serde_json::from_slice(&fs::read(path)?)?)
}

/// Temporary file, fsync, rename, fsync of the directory: after it returns
/// the file survives a crash or power loss, whole.
fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    File::open(path.parent().expect("spool files live in a directory"))?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;
    use uuid::Uuid;

    fn row(total_ms: f64) -> NewResult {
        NewResult {
            monitor_id: Uuid::new_v4(),
            execution_region: "eu-west".into(),
            target_region: None,
            checked_at: Utc::now(),
            up: true,
            dns_ms: None,
            connect_ms: Some(1.0),
            tls_ms: None,
            first_byte_ms: None,
            total_ms,
            network_latency_ms: None,
            error_kind: None,
            error_message: None,
            resolved_ip: None,
            http_version: None,
            status_code: Some(200),
            response_size: None,
            cert_expires_at: None,
            cdn_provider: None,
            cdn_cache_status: None,
            cdn_edge_location: None,
            details: json!({}),
            run_key: Some(format!("m:eu-west:{total_ms}")),
            target: None,
            hop_count: None,
            route_latency: None,
            steps: None,
            screenshot: None,
        }
    }

    #[test]
    fn batches_come_back_in_order_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 100).unwrap();
        spool.push(&[row(1.0), row(2.0)]).unwrap();
        spool.push(&[row(3.0)]).unwrap();
        drop(spool);
        let mut spool = Spool::open(dir.path(), 100).unwrap();
        assert_eq!(spool.depth(), 3);
        let (seq, first) = spool.oldest().unwrap().unwrap();
        assert_eq!(first.iter().map(|r| r.total_ms).collect::<Vec<_>>(), vec![1.0, 2.0]);
        spool.remove_oldest(seq).unwrap();
        let (_, second) = spool.oldest().unwrap().unwrap();
        assert_eq!(second[0].total_ms, 3.0);
        assert_eq!(second[0].connect_ms, Some(1.0));
        assert_eq!(second[0].dns_ms, None);
    }

    #[test]
    fn a_full_spool_drops_the_oldest_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 3).unwrap();
        spool.push(&[row(1.0), row(2.0)]).unwrap();
        spool.push(&[row(3.0)]).unwrap();
        spool.push(&[row(4.0)]).unwrap();
        assert_eq!((spool.depth(), spool.dropped()), (2, 2));
        assert_eq!(spool.oldest().unwrap().unwrap().1[0].total_ms, 3.0);
    }

    #[test]
    fn rejected_rows_keep_their_reason_and_leftovers_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join(PENDING)).unwrap();
        fs::write(dir.path().join(PENDING).join("00000000000000000007.tmp"), b"[{").unwrap();
        let mut spool = Spool::open(dir.path(), 10).unwrap();
        assert!(spool.is_empty());
        spool.reject(7, 0, &row(1.0), "monitor deleted").unwrap();
        let text = fs::read_to_string(dir.path().join(REJECTED).join("00000000000000000007-0.json")).unwrap();
        assert!(text.contains("monitor deleted"), "{text}");
        assert_eq!(spool.rejected(), 1);
    }
}
