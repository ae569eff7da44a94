//! The [`Producer`] handle and its builder.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::config::{ConfigError, ProducerConfig, RECORD_OVERHEAD_BYTES};
use shardline_core::{
    Accepted, DeadLetter, DeadLetterSink, DeliveryStats, Item, Outcome, Receipt, Record,
    ReplayError, Reply, Sink, SinkCounters, SinkError, SinkStats, SourceName, Tally,
};
use shardline_partition_key::PartitionKey;

use crate::destination::Destination;
use crate::dispatcher::{Control, Dispatcher, Intake, Pending, Permits};
use crate::retry::RetryPolicy;

/// Why a record was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The producer is shutting down or has stopped; the record is handed
    /// back.
    #[error("the producer is shut down")]
    Closed(Box<Record>),
}

/// Why `try_send` did not accept a record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrySendError {
    /// The producer holds as many records or bytes as it may; `send` would
    /// wait. The record is handed back.
    #[error("the producer's queue is full")]
    Full(Box<Record>),
    /// The producer is shutting down or has stopped; the record is handed
    /// back.
    #[error("the producer is shut down")]
    Closed(Box<Record>),
}

/// What [`Producer::replay_file`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Delivered this time.
    pub delivered: u64,
    /// Dead-lettered again (into the producer's own sink).
    pub dead_lettered: u64,
    /// Neither: the dead-letter sink could not be written.
    pub failed: u64,
    /// Lines of the file that were not dead letters (each logged with its
    /// number); nothing was sent for them.
    pub unreadable: u64,
}

/// Builds a [`Producer`]; settings are checked against the destination's
/// limits by [`ProducerBuilder::build`].
pub struct ProducerBuilder {
    destination: Arc<dyn Destination>,
    dead_letters: Option<Box<dyn DeadLetterSink>>,
    config: ProducerConfig,
    check_destination: bool,
}

/// Why [`ProducerBuilder::build`] made no producer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A setting is out of range for the destination.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The destination's check failed: it does not exist, is being
    /// deleted, or could not be reached.
    #[error("{destination} cannot be used: {source}")]
    Destination {
        /// The destination's name (`kinesis:orders`).
        destination: String,
        /// What the service (or the connection) said.
        source: crate::PutError,
    },
}

impl std::fmt::Debug for ProducerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerBuilder")
            .field("destination", &self.destination.name())
            .field("config", &self.config)
            .field("check_destination", &self.check_destination)
            .finish()
    }
}

impl ProducerBuilder {
    /// Where records that cannot be delivered are written: a
    /// [`shardline_core::DeadLetterFile`], a Tokio channel of
    /// [`DeadLetter`]s, or a sink of your own. Without one, such a record
    /// comes back in its outcome ([`Outcome::DeadLettered`]'s `record`).
    pub fn dead_letters(mut self, sink: impl DeadLetterSink) -> Self {
        self.dead_letters = Some(Box::new(sink));
        self
    }

    /// Records per batch request, at most the destination's limit (500).
    pub fn batch_records(mut self, records: usize) -> Self {
        self.config.batch_records = records;
        self
    }

    /// Bytes per batch request, at most the destination's limit.
    pub fn batch_bytes(mut self, bytes: usize) -> Self {
        self.config.batch_bytes = bytes;
        self
    }

    /// How long a record may wait for its batch to fill
    /// ([`crate::DEFAULT_LINGER`]).
    pub fn linger(mut self, linger: Duration) -> Self {
        self.config.linger = linger;
        self
    }

    /// Batch requests in flight at once, at most
    /// ([`crate::DEFAULT_MAX_IN_FLIGHT`]).
    pub fn max_in_flight(mut self, requests: usize) -> Self {
        self.config.max_in_flight = requests;
        self
    }

    /// Records held at most; `send` waits while they are
    /// ([`crate::DEFAULT_QUEUE_MAX_RECORDS`]).
    pub fn queue_max_records(mut self, records: usize) -> Self {
        self.config.queue_max_records = records;
        self
    }

    /// The memory cap (see [`ProducerConfig::queue_max_bytes`]).
    pub fn queue_max_bytes(mut self, bytes: usize) -> Self {
        self.config.queue_max_bytes = bytes;
        self
    }

