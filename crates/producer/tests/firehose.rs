//! The producer into Firehose → S3 on moto, with partial failures from the
//! fault proxy.

use std::error::Error;
use std::time::Duration;

use shardline_harness::{
    EntryFault, FaultCode, FaultProxy, Moto, Selection, sdk_config, streams, unique_name,
};
use shardline_partition_key::PartitionKey;
use shardline_producer::{
    DeadLetterFile, FirehoseDestination, Outcome, Producer, Record, RetryPolicy, SourceName,
};

#[tokio::test]
async fn partial_failures_are_retried_and_s3_holds_every_record_once() -> Result<(), Box<dyn Error>>
{
    let moto = Moto::shared()?;
    let name = unique_name("producer_firehose");
    let bucket = streams::bucket_name(&name);
    streams::create_s3_delivery_stream(&moto.firehose_client(), &moto.s3_client(), &name, &bucket)
        .await?;
    let proxy = FaultProxy::start(&moto.endpoint()).await?;
    proxy.set_entry_fault(Some(EntryFault {
        selection: Selection::Share(0.25),
        code: FaultCode::ServiceUnavailable,
    }));
    let dir = tempfile::tempdir()?;
    let client = aws_sdk_firehose::Client::new(&sdk_config(&proxy.endpoint()));
    let producer = Producer::builder(FirehoseDestination::new(&client, &name))
        .dead_letters(DeadLetterFile::open(&dir.path().join("dead.ndjson"))?)
        .linger(Duration::from_millis(10))
        .batch_records(100)
        .retry(
            RetryPolicy::default()
                .initial_delay(Duration::from_millis(5))
                .max_delay(Duration::from_millis(50))
                .max_retries(None),
        )
        .build()
        .await?;

    let source = SourceName::new("web_logs");
    let key = PartitionKey::new("unused-by-firehose")?;
    let mut receipts = Vec::new();
    for i in 0..500 {
        // The destination ends each record with a newline, once: half the
        // lines come with one.
        let newline = if i % 2 == 0 { "\n" } else { "" };
        let line = format!("{{\"line\":{i}}}{newline}");
        receipts.push(
            producer
                .send(Record::from_source(source.clone(), key.clone(), line))
                .await?,
        );
    }
    for receipt in receipts {
        match receipt.await {
            Outcome::Delivered(delivery) => assert!(delivery.record_id().is_some()),
            other => return Err(format!("{other:?}").into()),
        }
    }
    producer.shutdown(Duration::from_secs(10)).await;
    let stats = producer.stats();
    assert_eq!(stats.total.delivered, 500);
    assert!(stats.total.retried > 50, "{stats:?}");
    assert_eq!(stats.total.records_in, stats.total.delivered);

    let objects = streams::read_bucket(&moto.s3_client(), &bucket).await?;
    let mut lines: Vec<String> = objects
        .values()
        .flat_map(|bytes| {
            String::from_utf8_lossy(bytes)
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    let mut want: Vec<String> = (0..500).map(|i| format!("{{\"line\":{i}}}")).collect();
    want.sort();
    assert_eq!(lines, want);
    Ok(())
}

#[tokio::test]
async fn packing_puts_many_lines_in_each_firehose_record() -> Result<(), Box<dyn Error>> {
    let moto = Moto::shared()?;
    let name = unique_name("producer_packing");
    let bucket = streams::bucket_name(&name);
    streams::create_s3_delivery_stream(&moto.firehose_client(), &moto.s3_client(), &name, &bucket)
        .await?;
    let proxy = FaultProxy::start(&moto.endpoint()).await?;
    let dir = tempfile::tempdir()?;
    let client = aws_sdk_firehose::Client::new(&sdk_config(&proxy.endpoint()));
    let producer = Producer::builder(FirehoseDestination::new(&client, &name))
        .dead_letters(DeadLetterFile::open(&dir.path().join("dead.ndjson"))?)
        .linger(Duration::from_millis(20))
        .pack(4 * 1024)
        .build()
        .await?;
    let source = SourceName::new("app");
    let key = PartitionKey::new("k")?;
    let mut receipts = Vec::new();
    // Lines without a trailing newline get one.
    for i in 0..2000 {
        let line = format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 50));
        receipts.push(
            producer
                .send(Record::from_source(source.clone(), key.clone(), line))
                .await?,
        );
    }
    for receipt in receipts {
        assert!(matches!(receipt.await, Outcome::Delivered(_)));
    }
    producer.shutdown(Duration::from_secs(10)).await;
    assert_eq!(producer.stats().total.delivered, 2000);

    let firehose_records: usize = proxy
        .events()
        .iter()
        .filter(|e| e.target.ends_with("PutRecordBatch"))
        .map(|e| e.accepted_entries)
        .sum();
    assert!(
        firehose_records < 100,
        "{firehose_records} Firehose records for 2000 lines"
    );

    let objects = streams::read_bucket(&moto.s3_client(), &bucket).await?;
    let mut numbers: Vec<u64> = objects
        .values()
        .flat_map(|bytes| {
            String::from_utf8_lossy(bytes)
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["n"].as_u64())
                .collect::<Vec<_>>()
        })
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..2000).collect::<Vec<u64>>());
    Ok(())
}
