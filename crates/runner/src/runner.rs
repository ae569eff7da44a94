//! A run: sink, metrics, reporter, pipelines, and a bounded shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use shardline_core::{DeadLetterFile, Process, Sink, Source, SourceCounters, SourceName};
use shardline_metrics::cloudwatch::CloudWatch;
use shardline_metrics::{Metrics, Output, Reporter, Snapshot, StatsProvider};
use shardline_pipeline::{Pipeline, PipelineError, PipelineSummary};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::RunError;
use crate::aws::{sdk_config, sink};
use crate::settings::{DEFAULT_STATS_INTERVAL, Settings};

/// Why a run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stopped {
    /// Every pipeline ended (a finite input, `--once`).
    EndOfInput,
    /// A pipeline failed; the others were stopped.
    PipelineFailed,
    /// The caller's shutdown future resolved (a signal, a time limit).
    Requested,
}

/// How one pipeline ended.
#[derive(Debug)]
pub struct PipelineOutcome {
    /// The pipeline's name.
    pub name: String,
    /// What it did, or why it stopped.
    pub result: Result<PipelineSummary, PipelineError>,
}

/// What a run did: why it stopped, how each pipeline ended, and the
/// statistics at the end.
#[derive(Debug)]
#[non_exhaustive]
pub struct Summary {
    /// Why the run stopped.
    pub stopped: Stopped,
    /// How each pipeline ended.
    pub pipelines: Vec<PipelineOutcome>,
    /// Pipelines that ended without a result (a panicking pipeline ends
    /// with [`PipelineError::Panicked`] instead).
    pub lost_pipelines: usize,
    /// The statistics at the end.
    pub snapshot: Snapshot,
}

impl Summary {
    /// What went wrong, one sentence each: input read but not handed to the
    /// sink, records neither delivered nor dead-lettered, a pipeline's
    /// error. Empty when every input read is settled.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.lost_pipelines > 0 {
            problems.push(format!(
                "{} pipeline(s) ended without a result",
                self.lost_pipelines
            ));
        }
        for PipelineOutcome { name, result } in &self.pipelines {
            match result {
                Ok(summary) if summary.unsent > 0 => problems.push(format!(
                    "{name}: {} input(s) read but not sent before the sink shut down; they are not checkpointed and will be read again",
                    summary.unsent
                )),
                Ok(summary) if summary.acks.failed > 0 => problems.push(format!(
                    "{name}: {} record(s) neither delivered nor dead-lettered ({}); they will be read again",
                    summary.acks.failed,
                    summary.acks.first_failure.clone().unwrap_or_default()
                )),
                Ok(_) => {}
                Err(e) => problems.push(format!("{name}: {e}")),
            }
        }
        problems
    }

    /// Every input read was settled and every pipeline ended cleanly.
    pub fn is_complete(&self) -> bool {
        self.problems().is_empty()
    }
}

/// Runs pipelines into one sink with metrics: [`Runner::start`], then
/// [`Runner::spawn`] pipelines, then [`Runner::run`] until they end or the
/// caller asks to stop.
pub struct Runner {
    settings: Settings,
    sdk: Option<aws_config::SdkConfig>,
    sink: Arc<dyn Sink>,
    metrics: Arc<Metrics>,
    report_stop: watch::Sender<bool>,
    reporter: JoinHandle<()>,
    prometheus: Option<(SocketAddr, JoinHandle<()>)>,
    stop_tx: watch::Sender<bool>,
    /// One per pipeline: it has stopped reading and sent all it read.
    reading: Vec<oneshot::Receiver<()>>,
    done_tx: mpsc::UnboundedSender<PipelineOutcome>,
    done_rx: mpsc::UnboundedReceiver<PipelineOutcome>,
    results: Vec<PipelineOutcome>,
    spawned: usize,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("destination", &self.settings.destination)
            .field("sink", &self.sink.name())
            .field("pipelines", &self.spawned)
            .finish_non_exhaustive()
    }
}

impl Runner {
    /// Opens the dead-letter file, loads the AWS SDK configuration when a
    /// client is needed, checks that the destination exists and builds the
    /// sink, and starts the statistics reporter (with CloudWatch) and the
    /// Prometheus endpoint.
    pub async fn start(settings: Settings) -> Result<Runner, RunError> {
        let dead_letters = open_dead_letters(&settings)?;
        let sdk = if settings.needs_aws() {
            Some(sdk_config(&settings).await?)
        } else {
            None
        };
        let sink = sink(&settings, sdk.as_ref(), dead_letters).await?;
        Self::with_sink(settings, sdk, sink).await
    }

    /// As [`Runner::start`], with a sink of the caller's (the destination
    /// in `settings` is then only a label). An SDK configuration is still
    /// loaded for CloudWatch when the settings ask for it.
    pub async fn start_with_sink(
        settings: Settings,
        sink: Arc<dyn Sink>,
    ) -> Result<Runner, RunError> {
        let sdk = if settings.cloudwatch_namespace.is_some() {
            Some(sdk_config(&settings).await?)
        } else {
            None
        };
        Self::with_sink(settings, sdk, sink).await
    }

