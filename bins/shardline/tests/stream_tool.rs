//! `shardline` end to end, as a user runs it: against the harness's
//! kinesalite (Kinesis), the shard-limit proxy in front of it (which speaks
//! `UpdateShardCount`), and moto (CloudWatch).

// The helpers below are assertions: a describe without shards, a hash key
// that is not a number is the test failing.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use serde_json::Value;
use shardline_harness::shard_limit::{ShardLimitProxy, ShardLimits};
use shardline_harness::{AwsEndpoints, Kinesalite, Moto, binary, streams, unique_name};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// `shardline` with the endpoints in its environment.
fn shardline(endpoints: &AwsEndpoints) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shardline"));
    command.envs(endpoints.env()).env("RUST_LOG", "warn");
    command
}

/// Runs it to the end; fails with its stderr unless it succeeds.
fn run(endpoints: &AwsEndpoints, args: &[&str]) -> Result<Output, Box<dyn std::error::Error>> {
    let output = shardline(endpoints).args(args).output()?;
    if !output.status.success() {
        return Err(format!(
            "shardline {args:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(output)
}

/// `shardline read NAME ARGS...`: one JSON object per line.
fn read(
    endpoints: &AwsEndpoints,
    stream: &str,
    args: &[&str],
) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    let mut all = vec!["read", stream];
    all.extend_from_slice(args);
    let output = run(endpoints, &all)?;
    Ok(String::from_utf8(output.stdout)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?)
}

fn describe(endpoints: &AwsEndpoints, stream: &str) -> Result<Value, Box<dyn std::error::Error>> {
    let output = run(endpoints, &["describe", stream, "--json"])?;
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// Puts `keys × per_key` records, `"<key> <n>"`, through the SDK.
async fn put_numbered(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    keys: &[&str],
    numbers: std::ops::Range<u32>,
) -> TestResult {
    let entries = numbers
        .flat_map(|n| keys.iter().map(move |key| (key.to_string(), n)))
        .map(|(key, n)| {
            PutRecordsRequestEntry::builder()
                .partition_key(&key)
                .data(Blob::new(format!("{key} {n}")))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    for chunk in entries.chunks(500) {
        let answer = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(chunk.to_vec()))
            .send()
            .await?;
        assert_eq!(answer.failed_record_count(), Some(0));
    }
    Ok(())
}

/// The hash-key ranges of the open shards, in order: they must tile the
/// whole key space.
fn assert_open_shards_tile_the_key_space(description: &Value, count: usize) {
    let mut open: Vec<(u128, u128)> = description["shards"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["ending_sequence_number"].is_null())
        .map(|s| {
            (
                s["starting_hash_key"].as_str().unwrap().parse().unwrap(),
                s["ending_hash_key"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    open.sort();
    assert_eq!(open.len(), count, "{description:#}");
    assert_eq!(open.first().map(|r| r.0), Some(0));
    assert_eq!(open.last().map(|r| r.1), Some(u128::MAX));
    for pair in open.windows(2) {
        assert_eq!(pair[0].1 + 1, pair[1].0, "a gap or overlap: {open:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn create_waits_for_active_describes_and_is_idempotent() -> TestResult {
    let endpoints = Kinesalite::shared()?.endpoints();
    let stream = unique_name("tool_create");
    let create = [
        "create-stream",
        &stream,
        "--shards",
        "2",
        "--retention-hours",
        "168",
    ];
    let created = run(&endpoints, &create)?;
    let said = String::from_utf8(created.stdout)?;
    assert!(
        said.starts_with(&format!(
            "created {stream}: ACTIVE, 2 open shards, retention 168 hours"
        )),
        "{said}"
    );

    let description = describe(&endpoints, &stream)?;
    assert_eq!(description["status"], "ACTIVE");
    assert_eq!(description["retention_hours"], 168);
    assert_eq!(description["open_shards"], 2);
    assert_open_shards_tile_the_key_space(&description, 2);

    // The same shape again: nothing to do.
    let again = run(&endpoints, &create)?;
    assert!(String::from_utf8(again.stdout)?.starts_with("already there:"));
    // Another shape: an error that says what the stream has.
    let other = shardline(&endpoints)
        .args(["create-stream", &stream, "--shards", "3"])
        .output()?;
    assert!(!other.status.success());
    let error = String::from_utf8(other.stderr)?;
    assert!(
        error.contains("2 open shards, not 3 open shards"),
        "{error}"
    );

    // The table names every shard and its share of the key space.
    let table = String::from_utf8(run(&endpoints, &["describe", &stream])?.stdout)?;
    assert!(table.contains("retention            168 hours"), "{table}");
    assert_eq!(table.matches(" open ").count(), 2, "{table}");
    assert_eq!(table.matches("50.0%").count(), 2, "{table}");

    // An endpoint without EnableEnhancedMonitoring (kinesalite): the
    // stream is made, and the user is told the metrics stay off.
    let monitored = unique_name("tool_monitored");
    let output = run(
        &endpoints,
        &[
            "create-stream",
            &monitored,
            "--shards",
            "1",
            "--enhanced-monitoring",
        ],
    )?;
    let told = String::from_utf8(output.stderr)?;
    assert!(
        told.contains("no EnableEnhancedMonitoring: shard-level metrics stay off"),
        "{told}"
    );
    assert_eq!(describe(&endpoints, &monitored)?["status"], "ACTIVE");

    let missing = shardline(&endpoints)
        .args(["describe", &unique_name("tool_missing")])
        .output()?;
    assert!(!missing.status.success());
    assert!(String::from_utf8(missing.stderr)?.contains("does not exist"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn put_then_read_gives_back_every_record_sent() -> TestResult {
    let endpoints = Kinesalite::shared()?.endpoints();
    let stream = unique_name("tool_put");
    run(&endpoints, &["create-stream", &stream, "--shards", "2"])?;
    let dir = tempfile::tempdir()?;
    let letters = dir.path().join("dead-letters.ndjson");
    let output = run(
        &endpoints,
        &[
            "put",
            &stream,
            "--rate",
            "300",
            "--duration",
            "2",
            "--source",
            "iot",
            "--dead-letter-file",
            letters.to_str().unwrap(),
        ],
    )?;
    let summary = binary::summary("shardline put", &output)?;
    let sent = summary["total_sent"].as_u64().unwrap();
    assert!(sent > 300, "{summary:#}");

    let records = read(&endpoints, &stream, &[])?;
    assert_eq!(records.len() as u64, sent);
    let shards: BTreeMap<&str, usize> = records.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r["shard"].as_str().unwrap()).or_default() += 1;
        m
    });
    assert_eq!(shards.len(), 2, "{shards:?}");
    for record in &records {
        let reading: Value = serde_json::from_str(record["data"].as_str().unwrap())?;
        assert!(reading.get("device_id").is_some(), "{record}");
        assert!(record["arrival"].as_str().unwrap().ends_with('Z'));
        assert_eq!(record["sub_sequence_number"], 0);
        assert!(!record["sequence_number"].as_str().unwrap().is_empty());
    }
    // --limit stops early.
    assert_eq!(read(&endpoints, &stream, &["--limit", "7"])?.len(), 7);
    Ok(())
}

/// The log-streamer binary, built next to this package's by
/// `cargo test --workspace`.
fn log_streamer() -> Result<PathBuf, Box<dyn std::error::Error>> {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_shardline")).with_file_name("log-streamer");
    if !path.exists() {
        return Err(format!(
            "{} is not built: run the tests with `cargo test --workspace` (or `cargo build -p log-streamer` first)",
            path.display()
        )
        .into());
    }
    Ok(path)
}

#[tokio::test(flavor = "multi_thread")]
async fn aggregated_log_lines_read_back_once_each_in_order() -> TestResult {
    const LINES: usize = 1_000;
    let kinesalite = Kinesalite::shared()?;
    let endpoints = kinesalite.endpoints();
    let stream = unique_name("tool_agg");
    run(&endpoints, &["create-stream", &stream, "--shards", "2"])?;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("app.log");
    let mut file = std::fs::File::create(&log)?;
    for n in 0..LINES {
        writeln!(
            file,
            "{{\"level\":\"INFO\",\"user\":\"user-{}\",\"line\":{n}}}",
            n % 13
        )?;
    }
    drop(file);
    let files = serde_json::json!([{"path": log, "type": "application"}]).to_string();
    let output = Command::new(log_streamer()?)
        .envs(endpoints.env())
        .env("RUST_LOG", "warn")
        .args([
            "--stream-name",
            &stream,
            "--log-files",
            &files,
            "--once",
            "--from-beginning",
            "--aggregate",
            "--stats-interval",
            "0",
        ])
        .arg("--checkpoint-file")
        .arg(dir.path().join("checkpoint.json"))
        .arg("--dead-letter-file")
        .arg(dir.path().join("dead-letters.ndjson"))
        .output()?;
    let summary = binary::summary("log-streamer", &output)?;
    assert_eq!(summary["total_sent"], LINES as u64, "{summary:#}");

    let stored = streams::read_all(&kinesalite.kinesis_client(), &stream).await?;
    assert!(
        stored.len() < LINES / 10,
        "{} stored records: not aggregated",
        stored.len()
    );

    let records = read(&endpoints, &stream, &[])?;
    let mut lines: Vec<u64> = Vec::new();
    let mut last_by_key: BTreeMap<String, u64> = BTreeMap::new();
    for record in &records {
        let data: Value = serde_json::from_str(record["data"].as_str().unwrap())?;
        let line = data["line"]
            .as_u64()
            .ok_or_else(|| format!("no line in {record}"))?;
        let key = record["partition_key"].as_str().unwrap().to_owned();
        if let Some(before) = last_by_key.insert(key.clone(), line) {
            assert!(before < line, "key {key}: line {line} after {before}");
        }
        lines.push(line);
    }
    lines.sort_unstable();
    assert_eq!(lines, (0..LINES as u64).collect::<Vec<_>>());
    assert!(
        records
            .iter()
            .any(|r| r["sub_sequence_number"].as_u64() > Some(0))
    );

    // --raw shows the stored records themselves.
    assert_eq!(read(&endpoints, &stream, &["--raw"])?.len(), stored.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_split_mid_stream_parents_are_read_before_children() -> TestResult {
    let kinesalite = Kinesalite::shared()?;
    let endpoints = kinesalite.endpoints();
    let client = kinesalite.kinesis_client();
    let stream = unique_name("tool_split");
    run(&endpoints, &["create-stream", &stream, "--shards", "1"])?;
    let keys = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];
    put_numbered(&client, &stream, &keys, 0..25).await?;
    assert!(read(&endpoints, &stream, &["--from", "latest"])?.is_empty());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let between = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    put_numbered(&client, &stream, &keys, 25..50).await?;
    // kinesalite has no UpdateShardCount: the tool splits the shard itself.
    let scaled = String::from_utf8(run(&endpoints, &["scale", &stream, "--shards", "2"])?.stdout)?;
    assert!(
        scaled.contains("no UpdateShardCount: 1 split and 0 merges"),
        "{scaled}"
    );
    put_numbered(&client, &stream, &keys, 50..100).await?;

    let description = describe(&endpoints, &stream)?;
    assert_open_shards_tile_the_key_space(&description, 2);
    let parent = description["shards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| !s["ending_sequence_number"].is_null())
        .and_then(|s| s["id"].as_str())
        .ok_or("no closed shard after the split")?
        .to_owned();

    let records = read(&endpoints, &stream, &[])?;
    assert_eq!(records.len(), keys.len() * 100);
    let last_parent = records
        .iter()
        .rposition(|r| r["shard"] == parent.as_str())
        .unwrap();
    let first_child = records
        .iter()
        .position(|r| r["shard"] != parent.as_str())
        .unwrap();
    assert_eq!(
        last_parent + 1,
        first_child,
        "a child's record came before its parent's last"
    );
    let mut next: BTreeMap<String, u32> = BTreeMap::new();
    for record in &records {
        let data = record["data"].as_str().unwrap();
        let (key, n) = data.split_once(' ').unwrap();
        let expected = next.entry(key.to_owned()).or_default();
        assert_eq!(n.parse::<u32>()?, *expected, "{key} out of order");
        *expected += 1;
    }

    // From a time (before the split; kinesalite never answers an
    // AT_TIMESTAMP iterator for a shard with no record after the time):
    // only what arrived after it, parents first still.
    let since = read(
        &endpoints,
        &stream,
        &[
            "--from",
            &format!("at-timestamp:{:.3}", between.as_secs_f64()),
        ],
    )?;
    let numbers: Vec<u32> = since
        .iter()
        .map(|r| {
            let data = r["data"].as_str().unwrap();
            data.split(' ').nth(1).unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(numbers.len(), keys.len() * 75);
    assert!(numbers.iter().all(|&n| n >= 25), "{numbers:?}");
    let last_before_split = numbers.iter().rposition(|&n| n < 50).unwrap();
    let first_after_split = numbers.iter().position(|&n| n >= 50).unwrap();
    assert!(last_before_split < first_after_split, "{numbers:?}");

    // One shard alone, and a position within it.
    let parent_only = read(&endpoints, &stream, &["--shard", &parent])?;
    assert_eq!(parent_only.len(), keys.len() * 50);
    let tenth = parent_only[9]["sequence_number"]
        .as_str()
        .unwrap()
        .to_owned();
    let after = read(
        &endpoints,
        &stream,
        &[
            "--shard",
            &parent,
            "--from",
            &format!("after-sequence:{tenth}"),
        ],
    )?;
    assert_eq!(after.len(), keys.len() * 50 - 10);
    let without_shard = shardline(&endpoints)
        .args([
            "read",
            &stream,
            "--from",
            &format!("after-sequence:{tenth}"),
        ])
        .output()?;
    assert!(!without_shard.status.success());
    assert!(String::from_utf8(without_shard.stderr)?.contains("needs a shard"));

    // And back to one shard: merged.
    let merged = String::from_utf8(run(&endpoints, &["scale", &stream, "--shards", "1"])?.stdout)?;
    assert!(merged.contains("0 splits and 1 merge"), "{merged}");
    assert_open_shards_tile_the_key_space(&describe(&endpoints, &stream)?, 1);
    assert_eq!(read(&endpoints, &stream, &[])?.len(), keys.len() * 100);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn scale_uses_update_shard_count_where_the_endpoint_has_it() -> TestResult {
    let kinesalite = Kinesalite::shared()?;
    let proxy = ShardLimitProxy::start(&kinesalite.endpoint(), ShardLimits::kinesis()).await?;
    let endpoints = AwsEndpoints {
        kinesis: Some(proxy.endpoint()),
        ..AwsEndpoints::default()
    };
    let stream = unique_name("tool_uniform");
    run(&endpoints, &["create-stream", &stream, "--shards", "2"])?;
    let scaled = String::from_utf8(run(&endpoints, &["scale", &stream, "--shards", "4"])?.stdout)?;
    assert!(
        scaled.contains("4 open shards (UpdateShardCount, uniform scaling)"),
        "{scaled}"
    );
    assert_open_shards_tile_the_key_space(&describe(&endpoints, &stream)?, 4);
    let too_far = shardline(&endpoints)
        .args(["scale", &stream, "--shards", "9"])
        .output()?;
    assert!(!too_far.status.success());
    assert!(String::from_utf8(too_far.stderr)?.contains("scale in steps"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn follow_prints_records_as_they_arrive() -> TestResult {
    let kinesalite = Kinesalite::shared()?;
    let endpoints = kinesalite.endpoints();
    let client = kinesalite.kinesis_client();
    let stream = unique_name("tool_follow");
    run(&endpoints, &["create-stream", &stream, "--shards", "2"])?;
    put_numbered(&client, &stream, &["early"], 0..5).await?;
    let mut child = shardline(&endpoints)
        .args(["read", &stream, "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("stdout is not piped")?;
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let take = |n: usize| -> Result<Vec<String>, Box<dyn std::error::Error>> {
        (0..n)
            .map(|_| Ok(lines_rx.recv_timeout(Duration::from_secs(20))?))
            .collect()
    };
    let early = take(5)?;
    assert!(early.iter().all(|l| l.contains("\"early ")), "{early:?}");
    put_numbered(&client, &stream, &["late"], 0..5).await?;
    let late = take(5)?;
    assert!(late.iter().all(|l| l.contains("\"late ")), "{late:?}");
    assert!(child.try_wait()?.is_none(), "--follow ended by itself");
    // Ctrl-C ends it cleanly.
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()?;
    let status = binary::wait_with_timeout(&mut child, Duration::from_secs(10))?;
    assert!(status.success(), "{status}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_sum_up_what_cloudwatch_holds_for_the_stream() -> TestResult {
    use aws_sdk_cloudwatch::primitives::DateTime;
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};

    let moto = Moto::shared()?;
    let endpoints = moto.endpoints();
    let stream = unique_name("tool_metrics");
    let cloudwatch =
        aws_sdk_cloudwatch::Client::new(&shardline_harness::sdk_config(&moto.endpoint()));
    let now = std::time::SystemTime::now();
    let datum = |metric: &str, minutes_ago: u64, value: f64, unit: StandardUnit| {
        MetricDatum::builder()
            .metric_name(metric)
            .dimensions(
                Dimension::builder()
                    .name("StreamName")
                    .value(&stream)
                    .build(),
            )
            .timestamp(DateTime::from(now - Duration::from_secs(minutes_ago * 60)))
            .value(value)
            .unit(unit)
            .build()
    };
    cloudwatch
        .put_metric_data()
        .namespace("AWS/Kinesis")
        .metric_data(datum("IncomingRecords", 3, 1_000.0, StandardUnit::Count))
        .metric_data(datum("IncomingRecords", 2, 2_500.0, StandardUnit::Count))
        .metric_data(datum(
            "PutRecords.Latency",
            3,
            20.0,
            StandardUnit::Milliseconds,
        ))
        .metric_data(datum(
            "PutRecords.Latency",
            2,
            40.0,
            StandardUnit::Milliseconds,
        ))
        .metric_data(datum(
            "GetRecords.IteratorAgeMilliseconds",
            3,
            900.0,
            StandardUnit::Milliseconds,
        ))
        .metric_data(datum(
            "GetRecords.IteratorAgeMilliseconds",
            2,
            300.0,
            StandardUnit::Milliseconds,
        ))
        .send()
        .await?;
    // Another stream's figures are not this one's.
    cloudwatch
        .put_metric_data()
        .namespace("AWS/Kinesis")
        .metric_data(
            MetricDatum::builder()
                .metric_name("IncomingRecords")
                .dimensions(
                    Dimension::builder()
                        .name("StreamName")
                        .value("another")
                        .build(),
                )
                .timestamp(DateTime::from(now))
                .value(7.0)
                .build(),
        )
        .send()
        .await?;

    let output = run(
        &endpoints,
        &["metrics", &stream, "--minutes", "10", "--json"],
    )?;
    let figures: Vec<Value> = serde_json::from_slice(&output.stdout)?;
    let figure = |name: &str| {
        figures
            .iter()
            .find(|f| f["metric"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(figure("IncomingRecords")["value"], 3_500.0);
    assert_eq!(figure("IncomingRecords")["datapoints"], 2);
    assert_eq!(figure("PutRecords.Latency")["value"], 30.0);
    assert_eq!(figure("GetRecords.IteratorAgeMilliseconds")["value"], 900.0);
    assert_eq!(figure("IncomingBytes")["value"], Value::Null);
    assert_eq!(
        figure("WriteProvisionedThroughputExceeded")["datapoints"],
        0
    );

    let table =
        String::from_utf8(run(&endpoints, &["metrics", &stream, "--minutes", "10"])?.stdout)?;
    assert!(table.contains("IncomingRecords"), "{table}");
    assert!(table.contains("3500"), "{table}");
    assert!(table.contains("no data"), "{table}");
    Ok(())
}
