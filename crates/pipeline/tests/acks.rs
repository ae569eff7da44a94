//! Acknowledgement ordering: a source learns its positions as settled in
//! the order it read them, whatever order the sink settles them in, and
//! never past one that is not settled.

// Test code: a failed unwrap is the test failing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shardline_core::{
    Accepted, DeadLetterReason, Delivery, Input, Item, Origin, Outcome, PartitionKey, Position,
    Process, Processed, Receipt, Record, Sink, SinkCounters, SinkError, SinkStats, Source,
    SourceCounters, SourceError, SourceName,
};
use shardline_pipeline::{Acknowledgements, Pipeline};

#[derive(Debug, Clone, PartialEq, Eq)]
struct At(u32);

impl Position for At {
    fn describe(&self) -> BTreeMap<String, String> {
        BTreeMap::from([("at".to_owned(), self.0.to_string())])
    }
}

/// Each number as an input holding it, at its own position.
fn numbered(batch: Vec<u32>) -> Vec<Input<At>> {
    batch
        .into_iter()
        .map(|n| Input {
            data: n.to_string().into_bytes().into(),
            position: At(n),
        })
        .collect()
}

/// Every item taken and delivered at once.
fn all_delivered(items: &[Item]) -> Accepted {
    Accepted {
        receipts: items.iter().map(|_| Receipt::ready(delivered())).collect(),
        refused: None,
    }
}

fn delivered() -> Outcome {
    Outcome::Delivered(Delivery::default())
}

#[tokio::test]
async fn positions_settle_in_read_order_and_never_past_a_failure() {
    let settled = Arc::new(Mutex::new(Vec::new()));
    let seen = settled.clone();
    let acks = Acknowledgements::spawn(move |run: Vec<At>| {
        seen.lock().unwrap().extend(run.into_iter().map(|at| at.0));
    });
    let mut replies = Vec::new();
    let mut turns = Vec::new();
    for n in 0..6 {
        if n == 3 {
            // Nothing to send: settled in its turn.
            turns.push((None, At(n)));
            continue;
        }
        let (reply, receipt) = Receipt::new();
        turns.push((Some(receipt), At(n)));
        replies.push((n, reply));
    }
    // Two batches: the acknowledgements follow them in order too.
    let second = turns.split_off(4);
    acks.push(turns, Instant::now()).await;
    acks.push(second, Instant::now()).await;
    // The sink settles them backwards; 4 fails.
    for (n, reply) in replies.into_iter().rev() {
        reply.send(match n {
            4 => Outcome::Failed {
                message: "the dead-letter file could not be written".into(),
            },
            2 => Outcome::DeadLettered {
                reason: DeadLetterReason::Rejected,
                error_code: None,
                error_message: None,
                record: None,
            },
            _ => delivered(),
        });
    }
    let summary = acks.finish().await;
    assert_eq!(
        *settled.lock().unwrap(),
        [0, 1, 2, 3],
        "in order, up to the failure"
    );
    assert_eq!(summary.delivered, 3);
    assert_eq!(summary.dead_lettered, 1);
    assert_eq!(summary.settled_directly, 1);
    assert_eq!(summary.failed, 1);
    assert!(summary.first_failure.unwrap().contains("dead-letter file"));
}

/// Reads its batches once, and records what it is told is settled.
#[derive(Debug)]
struct Batches {
    batches: Vec<Vec<u32>>,
    settled: Arc<Mutex<Vec<u32>>>,
}

#[async_trait::async_trait]
impl Source for Batches {
    type Position = At;

    async fn read(&mut self) -> Result<Option<Vec<Input<At>>>, SourceError> {
        if self.batches.is_empty() {
            return Ok(None);
        }
        Ok(Some(numbered(self.batches.remove(0))))
    }

    fn settler(&self) -> Box<dyn FnMut(Vec<At>) + Send> {
        let settled = self.settled.clone();
        Box::new(move |run| {
            settled
                .lock()
                .unwrap()
                .extend(run.into_iter().map(|at| at.0))
        })
    }

