//! What every shardline source shares.
//!
//! A source (log files, a PostgreSQL slot, an MQTT subscription) reads
//! input, and must not forget it until the records made from it are
//! *settled*: delivered by the service or durably dead-lettered. This crate
//! holds the pieces every source uses for that:
//!
//! - [`Source`]: reads batches of [`Input`], each with its position; takes
//!   back settled positions in read order; persists them on
//!   [`Source::checkpoint`].
//! - [`Process`]: turns one input into a record, a rejection (dead-lettered
//!   with the reason and the input's position), or nothing.
//! - [`Acknowledgements`]: awaits receipts in read order and reports the
//!   settled prefix — the only thing a checkpoint may cover.
//! - [`Pipeline`]: source → process (on parallel workers) → producer or
//!   stdout → acknowledgements → checkpoint, with counting into the metrics
//!   layer. Every binary is one or more pipelines around one producer.
//! - [`CheckpointFile`]: positions written atomically in a versioned file,
//!   by default under the user's state directory ([`default_state_dir`]).
//!
//! Delivery is at least once: after a crash, input after the last
//! checkpoint is read again, so the records in flight at the crash may be
//! stored twice — never lost.

mod acks;
mod checkpoint;
mod lines;
mod pipeline;

use std::collections::BTreeMap;

pub use acks::{AckSummary, Acknowledgements};
pub use checkpoint::{
    CHECKPOINT_FILE_MODE, CHECKPOINT_VERSION, CheckpointError, CheckpointFile, default_state_dir,
};
pub use lines::{LinePosition, LinesSource};
pub use pipeline::{
    DEFAULT_CHECKPOINT_INTERVAL, Pipeline, PipelineError, PipelineSummary, Sink, StdoutSink,
};

use shardline_producer::Record;

/// Where an input came from, precisely enough to find it again: a file,
/// offset and line; a log sequence number; an MQTT packet id.
pub trait Position: Send + Sync + 'static {
    /// What a dead letter of this input records of where it came from,
    /// e.g. `file` and `line`.
    fn describe(&self) -> BTreeMap<String, String>;

    /// What a [`Process`] may know of where the input came from, besides
    /// its bytes. Nothing by default.
    fn origin(&self) -> Origin<'_> {
        Origin::default()
    }
}

/// What a processor is told of an input's origin: the metadata a source
/// has beside the bytes, as an IoT Core rule sees `topic()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Origin<'a> {
    /// The name the input was published under (an MQTT topic).
    pub topic: Option<&'a str>,
}

impl<'a> Origin<'a> {
    /// An input published under `topic`.
    pub const fn topic(topic: &'a str) -> Self {
        Origin { topic: Some(topic) }
    }
}

/// One unit of input: a line, a change event, a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input<P> {
    pub data: Vec<u8>,
    pub position: P,
}

/// Why a source failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
}

/// A source of input that remembers what has been settled.
///
/// The contract, shared by files, databases and brokers:
/// - [`Source::read`] returns the next batch in order, `Ok(None)` once the
///   input has ended (a finite input, or `--once` reaching the end). It is
///   cancel-safe: dropping its future loses nothing.
/// - The [`Source::settler`] is called with positions in the order they
///   were read, each once everything read before it is settled.
/// - [`Source::checkpoint`] makes what the settler was told durable (a
///   checkpoint file, a replication slot advance, a broker ack).
#[async_trait::async_trait]
pub trait Source: Send {
    type Position: Position;

    async fn read(&mut self) -> Result<Option<Vec<Input<Self::Position>>>, SourceError>;

    /// The function the acknowledgements call with settled positions.
    fn settler(&self) -> Box<dyn FnMut(Self::Position) + Send>;

    async fn checkpoint(&mut self) -> Result<(), SourceError>;

    /// Called once, after the last checkpoint, when the pipeline ends: a
    /// source that acknowledges upstream (an MQTT broker) sends what is
    /// still queued and disconnects cleanly.
    async fn close(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
}

/// What became of one input.
#[derive(Debug)]
pub enum Processed {
    /// A record to send.
    Record(Record),
    /// Input that did not parse or failed validation: dead-lettered with
    /// this message and counted as invalid.
    Rejected(String),
    /// Nothing to send (a blank line); settled at once.
    Skip,
}

/// Turns input into records: parse, validate, mask, key. Runs on several
/// worker threads at once.
pub trait Process: Send + Sync + 'static {
    /// One input's bytes, and what its source knows of where it came from.
    fn process(&self, data: &[u8], origin: Origin<'_>) -> Processed;

    /// Whether inputs must be processed one after another, in read order
    /// (a decoder that carries a transaction from line to line). The
    /// pipeline then uses no worker threads.
    fn sequential(&self) -> bool {
        false
    }
}
