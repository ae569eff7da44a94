//! The metrics layer: what each source read and what became of it, joined
//! with the producer's counters into the statistics the seeds define
//! (`total_sent`, `total_failed`, `success_rate`, `throughput_per_sec`,
//! `by_source`) and the log lab's periodic figures (lines processed,
//! records sent, errors, lines/s, records/s, queue size).
//!
//! Sources count into a [`SourceCounters`] (lock-free atomics, shared by
//! `Arc`); the producer counts into its own [`ProducerStats`]; a
//! [`Snapshot`] joins them. [`Rates`] turns successive snapshots into rates
//! over a sliding window.
//!
//! ```
//! use shardline_metrics::Metrics;
//! use shardline_producer::ProducerStats;
//!
//! let metrics = Metrics::new();
//! let web = metrics.source("web_logs");
//! web.read(3, 300);
//! web.parsed(2);
//! web.invalid(1);
//! let snapshot = metrics.snapshot(&ProducerStats::default());
//! assert_eq!(snapshot.lines_processed, 3);
//! assert_eq!(snapshot.by_source["web_logs"].invalid, 1);
//! ```

mod alarms;
pub mod cloudwatch;
mod latency;
pub mod prometheus;
mod rates;
mod reporter;
mod snapshot;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use alarms::{AlarmConfig, AlarmEvent, AlarmKind, AlarmState, Alarms, Severity, TOTAL_SCOPE};
pub use latency::{Latency, LatencySummary, PROMETHEUS_BUCKETS_SECONDS};
pub use rates::{DEFAULT_RATE_WINDOW, Rates};
pub use reporter::{Output, Reporter};
pub use snapshot::{Snapshot, SourceSnapshot, StatusLine};

use shardline_producer::ProducerStats;

/// What one source read and how its input fared before the producer.
#[derive(Debug)]
pub struct SourceCounters {
    read: AtomicU64,
    bytes_read: AtomicU64,
    parsed: AtomicU64,
    invalid: AtomicU64,
    skipped: AtomicU64,
    /// Bytes held back upstream; `NOT_REPORTED` until a source says.
    backlog: AtomicU64,
    /// Age of the newest point settled upstream, in ms; `NOT_REPORTED`
    /// until a source says.
    backlog_age: AtomicU64,
    /// Inputs the upstream sent again (MQTT DUP); `NOT_REPORTED` until a
    /// source that can tell counts one.
    redelivered: AtomicU64,
    latency: Latency,
}

/// `backlog` before a source reports one.
const NOT_REPORTED: u64 = u64::MAX;

impl Default for SourceCounters {
    fn default() -> Self {
        SourceCounters {
            read: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            parsed: AtomicU64::new(0),
            invalid: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            backlog: AtomicU64::new(NOT_REPORTED),
            backlog_age: AtomicU64::new(NOT_REPORTED),
            redelivered: AtomicU64::new(NOT_REPORTED),
            latency: Latency::default(),
        }
    }
}

impl SourceCounters {
    /// `items` units of input (lines, changes, messages) of `bytes` bytes
    /// were read.
    pub fn read(&self, items: u64, bytes: u64) {
        self.read.fetch_add(items, Ordering::Relaxed);
        self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Items that became records.
    pub fn parsed(&self, items: u64) {
        self.parsed.fetch_add(items, Ordering::Relaxed);
    }

    /// Items that did not parse or failed validation (dead-lettered).
    pub fn invalid(&self, items: u64) {
        self.invalid.fetch_add(items, Ordering::Relaxed);
    }

    /// Items that carry nothing to send (blank lines).
    pub fn skipped(&self, items: u64) {
        self.skipped.fetch_add(items, Ordering::Relaxed);
    }

    /// What the source's upstream holds back for it, in bytes — a
    /// replication slot's WAL lag (`pg_current_wal_lsn() -
    /// confirmed_flush_lsn`). Sources with no such figure never call it.
    pub fn set_backlog_bytes(&self, bytes: u64) {
        self.backlog
            .store(bytes.min(NOT_REPORTED - 1), Ordering::Relaxed);
    }

    /// How far behind the source is in time: the age of the newest point
    /// it has settled (a slot: the commit time of the last settled
    /// transaction, or when an idle round last read the WAL position).
    pub fn set_backlog_age(&self, age: std::time::Duration) {
        let ms = u64::try_from(age.as_millis()).unwrap_or(NOT_REPORTED - 1);
        self.backlog_age
            .store(ms.min(NOT_REPORTED - 1), Ordering::Relaxed);
    }

    /// `items` inputs were copies the upstream sent again (an MQTT broker
    /// after a reconnection: the DUP flag). Sources that can tell call it,
    /// with 0 at start so that the figure shows from the first snapshot.
    pub fn redelivered(&self, items: u64) {
        let _ = self.redelivered.compare_exchange(
            NOT_REPORTED,
            0,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        self.redelivered.fetch_add(items, Ordering::Relaxed);
    }

    /// Redeliveries counted, if the source counts them.
    pub fn redeliveries(&self) -> Option<u64> {
        Some(self.redelivered.load(Ordering::Relaxed)).filter(|n| *n != NOT_REPORTED)
    }

    /// The last backlog reported, if any.
    pub fn backlog_bytes(&self) -> Option<u64> {
        Some(self.backlog.load(Ordering::Relaxed)).filter(|b| *b != NOT_REPORTED)
    }

    /// The last backlog age reported, if any.
    pub fn backlog_age(&self) -> Option<std::time::Duration> {
        Some(self.backlog_age.load(Ordering::Relaxed))
            .filter(|ms| *ms != NOT_REPORTED)
            .map(std::time::Duration::from_millis)
    }

    /// Records took these latencies from read to settled.
    pub fn settled(&self, latencies: &[std::time::Duration]) {
        self.latency.record_many(latencies, 1);
    }

    /// The end-to-end latency histogram.
    pub fn latency(&self) -> &Latency {
        &self.latency
    }

    fn load(&self) -> [u64; 5] {
        [
            self.read.load(Ordering::Relaxed),
            self.bytes_read.load(Ordering::Relaxed),
            self.parsed.load(Ordering::Relaxed),
            self.invalid.load(Ordering::Relaxed),
            self.skipped.load(Ordering::Relaxed),
        ]
    }
}

/// Where the producer's counters come from when a snapshot is taken.
pub type StatsProvider = Arc<dyn Fn() -> ProducerStats + Send + Sync>;

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
    pub fn new() -> Self {
        Self::with_alarms(AlarmConfig::default())
    }

    /// Alarms judged with `config` rather than the seeds' thresholds.
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
    pub fn snapshot(&self, producer: &ProducerStats) -> Snapshot {
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
                    latency: counters.latency.summary(),
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
            counters.latency.with_total(|h| match &mut total {
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