    async fn checkpoint(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
}

struct Numbers;

impl Process for Numbers {
    fn process(&self, data: &[u8], _origin: Origin<'_>) -> Processed {
        let key = PartitionKey::new_or_hashed(&String::from_utf8_lossy(data));
        Processed::Record(Record::from_source(
            SourceName::new("numbers"),
            key,
            data.to_vec(),
        ))
    }
}

/// Settles each batch's records in reverse order, a little later.
#[derive(Debug, Default)]
struct Backwards {
    counters: SinkCounters,
}

#[async_trait::async_trait]
impl Sink for Backwards {
    fn name(&self) -> &str {
        "backwards"
    }

    async fn send(&self, items: Vec<Item>) -> Result<Accepted, SinkError> {
        let mut replies = Vec::new();
        let mut receipts = Vec::new();
        for item in items {
            let Item::Record(record) = item else {
                panic!("nothing here is rejected");
            };
            self.counters
                .settled_at_once(&record.source, &Default::default());
            let (reply, receipt) = Receipt::new();
            replies.push(reply);
            receipts.push(receipt);
        }
        tokio::spawn(async move {
            for reply in replies.into_iter().rev() {
                tokio::task::yield_now().await;
                reply.send(delivered());
            }
        });
        Ok(Accepted {
            receipts,
            refused: None,
        })
    }

    fn stats(&self) -> SinkStats {
        self.counters.snapshot()
    }
}

#[tokio::test]
async fn a_pipeline_reports_settled_positions_in_read_order() {
    let settled = Arc::new(Mutex::new(Vec::new()));
    let source = Batches {
        batches: vec![
            (0..100).collect(),
            (100..150).collect(),
            (150..400).collect(),
        ],
        settled: settled.clone(),
    };
    let pipeline = Pipeline::new(
        source,
        Arc::new(Numbers),
        Arc::new(Backwards::default()),
        SourceName::new("numbers"),
        Arc::new(SourceCounters::default()),
    )
    .checkpoint_interval(Duration::from_millis(5));
    let (_stop, stop) = tokio::sync::watch::channel(false);
    let summary = pipeline.run(stop).await.unwrap();
    assert_eq!(summary.acks.delivered, 400);
    assert_eq!(*settled.lock().unwrap(), (0..400).collect::<Vec<_>>());
}

/// Reads batches of 100 numbers without end, counting what it read.
#[derive(Debug)]
struct Endless {
    read: Arc<std::sync::atomic::AtomicU32>,
}

#[async_trait::async_trait]
impl Source for Endless {
    type Position = At;

    async fn read(&mut self) -> Result<Option<Vec<Input<At>>>, SourceError> {
        tokio::task::yield_now().await;
        let start = self
            .read
            .fetch_add(100, std::sync::atomic::Ordering::SeqCst);
        Ok(Some(
            (start..start + 100)
                .map(|n| Input {
                    data: n.to_string().into_bytes().into(),
                    position: At(n),
                })
                .collect(),
        ))
    }

    fn settler(&self) -> Box<dyn FnMut(Vec<At>) + Send> {
        Box::new(|_| {})
    }

