//! Properties of batching and retrying, checked over arbitrary record sizes,
//! keys, limits and failures. The destination here is the producer's own
//! extension point implemented by the test: it checks every batch against
//! the limits and fails the entries the test chose, so the properties cover
//! the producer's logic without a network.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use shardline_partition_key::PartitionKey;
use shardline_producer::{
    BatchLimits, DeadLetterFile, DeadLetterReason, Delivery, Destination, Entry, EntryError,
    Outcome, Producer, PutError, Record, RetryPolicy, SourceName,
};

const LIMITS: BatchLimits = BatchLimits {
    max_records: 20,
    max_bytes: 10_000,
    max_record_bytes: 2_000,
    counts_partition_key: true,
};

#[derive(Default)]
struct Seen {
    /// Limit violations found, as messages.
    violations: Vec<String>,
    /// How often each record id was acknowledged as delivered.
    delivered: BTreeMap<String, usize>,
    /// Ids that have already failed once.
    failed_once: HashSet<String>,
    /// Ids in the order they were delivered.
    arrivals: Vec<String>,
}

impl Seen {
    /// The outcome of one entry holding the records `ids`: it fails, as a
    /// whole, while one of them ends in `7` and has not failed before;
    /// otherwise every record in it is delivered.
    fn settle(&mut self, ids: Vec<String>) -> Result<Delivery, EntryError> {
        let fail = ids
            .iter()
            .any(|id| id.ends_with('7') && !self.failed_once.contains(id));
        if fail {
            for id in ids.iter().filter(|id| id.ends_with('7')) {
                self.failed_once.insert(id.clone());
            }
            return Err(EntryError {
                code: "ProvisionedThroughputExceededException".into(),
                message: "first try fails".into(),
            });
        }
        for id in ids {
            *self.delivered.entry(id.clone()).or_insert(0) += 1;
            self.arrivals.push(id);
        }
        Ok(Delivery::default())
    }
}

/// Checks limits; fails the first attempt of records whose id ends in `7`.
/// With `newline`, it ends each record with a newline as Firehose's
/// destination does (and records may then be packed): that byte counts.
struct Checking {
    seen: Arc<Mutex<Seen>>,
    newline: bool,
}

impl Checking {
    /// An entry's size as sent, with the newline the destination adds.
    fn size(&self, entry: &Entry) -> usize {
        let framing = usize::from(self.newline && !entry.data.ends_with(b"\n"));
        LIMITS.record_size(entry.data.len() + framing, entry.partition_key.len_bytes())
    }
}

#[async_trait::async_trait]
impl Destination for Checking {
    fn name(&self) -> &str {
        "checking"
    }

    fn limits(&self) -> BatchLimits {
        LIMITS
    }

    fn newline_delimited(&self) -> bool {
        self.newline
    }

    async fn put(&self, entries: &[Entry]) -> Result<Vec<Result<Delivery, EntryError>>, PutError> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if entries.is_empty() || entries.len() > LIMITS.max_records {
            seen.violations.push(format!("{} entries", entries.len()));
        }
        let bytes: usize = entries.iter().map(|e| self.size(e)).sum();
        if bytes > LIMITS.max_bytes {
            seen.violations.push(format!("{bytes} bytes in a batch"));
        }
        let mut results = Vec::new();
        for entry in entries {
            let size = self.size(entry);
            if size > LIMITS.max_record_bytes {
                seen.violations.push(format!("a {size}-byte record"));
            }
            // A packed entry holds several newline-terminated records; it
            // fails or succeeds as a whole.
            let ids: Vec<String> = entry
                .data
                .split(|&b| b == b'\n')
                .filter(|part| !part.is_empty())
                .map(id_of)
                .collect();
            results.push(seen.settle(ids));
        }
        Ok(results)
    }
}

/// Packing on (`Some`) or off for a builder.
trait PackOption {
    fn config_pack(self, pack: Option<usize>) -> Self;
}

