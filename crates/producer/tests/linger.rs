//! Batches do not wait out their linger when waiting cannot fill them.

// Test code: a failed unwrap is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use shardline_producer::{
    BatchLimits, DeadLetterFile, Delivery, Destination, Entry, EntryError, Outcome, PartitionKey,
    Producer, PutError, Record, ShardMap, SourceName,
};

/// Accepts everything, and takes KPL aggregates: a stream of one shard.
struct Accept;

#[async_trait::async_trait]
impl Destination for Accept {
    fn name(&self) -> &str {
        "accept"
    }
    fn limits(&self) -> BatchLimits {
        BatchLimits::KINESIS
    }
    fn supports_aggregation(&self) -> bool {
        true
    }
    async fn shard_map(&self) -> Result<Option<ShardMap>, PutError> {
        Ok(Some(ShardMap::even(1)))
    }
    async fn put(&self, entries: &[Entry]) -> Result<Vec<Result<Delivery, EntryError>>, PutError> {
        Ok(entries.iter().map(|_| Ok(Delivery::default())).collect())
    }
}

/// Regression (issue 19): with aggregation a batch counted as full only by
/// bytes, so a producer full of small records (its record cap, or its
/// memory cap, reached long before 5 MiB of data) sent each batch only
/// when its linger ran out, and every sender waited that long.
#[tokio::test]
async fn a_full_producer_sends_aggregated_batches_without_waiting_for_the_linger() {
    for cap_by_records in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let builder = Producer::builder(Accept)
            .dead_letters(DeadLetterFile::open(&dir.path().join("dead.ndjson")).unwrap())
            .aggregate(shardline_producer::aggregation::DEFAULT_AGGREGATE_MAX_BYTES)
            .linger(Duration::from_secs(3600));
        let builder = if cap_by_records {
            builder.queue_max_records(1_000)
        } else {
            // Room for about 3,000 records of 200 bytes besides the
            // request budget.
            let request = builder.current_config().full_request_copy_bytes();
            builder
                .request_memory_bytes(request)
                .queue_max_bytes(request + 2 * 1024 * 1024)
        };
        let producer = builder.build().await.unwrap();
        let source = SourceName::new("small");
        let sending = async {
            let mut receipts = Vec::new();
            for i in 0..10_000u32 {
                let record = Record::from_source(
                    source.clone(),
                    PartitionKey::new(&format!("key-{}", i % 97)).unwrap(),
                    format!("{i:0>200}"),
                );
                receipts.push(producer.send(record).await.unwrap());
            }
            // The input has ended: the last partial batch goes now.
            producer.flush().await;
            for receipt in receipts {
                assert!(matches!(receipt.await, Outcome::Delivered(_)));
            }
        };
        // The linger is an hour: only batches that go without it finish.
        tokio::time::timeout(Duration::from_secs(60), sending)
            .await
            .unwrap_or_else(|_| {
                panic!("waited for the linger (capped by records: {cap_by_records})")
            });
        producer.shutdown(Duration::from_secs(5)).await;
        assert_eq!(producer.stats().total.delivered, 10_000);
    }
}