    async fn with_sink(
        settings: Settings,
        sdk: Option<aws_config::SdkConfig>,
        sink: Arc<dyn Sink>,
    ) -> Result<Runner, RunError> {
        let metrics = Arc::new(Metrics::with_alarms(settings.alarms.clone()));
        let stats_of = {
            let sink = sink.clone();
            Arc::new(move || sink.stats()) as StatsProvider
        };
        let prometheus = match settings.metrics_addr {
            Some(addr) => {
                let exporter =
                    shardline_metrics::prometheus::Exporter::new(metrics.clone(), stats_of.clone());
                let served = shardline_metrics::prometheus::serve(addr, exporter)
                    .await
                    .map_err(|source| RunError::Metrics { addr, source })?;
                Some(served)
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
        Ok(Runner {
            settings,
            sdk,
            sink,
            metrics,
            report_stop,
            reporter,
            prometheus,
            stop_tx: watch::channel(false).0,
            reading: Vec::new(),
            done_tx,
            done_rx,
            results: Vec::new(),
            spawned: 0,
        })
    }

    /// The settings the run was started with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The SDK configuration, when one was loaded.
    pub fn sdk(&self) -> Option<&aws_config::SdkConfig> {
        self.sdk.as_ref()
    }

    /// Where records go.
    pub fn sink(&self) -> &Arc<dyn Sink> {
        &self.sink
    }

    /// The run's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Where the Prometheus endpoint listens, if it was asked for.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.prometheus.as_ref().map(|(addr, _)| *addr)
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
        processor: Arc<dyn Process>,
    ) -> Pipeline<S> {
        Pipeline::new(
            source,
            processor,
            self.sink.clone(),
            SourceName::new(name),
            self.counters(name),
        )
    }

    /// Runs a pipeline until its input ends or the run stops.
    pub fn spawn<S: Source + 'static>(&mut self, name: &str, pipeline: Pipeline<S>) {
        let stop = self.stop_tx.subscribe();
        let done = self.done_tx.clone();
        let name = name.to_owned();
        self.spawned += 1;
        let (reading_done, reading) = oneshot::channel();
        self.reading.push(reading);
        let pipeline = pipeline.reading_done(reading_done);
        // The pipeline runs in a task of its own, so that a panic in it
        // still ends with an outcome: the run would otherwise wait for it
        // forever.
        let task = tokio::spawn(pipeline.run(stop));
        tokio::spawn(async move {
            let result = task
                .await
                .unwrap_or_else(|e| Err(PipelineError::Panicked(e.to_string())));
            let _ = done.send(PipelineOutcome { name, result });
        });
    }

    /// Runs until every pipeline has ended, one has failed, or `shutdown`
    /// resolves; then stops.
    ///
    /// Stopping: the pipelines stop reading and hand what they read to the
    /// sink, and the sink delivers what it holds, within one shutdown
    /// timeout for both; what is left at its end is dead-lettered; every pipeline checkpoints a last time; the reporter reports
    /// the last interval. Nothing that was read is left unaccounted for.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<Summary, RunError> {
        let (done, results, spawned) = (&mut self.done_rx, &mut self.results, self.spawned);
        let stopped = tokio::select! {
            stopped = until_ended_or_failed(done, results, spawned) => stopped,
            () = shutdown => Stopped::Requested,
        };
        tracing::info!(?stopped, "stopping");
        let _ = self.stop_tx.send(true);
        let sink = self.sink.clone();
        let timeout = self.settings.shutdown_timeout;
        // Pipelines first hand what they read to the sink (a send after
        // shutdown would be refused, its input neither sent nor failed); a
        // pipeline stuck behind a full sink gets the shutdown timeout, no
        // more.
        // One deadline for both: the hand-over and the sink's delivery
        // together take the shutdown timeout at most, so that a service
        // manager's grace period (30 s) is not overrun.
        let reading = std::mem::take(&mut self.reading);
        let deadline = tokio::time::Instant::now() + timeout;
        let shutdown = async move {
            let _ = tokio::time::timeout_at(deadline, async {
                for done in reading {
                    let _ = done.await;
                }
            })
            .await;
            sink.shutdown(deadline.saturating_duration_since(tokio::time::Instant::now()))
                .await;
        };
        tokio::join!(shutdown, self.collect());
        // The last interval is reported (and published) before the summary.
        let _ = self.report_stop.send(true);
        let _ = (&mut self.reporter).await;
        if let Some((_, task)) = &self.prometheus {
            task.abort();
        }
        let snapshot = self.metrics.snapshot(&self.sink.stats());
        Ok(Summary {
            stopped,
            lost_pipelines: self.spawned.saturating_sub(self.results.len()),
            pipelines: self.results,
            snapshot,
        })
    }

    async fn collect(&mut self) {
        while self.results.len() < self.spawned {
            match self.done_rx.recv().await {
                Some(result) => self.results.push(result),
                None => return,
            }
        }
    }
}

/// The dead-letter file of the settings, opened for appending.
fn open_dead_letters(settings: &Settings) -> Result<DeadLetterFile, RunError> {
    DeadLetterFile::open(&settings.dead_letter_file).map_err(|source| RunError::DeadLetterFile {
        path: settings.dead_letter_file.clone(),
        source,
    })
}

async fn until_ended_or_failed(
    done: &mut mpsc::UnboundedReceiver<PipelineOutcome>,
    results: &mut Vec<PipelineOutcome>,
    spawned: usize,
) -> Stopped {
    while results.len() < spawned {
        match done.recv().await {
            Some(outcome) => {
                let failed = outcome.result.is_err();
                results.push(outcome);
                if failed {
                    return Stopped::PipelineFailed;
                }
            }
            None => break,
        }
    }
    Stopped::EndOfInput
}

/// Sleeps for `deadline`, or forever without one.
pub async fn sleep_or_forever(deadline: Option<Duration>) {
    match deadline {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
