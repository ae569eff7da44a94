//! What each source counts of its input: plain atomics, shared by `Arc`
//! between the pipeline that counts and whoever reports.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::latency::Latency;

/// What one source read and how its input fared before the sink.
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

    /// The end-to-end latency histogram.
    pub fn latency(&self) -> &Latency {
        &self.latency
    }

    /// Read, bytes read, parsed, invalid and skipped, in that order.
    pub fn load(&self) -> [u64; 5] {
        [
            self.read.load(Ordering::Relaxed),
            self.bytes_read.load(Ordering::Relaxed),
            self.parsed.load(Ordering::Relaxed),
            self.invalid.load(Ordering::Relaxed),
            self.skipped.load(Ordering::Relaxed),
        ]
    }
}
