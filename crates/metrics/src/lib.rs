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

mod rates;
mod snapshot;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use rates::{DEFAULT_RATE_WINDOW, Rates};
pub use snapshot::{Snapshot, SourceSnapshot, StatusLine};

use shardline_producer::ProducerStats;

/// What one source read and how its input fared before the producer.
#[derive(Debug, Default)]
pub struct SourceCounters {
    read: AtomicU64,
    bytes_read: AtomicU64,
    parsed: AtomicU64,
    invalid: AtomicU64,
    skipped: AtomicU64,
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

/// The counters of every source of one run, and when the run started.
#[derive(Debug)]
pub struct Metrics {
    sources: Mutex<BTreeMap<String, Arc<SourceCounters>>>,
    started: Instant,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Metrics {
            sources: Mutex::new(BTreeMap::new()),
            started: Instant::now(),
        }
    }

    /// The counters of the source `name`, created on first use.
    pub fn source(&self, name: &str) -> Arc<SourceCounters> {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        sources.entry(name.to_owned()).or_default().clone()
    }

    /// The statistics now, joined with the producer's counters.
    pub fn snapshot(&self, producer: &ProducerStats) -> Snapshot {
        let sources = self
            .sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(name, counters)| (name.clone(), counters.load()))
            .collect::<Vec<_>>();
        Snapshot::build(&sources, producer, self.started.elapsed())
    }
}
