//! The one task that owns every queued record: it batches, sends, retries
//! what failed, dead-letters what cannot be delivered, and answers each
//! record's receipt. Owning all state in one task means no locks on the
//! hot path and one place where a record changes hands.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::SeedableRng;
use rand::rngs::StdRng;
use shardline_core::{
    DeadLetter, DeadLetterReason, DeadLetterSink, Delivery, Outcome, Record, Reply, SinkCounters,
    SourceName,
};
use shardline_partition_key::{PartitionKey, ShardMap};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::aggregation::Aggregate;
use crate::config::ProducerConfig;
use crate::destination::{Destination, Entry, EntryError, ErrorClass, PutError, classify};
use crate::limits::BatchLimits;
use crate::rate_limit::RateLimiter;

/// The queue room a record holds until it leaves the producer.
#[derive(Debug)]
#[expect(
    dead_code,
    reason = "held only for their Drop, which returns the room to the queue"
)]
pub(crate) struct Permits {
    pub(crate) records: OwnedSemaphorePermit,
    pub(crate) bytes: OwnedSemaphorePermit,
}

/// A record inside the producer, with its delivery history.
#[derive(Debug)]
pub(crate) struct Pending {
    record: Record,
    seq: u64,
    reply: Option<Reply>,
    _permits: Permits,
    attempts: u32,
    first_attempt: Option<SystemTime>,
    last_attempt: Option<SystemTime>,
    last_error: Option<(Option<String>, String)>,
    /// Attempts whose outcome is unknown (timeout, lost connection): each
    /// may have stored a copy.
    unknown_attempts: u32,
    /// When it (last) entered the ready queue.
    ready_since: Instant,
    /// A record a source rejected: goes straight to the dead-letter sink
    /// with this letter.
    rejected: Option<Box<DeadLetter>>,
    /// With strict ordering: it is one of its key's active records (see
    /// [`KeyTurn`]), so its leaving lets the next one go.
    holds_turn: bool,
}

impl Pending {
    pub(crate) fn new(record: Record, seq: u64, reply: Reply, permits: Permits) -> Self {
        Pending {
            record,
            seq,
            reply: Some(reply),
            _permits: permits,
            attempts: 0,
            first_attempt: None,
            last_attempt: None,
            last_error: None,
            unknown_attempts: 0,
            ready_since: Instant::now(),
            rejected: None,
            holds_turn: false,
        }
    }

    /// A record a source rejected, to be written to the dead-letter sink as
    /// `letter` says.
    pub(crate) fn rejected(
        record: Record,
        letter: DeadLetter,
        seq: u64,
        reply: Reply,
        permits: Permits,
    ) -> Self {
        let mut pending = Pending::new(record, seq, reply, permits);
        pending.rejected = Some(Box::new(letter));
        pending
    }

    pub(crate) fn into_record(self) -> Record {
        self.record
    }

    fn size(&self, limits: &BatchLimits) -> usize {
        limits.record_size(
            self.record.data.len(),
            self.record.partition_key.len_bytes(),
        )
    }
}

/// Requests to the dispatcher other than records.
#[derive(Debug)]
pub(crate) enum Control {
    Flush {
        up_to: u64,
        done: oneshot::Sender<()>,
    },
    Shutdown {
        deadline: Instant,
        done: oneshot::Sender<()>,
    },
}

type PutResult = Result<Vec<Result<Delivery, EntryError>>, PutError>;

/// Records a batch may look at past rate-limited ones before it goes with
/// what it has: keeps a deep queue from being rescanned on every pass.
const RATE_SCAN_LIMIT: usize = 4_096;

/// One entry of a batch and the records it carries: one, or a KPL
/// aggregate of several bound for the same shard.
struct Unit {
    entry: Entry,
    members: Vec<Pending>,
    predicted_shard: Option<String>,
}

impl Unit {
    fn single(pending: Pending, predicted_shard: Option<String>) -> Self {
        Unit {
            entry: Entry {
                data: pending.record.data.clone(),
                partition_key: pending.record.partition_key.clone(),
                explicit_hash_key: pending.record.explicit_hash_key,
            },
            members: vec![pending],
            predicted_shard,
        }
    }

    /// Several records' data in one entry (Firehose packing).
    fn packed(data: Vec<u8>, members: Vec<Pending>) -> Self {
        let partition_key = members.first().map_or_else(
            || PartitionKey::new_or_hashed(""),
            |p| p.record.partition_key.clone(),
        );
        Unit {
            entry: Entry {
                data: bytes::Bytes::from(data),
                partition_key,
                explicit_hash_key: None,
            },
            members,
            predicted_shard: None,
        }
    }
}

/// A batch in flight: each entry's records, and the shard each entry was
/// expected to land in.
/// With strict ordering, one key's place in the producer.
///
/// One record of the key is *active* — ready, in flight or awaiting a
/// retry — and the rest wait. With aggregation, the active record's
/// aggregate also takes the waiting records that fit into it (they become
/// active too): an aggregate succeeds or fails as a whole, so they stay in
/// order, and a key's records are never in two entries of one request. The
/// next waiting record goes when every active one has left.
#[derive(Default)]
struct KeyTurn {
    active: usize,
    waiting: VecDeque<Pending>,
}

struct InFlight {
    members: Vec<Vec<Pending>>,
    predicted: Vec<Option<String>>,
    /// The memory its request's copies take (see
    /// [`ProducerConfig::request_copy_bytes`]).
    copy_bytes: usize,
}
type DeadLetterJob = (Box<dyn DeadLetterSink>, Vec<Pending>, std::io::Result<()>);

