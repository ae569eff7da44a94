//! The README's demo, until log-streamer exists: the seed lab's sample logs
//! (Apache, Nginx, JSON application lines in `fixtures/logs/`) are parsed
//! by `shardline-log-parser`, keyed by the web-log strategy, sent through
//! `shardline-producer` into a kinesalite the harness starts on 127.0.0.1,
//! read back from every shard, and the statistics are printed as the seeds'
//! stats JSON.
//!
//! `cargo xtask demo [--stream-name NAME] [--shards N]`

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use shardline_harness::{Kinesalite, streams};
use shardline_log_parser::LogParser;
use shardline_partition_key::{Fields, PartitionKeyStrategy, WebLogKey};
use shardline_producer::{
    DeadLetterFile, KinesisDestination, Outcome, Producer, Record, SourceName,
};

fn args() -> anyhow::Result<(String, i32)> {
    let mut stream = String::from("log-streaming-demo");
    let mut shards = 2;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--stream-name" => stream = value,
            "--shards" => shards = value.parse().context("--shards takes a number")?,
            other => bail!("unknown flag {other}; usage: demo [--stream-name NAME] [--shards N]"),
        }
    }
    Ok((stream, shards))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (stream, shards) = args()?;
    eprintln!("==> starting kinesalite on 127.0.0.1 (installed into .harness/ on first use)");
    let kinesalite = Kinesalite::start()?;
    let client = kinesalite.kinesis_client();
    streams::create_stream(&client, &stream, shards).await?;
    eprintln!(
        "    {} — stream {stream}, {shards} shards",
        kinesalite.endpoint()
    );

    let dir = std::env::temp_dir().join(format!("shardline-demo-{}", std::process::id()));
    let dead_letters = DeadLetterFile::open(&dir.join("dead-letters.ndjson"))?;
    let producer = Producer::builder(KinesisDestination::new(&client, &stream), dead_letters)
        .linger(Duration::from_millis(50))
        .build()?;

    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/logs");
    let inputs = [
        ("apache_access.log", LogParser::apache(), "web_logs"),
        ("nginx_access.log", LogParser::nginx(), "web_logs"),
        ("app.log", LogParser::application(), "app_logs"),
    ];
    let strategy = WebLogKey::default();
    let started = Instant::now();
    let mut receipts = Vec::new();
    let mut lines = 0u64;
    let mut parse_errors = 0u64;
    let mut json = Vec::new();
    for (file, parser, source) in &inputs {
        let path = fixtures.join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            lines += 1;
            let record = match parser.parse(line) {
                Ok(record) => record,
                Err(e) => {
                    parse_errors += 1;
                    eprintln!("    {file}: {e}");
                    continue;
                }
            };
            json.clear();
            record.write_json(&mut json)?;
            let value: Value = serde_json::from_slice(&json)?;
            // Application lines have no client address: key them by request.
            let key = match strategy.key(&value as &dyn Fields) {
                Ok(choice) => choice.partition_key,
                Err(_) => shardline_partition_key::PartitionKey::new_or_hashed(
                    &value.text("request_id").unwrap_or_default(),
                ),
            };
            let record = Record::new(json.clone(), key, SourceName::new(source));
            receipts.push(producer.send(record).await?);
        }
    }
    let mut delivered = 0usize;
    for receipt in receipts {
        if let Outcome::Delivered(_) = receipt.await {
            delivered += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    producer.shutdown(Duration::from_secs(10)).await;
    eprintln!("==> parsed {lines} lines ({parse_errors} errors), delivered {delivered} records");

    let read = streams::read_at_least(&client, &stream, delivered, Duration::from_secs(10)).await?;
    let mut by_shard: BTreeMap<&str, usize> = BTreeMap::new();
    for record in &read {
        *by_shard.entry(record.shard_id.as_str()).or_default() += 1;
    }
    println!(
        "read back {} records from the stream: {by_shard:?}",
        read.len()
    );
    if let Some(first) = read.first() {
        println!(
            "a record as stored: {}",
            String::from_utf8_lossy(&first.data)
        );
    }

    // The seeds' statistics.
    let stats = producer.stats();
    let total = stats.total;
    let failed = total.dead_lettered + total.failed;
    let by_source: BTreeMap<&String, Value> = stats
        .by_source
        .iter()
        .map(|(name, s)| {
            (
                name,
                json!({"sent": s.delivered, "failed": s.dead_lettered + s.failed}),
            )
        })
        .collect();
    let snapshot = json!({
        "total_sent": total.delivered,
        "total_failed": failed,
        "success_rate": if total.records_in == 0 { 0.0 } else {
            (total.delivered as f64 * 10_000.0 / total.records_in as f64).round() / 100.0
        },
        "throughput_per_sec": (total.delivered as f64 / elapsed * 10.0).round() / 10.0,
        "by_source": by_source,
    });
    println!("{}", serde_json::to_string_pretty(&snapshot)?);
    if read.len() != delivered || delivered as u64 != lines - parse_errors {
        bail!(
            "{lines} lines, {delivered} delivered, {} read back",
            read.len()
        );
    }
    println!("ok: every parsed line was delivered and read back");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
