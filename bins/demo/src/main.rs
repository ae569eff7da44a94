//! The README's demo: `log-streamer` streams generated logs into a local
//! Kinesis endpoint (kinesalite, started here through the harness) — it
//! generates realistic Apache, Nginx and application lines for a few
//! seconds (`--generate-test-logs`), tails them, parses, validates, keys and
//! sends them — then the stream is read back from every shard and the count
//! is checked against what log-streamer reports as sent.
//!
//! `cargo xtask demo [--stream-name NAME] [--shards N] [--duration SECS]`

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use shardline_harness::{Kinesalite, streams};

struct Args {
    stream: String,
    shards: i32,
    duration: u32,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        stream: String::from("log-streaming-demo"),
        shards: 2,
        duration: 5,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let value = argv
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--stream-name" => args.stream = value,
            "--shards" => args.shards = value.parse().context("--shards takes a number")?,
            "--duration" => args.duration = value.parse().context("--duration takes seconds")?,
            other => bail!(
                "unknown flag {other}; usage: demo [--stream-name NAME] [--shards N] [--duration SECS]"
            ),
        }
    }
    Ok(args)
}

/// `log-streamer`, built next to this binary (`cargo xtask demo` builds
/// both).
fn log_streamer() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .context("the demo binary has no directory")?
        .join("log-streamer");
    if !path.exists() {
        bail!("{} is not built: run `cargo xtask demo`", path.display());
    }
    Ok(path)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    eprintln!("==> starting kinesalite on 127.0.0.1 (installed into .harness/ on first use)");
    let kinesalite = Kinesalite::start()?;
    let client = kinesalite.kinesis_client();
    streams::create_stream(&client, &args.stream, args.shards).await?;
    eprintln!(
        "    {} — stream {}, {} shards",
        kinesalite.endpoint(),
        args.stream,
        args.shards
    );

    let dir = tempfile::tempdir()?;
    let logs = dir.path().join("streaming-logs");
    let log_files = serde_json::json!([
        {"path": logs.join("apache/access.log"), "type": "apache"},
        {"path": logs.join("nginx/access.log"), "type": "nginx"},
        {"path": logs.join("application/app.log"), "type": "application"},
    ]);
    let duration = args.duration.to_string();
    let command = [
        "--stream-name",
        &args.stream,
        "--log-files",
        &log_files.to_string(),
        "--generate-test-logs",
        "--from-beginning",
        "--duration",
        &duration,
        "--stats-interval",
        "1",
    ];
    eprintln!(
        "==> log-streamer {} (for {duration} s; AWS_ENDPOINT_URL_KINESIS={})",
        command.join(" "),
        kinesalite.endpoint()
    );
    let output = Command::new(log_streamer()?)
        .args(command)
        .arg("--checkpoint-file")
        .arg(dir.path().join("checkpoint.json"))
        .arg("--dead-letter-file")
        .arg(dir.path().join("dead-letters.ndjson"))
        .envs(kinesalite.endpoints().env())
        .stderr(Stdio::inherit())
        .output()
        .context("running log-streamer")?;
    if !output.status.success() {
        bail!("log-streamer failed: {}", output.status);
    }
    let summary: Value =
        serde_json::from_slice(&output.stdout).context("log-streamer's summary")?;
    println!("log-streamer's summary (its statistics JSON):");
    println!("{}", serde_json::to_string_pretty(&summary)?);

    let sent = summary
        .get("total_sent")
        .and_then(Value::as_u64)
        .context("the summary has no total_sent")?;
    let read = streams::read_at_least(
        &client,
        &args.stream,
        usize::try_from(sent)?,
        Duration::from_secs(10),
    )
    .await?;
    let mut by_shard: BTreeMap<&str, usize> = BTreeMap::new();
    for record in &read {
        *by_shard.entry(record.shard_id.as_str()).or_default() += 1;
    }
    if let Some(first) = read.first() {
        println!(
            "a record as stored: {}",
            String::from_utf8_lossy(&first.data)
        );
    }
    let dead_letters = std::fs::read_to_string(dir.path().join("dead-letters.ndjson"))
        .map(|text| text.lines().count())
        .unwrap_or(0);
    println!(
        "read back {} records from the stream {by_shard:?}; log-streamer sent {sent}; \
         {dead_letters} malformed lines dead-lettered",
        read.len()
    );
    if read.len() as u64 != sent {
        bail!(
            "the stream holds {} records, log-streamer sent {sent}",
            read.len()
        );
    }
    println!("ok: the count matches");
    Ok(())
}