impl PackOption for shardline_producer::ProducerBuilder {
    fn config_pack(self, pack: Option<usize>) -> Self {
        match pack {
            Some(max) => self.pack(max),
            None => self,
        }
    }
}

/// With `tight`, the request budget holds one full batch's copies and no
/// more, so batches often wait for room and are put back unsent.
trait TightRequests {
    fn config_tight_requests(self, tight: bool) -> Self;
}

impl TightRequests for shardline_producer::ProducerBuilder {
    fn config_tight_requests(self, tight: bool) -> Self {
        if !tight {
            return self;
        }
        let config = self.current_config();
        let full = config.request_copy_bytes(config.batch_bytes, config.batch_records);
        self.request_memory_bytes(full)
    }
}

/// Records carry their id before the first `|`, padding after it.
fn id_of(data: &[u8]) -> String {
    String::from_utf8_lossy(data)
        .split('|')
        .next()
        .unwrap_or_default()
        .to_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn batches_respect_limits_and_every_record_leaves_exactly_once(
        sizes in proptest::collection::vec(0usize..2_600, 1..150),
        keys in proptest::collection::vec("[a-z]{1,40}", 1..6),
        batch_records in 1usize..=20,
        batch_bytes in 2_000usize..=10_000,
        strict in any::<bool>(),
        pack in proptest::option::of(prop_oneof![100usize..=2_000, 1_950usize..=2_000]),
        tight_requests in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let dir = tempfile::tempdir()?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (outcomes, stats) = runtime.block_on(async {
            let producer = Producer::builder(Checking { seen: seen.clone(), newline: pack.is_some() })
.dead_letters(DeadLetterFile::open(&dir.path().join("dead.ndjson"))?)
            .batch_records(batch_records)
            .batch_bytes(batch_bytes)
            .linger(Duration::from_millis(1))
            .strict_ordering(strict)
            .config_pack(pack)
            .config_tight_requests(tight_requests)
            .queue_max_records(40)
            .retry(RetryPolicy::default().initial_delay(Duration::from_micros(100)).max_delay(Duration::from_millis(1)).max_retries(Some(5)))
            .build().await?;
            let source = SourceName::new("prop");
            let mut receipts = Vec::new();
            for (i, size) in sizes.iter().enumerate() {
                let key = PartitionKey::new(&keys[i % keys.len()])?;
                let mut data = format!("{i}|").into_bytes();
                data.resize(data.len().max(*size), b'.');
                receipts.push(producer.send(Record::from_source(source.clone(), key, data)).await?);
            }
            let mut outcomes = Vec::new();
            for receipt in receipts {
                outcomes.push(receipt.await);
            }
            producer.shutdown(Duration::from_secs(5)).await;
            Ok::<_, Box<dyn std::error::Error>>((outcomes, producer.stats()))
        }).map_err(|e| TestCaseError::fail(e.to_string()))?;

        let seen = seen.lock().unwrap();
        prop_assert!(seen.violations.is_empty(), "{:?}", seen.violations);
        for (i, (size, outcome)) in sizes.iter().zip(&outcomes).enumerate() {
            let key_len = keys[i % keys.len()].len();
            let data_len = (*size).max(format!("{i}|").len());
            // Packed records go to a destination that adds a newline.
            let framing = usize::from(pack.is_some());
            let too_large = data_len + framing + key_len > LIMITS.max_record_bytes;
            let id = i.to_string();
            if too_large {
                prop_assert!(
                    matches!(
                        outcome,
                        Outcome::DeadLettered {
                            reason: DeadLetterReason::RecordTooLarge,
                            error_code: None,
                            record: None,
                            ..
                        }
                    ),
                    "{:?}",
                    outcome
                );
                prop_assert!(!seen.delivered.contains_key(&id));
            } else {
                prop_assert!(matches!(outcome, Outcome::Delivered(_)), "{}: {:?}", i, outcome);
                prop_assert_eq!(seen.delivered.get(&id), Some(&1), "record {} delivered once", i);
            }
        }
        if strict {
            // Each key's records arrived in the order they were sent.
            let mut last: BTreeMap<usize, usize> = BTreeMap::new();
            for id in &seen.arrivals {
                let i: usize = id.parse().map_err(|_| TestCaseError::fail(format!("id {id}")))?;
                if let Some(previous) = last.insert(i % keys.len(), i) {
                    prop_assert!(previous < i, "key {}: {} after {}", i % keys.len(), i, previous);
                }
            }
        }
        let total = stats.total;
        prop_assert_eq!(total.records_in, sizes.len() as u64);
        prop_assert_eq!(total.records_in, total.delivered + total.dead_lettered + total.failed);
        if pack.is_none() {
            prop_assert_eq!(total.retried as usize, seen.failed_once.len());
        } else {
            prop_assert!(total.retried as usize >= seen.failed_once.len());
        }
    }
}

