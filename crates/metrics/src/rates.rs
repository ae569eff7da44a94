//! Rates over a sliding window of snapshots.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::Snapshot;

/// The window rates are taken over by default: long enough to smooth a
/// batch's burst, short enough to show a stall within seconds.
pub const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(10);

/// Lines/s and records/s over the last `window`, from successive
/// snapshots.
#[derive(Debug)]
pub struct Rates {
    window: Duration,
    samples: VecDeque<(Instant, u64, u64)>,
}

impl Rates {
    /// Rates over the last `window`.
    pub fn new(window: Duration) -> Self {
        Rates {
            window,
            samples: VecDeque::new(),
        }
    }

    /// Records a snapshot taken at `now`; returns (lines/s, records/s) since
    /// the oldest sample inside the window, or `None` for the first sample.
    pub fn observe(&mut self, now: Instant, snapshot: &Snapshot) -> Option<(f64, f64)> {
        self.samples
            .push_back((now, snapshot.lines_processed, snapshot.records_sent));
        while self
            .samples
            .get(1)
            .is_some_and(|(at, _, _)| now.duration_since(*at) >= self.window)
        {
            self.samples.pop_front();
        }
        let (at, lines, records) = *self.samples.front()?;
        let seconds = now.duration_since(at).as_secs_f64();
        if seconds <= 0.0 {
            return None;
        }
        Some((
            snapshot.lines_processed.saturating_sub(lines) as f64 / seconds,
            snapshot.records_sent.saturating_sub(records) as f64 / seconds,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_follow_the_window() {
        let mut rates = Rates::new(Duration::from_secs(10));
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let snap = |lines, records| Snapshot {
            lines_processed: lines,
            records_sent: records,
            ..Snapshot::default()
        };
        assert_eq!(rates.observe(at(0), &snap(0, 0)), None);
        assert_eq!(rates.observe(at(5), &snap(500, 250)), Some((100.0, 50.0)));
        // Past the window, the oldest sample is dropped: a stall shows.
        assert_eq!(rates.observe(at(15), &snap(500, 250)), Some((0.0, 0.0)));
    }
}
