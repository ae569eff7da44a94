//! Source → process → sink → acknowledgements → checkpoint.

use std::sync::Arc;
use std::time::Duration;

use shardline_core::{
    DeadLetter, Input, Item, Position, Process, Processed, Sink, SinkError, Source, SourceCounters,
    SourceError, SourceName,
};
use tokio::sync::watch;

use crate::acks::{AckSummary, Acknowledgements};

/// How often a pipeline persists its source's settled positions while it
/// runs (and once more at the end). Kinesis Agent checkpoints on a similar
/// period; what is lost to a crash is only re-sent, never skipped.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// Below this many inputs per worker a batch is processed on the calling
/// task: starting threads would cost more than it saves.
const MIN_INPUTS_PER_WORKER: usize = 256;

/// Why a pipeline stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The sink could not take a batch (writing to stdout failed).
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// Processing a batch failed as a whole; nothing of it or after it is
    /// settled, so it is read again after a restart.
    #[error("processing a batch failed: {0}")]
    Processing(String),
}

/// What a pipeline did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineSummary {
    /// Inputs read.
    pub read: u64,
    /// Records made and handed to the sink.
    pub records: u64,
    /// Inputs rejected (dead-lettered).
    pub rejected: u64,
    /// Inputs with nothing to send.
    pub skipped: u64,
    /// Inputs read but never handed to the sink, which had shut down and
    /// refused them: not settled, so never checkpointed.
    pub unsent: u64,
    /// How the receipts resolved.
    pub acks: AckSummary,
}

/// One source's path to the sink: read → process (on `workers` threads) →
/// send or reject → follow receipts → checkpoint what settled.
pub struct Pipeline<S: Source> {
    source: S,
    processor: Arc<dyn Process>,
    sink: Arc<dyn Sink>,
    name: SourceName,
    counters: Arc<SourceCounters>,
    workers: usize,
    checkpoint_interval: Duration,
    reading_done: Option<tokio::sync::oneshot::Sender<()>>,
}

impl<S: Source> std::fmt::Debug for Pipeline<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("name", &self.name)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

impl<S: Source> Pipeline<S> {
    pub fn new(
        source: S,
        processor: Arc<dyn Process>,
        sink: Arc<dyn Sink>,
        name: SourceName,
        counters: Arc<SourceCounters>,
    ) -> Self {
        Pipeline {
            source,
            processor,
            sink,
            name,
            counters,
            workers: 1,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            reading_done: None,
        }
    }

    /// Told once the pipeline has stopped reading and has handed every
    /// input it read to the sink: from then on the sink's owner may
    /// shut it down without leaving a read batch half sent (and the
    /// counters unreconciled).
    pub fn reading_done(mut self, done: tokio::sync::oneshot::Sender<()>) -> Self {
        self.reading_done = Some(done);
        self
    }

    /// Threads that process a batch's inputs at once (`parse_workers`);
    /// order is kept. Never more than the CPUs the process may run on
    /// (its affinity, as `taskset` or a container's CPU set leaves it):
    /// more threads than that only take turns.
    pub fn workers(mut self, workers: usize) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        self.workers = workers.min(cpus).max(1);
        self
    }

    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.checkpoint_interval = interval;
        self
    }

    /// Runs until the source ends or `stop` turns true, then waits for every
    /// record read to settle (the sink's owner bounds that with
    /// [`Sink::shutdown`]), and checkpoints a last time.
    pub async fn run(
        mut self,
        mut stop: watch::Receiver<bool>,
    ) -> Result<PipelineSummary, PipelineError> {
        let acks = Acknowledgements::measured(self.source.settler(), self.counters.clone());
        let mut summary = PipelineSummary::default();
        let mut tick = tokio::time::interval(self.checkpoint_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failure = None;
        let mut ended = false;
        loop {
            if *stop.borrow() {
                break;
            }
            tokio::select! {
                _ = stop.changed() => {}
                _ = tick.tick() => self.source.checkpoint().await?,
                batch = self.source.read() => match batch {
                    Ok(Some(batch)) => match self.forward(batch, &acks, &mut summary).await {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) => { failure = Some(e); break; }
                    },
                    Ok(None) => { ended = true; break; }
                    Err(e) => { failure = Some(e.into()); break; }
                },
            }
        }
        if let Some(done) = self.reading_done.take() {
            let _ = done.send(());
        }
        let finish = acks.finish();
        tokio::pin!(finish);
        // At the end of the input nothing more is coming to fill a batch:
        // what the sink holds goes now, not after its linger.
        let sink = self.sink.clone();
        let flush = async move {
            if ended {
                sink.flush().await;
            }
        };
        tokio::pin!(flush);
        let mut flushed = false;
        summary.acks = loop {
            tokio::select! {
                acks = &mut finish => break acks,
                () = &mut flush, if !flushed => flushed = true,
                _ = tick.tick() => self.source.checkpoint().await?,
            }
        };
        self.source.checkpoint().await?;
        // A failure to close is reported, but never hides the failure that
        // stopped the pipeline.
        let closed = self.source.close().await;
        match (failure, closed) {
            (Some(e), _) => Err(e),
            (None, Err(e)) => Err(e.into()),
            (None, Ok(())) => Ok(summary),
        }
    }

    /// Hands one batch to the sink. `Ok(false)`: the sink is shut down.
    async fn forward(
        &mut self,
        batch: Vec<Input<S::Position>>,
        acks: &Acknowledgements<S::Position>,
        summary: &mut PipelineSummary,
    ) -> Result<bool, PipelineError> {
        let read_at = std::time::Instant::now();
        let bytes: usize = batch.iter().map(|input| input.data.len() + 1).sum();
        self.counters.read(batch.len() as u64, bytes as u64);
        summary.read += batch.len() as u64;
        let processed = process(self.processor.clone(), self.workers, batch).await?;
        let (mut records, mut rejected, mut skipped) = (0u64, 0u64, 0u64);
        for (_, outcome) in &processed {
            match outcome {
                Processed::Record(_) => records += 1,
                Processed::Rejected(_) => rejected += 1,
                Processed::Skip => skipped += 1,
            }
        }
        self.counters.parsed(records);
        self.counters.invalid(rejected);
        self.counters.skipped(skipped);
        summary.records += records;
        summary.rejected += rejected;
        summary.skipped += skipped;
        // The items for the sink, in read order; each input's turn among
        // them, or its position settled at once if it held nothing.
        let count = processed.len();
        let mut items = Vec::with_capacity(count);
        let mut turns = Vec::with_capacity(count);
        for (input, outcome) in processed {
            let item = match outcome {
                Processed::Record(record) => Some(Item::Record(record)),
                Processed::Rejected(message) => {
                    Some(Item::Rejected(rejection(&input, &self.name, message)))
                }
                Processed::Skip => None,
            };
            turns.push((input.position, item.is_some()));
            items.extend(item);
        }
        let accepted = self.sink.send(items).await?;
        let mut receipts = accepted.receipts.into_iter();
        let mut followed = Vec::with_capacity(count);
        let mut refused = false;
        for (i, (position, has_item)) in turns.into_iter().enumerate() {
            if !has_item {
                followed.push((None, position));
                continue;
            }
            if let Some(receipt) = receipts.next() {
                followed.push((Some(receipt), position));
                continue;
            }
            // This input and the rest of the batch are not settled: never
            // checkpointed, read again after a restart — and counted, so
            // that the run does not look complete.
            let unsent = (count - i) as u64;
            summary.unsent += unsent;
            tracing::error!(
                "the sink refused {unsent} input(s) read from {}: {}",
                self.name.as_str(),
                accepted.refused.as_deref().unwrap_or("no reason given")
            );
            refused = true;
            break;
        }
        acks.push(followed, read_at).await;
        Ok(!refused)
    }
}

