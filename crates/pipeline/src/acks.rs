//! Acknowledgements: receipts awaited in the order their input was read,
//! so a source learns the longest settled prefix of what it read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shardline_core::{Outcome, Receipt, SourceCounters};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

enum Pending<P> {
    Receipt(Receipt, P, Instant),
    Settled(P, Instant),
}

/// Latencies are handed to the shared histogram in groups of at most this
/// many (or sooner when no receipt is waiting): one lock per group.
const LATENCY_GROUP: usize = 1024;

/// What became of everything pushed into [`Acknowledgements`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckSummary {
    /// Delivered by the service.
    pub delivered: u64,
    /// Durably written to the dead-letter sink.
    pub dead_lettered: u64,
    /// Settled by the caller directly (written to stdout, nothing to send).
    pub settled_directly: u64,
    /// Neither delivered nor dead-lettered: the producer stopped or the
    /// dead-letter sink failed. Nothing at or after the first of them was
    /// reported settled — that input must be read again.
    pub failed: u64,
    /// Why the first failure failed.
    pub first_failure: Option<String>,
}

/// Follows the receipts of the records made from a source's input, in the
/// order the input was read, and calls `on_settled` with each position
/// once it *and everything before it* is settled. After the first
/// [`Outcome::Failed`] it reports nothing more: a checkpoint never moves
/// past input that is neither delivered nor dead-lettered.
///
/// Cheap per record: one task awaits the receipts one after another; a
/// receipt that settled early costs nothing to await.
///
/// With [`Acknowledgements::measured`], each settled record's latency —
/// from when its input was read to when it settled in turn — goes to the
/// source's histogram.
#[derive(Debug)]
pub struct Acknowledgements<P> {
    tx: mpsc::UnboundedSender<Pending<P>>,
    outstanding: Arc<AtomicU64>,
    task: JoinHandle<AckSummary>,
}

impl<P> std::fmt::Debug for Pending<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Pending::Receipt(..) => "Receipt",
            Pending::Settled(..) => "Settled",
        })
    }
}

impl<P: Send + 'static> Acknowledgements<P> {
    /// Starts following receipts on the current Tokio runtime.
    pub fn spawn(on_settled: impl FnMut(P) + Send + 'static) -> Self {
        Self::start(on_settled, None)
    }

    /// As [`Acknowledgements::spawn`], and records each settled record's
    /// latency in `counters`.
    pub fn measured(
        on_settled: impl FnMut(P) + Send + 'static,
        counters: Arc<SourceCounters>,
    ) -> Self {
        Self::start(on_settled, Some(counters))
    }

    fn start(
        mut on_settled: impl FnMut(P) + Send + 'static,
        counters: Option<Arc<SourceCounters>>,
    ) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Pending<P>>();
        let outstanding = Arc::new(AtomicU64::new(0));
        let count = outstanding.clone();
        let task = tokio::spawn(async move {
            let mut summary = AckSummary::default();
            let mut latencies: Vec<Duration> = Vec::new();
            while let Some(pending) = rx.recv().await {
                let (outcome, position, read_at) = match pending {
                    Pending::Receipt(receipt, position, read_at) => {
                        (Some(receipt.await), position, read_at)
                    }
                    Pending::Settled(position, read_at) => (None, position, read_at),
                };
                count.fetch_sub(1, Ordering::Relaxed);
                let settled = match outcome {
                    None => {
                        summary.settled_directly += 1;
                        true
                    }
                    Some(Outcome::Delivered(_)) => {
                        summary.delivered += 1;
                        true
                    }
                    Some(Outcome::DeadLettered { .. }) => {
                        summary.dead_lettered += 1;
                        true
                    }
                    Some(Outcome::Failed { message }) => {
                        summary.failed += 1;
                        if summary.first_failure.is_none() {
                            tracing::error!(
                                "a record was neither delivered nor dead-lettered ({message}); \
                                 the checkpoint stays before it"
                            );
                            summary.first_failure = Some(message);
                        }
                        false
                    }
                };
                if settled && summary.failed == 0 {
                    on_settled(position);
                    if let Some(counters) = &counters {
                        latencies.push(read_at.elapsed());
                        if latencies.len() >= LATENCY_GROUP || rx.is_empty() {
                            counters.settled(&latencies);
                            latencies.clear();
                        }
                    }
                }
            }
            if let Some(counters) = &counters {
                counters.settled(&latencies);
            }
            summary
        });
        Acknowledgements {
            tx,
            outstanding,
            task,
        }
    }

    /// Follows the receipt of the record made from the input at `position`,
    /// read at `read_at`.
    pub fn push(&self, receipt: Receipt, position: P, read_at: Instant) {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        if self
            .tx
            .send(Pending::Receipt(receipt, position, read_at))
            .is_err()
        {
            self.outstanding.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Input at `position` is settled already (written to stdout, or it
    /// held nothing to send); it is reported in its turn.
    pub fn settled(&self, position: P, read_at: Instant) {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Pending::Settled(position, read_at)).is_err() {
            self.outstanding.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Receipts not yet resolved.
    pub fn outstanding(&self) -> u64 {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Waits for every receipt pushed so far and returns the summary.
    pub async fn finish(self) -> AckSummary {
        drop(self.tx);
        self.task.await.unwrap_or_else(|e| AckSummary {
            failed: 1,
            first_failure: Some(format!("the acknowledgement task failed: {e}")),
            ..AckSummary::default()
        })
    }
}
