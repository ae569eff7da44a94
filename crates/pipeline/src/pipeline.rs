//! Source → process → sink → acknowledgements → checkpoint.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardline_core::{
    DeadLetter, Input, Item, Position, Process, Processed, Sink, SinkError, Source, SourceCounters,
    SourceError, SourceName,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::acks::{AckSummary, Acknowledgements};

/// How often a pipeline asks its source to checkpoint while it runs, come
/// what may (and once more at the end): a source may have settled
/// positions of its own (an idle database's WAL position) and other
/// periodic work. Kinesis Agent checkpoints on a similar period.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// Besides that period, a checkpoint follows each settlement, at most once
/// per this long: a crash then re-sends what was in flight and at most
/// this long's worth of settled input, not a whole period's (with the 1 s
/// period alone, a log file killed 8 times re-sent up to 3,000 lines per
/// kill). It bounds the checkpoint file's writes (each an fsync) to 10 a second.
pub const CHECKPOINT_AFTER_SETTLING: Duration = Duration::from_millis(100);

/// ... or sooner, once this many inputs have settled since the last
/// checkpoint: one PutRecords request's worth (500 entries), so that at any
/// rate a crash repeats about a batch besides what was in flight (at
/// 10,000 changes/s the 100 ms alone let a crash repeat about 1,000).
pub const CHECKPOINT_AFTER_INPUTS: u64 = 500;

/// The shortest time between two checkpoints taken for settled input: at
/// most 100 checkpoint writes (fsyncs) a second, however fast input
/// settles.
pub const CHECKPOINT_MIN_GAP: Duration = Duration::from_millis(10);

/// A batch of fewer inputs, with nothing ahead of it, is processed on the
/// pipeline's own task: handing it to a thread would cost more than it
/// saves.
const MIN_INPUTS_PER_JOB: usize = 256;

/// The batches a pipeline asked for `requested` workers processes at
/// once: never more than the CPUs the process may run on, never fewer than
/// one (see [`Pipeline::workers`]).
pub fn parse_threads(requested: usize) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    requested.min(cpus).max(1)
}

