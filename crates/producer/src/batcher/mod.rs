//! Batch assembly: which queued records go out in the next request, and as
//! which entries. Pure: no runtime, no I/O, no clock of its own — the
//! caller says what time it is — so every rule is unit-tested here.
//!
//! A batch is due when it is full (by records, or by bytes), when its
//! oldest record has waited the linger, or when the caller is in a hurry
//! (a flush, shutdown). It is made of entries within the destination's
//! limits: one record each, or, with KPL aggregation, the records bound
//! for one shard in one aggregate ([`aggregate`]), or, with Firehose
//! packing, newline-delimited records in one Firehose record ([`pack`]).
//! A record whose shard is paced ([`crate::rate_limit`]) and has no tokens
//! left stays queued, and so do the later records for that shard.

mod aggregate;
mod pack;

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use shardline_core::{ExplicitHashKey, PartitionKey, Record};
use shardline_partition_key::{ShardMap, ShardRange};

use crate::aggregation::Aggregate;
use crate::config::ProducerConfig;
use crate::destination::Entry;
use crate::limits::BatchLimits;
use crate::ordering::{HoldsTurn, KeyTurns};
use crate::rate_limit::{PACE_INTERVAL, Pacer};

/// Records a batch may look at past rate-limited ones before it goes with
/// what it has: keeps a deep queue from being rescanned on every pass.
const RATE_SCAN_LIMIT: usize = 4_096;

/// What the batcher needs of a queued record.
pub(crate) trait Queued: HoldsTurn {
    fn record(&self) -> &Record;
    /// When it (last) became ready to go.
    fn ready_since(&self) -> Instant;
    fn set_ready_since(&mut self, at: Instant);
}

/// A ready queue with room for fewer records keeps it: shrinking it would
/// cost more copying than the memory is worth (a queue slot is about 300
/// bytes).
const SHRINK_FROM_SLOTS: usize = 1024;

/// The shards remembered from the maps set so far (see
/// `Batcher::known_shards`): past this many, only the newest map's. Each
/// reshard adds the shards it makes; the bound keeps a process that sees
/// reshard after reshard from growing without end (20,000 ranges are
/// about 2 MB), far above the shards of streams seen in practice.
const KNOWN_SHARDS_MAX: usize = 20_000;

/// One entry of a batch and the records it carries: one, or a KPL
/// aggregate or a Firehose pack of several.
#[derive(Debug)]
pub(crate) struct Unit<T> {
    pub(crate) draft: Draft,
    pub(crate) members: Vec<T>,
    /// The shard the entry should land in, when the shard map is known:
    /// its index in the map and its id.
    pub(crate) predicted_shard: Option<(usize, String)>,
}

impl<T: Queued> Unit<T> {
    fn single(record: T, predicted_shard: Option<(usize, String)>) -> Self {
        let r = record.record();
        Unit {
            draft: Draft::Ready(Entry {
                data: r.data.clone(),
                partition_key: r.partition_key.clone(),
                explicit_hash_key: r.explicit_hash_key,
            }),
            members: vec![record],
            predicted_shard,
        }
    }
}

/// An entry, or a KPL aggregate still to be encoded. Encoding — the
/// protobuf and the MD5 of every byte of it — is left to the request's
/// own task ([`Draft::finish`]): the dispatcher is one task for the whole
/// producer, and would otherwise do it for every request in turn.
#[derive(Debug, Clone)]
pub(crate) enum Draft {
    Ready(Entry),
    Aggregate {
        aggregate: Aggregate,
        partition_key: PartitionKey,
        explicit_hash_key: Option<ExplicitHashKey>,
    },
}

impl Draft {
    /// The entry's data bytes, as they will be once encoded.
    pub(crate) fn data_len(&self) -> usize {
        match self {
            Draft::Ready(entry) => entry.data.len(),
            Draft::Aggregate { aggregate, .. } => aggregate.encoded_len(),
        }
    }

    pub(crate) fn partition_key(&self) -> &PartitionKey {
        match self {
            Draft::Ready(entry) => &entry.partition_key,
            Draft::Aggregate { partition_key, .. } => partition_key,
        }
    }

