//! One source's path to a sink.
//!
//! A [`Pipeline`] reads a batch from its [`Source`], turns each input into
//! a record with its [`Process`] step (on parallel workers when the batch
//! is large enough), hands the batch to a [`Sink`], follows the receipts
//! in read order ([`Acknowledgements`]), and tells the source which
//! positions are settled, so that its checkpoint never runs ahead of the
//! data. Every shardline binary is one or more pipelines into one sink.
//!
//! The sinks are the producer (`shardline-producer`: Kinesis Data Streams
//! or Firehose) and [`StdoutSink`] here.
//!
//! Delivery is at least once: after a crash, input after the last
//! checkpoint is read again, so the records in flight at the crash may be
//! stored twice, never lost.
//!
//! # Example
//!
//! Lines of a reader into stdout (here a buffer), each record its line:
//!
//! ```
//! use std::sync::Arc;
//! use shardline_core::{DeadLetterFile, Origin, PartitionKey, Process, Processed, Record, SourceCounters, SourceName};
//! use shardline_pipeline::{Pipeline, StdoutSink};
//! use shardline_tail::LinesSource;
//!
//! struct Lines;
//!
//! impl Process for Lines {
//!     fn process(&self, data: &[u8], _origin: Origin<'_>) -> Processed {
//!         let key = PartitionKey::new_or_hashed(&String::from_utf8_lossy(data));
//!         Processed::Record(Record::from_source(SourceName::new("lines"), key, data.to_vec()))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let dead_letters = DeadLetterFile::open(&dir.path().join("dead-letters.ndjson"))?;
//! let out = dir.path().join("out.txt");
//! let sink = Arc::new(StdoutSink::with_writer(Box::new(std::fs::File::create(&out)?), dead_letters));
//! let source = LinesSource::new(&b"one\ntwo\n"[..], "input");
//! let pipeline = Pipeline::new(source, Arc::new(Lines), sink, SourceName::new("lines"), Arc::new(SourceCounters::default()));
//!
//! let (_stop, stop) = tokio::sync::watch::channel(false);
//! let summary = pipeline.run(stop).await?;
//! assert_eq!(summary.read, 2);
//! assert_eq!(summary.acks.delivered, 2);
//! assert_eq!(std::fs::read_to_string(&out)?, "one\ntwo\n");
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod acks;
mod pipeline;
mod stdout;

pub use acks::{ACK_QUEUE_BATCHES, AckSummary, Acknowledgements};
pub use pipeline::{
    CHECKPOINT_AFTER_INPUTS, CHECKPOINT_AFTER_SETTLING, CHECKPOINT_MIN_GAP,
    DEFAULT_CHECKPOINT_INTERVAL, Pipeline, PipelineError, PipelineSummary, parse_threads,
};
pub use stdout::StdoutSink;

#[cfg(doc)]
use shardline_core::{Process, Sink, Source};
