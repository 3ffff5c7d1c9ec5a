//! The data paths: dump → gzip → storage, and storage → gunzip → psql.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use async_compression::tokio::bufread::{GzipDecoder, GzipEncoder};
use chrono::Utc;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _, BufReader, ReadBuf};
use tokio::sync::mpsc;

use super::pg::{check_versions, pg_dump_version, PgTool, ToolVersion};
use super::target::{Target, Upload};
use super::{dump_key, hex, manifest_key, parse_sha256_sidecar, sha256_key, BackupError, Manifest};
use crate::config::Tuning;

/// Size of one multipart part. Memory holds at most four of them (one being
/// filled, two queued, one uploading), whatever the database size.
const PART_SIZE: usize = 8 << 20;
const QUEUED_PARTS: usize = 2;

/// What `backup run` did.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub name: String,
    pub target: String,
    /// Compressed size, as stored.
    pub bytes: u64,
    /// SQL size before compression.
    pub dump_bytes: u64,
    pub sha256: String,
    pub tables: usize,
    pub rows: i64,
    pub seconds: f64,
    /// Unfinished uploads of earlier runs that this run aborted.
    pub stale_uploads_aborted: Vec<String>,
}

/// Dumps the database into `target`. The dump, its row counts and the
/// checksum all describe one snapshot; on any failure or SIGINT the upload
/// is aborted and nothing is left under the backup's name.
pub async fn run(
    target: &Target,
    pool: &PgPool,
    pg: &PgTool,
    progress: bool,
    note: impl Fn(String),
) -> Result<RunSummary, BackupError> {
    let started = Instant::now();
    // Listen for SIGINT before anything exists that an interruption must clean up.
    let mut sigint = interrupt_listener()?;
    target.check().await?;
    let stale = target.abort_stale().await?;
    if !stale.is_empty() {
        note(format!("aborted {} unfinished upload(s) of earlier runs: {}", stale.len(), stale.join(", ")));
    }
    match target.ensure_lifecycle_rule().await {
        Ok(true) => note("added a bucket lifecycle rule aborting incomplete backup uploads after 1 day".into()),
        Ok(false) => {}
        Err(e) => note(format!(
            "could not set the bucket lifecycle rule ({e}); unfinished uploads are still aborted by the next run"
        )),
    }

    let (num, text): (String, String) =
        sqlx::query_as("SELECT current_setting('server_version_num'), current_setting('server_version')")
            .fetch_one(pool)
            .await
            .map_err(|e| db_error(pg, "reading the server version", &e))?;
    let server = ToolVersion::from_server(num.parse().unwrap_or(0), &text);
    let dump_version = pg_dump_version().await?;
    check_versions(&dump_version, &server)?;

    // The snapshot the dump and the row counts share; it lives as long as this transaction.
    let mut tx = pool.begin().await.map_err(|e| db_error(pg, "starting the snapshot", &e))?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(|e| db_error(pg, "starting the snapshot", &e))?;
    let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| db_error(pg, "exporting the snapshot", &e))?;

    let name = super::name_for(Utc::now());
    let key = dump_key(&name);
    let mut child = pg
        .command("pg_dump")
        .args(["--format=plain", "--no-owner", "--no-privileges", "--snapshot", &snapshot])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| BackupError::Database(format!("cannot start pg_dump: {e}")))?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = tokio::spawn(read_tail(child.stderr.take().expect("piped")));

    let upload = target.begin(&key).await?;
    let bar = bar(progress, "dumping");
    let (parts_tx, parts_rx) = mpsc::channel::<Vec<u8>>(QUEUED_PARTS);
    let uploader = tokio::spawn(upload_parts(upload, parts_rx));

    let work = async {
        let (produced, counts) = tokio::join!(compress(stdout, parts_tx, bar.clone()), count_rows(&mut tx));
        let status = child.wait().await.map_err(|e| BackupError::Database(format!("waiting for pg_dump: {e}")))?;
        Ok::<_, BackupError>((produced, counts, status))
    };
    let outcome = tokio::select! {
        outcome = work => outcome,
        _ = sigint.recv() => Err(BackupError::Interrupted),
    };
    bar.finish_and_clear();
    // The sender is gone either way, so the uploader ends and hands back the upload.
    let (upload, uploaded) = uploader.await.map_err(|e| BackupError::Storage(format!("upload task: {e}")))?;
    let result = match outcome {
        Ok((produced, counts, status)) => {
            let stderr = stderr.await.unwrap_or_default();
            match (uploaded, produced, counts) {
                (Err(e), _, _) => Err(e),
                (_, _, _) if !status.success() => Err(tool_failed(pg, "pg_dump", status, &stderr)),
                (_, Err(e), _) | (_, _, Err(e)) => Err(e),
                (Ok(()), Ok(produced), Ok(counts)) => Ok((produced, counts)),
            }
        }
        Err(e) => Err(e),
    };
    let _ = tx.rollback().await;
    let (produced, tables) = match result {
        Ok(ok) => ok,
        Err(e) => {
            if let Err(abort) = upload.abort().await {
                note(format!("{abort}; `geoctl backup run` aborts it next time"));
            }
            return Err(e);
        }
    };
    upload.finish().await?;

    let manifest = Manifest {
        name: name.clone(),
        created_at: Utc::now(),
        sha256: produced.sha256.clone(),
        bytes: produced.bytes,
        dump_bytes: produced.dump_bytes,
        server_version: server.text,
        pg_dump_version: dump_version.text,
        tables,
    };
    let sidecar = format!("{}  {name}\n", produced.sha256);
    target.put(&sha256_key(&name), sidecar.into_bytes(), "text/plain").await?;
    let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
    target.put(&manifest_key(&name), json, "application/json").await?;

    Ok(RunSummary {
        name,
        target: target.describe(),
        bytes: produced.bytes,
        dump_bytes: produced.dump_bytes,
        sha256: produced.sha256,
        tables: manifest.tables.len(),
        rows: manifest.tables.values().sum(),
        seconds: started.elapsed().as_secs_f64(),
        stale_uploads_aborted: stale,
    })
}