    /// The entry as it is sent.
    pub(crate) fn finish(self) -> Entry {
        match self {
            Draft::Ready(entry) => entry,
            Draft::Aggregate {
                aggregate,
                partition_key,
                explicit_hash_key,
            } => Entry {
                data: aggregate.encode(),
                partition_key,
                explicit_hash_key,
            },
        }
    }
}

/// The records ready to go, and how they are cut into batches.
#[derive(Debug)]
pub(crate) struct Batcher<T> {
    config: ProducerConfig,
    limits: BatchLimits,
    /// The destination ends each record with a newline: that byte counts.
    newline: bool,
    ready: VecDeque<T>,
    ready_bytes: usize,
    /// With strict ordering: each key's turn.
    turns: KeyTurns<T>,
    /// The open shards, when the destination has them.
    shard_map: Option<ShardMap>,
    /// How many times the shard map was set: the entries of a batch were
    /// mapped by the map of its batch's generation.
    shard_map_generation: u64,
    /// Every shard of the maps set so far, those closed since included: a
    /// put in flight during a reshard may be stored in a shard the newest
    /// map no longer lists (at most [`KNOWN_SHARDS_MAX`]).
    known_shards: HashMap<String, ShardRange>,
    /// Each shard's pace.
    pacer: Pacer,
    /// When records were held back by the pacer: look again then.
    rate_limited_until: Option<Instant>,
}

impl<T: Queued> Batcher<T> {
    /// Batches for a destination with `limits`, which ends each record
    /// with a newline if `newline` says so.
    pub(crate) fn new(config: ProducerConfig, limits: BatchLimits, newline: bool) -> Self {
        Batcher {
            pacer: Pacer::new(config.rate_limit_percent, Instant::now()),
            config,
            limits,
            newline,
            ready: VecDeque::new(),
            ready_bytes: 0,
            turns: KeyTurns::default(),
            shard_map: None,
            shard_map_generation: 0,
            known_shards: HashMap::new(),
            rate_limited_until: None,
        }
    }

    /// Whether records need the shard map: to aggregate by shard, or to
    /// pace each shard.
    pub(crate) fn needs_shard_map(&self) -> bool {
        self.config.aggregate_max_bytes.is_some()
            || self.config.rate_limit_percent.is_some()
            || self.config.adaptive_shard_rate
    }

    pub(crate) fn set_shard_map(&mut self, map: Option<ShardMap>) {
        let ranges = map.as_ref().map_or(&[][..], |map| map.ranges());
        self.pacer.set_shards(ranges, Instant::now());
        if let Some(map) = &map {
            if self.known_shards.len() + map.ranges().len() > KNOWN_SHARDS_MAX {
                self.known_shards.clear();
            }
            for range in map.ranges() {
                self.known_shards
                    .insert(range.shard_id.clone(), range.clone());
            }
        }
        self.shard_map = map;
        self.shard_map_generation += 1;
    }

    /// Which shard map batches taken now are mapped by (see
    /// [`Batcher::set_shard_map`]).
    pub(crate) fn shard_map_generation(&self) -> u64 {
        self.shard_map_generation
    }

    /// Each shard's pace, for the dispatcher to report deliveries and
    /// throttles to.
    pub(crate) fn pacer(&mut self) -> &mut Pacer {
        &mut self.pacer
    }

    /// A record's size as the destination counts it, with the newline the
    /// destination adds.
    pub(crate) fn size_of(&self, record: &T) -> usize {
        let r = record.record();
        let framing = usize::from(self.newline && !r.data.ends_with(b"\n"));
        self.limits
            .record_size(r.data.len() + framing, r.partition_key.len_bytes())
    }

    fn push_ready_front(&mut self, record: T) {
        self.ready_bytes += self.size_of(&record);
        self.ready.push_front(record);
    }

