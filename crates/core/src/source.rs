//! Where input comes from: the [`Source`] trait, and the [`Position`] and
//! [`Origin`] each input carries.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::checkpoint::CheckpointError;

/// Where an input came from, precisely enough to find it again: a file,
/// offset and line; a log sequence number; an MQTT packet id.
pub trait Position: Send + Sync + 'static {
    /// What a dead letter of this input records of where it came from,
    /// e.g. `file` and `line`.
    fn describe(&self) -> BTreeMap<String, String>;

    /// What a [`Process`](crate::Process) may know of where the input came from, besides
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

/// One unit of input: a line, a change event, a message. Its bytes are
/// shared, so a source can hand out slices of what it read (a file's read
/// buffer, a message's payload) without copying them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input<P> {
    /// What was read: a line, a message, a change.
    pub data: Bytes,
    /// Where it was read, to checkpoint once it is settled.
    pub position: P,
}

/// Why a source failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The checkpoint could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Reading the input failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Anything else, in words.
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
///   were read, a run at a time, each once everything read before it is
///   settled.
/// - [`Source::checkpoint`] makes what the settler was told durable (a
///   checkpoint file, a replication slot advance, a broker ack).
#[async_trait::async_trait]
pub trait Source: Send {
    /// Where an input was read (a file offset, a log sequence number).
    type Position: Position;

    /// The next inputs; `Ok(None)` once the source has ended.
    async fn read(&mut self) -> Result<Option<Vec<Input<Self::Position>>>, SourceError>;

    /// The function the acknowledgements call with settled positions, in
    /// read order, a run at a time: each call's positions are settled, and
    /// so is everything read before them.
    fn settler(&self) -> Box<dyn FnMut(Vec<Self::Position>) + Send>;

    /// Saves the position past the inputs settled so far.
    async fn checkpoint(&mut self) -> Result<(), SourceError>;

    /// Called once, after the last checkpoint, when the pipeline ends: a
    /// source that acknowledges upstream (an MQTT broker) sends what is
    /// still queued and disconnects cleanly.
    async fn close(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
}
