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
    let producer = Producer::builder(
        FirehoseDestination::new(&client, &name),
        DeadLetterFile::open(&dir.path().join("dead.ndjson"))?,
    )
    .linger(Duration::from_millis(10))
    .batch_records(100)
    .retry(RetryPolicy {
        initial_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        max_retries: None,
    })
    .build()?;

    let source = SourceName::new("web_logs");
    let key = PartitionKey::new("unused-by-firehose")?;
    let mut receipts = Vec::new();
    for i in 0..500 {
        let line = format!("{{\"line\":{i}}}\n");
        receipts.push(
            producer
                .send(Record::new(line, key.clone(), source.clone()))
                .await?,
        );
    }
    for receipt in receipts {
        match receipt.await {
            Outcome::Delivered(delivery) => assert!(delivery.record_id.is_some()),
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
