//! What a sink counts of the records it was given: [`SinkCounters`],
//! read as [`SinkStats`] by the metrics layer.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::record::SourceName;

/// Counts for one source, or for all of them.
///
/// They reconcile: once the sink is idle,
/// `records_in == delivered + dead_lettered + failed` — every record that
/// entered was delivered, dead-lettered, or reported failed (dead-letter
/// sink unwritable).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryStats {
    /// Records the sink took in.
    pub records_in: u64,
    /// Their bytes (data only).
    pub bytes_in: u64,
    /// Records the service acknowledged.
    pub delivered: u64,
    /// Their bytes (data only).
    pub bytes_delivered: u64,
    /// Entry failures that were retried (a record retried twice counts 2).
    pub retried: u64,
    /// Records written to the dead-letter sink (rejected ones included).
    pub dead_lettered: u64,
    /// Of those, records a source rejected before sending (a line that did
    /// not parse, a reading that failed validation).
    pub rejected: u64,
    /// Records neither delivered nor dead-lettered (the sink failed).
    pub failed: u64,
    /// Extra copies that may be in the stream: for each delivered record,
    /// its earlier attempts whose outcome was unknown (a timeout or a
    /// connection lost after sending) — each may have stored it — and the
    /// copies stored in a shard that does not hold its key after a reshard
    /// (sent again; consumers that filter user records by their shard's
    /// hash key range, as the KCL does, drop those copies).
    pub possibly_duplicated: u64,
}

impl DeliveryStats {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &DeliveryStats) {
        self.records_in += other.records_in;
        self.bytes_in += other.bytes_in;
        self.delivered += other.delivered;
        self.bytes_delivered += other.bytes_delivered;
        self.retried += other.retried;
        self.dead_lettered += other.dead_lettered;
        self.rejected += other.rejected;
        self.failed += other.failed;
        self.possibly_duplicated += other.possibly_duplicated;
    }
}

/// What a batch adds to a sink's counts, by source: a sink counts a batch
/// with one lock per source rather than one per record. A batch rarely
/// holds more than one source, so a short list serves.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    by_source: Vec<(SourceName, DeliveryStats)>,
}

impl Tally {
    /// Adds `stats` to `source`'s share.
    pub fn add(&mut self, source: &SourceName, stats: DeliveryStats) {
        match self.by_source.iter_mut().find(|(name, _)| name == source) {
            Some((_, total)) => total.add(&stats),
            None => self.by_source.push((source.clone(), stats)),
        }
    }

    /// Each source's share.
    pub fn iter(&self) -> impl Iterator<Item = (&SourceName, &DeliveryStats)> {
        self.by_source.iter().map(|(source, stats)| (source, stats))
    }
}

/// A snapshot of everything a sink counts.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SinkStats {
    /// Every source together.
    pub total: DeliveryStats,
    /// Each source by name.
    pub by_source: BTreeMap<String, DeliveryStats>,
    /// Records in the sink now: queued, waiting to retry, or in flight.
    pub queued_records: u64,
    /// Their bytes (data and keys).
    pub queued_bytes: u64,
    /// Of those, records that failed through all their retries and are
    /// held, tried again until the service takes them: above 0 while the
    /// service is down or throttling hard. Their sources read on only
    /// while the queue has room.
    pub held_records: u64,
    /// Batch requests in flight now.
    pub in_flight_requests: u64,
    /// Batch requests sent, and those that failed as a whole.
    pub requests: u64,
    /// Batch requests that failed as a whole.
    pub request_errors: u64,
    /// Request latency: count, sum and maximum, in microseconds.
    pub request_latency_count: u64,
    /// Their summed latency, in microseconds.
    pub request_latency_sum_us: u64,
    /// The longest, in microseconds.
    pub request_latency_max_us: u64,
    /// Entries a shard refused for its throughput limit
    /// (`ProvisionedThroughputExceededException`), each time.
    pub throttled_entries: u64,
    /// Shards the producer paces now, having been throttled by them.
    pub paced_shards: u64,
    /// The requests the producer lets be in flight now (adaptive: below
    /// its maximum while the service is slow). 0: not reported.
    pub in_flight_limit: u64,
}

