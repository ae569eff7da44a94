//! Shutdown, driven in-process by the caller's future: an endless source is
//! stopped, everything it read is settled, and the counters reconcile.

// Test code: a failed unwrap is the test failing.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use shardline_core::{
    DeadLetterFile, Origin, PartitionKey, Process, Processed, Record, SourceName,
};
use shardline_generate::{Generated, Kind};
use shardline_pipeline::StdoutSink;
use shardline_runner::{Destination, Runner, Settings, Stopped};

/// Each generated line is a record keyed by its length.
struct Lines;

impl Process for Lines {
    fn process(&self, data: &[u8], _origin: Origin<'_>) -> Processed {
        let key = PartitionKey::new_or_hashed(&data.len().to_string());
        Processed::Record(Record::from_source(
            SourceName::new("web"),
            key,
            data.to_vec(),
        ))
    }
}

#[tokio::test]
async fn a_shutdown_future_stops_an_endless_run_with_everything_read_settled() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::new(Destination::Stdout, dir.path().join("dead.ndjson"));
    settings.stats_interval = Duration::ZERO;
    let out = dir.path().join("out.ndjson");
    let sink = Arc::new(StdoutSink::with_writer(
        Box::new(std::fs::File::create(&out).unwrap()),
        DeadLetterFile::open(&settings.dead_letter_file).unwrap(),
    ));
    let mut runner = Runner::start_with_sink(settings, sink).await.unwrap();
    let source = Generated::new(Kind::WebLogs, 2_000);
    let made = source.made();
    let pipeline = runner.pipeline("web", source, Arc::new(Lines));
    runner.spawn("web", pipeline);

    // Stop once a few hundred lines were made.
    let watched = made.clone();
    let shutdown = async move {
        while watched.load(Ordering::Relaxed) < 300 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let summary = tokio::time::timeout(Duration::from_secs(30), runner.run(shutdown))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(summary.stopped, Stopped::Requested);
    assert!(summary.is_complete(), "{:?}", summary.problems());
    let pipeline = summary.pipelines[0].result.as_ref().unwrap();
    let made = made.load(Ordering::Relaxed);
    assert_eq!(pipeline.read, made, "everything made was read");
    let acks = &pipeline.acks;
    assert_eq!(
        acks.delivered + acks.dead_lettered + acks.settled_directly,
        made
    );
    let web = &summary.snapshot.by_source["web"];
    assert_eq!(web.read, made);
    let written = std::fs::read_to_string(&out).unwrap().lines().count() as u64;
    assert_eq!(written, acks.delivered);
}

/// Panics on the 100th input; processes one input at a time, in order, on
/// the pipeline's own task.
struct PanicsAt100 {
    seen: std::sync::atomic::AtomicUsize,
}

impl Process for PanicsAt100 {
    fn process(&self, data: &[u8], origin: Origin<'_>) -> Processed {
        if self.seen.fetch_add(1, Ordering::Relaxed) == 99 {
            panic!("a processor bug");
        }
        Lines.process(data, origin)
    }

    fn sequential(&self) -> bool {
        true
    }
}

/// A pipeline whose task panics ends the run with that pipeline failed and
/// the panic named, instead of leaving the run waiting for it forever
/// (issue 20, item 10).
#[tokio::test]
async fn a_panicking_pipeline_fails_the_run_instead_of_hanging_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::new(Destination::Stdout, dir.path().join("dead.ndjson"));
    settings.stats_interval = Duration::ZERO;
    let sink = Arc::new(StdoutSink::with_writer(
        Box::new(std::io::sink()),
        DeadLetterFile::open(&settings.dead_letter_file).unwrap(),
    ));
    let mut runner = Runner::start_with_sink(settings, sink).await.unwrap();
    let processor = Arc::new(PanicsAt100 {
        seen: std::sync::atomic::AtomicUsize::new(0),
    });
    let pipeline = runner.pipeline("web", Generated::new(Kind::WebLogs, 2_000), processor);
    runner.spawn("web", pipeline);
    let summary = tokio::time::timeout(Duration::from_secs(30), runner.run(std::future::pending()))
        .await
        .expect("the run waited for a pipeline that had panicked")
        .unwrap();
    assert_eq!(summary.stopped, Stopped::PipelineFailed);
    let error = summary.pipelines[0].result.as_ref().unwrap_err();
    assert!(error.to_string().contains("a processor bug"), "{error}");
    assert!(!summary.is_complete());
}

/// Takes every request and never answers.
struct NeverAnswers;

#[async_trait::async_trait]
impl shardline_producer::Destination for NeverAnswers {
    fn name(&self) -> &str {
        "never answers"
    }
    fn limits(&self) -> shardline_producer::BatchLimits {
        shardline_producer::BatchLimits::KINESIS
    }
    async fn put(
        &self,
        _entries: &[shardline_producer::Entry],
    ) -> Result<
        Vec<Result<shardline_core::Delivery, shardline_producer::EntryError>>,
        shardline_producer::PutError,
    > {
        std::future::pending().await
    }
}

/// Behind a destination that never answers, a stop takes the shutdown
/// timeout once: the pipelines' hand-over and the producer's delivery
/// share one deadline. It used to take it twice, once for each (issue 20,
/// item 8), which is past Kubernetes' 30 s grace with the 20 s default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_takes_the_shutdown_timeout_once() {
    const TIMEOUT: Duration = Duration::from_secs(2);
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::new(Destination::Stdout, dir.path().join("dead.ndjson"));
    settings.stats_interval = Duration::ZERO;
    settings.shutdown_timeout = TIMEOUT;
    let producer = shardline_producer::Producer::builder(NeverAnswers)
        .dead_letters(DeadLetterFile::open(&settings.dead_letter_file).unwrap())
        .queue_max_records(200)
        .linger(Duration::from_millis(1))
        .build()
        .await
        .unwrap();
    let mut runner = Runner::start_with_sink(settings, Arc::new(producer.clone()))
        .await
        .unwrap();
    let source = Generated::new(Kind::WebLogs, 5_000);
    let made = source.made();
    let pipeline = runner.pipeline("web", source, Arc::new(Lines));
    runner.spawn("web", pipeline);

    // Stop once the producer's queue is full and the reader waits on it.
    let stopped_at = Arc::new(std::sync::Mutex::new(None));
    let stopping = stopped_at.clone();
    let shutdown = async move {
        while made.load(Ordering::Relaxed) < 100 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        *stopping.lock().unwrap() = Some(std::time::Instant::now());
    };
    let summary = tokio::time::timeout(Duration::from_secs(30), runner.run(shutdown))
        .await
        .unwrap()
        .unwrap();
    let took = stopped_at.lock().unwrap().unwrap().elapsed();
    // One timeout, and room for a loaded machine; two would be 4 s.
    assert!(took >= TIMEOUT, "stopped in {took:?}, before the deadline");
    assert!(
        took < TIMEOUT + Duration::from_millis(1_500),
        "stopping took {took:?}"
    );
    // Nothing read is left unaccounted for: what never got an answer is
    // dead-lettered at the deadline.
    assert_eq!(summary.stopped, Stopped::Requested);
    let stats = producer.stats().total;
    assert!(stats.dead_lettered > 0, "{stats:?}");
    assert_eq!(
        stats.records_in,
        stats.delivered + stats.dead_lettered + stats.failed
    );
}
