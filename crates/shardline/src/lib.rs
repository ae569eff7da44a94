//! Send records to Amazon Kinesis Data Streams and Amazon Data Firehose
//! from a Rust service: batched within the service limits, retried entry by
//! entry, and acknowledged one by one, with nothing lost.
//!
//! ```no_run
//! use std::time::Duration;
//! use shardline::{Outcome, PartitionKey, Producer, Record};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let sdk_config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
//!     let producer = Producer::kinesis(&sdk_config, "orders").build().await?;
//!
//!     let record = Record::new(PartitionKey::new("order-1")?, r#"{"order":1,"total":30}"#);
//!     match producer.send(record).await?.await {
//!         Outcome::Delivered(stored) => println!("stored in {:?}", stored.shard_id()),
//!         other => eprintln!("not delivered: {other:?}"),
//!     }
//!
//!     producer.shutdown(Duration::from_secs(10)).await;
//!     Ok(())
//! }
//! ```
//!
//! - [`Producer::kinesis`] and [`Producer::firehose`] make a
//!   [`ProducerBuilder`] from an `SdkConfig`; [`ProducerBuilder::build`]
//!   checks that the stream exists (turn that off with
//!   [`ProducerBuilder::check_destination`]).
//! - [`Producer::send`] waits while the producer holds as much as it may
//!   (64 MiB by default) and returns a [`Receipt`]; the receipt resolves to
//!   an [`Outcome`] once the record is stored or given up on. Records wait
//!   at most [`DEFAULT_LINGER`] (100 ms) for their batch to fill.
//! - A record the service will not take (a missing stream, too large,
//!   retries used up) is written to the dead-letter sink you give
//!   ([`ProducerBuilder::dead_letters`]: a [`DeadLetterFile`], a Tokio
//!   channel, your own [`DeadLetterSink`]) or, without one, handed back in
//!   [`Outcome::DeadLettered`]'s `record`.
//! - [`ProducerConfig`] holds every setting and reads from TOML;
//!   [`ProducerBuilder::config`] takes it whole.
//! - [`Producer::stats`] counts what went in and what became of it, per
//!   source ([`Record::from_source`]).
//!
//! # Features
//!
//! | feature | what it adds | AWS SDK |
//! |---|---|---|
//! | `kinesis` (default) | [`KinesisDestination`], [`Producer::kinesis`] | aws-sdk-kinesis |
//! | `firehose` | [`FirehoseDestination`], [`Producer::firehose`] | aws-sdk-firehose |
//! | `logs` | [`logs`]: Apache, Nginx, JSON, syslog, CSV and custom-format parsers | none |
//! | `cdc` | [`cdc`]: the change-event model and its Debezium, DMS, Maxwell and wal2json decoders | none |
//! | `iot` | [`iot`]: sensor readings to records | none |
//!
//! With `default-features = false` and only `logs`, `cdc` or `iot`, no AWS
//! crate is compiled.

#![warn(missing_docs)]

pub use shardline_producer::{
    BatchLimits, BuildError, ConfigError, DEFAULT_BATCH_RECORDS, DEFAULT_LINGER,
    DEFAULT_MAX_IN_FLIGHT, DEFAULT_QUEUE_MAX_BYTES, DEFAULT_QUEUE_MAX_RECORDS,
    DEFAULT_REQUEST_TIMEOUT, DataEncoding, DeadLetter, DeadLetterFile, DeadLetterReason,
    DeadLetterSink, Delivery, DeliveryStats, Destination, Entry, EntryError, ErrorClass,
    ExplicitHashKey, Outcome, PartitionKey, Producer, ProducerBuilder, ProducerConfig, PutError,
    Receipt, Record, ReplaySummary, RetryPolicy, SendError, SinkStats, SourceName, TrySendError,
    WhenRetriesRunOut,
};

#[cfg(feature = "firehose")]
pub use shardline_producer::FirehoseDestination;
#[cfg(feature = "kinesis")]
pub use shardline_producer::KinesisDestination;

/// Partition keys and the strategies that choose them, with a report of how
/// a strategy spreads records over shards.
pub mod keys {
    pub use shardline_partition_key::*;
}

/// The KPL's aggregated record format, readable by every KCL consumer.
pub mod aggregation {
    pub use shardline_producer::aggregation::*;
}

/// Log parsers: Apache and Nginx access logs (built-in and custom formats),
/// JSON application logs, syslog, CSV and plain text.
#[cfg(feature = "logs")]
pub mod logs {
    pub use shardline_log_parser::*;
}

/// Change data capture: the change-event model, its classification, and the
/// decoders for Debezium, AWS DMS, Maxwell and wal2json.
#[cfg(feature = "cdc")]
pub mod cdc {
    pub use shardline_cdc::*;
}

/// Sensor readings to records, as an AWS IoT Core rule makes them.
#[cfg(feature = "iot")]
pub mod iot {
    pub use shardline_iot::*;
}
