//! The producer core: batching, partial-failure retry, dead letters and
//! acknowledgements for Amazon Kinesis Data Streams and Amazon Data
//! Firehose.
//!
//! A [`Producer`] takes [`Record`]s from any number of sources at once and
//! returns a [`Receipt`] for each. It batches them within the service limits
//! ([`limits`]), keeps several requests in flight, and on a partial failure
//! retries **only the entries that failed**, with capped exponential backoff
//! and full jitter ([`RetryPolicy`]). Entries that fail for good (validation,
//! a missing stream, access denied, KMS), run out of retries, or are too
//! large for the service go to the dead-letter sink ([`DeadLetterFile`]) with
//! their reason — nothing is dropped silently. Each receipt resolves to an
//! [`Outcome`]: delivered (shard and sequence number), or dead-lettered.
//! Sources move their checkpoints only past settled records: that is the
//! at-least-once guarantee every shardline binary relies on.
//!
//! Memory is bounded: the producer holds at most `queue_max_records` records
//! and `queue_max_bytes` bytes (64 MiB by default). The bytes count
//! everything a record costs while held — data, key, bookkeeping — and the
//! copies each request in flight makes for the SDK (a share of the cap set
//! aside for them, [`ProducerConfig::request_budget`]); `send` waits while
//! the records' share is used up, `try_send` hands the record back.
//!
//! # Example
//!
//! Embedding the producer in a service, here with a destination of its own
//! (a Kinesis stream is `KinesisDestination::new(&client, "stream")`):
//!
//! ```
//! use shardline_producer::{
//!     BatchLimits, DeadLetterFile, Delivery, Destination, Entry, EntryError, Outcome,
//!     Producer, PutError, Record, SourceName,
//! };
//! use shardline_partition_key::PartitionKey;
//!
//! /// Accepts everything; a real destination calls a service.
//! struct Accept;
//!
//! #[async_trait::async_trait]
//! impl Destination for Accept {
//!     fn name(&self) -> &str { "accept" }
//!     fn limits(&self) -> BatchLimits { BatchLimits::KINESIS }
//!     async fn put(&self, entries: &[Entry]) -> Result<Vec<Result<Delivery, EntryError>>, PutError> {
//!         Ok(entries.iter().map(|_| Ok(Delivery::default())).collect())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let dead_letters = DeadLetterFile::open(&dir.path().join("dead-letters.ndjson"))?;
//! let producer = Producer::builder(Accept)
//!     .dead_letters(dead_letters)
//!     .linger(std::time::Duration::from_millis(10))
//!     .build()
//!     .await?;
//!
//! let source = SourceName::new("orders");
//! let receipt = producer
//!     .send(Record::from_source(source, PartitionKey::new("order-1")?, "{\"order\":1}"))
//!     .await?;
//! assert!(matches!(receipt.await, Outcome::Delivered(_)));
//!
//! producer.shutdown(std::time::Duration::from_secs(5)).await;
//! assert_eq!(producer.stats().total.delivered, 1);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod aggregation;
mod batcher;
pub mod concurrency;
mod config;
mod destination;
mod dispatcher;
#[cfg(feature = "firehose")]
mod firehose;
#[cfg(feature = "kinesis")]
mod kinesis;
pub mod limits;
mod ordering;
mod producer;
pub mod rate_limit;
mod retry;
mod warnings;

pub use config::{
    BODY_GROWTH, ConfigError, DEFAULT_BATCH_RECORDS, DEFAULT_LINGER, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_QUEUE_MAX_BYTES, DEFAULT_QUEUE_MAX_RECORDS, MIN_AGGREGATE_BYTES, ProducerConfig,
    RECORD_OVERHEAD_BYTES, REQUEST_ENTRY_OVERHEAD_BYTES,
};
pub use destination::{
    DEFAULT_REQUEST_TIMEOUT, Destination, Entry, EntryError, ErrorClass, PutError, classify,
};
#[cfg(feature = "firehose")]
pub use firehose::FirehoseDestination;
#[cfg(feature = "kinesis")]
pub use kinesis::KinesisDestination;
pub use limits::BatchLimits;
pub use producer::{
    BuildError, GRANT_RECORDS, Producer, ProducerBuilder, ReplaySummary, SendError, TrySendError,
};
pub use rate_limit::{SHARD_BYTES_PER_SECOND, SHARD_RECORDS_PER_SECOND};
pub use retry::{Decision, HOLD_RETRY_MAX_DELAY, RetryPolicy, WhenRetriesRunOut};
pub use warnings::WARNING_WINDOW;

// What a destination answers `shard_map` with.
pub use shardline_partition_key::{ShardMap, ShardRange};
// What the producer's API takes and returns, from the contract crate, so
// that sending records needs this crate alone.
pub use shardline_core::{
    BadLine, DEAD_LETTER_FILE_MODE, DataEncoding, DeadLetter, DeadLetterFile, DeadLetterReason,
    DeadLetterSink, Delivery, DeliveryStats, ExplicitHashKey, Outcome, PartitionKey, Receipt,
    Record, Replay, ReplayError, SinkStats, SourceName, replay,
};
