//! Aggregation and the shard map: records go where a consumer that keeps
//! only its shard's hash key range (the KCL) finds them, through a reshard
//! and without a map.
//!
//! The destination here answers as Kinesis does: each entry is stored in
//! the open shard holding its explicit hash key, or the MD5 of its partition
//! key. It splits its only shard when told, between two requests, the way a
//! reshard lands between a producer's requests.

// Test code: a failed unwrap is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shardline_producer::aggregation::deaggregate;
use shardline_producer::{
    BatchLimits, DeadLetterFile, Delivery, Destination, Entry, EntryError, ErrorClass, Outcome,
    PartitionKey, Producer, PutError, Record, ShardMap, ShardRange, SourceName,
};

/// What the destination does when asked for its shards.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Listing {
    /// Lists the open shards.
    Lists,
    /// Answers with no shards (`Ok(None)`).
    NoShards,
    /// Fails, as `ListShards` without the permission does.
    Denied,
}

/// A user record as stored: its partition key and data.
type UserRecord = (String, Vec<u8>);

#[derive(Default)]
struct Stream {
    /// Every shard ever open, by id; `open` says which take records.
    every: Vec<ShardRange>,
    open: Vec<String>,
    /// Split the first open shard before the next request.
    split_next: bool,
    /// Requests, from the first listing of the new shards on, that are
    /// still stored by the shards before the split, as puts racing a
    /// split can be.
    late_requests: usize,
    /// The open shards before the last split, and whether the new ones
    /// were listed since.
    before_split: Option<ShardMap>,
    listed_since_split: bool,
    /// Listings after the split that still give the shards before it, as
    /// a listing made while a split lands can.
    stale_listings: usize,
    /// Each stored Kinesis record: its shard, and the user records in it.
    stored: Vec<(String, Vec<UserRecord>)>,
    /// Kinesis records stored that were aggregates, and that were not.
    aggregates: usize,
    singles: usize,
    listings: usize,
}

impl Stream {
    fn open_map(&self) -> ShardMap {
        ShardMap::new(
            self.every
                .iter()
                .filter(|r| self.open.contains(&r.shard_id))
                .cloned()
                .collect(),
        )
    }

    fn split_first(&mut self) {
        let map = self.open_map();
        let parent = map.ranges().first().expect("an open shard").clone();
        let middle =
            parent.starting_hash_key + (parent.ending_hash_key - parent.starting_hash_key) / 2;
        let n = self.every.len();
        let children = [
            ShardRange {
                shard_id: format!("shardId-{n:012}"),
                starting_hash_key: parent.starting_hash_key,
                ending_hash_key: middle,
            },
            ShardRange {
                shard_id: format!("shardId-{:012}", n + 1),
                starting_hash_key: middle + 1,
                ending_hash_key: parent.ending_hash_key,
            },
        ];
        self.open.retain(|id| *id != parent.shard_id);
        for child in children {
            self.open.push(child.shard_id.clone());
            self.every.push(child);
        }
    }

    /// What a consumer that keeps only the user records of its shard's
    /// hash key range (the KCL) reads: each record's data and how many
    /// times it is kept; and the copies it drops.
    fn range_filtered(&self) -> (BTreeMap<Vec<u8>, usize>, u64) {
        let mut kept: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
        let mut outside = 0;
        for (shard, users) in &self.stored {
            for (key, data) in users {
                if self.holds(shard, key) {
                    *kept.entry(data.clone()).or_default() += 1;
                } else {
                    outside += 1;
                }
            }
        }
        (kept, outside)
    }

    /// Asserts that a range-filtering consumer reads each of `sent`
    /// records once, and that the producer counted every copy it drops as
    /// a possible duplicate.
    fn assert_each_kept_once(&self, sent: usize, producer: &Producer) -> u64 {
        let (kept, outside) = self.range_filtered();
        assert_eq!(kept.len(), sent);
        assert!(kept.values().all(|&n| n == 1), "a record kept twice");
        assert_eq!(producer.stats().total.possibly_duplicated, outside);
        outside
    }

    /// Whether shard `id` (open or not) holds `key`.
    fn holds(&self, id: &str, key: &str) -> bool {
        self.every
            .iter()
            .find(|r| r.shard_id == id)
            .expect("a shard of the stream")
            .holds(&PartitionKey::new(key).unwrap(), None)
    }
}

