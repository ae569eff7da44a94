//! A pipeline's accounting when its producer is gone before it has sent
//! what it read.

// Test code: a failed unwrap is the test failing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::time::Duration;

use shardline_core::{Origin, Process, Processed, SourceCounters};
use shardline_partition_key::PartitionKey;
use shardline_pipeline::{Pipeline, PipelineSummary};
use shardline_producer::{
    BatchLimits, DeadLetterFile, Delivery, Destination, Entry, EntryError, Producer, PutError,
    Record, SourceName,
};
use shardline_tail::LinesSource;

/// Accepts everything.
struct Accept;

#[async_trait::async_trait]
impl Destination for Accept {
    fn name(&self) -> &str {
        "accept"
    }
    fn limits(&self) -> BatchLimits {
        BatchLimits::KINESIS
    }
    async fn put(&self, entries: &[Entry]) -> Result<Vec<Result<Delivery, EntryError>>, PutError> {
        Ok(entries.iter().map(|_| Ok(Delivery::default())).collect())
    }
}

/// Each line is a record keyed by itself.
struct Lines;

impl Process for Lines {
    fn process(&self, data: &[u8], _origin: Origin<'_>) -> Processed {
        let key = PartitionKey::new_or_hashed(&String::from_utf8_lossy(data));
        Processed::Record(Record::from_source(
            SourceName::new("lines"),
            key,
            data.to_vec(),
        ))
    }
}

async fn run(shut_down_first: bool) -> PipelineSummary {
    let dir = tempfile::tempdir().unwrap();
    let dead_letters = DeadLetterFile::open(&dir.path().join("dead.ndjson")).unwrap();
    let producer = Producer::builder(Accept)
        .dead_letters(dead_letters)
        .linger(Duration::from_millis(1))
        .build()
        .await
        .unwrap();
    if shut_down_first {
        producer.shutdown(Duration::from_millis(100)).await;
    }
    let source = LinesSource::new(&b"a\nb\nc\nd\ne\n"[..], "test");
    let pipeline = Pipeline::new(
        source,
        Arc::new(Lines),
        Arc::new(producer.clone()),
        SourceName::new("lines"),
        Arc::new(SourceCounters::default()),
    );
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let summary = pipeline.run(stop).await.unwrap();
    producer.shutdown(Duration::from_secs(5)).await;
    summary
}

#[tokio::test]
async fn what_a_shut_down_producer_refuses_is_counted_as_unsent() {
    let summary = run(true).await;
    assert_eq!(summary.read, 5);
    assert_eq!(summary.records, 5);
    assert_eq!(summary.unsent, 5, "{summary:?}");
    assert_eq!(summary.acks.failed, 0);
}

#[tokio::test]
async fn a_live_producer_leaves_nothing_unsent() {
    let summary = run(false).await;
    assert_eq!(summary.read, 5);
    assert_eq!(summary.unsent, 0, "{summary:?}");
    assert_eq!(summary.acks.delivered, 5, "{summary:?}");
}

/// Regression (issue 19): at the end of the input, the last partial batch
/// waited out the producer's linger before the run could end.
#[tokio::test]
async fn at_the_end_of_the_input_the_last_batch_goes_without_waiting_for_the_linger() {
    let dir = tempfile::tempdir().unwrap();
    let producer = Producer::builder(Accept)
        .dead_letters(DeadLetterFile::open(&dir.path().join("dead.ndjson")).unwrap())
        .linger(Duration::from_secs(3600))
        .build()
        .await
        .unwrap();
    let pipeline = Pipeline::new(
        LinesSource::new(&b"a\nb\nc\nd\ne\n"[..], "test"),
        Arc::new(Lines),
        Arc::new(producer.clone()),
        SourceName::new("lines"),
        Arc::new(SourceCounters::default()),
    );
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    // An hour's linger: the run ends well before only if nothing waits it out.
    let summary = tokio::time::timeout(Duration::from_secs(60), pipeline.run(stop))
        .await
        .expect("the pipeline waited for the linger")
        .unwrap();
    assert_eq!(summary.acks.delivered, 5);
    producer.shutdown(Duration::from_secs(5)).await;
}

/// Answers for one input fewer than each run it is given.
struct Short;

impl Process for Short {
    fn process(&self, data: &[u8], origin: Origin<'_>) -> Processed {
        Lines.process(data, origin)
    }

    fn process_run<'a>(
        &self,
        inputs: &mut dyn Iterator<Item = (&'a [u8], Origin<'a>)>,
        out: &mut Vec<Processed>,
    ) {
        out.extend(
            inputs
                .skip(1)
                .map(|(data, origin)| self.process(data, origin)),
        );
    }
}

/// A processor that answers for fewer inputs than it was given stops the
/// pipeline with an error: pairing the answers anyway would lose an input
/// and settle the wrong positions.
#[tokio::test]
async fn a_processor_that_loses_an_input_stops_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let producer = Producer::builder(Accept)
        .dead_letters(DeadLetterFile::open(&dir.path().join("dead.ndjson")).unwrap())
        .build()
        .await
        .unwrap();
    let pipeline = Pipeline::new(
        LinesSource::new(&b"a\nb\nc\n"[..], "test"),
        Arc::new(Short),
        Arc::new(producer.clone()),
        SourceName::new("lines"),
        Arc::new(SourceCounters::default()),
    );
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let error = pipeline.run(stop).await.unwrap_err();
    assert!(
        error.to_string().contains("2 results for 3 inputs"),
        "{error}"
    );
    assert_eq!(producer.stats().total.records_in, 0);
    producer.shutdown(Duration::from_secs(5)).await;
}

