//! A binary's run: sink, metrics, reporter, pipelines, signals, shutdown.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use shardline_metrics::cloudwatch::CloudWatch;
use shardline_metrics::prometheus::Exporter;
use shardline_metrics::{Metrics, Output, Reporter, Snapshot, SourceCounters, StatsProvider};
use shardline_producer::{DeadLetterFile, SourceName};
use shardline_source::{Pipeline, PipelineError, PipelineSummary, Sink, Source};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::aws::{sdk_config, sink};
use crate::settings::{DEFAULT_STATS_INTERVAL, Destination, Settings};

/// A pipeline's name and how it ended.
pub type PipelineResult = (String, Result<PipelineSummary, PipelineError>);

/// Why a run stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Every pipeline ended (a finite input, `--once`), or one failed.
    EndOfInput,
    /// SIGINT or SIGTERM.
    Signal(&'static str),
    /// `--duration` passed.
    Duration,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::EndOfInput => f.write_str("end of input"),
            StopReason::Signal(signal) => f.write_str(signal),
            StopReason::Duration => f.write_str("--duration"),
        }
    }
}

/// Everything a binary runs around its pipelines. Start it, [`spawn`]
/// pipelines, [`wait`] for the end, [`stop`].
///
/// [`spawn`]: Running::spawn
/// [`wait`]: Running::wait
/// [`stop`]: Running::stop
#[derive(Debug)]
pub struct Running {
    settings: Settings,
    sdk: Option<aws_config::SdkConfig>,
    sink: Sink,
    metrics: Arc<Metrics>,
    report_stop: watch::Sender<bool>,
    reporter: JoinHandle<()>,
    prometheus: Option<JoinHandle<()>>,
    signals: Signals,
    stop_tx: watch::Sender<bool>,
    /// One per pipeline: it has stopped reading and sent all it read.
    reading: Vec<tokio::sync::oneshot::Receiver<()>>,
    done_tx: mpsc::UnboundedSender<PipelineResult>,
    done_rx: mpsc::UnboundedReceiver<PipelineResult>,
    results: Vec<PipelineResult>,
    spawned: usize,
}

impl Running {
    /// Opens the dead-letter file, loads the SDK configuration when an AWS
    /// client is needed, checks the destination and builds the sink, and
    /// starts the statistics reporter (with CloudWatch) and Prometheus.
    pub async fn start(settings: &Settings) -> anyhow::Result<Running> {
        let binary = settings.binary;
        let dead_letters = DeadLetterFile::open(&settings.dead_letter_file)
            .with_context(|| format!("dead-letter file {}", settings.dead_letter_file.display()))?;
        let sdk = if settings.needs_aws() {
            Some(sdk_config(settings).await?)
        } else {
            None
        };
        let sink = sink(settings, sdk.as_ref(), dead_letters).await?;
        let metrics = Arc::new(Metrics::with_alarms(settings.alarms.clone()));
        let stats_of = {
            let sink = sink.clone();
            Arc::new(move || sink.stats()) as StatsProvider
        };
        let prometheus = match settings.metrics_addr {
            Some(addr) => {
                let exporter = Exporter::new(metrics.clone(), stats_of.clone());
                let (bound, task) = shardline_metrics::prometheus::serve(addr, exporter)
                    .await
                    .with_context(|| format!("serving metrics on {addr}"))?;
                eprintln!("{binary}: Prometheus metrics on http://{bound}/metrics");
                Some(task)
            }
            None => None,
        };
        // Statistics, alarms and CloudWatch every interval; with no
        // interval, alarms and CloudWatch still run every
        // DEFAULT_STATS_INTERVAL, quietly.
        let (interval, output) = if settings.stats_interval.is_zero() {
            (DEFAULT_STATS_INTERVAL, Output::Quiet)
        } else {
            (settings.stats_interval, Output::detect())
        };
        let mut reporter = Reporter::new(metrics.clone(), stats_of, interval).output(output);
        if let (Some(namespace), Some(sdk)) = (&settings.cloudwatch_namespace, &sdk) {
            reporter = reporter.cloudwatch(CloudWatch::new(
                aws_sdk_cloudwatch::Client::new(sdk),
                namespace.clone(),
            ));
        }
        let (report_stop, report_rx) = watch::channel(false);
        let reporter = tokio::spawn(reporter.run(report_rx));
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Ok(Running {
            settings: settings.clone(),
            sdk,
            sink,
            metrics,
            report_stop,
            reporter,
            prometheus,
            signals: Signals::new()?,
            stop_tx: watch::channel(false).0,
            reading: Vec::new(),
            done_tx,
            done_rx,
            results: Vec::new(),
            spawned: 0,
        })
    }

    /// The SDK configuration, when one was loaded.
    pub fn sdk(&self) -> Option<&aws_config::SdkConfig> {
        self.sdk.as_ref()
    }

