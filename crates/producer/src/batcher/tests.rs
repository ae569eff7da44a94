//! The batcher's rules, on plain records and a clock the test sets.

use std::time::{Duration, Instant};

use shardline_core::{PartitionKey, Record, SourceName};
use shardline_partition_key::ShardMap;

use super::*;
use crate::aggregation::deaggregate;

#[derive(Debug)]
struct Item {
    record: Record,
    ready_since: Instant,
    holds_turn: bool,
}

impl HoldsTurn for Item {
    fn key(&self) -> &PartitionKey {
        &self.record.partition_key
    }
    fn set_holds_turn(&mut self, holds: bool) {
        self.holds_turn = holds;
    }
}

impl Queued for Item {
    fn record(&self) -> &Record {
        &self.record
    }
    fn ready_since(&self) -> Instant {
        self.ready_since
    }
    fn set_ready_since(&mut self, at: Instant) {
        self.ready_since = at;
    }
}

fn item(key: &str, data: &str) -> Item {
    Item {
        record: Record::from_source(
            SourceName::new("test"),
            PartitionKey::new_or_hashed(key),
            data.to_owned(),
        ),
        ready_since: Instant::now(),
        holds_turn: false,
    }
}

fn config(edit: impl FnOnce(&mut ProducerConfig)) -> ProducerConfig {
    let mut config = ProducerConfig::defaults_for(BatchLimits::KINESIS);
    config.linger = Duration::from_millis(100);
    edit(&mut config);
    config
}

fn data(units: &[Unit<Item>]) -> Vec<String> {
    units
        .iter()
        .flat_map(|u| &u.members)
        .map(|i| String::from_utf8_lossy(&i.record.data).into_owned())
        .collect()
}

#[test]
fn a_batch_is_due_when_full_lingered_or_hurried() {
    let now = Instant::now();
    let mut batcher = Batcher::new(config(|c| c.batch_records = 3), BatchLimits::KINESIS, false);
    assert!(!batcher.has_ready());
    batcher.admit(item("a", "1"), now);
    batcher.admit(item("b", "2"), now);
    assert!(!batcher.is_due(now, false));
    assert!(batcher.is_due(now, true), "a flush does not wait");
    assert_eq!(
        batcher.linger_ends(),
        Some(now + Duration::from_millis(100))
    );
    assert!(batcher.is_due(now + Duration::from_millis(100), false));
    batcher.admit(item("c", "3"), now);
    assert!(batcher.is_due(now, false), "three records fill a batch");
}

#[test]
fn plain_batches_keep_order_and_the_limits() {
    let now = Instant::now();
    let mut batcher = Batcher::new(
        config(|c| {
            c.batch_records = 2;
            c.batch_bytes = 1_000;
        }),
        BatchLimits::KINESIS,
        false,
    );
    for n in 0..5 {
        batcher.admit(item("k", &format!("{n}")), now);
    }
    assert_eq!(data(&batcher.take(now)), ["0", "1"]);
    assert_eq!(data(&batcher.take(now)), ["2", "3"]);
    // Unsent, it goes back to the front.
    let units = batcher.take(now);
    batcher.put_back(units, now);
    assert_eq!(data(&batcher.take(now)), ["4"]);
    assert!(batcher.is_idle());

    // Bytes: 600-byte records, 1,000 bytes a batch.
    let big = "x".repeat(599);
    batcher.admit(item("k", &big), now);
    batcher.admit(item("k", &big), now);
    assert_eq!(batcher.take(now).len(), 1);
    assert_eq!(batcher.take(now).len(), 1);
}

#[test]
fn aggregates_hold_a_shards_records_in_one_entry() {
    let now = Instant::now();
    let mut batcher = Batcher::new(
        config(|c| c.aggregate_max_bytes = Some(50 * 1024)),
        BatchLimits::KINESIS,
        false,
    );
    batcher.set_shard_map(Some(ShardMap::even(2)));
    for n in 0..100 {
        batcher.admit(item(&format!("key-{n}"), &format!("record {n}")), now);
    }
    let units = batcher.take(now);
    assert_eq!(units.len(), 2, "one aggregate per shard");
    let mut seen = 0;
    for unit in &units {
        let records = deaggregate(&unit.draft.clone().finish().data)
            .unwrap()
            .unwrap();
        assert_eq!(records.len(), unit.members.len());
        for (record, member) in records.iter().zip(&unit.members) {
            assert_eq!(&record.data[..], &member.record.data[..]);
        }
        assert!(unit.predicted_shard.is_some());
        seen += records.len();
    }
    assert_eq!(seen, 100);
}