    /// A new record: ready at `now`, or, with strict ordering, waiting
    /// behind its key's active record.
    pub(crate) fn admit(&mut self, record: T, now: Instant) {
        let record = if self.config.strict_ordering {
            match self.turns.admit(record) {
                Some(record) => record,
                None => return,
            }
        } else {
            record
        };
        let mut record = record;
        record.set_ready_since(now);
        self.ready_bytes += self.size_of(&record);
        self.ready.push_back(record);
    }

    /// Records whose retry is due, in the order they became due: they go
    /// out first, with the next batch (they have waited long enough).
    pub(crate) fn retry(&mut self, due: Vec<T>, now: Instant) {
        for mut record in due.into_iter().rev() {
            record.set_ready_since(self.long_ago(now));
            self.push_ready_front(record);
        }
    }

    /// A time a linger before `now`: a record ready since then is due.
    fn long_ago(&self, now: Instant) -> Instant {
        now.checked_sub(self.config.linger).unwrap_or(now)
    }

    /// A record that held its key's turn left the producer (delivered,
    /// dead-lettered or failed). With strict ordering its key's next
    /// record, if any, goes out first.
    pub(crate) fn left(&mut self, key: &PartitionKey, now: Instant) {
        if !self.config.strict_ordering {
            return;
        }
        if let Some(mut next) = self.turns.leave(key) {
            next.set_ready_since(self.long_ago(now));
            self.push_ready_front(next);
        }
    }

    /// Active records whose aggregate failed while one of their key's
    /// records goes out alone to be retried: back to the front of their
    /// keys' waiting lines, in order.
    pub(crate) fn wait_again(&mut self, records: Vec<T>, now: Instant) {
        for record in records.into_iter().rev() {
            if let Some(mut record) = self.turns.wait_again(record) {
                // Its key has no other active record (it cannot happen:
                // the record's aggregate left one behind): it goes out
                // again, rather than waiting for a turn that would never
                // come.
                record.set_ready_since(now);
                self.push_ready_front(record);
            }
        }
    }

    /// Whether any record is ready.
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Whether no record is ready or waiting for its key's turn.
    pub(crate) fn is_idle(&self) -> bool {
        self.ready.is_empty() && self.turns.none_waiting()
    }

    /// Whether a batch should go now: full, lingered, or wanted now.
    pub(crate) fn is_due(&self, now: Instant, hurry: bool) -> bool {
        // With aggregation or packing many records make one entry: a batch
        // is full by bytes alone, so aggregates are not cut short by a
        // record count.
        let packs =
            self.config.aggregate_max_bytes.is_some() || self.config.pack_max_bytes.is_some();
        let full = self.ready_bytes >= self.config.batch_bytes
            || (!packs && self.ready.len() >= self.config.batch_records);
        full || hurry || self.linger_ends().is_some_and(|at| now >= at)
    }

    /// When the oldest ready record will have waited the linger.
    pub(crate) fn linger_ends(&self) -> Option<Instant> {
        self.ready
            .front()
            .map(|record| record.ready_since() + self.config.linger)
    }

    /// When records held back by the pacer may go.
    pub(crate) fn rate_limited_until(&self) -> Option<Instant> {
        self.rate_limited_until
    }

    /// The next batch's entries, within the batch limits. Empty when every
    /// ready record is held back by the pacer.
    pub(crate) fn take(&mut self, now: Instant) -> Vec<Unit<T>> {
        self.rate_limited_until = None;
        let units = match (self.config.aggregate_max_bytes, self.config.pack_max_bytes) {
            (Some(max_bytes), _) => self.take_aggregated(max_bytes, now),
            (None, Some(max_bytes)) => self.take_packed(max_bytes),
            (None, None) => self.take_plain(now),
        };
        // The queue keeps the room it grew to in a burst; the records taken
        // now live in their requests' lists, and the memory cap counts each
        // record once. Given back once the queue is down to a quarter of it
        // (copying what is left: amortized, like the growth).
        if self.ready.capacity() > SHRINK_FROM_SLOTS && self.ready.len() < self.ready.capacity() / 4
        {
            self.ready.shrink_to(self.ready.len() * 2);
        }
        units
    }

