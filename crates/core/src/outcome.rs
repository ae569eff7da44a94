//! What comes back for a record: an [`Outcome`], through a [`Receipt`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

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
    /// The name in dead letters and statistics (`retries_exhausted`, …).
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

/// Where a delivered record went: the ids the service answered with, if
/// any. One pointer wide, so that an [`Outcome`] moves cheaply through the
/// acknowledgements, and shared, so that the user records of one
/// aggregated record share it; a sink that learns no ids (stdout) makes it
/// with [`Delivery::default`], which allocates nothing.
///
/// ```
/// use shardline_core::Delivery;
///
/// let kinesis = Delivery::kinesis(Some("shardId-000000000001".into()), Some("4959".into()));
/// assert_eq!(kinesis.shard_id(), Some("shardId-000000000001"));
/// assert_eq!(kinesis.record_id(), None);
/// assert_eq!(Delivery::default().sequence_number(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Delivery(Option<Arc<DeliveryIds>>);

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct DeliveryIds {
    shard_id: Option<String>,
    sequence_number: Option<String>,
    record_id: Option<String>,
}

impl Delivery {
    fn of(ids: DeliveryIds) -> Self {
        if ids == DeliveryIds::default() {
            Delivery(None)
        } else {
            Delivery(Some(Arc::new(ids)))
        }
    }

    /// A Kinesis record: the shard that stored it and its sequence number
    /// in that shard.
    pub fn kinesis(shard_id: Option<String>, sequence_number: Option<String>) -> Self {
        Delivery::of(DeliveryIds {
            shard_id,
            sequence_number,
            record_id: None,
        })
    }

    /// A Firehose record: its record id.
    pub fn firehose(record_id: Option<String>) -> Self {
        Delivery::of(DeliveryIds {
            record_id,
            ..DeliveryIds::default()
        })
    }

    /// Kinesis: the shard that stored it.
    pub fn shard_id(&self) -> Option<&str> {
        self.0.as_ref()?.shard_id.as_deref()
    }

    /// Kinesis: its sequence number in that shard.
    pub fn sequence_number(&self) -> Option<&str> {
        self.0.as_ref()?.sequence_number.as_deref()
    }

    /// Firehose: the record id.
    pub fn record_id(&self) -> Option<&str> {
        self.0.as_ref()?.record_id.as_deref()
    }
}

/// What became of a record. A record is *settled* when it was delivered or
/// durably written to the dead-letter sink: a source may then move its
/// checkpoint past it. `Failed` is not settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The service stored the record.
    Delivered(Delivery),
    /// The record will not be delivered: it was written to the dead-letter
    /// sink, or, for a producer built without one, it is handed back in
    /// `record` for the caller to keep.
    DeadLettered {
        /// Why it was not delivered.
        reason: DeadLetterReason,
        /// The service's error code for the last failure, if any
        /// (`ResourceNotFoundException`).
        error_code: Option<String>,
        /// The last failure, one line, if any.
        error_message: Option<String>,
        /// The record itself when the producer has no dead-letter sink;
        /// `None` when it was written to one.
        record: Option<Box<crate::Record>>,
    },
    /// Neither delivered nor dead-lettered — the dead-letter sink could not
    /// be written, or the sink stopped. The record must be read again
    /// (a source keeps its checkpoint before it).
    Failed {
        /// What went wrong.
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
///
/// A sink makes one with [`Receipt::new`], keeps the [`Reply`] with the
/// record, and answers through it once the record settles or fails; a
/// reply dropped unanswered makes the receipt resolve to
/// [`Outcome::Failed`].
///
/// ```
/// use shardline_core::{Delivery, Outcome, Receipt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (reply, receipt) = Receipt::new();
/// reply.send(Outcome::Delivered(Delivery::default()));
/// assert!(receipt.await.is_settled());
///
/// let (reply, receipt) = Receipt::new();
/// drop(reply);
/// assert!(!receipt.await.is_settled());
/// # }
/// ```
#[derive(Debug)]
pub struct Receipt {
    state: State,
}

#[derive(Debug)]
enum State {
    /// Resolved when it was made; taken by the first poll.
    Ready(Option<Outcome>),
    Waiting(oneshot::Receiver<Outcome>),
}

/// The sink's end of a [`Receipt`]: answered once, with the record's
/// outcome.
#[derive(Debug)]
pub struct Reply(oneshot::Sender<Outcome>);

impl Reply {
    /// Resolves the receipt. Nobody waiting for it is not an error.
    pub fn send(self, outcome: Outcome) {
        let _ = self.0.send(outcome);
    }
}

impl Receipt {
    /// A receipt and the reply that resolves it.
    pub fn new() -> (Reply, Receipt) {
        let (tx, rx) = oneshot::channel();
        let receipt = Receipt {
            state: State::Waiting(rx),
        };
        (Reply(tx), receipt)
    }

    /// A receipt that has resolved already (a record written to stdout, a
    /// rejection written to the dead-letter file); it allocates nothing.
    pub fn ready(outcome: Outcome) -> Receipt {
        Receipt {
            state: State::Ready(Some(outcome)),
        }
    }

    /// The outcome if the record has settled or failed, without waiting.
    /// A receipt answers once: after it has given its outcome, here or as a
    /// future, it reports the record failed.
    pub fn try_outcome(&mut self) -> Option<Outcome> {
        match &mut self.state {
            State::Ready(outcome) => Some(outcome.take().unwrap_or_else(stopped)),
            State::Waiting(rx) => match rx.try_recv() {
                Ok(outcome) => Some(outcome),
                Err(oneshot::error::TryRecvError::Empty) => None,
                Err(oneshot::error::TryRecvError::Closed) => Some(stopped()),
            },
        }
    }
}

fn stopped() -> Outcome {
    Outcome::Failed {
        message: "the sink stopped before the record settled".into(),
    }
}

impl Future for Receipt {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        match &mut self.state {
            State::Ready(outcome) => Poll::Ready(outcome.take().unwrap_or_else(stopped)),
            State::Waiting(rx) => Pin::new(rx)
                .poll(cx)
                .map(|result| result.unwrap_or_else(|_| stopped())),
        }
    }
}
