//! `scripts/bench synthetic` drives it; alone (as `cargo test` runs it) it does nothing.
//!
//! * `synthetic serve PORT`: the benchmark's API (login issuing a token, a profile and an
//!   order that require it), one request per connection, as the tests' API answers.
//! * `synthetic run SCRIPT SECONDS CONCURRENCY`: runs the script's flow through
//!   `geoctl::synthetic::flow::run` from this one process, CONCURRENCY flows at a time, for
//!   SECONDS; prints one JSON line: flows, flows/s, failures, CPU seconds and CPU per step.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const PASSWORD: &str = "bench-pw";
const TOKEN: &str = "tok-bench-0001";

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe {
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

async fn answer(stream: tokio::net::TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
    let (mut length, mut authorized) = (0usize, false);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).await? == 0 || header == "\r\n" {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or((&header, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap_or(0),
            "authorization" => authorized = value.trim() == format!("Bearer {TOKEN}"),
            _ => {}
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).await?;
    let (status, text) = match (method.as_str(), path.as_str()) {
        ("POST", "/login") => {
            let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if request["password"] == PASSWORD {
                (200, serde_json::json!({ "token": TOKEN, "user": request["user"] }))
            } else {
                (401, serde_json::json!({ "error": "bad password" }))
            }
        }
        ("GET", "/api/me") if authorized => (200, serde_json::json!({ "user": "demo", "orders": [42] })),
        ("GET", "/api/orders/42") if authorized => (200, serde_json::json!({ "id": 42, "status": "shipped" })),
        _ => (401, serde_json::json!({ "error": "no token" })),
    };
    let text = text.to_string();
    let mut stream = reader.into_inner();
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        text.len()
    );
    stream.write_all(format!("{head}{text}").as_bytes()).await?;
    stream.shutdown().await
}

async fn serve(port: u16) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind the bench API");
    loop {
        if let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer(stream));
        }
    }
}

async fn run(script: &str, seconds: u64, concurrency: usize) {
    let text = std::fs::read_to_string(script).expect("read the script");
    let script = Arc::new(geoctl::synthetic::Script::parse(&text).expect("a valid script"));
    let steps = script.steps.len() as f64;
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let first_failure = Arc::new(std::sync::Mutex::new(None::<String>));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (cpu_before, started) = (cpu_seconds(), Instant::now());
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (script, ok, failed, first_failure) =
                (script.clone(), ok.clone(), failed.clone(), first_failure.clone());
            tokio::spawn(async move {
                let options = geoctl::synthetic::RunOptions::new(Duration::from_secs(10));
                while Instant::now() < deadline {
                    let flow = geoctl::synthetic::flow::run(&script, &options).await;
                    if flow.up {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                        first_failure.lock().unwrap().get_or_insert_with(|| format!("{:?}", flow.failure));
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let (elapsed, cpu) = (started.elapsed().as_secs_f64(), cpu_seconds() - cpu_before);
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let total = (ok + failed) as f64;
    println!(
        "{}",
        serde_json::json!({
            "client": "geoctl",
            "concurrency": concurrency,
            "flows": ok,
            "failures": failed,
            "first_failure": *first_failure.lock().unwrap(),
            "seconds": elapsed,
            "flows_per_s": ok as f64 / elapsed,
            "cpu_s": cpu,
            "cpu_ms_per_step": if total > 0.0 { Some(cpu * 1000.0 / (total * steps)) } else { None },
        })
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["serve", port] => runtime.block_on(serve(port.parse().expect("PORT"))),
        ["run", script, seconds, concurrency] => {
            runtime.block_on(run(script, seconds.parse().expect("SECONDS"), concurrency.parse().expect("CONCURRENCY")))
        }
        // `cargo test --all-targets` runs bench targets with test-harness arguments: nothing to do.
        _ => {}
    }
}
