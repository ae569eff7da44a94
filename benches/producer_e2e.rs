//! End to end into kinesalite (started through the harness), and the
//! billing units a million records cost.
//!
//! `cargo bench -p shardline-benches --bench producer_e2e`
//!
//! 1. User records/s into a 4-shard kinesalite stream: a naive loop of one
//!    `PutRecord` per record, the producer without aggregation, and the
//!    producer with KPL aggregation (51,200-byte aggregates), in one run.
//! 2. PUT payload units (25 KB each, per Kinesis record) for 1,000,000
//!    records of 270 bytes, with and without aggregation, counted by a
//!    destination that accepts everything.

use std::time::{Duration, Instant};

use shardline_benches::noop::Accept;
use shardline_harness::{Kinesalite, streams, unique_name};
use shardline_partition_key::PartitionKey;
use shardline_producer::{
    DeadLetterFile, KinesisDestination, Outcome, Producer, Record, SourceName,
};

const RECORD_BYTES: usize = 270;

/// Record `i` of a run with `keys` distinct partition keys.
fn record_with_keys(i: usize, keys: usize) -> Record {
    let mut data = format!("{{\"seq\":{i},\"payload\":\"").into_bytes();
    data.resize(RECORD_BYTES - 2, b'x');
    data.extend_from_slice(b"\"}");
    let key = PartitionKey::new_or_hashed(&format!("session-{}", i % keys));
    Record::from_source(SourceName::new("bench"), key, data)
}

fn record(i: usize) -> Record {
    record_with_keys(i, 1000)
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

async fn naive_loop(client: &aws_sdk_kinesis::Client, stream: &str, n: usize) -> Result<f64> {
    let started = Instant::now();
    for i in 0..n {
        let r = record(i);
        client
            .put_record()
            .stream_name(stream)
            .partition_key(r.partition_key.as_str())
            .data(aws_sdk_kinesis::primitives::Blob::new(r.data.to_vec()))
            .send()
            .await?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

async fn producer_run(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    n: usize,
    aggregate: Option<usize>,
    dir: &std::path::Path,
) -> Result<f64> {
    let sink = DeadLetterFile::open(&dir.join(format!("{stream}.ndjson")))?;
    let mut builder = Producer::builder(KinesisDestination::new(client, stream))
        .dead_letters(sink)
        .linger(Duration::from_millis(20));
    if let Some(max) = aggregate {
        builder = builder.aggregate(max);
    }
    let producer = builder.build().await?;
    let started = Instant::now();
    let mut receipts = Vec::with_capacity(n);
    for i in 0..n {
        receipts.push(producer.send(record(i)).await?);
    }
    for receipt in receipts {
        if !matches!(receipt.await, Outcome::Delivered(_)) {
            return Err("a record was not delivered".into());
        }
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    producer.shutdown(Duration::from_secs(10)).await;
    Ok(rate)
}

/// How a units run packs records.
#[derive(Clone, Copy)]
enum Packing {
    None,
    Aggregate(usize),
    FirehosePlain,
    FirehosePack(usize),
}

async fn billing_units(
    n: usize,
    keys: usize,
    packing: Packing,
    dir: &std::path::Path,
) -> Result<(u64, u64)> {
    let accept = match packing {
        Packing::FirehosePlain | Packing::FirehosePack(_) => {
            Accept::with_limits(shardline_producer::BatchLimits::FIREHOSE)
        }
        _ => Accept::default(),
    };
    let counts = accept.counts.clone();
    let sink = DeadLetterFile::open(&dir.join("units.ndjson"))?;
    let mut builder = Producer::builder(accept)
        .dead_letters(sink)
        .linger(Duration::from_millis(50))
        .queue_max_records(50_000);
    builder = match packing {
        Packing::None | Packing::FirehosePlain => builder,
        Packing::Aggregate(max) => builder.aggregate(max),
        Packing::FirehosePack(max) => builder.pack(max),
    };
    let producer = builder.build().await?;
    for i in 0..n {
        let _receipt = producer.send(record_with_keys(i, keys)).await?;
    }
    producer.shutdown(Duration::from_secs(60)).await;
    use std::sync::atomic::Ordering;
    Ok((
        counts.payload_units.load(Ordering::Relaxed),
        counts.entries.load(Ordering::Relaxed),
    ))
}

fn main() -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let dir = tempfile::tempdir()?;
        println!("== billing units for 1,000,000 records of {RECORD_BYTES} bytes");
        let cases = [
            (
                "Kinesis, one record per Kinesis record",
                1000,
                Packing::None,
            ),
            (
                "Kinesis, KPL aggregation (51,200 B), 1,000 distinct keys",
                1000,
                Packing::Aggregate(51_200),
            ),
            (
                "Kinesis, KPL aggregation (51,200 B), 100 distinct keys",
                100,
                Packing::Aggregate(51_200),
            ),
            (
                "Kinesis, KPL aggregation (51,200 B), 10 distinct keys",
                10,
                Packing::Aggregate(51_200),
            ),
            (
                "Firehose, one record per Firehose record (5 KB units)",
                1000,
                Packing::FirehosePlain,
            ),
            (
                "Firehose, packing (1,000 KiB records, 5 KB units)",
                1000,
                Packing::FirehosePack(1000 * 1024),
            ),
        ];
        for (name, keys, packing) in cases {
            let (units, records) = billing_units(1_000_000, keys, packing, dir.path()).await?;
            println!("{name}: {units} billing units, {records} service records");
        }

        println!("== end to end into kinesalite (4 shards), user records/s");
        let kinesalite = Kinesalite::start()?;
        let client = kinesalite.kinesis_client();
        let cases: [(&str, usize, Option<Option<usize>>); 3] = [
            ("naive loop: one PutRecord per record", 3_000, None),
            ("producer, no aggregation", 60_000, Some(None)),
            ("producer, KPL aggregation", 300_000, Some(Some(51_200))),
        ];
        for (name, n, mode) in cases {
            let stream = unique_name("bench");
            streams::create_stream(&client, &stream, 4).await?;
            let rate = match mode {
                None => naive_loop(&client, &stream, n).await?,
                Some(aggregate) => producer_run(&client, &stream, n, aggregate, dir.path()).await?,
            };
            println!("{name}: {n} records, {rate:.0} records/s");
        }
        Ok(())
    })
}