/// Processes a batch: on the calling task when it is small or the
/// processor is sequential, else on `workers` threads. Borrows nothing of
/// the pipeline across the wait, so a pipeline needs only be `Send`.
async fn process<P: Position>(
    processor: Arc<dyn Process>,
    workers: usize,
    batch: Vec<Input<P>>,
) -> Result<Vec<(Input<P>, Processed)>, PipelineError> {
    let workers = workers.min(batch.len() / MIN_INPUTS_PER_WORKER).max(1);
    if workers == 1 || processor.sequential() {
        let processed = process_run(&*processor, &batch);
        return pair(batch, processed);
    }
    let job = tokio::task::spawn_blocking(move || {
        let processed = process_in_parallel(&*processor, &batch, workers);
        pair(batch, processed)
    });
    // Dropping the batch and going on would let later positions settle
    // past it: stop instead.
    job.await
        .map_err(|e| PipelineError::Processing(e.to_string()))?
}

/// Each input with its result. A processor that answered for more or fewer
/// inputs than it was given stops the pipeline: pairing them anyway would
/// lose inputs or misplace records.
fn pair<P: Position>(
    batch: Vec<Input<P>>,
    processed: Vec<Processed>,
) -> Result<Vec<(Input<P>, Processed)>, PipelineError> {
    if processed.len() != batch.len() {
        return Err(PipelineError::Processing(format!(
            "the processor gave {} results for {} inputs",
            processed.len(),
            batch.len()
        )));
    }
    Ok(batch.into_iter().zip(processed).collect())
}

fn rejection<P: Position>(input: &Input<P>, source: &SourceName, message: String) -> DeadLetter {
    DeadLetter::rejected(&input.data, source, message, input.position.describe())
}

/// Processes `inputs` in order as one run ([`Process::process_run`]).
fn process_run<P: Position>(processor: &dyn Process, inputs: &[Input<P>]) -> Vec<Processed> {
    let mut out = Vec::with_capacity(inputs.len());
    processor.process_run(
        &mut inputs
            .iter()
            .map(|input| (&input.data[..], input.position.origin())),
        &mut out,
    );
    out
}

/// Processes `batch` on `workers` scoped threads, in order.
fn process_in_parallel<P: Position>(
    processor: &dyn Process,
    batch: &[Input<P>],
    workers: usize,
) -> Vec<Processed> {
    let chunk = batch.len().div_ceil(workers).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = batch
            .chunks(chunk)
            .map(|inputs| {
                let handle = scope.spawn(move || process_run(processor, inputs));
                (inputs.len(), handle)
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|(len, handle)| {
                handle.join().unwrap_or_else(|_| {
                    std::iter::repeat_with(|| {
                        Processed::Rejected("processing this input panicked".to_owned())
                    })
                    .take(len)
                    .collect()
                })
            })
            .collect()
    })
}