struct Resharding {
    stream: Arc<Mutex<Stream>>,
    listing: Listing,
}

impl Resharding {
    fn new(listing: Listing) -> (Self, Arc<Mutex<Stream>>) {
        let stream = Arc::new(Mutex::new(Stream {
            every: ShardMap::even(1).ranges().to_vec(),
            open: vec!["shardId-000000000000".to_owned()],
            ..Stream::default()
        }));
        (
            Resharding {
                stream: stream.clone(),
                listing,
            },
            stream,
        )
    }
}

#[async_trait::async_trait]
impl Destination for Resharding {
    fn name(&self) -> &str {
        "resharding"
    }

    fn limits(&self) -> BatchLimits {
        BatchLimits::KINESIS
    }

    fn supports_aggregation(&self) -> bool {
        true
    }

    async fn shard_map(&self) -> Result<Option<ShardMap>, PutError> {
        let mut stream = self.stream.lock().unwrap();
        stream.listings += 1;
        stream.listed_since_split = stream.before_split.is_some();
        match self.listing {
            Listing::Lists if stream.before_split.is_some() && stream.stale_listings > 0 => {
                stream.stale_listings -= 1;
                Ok(stream.before_split.clone())
            }
            Listing::Lists => Ok(Some(stream.open_map())),
            Listing::NoShards => Ok(None),
            Listing::Denied => Err(PutError {
                class: ErrorClass::Fatal,
                code: Some("AccessDeniedException".into()),
                message: "not authorized to perform kinesis:ListShards".into(),
                outcome_unknown: false,
            }),
        }
    }

    async fn put(&self, entries: &[Entry]) -> Result<Vec<Result<Delivery, EntryError>>, PutError> {
        let mut stream = self.stream.lock().unwrap();
        if std::mem::take(&mut stream.split_next) {
            stream.before_split = Some(stream.open_map());
            stream.split_first();
        }
        let late = stream.listed_since_split && stream.late_requests > 0;
        if late {
            stream.late_requests -= 1;
        }
        let map = match &stream.before_split {
            Some(before) if late => before.clone(),
            _ => stream.open_map(),
        };
        let mut results = Vec::new();
        for entry in entries {
            let index = map
                .index_for(&entry.partition_key, entry.explicit_hash_key)
                .expect("the open shards cover every key");
            let shard = map.ranges().get(index).expect("listed").shard_id.clone();
            let users = match deaggregate(&entry.data).unwrap() {
                Some(users) => {
                    stream.aggregates += 1;
                    users
                        .into_iter()
                        .map(|u| (u.partition_key, u.data))
                        .collect()
                }
                None => {
                    stream.singles += 1;
                    vec![(entry.partition_key.as_str().to_owned(), entry.data.to_vec())]
                }
            };
            let sequence = stream.stored.len().to_string();
            stream.stored.push((shard.clone(), users));
            results.push(Ok(Delivery::kinesis(Some(shard), Some(sequence))));
        }
        Ok(results)
    }
}

/// `n` records over 64 keys, data `<prefix><i>`.
fn records(prefix: &str, n: usize) -> Vec<Record> {
    let source = SourceName::new("test");
    (0..n)
        .map(|i| {
            Record::from_source(
                source.clone(),
                PartitionKey::new(&format!("key-{}", i % 64)).unwrap(),
                format!("{prefix}{i}"),
            )
        })
        .collect()
}

async fn producer(destination: Resharding, dir: &std::path::Path) -> Producer {
    Producer::builder(destination)
        .dead_letters(DeadLetterFile::open(&dir.join("dead.ndjson")).unwrap())
        .aggregate(16 * 1024)
        // Batches go when flushed: the first request after a split holds
        // aggregates of many keys, whatever the timing.
        .linger(Duration::from_secs(3600))
        .build()
        .await
        .unwrap()
}

/// Sends `records`, flushes, and waits for each to be delivered; each
/// record's key and the shard its receipt names.
async fn deliver(producer: &Producer, records: Vec<Record>) -> Vec<(String, String)> {
    let mut receipts = Vec::new();
    for record in records {
        let key = record.partition_key.as_str().to_owned();
        receipts.push((key, producer.send(record).await.unwrap()));
    }
    producer.flush().await;
    let mut shards = Vec::new();
    for (key, receipt) in receipts {
        match receipt.await {
            Outcome::Delivered(delivery) => {
                shards.push((key, delivery.shard_id().unwrap().to_owned()));
            }
            other => panic!("not delivered: {other:?}"),
        }
    }
    shards
}