    /// Returns a batch's records to the front of the ready queue, in their
    /// order, unsent. Records an aggregate took from their key's waiting
    /// line go back to it, so that only one record per key is ready.
    pub(crate) fn put_back(&mut self, units: Vec<Unit<T>>, now: Instant) {
        let mut first_of_key: HashSet<PartitionKey> = HashSet::new();
        let mut ready = Vec::new();
        let mut waiting = Vec::new();
        for record in units.into_iter().flat_map(|unit| unit.members) {
            let pulled = self.config.strict_ordering && !first_of_key.insert(record.key().clone());
            if pulled {
                waiting.push(record);
            } else {
                ready.push(record);
            }
        }
        self.wait_again(waiting, now);
        for record in ready.into_iter().rev() {
            self.push_ready_front(record);
        }
    }

    /// Every record ready, and every record waiting for a turn; no turns
    /// are left (the shutdown deadline).
    pub(crate) fn drain(&mut self) -> (Vec<T>, Vec<T>) {
        self.ready_bytes = 0;
        (self.ready.drain(..).collect(), self.turns.drain_waiting())
    }

    /// One entry per record, up to the batch limits. A record whose shard
    /// is paced and has no tokens left stays queued, and so do the records
    /// after it for the same shard (their order is kept). Records are
    /// mapped to their shards only while some shard is paced: an
    /// unthrottled producer does not hash every key.
    fn take_plain(&mut self, now: Instant) -> Vec<Unit<T>> {
        let mut units = Vec::new();
        let mut bytes = 0;
        let mut held: Vec<T> = Vec::new();
        let mut held_shards: HashSet<usize> = HashSet::new();
        let mut examined = 0;
        let paced = self.pacer.is_active();
        while units.len() < self.config.batch_records && examined < RATE_SCAN_LIMIT {
            let Some(size) = self.ready.front().map(|r| self.size_of(r)) else {
                break;
            };
            if !units.is_empty() && bytes + size > self.config.batch_bytes {
                break;
            }
            let Some(record) = self.ready.pop_front() else {
                break;
            };
            examined += 1;
            let shard = if paced {
                self.shard_of(record.record())
            } else {
                None
            };
            if let Some(shard) = shard
                && (held_shards.contains(&shard)
                    || !self.pacer.try_take(shard, 1.0, size as f64, now))
            {
                held_shards.insert(shard);
                held.push(record);
                continue;
            }
            bytes += size;
            self.ready_bytes = self.ready_bytes.saturating_sub(size);
            let predicted = self.shard_id(shard);
            units.push(Unit::single(record, predicted));
        }
        self.hold_back(held, now);
        units
    }

    /// Puts records the pacer held back at the front again, in their order,
    /// and notes when to look again.
    fn hold_back(&mut self, held: Vec<T>, now: Instant) {
        if held.is_empty() {
            return;
        }
        for record in held.into_iter().rev() {
            self.ready.push_front(record);
        }
        self.rate_limited_until = Some(now + PACE_INTERVAL);
    }

    /// The shard a record will land in, when the shard map is known.
    pub(crate) fn shard_of(&self, record: &Record) -> Option<usize> {
        self.shard_map
            .as_ref()?
            .index_for(&record.partition_key, record.explicit_hash_key)
    }

    /// Whether a shard map set so far listed the shard `shard_id`.
    pub(crate) fn knows_shard(&self, shard_id: &str) -> bool {
        self.known_shards.contains_key(shard_id)
    }

    /// Whether the shard `shard_id` (open or closed since) holds
    /// `record`'s hash key; `None` when no map set so far listed it.
    pub(crate) fn shard_holds(&self, shard_id: &str, record: &Record) -> Option<bool> {
        let range = self.known_shards.get(shard_id)?;
        Some(range.holds(&record.partition_key, record.explicit_hash_key))
    }

    fn shard_id(&self, shard: Option<usize>) -> Option<(usize, String)> {
        let shard = shard?;
        let range = self.shard_map.as_ref()?.ranges().get(shard)?;
        Some((shard, range.shard_id.clone()))
    }
}

#[cfg(test)]
mod tests;