/// Counts the requests in flight at once; every entry is delivered. A
/// request is answered once `target` requests are in flight together (or
/// after a second), so the count does not depend on timing.
#[derive(Default)]
struct Concurrency {
    target: usize,
    now: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
    delivered: std::sync::atomic::AtomicUsize,
}

struct Counting(Arc<Concurrency>);

#[async_trait::async_trait]
impl Destination for Counting {
    fn name(&self) -> &str {
        "concurrency"
    }

    fn limits(&self) -> BatchLimits {
        LIMITS
    }

    async fn put(&self, entries: &[Entry]) -> Result<Vec<Result<Delivery, EntryError>>, PutError> {
        use std::sync::atomic::Ordering::SeqCst;
        let counts = &self.0;
        let now = counts.now.fetch_add(1, SeqCst) + 1;
        counts.most.fetch_max(now, SeqCst);
        let waiting = tokio::time::Instant::now();
        while counts.now.load(SeqCst) < counts.target && waiting.elapsed() < Duration::from_secs(1)
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        counts.now.fetch_sub(1, SeqCst);
        counts.delivered.fetch_add(entries.len(), SeqCst);
        Ok(entries.iter().map(|_| Ok(Delivery::default())).collect())
    }
}

/// The request budget bounds the requests in flight by the memory their
/// copies take, below `max_in_flight`; with the default budget the same
/// records go out eight at a time.
#[tokio::test]
async fn the_request_budget_bounds_requests_in_flight() -> Result<(), Box<dyn std::error::Error>> {
    // 22 full batches of twenty 500-byte records (data and key): a batch
    // goes out only when full, and its copies are exactly a full batch's.
    const RECORDS: usize = 22 * 20;
    let mut most = Vec::new();
    for two_batches in [true, false] {
        let dir = tempfile::tempdir()?;
        let destination = Arc::new(Concurrency {
            target: if two_batches { 2 } else { 8 },
            ..Concurrency::default()
        });
        let builder = Producer::builder(Counting(destination.clone()))
            .dead_letters(DeadLetterFile::open(&dir.path().join("dead.ndjson"))?)
            .linger(Duration::from_secs(60))
            .max_in_flight(8)
            // A quarter of it holds eight full batches' copies (each
            // counts its body twice).
            .queue_max_bytes(2 * 1024 * 1024);
        let builder = if two_batches {
            // Room for the copies of two full batches: a third must wait.
            let config = builder.current_config();
            let full = config.request_copy_bytes(config.batch_bytes, config.batch_records);
            builder.request_memory_bytes(2 * full)
        } else {
            builder
        };
        let producer = builder.build().await?;
        let source = SourceName::new("budget");
        let mut receipts = Vec::new();
        for i in 0..RECORDS {
            let key = PartitionKey::new(&format!("k{}", i % 10))?;
            let data = vec![b'x'; 498];
            receipts.push(
                producer
                    .send(Record::from_source(source.clone(), key, data))
                    .await?,
            );
        }
        for receipt in receipts {
            assert!(matches!(receipt.await, Outcome::Delivered(_)));
        }
        producer.shutdown(Duration::from_secs(5)).await;
        assert_eq!(
            destination
                .delivered
                .load(std::sync::atomic::Ordering::SeqCst),
            RECORDS
        );
        most.push(destination.most.load(std::sync::atomic::Ordering::SeqCst));
    }
    assert_eq!(
        most,
        [2, 8],
        "requests in flight at most: tight budget, default"
    );
    Ok(())
}