#[derive(Debug, Default)]
struct Inner {
    by_source: BTreeMap<SourceName, DeliveryStats>,
    queued_records: u64,
    queued_bytes: u64,
    held_records: u64,
    in_flight_requests: u64,
    requests: u64,
    request_errors: u64,
    latency_count: u64,
    latency_sum_us: u64,
    latency_max_us: u64,
    throttled_entries: u64,
    paced_shards: u64,
    in_flight_limit: u64,
}

/// A sink's counters, shared between whoever takes records in and whoever
/// settles them; [`SinkCounters::snapshot`] reads them all at once.
///
/// ```
/// use shardline_core::{SinkCounters, SourceName};
///
/// let counters = SinkCounters::default();
/// let web = SourceName::new("web_logs");
/// counters.accepted(&web, 120);
/// counters.accepted(&web, 80);
/// counters.delivered(&web, 120, 0);
/// counters.dead_lettered(&web, 80, true);
/// let stats = counters.snapshot();
/// assert_eq!(stats.total.records_in, stats.total.delivered + stats.total.dead_lettered);
/// assert_eq!(stats.by_source["web_logs"].rejected, 1);
/// assert_eq!(stats.queued_records, 0);
/// ```
#[derive(Debug, Default)]
pub struct SinkCounters {
    inner: Mutex<Inner>,
}

