//! cdc-forwarder end to end, the real binary against a real PostgreSQL
//! slot (a bench binary, not criterion: each figure is one whole run).
//!
//! `cargo bench -p cdc-forwarder --bench forwarder`
//!
//! Two workloads are committed once, before any run, and every run reads
//! them through a slot of its own (created before the writes):
//! - `small`: `SHARDLINE_BENCH_CHANGES` (default 100,000) inserts in
//!   transactions of 100 rows;
//! - `large`: the same number of inserts in one transaction (streamed).
//!
//! Each run is `--once` — start-up, the whole slot, the final checkpoint —
//! into `--sink stdout` (PostgreSQL decoding and the forwarder only), and
//! into a 4-shard kinesalite stream without and with KPL aggregation, each
//! with cdc-forwarder's one request in flight and with the producer's 8.
//! Peak resident memory (VmHWM) of each run is sampled from /proc.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shardline_harness::{Kinesalite, Postgres, measure, streams, unique_name};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const EXE: &str = env!("CARGO_BIN_EXE_cdc-forwarder");

struct Run<'a> {
    label: &'a str,
    slot: String,
    args: Vec<String>,
}

fn run(pg: &Postgres, database: &str, kinesalite: &Kinesalite, run: &Run<'_>) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    let mut child = Command::new(EXE)
        .envs(kinesalite.endpoints().env())
        .arg("--postgres-url")
        .arg(pg.url(database))
        .args(["--slot", &run.slot, "--once", "--stats-interval", "0"])
        .arg("--checkpoint-file")
        .arg(dir.path().join("checkpoint.json"))
        .arg("--dead-letter-file")
        .arg(dir.path().join("dead-letters.ndjson"))
        .args(&run.args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let mut peak = 0;
    let stdout = child.stdout.take();
    // Drain stdout (the stdout sink writes every event) while sampling.
    let drain = std::thread::spawn(move || -> (usize, Vec<u8>) {
        use std::io::Read;
        let mut lines = 0;
        let mut tail = Vec::new();
        if let Some(mut out) = stdout {
            let mut buffer = vec![0u8; 1 << 16];
            while let Ok(n) = out.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                let chunk = buffer.get(..n).unwrap_or_default();
                lines += chunk.iter().filter(|b| **b == b'\n').count();
                tail.extend_from_slice(chunk);
                if tail.len() > 1 << 16 {
                    tail.drain(..tail.len() - (1 << 16));
                }
            }
        }
        (lines, tail)
    });
    while child.try_wait()?.is_none() {
        peak = peak.max(measure::high_water_kib(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    let status = child.wait()?;
    let (_, tail) = drain.join().map_err(|_| "stdout reader panicked")?;
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        use std::io::Read;
        err.read_to_string(&mut stderr)?;
    }
    if !status.success() {
        return Err(format!("{}: {stderr}", run.label).into());
    }
    // The summary is the last JSON object on stdout (or stderr with
    // --sink stdout).
    let text = if run.args.iter().any(|a| a == "stdout") {
        stderr
    } else {
        String::from_utf8_lossy(&tail).into_owned()
    };
    let start = text
        .rfind("\n{\n")
        .map(|i| i + 1)
        .or_else(|| text.find("{\n"))
        .unwrap_or(0);
    let end = text.rfind("\n}").map(|i| i + 2).unwrap_or(text.len());
    let summary: serde_json::Value =
        serde_json::from_str(text.get(start..end).unwrap_or_default())?;
    let parsed = summary
        .pointer("/by_source/database_cdc/parsed")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    println!(
        "{:<56} {:>8} changes in {:>6.2} s = {:>8.0} changes/s, peak RSS {:>6.1} MiB",
        run.label,
        parsed,
        elapsed.as_secs_f64(),
        parsed as f64 / elapsed.as_secs_f64(),
        peak as f64 / 1024.0
    );
    Ok(())
}

fn main() -> Result<()> {
    let changes: u64 = std::env::var("SHARDLINE_BENCH_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let pg = Postgres::start()?;
    let kinesalite = Kinesalite::shared()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let client = kinesalite.kinesis_client();
    let database = "bench";
    pg.create_database(database)?;
    pg.psql(
        database,
        "CREATE TABLE small (id bigint PRIMARY KEY, name text, amount numeric, at timestamptz);
         CREATE TABLE large (id bigint PRIMARY KEY, name text, amount numeric, at timestamptz);",
    )?;
    // The producer's default of 8 requests in flight, beside cdc-forwarder's
    // default of 1.
    let configs = tempfile::tempdir()?;
    let eight_config = configs.path().join("eight-in-flight.toml");
    std::fs::write(&eight_config, "[producer]\nmax_in_flight = 8\n")?;
    let eight = vec![
        "--config".to_owned(),
        eight_config.to_string_lossy().into_owned(),
    ];
    let mut runs = Vec::new();
    for workload in ["small", "large"] {
        for (sink, args) in [
            (
                "--sink stdout",
                vec!["--sink".to_owned(), "stdout".to_owned()],
            ),
            ("kinesalite 4 shards", vec![]),
            ("kinesalite 4 shards, 8 in flight", eight.clone()),
            (
                "kinesalite 4 shards --aggregate",
                vec!["--aggregate".to_owned()],
            ),
            ("kinesalite 4 shards --aggregate, 8 in flight", {
                let mut args = eight.clone();
                args.push("--aggregate".to_owned());
                args
            }),
        ] {
            let slot = unique_name("bench");
            pg.psql(
                database,
                &format!("SELECT pg_create_logical_replication_slot('{slot}', 'wal2json')"),
            )?;
            let mut args = args;
            args.extend(["--tables".to_owned(), format!("public.{workload}")]);
            if !args.iter().any(|a| a == "stdout") {
                let stream = unique_name("bench");
                runtime.block_on(streams::create_stream(&client, &stream, 4))?;
                args.extend(["--stream-name".to_owned(), stream]);
            }
            runs.push((workload, sink, slot, args));
        }
    }
    let row = "'customer ' || g, g * 1.5, now()";
    for start in (0..changes).step_by(100) {
        let end = (start + 100).min(changes);
        pg.psql(
            database,
            &format!(
                "INSERT INTO small SELECT g, {row} FROM generate_series({}, {end}) g",
                start + 1
            ),
        )?;
    }
    pg.psql(
        database,
        &format!("INSERT INTO large SELECT g, {row} FROM generate_series(1, {changes}) g"),
    )?;
    println!(
        "cdc-forwarder --once, {changes} inserts per workload (2 cores, debug or release as built)"
    );
    for (workload, sink, slot, args) in runs {
        let label = format!(
            "{} {sink}",
            if workload == "small" {
                "txns of 100:"
            } else {
                "one txn:"
            }
        );
        run(
            &pg,
            database,
            kinesalite,
            &Run {
                label: &label,
                slot,
                args,
            },
        )?;
    }
    Ok(())
}
