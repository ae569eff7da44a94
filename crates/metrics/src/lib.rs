//! The metrics layer: what each source read and what became of it, joined
//! with the sink's counters into the run's statistics (`total_sent`, `total_failed`, `success_rate`, `throughput_per_sec`,
//! `by_source`) and the log lab's periodic figures (lines processed,
//! records sent, errors, lines/s, records/s, queue size).
//!
//! Sources count into a [`SourceCounters`] (lock-free atomics, shared by
//! `Arc`); the sink (the producer, or stdout) counts into its own
//! [`SinkStats`]; a [`Snapshot`] joins them. [`Rates`] turns successive snapshots into rates
//! over a sliding window.
//!
//! ```
//! use shardline_metrics::Metrics;
//! use shardline_core::SinkStats;
//!
//! let metrics = Metrics::new();
//! let web = metrics.source("web_logs");
//! web.read(3, 300);
//! web.parsed(2);
//! web.invalid(1);
//! let snapshot = metrics.snapshot(&SinkStats::default());
//! assert_eq!(snapshot.lines_processed, 3);
//! assert_eq!(snapshot.by_source["web_logs"].invalid, 1);
//! ```

#![warn(missing_docs)]

mod alarms;
pub mod cloudwatch;
pub mod prometheus;
mod rates;
mod reporter;
mod snapshot;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use alarms::{AlarmConfig, AlarmEvent, AlarmKind, AlarmState, Alarms, Severity, TOTAL_SCOPE};
pub use prometheus::PROMETHEUS_BUCKETS_SECONDS;
pub use rates::{DEFAULT_RATE_WINDOW, Rates};
pub use reporter::{Output, Reporter};
pub use shardline_core::{Latency, LatencySummary, SourceCounters};
pub use snapshot::{Snapshot, SourceSnapshot, StatusLine};

use shardline_core::SinkStats;

/// Where the producer's counters come from when a snapshot is taken.
pub type StatsProvider = Arc<dyn Fn() -> SinkStats + Send + Sync>;

/// The counters of every source of one run, when the run started, and the
/// alarms judged on them.
#[derive(Debug)]
pub struct Metrics {
    sources: Mutex<BTreeMap<String, Arc<SourceCounters>>>,
    started: Instant,
    alarms: Mutex<Alarms>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Metrics with no source yet, started now.
    pub fn new() -> Self {
        Self::with_alarms(AlarmConfig::default())
    }

    /// Alarms judged with `config` rather than the default thresholds.
    pub fn with_alarms(config: AlarmConfig) -> Self {
        Metrics {
            sources: Mutex::new(BTreeMap::new()),
            started: Instant::now(),
            alarms: Mutex::new(Alarms::new(config)),
        }
    }

    /// The counters of every source, by name.
    pub fn sources(&self) -> Vec<(String, Arc<SourceCounters>)> {
        let sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        sources
            .iter()
            .map(|(name, counters)| (name.clone(), counters.clone()))
            .collect()
    }

    /// Judges the interval that ends with `snapshot` and logs every alarm
    /// raised or cleared as a structured event (target `shardline::alarm`).
    pub fn judge(&self, snapshot: &Snapshot) -> Vec<AlarmEvent> {
        let events = self
            .alarms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(snapshot);
        for e in &events {
            let (scope, severity, value, threshold) =
                (&e.scope, e.severity.to_string(), e.value, e.threshold);
            let alarm = match e.alarm {
                AlarmKind::SuccessRate => "success_rate",
                AlarmKind::Throughput => "throughput",
                AlarmKind::Held => "held_records",
            };
            match e.state {
                AlarmState::Raised => tracing::warn!(
                    target: "shardline::alarm",
                    scope, alarm, severity, value, threshold, "alarm raised"
                ),
                AlarmState::Cleared => tracing::info!(
                    target: "shardline::alarm",
                    scope, alarm, severity, value, threshold, "alarm cleared"
                ),
            }
        }
        events
    }

    /// The counters of the source `name`, created on first use.
    pub fn source(&self, name: &str) -> Arc<SourceCounters> {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        sources.entry(name.to_owned()).or_default().clone()
    }

    /// The statistics now, joined with the producer's counters.
    pub fn snapshot(&self, producer: &SinkStats) -> Snapshot {
        let raised = self
            .alarms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .raised()
            .clone();
        let sources = self.sources();
        let readings = sources
            .iter()
            .map(|(name, counters)| {
                let reading = snapshot::Reading {
                    counters: counters.load(),
                    latency: counters.latency().summary(),
                    alarms_raised: raised.get(name).copied().unwrap_or(0),
                    backlog_bytes: counters.backlog_bytes(),
                    backlog_seconds: counters.backlog_age().map(|a| a.as_secs_f64()),
                    redelivered: counters.redeliveries(),
                };
                (name.clone(), reading)
            })
            .collect::<Vec<_>>();
        let mut total = None::<hdrhistogram::Histogram<u64>>;
        for (_, counters) in &sources {
            counters.latency().with_total(|h| match &mut total {
                Some(t) => {
                    let _ = t.add(h);
                }
                None => total = Some(h.clone()),
            });
        }
        let mut snapshot = Snapshot::build(&readings, producer, self.started.elapsed());
        snapshot.latency = total.as_ref().map(LatencySummary::of).unwrap_or_default();
        snapshot.alarms_raised = raised.get(TOTAL_SCOPE).copied().unwrap_or(0);
        snapshot
    }
}