    /// The share of the memory cap set aside for requests in flight (see
    /// [`ProducerConfig::request_memory_bytes`]).
    pub fn request_memory_bytes(mut self, bytes: usize) -> Self {
        self.config.request_memory_bytes = Some(bytes);
        self
    }

    /// How failed records are retried.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = policy;
        self
    }

    /// Keeps each partition key's records in order through retries (see
    /// [`ProducerConfig::strict_ordering`]).
    pub fn strict_ordering(mut self, on: bool) -> Self {
        self.config.strict_ordering = on;
        self
    }

    /// KPL aggregation (Kinesis only) with aggregates of at most
    /// `max_bytes` (the KPL's default is
    /// [`crate::aggregation::DEFAULT_AGGREGATE_MAX_BYTES`]).
    pub fn aggregate(mut self, max_bytes: usize) -> Self {
        self.config.aggregate_max_bytes = Some(max_bytes);
        self
    }

    /// Firehose packing: newline-delimited records packed into Firehose
    /// records of at most `max_bytes` (a record that does not end in `\n`
    /// gets one). Use the destination's record limit to pay the fewest
    /// 5 KB units. Only for a destination that delimits records with
    /// newlines ([`Destination::newline_delimited`]).
    pub fn pack(mut self, max_bytes: usize) -> Self {
        self.config.pack_max_bytes = Some(max_bytes);
        self
    }

    /// Per-shard rate limiting (Kinesis), as the KPL's `RateLimit`: each
    /// shard gets at most `percent` of its 1,000 records/s and 1 MiB/s
    /// (the KPL uses 150 so the service absorbs bursts).
    pub fn rate_limit(mut self, percent: u32) -> Self {
        self.config.rate_limit_percent = Some(percent);
        self
    }

    /// Pace each shard that throttles, learning its rate from its answers
    /// (on by default; see [`crate::rate_limit`]).
    pub fn adaptive_shard_rate(mut self, on: bool) -> Self {
        self.config.adaptive_shard_rate = on;
        self
    }

    /// Keep fewer requests in flight while the service answers slowly or
    /// pushes back (on by default; see [`crate::concurrency`]).
    pub fn adaptive_concurrency(mut self, on: bool) -> Self {
        self.config.adaptive_concurrency = on;
        self
    }

    /// The settings so far (checked only by [`ProducerBuilder::build`]).
    pub fn current_config(&self) -> &ProducerConfig {
        &self.config
    }

    /// Replaces all settings at once.
    pub fn config(mut self, config: ProducerConfig) -> Self {
        self.config = config;
        self
    }

    /// Whether [`ProducerBuilder::build`] checks that the destination
    /// exists and answers (on by default): a Kinesis stream with
    /// `DescribeStreamSummary`, a Firehose delivery stream with
    /// `DescribeDeliveryStream`. Turn it off for a destination that may be
    /// down or not yet created when the producer starts: records then wait
    /// and retry, or are dead-lettered if it does not exist.
    pub fn check_destination(mut self, on: bool) -> Self {
        self.check_destination = on;
        self
    }

    /// Checks the settings and the destination
    /// ([`ProducerBuilder::check_destination`]), then starts the producer's
    /// dispatcher task on the current Tokio runtime.
    pub async fn build(self) -> Result<Producer, BuildError> {
        self.validate()?;
        if self.check_destination {
            self.destination
                .check()
                .await
                .map_err(|source| BuildError::Destination {
                    destination: self.destination.name().to_owned(),
                    source,
                })?;
        }
        Ok(self.start())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let limits = self.destination.limits();
        self.config.validate(limits)?;
        if self.config.rate_limit_percent.is_some() && !self.destination.supports_aggregation() {
            return Err(ConfigError::RateLimitUnsupported {
                destination: self.destination.name().to_owned(),
            });
        }
        if self.config.aggregate_max_bytes.is_some() && !self.destination.supports_aggregation() {
            return Err(ConfigError::AggregationUnsupported {
                destination: self.destination.name().to_owned(),
            });
        }
        // Packing concatenates newline-terminated records: only where the
        // destination delimits records with newlines (Firehose).
        if self.config.pack_max_bytes.is_some() && !self.destination.newline_delimited() {
            return Err(ConfigError::PackingUnsupported {
                destination: self.destination.name().to_owned(),
            });
        }
        Ok(())
    }

    fn start(self) -> Producer {
        let config = self.config;
        let (tx, records_rx) = mpsc::unbounded_channel();
        let (control, control_rx) = mpsc::unbounded_channel();
        let counters = Arc::new(SinkCounters::default());
        let records = Arc::new(Semaphore::new(config.queue_max_records));
        let bytes = Arc::new(Semaphore::new(config.record_budget()));
        let dispatcher = Dispatcher::new(
            self.destination.clone(),
            self.dead_letters,
            config.clone(),
            counters.clone(),
            Intake::new(records.clone(), bytes.clone(), &config),
        );
        let task = tokio::spawn(dispatcher.run(records_rx, control_rx));
        Producer {
            shared: Arc::new(Shared {
                tx,
                control,
                records,
                bytes,
                counters,
                config,
                next_seq: AtomicU64::new(0),
                closed: AtomicBool::new(false),
                task: std::sync::Mutex::new(Some(task)),
                name: self.destination.name().to_owned(),
            }),
        }
    }
}

