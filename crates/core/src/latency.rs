//! End-to-end latency: from the moment input is read to the moment its
//! record is settled (acknowledged by the service, or dead-lettered), as the
//! source sees it.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Latencies are kept in microseconds from 1 µs up to this bound; longer
/// ones are counted at the bound. An hour is far beyond any retry schedule
/// (the default backoff caps at 60 s).
const MAX_LATENCY_MICROS: u64 = 3_600_000_000;
/// Significant decimal digits kept: values are exact to 0.1 %.
const SIGNIFICANT_DIGITS: u8 = 3;

fn histogram() -> Option<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, SIGNIFICANT_DIGITS).ok()
}

/// Percentiles of a latency distribution, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct LatencySummary {
    /// Records measured.
    pub count: u64,
    /// The median, in milliseconds.
    pub p50_ms: f64,
    /// The 99th percentile, in milliseconds.
    pub p99_ms: f64,
    /// The longest, in milliseconds.
    pub max_ms: f64,
}

impl LatencySummary {
    /// The summary of a histogram of microseconds.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |micros: u64| (micros as f64 / 10.0).round() / 100.0;
        if histogram.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.5)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            max_ms: ms(histogram.max()),
        }
    }
}

#[derive(Debug)]
struct Histograms {
    /// Everything since the start.
    total: Histogram<u64>,
    /// Since the last [`Latency::take_interval`].
    interval: Histogram<u64>,
}

/// A latency histogram shared between the task that observes settlements
/// and whoever reports them.
#[derive(Debug)]
pub struct Latency {
    inner: Option<Mutex<Histograms>>,
}

impl Default for Latency {
    fn default() -> Self {
        let inner = histogram()
            .zip(histogram())
            .map(|(total, interval)| Mutex::new(Histograms { total, interval }));
        Latency { inner }
    }
}

impl Latency {
    /// `count` records took `latency` from read to settled.
    pub fn record(&self, latency: Duration, count: u64) {
        self.record_many(&[latency], count);
    }

    /// Records each of `latencies`, `count` times, under one lock.
    pub fn record_many(&self, latencies: &[Duration], count: u64) {
        let Some(inner) = &self.inner else { return };
        let mut h = inner.lock().unwrap_or_else(|e| e.into_inner());
        for latency in latencies {
            let micros = u64::try_from(latency.as_micros())
                .unwrap_or(u64::MAX)
                .clamp(1, MAX_LATENCY_MICROS);
            // In bounds by the clamp above, so recording cannot fail.
            let _ = h.total.record_n(micros, count);
            let _ = h.interval.record_n(micros, count);
        }
    }

    /// Calls `f` with every latency recorded so far; `None` if this keeps
    /// no latencies.
    pub fn with_total<T>(&self, f: impl FnOnce(&Histogram<u64>) -> T) -> Option<T> {
        let inner = self.inner.as_ref()?;
        let h = inner.lock().unwrap_or_else(|e| e.into_inner());
        Some(f(&h.total))
    }

    /// The distribution since the start.
    pub fn summary(&self) -> LatencySummary {
        self.with_total(LatencySummary::of).unwrap_or_default()
    }

    /// The distribution since the last call, then starts a new interval.
    pub fn take_interval(&self) -> Option<Histogram<u64>> {
        let inner = self.inner.as_ref()?;
        let mut h = inner.lock().unwrap_or_else(|e| e.into_inner());
        let taken = h.interval.clone();
        h.interval.reset();
        Some(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_intervals() {
        let latency = Latency::default();
        latency.record(Duration::from_millis(10), 98);
        latency.record(Duration::from_millis(500), 2);
        let summary = latency.summary();
        assert_eq!(summary.count, 100);
        assert!((summary.p50_ms - 10.0).abs() < 0.1, "{summary:?}");
        assert!((summary.p99_ms - 500.0).abs() < 1.0, "{summary:?}");
        let interval = latency.take_interval().unwrap();
        assert_eq!(interval.len(), 100);
        latency.record(Duration::from_secs(7200), 1);
        let interval = latency.take_interval().unwrap();
        assert_eq!(interval.len(), 1, "a new interval starts empty");
        assert_eq!(
            interval.max(),
            interval.highest_equivalent(MAX_LATENCY_MICROS)
        );
    }
}
