//! The queue benchmark's Rust parts, driven by `scripts/bench queue`:
//! filling a paused queue, releasing it and timing until every job is
//! completed (whoever works it: `geoctl agent`, the bare worker below, or
//! BullMQ's Node and Python workers), and the bare `bullmq-official` worker
//! with an empty processor, the ceiling.
//!
//! Run without a subcommand (as `cargo test --all-targets` and `cargo bench`
//! do) it does nothing: it needs a Redis the script starts.

use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "queue-bench", about = "geoctl queue benchmark (run it through scripts/bench queue)")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Empty the queue, pause it, and add --jobs `execute-monitor` jobs for the given monitors (round robin)
    Fill {
        #[arg(long)]
        redis: String,
        #[arg(long)]
        queue: String,
        #[arg(long)]
        jobs: usize,
        /// Monitor ids, comma-separated
        #[arg(long, value_delimiter = ',')]
        monitors: Vec<String>,
    },
    /// Resume the queue and print (JSON) how long its workers take to complete --jobs jobs
    Release {
        #[arg(long)]
        redis: String,
        #[arg(long)]
        queue: String,
        #[arg(long)]
        jobs: u64,
        /// Give up after this many seconds
        #[arg(long, default_value_t = 300)]
        timeout_secs: u64,
        /// Write Redis's calls per command (`INFO commandstats`) made between the resume and the
        /// last job's completion to this file, as `command calls` lines, without this program's
        /// own polling and INFO calls: the round trips of the workers (and of the Lua scripts
        /// they ran, which Redis counts with them)
        #[arg(long)]
        commandstats: Option<std::path::PathBuf>,
    },
    /// A bare worker with an empty processor, until SIGTERM
    Bare {
        #[arg(long)]
        redis: String,
        #[arg(long)]
        queue: String,
        #[arg(long)]
        concurrency: usize,
    },
}

/// The allocator `geoctl` ships with (see `src/main.rs`): the bare worker, the
/// ceiling, allocates as `geoctl agent` does, so the ratio between them is
/// their own work.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        match command {
            Command::Fill { redis, queue, jobs, monitors } => fill(&redis, &queue, jobs, &monitors).await,
            Command::Release { redis, queue, jobs, timeout_secs, commandstats } => {
                release(&redis, &queue, jobs, timeout_secs, commandstats.as_deref()).await
            }
            Command::Bare { redis, queue, concurrency } => bare(&redis, &queue, concurrency).await,
        }
    })
}

async fn open(redis: &str, queue: &str) -> anyhow::Result<bullmq::Queue> {
    let options = bullmq::QueueOptions::new().connection(bullmq::options::RedisConnectionOptions::new().url(redis));
    Ok(bullmq::Queue::with_options(queue, options).await?)
}

async fn fill(redis: &str, queue: &str, jobs: usize, monitors: &[String]) -> anyhow::Result<()> {
    anyhow::ensure!(!monitors.is_empty(), "--monitors names at least one monitor id");
    let queue = open(redis, queue).await?;
    queue.obliterate(true, 10_000).await?;
    queue.pause().await?;
    let mut added = 0;
    while added < jobs {
        let chunk: Vec<bullmq::BulkJob> = (added..jobs.min(added + 1000))
            .map(|i| {
                let data = serde_json::json!({ "monitorId": monitors[i % monitors.len()] });
                bullmq::BulkJob::new("execute-monitor", data)
            })
            .collect();
        added += chunk.len();
        queue.add_bulk(chunk).await?;
    }
    eprintln!("{added} jobs waiting on paused queue {}", queue.name());
    Ok(())
}

async fn release(
    redis: &str,
    queue: &str,
    jobs: u64,
    timeout_secs: u64,
    commandstats: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let queue = open(redis, queue).await?;
    let keys = queue.keys();
    let mut conn = queue.connection().connection();
    let before = match commandstats {
        Some(_) => Some(command_calls(&mut conn).await?),
        None => None,
    };
    let mut polls = 0u64;
    let start = Instant::now();
    queue.resume().await?;
    let deadline = start + Duration::from_secs(timeout_secs);
    // Done when nothing waits or runs. (Counting `completed` would not do: a
    // scheduler's job, kept to its last 100, trims that set when it finishes.)
    loop {
        let (wait, paused, active, prioritized): (u64, u64, u64, u64) = redis::pipe()
            .llen(keys.wait())
            .llen(keys.paused())
            .llen(keys.active())
            .zcard(keys.prioritized())
            .query_async(&mut conn)
            .await?;
        polls += 1;
        let left = wait + paused + active + prioritized;
        if left == 0 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "{left} of {jobs} jobs still not done after {timeout_secs}s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    if let (Some(path), Some(before)) = (commandstats, before) {
        let mut calls = command_calls(&mut conn).await?;
        for (command, n) in &before {
            *calls.entry(command.clone()).or_default() -= n;
        }
        // This program's own: each poll is a pipeline of three LLEN and one ZCARD, and the second
        // INFO counts the first. (The resume, one script, is left in: it is the same for every worker.)
        *calls.entry("llen".into()).or_default() -= 3 * polls as i64;
        *calls.entry("zcard".into()).or_default() -= polls as i64;
        *calls.entry("info".into()).or_default() -= 1;
        let lines: String =
            calls.iter().filter(|(_, n)| **n != 0).map(|(command, n)| format!("{command} {n}\n")).collect();
        std::fs::write(path, lines)?;
    }
    println!("{}", serde_json::json!({ "jobs": jobs, "seconds": seconds, "jobs_per_s": jobs as f64 / seconds }));
    Ok(())
}

/// Calls so far per command, from `INFO commandstats` (`cmdstat_<name>:calls=<n>,…`).
async fn command_calls(
    conn: &mut (impl redis::aio::ConnectionLike + Send),
) -> anyhow::Result<std::collections::BTreeMap<String, i64>> {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(conn).await?;
    Ok(info
        .lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats.split(',').find_map(|kv| kv.strip_prefix("calls="))?.parse().ok()?;
            Some((name.to_string(), calls))
        })
        .collect())
}

async fn bare(redis: &str, queue: &str, concurrency: usize) -> anyhow::Result<()> {
    let options = bullmq::WorkerOptions::new()
        .connection(bullmq::options::RedisConnectionOptions::new().url(redis))
        .concurrency(concurrency);
    let worker = bullmq::Worker::with_options(
        queue,
        |_job: bullmq::Job, _token| async move { Ok(serde_json::Value::Null) },
        options,
    )
    .await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    worker.close(5_000).await?;
    Ok(())
}
