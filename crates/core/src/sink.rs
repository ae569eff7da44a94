//! Where records go: the [`Sink`] trait, implemented by the producer
//! (Kinesis Data Streams, Firehose) and by the stdout sink.

use std::time::Duration;

use crate::dead_letter::DeadLetter;
use crate::outcome::Receipt;
use crate::record::Record;
use crate::stats::SinkStats;

/// One item of a batch handed to a sink, in the order its input was read.
#[derive(Debug)]
pub enum Item {
    /// A record to deliver.
    Record(Record),
    /// Input a source rejected (it did not parse, or failed validation):
    /// written to the dead-letter file in its turn.
    Rejected(DeadLetter),
}

/// What a sink took of a batch: a receipt per item, in order, for the
/// items it took; and, if it stopped taking them part way (it is shutting
/// down), why. The items after the last receipt were not taken: they are
/// neither delivered nor dead-lettered, and must be read again.
#[derive(Debug, Default)]
pub struct Accepted {
    /// One receipt per item taken, in order.
    pub receipts: Vec<Receipt>,
    /// Why the items after the last receipt were refused.
    pub refused: Option<String>,
}

/// Why a sink could not take a batch at all (writing to stdout failed).
/// Nothing of the batch is settled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The sink's own output could not be written (stdout).
    #[error("writing records to {sink}: {source}")]
    Write {
        /// The sink's name.
        sink: &'static str,
        #[source]
        /// What failed underneath.
        source: std::io::Error,
    },
    /// The dead-letter sink could not be written.
    #[error("writing the dead-letter file: {0}")]
    DeadLetter(#[source] std::io::Error),
}

/// Where a pipeline's records go.
///
/// A sink takes a batch of items and hands back one [`Receipt`] per item
/// it took; each receipt resolves once its item is *settled* (delivered,
/// or durably dead-lettered) or has failed. A pipeline checkpoints its
/// source only past settled items. `send` may wait for room (backpressure)
/// but never drops an item: each one it takes leaves through exactly one
/// outcome.
///
/// ```
/// use shardline_core::{Accepted, Delivery, Item, Outcome, Receipt, Sink, SinkCounters, SinkError, SinkStats};
///
/// /// Counts records and settles them at once; a real sink sends them.
/// #[derive(Debug, Default)]
/// struct Count(SinkCounters);
///
/// #[async_trait::async_trait]
/// impl Sink for Count {
///     fn name(&self) -> &str { "count" }
///     async fn send(&self, items: Vec<Item>) -> Result<Accepted, SinkError> {
///         let receipts = items.into_iter().map(|item| match item {
///             Item::Record(record) => {
///                 self.0.accepted(&record.source, record.data.len());
///                 self.0.delivered(&record.source, record.data.len(), 0);
///                 Receipt::ready(Outcome::Delivered(Delivery::default()))
///             }
///             Item::Rejected(_) => Receipt::ready(Outcome::Failed { message: "no dead-letter file".into() }),
///         }).collect();
///         Ok(Accepted { receipts, refused: None })
///     }
///     fn stats(&self) -> SinkStats { self.0.snapshot() }
/// }
/// ```
#[async_trait::async_trait]
pub trait Sink: Send + Sync + std::fmt::Debug + 'static {
    /// What the sink is, for messages (`kinesis:orders`, `stdout`).
    fn name(&self) -> &str;

    /// Takes `items` in order, waiting while the sink is full.
    async fn send(&self, items: Vec<Item>) -> Result<Accepted, SinkError>;

    /// The sink's counters now.
    fn stats(&self) -> SinkStats;

    /// Sends what the sink holds now instead of waiting for batches to
    /// fill, and returns once everything it was given before the call has
    /// settled. A pipeline whose input has ended calls it: nothing more is
    /// coming to fill a batch. Nothing to do by default.
    async fn flush(&self) {}

    /// Stops taking items and settles what it holds within `deadline`;
    /// whatever cannot be delivered by then is dead-lettered. Nothing to
    /// do by default.
    async fn shutdown(&self, deadline: Duration) {
        let _ = deadline;
    }
}
