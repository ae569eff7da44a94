//! The contract every shardline stage shares.
//!
//! Data moves one way: a [`Source`] reads [`Input`] with its [`Position`];
//! a [`Process`] step turns each input into a [`Record`] (or rejects it, or
//! skips it); a [`Sink`] takes records in batches and hands back a
//! [`Receipt`] for each, which resolves to an [`Outcome`] once the record
//! is *settled* — delivered, or durably written to the dead-letter file
//! ([`DeadLetterFile`]). A source moves its checkpoint ([`CheckpointFile`])
//! only past settled input, so a crash re-sends, and never skips.
//!
//! This crate holds those types and nothing that moves data itself: the
//! pipeline that drives them is `shardline-pipeline`, the sinks are
//! `shardline-producer` and the pipeline's stdout sink, and the sources are
//! `shardline-tail`, `shardline-postgres`, `shardline-mqtt` and
//! `shardline-generate`. It depends on no AWS SDK, so a service that only
//! wants a parser or a source does not compile one.
//!
//! # Example
//!
//! A processing step that turns lines into records keyed by their first
//! word:
//!
//! ```
//! use shardline_core::{Origin, Process, Processed, Record, SourceName};
//! use shardline_core::PartitionKey;
//!
//! struct FirstWord(SourceName);
//!
//! impl Process for FirstWord {
//!     fn process(&self, data: &[u8], _origin: Origin<'_>) -> Processed {
//!         let line = String::from_utf8_lossy(data);
//!         match line.split_whitespace().next().map(PartitionKey::new) {
//!             Some(Ok(key)) => Processed::Record(Record::from_source(self.0.clone(), key, data.to_vec())),
//!             Some(Err(e)) => Processed::Rejected(format!("no key: {e}")),
//!             None => Processed::Skip,
//!         }
//!     }
//! }
//!
//! let step = FirstWord(SourceName::new("lines"));
//! match step.process(b"alice logged in", Origin::default()) {
//!     Processed::Record(record) => assert_eq!(record.partition_key.as_str(), "alice"),
//!     other => panic!("{other:?}"),
//! }
//! assert!(matches!(step.process(b"   ", Origin::default()), Processed::Skip));
//! ```

#![warn(missing_docs)]

mod checkpoint;
mod counters;
mod dead_letter;
mod latency;
mod outcome;
mod process;
mod record;
mod sink;
mod source;
mod stats;

pub use checkpoint::{
    CHECKPOINT_FILE_MODE, CHECKPOINT_VERSION, CheckpointError, CheckpointFile, CheckpointLock,
    default_state_dir,
};
pub use counters::SourceCounters;
pub use dead_letter::{
    BadLine, DEAD_LETTER_FILE_MODE, DataEncoding, DeadLetter, DeadLetterFile, DeadLetterSink,
    Replay, ReplayError, replay,
};
pub use latency::{Latency, LatencySummary};
pub use outcome::{DeadLetterReason, Delivery, Outcome, Receipt, Reply};
pub use process::{Process, Processed};
pub use record::{Record, SourceName};
pub use shardline_partition_key::{ExplicitHashKey, PartitionKey};
pub use sink::{Accepted, Item, Sink, SinkError};
pub use source::{Input, Origin, Position, Source, SourceError};
pub use stats::{DeliveryStats, SinkCounters, SinkStats, Tally};

/// Re-exported for implementors of [`Sink`] and [`Source`], whose traits
/// are declared with it.
pub use async_trait::async_trait;