#[derive(Debug)]
struct Shared {
    tx: mpsc::UnboundedSender<Vec<Pending>>,
    control: mpsc::UnboundedSender<Control>,
    records: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    counters: Arc<SinkCounters>,
    config: ProducerConfig,
    next_seq: AtomicU64,
    closed: AtomicBool,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The destination's name (`kinesis:orders`).
    name: String,
}

/// Sends records to one destination in batches, retrying what fails and
/// dead-lettering what cannot be delivered; each record's outcome comes
/// back through its [`Receipt`]. Cheap to clone: clones share one queue.
#[derive(Debug, Clone)]
pub struct Producer {
    shared: Arc<Shared>,
}

impl Producer {
    /// A builder for a producer sending to `destination`. Defaults: 500
    /// records or [`crate::DEFAULT_LINGER`] per batch, 1 s / 60 s /
    /// 3 retries backoff, 64 MiB of records held, no dead-letter sink
    /// (see [`ProducerBuilder::dead_letters`]).
    pub fn builder(destination: impl Destination) -> ProducerBuilder {
        let config = ProducerConfig::defaults_for(destination.limits());
        ProducerBuilder {
            destination: Arc::new(destination),
            dead_letters: None,
            config,
            check_destination: true,
        }
    }

    /// A builder for a producer sending to the Kinesis data stream
    /// `stream` (a name or an ARN), with a client made from `sdk_config`
    /// (`aws_config::load_defaults`, or your own).
    #[cfg(feature = "kinesis")]
    pub fn kinesis(sdk_config: &aws_types::SdkConfig, stream: &str) -> ProducerBuilder {
        let client = aws_sdk_kinesis::Client::new(sdk_config);
        Producer::builder(crate::KinesisDestination::new(&client, stream))
    }

    /// A builder for a producer sending to the Firehose delivery stream
    /// `delivery_stream`, with a client made from `sdk_config`.
    #[cfg(feature = "firehose")]
    pub fn firehose(sdk_config: &aws_types::SdkConfig, delivery_stream: &str) -> ProducerBuilder {
        let client = aws_sdk_firehose::Client::new(sdk_config);
        Producer::builder(crate::FirehoseDestination::new(&client, delivery_stream))
    }

    /// The settings in force.
    pub fn config(&self) -> &ProducerConfig {
        &self.shared.config
    }

    /// How many byte permits a record takes: its data, its key and its
    /// bookkeeping, plus `extra` (a rejected record's letter). A record
    /// larger than the whole budget (it is dead-lettered as too large
    /// anyway) takes the whole budget.
    fn cost(&self, record: &Record, extra: usize) -> u32 {
        let bytes = record
            .data
            .len()
            .saturating_add(record.partition_key.len_bytes())
            .saturating_add(RECORD_OVERHEAD_BYTES)
            .saturating_add(extra)
            .min(self.shared.config.record_budget());
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }

