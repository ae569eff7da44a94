//! KPL aggregation: the records bound for one shard share one Kinesis
//! record (`aggregation-format.md`).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use shardline_core::PartitionKey;

use super::{Batcher, Draft, Queued, RATE_SCAN_LIMIT, Unit};
use crate::aggregation::Aggregate;

/// An aggregate being filled, and the records in it.
type Open<T> = (Aggregate, Vec<T>);

/// The size of an aggregate's entry: its encoding and its first record's
/// key (the entry's partition key).
fn entry_size<T: Queued>(aggregate: &Aggregate, members: &[T]) -> usize {
    aggregate.encoded_len()
        + members
            .first()
            .map_or(0, |r| r.record().partition_key.len_bytes())
}

impl<T: Queued> Batcher<T> {
    /// Records grouped by the shard they will land in, each group packed
    /// into KPL aggregates of at most `max_bytes`, up to the batch limits.
    /// A record whose shard is not known goes alone.
    pub(super) fn take_aggregated(&mut self, max_bytes: usize, now: Instant) -> Vec<Unit<T>> {
        let mut held: Vec<T> = Vec::new();
        let mut held_shards: HashSet<usize> = HashSet::new();
        let mut examined = 0;
        let mut closed: Vec<Unit<T>> = Vec::new();
        let mut closed_bytes: usize = 0;
        // Open aggregates by (shard, has explicit hash key).
        let mut open: HashMap<(usize, bool), Open<T>> = HashMap::new();
        let mut open_bytes: usize = 0;
        while let Some(front) = self.ready.front() {
            let record = front.record();
            let key = &record.partition_key;
            let explicit = record.explicit_hash_key;
            let plain_size = self.size_of(front);
            let data_len = record.data.len();
            let Some(shard) = self.shard_of(record) else {
                // No shard known for the key (no shard map): the record
                // goes alone, to the shard its key takes it to, as the KPL
                // sends it. An aggregate is stored in its first key's
                // shard, and consumers that keep only the user records of
                // their shard's hash key range (the KCL) would drop the
                // others.
                let entries = closed.len() + open.len();
                let total = closed_bytes + open_bytes;
                if entries >= self.config.batch_records
                    || (entries > 0 && total + plain_size > self.config.batch_bytes)
                {
                    break;
                }
                let Some(record) = self.ready.pop_front() else {
                    break;
                };
                self.ready_bytes = self.ready_bytes.saturating_sub(plain_size);
                closed_bytes += plain_size;
                closed.push(Unit::single(record, None));
                continue;
            };
            let group = (shard, explicit.is_some());
            // A full aggregate for this group is closed first.
            if let Some((aggregate, members)) = open.get(&group) {
                let grown = aggregate.encoded_len_with(key, explicit, data_len)
                    + members
                        .first()
                        .map_or(0, |r| r.record().partition_key.len_bytes());
                if grown > max_bytes || !aggregate.accepts(explicit) {
                    let size = entry_size(aggregate, members);
                    if let Some((aggregate, members)) = open.remove(&group) {
                        open_bytes = open_bytes.saturating_sub(size);
                        closed_bytes += size;
                        closed.push(self.close(aggregate, members, shard));
                    }
                }
            }
            let (growth, starts_entry) = match open.get(&group) {
                Some((aggregate, _)) => (
                    aggregate.encoded_len_with(key, explicit, data_len) - aggregate.encoded_len(),
                    false,
                ),
                None => (
                    Aggregate::new().encoded_len_with(key, explicit, data_len) + key.len_bytes(),
                    true,
                ),
            };
            let entries = closed.len() + open.len();
            if starts_entry && entries >= self.config.batch_records {
                break;
            }
            let total = closed_bytes + open_bytes;
            if entries > 0 && total + growth.max(plain_size) > self.config.batch_bytes {
                break;
            }
            if self.pacer.is_active() && examined >= RATE_SCAN_LIMIT {
                break;
            }
            examined += 1;
            // A new aggregate costs a record token; every user record costs
            // its bytes.
            let held_back = held_shards.contains(&shard)
                || !self.pacer.try_take(
                    shard,
                    if starts_entry { 1.0 } else { 0.0 },
                    plain_size as f64,
                    now,
                );
            let Some(record) = self.ready.pop_front() else {
                break;
            };
            if held_back {
                held_shards.insert(shard);
                held.push(record);
                continue;
            }
            self.ready_bytes = self.ready_bytes.saturating_sub(plain_size);
            let strict = self.config.strict_ordering;
            let (aggregate, members) = open.entry(group).or_default();
            let before = entry_size(aggregate, members);
            let key = record.record().partition_key.clone();
            aggregate.push(&key, explicit, record.record().data.clone());
            members.push(record);
            if strict {
                // The key's waiting records join its aggregate while they
                // fit (see `crate::ordering`).
                let room = self
                    .config
                    .batch_bytes
                    .saturating_sub(closed_bytes + open_bytes.saturating_sub(before));
                self.pull_waiting(&key, (aggregate, members), max_bytes, room, shard, now);
            }
            open_bytes = open_bytes.saturating_sub(before) + entry_size(aggregate, members);
        }
        for ((shard, _), (aggregate, members)) in open {
            closed.push(self.close(aggregate, members, shard));
        }
        self.hold_back(held, now);
        closed
    }

    /// Moves `key`'s waiting records into its aggregate, in order, while
    /// the aggregate stays within `max_bytes`, its entry within `room`
    /// bytes of the batch, and the shard's rate limit allows.
    fn pull_waiting(
        &mut self,
        key: &PartitionKey,
        (aggregate, members): (&mut Aggregate, &mut Vec<T>),
        max_bytes: usize,
        room: usize,
        shard: usize,
        now: Instant,
    ) {
        let first_key = members
            .first()
            .map_or(0, |r| r.record().partition_key.len_bytes());
        let limits = self.limits;
        loop {
            let pacer = &mut self.pacer;
            let fits = |next: &T| {
                let record = next.record();
                let explicit = record.explicit_hash_key;
                let grown =
                    aggregate.encoded_len_with(key, explicit, record.data.len()) + first_key;
                if grown > max_bytes || grown > room || !aggregate.accepts(explicit) {
                    return false;
                }
                let size = limits.record_size(record.data.len(), record.partition_key.len_bytes());
                pacer.try_take(shard, 0.0, size as f64, now)
            };
            let Some(next) = self.turns.pull_if(key, fits) else {
                break;
            };
            let record = next.record();
            aggregate.push(key, record.explicit_hash_key, record.data.clone());
            members.push(next);
        }
    }

    /// Turns an aggregate into one entry: a single record is sent as it is.
    fn close(&self, aggregate: Aggregate, mut members: Vec<T>, shard: usize) -> Unit<T> {
        let predicted = self.shard_id(Some(shard));
        if members.len() == 1
            && let Some(only) = members.pop()
        {
            return Unit::single(only, predicted);
        }
        let (partition_key, explicit_hash_key) = members
            .first()
            .map(|r| {
                (
                    r.record().partition_key.clone(),
                    r.record().explicit_hash_key,
                )
            })
            .unwrap_or_else(|| (PartitionKey::new_or_hashed(""), None));
        // The list grew by doubling; it lives as long as the request, and
        // the memory cap counts each record once.
        members.shrink_to_fit();
        Unit {
            draft: Draft::Aggregate {
                aggregate,
                partition_key,
                explicit_hash_key,
            },
            members,
            predicted_shard: predicted,
        }
    }
}
