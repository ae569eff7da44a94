//! `harness install`: install every test service into `.harness/`.
//! `harness demo`: start a local Kinesis endpoint, stream the sample logs
//! into it, read the stream back and show the counts.
//!
//! `cargo xtask test` and `cargo xtask demo` run these; they are binaries of
//! the harness crate so that they are built with the same dependency
//! features as the test suite and nothing is compiled twice.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use shardline_harness::{Error, Kinesalite, install, streams};

const USAGE: &str = "usage: harness install | harness demo [--stream-name NAME] [--shards N]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("install") => install_all(),
        Some("demo") => {
            demo_args(args.get(1..).unwrap_or_default()).and_then(|(stream, shards)| {
                tokio::runtime::Runtime::new()
                    .map_err(|e| Error::Io {
                        context: "starting the Tokio runtime".into(),
                        source: e,
                    })
                    .and_then(|runtime| runtime.block_on(demo(&stream, shards)))
            })
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn install_all() -> Result<(), Error> {
    eprintln!(
        "==> installing the test services (kinesalite, moto, PostgreSQL + wal2json, Mosquitto)"
    );
    let started = Instant::now();
    install::ensure_all()?;
    eprintln!(
        "    installed into {} in {:.1?}",
        install::harness_dir().display(),
        started.elapsed()
    );
    Ok(())
}

fn demo_args(args: &[String]) -> Result<(String, i32), Error> {
    let mut stream = String::from("log-streaming-demo");
    let mut shards = 2;
    let mut iter = args.iter();
    while let Some(flag) = iter.next() {
        let value = iter.next();
        match (flag.as_str(), value) {
            ("--stream-name", Some(v)) => stream = v.clone(),
            ("--shards", Some(v)) => {
                shards = v.parse().map_err(|_| usage(&format!("--shards {v}")))?;
            }
            _ => return Err(usage(flag)),
        }
    }
    Ok((stream, shards))
}

fn usage(what: &str) -> Error {
    Error::Io {
        context: format!("unexpected argument `{what}`; {USAGE}"),
        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    }
}

async fn demo(stream_name: &str, shards: i32) -> Result<(), Error> {
    eprintln!("==> starting kinesalite on 127.0.0.1 (installed into .harness/ on first use)");
    let kinesalite = Kinesalite::start()?;
    let client = kinesalite.kinesis_client();
    eprintln!("    endpoint {}", kinesalite.endpoint());
    streams::create_stream(&client, stream_name, shards).await?;
    eprintln!("==> created stream {stream_name} with {shards} shards");

    // Until log-streamer exists (issue 7), the demo sends the lab's sample
    // lines as they are, one record per line, keyed by the client address.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap_or(Path::new("."))
        .join("fixtures/logs");
    let mut sent_by_file = BTreeMap::new();
    let mut entries = Vec::new();
    for file in ["apache_access.log", "nginx_access.log", "app.log"] {
        let path = fixtures.join(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let mut count = 0usize;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let key = line.split_whitespace().next().unwrap_or(file);
            let entry = aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                .data(aws_sdk_kinesis::primitives::Blob::new(line))
                .partition_key(key)
                .build()
                .map_err(|e| Error::call("Kinesis", "building a PutRecords entry", e))?;
            entries.push(entry);
            count += 1;
        }
        sent_by_file.insert(file, count);
    }
    let sent = entries.len();
    let answer = client
        .put_records()
        .stream_name(stream_name)
        .set_records(Some(entries))
        .send()
        .await
        .map_err(|e| {
            Error::call(
                "Kinesis",
                "PutRecords",
                aws_sdk_kinesis::error::DisplayErrorContext(&e),
            )
        })?;
    let failed = answer.failed_record_count().unwrap_or(0);
    eprintln!("==> sent {sent} lines in one PutRecords call ({failed} failed)");

    let read = streams::read_at_least(&client, stream_name, sent, Duration::from_secs(10)).await?;
    let mut by_shard: BTreeMap<&str, usize> = BTreeMap::new();
    for record in &read {
        *by_shard.entry(record.shard_id.as_str()).or_default() += 1;
    }
    println!("sent by file:  {sent_by_file:?}");
    println!("read back:     {} records {by_shard:?}", read.len());
    if let Some(first) = read.first() {
        println!("first record:  {}", String::from_utf8_lossy(&first.data));
    }
    if read.len() != sent {
        return Err(Error::call(
            "Kinesis",
            "reading the stream back",
            format!("sent {sent} records but read back {}", read.len()),
        ));
    }
    println!("ok: every record sent was read back from the stream");
    Ok(())
}