/// Each line is a record; every other run it is given takes 20 ms, so a
/// later batch is often processed before an earlier one. Counts the runs
/// that ended before a run started earlier had.
struct Uneven {
    runs: std::sync::atomic::AtomicUsize,
    ended: std::sync::Mutex<Vec<usize>>,
}

impl Process for Uneven {
    fn process(&self, data: &[u8], origin: Origin<'_>) -> Processed {
        Lines.process(data, origin)
    }

    fn process_run<'a>(
        &self,
        inputs: &mut dyn Iterator<Item = (&'a [u8], Origin<'a>)>,
        out: &mut Vec<Processed>,
    ) {
        let run = self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if run.is_multiple_of(2) {
            std::thread::sleep(Duration::from_millis(20));
        }
        out.extend(inputs.map(|(data, origin)| self.process(data, origin)));
        self.ended.lock().unwrap().push(run);
    }
}

impl Uneven {
    fn overtaken(&self) -> usize {
        let ended = self.ended.lock().unwrap();
        ended.windows(2).filter(|pair| pair[1] < pair[0]).count()
    }
}

/// Batches processed at once on several threads reach the sink, and
/// settle, in the order they were read, whichever finishes first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_processed_at_once_reach_the_sink_in_read_order() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("records.ndjson");
    let sink = shardline_pipeline::StdoutSink::with_writer(
        Box::new(std::fs::File::create(&out).unwrap()),
        DeadLetterFile::open(&dir.path().join("dead.ndjson")).unwrap(),
    );
    let lines: String = (0..20_000).map(|n| format!("{n:06}\n")).collect();
    let processor = Arc::new(Uneven {
        runs: std::sync::atomic::AtomicUsize::new(0),
        ended: std::sync::Mutex::new(Vec::new()),
    });
    let pipeline = Pipeline::new(
        LinesSource::new(lines.as_bytes(), "test"),
        processor.clone(),
        Arc::new(sink),
        SourceName::new("lines"),
        Arc::new(SourceCounters::default()),
    )
    .workers(4);
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let summary = pipeline.run(stop).await.unwrap();
    assert_eq!(summary.read, 20_000);
    assert_eq!(summary.acks.delivered, 20_000, "{summary:?}");
    assert_eq!(summary.unsent, 0);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), lines);
    // With two CPUs or more, batches were processed at once: a fast run
    // ended before the slow one started ahead of it.
    if std::thread::available_parallelism().map_or(1, usize::from) > 1 {
        assert!(processor.overtaken() > 0, "no batch was processed at once");
    }
}

/// Takes every record; the 50th is neither delivered nor dead-lettered
/// (as when the dead-letter file cannot be written), every other one is
/// delivered.
#[derive(Debug, Default)]
struct FailsTheFiftieth {
    taken: std::sync::atomic::AtomicU64,
}

#[async_trait::async_trait]
impl shardline_core::Sink for FailsTheFiftieth {
    fn name(&self) -> &str {
        "fails the fiftieth"
    }

    async fn send(
        &self,
        items: Vec<shardline_core::Item>,
    ) -> Result<shardline_core::Accepted, shardline_core::SinkError> {
        let receipts = items
            .iter()
            .map(|_| {
                let n = self
                    .taken
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    + 1;
                shardline_core::Receipt::ready(if n == 50 {
                    shardline_core::Outcome::Failed {
                        message: "the dead-letter file could not be written".into(),
                    }
                } else {
                    shardline_core::Outcome::Delivered(Delivery::default())
                })
            })
            .collect();
        Ok(shardline_core::Accepted {
            receipts,
            refused: None,
        })
    }

    fn stats(&self) -> shardline_core::SinkStats {
        shardline_core::SinkStats::default()
    }
}

/// A record that is neither delivered nor dead-lettered freezes the
/// checkpoint before it. The pipeline stops reading with an error that
/// says why, instead of reading on with no checkpoint (issue 20, item 1).
#[tokio::test]
async fn an_unsettled_record_stops_the_pipeline_with_a_clear_error() {
    const LINES: u64 = 1_000_000;
    let input: String = (0..LINES).map(|n| format!("{n}\n")).collect();
    let counters = Arc::new(SourceCounters::default());
    let pipeline = Pipeline::new(
        LinesSource::new(input.as_bytes(), "test"),
        Arc::new(Lines),
        Arc::new(FailsTheFiftieth::default()),
        SourceName::new("lines"),
        counters.clone(),
    );
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let error = tokio::time::timeout(Duration::from_secs(60), pipeline.run(stop))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        error.to_string().contains("could not be written"),
        "{error}"
    );
    let [read, ..] = counters.load();
    assert!(read < LINES / 10, "read {read} lines after the failure");
}