enum Event {
    Record(Option<Box<Pending>>),
    Control(Option<Control>),
    BatchDone(tokio::task::Id, Option<(PutResult, Duration)>),
    DeadLettersWritten(Result<DeadLetterJob, tokio::task::JoinError>),
    Timer,
}

pub(crate) struct Dispatcher {
    destination: Arc<dyn Destination>,
    limits: BatchLimits,
    config: ProducerConfig,
    counters: Arc<SinkCounters>,
    rng: StdRng,

    ready: VecDeque<Pending>,
    ready_bytes: usize,
    retries: BTreeMap<(Instant, u64), Pending>,
    /// With strict ordering: keys with a record in the producer, and the
    /// later records of that key waiting their turn.
    blocked: HashMap<PartitionKey, KeyTurn>,
    in_flight: JoinSet<(PutResult, Duration)>,
    in_flight_batches: HashMap<tokio::task::Id, InFlight>,
    /// What the requests in flight copy, against the request budget.
    request_bytes_in_flight: usize,
    /// The next batch did not fit in the request budget: nothing goes out
    /// before a request in flight comes back.
    request_budget_full: bool,
    /// With aggregation: the open shards, and whether to ask again.
    shard_map: Option<ShardMap>,
    refresh_shard_map: bool,
    rate_limiter: Option<RateLimiter>,
    /// When records were held back by the rate limiter: look again then.
    rate_limited_until: Option<Instant>,

    /// Dead letters waiting for the sink, with their reason and error.
    dead_letter_queue: Vec<(Pending, DeadLetter)>,
    sink: Option<Box<dyn DeadLetterSink>>,
    sink_job: Option<JoinHandle<DeadLetterJob>>,
    sink_job_letters: Vec<DeadLetter>,
    /// Sequence number and key of each record in the sink job, to release
    /// them even if the job panics and takes the records with it.
    sink_job_records: Vec<(u64, PartitionKey, bool)>,

    /// Every sequence number below this has reached the dispatcher; those
    /// above it that arrived early (sends race) wait in `admitted_ahead`.
    admitted_below: u64,
    admitted_ahead: BTreeSet<u64>,
    /// The sequence numbers of the records in the producer now: bounded by
    /// the queue's record cap, however long one record keeps retrying.
    unsettled: BTreeSet<u64>,
    flushes: Vec<(u64, oneshot::Sender<()>)>,
    shutdown: Option<(Instant, Option<oneshot::Sender<()>>)>,
    cut_off: bool,
    records_closed: bool,
    control_closed: bool,
}

impl Dispatcher {
    pub(crate) fn new(
        destination: Arc<dyn Destination>,
        sink: Box<dyn DeadLetterSink>,
        config: ProducerConfig,
        counters: Arc<SinkCounters>,
    ) -> Self {
        let needs_shard_map =
            config.aggregate_max_bytes.is_some() || config.rate_limit_percent.is_some();
        let rate_limiter = config.rate_limit_percent.map(RateLimiter::new);
        Dispatcher {
            limits: destination.limits(),
            destination,
            config,
            counters,
            rng: StdRng::from_os_rng(),
            ready: VecDeque::new(),
            ready_bytes: 0,
            retries: BTreeMap::new(),
            blocked: HashMap::new(),
            in_flight: JoinSet::new(),
            in_flight_batches: HashMap::new(),
            request_bytes_in_flight: 0,
            request_budget_full: false,
            shard_map: None,
            refresh_shard_map: needs_shard_map,
            rate_limiter,
            rate_limited_until: None,
            dead_letter_queue: Vec::new(),
            sink: Some(sink),
            sink_job: None,
            sink_job_letters: Vec::new(),
            sink_job_records: Vec::new(),
            admitted_below: 0,
            admitted_ahead: BTreeSet::new(),
            unsettled: BTreeSet::new(),
            flushes: Vec::new(),
            shutdown: None,
            cut_off: false,
            records_closed: false,
            control_closed: false,
        }
    }

    pub(crate) async fn run(
        mut self,
        mut records: mpsc::UnboundedReceiver<Box<Pending>>,
        mut control: mpsc::UnboundedReceiver<Control>,
    ) {
        loop {
            if self.refresh_shard_map {
                self.refresh_shard_map = false;
                self.load_shard_map().await;
            }
            let now = Instant::now();
            self.cut_off_at_deadline(now);
            self.promote_due_retries(now);
            self.dispatch(now);
            self.start_dead_letter_job();
            self.answer_flushes();
            if self.finished() {
                break;
            }
            match self.next_event(&mut records, &mut control).await {
                Event::Record(Some(pending)) => self.admit(*pending),
                Event::Record(None) => self.records_closed = true,
                Event::Control(Some(Control::Flush { up_to, done })) => {
                    self.flushes.push((up_to, done));
                }
                Event::Control(Some(Control::Shutdown { deadline, done })) => {
                    // No more records: take in those already sent.
                    records.close();
                    while let Ok(pending) = records.try_recv() {
                        self.admit(*pending);
                    }
                    self.records_closed = true;
                    self.shutdown = Some((deadline, Some(done)));
                }
                Event::Control(None) => self.control_closed = true,
                Event::BatchDone(id, result) => self.batch_done(id, result),
                Event::DeadLettersWritten(result) => self.dead_letters_written(result),
                Event::Timer => {}
            }
        }
        self.answer_flushes();
        for (_, done) in self.flushes.drain(..) {
            let _ = done.send(());
        }
        if let Some((_, Some(done))) = self.shutdown.take() {
            let _ = done.send(());
        }
    }

