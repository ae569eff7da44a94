//! A batch handed to the producer at once (`Producer::send_batch`, what
//! the pipeline's `Sink::send` does): room taken a group at a time, order
//! kept, every item accounted for.

// Test code: a failed unwrap is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shardline_core::Item;
use shardline_producer::{
    BatchLimits, DeadLetter, DeadLetterFile, DeadLetterReason, Delivery, Destination, Entry,
    EntryError, Outcome, PartitionKey, Producer, PutError, Record, SourceName,
};

/// Accepts everything and keeps what arrived, in order.
#[derive(Default, Clone)]
struct Keep(Arc<Mutex<Vec<String>>>);

#[async_trait::async_trait]
impl Destination for Keep {
    fn name(&self) -> &str {
        "keep"
    }
    fn limits(&self) -> BatchLimits {
        BatchLimits::KINESIS
    }
    async fn put(&self, entries: &[Entry]) -> Result<Vec<Result<Delivery, EntryError>>, PutError> {
        let mut kept = self.0.lock().unwrap();
        for entry in entries {
            kept.push(String::from_utf8_lossy(&entry.data).into_owned());
        }
        Ok(entries.iter().map(|_| Ok(Delivery::default())).collect())
    }
}

fn items(source: &SourceName, n: usize) -> Vec<Item> {
    (0..n)
        .map(|i| {
            if i % 10 == 9 {
                Item::Rejected(DeadLetter::rejected(
                    format!("bad {i}").as_bytes(),
                    source,
                    "does not parse",
                    BTreeMap::new(),
                ))
            } else {
                let key = PartitionKey::new(&format!("k{}", i % 3)).unwrap();
                Item::Record(Record::from_source(source.clone(), key, format!("{i}")))
            }
        })
        .collect()
}

#[tokio::test]
async fn a_batch_larger_than_the_producer_goes_through_in_order_and_reconciles() {
    let dir = tempfile::tempdir().unwrap();
    let keep = Keep::default();
    // Room for 50 records: a batch of 1,000 takes it a group at a time.
    let producer = Producer::builder(keep.clone())
        .dead_letters(DeadLetterFile::open(&dir.path().join("dead.ndjson")).unwrap())
        .queue_max_records(50)
        .strict_ordering(true)
        .linger(Duration::from_millis(1))
        .build()
        .await
        .unwrap();
    let source = SourceName::new("batch");
    let accepted = tokio::time::timeout(
        Duration::from_secs(30),
        producer.send_batch(items(&source, 1_000)),
    )
    .await
    .expect("the batch waited for room forever");
    assert_eq!(accepted.receipts.len(), 1_000);
    assert!(accepted.refused.is_none());
    let mut delivered = 0;
    for (i, receipt) in accepted.receipts.into_iter().enumerate() {
        match receipt.await {
            Outcome::Delivered(_) => delivered += 1,
            Outcome::DeadLettered { reason, .. } => {
                assert_eq!(i % 10, 9, "item {i}");
                assert_eq!(reason, DeadLetterReason::Rejected);
            }
            other => panic!("item {i}: {other:?}"),
        }
    }
    assert_eq!(delivered, 900);
    producer.shutdown(Duration::from_secs(5)).await;
    let stats = producer.stats().total;
    assert_eq!(stats.records_in, 1_000);
    assert_eq!(stats.records_in, stats.delivered + stats.dead_lettered);
    assert_eq!(stats.rejected, 100);
    // Each key's records arrived in the order they were given.
    let kept = keep.0.lock().unwrap();
    for key in 0..3 {
        let order: Vec<usize> = kept
            .iter()
            .map(|d| d.parse::<usize>().unwrap())
            .filter(|i| i % 3 == key)
            .collect();
        assert!(order.is_sorted(), "key k{key}: {order:?}");
    }
}

#[tokio::test]
async fn a_shut_down_producer_refuses_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let producer = Producer::builder(Keep::default())
        .dead_letters(DeadLetterFile::open(&dir.path().join("dead.ndjson")).unwrap())
        .build()
        .await
        .unwrap();
    producer.shutdown(Duration::from_secs(1)).await;
    let accepted = producer
        .send_batch(items(&SourceName::new("late"), 10))
        .await;
    assert!(accepted.receipts.is_empty());
    assert!(accepted.refused.is_some());
    assert_eq!(producer.stats().total.records_in, 0);
}