struct Produced {
    sha256: String,
    bytes: u64,
    dump_bytes: u64,
}

/// Reads pg_dump's output through gzip and cuts it into parts.
async fn compress(
    stdout: tokio::process::ChildStdout,
    parts: mpsc::Sender<Vec<u8>>,
    bar: ProgressBar,
) -> Result<Produced, BackupError> {
    let dumped = Arc::new(AtomicU64::new(0));
    let counted = Measured { inner: stdout, bytes: dumped.clone(), hasher: None };
    let mut gzip = GzipEncoder::new(BufReader::with_capacity(1 << 20, counted));
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut sent_any = false;
    loop {
        let mut part = Vec::with_capacity(PART_SIZE);
        while part.len() < PART_SIZE {
            let n = (&mut gzip)
                .take((PART_SIZE - part.len()) as u64)
                .read_to_end(&mut part)
                .await
                .map_err(|e| BackupError::Database(format!("reading pg_dump's output: {e}")))?;
            bar.set_position(dumped.load(Ordering::Relaxed));
            if n == 0 {
                break;
            }
        }
        let last = part.len() < PART_SIZE;
        if part.is_empty() && sent_any {
            break;
        }
        hasher.update(&part);
        total += part.len() as u64;
        bar.set_message(format!("dumping, {} stored", indicatif::HumanBytes(total)));
        parts.send(part).await.map_err(|_| BackupError::Storage("the upload stopped".into()))?;
        sent_any = true;
        if last {
            break;
        }
    }
    Ok(Produced { sha256: hex(&hasher.finalize()), bytes: total, dump_bytes: dumped.load(Ordering::Relaxed) })
}

/// Writes parts as they come; on the first failure it stops taking them
/// (which stops the producer) and reports the failure.
async fn upload_parts(mut upload: Upload, mut parts: mpsc::Receiver<Vec<u8>>) -> (Upload, Result<(), BackupError>) {
    while let Some(part) = parts.recv().await {
        if let Err(e) = upload.write(part).await {
            return (upload, Err(e));
        }
    }
    (upload, Ok(()))
}

/// The tables whose rows a dump carries: ordinary tables (partitions
/// included) outside the system schemas and not owned by an extension.
const TABLES: &str = "\
    SELECT format('%I.%I', n.nspname, c.relname) \
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
      AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
      AND NOT EXISTS (SELECT 1 FROM pg_depend d \
                      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e') \
    ORDER BY 1";

/// Row count of every table, in whatever snapshot `conn` is in.
async fn count_rows(conn: &mut sqlx::PgConnection) -> Result<BTreeMap<String, i64>, BackupError> {
    let tables: Vec<String> = sqlx::query_scalar(TABLES)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| BackupError::Database(format!("listing tables: {e}")))?;
    let mut counts = BTreeMap::new();
    for table in tables {
        // `table` comes from format('%I.%I'), so it is quoted already.
        let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| BackupError::Database(format!("counting rows of {table}: {e}")))?;
        counts.insert(table, count);
    }
    Ok(counts)
}

/// How `restore` treats a target that already holds tables.
#[derive(Debug, Clone, Copy)]
pub struct RestoreOptions {
    /// Drop every schema of the target first (in the restore's transaction).
    pub replace: bool,
    pub progress: bool,
}

/// Tables, views and sequences a database holds outside the system schemas.
pub async fn user_relations(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') \
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
           AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'",
    )
    .fetch_one(pool)
    .await
}

