//! The producer's own cost per record: records sent through `send` into a
//! destination that accepts everything at once, measured with and without
//! KPL aggregation.
//!
//! `cargo bench -p shardline-benches --bench producer`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shardline_benches::noop::Accept;
use shardline_partition_key::PartitionKey;
use shardline_producer::{DeadLetterFile, Producer, Record, SourceName};

const RECORDS: usize = 10_000;
/// Record size of the cost goal: ~270 bytes.
const RECORD_BYTES: usize = 270;

fn records() -> Vec<Record> {
    let source = SourceName::new("bench");
    (0..RECORDS)
        .map(|i| {
            let mut data = format!("{{\"seq\":{i},\"payload\":\"").into_bytes();
            data.resize(RECORD_BYTES - 2, b'x');
            data.extend_from_slice(b"\"}");
            let key = PartitionKey::new_or_hashed(&format!("session-{}", i % 1000));
            Record::from_source(source.clone(), key, data)
        })
        .collect()
}

fn overhead(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("cannot build a runtime: {e}");
            std::process::exit(1)
        });
    let dir = tempfile::tempdir().unwrap_or_else(|e| {
        eprintln!("cannot make a temporary directory: {e}");
        std::process::exit(1)
    });
    let input = records();
    let mut group = c.benchmark_group("producer_overhead");
    group.throughput(Throughput::Elements(RECORDS as u64));
    for (name, aggregate) in [("plain", None), ("aggregated_51200", Some(51_200))] {
        let producer = runtime.block_on(async {
            let sink = DeadLetterFile::open(&dir.path().join(format!("{name}.ndjson")))?;
            let mut builder = Producer::builder(Accept::default())
                .dead_letters(sink)
                .linger(Duration::from_millis(5))
                .queue_max_records(RECORDS * 2);
            if let Some(max) = aggregate {
                builder = builder.aggregate(max);
            }
            builder
                .build()
                .await
                .map_err(Box::<dyn std::error::Error>::from)
        });
        let producer = producer.unwrap_or_else(|e| {
            eprintln!("cannot build the producer: {e}");
            std::process::exit(1)
        });
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| async {
                for record in &input {
                    let _ = black_box(producer.send(record.clone()).await);
                }
                producer.flush().await;
            });
        });
        runtime.block_on(producer.shutdown(Duration::from_secs(5)));
    }
    group.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