#[test]
fn packs_are_newline_delimited_and_within_their_size() {
    let now = Instant::now();
    let mut batcher = Batcher::new(
        config(|c| c.pack_max_bytes = Some(20)),
        BatchLimits::FIREHOSE,
        true,
    );
    for data in ["aaaa", "bbbb\n", "cccc", "dddd", "eeee"] {
        batcher.admit(item("k", data), now);
    }
    let units = batcher.take(now);
    let entries: Vec<bytes::Bytes> = units
        .iter()
        .map(|u| u.draft.clone().finish().data)
        .collect();
    assert_eq!(entries, [&b"aaaa\nbbbb\ncccc\ndddd\n"[..], b"eeee\n"]);
    assert!(entries.iter().all(|e| e.len() <= 20));
}

#[test]
fn the_newline_a_destination_adds_counts_in_a_records_size() {
    let framed = Batcher::<Item>::new(config(|_| {}), BatchLimits::FIREHOSE, true);
    let plain = Batcher::<Item>::new(config(|_| {}), BatchLimits::FIREHOSE, false);
    assert_eq!(framed.size_of(&item("k", "abc")), 4);
    assert_eq!(framed.size_of(&item("k", "abc\n")), 4, "not doubled");
    assert_eq!(plain.size_of(&item("k", "abc")), 3);
}

#[test]
fn strict_ordering_sends_a_keys_next_record_once_the_first_left() {
    let now = Instant::now();
    let mut batcher = Batcher::new(
        config(|c| c.strict_ordering = true),
        BatchLimits::KINESIS,
        false,
    );
    batcher.admit(item("a", "a1"), now);
    batcher.admit(item("a", "a2"), now);
    batcher.admit(item("b", "b1"), now);
    let units = batcher.take(now);
    assert_eq!(data(&units), ["a1", "b1"], "a2 waits for a1");
    assert!(batcher.take(now).is_empty());
    assert!(!batcher.is_idle());
    let a1 = &units[0].members[0];
    assert!(a1.holds_turn);
    batcher.left(&a1.record.partition_key, now);
    assert!(
        batcher.is_due(now, false),
        "the next record has waited long enough"
    );
    assert_eq!(data(&batcher.take(now)), ["a2"]);
}

#[test]
fn without_a_shard_map_aggregation_sends_each_record_alone() {
    let now = Instant::now();
    let mut batcher = Batcher::new(
        config(|c| c.aggregate_max_bytes = Some(50 * 1024)),
        BatchLimits::KINESIS,
        false,
    );
    for n in 0..100 {
        batcher.admit(item(&format!("key-{n}"), &format!("record {n}")), now);
    }
    let units = batcher.take(now);
    assert_eq!(units.len(), 100, "one entry per record");
    for unit in &units {
        assert!(matches!(unit.draft, Draft::Ready(_)), "not an aggregate");
        assert_eq!(unit.members.len(), 1);
        assert_eq!(unit.predicted_shard, None);
    }
    // Once the shards are known, records are aggregated by shard again.
    batcher.set_shard_map(Some(ShardMap::even(2)));
    for n in 0..100 {
        batcher.admit(item(&format!("key-{n}"), &format!("record {n}")), now);
    }
    assert_eq!(batcher.take(now).len(), 2, "one aggregate per shard");
}

#[test]
fn with_strict_ordering_an_aggregate_takes_its_keys_waiting_records() {
    let now = Instant::now();
    let mut batcher = Batcher::new(
        config(|c| {
            c.strict_ordering = true;
            c.aggregate_max_bytes = Some(50 * 1024);
        }),
        BatchLimits::KINESIS,
        false,
    );
    batcher.set_shard_map(Some(ShardMap::even(1)));
    for n in 0..5 {
        batcher.admit(item("a", &format!("a{n}")), now);
    }
    let units = batcher.take(now);
    assert_eq!(units.len(), 1);
    assert_eq!(data(&units), ["a0", "a1", "a2", "a3", "a4"]);
    // Put back unsent: only the first is ready again; the rest wait.
    batcher.put_back(units, now);
    let units = batcher.take(now);
    assert_eq!(
        data(&units),
        ["a0", "a1", "a2", "a3", "a4"],
        "taken again, in order"
    );
}

#[test]
fn a_rate_limited_shard_holds_its_records_back_in_order() {
    let now = Instant::now();
    let mut batcher = Batcher::new(
        config(|c| c.rate_limit_percent = Some(1)),
        BatchLimits::KINESIS,
        false,
    );
    batcher.set_shard_map(Some(ShardMap::even(1)));
    // 1% of 1,000 records/s: 10 records at once.
    for n in 0..15 {
        batcher.admit(item(&format!("k{n}"), "x"), now);
    }
    assert_eq!(batcher.take(now).len(), 10);
    assert!(batcher.take(now).is_empty(), "no tokens left");
    assert_eq!(batcher.rate_limited_until(), Some(now + PACE_INTERVAL));
    let later = now + Duration::from_millis(500);
    assert_eq!(batcher.take(later).len(), 5);
    assert!(batcher.is_idle());
}