    /// Queues a record, waiting while the producer holds as many records or
    /// bytes as it may (backpressure). Returns a receipt for its outcome.
    pub async fn send(&self, record: Record) -> Result<Receipt, SendError> {
        if self.is_closed() {
            return Err(SendError::Closed(Box::new(record)));
        }
        match self.permits(&record, 0).await {
            Some(permits) => self.enqueue(record, permits).map_err(SendError::Closed),
            None => Err(SendError::Closed(Box::new(record))),
        }
    }

    /// Queues a record if there is room now; never waits.
    pub fn try_send(&self, record: Record) -> Result<Receipt, TrySendError> {
        if self.is_closed() {
            return Err(TrySendError::Closed(Box::new(record)));
        }
        let shared = &self.shared;
        let cost = self.cost(&record, 0);
        let Ok(records) = shared.records.clone().try_acquire_owned() else {
            return Err(TrySendError::Full(Box::new(record)));
        };
        let Ok(bytes) = shared.bytes.clone().try_acquire_many_owned(cost) else {
            return Err(TrySendError::Full(Box::new(record)));
        };
        self.enqueue(record, Permits { records, bytes })
            .map_err(TrySendError::Closed)
    }

    /// Writes a record a source rejected (a line that does not parse, a
    /// reading that fails validation) to the producer's dead-letter sink,
    /// in turn with the records sent, and counts it (`rejected`,
    /// `dead_lettered`). Its receipt settles once the letter is durable, so
    /// a source moves its checkpoint past rejected input exactly as past
    /// delivered input. Waits for room like [`Producer::send`].
    pub async fn reject(&self, letter: DeadLetter) -> Result<Receipt, SendError> {
        let record = rejected_record(&letter);
        if self.is_closed() {
            return Err(SendError::Closed(Box::new(record)));
        }
        // The letter is a second copy of the data, held until it is written.
        let letter_bytes = letter_bytes(&letter);
        let Some(permits) = self.permits(&record, letter_bytes).await else {
            return Err(SendError::Closed(Box::new(record)));
        };
        self.enqueue_with(record, permits, |record, seq, reply, permits| {
            Pending::rejected(
                record,
                letter,
                seq,
                reply,
                permits,
                std::time::Instant::now(),
            )
        })
        .map_err(SendError::Closed)
    }

    /// Queues a batch of items in order, waiting for room as
    /// [`Producer::send`] does but taking it for up to
    /// [`GRANT_RECORDS`] records at once; one message to the dispatcher and
    /// one count per group. Returns a receipt per item queued; once the
    /// producer is shut down, the rest is refused.
    pub async fn send_batch(&self, items: Vec<Item>) -> Accepted {
        let shared = &self.shared;
        let mut accepted = Accepted {
            receipts: Vec::with_capacity(items.len()),
            refused: None,
        };
        let grant_records = GRANT_RECORDS.min(shared.config.queue_max_records).max(1);
        let grant_bytes = (shared.config.record_budget() / GRANT_BUDGET_DIVISOR).max(1);
        let mut items = items.into_iter().map(|item| self.intake(item)).peekable();
        while items.peek().is_some() {
            // A group: as many items as one grant of room holds (at least one).
            let mut group = Vec::with_capacity(grant_records.min(items.len()));
            let mut cost: u64 = 0;
            while let Some(next) = items.peek() {
                let fits = group.len() < grant_records
                    && (group.is_empty() || cost + u64::from(next.cost) <= grant_bytes as u64);
                if !fits {
                    break;
                }
                let Some(next) = items.next() else { break };
                cost += u64::from(next.cost);
                group.push(next);
            }
            if self.is_closed() {
                accepted.refused = Some("it has shut down".to_owned());
                return accepted;
            }
            let (Ok(mut records), Ok(mut bytes)) = (
                shared
                    .records
                    .clone()
                    .acquire_many_owned(u32::try_from(group.len()).unwrap_or(u32::MAX))
                    .await,
                shared
                    .bytes
                    .clone()
                    .acquire_many_owned(u32::try_from(cost).unwrap_or(u32::MAX))
                    .await,
            ) else {
                accepted.refused = Some("it has shut down".to_owned());
                return accepted;
            };
            let now = std::time::Instant::now();
            let first_seq = shared
                .next_seq
                .fetch_add(group.len() as u64, Ordering::Relaxed);
            let mut pendings = Vec::with_capacity(group.len());
            let mut tally = Tally::default();
            for (seq, entry) in (first_seq..).zip(group) {
                let (Some(record_permit), Some(byte_permits)) =
                    (records.split(1), bytes.split(entry.cost as usize))
                else {
                    // Cannot happen: the group's room is its records' sum.
                    accepted.refused = Some("its room was miscounted".to_owned());
                    break;
                };
                let permits = Permits {
                    records: record_permit,
                    bytes: byte_permits,
                };
                let (reply, receipt) = Receipt::new();
                tally.add(
                    &entry.record.source,
                    DeliveryStats {
                        records_in: 1,
                        bytes_in: entry.record.data.len() as u64,
                        ..DeliveryStats::default()
                    },
                );
                pendings.push(match entry.letter {
                    Some(letter) => {
                        Pending::rejected(entry.record, letter, seq, reply, permits, now)
                    }
                    None => Pending::new(entry.record, seq, reply, permits, now),
                });
                accepted.receipts.push(receipt);
            }
            // Counted before the dispatcher can see them, so none is ever
            // counted out before it was counted in.
            for (source, stats) in tally.iter() {
                shared
                    .counters
                    .accepted_many(source, stats.records_in, stats.bytes_in);
            }
            if shared.tx.send(pendings).is_err() {
                // The dispatcher is gone: their replies are dropped with
                // them, so their receipts say they failed.
                for (source, stats) in tally.iter() {
                    shared
                        .counters
                        .not_accepted_many(source, stats.records_in, stats.bytes_in);
                }
            }
            if accepted.refused.is_some() {
                break;
            }
        }
        accepted
    }