impl SinkCounters {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut inner)
    }

    fn source<T>(&self, source: &SourceName, f: impl FnOnce(&mut DeliveryStats) -> T) -> T {
        self.with(|inner| f(inner.by_source.entry(source.clone()).or_default()))
    }

    /// Counts records of `source` that entered and settled in one go (a
    /// sink that writes a whole batch at once, such as stdout): one lock
    /// for all of them, and nothing is left queued.
    pub fn settled_at_once(&self, source: &SourceName, stats: &DeliveryStats) {
        self.source(source, |total| total.add(stats));
    }

    /// `records` records of `source`, of `bytes` bytes in all, entered the
    /// sink: one lock for all of them.
    pub fn accepted_many(&self, source: &SourceName, records: u64, bytes: u64) {
        self.with(|inner| {
            let stats = inner.by_source.entry(source.clone()).or_default();
            stats.records_in += records;
            stats.bytes_in += bytes;
            inner.queued_records += records;
            inner.queued_bytes += bytes;
        });
    }

    /// A record of `bytes` bytes entered the sink.
    pub fn accepted(&self, source: &SourceName, bytes: usize) {
        self.with(|inner| {
            let stats = inner.by_source.entry(source.clone()).or_default();
            stats.records_in += 1;
            stats.bytes_in += bytes as u64;
            inner.queued_records += 1;
            inner.queued_bytes += bytes as u64;
        });
    }

    /// Takes back [`SinkCounters::accepted_many`] for records the sink
    /// turned away after all (it was shutting down).
    pub fn not_accepted_many(&self, source: &SourceName, records: u64, bytes: u64) {
        self.with(|inner| {
            let stats = inner.by_source.entry(source.clone()).or_default();
            stats.records_in = stats.records_in.saturating_sub(records);
            stats.bytes_in = stats.bytes_in.saturating_sub(bytes);
            inner.queued_records = inner.queued_records.saturating_sub(records);
            inner.queued_bytes = inner.queued_bytes.saturating_sub(bytes);
        });
    }

    /// Takes back [`SinkCounters::accepted`] for a record the sink turned
    /// away after all (it was shutting down).
    pub fn not_accepted(&self, source: &SourceName, bytes: usize) {
        self.with(|inner| {
            let stats = inner.by_source.entry(source.clone()).or_default();
            stats.records_in = stats.records_in.saturating_sub(1);
            stats.bytes_in = stats.bytes_in.saturating_sub(bytes as u64);
            Self::left(inner, bytes);
        });
    }

    /// A record left the sink (settled or failed).
    fn left(inner: &mut Inner, bytes: usize) {
        inner.queued_records = inner.queued_records.saturating_sub(1);
        inner.queued_bytes = inner.queued_bytes.saturating_sub(bytes as u64);
    }

    /// A record of `source` was delivered; `extra_copies` other copies of
    /// it may be stored (see [`DeliveryStats::possibly_duplicated`]).
    pub fn delivered(&self, source: &SourceName, bytes: usize, extra_copies: u32) {
        self.with(|inner| {
            Self::left(inner, bytes);
            let stats = inner.by_source.entry(source.clone()).or_default();
            stats.delivered += 1;
            stats.bytes_delivered += bytes as u64;
            stats.possibly_duplicated += u64::from(extra_copies);
        });
    }

    /// An entry of `source` failed and will be retried.
    pub fn retried(&self, source: &SourceName) {
        self.source(source, |stats| stats.retried += 1);
    }

    /// A record used up its retries and is held ([`SinkStats::held_records`]).
    pub fn held(&self) {
        self.with(|inner| inner.held_records += 1);
    }

    /// A held record left the sink (delivered, or dead-lettered).
    pub fn released(&self) {
        self.with(|inner| inner.held_records = inner.held_records.saturating_sub(1));
    }

    /// A record of `source` was dead-lettered (`rejected`: by its source,
    /// before sending).
    pub fn dead_lettered(&self, source: &SourceName, bytes: usize, rejected: bool) {
        self.with(|inner| {
            Self::left(inner, bytes);
            let stats = inner.by_source.entry(source.clone()).or_default();
            stats.dead_lettered += 1;
            stats.rejected += u64::from(rejected);
        });
    }

    /// A record of `source` is neither delivered nor dead-lettered.
    pub fn failed(&self, source: &SourceName, bytes: usize) {
        self.with(|inner| {
            Self::left(inner, bytes);
            inner.by_source.entry(source.clone()).or_default().failed += 1;
        });
    }

    /// A batch request went out.
    pub fn request_started(&self) {
        self.with(|inner| {
            inner.requests += 1;
            inner.in_flight_requests += 1;
        });
    }

    /// A batch request came back after `latency` (`failed`: as a whole).
    pub fn request_finished(&self, latency: Duration, failed: bool) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.with(|inner| {
            inner.in_flight_requests = inner.in_flight_requests.saturating_sub(1);
            if failed {
                inner.request_errors += 1;
            }
            inner.latency_count += 1;
            inner.latency_sum_us = inner.latency_sum_us.saturating_add(micros);
            inner.latency_max_us = inner.latency_max_us.max(micros);
        });
    }

    /// A request cut off at the shutdown deadline: no answer, no latency.
    pub fn request_aborted(&self) {
        self.with(|inner| {
            inner.in_flight_requests = inner.in_flight_requests.saturating_sub(1);
            inner.request_errors += 1;
        });
    }

    /// `entries` entries were refused by their shard's throughput limit.
    pub fn throttled(&self, entries: u64) {
        self.with(|inner| inner.throttled_entries += entries);
    }

    /// `shards` shards are paced now.
    pub fn set_paced_shards(&self, shards: u64) {
        self.with(|inner| inner.paced_shards = shards);
    }

    /// `requests` requests may be in flight now.
    pub fn set_in_flight_limit(&self, requests: u64) {
        self.with(|inner| inner.in_flight_limit = requests);
    }

    /// Everything counted so far.
    pub fn snapshot(&self) -> SinkStats {
        self.with(|inner| {
            let mut total = DeliveryStats::default();
            let mut by_source = BTreeMap::new();
            for (source, stats) in &inner.by_source {
                total.add(stats);
                by_source.insert(source.as_str().to_owned(), *stats);
            }
            SinkStats {
                total,
                by_source,
                queued_records: inner.queued_records,
                queued_bytes: inner.queued_bytes,
                held_records: inner.held_records,
                in_flight_requests: inner.in_flight_requests,
                requests: inner.requests,
                request_errors: inner.request_errors,
                request_latency_count: inner.latency_count,
                request_latency_sum_us: inner.latency_sum_us,
                request_latency_max_us: inner.latency_max_us,
                throttled_entries: inner.throttled_entries,
                paced_shards: inner.paced_shards,
                in_flight_limit: inner.in_flight_limit,
            }
        })
    }
}
