//! The periodic work every binary shares: take a snapshot, judge the
//! alarms, print the statistics, publish to CloudWatch.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::cloudwatch::CloudWatch;
use crate::{DEFAULT_RATE_WINDOW, Metrics, Rates, StatsProvider};

/// How long a stopping reporter waits for the last CloudWatch publication:
/// a CloudWatch that does not answer must not hold the process's exit
/// (the data are already settled and checkpointed by then).
const LAST_PUBLICATION_WAIT: Duration = Duration::from_secs(5);

/// How the periodic statistics are printed, on stderr (stdout may carry
/// records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// One status line updated in place.
    StatusLine,
    /// One JSON snapshot per line.
    JsonLines,
    /// Nothing.
    Quiet,
}

impl Output {
    /// A status line on a terminal, JSON lines otherwise.
    pub fn detect() -> Self {
        if std::io::stderr().is_terminal() {
            Output::StatusLine
        } else {
            Output::JsonLines
        }
    }
}

/// Runs every `interval` until stopped; see [`Reporter::run`].
pub struct Reporter {
    metrics: Arc<Metrics>,
    stats: StatsProvider,
    interval: Duration,
    output: Output,
    cloudwatch: Option<CloudWatch>,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("interval", &self.interval)
            .field("output", &self.output)
            .field("cloudwatch", &self.cloudwatch)
            .finish_non_exhaustive()
    }
}

impl Reporter {
    /// A status line every `interval`, to stderr.
    pub fn new(metrics: Arc<Metrics>, stats: StatsProvider, interval: Duration) -> Self {
        Reporter {
            metrics,
            stats,
            interval,
            output: Output::detect(),
            cloudwatch: None,
        }
    }

    /// Where and how the lines are written.
    pub fn output(mut self, output: Output) -> Self {
        self.output = output;
        self
    }

    /// Also publish each interval to CloudWatch.
    pub fn cloudwatch(mut self, cloudwatch: CloudWatch) -> Self {
        self.cloudwatch = Some(cloudwatch);
        self
    }

    /// Every interval: snapshot, alarms, output, CloudWatch. When `stop`
    /// turns true it reports the last interval, waits for the last
    /// publication, and returns.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let Reporter {
            metrics,
            stats,
            interval,
            output,
            cloudwatch,
        } = self;
        let interval = interval.max(Duration::from_millis(1));
        let mut cloudwatch = cloudwatch;
        let (mut sender, task) = match &cloudwatch {
            Some(cw) => {
                let (tx, mut rx) = mpsc::channel(1);
                let publisher = cw.publisher();
                let task = tokio::spawn(async move {
                    while let Some(data) = rx.recv().await {
                        publisher.put(data).await;
                    }
                });
                (Some(tx), Some(task))
            }
            None => (None, None),
        };

        let mut rates = Rates::new(DEFAULT_RATE_WINDOW);
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut stopping = *stop.borrow();
        loop {
            if !stopping {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => stopping = true,
                }
            }
            let snapshot = metrics.snapshot(&stats());
            metrics.judge(&snapshot);
            let window = rates.observe(Instant::now(), &snapshot);
            let mut err = std::io::stderr().lock();
            match output {
                Output::StatusLine => {
                    let _ = write!(err, "\r\x1b[2K{}", snapshot.status_line(window));
                    if stopping {
                        let _ = writeln!(err);
                    }
                }
                Output::JsonLines => {
                    if let Ok(line) = serde_json::to_string(&snapshot) {
                        let _ = writeln!(err, "{line}");
                    }
                }
                Output::Quiet => {}
            }
            drop(err);
            if let (Some(tx), Some(cw)) = (&sender, &mut cloudwatch) {
                let data = cw.data(&snapshot, &metrics);
                if tx.try_send(data).is_err() {
                    cw.stats().skipped_intervals.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("CloudWatch is slow: an interval's metrics were not published");
                }
            }
            if stopping {
                break;
            }
        }
        sender.take();
        if let Some(mut task) = task
            && tokio::time::timeout(LAST_PUBLICATION_WAIT, &mut task)
                .await
                .is_err()
        {
            task.abort();
            if let Some(cw) = &cloudwatch {
                cw.stats().skipped_intervals.fetch_add(1, Ordering::Relaxed);
            }
            tracing::warn!(
                "CloudWatch did not answer within {LAST_PUBLICATION_WAIT:?}: the last interval's metrics were not published"
            );
        }
    }
}