    async fn checkpoint(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
}

/// Holds the very first record's reply until told; settles the rest at once.
#[derive(Debug, Default)]
struct FirstHeld {
    counters: SinkCounters,
    held: Mutex<Option<shardline_core::Reply>>,
    taken: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Sink for FirstHeld {
    fn name(&self) -> &str {
        "first-held"
    }

    async fn send(&self, items: Vec<Item>) -> Result<Accepted, SinkError> {
        let mut receipts = Vec::with_capacity(items.len());
        for _ in items {
            if !self.taken.swap(true, std::sync::atomic::Ordering::SeqCst) {
                let (reply, receipt) = Receipt::new();
                *self.held.lock().unwrap() = Some(reply);
                receipts.push(receipt);
            } else {
                receipts.push(Receipt::ready(delivered()));
            }
        }
        Ok(Accepted {
            receipts,
            refused: None,
        })
    }

    fn stats(&self) -> SinkStats {
        self.counters.snapshot()
    }
}

/// Regression (issues 19 and 20, item 5): the acknowledgement queue was
/// unbounded, so behind one record that did not settle (a retry for
/// minutes) the reader went on reading, and everything read after it
/// waited in memory.
#[tokio::test]
async fn a_record_that_does_not_settle_holds_the_reader_back() {
    use std::sync::atomic::Ordering;
    let read = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let sink = Arc::new(FirstHeld::default());
    let pipeline = Pipeline::new(
        Endless { read: read.clone() },
        Arc::new(Numbers),
        sink.clone(),
        SourceName::new("numbers"),
        Arc::new(SourceCounters::default()),
    );
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(pipeline.run(stop));
    let batches = shardline_pipeline::ACK_QUEUE_BATCHES as u32;
    let filled = (batches + 1) * 100;
    let started = Instant::now();
    while read.load(Ordering::SeqCst) < filled {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the reader never got going"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Unbounded, the reader reads thousands of batches in this time;
    // bounded, it waits with the queue full and one batch in hand.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held_back = read.load(Ordering::SeqCst);
    assert!(
        held_back <= (batches + 3) * 100,
        "{held_back} inputs read behind a record that did not settle"
    );
    // Once it settles, everything read settles, in order, and the run ends.
    let _ = stop_tx.send(true);
    sink.held.lock().unwrap().take().unwrap().send(delivered());
    let summary = running.await.unwrap().unwrap();
    assert_eq!(
        summary.acks.delivered,
        u64::from(read.load(Ordering::SeqCst))
    );
}

/// Checkpoints taken: when, and how many inputs were settled by then.
type Checkpoints = Arc<Mutex<Vec<(tokio::time::Instant, usize)>>>;

/// When the first checkpoint holding `settled` inputs was taken, looked
/// for every `step` of (paused) time; `None` if none was by `limit` after
/// `started`.
async fn first_checkpoint_holding(
    checkpoints: &Checkpoints,
    settled: usize,
    step: Duration,
    started: tokio::time::Instant,
    limit: Duration,
) -> Option<tokio::time::Instant> {
    loop {
        tokio::time::sleep(step).await;
        let found = checkpoints
            .lock()
            .unwrap()
            .iter()
            .find(|(_, n)| *n == settled)
            .map(|(at, _)| *at);
        if found.is_some() || started.elapsed() >= limit {
            return found;
        }
    }
}

/// A pipeline's task.
type Running = tokio::task::JoinHandle<
    Result<shardline_pipeline::PipelineSummary, shardline_pipeline::PipelineError>,
>;

/// A pipeline over `batches` (then nothing more) into `sink`, with
/// `workers` if given, checkpointing for settlements only (its period is
/// an hour), started: its checkpoints, when it started, its task, and the
/// sender that would stop it.
fn start_quiet(
    batches: Vec<Vec<u32>>,
    sink: Arc<dyn Sink>,
    workers: Option<usize>,
) -> (
    Checkpoints,
    tokio::time::Instant,
    Running,
    tokio::sync::watch::Sender<bool>,
) {
    let checkpoints = Checkpoints::default();
    let source = BatchesThenQuiet {
        batches: batches.into(),
        settled: Arc::new(Mutex::new(Vec::new())),
        checkpoints: checkpoints.clone(),
    };
    let mut pipeline = Pipeline::new(
        source,
        Arc::new(Numbers),
        sink,
        SourceName::new("numbers"),
        Arc::new(SourceCounters::default()),
    )
    .checkpoint_interval(Duration::from_secs(3600));
    if let Some(workers) = workers {
        pipeline = pipeline.workers(workers);
    }
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let started = tokio::time::Instant::now();
    let running = tokio::spawn(pipeline.run(stop));
    (checkpoints, started, running, stop_tx)
}

/// Reads its batches, then waits for more that never comes; each checkpoint
/// notes when it was taken and how much was settled by then.
#[derive(Debug)]
struct BatchesThenQuiet {
    batches: std::collections::VecDeque<Vec<u32>>,
    settled: Arc<Mutex<Vec<u32>>>,
    checkpoints: Checkpoints,
}

#[async_trait::async_trait]
impl Source for BatchesThenQuiet {
    type Position = At;

    async fn read(&mut self) -> Result<Option<Vec<Input<At>>>, SourceError> {
        match self.batches.pop_front() {
            Some(batch) => Ok(Some(numbered(batch))),
            None => std::future::pending().await,
        }
    }

    fn settler(&self) -> Box<dyn FnMut(Vec<At>) + Send> {
        let settled = self.settled.clone();
        Box::new(move |run| {
            settled
                .lock()
                .unwrap()
                .extend(run.into_iter().map(|at| at.0))
        })
    }

    async fn checkpoint(&mut self) -> Result<(), SourceError> {
        let settled = self.settled.lock().unwrap().len();
        self.checkpoints
            .lock()
            .unwrap()
            .push((tokio::time::Instant::now(), settled));
        Ok(())
    }
}

/// Regression (issue 20, crash duplicates): settled input waited for the
/// next checkpoint period, so a crash within it re-sent all of it.
#[tokio::test(start_paused = true)]
async fn what_settles_is_checkpointed_promptly_not_at_the_next_period() {
    let (checkpoints, started, running, _stop) = start_quiet(
        vec![(0..100).collect()],
        Arc::new(Backwards::default()),
        None,
    );
    // Time is paused: it moves only when every task waits, so this is the
    // pipeline's own timing, not the machine's.
    let taken = first_checkpoint_holding(
        &checkpoints,
        100,
        Duration::from_millis(10),
        started,
        Duration::from_secs(7200),
    )
    .await
    .unwrap_or_else(|| panic!("no checkpoint"));
    assert!(
        taken - started
            <= shardline_pipeline::CHECKPOINT_AFTER_SETTLING + Duration::from_millis(10),
        "checkpointed {:?} after the start",
        taken - started
    );
    // One checkpoint for the settlement, besides the period's first tick.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(checkpoints.lock().unwrap().len(), 2, "{checkpoints:?}");
    running.abort();
}

/// At a high rate, 100 ms of settled input is more than a batch: once a
/// batch's worth has settled, the checkpoint comes after the minimum gap.
#[tokio::test(start_paused = true)]
async fn a_batch_worth_of_settled_input_is_checkpointed_after_the_minimum_gap() {
    let inputs = shardline_pipeline::CHECKPOINT_AFTER_INPUTS as u32 + 100;
    // One worker: the batch is processed on the pipeline's task, so paused
    // time cannot jump ahead of a thread.
    let (checkpoints, started, running, _stop) = start_quiet(
        vec![(0..inputs).collect()],
        Arc::new(Backwards::default()),
        Some(1),
    );
    let taken = first_checkpoint_holding(
        &checkpoints,
        inputs as usize,
        Duration::from_millis(1),
        started,
        Duration::from_secs(7200),
    )
    .await
    .unwrap_or_else(|| panic!("no checkpoint"));
    assert!(
        taken - started <= shardline_pipeline::CHECKPOINT_MIN_GAP + Duration::from_millis(2),
        "checkpointed {:?} after the start",
        taken - started
    );
    running.abort();
}

/// Takes its first batch and settles it at once; then waits without end
/// to take the next, as a sink with a full queue makes its sender wait.
#[derive(Debug, Default)]
struct FullAfterFirst {
    counters: SinkCounters,
    taken: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Sink for FullAfterFirst {
    fn name(&self) -> &str {
        "full-after-first"
    }

    async fn send(&self, items: Vec<Item>) -> Result<Accepted, SinkError> {
        if self.taken.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        Ok(all_delivered(&items))
    }

    fn stats(&self) -> SinkStats {
        self.counters.snapshot()
    }
}

/// Regression (issue 20, crash duplicates in a burst): while the sink made
/// the pipeline wait to hand it a batch (backpressure), nothing was
/// checkpointed, so what settled meanwhile — several batches when a
/// database transaction of 50,000 rows was streamed — was sent again after
/// a crash.
#[tokio::test(start_paused = true)]
async fn what_settles_while_the_sink_makes_the_pipeline_wait_is_checkpointed() {
    let (checkpoints, started, running, _stop) = start_quiet(
        vec![(0..100).collect(), (100..200).collect()],
        Arc::new(FullAfterFirst::default()),
        Some(1),
    );
    let taken = first_checkpoint_holding(
        &checkpoints,
        100,
        Duration::from_millis(10),
        started,
        Duration::from_secs(60),
    )
    .await
    .unwrap_or_else(|| {
        panic!(
            "the first batch settled but was never checkpointed: {:?}",
            checkpoints.lock().unwrap()
        )
    });
    assert!(
        taken - started
            <= shardline_pipeline::CHECKPOINT_AFTER_SETTLING + Duration::from_millis(10),
        "checkpointed {:?} after the start",
        taken - started
    );
    running.abort();
}

/// Reads its batches, then waits for more that never comes; once anything
/// has settled, every checkpoint fails (the disk under the checkpoint file
/// filled up).
#[derive(Debug)]
struct CheckpointFails {
    batches: std::collections::VecDeque<Vec<u32>>,
    settled: Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl Source for CheckpointFails {
    type Position = At;

    async fn read(&mut self) -> Result<Option<Vec<Input<At>>>, SourceError> {
        match self.batches.pop_front() {
            Some(batch) => Ok(Some(numbered(batch))),
            None => std::future::pending().await,
        }
    }

    fn settler(&self) -> Box<dyn FnMut(Vec<At>) + Send> {
        let settled = self.settled.clone();
        Box::new(move |run| {
            settled.fetch_add(run.len(), std::sync::atomic::Ordering::SeqCst);
        })
    }

    async fn checkpoint(&mut self) -> Result<(), SourceError> {
        if self.settled.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            return Ok(());
        }
        Err(SourceError::Other("No space left on device".to_owned()))
    }
}

/// Takes its first batch at once and settles it; takes the second only
/// after a second (a full queue), then settles it. Counts the sends that
/// ran to their end.
#[derive(Debug, Default)]
struct SlowSecond {
    counters: SinkCounters,
    started: std::sync::atomic::AtomicUsize,
    finished: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Sink for SlowSecond {
    fn name(&self) -> &str {
        "slow-second"
    }

    async fn send(&self, items: Vec<Item>) -> Result<Accepted, SinkError> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.started.fetch_add(1, SeqCst) > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        self.finished.fetch_add(1, SeqCst);
        Ok(all_delivered(&items))
    }

    fn stats(&self) -> SinkStats {
        self.counters.snapshot()
    }
}

/// A checkpoint that fails while the pipeline waits for the sink to take
/// a batch stops the run with that error — after the sink has taken the
/// batch, not by dropping the hand-off half done (`a512088`: the batch
/// could be half taken by the producer, with receipts nobody followed).
#[tokio::test(start_paused = true)]
async fn a_checkpoint_that_fails_during_a_hand_off_stops_the_run_after_it() {
    use std::sync::atomic::Ordering::SeqCst;
    let sink = Arc::new(SlowSecond::default());
    let pipeline = Pipeline::new(
        CheckpointFails {
            batches: vec![(0..100).collect(), (100..200).collect()].into(),
            settled: Arc::default(),
        },
        Arc::new(Numbers),
        sink.clone(),
        SourceName::new("numbers"),
        Arc::new(SourceCounters::default()),
    )
    .workers(1)
    .checkpoint_interval(Duration::from_secs(3600));
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let result = tokio::time::timeout(Duration::from_secs(60), pipeline.run(stop))
        .await
        .expect("the failed checkpoint stops the run");
    let error = result
        .expect_err("a failed checkpoint is an error")
        .to_string();
    assert!(error.contains("No space left on device"), "{error}");
    assert_eq!(
        (sink.started.load(SeqCst), sink.finished.load(SeqCst)),
        (2, 2),
        "the second hand-off was dropped half done"
    );
}