#[tokio::test]
async fn records_of_an_aggregate_stored_in_a_shard_that_does_not_hold_their_key_are_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let (destination, stream) = Resharding::new(Listing::Lists);
    let producer = producer(destination, dir.path()).await;
    deliver(&producer, records("before", 500)).await;
    // The only shard splits before the next request: the producer's
    // aggregates for it land in the child holding their first key.
    stream.lock().unwrap().split_next = true;
    let after = deliver(&producer, records("after", 1_000)).await;
    producer.shutdown(Duration::from_secs(5)).await;

    let stream = stream.lock().unwrap();
    // Every receipt names a shard holding its record's key.
    for (key, shard) in &after {
        assert!(stream.holds(shard, key), "{key} delivered to {shard}");
    }
    // A consumer that keeps only its shard's range sees each record once;
    // every copy stored outside it was sent again and counted.
    let outside = stream.assert_each_kept_once(1_500, &producer);
    assert!(outside > 0, "no aggregate landed in the wrong child");
    assert_eq!(producer.stats().total.delivered, 1_500);
    // Listed at the start and once when the first request after the split
    // landed elsewhere: requests sent before that listing do not ask again.
    assert_eq!(stream.listings, 2);
}

/// A put made for a child shard but stored in the shard that split (it
/// raced the split) holds every key of its aggregate: it is not sent
/// again, or a range-filtering consumer would keep it twice.
#[tokio::test]
async fn records_stored_in_the_shard_that_split_are_not_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let (destination, stream) = Resharding::new(Listing::Lists);
    let producer = producer(destination, dir.path()).await;
    deliver(&producer, records("before", 500)).await;
    let parent = "shardId-000000000000";
    {
        let mut stream = stream.lock().unwrap();
        stream.split_next = true;
        // The requests made by the new shards' map, the records the first
        // put after the split left in the wrong child sent again among
        // them, are stored in the parent for a while.
        stream.late_requests = 3;
    }
    deliver(&producer, records("after", 1_000)).await;
    producer.shutdown(Duration::from_secs(5)).await;

    let stream = stream.lock().unwrap();
    let late_in_parent = stream
        .stored
        .iter()
        .filter(|(shard, _)| shard == parent)
        .flat_map(|(_, users)| users)
        .filter(|(_, data)| data.starts_with(b"after"))
        .count();
    assert!(late_in_parent > 0, "no put raced the split");
    stream.assert_each_kept_once(1_500, &producer);
}

/// A put stored in a shard that the listing after it does not show yet
/// (the split landed between them) waits for a listing that does.
#[tokio::test]
async fn an_aggregate_in_a_shard_not_listed_yet_waits_for_the_listing() {
    let dir = tempfile::tempdir().unwrap();
    let (destination, stream) = Resharding::new(Listing::Lists);
    let producer = producer(destination, dir.path()).await;
    deliver(&producer, records("before", 500)).await;
    {
        let mut stream = stream.lock().unwrap();
        stream.split_next = true;
        stream.stale_listings = 2;
    }
    deliver(&producer, records("after", 1_000)).await;
    producer.shutdown(Duration::from_secs(5)).await;

    let stream = stream.lock().unwrap();
    assert!(stream.listings >= 4, "listed {} times", stream.listings);
    stream.assert_each_kept_once(1_500, &producer);
}

#[tokio::test]
async fn without_a_shard_map_aggregation_sends_each_record_alone() {
    for listing in [Listing::NoShards, Listing::Denied] {
        let dir = tempfile::tempdir().unwrap();
        let (destination, stream) = Resharding::new(listing);
        let producer = producer(destination, dir.path()).await;
        stream.lock().unwrap().split_next = true;
        let shards = deliver(&producer, records("r", 300)).await;
        producer.shutdown(Duration::from_secs(5)).await;

        let stream = stream.lock().unwrap();
        for (key, shard) in &shards {
            assert!(stream.holds(shard, key), "{listing:?}: {key} in {shard}");
        }
        assert_eq!(stream.aggregates, 0, "{listing:?}");
        assert_eq!(stream.singles, 300, "{listing:?}");
        assert_eq!(producer.stats().total.delivered, 300);
    }
}
