//! Acknowledgements: receipts awaited in the order their input was read,
//! batch by batch, so a source learns the longest settled prefix of what
//! it read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use shardline_core::{Outcome, Receipt, SourceCounters};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Batches waiting for their receipts at most. Past it the reader waits:
/// a record that keeps retrying for minutes holds up the checkpoint of
/// everything read after it, and must not let what is read after it pile
/// up in memory too. With batches of up to 4,096 lines, 16 is 64 Ki lines.
pub const ACK_QUEUE_BATCHES: usize = 16;

/// One input's turn among the acknowledgements: a receipt to await, or
/// nothing to wait for (a blank line).
type Turn<P> = (Option<Receipt>, P);

/// One batch's inputs in read order, and when the batch was read.
struct Batch<P> {
    turns: Vec<Turn<P>>,
    read_at: Instant,
}

/// What became of everything pushed into [`Acknowledgements`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckSummary {
    /// Delivered by the service.
    pub delivered: u64,
    /// Durably written to the dead-letter sink.
    pub dead_lettered: u64,
    /// Settled with nothing to send (a blank line).
    pub settled_directly: u64,
    /// Neither delivered nor dead-lettered: the producer stopped or the
    /// dead-letter sink failed. Nothing at or after the first of them was
    /// reported settled — that input must be read again.
    pub failed: u64,
    /// Why the first failure failed.
    pub first_failure: Option<String>,
}

/// Follows the receipts of the records made from a source's input, in the
/// order the input was read, and calls `on_settled` with positions once
/// they *and everything before them* are settled — a run of them at a
/// time. After the first [`Outcome::Failed`] it reports nothing more: a
/// checkpoint never moves past input that is neither delivered nor
/// dead-lettered.
///
/// Cheap per record: one task takes a batch at a time and awaits its
/// receipts one after another (a receipt that settled early costs nothing
/// to await); the settled positions go to `on_settled` in one call per
/// batch, or sooner when a receipt has to be waited for. At most
/// [`ACK_QUEUE_BATCHES`] batches wait: [`Acknowledgements::push`] waits for
/// room, which holds the reader back.
///
/// With [`Acknowledgements::measured`], each batch's latency — from when
/// its input was read to when it settled in turn — goes to the source's
/// histogram, once for each of its records.
#[derive(Debug)]
pub struct Acknowledgements<P> {
    tx: mpsc::Sender<Batch<P>>,
    outstanding: Arc<AtomicU64>,
    task: JoinHandle<AckSummary>,
    failure: watch::Receiver<Option<String>>,
    settlements: watch::Receiver<u64>,
}

impl<P> std::fmt::Debug for Batch<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("inputs", &self.turns.len())
            .finish_non_exhaustive()
    }
}