    pub fn sink(&self) -> &Sink {
        &self.sink
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// A source's counters (created on first use).
    pub fn counters(&self, name: &str) -> Arc<SourceCounters> {
        self.metrics.source(name)
    }

    /// A pipeline from `source` through `processor` into the sink, named
    /// `name` in statistics and dead letters.
    pub fn pipeline<S: Source>(
        &self,
        name: &str,
        source: S,
        processor: Arc<dyn shardline_source::Process>,
    ) -> Pipeline<S> {
        Pipeline::new(
            source,
            processor,
            self.sink.clone(),
            SourceName::new(name),
            self.counters(name),
        )
    }

    /// Runs a pipeline until the input ends or [`Running::stop`].
    pub fn spawn<S: Source + 'static>(&mut self, name: &str, pipeline: Pipeline<S>) {
        let stop = self.stop_tx.subscribe();
        let done = self.done_tx.clone();
        let name = name.to_owned();
        self.spawned += 1;
        let (reading_done, reading) = tokio::sync::oneshot::channel();
        self.reading.push(reading);
        let pipeline = pipeline.reading_done(reading_done);
        tokio::spawn(async move {
            let result = pipeline.run(stop).await;
            let _ = done.send((name, result));
        });
    }

    /// Waits for SIGINT/SIGTERM, `--duration`, or the end of every
    /// pipeline — or the failure of one, which stops the others.
    pub async fn wait(&mut self) -> StopReason {
        let deadline = self.settings.duration;
        let (done, results, spawned) = (&mut self.done_rx, &mut self.results, self.spawned);
        let reason = tokio::select! {
            () = until_ended_or_failed(done, results, spawned) => StopReason::EndOfInput,
            signal = self.signals.next() => StopReason::Signal(signal),
            () = sleep_or_forever(deadline) => StopReason::Duration,
        };
        tracing::info!("stopping: {reason}");
        reason
    }

    async fn collect(&mut self) {
        while self.results.len() < self.spawned {
            match self.done_rx.recv().await {
                Some(result) => self.results.push(result),
                None => return,
            }
        }
    }

    /// Stops reading, waits (at most `shutdown_timeout`) until every
    /// pipeline has handed what it read to the producer, gives delivery
    /// `shutdown_timeout` (what is left is dead-lettered), waits for every pipeline's last checkpoint, reports
    /// the last interval, and prints the statistics JSON (stdout, or
    /// stderr when records go to stdout). A second signal exits at once:
    /// the checkpoints hold only settled input.
    pub async fn stop(mut self) -> anyhow::Result<(ExitCode, Snapshot)> {
        let binary = self.settings.binary;
        let _ = self.stop_tx.send(true);
        let sink = self.sink.clone();
        let timeout = self.settings.shutdown_timeout;
        // Pipelines first hand what they read to the producer (a send
        // after shutdown would be refused, its record neither sent nor
        // failed); a pipeline stuck behind a full queue gets the shutdown
        // timeout, no more.
        let reading = std::mem::take(&mut self.reading);
        let shutdown = async move {
            let _ = tokio::time::timeout(timeout, async {
                for done in reading {
                    let _ = done.await;
                }
            })
            .await;
            if let Sink::Producer(producer) = &sink {
                producer.shutdown(timeout).await;
            }
        };
        let mut signals = std::mem::replace(&mut self.signals, Signals::new()?);
        tokio::select! {
            ((), ()) = async { tokio::join!(shutdown, self.collect()) } => {}
            signal = signals.next() => {
                eprintln!("\n{binary}: {signal} again; exiting now (the checkpoints hold only settled input)");
                std::process::exit(130);
            }
        }
        // The last interval is reported (and published) before the summary.
        let _ = self.report_stop.send(true);
        let _ = (&mut self.reporter).await;
        if let Some(task) = &self.prometheus {
            task.abort();
        }

        let mut failed = false;
        if self.results.len() < self.spawned {
            failed = true;
            eprintln!("{binary}: a pipeline ended without a result");
        }
        for (name, result) in &self.results {
            match result {
                Ok(PipelineSummary { acks, unsent, .. }) if acks.failed == 0 && *unsent == 0 => {}
                Ok(summary) if summary.unsent > 0 => {
                    failed = true;
                    eprintln!(
                        "{binary}: {name}: {} input(s) read but not sent before the producer shut down; they are not checkpointed and will be read again",
                        summary.unsent
                    );
                }
                Ok(summary) => {
                    failed = true;
                    eprintln!(
                        "{binary}: {name}: {} record(s) neither delivered nor dead-lettered ({}); they will be read again",
                        summary.acks.failed,
                        summary.acks.first_failure.clone().unwrap_or_default()
                    );
                }
                Err(e) => {
                    failed = true;
                    eprintln!("{binary}: {name}: {e}");
                }
            }
        }
        let snapshot = self.metrics.snapshot(&self.sink.stats());
        let summary = serde_json::to_string_pretty(&snapshot)?;
        if self.settings.destination == Destination::Stdout {
            eprintln!("{summary}");
        } else {
            println!("{summary}");
        }
        let code = if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
        Ok((code, snapshot))
    }
}

async fn until_ended_or_failed(
    done: &mut mpsc::UnboundedReceiver<PipelineResult>,
    results: &mut Vec<PipelineResult>,
    spawned: usize,
) {
    while results.len() < spawned {
        match done.recv().await {
            Some(result) => {
                let failed = result.1.is_err();
                results.push(result);
                if failed {
                    return;
                }
            }
            None => return,
        }
    }
}

/// Sleeps for `deadline`, or forever without one.
pub async fn sleep_or_forever(deadline: Option<Duration>) {
    match deadline {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// SIGINT and SIGTERM.
#[derive(Debug)]
pub struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("SIGTERM handler")?,
        })
    }

    /// The next signal's name.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// Runs a binary's async main on a multi-threaded runtime.
pub fn block_on<T>(
    main: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("starting the async runtime: {e}"))?
        .block_on(main)
}