    /// Asks the destination for its open shards. Without a map, records
    /// are still aggregated, just not by shard.
    async fn load_shard_map(&mut self) {
        match self.destination.shard_map().await {
            Ok(map) => self.shard_map = map,
            Err(e) => {
                tracing::warn!(
                    destination = self.destination.name(),
                    error = %e,
                    "cannot list the shards; aggregating without a shard map"
                );
            }
        }
    }

    fn finished(&self) -> bool {
        let stopping = self.shutdown.is_some() || (self.records_closed && self.control_closed);
        stopping
            && self.records_closed
            && self.ready.is_empty()
            && self.retries.is_empty()
            && self.blocked.values().all(|turn| turn.waiting.is_empty())
            && self.in_flight_batches.is_empty()
            && self.dead_letter_queue.is_empty()
            && self.sink_job.is_none()
    }

    async fn next_event(
        &mut self,
        records: &mut mpsc::UnboundedReceiver<Box<Pending>>,
        control: &mut mpsc::UnboundedReceiver<Control>,
    ) -> Event {
        let wake = self.next_wake();
        let sleep = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let sink_job = async {
            match self.sink_job.as_mut() {
                Some(job) => job.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            pending = records.recv(), if !self.records_closed => Event::Record(pending),
            request = control.recv(), if !self.control_closed => Event::Control(request),
            Some(done) = self.in_flight.join_next_with_id(), if !self.in_flight.is_empty() => {
                match done {
                    Ok((id, output)) => Event::BatchDone(id, Some(output)),
                    Err(e) => Event::BatchDone(e.id(), None),
                }
            }
            written = sink_job => Event::DeadLettersWritten(written),
            () = sleep => Event::Timer,
        }
    }

    /// The next time something is due: a batch's linger, a retry, the
    /// shutdown deadline.
    fn next_wake(&self) -> Option<Instant> {
        let room =
            self.in_flight_batches.len() < self.config.max_in_flight && !self.request_budget_full;
        let linger = room
            .then(|| {
                self.ready
                    .front()
                    .map(|p| p.ready_since + self.config.linger)
            })
            .flatten();
        let retry = self.retries.keys().next().map(|(due, _)| *due);
        let rate = self.rate_limited_until;
        let deadline = self
            .shutdown
            .as_ref()
            .filter(|_| !self.cut_off)
            .map(|(d, _)| *d);
        [linger, retry, deadline, rate].into_iter().flatten().min()
    }

    /// A record arrives from `send`.
    fn admit(&mut self, mut pending: Pending) {
        self.unsettled.insert(pending.seq);
        self.admitted_ahead.insert(pending.seq);
        while self.admitted_ahead.remove(&self.admitted_below) {
            self.admitted_below += 1;
        }
        if let Some(letter) = pending.rejected.take() {
            self.dead_letter_queue.push((pending, *letter));
            return;
        }
        let size = pending.size(&self.limits);
        if size > self.limits.max_record_bytes {
            let message = format!(
                "{size} bytes is more than the {} bytes {} accepts per record",
                self.limits.max_record_bytes,
                self.destination.name()
            );
            pending.last_error = Some((None, message));
            self.dead_letter(pending, DeadLetterReason::RecordTooLarge);
            return;
        }
        if self.config.strict_ordering {
            let key = pending.record.partition_key.clone();
            match self.blocked.get_mut(&key) {
                Some(turn) => {
                    turn.waiting.push_back(pending);
                    return;
                }
                None => {
                    self.blocked.insert(
                        key,
                        KeyTurn {
                            active: 1,
                            waiting: VecDeque::new(),
                        },
                    );
                    pending.holds_turn = true;
                }
            }
        }
        pending.ready_since = Instant::now();
        self.ready_bytes += size;
        self.ready.push_back(pending);
    }

    fn promote_due_retries(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(entry) = self.retries.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
        // Retries go out first, in the order they became due.
        for mut pending in due.into_iter().rev() {
            // A retry has waited long enough: it goes out with the next batch.
            pending.ready_since = now.checked_sub(self.config.linger).unwrap_or(now);
            self.ready_bytes += pending.size(&self.limits);
            self.ready.push_front(pending);
        }
    }

    /// Sends batches while there is room in flight and a batch is full,
    /// lingered long enough, or wanted now (flush, shutdown).
    fn dispatch(&mut self, now: Instant) {
        let hurry = !self.flushes.is_empty() || self.shutdown.is_some();
        while self.in_flight_batches.len() < self.config.max_in_flight
            && !self.request_budget_full
            && !self.ready.is_empty()
        {
            // With aggregation many records make one entry: a batch is full
            // by bytes, so aggregates are not cut short by a record count.
            let packs =
                self.config.aggregate_max_bytes.is_some() || self.config.pack_max_bytes.is_some();
            let full = self.ready_bytes >= self.config.batch_bytes
                || (!packs && self.ready.len() >= self.config.batch_records);
            let lingered = self
                .ready
                .front()
                .is_some_and(|p| now >= p.ready_since + self.config.linger);
            if !(full || lingered || hurry) {
                break;
            }
            self.rate_limited_until = None;
            let units = match (self.config.aggregate_max_bytes, self.config.pack_max_bytes) {
                (Some(max_bytes), _) => self.take_aggregated(max_bytes),
                (None, Some(max_bytes)) => self.take_packed(max_bytes),
                (None, None) => self.take_plain(),
            };
            if units.is_empty() {
                // Everything ready is held back by the rate limiter.
                break;
            }
            let (entry_bytes, entry_count) = units.iter().fold((0, 0), |(bytes, count), unit| {
                (
                    bytes + unit.entry.data.len() + unit.entry.partition_key.len_bytes(),
                    count + 1,
                )
            });
            let copy_bytes = self.config.request_copy_bytes(entry_bytes, entry_count);
            if !self.in_flight_batches.is_empty()
                && self.request_bytes_in_flight + copy_bytes > self.config.request_budget()
            {
                // Its copies would take memory past the cap: it waits for a
                // request in flight to come back. (Alone in flight, a batch
                // always fits: the budget holds a full one.)
                self.put_back(units);
                self.request_budget_full = true;
                break;
            }
            self.request_bytes_in_flight += copy_bytes;
            let at = SystemTime::now();
            let mut entries = Vec::with_capacity(units.len());
            let mut predicted = Vec::with_capacity(units.len());
            let mut members = Vec::with_capacity(units.len());
            for unit in units {
                entries.push(unit.entry);
                predicted.push(unit.predicted_shard);
                let mut unit_members = unit.members;
                for pending in &mut unit_members {
                    pending.attempts += 1;
                    pending.first_attempt.get_or_insert(at);
                    pending.last_attempt = Some(at);
                }
                members.push(unit_members);
            }
            let destination = self.destination.clone();
            self.counters.request_started();
            let handle = self.in_flight.spawn(async move {
                let started = Instant::now();
                let result = destination.put(&entries).await;
                (result, started.elapsed())
            });
            self.in_flight_batches.insert(
                handle.id(),
                InFlight {
                    members,
                    predicted,
                    copy_bytes,
                },
            );
        }
    }

    /// Returns a batch's records to the front of the ready queue, in their
    /// order, unsent. Records an aggregate took from their key's waiting
    /// line go back to it, so that only one record per key is ready.
    fn put_back(&mut self, units: Vec<Unit>) {
        let mut first_of_key: HashSet<PartitionKey> = HashSet::new();
        let mut ready = Vec::new();
        let mut waiting = Vec::new();
        for pending in units.into_iter().flat_map(|unit| unit.members) {
            let pulled = self.config.strict_ordering
                && !first_of_key.insert(pending.record.partition_key.clone());
            if pulled {
                waiting.push(pending);
            } else {
                ready.push(pending);
            }
        }
        self.return_to_waiting(waiting);
        for pending in ready.into_iter().rev() {
            self.ready_bytes += pending.size(&self.limits);
            self.ready.push_front(pending);
        }
    }

    /// One entry per record, up to the batch limits. With rate limiting, a
    /// record whose shard has no tokens left stays queued, and so do the
    /// records after it for the same shard (their order is kept).
    fn take_plain(&mut self) -> Vec<Unit> {
        let now = Instant::now();
        let mut units = Vec::new();
        let mut bytes = 0;
        let mut held: Vec<Pending> = Vec::new();
        let mut held_shards: HashSet<usize> = HashSet::new();
        let mut examined = 0;
        while units.len() < self.config.batch_records && examined < RATE_SCAN_LIMIT {
            let Some(size) = self.ready.front().map(|p| p.size(&self.limits)) else {
                break;
            };
            if !units.is_empty() && bytes + size > self.config.batch_bytes {
                break;
            }
            let Some(pending) = self.ready.pop_front() else {
                break;
            };
            examined += 1;
            let shard = self.shard_of(&pending);
            if let (Some(limiter), Some(shard)) = (self.rate_limiter.as_mut(), shard)
                && (held_shards.contains(&shard) || !limiter.try_take(shard, 1.0, size as f64, now))
            {
                held_shards.insert(shard);
                held.push(pending);
                continue;
            }
            bytes += size;
            self.ready_bytes = self.ready_bytes.saturating_sub(size);
            let predicted = self.shard_id(shard);
            units.push(Unit::single(pending, predicted));
        }
        self.hold_back(held, now);
        units
    }

    /// Puts records the rate limiter held back at the front again, in their
    /// order, and asks to be woken when tokens have come back.
    fn hold_back(&mut self, held: Vec<Pending>, now: Instant) {
        if held.is_empty() {
            return;
        }
        for pending in held.into_iter().rev() {
            self.ready.push_front(pending);
        }
        self.rate_limited_until = Some(now + RateLimiter::RETRY_AFTER);
    }

    /// The shard a record will land in, when the shard map is known.
    fn shard_of(&self, pending: &Pending) -> Option<usize> {
        self.shard_map.as_ref()?.index_for(
            &pending.record.partition_key,
            pending.record.explicit_hash_key,
        )
    }

    fn shard_id(&self, shard: Option<usize>) -> Option<String> {
        shard
            .and_then(|i| self.shard_map.as_ref()?.ranges().get(i))
            .map(|range| range.shard_id.clone())
    }

    /// Records grouped by the shard they will land in, each group packed
    /// into KPL aggregates of at most `max_bytes`, up to the batch limits.
    fn take_aggregated(&mut self, max_bytes: usize) -> Vec<Unit> {
        let now = Instant::now();
        let mut held: Vec<Pending> = Vec::new();
        let mut held_shards: HashSet<usize> = HashSet::new();
        let mut examined = 0;
        let mut closed: Vec<Unit> = Vec::new();
        let mut closed_bytes: usize = 0;
        // Open aggregates by (shard, has explicit hash key).
        let mut open: HashMap<(Option<usize>, bool), (Aggregate, Vec<Pending>)> = HashMap::new();
        let mut open_bytes: usize = 0;
        let entry_size = |aggregate: &Aggregate, members: &[Pending]| {
            aggregate.encoded_len()
                + members
                    .first()
                    .map_or(0, |p| p.record.partition_key.len_bytes())
        };
        while let Some(front) = self.ready.front() {
            let key = &front.record.partition_key;
            let explicit = front.record.explicit_hash_key;
            let shard = self
                .shard_map
                .as_ref()
                .and_then(|map| map.index_for(key, explicit));
            let group = (shard, explicit.is_some());
            let plain_size = front.size(&self.limits);
            let data_len = front.record.data.len();
            // A full aggregate for this group is closed first.
            if let Some((aggregate, members)) = open.get(&group) {
                let grown = aggregate.encoded_len_with(key, explicit, data_len)
                    + members
                        .first()
                        .map_or(0, |p| p.record.partition_key.len_bytes());
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
            if self.rate_limiter.is_some() && examined >= RATE_SCAN_LIMIT {
                break;
            }
            examined += 1;
            // A new aggregate costs a record token; every user record costs
            // its bytes.
            let held_back = match (self.rate_limiter.as_mut(), shard) {
                (Some(limiter), Some(shard)) => {
                    held_shards.contains(&shard)
                        || !limiter.try_take(
                            shard,
                            if starts_entry { 1.0 } else { 0.0 },
                            plain_size as f64,
                            now,
                        )
                }
                _ => false,
            };
            let Some(pending) = self.ready.pop_front() else {
                break;
            };
            if held_back {
                if let Some(shard) = shard {
                    held_shards.insert(shard);
                }
                held.push(pending);
                continue;
            }
            self.ready_bytes = self.ready_bytes.saturating_sub(plain_size);
            let strict = self.config.strict_ordering;
            let (aggregate, members) = open.entry(group).or_default();
            let before = entry_size(aggregate, members);
            let key = pending.record.partition_key.clone();
            aggregate.push(&key, explicit, pending.record.data.clone());
            members.push(pending);
            if strict {
                // The key's waiting records join its aggregate while they
                // fit (see `KeyTurn`).
                let room = self
                    .config
                    .batch_bytes
                    .saturating_sub(closed_bytes + open_bytes.saturating_sub(before));
                self.pull_waiting(&key, aggregate, members, max_bytes, room, shard, now);
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
    #[expect(
        clippy::too_many_arguments,
        reason = "the open aggregate's parts and limits, lent by take_aggregated's loop"
    )]
    fn pull_waiting(
        &mut self,
        key: &PartitionKey,
        aggregate: &mut Aggregate,
        members: &mut Vec<Pending>,
        max_bytes: usize,
        room: usize,
        shard: Option<usize>,
        now: Instant,
    ) {
        let Some(turn) = self.blocked.get_mut(key) else {
            return;
        };
        let first_key = members
            .first()
            .map_or(0, |p| p.record.partition_key.len_bytes());
        while let Some(next) = turn.waiting.front() {
            let explicit = next.record.explicit_hash_key;
            let data_len = next.record.data.len();
            let grown = aggregate.encoded_len_with(key, explicit, data_len) + first_key;
            if grown > max_bytes || grown > room || !aggregate.accepts(explicit) {
                break;
            }
            let size = next.size(&self.limits);
            if let (Some(limiter), Some(shard)) = (self.rate_limiter.as_mut(), shard)
                && !limiter.try_take(shard, 0.0, size as f64, now)
            {
                break;
            }
            let Some(mut next) = turn.waiting.pop_front() else {
                break;
            };
            next.holds_turn = true;
            turn.active += 1;
            aggregate.push(key, explicit, next.record.data.clone());
            members.push(next);
        }
    }

    /// Newline-delimited records packed into entries of at most `max_bytes`,
    /// up to the batch limits. A record that does not end in `\n` gets one.
    fn take_packed(&mut self, max_bytes: usize) -> Vec<Unit> {
        let limits = self.limits;
        let mut units: Vec<Unit> = Vec::new();
        // Bytes of the closed entries, as the destination counts them.
        let mut batch_bytes = 0;
        let mut data: Vec<u8> = Vec::new();
        let mut members: Vec<Pending> = Vec::new();
        let first_key_len =
            |members: &[Pending]| members.first().map(|p| p.record.partition_key.len_bytes());
        while let Some(front) = self.ready.front() {
            let plain_size = front.size(&limits);
            let front_key_len = front.record.partition_key.len_bytes();
            let len = front.record.data.len() + usize::from(!front.record.data.ends_with(b"\n"));
            if limits.record_size(len, front_key_len) > limits.max_record_bytes {
                // No room for its newline: it goes out alone, as it is.
                if let Some(key_len) = first_key_len(&members) {
                    batch_bytes += limits.record_size(data.len(), key_len);
                    units.push(Unit::packed(
                        std::mem::take(&mut data),
                        std::mem::take(&mut members),
                    ));
                }
                if units.len() >= self.config.batch_records
                    || (!units.is_empty() && batch_bytes + plain_size > self.config.batch_bytes)
                {
                    break;
                }
                let Some(pending) = self.ready.pop_front() else {
                    break;
                };
                self.ready_bytes = self.ready_bytes.saturating_sub(plain_size);
                batch_bytes += plain_size;
                units.push(Unit::single(pending, None));
                continue;
            }
            // The entry's key (its first record's) counts towards the
            // limits where the destination counts keys.
            let key_len = first_key_len(&members).unwrap_or(front_key_len);
            let cap = max_bytes.min(
                limits
                    .max_record_bytes
                    .saturating_sub(limits.record_size(0, key_len)),
            );
            if !members.is_empty() && data.len() + len > cap {
                batch_bytes += limits.record_size(data.len(), key_len);
                units.push(Unit::packed(
                    std::mem::take(&mut data),
                    std::mem::take(&mut members),
                ));
            }
            let key_len = first_key_len(&members).unwrap_or(front_key_len);
            let entries = units.len() + usize::from(!members.is_empty());
            if members.is_empty() && entries >= self.config.batch_records {
                break;
            }
            let grown = limits.record_size(data.len() + len, key_len);
            if entries > 0 && batch_bytes + grown > self.config.batch_bytes {
                break;
            }
            let Some(pending) = self.ready.pop_front() else {
                break;
            };
            self.ready_bytes = self.ready_bytes.saturating_sub(plain_size);
            data.extend_from_slice(&pending.record.data);
            if !pending.record.data.ends_with(b"\n") {
                data.push(b'\n');
            }
            members.push(pending);
        }
        if !members.is_empty() {
            units.push(Unit::packed(data, members));
        }
        units
    }

    /// Turns an aggregate into one entry: a single record is sent as it is.
    fn close(&self, aggregate: Aggregate, mut members: Vec<Pending>, shard: Option<usize>) -> Unit {
        let predicted = self.shard_id(shard);
        if members.len() == 1
            && let Some(only) = members.pop()
        {
            return Unit::single(only, predicted);
        }
        let (partition_key, explicit_hash_key) = members
            .first()
            .map(|p| (p.record.partition_key.clone(), p.record.explicit_hash_key))
            .unwrap_or_else(|| (PartitionKey::new_or_hashed(""), None));
        Unit {
            entry: Entry {
                data: aggregate.encode(),
                partition_key,
                explicit_hash_key,
            },
            members,
            predicted_shard: predicted,
        }
    }

    fn batch_done(&mut self, id: tokio::task::Id, output: Option<(PutResult, Duration)>) {
        let Some(InFlight {
            members,
            predicted,
            copy_bytes,
        }) = self.in_flight_batches.remove(&id)
        else {
            return; // cut off at the shutdown deadline; already dead-lettered
        };
        self.request_bytes_in_flight = self.request_bytes_in_flight.saturating_sub(copy_bytes);
        self.request_budget_full = false;
        let (mut result, latency) = output.unwrap_or_else(|| {
            (
                Err(PutError {
                    class: ErrorClass::Retryable,
                    code: None,
                    message: format!("the {} request task panicked", self.destination.name()),
                    outcome_unknown: true,
                }),
                Duration::ZERO,
            )
        });
        if let Ok(results) = &result
            && results.len() != members.len()
        {
            // A destination that answers for too few or too many entries
            // cannot be trusted with any of them.
            result = Err(PutError {
                class: ErrorClass::Retryable,
                code: None,
                message: format!(
                    "{} answered {} results for {} entries",
                    self.destination.name(),
                    results.len(),
                    members.len()
                ),
                outcome_unknown: true,
            });
        }
        self.counters.request_finished(latency, result.is_err());
        match result {
            Ok(results) => {
                for ((unit, result), predicted) in members.into_iter().zip(results).zip(predicted) {
                    match result {
                        Ok(delivery) => {
                            if predicted.is_some() && delivery.shard_id != predicted {
                                // The stream was resharded: aggregate by the new shards.
                                self.refresh_shard_map = true;
                            }
                            for pending in unit {
                                self.delivered(pending, delivery.clone());
                            }
                        }
                        Err(error) => {
                            let class = classify(&error.code, None);
                            self.failed_together(
                                unit,
                                class,
                                Some(error.code.clone()),
                                &error.message,
                                false,
                            );
                        }
                    }
                }
            }
            Err(error) => {
                tracing::warn!(
                    destination = self.destination.name(),
                    entries = members.len(),
                    error = %error.message,
                    "batch request failed"
                );
                self.failed_together(
                    members.into_iter().flatten().collect(),
                    error.class,
                    error.code.clone(),
                    &error.message,
                    error.outcome_unknown,
                );
            }
        }
    }

    fn delivered(&mut self, mut pending: Pending, delivery: Delivery) {
        self.counters.delivered(
            &pending.record.source,
            pending.record.data.len(),
            pending.unknown_attempts,
        );
        if let Some(reply) = pending.reply.take() {
            reply.send(Outcome::Delivered(delivery));
        }
        self.left(pending);
    }

    /// Records that failed together: one entry, or one request. With
    /// strict ordering and aggregation a key may have several records in
    /// one aggregate: only the first of them to be retried waits for its
    /// retry; the key's others go back to the front of its waiting line,
    /// to join that retry's aggregate when it goes out again. Each failure
    /// is recorded on every record.
    fn failed_together(
        &mut self,
        pendings: Vec<Pending>,
        class: ErrorClass,
        code: Option<String>,
        message: &str,
        outcome_unknown: bool,
    ) {
        let regroup = self.config.strict_ordering && self.config.aggregate_max_bytes.is_some();
        let mut retrying: HashSet<PartitionKey> = HashSet::new();
        let mut back = Vec::new();
        for mut pending in pendings {
            let retry = class == ErrorClass::Retryable
                && self.config.retry.may_retry(pending.attempts)
                && !self.cut_off;
            if regroup && retry && !retrying.insert(pending.record.partition_key.clone()) {
                pending.unknown_attempts += u32::from(outcome_unknown);
                pending.last_error = Some((code.clone(), message.to_owned()));
                self.counters.retried(&pending.record.source);
                back.push(pending);
                continue;
            }
            self.failed(
                pending,
                class,
                code.clone(),
                message.to_owned(),
                outcome_unknown,
            );
        }
        self.return_to_waiting(back);
    }

    /// Puts active records of their keys back at the front of the keys'
    /// waiting lines, in order: they stop holding a turn.
    fn return_to_waiting(&mut self, records: Vec<Pending>) {
        for mut pending in records.into_iter().rev() {
            match self.blocked.get_mut(&pending.record.partition_key) {
                Some(turn) if turn.active > 1 => {
                    turn.active -= 1;
                    pending.holds_turn = false;
                    turn.waiting.push_front(pending);
                }
                // Its key has no other active record (it cannot happen: the
                // record's aggregate left one behind): it stays active and
                // goes out again, rather than waiting for a turn that would
                // never come.
                _ => {
                    pending.ready_since = Instant::now();
                    self.ready_bytes += pending.size(&self.limits);
                    self.ready.push_front(pending);
                }
            }
        }
    }

    fn failed(
        &mut self,
        mut pending: Pending,
        class: ErrorClass,
        code: Option<String>,
        message: String,
        outcome_unknown: bool,
    ) {
        pending.unknown_attempts += u32::from(outcome_unknown);
        pending.last_error = Some((code, message));
        let stopping = self.cut_off;
        if class == ErrorClass::Retryable
            && self.config.retry.may_retry(pending.attempts)
            && !stopping
        {
            self.counters.retried(&pending.record.source);
            let delay = self.config.retry.delay(pending.attempts, &mut self.rng);
            let due = Instant::now() + delay;
            self.retries.insert((due, pending.seq), pending);
        } else {
            let reason = match class {
                ErrorClass::Fatal => DeadLetterReason::Fatal,
                ErrorClass::Retryable if stopping => DeadLetterReason::ShutdownDeadline,
                ErrorClass::Retryable => DeadLetterReason::RetriesExhausted,
            };
            self.dead_letter(pending, reason);
        }
    }

    fn dead_letter(&mut self, pending: Pending, reason: DeadLetterReason) {
        let (data, data_encoding) = DeadLetter::encode_data(&pending.record.data);
        let (error_code, error_message) = pending
            .last_error
            .clone()
            .map_or((None, None), |(code, message)| (code, Some(message)));
        let letter = DeadLetter {
            data,
            data_encoding,
            partition_key: pending.record.partition_key.as_str().to_owned(),
            explicit_hash_key: pending.record.explicit_hash_key.map(|k| k.to_string()),
            source: pending.record.source.as_str().to_owned(),
            destination: self.destination.name().to_owned(),
            reason,
            error_code,
            error_message,
            attempts: pending.attempts,
            first_attempt: pending.first_attempt.map(DeadLetter::format_time),
            last_attempt: pending.last_attempt.map(DeadLetter::format_time),
            dead_lettered_at: DeadLetter::format_time(SystemTime::now()),
            context: BTreeMap::new(),
        };
        self.dead_letter_queue.push((pending, letter));
    }

    /// Hands the queued dead letters to the sink on a blocking thread, one
    /// job at a time (the sink syncs to disk).
    fn start_dead_letter_job(&mut self) {
        if self.sink_job.is_some() || self.dead_letter_queue.is_empty() {
            return;
        }
        let (pendings, letters): (Vec<Pending>, Vec<DeadLetter>) =
            self.dead_letter_queue.drain(..).unzip();
        let Some(mut sink) = self.sink.take() else {
            // The sink was lost to a panic: these cannot be settled.
            for pending in pendings {
                self.not_dead_lettered(pending, "the dead-letter sink is gone (it panicked)");
            }
            return;
        };
        self.sink_job_letters = letters.clone();
        self.sink_job_records = pendings
            .iter()
            .map(|p| (p.seq, p.record.partition_key.clone(), p.holds_turn))
            .collect();
        self.sink_job = Some(tokio::task::spawn_blocking(move || {
            let written = sink.write(&letters);
            (sink, pendings, written)
        }));
    }

    fn dead_letters_written(&mut self, result: Result<DeadLetterJob, tokio::task::JoinError>) {
        self.sink_job = None;
        let letters = std::mem::take(&mut self.sink_job_letters);
        let records = std::mem::take(&mut self.sink_job_records);
        match result {
            Ok((sink, pendings, Ok(()))) => {
                self.sink = Some(sink);
                for (mut pending, letter) in pendings.into_iter().zip(letters) {
                    self.counters.dead_lettered(
                        &pending.record.source,
                        pending.record.data.len(),
                        letter.reason == DeadLetterReason::Rejected,
                    );
                    tracing::warn!(
                        source = pending.record.source.as_str(),
                        reason = letter.reason.as_str(),
                        error = letter.error_message.as_deref().unwrap_or_default(),
                        "record dead-lettered"
                    );
                    if let Some(reply) = pending.reply.take() {
                        reply.send(Outcome::DeadLettered {
                            reason: letter.reason,
                            error_code: letter.error_code,
                        });
                    }
                    self.left(pending);
                }
            }
            Ok((sink, pendings, Err(e))) => {
                self.sink = Some(sink);
                let message = format!("writing the dead-letter sink failed: {e}");
                tracing::error!(records = pendings.len(), "{message}");
                for pending in pendings {
                    self.not_dead_lettered(pending, &message);
                }
            }
            Err(e) => {
                tracing::error!("the dead-letter sink panicked: {e}");
                // The records went down with the job; their receipts were
                // dropped and report the producer stopped. Count them.
                for (letter, (seq, key, holds_turn)) in letters.into_iter().zip(records) {
                    let source = SourceName::new(&letter.source);
                    let bytes = letter.data_bytes().map_or(0, |d| d.len());
                    self.counters.failed(&source, bytes);
                    self.left_seq(seq, &key, holds_turn);
                }
            }
        }
    }

    fn not_dead_lettered(&mut self, mut pending: Pending, message: &str) {
        self.counters
            .failed(&pending.record.source, pending.record.data.len());
        if let Some(reply) = pending.reply.take() {
            reply.send(Outcome::Failed {
                message: message.to_owned(),
            });
        }
        self.left(pending);
    }

    /// A record leaves the producer: its key's next record may go, its
    /// sequence number no longer holds up flushes, its queue room is freed.
    fn left(&mut self, pending: Pending) {
        self.left_seq(
            pending.seq,
            &pending.record.partition_key,
            pending.holds_turn,
        );
    }

    fn left_seq(&mut self, seq: u64, key: &PartitionKey, holds_turn: bool) {
        if self.config.strict_ordering && holds_turn {
            let next = match self.blocked.get_mut(key) {
                Some(turn) if turn.active > 1 => {
                    // Records of its aggregate are still inside.
                    turn.active -= 1;
                    self.unsettled.remove(&seq);
                    return;
                }
                Some(turn) => turn.waiting.pop_front(),
                None => None,
            };
            match next {
                Some(mut next) => {
                    next.holds_turn = true;
                    next.ready_since = Instant::now()
                        .checked_sub(self.config.linger)
                        .unwrap_or_else(Instant::now);
                    self.ready_bytes += next.size(&self.limits);
                    self.ready.push_front(next);
                }
                None => {
                    self.blocked.remove(key);
                }
            }
        }
        self.unsettled.remove(&seq);
    }

    /// A flush is answered once every record sent before it has arrived
    /// and left the producer.
    fn answer_flushes(&mut self) {
        let arrived = self.admitted_below;
        let oldest = self.unsettled.first().copied();
        let mut waiting = Vec::new();
        for (up_to, done) in self.flushes.drain(..) {
            if arrived >= up_to && oldest.is_none_or(|seq| seq >= up_to) {
                let _ = done.send(());
            } else {
                waiting.push((up_to, done));
            }
        }
        self.flushes = waiting;
    }

    /// At the shutdown deadline, everything not yet settled is dead-lettered.
    fn cut_off_at_deadline(&mut self, now: Instant) {
        let Some((deadline, _)) = &self.shutdown else {
            return;
        };
        if self.cut_off || now < *deadline {
            return;
        }
        self.cut_off = true;
        // Dropping the set aborts the requests still in flight.
        self.in_flight = JoinSet::new();
        let mut left_behind: Vec<Pending> = Vec::new();
        self.request_bytes_in_flight = 0;
        self.request_budget_full = false;
        for (_, batch) in self.in_flight_batches.drain() {
            self.counters.request_aborted();
            for mut pending in batch.members.into_iter().flatten() {
                pending.unknown_attempts += 1;
                left_behind.push(pending);
            }
        }
        left_behind.extend(self.ready.drain(..));
        self.ready_bytes = 0;
        left_behind.extend(std::mem::take(&mut self.retries).into_values());
        for (_, turn) in self.blocked.drain() {
            left_behind.extend(turn.waiting);
        }
        if !left_behind.is_empty() {
            tracing::warn!(
                records = left_behind.len(),
                "shutdown deadline passed; dead-lettering what is not delivered"
            );
        }
        for mut pending in left_behind {
            if pending.last_error.is_none() {
                pending.last_error = Some((
                    None,
                    "not delivered when the shutdown deadline passed".to_owned(),
                ));
            }
            self.dead_letter(pending, DeadLetterReason::ShutdownDeadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RECORD_OVERHEAD_BYTES;

    #[test]
    fn a_records_bookkeeping_fits_its_overhead_allowance() {
        // The queue's box and the receipt channel's allocation: two
        // reference counts, a state word, the outcome and two wakers.
        let channel = size_of::<Outcome>() + 3 * size_of::<usize>() + 2 * 3 * size_of::<usize>();
        let used = size_of::<Pending>() + channel;
        assert!(
            used <= RECORD_OVERHEAD_BYTES,
            "{used} bytes a record, {RECORD_OVERHEAD_BYTES} allowed"
        );
        eprintln!(
            "Pending {} bytes, Outcome {} bytes",
            size_of::<Pending>(),
            size_of::<Outcome>()
        );
    }
}
