//! Set up, scale, read back and watch Kinesis data streams, through the
//! official AWS SDK for Rust.
//!
//! - [`create_stream`]: create with a shard count or on-demand, wait for
//!   ACTIVE, set retention and shard-level metrics; a stream that exists
//!   already with the same shape is fine.
//! - [`describe`]: status, retention, open and closed shards with their
//!   hash-key ranges, shard-level metrics.
//! - [`scale`]: `UpdateShardCount` (uniform scaling), or splits and
//!   merges to the same even ranges where an endpoint lacks it.
//! - [`StreamReader`]: every shard, parents before children, KPL
//!   aggregates opened into their user records as the KCL does, at most 5
//!   `GetRecords` calls a second per shard.
//! - [`stream_metrics`]: `IncomingRecords`, `IncomingBytes`,
//!   `WriteProvisionedThroughputExceeded`,
//!   `GetRecords.IteratorAgeMilliseconds` and `PutRecords.Latency` from
//!   CloudWatch.
//!
//! The `shardline` command line is built on this crate; so are shardline's
//! own end-to-end tests.
//!
//! # Example
//!
//! ```no_run
//! use shardline_streams::{StreamReader, StreamSpec, create_stream};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let sdk = aws_config::load_from_env().await;
//! let kinesis = aws_sdk_kinesis::Client::new(&sdk);
//! create_stream(&kinesis, "demo", &StreamSpec::provisioned(2), &mut |_| {}).await?;
//! let mut reader = StreamReader::new(&kinesis, "demo");
//! for record in reader.read_to_end().await? {
//!     println!("{} {}", record.partition_key, String::from_utf8_lossy(&record.data));
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod admin;
mod error;
mod metrics;
mod read;

pub use admin::{
    ACTIVE_TIMEOUT, Capacity, Created, DEFAULT_RETENTION_HOURS, MAX_RETENTION_HOURS, Progress,
    SHARD_LEVEL_METRICS, Scaled, ShardInfo, StreamInfo, StreamSpec, create_stream, delete_stream,
    describe, list_shards, scale, wait_until_active,
};
pub use error::StreamError;
pub use metrics::{MetricFigure, NAMESPACE, PERIOD, STREAM_METRICS, Summary, stream_metrics};
pub use read::{
    CALL_TIMEOUT, GET_RECORDS_INTERVAL, ReadOptions, ReadRecord, StartAt, StreamReader,
};