    /// What an item costs and becomes inside the producer.
    fn intake(&self, item: Item) -> Queueable {
        match item {
            Item::Record(record) => Queueable {
                cost: self.cost(&record, 0),
                record,
                letter: None,
            },
            Item::Rejected(letter) => {
                let record = rejected_record(&letter);
                Queueable {
                    cost: self.cost(&record, letter_bytes(&letter)),
                    record,
                    letter: Some(letter),
                }
            }
        }
    }

    async fn permits(&self, record: &Record, extra: usize) -> Option<Permits> {
        let shared = &self.shared;
        let cost = self.cost(record, extra);
        let records = shared.records.clone().acquire_owned().await.ok()?;
        let bytes = shared.bytes.clone().acquire_many_owned(cost).await.ok()?;
        Some(Permits { records, bytes })
    }

    fn enqueue(&self, record: Record, permits: Permits) -> Result<Receipt, Box<Record>> {
        self.enqueue_with(record, permits, |record, seq, reply, permits| {
            Pending::new(record, seq, reply, permits, std::time::Instant::now())
        })
    }

    fn enqueue_with(
        &self,
        record: Record,
        permits: Permits,
        pending: impl FnOnce(Record, u64, Reply, Permits) -> Pending,
    ) -> Result<Receipt, Box<Record>> {
        let shared = &self.shared;
        let (reply, receipt) = Receipt::new();
        let seq = shared.next_seq.fetch_add(1, Ordering::Relaxed);
        let source = record.source.clone();
        let bytes = record.data.len();
        let pending = pending(record, seq, reply, permits);
        // Counted before the dispatcher can see it, so it is never counted
        // out before it was counted in.
        shared.counters.accepted(&source, bytes);
        match shared.tx.send(vec![pending]) {
            Ok(()) => Ok(receipt),
            Err(mpsc::error::SendError(pendings)) => {
                // The dispatcher is gone: the record comes back. (Were it
                // not in what came back, its receipt would say it failed:
                // its reply is dropped with it.)
                shared.counters.not_accepted(&source, bytes);
                match pendings.into_iter().next() {
                    Some(pending) => Err(Box::new(pending.into_record())),
                    None => Ok(receipt),
                }
            }
        }
    }

    /// Waits until every record sent before this call has settled (or
    /// failed), sending partly filled batches at once.
    pub async fn flush(&self) {
        let up_to = self.shared.next_seq.load(Ordering::Relaxed);
        let (done, wait) = oneshot::channel();
        if self
            .shared
            .control
            .send(Control::Flush { up_to, done })
            .is_ok()
        {
            let _ = wait.await;
        }
    }