impl<P: Send + 'static> Acknowledgements<P> {
    /// Starts following receipts on the current Tokio runtime.
    pub fn spawn(on_settled: impl FnMut(Vec<P>) + Send + 'static) -> Self {
        Self::start(on_settled, None)
    }

    /// As [`Acknowledgements::spawn`], and records each settled record's
    /// latency in `counters`.
    pub fn measured(
        on_settled: impl FnMut(Vec<P>) + Send + 'static,
        counters: Arc<SourceCounters>,
    ) -> Self {
        Self::start(on_settled, Some(counters))
    }

    fn start(
        on_settled: impl FnMut(Vec<P>) + Send + 'static,
        counters: Option<Arc<SourceCounters>>,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<Batch<P>>(ACK_QUEUE_BATCHES);
        let outstanding = Arc::new(AtomicU64::new(0));
        let (failed, failure) = watch::channel(None);
        let (settled, settlements) = watch::channel(0);
        let on_settled = Reporter {
            on_settled,
            settled,
        };
        let task = tokio::spawn(follow(
            rx,
            on_settled,
            counters,
            outstanding.clone(),
            failed,
        ));
        Acknowledgements {
            tx,
            outstanding,
            task,
            failure,
            settlements,
        }
    }

    /// Resolves with the reason of the first record that was neither
    /// delivered nor dead-lettered: from then on nothing read after it can
    /// be checkpointed, so reading on would only pile up work that a
    /// restart must redo. Pending until then (and for good if the
    /// following task has ended without a failure).
    pub async fn failed(&self) -> String {
        let mut failure = self.failure.clone();
        let reason = failure
            .wait_for(Option::is_some)
            .await
            .map(|reason| reason.clone().unwrap_or_default());
        match reason {
            Ok(reason) => reason,
            Err(_) => std::future::pending().await,
        }
    }

    /// Changes each time positions are handed to the source as settled;
    /// its value counts the positions so far: a cue to checkpoint soon.
    pub fn settlements(&self) -> watch::Receiver<u64> {
        self.settlements.clone()
    }

    /// Follows a batch's inputs, read at `read_at`, in read order: each
    /// with the receipt of what was made of it, or `None` when it held
    /// nothing to send. Waits while [`ACK_QUEUE_BATCHES`] batches wait.
    pub async fn push(&self, turns: Vec<(Option<Receipt>, P)>, read_at: Instant) {
        if turns.is_empty() {
            return;
        }
        let count = turns.len() as u64;
        self.outstanding.fetch_add(count, Ordering::Relaxed);
        if self.tx.send(Batch { turns, read_at }).await.is_err() {
            self.outstanding.fetch_sub(count, Ordering::Relaxed);
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

/// The source's settler, and the signal that it was called.
struct Reporter<F> {
    on_settled: F,
    settled: watch::Sender<u64>,
}

impl<F> Reporter<F> {
    fn call<P>(&mut self, positions: Vec<P>)
    where
        F: FnMut(Vec<P>),
    {
        let count = positions.len() as u64;
        (self.on_settled)(positions);
        self.settled.send_modify(|n| *n += count);
    }
}

/// The task: each batch's receipts in order, settled runs to `on_settled`.
async fn follow<P, F: FnMut(Vec<P>)>(
    mut rx: mpsc::Receiver<Batch<P>>,
    mut on_settled: Reporter<F>,
    counters: Option<Arc<SourceCounters>>,
    outstanding: Arc<AtomicU64>,
    failed: watch::Sender<Option<String>>,
) -> AckSummary {
    let mut summary = AckSummary::default();
    while let Some(Batch { turns, read_at }) = rx.recv().await {
        let count = turns.len() as u64;
        let mut settled = Vec::with_capacity(turns.len());
        let mut settled_count = 0u64;
        for (receipt, position) in turns {
            let outcome = match receipt {
                None => None,
                Some(mut receipt) => Some(match receipt.try_outcome() {
                    Some(outcome) => outcome,
                    None => {
                        // A wait: the run settled so far is reported first.
                        report(&mut settled, &mut on_settled, &summary);
                        receipt.await
                    }
                }),
            };
            match outcome {
                None => summary.settled_directly += 1,
                Some(Outcome::Delivered(_)) => summary.delivered += 1,
                Some(Outcome::DeadLettered { .. }) => summary.dead_lettered += 1,
                Some(Outcome::Failed { message }) => {
                    summary.failed += 1;
                    if summary.first_failure.is_none() {
                        tracing::error!(
                            "a record was neither delivered nor dead-lettered ({message}); \
                             the checkpoint stays before it"
                        );
                        failed.send_replace(Some(message.clone()));
                        summary.first_failure = Some(message);
                    }
                    continue;
                }
            }
            if summary.failed == 0 {
                settled.push(position);
                settled_count += 1;
            }
        }
        report(&mut settled, &mut on_settled, &summary);
        outstanding.fetch_sub(count, Ordering::Relaxed);
        if let Some(counters) = &counters
            && settled_count > 0
        {
            counters.latency().record(read_at.elapsed(), settled_count);
        }
    }
    summary
}

/// Hands the settled run to the source, unless a failure came before it.
fn report<P, F: FnMut(Vec<P>)>(
    settled: &mut Vec<P>,
    on_settled: &mut Reporter<F>,
    summary: &AckSummary,
) {
    if !settled.is_empty() && summary.failed == 0 {
        on_settled.call(std::mem::take(settled));
    }
}