/// The expected checksum of a backup; fails with a clear message when the
/// backup or its checksum is missing.
pub async fn expected_sha256(target: &Target, name: &str) -> Result<String, BackupError> {
    super::validate_name(name)?;
    let listing = target.list().await?;
    if !listing.iter().any(|o| o.key == dump_key(name)) {
        let known = super::backups(&listing);
        let hint = known.first().map(|b| format!("; the newest is {}", b.name)).unwrap_or_default();
        return Err(BackupError::Input(format!(
            "no backup named {name} in {}{hint}; `geoctl backup list` shows them",
            target.describe()
        )));
    }
    let sidecar = target.get(&sha256_key(name)).await?.ok_or_else(|| {
        BackupError::Input(format!(
            "backup {name} has no checksum ({name}.sha256 is missing): its run was cut off; use another backup"
        ))
    })?;
    parse_sha256_sidecar(&String::from_utf8_lossy(&sidecar))
        .ok_or_else(|| BackupError::Storage(format!("{name}.sha256 does not hold a SHA-256 digest")))
}

/// Replays a backup into the database `pg` points at, in one transaction
/// that commits only when the whole object was read and its SHA-256 matches.
pub async fn restore(target: &Target, name: &str, pg: &PgTool, options: RestoreOptions) -> Result<u64, BackupError> {
    let mut sigint = interrupt_listener()?;
    let expected = expected_sha256(target, name).await?;
    let reader = target
        .open(&dump_key(name))
        .await?
        .ok_or_else(|| BackupError::Input(format!("backup {name} disappeared while restoring")))?;

    let hasher = Arc::new(Mutex::new(Sha256::new()));
    let read = Arc::new(AtomicU64::new(0));
    let measured = Measured { inner: reader, bytes: read.clone(), hasher: Some(hasher.clone()) };
    let mut sql = GzipDecoder::new(BufReader::with_capacity(1 << 20, measured));

    let mut child = pg
        .command("psql")
        .args(["--no-psqlrc", "--quiet", "--set", "ON_ERROR_STOP=1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            BackupError::Input(format!(
                "cannot run psql ({e}); install the PostgreSQL client (Debian: postgresql-client)"
            ))
        })?;
    let mut stdin = child.stdin.take().expect("piped");
    let stderr = tokio::spawn(read_tail(child.stderr.take().expect("piped")));
    let bar = bar(options.progress, "restoring");

    let feed = async {
        stdin.write_all(b"BEGIN;\n").await?;
        if options.replace {
            stdin.write_all(WIPE.as_bytes()).await?;
        }
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = sql.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            stdin.write_all(&buf[..n]).await?;
            bar.set_position(read.load(Ordering::Relaxed));
        }
        let actual = hex(&hasher.lock().expect("hasher").clone().finalize());
        let verdict = if actual == expected { "COMMIT;\n" } else { "ROLLBACK;\n" };
        stdin.write_all(verdict.as_bytes()).await?;
        stdin.shutdown().await?;
        drop(stdin);
        Ok::<_, std::io::Error>(actual)
    };
    let fed = tokio::select! {
        fed = feed => fed.map_err(|e| e.to_string()),
        _ = sigint.recv() => Err("interrupted".to_string()),
    };
    bar.finish_and_clear();
    if fed.is_err() {
        // psql may have stopped first (an error in the SQL); its message says why.
        let _ = child.start_kill();
    }
    let status = child.wait().await.map_err(|e| BackupError::Database(format!("waiting for psql: {e}")))?;
    let stderr = stderr.await.unwrap_or_default();
    match fed {
        Err(_) if !status.success() && !stderr.trim().is_empty() => Err(tool_failed(pg, "psql", status, &stderr)),
        Err(e) if e == "interrupted" => Err(BackupError::Interrupted),
        Err(e) => Err(BackupError::Storage(format!("reading backup {name}: {e}; nothing was restored"))),
        Ok(_) if !status.success() => Err(tool_failed(pg, "psql", status, &stderr)),
        Ok(actual) if actual != expected => Err(BackupError::Storage(format!(
            "backup {name} is corrupt: its SHA-256 is {actual}, the sidecar says {expected}; nothing was restored"
        ))),
        Ok(_) => Ok(read.load(Ordering::Relaxed)),
    }
}

/// Drops every non-system schema and recreates an empty `public`; runs
/// inside the restore's transaction, so a failed restore keeps the old data.
const WIPE: &str = "DO $geoctl$ DECLARE s text; BEGIN \
    FOR s IN SELECT nspname FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema') \
      AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp%' LOOP \
      EXECUTE format('DROP SCHEMA %I CASCADE', s); \
    END LOOP; \
    CREATE SCHEMA public; \
    END $geoctl$;\n";

/// What `backup verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub name: String,
    pub sha256: String,
    pub checksum_ok: bool,
    pub tables: usize,
    pub rows: i64,
    pub mismatches: Vec<RowMismatch>,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RowMismatch {
    pub table: String,
    pub expected: i64,
    /// None: the table is missing after the restore.
    pub found: Option<i64>,
}