/// Why a pipeline stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The source failed to read or to checkpoint.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The sink could not take a batch (writing to stdout failed).
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// A record was neither delivered nor dead-lettered (the dead-letter
    /// file could not be written): nothing read after it can be
    /// checkpointed, so the pipeline stops reading rather than go on
    /// without a checkpoint. A restart reads it again.
    #[error(
        "a record could be neither delivered nor dead-lettered ({0}); stopped reading: nothing after it could be checkpointed"
    )]
    Unsettled(String),
    /// Processing a batch failed as a whole; nothing of it or after it is
    /// settled, so it is read again after a restart.
    #[error("processing a batch failed: {0}")]
    Processing(String),
    /// The pipeline's task panicked; nothing after the last checkpoint is
    /// settled, so it is read again after a restart.
    #[error("the pipeline stopped on a panic: {0}")]
    Panicked(String),
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
    /// A pipeline from `source` through `process` into `sink`, checkpointing
    /// what settles.
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

    /// Batches processed at once (`parse_workers`), each on a thread of
    /// its own; they reach the sink in read order. Never more than the
    /// CPUs the process may run on (its affinity, as `taskset` or a
    /// container's CPU set leaves it): more threads than that only take
    /// turns.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = parse_threads(workers);
        self
    }

    /// How often the position is saved while records settle.
    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.checkpoint_interval = interval;
        self
    }

    /// Runs until the source ends or `stop` turns true, then waits for every
    /// record read to settle (the sink's owner bounds that with
    /// [`Sink::shutdown`]), and checkpoints a last time.
    ///
    /// Up to `workers` batches are processed at once, each on a thread of
    /// its own, while the batches before them go to the sink: reading,
    /// processing and sending overlap. Batches reach the sink in read
    /// order whatever order their processing ends in.
    pub async fn run(
        mut self,
        mut stop: watch::Receiver<bool>,
    ) -> Result<PipelineSummary, PipelineError> {
        let acks = Acknowledgements::measured(self.source.settler(), self.counters.clone());
        let mut summary = PipelineSummary::default();
        let mut tick = tokio::time::interval(self.checkpoint_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut prompt = Prompt::new(acks.settlements(), self.checkpoint_interval);
        let mut failure = None;
        let mut ended = false;
        let mut jobs: VecDeque<Job<S::Position>> = VecDeque::new();
        let mut sending = true;
        loop {
            if *stop.borrow() {
                break;
            }
            tokio::select! {
                _ = stop.changed() => {}
                _ = tick.tick() => self.checkpoint(&mut prompt).await?,
                () = prompt.due() => self.checkpoint(&mut prompt).await?,
                reason = acks.failed() => {
                    failure = Some(PipelineError::Unsettled(reason));
                    break;
                }
                done = first(&mut jobs), if !jobs.is_empty() => {
                    let read_at = jobs.pop_front().map_or_else(Instant::now, |job| job.read_at);
                    match self.forward(done, read_at, &acks, &mut prompt, &mut summary).await {
                        Ok(true) => {}
                        Ok(false) => { sending = false; break; }
                        Err(e) => { failure = Some(e); break; }
                    }
                }
                batch = self.source.read(), if jobs.len() < self.workers => match batch {
                    Ok(Some(batch)) => {
                        let read_at = Instant::now();
                        self.count_read(&batch, &mut summary);
                        if let Some(batch) = self.start(batch, read_at, &mut jobs) {
                            let processed = process_run(&*self.processor, batch);
                            match self.forward(processed, read_at, &acks, &mut prompt, &mut summary).await {
                                Ok(true) => {}
                                Ok(false) => { sending = false; break; }
                                Err(e) => { failure = Some(e); break; }
                            }
                        }
                    }
                    Ok(None) => { ended = true; break; }
                    Err(e) => { failure = Some(e.into()); break; }
                },
            }
        }
        // Batches read and being processed are handed on in order; after a
        // failure or a refusal they are only counted, never settled.
        while let Some(job) = jobs.pop_front() {
            let (read_at, inputs) = (job.read_at, job.inputs);
            let done = job_result(job.handle.await);
            if failure.is_some() || !sending {
                summary.unsent += inputs;
                continue;
            }
            match self
                .forward(done, read_at, &acks, &mut prompt, &mut summary)
                .await
            {
                Ok(true) => {}
                Ok(false) => sending = false,
                Err(e) => failure = Some(e),
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
                _ = tick.tick() => self.checkpoint(&mut prompt).await?,
                () = prompt.due() => self.checkpoint(&mut prompt).await?,
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

    /// Checkpoints the source: everything settled so far is in it.
    async fn checkpoint(&mut self, prompt: &mut Prompt) -> Result<(), SourceError> {
        checkpoint(&mut self.source, prompt).await
    }

    fn count_read(&self, batch: &[Input<S::Position>], summary: &mut PipelineSummary) {
        let bytes: usize = batch.iter().map(|input| input.data.len() + 1).sum();
        self.counters.read(batch.len() as u64, bytes as u64);
        summary.read += batch.len() as u64;
    }

    /// Starts processing `batch` on a thread of its own, or gives it back
    /// to be processed here: when there is one worker, when the processor
    /// is sequential, or when the batch is small and nothing is ahead of it
    /// (a thread would cost more than it saves).
    fn start(
        &self,
        batch: Vec<Input<S::Position>>,
        read_at: Instant,
        jobs: &mut VecDeque<Job<S::Position>>,
    ) -> Option<Vec<Input<S::Position>>> {
        if self.workers == 1
            || self.processor.sequential()
            || (jobs.is_empty() && batch.len() < MIN_INPUTS_PER_JOB)
        {
            return Some(batch);
        }
        let processor = self.processor.clone();
        let inputs = batch.len() as u64;
        let handle = tokio::task::spawn_blocking(move || process_run(&*processor, batch));
        jobs.push_back(Job {
            handle,
            read_at,
            inputs,
        });
        None
    }

    /// Hands one processed batch to the sink. `Ok(false)`: the sink is
    /// shut down.
    async fn forward(
        &mut self,
        processed: Done<S::Position>,
        read_at: Instant,
        acks: &Acknowledgements<S::Position>,
        prompt: &mut Prompt,
        summary: &mut PipelineSummary,
    ) -> Result<bool, PipelineError> {
        let processed = processed?;
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
        // The sink and the acknowledgement queue may make this wait (a full
        // queue is backpressure); what settles meanwhile is checkpointed
        // meanwhile, or a crash during a burst would repeat it.
        let sink = self.sink.clone();
        let (accepted, sent_checkpoint) =
            checkpointing(&mut self.source, prompt, sink.send(items)).await;
        let accepted = accepted?;
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
        let ((), pushed_checkpoint) =
            checkpointing(&mut self.source, prompt, acks.push(followed, read_at)).await;
        sent_checkpoint?;
        pushed_checkpoint?;
        Ok(!refused)
    }
}

/// Checkpoints `source`: everything settled so far is in it.
async fn checkpoint<S: Source>(source: &mut S, prompt: &mut Prompt) -> Result<(), SourceError> {
    let settled = prompt.settled();
    source.checkpoint().await?;
    prompt.done(settled);
    Ok(())
}

/// Waits for `work`, checkpointing `source` whenever a checkpoint falls due
/// meanwhile. A checkpoint that fails stops the checkpointing, never the
/// work: a batch half handed to the sink is handed over whole and its
/// records followed; the caller reports the error after.
async fn checkpointing<S: Source, T>(
    source: &mut S,
    prompt: &mut Prompt,
    work: impl Future<Output = T>,
) -> (T, Result<(), SourceError>) {
    tokio::pin!(work);
    loop {
        tokio::select! {
            biased;
            out = &mut work => return (out, Ok(())),
            () = prompt.due() => {
                if let Err(e) = checkpoint(source, prompt).await {
                    return (work.await, Err(e));
                }
            }
        }
    }
}

/// A processed batch: each input with its result.
type Done<P> = Result<Vec<(Input<P>, Processed)>, PipelineError>;

/// A batch being processed on a thread of its own.
struct Job<P> {
    handle: JoinHandle<Done<P>>,
    read_at: Instant,
    inputs: u64,
}

/// The result of the first job in line. Cancel-safe: the job stays in line
/// until it is taken out after this resolves.
async fn first<P: Position>(jobs: &mut VecDeque<Job<P>>) -> Done<P> {
    match jobs.front_mut() {
        Some(job) => job_result((&mut job.handle).await),
        None => std::future::pending().await,
    }
}

/// A job that panicked stops the pipeline, as a panic on the pipeline's
/// own task does: dropping its batch and going on would let later
/// positions settle past it.
fn job_result<P>(joined: Result<Done<P>, tokio::task::JoinError>) -> Done<P> {
    joined.map_err(|e| PipelineError::Panicked(e.to_string()))?
}

/// Each input with its result. A processor that answered for more or fewer
/// inputs than it was given stops the pipeline: pairing them anyway would
/// lose inputs or misplace records.
fn pair<P: Position>(batch: Vec<Input<P>>, processed: Vec<Processed>) -> Done<P> {
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

/// Processes `batch` in order as one run ([`Process::process_run`]), each
/// input with its result.
fn process_run<P: Position>(processor: &dyn Process, batch: Vec<Input<P>>) -> Done<P> {
    let mut out = Vec::with_capacity(batch.len());
    processor.process_run(
        &mut batch
            .iter()
            .map(|input| (&input.data[..], input.position.origin())),
        &mut out,
    );
    pair(batch, out)
}

/// When the next checkpoint after a settlement is due: once something has
/// settled since the last checkpoint, [`CHECKPOINT_AFTER_SETTLING`] after
/// that last one (or the checkpoint interval, if that is shorter) — or,
/// once [`CHECKPOINT_AFTER_INPUTS`] have settled, [`CHECKPOINT_MIN_GAP`]
/// after it.
struct Prompt {
    /// Inputs settled so far (see [`Acknowledgements::settlements`]).
    settlements: watch::Receiver<u64>,
    gap: Duration,
    /// What had settled when the last checkpoint began.
    checkpointed: u64,
    last: tokio::time::Instant,
}

impl Prompt {
    fn new(settlements: watch::Receiver<u64>, interval: Duration) -> Self {
        Prompt {
            settlements,
            gap: CHECKPOINT_AFTER_SETTLING.min(interval),
            checkpointed: 0,
            last: tokio::time::Instant::now(),
        }
    }

    /// Resolves when a checkpoint is due for what settled since the last
    /// one. Cancel-safe: it keeps no state of its own between polls.
    async fn due(&mut self) {
        loop {
            let settled = *self.settlements.borrow_and_update();
            let new = settled.saturating_sub(self.checkpointed);
            if new == 0 {
                if self.settlements.changed().await.is_err() {
                    // The acknowledgements have ended: the final
                    // checkpoint follows.
                    std::future::pending::<()>().await;
                }
                continue;
            }
            let wait = if new >= CHECKPOINT_AFTER_INPUTS {
                CHECKPOINT_MIN_GAP.min(self.gap)
            } else {
                self.gap
            };
            tokio::select! {
                () = tokio::time::sleep_until(self.last + wait) => return,
                // More settled: the wait may be shorter now.
                changed = self.settlements.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep_until(self.last + wait).await;
                        return;
                    }
                }
            }
        }
    }

    /// What has settled now: a checkpoint taken after this holds it.
    fn settled(&self) -> u64 {
        *self.settlements.borrow()
    }

    /// A checkpoint holding what had settled at `settled` was taken.
    fn done(&mut self, settled: u64) {
        self.checkpointed = settled;
        self.last = tokio::time::Instant::now();
    }
}
