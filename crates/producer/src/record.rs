//! What goes in (a [`Record`]) and what comes back (an [`Outcome`] through
//! a [`Receipt`]).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use shardline_partition_key::{ExplicitHashKey, PartitionKey};
use tokio::sync::oneshot;

/// The name of the source a record came from (`web_logs`, `iot_sensors`,
/// `database_cdc`, …): counted separately in the statistics and written
/// into dead letters. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceName(Arc<str>);

impl SourceName {
    pub fn new(name: &str) -> Self {
        SourceName(Arc::from(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for SourceName {
    fn from(name: &str) -> Self {
        SourceName::new(name)
    }
}

/// One record to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub data: Bytes,
    pub partition_key: PartitionKey,
    pub explicit_hash_key: Option<ExplicitHashKey>,
    pub source: SourceName,
}

impl Record {
    /// A record with data, key and source, and no explicit hash key.
    pub fn new(data: impl Into<Bytes>, partition_key: PartitionKey, source: SourceName) -> Self {
        Record {
            data: data.into(),
            partition_key,
            explicit_hash_key: None,
            source,
        }
    }
}

/// Why a record went to the dead-letter sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeadLetterReason {
    /// Larger than the service accepts for one record.
    RecordTooLarge,
    /// The service rejected it for good (validation, missing stream, access
    /// denied, KMS).
    Fatal,
    /// Every allowed attempt failed with a retryable error.
    RetriesExhausted,
    /// The producer shut down before the record could be delivered.
    ShutdownDeadline,
    /// A source rejected the record before sending (schema validation,
    /// parse failure); written through the same sink.
    Rejected,
}

impl DeadLetterReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::RecordTooLarge => "record_too_large",
            DeadLetterReason::Fatal => "fatal",
            DeadLetterReason::RetriesExhausted => "retries_exhausted",
            DeadLetterReason::ShutdownDeadline => "shutdown_deadline",
            DeadLetterReason::Rejected => "rejected",
        }
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a delivered record went.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Delivery {
    /// Kinesis: the shard that stored it.
    pub shard_id: Option<String>,
    /// Kinesis: its sequence number in that shard.
    pub sequence_number: Option<String>,
    /// Firehose: the record id.
    pub record_id: Option<String>,
}

/// What became of a record. A record is *settled* when it was delivered or
/// durably written to the dead-letter sink: a source may then move its
/// checkpoint past it. `Failed` is not settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered(Delivery),
    DeadLettered {
        reason: DeadLetterReason,
        error_code: Option<String>,
    },
    /// Neither delivered nor dead-lettered — the dead-letter sink could not
    /// be written, or the producer stopped. The record must be read again
    /// (a source keeps its checkpoint before it).
    Failed {
        message: String,
    },
}

impl Outcome {
    /// Delivered or durably dead-lettered.
    pub fn is_settled(&self) -> bool {
        !matches!(self, Outcome::Failed { .. })
    }
}

/// The future outcome of one sent record.
#[derive(Debug)]
pub struct Receipt {
    rx: oneshot::Receiver<Outcome>,
}

impl Receipt {
    pub(crate) fn new() -> (oneshot::Sender<Outcome>, Receipt) {
        let (tx, rx) = oneshot::channel();
        (tx, Receipt { rx })
    }

    /// The outcome if the record has settled or failed, without waiting.
    pub fn try_outcome(&mut self) -> Option<Outcome> {
        match self.rx.try_recv() {
            Ok(outcome) => Some(outcome),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(stopped()),
        }
    }
}

fn stopped() -> Outcome {
    Outcome::Failed {
        message: "the producer stopped before the record settled".into(),
    }
}

impl Future for Receipt {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|result| result.unwrap_or_else(|_| stopped()))
    }
}