/// Restores a backup into a scratch database next to the configured one,
/// compares every table's row count with the manifest, and drops the scratch
/// database whatever happened.
pub async fn verify(
    target: &Target,
    name: &str,
    admin: &PgPool,
    pg: &PgTool,
    tuning: &Tuning,
    progress: bool,
) -> Result<VerifyReport, BackupError> {
    let expected = expected_sha256(target, name).await?;
    let manifest: Manifest = match target.get(&manifest_key(name)).await? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| BackupError::Storage(format!("{name}.json is not a backup manifest: {e}")))?,
        None => {
            return Err(BackupError::Input(format!(
                "backup {name} has no manifest ({name}.json); it cannot be verified"
            )))
        }
    };
    let scratch = format!("geoctl_verify_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    sqlx::query(&format!("CREATE DATABASE {scratch}"))
        .execute(admin)
        .await
        .map_err(|e| db_error(pg, "creating the scratch database (the configured user needs CREATEDB)", &e))?;
    let outcome = async {
        let scratch_pg = pg.with_database(&scratch)?;
        let restored = restore(target, name, &scratch_pg, RestoreOptions { replace: false, progress }).await;
        let restored = match restored {
            Ok(_) => true,
            Err(BackupError::Storage(message)) if message.contains("is corrupt") => false,
            Err(e) => return Err(e),
        };
        let mut mismatches = Vec::new();
        if restored {
            let pool = crate::store::connect(Some(scratch_pg.url()), tuning)
                .await
                .map_err(|e| BackupError::Database(e.to_string()))?;
            let present: Vec<String> = sqlx::query_scalar(TABLES)
                .fetch_all(&pool)
                .await
                .map_err(|e| BackupError::Database(format!("listing tables: {e}")))?;
            for (table, &expected) in &manifest.tables {
                let found = if present.contains(table) {
                    Some(
                        sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {table}"))
                            .fetch_one(&pool)
                            .await
                            .map_err(|e| BackupError::Database(format!("counting rows of {table}: {e}")))?,
                    )
                } else {
                    None
                };
                if found != Some(expected) {
                    mismatches.push(RowMismatch { table: table.clone(), expected, found });
                }
            }
            pool.close().await;
        }
        Ok((restored, mismatches))
    }
    .await;
    let dropped = sqlx::query(&format!("DROP DATABASE IF EXISTS {scratch} WITH (FORCE)")).execute(admin).await;
    let (checksum_ok, mismatches) = outcome?;
    dropped.map_err(|e| db_error(pg, &format!("dropping the scratch database {scratch}"), &e))?;
    Ok(VerifyReport {
        name: name.to_string(),
        sha256: expected,
        checksum_ok,
        tables: manifest.tables.len(),
        rows: manifest.tables.values().sum(),
        ok: checksum_ok && mismatches.is_empty(),
        mismatches,
    })
}

/// Counts (and optionally hashes) what passes through.
struct Measured<R> {
    inner: R,
    bytes: Arc<AtomicU64>,
    hasher: Option<Arc<Mutex<Sha256>>>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Measured<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            let new = &buf.filled()[before..];
            self.bytes.fetch_add(new.len() as u64, Ordering::Relaxed);
            if let Some(hasher) = &self.hasher {
                hasher.lock().expect("hasher").update(new);
            }
        }
        polled
    }
}

/// The last 8 KiB a tool wrote on stderr.
async fn read_tail(mut stderr: impl AsyncRead + Unpin) -> String {
    let mut all = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = stderr.read(&mut buf).await {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
        if all.len() > 16384 {
            all.drain(..all.len() - 8192);
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

fn tool_failed(pg: &PgTool, tool: &str, status: ExitStatus, stderr: &str) -> BackupError {
    let how = match status.code() {
        Some(code) => format!("exited with {code}"),
        None => "was killed".into(),
    };
    let said = pg.scrub(stderr.trim());
    let said = if said.is_empty() { String::new() } else { format!(": {said}") };
    BackupError::Database(format!("{tool} {how} ({}){said}; nothing was kept", pg.server))
}

fn db_error(pg: &PgTool, action: &str, err: &sqlx::Error) -> BackupError {
    BackupError::Database(format!("{action} on {}: {}", pg.server, pg.scrub(&err.to_string())))
}

fn interrupt_listener() -> Result<tokio::signal::unix::Signal, BackupError> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| BackupError::Storage(format!("cannot listen for SIGINT: {e}")))
}

/// A byte counter on stderr when it is a terminal.
fn bar(visible: bool, label: &str) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}: {bytes} of SQL ({bytes_per_sec}, {elapsed})")
            .expect("a valid template"),
    );
    bar.set_message(label.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}
