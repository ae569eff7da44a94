//! log-streamer end to end, the real binary on real files (a bench binary,
//! not criterion: each figure is one whole run).
//!
//! `cargo bench -p log-streamer --bench streamer`
//!
//! 1. Lines/s from an Apache combined file with `--once --sink stdout`
//!    (parse-bound: nothing is sent), and into a 4-shard kinesalite stream
//!    without and with KPL aggregation. Each run's time includes start-up,
//!    the stream check and the final checkpoint.
//! 2. Peak resident memory (VmHWM) while a 1 GB backlog waits behind a
//!    destination that answers nothing (the fault proxy stalls every
//!    request).
//!
//! `SHARDLINE_BENCH_LINES` scales the line counts (default 1,000,000).

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shardline_harness::fault_proxy::{FaultProxy, RequestFault};
use shardline_harness::{Kinesalite, measure, streams, unique_name};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const EXE: &str = env!("CARGO_BIN_EXE_log-streamer");

/// Writes `n` varied Apache combined lines (~200 bytes each); returns the
/// bytes written.
fn write_log(path: &Path, n: u64) -> Result<u64> {
    const AGENTS: [&str; 3] = [
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)",
        "curl/8.5.0",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    ];
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut bytes = 0;
    for i in 0..n {
        let line = format!(
            "10.{}.{}.{} - - [15/Jan/2024:10:{:02}:{:02} +0000] \"GET /api/items/{i}?page={} HTTP/1.1\" {} {} \"https://example.com/list\" \"{}\"\n",
            i % 200,
            (i / 200) % 250,
            i % 251,
            (i / 60) % 60,
            i % 60,
            i % 17,
            [200, 200, 304, 404]
                .get((i % 4) as usize)
                .copied()
                .unwrap_or(200),
            1000 + i % 5000,
            AGENTS.get((i % 3) as usize).copied().unwrap_or_default(),
        );
        bytes += line.len() as u64;
        out.write_all(line.as_bytes())?;
    }
    out.flush()?;
    Ok(bytes)
}

fn run(dir: &Path, log: &Path, env: &[(String, String)], args: &[&str]) -> Result<Duration> {
    let files = serde_json::json!([{"path": log, "type": "apache"}]).to_string();
    let started = Instant::now();
    let status = Command::new(EXE)
        .envs(env.iter().cloned())
        .args(["--once", "--log-files", &files, "--stats-interval", "0"])
        .arg("--checkpoint-file")
        .arg(dir.join(format!("{}.checkpoint", unique_name("cp"))))
        .arg("--dead-letter-file")
        .arg(dir.join("dead-letters.ndjson"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()?;
    if !status.success() {
        return Err(format!("log-streamer {args:?} failed: {status}").into());
    }
    Ok(started.elapsed())
}

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let lines: u64 = std::env::var("SHARDLINE_BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("access.log");
    let bytes = write_log(&log, lines)?;
    println!(
        "corpus: {lines} Apache combined lines, {:.1} B/line",
        bytes as f64 / lines as f64
    );
    let runtime = tokio::runtime::Runtime::new()?;
    let kinesalite = Kinesalite::start()?;
    // SHARDLINE_BENCH_ONLY=rss: the memory run alone.
    if std::env::var("SHARDLINE_BENCH_ONLY").as_deref() != Ok("rss") {
        throughput(&runtime, &kinesalite, dir.path(), &log, lines)?;
    }
    blocked_rss(&runtime, &kinesalite, dir.path(), bytes / lines.max(1))
}

fn throughput(
    runtime: &tokio::runtime::Runtime,
    kinesalite: &Kinesalite,
    dir: &Path,
    log: &Path,
    lines: u64,
) -> Result<()> {
    let took = run(dir, log, &[], &["--sink", "stdout"])?;
    println!(
        "--sink stdout: {:.0} lines/s ({:.2} s)",
        lines as f64 / took.as_secs_f64(),
        took.as_secs_f64()
    );

    let env = kinesalite.endpoints().env();
    let client = kinesalite.kinesis_client();
    // kinesalite takes ~20k records/s: a fifth of the lines without
    // aggregation keeps the run short.
    for (label, n, extra) in [
        ("kinesalite, no aggregation", lines / 5, None),
        ("kinesalite, KPL aggregation", lines, Some("--aggregate")),
    ] {
        let stream = unique_name("bench_streamer");
        runtime.block_on(streams::create_stream(&client, &stream, 4))?;
        let part = dir.join("part.log");
        write_log(&part, n)?;
        let mut args = vec!["--stream-name", stream.as_str()];
        args.extend(extra);
        let took = run(dir, &part, &env, &args)?;
        println!(
            "{label}: {n} lines, {:.0} lines/s ({:.2} s)",
            n as f64 / took.as_secs_f64(),
            took.as_secs_f64()
        );
    }

    Ok(())
}

/// 1 GB waiting behind a destination that never answers.
fn blocked_rss(
    runtime: &tokio::runtime::Runtime,
    kinesalite: &Kinesalite,
    dir: &Path,
    line_bytes: u64,
) -> Result<()> {
    let client = kinesalite.kinesis_client();
    let backlog = dir.join("backlog.log");
    let backlog_lines = 1_000_000_000 / line_bytes.max(1);
    let backlog_bytes = write_log(&backlog, backlog_lines)?;
    let stream = unique_name("bench_blocked");
    runtime.block_on(streams::create_stream(&client, &stream, 4))?;
    let proxy = runtime.block_on(FaultProxy::start(&kinesalite.endpoint()))?;
    let mut env = kinesalite.endpoints();
    env.kinesis = Some(proxy.endpoint());
    // The start-up check (DescribeStreamSummary) goes through; every put
    // then stalls.
    proxy.set_random_request_fault(Some((
        RequestFault::Stall {
            delay: Duration::from_secs(3600),
            forward: false,
        },
        1.0,
    )));
    let files = serde_json::json!([{"path": backlog, "type": "apache"}]).to_string();
    let mut child = Command::new(EXE)
        .envs(env.env())
        .args(["--once", "--log-files", &files, "--stats-interval", "0"])
        .args(["--stream-name", &stream])
        .arg("--checkpoint-file")
        .arg(dir.join("blocked.checkpoint"))
        .arg("--dead-letter-file")
        .arg(dir.join("blocked.ndjson"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut peak = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if let Some(kib) = measure::high_water_kib(child.id()) {
            peak = peak.max(kib);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "blocked destination, {:.2} GB backlog: peak RSS {:.1} MiB after 20 s",
        backlog_bytes as f64 / 1e9,
        peak as f64 / 1024.0
    );
    Ok(())
}