/// Notes which keys are in requests in flight at once, and the order each
/// key's records arrive in; every entry is delivered after a pause.
#[derive(Default)]
struct KeysInFlight {
    in_flight: Mutex<BTreeMap<String, usize>>,
    overlaps: Mutex<Vec<String>>,
    arrived: Mutex<Vec<String>>,
}

struct Overlapping(Arc<KeysInFlight>);

#[async_trait::async_trait]
impl Destination for Overlapping {
    fn name(&self) -> &str {
        "overlapping"
    }

    fn limits(&self) -> BatchLimits {
        LIMITS
    }

    async fn put(&self, entries: &[Entry]) -> Result<Vec<Result<Delivery, EntryError>>, PutError> {
        let seen = &self.0;
        for entry in entries {
            let key = entry.partition_key.as_str().to_owned();
            let mut in_flight = seen.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            let count = in_flight.entry(key.clone()).or_insert(0);
            *count += 1;
            if *count > 1 {
                seen.overlaps
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(key);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        for entry in entries {
            let key = entry.partition_key.as_str().to_owned();
            let mut in_flight = seen.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(count) = in_flight.get_mut(&key) {
                *count -= 1;
            }
            seen.arrived
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(id_of(&entry.data));
        }
        Ok(entries.iter().map(|_| Ok(Delivery::default())).collect())
    }
}

/// Strict ordering: a record of a key that never goes out (too large, so
/// dead-lettered on arrival) does not let the key's next record overtake
/// the one in flight.
#[tokio::test]
async fn a_dead_lettered_record_does_not_release_its_keys_next_record()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let seen = Arc::new(KeysInFlight::default());
    let producer = Producer::builder(Overlapping(seen.clone()))
        .dead_letters(DeadLetterFile::open(&dir.path().join("dead.ndjson"))?)
        .linger(Duration::from_millis(1))
        .strict_ordering(true)
        .build()
        .await?;
    let source = SourceName::new("order");
    let key = PartitionKey::new("k")?;
    let send = |id: &str, size: usize| {
        let mut data = format!("{id}|").into_bytes();
        data.resize(size, b'.');
        Record::from_source(source.clone(), key.clone(), data)
    };
    let first = producer.send(send("1", 100)).await?;
    // The first record is in flight (the destination takes 200 ms).
    tokio::time::sleep(Duration::from_millis(50)).await;
    let too_large = producer.send(send("big", 3_000)).await?;
    assert!(matches!(
        too_large.await,
        Outcome::DeadLettered {
            reason: DeadLetterReason::RecordTooLarge,
            ..
        }
    ));
    let second = producer.send(send("2", 100)).await?;
    let third = producer.send(send("3", 100)).await?;
    for receipt in [first, second, third] {
        assert!(matches!(receipt.await, Outcome::Delivered(_)));
    }
    producer.shutdown(Duration::from_secs(5)).await;
    let overlaps = seen.overlaps.lock().unwrap().clone();
    assert!(
        overlaps.is_empty(),
        "keys in two requests at once: {overlaps:?}"
    );
    assert_eq!(*seen.arrived.lock().unwrap(), ["1", "2", "3"]);
    Ok(())
}

/// Takes KPL aggregates: fails, once, every entry holding a record whose id
/// ends in `7` and, when asked, every third request whole; notes the order
/// user records arrive in.
struct Aggregating {
    seen: Arc<Mutex<Seen>>,
    fail_requests: bool,
    requests: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Destination for Aggregating {
    fn name(&self) -> &str {
        "aggregating"
    }

    fn limits(&self) -> BatchLimits {
        LIMITS
    }

    fn supports_aggregation(&self) -> bool {
        true
    }

    /// Two shards: records are aggregated by the shard their key maps to.
    async fn shard_map(&self) -> Result<Option<shardline_producer::ShardMap>, PutError> {
        Ok(Some(shardline_producer::ShardMap::even(2)))
    }

    async fn put(&self, entries: &[Entry]) -> Result<Vec<Result<Delivery, EntryError>>, PutError> {
        let request = self
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.fail_requests && request % 3 == 2 {
            return Err(PutError {
                class: shardline_producer::ErrorClass::Retryable,
                code: Some("ServiceUnavailable".into()),
                message: "every third request fails".into(),
                outcome_unknown: false,
            });
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut results = Vec::new();
        for entry in entries {
            let ids: Vec<String> = match shardline_producer::aggregation::deaggregate(&entry.data) {
                Ok(Some(users)) => users.iter().map(|u| id_of(&u.data)).collect(),
                Ok(None) => vec![id_of(&entry.data)],
                Err(e) => {
                    seen.violations.push(format!("a bad aggregate: {e}"));
                    Vec::new()
                }
            };
            results.push(seen.settle(ids));
        }
        Ok(results)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Strict ordering with aggregation, through failed entries, failed
    /// requests and a tight request budget: every record is delivered once
    /// and each key's records arrive in the order they were sent.
    #[test]
    fn strict_ordering_with_aggregation_keeps_each_keys_order(
        sizes in proptest::collection::vec(0usize..700, 1..150),
        keys in 1usize..4,
        aggregate in 1_024usize..=2_000,
        batch_bytes in 2_000usize..=10_000,
        fail_requests in any::<bool>(),
        tight_requests in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let dir = tempfile::tempdir()?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let outcomes = runtime.block_on(async {
            let producer = Producer::builder(Aggregating {
                    seen: seen.clone(),
                    fail_requests,
                    requests: std::sync::atomic::AtomicUsize::new(0),
                })
.dead_letters(DeadLetterFile::open(&dir.path().join("dead.ndjson"))?)
            .batch_bytes(batch_bytes)
            .linger(Duration::from_millis(1))
            .strict_ordering(true)
            .aggregate(aggregate)
            // Its failures are throttles: paced shards would make each case
            // wait for tokens in real time. Pacing has tests of its own.
            .adaptive_shard_rate(false)
            .config_tight_requests(tight_requests)
            .retry(RetryPolicy::default().initial_delay(Duration::from_micros(100)).max_delay(Duration::from_millis(1)).max_retries(None))
            .build().await?;
            let source = SourceName::new("prop");
            let mut receipts = Vec::new();
            for (i, size) in sizes.iter().enumerate() {
                let key = PartitionKey::new(&format!("k{}", i % keys))?;
                let mut data = format!("{i}|").into_bytes();
                data.resize(data.len().max(*size), b'.');
                receipts.push(producer.send(Record::from_source(source.clone(), key, data)).await?);
            }
            let mut outcomes = Vec::new();
            for receipt in receipts {
                outcomes.push(receipt.await);
            }
            producer.shutdown(Duration::from_secs(5)).await;
            Ok::<_, Box<dyn std::error::Error>>(outcomes)
        }).map_err(|e| TestCaseError::fail(e.to_string()))?;

        let seen = seen.lock().unwrap();
        prop_assert!(seen.violations.is_empty(), "{:?}", seen.violations);
        for (i, outcome) in outcomes.iter().enumerate() {
            prop_assert!(matches!(outcome, Outcome::Delivered(_)), "{}: {:?}", i, outcome);
            prop_assert_eq!(seen.delivered.get(&i.to_string()), Some(&1), "record {} once", i);
        }
        let mut last: BTreeMap<usize, usize> = BTreeMap::new();
        for id in &seen.arrivals {
            let i: usize = id.parse().map_err(|_| TestCaseError::fail(format!("id {id}")))?;
            if let Some(previous) = last.insert(i % keys, i) {
                prop_assert!(previous < i, "key {}: {} after {}", i % keys, i, previous);
            }
        }
    }
}