    /// Stops accepting records, delivers what is queued, and waits for the
    /// dispatcher to finish. Whatever is not settled when `deadline` passes
    /// is dead-lettered (`shutdown_deadline`), so nothing is unaccounted
    /// for; in-flight requests cut off then may also have been stored.
    pub async fn shutdown(&self, deadline: Duration) {
        self.shared.closed.store(true, Ordering::Relaxed);
        let (done, wait) = oneshot::channel();
        if self
            .shared
            .control
            .send(Control::Shutdown {
                deadline: std::time::Instant::now() + deadline,
                done,
            })
            .is_ok()
        {
            let _ = wait.await;
        }
        let task = self
            .shared
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Relaxed)
    }

    /// Sends every letter of a dead-letter file again (see
    /// [`DeadLetter::to_record`]) and waits for their outcomes;
    /// returns how many were delivered. A line that is not a dead letter
    /// (a torn write) is logged with its number, counted and skipped; a
    /// letter whose data cannot be decoded is an error before anything is
    /// sent.
    pub async fn replay_file(&self, path: &std::path::Path) -> Result<ReplaySummary, ReplayError> {
        let read = shardline_core::replay(path)?;
        for bad in &read.bad_lines {
            tracing::warn!(
                "{}: line {} is not a dead letter, skipped: {}",
                path.display(),
                bad.line,
                bad.message
            );
        }
        let records = read
            .letters
            .iter()
            .map(DeadLetter::to_record)
            .collect::<Result<Vec<_>, _>>()?;
        let mut receipts = Vec::with_capacity(records.len());
        for record in records {
            match self.send(record).await {
                Ok(receipt) => receipts.push(receipt),
                Err(SendError::Closed(_)) => {
                    return Err(ReplayError::Data("the producer is shut down".into()));
                }
            }
        }
        let mut summary = ReplaySummary {
            unreadable: read.bad_lines.len() as u64,
            ..ReplaySummary::default()
        };
        for receipt in receipts {
            match receipt.await {
                Outcome::Delivered(_) => summary.delivered += 1,
                Outcome::DeadLettered { .. } => summary.dead_lettered += 1,
                Outcome::Failed { .. } => summary.failed += 1,
            }
        }
        Ok(summary)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SinkStats {
        self.shared.counters.snapshot()
    }
}

#[async_trait::async_trait]
impl Sink for Producer {
    fn name(&self) -> &str {
        &self.shared.name
    }

    /// Queues the batch in order (records to send, rejections to
    /// dead-letter in their turn), taking room for many records at once:
    /// see [`Producer::send_batch`].
    async fn send(&self, items: Vec<Item>) -> Result<Accepted, SinkError> {
        Ok(self.send_batch(items).await)
    }

    fn stats(&self) -> SinkStats {
        Producer::stats(self)
    }

    async fn flush(&self) {
        Producer::flush(self).await;
    }

    async fn shutdown(&self, deadline: Duration) {
        Producer::shutdown(self, deadline).await;
    }
}

/// Records a batch takes room for at once ([`Producer::send_batch`]): few
/// enough that other senders are not held up long, many enough that the
/// per-group costs (two semaphore waits, one message, one count) vanish
/// per record.
pub const GRANT_RECORDS: usize = 256;
/// A group's bytes take at most this share of the records' memory budget.
const GRANT_BUDGET_DIVISOR: usize = 4;

/// An item of a batch, ready to queue.
struct Queueable {
    record: Record,
    letter: Option<DeadLetter>,
    cost: u32,
}

/// The record a rejected input stands for inside the producer: its data,
/// key and source, for counting and ordering; the letter is what is
/// written.
fn rejected_record(letter: &DeadLetter) -> Record {
    let data = letter
        .data_bytes()
        .unwrap_or_else(|_| letter.data.clone().into_bytes());
    Record::from_source(
        SourceName::new(&letter.source),
        PartitionKey::new_or_hashed(&letter.partition_key),
        data,
    )
}

/// The memory a dead letter's text takes until it is written.
fn letter_bytes(letter: &DeadLetter) -> usize {
    letter.data.len()
        + letter.partition_key.len()
        + letter.error_message.as_ref().map_or(0, String::len)
        + letter
            .context
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}
